//! The batches that cross the sandbox boundary.
//!
//! `cordon_data::source` fills batches with granted columns only, keys held back;
//! `cordon_data::sink` writes validated outputs.

use crate::types::ColumnType;

/// One column's values, one entry per row; a null row holds a placeholder.
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnValues {
    Float64(Vec<f64>),
    Float32(Vec<f32>),
    Int64(Vec<i64>),
    Boolean(Vec<bool>),
    Text(TextValues),
    Timestamp(Vec<i64>),
}

/// Text values in one buffer: row i is `bytes[offsets[i]..offsets[i + 1]]`. It is the layout
/// of Arrow's string arrays and of the sandbox boundary (`text-values` in the contract), so
/// text goes from the table to the guest as two copies, never one allocation per value.
///
/// Invariant, kept by every constructor: `offsets` starts at 0, never decreases, ends at
/// `text.len()`, and every offset falls between characters, so reading a row is slicing.
#[derive(Debug, Clone, PartialEq)]
pub struct TextValues {
    offsets: Vec<u32>,
    text: String,
}

impl Default for TextValues {
    fn default() -> Self {
        TextValues::with_capacity(0)
    }
}

impl TextValues {
    pub fn with_capacity(rows: usize) -> Self {
        let mut offsets = Vec::with_capacity(rows + 1);
        offsets.push(0);
        TextValues {
            offsets,
            text: String::new(),
        }
    }

    /// Appends a value; `false` (and nothing appended) past 4 GiB of text.
    #[must_use]
    pub fn push(&mut self, value: &str) -> bool {
        let Ok(end) = u32::try_from(self.text.len() + value.len()) else {
            return false;
        };
        self.text.push_str(value);
        self.offsets.push(end);
        true
    }

    /// The values of `strings`, or `None` past 4 GiB of text.
    pub fn from_strs<'a>(strings: impl IntoIterator<Item = &'a str>) -> Option<Self> {
        let mut text = TextValues::default();
        for value in strings {
            if !text.push(value) {
                return None;
            }
        }
        Some(text)
    }

    /// Takes a layout from outside (a model's output), checking the invariant: offsets from 0,
    /// in order, ending at the buffer's length, cutting it into UTF-8.
    pub fn from_parts(offsets: Vec<u32>, bytes: Vec<u8>) -> Result<Self, String> {
        if offsets.first().is_some_and(|first| *first != 0) {
            return Err("its offsets do not start at 0".into());
        }
        if offsets.last().map_or(0, |last| *last as usize) != bytes.len() {
            return Err("its offsets do not end at the length of its bytes".into());
        }
        if offsets.windows(2).any(|pair| pair.first() > pair.get(1)) {
            return Err("its offsets decrease".into());
        }
        // One UTF-8 check of the whole buffer, then every offset between two characters:
        // together the same as every value being UTF-8.
        let text = String::from_utf8(bytes).map_err(|_| "a value is not UTF-8".to_string())?;
        if !offsets.iter().all(|o| text.is_char_boundary(*o as usize)) {
            return Err("a value is not UTF-8 (an offset cuts a character)".into());
        }
        let offsets = if offsets.is_empty() { vec![0] } else { offsets };
        Ok(TextValues { offsets, text })
    }

    /// The layout, for the boundary.
    pub fn into_parts(self) -> (Vec<u32>, Vec<u8>) {
        (self.offsets, self.text.into_bytes())
    }

    pub fn len(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of text, all values together.
    pub fn byte_len(&self) -> usize {
        self.text.len()
    }

    /// The value at `row`.
    pub fn get(&self, row: usize) -> Option<&str> {
        let start = *self.offsets.get(row)? as usize;
        let end = *self.offsets.get(row + 1)? as usize;
        self.text.get(start..end)
    }

    /// Every value in order.
    pub fn iter(&self) -> impl Iterator<Item = &str> + '_ {
        (0..self.len()).map(|row| self.get(row).unwrap_or_default())
    }
}

impl ColumnValues {
    pub fn empty(ty: ColumnType, capacity: usize) -> Self {
        match ty {
            ColumnType::Float64 => ColumnValues::Float64(Vec::with_capacity(capacity)),
            ColumnType::Float32 => ColumnValues::Float32(Vec::with_capacity(capacity)),
            ColumnType::Int64 => ColumnValues::Int64(Vec::with_capacity(capacity)),
            ColumnType::Boolean => ColumnValues::Boolean(Vec::with_capacity(capacity)),
            ColumnType::Text => ColumnValues::Text(TextValues::with_capacity(capacity)),
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
            ColumnValues::Text(v) => v.byte_len() + 4 * (v.len() + 1),
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

/// A unit of work for the sandbox, and what the host holds back from it.
#[derive(Debug)]
pub struct KeyedBatch {
    /// Position of this batch (row mode) or partition (partition mode) in the input, from 0.
    pub index: u64,
    pub batch: Batch,
    pub held_back: HeldBack,
}

/// What stays on the host side of a unit of work and is re-attached to its output.
#[derive(Debug)]
pub enum HeldBack {
    /// Row mode: each row's values of the policy's `key` columns, in row order.
    RowKeys(Vec<Vec<String>>),
    /// Partition mode: the partition's key, one single-row column per `partition-by` column.
    PartitionKey(Vec<Column>),
}

impl ColumnValues {
    /// The value at `row`, `times` times over (a partition key spread over output rows).
    pub fn repeat(&self, row: usize, times: usize) -> Option<ColumnValues> {
        Some(match self {
            ColumnValues::Float64(v) => ColumnValues::Float64(vec![*v.get(row)?; times]),
            ColumnValues::Float32(v) => ColumnValues::Float32(vec![*v.get(row)?; times]),
            ColumnValues::Int64(v) => ColumnValues::Int64(vec![*v.get(row)?; times]),
            ColumnValues::Timestamp(v) => ColumnValues::Timestamp(vec![*v.get(row)?; times]),
            ColumnValues::Boolean(v) => ColumnValues::Boolean(vec![*v.get(row)?; times]),
            ColumnValues::Text(v) => {
                let value = v.get(row)?;
                ColumnValues::Text(TextValues::from_strs(std::iter::repeat_n(value, times))?)
            }
        })
    }

    /// The value at `row` as JSON, for audit events (`null` past the end).
    pub fn json_value(&self, row: usize) -> serde_json::Value {
        use serde_json::Value;
        match self {
            ColumnValues::Float64(v) => v.get(row).map_or(Value::Null, |x| (*x).into()),
            ColumnValues::Float32(v) => v.get(row).map_or(Value::Null, |x| f64::from(*x).into()),
            ColumnValues::Int64(v) | ColumnValues::Timestamp(v) => {
                v.get(row).map_or(Value::Null, |x| (*x).into())
            }
            ColumnValues::Boolean(v) => v.get(row).map_or(Value::Null, |x| (*x).into()),
            ColumnValues::Text(v) => v.get(row).map_or(Value::Null, |x| x.into()),
        }
    }
}

impl Column {
    /// The value at `row` spread over `times` rows, null or not.
    pub fn repeat(&self, row: usize, times: usize) -> Option<Column> {
        let valid = self.validity.get(row).copied().unwrap_or(true);
        Some(Column {
            name: self.name.clone(),
            values: self.values.repeat(row, times)?,
            validity: if valid {
                Vec::new()
            } else {
                vec![false; times]
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_values_check_their_layout() {
        let text = TextValues::from_strs(["a", "", "ñ"]).unwrap();
        assert_eq!(text.len(), 3);
        assert_eq!(text.get(2), Some("ñ"));
        assert_eq!(text.get(3), None);
        let (offsets, bytes) = text.clone().into_parts();
        assert_eq!(TextValues::from_parts(offsets, bytes).unwrap(), text);
        assert!(TextValues::from_parts(vec![0, 2], "ñ".as_bytes()[..1].to_vec()).is_err());
        assert!(TextValues::from_parts(vec![0, 1, 2], "ñ".as_bytes().to_vec()).is_err());
        assert!(
            TextValues::from_parts(Vec::new(), Vec::new())
                .unwrap()
                .is_empty()
        );
    }
}
