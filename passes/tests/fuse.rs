//! Fusion decisions: which kernels became one, and which did not. Every
//! graph is also run three ways: the unfused program, the fused one (which
//! must agree with it bit for bit: fusion never reorders arithmetic) and
//! the reference interpreter (within a tolerance).

use kiln_ir::kernel::{BufferKind, ExprNode, Kernel, Program, eval};
use kiln_ir::*;
use kiln_passes::{Fusion, FusionKind, check_plan, fuse, lower, lower_unplanned, plan};

mod common;
use common::G;

/// What lowering gives for `graph`: the fused program and its decisions.
/// Checks that [`lower`] is lowering + fusion + planning, that the fused
/// program agrees bit for bit with the unfused one and that both are close
/// to the interpreter.
#[track_caller]
fn lowered(mut g: G, outputs: &[OperandId]) -> (Program, Vec<Fusion>) {
    for (i, &o) in outputs.iter().enumerate() {
        g.g.add_output(&format!("y{i}"), o).unwrap();
    }
    let graph = &g.g;
    let mut unfused = lower_unplanned(graph).unwrap();
    let mut fused = unfused.clone();
    let decisions = fuse(&mut fused);
    plan(&mut unfused);
    plan(&mut fused);
    check_plan(&fused).unwrap();
    fused.validate().unwrap();
    let lowered = lower(graph).unwrap();
    assert_eq!(lowered.to_string(), fused.to_string(), "lower() = lower_unplanned + fuse + plan");
    assert!(fused.arena_bytes <= unfused.arena_bytes, "fusion grew the arena\n{fused}");

    let feeds: Vec<(&str, &Tensor)> = g.feeds.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let expected = kiln_ir::interp::run(graph, &feeds).unwrap();
    let a = eval(&unfused, &feeds).unwrap();
    let b = eval(&fused, &feeds).unwrap();
    for (i, e) in expected.iter().enumerate() {
        let name = format!("y{i}");
        let find = |r: &[(String, Tensor)]| r.iter().find(|(n, _)| *n == name).unwrap().1.clone();
        let (ua, fb) = (find(&a), find(&b));
        assert_eq!(ua.bytes(), fb.bytes(), "{name}: fused and unfused programs differ\n{fused}");
        let (Values::Float(got), Values::Float(want)) = (fb.values(), e.values()) else { panic!("float outputs") };
        assert_eq!(got.len(), want.len());
        for (x, y) in got.iter().zip(&want) {
            assert!((x - y).abs() <= 1e-4 + 1e-4 * y.abs(), "{name}: {x} vs interp {y}\n{fused}");
        }
    }
    (fused, decisions)
}

fn kinds(p: &Program) -> Vec<&'static str> {
    p.kernels.iter().map(Kernel::kind).collect()
}

fn decision_kinds(d: &[Fusion]) -> Vec<FusionKind> {
    d.iter().map(|f| f.kind).collect()
}

/// The single Gemm of `p`.
fn gemm(p: &Program) -> &Kernel {
    let mut g = p.kernels.iter().filter(|k| matches!(k, Kernel::Gemm { .. }));
    let first = g.next().expect("a gemm");
    assert!(g.next().is_none(), "one gemm");
    first
}

fn has_relu(nodes: &[ExprNode]) -> bool {
    nodes.iter().any(|n| matches!(n, ExprNode::Select(..)))
}

#[test]
fn conv_bias_relu_is_im2col_and_one_gemm() {
    let mut g = G::new();
    let x = g.input("x", &[1, 3, 7, 7]);
    let c = g.conv(x, 8, 3, 3, 1, true);
    let r = g.unary(UnaryOp::Relu, c);
    let (p, d) = lowered(g, &[r]);
    assert_eq!(kinds(&p), ["map", "gemm"], "\n{p}");
    assert_eq!(decision_kinds(&d), [FusionKind::GemmEpilogue]);
    let Kernel::Gemm { epilogue, epilogue_inputs, out, .. } = gemm(&p) else { unreachable!() };
    assert!(has_relu(&epilogue.nodes), "{p}");
    assert_eq!(epilogue_inputs.len(), 1, "the bias only");
    assert!(matches!(p.buffer(out.buffer).kind, BufferKind::Output(_)), "the gemm writes the graph output");
}

#[test]
fn conv_relu6_clamp_fuses() {
    let mut g = G::new();
    let x = g.input("x", &[1, 4, 6, 6]);
    let c = g.conv(x, 6, 4, 3, 0, true);
    let r = g.op(Op::Clamp { input: c, min_value: Some(Number::Float(0.0)), max_value: Some(Number::Float(6.0)) });
    let (p, d) = lowered(g, &[r]);
    assert_eq!(kinds(&p), ["map", "gemm"], "\n{p}");
    assert_eq!(decision_kinds(&d), [FusionKind::GemmEpilogue]);
}

#[test]
fn gemm_bias_residual_relu_is_one_gemm() {
    let mut g = G::new();
    let x = g.input("x", &[6, 5]);
    let res = g.input("res", &[6, 4]);
    let w = g.constant(&[5, 4]);
    let c = g.constant(&[4]);
    let y = g.op(Op::Gemm { a: x, b: w, options: GemmOptions { c: Some(c), ..Default::default() } });
    let y = g.binary(BinaryOp::Add, y, res);
    let y = g.unary(UnaryOp::Relu, y);
    let (p, d) = lowered(g, &[y]);
    assert_eq!(kinds(&p), ["gemm"], "\n{p}");
    // add fuses into the gemm, then relu into the result.
    assert_eq!(decision_kinds(&d), [FusionKind::GemmEpilogue, FusionKind::GemmEpilogue]);
    let Kernel::Gemm { epilogue, epilogue_inputs, .. } = gemm(&p) else { unreachable!() };
    assert_eq!(epilogue_inputs.len(), 2, "c and the residual\n{p}");
    assert!(has_relu(&epilogue.nodes));
}

#[test]
fn pointwise_conv_residual_relu_is_one_gemm() {
    // A 1x1 unit-stride conv reads its input directly: no im2col.
    let mut g = G::new();
    let x = g.input("x", &[1, 8, 5, 5]);
    let c = g.conv(x, 8, 8, 1, 0, true);
    let s = g.binary(BinaryOp::Add, c, x);
    let r = g.unary(UnaryOp::Relu, s);
    let (p, d) = lowered(g, &[r]);
    assert_eq!(kinds(&p), ["gemm"], "\n{p}");
    assert_eq!(d.len(), 2);
}

#[test]
fn a_residual_computed_after_the_gemm_still_fuses() {
    // The add reads a branch computed between the conv and the add: the
    // fused gemm runs where the add was.
    let mut g = G::new();
    let x = g.input("x", &[1, 4, 5, 5]);
    let c = g.conv(x, 4, 4, 1, 0, false);
    let side = g.unary(UnaryOp::Tanh, x);
    let s = g.binary(BinaryOp::Add, c, side);
    let (p, _) = lowered(g, &[s]);
    assert_eq!(kinds(&p), ["map", "gemm"], "\n{p}");
}

#[test]
fn a_gemm_output_with_two_readers_is_not_fused() {
    let mut g = G::new();
    let x = g.input("x", &[1, 3, 6, 6]);
    let c = g.conv(x, 4, 3, 3, 1, true);
    let a = g.unary(UnaryOp::Relu, c);
    let b = g.unary(UnaryOp::Sigmoid, c);
    let (p, d) = lowered(g, &[a, b]);
    assert_eq!(kinds(&p), ["map", "gemm", "map", "map"], "\n{p}");
    assert!(d.is_empty());
}

#[test]
fn a_gemm_writing_a_graph_output_is_not_fused() {
    let mut g = G::new();
    let x = g.input("x", &[4, 5]);
    let w = g.constant(&[5, 3]);
    let y = g.op(Op::Matmul { a: x, b: w });
    let r = g.unary(UnaryOp::Relu, y);
    let (p, d) = lowered(g, &[y, r]);
    assert_eq!(kinds(&p), ["gemm", "map"], "\n{p}");
    assert!(d.is_empty());
}

#[test]
fn a_broadcasting_consumer_is_not_fused() {
    // The add reads the gemm output [1, 4] broadcast over [3, 4]: not
    // elementwise at the same index.
    let mut g = G::new();
    let x = g.input("x", &[1, 5]);
    let other = g.input("o", &[3, 4]);
    let w = g.constant(&[5, 4]);
    let y = g.op(Op::Matmul { a: x, b: w });
    let s = g.binary(BinaryOp::Add, y, other);
    let (p, d) = lowered(g, &[s]);
    assert_eq!(kinds(&p), ["gemm", "map"], "\n{p}");
    assert!(d.is_empty());
}

#[test]
fn softmax_after_a_gemm_keeps_its_reductions() {
    let mut g = G::new();
    let x = g.input("x", &[8, 16]);
    let w = g.constant(&[16, 10]);
    let c = g.constant(&[1, 10]);
    let y = g.op(Op::Gemm { a: x, b: w, options: GemmOptions { c: Some(c), ..Default::default() } });
    let y = g.op(Op::Softmax { input: y, axis: 1 });
    let (p, d) = lowered(g, &[y]);
    assert_eq!(kinds(&p), ["gemm", "reduce", "reduce", "map"], "\n{p}");
    assert!(d.is_empty());
}

#[test]
fn elementwise_chains_become_one_map() {
    let mut g = G::new();
    let x = g.input("x", &[2, 3, 4]);
    let b = g.input("b", &[4]);
    let y = g.binary(BinaryOp::Add, x, b);
    let y = g.unary(UnaryOp::Relu, y);
    let y = g.binary(BinaryOp::Mul, y, x);
    let y = g.unary(UnaryOp::Tanh, y);
    let (p, d) = lowered(g, &[y]);
    assert_eq!(kinds(&p), ["map"], "\n{p}");
    assert_eq!(decision_kinds(&d), [FusionKind::MapMap; 3]);
}

/// A comparison's result, 0 or 1, survives any data type: the one-hot
/// `equal` stored as uint8 and its cast to float32 become one Map writing
/// float32 (bit for bit the two-pass program, checked by `lowered`).
#[test]
fn a_comparison_fuses_through_its_cast() {
    let mut g = G::new();
    let x = g.input("x", &[6, 1]);
    let classes = g.input("classes", &[5]);
    let hot = g.op(Op::Compare { kind: CompareOp::Greater, a: x, b: classes });
    let y = g.op(Op::Cast { input: hot, data_type: DataType::Float32 });
    let (p, d) = lowered(g, &[y]);
    assert_eq!(kinds(&p), ["map"], "\n{p}");
    assert_eq!(decision_kinds(&d), [FusionKind::MapMap]);
}

#[test]
fn a_transpose_feeding_an_elementwise_map_fuses() {
    let mut g = G::new();
    let x = g.input("x", &[3, 5]);
    let t = g.op(Op::Transpose { input: x, permutation: Some(vec![1, 0]) });
    let y = g.unary(UnaryOp::Exp, t);
    let (p, d) = lowered(g, &[y]);
    assert_eq!(kinds(&p), ["map"], "\n{p}");
    assert_eq!(d.len(), 1);
}

#[test]
fn a_small_cnn_fuses_where_it_may() {
    let mut g = G::new();
    let x = g.input("x", &[1, 3, 8, 8]);
    let c = g.conv(x, 4, 3, 3, 1, true);
    let r = g.unary(UnaryOp::Relu, c);
    let c2 = g.conv(r, 4, 4, 1, 0, true);
    let s = g.binary(BinaryOp::Add, c2, r);
    let s = g.unary(UnaryOp::Relu, s);
    let m = g.op(Op::Reduce {
        kind: ReduceOp::Mean,
        input: s,
        options: ReduceOptions { axes: Some(vec![2, 3]), keep_dimensions: false },
    });
    let w = g.constant(&[4, 10]);
    let y = g.op(Op::Matmul { a: m, b: w });
    let y = g.op(Op::Softmax { input: y, axis: 1 });
    let (p, _) = lowered(g, &[y]);
    assert_eq!(kinds(&p), ["map", "gemm", "gemm", "reduce", "gemm", "reduce", "reduce", "map"], "\n{p}");
}


#[test]
fn a_depthwise_convs_bias_and_relu_fuse_into_the_reduction() {
    // depthwise conv (Reduce) -> bias + relu (one Map) -> 1x1 conv: the Map
    // becomes the Reduce's finish, with the bias as its finish input.
    let mut g = G::new();
    let x = g.input("x", &[1, 4, 8, 8]);
    let filter = g.constant(&[4, 1, 3, 3]);
    let bias = Some(g.constant(&[4]));
    let options = Conv2dOptions { padding: [1; 4], groups: 4, bias, ..Default::default() };
    let d = g.op(Op::Conv2d { input: x, filter, options });
    let r = g.unary(UnaryOp::Relu, d);
    let y = g.conv(r, 8, 4, 1, 0, false);
    let (p, fusions) = lowered(g, &[y]);
    assert_eq!(kinds(&p), ["reduce", "gemm"], "\n{p}");
    assert!(fusions.iter().any(|f| f.kind == FusionKind::ReduceFinish), "{fusions:?}");
    let Kernel::Reduce { finish, finish_inputs, .. } = &p.kernels[0] else { unreachable!() };
    assert_eq!(finish_inputs.len(), 1, "\n{p}");
    assert!(finish.nodes.contains(&ExprNode::Load(0)) && finish.nodes.len() > 3, "\n{p}");
    assert_eq!(p.arena_bytes, 4 * 8 * 8 * 4, "one 1x4x8x8 f32 buffer\n{p}");
}

#[test]
fn a_map_reading_a_sum_twice_fuses_into_its_finish() {
    // s = Σ x over the last axis (a Reduce), then t = s * 2 and u = s + t:
    // one finish reading the accumulator twice, and no buffer for s.
    let mut g = G::new();
    let x = g.input("x", &[3, 50, 4]);
    let sum = |input| Op::Reduce {
        kind: ReduceOp::Sum,
        input,
        options: ReduceOptions { axes: Some(vec![2]), keep_dimensions: false },
    };
    let s = g.op(sum(x));
    let two = g.constant(&[1]);
    let t = g.binary(BinaryOp::Mul, s, two);
    let u = g.binary(BinaryOp::Add, s, t);
    let y = g.op(Op::Reduce {
        kind: ReduceOp::Sum,
        input: u,
        options: ReduceOptions { axes: Some(vec![1]), keep_dimensions: false },
    });
    let (p, _) = lowered(g, &[y]);
    assert_eq!(kinds(&p), ["reduce", "reduce"], "\n{p}");
    let Kernel::Reduce { finish, .. } = &p.kernels[0] else { unreachable!() };
    assert_eq!(finish.nodes.iter().filter(|n| **n == ExprNode::Acc).count(), 1, "\n{p}");
    assert_eq!(p.arena_bytes, 640, "one 3x50 f32 buffer\n{p}");
}
