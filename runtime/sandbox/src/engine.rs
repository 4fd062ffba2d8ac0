//! The wasmtime engine: one per process, configured once, shared by every run and instance.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use cordon_config::policy::{MAX_GUEST_MEMORY, MAX_INSTANCES};

/// How often the epoch advances: the granularity of the wall-time limit.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// The engine and the thread that advances its epoch.
pub struct SandboxEngine {
    pub engine: Engine,
    stop_ticker: Arc<AtomicBool>,
}

impl SandboxEngine {
    /// The engine configuration does not depend on any policy, so compiled components can be
    /// cached and shared across runs; per-run limits are enforced per store.
    pub fn new() -> wasmtime::Result<SandboxEngine> {
        let mut pool = PoolingAllocationConfig::default();
        // Each Rust component instance holds a few core instances, one or two memories and a
        // few tables; size the pool for MAX_INSTANCES of them with room to spare.
        pool.total_component_instances(MAX_INSTANCES * 2)
            .total_core_instances(MAX_INSTANCES * 2 * 8)
            .total_memories(MAX_INSTANCES * 2 * 2)
            .total_tables(MAX_INSTANCES * 2 * 8)
            .max_memory_size(usize::try_from(MAX_GUEST_MEMORY.bytes()).unwrap_or(usize::MAX));

        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .consume_fuel(true)
            .epoch_interruption(true)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&config)?;

        let stop_ticker = Arc::new(AtomicBool::new(false));
        let ticker_engine = engine.weak();
        let stop = Arc::clone(&stop_ticker);
        std::thread::Builder::new()
            .name("cordon-epoch".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    match ticker_engine.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => break,
                    }
                }
            })?;
        Ok(SandboxEngine {
            engine,
            stop_ticker,
        })
    }
}

impl Drop for SandboxEngine {
    fn drop(&mut self) {
        self.stop_ticker.store(true, Ordering::Relaxed);
    }
}
