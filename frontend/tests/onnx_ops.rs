//! ONNX operator forms the `onnx` package's node tests leave out: the
//! attribute forms of older opsets (`Softmax`/`LogSoftmax`/`Hardmax`
//! flattening to 2-D before opset 13, `axes` attributes, `Clip` bounds as
//! attributes), NaN in `ArgMax`, `Einsum` on float32 (the node tests use
//! float64, which kiln does not have), and `CastLike`/`Not`, whose node
//! tests use an empty `like` input and opset 1. Models are built as prost
//! messages and run on the reference interpreter.

mod common;
use common::*;

use kiln_frontend::onnx::proto::{
    GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto, ValueInfoProto, elem_type,
};
use kiln_frontend::LoadOptions;
use kiln_frontend::onnx::OnnxModel;
use kiln_ir::{DataType, OperandDescriptor, Tensor, Values, interp};
use prost::Message;

fn int64_initializer(name: &str, values: &[i64]) -> TensorProto {
    i64s(name, &[values.len() as i64], values)
}

/// A one-node-or-more model at `opset` whose float32 inputs have `shapes`.
fn model(
    opset: i64,
    nodes: Vec<NodeProto>,
    inputs: &[(&str, &[u32])],
    init: Vec<TensorProto>,
    outputs: &[&str],
) -> OnnxModel {
    let graph = GraphProto {
        node: nodes,
        name: "g".into(),
        initializer: init,
        input: inputs.iter().map(|(n, s)| value_info(n, elem_type::FLOAT, s)).collect(),
        output: outputs.iter().map(|n| ValueInfoProto { name: n.to_string(), r#type: None }).collect(),
        ..Default::default()
    };
    let proto = ModelProto {
        ir_version: 8,
        opset_import: vec![OperatorSetIdProto { domain: String::new(), version: opset }],
        producer_name: "kiln-test".into(),
        graph: Some(graph),
        ..Default::default()
    };
    OnnxModel::decode(proto.encode_to_vec().into(), ".".into()).expect("decodes")
}

/// Imports and interprets `m` on float32 `feeds`.
fn run(m: &OnnxModel, feeds: &[(&str, &[u32], &[f32])]) -> Vec<Tensor> {
    let graph = m.to_graph(&LoadOptions::default()).unwrap_or_else(|e| panic!("import: {e}"));
    let tensors: Vec<(&str, Tensor)> =
        feeds.iter().map(|(n, s, v)| (*n, Tensor::from_f32(s.to_vec(), v).expect("tensor"))).collect();
    let refs: Vec<(&str, &Tensor)> = tensors.iter().map(|(n, t)| (*n, t)).collect();
    interp::run(&graph, &refs).unwrap_or_else(|e| panic!("interp: {e}"))
}

/// Deterministic values in about [-2, 2).
fn data(n: usize, seed: u32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(2_654_435_761).wrapping_add(12345);
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (s >> 8) as f32 / (1 << 24) as f32 * 4.0 - 2.0
        })
        .collect()
}

fn assert_close(got: &Tensor, want_shape: &[u32], want: &[f64]) {
    assert_close_within(got, want_shape, want, 1e-4);
}

/// `f` applied to each row of `x` seen as `rows x cols`.
fn by_rows(x: &[f32], cols: usize, f: impl Fn(&[f64]) -> Vec<f64>) -> Vec<f64> {
    x.chunks(cols).flat_map(|r| f(&r.iter().map(|&v| v as f64).collect::<Vec<_>>())).collect()
}

fn softmax_row(r: &[f64]) -> Vec<f64> {
    let m = r.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let s: f64 = r.iter().map(|v| (v - m).exp()).sum();
    r.iter().map(|v| (v - m).exp() / s).collect()
}

fn hardmax_row(r: &[f64]) -> Vec<f64> {
    let m = r.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let first = r.iter().position(|&v| v == m).unwrap();
    (0..r.len()).map(|i| if i == first { 1.0 } else { 0.0 }).collect()
}

#[test]
fn softmax_family_before_opset_13_flattens_from_axis() {
    let x = data(24, 1);
    let shape: &[u32] = &[2, 3, 4];
    for (op, row) in [
        ("Softmax", softmax_row as fn(&[f64]) -> Vec<f64>),
        ("LogSoftmax", |r: &[f64]| softmax_row(r).into_iter().map(f64::ln).collect()),
        ("Hardmax", hardmax_row),
    ] {
        // Default axis 1: rows of 3 x 4 = 12 elements.
        let m = model(11, vec![node(op, &["x"], &["y"], vec![])], &[("x", shape)], vec![], &["y"]);
        assert_close(&run(&m, &[("x", shape, &x)])[0], shape, &by_rows(&x, 12, row));
        // Axis 0: the whole tensor is one row.
        let m = model(11, vec![node(op, &["x"], &["y"], vec![int("axis", 0)])], &[("x", shape)], vec![], &["y"]);
        assert_close(&run(&m, &[("x", shape, &x)])[0], shape, &by_rows(&x, 24, row));
        // Opset 13, axis -1: rows of 4.
        let m = model(13, vec![node(op, &["x"], &["y"], vec![])], &[("x", shape)], vec![], &["y"]);
        assert_close(&run(&m, &[("x", shape, &x)])[0], shape, &by_rows(&x, 4, row));
    }
}

#[test]
fn hardmax_picks_the_first_of_equal_maxima() {
    let x = [1.0, 3.0, 3.0, 0.0, 2.0, 2.0, 2.0, 2.0];
    let m = model(13, vec![node("Hardmax", &["x"], &["y"], vec![])], &[("x", &[2, 4])], vec![], &["y"]);
    assert_close(&run(&m, &[("x", &[2, 4], &x)])[0], &[2, 4], &[0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0]);
}

#[test]
fn reduce_axes_are_attributes_before_opset_18() {
    let x = data(24, 2);
    let shape: &[u32] = &[2, 3, 4];
    let mean_02 = |x: &[f32]| -> Vec<f64> {
        (0..3)
            .map(|j| (0..2).flat_map(|i| (0..4).map(move |k| x[i * 12 + j * 4 + k] as f64)).sum::<f64>() / 8.0)
            .collect()
    };
    let nodes = vec![node("ReduceMean", &["x"], &["y"], vec![ints("axes", &[0, -1]), int("keepdims", 0)])];
    let m = model(13, nodes, &[("x", shape)], vec![], &["y"]);
    assert_close(&run(&m, &[("x", shape, &x)])[0], &[3], &mean_02(&x));

    // ReduceSum moved axes to an input at opset 13, the others at 18.
    let nodes = vec![node("ReduceSum", &["x"], &["y"], vec![ints("axes", &[1])])];
    let m = model(11, nodes, &[("x", shape)], vec![], &["y"]);
    let xs = &x;
    let sum_1: Vec<f64> =
        (0..2).flat_map(|i| (0..4).map(move |k| (0..3).map(|j| xs[i * 12 + j * 4 + k] as f64).sum())).collect();
    assert_close(&run(&m, &[("x", shape, &x)])[0], &[2, 1, 4], &sum_1);
    let nodes = vec![node("ReduceSum", &["x", "axes"], &["y"], vec![])];
    let m = model(13, nodes, &[("x", shape)], vec![int64_initializer("axes", &[1])], &["y"]);
    assert_close(&run(&m, &[("x", shape, &x)])[0], &[2, 1, 4], &sum_1);
    let nodes = vec![node("ReduceMean", &["x", "axes"], &["y"], vec![int("keepdims", 0)])];
    let m = model(18, nodes, &[("x", shape)], vec![int64_initializer("axes", &[2, 0])], &["y"]);
    assert_close(&run(&m, &[("x", shape, &x)])[0], &[3], &mean_02(&x));
}

#[test]
fn reduce_without_axes_reduces_all_or_nothing() {
    let x = data(6, 3);
    let total: f64 = x.iter().map(|&v| v as f64).sum();
    let m =
        model(13, vec![node("ReduceSum", &["x"], &["y"], vec![int("keepdims", 0)])], &[("x", &[2, 3])], vec![], &["y"]);
    assert_close(&run(&m, &[("x", &[2, 3], &x)])[0], &[], &[total]);
    let nodes = vec![node("ReduceSum", &["x"], &["y"], vec![int("noop_with_empty_axes", 1)])];
    let m = model(13, nodes, &[("x", &[2, 3])], vec![], &["y"]);
    let same: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    assert_close(&run(&m, &[("x", &[2, 3], &x)])[0], &[2, 3], &same);
}

#[test]
fn clip_bounds_are_attributes_before_opset_11() {
    let x = [-3.0, -0.5, 0.25, 2.0];
    let nodes = vec![node("Clip", &["x"], &["y"], vec![float("min", -1.0), float("max", 1.0)])];
    let m = model(7, nodes, &[("x", &[4])], vec![], &["y"]);
    assert_close(&run(&m, &[("x", &[4], &x)])[0], &[4], &[-1.0, -0.5, 0.25, 1.0]);
    let m = model(7, vec![node("Clip", &["x"], &["y"], vec![float("max", 0.0)])], &[("x", &[4])], vec![], &["y"]);
    assert_close(&run(&m, &[("x", &[4], &x)])[0], &[4], &[-3.0, -0.5, 0.0, 0.0]);
}

#[test]
fn clip_with_min_above_max_gives_max() {
    let x = [-3.0, -0.5, 0.25, 2.0];
    let init = vec![
        TensorProto { name: "lo".into(), data_type: elem_type::FLOAT, float_data: vec![1.0], ..Default::default() },
        TensorProto { name: "hi".into(), data_type: elem_type::FLOAT, float_data: vec![-1.0], ..Default::default() },
    ];
    let m = model(13, vec![node("Clip", &["x", "lo", "hi"], &["y"], vec![])], &[("x", &[4])], init, &["y"]);
    assert_close(&run(&m, &[("x", &[4], &x)])[0], &[4], &[-1.0; 4]);
    // Bounds computed at run time.
    let nodes = vec![node("Clip", &["x", "lo", ""], &["y"], vec![])];
    let m = model(13, nodes, &[("x", &[4]), ("lo", &[])], vec![], &["y"]);
    assert_close(&run(&m, &[("x", &[4], &x), ("lo", &[], &[0.0])])[0], &[4], &[0.0, 0.0, 0.25, 2.0]);
}

#[test]
fn argmax_reports_the_first_nan_and_keeps_dims_by_default() {
    let x = [1.0, f32::NAN, 5.0, f32::NAN, 7.0, 2.0, 7.0, 0.0];
    let m = model(11, vec![node("ArgMax", &["x"], &["y"], vec![int("axis", 1)])], &[("x", &[2, 4])], vec![], &["y"]);
    let y = &run(&m, &[("x", &[2, 4], &x)])[0];
    assert_eq!(y.data_type(), DataType::Int64);
    assert_close(y, &[2, 1], &[1.0, 0.0]);
    let nodes = vec![node("ArgMin", &["x"], &["y"], vec![int("keepdims", 0), int("select_last_index", 1)])];
    let m = model(12, nodes, &[("x", &[4, 2])], vec![], &["y"]);
    assert_close(&run(&m, &[("x", &[4, 2], &[3.0, 1.0, 0.0, 1.0, 0.0, 4.0, 2.0, 9.0])])[0], &[2], &[2.0, 1.0]);
}

#[test]
fn selu_defaults_and_gelu_tanh() {
    let x = [-2.0f32, -0.5, 0.0, 1.5];
    let m = model(7, vec![node("Selu", &["x"], &["y"], vec![])], &[("x", &[4])], vec![], &["y"]);
    let (alpha, gamma) = (1.673_263_192_176_818_8_f64, 1.050_701_022_148_132_3_f64);
    let want: Vec<f64> =
        x.iter().map(|&v| v as f64).map(|v| gamma * if v > 0.0 { v } else { alpha * (v.exp() - 1.0) }).collect();
    assert_close(&run(&m, &[("x", &[4], &x)])[0], &[4], &want);
    let m = model(
        20,
        vec![node("Gelu", &["x"], &["y"], vec![string("approximate", "tanh")])],
        &[("x", &[4])],
        vec![],
        &["y"],
    );
    let c = (2.0 / std::f64::consts::PI).sqrt();
    let want: Vec<f64> =
        x.iter().map(|&v| v as f64).map(|v| 0.5 * v * (1.0 + (c * (v + 0.044715 * v * v * v)).tanh())).collect();
    assert_close(&run(&m, &[("x", &[4], &x)])[0], &[4], &want);
}

#[test]
fn dropout_mask_is_all_ones_in_the_input_type_before_opset_10() {
    let x = [1.0, 2.0];
    let m = model(
        7,
        vec![node("Dropout", &["x"], &["y", "mask"], vec![float("ratio", 0.3)])],
        &[("x", &[2])],
        vec![],
        &["y", "mask"],
    );
    let out = run(&m, &[("x", &[2], &x)]);
    assert_close(&out[0], &[2], &[1.0, 2.0]);
    assert_eq!(out[1].data_type(), DataType::Float32);
    assert_close(&out[1], &[2], &[1.0, 1.0]);
    let m = model(13, vec![node("Dropout", &["x"], &["y", "mask"], vec![])], &[("x", &[2])], vec![], &["y", "mask"]);
    let out = run(&m, &[("x", &[2], &x)]);
    assert_eq!(out[1].data_type(), DataType::Uint8);
}

#[test]
fn training_dropout_is_unsupported() {
    let init =
        vec![TensorProto { name: "t".into(), data_type: elem_type::BOOL, int32_data: vec![1], ..Default::default() }];
    let m = model(13, vec![node("Dropout", &["x", "", "t"], &["y"], vec![])], &[("x", &[2])], init, &["y"]);
    let e = m.to_graph(&LoadOptions::default()).unwrap_err().to_string();
    assert!(e.contains("training mode"), "{e}");
}

/// numpy's einsum on letters, by brute force over every index assignment;
/// size-1 dimensions broadcast.
fn reference_einsum(equation: &str, operands: &[(&[u32], &[f32])]) -> (Vec<u32>, Vec<f64>) {
    let (lhs, rhs) = equation.split_once("->").unwrap();
    let terms: Vec<Vec<char>> = lhs.split(',').map(|t| t.chars().collect()).collect();
    let out: Vec<char> = rhs.chars().collect();
    let mut labels: Vec<char> = Vec::new();
    let mut sizes: Vec<u32> = Vec::new();
    for (t, (shape, _)) in terms.iter().zip(operands) {
        for (&c, &d) in t.iter().zip(shape.iter()) {
            match labels.iter().position(|&l| l == c) {
                Some(i) => sizes[i] = sizes[i].max(d),
                None => {
                    labels.push(c);
                    sizes.push(d);
                }
            }
        }
    }
    let out_shape: Vec<u32> = out.iter().map(|c| sizes[labels.iter().position(|l| l == c).unwrap()]).collect();
    let mut result = vec![0.0f64; out_shape.iter().product::<u32>() as usize];
    let total: u32 = sizes.iter().product();
    for flat in 0..total {
        let mut idx = vec![0u32; labels.len()];
        let mut r = flat;
        for i in (0..labels.len()).rev() {
            idx[i] = r % sizes[i];
            r /= sizes[i];
        }
        let at = |c: char| idx[labels.iter().position(|&l| l == c).unwrap()];
        let mut p = 1.0f64;
        for (t, (shape, values)) in terms.iter().zip(operands) {
            let mut off = 0usize;
            for (&c, &d) in t.iter().zip(shape.iter()) {
                off = off * d as usize + if d == 1 { 0 } else { at(c) as usize };
            }
            p *= values[off] as f64;
        }
        let mut o = 0usize;
        for (&c, &d) in out.iter().zip(&out_shape) {
            o = o * d as usize + at(c) as usize;
        }
        result[o] += p;
    }
    (out_shape, result)
}

/// Runs `equation` in kiln and `reference` (the same contraction with the
/// ellipsis spelt out in letters) by brute force.
fn check_einsum(equation: &str, reference: &str, shapes: &[&[u32]]) {
    let names = ["a", "b", "c"];
    let inputs: Vec<(&str, &[u32])> = shapes.iter().enumerate().map(|(i, s)| (names[i], *s)).collect();
    let values: Vec<Vec<f32>> =
        shapes.iter().enumerate().map(|(i, s)| data(s.iter().product::<u32>() as usize, 10 + i as u32)).collect();
    let nodes = vec![node("Einsum", &names[..shapes.len()], &["y"], vec![string("equation", equation)])];
    let m = model(12, nodes, &inputs, vec![], &["y"]);
    let feeds: Vec<(&str, &[u32], &[f32])> =
        inputs.iter().zip(&values).map(|((n, s), v)| (*n, *s, v.as_slice())).collect();
    let operands: Vec<(&[u32], &[f32])> = shapes.iter().zip(&values).map(|(s, v)| (*s, v.as_slice())).collect();
    let (shape, want) = reference_einsum(reference, &operands);
    let got = &run(&m, &feeds)[0];
    assert_eq!(got.shape().dims(), shape.as_slice(), "{equation}: shape");
    let g = common::values(got);
    for (i, (a, b)) in g.iter().zip(&want).enumerate() {
        assert!((a - b).abs() <= 1e-4 + 1e-4 * b.abs(), "{equation}: element {i}: got {a}, want {b}");
    }
}

#[test]
fn einsum_two_operands() {
    check_einsum("ij,jk->ik", "ij,jk->ik", &[&[2, 3], &[3, 4]]);
    check_einsum("ij,jk", "ij,jk->ik", &[&[2, 3], &[3, 4]]);
    check_einsum("bij, bjk -> bik", "bij,bjk->bik", &[&[2, 3, 4], &[2, 4, 5]]);
    check_einsum("ij,kj->ik", "ij,kj->ik", &[&[2, 3], &[4, 3]]);
    check_einsum("ji,jk->ki", "ji,jk->ki", &[&[3, 2], &[3, 4]]);
    check_einsum("bhqd,bhkd->bhqk", "bhqd,bhkd->bhqk", &[&[2, 2, 3, 4], &[2, 2, 5, 4]]);
    check_einsum("abc,cd->abd", "abc,cd->abd", &[&[2, 3, 4], &[4, 5]]);
    check_einsum("i,i", "i,i->", &[&[5], &[5]]);
    check_einsum("i,j->ij", "i,j->ij", &[&[3], &[4]]);
    check_einsum("ij,ij->ij", "ij,ij->ij", &[&[2, 3], &[2, 3]]);
    check_einsum("ij,ij->", "ij,ij->", &[&[2, 3], &[2, 3]]);
    check_einsum("ijk,ikl->jl", "ijk,ikl->jl", &[&[2, 3, 4], &[2, 4, 5]]);
    check_einsum("ij,jk->ki", "ij,jk->ki", &[&[2, 3], &[3, 4]]);
    check_einsum("bij,jk->bik", "bij,jk->bik", &[&[2, 3, 4], &[4, 5]]);
    check_einsum("ii,i->i", "ii,i->i", &[&[3, 3], &[3]]);
}

#[test]
fn einsum_ellipsis_broadcasts() {
    check_einsum("...ij,...jk->...ik", "xyij,xyjk->xyik", &[&[2, 1, 3, 4], &[2, 5, 4, 2]]);
    check_einsum("...ij,...jk->...ik", "xyij,yjk->xyik", &[&[2, 3, 3, 4], &[3, 4, 2]]);
    check_einsum("...ij,jk", "xij,jk->xik", &[&[2, 3, 4], &[4, 5]]);
    check_einsum("i...,i...->...", "ix,ix->x", &[&[3, 4], &[3, 4]]);
}

#[test]
fn einsum_one_operand() {
    check_einsum("ij->ji", "ij->ji", &[&[2, 3]]);
    check_einsum("ij->i", "ij->i", &[&[2, 3]]);
    check_einsum("ij->", "ij->", &[&[2, 3]]);
    check_einsum("ij", "ij->ij", &[&[2, 3]]);
    check_einsum("ji", "ji->ij", &[&[2, 3]]);
    check_einsum("ii->i", "ii->i", &[&[3, 3]]);
    check_einsum("ii", "ii->", &[&[3, 3]]);
    check_einsum("bii->bi", "bii->bi", &[&[2, 3, 3]]);
    check_einsum("...ii ->...i", "xyii->xyi", &[&[2, 2, 3, 3]]);
    check_einsum("iji->j", "iji->j", &[&[3, 2, 3]]);
}

#[test]
fn einsum_three_operands() {
    check_einsum("ij,jk,kl->il", "ij,jk,kl->il", &[&[2, 3], &[3, 4], &[4, 2]]);
    check_einsum("i,ij,j->", "i,ij,j->", &[&[3], &[3, 4], &[4]]);
    check_einsum("bi,bj,bk->bijk", "bi,bj,bk->bijk", &[&[2, 2], &[2, 3], &[2, 2]]);
}

#[test]
fn einsum_scalar_and_errors() {
    let m =
        model(12, vec![node("Einsum", &["a"], &["y"], vec![string("equation", "->")])], &[("a", &[])], vec![], &["y"]);
    assert_close(&run(&m, &[("a", &[], &[2.5])])[0], &[], &[2.5]);
    let m = model(
        12,
        vec![node("Einsum", &["a"], &["y"], vec![string("equation", "ij->k")])],
        &[("a", &[2, 2])],
        vec![],
        &["y"],
    );
    let e = m.to_graph(&LoadOptions::default()).unwrap_err().to_string();
    assert!(e.contains("ij->k"), "{e}");
}

#[test]
fn cast_to_bool_is_not_equal_zero() {
    let m = model(
        13,
        vec![node("Cast", &["x"], &["y"], vec![int("to", elem_type::BOOL as i64)])],
        &[("x", &[4])],
        vec![],
        &["y"],
    );
    let y = &run(&m, &[("x", &[4], &[0.0, 0.5, -2.0, f32::NAN])])[0];
    assert_eq!(y.data_type(), DataType::Uint8);
    assert_close(y, &[4], &[0.0, 1.0, 1.0, 1.0]);
    let m = model(
        13,
        vec![node("Cast", &["x"], &["y"], vec![int("to", elem_type::DOUBLE as i64)])],
        &[("x", &[4])],
        vec![],
        &["y"],
    );
    let e = m.to_graph(&LoadOptions::default()).unwrap_err().to_string();
    assert!(e.contains("DOUBLE"), "{e}");
}

#[test]
fn integer_sign_abs_not_and_cast_like() {
    let like = TensorProto {
        name: "like".into(),
        dims: vec![1],
        data_type: elem_type::INT32,
        int32_data: vec![0],
        ..Default::default()
    };
    let graph = GraphProto {
        node: vec![
            node("Sign", &["x"], &["s"], vec![]),
            node("Abs", &["u"], &["a"], vec![]),
            node("Not", &["b"], &["n"], vec![]),
            node("CastLike", &["x", "f"], &["c"], vec![]),
            node("CastLike", &["f", "like"], &["d"], vec![]),
        ],
        initializer: vec![like],
        input: vec![
            value_info("x", elem_type::INT8, &[4]),
            value_info("u", elem_type::UINT8, &[2]),
            value_info("b", elem_type::BOOL, &[2]),
            value_info("f", elem_type::FLOAT, &[2]),
        ],
        output: ["s", "a", "n", "c", "d"]
            .iter()
            .map(|n| ValueInfoProto { name: n.to_string(), r#type: None })
            .collect(),
        ..Default::default()
    };
    let proto = ModelProto {
        ir_version: 8,
        opset_import: vec![OperatorSetIdProto { domain: String::new(), version: 15 }],
        graph: Some(graph),
        ..Default::default()
    };
    let m = OnnxModel::decode(proto.encode_to_vec().into(), ".".into()).unwrap();
    let g = m.to_graph(&LoadOptions::default()).unwrap();
    let int = |t: DataType, v: Vec<i128>| {
        Tensor::from_values(OperandDescriptor::new(t, [v.len() as u32]), &Values::Int(v)).unwrap()
    };
    let x = int(DataType::Int8, vec![-5, 0, 7, -128]);
    let u = int(DataType::Uint8, vec![0, 200]);
    let b = int(DataType::Uint8, vec![0, 1]);
    let f = Tensor::from_f32([2], &[-2.75, 3.5]).unwrap();
    let out = interp::run(&g, &[("x", &x), ("u", &u), ("b", &b), ("f", &f)]).unwrap();
    assert_eq!(out[0].values(), Values::Int(vec![-1, 0, 1, -1]));
    assert_eq!(out[1].values(), Values::Int(vec![0, 200]));
    assert_eq!(out[2].values(), Values::Int(vec![1, 0]));
    assert_eq!(out[3].data_type(), DataType::Float32);
    assert_eq!(out[3].values(), Values::Float(vec![-5.0, 0.0, 7.0, -128.0]));
    assert_eq!(out[4].data_type(), DataType::Int32);
    assert_eq!(out[4].values(), Values::Int(vec![-2, 3]));
}

/// `If` with a load-time condition imports the branch it selects, whose
/// nodes read the enclosing graph's values; a run-time condition is
/// refused with the input to bind.
#[test]
fn if_with_a_constant_condition_imports_its_branch() {
    use kiln_frontend::onnx::proto::AttributeType;
    let branch = |name: &str, op: &str, out: &str| kiln_frontend::onnx::proto::AttributeProto {
        g: Some(Box::new(GraphProto {
            node: vec![node(op, &["x", "x"], &[out], vec![])],
            name: name.into(),
            output: vec![ValueInfoProto { name: out.into(), r#type: None }],
            ..Default::default()
        })),
        ..attr(name, AttributeType::Graph)
    };
    let if_node = || node("If", &["cond"], &["y"], vec![branch("then_branch", "Add", "sum"), branch("else_branch", "Mul", "product")]);
    let x = data(6, 3);
    for (cond, twice) in [(1, true), (0, false)] {
        let m = model(16, vec![if_node()], &[("x", &[2, 3])], vec![i64s("cond", &[], &[cond])], &["y"]);
        let y = run(&m, &[("x", &[2, 3], &x)]);
        let want: Vec<f64> = x.iter().map(|&v| if twice { f64::from(v + v) } else { f64::from(v * v) }).collect();
        assert_close(&y[0], &[2, 3], &want);
    }
    let m = model(16, vec![if_node()], &[("x", &[2, 3]), ("cond", &[])], vec![], &["y"]);
    let e = m.to_graph(&LoadOptions::default()).unwrap_err().to_string();
    assert!(e.contains("If") && e.contains("`cond`") && e.contains("load time"), "{e}");
}
