//! The type vocabulary manifests and policies share with the batches: a column's element type
//! and how the host calls the model for an input.

use std::fmt;

use serde::Deserialize;

/// The element type of a column, as manifests and policies spell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ColumnType {
    Float64,
    Float32,
    Int64,
    Boolean,
    Text,
    /// Microseconds since the Unix epoch, UTC.
    Timestamp,
}

impl fmt::Display for ColumnType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ColumnType::Float64 => "float64",
            ColumnType::Float32 => "float32",
            ColumnType::Int64 => "int64",
            ColumnType::Boolean => "boolean",
            ColumnType::Text => "text",
            ColumnType::Timestamp => "timestamp",
        })
    }
}

/// How the host calls the model for an input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum InputMode {
    /// Batches of rows; exactly one output row per input row, in order.
    Row,
    /// One call per partition (the rows sharing the `partition-by` columns), its rows sorted
    /// by `order-by`; any number of output rows, to which the host adds the partition key.
    Partition,
}

impl fmt::Display for InputMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            InputMode::Row => "row",
            InputMode::Partition => "partition",
        })
    }
}
