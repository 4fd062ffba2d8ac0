//! A provider's seasonal forecaster, as it ships inside a Cordon package.
//!
//! Cordon calls [`Forecaster::score`] once per series (partition mode: one series' rows, in
//! time order). For each series the model tries Holt-Winters exponential smoothing (additive or
//! multiplicative seasonality, plain or damped trend, fitted by minimising the one-step SSE) and
//! a linear autoregression shipped as the ONNX graph `forecast_ar` (run on the host through
//! wasi:nn), keeps the one with the smallest error on the last `horizon` periods, refits it on
//! the whole series, and returns `horizon` periods of point forecasts with calibrated 80% and
//! 95% prediction intervals. The host adds the series key to every output row.
//!
//! The manifest's settings, which the consumer's policy may set: `frequency` (how the `time`
//! labels step: quarterly to half-hourly, see [`time`]), `period` (the season length; 0 for the
//! frequency's own) and `horizon`. Missing periods, as gaps between labels or empty values, are
//! skipped by the methods (see [`methods`]).

pub mod accuracy;
pub mod autoregression;
pub mod backtest;
pub mod holt_winters;
pub mod methods;
pub mod optimise;
pub mod series;
pub mod time;

use cordon_guest::nn::{self, Tensor};
use cordon_guest::settings::Settings;
use cordon_guest::{Batch, BatchBuilder, Model, ModelError, ModelInfo};

use autoregression::{LAGS, OneStep};
use methods::{Choice, Level};
use time::Frequency;

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
            "seasonal-forecast",
            env!("CARGO_PKG_VERSION"),
            "seasonal forecasts of any regular frequency with calibrated 80% and 95% intervals per series: Holt-Winters or an ONNX autoregression, picked per series",
        )
    }

    fn score(input: &Batch) -> Result<Batch, ModelError> {
        let settings = Settings::from_host();
        // The host checked each against the manifest's choices and ranges.
        let frequency = Frequency::from_name(settings.text("frequency")?).ok_or_else(|| {
            ModelError::InvalidInput("the frequency setting is not one this model knows".into())
        })?;
        let period = match usize::try_from(settings.int64("period")?) {
            Ok(0) | Err(_) => frequency.natural_period(),
            Ok(period) => period,
        };
        let horizon = usize::try_from(settings.int64("horizon")?)
            .unwrap_or(1)
            .max(1);
        let labels: Vec<&str> = input
            .texts("time")?
            .iter()
            .map(Option::unwrap_or_default)
            .collect();
        let values: Vec<Option<f64>> = input.f64s("value")?.iter().collect();
        let series =
            series::Series::read(frequency, &labels, &values).map_err(ModelError::InvalidInput)?;
        let forecast = methods::forecast(
            &series.values,
            period,
            horizon,
            Choice::Auto,
            &GraphAutoregression,
        )
        .map_err(|why| {
            ModelError::InvalidInput(format!(
                "the series ending {} ({} values, {} missing): {why}",
                series.last_label(),
                series.values.len(),
                series.missing
            ))
        })?;
        let steps = 0..horizon;
        let bound = |level: Level, upper: bool| -> Vec<f64> {
            steps
                .clone()
                .map(|h| {
                    let (lo, hi) = forecast.interval(h, level);
                    if upper { hi } else { lo }
                })
                .collect()
        };
        BatchBuilder::new()
            .text("time", series.labels_after(horizon))
            .text("method", vec![forecast.method.name().to_owned(); horizon])
            .f64("yhat", forecast.points.clone())
            .f64("lo80", bound(Level::P80, false))
            .f64("hi80", bound(Level::P80, true))
            .f64("lo95", bound(Level::P95, false))
            .f64("hi95", bound(Level::P95, true))
            .build()
    }
}

cordon_guest::export_model!(Forecaster);
