//! The data plane: reads the consumer's table, keeps key columns back, hands typed batches of
//! granted columns to the sandbox, and writes the output atomically.
//!
//! Only the columns the grant names are parsed into batches; every other column of the source
//! is skipped here, so it never exists in a form that could be copied into guest memory.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::grant::OutputGrant;
use crate::manifest::ColumnType;

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("cannot open source {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: cannot read CSV")]
    Csv {
        path: PathBuf,
        #[source]
        source: csv::Error,
    },
    #[error("{path}: the table has no column `{column}` ({why}); it has: {available}")]
    MissingColumn {
        path: PathBuf,
        column: String,
        why: String,
        available: String,
    },
    #[error("{path}:{line}: column `{column}`: `{value}` is not {ty}")]
    BadValue {
        path: PathBuf,
        line: u64,
        column: String,
        value: String,
        ty: ColumnType,
    },
    #[error("{path}: only .csv and .parquet sources can be read")]
    Format { path: PathBuf },
    #[error("{path}: {what}: {message}")]
    Query {
        path: PathBuf,
        what: String,
        message: String,
    },
    #[error("{path}: internal error: {message}")]
    Internal { path: PathBuf, message: String },
    #[error("cannot write sink {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// One column's values, one entry per row; a null row holds a placeholder.
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnValues {
    Float64(Vec<f64>),
    Float32(Vec<f32>),
    Int64(Vec<i64>),
    Boolean(Vec<bool>),
    Text(Vec<String>),
    Timestamp(Vec<i64>),
}

impl ColumnValues {
    pub fn empty(ty: ColumnType, capacity: usize) -> Self {
        match ty {
            ColumnType::Float64 => ColumnValues::Float64(Vec::with_capacity(capacity)),
            ColumnType::Float32 => ColumnValues::Float32(Vec::with_capacity(capacity)),
            ColumnType::Int64 => ColumnValues::Int64(Vec::with_capacity(capacity)),
            ColumnType::Boolean => ColumnValues::Boolean(Vec::with_capacity(capacity)),
            ColumnType::Text => ColumnValues::Text(Vec::with_capacity(capacity)),
            ColumnType::Timestamp => ColumnValues::Timestamp(Vec::with_capacity(capacity)),
        }
    }

    pub fn column_type(&self) -> ColumnType {
        match self {
            ColumnValues::Float64(_) => ColumnType::Float64,
            ColumnValues::Float32(_) => ColumnType::Float32,
            ColumnValues::Int64(_) => ColumnType::Int64,
            ColumnValues::Boolean(_) => ColumnType::Boolean,
            ColumnValues::Text(_) => ColumnType::Text,
            ColumnValues::Timestamp(_) => ColumnType::Timestamp,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            ColumnValues::Float64(v) => v.len(),
            ColumnValues::Float32(v) => v.len(),
            ColumnValues::Int64(v) | ColumnValues::Timestamp(v) => v.len(),
            ColumnValues::Boolean(v) => v.len(),
            ColumnValues::Text(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes this column occupies once copied into guest memory (approximately).
    pub fn byte_size(&self) -> usize {
        match self {
            ColumnValues::Float64(v) => v.len() * 8,
            ColumnValues::Float32(v) => v.len() * 4,
            ColumnValues::Int64(v) | ColumnValues::Timestamp(v) => v.len() * 8,
            ColumnValues::Boolean(v) => v.len(),
            ColumnValues::Text(v) => v.iter().map(|s| s.len() + 8).sum(),
        }
    }
}

/// A named column of a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub name: String,
    pub values: ColumnValues,
    /// One flag per row, `false` where null; empty when the column has no nulls.
    pub validity: Vec<bool>,
}

/// Equally long named columns: what crosses into and out of the sandbox.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Batch {
    pub num_rows: usize,
    pub columns: Vec<Column>,
}

impl Batch {
    pub fn byte_size(&self) -> usize {
        self.columns
            .iter()
            .map(|c| c.values.byte_size() + c.validity.len() + c.name.len())
            .sum()
    }
}

/// A batch for the sandbox and the key values of its rows, which stay on the host.
#[derive(Debug)]
pub struct KeyedBatch {
    /// Position of this batch in the input, from 0.
    pub index: u64,
    pub batch: Batch,
    /// One entry per row: that row's key values, in the grant's key order.
    pub keys: Vec<Vec<String>>,
}

/// A file that appears at its path only when committed, complete and synced.
///
/// On Linux it is created unnamed (`O_TMPFILE`) in the target's directory: a run that fails, or
/// is killed with SIGKILL, leaves nothing behind, not even a temporary file. At commit it is
/// linked under a temporary name and renamed over the target, so readers see the old file or
/// the whole new one. Elsewhere, or where the file system lacks `O_TMPFILE`, a named temporary
/// file beside the target is used and removed on failure.
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
                .mode(0o644)
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
                let staged = self.dir.join(format!(
                    ".cordon-{}-{}.partial",
                    std::process::id(),
                    unique_suffix()
                ));
                link_unnamed(&file, &staged)?;
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

fn unique_suffix() -> u64 {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
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

/// Writes the output table through a [`PendingFile`]: a failed or killed run never leaves a
/// half-written sink behind, and never clobbers the previous one.
pub struct CsvSink {
    path: PathBuf,
    writer: csv::Writer<BufWriter<File>>,
    pending: PendingFile,
    rows_written: u64,
    row: Vec<String>,
}

impl CsvSink {
    pub fn create(grant: &OutputGrant, key_columns: &[String]) -> Result<Self, DataError> {
        let path = grant.sink.clone();
        let write_error = |source| DataError::Write {
            path: path.clone(),
            source,
        };
        let (file, pending) = PendingFile::create(&path).map_err(write_error)?;
        let mut writer = csv::WriterBuilder::new().from_writer(BufWriter::new(file));
        let header: Vec<&str> = key_columns
            .iter()
            .map(String::as_str)
            .chain(grant.columns.iter().map(|c| c.name.as_str()))
            .collect();
        writer
            .write_record(&header)
            .map_err(|e| write_error(std::io::Error::other(e)))?;
        Ok(CsvSink {
            path,
            writer,
            pending,
            rows_written: 0,
            row: Vec::new(),
        })
    }

    pub fn rows_written(&self) -> u64 {
        self.rows_written
    }

    /// Appends the rows of a validated output batch, each preceded by its key values.
    pub fn write(&mut self, keys: &[Vec<String>], batch: &Batch) -> Result<(), DataError> {
        for (row, key) in keys.iter().enumerate().take(batch.num_rows) {
            self.row.clear();
            self.row.extend(key.iter().cloned());
            for column in &batch.columns {
                let valid = column.validity.get(row).copied().unwrap_or(true);
                self.row.push(if valid {
                    format_cell(&column.values, row)
                } else {
                    String::new()
                });
            }
            self.writer
                .write_record(&self.row)
                .map_err(|e| DataError::Write {
                    path: self.path.clone(),
                    source: std::io::Error::other(e),
                })?;
            self.rows_written += 1;
        }
        Ok(())
    }

    /// Flushes the rows and puts the file in place.
    pub fn finish(self) -> Result<PathBuf, DataError> {
        let path = self.path;
        let write_error = |source| DataError::Write {
            path: path.clone(),
            source,
        };
        let buffered = self
            .writer
            .into_inner()
            .map_err(|e| write_error(std::io::Error::other(e.to_string())))?;
        let file = buffered
            .into_inner()
            .map_err(|e| write_error(e.into_error()))?;
        self.pending.commit(file).map_err(write_error)?;
        Ok(path)
    }
}

fn format_cell(values: &ColumnValues, row: usize) -> String {
    match values {
        ColumnValues::Float64(v) => v.get(row).map(|x| x.to_string()),
        ColumnValues::Float32(v) => v.get(row).map(|x| x.to_string()),
        ColumnValues::Int64(v) | ColumnValues::Timestamp(v) => v.get(row).map(|x| x.to_string()),
        ColumnValues::Boolean(v) => v.get(row).map(|x| x.to_string()),
        ColumnValues::Text(v) => v.get(row).cloned(),
    }
    .unwrap_or_default()
}

/// Writes `bytes` to `path` through a temporary file and a rename.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut temp = tempfile::NamedTempFile::new_in(dir)?;
    temp.write_all(bytes)?;
    temp.as_file().sync_all()?;
    temp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
