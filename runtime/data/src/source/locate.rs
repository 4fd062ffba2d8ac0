//! Where a row the host refused is in the consumer's file: the line of a CSV table.
//!
//! Only on the error path. The query that feeds the sandbox drops the rows the filter keeps
//! out and carries no line numbers (numbering every row would cost every run); to name the line
//! of the n-th row read, the table is read again: the filter alone, in file order, finds which
//! record it was, and the CSV reader says on which line that record starts (a quoted value may
//! span lines).

use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::DataType;
use futures::StreamExt;

use super::binding::{SourceBinding, SourceFormat, query_context, register};
use super::query::SOURCE_TABLE;
use cordon_config::grant::InputGrant;
use cordon_config::manifest::{ColumnType, InputMode};

/// The line of `grant`'s CSV source on which the `row`-th row read (from 0, after the filter)
/// starts, counted from 1 with the header as line 1. `None` for a Parquet or in-memory source,
/// in partition mode (rows are read sorted, not in file order), or when the file cannot be read
/// again.
pub fn csv_line_of_row(
    grant: &InputGrant,
    row: u64,
    tokio: &Arc<tokio::runtime::Runtime>,
) -> Option<u64> {
    if grant.mode != InputMode::Row || SourceFormat::of(&grant.source) != Some(SourceFormat::Csv) {
        return None;
    }
    let record = match &grant.filter {
        None => row,
        Some(filter) => tokio.block_on(record_passing(grant, filter, row))?,
    };
    line_of_record(&grant.source, record)
}

/// The index (from 0) of the record that is the `row`-th to pass `filter`, in file order.
async fn record_passing(grant: &InputGrant, filter: &str, row: u64) -> Option<u64> {
    let binding = SourceBinding::File(grant.source.clone());
    let context = query_context(8192, &grant.source).ok()?;
    register(&context, &binding, grant).await.ok()?;
    // A row passes as in the run's query: where the condition is true (not false, not null).
    let query = format!("SELECT COALESCE(({filter}), false) FROM {SOURCE_TABLE}");
    let mut stream = context
        .sql(&query)
        .await
        .ok()?
        .execute_stream()
        .await
        .ok()?;
    let (mut record, mut passed) = (0u64, 0u64);
    while let Some(batch) = stream.next().await {
        let batch = batch.ok()?;
        let column = batch.columns().first()?;
        if column.data_type() != &DataType::Boolean {
            return None;
        }
        let passes = column.as_boolean();
        for index in 0..passes.len() {
            if passes.is_valid(index) && passes.value(index) {
                if passed == row {
                    return Some(record);
                }
                passed += 1;
            }
            record += 1;
        }
    }
    None
}

/// The line on which record `record` (from 0, after the header) of a CSV file starts.
fn line_of_record(path: &std::path::Path, record: u64) -> Option<u64> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_path(path)
        .ok()?;
    let mut current = csv::ByteRecord::new();
    let mut index = 0u64;
    while reader.read_byte_record(&mut current).ok()? {
        if index == record {
            return line_at(path, current.position()?.byte());
        }
        index += 1;
    }
    None
}

/// The line (from 1) of the record that starts at byte `offset` of the file. The CSV reader's
/// own line count lags by one after a record ended by `\n` alone, and its offset may sit on the
/// previous record's `\n` after `\r\n`: so the lines are counted here, from the bytes, past any
/// line end the offset sits on.
fn line_at(path: &std::path::Path, offset: u64) -> Option<u64> {
    use std::io::{BufRead, Read};
    let file = std::fs::File::open(path).ok()?;
    let mut reader = std::io::BufReader::new(file);
    let mut before = (&mut reader).take(offset);
    let mut newlines = 0u64;
    loop {
        let chunk = before.fill_buf().ok()?;
        if chunk.is_empty() {
            break;
        }
        newlines += chunk.iter().filter(|&&b| b == b'\n').count() as u64;
        let length = chunk.len();
        before.consume(length);
    }
    // Line ends the offset sits on belong to the record before.
    let mut next = [0u8; 2];
    let read = reader.read(&mut next).ok()?;
    let ends = next.get(..read).unwrap_or_default();
    if ends.first() == Some(&b'\n') || ends == b"\r\n" {
        newlines += 1;
    }
    Some(newlines + 1)
}

/// The CSV columns a grant reads with a type: each granted column that is a column of the
/// table as it is (cast to the manifest's type), and each column the binding's `schema` types.
pub(super) fn typed_csv_columns(grant: &InputGrant) -> Vec<(String, ColumnType)> {
    if SourceFormat::of(&grant.source) != Some(SourceFormat::Csv) {
        return Vec::new();
    }
    let mut typed: Vec<(String, ColumnType)> = grant
        .schema
        .iter()
        .map(|(name, ty)| (name.clone(), *ty))
        .collect();
    for column in &grant.columns {
        if column.ty != ColumnType::Text && !typed.iter().any(|(name, _)| name == &column.source) {
            typed.push((column.source.clone(), column.ty));
        }
    }
    typed
}

/// The first cell of the CSV file at `path` that one of `typed` columns cannot hold: its line
/// (from 1, the header being line 1), column, value and type. Only on the error path of a read
/// that failed on a cast, to name what DataFusion's message does not.
pub(super) fn first_bad_cell(
    path: &std::path::Path,
    typed: &[(String, ColumnType)],
) -> Option<(u64, String, String, ColumnType)> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_path(path)
        .ok()?;
    let header = reader.headers().ok()?.clone();
    let positions: Vec<(usize, &str, ColumnType)> = typed
        .iter()
        .filter_map(|(name, ty)| {
            let position = header.iter().position(|h| h == name)?;
            Some((position, name.as_str(), *ty))
        })
        .collect();
    let mut record = csv::StringRecord::new();
    while reader.read_record(&mut record).ok()? {
        for &(position, name, ty) in &positions {
            let Some(value) = record.get(position) else {
                continue;
            };
            if !holds(value, ty) {
                let line = line_at(path, record.position()?.byte())?;
                return Some((line, name.to_owned(), value.to_owned(), ty));
            }
        }
    }
    None
}

/// Whether a CSV cell reads as `ty` as the data plane reads it: numbers are trimmed first, and
/// a blank cell is a null.
fn holds(value: &str, ty: ColumnType) -> bool {
    let value = value.trim();
    if value.is_empty() {
        return true;
    }
    match ty {
        ColumnType::Int64 => value.parse::<i64>().is_ok(),
        ColumnType::Float64 | ColumnType::Float32 => value.parse::<f64>().is_ok(),
        ColumnType::Boolean => matches!(
            value.to_ascii_lowercase().as_str(),
            "true" | "false" | "t" | "f" | "yes" | "no" | "y" | "n" | "on" | "off" | "1" | "0"
        ),
        // Text holds anything; a timestamp's forms are DataFusion's to say.
        ColumnType::Text | ColumnType::Timestamp => true,
    }
}
