//! A model's settings: declared with types and defaults in the manifest, set by the policy,
//! checked like any policy key, and read by the model through contract 0.3.0; and a model of
//! contract 0.2.0, served beside it.

use cordon::RunError;

use crate::support::{Case, PROBE_MANIFEST, probe_policy, probe_table, read_csv};

/// The probe manifest with four settings.
fn manifest_with_settings() -> String {
    format!(
        "{PROBE_MANIFEST}
[settings.period]
type = \"int64\"
default = 4
range = [1, 366]
description = \"season length, in periods\"

[settings.horizon]
type = \"int64\"
default = 8
range = [1, 500]

[settings.method]
type = \"text\"
default = \"auto\"
choices = [\"auto\", \"ets\"]

[settings.levels]
type = \"float64-list\"
default = [80, 95]
range = [50, 99.9]
"
    )
}

/// The settings-echo guest under the probe policy with `settings` as its `[settings]` table.
fn settings_case(settings: &str) -> Case {
    let case = Case::new();
    case.package(
        cordon_test_guests::SETTINGS_ECHO,
        &manifest_with_settings(),
        &[],
    );
    case.write("input.csv", &probe_table(2));
    let policy = probe_policy("")
        + "[audit]\nlog = \"out/audit.jsonl\"\nusage = \"out/usage.jsonl\"\n"
        + &format!("[settings]\n{settings}");
    case.write("policy.toml", &policy);
    case
}

fn outcomes(case: &Case) -> Vec<String> {
    read_csv(&case.path("out/results.csv"))
        .into_iter()
        .map(|row| row[1].clone())
        .collect()
}

/// Without a `[settings]` entry the model reads the manifest's defaults; with one, the
/// policy's value; the audit `grant` event records each value and where it came from.
#[test]
fn the_policy_sets_what_the_manifest_declares() {
    let case = settings_case("");
    case.run().unwrap();
    assert_eq!(
        outcomes(&case),
        vec!["period=4;horizon=8;method=auto;levels=80/95"; 2]
    );

    let case = settings_case("period = 12\nmethod = \"ets\"\nlevels = [90]\n");
    case.run().unwrap();
    assert_eq!(
        outcomes(&case),
        vec!["period=12;horizon=8;method=ets;levels=90"; 2]
    );
    let events = cordon::audit::read_events(&case.path("out/audit.jsonl")).unwrap();
    let grant = events.iter().find(|e| e["event"] == "grant").unwrap();
    let settings = grant["settings"].as_array().unwrap();
    let period = settings.iter().find(|s| s["name"] == "period").unwrap();
    assert_eq!(period["value"], 12);
    assert_eq!(period["origin"], "policy");
    let horizon = settings.iter().find(|s| s["name"] == "horizon").unwrap();
    assert_eq!(horizon["value"], 8);
    assert_eq!(horizon["origin"], "default");

    // `cordon check` says what the run would give the model.
    let output = case.cordon(&["check", "--package", "package", "--policy", "policy.toml"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("setting     period = 12 (set by the policy)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("setting     horizon = 8 (the manifest's default)"),
        "{stdout}"
    );
}

/// A value of the wrong type, outside the declared range or choices, or for a setting the
/// package does not declare is refused before anything runs, at its line of the policy.
#[test]
fn a_bad_setting_is_refused_at_its_line() {
    for (settings, expected) in [
        ("period = 12.5\n", "expected an integer, found float"),
        ("period = 0\n", "0 is outside the declared range 1 to 366"),
        (
            "method = \"arima\"\n",
            "\"arima\" is not one of \"auto\", \"ets\"",
        ),
        (
            "levels = [80, 100]\n",
            "100 is outside the declared range 50 to 99.9",
        ),
        (
            "seasons = 2\n",
            "which the package does not declare; it declares: horizon, levels, method, period",
        ),
    ] {
        let case = settings_case(settings);
        let message = case.run().unwrap_err().to_string();
        assert!(message.contains(expected), "{settings}: {message}");
        // The one setting is the policy's last line.
        let policy = std::fs::read_to_string(case.path("policy.toml")).unwrap();
        let line = policy.lines().count();
        assert!(
            message.contains(&format!("policy.toml:{line}:")),
            "{settings}: {message}"
        );
        assert!(!case.path("out/results.csv").exists());
    }
}

/// `cordon inspect` lists each setting with its type, default, bounds and description.
#[test]
fn inspect_lists_the_settings() {
    let case = settings_case("");
    let output = case.cordon(&["inspect", "package"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains(
            "setting       period (int64, default 4, in 1 to 366): season length, in periods"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("setting       method (text, default \"auto\", one of \"auto\", \"ets\")"),
        "{stdout}"
    );
    assert!(
        stdout.contains("setting       levels (float64-list, default [80, 95], in 50 to 99.9)"),
        "{stdout}"
    );
}

/// A model built against contract 0.2.0 still runs: its log reaches the run, and its
/// scores are written.
#[test]
fn a_contract_0_2_model_still_runs() {
    let case = Case::new();
    case.package(cordon_test_guests::CONTRACT_0_2, PROBE_MANIFEST, &[]);
    case.write("input.csv", &probe_table(3));
    case.write("policy.toml", &probe_policy(""));
    let summary = case.run().unwrap();
    assert_eq!(outcomes(&case), vec!["contract 0.2.0"; 3]);
    assert!(
        summary
            .guest_log
            .iter()
            .any(|record| record.message == "scored by a contract 0.2.0 model"),
        "{:?}",
        summary.guest_log
    );
}

/// A 0.2.0 model cannot read settings, so a manifest that declares them with one is refused by
/// name, before anything runs.
#[test]
fn a_contract_0_2_model_with_settings_is_refused() {
    let case = Case::new();
    case.package(
        cordon_test_guests::CONTRACT_0_2,
        &manifest_with_settings(),
        &[],
    );
    case.write("input.csv", &probe_table(3));
    case.write("policy.toml", &probe_policy(""));
    let error = case.run().unwrap_err();
    assert!(
        matches!(error, RunError::SettingsUnreadable { .. }),
        "{error}"
    );
    let message = error.to_string();
    assert!(message.contains("cordon:model@0.2.0"), "{message}");
    assert!(message.contains("cordon:model@0.4.0"), "{message}");
}

/// A model built against contract 0.3.0 still runs and reads its settings through 0.3.0's own
/// interface.
#[test]
fn a_contract_0_3_model_still_runs_and_reads_settings() {
    let case = Case::new();
    case.package(
        cordon_test_guests::CONTRACT_0_3,
        &manifest_with_settings(),
        &[],
    );
    case.write("input.csv", &probe_table(2));
    case.write(
        "policy.toml",
        &format!("{}\n[settings]\nperiod = 12\n", probe_policy("")),
    );
    let summary = case.run().unwrap();
    assert_eq!(outcomes(&case), vec!["contract 0.3.0, period 12"; 2]);
    assert!(
        summary
            .guest_log
            .iter()
            .any(|record| record.message == "scored by a contract 0.3.0 model"),
        "{:?}",
        summary.guest_log
    );
}

/// A 0.3.0 model cannot read encoders, so a manifest that declares one with it is refused by
/// name, before anything runs.
#[test]
fn a_contract_0_3_model_with_encoders_is_refused() {
    let case = Case::new();
    let package = case.package(
        cordon_test_guests::CONTRACT_0_3,
        &format!("{PROBE_MANIFEST}\n[[encoder]]\nname = \"features\"\nfile = \"features.toml\"\n"),
        &[],
    );
    std::fs::write(
        package.join("features.toml"),
        "encoder-version = 1\n[[column]]\nname = \"x\"\nencode = \"number\"\n",
    )
    .unwrap();
    case.write("input.csv", &probe_table(3));
    case.write("policy.toml", &probe_policy(""));
    let error = case.run().unwrap_err();
    assert!(
        matches!(error, RunError::EncodersUnreadable { .. }),
        "{error}"
    );
    let message = error.to_string();
    assert!(message.contains("cordon:model@0.3.0"), "{message}");
    assert!(message.contains("[[encoder]]"), "{message}");
}
