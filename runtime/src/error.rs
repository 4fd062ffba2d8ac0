//! Everything that can end a run, in one type that every driver reports through.

use std::time::Duration;

use crate::audit::AuditError;
use crate::data::DataError;
use crate::grant::GrantError;
use crate::nn::jail::WorkerError;
use crate::nn::onnx::OnnxRuntimeError;
use crate::package::PackageError;
use crate::policy::PolicyError;
use crate::sandbox::domain::OutOfDomainValue;
use crate::sandbox::{self, LimitExceeded};
use crate::scorer::ScoreError;
use crate::signing::VerifyError;
use crate::usage::UsageError;
use crate::world::WorldError;

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
    Data(DataError),
    #[error(transparent)]
    OnnxRuntime(#[from] OnnxRuntimeError),
    #[error(
        "the package has graphs, but no ONNX Runtime library was configured: pass --onnxruntime <libonnxruntime.so>, set ORT_DYLIB_PATH, or run scripts/setup.sh (it installs one under .onnxruntime/ and prints its path)"
    )]
    NoOnnxRuntime,
    /// `cordon serve` cannot start or go on: its token file, TLS material, listeners, or a
    /// policy that does not bind requests.
    #[error("cordon serve: {0}")]
    Serve(String),
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
    /// `partition` is empty in row mode, and in partition mode names the partition by its key
    /// (` on series="NSWMetro"`): the model cannot name it, since the key is held back from it.
    #[error("the model failed{partition} (batch {batch}, rows {first_row}..): {message}")]
    Model {
        batch: u64,
        first_row: u64,
        partition: String,
        message: String,
    },
    /// A value outside its column's declared domain, refused before it entered the sandbox.
    /// `place` is where the row is (`data.csv:18`, `row 18 of the rows read`), `key` its key
    /// values (` (customerID=7590-VHVEG)`), both the consumer's own data.
    #[error(
        "{place}{key}: {value}; refused by [bind.{}] out-of-domain = \"refuse\" (the default); set out-of-domain = \"count\" to score such values and count them",
        value.input
    )]
    OutOfDomain {
        place: String,
        key: String,
        /// The row among the rows read, from 0, and its batch, when known.
        row: Option<u64>,
        batch: Option<u64>,
        value: Box<OutOfDomainValue>,
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
    /// The manifest declares settings, but the component speaks a contract without them.
    #[error(
        "{package}: the manifest declares [settings], but the component speaks cordon:model@{version}, which has no settings to read them with; rebuild it with cordon-guest for cordon:model@{}",
        crate::world::CONTRACT_VERSION
    )]
    SettingsUnreadable {
        package: String,
        version: &'static str,
    },
    /// The manifest declares encoders, but the component speaks a contract without them.
    #[error(
        "{package}: the manifest declares [[encoder]]s, but the component speaks cordon:model@{version}, which has no encoders to read them with; rebuild it with cordon-guest for cordon:model@{}",
        crate::world::CONTRACT_VERSION
    )]
    EncodersUnreadable {
        package: String,
        version: &'static str,
    },
    #[error(transparent)]
    Audit(#[from] AuditError),
    #[error(transparent)]
    Usage(#[from] UsageError),
    /// A compile cache directory or key another user could have written or read.
    #[error(transparent)]
    CacheDir(#[from] sandbox::CacheDirError),
    /// A SQL statement that does not parse, plan or run (`cordon sql`).
    #[error("SQL: {0}")]
    Sql(String),
    /// A model function's argument that the plan check traced to a column the policy does not
    /// grant that model (`cordon sql`), refused before any row is read.
    #[error(transparent)]
    PlanRefused(Box<PlanRefusal>),
    /// A statement the plan check cannot follow, refused because what it cannot trace it
    /// cannot prove granted (`cordon sql`).
    #[error("the statement is refused: {why}")]
    PlanUntraced { why: String },
    /// A kind of statement `cordon sql` does not run (DDL other than views, DML, COPY, SET,
    /// EXPLAIN, PREPARE).
    #[error("{what} is not allowed in cordon sql: {why}")]
    StatementRefused { what: String, why: String },
    #[error("internal error: {0}")]
    Internal(String),
}

impl RunError {
    /// For errors that are a refusal of the model or of the package, what was refused: the
    /// audit trail records those as denials.
    pub(crate) fn denial_kind(&self) -> Option<&'static str> {
        match self {
            RunError::Grant(_) => Some("grant"),
            RunError::PlanRefused(_) | RunError::PlanUntraced { .. } => Some("plan"),
            RunError::StatementRefused { .. } => Some("statement"),
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

    /// The batch an error happened in, when it names one (a model's failure, a refused value).
    pub(crate) fn batch(&self) -> Option<u64> {
        match self {
            RunError::Model { batch, .. } => Some(*batch),
            RunError::OutOfDomain { batch, .. } => *batch,
            _ => None,
        }
    }

    /// The error with the partition it happened in named by its key (partition mode): the
    /// consumer's own values, shown on a terminal, so without control characters.
    pub(crate) fn in_partition(self, key: &[crate::data::Column]) -> RunError {
        let parts: Vec<String> = key
            .iter()
            .map(|column| format!("{}={}", column.name, column.values.json_value(0)))
            .collect();
        let named = crate::names::printable(&parts.join(", "), 200);
        match self {
            RunError::Model {
                batch,
                first_row,
                message,
                ..
            } => RunError::Model {
                batch,
                first_row,
                partition: format!(" on {named}"),
                message,
            },
            RunError::OutOfDomain {
                place,
                row,
                batch,
                value,
                ..
            } => RunError::OutOfDomain {
                place,
                key: format!(" ({named})"),
                row,
                batch,
                value,
            },
            other => other,
        }
    }

    /// A scorer's failure, where it happened: batch `batch` from row `first_row` of the input
    /// when a batch was being scored, `None` while an instance started or described itself.
    pub fn scoring(error: ScoreError, at: Option<(u64, u64)>) -> RunError {
        let (batch, first_row) = at.unwrap_or_default();
        match error {
            ScoreError::InvalidOutput(reason) => RunError::InvalidOutput { batch, reason },
            ScoreError::Model(message) => RunError::Model {
                batch,
                first_row,
                partition: String::new(),
                message,
            },
            ScoreError::Limit(limit) => RunError::Limit(limit),
            ScoreError::CpuLimit { fuel } => RunError::CpuLimit { fuel },
            ScoreError::WallTime { limit } => RunError::WallTime { limit },
            ScoreError::Inference(error) => RunError::Inference(error),
            ScoreError::Trap { message } => RunError::Trap { message },
            ScoreError::OutOfDomain(value) => {
                let row = at.map(|(_, first_row)| first_row + value.row as u64);
                RunError::OutOfDomain {
                    place: match row {
                        Some(row) => format!("row {} of the rows read", row + 1),
                        None => format!("row {} of the batch", value.row + 1),
                    },
                    key: String::new(),
                    row,
                    batch: at.map(|(batch, _)| batch),
                    value: Box::new(value),
                }
            }
        }
    }
}

/// Which argument of which model function reads what, and why that is refused.
#[derive(Debug, thiserror::Error)]
#[error(
    "{function}: argument {position} ({parameter}) `{argument}` reads {column}: {why}; a model function's arguments must come from the granted columns of governed table `{input}`"
)]
pub struct PlanRefusal {
    pub function: String,
    pub position: usize,
    pub parameter: String,
    pub argument: String,
    pub column: String,
    pub why: String,
    pub input: String,
}

/// The data plane's errors, except that policy SQL which does not fit the table is the
/// policy's error (already at its line in the policy file), whichever driver opened the table.
impl From<DataError> for RunError {
    fn from(error: DataError) -> RunError {
        match error {
            DataError::PolicySql(error) => RunError::Policy(error),
            other => RunError::Data(other),
        }
    }
}
