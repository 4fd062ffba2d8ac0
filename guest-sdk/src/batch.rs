//! Typed, columnar batches: what the host hands to a model and what the model hands back.

use crate::ModelError;
use crate::bindings::cordon::model::types as wit;

/// The element type of a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    Float64,
    Float32,
    Int64,
    Boolean,
    Text,
    /// Microseconds since the Unix epoch, UTC.
    Timestamp,
}

impl std::fmt::Display for ColumnType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ColumnType::Float64 => "float64",
            ColumnType::Float32 => "float32",
            ColumnType::Int64 => "int64",
            ColumnType::Boolean => "boolean",
            ColumnType::Text => "text",
            ColumnType::Timestamp => "timestamp",
        })
    }
}

fn column_type(values: &wit::ColumnValues) -> ColumnType {
    match values {
        wit::ColumnValues::Float64(_) => ColumnType::Float64,
        wit::ColumnValues::Float32(_) => ColumnType::Float32,
        wit::ColumnValues::Int64(_) => ColumnType::Int64,
        wit::ColumnValues::Boolean(_) => ColumnType::Boolean,
        wit::ColumnValues::Text(_) => ColumnType::Text,
        wit::ColumnValues::Timestamp(_) => ColumnType::Timestamp,
    }
}

fn column_len(values: &wit::ColumnValues) -> usize {
    match values {
        wit::ColumnValues::Float64(v) => v.len(),
        wit::ColumnValues::Float32(v) => v.len(),
        wit::ColumnValues::Int64(v) | wit::ColumnValues::Timestamp(v) => v.len(),
        wit::ColumnValues::Boolean(v) => v.len(),
        wit::ColumnValues::Text(v) => v.offsets.len().saturating_sub(1),
    }
}

/// A set of equally long, named, typed columns.
#[derive(Debug, Clone)]
pub struct Batch {
    num_rows: usize,
    columns: Vec<wit::Column>,
}

/// Whether `row` is null by a column's validity bytes (0 is null; no bytes, no nulls). A row
/// past the end counts as null, so that reading it gives `None`.
fn is_null(validity: &[u8], row: usize) -> bool {
    !validity.is_empty() && validity.get(row).is_none_or(|valid| *valid == 0)
}

/// A borrowed view of one column of a primitive type. Nulls read as `None`.
#[derive(Debug, Clone, Copy)]
pub struct Column<'a, T> {
    values: &'a [T],
    validity: &'a [u8],
}

impl<'a, T: Copy> Column<'a, T> {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The value at `row`, or `None` where it is null or `row` is out of range.
    pub fn get(&self, row: usize) -> Option<T> {
        if self.is_null(row) {
            return None;
        }
        self.values.get(row).copied()
    }

    /// Whether the value at `row` is null.
    pub fn is_null(&self, row: usize) -> bool {
        is_null(self.validity, row)
    }

    /// Every row in order, nulls as `None`.
    pub fn iter(&self) -> impl Iterator<Item = Option<T>> + 'a {
        let validity = self.validity;
        self.values
            .iter()
            .enumerate()
            .map(move |(row, value)| (!is_null(validity, row)).then_some(*value))
    }

    /// The raw values, with placeholders (0, false) where a row is null.
    pub fn values(&self) -> &'a [T] {
        self.values
    }

    /// The validity bytes: 0 where a row is null; empty where none is.
    pub(crate) fn validity(&self) -> &'a [u8] {
        self.validity
    }
}

/// A borrowed view of a text column. Nulls read as `None`.
///
/// The values arrive as one UTF-8 buffer and offsets (see `text-values` in the contract):
/// reading a value borrows a slice of it, with no allocation per row.
#[derive(Debug, Clone, Copy)]
pub struct TextColumn<'a> {
    offsets: &'a [u32],
    text: &'a str,
    validity: &'a [u8],
}

impl<'a> TextColumn<'a> {
    /// Checks the layout once, so that reading rows is plain slicing: offsets start at 0,
    /// never decrease, end at the buffer's length and fall on character boundaries.
    ///
    /// Text from a table is nearly always ASCII, which is checked eight bytes at a time (a
    /// word on WebAssembly is four, which is what `str::from_utf8`'s fast path reads); every
    /// offset into ASCII is a character boundary, so only non-ASCII text pays for the full
    /// UTF-8 check and the per-offset boundary check.
    fn new(
        name: &str,
        values: &'a wit::TextValues,
        validity: &'a [u8],
    ) -> Result<Self, ModelError> {
        let malformed = |why: &str| ModelError::InvalidInput(format!("text column `{name}` {why}"));
        let bytes = check_offsets(name, values)?;
        let text = if is_ascii(bytes) {
            // SAFETY: ASCII is UTF-8, and any cut between two ASCII bytes is a char boundary.
            unsafe { std::str::from_utf8_unchecked(bytes) }
        } else {
            let text = std::str::from_utf8(bytes).map_err(|_| malformed("is not UTF-8"))?;
            if !values
                .offsets
                .iter()
                .all(|offset| text.is_char_boundary(*offset as usize))
            {
                return Err(malformed("has an offset inside a character"));
            }
            text
        };
        Ok(TextColumn {
            offsets: &values.offsets,
            text,
            validity,
        })
    }

    pub fn len(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The value at `row`, or `None` where it is null or `row` is out of range.
    pub fn get(&self, row: usize) -> Option<&'a str> {
        if is_null(self.validity, row) {
            return None;
        }
        match self.offsets.get(row..row.checked_add(2)?)? {
            &[start, end] => {
                // SAFETY: `new` proved that offsets never decrease, that the last one is the
                // text's length and that each falls on a character boundary.
                Some(unsafe { self.text.get_unchecked(start as usize..end as usize) })
            }
            _ => None,
        }
    }

    /// Every row in order, nulls as `None`.
    pub fn iter(&self) -> impl Iterator<Item = Option<&'a str>> + 'a {
        let column = *self;
        (0..column.len()).map(move |row| column.get(row))
    }

    /// Every row's text in order, with the contract's placeholder `""` where a row is null: the
    /// text counterpart of [`Column::values`], for a loop that reads a null like an empty value.
    /// It tests nothing per row (no validity, no bounds), which is what a hot loop over many
    /// columns wants, on WebAssembly most of all.
    pub fn values(&self) -> impl ExactSizeIterator<Item = &'a str> + 'a {
        let text = self.text;
        let ends = self.offsets.get(1..).unwrap_or_default();
        self.offsets.iter().zip(ends).map(move |(&start, &end)| {
            // SAFETY: as in `get`; `new` proved every offset is in order and on a boundary.
            unsafe { text.get_unchecked(start as usize..end as usize) }
        })
    }
}

/// The bytes of a text column whose offsets start at 0, never decrease and end at the bytes'
/// length: what makes slicing it by its offsets safe.
fn check_offsets<'a>(name: &str, values: &'a wit::TextValues) -> Result<&'a [u8], ModelError> {
    let malformed = |why: &str| ModelError::InvalidInput(format!("text column `{name}` {why}"));
    let bytes = values.bytes.as_slice();
    if values.offsets.first().is_some_and(|first| *first != 0)
        || values.offsets.last().map_or(0, |last| *last as usize) != bytes.len()
    {
        return Err(malformed("has offsets that do not span its bytes"));
    }
    if !non_decreasing(&values.offsets) {
        return Err(malformed("has offsets that decrease"));
    }
    Ok(bytes)
}

/// A text column as bytes, for code that only compares them (the encoders): the offsets are
/// checked as for a [`TextColumn`], the UTF-8 is not.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TextBytes<'a> {
    /// One more than there are rows; starting at 0, never decreasing, ending at `bytes.len()`.
    pub offsets: &'a [u32],
    pub bytes: &'a [u8],
    /// 0 where a row is null; empty where none is.
    pub validity: &'a [u8],
}

/// Whether no offset is below the one before it. Eight at a time without an early exit: a loop
/// on WebAssembly pays the sandbox's fuel and interruption checks per iteration, not per value.
fn non_decreasing(offsets: &[u32]) -> bool {
    let mut previous = 0;
    let mut ordered = true;
    let mut step = |offset: &u32| {
        ordered &= *offset >= previous;
        previous = *offset;
    };
    let mut chunks = offsets.chunks_exact(8);
    for chunk in chunks.by_ref() {
        chunk.iter().for_each(&mut step);
    }
    chunks.remainder().iter().for_each(&mut step);
    ordered
}

/// Whether every byte is below 0x80, eight bytes at a time.
fn is_ascii(bytes: &[u8]) -> bool {
    const HIGH_BITS: u64 = 0x8080_8080_8080_8080;
    let mut words = bytes.chunks_exact(8);
    let high = words
        .by_ref()
        .map(bytemuck::pod_read_unaligned::<u64>)
        .fold(0, |seen, word| seen | word);
    high & HIGH_BITS == 0 && words.remainder().is_ascii()
}

/// Strings into one buffer and offsets; `None` past 4 GiB (offsets are u32).
fn pack_text<S: AsRef<str>>(values: &[S]) -> Option<wit::TextValues> {
    let total: usize = values.iter().map(|v| v.as_ref().len()).sum();
    u32::try_from(total).ok()?;
    let mut bytes = Vec::with_capacity(total);
    let mut offsets = Vec::with_capacity(values.len() + 1);
    offsets.push(0u32);
    for value in values {
        bytes.extend_from_slice(value.as_ref().as_bytes());
        offsets.push(bytes.len() as u32);
    }
    Some(wit::TextValues { offsets, bytes })
}

macro_rules! typed_accessor {
    ($(#[$doc:meta])* $name:ident, $variant:ident, $ty:ty, $column_type:ident) => {
        $(#[$doc])*
        pub fn $name(&self, name: &str) -> Result<Column<'_, $ty>, ModelError> {
            let column = self.find(name)?;
            match &column.values {
                wit::ColumnValues::$variant(values) => Ok(Column {
                    values,
                    validity: &column.validity,
                }),
                other => Err(wrong_type(name, ColumnType::$column_type, column_type(other))),
            }
        }
    };
}

fn wrong_type(name: &str, wanted: ColumnType, found: ColumnType) -> ModelError {
    ModelError::InvalidInput(format!(
        "column `{name}` is {found}, but the model reads it as {wanted}"
    ))
}

impl Batch {
    /// Number of rows.
    pub fn num_rows(&self) -> usize {
        self.num_rows
    }

    /// The names of the columns, in order.
    pub fn column_names(&self) -> impl Iterator<Item = &str> {
        self.columns.iter().map(|column| column.name.as_str())
    }

    /// The type of column `name`, if the batch has it.
    pub fn column_type(&self, name: &str) -> Option<ColumnType> {
        self.columns
            .iter()
            .find(|column| column.name == name)
            .map(|column| column_type(&column.values))
    }

    fn find(&self, name: &str) -> Result<&wit::Column, ModelError> {
        self.columns
            .iter()
            .find(|column| column.name == name)
            .ok_or_else(|| {
                ModelError::InvalidInput(format!(
                    "the input has no column `{name}` (it has: {})",
                    self.column_names().collect::<Vec<_>>().join(", ")
                ))
            })
    }

    typed_accessor!(
        /// Column `name` as 64-bit floats.
        f64s, Float64, f64, Float64
    );
    typed_accessor!(
        /// Column `name` as 32-bit floats.
        f32s, Float32, f32, Float32
    );
    typed_accessor!(
        /// Column `name` as 64-bit integers.
        i64s, Int64, i64, Int64
    );
    typed_accessor!(
        /// Column `name` as booleans.
        bools, Boolean, bool, Boolean
    );
    typed_accessor!(
        /// Column `name` as timestamps (microseconds since the Unix epoch, UTC).
        timestamps, Timestamp, i64, Timestamp
    );

    /// Column `name` as text bytes (see [`TextBytes`]).
    pub(crate) fn text_bytes(&self, name: &str) -> Result<TextBytes<'_>, ModelError> {
        let column = self.find(name)?;
        match &column.values {
            wit::ColumnValues::Text(values) => Ok(TextBytes {
                bytes: check_offsets(name, values)?,
                offsets: &values.offsets,
                validity: &column.validity,
            }),
            other => Err(wrong_type(name, ColumnType::Text, column_type(other))),
        }
    }

    /// Column `name` as text.
    pub fn texts(&self, name: &str) -> Result<TextColumn<'_>, ModelError> {
        let column = self.find(name)?;
        match &column.values {
            wit::ColumnValues::Text(values) => TextColumn::new(name, values, &column.validity),
            other => Err(wrong_type(name, ColumnType::Text, column_type(other))),
        }
    }

    /// Each column's name and its values rendered as text (nulls as `None`): for diagnostics
    /// and for models that echo what they receive.
    pub fn to_text_columns(&self) -> Vec<(String, Vec<Option<String>>)> {
        self.columns
            .iter()
            .map(|column| {
                let valid = |row: usize| !is_null(&column.validity, row);
                let rendered: Vec<Option<String>> = match &column.values {
                    wit::ColumnValues::Float64(v) => render(v, valid),
                    wit::ColumnValues::Float32(v) => render(v, valid),
                    wit::ColumnValues::Int64(v) | wit::ColumnValues::Timestamp(v) => {
                        render(v, valid)
                    }
                    wit::ColumnValues::Boolean(v) => render(v, valid),
                    wit::ColumnValues::Text(v) => {
                        match TextColumn::new(&column.name, v, &column.validity) {
                            Ok(text) => text.iter().map(|v| v.map(str::to_owned)).collect(),
                            Err(_) => vec![None; self.num_rows],
                        }
                    }
                };
                (column.name.clone(), rendered)
            })
            .collect()
    }

    pub(crate) fn from_wit(batch: wit::Batch) -> Self {
        Self {
            num_rows: batch.num_rows as usize,
            columns: batch.columns,
        }
    }

    pub(crate) fn into_wit(self) -> wit::Batch {
        wit::Batch {
            // The builder refuses batches longer than u32::MAX rows.
            num_rows: u32::try_from(self.num_rows).unwrap_or(u32::MAX),
            columns: self.columns,
        }
    }
}

fn render<T: ToString>(values: &[T], valid: impl Fn(usize) -> bool) -> Vec<Option<String>> {
    values
        .iter()
        .enumerate()
        .map(|(row, value)| valid(row).then(|| value.to_string()))
        .collect()
}

/// Builds an output batch column by column; [`BatchBuilder::build`] checks that every column
/// has the same number of rows.
#[derive(Debug, Default)]
pub struct BatchBuilder {
    columns: Vec<wit::Column>,
    /// The first column that could not be laid out, reported by `build`.
    error: Option<String>,
}

fn split_nulls<T: Default>(values: Vec<Option<T>>) -> (Vec<T>, Vec<u8>) {
    let has_nulls = values.iter().any(Option::is_none);
    let mut validity = Vec::with_capacity(if has_nulls { values.len() } else { 0 });
    let values = values
        .into_iter()
        .map(|value| {
            if has_nulls {
                validity.push(u8::from(value.is_some()));
            }
            value.unwrap_or_default()
        })
        .collect();
    (values, validity)
}

macro_rules! builder_methods {
    ($(#[$doc:meta])* $plain:ident, $nullable:ident, $variant:ident, $ty:ty) => {
        $(#[$doc])*
        pub fn $plain(mut self, name: &str, values: Vec<$ty>) -> Self {
            self.columns.push(wit::Column {
                name: name.to_owned(),
                values: wit::ColumnValues::$variant(values),
                validity: Vec::new(),
            });
            self
        }

        $(#[$doc])*
        /// `None` marks a null.
        pub fn $nullable(mut self, name: &str, values: Vec<Option<$ty>>) -> Self {
            let (values, validity) = split_nulls(values);
            self.columns.push(wit::Column {
                name: name.to_owned(),
                values: wit::ColumnValues::$variant(values),
                validity,
            });
            self
        }
    };
}

impl BatchBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    builder_methods!(
        /// Adds a column of 64-bit floats.
        f64, nullable_f64, Float64, f64
    );
    builder_methods!(
        /// Adds a column of 32-bit floats.
        f32, nullable_f32, Float32, f32
    );
    builder_methods!(
        /// Adds a column of 64-bit integers.
        i64, nullable_i64, Int64, i64
    );
    builder_methods!(
        /// Adds a column of booleans.
        bool, nullable_bool, Boolean, bool
    );
    /// Adds a column of text.
    pub fn text(self, name: &str, values: Vec<String>) -> Self {
        self.text_column(name, &values, Vec::new())
    }

    /// Adds a column of text. `None` marks a null.
    pub fn nullable_text(self, name: &str, values: Vec<Option<String>>) -> Self {
        let (values, validity) = split_nulls(values);
        self.text_column(name, &values, validity)
    }

    fn text_column(mut self, name: &str, values: &[String], validity: Vec<u8>) -> Self {
        match pack_text(values) {
            Some(text) => self.columns.push(wit::Column {
                name: name.to_owned(),
                values: wit::ColumnValues::Text(text),
                validity,
            }),
            None => {
                self.error.get_or_insert(format!(
                    "output column `{name}` holds more than 4 GiB of text"
                ));
            }
        }
        self
    }
    builder_methods!(
        /// Adds a column of timestamps (microseconds since the Unix epoch, UTC).
        timestamp, nullable_timestamp, Timestamp, i64
    );

    /// The batch, or an error if the columns differ in length or a name repeats.
    pub fn build(self) -> Result<Batch, ModelError> {
        if let Some(error) = self.error {
            return Err(ModelError::Internal(error));
        }
        let num_rows = self.columns.first().map_or(0, |c| column_len(&c.values));
        for (index, column) in self.columns.iter().enumerate() {
            let len = column_len(&column.values);
            if len != num_rows {
                return Err(ModelError::Internal(format!(
                    "output column `{}` has {len} rows, but `{}` has {num_rows}",
                    column.name,
                    self.columns.first().map_or("", |c| c.name.as_str())
                )));
            }
            if self
                .columns
                .iter()
                .take(index)
                .any(|c| c.name == column.name)
            {
                return Err(ModelError::Internal(format!(
                    "output column `{}` is added twice",
                    column.name
                )));
            }
        }
        if u32::try_from(num_rows).is_err() {
            return Err(ModelError::Internal(format!(
                "an output batch of {num_rows} rows is too long"
            )));
        }
        Ok(Batch {
            num_rows,
            columns: self.columns,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nulls_round_trip_through_the_builder() {
        let batch = BatchBuilder::new()
            .nullable_f64("x", vec![Some(1.0), None, Some(3.0)])
            .text("s", vec!["a".into(), "b".into(), "c".into()])
            .build()
            .unwrap();
        let x = batch.f64s("x").unwrap();
        assert_eq!(
            x.iter().collect::<Vec<_>>(),
            vec![Some(1.0), None, Some(3.0)]
        );
        assert!(x.is_null(1));
        assert_eq!(batch.texts("s").unwrap().get(2), Some("c"));
    }

    #[test]
    fn validity_bytes_mark_nulls_by_zero() {
        let column = |validity: Vec<u8>| {
            Batch::from_wit(wit::Batch {
                num_rows: 3,
                columns: vec![wit::Column {
                    name: "x".into(),
                    values: wit::ColumnValues::Int64(vec![1, 2, 3]),
                    validity,
                }],
            })
        };
        let batch = column(vec![1, 0, 7]);
        let x = batch.i64s("x").unwrap();
        assert_eq!(x.iter().collect::<Vec<_>>(), [Some(1), None, Some(3)]);
        // A validity list shorter than the column leaves the rows past its end null.
        let batch = column(vec![1]);
        let short = batch.i64s("x").unwrap();
        assert_eq!(short.iter().collect::<Vec<_>>(), [Some(1), None, None]);
        let batch = column(Vec::new());
        let none = batch.i64s("x").unwrap();
        assert_eq!(none.iter().collect::<Vec<_>>(), [Some(1), Some(2), Some(3)]);
    }

    #[test]
    fn wrong_type_and_missing_column_name_the_column() {
        let batch = BatchBuilder::new().i64("n", vec![1]).build().unwrap();
        let wrong = batch.f64s("n").unwrap_err().to_string();
        assert!(wrong.contains("column `n` is int64"), "{wrong}");
        let missing = batch.texts("zip").unwrap_err().to_string();
        assert!(missing.contains("no column `zip`"), "{missing}");
    }

    #[test]
    fn text_is_sliced_from_one_buffer_and_a_bad_layout_is_refused() {
        let batch = BatchBuilder::new()
            .nullable_text("s", vec![Some("añb".into()), None, Some(String::new())])
            .build()
            .unwrap();
        let s = batch.texts("s").unwrap();
        assert_eq!(s.len(), 3);
        assert_eq!(s.iter().collect::<Vec<_>>(), [Some("añb"), None, Some("")]);
        // The raw values: the null reads as the placeholder.
        assert_eq!(s.values().len(), 3);
        assert_eq!(s.values().collect::<Vec<_>>(), ["añb", "", ""]);

        let bad = |offsets: Vec<u32>, bytes: &[u8]| {
            Batch::from_wit(wit::Batch {
                num_rows: 1,
                columns: vec![wit::Column {
                    name: "s".into(),
                    values: wit::ColumnValues::Text(wit::TextValues {
                        offsets,
                        bytes: bytes.to_vec(),
                    }),
                    validity: Vec::new(),
                }],
            })
        };
        // Past the end, decreasing, inside a character, not UTF-8.
        for batch in [
            bad(vec![0, 9], b"ab"),
            bad(vec![0, 2, 1, 2], b"ab"),
            bad(vec![0, 2, 4], "añb".as_bytes()),
            bad(vec![0, 1], &[0xff]),
        ] {
            let error = batch.texts("s").unwrap_err().to_string();
            assert!(error.contains("text column `s`"), "{error}");
        }
    }

    #[test]
    fn unequal_columns_are_refused() {
        let error = BatchBuilder::new()
            .f64("a", vec![1.0, 2.0])
            .f64("b", vec![1.0])
            .build()
            .unwrap_err();
        assert!(error.to_string().contains("`b` has 1 rows"), "{error}");
    }
}
