//! The seam every way of calling a model shares: a second driver, in memory, over the same
//! `PreparedModel` and `Scorer` as `cordon run`. Arrow record batches in, Arrow record batches
//! out; no file source, no sink.

use std::collections::BTreeSet;

use cordon::drivers::memory;
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::Float64Type;

use crate::support::{churn_case, echo_case, read_csv, root, runtime};

/// The Telco table as the test helpers type it, cut into record batches of `rows`.
fn telco_batches(rows: usize) -> Vec<RecordBatch> {
    let table = cordon_test_guests::telco_table::read_typed_csv(
        &root().join("examples/churn/data/telco_churn.csv"),
    )
    .unwrap();
    (0..table.num_rows())
        .step_by(rows)
        .map(|start| table.slice(start, rows.min(table.num_rows() - start)))
        .collect()
}

/// Every Telco row scored from memory gets the probability `cordon run` wrote for it, with its
/// key, in input order.
#[test]
fn in_memory_batches_score_like_the_batch_run() {
    let case = churn_case();
    case.run().unwrap();
    let written = read_csv(&case.path("out/churn_scores.csv"));

    let prepared = runtime().prepare_model(&case.request(None)).unwrap();
    let input = telco_batches(1000);
    let scored = memory::score(runtime(), &prepared, input.clone()).unwrap();
    assert_eq!(
        scored.len(),
        input.len(),
        "one output batch per input batch"
    );

    let mut rows = Vec::new();
    for batch in &scored {
        let names: Vec<&str> = batch
            .schema_ref()
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        assert_eq!(names, ["customerID", "churn_probability"]);
        let ids = batch.column(0).as_string::<i32>();
        let probabilities = batch.column(1).as_primitive::<Float64Type>();
        assert_eq!(probabilities.null_count(), 0);
        for row in 0..batch.num_rows() {
            rows.push((ids.value(row).to_owned(), probabilities.value(row)));
        }
    }
    assert_eq!(rows.len(), 7043);
    assert_eq!(rows.len(), written.len());
    for (row, ((id, p), file)) in rows.iter().zip(&written).enumerate() {
        assert_eq!(id, &file[0], "row {row}: key");
        let q: f64 = file[1].parse().unwrap();
        assert_eq!(*p, q, "row {row} ({id}): in memory {p}, cordon run {q}");
    }
}

/// The in-memory binding goes through the same grant: the echo guest, handed every column of
/// the Telco table in memory, sees only the granted ones, and never the key.
#[test]
fn in_memory_batches_pass_through_the_grant() {
    let case = echo_case();
    let prepared = runtime().prepare_model(&case.request(None)).unwrap();
    let scored = memory::score(runtime(), &prepared, telco_batches(2500)).unwrap();
    let granted: BTreeSet<&str> = [
        "tenure",
        "monthly_charges",
        "total_charges",
        "senior_citizen",
        "contract",
        "payment_method",
        "internet_service",
        "paperless_billing",
        "tech_support",
        "online_security",
    ]
    .into();
    let mut rows = 0;
    for batch in &scored {
        let ids = batch.column(0).as_string::<i32>();
        let seen = batch.column(1).as_string::<i32>();
        for row in 0..batch.num_rows() {
            let seen = seen.value(row);
            assert!(!seen.contains(ids.value(row)), "the guest saw the key");
            let columns: BTreeSet<&str> = seen
                .split(';')
                .map(|pair| pair.split_once('=').unwrap().0)
                .collect();
            assert_eq!(columns, granted, "row {rows}: {seen}");
            // gender and the Churn label are in every batch handed over, and never arrive.
            assert!(!seen.contains("Female") && !seen.contains("Male"), "{seen}");
            assert!(!seen.contains("Churn"), "{seen}");
            rows += 1;
        }
    }
    assert_eq!(rows, 7043);
}
