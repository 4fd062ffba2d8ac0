//! The protobuf wire format, as far as [`read`](super::read) needs it: fields walked in order,
//! every length checked against the bytes left, and tags read the way ONNX Runtime's own reader
//! reads them.

use std::borrow::Cow;

use super::GraphInfoError;

/// All occurrences of message field `number` of `message`, as one. A field that is not repeated
/// may still appear several times, and protobuf then merges the copies as if their bytes were
/// concatenated (repeated fields, such as a tensor's dims, append): read them as ONNX Runtime
/// will, so that dims split across two copies are multiplied together, not checked apart.
pub(super) fn merged(message: &[u8], number: u64) -> Result<Option<Cow<'_, [u8]>>, GraphInfoError> {
    let mut whole: Option<Cow<'_, [u8]>> = None;
    for field in Fields(message) {
        if let (n, Value::Bytes(bytes)) = field?
            && n == number
        {
            whole = Some(match whole {
                None => Cow::Borrowed(bytes),
                Some(before) => {
                    let mut joined = before.into_owned();
                    joined.extend_from_slice(bytes);
                    Cow::Owned(joined)
                }
            });
        }
    }
    Ok(whole)
}

/// A field's value, by protobuf wire type.
pub(super) enum Value<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    /// A fixed-size value (wire types 1 and 5) of this many bytes, not decoded.
    Fixed(usize),
}

impl Value<'_> {
    /// The bytes the value takes on the wire, its key aside.
    pub(super) fn wire_len(&self) -> u64 {
        match self {
            Value::Varint(v) => u64::from((64 - v.leading_zeros()).div_ceil(7).max(1)),
            Value::Bytes(bytes) => bytes.len() as u64,
            Value::Fixed(len) => *len as u64,
        }
    }
}
/// The fields of one protobuf message, in order: `(field number, value)`.
pub(super) struct Fields<'a>(pub(super) &'a [u8]);

impl<'a> Iterator for Fields<'a> {
    type Item = Result<(u64, Value<'a>), GraphInfoError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.0.is_empty() {
            return None;
        }
        let field = self.read_field();
        if field.is_err() {
            // Stop after the first error rather than reading garbage as fields.
            self.0 = &[];
        }
        Some(field)
    }
}

impl<'a> Fields<'a> {
    fn read_field(&mut self) -> Result<(u64, Value<'a>), GraphInfoError> {
        // Protobuf's C++ reader (ONNX Runtime's) takes a tag as at most 5 bytes into 32 bits and
        // drops higher bits: a longer or larger tag would name one field here and another
        // there, hiding it from admission. Such tags, and field 0, are refused.
        let before = self.0.len();
        let key = self.varint()?;
        if before - self.0.len() > 5 || key > u64::from(u32::MAX) || key >> 3 == 0 {
            return Err(GraphInfoError(
                "a field tag is malformed (over 5 bytes, over 32 bits, or field 0)".into(),
            ));
        }
        let value = match key & 7 {
            0 => Value::Varint(self.varint()?),
            1 => self.skip(8)?,
            2 => {
                let len = usize::try_from(self.varint()?).unwrap_or(usize::MAX);
                if len > self.0.len() {
                    return Err(GraphInfoError(
                        "a field is longer than the bytes left (truncated?)".into(),
                    ));
                }
                let (bytes, rest) = self.0.split_at(len);
                self.0 = rest;
                Value::Bytes(bytes)
            }
            5 => self.skip(4)?,
            other => {
                return Err(GraphInfoError(format!("unsupported wire type {other}")));
            }
        };
        Ok((key >> 3, value))
    }

    pub(super) fn varint(&mut self) -> Result<u64, GraphInfoError> {
        let mut value = 0u64;
        for (i, byte) in self.0.iter().enumerate().take(10) {
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                self.0 = self.0.get(i + 1..).unwrap_or_default();
                return Ok(value);
            }
        }
        Err(GraphInfoError("a varint is cut off or too long".into()))
    }

    fn skip(&mut self, len: usize) -> Result<Value<'a>, GraphInfoError> {
        self.0 = self
            .0
            .get(len..)
            .ok_or_else(|| GraphInfoError("a fixed-size field is cut off".into()))?;
        Ok(Value::Fixed(len))
    }
}
