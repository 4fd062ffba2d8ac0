//! Holt-Winters exponential smoothing: level, trend (plain or damped) and seasonality (additive or
//! multiplicative), in the error-correction form statsmodels' `ExponentialSmoothing` uses:
//!
//! ```text
//! level     l_t = α·(y_t ⊖ s_{t-m}) + (1-α)·(l_{t-1} + φ·b_{t-1})
//! trend     b_t = β·(l_t - l_{t-1}) + (1-β)·φ·b_{t-1}
//! seasonal  s_t = γ·(y_t ⊖ (l_{t-1} + φ·b_{t-1})) + (1-γ)·s_{t-m}
//! forecast  ŷ_{t+h} = (l_t + (φ + φ² + … + φ^h)·b_t) ⊕ s_{t+h-m}
//! ```
//!
//! where ⊖/⊕ are minus/plus (additive) or divide/multiply (multiplicative), and φ = 1 without
//! damping. Parameters are fitted by minimising the one-step sum of squared errors
//! ([`fit`]); the initial state is the classic heuristic ([`State::heuristic`]).
//!
//! Missing observations (NaN) are skipped as a state space model skips them: the state moves
//! on by its own forecast (`l_t = l_{t-1} + φ·b_{t-1}`, `b_t = φ·b_{t-1}`, `s_t = s_{t-m}`),
//! with no error to correct it and nothing added to the SSE.

use std::collections::VecDeque;

use crate::optimise::nelder_mead;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seasonality {
    Additive,
    Multiplicative,
}

/// The shape of a model: what it smooths, not how much.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spec {
    /// Observations per season (4 for quarters, 12 for months).
    pub period: usize,
    pub seasonality: Seasonality,
    pub damped: bool,
}

/// Smoothing parameters. `phi` is 1 for a plain trend.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Params {
    pub alpha: f64,
    pub beta: f64,
    pub gamma: f64,
    pub phi: f64,
}

/// The state after some observation: level, trend, and the next `period` seasonal terms, the
/// one for the next observation first.
#[derive(Debug, Clone, PartialEq)]
pub struct State {
    pub level: f64,
    pub trend: f64,
    pub seasonal: VecDeque<f64>,
}

impl State {
    /// The heuristic initial state: level = mean of the first season, trend = (mean of the
    /// second season - mean of the first) / period, seasonal = first season's values minus
    /// (additive) or divided by (multiplicative) the level. Needs two seasons; missing values
    /// are left out of the means, and a seasonal term whose first-season value is missing is
    /// taken from the next season that has it (neutral if none does).
    pub fn heuristic(y: &[f64], spec: Spec) -> Option<State> {
        let m = spec.period;
        if m == 0 || y.len() < 2 * m {
            return None;
        }
        let first = y.get(..m)?;
        let second = y.get(m..2 * m)?;
        let level = mean(first);
        let trend = (mean(second) - level) / m as f64;
        if !level.is_finite() || !trend.is_finite() {
            return None;
        }
        let seasonal = (0..m)
            .map(|j| {
                // The first season with a value at position j, against the level then.
                let found = y
                    .iter()
                    .skip(j)
                    .step_by(m)
                    .enumerate()
                    .find(|(_, v)| !v.is_nan());
                match found {
                    Some((season, v)) => {
                        let at = level + trend * (season * m) as f64;
                        match spec.seasonality {
                            Seasonality::Additive => v - at,
                            Seasonality::Multiplicative => v / at,
                        }
                    }
                    None => neutral(spec),
                }
            })
            .collect();
        Some(State {
            level,
            trend,
            seasonal,
        })
    }

    /// The point forecast `h` steps (1, 2, …) after this state.
    pub fn forecast(&self, h: usize, spec: Spec, params: Params) -> f64 {
        let damped_steps: f64 = (1..=h).map(|i| params.phi.powi(i as i32)).sum();
        let base = self.level + damped_steps * self.trend;
        let m = self.seasonal.len().max(1);
        let season = self
            .seasonal
            .get((h.max(1) - 1) % m)
            .copied()
            .unwrap_or(neutral(spec));
        combine(base, season, spec)
    }

    /// Takes observation `y` in: returns the one-step forecast made before seeing it, and moves
    /// the state on (by its own forecast alone when `y` is missing).
    fn step(&mut self, y: f64, spec: Spec, params: Params) -> f64 {
        let Params {
            alpha,
            beta,
            gamma,
            phi,
        } = params;
        let season = self.seasonal.pop_front().unwrap_or(neutral(spec));
        let base = self.level + phi * self.trend;
        let predicted = combine(base, season, spec);
        if y.is_nan() {
            self.level = base;
            self.trend *= phi;
            self.seasonal.push_back(season);
            return predicted;
        }
        let level = alpha * remove(y, season, spec) + (1.0 - alpha) * base;
        let trend = beta * (level - self.level) + (1.0 - beta) * phi * self.trend;
        let seasonal = gamma * remove(y, base, spec) + (1.0 - gamma) * season;
        self.level = level;
        self.trend = trend;
        self.seasonal.push_back(seasonal);
        predicted
    }
}

/// A model run over a series.
#[derive(Debug, Clone)]
pub struct Fit {
    pub spec: Spec,
    pub params: Params,
    pub initial: State,
    /// One-step forecasts, one per observation.
    pub fitted: Vec<f64>,
    /// Sum of squared one-step errors over the observations present.
    pub sse: f64,
    /// The state after each observation.
    pub states: Vec<State>,
}

impl Fit {
    /// The state after the last observation.
    pub fn last_state(&self) -> &State {
        self.states.last().unwrap_or(&self.initial)
    }

    /// Point forecasts for 1..=horizon steps after the last observation.
    pub fn forecast(&self, horizon: usize) -> Vec<f64> {
        let state = self.last_state();
        (1..=horizon)
            .map(|h| state.forecast(h, self.spec, self.params))
            .collect()
    }

    /// The in-sample forecast made after observation `origin` for `h` steps later.
    pub fn forecast_from(&self, origin: usize, h: usize) -> Option<f64> {
        Some(self.states.get(origin)?.forecast(h, self.spec, self.params))
    }
}

/// Runs the recursions over `y` with fixed parameters from `initial`.
pub fn filter(y: &[f64], spec: Spec, params: Params, initial: State) -> Fit {
    let mut state = initial.clone();
    let mut fitted = Vec::with_capacity(y.len());
    let mut states = Vec::with_capacity(y.len());
    let mut sse = 0.0;
    for &value in y {
        let predicted = state.step(value, spec, params);
        if !value.is_nan() {
            sse += (value - predicted).powi(2);
        }
        fitted.push(predicted);
        states.push(state.clone());
    }
    Fit {
        spec,
        params,
        initial,
        fitted,
        sse,
        states,
    }
}

/// The one-step SSE of the recursions over `y`: [`filter`] without keeping the states, for
/// the optimiser, which calls it hundreds of times per fit.
fn sse(y: &[f64], spec: Spec, params: Params, initial: &State) -> f64 {
    let mut state = initial.clone();
    let mut sse = 0.0;
    for &value in y {
        let predicted = state.step(value, spec, params);
        if !value.is_nan() {
            sse += (value - predicted).powi(2);
        }
    }
    sse
}

/// Fits α, β, γ (and φ when damped) by minimising the one-step SSE from the heuristic initial
/// state. `None` when the series is shorter than two seasons, holds a value a multiplicative
/// model cannot take (zero or negative), or no parameters give a finite SSE.
pub fn fit(y: &[f64], spec: Spec) -> Option<Fit> {
    if spec.seasonality == Seasonality::Multiplicative && y.iter().any(|v| *v <= 0.0) {
        return None;
    }
    let initial = State::heuristic(y, spec)?;
    let objective = |x: &[f64]| {
        let params = params_from(x, spec);
        let sse = sse(y, spec, params, &initial);
        if sse.is_finite() { sse } else { f64::MAX }
    };
    // A few starting points: smoothing surfaces have local minima.
    let starts: [[f64; 4]; 3] = [
        [-1.0, -1.0, -1.0, 1.0],
        [0.5, -2.0, -2.0, 1.0],
        [-2.5, -1.0, 0.5, 2.0],
    ];
    let dims = if spec.damped { 4 } else { 3 };
    let best = starts
        .iter()
        .filter_map(|start| start.get(..dims))
        .map(|start| nelder_mead(&objective, start, 600))
        .min_by(|a, b| a.1.total_cmp(&b.1))?;
    let fit = filter(y, spec, params_from(&best.0, spec), initial);
    fit.sse.is_finite().then_some(fit)
}

/// Unconstrained coordinates to parameters inside their bounds: 0 < α < 1, 0 < β < α,
/// 0 < γ < 1 - α, 0.8 < φ < 0.98 (a damped trend that still trends).
fn params_from(x: &[f64], spec: Spec) -> Params {
    let at = |i: usize| sigmoid(x.get(i).copied().unwrap_or(0.0));
    let alpha = 0.0001 + 0.9998 * at(0);
    let beta = alpha * at(1);
    let gamma = (1.0 - alpha) * at(2);
    let phi = if spec.damped { 0.9 + 0.08 * at(3) } else { 1.0 };
    Params {
        alpha,
        beta,
        gamma,
        phi,
    }
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

fn neutral(spec: Spec) -> f64 {
    match spec.seasonality {
        Seasonality::Additive => 0.0,
        Seasonality::Multiplicative => 1.0,
    }
}

fn combine(base: f64, season: f64, spec: Spec) -> f64 {
    match spec.seasonality {
        Seasonality::Additive => base + season,
        Seasonality::Multiplicative => base * season,
    }
}

fn remove(value: f64, part: f64, spec: Spec) -> f64 {
    match spec.seasonality {
        Seasonality::Additive => value - part,
        Seasonality::Multiplicative => value / part,
    }
}

/// The mean of the values present (NaN when none is).
pub(crate) fn mean(values: &[f64]) -> f64 {
    let present = values.iter().filter(|v| !v.is_nan());
    let count = present.clone().count();
    if count == 0 {
        return f64::NAN;
    }
    present.sum::<f64>() / count as f64
}
