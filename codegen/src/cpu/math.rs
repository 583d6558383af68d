//! Elementary functions emitted inline as Cranelift instructions, for
//! scalar `f32` and 4-lane `f32x4` values alike: Cranelift has no
//! instructions for them, and a call per element would stop vectorisation.
//!
//! Every function is written once over a [`Lanes`] builder and emits the
//! same operations lane by lane whatever the width, so the vector and scalar
//! forms of a function give bit-identical results. Where the target has
//! FMA (the AVX2 and AVX-512 levels) multiply-adds are fused, which
//! shortens the dependency chains; results may then differ from the
//! baseline level's in the last bit, within the same bounds.
//!
//! Measured accuracy against an `f64` reference, with the bound that
//! `codegen/tests/simd.rs` asserts after the slash: `exp` 0.98 / 1 ULP,
//! `log` 0.77 / 1 ULP, `tanh` 1.17 / 2 ULP, `erf` 6.2e-8 / 1e-7 absolute
//! (1.04 / 2 ULP), `sin` and `cos` 9.4e-8 / 1.2e-7 absolute, `tan` 3.8 / 4
//! ULP, `pow` 0.5 / 1 ULP (it works in `f64`); float16 rounding and
//! conversions exact. sin, cos and tan call a scalar helper for lanes with
//! |x| > 1e5 (a cold path, libm's double `sin`/`cos`/`tan`); nothing else calls out.

use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{types, BlockArg, ConstantData, Endianness, FuncRef, InstBuilder, MachMemFlags, Type, Value};
use cranelift_frontend::FunctionBuilder;

/// Emits lane-wise arithmetic for one float type: `F32`, `F32X4`, `F64` or
/// `F64X2`. Comparisons give masks: `I8` 0/1 for scalars, all-ones lanes
/// for vectors; [`Lanes::select`] takes either.
pub(super) struct Lanes<'a, 'f> {
    pub fb: &'a mut FunctionBuilder<'f>,
    /// The float type.
    pub ty: Type,
    /// Whether `fma` is a native instruction.
    pub fma: bool,
}

fn lane_flags() -> MachMemFlags {
    MachMemFlags::new().with_endianness(Endianness::Little)
}

impl<'a, 'f> Lanes<'a, 'f> {
    pub fn new(fb: &'a mut FunctionBuilder<'f>, ty: Type, fma: bool) -> Self {
        Lanes { fb, ty, fma }
    }

    /// The same builder for another float type.
    fn with<R>(&mut self, ty: Type, f: impl FnOnce(&mut Lanes<'_, 'f>) -> R) -> R {
        let mut l = Lanes { fb: &mut *self.fb, ty, fma: self.fma };
        f(&mut l)
    }

    fn ity(&self) -> Type {
        self.ty.as_int()
    }

    fn is_f64(&self) -> bool {
        self.ty.lane_bits() == 64
    }

    /// A float constant in every lane.
    pub fn f(&mut self, c: f64) -> Value {
        let s = if self.is_f64() { self.fb.ins().f64const(c) } else { self.fb.ins().f32const(c as f32) };
        if self.ty.is_vector() {
            self.fb.ins().splat(self.ty, s)
        } else {
            s
        }
    }

    /// An integer constant in every lane of the matching integer type.
    pub fn i(&mut self, c: i64) -> Value {
        let it = self.ity();
        let s = self.fb.ins().iconst(it.lane_type(), c);
        if it.is_vector() {
            self.fb.ins().splat(it, s)
        } else {
            s
        }
    }

    pub fn add(&mut self, a: Value, b: Value) -> Value {
        self.fb.ins().fadd(a, b)
    }
    pub fn sub(&mut self, a: Value, b: Value) -> Value {
        self.fb.ins().fsub(a, b)
    }
    pub fn mul(&mut self, a: Value, b: Value) -> Value {
        self.fb.ins().fmul(a, b)
    }
    pub fn div(&mut self, a: Value, b: Value) -> Value {
        self.fb.ins().fdiv(a, b)
    }
    pub fn addc(&mut self, a: Value, c: f64) -> Value {
        let c = self.f(c);
        self.add(a, c)
    }
    pub fn mulc(&mut self, a: Value, c: f64) -> Value {
        let c = self.f(c);
        self.mul(a, c)
    }

    /// `a b + c`, fused where the target has FMA.
    pub fn madd(&mut self, a: Value, b: Value, c: Value) -> Value {
        if self.fma {
            self.fb.ins().fma(a, b, c)
        } else {
            let p = self.mul(a, b);
            self.add(p, c)
        }
    }
    /// `a k + c` for a constant `k`.
    pub fn maddc(&mut self, a: Value, k: f64, c: Value) -> Value {
        let k = self.f(k);
        self.madd(a, k, c)
    }

    /// `c[0] x^n + ... + c[n]` by Horner's rule.
    pub fn poly(&mut self, x: Value, c: &[f64]) -> Value {
        let mut acc = self.f(c[0]);
        for &k in &c[1..] {
            let k = self.f(k);
            acc = self.madd(acc, x, k);
        }
        acc
    }

    pub fn bits(&mut self, x: Value) -> Value {
        let it = self.ity();
        self.fb.ins().bitcast(it, MachMemFlags::new(), x)
    }
    pub fn float_of_bits(&mut self, i: Value) -> Value {
        let ty = self.ty;
        self.fb.ins().bitcast(ty, MachMemFlags::new(), i)
    }

    pub fn fcmp(&mut self, cc: FloatCC, a: Value, b: Value) -> Value {
        self.fb.ins().fcmp(cc, a, b)
    }
    pub fn fcmpc(&mut self, cc: FloatCC, a: Value, c: f64) -> Value {
        let c = self.f(c);
        self.fcmp(cc, a, c)
    }
    pub fn icmpc(&mut self, cc: IntCC, a: Value, c: i64) -> Value {
        let c = self.i(c);
        self.fb.ins().icmp(cc, a, c)
    }
    pub fn and(&mut self, a: Value, b: Value) -> Value {
        self.fb.ins().band(a, b)
    }
    pub fn andc(&mut self, a: Value, c: i64) -> Value {
        let c = self.i(c);
        self.fb.ins().band(a, c)
    }
    pub fn or(&mut self, a: Value, b: Value) -> Value {
        self.fb.ins().bor(a, b)
    }
    pub fn xor(&mut self, a: Value, b: Value) -> Value {
        self.fb.ins().bxor(a, b)
    }
    /// The complement of a mask.
    pub fn not(&mut self, m: Value) -> Value {
        if self.ty.is_vector() {
            self.fb.ins().bnot(m)
        } else {
            self.fb.ins().bxor_imm_u(m, 1)
        }
    }

    /// `m ? a : b` lane-wise, for float or integer lanes.
    pub fn select(&mut self, m: Value, a: Value, b: Value) -> Value {
        let t = self.fb.func.dfg.value_type(a);
        if t.is_vector() {
            let m = if self.fb.func.dfg.value_type(m) == t { m } else { self.fb.ins().bitcast(t, MachMemFlags::new(), m) };
            self.fb.ins().bitselect(m, a, b)
        } else {
            self.fb.ins().select(m, a, b)
        }
    }
    pub fn selectc(&mut self, m: Value, a: f64, b: Value) -> Value {
        let a = self.f(a);
        self.select(m, a, b)
    }

    /// `x` with the sign bit of `sign_bits` (an integer lane value holding
    /// only a sign bit) flipped in.
    fn xor_sign(&mut self, x: Value, sign_bits: Value) -> Value {
        let b = self.bits(x);
        let b = self.xor(b, sign_bits);
        self.float_of_bits(b)
    }

    /// The sign bit of `x` as an integer lane value.
    fn sign_of(&mut self, x: Value) -> Value {
        let b = self.bits(x);
        self.andc(b, i32::MIN as i64)
    }

    /// `2^n` for integer lanes `n` in [-126, 127] (f32).
    fn pow2i(&mut self, n: Value) -> Value {
        let bias = self.i(127);
        let e = self.fb.ins().iadd(n, bias);
        let e = self.fb.ins().ishl_imm_u(e, 23);
        self.float_of_bits(e)
    }
}

// ---------------------------------------------------------------- f32 ----

pub(crate) const MAGIC_ROUND: f64 = 12582912.0; // 1.5 * 2^23: adding it rounds to an integer
pub(crate) const LN2_HI: f64 = 0.693359375;
pub(crate) const LN2_LO: f64 = -2.12194440e-4;
/// `exp`'s argument is clamped to `[EXP_MIN, EXP_MAX]`.
pub(crate) const EXP_MIN: f64 = -104.0;
pub(crate) const EXP_MAX: f64 = 89.0;
/// `exp`'s polynomial in Estrin's scheme: `e^r ≈ ((a r4 + b) r2 + r) + 1`
/// with `a = A[0] r + A[1]`, `b = (B[0] r + B[1]) r2 + (C[0] r + C[1])`
/// (`r2 = r r`, `r4 = r2 r2`). The AVX-512 epilogues (`zmm_math`) evaluate
/// the same operations.
pub(crate) const EXP_A: [f64; 2] = [1.9875691500E-4, 1.3981999507E-3];
pub(crate) const EXP_B: [f64; 2] = [8.3334519073E-3, 4.1665795894E-2];
pub(crate) const EXP_C: [f64; 2] = [1.6666665459E-1, 5.0000001201E-1];

/// `e^x`: range reduction `x = n ln2 + r`, |r| ≤ ln2/2, and a degree-7
/// polynomial for `e^r` (Cephes coefficients); `2^n` is applied as two
/// factors so that subnormal results are rounded once. Overflows to +inf
/// above 88.72, underflows to 0 below -103.9, NaN stays NaN.
pub(super) fn exp(l: &mut Lanes, x: Value) -> Value {
    // Clamp by compare and select (cheaper than fmin/fmax; NaN stays).
    let below = l.fcmpc(FloatCC::LessThan, x, EXP_MIN);
    let x = l.selectc(below, EXP_MIN, x);
    let above = l.fcmpc(FloatCC::GreaterThan, x, EXP_MAX);
    let x = l.selectc(above, EXP_MAX, x);
    let magic = l.f(MAGIC_ROUND);
    let t = l.maddc(x, std::f64::consts::LOG2_E, magic);
    let n = l.addc(t, -MAGIC_ROUND);
    let r = l.maddc(n, -LN2_HI, x);
    let r = l.maddc(n, -LN2_LO, r);
    // Estrin's scheme: a shorter dependency chain than Horner's rule.
    let r2 = l.mul(r, r);
    let r4 = l.mul(r2, r2);
    let a = l.poly(r, &EXP_A);
    let b = l.poly(r, &EXP_B);
    let c = l.poly(r, &EXP_C);
    let b = l.madd(b, r2, c);
    let p = l.madd(a, r4, b);
    let p = l.madd(p, r2, r);
    let p = l.addc(p, 1.0);
    // n as an integer, split in two halves that are normal exponents.
    let tb = l.bits(t);
    let magic = l.i(0x4B40_0000);
    let ni = l.fb.ins().isub(tb, magic);
    let n1 = l.fb.ins().sshr_imm_u(ni, 1);
    let n2 = l.fb.ins().isub(ni, n1);
    let s1 = l.pow2i(n1);
    let s2 = l.pow2i(n2);
    let p = l.mul(p, s1);
    l.mul(p, s2)
}

/// `log`'s Cephes polynomial for `ln(1 + f)`: `f - f²/2 + f³ P(f)`.
pub(crate) const LOG_P: [f64; 9] = [
    7.0376836292E-2,
    -1.1514610310E-1,
    1.1676998740E-1,
    -1.2420140846E-1,
    1.4249322787E-1,
    -1.6668057665E-1,
    2.0000714765E-1,
    -2.4999993993E-1,
    3.3333331174E-1,
];

/// `ln x`: `x = m 2^e` with m in [√½, √2), then the Cephes polynomial for
/// `ln(1 + f)`. Subnormals are scaled first. ln 0 = -inf, ln(x < 0) = NaN,
/// ln inf = inf.
pub(super) fn log(l: &mut Lanes, x: Value) -> Value {
    let sub = l.fcmpc(FloatCC::LessThan, x, f32::MIN_POSITIVE as f64);
    let scaled = l.mulc(x, 8388608.0);
    let xs = l.select(sub, scaled, x);
    let ix = l.bits(xs);
    let e = l.fb.ins().ushr_imm_u(ix, 23);
    let zero_i = l.i(0);
    let adj = {
        let m23 = l.i(-23);
        l.select(sub, m23, zero_i)
    };
    let e = l.fb.ins().iadd(e, adj);
    let mant = l.andc(ix, 0x007f_ffff);
    let half = l.i(0x3f00_0000);
    let mant = l.or(mant, half);
    let m = l.float_of_bits(mant); // [0.5, 1)
    let small = l.fcmpc(FloatCC::LessThan, m, std::f64::consts::FRAC_1_SQRT_2);
    let ty = l.ty;
    let ef = l.fb.ins().fcvt_from_sint(ty, e);
    let ef = l.addc(ef, -126.0);
    let one = l.f(1.0);
    let zero = l.f(0.0);
    let dec = l.select(small, one, zero);
    let ef = l.sub(ef, dec);
    let mm = l.add(m, m);
    let m = l.select(small, mm, m);
    let f = l.addc(m, -1.0);
    let z = l.mul(f, f);
    let p = l.poly(f, &LOG_P);
    let y = l.mul(p, f);
    let lo = l.mulc(ef, LN2_LO);
    let y = l.madd(y, z, lo);
    let y = l.maddc(z, -0.5, y);
    let r = l.add(f, y);
    let r = l.maddc(ef, LN2_HI, r);
    // Special values.
    let is_inf = l.fcmpc(FloatCC::Equal, x, f64::INFINITY);
    let r = l.selectc(is_inf, f64::INFINITY, r);
    let is_zero = l.fcmpc(FloatCC::Equal, x, 0.0);
    let r = l.selectc(is_zero, f64::NEG_INFINITY, r);
    let bad = l.fcmpc(FloatCC::UnorderedOrLessThan, x, 0.0);
    l.selectc(bad, f64::NAN, r)
}

/// `tanh`'s odd polynomial below [`TANH_SMALL`]: `x + x z P(z)`, `z = x^2`.
pub(crate) const TANH_P: [f64; 5] =
    [-0.006096714165908197, 0.020997178999074752, -0.05385090957851358, 0.13332769736976327, -0.33333328944134255];
pub(crate) const TANH_SMALL: f64 = 0.625;

/// `tanh x`: an odd polynomial below |x| = 0.625, `1 - 2 / (e^2|x| + 1)`
/// with the sign of x above.
pub(super) fn tanh(l: &mut Lanes, x: Value) -> Value {
    let ax = l.fb.ins().fabs(x);
    let z = l.mul(x, x);
    let p = l.poly(z, &TANH_P);
    let p = l.mul(p, z);
    let small = l.madd(p, x, x);
    let a2 = l.add(ax, ax);
    let e = exp(l, a2);
    let e1 = l.addc(e, 1.0);
    let two = l.f(2.0);
    let q = l.div(two, e1);
    let one = l.f(1.0);
    let q = l.sub(one, q);
    let s = l.sign_of(x);
    let large = l.xor_sign(q, s);
    let is_small = l.fcmpc(FloatCC::LessThan, ax, TANH_SMALL);
    l.select(is_small, small, large)
}

/// `erf`'s polynomial below |x| = 1: `x + x P(x^2)` (the last coefficient
/// is 2/sqrt(pi) - 1: the correction term carries the rounding).
pub(crate) const ERF_P: [f64; 7] = [
    7.875875062685488e-05,
    -0.000801686428716587,
    0.005189087423433974,
    -0.026854212010626412,
    0.11283594715160218,
    -0.37612626666720334,
    1.1283791658483509 - 1.0,
];
/// `erfc(x) e^(x^2)` fitted on [1, 4], in `x - ERF_R_CENTER`.
pub(crate) const ERF_R: [f64; 12] = [
    -4.123142820307557e-07,
    1.6698367593278667e-06,
    -3.834632179188718e-06,
    1.4364682373340648e-05,
    -5.932730341120816e-05,
    0.00021295046917599458,
    -0.0007333448751368135,
    0.0024659996342782436,
    -0.008001617248247285,
    0.024938198914209786,
    -0.07434734529148741,
    0.21080635774313639,
];
pub(crate) const ERF_R_CENTER: f64 = 2.5;
/// |x| is clamped to this in `erf`'s large branch (erf rounds to 1 there).
pub(crate) const ERF_CLAMP: f64 = 4.0;

/// `erf x`: `x P(x²)` below |x| = 1; above, `1 - e^(-x²) R(|x|)` with
/// `R(x) = erfc(x) e^(x²)` fitted on [1, 4] (|x| is clamped to 4, where
/// erf rounds to 1).
pub(super) fn erf(l: &mut Lanes, x: Value) -> Value {
    let ax = l.fb.ins().fabs(x);
    let z = l.mul(x, x);
    let p = l.poly(z, &ERF_P);
    // x P(z) = x + x (P(z) - 1): the correction term carries the rounding.
    let small = l.madd(x, p, x);
    let four = l.f(ERF_CLAMP);
    let a = l.fb.ins().fmin(ax, four);
    let a2 = l.mul(a, a);
    let na2 = l.fb.ins().fneg(a2);
    let e = exp(l, na2);
    let s = l.addc(a, -ERF_R_CENTER);
    let r = l.poly(s, &ERF_R);
    let one = l.f(1.0);
    let ne = l.fb.ins().fneg(e);
    let q = l.madd(ne, r, one);
    let sg = l.sign_of(x);
    let large = l.xor_sign(q, sg);
    let is_small = l.fcmpc(FloatCC::LessThan, ax, 1.0);
    l.select(is_small, small, large)
}

/// Which of sin, cos, tan.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Trig {
    Sin,
    Cos,
    Tan,
}

/// Above this |x|, sin, cos and tan call `huge` (the four-piece reduction
/// is exact for n < 2^16, that is |x| < 102943).
pub(crate) const TRIG_INLINE_LIMIT: f64 = 1e5;
/// π/2 in four pieces whose products with n < 2^16 are exact.
pub(crate) const TRIG_PI_2_PIECES: [f64; 4] = [1.5703125, 0.000484466552734375, -6.407499313354492e-07, 9.92093629470503e-10];
/// `sin r = r + r z S(z)` and `cos r = 1 - z/2 + z² C(z)` on [-π/4, π/4], `z = r²`.
pub(crate) const SIN_P: [f64; 3] = [-1.9515295891E-4, 8.3321608736E-3, -1.6666654611E-1];
pub(crate) const COS_P: [f64; 3] = [2.443315711809948E-5, -1.388731625493765E-3, 4.166664568298827E-2];

/// `f(x)` for a scalar `x` (f32 or f64) and a function `f: f64 -> f64`;
/// an f32 argument is widened and the result rounded back.
fn call_f64(fb: &mut FunctionBuilder, f: FuncRef, x: Value) -> Value {
    let narrow = fb.func.dfg.value_type(x) == types::F32;
    let arg = if narrow { fb.ins().fpromote(types::F64, x) } else { x };
    let call = fb.ins().call(f, &[arg]);
    let r = fb.inst_results(call)[0];
    if narrow { fb.ins().fdemote(types::F32, r) } else { r }
}

/// sin, cos and tan: `|x| = n π/2 + r` with π/2 in four pieces (exact
/// products for n < 2^16, so |x| up to 1e5 reduces to within an ulp of r),
/// then the Cephes polynomials on [-π/4, π/4] and the quadrant; inf and
/// NaN give NaN. Lanes with larger |x| (rare) take a cold path that calls
/// `huge`, a scalar function with full range reduction.
pub(super) fn trig(l: &mut Lanes, x: Value, which: Trig, huge: FuncRef) -> Value {
    let fast = trig_inline(l, x, which);
    let ax = l.fb.ins().fabs(x);
    let big = l.fcmpc(FloatCC::GreaterThan, ax, TRIG_INLINE_LIMIT);
    let ty = l.ty;
    let any = if ty.is_vector() { l.fb.ins().vany_true(big) } else { big };
    let slow = l.fb.create_block();
    let merge = l.fb.create_block();
    let result = l.fb.append_block_param(merge, ty);
    l.fb.set_cold_block(slow);
    l.fb.ins().brif(any, slow, &[], merge, &[BlockArg::Value(fast)]);
    l.fb.switch_to_block(slow);
    let r = if ty.is_vector() {
        let mut v = fast;
        for k in 0..ty.lane_count() as u8 {
            let xk = l.fb.ins().extractlane(x, k);
            let rk = call_f64(l.fb, huge, xk);
            v = l.fb.ins().insertlane(v, rk, k);
        }
        l.select(big, v, fast)
    } else {
        call_f64(l.fb, huge, x)
    };
    l.fb.ins().jump(merge, &[BlockArg::Value(r)]);
    l.fb.switch_to_block(merge);
    result
}

fn trig_inline(l: &mut Lanes, x: Value, which: Trig) -> Value {
    let ax = l.fb.ins().fabs(x);
    let t = l.mulc(ax, std::f64::consts::FRAC_2_PI);
    let n = l.fb.ins().nearest(t);
    let mut r = ax;
    for p in TRIG_PI_2_PIECES {
        r = l.maddc(n, -p, r);
    }
    let it = l.ity();
    let q = l.fb.ins().fcvt_to_sint_sat(it, n);
    let z = l.mul(r, r);
    // sin r = r + r z S(z)
    let s = l.poly(z, &SIN_P);
    let s = l.mul(s, z);
    let sin_r = l.madd(s, r, r);
    // cos r = 1 - z/2 + z² C(z)
    let c = l.poly(z, &COS_P);
    let z2 = l.mul(z, z);
    let hz = l.mulc(z, -0.5);
    let c = l.madd(c, z2, hz);
    let cos_r = l.addc(c, 1.0);
    let q = if which == Trig::Cos {
        let one = l.i(1);
        l.fb.ins().iadd(q, one)
    } else {
        q
    };
    let odd_bit = l.andc(q, 1);
    let odd = l.icmpc(IntCC::NotEqual, odd_bit, 0);
    let result = match which {
        Trig::Sin | Trig::Cos => {
            let v = l.select(odd, cos_r, sin_r);
            // Quadrants 2 and 3 negate.
            let neg = l.andc(q, 2);
            let neg = l.fb.ins().ishl_imm_u(neg, 30);
            l.xor_sign(v, neg)
        }
        Trig::Tan => {
            let nc = l.fb.ins().fneg(cos_r);
            let num = l.select(odd, nc, sin_r);
            let den = l.select(odd, sin_r, cos_r);
            l.div(num, den)
        }
    };
    if which == Trig::Cos {
        result
    } else {
        // sin and tan are odd.
        let sg = l.sign_of(x);
        l.xor_sign(result, sg)
    }
}

// ---------------------------------------------------------------- pow ----

/// Shuffles the bytes of two 128-bit values; `mask` picks bytes of `a`
/// (0..16) and `b` (16..32).
pub(super) fn shuffle_f32x4(fb: &mut FunctionBuilder, a: Value, b: Value, mask: [u8; 16]) -> Value {
    let ab = fb.ins().bitcast(types::I8X16, lane_flags(), a);
    let bb = fb.ins().bitcast(types::I8X16, lane_flags(), b);
    let imm = fb.func.dfg.immediates.push(ConstantData::from(mask.to_vec()));
    let s = fb.ins().shuffle(ab, bb, imm);
    fb.ins().bitcast(types::F32X4, lane_flags(), s)
}

/// The two `f64x2` halves of an `f32x4`.
fn promote_halves(fb: &mut FunctionBuilder, v: Value) -> (Value, Value) {
    let lo = fb.ins().fvpromote_low(v);
    let high = shuffle_f32x4(fb, v, v, [8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7]);
    let hi = fb.ins().fvpromote_low(high);
    (lo, hi)
}

/// `f32x4` from two `f64x2` halves, each rounded to nearest.
fn demote_halves(fb: &mut FunctionBuilder, lo: Value, hi: Value) -> Value {
    let a = fb.ins().fvdemote(lo);
    let b = fb.ins().fvdemote(hi);
    shuffle_f32x4(fb, a, b, [0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23])
}

/// `2^(y (e + log2 m))` in f64 lanes, for m in [√½, √2): nearly correctly
/// rounded once demoted to f32.
fn pow_core64(l: &mut Lanes, m: Value, e: Value, y: Value) -> Value {
    // log2 m = s P(s²), s = (m - 1) / (m + 1), |s| ≤ 0.172.
    let m1 = l.addc(m, -1.0);
    let p1 = l.addc(m, 1.0);
    let s = l.div(m1, p1);
    let s2 = l.mul(s, s);
    let k = 2.0 / std::f64::consts::LN_2;
    let coef: Vec<f64> = (0..=8).rev().map(|j| k / (2 * j + 1) as f64).collect();
    let lg = l.poly(s2, &coef);
    let lg = l.madd(lg, s, e);
    let t = l.mul(y, lg);
    let lo = l.f(-200.0);
    let hi = l.f(200.0);
    let t = l.fb.ins().fmax(t, lo);
    let t = l.fb.ins().fmin(t, hi);
    // 2^t = 2^n 2^f, |f| ≤ 1/2.
    let n = l.fb.ins().nearest(t);
    let f = l.sub(t, n);
    let coef: Vec<f64> = (0..=11)
        .rev()
        .map(|j| (0..j).fold(1.0, |acc, i| acc * std::f64::consts::LN_2 / (i + 1) as f64))
        .collect();
    let p = l.poly(f, &coef);
    let magic = 6755399441055744.0; // 1.5 * 2^52
    let nm = l.addc(n, magic);
    let nb = l.bits(nm);
    let bias = l.i(1023 - 0x4338_0000_0000_0000_i64);
    let sb = l.fb.ins().iadd(nb, bias);
    let sb = l.fb.ins().ishl_imm_u(sb, 52);
    let scale = l.float_of_bits(sb);
    l.mul(p, scale)
}

/// `x^y` with the IEEE special cases of C's `pow`.
pub(super) fn pow(l: &mut Lanes, x: Value, y: Value) -> Value {
    let ax = l.fb.ins().fabs(x);
    // ax = m 2^e, m in [√½, √2).
    let sub = l.fcmpc(FloatCC::LessThan, ax, f32::MIN_POSITIVE as f64);
    let scaled = l.mulc(ax, 8388608.0);
    let axs = l.select(sub, scaled, ax);
    let ix = l.bits(axs);
    let e = l.fb.ins().ushr_imm_u(ix, 23);
    let zero_i = l.i(0);
    let m23 = l.i(-23);
    let adj = l.select(sub, m23, zero_i);
    let e = l.fb.ins().iadd(e, adj);
    let mant = l.andc(ix, 0x007f_ffff);
    let one_bits = l.i(0x3f80_0000);
    let mant = l.or(mant, one_bits);
    let m = l.float_of_bits(mant); // [1, 2)
    let big = l.fcmpc(FloatCC::GreaterThan, m, std::f64::consts::SQRT_2);
    let half = l.mulc(m, 0.5);
    let m = l.select(big, half, m);
    let ty = l.ty;
    let ef = l.fb.ins().fcvt_from_sint(ty, e);
    let ef = l.addc(ef, -127.0);
    let one = l.f(1.0);
    let zero = l.f(0.0);
    let inc = l.select(big, one, zero);
    let ef = l.add(ef, inc);
    let r = if ty.is_vector() {
        let (mlo, mhi) = promote_halves(l.fb, m);
        let (elo, ehi) = promote_halves(l.fb, ef);
        let (ylo, yhi) = promote_halves(l.fb, y);
        let rlo = l.with(types::F64X2, |d| pow_core64(d, mlo, elo, ylo));
        let rhi = l.with(types::F64X2, |d| pow_core64(d, mhi, ehi, yhi));
        demote_halves(l.fb, rlo, rhi)
    } else {
        let m = l.fb.ins().fpromote(types::F64, m);
        let ef = l.fb.ins().fpromote(types::F64, ef);
        let yd = l.fb.ins().fpromote(types::F64, y);
        let r = l.with(types::F64, |d| pow_core64(d, m, ef, yd));
        l.fb.ins().fdemote(types::F32, r)
    };
    // Special cases, in increasing order of precedence.
    let y_neg = l.fcmpc(FloatCC::LessThan, y, 0.0);
    let inf = l.f(f64::INFINITY);
    let zero_or_inf = l.select(y_neg, inf, zero);
    let inf_or_zero = l.select(y_neg, zero, inf);
    let ax0 = l.fcmpc(FloatCC::Equal, ax, 0.0);
    let r = l.select(ax0, zero_or_inf, r);
    let ax_inf = l.fcmpc(FloatCC::Equal, ax, f64::INFINITY);
    let r = l.select(ax_inf, inf_or_zero, r);
    let fy = l.fb.ins().floor(y);
    let y_int = l.fcmp(FloatCC::Equal, fy, y);
    let hy = l.mulc(y, 0.5);
    let fhy = l.fb.ins().floor(hy);
    let y_even = l.fcmp(FloatCC::Equal, fhy, hy);
    let y_not_even = l.not(y_even);
    let y_odd = l.and(y_int, y_not_even);
    let xb = l.bits(x);
    let x_signed = l.icmpc(IntCC::SignedLessThan, xb, 0);
    let flip = l.and(x_signed, y_odd);
    let nr = l.fb.ins().fneg(r);
    let r = l.select(flip, nr, r);
    let x_neg = l.fcmpc(FloatCC::LessThan, x, 0.0);
    let x_fin = l.fcmpc(FloatCC::NotEqual, x, f64::NEG_INFINITY);
    let y_frac = l.not(y_int);
    let bad = l.and(x_neg, x_fin);
    let bad = l.and(bad, y_frac);
    let r = l.selectc(bad, f64::NAN, r);
    let x_nan = l.fcmp(FloatCC::Unordered, x, x);
    let r = l.selectc(x_nan, f64::NAN, r);
    let y_nan = l.fcmp(FloatCC::Unordered, y, y);
    let r = l.selectc(y_nan, f64::NAN, r);
    let ax1 = l.fcmpc(FloatCC::Equal, ax, 1.0);
    let ay = l.fb.ins().fabs(y);
    let ay_inf = l.fcmpc(FloatCC::Equal, ay, f64::INFINITY);
    let one_inf = l.and(ax1, ay_inf);
    let r = l.selectc(one_inf, 1.0, r);
    let x1 = l.fcmpc(FloatCC::Equal, x, 1.0);
    let r = l.selectc(x1, 1.0, r);
    let y0 = l.fcmpc(FloatCC::Equal, y, 0.0);
    l.selectc(y0, 1.0, r)
}

// ------------------------------------------------------------ float16 ----

/// float16 bits (in the low 16 bits of i32 lanes) to f32, exactly.
pub(super) fn f16_bits_to_f32(l: &mut Lanes, h: Value) -> Value {
    let sign = l.andc(h, 0x8000);
    let sign = l.fb.ins().ishl_imm_u(sign, 16);
    let em = l.andc(h, 0x7fff);
    let shifted = l.fb.ins().ishl_imm_u(em, 13);
    // Normal and subnormal halves: reinterpret and rescale by 2^112.
    let f = l.float_of_bits(shifted);
    let f = l.mulc(f, 2f64.powi(112));
    let fb_ = l.bits(f);
    // Inf and NaN: all-ones exponent.
    let exp_ones = l.i(0x7f80_0000);
    let special_bits = l.or(shifted, exp_ones);
    let special = l.icmpc(IntCC::SignedGreaterThanOrEqual, em, 0x7c00);
    let b = l.select(special, special_bits, fb_);
    let b = l.or(b, sign);
    l.float_of_bits(b)
}

/// f32 to float16 bits (in i32 lanes), rounding to nearest even;
/// overflow gives inf and NaN a quiet NaN that keeps the top payload bits.
pub(super) fn f32_to_f16_bits(l: &mut Lanes, x: Value) -> Value {
    let b = l.bits(x);
    let sign = l.andc(b, i32::MIN as i64);
    let sign = l.fb.ins().ushr_imm_u(sign, 16);
    let a = l.andc(b, 0x7fff_ffff);
    // NaN / Inf / overflow.
    let is_nan = l.icmpc(IntCC::SignedGreaterThan, a, 0x7f80_0000);
    let man = l.fb.ins().ushr_imm_u(a, 13);
    let man = l.andc(man, 0x3ff);
    let qnan = l.i(0x7e00);
    let nan = l.or(man, qnan);
    let infh = l.i(0x7c00);
    let special = l.select(is_nan, nan, infh);
    let overflow = l.icmpc(IntCC::SignedGreaterThanOrEqual, a, (127 + 16) << 23);
    // Subnormal halves (and zero): let the FPU round by adding a magic number.
    let af = l.float_of_bits(a);
    let magic = l.f(0.5); // 2^-1: its ulp is 2^-24, the float16 subnormal step
    let s = l.add(af, magic);
    let sb = l.bits(s);
    let magic_bits = l.i(0x3f00_0000);
    let subnormal = l.fb.ins().isub(sb, magic_bits);
    let is_sub = l.icmpc(IntCC::SignedLessThan, a, 113 << 23);
    // Normal halves: rebias and round to nearest even by hand.
    let odd = l.fb.ins().ushr_imm_u(a, 13);
    let odd = l.andc(odd, 1);
    let rebias = l.i(((15 - 127) << 23) + 0xfff);
    let n = l.fb.ins().iadd(a, rebias);
    let n = l.fb.ins().iadd(n, odd);
    let normal = l.fb.ins().ushr_imm_u(n, 13);
    let v = l.select(is_sub, subnormal, normal);
    let v = l.select(overflow, special, v);
    l.or(v, sign)
}

/// Rounds f32 lanes to the nearest float16 value.
pub(super) fn round_f16(l: &mut Lanes, x: Value) -> Value {
    let h = f32_to_f16_bits(l, x);
    f16_bits_to_f32(l, h)
}
