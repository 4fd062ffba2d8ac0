//! What a server records: the whole serving session is one run in the audit trail (its
//! `run-start` and grants when it starts, one `serve-batch` event per request batch, its
//! `run-end` at shutdown) and one usage record per `[serve] usage-period`.
//!
//! Events are written by one thread of their own, several at a time with one flush, so that a
//! request never waits for the disk; the channel to it is bounded, so a disk slower than the
//! traffic slows the batches down instead of growing memory. If the trail or the ledger
//! cannot be written, the server fails closed: it is no longer ready and refuses requests
//! (503), since what it would score could not be accounted for. Each event is bounded: at most
//! [`MAX_CALLERS_NAMED`] caller names and an error cut to [`MAX_ERROR_BYTES`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, bounded};
use serde_json::json;

use super::batcher::Counts;
use crate::error::RunError;
use crate::record::{RunFacts, RunRecorder};
use crate::usage::{self, PackageIdentity, UsageRecord};

/// Caller names one event lists; the rest are counted.
const MAX_CALLERS_NAMED: usize = 8;
/// Bytes of an error message one event keeps.
const MAX_ERROR_BYTES: usize = 512;
/// Events that may wait for the writer.
const QUEUE_EVENTS: usize = 4096;

/// One request batch, for the trail (and its counts for the ledger).
#[derive(Debug, Clone)]
pub(crate) struct BatchEvent {
    pub role: Option<String>,
    pub callers: Vec<String>,
    pub requests: usize,
    /// Request rows, before the filter.
    pub rows: usize,
    /// What entered the sandbox, as the host cut it.
    pub counts: Counts,
    pub status: &'static str,
    pub error: Option<String>,
    pub micros: u64,
}

enum Message {
    Batch(BatchEvent),
    /// The server stops: the last usage record and `run-end`, with these totals.
    Finish(Box<RunFacts>, Sender<Result<Option<String>, String>>),
}

/// Hands events to the writer thread.
#[derive(Clone)]
pub(crate) struct AuditSender {
    sender: Sender<Message>,
}

impl AuditSender {
    /// Queues a batch's event, waiting while the writer is [`QUEUE_EVENTS`] behind.
    pub(crate) fn batch(&self, event: BatchEvent) {
        // Fails only once the writer has ended, after shutdown: nothing is left to record.
        let _ = self.sender.send(Message::Batch(event));
    }
}

/// The writer thread's handle.
pub(crate) struct AuditWriter {
    sender: Sender<Message>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl AuditWriter {
    /// Starts the writer over a recorder that has already written the run's start.
    pub(crate) fn start(
        recorder: RunRecorder,
        package: PackageIdentity,
        columns: Vec<String>,
        usage_period: Duration,
        trail_failed: Arc<AtomicBool>,
    ) -> Result<(AuditWriter, AuditSender), RunError> {
        let (sender, receiver) = bounded(QUEUE_EVENTS);
        let thread = std::thread::Builder::new()
            .name("cordon-audit".into())
            .spawn(move || {
                write_loop(
                    recorder,
                    package,
                    columns,
                    usage_period,
                    receiver,
                    &trail_failed,
                )
            })
            .map_err(|e| RunError::Serve(format!("cannot start the audit writer: {e}")))?;
        Ok((
            AuditWriter {
                sender: sender.clone(),
                thread: Some(thread),
            },
            AuditSender { sender },
        ))
    }

    /// Writes the last usage record and `run-end`, and ends the thread. Returns the trail's
    /// head.
    pub(crate) fn finish(mut self, facts: RunFacts) -> Result<Option<String>, RunError> {
        let (done, result) = bounded(1);
        self.sender
            .send(Message::Finish(Box::new(facts), done))
            .map_err(|_| RunError::Serve("the audit writer has stopped".into()))?;
        let finished = result
            .recv()
            .map_err(|_| RunError::Serve("the audit writer stopped before the run's end".into()))?;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        finished.map_err(RunError::Serve)
    }
}

/// A period's counts for the ledger: only what the host decided.
#[derive(Default)]
struct Period {
    rows: u64,
    calls: u64,
}

fn write_loop(
    mut recorder: RunRecorder,
    package: PackageIdentity,
    columns: Vec<String>,
    usage_period: Duration,
    receiver: Receiver<Message>,
    trail_failed: &AtomicBool,
) {
    let mut period = Period::default();
    let mut period_end = Instant::now() + usage_period;
    let mut failed: Option<String> = None;
    loop {
        let first =
            match receiver.recv_timeout(period_end.saturating_duration_since(Instant::now())) {
                Ok(message) => Some(message),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => return,
            };
        let mut events = Vec::new();
        let mut finish = None;
        let mut take =
            |message: Message, events: &mut Vec<(String, serde_json::Value)>| match message {
                Message::Batch(event) => {
                    period.rows += event.counts.rows;
                    period.calls += event.counts.calls;
                    events.push(("serve-batch".to_string(), batch_fields(&event, &columns)));
                    None
                }
                Message::Finish(facts, done) => Some((facts, done)),
            };
        if let Some(message) = first {
            finish = take(message, &mut events);
            // Whatever else is waiting goes in the same write.
            while finish.is_none() && events.len() < QUEUE_EVENTS {
                match receiver.try_recv() {
                    Ok(message) => finish = take(message, &mut events),
                    Err(_) => break,
                }
            }
        }
        if let Err(error) = recorder.events(events) {
            // The trail cannot be written: reported at shutdown (and on stderr now).
            eprintln!("cordon serve: audit trail: {error}; refusing requests from now on");
            trail_failed.store(true, Ordering::Release);
            failed.get_or_insert(error.to_string());
        }
        let period_over = Instant::now() >= period_end;
        if period_over || finish.is_some() {
            if let Err(error) = write_usage(&recorder, &package, &period) {
                eprintln!("cordon serve: usage ledger: {error}; refusing requests from now on");
                trail_failed.store(true, Ordering::Release);
                failed.get_or_insert(error.to_string());
            }
            period = Period::default();
            period_end = Instant::now() + usage_period;
        }
        if let Some((facts, done)) = finish {
            let ended = recorder.end(&Ok::<(), RunError>(()), &facts);
            let result = match (failed.take(), ended) {
                (Some(error), _) => Err(error),
                (None, Err(error)) => Err(error.to_string()),
                (None, Ok(_)) => Ok(recorder.head()),
            };
            let _ = done.send(result);
            return;
        }
    }
}

/// The period's usage record: the server's run id, today's UTC date, and the rows and calls
/// the host cut. A batch that failed counts as much as one that succeeded: whether a batch
/// fails is the model's choice, and the counts must not carry it.
fn write_usage(
    recorder: &RunRecorder,
    package: &PackageIdentity,
    period: &Period,
) -> Result<(), RunError> {
    let Some(audit) = recorder.audited() else {
        return Ok(());
    };
    let counts = usage::RunCounts {
        succeeded: true,
        rows_read: period.rows,
        partitions: 0,
        batches: period.calls,
    };
    let record = UsageRecord::of_run(
        package.clone(),
        recorder.run_id(),
        &crate::audit::utc_date_now(),
        counts,
    );
    usage::append(&audit.usage, &record)?;
    Ok(())
}

fn batch_fields(event: &BatchEvent, columns: &[String]) -> serde_json::Value {
    let mut callers = event.callers.clone();
    callers.sort();
    callers.dedup();
    let more = callers.len().saturating_sub(MAX_CALLERS_NAMED);
    callers.truncate(MAX_CALLERS_NAMED);
    let error = event.error.as_ref().map(|error| {
        let mut cut = MAX_ERROR_BYTES.min(error.len());
        while !error.is_char_boundary(cut) {
            cut -= 1;
        }
        error.get(..cut).unwrap_or_default().to_string()
    });
    json!({
        "role": event.role,
        "callers": callers,
        "callers_not_named": more,
        "requests": event.requests,
        "rows": event.rows,
        "rows_scored": event.counts.rows,
        "score_calls": event.counts.calls,
        "columns": columns,
        "status": event.status,
        "error": error,
        "micros": event.micros,
    })
}
