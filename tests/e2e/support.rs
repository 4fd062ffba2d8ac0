//! Building packages, policies and tables for a test, and running them.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use cordon::run::Quiet;
use cordon::{RunError, RunRequest, RunSummary, Runtime, RuntimeConfig};
pub use cordon_test_guests::{onnxruntime_library, root};
use cordon_test_guests::{with_replaced, with_setting};

/// The process's one runtime, with a compile cache in a temporary directory.
pub fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<(Runtime, tempfile::TempDir)> = OnceLock::new();
    &RUNTIME.get_or_init(|| new_runtime(false)).0
}

/// A runtime with a compile cache in a temporary directory (kept with it); graph admission can
/// be switched off, the test hook that shows what the inference jail alone stops.
pub fn new_runtime(skip_graph_admission_for_tests: bool) -> (Runtime, tempfile::TempDir) {
    let cache = tempfile::tempdir().unwrap();
    let runtime = Runtime::new(RuntimeConfig {
        onnxruntime: Some(onnxruntime_library()),
        cache_dir: Some(cache.path().to_owned()),
        // This process is the test binary: workers are the `cordon` binary.
        inference_worker: Some(env!("CARGO_BIN_EXE_cordon").into()),
        skip_graph_admission_for_tests,
    })
    .unwrap();
    (runtime, cache)
}

/// A package directory, a table, a policy and a sink in one temporary directory; and, in
/// another, the home directory and compile cache the `cordon` binary is given, so that no test
/// writes into the user's `~/.cache` (or reads a cache warmed by another test).
pub struct Case {
    pub dir: tempfile::TempDir,
    environment: tempfile::TempDir,
}

impl Case {
    pub fn new() -> Case {
        let environment = tempfile::tempdir().unwrap();
        std::fs::create_dir(environment.path().join("home")).unwrap();
        Case {
            dir: tempfile::tempdir().unwrap(),
            environment,
        }
    }

    /// The `HOME` (and `XDG_CACHE_HOME` below it) of the binary's runs: empty, and nothing
    /// may write into it.
    pub fn home(&self) -> PathBuf {
        self.environment.path().join("home")
    }

    /// The binary's compile cache (`CORDON_CACHE_DIR`) when a run names none.
    pub fn default_cache(&self) -> PathBuf {
        self.environment.path().join("cache")
    }

    /// The `cordon` binary, started in the case's directory with the case's home and cache,
    /// and no argument yet.
    pub fn bare_command(&self) -> std::process::Command {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_cordon"));
        command
            .current_dir(self.dir.path())
            .env("HOME", self.home())
            .env("XDG_CACHE_HOME", self.home().join(".cache"))
            .env("CORDON_CACHE_DIR", self.default_cache());
        command
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes the package: `cordon.toml`, `model.wasm` and any graphs under `graphs/`.
    pub fn package(&self, wasm: &str, manifest: &str, graphs: &[(&str, &Path)]) -> PathBuf {
        let package = self.path("package");
        std::fs::create_dir_all(package.join("graphs")).unwrap();
        std::fs::write(package.join("cordon.toml"), manifest).unwrap();
        std::fs::copy(wasm, package.join("model.wasm")).unwrap();
        for (name, source) in graphs {
            std::fs::copy(source, package.join("graphs").join(name)).unwrap();
        }
        package
    }

    /// The `cordon` binary, started in the case's directory; `--onnxruntime` is added to runs.
    pub fn command(&self, args: &[&str]) -> std::process::Command {
        let mut command = self.bare_command();
        command.args(args);
        if args.first() == Some(&"run") {
            command.arg("--onnxruntime").arg(onnxruntime_library());
        }
        // Test packages are build directories, as in local development; the signing tests
        // run .cordon files without this flag.
        if matches!(args.first(), Some(&"run" | &"check"))
            && !args.iter().any(|a| a.ends_with(".cordon"))
        {
            command.arg("--allow-unsigned");
        }
        command
    }

    /// Runs the `cordon` binary to completion.
    pub fn cordon(&self, args: &[&str]) -> std::process::Output {
        self.command(args).output().unwrap()
    }

    /// `cordon run --package package --policy policy.toml`, then `extra`, not yet started.
    pub fn run_command(&self, extra: &[&str]) -> std::process::Command {
        let mut args = vec!["run", "--package", "package", "--policy", "policy.toml"];
        args.extend_from_slice(extra);
        self.command(&args)
    }

    /// `cordon run` of the case's package and policy, then `extra`, to completion.
    pub fn run_cli(&self, extra: &[&str]) -> std::process::Output {
        self.run_command(extra).output().unwrap()
    }

    /// The `--json` summary of a `cordon run` (then `extra`) that must succeed.
    pub fn run_json(&self, extra: &[&str]) -> serde_json::Value {
        let output = self.run_cli(&[extra, &["--json"]].concat());
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).unwrap()
    }

    /// Points the policy's binding at another table.
    pub fn set_source(&self, source: &str) {
        let policy = std::fs::read_to_string(self.path("policy.toml")).unwrap();
        self.write(
            "policy.toml",
            &with_setting(&policy, "source", &format!("{source:?}")).unwrap(),
        );
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Runs the package in `package/` under `policy.toml` with the shared runtime.
    pub fn run(&self) -> Result<RunSummary, RunError> {
        self.run_as(None)
    }

    /// Runs as a policy role.
    pub fn run_as(&self, role: Option<&str>) -> Result<RunSummary, RunError> {
        runtime().run(&self.request(role), &Quiet)
    }

    /// The case's package under its policy, as a policy role.
    pub fn request(&self, role: Option<&str>) -> RunRequest {
        RunRequest {
            package_dir: self.path("package"),
            policy: self.path("policy.toml"),
            base_dir: self.dir.path().to_owned(),
            role: role.map(str::to_owned),
            // Test packages are build directories, as in local development.
            allow_unsigned: true,
        }
    }
}

/// The manifest of a probe guest: one float column in, one text column `outcome` out.
pub const PROBE_MANIFEST: &str = r#"
manifest-version = 1
[package]
name = "probe"
version = "0.0.0"
publisher = "tests"
license = "MIT"
description = "a test guest"
component = "model.wasm"
[input.rows]
mode = "row"
columns = [{ name = "x", type = "float64" }]
[output.results]
columns = [{ name = "outcome", type = "text" }]
"#;

/// A policy for the probe manifest; `limits` is inserted into the `[limits]` table.
pub fn probe_policy(limits: &str) -> String {
    format!(
        "version = 1\n[limits]\n{limits}\n[bind.rows]\nsource = \"input.csv\"\nkey = [\"id\"]\ncolumns = {{ x = \"x\" }}\n[emit.results]\nsink = \"out/results.csv\"\n"
    )
}

/// A small table: ids r0.. and x = 0, 1, 2, ...
pub fn probe_table(rows: usize) -> String {
    let mut text = String::from("id,x\n");
    for row in 0..rows {
        text.push_str(&format!("r{row},{row}\n"));
    }
    text
}

/// Runs a probe guest on a small table and returns the `outcome` column.
pub fn run_probe(wasm: &str, limits: &str) -> Result<Vec<String>, RunError> {
    let case = Case::new();
    case.package(wasm, PROBE_MANIFEST, &[]);
    case.write("input.csv", &probe_table(3));
    case.write("policy.toml", &probe_policy(limits));
    case.run()?;
    Ok(read_csv(&case.path("out/results.csv"))
        .into_iter()
        .map(|row| row[1].clone())
        .collect())
}

/// Rows of a CSV file without its header.
pub fn read_csv(path: &Path) -> Vec<Vec<String>> {
    csv::Reader::from_path(path)
        .unwrap()
        .records()
        .map(|r| r.unwrap().iter().map(str::to_owned).collect())
        .collect()
}

/// The churn example's policy, reading the example's table by absolute path; each
/// `(key, value)` replaces that line of its `[limits]`.
pub fn churn_policy(limits: &[(&str, &str)]) -> String {
    let csv = root().join("examples/churn/data/telco_churn.csv");
    let policy = std::fs::read_to_string(root().join("policies/churn.toml")).unwrap();
    let mut policy = with_replaced(
        &policy,
        "source = \"examples/churn/data/telco_churn.csv\"",
        &format!("source = {:?}", csv.display().to_string()),
    )
    .unwrap();
    for (key, value) in limits {
        policy = with_setting(&policy, key, value)
            .unwrap_or_else(|e| panic!("policies/churn.toml, limit `{key}`: {e}"));
    }
    policy
}

/// Sets up the churn example in a fresh case, under policies/churn.toml.
pub fn churn_case() -> Case {
    churn_case_with(&[])
}

/// Sets up the churn example in a fresh case, with some limits changed.
pub fn churn_case_with(limits: &[(&str, &str)]) -> Case {
    let case = Case::new();
    let manifest = std::fs::read_to_string(root().join("examples/churn/cordon.toml")).unwrap();
    let graph = root().join("examples/churn/graphs/churn_gbt.onnx");
    case.package(
        cordon_test_guests::CHURN_MODEL,
        &manifest,
        &[("churn_gbt.onnx", &graph)],
    );
    case.write("policy.toml", &churn_policy(limits));
    case
}

/// After a hostile guest: the same runtime still scores the churn example correctly.
pub fn assert_churn_still_scores() {
    let case = churn_case();
    let summary = case
        .run()
        .expect("the churn example no longer runs after a hostile guest");
    assert_eq!(summary.rows_out, 7043);
    let rows = read_csv(&case.path("out/churn_scores.csv"));
    assert_eq!(rows[0][0], "7590-VHVEG");
    let p: f64 = rows[0][1].parse().unwrap();
    assert!(
        (p - 0.8377808928489685).abs() < 1e-6,
        "first probability {p}"
    );
}

/// The model columns policies/churn.toml grants the churn example: what reaches the sandbox.
pub const CHURN_GRANTED_COLUMNS: [&str; 10] = [
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
];

/// The churn example's input and policy with the echo guest in place of the model: its
/// output `seen` lists every column name and value that reached guest memory.
pub fn echo_case() -> Case {
    let case = Case::new();
    let manifest = std::fs::read_to_string(root().join("examples/churn/cordon.toml")).unwrap();
    // The echo guest shows what the data plane hands over, masks included: values a mask
    // makes (`Mon`, a null tenure) are outside the churn model's domains, which are checked
    // by the tests that are about them.
    let manifest = without_domains(&manifest);
    let manifest = with_replaced(
        &manifest,
        "columns = [{ name = \"churn_probability\", type = \"float64\" }]",
        "columns = [{ name = \"seen\", type = \"text\" }]",
    )
    .unwrap();
    let manifest = with_replaced(
        &manifest,
        "[[graph]]\nname = \"churn_gbt\"\nfile = \"graphs/churn_gbt.onnx\"\nformat = \"onnx\"\ndevice = \"cpu\"\n",
        "",
    )
    .unwrap();
    case.package(cordon_test_guests::POLICY_ECHO_COLUMNS, &manifest, &[]);
    case.write("policy.toml", &churn_policy(&[]));
    case
}

/// A manifest whose one-line column specs keep only their name and type: no levels, range,
/// unit or `nullable`.
pub fn without_domains(manifest: &str) -> String {
    manifest
        .lines()
        .map(|line| {
            let spec = line.trim_start().starts_with("{ name = ");
            let type_value = line.find("type = \"").map(|at| at + "type = \"".len());
            let kept = type_value
                .filter(|_| spec)
                .and_then(|start| Some(start + line.get(start..)?.find('"')? + 1))
                .and_then(|end| line.get(..end));
            match kept {
                Some(kept) => format!("{kept} }},"),
                None => line.to_owned(),
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}
