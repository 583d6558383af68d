//! Window sums (depthwise convolutions, and grouped ones with one input
//! channel per group) on AVX-512: a [`Kernel::Reduce`] of `x * w` whose
//! window input `x` moves along the innermost kept axis `v` with stride 1
//! or 2 runs one whole output row per call of a micro-kernel generated for
//! that kernel, 16 outputs per zmm register, borders included.
//!
//! # When ([`plan`])
//! AVX-512 target; a Sum reduction whose element is `in0 * in1` (either
//! order) and whose finish is the accumulator; float32 inputs and output;
//! the window input moves with `v` only along its last coordinate, by 1 or
//! 2, and that coordinate depends on no other kept axis; the weight input
//! is unguarded and does not move with `v`; the output is contiguous along
//! `v` and shares no memory with an input; at most 64 reduced indices
//! (*taps*); `v` at least 8 long and some kept axis before it longer than 1
//! (so tasks split whole rows). Anything else keeps the F32X4 paths of
//! `vector.rs`.
//!
//! # Rows
//! For every index of the kept axes before `v`, the driver (Cranelift)
//! computes the address of the window input and of the weights at `v = 0`
//! and tap 0, and one bit per tap: whether the tap's coordinates that do
//! not move with `v` (its row, in a padded convolution) are inside the
//! input. The micro-kernel is straight-line code for that row: for each
//! pass of up to four groups of 16 outputs, for each tap whose bit is set,
//! it broadcasts the weight and adds `x * w` into the group's accumulators,
//! reading each group's 16 elements (stride 2: the even ones of 32, two
//! loads and a permute) at displacements fixed at compile time. The lanes
//! whose column falls outside the input or past the row are masked off
//! (`{k}{z}` loads never touch their memory), with masks fixed at compile
//! time per tap and group; a group no lane of which a tap reaches skips
//! that tap. A skipped tap or lane adds nothing, where the reference adds
//! `0 * w`: the same for every finite weight. The last group's store is
//! masked to the row.
//!
//! Each lane sums its taps in order, alternating between two accumulators
//! (four when a pass has one group) that are added at the end, with fused
//! multiply-adds: results differ from the reference by rounding only.
//!
//! # Micro-kernel
//! `fn(x: *const f32, w: *const f32, out: *mut f32, taps: u64)`, named
//! `k<kernel>_avx512_window_sum_f32_s<stride>`: `x` and `w` as above, `out`
//! the row's first output, bit `t` of `taps` set when tap `t` is inside.
//! Caller-saved registers only, no stack, `vzeroupper` at the end.

use cranelift_codegen::ir::{types, FuncRef, InstBuilder};
use cranelift_frontend::FunctionBuilder;
use iced_x86::code_asm::*;
use kiln_ir::kernel::{Access, BinaryFn, BufferKind, Combine, Expr, ExprNode, Kernel, Program};
use kiln_ir::DataType;

use super::vector::has_uniform_guard;
use super::{nest, Emitter};
use crate::cpu::target::Features;

/// Lanes per group.
const LANES: usize = 16;
/// The most taps a window may have (one bit each in a u64).
const MAX_TAPS: usize = 64;
/// Groups accumulated together (registers zmm0..zmm7 hold their partial sums).
const PASS: usize = 4;

/// A window-sum kernel as the micro-kernel generator sees it: everything
/// about a row that is fixed at compile time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Which input is the window (the other is the weight).
    pub window: usize,
    /// 1 or 2: window elements per output along `v`.
    pub stride: usize,
    /// Outputs per row (the length of `v`).
    pub row: usize,
    /// Per tap: the window's element offset from tap 0 (at `v = 0`), the
    /// weight's element offset from tap 0, and per group of 16 outputs the
    /// mask of window elements to read (bit `e` = element `e` of the
    /// group's 16, or for stride 2 of its 32).
    pub taps: Vec<Tap>,
    /// Whether some tap's row can fall outside the input (the driver then
    /// checks every tap's row).
    pub guarded_rows: bool,
}

/// One tap of a [`Plan`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tap {
    pub x_offset: i64,
    pub w_offset: i64,
    pub masks: Vec<u32>,
}

impl Plan {
    /// The micro-kernel's symbol for kernel number `k`.
    pub fn name(&self, k: usize) -> String {
        format!("k{k}_avx512_window_sum_f32_s{}", self.stride)
    }

    fn groups(&self) -> usize {
        self.row.div_ceil(LANES)
    }
}

/// The window-sum plan of `kernel`, if it has one on `features`.
pub fn plan(program: &Program, kernel: &Kernel, features: Features) -> Option<Plan> {
    let Kernel::Reduce { domain, reduced, inputs, element, combine, finish, out } = kernel else { return None };
    let rank = domain.len();
    if features != Features::Avx512
        || *combine != Combine::Sum
        || *finish != Expr::acc()
        || inputs.len() != 2
        || *reduced == 0
        || *reduced >= rank
        || domain.contains(&0)
    {
        return None;
    }
    let product = matches!(
        element.nodes.as_slice(),
        [ExprNode::Load(p), ExprNode::Load(q), ExprNode::Binary(BinaryFn::Mul, a, b)]
            if a.0 == 0 && b.0 == 1 && p != q
    );
    let f32_buffer = |b| program.buffer(b).data_type == DataType::Float32;
    if !product || !f32_buffer(out.buffer) || !inputs.iter().all(|a| f32_buffer(a.buffer)) {
        return None;
    }
    let kept = rank - reduced;
    let v = kept - 1;
    let rdims = &domain[kept..];
    let tap_count: usize = rdims.iter().product();
    if tap_count > MAX_TAPS || domain[..v].iter().all(|&d| d == 1) {
        return None;
    }
    let (_, out_strides) = out.linear(kept);
    if out_strides[v] != 1 || inputs.iter().any(|a| shares_memory(program, a, out)) {
        return None;
    }
    let moving = |a: &Access| a.coef.iter().any(|row| row[v] != 0);
    let window = inputs.iter().position(moving)?;
    let (x, w) = (&inputs[window], &inputs[1 - window]);
    let last = x.shape.len().checked_sub(1)?;
    let stride = x.coef[last][v];
    let other_kept = (0..kept).any(|a| a != v && x.coef[last][a] != 0);
    if moving(w) || w.guard.is_some() || !(1..=2).contains(&stride) || other_kept || (0..last).any(|j| x.coef[j][v] != 0)
    {
        return None;
    }
    // Unguarded: the validator proved every column inside; guarded: the
    // masks keep the lanes whose column is inside.
    let (_, xs) = x.linear(rank);
    let (_, ws) = w.linear(rank);
    let row = domain[v];
    let groups = row.div_ceil(LANES);
    let width = x.shape[last] as i64;
    let taps: Vec<Tap> = (0..tap_count)
        .map(|mut t| {
            let mut r = vec![0usize; rdims.len()];
            for (a, &d) in rdims.iter().enumerate().rev() {
                r[a] = t % d;
                t /= d;
            }
            let at = |s: &[isize]| r.iter().enumerate().map(|(a, &i)| s[kept + a] as i64 * i as i64).sum::<i64>();
            // The column of output 0 at this tap.
            let column0 = x.base[last] as i64
                + r.iter().enumerate().map(|(a, &i)| x.coef[last][kept + a] as i64 * i as i64).sum::<i64>();
            let masks = (0..groups)
                .map(|g| {
                    let mut mask = 0u32;
                    for e in 0..LANES * stride as usize {
                        let (lane, used) = (e / stride as usize, e % stride as usize == 0);
                        let o = g * LANES + lane;
                        let column = column0 + stride as i64 * (g * LANES) as i64 + e as i64;
                        if used && o < row && (0..width).contains(&column) {
                            mask |= 1 << e;
                        }
                    }
                    mask
                })
                .collect();
            Tap { x_offset: at(&xs), w_offset: at(&ws), masks }
        })
        .collect();
    // Every byte displacement of the micro-kernel must fit 32 bits.
    let reach = (4 * LANES * stride as usize * groups + 64) as i64;
    if taps.iter().any(|t: &Tap| (4 * t.x_offset).abs() + reach > i32::MAX as i64 || (4 * t.w_offset).abs() > i32::MAX as i64) {
        return None;
    }
    let guarded_rows = x.guard.is_some() && has_uniform_guard(x, domain, v);
    Some(Plan { window, stride: stride as usize, row, taps, guarded_rows })
}

/// Whether input `a` may share memory with `out`.
fn shares_memory(program: &Program, a: &Access, out: &Access) -> bool {
    if a.buffer == out.buffer {
        return true;
    }
    let (x, y) = (program.buffer(a.buffer), program.buffer(out.buffer));
    match (&x.kind, &y.kind) {
        (BufferKind::Scratch { offset: p }, BufferKind::Scratch { offset: q }) => {
            *p < q + y.byte_len() && *q < p + x.byte_len()
        }
        _ => false,
    }
}

impl Emitter<'_> {
    /// A window-sum kernel by `plan` (see the module documentation), calling
    /// its micro-kernel `micro` once per row.
    pub(super) fn window_sum(&self, fb: &mut FunctionBuilder, plan: &Plan, micro: FuncRef, domain: &[usize], reduced: usize, inputs: &[Access], out: &Access) {
        let rank = domain.len();
        let kept = rank - reduced;
        let v = kept - 1;
        let (x, w) = (&inputs[plan.window], &inputs[1 - plan.window]);
        let ranges = self.ranges(fb, &domain[..v], true);
        let zero = fb.ins().iconst(types::I64, 0);
        let all = fb.ins().iconst(types::I64, ((1u128 << plan.taps.len()) - 1) as i64);
        nest(fb, &ranges, &mut Vec::new(), &mut |fb, index| {
            // The row at v = 0, tap 0.
            let mut at = index.to_vec();
            at.resize(rank, zero);
            let x_row = Self::offset(fb, x, &at);
            let x_row = self.address(fb, x.buffer, x_row);
            let w_row = Self::offset(fb, w, &at);
            let w_row = self.address(fb, w.buffer, w_row);
            let out_row = Self::offset(fb, out, &at[..kept]);
            let out_row = self.address(fb, out.buffer, out_row);
            let taps = if plan.guarded_rows {
                let rdims = &domain[kept..];
                let mut bits = zero;
                for t in 0..plan.taps.len() {
                    let mut full = at.clone();
                    let mut rest = t;
                    for (a, &d) in rdims.iter().enumerate().rev() {
                        full[kept + a] = fb.ins().iconst(types::I64, (rest % d) as i64);
                        rest /= d;
                    }
                    let inside = Self::in_range_uniform(fb, x, domain, &full, v);
                    let inside = fb.ins().uextend(types::I64, inside);
                    let bit = fb.ins().ishl_imm_u(inside, t as i64);
                    bits = fb.ins().bor(bits, bit);
                }
                bits
            } else {
                all
            };
            fb.ins().call(micro, &[x_row, w_row, out_row, taps]);
        });
    }
}

/// The micro-kernel of `plan`: see the module documentation.
pub fn avx512(plan: &Plan) -> Result<Vec<u8>, IcedError> {
    const ACC: [AsmRegisterZmm; 8] = [zmm0, zmm1, zmm2, zmm3, zmm4, zmm5, zmm6, zmm7];
    const TEMP: [AsmRegisterZmm; PASS] = [zmm8, zmm9, zmm10, zmm11];
    let stride = plan.stride;
    let group_bytes = (4 * LANES * stride) as i64;
    let groups = plan.groups();
    let full: u32 = if stride == 1 { 0xFFFF } else { 0x5555_5555 };
    let mut asm = CodeAssembler::new(64)?;
    let mut evens = asm.create_label();
    if stride == 2 {
        asm.vmovups(zmm31, zmmword_ptr(evens))?;
    }
    // `plan` checked that every displacement fits 32 bits.
    let disp = |bytes: i64| -> Result<i32, IcedError> { Ok(bytes as i32) };
    for first in (0..groups).step_by(PASS) {
        let pass: Vec<usize> = (first..groups.min(first + PASS)).collect();
        let split = if pass.len() == 1 { 4 } else { 2 };
        let acc = |p: usize, s: usize| ACC[p * split + s];
        for p in 0..pass.len() {
            for s in 0..split {
                asm.vpxord(acc(p, s), acc(p, s), acc(p, s))?;
            }
        }
        for (t, tap) in plan.taps.iter().enumerate() {
            if pass.iter().all(|&g| tap.masks[g] == 0) {
                continue;
            }
            let mut skip = asm.create_label();
            if plan.guarded_rows {
                asm.bt(rcx, t as u32)?;
                asm.jnc(skip)?;
            }
            asm.vbroadcastss(zmm12, dword_ptr(rsi + disp(4 * tap.w_offset)?))?;
            for (p, &g) in pass.iter().enumerate() {
                let mask = tap.masks[g];
                if mask == 0 {
                    continue;
                }
                let at = disp(4 * tap.x_offset + g as i64 * group_bytes)?;
                let into = TEMP[p];
                // Loads the 16 elements at byte `at` (`half` = which 16 of a
                // stride-2 group's 32) under its part of the mask.
                let masked_load = |asm: &mut CodeAssembler, into: AsmRegisterZmm, half: u32, at: i32| {
                    let bits = (mask >> (16 * half)) & 0xFFFF;
                    let all = (full >> (16 * half)) & 0xFFFF;
                    if bits == all && stride == 1 {
                        asm.vmovups(into, zmmword_ptr(rdi + at))
                    } else {
                        asm.mov(eax, bits)?;
                        asm.kmovw(k1, eax)?;
                        asm.vmovups(into.k1().z(), zmmword_ptr(rdi + at))
                    }
                };
                masked_load(&mut asm, into, 0, at)?;
                if stride == 2 {
                    if mask >> 16 == 0 {
                        // Lanes 8.. read nothing: the permute takes zeros.
                        asm.vpxord(zmm13, zmm13, zmm13)?;
                    } else {
                        masked_load(&mut asm, zmm13, 1, at + 64)?;
                    }
                    asm.vpermt2ps(into, zmm31, zmm13)?;
                }
                asm.vfmadd231ps(acc(p, t % split), into, zmm12)?;
            }
            asm.set_label(&mut skip)?;
        }
        for (p, &g) in pass.iter().enumerate() {
            for s in 1..split {
                asm.vaddps(acc(p, 0), acc(p, 0), acc(p, s))?;
            }
            let at = disp((4 * LANES * g) as i64)?;
            let valid = plan.row - g * LANES;
            if valid >= LANES {
                asm.vmovups(zmmword_ptr(rdx + at), acc(p, 0))?;
            } else {
                asm.mov(eax, (1u32 << valid) - 1)?;
                asm.kmovw(k1, eax)?;
                asm.vmovups(zmmword_ptr(rdx + at).k1(), acc(p, 0))?;
            }
        }
    }
    asm.vzeroupper()?;
    asm.ret()?;
    if stride == 2 {
        asm.set_label(&mut evens)?;
        let indices: Vec<u32> = (0..LANES as u32).map(|l| 2 * l).collect();
        asm.dd(&indices)?;
    }
    asm.assemble(0)
}
