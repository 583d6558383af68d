//! Element-wise operators: arithmetic, comparisons, logic, the unary
//! functions and activations, clamp, prelu, where and the predicates
//! (`isNaN`, `isInfinite`).

use super::{broadcast_map, encode, encode_f64, floats, gather_elements, Res};
use crate::{BinaryOp, CompareOp, LogicalOp, Number, OperandDescriptor, PredicateOp, Tensor, UnaryOp, Values};

/// `a op b` with numpy broadcasting. Floats in `f64`; integers exact, wrapped
/// to the output type (see the module documentation of `interp` for
/// division and `pow`).
pub(super) fn binary(kind: BinaryOp, a: &Tensor, b: &Tensor, out: &OperandDescriptor) -> Res<Tensor> {
    let (ia, ib) = (broadcast_map(a.shape().dims(), out.shape.dims())?, broadcast_map(b.shape().dims(), out.shape.dims())?);
    match (a.values(), b.values()) {
        (Values::Float(x), Values::Float(y)) => {
            let f: fn(f64, f64) -> f64 = match kind {
                BinaryOp::Add => |a, b| a + b,
                BinaryOp::Sub => |a, b| a - b,
                BinaryOp::Mul => |a, b| a * b,
                BinaryOp::Div => |a, b| a / b,
                BinaryOp::Max => fmax,
                BinaryOp::Min => fmin,
                BinaryOp::Pow => f64::powf,
            };
            encode_f64(out, ia.iter().zip(&ib).map(|(&i, &j)| f(x[i], y[j])).collect())
        }
        (Values::Int(x), Values::Int(y)) => {
            let f: fn(i128, i128) -> i128 = match kind {
                BinaryOp::Add => i128::wrapping_add,
                BinaryOp::Sub => i128::wrapping_sub,
                BinaryOp::Mul => i128::wrapping_mul,
                BinaryOp::Div => |a, b| if b == 0 { 0 } else { a.wrapping_div(b) },
                BinaryOp::Max => |a, b| a.max(b),
                BinaryOp::Min => |a, b| a.min(b),
                BinaryOp::Pow => int_pow,
            };
            encode(out, Values::Int(ia.iter().zip(&ib).map(|(&i, &j)| f(x[i], y[j])).collect()))
        }
        _ => Err("the operands have different data types".into()),
    }
}

/// JavaScript `Math.max`: NaN if either is NaN; `max(-0, +0)` is `+0`.
fn fmax(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else if a == b {
        if a.is_sign_negative() { b } else { a }
    } else {
        a.max(b)
    }
}

/// JavaScript `Math.min`: NaN if either is NaN; `min(-0, +0)` is `-0`.
fn fmin(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else if a == b {
        if a.is_sign_negative() { a } else { b }
    } else {
        a.min(b)
    }
}

/// Exact integer power (wrapping at 128 bits). A negative exponent gives the
/// truncated quotient `1 / a^-b`: 1 for `a = 1`, ±1 for `a = -1`, else 0.
fn int_pow(base: i128, exp: i128) -> i128 {
    if exp < 0 {
        return match base {
            1 => 1,
            -1 => if exp % 2 == 0 { 1 } else { -1 },
            _ => 0,
        };
    }
    let (mut result, mut base, mut exp) = (1i128, base, exp);
    while exp > 0 {
        if exp & 1 == 1 {
            result = result.wrapping_mul(base);
        }
        base = base.wrapping_mul(base);
        exp >>= 1;
    }
    result
}

/// Comparisons with broadcasting; uint8 1 for true, 0 for false. Floats
/// compare as IEEE numbers (NaN is unequal to everything).
pub(super) fn compare(kind: CompareOp, a: &Tensor, b: &Tensor, out: &OperandDescriptor) -> Res<Tensor> {
    let (ia, ib) = (broadcast_map(a.shape().dims(), out.shape.dims())?, broadcast_map(b.shape().dims(), out.shape.dims())?);
    fn apply<T: PartialOrd>(kind: CompareOp, x: &[T], y: &[T], ia: &[usize], ib: &[usize]) -> Vec<i128> {
        ia.iter()
            .zip(ib)
            .map(|(&i, &j)| {
                let (a, b) = (&x[i], &y[j]);
                let r = match kind {
                    CompareOp::Equal => a == b,
                    CompareOp::NotEqual => a != b,
                    CompareOp::Greater => a > b,
                    CompareOp::GreaterOrEqual => a >= b,
                    CompareOp::Lesser => a < b,
                    CompareOp::LesserOrEqual => a <= b,
                };
                i128::from(r)
            })
            .collect()
    }
    let result = match (a.values(), b.values()) {
        (Values::Float(x), Values::Float(y)) => apply(kind, &x, &y, &ia, &ib),
        (Values::Int(x), Values::Int(y)) => apply(kind, &x, &y, &ia, &ib),
        _ => return Err("the operands have different data types".into()),
    };
    encode(out, Values::Int(result))
}

/// Logical operators on uint8 with broadcasting: non-zero is true; the
/// result is 1 or 0.
pub(super) fn logical(kind: LogicalOp, a: &Tensor, b: &Tensor, out: &OperandDescriptor) -> Res<Tensor> {
    let (ia, ib) = (broadcast_map(a.shape().dims(), out.shape.dims())?, broadcast_map(b.shape().dims(), out.shape.dims())?);
    let (Values::Int(x), Values::Int(y)) = (a.values(), b.values()) else {
        return Err("logical operators take uint8 operands".into());
    };
    let f = |p: bool, q: bool| match kind {
        LogicalOp::And => p && q,
        LogicalOp::Or => p || q,
        LogicalOp::Xor => p != q,
    };
    encode(out, Values::Int(ia.iter().zip(&ib).map(|(&i, &j)| i128::from(f(x[i] != 0, y[j] != 0))).collect()))
}

/// The unary functions. `abs`, `neg`, `relu` and `sign` also take signed integers
/// (exact, wrapped: `abs(-128)` in int8 is -128); `identity` copies any
/// type bit for bit; `logicalNot` maps uint8 0 to 1 and anything else to 0.
///
/// `gelu` is the exact form `0.5 x (1 + erf(x / sqrt 2))`, computed as
/// `0.5 x erfc(-x / sqrt 2)` so the negative tail keeps its precision;
/// `softplus` is `ln(1 + e^x)`, `softsign` is `x / (1 + |x|)`, `hardSwish`
/// is `x * clamp(x + 3, 0, 6) / 6`.
pub(super) fn unary(kind: UnaryOp, input: &Tensor, out: &OperandDescriptor) -> Res<Tensor> {
    if kind == UnaryOp::Identity {
        let map: Vec<usize> = (0..out.shape.element_count()).collect();
        return gather_elements(input, &map, out);
    }
    match input.values() {
        Values::Int(v) => {
            let f: fn(i128) -> i128 = match kind {
                UnaryOp::Abs => i128::wrapping_abs,
                UnaryOp::Neg => i128::wrapping_neg,
                UnaryOp::Relu => |x| x.max(0),
                UnaryOp::LogicalNot => |x| i128::from(x == 0),
                UnaryOp::Sign => i128::signum,
                _ => return Err(format!("{} is not defined on {}", kind.name(), input.data_type())),
            };
            encode(out, Values::Int(v.into_iter().map(f).collect()))
        }
        Values::Float(v) => {
            let f: fn(f64) -> f64 = match kind {
                UnaryOp::Abs => f64::abs,
                UnaryOp::Ceil => f64::ceil,
                UnaryOp::Floor => f64::floor,
                UnaryOp::RoundEven => f64::round_ties_even,
                UnaryOp::Exp => f64::exp,
                UnaryOp::Log => f64::ln,
                UnaryOp::Neg => |x| -x,
                UnaryOp::Sqrt => f64::sqrt,
                UnaryOp::Erf => erf,
                UnaryOp::Reciprocal => |x| 1.0 / x,
                UnaryOp::Sin => f64::sin,
                UnaryOp::Cos => f64::cos,
                UnaryOp::Tan => f64::tan,
                UnaryOp::Tanh => f64::tanh,
                UnaryOp::Sigmoid => sigmoid,
                UnaryOp::Relu => |x| if x < 0.0 { 0.0 } else { x },
                UnaryOp::HardSwish => |x| x * clamp_nan(x + 3.0, 0.0, 6.0) / 6.0,
                UnaryOp::Gelu => |x| 0.5 * x * erfc(-x * std::f64::consts::FRAC_1_SQRT_2),
                UnaryOp::Softplus => softplus,
                UnaryOp::Softsign => |x| x / (1.0 + x.abs()),
                UnaryOp::Silu => |x| x * sigmoid(x),
                UnaryOp::Mish => |x| x * softplus(x).tanh(),
                UnaryOp::GeluTanh => gelu_tanh,
                UnaryOp::Sign => sign,
                UnaryOp::LogicalNot | UnaryOp::Identity => {
                    return Err(format!("{} is not defined on {}", kind.name(), input.data_type()));
                }
            };
            encode_f64(out, v.into_iter().map(f).collect())
        }
    }
}

/// `sign`: -1 below zero, 1 above, and the value itself otherwise (so
/// both zeros keep their sign and NaN stays NaN).
fn sign(x: f64) -> f64 {
    if x > 0.0 {
        1.0
    } else if x < 0.0 {
        -1.0
    } else {
        x
    }
}

/// `isNaN` and `isInfinite`: 1 where the element is NaN (respectively
/// ±infinity), else 0, as uint8; integers are never either.
pub(super) fn predicate(kind: PredicateOp, a: &Tensor, out: &OperandDescriptor) -> Res<Tensor> {
    let flags = match a.values() {
        Values::Int(v) => vec![0; v.len()],
        Values::Float(v) => v
            .iter()
            .map(|x| {
                i128::from(match kind {
                    PredicateOp::IsNaN => x.is_nan(),
                    PredicateOp::IsInfinite => x.is_infinite(),
                })
            })
            .collect(),
    };
    encode(out, Values::Int(flags))
}

/// Applies `f` to every element of a floating-point tensor.
pub(super) fn map_float(input: &Tensor, out: &OperandDescriptor, f: impl Fn(f64) -> f64) -> Res<Tensor> {
    encode_f64(out, floats(input)?.into_iter().map(f).collect())
}

/// `min(max(x, lo), hi)` that lets a NaN `x` through.
pub(super) fn clamp_nan(x: f64, lo: f64, hi: f64) -> f64 {
    let y = if x < lo { lo } else { x };
    if y > hi { hi } else { y }
}

fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// `0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³)))`, the tanh approximation
/// of gelu (ONNX `Gelu` with `approximate="tanh"`), computed as the equal
/// `x sigmoid(2√(2/π) (x + 0.044715 x³))`, which does not cancel to 0 for
/// negative x.
fn gelu_tanh(x: f64) -> f64 {
    let k = (8.0 / std::f64::consts::PI).sqrt();
    x * sigmoid(k * (x + 0.044715 * x * x * x))
}

fn softplus(x: f64) -> f64 {
    // ln(1 + e^x) = max(x, 0) + ln(1 + e^-|x|), without overflow.
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

/// The error function, to about one ulp of `f64`.
///
/// `|x| < 2.5`: the series `erf x = 2/sqrt(pi) e^(-x^2) Σ 2^n x^(2n+1) /
/// (1·3·…·(2n+1))`, whose terms are all positive (no cancellation).
/// Beyond, `1 - erfc |x|` with the continued fraction for `erfc`.
pub fn erf(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    let a = x.abs();
    let r = if a < 2.5 { erf_series(a) } else { 1.0 - erfc_continued_fraction(a) };
    if x < 0.0 { -r } else { r }
}

/// The complementary error function `1 - erf x`, accurate in both tails.
pub fn erfc(x: f64) -> f64 {
    if x.is_nan() {
        x
    } else if x < 0.0 {
        2.0 - erfc(-x)
    } else if x < 2.5 {
        1.0 - erf_series(x)
    } else {
        erfc_continued_fraction(x)
    }
}

fn erf_series(x: f64) -> f64 {
    let x2 = x * x;
    let mut term = x;
    let mut sum = x;
    let mut n = 0.0;
    while term > sum * 1e-17 {
        n += 1.0;
        term *= 2.0 * x2 / (2.0 * n + 1.0);
        sum += term;
    }
    std::f64::consts::FRAC_2_SQRT_PI * (-x2).exp() * sum
}

/// `erfc x` for `x >= 2.5` by the continued fraction
/// `e^(-x^2)/sqrt(pi) · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + ...))))`,
/// evaluated with the modified Lentz method.
fn erfc_continued_fraction(x: f64) -> f64 {
    if x > 27.0 {
        return 0.0;
    }
    let tiny = 1e-300;
    let mut f = x;
    let mut c = x;
    let mut d = 0.0;
    for k in 1..500 {
        let a = k as f64 / 2.0;
        d = x + a * d;
        if d.abs() < tiny {
            d = tiny;
        }
        c = x + a / c;
        if c.abs() < tiny {
            c = tiny;
        }
        d = 1.0 / d;
        let delta = c * d;
        f *= delta;
        if (delta - 1.0).abs() < 1e-16 {
            break;
        }
    }
    (-x * x).exp() / (f * std::f64::consts::PI.sqrt())
}

/// Clamps to `[minValue, maxValue]`; a missing or NaN bound does not
/// clamp. Floats: NaN elements pass through. Integers compare exactly: a
/// float bound is rounded inward (`ceil` for the minimum, `floor` for the
/// maximum) and every bound is saturated to the data type's range.
pub(super) fn clamp(input: &Tensor, lo: Option<Number>, hi: Option<Number>, out: &OperandDescriptor) -> Res<Tensor> {
    match input.values() {
        Values::Float(v) => {
            let bound = |b: Option<Number>, default: f64| match b.map(Number::as_f64) {
                Some(x) if !x.is_nan() => x,
                _ => default,
            };
            let (lo, hi) = (bound(lo, f64::NEG_INFINITY), bound(hi, f64::INFINITY));
            encode_f64(out, v.into_iter().map(|x| clamp_nan(x, lo, hi)).collect())
        }
        Values::Int(v) => {
            let (tmin, tmax) = input.data_type().int_range().ok_or("integer type without a range")?;
            let bound = |b: Option<Number>, upper: bool| -> i128 {
                let exact = match b {
                    None => None,
                    Some(Number::Int(i)) => Some(i),
                    Some(Number::Float(f)) if f.is_nan() => None,
                    Some(Number::Float(f)) => {
                        let f = if upper { f.floor() } else { f.ceil() };
                        Some(if f <= tmin as f64 { tmin } else if f >= tmax as f64 { tmax } else { f as i128 })
                    }
                };
                exact.map_or(if upper { tmax } else { tmin }, |x| x.clamp(tmin, tmax))
            };
            let (lo, hi) = (bound(lo, false), bound(hi, true));
            encode(out, Values::Int(v.into_iter().map(|x| x.max(lo).min(hi)).collect()))
        }
    }
}

/// `x >= 0 ? x : slope * x`, the slope broadcast to the output shape.
pub(super) fn prelu(input: &Tensor, slope: &Tensor, out: &OperandDescriptor) -> Res<Tensor> {
    let (ix, is) = (broadcast_map(input.shape().dims(), out.shape.dims())?, broadcast_map(slope.shape().dims(), out.shape.dims())?);
    match (input.values(), slope.values()) {
        (Values::Float(x), Values::Float(s)) => encode_f64(
            out,
            ix.iter().zip(&is).map(|(&i, &j)| if x[i] < 0.0 { s[j] * x[i] } else { x[i] }).collect(),
        ),
        (Values::Int(x), Values::Int(s)) => encode(
            out,
            Values::Int(ix.iter().zip(&is).map(|(&i, &j)| if x[i] < 0 { s[j].wrapping_mul(x[i]) } else { x[i] }).collect()),
        ),
        _ => Err("input and slope have different data types".into()),
    }
}

/// `condition ? trueValue : falseValue`, all three broadcast to the output;
/// a non-zero uint8 condition is true. Copies element bytes.
pub(super) fn where_(condition: &Tensor, t: &Tensor, f: &Tensor, out: &OperandDescriptor) -> Res<Tensor> {
    let to = out.shape.dims();
    let (ic, it, jf) = (broadcast_map(condition.shape().dims(), to)?, broadcast_map(t.shape().dims(), to)?, broadcast_map(f.shape().dims(), to)?);
    let Values::Int(c) = condition.values() else {
        return Err("the condition must be uint8".into());
    };
    if t.data_type() != out.data_type || f.data_type() != out.data_type {
        return Err("trueValue and falseValue must have the output's data type".into());
    }
    let size = out.data_type.byte_size();
    let (tb, fb) = (t.bytes(), f.bytes());
    let mut bytes = Vec::with_capacity(ic.len() * size);
    for k in 0..ic.len() {
        let (src, i) = if c[ic[k]] != 0 { (tb, it[k]) } else { (fb, jf[k]) };
        bytes.extend_from_slice(src.get(i * size..(i + 1) * size).ok_or("element index out of range")?);
    }
    Tensor::from_bytes(out.clone(), bytes).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erf_matches_reference_values() {
        // Reference values from Abramowitz & Stegun / high-precision tables.
        let cases = [
            (0.0, 0.0),
            (0.1, 0.1124629160182849),
            (0.5, 0.5204998778130465),
            (1.0, 0.8427007929497149),
            (2.0, 0.9953222650189527),
            (2.5, 0.999593047982555),
            (3.0, 0.9999779095030014),
            (4.0, 0.9999999845827421),
        ];
        for (x, want) in cases {
            assert!((erf(x) - want).abs() < 1e-15, "erf({x}) = {} want {want}", erf(x));
            assert!((erf(-x) + want).abs() < 1e-15);
        }
        // erfc in the far tail: erfc(5) = 1.537_459_794_428_035e-12.
        assert!((erfc(5.0) / 1.537_459_794_428_035e-12 - 1.0).abs() < 1e-13);
        assert!((erfc(-5.0) - (2.0 - 1.537_459_794_428_035e-12)).abs() < 1e-15);
        assert!(erf(f64::NAN).is_nan());
        assert_eq!(erf(f64::INFINITY), 1.0);
    }

    #[test]
    fn int_pow_is_exact() {
        assert_eq!(int_pow(3, 40), 12157665459056928801);
        assert_eq!(int_pow(-2, 3), -8);
        assert_eq!(int_pow(5, 0), 1);
        assert_eq!(int_pow(2, -1), 0);
        assert_eq!(int_pow(-1, -3), -1);
    }
}
