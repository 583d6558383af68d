//! GEMM micro-kernels: the innermost `MR x NR` register-blocked loop.
//!
//! Every micro-kernel has the same C (System V) signature:
//!
//! ```text
//! fn(a: *const f32, b: *const f32, c: *mut f32, ldc_bytes: i64, kc: i64, accumulate: i64)
//! ```
//!
//! and computes, for a tile of `C` (`MR` rows of `NR` contiguous floats,
//! row `r` at byte offset `r * ldc_bytes` from `c`):
//!
//! ```text
//! C = (accumulate != 0 ? C : 0) + A_panel x B_panel
//! ```
//!
//! where `A_panel` is `kc` groups of `MR` floats (k-major: element `(r, k)` at
//! `a[k * MR + r]`) and `B_panel` is `kc` rows of `NR` floats (element
//! `(k, c)` at `b[k * NR + c]`). `kc >= 1`. Nothing needs to be aligned.
//! A column-edge kernel (AVX-512, `Spec::cols < NR`) reads and writes only
//! the first `cols` columns of each C row (masked loads and stores) and
//! skips the FMAs of a wholly unused zmm; other edge tiles are the caller's
//! business (it runs the kernel on a temporary full tile and copies the
//! valid part).
//!
//! Three implementations:
//! * [`Kind::Avx512`]: `avx512_gemm_f32_<MR>x32`, zmm accumulators, B rows
//!   as two zmm loads, each A element broadcast once into a register
//!   (`vbroadcastss`) for its two FMAs. Encoded with iced-x86.
//! * [`Kind::Avx2`]: `avx2_gemm_f32_6x16`, ymm accumulators, A through
//!   `vbroadcastss`. Encoded with iced-x86.
//! * [`Kind::F32x4`]: `f32x4_gemm_f32_4x8`, written in Cranelift IR with
//!   F32X4 multiplies and adds (no FMA: the baseline has none); the
//!   portable fallback.
//!
//! The iced-x86 kernels use only caller-saved registers, no stack, and end
//! with `vzeroupper` so that SSE code after them pays no transition penalty.

use cranelift_codegen::ir::{types, AbiParam, InstBuilder, MachMemFlags, Signature, Value};
use cranelift_codegen::Context;
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_module::{FuncId, Linkage, Module};
use iced_x86::code_asm::*;

use super::target::Features;
use super::zmm_math;
use super::{cranelift, CodegenError};

/// Which micro-kernel family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Avx512,
    Avx2,
    F32x4,
}

/// A micro-kernel's shape and name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Spec {
    pub kind: Kind,
    pub mr: usize,
    pub nr: usize,
    /// The columns of C it writes: `nr`, or fewer for a column-edge kernel
    /// (AVX-512 only).
    pub cols: usize,
    /// Bytes from one row of B to the next: `4 nr` for a packed panel, or
    /// the row stride of a B read in place (AVX-512 only; then a partial
    /// zmm of B is loaded under the column mask, never past `cols`).
    pub ldb: usize,
    /// An epilogue applied in registers (AVX-512 only); then the kernel
    /// takes `flags` (bit 0: accumulate, bit 1: apply the epilogue) for
    /// `accumulate` and a seventh argument, the bias at the tile's first
    /// row (or column).
    pub epilogue: Option<Registers>,
}

/// `clamp(acc + bias, lo, hi)` in a micro-kernel's registers before the
/// store (each part optional; the clamp passes NaN through like the
/// lowering's `select(x < lo, lo, x)`), or `activation(acc + bias)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Registers {
    pub bias: Option<Bias>,
    /// The bounds' f32 bits.
    pub lo: Option<u32>,
    pub hi: Option<u32>,
    /// Never with bounds.
    pub activation: Option<Activation>,
}

/// A smooth activation of `x = acc + bias`, computed in zmm registers
/// with the operations of the lowering's expression (`zmm_math`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Activation {
    /// `sigmoid(x)`.
    Sigmoid,
    /// `x * sigmoid(x)`.
    Silu,
}

/// The most rows of an AVX-512 micro-kernel with an activation: its
/// `2 mr` accumulators leave the activation's seven temporaries below
/// zmm29 (zmm30/31 hold a column bias).
const ACTIVATION_MAX_MR: usize = 11;

/// Where a register epilogue's bias varies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bias {
    /// One value per row of C, `step` elements apart.
    Row { step: i64 },
    /// One value per column of C, contiguous.
    Column,
}

/// Rows of the AVX-512 kernel. Measured on the development machine (AMD
/// Zen 4, family 25 model 17: one zmm FMA per cycle, ~117 GFLOP/s per
/// core measured with a register-only FMA loop): every MR from 4 to 14
/// reaches ~116 GFLOP/s with its panels in L1, and in the whole
/// 1024-cubed GEMM 8x32 beat 12x32 and 14x32 by 2-4% (no wasted rows at
/// M = 1024, fewer rows to pack per panel). Cores with two zmm FMA pipes
/// may prefer 12 or 14 (more accumulators to cover latency).
pub const AVX512_MR: usize = 8;

impl Spec {
    /// The micro-kernel used for a feature level.
    pub fn for_features(features: Features) -> Spec {
        match features {
            Features::Avx512 => Spec { kind: Kind::Avx512, mr: AVX512_MR, nr: 32, cols: 32, ldb: 128, epilogue: None },
            Features::Avx2 => Spec { kind: Kind::Avx2, mr: 6, nr: 16, cols: 16, ldb: 64, epilogue: None },
            Features::Baseline => Spec { kind: Kind::F32x4, mr: 4, nr: 8, cols: 8, ldb: 32, epilogue: None },
        }
    }

    /// The kernel for the last `cols` columns of C, if this family has
    /// column-edge kernels (AVX-512) and `cols` is a partial tile.
    pub fn column_edge(&self, cols: usize) -> Option<Spec> {
        (self.kind == Kind::Avx512 && (1..self.nr).contains(&cols)).then_some(Spec { cols, ..*self })
    }

    /// The kernel reading B in place, rows `ldb` bytes apart, if this
    /// family has such kernels (AVX-512).
    pub fn b_in_place(&self, ldb: usize) -> Option<Spec> {
        (self.kind == Kind::Avx512).then_some(Spec { ldb, ..*self })
    }

    /// The kernel applying `epilogue` in registers, if this family can
    /// (AVX-512).
    pub fn with_epilogue(&self, epilogue: Registers) -> Option<Spec> {
        let fits = epilogue.activation.is_none() || self.mr <= ACTIVATION_MAX_MR;
        (self.kind == Kind::Avx512 && fits).then_some(Spec { epilogue: Some(epilogue), ..*self })
    }

    /// The number of arguments of this kernel.
    pub fn params(&self) -> usize {
        if self.epilogue.is_some() { 7 } else { 6 }
    }

    /// Whether B is a packed panel (else it is read in place).
    pub fn packed_b(&self) -> bool {
        self.ldb == 4 * self.nr
    }

    /// The function's symbol, named for what it is.
    pub fn name(&self) -> String {
        let family = match self.kind {
            Kind::Avx512 => "avx512",
            Kind::Avx2 => "avx2",
            Kind::F32x4 => "f32x4",
        };
        let edge = if self.cols < self.nr { format!("_c{}", self.cols) } else { String::new() };
        let ldb = if self.packed_b() { String::new() } else { format!("_ldb{}", self.ldb) };
        let mut epilogue = String::new();
        if let Some(e) = self.epilogue {
            match e.bias {
                Some(Bias::Row { step }) => epilogue.push_str(&format!("_brow{step}")),
                Some(Bias::Column) => epilogue.push_str("_bcol"),
                None => {}
            }
            if let Some(lo) = e.lo {
                epilogue.push_str(&format!("_lo{lo:08x}"));
            }
            if let Some(hi) = e.hi {
                epilogue.push_str(&format!("_hi{hi:08x}"));
            }
            match e.activation {
                Some(Activation::Sigmoid) => epilogue.push_str("_sigmoid"),
                Some(Activation::Silu) => epilogue.push_str("_silu"),
                None => {}
            }
        }
        format!("{family}_gemm_f32_{}x{}{edge}{ldb}{epilogue}", self.mr, self.nr)
    }
}

/// Intel-syntax disassembly of an assembler-encoded micro-kernel (for
/// `kiln emit --stage asm`); `None` for the Cranelift-built fallback, whose
/// code Cranelift lists itself.
pub fn disassembly(spec: Spec) -> Result<Option<String>, CodegenError> {
    let code = match spec.kind {
        Kind::Avx512 => avx512(spec).map_err(cranelift)?,
        Kind::Avx2 => avx2(spec.mr).map_err(cranelift)?,
        Kind::F32x4 => return Ok(None),
    };
    Ok(Some(disassemble(&code)))
}

/// Intel-syntax disassembly of assembler-encoded code, one instruction a
/// line with its offset.
pub fn disassemble(code: &[u8]) -> String {
    use iced_x86::{Decoder, DecoderOptions, Formatter, IntelFormatter};
    let mut decoder = Decoder::with_ip(64, code, 0, DecoderOptions::NONE);
    let mut formatter = IntelFormatter::new();
    let mut out = String::new();
    for instruction in &mut decoder {
        let mut text = String::new();
        formatter.format(&instruction, &mut text);
        out.push_str(&format!("  {:04x}  {text}\n", instruction.ip()));
    }
    out
}

/// The signature of a micro-kernel of `params` 64-bit integer (or
/// pointer) parameters (the GEMM micro-kernels have 6): on x86-64 the
/// System V convention the assembled bytes assume (arguments in rdi, rsi,
/// rdx, rcx, r8, r9), whatever the module's default; elsewhere (Cranelift
/// code only) the module's.
pub fn signature(module: &impl Module, params: usize) -> Signature {
    let mut sig = module.make_signature();
    if module.isa().triple().architecture == target_lexicon::Architecture::X86_64 {
        sig.call_conv = cranelift_codegen::isa::CallConv::SystemV;
    }
    sig.params.extend(std::iter::repeat_n(AbiParam::new(types::I64), params));
    sig
}

/// Declares and defines the micro-kernel `spec` in `module`.
pub fn define<M: Module>(module: &mut M, spec: Spec) -> Result<FuncId, CodegenError> {
    let sig = signature(module, spec.params());
    let id = module.declare_function(&spec.name(), Linkage::Local, &sig).map_err(cranelift)?;
    match spec.kind {
        Kind::Avx512 => {
            let code = avx512(spec).map_err(cranelift)?;
            module.define_function_bytes(id, 64, &code, &[]).map_err(cranelift)?;
        }
        Kind::Avx2 => {
            let code = avx2(spec.mr).map_err(cranelift)?;
            module.define_function_bytes(id, 64, &code, &[]).map_err(cranelift)?;
        }
        Kind::F32x4 => {
            let mut ctx = module.make_context();
            ctx.func.signature = sig;
            let mut fb_ctx = FunctionBuilderContext::new();
            {
                let mut fb = FunctionBuilder::new(&mut ctx.func, &mut fb_ctx);
                f32x4(&mut fb, spec.mr, spec.nr);
                fb.finalize(module.target_config());
            }
            define_cranelift(module, id, &mut ctx)?;
        }
    }
    Ok(id)
}

fn define_cranelift<M: Module>(module: &mut M, id: FuncId, ctx: &mut Context) -> Result<(), CodegenError> {
    module.define_function(id, ctx).map_err(cranelift)
}

const ZMM: [AsmRegisterZmm; 32] = [
    zmm0, zmm1, zmm2, zmm3, zmm4, zmm5, zmm6, zmm7, zmm8, zmm9, zmm10, zmm11, zmm12, zmm13, zmm14, zmm15, zmm16,
    zmm17, zmm18, zmm19, zmm20, zmm21, zmm22, zmm23, zmm24, zmm25, zmm26, zmm27, zmm28, zmm29, zmm30, zmm31,
];
const YMM: [AsmRegisterYmm; 16] =
    [ymm0, ymm1, ymm2, ymm3, ymm4, ymm5, ymm6, ymm7, ymm8, ymm9, ymm10, ymm11, ymm12, ymm13, ymm14, ymm15];

/// Steps of k per trip of the unrolled main loop.
const UNROLL: usize = 4;

/// Emits the k loop: `UNROLL` steps per trip, then single steps for the
/// remainder. `step(asm, u)` emits one k step reading A at byte offset
/// `u * a_step` from rdi and B at `u * b_step` from rsi.
fn k_loop(
    asm: &mut CodeAssembler,
    a_step: usize,
    b_step: usize,
    step: &mut dyn FnMut(&mut CodeAssembler, usize) -> Result<(), IcedError>,
) -> Result<(), IcedError> {
    let mut main = asm.create_label();
    let mut tail = asm.create_label();
    let mut single = asm.create_label();
    let mut done = asm.create_label();
    // r10 = kc / UNROLL, r8 = kc % UNROLL
    asm.mov(r10, r8)?;
    asm.shr(r10, UNROLL.trailing_zeros())?;
    asm.and(r8, (UNROLL - 1) as i32)?;
    asm.test(r10, r10)?;
    asm.jz(tail)?;
    asm.set_label(&mut main)?;
    for u in 0..UNROLL {
        step(asm, u)?;
    }
    asm.add(rdi, (a_step * UNROLL) as i32)?;
    asm.add(rsi, (b_step * UNROLL) as i32)?;
    asm.dec(r10)?;
    asm.jnz(main)?;
    asm.set_label(&mut tail)?;
    asm.test(r8, r8)?;
    asm.jz(done)?;
    asm.set_label(&mut single)?;
    step(asm, 0)?;
    asm.add(rdi, a_step as i32)?;
    asm.add(rsi, b_step as i32)?;
    asm.dec(r8)?;
    asm.jnz(single)?;
    asm.set_label(&mut done)?;
    Ok(())
}

/// `avx512_gemm_f32_<mr>x32` (`cols` = 32, `ldb` = 128), its column-edge
/// variant `..._c<cols>`, its B-in-place variant `..._ldb<ldb>` and its
/// register-epilogue variants: accumulators zmm0..zmm(2mr-1), B rows in
/// zmm30/zmm31. With `cols <= 16` only the first zmm of each row is
/// computed; a partial last zmm of C (and of B read in place, and of a
/// column bias) is loaded and stored under the mask in k1. The epilogue's
/// bounds live in zmm28/zmm29 (free once the k loop is done), an
/// activation's temporaries in the seven registers after the accumulators
/// (`mr <= 11`). `mr <= 14`.
pub fn avx512(spec: Spec) -> Result<Vec<u8>, IcedError> {
    let Spec { mr, cols, ldb, epilogue, .. } = spec;
    assert!((1..=14).contains(&mr), "avx512 micro-kernel rows: {mr}");
    assert!((1..=32).contains(&cols), "avx512 micro-kernel columns: {cols}");
    assert!(ldb >= 4 * cols && ldb * UNROLL <= i32::MAX as usize, "avx512 micro-kernel B stride: {ldb}");
    // A packed panel is NR = 32 floats wide whatever `cols` is.
    let b_masked = ldb != 128;
    let halves = cols.div_ceil(16);
    // The lanes of the last zmm of a row, when it is partial.
    let tail = cols % 16;
    let masked = |h: usize| tail != 0 && h == halves - 1;
    let mut asm = CodeAssembler::new(64)?;
    let acc = |r: usize, h: usize| ZMM[2 * r + h];
    let (b0, b1) = (zmm30, zmm31);
    for r in 0..mr {
        for h in 0..halves {
            asm.vpxord(acc(r, h), acc(r, h), acc(r, h))?;
        }
    }
    if tail != 0 {
        asm.mov(eax, ((1u32 << tail) - 1) as i32)?;
        asm.kmovw(k1, eax)?;
    }
    // Bring the C tile toward L1 while the k loop runs.
    asm.mov(rax, rdx)?;
    for _ in 0..mr {
        asm.prefetcht0(byte_ptr(rax))?;
        if halves == 2 {
            asm.prefetcht0(byte_ptr(rax + 64))?;
        }
        asm.add(rax, rcx)?;
    }
    // A's elements are broadcast once into a register each (rotating over
    // the registers the accumulators leave free) and used by both FMAs:
    // two B loads and `mr` broadcasts per k step instead of `2 mr` loads
    // with embedded broadcasts, which left cores with two FMA pipes
    // waiting on their two load ports.
    let spare: Vec<AsmRegisterZmm> = (2 * mr..30).map(|i| ZMM[i]).collect();
    // r11: the bytes of one A panel (kc * mr floats). A's next panel (the
    // next row tile of a packed constant, or the next k block's first)
    // follows this one: each k step prefetches it about one cache line
    // ahead of where this one reads, so that weights streamed from memory
    // once per run (a 7x7 layer's 1x1 convolutions: each panel serves a
    // few tiles only) arrive before the next call needs them. A prefetch
    // never faults, so past a panel packed at run time it is harmless.
    asm.imul_3(r11, r8, (4 * mr) as i32)?;
    k_loop(&mut asm, 4 * mr, ldb, &mut |asm, u| {
        let a_at = 4 * mr * u;
        if a_at % 64 < 4 * mr {
            asm.prefetcht0(byte_ptr(rdi + r11 + a_at as i32))?;
        }
        let b = (u * ldb) as i32;
        for (h, reg) in [b0, b1].into_iter().enumerate().take(halves) {
            let at = zmmword_ptr(rsi + b + 64 * h as i32);
            if b_masked && masked(h) {
                asm.vmovups(reg.k1().z(), at)?;
            } else {
                asm.vmovups(reg, at)?;
            }
        }
        for r in 0..mr {
            let a = ((u * mr + r) * 4) as i32;
            let x = spare[(u * mr + r) % spare.len()];
            asm.vbroadcastss(x, dword_ptr(rdi + a))?;
            asm.vfmadd231ps(acc(r, 0), b0, x)?;
            if halves == 2 {
                asm.vfmadd231ps(acc(r, 1), b1, x)?;
            }
        }
        Ok(())
    })?;
    let mut store = asm.create_label();
    let mut finish = asm.create_label();
    let (mut lo_bound, mut hi_bound) = (asm.create_label(), asm.create_label());
    let constants = epilogue.and_then(|e| e.activation).map(|_| zmm_math::Constants::new(&mut asm));
    if epilogue.is_some() {
        asm.test(r9, 1)?;
        asm.jz(finish)?;
    } else {
        asm.test(r9, r9)?;
        asm.jz(store)?;
    }
    asm.mov(rax, rdx)?;
    for r in 0..mr {
        for h in 0..halves {
            let at = zmmword_ptr(rax + 64 * h as i32);
            if masked(h) {
                // Masked-out lanes are neither read nor faulted on.
                asm.vmovups(b0.k1().z(), at)?;
                asm.vaddps(acc(r, h), acc(r, h), b0)?;
            } else {
                asm.vaddps(acc(r, h), acc(r, h), at)?;
            }
        }
        asm.add(rax, rcx)?;
    }
    if let Some(e) = epilogue {
        asm.set_label(&mut finish)?;
        asm.test(r9, 2)?;
        asm.jz(store)?;
        // The seventh argument, on the stack above the return address.
        asm.mov(r11, qword_ptr(rsp + 8))?;
        if e.lo.is_some() {
            asm.vbroadcastss(zmm28, dword_ptr(lo_bound))?;
        }
        if e.hi.is_some() {
            asm.vbroadcastss(zmm29, dword_ptr(hi_bound))?;
        }
        if e.bias == Some(Bias::Column) {
            for (h, reg) in [b0, b1].into_iter().enumerate().take(halves) {
                let at = zmmword_ptr(r11 + 64 * h as i32);
                if masked(h) {
                    asm.vmovups(reg.k1().z(), at)?;
                } else {
                    asm.vmovups(reg, at)?;
                }
            }
        }
        for r in 0..mr {
            for h in 0..halves {
                match e.bias {
                    Some(Bias::Row { step }) => {
                        asm.vaddps(acc(r, h), acc(r, h), dword_bcst(r11 + (4 * step * r as i64) as i32))?
                    }
                    Some(Bias::Column) => asm.vaddps(acc(r, h), acc(r, h), [b0, b1][h])?,
                    None => {}
                }
                // max(x, lo) and min(x, hi) with x second: NaN passes
                // through, as `select(x < lo, lo, x)` does.
                if e.lo.is_some() {
                    asm.vmaxps(acc(r, h), zmm28, acc(r, h))?;
                }
                if e.hi.is_some() {
                    asm.vminps(acc(r, h), zmm29, acc(r, h))?;
                }
                if let (Some(activation), Some(constants)) = (e.activation, &constants) {
                    assert!(mr <= ACTIVATION_MAX_MR, "avx512 micro-kernel rows with an activation: {mr}");
                    let temps: [AsmRegisterZmm; 7] = std::array::from_fn(|i| ZMM[2 * mr + i]);
                    zmm_math::activation(&mut asm, constants, activation, acc(r, h), &temps)?;
                }
            }
        }
    }
    asm.set_label(&mut store)?;
    for r in 0..mr {
        for h in 0..halves {
            let at = zmmword_ptr(rdx + 64 * h as i32);
            if masked(h) {
                asm.vmovups(at.k1(), acc(r, h))?;
            } else {
                asm.vmovups(at, acc(r, h))?;
            }
        }
        asm.add(rdx, rcx)?;
    }
    asm.vzeroupper()?;
    asm.ret()?;
    if let Some(e) = epilogue {
        if let Some(lo) = e.lo {
            asm.set_label(&mut lo_bound)?;
            asm.dd(&[lo])?;
        }
        if let Some(hi) = e.hi {
            asm.set_label(&mut hi_bound)?;
            asm.dd(&[hi])?;
        }
    }
    if let Some(constants) = constants {
        constants.emit(&mut asm)?;
    }
    asm.assemble(0)
}

/// `avx2_gemm_f32_<mr>x16`: accumulators ymm0..ymm(2mr-1), B rows in
/// ymm12/ymm13, broadcasts alternating in ymm14/ymm15. `mr <= 6`.
pub fn avx2(mr: usize) -> Result<Vec<u8>, IcedError> {
    assert!((1..=6).contains(&mr), "avx2 micro-kernel rows: {mr}");
    let mut asm = CodeAssembler::new(64)?;
    let acc = |r: usize, h: usize| YMM[2 * r + h];
    let (b0, b1) = (ymm12, ymm13);
    for r in 0..mr {
        for h in 0..2 {
            asm.vxorps(acc(r, h), acc(r, h), acc(r, h))?;
        }
    }
    asm.mov(rax, rdx)?;
    for _ in 0..mr {
        asm.prefetcht0(byte_ptr(rax))?;
        asm.prefetcht0(byte_ptr(rax + 63))?;
        asm.add(rax, rcx)?;
    }
    k_loop(&mut asm, 4 * mr, 64, &mut |asm, u| {
        let b = (u * 64) as i32;
        asm.vmovups(b0, ymmword_ptr(rsi + b))?;
        asm.vmovups(b1, ymmword_ptr(rsi + b + 32))?;
        for r in 0..mr {
            let a = ((u * mr + r) * 4) as i32;
            let x = if r % 2 == 0 { ymm14 } else { ymm15 };
            asm.vbroadcastss(x, dword_ptr(rdi + a))?;
            asm.vfmadd231ps(acc(r, 0), b0, x)?;
            asm.vfmadd231ps(acc(r, 1), b1, x)?;
        }
        Ok(())
    })?;
    let mut store = asm.create_label();
    asm.test(r9, r9)?;
    asm.jz(store)?;
    asm.mov(rax, rdx)?;
    for r in 0..mr {
        asm.vaddps(acc(r, 0), acc(r, 0), ymmword_ptr(rax))?;
        asm.vaddps(acc(r, 1), acc(r, 1), ymmword_ptr(rax + 32))?;
        asm.add(rax, rcx)?;
    }
    asm.set_label(&mut store)?;
    for r in 0..mr {
        asm.vmovups(ymmword_ptr(rdx), acc(r, 0))?;
        asm.vmovups(ymmword_ptr(rdx + 32), acc(r, 1))?;
        asm.add(rdx, rcx)?;
    }
    asm.vzeroupper()?;
    asm.ret()?;
    asm.assemble(0)
}

fn flags() -> MachMemFlags {
    MachMemFlags::new().with_notrap()
}

/// The portable micro-kernel body in Cranelift IR: `mr x nr` with F32X4
/// accumulators (`nr` a multiple of 4), one k step per loop trip.
fn f32x4(fb: &mut FunctionBuilder, mr: usize, nr: usize) {
    let entry = fb.create_block();
    fb.append_block_params_for_function_params(entry);
    fb.switch_to_block(entry);
    let p = fb.block_params(entry).to_vec();
    let (a0, b0, c, ldc, kc, accumulate) = (p[0], p[1], p[2], p[3], p[4], p[5]);
    let lanes = nr / 4;
    let zero = fb.ins().f32const(0.0);
    let zero = fb.ins().splat(types::F32X4, zero);
    let accs: Vec<_> = (0..mr * lanes)
        .map(|_| {
            let v = fb.declare_var(types::F32X4);
            fb.def_var(v, zero);
            v
        })
        .collect();
    let (a_var, b_var, k_var) = (fb.declare_var(types::I64), fb.declare_var(types::I64), fb.declare_var(types::I64));
    fb.def_var(a_var, a0);
    fb.def_var(b_var, b0);
    fb.def_var(k_var, kc);
    let body = fb.create_block();
    let exit = fb.create_block();
    fb.ins().jump(body, &[]);
    fb.switch_to_block(body);
    let (a, b, k) = (fb.use_var(a_var), fb.use_var(b_var), fb.use_var(k_var));
    let bs: Vec<Value> = (0..lanes).map(|l| fb.ins().load(types::F32X4, flags(), b, (16 * l) as i32)).collect();
    for r in 0..mr {
        let x = fb.ins().load(types::F32, flags(), a, (4 * r) as i32);
        let x = fb.ins().splat(types::F32X4, x);
        for (l, &bv) in bs.iter().enumerate() {
            let prod = fb.ins().fmul(x, bv);
            let s = fb.use_var(accs[r * lanes + l]);
            let s = fb.ins().fadd(s, prod);
            fb.def_var(accs[r * lanes + l], s);
        }
    }
    let a = fb.ins().iadd_imm_s(a, (4 * mr) as i64);
    let b = fb.ins().iadd_imm_s(b, (4 * nr) as i64);
    let k = fb.ins().iadd_imm_s(k, -1);
    fb.def_var(a_var, a);
    fb.def_var(b_var, b);
    fb.def_var(k_var, k);
    fb.ins().brif(k, body, &[], exit, &[]);
    fb.switch_to_block(exit);
    let add = fb.create_block();
    let store = fb.create_block();
    fb.ins().brif(accumulate, add, &[], store, &[]);
    fb.switch_to_block(add);
    let mut row = c;
    for r in 0..mr {
        for l in 0..lanes {
            let old = fb.ins().load(types::F32X4, flags(), row, (16 * l) as i32);
            let s = fb.use_var(accs[r * lanes + l]);
            let s = fb.ins().fadd(s, old);
            fb.def_var(accs[r * lanes + l], s);
        }
        row = fb.ins().iadd(row, ldc);
    }
    fb.ins().jump(store, &[]);
    fb.switch_to_block(store);
    let mut row = c;
    for r in 0..mr {
        for l in 0..lanes {
            let s = fb.use_var(accs[r * lanes + l]);
            fb.ins().store(flags(), s, row, (16 * l) as i32);
        }
        row = fb.ins().iadd(row, ldc);
    }
    fb.ins().return_(&[]);
    fb.seal_all_blocks();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernels_assemble_and_end_with_vzeroupper_ret() {
        let full = Spec::for_features(Features::Avx512);
        let clamp = Registers { bias: Some(Bias::Row { step: 1 }), lo: Some(0), hi: Some(6f32.to_bits()), activation: None };
        for code in [
            avx512(full).unwrap(),
            avx512(Spec { mr: 14, ..full }).unwrap(),
            avx512(Spec { cols: 17, ..full }).unwrap(),
            avx512(Spec { cols: 16, ..full }).unwrap(),
            avx512(Spec { cols: 5, ..full }).unwrap(),
            avx512(Spec { cols: 5, ldb: 4 * 49, ..full }).unwrap(),
            avx512(Spec { ldb: 4 * 12544, ..full }).unwrap(),
            avx2(6).unwrap(),
        ] {
            // vzeroupper = c5 f8 77, ret = c3
            assert_eq!(&code[code.len() - 4..], &[0xc5, 0xf8, 0x77, 0xc3]);
        }
        // With a register epilogue, the bounds follow the code.
        let code = avx512(Spec { epilogue: Some(clamp), ..full }).unwrap();
        assert_eq!(&code[code.len() - 12..code.len() - 8], &[0xc5, 0xf8, 0x77, 0xc3]);
        assert_eq!(&code[code.len() - 4..], &6f32.to_le_bytes());
    }
}
