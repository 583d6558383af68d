//! Reductions with guarded (padded) inputs: depthwise convolutions and
//! padded pooling take the 4-lane interior path of `vector.rs`
//! (`reduce_guarded`), borders the scalar loop; on AVX-512, depthwise
//! convolutions whose finish is the plain sum take the window-sum
//! micro-kernels (`window.rs`), whole rows with masked borders. Results must equal the reference interpreter
//! (`kiln_ir::kernel::eval`) bit for bit, for every feature level this
//! machine runs and with 1 and 3 tasks, except the window sums, which
//! fuse multiply-adds (checked to a stated tolerance).

use kiln_codegen::cpu::{listing, Listing, Target};
mod common;

use common::{f32s, run, sigmoid_nodes, silu_nodes, to_f32s};
use kiln_ir::kernel::*;
use kiln_ir::{DataType, Tensor};


/// Deterministic values in [-1, 1), some of them exactly 0 or negative
/// (so max pooling over padding sees -inf fills lose to real values).
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// Compiles and runs `p` (buffer 0: input, 1: output, 2: optional constant
/// filter) and compares the output with `eval` bit for bit (any NaN
/// matching any NaN).
fn check(p: &Program, x: &[f32], what: &str) {
    check_within(p, x, what, 0.0);
}

/// Like [`check`], except that on AVX-512 targets elements may differ by
/// `avx512_tolerance` (absolute): the window-sum micro-kernel there fuses
/// multiply-adds and splits each sum into partial sums.
fn check_within(p: &Program, x: &[f32], what: &str, avx512_tolerance: f32) {
    check_within_levels(p, x, what, avx512_tolerance, 0.0);
}

/// Like [`check_within`], with `tolerance` on the other levels too (for
/// finishes with inline transcendental functions, which are not the
/// reference's to the bit).
fn check_within_levels(p: &Program, x: &[f32], what: &str, avx512_tolerance: f32, tolerance: f32) {
    let out_len = p.buffers[1].len;
    let want = {
        let t = Tensor::from_f32(vec![x.len() as u32], x).unwrap();
        let outs = eval(p, &[("x", &t)]).unwrap();
        outs[0].1.to_f32_vec()
    };
    for target in Target::host_levels() {
        for tasks in [1, 3] {
            let mut buffers = vec![f32s(x), vec![0u8; out_len * 4]];
            for b in &p.buffers[2..] {
                match &b.kind {
                    BufferKind::Constant(t) => buffers.push(t.bytes().to_vec()),
                    _ => buffers.push(vec![0u8; b.byte_len()]),
                }
            }
            let got = to_f32s(&run(p, buffers, &target, tasks)[1]);
            let tolerance = if target.to_string().contains("avx512") { avx512_tolerance } else { tolerance };
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert!(
                    g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan()) || (g - w).abs() <= tolerance,
                    "{what}, {target}, {tasks} tasks: element {i}: got {g}, want {w}"
                );
            }
        }
    }
}

fn row(rank: usize, terms: &[(usize, isize)]) -> Vec<isize> {
    let mut r = vec![0; rank];
    for &(a, c) in terms {
        r[a] += c;
    }
    r
}

/// Output length of a padded, strided, dilated window axis.
fn out_len(n: usize, k: usize, s: usize, d: usize, pb: usize, pe: usize) -> Option<usize> {
    let span = d * (k - 1) + 1;
    (n + pb + pe >= span).then(|| (n + pb + pe - span) / s + 1)
}

/// The input of a convolution as lowered, `[1, C, H, W]` over the domain
/// `[N, G, OCG, OH, OW, ICG, KH, KW]`: rows at `s*oh + d*kh - p`, columns
/// at `s*ow + d*kw - p`, the channel coordinate as given.
fn conv_input(x: BufferId, [c, h, w]: [usize; 3], (s, d, p): (isize, isize, isize), channel: Vec<isize>, guard: Option<f32>) -> Access {
    let r = 8;
    Access {
        buffer: x,
        shape: vec![1, c, h, w],
        base: vec![0, 0, -p, -p],
        coef: vec![row(r, &[(0, 1)]), channel, row(r, &[(3, s), (6, d)]), row(r, &[(4, s), (7, d)])],
        guard,
    }
}

/// Depthwise conv as lowered: reduce [1, C, 1, OH, OW, 1, K, K] over the last 3.
#[allow(clippy::too_many_arguments)]
fn depthwise(c: usize, h: usize, w: usize, k: usize, s: usize, p: usize, d: usize, filter: &[f32]) -> Option<Program> {
    let (oh, ow) = (out_len(h, k, s, d, p, p)?, out_len(w, k, s, d, p, p)?);
    let mut prog = Program::default();
    let x = prog.add_buffer(BufferKind::Input("x".into()), DataType::Float32, c * h * w);
    let y = prog.add_buffer(BufferKind::Output("y".into()), DataType::Float32, c * oh * ow);
    let f = prog.add_buffer(
        BufferKind::Constant(Tensor::from_f32(vec![(c * k * k) as u32], filter).unwrap()),
        DataType::Float32,
        c * k * k,
    );
    let r = 8;
    let (s, d, p) = (s as isize, d as isize, p as isize);
    let input = conv_input(x, [c, h, w], (s, d, p), row(r, &[(1, 1), (5, 1)]), Some(0.0));
    let weights = Access {
        buffer: f,
        shape: vec![c, 1, k, k],
        base: vec![0; 4],
        coef: vec![row(r, &[(1, 1), (2, 1)]), row(r, &[(5, 1)]), row(r, &[(6, 1)]), row(r, &[(7, 1)])],
        guard: None,
    };
    let mut element = Expr::default();
    let a = element.push(ExprNode::Load(0));
    let b = element.push(ExprNode::Load(1));
    element.push(ExprNode::Binary(BinaryFn::Mul, a, b));
    // A bias-free clamp, like relu6, in the finish of odd channel counts;
    // the plain sum (as lowered, the AVX-512 window sums' case) otherwise.
    let mut finish = Expr::default();
    let acc = finish.push(ExprNode::Acc);
    if c % 2 == 1 {
        let six = finish.push(ExprNode::Const(6.0));
        finish.push(ExprNode::Binary(BinaryFn::Min, acc, six));
    }
    prog.kernels.push(Kernel::Reduce {
        domain: vec![1, c, 1, oh, ow, 1, k, k],
        reduced: 3,
        inputs: vec![input, weights],
        element,
        combine: Combine::Sum,
        finish,
        finish_inputs: vec![],
        out: Access::identity(y, &[1, c, 1, oh, ow]),
    });
    Some(prog)
}

/// A convolution with one group as lowered for direct convolution:
/// reduce [1, 1, OC, OH, OW, C, KH, KW] over the last 3, sums only.
#[allow(clippy::too_many_arguments)]
fn direct_conv(c: usize, oc: usize, h: usize, w: usize, k: (usize, usize), s: usize, p: usize, d: usize, filter: &[f32]) -> Option<Program> {
    let (oh, ow) = (out_len(h, k.0, s, d, p, p)?, out_len(w, k.1, s, d, p, p)?);
    let mut prog = Program::default();
    let x = prog.add_buffer(BufferKind::Input("x".into()), DataType::Float32, c * h * w);
    let y = prog.add_buffer(BufferKind::Output("y".into()), DataType::Float32, oc * oh * ow);
    let len = oc * c * k.0 * k.1;
    let f = prog.add_buffer(BufferKind::Constant(Tensor::from_f32(vec![len as u32], filter).unwrap()), DataType::Float32, len);
    let r = 8;
    let (s, d, p) = (s as isize, d as isize, p as isize);
    let input = conv_input(x, [c, h, w], (s, d, p), row(r, &[(5, 1)]), (p > 0).then_some(0.0));
    let weights = Access {
        buffer: f,
        shape: vec![oc, c, k.0, k.1],
        base: vec![0; 4],
        coef: vec![row(r, &[(2, 1)]), row(r, &[(5, 1)]), row(r, &[(6, 1)]), row(r, &[(7, 1)])],
        guard: None,
    };
    let mut element = Expr::default();
    let a = element.push(ExprNode::Load(0));
    let b = element.push(ExprNode::Load(1));
    element.push(ExprNode::Binary(BinaryFn::Mul, a, b));
    prog.kernels.push(Kernel::Reduce {
        domain: vec![1, 1, oc, oh, ow, c, k.0, k.1],
        reduced: 3,
        inputs: vec![input, weights],
        element,
        combine: Combine::Sum,
        finish: Expr::acc(),
        finish_inputs: vec![],
        out: Access::identity(y, &[1, 1, oc, oh, ow]),
    });
    Some(prog)
}

/// Direct convolutions: on AVX-512 the window sums with an input-channel
/// loop and blocks of 8 output channels (then one at a time), every other
/// level the vector or scalar reduction, bit for bit.
#[test]
fn direct_convolutions() {
    // (channels, output channels, kernel, stride, padding, dilation, widths)
    type Case = (usize, usize, (usize, usize), usize, usize, usize, &'static [usize]);
    let cases: [Case; 6] = [
        (3, 8, (3, 3), 1, 1, 1, &[12, 16, 17, 40]),
        (2, 13, (3, 3), 2, 1, 1, &[12, 25, 33]),
        (1, 3, (5, 5), 1, 2, 1, &[20, 70]),
        (4, 9, (2, 3), 1, 0, 2, &[14, 31]),
        (3, 16, (7, 7), 2, 3, 1, &[24]),
        (5, 8, (1, 3), 1, 1, 1, &[16, 19]),
    ];
    for (c, oc, k, s, p, d, widths) in cases {
        for &w in widths {
            let filter = values(oc * c * k.0 * k.1, (c * 31 + oc * 7 + w) as u64);
            let Some(prog) = direct_conv(c, oc, 5, w, k, s, p, d, &filter) else { continue };
            let x = values(c * 5 * w, w as u64 + 3);
            // |x|, |w| < 1, at most 5 * 49 products: 1e-4 is a few roundings of the largest sum.
            check_within(&prog, &x, &format!("direct conv c{c} oc{oc} k{k:?} s{s} p{p} d{d} w{w}"), 1e-4);
        }
    }
    // On AVX-512 the listing shows the two micro-kernels (8 channels, 1 channel).
    let filter = values(13 * 2 * 9, 1);
    let prog = direct_conv(2, 13, 5, 20, (3, 3), 1, 1, 1, &filter).unwrap();
    let asm = listing(&prog, &"x86_64+avx512".parse().unwrap(), Listing::Asm).unwrap();
    for kernel in ["k0_avx512_window_sum_f32_s1_oc8", "k0_avx512_window_sum_f32_s1_oc1"] {
        assert!(asm.contains(&format!("; micro-kernel {kernel}")), "no {kernel} in\n{asm}");
    }
}

/// Rows of one group (at most 16 outputs) go several per call through the
/// multi-row micro-kernels where every tap of those rows is inside (the
/// padded first and last rows one at a time): results equal the reference
/// within tolerance, and are the same bits whatever rows a task starts at
/// (1, 2, 3 or 5 tasks group the rows differently), since a multi-row call
/// sums every output as a one-row call does.
#[test]
fn multi_row_kernels_match_single_rows() {
    let levels = Target::host_levels();
    let avx512 = levels.iter().find(|t| t.to_string().contains("avx512"));
    // (direct?, channels, output channels or 0, height, width, kernel, stride, padding)
    let cases = [
        (true, 3, 16, 13, 9, 3, 1, 1),
        (true, 2, 11, 12, 14, 3, 1, 1),
        (true, 4, 8, 9, 16, 5, 1, 2),
        (true, 3, 8, 11, 7, 3, 1, 0),
        (false, 4, 0, 13, 7, 3, 1, 1),
        (false, 2, 0, 14, 12, 5, 1, 2),
        (false, 3, 0, 11, 16, 3, 2, 1),
    ];
    for (direct, c, oc, h, w, k, s, p) in cases {
        let what = format!("{} c{c} oc{oc} h{h} w{w} k{k} s{s} p{p}", if direct { "direct" } else { "depthwise" });
        let prog = if direct {
            direct_conv(c, oc, h, w, (k, k), s, p, 1, &values(oc * c * k * k, 5))
        } else {
            depthwise(c, h, w, k, s, p, 1, &values(c * k * k, 6))
        }
        .unwrap();
        let x = values(prog.buffers[0].len, 7);
        check_within(&prog, &x, &what, 1e-4);
        // The grouping check needs AVX-512 code (the only level with
        // multi-row kernels); other hosts still check the reference above.
        let Some(avx512) = avx512 else { continue };
        let asm = listing(&prog, avx512, Listing::Asm).unwrap();
        assert!(asm.contains("_r2\n") || asm.contains("_r3\n") || asm.contains("_r4\n"), "{what}: no multi-row kernel in\n{asm}");
        let out_len = prog.buffers[1].len;
        let run_with = |tasks: u64| {
            let mut buffers = vec![f32s(&x), vec![0u8; out_len * 4]];
            for b in &prog.buffers[2..] {
                match &b.kind {
                    BufferKind::Constant(t) => buffers.push(t.bytes().to_vec()),
                    _ => buffers.push(vec![0u8; b.byte_len()]),
                }
            }
            run(&prog, buffers, avx512, tasks)[1].clone()
        };
        let one = run_with(1);
        for tasks in [2, 3, 5] {
            assert!(run_with(tasks) == one, "{what}: {tasks} tasks differ from one");
        }
    }
}

/// `prog`'s single reduction with a fused epilogue, as the fuse pass makes
/// it: a bias (buffer 3, one value per channel of kept axis `channel`)
/// added to the sum, then `finish` applied to that.
fn with_bias_epilogue(mut prog: Program, channel: usize, bias: &[f32], finish: &dyn Fn(&mut Expr, ValueId) -> ValueId) -> Program {
    let b = prog.add_buffer(
        BufferKind::Constant(Tensor::from_f32(vec![bias.len() as u32], bias).unwrap()),
        DataType::Float32,
        bias.len(),
    );
    let Kernel::Reduce { finish: f, finish_inputs, domain, reduced, .. } = &mut prog.kernels[0] else { unreachable!() };
    let kept = domain.len() - *reduced;
    let mut coef = vec![0isize; kept];
    coef[channel] = 1;
    finish_inputs.push(Access { buffer: b, shape: vec![bias.len()], base: vec![0], coef: vec![coef], guard: None });
    let mut e = Expr::default();
    let acc = e.push(ExprNode::Acc);
    let bv = e.push(ExprNode::Load(0));
    let sum = e.push(ExprNode::Binary(BinaryFn::Add, acc, bv));
    finish(&mut e, sum);
    *f = e;
    prog
}

/// `max(x, lo)` then `min(x, hi)` as the lowering writes a clamp.
fn clamp_nodes(e: &mut Expr, x: ValueId, lo: f32, hi: f32) -> ValueId {
    let l = e.push(ExprNode::Const(lo));
    let below = e.push(ExprNode::Binary(BinaryFn::Lesser, x, l));
    let l2 = e.push(ExprNode::Const(lo));
    let x = e.push(ExprNode::Select(below, l2, x));
    let h = e.push(ExprNode::Const(hi));
    let above = e.push(ExprNode::Binary(BinaryFn::Greater, x, h));
    e.push(ExprNode::Select(above, h, x))
}

/// Window sums with fused epilogues: bias + clamp (vmaxps/vminps), sigmoid
/// or SiLU (vdivps) in the micro-kernel's registers, anything else (here
/// SiLU written as `x / (1 + exp(-x))`) applied to the rows afterwards;
/// equal to the reference within the window sums' tolerance.
#[test]
fn window_sums_with_epilogues() {
    let silu_div = |e: &mut Expr, x: ValueId| {
        let n = e.push(ExprNode::Unary(UnaryFn::Neg, x));
        let ex = e.push(ExprNode::Unary(UnaryFn::Exp, n));
        let one = e.push(ExprNode::Const(1.0));
        let d = e.push(ExprNode::Binary(BinaryFn::Add, one, ex));
        e.push(ExprNode::Binary(BinaryFn::Div, x, d))
    };
    let relu6 = |e: &mut Expr, x: ValueId| clamp_nodes(e, x, 0.0, 6.0);
    let silu = |e: &mut Expr, x: ValueId| silu_nodes(e, x, false);
    let silu_swapped = |e: &mut Expr, x: ValueId| silu_nodes(e, x, true);
    type Epilogue<'a> = (&'a str, &'a dyn Fn(&mut Expr, ValueId) -> ValueId);
    let epilogues: [Epilogue; 5] = [
        ("relu6", &relu6),
        ("silu-div", &silu_div),
        ("sigmoid", &sigmoid_nodes),
        ("silu", &silu),
        ("silu-swapped", &silu_swapped),
    ];
    for (name, finish) in epilogues {
        for (w, s) in [(5, 1), (24, 1), (40, 2)] {
            let bias = values(10, w as u64);
            let filter = values(10 * 2 * 9, 3);
            let direct = with_bias_epilogue(direct_conv(2, 10, 6, w, (3, 3), s, 1, 1, &filter).unwrap(), 2, &bias, finish);
            let x = values(2 * 6 * w, 5);
            check_within_levels(&direct, &x, &format!("direct conv + bias + {name}, width {w}, stride {s}"), 1e-4, 1e-6);
            let filter = values(4 * 9, 7);
            let dw = with_bias_epilogue(depthwise(4, 6, w, 3, s, 1, 1, &filter).unwrap(), 1, &bias[..4], finish);
            let x = values(4 * 6 * w, 9);
            check_within_levels(&dw, &x, &format!("depthwise + bias + {name}, width {w}, stride {s}"), 1e-5, 1e-6);
            for program in [&dw, &direct] {
                let asm = listing(program, &"x86_64+avx512".parse().unwrap(), Listing::Asm).unwrap();
                let clamp = asm.contains("vmaxps") && asm.contains("vminps");
                assert_eq!(clamp, name == "relu6", "{name}: the clamp in registers, else not:\n{asm}");
                let activation = asm.contains("vdivps zmm");
                assert_eq!(activation, ["sigmoid", "silu", "silu-swapped"].contains(&name), "{name}: in registers?\n{asm}");
            }
        }
    }
}

/// The AVX-512 and AVX2 levels, where this machine runs both.
fn avx512_and_avx2() -> Option<(Target, Target)> {
    let levels = Target::host_levels();
    let level = |name: &str| levels.iter().find(|t| t.to_string().contains(name)).copied();
    Some((level("avx512")?, level("avx2")?))
}

/// A sigmoid or SiLU in the window micro-kernel's registers gives the bits
/// the F32X4 code of the AVX2 level gives for the same expression (same
/// operations, constants and fused multiply-adds): with a zero filter the
/// sums are exactly 0 and every output is the activation of its channel's
/// bias, here values across exp's whole range, its clamps, zeros of both
/// signs, subnormals, infinities and NaN.
#[test]
fn register_activations_match_the_vector_code_bit_for_bit() {
    let Some((avx512, avx2)) = avx512_and_avx2() else {
        eprintln!("this machine runs no AVX-512 code: nothing to compare");
        return;
    };
    let (avx512, avx2) = (&avx512, &avx2);
    let mut bias = vec![
        0.0, -0.0, 1e-40, -1e-40, 1e-30, -1e-7, 0.5, -0.5, 1.0, -1.0, 3.7, -3.7, 15.9, -15.9, 87.0, -87.0, 88.7, -88.7,
        89.5, -89.5, 103.9, -103.9, 104.0, -104.0, 150.0, -150.0, 3e38, -3e38, f32::INFINITY, f32::NEG_INFINITY, f32::NAN,
        f32::MIN_POSITIVE, -f32::MIN_POSITIVE,
    ];
    bias.extend(values(31, 11).iter().map(|v| v * 40.0));
    let oc = bias.len();
    for (name, sigmoid_only) in [("sigmoid", true), ("silu", false)] {
        let finish = |e: &mut Expr, x: ValueId| if sigmoid_only { sigmoid_nodes(e, x) } else { silu_nodes(e, x, false) };
        let filter = vec![0.0; oc * 2 * 9];
        let program = with_bias_epilogue(direct_conv(2, oc, 4, 20, (3, 3), 1, 1, 1, &filter).unwrap(), 2, &bias, &finish);
        let asm = listing(&program, avx512, Listing::Asm).unwrap();
        assert!(asm.contains("vdivps zmm"), "{name}: the activation in registers:\n{asm}");
        let x = values(2 * 4 * 20, 13);
        let out_len = program.buffers[1].len;
        let run_on = |target: &Target| {
            let buffers = vec![f32s(&x), vec![0u8; out_len * 4], f32s(&filter), f32s(&bias)];
            to_f32s(&run(&program, buffers, target, 1)[1])
        };
        let (got, want) = (run_on(avx512), run_on(avx2));
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!(
                g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan()),
                "{name}: channel {} (bias {}): avx512 {g:e} ({:#x}), avx2 {w:e} ({:#x})",
                i / 80,
                bias[i / 80],
                g.to_bits(),
                w.to_bits()
            );
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Pool {
    Average,
    Max,
    L2,
}

/// Pooling as lowered: reduce [N, C, OH, OW, KH, KW] over the last 2.
#[allow(clippy::too_many_arguments)]
fn pool(kind: Pool, c: usize, h: usize, w: usize, k: (usize, usize), s: usize, pads: [usize; 4], d: usize) -> Option<Program> {
    let oh = out_len(h, k.0, s, d, pads[0], pads[1])?;
    let ow = out_len(w, k.1, s, d, pads[2], pads[3])?;
    let mut prog = Program::default();
    let x = prog.add_buffer(BufferKind::Input("x".into()), DataType::Float32, c * h * w);
    let y = prog.add_buffer(BufferKind::Output("y".into()), DataType::Float32, c * oh * ow);
    let r = 6;
    let (s, d) = (s as isize, d as isize);
    let fill = if matches!(kind, Pool::Max) { f32::NEG_INFINITY } else { 0.0 };
    let input = Access {
        buffer: x,
        shape: vec![1, c, h, w],
        base: vec![0, 0, -(pads[0] as isize), -(pads[2] as isize)],
        coef: vec![row(r, &[(0, 1)]), row(r, &[(1, 1)]), row(r, &[(2, s), (4, d)]), row(r, &[(3, s), (5, d)])],
        guard: Some(fill),
    };
    let mut element = Expr::load(0);
    let mut finish = Expr::default();
    let combine = match kind {
        Pool::Average => {
            let a = finish.push(ExprNode::Acc);
            let n = finish.push(ExprNode::Count);
            finish.push(ExprNode::Binary(BinaryFn::Div, a, n));
            Combine::Sum
        }
        Pool::Max => {
            finish.push(ExprNode::Acc);
            Combine::Max
        }
        Pool::L2 => {
            element.push(ExprNode::Binary(BinaryFn::Mul, ValueId(0), ValueId(0)));
            let a = finish.push(ExprNode::Acc);
            finish.push(ExprNode::Unary(UnaryFn::Sqrt, a));
            Combine::Sum
        }
    };
    prog.kernels.push(Kernel::Reduce {
        domain: vec![1, c, oh, ow, k.0, k.1],
        reduced: 2,
        inputs: vec![input],
        element,
        combine,
        finish,
        finish_inputs: vec![],
        out: Access::identity(y, &[1, c, oh, ow]),
    });
    Some(prog)
}

#[test]
fn depthwise_convolutions() {
    for k in [3, 5] {
        for s in [1, 2] {
            for p in [0, 1, 2] {
                for d in [1, 2] {
                    // Even channel counts (a plain sum) take the AVX-512 window
                    // sums there: one group of 16 and several, partial last groups.
                    for w in (1..=20).chain([32, 33, 40, 70]) {
                        let (c, h) = (2 + w % 2, 6);
                        let filter = values(c * k * k, (k * 7 + s * 3 + p + d * 11) as u64);
                        let Some(prog) = depthwise(c, h, w, k, s, p, d, &filter) else { continue };
                        let x = values(c * h * w, w as u64);
                        // |x|, |w| < 1 and at most 25 products: 1e-5 is a few
                        // float32 roundings of the largest possible sum.
                        check_within(&prog, &x, &format!("depthwise k={k} s={s} p={p} d={d} w={w}"), 1e-5);
                    }
                }
            }
        }
    }
}

#[test]
fn padded_pooling() {
    for kind in [Pool::Average, Pool::Max, Pool::L2] {
        for k in [(2, 2), (3, 3), (3, 2)] {
            for s in [1, 2] {
                for pads in [[0, 0, 0, 0], [1, 1, 1, 1], [0, 1, 2, 1], [2, 2, 2, 2]] {
                    for d in [1, 2] {
                        for w in 1..=20 {
                            let (c, h) = (2, 5);
                            let Some(prog) = pool(kind, c, h, w, k, s, pads, d) else { continue };
                            let x = values(c * h * w, (w * 31 + s) as u64);
                            check(&prog, &x, &format!("{kind:?} pool k={k:?} s={s} pads={pads:?} d={d} w={w}"));
                        }
                    }
                }
            }
        }
    }
}

/// Count in an average pool is exact: a window partly in padding divides
/// by the number of real elements.
/// Max pools over NaN and signed zeros: NaN propagates and +0 beats -0 on
/// every level, bit for bit (on AVX-512 the window maxima use VRANGEPS).
#[test]
fn max_pools_propagate_nan_and_order_signed_zeros() {
    let (c, h, w) = (2, 4, 24);
    let mut x = values(c * h * w, 42);
    for (i, v) in x.iter_mut().enumerate() {
        match i % 11 {
            0 => *v = -0.0,
            3 => *v = 0.0,
            _ if i % 37 == 5 => *v = f32::NAN,
            _ => {}
        }
    }
    for (k, s, pads) in [((2, 2), 1, [0; 4]), ((3, 3), 2, [1; 4]), ((1, 3), 1, [0, 0, 1, 1])] {
        let Some(prog) = pool(Pool::Max, c, h, w, k, s, pads, 1) else { continue };
        check(&prog, &x, &format!("max pool with NaN and signed zeros k={k:?} s={s}"));
        let asm = listing(&prog, &"x86_64+avx512".parse().unwrap(), Listing::Asm).unwrap();
        assert!(asm.contains("_avx512_window_max_f32_s"), "k={k:?} s={s}: no window maximum in\n{asm}");
    }
}

#[test]
fn average_pool_counts_only_real_elements() {
    let (c, h, w) = (1, 3, 12);
    let prog = pool(Pool::Average, c, h, w, (3, 3), 1, [1, 1, 1, 1], 1).unwrap();
    let x = vec![1.0f32; c * h * w];
    for target in Target::host_levels() {
        let got = to_f32s(&run(&prog, vec![f32s(&x), vec![0u8; c * h * w * 4]], &target, 1)[1]);
        assert!(got.iter().all(|&v| v == 1.0), "{target}: {got:?}");
    }
    // Sums of ones: the count itself, through acc * count / count... use a sum pool.
    let mut prog = prog;
    if let Kernel::Reduce { finish, .. } = &mut prog.kernels[0] {
        *finish = Expr { nodes: vec![ExprNode::Count] };
    }
    for target in Target::host_levels() {
        let got = to_f32s(&run(&prog, vec![f32s(&x), vec![0u8; c * h * w * 4]], &target, 1)[1]);
        for (i, &g) in got.iter().enumerate() {
            let (r, col) = (i / w, i % w);
            let rows = if r == 0 || r == h - 1 { 2.0 } else { 3.0 };
            let cols = if col == 0 || col == w - 1 { 2.0 } else { 3.0 };
            assert_eq!(g, rows * cols, "{target}: element {i}");
        }
    }
}

#[test]
fn depthwise_takes_the_vector_path() {
    // Three channels: a finish beyond the sum (min with 6): F32X4 loops
    // (on AVX-512 for the finish applied to the rows of the window sums).
    let filter = values(3 * 9, 1);
    let prog = depthwise(3, 8, 16, 3, 1, 1, 1, &filter).unwrap();
    for target in Target::host_levels() {
        let clif = listing(&prog, &target, Listing::Clif).unwrap();
        assert!(clif.contains("f32x4"), "{target}: no f32x4 in\n{clif}");
    }
    // Too narrow an interior (width 3): scalar (below AVX-512, which has
    // window sums for any width).
    let prog = depthwise(3, 8, 3, 3, 1, 1, 1, &filter).unwrap();
    let clif = listing(&prog, &"x86_64+avx2".parse().unwrap(), Listing::Clif).unwrap();
    assert!(!clif.contains("f32x4"));
    // Four channels, a plain sum: the AVX-512 window sums (listed for any
    // host, nothing runs), stride 1 and 2, any width; none on AVX2.
    let filter = values(4 * 9, 1);
    for (w, s, kernel) in [(3, 1, "k0_avx512_window_sum_f32_s1"), (24, 1, "k0_avx512_window_sum_f32_s1"), (40, 2, "k0_avx512_window_sum_f32_s2")] {
        let prog = depthwise(4, 8, w, 3, s, 1, 1, &filter).unwrap();
        let asm = listing(&prog, &"x86_64+avx512".parse().unwrap(), Listing::Asm).unwrap();
        assert!(asm.contains(&format!("; micro-kernel {kernel}")), "width {w} stride {s}: no {kernel} in\n{asm}");
        let asm = listing(&prog, &"x86_64+avx2".parse().unwrap(), Listing::Asm).unwrap();
        assert!(!asm.contains("window_sum"));
    }
}

/// GEMM epilogues the AVX-512 epilogue function computes (`zmm_epilogue`:
/// erf, tanh, exp, min/max with a constant, comparisons and selects, abs,
/// neg, sqrt, broadcast and vector inputs) give the bits the F32X4 code of
/// the AVX2 level gives for the same expression. A and B are zero, so the
/// sums are exactly 0 on both levels and each output is the epilogue of its
/// column's input: values across the functions' ranges, zeros of both
/// signs, subnormals, infinities and NaN; 70 columns, so the function's
/// masked tail runs too.
#[test]
fn zmm_epilogues_match_the_vector_code_bit_for_bit() {
    let Some((avx512, avx2)) = avx512_and_avx2() else {
        eprintln!("this machine runs no AVX-512 code: nothing to compare");
        return;
    };
    let (avx512, avx2) = (&avx512, &avx2);
    let mut column = vec![
        0.0, -0.0, 1e-40, -1e-40, 1e-30, -1e-7, 0.5, -0.5, 0.9999, 1.0, -1.0, 1.0001, 0.625, -0.625, 3.7, -3.7, 4.0,
        -4.5, 15.9, -15.9, 87.0, -88.7, 89.5, -103.9, 104.0, -150.0, 3e38, -3e38, f32::INFINITY, f32::NEG_INFINITY,
        f32::NAN, f32::MIN_POSITIVE,
    ];
    column.extend(values(70 - column.len(), 21).iter().map(|v| v * 6.0));
    let (m, n, k) = (3, column.len(), 4);
    type Build = fn(&mut Expr, ValueId, ValueId) -> ValueId;
    // (name, expression of v = acc + column and the broadcast scalar s = sqrt(2))
    let cases: [(&str, Build); 6] = [
        ("gelu", |e, v, s| {
            let d = e.push(ExprNode::Binary(BinaryFn::Div, v, s));
            let f = e.push(ExprNode::Unary(UnaryFn::Erf, d));
            let one = e.push(ExprNode::Const(1.0));
            let g = e.push(ExprNode::Binary(BinaryFn::Add, f, one));
            let h = e.push(ExprNode::Binary(BinaryFn::Mul, v, g));
            let half = e.push(ExprNode::Const(0.5));
            e.push(ExprNode::Binary(BinaryFn::Mul, h, half))
        }),
        ("tanh", |e, v, _| e.push(ExprNode::Unary(UnaryFn::Tanh, v))),
        ("exp of -|v|", |e, v, _| {
            let a = e.push(ExprNode::Unary(UnaryFn::Abs, v));
            let n = e.push(ExprNode::Unary(UnaryFn::Neg, a));
            e.push(ExprNode::Unary(UnaryFn::Exp, n))
        }),
        ("clamp by min/max", |e, v, _| {
            let lo = e.push(ExprNode::Const(-0.0));
            let x = e.push(ExprNode::Binary(BinaryFn::Max, v, lo));
            let hi = e.push(ExprNode::Const(6.0));
            e.push(ExprNode::Binary(BinaryFn::Min, hi, x))
        }),
        ("leaky select", |e, v, s| {
            let zero = e.push(ExprNode::Const(0.0));
            let c = e.push(ExprNode::Binary(BinaryFn::Lesser, v, zero));
            let slope = e.push(ExprNode::Const(0.01));
            let l = e.push(ExprNode::Binary(BinaryFn::Mul, v, slope));
            let r = e.push(ExprNode::Select(c, l, v));
            let g = e.push(ExprNode::Binary(BinaryFn::GreaterOrEqual, r, s));
            e.push(ExprNode::Binary(BinaryFn::Add, r, g))
        }),
        ("sqrt and select on a value", |e, v, s| {
            let q = e.push(ExprNode::Unary(UnaryFn::Sqrt, v));
            let t = e.push(ExprNode::Binary(BinaryFn::Sub, q, s));
            e.push(ExprNode::Select(t, q, s))
        }),
    ];
    for (name, build) in cases {
        let mut p = Program::default();
        let a = p.add_buffer(BufferKind::Input("a".into()), DataType::Float32, m * k);
        let b = p.add_buffer(BufferKind::Input("b".into()), DataType::Float32, k * n);
        let out = p.add_buffer(BufferKind::Output("y".into()), DataType::Float32, m * n);
        let col = p.add_buffer(BufferKind::Input("c".into()), DataType::Float32, n);
        let scalar = p.add_buffer(BufferKind::Input("s".into()), DataType::Float32, 1);
        let mut e = Expr::default();
        let acc = e.push(ExprNode::Acc);
        let x = e.push(ExprNode::Load(0));
        let v = e.push(ExprNode::Binary(BinaryFn::Add, acc, x));
        let s = e.push(ExprNode::Load(1));
        build(&mut e, v, s);
        let access = |buffer, shape: Vec<usize>, coef: Vec<Vec<isize>>| Access {
            buffer,
            base: vec![0; shape.len()],
            shape,
            coef,
            guard: None,
        };
        p.kernels.push(Kernel::Gemm {
            domain: vec![m, n, k],
            a: access(a, vec![m, k], vec![vec![1, 0, 0], vec![0, 0, 1]]),
            b: access(b, vec![k, n], vec![vec![0, 0, 1], vec![0, 1, 0]]),
            epilogue_inputs: vec![access(col, vec![n], vec![vec![0, 1]]), access(scalar, vec![1], vec![vec![0, 0]])],
            epilogue: e,
            out: access(out, vec![m, n], vec![vec![1, 0], vec![0, 1]]),
        });
        p.validate().unwrap();
        let asm = listing(&p, avx512, Listing::Asm).unwrap();
        assert!(asm.contains("_avx512_epilogue"), "{name}: the epilogue function:\n{asm}");
        let run_on = |target: &Target| {
            let buffers = vec![vec![0u8; m * k * 4], vec![0u8; k * n * 4], vec![0u8; m * n * 4], f32s(&column), f32s(&[std::f32::consts::SQRT_2])];
            to_f32s(&run(&p, buffers, target, 1)[2])
        };
        let (got, want) = (run_on(avx512), run_on(avx2));
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!(
                g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan()),
                "{name}: column {} (input {}): avx512 {g:e} ({:#x}), avx2 {w:e} ({:#x})",
                i % n,
                column[i % n],
                g.to_bits(),
                w.to_bits()
            );
        }
    }
}
