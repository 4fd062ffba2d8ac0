//! The on-disk cache of compiled components.
//!
//! Compiling a component takes about 100 ms; loading a compiled one about a quarter of a
//! millisecond. Loading runs native code from the cache's bytes, so an entry is used only when
//! it provably is what this process would compile itself:
//! - its file name is the key: SHA-256 over the package's digest (which covers the component's
//!   own digest), the engine's configuration hash and the wasmtime version
//!   ([`WASMTIME_VERSION`]);
//! - its first bytes are a header with a magic string, that same key and the SHA-256 of the
//!   compiled bytes that follow.
//!
//! A truncated, corrupted or foreign entry (another package's, another engine's, or not
//! Cordon's at all) is detected, reported and rebuilt, never executed. Entries are written to a
//! temporary file and renamed, so a crash never leaves half an entry under a valid name.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

use crate::data::write_atomically;

/// The version of wasmtime this binary is built with (from Cargo.lock, by build.rs).
pub const WASMTIME_VERSION: &str = env!("CORDON_WASMTIME_VERSION");

/// The first bytes of every entry.
const MAGIC: &[u8; 16] = b"cordon-cwasm-v1\n";

/// Header: magic, the key in hex, the SHA-256 of the compiled bytes.
const HEADER_LEN: usize = MAGIC.len() + 64 + 32;

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

    /// The compiled component for `wasm`, the component of the package whose root digest is
    /// `package_digest`, from the cache when a valid entry exists.
    pub fn load(
        &self,
        engine: &Engine,
        package_digest: &str,
        wasm: &[u8],
    ) -> wasmtime::Result<(Component, CacheOutcome)> {
        let Some(dir) = &self.dir else {
            return Ok((Component::new(engine, wasm)?, CacheOutcome::Disabled));
        };
        let key = cache_key(engine, package_digest);
        let entry = dir.join(format!("{key}.cwasm"));

        let outcome = match read_verified(&entry, &key) {
            Ok(Some(compiled)) => {
                // SAFETY: `deserialize` runs native code from these bytes. Their header names
                // this very key (this package, this engine configuration, this wasmtime), their
                // SHA-256 matches the header's, and wasmtime checks its own header and engine
                // compatibility again. The cache directory belongs to the consumer running cordon.
                match unsafe { Component::deserialize(engine, &compiled) } {
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
        let mut bytes = Vec::with_capacity(HEADER_LEN + compiled.len());
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(key.as_bytes());
        bytes.extend_from_slice(&Sha256::digest(&compiled));
        bytes.extend_from_slice(&compiled);
        let _ = write_atomically(&entry, &bytes);
        Ok((component, outcome))
    }
}

fn cache_key(engine: &Engine, package_digest: &str) -> String {
    let mut engine_hasher = std::collections::hash_map::DefaultHasher::new();
    engine
        .precompile_compatibility_hash()
        .hash(&mut engine_hasher);
    let mut key = Sha256::new();
    for part in [
        MAGIC.as_slice(),
        package_digest.as_bytes(),
        &engine_hasher.finish().to_le_bytes(),
        WASMTIME_VERSION.as_bytes(),
        env!("CARGO_PKG_VERSION").as_bytes(),
    ] {
        // Length-prefixed, so that no two different sets of parts hash alike.
        key.update((part.len() as u64).to_le_bytes());
        key.update(part);
    }
    hex::encode(key.finalize())
}

/// The compiled bytes of the entry at `path` if it is whole and made for `key`; `Ok(None)` if
/// there is no entry; `Err(reason)` if there is one that must not be used.
fn read_verified(path: &Path, key: &str) -> Result<Option<Vec<u8>>, String> {
    let mut bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(format!("cannot read {}: {error}", path.display())),
    };
    if bytes.len() < HEADER_LEN || !bytes.starts_with(MAGIC) {
        return Err(format!(
            "{} is not a Cordon cache entry (foreign or truncated before its header)",
            path.display()
        ));
    }
    let (header, compiled) = bytes.split_at(HEADER_LEN);
    let (entry_key, checksum) = header.split_at(MAGIC.len()).1.split_at(64);
    if entry_key != key.as_bytes() {
        return Err(format!(
            "{} was made for another package, engine or wasmtime version (foreign)",
            path.display()
        ));
    }
    if checksum != Sha256::digest(compiled).as_slice() {
        return Err(format!(
            "{} does not match its checksum (truncated or corrupted)",
            path.display()
        ));
    }
    Ok(Some(bytes.split_off(HEADER_LEN)))
}
