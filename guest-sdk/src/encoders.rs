//! Feature encoders shipped in the package: the columns of a batch to a graph's float32
//! feature tensor, without category lists copied into the model's code.
//!
//! The manifest declares each encoder (`[[encoder]] name = "features", file =
//! "encoders/features.toml"`); `scripts/export-sklearn.py` writes the file from a fitted
//! scikit-learn `ColumnTransformer`, so the levels, means and fill values are the fitted ones,
//! in the fitted order. The host checks the file and hands it to the model through the contract;
//! [`get`] reads it once per instance:
//!
//! ```no_run
//! # use cordon_guest::{Batch, ModelError};
//! # fn score(input: &Batch) -> Result<(), ModelError> {
//! let encoder = cordon_guest::encoders::get("features")?;
//! let features = encoder.tensor(input)?; // float32 [rows, encoder.width()]
//! let outputs = cordon_guest::nn::session("credit")?.run(vec![("features", features)])?;
//! # Ok(())
//! # }
//! ```
//!
//! What each column becomes, as scikit-learn computes it:
//! - **number**: `(value - center) / scale` in float64, then rounded to float32 once
//!   (`StandardScaler`; center 0 and scale 1 pass the value through). A null or NaN is replaced
//!   by `fill` first (`SimpleImputer`); without a fill, it is refused.
//! - **one-hot**: one feature per level but the dropped one (`OneHotEncoder`, `drop`); a null is
//!   replaced by `fill` first; a value outside the levels is refused (`handle_unknown="error"`)
//!   or encodes as all zeros (`"ignore"`).
//! - **ordinal**: one feature, the level's index (`OrdinalEncoder`); an unknown value is refused
//!   or becomes `unknown_value`.
//!
//! Levels are found through a hash table built once, not a search of the list per row, so a
//! column with a thousand levels costs what one with three does.
//!
//! On a native target (a model's unit tests) there is no host: build an encoder from a spec
//! with [`Encoder::new`].
//!
//! ```
//! use cordon_guest::BatchBuilder;
//! use cordon_guest::encoders::{Encoder, EncoderSpec, Encoding, UnknownLevel};
//!
//! let encoder = Encoder::new(EncoderSpec {
//!     name: "features".into(),
//!     columns: vec![
//!         ("age".into(), Encoding::Number { center: 40.0, scale: 10.0, fill: Some(40.0) }),
//!         ("purpose".into(), Encoding::OneHot {
//!             levels: vec!["car".into(), "home".into()],
//!             fill: None,
//!             unknown: UnknownLevel::Ignore,
//!             drop: None,
//!         }),
//!     ],
//! })
//! .unwrap();
//! let batch = BatchBuilder::new()
//!     .nullable_i64("age", vec![Some(50), None])
//!     .text("purpose", vec!["home".into(), "boat".into()])
//!     .build()
//!     .unwrap();
//! assert_eq!(encoder.width(), 3);
//! assert_eq!(encoder.encode(&batch).unwrap(), vec![1.0, 0.0, 1.0, 0.0, 0.0, 0.0]);
//! ```

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use crate::ModelError;
use crate::batch::{Batch, ColumnType, TextBytes};
use crate::nn::Tensor;

/// What a value outside a column's levels becomes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum UnknownLevel {
    /// The batch is refused, naming the column, the row and the value.
    Error,
    /// One-hot: every feature of the column is 0.
    Ignore,
    /// Ordinal: this number.
    Value(f64),
}

/// What one column becomes.
#[derive(Debug, Clone, PartialEq)]
pub enum Encoding {
    Number {
        center: f64,
        scale: f64,
        fill: Option<f64>,
    },
    OneHot {
        levels: Vec<String>,
        fill: Option<String>,
        unknown: UnknownLevel,
        /// The index of the level without a feature of its own.
        drop: Option<usize>,
    },
    Ordinal {
        levels: Vec<String>,
        fill: Option<String>,
        unknown: UnknownLevel,
    },
}

/// An encoder as the package defines it: its columns, in feature order.
#[derive(Debug, Clone, PartialEq)]
pub struct EncoderSpec {
    pub name: String,
    pub columns: Vec<(String, Encoding)>,
}

/// The encoder `name` from the package (`cordon:model/encoders`), built on first use and kept
/// for the instance's life. Only inside Cordon: on a native target there is no host to ask.
pub fn get(name: &str) -> Result<Rc<Encoder>, ModelError> {
    thread_local! {
        static ENCODERS: RefCell<BTreeMap<String, Rc<Encoder>>> = const {
            RefCell::new(BTreeMap::new())
        };
    }
    if let Some(encoder) = ENCODERS.with(|built| built.borrow().get(name).cloned()) {
        return Ok(encoder);
    }
    let encoder = Rc::new(Encoder::from_host(name)?);
    ENCODERS.with(|built| {
        built
            .borrow_mut()
            .insert(name.to_owned(), Rc::clone(&encoder))
    });
    Ok(encoder)
}

/// Turns batches into row-major float32 features, `width()` per row.
#[derive(Debug, Clone)]
pub struct Encoder {
    name: String,
    width: usize,
    columns: Vec<ColumnEncoder>,
}

#[derive(Debug, Clone)]
struct ColumnEncoder {
    column: String,
    /// The position of the column's first feature in a row.
    offset: usize,
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    Number {
        center: f64,
        scale: f64,
        fill: Option<f64>,
    },
    Categorical(Categorical),
}

#[derive(Debug, Clone)]
struct Categorical {
    /// Each level with its action: one-hot, the position of its feature after the column's
    /// first (`NO_FEATURE` for the dropped level); ordinal, its index.
    levels: LevelTable,
    one_hot: bool,
    /// The action of the level a null becomes, when the fill is one; `None` with a fill
    /// outside the levels or no fill (the unknown rule applies).
    null_action: Option<u32>,
    fill_text: Option<String>,
    unknown: UnknownLevel,
}

const NO_FEATURE: u32 = u32::MAX;

impl Encoder {
    /// An encoder from its spec: for unit tests, and what [`get`] builds from the host's.
    pub fn new(spec: EncoderSpec) -> Result<Encoder, ModelError> {
        let mut width = 0usize;
        let mut columns = Vec::with_capacity(spec.columns.len());
        for (column, encoding) in spec.columns {
            check_spec(&spec.name, &column, &encoding)?;
            let offset = width;
            let kind = match encoding {
                Encoding::Number {
                    center,
                    scale,
                    fill,
                } => {
                    width += 1;
                    Kind::Number {
                        center,
                        scale,
                        fill,
                    }
                }
                Encoding::OneHot {
                    levels,
                    fill,
                    unknown,
                    drop,
                } => {
                    // What the unchecked writes of `encode` rely on: every one-hot write is to
                    // one of the column's own features.
                    let invalid = |why: &str| {
                        ModelError::Internal(format!(
                            "encoder `{}`, column `{column}`: {why}",
                            spec.name
                        ))
                    };
                    if matches!(unknown, UnknownLevel::Value(_)) {
                        return Err(invalid(
                            "a one-hot encoding ignores or refuses an unknown level; a value is for ordinal",
                        ));
                    }
                    if drop.is_some_and(|index| index >= levels.len()) {
                        return Err(invalid(
                            "the dropped level's index is not one of its levels",
                        ));
                    }
                    if levels.len() >= NO_FEATURE as usize {
                        return Err(invalid("too many levels"));
                    }
                    let mut positions = Vec::with_capacity(levels.len());
                    let mut next = 0u32;
                    for index in 0..levels.len() {
                        if Some(index) == drop {
                            positions.push(NO_FEATURE);
                        } else {
                            positions.push(next);
                            next += 1;
                        }
                    }
                    width += next as usize;
                    Kind::Categorical(Categorical::new(levels, positions, true, fill, unknown))
                }
                Encoding::Ordinal {
                    levels,
                    fill,
                    unknown,
                } => {
                    width += 1;
                    let indices = (0..levels.len() as u32).collect();
                    Kind::Categorical(Categorical::new(levels, indices, false, fill, unknown))
                }
            };
            columns.push(ColumnEncoder {
                column,
                offset,
                kind,
            });
        }
        if width == 0 {
            return Err(ModelError::Internal(format!(
                "encoder `{}` makes no features",
                spec.name
            )));
        }
        Ok(Encoder {
            name: spec.name,
            width,
            columns,
        })
    }

    /// The encoder `name` as the host gives it.
    pub fn from_host(name: &str) -> Result<Encoder, ModelError> {
        use crate::bindings::cordon::model::encoders::{self as wit, all};
        let unknown = |rule: wit::UnknownLevel| match rule {
            wit::UnknownLevel::Error => UnknownLevel::Error,
            wit::UnknownLevel::Ignore => UnknownLevel::Ignore,
            wit::UnknownLevel::Value(value) => UnknownLevel::Value(value),
        };
        let encoders = all();
        let known: Vec<String> = encoders.iter().map(|e| e.name.clone()).collect();
        let Some(encoder) = encoders.into_iter().find(|e| e.name == name) else {
            return Err(ModelError::Internal(format!(
                "encoder `{name}` is not declared in the manifest's [[encoder]]s (it declares: {})",
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            )));
        };
        let columns = encoder
            .columns
            .into_iter()
            .map(|column| {
                let encoding = match column.encoding {
                    wit::Encoding::Number(number) => Encoding::Number {
                        center: number.center,
                        scale: number.scale,
                        fill: number.fill,
                    },
                    wit::Encoding::OneHot(one_hot) => Encoding::OneHot {
                        levels: one_hot.categories.levels,
                        fill: one_hot.categories.fill,
                        unknown: unknown(one_hot.categories.unknown),
                        drop: one_hot.drop.map(|index| index as usize),
                    },
                    wit::Encoding::Ordinal(categories) => Encoding::Ordinal {
                        levels: categories.levels,
                        fill: categories.fill,
                        unknown: unknown(categories.unknown),
                    },
                };
                (column.column, encoding)
            })
            .collect();
        Encoder::new(EncoderSpec {
            name: encoder.name,
            columns,
        })
    }

    /// Features per row.
    pub fn width(&self) -> usize {
        self.width
    }

    /// The encoder's name in the manifest.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Every feature's name, in order: `age`, `purpose=car`, ... (as scikit-learn's
    /// `get_feature_names_out` would have it, without the transformer prefix).
    pub fn feature_names(&self) -> Vec<String> {
        let mut names = Vec::with_capacity(self.width);
        for column in &self.columns {
            match &column.kind {
                Kind::Number { .. } => names.push(column.column.clone()),
                Kind::Categorical(categorical) if categorical.one_hot => {
                    let levels = &categorical.levels;
                    for (level, action) in levels.levels.iter().zip(&levels.actions) {
                        if *action != NO_FEATURE {
                            names.push(format!("{}={}", column.column, level));
                        }
                    }
                }
                Kind::Categorical(_) => names.push(column.column.clone()),
            }
        }
        names
    }

    /// Every row's features, row-major, `width()` per row.
    pub fn encode(&self, input: &Batch) -> Result<Vec<f32>, ModelError> {
        let rows = input.num_rows();
        let len = rows.checked_mul(self.width).ok_or_else(|| {
            ModelError::InvalidInput(format!("{rows} rows of {} features", self.width))
        })?;
        // Zeros first: a one-hot column then writes only its ones.
        let mut features = vec![0.0f32; len];
        for column in &self.columns {
            self.encode_column(column, input, &mut features)?;
        }
        Ok(features)
    }

    /// The features as a float32 tensor of shape `[rows, width()]`, ready for a graph.
    pub fn tensor(&self, input: &Batch) -> Result<Tensor, ModelError> {
        let features = self.encode(input)?;
        let too_long = || ModelError::InvalidInput("the batch is too long for a tensor".into());
        let dimensions = [
            u32::try_from(input.num_rows()).map_err(|_| too_long())?,
            u32::try_from(self.width).map_err(|_| too_long())?,
        ];
        Ok(Tensor::from_f32(&dimensions, &features))
    }

    fn encode_column(
        &self,
        encoder: &ColumnEncoder,
        input: &Batch,
        features: &mut [f32],
    ) -> Result<(), ModelError> {
        let name = encoder.column.as_str();
        match &encoder.kind {
            Kind::Number {
                center,
                scale,
                fill,
            } => {
                let numbers = Numbers {
                    encoder: self,
                    column: name,
                    at: encoder.offset,
                    center: *center,
                    scale: *scale,
                    fill: *fill,
                };
                let rows = features.chunks_exact_mut(self.width);
                match input.column_type(name) {
                    Some(ColumnType::Float64) => {
                        let column = input.f64s(name)?;
                        numbers.write(rows, column.values(), column.validity(), |v| v)
                    }
                    Some(ColumnType::Float32) => {
                        let column = input.f32s(name)?;
                        numbers.write(rows, column.values(), column.validity(), f64::from)
                    }
                    Some(ColumnType::Int64) => {
                        let column = input.i64s(name)?;
                        numbers.write(rows, column.values(), column.validity(), |v| v as f64)
                    }
                    Some(ColumnType::Boolean) => {
                        let column = input.bools(name)?;
                        numbers.write(rows, column.values(), column.validity(), |v| {
                            if v { 1.0 } else { 0.0 }
                        })
                    }
                    other => Err(self.wrong_type(name, "a number", other)),
                }
            }
            Kind::Categorical(categorical) => {
                if input.column_type(name) != Some(ColumnType::Text) {
                    return Err(self.wrong_type(name, "text", input.column_type(name)));
                }
                let column = input.text_bytes(name)?;
                self.encode_text(encoder, categorical, &column, features)
            }
        }
    }

    /// A text column, one level lookup per row: a loop of its own for each kind of table, so
    /// that the choice between them is made once, not per row.
    fn encode_text(
        &self,
        encoder: &ColumnEncoder,
        categorical: &Categorical,
        column: &TextBytes<'_>,
        features: &mut [f32],
    ) -> Result<(), ModelError> {
        let levels = &categorical.levels;
        if levels.small.is_empty() {
            self.encode_text_with(
                encoder,
                categorical,
                column,
                features,
                |bytes, start, end| levels.find_hashed(bytes, start, end),
            )
        } else {
            self.encode_text_with(
                encoder,
                categorical,
                column,
                features,
                |bytes, start, end| levels.find_small(bytes, start, end),
            )
        }
    }

    #[inline(always)]
    fn encode_text_with(
        &self,
        encoder: &ColumnEncoder,
        categorical: &Categorical,
        column: &TextBytes<'_>,
        features: &mut [f32],
        find: impl Fn(&[u8], usize, usize) -> Option<u32>,
    ) -> Result<(), ModelError> {
        let rows = features.len() / self.width;
        let TextBytes {
            offsets,
            bytes,
            validity,
        } = *column;
        let nullable = !validity.is_empty();
        // Checked once, so that the loop below reads and writes with no test per row: it is
        // most of a cheap graph's time on WebAssembly, where every test is also fuel.
        let values = offsets.len().saturating_sub(1);
        if values != rows || features.len() != rows * self.width {
            return Err(self.short_column(&encoder.column, values));
        }
        if nullable && validity.len() != rows {
            return Err(self.short_column(&encoder.column, validity.len()));
        }
        let first = encoder.offset;
        // Where an unknown value goes: nowhere (ignore), a number (ordinal), or the end of the
        // loop (refused, named after it).
        let (unknown_value, refuse_unknown) = match categorical.unknown {
            UnknownLevel::Ignore => (None, false),
            UnknownLevel::Value(value) => (Some(value as f32), false),
            UnknownLevel::Error => (None, true),
        };
        let mut refused = None;
        for row in 0..rows {
            // SAFETY: `offsets` has `rows + 1` entries (checked above), in order and inside
            // `bytes` (checked by `Batch::text_bytes`); `validity` has `rows` when not empty.
            let (start, end, null) = unsafe {
                (
                    *offsets.get_unchecked(row) as usize,
                    *offsets.get_unchecked(row + 1) as usize,
                    nullable && *validity.get_unchecked(row) == 0,
                )
            };
            let found = if null {
                categorical.null_action
            } else {
                find(bytes, start, end)
            };
            let row_start = row * self.width + first;
            match found {
                Some(action) if categorical.one_hot => {
                    if action != NO_FEATURE {
                        // SAFETY: a one-hot action is below the column's feature count, so
                        // `first + action` is inside the row (see `Encoder::new`).
                        unsafe { *features.get_unchecked_mut(row_start + action as usize) = 1.0 };
                    }
                }
                // SAFETY: an ordinal column has one feature, at `first`, inside the row.
                Some(level) => unsafe { *features.get_unchecked_mut(row_start) = level as f32 },
                None => {
                    if let Some(value) = unknown_value {
                        // SAFETY: only an ordinal column has an unknown value (see
                        // `Encoder::new`), and its feature is at `first`.
                        unsafe { *features.get_unchecked_mut(row_start) = value };
                    } else if refuse_unknown {
                        refused = Some((row, null, start, end));
                        break;
                    }
                }
            }
        }
        if let Some((row, null, start, end)) = refused {
            let shown = if null {
                match &categorical.fill_text {
                    Some(fill) => format!("null (filled as `{}`)", preview(fill)),
                    None => "null".to_owned(),
                }
            } else {
                let value = bytes.get(start..end).unwrap_or_default();
                format!("`{}`", preview(&String::from_utf8_lossy(value)))
            };
            return Err(ModelError::InvalidInput(format!(
                "column `{}`, row {row}: {shown} is not one of the {} levels encoder `{}` knows",
                encoder.column,
                categorical.levels.len(),
                self.name
            )));
        }
        Ok(())
    }

    fn null_refused(&self, column: &str, row: usize) -> ModelError {
        ModelError::InvalidInput(format!(
            "column `{column}`, row {row}: null, and encoder `{}` has no fill for it",
            self.name
        ))
    }

    fn wrong_type(&self, column: &str, wanted: &str, found: Option<ColumnType>) -> ModelError {
        ModelError::InvalidInput(match found {
            None => format!(
                "encoder `{}` reads column `{column}`, which the batch does not have",
                self.name
            ),
            Some(found) => format!(
                "encoder `{}` reads column `{column}` as {wanted}, but it is {found}",
                self.name
            ),
        })
    }

    fn short_column(&self, column: &str, len: usize) -> ModelError {
        ModelError::InvalidInput(format!(
            "column `{column}` holds {len} values, not one per row (encoder `{}`)",
            self.name
        ))
    }
}

/// What [`Encoder::new`] refuses in any column, as the host refuses it in a package's file: a
/// spec a provider writes by hand in a unit test is held to the same rules.
fn check_spec(encoder: &str, column: &str, encoding: &Encoding) -> Result<(), ModelError> {
    let invalid =
        |why: &str| ModelError::Internal(format!("encoder `{encoder}`, column `{column}`: {why}"));
    match encoding {
        Encoding::Number { center, scale, .. } => {
            if !center.is_finite() || !scale.is_finite() || *scale == 0.0 {
                return Err(invalid("center and scale must be finite, and scale not 0"));
            }
        }
        Encoding::OneHot { levels, .. } | Encoding::Ordinal { levels, .. } => {
            if levels.is_empty() {
                return Err(invalid("it lists no levels"));
            }
            let mut seen = std::collections::BTreeSet::new();
            if let Some(twice) = levels.iter().find(|level| !seen.insert(level.as_str())) {
                return Err(invalid(&format!(
                    "level `{}` is listed twice",
                    preview(twice)
                )));
            }
            if let Encoding::Ordinal {
                unknown: UnknownLevel::Ignore,
                ..
            } = encoding
            {
                return Err(invalid(
                    "an ordinal encoding refuses an unknown level or gives it a value; ignore is for one-hot",
                ));
            }
        }
    }
    Ok(())
}

/// One number column's encoding, applied to a batch's values.
struct Numbers<'a> {
    encoder: &'a Encoder,
    column: &'a str,
    /// The feature's position in a row.
    at: usize,
    center: f64,
    scale: f64,
    fill: Option<f64>,
}

impl Numbers<'_> {
    /// Writes every row's feature: the value (or the fill, for a null or NaN), centred and
    /// scaled in float64 as StandardScaler does, then rounded to float32 once.
    fn write<T: Copy>(
        &self,
        rows: std::slice::ChunksExactMut<'_, f32>,
        values: &[T],
        validity: &[u8],
        to_f64: impl Fn(T) -> f64,
    ) -> Result<(), ModelError> {
        if values.len() != rows.len() {
            return Err(self.encoder.short_column(self.column, values.len()));
        }
        let nullable = !validity.is_empty();
        if nullable && validity.len() != values.len() {
            return Err(self.encoder.short_column(self.column, validity.len()));
        }
        for (row, (features, value)) in rows.zip(values).enumerate() {
            let null = nullable && validity.get(row).is_none_or(|valid| *valid == 0);
            let mut value = to_f64(*value);
            if null || value.is_nan() {
                value = self
                    .fill
                    .ok_or_else(|| self.encoder.null_refused(self.column, row))?;
            }
            if let Some(slot) = features.get_mut(self.at) {
                *slot = ((value - self.center) / self.scale) as f32;
            }
        }
        Ok(())
    }
}

/// A value shown in an error: the first 64 characters.
fn preview(value: &str) -> String {
    match value.char_indices().nth(64) {
        Some((cut, _)) => format!("{}...", value.get(..cut).unwrap_or_default()),
        None => value.to_owned(),
    }
}

impl Categorical {
    /// `actions[i]` is what level `i` writes (see [`Categorical::levels`]).
    fn new(
        levels: Vec<String>,
        actions: Vec<u32>,
        one_hot: bool,
        fill: Option<String>,
        unknown: UnknownLevel,
    ) -> Categorical {
        let levels = LevelTable::new(&levels, &actions);
        let null_action = fill
            .as_deref()
            .and_then(|fill| levels.find(fill.as_bytes()));
        Categorical {
            levels,
            one_hot,
            null_action,
            fill_text: fill,
            unknown,
        }
    }
}

/// A text value's length and up to sixteen of its bytes as two words: for a value of at most
/// sixteen bytes (nearly every category name) the whole value, so that two keys compare in
/// three integer comparisons, with no call to `memcmp` (which is a byte loop on WebAssembly).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Key {
    len: u32,
    /// The first eight bytes (fewer, zero-padded, for a shorter value).
    head: u64,
    /// The last eight bytes (overlapping `head` below sixteen); 0 below nine.
    tail: u64,
}

impl Key {
    /// The key of `bytes[start..end]`. Reading a word at `start` when the value is shorter is
    /// allowed inside the buffer: the bytes past the value are masked off.
    #[inline(always)]
    fn at(bytes: &[u8], start: usize, end: usize) -> Key {
        let len = end.saturating_sub(start);
        let word = |at: usize| {
            (at.checked_add(8)? <= bytes.len()).then(|| {
                // SAFETY: the eight bytes from `at` are inside `bytes` (checked just above).
                let word = unsafe { bytes.as_ptr().add(at).cast::<u64>().read_unaligned() };
                u64::from_le(word)
            })
        };
        if len <= 8 {
            let head = match word(start) {
                Some(word) if len == 8 => word,
                Some(word) => word & ((1u64 << (8 * len)) - 1),
                // Near the buffer's end: byte by byte.
                None => bytes
                    .get(start..end)
                    .unwrap_or_default()
                    .iter()
                    .rev()
                    .fold(0u64, |word, byte| (word << 8) | u64::from(*byte)),
            };
            Key {
                len: len as u32,
                head,
                tail: 0,
            }
        } else {
            Key {
                len: u32::try_from(len).unwrap_or(u32::MAX),
                head: word(start).unwrap_or_default(),
                tail: word(end - 8).unwrap_or_default(),
            }
        }
    }

    /// Whether the key holds its whole value.
    fn is_whole(&self) -> bool {
        self.len <= 16
    }

    #[inline(always)]
    fn hash(&self) -> u32 {
        let mixed = (self.head ^ self.tail.rotate_left(29) ^ (u64::from(self.len) << 56))
            .wrapping_mul(0x9E37_79B9_7F4A_7C15);
        (mixed >> 32) as u32
    }
}

/// One slot of the level table.
#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    key: Key,
    /// The level's index, or `EMPTY`.
    index: u32,
    /// What the level writes (see [`Categorical::levels`]).
    action: u32,
}

const EMPTY: u32 = u32::MAX;

/// Most levels compared in turn rather than hashed.
const SMALL: usize = 8;

/// An open-addressing hash table from a level's bytes to its index, built once: per row one
/// key, one hash and, nearly always, one slot compared.
#[derive(Debug, Clone)]
struct LevelTable {
    levels: Vec<String>,
    actions: Vec<u32>,
    /// For a few short levels (at most `SMALL` of at most sixteen bytes, nearly every category
    /// column): every level's key and action, compared in turn, which costs less than hashing.
    small: Vec<(Key, u32)>,
    /// A power of two at least twice the levels, so that a probe always meets an empty slot.
    slots: Vec<Slot>,
    mask: u32,
}

impl LevelTable {
    /// The table of `levels`, level `i` answering `actions[i]` (its index where absent).
    fn new(levels: &[String], actions: &[u32]) -> LevelTable {
        let size = (levels.len() * 2).next_power_of_two().max(8);
        let mut table = LevelTable {
            levels: levels.to_vec(),
            actions: actions.to_vec(),
            small: Vec::new(),
            slots: vec![
                Slot {
                    key: Key::default(),
                    index: EMPTY,
                    action: EMPTY,
                };
                size
            ],
            mask: (size - 1) as u32,
        };
        for (index, level) in levels.iter().enumerate() {
            let bytes = level.as_bytes();
            // A level listed twice keeps its first index (the host refuses duplicates anyway).
            if table.find(bytes).is_some() {
                continue;
            }
            let key = Key::at(bytes, 0, bytes.len());
            let mut at = key.hash() & table.mask;
            while table
                .slots
                .get(at as usize)
                .is_some_and(|s| s.index != EMPTY)
            {
                at = (at + 1) & table.mask;
            }
            let action = actions.get(index).copied().unwrap_or(index as u32);
            if let Some(slot) = table.slots.get_mut(at as usize) {
                *slot = Slot {
                    key,
                    index: index as u32,
                    action,
                };
            }
        }
        let slots = table.slots.iter().filter(|slot| slot.index != EMPTY);
        if levels.len() <= SMALL && slots.clone().all(|slot| slot.key.is_whole()) {
            let mut small: Vec<(Key, u32)> = slots.map(|slot| (slot.key, slot.action)).collect();
            small.sort_by_key(|(_, action)| *action);
            table.small = small;
        }
        table
    }

    fn len(&self) -> usize {
        self.levels.len()
    }

    fn find(&self, value: &[u8]) -> Option<u32> {
        self.find_at(value, 0, value.len())
    }

    /// The action of the level equal to `bytes[start..end]`.
    fn find_at(&self, bytes: &[u8], start: usize, end: usize) -> Option<u32> {
        if self.small.is_empty() {
            self.find_hashed(bytes, start, end)
        } else {
            self.find_small(bytes, start, end)
        }
    }

    /// [`LevelTable::find_at`] for a small table: whole keys, so equal keys are equal values.
    #[inline(always)]
    fn find_small(&self, bytes: &[u8], start: usize, end: usize) -> Option<u32> {
        let key = Key::at(bytes, start, end);
        self.small
            .iter()
            .find(|(level, _)| *level == key)
            .map(|(_, action)| *action)
    }

    /// [`LevelTable::find_at`] through the hash table.
    #[inline(always)]
    fn find_hashed(&self, bytes: &[u8], start: usize, end: usize) -> Option<u32> {
        let key = Key::at(bytes, start, end);
        let mut at = key.hash() & self.mask;
        // At most every slot once: the table is never full, so an empty slot ends the probe.
        for _ in 0..self.slots.len() {
            let slot = self.slots.get(at as usize)?;
            if slot.index == EMPTY {
                return None;
            }
            if slot.key == key
                && (key.is_whole()
                    || self.levels.get(slot.index as usize).map(String::as_bytes)
                        == bytes.get(start..end))
            {
                return Some(slot.action);
            }
            at = (at + 1) & self.mask;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BatchBuilder;

    fn levels(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn level_lookup_finds_every_level_and_nothing_else() {
        let many: Vec<String> = (0..1000).map(|i| format!("level number {i}")).collect();
        let table = LevelTable::new(&many, &[]);
        for (index, level) in many.iter().enumerate() {
            assert_eq!(table.find(level.as_bytes()), Some(index as u32), "{level}");
        }
        for absent in ["", "level number 1000", "level number", "evel number 1"] {
            assert_eq!(table.find(absent.as_bytes()), None, "{absent}");
        }
        let short = LevelTable::new(&levels(&["", "a", "ab", "ba", "Yes", "No"]), &[]);
        for (index, level) in ["", "a", "ab", "ba", "Yes", "No"].iter().enumerate() {
            assert_eq!(short.find(level.as_bytes()), Some(index as u32));
        }
        assert_eq!(short.find(b"b"), None);
        // Inside a longer buffer, at its end, and past sixteen bytes, where only the head and
        // tail words are in the key and the middle decides.
        let long = LevelTable::new(
            &levels(&[
                "Bank transfer (automatic)",
                "Bank transfer (manual) ic)",
                "Yes",
            ]),
            &[],
        );
        let buffer = b"xxYesNoBank transfer (automatic)Bank transfer (Automatic)Yes";
        assert_eq!(long.find_at(buffer, 2, 5), Some(2));
        assert_eq!(long.find_at(buffer, 5, 7), None);
        assert_eq!(long.find_at(buffer, 7, 32), Some(0));
        assert_eq!(long.find_at(buffer, 32, 57), None);
        assert_eq!(long.find_at(buffer, 57, 60), Some(2));
        // Levels with the same length, head and tail words: the probe must compare the middle
        // bytes too.
        let alike: Vec<String> = (0..20)
            .map(|i| format!("Bank transfer {i:02} (automatic)"))
            .collect();
        let table = LevelTable::new(&alike, &[]);
        for (index, level) in alike.iter().enumerate() {
            assert_eq!(table.find(level.as_bytes()), Some(index as u32), "{level}");
        }
        assert_eq!(table.find(b"Bank transfer 99 (automatic)"), None);
    }

    fn credit() -> Encoder {
        Encoder::new(EncoderSpec {
            name: "features".into(),
            columns: vec![
                (
                    "income".into(),
                    Encoding::Number {
                        center: 50_000.0,
                        scale: 20_000.0,
                        fill: Some(45_000.0),
                    },
                ),
                (
                    "purpose".into(),
                    Encoding::OneHot {
                        levels: levels(&["car", "home", "study"]),
                        fill: Some("home".into()),
                        unknown: UnknownLevel::Ignore,
                        drop: Some(0),
                    },
                ),
                (
                    "housing".into(),
                    Encoding::Ordinal {
                        levels: levels(&["own", "rent"]),
                        fill: None,
                        unknown: UnknownLevel::Value(-1.0),
                    },
                ),
            ],
        })
        .unwrap()
    }

    #[test]
    fn columns_encode_as_scikit_learn_does() {
        let encoder = credit();
        assert_eq!(encoder.width(), 4);
        assert_eq!(
            encoder.feature_names(),
            ["income", "purpose=home", "purpose=study", "housing"]
        );
        let batch = BatchBuilder::new()
            .nullable_f64("income", vec![Some(70_000.0), None, Some(f64::NAN)])
            .nullable_text(
                "purpose",
                vec![Some("car".into()), None, Some("boat".into())],
            )
            .nullable_text("housing", vec![Some("rent".into()), Some("x".into()), None])
            .build()
            .unwrap();
        let fill = ((45_000.0f64 - 50_000.0) / 20_000.0) as f32;
        assert_eq!(
            encoder.encode(&batch).unwrap(),
            vec![
                1.0, 0.0, 0.0, 1.0, // car is dropped
                fill, 1.0, 0.0, -1.0, // null purpose is filled as home
                fill, 0.0, 0.0, -1.0, // boat is ignored; null housing is unknown
            ]
        );
    }

    #[test]
    fn specs_the_encoder_cannot_write_safely_are_refused() {
        let one_hot = |unknown, drop| EncoderSpec {
            name: "features".into(),
            columns: vec![(
                "purpose".into(),
                Encoding::OneHot {
                    levels: levels(&["car"]),
                    fill: None,
                    unknown,
                    drop,
                },
            )],
        };
        for (spec, why) in [
            (
                one_hot(UnknownLevel::Value(-1.0), None),
                "a value is for ordinal",
            ),
            (one_hot(UnknownLevel::Ignore, Some(5)), "dropped level"),
            (one_hot(UnknownLevel::Ignore, Some(0)), "makes no features"),
            (
                EncoderSpec {
                    name: "features".into(),
                    columns: vec![(
                        "housing".into(),
                        Encoding::Ordinal {
                            levels: levels(&["own"]),
                            fill: None,
                            unknown: UnknownLevel::Ignore,
                        },
                    )],
                },
                "ignore is for one-hot",
            ),
            (
                EncoderSpec {
                    name: "features".into(),
                    columns: vec![(
                        "age".into(),
                        Encoding::Number {
                            center: 0.0,
                            scale: 0.0,
                            fill: None,
                        },
                    )],
                },
                "scale not 0",
            ),
        ] {
            let error = Encoder::new(spec).unwrap_err().to_string();
            assert!(error.contains(why), "{error}");
        }
    }

    #[test]
    fn refusals_name_the_column_row_and_value() {
        let encoder = Encoder::new(EncoderSpec {
            name: "features".into(),
            columns: vec![
                (
                    "age".into(),
                    Encoding::Number {
                        center: 0.0,
                        scale: 1.0,
                        fill: None,
                    },
                ),
                (
                    "purpose".into(),
                    Encoding::OneHot {
                        levels: levels(&["car"]),
                        fill: None,
                        unknown: UnknownLevel::Error,
                        drop: None,
                    },
                ),
            ],
        })
        .unwrap();
        let batch = |age: Option<i64>, purpose: &str| {
            BatchBuilder::new()
                .nullable_i64("age", vec![Some(1), age])
                .text("purpose", vec!["car".into(), purpose.into()])
                .build()
                .unwrap()
        };
        let error = encoder.encode(&batch(None, "car")).unwrap_err().to_string();
        assert!(error.contains("`age`, row 1: null"), "{error}");
        let error = encoder
            .encode(&batch(Some(2), "boat"))
            .unwrap_err()
            .to_string();
        assert!(error.contains("`purpose`, row 1: `boat`"), "{error}");
        let missing = BatchBuilder::new().i64("age", vec![1]).build().unwrap();
        let error = encoder.encode(&missing).unwrap_err().to_string();
        assert!(error.contains("does not have"), "{error}");
        let wrong = BatchBuilder::new()
            .text("age", vec!["1".into()])
            .text("purpose", vec!["car".into()])
            .build()
            .unwrap();
        let error = encoder.encode(&wrong).unwrap_err().to_string();
        assert!(error.contains("as a number, but it is text"), "{error}");
    }
}
