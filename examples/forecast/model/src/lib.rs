//! A provider's quarterly forecaster, as it ships inside a Cordon package.
//!
//! Cordon calls [`Forecaster::score`] once per series (partition mode: one region's quarters,
//! in order). For each series the model tries Holt-Winters exponential smoothing (additive or
//! multiplicative seasonality, plain or damped trend, fitted by minimising the one-step SSE) and
//! a linear autoregression shipped as the ONNX graph `forecast_ar` (run on the host through
//! wasi:nn), keeps the one with the smallest error on the last `horizon` quarters, refits it on
//! the whole series, and returns `horizon` quarters of point forecasts with 80% and 95%
//! prediction intervals. The host adds the region to every output row. `period` (the season
//! length) and `horizon` are the manifest's settings, 4 and 8 unless the policy sets them.

pub mod accuracy;
pub mod autoregression;
pub mod backtest;
pub mod holt_winters;
pub mod methods;
pub mod optimise;
pub mod quarters;

use cordon_guest::nn::{self, Tensor};
use cordon_guest::settings::Settings;
use cordon_guest::{Batch, BatchBuilder, Model, ModelError, ModelInfo};

use autoregression::{LAGS, OneStep};
use methods::{Choice, Z80, Z95};
use quarters::Quarter;

/// Quarters forecast after the last one of each series, unless the policy sets `horizon`.
pub const HORIZON: usize = 8;

/// The autoregression's graph, by its name in the manifest (`[[graph]] name`).
const GRAPH: &str = "forecast_ar";

struct Forecaster;

/// The autoregression through wasi:nn: input `lags` f32 [rows, 8], output `next` f32 [rows, 1].
struct GraphAutoregression;

impl OneStep for GraphAutoregression {
    fn predict(&self, windows: &[f32], rows: usize) -> Result<Vec<f32>, String> {
        let session = nn::session(GRAPH).map_err(|e| e.to_string())?;
        let dimensions = [
            u32::try_from(rows).map_err(|_| "too many windows".to_string())?,
            LAGS as u32,
        ];
        let outputs = session
            .run(vec![("lags", Tensor::from_f32(&dimensions, windows))])
            .map_err(|e| e.to_string())?;
        outputs
            .get("next")
            .and_then(|t| t.to_f32())
            .map_err(|e| e.to_string())
    }
}

impl Model for Forecaster {
    fn describe() -> ModelInfo {
        ModelInfo::new(
            "quarterly-forecast",
            env!("CARGO_PKG_VERSION"),
            "quarterly forecasts (8 quarters, or the policy's horizon) with 80% and 95% intervals per series: Holt-Winters or an ONNX autoregression, picked per series",
        )
    }

    fn score(input: &Batch) -> Result<Batch, ModelError> {
        let settings = Settings::from_host();
        // The host checked both against the manifest's ranges; a negative one cannot come.
        let period = usize::try_from(settings.int64("period")?).unwrap_or(methods::PERIOD);
        let horizon = usize::try_from(settings.int64("horizon")?).unwrap_or(HORIZON);
        let (last, y) = read_series(input)?;
        let forecast =
            methods::forecast(&y, period, horizon, Choice::Auto, &GraphAutoregression)
                .map_err(|why| ModelError::InvalidInput(format!("series ending {last}: {why}")))?;
        let steps = 0..horizon;
        let bound = |z: f64, upper: bool| -> Vec<f64> {
            steps
                .clone()
                .map(|h| {
                    let (lo, hi) = forecast.interval(h, z);
                    if upper { hi } else { lo }
                })
                .collect()
        };
        BatchBuilder::new()
            .text(
                "quarter",
                steps
                    .clone()
                    .map(|h| last.plus(h + 1).to_string())
                    .collect(),
            )
            .text("method", vec![forecast.method.name().to_owned(); horizon])
            .f64("yhat", forecast.points.clone())
            .f64("lo80", bound(Z80, false))
            .f64("hi80", bound(Z80, true))
            .f64("lo95", bound(Z95, false))
            .f64("hi95", bound(Z95, true))
            .build()
    }
}

/// The series' values in order and its last quarter; refuses nulls, unreadable labels and
/// gaps, naming the quarter at fault.
fn read_series(input: &Batch) -> Result<(Quarter, Vec<f64>), ModelError> {
    let labels = input.texts("quarter")?;
    let values = input.f64s("nights")?;
    let mut y = Vec::with_capacity(input.num_rows());
    let mut previous: Option<Quarter> = None;
    for (label, value) in labels.iter().zip(values.iter()) {
        let label = label.unwrap_or_default();
        let quarter = Quarter::parse(label).ok_or_else(|| {
            ModelError::InvalidInput(format!("`{label}` is not a quarter like 1998Q1"))
        })?;
        if let Some(previous) = previous
            && previous.plus(1) != quarter
        {
            return Err(ModelError::InvalidInput(format!(
                "the series jumps from {previous} to {quarter}: it must have every quarter, in order"
            )));
        }
        let value = value.ok_or_else(|| {
            ModelError::InvalidInput(format!(
                "nights is empty at {quarter}: the series must be complete"
            ))
        })?;
        y.push(value);
        previous = Some(quarter);
    }
    let last = previous.ok_or_else(|| ModelError::InvalidInput("an empty series".into()))?;
    Ok((last, y))
}

cordon_guest::export_model!(Forecaster);
