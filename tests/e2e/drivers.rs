//! The seam every way of calling a model shares: a second driver, in memory, over the same
//! `PreparedModel` and `Scorer` as `cordon run`. Arrow record batches in, Arrow record batches
//! out; no file source, no sink.

use std::collections::BTreeSet;

use cordon::RunError;
use cordon::drivers::memory;
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{Float64Type, SchemaRef};

use crate::support::{
    CHURN_GRANTED_COLUMNS, churn_case, churn_case_with, echo_case, read_csv, root, runtime,
};

/// The Telco table as the test helpers type it, cut into record batches of `rows`, with its
/// schema.
fn telco_batches(rows: usize) -> (SchemaRef, Vec<RecordBatch>) {
    let table = cordon_test_guests::telco_table::read_typed_csv(
        &root().join("examples/churn/data/telco_churn.csv"),
    )
    .unwrap();
    let batches = (0..table.num_rows())
        .step_by(rows)
        .map(|start| table.slice(start, rows.min(table.num_rows() - start)))
        .collect();
    (table.schema(), batches)
}

/// Every Telco row, handed over in eight record batches, scored from memory gets the
/// probability `cordon run` wrote for it, with its key, in input order.
#[test]
fn in_memory_batches_score_like_the_batch_run() {
    let case = churn_case();
    case.run().unwrap();
    let written = read_csv(&case.path("out/churn_scores.csv"));

    let prepared = runtime().prepare_model(&case.request(None)).unwrap();
    let (schema, input) = telco_batches(1000);
    assert_eq!(input.len(), 8);
    let scored = memory::score(runtime(), &prepared, schema, input).unwrap();

    let mut rows = Vec::new();
    for batch in [&scored] {
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

    // The same recorder as the batch run: the call is a second run in the policy's audit
    // trail (one chain) and usage ledger, with what it read.
    let events = cordon::audit::read_events(&case.path("out/audit.jsonl")).unwrap();
    let ends: Vec<_> = events.iter().filter(|e| e["event"] == "run-end").collect();
    assert_eq!(ends.len(), 2, "one run-end per run");
    assert_eq!(ends[1]["status"], "ok");
    assert_eq!(ends[1]["rows_in"], 7043);
    assert_eq!(ends[1]["rows_out"], 7043);
    let read: Vec<_> = events
        .iter()
        .filter(|e| e["event"] == "data-read")
        .collect();
    assert_eq!(read.len(), 2);
    assert_eq!(read[1]["rows"], 7043);
    let ledger = std::fs::read_to_string(case.path("out/usage.jsonl")).unwrap();
    let records: Vec<serde_json::Value> = ledger
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(records.len(), 2);
    assert_eq!(records[1]["rows_read"], 7043);
    assert_eq!(records[1]["status"], "ok");
}

/// The in-memory binding goes through the same grant: the echo guest, handed every column of
/// the Telco table in memory, sees only the granted ones, and never the key.
#[test]
fn in_memory_batches_pass_through_the_grant() {
    let case = echo_case();
    let prepared = runtime().prepare_model(&case.request(None)).unwrap();
    let (schema, input) = telco_batches(2500);
    let scored = memory::score(runtime(), &prepared, schema, input).unwrap();
    let granted: BTreeSet<&str> = CHURN_GRANTED_COLUMNS.into();
    let mut rows = 0;
    for batch in [&scored] {
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

/// The in-memory driver keeps the run's output limit: a policy that lets a run write 100
/// rows lets a call return no more, and the refusal is a denial in the trail.
#[test]
fn in_memory_batches_keep_the_output_rows_limit() {
    let case = churn_case_with(&[("output-rows", "100")]);
    let prepared = runtime().prepare_model(&case.request(None)).unwrap();
    let (schema, input) = telco_batches(1000);
    let error = memory::score(runtime(), &prepared, schema, input).unwrap_err();
    assert!(
        matches!(error, RunError::OutputRows { limit: 100 }),
        "{error}"
    );
    let events = cordon::audit::read_events(&case.path("out/audit.jsonl")).unwrap();
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "denial" && e["what"] == "limit"),
        "{events:?}"
    );
    let end = events.iter().rfind(|e| e["event"] == "run-end").unwrap();
    assert_eq!(end["status"], "error");
}
