//! Output as Arrow record batches: what the Parquet sink writes to a file, and what the memory
//! sink hands back to a driver that holds its rows in memory (a SQL engine, a server). Both go
//! through the same [`OutputRules`], so a model's NaN, flood or oversized text is refused the
//! same way whoever asked for the rows.

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Float32Array, Float64Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::error::ArrowError;

use super::{DataSink, OutputRows, OutputRules};
use crate::DataError;
use crate::source::arrow_type;
use cordon_config::grant::OutputGrant;
use cordon_config::policy::Limits;
use cordon_contract::data::{Batch, ColumnValues};

/// The output table's schema: the key columns as text, then the partition columns and the
/// output columns with their declared types.
pub(super) fn output_schema(grant: &OutputGrant, key_columns: &[String]) -> SchemaRef {
    let fields: Vec<Field> = key_columns
        .iter()
        .map(|key| Field::new(key, DataType::Utf8, true))
        .chain(
            grant
                .partition_key
                .iter()
                .chain(&grant.columns)
                .map(|c| Field::new(c.name.as_str(), arrow_type(c.ty), true)),
        )
        .collect();
    Arc::new(Schema::new(fields))
}

/// One validated output batch with its keys as a record batch of `schema`; values the rules
/// make null (a NaN under `non-finite = "null"`) are null.
pub(super) fn record_batch(
    schema: &SchemaRef,
    rules: &OutputRules,
    keys: &[Vec<String>],
    batch: &Batch,
) -> Result<RecordBatch, ArrowError> {
    let key_count = schema.fields().len().saturating_sub(batch.columns.len());
    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    for index in 0..key_count {
        let values: StringArray = keys
            .iter()
            .map(|key| key.get(index).map(String::as_str))
            .collect();
        arrays.push(Arc::new(values));
    }
    for (index, column) in batch.columns.iter().enumerate() {
        let valid = |row: usize| !rules.is_null(index, column, row);
        let array: ArrayRef = match &column.values {
            ColumnValues::Float64(v) => Arc::new(nullable(v, valid).collect::<Float64Array>()),
            ColumnValues::Float32(v) => Arc::new(nullable(v, valid).collect::<Float32Array>()),
            ColumnValues::Int64(v) => Arc::new(nullable(v, valid).collect::<Int64Array>()),
            ColumnValues::Timestamp(v) => {
                Arc::new(nullable(v, valid).collect::<TimestampMicrosecondArray>())
            }
            ColumnValues::Boolean(v) => Arc::new(nullable(v, valid).collect::<BooleanArray>()),
            ColumnValues::Text(v) => Arc::new(
                v.iter()
                    .enumerate()
                    .map(|(row, s)| valid(row).then_some(s))
                    .collect::<StringArray>(),
            ),
        };
        arrays.push(array);
    }
    RecordBatch::try_new(Arc::clone(schema), arrays)
}

/// Values with `None` where the validity says null.
fn nullable<'a, T: Copy>(
    values: &'a [T],
    valid: impl Fn(usize) -> bool + 'a,
) -> impl Iterator<Item = Option<T>> + 'a {
    values
        .iter()
        .enumerate()
        .map(move |(row, value)| valid(row).then_some(*value))
}

/// Collects the output in memory, as one record batch, under the same rules as a file sink
/// (`non-finite`, `limits.output-bytes`, counted as Parquet counts them).
pub struct MemorySink {
    schema: SchemaRef,
    rules: OutputRules,
    records: Vec<RecordBatch>,
}

impl MemorySink {
    pub fn new(grant: &OutputGrant, key_columns: &[String], limits: &Limits) -> MemorySink {
        let mut rules = OutputRules::new(grant, key_columns, limits);
        // Errors name what was written: no file, whatever sink the policy names for runs.
        rules.path = "<memory>".into();
        MemorySink {
            schema: output_schema(grant, key_columns),
            rules,
            records: Vec::new(),
        }
    }

    /// The schema of what it commits: the key columns, then the partition and output columns.
    pub fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn internal(&self, error: ArrowError) -> DataError {
        DataError::Internal {
            path: "<memory>".into(),
            message: format!("cannot build the output batch: {error}"),
        }
    }
}

impl DataSink for MemorySink {
    type Committed = RecordBatch;

    fn write(&mut self, rows: &OutputRows) -> Result<(), DataError> {
        self.rules.check_finite(&rows.keys, &rows.batch)?;
        self.rules
            .count(super::arrow_bytes(&rows.keys, &rows.batch))?;
        let record = record_batch(&self.schema, &self.rules, &rows.keys, &rows.batch)
            .map_err(|e| self.internal(e))?;
        self.rules.rows += rows.batch.num_rows as u64;
        self.records.push(record);
        Ok(())
    }

    fn commit(self) -> Result<RecordBatch, DataError> {
        concat_batches(&self.schema, &self.records).map_err(|e| self.internal(e))
    }
}
