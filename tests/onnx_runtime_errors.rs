//! A loaded ONNX model fed the wrong inputs at run time: unknown names,
//! missing inputs, wrong shapes and wrong data types are clear errors that
//! name the input and what it expects, never a panic.

use kiln::frontend::onnx::proto::*;
use kiln::{Context, ContextOptions, LoadOptions, Tensor};
use prost::Message;

/// `y = relu(x + bias)` with `x: [2, 3]`, written to a temporary file.
fn model_file() -> std::path::PathBuf {
    use tensor_shape_proto::{Dimension, dimension::Value as D};
    let info = |name: &str| ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: elem_type::FLOAT,
                shape: Some(TensorShapeProto {
                    dim: [2, 3].iter().map(|&d| Dimension { value: Some(D::DimValue(d)) }).collect(),
                }),
            })),
        }),
    };
    let node = |op: &str, inputs: &[&str], output: &str| NodeProto {
        op_type: op.into(),
        name: output.into(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.into()],
        ..Default::default()
    };
    let model = ModelProto {
        ir_version: 8,
        opset_import: vec![OperatorSetIdProto { domain: String::new(), version: 17 }],
        graph: Some(GraphProto {
            node: vec![node("Add", &["x", "bias"], "s"), node("Relu", &["s"], "y")],
            initializer: vec![TensorProto {
                name: "bias".into(),
                dims: vec![3],
                data_type: elem_type::FLOAT,
                float_data: vec![1.0, -2.0, 0.5],
                ..Default::default()
            }],
            input: vec![info("x")],
            output: vec![info("y")],
            ..Default::default()
        }),
        ..Default::default()
    };
    let dir = std::env::temp_dir().join(format!("kiln-onnx-runtime-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("add_relu.onnx");
    std::fs::write(&path, model.encode_to_vec()).unwrap();
    path
}

#[test]
fn wrong_inputs_at_run_time_are_clear_errors() {
    let ctx = Context::new(ContextOptions::default()).unwrap();
    let model = ctx.load(model_file(), &LoadOptions::default()).unwrap();
    let good = Tensor::from_f32([2, 3], &[0.0, 1.0, 2.0, -3.0, 4.0, -5.0]).unwrap();
    let y = ctx.compute(&model, &[("x", &good)]).unwrap()[0].1.to_f32_vec();
    assert_eq!(y, [1.0, 0.0, 2.5, 0.0, 2.0, 0.0]);

    let error = |feeds: &[(&str, &Tensor)]| ctx.compute(&model, feeds).expect_err("expected an error").to_string();
    let m = error(&[("input", &good)]);
    assert!(m.contains("`input`") && m.contains("is not an input") && m.contains("x"), "{m}");
    let m = error(&[]);
    assert!(m.contains("`x`") && m.contains("missing") && m.contains("[2, 3]"), "{m}");
    let wrong_shape = Tensor::from_f32([3, 2], &[0.0; 6]).unwrap();
    let m = error(&[("x", &wrong_shape)]);
    assert!(m.contains("`x`") && m.contains("[2, 3]") && m.contains("[3, 2]"), "{m}");
    let wrong_type = Tensor::from_bytes(kiln::OperandDescriptor::new(kiln::DataType::Int32, [2, 3]), vec![0; 24]).unwrap();
    let m = error(&[("x", &wrong_type)]);
    assert!(m.contains("`x`") && m.contains("f32[2, 3]") && m.contains("i32[2, 3]"), "{m}");
    let m = error(&[("x", &good), ("x", &good)]);
    assert!(m.contains("more than once"), "{m}");
}
