//! Flag groups that more than one subcommand takes, declared once and flattened into each.

use std::path::{Path, PathBuf};

use anyhow::Context;
use cordon::{RunRequest, RuntimeConfig};

/// Which package to run under which policy, and as whom.
#[derive(clap::Args)]
pub struct ModelArgs {
    /// The package: a signed .cordon file, or a build directory holding cordon.toml.
    #[arg(long)]
    pub package: PathBuf,
    /// Accept a package that is not signed. For local development only: a run prints a
    /// warning and its audit trail records it.
    #[arg(long)]
    pub allow_unsigned: bool,
    /// The consumer's policy file.
    #[arg(long)]
    pub policy: PathBuf,
    /// The policy role to run as (required when the policy defines roles).
    #[arg(long)]
    pub role: Option<String>,
}

impl ModelArgs {
    /// The request, with the policy's relative paths resolved against the current directory.
    pub fn request(&self) -> anyhow::Result<RunRequest> {
        Ok(RunRequest {
            package_dir: self.package.clone(),
            policy: self.policy.clone(),
            base_dir: current_dir()?,
            role: self.role.clone(),
            allow_unsigned: self.allow_unsigned,
        })
    }
}

/// Where this process finds ONNX Runtime and keeps compiled components.
#[derive(clap::Args)]
pub struct RuntimeArgs {
    /// libonnxruntime.so [default: $ORT_DYLIB_PATH, else the copy scripts/setup.sh installs
    /// under .onnxruntime/ in the current directory]
    #[arg(long, value_name = "FILE")]
    pub onnxruntime: Option<PathBuf>,
    /// Where compiled components are cached [default: $CORDON_CACHE_DIR, else
    /// $XDG_CACHE_HOME/cordon, else ~/.cache/cordon]
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Compile the component on every run.
    #[arg(long, conflicts_with = "cache_dir")]
    pub no_cache: bool,
}

impl RuntimeArgs {
    /// The runtime's configuration: the flags, else the environment, else the defaults.
    pub fn config(&self) -> anyhow::Result<RuntimeConfig> {
        let base_dir = current_dir()?;
        let onnxruntime = self
            .onnxruntime
            .clone()
            .or_else(|| std::env::var_os("ORT_DYLIB_PATH").map(PathBuf::from))
            .or_else(|| find_installed_onnxruntime(&base_dir));
        let cache_dir = if self.no_cache {
            None
        } else {
            self.cache_dir.clone().or_else(default_cache_dir)
        };
        Ok(RuntimeConfig {
            onnxruntime,
            cache_dir,
            // Inference workers are this binary, re-executed.
            inference_worker: None,
            skip_graph_admission_for_tests: false,
        })
    }
}

pub fn current_dir() -> anyhow::Result<PathBuf> {
    std::env::current_dir().context("cannot read the current directory")
}

/// The library `scripts/setup.sh` installs: `.onnxruntime/onnxruntime/capi/libonnxruntime.so.*`.
fn find_installed_onnxruntime(base_dir: &Path) -> Option<PathBuf> {
    let capi = base_dir.join(".onnxruntime/onnxruntime/capi");
    let mut candidates: Vec<PathBuf> = std::fs::read_dir(capi)
        .ok()?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| {
            path.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("libonnxruntime.so"))
        })
        .collect();
    candidates.sort();
    candidates.pop()
}

fn default_cache_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("CORDON_CACHE_DIR") {
        return Some(PathBuf::from(dir));
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
        return Some(PathBuf::from(dir).join("cordon"));
    }
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache/cordon"))
}
