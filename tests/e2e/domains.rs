//! The manifest's column domains: every value is checked on the host before it enters the
//! sandbox, and the policy chooses per binding to refuse the run or to score and count.

use cordon_test_guests::with_replaced;

use crate::support::{churn_case, read_csv, root};

/// The Telco table with record `record` (from 0) of column `column` set to `value`, and the
/// line that record is on (the header is line 1, and no value of the table spans lines).
fn telco_with(column: &str, record: usize, value: &str) -> (String, u64) {
    telco_with_all(&[(column, record, value)])
}

/// The Telco table with each `(column, record, value)` changed, and the line of the last.
fn telco_with_all(changes: &[(&str, usize, &str)]) -> (String, u64) {
    let text = std::fs::read_to_string(root().join("examples/churn/data/telco_churn.csv")).unwrap();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    let mut records: Vec<Vec<String>> = reader
        .records()
        .map(|r| r.unwrap().iter().map(str::to_owned).collect())
        .collect();
    for (column, record, value) in changes {
        let index = header.iter().position(|c| c == column).unwrap();
        records[*record][index] = (*value).to_owned();
    }
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record(&header).unwrap();
    for record in &records {
        writer.write_record(record).unwrap();
    }
    let line = changes
        .last()
        .map_or(0, |(_, record, _)| *record as u64 + 2);
    (
        String::from_utf8(writer.into_inner().unwrap()).unwrap(),
        line,
    )
}

/// The churn case reading `telco.csv` from its own directory.
fn churn_case_on(table: &str) -> crate::support::Case {
    let case = churn_case();
    case.write("telco.csv", table);
    case.set_source("telco.csv");
    case
}

fn set_out_of_domain(case: &crate::support::Case, choice: &str) {
    let policy = std::fs::read_to_string(case.path("policy.toml")).unwrap();
    let policy = with_replaced(
        &policy,
        "[bind.customers]\n",
        &format!("[bind.customers]\nout-of-domain = \"{choice}\"\n"),
    )
    .unwrap();
    case.write("policy.toml", &policy);
}

/// A contract level the model never saw stops the run, naming the column, the value, the file's
/// line and the customer; nothing is written.
#[test]
fn an_unknown_level_is_refused_naming_column_value_line_and_key() {
    let (table, line) = telco_with("Contract", 17, "monthly");
    let case = churn_case_on(&table);
    let output = case.run_cli(&[]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let customer = &read_csv(&root().join("examples/churn/data/telco_churn.csv"))[17][0];
    assert!(stderr.contains(&format!("telco.csv:{line}")), "{stderr}");
    assert!(
        stderr.contains(&format!("(customerID={customer})")),
        "{stderr}"
    );
    assert!(
        stderr.contains("column `contract`: `monthly` is outside the model's domain"),
        "{stderr}"
    );
    assert!(
        stderr.contains("Month-to-month, One year, Two year"),
        "{stderr}"
    );
    assert!(stderr.contains("out-of-domain = \"count\""), "{stderr}");
    assert!(!case.path("out/churn_scores.csv").exists());
}

/// Under `out-of-domain = "count"` the same table is scored whole, and the summary and the
/// audit trail say how many values were outside the domain.
#[test]
fn counted_values_are_scored_and_reported() {
    let (table, _) = telco_with("Contract", 17, "monthly");
    let case = churn_case_on(&table);
    set_out_of_domain(&case, "count");
    let summary = case.run().unwrap();
    assert_eq!(summary.rows_out, 7043);
    assert_eq!(summary.out_of_domain.get("contract"), Some(&1));
    assert_eq!(
        summary.out_of_domain.len(),
        1,
        "{:?}",
        summary.out_of_domain
    );
    let events = cordon::audit::read_events(&case.path("out/audit.jsonl")).unwrap();
    let counted: Vec<_> = events
        .iter()
        .filter(|e| e["event"] == "out-of-domain")
        .collect();
    assert_eq!(counted.len(), 1, "{events:?}");
    assert_eq!(counted[0]["column"], "contract");
    assert_eq!(counted[0]["values"], 1);
    let output = case.run_cli(&[]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("1 value(s) of `contract` outside the manifest's domain"),
        "{stdout}"
    );
}

/// A number outside its range and a null where the manifest takes none are refused too, with
/// the range and unit the manifest declares.
#[test]
fn a_number_out_of_range_and_a_null_are_refused() {
    let (table, line) = telco_with("tenure", 3, "480");
    let case = churn_case_on(&table);
    let message = case.run().unwrap_err().to_string();
    assert!(message.contains(&format!("telco.csv:{line}")), "{message}");
    assert!(message.contains("column `tenure`: `480`"), "{message}");
    assert!(message.contains("range = 0 to 72 months"), "{message}");

    let (table, line) = telco_with("PaymentMethod", 5, "");
    let case = churn_case_on(&table);
    let message = case.run().unwrap_err().to_string();
    assert!(message.contains(&format!("telco.csv:{line}")), "{message}");
    assert!(
        message.contains("column `payment_method`: null"),
        "{message}"
    );
    assert!(message.contains("nullable = false"), "{message}");
}

/// The check is on what the model would read: a mask that makes an unknown level is refused,
/// and under a filter the line is still the file's own.
#[test]
fn the_check_sees_masked_values_and_filtered_lines() {
    let case = churn_case();
    let policy = std::fs::read_to_string(case.path("policy.toml")).unwrap();
    let policy = with_replaced(
        &policy,
        "[bind.customers]\n",
        "[bind.customers]\nmask = { contract = \"lower(Contract)\" }\n",
    )
    .unwrap();
    case.write("policy.toml", &policy);
    let message = case.run().unwrap_err().to_string();
    assert!(
        message.contains("column `contract`: `month-to-month`"),
        "{message}"
    );
    assert!(
        message.contains("telco_churn.csv:2 (customerID=7590-VHVEG)"),
        "{message}"
    );

    // Record 40 made a one-year customer paying in cash: the 41st record, but not the 41st row
    // the filter lets through.
    let (table, line) =
        telco_with_all(&[("Contract", 40, "One year"), ("PaymentMethod", 40, "cash")]);
    let case = churn_case_on(&table);
    let policy = std::fs::read_to_string(case.path("policy.toml")).unwrap();
    let policy = with_replaced(
        &policy,
        "[bind.customers]\n",
        "[bind.customers]\nfilter = \"Contract = 'One year'\"\n",
    )
    .unwrap();
    case.write("policy.toml", &policy);
    let message = case.run().unwrap_err().to_string();
    assert!(message.contains(&format!("telco.csv:{line}")), "{message}");
    assert!(
        message.contains("column `payment_method`: `cash`"),
        "{message}"
    );
}

/// `cordon inspect` lists each column's domain: levels, range and unit, nulls.
#[test]
fn inspect_lists_the_domains() {
    let case = churn_case();
    let output = case.cordon(&["inspect", "package"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains(
            "domain      contract: one of \"Month-to-month\", \"One year\", \"Two year\"; no nulls"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("domain      tenure: 0 to 72 months; no nulls"),
        "{stdout}"
    );
    assert!(
        stdout.contains("domain      total_charges: 0 to 15000 USD; nulls taken"),
        "{stdout}"
    );
    let output = case.cordon(&["inspect", "package", "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let contract = json["input"]["columns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "contract")
        .unwrap();
    assert_eq!(contract["levels"].as_array().unwrap().len(), 3);
    assert_eq!(contract["nullable"], false);
}
