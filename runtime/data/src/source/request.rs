//! Rows that arrive in requests (`source = "request"`, for `cordon serve`): the grant's query
//! (filter, column map, masks, role, casts, keys held back) planned once over the columns a
//! request may carry, and run on each batch of requests. A request's values reach the sandbox
//! only through that query, exactly as a table's rows do.
//!
//! Which rows the filter let through is tracked by a row number the host adds to every batch
//! as one more key column: it never enters the sandbox, and the driver uses it to give each
//! request's refused rows null outputs.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Int64Array, RecordBatch};
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::source::DataSourceExec;
use datafusion::execution::TaskContext;
use datafusion::physical_plan::ExecutionPlan;

use super::binding::SourceBinding;
use super::query::build_query;
use super::{checked_grant, convert_record, query_error};
use crate::DataError;
use cordon_config::grant::InputGrant;
use cordon_config::manifest::{ColumnType, InputMode};
use cordon_contract::arrow::arrow_type;
use cordon_contract::data::{HeldBack, KeyedBatch};

/// The column the host adds to each batch: the row's position in the batch. Its name has
/// spaces, which no request tensor may have, so no request can supply or shadow it.
pub const ROW_NUMBER_COLUMN: &str = "cordon request row";

/// One tensor a request may (and must) carry: a source column of the binding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestColumn {
    pub name: String,
    pub ty: ColumnType,
    /// A key column: returned beside the outputs, never entering the sandbox.
    pub key: bool,
}

/// A batch of request rows after the grant's query: what enters the sandbox, and for each of
/// its rows, the position of the request row it came from.
pub struct SelectedRows {
    pub batch: KeyedBatch,
    /// `rows[i]` is the position, in the batch handed to [`RequestSource::select`], of the row
    /// that became row `i` of `batch`.
    pub rows: Vec<usize>,
}

/// The grant's query over request rows, planned once.
pub struct RequestSource {
    columns: Vec<RequestColumn>,
    /// The request columns and the host's row number, as the plan reads them.
    table_schema: SchemaRef,
    plan: Arc<dyn ExecutionPlan>,
    task: Arc<TaskContext>,
    model_columns: Vec<(String, ColumnType)>,
    /// The grant's own key columns (the row number comes after them).
    key_count: usize,
}

impl std::fmt::Debug for RequestSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestSource")
            .field("columns", &self.columns)
            .finish_non_exhaustive()
    }
}

/// What errors name the rows by.
fn label() -> std::path::PathBuf {
    std::path::PathBuf::from("<request>")
}

/// Whether a granted column's `source` names one column (a request tensor) rather than an SQL
/// expression over columns.
fn is_column_name(source: &str) -> bool {
    !source.is_empty()
        && source
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The tensors a request for `grant` carries: each granted column's source column (typed as
/// the manifest types the column, unless the binding's `schema` says otherwise), each column
/// of `schema` (read by an expression, a mask or the filter), and the key columns (text unless
/// `schema` types them). Sorted by name.
pub fn request_columns(grant: &InputGrant) -> Result<Vec<RequestColumn>, DataError> {
    let mut columns: Vec<RequestColumn> = Vec::new();
    let mut add = |name: &str, ty: ColumnType, key: bool| {
        if let Some(existing) = columns.iter_mut().find(|c| c.name == name) {
            existing.key |= key;
        } else {
            columns.push(RequestColumn {
                name: name.to_owned(),
                ty,
                key,
            });
        }
    };
    for column in &grant.columns {
        if is_column_name(&column.source) {
            let ty = grant
                .schema
                .get(&column.source)
                .copied()
                .unwrap_or(column.ty);
            add(&column.source, ty, false);
        }
    }
    for (name, ty) in &grant.schema {
        add(name, *ty, false);
    }
    for key in &grant.key {
        let ty = grant.schema.get(key).copied().unwrap_or(ColumnType::Text);
        add(key, ty, true);
    }
    if let Some(bad) = columns.iter().find(|c| c.name == ROW_NUMBER_COLUMN) {
        return Err(DataError::Internal {
            path: label(),
            message: format!("`{}` is the host's own column name", bad.name),
        });
    }
    columns.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(columns)
}

impl RequestSource {
    /// Plans the grant's query over the request columns: every SQL snippet of the grant is
    /// checked against them first, as a table's are, so a policy that does not fit its
    /// requests fails when the server starts, not at its first request.
    pub async fn prepare(
        grant: &InputGrant,
        batch_rows: usize,
    ) -> Result<RequestSource, DataError> {
        if grant.mode != InputMode::Row {
            return Err(DataError::Internal {
                path: label(),
                message: format!(
                    "input `{}` is in partition mode; only row-mode models can be served for now",
                    grant.name
                ),
            });
        }
        let columns = request_columns(grant)?;
        let mut fields: Vec<Field> = columns
            .iter()
            .map(|c| Field::new(&c.name, arrow_type(c.ty), true))
            .collect();
        fields.push(Field::new(ROW_NUMBER_COLUMN, DataType::Int64, false));
        let table_schema = Arc::new(Schema::new(fields));
        let binding = SourceBinding::Memory {
            schema: Arc::clone(&table_schema),
            batches: vec![RecordBatch::new_empty(Arc::clone(&table_schema))],
        };
        let mut numbered = grant.clone();
        numbered.key.push(ROW_NUMBER_COLUMN.to_owned());
        let (context, table_columns, numbered) =
            checked_grant(&binding, &numbered, batch_rows).await?;
        let query = build_query(&numbered, &table_columns);
        let plan = context
            .sql(&query)
            .await
            .map_err(|e| query_error(&label(), "the policy does not fit the requests", e))?
            .create_physical_plan()
            .await
            .map_err(|e| query_error(&label(), "cannot plan the requests' query", e))?;
        let source = RequestSource {
            columns,
            table_schema,
            plan,
            task: context.task_ctx(),
            model_columns: grant
                .columns
                .iter()
                .map(|c| (c.model.to_string(), c.ty))
                .collect(),
            key_count: grant.key.len(),
        };
        // The plan must read its rows from the one in-memory table that each batch replaces.
        source.plan_for(RecordBatch::new_empty(Arc::clone(&source.table_schema)))?;
        Ok(source)
    }

    /// The tensors a request must carry, sorted by name.
    pub fn columns(&self) -> &[RequestColumn] {
        &self.columns
    }

    /// The schema of the batches [`RequestSource::select`] takes: the request columns in
    /// [`RequestSource::columns`]' order.
    pub fn request_schema(&self) -> SchemaRef {
        let fields: Vec<Field> = self
            .columns
            .iter()
            .map(|c| Field::new(&c.name, arrow_type(c.ty), true))
            .collect();
        Arc::new(Schema::new(fields))
    }

    /// The prepared plan reading `batch` instead of the table it was planned over.
    fn plan_for(&self, batch: RecordBatch) -> Result<Arc<dyn ExecutionPlan>, DataError> {
        let mut replaced = 0usize;
        let plan = Arc::clone(&self.plan)
            .transform_up(|node| {
                let Some(memory) = node
                    .downcast_ref::<DataSourceExec>()
                    .and_then(|exec| exec.data_source().downcast_ref::<MemorySourceConfig>())
                else {
                    return Ok(Transformed::no(node));
                };
                replaced += 1;
                let exec = MemorySourceConfig::try_new_exec(
                    &[vec![batch.clone()]],
                    memory.original_schema(),
                    memory.projection().clone(),
                )?;
                Ok(Transformed::yes(exec as Arc<dyn ExecutionPlan>))
            })
            .map_err(|e| query_error(&label(), "cannot read the requests", e))?
            .data;
        if replaced != 1 {
            return Err(DataError::Internal {
                path: label(),
                message: format!("the requests' query reads {replaced} tables, not one"),
            });
        }
        Ok(plan)
    }

    /// Runs the grant's query on `columns` (the request columns in
    /// [`RequestSource::columns`]' order, all of one length): the rows its filter lets
    /// through, masked and cast, with their keys held back and their positions.
    pub async fn select(&self, columns: Vec<ArrayRef>) -> Result<SelectedRows, DataError> {
        let rows = columns.first().map_or(0, |c| c.len());
        let mut columns = columns;
        columns.push(Arc::new(Int64Array::from_iter_values(0..rows as i64)));
        let batch = RecordBatch::try_new(Arc::clone(&self.table_schema), columns).map_err(|e| {
            DataError::Internal {
                path: label(),
                message: format!("the request's tensors do not make a table: {e}"),
            }
        })?;
        let plan = self.plan_for(batch)?;
        let records = datafusion::physical_plan::collect(plan, Arc::clone(&self.task))
            .await
            .map_err(|e| query_error(&label(), "the request's values do not fit the policy", e))?;
        let schema = match records.first() {
            Some(first) => first.schema(),
            None => self.plan.schema(),
        };
        let record = concat_batches(&schema, &records).map_err(|e| DataError::Internal {
            path: label(),
            message: format!("cannot gather the request's rows: {e}"),
        })?;
        let mut keyed = convert_record(
            &label(),
            &self.model_columns,
            self.key_count + 1,
            0,
            &record,
        )?;
        // The last key is the row number: taken off, so only the grant's keys go back out.
        let mut positions = Vec::with_capacity(keyed.batch.num_rows);
        if let HeldBack::RowKeys(keys) = &mut keyed.held_back {
            for key in keys.iter_mut() {
                let position = key
                    .pop()
                    .and_then(|number| number.parse::<usize>().ok())
                    .filter(|position| *position < rows)
                    .ok_or_else(|| DataError::Internal {
                        path: label(),
                        message: "a row came back without its row number".into(),
                    })?;
                positions.push(position);
            }
        }
        Ok(SelectedRows {
            batch: keyed,
            rows: positions,
        })
    }
}
