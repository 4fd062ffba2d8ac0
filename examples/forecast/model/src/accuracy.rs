//! Forecast accuracy, for the backtest the example's README reports.

use crate::methods::mean_absolute_error;

/// Mean absolute scaled error: the forecast's mean absolute error over the in-sample mean
/// absolute error of the seasonal naive forecast (`y_t = y_{t-period}`) on `train`. Below 1,
/// the forecast beats what repeating last year's value would have done in-sample.
pub fn mase(train: &[f64], actual: &[f64], predicted: &[f64], period: usize) -> f64 {
    let naive: Vec<f64> = train
        .iter()
        .zip(train.iter().skip(period))
        .map(|(before, now)| (now - before).abs())
        .collect();
    if naive.is_empty() {
        return f64::NAN;
    }
    let scale = naive.iter().sum::<f64>() / naive.len() as f64;
    mean_absolute_error(actual, predicted) / scale
}

/// The seasonal naive forecast of `horizon` steps after `train`: last season, repeated.
pub fn seasonal_naive(train: &[f64], period: usize, horizon: usize) -> Vec<f64> {
    let last_season = train
        .get(train.len().saturating_sub(period)..)
        .unwrap_or_default();
    last_season.iter().copied().cycle().take(horizon).collect()
}

/// The share of `actual` values inside `[lo, hi]`.
pub fn coverage(actual: &[f64], lo: &[f64], hi: &[f64]) -> f64 {
    let n = actual.len().min(lo.len()).min(hi.len());
    if n == 0 {
        return f64::NAN;
    }
    let inside = actual
        .iter()
        .zip(lo)
        .zip(hi)
        .filter(|((a, l), h)| *l <= *a && *a <= *h)
        .count();
    inside as f64 / n as f64
}

/// The median, ignoring NaN.
pub fn median(values: &[f64]) -> f64 {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => sorted.get(n / 2).copied().unwrap_or(f64::NAN),
        _ => {
            (sorted.get(n / 2 - 1).copied().unwrap_or(f64::NAN)
                + sorted.get(n / 2).copied().unwrap_or(f64::NAN))
                / 2.0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mase_of_the_seasonal_naive_forecast_on_a_repeating_series_with_noise() {
        let train = [10.0, 20.0, 30.0, 40.0, 12.0, 22.0, 32.0, 42.0];
        // In-sample seasonal naive errors are all 2.
        let actual = [14.0, 24.0];
        let naive = seasonal_naive(&train, 4, 2);
        assert_eq!(naive, [12.0, 22.0]);
        assert!((mase(&train, &actual, &naive, 4) - 1.0).abs() < 1e-12);
        assert!((mase(&train, &actual, &actual, 4)).abs() < 1e-12);
    }

    #[test]
    fn coverage_and_median() {
        assert_eq!(coverage(&[1.0, 5.0], &[0.0, 0.0], &[2.0, 2.0]), 0.5);
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
    }
}
