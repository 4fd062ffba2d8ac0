//! The data plane: filters, masks, Parquet sources, and bad input, before the sandbox.

use std::collections::HashMap;

use cordon::RunError;
use cordon_test_guests::{with_replaced, with_setting};

use crate::support::{
    Case, PROBE_MANIFEST, assert_churn_still_scores, churn_case, probe_policy, read_csv, root,
};

fn reference() -> HashMap<String, f64> {
    read_csv(&root().join("examples/churn/training/reference.csv"))
        .into_iter()
        .map(|row| (row[0].clone(), row.last().unwrap().parse().unwrap()))
        .collect()
}

fn add_to_binding(case: &Case, lines: &str) {
    let policy = std::fs::read_to_string(case.path("policy.toml")).unwrap();
    let policy = with_replaced(
        &policy,
        "[bind.customers]\n",
        &format!("[bind.customers]\n{lines}\n"),
    )
    .unwrap();
    case.write("policy.toml", &policy);
}

/// Only rows that pass the filter are scored: exactly the 3,875 month-to-month customers, in
/// input order, with the same probabilities as without the filter.
#[test]
fn a_filter_scores_exactly_the_matching_rows() {
    let case = churn_case();
    add_to_binding(&case, "filter = \"Contract = 'Month-to-month'\"");
    let summary = case.run().unwrap();
    assert_eq!(summary.rows_in, 3875);
    assert_eq!(summary.rows_out, 3875);

    let table = read_csv(&root().join("examples/churn/data/telco_churn.csv"));
    let expected_ids: Vec<&str> = table
        .iter()
        .filter(|row| row[15] == "Month-to-month")
        .map(|row| row[0].as_str())
        .collect();
    let scores = read_csv(&case.path("out/churn_scores.csv"));
    let ids: Vec<&str> = scores.iter().map(|row| row[0].as_str()).collect();
    assert_eq!(ids, expected_ids);
    let reference = reference();
    for row in &scores {
        let p: f64 = row[1].parse().unwrap();
        assert!((p - reference[&row[0]]).abs() <= 1e-6, "{}", row[0]);
    }
}

/// A filter that keeps no row is a run that scores nothing: an output with only its header,
/// no batch, and no first-batch time in the summary.
#[test]
fn a_filter_that_keeps_no_row_scores_nothing() {
    let case = churn_case();
    add_to_binding(&case, "filter = \"Contract = 'Ten year'\"");
    let summary = case.run().unwrap();
    assert_eq!(
        (summary.rows_in, summary.rows_out, summary.batches),
        (0, 0, 0)
    );
    assert_eq!(summary.first_batch_ms, None);
    let output = std::fs::read_to_string(case.path("out/churn_scores.csv")).unwrap();
    assert_eq!(output.trim_end(), "customerID,churn_probability");
}

/// A mask changes what the model sees: the echo guest reports the masked value only.
#[test]
fn a_mask_changes_what_the_guest_sees() {
    let case = crate::support::echo_case();
    add_to_binding(
        &case,
        "mask = { contract = \"left(Contract, 3)\", monthly_charges = \"round(MonthlyCharges / 10) * 10\" }\nschema = { MonthlyCharges = \"float64\" }",
    );
    case.run().unwrap();
    let seen = read_csv(&case.path("out/churn_scores.csv"));
    assert_eq!(seen.len(), 7043);
    // 7590-VHVEG: Month-to-month at 29.85 a month.
    assert!(seen[0][1].contains("contract=Mon;"), "{}", seen[0][1]);
    assert!(seen[0][1].contains("monthly_charges=30;"), "{}", seen[0][1]);
    for row in &seen {
        assert!(
            !row[1].contains("Month-to-month") && !row[1].contains("One year"),
            "{}",
            row[1]
        );
    }
}

/// A role's mask applies on top of the binding's: `contract = "contract"` in a role cannot undo
/// `left(Contract, 3)`, and a role's own mask works on the masked value (`Mon` -> `Mo`).
#[test]
fn a_role_mask_applies_on_top_of_the_binding_mask() {
    let case = crate::support::echo_case();
    add_to_binding(&case, "mask = { contract = \"left(Contract, 3)\" }");
    let policy = std::fs::read_to_string(case.path("policy.toml")).unwrap()
        + "\n[role.undo.bind.customers]\nmask = { contract = \"contract\" }\n\n[role.narrower.bind.customers]\nmask = { contract = \"left(contract, 2)\", tenure = \"'7'\" }\n";
    case.write("policy.toml", &policy);

    case.run_as(Some("undo")).unwrap();
    let seen = read_csv(&case.path("out/churn_scores.csv"));
    assert!(seen[0][1].contains("contract=Mon;"), "{}", seen[0][1]);
    assert!(seen.iter().all(|row| !row[1].contains("Month-to-month")));

    case.run_as(Some("narrower")).unwrap();
    let seen = read_csv(&case.path("out/churn_scores.csv"));
    assert!(seen[0][1].contains("contract=Mo;"), "{}", seen[0][1]);
    assert!(seen.iter().all(|row| row[1].contains("tenure=7;")));
}

/// A value the policy nulls never reaches the model. DataFusion's NULLIF only marks a value
/// null and keeps it in the slot; the host hands the model the contract's placeholder (0)
/// there, which the echo guest would otherwise show as `<null holding ...>`.
#[test]
fn a_value_nulled_by_a_mask_stays_outside_the_sandbox() {
    let case = crate::support::echo_case();
    add_to_binding(
        &case,
        "mask = { monthly_charges = \"NULLIF(MonthlyCharges, 29.85)\", tenure = \"NULLIF(tenure, 1)\" }\nschema = { MonthlyCharges = \"float64\" }",
    );
    case.run().unwrap();
    let seen = read_csv(&case.path("out/churn_scores.csv"));
    assert_eq!(seen.len(), 7043);
    // 7590-VHVEG: one month of tenure at 29.85 a month, both nulled by the masks.
    assert!(seen[0][1].contains("tenure=<null>;"), "{}", seen[0][1]);
    assert!(
        seen[0][1].contains("monthly_charges=<null>;"),
        "{}",
        seen[0][1]
    );
    let nulled = seen
        .iter()
        .filter(|row| row[1].contains("tenure=<null>"))
        .count();
    assert_eq!(
        nulled, 613,
        "NULLIF(tenure, 1) nulls the 613 one-month customers"
    );
    for row in &seen {
        assert!(!row[1].contains("<null holding"), "{}", row[1]);
    }
}

/// A Parquet copy of the table scores exactly like the CSV.
#[test]
fn a_parquet_source_scores_like_the_csv() {
    let case = churn_case();
    let parquet = case.path("telco.parquet");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let context = datafusion::prelude::SessionContext::new();
        let csv = root().join("examples/churn/data/telco_churn.csv");
        context
            .register_csv(
                "telco",
                csv.to_str().unwrap(),
                datafusion::prelude::CsvReadOptions::new(),
            )
            .await
            .unwrap();
        context
            .sql(&format!(
                "COPY (SELECT * FROM telco) TO '{}' STORED AS PARQUET",
                parquet.display()
            ))
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
    });
    case.set_source("telco.parquet");
    let summary = case.run().unwrap();
    assert_eq!(summary.rows_out, 7043);
    let reference = reference();
    let scores = read_csv(&case.path("out/churn_scores.csv"));
    let table = read_csv(&root().join("examples/churn/data/telco_churn.csv"));
    for (row, input) in scores.iter().zip(&table) {
        assert_eq!(row[0], input[0]);
        let p: f64 = row[1].parse().unwrap();
        assert!((p - reference[&row[0]]).abs() <= 1e-6, "{}", row[0]);
    }
}

/// A filter naming a column the table lacks fails before any row is read, as a policy error
/// at the filter's line, naming the table.
#[test]
fn a_filter_on_a_missing_column_fails_before_reading() {
    let case = churn_case();
    add_to_binding(&case, "filter = \"Region = 'EU'\"");
    let error = case.run().unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, RunError::Policy(_)), "{message}");
    let policy = std::fs::read_to_string(case.path("policy.toml")).unwrap();
    let line = 1 + policy
        .lines()
        .position(|l| l.starts_with("filter = "))
        .unwrap();
    assert!(
        message.contains(&format!(
            "policy.toml:{line}: [bind.customers] filter `Region = 'EU'`"
        )),
        "{message}"
    );
    assert!(message.contains("telco_churn.csv"), "{message}");
    assert!(message.contains("Region"), "{message}");
    assert!(!case.path("out/churn_scores.csv").exists());
    assert_churn_still_scores();
}

/// A value that is not of the declared type is an error that shows the value.
#[test]
fn a_malformed_value_is_a_clear_error() {
    let case = Case::new();
    case.package(cordon_test_guests::POLICY_ENV_PROBE, PROBE_MANIFEST, &[]);
    case.write("input.csv", "id,x\nr0,1.5\nr1,abc\n");
    case.write("policy.toml", &probe_policy(""));
    let message = case.run().unwrap_err().to_string();
    assert!(
        message.contains("input.csv:3: column `x`: `abc` is not float64"),
        "{message}"
    );
    assert!(!case.path("out/results.csv").exists());
}

/// A source that is not CSV or Parquet is refused by name.
#[test]
fn an_unknown_source_format_is_refused() {
    let case = Case::new();
    case.package(cordon_test_guests::POLICY_ENV_PROBE, PROBE_MANIFEST, &[]);
    case.write("input.xlsx", "id,x\nr0,1\n");
    case.write(
        "policy.toml",
        &with_setting(&probe_policy(""), "source", "\"input.xlsx\"").unwrap(),
    );
    let message = case.run().unwrap_err().to_string();
    assert!(
        message.contains("input.xlsx: only .csv and .parquet"),
        "{message}"
    );
}

/// A role narrows the binding; a policy with roles refuses to run without one.
#[test]
fn roles_narrow_what_the_model_sees() {
    let case = churn_case();
    let policy = std::fs::read_to_string(case.path("policy.toml")).unwrap()
        + "\n[role.retention.bind.customers]\nfilter = \"Contract = 'Month-to-month'\"\n\n[role.everyone]\n";
    case.write("policy.toml", &policy);

    let error = case.run().unwrap_err().to_string();
    assert!(
        error.contains("defines roles (everyone, retention); choose one with --role"),
        "{error}"
    );
    assert!(!case.path("out/churn_scores.csv").exists());

    assert_eq!(case.run_as(Some("retention")).unwrap().rows_out, 3875);
    assert_eq!(case.run_as(Some("everyone")).unwrap().rows_out, 7043);
    let error = case.run_as(Some("admin")).unwrap_err().to_string();
    assert!(
        error.contains("--role admin: the policy defines no such role"),
        "{error}"
    );
}

/// A `.parquet` sink holds the key as text and the output with its declared type, in order.
#[test]
fn a_parquet_sink_holds_typed_scores_in_order() {
    use datafusion::arrow::array::{AsArray, Float64Array};
    use datafusion::arrow::datatypes::DataType;

    let case = churn_case();
    let policy = std::fs::read_to_string(case.path("policy.toml")).unwrap();
    let policy = with_setting(&policy, "sink", "\"out/churn_scores.parquet\"").unwrap();
    case.write("policy.toml", &policy);
    case.run().unwrap();

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let batches = runtime.block_on(async {
        let context = datafusion::prelude::SessionContext::new();
        context
            .read_parquet(
                case.path("out/churn_scores.parquet").to_str().unwrap(),
                datafusion::prelude::ParquetReadOptions::default(),
            )
            .await
            .unwrap()
            .collect()
            .await
            .unwrap()
    });
    let schema = batches[0].schema();
    assert_eq!(schema.field(0).name(), "customerID");
    assert_eq!(schema.field(1).name(), "churn_probability");
    assert_eq!(schema.field(1).data_type(), &DataType::Float64);
    let reference = read_csv(&root().join("examples/churn/training/reference.csv"));
    let mut row = 0;
    for batch in &batches {
        let ids = datafusion::arrow::compute::cast(batch.column(0), &DataType::Utf8).unwrap();
        let ids = ids.as_string::<i32>();
        let p = batch
            .column(1)
            .as_any()
            .downcast_ref::<Float64Array>()
            .unwrap();
        for i in 0..batch.num_rows() {
            assert_eq!(ids.value(i), reference[row][0]);
            let expected: f64 = reference[row].last().unwrap().parse().unwrap();
            assert!((p.value(i) - expected).abs() <= 1e-6);
            row += 1;
        }
    }
    assert_eq!(row, 7043);
}

/// `cordon check` accepts the churn policy and says what it grants without running anything:
/// no output, no audit trail, no usage record; a broken policy gets the same error as a run.
#[test]
fn check_validates_a_policy_without_running_it() {
    let case = churn_case();
    let output = case.cordon(&["check", "--package", "package", "--policy", "policy.toml"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("contract             text      <- Contract"),
        "{stdout}"
    );
    assert!(stdout.contains("held back   customerID"), "{stdout}");
    assert!(!case.path("out").exists(), "check wrote into out/");

    add_to_binding(
        &case,
        "mask = { contract = \"left(Contract, 3)) OR (1 = 1\" }",
    );
    let output = case.cordon(&["check", "--package", "package", "--policy", "policy.toml"]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("[bind.customers] mask.contract `left(Contract, 3)) OR (1 = 1` must be one SQL expression"),
        "{stderr}"
    );
}

/// A Parquet source with one bit flipped in its footer can make the parquet crate panic on an
/// out-of-range slice. The run fails with a data error naming the table, never with a panic's
/// text or backtrace on stderr, and the host goes on scoring.
#[test]
fn a_damaged_parquet_source_is_a_named_error() {
    // A Parquet table of the churn example's scores, written by a run.
    let case = churn_case();
    let policy = std::fs::read_to_string(case.path("policy.toml")).unwrap();
    let policy = with_setting(&policy, "sink", "\"out/scores.parquet\"").unwrap();
    case.write("policy.toml", &policy);
    case.run().unwrap();
    let good = std::fs::read(case.path("out/scores.parquet")).unwrap();

    // A probe reading it, in this process and through the binary.
    let probe = Case::new();
    probe.package(
        cordon_test_guests::POLICY_ECHO_COLUMNS,
        &with_replaced(PROBE_MANIFEST, "\"outcome\"", "\"seen\"").unwrap(),
        &[],
    );
    probe.write(
        "policy.toml",
        "version = 1\n[bind.rows]\nsource = \"input.parquet\"\nkey = [\"customerID\"]\ncolumns = { x = \"churn_probability\" }\n[emit.results]\nsink = \"out/results.csv\"\n",
    );
    std::fs::write(probe.path("input.parquet"), &good).unwrap();
    probe.run().unwrap();

    // Bit 3 of each byte of the footer's column-chunk offsets, where a flip makes a reader
    // slice past the end of a page.
    let mut damaged_seen = None;
    for from_end in (400..=700).rev() {
        let mut bytes = good.clone();
        let at = bytes.len() - from_end;
        bytes[at] ^= 1 << 3;
        std::fs::write(probe.path("input.parquet"), &bytes).unwrap();
        match probe.run() {
            Err(RunError::Data(cordon::data::DataError::Damaged { path, message })) => {
                assert!(path.ends_with("input.parquet"), "{}", path.display());
                damaged_seen.get_or_insert((bytes, message));
            }
            Err(RunError::Internal(message)) => {
                panic!("flip at -{from_end}: internal error {message}")
            }
            _ => {}
        }
    }
    let (bytes, message) = damaged_seen.expect("no flip made the Parquet reader fail outright");
    assert!(
        !message.contains("/root/") && !message.contains('\n'),
        "{message}"
    );

    std::fs::write(probe.path("input.parquet"), &bytes).unwrap();
    let output = probe.run_cli(&[]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("input.parquet: the table is damaged or not what its extension says"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("panicked") && !stderr.contains("backtrace"),
        "{stderr}"
    );
    assert_churn_still_scores();
}
