//! Cordon's data plane: table sources read through DataFusion into batches of granted columns
//! ([`source`]), sinks that write validated outputs atomically ([`sink`]), and the errors of
//! both.

use std::path::PathBuf;

use cordon_contract::types::ColumnType;

pub mod panics;
pub mod sink;
pub mod source;

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("cannot open source {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: cannot read CSV")]
    Csv {
        path: PathBuf,
        #[source]
        source: csv::Error,
    },
    #[error("{path}: the table has no column `{column}` ({why}); it has: {available}")]
    MissingColumn {
        path: PathBuf,
        column: String,
        why: String,
        available: String,
    },
    #[error("{path}:{line}: column `{column}`: `{value}` is not {ty}")]
    BadValue {
        path: PathBuf,
        line: u64,
        column: String,
        value: String,
        ty: ColumnType,
    },
    #[error("{path}: only .csv and .parquet sources can be read")]
    Format { path: PathBuf },
    /// A binding with `source = "request"` read as a table (by `cordon run` or `cordon sql`).
    #[error(
        "[bind.{input}] takes its rows from requests (source = \"request\"): serve it with `cordon serve`, or bind a table to read it here"
    )]
    RequestBound { input: String },
    /// The file's bytes made its reader fail outright (a panic inside the parquet crate, say).
    #[error(
        "{path}: the table is damaged or not what its extension says; its reader failed: {message}"
    )]
    Damaged { path: PathBuf, message: String },
    #[error("{path}: {what}: {message}")]
    Query {
        path: PathBuf,
        what: String,
        message: String,
    },
    /// `key` names the partition (` (series=NSWMetro)`), the consumer's own values.
    #[error(
        "{path}: a partition{key} has more than {limit} rows (limits.partition-rows); is partition-by the right column?"
    )]
    PartitionTooLarge {
        path: PathBuf,
        key: String,
        limit: u64,
    },
    /// SQL from the policy that does not fit the table, refused at its line in the policy:
    /// `<policy>:<line>: [bind.<input>] filter `<sql>` does not fit <table>: <why>`.
    #[error(transparent)]
    PolicySql(cordon_config::policy::PolicyError),
    #[error("{path}: internal error: {message}")]
    Internal { path: PathBuf, message: String },
    #[error("{path}: only .csv and .parquet sinks can be written")]
    SinkFormat { path: PathBuf },
    /// A NaN or infinity in the model's output under `[emit.<output>] non-finite = "refuse"`.
    #[error(
        "output `{output}` ({}) column `{}`, row {}{}: the model returned {}; refused by [emit.{output}] non-finite = \"refuse\" (the default); set non-finite = \"null\" to write it as null",
        path.display(), at.column, at.row, at.key, at.value
    )]
    NonFinite {
        output: String,
        path: PathBuf,
        at: Box<NonFiniteAt>,
    },
    #[error(
        "output `{output}` ({}): the run would write more than {limit} (limits.output-bytes) and was stopped",
        path.display()
    )]
    OutputBytes {
        output: String,
        path: PathBuf,
        limit: cordon_config::units::ByteSize,
    },
    #[error("cannot write sink {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Where a refused NaN or infinity is.
#[derive(Debug)]
pub struct NonFiniteAt {
    pub column: String,
    /// The output's row, counted from 1.
    pub row: u64,
    /// ` (id=r11)`: the row's key values or partition key (the consumer's own data), empty
    /// when the policy names no key.
    pub key: String,
    /// `NaN`, `inf` or `-inf`.
    pub value: String,
}
