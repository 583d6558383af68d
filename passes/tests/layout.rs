//! The layout pass ([`kiln_passes::relayout`]): NHWC networks computed
//! channels-first. Every graph is run by the reference interpreter before
//! and after the pass (within 1e-5: a convolution sums in another order),
//! and the number of transposes the pass added is checked: one where the
//! network enters channels-first, one where a layout-dependent operator or
//! a graph output reads a value back.

use kiln_ir::*;
use kiln_passes::relayout;

mod common;
use common::G;

fn nhwc_conv(g: &mut G, input: OperandId, o: u32, i: u32, k: u32, groups: u32) -> OperandId {
    let filter = g.constant(&[o, k, k, i / groups]);
    let bias = Some(g.constant(&[o]));
    let pad = (k - 1) / 2;
    g.op(Op::Conv2d {
        input,
        filter,
        options: Conv2dOptions {
            padding: [pad; 4],
            groups,
            input_layout: InputLayout::Nhwc,
            filter_layout: Conv2dFilterLayout::Ohwi,
            bias,
            ..Default::default()
        },
    })
}

/// Runs `g` (outputs named y0, y1, ...) through the pass; checks the
/// results against the original's; returns the pass's record and the graph.
#[track_caller]
fn relaid(mut g: G, outputs: &[OperandId]) -> (Relayout, Graph) {
    for (i, &o) in outputs.iter().enumerate() {
        g.g.add_output(&format!("y{i}"), o).unwrap();
    }
    let (after, record) = relayout(&g.g).unwrap();
    after.validate().unwrap();
    let feeds: Vec<(&str, &Tensor)> = g.feeds.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let want = interp::run(&g.g, &feeds).unwrap();
    let got = interp::run(&after, &feeds).unwrap();
    for (i, (w, a)) in want.iter().zip(&got).enumerate() {
        assert_eq!(w.shape(), a.shape(), "y{i}");
        for (k, (x, y)) in w.to_f32_vec().iter().zip(a.to_f32_vec()).enumerate() {
            assert!((x - y).abs() <= 1e-5 * (1.0 + x.abs()), "y{i}[{k}]: {x} before, {y} after\n{after:?}");
        }
    }
    (record, after)
}

use kiln_passes::Relayout;

fn transposes(g: &Graph) -> usize {
    g.nodes().iter().filter(|n| matches!(n.op, Op::Transpose { .. })).count()
}

#[test]
fn a_conv_chain_enters_and_leaves_once() {
    let mut g = G::new();
    let x = g.input("x", &[1, 6, 5, 3]);
    let a = nhwc_conv(&mut g, x, 8, 3, 3, 1);
    let b = g.fill(&[8], 0.5);
    let a = g.binary(BinaryOp::Add, a, b);
    let a = g.op(Op::Clamp { input: a, min_value: Some(Number::Float(0.0)), max_value: Some(Number::Float(6.0)) });
    let d = nhwc_conv(&mut g, a, 8, 8, 3, 8); // depthwise
    let slope = g.constant(&[1, 1, 8]);
    let d = g.op(Op::Prelu { input: d, slope });
    let r = g.binary(BinaryOp::Add, a, d); // residual
    let y = nhwc_conv(&mut g, r, 4, 8, 1, 1);
    let (record, after) = relaid(g, &[y]);
    assert_eq!(record.transposes, 2, "{after:?}");
    assert_eq!(transposes(&after), 2);
    assert_eq!(record.channels_first, 7);
    assert!(after.nodes().iter().all(|n| match &n.op {
        Op::Conv2d { options, .. } => options.input_layout == InputLayout::Nchw,
        _ => true,
    }));
}

#[test]
fn layout_agnostic_operators_renumber_their_axes() {
    let mut g = G::new();
    let x = g.input("x", &[1, 8, 6, 4]);
    let c = nhwc_conv(&mut g, x, 4, 4, 3, 1);
    let pool = g.op(Op::Pool2d {
        kind: PoolOp::Max,
        input: c,
        options: Pool2dOptions {
            window_dimensions: Some([2, 2]),
            strides: [2, 2],
            layout: InputLayout::Nhwc,
            ..Default::default()
        },
    });
    let up = g.op(Op::Resample2d {
        input: pool,
        options: Resample2dOptions { mode: InterpolationMode::Linear, sizes: Some([8, 6]), axes: [1, 2], ..Default::default() },
    });
    let (mean, variance) = (g.constant(&[4]), g.positive(&[4]));
    let up = g.op(Op::BatchNormalization { input: up, mean, variance, options: BatchNormalizationOptions { axis: 3, ..Default::default() } });
    let cat = g.op(Op::Concat { inputs: vec![c, up], axis: 3 });
    let padded = g.op(Op::Pad {
        input: cat,
        beginning_padding: vec![0, 1, 0, 2],
        ending_padding: vec![0, 0, 2, 1],
        options: PadOptions::default(),
    });
    let sliced = g.op(Op::Slice { input: padded, starts: vec![0, 1, 1, 2], sizes: vec![1, 7, 6, 8], strides: Some(vec![1, 2, 1, 3]) });
    let soft = g.op(Op::Softmax { input: sliced, axis: 3 });
    let kept = g.op(Op::Reduce {
        kind: ReduceOp::Mean,
        input: soft,
        options: ReduceOptions { axes: Some(vec![1]), keep_dimensions: true },
    });
    let parts = g.g.add_node(Op::Split { input: kept, splits: Splits::Count(2), axis: 2 }, "").unwrap();
    // Global average over H, W without kept dimensions: [N, C] in both layouts.
    let pooled = g.op(Op::Reduce {
        kind: ReduceOp::Mean,
        input: cat,
        options: ReduceOptions { axes: Some(vec![1, 2]), keep_dimensions: false },
    });
    // A transpose of a channels-first value: one transpose, composed.
    let t = g.op(Op::Transpose { input: c, permutation: Some(vec![0, 3, 2, 1]) });
    let (record, after) = relaid(g, &[parts[0], parts[1], pooled, t]);
    // In: x; out: the two split parts (the reduction and the transpose
    // produce the original layout directly).
    assert_eq!(record.transposes, 3, "{after:?}");
}

#[test]
fn layout_dependent_readers_get_the_original_layout() {
    let mut g = G::new();
    let x = g.input("x", &[1, 4, 4, 2]);
    let c = nhwc_conv(&mut g, x, 6, 2, 3, 1);
    let r = g.unary(UnaryOp::Relu, c);
    // A reshape depends on the layout: it reads r as NHWC.
    let flat = g.op(Op::Reshape { input: r, new_shape: vec![1, 96] });
    let w = g.constant(&[96, 3]);
    let y = g.op(Op::Gemm { a: flat, b: w, options: GemmOptions::default() });
    // A non-constant 4-D operand that was never channels-first joins by a
    // transpose; a rank-1 operand broadcasts over the channels.
    let z = g.input("z", &[1, 4, 4, 6]);
    let bias = g.input("bias", &[6]);
    let s = g.binary(BinaryOp::Add, r, z);
    let s = g.binary(BinaryOp::Mul, s, bias);
    let (record, after) = relaid(g, &[y, s]);
    // x in, r out (for the reshape), z in, bias reshaped and in, s out.
    assert_eq!(record.transposes, 5, "{after:?}");
}

#[test]
fn graphs_without_nhwc_convolutions_are_unchanged() {
    let mut g = G::new();
    let x = g.input("x", &[1, 3, 8, 8]);
    let c = g.conv(x, 4, 3, 3, 1, true);
    let y = g.unary(UnaryOp::Relu, c);
    let (record, after) = relaid(g, &[y]);
    assert_eq!(record, Relayout::default());
    assert_eq!(transposes(&after), 0);
}
