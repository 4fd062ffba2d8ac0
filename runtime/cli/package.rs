//! The provider's commands: `cordon pack`, `cordon keygen`, `cordon sign`, and the consumer's
//! `cordon verify` and `cordon inspect` of what a provider shipped.

use std::path::Path;

use anyhow::Context;

use crate::args::current_dir;

pub fn pack(dir: &Path, out: &Path) -> anyhow::Result<()> {
    let package = cordon::package::Package::load(dir)?;
    refuse_unrunnable_graphs(&package)?;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let path = out.join(package.file_name());
    package.write(&path)?;
    println!(
        "{} ({} files, digest sha256:{}, unsigned)",
        path.display(),
        package.files.len(),
        package.digest()
    );
    Ok(())
}

/// A graph no consumer could run is refused before it is packed and signed: one that does not
/// read as ONNX, or that holds what Cordon never hands to ONNX Runtime whatever the policy
/// (external data, oversized tensors, inputs or outputs wasi:nn cannot carry). Operator domains
/// are the consumer's policy's to allow, so they are left to `cordon inspect` and the run.
pub(crate) fn refuse_unrunnable_graphs(package: &cordon::package::Package) -> anyhow::Result<()> {
    use cordon::nn::graph_info;
    for graph in &package.graphs {
        // The file name is the provider's string: escaped, so it cannot forge terminal output.
        let place = format!(
            "graph `{}` ({})",
            graph.spec.name,
            graph.spec.file.escape_debug()
        );
        let info = graph_info::read(&graph.bytes)
            .map_err(|error| anyhow::anyhow!("cannot pack: {place}: {error}"))?;
        if let Some(first) = info.refusals.first() {
            let more = info.refusals.len() as u64 - 1 + info.more_refusals;
            let rest = if more > 0 {
                format!(" (and {more} more: cordon inspect lists them)")
            } else {
                String::new()
            };
            anyhow::bail!("cannot pack: {place}: {first}{rest}");
        }
    }
    Ok(())
}

pub fn keygen(stem: &Path) -> anyhow::Result<()> {
    // `cordon keygen keys/acme` in a fresh project: the folder is made, as `pack --out` makes its.
    if let Some(folder) = stem.parent().filter(|f| !f.as_os_str().is_empty()) {
        std::fs::create_dir_all(folder)
            .with_context(|| format!("cannot create {}", folder.display()))?;
    }
    let key = cordon::signing::generate_key()?;
    let (private, public) = cordon::signing::write_key_pair(&key, stem)?;
    let verifying = key.verifying_key();
    println!("private key {} (keep it secret)", private.display());
    println!("public key  {}", public.display());
    println!("fingerprint {}", cordon::signing::fingerprint(&verifying));
    println!(
        "for a consumer's policy: [trust] <publisher> = [\"{}\"]",
        cordon::signing::policy_form(&verifying)
    );
    Ok(())
}

pub fn sign(key: &Path, package_path: &Path) -> anyhow::Result<()> {
    let key = cordon::signing::read_signing_key(key)?;
    let package = cordon::package::Package::load(package_path)?;
    let signature = cordon::signing::sign(&package, &key)?;
    // The archive's bytes stay as they are; the signature goes after them, replacing any earlier.
    cordon::archive::replace_signature(package_path, &signature)?;
    println!(
        "signed {} as {} with key {}",
        package_path.display(),
        package.manifest.publisher,
        cordon::signing::fingerprint(&key.verifying_key())
    );
    Ok(())
}

pub fn verify(package_path: &Path, policy_path: &Path) -> anyhow::Result<()> {
    let policy = cordon::policy::Policy::load(policy_path, &current_dir()?)?;
    let package = cordon::package::Package::load(package_path)?;
    let verified =
        cordon::signing::verify(&package, policy.trusted_keys(&package.manifest.publisher))?;
    println!(
        "ok: {} {} signed by {} with trusted key {}; {} files match the signed digests (sha256:{})",
        package.manifest.name,
        package.manifest.version,
        verified.publisher,
        verified.key_fingerprint,
        package.files.len(),
        verified.digest
    );
    Ok(())
}

pub fn inspect(package_path: &Path, policy_path: Option<&Path>, json: bool) -> anyhow::Result<()> {
    let package = cordon::package::Package::load(package_path)?;
    let policy = match policy_path {
        Some(path) => Some(cordon::policy::Policy::load(path, &current_dir()?)?),
        None => None,
    };
    let trusted = policy
        .as_ref()
        .map(|p| p.trusted_keys(&package.manifest.publisher));
    let rules = policy
        .as_ref()
        .map(cordon::policy::Policy::admission_rules)
        .unwrap_or_default();
    let mut inspection = cordon::inspect::inspect(&package, trusted, &rules);
    inspection.isolation = policy.as_ref().map(|p| p.inference.isolation.to_string());
    if json {
        println!("{}", serde_json::to_string_pretty(&inspection)?);
    } else {
        println!("{inspection}");
    }
    Ok(())
}
