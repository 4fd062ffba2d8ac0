//! Least data: returns, for every row, every column name and value the host handed in, so a
//! test can prove that nothing outside the grant ever reached guest memory. A null shows as
//! `<null>`, or as `<null holding VALUE>` where its slot holds anything but the contract's
//! placeholder (0, false), which would be a nulled value leaking through.

use cordon_guest::{Batch, BatchBuilder, ColumnType, Model, ModelError, ModelInfo};

struct Echo;

/// What the null slot at `row` of numeric or flag column `name` holds, if not the placeholder.
fn held_in_null(input: &Batch, name: &str, row: usize) -> Option<String> {
    fn unless_default<T: Copy + Default + PartialEq + ToString>(
        values: &[T],
        row: usize,
    ) -> Option<String> {
        values
            .get(row)
            .filter(|v| **v != T::default())
            .map(T::to_string)
    }
    match input.column_type(name)? {
        ColumnType::Float64 => unless_default(input.f64s(name).ok()?.values(), row),
        ColumnType::Float32 => unless_default(input.f32s(name).ok()?.values(), row),
        ColumnType::Int64 => unless_default(input.i64s(name).ok()?.values(), row),
        ColumnType::Timestamp => unless_default(input.timestamps(name).ok()?.values(), row),
        ColumnType::Boolean => unless_default(input.bools(name).ok()?.values(), row),
        // Text has no raw view in the SDK; the host's text_values test covers its null slots.
        ColumnType::Text => None,
    }
}

impl Model for Echo {
    fn describe() -> ModelInfo {
        ModelInfo::new("echo-columns", "0.0.0", "echoes its input")
    }

    fn score(input: &Batch) -> Result<Batch, ModelError> {
        let columns = input.to_text_columns();
        let seen = (0..input.num_rows())
            .map(|row| {
                columns
                    .iter()
                    .map(|(name, values)| {
                        let value =
                            values.get(row).cloned().flatten().unwrap_or_else(
                                || match held_in_null(input, name, row) {
                                    Some(held) => format!("<null holding {held}>"),
                                    None => "<null>".into(),
                                },
                            );
                        format!("{name}={value}")
                    })
                    .collect::<Vec<_>>()
                    .join(";")
            })
            .collect();
        BatchBuilder::new().text("seen", seen).build()
    }
}

cordon_guest::export_model!(Echo);
