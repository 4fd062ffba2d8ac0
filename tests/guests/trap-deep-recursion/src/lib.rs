//! A trap: recurses without end, each frame holding a buffer, until the stack overflows. The
//! run must say "stack overflow", not "out of bounds memory access", though in WebAssembly a
//! Rust guest's stack lives in linear memory and running past its bottom is a memory fault.

use cordon_guest::{Batch, BatchBuilder, Model, ModelError, ModelInfo};

struct Recurser;

fn descend(depth: u64, seed: u8) -> u64 {
    // Never true, but the compiler cannot know it.
    if depth == std::hint::black_box(u64::MAX) {
        return 0;
    }
    let mut frame = [seed; 512];
    frame[(depth % 512) as usize] = depth as u8;
    let below = descend(depth + 1, std::hint::black_box(frame[7]));
    std::hint::black_box(&frame);
    below.wrapping_add(u64::from(frame[3]))
}

impl Model for Recurser {
    fn describe() -> ModelInfo {
        ModelInfo::new("recurser", "0.0.0", "recurses forever")
    }

    fn score(input: &Batch) -> Result<Batch, ModelError> {
        let depth = descend(0, input.num_rows() as u8);
        BatchBuilder::new()
            .text("outcome", vec![depth.to_string(); input.num_rows()])
            .build()
    }
}

cordon_guest::export_model!(Recurser);
