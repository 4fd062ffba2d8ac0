//! The audit trail and the usage ledger, through the `cordon` binary.

use std::process::Output;

use cordon_test_guests::{with_replaced, with_setting};

use crate::support::{Case, PROBE_MANIFEST, churn_case};

fn audit(case: &Case, args: &[&str]) -> Output {
    let args: Vec<&str> = ["audit"].iter().chain(args).copied().collect();
    case.cordon(&args)
}

fn run_churn(case: &Case) -> serde_json::Value {
    case.run_json(&["--no-cache"])
}

fn events(case: &Case) -> Vec<serde_json::Value> {
    std::fs::read_to_string(case.path("out/audit.jsonl"))
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// Two runs append one chain; the events say what was granted, read and written; the usage
/// ledger has one record per run, with the host's counts only, tied to the log by its run id.
#[test]
fn runs_leave_a_verifiable_trail_and_a_usage_record() {
    let case = churn_case();
    let first = run_churn(&case);
    let second = run_churn(&case);

    let verified = audit(&case, &["verify", "out/audit.jsonl"]);
    assert!(
        verified.status.success(),
        "{}",
        String::from_utf8_lossy(&verified.stderr)
    );
    let head = second["audit_head"].as_str().unwrap();
    assert!(String::from_utf8_lossy(&verified.stdout).contains(head));
    assert!(
        audit(&case, &["verify", "out/audit.jsonl", "--head", head])
            .status
            .success()
    );

    let events = events(&case);
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    let one_run = [
        "run-start",
        "grant",
        "data-read",
        "inference",
        "output-write",
        "run-end",
    ];
    assert_eq!(kinds, [one_run, one_run].concat());
    let run_ids: Vec<&str> = events
        .iter()
        .map(|e| e["run_id"].as_str().unwrap())
        .collect();
    assert!(run_ids[..6].iter().all(|id| *id == first["run_id"]));
    assert!(run_ids[6..].iter().all(|id| *id == second["run_id"]));

    let grant = &events[1];
    assert_eq!(grant["key_held_back"], serde_json::json!(["customerID"]));
    assert_eq!(grant["granted"].as_array().unwrap().len(), 10);
    let read = &events[2];
    assert_eq!(read["rows"], 7043);
    assert_eq!(read["input"], "customers");
    assert_eq!(events[3]["graph"], "churn_gbt");
    assert_eq!(events[4]["rows"], 7043);
    assert_eq!(events[5]["status"], "ok");

    let ledger: Vec<serde_json::Value> = std::fs::read_to_string(case.path("out/usage.jsonl"))
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(ledger.len(), 2);
    assert_eq!(ledger[1]["run_id"], second["run_id"]);
    assert_eq!(ledger[1]["rows_read"], 7043);
    assert_eq!(ledger[1]["batches"], 7);
    assert_eq!(
        ledger[1]["date"].as_str().unwrap().len(),
        "2026-12-01".len()
    );
    assert_eq!(ledger[1]["publisher"], "acme-analytics");
    // Counts only: no customer id or value from the table appears in the ledger.
    let text = std::fs::read_to_string(case.path("out/usage.jsonl")).unwrap();
    assert!(!text.contains("7590-VHVEG") && !text.contains("Month-to-month"));

    let shown = audit(&case, &["show", "out/audit.jsonl"]);
    assert!(shown.status.success());
    assert!(String::from_utf8_lossy(&shown.stdout).contains("output-write"));
}

/// Editing, deleting or reordering any line makes `verify` fail and name that line.
#[test]
fn tampering_with_any_line_is_named() {
    let case = churn_case();
    let summary = run_churn(&case);
    let original: Vec<String> = std::fs::read_to_string(case.path("out/audit.jsonl"))
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    let check = |lines: &[String], expected: &str| {
        std::fs::write(case.path("out/audit.jsonl"), lines.join("\n") + "\n").unwrap();
        let output = audit(&case, &["verify", "out/audit.jsonl"]);
        assert_eq!(output.status.code(), Some(2));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains(expected),
            "expected {expected:?} in: {stderr}"
        );
    };
    for index in 0..original.len() {
        let mut edited = original.clone();
        edited[index] = edited[index].replacen("\"run_id\"", "\"run_id \"", 1);
        check(
            &edited,
            &format!("line {}: its content does not match its hash", index + 1),
        );
    }
    for index in 0..original.len() - 1 {
        let mut deleted = original.clone();
        deleted.remove(index);
        check(
            &deleted,
            &format!("line {}: it is entry {}", index + 1, index + 2),
        );
        let mut swapped = original.clone();
        swapped.swap(index, index + 1);
        check(
            &swapped,
            &format!("line {}: it is entry {}", index + 1, index + 2),
        );
    }
    // Cutting the last line off is caught against the head the run's summary gave.
    std::fs::write(
        case.path("out/audit.jsonl"),
        original[..original.len() - 1].join("\n") + "\n",
    )
    .unwrap();
    let output = audit(
        &case,
        &[
            "verify",
            "out/audit.jsonl",
            "--head",
            summary["audit_head"].as_str().unwrap(),
        ],
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("not at the expected head"));
}

/// A run the policy refuses still leaves run-start, denial and run-end.
#[test]
fn a_refused_run_is_audited() {
    let case = churn_case();
    let policy = std::fs::read_to_string(case.path("policy.toml")).unwrap();
    let policy = with_replaced(&policy, "tenure = \"tenure\", ", "").unwrap();
    case.write("policy.toml", &policy);
    let output = case.run_cli(&[]);
    assert_eq!(output.status.code(), Some(2));
    let events = events(&case);
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["run-start", "denial", "run-end"]);
    assert_eq!(events[1]["what"], "grant");
    assert!(
        events[1]["why"]
            .as_str()
            .unwrap()
            .contains("needs column `tenure`")
    );
    assert_eq!(events[2]["status"], "error");
    assert!(!case.path("out/churn_scores.csv").exists());
    // The refused run is still on the ledger, with nothing scored.
    let ledger = std::fs::read_to_string(case.path("out/usage.jsonl")).unwrap();
    let record: serde_json::Value = serde_json::from_str(ledger.trim()).unwrap();
    assert_eq!(record["status"], "error");
    assert_eq!(record["rows_read"], 0);
}

/// A run killed with SIGKILL midway leaves a log that verifies up to its last complete line,
/// and no output file at all.
#[test]
fn a_killed_run_leaves_a_verifiable_log_and_no_output() {
    let case = churn_case();
    // A table long enough to be killed in the middle of: the Telco rows 60 times over.
    let table =
        std::fs::read_to_string(crate::support::root().join("examples/churn/data/telco_churn.csv"))
            .unwrap();
    let (header, rows) = table.split_once('\n').unwrap();
    let mut big = String::from(header);
    big.push('\n');
    for _ in 0..60 {
        big.push_str(rows);
    }
    case.write("big.csv", &big);
    case.set_source("big.csv");
    let policy = std::fs::read_to_string(case.path("policy.toml")).unwrap();
    let policy = with_setting(&policy, "output-rows", "10_000_000").unwrap();
    let policy = with_setting(&policy, "instances", "1").unwrap();
    case.write("policy.toml", &policy);

    let mut child = case
        .run_command(&["--no-cache", "--quiet"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the run is scoring (its grant is on disk), then kill it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let log = std::fs::read_to_string(case.path("out/audit.jsonl")).unwrap_or_default();
        if log.contains("\"event\":\"grant\"") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the run never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    std::thread::sleep(std::time::Duration::from_millis(150));
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    assert!(
        !status.success(),
        "the run finished before it could be killed"
    );

    let verified = audit(&case, &["verify", "out/audit.jsonl"]);
    assert!(
        verified.status.success(),
        "{}",
        String::from_utf8_lossy(&verified.stderr)
    );
    let kinds: Vec<String> = events(&case)
        .iter()
        .map(|e| e["event"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(kinds[..2], ["run-start", "grant"]);
    assert!(!kinds.contains(&"run-end".to_string()));
    let outputs: Vec<_> = std::fs::read_dir(case.path("out"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| !name.starts_with("audit") && !name.starts_with("usage"))
        .collect();
    assert!(outputs.is_empty(), "left behind: {outputs:?}");
}

/// A model that modulates fuel, inference calls and time with a value from its input: two runs
/// on two tables with equal row counts but different values leave usage records that differ
/// only in their run id, while the consumer's own audit trail shows the difference.
#[test]
fn the_usage_ledger_carries_nothing_the_model_steers() {
    let manifest = format!(
        "{PROBE_MANIFEST}\n[[graph]]\nname = \"identity\"\nfile = \"graphs/identity.onnx\"\nformat = \"onnx\"\ndevice = \"cpu\"\n"
    );
    let policy = "version = 1\n[inference]\ndevices = [\"cpu\"]\n[bind.rows]\nsource = \"input.csv\"\nkey = [\"id\"]\ncolumns = { x = \"x\" }\n[emit.results]\nsink = \"out/results.csv\"\n[audit]\nlog = \"out/audit.jsonl\"\nusage = \"out/usage.jsonl\"\n";
    let run_on = |value: u32| {
        let case = Case::new();
        let graph = case.write("identity.onnx", "");
        std::fs::write(
            &graph,
            cordon_test_guests::onnx_graphs::identity_f32("x", "y"),
        )
        .unwrap();
        case.package(
            cordon_test_guests::USAGE_MODULATOR,
            &manifest,
            &[("identity.onnx", &graph)],
        );
        case.write(
            "input.csv",
            &format!("id,x\na,{value}\nb,{value}\nc,{value}\n"),
        );
        case.write("policy.toml", policy);
        let output = case.run_cli(&[]);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let record: serde_json::Value = serde_json::from_str(
            std::fs::read_to_string(case.path("out/usage.jsonl"))
                .unwrap()
                .trim(),
        )
        .unwrap();
        let run_end = events(&case).pop().unwrap();
        (record, run_end)
    };
    // Two tries, in case the two runs fall either side of midnight (UTC).
    for attempt in 0..2 {
        let (mut low, low_end) = run_on(1);
        let (mut high, high_end) = run_on(9);
        // The model did modulate what it could: the consumer's trail shows it.
        assert_eq!(low_end["inference_calls"], 1);
        assert_eq!(high_end["inference_calls"], 9);
        assert!(high_end["fuel"].as_u64() > low_end["fuel"].as_u64());

        assert_ne!(low["run_id"], high["run_id"]);
        low.as_object_mut().unwrap().remove("run_id");
        high.as_object_mut().unwrap().remove("run_id");
        if low["date"] != high["date"] && attempt == 0 {
            continue;
        }
        assert_eq!(low, high, "the ledger records differ beyond their run id");
        assert_eq!(low["rows_read"], 3);
        assert_eq!(low["status"], "ok");
        return;
    }
}

/// The probe manifest and a policy with an audit trail, for the audit log's own tests.
fn audited_probe(case: &Case, wasm: &str, x: u32) {
    case.package(wasm, PROBE_MANIFEST, &[]);
    case.write("input.csv", &format!("id,x\na,{x}\nb,{x}\n"));
    case.write(
        "policy.toml",
        "version = 1\n[bind.rows]\nsource = \"input.csv\"\nkey = [\"id\"]\ncolumns = { x = \"x\" }\n[emit.results]\nsink = \"out/results.csv\"\n[audit]\nlog = \"out/audit.jsonl\"\nusage = \"out/usage.jsonl\"\n",
    );
}

/// A model that fails with megabytes of text of its choosing (a 2 MiB graph name, logged,
/// written to stderr and returned as its error) cannot break the audit log: the run fails,
/// the log verifies, and the next run under the same policy works.
#[test]
fn a_guest_cannot_break_the_audit_log_with_long_strings() {
    let case = Case::new();
    audited_probe(&case, cordon_test_guests::AUDIT_LONG_STRINGS, 1);
    let run = || case.run_cli(&[]);
    let failed = run();
    assert_eq!(failed.status.code(), Some(2));
    assert!(
        failed.stderr.len() < 64 * 1024,
        "{} bytes of stderr",
        failed.stderr.len()
    );
    let verified = audit(&case, &["verify", "out/audit.jsonl"]);
    assert!(
        verified.status.success(),
        "{}",
        String::from_utf8_lossy(&verified.stderr)
    );
    let log = std::fs::read_to_string(case.path("out/audit.jsonl")).unwrap();
    assert!(log.lines().all(|line| line.len() < 64 * 1024));

    case.write("input.csv", "id,x\na,0\nb,0\n");
    let next = run();
    assert!(
        next.status.success(),
        "{}",
        String::from_utf8_lossy(&next.stderr)
    );
    assert!(
        audit(&case, &["verify", "out/audit.jsonl"])
            .status
            .success()
    );
}

/// Runs appending to one log at once: 20 pairs of concurrent `cordon run`s leave one chain
/// that verifies, with every run's start and end in it.
#[test]
fn concurrent_runs_on_one_log_keep_its_chain() {
    let case = Case::new();
    audited_probe(&case, cordon_test_guests::AUDIT_LONG_STRINGS, 0);
    for _ in 0..20 {
        let pair: Vec<_> = (0..2)
            .map(|_| {
                case.run_command(&["--quiet"])
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for child in pair {
            let output = child.wait_with_output().unwrap();
            assert!(
                output.status.success(),
                "{}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }
    let verified = audit(&case, &["verify", "out/audit.jsonl"]);
    assert!(
        verified.status.success(),
        "{}",
        String::from_utf8_lossy(&verified.stderr)
    );
    let ends = events(&case)
        .iter()
        .filter(|e| e["event"] == "run-end" && e["status"] == "ok")
        .count();
    assert_eq!(ends, 40);
    let ledger = std::fs::read_to_string(case.path("out/usage.jsonl")).unwrap();
    assert_eq!(ledger.lines().count(), 40);
}
