//! A provider's project: `cordon new` writes one that builds as it is, `cordon build` compiles
//! its component with the target and profile a package needs, puts it where the manifest says
//! and checks the manifest, the graphs and the component as `cordon pack` and a run would.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

#[derive(clap::Args)]
pub struct NewArgs {
    /// The project's directory; its last component is the model's name (letters, digits, `_`
    /// and `-`, starting with a letter).
    dir: PathBuf,
    /// The guest SDK (`guest-sdk/` of a Cordon checkout) [default: $CORDON_GUEST_SDK, else the
    /// checkout this cordon binary was built in]
    #[arg(long, value_name = "DIR")]
    sdk: Option<PathBuf>,
}

#[derive(clap::Args)]
pub struct BuildArgs {
    /// The project's directory (holding Cargo.toml and cordon.toml).
    #[arg(default_value = ".")]
    dir: PathBuf,
}

pub fn new(args: NewArgs) -> anyhow::Result<()> {
    let name = args
        .dir
        .file_name()
        .and_then(|n| n.to_str())
        .context("the project's directory needs a name")?
        .to_owned();
    cordon::names::Name::try_from(name.clone())
        .map_err(|why| anyhow::anyhow!("`{name}` cannot name a model: {why}"))?;
    if !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
        bail!("`{name}` cannot name a crate: start it with a letter");
    }
    let sdk = guest_sdk(args.sdk)?;
    if args.dir.exists() {
        bail!(
            "{} exists already; cordon new writes a new directory",
            args.dir.display()
        );
    }
    let files = template(&name, &sdk);
    // Written into a temporary directory beside the target, then renamed: a failure leaves
    // nothing half-written.
    let parent = match args.dir.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
        _ => PathBuf::from("."),
    };
    let staging = tempfile::Builder::new()
        .prefix(".cordon-new-")
        .tempdir_in(&parent)
        .with_context(|| format!("cannot write in {}", parent.display()))?;
    for (path, text) in &files {
        let path = staging.path().join(path);
        if let Some(folder) = path.parent() {
            std::fs::create_dir_all(folder)?;
        }
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    let staged = staging.keep();
    std::fs::rename(&staged, &args.dir)
        .with_context(|| format!("cannot create {}", args.dir.display()))?;
    println!("created {} ({} files):", args.dir.display(), files.len());
    for (path, _) in &files {
        println!("  {path}");
    }
    println!(
        "next: cargo test --manifest-path {0}/Cargo.toml (the model natively), then cordon build {0}",
        args.dir.display()
    );
    Ok(())
}

/// Where the guest SDK is: the flag, the environment, or the checkout this binary was built
/// in (its path is compiled in; a binary copied elsewhere needs one of the others).
fn guest_sdk(flag: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let built_in = Path::new(env!("CARGO_MANIFEST_DIR")).join("../guest-sdk");
    let sdk = flag
        .or_else(|| std::env::var_os("CORDON_GUEST_SDK").map(PathBuf::from))
        .unwrap_or(built_in);
    let sdk = sdk.canonicalize().with_context(|| {
        format!(
            "no guest SDK at {}: pass --sdk <checkout>/guest-sdk or set CORDON_GUEST_SDK",
            sdk.display()
        )
    })?;
    if !sdk.join("Cargo.toml").is_file() {
        bail!(
            "{} holds no Cargo.toml: pass --sdk <checkout>/guest-sdk or set CORDON_GUEST_SDK",
            sdk.display()
        );
    }
    Ok(sdk)
}

/// The project's files: a cdylib crate with the guest profile, its toolchain, a model that
/// builds and passes its test, a manifest that matches it, and a README.
fn template(name: &str, sdk: &Path) -> Vec<(&'static str, String)> {
    // A TOML string: a path with `"` or `\` in it stays one string.
    let sdk_path = crate::sample::toml_string(&sdk.display().to_string());
    vec![
        (
            "Cargo.toml",
            format!(
                r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"
publish = false

# A component for Cordon (cdylib) and the same code natively for its tests (rlib).
[lib]
crate-type = ["cdylib", "rlib"]

[dependencies]
cordon-guest = {{ path = {sdk_path} }}

# What `cordon build` compiles with: no debug info in what ships inside a package.
[profile.guest]
inherits = "release"
debug = false
strip = true
codegen-units = 1

# A project of its own, even inside another workspace.
[workspace]
"#
            ),
        ),
        (
            "rust-toolchain.toml",
            r#"# The toolchain Cordon's host is built with; rustup installs it and the target.
[toolchain]
channel = "1.97"
targets = ["wasm32-wasip2"]
profile = "minimal"
"#
            .to_owned(),
        ),
        (".gitignore", "/target\n/model.wasm\n/dist\n".to_owned()),
        (
            "src/lib.rs",
            format!(
                r#"//! {name}: a model for Cordon. Cordon calls `score` with a batch of the columns the
//! manifest's input declares (as the consumer's policy grants them) and writes the columns the
//! manifest's output declares. Replace `risk` with the model; keep it a plain function, so that
//! the test below runs it natively.

use cordon_guest::{{Batch, BatchBuilder, Model, ModelError, ModelInfo}};

struct Scorer;

/// The model itself, for one row: here a placeholder, a logistic curve of `x`.
pub fn risk(x: f64) -> f64 {{
    1.0 / (1.0 + (-x).exp())
}}

impl Model for Scorer {{
    fn describe() -> ModelInfo {{
        ModelInfo::new("{name}", env!("CARGO_PKG_VERSION"), "a model for Cordon")
    }}

    fn score(input: &Batch) -> Result<Batch, ModelError> {{
        // A null reaches the model only where the manifest allows it (nullable = true).
        let scores = input
            .f64s("x")?
            .iter()
            .map(|x| x.map_or(f64::NAN, risk))
            .collect();
        BatchBuilder::new().f64("score", scores).build()
    }}
}}

cordon_guest::export_model!(Scorer);

#[cfg(test)]
mod tests {{
    use super::*;

    #[test]
    fn risk_is_a_probability() {{
        assert_eq!(risk(0.0), 0.5);
        assert!(risk(5.0) > 0.99 && risk(-5.0) < 0.01);
    }}
}}
"#
            ),
        ),
        (
            "cordon.toml",
            format!(
                r#"# The package manifest: what this model asks for. The consumer's policy decides what it gets.
# Every key: guest-sdk/MANIFEST.md in the Cordon checkout.
manifest-version = 1

[package]
name = "{name}"
version = "0.1.0"
publisher = "your-company"
license = "Apache-2.0"
description = "What the model predicts, from what"
# `cordon build` puts the compiled component here.
component = "model.wasm"

[input.rows]
mode = "row"
columns = [
  {{ name = "x", type = "float64", range = [-100, 100], nullable = false }},
]

[output.scores]
columns = [
  {{ name = "score", type = "float64" }},
]

# Graphs the model runs through wasi:nn, one table each:
# [[graph]]
# name = "model"
# file = "graphs/model.onnx"
# format = "onnx"

# Feature encoders (scripts/export-sklearn.py writes one from a fitted ColumnTransformer),
# read with cordon_guest::encoders::get("features"):
# [[encoder]]
# name = "features"
# file = "encoders/features.toml"

# What one instance needs: measure with `cordon run` (its summary prints peak memory and fuel).
[resources]
memory = "16 MiB"
fuel-per-row = 1_000
"#
            ),
        ),
        (
            "README.md",
            format!(
                r#"# {name}

A model for Cordon, made by `cordon new`.

```sh
cargo test                                   # the model's code, natively
cordon build .                               # model.wasm, checked with the manifest and graphs
cordon pack . --out dist                     # dist/{name}-0.1.0.cordon
cordon keygen keys/your-company              # once; keep the .key secret
cordon sign --key keys/your-company.key dist/{name}-0.1.0.cordon
```

Give consumers the package and `keys/your-company.pub`; they run it under a policy of theirs.
Edit `src/lib.rs` (the model), `cordon.toml` (what it reads and writes, its graphs, what it
needs) together: `cordon build` says where they disagree.
"#
            ),
        ),
    ]
}

pub fn build(args: BuildArgs) -> anyhow::Result<()> {
    let dir = &args.dir;
    let manifest_path = dir.join("cordon.toml");
    // The manifest first: it says where the component goes, and a broken one is the first
    // thing to fix.
    let manifest = cordon::manifest::Manifest::load(&manifest_path)?;
    if !dir.join("Cargo.toml").is_file() {
        bail!(
            "{} has no Cargo.toml: cordon build compiles a model crate (cordon new makes one)",
            dir.display()
        );
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(&cargo)
        .current_dir(dir)
        .args([
            "build",
            "--profile",
            "guest",
            "--target",
            "wasm32-wasip2",
            "--lib",
            "--message-format",
            "json-render-diagnostics",
        ])
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("cannot start {}", PathBuf::from(&cargo).display()))?;
    if !output.status.success() {
        bail!(
            "cargo build --profile guest --target wasm32-wasip2 failed in {} (its errors are above; is the target installed? rustup target add wasm32-wasip2)",
            dir.display()
        );
    }
    let wasm = component_artifact(&output.stdout).with_context(|| {
        format!(
            "cargo built no .wasm component in {}: is the crate's [lib] crate-type [\"cdylib\"]?",
            dir.display()
        )
    })?;
    let target = dir.join(&manifest.component);
    let staging = target.with_extension("wasm.partial");
    std::fs::copy(&wasm, &staging)
        .with_context(|| format!("cannot write {}", staging.display()))?;
    std::fs::rename(&staging, &target)
        .with_context(|| format!("cannot write {}", target.display()))?;

    // What `cordon pack` and a run check: the whole package as it would be packed, its graphs,
    // and the component's imports and exports.
    let package = cordon::package::Package::load(dir)?;
    crate::package::refuse_unrunnable_graphs(&package).map_err(|e| {
        anyhow::anyhow!(
            "{}",
            e.to_string().replacen("cannot pack", "cordon build", 1)
        )
    })?;
    let facts = cordon::inspect::inspect(
        &package,
        None,
        &cordon::nn::graph_info::AdmissionRules::default(),
    );
    if let Some(why) = facts.component.verdict.strip_prefix("refused: ") {
        bail!("{}: {why}", target.display());
    }
    println!(
        "built {} ({} KiB) from {}; the manifest, {} graph(s), {} encoder(s) and the component check out",
        target.display(),
        package.component.len() / 1024,
        wasm.display(),
        package.graphs.len(),
        package.manifest.encoders.len()
    );
    println!("next: cordon pack {} --out dist", dir.display());
    Ok(())
}

/// The `.wasm` file of the cdylib cargo reported building, from its JSON messages.
fn component_artifact(messages: &[u8]) -> Option<PathBuf> {
    let mut found = None;
    for line in messages.split(|b| *b == b'\n') {
        let Ok(message) = serde_json::from_slice::<serde_json::Value>(line) else {
            continue;
        };
        if message.get("reason").and_then(|r| r.as_str()) != Some("compiler-artifact") {
            continue;
        }
        let is_cdylib = message
            .pointer("/target/kind")
            .and_then(|kinds| kinds.as_array())
            .is_some_and(|kinds| kinds.iter().any(|k| k == "cdylib"));
        if !is_cdylib {
            continue;
        }
        if let Some(files) = message.get("filenames").and_then(|f| f.as_array()) {
            found = files
                .iter()
                .filter_map(|f| f.as_str())
                .find(|f| f.ends_with(".wasm"))
                .map(PathBuf::from)
                .or(found);
        }
    }
    found
}
