//! The data plane: reads the consumer's table, keeps key columns back, hands typed batches of
//! granted columns to the sandbox, and writes the output atomically.
//!
//! Only the columns the grant names are parsed into batches; every other column of the source
//! is skipped here, so it never exists in a form that could be copied into guest memory.

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::grant::{GrantedColumn, InputGrant, OutputGrant};
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

    /// Parses one CSV cell and appends it; an empty cell is a null. Returns whether the value
    /// is valid (not null).
    fn push_cell(&mut self, cell: &str) -> Result<bool, ()> {
        let trimmed = cell.trim();
        let is_null = trimmed.is_empty();
        match self {
            ColumnValues::Float64(v) => v.push(if is_null { 0.0 } else { parse_float(trimmed)? }),
            ColumnValues::Float32(v) => v.push(if is_null {
                0.0
            } else {
                parse_float(trimmed)? as f32
            }),
            ColumnValues::Int64(v) => v.push(if is_null {
                0
            } else {
                trimmed.parse().map_err(|_| ())?
            }),
            ColumnValues::Boolean(v) => v.push(if is_null { false } else { parse_bool(trimmed)? }),
            ColumnValues::Text(v) => v.push(if is_null {
                String::new()
            } else {
                cell.to_owned()
            }),
            ColumnValues::Timestamp(v) => v.push(if is_null {
                0
            } else {
                parse_timestamp(trimmed)?
            }),
        }
        Ok(!is_null)
    }
}

fn parse_float(text: &str) -> Result<f64, ()> {
    text.parse().map_err(|_| ())
}

fn parse_bool(text: &str) -> Result<bool, ()> {
    match text.to_ascii_lowercase().as_str() {
        "true" | "yes" | "1" => Ok(true),
        "false" | "no" | "0" => Ok(false),
        _ => Err(()),
    }
}

/// Microseconds since the Unix epoch from `YYYY-MM-DD`, `YYYY-MM-DDTHH:MM:SS` (optionally
/// ending in `Z`), or a plain integer of microseconds.
fn parse_timestamp(text: &str) -> Result<i64, ()> {
    if let Ok(micros) = text.parse::<i64>() {
        return Ok(micros);
    }
    let text = text.strip_suffix('Z').unwrap_or(text);
    let (date, time) = match text.split_once(['T', ' ']) {
        Some((date, time)) => (date, Some(time)),
        None => (text, None),
    };
    let mut date_parts = date
        .splitn(3, '-')
        .map(|p| p.parse::<i64>().map_err(|_| ()));
    let year = date_parts.next().ok_or(())??;
    let month = date_parts.next().ok_or(())??;
    let day = date_parts.next().ok_or(())??;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return Err(());
    }
    let seconds_of_day = match time {
        None => 0,
        Some(time) => {
            let mut parts = time
                .splitn(3, ':')
                .map(|p| p.parse::<i64>().map_err(|_| ()));
            let h = parts.next().ok_or(())??;
            let m = parts.next().ok_or(())??;
            let s = parts.next().unwrap_or(Ok(0))?;
            if !(0..24).contains(&h) || !(0..60).contains(&m) || !(0..61).contains(&s) {
                return Err(());
            }
            h * 3600 + m * 60 + s
        }
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Ok((days * 86_400 + seconds_of_day) * 1_000_000)
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

/// Reads the bound CSV table in batches of granted columns.
pub struct CsvSource {
    path: PathBuf,
    reader: csv::Reader<BufReader<File>>,
    /// (index in the CSV record, granted column)
    columns: Vec<(usize, GrantedColumn)>,
    key_indices: Vec<usize>,
    record: csv::StringRecord,
    next_index: u64,
    rows_read: u64,
}

impl CsvSource {
    pub fn open(grant: &InputGrant) -> Result<Self, DataError> {
        let path = grant.source.clone();
        let file = File::open(&path).map_err(|source| DataError::Open {
            path: path.clone(),
            source,
        })?;
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .from_reader(BufReader::with_capacity(1 << 20, file));
        let headers = reader
            .headers()
            .map_err(|source| DataError::Csv {
                path: path.clone(),
                source,
            })?
            .clone();
        let find = |name: &str, why: String| {
            headers
                .iter()
                .position(|h| h == name)
                .ok_or_else(|| DataError::MissingColumn {
                    path: path.clone(),
                    column: name.to_owned(),
                    why,
                    available: headers.iter().collect::<Vec<_>>().join(", "),
                })
        };
        let mut columns = Vec::with_capacity(grant.columns.len());
        for column in &grant.columns {
            let why = format!("bound to model column `{}`", column.model);
            columns.push((find(&column.source, why)?, column.clone()));
        }
        let mut key_indices = Vec::with_capacity(grant.key.len());
        for key in &grant.key {
            key_indices.push(find(key, "a key column".into())?);
        }
        Ok(CsvSource {
            path,
            reader,
            columns,
            key_indices,
            record: csv::StringRecord::new(),
            next_index: 0,
            rows_read: 0,
        })
    }

    /// Rows read so far.
    pub fn rows_read(&self) -> u64 {
        self.rows_read
    }

    /// The next batch of at most `max_rows` rows, or `None` at the end of the table.
    pub fn next_batch(&mut self, max_rows: usize) -> Result<Option<KeyedBatch>, DataError> {
        let mut values: Vec<ColumnValues> = self
            .columns
            .iter()
            .map(|(_, c)| ColumnValues::empty(c.ty, max_rows))
            .collect();
        let mut validity: Vec<Vec<bool>> = vec![Vec::new(); self.columns.len()];
        let mut keys = Vec::with_capacity(max_rows);
        let mut rows = 0;
        while rows < max_rows {
            let more = self
                .reader
                .read_record(&mut self.record)
                .map_err(|source| DataError::Csv {
                    path: self.path.clone(),
                    source,
                })?;
            if !more {
                break;
            }
            let line = self.record.position().map_or(0, |p| p.line());
            for (slot, (index, column)) in self.columns.iter().enumerate() {
                let cell = self.record.get(*index).unwrap_or("");
                let (Some(column_values), Some(column_validity)) =
                    (values.get_mut(slot), validity.get_mut(slot))
                else {
                    continue;
                };
                let valid = column_values
                    .push_cell(cell)
                    .map_err(|()| DataError::BadValue {
                        path: self.path.clone(),
                        line,
                        column: column.source.clone(),
                        value: cell.chars().take(80).collect(),
                        ty: column.ty,
                    })?;
                // Validity is materialised only once a column meets its first null.
                if !valid && column_validity.is_empty() {
                    column_validity.resize(rows, true);
                }
                if !column_validity.is_empty() {
                    column_validity.push(valid);
                }
            }
            keys.push(
                self.key_indices
                    .iter()
                    .map(|&i| self.record.get(i).unwrap_or("").to_owned())
                    .collect(),
            );
            rows += 1;
        }
        if rows == 0 {
            return Ok(None);
        }
        self.rows_read += rows as u64;
        let columns = self
            .columns
            .iter()
            .zip(values)
            .zip(validity)
            .map(|(((_, granted), values), validity)| Column {
                name: granted.model.to_string(),
                values,
                validity,
            })
            .collect();
        let index = self.next_index;
        self.next_index += 1;
        Ok(Some(KeyedBatch {
            index,
            batch: Batch {
                num_rows: rows,
                columns,
            },
            keys,
        }))
    }
}

/// Writes the output table to a temporary file beside the sink and renames it into place only
/// when the run succeeds: a failed or killed run never leaves a half-written sink behind, and
/// never clobbers the previous one.
pub struct CsvSink {
    path: PathBuf,
    writer: csv::Writer<BufWriter<tempfile::NamedTempFile>>,
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
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(write_error)?;
        let temp = tempfile::Builder::new()
            .prefix(".cordon-sink-")
            .suffix(".partial")
            .tempfile_in(dir)
            .map_err(write_error)?;
        let mut writer = csv::WriterBuilder::new().from_writer(BufWriter::new(temp));
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

    /// Flushes, syncs and renames the temporary file onto the sink path.
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
        let temp = buffered
            .into_inner()
            .map_err(|e| write_error(e.into_error()))?;
        temp.as_file().sync_all().map_err(write_error)?;
        temp.persist(&path).map_err(|e| write_error(e.error))?;
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
    fn cells_parse_by_type_and_blanks_are_null() {
        let mut floats = ColumnValues::empty(ColumnType::Float64, 2);
        assert_eq!(floats.push_cell(" 29.85"), Ok(true));
        assert_eq!(floats.push_cell(" "), Ok(false));
        assert_eq!(floats.push_cell("abc"), Err(()));
        assert_eq!(floats, ColumnValues::Float64(vec![29.85, 0.0]));
        let mut flags = ColumnValues::empty(ColumnType::Boolean, 1);
        assert_eq!(flags.push_cell("Yes"), Ok(true));
        assert_eq!(flags.push_cell("maybe"), Err(()));
    }

    #[test]
    fn timestamps_parse() {
        assert_eq!(parse_timestamp("1970-01-01"), Ok(0));
        assert_eq!(
            parse_timestamp("2000-03-01T00:00:01Z"),
            Ok(951_868_801_000_000)
        );
        assert_eq!(parse_timestamp("2000-13-01"), Err(()));
    }
}
