//! Honest output and clean failure: invalid outputs are refused, a trap leaves no output.

use cordon::RunError;

use crate::support::{
    Case, PROBE_MANIFEST, assert_churn_still_scores, probe_policy, probe_table, run_probe,
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
