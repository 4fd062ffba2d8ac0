//! The policy's SQL snippets (filters, masks, computed columns): checked when the policy is
//! loaded, and put in the canonical form the data plane splices into its query.

use std::collections::BTreeMap;

use crate::names::Name;

/// SQL the data plane will run must at least parse: a filter or mask with a typo fails when the
/// policy is loaded. Each must also be one expression and nothing else, so that no text can
/// close the parenthesis the query wraps it in and change the query's shape. Whether the
/// columns it names exist is checked against the table before any row is read
/// (`cordon_data::source`). Returns the dotted key at fault and why.
pub(super) fn check_binding_sql(
    table: &str,
    filter: Option<&String>,
    masks: &BTreeMap<Name, String>,
) -> Result<(), (String, String)> {
    if let Some(filter) = filter {
        check_sql_expression(filter)
            .map_err(|why| (format!("{table}.filter"), format!("[{table}] filter {why}")))?;
    }
    for (column, mask) in masks {
        check_sql_expression(mask).map_err(|why| {
            (
                format!("{table}.mask.{column}"),
                format!("[{table}] mask.{column} {why}"),
            )
        })?;
    }
    Ok(())
}

/// Parses `sql` as exactly one SQL expression in DataFusion's dialect.
pub fn check_sql_expression(sql: &str) -> Result<(), String> {
    canonical_sql_expression(sql).map(|_| ())
}

/// `sql` parsed as exactly one SQL expression and printed back by the parser: the text the
/// data plane splices into its query. It has no comments and its literals are balanced, so no
/// snippet can comment out or swallow the query text after it, whatever the policy wrote.
pub fn canonical_sql_expression(sql: &str) -> Result<String, String> {
    use datafusion::sql::sqlparser::dialect::GenericDialect;
    use datafusion::sql::sqlparser::parser::Parser;
    use datafusion::sql::sqlparser::tokenizer::Token;

    let quoted = format!("`{sql}`");
    let mut parser = Parser::new(&GenericDialect {})
        .try_with_sql(sql)
        .map_err(|e| format!("{quoted} is not valid SQL: {e}"))?;
    let expression = parser
        .parse_expr()
        .map_err(|e| format!("{quoted} is not an SQL expression: {e}"))?;
    match parser.peek_token().token {
        Token::EOF => Ok(expression.to_string()),
        token => Err(format!(
            "{quoted} must be one SQL expression and nothing more, but goes on at `{token}`"
        )),
    }
}
