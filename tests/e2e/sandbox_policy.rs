//! No ambient authority and least data.

use std::collections::BTreeSet;

use crate::support::{Case, assert_churn_still_scores, read_csv, root, run_probe};

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

#[test]
fn a_guest_cannot_open_sockets() {
    assert_denied(&run_probe(cordon_test_guests::POLICY_NET_PROBE, "").unwrap());
    assert_churn_still_scores();
}

#[test]
fn a_guest_cannot_resolve_names() {
    assert_denied(&run_probe(cordon_test_guests::POLICY_DNS_PROBE, "").unwrap());
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
    let case = Case::new();
    let manifest = std::fs::read_to_string(root().join("examples/churn/cordon.toml"))
        .unwrap()
        .replace(
            "columns = [{ name = \"churn_probability\", type = \"float64\" }]",
            "columns = [{ name = \"seen\", type = \"text\" }]",
        )
        .replace("[[graph]]\nname = \"churn_gbt\"\nfile = \"graphs/churn_gbt.onnx\"\nformat = \"onnx\"\ndevice = \"cpu\"\n", "");
    case.package(cordon_test_guests::POLICY_ECHO_COLUMNS, &manifest, &[]);
    case.write("policy.toml", &crate::support::churn_policy(&[]));
    case.run().unwrap();

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
