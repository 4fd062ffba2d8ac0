//! What an ONNX graph is made of, read straight from its protobuf bytes without loading it into
//! ONNX Runtime: the operator sets it needs and the operators it uses, for `cordon inspect`.
//!
//! Only the few fields needed are decoded, by hand, so the permissions screen costs no protobuf
//! code generation and no ONNX Runtime. The bytes come from a package not yet trusted: every
//! length is checked against what is left, nesting (subgraphs of `If`, `Loop`, `Scan`) is
//! bounded by [`MAX_SUBGRAPH_DEPTH`], and a malformed graph is an error, never a panic.

use std::collections::BTreeMap;

/// How deep subgraphs may nest before the graph is called malformed.
pub const MAX_SUBGRAPH_DEPTH: usize = 16;

/// The summary of one graph.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct GraphInfo {
    /// Operator sets by domain (`ai.onnx` for the default one) and version.
    pub opsets: BTreeMap<String, i64>,
    /// Operators by name (`domain.Op` outside the default domain), with how many nodes use each,
    /// subgraphs included.
    pub operators: BTreeMap<String, u64>,
    /// Names of the main graph's inputs and outputs.
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    /// What made it, as the graph says (`skl2onnx 1.17`, say).
    pub producer: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a readable ONNX graph: {0}")]
pub struct GraphInfoError(String);

/// Reads `bytes` as an ONNX `ModelProto`.
pub fn read(bytes: &[u8]) -> Result<GraphInfo, GraphInfoError> {
    let mut info = GraphInfo::default();
    let mut producer = (String::new(), String::new());
    let mut saw_graph = false;
    for field in Fields(bytes) {
        match field? {
            (2, Value::Bytes(name)) => producer.0 = text(name)?,
            (3, Value::Bytes(version)) => producer.1 = text(version)?,
            (7, Value::Bytes(graph)) => {
                saw_graph = true;
                read_graph(graph, 0, &mut info)?;
            }
            (8, Value::Bytes(opset)) => {
                let (mut domain, mut version) = (String::new(), 0);
                for field in Fields(opset) {
                    match field? {
                        (1, Value::Bytes(d)) => domain = text(d)?,
                        (2, Value::Varint(v)) => version = v as i64,
                        _ => {}
                    }
                }
                info.opsets.insert(domain_name(domain), version);
            }
            _ => {}
        }
    }
    if !saw_graph {
        return Err(GraphInfoError("it has no graph (ModelProto.graph)".into()));
    }
    info.producer = format!("{} {}", producer.0, producer.1).trim().to_owned();
    Ok(info)
}

fn read_graph(bytes: &[u8], depth: usize, info: &mut GraphInfo) -> Result<(), GraphInfoError> {
    if depth > MAX_SUBGRAPH_DEPTH {
        return Err(GraphInfoError(format!(
            "subgraphs nest deeper than {MAX_SUBGRAPH_DEPTH}"
        )));
    }
    for field in Fields(bytes) {
        match field? {
            (1, Value::Bytes(node)) => read_node(node, depth, info)?,
            (11, Value::Bytes(input)) if depth == 0 => info.inputs.push(value_name(input)?),
            (12, Value::Bytes(output)) if depth == 0 => info.outputs.push(value_name(output)?),
            _ => {}
        }
    }
    Ok(())
}

fn read_node(bytes: &[u8], depth: usize, info: &mut GraphInfo) -> Result<(), GraphInfoError> {
    let (mut op_type, mut domain) = (String::new(), String::new());
    for field in Fields(bytes) {
        match field? {
            (4, Value::Bytes(op)) => op_type = text(op)?,
            (7, Value::Bytes(d)) => domain = text(d)?,
            // An attribute may hold a subgraph (`g`, field 6) or several (`graphs`, field 11).
            (5, Value::Bytes(attribute)) => {
                for field in Fields(attribute) {
                    if let (6 | 11, Value::Bytes(graph)) = field? {
                        read_graph(graph, depth + 1, info)?;
                    }
                }
            }
            _ => {}
        }
    }
    if op_type.is_empty() {
        return Err(GraphInfoError("a node has no op_type".into()));
    }
    let name = match domain_name(domain).as_str() {
        "ai.onnx" => op_type,
        other => format!("{other}.{op_type}"),
    };
    *info.operators.entry(name).or_default() += 1;
    Ok(())
}

fn value_name(bytes: &[u8]) -> Result<String, GraphInfoError> {
    for field in Fields(bytes) {
        if let (1, Value::Bytes(name)) = field? {
            return text(name);
        }
    }
    Ok(String::new())
}

/// ONNX writes the default domain as "" (or "ai.onnx"); name it one way.
fn domain_name(domain: String) -> String {
    if domain.is_empty() {
        "ai.onnx".into()
    } else {
        domain
    }
}

fn text(bytes: &[u8]) -> Result<String, GraphInfoError> {
    String::from_utf8(bytes.to_vec()).map_err(|_| GraphInfoError("a name is not UTF-8".into()))
}

/// A field's value, by protobuf wire type.
enum Value<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed,
}

/// The fields of one protobuf message, in order: `(field number, value)`.
struct Fields<'a>(&'a [u8]);

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
        let key = self.varint()?;
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

    fn varint(&mut self) -> Result<u64, GraphInfoError> {
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
        Ok(Value::Fixed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Protobuf encoding helpers, to build graphs by hand.
    fn varint(mut v: u64) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(byte);
                return out;
            }
            out.push(byte | 0x80);
        }
    }

    fn field(number: u64, bytes: &[u8]) -> Vec<u8> {
        let mut out = varint(number << 3 | 2);
        out.extend(varint(bytes.len() as u64));
        out.extend_from_slice(bytes);
        out
    }

    fn node(op: &str, domain: &str, subgraph: Option<&[u8]>) -> Vec<u8> {
        let mut out = field(4, op.as_bytes());
        if !domain.is_empty() {
            out.extend(field(7, domain.as_bytes()));
        }
        if let Some(graph) = subgraph {
            out.extend(field(
                5,
                &[field(1, b"then_branch"), field(6, graph)].concat(),
            ));
        }
        out
    }

    #[test]
    fn reads_opsets_operators_and_io_names() {
        let inner = field(1, &node("Relu", "", None));
        let graph = [
            field(1, &node("MatMul", "", None)),
            field(1, &node("MatMul", "", None)),
            field(1, &node("If", "", Some(&inner))),
            field(1, &node("TreeEnsembleClassifier", "ai.onnx.ml", None)),
            field(11, &field(1, b"features")),
            field(12, &field(1, b"probabilities")),
        ]
        .concat();
        let opset = [field(1, b""), varint(2 << 3), varint(17)].concat();
        let ml_opset = [field(1, b"ai.onnx.ml"), varint(2 << 3), varint(3)].concat();
        let model = [
            varint(1 << 3),
            varint(9), // ir_version
            field(2, b"skl2onnx"),
            field(3, b"1.17"),
            field(7, &graph),
            field(8, &opset),
            field(8, &ml_opset),
        ]
        .concat();
        let info = read(&model).unwrap();
        assert_eq!(info.producer, "skl2onnx 1.17");
        assert_eq!(info.opsets["ai.onnx"], 17);
        assert_eq!(info.opsets["ai.onnx.ml"], 3);
        assert_eq!(info.operators["MatMul"], 2);
        assert_eq!(info.operators["Relu"], 1, "subgraph operators count");
        assert_eq!(info.operators["ai.onnx.ml.TreeEnsembleClassifier"], 1);
        assert_eq!(info.inputs, ["features"]);
        assert_eq!(info.outputs, ["probabilities"]);
    }

    #[test]
    fn malformed_graphs_are_errors() {
        assert!(read(b"").is_err(), "no graph");
        assert!(read(&[0x3a, 0xff, 0x01]).is_err(), "length past the end");
        assert!(read(&[0xff; 12]).is_err(), "endless varint");
        let mut deep = field(1, &node("Relu", "", None));
        for _ in 0..=MAX_SUBGRAPH_DEPTH + 1 {
            deep = field(1, &node("If", "", Some(&deep)));
        }
        let error = read(&field(7, &deep)).unwrap_err();
        assert!(error.to_string().contains("nest deeper"), "{error}");
    }
}
