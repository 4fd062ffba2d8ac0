//! Where a source's rows come from, and how they become the one table the grant's query
//! reads: a file (CSV or Parquet) or record batches already in memory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::datasource::MemTable;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{CsvReadOptions, ParquetReadOptions, SessionConfig, SessionContext};

use super::query::SOURCE_TABLE;
use super::{QUERY_MEMORY, query_error};
use crate::DataError;
use cordon_config::grant::InputGrant;
use cordon_config::manifest::ColumnType;
use cordon_contract::arrow::arrow_type;

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

/// Where a source's rows come from. What the model may see is the grant's to say, whatever the
/// binding: every binding is registered as the one table the grant's query reads, so its
/// filter, masks, column expressions and held-back keys apply alike.
pub enum SourceBinding {
    /// A file, CSV or Parquet by its extension: the policy's `[bind.<input>] source`.
    File(PathBuf),
    /// Record batches a driver already holds in memory (a SQL engine's, a request's).
    Memory {
        schema: SchemaRef,
        batches: Vec<RecordBatch>,
    },
}

impl SourceBinding {
    /// What errors name the table by: its path, or `<memory>`.
    pub(crate) fn label(&self) -> PathBuf {
        match self {
            SourceBinding::File(path) => path.clone(),
            SourceBinding::Memory { .. } => PathBuf::from("<memory>"),
        }
    }
}

/// A DataFusion session that keeps the table's row order and the case of its column names,
/// with a bounded memory pool.
pub(crate) fn query_context(batch_rows: usize, path: &Path) -> Result<SessionContext, DataError> {
    let mut config = SessionConfig::new()
        .with_batch_size(batch_rows.max(1))
        // One partition, no repartitioning: rows come out in the order of the file.
        .with_target_partitions(1)
        .with_repartition_file_scans(false);
    // Column names keep their case, so a policy can write `Contract = 'Month-to-month'`
    // for the table's `Contract` column without quoting it.
    config.options_mut().sql_parser.enable_ident_normalization = false;
    let runtime_env = RuntimeEnvBuilder::new()
        .with_memory_limit(QUERY_MEMORY, 1.0)
        .build_arc()
        .map_err(|e| query_error(path, "cannot set up the query", e))?;
    Ok(SessionContext::new_with_config_rt(config, runtime_env))
}

/// Registers the binding's rows as the table the grant's query reads.
pub(super) async fn register(
    context: &SessionContext,
    binding: &SourceBinding,
    grant: &InputGrant,
) -> Result<(), DataError> {
    register_as(context, SOURCE_TABLE, binding, &grant.schema).await
}

/// Registers the binding's rows as table `name`; `schema` types the CSV columns it names.
pub(crate) async fn register_as(
    context: &SessionContext,
    name: &str,
    binding: &SourceBinding,
    schema: &BTreeMap<String, ColumnType>,
) -> Result<(), DataError> {
    let path = match binding {
        SourceBinding::File(path) => path,
        SourceBinding::Memory { schema, batches } => {
            let path = binding.label();
            // One partition, so that rows keep their order.
            let table = MemTable::try_new(Arc::clone(schema), vec![batches.clone()])
                .map_err(|e| query_error(&path, "cannot read the batches", e))?;
            context
                .register_table(name, Arc::new(table))
                .map_err(|e| query_error(&path, "cannot read the batches", e))?;
            return Ok(());
        }
    };
    let format = SourceFormat::of(path).ok_or_else(|| DataError::Format { path: path.clone() })?;
    if !path.is_file() {
        return Err(DataError::Open {
            path: path.clone(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
        });
    }
    let location = path.to_string_lossy().into_owned();
    let extension = path
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default();
    let registered = match format {
        SourceFormat::Csv => {
            let schema = csv_schema(path, schema)?;
            let options = CsvReadOptions::new()
                .has_header(true)
                .schema(&schema)
                .file_extension(&extension);
            context.register_csv(name, &location, options).await
        }
        SourceFormat::Parquet => {
            let options = ParquetReadOptions::default().file_extension(&extension);
            context.register_parquet(name, &location, options).await
        }
    };
    registered.map_err(|e| query_error(path, "cannot read the table", e))
}

/// Plans the grant's query and starts streaming its rows.
pub(super) async fn start_query(
    context: &SessionContext,
    query: &str,
    path: &Path,
) -> Result<SendableRecordBatchStream, DataError> {
    let frame = context.sql(query).await.map_err(|e| {
        query_error(
            path,
            "the policy's columns, filter or masks do not fit the table",
            e,
        )
    })?;
    frame
        .execute_stream()
        .await
        .map_err(|e| query_error(path, "cannot start reading the table", e))
}

/// Every column of a CSV file read as text, except those the policy's `schema` types: text
/// keeps ids such as `0042` intact, and the query casts to the manifest's types itself, so a
/// malformed value is an error instead of a guess.
fn csv_schema(path: &Path, types: &BTreeMap<String, ColumnType>) -> Result<Schema, DataError> {
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
            let ty = types.get(name).map_or(DataType::Utf8, |ty| arrow_type(*ty));
            Field::new(name, ty, true)
        })
        .collect();
    Ok(Schema::new(fields))
}
