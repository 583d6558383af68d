//! Building ONNX models as prost messages, for the ONNX frontend tests.
#![allow(dead_code)] // each test file uses a different subset

use kiln_ir::{Tensor, Values};
use kiln_frontend::onnx::proto::{
    AttributeProto, AttributeType, NodeProto, TensorProto, TensorShapeProto, TypeProto, ValueInfoProto, elem_type,
    tensor_shape_proto, type_proto,
};

pub fn attr(name: &str, r#type: AttributeType) -> AttributeProto {
    AttributeProto { name: name.into(), r#type: r#type as i32, ..Default::default() }
}

pub fn int(name: &str, i: i64) -> AttributeProto {
    AttributeProto { i, ..attr(name, AttributeType::Int) }
}

pub fn ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto { ints: v.to_vec(), ..attr(name, AttributeType::Ints) }
}

pub fn float(name: &str, f: f32) -> AttributeProto {
    AttributeProto { f, ..attr(name, AttributeType::Float) }
}

pub fn floats_attr(name: &str, v: &[f32]) -> AttributeProto {
    AttributeProto { floats: v.to_vec(), ..attr(name, AttributeType::Floats) }
}

pub fn string(name: &str, s: &str) -> AttributeProto {
    AttributeProto { s: s.as_bytes().to_vec().into(), ..attr(name, AttributeType::String) }
}

pub fn node(op_type: &str, inputs: &[&str], outputs: &[&str], attribute: Vec<AttributeProto>) -> NodeProto {
    NodeProto {
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        op_type: op_type.into(),
        attribute,
        ..Default::default()
    }
}

/// A tensor value with element type `elem` and static `dims`.
pub fn value_info(name: &str, elem: i32, dims: &[u32]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|&d| tensor_shape_proto::Dimension { value: Some(tensor_shape_proto::dimension::Value::DimValue(d.into())) })
        .collect();
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: elem,
                shape: Some(TensorShapeProto { dim }),
            })),
        }),
    }
}

pub fn i64s(name: &str, dims: &[i64], values: &[i64]) -> TensorProto {
    TensorProto { name: name.into(), dims: dims.to_vec(), data_type: elem_type::INT64, int64_data: values.to_vec(), ..Default::default() }
}

pub fn f32s(name: &str, dims: &[i64], values: &[f32]) -> TensorProto {
    TensorProto { name: name.into(), dims: dims.to_vec(), data_type: elem_type::FLOAT, float_data: values.to_vec(), ..Default::default() }
}

/// Every element as f64.
pub fn values(t: &Tensor) -> Vec<f64> {
    match t.values() {
        Values::Float(v) => v,
        Values::Int(v) => v.into_iter().map(|x| x as f64).collect(),
    }
}

/// `got` has `shape` and every element within `1e-5 + rtol * |want|`.
pub fn assert_close_within(got: &Tensor, shape: &[u32], want: &[f64], rtol: f64) {
    assert_eq!(got.shape().dims(), shape, "shape");
    let g = values(got);
    assert_eq!(g.len(), want.len());
    for (i, (a, b)) in g.iter().zip(want).enumerate() {
        assert!((a - b).abs() <= 1e-5 + rtol * b.abs(), "element {i}: got {a}, want {b}\n got {g:?}\nwant {want:?}");
    }
}
