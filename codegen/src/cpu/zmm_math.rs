//! Activations on zmm registers for the AVX-512 micro-kernels' epilogues:
//! `sigmoid(x)` and `x * sigmoid(x)` (SiLU) computed with the very
//! operations, constants and rounding of `math.rs` (its `exp` at the FMA
//! levels, and the lowering's sigmoid: `t = exp(-|x|)`,
//! `select(x < 0, t, 1) / (1 + t)`), so a fused epilogue gives the same
//! bits as the driver's F32X4 code would.
//!
//! The constants live after the micro-kernel's code ([`Constants::emit`])
//! and are read as broadcast memory operands.

use iced_x86::code_asm::*;

use super::emit::math::{EXP_A, EXP_B, EXP_C, EXP_MIN, LN2_HI, LN2_LO, MAGIC_ROUND};
use super::microkernel::Activation;

/// The 32-bit constants, in table order.
const VALUES: [(Name, u32); 14] = [
    (Name::Sign, 0x8000_0000),
    (Name::ExpMin, (EXP_MIN as f32).to_bits()),
    (Name::Log2E, (std::f64::consts::LOG2_E as f32).to_bits()),
    (Name::Magic, (MAGIC_ROUND as f32).to_bits()),
    (Name::MinusLn2Hi, (-LN2_HI as f32).to_bits()),
    (Name::MinusLn2Lo, (-LN2_LO as f32).to_bits()),
    (Name::A0, (EXP_A[0] as f32).to_bits()),
    (Name::A1, (EXP_A[1] as f32).to_bits()),
    (Name::B0, (EXP_B[0] as f32).to_bits()),
    (Name::B1, (EXP_B[1] as f32).to_bits()),
    (Name::C0, (EXP_C[0] as f32).to_bits()),
    (Name::C1, (EXP_C[1] as f32).to_bits()),
    (Name::One, 1f32.to_bits()),
    // The magic number's bits (1.5 * 2^23), subtracted from `t`'s bits to
    // give `n` as an integer; 127 is the exponent bias.
    (Name::MagicBits, 0x4B40_0000),
];
const EXPONENT_BIAS: u32 = 127;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Name {
    Sign,
    ExpMin,
    Log2E,
    Magic,
    MinusLn2Hi,
    MinusLn2Lo,
    A0,
    A1,
    B0,
    B1,
    C0,
    C1,
    One,
    MagicBits,
}

/// Labels of the constants one micro-kernel reads.
pub struct Constants {
    labels: Vec<CodeLabel>,
    bias: CodeLabel,
}

impl Constants {
    pub fn new(asm: &mut CodeAssembler) -> Self {
        Constants { labels: VALUES.iter().map(|_| asm.create_label()).collect(), bias: asm.create_label() }
    }

    fn at(&self, name: Name) -> CodeLabel {
        self.labels[VALUES.iter().position(|(n, _)| *n == name).expect("every name has a value")]
    }

    /// Places the constants (after the code: they are data).
    pub fn emit(mut self, asm: &mut CodeAssembler) -> Result<(), IcedError> {
        for (label, (_, value)) in self.labels.iter_mut().zip(VALUES) {
            asm.set_label(label)?;
            asm.dd(&[value])?;
        }
        asm.set_label(&mut self.bias)?;
        asm.dd(&[EXPONENT_BIAS])
    }
}

/// Replaces `x` by `activation(x)`, using the seven `temps` and `k2`.
pub fn activation(
    asm: &mut CodeAssembler,
    c: &Constants,
    activation: Activation,
    x: AsmRegisterZmm,
    temps: &[AsmRegisterZmm; 7],
) -> Result<(), IcedError> {
    let [u, t, n, r4, a, b, q] = *temps;
    let bcst = |name: Name| dword_bcst(c.at(name));
    // u = -|x|, clamped below as `select(u < min, min, u)` (NaN stays);
    // it never exceeds 0, so the upper clamp is the identity.
    asm.vpord(u, x, bcst(Name::Sign))?;
    asm.vbroadcastss(t, dword_ptr(c.at(Name::ExpMin)))?;
    asm.vmaxps(u, t, u)?;
    // t = u log2(e) + magic; n = t - magic; r = u - n ln2 (two parts).
    asm.vbroadcastss(t, dword_ptr(c.at(Name::Log2E)))?;
    asm.vfmadd213ps(t, u, bcst(Name::Magic))?;
    asm.vsubps(n, t, bcst(Name::Magic))?;
    asm.vfmadd231ps(u, n, bcst(Name::MinusLn2Hi))?;
    asm.vfmadd231ps(u, n, bcst(Name::MinusLn2Lo))?;
    let r = u;
    // The polynomial (see math::EXP_A): r2 in `n`, r4, a, b, c in `q`.
    asm.vmulps(n, r, r)?;
    asm.vmulps(r4, n, n)?;
    for (reg, [hi, lo]) in [(a, [Name::A0, Name::A1]), (b, [Name::B0, Name::B1]), (q, [Name::C0, Name::C1])] {
        asm.vbroadcastss(reg, dword_ptr(c.at(hi)))?;
        asm.vfmadd213ps(reg, r, bcst(lo))?;
    }
    asm.vfmadd213ps(b, n, q)?; // b r2 + c
    asm.vfmadd213ps(a, r4, b)?; // a r4 + b
    asm.vfmadd213ps(a, n, r)?; // p r2 + r
    asm.vaddps(a, a, bcst(Name::One))?;
    // 2^n as two factors: n1 = ni >> 1, n2 = ni - n1.
    asm.vpsubd(t, t, bcst(Name::MagicBits))?;
    asm.vpsrad(n, t, 1)?;
    asm.vpsubd(t, t, n)?;
    for half in [n, t] {
        asm.vpaddd(half, half, dword_bcst(c.bias))?;
        asm.vpslld(half, half, 23)?;
        asm.vmulps(a, a, half)?;
    }
    // a = exp(-|x|); sigmoid = select(x < 0, a, 1) / (1 + a).
    asm.vaddps(b, a, bcst(Name::One))?;
    asm.vbroadcastss(q, dword_ptr(c.at(Name::One)))?;
    asm.vxorps(t, t, t)?;
    asm.vcmpps(k2, x, t, 1)?; // LT_OS: false for NaN
    asm.vmovaps(q.k2(), a)?;
    asm.vdivps(q, q, b)?;
    match activation {
        Activation::Sigmoid => asm.vmovaps(x, q),
        Activation::Silu => asm.vmulps(x, x, q),
    }
}
