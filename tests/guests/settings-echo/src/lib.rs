//! Answers every row with every setting the host gives it (`period=12;horizon=8`), in the
//! order it gets them, so a test sees exactly what reached the model.

use cordon_guest::settings::{SettingValue, Settings};
use cordon_guest::{Batch, BatchBuilder, Model, ModelError, ModelInfo};

struct SettingsEcho;

impl Model for SettingsEcho {
    fn describe() -> ModelInfo {
        ModelInfo::new("settings-echo", "0.0.0", "echoes its settings")
    }

    fn score(input: &Batch) -> Result<Batch, ModelError> {
        let settings = Settings::from_host();
        let mut parts = Vec::new();
        for name in ["period", "horizon", "method", "levels", "robust"] {
            let shown = match settings.get(name) {
                Some(SettingValue::Int64(n)) => n.to_string(),
                Some(SettingValue::Float64(x)) => x.to_string(),
                Some(SettingValue::Text(text)) => text.clone(),
                Some(SettingValue::Boolean(flag)) => flag.to_string(),
                Some(SettingValue::Float64List(values)) => values
                    .iter()
                    .map(f64::to_string)
                    .collect::<Vec<_>>()
                    .join("/"),
                None => continue,
            };
            parts.push(format!("{name}={shown}"));
        }
        // A setting read as the wrong type is the model's own error.
        settings.int64("period")?;
        BatchBuilder::new()
            .text("outcome", vec![parts.join(";"); input.num_rows()])
            .build()
    }
}

cordon_guest::export_model!(SettingsEcho);
