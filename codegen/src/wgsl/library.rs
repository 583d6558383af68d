//! The WGSL functions generated shaders call: the kernel IR's scalar
//! functions where WGSL's built-ins do not meet their definition
//! ([`kiln_ir::kernel::UnaryFn::apply`], [`kiln_ir::kernel::BinaryFn::apply`]),
//! and the conversions between f32 and each buffer data type
//! ([`kiln_ir::kernel::load_f32`], [`kiln_ir::kernel::store_f32`]).
//!
//! WGSL leaves the accuracy of `exp`, `log`, `tanh`, ... to the device
//! (a few ULP on the best, far more on some), has no `erf`, and lets an
//! implementation assume that no value is NaN. So the elementary functions
//! are the polynomials of the cpu backend (`cpu::math`, same coefficients
//! and range reductions, hence the same accuracy wherever the device
//! rounds f32 operations correctly), NaN is tested on the bits, and every
//! conversion is written out bit by bit (float16 included, so no shader
//! needs the `f16` extension: kernels compute in f32 and float16 is only a
//! storage format).
//!
//! Each function is emitted only into the shaders that use it, after the
//! functions it calls ([`Helper::requires`]).

use std::collections::BTreeSet;

use crate::cpu::emit::math as m;

/// A function of the library.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) enum Helper {
    F32Bits,
    IsNan,
    Maximum,
    Minimum,
    Exp,
    Log,
    Tanh,
    Erf,
    Trig,
    Pow,
    F16ToF32,
    F32ToF16,
    U64ToF32,
    I64ToF32,
    F32ToI32,
    F32ToU32,
    F32ToI64,
    F32ToU64,
}

impl Helper {
    /// The helpers this one calls.
    fn requires(self) -> &'static [Helper] {
        match self {
            Helper::Maximum | Helper::Minimum | Helper::F32ToI32 | Helper::F32ToI64 => &[Helper::IsNan],
            Helper::Log | Helper::Trig => &[Helper::F32Bits],
            Helper::I64ToF32 => &[Helper::U64ToF32],
            Helper::Tanh => &[Helper::Exp],
            Helper::Erf => &[Helper::IsNan, Helper::Exp],
            Helper::Pow => &[Helper::F32Bits, Helper::IsNan, Helper::Exp, Helper::Log],
            _ => &[],
        }
    }

    fn source(self) -> String {
        match self {
            Helper::F32Bits => F32_BITS.into(),
            Helper::IsNan => IS_NAN.into(),
            Helper::Maximum => MAXIMUM.into(),
            Helper::Minimum => MINIMUM.into(),
            Helper::Exp => exp(),
            Helper::Log => log(),
            Helper::Tanh => tanh(),
            Helper::Erf => erf(),
            Helper::Trig => trig(),
            Helper::Pow => POW.into(),
            Helper::F16ToF32 => F16_TO_F32.into(),
            Helper::F32ToF16 => F32_TO_F16.into(),
            Helper::I64ToF32 => I64_TO_F32.into(),
            Helper::U64ToF32 => U64_TO_F32.into(),
            Helper::F32ToI32 => F32_TO_I32.into(),
            Helper::F32ToU32 => F32_TO_U32.into(),
            Helper::F32ToI64 => F32_TO_I64.into(),
            Helper::F32ToU64 => F32_TO_U64.into(),
        }
    }
}

/// The source of `used` and of everything they call, in a fixed order.
pub(super) fn sources(used: &BTreeSet<Helper>) -> String {
    let mut all = BTreeSet::new();
    let mut stack: Vec<Helper> = used.iter().copied().collect();
    while let Some(h) = stack.pop() {
        if all.insert(h) {
            stack.extend(h.requires());
        }
    }
    // The enum order puts every helper after those it calls.
    all.iter().map(|h| h.source()).collect::<Vec<_>>().join("\n")
}

/// The f32 of some bits, as a run-time value: WGSL rejects constant
/// expressions whose value is infinite or NaN, so non-finite constants go
/// through this function.
const F32_BITS: &str = "\
fn f32_bits(b: u32) -> f32 {
    return bitcast<f32>(b);
}
";

const IS_NAN: &str = "\
fn is_nan(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u;
}
";

/// IEEE 754-2019 maximum: NaN if either is NaN, -0 < +0.
const MAXIMUM: &str = "\
fn maximum(a: f32, b: f32) -> f32 {
    if (is_nan(a)) { return a; }
    if (is_nan(b)) { return b; }
    if (a == b) { return select(b, a, (bitcast<u32>(a) & 0x80000000u) == 0u); }
    return select(b, a, a > b);
}
";

const MINIMUM: &str = "\
fn minimum(a: f32, b: f32) -> f32 {
    if (is_nan(a)) { return a; }
    if (is_nan(b)) { return b; }
    if (a == b) { return select(b, a, (bitcast<u32>(a) & 0x80000000u) != 0u); }
    return select(b, a, a < b);
}
";

/// An f64 constant as a WGSL abstract-float literal (rounded to f32 where
/// used, as the cpu code rounds it).
fn c(x: f64) -> String {
    let s = format!("{x:?}");
    if x < 0.0 { format!("({s})") } else { s }
}

/// `{acc} = c[0]; {acc} = fma({acc}, {x}, c[k])...` (Horner's rule, as
/// `Lanes::poly`).
fn poly(acc: &str, x: &str, coefficients: &[f64]) -> String {
    let mut s = format!("    var {acc} = {};\n", c(coefficients[0]));
    for &k in &coefficients[1..] {
        s.push_str(&format!("    {acc} = fma({acc}, {x}, {});\n", c(k)));
    }
    s
}

/// `cpu::math::exp`: x = n ln2 + r, the Cephes polynomial in Estrin's
/// scheme, 2^n applied as two factors. n comes from `round`, not from
/// adding and subtracting 1.5 * 2^23 as on the cpu: shader compilers may
/// fold that pair away.
fn exp() -> String {
    format!(
        "\
fn k_exp(x0: f32) -> f32 {{
    var x = x0;
    if (x < {min}) {{ x = {min}; }}
    if (x > {max}) {{ x = {max}; }}
    let n = round(x * {log2e});
    var r = fma(n, {ln2_hi}, x);
    r = fma(n, {ln2_lo}, r);
    let r2 = r * r;
    let r4 = r2 * r2;
    let a = fma({a0}, r, {a1});
    let b = fma(fma({b0}, r, {b1}), r2, fma({c0}, r, {c1}));
    var p = fma(a, r4, b);
    p = fma(p, r2, r);
    p = p + 1.0;
    let ni = i32(n);
    let n1 = ni >> 1u;
    let n2 = ni - n1;
    return p * bitcast<f32>((n1 + 127) << 23u) * bitcast<f32>((n2 + 127) << 23u);
}}
",
        min = c(m::EXP_MIN),
        max = c(m::EXP_MAX),
        log2e = c(std::f64::consts::LOG2_E),
        ln2_hi = c(-m::LN2_HI),
        ln2_lo = c(-m::LN2_LO),
        a0 = c(m::EXP_A[0]),
        a1 = c(m::EXP_A[1]),
        b0 = c(m::EXP_B[0]),
        b1 = c(m::EXP_B[1]),
        c0 = c(m::EXP_C[0]),
        c1 = c(m::EXP_C[1]),
    )
}

/// `cpu::math::log`: x = m 2^e with m in [sqrt(1/2), sqrt(2)), the Cephes
/// polynomial for ln(1 + f).
fn log() -> String {
    format!(
        "\
fn k_log(x: f32) -> f32 {{
    let sub = x < 1.17549435e-38;
    let xs = select(x, x * 8388608.0, sub);
    let ix = bitcast<u32>(xs);
    let e = i32(ix >> 23u) + select(0, -23, sub);
    var m = bitcast<f32>((ix & 0x007fffffu) | 0x3f000000u);
    let small = m < {sqrt_half};
    let ef = f32(e) - 126.0 - select(0.0, 1.0, small);
    m = select(m, m + m, small);
    let f = m - 1.0;
    let z = f * f;
{p}    var y = p * f;
    y = fma(y, z, ef * {ln2_lo});
    y = fma(z, -0.5, y);
    var r = f + y;
    r = fma(ef, {ln2_hi}, r);
    if (bitcast<u32>(x) == 0x7f800000u) {{ r = x; }}
    if (x == 0.0) {{ r = f32_bits(0xff800000u); }}
    if (x < 0.0 || (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u) {{ r = f32_bits(0x7fc00000u); }}
    return r;
}}
",
        sqrt_half = c(std::f64::consts::FRAC_1_SQRT_2),
        p = poly("p", "f", &m::LOG_P),
        ln2_lo = c(m::LN2_LO),
        ln2_hi = c(m::LN2_HI),
    )
}

/// `cpu::math::tanh`: an odd polynomial below |x| = 0.625, 1 - 2/(e^2|x| + 1)
/// above.
fn tanh() -> String {
    format!(
        "\
fn k_tanh(x: f32) -> f32 {{
    let ax = abs(x);
    let z = x * x;
{p}    p = p * z;
    let small = fma(p, x, x);
    let q = 1.0 - 2.0 / (k_exp(ax + ax) + 1.0);
    let large = bitcast<f32>(bitcast<u32>(q) ^ (bitcast<u32>(x) & 0x80000000u));
    return select(large, small, ax < {limit});
}}
",
        p = poly("p", "z", &m::TANH_P),
        limit = c(m::TANH_SMALL),
    )
}

/// `cpu::math::erf`: x P(x^2) below |x| = 1, 1 - e^(-x^2) R(|x|) above.
fn erf() -> String {
    format!(
        "\
fn k_erf(x: f32) -> f32 {{
    if (is_nan(x)) {{ return x; }}
    let ax = abs(x);
    let z = x * x;
{p}    let small = fma(x, p, x);
    let a = min(ax, {clamp});
    let e = k_exp(-(a * a));
    let s = a - {center};
{r}    let q = fma(-e, r, 1.0);
    let large = bitcast<f32>(bitcast<u32>(q) ^ (bitcast<u32>(x) & 0x80000000u));
    return select(large, small, ax < 1.0);
}}
",
        p = poly("p", "z", &m::ERF_P),
        clamp = c(m::ERF_CLAMP),
        center = c(m::ERF_R_CENTER),
        r = poly("r", "s", &m::ERF_R),
    )
}

/// `cpu::math::trig`: |x| = n pi/2 + r with pi/2 in four pieces (exact for
/// |x| < 1e5), Cephes polynomials and the quadrant. `which`: 0 sin, 1 cos,
/// 2 tan; infinities and NaN give NaN. Beyond |x| = 1e5 the device's
/// built-ins (no f64 for a longer reduction in WGSL).
fn trig() -> String {
    let [p0, p1, p2, p3] = m::TRIG_PI_2_PIECES.map(|p| c(-p));
    format!(
        "\
fn k_trig(x: f32, which: u32) -> f32 {{
    let ax = abs(x);
    if ((bitcast<u32>(x) & 0x7fffffffu) >= 0x7f800000u) {{ return f32_bits(0x7fc00000u); }}
    if (ax > {limit}) {{
        if (which == 0u) {{ return sin(x); }}
        if (which == 1u) {{ return cos(x); }}
        return tan(x);
    }}
    let n = round(ax * {two_over_pi});
    var r = fma(n, {p0}, ax);
    r = fma(n, {p1}, r);
    r = fma(n, {p2}, r);
    r = fma(n, {p3}, r);
    var q = i32(n);
    let z = r * r;
{s}    let sin_r = fma(s * z, r, r);
{cos}    let cos_r = fma(c, z * z, z * -0.5) + 1.0;
    if (which == 1u) {{ q = q + 1; }}
    let odd = (q & 1) != 0;
    var v: f32;
    if (which == 2u) {{
        v = select(sin_r, -cos_r, odd) / select(cos_r, sin_r, odd);
    }} else {{
        v = select(sin_r, cos_r, odd);
        v = bitcast<f32>(bitcast<u32>(v) ^ (u32(q & 2) << 30u));
    }}
    if (which != 1u) {{ v = bitcast<f32>(bitcast<u32>(v) ^ (bitcast<u32>(x) & 0x80000000u)); }}
    return v;
}}
",
        limit = c(m::TRIG_INLINE_LIMIT),
        two_over_pi = c(std::f64::consts::FRAC_2_PI),
        s = poly("s", "z", &m::SIN_P),
        cos = poly("c", "z", &m::COS_P),
    )
}

/// `x^y` with the special cases of C's `pow`. Integer exponents up to 4 in
/// magnitude multiply (at most two roundings); others take
/// e^(y ln|x|) with the product split into a high and a low part.
const POW: &str = "\
fn k_pow(x: f32, y: f32) -> f32 {
    let nan = f32_bits(0x7fc00000u);
    let inf = f32_bits(0x7f800000u);
    if (y == 0.0 || x == 1.0) { return 1.0; }
    if (is_nan(x) || is_nan(y)) { return nan; }
    let ay = abs(y);
    let ax = abs(x);
    let y_int = ay >= 16777216.0 || (ay < inf && trunc(y) == y);
    let y_odd = ay < 16777216.0 && y_int && (i32(ay) & 1) == 1;
    let neg = x < 0.0 || (x == 0.0 && (bitcast<u32>(x) & 0x80000000u) != 0u);
    var r: f32;
    if (ay == inf) {
        if (x == -1.0) { return 1.0; }
        r = select(0.0, inf, (ax > 1.0) == (y > 0.0));
        return r;
    }
    if (ax == 0.0 || ax == inf) {
        r = select(0.0, inf, (ax == 0.0) == (y < 0.0));
    } else if (x < 0.0 && !y_int) {
        return nan;
    } else if (y_int && ay <= 4.0) {
        let a2 = ax * ax;
        if (ay == 1.0) { r = ax; } else if (ay == 2.0) { r = a2; } else if (ay == 3.0) { r = a2 * ax; } else { r = a2 * a2; }
        if (y < 0.0) { r = 1.0 / r; }
    } else {
        let l = k_log(ax);
        let hi = y * l;
        let lo = fma(y, l, -hi);
        let e = k_exp(hi);
        r = fma(e, lo, e);
    }
    if (neg && y_odd) { r = -r; }
    return r;
}
";

/// float16 bits (low 16 bits) to f32, exactly (NaN made quiet, as the
/// `half` crate does).
const F16_TO_F32: &str = "\
fn f16_to_f32(h: u32) -> f32 {
    let s = (h & 0x8000u) << 16u;
    let e = (h >> 10u) & 0x1fu;
    let m = h & 0x3ffu;
    if (e == 0u) { return bitcast<f32>(s | bitcast<u32>(f32(m) * 5.9604644775390625e-8)); }
    if (e == 31u) { return bitcast<f32>(s | 0x7f800000u | (m << 13u) | select(0u, 0x400000u, m != 0u)); }
    return bitcast<f32>(s | ((e + 112u) << 23u) | (m << 13u));
}
";

/// f32 to float16 bits, rounded to nearest, ties to even (the `half`
/// crate's conversion, NaN kept quiet with its top payload bits).
const F32_TO_F16: &str = "\
fn f32_to_f16(x: f32) -> u32 {
    let b = bitcast<u32>(x);
    let s = (b >> 16u) & 0x8000u;
    let a = b & 0x7fffffffu;
    if (a > 0x7f800000u) { return s | 0x7e00u | ((a >> 13u) & 0x3ffu); }
    if (a >= 0x47800000u) { return s | 0x7c00u; }
    let e = a >> 23u;
    let man = (a & 0x7fffffu) | 0x800000u;
    if (e >= 113u) {
        let h = ((e - 112u) << 10u) | ((a >> 13u) & 0x3ffu);
        let round = (a & 0x1000u) != 0u && (a & 0x2fffu) != 0u;
        return s | (h + select(0u, 1u, round));
    }
    if (e < 102u) { return s; }
    var hm = man >> (126u - e);
    let rb = 1u << (125u - e);
    if ((man & rb) != 0u && (man & (3u * rb - 1u)) != 0u) { hm = hm + 1u; }
    return s | hm;
}
";

/// A 64-bit magnitude (two words, low first) to f32, rounded to nearest,
/// ties to even: the leading bit moved to bit 63, the top 24 bits kept,
/// the next one rounding, the rest sticky.
const U64_TO_F32: &str = "\
fn u64_to_f32(lo: u32, hi: u32) -> f32 {
    if (hi == 0u && lo < 0x1000000u) { return f32(lo); }
    var p: u32;
    if (hi != 0u) { p = 32u + firstLeadingBit(hi); } else { p = firstLeadingBit(lo); }
    let s = 63u - p;
    var h: u32;
    var l: u32;
    if (s >= 32u) {
        h = lo << (s - 32u);
        l = 0u;
    } else if (s == 0u) {
        h = hi;
        l = lo;
    } else {
        h = (hi << s) | (lo >> (32u - s));
        l = lo << s;
    }
    let m = h >> 8u;
    let round = (h & 0x80u) != 0u;
    let sticky = (h & 0x7fu) != 0u || l != 0u;
    var bits = ((p + 127u) << 23u) | (m & 0x7fffffu);
    if (round && (sticky || (m & 1u) != 0u)) { bits = bits + 1u; }
    return bitcast<f32>(bits);
}
";

/// int64 (two words, low first, two's complement) to f32, rounded to
/// nearest (`u64_to_f32` of the magnitude).
const I64_TO_F32: &str = "\
fn i64_to_f32(lo: u32, hi: u32) -> f32 {
    if ((hi & 0x80000000u) == 0u) { return u64_to_f32(lo, hi); }
    let nlo = ~lo + 1u;
    let nhi = ~hi + select(0u, 1u, nlo == 0u);
    return -u64_to_f32(nlo, nhi);
}
";

/// Truncation toward zero, saturating, NaN giving 0 (Rust's `as`).
const F32_TO_I32: &str = "\
fn f32_to_i32(x: f32) -> i32 {
    if (is_nan(x)) { return 0; }
    if (x >= 2147483648.0) { return 2147483647; }
    if (x <= -2147483648.0) { return -2147483647 - 1; }
    return i32(x);
}
";

const F32_TO_U32: &str = "\
fn f32_to_u32(x: f32) -> u32 {
    if (!(x >= 1.0)) { return 0u; }
    if (x >= 4294967296.0) { return 0xffffffffu; }
    return u32(x);
}
";

/// To int64 as (low word, high word).
const F32_TO_I64: &str = "\
fn f32_to_i64(x: f32) -> vec2<u32> {
    if (is_nan(x)) { return vec2<u32>(0u, 0u); }
    if (x >= 9223372036854775808.0) { return vec2<u32>(0xffffffffu, 0x7fffffffu); }
    if (x <= -9223372036854775808.0) { return vec2<u32>(0u, 0x80000000u); }
    let m = abs(trunc(x));
    let hi = floor(m * 2.3283064365386963e-10);
    var l = u32(m - hi * 4294967296.0);
    var h = u32(hi);
    if (x < 0.0) {
        l = ~l + 1u;
        h = ~h + select(0u, 1u, l == 0u);
    }
    return vec2<u32>(l, h);
}
";

const F32_TO_U64: &str = "\
fn f32_to_u64(x: f32) -> vec2<u32> {
    if (!(x >= 1.0)) { return vec2<u32>(0u, 0u); }
    if (x >= 18446744073709551616.0) { return vec2<u32>(0xffffffffu, 0xffffffffu); }
    let m = trunc(x);
    let hi = floor(m * 2.3283064365386963e-10);
    return vec2<u32>(u32(m - hi * 4294967296.0), u32(hi));
}
";
