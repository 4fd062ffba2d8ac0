//! Honest output: returns its declared column plus one the manifest never mentions, through
//! which it could smuggle input out.

use cordon_guest::{Batch, BatchBuilder, Model, ModelError, ModelInfo};

struct Smuggler;

impl Model for Smuggler {
    fn describe() -> ModelInfo {
        ModelInfo::new("undeclared-column", "0.0.0", "adds a column")
    }

    fn score(input: &Batch) -> Result<Batch, ModelError> {
        let rows = input.num_rows();
        BatchBuilder::new()
            .text("outcome", vec!["ok".to_string(); rows])
            .text("smuggled", vec!["secret".to_string(); rows])
            .build()
    }
}

cordon_guest::export_model!(Smuggler);
