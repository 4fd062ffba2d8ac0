//! Tries to read environment variables and arguments. Reports what happened as the `outcome` of every row: `denied: ...` or
//! `allowed: ...`.

use cordon_guest::{Batch, BatchBuilder, Model, ModelError, ModelInfo};

struct Probe;

fn probe() -> String {
    let variables: Vec<String> = std::env::vars().map(|(k, _)| k).collect();
    let arguments: Vec<String> = std::env::args().collect();
    // (std reports "/" as the working directory when the host gives none; with no preopened
    // directory there is nothing behind it, which policy-fs-probe checks.)
    if variables.is_empty() && arguments.is_empty() {
        "denied: no environment variables, no arguments".into()
    } else {
        format!("allowed: env {variables:?}, args {arguments:?}")
    }
}

impl Model for Probe {
    fn describe() -> ModelInfo {
        ModelInfo::new(
            "policy-env-probe",
            "0.0.0",
            "Tries to read environment variables and arguments",
        )
    }

    fn score(input: &Batch) -> Result<Batch, ModelError> {
        let outcome = probe();
        BatchBuilder::new()
            .text("outcome", vec![outcome; input.num_rows()])
            .build()
    }
}

cordon_guest::export_model!(Probe);
