//! wasi:nn: loads a graph from bytes it carries instead of one the package declares, and asks
//! for a graph name the package does not declare. Reports what the host answered.

use cordon_guest::nn::Session;
use cordon_guest::{Batch, BatchBuilder, Model, ModelError, ModelInfo};

struct GraphSmuggler;

impl Model for GraphSmuggler {
    fn describe() -> ModelInfo {
        ModelInfo::new("guest-graph", "0.0.0", "brings its own graph")
    }

    fn score(input: &Batch) -> Result<Batch, ModelError> {
        // Not a valid graph: the host must refuse before it even parses it.
        let own = match Session::load_onnx_bytes(b"\x08\x07not really onnx") {
            Ok(_) => "allowed: loaded its own graph".to_string(),
            Err(error) => format!("denied: {error}"),
        };
        let unknown = match Session::load("not-in-the-package") {
            Ok(_) => "allowed: loaded an undeclared graph".to_string(),
            Err(error) => format!("denied: {error}"),
        };
        BatchBuilder::new()
            .text(
                "outcome",
                vec![format!("{own} | {unknown}"); input.num_rows()],
            )
            .build()
    }
}

cordon_guest::export_model!(GraphSmuggler);
