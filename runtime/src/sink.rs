//! Sinks: where validated output goes, CSV or Parquet by the sink's extension.
//!
//! Every sink writes through a [`PendingFile`]: nothing appears at the sink's path until the
//! run has succeeded, and an earlier output there is replaced whole or not at all.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Float32Array, Float64Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::parquet::arrow::ArrowWriter;

use crate::data::{Batch, ColumnValues, DataError};
use crate::grant::OutputGrant;
use crate::source::arrow_type;

/// The sink a grant names, chosen by its extension.
pub enum Sink {
    Csv(CsvSink),
    Parquet(ParquetSink),
}

impl Sink {
    pub fn create(grant: &OutputGrant, key_columns: &[String]) -> Result<Sink, DataError> {
        let extension = grant
            .sink
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match extension.as_deref() {
            Some("csv") => Ok(Sink::Csv(CsvSink::create(grant, key_columns)?)),
            Some("parquet") => Ok(Sink::Parquet(ParquetSink::create(grant, key_columns)?)),
            _ => Err(DataError::SinkFormat {
                path: grant.sink.clone(),
            }),
        }
    }

    /// Appends the rows of a validated output batch, each preceded by its key values (none in
    /// partition mode, where the batch starts with the partition columns).
    pub fn write(&mut self, keys: &[Vec<String>], batch: &Batch) -> Result<(), DataError> {
        match self {
            Sink::Csv(sink) => sink.write(keys, batch),
            Sink::Parquet(sink) => sink.write(keys, batch),
        }
    }

    /// Completes the file and puts it in place.
    pub fn finish(self) -> Result<PathBuf, DataError> {
        match self {
            Sink::Csv(sink) => sink.finish(),
            Sink::Parquet(sink) => sink.finish(),
        }
    }
}

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
            .chain(grant.partition_key.iter().map(|c| c.name.as_str()))
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
        for row in 0..batch.num_rows {
            self.row.clear();
            if let Some(key) = keys.get(row) {
                self.row.extend(key.iter().cloned());
            }
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
        ColumnValues::Text(v) => v.get(row).map(str::to_owned),
    }
    .unwrap_or_default()
}

/// Values with `None` where the validity says null.
fn nullable<'a, T: Copy>(
    values: &'a [T],
    valid: impl Fn(usize) -> bool + 'a,
) -> impl Iterator<Item = Option<T>> + 'a {
    values
        .iter()
        .enumerate()
        .map(move |(row, value)| valid(row).then_some(*value))
}

/// Writes Parquet: the key columns as text, then the partition columns and the output columns
/// with their declared types.
pub struct ParquetSink {
    path: PathBuf,
    schema: SchemaRef,
    writer: ArrowWriter<File>,
    pending: PendingFile,
}

impl ParquetSink {
    pub fn create(grant: &OutputGrant, key_columns: &[String]) -> Result<Self, DataError> {
        let path = grant.sink.clone();
        let write_error = |source| DataError::Write {
            path: path.clone(),
            source,
        };
        let fields: Vec<Field> = key_columns
            .iter()
            .map(|key| Field::new(key, DataType::Utf8, true))
            .chain(
                grant
                    .partition_key
                    .iter()
                    .chain(&grant.columns)
                    .map(|c| Field::new(c.name.as_str(), arrow_type(c.ty), true)),
            )
            .collect();
        let schema: SchemaRef = Arc::new(Schema::new(fields));
        let (file, pending) = PendingFile::create(&path).map_err(write_error)?;
        let writer = ArrowWriter::try_new(file, Arc::clone(&schema), None)
            .map_err(|e| write_error(std::io::Error::other(e)))?;
        Ok(ParquetSink {
            path,
            schema,
            writer,
            pending,
        })
    }

    pub fn write(&mut self, keys: &[Vec<String>], batch: &Batch) -> Result<(), DataError> {
        let key_count = self
            .schema
            .fields()
            .len()
            .saturating_sub(batch.columns.len());
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(self.schema.fields().len());
        for index in 0..key_count {
            let values: StringArray = keys
                .iter()
                .map(|key| key.get(index).map(String::as_str))
                .collect();
            arrays.push(Arc::new(values));
        }
        for column in &batch.columns {
            let valid = |row: usize| column.validity.get(row).copied().unwrap_or(true);
            let array: ArrayRef = match &column.values {
                ColumnValues::Float64(v) => Arc::new(nullable(v, valid).collect::<Float64Array>()),
                ColumnValues::Float32(v) => Arc::new(nullable(v, valid).collect::<Float32Array>()),
                ColumnValues::Int64(v) => Arc::new(nullable(v, valid).collect::<Int64Array>()),
                ColumnValues::Timestamp(v) => {
                    Arc::new(nullable(v, valid).collect::<TimestampMicrosecondArray>())
                }
                ColumnValues::Boolean(v) => Arc::new(nullable(v, valid).collect::<BooleanArray>()),
                ColumnValues::Text(v) => Arc::new(
                    v.iter()
                        .enumerate()
                        .map(|(row, s)| valid(row).then_some(s))
                        .collect::<StringArray>(),
                ),
            };
            arrays.push(array);
        }
        let record = RecordBatch::try_new(Arc::clone(&self.schema), arrays).map_err(|e| {
            DataError::Write {
                path: self.path.clone(),
                source: std::io::Error::other(e),
            }
        })?;
        self.writer.write(&record).map_err(|e| DataError::Write {
            path: self.path.clone(),
            source: std::io::Error::other(e),
        })
    }

    pub fn finish(self) -> Result<PathBuf, DataError> {
        let path = self.path;
        let write_error = |source| DataError::Write {
            path: path.clone(),
            source,
        };
        let file = self
            .writer
            .into_inner()
            .map_err(|e| write_error(std::io::Error::other(e)))?;
        self.pending.commit(file).map_err(write_error)?;
        Ok(path)
    }
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
}
