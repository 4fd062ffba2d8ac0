//! The public face of one run: what to run ([`RunRequest`]), what it did ([`RunSummary`]),
//! and how it reports progress. The run itself is the batch driver ([`crate::drivers::batch`]).

use std::path::PathBuf;

pub use crate::error::RunError;
use crate::sandbox::{CacheOutcome, LogRecord};
pub use crate::scorer::validate_output;
use crate::signing::Verified;

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
    /// Per model column, values outside the manifest's domain that were scored anyway under
    /// `[bind.<input>] out-of-domain = "count"`.
    pub out_of_domain: std::collections::BTreeMap<String, u64>,
    pub audit_log: Option<PathBuf>,
    /// Hash of the last audit line this run wrote.
    pub audit_head: Option<String>,
}
