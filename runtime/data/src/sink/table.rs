//! A query's result, whatever its columns, as CSV or Parquet: what `cordon sql` prints and what
//! its `-o` writes, through a [`PendingFile`] as every sink does (nothing at the path until the
//! whole result is written; an earlier file there replaced whole or not at all). Batches are
//! written as they come, so a result larger than memory can be written.
//!
//! Columns the model computed (`model_derived`) are the model's text: a cell a spreadsheet would
//! read as a formula gets a leading `'` in CSV, as in `cordon run`'s sinks. The consumer's own
//! columns (keys, governed and plain columns) are written as they are, so they still join.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::error::ArrowError;
use datafusion::parquet::arrow::ArrowWriter;

use super::neutralise;
use crate::DataError;
use crate::source::SourceFormat;
use cordon_package::files::PendingFile;

/// Writes `batches` as CSV with a header row to `out`.
pub fn write_csv<W: Write>(
    out: W,
    schema: &SchemaRef,
    batches: &[RecordBatch],
    model_derived: &[bool],
) -> Result<(), ArrowError> {
    let rules = TextRules::new(schema, model_derived);
    let mut writer = datafusion::arrow::csv::WriterBuilder::new()
        .with_header(true)
        .build(out);
    if batches.is_empty() {
        // The header alone, for an empty result.
        writer.write(&RecordBatch::new_empty(Arc::clone(&rules.schema)))?;
    }
    for batch in batches {
        writer.write(&rules.apply(batch)?)?;
    }
    Ok(())
}

/// Writes `batches` to `path`, CSV or Parquet by its extension, atomically. Returns the rows.
pub fn write_table(
    path: &Path,
    schema: &SchemaRef,
    batches: &[RecordBatch],
    model_derived: &[bool],
) -> Result<u64, DataError> {
    let mut writer = TableWriter::create(path, schema, model_derived)?;
    for batch in batches {
        writer.write(batch)?;
    }
    writer.commit()
}

/// A result written batch by batch to a pending file, put in place by [`TableWriter::commit`];
/// dropped uncommitted, it leaves nothing behind.
pub struct TableWriter {
    path: PathBuf,
    rules: TextRules,
    format: Format,
    pending: PendingFile,
    rows: u64,
}

enum Format {
    Csv(datafusion::arrow::csv::Writer<BufWriter<File>>),
    Parquet(ArrowWriter<File>),
}

impl TableWriter {
    /// Starts writing a result of `schema` to `path` (`.csv` or `.parquet`).
    pub fn create(
        path: &Path,
        schema: &SchemaRef,
        model_derived: &[bool],
    ) -> Result<TableWriter, DataError> {
        let format = SourceFormat::of(path).ok_or_else(|| DataError::SinkFormat {
            path: path.to_owned(),
        })?;
        let rules = TextRules::new(schema, model_derived);
        let (file, pending) = PendingFile::create(path).map_err(|source| DataError::Write {
            path: path.to_owned(),
            source,
        })?;
        let format = match format {
            SourceFormat::Csv => Format::Csv(
                datafusion::arrow::csv::WriterBuilder::new()
                    .with_header(true)
                    .build(BufWriter::new(file)),
            ),
            SourceFormat::Parquet => Format::Parquet(
                ArrowWriter::try_new(file, Arc::clone(&rules.schema), None)
                    .map_err(|e| arrow_error(path, e.into()))?,
            ),
        };
        Ok(TableWriter {
            path: path.to_owned(),
            rules,
            format,
            pending,
            rows: 0,
        })
    }

    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), DataError> {
        let batch = self
            .rules
            .apply(batch)
            .map_err(|e| arrow_error(&self.path, e))?;
        match &mut self.format {
            Format::Csv(writer) => writer.write(&batch),
            Format::Parquet(writer) => writer.write(&batch).map_err(ArrowError::from),
        }
        .map_err(|e| arrow_error(&self.path, e))?;
        self.rows += batch.num_rows() as u64;
        Ok(())
    }

    /// Puts the whole result in place; returns its rows.
    pub fn commit(self) -> Result<u64, DataError> {
        let path = self.path;
        let write_error = |source: std::io::Error| DataError::Write {
            path: path.clone(),
            source,
        };
        let file = match self.format {
            Format::Csv(mut writer) => {
                if self.rows == 0 {
                    writer
                        .write(&RecordBatch::new_empty(Arc::clone(&self.rules.schema)))
                        .map_err(|e| arrow_error(&path, e))?;
                }
                writer
                    .into_inner()
                    .into_inner()
                    .map_err(|e| write_error(e.into_error()))?
            }
            Format::Parquet(writer) => writer
                .into_inner()
                .map_err(|e| arrow_error(&path, e.into()))?,
        };
        self.pending.commit(file).map_err(write_error)?;
        Ok(self.rows)
    }
}

fn arrow_error(path: &Path, error: ArrowError) -> DataError {
    DataError::Internal {
        path: path.to_owned(),
        message: format!("cannot write the result: {error}"),
    }
}

/// Which text columns are the model's, and the schema with those as plain text.
struct TextRules {
    schema: SchemaRef,
    rewrite: Vec<bool>,
}

impl TextRules {
    fn new(schema: &SchemaRef, model_derived: &[bool]) -> TextRules {
        let rewrite: Vec<bool> = schema
            .fields()
            .iter()
            .enumerate()
            .map(|(i, f)| {
                model_derived.get(i).copied().unwrap_or(false)
                    && matches!(
                        f.data_type(),
                        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
                    )
            })
            .collect();
        let fields: Vec<Field> = schema
            .fields()
            .iter()
            .zip(&rewrite)
            .map(|(f, &text)| {
                let field = f.as_ref().clone();
                if text {
                    field.with_data_type(DataType::Utf8)
                } else {
                    field
                }
            })
            .collect();
        TextRules {
            schema: Arc::new(Schema::new(fields)),
            rewrite,
        }
    }

    /// The batch with every text cell of a model-derived column neutralised.
    fn apply(&self, batch: &RecordBatch) -> Result<RecordBatch, ArrowError> {
        if !self.rewrite.contains(&true) {
            return Ok(batch.clone());
        }
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(batch.num_columns());
        for (column, &text) in batch.columns().iter().zip(&self.rewrite) {
            if !text {
                columns.push(Arc::clone(column));
                continue;
            }
            let strings = cast(column, &DataType::Utf8)?;
            let strings = strings.as_string::<i32>();
            let cells: StringArray = (0..strings.len())
                .map(|row| {
                    strings
                        .is_valid(row)
                        .then(|| neutralise(strings.value(row).to_owned()))
                })
                .collect();
            columns.push(Arc::new(cells));
        }
        RecordBatch::try_new(Arc::clone(&self.schema), columns)
    }
}
