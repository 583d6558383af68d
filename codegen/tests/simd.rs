//! The vectorised loops and the inline elementary functions.
//!
//! Accuracy: every function is swept densely (uniform and logarithmic
//! sweeps, random bit patterns, special values) against an `f64`
//! reference, through both the 4-lane loop and the scalar loop (an
//! in-range guard forces the scalar path), which must agree bit for bit.
//! The bounds asserted here:
//!
//! | function | bound |
//! |---|---|
//! | exp | 1 ULP |
//! | log | 1 ULP |
//! | tanh | 2 ULP |
//! | erf | 1e-7 absolute, 2 ULP |
//! | sin, cos | 1.2e-7 absolute (NaN for inf/NaN) |
//! | tan | 4 ULP for |x| ≤ 1e4 where |tan x| ≤ 1e4 |
//! | pow | 1 ULP (computed in f64), IEEE special cases exactly |
//! | float16 rounding and conversions | exact |
//!
//! Loops: maps and reductions with innermost sizes 1..=17 (and longer for
//! the 16-wide reduction), broadcasting, type conversions, copies of every
//! element size and in-place maps, for every feature level this machine
//! runs, against results computed here.

use kiln_codegen::cpu::Target;
mod common;

use common::{f32s, run, to_f32s};
use kiln_ir::kernel::*;
use kiln_ir::DataType;

// ------------------------------------------------------------ harness ----


fn input(p: &mut Program, t: DataType, len: usize) -> BufferId {
    p.add_buffer(BufferKind::Input(format!("i{}", p.buffers.len())), t, len)
}

fn output(p: &mut Program, t: DataType, len: usize) -> BufferId {
    p.add_buffer(BufferKind::Output(format!("o{}", p.buffers.len())), t, len)
}

/// An identity access; `scalar` adds a guard that always passes, which
/// keeps the kernel on the scalar path.
fn access(b: BufferId, shape: &[usize], scalar: bool) -> Access {
    let mut a = Access::identity(b, shape);
    if scalar {
        a.guard = Some(0.0);
    }
    a
}

/// Applies `build(loads)` elementwise to `inputs` (all of one length).
fn eval_map(inputs: &[&[f32]], target: &Target, scalar: bool, build: impl Fn(&mut Expr, &[ValueId]) -> ValueId) -> Vec<f32> {
    let n = inputs[0].len();
    let mut p = Program::default();
    let ids: Vec<BufferId> = inputs.iter().map(|_| input(&mut p, DataType::Float32, n)).collect();
    let o = output(&mut p, DataType::Float32, n);
    let mut expr = Expr::default();
    let loads: Vec<ValueId> = (0..inputs.len()).map(|k| expr.push(ExprNode::Load(k as u32))).collect();
    build(&mut expr, &loads);
    p.kernels.push(Kernel::Map {
        domain: vec![n],
        inputs: ids.iter().map(|&b| access(b, &[n], scalar)).collect(),
        expr,
        out: Access::identity(o, &[n]),
    });
    let mut bufs: Vec<Vec<u8>> = inputs.iter().map(|v| f32s(v)).collect();
    bufs.push(vec![0; 4 * n]);
    to_f32s(&run(&p, bufs, target, 2)[inputs.len()])
}

fn eval_unary(f: UnaryFn, xs: &[f32], target: &Target, scalar: bool) -> Vec<f32> {
    eval_map(&[xs], target, scalar, |e, l| e.push(ExprNode::Unary(f, l[0])))
}

fn eval_pow(xs: &[f32], ys: &[f32], target: &Target, scalar: bool) -> Vec<f32> {
    eval_map(&[xs, ys], target, scalar, |e, l| e.push(ExprNode::Binary(BinaryFn::Pow, l[0], l[1])))
}

/// Both paths, checked to agree bit for bit.
fn both(target: &Target, eval: impl Fn(bool) -> Vec<f32>, what: &str, xs: &[f32]) -> Vec<f32> {
    let v = eval(false);
    let s = eval(true);
    for ((a, b), x) in v.iter().zip(&s).zip(xs) {
        assert!(a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()), "{what} {target}: x = {x:e}: vector {a:e} scalar {b:e}");
    }
    v
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn bits(&mut self) -> f32 {
        f32::from_bits(self.next() as u32)
    }
    fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * ((self.next() >> 40) as f32 / (1u64 << 24) as f32)
    }
}

const SPECIAL: [f32; 20] = [
    0.0,
    -0.0,
    f32::INFINITY,
    f32::NEG_INFINITY,
    f32::NAN,
    f32::MIN_POSITIVE,
    -f32::MIN_POSITIVE,
    1e-45,
    -1e-45,
    1e-40,
    -3e-39,
    f32::MAX,
    f32::MIN,
    1.0,
    -1.0,
    0.5,
    2.0,
    -2.0,
    1e-10,
    -1e-10,
];

/// `n` points from `lo` to `hi`, uniformly.
fn linear(lo: f32, hi: f32, n: usize) -> Vec<f32> {
    (0..n).map(|i| lo + (hi - lo) * (i as f32 / (n - 1) as f32)).collect()
}

/// `n` points of each sign, logarithmically from 2^lo to 2^hi.
fn logarithmic(lo: f32, hi: f32, n: usize) -> Vec<f32> {
    linear(lo, hi, n).into_iter().flat_map(|e| [e.exp2(), -e.exp2()]).collect()
}

fn sweep(mut v: Vec<f32>, random: usize) -> Vec<f32> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    v.extend((0..random).map(|_| rng.bits()));
    v.extend(SPECIAL);
    v
}

/// The ULP of `v` rounded to f32.
fn ulp(v: f64) -> f64 {
    let a = (v as f32).abs();
    if a < f32::MIN_POSITIVE {
        2f64.powi(-149)
    } else {
        let e = ((a.to_bits() >> 23) as i32) - 127;
        2f64.powi(e.min(127) - 23)
    }
}

/// Error of `got` in ULPs of the f32 rounding of `want`: 0 for matching
/// NaNs and infinities, infinite for a NaN or infinity mismatch.
fn ulp_err(got: f32, want: f64) -> f64 {
    if want.is_nan() || got.is_nan() {
        return if want.is_nan() && got.is_nan() { 0.0 } else { f64::INFINITY };
    }
    let w = want as f32;
    if got.is_infinite() || w.is_infinite() {
        return if got == w { 0.0 } else { (got as f64 - want).abs() / ulp(f32::MAX as f64) };
    }
    (got as f64 - want).abs() / ulp(want)
}

/// The largest error of `got` over `xs` and the input it occurs at.
fn worst(xs: &[f32], got: &[f32], err: impl Fn(f32, f32) -> f64) -> (f64, f32, f32) {
    let mut w = (0.0, 0.0, 0.0);
    for (&x, &g) in xs.iter().zip(got) {
        let e = err(x, g);
        if e > w.0 || e.is_nan() {
            w = (e, x, g);
        }
    }
    w
}

fn check_ulp(f: UnaryFn, xs: &[f32], reference: impl Fn(f64) -> f64, bound: f64) {
    for target in Target::host_levels() {
        let got = both(&target, |s| eval_unary(f, xs, &target, s), &format!("{f:?}"), xs);
        let (e, x, g) = worst(xs, &got, |x, g| ulp_err(g, reference(x as f64)));
        println!("{f:?} {target}: max {e:.3} ULP at x = {x:e} (got {g:e}, want {:e})", reference(x as f64));
        assert!(e <= bound, "{f:?} {target}: {e} ULP at x = {x:e}: got {g:e}, want {:e}", reference(x as f64));
    }
}

fn check_abs(f: UnaryFn, xs: &[f32], reference: impl Fn(f64) -> f64, bound: f64) {
    for target in Target::host_levels() {
        let got = both(&target, |s| eval_unary(f, xs, &target, s), &format!("{f:?}"), xs);
        let (e, x, g) = worst(xs, &got, |x, g| {
            let w = reference(x as f64);
            if w.is_nan() || g.is_nan() {
                if w.is_nan() && g.is_nan() { 0.0 } else { f64::INFINITY }
            } else {
                (g as f64 - w).abs()
            }
        });
        println!("{f:?} {target}: max abs error {e:.3e} at x = {x:e} (got {g:e})");
        assert!(e <= bound, "{f:?} {target}: error {e:e} at x = {x:e}: got {g:e}, want {:e}", reference(x as f64));
    }
}

// --------------------------------------------------------- functions ----

#[test]
fn exp_within_1_ulp() {
    let mut xs = sweep(linear(-105.0, 90.0, 100_000), 20_000);
    xs.extend(logarithmic(-30.0, 7.0, 20_000));
    check_ulp(UnaryFn::Exp, &xs, f64::exp, 1.0);
}

#[test]
fn log_within_1_ulp() {
    let mut xs = sweep(logarithmic(-149.0, 128.0, 100_000), 20_000);
    xs.extend(linear(0.5, 2.0, 50_000));
    check_ulp(UnaryFn::Log, &xs, f64::ln, 1.0);
}

#[test]
fn tanh_within_2_ulp() {
    let mut xs = sweep(linear(-12.0, 12.0, 100_000), 20_000);
    xs.extend(logarithmic(-40.0, 6.0, 20_000));
    check_ulp(UnaryFn::Tanh, &xs, f64::tanh, 2.0);
}

#[test]
fn erf_within_1e7_absolute_and_2_ulp() {
    let mut xs = sweep(linear(-6.0, 6.0, 100_000), 20_000);
    xs.extend(logarithmic(-40.0, 3.0, 20_000));
    check_abs(UnaryFn::Erf, &xs, kiln_ir::interp::erf, 1e-7);
    check_ulp(UnaryFn::Erf, &xs, kiln_ir::interp::erf, 2.0);
}

#[test]
fn sin_cos_within_1_2e7_absolute() {
    let mut xs = linear(-10.0, 10.0, 100_000);
    xs.extend(linear(-1e5, 1e5, 100_000));
    xs.extend(logarithmic(-40.0, 16.6, 20_000));
    let mut rng = Rng(7);
    xs.extend((0..20_000).map(|_| rng.uniform(-1e5, 1e5)));
    xs.extend([0.0, -0.0, 1e-45, -1e-45, f32::MIN_POSITIVE, 1e5, -1e5, f32::MAX, f32::MIN]);
    // Beyond 1e5 (the cold path), mixed with small arguments in one vector.
    for (k, x) in logarithmic(16.5, 127.9, 5_000).into_iter().enumerate() {
        xs.push(x);
        xs.push(k as f32 * 0.001);
    }
    check_abs(UnaryFn::Sin, &xs, f64::sin, 1.2e-7);
    check_abs(UnaryFn::Cos, &xs, f64::cos, 1.2e-7);
    // Odd: sin(-0) = -0; inf and NaN give NaN.
    for target in Target::host_levels() {
        let xs = [-0.0, f32::INFINITY, f32::NEG_INFINITY, f32::NAN, 0.0];
        let s = both(&target, |s| eval_unary(UnaryFn::Sin, &xs, &target, s), "sin", &xs);
        assert_eq!(s[0].to_bits(), (-0.0f32).to_bits());
        assert!(s[1].is_nan() && s[2].is_nan() && s[3].is_nan());
        let c = both(&target, |s| eval_unary(UnaryFn::Cos, &xs, &target, s), "cos", &xs);
        assert_eq!(c[0], 1.0);
        assert!(c[1].is_nan() && c[2].is_nan() && c[3].is_nan());
    }
}

#[test]
fn tan_within_4_ulp() {
    let xs: Vec<f32> = linear(-1e4, 1e4, 100_000)
        .into_iter()
        .chain(linear(-3.0, 3.0, 50_000))
        .chain(logarithmic(-40.0, 0.0, 10_000))
        .filter(|&x| (x as f64).tan().abs() <= 1e4)
        .collect();
    check_ulp(UnaryFn::Tan, &xs, f64::tan, 4.0);
}

#[test]
fn pow_within_1_ulp_and_special_cases() {
    let mut xs = Vec::new();
    let mut ys = Vec::new();
    let mut rng = Rng(11);
    for _ in 0..100_000 {
        // Bases over the whole range, exponents that keep many results finite.
        let x = rng.uniform(-126.0, 127.0).exp2();
        let y = rng.uniform(-40.0, 40.0);
        xs.push(x);
        ys.push(y);
    }
    for _ in 0..50_000 {
        let x = rng.uniform(0.0, 4.0);
        xs.push(x);
        ys.push(rng.uniform(-80.0, 80.0));
    }
    for _ in 0..50_000 {
        // Negative bases with integer exponents.
        xs.push(-rng.uniform(0.01, 30.0));
        ys.push((rng.next() % 41) as f32 - 20.0);
    }
    for _ in 0..20_000 {
        xs.push(rng.bits());
        ys.push(rng.bits());
    }
    let special = [
        0.0f32, -0.0, 1.0, -1.0, 0.5, -0.5, 2.0, -2.0, 3.0, -3.0, 2.5, -2.5, f32::INFINITY, f32::NEG_INFINITY, f32::NAN, 1e-45,
        -1e-45, f32::MAX, 16777216.0, 16777217.0, -16777216.0, 1e30, -1e30,
    ];
    for &x in &special {
        for &y in &special {
            xs.push(x);
            ys.push(y);
        }
    }
    for target in Target::host_levels() {
        let got = {
            let v = eval_pow(&xs, &ys, &target, false);
            let s = eval_pow(&xs, &ys, &target, true);
            for k in 0..xs.len() {
                assert!(
                    v[k].to_bits() == s[k].to_bits() || (v[k].is_nan() && s[k].is_nan()),
                    "pow {target}: ({:e}, {:e}): vector {:e} scalar {:e}",
                    xs[k],
                    ys[k],
                    v[k],
                    s[k]
                );
            }
            v
        };
        let mut w = (0.0, 0);
        for k in 0..xs.len() {
            let want = (xs[k] as f64).powf(ys[k] as f64);
            let e = ulp_err(got[k], want);
            if e > w.0 {
                w = (e, k);
            }
            // Zeros and infinities with the right sign.
            if want == 0.0 || want.is_infinite() {
                assert_eq!(got[k].to_bits(), (want as f32).to_bits(), "pow({:e}, {:e}) {target}", xs[k], ys[k]);
            }
        }
        let k = w.1;
        println!("pow {target}: max {:.3} ULP at ({:e}, {:e})", w.0, xs[k], ys[k]);
        assert!(w.0 <= 1.0, "pow({:e}, {:e}) {target}: {} ULP, got {:e}", xs[k], ys[k], w.0, got[k]);
    }
}

#[test]
fn pow_by_constants() {
    let xs = sweep(logarithmic(-70.0, 70.0, 2000), 2000);
    for target in Target::host_levels() {
        for c in [0.0f32, 1.0, 2.0, 3.0, -1.0, 0.5, 1.5, -2.0] {
            let got = both(
                &target,
                |s| {
                    eval_map(&[&xs], &target, s, |e, l| {
                        let y = e.push(ExprNode::Const(c));
                        e.push(ExprNode::Binary(BinaryFn::Pow, l[0], y))
                    })
                },
                "pow const",
                &xs,
            );
            for (&x, &g) in xs.iter().zip(&got) {
                let want = (x as f64).powf(c as f64);
                let e = ulp_err(g, want);
                assert!(e <= 2.0, "pow({x:e}, {c}) {target}: got {g:e} want {want:e}");
                if want == 0.0 || want.is_infinite() {
                    assert_eq!(g.to_bits(), (want as f32).to_bits(), "pow({x:e}, {c}) {target}");
                }
            }
        }
    }
}

/// sigmoid as the lowering composes it: with t = exp(-|x|), `1 / (1 + t)`
/// for x >= 0 and `t / (1 + t)` for x < 0, so subnormal results keep
/// their precision. Within 3 ULP everywhere (WPT: 34).
#[test]
fn sigmoid_composition() {
    let xs = sweep(linear(-110.0, 110.0, 100_000), 10_000);
    for target in Target::host_levels() {
        let got = both(
            &target,
            |s| {
                eval_map(&[&xs], &target, s, |e, l| {
                    let one = e.push(ExprNode::Const(1.0));
                    let a = e.push(ExprNode::Unary(UnaryFn::Abs, l[0]));
                    let na = e.push(ExprNode::Unary(UnaryFn::Neg, a));
                    let t = e.push(ExprNode::Unary(UnaryFn::Exp, na));
                    let d = e.push(ExprNode::Binary(BinaryFn::Add, one, t));
                    let zero = e.push(ExprNode::Const(0.0));
                    let neg = e.push(ExprNode::Binary(BinaryFn::Lesser, l[0], zero));
                    let num = e.push(ExprNode::Select(neg, t, one));
                    e.push(ExprNode::Binary(BinaryFn::Div, num, d))
                })
            },
            "sigmoid",
            &xs,
        );
        let (e, x, _) = worst(&xs, &got, |x, g| {
            let x = x as f64;
            let want = if x >= 0.0 { 1.0 / (1.0 + (-x).exp()) } else { x.exp() / (1.0 + x.exp()) };
            ulp_err(g, want)
        });
        println!("sigmoid {target}: max {e:.3} ULP at {x:e}");
        assert!(e <= 3.0, "sigmoid {target}: {e} ULP at {x:e}");
    }
}

/// Selects on comparisons use the comparison's mask; selects on other
/// values test `!= 0` (NaN counts as true). relu as the lowering writes
/// it (`x < 0 ? 0 : x`) lets NaN and -0 through.
#[test]
fn selects_on_comparisons_and_values() {
    let xs: Vec<f32> = SPECIAL.iter().cloned().chain((0..40).map(|i| i as f32 * 0.37 - 7.0)).collect();
    let cs: Vec<f32> = xs.iter().enumerate().map(|(i, _)| [0.0, -0.0, 1.0, f32::NAN, -2.0][i % 5]).collect();
    for target in Target::host_levels() {
        let relu = both(
            &target,
            |s| {
                eval_map(&[&xs], &target, s, |e, l| {
                    let zero = e.push(ExprNode::Const(0.0));
                    let neg = e.push(ExprNode::Binary(BinaryFn::Lesser, l[0], zero));
                    e.push(ExprNode::Select(neg, zero, l[0]))
                })
            },
            "relu",
            &xs,
        );
        for (&x, &g) in xs.iter().zip(&relu) {
            let want = if x < 0.0 { 0.0 } else { x };
            assert!(g.to_bits() == want.to_bits() || (g.is_nan() && want.is_nan()), "relu({x:e}) {target}: {g:e}");
        }
        let sel = eval_map(&[&xs, &cs], &target, false, |e, l| e.push(ExprNode::Select(l[1], l[0], l[1])));
        let scalar = eval_map(&[&xs, &cs], &target, true, |e, l| e.push(ExprNode::Select(l[1], l[0], l[1])));
        for k in 0..xs.len() {
            let want = if cs[k] != 0.0 { xs[k] } else { cs[k] };
            for g in [sel[k], scalar[k]] {
                assert!(g.to_bits() == want.to_bits() || (g.is_nan() && want.is_nan()), "select({}, {}) {target}: {g:e}", cs[k], xs[k]);
            }
        }
    }
}

/// gelu's upper branch, `0.5 x (1 + erf(x / √2))`, where it does not
/// cancel (x ≥ -1.5; below, the lowering switches to an erfc form).
#[test]
fn gelu_composition() {
    fn gelu(x: f64) -> f64 {
        // The interpreter's reference, through erf: accurate for x > -1.5.
        0.5 * x * (1.0 + kiln_ir::interp::erf(x * std::f64::consts::FRAC_1_SQRT_2))
    }
    let xs = linear(-1.5, 10.0, 100_000);
    for target in Target::host_levels() {
        let got = both(
            &target,
            |s| {
                eval_map(&[&xs], &target, s, |e, l| {
                    let r = e.push(ExprNode::Const(std::f32::consts::FRAC_1_SQRT_2));
                    let y = e.push(ExprNode::Binary(BinaryFn::Mul, l[0], r));
                    let y = e.push(ExprNode::Unary(UnaryFn::Erf, y));
                    let one = e.push(ExprNode::Const(1.0));
                    let y = e.push(ExprNode::Binary(BinaryFn::Add, one, y));
                    let h = e.push(ExprNode::Const(0.5));
                    let hx = e.push(ExprNode::Binary(BinaryFn::Mul, h, l[0]));
                    e.push(ExprNode::Binary(BinaryFn::Mul, hx, y))
                })
            },
            "gelu",
            &xs,
        );
        let (e, x, _) = worst(&xs, &got, |x, g| ulp_err(g, gelu(x as f64)));
        println!("gelu {target}: max {e:.3} ULP at {x:e} (x >= -1.5)");
        assert!(e <= 18.0, "gelu {target}: {e} ULP at {x:e}");
    }
}

#[test]
fn float16_rounding_and_conversions_are_exact() {
    let mut xs = sweep(logarithmic(-30.0, 17.0, 50_000), 50_000);
    // Every float16 value and the midpoints between neighbours.
    for h in 0..=u16::MAX {
        let v = half::f16::from_bits(h).to_f32();
        xs.push(v);
        let next = f32::from_bits(v.to_bits() + 1);
        xs.push((v + next) * 0.5);
        xs.push(f32::from_bits(v.to_bits() + (1 << 12)));
        xs.push(f32::from_bits(v.to_bits() + (1 << 12) - 1));
        xs.push(f32::from_bits(v.to_bits() + (1 << 12) + 1));
    }
    for target in Target::host_levels() {
        let got = both(&target, |s| eval_unary(UnaryFn::RoundF16, &xs, &target, s), "round_f16", &xs);
        for (&x, &g) in xs.iter().zip(&got) {
            let want = half::f16::from_f32(x).to_f32();
            assert!(g.to_bits() == want.to_bits() || (g.is_nan() && want.is_nan()), "round_f16({x:e}) {target}: {g:e} want {want:e}");
        }
        // f32 -> f16 stores and f16 -> f32 loads, both paths.
        for scalar in [false, true] {
            let n = xs.len();
            let mut p = Program::default();
            let a = input(&mut p, DataType::Float32, n);
            let h = output(&mut p, DataType::Float16, n);
            let b = output(&mut p, DataType::Float32, n);
            p.kernels.push(Kernel::Map { domain: vec![n], inputs: vec![access(a, &[n], scalar)], expr: Expr::load(0), out: Access::identity(h, &[n]) });
            p.kernels.push(Kernel::Map { domain: vec![n], inputs: vec![access(h, &[n], scalar)], expr: Expr::load(0), out: Access::identity(b, &[n]) });
            let out = run(&p, vec![f32s(&xs), vec![0; 2 * n], vec![0; 4 * n]], &target, 3);
            for (k, &x) in xs.iter().enumerate() {
                let want = half::f16::from_f32(x);
                let got = u16::from_le_bytes([out[1][2 * k], out[1][2 * k + 1]]);
                assert_eq!(got, want.to_bits(), "f16 store of {x:e} {target} scalar={scalar}");
                let back = f32::from_le_bytes(out[2][4 * k..4 * k + 4].try_into().unwrap());
                assert_eq!(back.to_bits(), want.to_f32().to_bits(), "f16 load of {want} {target} scalar={scalar}");
            }
        }
    }
}

// ------------------------------------------------------------- loops ----

/// `out[i, j] = a[i, j] * b[j] + c` with a scalar `c`: broadcasting along
/// both axes, with every innermost size 1..=17.
#[test]
fn map_tails_and_broadcasting() {
    for target in Target::host_levels() {
        for n in 1..=17usize {
            let rows = 3;
            let mut p = Program::default();
            let a = input(&mut p, DataType::Float32, rows * n);
            let b = input(&mut p, DataType::Float32, n);
            let c = input(&mut p, DataType::Float32, 1);
            let o = output(&mut p, DataType::Float32, rows * n);
            let b_acc = Access { buffer: b, shape: vec![n], base: vec![0], coef: vec![vec![0, 1]], guard: None };
            let c_acc = Access { buffer: c, shape: vec![1], base: vec![0], coef: vec![vec![0, 0]], guard: None };
            let mut expr = Expr::default();
            let x = expr.push(ExprNode::Load(0));
            let y = expr.push(ExprNode::Load(1));
            let z = expr.push(ExprNode::Load(2));
            let m = expr.push(ExprNode::Binary(BinaryFn::Mul, x, y));
            let s = expr.push(ExprNode::Binary(BinaryFn::Add, m, z));
            let e = expr.push(ExprNode::Unary(UnaryFn::Exp, s));
            let g = expr.push(ExprNode::Binary(BinaryFn::Greater, e, x));
            let sel = expr.push(ExprNode::Select(g, e, y));
            expr.push(ExprNode::Binary(BinaryFn::Max, sel, z));
            p.kernels.push(Kernel::Map {
                domain: vec![rows, n],
                inputs: vec![Access::identity(a, &[rows, n]), b_acc, c_acc],
                expr,
                out: Access::identity(o, &[rows, n]),
            });
            let av: Vec<f32> = (0..rows * n).map(|i| (i as f32 * 0.37).sin() * 3.0).collect();
            let bv: Vec<f32> = (0..n).map(|i| 1.0 - i as f32 * 0.25).collect();
            let cv = [-0.5f32];
            for tasks in [1, 3] {
                let out = run(&p, vec![f32s(&av), f32s(&bv), f32s(&cv), vec![0; 4 * rows * n]], &target, tasks);
                let got = to_f32s(&out[3]);
                // The same kernel through the scalar path: guard input 0.
                let mut q = p.clone();
                if let Kernel::Map { inputs, .. } = &mut q.kernels[0] {
                    inputs[0].guard = Some(0.0);
                }
                let out = run(&q, vec![f32s(&av), f32s(&bv), f32s(&cv), vec![0; 4 * rows * n]], &target, tasks);
                assert_eq!(got, to_f32s(&out[3]), "n = {n} {target}");
                for i in 0..rows {
                    for j in 0..n {
                        let x = av[i * n + j];
                        let s = x * bv[j] + cv[0];
                        let e = s.exp();
                        let sel = if e > x { e } else { bv[j] };
                        let want = sel.max(cv[0]);
                        let g = got[i * n + j];
                        assert!(ulp_err(g, want as f64) <= 1.0, "n = {n}, ({i}, {j}) {target}: {g} want {want}");
                    }
                }
            }
        }
    }
}

/// Conversions in lanes: i32, u32 and f16 inputs, i32 and u32 outputs.
#[test]
fn map_lane_type_conversions() {
    for target in Target::host_levels() {
        for n in 1..=17usize {
            let mut p = Program::default();
            let a = input(&mut p, DataType::Int32, n);
            let b = input(&mut p, DataType::Uint32, n);
            let c = input(&mut p, DataType::Float16, n);
            let oi = output(&mut p, DataType::Int32, n);
            let ou = output(&mut p, DataType::Uint32, n);
            let mut expr = Expr::default();
            let x = expr.push(ExprNode::Load(0));
            let y = expr.push(ExprNode::Load(1));
            let z = expr.push(ExprNode::Load(2));
            let s = expr.push(ExprNode::Binary(BinaryFn::Add, x, y));
            expr.push(ExprNode::Binary(BinaryFn::Mul, s, z));
            let inputs = vec![Access::identity(a, &[n]), Access::identity(b, &[n]), Access::identity(c, &[n])];
            for o in [oi, ou] {
                p.kernels.push(Kernel::Map { domain: vec![n], inputs: inputs.clone(), expr: expr.clone(), out: Access::identity(o, &[n]) });
            }
            let av: Vec<i32> = (0..n as i32).map(|i| i * 1_000_003 - 7_000_000).collect();
            let bv: Vec<u32> = (0..n as u32).map(|i| i.wrapping_mul(2_654_435_761)).collect();
            let cv: Vec<half::f16> = (0..n).map(|i| half::f16::from_f32(i as f32 * -0.75 + 2.0)).collect();
            let out = run(
                &p,
                vec![
                    av.iter().flat_map(|v| v.to_le_bytes()).collect(),
                    bv.iter().flat_map(|v| v.to_le_bytes()).collect(),
                    cv.iter().flat_map(|v| v.to_le_bytes()).collect(),
                    vec![0; 4 * n],
                    vec![0; 4 * n],
                ],
                &target,
                2,
            );
            for k in 0..n {
                let v = (av[k] as f32 + bv[k] as f32) * cv[k].to_f32();
                let gi = i32::from_le_bytes(out[3][4 * k..4 * k + 4].try_into().unwrap());
                let gu = u32::from_le_bytes(out[4][4 * k..4 * k + 4].try_into().unwrap());
                assert_eq!(gi, v as i32, "i32 n = {n}, k = {k} {target}: {v}");
                assert_eq!(gu, v as u32, "u32 n = {n}, k = {k} {target}: {v}");
            }
        }
    }
}

/// Copies of every element size: contiguous (merged into one axis),
/// broadcast, transposed (scalar) and f32 -> i8 conversion (scalar).
#[test]
fn copies_of_every_element_size() {
    for target in Target::host_levels() {
        for t in [DataType::Int8, DataType::Float16, DataType::Int32, DataType::Int64] {
            let size = t.byte_size();
            for n in 1..=17usize {
                for case in 0..3 {
                    let rows = 3;
                    let mut p = Program::default();
                    let a = input(&mut p, t, rows * n);
                    let o = output(&mut p, t, rows * n);
                    let src = match case {
                        0 => Access::identity(a, &[rows, n]),
                        // Broadcast: every row is row 1.
                        1 => Access { buffer: a, shape: vec![rows, n], base: vec![1, 0], coef: vec![vec![0, 0], vec![0, 1]], guard: None },
                        // Every element of a row is a[i, 2].
                        _ => Access { buffer: a, shape: vec![rows, n], base: vec![0, (n - 1).min(2) as isize], coef: vec![vec![1, 0], vec![0, 0]], guard: None },
                    };
                    p.kernels.push(Kernel::Map { domain: vec![rows, n], inputs: vec![src], expr: Expr::load(0), out: Access::identity(o, &[rows, n]) });
                    let data: Vec<u8> = (0..rows * n * size).map(|i| (i * 7 + 3) as u8).collect();
                    let out = run(&p, vec![data.clone(), vec![0; rows * n * size]], &target, 3);
                    for i in 0..rows {
                        for j in 0..n {
                            let (si, sj) = match case {
                                0 => (i, j),
                                1 => (1, j),
                                _ => (i, (n - 1).min(2)),
                            };
                            let s = (si * n + sj) * size;
                            let d = (i * n + j) * size;
                            assert_eq!(&out[1][d..d + size], &data[s..s + size], "{t} n = {n} case {case} ({i}, {j}) {target}");
                        }
                    }
                }
                // A transpose [n, 3] -> [3, n] stays scalar and correct.
                let mut p = Program::default();
                let a = input(&mut p, t, 3 * n);
                let o = output(&mut p, t, 3 * n);
                let tr = Access { buffer: a, shape: vec![n, 3], base: vec![0, 0], coef: vec![vec![0, 1], vec![1, 0]], guard: None };
                p.kernels.push(Kernel::Map { domain: vec![3, n], inputs: vec![tr], expr: Expr::load(0), out: Access::identity(o, &[3, n]) });
                let data: Vec<u8> = (0..3 * n * size).map(|i| (i * 5 + 1) as u8).collect();
                let out = run(&p, vec![data.clone(), vec![0; 3 * n * size]], &target, 2);
                for i in 0..3 {
                    for j in 0..n {
                        let s = (j * 3 + i) * size;
                        let d = (i * n + j) * size;
                        assert_eq!(&out[1][d..d + size], &data[s..s + size], "{t} transpose n = {n} {target}");
                    }
                }
            }
        }
    }
}

/// An elementwise map that writes over its own input.
#[test]
fn in_place_map() {
    for target in Target::host_levels() {
        for n in 1..=17usize {
            let mut p = Program::default();
            let a = output(&mut p, DataType::Float32, n);
            let mut expr = Expr::default();
            let x = expr.push(ExprNode::Load(0));
            let y = expr.push(ExprNode::Binary(BinaryFn::Mul, x, x));
            expr.push(ExprNode::Binary(BinaryFn::Add, y, x));
            p.kernels.push(Kernel::Map { domain: vec![n], inputs: vec![Access::identity(a, &[n])], expr, out: Access::identity(a, &[n]) });
            // And a shifted copy onto itself, which must not be vectorised
            // into a different order: out[i] = a[i + 1] for i < n - 1.
            if n > 1 {
                let shifted = Access { buffer: a, shape: vec![n], base: vec![1], coef: vec![vec![1]], guard: None };
                p.kernels.push(Kernel::Map { domain: vec![n - 1], inputs: vec![shifted], expr: Expr::load(0), out: Access::identity(a, &[n - 1]) });
            }
            let v: Vec<f32> = (0..n).map(|i| i as f32 - 3.0).collect();
            let out = to_f32s(&run(&p, vec![f32s(&v)], &target, 1)[0]);
            let mut want: Vec<f32> = v.iter().map(|x| x * x + x).collect();
            for i in 0..n.saturating_sub(1) {
                want[i] = want[i + 1];
            }
            assert_eq!(out, want, "n = {n} {target}");
        }
    }
}

/// The in-place Maps memory planning makes: scratch buffers at one arena
/// offset, each Map writing over an input that dies there and that it reads
/// element for element. Vector loops with their tails (a size-1 axis that
/// only the input walks, as in a depthwise convolution's bias Map), a cast
/// between types of one size, a byte copy, and the scalar loop (forced by
/// a guarded input), for 1 to 3 tasks run in either order: a task must read
/// only the elements it writes.
#[test]
fn maps_in_place_over_planned_arena_memory() {
    let scratch = |p: &mut Program, t: DataType, len: usize| p.add_buffer(BufferKind::Scratch { offset: 0 }, t, len);
    for target in Target::host_levels() {
        for n in [1usize, 3, 4, 5, 15, 16, 17, 37] {
            let len = 2 * n;
            let mut p = Program::default();
            let x = input(&mut p, DataType::Float32, len);
            let bias = input(&mut p, DataType::Float32, 2);
            let a = scratch(&mut p, DataType::Float32, len);
            let b = scratch(&mut p, DataType::Float32, len);
            let c = scratch(&mut p, DataType::Int32, len);
            let d = scratch(&mut p, DataType::Int32, len);
            let y = output(&mut p, DataType::Int32, len);
            p.arena_bytes = len * 4;
            let flat = |buffer| Access::identity(buffer, &[len]);
            let copy = |from, to| Kernel::Map { domain: vec![len], inputs: vec![flat(from)], expr: Expr::load(0), out: flat(to) };
            p.kernels.push(copy(x, a));
            // b[0, c, i] = (a[c, i] + bias[c]) * a[c, i] over [1, 2, n].
            let mut e = Expr::default();
            let (v0, v1) = (e.push(ExprNode::Load(0)), e.push(ExprNode::Load(1)));
            let v2 = e.push(ExprNode::Load(2));
            let s = e.push(ExprNode::Binary(BinaryFn::Add, v0, v1));
            e.push(ExprNode::Binary(BinaryFn::Mul, s, v2));
            let per_channel = |buffer, guard| Access { buffer, shape: vec![2], base: vec![0], coef: vec![vec![0, 1, 0]], guard };
            let b_out = Access { buffer: b, shape: vec![2, n], base: vec![0, 0], coef: vec![vec![0, 1, 0], vec![0, 0, 1]], guard: None };
            let bias_map = Kernel::Map {
                domain: vec![1, 2, n],
                inputs: vec![Access::identity(a, &[1, 2, n]), per_channel(bias, None), Access::identity(a, &[1, 2, n])],
                expr: e,
                out: b_out,
            };
            p.kernels.push(bias_map.clone());
            // c[c, i] = floor(b[c, i]) + bias[c] as i32, bias guarded (never
            // outside): the scalar loop.
            let mut e = Expr::default();
            let (v0, v1) = (e.push(ExprNode::Load(0)), e.push(ExprNode::Load(1)));
            let f = e.push(ExprNode::Unary(UnaryFn::Floor, v0));
            e.push(ExprNode::Binary(BinaryFn::Add, f, v1));
            let cast_domain = vec![2, n];
            let per_row = Access { buffer: bias, shape: vec![2], base: vec![0], coef: vec![vec![1, 0]], guard: Some(0.0) };
            p.kernels.push(Kernel::Map {
                domain: cast_domain.clone(),
                inputs: vec![Access::identity(b, &cast_domain), per_row],
                expr: e,
                out: Access::identity(c, &cast_domain),
            });
            // d = c, a byte copy in place (16-byte vectors), then y = d.
            p.kernels.push(copy(c, d));
            p.kernels.push(copy(d, y));
            p.validate().unwrap();

            let xs: Vec<f32> = (0..len).map(|i| i as f32 * 0.37 - 3.1).collect();
            let bs = [0.5f32, -1.25];
            let want: Vec<i32> = (0..len)
                .map(|i| {
                    let ch = i / n;
                    let v = (xs[i] + bs[ch]) * xs[i];
                    (v.floor() + bs[ch]) as i32
                })
                .collect();
            for tasks in 1..=3u64 {
                for reverse in [false, true] {
                    let buffers = vec![f32s(&xs), f32s(&bs), vec![], vec![], vec![], vec![], vec![0; len * 4]];
                    let out = common::run_in_arena(&p, buffers, &target, tasks, reverse);
                    let got: Vec<i32> = out[6].chunks_exact(4).map(|c| i32::from_le_bytes(c.try_into().unwrap())).collect();
                    assert_eq!(got, want, "n = {n}, {tasks} tasks, reverse {reverse}, {target}");
                }
            }
            // The bias Map stays a vector loop although it reads memory it writes.
            if n >= 4 {
                let mut q = p.clone();
                q.kernels = vec![bias_map];
                let clif = kiln_codegen::cpu::listing(&q, &target, kiln_codegen::cpu::Listing::Clif).unwrap();
                // (Legacy SSE loads the lanes as i32x4 and reinterprets them.)
                let vector_load = clif.contains("load.f32x4 notrap") || clif.contains("load.i32x4 notrap");
                assert!(vector_load, "{target} n = {n}:\n{clif}");
            }
        }
    }
}

fn reduce_program(domain: Vec<usize>, reduced: usize, input_access: Access, combine: Combine, finish: Expr, out_len: usize, elem: Expr) -> Program {
    let mut p = Program::default();
    let len = input_access.shape.iter().product();
    let a = input(&mut p, DataType::Float32, len);
    assert_eq!(a, input_access.buffer);
    let o = output(&mut p, DataType::Float32, out_len);
    let kept: Vec<usize> = domain[..domain.len() - reduced].to_vec();
    p.kernels.push(Kernel::Reduce {
        domain,
        reduced,
        inputs: vec![input_access],
        element: elem,
        combine,
        finish,
        finish_inputs: vec![],
        out: Access::identity(o, &kept),
    });
    p
}

fn mean_finish() -> Expr {
    let mut f = Expr::default();
    let a = f.push(ExprNode::Acc);
    let c = f.push(ExprNode::Count);
    f.push(ExprNode::Binary(BinaryFn::Div, a, c));
    f
}

fn exp_element() -> Expr {
    let mut e = Expr::default();
    let x = e.push(ExprNode::Load(0));
    e.push(ExprNode::Unary(UnaryFn::Exp, x));
    e
}

/// Reductions over the innermost (contiguous) axes: sum, mean, product,
/// max and min of rows of every length 1..=40, and over two merged axes.
#[test]
fn reduce_over_inner_axes() {
    for target in Target::host_levels() {
        for n in 1..=40usize {
            let rows = 3;
            let v: Vec<f32> = (0..rows * n).map(|i| ((i * 37 % 23) as f32 - 11.0) * 0.125).collect();
            for (combine, finish) in [
                (Combine::Sum, Expr::acc()),
                (Combine::Sum, mean_finish()),
                (Combine::Product, Expr::acc()),
                (Combine::Max, Expr::acc()),
                (Combine::Min, Expr::acc()),
            ] {
                for elem in [Expr::load(0), exp_element()] {
                    let p = reduce_program(vec![rows, n], 1, Access::identity(BufferId(0), &[rows, n]), combine, finish.clone(), rows, elem.clone());
                    for tasks in [1, 3] {
                        let got = to_f32s(&run(&p, vec![f32s(&v), vec![0; 4 * rows]], &target, tasks)[1]);
                        for i in 0..rows {
                            let row: Vec<f64> = v[i * n..(i + 1) * n]
                                .iter()
                                .map(|&x| if elem.nodes.len() > 1 { (x as f64).exp() } else { x as f64 })
                                .collect();
                            let want = match combine {
                                Combine::Sum => row.iter().sum::<f64>(),
                                Combine::Product => row.iter().product(),
                                Combine::Max => row.iter().cloned().fold(f64::NEG_INFINITY, f64::max),
                                Combine::Min => row.iter().cloned().fold(f64::INFINITY, f64::min),
                            };
                            let want = if finish.nodes.len() > 1 { want / n as f64 } else { want };
                            let tol = 1e-5 * row.iter().map(|x| x.abs()).sum::<f64>().max(1.0);
                            assert!(
                                (got[i] as f64 - want).abs() <= tol,
                                "{combine:?} n = {n} row {i} {target} tasks {tasks}: got {} want {want}",
                                got[i]
                            );
                        }
                    }
                }
            }
        }
        // A full reduction over [5, 7] (one task) and NaN propagation in max.
        let mut v: Vec<f32> = (0..35).map(|i| i as f32).collect();
        let p = reduce_program(vec![5, 7], 2, Access::identity(BufferId(0), &[5, 7]), Combine::Sum, mean_finish(), 1, Expr::load(0));
        let got = to_f32s(&run(&p, vec![f32s(&v), vec![0; 4]], &target, 3)[1]);
        assert_eq!(got, vec![17.0], "{target}");
        v[20] = f32::NAN;
        let p = reduce_program(vec![5, 7], 2, Access::identity(BufferId(0), &[5, 7]), Combine::Max, Expr::acc(), 1, Expr::load(0));
        let got = to_f32s(&run(&p, vec![f32s(&v), vec![0; 4]], &target, 3)[1]);
        assert!(got[0].is_nan(), "{target}");
    }
}

/// Reductions over an outer axis with a contiguous kept axis (a sum over
/// the rows of [r, c] for every c), which vectorise across outputs and
/// keep the scalar order exactly; and over a middle axis of [2, r, c].
#[test]
fn reduce_over_outer_axes() {
    for target in Target::host_levels() {
        for c in 1..=17usize {
            for r in [1usize, 2, 5] {
                let v: Vec<f32> = (0..2 * r * c).map(|i| ((i * 29 % 31) as f32 - 15.0) * 0.3).collect();
                // domain [c, r], reduced 1: input [r, c] at (i1, i0).
                let acc = Access { buffer: BufferId(0), shape: vec![r, c], base: vec![0, 0], coef: vec![vec![0, 1], vec![1, 0]], guard: None };
                for combine in [Combine::Sum, Combine::Max] {
                    let p = reduce_program(vec![c, r], 1, acc.clone(), combine, mean_finish(), c, Expr::load(0));
                    let got = to_f32s(&run(&p, vec![f32s(&v[..r * c]), vec![0; 4 * c]], &target, 3)[1]);
                    for j in 0..c {
                        let mut a = combine.identity();
                        for i in 0..r {
                            let x = v[i * c + j];
                            a = match combine {
                                Combine::Sum => a + x,
                                _ => a.max(x),
                            };
                        }
                        assert_eq!(got[j], a / r as f32, "{combine:?} c = {c} r = {r} col {j} {target}");
                    }
                }
                // domain [2, c, r] over [2, r, c]: a middle-axis reduction.
                let acc = Access {
                    buffer: BufferId(0),
                    shape: vec![2, r, c],
                    base: vec![0, 0, 0],
                    coef: vec![vec![1, 0, 0], vec![0, 0, 1], vec![0, 1, 0]],
                    guard: None,
                };
                let p = reduce_program(vec![2, c, r], 1, acc, Combine::Sum, Expr::acc(), 2 * c, exp_element());
                let got = to_f32s(&run(&p, vec![f32s(&v), vec![0; 8 * c]], &target, 2)[1]);
                for b in 0..2 {
                    for j in 0..c {
                        let want: f64 = (0..r).map(|i| (v[b * r * c + i * c + j] as f64).exp()).sum();
                        let g = got[b * c + j] as f64;
                        assert!((g - want).abs() <= 1e-6 * want, "middle c = {c} r = {r} ({b}, {j}) {target}: {g} want {want}");
                    }
                }
            }
        }
    }
}

/// `max`/`min` with a constant operand (relu, clamp) take a shorter path;
/// the results must still be those of JavaScript's `Math.max`/`Math.min`,
/// NaN and the sign of zero included.
#[test]
fn min_max_with_constants_keep_nan_and_zero_signs() {
    fn js_max(a: f32, b: f32) -> f32 {
        if a.is_nan() || b.is_nan() {
            f32::NAN
        } else if a == b {
            if a.is_sign_negative() { b } else { a }
        } else {
            a.max(b)
        }
    }
    fn js_min(a: f32, b: f32) -> f32 {
        if a.is_nan() || b.is_nan() {
            f32::NAN
        } else if a == b {
            if a.is_sign_negative() { a } else { b }
        } else {
            a.min(b)
        }
    }
    let mut xs: Vec<f32> = SPECIAL.to_vec();
    xs.extend([6.0, -6.0, 5.9999995, 6.0000005, -1.0, 3.0]);
    for target in Target::host_levels() {
        for c in [0.0f32, -0.0, 6.0, -1.0, f32::INFINITY, f32::NEG_INFINITY] {
            for (f, reference) in [(BinaryFn::Max, js_max as fn(f32, f32) -> f32), (BinaryFn::Min, js_min)] {
                for const_first in [false, true] {
                    let got = both(
                        &target,
                        |s| {
                            eval_map(&[&xs], &target, s, |e, l| {
                                let k = e.push(ExprNode::Const(c));
                                if const_first {
                                    e.push(ExprNode::Binary(f, k, l[0]))
                                } else {
                                    e.push(ExprNode::Binary(f, l[0], k))
                                }
                            })
                        },
                        "min/max",
                        &xs,
                    );
                    for (&x, &g) in xs.iter().zip(&got) {
                        let want = if const_first { reference(c, x) } else { reference(x, c) };
                        assert!(
                            g.to_bits() == want.to_bits() || (g.is_nan() && want.is_nan()),
                            "{f:?}({x:e}, {c:e}) const_first={const_first} {target}: {g:e} want {want:e}"
                        );
                    }
                }
            }
        }
    }
}

/// Inputs that cannot be vector loads (transposed, or of a type without
/// lane conversions) are gathered into lanes; outputs of such types are
/// stored lane by lane. Same results as the scalar path, bit for bit.
#[test]
fn gathered_inputs_and_scattered_outputs() {
    for target in Target::host_levels() {
        for n in 1..=17usize {
            for (ti, to) in [(DataType::Float32, DataType::Float32), (DataType::Int8, DataType::Float32), (DataType::Float32, DataType::Uint8), (DataType::Int64, DataType::Int64)] {
                let rows = 3;
                let mut p = Program::default();
                let a = input(&mut p, ti, rows * n); // [n, rows], read transposed
                let b = input(&mut p, DataType::Int8, rows * n); // [rows, n]
                let o = output(&mut p, to, rows * n);
                let tr = Access { buffer: a, shape: vec![n, rows], base: vec![0, 0], coef: vec![vec![0, 1], vec![1, 0]], guard: None };
                let mut expr = Expr::default();
                let x = expr.push(ExprNode::Load(0));
                let y = expr.push(ExprNode::Load(1));
                let e = expr.push(ExprNode::Unary(UnaryFn::Tanh, x));
                let k = expr.push(ExprNode::Const(20.0));
                let e = expr.push(ExprNode::Binary(BinaryFn::Mul, e, k));
                expr.push(ExprNode::Binary(BinaryFn::Add, e, y));
                p.kernels.push(Kernel::Map {
                    domain: vec![rows, n],
                    inputs: vec![tr, Access::identity(b, &[rows, n])],
                    expr,
                    out: Access::identity(o, &[rows, n]),
                });
                let av: Vec<u8> = (0..rows * n * ti.byte_size()).map(|i| (i * 13 + 5) as u8 % 7).collect();
                let bv: Vec<u8> = (0..rows * n).map(|i| (i * 31 + 1) as u8).collect();
                let bufs = vec![av.clone(), bv.clone(), vec![0; rows * n * to.byte_size()]];
                let vector = run(&p, bufs.clone(), &target, 2);
                let mut q = p.clone();
                if let Kernel::Map { inputs, .. } = &mut q.kernels[0] {
                    inputs[1].guard = Some(0.0);
                }
                let scalar = run(&q, bufs, &target, 2);
                assert_eq!(vector[2], scalar[2], "{ti} -> {to} n = {n} {target}");
                if ti == DataType::Float32 && to == DataType::Float32 {
                    let a = to_f32s(&av);
                    let got = to_f32s(&vector[2]);
                    for i in 0..rows {
                        for j in 0..n {
                            let want = (a[j * rows + i] as f64).tanh() * 20.0 + bv[i * n + j] as i8 as f64;
                            assert!((got[i * n + j] as f64 - want).abs() < 1e-5, "n = {n} ({i}, {j}) {target}");
                        }
                    }
                }
            }
        }
    }
}

/// Reductions of int8 data (gathered lanes) over both plans.
#[test]
fn reduce_int8_inputs() {
    for target in Target::host_levels() {
        for n in [3usize, 4, 5, 17, 33] {
            let rows = 5;
            let mut p = Program::default();
            let a = input(&mut p, DataType::Int8, rows * n);
            let o1 = output(&mut p, DataType::Float32, rows);
            let o2 = output(&mut p, DataType::Int32, n);
            // Sum over each row; sum over each column.
            p.kernels.push(Kernel::Reduce {
                domain: vec![rows, n],
                reduced: 1,
                inputs: vec![Access::identity(a, &[rows, n])],
                element: Expr::load(0),
                combine: Combine::Sum,
                finish: Expr::acc(),
                finish_inputs: vec![],
                out: Access::identity(o1, &[rows]),
            });
            let cols = Access { buffer: a, shape: vec![rows, n], base: vec![0, 0], coef: vec![vec![0, 1], vec![1, 0]], guard: None };
            p.kernels.push(Kernel::Reduce {
                domain: vec![n, rows],
                reduced: 1,
                inputs: vec![cols],
                element: Expr::load(0),
                combine: Combine::Sum,
                finish: Expr::acc(),
                finish_inputs: vec![],
                out: Access::identity(o2, &[n]),
            });
            let v: Vec<u8> = (0..rows * n).map(|i| (i * 37 + 11) as u8).collect();
            let out = run(&p, vec![v.clone(), vec![0; 4 * rows], vec![0; 4 * n]], &target, 2);
            let rs = to_f32s(&out[1]);
            for i in 0..rows {
                let want: i32 = (0..n).map(|j| v[i * n + j] as i8 as i32).sum();
                assert_eq!(rs[i], want as f32, "row {i} n = {n} {target}");
            }
            for j in 0..n {
                let want: i32 = (0..rows).map(|i| v[i * n + j] as i8 as i32).sum();
                let got = i32::from_le_bytes(out[2][4 * j..4 * j + 4].try_into().unwrap());
                assert_eq!(got, want, "col {j} n = {n} {target}");
            }
        }
    }
}

/// Which kernels take the 4-lane loops, read off the generated IR.
#[test]
fn vectorisation_conditions() {
    let uses_lanes = |p: &Program| kiln_codegen::cpu::listing(p, &Target::host(), kiln_codegen::cpu::Listing::Clif).unwrap().contains("f32x4");
    let map = |domain: Vec<usize>, input: Access, expr: Expr, out_type: DataType| {
        let mut p = Program::default();
        let len = input.shape.iter().product();
        input_buffer(&mut p, len);
        let n: usize = domain.iter().product();
        let o = output(&mut p, out_type, n);
        p.kernels.push(Kernel::Map { domain: domain.clone(), inputs: vec![input], expr, out: Access::identity(o, &domain) });
        p
    };
    fn input_buffer(p: &mut Program, len: usize) -> BufferId {
        input(p, DataType::Float32, len)
    }
    let exp = exp_element();
    let mut add = Expr::default();
    let x = add.push(ExprNode::Load(0));
    add.push(ExprNode::Binary(BinaryFn::Add, x, x));
    let id = |shape: &[usize]| Access::identity(BufferId(0), shape);
    // [2, 3, 2] merges into one axis of 12.
    assert!(uses_lanes(&map(vec![2, 3, 2], id(&[2, 3, 2]), add.clone(), DataType::Float32)));
    // Too short an innermost axis once merged.
    assert!(!uses_lanes(&map(vec![3], id(&[3]), add.clone(), DataType::Float32)));
    // Guarded input: scalar.
    let mut g = id(&[8]);
    g.guard = Some(0.0);
    assert!(!uses_lanes(&map(vec![8], g, exp.clone(), DataType::Float32)));
    // Transposed input, plain add into int8: nothing to gain, scalar.
    let tr = Access { buffer: BufferId(0), shape: vec![8, 8], base: vec![0, 0], coef: vec![vec![0, 1], vec![1, 0]], guard: None };
    assert!(!uses_lanes(&map(vec![8, 8], tr.clone(), add.clone(), DataType::Int8)));
    // ... but with exp, or into f32, gathered lanes.
    assert!(uses_lanes(&map(vec![8, 8], tr.clone(), exp.clone(), DataType::Int8)));
    assert!(uses_lanes(&map(vec![8, 8], tr, add, DataType::Float32)));
    // Reductions: inner axis, kept axis, neither.
    let red = |domain: Vec<usize>, acc: Access| reduce_program(domain.clone(), 1, acc, Combine::Sum, Expr::acc(), domain[0], Expr::load(0));
    assert!(uses_lanes(&red(vec![4, 32], id(&[4, 32]))));
    let cols = Access { buffer: BufferId(0), shape: vec![5, 8], base: vec![0, 0], coef: vec![vec![0, 1], vec![1, 0]], guard: None };
    assert!(uses_lanes(&red(vec![8, 5], cols)));
    let strided = Access { buffer: BufferId(0), shape: vec![8, 8], base: vec![0, 0], coef: vec![vec![0, 1], vec![1, 0]], guard: None };
    let mut p = red(vec![8, 8], strided);
    if let Kernel::Reduce { out, .. } = &mut p.kernels[0] {
        // Output written backwards along the kept axis: not a vector store.
        *out = Access { buffer: out.buffer, shape: vec![8], base: vec![7], coef: vec![vec![-1]], guard: None };
    }
    assert!(!uses_lanes(&p));
}
