//! The batch driver, `cordon run`: the policy's bound table in, the policy's sink out. A reader
//! thread parses the table into batches of granted columns (keys held back), `instances`
//! scorers score them side by side, and this thread writes the outputs back in input order,
//! keys re-attached, to a sink that is put in place only when every batch has been written.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::ScopedJoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, bounded, unbounded};

use crate::data::{Batch, HeldBack, KeyedBatch};
use crate::error::RunError;
use crate::grant::Grant;
use crate::policy::{Isolation, Policy};
use crate::prepare::{ModelFacts, PreparedModel};
use crate::record::{RunFacts, RunRecorder};
use crate::run::{Progress, RunRequest, RunSummary};
use crate::runtime::Runtime;
use crate::sandbox;
use crate::scorer::{Scorer, Totals};
use crate::sink::{DataSink, OutputRows, Sink};
use crate::source::TableSource;

impl Runtime {
    /// Runs one package on one table under one policy, with its audit trail and usage
    /// record: the batch driver.
    pub fn run(
        &self,
        request: &RunRequest,
        progress: &dyn Progress,
    ) -> Result<RunSummary, RunError> {
        run(self, request, progress)
    }

    /// Everything a run checks before any guest code or row is touched, and nothing more:
    /// the policy, the package and its signature, the grant, and every SQL snippet of the policy
    /// planned against the table's schema. Writes nothing, not even an audit line.
    pub fn check(&self, request: &RunRequest) -> Result<Grant, RunError> {
        let policy = Policy::load(&request.policy, &request.base_dir)?;
        let (package, signature) = self.load_verified(request, &policy)?;
        let admitted = self.admit(package, signature, &policy, request.role.as_deref())?;
        if self.skip_graph_admission {
            // `check` admits graphs even where the test hook lets a run skip it.
            crate::prepare::admit_graphs(&admitted.package, &policy.admission_rules())?;
        }
        open_source(self, &admitted.grant, &policy)?;
        Ok(admitted.grant)
    }
}

/// Runs one package on one table under one policy, with its audit trail and usage record.
pub fn run(
    runtime: &Runtime,
    request: &RunRequest,
    progress: &dyn Progress,
) -> Result<RunSummary, RunError> {
    let started = Instant::now();
    // The policy says where the audit trail goes, so it is read before the trail opens.
    let policy = Policy::load(&request.policy, &request.base_dir)?;
    let mut recorder = RunRecorder::open(&policy, started)?;
    let mut facts = RunFacts::default();
    let result = execute(
        runtime,
        request,
        &policy,
        &mut recorder,
        &mut facts,
        progress,
    );
    let wall_time = recorder.finish(&result, &facts)?;
    let mut summary = result?;
    summary.run_id = recorder.run_id().to_owned();
    summary.audit_head = recorder.head();
    summary.wall_time_s = wall_time.as_secs_f64();
    summary.rows_per_second = summary.rows_out as f64 / wall_time.as_secs_f64().max(1e-9);
    summary.host_peak_rss_bytes = crate::usage::process_peak_rss();
    Ok(summary)
}

/// The run itself; `facts` keeps what the audit trail and the usage record need even when it
/// fails.
fn execute(
    runtime: &Runtime,
    request: &RunRequest,
    policy: &Policy,
    recorder: &mut RunRecorder,
    facts: &mut RunFacts,
    progress: &dyn Progress,
) -> Result<RunSummary, RunError> {
    let (package, signature) = match runtime.load_verified(request, policy) {
        Ok(loaded) => loaded,
        Err(error) => {
            // What the run was asked to start, for the denial that follows.
            recorder.refused_start(&request.package_dir, policy)?;
            return Err(error);
        }
    };
    let model = ModelFacts::of(&package, signature.as_ref());
    recorder.run_start(&model, policy)?;
    let admitted = runtime.admit(package, signature, policy, request.role.as_deref())?;
    recorder.grant(&model, &admitted.grant, policy)?;
    let deadline = recorder.started() + policy.limits.wall_time.0;

    // The query is planned before any guest code is compiled: a filter, mask or column
    // expression that does not fit the table fails here, and no row has been read yet.
    let mut source = open_source(runtime, &admitted.grant, policy)?;
    let prepared = runtime.prepare(admitted)?;
    let grant = prepared.grant();

    let sink = Sink::create(&grant.output, &grant.input.key, &policy.limits)?;
    let (scored, totals) = score_table(&prepared, deadline, &mut source, sink, progress);
    facts.rows_in = source.rows_read();
    facts.partitions = source.partitions_read().len() as u64;
    facts.totals = totals;
    recorder.data_read(grant, facts.rows_in, source.partitions_read())?;
    recorder.inference(&facts.totals)?;
    recorder.out_of_domain(grant.input.name.as_str(), &facts.totals)?;
    let scored = scored.map_err(|error| with_file_line(error, runtime, grant))?;
    facts.rows_out = scored.rows_out;
    facts.batches = scored.batches;
    recorder.output_write(grant.output.name.as_str(), &scored.sink, scored.rows_out)?;
    Ok(summary(
        runtime,
        &prepared,
        scored,
        facts,
        recorder.started(),
    ))
}

/// A refused value's error placed at its line of a CSV source (`data.csv:18`), read again for
/// it (see [`crate::source::csv_line_of_row`]).
fn with_file_line(error: RunError, runtime: &Runtime, grant: &Grant) -> RunError {
    match error {
        RunError::OutOfDomain {
            place,
            key,
            row: Some(row),
            batch,
            value,
        } => {
            let place = crate::source::csv_line_of_row(&grant.input, row, &runtime.tokio)
                .map(|line| format!("{}:{line}", grant.input.source.display()))
                .unwrap_or(place);
            RunError::OutOfDomain {
                place,
                key,
                row: Some(row),
                batch,
                value,
            }
        }
        other => other,
    }
}

/// Plans the grant's query on its table. SQL of the policy that does not fit the table is a
/// policy error, at the line of the key that holds it.
pub(crate) fn open_source(
    runtime: &Runtime,
    grant: &Grant,
    policy: &Policy,
) -> Result<TableSource, RunError> {
    open_source_with(&runtime.tokio, grant, policy)
}

/// [`open_source`] on the data plane's runtime `tokio`.
pub(crate) fn open_source_with(
    tokio: &Arc<tokio::runtime::Runtime>,
    grant: &Grant,
    policy: &Policy,
) -> Result<TableSource, RunError> {
    TableSource::open(
        &grant.input,
        policy.limits.batch_rows as usize,
        policy.limits.partition_rows,
        Arc::clone(tokio),
    )
    .map_err(RunError::from)
}

/// What the run's summary reports: counts and timings, never data values.
fn summary(
    runtime: &Runtime,
    prepared: &PreparedModel,
    scored: Scored,
    facts: &RunFacts,
    started: Instant,
) -> RunSummary {
    let model = prepared.facts();
    let identity = &model.identity;
    let grant = prepared.grant();
    let policy = prepared.policy();
    let totals = &facts.totals;
    let (compile, compile_time) = prepared.compile();
    RunSummary {
        run_id: String::new(),
        package: identity.name.clone(),
        version: identity.version.clone(),
        publisher: identity.publisher.clone(),
        component_sha256: identity.component_sha256.clone(),
        package_digest: model.package_digest.clone(),
        signature: model.signature.clone(),
        model_description: scored.model_description,
        input: grant.input.name.to_string(),
        output: grant.output.name.to_string(),
        sink: scored.sink,
        rows_in: facts.rows_in,
        rows_out: scored.rows_out,
        batches: scored.batches,
        partitions: facts.partitions,
        instances: policy.limits.instances,
        wall_time_s: 0.0,
        rows_per_second: 0.0,
        first_batch_ms: scored
            .first_batch_at
            .map(|at| at.saturating_duration_since(started).as_secs_f64() * 1e3),
        runtime_setup_ms: runtime.setup_time.as_secs_f64() * 1e3,
        fuel_consumed: totals.fuel_consumed,
        peak_guest_memory_bytes: totals.peak_memory,
        host_peak_rss_bytes: 0,
        peak_tensor_bytes: totals.peak_tensor_bytes,
        inference_calls: totals.inference_calls,
        inference_time_s: totals.inference_time.as_secs_f64(),
        compile: compile.clone(),
        compile_time_ms: compile_time.as_secs_f64() * 1e3,
        instantiate_time_us: sandbox::mean(&totals.instantiate_times).as_secs_f64() * 1e6,
        graphs: grant
            .graphs
            .iter()
            .map(|g| format!("{} on {}", g.spec.name, g.device))
            .collect(),
        inference_isolation: match (&totals.jail, policy.inference.isolation) {
            (Some(layers), _) => format!("jail ({layers})"),
            (None, Isolation::Jail) => "jail (no graph ran)".into(),
            (None, Isolation::InProcess) => "in-process".into(),
        },
        guest_log: totals.log.clone(),
        guest_log_dropped: totals.log_dropped,
        incidents: totals.incidents.clone(),
        out_of_domain: totals.out_of_domain.clone(),
        audit_log: policy.audit.as_ref().map(|a| a.log.clone()),
        audit_head: None,
    }
}

/// What a worker thread tells the writer.
enum WorkerMessage {
    Scored { index: u64, batch: Batch },
    Failed(RunError),
    Finished(Box<Totals>),
}

/// What scoring a table into a sink did.
pub(crate) struct Scored<C = PathBuf> {
    pub(crate) rows_out: u64,
    pub(crate) batches: u64,
    /// When the first batch was handed to a sandbox.
    pub(crate) first_batch_at: Option<Instant>,
    /// What the sink committed: a file's path, or record batches.
    pub(crate) sink: C,
    pub(crate) model_description: String,
}

/// Streams the table through the policy's `instances` scorers and writes the outputs in input
/// order, gathering the scorers' counts whether it succeeds or not. Keys stay on this side:
/// scorers see only the batch of granted columns.
pub(crate) fn score_table<S: DataSink>(
    prepared: &PreparedModel,
    deadline: Instant,
    source: &mut TableSource,
    sink: S,
    progress: &dyn Progress,
) -> (Result<Scored<S::Committed>, RunError>, Totals) {
    let mut totals = Totals::default();
    let result = score_table_into(prepared, deadline, source, sink, progress, &mut totals);
    (result, totals)
}

fn score_table_into<S: DataSink>(
    prepared: &PreparedModel,
    deadline: Instant,
    source: &mut TableSource,
    sink: S,
    progress: &dyn Progress,
    totals: &mut Totals,
) -> Result<Scored<S::Committed>, RunError> {
    let limits = &prepared.policy().limits;
    let instances = limits.instances as usize;
    let mut scorers = start_scorers(prepared, deadline, instances)?;
    let model_description = match scorers.first_mut() {
        Some(scorer) => scorer
            .describe()
            .map_err(|error| RunError::scoring(error, None))?,
        None => String::new(),
    };

    let (work_tx, work_rx) = bounded::<(u64, u64, Batch)>(instances * 2);
    let (keys_tx, keys_rx) = unbounded::<(u64, HeldBack)>();
    let (result_tx, result_rx) = unbounded::<WorkerMessage>();
    let abort = AtomicBool::new(false);
    let first_batch_at = OnceLock::new();

    let written = std::thread::scope(|scope| {
        for mut scorer in scorers {
            let work_rx = work_rx.clone();
            let result_tx = result_tx.clone();
            let abort = &abort;
            let first_batch_at = &first_batch_at;
            scope.spawn(move || {
                for (index, first_row, batch) in work_rx.iter() {
                    if abort.load(Ordering::Relaxed) {
                        break;
                    }
                    first_batch_at.get_or_init(Instant::now);
                    // A panic below (in wasmtime, ONNX Runtime's bindings, Arrow) must fail the
                    // run, never end this thread silently: the sink would then commit without
                    // this batch.
                    let message = match crate::panics::catch(|| scorer.score(batch)) {
                        Ok(Ok(batch)) => WorkerMessage::Scored { index, batch },
                        Ok(Err(error)) => WorkerMessage::Failed(RunError::scoring(
                            error,
                            Some((index, first_row)),
                        )),
                        Err(panic) => WorkerMessage::Failed(RunError::Internal(format!(
                            "scoring batch {index} panicked: {panic}"
                        ))),
                    };
                    let failed = matches!(message, WorkerMessage::Failed(_));
                    let _ = result_tx.send(message);
                    if failed {
                        break;
                    }
                }
                let _ = result_tx.send(WorkerMessage::Finished(Box::new(scorer.totals())));
            });
        }
        drop(result_tx);
        drop(work_rx);

        // The reader parses the table and feeds the scorers. Keys go straight to the writer, in
        // input order, and never to a scorer.
        let abort_reader = &abort;
        // It returns how many batches it handed out: the writer checks that it wrote as many.
        let reader = scope.spawn(move || -> Result<u64, RunError> {
            let mut first_row = 0u64;
            let mut sent = 0u64;
            while let Some(KeyedBatch {
                index,
                batch,
                held_back,
            }) = source.next_batch()?
            {
                if abort_reader.load(Ordering::Relaxed) {
                    break;
                }
                let rows = batch.num_rows as u64;
                if keys_tx.send((index, held_back)).is_err()
                    || work_tx.send((index, first_row, batch)).is_err()
                {
                    // Not aborted, yet no scorer is left to take the batch.
                    return Err(RunError::Internal(format!(
                        "every scorer stopped before batch {index} was scored"
                    )));
                }
                first_row += rows;
                sent += 1;
            }
            Ok(sent)
        });

        // The writer (this thread) hands the sink the outputs in input order as they complete;
        // the sink commits only if the stream ends without an error.
        let mut in_order = InOrder {
            messages: &result_rx,
            keys: &keys_rx,
            key_names: &prepared.grant().input.key,
            reader: Some(reader),
            pending: BTreeMap::new(),
            next_index: 0,
            rows_out: 0,
            output_rows_limit: limits.output_rows,
            deadline,
            wall_time: limits.wall_time.0,
            abort: &abort,
            totals: &mut *totals,
            progress,
            ended: false,
        };
        let written = sink.write_all(&mut in_order);
        // On an error, stop the reader and the scorers, and gather what they did.
        in_order.drain();
        written.map(|written| (written, in_order.next_index))
    });

    let (written, batches) = written?;
    Ok(Scored {
        rows_out: written.rows,
        batches,
        first_batch_at: first_batch_at.into_inner(),
        sink: written.committed,
        model_description,
    })
}

/// Starts the run's scorers up front, side by side: a model that cannot start fails before
/// any data is read, and each jailed scorer starts an inference worker (a process, ONNX
/// Runtime loaded, its graphs built), which is most of a run's start-up.
pub(crate) fn start_scorers(
    prepared: &PreparedModel,
    deadline: Instant,
    instances: usize,
) -> Result<Vec<Scorer>, RunError> {
    std::thread::scope(|scope| {
        let starting: Vec<_> = (0..instances)
            .map(|_| scope.spawn(|| prepared.scorer(deadline)))
            .collect();
        starting
            .into_iter()
            .map(|handle| match handle.join() {
                Ok(started) => started.map_err(|error| RunError::scoring(error, None)),
                Err(_) => Err(RunError::Internal("starting an instance panicked".into())),
            })
            .collect()
    })
}

/// The scorers' outputs in input order, with their keys: the stream the sink writes. It ends
/// with the first error (a scorer's, the reader's, a broken limit), after which the sink
/// commits nothing.
struct InOrder<'a, 'scope> {
    messages: &'a Receiver<WorkerMessage>,
    keys: &'a Receiver<(u64, HeldBack)>,
    /// The names of the key columns, in the order of each row's key values.
    key_names: &'a [String],
    reader: Option<ScopedJoinHandle<'scope, Result<u64, RunError>>>,
    /// Scored batches waiting for their turn.
    pending: BTreeMap<u64, Batch>,
    next_index: u64,
    rows_out: u64,
    output_rows_limit: u64,
    deadline: Instant,
    wall_time: Duration,
    abort: &'a AtomicBool,
    totals: &'a mut Totals,
    progress: &'a dyn Progress,
    ended: bool,
}

impl Iterator for InOrder<'_, '_> {
    type Item = Result<OutputRows, RunError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.ended {
            return None;
        }
        let item = self.next_in_order().transpose();
        if !matches!(item, Some(Ok(_))) {
            self.ended = true;
        }
        item
    }
}

impl InOrder<'_, '_> {
    fn next_in_order(&mut self) -> Result<Option<OutputRows>, RunError> {
        loop {
            if let Some(batch) = self.pending.remove(&self.next_index) {
                return self.with_keys(batch).map(Some);
            }
            // After what the last message made ready has been written, as before the drivers
            // were split out: a sink's refusal of a batch comes before the deadline's.
            if Instant::now() > self.deadline {
                return Err(RunError::WallTime {
                    limit: self.wall_time,
                });
            }
            let Ok(message) = self.messages.recv() else {
                // Every scorer has finished: the stream ends where the reader did.
                return self.end();
            };
            match message {
                WorkerMessage::Scored { index, batch } => {
                    self.pending.insert(index, batch);
                }
                WorkerMessage::Failed(error) => return Err(self.with_row_key(error)),
                WorkerMessage::Finished(scorer_totals) => self.totals.merge(*scorer_totals),
            }
        }
    }

    /// A failure with the keys of the row or partition it happened in, which only this side
    /// holds: a refused value's row keys (` (customerID=7590-VHVEG)`), a partition's key for
    /// any error of its batch (` on series="NSWMetro"`). The reader sent each batch's keys
    /// before the batch, so they are waiting on the channel.
    fn with_row_key(&mut self, error: RunError) -> RunError {
        let Some(batch) = error.batch() else {
            return error;
        };
        while let Ok((index, held_back)) = self.keys.try_recv() {
            if index != batch {
                continue;
            }
            return match held_back {
                HeldBack::PartitionKey(key) => error.in_partition(&key),
                HeldBack::RowKeys(keys) => self.with_keys_of_row(error, &keys),
            };
        }
        error
    }

    /// A refused value's error with its row's key values, from its batch's `keys`.
    fn with_keys_of_row(&self, error: RunError, keys: &[Vec<String>]) -> RunError {
        let RunError::OutOfDomain {
            place,
            key,
            row,
            batch,
            value,
        } = error
        else {
            return error;
        };
        let mut found = key;
        if let Some(values) = keys.get(value.row)
            && !values.is_empty()
        {
            let parts: Vec<String> = self
                .key_names
                .iter()
                .zip(values)
                .map(|(name, value)| format!("{name}={value}"))
                .collect();
            // The consumer's own values, but shown on a terminal: no control characters.
            found = format!(" ({})", crate::names::printable(&parts.join(", "), 200));
        }
        RunError::OutOfDomain {
            place,
            key: found,
            row,
            batch,
            value,
        }
    }

    /// The next batch in input order, with the keys the reader held back for it.
    fn with_keys(&mut self, batch: Batch) -> Result<OutputRows, RunError> {
        let next = self.next_index;
        // The reader sends keys in input order before the batch itself, so the next keys
        // received belong to the next batch to write.
        let (key_index, held_back) = self
            .keys
            .recv()
            .map_err(|_| RunError::Internal(format!("no keys for batch {next}")))?;
        if key_index != next {
            return Err(RunError::Internal(format!(
                "keys for batch {key_index} arrived when batch {next} was due"
            )));
        }
        if self.rows_out + batch.num_rows as u64 > self.output_rows_limit {
            return Err(RunError::OutputRows {
                limit: self.output_rows_limit,
            });
        }
        self.rows_out += batch.num_rows as u64;
        self.next_index += 1;
        self.progress.rows_written(self.rows_out);
        Ok(match held_back {
            HeldBack::RowKeys(keys) => OutputRows { keys, batch },
            HeldBack::PartitionKey(key) => OutputRows {
                keys: Vec::new(),
                batch: super::with_partition_key(&key, batch)?,
            },
        })
    }

    /// The end of the stream: the reader's error if it failed, and a check that nothing
    /// scored was left behind.
    fn end(&mut self) -> Result<Option<OutputRows>, RunError> {
        let Some(reader) = self.reader.take() else {
            return Err(RunError::Internal(
                "the table reader was already gone".into(),
            ));
        };
        let sent = reader
            .join()
            .unwrap_or_else(|_| Err(RunError::Internal("the table reader panicked".into())))?;
        if !self.pending.is_empty() {
            return Err(RunError::Internal(format!(
                "{} scored batches were never written",
                self.pending.len()
            )));
        }
        // Every batch read was scored and written: a scorer that vanished without a word
        // would otherwise leave a sink missing its rows.
        if self.next_index != sent {
            return Err(RunError::Internal(format!(
                "{sent} batches were read but {} written",
                self.next_index
            )));
        }
        Ok(None)
    }

    /// Stops the reader and the scorers, and waits for every scorer's counts.
    fn drain(&mut self) {
        self.abort.store(true, Ordering::Relaxed);
        self.pending.clear();
        for message in self.messages.iter() {
            if let WorkerMessage::Finished(scorer_totals) = message {
                self.totals.merge(*scorer_totals);
            }
        }
        // Unblocks a reader waiting on a full work queue: every scorer has exited by now.
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}
