//! The sandbox: wasmtime's component model with no ambient authority and hard limits.
//!
//! What a guest gets, and nothing more:
//! - WASI linked but locked down: no preopened directories, no environment, no arguments, no
//!   sockets or name lookup (every address is denied), stdin empty, stdout discarded, stderr
//!   captured into a small buffer that is shown (escaped) only when the guest traps, and clocks
//!   rounded to [`CLOCK_RESOLUTION`].
//! - `cordon:model/log`, bounded, and Cordon's own wasi:nn (see [`crate::nn`]).
//!
//! Limits: linear memory through [`GuestLimiter`], CPU through fuel per `score` call, wall time
//! through epoch interruption, tensors and handles through the wasi:nn host. A
//! [`scorer::Scorer`] is one instance with all of them applied, and its output validated.

mod cache;
mod clocks;
pub mod domain;
mod encoders;
mod engine;
mod limits;
mod log;
pub mod nn;
pub mod scorer;
mod settings;

use std::time::{Duration, Instant};

use wasmtime::component::{HasData, Linker, ResourceTable};
use wasmtime::{ResourceLimiter, Store};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{HostMonotonicClock, WasiCtx, WasiCtxView, WasiView};

pub use cache::{CacheDirError, CacheOutcome, CompileCache, WASMTIME_VERSION};
pub use clocks::CLOCK_RESOLUTION;
pub use encoders::GuestEncoders;
pub use engine::{EPOCH_TICK, SandboxEngine};
pub use limits::LimitExceeded;
pub use log::{GuestLog, LogRecord, MAX_LOG_MESSAGE_BYTES, MAX_LOG_RECORDS};
pub use settings::GuestSettings;

use crate::nn::jail::WorkerError;
use crate::nn::{InferenceStopped, NnState};
use cordon_contract::data;

pub use cordon_contract::{bindings, bindings_0_2, bindings_0_3};

use bindings::cordon::model::types as wit;

/// Bytes of guest stderr kept for the error message when a guest traps (a Rust panic message
/// fits); the rest is dropped so a guest cannot fill host memory through stderr.
pub const MAX_STDERR_BYTES: usize = 4096;

/// Most table elements a guest may grow a table to.
pub const MAX_TABLE_ELEMENTS: u64 = 100_000;

/// Enforces the guest's memory cap across all its linear memories and records the peak.
pub struct GuestLimiter {
    memory_limit: u64,
    memory_in_use: u64,
    pub peak_memory: u64,
}

impl GuestLimiter {
    /// Bytes of linear memory the guest may hold.
    pub fn memory_limit(&self) -> u64 {
        self.memory_limit
    }

    pub fn new(memory_limit: u64) -> Self {
        GuestLimiter {
            memory_limit,
            memory_in_use: 0,
            peak_memory: 0,
        }
    }
}

impl ResourceLimiter for GuestLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let growth = desired.saturating_sub(current) as u64;
        let total = self.memory_in_use.saturating_add(growth);
        if total > self.memory_limit {
            // Trap rather than fail the grow: a Rust guest aborts on a failed allocation anyway,
            // and the trap carries a message that names the limit.
            return Err(wasmtime::Error::new(LimitExceeded::Memory {
                limit: self.memory_limit,
                requested: total,
            }));
        }
        self.memory_in_use = total;
        self.peak_memory = self.peak_memory.max(total);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired as u64 > MAX_TABLE_ELEMENTS {
            return Err(wasmtime::Error::new(LimitExceeded::Table {
                limit: MAX_TABLE_ELEMENTS,
                requested: desired as u64,
            }));
        }
        Ok(true)
    }
}

/// Everything one sandbox instance owns.
pub struct GuestState {
    wasi: WasiCtx,
    wasi_table: ResourceTable,
    /// The same clock the guest reads through WASI, for `subscribe-instant`.
    monotonic: clocks::CoarseMonotonicClock,
    stderr: MemoryOutputPipe,
    pub nn: NnState,
    pub log: GuestLog,
    /// What `cordon:model/settings` answers: empty unless the scorer sets it.
    pub settings: GuestSettings,
    /// What `cordon:model/encoders` answers: empty unless the scorer sets it.
    pub encoders: GuestEncoders,
    pub limiter: GuestLimiter,
}

impl GuestState {
    /// The guest's monotonic clock now, in nanoseconds since the instance started.
    fn monotonic_now(&self) -> u64 {
        self.monotonic.now()
    }

    /// When the run must end; WASI sleeps and polls wake by then (see `clocks`).
    pub fn deadline(&self) -> Instant {
        self.nn.deadline
    }

    pub fn new(nn: NnState, memory_limit: u64) -> Self {
        let stderr = MemoryOutputPipe::new(MAX_STDERR_BYTES);
        let mut wasi = WasiCtx::builder();
        // Not calling inherit_* / preopened_dir / env / args is what keeps files, environment
        // and arguments out; the calls below close what the builder would otherwise allow.
        wasi.stdout(wasmtime_wasi::p2::pipe::SinkOutputStream)
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .socket_addr_check(deny_every_socket_address)
            .wall_clock(clocks::CoarseWallClock);
        let monotonic = clocks::CoarseMonotonicClock::new();
        wasi.monotonic_clock(monotonic.clone());
        GuestState {
            wasi: wasi.build(),
            wasi_table: ResourceTable::new(),
            monotonic,
            stderr,
            nn,
            log: GuestLog::default(),
            settings: GuestSettings::default(),
            encoders: GuestEncoders::default(),
            limiter: GuestLimiter::new(memory_limit),
        }
    }

    /// What the guest wrote to stderr, line by line, each with control characters and
    /// bidirectional overrides escaped so that it cannot drive or reorder the consumer's
    /// terminal. Lines are kept apart by `\n` for the caller to mark as the model's.
    pub fn stderr_text(&self) -> String {
        let bytes = self.stderr.contents();
        String::from_utf8_lossy(&bytes)
            .trim_end()
            .lines()
            .map(|line| sanitize(line, MAX_STDERR_BYTES))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl WasiView for GuestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.wasi_table,
        }
    }
}

struct HasNn;

impl HasData for HasNn {
    type Data<'a> = &'a mut NnState;
}

struct HasLog;

impl HasData for HasLog {
    type Data<'a> = &'a mut GuestLog;
}

struct HasSettings;

impl HasData for HasSettings {
    type Data<'a> = &'a mut GuestSettings;
}

struct HasEncoders;

impl HasData for HasEncoders {
    type Data<'a> = &'a mut GuestEncoders;
}

/// The linker every instance of a run is made from: locked-down WASI, wasi:nn, log, settings
/// and encoders, for every contract version served (each version's interfaces have their own
/// names, so one linker serves them all).
pub fn linker(engine: &wasmtime::Engine) -> wasmtime::Result<Linker<GuestState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
    // WASI's own clock subscriptions would let a guest sleep in a host call past the run's
    // deadline, where epoch interruption cannot reach it; these wake by the deadline.
    linker.allow_shadowing(true);
    clocks::add_deadline_subscriptions(&mut linker)?;
    linker.allow_shadowing(false);
    use bindings::wasi::nn;
    nn::errors::add_to_linker::<GuestState, HasNn>(&mut linker, |s| &mut s.nn)?;
    nn::tensor::add_to_linker::<GuestState, HasNn>(&mut linker, |s| &mut s.nn)?;
    nn::inference::add_to_linker::<GuestState, HasNn>(&mut linker, |s| &mut s.nn)?;
    nn::graph::add_to_linker::<GuestState, HasNn>(&mut linker, |s| &mut s.nn)?;
    bindings::cordon::model::log::add_to_linker::<GuestState, HasLog>(&mut linker, |s| &mut s.log)?;
    bindings::cordon::model::settings::add_to_linker::<GuestState, HasSettings>(
        &mut linker,
        |s| &mut s.settings,
    )?;
    bindings::cordon::model::encoders::add_to_linker::<GuestState, HasEncoders>(
        &mut linker,
        |s| &mut s.encoders,
    )?;
    bindings_0_3::cordon::model::log::add_to_linker::<GuestState, HasLog>(&mut linker, |s| {
        &mut s.log
    })?;
    bindings_0_3::cordon::model::settings::add_to_linker::<GuestState, HasSettings>(
        &mut linker,
        |s| &mut s.settings,
    )?;
    bindings_0_2::cordon::model::log::add_to_linker::<GuestState, HasLog>(&mut linker, |s| {
        &mut s.log
    })?;
    Ok(linker)
}

/// A component linked to this host, ready to instantiate, at the contract version it speaks.
pub enum ModelPre {
    Current(bindings::ModelPre<GuestState>),
    /// Contract 0.3.0, served beside the current one.
    V0_3(bindings_0_3::ModelPre<GuestState>),
    /// Contract 0.2.0, served beside the current one.
    V0_2(bindings_0_2::ModelPre<GuestState>),
}

impl ModelPre {
    /// Links `component`, which exports the scorer at contract `version` (see
    /// [`cordon_contract::world::ComponentWorld::contract_version`]).
    pub fn new(
        linker: &Linker<GuestState>,
        component: &wasmtime::component::Component,
        version: &str,
    ) -> wasmtime::Result<ModelPre> {
        let pre = linker.instantiate_pre(component)?;
        Ok(match version {
            "0.2.0" => ModelPre::V0_2(bindings_0_2::ModelPre::new(pre)?),
            "0.3.0" => ModelPre::V0_3(bindings_0_3::ModelPre::new(pre)?),
            _ => ModelPre::Current(bindings::ModelPre::new(pre)?),
        })
    }
}

impl From<bindings::ModelPre<GuestState>> for ModelPre {
    fn from(pre: bindings::ModelPre<GuestState>) -> ModelPre {
        ModelPre::Current(pre)
    }
}

/// An instance's exports, at its contract version.
enum Model {
    Current(bindings::Model),
    V0_3(bindings_0_3::Model),
    V0_2(bindings_0_2::Model),
}

/// One running model instance and its store.
pub struct Instance {
    pub store: Store<GuestState>,
    model: Model,
    fuel_consumed: u64,
}

/// How a `score` call failed.
#[derive(Debug)]
pub enum CallError {
    /// What the model returned is malformed (text offsets that do not fit its bytes).
    Output(String),
    /// The model returned its `model-error`.
    Model(String),
    /// The call trapped: a broken limit, a guest panic, or a host fault.
    Trap(wasmtime::Error),
}

impl Instance {
    /// Instantiates a model with fuel for its start-up and the given wall-clock deadline.
    pub fn new(
        engine: &wasmtime::Engine,
        pre: &ModelPre,
        state: GuestState,
        fuel: u64,
        deadline: Instant,
    ) -> wasmtime::Result<Instance> {
        // What one call may copy out of the guest (a text column, a tensor) is bounded by what
        // the guest's memory can hold, not wasmtime's default of 128 MiB: the policy's one
        // number says both, and running past it is reported as that limit.
        let copy_limit = usize::try_from(state.limiter.memory_limit()).unwrap_or(usize::MAX);
        let mut store = Store::new(engine, state);
        store.limiter(|state| &mut state.limiter);
        store.set_hostcall_fuel(copy_limit);
        store.set_fuel(fuel)?;
        set_deadline(&mut store, deadline);
        let model = match pre {
            ModelPre::Current(pre) => Model::Current(pre.instantiate(&mut store)?),
            ModelPre::V0_3(pre) => Model::V0_3(pre.instantiate(&mut store)?),
            ModelPre::V0_2(pre) => Model::V0_2(pre.instantiate(&mut store)?),
        };
        let fuel_consumed = fuel.saturating_sub(store.get_fuel().unwrap_or(0));
        Ok(Instance {
            store,
            model,
            fuel_consumed,
        })
    }

    /// Fuel burnt so far by this instance.
    pub fn fuel_consumed(&self) -> u64 {
        self.fuel_consumed
    }

    /// Calls `describe`.
    pub fn describe(&mut self, fuel: u64, deadline: Instant) -> wasmtime::Result<wit::ModelInfo> {
        self.store.set_fuel(fuel)?;
        set_deadline(&mut self.store, deadline);
        let result = match &self.model {
            Model::Current(model) => model.cordon_model_scorer().call_describe(&mut self.store),
            Model::V0_3(model) => model.cordon_model_scorer().call_describe(&mut self.store),
            Model::V0_2(model) => model.cordon_model_scorer().call_describe(&mut self.store),
        };
        self.count_fuel(fuel);
        result
    }

    /// Calls `score` on one batch with `fuel` to burn and the run's deadline.
    pub fn score(
        &mut self,
        batch: data::Batch,
        fuel: u64,
        deadline: Instant,
    ) -> Result<data::Batch, CallError> {
        self.store.set_fuel(fuel).map_err(CallError::Trap)?;
        set_deadline(&mut self.store, deadline);
        let input = to_wit(batch);
        let result = match &self.model {
            Model::Current(model) => model
                .cordon_model_scorer()
                .call_score(&mut self.store, &input),
            Model::V0_3(model) => model
                .cordon_model_scorer()
                .call_score(&mut self.store, &input),
            Model::V0_2(model) => model
                .cordon_model_scorer()
                .call_score(&mut self.store, &input),
        };
        self.count_fuel(fuel);
        match result {
            Ok(Ok(output)) => from_wit(output).map_err(CallError::Output),
            Ok(Err(error)) => Err(CallError::Model(model_error_text(&error))),
            Err(trap) => Err(CallError::Trap(trap)),
        }
    }

    fn count_fuel(&mut self, given: u64) {
        let left = self.store.get_fuel().unwrap_or(0);
        self.fuel_consumed = self
            .fuel_consumed
            .saturating_add(given.saturating_sub(left));
    }
}

/// The WASI context's socket address check: every address, for every use, is refused. It is
/// the second line of defence behind [`crate::world`], which refuses a component that imports
/// wasi:sockets at all; should a guest reach a socket anyway (a linker change, a wasmtime
/// default that moves), it still cannot bind, connect or send to anything.
fn deny_every_socket_address(
    _address: std::net::SocketAddr,
    _use: wasmtime_wasi::sockets::SocketAddrUse,
) -> std::pin::Pin<Box<dyn Future<Output = bool> + Send + Sync>> {
    Box::pin(async { false })
}

fn set_deadline(store: &mut Store<GuestState>, deadline: Instant) {
    store.data_mut().nn.deadline = deadline;
    let remaining = deadline.saturating_duration_since(Instant::now());
    let ticks = (remaining.as_millis() / EPOCH_TICK.as_millis().max(1)) as u64;
    store.set_epoch_deadline(ticks.max(1));
}

fn model_error_text(error: &wit::ModelError) -> String {
    let (kind, message) = match error {
        wit::ModelError::InvalidInput(m) => ("invalid input", m),
        wit::ModelError::Inference(m) => ("inference failed", m),
        wit::ModelError::Internal(m) => ("internal error", m),
    };
    format!("{kind}: {}", sanitize(message, 2048))
}

/// Guest text made safe for a terminal and a log line (see `cordon_config::names::printable`).
pub use cordon_config::names::printable as sanitize;

/// A batch in the contract's types, as `score` hands it over (public for the benchmarks).
pub fn to_wit(batch: data::Batch) -> wit::Batch {
    wit::Batch {
        num_rows: u32::try_from(batch.num_rows).unwrap_or(u32::MAX),
        columns: batch
            .columns
            .into_iter()
            .map(|c| wit::Column {
                name: c.name,
                values: match c.values {
                    data::ColumnValues::Float64(v) => wit::ColumnValues::Float64(v),
                    data::ColumnValues::Float32(v) => wit::ColumnValues::Float32(v),
                    data::ColumnValues::Int64(v) => wit::ColumnValues::Int64(v),
                    data::ColumnValues::Boolean(v) => wit::ColumnValues::Boolean(v),
                    // Already the boundary's layout: moved, not copied.
                    data::ColumnValues::Text(v) => {
                        let (offsets, bytes) = v.into_parts();
                        wit::ColumnValues::Text(wit::TextValues { offsets, bytes })
                    }
                    data::ColumnValues::Timestamp(v) => wit::ColumnValues::Timestamp(v),
                },
                // One byte per flag, as the contract carries it (the same layout: no copy).
                validity: c.validity.into_iter().map(u8::from).collect(),
            })
            .collect(),
    }
}

/// The model's batch for the host. The model is not trusted: its text layout is checked
/// (offsets in order, inside the buffer, cutting it into UTF-8) before anything reads it.
/// Public for the fuzz target that feeds it hostile batches (`fuzz/`).
pub fn from_wit(batch: wit::Batch) -> Result<data::Batch, String> {
    let columns = batch
        .columns
        .into_iter()
        .map(|c| {
            let values = match c.values {
                wit::ColumnValues::Float64(v) => data::ColumnValues::Float64(v),
                wit::ColumnValues::Float32(v) => data::ColumnValues::Float32(v),
                wit::ColumnValues::Int64(v) => data::ColumnValues::Int64(v),
                wit::ColumnValues::Boolean(v) => data::ColumnValues::Boolean(v),
                wit::ColumnValues::Text(v) => data::ColumnValues::Text(
                    data::TextValues::from_parts(v.offsets, v.bytes)
                        .map_err(|why| format!("text column `{}` is malformed: {why}", c.name))?,
                ),
                wit::ColumnValues::Timestamp(v) => data::ColumnValues::Timestamp(v),
            };
            Ok(data::Column {
                name: c.name,
                values,
                validity: c.validity.into_iter().map(|valid| valid != 0).collect(),
            })
        })
        .collect::<Result<_, String>>()?;
    Ok(data::Batch {
        num_rows: batch.num_rows as usize,
        columns,
    })
}

/// What ended a trapped call, as the run reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrapCause {
    Limit(LimitExceeded),
    OutOfFuel,
    WallTime,
    /// The inference worker died, broke the protocol, or hit its memory cap.
    Inference(WorkerError),
    /// A guest panic, `unreachable`, or a fault: the message, with the guest's stderr.
    Other(String),
}

/// A Rust guest's stack sits at the bottom of linear memory and grows down; running past its
/// end wraps the stack pointer below 0, so the faulting address is just under 4 GiB.
const STACK_WRAP_FLOOR: u64 = 0xFF00_0000;

/// The address and memory size of a memory fault, from wasmtime's description of it (its type
/// is private; its text, "memory fault at wasm address 0x.. in linear memory of size 0x..", is
/// not).
fn memory_fault(error: &wasmtime::Error) -> Option<(u64, u64)> {
    error.chain().find_map(|cause| {
        let text = cause.to_string();
        let rest = text.split("memory fault at wasm address 0x").nth(1)?;
        let (address, rest) = rest.split_once(' ')?;
        let size = rest.strip_prefix("in linear memory of size 0x")?;
        let size: String = size.chars().take_while(char::is_ascii_hexdigit).collect();
        Some((
            u64::from_str_radix(address, 16).ok()?,
            u64::from_str_radix(&size, 16).ok()?,
        ))
    })
}

/// Classifies a trap from a `score` or instantiation call.
pub fn trap_cause(error: &wasmtime::Error, stderr: &str) -> TrapCause {
    if let Some(limit) = error.downcast_ref::<LimitExceeded>() {
        return TrapCause::Limit(limit.clone());
    }
    match error.downcast_ref::<InferenceStopped>() {
        Some(InferenceStopped::WallTime) => return TrapCause::WallTime,
        Some(InferenceStopped::Worker(worker)) => return TrapCause::Inference(worker.clone()),
        None => {}
    }
    // wasmtime's own error type for it is private; its text is the only sign.
    if error
        .chain()
        .any(|cause| cause.to_string().contains("fuel allocated for hostcalls"))
    {
        return TrapCause::Limit(LimitExceeded::HostCopy);
    }
    match error.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::OutOfFuel) => TrapCause::OutOfFuel,
        Some(wasmtime::Trap::Interrupt) => TrapCause::WallTime,
        trap => {
            let fault = memory_fault(error);
            let mut message = match (trap, fault) {
                (Some(wasmtime::Trap::StackOverflow), _) => {
                    "stack overflow: the model recursed deeper than the host's call stack allows"
                        .to_string()
                }
                (_, Some((address, memory_size)))
                    if address >= STACK_WRAP_FLOOR && address >= memory_size =>
                {
                    format!(
                        "stack overflow: the model's stack ran past its bottom (a fault at wasm address 0x{address:x}, just below address 0, where a Rust guest's stack ends; its stack is 1 MiB unless it was built with a larger one)"
                    )
                }
                // A wasm trap: what it was and where it faulted; the backtrace's frames are
                // unnamed function numbers, of no use to the consumer.
                (Some(trap), fault) => match fault {
                    Some((address, memory_size)) => format!(
                        "{trap} (at wasm address 0x{address:x} in linear memory of size 0x{memory_size:x})"
                    ),
                    None => trap.to_string(),
                },
                (None, _) => sanitize(&format!("{error:#}"), 4096),
            };
            if !stderr.is_empty() {
                // Every line of it marked as the model's, so none can pass for the host's.
                message.push_str("\n  the model's stderr:");
                for line in stderr.lines() {
                    message.push_str("\n    | ");
                    message.push_str(&sanitize(line, MAX_STDERR_BYTES));
                }
            }
            TrapCause::Other(message)
        }
    }
}

/// Average of a set of durations, for the summary.
pub fn mean(durations: &[Duration]) -> Duration {
    if durations.is_empty() {
        return Duration::ZERO;
    }
    durations.iter().sum::<Duration>() / durations.len() as u32
}

#[cfg(test)]
mod tests;
