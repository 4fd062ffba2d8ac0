//! Builds every crate under `tests/guests/` and the example models for wasm32-wasip2, then
//! writes one `pub const NAME: &str = "<path to .wasm>"` per component.
//!
//! The nested cargo uses its own target directory: sharing the outer build's would deadlock on
//! its lock.

use std::error::Error;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Example models built from the main workspace: (package, constant).
const EXAMPLES: [(&str, &str); 2] = [
    ("churn-model", "CHURN_MODEL"),
    ("forecast-model", "FORECAST_MODEL"),
];

fn main() -> Result<(), Box<dyn Error>> {
    let tests_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let root = tests_dir.parent().ok_or("tests/ has no parent")?.to_owned();
    let target_dir = root.join("target").join("test-guests");
    let cargo = std::env::var("CARGO")?;

    let guests_dir = tests_dir.join("guests");
    let mut guests: Vec<String> = std::fs::read_dir(&guests_dir)?
        .filter_map(|entry| entry.ok())
        .filter(|entry| entry.path().join("Cargo.toml").is_file())
        .filter_map(|entry| entry.file_name().into_string().ok())
        .collect();
    guests.sort();

    build(
        &cargo,
        &guests_dir.join("Cargo.toml"),
        &["--workspace"],
        &target_dir,
    )?;
    // The library only: an example may carry native tools (bins) that have no place in a guest.
    let mut example_args = vec!["--lib"];
    for (package, _) in EXAMPLES {
        example_args.extend(["-p", package]);
    }
    build(&cargo, &root.join("Cargo.toml"), &example_args, &target_dir)?;

    let wasm_dir = target_dir.join("wasm32-wasip2").join("guest");
    let e2e_sources = read_sources(&tests_dir.join("e2e"))?;
    let mut code = String::new();
    let mut unused = Vec::new();
    for guest in &guests {
        let constant = guest.replace('-', "_").to_uppercase();
        if !e2e_sources.contains(&constant) {
            unused.push(guest.clone());
        }
        let wasm = wasm_dir.join(format!("{}.wasm", guest.replace('-', "_")));
        code.push_str(&format!(
            "/// tests/guests/{guest}\npub const {constant}: &str = {:?};\n",
            wasm.display().to_string()
        ));
    }
    for (package, constant) in EXAMPLES {
        let wasm = wasm_dir.join(format!("{}.wasm", package.replace('-', "_")));
        code.push_str(&format!(
            "/// The example package `{package}`\npub const {constant}: &str = {:?};\n",
            wasm.display().to_string()
        ));
    }
    if !unused.is_empty() {
        return Err(format!(
            "test guests used by no test in tests/e2e: {} (use them or delete them)",
            unused.join(", ")
        )
        .into());
    }
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out_dir.join("guests.rs"), code)?;

    for path in [
        guests_dir.as_path(),
        &tests_dir.join("e2e"),
        &root.join("guest-sdk"),
        &root.join("wit"),
        &root.join("examples"),
    ] {
        println!("cargo:rerun-if-changed={}", path.display());
    }
    Ok(())
}

fn build(
    cargo: &str,
    manifest: &Path,
    args: &[&str],
    target_dir: &Path,
) -> Result<(), Box<dyn Error>> {
    let mut command = Command::new(cargo);
    command
        .arg("build")
        .arg("--profile=guest")
        .arg("--target=wasm32-wasip2")
        .arg("--manifest-path")
        .arg(manifest)
        .arg("--target-dir")
        .arg(target_dir)
        .args(args);
    // The outer build's settings are for the host target; keep them away from the guests.
    for variable in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_BUILD_RUSTFLAGS",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTC_WRAPPER",
        "CARGO_MAKEFLAGS",
        "MAKEFLAGS",
        "MFLAGS",
    ] {
        command.env_remove(variable);
    }
    let status = command.status()?;
    if !status.success() {
        return Err(format!(
            "building the wasm guests of {} failed ({status})",
            manifest.display()
        )
        .into());
    }
    Ok(())
}

fn read_sources(dir: &Path) -> Result<String, Box<dyn Error>> {
    let mut text = String::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "rs") {
            text.push_str(&std::fs::read_to_string(&path)?);
        }
    }
    Ok(text)
}
