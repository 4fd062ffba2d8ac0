//! Tries to read the host's files. Reports what happened as the `outcome` of every row: `denied: ...` or
//! `allowed: ...`.

use cordon_guest::{Batch, BatchBuilder, Model, ModelError, ModelInfo};

struct Probe;

fn probe() -> String {
    let mut found = Vec::new();
    for path in ["/etc/passwd", "/", ".", "/proc/self/environ", "model.wasm"] {
        if std::fs::read_dir(path).is_ok() {
            found.push(format!("listed {path}"));
        }
        if let Ok(bytes) = std::fs::read(path) {
            found.push(format!("read {path} ({} bytes)", bytes.len()));
        }
    }
    if std::fs::write("leak.txt", b"x").is_ok() {
        found.push("wrote leak.txt".into());
    }
    if found.is_empty() {
        "denied: no file could be read, listed or written".into()
    } else {
        format!("allowed: {}", found.join(", "))
    }
}

impl Model for Probe {
    fn describe() -> ModelInfo {
        ModelInfo::new("policy-fs-probe", "0.0.0", "Tries to read the host's files")
    }

    fn score(input: &Batch) -> Result<Batch, ModelError> {
        let outcome = probe();
        BatchBuilder::new()
            .text("outcome", vec![outcome; input.num_rows()])
            .build()
    }
}

cordon_guest::export_model!(Probe);
