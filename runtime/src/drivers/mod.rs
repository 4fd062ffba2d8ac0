//! The ways of calling a model. Each driver is thin: it moves rows between where they come
//! from and where they go, and leaves preparation ([`crate::prepare`]), scoring
//! ([`crate::scorer`]) and recording ([`crate::record`]) to the parts every driver shares.
//!
//! - [`batch`]: `cordon run`, a bound table in, a sink file out, in parallel instances;
//! - [`memory`]: Arrow record batches in and out, on one scorer (what the serving driver
//!   builds on);
//! - [`sql`]: `cordon sql`, the model as SQL functions over governed tables, the policy
//!   enforced on each statement's plan;
//! - [`serve`]: `cordon serve`, online scoring over the Open Inference Protocol, each
//!   request's rows through the policy's request binding, batched dynamically.

pub mod batch;
pub mod memory;
pub mod serve;
pub mod sql;

use crate::data::{Batch, Column};
use crate::error::RunError;

/// The model's output for a partition with the partition's key columns in front, on every row.
pub(crate) fn with_partition_key(key: &[Column], batch: Batch) -> Result<Batch, RunError> {
    let mut columns = Vec::with_capacity(key.len() + batch.columns.len());
    for column in key {
        let spread = column.repeat(0, batch.num_rows).ok_or_else(|| {
            RunError::Internal(format!("partition key `{}` is empty", column.name))
        })?;
        columns.push(spread);
    }
    columns.extend(batch.columns);
    Ok(Batch {
        num_rows: batch.num_rows,
        columns,
    })
}
