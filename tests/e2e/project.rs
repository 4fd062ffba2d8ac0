//! A provider's first steps outside this repository: `cordon new` makes a project that builds
//! as it is, `cordon build` compiles it and checks it, and `pack`, `keygen`, `sign` and a
//! consumer's `run` take it from there. Bad projects fail at `build` with the fault named.

use std::path::Path;

use cordon_test_guests::onnx_graphs;

use crate::support::{Case, read_csv, root};

/// `cordon` in `case` with the toolchain reachable: the case has a home of its own, and rustup
/// and cargo find their installations through it unless told.
fn cordon(case: &Case, args: &[&str]) -> std::process::Output {
    let mut command = case.bare_command();
    command.args(args);
    let home = std::env::var_os("HOME").map(std::path::PathBuf::from);
    for (variable, under_home) in [("RUSTUP_HOME", ".rustup"), ("CARGO_HOME", ".cargo")] {
        match (std::env::var_os(variable), &home) {
            (Some(value), _) => command.env(variable, value),
            (None, Some(home)) => command.env(variable, home.join(under_home)),
            (None, None) => &mut command,
        };
    }
    command.output().unwrap()
}

fn ok(output: &std::process::Output) -> String {
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn failed(output: &std::process::Output) -> String {
    assert_eq!(
        output.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn a_new_project_builds_packs_signs_and_runs() {
    let case = Case::new();
    let sdk = root().join("guest-sdk");
    let sdk = sdk.to_str().unwrap();
    let created = ok(&cordon(&case, &["new", "credit-model", "--sdk", sdk]));
    assert!(
        created.contains("created credit-model (6 files)"),
        "{created}"
    );
    for file in [
        "Cargo.toml",
        "rust-toolchain.toml",
        "src/lib.rs",
        "cordon.toml",
        "README.md",
    ] {
        assert!(case.path("credit-model").join(file).is_file(), "{file}");
    }
    // Not over an existing directory.
    let again = failed(&cordon(&case, &["new", "credit-model", "--sdk", sdk]));
    assert!(again.contains("exists already"), "{again}");

    let built = ok(&cordon(&case, &["build", "credit-model"]));
    assert!(
        built.contains("the manifest, 0 graph(s) and the component check out"),
        "{built}"
    );
    assert!(case.path("credit-model/model.wasm").is_file());

    ok(&cordon(&case, &["pack", "credit-model", "--out", "dist"]));
    // keygen makes the folder.
    ok(&cordon(&case, &["keygen", "keys/your-company"]));
    let package = "dist/credit-model-0.1.0.cordon";
    ok(&cordon(
        &case,
        &["sign", "--key", "keys/your-company.key", package],
    ));

    // The consumer's side: trust the key (a path to the .pub file), bind a table, run.
    case.write("input.csv", "id,x\na,0\nb,2\n");
    case.write(
        "policy.toml",
        "version = 1\n[trust]\nyour-company = [\"keys/your-company.pub\"]\n[bind.rows]\nsource = \"input.csv\"\nkey = [\"id\"]\ncolumns = { x = \"x\" }\n[emit.scores]\nsink = \"out/scores.csv\"\n",
    );
    let mut run = case.command(&["run", "--package", package, "--policy", "policy.toml"]);
    let output = run.output().unwrap();
    ok(&output);
    let rows = read_csv(&case.path("out/scores.csv"));
    assert_eq!(rows[0], ["a", "0.5"]);
    assert!(rows[1][1].parse::<f64>().unwrap() > 0.88);
}

/// A project `cordon new` made, in `case`, with `edit` applied to its manifest and `graph`
/// written as graphs/model.onnx (declared in the manifest) when given.
fn project(case: &Case, edit: impl Fn(&str) -> String, graph: Option<&[u8]>) -> &'static str {
    let sdk = root().join("guest-sdk");
    ok(&cordon(
        case,
        &["new", "model-x", "--sdk", sdk.to_str().unwrap()],
    ));
    let manifest = case.path("model-x/cordon.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(&manifest, edit(&text)).unwrap();
    if let Some(graph) = graph {
        std::fs::create_dir_all(case.path("model-x/graphs")).unwrap();
        std::fs::write(Path::new(&case.path("model-x/graphs/model.onnx")), graph).unwrap();
    }
    "model-x"
}

#[test]
fn build_refuses_a_graph_wasi_nn_cannot_feed_and_a_broken_manifest() {
    let case = Case::new();
    let dir = project(
        &case,
        |text| {
            format!(
                "{text}\n[[graph]]\nname = \"model\"\nfile = \"graphs/model.onnx\"\nformat = \"onnx\"\n"
            )
        },
        Some(&onnx_graphs::string_input()),
    );
    let stderr = failed(&cordon(&case, &["build", dir]));
    assert!(
        stderr.contains("cordon build: graph `model` (graphs/model.onnx): tensor `contract`: input is tensor(string)"),
        "{stderr}"
    );

    let case = Case::new();
    let dir = project(
        &case,
        |text| text.replace("type = \"float64\", range", "type = \"float65\", range"),
        None,
    );
    let stderr = failed(&cordon(&case, &["build", dir]));
    assert!(
        stderr.contains("model-x/cordon.toml: TOML parse error at line 17"),
        "{stderr}"
    );
    assert!(stderr.contains("unknown variant `float65`"), "{stderr}");
    assert_eq!(
        stderr.matches("unknown variant").count(),
        1,
        "said once: {stderr}"
    );
    // Nothing was compiled for a manifest that does not read.
    assert!(!case.path("model-x/model.wasm").exists());
}

/// `cordon test` on the churn example: its columns found in the raw Telco table by loose
/// names, its scores compared with the training script's own (onnxruntime's) within 1e-6, its
/// needs printed as `[resources]`; a tighter tolerance fails naming the column, and a sample
/// without a column the manifest reads is refused naming it.
#[test]
fn cordon_test_compares_with_a_reference_and_measures_needs() {
    let case = crate::support::churn_case();
    let sample = root().join("examples/churn/data/telco_churn.csv");
    let reference = root().join("examples/churn/training/reference.csv");
    let (sample, reference) = (sample.to_str().unwrap(), reference.to_str().unwrap());
    let test = |tolerance: &str| {
        let mut command = case.command(&[
            "test",
            "package",
            "--sample",
            sample,
            "--reference",
            reference,
            "--tolerance",
            tolerance,
            "--onnxruntime",
        ]);
        command.arg(crate::support::onnxruntime_library());
        command.output().unwrap()
    };
    let stdout = ok(&test("1e-6"));
    assert!(stdout.contains("7043 rows in, 7043 out"), "{stdout}");
    assert!(
        stdout.contains("churn_probability        max abs diff"),
        "{stdout}"
    );
    assert!(stdout.contains("(within tolerance 0.000001)"), "{stdout}");
    assert!(stdout.contains("[resources]\nmemory = \""), "{stdout}");
    let fuel: u64 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("fuel-per-row = "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap()
        .parse()
        .unwrap();
    // The example's own hint is 1,000; it measured about 520 a row at 1,024-row batches.
    assert!((300..1_000).contains(&fuel), "{stdout}");

    let stderr = failed(&test("1e-12"));
    assert!(
        stderr.contains("churn_probability differ from the reference by more than the tolerance"),
        "{stderr}"
    );

    case.write("thin.csv", "tenure,Contract\n1,One year\n");
    let output = case
        .command(&["test", "package", "--sample", "thin.csv"])
        .output()
        .unwrap();
    let stderr = failed(&output);
    assert!(
        stderr.contains(
            "thin.csv: no column for the manifest's input column(s) monthly_charges, total_charges"
        ),
        "{stderr}"
    );
}
