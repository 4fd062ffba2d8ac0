//! The methods, how one is picked per series, and the prediction intervals.
//!
//! Picking: the last `horizon` observations of the series are held out, every candidate is
//! fitted on the rest and scored by its mean absolute error on them, and the best is refitted on
//! the whole series. The season length (`period`) and the horizon are the manifest's settings,
//! which the consumer's policy may set. Intervals: from the method's own in-sample errors at each horizon (the
//! forecast made after observation t for t + h, against what happened), assumed Gaussian:
//! `ŷ ± z·σ_h`. This needs no closed form per method, and widens with h as the errors do.

use crate::autoregression::{self, LAGS, OneStep};
use crate::holt_winters::{self, Seasonality, Spec};

/// Quarters per year: the default season length (`[settings.period]`).
pub const PERIOD: usize = 4;

/// How much better than the combination a single method must score on the holdout to be
/// picked over it: a holdout of a few quarters is a noisy judge, and a combination is the safer
/// bet when the evidence is thin.
pub const SINGLE_METHOD_MARGIN: f64 = 0.10;

/// Holdout windows a method is scored on when the series is long enough.
pub const ROLLING_ORIGINS: usize = 3;

/// Standard normal quantiles for two-sided 80% and 95% intervals.
pub const Z80: f64 = 1.281_551_565_545;
pub const Z95: f64 = 1.959_963_984_540;

/// Fewest in-sample errors at a horizon to estimate its spread from; below it, the one-step
/// spread grows with √h.
const MIN_ERRORS: usize = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    HoltWinters(Spec),
    Autoregression,
    /// The mean of every other method that fits the series: forecast combination, which is
    /// often more accurate than any one method and never as badly wrong as the worst.
    Combination,
}

/// The single methods a combination averages, for season length `period`.
fn singles(period: usize) -> [Method; 5] {
    let holt_winters = |seasonality, damped| {
        Method::HoltWinters(Spec {
            period,
            seasonality,
            damped,
        })
    };
    [
        holt_winters(Seasonality::Additive, false),
        holt_winters(Seasonality::Additive, true),
        holt_winters(Seasonality::Multiplicative, false),
        holt_winters(Seasonality::Multiplicative, true),
        Method::Autoregression,
    ]
}

/// Every method tried on every series, for season length `period`.
pub fn candidates(period: usize) -> [Method; 6] {
    let [a, b, c, d, e] = singles(period);
    [a, b, c, d, e, Method::Combination]
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

/// A series' forecast: point forecasts and the spread of errors at each horizon.
#[derive(Debug, Clone)]
pub struct Forecast {
    pub method: Method,
    pub points: Vec<f64>,
    pub sigma: Vec<f64>,
}

impl Forecast {
    /// The interval at step `h` (0-based) for quantile `z`.
    pub fn interval(&self, h: usize, z: f64) -> (f64, f64) {
        let point = self.points.get(h).copied().unwrap_or(f64::NAN);
        let sigma = self.sigma.get(h).copied().unwrap_or(f64::NAN);
        (point - z * sigma, point + z * sigma)
    }
}

/// Which method a series gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    /// The best by the holdout's mean absolute error.
    Auto,
    Fixed(Method),
}

/// Forecasts `horizon` steps after `y` with the chosen method, or the best by holdout, for
/// season length `period`.
pub fn forecast(
    y: &[f64],
    period: usize,
    horizon: usize,
    choice: Choice,
    ar: &dyn OneStep,
) -> Result<Forecast, String> {
    let method = match choice {
        Choice::Fixed(method) => method,
        Choice::Auto => pick(y, period, horizon, ar)?,
    };
    let (points, errors) = run(method, y, period, horizon, ar, true)?;
    let sigma = spread(&errors);
    if points.iter().chain(&sigma).any(|v| !v.is_finite()) {
        return Err(format!("{} gave no finite forecast", method.name()));
    }
    Ok(Forecast {
        method,
        points,
        sigma,
    })
}

/// The candidate with the smallest mean absolute error over the holdout windows: the last
/// `horizon` observations, and up to [`ROLLING_ORIGINS`] - 1 earlier windows of the same
/// length, each a season before the next (one window alone is a noisy judge).
pub fn pick(y: &[f64], period: usize, horizon: usize, ar: &dyn OneStep) -> Result<Method, String> {
    let windows = rolling_windows(y, period, horizon).max(1);
    let mut best: Option<(Method, f64)> = None;
    'methods: for method in candidates(period) {
        let mut total = 0.0;
        for origin in 0..windows {
            let split = y.len().saturating_sub(horizon + origin * period);
            let (train, rest) = y.split_at(split);
            let test = rest.get(..horizon).unwrap_or(rest);
            // A method that cannot fit this series is not a candidate for it.
            let Ok((points, _)) = run(method, train, period, horizon, ar, false) else {
                continue 'methods;
            };
            total += mean_absolute_error(test, &points);
        }
        let mut mae = total / windows as f64;
        if method != Method::Combination {
            mae *= 1.0 + SINGLE_METHOD_MARGIN;
        }
        if mae.is_finite() && best.is_none_or(|(_, b)| mae < b) {
            best = Some((method, mae));
        }
    }
    best.map(|(method, _)| method).ok_or_else(|| {
        format!(
            "no method fits a series of {} observations (at least {} are needed)",
            y.len(),
            horizon + 2 * period.max(LAGS)
        )
    })
}

/// How many holdout windows fit in a series while leaving room to fit every method.
fn rolling_windows(y: &[f64], period: usize, horizon: usize) -> usize {
    let shortest_fit = 2 * period.max(LAGS);
    (0..ROLLING_ORIGINS)
        .take_while(|origin| y.len() >= horizon + origin * period + shortest_fit)
        .count()
}

/// Point forecasts after `y` and, when asked, the in-sample errors at each horizon 1..=horizon.
fn run(
    method: Method,
    y: &[f64],
    period: usize,
    horizon: usize,
    ar: &dyn OneStep,
    with_errors: bool,
) -> Result<(Vec<f64>, Vec<Vec<f64>>), String> {
    let mut errors = vec![Vec::new(); horizon];
    match method {
        Method::HoltWinters(spec) => {
            let fit = holt_winters::fit(y, spec)
                .ok_or_else(|| format!("{} cannot fit this series", method.name()))?;
            if with_errors {
                // From the end of the initialisation period on.
                for origin in (2 * spec.period).saturating_sub(1)..y.len() {
                    for (h, errors) in errors.iter_mut().enumerate() {
                        if let (Some(actual), Some(predicted)) =
                            (y.get(origin + h + 1), fit.forecast_from(origin, h + 1))
                        {
                            errors.push(actual - predicted);
                        }
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
            if members.len() < 2 {
                return Err("a combination needs two methods that fit".into());
            }
            let share = 1.0 / members.len() as f64;
            let mut points = vec![0.0; horizon];
            for (member_points, _) in &members {
                for (sum, p) in points.iter_mut().zip(member_points) {
                    *sum += share * p;
                }
            }
            // Every method's in-sample errors at a horizon run from its first origin (two
            // seasons for Holt-Winters, LAGS observations for the autoregression) to the same
            // last one, the end of the series: their last n line up one for one, n being the
            // fewest any member has, and the combination's error is their mean.
            for (h, sum) in errors.iter_mut().enumerate() {
                let common = members
                    .iter()
                    .map(|(_, member)| member.get(h).map_or(0, Vec::len))
                    .min()
                    .unwrap_or(0);
                *sum = vec![0.0; common];
                for (_, member) in &members {
                    let Some(member) = member.get(h) else {
                        continue;
                    };
                    let aligned = member.get(member.len() - common..).unwrap_or_default();
                    for (s, e) in sum.iter_mut().zip(aligned) {
                        *s += share * e;
                    }
                }
            }
            Ok((points, errors))
        }
        Method::Autoregression => {
            if y.len() < 2 * LAGS {
                return Err(format!("{} needs {} observations", method.name(), 2 * LAGS));
            }
            let all = autoregression::windows(y);
            let windows = if with_errors {
                all.as_slice()
            } else {
                all.get(all.len().saturating_sub(1)..).unwrap_or_default()
            };
            let paths = autoregression::forecast_paths(ar, windows, horizon)?;
            let points = paths.last().cloned().unwrap_or_default();
            if with_errors {
                // The window at index i ends at observation LAGS - 1 + i.
                for (i, path) in paths.iter().enumerate() {
                    for (h, (predicted, errors)) in path.iter().zip(&mut errors).enumerate() {
                        if let Some(actual) = y.get(LAGS + i + h) {
                            errors.push(actual - predicted);
                        }
                    }
                }
            }
            Ok((points, errors))
        }
    }
}

/// The root mean square of the errors at each horizon.
fn spread(errors: &[Vec<f64>]) -> Vec<f64> {
    let rms = |e: &[f64]| (e.iter().map(|v| v * v).sum::<f64>() / e.len() as f64).sqrt();
    let one_step = errors.first().map_or(f64::NAN, |e| rms(e));
    errors
        .iter()
        .enumerate()
        .map(|(h, e)| {
            if e.len() >= MIN_ERRORS {
                rms(e)
            } else {
                one_step * ((h + 1) as f64).sqrt()
            }
        })
        .collect()
}

pub fn mean_absolute_error(actual: &[f64], predicted: &[f64]) -> f64 {
    let n = actual.len().min(predicted.len());
    if n == 0 {
        return f64::NAN;
    }
    actual
        .iter()
        .zip(predicted)
        .map(|(a, p)| (a - p).abs())
        .sum::<f64>()
        / n as f64
}
