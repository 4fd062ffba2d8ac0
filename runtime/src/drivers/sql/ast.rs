//! Naming what a query asked for when its plan cannot even be built: a model function's
//! argument that names a column no governed table has (an ungranted column of the source, say)
//! fails in DataFusion's planner with "no field named ...", which names neither the function
//! nor the argument. The statement's syntax tree still says where the name was written.

use std::ops::ControlFlow;

use datafusion::sql::parser::Statement;
use datafusion::sql::sqlparser::ast::{
    Expr, FunctionArg, FunctionArgExpr, FunctionArguments, visit_expressions,
};

/// The first argument of a call to one of `functions` whose expression names `column`: the
/// function, the argument's position (from 1) and its text.
pub(crate) fn argument_naming(
    statement: &Statement,
    functions: &[&str],
    column: &str,
) -> Option<(String, usize, String)> {
    let Statement::Statement(statement) = statement else {
        return None;
    };
    let mut found = None;
    let _ = visit_expressions(statement.as_ref(), |expression| {
        if let Expr::Function(call) = expression {
            let name = call.name.to_string();
            if functions.contains(&name.as_str())
                && let FunctionArguments::List(list) = &call.args
            {
                for (index, argument) in list.args.iter().enumerate() {
                    if let FunctionArg::Unnamed(FunctionArgExpr::Expr(argument)) = argument
                        && names(argument, column)
                    {
                        found = Some((name, index + 1, argument.to_string()));
                        return ControlFlow::Break(());
                    }
                }
            }
        }
        ControlFlow::Continue(())
    });
    found
}

/// Whether `expression` names column `column` anywhere (`column`, `t.column`).
fn names(expression: &Expr, column: &str) -> bool {
    let mut named = false;
    let _ = visit_expressions(expression, |inner| {
        let hit = match inner {
            Expr::Identifier(ident) => ident.value == column,
            Expr::CompoundIdentifier(parts) => parts.last().is_some_and(|p| p.value == column),
            _ => false,
        };
        if hit {
            named = true;
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    });
    named
}
