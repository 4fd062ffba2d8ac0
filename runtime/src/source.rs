//! Reading the consumer's table through Apache DataFusion.
//!
//! One SQL query per run does everything the policy asks before a row may enter the sandbox:
//! it reads the source (CSV or Parquet, by extension), keeps only rows that pass the filter,
//! computes each granted column (a source column, an SQL expression, or its mask), casts it to
//! the type the manifest declares, and carries the key columns alongside. The query is planned
//! when the source opens, so a filter or mask that does not parse, or names a column the table
//! lacks, fails before any row is read; it then streams in batches of bounded size, one file
//! partition in file order, so rows come out in input order and memory stays bounded.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{
    DataType, Field, Float32Type, Float64Type, Int64Type, Schema, TimeUnit,
    TimestampMicrosecondType,
};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::prelude::{CsvReadOptions, ParquetReadOptions, SessionConfig, SessionContext};
use futures::StreamExt;

use crate::data::{Batch, Column, ColumnValues, DataError, KeyedBatch};
use crate::grant::InputGrant;
use crate::manifest::ColumnType;

/// The table name the query reads from.
const SOURCE_TABLE: &str = "source";

/// The file formats a source may have, by extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceFormat {
    Csv,
    Parquet,
}

impl SourceFormat {
    pub fn of(path: &Path) -> Option<SourceFormat> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "csv" => Some(SourceFormat::Csv),
            "parquet" => Some(SourceFormat::Parquet),
            _ => None,
        }
    }
}

/// A source column's type forced by the policy's `schema` table (CSV only).
pub fn arrow_type(ty: ColumnType) -> DataType {
    match ty {
        ColumnType::Float64 => DataType::Float64,
        ColumnType::Float32 => DataType::Float32,
        ColumnType::Int64 => DataType::Int64,
        ColumnType::Boolean => DataType::Boolean,
        ColumnType::Text => DataType::Utf8,
        ColumnType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
    }
}

fn sql_type(ty: ColumnType) -> &'static str {
    match ty {
        ColumnType::Float64 => "DOUBLE",
        ColumnType::Float32 => "REAL",
        ColumnType::Int64 => "BIGINT",
        ColumnType::Boolean => "BOOLEAN",
        ColumnType::Text => "VARCHAR",
        ColumnType::Timestamp => "TIMESTAMP",
    }
}

/// `name` as a quoted SQL identifier: case and punctuation kept, quotes doubled.
pub fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
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
}

impl TableSource {
    /// Plans the query for `grant` and starts streaming it in batches of `batch_rows`.
    pub fn open(
        grant: &InputGrant,
        batch_rows: usize,
        tokio: Arc<tokio::runtime::Runtime>,
    ) -> Result<TableSource, DataError> {
        let path = grant.source.clone();
        let format =
            SourceFormat::of(&path).ok_or_else(|| DataError::Format { path: path.clone() })?;
        if !path.is_file() {
            return Err(DataError::Open {
                path: path.clone(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
            });
        }
        let mut config = SessionConfig::new()
            .with_batch_size(batch_rows.max(1))
            // One partition, no repartitioning: rows come out in the order of the file.
            .with_target_partitions(1)
            .with_repartition_file_scans(false);
        // Column names keep their case, so a policy can write `Contract = 'Month-to-month'`
        // for the table's `Contract` column without quoting it.
        config.options_mut().sql_parser.enable_ident_normalization = false;
        let context = SessionContext::new_with_config(config);
        let location = path.to_string_lossy().into_owned();
        let register = async {
            match format {
                SourceFormat::Csv => {
                    let schema = csv_schema(&path, grant)?;
                    let extension = path
                        .extension()
                        .map(|e| format!(".{}", e.to_string_lossy()))
                        .unwrap_or_default();
                    let options = CsvReadOptions::new()
                        .has_header(true)
                        .schema(&schema)
                        .file_extension(&extension);
                    context
                        .register_csv(SOURCE_TABLE, &location, options)
                        .await
                        .map_err(|e| query_error(&path, "cannot read the table", e))
                }
                SourceFormat::Parquet => {
                    let extension = path
                        .extension()
                        .map(|e| format!(".{}", e.to_string_lossy()))
                        .unwrap_or_default();
                    let options = ParquetReadOptions::default().file_extension(&extension);
                    context
                        .register_parquet(SOURCE_TABLE, &location, options)
                        .await
                        .map_err(|e| query_error(&path, "cannot read the table", e))
                }
            }
        };
        tokio.block_on(register)?;

        let table_columns: Vec<(String, DataType)> = tokio
            .block_on(context.table(SOURCE_TABLE))
            .map_err(|e| query_error(&path, "cannot read the table", e))?
            .schema()
            .fields()
            .iter()
            .map(|f| (f.name().clone(), f.data_type().clone()))
            .collect();
        let query = build_query(grant, &table_columns);
        let stream = tokio.block_on(async {
            let frame = context.sql(&query).await.map_err(|e| {
                query_error(
                    &path,
                    "the policy's columns, filter or masks do not fit the table",
                    e,
                )
            })?;
            frame
                .execute_stream()
                .await
                .map_err(|e| query_error(&path, "cannot start reading the table", e))
        })?;
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
        })
    }

    /// Rows read so far (after the filter).
    pub fn rows_read(&self) -> u64 {
        self.rows_read
    }

    /// The next batch, or `None` at the end of the table.
    pub fn next_batch(&mut self) -> Result<Option<KeyedBatch>, DataError> {
        loop {
            let next = self.tokio.block_on(self.stream.next());
            let record = match next {
                None => return Ok(None),
                Some(Err(error)) => {
                    return Err(query_error(&self.path, "cannot read the table", error));
                }
                Some(Ok(record)) => record,
            };
            if record.num_rows() == 0 {
                continue;
            }
            let keyed = self.convert(&record)?;
            self.rows_read += keyed.batch.num_rows as u64;
            return Ok(Some(keyed));
        }
    }

    /// Splits a record batch into the key values (kept here) and the model's columns.
    fn convert(&mut self, record: &RecordBatch) -> Result<KeyedBatch, DataError> {
        let rows = record.num_rows();
        let mut keys = vec![Vec::with_capacity(self.key_count); rows];
        for index in 0..self.key_count {
            let array = self.column_as(record, index, &DataType::Utf8)?;
            let strings = array.as_string::<i32>();
            for (row, key) in keys.iter_mut().enumerate() {
                key.push(if strings.is_null(row) {
                    String::new()
                } else {
                    strings.value(row).to_owned()
                });
            }
        }
        let mut columns = Vec::with_capacity(self.columns.len());
        for (offset, (name, ty)) in self.columns.iter().enumerate() {
            let array = self.column_as(record, self.key_count + offset, &arrow_type(*ty))?;
            let validity = match array.nulls() {
                Some(nulls) if nulls.null_count() > 0 => nulls.iter().collect(),
                _ => Vec::new(),
            };
            let values = match ty {
                ColumnType::Float64 => {
                    ColumnValues::Float64(array.as_primitive::<Float64Type>().values().to_vec())
                }
                ColumnType::Float32 => {
                    ColumnValues::Float32(array.as_primitive::<Float32Type>().values().to_vec())
                }
                ColumnType::Int64 => {
                    ColumnValues::Int64(array.as_primitive::<Int64Type>().values().to_vec())
                }
                ColumnType::Timestamp => ColumnValues::Timestamp(
                    array
                        .as_primitive::<TimestampMicrosecondType>()
                        .values()
                        .to_vec(),
                ),
                ColumnType::Boolean => {
                    let flags = array.as_boolean();
                    ColumnValues::Boolean((0..rows).map(|row| flags.value(row)).collect())
                }
                ColumnType::Text => {
                    let strings = array.as_string::<i32>();
                    ColumnValues::Text(
                        (0..rows)
                            .map(|row| {
                                if strings.is_null(row) {
                                    String::new()
                                } else {
                                    strings.value(row).to_owned()
                                }
                            })
                            .collect(),
                    )
                }
            };
            columns.push(Column {
                name: name.clone(),
                values,
                validity,
            });
        }
        let index = self.next_index;
        self.next_index += 1;
        Ok(KeyedBatch {
            index,
            batch: Batch {
                num_rows: rows,
                columns,
            },
            keys,
        })
    }

    /// Column `index` of the record, cast to exactly `ty` (DataFusion may hand back views or
    /// other string and time encodings).
    fn column_as(
        &self,
        record: &RecordBatch,
        index: usize,
        ty: &DataType,
    ) -> Result<ArrayRef, DataError> {
        let column = record
            .columns()
            .get(index)
            .ok_or_else(|| DataError::Internal {
                path: self.path.clone(),
                message: format!("the query returned no column {index}"),
            })?;
        cast(column, ty).map_err(|e| DataError::Internal {
            path: self.path.clone(),
            message: format!("cannot convert column {index} to {ty}: {e}"),
        })
    }
}

fn query_error(path: &Path, what: &str, error: datafusion::error::DataFusionError) -> DataError {
    DataError::Query {
        path: path.to_owned(),
        what: what.to_owned(),
        message: error.to_string(),
    }
}

/// Every column of a CSV file read as text, except those the policy's `schema` types: text
/// keeps ids such as `0042` intact, and the query casts to the manifest's types itself, so a
/// malformed value is an error instead of a guess.
fn csv_schema(path: &Path, grant: &InputGrant) -> Result<Schema, DataError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_path(path)
        .map_err(|source| DataError::Csv {
            path: path.to_owned(),
            source,
        })?;
    let headers = reader.headers().map_err(|source| DataError::Csv {
        path: path.to_owned(),
        source,
    })?;
    let fields: Vec<Field> = headers
        .iter()
        .map(|name| {
            let ty = grant
                .schema
                .get(name)
                .map_or(DataType::Utf8, |ty| arrow_type(*ty));
            Field::new(name, ty, true)
        })
        .collect();
    Ok(Schema::new(fields))
}

/// `SELECT keys..., columns... FROM source [WHERE filter]`.
///
/// A `columns` value that names a column of the table reads that column; any other value is
/// an SQL expression over the table's columns. A mask replaces either.
fn build_query(grant: &InputGrant, table_columns: &[(String, DataType)]) -> String {
    let mut select = Vec::with_capacity(grant.key.len() + grant.columns.len());
    for key in &grant.key {
        select.push(format!("CAST({} AS VARCHAR)", quote_identifier(key)));
    }
    for column in &grant.columns {
        let source_type = table_columns
            .iter()
            .find(|(name, _)| *name == column.source)
            .map(|(_, ty)| ty);
        let expression = match (&column.mask, source_type) {
            (Some(mask), _) => format!("({mask})"),
            (None, Some(_)) => quote_identifier(&column.source),
            (None, None) => format!("({})", column.source),
        };
        let is_text = matches!(
            source_type,
            Some(DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
        ) && column.mask.is_none();
        let converted = match column.ty {
            // A blank cell is a null.
            ColumnType::Text => format!("NULLIF(CAST({expression} AS VARCHAR), '')"),
            // Text becomes a number only after trimming, and a blank is a null, not an error.
            ty if is_text => format!("CAST(NULLIF(TRIM({expression}), '') AS {})", sql_type(ty)),
            ty => format!("CAST({expression} AS {})", sql_type(ty)),
        };
        select.push(format!(
            "{converted} AS {}",
            quote_identifier(column.model.as_str())
        ));
    }
    let mut query = format!("SELECT {} FROM {SOURCE_TABLE}", select.join(", "));
    if let Some(filter) = &grant.filter {
        query.push_str(&format!(" WHERE ({filter})"));
    }
    query
}
