//! A GEMM epilogue expression as an AVX-512 function over one row of the
//! output tile: `fn(row: *mut f32, cols: u64, in0, .., in3: *const f32)`
//! replaces `row[j]` by `epilogue(acc = row[j], loads)` for `j < cols`, 16
//! columns per zmm and the last `cols % 16` under a mask (no access past
//! `cols`). Input `n` is either a vector (`in_n[j]`, consecutive floats) or
//! one float for the whole row ([`Input::Broadcast`], loaded once).
//!
//! Every operation is the one the F32X4 code emits for the same node at the
//! FMA levels (`emit::expr_lanes`, `math.rs`: the same constants, the same
//! fused multiply-adds in the same order, the same comparisons and
//! selects), so the two paths give the same bits; NaN results may differ
//! in payload. Expressions with other nodes (pow, log, trig, a max or min
//! of two variables, ...), more than [`MAX_VALUES`] nodes, more than
//! [`MAX_INPUTS`] inputs or more comparisons than mask registers are not
//! compiled ([`supported`]); they keep the F32X4 path.

use iced_x86::code_asm::*;
use kiln_ir::kernel::{BinaryFn, Expr, ExprNode, UnaryFn, ValueId};

use super::emit::math::{
    ERF_CLAMP, ERF_P, ERF_R, ERF_R_CENTER, EXP_A, EXP_B, EXP_C, EXP_MAX, EXP_MIN, LN2_HI, LN2_LO, MAGIC_ROUND,
    TANH_P, TANH_SMALL,
};

/// How the function reads one epilogue input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Input {
    /// `in[j]` for column `j`.
    Vector,
    /// `in[0]` for every column.
    Broadcast,
}

/// Inputs after the row pointer and the column count: the System V
/// integer argument registers left.
pub const MAX_INPUTS: usize = 4;
/// Expression nodes, one zmm register each (zmm0-15; zmm16-31 are
/// temporaries).
pub const MAX_VALUES: usize = 16;

const ZMM: [AsmRegisterZmm; 32] = [
    zmm0, zmm1, zmm2, zmm3, zmm4, zmm5, zmm6, zmm7, zmm8, zmm9, zmm10, zmm11, zmm12, zmm13, zmm14, zmm15, zmm16,
    zmm17, zmm18, zmm19, zmm20, zmm21, zmm22, zmm23, zmm24, zmm25, zmm26, zmm27, zmm28, zmm29, zmm30, zmm31,
];
/// Mask registers for comparisons whose results a select reads (k1 is the
/// tail mask, k7 the scratch of min/max and selects on values).
const COMPARE_MASKS: [AsmRegisterK; 5] = [k2, k3, k4, k5, k6];
const ARGS: [AsmRegister64; MAX_INPUTS] = [rdx, rcx, r8, r9];

/// vcmpps predicates.
const EQ_OQ: i32 = 0;
const LT_OS: i32 = 1;
const LE_OS: i32 = 2;
const NEQ_UQ: i32 = 4;
const GE_OS: i32 = 13;
const GT_OS: i32 = 14;

/// `r` under mask register COMPARE_MASKS[k].
fn under(r: AsmRegisterZmm, k: usize) -> AsmRegisterZmm {
    match k {
        0 => r.k2(),
        1 => r.k3(),
        2 => r.k4(),
        3 => r.k5(),
        _ => r.k6(),
    }
}

fn temp(n: usize) -> AsmRegisterZmm {
    ZMM[MAX_VALUES + n]
}

/// Whether [`generate`] compiles `expr` with these inputs.
pub fn supported(expr: &Expr, inputs: &[Input]) -> bool {
    if expr.nodes.len() > MAX_VALUES || inputs.len() > MAX_INPUTS {
        return false;
    }
    let mut compares = 0;
    let constant = |v: ValueId| matches!(expr.nodes[v.0 as usize], ExprNode::Const(c) if !c.is_nan());
    expr.nodes.iter().all(|node| match *node {
        ExprNode::Acc | ExprNode::Const(_) => true,
        ExprNode::Load(n) => (n as usize) < inputs.len(),
        ExprNode::Count => false,
        ExprNode::Unary(f, _) => {
            matches!(f, UnaryFn::Abs | UnaryFn::Neg | UnaryFn::Sqrt | UnaryFn::Exp | UnaryFn::Erf | UnaryFn::Tanh)
        }
        ExprNode::Binary(f, a, b) => match f {
            BinaryFn::Add | BinaryFn::Sub | BinaryFn::Mul | BinaryFn::Div => true,
            BinaryFn::Max | BinaryFn::Min => constant(a) || constant(b),
            BinaryFn::Pow => false,
            _ => {
                compares += 1;
                compares <= COMPARE_MASKS.len()
            }
        },
        ExprNode::Select(..) => true,
    })
}

/// 32-bit constants after the code, read as broadcasts.
struct Pool {
    values: Vec<u32>,
    labels: Vec<CodeLabel>,
}

impl Pool {
    fn label(&mut self, asm: &mut CodeAssembler, bits: u32) -> CodeLabel {
        match self.values.iter().position(|&v| v == bits) {
            Some(i) => self.labels[i],
            None => {
                self.values.push(bits);
                self.labels.push(asm.create_label());
                *self.labels.last().expect("pushed")
            }
        }
    }

    /// `c` (rounded to f32) as a broadcast operand.
    fn f(&mut self, asm: &mut CodeAssembler, c: f64) -> AsmMemoryOperand {
        dword_bcst(self.label(asm, (c as f32).to_bits()))
    }

    /// `bits` as a broadcast operand.
    fn bits(&mut self, asm: &mut CodeAssembler, bits: u32) -> AsmMemoryOperand {
        dword_bcst(self.label(asm, bits))
    }

    /// `c` (rounded to f32) as a 32-bit memory operand (for vbroadcastss).
    fn ptr(&mut self, asm: &mut CodeAssembler, c: f64) -> AsmMemoryOperand {
        dword_ptr(self.label(asm, (c as f32).to_bits()))
    }

    fn emit(mut self, asm: &mut CodeAssembler) -> Result<(), IcedError> {
        for (label, value) in self.labels.iter_mut().zip(&self.values) {
            asm.set_label(label)?;
            asm.dd(&[*value])?;
        }
        Ok(())
    }
}

/// The code of the function for `expr` (which [`supported`] accepts).
pub fn generate(expr: &Expr, inputs: &[Input]) -> Result<Vec<u8>, IcedError> {
    debug_assert!(supported(expr, inputs));
    let mut asm = CodeAssembler::new(64)?;
    let mut pool = Pool { values: Vec::new(), labels: Vec::new() };
    let value = |i: usize| ZMM[i];
    // Loop invariants: constants and broadcast inputs.
    for (i, node) in expr.nodes.iter().enumerate() {
        match *node {
            ExprNode::Const(c) => {
                let m = dword_ptr(pool.label(&mut asm, c.to_bits()));
                asm.vbroadcastss(value(i), m)?;
            }
            ExprNode::Load(n) if inputs[n as usize] == Input::Broadcast => {
                asm.vbroadcastss(value(i), dword_ptr(ARGS[n as usize]))?;
            }
            _ => {}
        }
    }
    let (mut main, mut tail, mut done) = (asm.create_label(), asm.create_label(), asm.create_label());
    asm.xor(r10, r10)?;
    asm.cmp(rsi, 16)?;
    asm.jb(tail)?;
    asm.set_label(&mut main)?;
    body(&mut asm, &mut pool, expr, inputs, false)?;
    asm.add(r10, 64)?;
    asm.sub(rsi, 16)?;
    asm.cmp(rsi, 16)?;
    asm.jae(main)?;
    asm.set_label(&mut tail)?;
    asm.test(rsi, rsi)?;
    asm.jz(done)?;
    asm.mov(r11, -1i64)?;
    asm.bzhi(r11, r11, rsi)?;
    asm.kmovw(k1, r11d)?;
    body(&mut asm, &mut pool, expr, inputs, true)?;
    asm.set_label(&mut done)?;
    asm.vzeroupper()?;
    asm.ret()?;
    pool.emit(&mut asm)?;
    asm.assemble(0)
}

/// One zmm of columns at byte offset r10 (under k1 when `masked`).
fn body(asm: &mut CodeAssembler, pool: &mut Pool, expr: &Expr, inputs: &[Input], masked: bool) -> Result<(), IcedError> {
    let value = |v: ValueId| ZMM[v.0 as usize];
    // The compare mask (index into COMPARE_MASKS) of comparison nodes.
    let mut masks: Vec<Option<usize>> = vec![None; expr.nodes.len()];
    let mut next_mask = 0;
    for (i, node) in expr.nodes.iter().enumerate() {
        let dst = ZMM[i];
        match *node {
            ExprNode::Const(_) => {}
            ExprNode::Load(n) if inputs[n as usize] == Input::Broadcast => {}
            ExprNode::Acc | ExprNode::Load(_) => {
                let base = match *node {
                    ExprNode::Load(n) => ARGS[n as usize],
                    _ => rdi,
                };
                if masked {
                    asm.vmovups(dst.k1().z(), zmmword_ptr(base + r10))?;
                } else {
                    asm.vmovups(dst, zmmword_ptr(base + r10))?;
                }
            }
            ExprNode::Count => unreachable!("not supported"),
            ExprNode::Unary(f, a) => {
                let x = value(a);
                match f {
                    UnaryFn::Abs => {
                        let m = pool.bits(asm, 0x7fff_ffff);
                        asm.vandps(dst, x, m)?
                    }
                    UnaryFn::Neg => {
                        let m = pool.bits(asm, 0x8000_0000);
                        asm.vxorps(dst, x, m)?
                    }
                    UnaryFn::Sqrt => asm.vsqrtps(dst, x)?,
                    UnaryFn::Exp => exp(asm, pool, dst, x, 0)?,
                    UnaryFn::Erf => erf(asm, pool, dst, x)?,
                    UnaryFn::Tanh => tanh(asm, pool, dst, x)?,
                    _ => unreachable!("not supported"),
                }
            }
            ExprNode::Binary(f, a, b) => {
                let (x, y) = (value(a), value(b));
                match f {
                    BinaryFn::Add => asm.vaddps(dst, x, y)?,
                    BinaryFn::Sub => asm.vsubps(dst, x, y)?,
                    BinaryFn::Mul => asm.vmulps(dst, x, y)?,
                    BinaryFn::Div => asm.vdivps(dst, x, y)?,
                    BinaryFn::Max | BinaryFn::Min => {
                        // emit::min_max_const: take c where the comparison holds.
                        let konst = |v: ValueId| match expr.nodes[v.0 as usize] {
                            ExprNode::Const(c) if !c.is_nan() => Some(c),
                            _ => None,
                        };
                        let (var, c, k) = match (konst(a), konst(b)) {
                            (_, Some(c)) => (x, c, y),
                            (Some(c), None) => (y, c, x),
                            (None, None) => unreachable!("not supported"),
                        };
                        let negative_zero = c == 0.0 && c.is_sign_negative();
                        let positive_zero = c == 0.0 && !negative_zero;
                        let predicate = match f {
                            BinaryFn::Max if negative_zero => LT_OS,
                            BinaryFn::Max => LE_OS,
                            BinaryFn::Min if positive_zero => GT_OS,
                            _ => GE_OS,
                        };
                        asm.vcmpps(k7, var, k, predicate)?;
                        asm.vblendmps(dst.k7(), var, k)?;
                    }
                    BinaryFn::Pow => unreachable!("not supported"),
                    compare => {
                        let predicate = match compare {
                            BinaryFn::Equal => EQ_OQ,
                            BinaryFn::Greater => GT_OS,
                            BinaryFn::GreaterOrEqual => GE_OS,
                            BinaryFn::Lesser => LT_OS,
                            _ => LE_OS,
                        };
                        let k = next_mask;
                        next_mask += 1;
                        masks[i] = Some(k);
                        asm.vcmpps(COMPARE_MASKS[k], x, y, predicate)?;
                        // The value: 1.0 where the mask is set, else 0.0.
                        asm.vxorps(dst, dst, dst)?;
                        let m = pool.ptr(asm, 1.0);
                        asm.vbroadcastss(under(dst, k), m)?;
                    }
                }
            }
            ExprNode::Select(c, a, b) => {
                // A comparison's 1.0/0.0 is != 0 exactly where its mask is set.
                match masks[c.0 as usize] {
                    Some(k) => asm.vblendmps(under(dst, k), value(b), value(a))?,
                    None => {
                        let zero = temp(0);
                        asm.vxorps(zero, zero, zero)?;
                        asm.vcmpps(k7, value(c), zero, NEQ_UQ)?;
                        asm.vblendmps(dst.k7(), value(b), value(a))?;
                    }
                }
            }
        }
    }
    let result = ZMM[expr.nodes.len() - 1];
    if masked {
        asm.vmovups(zmmword_ptr(rdi + r10).k1(), result)?;
    } else {
        asm.vmovups(zmmword_ptr(rdi + r10), result)?;
    }
    Ok(())
}

/// `dst = x^2 P(z)`-style Horner evaluation: `acc = c[0]; acc = acc x + c[k]`.
fn poly(asm: &mut CodeAssembler, pool: &mut Pool, acc: AsmRegisterZmm, x: AsmRegisterZmm, c: &[f64]) -> Result<(), IcedError> {
    let m = pool.ptr(asm, c[0]);
    asm.vbroadcastss(acc, m)?;
    for &k in &c[1..] {
        let m = pool.f(asm, k);
        asm.vfmadd213ps(acc, x, m)?;
    }
    Ok(())
}

/// `dst = e^x` (`math::exp`), with temporaries from `temp(first)` on
/// (eight of them). `dst` may be `x`.
fn exp(asm: &mut CodeAssembler, pool: &mut Pool, dst: AsmRegisterZmm, x: AsmRegisterZmm, first: usize) -> Result<(), IcedError> {
    let [u, t, n, r2, r4, a, b, c] = std::array::from_fn(|i| temp(first + i));
    // Clamp into [EXP_MIN, EXP_MAX] by select (NaN stays): vmaxps and
    // vminps return their second operand when either is NaN.
    let m = pool.ptr(asm, EXP_MIN);
    asm.vbroadcastss(u, m)?;
    asm.vmaxps(u, u, x)?;
    let m = pool.ptr(asm, EXP_MAX);
    asm.vbroadcastss(t, m)?;
    asm.vminps(u, t, u)?;
    // t = u log2(e) + magic; n = t - magic; r = u - n ln2 (two parts).
    let m = pool.ptr(asm, std::f64::consts::LOG2_E);
    asm.vbroadcastss(t, m)?;
    let m = pool.f(asm, MAGIC_ROUND);
    asm.vfmadd213ps(t, u, m)?;
    let m = pool.f(asm, MAGIC_ROUND);
    asm.vsubps(n, t, m)?;
    let m = pool.f(asm, -LN2_HI);
    asm.vfmadd231ps(u, n, m)?;
    let m = pool.f(asm, -LN2_LO);
    asm.vfmadd231ps(u, n, m)?;
    let r = u;
    asm.vmulps(r2, r, r)?;
    asm.vmulps(r4, r2, r2)?;
    for (reg, [hi, lo]) in [(a, EXP_A), (b, EXP_B), (c, EXP_C)] {
        let m = pool.ptr(asm, hi);
        asm.vbroadcastss(reg, m)?;
        let m = pool.f(asm, lo);
        asm.vfmadd213ps(reg, r, m)?;
    }
    asm.vfmadd213ps(b, r2, c)?; // b r2 + c
    asm.vfmadd213ps(a, r4, b)?; // a r4 + b
    asm.vfmadd213ps(a, r2, r)?; // p r2 + r
    let m = pool.f(asm, 1.0);
    asm.vaddps(a, a, m)?;
    // 2^n as two factors: n1 = ni >> 1, n2 = ni - n1.
    let m = pool.bits(asm, (MAGIC_ROUND as f32).to_bits());
    asm.vpsubd(t, t, m)?;
    asm.vpsrad(n, t, 1)?;
    asm.vpsubd(t, t, n)?;
    for half in [n, t] {
        let m = pool.bits(asm, 127);
        asm.vpaddd(half, half, m)?;
        asm.vpslld(half, half, 23)?;
        asm.vmulps(a, a, half)?;
    }
    asm.vmovaps(dst, a)
}

/// `dst = erf(x)` (`math::erf`).
fn erf(asm: &mut CodeAssembler, pool: &mut Pool, dst: AsmRegisterZmm, x: AsmRegisterZmm) -> Result<(), IcedError> {
    let [mag, z, small, a, e, s] = std::array::from_fn(temp);
    let m = pool.bits(asm, 0x7fff_ffff);
    asm.vandps(mag, x, m)?;
    asm.vmulps(z, x, x)?;
    poly(asm, pool, small, z, &ERF_P)?;
    asm.vfmadd213ps(small, x, x)?; // x P + x
    // a = fmin(mag, 4): NaN propagates (vminps returns its second operand).
    let m = pool.ptr(asm, ERF_CLAMP);
    asm.vbroadcastss(a, m)?;
    asm.vminps(a, a, mag)?;
    asm.vmulps(e, a, a)?;
    let m = pool.bits(asm, 0x8000_0000);
    asm.vxorps(e, e, m)?;
    exp(asm, pool, e, e, 6)?;
    let m = pool.f(asm, -ERF_R_CENTER);
    asm.vaddps(s, a, m)?;
    let r = z;
    poly(asm, pool, r, s, &ERF_R)?;
    // q = -e r + 1, with x's sign; the small branch where |x| < 1.
    let m = pool.f(asm, 1.0);
    asm.vfnmadd213ps(r, e, m)?;
    let m = pool.bits(asm, 0x8000_0000);
    asm.vandps(s, x, m)?;
    asm.vxorps(r, r, s)?;
    let m = pool.f(asm, 1.0);
    asm.vcmpps(k7, mag, m, LT_OS)?;
    asm.vblendmps(dst.k7(), r, small)
}

/// `dst = tanh(x)` (`math::tanh`).
fn tanh(asm: &mut CodeAssembler, pool: &mut Pool, dst: AsmRegisterZmm, x: AsmRegisterZmm) -> Result<(), IcedError> {
    let [mag, z, p, q, s] = std::array::from_fn(temp);
    let m = pool.bits(asm, 0x7fff_ffff);
    asm.vandps(mag, x, m)?;
    asm.vmulps(z, x, x)?;
    poly(asm, pool, p, z, &TANH_P)?;
    asm.vmulps(p, p, z)?;
    asm.vfmadd213ps(p, x, x)?; // small = p x + x
    asm.vaddps(q, mag, mag)?;
    exp(asm, pool, q, q, 6)?;
    let m = pool.f(asm, 1.0);
    asm.vaddps(q, q, m)?;
    let m = pool.ptr(asm, 2.0);
    asm.vbroadcastss(s, m)?;
    asm.vdivps(q, s, q)?;
    let m = pool.ptr(asm, 1.0);
    asm.vbroadcastss(s, m)?;
    asm.vsubps(q, s, q)?;
    let m = pool.bits(asm, 0x8000_0000);
    asm.vandps(s, x, m)?;
    asm.vxorps(q, q, s)?;
    let m = pool.f(asm, TANH_SMALL);
    asm.vcmpps(k7, mag, m, LT_OS)?;
    asm.vblendmps(dst.k7(), q, p)
}
