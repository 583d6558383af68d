//! Bad ONNX input gets a clear error naming what is wrong, never a panic:
//! truncated and garbage files, missing initializers, dangling and cyclic
//! edges, dimensions that overflow, zero-size tensors, unbound symbolic
//! dimensions, and unsupported operators (all of them in one error).
//! Models are written here with the prost messages, not committed as
//! binaries.

use kiln_frontend::LoadOptions;
use kiln_frontend::onnx::proto::*;
use kiln_frontend::onnx::{OnnxError, OnnxModel, load};
use kiln_ir::{DataType, OperandKind};
use prost::Message;

fn node(op_type: &str, name: &str, inputs: &[&str], outputs: &[&str]) -> NodeProto {
    NodeProto {
        op_type: op_type.into(),
        name: name.into(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

/// A float tensor value info; `None` dims are symbolic (`dim_param`).
fn value_info(name: &str, dims: &[Result<i64, &str>]) -> ValueInfoProto {
    use tensor_shape_proto::{Dimension, dimension::Value as D};
    let dim = dims
        .iter()
        .map(|d| Dimension {
            value: Some(match d {
                Ok(v) => D::DimValue(*v),
                Err(p) => D::DimParam(p.to_string()),
            }),
        })
        .collect();
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: elem_type::FLOAT,
                shape: Some(TensorShapeProto { dim }),
            })),
        }),
    }
}

fn float_tensor(name: &str, dims: &[i64], values: &[f32]) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: elem_type::FLOAT,
        float_data: values.to_vec(),
        ..Default::default()
    }
}

fn model(graph: GraphProto) -> ModelProto {
    ModelProto {
        ir_version: 8,
        opset_import: vec![OperatorSetIdProto { domain: String::new(), version: 17 }],
        graph: Some(graph),
        ..Default::default()
    }
}

/// `y = relu(x + bias)` over `x: [batch, 4]`.
fn add_relu() -> GraphProto {
    GraphProto {
        name: "add_relu".into(),
        node: vec![node("Add", "add", &["x", "bias"], &["s"]), node("Relu", "relu", &["s"], &["y"])],
        initializer: vec![float_tensor("bias", &[4], &[1.0, -2.0, 3.0, -4.0])],
        input: vec![value_info("x", &[Err("batch"), Ok(4)])],
        output: vec![value_info("y", &[Err("batch"), Ok(4)])],
        ..Default::default()
    }
}

fn decode(m: &ModelProto) -> Result<OnnxModel, OnnxError> {
    OnnxModel::decode(m.encode_to_vec().into(), ".".into())
}

fn import(graph: GraphProto, options: &LoadOptions) -> Result<kiln_ir::Graph, OnnxError> {
    decode(&model(graph))?.to_graph(options)
}

fn message(r: Result<impl std::fmt::Debug, OnnxError>) -> String {
    r.expect_err("expected an error").to_string()
}

fn batch(n: u32) -> LoadOptions {
    LoadOptions::default().with_shape("batch", [n])
}

#[test]
fn a_valid_model_imports_with_bound_dimensions() {
    let g = import(add_relu(), &batch(3)).unwrap();
    assert_eq!(g.desc(g.inputs()[0]).shape.dims(), &[3, 4]);
    assert_eq!(g.desc(g.outputs()[0].1).shape.dims(), &[3, 4]);
    assert_eq!(g.desc(g.outputs()[0].1).data_type, DataType::Float32);
    // The same by input name.
    let g = import(add_relu(), &LoadOptions::default().with_shape("x", [2, 4])).unwrap();
    assert_eq!(g.desc(g.inputs()[0]).shape.dims(), &[2, 4]);
}

#[test]
fn an_unbound_symbolic_dimension_is_named_with_the_fix() {
    let m = message(import(add_relu(), &LoadOptions::default()));
    assert!(m.contains("input `x`") && m.contains("`batch`") && m.contains("--shape"), "{m}");
}

#[test]
fn a_shape_that_contradicts_the_model_is_refused() {
    let m = message(import(add_relu(), &LoadOptions::default().with_shape("x", [2, 5])));
    assert!(m.contains("dimension 1 is 4 in the model"), "{m}");
    let m = message(import(add_relu(), &LoadOptions::default().with_shape("x", [2, 4, 1])));
    assert!(m.contains("rank"), "{m}");
    let m = message(import(add_relu(), &batch(3).with_shape("nothing", [1])));
    assert!(m.contains("`nothing`") && m.contains("neither a graph input nor a symbolic dimension"), "{m}");
}

#[test]
fn garbage_truncated_and_empty_files_are_refused() {
    let bytes = model(add_relu()).encode_to_vec();
    for cut in [1, 7, bytes.len() / 2, bytes.len() - 1] {
        let r = OnnxModel::decode(bytes[..cut].to_vec().into(), ".".into());
        let m = message(r);
        assert!(m.contains("not a valid ONNX model") || m.contains("not an ONNX model"), "cut {cut}: {m}");
    }
    let m = message(OnnxModel::decode(b"\x89PNG\r\n\x1a\n garbage that is not protobuf".to_vec().into(), ".".into()));
    assert!(m.contains("ONNX"), "{m}");
    let dir = std::env::temp_dir().join(format!("kiln-onnx-errors-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let empty = dir.join("empty.onnx");
    std::fs::write(&empty, b"").unwrap();
    let m = message(OnnxModel::open(&empty));
    assert!(m.contains("empty.onnx") && m.contains("empty"), "{m}");
    let m = message(OnnxModel::open(dir.join("missing.onnx")));
    assert!(m.contains("missing.onnx"), "{m}");
}

#[test]
fn a_model_without_a_graph_or_with_an_old_opset_is_refused() {
    let m = message(decode(&ModelProto { ir_version: 8, ..Default::default() }));
    assert!(m.contains("no graph"), "{m}");
    let mut old = model(add_relu());
    old.opset_import[0].version = 5;
    let m = message(decode(&old));
    assert!(m.contains("opset 5"), "{m}");
}

#[test]
fn a_missing_initializer_is_a_dangling_edge_naming_the_node() {
    let mut g = add_relu();
    g.initializer.clear();
    let m = message(import(g, &batch(1)));
    assert!(m.contains("node `add`") && m.contains("`bias`") && m.contains("not produced"), "{m}");
}

#[test]
fn a_cycle_is_reported_with_its_nodes() {
    let mut g = add_relu();
    g.node = vec![node("Add", "a", &["x", "t"], &["s"]), node("Relu", "b", &["s"], &["t"]), node("Relu", "c", &["s"], &["y"])];
    let m = message(import(g, &batch(1)));
    assert!(m.contains("cycle") && m.contains("`a`") && m.contains("`b`"), "{m}");
}

#[test]
fn a_value_produced_twice_is_refused() {
    let mut g = add_relu();
    g.node.push(node("Relu", "again", &["x"], &["s"]));
    let m = message(import(g, &batch(1)));
    assert!(m.contains("`s`") && m.contains("more than once"), "{m}");
}

#[test]
fn initializer_data_that_disagrees_with_its_shape_is_refused() {
    let mut g = add_relu();
    g.initializer[0].dims = vec![5];
    let m = message(import(g.clone(), &batch(1)));
    assert!(m.contains("initializer `bias`") && m.contains("float_data holds 4 values"), "{m}");
    g.initializer[0].dims = vec![i64::MAX, i64::MAX];
    let m = message(import(g.clone(), &batch(1)));
    assert!(m.contains("initializer `bias`"), "{m}");
    g.initializer[0].dims = vec![1 << 31, 1 << 31];
    let m = message(import(g.clone(), &batch(1)));
    assert!(m.contains("initializer `bias`") && m.contains("too many elements"), "{m}");
    g.initializer[0] = TensorProto { raw_data: vec![0u8; 3].into(), float_data: vec![], ..g.initializer[0].clone() };
    g.initializer[0].dims = vec![4];
    let m = message(import(g, &batch(1)));
    assert!(m.contains("raw_data holds 3 bytes"), "{m}");
}

#[test]
fn zero_size_tensors_are_refused_where_they_would_become_operands() {
    let mut g = add_relu();
    g.initializer[0] = float_tensor("bias", &[0], &[]);
    let m = message(import(g, &batch(1)));
    assert!(m.contains("node `add`") && m.contains("zero dimension"), "{m}");
    // A zero-size input carries no data: it becomes an empty constant, and
    // the operator that would need it as an operand names it.
    let m = message(import(add_relu(), &LoadOptions::default().with_shape("x", [0, 4])));
    assert!(m.contains("node `add`") && m.contains("`x`") && m.contains("zero dimension"), "{m}");
}

#[test]
fn shape_mismatches_name_the_node() {
    let mut g = add_relu();
    g.initializer[0] = float_tensor("bias", &[3], &[1.0, 2.0, 3.0]);
    let m = message(import(g, &batch(2)));
    assert!(m.contains("node `add` (Add)") && m.contains("broadcast"), "{m}");
}

#[test]
fn every_unsupported_operator_is_listed_at_once() {
    let mut g = add_relu();
    g.node = vec![
        node("Add", "add", &["x", "bias"], &["s"]),
        node("FancyOp", "fancy", &["s"], &["t"]),
        node("Relu", "downstream", &["t"], &["u"]),
        node("OtherOp", "other", &["s"], &["v"]),
        node("Add", "y", &["u", "v"], &["y"]),
    ];
    let mut custom = node("Attention", "ms", &["x"], &["w"]);
    custom.domain = "com.microsoft".into();
    g.node.push(custom);
    let m = decode(&model(g)).unwrap();
    let unmapped: Vec<String> = m.unmapped_nodes().into_iter().map(|u| u.node).collect();
    assert_eq!(unmapped, ["fancy", "other", "ms"]);
    match m.to_graph(&batch(1)) {
        Err(OnnxError::Unsupported(nodes)) => {
            let names: Vec<&str> = nodes.iter().map(|n| n.node.as_str()).collect();
            // Nodes downstream of an unsupported one are not reported again.
            assert_eq!(names, ["fancy", "other", "ms"]);
            let text = OnnxError::Unsupported(nodes.clone()).to_string();
            assert!(text.contains("FancyOp") && text.contains("OtherOp") && text.contains("com.microsoft::Attention"), "{text}");
        }
        other => panic!("expected the unsupported operators, got {other:?}"),
    }
}

#[test]
fn constant_subgraphs_are_folded_and_unused_weights_dropped() {
    // y = relu(x + (bias + bias)); an unused initializer is dropped.
    let mut g = add_relu();
    g.node.insert(0, node("Add", "double", &["bias", "bias"], &["b2"]));
    g.node[1].input[1] = "b2".into();
    g.initializer.push(float_tensor("unused", &[2], &[0.0, 0.0]));
    let graph = import(g, &batch(1)).unwrap();
    assert_eq!(graph.nodes().len(), 2, "the constant add is folded");
    let constants: Vec<_> = graph
        .operands()
        .iter()
        .filter_map(|o| match &o.kind {
            OperandKind::Constant(t) => Some(t.to_f32_vec()),
            _ => None,
        })
        .collect();
    assert_eq!(constants, [vec![2.0, -4.0, 6.0, -8.0]]);
}

#[test]
fn graph_outputs_that_are_inputs_get_an_identity() {
    let g = GraphProto {
        input: vec![value_info("x", &[Ok(2)])],
        output: vec![value_info("x", &[Ok(2)])],
        ..Default::default()
    };
    let graph = import(g, &LoadOptions::default()).unwrap();
    assert_eq!(graph.nodes().len(), 1);
    assert_eq!(graph.outputs()[0].0, "x");
}

#[test]
fn external_data_outside_the_model_folder_is_refused() {
    let dir = std::env::temp_dir().join(format!("kiln-onnx-external-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let weights: Vec<u8> = [1.0f32, -2.0, 3.0, -4.0].iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(dir.join("weights.bin"), [vec![0u8; 8], weights].concat()).unwrap();
    let external = |location: &str, offset: &str| {
        let mut g = add_relu();
        g.initializer[0] = TensorProto {
            name: "bias".into(),
            dims: vec![4],
            data_type: elem_type::FLOAT,
            data_location: 1,
            external_data: [("location", location), ("offset", offset), ("length", "16")]
                .iter()
                .map(|(k, v)| StringStringEntryProto { key: k.to_string(), value: v.to_string() })
                .collect(),
            ..Default::default()
        };
        let path = dir.join("model.onnx");
        std::fs::write(&path, model(g).encode_to_vec()).unwrap();
        load(&path, &batch(1))
    };
    let graph = external("weights.bin", "8").unwrap();
    let bias = graph
        .operands()
        .iter()
        .find_map(|o| match &o.kind {
            OperandKind::Constant(t) => Some(t.to_f32_vec()),
            _ => None,
        })
        .unwrap();
    assert_eq!(bias, [1.0, -2.0, 3.0, -4.0]);
    let m = message(external("../weights.bin", "0"));
    assert!(m.contains("relative path inside the model's folder"), "{m}");
    let m = message(external("weights.bin", "16"));
    assert!(m.contains("outside `weights.bin`"), "{m}");
    let m = message(external("nope.bin", "0"));
    assert!(m.contains("nope.bin"), "{m}");
}

#[test]
fn a_huge_declared_shape_without_data_is_an_error_not_an_allocation() {
    let mut g = add_relu();
    g.initializer[0] = float_tensor("bias", &[1 << 20, 1 << 20], &[]);
    let m = message(import(g, &batch(1)));
    assert!(m.contains("initializer `bias`") && m.contains("float_data holds 0 values"), "{m}");
}

#[test]
fn a_huge_load_time_fill_is_refused() {
    let mut g = add_relu();
    g.initializer.push(TensorProto {
        name: "huge".into(),
        dims: vec![2],
        data_type: elem_type::INT64,
        int64_data: vec![1 << 20, 1 << 20],
        ..Default::default()
    });
    g.node.insert(0, node("ConstantOfShape", "fill", &["huge"], &["filled"]));
    g.output.push(value_info("filled", &[Ok(1 << 20), Ok(1 << 20)]));
    let m = message(import(g, &batch(1)));
    assert!(m.contains("node `fill`") && m.contains("limit on constants built at load time"), "{m}");
}
