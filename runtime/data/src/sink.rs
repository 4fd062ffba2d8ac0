//! Sinks: where validated output goes, CSV or Parquet by the sink's extension.
//!
//! Every sink writes through a [`PendingFile`]: nothing appears at the sink's path until the
//! run has succeeded, and an earlier output there is replaced whole or not at all.
//!
//! What the model returns is hostile until written safely ([`OutputRules`]): a NaN or infinity
//! is refused or written as null as `[emit.<output>] non-finite` says, the bytes written are
//! bounded by `limits.output-bytes`, and a text cell of the model's that a spreadsheet would
//! read as a formula is written with a leading `'` (CSV only).

use std::fs::File;
use std::io::BufWriter;
use std::path::PathBuf;
use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::parquet::arrow::ArrowWriter;

use crate::{DataError, NonFiniteAt};
use cordon_config::grant::OutputGrant;
use cordon_config::policy::{Limits, NonFinite};
use cordon_contract::data::{Batch, Column, ColumnValues};
use cordon_package::files::PendingFile;

/// The sink a grant names, chosen by its extension.
pub enum Sink {
    Csv(CsvSink),
    Parquet(ParquetSink),
}

impl Sink {
    pub fn create(
        grant: &OutputGrant,
        key_columns: &[String],
        limits: &Limits,
    ) -> Result<Sink, DataError> {
        let rules = OutputRules::new(grant, key_columns, limits);
        let extension = grant
            .sink
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match extension.as_deref() {
            Some("csv") => Ok(Sink::Csv(CsvSink::create(grant, key_columns, rules)?)),
            Some("parquet") => Ok(Sink::Parquet(ParquetSink::create(
                grant,
                key_columns,
                rules,
            )?)),
            _ => Err(DataError::SinkFormat {
                path: grant.sink.clone(),
            }),
        }
    }

    /// Appends the rows of a validated output batch, each preceded by its key values (none in
    /// partition mode, where the batch starts with the partition columns).
    pub fn write(&mut self, keys: &[Vec<String>], batch: &Batch) -> Result<(), DataError> {
        match self {
            Sink::Csv(sink) => sink.write(keys, batch),
            Sink::Parquet(sink) => sink.write(keys, batch),
        }
    }

    /// Completes the file and puts it in place.
    pub fn finish(self) -> Result<PathBuf, DataError> {
        match self {
            Sink::Csv(sink) => sink.finish(),
            Sink::Parquet(sink) => sink.finish(),
        }
    }
}

/// Scored rows on their way to a sink: a validated output batch and the keys held back for it
/// (one list of key values per row in row mode; none in partition mode, where the batch starts
/// with the partition's key columns).
pub struct OutputRows {
    pub keys: Vec<Vec<String>>,
    pub batch: Batch,
}

/// What a sink put in place: how many rows, and what (a file's path, batches in memory).
#[derive(Debug)]
pub struct Written<T> {
    pub rows: u64,
    pub committed: T,
}

/// Where a driver's scored rows go, in the shape of DataFusion's `DataSink::write_all`: the
/// sink takes the whole stream in order and commits it when the stream ends. The first error,
/// the stream's own or the sink's, is returned and nothing is committed: the sink is dropped
/// unfinished, which rolls it back (a file sink deletes its temporary file).
pub trait DataSink: Sized {
    /// What a commit leaves behind.
    type Committed;

    /// Writes one batch of rows, not yet visible to anyone.
    fn write(&mut self, rows: &OutputRows) -> Result<(), DataError>;

    /// Makes everything written visible at once.
    fn commit(self) -> Result<Self::Committed, DataError>;

    /// Writes every item of `stream`, and commits them together when it ends.
    fn write_all<E: From<DataError>>(
        mut self,
        stream: impl IntoIterator<Item = Result<OutputRows, E>>,
    ) -> Result<Written<Self::Committed>, E> {
        let mut rows = 0u64;
        for item in stream {
            let item = item?;
            self.write(&item)?;
            rows += item.batch.num_rows as u64;
        }
        Ok(Written {
            rows,
            committed: self.commit()?,
        })
    }
}

impl DataSink for Sink {
    type Committed = PathBuf;

    fn write(&mut self, rows: &OutputRows) -> Result<(), DataError> {
        Sink::write(self, &rows.keys, &rows.batch)
    }

    fn commit(self) -> Result<PathBuf, DataError> {
        self.finish()
    }
}

/// What every sink checks and counts, whatever its format.
pub struct OutputRules {
    output: String,
    path: PathBuf,
    /// The policy's `key` columns (row mode): the consumer's own data, written as it came.
    key_names: Vec<String>,
    /// Leading batch columns that the host put there (partition mode's partition key): the
    /// consumer's own data too. The model's columns follow.
    host_columns: usize,
    non_finite: NonFinite,
    max_bytes: u64,
    bytes: u64,
    /// Rows written so far: the next row is `rows + 1`, counted from 1.
    rows: u64,
}

impl OutputRules {
    pub fn new(grant: &OutputGrant, key_columns: &[String], limits: &Limits) -> Self {
        OutputRules {
            output: grant.name.to_string(),
            path: grant.sink.clone(),
            key_names: key_columns.to_vec(),
            host_columns: grant.partition_key.len(),
            non_finite: grant.non_finite,
            max_bytes: limits.output_bytes.bytes(),
            bytes: 0,
            rows: 0,
        }
    }

    /// Counts `bytes` more against `limits.output-bytes`, or refuses them.
    fn count(&mut self, bytes: u64) -> Result<(), DataError> {
        let total = self.bytes.saturating_add(bytes);
        if total > self.max_bytes {
            return Err(DataError::OutputBytes {
                output: self.output.clone(),
                path: self.path.clone(),
                limit: cordon_config::units::ByteSize(self.max_bytes),
            });
        }
        self.bytes = total;
        Ok(())
    }

    /// Whether the batch's column at `index` is the model's (and so hostile until checked).
    fn is_models(&self, index: usize) -> bool {
        index >= self.host_columns
    }

    /// Under `non-finite = "refuse"`, the first NaN or infinity in the model's columns, as an
    /// error naming the output, column, row and the row's key. Null rows hold placeholders and
    /// are not looked at.
    fn check_finite(&self, keys: &[Vec<String>], batch: &Batch) -> Result<(), DataError> {
        if self.non_finite == NonFinite::Null {
            return Ok(());
        }
        for column in batch.columns.iter().skip(self.host_columns) {
            let found = (0..batch.num_rows).find_map(|row| {
                let valid = column.validity.get(row).copied().unwrap_or(true);
                let value = float_at(&column.values, row)?;
                (valid && !value.is_finite()).then_some((row, value))
            });
            if let Some((row, value)) = found {
                return Err(DataError::NonFinite {
                    output: self.output.clone(),
                    path: self.path.clone(),
                    at: Box::new(NonFiniteAt {
                        column: column.name.clone(),
                        row: self.rows + row as u64 + 1,
                        key: self.key_of(keys, batch, row),
                        value: value.to_string(),
                    }),
                });
            }
        }
        Ok(())
    }

    /// ` (id=r11)`: the row's key values or partition key, to find the row in the consumer's
    /// own table; empty when there are none.
    fn key_of(&self, keys: &[Vec<String>], batch: &Batch, row: usize) -> String {
        let mut parts: Vec<String> = Vec::new();
        if let Some(key) = keys.get(row) {
            for (name, value) in self.key_names.iter().zip(key) {
                parts.push(format!("{name}={value}"));
            }
        }
        for column in batch.columns.iter().take(self.host_columns) {
            parts.push(format!("{}={}", column.name, column.values.json_value(row)));
        }
        if parts.is_empty() {
            return String::new();
        }
        // The consumer's own values, but shown on a terminal: no control characters.
        format!(
            " ({})",
            cordon_config::names::printable(&parts.join(", "), 200)
        )
    }

    /// Whether the value at `row` of the batch's column at `index` is written as null: null
    /// in the batch, or a model's NaN or infinity that `check_finite` let through because the
    /// policy says `non-finite = "null"`.
    fn is_null(&self, index: usize, column: &Column, row: usize) -> bool {
        let valid = column.validity.get(row).copied().unwrap_or(true);
        !valid
            || (self.is_models(index)
                && float_at(&column.values, row).is_some_and(|value| !value.is_finite()))
    }
}

/// The value at `row` of a float column, widened; `None` for other types.
fn float_at(values: &ColumnValues, row: usize) -> Option<f64> {
    match values {
        ColumnValues::Float64(v) => v.get(row).copied(),
        ColumnValues::Float32(v) => v.get(row).copied().map(f64::from),
        _ => None,
    }
}

/// A model's text cell that a spreadsheet would take for a formula (`=`, `+`, `-`, `@`, or a
/// tab or carriage return before one), with a leading `'` so that it is shown as text: OWASP's
/// advice against CSV injection. The output is opened beside the consumer's keys, so a formula
/// there (`=HYPERLINK(...)`) could send them anywhere.
///
/// Spreadsheets that trim cells on import, or read full-width forms as their ASCII twins (some
/// CJK locales do), see a formula through leading spaces or in `＝`, `＋`, `－`, `＠`: those
/// count too.
fn neutralise(cell: String) -> String {
    const OPENERS: [char; 10] = ['=', '+', '-', '@', '\t', '\r', '＝', '＋', '－', '＠'];
    let first = cell
        .trim_start_matches(|c: char| c.is_whitespace() && c != '\t' && c != '\r')
        .chars()
        .next();
    if first.is_some_and(|c| OPENERS.contains(&c)) {
        format!("'{cell}")
    } else {
        cell
    }
}

/// Writes the output table through a [`PendingFile`]: a failed or killed run never leaves a
/// half-written sink behind, and never clobbers the previous one.
pub struct CsvSink {
    path: PathBuf,
    writer: csv::Writer<BufWriter<File>>,
    pending: PendingFile,
    rules: OutputRules,
    row: Vec<String>,
}

/// The bytes of a CSV record as counted against `limits.output-bytes`: every cell's text and
/// one separator or line end after each (quotes the writer may add are not counted).
fn record_bytes(cells: &[impl AsRef<str>]) -> u64 {
    cells.iter().map(|c| c.as_ref().len() as u64 + 1).sum()
}

impl CsvSink {
    pub fn create(
        grant: &OutputGrant,
        key_columns: &[String],
        mut rules: OutputRules,
    ) -> Result<Self, DataError> {
        let path = grant.sink.clone();
        let write_error = |source| DataError::Write {
            path: path.clone(),
            source,
        };
        let (file, pending) = PendingFile::create(&path).map_err(write_error)?;
        let mut writer = csv::WriterBuilder::new().from_writer(BufWriter::new(file));
        let header: Vec<&str> = key_columns
            .iter()
            .map(String::as_str)
            .chain(grant.partition_key.iter().map(|c| c.name.as_str()))
            .chain(grant.columns.iter().map(|c| c.name.as_str()))
            .collect();
        rules.count(record_bytes(&header))?;
        writer
            .write_record(&header)
            .map_err(|e| write_error(std::io::Error::other(e)))?;
        Ok(CsvSink {
            path,
            writer,
            pending,
            rules,
            row: Vec::new(),
        })
    }

    pub fn rows_written(&self) -> u64 {
        self.rules.rows
    }

    /// Appends the rows of a validated output batch, each preceded by its key values. Key and
    /// partition columns are the consumer's own values and are written as they came; the
    /// model's text cells are neutralised ([`neutralise`]).
    pub fn write(&mut self, keys: &[Vec<String>], batch: &Batch) -> Result<(), DataError> {
        self.rules.check_finite(keys, batch)?;
        for row in 0..batch.num_rows {
            self.row.clear();
            if let Some(key) = keys.get(row) {
                self.row.extend(key.iter().cloned());
            }
            for (index, column) in batch.columns.iter().enumerate() {
                let cell = if self.rules.is_null(index, column, row) {
                    String::new()
                } else {
                    format_cell(&column.values, row)
                };
                self.row.push(
                    if self.rules.is_models(index) && matches!(column.values, ColumnValues::Text(_))
                    {
                        neutralise(cell)
                    } else {
                        cell
                    },
                );
            }
            // Counted before it is written: a flood stops at the limit, not after it.
            self.rules.count(record_bytes(&self.row))?;
            self.writer
                .write_record(&self.row)
                .map_err(|e| DataError::Write {
                    path: self.path.clone(),
                    source: std::io::Error::other(e),
                })?;
            self.rules.rows += 1;
        }
        Ok(())
    }

    /// Flushes the rows and puts the file in place.
    pub fn finish(self) -> Result<PathBuf, DataError> {
        let path = self.path;
        let write_error = |source| DataError::Write {
            path: path.clone(),
            source,
        };
        let buffered = self
            .writer
            .into_inner()
            .map_err(|e| write_error(std::io::Error::other(e.to_string())))?;
        let file = buffered
            .into_inner()
            .map_err(|e| write_error(e.into_error()))?;
        self.pending.commit(file).map_err(write_error)?;
        Ok(path)
    }
}

fn format_cell(values: &ColumnValues, row: usize) -> String {
    match values {
        ColumnValues::Float64(v) => v.get(row).map(|x| x.to_string()),
        ColumnValues::Float32(v) => v.get(row).map(|x| x.to_string()),
        ColumnValues::Int64(v) | ColumnValues::Timestamp(v) => v.get(row).map(|x| x.to_string()),
        ColumnValues::Boolean(v) => v.get(row).map(|x| x.to_string()),
        ColumnValues::Text(v) => v.get(row).map(str::to_owned),
    }
    .unwrap_or_default()
}

/// Writes Parquet: the key columns as text, then the partition columns and the output columns
/// with their declared types.
pub struct ParquetSink {
    path: PathBuf,
    schema: SchemaRef,
    writer: ArrowWriter<File>,
    pending: PendingFile,
    rules: OutputRules,
}

/// The bytes of a batch as counted against `limits.output-bytes` when it is written as Arrow
/// (Parquet, or in memory): keys and values at their size before encoding (8 per 64-bit value,
/// 4 per float32, 1 per boolean, text as its bytes).
fn arrow_bytes(keys: &[Vec<String>], batch: &Batch) -> u64 {
    let key_bytes: u64 = keys.iter().flatten().map(|k| k.len() as u64).sum();
    let value_bytes: u64 = batch
        .columns
        .iter()
        .map(|c| match &c.values {
            ColumnValues::Text(v) => v.byte_len() as u64,
            other => other.byte_size() as u64,
        })
        .sum();
    key_bytes.saturating_add(value_bytes)
}

impl ParquetSink {
    pub fn create(
        grant: &OutputGrant,
        key_columns: &[String],
        rules: OutputRules,
    ) -> Result<Self, DataError> {
        let path = grant.sink.clone();
        let write_error = |source| DataError::Write {
            path: path.clone(),
            source,
        };
        let schema = output_schema(grant, key_columns);
        let (file, pending) = PendingFile::create(&path).map_err(write_error)?;
        let writer = ArrowWriter::try_new(file, Arc::clone(&schema), None)
            .map_err(|e| write_error(std::io::Error::other(e)))?;
        Ok(ParquetSink {
            path,
            schema,
            writer,
            pending,
            rules,
        })
    }

    /// Appends a validated output batch. Parquet cells are typed, so no text is neutralised:
    /// nothing reads a Parquet string as a formula.
    pub fn write(&mut self, keys: &[Vec<String>], batch: &Batch) -> Result<(), DataError> {
        self.rules.check_finite(keys, batch)?;
        self.rules.count(arrow_bytes(keys, batch))?;
        let record =
            record_batch(&self.schema, &self.rules, keys, batch).map_err(|e| DataError::Write {
                path: self.path.clone(),
                source: std::io::Error::other(e),
            })?;
        self.writer.write(&record).map_err(|e| DataError::Write {
            path: self.path.clone(),
            source: std::io::Error::other(e),
        })?;
        self.rules.rows += batch.num_rows as u64;
        Ok(())
    }

    pub fn finish(self) -> Result<PathBuf, DataError> {
        let path = self.path;
        let write_error = |source| DataError::Write {
            path: path.clone(),
            source,
        };
        let file = self
            .writer
            .into_inner()
            .map_err(|e| write_error(std::io::Error::other(e)))?;
        self.pending.commit(file).map_err(write_error)?;
        Ok(path)
    }
}

mod memory;
mod table;

pub use memory::MemorySink;
use memory::{output_schema, record_batch};
pub use table::{TableWriter, write_csv, write_table};

#[cfg(test)]
mod tests;
