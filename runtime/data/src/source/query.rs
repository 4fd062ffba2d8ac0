//! The query a source reads through: every SQL snippet of the grant checked against the
//! table on its own, in canonical form, and the two-level query that applies the binding's
//! and the role's masks.

use std::collections::BTreeSet;
use std::path::Path;

use datafusion::arrow::datatypes::DataType;
use datafusion::prelude::SessionContext;

use cordon_config::grant::{GrantedColumn, InputGrant};
use cordon_config::manifest::{ColumnType, InputMode};

use crate::DataError;

/// The table name the query reads from.
pub(super) const SOURCE_TABLE: &str = "source";

pub(super) fn sql_type(ty: ColumnType) -> &'static str {
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

/// Plans every SQL snippet of the grant on its own against the table, so that one that names a
/// missing column or does not type-check is reported with the policy key it is written under.
/// Planning reads the table's schema only, never a row.
pub(super) async fn check_expressions(
    context: &SessionContext,
    grant: &InputGrant,
    table_columns: &[(String, DataType)],
    path: &Path,
) -> Result<(), DataError> {
    let is_table_column = |name: &str| table_columns.iter().any(|(column, _)| column == name);
    // (policy key, SQL, query that plans it, whether it feeds the sandbox).
    let mut checks: Vec<(&str, &str, String, bool)> = Vec::new();
    for (key, filter) in &grant.filters {
        // A filter may read key columns: it chooses rows, and its values never enter.
        checks.push((
            key,
            filter,
            format!("SELECT 1 FROM {SOURCE_TABLE} WHERE ({filter})"),
            false,
        ));
    }
    for column in &grant.columns {
        if let (Some(mask), Some(key)) = (&column.mask, &column.mask_key) {
            checks.push((
                key,
                mask,
                format!("SELECT ({mask}) FROM {SOURCE_TABLE}"),
                true,
            ));
        } else if !is_table_column(&column.source) {
            let source = &column.source;
            checks.push((
                &column.source_key,
                source,
                format!("SELECT ({source}) FROM {SOURCE_TABLE}"),
                true,
            ));
        }
    }
    // A role's mask is planned over the binding's result alone: the model's columns, as the
    // binding masks them, without the key columns. A name of the table is not in scope.
    let granted = binding_query(grant, table_columns, false);
    for column in &grant.columns {
        if let (Some(mask), Some(key)) = (&column.role_mask, &column.role_mask_key) {
            checks.push((
                key,
                mask,
                format!("SELECT ({mask}) FROM ({granted}) AS granted"),
                true,
            ));
        }
    }
    for key in &grant.key {
        if !is_table_column(key) {
            return Err(policy_sql_error(
                grant,
                path,
                &format!("bind.{}.key", grant.name),
                key,
                format!(
                    "the table has no column `{key}`; it has: {}",
                    table_columns
                        .iter()
                        .map(|(name, _)| name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
    }
    let model_columns = || {
        grant
            .columns
            .iter()
            .map(|c| c.model.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let key_aliases: Vec<String> = (0..grant.key.len()).map(key_alias).collect();
    for (key, sql, query, feeds_sandbox) in checks {
        let refuse = |message: String| {
            let message = with_schema_hint(&in_policy_names(&message), sql, table_columns, grant);
            policy_sql_error(grant, path, key, sql, message)
        };
        let plan = match context.sql(&query).await {
            Ok(frame) => frame.into_unoptimized_plan(),
            Err(error) => {
                let mut message = error.strip_backtrace().to_string();
                if key.starts_with("role.") {
                    message = format!(
                        "a role's mask applies to the binding's result and reads only the model's columns ({}), not the table's: {message}",
                        model_columns()
                    );
                }
                return Err(refuse(message));
            }
        };
        // The binding's level scans the table once; a second scan is a subquery of the role's
        // own, reading the table past the binding's masks.
        if key.starts_with("role.") && tables_scanned(&plan) > 1 {
            return Err(refuse(
                "a role's mask may not read a table (a subquery): it applies to the binding's result alone".to_string(),
            ));
        }
        if feeds_sandbox {
            let read = columns_read(&plan);
            if let Some(held_back) = grant
                .key
                .iter()
                .chain(&key_aliases)
                .find(|name| read.contains(*name))
            {
                return Err(refuse(format!(
                    "it reads key column `{held_back}`; key columns never enter the sandbox"
                )));
            }
        }
        // Optimizing type-checks what planning alone lets through.
        let optimized = context.state().optimize(&plan);
        if let Err(error) = optimized {
            return Err(refuse(error.strip_backtrace().to_string()));
        }
    }
    Ok(())
}

/// DataFusion's message with the names a policy writes: its suggestions qualify each column
/// with the query's internal table names (`source.tenure`, `granted.contract`), which no
/// policy uses.
fn in_policy_names(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(at) = ["source.", "granted."]
        .iter()
        .filter_map(|prefix| rest.find(prefix).map(|at| (at, prefix.len())))
        .min()
    {
        let (at, length) = at;
        let (before, after) = rest.split_at(at);
        out.push_str(before);
        // Only a whole word: `source.csv` inside a path or `datasource.x` stays.
        let starts_a_word = before
            .chars()
            .next_back()
            .is_none_or(|c| !(c.is_alphanumeric() || c == '_' || c == '.' || c == '/'));
        let (prefix, tail) = after.split_at(length);
        let qualifies_a_name = tail
            .chars()
            .next()
            .is_some_and(|c| c.is_alphabetic() || c == '_' || c == '"');
        if !(starts_a_word && qualifies_a_name) {
            out.push_str(prefix);
        }
        rest = tail;
    }
    out.push_str(rest);
    // DataFusion's advice on case names a session setting; a policy quotes the name instead.
    out.replace(
        " or disable the datafusion.sql_parser.enable_ident_normalization configuration",
        "",
    )
}

/// A type error over a CSV table's text columns says what fixes it: CSV columns are read as
/// text unless the binding's `schema` types them, so `MonthlyCharges / 12` fails until
/// `schema = { MonthlyCharges = "float64" }` says it is a number.
fn with_schema_hint(
    message: &str,
    sql: &str,
    table_columns: &[(String, DataType)],
    grant: &InputGrant,
) -> String {
    let type_error = [
        "Cannot coerce",
        "Cannot infer common",
        "No function matches",
        "Utf8",
    ]
    .iter()
    .any(|sign| message.contains(sign));
    if !type_error || grant.source.extension().and_then(|e| e.to_str()) != Some("csv") {
        return message.to_owned();
    }
    let text_columns: Vec<&str> = table_columns
        .iter()
        .filter(|(name, ty)| {
            matches!(
                ty,
                DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8
            ) && !grant.schema.contains_key(name)
                && mentions(sql, name)
        })
        .map(|(name, _)| name.as_str())
        .collect();
    if text_columns.is_empty() {
        return message.to_owned();
    }
    let typed: Vec<String> = text_columns
        .iter()
        .map(|name| format!("{name} = \"float64\""))
        .collect();
    format!(
        "{message}; {} read as text (a CSV column is text unless the binding's `schema` types it): add schema = {{ {} }} (or int64, ...) to [bind.{}]",
        text_columns
            .iter()
            .map(|name| format!("`{name}`"))
            .collect::<Vec<_>>()
            .join(", ")
            + if text_columns.len() == 1 {
                " is"
            } else {
                " are"
            },
        typed.join(", "),
        grant.name
    )
}

/// Whether `sql` names `column` as a whole word (or quoted).
fn mentions(sql: &str, column: &str) -> bool {
    let is_word = |c: char| c.is_alphanumeric() || c == '_';
    sql.match_indices(column).any(|(at, _)| {
        let before = sql.get(..at).and_then(|b| b.chars().next_back());
        let after = sql.get(at + column.len()..).and_then(|a| a.chars().next());
        !before.is_some_and(is_word) && !after.is_some_and(is_word)
    })
}

/// The name the query gives key column `index` between its two levels: not a valid model
/// column name (names have no spaces), so no model column can take it.
pub(super) fn key_alias(index: usize) -> String {
    format!("cordon key {index}")
}

/// A model column's value as the binding gives it, over the table's columns: its mask, or the
/// source column it names, or its SQL expression.
pub(super) fn binding_expression(
    column: &GrantedColumn,
    table_columns: &[(String, DataType)],
) -> String {
    let is_table_column = table_columns.iter().any(|(name, _)| *name == column.source);
    match &column.mask {
        Some(mask) => format!("({mask})"),
        None if is_table_column => quote_identifier(&column.source),
        None => format!("({})", column.source),
    }
}

/// The inner level of the query: the rows that pass the filter, each model column as the
/// binding gives it (under the model's name), and, with `with_keys`, the key columns under
/// [`key_alias`]es.
pub(super) fn binding_query(
    grant: &InputGrant,
    table_columns: &[(String, DataType)],
    with_keys: bool,
) -> String {
    let mut select = Vec::with_capacity(grant.key.len() + grant.columns.len());
    if with_keys {
        for (index, key) in grant.key.iter().enumerate() {
            select.push(format!(
                "{} AS {}",
                quote_identifier(key),
                quote_identifier(&key_alias(index))
            ));
        }
    }
    for column in &grant.columns {
        select.push(format!(
            "{} AS {}",
            binding_expression(column, table_columns),
            quote_identifier(column.model.as_str())
        ));
    }
    let mut query = format!("SELECT {} FROM {SOURCE_TABLE}", select.join(", "));
    if let Some(filter) = &grant.filter {
        query.push_str(&format!(" WHERE ({filter})"));
    }
    query
}

/// `SELECT keys..., columns... FROM (binding level) [ORDER BY partition]`, in two levels: the
/// inner computes each column as the binding grants it, and the outer applies the role's mask
/// on top and casts to the manifest's type. A role's mask can therefore only read what the
/// binding already let through: `zip = "zip"` in a role reads `left(zip, 3)` if the binding
/// masks it so.
///
/// A `columns` value that names a column of the table reads that column; any other value is
/// an SQL expression over the table's columns. A mask replaces either.
pub(super) fn build_query(grant: &InputGrant, table_columns: &[(String, DataType)]) -> String {
    let mut select = Vec::with_capacity(grant.key.len() + grant.columns.len());
    for index in 0..grant.key.len() {
        let alias = quote_identifier(&key_alias(index));
        select.push(format!("CAST({alias} AS VARCHAR) AS {alias}"));
    }
    for column in &grant.columns {
        let source_type = table_columns
            .iter()
            .find(|(name, _)| *name == column.source)
            .map(|(_, ty)| ty);
        let model = quote_identifier(column.model.as_str());
        let expression = match &column.role_mask {
            Some(mask) => format!("({mask})"),
            None => model.clone(),
        };
        let is_text = matches!(
            source_type,
            Some(DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
        ) && column.mask.is_none()
            && column.role_mask.is_none();
        let converted = match column.ty {
            // A blank cell is a null.
            ColumnType::Text => format!("NULLIF(CAST({expression} AS VARCHAR), '')"),
            // Text becomes a number only after trimming, and a blank is a null, not an error.
            ty if is_text => format!("CAST(NULLIF(TRIM({expression}), '') AS {})", sql_type(ty)),
            ty => format!("CAST({expression} AS {})", sql_type(ty)),
        };
        select.push(format!("{converted} AS {model}"));
    }
    let mut query = format!(
        "SELECT {} FROM ({}) AS granted",
        select.join(", "),
        binding_query(grant, table_columns, true)
    );
    // Partition mode: partitions one after another, each in the model's order.
    let sort: Vec<String> = grant
        .partition_by
        .iter()
        .chain(&grant.order_by)
        .map(|name| quote_identifier(name.as_str()))
        .collect();
    if grant.mode == InputMode::Partition && !sort.is_empty() {
        query.push_str(&format!(" ORDER BY {}", sort.join(", ")));
    }
    query
}

/// Policy SQL (`sql`, written at `key`) that does not fit the table at `path`: refused at its
/// line in the policy, as any other mistake in the policy is.
pub(super) fn policy_sql_error(
    grant: &InputGrant,
    path: &Path,
    key: &str,
    sql: &str,
    message: String,
) -> DataError {
    DataError::PolicySql(grant.policy.error_at(
        key,
        format!(
            "{} `{sql}` does not fit {}: {message}",
            cordon_config::policy::describe_key(key),
            path.display()
        ),
    ))
}

/// The grant with every SQL snippet of the policy replaced by its canonical text
/// ([`cordon_config::policy::canonical_sql_expression`]): each one balanced expression with no comment,
/// so that text from one key cannot comment out, or sit inside a literal opened by, the query
/// text of the next. A snippet that is not one expression is an error at its key.
pub(super) fn canonical_grant(
    grant: &InputGrant,
    table_columns: &[(String, DataType)],
    path: &Path,
) -> Result<InputGrant, DataError> {
    let canonical = |key: &str, sql: &str| {
        cordon_config::policy::canonical_sql_expression(sql)
            .map_err(|message| policy_sql_error(grant, path, key, sql, message))
    };
    let mut grant = grant.clone();
    for (key, filter) in &mut grant.filters {
        *filter = canonical(key, filter)?;
    }
    grant.filter = match grant.filters.as_slice() {
        [] => None,
        [(_, only)] => Some(only.clone()),
        all => Some(
            all.iter()
                .map(|(_, filter)| format!("({filter})"))
                .collect::<Vec<_>>()
                .join(" AND "),
        ),
    };
    for column in &mut grant.columns {
        if !table_columns.iter().any(|(name, _)| *name == column.source) {
            column.source = canonical(&column.source_key, &column.source)?;
        }
        if let (Some(mask), Some(key)) = (column.mask.as_mut(), column.mask_key.as_ref()) {
            *mask = canonical(key, mask)?;
        }
        if let (Some(mask), Some(key)) = (column.role_mask.as_mut(), column.role_mask_key.as_ref())
        {
            *mask = canonical(key, mask)?;
        }
    }
    Ok(grant)
}

/// How many table scans `plan` holds, subqueries included.
pub(super) fn tables_scanned(plan: &datafusion::logical_expr::LogicalPlan) -> usize {
    use datafusion::common::tree_node::TreeNodeRecursion;
    use datafusion::logical_expr::LogicalPlan;

    let mut scans = 0;
    // The closure never fails, so neither can the walk.
    let _ = plan.apply_with_subqueries(|node| {
        if matches!(node, LogicalPlan::TableScan(_)) {
            scans += 1;
        }
        Ok(TreeNodeRecursion::Continue)
    });
    scans
}

/// Every column name an expression of `plan` reads, in any node and any subquery: what a
/// snippet of SQL really reads, whatever its text looks like (`"customerID"`, a subquery over
/// the table, a function of a key).
pub(super) fn columns_read(plan: &datafusion::logical_expr::LogicalPlan) -> BTreeSet<String> {
    use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
    use datafusion::logical_expr::Expr;

    let mut names = BTreeSet::new();
    // The closures never fail, so neither can the walk.
    let _ = plan.apply_with_subqueries(|node| {
        node.apply_expressions(|expression| {
            expression.apply(|inner| {
                match inner {
                    Expr::Column(column) | Expr::OuterReferenceColumn(_, column) => {
                        names.insert(column.name.clone());
                    }
                    _ => {}
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })
    });
    names
}
