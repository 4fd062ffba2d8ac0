//! A query's result, whatever its columns, as CSV or Parquet: what `cordon sql` prints and what
//! its `-o` writes, through a [`PendingFile`] as every sink does (nothing at the path until the
//! whole result is written; an earlier file there replaced whole or not at all).
//!
//! Columns the model computed (`model_derived`) are the model's text: a cell a spreadsheet would
//! read as a formula gets a leading `'` in CSV, as in `cordon run`'s sinks. The consumer's own
//! columns (keys, governed and plain columns) are written as they are, so they still join.

use std::io::Write;
use std::path::Path;
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
    let mut writer = datafusion::arrow::csv::WriterBuilder::new()
        .with_header(true)
        .build(out);
    let (schema, batches) = neutralised(schema, batches, model_derived)?;
    if batches.is_empty() {
        // The header alone, for an empty result.
        writer.write(&RecordBatch::new_empty(schema))?;
    }
    for batch in &batches {
        writer.write(batch)?;
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
    let format = SourceFormat::of(path).ok_or_else(|| DataError::SinkFormat {
        path: path.to_owned(),
    })?;
    let write_error = |source: std::io::Error| DataError::Write {
        path: path.to_owned(),
        source,
    };
    let arrow_error = |error: ArrowError| DataError::Internal {
        path: path.to_owned(),
        message: format!("cannot write the result: {error}"),
    };
    let (file, pending) = PendingFile::create(path).map_err(write_error)?;
    let file = match format {
        SourceFormat::Csv => {
            let mut out = std::io::BufWriter::new(file);
            write_csv(&mut out, schema, batches, model_derived).map_err(arrow_error)?;
            out.into_inner().map_err(|e| write_error(e.into_error()))?
        }
        SourceFormat::Parquet => {
            let mut writer = ArrowWriter::try_new(file, Arc::clone(schema), None)
                .map_err(|e| arrow_error(e.into()))?;
            for batch in batches {
                writer.write(batch).map_err(|e| arrow_error(e.into()))?;
            }
            writer.into_inner().map_err(|e| arrow_error(e.into()))?
        }
    };
    pending.commit(file).map_err(write_error)?;
    Ok(batches.iter().map(|b| b.num_rows() as u64).sum())
}

/// The batches with every text cell of a model-derived column neutralised.
fn neutralised(
    schema: &SchemaRef,
    batches: &[RecordBatch],
    model_derived: &[bool],
) -> Result<(SchemaRef, Vec<RecordBatch>), ArrowError> {
    let is_text = |ty: &DataType| {
        matches!(
            ty,
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
        )
    };
    let rewrite: Vec<bool> = schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| model_derived.get(i).copied().unwrap_or(false) && is_text(f.data_type()))
        .collect();
    if !rewrite.contains(&true) {
        return Ok((Arc::clone(schema), batches.to_vec()));
    }
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .zip(&rewrite)
        .map(|(f, &text)| {
            if text {
                f.as_ref().clone().with_data_type(DataType::Utf8)
            } else {
                f.as_ref().clone()
            }
        })
        .collect();
    let schema = Arc::new(Schema::new(fields));
    let mut out = Vec::with_capacity(batches.len());
    for batch in batches {
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(batch.num_columns());
        for (column, &text) in batch.columns().iter().zip(&rewrite) {
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
        out.push(RecordBatch::try_new(Arc::clone(&schema), columns)?);
    }
    Ok((schema, out))
}
