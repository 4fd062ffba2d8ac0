//! A model as an older guest SDK built it: bindings straight from contract 0.2.0 (no
//! settings interface), so that the host is seen to serve that version beside the current one.
//! It logs once through 0.2.0's own `log` and answers `contract 0.2.0` for every row.

wit_bindgen::generate!({
    path: "../../../wit/archive/0.2.0",
    world: "cordon:model/model",
    generate_all,
});

use cordon::model::log::{Level, log};
use cordon::model::types::{Batch, Column, ColumnValues, ModelError, ModelInfo, TextValues};
use exports::cordon::model::scorer::Guest;

struct Old;

impl Guest for Old {
    fn score(input: Batch) -> Result<Batch, ModelError> {
        log(Level::Info, "scored by a contract 0.2.0 model");
        let answer = b"contract 0.2.0";
        let mut offsets = vec![0u32];
        let mut bytes = Vec::new();
        for _ in 0..input.num_rows {
            bytes.extend_from_slice(answer);
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
            name: "contract-0-2".into(),
            version: "0.0.0".into(),
            description: "a model of contract 0.2.0".into(),
        }
    }
}

export!(Old);
