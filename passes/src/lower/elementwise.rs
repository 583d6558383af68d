//! Elementwise operators: unary, binary, comparison and logical
//! operators, `clamp`, the activations `elu`, `leakyRelu`, `hardSigmoid`,
//! `linear` and `prelu`, `where`, `cast`, `isNaN` and `isInfinite`. Each is one Map over the
//! output's shape ([`Lowerer::elementwise`]), its inputs broadcast to it by
//! zero coefficients; `identity` and a cast to the same type alias their
//! input instead. Results compute in f32 and int8/uint8 results that can
//! leave their range wrap ([`E::wrap`]), as the interpreter does.

use kiln_ir::kernel::{BinaryFn, UnaryFn};
use kiln_ir::{BinaryOp, CompareOp, DataType, LogicalOp, Number, OperandId, PredicateOp, UnaryOp};

use super::exactness::{CastRule, cast_rule, round_to};
use super::values::{E, V};
use super::{Lowerer, R};

impl Lowerer<'_> {
    /// `add`, `sub`, `mul`, `div`, `max`, `min`, `pow`.
    pub(super) fn binary(&mut self, kind: BinaryOp, a: OperandId, b: OperandId, out: OperandId) -> R {
        let t = self.desc(a).data_type;
        self.elementwise(out, &[a, b], |e, x| {
            let (p, q) = (x[0], x[1]);
            match kind {
                BinaryOp::Add => {
                    let r = e.add(p, q);
                    e.wrap(r, t)
                }
                BinaryOp::Sub => {
                    let r = e.sub(p, q);
                    e.wrap(r, t)
                }
                BinaryOp::Mul => {
                    let r = e.mul(p, q);
                    e.wrap(r, t)
                }
                BinaryOp::Div if t.is_float() => e.div(p, q),
                BinaryOp::Div => {
                    // Integer division truncates; division by zero gives 0.
                    let zero = e.c(0.0);
                    let by_zero = e.bin(BinaryFn::Equal, q, zero);
                    let d = e.div(p, q);
                    let d = e.un(UnaryFn::Trunc, d);
                    let d = e.wrap(d, t);
                    e.sel(by_zero, zero, d)
                }
                BinaryOp::Max => e.bin(BinaryFn::Max, p, q),
                BinaryOp::Min => e.bin(BinaryFn::Min, p, q),
                BinaryOp::Pow => e.bin(BinaryFn::Pow, p, q),
            }
        });
        Ok(())
    }

    /// `equal`, `notEqual`, `greater`, `greaterOrEqual`, `lesser`,
    /// `lesserOrEqual`: 1 or 0.
    pub(super) fn compare(&mut self, kind: CompareOp, a: OperandId, b: OperandId, out: OperandId) -> R {
        self.elementwise(out, &[a, b], |e, x| {
            let f = match kind {
                CompareOp::Equal | CompareOp::NotEqual => BinaryFn::Equal,
                CompareOp::Greater => BinaryFn::Greater,
                CompareOp::GreaterOrEqual => BinaryFn::GreaterOrEqual,
                CompareOp::Lesser => BinaryFn::Lesser,
                CompareOp::LesserOrEqual => BinaryFn::LesserOrEqual,
            };
            let r = e.bin(f, x[0], x[1]);
            if kind == CompareOp::NotEqual {
                let one = e.c(1.0);
                e.sub(one, r)
            } else {
                r
            }
        });
        Ok(())
    }

    /// `logicalAnd`, `logicalOr`, `logicalXor`: nonzero is true; 1 or 0.
    pub(super) fn logical(&mut self, kind: LogicalOp, a: OperandId, b: OperandId, out: OperandId) -> R {
        self.elementwise(out, &[a, b], |e, x| {
            let (zero, one) = (e.c(0.0), e.c(1.0));
            let za = e.bin(BinaryFn::Equal, x[0], zero);
            let zb = e.bin(BinaryFn::Equal, x[1], zero);
            let (pa, pb) = (e.sub(one, za), e.sub(one, zb));
            match kind {
                LogicalOp::And => e.mul(pa, pb),
                LogicalOp::Or => e.bin(BinaryFn::Max, pa, pb),
                LogicalOp::Xor => {
                    let same = e.bin(BinaryFn::Equal, pa, pb);
                    e.sub(one, same)
                }
            }
        });
        Ok(())
    }

    /// The unary operators, `relu`, `sigmoid`, `gelu`, `softplus`,
    /// `softsign`, `hardSwish`, `logicalNot` and kiln's `silu`, `mish` and
    /// `geluTanh` among them.
    pub(super) fn unary(&mut self, kind: UnaryOp, input: OperandId, out: OperandId) -> R {
        let t = self.desc(input).data_type;
        if kind == UnaryOp::Identity {
            let x = self.val(input);
            self.alias(out, &x);
            return Ok(());
        }
        let simple = |f: UnaryFn| move |e: &mut E, x: &[V]| e.un(f, x[0]);
        match kind {
            UnaryOp::Abs => self.elementwise(out, &[input], |e, x| {
                let r = e.un(UnaryFn::Abs, x[0]);
                e.wrap(r, t)
            }),
            UnaryOp::Neg => self.elementwise(out, &[input], |e, x| {
                let r = e.un(UnaryFn::Neg, x[0]);
                e.wrap(r, t)
            }),
            UnaryOp::Ceil => self.elementwise(out, &[input], simple(UnaryFn::Ceil)),
            UnaryOp::Floor => self.elementwise(out, &[input], simple(UnaryFn::Floor)),
            UnaryOp::RoundEven => self.elementwise(out, &[input], simple(UnaryFn::RoundEven)),
            UnaryOp::Exp => self.elementwise(out, &[input], simple(UnaryFn::Exp)),
            UnaryOp::Log => self.elementwise(out, &[input], simple(UnaryFn::Log)),
            UnaryOp::Sqrt => self.elementwise(out, &[input], simple(UnaryFn::Sqrt)),
            UnaryOp::Erf => self.elementwise(out, &[input], simple(UnaryFn::Erf)),
            UnaryOp::Sin => self.elementwise(out, &[input], simple(UnaryFn::Sin)),
            UnaryOp::Cos => self.elementwise(out, &[input], simple(UnaryFn::Cos)),
            UnaryOp::Tan => self.elementwise(out, &[input], simple(UnaryFn::Tan)),
            UnaryOp::Tanh => self.elementwise(out, &[input], simple(UnaryFn::Tanh)),
            UnaryOp::Reciprocal => self.elementwise(out, &[input], |e, x| {
                let one = e.c(1.0);
                e.div(one, x[0])
            }),
            UnaryOp::Sigmoid => self.elementwise(out, &[input], |e, x| sigmoid(e, x[0])),
            UnaryOp::Silu => self.elementwise(out, &[input], |e, x| {
                let s = sigmoid(e, x[0]);
                e.mul(x[0], s)
            }),
            UnaryOp::Mish => self.elementwise(out, &[input], |e, x| {
                let sp = softplus(e, x[0]);
                let t = e.un(UnaryFn::Tanh, sp);
                e.mul(x[0], t)
            }),
            UnaryOp::GeluTanh => self.elementwise(out, &[input], |e, x| {
                // 0.5 x (1 + tanh z) = x sigmoid(2z), z = √(2/π) (x +
                // 0.044715 x³): no cancellation in 1 + tanh z for x < 0.
                let (k, two_k) = (e.c(0.044715), e.c((8.0 / std::f64::consts::PI).sqrt() as f32));
                let x2 = e.mul(x[0], x[0]);
                let x3 = e.mul(x2, x[0]);
                let kx3 = e.mul(k, x3);
                let inner = e.add(x[0], kx3);
                let z2 = e.mul(two_k, inner);
                let s = sigmoid(e, z2);
                e.mul(x[0], s)
            }),
            UnaryOp::Sign => self.elementwise(out, &[input], |e, x| {
                // x > 0 ? 1 : x < 0 ? -1 : x (±0 and NaN pass through). Exact
                // for every type: converting an integer to f32 keeps its sign.
                let (zero, one, minus_one) = (e.c(0.0), e.c(1.0), e.c(-1.0));
                let neg = e.bin(BinaryFn::Lesser, x[0], zero);
                let r = e.sel(neg, minus_one, x[0]);
                let pos = e.bin(BinaryFn::Greater, x[0], zero);
                e.sel(pos, one, r)
            }),
            UnaryOp::Relu => self.elementwise(out, &[input], |e, x| {
                // x < 0 ? 0 : x (NaN and -0 pass through, as in the interpreter).
                let neg = e.negative(x[0]);
                let zero = e.c(0.0);
                e.sel(neg, zero, x[0])
            }),
            UnaryOp::HardSwish => self.elementwise(out, &[input], |e, x| {
                let (three, six) = (e.c(3.0), e.c(6.0));
                let s = e.add(x[0], three);
                let c = e.clamp(s, Some(0.0), Some(6.0));
                let p = e.mul(x[0], c);
                e.div(p, six)
            }),
            UnaryOp::Gelu => self.elementwise(out, &[input], |e, x| {
                // 0.5 x Φ2 with Φ2 = 1 + erf(x / sqrt 2) for x >= 0 and, where
                // that cancels (x < 0), Φ2 = erfc(|x| / sqrt 2) = erfc(z):
                // erfc z = t e^(-z^2 + P(t)), t = 1 / (1 + z / 2), the
                // Chebyshev fit of Numerical Recipes' `erfcc` (relative error
                // below 1.2e-7 for every z >= 0). -z^2 = -x^2 / 2 is split
                // exactly (Veltkamp: x = xh + xl, xh with 12 significant
                // bits) into -xh^2 / 2 and a small rest, each through its own
                // exp, so the result keeps its relative precision however
                // far out x is. x is clamped at -20 there (Φ2 underflows).
                let (half, one) = (e.c(0.5), e.c(1.0));
                let r = e.c(std::f32::consts::FRAC_1_SQRT_2);
                let s = e.mul(x[0], r);
                let er = e.un(UnaryFn::Erf, s);
                let upper = e.add(one, er);
                let floor = e.c(-20.0);
                let xc = e.bin(BinaryFn::Max, x[0], floor);
                let a = e.un(UnaryFn::Abs, xc);
                let z = e.mul(a, r);
                let hz = e.mul(half, z);
                let d = e.add(one, hz);
                let t = e.div(one, d);
                // The published coefficients, digit for digit.
                #[allow(clippy::excessive_precision)]
                const P: [f32; 10] = [
                    -1.265_512_2,
                    1.000_023_7,
                    0.374_091_96,
                    0.096_784_18,
                    -0.186_288_06,
                    0.278_868_07,
                    -1.135_203_98,
                    1.488_515_87,
                    -0.822_152_23,
                    0.170_872_77,
                ];
                let mut p = e.c(P[9]);
                for &c in P[..9].iter().rev() {
                    let pt = e.mul(p, t);
                    let k = e.c(c);
                    p = e.add(pt, k);
                }
                let split = e.c(4097.0);
                let c = e.mul(split, xc);
                let cx = e.sub(c, xc);
                let xh = e.sub(c, cx);
                let xl = e.sub(xc, xh);
                let nhalf = e.c(-0.5);
                let hh = e.mul(xh, xh);
                let big = e.mul(hh, nhalf); // -xh^2 / 2, exact
                let hl = e.mul(xh, xl);
                let ll = e.mul(xl, xl);
                let ll2 = e.mul(ll, nhalf);
                let rest = e.sub(ll2, hl); // -xh xl - xl^2 / 2
                let rest = e.add(rest, p);
                let e1 = e.un(UnaryFn::Exp, big);
                let e2 = e.un(UnaryFn::Exp, rest);
                let te1 = e.mul(t, e1);
                let lower = e.mul(te1, e2);
                let neg = e.negative(x[0]);
                let phi2 = e.sel(neg, lower, upper);
                let hx = e.mul(half, x[0]);
                e.mul(hx, phi2)
            }),
            UnaryOp::Softplus => self.elementwise(out, &[input], |e, x| softplus(e, x[0])),
            UnaryOp::Softsign => self.elementwise(out, &[input], |e, x| {
                let one = e.c(1.0);
                let a = e.un(UnaryFn::Abs, x[0]);
                let d = e.add(one, a);
                e.div(x[0], d)
            }),
            UnaryOp::LogicalNot => self.elementwise(out, &[input], |e, x| {
                let zero = e.c(0.0);
                e.bin(BinaryFn::Equal, x[0], zero)
            }),
            UnaryOp::Identity => unreachable!("handled above"),
        }
        Ok(())
    }

    /// `clamp`, with the interpreter's bounds.
    pub(super) fn clamp(&mut self, input: OperandId, lo: Option<Number>, hi: Option<Number>, out: OperandId) -> R {
        let t = self.desc(input).data_type;
        let (lo, hi) = match t.int_range() {
            None => {
                // A missing or NaN bound does not clamp; a bound is rounded
                // to the data type (a clamped element is that value).
                let bound = |b: Option<Number>| b.map(Number::as_f64).filter(|x| !x.is_nan()).map(|x| round_to(t, x));
                (bound(lo), bound(hi))
            }
            Some((tmin, tmax)) => {
                // The interpreter's integer bounds: float bounds rounded
                // inward, every bound saturated to the type.
                let bound = |b: Option<Number>, upper: bool| -> i128 {
                    let exact = match b {
                        None => None,
                        Some(Number::Int(i)) => Some(i),
                        Some(Number::Float(f)) if f.is_nan() => None,
                        Some(Number::Float(f)) => {
                            let f = if upper { f.floor() } else { f.ceil() };
                            Some(if f <= tmin as f64 {
                                tmin
                            } else if f >= tmax as f64 {
                                tmax
                            } else {
                                f as i128
                            })
                        }
                    };
                    exact.map_or(if upper { tmax } else { tmin }, |x| x.clamp(tmin, tmax))
                };
                (Some(bound(lo, false) as f32), Some(bound(hi, true) as f32))
            }
        };
        self.elementwise(out, &[input], |e, x| e.clamp(x[0], lo, hi));
        Ok(())
    }

    /// `elu`: `x < 0 ? alpha * (e^x - 1) : x`.
    pub(super) fn elu(&mut self, input: OperandId, alpha: f64, out: OperandId) -> R {
        let alpha = alpha as f32;
        self.elementwise(out, &[input], |e, x| {
            let neg = e.negative(x[0]);
            let m = e.expm1(x[0]);
            let a = e.c(alpha);
            let scaled = e.mul(a, m);
            e.sel(neg, scaled, x[0])
        });
        Ok(())
    }

    /// `leakyRelu`: `x < 0 ? alpha * x : x`.
    pub(super) fn leaky_relu(&mut self, input: OperandId, alpha: f64, out: OperandId) -> R {
        let alpha = alpha as f32;
        self.elementwise(out, &[input], |e, x| {
            let neg = e.negative(x[0]);
            let a = e.c(alpha);
            let scaled = e.mul(a, x[0]);
            e.sel(neg, scaled, x[0])
        });
        Ok(())
    }

    /// `hardSigmoid`: `alpha * x + beta` clamped to [0, 1].
    pub(super) fn hard_sigmoid(&mut self, input: OperandId, alpha: f64, beta: f64, out: OperandId) -> R {
        let (alpha, beta) = (alpha as f32, beta as f32);
        self.elementwise(out, &[input], |e, x| {
            let (a, b) = (e.c(alpha), e.c(beta));
            let ax = e.mul(a, x[0]);
            let y = e.add(ax, b);
            e.clamp(y, Some(0.0), Some(1.0))
        });
        Ok(())
    }

    /// `linear`: `alpha * x + beta`.
    pub(super) fn linear(&mut self, input: OperandId, alpha: f64, beta: f64, out: OperandId) -> R {
        let (alpha, beta) = (alpha as f32, beta as f32);
        self.elementwise(out, &[input], |e, x| {
            let (a, b) = (e.c(alpha), e.c(beta));
            let ax = e.mul(a, x[0]);
            e.add(ax, b)
        });
        Ok(())
    }

    /// `prelu`: `x < 0 ? slope * x : x`, the slope broadcast.
    pub(super) fn prelu(&mut self, input: OperandId, slope: OperandId, out: OperandId) -> R {
        let t = self.desc(input).data_type;
        self.elementwise(out, &[input, slope], |e, x| {
            let neg = e.negative(x[0]);
            let p = e.mul(x[1], x[0]);
            let p = e.wrap(p, t);
            e.sel(neg, p, x[0])
        });
        Ok(())
    }

    /// `cast`, by [`cast_rule`]: an alias for the same type, else a converting
    /// (or wrapping) Map.
    pub(super) fn cast(&mut self, input: OperandId, data_type: DataType, out: OperandId) -> R {
        let from = self.desc(input).data_type;
        match cast_rule(from, data_type)? {
            CastRule::Copy => {
                let x = self.val(input);
                self.alias(out, &x);
            }
            CastRule::Convert => self.elementwise(out, &[input], |_, x| x[0]),
            CastRule::Wrap => {
                let to = data_type;
                self.elementwise(out, &[input], |e, x| e.wrap(x[0], to));
            }
        }
        Ok(())
    }

    /// `isNaN` (`x != x`) and `isInfinite` (`|x| == ∞`): 1 or 0. Exact for
    /// every type: an integer converts to a finite f32.
    pub(super) fn predicate(&mut self, kind: PredicateOp, a: OperandId, out: OperandId) -> R {
        self.elementwise(out, &[a], |e, x| match kind {
            PredicateOp::IsNaN => {
                let one = e.c(1.0);
                let ordered = e.bin(BinaryFn::Equal, x[0], x[0]);
                e.sub(one, ordered)
            }
            PredicateOp::IsInfinite => {
                let inf = e.c(f32::INFINITY);
                let m = e.un(UnaryFn::Abs, x[0]);
                e.bin(BinaryFn::Equal, m, inf)
            }
        });
        Ok(())
    }

    /// `where`: a Select (the condition is true when nonzero).
    pub(super) fn where_(
        &mut self,
        condition: OperandId,
        true_value: OperandId,
        false_value: OperandId,
        out: OperandId,
    ) -> R {
        self.elementwise(out, &[condition, true_value, false_value], |e, x| e.sel(x[0], x[1], x[2]));
        Ok(())
    }
}

/// `sigmoid(x)`: with t = e^-|x| (never overflows), 1 / (1 + t) for x >= 0
/// and t / (1 + t) for x < 0, so tiny results keep their precision. The
/// micro-kernels recognise exactly this form (codegen's `bias_clamp`).
pub(super) fn sigmoid(e: &mut E, x: V) -> V {
    let one = e.c(1.0);
    let a = e.un(UnaryFn::Abs, x);
    let na = e.un(UnaryFn::Neg, a);
    let t = e.un(UnaryFn::Exp, na);
    let d = e.add(one, t);
    let neg = e.negative(x);
    let num = e.sel(neg, t, one);
    e.div(num, d)
}

/// `softplus(x) = max(x, 0) + ln(1 + e^-|x|)`: no overflow, accurate tails.
fn softplus(e: &mut E, x: V) -> V {
    let zero = e.c(0.0);
    let m = e.bin(BinaryFn::Max, x, zero);
    let a = e.un(UnaryFn::Abs, x);
    let na = e.un(UnaryFn::Neg, a);
    let ex = e.un(UnaryFn::Exp, na);
    let l = e.log1p(ex);
    e.add(m, l)
}
