//! The batches that cross the sandbox boundary, and the data plane's errors.
//!
//! [`crate::source`] fills batches with granted columns only, keys held back;
//! [`crate::sink`] writes validated outputs.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::manifest::ColumnType;

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
    #[error("{path}: {what}: {message}")]
    Query {
        path: PathBuf,
        what: String,
        message: String,
    },
    #[error(
        "{path}: a partition has more than {limit} rows (limits.partition-rows); is partition-by the right column?"
    )]
    PartitionTooLarge { path: PathBuf, limit: u64 },
    /// SQL from the policy that does not fit the table; `key` says where the policy writes it.
    #[error("{} `{sql}` does not fit {}: {message}", crate::policy::describe_key(key), table.display())]
    PolicySql {
        table: PathBuf,
        key: String,
        sql: String,
        message: String,
    },
    #[error("{path}: internal error: {message}")]
    Internal { path: PathBuf, message: String },
    #[error("{path}: only .csv and .parquet sinks can be written")]
    SinkFormat { path: PathBuf },
    #[error("cannot write sink {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// One column's values, one entry per row; a null row holds a placeholder.
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnValues {
    Float64(Vec<f64>),
    Float32(Vec<f32>),
    Int64(Vec<i64>),
    Boolean(Vec<bool>),
    Text(Vec<String>),
    Timestamp(Vec<i64>),
}

impl ColumnValues {
    pub fn empty(ty: ColumnType, capacity: usize) -> Self {
        match ty {
            ColumnType::Float64 => ColumnValues::Float64(Vec::with_capacity(capacity)),
            ColumnType::Float32 => ColumnValues::Float32(Vec::with_capacity(capacity)),
            ColumnType::Int64 => ColumnValues::Int64(Vec::with_capacity(capacity)),
            ColumnType::Boolean => ColumnValues::Boolean(Vec::with_capacity(capacity)),
            ColumnType::Text => ColumnValues::Text(Vec::with_capacity(capacity)),
            ColumnType::Timestamp => ColumnValues::Timestamp(Vec::with_capacity(capacity)),
        }
    }

    pub fn column_type(&self) -> ColumnType {
        match self {
            ColumnValues::Float64(_) => ColumnType::Float64,
            ColumnValues::Float32(_) => ColumnType::Float32,
            ColumnValues::Int64(_) => ColumnType::Int64,
            ColumnValues::Boolean(_) => ColumnType::Boolean,
            ColumnValues::Text(_) => ColumnType::Text,
            ColumnValues::Timestamp(_) => ColumnType::Timestamp,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            ColumnValues::Float64(v) => v.len(),
            ColumnValues::Float32(v) => v.len(),
            ColumnValues::Int64(v) | ColumnValues::Timestamp(v) => v.len(),
            ColumnValues::Boolean(v) => v.len(),
            ColumnValues::Text(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes this column occupies once copied into guest memory (approximately).
    pub fn byte_size(&self) -> usize {
        match self {
            ColumnValues::Float64(v) => v.len() * 8,
            ColumnValues::Float32(v) => v.len() * 4,
            ColumnValues::Int64(v) | ColumnValues::Timestamp(v) => v.len() * 8,
            ColumnValues::Boolean(v) => v.len(),
            ColumnValues::Text(v) => v.iter().map(|s| s.len() + 8).sum(),
        }
    }
}

/// A named column of a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub name: String,
    pub values: ColumnValues,
    /// One flag per row, `false` where null; empty when the column has no nulls.
    pub validity: Vec<bool>,
}

/// Equally long named columns: what crosses into and out of the sandbox.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Batch {
    pub num_rows: usize,
    pub columns: Vec<Column>,
}

impl Batch {
    pub fn byte_size(&self) -> usize {
        self.columns
            .iter()
            .map(|c| c.values.byte_size() + c.validity.len() + c.name.len())
            .sum()
    }
}

/// A unit of work for the sandbox, and what the host holds back from it.
#[derive(Debug)]
pub struct KeyedBatch {
    /// Position of this batch (row mode) or partition (partition mode) in the input, from 0.
    pub index: u64,
    pub batch: Batch,
    pub held_back: HeldBack,
}

/// What stays on the host side of a unit of work and is re-attached to its output.
#[derive(Debug)]
pub enum HeldBack {
    /// Row mode: each row's values of the policy's `key` columns, in row order.
    RowKeys(Vec<Vec<String>>),
    /// Partition mode: the partition's key, one single-row column per `partition-by` column.
    PartitionKey(Vec<Column>),
}

impl ColumnValues {
    /// The value at `row`, `times` times over (a partition key spread over output rows).
    pub fn repeat(&self, row: usize, times: usize) -> Option<ColumnValues> {
        Some(match self {
            ColumnValues::Float64(v) => ColumnValues::Float64(vec![*v.get(row)?; times]),
            ColumnValues::Float32(v) => ColumnValues::Float32(vec![*v.get(row)?; times]),
            ColumnValues::Int64(v) => ColumnValues::Int64(vec![*v.get(row)?; times]),
            ColumnValues::Timestamp(v) => ColumnValues::Timestamp(vec![*v.get(row)?; times]),
            ColumnValues::Boolean(v) => ColumnValues::Boolean(vec![*v.get(row)?; times]),
            ColumnValues::Text(v) => ColumnValues::Text(vec![v.get(row)?.clone(); times]),
        })
    }

    /// The value at `row` as JSON, for audit events (`null` past the end).
    pub fn json_value(&self, row: usize) -> serde_json::Value {
        use serde_json::Value;
        match self {
            ColumnValues::Float64(v) => v.get(row).map_or(Value::Null, |x| (*x).into()),
            ColumnValues::Float32(v) => v.get(row).map_or(Value::Null, |x| f64::from(*x).into()),
            ColumnValues::Int64(v) | ColumnValues::Timestamp(v) => {
                v.get(row).map_or(Value::Null, |x| (*x).into())
            }
            ColumnValues::Boolean(v) => v.get(row).map_or(Value::Null, |x| (*x).into()),
            ColumnValues::Text(v) => v.get(row).map_or(Value::Null, |x| x.as_str().into()),
        }
    }
}

impl Column {
    /// The value at `row` spread over `times` rows, null or not.
    pub fn repeat(&self, row: usize, times: usize) -> Option<Column> {
        let valid = self.validity.get(row).copied().unwrap_or(true);
        Some(Column {
            name: self.name.clone(),
            values: self.values.repeat(row, times)?,
            validity: if valid {
                Vec::new()
            } else {
                vec![false; times]
            },
        })
    }
}

/// Writes `bytes` to `path` through a temporary file and a rename.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut temp = tempfile::NamedTempFile::new_in(dir)?;
    temp.write_all(bytes)?;
    temp.as_file().sync_all()?;
    temp.persist(path).map_err(|e| e.error)?;
    Ok(())
}
