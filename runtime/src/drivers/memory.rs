//! The in-memory driver: Arrow record batches in, Arrow record batches out, on one scorer.
//! It is what a driver that already holds its rows builds on (a SQL engine calling the model as
//! a function, a server scoring a request): no file is read or written, yet every row passes
//! through the same grant (filter, masks, column expressions, keys held back), the same scorer
//! (fuel, memory, wall time, tensor budget, output validation) and the same output rules
//! (`non-finite`, `limits.output-bytes`, `limits.output-rows`) as a batch run, and the call is
//! recorded by the same recorder.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;

use crate::data::{HeldBack, KeyedBatch};
use crate::error::RunError;
use crate::prepare::PreparedModel;
use crate::record::{RunFacts, RunRecorder};
use crate::runtime::Runtime;
use crate::scorer::Scorer;
use crate::sink::{DataSink, MemorySink, OutputRows};
use crate::source::{SourceBinding, TableSource};

/// Scores the rows of `batches` (all of `schema`) with one scorer of `prepared`, within the
/// policy's wall time from now, and returns the output in input order as one record batch: the
/// policy's key columns first (in partition mode, the partition columns), then the declared
/// output columns. The batches are bound together as the policy's table, so `schema` must have
/// the columns the policy's `[bind]` names (by their source names), and a partition may span
/// them. The call is one run in the policy's audit trail and usage ledger, as a batch run is.
pub fn score(
    runtime: &Runtime,
    prepared: &PreparedModel,
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
) -> Result<RecordBatch, RunError> {
    let policy = prepared.policy();
    let mut recorder = RunRecorder::open(policy, Instant::now())?;
    let mut facts = RunFacts::default();
    let result = record_and_score(
        runtime,
        prepared,
        schema,
        batches,
        &mut recorder,
        &mut facts,
    );
    // Whatever happened above, the run ends in the trail and the ledger.
    recorder.finish(&result, &facts)?;
    result
}

/// The run between its start and its end in the trail: what was granted, read, inferred and
/// returned.
fn record_and_score(
    runtime: &Runtime,
    prepared: &PreparedModel,
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
    recorder: &mut RunRecorder,
    facts: &mut RunFacts,
) -> Result<RecordBatch, RunError> {
    let policy = prepared.policy();
    let grant = prepared.grant();
    recorder.run_start(prepared.facts(), policy)?;
    recorder.grant(prepared.facts(), grant, policy)?;
    let wall_time = policy.limits.wall_time.0;
    let deadline = Instant::now() + wall_time;
    let mut source = TableSource::open_binding(
        &SourceBinding::Memory { schema, batches },
        &grant.input,
        policy.limits.batch_rows as usize,
        policy.limits.partition_rows,
        Arc::clone(&runtime.tokio),
    )?;
    let mut scorer = prepared
        .scorer(deadline)
        .map_err(|error| RunError::scoring(error, None))?;
    let sink = MemorySink::new(&grant.output, &grant.input.key, &policy.limits);
    let mut written_rows = 0u64;
    let limit = policy.limits.output_rows;
    // The scored stream borrows the source, scorer and counts until the sink has it all.
    let written = {
        let scored = std::iter::from_fn(|| {
            let next =
                score_next(&mut source, &mut scorer, facts, (deadline, wall_time)).transpose()?;
            Some(next.and_then(|rows| {
                written_rows += rows.batch.num_rows as u64;
                if written_rows > limit {
                    return Err(RunError::OutputRows { limit });
                }
                Ok(rows)
            }))
        });
        sink.write_all(scored)
    };
    facts.totals = scorer.totals();
    facts.partitions = source.partitions_read().len() as u64;
    recorder.data_read(grant, facts.rows_in, source.partitions_read())?;
    recorder.inference(&facts.totals)?;
    let written = written?;
    facts.rows_out = written.rows;
    recorder.output_write(
        grant.output.name.as_str(),
        Path::new("<memory>"),
        written.rows,
    )?;
    Ok(written.committed)
}

/// The next batch the grant's query lets through, scored, with its keys.
fn score_next(
    source: &mut TableSource,
    scorer: &mut Scorer,
    facts: &mut RunFacts,
    (deadline, wall_time): (Instant, Duration),
) -> Result<Option<OutputRows>, RunError> {
    // The guest's calls stop at the deadline; reading the table between them does too.
    if Instant::now() > deadline {
        return Err(RunError::WallTime { limit: wall_time });
    }
    let Some(KeyedBatch {
        index,
        batch,
        held_back,
    }) = source.next_batch()?
    else {
        return Ok(None);
    };
    let at = Some((index, facts.rows_in));
    facts.rows_in += batch.num_rows as u64;
    facts.batches += 1;
    let output = scorer
        .score(batch)
        .map_err(|error| RunError::scoring(error, at))?;
    Ok(Some(match held_back {
        HeldBack::RowKeys(keys) => OutputRows {
            keys,
            batch: output,
        },
        HeldBack::PartitionKey(key) => OutputRows {
            keys: Vec::new(),
            batch: super::with_partition_key(&key, output)?,
        },
    }))
}
