//! Reading the consumer's table through Apache DataFusion.
//!
//! One SQL query per run does everything the policy asks before a row may enter the sandbox:
//! it reads the source (CSV or Parquet, by extension), keeps only rows that pass the filter,
//! computes each granted column (a source column, an SQL expression, or its mask), casts it to
//! the type the manifest declares, and carries the key columns alongside. The query is planned
//! when the source opens, so a filter or mask that does not parse, or names a column the table
//! lacks, fails before any row is read; it then streams in batches of bounded size, one file
//! partition in file order, so rows come out in input order and memory stays bounded.
//!
//! In partition mode the query also sorts by the partition and order columns (DataFusion spills
//! to disk past its memory pool), and the source cuts the sorted stream into whole partitions.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::compute::{cast, concat_batches, partition};
use datafusion::arrow::datatypes::{
    DataType, Float32Type, Float64Type, Int64Type, TimestampMicrosecondType,
};
use datafusion::common::ScalarValue;
use datafusion::execution::SendableRecordBatchStream;
use futures::StreamExt;

use crate::DataError;
use cordon_config::grant::InputGrant;
use cordon_config::manifest::{ColumnType, InputMode};
use cordon_contract::arrow::{flag_values, primitive_values, text_values};
use cordon_contract::data::{Batch, Column, ColumnValues, HeldBack, KeyedBatch};

mod binding;
mod governed;
mod locate;
mod query;
mod request;

pub use binding::{SourceBinding, SourceFormat};
use binding::{query_context, register, start_query};
pub use cordon_contract::arrow::arrow_type;
pub use governed::{GovernedTable, plain_table};
pub use locate::csv_line_of_row;
pub use query::quote_identifier;
use query::{SOURCE_TABLE, build_query, canonical_grant, check_expressions};
pub use request::{ROW_NUMBER_COLUMN, RequestColumn, RequestSource, SelectedRows, request_columns};

/// Memory DataFusion may hold for the query (sorting, in partition mode) before it spills to
/// temporary files: a table larger than memory still scores.
pub(crate) const QUERY_MEMORY: usize = 512 * 1024 * 1024;

/// One partition as it was read, for the audit trail: its key and its row count.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PartitionRead {
    pub key: BTreeMap<String, serde_json::Value>,
    pub rows: u64,
}

/// Streams the granted, filtered, masked columns of a table, with its key columns.
pub struct TableSource {
    path: PathBuf,
    stream: SendableRecordBatchStream,
    tokio: Arc<tokio::runtime::Runtime>,
    columns: Vec<(String, ColumnType)>,
    key_count: usize,
    next_index: u64,
    rows_read: u64,
    /// A CSV table's typed columns, to name the cell a failed cast came from.
    typed_csv_columns: Vec<(String, ColumnType)>,
    /// Set in partition mode.
    partitions: Option<Partitions>,
}

/// Cuts a stream sorted by the partition columns into whole partitions.
struct Partitions {
    /// Positions of the partition columns among the query's output columns.
    key_positions: Vec<usize>,
    /// Their names, as the manifest gives them (`partition-by`).
    key_names: Vec<String>,
    /// Most rows one partition may have (`limits.partition-rows`).
    max_rows: u64,
    /// The rows of the partition being gathered, in order.
    pending: Vec<RecordBatch>,
    pending_rows: u64,
    /// Partitions complete and not yet handed out.
    ready: VecDeque<RecordBatch>,
    /// Every partition handed out so far.
    read: Vec<PartitionRead>,
}

impl Partitions {
    fn new(grant: &InputGrant, partition_rows: u64) -> Partitions {
        Partitions {
            key_positions: grant
                .partition_by
                .iter()
                .filter_map(|name| grant.columns.iter().position(|c| &c.model == name))
                .map(|position| grant.key.len() + position)
                .collect(),
            key_names: grant.partition_by.iter().map(ToString::to_string).collect(),
            max_rows: partition_rows,
            pending: Vec::new(),
            pending_rows: 0,
            ready: VecDeque::new(),
            read: Vec::new(),
        }
    }
}

impl TableSource {
    /// Plans the query for `grant` on the file it binds and starts streaming it in batches of
    /// `batch_rows`. In partition mode each item is one whole partition of at most
    /// `partition_rows` rows.
    pub fn open(
        grant: &InputGrant,
        batch_rows: usize,
        partition_rows: u64,
        tokio: Arc<tokio::runtime::Runtime>,
    ) -> Result<TableSource, DataError> {
        if grant.source.as_os_str() == cordon_config::policy::REQUEST_SOURCE {
            return Err(DataError::RequestBound {
                input: grant.name.to_string(),
            });
        }
        let binding = SourceBinding::File(grant.source.clone());
        Self::open_binding(&binding, grant, batch_rows, partition_rows, tokio)
    }

    /// [`TableSource::open`] on rows from any binding.
    pub fn open_binding(
        binding: &SourceBinding,
        grant: &InputGrant,
        batch_rows: usize,
        partition_rows: u64,
        tokio: Arc<tokio::runtime::Runtime>,
    ) -> Result<TableSource, DataError> {
        // Reading a damaged file's footer can make the parquet crate panic: caught, and named.
        crate::panics::catch(|| {
            Self::open_unguarded(binding, grant, batch_rows, partition_rows, tokio)
        })
        .unwrap_or_else(|message| {
            Err(DataError::Damaged {
                path: binding.label(),
                message,
            })
        })
    }

    /// The steps of opening: a query context, the binding registered as the source table, the
    /// grant's SQL checked against the table's columns, and the query started.
    fn open_unguarded(
        binding: &SourceBinding,
        grant: &InputGrant,
        batch_rows: usize,
        partition_rows: u64,
        tokio: Arc<tokio::runtime::Runtime>,
    ) -> Result<TableSource, DataError> {
        let path = binding.label();
        let (context, table_columns, grant) =
            tokio.block_on(checked_grant(binding, grant, batch_rows))?;
        let grant = &grant;
        let query = build_query(grant, &table_columns);
        let stream = tokio.block_on(start_query(&context, &query, &path))?;
        Ok(TableSource {
            path,
            stream,
            tokio,
            columns: grant
                .columns
                .iter()
                .map(|c| (c.model.to_string(), c.ty))
                .collect(),
            key_count: grant.key.len(),
            next_index: 0,
            rows_read: 0,
            typed_csv_columns: locate::typed_csv_columns(grant),
            partitions: match grant.mode {
                InputMode::Row => None,
                InputMode::Partition => Some(Partitions::new(grant, partition_rows)),
            },
        })
    }

    /// Partition mode: every partition read so far, in order. Empty in row mode.
    pub fn partitions_read(&self) -> &[PartitionRead] {
        self.partitions.as_ref().map_or(&[], |p| p.read.as_slice())
    }

    /// Rows read so far (after the filter).
    pub fn rows_read(&self) -> u64 {
        self.rows_read
    }

    /// The next unit of work: a batch of rows (row mode) or one whole partition (partition
    /// mode); `None` at the end of the table.
    pub fn next_batch(&mut self) -> Result<Option<KeyedBatch>, DataError> {
        if self.partitions.is_some() {
            return self.next_partition();
        }
        let Some(record) = self.next_record()? else {
            return Ok(None);
        };
        let keyed = self.convert(&record)?;
        self.rows_read += keyed.batch.num_rows as u64;
        Ok(Some(keyed))
    }

    /// The next non-empty record batch of the query.
    fn next_record(&mut self) -> Result<Option<RecordBatch>, DataError> {
        loop {
            // A damaged file can make the parquet crate panic: caught here, and named.
            let next = crate::panics::catch(|| self.tokio.block_on(self.stream.next())).map_err(
                |message| DataError::Damaged {
                    path: self.path.clone(),
                    message,
                },
            )?;
            match next {
                None => return Ok(None),
                Some(Err(error)) => return Err(self.read_error(error)),
                Some(Ok(record)) if record.num_rows() == 0 => continue,
                Some(Ok(record)) => return Ok(Some(record)),
            }
        }
    }

    /// A failed read as the consumer can act on it: a value of a CSV file that does not cast
    /// to its column's type is named by line, column and value (DataFusion's message names the
    /// value only), found by reading the file again.
    fn read_error(&self, error: datafusion::error::DataFusionError) -> DataError {
        let message = error.to_string();
        let cast_failed = ["Cannot cast", "Cast error", "parsing", "Parser error"]
            .iter()
            .any(|sign| message.contains(sign));
        if cast_failed
            && let Some((line, column, value, ty)) =
                locate::first_bad_cell(&self.path, &self.typed_csv_columns)
        {
            return DataError::BadValue {
                path: self.path.clone(),
                line,
                column,
                value: cordon_config::names::printable(&value, 64),
                ty,
            };
        }
        query_error(&self.path, "cannot read the table", error)
    }

    /// Gathers the sorted stream until a partition is complete, and hands it out whole.
    fn next_partition(&mut self) -> Result<Option<KeyedBatch>, DataError> {
        loop {
            let ready = self.partitions.as_mut().and_then(|p| p.ready.pop_front());
            if let Some(record) = ready {
                return self.hand_out_partition(&record).map(Some);
            }
            match self.next_record()? {
                Some(record) => self.cut_partitions(&record)?,
                None => {
                    // The end of the table completes the last partition.
                    let Some(partitions) = self.partitions.as_mut() else {
                        return Ok(None);
                    };
                    if partitions.pending.is_empty() {
                        return Ok(None);
                    }
                    let record = self.take_pending()?;
                    return self.hand_out_partition(&record).map(Some);
                }
            }
        }
    }

    /// Splits `record` where the partition key changes: a key that differs from the pending
    /// partition's completes it.
    fn cut_partitions(&mut self, record: &RecordBatch) -> Result<(), DataError> {
        let positions = self
            .partitions
            .as_ref()
            .map(|p| p.key_positions.clone())
            .unwrap_or_default();
        let key_columns: Vec<ArrayRef> = positions
            .iter()
            .filter_map(|&position| record.columns().get(position).cloned())
            .collect();
        let ranges = partition(&key_columns)
            .map_err(|e| self.internal(format!("cannot group the rows by partition: {e}")))?
            .ranges();
        for range in ranges {
            let piece = record.slice(range.start, range.end - range.start);
            let continues = match self.partitions.as_ref().and_then(|p| p.pending.last()) {
                Some(last) => same_key(last, last.num_rows().saturating_sub(1), &piece, &positions)
                    .map_err(|e| self.internal(format!("cannot compare partition keys: {e}")))?,
                None => true,
            };
            if !continues {
                let complete = self.take_pending()?;
                if let Some(partitions) = self.partitions.as_mut() {
                    partitions.ready.push_back(complete);
                }
            }
            let Some(partitions) = self.partitions.as_mut() else {
                break;
            };
            partitions.pending_rows += piece.num_rows() as u64;
            partitions.pending.push(piece);
            if partitions.pending_rows > partitions.max_rows {
                let key = partitions
                    .pending
                    .first()
                    .map(|first| partition_key_text(&partitions.key_names, first, &positions))
                    .unwrap_or_default();
                return Err(DataError::PartitionTooLarge {
                    path: self.path.clone(),
                    key,
                    limit: partitions.max_rows,
                });
            }
        }
        Ok(())
    }

    /// The pending partition's rows as one record batch.
    fn take_pending(&mut self) -> Result<RecordBatch, DataError> {
        let Some(partitions) = self.partitions.as_mut() else {
            return Err(self.internal("no partition is pending".into()));
        };
        let pieces = std::mem::take(&mut partitions.pending);
        partitions.pending_rows = 0;
        let schema = match pieces.first() {
            Some(first) => first.schema(),
            None => return Err(self.internal("an empty partition".into())),
        };
        concat_batches(&schema, &pieces)
            .map_err(|e| self.internal(format!("cannot gather a partition: {e}")))
    }

    /// Converts a complete partition, holding its key back for the output rows.
    fn hand_out_partition(&mut self, record: &RecordBatch) -> Result<KeyedBatch, DataError> {
        let mut keyed = self.convert(record)?;
        let positions = self
            .partitions
            .as_ref()
            .map(|p| p.key_positions.clone())
            .unwrap_or_default();
        let mut key_columns = Vec::with_capacity(positions.len());
        let mut audit_key = BTreeMap::new();
        for position in positions {
            let column = position
                .checked_sub(self.key_count)
                .and_then(|offset| keyed.batch.columns.get(offset))
                .and_then(|column| column.repeat(0, 1))
                .ok_or_else(|| self.internal(format!("no partition column at {position}")))?;
            let value = if column.validity.is_empty() {
                column.values.json_value(0)
            } else {
                serde_json::Value::Null
            };
            audit_key.insert(column.name.clone(), value);
            key_columns.push(column);
        }
        keyed.held_back = HeldBack::PartitionKey(key_columns);
        let rows = keyed.batch.num_rows as u64;
        self.rows_read += rows;
        if let Some(partitions) = self.partitions.as_mut() {
            partitions.read.push(PartitionRead {
                key: audit_key,
                rows,
            });
        }
        Ok(keyed)
    }

    fn internal(&self, message: String) -> DataError {
        DataError::Internal {
            path: self.path.clone(),
            message,
        }
    }

    /// Splits a record batch into the key values (kept here) and the model's columns.
    fn convert(&mut self, record: &RecordBatch) -> Result<KeyedBatch, DataError> {
        let index = self.next_index;
        self.next_index += 1;
        convert_record(&self.path, &self.columns, self.key_count, index, record)
    }
}

/// Splits a record batch of the grant's query (`key_count` key columns, as text, then the
/// model's `columns`) into the key values (kept on the host) and the model's batch `index`.
pub(crate) fn convert_record(
    path: &Path,
    columns: &[(String, ColumnType)],
    key_count: usize,
    index: u64,
    record: &RecordBatch,
) -> Result<KeyedBatch, DataError> {
    let internal = |message: String| DataError::Internal {
        path: path.to_owned(),
        message,
    };
    // Column `index` of the record, cast to exactly `ty` (DataFusion may hand back views or
    // other string and time encodings).
    let column_as = |index: usize, ty: &DataType| -> Result<ArrayRef, DataError> {
        let column = record
            .columns()
            .get(index)
            .ok_or_else(|| internal(format!("the query returned no column {index}")))?;
        cast(column, ty)
            .map_err(|e| internal(format!("cannot convert column {index} to {ty}: {e}")))
    };
    let rows = record.num_rows();
    let mut keys = vec![Vec::with_capacity(key_count); rows];
    for key_index in 0..key_count {
        let array = column_as(key_index, &DataType::Utf8)?;
        let strings = array.as_string::<i32>();
        for (row, key) in keys.iter_mut().enumerate() {
            key.push(if strings.is_null(row) {
                String::new()
            } else {
                strings.value(row).to_owned()
            });
        }
    }
    let mut model_columns = Vec::with_capacity(columns.len());
    for (offset, (name, ty)) in columns.iter().enumerate() {
        let array = column_as(key_count + offset, &arrow_type(*ty))?;
        model_columns.push(
            model_column(name, *ty, &array)
                .map_err(|why| internal(format!("column `{name}`: {why}")))?,
        );
    }
    Ok(KeyedBatch {
        index,
        batch: Batch {
            num_rows: rows,
            columns: model_columns,
        },
        held_back: HeldBack::RowKeys(keys),
    })
}

/// One model column from an Arrow array of exactly `arrow_type(ty)`: its values, with a null's
/// slot holding the contract's placeholder (0, false or empty text), never the value DataFusion
/// left there (a mask that makes a value null must hide it), and its validity.
pub fn model_column(name: &str, ty: ColumnType, array: &ArrayRef) -> Result<Column, String> {
    if array.data_type() != &arrow_type(ty) {
        return Err(format!("is {}, not {}", array.data_type(), arrow_type(ty)));
    }
    let validity = match array.nulls() {
        Some(nulls) if nulls.null_count() > 0 => nulls.iter().collect(),
        _ => Vec::new(),
    };
    let values = match ty {
        ColumnType::Float64 => ColumnValues::Float64(primitive_values::<Float64Type>(array)),
        ColumnType::Float32 => ColumnValues::Float32(primitive_values::<Float32Type>(array)),
        ColumnType::Int64 => ColumnValues::Int64(primitive_values::<Int64Type>(array)),
        ColumnType::Timestamp => {
            ColumnValues::Timestamp(primitive_values::<TimestampMicrosecondType>(array))
        }
        ColumnType::Boolean => ColumnValues::Boolean(flag_values(array)),
        ColumnType::Text => ColumnValues::Text(text_values(array.as_string::<i32>())?),
    };
    Ok(Column {
        name: name.to_owned(),
        values,
        validity,
    })
}

/// The first steps of reading a binding, for a run's source and a SQL session's governed table
/// alike: a query context, the binding registered as the source table, the grant in canonical
/// form, and every SQL snippet of it checked against the table's columns. Reads no row.
pub(crate) async fn checked_grant(
    binding: &SourceBinding,
    grant: &InputGrant,
    batch_rows: usize,
) -> Result<
    (
        datafusion::prelude::SessionContext,
        Vec<(String, DataType)>,
        InputGrant,
    ),
    DataError,
> {
    let path = binding.label();
    let context = query_context(batch_rows, &path)?;
    register(&context, binding, grant).await?;
    let table_columns: Vec<(String, DataType)> = context
        .table(SOURCE_TABLE)
        .await
        .map_err(|e| query_error(&path, "cannot read the table", e))?
        .schema()
        .fields()
        .iter()
        .map(|f| (f.name().clone(), f.data_type().clone()))
        .collect();
    let grant = canonical_grant(grant, &table_columns, &path)?;
    check_expressions(&context, &grant, &table_columns, &path).await?;
    Ok((context, table_columns, grant))
}

/// Whether row `row` of `left` has the same partition key as the first row of `right`.
fn same_key(
    left: &RecordBatch,
    row: usize,
    right: &RecordBatch,
    positions: &[usize],
) -> Result<bool, datafusion::error::DataFusionError> {
    for &position in positions {
        let (Some(a), Some(b)) = (left.columns().get(position), right.columns().get(position))
        else {
            return Ok(false);
        };
        if ScalarValue::try_from_array(a, row)? != ScalarValue::try_from_array(b, 0)? {
            return Ok(false);
        }
    }
    Ok(true)
}

pub(crate) fn query_error(
    path: &Path,
    what: &str,
    error: datafusion::error::DataFusionError,
) -> DataError {
    DataError::Query {
        path: path.to_owned(),
        what: what.to_owned(),
        message: error.to_string(),
    }
}

#[cfg(test)]
mod tests;

/// A partition's key as an error shows it, from the first row of `piece`: ` (series=NSWMetro)`,
/// the consumer's own values without control characters; empty if it cannot be read.
fn partition_key_text(names: &[String], piece: &RecordBatch, positions: &[usize]) -> String {
    use datafusion::arrow::util::display::array_value_to_string;
    let parts: Vec<String> = names
        .iter()
        .zip(positions)
        .filter_map(|(name, position)| {
            let column = piece.columns().get(*position)?;
            let value = array_value_to_string(column, 0).ok()?;
            Some(format!("{name}={value}"))
        })
        .collect();
    if parts.is_empty() {
        return String::new();
    }
    let text: String = parts
        .join(", ")
        .chars()
        .take(200)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    format!(" ({text})")
}
