//! Large tables drawn from the Telco churn distribution, for memory and throughput checks.
//!
//! Rows are sampled with replacement from the real table (a bootstrap: the joint distribution of
//! every column is the real one), each with a fresh, unique `customerID`. The sampling is
//! seeded, so the same call writes the same file.

use std::error::Error;
use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray, UInt32Array,
};
use datafusion::arrow::compute::take;
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::parquet::arrow::ArrowWriter;

/// Rows built and written at a time.
const CHUNK_ROWS: usize = 65_536;

/// Writes `rows` rows sampled from the Telco CSV at `source` to a Parquet file at `path`.
/// Columns keep the CSV's names; a column whose values all parse as integers becomes int64,
/// as numbers float64, anything else text; blank cells are nulls.
pub fn write_telco_parquet(source: &Path, rows: u64, path: &Path) -> Result<(), Box<dyn Error>> {
    let table = read_typed_csv(source)?;
    let id_position = table
        .schema()
        .index_of("customerID")
        .map_err(|_| "the Telco table has no customerID column")?;
    let table_rows = u32::try_from(table.num_rows())?;
    if table_rows == 0 {
        return Err("the Telco table is empty".into());
    }
    let mut writer = ArrowWriter::try_new(File::create(path)?, table.schema(), None)?;
    let mut written = 0u64;
    while written < rows {
        let count = CHUNK_ROWS.min(usize::try_from(rows - written)?);
        let picks: UInt32Array = (0..count as u64)
            .map(|offset| (splitmix64(written + offset) % u64::from(table_rows)) as u32)
            .collect();
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(table.num_columns());
        for (position, column) in table.columns().iter().enumerate() {
            if position == id_position {
                let ids: StringArray = (0..count as u64)
                    .map(|offset| Some(format!("SYN-{:010}", written + offset)))
                    .collect();
                columns.push(Arc::new(ids));
            } else {
                columns.push(take(column, &picks, None)?);
            }
        }
        writer.write(&RecordBatch::try_new(table.schema(), columns)?)?;
        written += count as u64;
    }
    writer.close()?;
    Ok(())
}

/// SplitMix64: a fast, well-mixed function of a counter, for reproducible sampling.
fn splitmix64(counter: u64) -> u64 {
    let mut z = counter.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The whole CSV as one record batch, each column typed by what its values parse as.
pub fn read_typed_csv(path: &Path) -> Result<RecordBatch, Box<dyn Error>> {
    let mut reader = csv::Reader::from_path(path)?;
    let names: Vec<String> = reader.headers()?.iter().map(str::to_owned).collect();
    let mut cells: Vec<Vec<String>> = vec![Vec::new(); names.len()];
    for record in reader.records() {
        let record = record?;
        for (column, cell) in cells.iter_mut().zip(record.iter()) {
            column.push(cell.trim().to_owned());
        }
    }
    let mut fields = Vec::with_capacity(names.len());
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(names.len());
    for (name, values) in names.iter().zip(&cells) {
        let present = || values.iter().filter(|v| !v.is_empty());
        let (ty, array): (DataType, ArrayRef) = if present().all(|v| v.parse::<i64>().is_ok()) {
            let parsed: Int64Array = values.iter().map(|v| v.parse().ok()).collect();
            (DataType::Int64, Arc::new(parsed))
        } else if present().all(|v| v.parse::<f64>().is_ok()) {
            let parsed: Float64Array = values.iter().map(|v| v.parse().ok()).collect();
            (DataType::Float64, Arc::new(parsed))
        } else {
            let text: StringArray = values
                .iter()
                .map(|v| (!v.is_empty()).then_some(v.as_str()))
                .collect();
            (DataType::Utf8, Arc::new(text))
        };
        fields.push(Field::new(name, ty, true));
        columns.push(array);
    }
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns,
    )?)
}
