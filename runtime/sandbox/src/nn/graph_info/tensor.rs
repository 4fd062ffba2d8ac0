//! Stored tensors (TensorProto, SparseTensorProto): counted for `cordon inspect`, and refused
//! where their data is external or their shape is past the limits, since ONNX Runtime would
//! otherwise open the file or host memory the graph names, or size a buffer from its dims.

use super::protobuf::{Fields, Value, merged};
use super::{
    GraphInfo, GraphInfoError, MAX_LOCATION_CHARS, MAX_TENSOR_ELEMENTS, MAX_TENSOR_RANK, refuse,
};

/// Counts one stored TensorProto, found `place`.
pub(super) fn add_tensor(
    bytes: &[u8],
    place: &str,
    info: &mut GraphInfo,
) -> Result<(), GraphInfoError> {
    let tensor = read_tensor(bytes, place, info)?;
    info.initializers = info.initializers.saturating_add(1);
    info.initializer_bytes = info.initializer_bytes.saturating_add(tensor.stored);
    Ok(())
}

/// Counts one SparseTensorProto, found `place`: its `values` (1) and `indices` (2) are
/// TensorProtos, each checked; its `dims` (3) are the dense shape, which ONNX Runtime
/// allocates when it turns a sparse initializer dense, so they face the same limits.
pub(super) fn add_sparse_tensor(
    bytes: &[u8],
    place: &str,
    info: &mut GraphInfo,
) -> Result<(), GraphInfoError> {
    let mut name = None;
    let mut stored = 0u64;
    for number in [1, 2] {
        if let Some(part) = merged(bytes, number)? {
            let tensor = read_tensor(&part, place, info)?;
            stored = stored.saturating_add(tensor.stored);
            // The values' name is the sparse tensor's.
            if number == 1 {
                name = tensor.name;
            }
        }
    }
    let mut shape = Shape::new();
    for field in Fields(bytes) {
        if let (3, value) = field? {
            shape.add(value)?;
        }
    }
    if let Some(problem) = shape.problem() {
        refuse(info, name, format!("{problem} (its dense shape), {place}"));
    }
    info.initializers = info.initializers.saturating_add(1);
    info.initializer_bytes = info.initializer_bytes.saturating_add(stored);
    Ok(())
}

/// What [`read_tensor`] learns of one tensor.
struct Tensor {
    name: Option<String>,
    stored: u64,
}

/// Reads one TensorProto found `place`, recording a refusal for external data or a shape past
/// the limits.
fn read_tensor(bytes: &[u8], place: &str, info: &mut GraphInfo) -> Result<Tensor, GraphInfoError> {
    let mut name = None;
    let mut stored = 0u64;
    let mut shape = Shape::new();
    // Any of these makes ONNX Runtime look for the data outside the graph: `data_location`
    // (14) other than DEFAULT (0), or `external_data` entries (13) at all. Protobuf keeps the
    // last `data_location`, but any non-default one is refused, whatever follows it.
    let mut data_location = None;
    let mut external_entries = 0u64;
    let mut location: Option<&[u8]> = None;
    for field in Fields(bytes) {
        match field? {
            (1, dim) => shape.add(dim)?,
            (8, Value::Bytes(n)) => {
                let n = super::name(n)?;
                name = (!n.is_empty()).then_some(n);
            }
            // raw_data (9), and float_data, int32_data, string_data, int64_data, double_data,
            // uint64_data, packed or not.
            (4 | 5 | 6 | 7 | 9 | 10 | 11, value) => {
                stored = stored.saturating_add(value.wire_len())
            }
            (13, Value::Bytes(entry)) => {
                external_entries = external_entries.saturating_add(1);
                // StringStringEntryProto: key (1), value (2). Compared as bytes: a key that is
                // not UTF-8 is still an entry, and still refused.
                let (mut key, mut value): (&[u8], &[u8]) = (&[], &[]);
                for field in Fields(entry) {
                    match field? {
                        (1, Value::Bytes(k)) => key = k,
                        (2, Value::Bytes(v)) => value = v,
                        _ => {}
                    }
                }
                if key == b"location" {
                    location = Some(value);
                }
            }
            (14, Value::Varint(v)) if v != 0 => data_location = Some(v),
            _ => {}
        }
    }
    if data_location.is_some() || external_entries > 0 {
        let what = match location {
            Some(location) => format!(
                "external data at `{}` ({})",
                quoted_location(location),
                location_kind(location)
            ),
            None => "external data, with no location".to_owned(),
        };
        let marker = match data_location {
            None | Some(1) => String::new(),
            Some(other) => format!(" (data_location {other}, which ONNX does not define)"),
        };
        refuse(
            info,
            name.clone(),
            format!(
                "it names {what}{marker} {place}: Cordon runs only graphs that hold their \
                 tensors inline, for ONNX Runtime reads external data from whatever file or \
                 memory address the graph names"
            ),
        );
    }
    if let Some(problem) = shape.problem() {
        refuse(info, name.clone(), format!("{problem}, {place}"));
    }
    Ok(Tensor { name, stored })
}

/// A tensor's dims, as far as the limits need them: counted and multiplied as they are read,
/// never stored, so a million dims cost no memory.
struct Shape {
    rank: u64,
    /// The product so far; `None` once it has overflowed.
    elements: Option<u64>,
    negative: Option<i64>,
}

impl Shape {
    fn new() -> Self {
        Self {
            rank: 0,
            elements: Some(1),
            negative: None,
        }
    }

    /// One `dims` field: a varint, or several packed in bytes. (Any other wire type protobuf
    /// itself would keep as an unknown field, not as dims.)
    fn add(&mut self, value: Value<'_>) -> Result<(), GraphInfoError> {
        match value {
            Value::Varint(dim) => self.push(dim),
            Value::Bytes(packed) => {
                let mut dims = Fields(packed);
                while !dims.0.is_empty() {
                    let dim = dims.varint()?;
                    self.push(dim);
                }
            }
            Value::Fixed(_) => {}
        }
        Ok(())
    }

    fn push(&mut self, dim: u64) {
        self.rank = self.rank.saturating_add(1);
        // int64 on the wire: a negative dim is a ten-byte varint.
        let signed = dim as i64;
        if signed < 0 {
            self.negative.get_or_insert(signed);
        } else {
            self.elements = self.elements.and_then(|e| e.checked_mul(dim));
        }
    }

    fn problem(&self) -> Option<String> {
        if self.rank > MAX_TENSOR_RANK {
            return Some(format!(
                "it has {} dims, more than the {MAX_TENSOR_RANK} Cordon allows",
                self.rank
            ));
        }
        if let Some(dim) = self.negative {
            return Some(format!("it has a negative dim ({dim})"));
        }
        match self.elements {
            Some(elements) if elements <= MAX_TENSOR_ELEMENTS => None,
            Some(elements) => Some(format!(
                "its dims multiply to {elements} elements, more than the \
                 {MAX_TENSOR_ELEMENTS} Cordon allows"
            )),
            None => Some(format!(
                "its dims multiply past 2^64 elements, more than the {MAX_TENSOR_ELEMENTS} \
                 Cordon allows"
            )),
        }
    }
}

/// An external data location as a refusal quotes it: decoded leniently (it is refused whatever
/// it is, and the consumer should see what it was), escaped so that it cannot forge lines or
/// terminal escapes, and cut to [`MAX_LOCATION_CHARS`].
fn quoted_location(location: &[u8]) -> String {
    // Four bytes a character at most: enough for the characters quoted, without decoding a
    // megabyte of location first.
    let head = location
        .get(..MAX_LOCATION_CHARS.saturating_mul(4))
        .unwrap_or(location);
    let text = String::from_utf8_lossy(head);
    let mut quoted: String = text.escape_debug().take(MAX_LOCATION_CHARS).collect();
    if quoted.chars().count() < text.escape_debug().count() || head.len() < location.len() {
        quoted.push('…');
    }
    quoted
}

/// What an external data location would make ONNX Runtime read, in words. Every one is
/// refused; the words only say how bad it is.
fn location_kind(location: &[u8]) -> &'static str {
    let contains = |needle: &[u8]| location.windows(needle.len()).any(|w| w == needle);
    if contains(b"_ORT_MEM_ADDR_") {
        "ONNX Runtime's form for reading host memory at an address"
    } else if location.starts_with(b"/")
        || location.starts_with(b"\\")
        || location.get(1) == Some(&b':')
    {
        "an absolute path"
    } else if contains(b"..") {
        "a path that climbs out of the package"
    } else {
        "a file beside the graph"
    }
}
