//! CPU: loops forever in `score`. The host must stop it with its CPU limit.

use cordon_guest::{Batch, Model, ModelError, ModelInfo};

struct Spin;

impl Model for Spin {
    fn describe() -> ModelInfo {
        ModelInfo::new("infinite-loop", "0.0.0", "never returns")
    }

    fn score(input: &Batch) -> Result<Batch, ModelError> {
        let mut counter = input.num_rows() as u64;
        loop {
            counter =
                std::hint::black_box(counter.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
    }
}

cordon_guest::export_model!(Spin);
