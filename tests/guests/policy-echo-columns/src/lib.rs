//! Least data: returns, for every row, every column name and value the host handed in, so a
//! test can prove that nothing outside the grant ever reached guest memory.

use cordon_guest::{Batch, BatchBuilder, Model, ModelError, ModelInfo};

struct Echo;

impl Model for Echo {
    fn describe() -> ModelInfo {
        ModelInfo::new("echo-columns", "0.0.0", "echoes its input")
    }

    fn score(input: &Batch) -> Result<Batch, ModelError> {
        let columns = input.to_text_columns();
        let seen = (0..input.num_rows())
            .map(|row| {
                columns
                    .iter()
                    .map(|(name, values)| {
                        let value = values.get(row).cloned().flatten();
                        format!("{name}={}", value.unwrap_or_else(|| "<null>".into()))
                    })
                    .collect::<Vec<_>>()
                    .join(";")
            })
            .collect();
        BatchBuilder::new().text("seen", seen).build()
    }
}

cordon_guest::export_model!(Echo);
