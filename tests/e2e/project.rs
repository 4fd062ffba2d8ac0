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
        built.contains("the manifest, 0 graph(s), 0 encoder(s) and the component check out"),
        "{built}"
    );
    assert!(case.path("credit-model/model.wasm").is_file());

    let package = pack_and_sign(&case);

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

/// `cordon pack` of `credit-model/` into `dist/`, a new key (keygen makes its folder) and
/// `cordon sign` with it; the signed package's path.
fn pack_and_sign(case: &Case) -> &'static str {
    ok(&cordon(case, &["pack", "credit-model", "--out", "dist"]));
    ok(&cordon(case, &["keygen", "keys/your-company"]));
    let package = "dist/credit-model-0.1.0.cordon";
    ok(&cordon(
        case,
        &["sign", "--key", "keys/your-company.key", package],
    ));
    package
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

/// A Python with the exporter's pinned requirements (scripts/export-sklearn-requirements.txt),
/// in a virtual environment under target/ made on first use from the package registry and
/// kept while the requirements stay the same.
fn provider_python() -> std::path::PathBuf {
    static READY: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = READY.lock().unwrap_or_else(|e| e.into_inner());
    let requirements = root().join("scripts/export-sklearn-requirements.txt");
    let wanted = std::fs::read_to_string(&requirements).unwrap();
    let venv = root().join("target/provider-venv");
    let python = venv.join("bin/python");
    let stamp = venv.join("requirements.txt");
    if python.is_file() && std::fs::read_to_string(&stamp).ok().as_deref() == Some(&wanted) {
        return python;
    }
    let run = |command: &mut std::process::Command| {
        let output = command.output().unwrap();
        assert!(
            output.status.success(),
            "{:?}: {}",
            command,
            String::from_utf8_lossy(&output.stderr)
        );
    };
    run(std::process::Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv));
    run(std::process::Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-r",
        ])
        .arg(&requirements));
    std::fs::write(&stamp, wanted).unwrap();
    python
}

/// The walkthrough's scikit-learn path, outside the repository: `cordon new`, a pipeline with
/// text and number columns trained and exported by the exporter (an encoder and a graph),
/// the walkthrough's model code, `cordon build`, `cordon test` against the pipeline's own
/// `predict_proba` within 1e-6, `pack`, `sign` and `inspect` showing the encoder and the
/// levels it feeds into the columns' domains.
#[test]
fn a_scikit_learn_pipeline_becomes_a_tested_signed_package() {
    let python = provider_python();
    let case = Case::new();
    let sdk = root().join("guest-sdk");
    ok(&cordon(
        &case,
        &["new", "credit-model", "--sdk", sdk.to_str().unwrap()],
    ));
    let project = case.path("credit-model");
    let python_ok = |args: &[&std::ffi::OsStr]| {
        let output = std::process::Command::new(&python)
            .current_dir(&project)
            .args(args)
            .output()
            .unwrap();
        ok(&output)
    };
    let train = sdk.join("walkthrough/train_credit.py");
    python_ok(&[train.as_os_str(), "training".as_ref()]);
    let export = root().join("scripts/export-sklearn.py");
    let exported = python_ok(
        &[
            export.as_os_str(),
            "training/credit.joblib".as_ref(),
            "--graph".as_ref(),
            "credit".as_ref(),
            "--sample".as_ref(),
            "training/sample.csv".as_ref(),
            "--reference".as_ref(),
            "training/reference.csv".as_ref(),
            "--output".as_ref(),
            "default_probability".as_ref(),
        ][..],
    );
    assert!(
        exported.contains("wrote encoders/features.toml (5 columns, 13 features per row)"),
        "{exported}"
    );
    assert!(
        exported
            .contains("the encoder reproduces the ColumnTransformer on 500 sample rows exactly"),
        "{exported}"
    );

    // The manifest as the walkthrough edits it: the exporter's columns, encoder and graph.
    let manifest = std::fs::read_to_string(project.join("cordon.toml")).unwrap();
    let manifest = manifest
        .replace(
            "  { name = \"x\", type = \"float64\", range = [-100, 100], nullable = false },\n",
            "  { name = \"age\", type = \"float64\", range = [18, 100] },\n  { name = \"income\", type = \"float64\" },\n  { name = \"purpose\", type = \"text\" },\n  { name = \"housing\", type = \"text\" },\n  { name = \"employment\", type = \"text\", nullable = false },\n",
        )
        .replace("name = \"score\"", "name = \"default_probability\"")
        + "\n[[encoder]]\nname = \"features\"\nfile = \"encoders/features.toml\"\n\n[[graph]]\nname = \"credit\"\nfile = \"graphs/credit.onnx\"\nformat = \"onnx\"\n";
    std::fs::write(project.join("cordon.toml"), manifest).unwrap();
    std::fs::copy(
        sdk.join("walkthrough/credit_model.rs"),
        project.join("src/lib.rs"),
    )
    .unwrap();

    let built = ok(&cordon(&case, &["build", "credit-model"]));
    assert!(
        built.contains("the manifest, 1 graph(s), 1 encoder(s) and the component check out"),
        "{built}"
    );

    let mut test = case.command(&[
        "test",
        "credit-model",
        "--sample",
        "credit-model/training/sample.csv",
        "--reference",
        "credit-model/training/reference.csv",
        "--tolerance",
        "1e-6",
        "--onnxruntime",
    ]);
    test.arg(crate::support::onnxruntime_library());
    let tested = ok(&test.output().unwrap());
    assert!(tested.contains("500 rows in, 500 out"), "{tested}");
    assert!(
        tested.contains("default_probability      max abs diff")
            && tested.contains("(within tolerance 0.000001)"),
        "{tested}"
    );

    let package = pack_and_sign(&case);
    let inspected = ok(&cordon(&case, &["inspect", package]));
    assert!(
        inspected.contains(
            "encoder       features (encoders/features.toml): 13 features from age (number), income (number), purpose (one-hot, 6 levels), housing (one-hot, 4 levels), employment (ordinal, 5 levels)"
        ),
        "{inspected}"
    );
    // The encoder's levels are the columns' domains.
    assert!(
        inspected.contains("domain      employment: one of \"none\", \"under 1 year\""),
        "{inspected}"
    );
}
