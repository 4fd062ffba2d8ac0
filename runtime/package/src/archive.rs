//! The `.cordon` file on disk: a tar archive compressed with zstd, written so that the same
//! files always give the same bytes, and read as hostile input.
//!
//! A package comes from someone else. Reading one must not let it write outside memory, make
//! the host allocate without bound, or smuggle in anything but plain files: every limit below is
//! checked before the bytes it guards are read, and every refusal names the limit.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Write};

use sha2::Digest;
use std::path::{Component, Path};

/// Every limit on a package file, in one place. `policies/README.md` and the README list them.
#[derive(Debug, Clone, Copy)]
pub struct ArchiveLimits {
    /// The `.cordon` file itself, compressed.
    pub max_package_bytes: u64,
    /// Files in the archive.
    pub max_files: usize,
    /// One file, uncompressed.
    pub max_file_bytes: u64,
    /// All files together, uncompressed.
    pub max_unpacked_bytes: u64,
    /// Uncompressed bytes per compressed byte of the package, past the first
    /// `ratio_free_bytes`: a decompression bomb stops here, long before it fills memory.
    pub max_ratio: u64,
    pub ratio_free_bytes: u64,
    /// Length of a file's path inside the archive.
    pub max_path_len: usize,
}

/// The limits Cordon reads packages under.
pub const LIMITS: ArchiveLimits = ArchiveLimits {
    max_package_bytes: 1 << 30,
    max_files: 256,
    max_file_bytes: 2 << 30,
    max_unpacked_bytes: 4 << 30,
    max_ratio: 200,
    ratio_free_bytes: 64 << 20,
    max_path_len: 200,
};

/// zstd level for packing: packages are written once and read many times.
const COMPRESSION_LEVEL: i32 = 19;

/// The zstd window the packer uses: 8 MiB, fixed, so that packing does not depend on the size.
const WINDOW_LOG: u32 = 23;

/// The zstd skippable-frame magic number that marks the signature after the archive.
/// Standard zstd tools skip such frames, so `tar --zstd -xf NAME.cordon` still unpacks the files.
const SIGNATURE_FRAME_MAGIC: u32 = 0x184D_2A5C;

/// What a package file holds: the archive (one zstd frame), the files in it and, after it, the
/// signature if there is one.
pub struct Contents {
    /// Every file of the archive, by name.
    pub files: BTreeMap<String, Vec<u8>>,
    /// SHA-256 of the compressed archive frame, exactly as stored: the signature covers it, so
    /// that no byte of the file can change unnoticed, compressed or not.
    pub archive_sha256: String,
    /// The signature frame's content.
    pub signature: Option<Vec<u8>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("{path}: cannot read the package")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: cannot write the package")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {what} is {size} bytes, over the limit of {limit} bytes ({limit_name})")]
    TooLarge {
        path: String,
        what: String,
        size: u64,
        limit: u64,
        limit_name: &'static str,
    },
    #[error(
        "{path}: unpacks to more than {ratio} times its compressed size (max_ratio): refused as a decompression bomb"
    )]
    Bomb { path: String, ratio: u64 },
    #[error("{path}: has more than {limit} files (max_files)")]
    TooManyFiles { path: String, limit: usize },
    #[error("{path}: entry `{entry}` is {kind}; a package holds plain files only")]
    NotAFile {
        path: String,
        entry: String,
        kind: String,
    },
    #[error("{path}: entry `{entry}`: {why}")]
    BadName {
        path: String,
        entry: String,
        why: &'static str,
    },
    #[error("{path}: entry `{entry}` appears twice")]
    Duplicate { path: String, entry: String },
    #[error("{path}: {why}; not a package written by `cordon pack`")]
    NotAPackage { path: String, why: String },
}

/// Checks a path inside a package: relative, plain components, a small alphabet, no `..`.
pub fn check_entry_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("the name is empty");
    }
    if name.len() > LIMITS.max_path_len {
        return Err("the name is longer than the limit (max_path_len)");
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/');
    if !name.chars().all(allowed) {
        return Err("names may hold only letters, digits, `.`, `_`, `-` and `/`");
    }
    if name.ends_with('/') || name.contains("//") {
        return Err("the name has an empty path component");
    }
    for component in Path::new(name).components() {
        if !matches!(component, Component::Normal(_)) {
            return Err("the path leaves the package (absolute, `.` or `..`)");
        }
    }
    Ok(())
}

/// Writes `files` (name -> bytes) as a package at `out`, deterministically: entries sorted by
/// name, every header field that could vary (time, owner, mode) fixed. A signature, if given,
/// follows the archive in a skippable frame.
pub fn write(
    files: &BTreeMap<String, Vec<u8>>,
    signature: Option<&[u8]>,
    out: &Path,
) -> Result<(), ArchiveError> {
    let display = out.display().to_string();
    let error = |source| ArchiveError::Write {
        path: display.clone(),
        source,
    };
    let mut bytes = compress(&tar_bytes(files).map_err(error)?).map_err(error)?;
    if let Some(signature) = signature {
        append_signature_frame(&mut bytes, signature).map_err(error)?;
    }
    write_package_file(out, &bytes).map_err(error)
}

/// Writes a package file atomically, readable by everyone (it holds nothing secret).
fn write_package_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    crate::files::write_atomically(path, bytes)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644))
}

/// Puts `signature` after the archive of the package at `path`, replacing any signature there.
/// The archive's bytes are kept exactly, since the signature covers their digest.
pub fn replace_signature(path: &Path, signature: &[u8]) -> Result<(), ArchiveError> {
    let display = path.display().to_string();
    let read_error = |source| ArchiveError::Read {
        path: display.clone(),
        source,
    };
    let bytes = std::fs::read(path).map_err(read_error)?;
    let frame_size = zstd::zstd_safe::find_frame_compressed_size(&bytes).map_err(|code| {
        ArchiveError::NotAPackage {
            path: display.clone(),
            why: format!(
                "it does not start with a zstd frame ({})",
                zstd::zstd_safe::get_error_name(code)
            ),
        }
    })?;
    let mut signed = bytes.get(..frame_size).unwrap_or_default().to_vec();
    append_signature_frame(&mut signed, signature).map_err(|source| ArchiveError::Write {
        path: display.clone(),
        source,
    })?;
    write_package_file(path, &signed).map_err(|source| ArchiveError::Write {
        path: display.clone(),
        source,
    })
}

fn append_signature_frame(bytes: &mut Vec<u8>, signature: &[u8]) -> std::io::Result<()> {
    let size = u32::try_from(signature.len())
        .map_err(|_| std::io::Error::other("the signature is too large"))?;
    bytes.extend_from_slice(&SIGNATURE_FRAME_MAGIC.to_le_bytes());
    bytes.extend_from_slice(&size.to_le_bytes());
    bytes.extend_from_slice(signature);
    Ok(())
}

/// The archive's files as tar bytes, the same bytes for the same files.
fn tar_bytes(files: &BTreeMap<String, Vec<u8>>) -> std::io::Result<Vec<u8>> {
    let mut tar_bytes = Vec::new();
    let mut builder = tar::Builder::new(&mut tar_bytes);
    for (name, bytes) in files {
        let mut header = tar::Header::new_ustar();
        header.set_path(name)?;
        header.set_size(bytes.len() as u64);
        header.set_entry_type(tar::EntryType::Regular);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        header.set_cksum();
        builder.append(&header, bytes.as_slice())?;
    }
    builder.finish()?;
    drop(builder);
    Ok(tar_bytes)
}

/// Compresses tar bytes as the packer does: one zstd frame with fixed parameters and a checksum
/// of its content.
pub fn compress(tar_bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    use zstd::zstd_safe::CParameter;
    let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), COMPRESSION_LEVEL)?;
    encoder.set_parameter(CParameter::ChecksumFlag(true))?;
    encoder.set_parameter(CParameter::WindowLog(WINDOW_LOG))?;
    encoder.write_all(tar_bytes)?;
    encoder.finish()
}

/// Reads the package at `path`: its files, the digest of its archive and its signature, checking
/// each limit before reading what it guards.
pub fn read(path: &Path) -> Result<Contents, ArchiveError> {
    let display = path.display().to_string();
    let read_error = |source| ArchiveError::Read {
        path: display.clone(),
        source,
    };
    let file = File::open(path).map_err(read_error)?;
    let metadata = file.metadata().map_err(read_error)?;
    if !metadata.is_file() {
        return Err(ArchiveError::NotAFile {
            path: display.clone(),
            entry: display.clone(),
            kind: "not a regular file".into(),
        });
    }
    let compressed_size = metadata.len();
    if compressed_size > LIMITS.max_package_bytes {
        return Err(ArchiveError::TooLarge {
            path: display.clone(),
            what: "the package".into(),
            size: compressed_size,
            limit: LIMITS.max_package_bytes,
            limit_name: "max_package_bytes",
        });
    }
    let mut bytes = Vec::with_capacity(usize::try_from(compressed_size).unwrap_or(0));
    let mut file = file;
    file.read_to_end(&mut bytes).map_err(read_error)?;
    let not_a_package = |why: String| ArchiveError::NotAPackage {
        path: display.clone(),
        why,
    };
    let frame_size = zstd::zstd_safe::find_frame_compressed_size(&bytes).map_err(|code| {
        not_a_package(format!(
            "it does not start with a zstd frame ({})",
            zstd::zstd_safe::get_error_name(code)
        ))
    })?;
    let (frame, trailer) = bytes.split_at(frame_size.min(bytes.len()));
    let signature = read_signature_frame(trailer).map_err(not_a_package)?;

    let decoder = zstd::stream::read::Decoder::with_buffer(frame)
        .map_err(read_error)?
        .single_frame();
    let budget = LIMITS
        .max_unpacked_bytes
        .min(LIMITS.ratio_free_bytes + compressed_size.saturating_mul(LIMITS.max_ratio));
    let counted = BudgetReader {
        inner: decoder,
        left: budget,
    };
    let mut archive = tar::Archive::new(counted);
    let files = read_entries(&mut archive, &display)?;
    // Read to the end of the frame: that is where zstd checks its content checksum.
    std::io::copy(&mut archive.into_inner(), &mut std::io::sink())
        .map_err(|e| bomb_or(e, &display))?;
    Ok(Contents {
        files,
        archive_sha256: hex::encode(sha2::Sha256::digest(frame)),
        signature,
    })
}

/// What follows the archive frame: nothing, or exactly one signature frame.
fn read_signature_frame(trailer: &[u8]) -> Result<Option<Vec<u8>>, String> {
    if trailer.is_empty() {
        return Ok(None);
    }
    let field = |range: std::ops::Range<usize>| -> Option<u32> {
        let bytes: [u8; 4] = trailer.get(range)?.try_into().ok()?;
        Some(u32::from_le_bytes(bytes))
    };
    match (field(0..4), field(4..8)) {
        (Some(SIGNATURE_FRAME_MAGIC), Some(size)) if trailer.len() - 8 == size as usize => {
            Ok(trailer.get(8..).map(<[u8]>::to_vec))
        }
        (Some(SIGNATURE_FRAME_MAGIC), Some(size)) => Err(format!(
            "the signature frame says {size} bytes, but {} follow",
            trailer.len() - 8
        )),
        _ => Err(format!(
            "{} bytes after the archive are not a signature frame",
            trailer.len()
        )),
    }
}

/// The archive's entries as files, each checked before its bytes are read.
fn read_entries<R: Read>(
    archive: &mut tar::Archive<R>,
    display: &str,
) -> Result<BTreeMap<String, Vec<u8>>, ArchiveError> {
    let display = display.to_owned();
    let read_error = |source| ArchiveError::Read {
        path: display.clone(),
        source,
    };
    let mut files = BTreeMap::new();
    let entries = archive.entries().map_err(|e| bomb_or(e, &display))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| bomb_or(e, &display))?;
        let name = entry
            .path()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_else(|_| "<not UTF-8>".into());
        let kind = entry.header().entry_type();
        if kind != tar::EntryType::Regular {
            return Err(ArchiveError::NotAFile {
                path: display.clone(),
                entry: name,
                kind: entry_kind(kind),
            });
        }
        check_entry_name(&name).map_err(|why| ArchiveError::BadName {
            path: display.clone(),
            entry: name.clone(),
            why,
        })?;
        let size = entry.header().size().map_err(read_error)?;
        if size > LIMITS.max_file_bytes {
            return Err(ArchiveError::TooLarge {
                path: display.clone(),
                what: format!("entry `{name}`"),
                size,
                limit: LIMITS.max_file_bytes,
                limit_name: "max_file_bytes",
            });
        }
        if files.len() >= LIMITS.max_files {
            return Err(ArchiveError::TooManyFiles {
                path: display.clone(),
                limit: LIMITS.max_files,
            });
        }
        if files.contains_key(&name) {
            return Err(ArchiveError::Duplicate {
                path: display.clone(),
                entry: name,
            });
        }
        // The declared size passed its limit, but the reader below is what bounds memory: it
        // stops at the budget whatever the header says.
        let mut bytes = Vec::new();
        entry
            .by_ref()
            .take(size)
            .read_to_end(&mut bytes)
            .map_err(|e| bomb_or(e, &display))?;
        if bytes.len() as u64 != size {
            return Err(read_error(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("entry `{name}` is cut short"),
            )));
        }
        files.insert(name, bytes);
    }
    Ok(files)
}

fn entry_kind(kind: tar::EntryType) -> String {
    match kind {
        tar::EntryType::Symlink => "a symbolic link".into(),
        tar::EntryType::Link => "a hard link".into(),
        tar::EntryType::Char | tar::EntryType::Block => "a device file".into(),
        tar::EntryType::Directory => "a directory".into(),
        tar::EntryType::Fifo => "a named pipe".into(),
        other => format!("a {other:?} entry"),
    }
}

/// The budget reader's error becomes the named bomb error; any other stays a read error.
fn bomb_or(error: std::io::Error, path: &str) -> ArchiveError {
    if error
        .get_ref()
        .is_some_and(|inner| inner.is::<OverBudget>())
    {
        ArchiveError::Bomb {
            path: path.to_owned(),
            ratio: LIMITS.max_ratio,
        }
    } else {
        ArchiveError::Read {
            path: path.to_owned(),
            source: error,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the package unpacks to more than its budget")]
struct OverBudget;

/// Fails once more than `left` bytes have been read through it.
struct BudgetReader<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for BudgetReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let read = self.inner.read(buf)?;
        self.left = self
            .left
            .checked_sub(read as u64)
            .ok_or_else(|| std::io::Error::other(OverBudget))?;
        Ok(read)
    }
}
