//! Tables for a SQL session (`cordon sql`): a *governed table* is a policy binding seen as a
//! table, and a *plain table* is a consumer's table that never feeds a model.
//!
//! A governed table is the grant's own query (the same one `cordon run` reads through: filter,
//! column map, masks, the role's narrowing, casts to the manifest's types), with the key columns
//! under their own names. The session sees only its result: the source table is registered in
//! a context of its own that the session's SQL cannot name, so no query can read an ungranted
//! column or an unmasked value, whatever it joins or nests.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::catalog::Session;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::SessionContext;

use super::binding::{SourceBinding, register_as};
use super::query::build_query;
use super::{checked_grant, query_error, quote_identifier};
use crate::DataError;
use cordon_config::grant::InputGrant;
use cordon_config::manifest::ColumnType;

/// A policy binding as a table of a SQL session: its key columns (text), then the granted model
/// columns under the model's names and types, with the binding's filter and masks applied.
#[derive(Debug)]
pub struct GovernedTable {
    /// The manifest input it binds (`customers`), which is also its table name.
    pub input: String,
    /// The key columns, under their source names.
    pub keys: Vec<String>,
    /// The granted model columns, in the manifest's order.
    pub columns: Vec<(String, ColumnType)>,
    /// The grant's query over the source, planned in a context of its own.
    view: Arc<dyn TableProvider>,
}

impl GovernedTable {
    /// Plans the grant's query over `binding`, checking every SQL snippet of the policy
    /// against the table first, as a run does; reads no row.
    pub async fn open(
        binding: &SourceBinding,
        grant: &InputGrant,
        batch_rows: usize,
    ) -> Result<GovernedTable, DataError> {
        let path = binding.label();
        let (context, table_columns, grant) = checked_grant(binding, grant, batch_rows).await?;
        let grant = &grant;
        for key in &grant.key {
            if grant.columns.iter().any(|c| c.model.as_str() == key) {
                return Err(DataError::Query {
                    path: path.clone(),
                    what: format!("governed table `{}`", grant.name),
                    message: format!(
                        "key column `{key}` has the name of a model column; as a table the two would be one column"
                    ),
                });
            }
        }
        let query = governed_query(grant, &table_columns);
        let frame = context.sql(&query).await.map_err(|e| {
            query_error(
                &path,
                "the policy's columns, filter or masks do not fit the table",
                e,
            )
        })?;
        Ok(GovernedTable {
            input: grant.name.to_string(),
            keys: grant.key.clone(),
            columns: grant
                .columns
                .iter()
                .map(|c| (c.model.to_string(), c.ty))
                .collect(),
            view: frame.into_view(),
        })
    }

    /// Whether `column` is a granted model column (not a key) of this table.
    pub fn is_granted(&self, column: &str) -> bool {
        self.columns.iter().any(|(name, _)| name == column)
    }
}

/// The grant's query with its key columns under their own names.
fn governed_query(grant: &InputGrant, table_columns: &[(String, DataType)]) -> String {
    let keys = grant.key.iter().enumerate().map(|(index, key)| {
        format!(
            "{} AS {}",
            quote_identifier(&super::query::key_alias(index)),
            quote_identifier(key)
        )
    });
    let columns = grant
        .columns
        .iter()
        .map(|c| quote_identifier(c.model.as_str()));
    let select: Vec<String> = keys.chain(columns).collect();
    format!(
        "SELECT {} FROM ({}) AS governed",
        select.join(", "),
        build_query(grant, table_columns)
    )
}

#[async_trait]
impl TableProvider for GovernedTable {
    fn schema(&self) -> SchemaRef {
        self.view.schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    /// None, unlike a view: the session's planner must not inline the grant's query (and with
    /// it the source table) into a user's plan, where the plan checks would have to tell the
    /// policy's own reads from the user's.
    fn get_logical_plan(&'_ self) -> Option<Cow<'_, LogicalPlan>> {
        None
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        self.view.scan(state, projection, filters, limit).await
    }
}

/// A plain table of the consumer's (`[table.<name>]`), registered in `context` under `name`:
/// CSV columns as text unless `schema` types them, Parquet as it is.
pub async fn plain_table(
    context: &SessionContext,
    name: &str,
    path: &Path,
    schema: &BTreeMap<String, ColumnType>,
) -> Result<(), DataError> {
    let binding = SourceBinding::File(path.to_owned());
    register_as(context, name, &binding, schema).await
}
