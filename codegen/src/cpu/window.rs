//! Window sums (depthwise and grouped convolutions with one input channel
//! per group) on AVX-512: a [`Kernel::Reduce`] of `x * w` whose window
//! input `x` moves along the innermost kept axis `v` with stride 1 or 2 and
//! whose weight `w` stays put along it runs 16 neighbouring outputs per zmm
//! lane group in the micro-kernel `avx512_window_sum_f32_s<stride>`.
//!
//! # When ([`plan`])
//! AVX-512 target; a Sum reduction whose element is `in0 * in1` (either
//! order) and whose finish is the accumulator; float32 inputs and output;
//! the window input moves with `v` only along its last coordinate, by 1 or
//! 2; the weight input is unguarded and does not move with `v`; the output
//! is contiguous along `v` and shares no memory with an input; at most 64
//! reduced indices; and the *interior* of `v` (the indices where every
//! coordinate that moves with `v` is inside its shape, and for stride 2 the
//! element after the last lane too; see `vector::interior`) is at least 16
//! long. Anything else keeps the F32X4 paths of `vector.rs`.
//!
//! # Loops (one task)
//! For every index of the kept axes before `v`: the reduced indices whose
//! guards that do not move with `v` (padded rows) hold, found once per row,
//! become the row's *taps*: the address of the window input at the first
//! interior index, and the weight. Padded taps are left out: the reference
//! adds `0 * w` for them, which is +0 for every finite weight. The interior
//! is then reduced 16 outputs at a time (whole groups, then one group
//! overlapping the last, which recomputes identical values); the borders
//! take the scalar loop. Each lane sums its taps with fused multiply-adds
//! in two or four interleaved partial sums (see below), so results differ
//! from the reference by rounding only.
//!
//! # Micro-kernel
//! `fn(taps: *const *const f32, weights: *const f32, ntaps: i64, out: *mut f32, groups: i64, offset: i64)`:
//! for each of `groups` groups `g` of 16 outputs, `out[16g + l] =
//! Σ_t weights[t] * taps[t][offset/4 + stride*(16g + l)]` (`offset` in
//! bytes), four groups per trip (taps split over two accumulators each),
//! then one at a time (taps split over four): eight or four independent
//! FMA chains. Caller-saved registers only, no stack, `vzeroupper` at the end.

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{types, FuncRef, InstBuilder, StackSlotData, StackSlotKind, Value};
use cranelift_frontend::FunctionBuilder;
use iced_x86::code_asm::*;
use kiln_ir::kernel::{Access, BufferKind, Combine, Expr, ExprNode, Kernel, Program};
use kiln_ir::DataType;

use super::vector::{has_uniform_guard, interior};
use super::{flags, nest, Emitter};
use crate::cpu::target::Features;

/// Lanes per group.
const LANES: usize = 16;
/// The most reduced indices a window may have (taps are found at compile time).
const MAX_TAPS: usize = 64;

/// How a window-sum kernel runs (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Which input is the window (the other is the weight).
    pub window: usize,
    /// 1 or 2: elements of the window input per output along `v`.
    pub stride: usize,
    /// The interior `[lo, hi)` of the innermost kept axis.
    pub interior: (usize, usize),
}

impl Plan {
    /// The micro-kernel's symbol.
    pub fn name(&self) -> String {
        format!("avx512_window_sum_f32_s{}", self.stride)
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
        || domain[rank - reduced..].iter().product::<usize>() > MAX_TAPS
    {
        return None;
    }
    let loads = matches!(
        element.nodes.as_slice(),
        [ExprNode::Load(p), ExprNode::Load(q), ExprNode::Binary(kiln_ir::kernel::BinaryFn::Mul, a, b)]
            if a.0 == 0 && b.0 == 1 && p != q
    );
    let f32_buffer = |b| program.buffer(b).data_type == DataType::Float32;
    if !loads || !f32_buffer(out.buffer) || !inputs.iter().all(|a| f32_buffer(a.buffer)) {
        return None;
    }
    let kept = rank - reduced;
    let v = kept - 1;
    let (_, out_strides) = out.linear(kept);
    if out_strides[v] != 1 || inputs.iter().any(|a| shares_memory(program, a, out)) {
        return None;
    }
    let moving = |a: &Access| a.coef.iter().any(|row| row[v] != 0);
    let window = inputs.iter().position(moving)?;
    let (x, w) = (&inputs[window], &inputs[1 - window]);
    let last = x.shape.len().checked_sub(1)?;
    let stride = x.coef[last][v];
    if moving(w) || w.guard.is_some() || !(1..=2).contains(&stride) || (0..last).any(|j| x.coef[j][v] != 0) {
        return None;
    }
    let (lo, hi) = interior(inputs, domain, v);
    if hi - lo < LANES as i128 {
        return None;
    }
    Some(Plan { window, stride: stride as usize, interior: (lo as usize, hi as usize) })
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
    /// the micro-kernel `micro`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn window_sum(
        &self,
        fb: &mut FunctionBuilder,
        plan: &Plan,
        micro: FuncRef,
        domain: &[usize],
        reduced: usize,
        inputs: &[Access],
        element: &Expr,
        finish: &Expr,
        out: &Access,
    ) {
        let rank = domain.len();
        let kept = rank - reduced;
        let v = kept - 1;
        let (x, w) = (&inputs[plan.window], &inputs[1 - plan.window]);
        let rdims = &domain[kept..];
        let taps: Vec<Vec<usize>> = (0..rdims.iter().product::<usize>())
            .map(|mut t| {
                let mut r = vec![0; rdims.len()];
                for (a, &d) in rdims.iter().enumerate().rev() {
                    r[a] = t % d;
                    t /= d;
                }
                r
            })
            .collect();
        let slot = |fb: &mut FunctionBuilder, bytes: usize| {
            fb.create_sized_stack_slot(StackSlotData::new(StackSlotKind::ExplicitSlot, bytes as u32, 3))
        };
        let ptr_slot = slot(fb, 8 * taps.len());
        let weight_slot = slot(fb, 4 * taps.len());
        let ranges = self.ranges(fb, &domain[..kept], true);
        let (outer, last) = ranges.split_at(v);
        let (lo, hi) = last[0];
        let inner = self.ranges(fb, rdims, false);
        let guarded_rows = x.guard.is_some() && has_uniform_guard(x, domain, v);
        nest(fb, outer, &mut Vec::new(), &mut |fb, index| {
            let mut point = |fb: &mut FunctionBuilder, i: Value| {
                let mut at = index.to_vec();
                at.push(i);
                self.reduce_point(fb, &inner, &at, inputs, element, Combine::Sum, finish, out);
            };
            let ilo = fb.ins().iconst(types::I64, plan.interior.0 as i64);
            let ihi = fb.ins().iconst(types::I64, plan.interior.1 as i64);
            let a = fb.ins().smax(lo, ilo);
            let a = fb.ins().smin(a, hi);
            let b = fb.ins().smin(hi, ihi);
            let b = fb.ins().smax(b, a);
            super::for_range(fb, lo, a, &mut point);
            let len = fb.ins().isub(b, a);
            let vector = fb.create_block();
            let scalar = fb.create_block();
            let right = fb.create_block();
            let wide = fb.ins().icmp_imm_s(IntCC::SignedGreaterThanOrEqual, len, LANES as i64);
            fb.ins().brif(wide, vector, &[], scalar, &[]);

            fb.switch_to_block(vector);
            let count = fb.declare_var(types::I64);
            let zero = fb.ins().iconst(types::I64, 0);
            fb.def_var(count, zero);
            let ptrs = fb.ins().stack_addr(types::I64, ptr_slot, 0);
            let weights = fb.ins().stack_addr(types::I64, weight_slot, 0);
            for r in &taps {
                let mut full = index.to_vec();
                full.push(a);
                full.extend(r.iter().map(|&c| fb.ins().iconst(types::I64, c as i64)));
                let add = fb.create_block();
                let next = fb.create_block();
                if guarded_rows {
                    let inside = Self::in_range_uniform(fb, x, domain, &full, v);
                    fb.ins().brif(inside, add, &[], next, &[]);
                } else {
                    fb.ins().jump(add, &[]);
                }
                fb.switch_to_block(add);
                let n = fb.use_var(count);
                let (xo, xs) = x.linear(rank);
                let element = Self::affine(fb, xo, &xs, &full);
                let address = self.address(fb, x.buffer, element);
                let at = fb.ins().imul_imm_s(n, 8);
                let at = fb.ins().iadd(ptrs, at);
                fb.ins().store(flags(), address, at, 0);
                let weight = self.read(fb, w, &full);
                let at = fb.ins().imul_imm_s(n, 4);
                let at = fb.ins().iadd(weights, at);
                fb.ins().store(flags(), weight, at, 0);
                let n = fb.ins().iadd_imm_s(n, 1);
                fb.def_var(count, n);
                fb.ins().jump(next, &[]);
                fb.switch_to_block(next);
            }
            let n = fb.use_var(count);
            let mut out_index = index.to_vec();
            out_index.push(a);
            let out_at = Self::offset(fb, out, &out_index);
            let out_address = self.address(fb, out.buffer, out_at);
            let groups = fb.ins().ushr_imm_u(len, LANES.trailing_zeros() as i64);
            let no_offset = fb.ins().iconst(types::I64, 0);
            fb.ins().call(micro, &[ptrs, weights, n, out_address, groups, no_offset]);
            // The last group, overlapping the whole ones, if 16 does not divide len.
            let rest = fb.ins().band_imm_u(len, LANES as i64 - 1);
            let last_group = fb.create_block();
            fb.ins().brif(rest, last_group, &[], right, &[]);
            fb.switch_to_block(last_group);
            let skip = fb.ins().iadd_imm_s(len, -(LANES as i64));
            let out_skip = fb.ins().imul_imm_s(skip, 4);
            let out_last = fb.ins().iadd(out_address, out_skip);
            let in_skip = fb.ins().imul_imm_s(skip, 4 * plan.stride as i64);
            let one = fb.ins().iconst(types::I64, 1);
            fb.ins().call(micro, &[ptrs, weights, n, out_last, one, in_skip]);
            fb.ins().jump(right, &[]);

            fb.switch_to_block(scalar);
            super::for_range(fb, a, b, &mut point);
            fb.ins().jump(right, &[]);

            fb.switch_to_block(right);
            super::for_range(fb, b, hi, &mut point);
        });
    }
}

/// The micro-kernel for `stride` (1 or 2): see the module documentation.
pub fn avx512(stride: usize) -> Result<Vec<u8>, IcedError> {
    assert!((1..=2).contains(&stride), "window stride {stride}");
    // Accumulators, and the loaded groups they add.
    const ZMM: [AsmRegisterZmm; 8] = [zmm0, zmm1, zmm2, zmm3, zmm4, zmm5, zmm6, zmm7];
    const TEMP: [AsmRegisterZmm; 8] = [zmm8, zmm9, zmm10, zmm11, zmm12, zmm13, zmm14, zmm15];
    const UNROLL: usize = 4;
    let group_bytes = (4 * LANES * stride) as i32;
    let mut asm = CodeAssembler::new(64)?;
    let mut evens = asm.create_label();
    if stride == 2 {
        asm.vmovups(zmm31, zmmword_ptr(evens))?;
    }
    // Loads group `u` of the tap at rax + 8*... into zmm(4+u): 16 elements,
    // or the even ones of 32.
    let load = |asm: &mut CodeAssembler, into: AsmRegisterZmm, u: usize| -> Result<(), IcedError> {
        let at = u as i32 * group_bytes;
        asm.vmovups(into, zmmword_ptr(rax + at))?;
        if stride == 2 {
            asm.vpermt2ps(into, zmm31, zmmword_ptr(rax + at + 64))?;
        }
        Ok(())
    };
    // Sums `groups` groups over the taps, then stores them. The taps are
    // split over `split` accumulators per group (tap t into t % split
    // while `split` taps remain, the rest into the first), added up at the
    // end: `groups * split` independent FMA chains.
    let block = |asm: &mut CodeAssembler, groups: usize, split: usize| -> Result<(), IcedError> {
        let acc = |u: usize, s: usize| ZMM[u * split + s];
        let temp = |u: usize, s: usize| TEMP[u * split + s];
        let mut main = asm.create_label();
        let mut rest = asm.create_label();
        let mut one = asm.create_label();
        let mut store = asm.create_label();
        for u in 0..groups {
            for s in 0..split {
                asm.vpxord(acc(u, s), acc(u, s), acc(u, s))?;
            }
        }
        asm.xor(r10, r10)?;
        asm.lea(r11, qword_ptr(r10 + split as i32))?;
        asm.set_label(&mut main)?;
        asm.cmp(r11, rdx)?;
        asm.ja(rest)?;
        for s in 0..split {
            asm.mov(rax, qword_ptr(rdi + r10 * 8 + (8 * s) as i32))?;
            asm.add(rax, r9)?;
            for u in 0..groups {
                load(asm, temp(u, s), u)?;
            }
        }
        for s in 0..split {
            for u in 0..groups {
                asm.vfmadd231ps(acc(u, s), temp(u, s), dword_bcst(rsi + r10 * 4 + (4 * s) as i32))?;
            }
        }
        asm.add(r10, split as i32)?;
        asm.add(r11, split as i32)?;
        asm.jmp(main)?;
        asm.set_label(&mut rest)?;
        asm.cmp(r10, rdx)?;
        asm.jae(store)?;
        asm.set_label(&mut one)?;
        asm.mov(rax, qword_ptr(rdi + r10 * 8))?;
        asm.add(rax, r9)?;
        for u in 0..groups {
            load(asm, temp(u, 0), u)?;
            asm.vfmadd231ps(acc(u, 0), temp(u, 0), dword_bcst(rsi + r10 * 4))?;
        }
        asm.inc(r10)?;
        asm.cmp(r10, rdx)?;
        asm.jb(one)?;
        asm.set_label(&mut store)?;
        for u in 0..groups {
            for s in 1..split {
                asm.vaddps(acc(u, 0), acc(u, 0), acc(u, s))?;
            }
            asm.vmovups(zmmword_ptr(rcx + (64 * u) as i32), acc(u, 0))?;
        }
        asm.add(rcx, (64 * groups) as i32)?;
        asm.add(r9, group_bytes * groups as i32)?;
        Ok(())
    };
    let mut quad = asm.create_label();
    let mut single = asm.create_label();
    let mut done = asm.create_label();
    asm.set_label(&mut quad)?;
    asm.cmp(r8, UNROLL as i32)?;
    asm.jb(single)?;
    block(&mut asm, UNROLL, 2)?;
    asm.sub(r8, UNROLL as i32)?;
    asm.jmp(quad)?;
    asm.set_label(&mut single)?;
    asm.test(r8, r8)?;
    asm.jz(done)?;
    block(&mut asm, 1, 4)?;
    asm.dec(r8)?;
    asm.jmp(single)?;
    asm.set_label(&mut done)?;
    asm.vzeroupper()?;
    asm.ret()?;
    if stride == 2 {
        asm.set_label(&mut evens)?;
        let indices: Vec<u32> = (0..LANES as u32).map(|l| 2 * l).collect();
        asm.dd(&indices)?;
    }
    asm.assemble(0)
}
