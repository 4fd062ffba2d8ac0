//! Batches and Arrow: the Arrow type of each column type, and Arrow arrays read into the
//! boundary's layout (null slots as placeholders, never what Arrow kept in them).

use datafusion::arrow::array::{Array, ArrayRef, AsArray, StringArray};
use datafusion::arrow::datatypes::{ArrowPrimitiveType, DataType, TimeUnit};

use crate::data::TextValues;
use crate::types::ColumnType;

/// A source column's type forced by the policy's `schema` table (CSV only).
pub fn arrow_type(ty: ColumnType) -> DataType {
    match ty {
        ColumnType::Float64 => DataType::Float64,
        ColumnType::Float32 => DataType::Float32,
        ColumnType::Int64 => DataType::Int64,
        ColumnType::Boolean => DataType::Boolean,
        ColumnType::Text => DataType::Utf8,
        ColumnType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
    }
}

/// A primitive array's values with every null slot set to zero, the placeholder the contract
/// promises. Arrow leaves whatever a kernel put in a null slot: `nullif` only marks the value
/// null and keeps it, so a value the consumer's policy nulled would otherwise reach the model.
pub fn primitive_values<T: ArrowPrimitiveType>(array: &ArrayRef) -> Vec<T::Native> {
    let array = array.as_primitive::<T>();
    let mut values = array.values().to_vec();
    if let Some(nulls) = array.nulls().filter(|nulls| nulls.null_count() > 0) {
        for (value, valid) in values.iter_mut().zip(nulls.iter()) {
            if !valid {
                *value = T::Native::default();
            }
        }
    }
    values
}

/// A boolean array's values, false in every null slot (see `primitive_values`).
pub fn flag_values(array: &ArrayRef) -> Vec<bool> {
    let flags = array.as_boolean();
    (0..flags.len())
        .map(|row| flags.is_valid(row) && flags.value(row))
        .collect()
}

/// Arrow's string array as the boundary's layout: its offsets and bytes copied as they are.
/// Where a row is null the value is left empty, whatever bytes Arrow keeps in the slot: some
/// kernels (`nullif`, say) only mark a value null and keep it, and it must not reach a model.
pub fn text_values(strings: &StringArray) -> Result<TextValues, String> {
    const TOO_LONG: &str = "text past 4 GiB in one batch";
    if strings.null_count() == 0 {
        let offsets = strings.value_offsets();
        let (Some(&first), Some(&last)) = (offsets.first(), offsets.last()) else {
            return Ok(TextValues::default());
        };
        let bytes = usize::try_from(first)
            .ok()
            .zip(usize::try_from(last).ok())
            .and_then(|(first, last)| strings.value_data().get(first..last))
            .ok_or("Arrow offsets outside the array's data")?
            .to_vec();
        let offsets = offsets
            .iter()
            .map(|o| u32::try_from(o - first).ok())
            .collect::<Option<Vec<u32>>>()
            .ok_or(TOO_LONG)?;
        return TextValues::from_parts(offsets, bytes);
    }
    TextValues::from_strs((0..strings.len()).map(|row| {
        if strings.is_null(row) {
            ""
        } else {
            strings.value(row)
        }
    }))
    .ok_or_else(|| TOO_LONG.to_string())
}
