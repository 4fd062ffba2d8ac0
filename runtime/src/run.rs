//! One run: package + policy + table in, validated scores out.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, unbounded};

use serde_json::json;
use sha2::Digest;

use crate::audit::{self, AuditError, AuditLog};
use crate::data::{Batch, DataError, HeldBack, KeyedBatch};
use crate::grant::{Grant, GrantError, OutputGrant};
use crate::manifest::{ColumnType, Device, InputMode};
use crate::nn::graph_info::{self, AdmissionRules};
use crate::nn::jail::{JailConfig, WorkerError};
use crate::nn::onnx::{LoadedGraph, OnnxRuntime, OnnxRuntimeError, SessionOptions};
use crate::nn::{GraphRegistry, GuestGraphs, NnState};
use crate::package::{Package, PackageError};
use crate::policy::{AuditPolicy, Isolation, Policy, PolicyError};
use crate::sandbox::{
    self, CacheOutcome, CallError, CompileCache, GuestState, Instance, LimitExceeded, LogRecord,
    SandboxEngine, TrapCause, bindings,
};
use crate::signing::{self, Verified, VerifyError};
use crate::sink::Sink;
use crate::source::{PartitionRead, TableSource};
use crate::usage::{self, PackageIdentity, RunCounts, UsageError, UsageRecord};
use crate::world::{ComponentWorld, WorldError};

/// Everything that can end a run. Only `main` turns it into an exit code.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Package(#[from] PackageError),
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error(transparent)]
    Grant(#[from] GrantError),
    #[error(transparent)]
    Signature(#[from] VerifyError),
    #[error("{package}: {component} was refused: {why}")]
    Component {
        package: String,
        component: String,
        why: WorldError,
    },
    #[error(transparent)]
    Data(#[from] DataError),
    #[error(transparent)]
    OnnxRuntime(#[from] OnnxRuntimeError),
    #[error("the package has graphs, but no ONNX Runtime library was configured")]
    NoOnnxRuntime,
    #[error("graph `{graph}` was refused before it reached ONNX Runtime: {why}")]
    GraphRefused { graph: String, why: String },
    #[error(transparent)]
    Inference(WorkerError),
    #[error("the model broke a limit: {0}")]
    Limit(LimitExceeded),
    #[error(
        "CPU limit: the model burnt all {fuel} fuel of one batch (limits.fuel-per-batch) and was stopped"
    )]
    CpuLimit { fuel: u64 },
    #[error(
        "wall-time limit: the run took longer than {limit:?} (limits.wall-time) and was stopped"
    )]
    WallTime { limit: Duration },
    #[error("the model trapped: {message}")]
    Trap { message: String },
    #[error("the model failed batch {batch} (rows {first_row}..): {message}")]
    Model {
        batch: u64,
        first_row: u64,
        message: String,
    },
    #[error("the model's output for batch {batch} was refused: {reason}")]
    InvalidOutput { batch: u64, reason: String },
    #[error("output-rows limit: the run would write more than {limit} rows (limits.output-rows)")]
    OutputRows { limit: u64 },
    #[error("cannot compile the model's component")]
    Compile(#[source] anyhow::Error),
    #[error(
        "cannot prepare the model's instances (does the component export {}@{}?)",
        crate::world::SCORER_EXPORT,
        crate::world::CONTRACT_VERSION
    )]
    Link(#[source] anyhow::Error),
    #[error(transparent)]
    Audit(#[from] AuditError),
    #[error(transparent)]
    Usage(#[from] UsageError),
    /// A compile cache directory or key another user could have written or read.
    #[error(transparent)]
    CacheDir(#[from] sandbox::CacheDirError),
    #[error("internal error: {0}")]
    Internal(String),
}

impl RunError {
    /// For errors that are a refusal of the model or of the package, what was refused: the
    /// audit trail records those as denials.
    fn denial_kind(&self) -> Option<&'static str> {
        match self {
            RunError::Grant(_) => Some("grant"),
            RunError::Signature(_) => Some("signature"),
            RunError::Component { .. } => Some("component"),
            RunError::GraphRefused { .. } => Some("graph"),
            RunError::Limit(_)
            | RunError::CpuLimit { .. }
            | RunError::WallTime { .. }
            | RunError::Inference(WorkerError::Memory { .. })
            | RunError::OutputRows { .. } => Some("limit"),
            RunError::Inference(_) => Some("inference"),
            RunError::InvalidOutput { .. } => Some("output"),
            RunError::Data(DataError::OutputBytes { .. }) => Some("limit"),
            RunError::Data(DataError::NonFinite { .. }) => Some("output"),
            _ => None,
        }
    }

    fn from_trap(error: wasmtime::Error, stderr: &str, fuel: u64, wall_time: Duration) -> Self {
        match sandbox::trap_cause(&error, stderr) {
            TrapCause::Limit(limit) => RunError::Limit(limit),
            TrapCause::OutOfFuel => RunError::CpuLimit { fuel },
            TrapCause::WallTime | TrapCause::Inference(WorkerError::Deadline) => {
                RunError::WallTime { limit: wall_time }
            }
            TrapCause::Inference(error) => RunError::Inference(error),
            TrapCause::Other(message) => RunError::Trap { message },
        }
    }
}

/// Loads the package and checks its signature against the policy's `[trust]`; an unsigned
/// package passes only with `allow_unsigned` (then without a `Verified`).
fn load_verified(
    request: &RunRequest,
    policy: &Policy,
) -> Result<(Package, Option<Verified>), RunError> {
    let package = Package::load(&request.package_dir)?;
    let trusted = policy.trusted_keys(&package.manifest.publisher);
    let signature = match signing::verify(&package, trusted) {
        Ok(verified) => Some(verified),
        Err(VerifyError::Unsigned { .. }) if request.allow_unsigned => None,
        Err(error) => return Err(error.into()),
    };
    Ok((package, signature))
}

/// Reads what the component imports and exports before it is compiled: a model that asks for
/// the network, or for anything this host does not offer, never gets that far.
fn check_component(package: &Package) -> Result<(), RunError> {
    ComponentWorld::read(&package.component)
        .and_then(|world| world.check(package.manifest.input.mode))
        .map_err(|why| RunError::Component {
            package: package.path.display().to_string(),
            component: package.manifest.component.clone(),
            why,
        })
}

/// Refuses the run if graph admission refuses any of the package's graphs.
fn admit_graphs(package: &Package, rules: &AdmissionRules) -> Result<(), RunError> {
    for graph in &package.graphs {
        let refusals = match graph_info::read(&graph.bytes) {
            Ok(info) => graph_info::admit(&info, rules)
                .iter()
                .map(ToString::to_string)
                .collect(),
            Err(error) => vec![error.to_string()],
        };
        if !refusals.is_empty() {
            return Err(RunError::GraphRefused {
                graph: graph.spec.name.to_string(),
                why: refusals.join("; "),
            });
        }
    }
    Ok(())
}

/// Process-wide settings: where ONNX Runtime is and where compiled components are cached.
#[derive(Debug, Clone, Default)]
pub struct RuntimeConfig {
    /// `libonnxruntime.so`; required for packages with graphs.
    pub onnxruntime: Option<PathBuf>,
    /// Compile cache directory; `None` compiles every run.
    pub cache_dir: Option<PathBuf>,
    /// The `cordon` binary that inference workers are started from; `None` is this process's
    /// own executable (right for `cordon` itself; a library user names the binary).
    pub inference_worker: Option<PathBuf>,
    /// Test hook: let graphs through without admission, to show what the jail alone stops.
    /// Never set by `cordon`; not part of the supported interface.
    #[doc(hidden)]
    pub skip_graph_admission_for_tests: bool,
}

/// What to run.
#[derive(Debug, Clone)]
pub struct RunRequest {
    pub package_dir: PathBuf,
    pub policy: PathBuf,
    /// Relative paths in the policy are resolved against this directory.
    pub base_dir: PathBuf,
    /// The policy role to run as; required when the policy defines roles.
    pub role: Option<String>,
    /// Run a package without a valid signature (local development only).
    pub allow_unsigned: bool,
}

/// Told about progress as rows are written.
pub trait Progress: Sync {
    fn rows_written(&self, _rows: u64) {}
}

/// No progress reporting.
pub struct Quiet;

impl Progress for Quiet {}

/// What a run did: counts and timings, never data values.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunSummary {
    /// Identifies the run in the audit trail and the usage ledger.
    pub run_id: String,
    pub package: String,
    pub version: String,
    pub publisher: String,
    pub component_sha256: String,
    /// The package's digest over all its files (the signed root digest).
    pub package_digest: String,
    /// Who signed the package, or `None` when it ran unsigned under `allow_unsigned`.
    pub signature: Option<Verified>,
    pub model_description: String,
    pub input: String,
    pub output: String,
    pub sink: PathBuf,
    pub rows_in: u64,
    pub rows_out: u64,
    /// Calls to `score`: batches in row mode, partitions in partition mode.
    pub batches: u64,
    /// Partition mode: how many partitions were scored (0 in row mode).
    pub partitions: u64,
    pub instances: u32,
    pub wall_time_s: f64,
    pub rows_per_second: f64,
    /// Start-up: from the start of this run to the first batch handed to a sandbox (policy,
    /// package and signature, query plan, compile or cache, graphs, instantiation). `None`
    /// when no batch was scored.
    pub first_batch_ms: Option<f64>,
    /// The one-time setup of the `Runtime` this run used (ONNX Runtime loaded, engine built):
    /// for `cordon run`, the rest of the process's start-up before the run.
    pub runtime_setup_ms: f64,
    pub fuel_consumed: u64,
    pub peak_guest_memory_bytes: u64,
    /// The whole `cordon` process's peak resident memory at the end of the run (Linux).
    pub host_peak_rss_bytes: u64,
    pub peak_tensor_bytes: u64,
    pub inference_calls: u64,
    pub inference_time_s: f64,
    pub compile: CacheOutcome,
    pub compile_time_ms: f64,
    pub instantiate_time_us: f64,
    pub graphs: Vec<String>,
    /// Where the graphs ran: `in-process`, or `jail` with the layers the workers reported.
    pub inference_isolation: String,
    pub guest_log: Vec<LogRecord>,
    pub guest_log_dropped: u64,
    pub incidents: Vec<String>,
    pub audit_log: Option<PathBuf>,
    /// Hash of the last audit line this run wrote.
    pub audit_head: Option<String>,
}

/// What the audit trail and usage record need, gathered as the run goes.
#[derive(Default)]
struct RunFacts {
    package: Option<PackageIdentity>,
    rows_in: u64,
    rows_out: u64,
    batches: u64,
    partitions: u64,
    totals: Totals,
}

/// The run's audit log, if the policy asks for one.
struct Trail {
    log: Option<AuditLog>,
}

impl Trail {
    fn open(audit: Option<&AuditPolicy>, run_id: &str) -> Result<Trail, RunError> {
        let log = match audit {
            Some(audit) => Some(AuditLog::open(&audit.log, run_id)?),
            None => None,
        };
        Ok(Trail { log })
    }

    fn record(&mut self, event: &str, fields: serde_json::Value) -> Result<(), RunError> {
        match &mut self.log {
            Some(log) => Ok(log.append(event, fields)?),
            None => Ok(()),
        }
    }

    fn head(&self) -> Option<String> {
        self.log.as_ref().map(|log| log.head().to_owned())
    }
}

/// A run id: 128 bits from the clock, the process id and a counter, hashed.
fn new_run_id() -> String {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let seed = format!("{nanos}-{}-{count}", std::process::id());
    let digest = sha2::Sha256::digest(seed.as_bytes());
    hex::encode(digest.get(..16).unwrap_or_default())
}

type GraphKey = (String, SessionOptions);

/// The process's sandbox: one engine, one ONNX Runtime, one compile cache, and the graphs
/// loaded so far. Create it once and run any number of packages with it.
pub struct Runtime {
    engine: SandboxEngine,
    onnxruntime: Option<OnnxRuntime>,
    cache: CompileCache,
    /// Graphs by content digest and session options, loaded once per process.
    graphs: Mutex<HashMap<GraphKey, Arc<LoadedGraph>>>,
    /// Drives DataFusion's reads.
    tokio: Arc<tokio::runtime::Runtime>,
    /// How long `new` took, reported with each run's start-up.
    setup_time: Duration,
    /// The binary inference workers run from.
    inference_worker: PathBuf,
    skip_graph_admission: bool,
}

impl Runtime {
    /// Starts the engine and loads ONNX Runtime, so that a missing library fails here.
    pub fn new(config: RuntimeConfig) -> Result<Runtime, RunError> {
        let started = Instant::now();
        let engine = SandboxEngine::new()
            .map_err(|e| RunError::Internal(format!("cannot start wasmtime: {e:#}")))?;
        let onnxruntime = match &config.onnxruntime {
            Some(path) => Some(OnnxRuntime::load(path)?),
            None => None,
        };
        let tokio = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("cordon-data")
            // Tasks run here parse the consumer's files; tokio turns a panic in one into an
            // error that DataFusion reports, so the default hook's message is only noise.
            .on_thread_start(crate::panics::silence_this_thread)
            .enable_all()
            .build()
            .map_err(|e| {
                RunError::Internal(format!("cannot start the data plane's runtime: {e}"))
            })?;
        let inference_worker = match config.inference_worker {
            Some(path) => path,
            None => std::env::current_exe().map_err(|e| {
                RunError::Internal(format!(
                    "cannot find this program for inference workers: {e}"
                ))
            })?,
        };
        Ok(Runtime {
            engine,
            onnxruntime,
            cache: CompileCache::new(config.cache_dir)?,
            graphs: Mutex::new(HashMap::new()),
            tokio: Arc::new(tokio),
            setup_time: started.elapsed(),
            inference_worker,
            skip_graph_admission: config.skip_graph_admission_for_tests,
        })
    }

    /// The loaded ONNX Runtime's version, if any.
    pub fn onnxruntime_version(&self) -> Option<&str> {
        self.onnxruntime.as_ref().map(|o| o.version.as_str())
    }

    /// Runs one package on one table under one policy, with its audit trail and usage record.
    pub fn run(
        &self,
        request: &RunRequest,
        progress: &dyn Progress,
    ) -> Result<RunSummary, RunError> {
        let started = Instant::now();
        let cpu_at_start = usage::process_cpu_time();
        let run_id = new_run_id();
        // Taken before any guest code runs: the ledger's only time.
        let date = audit::utc_date_now();
        // The policy says where the audit trail goes, so it is read before the trail opens.
        let policy = Policy::load(&request.policy, &request.base_dir)?;
        let mut trail = Trail::open(policy.audit.as_ref(), &run_id)?;

        let mut facts = RunFacts::default();
        let result = self.execute(request, &policy, &mut trail, &mut facts, started, progress);

        let wall_time = started.elapsed();
        if let Err(error) = &result
            && let Some(what) = error.denial_kind()
        {
            trail.record("denial", json!({ "what": what, "why": error.to_string() }))?;
        }
        // What the model steered (fuel, inference calls, time, rows it returned) is for the
        // consumer's own trail; the ledger below gets none of it.
        let totals = &facts.totals;
        trail.record(
            "run-end",
            json!({
                "status": if result.is_ok() { "ok" } else { "error" },
                "error": result.as_ref().err().map(|e| format!("{e}")),
                "rows_in": facts.rows_in,
                "rows_out": facts.rows_out,
                "batches": facts.batches,
                "partitions": facts.partitions,
                "wall_time_s": wall_time.as_secs_f64(),
                "cpu_time_s": usage::process_cpu_time()
                    .saturating_sub(cpu_at_start)
                    .as_secs_f64(),
                "fuel": totals.fuel_consumed,
                "inference_calls": totals.inference_calls,
                "peak_guest_memory_bytes": totals.peak_memory,
            }),
        )?;
        if let (Some(audit), Some(package)) = (&policy.audit, &facts.package) {
            let counts = RunCounts {
                succeeded: result.is_ok(),
                rows_read: facts.rows_in,
                partitions: facts.partitions,
                batches: facts.batches,
            };
            let record = UsageRecord::of_run(package.clone(), &run_id, &date, counts);
            usage::append(&audit.usage, &record)?;
        }
        let mut summary = result?;
        summary.run_id = run_id;
        summary.audit_head = trail.head();
        summary.wall_time_s = wall_time.as_secs_f64();
        summary.rows_per_second = summary.rows_out as f64 / wall_time.as_secs_f64().max(1e-9);
        summary.host_peak_rss_bytes = usage::process_peak_rss();
        Ok(summary)
    }

    /// Everything a run checks before any guest code or row is touched, and nothing more:
    /// the policy, the package and its signature, the grant, and every SQL snippet of the policy
    /// planned against the table's schema. Writes nothing, not even an audit line.
    pub fn check(&self, request: &RunRequest) -> Result<Grant, RunError> {
        let policy = Policy::load(&request.policy, &request.base_dir)?;
        let (package, _) = load_verified(request, &policy)?;
        check_component(&package)?;
        admit_graphs(&package, &policy.admission_rules())?;
        let grant = Grant::resolve(&package.manifest, &policy, request.role.as_deref())?;
        self.open_source(&grant, &policy)?;
        Ok(grant)
    }

    /// The run itself; `facts` keeps what the audit trail and the usage record need even when
    /// it fails.
    fn execute(
        &self,
        request: &RunRequest,
        policy: &Policy,
        trail: &mut Trail,
        facts: &mut RunFacts,
        started: Instant,
        progress: &dyn Progress,
    ) -> Result<RunSummary, RunError> {
        let (package, signature) = match load_verified(request, policy) {
            Ok(loaded) => loaded,
            Err(error) => {
                // What the run was asked to start, for the denial that follows.
                trail.record(
                    "run-start",
                    json!({ "package": request.package_dir, "policy": policy.path }),
                )?;
                return Err(error);
            }
        };
        let manifest = &package.manifest;
        facts.package = Some(PackageIdentity {
            name: manifest.name.to_string(),
            version: manifest.version.clone(),
            publisher: manifest.publisher.to_string(),
            component_sha256: package.component_sha256.clone(),
        });
        trail.record(
            "run-start",
            json!({
                "package": manifest.name,
                "version": manifest.version,
                "publisher": manifest.publisher,
                "component_sha256": package.component_sha256,
                "package_digest": package.digest(),
                "signature": match &signature {
                    Some(verified) => json!(verified),
                    None => json!("unsigned, run with allow-unsigned"),
                },
                "graphs": package.graphs.iter().map(|g| json!({
                    "name": g.spec.name, "sha256": g.sha256,
                })).collect::<Vec<_>>(),
                "policy": policy.path,
                "cordon_version": env!("CARGO_PKG_VERSION"),
            }),
        )?;
        check_component(&package)?;
        if !self.skip_graph_admission {
            admit_graphs(&package, &policy.admission_rules())?;
        }
        let grant = Grant::resolve(manifest, policy, request.role.as_deref())?;
        trail.record(
            "grant",
            json!({
                "role": grant.role,
                "input": grant.input.name,
                "asked": manifest.input.columns.iter().map(|c| &c.name).collect::<Vec<_>>(),
                "granted": grant.input.columns.iter().map(|c| json!({
                    "column": c.model, "source": c.source,
                })).collect::<Vec<_>>(),
                "key_held_back": grant.input.key,
                "output": grant.output.name,
                "sink": grant.output.sink,
                "graphs": grant.graphs.iter().map(|g| json!({
                    "name": g.spec.name, "device": g.device,
                })).collect::<Vec<_>>(),
                "limits": policy.limits,
            }),
        )?;
        let deadline = started + policy.limits.wall_time.0;

        // The query is planned before any guest code is compiled: a filter, mask or column
        // expression that does not fit the table fails here, and no row has been read yet.
        let mut source = self.open_source(&grant, policy)?;

        let compile_started = Instant::now();
        let (component, compile) = self
            .cache
            .load(&self.engine.engine, &package.digest(), &package.component)
            .map_err(|e| RunError::Compile(e.into()))?;
        let compile_time = compile_started.elapsed();

        let graphs = Arc::new(self.load_graphs(&package, &grant, policy)?);
        let guest_graphs = match (&self.onnxruntime, policy.inference.allow_guest_graphs) {
            (Some(runtime), true) => Some(GuestGraphs {
                runtime: runtime.clone(),
                options: SessionOptions {
                    device: Device::Cpu,
                    threads: policy.inference.threads,
                },
                admission: policy.admission_rules(),
            }),
            _ => None,
        };
        let jail = match (&self.onnxruntime, policy.inference.isolation) {
            (Some(runtime), Isolation::Jail) => Some(JailConfig {
                worker_exe: self.inference_worker.clone(),
                onnxruntime: runtime.library.clone(),
                inference_memory: policy.limits.inference_memory.bytes(),
                region_bytes: policy.limits.tensor_bytes.bytes(),
            }),
            _ => None,
        };

        let linker = sandbox::linker(&self.engine.engine).map_err(|e| RunError::Link(e.into()))?;
        let pre = linker
            .instantiate_pre(&component)
            .and_then(bindings::ModelPre::new)
            .map_err(|e| RunError::Link(e.into()))?;

        let setup = InstanceSetup {
            engine: &self.engine.engine,
            pre: &pre,
            graphs,
            guest_graphs,
            jail,
            policy,
            mode: grant.input.mode,
            deadline,
        };
        let sink = Sink::create(&grant.output, &grant.input.key, &policy.limits)?;
        let (scored, totals) = score_all(&setup, &grant, &mut source, sink, progress);
        facts.rows_in = source.rows_read();
        facts.partitions = source.partitions_read().len() as u64;
        facts.totals = totals;
        record_data_read(trail, &grant, facts.rows_in, source.partitions_read())?;
        for incident in &facts.totals.incidents {
            trail.record("denial", json!({ "what": "wasi-nn", "why": incident }))?;
        }
        for (graph, calls) in &facts.totals.calls_by_graph {
            trail.record(
                "inference",
                json!({
                    "graph": graph,
                    "calls": calls,
                    "peak_tensor_bytes": facts.totals.peak_tensor_bytes,
                }),
            )?;
        }
        let scored = scored?;
        facts.rows_out = scored.rows_out;
        facts.batches = scored.batches;
        trail.record(
            "output-write",
            json!({
                "output": grant.output.name,
                "sink": scored.sink,
                "rows": scored.rows_out,
            }),
        )?;

        let totals = &facts.totals;
        Ok(RunSummary {
            run_id: String::new(),
            package: manifest.name.to_string(),
            version: manifest.version.clone(),
            publisher: manifest.publisher.to_string(),
            component_sha256: package.component_sha256.clone(),
            package_digest: package.digest(),
            signature,
            model_description: scored.model_description,
            input: grant.input.name.to_string(),
            output: grant.output.name.to_string(),
            sink: scored.sink,
            rows_in: facts.rows_in,
            rows_out: scored.rows_out,
            batches: scored.batches,
            partitions: facts.partitions,
            instances: policy.limits.instances,
            wall_time_s: 0.0,
            rows_per_second: 0.0,
            first_batch_ms: scored
                .first_batch_at
                .map(|at| at.saturating_duration_since(started).as_secs_f64() * 1e3),
            runtime_setup_ms: self.setup_time.as_secs_f64() * 1e3,
            fuel_consumed: totals.fuel_consumed,
            peak_guest_memory_bytes: totals.peak_memory,
            host_peak_rss_bytes: 0,
            peak_tensor_bytes: totals.peak_tensor_bytes,
            inference_calls: totals.inference_calls,
            inference_time_s: totals.inference_time.as_secs_f64(),
            compile,
            compile_time_ms: compile_time.as_secs_f64() * 1e3,
            instantiate_time_us: sandbox::mean(&totals.instantiate_times).as_secs_f64() * 1e6,
            graphs: grant
                .graphs
                .iter()
                .map(|g| format!("{} on {}", g.spec.name, g.device))
                .collect(),
            inference_isolation: match (&totals.jail, policy.inference.isolation) {
                (Some(layers), _) => format!("jail ({layers})"),
                (None, Isolation::Jail) => "jail (no graph ran)".into(),
                (None, Isolation::InProcess) => "in-process".into(),
            },
            guest_log: totals.log.clone(),
            guest_log_dropped: totals.log_dropped,
            incidents: totals.incidents.clone(),
            audit_log: policy.audit.as_ref().map(|a| a.log.clone()),
            audit_head: None,
        })
    }

    /// Plans the grant's query on its table. SQL of the policy that does not fit the table is
    /// reported as a policy error, at the line of the key that holds it.
    fn open_source(&self, grant: &Grant, policy: &Policy) -> Result<TableSource, RunError> {
        TableSource::open(
            &grant.input,
            policy.limits.batch_rows as usize,
            policy.limits.partition_rows,
            Arc::clone(&self.tokio),
        )
        .map_err(|error| match error {
            DataError::PolicySql(error) => RunError::Policy(error),
            other => RunError::Data(other),
        })
    }

    /// The package's graphs as the policy lets them run, each loaded once per process.
    fn load_graphs(
        &self,
        package: &Package,
        grant: &Grant,
        policy: &Policy,
    ) -> Result<GraphRegistry, RunError> {
        let mut registry = GraphRegistry::new();
        if grant.graphs.is_empty() {
            return Ok(registry);
        }
        let onnxruntime = self.onnxruntime.as_ref().ok_or(RunError::NoOnnxRuntime)?;
        for (granted, packaged) in grant.graphs.iter().zip(&package.graphs) {
            let options = SessionOptions {
                device: granted.device,
                threads: policy.inference.threads,
            };
            if policy.inference.isolation == Isolation::Jail {
                // Sessions are made in each instance's worker, never in this process.
                let graph = LoadedGraph::for_worker(
                    onnxruntime,
                    granted.spec.name.as_str(),
                    Arc::clone(&packaged.bytes),
                    options,
                );
                registry.insert(granted.spec.name.to_string(), Arc::new(graph));
                continue;
            }
            let key = (packaged.sha256.clone(), options);
            let cached = self
                .graphs
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get(&key)
                .cloned();
            let graph = match cached {
                Some(graph) => graph,
                None => {
                    let graph = Arc::new(LoadedGraph::load(
                        onnxruntime,
                        granted.spec.name.as_str(),
                        Arc::clone(&packaged.bytes),
                        options,
                    )?);
                    self.graphs
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .insert(key, Arc::clone(&graph));
                    graph
                }
            };
            registry.insert(granted.spec.name.to_string(), graph);
        }
        Ok(registry)
    }
}

/// The audit trail's record of what entered the sandbox: one `data-read` event for the input in
/// row mode, one per partition in partition mode (with its key and rows).
fn record_data_read(
    trail: &mut Trail,
    grant: &Grant,
    rows: u64,
    partitions: &[PartitionRead],
) -> Result<(), RunError> {
    let input = &grant.input;
    let event = |partition: Option<&PartitionRead>, rows: u64| {
        json!({
            "input": input.name,
            "source": input.source,
            "columns": input.columns.iter().map(|c| json!({
                "column": c.model, "source": c.source, "mask": c.mask, "role_mask": c.role_mask,
            })).collect::<Vec<_>>(),
            "filter": input.filter,
            "role": grant.role,
            "mode": input.mode,
            "partition": partition.map(|p| &p.key),
            "rows": rows,
        })
    };
    match input.mode {
        InputMode::Row => trail.record("data-read", event(None, rows)),
        InputMode::Partition => {
            for partition in partitions {
                trail.record("data-read", event(Some(partition), partition.rows))?;
            }
            Ok(())
        }
    }
}

/// What every instance of a run is made from.
struct InstanceSetup<'a> {
    engine: &'a wasmtime::Engine,
    pre: &'a bindings::ModelPre<GuestState>,
    graphs: Arc<GraphRegistry>,
    guest_graphs: Option<GuestGraphs>,
    /// Present when graphs run in inference workers (one per instance).
    jail: Option<JailConfig>,
    policy: &'a Policy,
    mode: InputMode,
    deadline: Instant,
}

impl InstanceSetup<'_> {
    fn instantiate(&self) -> Result<(Instance, Duration), RunError> {
        let limits = &self.policy.limits;
        let mut nn = NnState::new(
            Arc::clone(&self.graphs),
            self.guest_graphs.clone(),
            limits.tensor_bytes.bytes(),
        );
        nn.deadline = self.deadline;
        if let Some(jail) = &self.jail {
            nn = nn.jailed(jail.clone());
            // Before any data is read: a worker or graph that cannot start fails the run here.
            nn.start_worker().map_err(|error| match error {
                WorkerError::Deadline => RunError::WallTime {
                    limit: limits.wall_time.0,
                },
                other => RunError::Inference(other),
            })?;
        }
        let state = GuestState::new(nn, limits.memory.bytes());
        let started = Instant::now();
        // The state moves into the store; a failed instantiation has no stderr worth showing.
        Instance::new(
            self.engine,
            self.pre,
            state,
            limits.fuel_per_batch,
            self.deadline,
        )
        .map(|instance| (instance, started.elapsed()))
        .map_err(|e| RunError::from_trap(e, "", limits.fuel_per_batch, limits.wall_time.0))
    }
}

/// Counts gathered from every instance.
#[derive(Default)]
struct Totals {
    fuel_consumed: u64,
    peak_memory: u64,
    peak_tensor_bytes: u64,
    inference_calls: u64,
    inference_time: Duration,
    instantiate_times: Vec<Duration>,
    log: Vec<LogRecord>,
    log_dropped: u64,
    incidents: Vec<String>,
    calls_by_graph: BTreeMap<String, u64>,
    jail: Option<crate::nn::jail::JailLayers>,
}

impl Totals {
    /// What one instance did, read from its store when it is done.
    fn of(instance: &Instance, instantiate_time: Duration) -> Totals {
        let state = instance.store.data();
        let nn = &state.nn.stats;
        Totals {
            fuel_consumed: instance.fuel_consumed(),
            peak_memory: state.limiter.peak_memory,
            peak_tensor_bytes: nn.peak_tensor_bytes,
            inference_calls: nn.inference_calls,
            inference_time: nn.inference_time,
            instantiate_times: vec![instantiate_time],
            log: state.log.records.clone(),
            log_dropped: state.log.dropped,
            incidents: nn.incidents.clone(),
            calls_by_graph: nn.calls_by_graph.clone(),
            jail: nn.jail.clone(),
        }
    }

    fn merge(&mut self, other: Totals) {
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
    }
}

enum WorkerMessage {
    Scored { index: u64, batch: Batch },
    Failed(RunError),
    Finished(Box<Totals>),
}

struct Scored {
    rows_out: u64,
    batches: u64,
    /// When the first batch was handed to a sandbox.
    first_batch_at: Option<Instant>,
    sink: PathBuf,
    model_description: String,
}

/// Streams the table through `instances` parallel sandboxes and writes the outputs in input
/// order. Keys stay on this side: workers see only the batch of granted columns.
fn score_all(
    setup: &InstanceSetup<'_>,
    grant: &Grant,
    source: &mut TableSource,
    sink: Sink,
    progress: &dyn Progress,
) -> (Result<Scored, RunError>, Totals) {
    let mut totals = Totals::default();
    let result = score_all_into(setup, grant, source, sink, progress, &mut totals);
    (result, totals)
}

/// `score_all`, gathering the instances' counts into `totals` whether it succeeds or not.
fn score_all_into(
    setup: &InstanceSetup<'_>,
    grant: &Grant,
    source: &mut TableSource,
    mut sink: Sink,
    progress: &dyn Progress,
    totals: &mut Totals,
) -> Result<Scored, RunError> {
    let limits = &setup.policy.limits;
    let instances = limits.instances as usize;

    // Instantiate up front: a model that cannot start fails before any data is read.
    // Side by side: each jailed instance starts an inference worker (a process, ONNX Runtime
    // loaded, its graphs built), which is most of a run's start-up.
    let mut started_instances = std::thread::scope(|scope| {
        let starting: Vec<_> = (0..instances)
            .map(|_| scope.spawn(|| setup.instantiate()))
            .collect();
        starting
            .into_iter()
            .map(|handle| {
                handle.join().unwrap_or_else(|_| {
                    Err(RunError::Internal("starting an instance panicked".into()))
                })
            })
            .collect::<Result<Vec<_>, RunError>>()
    })?;
    let model_description = match started_instances.first_mut() {
        Some((instance, _)) => match instance.describe(limits.fuel_per_batch, setup.deadline) {
            Ok(info) => sandbox::sanitize(
                &format!("{} {}: {}", info.name, info.version, info.description),
                512,
            ),
            Err(error) => {
                let stderr = instance.store.data().stderr_text();
                return Err(RunError::from_trap(
                    error,
                    &stderr,
                    limits.fuel_per_batch,
                    limits.wall_time.0,
                ));
            }
        },
        None => String::new(),
    };

    let (work_tx, work_rx) = bounded::<(u64, u64, Batch)>(instances * 2);
    let (keys_tx, keys_rx) = unbounded::<(u64, HeldBack)>();
    let (result_tx, result_rx) = unbounded::<WorkerMessage>();
    let abort = AtomicBool::new(false);
    let first_batch_at = OnceLock::new();

    let outcome = std::thread::scope(|scope| -> Result<(u64, u64), RunError> {
        for (mut instance, instantiate_time) in started_instances {
            let work_rx = work_rx.clone();
            let result_tx = result_tx.clone();
            let abort = &abort;
            let first_batch_at = &first_batch_at;
            scope.spawn(move || {
                for (index, first_row, batch) in work_rx.iter() {
                    if abort.load(Ordering::Relaxed) {
                        break;
                    }
                    first_batch_at.get_or_init(Instant::now);
                    let message =
                        score_one(setup, &mut instance, index, first_row, batch, &grant.output);
                    let failed = matches!(message, WorkerMessage::Failed(_));
                    let _ = result_tx.send(message);
                    if failed {
                        break;
                    }
                }
                let totals = Totals::of(&instance, instantiate_time);
                let _ = result_tx.send(WorkerMessage::Finished(Box::new(totals)));
            });
        }
        drop(result_tx);
        drop(work_rx);

        // The reader parses the table and feeds the workers. Keys go straight to the writer, in
        // input order, and never to a worker.
        let abort_reader = &abort;
        let reader = scope.spawn(move || -> Result<(), RunError> {
            let mut first_row = 0u64;
            while let Some(KeyedBatch {
                index,
                batch,
                held_back,
            }) = source.next_batch()?
            {
                let rows = batch.num_rows as u64;
                if abort_reader.load(Ordering::Relaxed)
                    || keys_tx.send((index, held_back)).is_err()
                    || work_tx.send((index, first_row, batch)).is_err()
                {
                    break;
                }
                first_row += rows;
            }
            Ok(())
        });

        // The writer (this thread) puts outputs back in input order as they complete.
        let mut first_error: Option<RunError> = None;
        let mut pending: BTreeMap<u64, Batch> = BTreeMap::new();
        let mut next_index = 0u64;
        let mut rows_out = 0u64;
        for message in result_rx.iter() {
            let result = match message {
                WorkerMessage::Scored { index, batch } => {
                    pending.insert(index, batch);
                    let mut writer = OrderedWriter {
                        pending: &mut pending,
                        next_index: &mut next_index,
                        rows_out: &mut rows_out,
                        keys_rx: &keys_rx,
                        sink: &mut sink,
                        output_rows_limit: limits.output_rows,
                    };
                    writer.write_ready(progress)
                }
                WorkerMessage::Failed(error) => Err(error),
                WorkerMessage::Finished(instance_totals) => {
                    totals.merge(*instance_totals);
                    Ok(())
                }
            };
            let result = result.and_then(|()| {
                if Instant::now() > setup.deadline {
                    Err(RunError::WallTime {
                        limit: limits.wall_time.0,
                    })
                } else {
                    Ok(())
                }
            });
            if let Err(error) = result {
                // Stop the reader and the workers; keep the first cause.
                abort.store(true, Ordering::Relaxed);
                pending.clear();
                first_error.get_or_insert(error);
            }
        }
        abort.store(true, Ordering::Relaxed);
        // Unblock a reader waiting on a full work queue: every worker has exited by now.
        let read_result = reader
            .join()
            .unwrap_or_else(|_| Err(RunError::Internal("the table reader panicked".into())));
        if let Some(error) = first_error {
            return Err(error);
        }
        read_result?;
        if !pending.is_empty() {
            return Err(RunError::Internal(format!(
                "{} scored batches were never written",
                pending.len()
            )));
        }
        Ok((rows_out, next_index))
    });

    // On error the sink is dropped here unfinished, which deletes its temporary file.
    let (rows_out, batches) = outcome?;
    let sink = sink.finish()?;
    Ok(Scored {
        rows_out,
        batches,
        first_batch_at: first_batch_at.into_inner(),
        sink,
        model_description,
    })
}

/// The writer's state: scored batches waiting for their turn, and where the sink is at.
struct OrderedWriter<'a> {
    pending: &'a mut BTreeMap<u64, Batch>,
    next_index: &'a mut u64,
    rows_out: &'a mut u64,
    keys_rx: &'a crossbeam_channel::Receiver<(u64, HeldBack)>,
    sink: &'a mut Sink,
    output_rows_limit: u64,
}

impl OrderedWriter<'_> {
    /// Writes every pending batch that is next in input order, with its keys.
    fn write_ready(&mut self, progress: &dyn Progress) -> Result<(), RunError> {
        while let Some(batch) = self.pending.remove(self.next_index) {
            let next = *self.next_index;
            // The reader sends keys in input order before the batch itself, so the next keys
            // received belong to the next batch to write.
            let (key_index, held_back) = self
                .keys_rx
                .recv()
                .map_err(|_| RunError::Internal(format!("no keys for batch {next}")))?;
            if key_index != next {
                return Err(RunError::Internal(format!(
                    "keys for batch {key_index} arrived when batch {next} was due"
                )));
            }
            if *self.rows_out + batch.num_rows as u64 > self.output_rows_limit {
                return Err(RunError::OutputRows {
                    limit: self.output_rows_limit,
                });
            }
            let rows = batch.num_rows as u64;
            match held_back {
                HeldBack::RowKeys(keys) => self.sink.write(&keys, &batch)?,
                HeldBack::PartitionKey(key) => {
                    self.sink.write(&[], &with_partition_key(&key, batch)?)?;
                }
            }
            *self.rows_out += rows;
            *self.next_index += 1;
            progress.rows_written(*self.rows_out);
        }
        Ok(())
    }
}

/// The model's output for a partition with the partition's key columns in front, on every row.
fn with_partition_key(key: &[crate::data::Column], batch: Batch) -> Result<Batch, RunError> {
    let mut columns = Vec::with_capacity(key.len() + batch.columns.len());
    for column in key {
        let spread = column.repeat(0, batch.num_rows).ok_or_else(|| {
            RunError::Internal(format!("partition key `{}` is empty", column.name))
        })?;
        columns.push(spread);
    }
    columns.extend(batch.columns);
    Ok(Batch {
        num_rows: batch.num_rows,
        columns,
    })
}

/// Scores one batch in one instance and validates what comes back.
fn score_one(
    setup: &InstanceSetup<'_>,
    instance: &mut Instance,
    index: u64,
    first_row: u64,
    batch: Batch,
    output: &OutputGrant,
) -> WorkerMessage {
    let limits = &setup.policy.limits;
    let input_rows = batch.num_rows;
    match instance.score(batch, limits.fuel_per_batch, setup.deadline) {
        Ok(scored) => match validate_output(
            scored,
            input_rows,
            setup.mode,
            output,
            limits.output_text_bytes,
        ) {
            Ok(batch) => WorkerMessage::Scored { index, batch },
            Err(reason) => WorkerMessage::Failed(RunError::InvalidOutput {
                batch: index,
                reason,
            }),
        },
        Err(CallError::Output(reason)) => WorkerMessage::Failed(RunError::InvalidOutput {
            batch: index,
            reason,
        }),
        Err(CallError::Model(message)) => WorkerMessage::Failed(RunError::Model {
            batch: index,
            first_row,
            message,
        }),
        Err(CallError::Trap(error)) => {
            let stderr = instance.store.data().stderr_text();
            WorkerMessage::Failed(RunError::from_trap(
                error,
                &stderr,
                limits.fuel_per_batch,
                limits.wall_time.0,
            ))
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
    max_text: crate::units::ByteSize,
) -> Result<Batch, String> {
    if mode == InputMode::Row && batch.num_rows != input_rows {
        return Err(format!(
            "row mode needs one output row per input row: {input_rows} rows in, {} out",
            batch.num_rows
        ));
    }
    let mut by_name: HashMap<String, crate::data::Column> = HashMap::new();
    for column in batch.columns {
        let name = sandbox::sanitize(&column.name, 80);
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
        if column.values.len() != batch.num_rows {
            return Err(format!(
                "column `{name}` has {} values for {} rows",
                column.values.len(),
                batch.num_rows
            ));
        }
        if !column.validity.is_empty() && column.validity.len() != batch.num_rows {
            return Err(format!(
                "column `{name}` has {} validity flags for {} rows",
                column.validity.len(),
                batch.num_rows
            ));
        }
        // limits.output-text-bytes: one value may not carry a flood into the consumer's files.
        if let crate::data::ColumnValues::Text(text) = &column.values
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
