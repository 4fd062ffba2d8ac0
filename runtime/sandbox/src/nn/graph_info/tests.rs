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

/// A varint field.
fn number(number: u64, v: u64) -> Vec<u8> {
    [varint(number << 3), varint(v)].concat()
}

/// A FLOAT TensorProto with its data inline, in raw_data.
fn tensor(name: &str, dims: &[i64], raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for &dim in dims {
        out.extend(number(1, dim as u64));
    }
    out.extend(number(2, 1));
    out.extend(field(8, name.as_bytes()));
    out.extend(field(9, raw));
    out
}

/// A TensorProto whose data is external, at `location`.
fn external(name: &str, location: &[u8]) -> Vec<u8> {
    [
        number(1, 4),
        number(2, 1),
        field(8, name.as_bytes()),
        field(13, &[field(1, b"location"), field(2, location)].concat()),
        field(13, &[field(1, b"offset"), field(2, b"0")].concat()),
        number(14, 1),
    ]
    .concat()
}

/// A NodeProto with a name and attributes (each an AttributeProto's bytes).
fn named_node(name: &str, op: &str, domain: &str, attributes: &[Vec<u8>]) -> Vec<u8> {
    let mut out = [field(3, name.as_bytes()), node(op, domain, None)].concat();
    for attribute in attributes {
        out.extend(field(5, attribute));
    }
    out
}

/// An AttributeProto named `name` with one field `number` (t = 5, g = 6, tensors = 10,
/// sparse_tensor = 22, ...).
fn attribute(name: &str, number: u64, value: &[u8]) -> Vec<u8> {
    [field(1, name.as_bytes()), field(number, value)].concat()
}

/// A FunctionProto `domain.name` whose body is `nodes`.
fn function(domain: &str, name: &str, nodes: &[Vec<u8>]) -> Vec<u8> {
    let mut out = [field(1, name.as_bytes()), field(10, domain.as_bytes())].concat();
    for node in nodes {
        out.extend(field(7, node));
    }
    out
}

/// A ModelProto with `graph` and the ModelProto fields in `rest`.
fn model(graph: &[u8], rest: &[Vec<u8>]) -> Vec<u8> {
    [field(7, graph), rest.concat()].concat()
}

/// What the default rules refuse in `model`.
fn refused(model: &[u8]) -> Vec<Refusal> {
    admit(&read(model).unwrap(), &AdmissionRules::default())
}

/// The one refusal in `model`, for the tensor named `tensor`.
fn only_refusal(model: &[u8], tensor: &str) -> String {
    let refusals = refused(model);
    assert_eq!(refusals.len(), 1, "{refusals:?}");
    assert_eq!(refusals[0].tensor.as_deref(), Some(tensor), "{refusals:?}");
    refusals[0].why.clone()
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
    let names = |ports: &[Port]| ports.iter().map(|p| p.name.clone()).collect::<Vec<_>>();
    assert_eq!(names(&info.inputs), ["features"]);
    assert_eq!(names(&info.outputs), ["probabilities"]);
}

#[test]
fn tags_protobuf_would_read_differently_and_ort_format_are_refused() {
    // Field 5 (an initializer) written as a 5-byte tag with a high bit set: protobuf's C++
    // reader drops the high bits and sees field 5.
    let mut long_tag = vec![0xaa, 0x80, 0x80, 0x80, 0x10];
    long_tag.extend([0x00]);
    assert!(read(&long_tag).unwrap_err().to_string().contains("tag"));
    // A 6-byte tag.
    assert!(read(&[0xba, 0x80, 0x80, 0x80, 0x80, 0x00, 0x00]).is_err());
    // Field 0.
    assert!(read(&[0x02, 0x00]).is_err());
    let mut ort_format = vec![0u8; 16];
    ort_format[4..8].copy_from_slice(b"ORTM");
    assert!(read(&ort_format).unwrap_err().to_string().contains("ORTM"));
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

#[test]
fn external_data_in_the_main_graph_is_refused() {
    let graph = [
        field(1, &node("Relu", "", None)),
        field(5, &external("weights", b"weights.bin")),
    ]
    .concat();
    let model = model(&graph, &[]);
    let info = read(&model).unwrap();
    assert_eq!(info.refusals.len(), 1, "recorded while reading");
    assert_eq!(info.initializers, 1);
    let why = only_refusal(&model, "weights");
    assert!(why.contains("`weights.bin`"), "{why}");
    assert!(why.contains("in the main graph"), "{why}");
}

#[test]
fn external_data_in_a_subgraph_initializer_is_refused() {
    let inner = [
        field(1, &node("Relu", "", None)),
        field(5, &external("hidden", b"../secret")),
    ]
    .concat();
    let graph = field(
        1,
        &named_node("branch", "If", "", &[attribute("then_branch", 6, &inner)]),
    );
    let why = only_refusal(&model(&graph, &[]), "hidden");
    assert!(why.contains("in a subgraph of node `branch`"), "{why}");

    // `graphs` (11), as `Scan`-like operators of other domains might hold them.
    let graph = field(
        1,
        &named_node("many", "If", "", &[attribute("branches", 11, &inner)]),
    );
    let why = only_refusal(&model(&graph, &[]), "hidden");
    assert!(why.contains("in a subgraph of node `many`"), "{why}");
}

#[test]
fn external_data_in_a_constant_attribute_is_refused() {
    let constant = named_node(
        "c",
        "Constant",
        "",
        &[attribute("value", 5, &external("", b"/etc/passwd"))],
    );
    let model = model(&field(1, &constant), &[]);
    let refusals = refused(&model);
    assert_eq!(refusals.len(), 1, "{refusals:?}");
    assert_eq!(refusals[0].tensor, None, "a Constant's tensor has no name");
    assert!(
        refusals[0]
            .why
            .contains("in a Constant attribute of node `c`"),
        "{}",
        refusals[0].why
    );
    assert_eq!(read(&model).unwrap().initializers, 1);

    // `tensors` (10) too, on any operator.
    let other = named_node(
        "d",
        "Custom",
        "",
        &[attribute("tables", 10, &external("table", b"t.bin"))],
    );
    let why = only_refusal(&self::model(&field(1, &other), &[]), "table");
    assert!(
        why.contains("in an attribute of node `d` (`Custom`)"),
        "{why}"
    );
}

#[test]
fn external_data_in_a_sparse_initializer_is_refused() {
    let sparse = [
        field(1, &external("sparse", b"values.bin")),
        field(2, &tensor("", &[1], &[0; 8])),
        number(3, 4),
    ]
    .concat();
    let graph = [field(1, &node("Relu", "", None)), field(15, &sparse)].concat();
    let model = model(&graph, &[]);
    let why = only_refusal(&model, "sparse");
    assert!(why.contains("`values.bin`"), "{why}");
    assert_eq!(
        read(&model).unwrap().initializers,
        1,
        "a sparse tensor counts once"
    );

    // Its indices are a tensor too, and so is a sparse tensor in an attribute.
    let sparse = [
        field(1, &tensor("s", &[1], &[0; 4])),
        field(2, &external("", b"indices.bin")),
        number(3, 4),
    ]
    .concat();
    let constant = named_node(
        "c",
        "Constant",
        "",
        &[attribute("sparse_value", 22, &sparse)],
    );
    let refusals = refused(&self::model(&field(1, &constant), &[]));
    assert_eq!(refusals.len(), 1, "{refusals:?}");
    assert!(refusals[0].why.contains("`indices.bin`"), "{refusals:?}");
    // And in `sparse_tensors` (23), on any operator.
    let other = named_node("d", "Custom", "", &[attribute("tables", 23, &sparse)]);
    let refusals = refused(&self::model(&field(1, &other), &[]));
    assert_eq!(refusals.len(), 1, "{refusals:?}");
    assert!(refusals[0].why.contains("`indices.bin`"), "{refusals:?}");
}

#[test]
fn external_data_in_a_function_is_refused() {
    let constant = named_node(
        "c",
        "Constant",
        "",
        &[attribute("value", 5, &external("", b"w.bin"))],
    );
    let body = function("local", "f", &[constant]);
    let graph = field(1, &node("f", "local", None));
    let refusals = refused(&model(&graph, &[field(25, &body)]));
    assert_eq!(refusals.len(), 1, "{refusals:?}");
    assert!(
        refusals[0]
            .why
            .contains("in a Constant attribute of node `c` in function `f`"),
        "{refusals:?}"
    );

    // A function's default attributes (attribute_proto, 11) may hold tensors as well, and a
    // function need not even be called for its tensors to be refused.
    let defaults = [
        field(1, b"g"),
        field(10, b"local"),
        field(11, &attribute("value", 5, &external("d", b"d.bin"))),
    ]
    .concat();
    let plain = function("local", "f", &[node("Relu", "", None)]);
    let why = only_refusal(
        &model(&graph, &[field(25, &plain), field(25, &defaults)]),
        "d",
    );
    assert!(
        why.contains("in a default attribute of function `g`"),
        "{why}"
    );
}

#[test]
fn external_data_in_training_info_is_refused() {
    let training = [
        field(1, &node("Relu", "", None)),
        field(5, &external("state", b"state.bin")),
    ]
    .concat();
    let graph = field(1, &node("Relu", "", None));
    let info = [field(1, &training)].concat();
    let why = only_refusal(&model(&graph, &[field(20, &info)]), "state");
    assert!(why.contains("in training_info"), "{why}");
}

#[test]
fn every_external_location_is_refused() {
    let graph = |tensor: Vec<u8>| {
        model(
            &[field(1, &node("Relu", "", None)), field(5, &tensor)].concat(),
            &[],
        )
    };
    for (location, kind) in [
        (
            &b"../../home/consumer/.ssh/id_ed25519"[..],
            "climbs out of the package",
        ),
        (b"/etc/shadow", "an absolute path"),
        (b"C:\\Windows\\win.ini", "an absolute path"),
        (b"*/_ORT_MEM_ADDR_/*", "host memory"),
        (b"weights.bin", "a file beside the graph"),
    ] {
        let why = only_refusal(&graph(external("w", location)), "w");
        assert!(why.contains(kind), "{why}");
    }

    // data_location EXTERNAL alone, external_data entries alone, or an unknown location.
    let marked = [field(8, b"w"), field(9, &[0; 4]), number(14, 1)].concat();
    let why = only_refusal(&graph(marked), "w");
    assert!(why.contains("with no location"), "{why}");
    let entries = [
        field(8, b"w"),
        field(13, &[field(1, b"location"), field(2, b"x.bin")].concat()),
    ]
    .concat();
    only_refusal(&graph(entries), "w");
    let unknown = [field(8, b"w"), number(14, 7)].concat();
    let why = only_refusal(&graph(unknown), "w");
    assert!(why.contains("data_location 7"), "{why}");
    // A later DEFAULT does not clear an earlier EXTERNAL.
    let flipped = [field(8, b"w"), number(14, 1), number(14, 0)].concat();
    only_refusal(&graph(flipped), "w");

    // The location is the graph's text: escaped, cut, and quoted even when not UTF-8.
    let why = only_refusal(&graph(external("w", b"a\nb\x1b[31m")), "w");
    assert!(why.contains(r"`a\nb\u{1b}[31m`"), "{why}");
    assert!(!why.contains('\n') && !why.contains('\x1b'), "{why}");
    let why = only_refusal(&graph(external("w", &[b'x'; 100_000])), "w");
    assert!(why.len() < 1_000 && why.contains("x…"), "{why}");
    let why = only_refusal(&graph(external("w", b"\xff/../x")), "w");
    assert!(why.contains("climbs out"), "{why}");
}

#[test]
fn inline_tensors_are_counted_not_refused() {
    let packed_floats = [field(8, b"f"), number(1, 3), field(4, &[0; 12])].concat();
    // int64_data, not packed: 1 takes one byte, 300 two.
    let int64s = [field(8, b"i"), number(1, 2), number(7, 1), number(7, 300)].concat();
    let constant = named_node(
        "c",
        "Constant",
        "",
        &[attribute("value", 5, &tensor("", &[1], &[0; 4]))],
    );
    let graph = [
        field(1, &node("MatMul", "", None)),
        field(1, &constant),
        field(5, &tensor("w", &[2, 2], &[0; 16])),
        field(5, &packed_floats),
        field(5, &int64s),
    ]
    .concat();
    let model = model(&graph, &[]);
    let info = read(&model).unwrap();
    assert_eq!(info.initializers, 4);
    assert_eq!(info.initializer_bytes, 16 + 12 + 3 + 4);
    assert_eq!(info.refusals, []);
    assert_eq!(admit(&info, &AdmissionRules::default()), []);
}

#[test]
fn operators_outside_the_allowed_domains_are_refused() {
    let graph = [
        field(1, &node("MatMul", "", None)),
        field(1, &node("TreeEnsembleClassifier", "ai.onnx.ml", None)),
        field(1, &node("FusedMatMul", "com.microsoft", None)),
        field(1, &node("FusedMatMul", "com.microsoft", None)),
    ]
    .concat();
    let info = read(&model(&graph, &[])).unwrap();
    assert_eq!(
        info.domains,
        ["ai.onnx", "ai.onnx.ml", "com.microsoft"]
            .map(String::from)
            .into()
    );
    assert_eq!(
        info.refusals,
        [],
        "domains are the policy's to judge, in admit"
    );
    let refusals = admit(&info, &AdmissionRules::default());
    assert_eq!(
        refusals,
        [Refusal {
            tensor: None,
            why: "operator `com.microsoft.FusedMatMul` is in domain `com.microsoft`, which \
                  the policy does not allow ([inference] operator-domains)"
                .into(),
        }],
        "one refusal per operator, not per node"
    );
    let rules = AdmissionRules::with_extra_domains(["com.microsoft".to_owned()]);
    assert_eq!(admit(&info, &rules), []);
    let rules = AdmissionRules::with_extra_domains([String::new()]);
    assert!(
        rules.domains.contains("ai.onnx"),
        "\"\" is the default domain"
    );

    // An operator inside a subgraph or a function body is checked the same.
    let inner = field(1, &node("Evil", "com.example", None));
    let graph = field(1, &node("If", "", Some(&inner)));
    assert_eq!(refused(&model(&graph, &[])).len(), 1);
    let body = function("local", "f", &[node("Evil", "com.example", None)]);
    let graph = field(1, &node("f", "local", None));
    let refusals = refused(&model(&graph, &[field(25, &body)]));
    assert_eq!(refusals.len(), 1, "{refusals:?}");
    assert!(
        refusals[0].why.contains("`com.example.Evil`"),
        "{refusals:?}"
    );
}

#[test]
fn the_models_own_functions_are_admitted() {
    let body = function("local", "MyFunc", &[node("Relu", "", None)]);
    let graph = field(1, &node("MyFunc", "local", None));
    let model = model(&graph, &[field(25, &body)]);
    let info = read(&model).unwrap();
    assert_eq!(info.functions["local"], ["MyFunc".to_owned()].into());
    assert_eq!(info.operators["local.MyFunc"], 1);
    assert_eq!(info.operators["Relu"], 1, "function bodies count");
    assert_eq!(admit(&info, &AdmissionRules::default()), []);

    // The function admits itself, not every operator of its domain.
    let graph = [
        field(1, &node("MyFunc", "local", None)),
        field(1, &node("Other", "local", None)),
    ]
    .concat();
    let refusals = refused(&self::model(&graph, &[field(25, &body)]));
    assert_eq!(refusals.len(), 1, "{refusals:?}");
    assert!(refusals[0].why.contains("`local.Other`"), "{refusals:?}");

    // Nor does a function named like one of ONNX Runtime's own operators admit that.
    let decoy = function("com.microsoft", "FusedMatMul", &[node("Relu", "", None)]);
    let graph = field(1, &node("FusedMatMul", "com.microsoft", None));
    let refusals = refused(&self::model(&graph, &[field(25, &decoy)]));
    assert_eq!(refusals.len(), 1, "{refusals:?}");
}

#[test]
fn oversized_tensors_are_refused() {
    let graph = |tensor: Vec<u8>| {
        model(
            &[field(1, &node("Relu", "", None)), field(5, &tensor)].concat(),
            &[],
        )
    };
    let why = only_refusal(&graph(tensor("big", &[1 << 20, 1 << 20], &[])), "big");
    assert!(why.contains("1099511627776 elements"), "{why}");
    let why = only_refusal(&graph(tensor("big", &[i64::MAX, 4], &[])), "big");
    assert!(why.contains("past 2^64"), "{why}");
    let why = only_refusal(&graph(tensor("neg", &[4, -1], &[])), "neg");
    assert!(why.contains("negative dim (-1)"), "{why}");
    let why = only_refusal(&graph(tensor("deep", &[1; 33], &[])), "deep");
    assert!(why.contains("33 dims"), "{why}");
    // Packed dims are the same dims.
    let packed = [
        field(8, b"p"),
        field(1, &[varint(1 << 16), varint(1 << 16)].concat()),
    ]
    .concat();
    only_refusal(&graph(packed), "p");
    // At the limit is allowed; so are no dims (a scalar) and a zero dim.
    for dims in [&[1 << 16, 1 << 15][..], &[], &[0, i64::MAX]] {
        assert_eq!(refused(&graph(tensor("ok", dims, &[0; 4]))), [], "{dims:?}");
    }

    // A Constant's `t` given twice is one tensor to protobuf, dims appended: 2^16 * 2^16.
    let half = [number(1, 1 << 16)].concat();
    let constant = [
        field(3, b"c"),
        field(4, b"Constant"),
        field(
            5,
            &[field(1, b"value"), field(5, &half), field(5, &half)].concat(),
        ),
    ]
    .concat();
    let model = self::model(&field(1, &constant), &[]);
    let refusals = refused(&model);
    assert_eq!(refusals.len(), 1, "{refusals:?}");
    assert!(
        refusals[0].why.contains("4294967296 elements"),
        "{refusals:?}"
    );
    assert_eq!(read(&model).unwrap().initializers, 1);

    // A sparse initializer's dense shape is allocated whole.
    let sparse = [
        field(1, &tensor("s", &[1], &[0; 4])),
        field(2, &tensor("", &[1], &[0; 8])),
        number(3, 1 << 40),
    ]
    .concat();
    let why = only_refusal(
        &self::model(
            &[field(1, &node("Relu", "", None)), field(15, &sparse)].concat(),
            &[],
        ),
        "s",
    );
    assert!(why.contains("dense shape"), "{why}");
}

#[test]
fn refusals_are_bounded() {
    let mut graph = field(1, &node("Evil", "com.example", None));
    for i in 0..40 {
        graph.extend(field(5, &external(&format!("w{i}"), b"w.bin")));
    }
    let info = read(&model(&graph, &[])).unwrap();
    assert_eq!(info.refusals.len(), MAX_REFUSALS);
    assert_eq!(info.more_refusals, 8);
    let refusals = admit(&info, &AdmissionRules::default());
    assert_eq!(refusals.len(), MAX_REFUSALS + 1);
    assert_eq!(
        refusals[MAX_REFUSALS].to_string(),
        "and 9 more",
        "8 tensors, 1 operator"
    );
}

#[test]
fn names_are_strict_and_cut() {
    let long = "é".repeat(600);
    let graph = [
        field(1, &node("Relu", "", None)),
        field(5, &external(&long, b"w")),
    ]
    .concat();
    let refusals = refused(&model(&graph, &[]));
    let name = refusals[0].tensor.as_deref().unwrap();
    assert!(
        name.len() <= MAX_NAME_BYTES && name.ends_with('…'),
        "{name}"
    );
    assert!(name.starts_with("éé"));

    let bad = [field(8, b"\xff"), field(9, &[0; 4])].concat();
    let graph = [field(1, &node("Relu", "", None)), field(5, &bad)].concat();
    assert!(
        read(&model(&graph, &[])).is_err(),
        "a name that is not UTF-8"
    );

    let refusal = Refusal {
        tensor: Some("w\n".into()),
        why: "why".into(),
    };
    assert_eq!(refusal.to_string(), r"tensor `w\n`: why");
    let refusal = Refusal {
        tensor: None,
        why: "why".into(),
    };
    assert_eq!(refusal.to_string(), "why");
}

/// A ValueInfoProto: a tensor of ONNX element type `element` with `dims` (a number, or a
/// symbolic name), or, with `element` 0, a sequence.
fn port(name: &str, element: u64, dims: &[&str]) -> Vec<u8> {
    let shape: Vec<u8> = dims
        .iter()
        .map(|d| match d.parse::<u64>() {
            Ok(n) => field(1, &number(1, n)),
            Err(_) => field(1, &field(2, d.as_bytes())),
        })
        .collect::<Vec<_>>()
        .concat();
    let type_proto = if element == 0 {
        field(4, &field(1, &field(1, &number(1, 1))))
    } else {
        field(1, &[number(1, element), field(2, &shape)].concat())
    };
    [field(1, name.as_bytes()), field(2, &type_proto)].concat()
}

#[test]
fn inputs_and_outputs_are_read_with_types_and_shapes() {
    let graph = [
        field(1, &node("Relu", "", None)),
        field(11, &port("lags", 1, &["N", "8"])),
        field(12, &port("next", 1, &["N", "1"])),
        field(12, &port("flag", 9, &["N"])),
    ]
    .concat();
    let info = read(&model(&graph, &[])).unwrap();
    let shown: Vec<String> = info
        .inputs
        .iter()
        .chain(&info.outputs)
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        shown,
        [
            "lags float32 [N, 8]",
            "next float32 [N, 1]",
            "flag bool [N]"
        ]
    );
    // A boolean output is read back as uint8: accepted.
    assert!(refused(&model(&graph, &[])).is_empty());
}

#[test]
fn inputs_and_outputs_wasi_nn_cannot_carry_are_refused_by_name() {
    // A whole scikit-learn pipeline: text in, ZipMap (a sequence of maps) out.
    let graph = [
        field(1, &node("Relu", "", None)),
        field(11, &port("contract", 8, &["N", "1"])),
        field(11, &port("tenure", 1, &["N", "1"])),
        field(11, &port("senior", 9, &["N", "1"])),
        field(12, &port("output_probability", 0, &[])),
    ]
    .concat();
    let refusals = refused(&model(&graph, &[]));
    let named: Vec<(&str, &str)> = refusals
        .iter()
        .map(|r| (r.tensor.as_deref().unwrap_or(""), r.why.as_str()))
        .collect();
    assert_eq!(named.len(), 3, "{named:?}");
    assert_eq!(named[0].0, "contract");
    assert!(
        named[0]
            .1
            .contains("input is tensor(string), which wasi:nn cannot carry"),
        "{named:?}"
    );
    assert!(named[0].1.contains("encode text in the guest"), "{named:?}");
    assert_eq!(named[1].0, "senior");
    assert!(
        named[1].1.contains("Cast it to bool inside the graph"),
        "{named:?}"
    );
    assert_eq!(named[2].0, "output_probability");
    assert!(
        named[2].1.contains("output is a sequence, not a tensor"),
        "{named:?}"
    );
    assert!(named[2].1.contains("'zipmap': False"), "{named:?}");
}
