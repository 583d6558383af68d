//! Hand-checked cases for the reference interpreter, above all for the
//! operators that have no WPT conformance vectors. Every expected value is
//! worked out by hand (the derivation is in the comments) or taken from a
//! published table, never from the interpreter itself.

use kiln_ir::interp::{eval_op, run};
use kiln_ir::*;

// ---------------------------------------------------------------------------
// Helpers.

fn f32t(shape: &[u32], v: &[f32]) -> Tensor {
    Tensor::from_f32(shape.to_vec(), v).unwrap()
}

fn intt(t: DataType, shape: &[u32], v: &[i128]) -> Tensor {
    Tensor::from_values(OperandDescriptor::new(t, shape.to_vec()), &Values::Int(v.to_vec())).unwrap()
}

/// Builds a one-node graph whose inputs are `inputs` (fed as `x0`, `x1`,
/// ...), runs it through [`run`] and returns its outputs.
fn eval(inputs: &[Tensor], op: impl FnOnce(&[OperandId]) -> Op) -> Vec<Tensor> {
    let mut g = Graph::new();
    let ids: Vec<_> = inputs
        .iter()
        .enumerate()
        .map(|(i, t)| g.add_input(&format!("x{i}"), t.desc().clone()).unwrap())
        .collect();
    let outs = g.add_node(op(&ids), "").unwrap();
    for (i, o) in outs.iter().enumerate() {
        g.add_output(&format!("y{i}"), *o).unwrap();
    }
    let names: Vec<String> = (0..inputs.len()).map(|i| format!("x{i}")).collect();
    let feeds: Vec<(&str, &Tensor)> = names.iter().map(String::as_str).zip(inputs).collect();
    g.check_feeds(&feeds).unwrap();
    run(&g, &feeds).unwrap()
}

fn eval1(inputs: &[Tensor], op: impl FnOnce(&[OperandId]) -> Op) -> Tensor {
    eval(inputs, op).remove(0)
}

/// Asserts a float32 result: shape, and every element within `tol` of the
/// expected value, absolutely or relatively (NaN matches NaN).
#[track_caller]
fn assert_f32(actual: &Tensor, shape: &[u32], expected: &[f64], tol: f64) {
    assert_eq!(actual.data_type(), DataType::Float32);
    assert_eq!(actual.shape().dims(), shape, "shape");
    let a = actual.to_f32_vec();
    assert_eq!(a.len(), expected.len(), "element count");
    for (i, (&x, &e)) in a.iter().zip(expected).enumerate() {
        let x = x as f64;
        let ok = (x.is_nan() && e.is_nan()) || x == e || (x - e).abs() <= tol * e.abs().max(1.0);
        assert!(ok, "element {i}: got {x}, expected {e} (tolerance {tol})\n  all: {a:?}");
    }
}

#[track_caller]
fn assert_ints(actual: &Tensor, t: DataType, shape: &[u32], expected: &[i128]) {
    assert_eq!(actual.data_type(), t);
    assert_eq!(actual.shape().dims(), shape, "shape");
    assert_eq!(actual.values(), Values::Int(expected.to_vec()));
}

fn unary(kind: UnaryOp, x: Tensor) -> Tensor {
    eval1(&[x], |i| Op::Unary { kind, input: i[0] })
}

// ---------------------------------------------------------------------------
// gemm

// A = [[1,2,3],[4,5,6]], B = [[7,8],[9,10],[11,12]]
// A·B = [[1·7+2·9+3·11, 1·8+2·10+3·12], [4·7+5·9+6·11, 4·8+5·10+6·12]] = [[58,64],[139,154]].
fn gemm_a() -> Tensor {
    f32t(&[2, 3], &[1., 2., 3., 4., 5., 6.])
}
fn gemm_b() -> Tensor {
    f32t(&[3, 2], &[7., 8., 9., 10., 11., 12.])
}

#[test]
fn gemm_default_options() {
    let y = eval1(&[gemm_a(), gemm_b()], |i| Op::Gemm { a: i[0], b: i[1], options: GemmOptions::default() });
    assert_f32(&y, &[2, 2], &[58., 64., 139., 154.], 0.0);
}

#[test]
fn gemm_alpha_beta_and_broadcast_c() {
    // 2·AB + 0.5·C with C = [1, -2] broadcast over the rows:
    // [[116+0.5, 128-1], [278+0.5, 308-1]].
    let c = f32t(&[2], &[1., -2.]);
    let y = eval1(&[gemm_a(), gemm_b(), c], |i| Op::Gemm {
        a: i[0],
        b: i[1],
        options: GemmOptions { c: Some(i[2]), alpha: 2.0, beta: 0.5, ..Default::default() },
    });
    assert_f32(&y, &[2, 2], &[116.5, 127., 278.5, 307.], 0.0);
}

#[test]
fn gemm_column_c_and_scalar_c() {
    // C of shape [2, 1] = [[10], [20]] broadcasts along the columns.
    let c = f32t(&[2, 1], &[10., 20.]);
    let y = eval1(&[gemm_a(), gemm_b(), c], |i| Op::Gemm {
        a: i[0],
        b: i[1],
        options: GemmOptions { c: Some(i[2]), ..Default::default() },
    });
    assert_f32(&y, &[2, 2], &[68., 74., 159., 174.], 0.0);
    // A scalar C = 3 with beta = -1: AB - 3.
    let c = f32t(&[], &[3.]);
    let y = eval1(&[gemm_a(), gemm_b(), c], |i| Op::Gemm {
        a: i[0],
        b: i[1],
        options: GemmOptions { c: Some(i[2]), beta: -1.0, ..Default::default() },
    });
    assert_f32(&y, &[2, 2], &[55., 61., 136., 151.], 0.0);
}

#[test]
fn gemm_transposes() {
    // Aᵀ stored as [3, 2] and Bᵀ as [2, 3] give the same product.
    let at = f32t(&[3, 2], &[1., 4., 2., 5., 3., 6.]);
    let bt = f32t(&[2, 3], &[7., 9., 11., 8., 10., 12.]);
    let y = eval1(&[at.clone(), gemm_b()], |i| Op::Gemm {
        a: i[0],
        b: i[1],
        options: GemmOptions { a_transpose: true, ..Default::default() },
    });
    assert_f32(&y, &[2, 2], &[58., 64., 139., 154.], 0.0);
    let y = eval1(&[gemm_a(), bt.clone()], |i| Op::Gemm {
        a: i[0],
        b: i[1],
        options: GemmOptions { b_transpose: true, ..Default::default() },
    });
    assert_f32(&y, &[2, 2], &[58., 64., 139., 154.], 0.0);
    let y = eval1(&[at, bt], |i| Op::Gemm {
        a: i[0],
        b: i[1],
        options: GemmOptions { a_transpose: true, b_transpose: true, alpha: -1.0, ..Default::default() },
    });
    assert_f32(&y, &[2, 2], &[-58., -64., -139., -154.], 0.0);
}

// ---------------------------------------------------------------------------
// Pooling

fn pool(kind: PoolOp, x: Tensor, options: Pool2dOptions) -> Tensor {
    eval1(&[x], |i| Op::Pool2d { kind, input: i[0], options })
}

fn iota(n: usize) -> Vec<f32> {
    (1..=n).map(|v| v as f32).collect()
}

#[test]
fn average_pool_excludes_padding() {
    // x = [[1,2,3],[4,5,6],[7,8,9]], window 2x2, padding 1 on every side, strides 2.
    // Output 2x2 (padded size 5: (5-2)/2+1 = 2). Windows, padding skipped:
    // (0,0): {1} -> 1; (0,1): {2,3} -> 2.5; (1,0): {4,7} -> 5.5; (1,1): {5,6,8,9} -> 7.
    // (Counting the padding as zeros would give 0.25, 1.25, 2.75, 7.)
    let o = Pool2dOptions { window_dimensions: Some([2, 2]), padding: [1, 1, 1, 1], strides: [2, 2], ..Default::default() };
    let y = pool(PoolOp::Average, f32t(&[1, 1, 3, 3], &iota(9)), o.clone());
    assert_f32(&y, &[1, 1, 2, 2], &[1., 2.5, 5.5, 7.], 1e-7);
    let y = pool(PoolOp::Max, f32t(&[1, 1, 3, 3], &iota(9)), o.clone());
    assert_f32(&y, &[1, 1, 2, 2], &[1., 3., 7., 9.], 0.0);
    // L2 over the same windows: sqrt(1), sqrt(4+9), sqrt(16+49), sqrt(25+36+64+81).
    let y = pool(PoolOp::L2, f32t(&[1, 1, 3, 3], &iota(9)), o);
    assert_f32(&y, &[1, 1, 2, 2], &[1., 13f64.sqrt(), 65f64.sqrt(), 206f64.sqrt()], 1e-7);
}

#[test]
fn pool_ceil_rounding_and_output_sizes() {
    // x = 1..16 as 4x4, window 3x3, strides 2. Floor gives 1x1, ceil 2x2; the
    // overhanging windows only see the elements inside the input:
    // (0,0): rows 0-2, cols 0-2 = {1,2,3,5,6,7,9,10,11}: mean 6, max 11
    // (0,1): rows 0-2, cols 2-3 = {3,4,7,8,11,12}: mean 7.5, max 12
    // (1,0): rows 2-3, cols 0-2 = {9,10,11,13,14,15}: mean 12, max 15
    // (1,1): rows 2-3, cols 2-3 = {11,12,15,16}: mean 13.5, max 16
    let x = || f32t(&[1, 1, 4, 4], &iota(16));
    let ceil = Pool2dOptions {
        window_dimensions: Some([3, 3]),
        strides: [2, 2],
        output_shape_rounding: RoundingType::Ceil,
        ..Default::default()
    };
    assert_f32(&pool(PoolOp::Average, x(), ceil.clone()), &[1, 1, 2, 2], &[6., 7.5, 12., 13.5], 1e-7);
    assert_f32(&pool(PoolOp::Max, x(), ceil.clone()), &[1, 1, 2, 2], &[11., 12., 15., 16.], 0.0);
    let floor = Pool2dOptions { output_shape_rounding: RoundingType::Floor, ..ceil.clone() };
    assert_f32(&pool(PoolOp::Max, x(), floor.clone()), &[1, 1, 1, 1], &[11.], 0.0);
    // outputSizes picking the ceil size behaves like ceil rounding.
    let sized = Pool2dOptions { output_sizes: Some([2, 2]), ..floor };
    assert_f32(&pool(PoolOp::Max, x(), sized), &[1, 1, 2, 2], &[11., 12., 15., 16.], 0.0);
}

#[test]
fn pool_dilations() {
    // x = 1..16 as 4x4, window 2x2 dilated by 2 (effective 3x3), strides 1: 2x2 output.
    // (0,0) reads rows {0,2} cols {0,2} = {1,3,9,11}; (0,1) = {2,4,10,12};
    // (1,0) = {5,7,13,15}; (1,1) = {6,8,14,16}.
    let o = Pool2dOptions { window_dimensions: Some([2, 2]), dilations: [2, 2], ..Default::default() };
    let x = || f32t(&[1, 1, 4, 4], &iota(16));
    assert_f32(&pool(PoolOp::Max, x(), o.clone()), &[1, 1, 2, 2], &[11., 12., 15., 16.], 0.0);
    assert_f32(&pool(PoolOp::Average, x(), o.clone()), &[1, 1, 2, 2], &[6., 7., 10., 11.], 1e-7);
    // L2 of {1,3,9,11} = sqrt(1+9+81+121) = sqrt(212).
    let y = pool(PoolOp::L2, x(), o);
    assert_f32(&y, &[1, 1, 2, 2], &[212f64.sqrt(), 264f64.sqrt(), 468f64.sqrt(), 552f64.sqrt()], 1e-7);
}

#[test]
fn l2_pool_default_window_and_padding() {
    // [[3,4],[0,0]]: the default window is the whole 2x2 plane: sqrt(9+16) = 5.
    let x = || f32t(&[1, 1, 2, 2], &[3., 4., 0., 0.]);
    assert_f32(&pool(PoolOp::L2, x(), Pool2dOptions::default()), &[1, 1, 1, 1], &[5.], 1e-7);
    // Window 2x2 with one row and column of padding at the end: {3,4,0,0}, {4,0}, {0,0}, {0}.
    let o = Pool2dOptions { window_dimensions: Some([2, 2]), padding: [0, 1, 0, 1], ..Default::default() };
    assert_f32(&pool(PoolOp::L2, x(), o), &[1, 1, 2, 2], &[5., 4., 0., 0.], 1e-7);
}

#[test]
fn pool_nhwc() {
    // N=1, H=2, W=2, C=2; channel 0 = [1,2,3,4], channel 1 = [10,20,30,40], interleaved.
    let x = || f32t(&[1, 2, 2, 2], &[1., 10., 2., 20., 3., 30., 4., 40.]);
    let o = Pool2dOptions { layout: InputLayout::Nhwc, ..Default::default() };
    assert_f32(&pool(PoolOp::Max, x(), o.clone()), &[1, 1, 1, 2], &[4., 40.], 0.0);
    assert_f32(&pool(PoolOp::Average, x(), o.clone()), &[1, 1, 1, 2], &[2.5, 25.], 1e-7);
    // Window 1x2 over the rows: channel 0 rows [1,2] and [3,4].
    let o = Pool2dOptions { window_dimensions: Some([1, 2]), ..o };
    assert_f32(&pool(PoolOp::Max, x(), o), &[1, 2, 1, 2], &[2., 20., 4., 40.], 0.0);
}

#[test]
fn max_pool_integers() {
    let x = intt(DataType::Int8, &[1, 1, 2, 2], &[-5, -3, -8, -1]);
    let y = pool(PoolOp::Max, x, Pool2dOptions::default());
    assert_ints(&y, DataType::Int8, &[1, 1, 1, 1], &[-1]);
}

// ---------------------------------------------------------------------------
// pad

fn pad(x: Tensor, mode: PaddingMode, value: Number) -> Tensor {
    eval1(&[x], |i| Op::Pad {
        input: i[0],
        beginning_padding: vec![1, 2],
        ending_padding: vec![1, 2],
        options: PadOptions { mode, value },
    })
}

#[test]
fn pad_constant() {
    let x = f32t(&[2, 3], &[1., 2., 3., 4., 5., 6.]);
    let y = pad(x, PaddingMode::Constant, Number::Float(9.0));
    #[rustfmt::skip]
    let want = [
        9., 9., 9., 9., 9., 9., 9.,
        9., 9., 1., 2., 3., 9., 9.,
        9., 9., 4., 5., 6., 9., 9.,
        9., 9., 9., 9., 9., 9., 9.,
    ];
    assert_f32(&y, &[4, 7], &want, 0.0);
    // Integers, default value 0 and an explicit integer value.
    let x = intt(DataType::Int32, &[1, 1], &[5]);
    let y = pad(x.clone(), PaddingMode::Constant, Number::Float(0.0));
    assert_ints(&y, DataType::Int32, &[3, 5], &[0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0]);
    let y = pad(x, PaddingMode::Constant, Number::Int(-7));
    assert_ints(&y, DataType::Int32, &[3, 5], &[-7, -7, -7, -7, -7, -7, -7, 5, -7, -7, -7, -7, -7, -7, -7]);
}

#[test]
fn pad_edge() {
    // Rows: out r reads clamp(r-1, 0, 1); columns: out c reads clamp(c-2, 0, 2).
    let x = f32t(&[2, 3], &[1., 2., 3., 4., 5., 6.]);
    let y = pad(x, PaddingMode::Edge, Number::Float(0.0));
    #[rustfmt::skip]
    let want = [
        1., 1., 1., 2., 3., 3., 3.,
        1., 1., 1., 2., 3., 3., 3.,
        4., 4., 4., 5., 6., 6., 6.,
        4., 4., 4., 5., 6., 6., 6.,
    ];
    assert_f32(&y, &[4, 7], &want, 0.0);
}

#[test]
fn pad_reflection() {
    // numpy.pad(x, ((1,1),(2,2)), 'reflect'): rows read 1,0,1,0; columns read 2,1,0,1,2,1,0.
    let x = f32t(&[2, 3], &[1., 2., 3., 4., 5., 6.]);
    let y = pad(x, PaddingMode::Reflection, Number::Float(0.0));
    #[rustfmt::skip]
    let want = [
        6., 5., 4., 5., 6., 5., 4.,
        3., 2., 1., 2., 3., 2., 1.,
        6., 5., 4., 5., 6., 5., 4.,
        3., 2., 1., 2., 3., 2., 1.,
    ];
    assert_f32(&y, &[4, 7], &want, 0.0);
}

// ---------------------------------------------------------------------------
// prelu, where

#[test]
fn prelu_broadcasts_the_slope() {
    let x = f32t(&[2, 3], &[-2., -1., 0., 1., 2., 3.]);
    let slope = f32t(&[3], &[0.1, 0.2, 0.3]);
    let y = eval1(&[x, slope], |i| Op::Prelu { input: i[0], slope: i[1] });
    assert_f32(&y, &[2, 3], &[-0.2, -0.2, 0., 1., 2., 3.], 1e-7);
    // The slope may be the larger operand: input [3] with slope [2, 1].
    let x = f32t(&[3], &[-1., 2., -3.]);
    let slope = f32t(&[2, 1], &[1., 2.]);
    let y = eval1(&[x, slope], |i| Op::Prelu { input: i[0], slope: i[1] });
    assert_f32(&y, &[2, 3], &[-1., 2., -3., -2., 2., -6.], 0.0);
    // Integers.
    let x = intt(DataType::Int32, &[2], &[-4, 5]);
    let slope = intt(DataType::Int32, &[1], &[3]);
    let y = eval1(&[x, slope], |i| Op::Prelu { input: i[0], slope: i[1] });
    assert_ints(&y, DataType::Int32, &[2], &[-12, 5]);
}

#[test]
fn where_selects_with_broadcasting() {
    // condition [[1],[0]] x true [1,2,3] x false scalar -1.
    let c = intt(DataType::Uint8, &[2, 1], &[1, 0]);
    let t = intt(DataType::Int32, &[3], &[1, 2, 3]);
    let f = intt(DataType::Int32, &[], &[-1]);
    let y = eval1(&[c, t, f], |i| Op::Where { condition: i[0], true_value: i[1], false_value: i[2] });
    assert_ints(&y, DataType::Int32, &[2, 3], &[1, 2, 3, -1, -1, -1]);
    // Any non-zero condition is true.
    let c = intt(DataType::Uint8, &[3], &[0, 5, 255]);
    let t = f32t(&[3], &[1.5, 2.5, 3.5]);
    let f = f32t(&[3], &[7., 8., 9.]);
    let y = eval1(&[c, t, f], |i| Op::Where { condition: i[0], true_value: i[1], false_value: i[2] });
    assert_f32(&y, &[3], &[7., 2.5, 3.5], 0.0);
}

// ---------------------------------------------------------------------------
// Unary functions without WPT vectors.

#[test]
fn gelu_exact_erf_form() {
    // gelu(x) = x·Φ(x), Φ the standard normal CDF:
    // Φ(-3) = 0.0013498980316300946, Φ(-1) = 0.15865525393145707, Φ(0.5) = 0.6914624612740131,
    // Φ(1) = 0.8413447460685429, Φ(2) = 0.9772498680518208.
    let x = f32t(&[6], &[-3., -1., 0., 0.5, 1., 2.]);
    let want = [
        -3. * 0.0013498980316300946,
        -0.15865525393145707,
        0.,
        0.5 * 0.6914624612740131,
        0.8413447460685429,
        2. * 0.9772498680518208,
    ];
    assert_f32(&unary(UnaryOp::Gelu, x), &[6], &want, 1e-6);
    // Deep in the negative tail the result is tiny but not zero:
    // gelu(-8) = -8·Φ(-8) = -8 · 6.22096057427178e-16.
    let y = unary(UnaryOp::Gelu, f32t(&[1], &[-8.]));
    assert_f32(&y, &[1], &[-8. * 6.22096057427178e-16], 1e-5);
    assert!(y.to_f32_vec()[0] < 0.0);
}

#[test]
fn erf_values() {
    // Abramowitz & Stegun, table 7.1.
    let x = f32t(&[6], &[0., 0.5, 1., -2., 3., -0.25]);
    let want = [0., 0.5204998778130465, 0.8427007929497149, -0.9953222650189527, 0.9999779095030014, -0.2763263901682369];
    assert_f32(&unary(UnaryOp::Erf, x), &[6], &want, 1e-7);
}

#[test]
fn trigonometric_functions() {
    use std::f32::consts::{FRAC_PI_2, FRAC_PI_3, FRAC_PI_4, FRAC_PI_6};
    let y = unary(UnaryOp::Sin, f32t(&[4], &[0., FRAC_PI_6, FRAC_PI_2, -FRAC_PI_2]));
    assert_f32(&y, &[4], &[0., 0.5, 1., -1.], 1e-6);
    let y = unary(UnaryOp::Cos, f32t(&[3], &[0., FRAC_PI_3, std::f32::consts::PI]));
    assert_f32(&y, &[3], &[1., 0.5, -1.], 1e-6);
    let y = unary(UnaryOp::Tan, f32t(&[3], &[0., FRAC_PI_4, -FRAC_PI_4]));
    assert_f32(&y, &[3], &[0., 1., -1.], 1e-6);
}

#[test]
fn softplus_softsign_reciprocal() {
    // softplus = ln(1 + e^x): ln 2, ln(1+e), ln(1+1/e), 20 + ln(1+e^-20), e^-20 (no overflow or underflow to 0).
    let y = unary(UnaryOp::Softplus, f32t(&[5], &[0., 1., -1., 20., -20.]));
    let want = [std::f64::consts::LN_2, 1.3132616875182228, 0.31326168751822286, 20.000000002061153, 2.0611536203e-9];
    assert_f32(&y, &[5], &want, 1e-7);
    // softsign = x / (1 + |x|).
    let y = unary(UnaryOp::Softsign, f32t(&[4], &[-3., 0., 1., 4.]));
    assert_f32(&y, &[4], &[-0.75, 0., 0.5, 0.8], 1e-7);
    let y = unary(UnaryOp::Reciprocal, f32t(&[4], &[2., -4., 0.5, 0.]));
    assert_f32(&y, &[4], &[0.5, -0.25, 2., f64::INFINITY], 0.0);
}

/// kiln's composite activations against their definitions, evaluated by
/// Python's `math` (the tanh form of gelu as written, with tanh).
#[test]
fn silu_mish_gelu_tanh() {
    let x = f32t(&[5], &[-3., -0.5, 0., 1., 4.]);
    let y = unary(UnaryOp::Silu, x.clone());
    let want = [-0.14227761953270035, -0.1887703343990727, 0.0, 0.7310585786300049, 3.928055160151634];
    assert_f32(&y, &[5], &want, 1e-7);
    let y = unary(UnaryOp::Mish, x.clone());
    let want = [-0.1456474612756246, -0.22074377465173, 0.0, 0.8650983882673103, 3.9974128069762385];
    assert_f32(&y, &[5], &want, 1e-7);
    let y = unary(UnaryOp::GeluTanh, x);
    let want = [-0.0036373920817729943, -0.15428599017485606, 0.0, 0.8411919906082768, 3.9999297540518075];
    assert_f32(&y, &[5], &want, 1e-7);
}

#[test]
fn identity_copies_bits() {
    let nan_payload = f32::from_bits(0x7fc0_1234);
    let y = unary(UnaryOp::Identity, f32t(&[2], &[nan_payload, -0.0]));
    let v = y.to_f32_vec();
    assert_eq!(v[0].to_bits(), 0x7fc0_1234);
    assert_eq!(v[1].to_bits(), (-0.0f32).to_bits());
    let big = (1i128 << 62) + 1;
    let y = unary(UnaryOp::Identity, intt(DataType::Int64, &[2], &[big, -big]));
    assert_ints(&y, DataType::Int64, &[2], &[big, -big]);
}

// ---------------------------------------------------------------------------
// Comparisons and logic.

#[test]
fn not_equal() {
    let a = f32t(&[3], &[1., 2., f32::NAN]);
    let b = f32t(&[3], &[1., 3., f32::NAN]);
    let y = eval1(&[a, b], |i| Op::Compare { kind: CompareOp::NotEqual, a: i[0], b: i[1] });
    assert_ints(&y, DataType::Uint8, &[3], &[0, 1, 1]);
    // Integers with broadcasting: [[1],[2]] != [1, 2].
    let a = intt(DataType::Int64, &[2, 1], &[1, 2]);
    let b = intt(DataType::Int64, &[2], &[1, 2]);
    let y = eval1(&[a, b], |i| Op::Compare { kind: CompareOp::NotEqual, a: i[0], b: i[1] });
    assert_ints(&y, DataType::Uint8, &[2, 2], &[0, 1, 1, 0]);
}

#[test]
fn logical_and_or_xor() {
    let a = || intt(DataType::Uint8, &[4], &[0, 1, 2, 0]);
    let b = || intt(DataType::Uint8, &[4], &[0, 0, 3, 5]);
    for (kind, want) in [(LogicalOp::And, [0, 0, 1, 0]), (LogicalOp::Or, [0, 1, 1, 1]), (LogicalOp::Xor, [0, 1, 0, 1])] {
        let y = eval1(&[a(), b()], |i| Op::Logical { kind, a: i[0], b: i[1] });
        assert_ints(&y, DataType::Uint8, &[4], &want);
    }
    let y = unary(UnaryOp::LogicalNot, intt(DataType::Uint8, &[3], &[0, 1, 200]));
    assert_ints(&y, DataType::Uint8, &[3], &[1, 0, 0]);
}

// ---------------------------------------------------------------------------
// resample2d

fn resample(x: Tensor, options: Resample2dOptions) -> Tensor {
    eval1(&[x], |i| Op::Resample2d { input: i[0], options })
}

#[test]
fn resample_nearest_upscale() {
    // Output d samples s = (d + 0.5)/2 - 0.5 = -0.25, 0.25, 0.75, 1.25, clamped to [0, 1],
    // then index ceil(s - 0.5) = 0, 0, 1, 1.
    let y = resample(
        f32t(&[1, 1, 2, 2], &[1., 2., 3., 4.]),
        Resample2dOptions { scales: Some([2.0, 2.0]), ..Default::default() },
    );
    #[rustfmt::skip]
    let want = [1., 1., 2., 2., 1., 1., 2., 2., 3., 3., 4., 4., 3., 3., 4., 4.];
    assert_f32(&y, &[1, 1, 4, 4], &want, 0.0);
}

#[test]
fn resample_nearest_half_pixel_cases() {
    // From WPT resample2d-nearest-half-pixel.https.any.js.
    let o = |scales, sizes| Resample2dOptions { scales, sizes, ..Default::default() };
    // scales [1, 1.5] on 3 gives width floor(4.5) = 4; coordinates use the size ratio 3/4:
    // s = (d+0.5)·3/4 - 0.5 = -0.125, 0.625, 1.375, 2.125 -> clamp -> index 0, 1, 1, 2.
    // (Dividing by the given scale 1.5 instead would give 0, 0, 1, 2.)
    let y = resample(f32t(&[1, 1, 1, 3], &[10., 20., 30.]), o(Some([1.0, 1.5]), None));
    assert_f32(&y, &[1, 1, 1, 4], &[10., 20., 20., 30.], 0.0);
    // scales [1, 0.75] on 4 (ratio 4/3): s = (d+0.5)·4/3 - 0.5 = 1/6, 1.5, 2.833 -> ceil(-1/3)=0, ceil(1)=1, ceil(2.33)=3.
    let y = resample(f32t(&[1, 1, 1, 4], &[10., 20., 30., 40.]), o(Some([1.0, 0.75]), None));
    assert_f32(&y, &[1, 1, 1, 3], &[10., 20., 40.], 0.0);
    // sizes [1, 2] on 5: s = (d+0.5)·5/2 - 0.5 = 0.75, 3.25 -> 1, 3.
    let y = resample(f32t(&[1, 1, 1, 5], &[10., 20., 30., 40., 50.]), o(None, Some([1, 2])));
    assert_f32(&y, &[1, 1, 1, 2], &[20., 40.], 0.0);
    // Ties pick the smaller index: sizes [1, 3] on 2: s = -1/6, 0.5, 7/6 -> 0, 0, 1.
    let y = resample(f32t(&[1, 1, 1, 2], &[10., 20.]), o(None, Some([1, 3])));
    assert_f32(&y, &[1, 1, 1, 3], &[10., 10., 20.], 0.0);
    // A single output samples the centre: s = 0.5·3 - 0.5 = 1.
    let y = resample(f32t(&[1, 1, 1, 3], &[10., 20., 30.]), o(None, Some([1, 1])));
    assert_f32(&y, &[1, 1, 1, 1], &[20.], 0.0);
}

#[test]
fn resample_nearest_nhwc_axes_sizes_win_over_scales() {
    // WPT: input [1,2,3,2] (N,H,W,C) = 1..12, axes [1,2], sizes [3,4] (scales ignored).
    // Rows: s = (d+0.5)·2/3 - 0.5 = -1/6, 0.5, 7/6 -> 0, 0, 1.
    // Columns: s = (d+0.5)·3/4 - 0.5 = -0.125, 0.625, 1.375, 2.125 -> clamp -> 0, 1, 1, 2.
    let x = f32t(&[1, 2, 3, 2], &iota(12));
    let y = resample(x, Resample2dOptions { axes: [1, 2], sizes: Some([3, 4]), scales: Some([99.0, 99.0]), ..Default::default() });
    #[rustfmt::skip]
    let want = [
        1., 2., 3., 4., 3., 4., 5., 6.,
        1., 2., 3., 4., 3., 4., 5., 6.,
        7., 8., 9., 10., 9., 10., 11., 12.,
    ];
    assert_f32(&y, &[1, 3, 4, 2], &want, 0.0);
}

#[test]
fn resample_linear() {
    // Same coordinates as the nearest upscale, clamped: 0, 0.25, 0.75, 1.
    // A row [a, b] becomes [a, 0.75a+0.25b, 0.25a+0.75b, b]; rows mix the same way.
    let y = resample(
        f32t(&[1, 1, 2, 2], &[1., 2., 3., 4.]),
        Resample2dOptions { mode: InterpolationMode::Linear, scales: Some([2.0, 2.0]), ..Default::default() },
    );
    #[rustfmt::skip]
    let want = [
        1.0, 1.25, 1.75, 2.0,
        1.5, 1.75, 2.25, 2.5,
        2.5, 2.75, 3.25, 3.5,
        3.0, 3.25, 3.75, 4.0,
    ];
    assert_f32(&y, &[1, 1, 4, 4], &want, 0.0);
    // sizes: [0, 10] to width 4 (scale 2): 0, 2.5, 7.5, 10.
    let y = resample(
        f32t(&[1, 1, 1, 2], &[0., 10.]),
        Resample2dOptions { mode: InterpolationMode::Linear, sizes: Some([1, 4]), ..Default::default() },
    );
    assert_f32(&y, &[1, 1, 1, 4], &[0., 2.5, 7.5, 10.], 0.0);
    // Downscale by sizes: 1..4 to width 2: s = (d+0.5)·2 - 0.5 = 0.5, 2.5 -> 1.5, 3.5.
    let y = resample(
        f32t(&[1, 1, 1, 4], &[1., 2., 3., 4.]),
        Resample2dOptions { mode: InterpolationMode::Linear, sizes: Some([1, 2]), ..Default::default() },
    );
    assert_f32(&y, &[1, 1, 1, 2], &[1.5, 3.5], 0.0);
}

#[test]
fn resample_linear_nhwc_and_uint8() {
    // axes [1, 2]: N=1, H=1, W=2, C=2, channel 0 = [0, 10], channel 1 = [100, 200], width x2.
    let y = resample(
        f32t(&[1, 1, 2, 2], &[0., 100., 10., 200.]),
        Resample2dOptions { mode: InterpolationMode::Linear, axes: [1, 2], scales: Some([1.0, 2.0]), ..Default::default() },
    );
    assert_f32(&y, &[1, 1, 4, 2], &[0., 100., 2.5, 125., 7.5, 175., 10., 200.], 0.0);
    // uint8 rounds to nearest: [0, 11] -> 0, 2.75, 8.25, 11 -> 0, 3, 8, 11.
    let y = resample(
        intt(DataType::Uint8, &[1, 1, 1, 2], &[0, 11]),
        Resample2dOptions { mode: InterpolationMode::Linear, sizes: Some([1, 4]), ..Default::default() },
    );
    assert_ints(&y, DataType::Uint8, &[1, 1, 1, 4], &[0, 3, 8, 11]);
}

// ---------------------------------------------------------------------------
// convTranspose2d

fn conv_t(x: Tensor, w: Tensor, bias: Option<Tensor>, options: ConvTranspose2dOptions) -> Tensor {
    let mut inputs = vec![x, w];
    let has_bias = bias.is_some();
    inputs.extend(bias);
    eval1(&inputs, |i| Op::ConvTranspose2d {
        input: i[0],
        filter: i[1],
        options: ConvTranspose2dOptions { bias: has_bias.then(|| i[2]), ..options },
    })
}

#[test]
fn conv_transpose_basics() {
    // x = [[1,2],[3,4]], all-ones 2x2 filter, stride 1: each output sums the inputs
    // whose 2x2 footprint covers it: [[1,3,2],[4,10,6],[3,7,4]].
    let x = || f32t(&[1, 1, 2, 2], &[1., 2., 3., 4.]);
    let ones = || f32t(&[1, 1, 2, 2], &[1., 1., 1., 1.]);
    let y = conv_t(x(), ones(), None, Default::default());
    assert_f32(&y, &[1, 1, 3, 3], &[1., 3., 2., 4., 10., 6., 3., 7., 4.], 0.0);
    // Padding 1 on every side crops to the centre: 10.
    let y = conv_t(x(), ones(), None, ConvTranspose2dOptions { padding: [1, 1, 1, 1], ..Default::default() });
    assert_f32(&y, &[1, 1, 1, 1], &[10.], 0.0);
    // Stride 2 with filter [[1,2],[3,4]]: input v writes the block [[v,2v],[3v,4v]].
    let w = f32t(&[1, 1, 2, 2], &[1., 2., 3., 4.]);
    let y = conv_t(x(), w, None, ConvTranspose2dOptions { strides: [2, 2], ..Default::default() });
    #[rustfmt::skip]
    let want = [
        1., 2., 2., 4.,
        3., 4., 6., 8.,
        3., 6., 4., 8.,
        9., 12., 12., 16.,
    ];
    assert_f32(&y, &[1, 1, 4, 4], &want, 0.0);
}

#[test]
fn conv_transpose_output_padding_and_bias() {
    // Stride 2, all-ones filter, outputPadding 1: 5x5, the last row and column get
    // no contribution, only the bias 0.5.
    let x = f32t(&[1, 1, 2, 2], &[1., 2., 3., 4.]);
    let w = f32t(&[1, 1, 2, 2], &[1., 1., 1., 1.]);
    let b = f32t(&[1], &[0.5]);
    let y = conv_t(x, w, Some(b), ConvTranspose2dOptions { strides: [2, 2], output_padding: [1, 1], ..Default::default() });
    #[rustfmt::skip]
    let want = [
        1.5, 1.5, 2.5, 2.5, 0.5,
        1.5, 1.5, 2.5, 2.5, 0.5,
        3.5, 3.5, 4.5, 4.5, 0.5,
        3.5, 3.5, 4.5, 4.5, 0.5,
        0.5, 0.5, 0.5, 0.5, 0.5,
    ];
    assert_f32(&y, &[1, 1, 5, 5], &want, 0.0);
}

#[test]
fn conv_transpose_groups() {
    // Two groups of one channel: out0 = 1·3, out1 = 2·5.
    let x = f32t(&[1, 2, 1, 1], &[1., 2.]);
    let w = f32t(&[2, 1, 1, 1], &[3., 5.]);
    let y = conv_t(x, w, None, ConvTranspose2dOptions { groups: 2, ..Default::default() });
    assert_f32(&y, &[1, 2, 1, 1], &[3., 10.], 0.0);
}

#[test]
fn conv_transpose_layouts() {
    // 1x1 kernel mixing 2 channels: out[o] = Σ_i x[i]·w[i][o], w = [[1,2],[3,4]] (i rows, o columns).
    // x channel 0 = [1,2], channel 1 = [3,4] over W=2:
    // out0 = [1·1+3·3, 2·1+4·3] = [10, 14], out1 = [1·2+3·4, 2·2+4·4] = [14, 20].
    let x_nchw = || f32t(&[1, 2, 1, 2], &[1., 2., 3., 4.]);
    let w_iohw = f32t(&[2, 2, 1, 1], &[1., 2., 3., 4.]);
    let y = conv_t(x_nchw(), w_iohw, None, Default::default());
    assert_f32(&y, &[1, 2, 1, 2], &[10., 14., 14., 20.], 0.0);
    // nhwc input [(1,3), (2,4)]; hwoi filter [o][i] = [1,3,2,4]; output nhwc [(10,14), (14,20)].
    let x_nhwc = || f32t(&[1, 1, 2, 2], &[1., 3., 2., 4.]);
    let w_hwoi = f32t(&[1, 1, 2, 2], &[1., 3., 2., 4.]);
    let o = |filter_layout| ConvTranspose2dOptions { input_layout: InputLayout::Nhwc, filter_layout, ..Default::default() };
    let y = conv_t(x_nhwc(), w_hwoi, None, o(ConvTranspose2dFilterLayout::Hwoi));
    assert_f32(&y, &[1, 1, 2, 2], &[10., 14., 14., 20.], 0.0);
    // ohwi filter [o][h][w][i]: the same numbers in shape [2,1,1,2].
    let w_ohwi = f32t(&[2, 1, 1, 2], &[1., 3., 2., 4.]);
    let y = conv_t(x_nhwc(), w_ohwi, None, o(ConvTranspose2dFilterLayout::Ohwi));
    assert_f32(&y, &[1, 1, 2, 2], &[10., 14., 14., 20.], 0.0);
}

// ---------------------------------------------------------------------------
// Integers.

#[test]
fn int32_add_wraps() {
    let a = intt(DataType::Int32, &[2], &[i32::MAX as i128, i32::MIN as i128]);
    let b = intt(DataType::Int32, &[2], &[1, -1]);
    let y = eval1(&[a, b], |i| Op::Binary { kind: BinaryOp::Add, a: i[0], b: i[1] });
    assert_ints(&y, DataType::Int32, &[2], &[i32::MIN as i128, i32::MAX as i128]);
    // uint8 sub wraps below zero: 3 - 5 = 254.
    let a = intt(DataType::Uint8, &[1], &[3]);
    let b = intt(DataType::Uint8, &[1], &[5]);
    let y = eval1(&[a, b], |i| Op::Binary { kind: BinaryOp::Sub, a: i[0], b: i[1] });
    assert_ints(&y, DataType::Uint8, &[1], &[254]);
}

#[test]
fn int64_is_exact_beyond_2_pow_53() {
    // 2^53 + 1 is not a double; sums and products stay exact.
    let big = (1i128 << 53) + 1;
    let a = intt(DataType::Int64, &[2], &[big, 3037000499]);
    let b = intt(DataType::Int64, &[2], &[2, 3037000499]);
    let y = eval1(&[a.clone(), b.clone()], |i| Op::Binary { kind: BinaryOp::Add, a: i[0], b: i[1] });
    assert_ints(&y, DataType::Int64, &[2], &[big + 2, 6074000998]);
    let y = eval1(&[a, b], |i| Op::Binary { kind: BinaryOp::Mul, a: i[0], b: i[1] });
    assert_ints(&y, DataType::Int64, &[2], &[2 * big, 9223372030926249001]);
    let y = eval1(&[intt(DataType::Int64, &[3], &[big, big, 1])], |i| Op::Reduce {
        kind: ReduceOp::Sum,
        input: i[0],
        options: ReduceOptions::default(),
    });
    assert_ints(&y, DataType::Int64, &[], &[2 * big + 1]);
    // uint64 keeps values above i64::MAX.
    let u = intt(DataType::Uint64, &[1], &[u64::MAX as i128 - 1]);
    let one = intt(DataType::Uint64, &[1], &[1]);
    let y = eval1(&[u, one], |i| Op::Binary { kind: BinaryOp::Add, a: i[0], b: i[1] });
    assert_ints(&y, DataType::Uint64, &[1], &[u64::MAX as i128]);
}

#[test]
fn int_div_and_pow() {
    // Truncation toward zero; division by zero gives 0.
    let a = intt(DataType::Int32, &[3], &[-7, 7, 5]);
    let b = intt(DataType::Int32, &[3], &[2, -2, 0]);
    let y = eval1(&[a, b], |i| Op::Binary { kind: BinaryOp::Div, a: i[0], b: i[1] });
    assert_ints(&y, DataType::Int32, &[3], &[-3, -3, 0]);
    let a = intt(DataType::Int32, &[3], &[3, -2, 2]);
    let b = intt(DataType::Int32, &[3], &[4, 3, 31]);
    let y = eval1(&[a, b], |i| Op::Binary { kind: BinaryOp::Pow, a: i[0], b: i[1] });
    // 2^31 wraps to i32::MIN.
    assert_ints(&y, DataType::Int32, &[3], &[81, -8, i32::MIN as i128]);
}

#[test]
fn cast_saturates_and_wraps() {
    // float -> uint8 truncates toward zero and saturates; NaN -> 0.
    let x = f32t(&[5], &[-5., 300., 12.7, f32::NAN, -0.9]);
    let y = eval1(&[x], |i| Op::Cast { input: i[0], data_type: DataType::Uint8 });
    assert_ints(&y, DataType::Uint8, &[5], &[0, 255, 12, 0, 0]);
    // int -> int wraps: 300 -> 44, -1 -> 255.
    let x = intt(DataType::Int32, &[2], &[300, -1]);
    let y = eval1(&[x], |i| Op::Cast { input: i[0], data_type: DataType::Uint8 });
    assert_ints(&y, DataType::Uint8, &[2], &[44, 255]);
    // int64 -> float32 rounds to nearest: 2^24 + 1 -> 2^24.
    let x = intt(DataType::Int64, &[1], &[(1 << 24) + 1]);
    let y = eval1(&[x], |i| Op::Cast { input: i[0], data_type: DataType::Float32 });
    assert_f32(&y, &[1], &[16777216.], 0.0);
}

#[test]
fn clamp_bounds() {
    // WPT's lossy cases: infinities and NaN bounds.
    let x = || f32t(&[7], &[f32::NEG_INFINITY, f32::INFINITY, -3e35, 2147483647., -2., 1., 0.]);
    let clamp = |lo: Option<f64>, hi: Option<f64>| {
        eval1(&[x()], |i| Op::Clamp { input: i[0], min_value: lo.map(Number::Float), max_value: hi.map(Number::Float) })
    };
    let unchanged = [f64::NEG_INFINITY, f64::INFINITY, -3e35f32 as f64, 2147483647f32 as f64, -2., 1., 0.];
    assert_f32(&clamp(Some(f64::NAN), None), &[7], &unchanged, 0.0);
    assert_f32(&clamp(None, Some(f64::NAN)), &[7], &unchanged, 0.0);
    assert_f32(&clamp(Some(f64::INFINITY), None), &[7], &[f64::INFINITY; 7], 0.0);
    assert_f32(&clamp(Some(0.5), Some(0.5)), &[7], &[0.5; 7], 0.0);
    // NaN elements pass through.
    let y = eval1(&[f32t(&[2], &[f32::NAN, 5.])], |i| Op::Clamp {
        input: i[0],
        min_value: Some(Number::Float(0.0)),
        max_value: Some(Number::Float(1.0)),
    });
    assert_f32(&y, &[2], &[f64::NAN, 1.], 0.0);
    // Integers: fractional bounds round inward; bounds saturate to the type.
    let y = eval1(&[intt(DataType::Int8, &[4], &[-100, -2, 3, 100])], |i| Op::Clamp {
        input: i[0],
        min_value: Some(Number::Float(-1.5)),
        max_value: Some(Number::Float(2.5)),
    });
    assert_ints(&y, DataType::Int8, &[4], &[-1, -1, 2, 2]);
    // A NaN bound does not clamp, for integers too.
    let y = eval1(&[intt(DataType::Int8, &[3], &[-100, 0, 100])], |i| Op::Clamp {
        input: i[0],
        min_value: Some(Number::Float(f64::NAN)),
        max_value: Some(Number::Float(50.0)),
    });
    assert_ints(&y, DataType::Int8, &[3], &[-100, 0, 50]);
    let big = (1i128 << 60) + 1;
    let y = eval1(&[intt(DataType::Int64, &[2], &[big + 5, 0])], |i| Op::Clamp {
        input: i[0],
        min_value: Some(Number::Int(1)),
        max_value: Some(Number::Int(big)),
    });
    assert_ints(&y, DataType::Int64, &[2], &[big, 1]);
}

// ---------------------------------------------------------------------------
// gather with out-of-range indices

#[test]
fn gather_wraps_negative_and_clamps() {
    // Axis size 3: -1 -> 2; 7 -> clamped to 2 (not 7 mod 3 = 1); -5 -> -2 -> clamped to 0
    // (not -2 mod 3 = 1).
    let x = f32t(&[3, 2], &[1., 2., 3., 4., 5., 6.]);
    let idx = intt(DataType::Int64, &[3], &[-1, 7, -5]);
    let y = eval1(&[x, idx], |i| Op::Gather { input: i[0], indices: i[1], axis: 0 });
    assert_f32(&y, &[3, 2], &[5., 6., 5., 6., 1., 2.], 0.0);
}

// ---------------------------------------------------------------------------
// Graph-level behaviour.

#[test]
fn run_chains_nodes_and_constants() {
    // y = relu(x · W + b), then z = y * 2 — both outputs, in output order.
    let mut g = Graph::new();
    let x = g.add_input("x", OperandDescriptor::new(DataType::Float32, [1, 2])).unwrap();
    let w = g.add_constant(Some("W"), f32t(&[2, 2], &[1., -1., 2., 1.])).unwrap();
    let b = g.add_constant(Some("b"), f32t(&[2], &[0.5, -10.])).unwrap();
    let two = g.add_constant(None, f32t(&[], &[2.])).unwrap();
    let mm = g.add_node(Op::Matmul { a: x, b: w }, "mm").unwrap()[0];
    let add = g.add_node(Op::Binary { kind: BinaryOp::Add, a: mm, b }, "").unwrap()[0];
    let y = g.add_node(Op::Unary { kind: UnaryOp::Relu, input: add }, "").unwrap()[0];
    let z = g.add_node(Op::Binary { kind: BinaryOp::Mul, a: y, b: two }, "").unwrap()[0];
    g.add_output("z", z).unwrap();
    g.add_output("y", y).unwrap();
    // x = [3, 4]: x·W = [3+8, -3+4] = [11, 1]; + b = [11.5, -9]; relu = [11.5, 0]; ·2 = [23, 0].
    let xv = f32t(&[1, 2], &[3., 4.]);
    let out = run(&g, &[("x", &xv)]).unwrap();
    assert_f32(&out[0], &[1, 2], &[23., 0.], 0.0);
    assert_f32(&out[1], &[1, 2], &[11.5, 0.], 0.0);
}

#[test]
fn eval_op_rejects_inconsistent_descriptors() {
    let a = f32t(&[2], &[1., 2.]);
    let b = f32t(&[3], &[1., 2., 3.]);
    let tensors = [a, b];
    let lookup = |id: OperandId| &tensors[id.index()];
    // Shapes [2] and [3] do not broadcast: an error, not a panic.
    let op = Op::Binary { kind: BinaryOp::Add, a: OperandId(0), b: OperandId(1) };
    let err = eval_op(&op, &lookup, &[OperandDescriptor::new(DataType::Float32, [3])]).unwrap_err();
    assert_eq!(err.op, "add");
    // Descriptors that disagree with the operands are refused too.
    let op = Op::Unary { kind: UnaryOp::Exp, input: OperandId(0) };
    assert!(eval_op(&op, &lookup, &[OperandDescriptor::new(DataType::Float32, [5])]).is_err());
    let ok = eval_op(&op, &lookup, &[OperandDescriptor::new(DataType::Float32, [2])]).unwrap();
    assert_f32(&ok[0], &[2], &[std::f64::consts::E, std::f64::consts::E * std::f64::consts::E], 1e-7);
}

#[test]
fn float16_rounds_once() {
    // 0.1 and 0.2 in float16 are 0.0999755859375 and 0.199951171875; their exact sum
    // 0.2999267578125 rounds to the float16 0.2998046875 (0x34cc).
    let h = |v: f64| Tensor::from_values(OperandDescriptor::new(DataType::Float16, [1]), &Values::Float(vec![v])).unwrap();
    let y = eval1(&[h(0.1), h(0.2)], |i| Op::Binary { kind: BinaryOp::Add, a: i[0], b: i[1] });
    assert_eq!(y.data_type(), DataType::Float16);
    assert_eq!(y.bytes(), &0x34ccu16.to_le_bytes());
}
