//! Forecast accuracy, for the backtests the example's README reports. Values may be missing
//! (NaN): they are left out of every error and every scale.

use crate::methods::mean_absolute_error;
use crate::methods::{Z80, Z95};

/// Mean absolute scaled error: the forecast's mean absolute error over the in-sample mean
/// absolute error of the seasonal naive forecast (`y_t = y_{t-period}`) on `train`. Below 1,
/// the forecast beats what repeating last season's value would have done in-sample.
pub fn mase(train: &[f64], actual: &[f64], predicted: &[f64], period: usize) -> f64 {
    mean_absolute_error(actual, predicted) / naive_scale(train, period)
}

/// The in-sample mean absolute error of the seasonal naive forecast, over the pairs present.
pub fn naive_scale(train: &[f64], period: usize) -> f64 {
    let differences = seasonal_differences(train, period);
    if differences.is_empty() {
        return f64::NAN;
    }
    differences.iter().map(|d| d.abs()).sum::<f64>() / differences.len() as f64
}

/// `y_t - y_{t-period}` wherever both are present: the seasonal naive forecast's in-sample
/// errors.
fn seasonal_differences(train: &[f64], period: usize) -> Vec<f64> {
    train
        .iter()
        .zip(train.iter().skip(period))
        .map(|(before, now)| now - before)
        .filter(|d| d.is_finite())
        .collect()
}

/// The seasonal naive forecast of `horizon` steps after `train`: the value one season back, or
/// as many seasons back as it takes to find one present.
pub fn seasonal_naive(train: &[f64], period: usize, horizon: usize) -> Vec<f64> {
    let n = train.len();
    let period = period.max(1);
    (1..=horizon)
        .map(|h| {
            // The latest observation in the same season as n - 1 + h.
            let mut back = (h - 1) / period + 1;
            loop {
                let Some(t) = (n + h - 1).checked_sub(back * period) else {
                    return f64::NAN;
                };
                match train.get(t) {
                    Some(v) if !v.is_nan() => return *v,
                    _ => back += 1,
                }
            }
        })
        .collect()
}

/// The seasonal naive forecast's 80% and 95% intervals, as Hyndman and Athanasopoulos give
/// them (Forecasting: Principles and Practice, 5.5): `σ·√(k + 1)` at step h, k the whole
/// seasons before h, σ the root mean square of the in-sample seasonal differences.
pub fn seasonal_naive_intervals(
    train: &[f64],
    period: usize,
    points: &[f64],
) -> [(Vec<f64>, Vec<f64>); 2] {
    let differences = seasonal_differences(train, period);
    let sigma = (differences.iter().map(|d| d * d).sum::<f64>() / differences.len() as f64).sqrt();
    [Z80, Z95].map(|z| {
        points
            .iter()
            .enumerate()
            .map(|(h, p)| {
                let width = z * sigma * (((h / period.max(1)) + 1) as f64).sqrt();
                (p - width, p + width)
            })
            .unzip()
    })
}

/// The share of the `actual` values present that lie inside `[lo, hi]`, and how many were
/// present.
pub fn coverage(actual: &[f64], lo: &[f64], hi: &[f64]) -> (f64, usize) {
    let present: Vec<bool> = actual
        .iter()
        .zip(lo)
        .zip(hi)
        .filter(|((a, _), _)| a.is_finite())
        .map(|((a, l), h)| *l <= *a && *a <= *h)
        .collect();
    if present.is_empty() {
        return (f64::NAN, 0);
    }
    let inside = present.iter().filter(|inside| **inside).count();
    (inside as f64 / present.len() as f64, present.len())
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

/// The mean, ignoring NaN.
pub fn mean(values: &[f64]) -> f64 {
    crate::holt_winters::mean(values)
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
    fn missing_values_are_left_out_and_the_naive_forecast_looks_further_back() {
        let nan = f64::NAN;
        let train = [10.0, 20.0, 30.0, 40.0, 12.0, nan, 32.0, 42.0];
        // The second season's value is missing: the first season's stands in.
        assert_eq!(
            seasonal_naive(&train, 4, 6),
            [12.0, 20.0, 32.0, 42.0, 12.0, 20.0]
        );
        // Three seasonal differences present, each 2.
        assert!((naive_scale(&train, 4) - 2.0).abs() < 1e-12);
        assert_eq!(coverage(&[1.0, nan, 5.0], &[0.0; 3], &[2.0; 3]), (0.5, 2));
    }

    #[test]
    fn naive_intervals_widen_each_season() {
        let train = [10.0, 20.0, 12.0, 22.0, 14.0, 24.0];
        let points = seasonal_naive(&train, 2, 3);
        let [(lo80, hi80), (lo95, _)] = seasonal_naive_intervals(&train, 2, &points);
        // σ = 2: step 3 is a season further out, √2 wider.
        assert!((hi80[0] - points[0] - Z80 * 2.0).abs() < 1e-12);
        assert!((points[2] - lo80[2] - Z80 * 2.0 * 2f64.sqrt()).abs() < 1e-12);
        assert!(lo95[0] < lo80[0]);
    }

    #[test]
    fn coverage_and_median() {
        assert_eq!(coverage(&[1.0, 5.0], &[0.0, 0.0], &[2.0, 2.0]), (0.5, 2));
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
    }
}
