//! The policy enforced on a query's plan, before any row is read: every model function call in
//! the logical plan (in any node, subquery, CTE or view), and for each of its arguments, every
//! column of a table its value is computed from, traced through projections, aliases,
//! aggregates, windows, joins, unions, subqueries and views down to the table scans.
//!
//! Against a consumer who writes the query (and so any SQL), the rule is about values: a value
//! that reaches a model must come from a granted column of that model's own governed table (or
//! from the query's literals), never from a key column, a plain table or another model's
//! table. A plan node this module cannot see through makes its columns untraced, and an
//! untraced column is refused: what cannot be proven granted is not.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use datafusion::common::Column;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::datasource::source_as_provider;
use datafusion::logical_expr::utils::grouping_set_to_exprlist;
use datafusion::logical_expr::{Expr, LogicalPlan};

use super::functions::{ScoredTable, SessionModel};
use crate::error::RunError;
use crate::source::GovernedTable;

/// Where a value comes from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub(crate) enum Origin {
    /// A granted model column of a governed table.
    Granted { table: String, column: String },
    /// A key column of a governed table (or of a model's table function output).
    Key { table: String, column: String },
    /// An output of a model's table function over governed table `table`: computed from that
    /// table's granted columns.
    Scored { table: String, column: String },
    /// A column of a table that is not governed: a `[table.*]`, or one the query created.
    Plain { table: String, column: String },
    /// A value this module cannot trace to a table.
    Untraced { what: String },
}

impl Origin {
    /// `customers.tenure`, as errors and the audit trail name it.
    fn describe(&self) -> String {
        match self {
            Origin::Granted { table, column }
            | Origin::Key { table, column }
            | Origin::Scored { table, column }
            | Origin::Plain { table, column } => format!("`{table}.{column}`"),
            Origin::Untraced { what } => what.clone(),
        }
    }

    /// Why a value of this origin may not reach a model bound to governed table `input`, or
    /// `None` if it may.
    fn refusal(&self, input: &str) -> Option<String> {
        match self {
            Origin::Granted { table, .. } | Origin::Scored { table, .. } if table == input => None,
            Origin::Granted { table, .. } | Origin::Scored { table, .. } => Some(format!(
                "governed table `{table}` is bound to another model's input"
            )),
            Origin::Key { table, column } => Some(format!(
                "`{column}` is a key column of `{table}`; key columns never enter the sandbox"
            )),
            Origin::Plain { table, .. } => Some(format!(
                "`{table}` is not a governed table; its columns never feed a model"
            )),
            Origin::Untraced { .. } => {
                Some("where its value comes from cannot be traced in the plan".to_string())
            }
        }
    }
}

/// How a model is called.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum CallForm {
    Scalar,
    Table,
}

/// One call of a model function in a plan, with where each argument's value comes from.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct ModelCall {
    pub(crate) function: String,
    #[serde(skip)]
    pub(crate) model: usize,
    pub(crate) form: CallForm,
    pub(crate) arguments: Vec<Argument>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct Argument {
    /// From 1.
    pub(crate) position: usize,
    /// The manifest's input column at that position.
    pub(crate) parameter: String,
    /// The argument as the plan prints it.
    pub(crate) expression: String,
    pub(crate) origins: BTreeSet<Origin>,
}

/// What a plan reads and calls.
#[derive(Debug, Default, serde::Serialize)]
pub(crate) struct PlanLineage {
    pub(crate) calls: Vec<ModelCall>,
    pub(crate) governed_tables: BTreeSet<String>,
    pub(crate) other_tables: BTreeSet<String>,
    /// The plan was nested deeper than the tracer follows.
    #[serde(skip)]
    pub(crate) truncated: bool,
    /// DataFusion's own walk found model calls the tracer did not.
    #[serde(skip)]
    pub(crate) calls_missed: bool,
}

impl PlanLineage {
    /// The first argument whose value may not reach its model, as the run's error.
    pub(crate) fn check(&self, models: &[Arc<SessionModel>]) -> Result<(), RunError> {
        if self.truncated {
            return Err(RunError::PlanUntraced {
                why: format!(
                    "the statement nests deeper than the plan check follows ({MAX_DEPTH} levels)"
                ),
            });
        }
        if self.calls_missed {
            return Err(RunError::PlanUntraced {
                why: "it calls a model where the plan check cannot trace its arguments".into(),
            });
        }
        for call in &self.calls {
            let Some(model) = models.get(call.model) else {
                continue;
            };
            for argument in &call.arguments {
                for origin in &argument.origins {
                    if let Some(why) = origin.refusal(&model.input) {
                        return Err(RunError::PlanRefused(Box::new(crate::error::PlanRefusal {
                            function: call.function.clone(),
                            position: argument.position,
                            parameter: argument.parameter.clone(),
                            argument: argument.expression.clone(),
                            column: origin.describe(),
                            why,
                            input: model.input.clone(),
                        })));
                    }
                }
            }
        }
        Ok(())
    }

    /// The models the plan calls, by their index in the session, each with whether it is called
    /// as a scalar function.
    pub(crate) fn models_called(&self) -> Vec<(usize, bool)> {
        let mut called: Vec<(usize, bool)> = Vec::new();
        for call in &self.calls {
            let scalar = call.form == CallForm::Scalar;
            match called.iter_mut().find(|(model, _)| *model == call.model) {
                Some((_, any_scalar)) => *any_scalar |= scalar,
                None => called.push((call.model, scalar)),
            }
        }
        called
    }
}

/// Traces `plan`: every model call (scalar functions named in `functions`, whose values are
/// each model's index in `models`) and the tables it reads.
pub(crate) fn trace(plan: &LogicalPlan, models: &[Arc<SessionModel>]) -> PlanLineage {
    let tracer = Tracer::new(models);
    let mut lineage = PlanLineage::default();
    tracer.visit(plan, &[], &mut lineage);
    let traced = lineage
        .calls
        .iter()
        .filter(|call| call.form == CallForm::Scalar)
        .count();
    lineage.calls_missed = count_calls(plan, &tracer.functions, MAX_DEPTH) != traced;
    lineage
}

/// For each output column of `plan`, whether a model computed it (so that its text is the
/// model's: see `cordon_data::sink::write_csv`).
pub(crate) fn model_derived(plan: &LogicalPlan, models: &[Arc<SessionModel>]) -> Vec<bool> {
    let tracer = Tracer::new(models);
    (0..plan.schema().fields().len())
        .map(|index| {
            tracer
                .origins_of_output(plan, index, &[])
                .iter()
                .any(|origin| matches!(origin, Origin::Scored { .. } | Origin::Untraced { .. }))
        })
        .collect()
}

/// The plan of a view that a table scan reads, if it is one.
fn view_of(plan: &LogicalPlan) -> Option<LogicalPlan> {
    let LogicalPlan::TableScan(scan) = plan else {
        return None;
    };
    let provider = source_as_provider(&scan.source).ok()?;
    provider.get_logical_plan().map(|view| view.into_owned())
}

/// Deepest nesting of plans and expressions traced; past it a value is untraced (and so
/// refused), so a hostile query's depth cannot exhaust the stack.
const MAX_DEPTH: usize = 256;

struct Tracer<'a> {
    functions: HashMap<&'a str, usize>,
    models: &'a [Arc<SessionModel>],
    depth_left: std::cell::Cell<usize>,
}

impl<'a> Tracer<'a> {
    /// A tracer of the calls of `models`' functions.
    fn new(models: &'a [Arc<SessionModel>]) -> Tracer<'a> {
        Tracer {
            functions: models
                .iter()
                .enumerate()
                .map(|(index, model)| (model.function.as_str(), index))
                .collect(),
            models,
            depth_left: std::cell::Cell::new(MAX_DEPTH),
        }
    }

    /// Runs `work` one level deeper, or returns `None` past [`MAX_DEPTH`].
    fn deeper<T>(&self, work: impl FnOnce() -> T) -> Option<T> {
        let left = self.depth_left.get();
        if left == 0 {
            return None;
        }
        self.depth_left.set(left - 1);
        let result = work();
        self.depth_left.set(left);
        Some(result)
    }

    /// Finds the model calls and table scans of `plan` (its inputs, subqueries and views).
    /// `outer` holds the plans an outer reference column of a subquery resolves against.
    fn visit(&self, plan: &LogicalPlan, outer: &[&LogicalPlan], lineage: &mut PlanLineage) {
        let inputs = plan.inputs();
        let mut subqueries: Vec<Arc<LogicalPlan>> = Vec::new();
        // The closures never fail, so neither can the walk.
        let _ = plan.apply_expressions(|expression| {
            expression.apply(|inner| {
                match inner {
                    Expr::ScalarFunction(call) => {
                        if let Some(&model) = self.functions.get(call.name()) {
                            let arguments = self.arguments(model, &call.args, &inputs, outer);
                            lineage.calls.push(ModelCall {
                                function: call.name().to_owned(),
                                model,
                                form: CallForm::Scalar,
                                arguments,
                            });
                        }
                    }
                    other => {
                        if let Some(subquery) = subquery_of(other) {
                            subqueries.push(Arc::clone(subquery));
                        }
                    }
                }
                Ok(TreeNodeRecursion::Continue)
            })
        });
        let mut scope: Vec<&LogicalPlan> = outer.to_vec();
        scope.extend(inputs.iter().copied());
        for subquery in &subqueries {
            if self
                .deeper(|| self.visit(subquery, &scope, lineage))
                .is_none()
            {
                lineage.truncated = true;
            }
        }
        if let LogicalPlan::TableScan(scan) = plan {
            let name = scan.table_name.to_string();
            match source_as_provider(&scan.source) {
                Ok(provider) => {
                    if provider.is::<GovernedTable>() {
                        lineage.governed_tables.insert(name);
                    } else if let Some(scored) = provider.downcast_ref::<ScoredTable>() {
                        lineage.governed_tables.insert(scored.model.input.clone());
                        if let Some(model) = self
                            .models
                            .iter()
                            .position(|m| Arc::ptr_eq(m, &scored.model))
                        {
                            lineage.calls.push(ModelCall {
                                function: scored.model.function.clone(),
                                model,
                                form: CallForm::Table,
                                arguments: Vec::new(),
                            });
                        }
                    } else if let Some(view) = provider.get_logical_plan() {
                        if self.deeper(|| self.visit(&view, &[], lineage)).is_none() {
                            lineage.truncated = true;
                        }
                    } else {
                        lineage.other_tables.insert(name);
                    }
                }
                Err(_) => {
                    lineage.other_tables.insert(name);
                }
            }
        }
        for input in inputs {
            if self.deeper(|| self.visit(input, outer, lineage)).is_none() {
                lineage.truncated = true;
            }
        }
    }

    fn arguments(
        &self,
        model: usize,
        args: &[Expr],
        inputs: &[&LogicalPlan],
        outer: &[&LogicalPlan],
    ) -> Vec<Argument> {
        let parameters: Vec<String> = self
            .models
            .get(model)
            .map(|m| {
                m.prepared
                    .grant()
                    .input
                    .columns
                    .iter()
                    .map(|c| c.model.to_string())
                    .collect()
            })
            .unwrap_or_default();
        args.iter()
            .enumerate()
            .map(|(index, arg)| Argument {
                position: index + 1,
                parameter: parameters.get(index).cloned().unwrap_or_default(),
                expression: arg.to_string(),
                origins: self.origins_of_expr(arg, inputs, outer),
            })
            .collect()
    }

    /// Every origin of the columns `expression` reads, resolved against the plans that feed the
    /// node it is in (`inputs`) and, for outer references, `outer`.
    fn origins_of_expr(
        &self,
        expression: &Expr,
        inputs: &[&LogicalPlan],
        outer: &[&LogicalPlan],
    ) -> BTreeSet<Origin> {
        let mut origins = BTreeSet::new();
        let _ = expression.apply(|inner| {
            match inner {
                // A model's value is computed from its arguments (traced as the walk goes on)
                // and from its own input: a hostile model may return its input as it is.
                Expr::ScalarFunction(call) => {
                    if let Some(model) = self
                        .functions
                        .get(call.name())
                        .and_then(|&index| self.models.get(index))
                    {
                        origins.insert(Origin::Scored {
                            table: model.input.clone(),
                            column: model.function.clone(),
                        });
                    }
                }
                Expr::Column(column) => {
                    origins.extend(self.origins_of_column(column, inputs, outer));
                }
                // Resolved in the enclosing query, whose own outer scope is not kept: a
                // reference past it is untraced.
                Expr::OuterReferenceColumn(_, column) => {
                    origins.extend(self.origins_of_column(column, outer, &[]));
                }
                // A subquery's value depends on every column it reads, its filters included:
                // `CASE WHEN EXISTS (SELECT ... FROM plans WHERE ...)` carries plain data.
                other => {
                    if let Some(subquery) = subquery_of(other) {
                        let mut scope: Vec<&LogicalPlan> = outer.to_vec();
                        scope.extend(inputs.iter().copied());
                        origins.extend(self.everything_read(subquery, &scope));
                    }
                }
            }
            Ok(TreeNodeRecursion::Continue)
        });
        origins
    }

    /// `column` resolved against the last of `plans` whose schema has it (the nearest scope);
    /// `outer` is those plans' own outer scope.
    fn origins_of_column(
        &self,
        column: &Column,
        plans: &[&LogicalPlan],
        outer: &[&LogicalPlan],
    ) -> BTreeSet<Origin> {
        for plan in plans.iter().rev() {
            if let Some(index) = plan.schema().maybe_index_of_column(column) {
                return self.origins_of_output(plan, index, outer);
            }
        }
        BTreeSet::from([Origin::Untraced {
            what: format!("column `{column}`"),
        }])
    }

    /// Every origin of what `plan` returns, and of every column an expression of any of its
    /// nodes reads (filters and join conditions included).
    fn everything_read(&self, plan: &LogicalPlan, outer: &[&LogicalPlan]) -> BTreeSet<Origin> {
        let mut origins: BTreeSet<Origin> = (0..plan.schema().fields().len())
            .flat_map(|index| self.origins_of_output(plan, index, outer))
            .collect();
        origins.extend(self.expressions_read(plan, outer));
        origins
    }

    /// Every origin of the columns the expressions of `plan` and of its inputs read.
    fn expressions_read(&self, plan: &LogicalPlan, outer: &[&LogicalPlan]) -> BTreeSet<Origin> {
        let traced = self.deeper(|| {
            let mut origins = BTreeSet::new();
            let inputs = plan.inputs();
            let _ = plan.apply_expressions(|expression| {
                origins.extend(self.origins_of_expr(expression, &inputs, outer));
                Ok(TreeNodeRecursion::Continue)
            });
            for input in &inputs {
                origins.extend(self.expressions_read(input, outer));
            }
            if let Some(view) = view_of(plan) {
                origins.extend(self.expressions_read(&view, &[]));
            }
            origins
        });
        traced.unwrap_or_else(|| untraced("a plan nested too deep"))
    }

    /// Every origin of what chooses the rows `plan` returns (filters, join conditions, groups,
    /// DISTINCT ON, a sort that keeps the first rows), down to its scans: what an aggregate or
    /// a window over those rows carries into its value (`count(*)` after `WHERE crm.Churn =
    /// 'Yes'` is plain data).
    fn selection_read(&self, plan: &LogicalPlan, outer: &[&LogicalPlan]) -> BTreeSet<Origin> {
        use datafusion::logical_expr::Distinct;

        let traced = self.deeper(|| {
            let inputs = plan.inputs();
            let mut choosing: Vec<&Expr> = Vec::new();
            match plan {
                LogicalPlan::Filter(filter) => choosing.push(&filter.predicate),
                LogicalPlan::Join(join) => {
                    for (left, right) in &join.on {
                        choosing.push(left);
                        choosing.push(right);
                    }
                    choosing.extend(join.filter.iter());
                }
                LogicalPlan::Aggregate(aggregate) => choosing.extend(aggregate.group_expr.iter()),
                LogicalPlan::Distinct(Distinct::On(on)) => choosing.extend(on.on_expr.iter()),
                LogicalPlan::Sort(sort) if sort.fetch.is_some() => {
                    choosing.extend(sort.expr.iter().map(|s| &s.expr));
                }
                LogicalPlan::TableScan(scan) => choosing.extend(scan.filters.iter()),
                _ => {}
            }
            let mut origins: BTreeSet<Origin> = choosing
                .into_iter()
                .flat_map(|expression| self.origins_of_expr(expression, &inputs, outer))
                .collect();
            for input in &inputs {
                origins.extend(self.selection_read(input, outer));
            }
            if let Some(view) = view_of(plan) {
                origins.extend(self.selection_read(&view, &[]));
            }
            origins
        });
        traced.unwrap_or_else(|| untraced("a plan nested too deep"))
    }

    /// The origins of output column `index` of `plan`.
    fn origins_of_output(
        &self,
        plan: &LogicalPlan,
        index: usize,
        outer: &[&LogicalPlan],
    ) -> BTreeSet<Origin> {
        self.deeper(|| self.origins_of_output_unguarded(plan, index, outer))
            .unwrap_or_else(|| untraced("a plan nested too deep"))
    }

    fn origins_of_output_unguarded(
        &self,
        plan: &LogicalPlan,
        index: usize,
        outer: &[&LogicalPlan],
    ) -> BTreeSet<Origin> {
        use datafusion::logical_expr::Distinct;

        match plan {
            LogicalPlan::Projection(projection) => match projection.expr.get(index) {
                Some(expression) => self.origins_of_expr(expression, &[&projection.input], outer),
                None => untraced("a projection's column"),
            },
            // Nodes that pass their input's columns through, in place.
            LogicalPlan::Filter(node) => self.origins_of_output(&node.input, index, outer),
            LogicalPlan::Sort(node) => self.origins_of_output(&node.input, index, outer),
            LogicalPlan::Limit(node) => self.origins_of_output(&node.input, index, outer),
            LogicalPlan::Repartition(node) => self.origins_of_output(&node.input, index, outer),
            LogicalPlan::SubqueryAlias(node) => self.origins_of_output(&node.input, index, outer),
            LogicalPlan::Subquery(node) => self.origins_of_output(&node.subquery, index, outer),
            LogicalPlan::Distinct(Distinct::All(input)) => {
                self.origins_of_output(input, index, outer)
            }
            LogicalPlan::Distinct(Distinct::On(on)) => match on.select_expr.get(index) {
                Some(expression) => self.origins_of_expr(expression, &[&on.input], outer),
                None => untraced("a DISTINCT ON column"),
            },
            LogicalPlan::Window(window) => {
                let passed = window.input.schema().fields().len();
                if index < passed {
                    self.origins_of_output(&window.input, index, outer)
                } else {
                    match window.window_expr.get(index - passed) {
                        Some(expression) => {
                            let mut origins =
                                self.origins_of_expr(expression, &[&window.input], outer);
                            origins.extend(self.selection_read(&window.input, outer));
                            origins
                        }
                        None => untraced("a window column"),
                    }
                }
            }
            LogicalPlan::Aggregate(aggregate) => {
                let Ok(groups) = grouping_set_to_exprlist(&aggregate.group_expr) else {
                    return untraced("a grouping set");
                };
                let grouping_id = usize::from(matches!(
                    aggregate.group_expr.as_slice(),
                    [Expr::GroupingSet(_)]
                ));
                let input: &[&LogicalPlan] = &[&aggregate.input];
                if let Some(group) = groups.get(index) {
                    self.origins_of_expr(group, input, outer)
                } else if index < groups.len() + grouping_id {
                    // The grouping id tells which group columns are set.
                    groups
                        .iter()
                        .flat_map(|group| self.origins_of_expr(group, input, outer))
                        .collect()
                } else {
                    match aggregate.aggr_expr.get(index - groups.len() - grouping_id) {
                        Some(expression) => {
                            // Its value depends on which rows fell in each group.
                            let mut origins = self.origins_of_expr(expression, input, outer);
                            for group in &groups {
                                origins.extend(self.origins_of_expr(group, input, outer));
                            }
                            origins.extend(self.selection_read(&aggregate.input, outer));
                            origins
                        }
                        None => untraced("an aggregate column"),
                    }
                }
            }
            LogicalPlan::Join(join) => {
                use datafusion::common::JoinType;

                let (qualifier, field) = plan.schema().qualified_field(index);
                let column = Column::new(qualifier.cloned(), field.name());
                let inputs: &[&LogicalPlan] = &[&join.left, &join.right];
                let condition = || {
                    let mut origins = BTreeSet::new();
                    for (left, right) in &join.on {
                        origins.extend(self.origins_of_expr(left, inputs, outer));
                        origins.extend(self.origins_of_expr(right, inputs, outer));
                    }
                    if let Some(filter) = &join.filter {
                        origins.extend(self.origins_of_expr(filter, inputs, outer));
                    }
                    origins
                };
                for (side, is_left) in [(&join.left, true), (&join.right, false)] {
                    if let Some(side_index) = side.schema().maybe_index_of_column(&column) {
                        let mut origins = self.origins_of_output(side, side_index, outer);
                        // On the side an outer join pads, whether a value is null is the
                        // join condition's answer.
                        let padded = match join.join_type {
                            JoinType::Full => true,
                            JoinType::Left => !is_left,
                            JoinType::Right => is_left,
                            _ => false,
                        };
                        if padded {
                            origins.extend(condition());
                        }
                        return origins;
                    }
                }
                // A mark column: whether the join condition matched.
                condition()
            }
            LogicalPlan::Union(union) => union
                .inputs
                .iter()
                .flat_map(|input| self.origins_of_output(input, index, outer))
                .collect(),
            LogicalPlan::TableScan(scan) => {
                let source_index = match &scan.projection {
                    Some(projection) => match projection.get(index) {
                        Some(&source_index) => source_index,
                        None => return untraced("a scan's column"),
                    },
                    None => index,
                };
                let table = scan.table_name.to_string();
                let Ok(provider) = source_as_provider(&scan.source) else {
                    return untraced(&format!("a column of `{table}`"));
                };
                let schema = provider.schema();
                let Some(field) = schema.fields().get(source_index) else {
                    return untraced(&format!("a column of `{table}`"));
                };
                let column = field.name().clone();
                let origin = if let Some(governed) = provider.downcast_ref::<GovernedTable>() {
                    if governed.is_granted(&column) {
                        Origin::Granted { table, column }
                    } else {
                        Origin::Key { table, column }
                    }
                } else if let Some(scored) = provider.downcast_ref::<ScoredTable>() {
                    let table = scored.model.input.clone();
                    if scored.is_key(&column) {
                        Origin::Key { table, column }
                    } else {
                        Origin::Scored { table, column }
                    }
                } else if let Some(view) = provider.get_logical_plan() {
                    return self.origins_of_output(&view, source_index, &[]);
                } else {
                    Origin::Plain { table, column }
                };
                BTreeSet::from([origin])
            }
            // Literals only.
            LogicalPlan::EmptyRelation(_) => BTreeSet::new(),
            LogicalPlan::Values(values) => values
                .values
                .iter()
                .filter_map(|row| row.get(index))
                .flat_map(|expression| self.origins_of_expr(expression, &[], outer))
                .collect(),
            other => untraced(&format!("a {} node", other.display())),
        }
    }
}

/// The subquery an expression holds, of any kind (`(SELECT ...)`, `EXISTS`, `IN`, `op ANY/ALL`).
fn subquery_of(expression: &Expr) -> Option<&Arc<LogicalPlan>> {
    use datafusion::logical_expr::expr::{Exists, InSubquery, SetComparison};
    match expression {
        Expr::ScalarSubquery(subquery)
        | Expr::Exists(Exists { subquery, .. })
        | Expr::InSubquery(InSubquery { subquery, .. })
        | Expr::SetComparison(SetComparison { subquery, .. }) => Some(&subquery.subquery),
        _ => None,
    }
}

/// How many calls of the `functions` a plan holds, counted by DataFusion's own walk of every
/// node and subquery (and here, of every view a scan reads): a cross-check that the tracer
/// missed none.
fn count_calls(plan: &LogicalPlan, functions: &HashMap<&str, usize>, depth: usize) -> usize {
    let mut calls = 0;
    let _ = plan.apply_with_subqueries(|node| {
        let _ = node.apply_expressions(|expression| {
            expression.apply(|inner| {
                if let Expr::ScalarFunction(call) = inner
                    && functions.contains_key(call.name())
                {
                    calls += 1;
                }
                Ok(TreeNodeRecursion::Continue)
            })
        });
        if let LogicalPlan::TableScan(scan) = node
            && let Ok(provider) = source_as_provider(&scan.source)
            && let Some(view) = provider.get_logical_plan()
            && depth > 0
        {
            calls += count_calls(&view, functions, depth - 1);
        }
        Ok(TreeNodeRecursion::Continue)
    });
    calls
}

fn untraced(what: &str) -> BTreeSet<Origin> {
    BTreeSet::from([Origin::Untraced {
        what: what.to_string(),
    }])
}
