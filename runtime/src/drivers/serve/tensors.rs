//! The Open Inference Protocol's tensors, whichever way they came (REST JSON, Triton's binary
//! extension, gRPC), as one request type, and the response built from the scored rows. Every
//! size comes from the request and is checked against the bytes really there before anything
//! is allocated for it.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float32Array, Float64Array, Int64Array, StringArray,
    TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{
    DataType, Float32Type, Float64Type, Int64Type, TimeUnit, TimestampMicrosecondType,
};

use super::ServeError;
use crate::manifest::ColumnType;
use crate::source::RequestColumn;

/// A tensor's elements, as they arrived.
#[derive(Debug, Clone, PartialEq)]
pub enum TensorData {
    Fp64(Vec<f64>),
    Fp32(Vec<f32>),
    Int64(Vec<i64>),
    Int32(Vec<i32>),
    Bool(Vec<bool>),
    Bytes(Vec<Vec<u8>>),
}

impl TensorData {
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn len(&self) -> usize {
        match self {
            TensorData::Fp64(v) => v.len(),
            TensorData::Fp32(v) => v.len(),
            TensorData::Int64(v) => v.len(),
            TensorData::Int32(v) => v.len(),
            TensorData::Bool(v) => v.len(),
            TensorData::Bytes(v) => v.len(),
        }
    }
}

/// One named input tensor of a request.
#[derive(Debug, Clone)]
pub struct InputTensor {
    pub name: String,
    pub datatype: String,
    pub shape: Vec<i64>,
    pub data: TensorData,
}

/// An output the caller asks for, and whether it wants it in binary.
#[derive(Debug, Clone)]
pub struct RequestedOutput {
    pub name: String,
    pub binary: Option<bool>,
}

/// One inference request, protocol aside.
#[derive(Debug, Clone, Default)]
pub struct InferRequest {
    pub id: Option<String>,
    pub inputs: Vec<InputTensor>,
    /// `None`: every output.
    pub outputs: Option<Vec<RequestedOutput>>,
    /// The request's `binary_data_output` parameter (REST): outputs in binary unless an
    /// output says otherwise.
    pub binary_output: bool,
}

/// One output tensor: a column of the scored rows, one element per request row.
#[derive(Debug, Clone)]
pub struct OutputTensor {
    pub name: String,
    pub datatype: &'static str,
    pub array: ArrayRef,
    /// REST: whether it goes in the binary section.
    pub binary: bool,
}

/// The answer to one request.
#[derive(Debug, Clone)]
pub struct InferResponse {
    pub model_name: String,
    pub model_version: String,
    pub id: Option<String>,
    pub outputs: Vec<OutputTensor>,
}

/// The protocol's datatype for a column type. Timestamps travel as INT64 microseconds since
/// the epoch.
pub fn datatype_of(ty: ColumnType) -> &'static str {
    match ty {
        ColumnType::Float64 => "FP64",
        ColumnType::Float32 => "FP32",
        ColumnType::Int64 | ColumnType::Timestamp => "INT64",
        ColumnType::Boolean => "BOOL",
        ColumnType::Text => "BYTES",
    }
}

/// The size in bytes of one element of `datatype` in binary, `None` for BYTES (variable) or
/// a datatype Cordon does not take.
fn element_bytes(datatype: &str) -> Option<usize> {
    match datatype {
        "FP64" | "INT64" => Some(8),
        "FP32" | "INT32" => Some(4),
        "BOOL" => Some(1),
        _ => None,
    }
}

/// The number of elements a shape holds: 1-D `[n]` or a column `[n, 1]`, at most `max_rows`.
pub fn rows_of_shape(name: &str, shape: &[i64], max_rows: u64) -> Result<usize, ServeError> {
    let rows = match shape {
        [n] | [n, 1] => *n,
        _ => {
            return Err(ServeError::BadRequest(format!(
                "input `{name}` has shape {shape:?}; Cordon takes 1-D tensors ([rows]) or columns ([rows, 1])"
            )));
        }
    };
    if rows < 0 {
        return Err(ServeError::BadRequest(format!(
            "input `{name}` has a negative shape {shape:?}"
        )));
    }
    if rows as u64 > max_rows {
        return Err(ServeError::BadRequest(format!(
            "input `{name}` has {rows} rows; a request may carry at most {max_rows} ([serve] request-rows)"
        )));
    }
    Ok(rows as usize)
}

/// Decodes `rows` elements of `datatype` from Triton's binary layout: little-endian numbers,
/// one byte per BOOL, and for BYTES a 4-byte little-endian length before each element.
pub fn decode_binary(
    name: &str,
    datatype: &str,
    rows: usize,
    bytes: &[u8],
) -> Result<TensorData, ServeError> {
    let wrong_size = |expected: usize| {
        ServeError::BadRequest(format!(
            "input `{name}`: {} bytes of binary data for {rows} elements of {datatype} (expected {expected})",
            bytes.len()
        ))
    };
    if let Some(size) = element_bytes(datatype) {
        let expected = rows
            .checked_mul(size)
            .ok_or_else(|| wrong_size(usize::MAX))?;
        if bytes.len() != expected {
            return Err(wrong_size(expected));
        }
    }
    let data = match datatype {
        "FP64" => TensorData::Fp64(
            bytes
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().unwrap_or_default()))
                .collect(),
        ),
        "FP32" => TensorData::Fp32(
            bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap_or_default()))
                .collect(),
        ),
        "INT64" => TensorData::Int64(
            bytes
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().unwrap_or_default()))
                .collect(),
        ),
        "INT32" => TensorData::Int32(
            bytes
                .chunks_exact(4)
                .map(|c| i32::from_le_bytes(c.try_into().unwrap_or_default()))
                .collect(),
        ),
        "BOOL" => TensorData::Bool(bytes.iter().map(|b| *b != 0).collect()),
        "BYTES" => {
            let mut values = Vec::with_capacity(rows.min(bytes.len() / 4));
            let mut rest = bytes;
            for row in 0..rows {
                let cut = |what: &str| {
                    ServeError::BadRequest(format!(
                        "input `{name}`: BYTES element {row} {what} past the end of its {} bytes of binary data",
                        bytes.len()
                    ))
                };
                let (length, after) = rest.split_first_chunk::<4>().ok_or_else(|| cut("length"))?;
                let length = u32::from_le_bytes(*length) as usize;
                if after.len() < length {
                    return Err(cut("runs"));
                }
                let (value, after) = after.split_at(length);
                values.push(value.to_vec());
                rest = after;
            }
            if !rest.is_empty() {
                return Err(ServeError::BadRequest(format!(
                    "input `{name}`: {} bytes of binary data left over after {rows} BYTES elements",
                    rest.len()
                )));
            }
            TensorData::Bytes(values)
        }
        other => return Err(unsupported_datatype(name, other)),
    };
    Ok(data)
}

fn unsupported_datatype(name: &str, datatype: &str) -> ServeError {
    ServeError::BadRequest(format!(
        "input `{name}` has datatype `{}`; Cordon takes FP64, FP32, INT64, INT32, BOOL and BYTES",
        super::shown(datatype)
    ))
}

/// The JSON `data` of an input as it is read, before its datatype is known (an input's fields
/// come in any order): a flat or nested array kept as typed elements, so that a large request
/// is never built into a tree of JSON values first (which costs an allocation per value and
/// grows a body tenfold in memory).
#[derive(Debug, Default)]
pub struct JsonData {
    elements: JsonElements,
    /// `data` was a single value, not an array.
    not_array: bool,
}

#[derive(Debug, Default)]
enum JsonElements {
    #[default]
    Empty,
    Numbers(Vec<serde_json::Number>),
    Strings(Vec<String>),
    Bools(Vec<bool>),
    /// Elements of several kinds (or nulls, objects): kept as values, for the error that
    /// names the first wrong one.
    Mixed(Vec<serde_json::Value>),
}

impl JsonElements {
    fn len(&self) -> usize {
        match self {
            JsonElements::Empty => 0,
            JsonElements::Numbers(v) => v.len(),
            JsonElements::Strings(v) => v.len(),
            JsonElements::Bools(v) => v.len(),
            JsonElements::Mixed(v) => v.len(),
        }
    }

    fn push(&mut self, value: serde_json::Value) {
        use serde_json::Value;
        match (&mut *self, value) {
            (JsonElements::Numbers(v), Value::Number(n)) => v.push(n),
            (JsonElements::Strings(v), Value::String(s)) => v.push(s),
            (JsonElements::Bools(v), Value::Bool(b)) => v.push(b),
            (JsonElements::Mixed(v), value) => v.push(value),
            (JsonElements::Empty, Value::Number(n)) => *self = JsonElements::Numbers(vec![n]),
            (JsonElements::Empty, Value::String(s)) => *self = JsonElements::Strings(vec![s]),
            (JsonElements::Empty, Value::Bool(b)) => *self = JsonElements::Bools(vec![b]),
            (_, value) => {
                let mut mixed = self.take_values();
                mixed.push(value);
                *self = JsonElements::Mixed(mixed);
            }
        }
    }

    fn take_values(&mut self) -> Vec<serde_json::Value> {
        use serde_json::Value;
        match std::mem::take(self) {
            JsonElements::Empty => Vec::new(),
            JsonElements::Numbers(v) => v.into_iter().map(Value::Number).collect(),
            JsonElements::Strings(v) => v.into_iter().map(Value::String).collect(),
            JsonElements::Bools(v) => v.into_iter().map(Value::Bool).collect(),
            JsonElements::Mixed(v) => v,
        }
    }
}

/// Reads one element of `data` (or, at depth 0, `data` itself) into a [`JsonData`].
struct ElementSeed<'a> {
    into: &'a mut JsonData,
    depth: usize,
}

impl ElementSeed<'_> {
    fn scalar(self, value: serde_json::Value) {
        if self.depth == 0 {
            self.into.not_array = true;
        } else {
            self.into.elements.push(value);
        }
    }
}

impl<'de> serde::de::DeserializeSeed<'de> for ElementSeed<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for ElementSeed<'_> {
    type Value = ();

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("an array of tensor elements")
    }

    fn visit_bool<E>(self, v: bool) -> Result<(), E> {
        self.scalar(serde_json::Value::Bool(v));
        Ok(())
    }
    fn visit_i64<E>(self, v: i64) -> Result<(), E> {
        self.scalar(serde_json::Value::Number(v.into()));
        Ok(())
    }
    fn visit_u64<E>(self, v: u64) -> Result<(), E> {
        self.scalar(serde_json::Value::Number(v.into()));
        Ok(())
    }
    fn visit_f64<E>(self, v: f64) -> Result<(), E> {
        // JSON has no NaN or infinity, so every number it parses fits.
        self.scalar(serde_json::Number::from_f64(v).map_or(serde_json::Value::Null, Into::into));
        Ok(())
    }
    fn visit_str<E>(self, v: &str) -> Result<(), E> {
        self.scalar(serde_json::Value::String(v.to_owned()));
        Ok(())
    }
    fn visit_string<E>(self, v: String) -> Result<(), E> {
        self.scalar(serde_json::Value::String(v));
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        self.scalar(serde_json::Value::Null);
        Ok(())
    }
    fn visit_none<E>(self) -> Result<(), E> {
        self.scalar(serde_json::Value::Null);
        Ok(())
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        use serde::Deserialize;
        let value =
            serde_json::Value::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
        self.scalar(value);
        Ok(())
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if self.depth >= MAX_JSON_DEPTH {
            return Err(serde::de::Error::custom(format!(
                "an input's `data` is nested deeper than {MAX_JSON_DEPTH} levels"
            )));
        }
        let depth = self.depth + 1;
        while seq
            .next_element_seed(ElementSeed {
                into: &mut *self.into,
                depth,
            })?
            .is_some()
        {}
        Ok(())
    }
}

impl<'de> serde::Deserialize<'de> for JsonData {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<JsonData, D::Error> {
        let mut data = JsonData::default();
        serde::de::DeserializeSeed::deserialize(
            ElementSeed {
                into: &mut data,
                depth: 0,
            },
            deserializer,
        )?;
        Ok(data)
    }
}

/// Decodes the JSON `data` of an input: a flat or nested array of `rows` elements.
pub fn decode_json(
    name: &str,
    datatype: &str,
    rows: usize,
    data: JsonData,
) -> Result<TensorData, ServeError> {
    if data.not_array {
        return Err(ServeError::BadRequest(format!(
            "input `{name}`: `data` is not an array"
        )));
    }
    let mut elements = data.elements;
    if elements.len() != rows {
        return Err(ServeError::BadRequest(format!(
            "input `{name}`: `data` has {} elements, but its shape says {rows}",
            elements.len()
        )));
    }
    let wrong = |index: usize, value: &serde_json::Value| {
        let shown = super::shown(&value.to_string());
        ServeError::BadRequest(format!(
            "input `{name}`: element {index} is {shown}, which is not {datatype}"
        ))
    };
    // Elements all of one kind that is not the datatype's: the first is wrong.
    let first_wrong = |elements: &mut JsonElements| {
        let values = elements.take_values();
        match values.first() {
            Some(first) => wrong(0, first),
            None => unsupported_datatype(name, datatype),
        }
    };
    let data = match (datatype, &mut elements) {
        (_, JsonElements::Empty) => match datatype {
            "FP64" => TensorData::Fp64(Vec::new()),
            "FP32" => TensorData::Fp32(Vec::new()),
            "INT64" => TensorData::Int64(Vec::new()),
            "INT32" => TensorData::Int32(Vec::new()),
            "BOOL" => TensorData::Bool(Vec::new()),
            "BYTES" => TensorData::Bytes(Vec::new()),
            other => return Err(unsupported_datatype(name, other)),
        },
        ("FP64" | "FP32", JsonElements::Numbers(numbers)) => {
            let mut values = Vec::with_capacity(numbers.len());
            for (index, number) in numbers.iter().enumerate() {
                values.push(
                    number
                        .as_f64()
                        .ok_or_else(|| wrong(index, &number.clone().into()))?,
                );
            }
            if datatype == "FP64" {
                TensorData::Fp64(values)
            } else {
                TensorData::Fp32(values.into_iter().map(|v| v as f32).collect())
            }
        }
        ("INT64" | "INT32", JsonElements::Numbers(numbers)) => {
            let mut values = Vec::with_capacity(numbers.len());
            for (index, number) in numbers.iter().enumerate() {
                values.push(
                    number
                        .as_i64()
                        .ok_or_else(|| wrong(index, &number.clone().into()))?,
                );
            }
            if datatype == "INT64" {
                TensorData::Int64(values)
            } else {
                let mut narrow = Vec::with_capacity(values.len());
                for (index, value) in values.into_iter().enumerate() {
                    narrow.push(
                        i32::try_from(value)
                            .map_err(|_| wrong(index, &serde_json::json!(value)))?,
                    );
                }
                TensorData::Int32(narrow)
            }
        }
        ("BOOL", JsonElements::Bools(bools)) => TensorData::Bool(std::mem::take(bools)),
        ("BYTES", JsonElements::Strings(strings)) => TensorData::Bytes(
            std::mem::take(strings)
                .into_iter()
                .map(String::into_bytes)
                .collect(),
        ),
        ("FP64" | "FP32" | "INT64" | "INT32" | "BOOL" | "BYTES", JsonElements::Mixed(values)) => {
            // Not all of one kind: the first element that is not the datatype's is named.
            let fits = |value: &serde_json::Value| match datatype {
                "FP64" | "FP32" => value.is_number(),
                "INT64" => value.as_i64().is_some(),
                "INT32" => value.as_i64().is_some_and(|v| i32::try_from(v).is_ok()),
                "BOOL" => value.is_boolean(),
                _ => value.is_string(),
            };
            let (index, value) = values
                .iter()
                .enumerate()
                .find(|(_, value)| !fits(value))
                .unwrap_or((0, &serde_json::Value::Null));
            return Err(wrong(index, value));
        }
        ("FP64" | "FP32" | "INT64" | "INT32" | "BOOL" | "BYTES", elements) => {
            return Err(first_wrong(elements));
        }
        (other, _) => return Err(unsupported_datatype(name, other)),
    };
    Ok(data)
}

/// Deepest nesting of a JSON `data` array taken (a column is 2 levels).
const MAX_JSON_DEPTH: usize = 8;

/// The request's tensor as the Arrow column the data plane reads for `column`: its datatype
/// must be the column's, or one that widens to it exactly (INT32 to INT64, FP32 to FP64).
pub fn to_array(tensor: &InputTensor, column: &RequestColumn) -> Result<ArrayRef, ServeError> {
    let name = &tensor.name;
    let mismatch = || {
        ServeError::BadRequest(format!(
            "input `{name}` has datatype {}; the policy takes it as {} ({})",
            super::shown(&tensor.datatype),
            datatype_of(column.ty),
            column.ty
        ))
    };
    let array: ArrayRef = match (&tensor.data, column.ty) {
        (TensorData::Fp64(v), ColumnType::Float64) => Arc::new(Float64Array::from(v.clone())),
        (TensorData::Fp32(v), ColumnType::Float64) => Arc::new(Float64Array::from_iter_values(
            v.iter().map(|x| f64::from(*x)),
        )),
        (TensorData::Fp32(v), ColumnType::Float32) => Arc::new(Float32Array::from(v.clone())),
        (TensorData::Int64(v), ColumnType::Int64) => Arc::new(Int64Array::from(v.clone())),
        (TensorData::Int32(v), ColumnType::Int64) => Arc::new(Int64Array::from_iter_values(
            v.iter().map(|x| i64::from(*x)),
        )),
        (TensorData::Int64(v), ColumnType::Timestamp) => {
            Arc::new(TimestampMicrosecondArray::from(v.clone()))
        }
        (TensorData::Bool(v), ColumnType::Boolean) => Arc::new(BooleanArray::from(v.clone())),
        (TensorData::Bytes(v), ColumnType::Text) => {
            let mut strings = Vec::with_capacity(v.len());
            for (index, bytes) in v.iter().enumerate() {
                strings.push(std::str::from_utf8(bytes).map_err(|_| {
                    ServeError::BadRequest(format!(
                        "input `{name}`: element {index} is not UTF-8 text"
                    ))
                })?);
            }
            Arc::new(StringArray::from(strings))
        }
        _ => return Err(mismatch()),
    };
    Ok(array)
}

/// The binary layout of an output column: little-endian numbers, one byte per BOOL, BYTES
/// with a 4-byte length before each. A null (a row the filter kept out, or the model's null)
/// is NaN for floats, 0 for integers, false, or empty bytes; the `cordon_scored` output says
/// which rows were scored.
pub fn encode_binary(array: &ArrayRef) -> Vec<u8> {
    let mut out = Vec::new();
    match array.data_type() {
        DataType::Float64 => {
            let values = array.as_primitive::<Float64Type>();
            out.reserve(values.len() * 8);
            for row in 0..values.len() {
                let v = if values.is_null(row) {
                    f64::NAN
                } else {
                    values.value(row)
                };
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
        DataType::Float32 => {
            let values = array.as_primitive::<Float32Type>();
            for row in 0..values.len() {
                let v = if values.is_null(row) {
                    f32::NAN
                } else {
                    values.value(row)
                };
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
        DataType::Int64 => {
            let values = array.as_primitive::<Int64Type>();
            for row in 0..values.len() {
                let v = if values.is_null(row) {
                    0
                } else {
                    values.value(row)
                };
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            let values = array.as_primitive::<TimestampMicrosecondType>();
            for row in 0..values.len() {
                let v = if values.is_null(row) {
                    0
                } else {
                    values.value(row)
                };
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
        DataType::Boolean => {
            let values = array.as_boolean();
            for row in 0..values.len() {
                out.push(u8::from(!values.is_null(row) && values.value(row)));
            }
        }
        DataType::Utf8 => {
            let values = array.as_string::<i32>();
            for row in 0..values.len() {
                let v = if values.is_null(row) {
                    ""
                } else {
                    values.value(row)
                };
                out.extend_from_slice(&(v.len() as u32).to_le_bytes());
                out.extend_from_slice(v.as_bytes());
            }
        }
        _ => {}
    }
    out
}

/// An output column as JSON `data`: nulls (and NaN or infinite floats, which JSON cannot
/// carry) are `null`.
pub fn encode_json(array: &ArrayRef) -> serde_json::Value {
    use serde_json::Value;
    let rows = array.len();
    let mut values = Vec::with_capacity(rows);
    for row in 0..rows {
        if array.is_null(row) {
            values.push(Value::Null);
            continue;
        }
        let value = match array.data_type() {
            DataType::Float64 => {
                serde_json::Number::from_f64(array.as_primitive::<Float64Type>().value(row))
                    .map_or(Value::Null, Value::Number)
            }
            DataType::Float32 => serde_json::Number::from_f64(f64::from(
                array.as_primitive::<Float32Type>().value(row),
            ))
            .map_or(Value::Null, Value::Number),
            DataType::Int64 => Value::from(array.as_primitive::<Int64Type>().value(row)),
            DataType::Timestamp(TimeUnit::Microsecond, _) => {
                Value::from(array.as_primitive::<TimestampMicrosecondType>().value(row))
            }
            DataType::Boolean => Value::from(array.as_boolean().value(row)),
            DataType::Utf8 => Value::from(array.as_string::<i32>().value(row)),
            _ => Value::Null,
        };
        values.push(value);
    }
    Value::Array(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(datatype: &str, rows: usize, json: &str) -> Result<TensorData, String> {
        let data: JsonData = serde_json::from_str(json).map_err(|e| e.to_string())?;
        decode_json("x", datatype, rows, data).map_err(|e| e.to_string())
    }

    /// `data` read straight into typed elements: flat and nested arrays of each kind, and
    /// each wrong element named by its index.
    #[test]
    fn json_data_is_read_into_typed_elements() {
        assert!(
            matches!(decode("FP64", 3, "[1, 2.5, -3]"), Ok(TensorData::Fp64(v)) if v == [1.0, 2.5, -3.0])
        );
        assert!(
            matches!(decode("INT64", 2, "[[1], [2]]"), Ok(TensorData::Int64(v)) if v == [1, 2])
        );
        assert!(
            matches!(decode("BOOL", 2, "[true, false]"), Ok(TensorData::Bool(v)) if v == [true, false])
        );
        assert!(
            matches!(decode("BYTES", 2, r#"["a", "é"]"#), Ok(TensorData::Bytes(v)) if v == [b"a".to_vec(), "é".as_bytes().to_vec()])
        );
        assert!(matches!(decode("FP32", 0, "[]"), Ok(TensorData::Fp32(v)) if v.is_empty()));

        let error = decode("FP64", 3, r#"[1, "two", 3]"#).unwrap_err();
        assert!(
            error.contains("element 1 is \"two\", which is not FP64"),
            "{error}"
        );
        let error = decode("INT64", 2, "[1, 2.5]").unwrap_err();
        assert!(
            error.contains("element 1 is 2.5, which is not INT64"),
            "{error}"
        );
        let error = decode("INT32", 1, "[4294967296]").unwrap_err();
        assert!(
            error.contains("element 0 is 4294967296, which is not INT32"),
            "{error}"
        );
        let error = decode("BYTES", 2, "[1, 2]").unwrap_err();
        assert!(
            error.contains("element 0 is 1, which is not BYTES"),
            "{error}"
        );
        let error = decode("BOOL", 2, "[true, null]").unwrap_err();
        assert!(error.contains("element 1 is null"), "{error}");
        let error = decode("FP64", 1, "[{\"a\": 1}]").unwrap_err();
        assert!(error.contains("element 0 is {\"a\":1}"), "{error}");
        let error = decode("FP64", 1, "7").unwrap_err();
        assert!(error.contains("`data` is not an array"), "{error}");
        let error = decode("FP64", 3, "[1, 2]").unwrap_err();
        assert!(
            error.contains("has 2 elements, but its shape says 3"),
            "{error}"
        );
        let error = decode("FP16", 1, "[1]").unwrap_err();
        assert!(error.contains("datatype `FP16`"), "{error}");
        let deep = format!("{}1{}", "[".repeat(9), "]".repeat(9));
        let error = decode("FP64", 1, &deep).unwrap_err();
        assert!(error.contains("nested deeper than 8 levels"), "{error}");
        let eight = format!("{}1{}", "[".repeat(8), "]".repeat(8));
        assert!(decode("FP64", 1, &eight).is_ok());
    }
}
