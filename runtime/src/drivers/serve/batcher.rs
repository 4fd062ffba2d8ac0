//! Dynamic batching over a pool of warm instances, for one role's prepared model.
//!
//! Requests queue (bounded in rows: a request that would pass `[serve] queue-rows` is refused
//! with 429). While every instance is busy, requests wait in the queue; as soon as one is free,
//! the batcher takes the oldest request and, until the batch reaches `batch-rows` or the
//! first request has waited `max-batch-delay`, every request that fits after it (Triton's
//! dynamic batcher). The batch's rows go through the grant's query (the data plane) and one
//! `score` call per `batch-rows` rows; each request gets its own rows back.
//!
//! A batch that fails (a trap, a broken limit, a value the policy's query refuses) is scored
//! again request by request on a fresh instance, so that only the request at fault fails: a
//! hostile or unlucky request cannot take its neighbours down with it. An instance that failed
//! is never used again; a new one takes its place.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use datafusion::arrow::array::{Array, ArrayRef, RecordBatch, UInt32Array};
use datafusion::arrow::compute::{concat, take};
use datafusion::arrow::datatypes::DataType;
use tokio::sync::{mpsc, oneshot};

use super::ServeError;
use super::metrics::Metrics;
use super::recorder::{AuditSender, BatchEvent};
use crate::error::RunError;
use crate::policy::OutOfDomain;
use crate::prepare::PreparedModel;
use crate::scorer::{Scorer, Totals};
use crate::sink::{DataSink, MemorySink, OutputRows};
use crate::source::RequestSource;

/// One request waiting to be scored.
pub(crate) struct Job {
    /// The request columns in the source's order, all `rows` long.
    pub columns: Vec<ArrayRef>,
    pub rows: usize,
    pub caller: String,
    pub deadline: Instant,
    pub arrived: Instant,
    pub reply: oneshot::Sender<Result<RecordBatch, ServeError>>,
}

/// One role's model as the server runs it.
pub(crate) struct ServedModel {
    pub role: Option<String>,
    pub prepared: PreparedModel,
    pub source: RequestSource,
    queue: Mutex<Option<mpsc::UnboundedSender<Job>>>,
    pool: Arc<ScorerPool>,
    metrics: Arc<Metrics>,
    /// Rows queued now, all roles together; and the most that may be.
    queued: Arc<std::sync::atomic::AtomicU64>,
    queue_rows: u64,
}

/// Warm instances. A free instance waits in the batcher's channel; a batch owns its instance
/// until it is done, then sends it back (or a fresh one, if it failed).
pub(crate) struct ScorerPool {
    free: mpsc::UnboundedSender<Scorer>,
    /// Instances alive (free or busy); the model is ready while it is above 0.
    alive: std::sync::atomic::AtomicUsize,
    /// Counts of instances that were dropped or have ended, for the run's end.
    retired: Mutex<Totals>,
}

impl ScorerPool {
    fn put_back(&self, scorer: Scorer) {
        // The batcher holds the receiver until every batch is done, so this cannot fail while
        // a batch runs; if it did, the instance's counts are kept.
        if let Err(returned) = self.free.send(scorer) {
            self.retire(returned.0);
        }
    }

    fn retire(&self, scorer: Scorer) {
        self.retired
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .merge(scorer.totals());
        self.alive.fetch_sub(1, Ordering::AcqRel);
    }

    /// Every instance's counts: what the run's end reports, once the batcher has ended.
    pub(crate) fn totals(&self) -> Totals {
        self.retired
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Far enough for an instance that waits between requests: each call sets its own deadline.
const IDLE_DEADLINE: Duration = Duration::from_secs(365 * 24 * 3600);

impl ServedModel {
    /// Starts the model's `instances` warm instances and its batcher.
    pub(crate) fn start(
        role: Option<String>,
        prepared: PreparedModel,
        source: RequestSource,
        metrics: Arc<Metrics>,
        queued: Arc<std::sync::atomic::AtomicU64>,
        audit: AuditSender,
        tokio: &tokio::runtime::Handle,
    ) -> Result<(Arc<ServedModel>, tokio::task::JoinHandle<()>), RunError> {
        let policy = prepared.policy();
        let instances = policy.limits.instances.max(1) as usize;
        let (free, free_instances) = mpsc::unbounded_channel();
        let pool = Arc::new(ScorerPool {
            free,
            alive: std::sync::atomic::AtomicUsize::new(0),
            retired: Mutex::new(Totals::default()),
        });
        for _ in 0..instances {
            let scorer = prepared
                .scorer(Instant::now() + IDLE_DEADLINE)
                .map_err(|e| RunError::scoring(e, None))?;
            pool.alive.fetch_add(1, Ordering::AcqRel);
            pool.put_back(scorer);
        }
        let serve = policy.serve.clone().unwrap_or_default();
        let (sender, receiver) = mpsc::unbounded_channel();
        let model = Arc::new(ServedModel {
            role,
            prepared,
            source,
            queue: Mutex::new(Some(sender)),
            pool,
            metrics,
            queued,
            queue_rows: serve.queue_rows,
        });
        let batcher = tokio.spawn(batch_loop(
            Arc::clone(&model),
            receiver,
            free_instances,
            serve.max_batch_delay.0,
            audit,
        ));
        Ok((model, batcher))
    }

    /// Whether an instance is alive to score.
    pub(crate) fn ready(&self) -> bool {
        self.pool.alive.load(Ordering::Acquire) > 0
            && self
                .queue
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .is_some()
    }

    /// The scored rows' schema: the key columns, then the outputs.
    pub(crate) fn output_schema(&self) -> datafusion::arrow::datatypes::SchemaRef {
        let grant = self.prepared.grant();
        let policy = self.prepared.policy();
        MemorySink::new(&grant.output, &grant.input.key, &policy.limits).schema()
    }

    /// Every instance's counts, once the batcher has ended.
    pub(crate) fn totals(&self) -> Totals {
        self.pool.totals()
    }

    /// Stops taking requests: the batcher finishes what is queued, then ends.
    pub(crate) fn close(&self) {
        self.queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
    }

    /// Queues a request and waits for its rows: the key columns, the outputs, and whether each
    /// row was scored.
    pub(crate) async fn score(
        &self,
        columns: Vec<ArrayRef>,
        rows: usize,
        caller: String,
        deadline: Instant,
        arrived: Instant,
    ) -> Result<RecordBatch, ServeError> {
        // Admission: the rows must fit the queue, all roles together.
        let rows_u64 = rows as u64;
        let admitted = self
            .queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |queued| {
                (queued + rows_u64 <= self.queue_rows).then_some(queued + rows_u64)
            });
        if admitted.is_err() {
            return Err(ServeError::QueueFull(self.queue_rows));
        }
        self.metrics
            .queue_rows
            .fetch_add(rows_u64, Ordering::Relaxed);
        let (reply, answer) = oneshot::channel();
        let job = Job {
            columns,
            rows,
            caller,
            deadline,
            arrived,
            reply,
        };
        let sent = match &*self.queue.lock().unwrap_or_else(PoisonError::into_inner) {
            Some(queue) => queue.send(job).is_ok(),
            None => false,
        };
        if !sent {
            self.dequeued(rows);
            return Err(ServeError::Unavailable(
                "the server is shutting down".into(),
            ));
        }
        match tokio::time::timeout_at(deadline.into(), answer).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(ServeError::Internal(
                "the request's batch ended without an answer".into(),
            )),
            Err(_) => Err(ServeError::Timeout(
                self.prepared
                    .policy()
                    .serve
                    .as_ref()
                    .map(|s| s.request_time.0)
                    .unwrap_or_default(),
            )),
        }
    }

    fn dequeued(&self, rows: usize) {
        self.queued.fetch_sub(rows as u64, Ordering::AcqRel);
        self.metrics
            .queue_rows
            .fetch_sub(rows as u64, Ordering::Relaxed);
    }
}

/// Forms batches while the queue is open, and dispatches each to a free instance.
async fn batch_loop(
    model: Arc<ServedModel>,
    mut receiver: mpsc::UnboundedReceiver<Job>,
    mut free_instances: mpsc::UnboundedReceiver<Scorer>,
    max_delay: Duration,
    audit: AuditSender,
) {
    let batch_rows = model.prepared.policy().limits.batch_rows.max(1) as usize;
    let mut carried: Option<Job> = None;
    let mut running = tokio::task::JoinSet::new();
    let mut last_failed_start: Option<Instant> = None;
    loop {
        let first = match carried.take() {
            Some(job) => job,
            None => match receiver.recv().await {
                Some(job) => job,
                None => break,
            },
        };
        // Wait for a free instance; requests queue meanwhile and join the batch below.
        let Some(scorer) = next_instance(&model, &mut free_instances, &mut last_failed_start).await
        else {
            model.dequeued(first.rows);
            let _ = first.reply.send(Err(ServeError::Unavailable(
                "no sandbox instance is alive and none could be started; retry later".into(),
            )));
            continue;
        };
        let until = tokio::time::Instant::from_std(first.arrived + max_delay);
        let mut rows = first.rows;
        let mut jobs = vec![first];
        while rows < batch_rows {
            let next = match receiver.try_recv() {
                Ok(job) => Some(job),
                Err(mpsc::error::TryRecvError::Empty) => {
                    tokio::time::timeout_at(until, receiver.recv())
                        .await
                        .unwrap_or_default()
                }
                Err(mpsc::error::TryRecvError::Disconnected) => None,
            };
            let Some(job) = next else { break };
            if rows + job.rows > batch_rows {
                carried = Some(job);
                break;
            }
            rows += job.rows;
            jobs.push(job);
        }
        while running.try_join_next().is_some() {}
        let model = Arc::clone(&model);
        let audit = audit.clone();
        running.spawn(async move { run_batch(model, scorer, jobs, audit).await });
    }
    while running.join_next().await.is_some() {}
    // Every batch is done: the instances left are all free. Their counts go to the run's end.
    free_instances.close();
    while let Ok(scorer) = free_instances.try_recv() {
        model.pool.retire(scorer);
    }
}

/// How long after an instance failed to start the batcher tries again: until then a request
/// that finds no instance alive is answered 503 at once.
const RESTART_BACKOFF: Duration = Duration::from_secs(1);

/// A free instance, once one is. While none is alive (every replacement failed to start) a
/// new one is started here; `None` when that fails too.
async fn next_instance(
    model: &Arc<ServedModel>,
    free_instances: &mut mpsc::UnboundedReceiver<Scorer>,
    last_failed_start: &mut Option<Instant>,
) -> Option<Scorer> {
    loop {
        if model.pool.alive.load(Ordering::Acquire) == 0 {
            if last_failed_start.is_some_and(|at| at.elapsed() < RESTART_BACKOFF) {
                return None;
            }
            let starting = Arc::clone(model);
            match tokio::task::spawn_blocking(move || start_instance(&starting)).await {
                Ok(Some(scorer)) => return Some(scorer),
                _ => {
                    *last_failed_start = Some(Instant::now());
                    return None;
                }
            }
        }
        // The pool's own sender keeps this channel open; the instances alive are counted
        // apart, so the wait is rechecked now and then.
        tokio::select! {
            scorer = free_instances.recv() => {
                if let Some(scorer) = scorer {
                    return Some(scorer);
                }
            }
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    }
}

/// A new warm instance in the pool's count, or `None` (said on stderr) when it cannot start.
fn start_instance(model: &ServedModel) -> Option<Scorer> {
    match model.prepared.scorer(Instant::now() + IDLE_DEADLINE) {
        Ok(fresh) => {
            model.pool.alive.fetch_add(1, Ordering::AcqRel);
            Some(fresh)
        }
        Err(error) => {
            eprintln!(
                "cordon serve: cannot start a new instance: {}",
                RunError::scoring(error, None)
            );
            None
        }
    }
}

/// Whether a job is still worth scoring: its caller waits and its time is not up. A job that
/// is not is answered (504) or dropped here, so that it neither holds a batch to its deadline
/// nor is scored and counted for nobody.
fn still_wanted(job: Job, now: Instant) -> Option<Job> {
    if job.reply.is_closed() {
        return None;
    }
    if job.deadline <= now {
        let _ = job.reply.send(Err(ServeError::Timeout(
            job.deadline.saturating_duration_since(job.arrived),
        )));
        return None;
    }
    Some(job)
}

/// Scores one batch on `scorer`, request by request again if it fails, and answers every
/// request; the instance (or a fresh one) goes back to the pool.
async fn run_batch(model: Arc<ServedModel>, scorer: Scorer, jobs: Vec<Job>, audit: AuditSender) {
    let rows: usize = jobs.iter().map(|j| j.rows).sum();
    model.dequeued(rows);
    let now = Instant::now();
    let jobs: Vec<Job> = jobs
        .into_iter()
        .filter_map(|job| still_wanted(job, now))
        .collect();
    if jobs.is_empty() {
        model.pool.put_back(scorer);
        return;
    }
    let started = Instant::now();
    let mut event = BatchEvent {
        role: model.role.clone(),
        callers: jobs.iter().map(|j| j.caller.clone()).collect(),
        requests: jobs.len(),
        rows: jobs.iter().map(|j| j.rows).sum(),
        counts: Counts::default(),
        status: "ok",
        error: None,
        micros: 0,
    };
    let (mut scorer, counts, first) = attempt(&model, Some(scorer), &jobs).await;
    // The usage ledger counts the batch as first formed, never the retries below (whose
    // number the model would steer by failing)...
    event.counts = counts;
    // ...unless the batch never reached the model: the data plane refused one request's
    // values before any `score` call, so the retries are the first time the others' rows
    // enter the sandbox, and the ledger counts them.
    let count_retries = matches!(&first, Err((_, "refused")));
    match first {
        Ok(outputs) => {
            for (job, output) in jobs.into_iter().zip(outputs) {
                let _ = job.reply.send(Ok(output));
            }
        }
        Err((error, why)) if jobs.len() == 1 => {
            event.status = why;
            event.error = Some(error.to_string());
            if let Some(job) = jobs.into_iter().next() {
                let _ = job.reply.send(Err(error));
            }
        }
        Err((error, _)) => {
            // One request of the batch is at fault, or several: each is tried alone, so that
            // only those fail.
            event.status = "retried";
            event.error = Some(error.to_string());
            for job in jobs {
                let Some(job) = still_wanted(job, Instant::now()) else {
                    continue;
                };
                let (back, counts, result) =
                    attempt(&model, scorer, std::slice::from_ref(&job)).await;
                scorer = back;
                if count_retries {
                    event.counts.rows += counts.rows;
                    event.counts.calls += counts.calls;
                }
                let result = result.map_err(|(error, _)| error).and_then(|mut outputs| {
                    outputs.pop().ok_or_else(|| {
                        ServeError::Internal("a request came back without rows".into())
                    })
                });
                let _ = job.reply.send(result);
            }
        }
    }
    event.micros = started.elapsed().as_micros() as u64;
    audit.batch(event);
    if let Some(scorer) = scorer {
        model.pool.put_back(scorer);
    }
}

/// What one attempt put into the sandbox, as the host decided it before any model code ran:
/// the rows the grant's query let through and the `score` calls they make.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Counts {
    pub rows: u64,
    pub calls: u64,
}

/// One try at scoring `jobs` together on `scorer`: the data plane's query on every
/// `batch-rows` request rows first, then one `score` call for each that kept any row. Returns
/// the instance to go on with (`None` once none could be started), the counts, and each job's
/// output.
async fn attempt(
    model: &Arc<ServedModel>,
    mut scorer: Option<Scorer>,
    jobs: &[Job],
) -> (
    Option<Scorer>,
    Counts,
    Result<Vec<RecordBatch>, (ServeError, &'static str)>,
) {
    let mut counts = Counts::default();
    let columns = match combine(jobs) {
        Ok(columns) => columns,
        Err(error) => return (scorer, counts, Err((error, "error"))),
    };
    let total: usize = jobs.iter().map(|j| j.rows).sum();
    let batch_rows = model.prepared.policy().limits.batch_rows.max(1) as usize;
    let deadline = jobs
        .iter()
        .map(|j| j.deadline)
        .min()
        .unwrap_or_else(Instant::now);
    let mut selected_chunks = Vec::new();
    let mut positions = Vec::new();
    let mut start = 0;
    while start < total {
        let length = batch_rows.min(total - start);
        let chunk: Vec<ArrayRef> = columns.iter().map(|c| c.slice(start, length)).collect();
        let selected = match model.source.select(chunk).await {
            Ok(selected) => selected,
            Err(error) => {
                let error = ServeError::BadRequest(error.to_string());
                return (scorer, Counts::default(), Err((error, "refused")));
            }
        };
        // Under `out-of-domain = "refuse"` a value outside the manifest's domains fails its
        // request here, before any `score` call, named by its row in the request (the other
        // requests of the batch are then tried alone, as for any refused value).
        let domains = model.prepared.domains();
        if domains.mode() == OutOfDomain::Refuse
            && let Some(value) = domains.first_violation(&selected.batch.batch)
        {
            let row = selected
                .rows
                .get(value.row)
                .map_or(value.row, |p| p + start);
            let error = ServeError::BadRequest(format!(
                "row {} of the request: {value}; refused by the policy's [bind.{}] out-of-domain = \"refuse\"",
                row + 1,
                value.input
            ));
            return (scorer, Counts::default(), Err((error, "refused")));
        }
        if domains.mode() == OutOfDomain::Count && !domains.is_empty() {
            let mut counted = std::collections::BTreeMap::new();
            if domains.apply(&selected.batch.batch, &mut counted).is_ok() {
                model
                    .metrics
                    .values_out_of_domain
                    .fetch_add(counted.values().sum(), Ordering::Relaxed);
            }
        }
        positions.extend(selected.rows.iter().map(|p| p + start));
        start += length;
        let rows = selected.batch.batch.num_rows as u64;
        // No row of the chunk passed the filter: the model is not called for it.
        if rows > 0 {
            counts.rows += rows;
            counts.calls += 1;
            selected_chunks.push(selected.batch);
        }
    }
    let mut outputs = Vec::with_capacity(selected_chunks.len());
    for keyed in selected_chunks {
        if scorer.is_none() {
            let starting = Arc::clone(model);
            scorer = tokio::task::spawn_blocking(move || start_instance(&starting))
                .await
                .ok()
                .flatten();
        }
        let Some(instance) = scorer.take() else {
            let error = ServeError::Unavailable(
                "no sandbox instance is alive and none could be started; retry later".into(),
            );
            return (None, counts, Err((error, "error")));
        };
        let model_for_task = Arc::clone(model);
        let outcome = tokio::task::spawn_blocking(move || {
            score_selected(&model_for_task, instance, keyed, deadline)
        })
        .await;
        match outcome {
            Ok((back, Ok(output))) => {
                scorer = back;
                outputs.push(output);
            }
            Ok((back, Err(error))) => return (back, counts, Err((error, "error"))),
            Err(join) => {
                // The instance went with the task; the pool is one smaller.
                model.pool.alive.fetch_sub(1, Ordering::AcqRel);
                let error = ServeError::Internal(format!("scoring stopped: {join}"));
                return (None, counts, Err((error, "error")));
            }
        }
    }
    model
        .metrics
        .rows_scored
        .fetch_add(counts.rows, Ordering::Relaxed);
    let output = match outputs.first() {
        Some(first) => datafusion::arrow::compute::concat_batches(&first.schema(), &outputs)
            .map_err(|e| ServeError::Internal(format!("cannot join the batch's rows: {e}"))),
        None => Ok(RecordBatch::new_empty(model.output_schema())),
    };
    // Each key output comes from the request's own key tensor, so every row has its key,
    // scored or not.
    let keys: Vec<(usize, usize)> = model
        .prepared
        .grant()
        .input
        .key
        .iter()
        .enumerate()
        .filter_map(|(output_index, key)| {
            let request_index = model.source.columns().iter().position(|c| &c.name == key)?;
            Some((output_index, request_index))
        })
        .collect();
    match output.and_then(|output| split(&output, &positions, jobs, &keys)) {
        Ok(outputs) => (scorer, counts, Ok(outputs)),
        Err(error) => (scorer, counts, Err((error, "error"))),
    }
}

/// The jobs' columns end to end.
fn combine(jobs: &[Job]) -> Result<Vec<ArrayRef>, ServeError> {
    let Some(first) = jobs.first() else {
        return Ok(Vec::new());
    };
    if jobs.len() == 1 {
        return Ok(first.columns.clone());
    }
    (0..first.columns.len())
        .map(|index| {
            let parts: Vec<&dyn Array> = jobs
                .iter()
                .filter_map(|job| job.columns.get(index).map(|c| c.as_ref()))
                .collect();
            concat(&parts).map_err(|e| ServeError::Internal(format!("cannot join requests: {e}")))
        })
        .collect()
}

/// Scores the rows the grant let through on a free instance, `batch-rows` at a time, and
/// applies the output rules (declared columns, `non-finite`, output bytes) as a run does.
/// Returns the key columns and outputs, one row per scored row. A failed instance is dropped
/// and a new one started in its place.
fn score_selected(
    model: &ServedModel,
    mut scorer: Scorer,
    keyed: crate::data::KeyedBatch,
    deadline: Instant,
) -> (Option<Scorer>, Result<RecordBatch, ServeError>) {
    scorer.set_deadline(deadline);
    let policy = model.prepared.policy();
    let grant = model.prepared.grant();
    let keys = match keyed.held_back {
        crate::data::HeldBack::RowKeys(keys) => keys,
        crate::data::HeldBack::PartitionKey(_) => Vec::new(),
    };
    model.metrics.batches.fetch_add(1, Ordering::Relaxed);
    let scored = crate::panics::catch(|| scorer.score(keyed.batch));
    let result = match scored {
        Ok(Ok(output)) => {
            let mut sink = MemorySink::new(&grant.output, &grant.input.key, &policy.limits);
            sink.write(&OutputRows {
                keys,
                batch: output,
            })
            .and_then(|()| sink.commit())
            .map_err(|e| ServeError::Model(e.to_string()))
        }
        Ok(Err(error)) => Err(ServeError::Model(
            RunError::scoring(error, None).to_string(),
        )),
        Err(panic) => Err(ServeError::Internal(format!("scoring panicked: {panic}"))),
    };
    match result {
        Ok(output) => (Some(scorer), Ok(output)),
        Err(error) => {
            // A trapped or limited instance is never used again.
            model.pool.retire(scorer);
            model
                .metrics
                .instances_replaced
                .fetch_add(1, Ordering::Relaxed);
            // When none starts, the pool is one smaller; the batcher starts one again
            // once none is left.
            (start_instance(model), Err(error))
        }
    }
}

/// Each job's rows of the scored output, with a null row for every request row the filter
/// kept out, and `cordon_scored` saying which rows were scored.
fn split(
    output: &RecordBatch,
    positions: &[usize],
    jobs: &[Job],
    keys: &[(usize, usize)],
) -> Result<Vec<RecordBatch>, ServeError> {
    if positions.len() != output.num_rows() {
        return Err(ServeError::Internal(format!(
            "{} rows were scored, {} came back",
            positions.len(),
            output.num_rows()
        )));
    }
    let mut outputs = Vec::with_capacity(jobs.len());
    let mut next = 0usize;
    let mut offset = 0usize;
    for job in jobs {
        let end = offset + job.rows;
        let mut indices: Vec<Option<u32>> = vec![None; job.rows];
        while let Some(position) = positions.get(next).copied() {
            if position >= end {
                break;
            }
            if let Some(slot) = position
                .checked_sub(offset)
                .and_then(|p| indices.get_mut(p))
            {
                *slot = Some(next as u32);
            }
            next += 1;
        }
        let indices = UInt32Array::from(indices);
        let mut columns = Vec::with_capacity(output.num_columns() + 1);
        for (index, column) in output.columns().iter().enumerate() {
            let request_key = keys
                .iter()
                .find(|(output_index, _)| *output_index == index)
                .and_then(|(_, request_index)| job.columns.get(*request_index));
            let array = match request_key {
                Some(key) => datafusion::arrow::compute::cast(key, &DataType::Utf8),
                None => take(column.as_ref(), &indices, None),
            };
            columns.push(
                array.map_err(|e| ServeError::Internal(format!("cannot split the batch: {e}")))?,
            );
        }
        let scored: datafusion::arrow::array::BooleanArray = (0..indices.len())
            .map(|i| Some(indices.is_valid(i)))
            .collect();
        columns.push(Arc::new(scored));
        let mut fields: Vec<datafusion::arrow::datatypes::Field> = output
            .schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        fields.push(datafusion::arrow::datatypes::Field::new(
            super::SCORED_OUTPUT,
            datafusion::arrow::datatypes::DataType::Boolean,
            false,
        ));
        let schema = Arc::new(datafusion::arrow::datatypes::Schema::new(fields));
        outputs.push(
            RecordBatch::try_new(schema, columns)
                .map_err(|e| ServeError::Internal(format!("cannot split the batch: {e}")))?,
        );
        offset = end;
    }
    Ok(outputs)
}
