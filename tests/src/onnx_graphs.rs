//! Hostile ONNX graphs for the sandbox's tests, written byte by byte.
//!
//! A small protobuf encoder (varints and length-delimited fields, nothing else) writes
//! `ModelProto` bytes with the field numbers of onnx.proto, so the tests need neither a protobuf
//! crate nor the `onnx` Python package. Each public function returns one serialized model; its
//! doc comment says what the graph attacks. Models use IR version 8 and opset `ai.onnx` 17.
//!
//! Repeated integer fields (`dims`) are written unpacked, one field per value: every protobuf
//! parser accepts that form.

/// The ONNX IR version of every model here.
const IR_VERSION: u64 = 8;
/// The `ai.onnx` opset every model imports.
const OPSET: u64 = 17;
/// The domain of the model-local function in [`external_data_in_function`].
const TEST_DOMAIN: &str = "cordon.test";

/// Protobuf wire type of a varint field.
const WIRE_VARINT: u64 = 0;
/// Protobuf wire type of a length-delimited field (bytes, strings, messages).
const WIRE_LEN: u64 = 2;

/// `TensorProto.DataType` values.
const FLOAT: u64 = 1;
const UINT8: u64 = 2;
const INT64: u64 = 7;
const STRING: u64 = 8;
const BOOL: u64 = 9;

/// `AttributeProto.AttributeType` values.
const ATTRIBUTE_INT: u64 = 2;
const ATTRIBUTE_TENSOR: u64 = 4;
const ATTRIBUTE_GRAPH: u64 = 5;

/// `TensorProto.DataLocation.EXTERNAL`.
const EXTERNAL: u64 = 1;

/// Appends `value` as a protobuf varint: seven bits a byte, low bits first, the high bit set on
/// every byte but the last.
fn write_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value & 0x7f) as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// One protobuf message being written, field by field.
#[derive(Default)]
struct Message {
    bytes: Vec<u8>,
}

impl Message {
    fn new() -> Self {
        Self::default()
    }

    /// A varint field (`int64`, `uint64`, `bool`, an enum). A negative `int64` is its two's
    /// complement as `u64`, ten bytes long, as protobuf writes it.
    fn varint(mut self, field: u64, value: u64) -> Self {
        write_varint(&mut self.bytes, (field << 3) | WIRE_VARINT);
        write_varint(&mut self.bytes, value);
        self
    }

    /// A signed `int64` field.
    fn int64(self, field: u64, value: i64) -> Self {
        self.varint(field, value as u64)
    }

    /// A length-delimited field holding `value` as it is.
    fn bytes(mut self, field: u64, value: &[u8]) -> Self {
        write_varint(&mut self.bytes, (field << 3) | WIRE_LEN);
        write_varint(&mut self.bytes, value.len() as u64);
        self.bytes.extend_from_slice(value);
        self
    }

    fn string(self, field: u64, value: &str) -> Self {
        self.bytes(field, value.as_bytes())
    }

    /// An embedded message. An empty one is still written (tag and zero length), so that a
    /// field such as a scalar's empty `shape` is present rather than absent.
    fn message(self, field: u64, value: Message) -> Self {
        self.bytes(field, &value.bytes)
    }

    /// A repeated string field: one field per value.
    fn strings(self, field: u64, values: &[&str]) -> Self {
        values
            .iter()
            .fold(self, |message, value| message.string(field, value))
    }

    /// A repeated message field: one field per value.
    fn messages(self, field: u64, values: Vec<Message>) -> Self {
        values
            .into_iter()
            .fold(self, |message, value| message.message(field, value))
    }

    /// A repeated `int64` field, unpacked.
    fn int64s(self, field: u64, values: &[i64]) -> Self {
        values
            .iter()
            .fold(self, |message, &value| message.int64(field, value))
    }
}

/// `TensorProto` with its data inline in `raw_data` (little-endian, as ONNX stores it).
fn tensor(name: &str, data_type: u64, dims: &[i64], raw_data: &[u8]) -> Message {
    Message::new()
        .int64s(1, dims) // dims
        .varint(2, data_type) // data_type
        .string(8, name) // name
        .bytes(9, raw_data) // raw_data
}

/// A `FLOAT` tensor holding `values`.
fn float_tensor(name: &str, dims: &[i64], values: &[f32]) -> Message {
    let raw: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    tensor(name, FLOAT, dims, &raw)
}

/// An `INT64` tensor holding `values`.
fn int64_tensor(name: &str, dims: &[i64], values: &[i64]) -> Message {
    let raw: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    tensor(name, INT64, dims, &raw)
}

/// A scalar `BOOL` tensor holding `true` (shape `[]`).
fn true_scalar(name: &str) -> Message {
    tensor(name, BOOL, &[], &[1])
}

/// A `UINT8` tensor of `len` bytes whose data is not in the model but in the file `location`,
/// from offset 0: `data_location = EXTERNAL` and the `external_data` entries `location`,
/// `offset` and `length`. ONNX Runtime reads such a file when it builds the session.
fn external_tensor(name: &str, location: &str, len: u64) -> Message {
    let entry = |key: &str, value: &str| Message::new().string(1, key).string(2, value);
    Message::new()
        .varint(1, len) // dims: [len]
        .varint(2, UINT8) // data_type
        .string(8, name) // name
        .message(13, entry("location", location)) // external_data
        .message(13, entry("offset", "0"))
        .message(13, entry("length", &len.to_string()))
        .varint(14, EXTERNAL) // data_location
}

/// `ValueInfoProto` for a tensor of `elem_type` with the dimension sizes `dims` (`&[]` is a
/// scalar).
fn tensor_value(name: &str, elem_type: u64, dims: &[u64]) -> Message {
    let shape = dims.iter().fold(Message::new(), |shape, &size| {
        shape.message(1, Message::new().varint(1, size)) // dim { dim_value }
    });
    value_info(name, elem_type, shape)
}

/// `ValueInfoProto` for a 1-D tensor of `elem_type` and any length: one dimension named `n`.
fn vector_value(name: &str, elem_type: u64) -> Message {
    let shape = Message::new().message(1, Message::new().string(2, "n")); // dim { dim_param }
    value_info(name, elem_type, shape)
}

/// `ValueInfoProto` for a tensor of `elem_type` and the `TensorShapeProto` `shape`.
fn value_info(name: &str, elem_type: u64, shape: Message) -> Message {
    let tensor_type = Message::new()
        .varint(1, elem_type) // elem_type
        .message(2, shape); // shape
    Message::new()
        .string(1, name) // name
        .message(2, Message::new().message(1, tensor_type)) // type { tensor_type }
}

/// `NodeProto` of the default (`ai.onnx`) domain, named after its first output.
fn node(op_type: &str, inputs: &[&str], outputs: &[&str], attributes: Vec<Message>) -> Message {
    Message::new()
        .strings(1, inputs) // input
        .strings(2, outputs) // output
        .string(3, outputs.first().copied().unwrap_or(op_type)) // name
        .string(4, op_type) // op_type
        .messages(5, attributes) // attribute
}

/// `AttributeProto` of type `INT`.
fn int_attribute(name: &str, value: i64) -> Message {
    Message::new()
        .string(1, name)
        .int64(3, value) // i
        .varint(20, ATTRIBUTE_INT) // type
}

/// `AttributeProto` of type `TENSOR`.
fn tensor_attribute(name: &str, value: Message) -> Message {
    Message::new()
        .string(1, name)
        .message(5, value) // t
        .varint(20, ATTRIBUTE_TENSOR) // type
}

/// `AttributeProto` of type `GRAPH` (a subgraph: `If`'s branches, `Loop`'s body).
fn graph_attribute(name: &str, value: Message) -> Message {
    Message::new()
        .string(1, name)
        .message(6, value) // g
        .varint(20, ATTRIBUTE_GRAPH) // type
}

/// `GraphProto`.
fn graph(
    name: &str,
    nodes: Vec<Message>,
    initializers: Vec<Message>,
    inputs: Vec<Message>,
    outputs: Vec<Message>,
) -> Message {
    Message::new()
        .messages(1, nodes) // node
        .string(2, name) // name
        .messages(5, initializers) // initializer
        .messages(11, inputs) // input
        .messages(12, outputs) // output
}

/// `OperatorSetIdProto`.
fn opset(domain: &str, version: u64) -> Message {
    Message::new().string(1, domain).varint(2, version)
}

/// The serialized `ModelProto` of `graph`, importing `ai.onnx` 17 and each of `extra_opsets`,
/// with the model-local `functions`.
fn model(graph: Message, extra_opsets: &[(&str, u64)], functions: Vec<Message>) -> Vec<u8> {
    let mut model = Message::new()
        .varint(1, IR_VERSION) // ir_version
        .string(2, "cordon-tests") // producer_name
        .string(3, env!("CARGO_PKG_VERSION")) // producer_version
        .message(7, graph) // graph
        .message(8, opset("", OPSET)); // opset_import
    for &(domain, version) in extra_opsets {
        model = model.message(8, opset(domain, version));
    }
    model.messages(25, functions).bytes // functions
}

/// Reads a file of the host through an initializer. No inputs; one output `leak` (`uint8`,
/// shape `[len]`). The initializer `stolen` is a `UINT8` tensor `[len]` whose data is external:
/// `location`, offset 0, length `len`. One `Identity` node copies `stolen` to `leak`, so running
/// the model returns the file's first `len` bytes. A sandbox must refuse external data before
/// ONNX Runtime ever sees the model.
pub fn external_data_identity(location: &str, len: u64) -> Vec<u8> {
    let graph = graph(
        "external_data_identity",
        vec![node("Identity", &["stolen"], &["leak"], vec![])],
        vec![external_tensor("stolen", location, len)],
        vec![],
        vec![tensor_value("leak", UINT8, &[len])],
    );
    model(graph, &[], vec![])
}

/// The same theft as [`external_data_identity`], with the external initializer hidden one level
/// down, where a check of the main graph's initializers alone misses it: inside both branches
/// (`then_branch`, `else_branch`) of an `If` node. The condition `cond` is a `BOOL` initializer
/// `true` of the main graph; each branch outputs its own external `stolen` through `Identity`,
/// and the `If` node's output is `leak` (`uint8`, `[len]`).
pub fn external_data_in_subgraph(location: &str, len: u64) -> Vec<u8> {
    let branch = |name: &str| {
        let out = format!("{name}_out");
        graph(
            name,
            vec![node("Identity", &["stolen"], &[&out], vec![])],
            vec![external_tensor("stolen", location, len)],
            vec![],
            vec![tensor_value(&out, UINT8, &[len])],
        )
    };
    let graph = graph(
        "external_data_in_subgraph",
        vec![node(
            "If",
            &["cond"],
            &["leak"],
            vec![
                graph_attribute("then_branch", branch("then_branch")),
                graph_attribute("else_branch", branch("else_branch")),
            ],
        )],
        vec![true_scalar("cond")],
        vec![],
        vec![tensor_value("leak", UINT8, &[len])],
    );
    model(graph, &[], vec![])
}

/// The same theft as [`external_data_identity`], with the external tensor in a node attribute
/// rather than an initializer: a `Constant` node whose `value` attribute (type `TENSOR`) is the
/// external `UINT8` tensor `[len]`, output `leak` (`uint8`, `[len]`).
pub fn external_data_in_constant(location: &str, len: u64) -> Vec<u8> {
    let graph = graph(
        "external_data_in_constant",
        vec![node(
            "Constant",
            &[],
            &["leak"],
            vec![tensor_attribute(
                "value",
                external_tensor("stolen", location, len),
            )],
        )],
        vec![],
        vec![],
        vec![tensor_value("leak", UINT8, &[len])],
    );
    model(graph, &[], vec![])
}

/// The same theft as [`external_data_identity`], with the external tensor in a model-local
/// function (`ModelProto.functions`), which a check of the main graph alone misses: the function
/// `Steal` of domain `cordon.test` has no inputs and one output `out`, and its body is a
/// `Constant` node whose `value` is the external `UINT8` tensor `[len]`. The main graph calls
/// `Steal` once, output `leak` (`uint8`, `[len]`); the model imports `cordon.test` version 1.
pub fn external_data_in_function(location: &str, len: u64) -> Vec<u8> {
    let function = Message::new()
        .string(1, "Steal") // name
        .string(5, "out") // output
        .message(
            7, // node
            node(
                "Constant",
                &[],
                &["out"],
                vec![tensor_attribute(
                    "value",
                    external_tensor("stolen", location, len),
                )],
            ),
        )
        .message(9, opset("", OPSET)) // opset_import
        .string(10, TEST_DOMAIN); // domain
    let call = node("Steal", &[], &["leak"], vec![]).string(7, TEST_DOMAIN); // domain
    let graph = graph(
        "external_data_in_function",
        vec![call],
        vec![],
        vec![],
        vec![tensor_value("leak", UINT8, &[len])],
    );
    model(graph, &[(TEST_DOMAIN, 1)], vec![function])
}

/// Exhausts memory inside `Run` with a tiny model. Input `n` (`int64`, `[1]`), output `y`
/// (`float`, scalar). The graph multiplies `n` by the `INT64` initializer `per_n = [bytes / 4]`,
/// feeds that 1-D shape to `ConstantOfShape` (value: a `float` tensor `[1]` = 1.0), and sums the
/// result with `ReduceSum` (all axes, `keepdims = 0`), so `y` is `n * (bytes / 4)` as a float.
/// Because the shape depends on the input, constant folding cannot allocate the tensor when the
/// session is built: the caller passes `n` (`1` allocates `bytes` bytes rounded down to a
/// multiple of 4, `0` allocates nothing) and ONNX Runtime allocates `n * (bytes / 4) * 4`
/// bytes during `Run`.
pub fn constant_of_shape(bytes: u64) -> Vec<u8> {
    let per_n = (bytes / 4) as i64;
    let graph = graph(
        "constant_of_shape",
        vec![
            node("Mul", &["n", "per_n"], &["shape"], vec![]),
            node(
                "ConstantOfShape",
                &["shape"],
                &["ones"],
                vec![tensor_attribute(
                    "value",
                    float_tensor("value", &[1], &[1.0]),
                )],
            ),
            node(
                "ReduceSum",
                &["ones"],
                &["y"],
                vec![int_attribute("keepdims", 0)],
            ),
        ],
        vec![int64_tensor("per_n", &[1], &[per_n])],
        vec![tensor_value("n", INT64, &[1])],
        vec![tensor_value("y", FLOAT, &[])],
    );
    model(graph, &[], vec![])
}

/// Burns CPU inside `Run` for as long as ONNX Runtime lets it. Input `x` (`float`, `[1]`),
/// output `y` (`float`, `[1]`). A `Loop` node with trip count `iterations` (a scalar `INT64`
/// initializer) and condition `true` (a scalar `BOOL` initializer) carries one float through a
/// body that adds 1 each time, so `y = x + iterations`. The body does real work in each
/// iteration, and ONNX Runtime looks at its terminate flag between the body's nodes. Body inputs:
/// `iteration_num` (`int64`, `[]`), `cond_in` (`bool`, `[]`), `x_in` (`float`, `[1]`); body
/// outputs: `cond_out` (`bool`, `[]`, `Identity` of `cond_in`) and `x_out` (`float`, `[1]`,
/// `Add(x_in, one)`).
pub fn endless_loop(iterations: i64) -> Vec<u8> {
    let body = graph(
        "body",
        vec![
            node("Identity", &["cond_in"], &["cond_out"], vec![]),
            node("Add", &["x_in", "one"], &["x_out"], vec![]),
        ],
        vec![float_tensor("one", &[1], &[1.0])],
        vec![
            tensor_value("iteration_num", INT64, &[]),
            tensor_value("cond_in", BOOL, &[]),
            tensor_value("x_in", FLOAT, &[1]),
        ],
        vec![
            tensor_value("cond_out", BOOL, &[]),
            tensor_value("x_out", FLOAT, &[1]),
        ],
    );
    let graph = graph(
        "endless_loop",
        vec![node(
            "Loop",
            &["trip_count", "keep_going", "x"],
            &["y"],
            vec![graph_attribute("body", body)],
        )],
        vec![
            int64_tensor("trip_count", &[], &[iterations]),
            true_scalar("keep_going"),
        ],
        vec![tensor_value("x", FLOAT, &[1])],
        vec![tensor_value("y", FLOAT, &[1])],
    );
    model(graph, &[], vec![])
}

/// A well-formed model for positive tests: one `Identity` node from the `float` input `input`
/// to the `float` output `output`, both 1-D of any length (the symbolic dimension `n`).
pub fn identity_f32(input: &str, output: &str) -> Vec<u8> {
    let graph = graph(
        "identity_f32",
        vec![node("Identity", &[input], &[output], vec![])],
        vec![],
        vec![vector_value(input, FLOAT)],
        vec![vector_value(output, FLOAT)],
    );
    model(graph, &[], vec![])
}

/// What a whole scikit-learn pipeline exports as: a text input `contract` (tensor(string)) beside
/// a `float` input `tenure`, into one `float` output. wasi:nn has no string tensors, so no guest
/// could feed it: Cordon refuses it at `cordon pack` and on `cordon inspect`.
pub fn string_input() -> Vec<u8> {
    let graph = graph(
        "string_input",
        vec![node("Identity", &["tenure"], &["probability"], vec![])],
        vec![],
        vec![
            vector_value("contract", STRING),
            vector_value("tenure", FLOAT),
        ],
        vec![vector_value("probability", FLOAT)],
    );
    model(graph, &[], vec![])
}

/// Reaches for an operator outside the standard set: one node `op` of domain `domain` from the
/// `float` input `x` to the `float` output `y` (both 1-D, any length), and an opset import of
/// `domain` version 1 (none extra where `domain` is `""` or `ai.onnx`, the standard domain).
/// With a custom domain ONNX Runtime fails unless a custom-op library registered it; with a
/// domain such as `com.microsoft` it runs ONNX Runtime's contrib kernels.
pub fn with_domain_op(domain: &str, op: &str) -> Vec<u8> {
    let call = node(op, &["x"], &["y"], vec![]).string(7, domain); // domain
    let graph = graph(
        "with_domain_op",
        vec![call],
        vec![],
        vec![vector_value("x", FLOAT)],
        vec![vector_value("y", FLOAT)],
    );
    let extra: &[(&str, u64)] = if domain.is_empty() || domain == "ai.onnx" {
        &[]
    } else {
        &[(domain, 1)]
    };
    model(graph, extra, vec![])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A decoded field's value.
    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Value<'a> {
        Varint(u64),
        Bytes(&'a [u8]),
    }

    fn read_varint(bytes: &[u8], at: &mut usize) -> u64 {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *bytes.get(*at).expect("varint runs past the end");
            *at += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return value;
            }
        }
        panic!("varint longer than ten bytes");
    }

    /// Every field of one message, in order; panics unless `bytes` is exactly a sequence of
    /// well-formed varint and length-delimited fields.
    fn fields(bytes: &[u8]) -> Vec<(u64, Value<'_>)> {
        let mut at = 0;
        let mut out = Vec::new();
        while at < bytes.len() {
            let key = read_varint(bytes, &mut at);
            let value = match key & 7 {
                WIRE_VARINT => Value::Varint(read_varint(bytes, &mut at)),
                WIRE_LEN => {
                    let len = read_varint(bytes, &mut at) as usize;
                    let value = bytes.get(at..at + len).expect("field runs past the end");
                    at += len;
                    Value::Bytes(value)
                }
                wire => panic!("unexpected wire type {wire}"),
            };
            out.push((key >> 3, value));
        }
        out
    }

    /// The length-delimited values of `field` in `message`.
    fn all(message: &[u8], field: u64) -> Vec<&[u8]> {
        fields(message)
            .into_iter()
            .filter(|(number, _)| *number == field)
            .map(|(_, value)| match value {
                Value::Bytes(bytes) => bytes,
                Value::Varint(_) => panic!("field {field} is a varint"),
            })
            .collect()
    }

    /// The one length-delimited value of `field` in `message`.
    fn one(message: &[u8], field: u64) -> &[u8] {
        let values = all(message, field);
        assert_eq!(
            values.len(),
            1,
            "field {field} appears {} times",
            values.len()
        );
        values[0]
    }

    fn varints(message: &[u8], field: u64) -> Vec<u64> {
        fields(message)
            .into_iter()
            .filter(|(number, _)| *number == field)
            .map(|(_, value)| match value {
                Value::Varint(v) => v,
                Value::Bytes(_) => panic!("field {field} is length-delimited"),
            })
            .collect()
    }

    fn text(bytes: &[u8]) -> &str {
        std::str::from_utf8(bytes).expect("a string field is UTF-8")
    }

    /// The model's graph, after checking the header every model here shares.
    fn graph_of(model: &[u8]) -> &[u8] {
        assert_eq!(varints(model, 1), [IR_VERSION]);
        let opsets = all(model, 8);
        assert_eq!(text(one(opsets[0], 1)), "");
        assert_eq!(varints(opsets[0], 2), [OPSET]);
        one(model, 7)
    }

    /// The node `op_type` in `graph`.
    fn node_of<'a>(graph: &'a [u8], op_type: &str) -> &'a [u8] {
        find_node(all(graph, 1), op_type)
    }

    /// The node `op_type` among `nodes`.
    fn find_node<'a>(nodes: Vec<&'a [u8]>, op_type: &str) -> &'a [u8] {
        nodes
            .into_iter()
            .find(|node| text(one(node, 4)) == op_type)
            .unwrap_or_else(|| panic!("no {op_type} node"))
    }

    /// The attribute `name` of `node`.
    fn attribute_of<'a>(node: &'a [u8], name: &str) -> &'a [u8] {
        all(node, 5)
            .into_iter()
            .find(|attribute| text(one(attribute, 1)) == name)
            .unwrap_or_else(|| panic!("no attribute {name}"))
    }

    /// Checks that `tensor` is the external `UINT8` tensor `[len]` at `location`.
    fn assert_external(tensor: &[u8], location: &str, len: u64) {
        assert_eq!(varints(tensor, 1), [len]);
        assert_eq!(varints(tensor, 2), [UINT8]);
        assert_eq!(varints(tensor, 14), [EXTERNAL]);
        let entries: Vec<(&str, &str)> = all(tensor, 13)
            .into_iter()
            .map(|entry| (text(one(entry, 1)), text(one(entry, 2))))
            .collect();
        let len = len.to_string();
        assert_eq!(
            entries,
            [("location", location), ("offset", "0"), ("length", &len)]
        );
    }

    #[test]
    fn varints_are_protobuf_varints() {
        let mut out = Vec::new();
        write_varint(&mut out, 300);
        assert_eq!(out, [0xac, 0x02]);
        let message = Message::new().int64(1, -1);
        assert_eq!(message.bytes.len(), 11, "a negative int64 is ten bytes");
        assert_eq!(fields(&message.bytes), [(1, Value::Varint(u64::MAX))]);
    }

    #[test]
    fn external_data_graphs_hold_the_external_tensor_where_they_say() {
        let location = "../secret.txt";
        let len = 1234;

        let model = external_data_identity(location, len);
        let main = graph_of(&model);
        assert_external(one(main, 5), location, len);
        assert_eq!(text(one(node_of(main, "Identity"), 1)), "stolen");

        let model = external_data_in_subgraph(location, len);
        let main = graph_of(&model);
        assert_eq!(varints(one(main, 5), 2), [BOOL]);
        let branching = node_of(main, "If");
        for branch in ["then_branch", "else_branch"] {
            let subgraph = one(attribute_of(branching, branch), 6);
            assert_external(one(subgraph, 5), location, len);
        }

        let model = external_data_in_constant(location, len);
        let main = graph_of(&model);
        let value = attribute_of(node_of(main, "Constant"), "value");
        assert_eq!(varints(value, 20), [ATTRIBUTE_TENSOR]);
        assert_external(one(value, 5), location, len);

        let model = external_data_in_function(location, len);
        let main = graph_of(&model);
        assert_eq!(text(one(node_of(main, "Steal"), 7)), TEST_DOMAIN);
        assert_eq!(text(one(all(&model, 8)[1], 1)), TEST_DOMAIN);
        let function = one(&model, 25);
        assert_eq!(text(one(function, 10)), TEST_DOMAIN);
        let body = all(function, 7); // FunctionProto.node
        let value = attribute_of(find_node(body, "Constant"), "value");
        assert_external(one(value, 5), location, len);
    }

    #[test]
    fn resource_graphs_carry_their_sizes() {
        let model = constant_of_shape(8 << 30);
        let main = graph_of(&model);
        let per_n = one(main, 5);
        assert_eq!(varints(per_n, 2), [INT64]);
        assert_eq!(one(per_n, 9), (2i64 << 30).to_le_bytes());
        let n_type = one(one(one(main, 11), 2), 1); // input n: type.tensor_type
        assert_eq!(varints(n_type, 1), [INT64]);
        node_of(main, "ConstantOfShape");

        let model = endless_loop(1 << 62);
        let main = graph_of(&model);
        let initializers = all(main, 5);
        assert_eq!(one(initializers[0], 9), (1i64 << 62).to_le_bytes());
        let body = one(attribute_of(node_of(main, "Loop"), "body"), 6);
        assert_eq!(all(body, 11).len(), 3, "iteration_num, cond_in, x_in");
        assert_eq!(all(body, 12).len(), 2, "cond_out, x_out");
    }

    #[test]
    fn plain_graphs_name_what_they_were_given() {
        let model = identity_f32("features", "scores");
        let main = graph_of(&model);
        assert_eq!(text(one(one(main, 11), 1)), "features");
        assert_eq!(text(one(one(main, 12), 1)), "scores");

        let model = with_domain_op("evil.domain", "Pwn");
        let call = node_of(graph_of(&model), "Pwn");
        assert_eq!(text(one(call, 7)), "evil.domain");
        assert_eq!(text(one(all(&model, 8)[1], 1)), "evil.domain");
        assert_eq!(all(&with_domain_op("", "Relu"), 8).len(), 1);
    }

    /// With `CORDON_DUMP_GRAPHS=<folder>`, writes every graph there as `<name>.onnx`, for checking
    /// them with ONNX's checker and ONNX Runtime by hand.
    #[test]
    fn dump_graphs_when_asked() {
        let Some(folder) = std::env::var_os("CORDON_DUMP_GRAPHS") else {
            return;
        };
        let folder = std::path::PathBuf::from(folder);
        std::fs::create_dir_all(&folder).unwrap();
        let secret_len = 32;
        let graphs = [
            ("identity", external_data_identity("secret.txt", secret_len)),
            (
                "subgraph",
                external_data_in_subgraph("secret.txt", secret_len),
            ),
            (
                "constant",
                external_data_in_constant("secret.txt", secret_len),
            ),
            (
                "function",
                external_data_in_function("secret.txt", secret_len),
            ),
            (
                "parent",
                external_data_identity("../secret.txt", secret_len),
            ),
            (
                "absolute",
                external_data_identity("/tmp/graphs/secret.txt", secret_len),
            ),
            (
                "mem_addr",
                external_data_identity("*/_ORT_MEM_ADDR_/*", secret_len),
            ),
            ("constant_of_shape", constant_of_shape(4)),
            ("endless_loop_10", endless_loop(10)),
            ("endless_loop_huge", endless_loop(1 << 62)),
            ("identity_f32", identity_f32("input", "output")),
            ("domain_op", with_domain_op("evil.domain", "Pwn")),
            ("contrib_op", with_domain_op("com.microsoft", "Gelu")),
        ];
        for (name, bytes) in graphs {
            std::fs::write(folder.join(format!("{name}.onnx")), bytes).unwrap();
        }
    }
}
