//! Memory: allocates and touches 16 MiB blocks until something stops it. The host must stop
//! it with its memory limit.

use cordon_guest::{Batch, Model, ModelError, ModelInfo};

struct Hog;

impl Model for Hog {
    fn describe() -> ModelInfo {
        ModelInfo::new("memory-hog", "0.0.0", "allocates without bound")
    }

    fn score(_input: &Batch) -> Result<Batch, ModelError> {
        let mut blocks: Vec<Vec<u8>> = Vec::new();
        loop {
            blocks.push(vec![1u8; 16 << 20]);
            std::hint::black_box(&blocks);
        }
    }
}

cordon_guest::export_model!(Hog);
