//! Partition mode: for every call, three output rows (steps 1 to 3) describing the partition it
//! received: its row count, first and last `t`, whether `t` was strictly increasing, whether
//! every row had the same `region`, and the sum of `x`. A test compares them with the table.

use cordon_guest::{Batch, BatchBuilder, Model, ModelError, ModelInfo};

/// Output rows per partition: more than one, to show a call may return any number.
const STEPS: i64 = 3;

struct Summary;

impl Model for Summary {
    fn describe() -> ModelInfo {
        ModelInfo::new("partition-summary", "0.0.0", "describes each partition")
    }

    fn score(input: &Batch) -> Result<Batch, ModelError> {
        let regions = input.texts("region")?;
        let times = input.i64s("t")?;
        let xs = input.f64s("x")?;
        let rows = input.num_rows();
        let first_region = regions.get(0);
        let one_region = regions.iter().all(|region| region == first_region);
        let t: Vec<i64> = times.iter().map(|t| t.unwrap_or(i64::MIN)).collect();
        let ordered = t.windows(2).all(|pair| pair[0] < pair[1]);
        let total: f64 = xs.iter().flatten().sum();
        let steps = STEPS as usize;
        BatchBuilder::new()
            .i64("step", (1..=STEPS).collect())
            .i64("rows", vec![rows as i64; steps])
            .i64("first_t", vec![t.first().copied().unwrap_or(0); steps])
            .i64("last_t", vec![t.last().copied().unwrap_or(0); steps])
            .bool("ordered", vec![ordered; steps])
            .bool("one_region", vec![one_region; steps])
            .f64("total", vec![total; steps])
            .build()
    }
}

cordon_guest::export_model!(Summary);
