//! What an ONNX graph is made of, read straight from its protobuf bytes without loading it into
//! ONNX Runtime: the operator sets it needs, the operators it uses and the tensors it stores, for
//! `cordon inspect`, and what in it Cordon refuses to hand to ONNX Runtime at all ([`admit`]).
//!
//! Only the few fields needed are decoded, by hand, so the permissions screen costs no protobuf
//! code generation and no ONNX Runtime. The bytes come from a package not yet trusted: every
//! length is checked against what is left, nesting (subgraphs of `If`, `Loop`, `Scan`) is
//! bounded by [`MAX_SUBGRAPH_DEPTH`], and a malformed graph is an error, never a panic.
//!
//! The graph is hostile, and ONNX Runtime trusts it: a tensor whose data is "external" makes ONNX
//! Runtime open the file its `location` names (`../../home/…`, `/etc/…`), or, for the location
//! `*/_ORT_MEM_ADDR_/*`, read host memory at an address the graph gives. So every place a tensor
//! can hide is read here: the initializers and sparse initializers of the main graph and of
//! every subgraph, tensors in node attributes (a `Constant`'s `value`), the bodies and default
//! attributes of the functions the model defines, and its training graphs. Each tensor with
//! external data, too many dims or too many elements becomes a [`Refusal`], and so does each
//! operator from a domain the policy does not allow.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use cordon_config::admission::domain_name;

/// How deep subgraphs may nest before the graph is called malformed.
pub const MAX_SUBGRAPH_DEPTH: usize = 16;

/// Most elements one stored tensor may declare (the product of its dims). ONNX Runtime sizes
/// buffers from the dims before it looks at the data, so a graph of a few bytes could otherwise
/// ask for terabytes.
pub const MAX_TENSOR_ELEMENTS: u64 = 1 << 31;

/// Most dims one stored tensor may have.
pub const MAX_TENSOR_RANK: u64 = 32;

/// Most bytes of any one name from the graph that a [`Refusal`] keeps: a name is the graph's
/// to choose, and a megabyte of it would otherwise land in every report and log line.
pub const MAX_NAME_BYTES: usize = 256;

/// Most refusals kept, while reading and from [`admit`]; the rest are counted, not kept, so a
/// graph of a million bad tensors costs no more memory or screen than one of 32.
pub const MAX_REFUSALS: usize = 32;

/// Most inputs, and most outputs, of the main graph kept for the permissions screen.
pub const MAX_PORTS: usize = 64;

/// Most characters of an external data location quoted in a refusal.
const MAX_LOCATION_CHARS: usize = 200;

/// The summary of one graph.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct GraphInfo {
    /// Operator sets by domain (`ai.onnx` for the default one) and version.
    pub opsets: BTreeMap<String, i64>,
    /// Operators by name (`domain.Op` outside the default domain), with how many nodes use each,
    /// subgraphs and the bodies of the model's own functions included.
    pub operators: BTreeMap<String, u64>,
    /// The domains of those operators (`ai.onnx` for the default one).
    pub domains: BTreeSet<String>,
    /// The functions the model defines itself (`ModelProto.functions`): names by domain.
    pub functions: BTreeMap<String, BTreeSet<String>>,
    /// The main graph's inputs and outputs as it declares them, at most [`MAX_PORTS`] each.
    pub inputs: Vec<Port>,
    pub outputs: Vec<Port>,
    /// Inputs and outputs past the first [`MAX_PORTS`]: counted, not kept.
    pub more_ports: u64,
    /// What made it, as the graph says (`skl2onnx 1.17`, say).
    pub producer: String,
    /// How many tensors the graph stores: initializers and sparse initializers of the main graph
    /// and of subgraphs, tensors in node attributes (a `Constant`'s value) and in the model's
    /// functions. A sparse tensor counts once.
    pub initializers: u64,
    /// The bytes those tensors store: `raw_data` and the typed data fields, as encoded.
    pub initializer_bytes: u64,
    /// What was found while reading that Cordon will not hand to ONNX Runtime (external data,
    /// oversized tensors), at most [`MAX_REFUSALS`]; [`admit`] adds the operator checks.
    pub refusals: Vec<Refusal>,
    /// Refusals found past the first [`MAX_REFUSALS`]: counted, not kept.
    pub more_refusals: u64,
    /// Operator types by domain, for [`admit`]: kept apart from `operators`, whose
    /// `domain.Op` names cannot be split back (domains have dots in them, and so may op types).
    #[serde(skip)]
    operator_types: BTreeMap<String, BTreeSet<String>>,
}

/// One thing in a graph that Cordon refuses to run: a tensor (named, where it has a name) or an
/// operator, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Refusal {
    /// The tensor's name, cut to [`MAX_NAME_BYTES`]; `None` for an unnamed tensor or an operator.
    pub tensor: Option<String>,
    /// Why, with where in the graph; names in it are escaped and cut.
    pub why: String,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.tensor {
            // The name is the graph's own text: escaped, so it cannot forge lines or terminal
            // escapes in what the consumer reads.
            Some(tensor) => write!(f, "tensor `{}`: {}", tensor.escape_debug(), self.why),
            None => f.write_str(&self.why),
        }
    }
}

pub use cordon_config::admission::AdmissionRules;

/// Domains ONNX Runtime has operators of its own in. A function the model defines does not
/// admit a call into one of these: ONNX Runtime may run its own kernel of the same name rather
/// than the function's body, so a model could otherwise define a dummy
/// `com.microsoft.FusedMatMul` to have the real one admitted.
const RUNTIME_DOMAINS: &[&str] = &[
    "ai.onnx",
    "ai.onnx.ml",
    "ai.onnx.training",
    "ai.onnx.preview.training",
    "ai.onnx.contrib",
    "com.microsoft",
    "com.microsoft.nchwc",
    "com.microsoft.experimental",
    "com.microsoft.dml",
    "com.microsoft.extensions",
    "com.microsoft.mlfeaturizers",
    "com.ms.internal.nhwc",
    "org.pytorch.aten",
];

/// Everything in the graph that Cordon refuses to hand to ONNX Runtime under `rules`: the
/// refusals found while reading, then one per operator whose domain the rules do not allow
/// (unless the model defines that operator as a function of its own, outside the domains ONNX
/// Runtime has operators in). Empty when the graph may run. At most [`MAX_REFUSALS`], then one
/// saying how many more.
pub fn admit(info: &GraphInfo, rules: &AdmissionRules) -> Vec<Refusal> {
    let mut refusals = Vec::new();
    let mut more = info.more_refusals;
    let mut refuse = |refusal: Refusal| {
        if refusals.len() < MAX_REFUSALS {
            refusals.push(refusal);
        } else {
            more = more.saturating_add(1);
        }
    };
    for refusal in &info.refusals {
        refuse(refusal.clone());
    }
    for (domain, types) in &info.operator_types {
        if rules.domains.contains(domain) {
            continue;
        }
        let local = info.functions.get(domain);
        let runtime_domain = RUNTIME_DOMAINS.contains(&domain.as_str());
        for op_type in types {
            // The function's body is read like the main graph, so its own operators face these
            // same checks.
            if !runtime_domain && local.is_some_and(|names| names.contains(op_type)) {
                continue;
            }
            refuse(Refusal {
                tensor: None,
                why: format!(
                    "operator `{}` is in domain `{}`, which the policy does not allow \
                     ([inference] operator-domains)",
                    shown(&operator_name(domain, op_type)),
                    shown(domain),
                ),
            });
        }
    }
    if more > 0 {
        refusals.push(Refusal {
            tensor: None,
            why: format!("and {more} more"),
        });
    }
    refusals
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a readable ONNX graph: {0}")]
pub struct GraphInfoError(String);

/// Where in the model a graph's contents are being read, for the words of a refusal.
struct Scope {
    /// How many subgraphs deep (a function's body counts as one).
    depth: usize,
    /// "in the main graph", "in a subgraph of node `n`", "in function `f`".
    place: String,
    /// The main graph: its inputs and outputs are the model's.
    main: bool,
}

impl Scope {
    /// The place, as it ends the words for something inside one of the scope's nodes: nothing
    /// for the main graph ("in a Constant attribute of node `c`"), " in function `f`" otherwise.
    fn within(&self) -> String {
        if self.main {
            String::new()
        } else {
            format!(" {}", self.place)
        }
    }

    /// The scope of a subgraph of something in this one.
    fn subgraph(&self, of: &str) -> Scope {
        Scope {
            depth: self.depth.saturating_add(1),
            place: format!("in a subgraph of {of}{}", self.within()),
            main: false,
        }
    }
}

/// Reads `bytes` as an ONNX `ModelProto`.
pub fn read(bytes: &[u8]) -> Result<GraphInfo, GraphInfoError> {
    // ONNX Runtime's own flatbuffer format carries this mark; such bytes are not ONNX, whatever
    // this reader would make of them (sessions are also told to read ONNX only).
    if bytes.get(4..8) == Some(b"ORTM".as_slice()) {
        return Err(GraphInfoError(
            "it is in ONNX Runtime's own format (ORTM), not ONNX".into(),
        ));
    }
    let mut info = GraphInfo::default();
    let mut producer = (String::new(), String::new());
    let mut saw_graph = false;
    let main = Scope {
        depth: 0,
        place: "in the main graph".into(),
        main: true,
    };
    for field in Fields(bytes) {
        match field? {
            (2, Value::Bytes(name)) => producer.0 = text(name)?,
            (3, Value::Bytes(version)) => producer.1 = text(version)?,
            (7, Value::Bytes(graph)) => {
                saw_graph = true;
                read_graph(graph, &main, &mut info)?;
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
            // TrainingInfoProto: its `initialization` (1) and `algorithm` (2) graphs are
            // graphs like any other, with initializers of their own.
            (20, Value::Bytes(training)) => {
                let scope = Scope {
                    depth: 1,
                    place: "in training_info".into(),
                    main: false,
                };
                for field in Fields(training) {
                    if let (1 | 2, Value::Bytes(graph)) = field? {
                        read_graph(graph, &scope, &mut info)?;
                    }
                }
            }
            (25, Value::Bytes(function)) => read_function(function, &mut info)?,
            _ => {}
        }
    }
    if !saw_graph {
        return Err(GraphInfoError("it has no graph (ModelProto.graph)".into()));
    }
    info.producer = format!("{} {}", producer.0, producer.1).trim().to_owned();
    Ok(info)
}

fn read_graph(bytes: &[u8], scope: &Scope, info: &mut GraphInfo) -> Result<(), GraphInfoError> {
    if scope.depth > MAX_SUBGRAPH_DEPTH {
        return Err(GraphInfoError(format!(
            "subgraphs nest deeper than {MAX_SUBGRAPH_DEPTH}"
        )));
    }
    for field in Fields(bytes) {
        match field? {
            (1, Value::Bytes(node)) => read_node(node, scope, info)?,
            (5, Value::Bytes(tensor)) => add_tensor(tensor, &scope.place, info)?,
            (15, Value::Bytes(sparse)) => add_sparse_tensor(sparse, &scope.place, info)?,
            (11, Value::Bytes(input)) if scope.main => add_port(input, true, info)?,
            (12, Value::Bytes(output)) if scope.main => add_port(output, false, info)?,
            _ => {}
        }
    }
    Ok(())
}

fn read_node(bytes: &[u8], scope: &Scope, info: &mut GraphInfo) -> Result<(), GraphInfoError> {
    let (mut op_type, mut domain, mut name) = (String::new(), String::new(), String::new());
    let mut has_attributes = false;
    for field in Fields(bytes) {
        match field? {
            (3, Value::Bytes(n)) => name = self::name(n)?,
            (4, Value::Bytes(op)) => op_type = text(op)?,
            (7, Value::Bytes(d)) => domain = text(d)?,
            (5, Value::Bytes(_)) => has_attributes = true,
            _ => {}
        }
    }
    if op_type.is_empty() {
        return Err(GraphInfoError("a node has no op_type".into()));
    }
    // The attributes, in a second pass now that the node's name and operator are known (fields
    // may come in any order): they may hold tensors and subgraphs.
    if has_attributes {
        let node = if name.is_empty() {
            format!("an unnamed `{}` node", shown(&op_type))
        } else {
            format!("node `{}`", shown(&name))
        };
        let holder = if op_type == "Constant" {
            format!("in a Constant attribute of {node}{}", scope.within())
        } else {
            format!(
                "in an attribute of {node} (`{}`){}",
                shown(&op_type),
                scope.within()
            )
        };
        let inner = scope.subgraph(&node);
        for field in Fields(bytes) {
            if let (5, Value::Bytes(attribute)) = field? {
                read_attribute(attribute, &holder, &inner, info)?;
            }
        }
    }
    let domain = domain_name(domain);
    *info
        .operators
        .entry(operator_name(&domain, &op_type))
        .or_default() += 1;
    info.operator_types
        .entry(domain.clone())
        .or_default()
        .insert(op_type);
    info.domains.insert(domain);
    Ok(())
}

/// An AttributeProto: its tensors (`t` 5, `tensors` 10, `sparse_tensor` 22, `sparse_tensors`
/// 23), described as `holder`, and its subgraphs (`g` 6, `graphs` 11), read in `inner`.
fn read_attribute(
    bytes: &[u8],
    holder: &str,
    inner: &Scope,
    info: &mut GraphInfo,
) -> Result<(), GraphInfoError> {
    for field in Fields(bytes) {
        match field? {
            (6 | 11, Value::Bytes(graph)) => read_graph(graph, inner, info)?,
            (10, Value::Bytes(tensor)) => add_tensor(tensor, holder, info)?,
            (23, Value::Bytes(sparse)) => add_sparse_tensor(sparse, holder, info)?,
            _ => {}
        }
    }
    // `t` and `sparse_tensor` are single fields, which protobuf merges when they appear more
    // than once: read what ONNX Runtime will see. (Repeated `g` would merge too, but a graph's
    // contents are all repeated fields, so reading each copy in turn sees the same.)
    if let Some(tensor) = merged(bytes, 5)? {
        add_tensor(&tensor, holder, info)?;
    }
    if let Some(sparse) = merged(bytes, 22)? {
        add_sparse_tensor(&sparse, holder, info)?;
    }
    Ok(())
}

/// A FunctionProto of the model's own: its name (1) and domain (10) are recorded, its nodes (7)
/// and default attributes (`attribute_proto` 11) read like a subgraph's, tensors and all.
fn read_function(bytes: &[u8], info: &mut GraphInfo) -> Result<(), GraphInfoError> {
    let (mut name, mut domain) = (String::new(), String::new());
    for field in Fields(bytes) {
        match field? {
            (1, Value::Bytes(n)) => name = text(n)?,
            (10, Value::Bytes(d)) => domain = text(d)?,
            _ => {}
        }
    }
    let function = format!("function `{}`", shown(&name));
    let scope = Scope {
        depth: 1,
        place: format!("in {function}"),
        main: false,
    };
    let holder = format!("in a default attribute of {function}");
    let inner = Scope {
        depth: 2,
        place: format!("in a subgraph of a default attribute of {function}"),
        main: false,
    };
    for field in Fields(bytes) {
        match field? {
            (7, Value::Bytes(node)) => read_node(node, &scope, info)?,
            (11, Value::Bytes(attribute)) => read_attribute(attribute, &holder, &inner, info)?,
            _ => {}
        }
    }
    info.functions
        .entry(domain_name(domain))
        .or_default()
        .insert(name);
    Ok(())
}

/// Records a refusal, or only counts it past [`MAX_REFUSALS`].
fn refuse(info: &mut GraphInfo, tensor: Option<String>, why: String) {
    if info.refusals.len() < MAX_REFUSALS {
        info.refusals.push(Refusal { tensor, why });
    } else {
        info.more_refusals = info.more_refusals.saturating_add(1);
    }
}

/// An input or output of the main graph: kept (up to [`MAX_PORTS`]), and refused if wasi:nn
/// cannot carry it, whatever the policy: no guest could feed or read it.
fn add_port(bytes: &[u8], input: bool, info: &mut GraphInfo) -> Result<(), GraphInfoError> {
    let port = interface::read_port(bytes)?;
    if let Some(why) = port.uncarried(input) {
        refuse(info, Some(port.name.clone()), why);
    }
    let ports = if input {
        &mut info.inputs
    } else {
        &mut info.outputs
    };
    if ports.len() < MAX_PORTS {
        ports.push(port);
    } else {
        info.more_ports = info.more_ports.saturating_add(1);
    }
    Ok(())
}

/// ONNX writes the default domain as "" (or "ai.onnx"); name it one way.
/// An operator as `operators` names it: `Op` in the default domain, `domain.Op` elsewhere.
fn operator_name(domain: &str, op_type: &str) -> String {
    match domain {
        "ai.onnx" => op_type.to_owned(),
        other => format!("{other}.{op_type}"),
    }
}

fn text(bytes: &[u8]) -> Result<String, GraphInfoError> {
    String::from_utf8(bytes.to_vec()).map_err(|_| GraphInfoError("a name is not UTF-8".into()))
}

/// A name to keep in a refusal: strict UTF-8 like [`text`], cut to [`MAX_NAME_BYTES`] without
/// copying the rest.
fn name(bytes: &[u8]) -> Result<String, GraphInfoError> {
    let name =
        std::str::from_utf8(bytes).map_err(|_| GraphInfoError("a name is not UTF-8".into()))?;
    Ok(cut(name))
}

/// `text` cut to at most [`MAX_NAME_BYTES`] bytes, at a character boundary, ending in `…` where
/// it was cut.
fn cut(text: &str) -> String {
    if text.len() <= MAX_NAME_BYTES {
        return text.to_owned();
    }
    let mut end = MAX_NAME_BYTES.saturating_sub('…'.len_utf8());
    while !text.is_char_boundary(end) {
        end = end.saturating_sub(1);
    }
    format!("{}…", text.get(..end).unwrap_or_default())
}

/// A name from the graph as it appears inside a refusal's words: cut, then escaped.
fn shown(text: &str) -> String {
    cut(text).escape_debug().to_string()
}

mod interface;
mod protobuf;
mod tensor;

pub use interface::Port;

use protobuf::{Fields, Value, merged};
use tensor::{add_sparse_tensor, add_tensor};

#[cfg(test)]
mod tests;
