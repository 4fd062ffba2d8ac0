//! The permissions screen (`cordon inspect`) and the component checks: a model that imports
//! anything outside the world Cordon offers is refused before it is compiled, naming the import.

use cordon_test_guests::with_setting;
use serde_json::Value;

use crate::packaging::{keygen, packed_churn, sign, trust};
use crate::support::{
    Case, PROBE_MANIFEST, churn_case, churn_case_with, probe_policy, probe_table,
};

fn inspect_json(case: &Case, args: &[&str]) -> Value {
    let mut all = vec!["inspect", "--json"];
    all.extend_from_slice(args);
    let output = case.cordon(&all);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
fn inspect_shows_what_a_signed_package_asks_for() {
    let case = churn_case();
    let key = keygen(&case, "acme");
    let package = packed_churn(&case);
    let package = package.to_str().unwrap();

    let unsigned = inspect_json(&case, &[package]);
    assert_eq!(unsigned["signature"]["status"], "unsigned");

    sign(&case, &key, std::path::Path::new(package));
    let unchecked = inspect_json(&case, &[package]);
    assert_eq!(unchecked["signature"]["status"], "not-checked");
    let fingerprint = unchecked["signature"]["key_fingerprint"].as_str().unwrap();
    assert!(fingerprint.starts_with("sha256:"), "{fingerprint}");

    // Against a policy that does not trust the key, then one that does.
    let refused = inspect_json(&case, &[package, "--policy", "policy.toml"]);
    assert_eq!(refused["signature"]["status"], "refused");
    trust(&case, &key.with_extension("pub"));
    let screen = inspect_json(&case, &[package, "--policy", "policy.toml"]);
    assert_eq!(screen["signature"]["status"], "verified");
    assert_eq!(screen["signature"]["key_fingerprint"], fingerprint);

    assert_eq!(screen["package"]["name"], "telco-churn");
    assert_eq!(screen["package"]["publisher"], "acme-analytics");
    let columns: Vec<&str> = screen["input"]["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert!(columns.contains(&"tenure") && columns.contains(&"contract"));
    assert_eq!(screen["output"]["columns"][0]["name"], "churn_probability");

    // The graph's operators, read from its bytes.
    let graph = &screen["graphs"][0];
    assert_eq!(graph["name"], "churn_gbt");
    assert!(graph["bytes"].as_u64().unwrap() > 1000);
    let operators = graph["info"]["operators"].as_object().unwrap();
    assert!(
        operators.keys().any(|op| op.contains("TreeEnsemble")),
        "{operators:?}"
    );

    // The component: accepted, its imports listed, wasi:nn among them.
    let component = &screen["component"];
    assert_eq!(component["verdict"], "accepted");
    let imports: Vec<&str> = component["world"]["imports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert!(
        imports.iter().any(|i| i.starts_with("wasi:nn/graph@")),
        "{imports:?}"
    );
    assert!(!imports.iter().any(|i| i.starts_with("wasi:sockets/")));
    assert_eq!(
        component["world"]["exports"],
        serde_json::json!(["cordon:model/scorer@0.4.0"])
    );
    let files: Vec<&str> = screen["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        files,
        ["cordon.toml", "graphs/churn_gbt.onnx", "model.wasm"]
    );

    // The text form says the same for people.
    let output = case.cordon(&["inspect", package, "--policy", "policy.toml"]);
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success());
    for expected in [
        "telco-churn 0.1.0 by acme-analytics",
        "signature     verified",
        fingerprint,
        "reads         `customers`, row mode",
        "graph         churn_gbt",
        "imports     wasi:nn/graph@",
        "nothing was run",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
}

/// A component with the given imports, each an empty instance, and no exports.
fn component_importing(imports: &[&str]) -> Vec<u8> {
    use wasm_encoder::{
        Component, ComponentImportSection, ComponentTypeRef, ComponentTypeSection, InstanceType,
    };
    let mut types = ComponentTypeSection::new();
    types.instance(&InstanceType::new());
    let mut section = ComponentImportSection::new();
    for name in imports {
        section.import(*name, ComponentTypeRef::Instance(0));
    }
    let mut component = Component::new();
    component.section(&types).section(&section);
    component.finish()
}

fn refused_case(wasm: &[u8]) -> (Case, String) {
    let case = Case::new();
    case.write("input.csv", &probe_table(3));
    case.write("policy.toml", &probe_policy(""));
    std::fs::write(case.path("made.wasm"), wasm).unwrap();
    case.package(
        case.path("made.wasm").to_str().unwrap(),
        PROBE_MANIFEST,
        &[],
    );
    let output = case.run_cli(&[]);
    assert_eq!(output.status.code(), Some(2));
    assert!(!case.path("out/results.csv").exists());
    (case, String::from_utf8_lossy(&output.stderr).into_owned())
}

#[test]
fn imports_outside_the_world_are_refused_by_name() {
    let (_, stderr) = refused_case(&component_importing(&[
        "wasi:cli/environment@0.2.6",
        "acme:exfil/upload@1.0.0",
    ]));
    assert!(
        stderr.contains("imports `acme:exfil/upload@1.0.0`")
            && stderr.contains("not part of the world Cordon offers"),
        "{stderr}"
    );

    let (case, stderr) = refused_case(&component_importing(&["wasi:http/outgoing-handler@0.2.6"]));
    assert!(
        stderr.contains("imports `wasi:http/outgoing-handler@0.2.6`")
            && stderr.contains("network access"),
        "{stderr}"
    );
    // The permissions screen marks it too, and `cordon check` refuses it.
    let text = String::from_utf8_lossy(&case.cordon(&["inspect", "package"]).stdout).into_owned();
    assert!(
        text.contains("REFUSED     wasi:http/outgoing-handler@0.2.6"),
        "{text}"
    );
    let check = case.cordon(&["check", "--package", "package", "--policy", "policy.toml"]);
    assert_eq!(check.status.code(), Some(2));

    // A model built against an older contract: refused by name, with what to do about it.
    let (_, stderr) = refused_case(&component_importing(&["cordon:model/types@0.1.0"]));
    assert!(
        stderr.contains("imports `cordon:model/types@0.1.0`")
            && stderr.contains("a version of Cordon's contract this host does not serve")
            && stderr.contains("cordon:model@0.4.0, 0.3.0 and 0.2.0"),
        "{stderr}"
    );

    // A component that imports nothing forbidden but exports no scorer.
    let (_, stderr) = refused_case(&component_importing(&["wasi:io/streams@0.2.6"]));
    assert!(
        stderr.contains("does not export `cordon:model/scorer@0.4.0`"),
        "{stderr}"
    );

    // A core module is not a component.
    let (_, stderr) = refused_case(b"\0asm\x01\0\0\0");
    assert!(
        stderr.contains("not a valid WebAssembly component"),
        "{stderr}"
    );
}

/// A description with terminal escapes and bidirectional overrides (to move the cursor up and
/// rewrite the signature line) is printed escaped; a version that is not semver (and would walk
/// out of `cordon pack --out`) is refused.
#[test]
fn inspect_escapes_what_a_provider_wrote() {
    let case = Case::new();
    let manifest = with_setting(
        PROBE_MANIFEST,
        "description",
        "\"scores churn\\u001b[1A\\r\\u001b[2Ksignature     verified\\u202egnp.exe\"",
    )
    .unwrap();
    case.package(cordon_test_guests::POLICY_ENV_PROBE, &manifest, &[]);
    let output = case.cordon(&["inspect", "package"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        !stdout.contains('\u{1b}') && !stdout.contains('\r') && !stdout.contains('\u{202e}'),
        "{stdout:?}"
    );
    assert!(
        stdout
            .contains("scores churn\\u{1b}[1A\\r\\u{1b}[2Ksignature     verified\\u{202e}gnp.exe"),
        "{stdout}"
    );

    let manifest = with_setting(PROBE_MANIFEST, "version", "\"0.1.0/../../x\"").unwrap();
    case.write("package/cordon.toml", &manifest);
    let output = case.cordon(&["pack", "package", "--out", "dist"]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("package.version: `0.1.0/../../x` is not a semantic version"),
        "{stderr}"
    );
    assert!(!case.path("x.cordon").exists() && !case.path("../x.cordon").exists());
}

/// `cordon check` warns, without refusing, where the policy's limits are below the package's
/// own resource hints at its batch size: the run would otherwise stop on the CPU limit the
/// consumer could have raised first. The example policies give what the hints ask.
#[test]
fn check_warns_when_the_limits_are_below_the_packages_hints() {
    let check = |case: &crate::support::Case| {
        let output = case.cordon(&["check", "--package", "package", "--policy", "policy.toml"]);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    // policies/churn.toml: 1,024-row batches of the hint's 1,000 fuel fit in its 2 billion.
    let stderr = check(&churn_case());
    assert!(!stderr.contains("warning"), "{stderr}");

    let stderr = check(&churn_case_with(&[
        ("fuel-per-batch", "100_000"),
        ("memory", "\"8 MiB\""),
    ]));
    assert!(
        stderr.contains("warning: limits.fuel-per-batch = 100000 is below the package's hint for a full batch: 1000 fuel per row x 1024 rows (limits.batch-rows) = 1024000; batches of more than 100 rows may stop on the CPU limit"),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "warning: limits.memory = \"8 MiB\" is below the package's hint, 16 MiB per instance"
        ),
        "{stderr}"
    );
}
