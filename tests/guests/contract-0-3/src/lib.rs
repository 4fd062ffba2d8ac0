//! A model as an older guest SDK built it: bindings straight from contract 0.3.0 (settings, but
//! no encoders interface), so that the host is seen to serve that version beside the current
//! one. It logs once through 0.3.0's own `log`, reads 0.3.0's own `settings`, and answers
//! `contract 0.3.0, period N` for every row (N: the `period` setting, or `none`).

wit_bindgen::generate!({
    path: "../../../wit/archive/0.3.0",
    world: "cordon:model/model",
    generate_all,
});

use cordon::model::log::{Level, log};
use cordon::model::settings::{SettingValue, all};
use cordon::model::types::{Batch, Column, ColumnValues, ModelError, ModelInfo, TextValues};
use exports::cordon::model::scorer::Guest;

struct Old;

impl Guest for Old {
    fn score(input: Batch) -> Result<Batch, ModelError> {
        log(Level::Info, "scored by a contract 0.3.0 model");
        let period = all()
            .into_iter()
            .find(|setting| setting.name == "period")
            .map(|setting| match setting.value {
                SettingValue::Int64(n) => n.to_string(),
                _ => "not int64".to_owned(),
            })
            .unwrap_or_else(|| "none".to_owned());
        let answer = format!("contract 0.3.0, period {period}");
        let mut offsets = vec![0u32];
        let mut bytes = Vec::new();
        for _ in 0..input.num_rows {
            bytes.extend_from_slice(answer.as_bytes());
            offsets.push(bytes.len() as u32);
        }
        Ok(Batch {
            num_rows: input.num_rows,
            columns: vec![Column {
                name: "outcome".into(),
                values: ColumnValues::Text(TextValues { offsets, bytes }),
                validity: Vec::new(),
            }],
        })
    }

    fn describe() -> ModelInfo {
        ModelInfo {
            name: "contract-0-3".into(),
            version: "0.0.0".into(),
            description: "a model of contract 0.3.0".into(),
        }
    }
}

export!(Old);
