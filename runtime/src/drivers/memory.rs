//! The in-memory driver: Arrow record batches in, Arrow record batches out, on one scorer.
//! It is what a driver that already holds its rows builds on (a SQL engine calling the model as
//! a function, a server scoring a request): no file is read or written, yet every row passes
//! through the same grant (filter, masks, column expressions, keys held back), the same scorer
//! (fuel, memory, wall time, tensor budget, output validation) and the same output rules
//! (`non-finite`, `limits.output-bytes`) as a batch run.

use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::array::RecordBatch;

use crate::data::{HeldBack, KeyedBatch};
use crate::error::RunError;
use crate::prepare::PreparedModel;
use crate::runtime::Runtime;
use crate::sink::{DataSink, MemorySink, OutputRows};
use crate::source::{SourceBinding, TableSource};

/// Scores each record batch with one scorer of `prepared`, within the policy's wall time
/// from now: one output batch per input batch, the policy's key columns first (in partition
/// mode, the partition columns), then the declared output columns. Each input batch is bound as the policy's table, so its schema
/// must have the columns the policy's `[bind]` names (by their source names).
pub fn score(
    runtime: &Runtime,
    prepared: &PreparedModel,
    batches: Vec<RecordBatch>,
) -> Result<Vec<RecordBatch>, RunError> {
    let policy = prepared.policy();
    let grant = prepared.grant();
    let deadline = Instant::now() + policy.limits.wall_time.0;
    let mut scorer = prepared
        .scorer(deadline)
        .map_err(|error| RunError::scoring(error, None))?;
    let mut outputs = Vec::with_capacity(batches.len());
    let mut first_row = 0u64;
    for (index, batch) in batches.into_iter().enumerate() {
        let binding = SourceBinding::Memory {
            schema: batch.schema(),
            batches: vec![batch],
        };
        let mut source = TableSource::open_binding(
            &binding,
            &grant.input,
            policy.limits.batch_rows as usize,
            policy.limits.partition_rows,
            Arc::clone(&runtime.tokio),
        )?;
        let sink = MemorySink::new(&grant.output, &grant.input.key, &policy.limits);
        let mut scored = Vec::new();
        while let Some(KeyedBatch {
            batch, held_back, ..
        }) = source.next_batch()?
        {
            let rows = batch.num_rows as u64;
            let at = Some((index as u64, first_row));
            let output = scorer
                .score(batch)
                .map_err(|error| RunError::scoring(error, at))?;
            scored.push(match held_back {
                HeldBack::RowKeys(keys) => Ok(OutputRows {
                    keys,
                    batch: output,
                }),
                HeldBack::PartitionKey(key) => {
                    super::with_partition_key(&key, output).map(|batch| OutputRows {
                        keys: Vec::new(),
                        batch,
                    })
                }
            });
            first_row += rows;
        }
        outputs.push(sink.write_all(scored)?.committed);
    }
    Ok(outputs)
}
