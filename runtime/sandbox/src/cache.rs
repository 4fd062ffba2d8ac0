//! The on-disk cache of compiled components.
//!
//! Compiling a component takes about 100 ms; loading a compiled one about a quarter of a
//! millisecond. Loading runs native code from the cache's bytes, in the host, outside the
//! sandbox: whoever can write an entry that is loaded runs code as the consumer. So an entry is
//! used only when it provably is what this user's Cordon compiled itself:
//! - its file name is the key: SHA-256 over the package's digest (which covers the component's
//!   own digest), the engine's configuration hash and the wasmtime version
//!   ([`WASMTIME_VERSION`]);
//! - its first bytes are a header with a magic string, that same key and an HMAC-SHA256 of
//!   magic, key and compiled bytes under a secret of this user's (`<dir>/key`, 32 random bytes,
//!   mode 0600, created on first use). A plain digest would not do: everything it covers is
//!   public, so anyone who can write the directory (a shared `CORDON_CACHE_DIR`, a cache
//!   restored in CI) could plant code with a header recomputed to match.
//!
//! The directory must be owned by this user and writable by no one else (it is created 0700);
//! anything else is an error naming it, never a silent fallback, since the key beside the
//! entries is only as secret as the directory. Entries and the key are opened without following
//! links and must be regular files. A truncated, corrupted, planted or foreign entry (another
//! package's, another engine's, another key's, or not Cordon's at all) is detected, reported
//! and rebuilt, never executed. Entries are written to a temporary file and renamed, so a crash
//! never leaves half an entry under a valid name.

use std::fs::{File, OpenOptions};
use std::hash::{Hash, Hasher};
use std::io::Read;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

use cordon_package::files::write_atomically;

/// The version of wasmtime this binary is built with (from Cargo.lock, by build.rs).
pub const WASMTIME_VERSION: &str = env!("CORDON_WASMTIME_VERSION");

/// The first bytes of every entry. v2: the header carries a MAC, not a plain digest.
const MAGIC: &[u8; 16] = b"cordon-cwasm-v2\n";

/// The magic of the unauthenticated format before it, recognised only to say why such an entry
/// is rebuilt.
const MAGIC_V1: &[u8; 16] = b"cordon-cwasm-v1\n";

/// Header: magic, the key in hex, the HMAC-SHA256 of magic, key and compiled bytes.
const HEADER_LEN: usize = MAGIC.len() + 64 + 32;

/// The secret's file name inside the cache directory, and its length.
const KEY_FILE: &str = "key";
const KEY_LEN: usize = 32;

/// A cache directory or key that must not be used: another user could plant native code
/// through it, or read the secret that authenticates entries.
#[derive(Debug, thiserror::Error)]
pub enum CacheDirError {
    #[error("compile cache {}: cannot use it: {source}", dir.display())]
    Io {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("compile cache {}: not a directory", dir.display())]
    NotADirectory { dir: PathBuf },
    #[error(
        "compile cache {}: owned by uid {owner}, not by this user (uid {uid}); whoever owns it could plant native code that Cordon runs. Use a directory of your own (--cache-dir or CORDON_CACHE_DIR) or --no-cache", dir.display()
    )]
    Owner { dir: PathBuf, owner: u32, uid: u32 },
    #[error(
        "compile cache {}: mode {mode:04o} lets {who} write to it, and so plant native code that Cordon runs; `chmod go-w` it (Cordon creates it 0700) or use --no-cache", dir.display()
    )]
    Writable {
        dir: PathBuf,
        mode: u32,
        who: &'static str,
    },
    #[error("compile cache key {}: {why}; delete it to have a new one made", path.display())]
    Key { path: PathBuf, why: String },
}

/// What is checked of the cache directory, apart from the file system so that the rules can
/// be tested with any owner.
#[derive(Debug, Clone, Copy)]
struct DirFacts {
    is_dir: bool,
    owner: u32,
    mode: u32,
}

impl DirFacts {
    fn of(metadata: &std::fs::Metadata) -> DirFacts {
        DirFacts {
            is_dir: metadata.is_dir(),
            owner: metadata.uid(),
            mode: metadata.mode() & 0o7777,
        }
    }
}

/// A directory another user owns, or one group or others may write, is refused: its owner or
/// writers could replace entries and the key. (Root is refused another user's directory too:
/// that user could have Cordon run their code as root.)
fn check_dir(dir: &Path, facts: DirFacts, uid: u32) -> Result<(), CacheDirError> {
    if !facts.is_dir {
        return Err(CacheDirError::NotADirectory {
            dir: dir.to_owned(),
        });
    }
    if facts.owner != uid {
        return Err(CacheDirError::Owner {
            dir: dir.to_owned(),
            owner: facts.owner,
            uid,
        });
    }
    let who = match (facts.mode & 0o020 != 0, facts.mode & 0o002 != 0) {
        (true, true) => Some("its group and others"),
        (true, false) => Some("its group"),
        (false, true) => Some("others"),
        (false, false) => None,
    };
    match who {
        Some(who) => Err(CacheDirError::Writable {
            dir: dir.to_owned(),
            mode: facts.mode,
            who,
        }),
        None => Ok(()),
    }
}

/// This process's effective user id: the owner of what it creates.
fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions, cannot fail and touches no memory of ours.
    unsafe { libc::geteuid() }
}

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

/// A checked cache directory and its secret.
struct CacheDir {
    path: PathBuf,
    key: [u8; KEY_LEN],
}

pub struct CompileCache {
    dir: Option<CacheDir>,
}

impl CompileCache {
    /// The cache in `dir` (created 0700 if missing), its key read or made; `None` compiles
    /// every time. A directory or key another user could have touched is an error.
    pub fn new(dir: Option<PathBuf>) -> Result<Self, CacheDirError> {
        let Some(path) = dir else {
            return Ok(CompileCache { dir: None });
        };
        let io = |source| CacheDirError::Io {
            dir: path.clone(),
            source,
        };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&path)
            .map_err(io)?;
        // The directory as the consumer named it, a link to it followed: where it points is
        // what must be theirs.
        let metadata = std::fs::metadata(&path).map_err(io)?;
        check_dir(&path, DirFacts::of(&metadata), effective_uid())?;
        let key = read_or_create_key(&path)?;
        Ok(CompileCache {
            dir: Some(CacheDir { path, key }),
        })
    }

    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_ref().map(|dir| dir.path.as_path())
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
        let entry = dir.path.join(format!("{key}.cwasm"));

        let outcome = match read_verified(&entry, &key, &dir.key) {
            Ok(Some(compiled)) => {
                // SAFETY: `deserialize` runs native code from these bytes. Their header names
                // this very key (this package, this engine configuration, this wasmtime), and
                // their MAC under this user's secret matches, so this user's Cordon wrote them;
                // wasmtime checks its own header and engine compatibility again.
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
        let _ = write_atomically(&entry, &entry_bytes(&key, &dir.key, &compiled));
        Ok((component, outcome))
    }
}

/// An entry: the header, then the compiled bytes.
fn entry_bytes(key: &str, secret: &[u8; KEY_LEN], compiled: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(HEADER_LEN + compiled.len());
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(key.as_bytes());
    bytes.extend_from_slice(&hmac_sha256(secret, &[MAGIC, key.as_bytes(), compiled]));
    bytes.extend_from_slice(compiled);
    bytes
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

/// HMAC-SHA256 (RFC 2104) of the concatenated `parts` under `key`.
fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let hashed;
    let key = if key.len() > BLOCK {
        hashed = Sha256::digest(key);
        hashed.as_slice()
    } else {
        key
    };
    let mut block = [0u8; BLOCK];
    for (slot, byte) in block.iter_mut().zip(key) {
        *slot = *byte;
    }
    let mut inner = Sha256::new();
    inner.update(block.map(|b| b ^ 0x36));
    for part in parts {
        inner.update(part);
    }
    let mut outer = Sha256::new();
    outer.update(block.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

/// Equal in time independent of where they differ: a comparison that stops early would let
/// someone who can time loads find a valid MAC byte by byte.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Opens `path` for reading without following a link (`O_NOFOLLOW`) and without blocking on a
/// FIFO planted in its place (`O_NONBLOCK`), and checks it is a regular file.
fn open_regular(path: &Path) -> std::io::Result<(File, std::fs::Metadata)> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|error| {
            if error.raw_os_error() == Some(libc::ELOOP) {
                std::io::Error::other("it is a symbolic link")
            } else {
                error
            }
        })?;
    let metadata = file.metadata()?;
    if !metadata.is_file() {
        return Err(std::io::Error::other("it is not a regular file"));
    }
    Ok((file, metadata))
}

/// The secret in `<dir>/key`, made on first use: 32 bytes from the operating system's random
/// source, written to a temporary file (0600) and linked into place, so that two processes
/// starting at once agree on one whole key and none ever reads half of one.
fn read_or_create_key(dir: &Path) -> Result<[u8; KEY_LEN], CacheDirError> {
    let path = dir.join(KEY_FILE);
    let key_error = |why: String| CacheDirError::Key {
        path: path.clone(),
        why,
    };
    if std::fs::symlink_metadata(&path).is_err() {
        let mut secret = [0u8; KEY_LEN];
        getrandom::fill(&mut secret)
            .map_err(|e| key_error(format!("no random bytes for a new key: {e}")))?;
        // tempfile creates its files 0600, with O_EXCL.
        let mut temp = tempfile::Builder::new()
            .prefix(".key-")
            .tempfile_in(dir)
            .map_err(|e| key_error(format!("cannot create: {e}")))?;
        std::io::Write::write_all(&mut temp, &secret)
            .and_then(|()| temp.as_file().sync_all())
            .map_err(|e| key_error(format!("cannot write: {e}")))?;
        match std::fs::hard_link(temp.path(), &path) {
            Ok(()) => {}
            // Another process made one first: use theirs.
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(error) => return Err(key_error(format!("cannot create: {error}"))),
        }
    }
    let (mut file, metadata) =
        open_regular(&path).map_err(|e| key_error(format!("cannot read: {e}")))?;
    let uid = effective_uid();
    if metadata.uid() != uid {
        return Err(key_error(format!(
            "owned by uid {}, not by this user (uid {uid})",
            metadata.uid()
        )));
    }
    let mode = metadata.mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(key_error(format!(
            "mode {mode:04o} lets others read or change it; it must be 0600"
        )));
    }
    let mut secret = [0u8; KEY_LEN];
    let mut rest = Vec::new();
    file.read_exact(&mut secret)
        .and_then(|()| file.read_to_end(&mut rest))
        .map_err(|e| key_error(format!("not a key of {KEY_LEN} bytes: {e}")))?;
    if !rest.is_empty() {
        return Err(key_error(format!("longer than {KEY_LEN} bytes")));
    }
    Ok(secret)
}

/// The compiled bytes of the entry at `path` if it is whole, made for `key` and carries this
/// user's MAC; `Ok(None)` if there is no entry; `Err(reason)` if there is one that must not be
/// used.
fn read_verified(
    path: &Path,
    key: &str,
    secret: &[u8; KEY_LEN],
) -> Result<Option<Vec<u8>>, String> {
    let mut bytes = Vec::new();
    match open_regular(path) {
        Ok((mut file, _)) => file
            .read_to_end(&mut bytes)
            .map_err(|error| format!("cannot read {}: {error}", path.display()))?,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(format!("cannot use {}: {error}", path.display())),
    };
    if bytes.starts_with(MAGIC_V1) {
        return Err(format!(
            "{} is in the unauthenticated format of an earlier Cordon (v1)",
            path.display()
        ));
    }
    if bytes.len() < HEADER_LEN || !bytes.starts_with(MAGIC) {
        return Err(format!(
            "{} is not a Cordon cache entry (foreign or truncated before its header)",
            path.display()
        ));
    }
    let (header, compiled) = bytes.split_at(HEADER_LEN);
    let (entry_key, mac) = header.split_at(MAGIC.len()).1.split_at(64);
    if entry_key != key.as_bytes() {
        return Err(format!(
            "{} was made for another package, engine or wasmtime version (foreign)",
            path.display()
        ));
    }
    let expected = hmac_sha256(secret, &[MAGIC, entry_key, compiled]);
    if !constant_time_eq(mac, &expected) {
        return Err(format!(
            "{} failed its MAC check under this user's cache key (planted, truncated, corrupted or written under another key)",
            path.display()
        ));
    }
    Ok(Some(bytes.split_off(HEADER_LEN)))
}

#[cfg(test)]
mod tests;
