//! The methods, how one is picked per series, and the prediction intervals.
//!
//! Picking: the last `horizon` observations of the series are held out (and up to
//! [`ROLLING_ORIGINS`] - 1 earlier windows), every candidate is fitted on what comes before and
//! scored by its mean absolute error on them, and the best is refitted on the whole series.
//! The season length (`period`) and the horizon are the manifest's settings, which the
//! consumer's policy may set.
//!
//! Intervals: `ŷ_h ± w·σ_h`. `σ_h` is the method's own in-sample spread at step h (the root
//! mean square of the forecasts made after observation t for t + h, against what happened),
//! with the variance of the single methods' forecasts at h added (when the methods disagree,
//! the forecast is less certain than any one of them says). In-sample errors are smaller than
//! errors on data a method has not seen, so the multiplier `w` is not the Gaussian quantile but
//! calibrated on the holdout windows by split conformal prediction: the holdout errors in units
//! of their `σ`, and `w` the score that the level's share of them stay under (see [`width`]).
//!
//! Missing values (NaN) are skipped: Holt-Winters moves its state on without correcting it,
//! the autoregression uses only windows with all their lags present, and no error is counted
//! where the actual value is missing.

use crate::autoregression::{self, LAGS, OneStep};
use crate::holt_winters::{self, Seasonality, Spec};

/// How much better than the combination a single method must score on the holdout to be
/// picked over it: a holdout of a few quarters is a noisy judge, and a combination is the safer
/// bet when the evidence is thin.
pub const SINGLE_METHOD_MARGIN: f64 = 0.10;

/// Holdout windows a method is scored on when the series is long enough.
pub const ROLLING_ORIGINS: usize = 6;

/// Standard normal quantiles for two-sided 80% and 95% intervals.
pub const Z80: f64 = 1.281_551_565_545;
pub const Z95: f64 = 1.959_963_984_540;

/// Fewest in-sample errors at a horizon to estimate its spread from; below it, the one-step
/// spread grows with √h.
const MIN_ERRORS: usize = 4;

/// Fewest holdout errors to calibrate the intervals with; below it the multiplier is the
/// Gaussian quantile.
const MIN_CALIBRATION_ERRORS: usize = 6;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    HoltWinters(Spec),
    Autoregression,
    /// The mean of every other method that fits the series: forecast combination, which is
    /// often more accurate than any one method and never as badly wrong as the worst.
    Combination,
}

/// The single methods a combination averages, for season length `period`: the autoregression
/// reads [`LAGS`] values, so it takes part only when a season fits in them.
fn singles(period: usize) -> Vec<Method> {
    let holt_winters = |seasonality, damped| {
        Method::HoltWinters(Spec {
            period,
            seasonality,
            damped,
        })
    };
    let mut methods = vec![
        holt_winters(Seasonality::Additive, false),
        holt_winters(Seasonality::Additive, true),
        holt_winters(Seasonality::Multiplicative, false),
        holt_winters(Seasonality::Multiplicative, true),
    ];
    if period <= LAGS {
        methods.push(Method::Autoregression);
    }
    methods
}

/// Every method tried on every series, for season length `period`.
pub fn candidates(period: usize) -> Vec<Method> {
    let mut methods = singles(period);
    methods.push(Method::Combination);
    methods
}

impl Method {
    /// The name written in the output's `method` column.
    pub fn name(self) -> &'static str {
        match self {
            Method::HoltWinters(spec) => match (spec.seasonality, spec.damped) {
                (Seasonality::Additive, false) => "holt-winters-additive",
                (Seasonality::Additive, true) => "holt-winters-additive-damped",
                (Seasonality::Multiplicative, false) => "holt-winters-multiplicative",
                (Seasonality::Multiplicative, true) => "holt-winters-multiplicative-damped",
            },
            Method::Autoregression => "autoregression-onnx",
            Method::Combination => "combination",
        }
    }

    /// The method a name stands for, for season length `period`.
    pub fn from_name(name: &str, period: usize) -> Option<Method> {
        candidates(period).into_iter().find(|m| m.name() == name)
    }
}

/// The two prediction intervals the model writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    P80,
    P95,
}

impl Level {
    pub const ALL: [Level; 2] = [Level::P80, Level::P95];

    /// The share of outcomes the interval should hold.
    pub fn coverage(self) -> f64 {
        match self {
            Level::P80 => 0.80,
            Level::P95 => 0.95,
        }
    }

    /// The standard normal quantile of a two-sided interval of this level.
    pub fn z(self) -> f64 {
        match self {
            Level::P80 => Z80,
            Level::P95 => Z95,
        }
    }

    fn index(self) -> usize {
        match self {
            Level::P80 => 0,
            Level::P95 => 1,
        }
    }
}

/// A series' forecast: point forecasts and the spread of errors at each horizon.
#[derive(Debug, Clone)]
pub struct Forecast {
    pub method: Method,
    pub points: Vec<f64>,
    /// The in-sample spread at each step, `σ_h`.
    pub sigma: Vec<f64>,
    /// Per level (80%, 95%), the half-width of the interval in units of `σ_h`, calibrated on
    /// the holdout windows.
    pub widths: [f64; 2],
}

impl Forecast {
    /// The interval at step `h` (0-based) of `level`.
    pub fn interval(&self, h: usize, level: Level) -> (f64, f64) {
        let point = self.points.get(h).copied().unwrap_or(f64::NAN);
        let sigma = self.sigma.get(h).copied().unwrap_or(f64::NAN);
        let width = self.widths.get(level.index()).copied().unwrap_or(f64::NAN) * sigma;
        (point - width, point + width)
    }
}

/// Which method a series gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    /// The best by the holdout's mean absolute error.
    Auto,
    Fixed(Method),
}

/// Forecasts `horizon` steps after `y` (NaN for a missing value) with the chosen method, or
/// the best by holdout, for season length `period`.
pub fn forecast(
    y: &[f64],
    period: usize,
    horizon: usize,
    choice: Choice,
    ar: &dyn OneStep,
) -> Result<Forecast, String> {
    let (scored, between) = holdout(y, period, horizon, ar);
    let candidate = match choice {
        Choice::Fixed(method) => scored
            .into_iter()
            .find(|c| c.method == method)
            .ok_or_else(|| format!("{} cannot fit this series", method.name()))?,
        Choice::Auto => pick(scored).ok_or_else(|| {
            format!(
                "no method fits a series of {} observations (at least {} are needed)",
                y.len(),
                horizon + 2 * period.max(LAGS)
            )
        })?,
    };
    let method = candidate.method;
    let (points, errors) = run(method, y, period, horizon, ar, true)?;
    let finals: Vec<Vec<f64>> = singles(period)
        .into_iter()
        .filter_map(|m| run(m, y, period, horizon, ar, false).ok())
        .map(|(points, _)| points)
        .collect();
    let final_between = spread_between(&finals, horizon);
    let in_sample = spread(&errors);
    let widths = Level::ALL.map(|level| width(&candidate.errors, &between, &in_sample, level));
    let sigma: Vec<f64> = in_sample
        .iter()
        .zip(&final_between)
        .map(|(s, b)| (s * s + b).sqrt())
        .collect();
    if points
        .iter()
        .chain(&sigma)
        .chain(&widths)
        .any(|v| !v.is_finite())
    {
        return Err(format!("{} gave no finite forecast", method.name()));
    }
    Ok(Forecast {
        method,
        points,
        sigma,
        widths,
    })
}

/// A method's record on the holdout windows.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub method: Method,
    /// Mean absolute error over every window's observed values.
    pub mae: f64,
    /// Per window, per step: actual - forecast (NaN where the actual value is missing).
    pub errors: Vec<Vec<f64>>,
}

/// Every candidate that fits every holdout window, with its errors: the last `horizon`
/// observations, and up to [`ROLLING_ORIGINS`] - 1 earlier windows of the same length, each a
/// season before the next (one window alone is a noisy judge). The combination is scored from
/// its members' forecasts, not refitted.
pub fn holdout(
    y: &[f64],
    period: usize,
    horizon: usize,
    ar: &dyn OneStep,
) -> (Vec<Candidate>, Vec<Vec<f64>>) {
    let windows = rolling_windows(y, period, horizon).max(1);
    let singles = singles(period);
    // Per method (singles, then the combination): per window, the errors; None once it failed.
    let mut errors: Vec<Option<Vec<Vec<f64>>>> = vec![Some(Vec::new()); singles.len() + 1];
    let mut between = Vec::new();
    for origin in 0..windows {
        let split = y.len().saturating_sub(horizon + origin * period);
        let (train, rest) = y.split_at(split);
        let test = rest.get(..horizon).unwrap_or(rest);
        let against =
            |points: &[f64]| -> Vec<f64> { test.iter().zip(points).map(|(a, p)| a - p).collect() };
        let mut members: Vec<Vec<f64>> = Vec::new();
        for (method, record) in singles.iter().zip(errors.iter_mut()) {
            if record.is_none() {
                continue;
            }
            // A method that cannot fit this series is not a candidate for it.
            match run(*method, train, period, horizon, ar, false) {
                Ok((points, _)) if points.iter().all(|p| p.is_finite()) => {
                    if let Some(record) = record {
                        record.push(against(&points));
                    }
                    members.push(points);
                }
                _ => *record = None,
            }
        }
        between.push(spread_between(&members, horizon));
        if let Some(record) = errors.last_mut() {
            match mean_path(&members, horizon) {
                Some(points) => {
                    if let Some(record) = record {
                        record.push(against(&points));
                    }
                }
                None => *record = None,
            }
        }
    }
    let candidates = singles
        .into_iter()
        .chain([Method::Combination])
        .zip(errors)
        .filter_map(|(method, errors)| {
            let errors = errors?;
            let mae = mean_abs(errors.iter().flatten());
            mae.is_finite().then_some(Candidate {
                method,
                mae,
                errors,
            })
        })
        .collect();
    (candidates, between)
}

/// The variance of the members' forecasts at each step (0 with fewer than two): how much the
/// methods disagree, a part of the uncertainty no single method's errors show.
fn spread_between(members: &[Vec<f64>], horizon: usize) -> Vec<f64> {
    (0..horizon)
        .map(|h| {
            let values: Vec<f64> = members.iter().filter_map(|m| m.get(h).copied()).collect();
            if values.len() < 2 {
                return 0.0;
            }
            let mean = values.iter().sum::<f64>() / values.len() as f64;
            values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / values.len() as f64
        })
        .collect()
}

/// The candidate with the smallest holdout error; a single method must beat the combination
/// by [`SINGLE_METHOD_MARGIN`].
pub fn pick(candidates: Vec<Candidate>) -> Option<Candidate> {
    let handicap = |c: &Candidate| {
        if c.method == Method::Combination {
            c.mae
        } else {
            c.mae * (1.0 + SINGLE_METHOD_MARGIN)
        }
    };
    candidates
        .into_iter()
        .min_by(|a, b| handicap(a).total_cmp(&handicap(b)))
}

/// The half-width of a `level` interval in units of the spread, from the holdout windows:
/// split conformal prediction on the scores `|e| / σ`, `e` a holdout error and `σ` its step's
/// spread (the in-sample `σ_h` with the methods' disagreement in that window added), the
/// ⌈(n + 1)·level⌉-th smallest of the n scores: it holds `level` of future scores if they are
/// like these. With too few scores for that rank, the Gaussian quantile scaled by the scores'
/// root mean square; with fewer than [`MIN_CALIBRATION_ERRORS`], the Gaussian quantile alone.
fn width(errors: &[Vec<f64>], between: &[Vec<f64>], sigma: &[f64], level: Level) -> f64 {
    let mut scores: Vec<f64> = errors
        .iter()
        .zip(between)
        .flat_map(|(window, between)| {
            window
                .iter()
                .zip(sigma)
                .zip(between)
                .map(|((e, s), b)| (e / (s * s + b).sqrt()).abs())
        })
        .filter(|score| score.is_finite())
        .collect();
    let n = scores.len();
    if n < MIN_CALIBRATION_ERRORS {
        return level.z();
    }
    scores.sort_by(f64::total_cmp);
    let rank = ((n + 1) as f64 * level.coverage()).ceil() as usize;
    match rank.checked_sub(1).and_then(|i| scores.get(i)) {
        Some(score) => *score,
        None => {
            let rms = (scores.iter().map(|r| r * r).sum::<f64>() / n as f64).sqrt();
            level.z() * rms
        }
    }
}

/// The mean of the members' paths, step by step; `None` with fewer than two members.
fn mean_path(members: &[Vec<f64>], horizon: usize) -> Option<Vec<f64>> {
    if members.len() < 2 {
        return None;
    }
    let share = 1.0 / members.len() as f64;
    let mut points = vec![0.0; horizon];
    for member in members {
        for (sum, p) in points.iter_mut().zip(member) {
            *sum += share * p;
        }
    }
    Some(points)
}

/// How many holdout windows fit in a series while leaving room to fit every method.
fn rolling_windows(y: &[f64], period: usize, horizon: usize) -> usize {
    let shortest_fit = 2 * period.max(LAGS);
    (0..ROLLING_ORIGINS)
        .take_while(|origin| y.len() >= horizon + origin * period + shortest_fit)
        .count()
}

/// In-sample errors: `errors[h][t]` is the error of the forecast made after observation `t`
/// for `t + h + 1`, NaN where there is none (before the method's first origin, past the end,
/// or a missing actual value).
type Errors = Vec<Vec<f64>>;

/// Point forecasts after `y` and, when asked, the in-sample errors at each horizon 1..=horizon.
fn run(
    method: Method,
    y: &[f64],
    period: usize,
    horizon: usize,
    ar: &dyn OneStep,
    with_errors: bool,
) -> Result<(Vec<f64>, Errors), String> {
    let n = y.len();
    let mut errors = if with_errors {
        vec![vec![f64::NAN; n]; horizon]
    } else {
        Vec::new()
    };
    match method {
        Method::HoltWinters(spec) => {
            let fit = holt_winters::fit(y, spec)
                .ok_or_else(|| format!("{} cannot fit this series", method.name()))?;
            // From the end of the initialisation period on.
            for origin in (2 * spec.period).saturating_sub(1)..n {
                for (h, errors) in errors.iter_mut().enumerate() {
                    if let (Some(actual), Some(predicted), Some(slot)) = (
                        y.get(origin + h + 1),
                        fit.forecast_from(origin, h + 1),
                        errors.get_mut(origin),
                    ) {
                        *slot = actual - predicted;
                    }
                }
            }
            Ok((fit.forecast(horizon), errors))
        }
        Method::Combination => {
            let members: Vec<_> = singles(period)
                .iter()
                .filter_map(|m| run(*m, y, period, horizon, ar, with_errors).ok())
                .collect();
            let paths: Vec<Vec<f64>> = members.iter().map(|(p, _)| p.clone()).collect();
            let points =
                mean_path(&paths, horizon).ok_or("a combination needs two methods that fit")?;
            // At each origin, the mean of the members' errors where every member has one.
            let share = 1.0 / members.len() as f64;
            for (h, sum) in errors.iter_mut().enumerate() {
                for (t, slot) in sum.iter_mut().enumerate() {
                    *slot = members
                        .iter()
                        .map(|(_, e)| e.get(h).and_then(|e| e.get(t)).copied())
                        .sum::<Option<f64>>()
                        .map_or(f64::NAN, |total| total * share);
                }
            }
            Ok((points, errors))
        }
        Method::Autoregression => {
            if n < 2 * LAGS {
                return Err(format!("{} needs {} observations", method.name(), 2 * LAGS));
            }
            // Only windows with every lag present; the one ending at the last observation must
            // be among them.
            let all = autoregression::windows(y);
            let last = all.len().saturating_sub(1);
            let complete = |w: &Vec<f64>| w.iter().all(|v| !v.is_nan());
            if !all.last().is_some_and(complete) {
                return Err(format!(
                    "{} needs the last {LAGS} values present",
                    method.name()
                ));
            }
            let chosen: Vec<usize> = if with_errors {
                (0..all.len())
                    .filter(|i| all.get(*i).is_some_and(complete))
                    .collect()
            } else {
                vec![last]
            };
            let windows: Vec<Vec<f64>> =
                chosen.iter().filter_map(|i| all.get(*i).cloned()).collect();
            let paths = autoregression::forecast_paths(ar, &windows, horizon)?;
            let points = paths.last().cloned().unwrap_or_default();
            // The window at index i ends at observation LAGS - 1 + i.
            for (i, path) in chosen.iter().zip(&paths) {
                let origin = LAGS - 1 + i;
                for (h, (predicted, errors)) in path.iter().zip(&mut errors).enumerate() {
                    if let (Some(actual), Some(slot)) =
                        (y.get(origin + h + 1), errors.get_mut(origin))
                    {
                        *slot = actual - predicted;
                    }
                }
            }
            Ok((points, errors))
        }
    }
}

/// The root mean square of the errors present at each horizon.
fn spread(errors: &[Vec<f64>]) -> Vec<f64> {
    let rms = |e: &[f64]| {
        let present: Vec<f64> = e.iter().copied().filter(|v| v.is_finite()).collect();
        let mean_square = present.iter().map(|v| v * v).sum::<f64>() / present.len() as f64;
        (mean_square.sqrt(), present.len())
    };
    let one_step = errors.first().map_or(f64::NAN, |e| rms(e).0);
    errors
        .iter()
        .enumerate()
        .map(|(h, e)| match rms(e) {
            (sigma, count) if count >= MIN_ERRORS => sigma,
            _ => one_step * ((h + 1) as f64).sqrt(),
        })
        .collect()
}

/// The mean absolute value of the finite values (NaN when there are none).
fn mean_abs<'a>(values: impl Iterator<Item = &'a f64>) -> f64 {
    let (sum, count) = values
        .filter(|v| v.is_finite())
        .fold((0.0, 0usize), |(s, c), v| (s + v.abs(), c + 1));
    if count == 0 {
        f64::NAN
    } else {
        sum / count as f64
    }
}

/// The mean absolute error over the pairs where both values are present.
pub fn mean_absolute_error(actual: &[f64], predicted: &[f64]) -> f64 {
    let differences: Vec<f64> = actual.iter().zip(predicted).map(|(a, p)| a - p).collect();
    mean_abs(differences.iter())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Natively there is no graph: the autoregression never fits (as for a period above 8).
    struct NoGraph;

    impl OneStep for NoGraph {
        fn predict(&self, _: &[f32], _: usize) -> Result<Vec<f32>, String> {
            Err("no graph here".into())
        }
    }

    fn air_passengers() -> Vec<f64> {
        include_str!("../../data/reference/air_passengers.csv")
            .lines()
            .skip(1)
            .filter_map(|line| line.split(',').nth(1)?.parse().ok())
            .collect()
    }

    #[test]
    fn missing_values_are_skipped_and_the_forecast_stays_close() {
        let complete = air_passengers();
        let mut gappy = complete.clone();
        // Every 9th month missing, and a run of three.
        for (t, value) in gappy.iter_mut().enumerate() {
            if t % 9 == 4 || (60..63).contains(&t) {
                *value = f64::NAN;
            }
        }
        let full = forecast(&complete, 12, 12, Choice::Auto, &NoGraph).unwrap();
        let skipped = forecast(&gappy, 12, 12, Choice::Auto, &NoGraph).unwrap();
        for h in 0..12 {
            let (a, b) = (full.points[h], skipped.points[h]);
            assert!((a - b).abs() / a < 0.05, "step {h}: {a} against {b}");
            let (lo80, hi80) = skipped.interval(h, Level::P80);
            let (lo95, hi95) = skipped.interval(h, Level::P95);
            assert!(
                lo95 < lo80 && lo80 < b && b < hi80 && hi80 < hi95,
                "step {h}"
            );
        }
    }

    #[test]
    fn the_widths_are_conformal_ranks_of_the_holdout_scores() {
        // 19 scores 1..=19 (σ = 1, no disagreement): the 80% width is the 16th, ⌈20·0.8⌉.
        let errors = vec![(1..=19).map(f64::from).collect::<Vec<_>>()];
        let between = vec![vec![0.0; 19]];
        let sigma = vec![1.0; 19];
        assert_eq!(width(&errors, &between, &sigma, Level::P80), 16.0);
        assert_eq!(width(&errors, &between, &sigma, Level::P95), 19.0);
        // 18 scores: too few for the 95% rank, so 1.96 times their root mean square.
        let errors = vec![vec![2.0; 18]];
        let w = width(&errors, &between, &sigma, Level::P95);
        assert!((w - Z95 * 2.0).abs() < 1e-12, "{w}");
        // Fewer than six: the Gaussian quantile alone.
        assert_eq!(width(&[vec![5.0; 3]], &between, &sigma, Level::P80), Z80);
    }
}
