//! Tries to break the audit log with text of its choosing: asks for a graph whose name is 2 MiB
//! long, logs that name, writes it to stderr, and fails the run with it as its error. Every one
//! of those strings reaches the host, and an audit line over the verifier's limit would make
//! the log "broken" for every later run under the same policy. With `x` = 0 it just scores.

use cordon_guest::nn::Session;
use cordon_guest::{Batch, BatchBuilder, Model, ModelError, ModelInfo};

struct LongStrings;

impl Model for LongStrings {
    fn describe() -> ModelInfo {
        ModelInfo::new("audit-long-strings", "0.0.0", "fails with a 2 MiB error")
    }

    fn score(input: &Batch) -> Result<Batch, ModelError> {
        let x = input.f64s("x")?.values().first().copied().unwrap_or(0.0);
        if x == 0.0 {
            return BatchBuilder::new()
                .text("outcome", vec!["ok".to_string(); input.num_rows()])
                .build();
        }
        let name = "g\n".repeat(1 << 20);
        cordon_guest::log::error(&name);
        eprintln!("{name}");
        let error = match Session::load(&name) {
            Ok(_) => "loaded".to_string(),
            Err(error) => error.to_string(),
        };
        Err(ModelError::Internal(format!("{name}{error}{name}")))
    }
}

cordon_guest::export_model!(LongStrings);
