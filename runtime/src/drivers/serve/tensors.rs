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

/// Decodes the JSON `data` of an input: a flat or nested array of `rows` elements.
pub fn decode_json(
    name: &str,
    datatype: &str,
    rows: usize,
    data: &serde_json::Value,
) -> Result<TensorData, ServeError> {
    let mut flat = Vec::with_capacity(rows.min(4096));
    flatten(data, &mut flat, 0)
        .map_err(|why| ServeError::BadRequest(format!("input `{name}`: `data` {why}")))?;
    if flat.len() != rows {
        return Err(ServeError::BadRequest(format!(
            "input `{name}`: `data` has {} elements, but its shape says {rows}",
            flat.len()
        )));
    }
    let wrong = |index: usize, value: &serde_json::Value| {
        let shown = super::shown(&value.to_string());
        ServeError::BadRequest(format!(
            "input `{name}`: element {index} is {shown}, which is not {datatype}"
        ))
    };
    let data = match datatype {
        "FP64" | "FP32" => {
            let mut values = Vec::with_capacity(rows);
            for (index, value) in flat.iter().enumerate() {
                values.push(value.as_f64().ok_or_else(|| wrong(index, value))?);
            }
            if datatype == "FP64" {
                TensorData::Fp64(values)
            } else {
                TensorData::Fp32(values.into_iter().map(|v| v as f32).collect())
            }
        }
        "INT64" | "INT32" => {
            let mut values = Vec::with_capacity(rows);
            for (index, value) in flat.iter().enumerate() {
                values.push(value.as_i64().ok_or_else(|| wrong(index, value))?);
            }
            if datatype == "INT64" {
                TensorData::Int64(values)
            } else {
                let mut narrow = Vec::with_capacity(rows);
                for (index, value) in values.into_iter().enumerate() {
                    narrow.push(
                        i32::try_from(value)
                            .map_err(|_| wrong(index, &serde_json::json!(value)))?,
                    );
                }
                TensorData::Int32(narrow)
            }
        }
        "BOOL" => {
            let mut values = Vec::with_capacity(rows);
            for (index, value) in flat.iter().enumerate() {
                values.push(value.as_bool().ok_or_else(|| wrong(index, value))?);
            }
            TensorData::Bool(values)
        }
        "BYTES" => {
            let mut values = Vec::with_capacity(rows);
            for (index, value) in flat.iter().enumerate() {
                let text = value.as_str().ok_or_else(|| wrong(index, value))?;
                values.push(text.as_bytes().to_vec());
            }
            TensorData::Bytes(values)
        }
        other => return Err(unsupported_datatype(name, other)),
    };
    Ok(data)
}

/// Deepest nesting of a JSON `data` array taken (a column is 2 levels).
const MAX_JSON_DEPTH: usize = 8;

fn flatten<'a>(
    value: &'a serde_json::Value,
    into: &mut Vec<&'a serde_json::Value>,
    depth: usize,
) -> Result<(), String> {
    match value {
        serde_json::Value::Array(items) => {
            if depth >= MAX_JSON_DEPTH {
                return Err(format!("is nested deeper than {MAX_JSON_DEPTH} levels"));
            }
            for item in items {
                flatten(item, into, depth + 1)?;
            }
            Ok(())
        }
        _ if depth == 0 => Err("is not an array".into()),
        other => {
            into.push(other);
            Ok(())
        }
    }
}

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
