//! The main graph's inputs and outputs as it declares them (`ValueInfoProto`: name, type,
//! shape), for the permissions screen, and which of them wasi:nn cannot carry: a graph that
//! takes text or returns a map would otherwise be packed, signed and admitted, and fail only at
//! its first batch.

use std::fmt;

use super::protobuf::{Fields, Value, merged};
use super::{GraphInfoError, name as cut_name};

/// Most dims shown of one input or output; a graph may declare any number.
const MAX_SHOWN_DIMS: usize = 16;

/// The element types a wasi:nn tensor has (`tensor-type`), as ONNX names them here.
const CARRIED: &[&str] = &[
    "float16", "bfloat16", "float32", "float64", "uint8", "int32", "int64",
];

/// One input or output of the main graph.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Port {
    /// Cut to [`super::MAX_NAME_BYTES`].
    pub name: String,
    /// `tensor`, `sequence`, `map`, `optional`, `sparse tensor`, or `undeclared`.
    pub kind: String,
    /// A tensor's element type (`float32`, `int64`, `string`, `bool`, ...).
    pub element: Option<String>,
    /// A tensor's dims as declared: a number, a symbolic name (`N`), or `?`; `None` when the
    /// graph declares no shape.
    pub shape: Option<Vec<String>>,
}

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.name.escape_debug())?;
        match &self.element {
            Some(element) => write!(f, " {element}")?,
            None => write!(f, " ({})", self.kind)?,
        }
        if let Some(shape) = &self.shape {
            let shown: Vec<String> = shape.iter().map(|d| d.escape_debug().to_string()).collect();
            write!(f, " [{}]", shown.join(", "))?;
        }
        Ok(())
    }
}

impl Port {
    /// Why wasi:nn cannot carry this port, and what to export instead; `None` when it can.
    pub fn uncarried(&self, input: bool) -> Option<String> {
        let side = if input { "input" } else { "output" };
        match (self.kind.as_str(), self.element.as_deref()) {
            ("tensor", Some(element)) if CARRIED.contains(&element) => None,
            // ONNX Runtime's boolean outputs are read back as uint8.
            ("tensor", Some("bool")) if !input => None,
            ("tensor", Some("string")) => Some(format!(
                "{side} is tensor(string), which wasi:nn cannot carry (its tensors are {}): encode text in the guest (one-hot or ordinal, from the levels the package ships) and export the graph from the numeric features, e.g. skl2onnx on the estimator without its ColumnTransformer's encoders",
                CARRIED.join(", ")
            )),
            ("tensor", Some("bool")) => Some(format!(
                "{side} is tensor(bool), which wasi:nn cannot pass in (its tensors are {}): take a uint8 input and Cast it to bool inside the graph",
                CARRIED.join(", ")
            )),
            ("tensor", Some(element)) => Some(format!(
                "{side} is tensor({element}), which wasi:nn cannot carry (its tensors are {}): export it as one of those",
                CARRIED.join(", ")
            )),
            ("sequence" | "map", _) if !input => Some(format!(
                "{side} is a {}, not a tensor, and wasi:nn returns only tensors: export plain tensor outputs (skl2onnx: options={{id(model): {{'zipmap': False}}}} for classifiers' probabilities)",
                self.kind
            )),
            ("undeclared", _) => Some(format!(
                "{side} declares no type; wasi:nn carries only tensors ({})",
                CARRIED.join(", ")
            )),
            (kind, _) => Some(format!(
                "{side} is a {kind}, not a tensor, and wasi:nn carries only tensors"
            )),
        }
    }
}

/// A `ValueInfoProto` as a [`Port`].
pub(super) fn read_port(bytes: &[u8]) -> Result<Port, GraphInfoError> {
    let mut name = String::new();
    for field in Fields(bytes) {
        if let (1, Value::Bytes(n)) = field? {
            name = cut_name(n)?;
        }
    }
    let mut port = Port {
        name,
        kind: "undeclared".into(),
        element: None,
        shape: None,
    };
    let Some(type_proto) = merged(bytes, 2)? else {
        return Ok(port);
    };
    for field in Fields(&type_proto) {
        match field? {
            (1, Value::Bytes(_)) => port.kind = "tensor".into(),
            (4, Value::Bytes(_)) => port.kind = "sequence".into(),
            (5, Value::Bytes(_)) => port.kind = "map".into(),
            (8, Value::Bytes(_)) => port.kind = "sparse tensor".into(),
            (9, Value::Bytes(_)) => port.kind = "optional".into(),
            _ => {}
        }
    }
    if port.kind != "tensor" {
        return Ok(port);
    }
    let Some(tensor) = merged(&type_proto, 1)? else {
        return Ok(port);
    };
    for field in Fields(&tensor) {
        if let (1, Value::Varint(element)) = field? {
            port.element = Some(element_name(element));
        }
    }
    if let Some(shape) = merged(&tensor, 2)? {
        let mut dims = Vec::new();
        let mut more = 0u64;
        for field in Fields(&shape) {
            if let (1, Value::Bytes(dimension)) = field? {
                if dims.len() == MAX_SHOWN_DIMS {
                    more = more.saturating_add(1);
                    continue;
                }
                dims.push(dimension_text(dimension)?);
            }
        }
        if more > 0 {
            dims.push(format!("… {more} more"));
        }
        port.shape = Some(dims);
    }
    Ok(port)
}

/// A `TensorShapeProto.Dimension`: its value, its symbolic name, or `?`.
fn dimension_text(bytes: &[u8]) -> Result<String, GraphInfoError> {
    let mut shown = "?".to_owned();
    for field in Fields(bytes) {
        match field? {
            (1, Value::Varint(value)) => shown = (value as i64).to_string(),
            (2, Value::Bytes(param)) => shown = cut_name(param)?,
            _ => {}
        }
    }
    Ok(shown)
}

/// ONNX's `TensorProto.DataType`, by the names wasi:nn and this project use.
fn element_name(code: u64) -> String {
    match code {
        1 => "float32",
        2 => "uint8",
        3 => "int8",
        4 => "uint16",
        5 => "int16",
        6 => "int32",
        7 => "int64",
        8 => "string",
        9 => "bool",
        10 => "float16",
        11 => "float64",
        12 => "uint32",
        13 => "uint64",
        14 => "complex64",
        15 => "complex128",
        16 => "bfloat16",
        other => return format!("type {other}"),
    }
    .to_owned()
}
