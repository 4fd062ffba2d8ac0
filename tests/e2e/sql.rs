//! `cordon sql`: the model as SQL functions over governed tables, with the policy enforced on
//! each statement's plan. Scores must equal `cordon run`'s bit for bit; every way a query could
//! pass a model a value the policy does not grant it must be refused before any guest starts.

use std::collections::BTreeMap;
use std::sync::Arc;

use cordon::RunError;
use cordon::drivers::sql::{SqlRequest, SqlSession, StatementOutput};
use cordon::run::Quiet;
use cordon_test_guests::{with_replaced, with_setting};
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type};

use crate::forecast::forecast_case;
use crate::support::{Case, churn_case, echo_case, read_csv, runtime};

/// The churn model's ten arguments, in the manifest's order.
const ARGUMENTS: &str = "tenure, monthly_charges, total_charges, senior_citizen, contract, payment_method, internet_service, paperless_billing, tech_support, online_security";

/// The case's package under its policy, as a SQL session.
fn session(case: &Case) -> SqlSession<'static> {
    SqlSession::open(runtime(), &request(case)).unwrap()
}

fn request(case: &Case) -> SqlRequest {
    SqlRequest {
        policy: case.path("policy.toml"),
        base_dir: case.dir.path().to_owned(),
        packages: vec![case.path("package")],
        role: None,
        allow_unsigned: true,
    }
}

/// Runs every statement of `sql`, returning the last one's output.
fn query(session: &SqlSession, sql: &str) -> Result<StatementOutput, RunError> {
    let mut last = None;
    for statement in session.parse(sql)? {
        last = Some(session.execute(statement, Arc::new(Quiet))?);
    }
    Ok(last.expect("no statement"))
}

/// Column `index` of every batch as text (nulls as `<null>`).
fn texts(output: &StatementOutput, index: usize) -> Vec<String> {
    column(&output.batches, index, |array, row| {
        let text = cast(array, &DataType::Utf8).unwrap();
        let text = text.as_string::<i32>();
        if text.is_null(row) {
            "<null>".into()
        } else {
            text.value(row).to_owned()
        }
    })
}

fn floats(output: &StatementOutput, index: usize) -> Vec<f64> {
    column(&output.batches, index, |array, row| {
        array.as_primitive::<Float64Type>().value(row)
    })
}

fn column<T>(
    batches: &[RecordBatch],
    index: usize,
    value: impl Fn(&dyn Array, usize) -> T,
) -> Vec<T> {
    let mut values = Vec::new();
    for batch in batches {
        let array = batch.column(index);
        for row in 0..batch.num_rows() {
            values.push(value(array.as_ref(), row));
        }
    }
    values
}

/// `cordon run`'s churn probabilities by customer id, as written.
fn run_scores(case: &Case) -> Vec<(String, f64)> {
    case.run().unwrap();
    read_csv(&case.path("out/churn_scores.csv"))
        .into_iter()
        .map(|row| (row[0].clone(), row[1].parse().unwrap()))
        .collect()
}

fn by_key(rows: Vec<(String, f64)>) -> BTreeMap<String, u64> {
    rows.into_iter().map(|(k, p)| (k, p.to_bits())).collect()
}

/// A `[table.plans]` of the consumer's: every customer's plan name and a discount, keyed by id.
fn add_plans_table(case: &Case) {
    let rows = read_csv(&crate::support::root().join("examples/churn/data/telco_churn.csv"));
    let mut csv = String::from("customerID,plan,discount\n");
    for (index, row) in rows.iter().enumerate() {
        csv.push_str(&format!("{},plan-{},{}\n", row[0], index % 3, index % 7));
    }
    case.write("plans.csv", &csv);
    let policy = std::fs::read_to_string(case.path("policy.toml")).unwrap();
    let plans = case.path("plans.csv");
    case.write(
        "policy.toml",
        &format!(
            "{policy}\n[table.plans]\nsource = {:?}\nschema = {{ discount = \"int64\" }}\n",
            plans.display().to_string()
        ),
    );
}

/// The scalar function gives every one of the 7,043 customers the probability `cordon run`
/// wrote, to the bit.
#[test]
fn the_scalar_function_scores_like_cordon_run() {
    let case = churn_case();
    let expected = by_key(run_scores(&case));
    let session = session(&case);
    let output = query(
        &session,
        &format!("SELECT customerID, telco_churn({ARGUMENTS}) AS p FROM customers"),
    )
    .unwrap();
    let ids = texts(&output, 0);
    let scores = floats(&output, 1);
    assert_eq!(ids.len(), 7043);
    let got = by_key(ids.into_iter().zip(scores).collect());
    assert_eq!(got.len(), 7043, "every customer once");
    assert_eq!(got, expected);
    assert_eq!(output.rows_scored, 7043);
    assert_eq!(output.model_derived, [false, true]);
}

/// The table function is `cordon run` as a table: keys and outputs, in input order, to the bit.
#[test]
fn the_table_function_scores_like_cordon_run() {
    let case = churn_case();
    let expected = run_scores(&case);
    let session = session(&case);
    let output = query(&session, "SELECT * FROM telco_churn('customers')").unwrap();
    let names: Vec<&str> = output
        .schema
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect();
    assert_eq!(names, ["customerID", "churn_probability"]);
    let got: Vec<(String, f64)> = texts(&output, 0)
        .into_iter()
        .zip(floats(&output, 1))
        .collect();
    assert_eq!(got.len(), 7043);
    for ((id, p), (want_id, q)) in got.iter().zip(&expected) {
        assert_eq!(id, want_id);
        assert_eq!(p.to_bits(), q.to_bits(), "{id}: {p} != {q}");
    }

    // A table function naming another table is an error that says what it takes.
    let error = query(&session, "SELECT * FROM telco_churn('plans')").unwrap_err();
    assert!(
        error.to_string().contains("telco_churn('customers')"),
        "{error}"
    );
}

/// Joined with a plain table of the consumer's, through both function forms, each customer's
/// plan sits beside its own probability.
#[test]
fn model_results_join_a_plain_table() {
    let case = churn_case();
    let expected = by_key(run_scores(&case));
    add_plans_table(&case);
    let plans: BTreeMap<String, String> = read_csv(&case.path("plans.csv"))
        .into_iter()
        .map(|row| (row[0].clone(), row[1].clone()))
        .collect();
    let session = session(&case);
    let queries = [
        format!(
            "SELECT c.customerID, p.plan, telco_churn({}) FROM customers c JOIN plans p ON c.customerID = p.customerID WHERE p.discount < 7",
            ARGUMENTS
                .split(", ")
                .map(|a| format!("c.{a}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        "SELECT s.customerID, p.plan, s.churn_probability FROM telco_churn('customers') s JOIN plans p ON s.customerID = p.customerID".to_string(),
    ];
    for sql in &queries {
        let output = query(&session, sql).unwrap();
        let ids = texts(&output, 0);
        let plan_names = texts(&output, 1);
        let scores = floats(&output, 2);
        assert_eq!(ids.len(), 7043, "{sql}");
        for ((id, plan), p) in ids.iter().zip(&plan_names).zip(&scores) {
            assert_eq!(plan, &plans[id], "{sql}");
            assert_eq!(p.to_bits(), expected[id], "{sql}: {id}");
        }
    }
}

/// The echo guest in place of the model, with the month-to-month filter and a mask: through
/// either function form it sees exactly the 3,875 rows the filter lets through, the masked
/// values, and only granted columns.
#[test]
fn the_model_sees_only_filtered_masked_granted_rows() {
    let case = echo_case();
    let policy = std::fs::read_to_string(case.path("policy.toml")).unwrap();
    let policy = with_setting(&policy, "key", "[\"customerID\"]\nfilter = \"Contract = 'Month-to-month'\"\nmask = { payment_method = \"left(PaymentMethod, 4)\" }").unwrap();
    case.write("policy.toml", &policy);
    let session = session(&case);
    for sql in [
        format!("SELECT customerID, telco_churn({ARGUMENTS}) FROM customers"),
        "SELECT customerID, seen FROM telco_churn('customers')".to_string(),
    ] {
        let output = query(&session, &sql).unwrap();
        let ids = texts(&output, 0);
        let seen = texts(&output, 1);
        assert_eq!(seen.len(), 3875, "{sql}");
        for (id, seen) in ids.iter().zip(&seen) {
            assert!(
                !seen.contains(id.as_str()),
                "{sql}: the guest saw the key: {seen}"
            );
            assert!(seen.contains("contract=Month-to-month"), "{sql}: {seen}");
            let payment = seen
                .split(';')
                .find_map(|pair| pair.strip_prefix("payment_method="))
                .unwrap();
            assert!(payment.chars().count() <= 4, "{sql}: unmasked {payment}");
            assert!(!seen.contains("Female") && !seen.contains("Male"), "{seen}");
        }
        assert_eq!(output.rows_scored, 3875, "{sql}");
    }
}

/// Every way of handing the model a value the policy does not grant it is refused on the plan,
/// naming the function, the argument and the column, with a denial in the trail and no guest
/// started; the same shapes with granted columns run.
#[test]
fn ungranted_values_are_refused_on_the_plan() {
    let case = churn_case();
    add_plans_table(&case);
    let session = session(&case);
    // The contract argument (position 5) replaced by `value`, over `from`.
    let call = |value: &str| ARGUMENTS.replacen("contract", value, 1);
    let refused = [
        // An ungranted source column: the governed table does not have it.
        (
            format!("SELECT telco_churn({}) FROM customers", call("gender")),
            "gender",
        ),
        // A key column.
        (
            format!("SELECT telco_churn({}) FROM customers", call("customerID")),
            "customers.customerID",
        ),
        // A column of a plain table.
        (
            format!(
                "SELECT telco_churn({}) FROM customers c JOIN plans p ON c.customerID = p.customerID",
                call("p.plan")
            ),
            "plans.plan",
        ),
        // An expression mixing a granted and an ungranted column.
        (
            format!(
                "SELECT telco_churn({}) FROM customers",
                call("concat(contract, customerID)")
            ),
            "customers.customerID",
        ),
        // The same through a subquery, a CTE, a view and a join.
        (
            format!(
                "SELECT telco_churn({ARGUMENTS}) FROM (SELECT tenure, monthly_charges, total_charges, senior_citizen, customerID AS contract, payment_method, internet_service, paperless_billing, tech_support, online_security FROM customers) s"
            ),
            "customers.customerID",
        ),
        (
            format!(
                "WITH s AS (SELECT tenure, monthly_charges, total_charges, senior_citizen, customerID AS contract, payment_method, internet_service, paperless_billing, tech_support, online_security FROM customers) SELECT telco_churn({ARGUMENTS}) FROM s"
            ),
            "customers.customerID",
        ),
        (
            format!(
                "CREATE VIEW v AS SELECT tenure, monthly_charges, total_charges, senior_citizen, customerID AS contract, payment_method, internet_service, paperless_billing, tech_support, online_security FROM customers; SELECT telco_churn({ARGUMENTS}) FROM v"
            ),
            "customers.customerID",
        ),
        (
            format!(
                "SELECT telco_churn({ARGUMENTS}) FROM (SELECT c.tenure, c.monthly_charges, c.total_charges, c.senior_citizen, p.plan AS contract, c.payment_method, c.internet_service, c.paperless_billing, c.tech_support, c.online_security FROM customers c JOIN plans p ON c.customerID = p.customerID) j"
            ),
            "plans.plan",
        ),
        // A scalar subquery over a plain table, and a plain table's rows chosen by EXISTS.
        (
            format!(
                "SELECT telco_churn({}) FROM customers",
                call("(SELECT max(plan) FROM plans)")
            ),
            "plans.plan",
        ),
        (
            format!(
                "SELECT telco_churn({}) FROM customers c",
                call(
                    "CASE WHEN EXISTS (SELECT 1 FROM plans p WHERE p.discount > c.tenure) THEN 'a' ELSE 'b' END"
                )
            ),
            "plans.discount",
        ),
        // Values chosen by a plain table through an outer join's padding, an aggregate over
        // rows a plain table's filter chose, and a comparison with ANY over a plain table.
        (
            format!(
                "SELECT telco_churn({}) FROM customers c LEFT JOIN (SELECT customerID, 1 AS f FROM plans WHERE discount > 3) s ON s.customerID = c.customerID",
                call("CASE WHEN s.f IS NULL THEN 'Two year' ELSE 'Month-to-month' END")
            ),
            "customerID",
        ),
        (
            format!(
                "SELECT telco_churn({}) FROM customers CROSS JOIN (SELECT count(*) AS n FROM plans WHERE discount > 3) k",
                call("CAST(k.n AS VARCHAR)")
            ),
            "plans.discount",
        ),
        (
            format!(
                "SELECT telco_churn({}) FROM customers",
                call("CASE WHEN 3 > ANY (SELECT discount FROM plans) THEN 'a' ELSE 'b' END")
            ),
            "plans.discount",
        ),
    ];
    for (sql, column) in &refused {
        let before = audit_events(&case).len();
        let error = query(&session, sql).unwrap_err();
        let message = error.to_string();
        assert!(message.contains("telco_churn"), "{sql}: {message}");
        assert!(
            message.contains("argument 5 (contract)"),
            "{sql}: {message}"
        );
        assert!(message.contains(column), "{sql}: {message}");
        let events = audit_events(&case);
        let run: Vec<_> = events[before..].iter().collect();
        assert!(
            run.iter()
                .any(|e| e["event"] == "denial" && e["what"] == "plan"),
            "{sql}: {run:?}"
        );
        // Refused before any model was started or any row read.
        assert!(
            !run.iter()
                .any(|e| e["event"] == "run-start" || e["event"] == "data-read"),
            "{sql}: {run:?}"
        );
    }

    // The same shapes with granted columns run.
    let allowed = [
        format!("SELECT telco_churn({ARGUMENTS}) FROM (SELECT * FROM customers) s"),
        format!(
            "WITH s AS (SELECT * FROM customers WHERE tenure > 12) SELECT telco_churn({ARGUMENTS}) FROM s"
        ),
        format!("CREATE VIEW w AS SELECT * FROM customers; SELECT telco_churn({ARGUMENTS}) FROM w"),
        format!(
            "SELECT telco_churn({}) FROM customers c JOIN plans p ON c.customerID = p.customerID",
            // A granted column through an expression (one that keeps it in the model's domain:
            // `upper` would make levels the manifest does not list, refused as such).
            call("trim(c.contract)")
        ),
    ];
    for sql in &allowed {
        let output = query(&session, sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
        assert!(output.rows_scored > 0, "{sql}");
    }
}

fn audit_events(case: &Case) -> Vec<serde_json::Map<String, serde_json::Value>> {
    let path = case.path("out/audit.jsonl");
    if !path.exists() {
        return Vec::new();
    }
    cordon::audit::read_events(&path).unwrap()
}

/// A query is one run in the audit trail (its text, role, tables, calls with their columns,
/// rows read) and one record per model in the usage ledger, and the trail still verifies.
#[test]
fn a_query_is_one_audited_run() {
    let case = churn_case();
    let session = session(&case);
    let output = query(
        &session,
        &format!(
            "SELECT count(*), avg(p) FROM (SELECT telco_churn({ARGUMENTS}) AS p FROM customers)"
        ),
    )
    .unwrap();
    assert_eq!(texts(&output, 0), ["7043"]);
    let events = audit_events(&case);
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "query",
            "run-start",
            "grant",
            "data-read",
            "inference",
            "run-end"
        ]
    );
    let query_event = &events[0];
    assert!(
        query_event["text"]
            .as_str()
            .unwrap()
            .contains("telco_churn")
    );
    assert_eq!(
        query_event["governed_tables"],
        serde_json::json!(["customers"])
    );
    let call = &query_event["calls"][0];
    assert_eq!(call["function"], "telco_churn");
    assert_eq!(call["form"], "scalar");
    assert_eq!(call["arguments"][0]["origins"][0]["column"], "tenure");
    assert_eq!(events[3]["rows"], 7043);
    assert_eq!(events[5]["status"], "ok");
    cordon::audit::verify(&case.path("out/audit.jsonl")).unwrap();
    let ledger = std::fs::read_to_string(case.path("out/usage.jsonl")).unwrap();
    let records: Vec<serde_json::Value> = ledger
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["package"], "telco-churn");
    assert_eq!(records[0]["rows_read"], 7043);
    assert_eq!(records[0]["status"], "ok");
}

/// The forecaster (partition mode) through its table function gives `cordon run`'s forecasts.
#[test]
fn the_forecasters_table_function_equals_cordon_run() {
    let case = forecast_case("forecast.toml");
    case.run().unwrap();
    let expected = read_csv(&case.path("out/forecasts.csv"));
    let session = session(&case);
    let output = query(&session, "SELECT * FROM seasonal_forecast('history')").unwrap();
    let columns: Vec<Vec<String>> = (0..output.schema.fields().len())
        .map(|index| texts(&output, index))
        .collect();
    assert_eq!(columns[0].len(), expected.len());
    for (row, want) in expected.iter().enumerate() {
        for (index, cell) in want.iter().enumerate() {
            let got = &columns[index][row];
            match (cell.parse::<f64>(), got.parse::<f64>()) {
                (Ok(a), Ok(b)) if index >= 3 => assert_eq!(a.to_bits(), b.to_bits(), "row {row}"),
                _ => assert_eq!(got, cell, "row {row} column {index}"),
            }
        }
    }
    // Partition mode has no scalar function: a series is not a row.
    let error = query(
        &session,
        "SELECT seasonal_forecast(series, time, value) FROM history",
    )
    .unwrap_err();
    assert!(error.to_string().contains("seasonal_forecast"), "{error}");
}

/// A package may not take the name of a SQL function the session already has: it would
/// receive every call a consumer writes to it.
#[test]
fn a_package_cannot_shadow_a_builtin_function() {
    let case = echo_case();
    let manifest = std::fs::read_to_string(case.path("package/cordon.toml")).unwrap();
    let manifest = with_replaced(&manifest, "name = \"telco-churn\"", "name = \"lower\"").unwrap();
    case.write("package/cordon.toml", &manifest);
    let error = SqlSession::open(runtime(), &request(&case)).err().unwrap();
    assert!(error.to_string().contains("`lower`"), "{error}");
}

/// The command: CSV on stdout when it is not a terminal, an aligned table with
/// `--format table`, `-o` to a Parquet file, and a refusal with exit code 2.
#[test]
fn the_sql_command_prints_writes_and_refuses() {
    let case = churn_case();
    let expected = by_key(run_scores(&case));
    let sql = format!(
        "SELECT customerID, telco_churn({ARGUMENTS}) AS p FROM customers ORDER BY customerID LIMIT 3"
    );
    let base = [
        "sql",
        "--policy",
        "policy.toml",
        "--package",
        "package",
        "--allow-unsigned",
        "--onnxruntime",
    ];
    let library = crate::support::onnxruntime_library().display().to_string();
    let args = |extra: &[&str]| -> Vec<String> {
        base.iter()
            .map(|s| s.to_string())
            .chain([library.clone()])
            .chain(extra.iter().map(|s| s.to_string()))
            .collect()
    };
    let output = case
        .bare_command()
        .args(args(&["-e", &sql]))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "customerID,p");
    assert_eq!(lines.len(), 4, "{stdout}");
    for line in &lines[1..] {
        let (id, p) = line.split_once(',').unwrap();
        assert_eq!(p.parse::<f64>().unwrap().to_bits(), expected[id]);
    }

    let output = case
        .bare_command()
        .args(args(&["-e", &sql, "--format", "table"]))
        .output()
        .unwrap();
    let table = String::from_utf8(output.stdout).unwrap();
    assert!(table.starts_with("+----"), "{table}");
    assert!(table.contains("| customerID "), "{table}");

    let output = case
        .bare_command()
        .args(args(&["-e", &sql, "-o", "out/top.parquet"]))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(case.path("out/top.parquet").is_file());

    let refused = format!(
        "SELECT telco_churn({}) FROM customers",
        ARGUMENTS.replacen("contract", "customerID", 1)
    );
    let output = case
        .bare_command()
        .args(args(&["-e", &refused]))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("argument 5 (contract)"), "{stderr}");
    assert!(stderr.contains("key column"), "{stderr}");
}

/// The example queries the README shows run under the example policies and say what they
/// claim: three contracts with the month-to-month customers most at risk, the ten riskiest
/// month-to-month customers in order, and a backtest row for each of the 20 regions.
#[test]
fn the_example_queries_run() {
    let example = |path: &str| std::fs::read_to_string(crate::support::root().join(path)).unwrap();

    let case = churn_case();
    let churn = session(&case);
    let by_contract = query(&churn, &example("examples/churn/queries/by_contract.sql")).unwrap();
    assert_eq!(
        texts(&by_contract, 0),
        ["Month-to-month", "One year", "Two year"]
    );
    let customers: Vec<u64> = texts(&by_contract, 1)
        .iter()
        .map(|n| n.parse().unwrap())
        .collect();
    assert_eq!(customers, [3875, 1473, 1695]);
    let at_risk = query(&churn, &example("examples/churn/queries/at_risk.sql")).unwrap();
    let scores = floats(&at_risk, 3);
    assert_eq!(scores.len(), 10);
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{scores:?}");

    let case = forecast_case("forecast-backtest.toml");
    let forecast = session(&case);
    let backtest = query(
        &forecast,
        &example("examples/forecast/queries/backtest.sql"),
    )
    .unwrap();
    let quarters = texts(&backtest, 1);
    assert_eq!(quarters.len(), 20);
    assert!(quarters.iter().all(|q| q == "8"), "{quarters:?}");
}

/// Statements that would write files, change the session's tables or settings, or print a
/// governed table's source are refused by name, with a denial in the trail; a query that stops
/// early (LIMIT) ends its run with every scorer back, and the session goes on.
#[test]
fn only_queries_and_views_run() {
    let case = churn_case();
    let session = session(&case);
    let source = crate::support::root().join("examples/churn/data/telco_churn.csv");
    for sql in [
        "COPY (SELECT 1) TO 'out/audit.jsonl' STORED AS JSON".to_string(),
        format!(
            "CREATE EXTERNAL TABLE raw STORED AS CSV LOCATION '{}' OPTIONS ('format.has_header' 'true')",
            source.display()
        ),
        "DROP TABLE customers".to_string(),
        "EXPLAIN SELECT * FROM customers".to_string(),
        "SET datafusion.execution.batch_size = 1".to_string(),
        "CREATE TABLE t AS SELECT * FROM customers".to_string(),
    ] {
        let error = query(&session, &sql).unwrap_err();
        assert!(
            matches!(error, RunError::StatementRefused { .. }),
            "{sql}: {error}"
        );
        let events = audit_events(&case);
        let last_denial = events.iter().rfind(|e| e["event"] == "denial").unwrap();
        assert_eq!(last_denial["what"], "statement", "{sql}");
    }
    cordon::audit::verify(&case.path("out/audit.jsonl")).unwrap();

    let output = query(
        &session,
        &format!("SELECT telco_churn({ARGUMENTS}) FROM customers LIMIT 5"),
    )
    .unwrap();
    assert_eq!(floats(&output, 0).len(), 5);
    let again = query(
        &session,
        &format!("SELECT telco_churn({ARGUMENTS}) FROM customers"),
    )
    .unwrap();
    assert_eq!(again.rows_scored, 7043);
}

/// `-o` puts its file in place only when the statement ran to its end: a model stopped by the
/// CPU limit halfway leaves no file, and an earlier one where it was is kept whole.
#[test]
fn a_failed_statement_leaves_no_output_file() {
    let case = crate::support::churn_case_with(&[("fuel-per-batch", "100_000")]);
    std::fs::create_dir_all(case.path("out")).unwrap();
    case.write("out/scores.csv", "earlier\n");
    let library = crate::support::onnxruntime_library().display().to_string();
    let output = case
        .bare_command()
        .args([
            "sql",
            "--quiet",
            "--policy",
            "policy.toml",
            "--package",
            "package",
        ])
        .args([
            "--allow-unsigned",
            "--onnxruntime",
            &library,
            "-o",
            "out/scores.csv",
            "-e",
        ])
        .arg(format!(
            "SELECT customerID, telco_churn({ARGUMENTS}) FROM customers"
        ))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("fuel-per-batch"), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(case.path("out/scores.csv")).unwrap(),
        "earlier\n"
    );
    let leftovers: Vec<_> = std::fs::read_dir(case.path("out"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains("partial") || name.starts_with(".cordon"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
