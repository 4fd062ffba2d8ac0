//! The consumer's policy: what a model may see and use on this machine.
//!
//! Deny by default: nothing is bound, no column is granted, no inference device is allowed
//! unless the policy says so. Parsing is strict (unknown keys and wrong types are errors that
//! name the file, line and key) and the `version` is checked before anything else.
//! `policies/README.md` is the reference for every key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::manifest::Device;
use crate::names::Name;
use crate::units::{ByteSize, WallTime};

/// The only policy format this runtime reads.
pub const POLICY_VERSION: i64 = 1;

/// Most sandbox instances a policy may ask for: each holds a guest memory and host threads.
pub const MAX_INSTANCES: u32 = 64;

/// Largest guest linear memory a policy may grant to one instance. The pooling allocator
/// reserves address space for this much per instance.
pub const MAX_GUEST_MEMORY: ByteSize = ByteSize::gib(4);

/// Smallest guest memory that can run a Rust component at all.
pub const MIN_GUEST_MEMORY: ByteSize = ByteSize::mib(2);

/// Most rows in one batch handed to a model.
pub const MAX_BATCH_ROWS: u32 = 1_000_000;

/// Least `limits.inference-memory`: ONNX Runtime's sessions need some memory of their own.
pub const MIN_INFERENCE_MEMORY: ByteSize = ByteSize::mib(16);

/// Most ONNX Runtime intra-op threads per graph session.
pub const MAX_INFERENCE_THREADS: u32 = 256;

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("cannot read policy {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The TOML error is in the message (with its line and caret), not in the error's chain,
    /// so that a caller printing the chain says it once.
    #[error("{path}: {error}")]
    Parse {
        path: PathBuf,
        error: Box<toml::de::Error>,
    },
    #[error("{}{}: {message}", path.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
    Invalid {
        path: PathBuf,
        /// The line of the table (or top-level key) at fault, where there is one.
        line: Option<usize>,
        message: String,
    },
}

/// Resource limits for one run.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct Limits {
    /// Linear memory of one sandbox instance. Guards the host against a model that allocates
    /// without bound.
    pub memory: ByteSize,
    /// WebAssembly fuel (roughly, instructions) one `score` call may burn. Stops endless loops.
    pub fuel_per_batch: u64,
    /// Wall-clock time of the whole run, guest code and inference together.
    pub wall_time: WallTime,
    /// Bytes of wasi:nn tensors one instance may hold on the host at once. Tensors live in
    /// host memory, outside the guest's linear memory cap, so they need their own.
    pub tensor_bytes: ByteSize,
    /// Rows the run may write in total.
    pub output_rows: u64,
    /// Bytes the run may write to its sink, key columns included (CSV: the cells' text plus one
    /// byte per separator or line end, quoting aside; Parquet: the values' size before
    /// encoding, text as its bytes). Stops a model that floods the consumer's disk.
    pub output_bytes: ByteSize,
    /// Bytes of any one text value a model returns. Bounds what one row can carry into the
    /// consumer's files (and the host's memory) before `output-bytes` is reached.
    pub output_text_bytes: ByteSize,
    /// Sandbox instances scoring batches in parallel.
    pub instances: u32,
    /// Rows per batch handed to the model (row mode).
    pub batch_rows: u32,
    /// Most rows of one partition (partition mode): a partition is held in host memory whole
    /// and copied into the guest at once.
    pub partition_rows: u64,
    /// Memory ONNX Runtime may allocate for one instance's graphs, in its inference worker
    /// (the jail caps the worker's address space at this plus `tensor-bytes` plus a fixed
    /// allowance for the library itself). A graph that allocates past it fails the run.
    pub inference_memory: ByteSize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory: ByteSize::mib(256),
            fuel_per_batch: 5_000_000_000,
            wall_time: WallTime(std::time::Duration::from_secs(600)),
            tensor_bytes: ByteSize::mib(256),
            output_rows: 100_000_000,
            // Room for `output-rows` rows of a key and a score or two (about 40 bytes a row).
            output_bytes: ByteSize::gib(4),
            output_text_bytes: ByteSize::kib(64),
            instances: 1,
            batch_rows: 4096,
            partition_rows: 1_000_000,
            inference_memory: ByteSize::gib(1),
        }
    }
}

/// How graphs may run.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct InferencePolicy {
    /// Devices graphs may run on. Empty (the default) allows none: a model with graphs is
    /// refused.
    pub devices: Vec<Device>,
    /// ONNX Runtime intra-op threads per session; 0 or absent means 1.
    pub threads: u32,
    /// Whether a guest may load graph bytes of its own (wasi:nn `load`) instead of the graphs
    /// the package declares. Off by default: such graphs were not in the package the consumer
    /// inspected.
    pub allow_guest_graphs: bool,
    /// Where graphs run: in a jailed worker process (the default) or in the host process.
    pub isolation: Isolation,
    /// Operator domains graphs may use besides the standard `ai.onnx` and `ai.onnx.ml`
    /// (`com.microsoft` for ONNX Runtime's contrib operators, say).
    pub operator_domains: Vec<String>,
}

/// Where a run's graphs run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Isolation {
    /// In an inference worker per instance: no file opens, sockets or exec, a memory cap, and
    /// killed at the run's deadline. A crash there is an error of the run, not of the host.
    #[default]
    Jail,
    /// In the host's own ONNX Runtime: no process boundary. For benchmarks and packages the
    /// consumer trusts as much as the host.
    InProcess,
}

impl std::fmt::Display for Isolation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Isolation::Jail => "jail",
            Isolation::InProcess => "in-process",
        })
    }
}

/// `source = "request"`: the binding's rows come from the requests `cordon serve` receives,
/// one named tensor per source column, instead of from a table.
pub const REQUEST_SOURCE: &str = "request";

/// Binds a manifest input to a table on this machine.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Binding {
    /// The source table: a CSV file with a header row (`.csv`) or a Parquet file (`.parquet`),
    /// or `"request"` ([`REQUEST_SOURCE`]) for the rows of `cordon serve`'s requests.
    pub source: PathBuf,
    /// Model column name -> a source column name, or an SQL expression over source columns.
    /// Only these columns enter the sandbox.
    #[serde(default)]
    pub columns: BTreeMap<Name, String>,
    /// An SQL condition over source columns: only rows that pass it enter the sandbox.
    #[serde(default)]
    pub filter: Option<String>,
    /// Model column name -> an SQL expression over source columns that replaces the column's
    /// value (`left("zip", 3)`): the model sees only the masked value.
    #[serde(default)]
    pub mask: BTreeMap<Name, String>,
    /// CSV: source column name -> its type, instead of reading it as text. Requests: the type
    /// of each tensor a request carries, where it differs from the manifest's column type (a
    /// key, a column computed from others, text to be cast).
    #[serde(default)]
    pub schema: BTreeMap<String, crate::manifest::ColumnType>,
    /// Source columns that identify a row (customer ids). They never enter the sandbox; the
    /// host re-attaches them to the output.
    #[serde(default)]
    pub key: Vec<String>,
    /// What a value outside the manifest's domain for its column (a level the model does not
    /// know, a number out of its range, a null it does not take) does.
    #[serde(default)]
    pub out_of_domain: OutOfDomain,
}

/// `[bind.<input>] out-of-domain`: what a value outside its column's declared domain does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum OutOfDomain {
    /// The run (or request) fails, naming the column, the value and the row. A model scoring
    /// a value it never saw answers as confidently as on one it knows.
    #[default]
    Refuse,
    /// The value enters the sandbox as it is and is counted per column, in the run's summary
    /// and its audit trail.
    Count,
}

impl Binding {
    /// Whether the rows come from `cordon serve`'s requests (`source = "request"`).
    pub fn is_request(&self) -> bool {
        self.source.as_os_str() == REQUEST_SOURCE
    }
}

/// `[serve]`: how `cordon serve` takes requests for the policy's request bindings: who may
/// call, over what, and the limits on load (how long a request may wait to share a batch, how
/// much may queue, how big and slow one request may be).
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct ServePolicy {
    /// The callers' bearer tokens, stored as SHA-256 hashes, each bound to a role
    /// (`[[token]] name = "..." sha256 = "..." role = "..."`). No token, no inference.
    pub tokens: PathBuf,
    /// A PEM certificate chain: requests are then taken over TLS only.
    pub tls_certificate: Option<PathBuf>,
    /// The certificate's PEM private key.
    pub tls_key: Option<PathBuf>,
    /// How long the first request of a batch waits for others to join it (dynamic batching,
    /// as Triton's `max_queue_delay_microseconds`). A full batch (`batch-rows`) goes at once.
    pub max_batch_delay: WallTime,
    /// Rows that may wait for a sandbox instance, all requests together; a request that would
    /// pass it is refused with 429.
    pub queue_rows: u64,
    /// The largest request body taken (413 past it).
    pub request_bytes: ByteSize,
    /// Request bodies being read and decoded at once, all callers together: a request waits
    /// (within its `request-time`) for room. Each counts its declared length, or
    /// `request-bytes` when it declares none (HTTP/2, chunked). It bounds the server's memory
    /// against many large requests at once.
    pub in_flight_bytes: ByteSize,
    /// The most rows one request may carry (400 past it).
    pub request_rows: u64,
    /// Wall time of one request, from its arrival to its answer (504 past it; the guest is
    /// stopped at it).
    pub request_time: WallTime,
    /// How often a usage record is written while the server runs (and once at shutdown).
    pub usage_period: WallTime,
}

impl Default for ServePolicy {
    fn default() -> Self {
        ServePolicy {
            tokens: PathBuf::new(),
            tls_certificate: None,
            tls_key: None,
            max_batch_delay: WallTime(std::time::Duration::from_micros(500)),
            queue_rows: 65_536,
            request_bytes: ByteSize::mib(64),
            in_flight_bytes: ByteSize::mib(1024),
            request_rows: 65_536,
            request_time: WallTime(std::time::Duration::from_secs(10)),
            usage_period: WallTime(std::time::Duration::from_secs(3600)),
        }
    }
}

/// `[table.<name>]`: a table of the consumer's for `cordon sql` that never feeds a model. Its
/// columns may be read, filtered and joined with a model's results, but no model function may
/// take one as an argument (the SQL driver checks every query's plan for that).
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PlainTable {
    /// A CSV file with a header row (`.csv`) or a Parquet file (`.parquet`).
    pub source: PathBuf,
    /// CSV only: source column name -> its type, instead of reading it as text.
    #[serde(default)]
    pub schema: BTreeMap<String, crate::manifest::ColumnType>,
}

/// Where a manifest output goes.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Emit {
    /// A CSV file, written to a temporary file beside it and renamed when the run succeeds.
    pub sink: PathBuf,
    /// What a NaN or infinity the model returns becomes. Refused by default: a probability of
    /// NaN is a broken model, and written silently it would read as a number downstream.
    #[serde(default)]
    pub non_finite: NonFinite,
}

/// `[emit.<output>] non-finite`: what happens to a NaN or infinite float in the model's output.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NonFinite {
    /// The run fails, naming the output, column and row.
    #[default]
    Refuse,
    /// Written as null: an empty CSV cell, a Parquet null.
    Null,
}

/// A role: a named view of the bound tables, chosen with `cordon run --role`.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Role {
    /// Per input: what this role changes about its binding.
    #[serde(default)]
    pub bind: BTreeMap<Name, RoleBinding>,
}

/// A role's changes to one binding: it can only narrow what the binding grants.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RoleBinding {
    /// Combined with the binding's filter: rows must pass both.
    #[serde(default)]
    pub filter: Option<String>,
    /// Applied on top of the binding's result for the same column (it reads the model's
    /// columns as the binding delivers them, never the table's).
    #[serde(default)]
    pub mask: BTreeMap<Name, String>,
}

/// Where the run's audit trail and usage record go.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct AuditPolicy {
    /// The hash-chained JSON Lines audit log; runs append to it.
    pub log: PathBuf,
    /// The usage ledger: one JSON line per run, counts only.
    pub usage: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawPolicy {
    #[allow(dead_code)] // checked before this struct is parsed
    version: i64,
    #[serde(default)]
    trust: BTreeMap<Name, Vec<String>>,
    #[serde(default)]
    limits: Limits,
    #[serde(default)]
    inference: InferencePolicy,
    #[serde(default)]
    bind: BTreeMap<Name, Binding>,
    #[serde(default)]
    emit: BTreeMap<Name, Emit>,
    audit: Option<AuditPolicy>,
    #[serde(default)]
    role: BTreeMap<Name, Role>,
    #[serde(default)]
    table: BTreeMap<Name, PlainTable>,
    serve: Option<ServePolicy>,
    #[serde(default)]
    settings: BTreeMap<String, toml::Value>,
}

/// A parsed, validated policy. Relative paths are resolved against the directory `cordon`
/// runs in.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Policy {
    /// The file it came from, for error messages.
    pub path: PathBuf,
    /// Publisher -> the public keys whose signatures this machine accepts for its packages.
    #[serde(skip)]
    pub trust: BTreeMap<Name, Vec<ed25519_dalek::VerifyingKey>>,
    pub limits: Limits,
    pub inference: InferencePolicy,
    pub bind: BTreeMap<Name, Binding>,
    pub emit: BTreeMap<Name, Emit>,
    /// Absent: the run keeps no audit trail and no usage record.
    pub audit: Option<AuditPolicy>,
    /// Named views; when there are any, every run must choose one.
    pub roles: BTreeMap<Name, Role>,
    /// `cordon sql`'s plain tables, by name: never a model's input.
    pub tables: BTreeMap<Name, PlainTable>,
    /// `cordon serve`'s tokens, TLS and load limits; required to serve.
    pub serve: Option<ServePolicy>,
    /// `[settings]`: values for the settings the package declares, checked against the
    /// manifest's types and bounds when the grant is made.
    pub settings: BTreeMap<String, toml::Value>,
    /// The line of every key, by its dotted path (`bind.customers.filter` -> 23), for errors.
    #[serde(skip)]
    key_lines: KeyLines,
}

impl Policy {
    /// The graph admission rules: the standard operator domains and those the policy adds.
    pub fn admission_rules(&self) -> crate::admission::AdmissionRules {
        crate::admission::AdmissionRules::with_extra_domains(
            self.inference.operator_domains.iter().cloned(),
        )
    }

    /// Reads and validates the policy at `path`; relative paths in it are resolved against
    /// `base_dir`.
    pub fn load(path: &Path, base_dir: &Path) -> Result<Self, PolicyError> {
        let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path, base_dir)
    }

    /// Validates policy text; `path` only names the file in errors.
    ///
    /// Strict parsing, then one check per table (in `checks`), each naming the key at fault.
    pub fn parse(text: &str, path: &Path, base_dir: &Path) -> Result<Self, PolicyError> {
        let parse_error = |source| PolicyError::Parse {
            path: path.to_owned(),
            error: Box::new(source),
        };
        let key_lines = KeyLines::of(text);
        let invalid = Invalid {
            path,
            key_lines: &key_lines,
        };
        // The version decides how to read everything else, so check it first.
        let table: toml::Table = toml::from_str(text).map_err(parse_error)?;
        check_version(&table, &invalid)?;
        let raw: RawPolicy = toml::from_str(text).map_err(parse_error)?;

        let limits = raw.limits;
        check_limits(&limits, &invalid)?;
        let inference = check_inference(raw.inference, &invalid)?;
        let trust = read_trust(raw.trust, base_dir, &invalid)?;
        let bind = resolve_bindings(raw.bind, base_dir, &invalid)?;
        let mut emit = raw.emit;
        for emit in emit.values_mut() {
            emit.sink = base_dir.join(&emit.sink);
        }
        let audit = raw.audit.map(|audit| AuditPolicy {
            log: base_dir.join(audit.log),
            usage: base_dir.join(audit.usage),
        });
        check_roles(&raw.role, &bind, &invalid)?;
        let tables = resolve_tables(raw.table, &bind, base_dir, &invalid)?;
        let serve = raw
            .serve
            .map(|serve| resolve_serve(serve, base_dir, &invalid))
            .transpose()?;

        Ok(Policy {
            path: path.to_owned(),
            trust,
            limits,
            inference,
            bind,
            emit,
            audit,
            roles: raw.role,
            tables,
            serve,
            settings: raw.settings,
            key_lines,
        })
    }

    /// The line where the key at dotted `path` is written (`bind.customers.filter`), or else
    /// where its nearest enclosing table or key is; for `role`, its first `[role.*]` table.
    pub fn line_of(&self, path: &str) -> Option<usize> {
        self.key_lines.line_of(path)
    }

    /// The keys this policy trusts to sign `publisher`'s packages (none if it names none).
    pub fn trusted_keys(&self, publisher: &Name) -> &[ed25519_dalek::VerifyingKey] {
        self.trust.get(publisher).map_or(&[], Vec::as_slice)
    }

    /// An error about the policy's key at dotted `path`, with that key's line.
    pub fn error_at(&self, path: &str, message: String) -> PolicyError {
        PolicyError::Invalid {
            path: self.path.clone(),
            line: self.line_of(path),
            message,
        }
    }

    /// Where this policy's keys are written, for errors found after parsing.
    pub fn lines(&self) -> PolicyLines {
        PolicyLines {
            path: self.path.clone(),
            key_lines: self.key_lines.clone(),
        }
    }
}

mod checks;
mod lines;
mod sql;

pub use lines::{PolicyLines, describe_key};
pub use sql::{canonical_sql_expression, check_sql_expression};

use checks::{
    Invalid, check_inference, check_limits, check_roles, check_version, read_trust,
    resolve_bindings, resolve_serve, resolve_tables,
};
use lines::KeyLines;

#[cfg(test)]
mod tests;
