//! Tensor bytes: keeps creating 1 MiB wasi-nn tensors and holding them, so their bytes pile up
//! in host memory outside the guest's linear memory. The host must refuse past its budget.

use cordon_guest::nn::Tensor;
use cordon_guest::{Batch, Model, ModelError, ModelInfo};

struct TensorHog;

impl Model for TensorHog {
    fn describe() -> ModelInfo {
        ModelInfo::new("tensor-hog", "0.0.0", "holds tensors without bound")
    }

    fn score(_input: &Batch) -> Result<Batch, ModelError> {
        let block = vec![0.5f32; 256 * 1024];
        let mut held = Vec::new();
        loop {
            held.push(Tensor::from_f32(&[256, 1024], &block));
        }
    }
}

cordon_guest::export_model!(TensorHog);
