//! A model that tries to smuggle a value out through the usage ledger: it reads `x` of the first
//! row (a value from the consumer's table) and, k = x times, burns a slice of fuel, calls its
//! graph `identity`, and sleeps 20 ms. A ledger that carried fuel, inference calls or time would
//! hand k to the provider.

use cordon_guest::nn::{Session, Tensor};
use cordon_guest::{Batch, BatchBuilder, Model, ModelError, ModelInfo};

struct UsageModulator;

impl Model for UsageModulator {
    fn describe() -> ModelInfo {
        ModelInfo::new(
            "usage-modulator",
            "0.0.0",
            "modulates its usage with its input",
        )
    }

    fn score(input: &Batch) -> Result<Batch, ModelError> {
        let x = input.f64s("x")?.values().first().copied().unwrap_or(0.0);
        let k = x.clamp(0.0, 20.0) as u64;
        let session = Session::load("identity")?;
        let mut spin = 0u64;
        for _ in 0..k {
            for i in 0..2_000_000u64 {
                spin = std::hint::black_box(spin.wrapping_add(i));
            }
            session.run(vec![("x", Tensor::from_f32(&[1], &[x as f32]))])?;
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        BatchBuilder::new()
            .text("outcome", vec![format!("k = {k}"); input.num_rows()])
            .build()
    }
}

cordon_guest::export_model!(UsageModulator);
