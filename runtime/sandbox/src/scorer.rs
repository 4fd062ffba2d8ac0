//! The scoring engine every driver shares: a [`ScorerTemplate`] (what every sandbox instance of
//! one prepared model is made from, owned and shareable across threads) and the [`Scorer`] it
//! makes (one instance with its limits). A driver only moves batches: `score(Batch) -> Batch`
//! applies fuel, memory, wall time, the tensor budget and output validation, whoever calls it.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cordon_config::grant::OutputGrant;
use cordon_config::manifest::{ColumnType, InputMode};
use cordon_config::policy::Limits;
use cordon_config::units::ByteSize;
use cordon_contract::data::{Batch, Column, ColumnValues};

use crate::domain::{DomainCheck, OutOfDomainValue};
use crate::nn::jail::{JailConfig, JailLayers, WorkerError};
use crate::nn::{GraphRegistry, GuestGraphs, NnState};
use crate::{
    CallError, GuestState, Instance, LimitExceeded, LogRecord, TrapCause, sanitize, trap_cause,
};

/// How scoring failed: what the model did, or which limit stopped it. A driver adds where (the
/// batch, the request) when it reports it.
#[derive(Debug, thiserror::Error)]
pub enum ScoreError {
    /// What the model returned breaks the contract or the policy's output rules.
    #[error("the model's output was refused: {0}")]
    InvalidOutput(String),
    /// The model returned its `model-error`.
    #[error("the model failed: {0}")]
    Model(String),
    #[error("the model broke a limit: {0}")]
    Limit(LimitExceeded),
    #[error(
        "CPU limit: the model burnt all {fuel} fuel of one batch (limits.fuel-per-batch) and was stopped"
    )]
    CpuLimit { fuel: u64 },
    #[error("wall-time limit: the model ran past {limit:?} (limits.wall-time) and was stopped")]
    WallTime { limit: Duration },
    #[error(transparent)]
    Inference(WorkerError),
    #[error("the model trapped: {message}")]
    Trap { message: String },
    /// A value of the batch is outside its column's declared domain, under the policy's
    /// `out-of-domain = "refuse"`: the batch never entered the sandbox.
    #[error("{0}")]
    OutOfDomain(OutOfDomainValue),
}

impl ScoreError {
    /// Names why a call trapped: a broken limit, the deadline, inference, or the model itself.
    fn from_trap(error: wasmtime::Error, stderr: &str, limits: &Limits) -> ScoreError {
        match trap_cause(&error, stderr) {
            TrapCause::Limit(limit) => ScoreError::Limit(limit),
            TrapCause::OutOfFuel => ScoreError::CpuLimit {
                fuel: limits.fuel_per_batch,
            },
            TrapCause::WallTime | TrapCause::Inference(WorkerError::Deadline) => {
                ScoreError::WallTime {
                    limit: limits.wall_time.0,
                }
            }
            TrapCause::Inference(error) => ScoreError::Inference(error),
            TrapCause::Other(message) => ScoreError::Trap { message },
        }
    }
}

/// What every instance of one prepared model is made from: the compiled component linked to
/// this host's imports, its graphs, the policy's limits and the output it may write. Owned, so
/// that any thread of any driver can make scorers from it for as long as it lives.
pub struct ScorerTemplate {
    pub engine: wasmtime::Engine,
    pub pre: crate::ModelPre,
    pub graphs: Arc<GraphRegistry>,
    /// Graphs a guest may build from bytes of its own, when the policy allows it.
    pub guest_graphs: Option<GuestGraphs>,
    /// Present when graphs run in inference workers (one per instance).
    pub jail: Option<JailConfig>,
    pub limits: Limits,
    pub mode: InputMode,
    pub output: OutputGrant,
    /// The manifest's column domains, checked on every batch before the guest sees it.
    pub domains: DomainCheck,
    /// The settings every instance reads (`cordon:model/settings`).
    pub settings: crate::GuestSettings,
    /// The encoders every instance reads (`cordon:model/encoders`).
    pub encoders: crate::GuestEncoders,
}

impl ScorerTemplate {
    /// A new sandbox instance that stops at `deadline`. In a jail it starts its inference
    /// worker first: a worker or graph that cannot start fails here, before any data is read.
    pub fn scorer(self: &Arc<Self>, deadline: Instant) -> Result<Scorer, ScoreError> {
        let limits = &self.limits;
        let mut nn = NnState::new(
            Arc::clone(&self.graphs),
            self.guest_graphs.clone(),
            limits.tensor_bytes.bytes(),
        );
        nn.deadline = deadline;
        if let Some(jail) = &self.jail {
            nn = nn.jailed(jail.clone());
            nn.start_worker().map_err(|error| match error {
                WorkerError::Deadline => ScoreError::WallTime {
                    limit: limits.wall_time.0,
                },
                other => ScoreError::Inference(other),
            })?;
        }
        let mut state = GuestState::new(nn, limits.memory.bytes());
        state.settings = self.settings.clone();
        state.encoders = self.encoders.clone();
        let started = Instant::now();
        // The state moves into the store; a failed instantiation has no stderr worth showing.
        let instance = Instance::new(
            &self.engine,
            &self.pre,
            state,
            limits.fuel_per_batch,
            deadline,
        )
        .map_err(|e| ScoreError::from_trap(e, "", limits))?;
        Ok(Scorer {
            instance,
            template: Arc::clone(self),
            deadline,
            instantiate_time: started.elapsed(),
            out_of_domain: BTreeMap::new(),
        })
    }
}

/// One sandbox instance of a prepared model, with its limits. Not shared: a driver gives each
/// of its threads its own.
pub struct Scorer {
    instance: Instance,
    template: Arc<ScorerTemplate>,
    deadline: Instant,
    instantiate_time: Duration,
    /// Values outside their column's domain passed on under `out-of-domain = "count"`.
    out_of_domain: BTreeMap<String, u64>,
}

impl Scorer {
    /// The model's own description (`describe`), made printable and bounded.
    pub fn describe(&mut self) -> Result<String, ScoreError> {
        let fuel = self.template.limits.fuel_per_batch;
        match self.instance.describe(fuel, self.deadline) {
            Ok(info) => Ok(sanitize(
                &format!("{} {}: {}", info.name, info.version, info.description),
                512,
            )),
            Err(error) => Err(self.trapped(error)),
        }
    }

    /// Scores one batch of granted columns with one batch's fuel, and validates what the model
    /// returns against the declared output.
    pub fn score(&mut self, batch: Batch) -> Result<Batch, ScoreError> {
        let template = Arc::clone(&self.template);
        let limits = &template.limits;
        let input_rows = batch.num_rows;
        // The host's check, on the values exactly as the guest would read them: whichever
        // driver made the batch, nothing outside the declared domains enters unless the
        // policy says to count it.
        if !template.domains.is_empty() {
            template
                .domains
                .apply(&batch, &mut self.out_of_domain)
                .map_err(ScoreError::OutOfDomain)?;
        }
        match self
            .instance
            .score(batch, limits.fuel_per_batch, self.deadline)
        {
            Ok(scored) => validate_output(
                scored,
                input_rows,
                template.mode,
                &template.output,
                limits.output_text_bytes,
            )
            .map_err(ScoreError::InvalidOutput),
            Err(CallError::Output(reason)) => Err(ScoreError::InvalidOutput(reason)),
            Err(CallError::Model(message)) => Err(ScoreError::Model(message)),
            Err(CallError::Trap(error)) => Err(self.trapped(error)),
        }
    }

    /// Moves the instance's deadline: a server's instance lives for many requests, and each
    /// call must stop by the wall time of the requests it scores.
    pub fn set_deadline(&mut self, deadline: Instant) {
        self.deadline = deadline;
    }

    /// What this instance did so far.
    pub fn totals(&self) -> Totals {
        let state = self.instance.store.data();
        let nn = &state.nn.stats;
        Totals {
            fuel_consumed: self.instance.fuel_consumed(),
            peak_memory: state.limiter.peak_memory,
            peak_tensor_bytes: nn.peak_tensor_bytes,
            inference_calls: nn.inference_calls,
            inference_time: nn.inference_time,
            instantiate_times: vec![self.instantiate_time],
            log: state.log.records.clone(),
            log_dropped: state.log.dropped,
            incidents: nn.incidents.clone(),
            calls_by_graph: nn.calls_by_graph.clone(),
            jail: nn.jail.clone(),
            out_of_domain: self.out_of_domain.clone(),
        }
    }

    fn trapped(&self, error: wasmtime::Error) -> ScoreError {
        let stderr = self.instance.store.data().stderr_text();
        ScoreError::from_trap(error, &stderr, &self.template.limits)
    }
}

/// Counts gathered from one instance or, merged, from all of a run's.
#[derive(Debug, Default, Clone)]
pub struct Totals {
    pub fuel_consumed: u64,
    pub peak_memory: u64,
    pub peak_tensor_bytes: u64,
    pub inference_calls: u64,
    pub inference_time: Duration,
    pub instantiate_times: Vec<Duration>,
    pub log: Vec<LogRecord>,
    pub log_dropped: u64,
    pub incidents: Vec<String>,
    pub calls_by_graph: BTreeMap<String, u64>,
    pub jail: Option<JailLayers>,
    /// Per model column, values outside its domain that entered under `out-of-domain = "count"`.
    pub out_of_domain: BTreeMap<String, u64>,
}

impl Totals {
    pub fn merge(&mut self, other: Totals) {
        self.fuel_consumed = self.fuel_consumed.saturating_add(other.fuel_consumed);
        self.peak_memory = self.peak_memory.max(other.peak_memory);
        self.peak_tensor_bytes = self.peak_tensor_bytes.max(other.peak_tensor_bytes);
        self.inference_calls += other.inference_calls;
        self.inference_time += other.inference_time;
        self.instantiate_times.extend(other.instantiate_times);
        self.log.extend(other.log);
        self.log_dropped += other.log_dropped;
        self.incidents.extend(other.incidents);
        for (graph, calls) in other.calls_by_graph {
            *self.calls_by_graph.entry(graph).or_default() += calls;
        }
        if self.jail.is_none() {
            self.jail = other.jail;
        }
        for (column, count) in other.out_of_domain {
            *self.out_of_domain.entry(column).or_default() += count;
        }
    }
}

/// Honest output: exactly the declared columns with their declared types, every column as
/// long as the batch says, and in row mode one output row per input row (in partition mode
/// any number). Columns come back in the manifest's order. Public for the fuzz target that
/// feeds it hostile batches (`fuzz/`).
pub fn validate_output(
    batch: Batch,
    input_rows: usize,
    mode: InputMode,
    output: &OutputGrant,
    max_text: ByteSize,
) -> Result<Batch, String> {
    if mode == InputMode::Row && batch.num_rows != input_rows {
        return Err(format!(
            "row mode needs one output row per input row: {input_rows} rows in, {} out",
            batch.num_rows
        ));
    }
    let mut by_name: HashMap<String, Column> = HashMap::new();
    for column in batch.columns {
        let name = sanitize(&column.name, 80);
        if !output
            .columns
            .iter()
            .any(|c| c.name.as_str() == column.name)
        {
            let declared: Vec<&str> = output.columns.iter().map(|c| c.name.as_str()).collect();
            return Err(format!(
                "column `{name}` is not declared for output `{}` (declared: {})",
                output.name,
                declared.join(", ")
            ));
        }
        check_column_shape(&column, &name, batch.num_rows, max_text)?;
        if by_name.insert(column.name.clone(), column).is_some() {
            return Err(format!("column `{name}` appears twice"));
        }
    }
    let mut columns = Vec::with_capacity(output.columns.len());
    for spec in &output.columns {
        let column = by_name
            .remove(spec.name.as_str())
            .ok_or_else(|| format!("declared column `{}` is missing", spec.name))?;
        let found: ColumnType = column.values.column_type();
        if found != spec.ty {
            return Err(format!(
                "column `{}` is {found}, but the manifest declares {}",
                spec.name, spec.ty
            ));
        }
        columns.push(column);
    }
    Ok(Batch {
        num_rows: batch.num_rows,
        columns,
    })
}

/// One output column: as many values and validity flags as the batch has rows, and no text
/// value over `limits.output-text-bytes` (one value may not carry a flood into the consumer's
/// files).
fn check_column_shape(
    column: &Column,
    name: &str,
    rows: usize,
    max_text: ByteSize,
) -> Result<(), String> {
    if column.values.len() != rows {
        return Err(format!(
            "column `{name}` has {} values for {rows} rows",
            column.values.len(),
        ));
    }
    if !column.validity.is_empty() && column.validity.len() != rows {
        return Err(format!(
            "column `{name}` has {} validity flags for {rows} rows",
            column.validity.len(),
        ));
    }
    if let ColumnValues::Text(text) = &column.values
        && let Some((row, value)) = text
            .iter()
            .enumerate()
            .find(|(_, value)| value.len() as u64 > max_text.bytes())
    {
        return Err(format!(
            "column `{name}`, row {} of the batch: a text value of {} bytes is over limits.output-text-bytes (\"{max_text}\")",
            row + 1,
            value.len()
        ));
    }
    Ok(())
}
