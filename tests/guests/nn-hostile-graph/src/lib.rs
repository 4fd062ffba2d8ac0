//! wasi:nn with a hostile graph: loads the package's graph `hostile` and runs it once per
//! batch, trying the inputs the test graphs take in turn (none; `x` = the first row's value as
//! float32 [1]; `n` = 1 as int64 [1]), and reports what came back: every output's name, byte
//! count and first bytes, or each error. A graph that reads a file through external data would
//! show the file's bytes here.

use cordon_guest::nn::{Session, Tensor};
use cordon_guest::{Batch, BatchBuilder, Model, ModelError, ModelInfo};

struct HostileGraph;

fn attempt(session: &Session, inputs: Vec<(&str, Tensor)>) -> Result<String, String> {
    let outputs = session.run(inputs).map_err(|e| e.to_string())?;
    let mut report = Vec::new();
    for name in outputs.names() {
        let bytes = outputs.get(name).map(|t| t.bytes()).unwrap_or_default();
        let head: Vec<u8> = bytes.iter().take(24).copied().collect();
        report.push(format!(
            "{name}: {} bytes {:?}",
            bytes.len(),
            String::from_utf8_lossy(&head)
        ));
    }
    Ok(format!("ran: {}", report.join("; ")))
}

impl Model for HostileGraph {
    fn describe() -> ModelInfo {
        ModelInfo::new("hostile-graph", "0.0.0", "runs a hostile graph")
    }

    fn score(input: &Batch) -> Result<Batch, ModelError> {
        let x = input.f64s("x")?.values().first().copied().unwrap_or(0.0) as f32;
        let outcome = match Session::load("hostile") {
            Err(error) => format!("load failed: {error}"),
            Ok(session) => {
                let mut errors = Vec::new();
                let tries = [
                    vec![],
                    vec![("x", Tensor::from_f32(&[1], &[x]))],
                    vec![("n", Tensor::from_i64(&[1], &[1]))],
                ];
                let mut outcome = None;
                for inputs in tries {
                    match attempt(&session, inputs) {
                        Ok(ran) => {
                            outcome = Some(ran);
                            break;
                        }
                        Err(error) => errors.push(error),
                    }
                }
                outcome.unwrap_or_else(|| format!("run failed: {}", errors.join(" | ")))
            }
        };
        BatchBuilder::new()
            .text("outcome", vec![outcome; input.num_rows()])
            .build()
    }
}

cordon_guest::export_model!(HostileGraph);
