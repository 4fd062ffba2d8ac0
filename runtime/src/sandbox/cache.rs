//! The on-disk cache of compiled components.
//!
//! Compiling a component takes about 100 ms; loading a compiled one about a quarter of a
//! millisecond. Entries are keyed by the SHA-256 of the component and a hash of the engine's
//! configuration and wasmtime version, and carry the SHA-256 of their own bytes: a truncated,
//! corrupted or foreign entry is detected, reported and rebuilt, never executed.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

use crate::data::write_atomically;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case", tag = "outcome", content = "reason")]
pub enum CacheOutcome {
    /// Loaded a compiled component from the cache.
    Hit,
    /// Compiled and stored.
    Miss,
    /// An entry was present but unusable; compiled and replaced.
    Rebuilt(String),
    /// No cache directory: compiled in memory.
    Disabled,
}

pub struct CompileCache {
    dir: Option<PathBuf>,
}

impl CompileCache {
    pub fn new(dir: Option<PathBuf>) -> Self {
        CompileCache { dir }
    }

    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// The compiled component for `wasm`, from the cache when a valid entry exists.
    pub fn load(
        &self,
        engine: &Engine,
        wasm: &[u8],
    ) -> wasmtime::Result<(Component, CacheOutcome)> {
        let Some(dir) = &self.dir else {
            return Ok((Component::new(engine, wasm)?, CacheOutcome::Disabled));
        };
        let key = cache_key(engine, wasm);
        let artifact = dir.join(format!("{key}.cwasm"));
        let checksum = dir.join(format!("{key}.sha256"));

        let outcome = match read_verified(&artifact, &checksum) {
            Ok(Some(bytes)) => {
                // SAFETY: `deserialize` runs native code from these bytes. They are the output of
                // `precompile_component` from this engine configuration (the key says so), their
                // SHA-256 matches the one written beside them, and wasmtime checks the header and
                // engine compatibility. The cache directory belongs to the consumer running cordon.
                match unsafe { Component::deserialize(engine, &bytes) } {
                    Ok(component) => return Ok((component, CacheOutcome::Hit)),
                    Err(error) => {
                        CacheOutcome::Rebuilt(format!("wasmtime refused the entry: {error}"))
                    }
                }
            }
            Ok(None) => CacheOutcome::Miss,
            Err(reason) => CacheOutcome::Rebuilt(reason),
        };

        let compiled = engine.precompile_component(wasm)?;
        // SAFETY: these bytes were produced by `precompile_component` of this engine just now.
        let component = unsafe { Component::deserialize(engine, &compiled)? };
        // A cache that cannot be written is not an error: the run goes on, compiled in memory.
        let digest = hex::encode(Sha256::digest(&compiled));
        if write_atomically(&artifact, &compiled).is_ok() {
            let _ = write_atomically(&checksum, digest.as_bytes());
        }
        Ok((component, outcome))
    }
}

fn cache_key(engine: &Engine, wasm: &[u8]) -> String {
    let mut engine_hasher = std::collections::hash_map::DefaultHasher::new();
    engine
        .precompile_compatibility_hash()
        .hash(&mut engine_hasher);
    env!("CARGO_PKG_VERSION").hash(&mut engine_hasher);
    format!(
        "{}-{:016x}",
        hex::encode(Sha256::digest(wasm)),
        engine_hasher.finish()
    )
}

/// The entry's bytes if both files exist and agree; `Ok(None)` if there is no entry;
/// `Err(reason)` if there is one that must not be used.
fn read_verified(artifact: &Path, checksum: &Path) -> Result<Option<Vec<u8>>, String> {
    let bytes = match std::fs::read(artifact) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(format!("cannot read {}: {error}", artifact.display())),
    };
    let expected = std::fs::read_to_string(checksum)
        .map_err(|error| format!("cannot read {}: {error}", checksum.display()))?;
    let actual = hex::encode(Sha256::digest(&bytes));
    if expected.trim() != actual {
        return Err(format!(
            "{} does not match its checksum (truncated or corrupted)",
            artifact.display()
        ));
    }
    Ok(Some(bytes))
}
