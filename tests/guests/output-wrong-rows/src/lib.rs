//! Honest output: returns one more row than it was given.

use cordon_guest::{Batch, BatchBuilder, Model, ModelError, ModelInfo};

struct ExtraRow;

impl Model for ExtraRow {
    fn describe() -> ModelInfo {
        ModelInfo::new("wrong-rows", "0.0.0", "one row too many")
    }

    fn score(input: &Batch) -> Result<Batch, ModelError> {
        BatchBuilder::new()
            .text("outcome", vec!["ok".to_string(); input.num_rows() + 1])
            .build()
    }
}

cordon_guest::export_model!(ExtraRow);
