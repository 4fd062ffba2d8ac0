//! No ambient authority and least data.

use std::collections::BTreeSet;

use cordon::RunError;
use cordon_test_guests::with_replaced;

use crate::support::{
    CHURN_GRANTED_COLUMNS, Case, PROBE_MANIFEST, assert_churn_still_scores, probe_policy,
    probe_table, read_csv, root, run_probe,
};

fn assert_denied(outcomes: &[String]) {
    assert!(!outcomes.is_empty());
    for outcome in outcomes {
        assert!(
            outcome.starts_with("denied:"),
            "the sandbox let it through: {outcome}"
        );
    }
}

#[test]
fn a_guest_cannot_read_write_or_list_files() {
    assert_denied(&run_probe(cordon_test_guests::POLICY_FS_PROBE, "").unwrap());
    assert_churn_still_scores();
}

/// A guest that imports the network is refused before it is compiled, with the import named;
/// the locked-down socket context in the sandbox is the second wall behind this one.
fn assert_refused_for_importing(wasm: &str, interface: &str) {
    let error = run_probe(wasm, "").unwrap_err();
    let text = error.to_string();
    assert!(
        matches!(error, RunError::Component { .. }),
        "not refused as a component: {text}"
    );
    assert!(
        text.contains(&format!("imports `{interface}")) && text.contains("network access"),
        "{text}"
    );
}

#[test]
fn a_guest_that_opens_sockets_is_refused_before_it_runs() {
    assert_refused_for_importing(cordon_test_guests::POLICY_NET_PROBE, "wasi:sockets/");
    assert_churn_still_scores();
}

#[test]
fn a_guest_that_resolves_names_is_refused_before_it_runs() {
    assert_refused_for_importing(cordon_test_guests::POLICY_DNS_PROBE, "wasi:sockets/");
    assert_churn_still_scores();
}

#[test]
fn a_guest_cannot_read_environment_or_arguments() {
    assert_denied(&run_probe(cordon_test_guests::POLICY_ENV_PROBE, "").unwrap());
    assert_churn_still_scores();
}

#[test]
fn a_guest_cannot_load_graph_bytes_or_undeclared_graphs() {
    let outcomes = run_probe(cordon_test_guests::NN_GUEST_GRAPH, "").unwrap();
    for outcome in &outcomes {
        let (own, unknown) = outcome.split_once(" | ").unwrap();
        assert!(own.starts_with("denied: wasi-nn security"), "{own}");
        assert!(own.contains("allow-guest-graphs"), "{own}");
        assert!(
            unknown.starts_with("denied: wasi-nn not-found"),
            "{unknown}"
        );
    }
    assert_churn_still_scores();
}

/// The echo guest reports every column name and value that reached guest memory: exactly the
/// ten granted columns, never the key (customerID) or any other column of the table.
#[test]
fn only_granted_columns_reach_guest_memory() {
    let case = crate::support::echo_case();
    case.run().unwrap();

    let granted: BTreeSet<&str> = CHURN_GRANTED_COLUMNS.into();
    let table = read_csv(&root().join("examples/churn/data/telco_churn.csv"));
    let output = read_csv(&case.path("out/churn_scores.csv"));
    assert_eq!(output.len(), table.len());
    for (row, (out, input)) in output.iter().zip(&table).enumerate() {
        // The key comes back on the right row, from the host, not from the guest.
        assert_eq!(out[0], input[0], "row {row}");
        let seen = &out[1];
        assert!(
            !seen.contains(&input[0]),
            "row {row}: the guest saw the customer id"
        );
        let names: BTreeSet<&str> = seen
            .split(';')
            .map(|pair| pair.split_once('=').unwrap().0)
            .collect();
        assert_eq!(names, granted, "row {row}");
        // gender (column 1) and the Churn label (last column) never arrive.
        assert!(
            !seen.contains("Female") && !seen.contains("Male"),
            "row {row}: {seen}"
        );
        assert!(!seen.contains("Churn"), "row {row}: {seen}");
    }
    // The blank TotalCharges arrive as nulls, not as strings.
    assert!(output.iter().any(|r| r[1].contains("total_charges=<null>")));
}

/// Every element type wasi:nn names goes through ONNX Runtime and back unchanged; malformed
/// tensors come back to the guest as wasi:nn errors, and the host stays up.
#[test]
fn every_tensor_element_type_round_trips_and_bad_tensors_are_errors() {
    let case = Case::new();
    let manifest = format!(
        "{PROBE_MANIFEST}[[graph]]\nname = \"identity\"\nfile = \"graphs/identity.onnx\"\nformat = \"onnx\"\n"
    );
    let graph = root().join("tests/fixtures/identity_all_types.onnx");
    case.package(
        cordon_test_guests::NN_ALL_TYPES,
        &manifest,
        &[("identity.onnx", &graph)],
    );
    case.write("input.csv", &probe_table(1));
    let policy = with_replaced(
        &probe_policy(""),
        "[bind.rows]",
        "[inference]\ndevices = [\"cpu\"]\n[bind.rows]",
    )
    .unwrap();
    case.write("policy.toml", &policy);
    let summary = case.run().unwrap();
    let outcome = &read_csv(&case.path("out/results.csv"))[0][1];
    let parts: Vec<&str> = outcome.split(" | ").collect();
    assert_eq!(
        parts[..7],
        [
            "f16 same",
            "f32 same",
            "f64 same",
            "bf16 same",
            "u8 same",
            "i32 same",
            "i64 same"
        ],
        "{outcome}"
    );
    assert!(
        parts[7].starts_with("short data -> invalid-argument")
            && parts[7].contains("20 bytes")
            && parts[7].contains("need 24"),
        "{outcome}"
    );
    assert!(
        parts[8].starts_with("unknown input -> invalid-argument")
            && parts[8].contains("no input `no_such_input`"),
        "{outcome}"
    );
    // The causes also reach the run's log.
    assert_eq!(summary.incidents.len(), 2, "{:?}", summary.incidents);
    assert_churn_still_scores();
}
