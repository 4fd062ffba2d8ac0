//! A package's model as SQL functions: a scalar function for row-mode models
//! (`telco_churn(tenure, monthly_charges, ...)`, scored in batches through the sandbox) and a
//! table function for every model (`SELECT * FROM telco_churn('customers')`, exactly what
//! `cordon run` computes). Both score through the session's one [`PreparedModel`] with the
//! policy's limits; what a query scored is gathered in its [`QueryScoring`] for the trail and
//! the ledger.

use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, bounded};
use datafusion::arrow::array::{ArrayRef, StructArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Fields, SchemaRef};
use datafusion::catalog::{Session, TableFunctionArgs, TableFunctionImpl};
use datafusion::common::ScalarValue;
use datafusion::datasource::{MemTable, TableProvider, TableType};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::async_udf::AsyncScalarUDFImpl;
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::physical_plan::ExecutionPlan;

use crate::data::Batch;
use crate::drivers::batch::{open_source_with, score_table, start_scorers};
use crate::error::RunError;
use crate::prepare::PreparedModel;
use crate::record::RunFacts;
use crate::run::Progress;
use crate::scorer::{Scorer, Totals};
use crate::sink::{DataSink, MemorySink, OutputRows};
use crate::source::{PartitionRead, arrow_type, model_column};

/// One package of a SQL session.
pub(crate) struct SessionModel {
    /// Its functions' SQL name: the package name with `-` as `_` (`telco_churn`).
    pub(crate) function: String,
    pub(crate) prepared: PreparedModel,
    /// The governed table its input is bound to: the manifest input's name.
    pub(crate) input: String,
    /// The scoring of the statement in flight, set by the session while a statement that calls
    /// the model runs.
    pub(crate) scoring: Mutex<Option<Arc<QueryScoring>>>,
    pub(crate) tokio: Arc<tokio::runtime::Runtime>,
}

impl std::fmt::Debug for SessionModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionModel")
            .field("function", &self.function)
            .field("input", &self.input)
            .finish_non_exhaustive()
    }
}

impl SessionModel {
    /// The statement in flight's scoring; a function called outside a statement the session
    /// prepared (which the session never lets happen) is an error, not an unlimited run.
    fn scoring(&self) -> DfResult<Arc<QueryScoring>> {
        self.scoring
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or_else(|| {
                DataFusionError::Execution(format!(
                    "{}: called outside a statement the session prepared",
                    self.function
                ))
            })
    }
}

/// What one statement scored with one model: its scorers for the scalar function, its limits,
/// and the host's counts.
pub(crate) struct QueryScoring {
    /// Free scorers: a call takes one and puts it back (`instances` of them in all).
    free: (Sender<Scorer>, Receiver<Scorer>),
    /// How many scorers the statement started.
    scorers: usize,
    /// Set once a batch of the statement has failed: no batch waits for a scorer after it.
    failed: AtomicBool,
    deadline: Instant,
    wall_time: Duration,
    progress: Arc<dyn Progress + Send + Sync>,
    state: Mutex<ScoringState>,
}

#[derive(Default)]
pub(crate) struct ScoringState {
    pub(crate) facts: RunFacts,
    pub(crate) partitions: Vec<PartitionRead>,
    /// Scorers dropped after their batch failed.
    lost: usize,
    /// The first error a call met, as the run reports it (DataFusion only carries its text).
    pub(crate) error: Option<RunError>,
}

impl QueryScoring {
    /// Starts `scorers` instances for the scalar function (none if the statement only calls
    /// the table function, which starts its own), all stopping at `deadline`.
    pub(crate) fn start(
        prepared: &PreparedModel,
        scorers: usize,
        deadline: Instant,
        progress: Arc<dyn Progress + Send + Sync>,
    ) -> Result<QueryScoring, RunError> {
        let free = bounded(scorers.max(1));
        for scorer in start_scorers(prepared, deadline, scorers)? {
            // The channel holds `scorers` items, so this never blocks or fails.
            let _ = free.0.send(scorer);
        }
        Ok(QueryScoring {
            free,
            scorers,
            failed: AtomicBool::new(false),
            deadline,
            wall_time: prepared.policy().limits.wall_time.0,
            progress,
            state: Mutex::new(ScoringState::default()),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, ScoringState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Ends the statement's scoring: every scorer back (one still scoring a batch nobody
    /// wants any more finishes it first, within the deadline), its counts gathered, and what
    /// was counted.
    pub(crate) fn finish(&self) -> ScoringState {
        let mut totals = Totals::default();
        // The deadline stops a busy scorer; a little past it, one that has not come back is
        // given up on (its counts are lost, never waited for forever).
        let give_up = self.deadline + Duration::from_secs(5);
        let lost = self.state().lost;
        for _ in 0..self.scorers.saturating_sub(lost) {
            match self.free.1.recv_deadline(give_up) {
                Ok(scorer) => totals.merge(scorer.totals()),
                Err(_) => break,
            }
        }
        let mut state = std::mem::take(&mut *self.state());
        state.facts.totals.merge(totals);
        state
    }

    /// A free scorer, waiting for one; none once a batch of the statement has failed.
    fn free_scorer(&self) -> Result<Scorer, RunError> {
        loop {
            if self.failed.load(Ordering::Acquire) {
                return Err(RunError::Internal(
                    "an earlier batch of the statement failed".into(),
                ));
            }
            match self.free.1.recv_timeout(Duration::from_millis(50)) {
                Ok(scorer) => return Ok(scorer),
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(RunError::Internal("no scorer is left for the query".into()));
                }
            }
        }
    }

    /// Drops a scorer whose batch failed, keeping its counts.
    fn lose(&self, scorer: Scorer) {
        let mut state = self.state();
        state.facts.totals.merge(scorer.totals());
        state.lost += 1;
    }

    /// Keeps the first error for the run's report, and hands DataFusion its text.
    fn fail(&self, error: RunError) -> DataFusionError {
        let message = error.to_string();
        let mut state = self.state();
        if state.error.is_none() {
            state.error = Some(error);
        }
        // Only now may waiting batches give up: their error comes after this one.
        self.failed.store(true, Ordering::Release);
        DataFusionError::Execution(message)
    }

    /// Scores one batch on a free scorer (waiting for one), with the deadline checked first.
    /// The first error of the statement is kept as the run's ([`QueryScoring::fail`]) before
    /// anything else can fail because of it.
    fn score(&self, batch: Batch) -> Result<Batch, DataFusionError> {
        self.score_unrecorded(batch)
            .map_err(|error| self.fail(error))
    }

    fn score_unrecorded(&self, batch: Batch) -> Result<Batch, RunError> {
        if Instant::now() > self.deadline {
            return Err(RunError::WallTime {
                limit: self.wall_time,
            });
        }
        let rows = batch.num_rows as u64;
        let at = {
            let mut state = self.state();
            let at = (state.facts.batches, state.facts.rows_in);
            state.facts.batches += 1;
            state.facts.rows_in += rows;
            at
        };
        let mut scorer = self.free_scorer()?;
        let scored = crate::panics::catch(|| scorer.score(batch));
        let output = match scored {
            Ok(Ok(output)) => {
                let _ = self.free.0.send(scorer);
                output
            }
            // An instance that failed (a trap, a broken limit) is never used again: it is
            // dropped with its counts kept, and the statement ends with this error.
            Ok(Err(error)) => {
                let error = RunError::scoring(error, Some(at));
                self.lose(scorer);
                return Err(error);
            }
            Err(panic) => {
                let error = RunError::Internal(format!("scoring batch {} panicked: {panic}", at.0));
                self.lose(scorer);
                return Err(error);
            }
        };
        let rows_out = {
            let mut state = self.state();
            state.facts.rows_out += output.num_rows as u64;
            state.facts.rows_out
        };
        self.progress.rows_written(rows_out);
        Ok(output)
    }
}

/// `telco_churn(tenure, monthly_charges, ...)`: a row-mode model as a scalar function, its
/// arguments the manifest's input columns by position. Volatile, so never folded at plan time;
/// async, so DataFusion hands it batches of `batch_rows` rows, and each partition of the plan
/// scores on a scorer of its own.
#[derive(Debug)]
pub(crate) struct ModelScalarFunction {
    model: Arc<SessionModel>,
    signature: Signature,
    /// The manifest's input columns, in order.
    parameters: Vec<(String, cordon_contract::types::ColumnType)>,
    returns: DataType,
    batch_rows: usize,
}

impl ModelScalarFunction {
    pub(crate) fn new(model: Arc<SessionModel>) -> ModelScalarFunction {
        let grant = model.prepared.grant();
        let parameters: Vec<_> = grant
            .input
            .columns
            .iter()
            .map(|c| (c.model.to_string(), c.ty))
            .collect();
        let signature = Signature::exact(
            parameters.iter().map(|(_, ty)| arrow_type(*ty)).collect(),
            Volatility::Volatile,
        );
        let returns = match grant.output.columns.as_slice() {
            [only] => arrow_type(only.ty),
            columns => DataType::Struct(Fields::from(
                columns
                    .iter()
                    .map(|c| Field::new(c.name.as_str(), arrow_type(c.ty), true))
                    .collect::<Vec<_>>(),
            )),
        };
        let batch_rows = model.prepared.policy().limits.batch_rows as usize;
        ModelScalarFunction {
            model,
            signature,
            parameters,
            returns,
            batch_rows,
        }
    }

    /// The arguments of one call as the batch the model reads.
    fn batch(&self, args: &ScalarFunctionArgs) -> DfResult<Batch> {
        let rows = args.number_rows;
        let mut columns = Vec::with_capacity(self.parameters.len());
        for ((name, ty), value) in self.parameters.iter().zip(&args.args) {
            let array = value.to_array(rows)?;
            let array = cast(&array, &arrow_type(*ty))?;
            let column = model_column(name, *ty, &array).map_err(|why| {
                DataFusionError::Execution(format!("{}: argument `{name}` {why}", self.name()))
            })?;
            columns.push(column);
        }
        Ok(Batch {
            num_rows: rows,
            columns,
        })
    }

    /// The model's output as the function's value, under the policy's output rules
    /// (`non-finite`, `limits.output-text-bytes`, as the scorer checked).
    fn value(&self, output: &Batch, rows: usize) -> Result<ArrayRef, RunError> {
        if output.num_rows != rows {
            return Err(RunError::InvalidOutput {
                batch: 0,
                reason: format!("{} rows for {rows} rows of arguments", output.num_rows),
            });
        }
        let grant = self.model.prepared.grant();
        let limits = &self.model.prepared.policy().limits;
        let mut sink = MemorySink::new(&grant.output, &[], limits);
        sink.write(&OutputRows {
            keys: Vec::new(),
            batch: output.clone(),
        })?;
        let record = sink.commit()?;
        match record.columns() {
            [only] => Ok(Arc::clone(only)),
            _ => Ok(Arc::new(StructArray::from(record))),
        }
    }
}

impl PartialEq for ModelScalarFunction {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.model, &other.model)
    }
}

impl Eq for ModelScalarFunction {}

impl Hash for ModelScalarFunction {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.model.function.hash(state);
    }
}

impl ScalarUDFImpl for ModelScalarFunction {
    fn name(&self) -> &str {
        &self.model.function
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(self.returns.clone())
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        Err(DataFusionError::Internal(format!(
            "{} is scored in batches through the sandbox, never called directly",
            self.name()
        )))
    }
}

#[async_trait]
impl AsyncScalarUDFImpl for ModelScalarFunction {
    fn ideal_batch_size(&self) -> Option<usize> {
        Some(self.batch_rows)
    }

    async fn invoke_async_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let scoring = self.model.scoring()?;
        let rows = args.number_rows;
        let batch = self.batch(&args)?;
        let scorer_side = Arc::clone(&scoring);
        // Scoring is CPU work that blocks: off the data plane's threads.
        let scored = tokio::task::spawn_blocking(move || scorer_side.score(batch))
            .await
            .map_err(|e| DataFusionError::Execution(format!("{}: {e}", self.name())))?;
        let output = scored?;
        match self.value(&output, rows) {
            Ok(array) => Ok(ColumnarValue::Array(array)),
            Err(error) => Err(scoring.fail(error)),
        }
    }
}

/// `telco_churn('customers')`: the model over its whole governed table, as `cordon run`
/// scores it (keys, or the partition key, then the outputs), for row and partition mode alike.
#[derive(Debug)]
pub(crate) struct ModelTableFunction {
    pub(crate) model: Arc<SessionModel>,
}

impl TableFunctionImpl for ModelTableFunction {
    fn call_with_args(&self, args: TableFunctionArgs) -> DfResult<Arc<dyn TableProvider>> {
        let model = &self.model;
        let named = match args.exprs() {
            [Expr::Literal(ScalarValue::Utf8(Some(name)), _)] => Some(name.as_str()),
            _ => None,
        };
        if named != Some(model.input.as_str()) {
            return Err(DataFusionError::Plan(format!(
                "{}: the table function takes the name of its governed table, as text: {}('{}')",
                model.function, model.function, model.input
            )));
        }
        let grant = model.prepared.grant();
        let schema = MemorySink::new(
            &grant.output,
            &grant.input.key,
            &model.prepared.policy().limits,
        )
        .schema();
        Ok(Arc::new(ScoredTable {
            model: Arc::clone(model),
            schema,
        }))
    }
}

/// What a table function call returns: scored when the plan is executed.
#[derive(Debug)]
pub(crate) struct ScoredTable {
    pub(crate) model: Arc<SessionModel>,
    schema: SchemaRef,
}

impl ScoredTable {
    /// The key columns of its output (the policy's keys; in partition mode none: the partition
    /// columns come from the model's columns).
    pub(crate) fn is_key(&self, column: &str) -> bool {
        self.model
            .prepared
            .grant()
            .input
            .key
            .iter()
            .any(|k| k == column)
    }

    /// The whole governed table through the batch driver, into memory.
    fn score_whole_table(
        model: &SessionModel,
        scoring: &QueryScoring,
    ) -> Result<datafusion::arrow::array::RecordBatch, RunError> {
        let prepared = &model.prepared;
        let grant = prepared.grant();
        let policy = prepared.policy();
        let mut source = open_source_with(&model.tokio, grant, policy)?;
        let sink = MemorySink::new(&grant.output, &grant.input.key, &policy.limits);
        let progress = ProgressOf(Arc::clone(&scoring.progress));
        let (scored, totals) =
            score_table(prepared, scoring.deadline, &mut source, sink, &progress);
        let mut state = scoring.state();
        state.facts.totals.merge(totals);
        state.facts.rows_in += source.rows_read();
        state.facts.partitions += source.partitions_read().len() as u64;
        state
            .partitions
            .extend(source.partitions_read().iter().cloned());
        let scored = scored?;
        state.facts.batches += scored.batches;
        state.facts.rows_out += scored.rows_out;
        Ok(scored.sink)
    }
}

/// A shared progress as the batch driver takes it.
struct ProgressOf(Arc<dyn Progress + Send + Sync>);

impl Progress for ProgressOf {
    fn rows_written(&self, rows: u64) {
        self.0.rows_written(rows);
    }
}

#[async_trait]
impl TableProvider for ScoredTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Temporary
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let scoring = self.model.scoring()?;
        let model = Arc::clone(&self.model);
        let scorer_side = Arc::clone(&scoring);
        // The batch driver blocks (its reader and scorers are threads): off the data plane's.
        let scored = tokio::task::spawn_blocking(move || {
            ScoredTable::score_whole_table(&model, &scorer_side)
        })
        .await
        .map_err(|e| DataFusionError::Execution(format!("{}: {e}", self.model.function)))?;
        let record = scored.map_err(|error| scoring.fail(error))?;
        let table = MemTable::try_new(Arc::clone(&self.schema), vec![vec![record]])?;
        table.scan(state, projection, filters, limit).await
    }
}
