//! Wall time: sleeps (a WASI monotonic-clock subscription, blocked on in the host) for a
//! century, again and again. Epoch interruption only stops wasm code, so only the host's
//! deadline on the sleep itself can end this run on time.

use cordon_guest::{Batch, Model, ModelError, ModelInfo};

struct SleepForever;

impl Model for SleepForever {
    fn describe() -> ModelInfo {
        ModelInfo::new("sleep-forever", "0.0.0", "never wakes")
    }

    fn score(_input: &Batch) -> Result<Batch, ModelError> {
        loop {
            std::thread::sleep(std::time::Duration::from_secs(100 * 365 * 24 * 3600));
        }
    }
}

cordon_guest::export_model!(SleepForever);
