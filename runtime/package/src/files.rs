//! The one atomic file writer of the host: a file appears at its path complete and synced, or
//! not at all. Sinks write through [`PendingFile`]; the compile cache, archives, keys and plots
//! through [`write_atomically`], which is the same writer for bytes already in memory.

use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// A file that appears at its path only when committed, complete and synced.
///
/// On Linux it is created unnamed (`O_TMPFILE`) in the target's directory: a run that fails, or
/// is killed with SIGKILL, leaves nothing behind, not even a temporary file. At commit it is
/// linked under a temporary name and renamed over the target, so readers see the old file or
/// the whole new one. Elsewhere, or where the file system lacks `O_TMPFILE`, a named temporary
/// file beside the target is used and removed on failure. Either way the file is the owner's
/// alone (mode 0600): it holds the consumer's keys beside the model's scores.
pub struct PendingFile {
    path: PathBuf,
    dir: PathBuf,
    /// Set when the fallback named temporary file is in use.
    named: Option<tempfile::TempPath>,
}

impl PendingFile {
    pub fn create(path: &Path) -> std::io::Result<(File, PendingFile)> {
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_owned();
        std::fs::create_dir_all(&dir)?;
        #[cfg(target_os = "linux")]
        {
            use std::os::unix::fs::OpenOptionsExt;
            let unnamed = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .mode(0o600)
                .custom_flags(libc::O_TMPFILE)
                .open(&dir);
            if let Ok(file) = unnamed {
                let pending = PendingFile {
                    path: path.to_owned(),
                    dir,
                    named: None,
                };
                return Ok((file, pending));
            }
        }
        let (file, temp_path) = tempfile::Builder::new()
            .prefix(".cordon-")
            .suffix(".partial")
            .tempfile_in(&dir)?
            .into_parts();
        Ok((
            file,
            PendingFile {
                path: path.to_owned(),
                dir,
                named: Some(temp_path),
            },
        ))
    }

    /// Syncs `file` (the one `create` returned) and puts it in place.
    pub fn commit(self, file: File) -> std::io::Result<()> {
        file.sync_all()?;
        match self.named {
            Some(temp_path) => temp_path.persist(&self.path).map_err(|e| e.error)?,
            None => {
                let staged = self.link_staged(&file)?;
                if let Err(error) = std::fs::rename(&staged, &self.path) {
                    let _ = std::fs::remove_file(&staged);
                    return Err(error);
                }
            }
        }
        // Make the new directory entry durable too.
        File::open(&self.dir)?.sync_all()
    }
}

impl PendingFile {
    /// Names the unnamed file beside its target, under a random name: in a directory others
    /// can write to, a name they could guess would let them block the write by creating it
    /// first. Tries a few names before giving up.
    fn link_staged(&self, file: &File) -> std::io::Result<PathBuf> {
        let mut last_error = None;
        for _ in 0..8 {
            let staged = self
                .dir
                .join(format!(".cordon-{:016x}.partial", random_u64()?));
            match link_unnamed(file, &staged) {
                Ok(()) => return Ok(staged),
                Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
                    last_error = Some(error);
                }
                Err(error) => return Err(error),
            }
        }
        Err(last_error.unwrap_or_else(|| std::io::Error::other("no free temporary name")))
    }
}

fn random_u64() -> std::io::Result<u64> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(u64::from_le_bytes(bytes))
}

/// Gives an `O_TMPFILE` file a name.
#[cfg(target_os = "linux")]
fn link_unnamed(file: &File, name: &Path) -> std::io::Result<()> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::io::AsRawFd;
    let source = CString::new(format!("/proc/self/fd/{}", file.as_raw_fd()))?;
    let target = CString::new(name.as_os_str().as_bytes())?;
    // SAFETY: both are valid NUL-terminated paths that outlive the call; linkat reads them and
    // touches no other memory. AT_SYMLINK_FOLLOW through /proc/self/fd is the documented way to
    // link an O_TMPFILE file without CAP_DAC_READ_SEARCH.
    let result = unsafe {
        libc::linkat(
            libc::AT_FDCWD,
            source.as_ptr(),
            libc::AT_FDCWD,
            target.as_ptr(),
            libc::AT_SYMLINK_FOLLOW,
        )
    };
    if result == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(not(target_os = "linux"))]
fn link_unnamed(_file: &File, _name: &Path) -> std::io::Result<()> {
    Err(std::io::Error::other("unnamed files exist only on Linux"))
}

/// Writes `bytes` to `path` through a [`PendingFile`]: readers see the old file or the whole
/// new one.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let (mut file, pending) = PendingFile::create(path)?;
    file.write_all(bytes)?;
    pending.commit(file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_pending_file_appears_only_when_committed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out/result.csv");
        let (mut file, pending) = PendingFile::create(&path).unwrap();
        file.write_all(b"a,b\n").unwrap();
        assert!(!path.exists());
        // Nothing of it is visible in the directory before the commit.
        assert_eq!(
            std::fs::read_dir(dir.path().join("out")).unwrap().count(),
            0
        );
        pending.commit(file).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "a,b\n");
        assert_eq!(
            std::fs::read_dir(dir.path().join("out")).unwrap().count(),
            1
        );

        // Dropped without a commit: the earlier file stays as it was, nothing else appears.
        let (mut file, pending) = PendingFile::create(&path).unwrap();
        file.write_all(b"half").unwrap();
        drop((file, pending));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "a,b\n");
        assert_eq!(
            std::fs::read_dir(dir.path().join("out")).unwrap().count(),
            1
        );
    }

    #[test]
    fn write_atomically_replaces_the_whole_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b.bin");
        write_atomically(&path, b"first").unwrap();
        write_atomically(&path, b"second").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
        assert_eq!(std::fs::read_dir(dir.path().join("a")).unwrap().count(), 1);
    }
}
