//! Bad policies next to the exact error each must produce (tests/policy-snapshots/), one test
//! per file.

use std::sync::OnceLock;

use cordon::{RunRequest, Runtime, RuntimeConfig};

use crate::snapshots::snapshot_tests;
use crate::support::{churn_case, root};

/// The runtime the policy checks share: no ONNX Runtime (a check runs nothing) and a compile
/// cache in a temporary directory, as every test's.
fn check_runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<(Runtime, tempfile::TempDir)> = OnceLock::new();
    &RUNTIME
        .get_or_init(|| {
            let cache = tempfile::tempdir().unwrap();
            let runtime = Runtime::new(RuntimeConfig {
                cache_dir: Some(cache.path().to_owned()),
                ..RuntimeConfig::default()
            })
            .unwrap();
            (runtime, cache)
        })
        .0
}

/// The error `cordon check` gives for a policy file with the churn example, with paths relative
/// to the repository root; `None` if the policy is good. The check covers everything a run
/// checks before it starts: the policy, the grant, and the policy's SQL against the table.
///
/// A first line `# role: NAME` checks it as that role.
fn policy_error(path: &std::path::Path) -> Option<String> {
    let case = churn_case();
    let text = std::fs::read_to_string(path).unwrap();
    let role = text
        .lines()
        .next()
        .and_then(|line| line.strip_prefix("# role: "))
        .map(str::to_owned);
    let error = check_runtime()
        .check(&RunRequest {
            package_dir: case.path("package"),
            policy: path.to_owned(),
            base_dir: root(),
            role,
            allow_unsigned: true,
        })
        .err()?
        .to_string();
    // Not a config text: the error's absolute paths, made relative to the repository root.
    Some(error.replace(&format!("{}/", root().display()), ""))
}

snapshot_tests!(
    policy_snapshot,
    "tests/policy-snapshots",
    super::policy_error,
    [
        bad_size,
        binding_for_undeclared_input,
        column_expression_names_missing_column,
        column_expression_smuggles_a_comment,
        column_not_granted,
        column_not_requested,
        duplicate_table,
        emit_for_undeclared_output,
        filter_does_not_parse,
        filter_names_missing_column,
        inference_memory_too_small,
        isolation_unknown,
        key_column_quoted,
        key_granted_to_model,
        key_names_missing_column,
        mask_divides_a_text_column,
        mask_does_not_type_check,
        mask_on_unrequested_column,
        mask_reads_key_column,
        mask_smuggles_a_second_query,
        missing_version,
        no_inference_device,
        non_finite_unknown,
        operator_domain_malformed,
        out_of_domain_unknown,
        output_bytes_zero,
        partition_rows_zero,
        role_for_missing_binding,
        role_mask_reads_the_table,
        role_widens_mask,
        roles_without_role_chosen,
        setting_not_declared,
        too_many_instances,
        trust_key_does_not_parse,
        unknown_key,
        unsupported_version,
        wrong_type,
    ]
);

/// The CLI says a TOML error once, for a policy and for a manifest: the error's message holds
/// the parser's words (line, caret, what was expected), and its chain does not repeat them.
#[test]
fn the_cli_says_a_toml_error_once() {
    let case = churn_case();
    case.write("broken.toml", "version = 1\n[limits\n");
    let output = case.cordon(&["check", "--package", "package", "--policy", "broken.toml"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.matches("TOML parse error").count(), 1, "{stderr}");
    assert!(
        stderr.contains("broken.toml: TOML parse error at line 2"),
        "{stderr}"
    );

    case.write("package/cordon.toml", "manifest-version = 1\n[package\n");
    let output = case.cordon(&["check", "--package", "package", "--policy", "policy.toml"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.matches("TOML parse error").count(), 1, "{stderr}");
}
