//! Four-lane (`f32x4`) loops for `Kernel::Map` and `Kernel::Reduce`.
//!
//! Every access of these paths is unguarded, so it is an affine flat offset
//! (`Access::linear`). Adjacent domain axes that every access walks as one
//! are merged first (a `[n, c, h, w]` identity map is one axis of
//! `n*c*h*w`) and axes of length 1 dropped, so that the vectorised axis is
//! as long as possible. Four lanes are then read per input as a vector
//! load (stride 1 and an f32, f16, i32 or u32 buffer), a splat (stride 0,
//! loaded once per row: such loads are marked movable) or four gathered
//! elements (any other stride or type); results are stored as one vector
//! (stride 1, lane type) or lane by lane.
//!
//! - **map** (innermost domain axis, length ≥ 4): vectorised when the
//!   output or an input is a vector access, or the expression has more
//!   than adds, multiplies and compares (then gathering pays). 4 vectors
//!   (2 for heavy expressions) per iteration, then one, then a scalar tail. A map that is a plain copy (one load of
//!   the output's type) with a contiguous output and a contiguous or fixed
//!   input copies 16-byte vectors of any element type (4 per iteration),
//!   or stores a splatted element.
//! - **reduce**: when the innermost reduced axis (length ≥ 4) has stride 0
//!   or 1 in every input, 4 vector accumulators (16 partial results) run
//!   over it, then a one-vector loop and a scalar tail, combined at the end
//!   (so sums are reassociated). Otherwise, or when that axis is shorter than 16
//!   while the innermost *kept* axis (length ≥ 4) is contiguous in the
//!   output and stride 0 or 1 in the inputs (a reduction over outer axes,
//!   like a sum over channels in NHWC), 16 neighbouring outputs (then 4,
//!   then a scalar tail) are reduced at once in the lanes of 4
//!   accumulators, each lane in exactly the scalar order.
//!   `Count` is the number of reduced elements (no guards here).
//!
//! - **guarded reduce** (padded pooling, depthwise convolution; see
//!   `reduce_guarded`): a reduction with a guarded input (or, when the
//!   plain reduce refuses it, an unguarded stride-2 window), at least one
//!   reduced and one kept axis, an innermost kept axis `v` of length ≥ 4,
//!   no input sharing memory with the output, and an *interior* of `v` at
//!   least 4 long (the indices at which every guarded coordinate that
//!   moves with `v` is inside its shape for every other index, computed at
//!   compile time). The interior is reduced 16 (then 4) outputs at a time
//!   in vector lanes, with one overlapping group for a remainder; guards
//!   that do not move with `v` (rows) are one branch per reduced index
//!   (skipped when provably inside), and `Count` is the same for every
//!   lane. Windows of ≤ 64 reduced indices are unrolled at compile time.
//!   A guarded input that moves by 2 along its contiguous coordinate
//!   (stride-2 convolution/pooling, f32) reads two vectors and shuffles
//!   the even lanes (the interior then also keeps the element after the
//!   last lane inside). Borders take the scalar loop. Same order per
//!   output as the scalar path: bit-for-bit equal.
//!
//! - **guarded copy** (im2col, explicit padding; see `map_guarded`): an
//!   f32 map that is one load of a single guarded input. The vectorised
//!   axis is the output-contiguous innermost axis if its interior holds 4
//!   indices, else the innermost axis (length >= 4) moving the input whose
//!   interior does (`ow` of an im2col). Interior: 4 elements at a time
//!   (vector or gathered loads, vector or scattered stores), row guards
//!   one branch per group (load or fill); borders take the scalar loop.
//!
//! Anything else (other guarded maps, other guarded reductions, an empty
//! domain, an input that overlaps the output other than element for
//! element at the same address) keeps the scalar loops of `emit.rs`. Lane `k` computes exactly what the scalar
//! loop computes for its element, so maps agree with the scalar path bit
//! for bit.

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{types, BlockArg, Endianness, InstBuilder, MachMemFlags, Type, Value};
use cranelift_frontend::{FunctionBuilder, Variable};
use kiln_ir::kernel::{Access, BinaryFn, BufferId, BufferKind, Combine, Expr, ExprNode, UnaryFn};
use kiln_ir::DataType;

use super::math::{self, Lanes};
use super::{flags, nest, Emitter, Finish};
use crate::cpu::overlap::may_overlap;

/// An unguarded access as a flat element offset `offset + Σ strides[a] i[a]`.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Lin {
    pub(super) buffer: BufferId,
    pub(super) offset: isize,
    pub(super) strides: Vec<isize>,
    /// Loads may be hoisted and merged: the buffer is not written by the kernel.
    pub(super) pure: bool,
}

/// The linear forms of a reduction's finish inputs (unguarded) over its
/// `kept` axes.
pub(super) fn finish_lins(finish: Finish<'_>, kept: usize) -> Vec<Lin> {
    finish
        .inputs
        .iter()
        .map(|a| {
            let (offset, strides) = a.linear(kept);
            Lin { buffer: a.buffer, offset, strides, pure: true }
        })
        .collect()
}

/// Merges the adjacent axes of one axis group that every access walks as
/// one (`stride[outer] == stride[inner] * len[inner]`) and drops axes of
/// length 1. `strides[k]` are access k's strides over the group.
fn collapse(dims: &[usize], strides: &[Vec<isize>]) -> (Vec<usize>, Vec<Vec<isize>>) {
    let mut out_dims: Vec<usize> = Vec::new();
    let mut out_strides: Vec<Vec<isize>> = vec![Vec::new(); strides.len()];
    for (a, &d) in dims.iter().enumerate() {
        if d == 1 {
            continue;
        }
        let merge = !out_dims.is_empty()
            && strides.iter().zip(&out_strides).all(|(s, o)| *o.last().unwrap() == s[a] * d as isize);
        if merge {
            *out_dims.last_mut().unwrap() *= d;
            for (s, o) in strides.iter().zip(&mut out_strides) {
                *o.last_mut().unwrap() = s[a];
            }
        } else {
            out_dims.push(d);
            for (s, o) in strides.iter().zip(&mut out_strides) {
                o.push(s[a]);
            }
        }
    }
    (out_dims, out_strides)
}


/// Buffer types loaded and stored as four f32 lanes.
fn lane_type_ok(t: DataType) -> bool {
    matches!(t, DataType::Float32 | DataType::Float16 | DataType::Int32 | DataType::Uint32)
}

fn load_flags(pure: bool) -> MachMemFlags {
    if pure {
        flags().with_readonly().with_can_move()
    } else {
        flags()
    }
}

/// The 128-bit integer vector of `size`-byte lanes.
fn int_vector(size: usize) -> Type {
    match size {
        1 => types::I8X16,
        2 => types::I16X8,
        4 => types::I32X4,
        _ => types::I64X2,
    }
}

/// `var = var + step` while `var + step <= end`: `body(i)` sees each start.
fn for_step(fb: &mut FunctionBuilder, var: Variable, end: Value, step: i64, body: &mut dyn FnMut(&mut FunctionBuilder, Value)) {
    let header = fb.create_block();
    let body_block = fb.create_block();
    let exit = fb.create_block();
    fb.ins().jump(header, &[]);
    fb.switch_to_block(header);
    let i = fb.use_var(var);
    let next = fb.ins().iadd_imm_s(i, step);
    let more = fb.ins().icmp(IntCC::SignedLessThanOrEqual, next, end);
    fb.ins().brif(more, body_block, &[], exit, &[]);
    fb.switch_to_block(body_block);
    body(fb, i);
    fb.def_var(var, next);
    fb.ins().jump(header, &[]);
    fb.switch_to_block(exit);
}

fn combine_values(fb: &mut FunctionBuilder, combine: Combine, a: Value, b: Value) -> Value {
    match combine {
        Combine::Sum => fb.ins().fadd(a, b),
        Combine::Product => fb.ins().fmul(a, b),
        Combine::Max => fb.ins().fmax(a, b),
        Combine::Min => fb.ins().fmin(a, b),
    }
}

fn splat_f32(fb: &mut FunctionBuilder, ty: Type, c: f32) -> Value {
    let s = fb.ins().f32const(c);
    if ty.is_vector() {
        fb.ins().splat(ty, s)
    } else {
        s
    }
}

/// Whether an expression has arithmetic that pays for gathering its inputs
/// into lanes: anything beyond a few adds and multiplies.
fn heavy(expr: &Expr) -> bool {
    expr.nodes.iter().any(|n| match n {
        ExprNode::Unary(f, _) => !matches!(f, UnaryFn::Abs | UnaryFn::Neg),
        ExprNode::Binary(f, _, _) => matches!(f, BinaryFn::Pow | BinaryFn::Div),
        _ => false,
    })
}

/// The lane type of a width.
fn lanes(width: u32) -> Type {
    if width == 4 {
        types::F32X4
    } else {
        types::F32
    }
}

/// Which reduction loop to emit.
enum ReducePlan {
    /// Vectorise the innermost reduced axis.
    Reduced,
    /// Vectorise the innermost kept axis.
    Kept,
}

impl Emitter<'_> {
    /// Whether `a` and `b` start at the same address.
    fn same_start(&self, a: BufferId, b: BufferId) -> bool {
        if a == b {
            return true;
        }
        match (&self.program.buffer(a).kind, &self.program.buffer(b).kind) {
            (BufferKind::Scratch { offset: p }, BufferKind::Scratch { offset: q }) => p == q,
            _ => false,
        }
    }

    fn elem_size(&self, b: BufferId) -> usize {
        self.program.buffer(b).data_type.byte_size()
    }

    /// The linear forms of `inputs` over `domain` for a kernel writing `out`
    /// (over the first `out_rank` axes of `domain`), or `None` if an input
    /// is guarded or overlaps the output other than element for element at
    /// the same address (the same flat offset at every index: strides of
    /// size-1 axes do not count). Such an in-place input (planning puts a
    /// Map's output over an input that dies there) is not `pure`: its loads
    /// stay in place, each before the store of its own index.
    fn linear_inputs(&self, inputs: &[Access], out: &Access, domain: &[usize], out_rank: usize) -> Option<Vec<Lin>> {
        let rank = domain.len();
        let (oo, os) = out.linear(out_rank);
        let used = |s: &[isize]| -> Vec<isize> { s.iter().zip(domain).map(|(&x, &d)| if d == 1 { 0 } else { x }).collect() };
        inputs
            .iter()
            .map(|a| {
                if a.guard.is_some() {
                    return None;
                }
                let (offset, strides) = a.linear(rank);
                let mut pure = true;
                if may_overlap(self.program, a, domain, out, &domain[..out_rank]) {
                    let in_place = rank == out_rank
                        && self.same_start(a.buffer, out.buffer)
                        && self.elem_size(a.buffer) == self.elem_size(out.buffer)
                        && offset == oo
                        && used(&strides) == used(&os);
                    if !in_place {
                        return None;
                    }
                    pure = false;
                }
                Some(Lin { buffer: a.buffer, offset, strides, pure })
            })
            .collect()
    }

    /// Four f32 lanes at `addr + offset`, which need not be aligned. On
    /// legacy SSE the load is an integer load reinterpreted, so that no
    /// float instruction takes it as a memory operand (which SSE requires
    /// aligned; see [`crate::cpu::runtime_fns::Imported::is_legacy_sse`]).
    fn load_vector(&self, fb: &mut FunctionBuilder, fl: MachMemFlags, addr: Value, offset: i32) -> Value {
        if self.helpers.is_legacy_sse() {
            let bits = fb.ins().load(types::I32X4, fl, addr, offset);
            fb.ins().bitcast(types::F32X4, MachMemFlags::new().with_endianness(Endianness::Little), bits)
        } else {
            fb.ins().load(types::F32X4, fl, addr, offset)
        }
    }

    /// Loads `width` (1 or 4) consecutive elements at element `offset` as f32 lanes.
    fn load_lanes(&self, fb: &mut FunctionBuilder, lin: &Lin, offset: Value, width: u32) -> Value {
        if width == 1 && !lin.pure {
            return self.load_f32(fb, lin.buffer, offset);
        }
        let addr = self.address(fb, lin.buffer, offset);
        let fl = load_flags(lin.pure);
        let t = self.program.buffer(lin.buffer).data_type;
        let (fty, ity) = if width == 4 { (types::F32X4, types::I32X4) } else { (types::F32, types::I32) };
        match t {
            DataType::Float32 if width == 4 => self.load_vector(fb, fl, addr, 0),
            DataType::Float32 => fb.ins().load(fty, fl, addr, 0),
            DataType::Int32 => {
                let v = fb.ins().load(ity, fl, addr, 0);
                fb.ins().fcvt_from_sint(fty, v)
            }
            DataType::Uint32 => {
                let v = fb.ins().load(ity, fl, addr, 0);
                fb.ins().fcvt_from_uint(fty, v)
            }
            DataType::Float16 => {
                let bits = if width == 4 {
                    fb.ins().uload16x4(fl, addr, 0)
                } else {
                    fb.ins().uload16(types::I32, fl, addr, 0)
                };
                math::f16_bits_to_f32(&mut Lanes::new(fb, fty, false), bits)
            }
            _ => {
                assert_eq!(width, 1, "only lane types are loaded four at a time");
                self.load_f32(fb, lin.buffer, offset)
            }
        }
    }

    /// Stores `width` f32 lanes at element `offset` of `buffer`, converted
    /// as [`Emitter::store_f32`] does.
    fn store_lanes(&self, fb: &mut FunctionBuilder, buffer: BufferId, offset: Value, v: Value, width: u32) {
        if width == 1 {
            return self.store_f32(fb, buffer, offset, v);
        }
        let addr = self.address(fb, buffer, offset);
        match self.program.buffer(buffer).data_type {
            DataType::Float32 => {
                fb.ins().store(flags(), v, addr, 0);
            }
            DataType::Int32 => {
                let i = fb.ins().fcvt_to_sint_sat(types::I32X4, v);
                fb.ins().store(flags(), i, addr, 0);
            }
            DataType::Uint32 => {
                let i = fb.ins().fcvt_to_uint_sat(types::I32X4, v);
                fb.ins().store(flags(), i, addr, 0);
            }
            DataType::Float16 => {
                let bits = math::f32_to_f16_bits(&mut Lanes::new(fb, types::F32X4, false), v);
                let narrow = fb.ins().unarrow(bits, bits);
                let wide = fb.ins().bitcast(types::I64X2, MachMemFlags::new().with_endianness(Endianness::Little), narrow);
                let low = fb.ins().extractlane(wide, 0);
                fb.ins().store(flags(), low, addr, 0);
            }
            t => unreachable!("{t} is not stored in lanes"),
        }
    }

    /// Input `lin` at `index` as `width` lanes over domain axis `axis`: a
    /// vector load when it walks that axis contiguously (in a lane type), a
    /// splatted element when it stays put, else four elements gathered.
    pub(super) fn read_lanes(&self, fb: &mut FunctionBuilder, lin: &Lin, index: &[Value], width: u32, axis: usize) -> Value {
        let offset = Self::affine(fb, lin.offset, &lin.strides, index);
        if width == 1 {
            return self.load_lanes(fb, lin, offset, 1);
        }
        let stride = lin.strides[axis];
        if stride == 1 && lane_type_ok(self.program.buffer(lin.buffer).data_type) {
            return self.load_lanes(fb, lin, offset, 4);
        }
        let first = self.load_lanes(fb, lin, offset, 1);
        let mut v = fb.ins().splat(types::F32X4, first);
        if stride != 0 {
            for k in 1..4u8 {
                let at = fb.ins().iadd_imm_s(offset, stride as i64 * k as i64);
                let x = self.load_lanes(fb, lin, at, 1);
                v = fb.ins().insertlane(v, x, k);
            }
        }
        v
    }

    /// Stores `width` lanes to `lin` at `index` over domain axis `axis`: a
    /// vector store when the output walks that axis contiguously (in a lane
    /// type), else lane by lane.
    fn write_lanes(&self, fb: &mut FunctionBuilder, lin: &Lin, index: &[Value], v: Value, width: u32, axis: usize) {
        let offset = Self::affine(fb, lin.offset, &lin.strides, index);
        let stride = lin.strides[axis];
        if width == 1 || (stride == 1 && lane_type_ok(self.program.buffer(lin.buffer).data_type)) {
            return self.store_lanes(fb, lin.buffer, offset, v, width);
        }
        for k in 0..4u8 {
            let at = fb.ins().iadd_imm_s(offset, stride as i64 * k as i64);
            let x = fb.ins().extractlane(v, k);
            self.store_f32(fb, lin.buffer, at, x);
        }
    }

    /// Emits a vectorised map if the kernel allows one; false leaves `fb`
    /// untouched.
    pub(super) fn map_vector(&mut self, fb: &mut FunctionBuilder, domain: &[usize], inputs: &[Access], expr: &Expr, out: &Access) -> bool {
        if domain.contains(&0) || domain.is_empty() {
            return false;
        }
        let rank = domain.len();
        let Some(mut lins) = self.linear_inputs(inputs, out, domain, rank) else { return false };
        let (oo, os) = out.linear(rank);
        let mut all: Vec<Vec<isize>> = lins.iter().map(|l| l.strides.clone()).collect();
        all.push(os);
        let (dims, strides) = collapse(domain, &all);
        if dims.is_empty() {
            return false;
        }
        for (l, s) in lins.iter_mut().zip(&strides) {
            l.strides = s.clone();
        }
        let out_lin = Lin { buffer: out.buffer, offset: oo, strides: strides.last().unwrap().clone(), pure: false };
        let inner = dims.len() - 1;
        let out_type = self.program.buffer(out.buffer).data_type;
        let copy = matches!(expr.nodes.as_slice(), [ExprNode::Load(0)])
            && self.program.buffer(inputs[0].buffer).data_type == out_type;
        if copy {
            // An in-place copy (not pure) walks the output's strides.
            if out_lin.strides[inner] == 1 && matches!(lins[0].strides[inner], 0 | 1) {
                self.copy_vector(fb, &dims, &lins[0], &out_lin);
                return true;
            }
            return false;
        }
        // Worth four lanes: some access is a vector load or store, or the
        // arithmetic is heavy enough to pay for gathering elements.
        let contiguous = |l: &Lin| l.strides[inner] == 1 && lane_type_ok(self.program.buffer(l.buffer).data_type);
        if *dims.last().unwrap() < 4 || !(contiguous(&out_lin) || lins.iter().any(contiguous) || heavy(expr)) {
            return false;
        }
        let ranges = self.ranges(fb, &dims, true);
        let (outer, last) = ranges.split_at(ranges.len() - 1);
        let (lo, hi) = last[0];
        nest(fb, outer, &mut Vec::new(), &mut |fb, index| {
            let j = fb.declare_var(types::I64);
            fb.def_var(j, lo);
            let mut full = index.to_vec();
            // Vectors per main-loop iteration: light expressions are bound
            // by loop overhead and memory, heavy ones by latency.
            let unroll = if heavy(expr) { 2 } else { 4 };
            for (step, unroll, width) in [(4 * unroll, unroll, 4u32), (4, 1, 4), (1, 1, 1)] {
                for_step(fb, j, hi, step, &mut |fb, i| {
                    for u in 0..unroll {
                        let i = if u == 0 { i } else { fb.ins().iadd_imm_s(i, 4 * u) };
                        full.push(i);
                        let v = self.expr_lanes(
                            fb,
                            lanes(width),
                            expr,
                            &mut |fb, n| self.read_lanes(fb, &lins[n as usize], &full, width, inner),
                            None,
                            None,
                        );
                        self.write_lanes(fb, &out_lin, &full, v, width, inner);
                        full.pop();
                    }
                });
            }
        });
        true
    }

    /// A copy whose innermost axis is contiguous in the output and
    /// contiguous or fixed in the input: 16-byte vectors, then elements.
    fn copy_vector(&mut self, fb: &mut FunctionBuilder, dims: &[usize], src: &Lin, dst: &Lin) {
        let size = self.elem_size(dst.buffer);
        let per = (16 / size) as i64;
        let vty = int_vector(size);
        let ety = super::int_type(self.program.buffer(dst.buffer).data_type);
        let broadcast = *src.strides.last().unwrap() == 0;
        let ranges = self.ranges(fb, dims, true);
        let (outer, last) = ranges.split_at(ranges.len() - 1);
        let (lo, hi) = last[0];
        nest(fb, outer, &mut Vec::new(), &mut |fb, index| {
            let j = fb.declare_var(types::I64);
            fb.def_var(j, lo);
            let mut full = index.to_vec();
            let splat = if broadcast {
                full.push(lo);
                let at = Self::affine(fb, src.offset, &src.strides, &full);
                full.pop();
                let from = self.address(fb, src.buffer, at);
                let e = fb.ins().load(ety, load_flags(true), from, 0);
                Some((e, fb.ins().splat(vty, e)))
            } else {
                None
            };
            for (step, unroll) in [(per * 4, 4), (per, 1), (1, 1)] {
                for_step(fb, j, hi, step, &mut |fb, i| {
                    for u in 0..unroll {
                        let i = fb.ins().iadd_imm_s(i, u * per);
                        full.push(i);
                        let ty = if step == 1 { ety } else { vty };
                        let v = match splat {
                            Some((e, v)) => if step == 1 { e } else { v },
                            None => {
                                let at = Self::affine(fb, src.offset, &src.strides, &full);
                                let from = self.address(fb, src.buffer, at);
                                fb.ins().load(ty, load_flags(src.pure), from, 0)
                            }
                        };
                        let at = Self::affine(fb, dst.offset, &dst.strides, &full);
                        let to = self.address(fb, dst.buffer, at);
                        fb.ins().store(flags(), v, to, 0);
                        full.pop();
                    }
                });
            }
        });
    }

    /// A reduction's finish for `width` (1 or 4) neighbouring outputs along
    /// kept axis `axis` starting at `kidx`, from their accumulators and
    /// counts (lanes); finish input `n` is read as lanes through `lins[n]`
    /// (its linear form over the same kept axes as `kidx`).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn finish_lanes(
        &self,
        fb: &mut FunctionBuilder,
        expr: &Expr,
        lins: &[Lin],
        kidx: &[Value],
        width: u32,
        axis: usize,
        acc: Value,
        count: Value,
    ) -> Value {
        let ty = if width == 1 { types::F32 } else { types::F32X4 };
        self.expr_lanes(fb, ty, expr, &mut |fb, n| self.read_lanes(fb, &lins[n as usize], kidx, width, axis), Some(acc), Some(count))
    }

    /// Emits a vectorised reduction if the kernel allows one; false leaves
    /// `fb` untouched.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn reduce_vector(
        &mut self,
        fb: &mut FunctionBuilder,
        domain: &[usize],
        reduced: usize,
        inputs: &[Access],
        element: &Expr,
        combine: Combine,
        finish: Finish<'_>,
        out: &Access,
    ) -> bool {
        // Finish inputs are read as lanes: unguarded only.
        if finish.inputs.iter().any(|a| a.guard.is_some()) {
            return false;
        }
        if domain.contains(&0) || reduced == 0 {
            return false;
        }
        let rank = domain.len();
        let kept = rank - reduced;
        let Some(lins) = self.linear_inputs(inputs, out, domain, kept) else { return false };
        let (oo, os) = out.linear(kept);
        // Kept axes: inputs, finish inputs and output; reduced axes: inputs only.
        let finish_forms = finish_lins(finish, kept);
        let mut kept_strides: Vec<Vec<isize>> = lins.iter().map(|l| l.strides[..kept].to_vec()).collect();
        kept_strides.extend(finish_forms.iter().map(|l| l.strides.clone()));
        kept_strides.push(os);
        let (kdims, ks) = collapse(&domain[..kept], &kept_strides);
        let finish_forms: Vec<Lin> = finish_forms
            .into_iter()
            .enumerate()
            .map(|(j, l)| Lin { strides: ks[lins.len() + j].clone(), ..l })
            .collect();
        let red_strides: Vec<Vec<isize>> = lins.iter().map(|l| l.strides[kept..].to_vec()).collect();
        let (rdims, rs) = collapse(&domain[kept..], &red_strides);
        if rdims.is_empty() {
            return false;
        }
        let lins: Vec<Lin> = lins
            .iter()
            .enumerate()
            .map(|(n, l)| Lin { strides: [ks[n].clone(), rs[n].clone()].concat(), ..l.clone() })
            .collect();
        let out_lin = Lin { buffer: out.buffer, offset: oo, strides: ks.last().unwrap().clone(), pure: false };
        let (nk, nr) = (kdims.len(), rdims.len());
        let inner_reduced = *rdims.last().unwrap();
        let reduced_ok = lins.iter().all(|l| matches!(l.strides[nk + nr - 1], 0 | 1)) && inner_reduced >= 4;
        let kept_ok = nk > 0
            && *kdims.last().unwrap() >= 4
            && *out_lin.strides.last().unwrap() == 1
            && lins.iter().all(|l| matches!(l.strides[nk - 1], 0 | 1));
        let plan = if reduced_ok && (inner_reduced >= 16 || !kept_ok) {
            ReducePlan::Reduced
        } else if kept_ok {
            ReducePlan::Kept
        } else {
            return false;
        };
        let count = rdims.iter().product::<usize>() as f32;
        if nk == 0 {
            self.single_task(fb);
        }
        let kranges = self.ranges(fb, &kdims, true);
        match plan {
            ReducePlan::Reduced => {
                nest(fb, &kranges, &mut Vec::new(), &mut |fb, kidx| {
                    let identity = combine.identity();
                    let accs: Vec<Variable> = (0..4)
                        .map(|_| {
                            let v = fb.declare_var(types::F32X4);
                            let init = splat_f32(fb, types::F32X4, identity);
                            fb.def_var(v, init);
                            v
                        })
                        .collect();
                    let tail = fb.declare_var(types::F32);
                    let init = fb.ins().f32const(identity);
                    fb.def_var(tail, init);
                    let rranges = self.ranges(fb, &rdims, false);
                    let (router, rlast) = rranges.split_at(nr - 1);
                    let (lo, hi) = rlast[0];
                    let mut index = kidx.to_vec();
                    nest(fb, router, &mut index, &mut |fb, idx| {
                        let j = fb.declare_var(types::I64);
                        fb.def_var(j, lo);
                        let mut full = idx.to_vec();
                        for (step, unroll, width) in [(16, 4, 4u32), (4, 1, 4), (1, 1, 1)] {
                            for_step(fb, j, hi, step, &mut |fb, i| {
                                for u in 0..unroll {
                                    let i = fb.ins().iadd_imm_s(i, u * 4);
                                    full.push(i);
                                    let x = self.expr_lanes(
                                        fb,
                                        lanes(width),
                                        element,
                                        &mut |fb, n| self.read_lanes(fb, &lins[n as usize], &full, width, nk + nr - 1),
                                        None,
                                        None,
                                    );
                                    full.pop();
                                    let var = if width == 1 { tail } else { accs[u as usize] };
                                    let a = fb.use_var(var);
                                    let a = combine_values(fb, combine, a, x);
                                    fb.def_var(var, a);
                                }
                            });
                        }
                    });
                    let a: Vec<Value> = accs.iter().map(|&v| fb.use_var(v)).collect();
                    let v01 = combine_values(fb, combine, a[0], a[1]);
                    let v23 = combine_values(fb, combine, a[2], a[3]);
                    let v = combine_values(fb, combine, v01, v23);
                    let l: Vec<Value> = (0..4u8).map(|k| fb.ins().extractlane(v, k)).collect();
                    let h01 = combine_values(fb, combine, l[0], l[1]);
                    let h23 = combine_values(fb, combine, l[2], l[3]);
                    let h = combine_values(fb, combine, h01, h23);
                    let t = fb.use_var(tail);
                    let acc = combine_values(fb, combine, h, t);
                    let c = fb.ins().f32const(count);
                    let v = self.finish_lanes(fb, finish.expr, &finish_forms, kidx, 1, 0, acc, c);
                    let dst = Self::affine(fb, out_lin.offset, &out_lin.strides, kidx);
                    self.store_f32(fb, out_lin.buffer, dst, v);
                });
            }
            ReducePlan::Kept => {
                let (kouter, klast) = kranges.split_at(nk - 1);
                let (lo, hi) = klast[0];
                nest(fb, kouter, &mut Vec::new(), &mut |fb, index| {
                    let j = fb.declare_var(types::I64);
                    fb.def_var(j, lo);
                    // 16 outputs (4 independent accumulators) per step, then 4, then 1.
                    for (step, unroll, width) in [(16i64, 4i64, 4u32), (4, 1, 4), (1, 1, 1)] {
                        for_step(fb, j, hi, step, &mut |fb, i| {
                            let ty = lanes(width);
                            let accs: Vec<Variable> = (0..unroll)
                                .map(|_| {
                                    let acc = fb.declare_var(ty);
                                    let init = splat_f32(fb, ty, combine.identity());
                                    fb.def_var(acc, init);
                                    acc
                                })
                                .collect();
                            let rranges = self.ranges(fb, &rdims, false);
                            let mut full = index.to_vec();
                            full.push(i);
                            nest(fb, &rranges, &mut full, &mut |fb, full| {
                                for (u, &acc) in accs.iter().enumerate() {
                                    let mut at = full.to_vec();
                                    at[nk - 1] = fb.ins().iadd_imm_s(full[nk - 1], 4 * u as i64);
                                    let x = self.expr_lanes(
                                        fb,
                                        ty,
                                        element,
                                        &mut |fb, n| self.read_lanes(fb, &lins[n as usize], &at, width, nk - 1),
                                        None,
                                        None,
                                    );
                                    let a = fb.use_var(acc);
                                    let a = combine_values(fb, combine, a, x);
                                    fb.def_var(acc, a);
                                }
                            });
                            for (u, &acc) in accs.iter().enumerate() {
                                let a = fb.use_var(acc);
                                let c = splat_f32(fb, ty, count);
                                let mut kidx = index.to_vec();
                                kidx.push(fb.ins().iadd_imm_s(i, 4 * u as i64));
                                let v = self.finish_lanes(fb, finish.expr, &finish_forms, &kidx, width, nk - 1, a, c);
                                self.write_lanes(fb, &out_lin, &kidx, v, width, nk - 1);
                            }
                        });
                    }
                });
            }
        }
        true
    }
}

// ------------------------------------------------- guarded reductions ----

/// `floor(a / b)` for `b != 0`.
fn div_floor(a: i128, b: i128) -> i128 {
    let q = a / b;
    if a % b != 0 && ((a < 0) != (b < 0)) {
        q - 1
    } else {
        q
    }
}

/// `ceil(a / b)` for `b != 0`.
fn div_ceil(a: i128, b: i128) -> i128 {
    -div_floor(-a, b)
}

/// The least and greatest value of `base + Σ coef[a] * i[a]` over the domain box.
pub(super) fn span(base: isize, coef: &[isize], domain: &[usize]) -> (i128, i128) {
    let (mut lo, mut hi) = (base as i128, base as i128);
    for (&c, &d) in coef.iter().zip(domain) {
        let s = c as i128 * (d as i128 - 1);
        if s < 0 {
            lo += s;
        } else {
            hi += s;
        }
    }
    (lo, hi)
}

/// The indices `[lo, hi)` of domain axis `v` at which every coordinate of
/// every guarded input that moves with `v` is inside its shape, whatever
/// the other axes' indices.
/// For a stride-2 input read as pairs of vectors ([`pairs`]), the element
/// after each lane's must be inside too.
pub(super) fn interior(inputs: &[Access], domain: &[usize], v: usize) -> (i128, i128) {
    let (mut lo, mut hi) = (0i128, domain[v] as i128);
    for a in inputs.iter().filter(|a| a.guard.is_some() || pairs(a, v)) {
        for j in 0..a.shape.len() {
            let c = a.coef[j][v] as i128;
            if c == 0 {
                continue;
            }
            let mut rest = a.coef[j].clone();
            rest[v] = 0;
            let (rlo, rhi) = span(a.base[j], &rest, domain);
            let last = a.shape[j] as i128 - 1 - i128::from(pairs(a, v));
            // 0 <= r + c*i <= last for every r in [rlo, rhi].
            if c > 0 {
                lo = lo.max(div_ceil(-rlo, c));
                hi = hi.min(div_floor(last - rhi, c) + 1);
            } else {
                lo = lo.max(div_ceil(last - rhi, c));
                hi = hi.min(div_floor(-rlo, c) + 1);
            }
        }
    }
    (lo, hi)
}

/// Whether access `a` moves with axis `v` only along its last
/// (contiguous) coordinate, by 2: four lanes are the even elements of
/// eight consecutive ones, read as two vectors and shuffled (so the
/// interior also keeps the element after the last lane inside, for
/// unguarded accesses too).
fn pairs(a: &Access, v: usize) -> bool {
    let last = a.shape.len().wrapping_sub(1);
    !a.shape.is_empty()
        && a.coef[last][v] == 2
        && (0..last).all(|j| a.coef[j][v] == 0)
}

/// Whether access `a` has a coordinate that is checked at run time but
/// does not move with axis `v`.
pub(super) fn has_uniform_guard(a: &Access, domain: &[usize], v: usize) -> bool {
    (0..a.shape.len()).any(|j| needs_check(a, domain, v, j))
}

/// Whether coordinate `j` of guarded access `a` does not move with axis
/// `v` and can leave its shape somewhere in the domain.
fn needs_check(a: &Access, domain: &[usize], v: usize, j: usize) -> bool {
    let (lo, hi) = span(a.base[j], &a.coef[j], domain);
    a.coef[j][v] == 0 && (lo < 0 || hi >= a.shape[j] as i128)
}

impl Emitter<'_> {
    /// Whether the coordinates of guarded access `a` that do not move with
    /// axis `v` are inside its shape (those that do are known to be).
    pub(super) fn in_range_uniform(fb: &mut FunctionBuilder, a: &Access, domain: &[usize], index: &[Value], v: usize) -> Value {
        let mut ok = fb.ins().iconst(types::I8, 1);
        for j in 0..a.shape.len() {
            if !needs_check(a, domain, v, j) {
                continue;
            }
            let c = Self::affine(fb, a.base[j], &a.coef[j], index);
            let inside = fb.ins().icmp_imm_u(IntCC::UnsignedLessThan, c, a.shape[j] as i64);
            ok = fb.ins().band(ok, inside);
        }
        ok
    }

    /// A reduction with guarded inputs (padded pooling, depthwise
    /// convolution): the innermost kept axis `v` is split into borders,
    /// reduced by the scalar loop, and an interior where no lane's
    /// coordinate that moves with `v` can leave its shape. There, 16 (then
    /// 4) neighbouring outputs are reduced in the lanes of 4 (then 1)
    /// vector accumulators; the remaining guards (rows) are the same for
    /// every lane, one branch per reduced index, and so is `Count`. Each
    /// lane combines in the scalar order, so results agree bit for bit.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn reduce_guarded(
        &mut self,
        fb: &mut FunctionBuilder,
        domain: &[usize],
        reduced: usize,
        inputs: &[Access],
        element: &Expr,
        combine: Combine,
        finish: Finish<'_>,
        out: &Access,
    ) -> bool {
        let rank = domain.len();
        if finish.inputs.iter().any(|a| a.guard.is_some()) {
            return false;
        }
        if domain.contains(&0) || reduced == 0 || reduced == rank {
            return false;
        }
        let kept = rank - reduced;
        let v = kept - 1;
        if domain[v] < 4 || inputs.iter().any(|a| may_overlap(self.program, a, domain, out, &domain[..kept])) {
            return false;
        }
        // Without guards, only stride-2 windows (which the plain paths refuse).
        if inputs.iter().all(|a| a.guard.is_none()) && !inputs.iter().any(|a| pairs(a, v)) {
            return false;
        }
        let (ilo, ihi) = interior(inputs, domain, v);
        if ihi - ilo < 4 {
            return false;
        }
        let lins: Vec<Lin> = inputs
            .iter()
            .map(|a| {
                let (offset, strides) = a.linear(rank);
                Lin { buffer: a.buffer, offset, strides, pure: true }
            })
            .collect();
        let finish_forms = finish_lins(finish, kept);
        let (oo, os) = out.linear(kept);
        let out_lin = Lin { buffer: out.buffer, offset: oo, strides: os, pure: false };
        let rdims = &domain[kept..];
        let rcount: usize = rdims.iter().product();
        // Small windows are unrolled at compile time: constant offsets.
        let unrolled = rcount <= 64;
        let counting = finish.expr.nodes.contains(&ExprNode::Count) && inputs[0].guard.is_some();
        let ranges = self.ranges(fb, &domain[..kept], true);
        let (outer, last) = ranges.split_at(v);
        let (lo, hi) = last[0];
        let inner = self.ranges(fb, rdims, false);
        nest(fb, outer, &mut Vec::new(), &mut |fb, index| {
            let mut point = |fb: &mut FunctionBuilder, i: Value| {
                let mut at = index.to_vec();
                at.push(i);
                self.reduce_point(fb, &inner, &at, inputs, element, combine, finish, out);
            };
            // Left border, interior in vectors, right border and tail.
            let a = fb.ins().iconst(types::I64, ilo as i64);
            let b = fb.ins().iconst(types::I64, ihi as i64);
            let left_end = fb.ins().smax(lo, a);
            let left_end = fb.ins().smin(left_end, hi);
            super::for_range(fb, lo, left_end, &mut point);
            let mid_end = fb.ins().smin(hi, b);
            let mid_end = fb.ins().smax(mid_end, left_end);
            let j = fb.declare_var(types::I64);
            fb.def_var(j, left_end);
            let group = |fb: &mut FunctionBuilder, i: Value, unroll: usize| {
                    let accs: Vec<Variable> = (0..unroll)
                        .map(|_| {
                            let acc = fb.declare_var(types::F32X4);
                            let init = splat_f32(fb, types::F32X4, combine.identity());
                            fb.def_var(acc, init);
                            acc
                        })
                        .collect();
                    let count = fb.declare_var(types::I64);
                    let init = fb.ins().iconst(types::I64, if counting { 0 } else { rcount as i64 });
                    fb.def_var(count, init);
                    let mut full = index.to_vec();
                    full.push(i);
                    let mut body = |fb: &mut FunctionBuilder, full: &[Value]| {
                        let mut loads: Vec<Vec<Value>> = Vec::with_capacity(inputs.len());
                        for (n, a) in inputs.iter().enumerate() {
                            let paired = pairs(a, v) && self.program.buffer(a.buffer).data_type == DataType::Float32;
                            let read = |fb: &mut FunctionBuilder| -> Vec<Value> {
                                (0..unroll)
                                    .map(|u| {
                                        let mut at = full.to_vec();
                                        at[v] = fb.ins().iadd_imm_s(full[v], 4 * u as i64);
                                        if paired {
                                            let lin = &lins[n];
                                            let offset = Self::affine(fb, lin.offset, &lin.strides, &at);
                                            let addr = self.address(fb, lin.buffer, offset);
                                            let x = self.load_vector(fb, load_flags(true), addr, 0);
                                            let y = self.load_vector(fb, load_flags(true), addr, 16);
                                            let even = [0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27];
                                            math::shuffle_f32x4(fb, x, y, even)
                                        } else {
                                            self.read_lanes(fb, &lins[n], &at, 4, v)
                                        }
                                    })
                                    .collect()
                            };
                            let values = match a.guard {
                                Some(fill) if has_uniform_guard(a, domain, v) => {
                                    let inside = Self::in_range_uniform(fb, a, domain, full, v);
                                    if n == 0 && counting {
                                        let c = fb.use_var(count);
                                        let one = fb.ins().uextend(types::I64, inside);
                                        let c = fb.ins().iadd(c, one);
                                        fb.def_var(count, c);
                                    }
                                    let load_block = fb.create_block();
                                    let merge = fb.create_block();
                                    let params: Vec<Value> =
                                        (0..unroll).map(|_| fb.append_block_param(merge, types::F32X4)).collect();
                                    let fill = splat_f32(fb, types::F32X4, fill);
                                    let fills: Vec<BlockArg> = (0..unroll).map(|_| BlockArg::Value(fill)).collect();
                                    fb.ins().brif(inside, load_block, &[], merge, &fills);
                                    fb.switch_to_block(load_block);
                                    let got: Vec<BlockArg> = read(fb).into_iter().map(BlockArg::Value).collect();
                                    fb.ins().jump(merge, &got);
                                    fb.switch_to_block(merge);
                                    params
                                }
                                _ => {
                                    if n == 0 && counting {
                                        let c = fb.use_var(count);
                                        let c = fb.ins().iadd_imm_s(c, 1);
                                        fb.def_var(count, c);
                                    }
                                    read(fb)
                                }
                            };
                            loads.push(values);
                        }
                        for (u, &acc) in accs.iter().enumerate() {
                            let x = self.expr_lanes(fb, types::F32X4, element, &mut |_, n| loads[n as usize][u], None, None);
                            let a = fb.use_var(acc);
                            let a = combine_values(fb, combine, a, x);
                            fb.def_var(acc, a);
                        }
                    };
                    if unrolled {
                        let mut r = vec![0usize; rdims.len()];
                        for _ in 0..rcount {
                            let mut at = full.clone();
                            at.extend(r.iter().map(|&x| fb.ins().iconst(types::I64, x as i64)));
                            body(fb, &at);
                            for k in (0..r.len()).rev() {
                                r[k] += 1;
                                if r[k] < rdims[k] {
                                    break;
                                }
                                r[k] = 0;
                            }
                        }
                    } else {
                        nest(fb, &inner, &mut full, &mut body);
                    }
                    let c = fb.use_var(count);
                    let c = fb.ins().fcvt_from_sint(types::F32, c);
                    let c = fb.ins().splat(types::F32X4, c);
                    for (u, &acc) in accs.iter().enumerate() {
                        let a = fb.use_var(acc);
                        let mut kidx = index.to_vec();
                        kidx.push(fb.ins().iadd_imm_s(i, 4 * u as i64));
                        let r = self.finish_lanes(fb, finish.expr, &finish_forms, &kidx, 4, v, a, c);
                        self.write_lanes(fb, &out_lin, &kidx, r, 4, v);
                    }
            };
            for (step, unroll) in [(16i64, 4usize), (4, 1)] {
                for_step(fb, j, mid_end, step, &mut |fb, i| group(fb, i, unroll));
            }
            // 1 to 3 interior outputs left: one more group ending at the
            // interior's end, overlapping outputs already written (with the
            // same values), when this task's interior holds four.
            let rest = fb.use_var(j);
            let last = fb.ins().iadd_imm_s(mid_end, -4);
            let left = fb.ins().icmp(IntCC::SignedLessThan, rest, mid_end);
            let room = fb.ins().icmp(IntCC::SignedGreaterThanOrEqual, last, left_end);
            let both = fb.ins().band(left, room);
            let overlap = fb.create_block();
            let after = fb.create_block();
            fb.ins().brif(both, overlap, &[], after, &[]);
            fb.switch_to_block(overlap);
            group(fb, last, 1);
            fb.def_var(j, mid_end);
            fb.ins().jump(after, &[]);
            fb.switch_to_block(after);
            let rest = fb.use_var(j);
            super::for_range(fb, rest, hi, &mut point);
        });
        true
    }
}

// ------------------------------------------------------ guarded maps ----

impl Emitter<'_> {
    /// A padded f32 copy (im2col before a convolution): a map whose
    /// expression is one load of a single guarded input. Axis `v` (the
    /// output-contiguous innermost axis if its interior holds 4 indices,
    /// else the innermost axis of length ≥ 4 that moves a coordinate of the
    /// input and whose interior holds 4) is split into borders, copied by
    /// the scalar loop, and an interior where no coordinate that moves with
    /// `v` can leave its shape. There, 4 neighbouring elements at a time are
    /// loaded (or gathered) and stored (or scattered); the guards that do
    /// not move with `v` are one branch per group: load, or the splatted
    /// fill. The axes inside `v` loop within each group. A copy: bit for
    /// bit what the scalar loop writes.
    pub(super) fn map_guarded(&mut self, fb: &mut FunctionBuilder, domain: &[usize], inputs: &[Access], expr: &Expr, out: &Access) -> bool {
        let rank = domain.len();
        let [a] = inputs else { return false };
        let Some(fill) = a.guard else { return false };
        if rank == 0
            || domain.contains(&0)
            || !matches!(expr.nodes.as_slice(), [ExprNode::Load(0)])
            || self.program.buffer(a.buffer).data_type != DataType::Float32
            || self.program.buffer(out.buffer).data_type != DataType::Float32
            || may_overlap(self.program, a, domain, out, domain)
        {
            return false;
        }
        let (oo, os) = out.linear(rank);
        let wide = |v: usize| {
            let (lo, hi) = interior(inputs, domain, v);
            domain[v] >= 4 && hi - lo >= 4
        };
        let contiguous = (0..rank).rev().find(|&v| domain[v] > 1).filter(|&v| os[v] == 1 && wide(v));
        let moving = || (0..rank).rev().find(|&v| domain[v] >= 4 && a.coef.iter().any(|c| c[v] != 0) && wide(v));
        let Some(v) = contiguous.or_else(moving) else { return false };
        let (ilo, ihi) = interior(inputs, domain, v);
        let (io, is) = a.linear(rank);
        let lin = Lin { buffer: a.buffer, offset: io, strides: is, pure: true };
        let out_lin = Lin { buffer: out.buffer, offset: oo, strides: os, pure: false };
        let uniform = has_uniform_guard(a, domain, v);
        let ranges = self.ranges(fb, domain, true);
        let outer = &ranges[..v];
        let (lo, hi) = ranges[v];
        let inner = &ranges[v + 1..];
        nest(fb, outer, &mut Vec::new(), &mut |fb, index| {
            let mut point = |fb: &mut FunctionBuilder, i: Value| {
                let mut at = index.to_vec();
                at.push(i);
                nest(fb, inner, &mut at, &mut |fb, full| {
                    let x = self.read(fb, a, full);
                    let dst = Self::affine(fb, out_lin.offset, &out_lin.strides, full);
                    self.store_f32(fb, out.buffer, dst, x);
                });
            };
            let b0 = fb.ins().iconst(types::I64, ilo as i64);
            let b1 = fb.ins().iconst(types::I64, ihi as i64);
            let left_end = fb.ins().smax(lo, b0);
            let left_end = fb.ins().smin(left_end, hi);
            super::for_range(fb, lo, left_end, &mut point);
            let mid_end = fb.ins().smin(hi, b1);
            let mid_end = fb.ins().smax(mid_end, left_end);
            let group = |fb: &mut FunctionBuilder, i: Value| {
                let mut at = index.to_vec();
                at.push(i);
                nest(fb, inner, &mut at, &mut |fb, full| {
                    let value = if uniform {
                        let inside = Self::in_range_uniform(fb, a, domain, full, v);
                        let load_block = fb.create_block();
                        let merge = fb.create_block();
                        let param = fb.append_block_param(merge, types::F32X4);
                        let f = splat_f32(fb, types::F32X4, fill);
                        fb.ins().brif(inside, load_block, &[], merge, &[BlockArg::Value(f)]);
                        fb.switch_to_block(load_block);
                        let got = self.read_lanes(fb, &lin, full, 4, v);
                        fb.ins().jump(merge, &[BlockArg::Value(got)]);
                        fb.switch_to_block(merge);
                        param
                    } else {
                        self.read_lanes(fb, &lin, full, 4, v)
                    };
                    self.write_lanes(fb, &out_lin, full, value, 4, v);
                });
            };
            let j = fb.declare_var(types::I64);
            fb.def_var(j, left_end);
            for_step(fb, j, mid_end, 4, &mut |fb, i| group(fb, i));
            // 1 to 3 interior indices left: one more group ending at the
            // interior's end, rewriting elements already written (with the
            // same values), when this task's interior holds four.
            let rest = fb.use_var(j);
            let last = fb.ins().iadd_imm_s(mid_end, -4);
            let left = fb.ins().icmp(IntCC::SignedLessThan, rest, mid_end);
            let room = fb.ins().icmp(IntCC::SignedGreaterThanOrEqual, last, left_end);
            let both = fb.ins().band(left, room);
            let overlap = fb.create_block();
            let after = fb.create_block();
            fb.ins().brif(both, overlap, &[], after, &[]);
            fb.switch_to_block(overlap);
            group(fb, last);
            fb.def_var(j, mid_end);
            fb.ins().jump(after, &[]);
            fb.switch_to_block(after);
            let rest = fb.use_var(j);
            super::for_range(fb, rest, hi, &mut point);
        });
        true
    }
}
