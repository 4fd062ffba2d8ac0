//! The SQL driver, `cordon sql`: a DataFusion session in which each policy binding is a
//! governed table, each package's model is a table function (and, in row mode, a scalar
//! function), and the policy is enforced on every statement's logical plan before any row is
//! read ([`lineage`]). Each statement is one run in the audit trail and the usage ledger.
//!
//! What a query may do, and what it may not:
//! - read, filter, join and aggregate governed tables (their granted columns as the grant
//!   gives them: filtered, masked, cast; and their key columns) and plain tables;
//! - pass a model only values computed from its own governed table's granted columns, or
//!   literals: never a key, a plain table's column or another model's table.
//!
//! A governed table's source is not in the session at all (see [`GovernedTable`]), so no query
//! can name an ungranted column or an unmasked value.

mod ast;
mod functions;
mod lineage;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::logical_expr::LogicalPlan;
use datafusion::logical_expr::async_udf::AsyncScalarUDF;
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion::sql::parser::{DFParser, Statement};
use futures::StreamExt;
use serde_json::json;

use crate::error::RunError;
use crate::manifest::InputMode;
use crate::policy::Policy;
use crate::prepare::PreparedModel;
use crate::record::{RunFacts, RunRecorder};
use crate::run::{Progress, RunRequest};
use crate::runtime::Runtime;
use crate::source::{GovernedTable, SourceBinding, plain_table};
use functions::{ModelScalarFunction, ModelTableFunction, QueryScoring, SessionModel};

/// Memory DataFusion may hold for one statement (sorts, joins, aggregates) before it spills.
const SESSION_MEMORY: usize = 1024 * 1024 * 1024;

/// What to open a session on.
#[derive(Debug, Clone)]
pub struct SqlRequest {
    pub policy: PathBuf,
    /// Relative paths in the policy are resolved against this directory.
    pub base_dir: PathBuf,
    /// The packages whose models the session offers as functions.
    pub packages: Vec<PathBuf>,
    /// The policy role to run as; required when the policy defines roles.
    pub role: Option<String>,
    /// Accept packages without a valid signature (local development only).
    pub allow_unsigned: bool,
}

/// A statement's run, when its result went to a [`ResultSink`].
#[derive(Debug)]
pub struct StatementRun {
    /// The statement's run in the audit trail and usage ledger.
    pub run_id: String,
    /// Rows the models scored, all functions together.
    pub rows_scored: u64,
}

/// What one statement returned.
#[derive(Debug)]
pub struct StatementOutput {
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
    /// The statement's run in the audit trail and usage ledger.
    pub run_id: String,
    /// Rows the models scored, all functions together.
    pub rows_scored: u64,
    /// For each column, whether a model computed it (its text is the model's).
    pub model_derived: Vec<bool>,
}

/// A SQL session under one policy and role, with its packages prepared once.
pub struct SqlSession<'r> {
    runtime: &'r Runtime,
    policy: Policy,
    role: Option<String>,
    context: SessionContext,
    models: Vec<Arc<SessionModel>>,
    /// The governed tables, by name (the manifest inputs they bind).
    governed: BTreeMap<String, Arc<GovernedTable>>,
}

impl<'r> SqlSession<'r> {
    /// Prepares every package under the policy (signature, grant, compile), and registers the
    /// governed tables, the plain tables and the model functions. Reads no row.
    pub fn open(runtime: &'r Runtime, request: &SqlRequest) -> Result<SqlSession<'r>, RunError> {
        let policy = Policy::load(&request.policy, &request.base_dir)?;
        let limits = &policy.limits;
        let context = session_context(limits.batch_rows as usize, limits.instances as usize)?;
        let mut session = SqlSession {
            runtime,
            role: request.role.clone(),
            context,
            models: Vec::new(),
            governed: BTreeMap::new(),
            policy,
        };
        for package in &request.packages {
            let run_request = RunRequest {
                package_dir: package.clone(),
                policy: request.policy.clone(),
                base_dir: request.base_dir.clone(),
                role: request.role.clone(),
                allow_unsigned: request.allow_unsigned,
            };
            let prepared = session.prepare_recorded(&run_request)?;
            session.add_model(prepared)?;
        }
        for (name, table) in &session.policy.tables {
            runtime
                .tokio
                .block_on(plain_table(
                    &session.context,
                    name.as_str(),
                    &table.source,
                    &table.schema,
                ))
                .map_err(RunError::from)?;
        }
        Ok(session)
    }

    /// The policy the session runs under.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The governed tables' names, and each model function's name with whether it is a scalar
    /// function too, for the prompt's help.
    pub fn catalog(&self) -> (Vec<String>, Vec<(String, bool)>) {
        let tables = self.governed.keys().cloned().collect();
        let functions = self
            .models
            .iter()
            .map(|m| {
                let scalar = m.prepared.grant().input.mode == InputMode::Row;
                (m.function.clone(), scalar)
            })
            .collect();
        (tables, functions)
    }

    /// A package prepared under the session's policy; a refusal is in the audit trail, as a
    /// run's is.
    fn prepare_recorded(&self, request: &RunRequest) -> Result<PreparedModel, RunError> {
        let prepared = self.runtime.prepare_model(request);
        if prepared.is_err() {
            let mut recorder = RunRecorder::open(&self.policy, Instant::now())?;
            recorder.refused_start(&request.package_dir, &self.policy)?;
            recorder.end(&prepared, &RunFacts::default())?;
        }
        prepared
    }

    /// Registers a prepared model: its governed table, its table function and, in row mode,
    /// its scalar function.
    fn add_model(&mut self, prepared: PreparedModel) -> Result<(), RunError> {
        let grant = prepared.grant();
        let function = prepared.facts().identity.name.replace('-', "_");
        let input = grant.input.name.to_string();
        let state = self.context.state();
        // A package may not take the name of a function the session has: a package named
        // `lower` would otherwise receive every `lower(...)` a consumer writes.
        if state.scalar_functions().contains_key(&function)
            || state.aggregate_functions().contains_key(&function)
            || state.window_functions().contains_key(&function)
            || state.table_functions().contains_key(&function)
        {
            return Err(RunError::Sql(format!(
                "package `{}` would be SQL function `{function}`, which the session already has",
                prepared.facts().identity.name
            )));
        }
        if self.governed.contains_key(&input) {
            return Err(RunError::Sql(format!(
                "two packages read input `{input}`; a session binds each input to one model"
            )));
        }
        if grant.input.source.as_os_str() == crate::policy::REQUEST_SOURCE {
            return Err(RunError::from(crate::data::DataError::RequestBound {
                input: input.clone(),
            }));
        }
        let governed = self
            .runtime
            .tokio
            .block_on(GovernedTable::open(
                &SourceBinding::File(grant.input.source.clone()),
                &grant.input,
                self.policy.limits.batch_rows as usize,
            ))
            .map_err(RunError::from)?;
        let governed = Arc::new(governed);
        self.context
            .register_table(input.as_str(), Arc::clone(&governed) as _)
            .map_err(|e| RunError::Sql(e.to_string()))?;
        self.governed.insert(input.clone(), governed);
        let mode = grant.input.mode;
        let model = Arc::new(SessionModel {
            function: function.clone(),
            prepared,
            input,
            scoring: Mutex::new(None),
            tokio: Arc::clone(&self.runtime.tokio),
        });
        self.context.register_udtf(
            &function,
            Arc::new(ModelTableFunction {
                model: Arc::clone(&model),
            }),
        );
        if mode == InputMode::Row {
            let scalar = ModelScalarFunction::new(Arc::clone(&model));
            self.context
                .register_udf(AsyncScalarUDF::new(Arc::new(scalar)).into_scalar_udf());
        }
        self.models.push(model);
        Ok(())
    }

    /// Splits SQL text into its statements.
    pub fn parse(&self, sql: &str) -> Result<Vec<Statement>, RunError> {
        let dialect = datafusion::sql::sqlparser::dialect::GenericDialect {};
        DFParser::parse_sql_with_dialect(sql, &dialect)
            .map(Vec::from)
            .map_err(|e| RunError::Sql(e.to_string()))
    }

    /// Runs one statement as one audited run: planned, checked against the policy, executed.
    pub fn execute(
        &self,
        statement: Statement,
        progress: Arc<dyn Progress + Send + Sync>,
    ) -> Result<StatementOutput, RunError> {
        let mut collected = Collected::default();
        let run = self.execute_into(statement, progress, &mut collected)?;
        Ok(StatementOutput {
            schema: collected
                .schema
                .unwrap_or_else(|| Arc::new(Schema::empty())),
            batches: collected.batches,
            model_derived: collected.model_derived,
            run_id: run.run_id,
            rows_scored: run.rows_scored,
        })
    }

    /// [`SqlSession::execute`], handing the result's batches to `sink` as they come instead
    /// of holding them all (`-o` of a large result).
    pub fn execute_into(
        &self,
        statement: Statement,
        progress: Arc<dyn Progress + Send + Sync>,
        sink: &mut dyn ResultSink,
    ) -> Result<StatementRun, RunError> {
        let mut recorder = RunRecorder::open(&self.policy, Instant::now())?;
        let mut used: Vec<(Arc<SessionModel>, RunFacts)> = Vec::new();
        let mut calls = 0;
        let result = self.execute_recorded(
            statement,
            progress,
            sink,
            (&mut recorder, &mut used, &mut calls),
        );
        let mut facts = RunFacts::default();
        for (_, model_facts) in &used {
            facts.rows_in += model_facts.rows_in;
            facts.rows_out += model_facts.rows_out;
            facts.batches += model_facts.batches;
            facts.partitions += model_facts.partitions;
            facts.totals.merge(model_facts.totals.clone());
        }
        recorder.end(&result, &facts)?;
        for (model, model_facts) in &used {
            let identity = model.prepared.facts().identity.clone();
            // With two model calls in a statement, the rows one scores can be chosen by the
            // other's output (`WHERE telco_churn(...) > 0.5` under a second call): a count the
            // model steers. Such a statement's usage records say only whether it succeeded.
            let counted = if calls <= 1 {
                model_facts
            } else {
                &RunFacts::default()
            };
            recorder.usage(identity, result.is_ok(), counted)?;
        }
        result?;
        Ok(StatementRun {
            run_id: recorder.run_id().to_owned(),
            rows_scored: facts.rows_in,
        })
    }

    /// The statement between its start and end in the trail.
    fn execute_recorded(
        &self,
        statement: Statement,
        progress: Arc<dyn Progress + Send + Sync>,
        sink: &mut dyn ResultSink,
        (recorder, used, calls): RunState<'_>,
    ) -> Result<(), RunError> {
        let text = statement.to_string();
        let state = self.context.state();
        let planned = self
            .runtime
            .tokio
            .block_on(state.statement_to_plan(statement.clone()));
        let plan = match planned {
            Ok(plan) => plan,
            Err(error) => {
                recorder.query(json!({ "text": text, "role": self.role }))?;
                return Err(self.planning_error(&statement, error));
            }
        };
        let lineage = lineage::trace(&plan, &self.models);
        recorder.query(json!({
            "text": text,
            "role": self.role,
            "governed_tables": lineage.governed_tables,
            "other_tables": lineage.other_tables,
            "calls": lineage.calls,
        }))?;
        allowed_statement(&plan)?;
        // The policy, on the plan: refused here, no guest has started and no row is read.
        lineage.check(&self.models)?;
        // And on the plan that runs: the optimizer rewrites subqueries into joins, pushes
        // projections and filters, and must not have moved a value the check above allowed.
        let plan = match plan {
            LogicalPlan::Ddl(_) => Planned::Ddl(plan),
            query => {
                let optimized = state
                    .optimize(&query)
                    .map_err(|e| RunError::Sql(e.strip_backtrace().to_string()))?;
                lineage::trace(&optimized, &self.models).check(&self.models)?;
                Planned::Query(optimized)
            }
        };
        *calls = lineage.calls.len();

        let model_derived = lineage::model_derived(plan.logical(), &self.models);
        let called = lineage.models_called();
        // Whatever happens below, no model keeps this statement's scoring.
        let _clear = ClearScoring(&self.models);
        let wall_time = self.policy.limits.wall_time.0;
        let deadline = recorder.started() + wall_time;
        let mut scorings = Vec::with_capacity(called.len());
        for (index, scalar) in called {
            let Some(model) = self.models.get(index) else {
                continue;
            };
            let prepared = &model.prepared;
            recorder.run_start(prepared.facts(), prepared.policy())?;
            recorder.grant(prepared.facts(), prepared.grant(), prepared.policy())?;
            let scorers = if scalar {
                prepared.policy().limits.instances as usize
            } else {
                0
            };
            let scoring = Arc::new(QueryScoring::start(
                prepared,
                scorers,
                deadline,
                Arc::clone(&progress),
            )?);
            *model.scoring.lock().unwrap_or_else(PoisonError::into_inner) =
                Some(Arc::clone(&scoring));
            scorings.push((Arc::clone(model), scoring));
        }

        let executed = self.runtime.tokio.block_on(self.run_plan(
            plan,
            &state,
            (deadline, wall_time),
            (sink, &model_derived),
        ));

        let mut first_error = None;
        for (model, scoring) in scorings {
            model
                .scoring
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            // Waits for scorers still busy with a batch the statement no longer wants (a
            // LIMIT met): their counts belong to this run, which ends only after them.
            let state = scoring.finish();
            let grant = model.prepared.grant();
            recorder.data_read(grant, state.facts.rows_in, &state.partitions)?;
            recorder.inference(&state.facts.totals)?;
            if first_error.is_none() {
                first_error = state.error;
            }
            used.push((model, state.facts));
        }
        match executed {
            Ok(()) => Ok(()),
            // A model's error as the run reports it, rather than DataFusion's text of it.
            Err(error) => Err(first_error.unwrap_or(error)),
        }
    }

    /// A statement that does not plan. A model function's argument naming a column that no
    /// governed table has (an ungranted column of the source) is refused as the plan check
    /// refuses, naming the function, the argument and the column; anything else is the
    /// planner's own error.
    fn planning_error(
        &self,
        statement: &Statement,
        error: datafusion::error::DataFusionError,
    ) -> RunError {
        use datafusion::common::SchemaError;
        use datafusion::error::DataFusionError;

        let missing = match error.find_root() {
            DataFusionError::SchemaError(schema_error, _) => match schema_error.as_ref() {
                SchemaError::FieldNotFound { field, .. } => Some(field.name.clone()),
                _ => None,
            },
            _ => None,
        };
        let functions: Vec<&str> = self.models.iter().map(|m| m.function.as_str()).collect();
        let named = missing.as_deref().and_then(|column| {
            ast::argument_naming(statement, &functions, column).map(|found| (column, found))
        });
        let Some((column, (function, position, argument))) = named else {
            return RunError::Sql(error.strip_backtrace().to_string());
        };
        let Some(model) = self.models.iter().find(|m| m.function == function) else {
            return RunError::Sql(error.strip_backtrace().to_string());
        };
        let grant = &model.prepared.grant().input;
        RunError::PlanRefused(Box::new(crate::error::PlanRefusal {
            function,
            position,
            parameter: grant
                .columns
                .get(position.saturating_sub(1))
                .map(|c| c.model.to_string())
                .unwrap_or_default(),
            argument,
            column: format!("`{column}`"),
            why: format!(
                "no table of the session has it; the policy grants `{}` only {} (keys: {})",
                model.input,
                grant
                    .columns
                    .iter()
                    .map(|c| c.model.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                grant.key.join(", ")
            ),
            input: model.input.clone(),
        }))
    }

    /// Runs the checked plan, within the policy's wall time: a view is created; a query's
    /// optimized plan is made physical as it is (not optimized again) and collected.
    async fn run_plan(
        &self,
        plan: Planned,
        state: &datafusion::execution::SessionState,
        (deadline, wall_time): (Instant, std::time::Duration),
        (sink, model_derived): (&mut dyn ResultSink, &[bool]),
    ) -> Result<(), RunError> {
        let sql_error =
            |e: datafusion::error::DataFusionError| RunError::Sql(e.strip_backtrace().to_string());
        let work = async {
            match plan {
                Planned::Ddl(plan) => {
                    let frame = self
                        .context
                        .execute_logical_plan(plan)
                        .await
                        .map_err(sql_error)?;
                    let schema: SchemaRef = Arc::new(frame.schema().as_arrow().clone());
                    sink.start(&schema, model_derived)?;
                    for batch in frame.collect().await.map_err(sql_error)? {
                        sink.batch(batch)?;
                    }
                    Ok(())
                }
                Planned::Query(plan) => {
                    let physical = state
                        .query_planner()
                        .create_physical_plan(&plan, state)
                        .await
                        .map_err(sql_error)?;
                    sink.start(&physical.schema(), model_derived)?;
                    let mut stream =
                        datafusion::physical_plan::execute_stream(physical, state.task_ctx())
                            .map_err(sql_error)?;
                    while let Some(batch) = stream.next().await {
                        sink.batch(batch.map_err(sql_error)?)?;
                    }
                    Ok(())
                }
            }
        };
        match tokio::time::timeout_at(deadline.into(), work).await {
            Ok(result) => result,
            Err(_) => Err(RunError::WallTime { limit: wall_time }),
        }
    }
}

/// Where a statement's result goes, batch by batch.
pub trait ResultSink {
    /// Called once, before any batch: the result's columns, and which a model computed.
    fn start(&mut self, schema: &SchemaRef, model_derived: &[bool]) -> Result<(), RunError>;
    fn batch(&mut self, batch: RecordBatch) -> Result<(), RunError>;
}

/// A result held in memory whole.
#[derive(Default)]
struct Collected {
    schema: Option<SchemaRef>,
    model_derived: Vec<bool>,
    batches: Vec<RecordBatch>,
}

impl ResultSink for Collected {
    fn start(&mut self, schema: &SchemaRef, model_derived: &[bool]) -> Result<(), RunError> {
        self.schema = Some(Arc::clone(schema));
        self.model_derived = model_derived.to_vec();
        Ok(())
    }

    fn batch(&mut self, batch: RecordBatch) -> Result<(), RunError> {
        self.batches.push(batch);
        Ok(())
    }
}

/// What a statement's run recorded, as `execute_recorded` fills it in.
type RunState<'a> = (
    &'a mut RunRecorder,
    &'a mut Vec<(Arc<SessionModel>, RunFacts)>,
    &'a mut usize,
);

/// A statement's checked plan, as it will run.
enum Planned {
    /// `CREATE VIEW` / `DROP VIEW`: run by the session (its query was checked).
    Ddl(LogicalPlan),
    /// A query, optimized: the plan the check passed is the plan that runs.
    Query(LogicalPlan),
}

impl Planned {
    fn logical(&self) -> &LogicalPlan {
        match self {
            Planned::Ddl(plan) | Planned::Query(plan) => plan,
        }
    }
}

/// Clears every model's scoring when a statement ends, however it ends: a function called
/// later, outside a statement that prepared it, fails instead of scoring unrecorded.
struct ClearScoring<'a>(&'a [Arc<SessionModel>]);

impl Drop for ClearScoring<'_> {
    fn drop(&mut self) {
        for model in self.0 {
            model
                .scoring
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
        }
    }
}

/// Queries, views and DESCRIBE run; nothing that writes files, changes the session's tables or
/// settings, or plans without running: `COPY ... TO` could overwrite the audit trail, `CREATE
/// EXTERNAL TABLE` could read a governed table's source whole, `DROP TABLE` could remove a
/// governed table, and `EXPLAIN` prints a governed table's source and masks (and scores a table
/// function while it plans).
fn allowed_statement(plan: &LogicalPlan) -> Result<(), RunError> {
    use datafusion::logical_expr::DdlStatement;

    let refuse = |what: &str| {
        Err(RunError::StatementRefused {
            what: what.to_string(),
            why: "a session runs queries, CREATE VIEW, DROP VIEW and DESCRIBE only".into(),
        })
    };
    match plan {
        LogicalPlan::Ddl(DdlStatement::CreateView(_) | DdlStatement::DropView(_)) => Ok(()),
        LogicalPlan::Ddl(ddl) => refuse(ddl.name()),
        LogicalPlan::Dml(_) => refuse("INSERT, UPDATE or DELETE"),
        LogicalPlan::Copy(_) => refuse("COPY"),
        LogicalPlan::Statement(statement) => refuse(statement.name()),
        LogicalPlan::Explain(_) | LogicalPlan::Analyze(_) => refuse("EXPLAIN"),
        _ => Ok(()),
    }
}

/// The session's DataFusion context: column names keep their case (as in the policy), batches
/// of the policy's `batch-rows`, `instances` partitions scoring side by side, a bounded memory
/// pool.
fn session_context(batch_rows: usize, instances: usize) -> Result<SessionContext, RunError> {
    let mut config = SessionConfig::new()
        .with_batch_size(batch_rows.max(1))
        .with_target_partitions(instances.max(1) * 2)
        .with_information_schema(true);
    config.options_mut().sql_parser.enable_ident_normalization = false;
    let runtime_env = RuntimeEnvBuilder::new()
        .with_memory_limit(SESSION_MEMORY, 1.0)
        .build_arc()
        .map_err(|e| RunError::Sql(format!("cannot set up the session: {e}")))?;
    Ok(SessionContext::new_with_config_rt(config, runtime_env))
}
