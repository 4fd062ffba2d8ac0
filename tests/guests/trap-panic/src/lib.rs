//! A trap: panics halfway through the input. The run must end with exit code 2, the panic
//! message, and no output file.

use cordon_guest::{Batch, BatchBuilder, Model, ModelError, ModelInfo};

struct Panicker;

impl Model for Panicker {
    fn describe() -> ModelInfo {
        ModelInfo::new("panic", "0.0.0", "panics")
    }

    fn score(input: &Batch) -> Result<Batch, ModelError> {
        let x = input.f64s("x")?;
        if x.iter().any(|v| v == Some(13.0)) {
            panic!("unlucky row: the model gives up");
        }
        BatchBuilder::new()
            .text("outcome", vec!["ok".to_string(); input.num_rows()])
            .build()
    }
}

cordon_guest::export_model!(Panicker);
