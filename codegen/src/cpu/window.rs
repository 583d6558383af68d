//! Window sums on AVX-512: depthwise convolutions, and direct convolutions
//! (a [`Kernel::Reduce`] of `x * w` over input channels and a window, whose
//! window input `x` moves along the innermost kept axis `v` with stride 1
//! or 2) run one whole output row, for a block of output channels, per
//! call of a micro-kernel generated for that kernel: 16 outputs per zmm
//! register, borders included, no im2col buffer. Window maxima (max pools,
//! and maximum reductions whose input moves along `v`) are the same loops
//! with one input, `-inf` for padding and the IEEE maximum (NaN
//! propagates, +0 above -0) instead of a fused multiply-add: bit for bit
//! the reference.
//!
//! # When ([`plan`])
//! AVX-512 target; a Sum reduction whose element is `in0 * in1` (either
//! order), or a Max reduction whose element is `in0`, guarded (if at all)
//! with `-inf`; whose finish reads no `Count` and only unguarded finish
//! inputs that share no memory with the output; float32 inputs and output;
//! the window input moves with `v` only along its last coordinate (its
//! *column*), by 1 or 2, and that coordinate depends on no other kept axis;
//! the weight input is unguarded and does not move with `v`; the output is
//! contiguous along `v` and shares no memory with an input; some kept axis
//! before `v` longer than 1 (so tasks split whole rows); and at most 64
//! *taps*: the reduced indices, except that a first reduced axis along
//! which no guarded coordinate of the window input can leave its shape and
//! its column stays put (the input channels) becomes a loop inside the
//! micro-kernel instead. A kept axis longer than 1 along which the weight
//! moves and the window input does not (the output channels) is blocked:
//! 8 channels per call, one at a time for the rest. Anything else keeps the
//! F32X4 paths of `vector.rs`.
//!
//! # Rows
//! For every index of the kept axes before `v` (output channels innermost),
//! the driver (Cranelift) computes the address of the window input, of the
//! weights and of the output at `v = 0`, tap 0, input channel 0, and one
//! bit per tap: whether the tap's coordinates that do not move with `v`
//! (its row, in a padded convolution) are inside the input. The
//! micro-kernel is straight-line code for that row: for each pass over up
//! to four groups of 16 outputs (fewer with more output channels), for each
//! input channel, for each tap whose bit is set, it reads each group's 16
//! elements (stride 2: the even ones of 32, two loads and a permute) at
//! displacements fixed at compile time, broadcasts each output channel's
//! weight and adds `x * w` into that channel's accumulator for the group.
//! Lanes whose column falls outside the input or past the row are masked
//! off (`{k}{z}` loads never touch their memory), with masks fixed at
//! compile time per tap and group (the five most used of a pass set once
//! in k3..k7 before its loops, any others in k1 at the load); a group no lane of which a tap reaches
//! skips that tap. A skipped tap or lane adds nothing, where the reference
//! adds `0 * w`: the same for every finite weight. The last group's store
//! is masked to the row.
//!
//! A fused finish (see [`Epilogue`]): a bias plus relu or clamp, sigmoid or
//! SiLU (`x * sigmoid(x)`) is applied in the micro-kernel's registers
//! before the store; any other finish (a residual add, say) by the driver, in place, to every row the task
//! wrote, once they are all written (F32X4, then scalar).
//!
//! Rows of one group (at most 16 outputs: a 14x14 or 7x7 feature map)
//! fill few accumulators and broadcast every weight for 16 outputs only, so
//! such kernels also get *multi-row* micro-kernels (`_r<rows>`): `rows`
//! consecutive output rows (along the kept axis before `v`; as many as the
//! accumulators allow, at most 4) per call, each loaded group feeding from
//! the same broadcast weight. The driver calls them for groups of rows all
//! of whose taps are inside the input (every row of an unpadded kernel,
//! the interior rows of a padded one) and the one-row kernels for the rest;
//! a multi-row call sums every output exactly as a one-row call does (the
//! same partial sums), so results do not depend on how rows are grouped.
//!
//! Each lane sums in order of input channel and tap, with fused
//! multiply-adds; with a single output channel the taps alternate between
//! two accumulators (four when a pass has one group) that are added at the
//! end. Results differ from the reference by rounding only.
//!
//! # Micro-kernel
//! `fn(x: *const f32, w: *const f32, out: *mut f32, taps: u64, bias: *const f32)`, named
//! `k<kernel>_avx512_window_{sum,max}_f32_s<stride>` (`_oc<n>` when it computes
//! `n` output channels, `_r<rows>` for a multi-row kernel): `x`, `w` and
//! `out` as above (of the first row), bit `t` of `taps` set when tap `t` is
//! inside (a multi-row kernel reads every tap), `bias` the row's bias for
//! an epilogue in registers (else unused). Caller-saved registers only, no stack,
//! `vzeroupper` at the end.

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{types, FuncRef, InstBuilder, Value};
use cranelift_frontend::FunctionBuilder;
use iced_x86::code_asm::*;
use kiln_ir::kernel::{Access, BinaryFn, Combine, Expr, ExprNode, Kernel, Program};
use kiln_ir::DataType;

use super::vector::{finish_lins, has_uniform_guard, span, Lin};
use super::{flags, nest, Emitter, Finish};
use crate::cpu::overlap::may_overlap;
use crate::cpu::zmm_math;
use crate::cpu::target::Features;
use crate::cpu::bias_clamp::{bias_clamp, BiasClamp};
use crate::cpu::microkernel::Activation;

/// Lanes per group.
const LANES: usize = 16;
/// The most taps a window may have (one bit each in a u64).
const MAX_TAPS: usize = 64;
/// Output channels per call when the kernel has an output-channel axis.
const OC_BLOCK: usize = 8;
/// Accumulator registers (zmm0..zmm23).
const ACCUMULATORS: usize = 24;
/// The most output rows a multi-row micro-kernel computes per call.
const MAX_ROWS: usize = 4;

/// A window-sum kernel as the micro-kernel generator sees it: everything
/// about a row that is fixed at compile time.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// `Sum` of window times weight, or `Max` of the window.
    pub combine: Combine,
    /// Which input is the window (the other, for a sum, the weight).
    pub window: usize,
    /// 1 or 2: window elements per output along `v`.
    pub stride: usize,
    /// Outputs per row (the length of `v`).
    pub row: usize,
    /// The taps, in row-major order of their reduced indices.
    pub taps: Vec<Tap>,
    /// Whether some tap's row can fall outside the input (the driver then
    /// checks every tap's row).
    pub guarded_rows: bool,
    /// The input-channel loop inside the micro-kernel, if any.
    pub channels: Option<Channels>,
    /// The output-channel axis blocked by the driver, if any.
    pub outputs: Option<Outputs>,
    /// Output rows per call of the multi-row micro-kernels, 1 for none:
    /// rows of one group (at most 16 outputs) computed together, so that
    /// each broadcast weight feeds `rows` groups (see the module
    /// documentation).
    pub rows: usize,
    /// Element steps of the window input and of the output from one row to
    /// the next (kept axis `v - 1`).
    pub row_steps: (i64, i64),
    /// What happens to the sums before they are stored.
    pub epilogue: Epilogue,
}

/// A window sum's finish, as the micro-kernel or the driver applies it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Epilogue {
    /// The finish is the sum.
    None,
    /// `clamp(sum + bias, lo, hi)` (each part optional), or a sigmoid or
    /// SiLU of `sum + bias`, in the micro-kernel's registers before the
    /// store: the bias is finish input `input`, read at the output channel
    /// (its element step per output channel `step`), `lo`/`hi` compare like
    /// the lowering's clamp (`select(x < lo, lo, x)`, NaN passes through),
    /// the activation computes what the lowering's expression does, bit for
    /// bit (`zmm_math`).
    Registers { bias: Option<(usize, i64)>, lo: Option<f32>, hi: Option<f32>, activation: Option<Activation> },
    /// Any other finish: the driver applies it in place to each row the
    /// task wrote, once they are all written.
    Rows,
}

/// The [`Epilogue::Registers`] form of `finish`, if it has one (see
/// [`bias_clamp`]), with a float32 bias input that stays put along `v`.
fn register_epilogue(
    finish: &Expr,
    inputs: &[Access],
    v: usize,
    oc_axis: Option<usize>,
    f32_input: &dyn Fn(usize) -> bool,
) -> Option<Epilogue> {
    let BiasClamp { bias, lo, hi, activation } = bias_clamp(finish)?;
    let bias = match bias {
        Some(n) => {
            // The driver passes the bias's address for each row; it must
            // stay put along the row.
            let (_, strides) = inputs[n].linear(v + 1);
            if strides[v] != 0 || !f32_input(n) {
                return None;
            }
            Some((n, oc_axis.map_or(0, |a| strides[a] as i64)))
        }
        None => None,
    };
    Some(Epilogue::Registers { bias, lo, hi, activation })
}

/// One tap of a [`Plan`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tap {
    /// The window input's element offset from tap 0 (at `v = 0`).
    pub x_offset: i64,
    /// The weight's element offset from tap 0.
    pub w_offset: i64,
    /// Per group of 16 outputs, the window elements to read (bit `e` =
    /// element `e` of the group's 16, or for stride 2 of its 32).
    pub masks: Vec<u32>,
}

/// The input channels: a loop of `count` trips inside the micro-kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Channels {
    pub count: usize,
    /// Element steps of the window input and the weights per channel.
    pub x_step: i64,
    pub w_step: i64,
}

/// The output channels: kept axis `axis`, computed `block` per call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outputs {
    pub axis: usize,
    pub block: usize,
    /// Element steps of the weights and the output per channel.
    pub w_step: i64,
    pub out_step: i64,
}

impl Plan {
    /// The symbol of the micro-kernel of kernel `k` computing `channels`
    /// output channels over `rows` rows per call.
    pub fn name(&self, k: usize, channels: usize, rows: usize) -> String {
        let what = if self.combine == Combine::Max { "max" } else { "sum" };
        let rows = if rows > 1 { format!("_r{rows}") } else { String::new() };
        match self.outputs {
            Some(_) => format!("k{k}_avx512_window_{what}_f32_s{}_oc{channels}{rows}", self.stride),
            None => format!("k{k}_avx512_window_{what}_f32_s{}{rows}", self.stride),
        }
    }

    /// The micro-kernels the kernel uses, as (output channels, rows) per
    /// call: [`Plan::blocks`] on one row, then, with multi-row kernels, the
    /// same on [`Plan::rows`] rows.
    pub fn variants(&self) -> Vec<(usize, usize)> {
        let blocks = self.blocks();
        let mut v: Vec<(usize, usize)> = blocks.iter().map(|&b| (b, 1)).collect();
        if self.rows > 1 {
            v.extend(blocks.iter().map(|&b| (b, self.rows)));
        }
        v
    }

    /// The output channels per call of each micro-kernel the kernel uses:
    /// a full block, and one at a time for the rest.
    pub fn blocks(&self) -> Vec<usize> {
        match self.outputs {
            Some(o) if o.block > 1 => vec![o.block, 1],
            _ => vec![1],
        }
    }

    fn groups(&self) -> usize {
        self.row.div_ceil(LANES)
    }
}

/// The window-sum plan of `kernel`, if it has one on `features`.
pub fn plan(program: &Program, kernel: &Kernel, features: Features) -> Option<Plan> {
    let Kernel::Reduce { domain, reduced, inputs, element, combine, finish, finish_inputs, out } = kernel else {
        return None;
    };
    let rank = domain.len();
    if features != Features::Avx512
        || !matches!(combine, Combine::Sum | Combine::Max)
        || finish.nodes.contains(&ExprNode::Count)
        || finish_inputs.iter().any(|a| {
            let kept = &domain[..domain.len() - reduced];
            a.guard.is_some() || may_overlap(program, a, kept, out, kept)
        })
        || *reduced == 0
        || *reduced >= rank
        || domain.contains(&0)
    {
        return None;
    }
    // Sums of products of two inputs (one the window, one the weights), or
    // maxima of one input whose padding reads -inf (then a padded element
    // changes no maximum and can be skipped, like a padded product).
    let shape_ok = match combine {
        Combine::Sum => {
            inputs.len() == 2
                && matches!(
                    element.nodes.as_slice(),
                    [ExprNode::Load(p), ExprNode::Load(q), ExprNode::Binary(BinaryFn::Mul, a, b)]
                        if a.0 == 0 && b.0 == 1 && p != q
                )
        }
        _ => {
            inputs.len() == 1
                && element.nodes == [ExprNode::Load(0)]
                && inputs[0].guard.is_none_or(|fill| fill == f32::NEG_INFINITY)
        }
    };
    let f32_buffer = |b| program.buffer(b).data_type == DataType::Float32;
    if !shape_ok || !f32_buffer(out.buffer) || !inputs.iter().all(|a| f32_buffer(a.buffer)) {
        return None;
    }
    let kept = rank - reduced;
    let v = kept - 1;
    if domain[..v].iter().all(|&d| d == 1) {
        return None;
    }
    let (_, out_strides) = out.linear(kept);
    if out_strides[v] != 1 || inputs.iter().any(|a| may_overlap(program, a, domain, out, &domain[..kept])) {
        return None;
    }
    let moving = |a: &Access, axis: usize| a.coef.iter().any(|row| row[axis] != 0);
    let window = inputs.iter().position(|a| moving(a, v))?;
    let x = &inputs[window];
    let w = inputs.get(1 - window);
    let last = x.shape.len().checked_sub(1)?;
    let stride = x.coef[last][v];
    let other_kept = (0..kept).any(|a| a != v && x.coef[last][a] != 0);
    let weight_ok = w.is_none_or(|w| !moving(w, v) && w.guard.is_none());
    if !weight_ok || !(1..=2).contains(&stride) || other_kept || (0..last).any(|j| x.coef[j][v] != 0) {
        return None;
    }
    let (_, xs) = x.linear(rank);
    let ws = w.map_or(vec![0; rank], |w| w.linear(rank).1);
    // The input channels: the first reduced axis, if no coordinate it moves
    // can leave the shape and the column does not move with it.
    let c = kept;
    let stays_inside = |j: usize| {
        let (lo, hi) = span(x.base[j], &x.coef[j], domain);
        x.coef[j][c] == 0 || (lo >= 0 && hi < x.shape[j] as i128)
    };
    let channels = (domain[c] > 1 && x.coef[last][c] == 0 && (0..last).all(stays_inside))
        .then(|| Channels { count: domain[c], x_step: xs[c] as i64, w_step: ws[c] as i64 });
    let first_tap_axis = if channels.is_some() { c + 1 } else { c };
    let rdims = &domain[first_tap_axis..];
    let tap_count: usize = rdims.iter().product();
    if tap_count > MAX_TAPS {
        return None;
    }
    // The output channels: a kept axis the weights move along and the
    // window input does not.
    let outputs = (0..v).find(|&a| domain[a] > 1 && ws[a] != 0 && !moving(x, a)).map(|axis| Outputs {
        axis,
        block: OC_BLOCK.min(domain[axis]),
        w_step: ws[axis] as i64,
        out_step: out_strides[axis] as i64,
    });
    // Unguarded: the validator proved every column inside; guarded: the
    // masks keep the lanes whose column is inside.
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
            let at = |s: &[isize]| r.iter().enumerate().map(|(a, &i)| s[first_tap_axis + a] as i64 * i as i64).sum::<i64>();
            // The column of output 0 at this tap.
            let column0 = x.base[last] as i64
                + r.iter().enumerate().map(|(a, &i)| x.coef[last][first_tap_axis + a] as i64 * i as i64).sum::<i64>();
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
    let fits = |elements: i64| (4 * elements).abs() < (i32::MAX / 2) as i64;
    let reach = (LANES * stride as usize * groups + 16) as i64;
    let block = outputs.map_or(1, |o| o.block as i64);
    let out_reach = outputs.map_or(0, |o| o.out_step * (block - 1)) + (groups * LANES) as i64;
    if !taps.iter().all(|t| fits(t.x_offset.abs() + reach) && fits(t.w_offset.abs() + outputs.map_or(0, |o| o.w_step.abs() * block)))
        || !fits(out_reach)
    {
        return None;
    }
    let guarded_rows = x.guard.is_some() && has_uniform_guard(x, domain, v);
    let epilogue = if *finish == Expr::acc() {
        Epilogue::None
    } else {
        let f32_input = |n: usize| program.buffer(finish_inputs[n].buffer).data_type == DataType::Float32;
        register_epilogue(finish, finish_inputs, v, outputs.map(|o| o.axis), &f32_input).unwrap_or(Epilogue::Rows)
    };
    // Rows of one group go several per call, along the kept axis before v
    // (not the output channels; a register bias the same on every row),
    // as many as the accumulators allow (at most MAX_ROWS).
    let row_axis = v - 1;
    let per_row = outputs.map_or(1, |o| o.block) * split_for(1, outputs.map_or(1, |o| o.block));
    let bias_moves = match epilogue {
        Epilogue::Registers { bias: Some((n, _)), .. } => finish_inputs[n].linear(kept).1[row_axis] != 0,
        _ => false,
    };
    let row_steps = (xs[row_axis] as i64, out_strides[row_axis] as i64);
    let rows_fit = |rows: usize| {
        let r = rows as i64 - 1;
        taps.iter().all(|t| fits(t.x_offset.abs() + reach + (r * row_steps.0).abs())) && fits(out_reach + (r * row_steps.1).abs())
    };
    let rows = if groups == 1 && Some(row_axis) != outputs.map(|o| o.axis) && !bias_moves {
        (ACCUMULATORS / per_row).min(MAX_ROWS).min(domain[row_axis]).max(1)
    } else {
        1
    };
    let rows = if rows_fit(rows) { rows } else { 1 };
    Some(Plan {
        combine: *combine,
        window,
        stride: stride as usize,
        row,
        taps,
        guarded_rows,
        channels,
        outputs,
        rows,
        row_steps,
        epilogue,
    })
}

/// Partial sums per output channel and group in a pass of `groups` groups
/// computing `channels` output channels: a single channel's taps alternate
/// between 2 (4 with one group) accumulators, to overlap the adds' latency.
fn split_for(groups: usize, channels: usize) -> usize {
    if channels > 1 {
        1
    } else if groups == 1 {
        4
    } else {
        2
    }
}

impl Emitter<'_> {
    /// A window-sum kernel by `plan` (see the module documentation), calling
    /// `micro[i]` (computing `plan.blocks()[i]` output channels) once per
    /// row and block of output channels.
    pub(super) fn window_sum(&self, fb: &mut FunctionBuilder, plan: &Plan, micro: &[FuncRef], kernel: &Kernel) {
        let Kernel::Reduce { domain, reduced, inputs, finish, finish_inputs, out, .. } = kernel else {
            unreachable!("window sums are reductions")
        };
        let finish = Finish { expr: finish, inputs: finish_inputs };
        let rank = domain.len();
        let kept = rank - reduced;
        let v = kept - 1;
        let x = &inputs[plan.window];
        let w = inputs.get(1 - plan.window);
        // Output channels split between tasks in whole blocks: each channel
        // is computed by the same micro-kernel whatever the task count.
        let align = plan.outputs.map(|o| (o.axis, o.block));
        let ranges = self.ranges_aligned(fb, &domain[..v], true, align);
        let zero = fb.ins().iconst(types::I64, 0);
        let all = fb.ins().iconst(types::I64, ((1u128 << plan.taps.len()) - 1) as i64);
        let oc_axis = plan.outputs.map(|o| o.axis);
        // Every kept axis before v but the output channels, then those.
        let outer: Vec<(Value, Value)> =
            ranges.iter().enumerate().filter(|(a, _)| Some(*a) != oc_axis).map(|(_, r)| *r).collect();
        let first_tap_axis = kept + usize::from(plan.channels.is_some());
        // The full index at v = 0, tap 0, channel 0 (output channel 0) of
        // the row at `index` (the outer axes).
        let full_index = |index: &[Value]| -> Vec<Value> {
            let mut at: Vec<Value> = Vec::with_capacity(rank);
            let mut rest = index.iter();
            for a in 0..v {
                at.push(if Some(a) == oc_axis { zero } else { *rest.next().expect("one index per outer axis") });
            }
            at.resize(rank, zero);
            at
        };
        // Bit t set when tap t's row is inside the input.
        let taps_of = |fb: &mut FunctionBuilder, at: &[Value]| -> Value {
            if !plan.guarded_rows {
                return all;
            }
            let rdims = &domain[first_tap_axis..];
            let mut bits = zero;
            for t in 0..plan.taps.len() {
                let mut full = at.to_vec();
                let mut left = t;
                for (a, &d) in rdims.iter().enumerate().rev() {
                    full[first_tap_axis + a] = fb.ins().iconst(types::I64, (left % d) as i64);
                    left /= d;
                }
                let inside = Self::in_range_uniform(fb, x, domain, &full, v);
                let inside = fb.ins().uextend(types::I64, inside);
                let bit = fb.ins().ishl_imm_u(inside, t as i64);
                bits = fb.ins().bor(bits, bit);
            }
            bits
        };
        // The micro-kernels' calls for the row at `at` (and the `rows - 1`
        // after it, through the multi-row kernels), every block of output
        // channels.
        let blocks = plan.blocks();
        let row_calls = |fb: &mut FunctionBuilder, at: &[Value], rows: usize, taps: Value| {
            let x_row = Self::offset(fb, x, at);
            let x_row = self.address(fb, x.buffer, x_row);
            let variant = if rows > 1 { blocks.len() } else { 0 };
            let call = |fb: &mut FunctionBuilder, oc: Value, which: usize| {
                let mut here = at.to_vec();
                if let Some(axis) = oc_axis {
                    here[axis] = oc;
                }
                let w_row = match w {
                    Some(w) => {
                        let offset = Self::offset(fb, w, &here);
                        self.address(fb, w.buffer, offset)
                    }
                    None => zero,
                };
                let out_row = Self::offset(fb, out, &here[..kept]);
                let out_row = self.address(fb, out.buffer, out_row);
                // The bias of a register epilogue at this row (else unused).
                let bias_row = match plan.epilogue {
                    Epilogue::Registers { bias: Some((n, _)), .. } => {
                        let b = &finish.inputs[n];
                        let offset = Self::offset(fb, b, &here[..kept]);
                        self.address(fb, b.buffer, offset)
                    }
                    _ => zero,
                };
                fb.ins().call(micro[variant + which], &[x_row, w_row, out_row, taps, bias_row]);
            };
            match (oc_axis, blocks.as_slice()) {
                (Some(axis), &[block, 1]) => {
                    // Whole blocks, then one channel at a time.
                    let (lo, hi) = ranges[axis];
                    let last_start = fb.ins().iadd_imm_s(hi, 1 - block as i64);
                    super::for_step(fb, lo, last_start, block as i64, &mut |fb, oc| call(fb, oc, 0));
                    let span = fb.ins().isub(hi, lo);
                    let whole = fb.ins().udiv_imm_u(span, block as i64);
                    let done = fb.ins().imul_imm_s(whole, block as i64);
                    let rest_start = fb.ins().iadd(lo, done);
                    super::for_range(fb, rest_start, hi, &mut |fb, oc| call(fb, oc, 1));
                }
                (Some(axis), _) => {
                    let (lo, hi) = ranges[axis];
                    super::for_range(fb, lo, hi, &mut |fb, oc| call(fb, oc, 0));
                }
                (None, _) => call(fb, zero, 0),
            }
        };
        if plan.rows > 1 {
            // Along the row axis (the last of `outer`): `plan.rows` rows
            // through the multi-row kernels where they all exist and all
            // their taps are inside, else one row; so each call sequence
            // is emitted once. A tap's row is affine in the output row, so
            // the group's first and last rows being inside covers the rows
            // between.
            let rows = plan.rows as i64;
            let (&(lo, hi), upper) = outer.split_last().expect("the row axis is an outer axis");
            nest(fb, upper, &mut Vec::new(), &mut |fb, index| {
                let at_row = |fb: &mut FunctionBuilder, y: Value, r: i64| {
                    let mut i = index.to_vec();
                    i.push(if r == 0 { y } else { fb.ins().iadd_imm_s(y, r) });
                    full_index(&i)
                };
                super::for_next(fb, lo, hi, &mut |fb, y| {
                    let first = at_row(fb, y, 0);
                    let last_row = fb.ins().iadd_imm_s(y, rows - 1);
                    let mut group = fb.ins().icmp(IntCC::SignedLessThan, last_row, hi);
                    // The first row's taps, also for its one-row call.
                    let first_taps = taps_of(fb, &first);
                    if plan.guarded_rows {
                        let last = at_row(fb, y, rows - 1);
                        let last_taps = taps_of(fb, &last);
                        for bits in [first_taps, last_taps] {
                            let every = fb.ins().icmp(IntCC::Equal, bits, all);
                            group = fb.ins().band(group, every);
                        }
                    }
                    let (together, apart, merge) = (fb.create_block(), fb.create_block(), fb.create_block());
                    let next = fb.append_block_param(merge, types::I64);
                    fb.ins().brif(group, together, &[], apart, &[]);
                    fb.switch_to_block(together);
                    row_calls(fb, &first, plan.rows, all);
                    let after_group = fb.ins().iadd_imm_s(y, rows);
                    fb.ins().jump(merge, &[after_group.into()]);
                    fb.switch_to_block(apart);
                    row_calls(fb, &first, 1, first_taps);
                    let after_row = fb.ins().iadd_imm_s(y, 1);
                    fb.ins().jump(merge, &[after_row.into()]);
                    fb.switch_to_block(merge);
                    next
                });
            });
        } else {
            nest(fb, &outer, &mut Vec::new(), &mut |fb, index| {
                let at = full_index(index);
                let taps = taps_of(fb, &at);
                row_calls(fb, &at, 1, taps);
            });
        }
        if plan.epilogue == Epilogue::Rows {
            // The finish, in place, on every row this task wrote, after
            // them all (so that no load waits for a store just made).
            let outer: Vec<(Value, Value)> = ranges.to_vec();
            nest(fb, &outer, &mut Vec::new(), &mut |fb, index| {
                let mut row_index = index.to_vec();
                row_index.push(zero);
                self.window_epilogue(fb, finish, out, &row_index, v, plan.row);
            });
        }
    }
}

impl Emitter<'_> {
    /// Applies `finish` in place to the `row` outputs along axis `v` from
    /// `index` (whose `v` entry is 0): sixteen and four lanes at a time,
    /// then one at a time. The accumulator of each output is the sum the micro-kernel
    /// stored there (f32, contiguous along `v`); the finish reads no
    /// `Count` (the plan checked). Finish inputs that are f32 and walk `v`
    /// with stride 0 or 1 are read from row pointers (a splat, or vectors);
    /// others element by element at their affine offsets.
    fn window_epilogue(&self, fb: &mut FunctionBuilder, finish: Finish<'_>, out: &Access, index: &[Value], v: usize, row: usize) {
        let zero = fb.ins().f32const(0.0);
        let zeros = fb.ins().splat(types::F32X4, zero);
        let out_row = Self::offset(fb, out, index);
        let out_row = self.address(fb, out.buffer, out_row);
        // Per finish input: its row address and stride along v, where fast.
        let rows: Vec<Option<(Value, isize)>> = finish
            .inputs
            .iter()
            .map(|a| {
                let (_, strides) = a.linear(index.len());
                let f32_input = self.program.buffer(a.buffer).data_type == DataType::Float32;
                (f32_input && (strides[v] == 0 || strides[v] == 1)).then(|| {
                    let offset = Self::offset(fb, a, index);
                    (self.address(fb, a.buffer, offset), strides[v])
                })
            })
            .collect();
        // Inputs that stay put along the row: loaded once.
        let fixed: Vec<Option<(Value, Value)>> = rows
            .iter()
            .map(|r| match r {
                Some((base, 0)) => {
                    let x = fb.ins().load(types::F32, flags(), *base, 0);
                    Some((x, fb.ins().splat(types::F32X4, x)))
                }
                _ => None,
            })
            .collect();
        let lins: Vec<Lin> = finish_lins(finish, index.len());
        let at = |i: Value| {
            let mut k = index.to_vec();
            k[v] = i;
            k
        };
        let apply = |fb: &mut FunctionBuilder, i: Value, width: u32| {
            let bytes = fb.ins().imul_imm_s(i, 4);
            let address = fb.ins().iadd(out_row, bytes);
            let k = at(i);
            let ty = if width == 4 { types::F32X4 } else { types::F32 };
            let sums = fb.ins().load(ty, flags(), address, 0);
            let r = self.expr_lanes(
                fb,
                ty,
                finish.expr,
                &mut |fb, n| match (rows[n as usize], fixed[n as usize]) {
                    (_, Some((x, lanes))) => {
                        if width == 4 { lanes } else { x }
                    }
                    (Some((base, _)), None) => {
                        let a = fb.ins().iadd(base, bytes);
                        fb.ins().load(ty, flags(), a, 0)
                    }
                    (None, None) => self.read_lanes(fb, &lins[n as usize], &k, width, v),
                },
                Some(sums),
                Some(if width == 4 { zeros } else { zero }),
            );
            fb.ins().store(flags(), r, address, 0);
        };
        // 16 outputs per trip (independent work for the out-of-order core),
        // then 4, then 1.
        let start = fb.ins().iconst(types::I64, 0);
        let wide_end = fb.ins().iconst(types::I64, (row - row % 16) as i64 - 15);
        super::for_step(fb, start, wide_end, 16, &mut |fb, i| {
            for u in 0..4 {
                let at = fb.ins().iadd_imm_s(i, 4 * u);
                apply(fb, at, 4);
            }
        });
        let middle = fb.ins().iconst(types::I64, (row - row % 16) as i64);
        let vector_end = fb.ins().iconst(types::I64, (row - row % 4) as i64 - 3);
        super::for_step(fb, middle, vector_end, 4, &mut |fb, i| apply(fb, i, 4));
        let tail = fb.ins().iconst(types::I64, (row - row % 4) as i64);
        let end = fb.ins().iconst(types::I64, row as i64);
        super::for_range(fb, tail, end, &mut |fb, i| apply(fb, i, 1));
    }
}

/// The mask registers by number (k0 means no mask and is never used).
const MASKS: [AsmRegisterK; 8] = [k0, k1, k2, k3, k4, k5, k6, k7];

/// `zmm{k<k>}`: `zmm` written under mask register `k` (1 to 7).
fn under(zmm: AsmRegisterZmm, k: u8) -> AsmRegisterZmm {
    match k {
        1 => zmm.k1(),
        2 => zmm.k2(),
        3 => zmm.k3(),
        4 => zmm.k4(),
        5 => zmm.k5(),
        6 => zmm.k6(),
        7 => zmm.k7(),
        _ => unreachable!("mask register k{k}"),
    }
}

/// The micro-kernel of `plan` computing `channels` output channels per
/// call over `rows` output rows (1, or the plan's multi-row count, whose
/// every tap the caller has checked to be inside): see the module
/// documentation.
pub fn avx512(plan: &Plan, channels: usize, rows: usize) -> Result<Vec<u8>, IcedError> {
    const ZMM: [AsmRegisterZmm; 32] = [
        zmm0, zmm1, zmm2, zmm3, zmm4, zmm5, zmm6, zmm7, zmm8, zmm9, zmm10, zmm11, zmm12, zmm13, zmm14, zmm15, zmm16,
        zmm17, zmm18, zmm19, zmm20, zmm21, zmm22, zmm23, zmm24, zmm25, zmm26, zmm27, zmm28, zmm29, zmm30, zmm31,
    ];
    // zmm24..27: loaded groups; zmm28: a broadcast weight; zmm29: the upper
    // half of a stride-2 group; zmm31: the even-element permutation.
    let (temps, weight, upper) = (&ZMM[24..28], zmm28, zmm29);
    let stride = plan.stride;
    let group_bytes = (4 * LANES * stride) as i64;
    let groups = plan.groups();
    let full: u32 = if stride == 1 { 0xFFFF } else { 0x5555_5555 };
    // Passes of (row, group) units: groups per pass on one row, or one
    // pass of the rows' single groups; partial sums per output channel and
    // unit as the pass's groups per row make them (so a multi-row call
    // sums each output as a one-row call does).
    let passes: Vec<Vec<(usize, usize)>> = if rows > 1 {
        debug_assert!(groups == 1 && rows <= plan.rows);
        vec![(0..rows).map(|r| (r, 0)).collect()]
    } else {
        let per_pass = (ACCUMULATORS / channels).clamp(1, 4).min(groups);
        (0..groups).step_by(per_pass).map(|first| (first..groups.min(first + per_pass)).map(|g| (0, g)).collect()).collect()
    };
    let (row_x, row_out) = plan.row_steps;
    let (w_oc_step, out_oc_step) = plan.outputs.map_or((0, 0), |o| (o.w_step, o.out_step));
    let mut asm = CodeAssembler::new(64)?;
    let mut evens = asm.create_label();
    let mut lo_bound = asm.create_label();
    let mut hi_bound = asm.create_label();
    let mut negative_infinity = asm.create_label();
    let max = plan.combine == Combine::Max;
    // r11: the bias row (the fifth argument; r8 is reused below).
    asm.mov(r11, r8)?;
    // IEEE maximum (NaN propagates, +0 above -0) of `a` and `x` into `a`.
    // VRANGEPS with imm8[1:0] = 01 (max) and imm8[3:2] = 01 (the sign of the
    // compared result) orders the zeros, but returns the other operand for
    // a NaN: so it updates only the lanes where `a` is ordered (a NaN `a`
    // stays), then a NaN `x` is merged in under its unordered mask.
    let maximum = |asm: &mut CodeAssembler, a: AsmRegisterZmm, x: AsmRegisterZmm| -> Result<(), IcedError> {
        const ORDERED: i32 = 7;
        const UNORDERED: i32 = 3;
        asm.vcmpps(k2, a, a, ORDERED)?;
        asm.vrangeps(a.k2(), a, x, 0b0101)?;
        asm.vcmpps(k2, x, x, UNORDERED)?;
        asm.vmovaps(a.k2(), x)
    };
    let (bias, lo, hi, activation) = match plan.epilogue {
        Epilogue::Registers { bias, lo, hi, activation } => (bias, lo, hi, activation),
        _ => (None, None, None, None),
    };
    let constants = activation.map(|_| zmm_math::Constants::new(&mut asm));
    // `plan` checked that every displacement fits 32 bits.
    let disp = |elements: i64| (4 * elements) as i32;
    for pass in &passes {
        let split = split_for(pass.len() / rows, channels);
        let acc = |b: usize, p: usize, s: usize| ZMM[(b * pass.len() + p) * split + s];
        // Loaded per pass: an activation in the epilogue takes zmm24..30.
        if stride == 2 {
            asm.vmovups(zmm31, zmmword_ptr(evens))?;
        }
        // zmm30: -inf, a maximum's identity and its padding.
        if max {
            asm.vbroadcastss(zmm30, dword_ptr(negative_infinity))?;
        }
        for b in 0..channels {
            for p in 0..pass.len() {
                for s in 0..split {
                    if max {
                        asm.vmovaps(acc(b, p, s), zmm30)?;
                    } else {
                        asm.vpxord(acc(b, p, s), acc(b, p, s), acc(b, p, s))?;
                    }
                }
            }
        }
        // The pass's load masks, most used first, in k3..k7 for the whole
        // pass (kmovw would take a cycle of an FMA port at every load);
        // any others are set in k1 at their load.
        let mut uses: Vec<(u32, usize)> = Vec::new();
        for tap in &plan.taps {
            for &(_, g) in pass {
                let mask = tap.masks[g];
                let halves = if stride == 2 && mask >> 16 != 0 { 2 } else { 1 };
                for half in 0..halves {
                    let bits = (mask >> (16 * half)) & 0xFFFF;
                    let all = (full >> (16 * half)) & 0xFFFF;
                    if mask == 0 || (bits == all && stride == 1) {
                        continue;
                    }
                    match uses.iter_mut().find(|u| u.0 == bits) {
                        Some(u) => u.1 += 1,
                        None => uses.push((bits, 1)),
                    }
                }
            }
        }
        uses.sort_by_key(|&(bits, n)| (std::cmp::Reverse(n), bits));
        let hoisted: Vec<(u32, u8)> = uses.iter().zip(3u8..=7).map(|(&(bits, _), k)| (bits, k)).collect();
        for &(bits, k) in &hoisted {
            asm.mov(eax, bits)?;
            asm.kmovw(MASKS[k as usize], eax)?;
        }
        // r8, r9: the window input and the weights at the current input channel.
        asm.mov(r8, rdi)?;
        asm.mov(r9, rsi)?;
        let mut channel = asm.create_label();
        if let Some(c) = plan.channels {
            asm.mov(r10, c.count as u64)?;
        }
        asm.set_label(&mut channel)?;
        for (t, tap) in plan.taps.iter().enumerate() {
            if pass.iter().all(|&(_, g)| tap.masks[g] == 0) {
                continue;
            }
            let mut skip = asm.create_label();
            if plan.guarded_rows && rows == 1 {
                asm.bt(rcx, t as u32)?;
                asm.jnc(skip)?;
            }
            for (p, &(r, g)) in pass.iter().enumerate() {
                let mask = tap.masks[g];
                if mask == 0 {
                    continue;
                }
                let at = disp(tap.x_offset + g as i64 * group_bytes / 4 + r as i64 * row_x);
                // Loads 16 elements at byte `at` under part `half` of the mask.
                let masked_load = |asm: &mut CodeAssembler, into: AsmRegisterZmm, half: u32, at: i32| {
                    let bits = (mask >> (16 * half)) & 0xFFFF;
                    let all = (full >> (16 * half)) & 0xFFFF;
                    if bits == all && stride == 1 {
                        return asm.vmovups(into, zmmword_ptr(r8 + at));
                    }
                    let k = match hoisted.iter().find(|h| h.0 == bits) {
                        Some(&(_, k)) => k,
                        None => {
                            asm.mov(eax, bits)?;
                            asm.kmovw(k1, eax)?;
                            1
                        }
                    };
                    if max {
                        // Lanes outside read -inf (merge into it).
                        asm.vmovaps(into, zmm30)?;
                        asm.vmovups(under(into, k), zmmword_ptr(r8 + at))
                    } else {
                        asm.vmovups(under(into, k).z(), zmmword_ptr(r8 + at))
                    }
                };
                masked_load(&mut asm, temps[p], 0, at)?;
                if stride == 2 {
                    if mask >> 16 == 0 && max {
                        asm.vmovaps(upper, zmm30)?;
                    } else if mask >> 16 == 0 {
                        // Lanes 8.. read nothing: the permute takes zeros.
                        asm.vpxord(upper, upper, upper)?;
                    } else {
                        masked_load(&mut asm, upper, 1, at + 64)?;
                    }
                    asm.vpermt2ps(temps[p], zmm31, upper)?;
                }
            }
            for b in 0..channels {
                if !max {
                    asm.vbroadcastss(weight, dword_ptr(r9 + disp(tap.w_offset + b as i64 * w_oc_step)))?;
                }
                for (p, &(_, g)) in pass.iter().enumerate() {
                    if tap.masks[g] == 0 {
                        continue;
                    }
                    let a = acc(b, p, t % split);
                    if max {
                        maximum(&mut asm, a, temps[p])?;
                    } else {
                        asm.vfmadd231ps(a, temps[p], weight)?;
                    }
                }
            }
            asm.set_label(&mut skip)?;
        }
        if let Some(c) = plan.channels {
            asm.add(r8, disp(c.x_step))?;
            asm.add(r9, disp(c.w_step))?;
            asm.dec(r10)?;
            asm.jnz(channel)?;
        }
        // zmm24, zmm25: the clamp bounds (the loaded groups are done).
        if lo.is_some() {
            asm.vbroadcastss(zmm24, dword_ptr(lo_bound))?;
        }
        if hi.is_some() {
            asm.vbroadcastss(zmm25, dword_ptr(hi_bound))?;
        }
        for b in 0..channels {
            for (p, &(r, g)) in pass.iter().enumerate() {
                for s in 1..split {
                    if max {
                        maximum(&mut asm, acc(b, p, 0), acc(b, p, s))?;
                    } else {
                        asm.vaddps(acc(b, p, 0), acc(b, p, 0), acc(b, p, s))?;
                    }
                }
                if let Some((_, step)) = bias {
                    asm.vaddps(acc(b, p, 0), acc(b, p, 0), dword_bcst(r11 + disp(b as i64 * step)))?;
                }
                // max(x, lo) and min(x, hi) with x second: NaN passes
                // through, as `select(x < lo, lo, x)` does.
                if lo.is_some() {
                    asm.vmaxps(acc(b, p, 0), zmm24, acc(b, p, 0))?;
                }
                if hi.is_some() {
                    asm.vminps(acc(b, p, 0), zmm25, acc(b, p, 0))?;
                }
                if let (Some(activation), Some(constants)) = (activation, &constants) {
                    let temps = [zmm24, zmm25, zmm26, zmm27, zmm28, zmm29, zmm30];
                    zmm_math::activation(&mut asm, constants, activation, acc(b, p, 0), &temps)?;
                }
                let at = disp((LANES * g) as i64 + b as i64 * out_oc_step + r as i64 * row_out);
                let valid = plan.row - g * LANES;
                if valid >= LANES {
                    asm.vmovups(zmmword_ptr(rdx + at), acc(b, p, 0))?;
                } else {
                    asm.mov(eax, (1u32 << valid) - 1)?;
                    asm.kmovw(k1, eax)?;
                    asm.vmovups(zmmword_ptr(rdx + at).k1(), acc(b, p, 0))?;
                }
            }
        }
    }
    asm.vzeroupper()?;
    asm.ret()?;
    if let Some(constants) = constants {
        constants.emit(&mut asm)?;
    }
    asm.set_label(&mut negative_infinity)?;
    asm.dd(&[f32::NEG_INFINITY.to_bits()])?;
    asm.set_label(&mut lo_bound)?;
    asm.dd(&[lo.unwrap_or(0.0).to_bits()])?;
    asm.set_label(&mut hi_bound)?;
    asm.dd(&[hi.unwrap_or(0.0).to_bits()])?;
    if stride == 2 {
        asm.set_label(&mut evens)?;
        let indices: Vec<u32> = (0..LANES as u32).map(|l| 2 * l).collect();
        asm.dd(&indices)?;
    }
    asm.assemble(0)
}
