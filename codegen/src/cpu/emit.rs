//! Translation of one kernel into a Cranelift function body: loop nests
//! over the domain, affine address arithmetic, guarded loads, scalar
//! expressions, conversions between buffer types and f32.

use std::collections::BTreeMap;

use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{types, BlockArg, InstBuilder, MachMemFlags, Type, Value};
use cranelift_frontend::FunctionBuilder;
use kiln_ir::kernel::{Access, BinaryFn, BufferId, Combine, Expr, ExprNode, Kernel, Program, UnaryFn, ValueId};
use kiln_ir::DataType;

use super::gemm;
use super::runtime_fns::{Helper, Imported};

/// A reduction's finish: the expression and the inputs its loads read,
/// over the kept axes.
#[derive(Clone, Copy)]
pub(super) struct Finish<'a> {
    pub(super) expr: &'a Expr,
    pub(super) inputs: &'a [Access],
}

/// Per-function state: the base address of each buffer the kernel touches.
pub(super) struct Emitter<'a> {
    pub(super) program: &'a Program,
    pub(super) helpers: &'a Imported,
    pub(super) bases: BTreeMap<BufferId, Value>,
    pub(super) task: Value,
    pub(super) tasks: Value,
    /// The buffer table (the function's first argument).
    buffers: Value,
    /// Bytes of per-task scratch each task owns (see [`Emitter::task_scratch`]).
    task_scratch_bytes: usize,
}

impl Emitter<'_> {
    /// The base of this task's scratch: entry `buffers.len()` of the
    /// buffer table is the base of one 64-byte aligned region of
    /// `task_scratch_bytes` per task, task `i`'s at `i * task_scratch_bytes`.
    pub(super) fn task_scratch(&self, fb: &mut FunctionBuilder) -> Value {
        let at = (self.program.buffers.len() * 8) as i32;
        let base = fb.ins().load(types::I64, flags(), self.buffers, at);
        let offset = fb.ins().imul_imm_s(self.task, self.task_scratch_bytes as i64);
        fb.ins().iadd(base, offset)
    }
}

pub(super) fn flags() -> MachMemFlags {
    // Validated accesses never trap. Callers' tensors need not be aligned,
    // so no alignment is promised.
    MachMemFlags::new().with_notrap()
}

#[path = "math.rs"]
pub(crate) mod math;
#[path = "vector.rs"]
mod vector;
#[path = "window.rs"]
pub(super) mod window;

use math::{Lanes, Trig};

/// `max(x, c)` or `min(x, c)` for a constant `c` that is not NaN, by a
/// comparison and a select (a single `maxps`/`minps` or a blend) instead of
/// the longer NaN- and zero-sign-exact sequence of `fmax`/`fmin`, with the
/// same results: NaN `x` passes through, `max(-0, +0) = +0`,
/// `min(+0, -0) = -0`.
fn min_max_const(l: &mut Lanes, f: BinaryFn, x: Value, c: f32) -> Value {
    let negative_zero = c == 0.0 && c.is_sign_negative();
    let positive_zero = c == 0.0 && !negative_zero;
    let cc = match f {
        // Take c when x is below it; at x == c only a zero's sign can differ.
        BinaryFn::Max if negative_zero => FloatCC::LessThan,
        BinaryFn::Max => FloatCC::LessThanOrEqual,
        BinaryFn::Min if positive_zero => FloatCC::GreaterThan,
        _ => FloatCC::GreaterThanOrEqual,
    };
    let k = l.f(c as f64);
    let take = l.fcmp(cc, x, k);
    l.select(take, k, x)
}

/// `x^e` for a constant exponent: exact or one-rounding forms for the
/// common small exponents (same results as `pow` for every x, special
/// values included), the general `pow` otherwise.
fn pow_const(l: &mut Lanes, x: Value, y: Value, e: f32) -> Value {
    if e == 0.0 {
        l.f(1.0)
    } else if e == 1.0 {
        x
    } else if e == 2.0 {
        l.mul(x, x)
    } else if e == 3.0 {
        let x2 = l.mul(x, x);
        l.mul(x2, x)
    } else if e == -1.0 {
        let one = l.f(1.0);
        l.div(one, x)
    } else if e == 0.5 {
        // pow(-0, 0.5) = +0 and pow(-inf, 0.5) = +inf, unlike sqrt.
        let r = l.fb.ins().sqrt(x);
        let minf = l.fcmpc(FloatCC::Equal, x, f64::NEG_INFINITY);
        let r = l.selectc(minf, f64::INFINITY, r);
        l.addc(r, 0.0)
    } else {
        math::pow(l, x, y)
    }
}

/// Emits the body of `kernel` into `fb`, whose function has the kernel
/// signature (buffers, task, tasks). `gemm` is the fast path's plan for a
/// Gemm kernel that has one; `task_scratch_bytes` is the program's
/// per-task scratch size (see [`Emitter::task_scratch`]).
#[allow(clippy::too_many_arguments, reason = "the parts of one kernel's code, each used once")]
pub fn kernel(
    fb: &mut FunctionBuilder,
    program: &Program,
    kernel: &Kernel,
    helpers: &Imported,
    task_scratch_bytes: usize,
    gemm: Option<(&gemm::Plan, &gemm::Refs)>,
    window: Option<(&window::Plan, &[cranelift_codegen::ir::FuncRef])>,
) {
    let entry = fb.create_block();
    fb.append_block_params_for_function_params(entry);
    fb.switch_to_block(entry);
    let params = fb.block_params(entry).to_vec();
    let (buffers, task, tasks) = (params[0], params[1], params[2]);
    let mut used = Vec::new();
    collect_buffers(kernel, &mut used);
    let mut bases = BTreeMap::new();
    for id in used {
        let base = fb.ins().load(types::I64, flags(), buffers, (id.0 as i32) * 8);
        bases.insert(id, base);
    }
    let mut e = Emitter { program, helpers, bases, task, tasks, buffers, task_scratch_bytes };
    match kernel {
        Kernel::Map { domain, inputs, expr, out } => e.map(fb, domain, inputs, expr, out),
        Kernel::Reduce { domain, reduced, inputs, element, combine, finish, finish_inputs, out } => match window {
            Some((plan, micro)) => e.window_sum(fb, plan, micro, kernel),
            None => {
                let finish = Finish { expr: finish, inputs: finish_inputs };
                e.reduce(fb, domain, *reduced, inputs, element, *combine, finish, out)
            }
        },
        Kernel::Gemm { domain, a, b, epilogue_inputs, epilogue, out } => match gemm {
            Some((plan, refs)) => e.fast_gemm(fb, plan, refs),
            None => e.gemm(fb, domain, a, b, epilogue_inputs, epilogue, out),
        },
        Kernel::Gather { outer, axis_len, inner, input, indices, index_count, out } => {
            e.gather(fb, *outer, *axis_len, *inner, *input, *indices, *index_count, *out)
        }
        Kernel::Host(_) => unreachable!("host kernels get no function (define_kernels skips them)"),
    }
    fb.ins().return_(&[]);
    fb.seal_all_blocks();
}

fn collect_buffers(kernel: &Kernel, out: &mut Vec<BufferId>) {
    let (reads, writes) = kernel.reads_writes();
    for id in reads.into_iter().chain(writes) {
        if !out.contains(&id) {
            out.push(id);
        }
    }
    out.sort();
}

/// `for i in start..end { body(i) }`.
fn for_range(fb: &mut FunctionBuilder, start: Value, end: Value, body: &mut dyn FnMut(&mut FunctionBuilder, Value)) {
    for_step(fb, start, end, 1, body);
}

/// `for (i = start; i < end; i += step) body(i)`.
pub(super) fn for_step(
    fb: &mut FunctionBuilder,
    start: Value,
    end: Value,
    step: i64,
    body: &mut dyn FnMut(&mut FunctionBuilder, Value),
) {
    for_next(fb, start, end, &mut |fb, i| {
        body(fb, i);
        fb.ins().iadd_imm_s(i, step)
    });
}

/// `for (i = start; i < end; i = body(i))`: the body returns the next
/// index (a variable step), in the block it ends in.
pub(super) fn for_next(
    fb: &mut FunctionBuilder,
    start: Value,
    end: Value,
    body: &mut dyn FnMut(&mut FunctionBuilder, Value) -> Value,
) {
    let var = fb.declare_var(types::I64);
    fb.def_var(var, start);
    let header = fb.create_block();
    let body_block = fb.create_block();
    let exit = fb.create_block();
    fb.ins().jump(header, &[]);
    fb.switch_to_block(header);
    let i = fb.use_var(var);
    let more = fb.ins().icmp(IntCC::SignedLessThan, i, end);
    fb.ins().brif(more, body_block, &[], exit, &[]);
    fb.switch_to_block(body_block);
    let next = body(fb, i);
    fb.def_var(var, next);
    fb.ins().jump(header, &[]);
    fb.switch_to_block(exit);
}

/// Loops over `ranges` (outermost first), calling `body` with every index.
fn nest(fb: &mut FunctionBuilder, ranges: &[(Value, Value)], index: &mut Vec<Value>, body: &mut dyn FnMut(&mut FunctionBuilder, &[Value])) {
    match ranges.split_first() {
        None => body(fb, index),
        Some((&(start, end), rest)) => for_range(fb, start, end, &mut |fb, i| {
            index.push(i);
            nest(fb, rest, index, body);
            index.pop();
        }),
    }
}

fn int_type(t: DataType) -> Type {
    match t.byte_size() {
        1 => types::I8,
        2 => types::I16,
        4 => types::I32,
        _ => types::I64,
    }
}

impl Emitter<'_> {
    /// Loop bounds for `domain`.
    /// With `parallel`, the outermost axis longer than 1 is split into
    /// `tasks` equal parts (batch-1 tensors still spread over the threads).
    /// A task visits only its own indices, so in a Map planned in place it
    /// reads only the elements of the shared memory that it writes.
    fn ranges(&self, fb: &mut FunctionBuilder, domain: &[usize], parallel: bool) -> Vec<(Value, Value)> {
        self.ranges_aligned(fb, domain, parallel, None)
    }

    /// Like [`Emitter::ranges`]; with `align = Some((axis, g))`, a split
    /// of `axis` falls on multiples of `g`, so that the same elements form
    /// whole groups of `g` whatever the number of tasks.
    pub(super) fn ranges_aligned(
        &self,
        fb: &mut FunctionBuilder,
        domain: &[usize],
        parallel: bool,
        align: Option<(usize, usize)>,
    ) -> Vec<(Value, Value)> {
        let split = parallel.then(|| domain.iter().position(|&d| d > 1).unwrap_or(0));
        domain
            .iter()
            .enumerate()
            .map(|(a, &d)| {
                if Some(a) != split {
                    let d = fb.ins().iconst(types::I64, d as i64);
                    return (fb.ins().iconst(types::I64, 0), d);
                }
                let g = align.filter(|&(axis, _)| axis == a).map_or(1, |(_, g)| g.max(1));
                // [task * units / tasks, (task + 1) * units / tasks) units of
                // g elements, the last unit cut at d.
                let units = fb.ins().iconst(types::I64, d.div_ceil(g) as i64);
                let bound = |fb: &mut FunctionBuilder, t: Value| {
                    let x = fb.ins().imul(t, units);
                    let x = fb.ins().udiv(x, self.tasks);
                    if g == 1 {
                        return x;
                    }
                    let x = fb.ins().imul_imm_s(x, g as i64);
                    let d = fb.ins().iconst(types::I64, d as i64);
                    fb.ins().umin(x, d)
                };
                let lo = bound(fb, self.task);
                let t1 = fb.ins().iadd_imm_s(self.task, 1);
                let hi = bound(fb, t1);
                (lo, hi)
            })
            .collect()
    }

    /// Only task 0 runs kernels without a parallel axis.
    fn single_task(&self, fb: &mut FunctionBuilder) {
        let run = fb.create_block();
        let skip = fb.create_block();
        fb.ins().brif(self.task, skip, &[], run, &[]);
        fb.switch_to_block(skip);
        fb.ins().return_(&[]);
        fb.switch_to_block(run);
    }

    /// `Σ coef[a] * index[a] + base` as an i64 value.
    fn affine(fb: &mut FunctionBuilder, base: isize, coef: &[isize], index: &[Value]) -> Value {
        let mut v = fb.ins().iconst(types::I64, base as i64);
        for (&c, &i) in coef.iter().zip(index) {
            match c {
                0 => {}
                1 => v = fb.ins().iadd(v, i),
                _ => {
                    let t = fb.ins().imul_imm_s(i, c as i64);
                    v = fb.ins().iadd(v, t);
                }
            }
        }
        v
    }

    fn address(&self, fb: &mut FunctionBuilder, buffer: BufferId, element: Value) -> Value {
        let size = self.program.buffer(buffer).data_type.byte_size() as i64;
        let bytes = fb.ins().imul_imm_s(element, size);
        fb.ins().iadd(self.bases[&buffer], bytes)
    }

    /// The element offset of an unguarded access at `index`.
    fn offset(fb: &mut FunctionBuilder, a: &Access, index: &[Value]) -> Value {
        let (offset, strides) = a.linear(index.len());
        Self::affine(fb, offset, &strides, index)
    }

    /// Whether every coordinate of a guarded access is inside its shape.
    fn in_range(fb: &mut FunctionBuilder, a: &Access, index: &[Value]) -> Value {
        let mut ok = fb.ins().iconst(types::I8, 1);
        for j in 0..a.shape.len() {
            if a.coef[j].iter().all(|&c| c == 0) && (0..a.shape[j] as isize).contains(&a.base[j]) {
                continue;
            }
            let c = Self::affine(fb, a.base[j], &a.coef[j], index);
            let inside = fb.ins().icmp_imm_u(IntCC::UnsignedLessThan, c, a.shape[j] as i64);
            ok = fb.ins().band(ok, inside);
        }
        ok
    }

    /// Loads the element at `offset` of `buffer`, converted to f32.
    fn load_f32(&self, fb: &mut FunctionBuilder, buffer: BufferId, offset: Value) -> Value {
        let addr = self.address(fb, buffer, offset);
        let t = self.program.buffer(buffer).data_type;
        match t {
            DataType::Float32 => fb.ins().load(types::F32, flags(), addr, 0),
            DataType::Float16 => {
                let bits = fb.ins().uload16(types::I32, flags(), addr, 0);
                math::f16_bits_to_f32(&mut Lanes::new(fb, types::F32, false), bits)
            }
            DataType::Int32 => {
                let v = fb.ins().load(types::I32, flags(), addr, 0);
                fb.ins().fcvt_from_sint(types::F32, v)
            }
            DataType::Uint32 => {
                let v = fb.ins().load(types::I32, flags(), addr, 0);
                fb.ins().fcvt_from_uint(types::F32, v)
            }
            DataType::Int64 => {
                let v = fb.ins().load(types::I64, flags(), addr, 0);
                fb.ins().fcvt_from_sint(types::F32, v)
            }
            DataType::Uint64 => {
                let v = fb.ins().load(types::I64, flags(), addr, 0);
                fb.ins().fcvt_from_uint(types::F32, v)
            }
            DataType::Int8 => {
                let v = fb.ins().sload8(types::I32, flags(), addr, 0);
                fb.ins().fcvt_from_sint(types::F32, v)
            }
            DataType::Uint8 => {
                let v = fb.ins().uload8(types::I32, flags(), addr, 0);
                fb.ins().fcvt_from_uint(types::F32, v)
            }
        }
    }

    /// Stores an f32 to the element at `offset` of `buffer`, converted to its
    /// type: float16 rounds to nearest; integers truncate and saturate.
    fn store_f32(&self, fb: &mut FunctionBuilder, buffer: BufferId, offset: Value, v: Value) {
        let addr = self.address(fb, buffer, offset);
        let t = self.program.buffer(buffer).data_type;
        let saturated = |fb: &mut FunctionBuilder, lo: i64, hi: i64| {
            let i = fb.ins().fcvt_to_sint_sat(types::I32, v);
            let (lo, hi) = (fb.ins().iconst(types::I32, lo), fb.ins().iconst(types::I32, hi));
            let i = fb.ins().smax(i, lo);
            fb.ins().smin(i, hi)
        };
        match t {
            DataType::Float32 => {
                fb.ins().store(flags(), v, addr, 0);
            }
            DataType::Float16 => {
                let bits = math::f32_to_f16_bits(&mut Lanes::new(fb, types::F32, false), v);
                fb.ins().istore16(flags(), bits, addr, 0);
            }
            DataType::Int32 => {
                let i = fb.ins().fcvt_to_sint_sat(types::I32, v);
                fb.ins().store(flags(), i, addr, 0);
            }
            DataType::Uint32 => {
                let i = fb.ins().fcvt_to_uint_sat(types::I32, v);
                fb.ins().store(flags(), i, addr, 0);
            }
            DataType::Int64 => {
                let i = fb.ins().fcvt_to_sint_sat(types::I64, v);
                fb.ins().store(flags(), i, addr, 0);
            }
            DataType::Uint64 => {
                let i = fb.ins().fcvt_to_uint_sat(types::I64, v);
                fb.ins().store(flags(), i, addr, 0);
            }
            DataType::Int8 => {
                let i = saturated(fb, -128, 127);
                fb.ins().istore8(flags(), i, addr, 0);
            }
            DataType::Uint8 => {
                let i = saturated(fb, 0, 255);
                fb.ins().istore8(flags(), i, addr, 0);
            }
        }
    }

    /// Reads access `a` at `index` as f32, honouring its guard.
    pub(super) fn read(&self, fb: &mut FunctionBuilder, a: &Access, index: &[Value]) -> Value {
        let Some(fill) = a.guard else {
            let offset = Self::offset(fb, a, index);
            return self.load_f32(fb, a.buffer, offset);
        };
        let inside = Self::in_range(fb, a, index);
        let load_block = fb.create_block();
        let merge = fb.create_block();
        let result = fb.append_block_param(merge, types::F32);
        let fill = fb.ins().f32const(fill);
        fb.ins().brif(inside, load_block, &[], merge, &[BlockArg::Value(fill)]);
        fb.switch_to_block(load_block);
        let offset = Self::offset(fb, a, index);
        let v = self.load_f32(fb, a.buffer, offset);
        fb.ins().jump(merge, &[BlockArg::Value(v)]);
        fb.switch_to_block(merge);
        result
    }

    /// Evaluates `expr` on scalars; `load(n)` supplies input `n`,
    /// `acc`/`count` the accumulator values where the expression may use them.
    pub(super) fn expr(
        &self,
        fb: &mut FunctionBuilder,
        expr: &Expr,
        load: &mut dyn FnMut(&mut FunctionBuilder, u32) -> Value,
        acc: Option<Value>,
        count: Option<Value>,
    ) -> Value {
        self.expr_lanes(fb, types::F32, expr, load, acc, count)
    }

    /// Evaluates `expr` lane-wise on `ty` values (`F32` or `F32X4`); loads,
    /// `acc` and `count` must be of that type. Both widths emit the same
    /// operations per lane, so they agree bit for bit.
    pub(super) fn expr_lanes(
        &self,
        fb: &mut FunctionBuilder,
        ty: Type,
        expr: &Expr,
        load: &mut dyn FnMut(&mut FunctionBuilder, u32) -> Value,
        acc: Option<Value>,
        count: Option<Value>,
    ) -> Value {
        let mut values: Vec<Value> = Vec::with_capacity(expr.nodes.len());
        let mut masks: BTreeMap<usize, Value> = BTreeMap::new();
        for node in &expr.nodes {
            let v = match *node {
                ExprNode::Load(n) => load(fb, n),
                ExprNode::Const(c) => {
                    let s = fb.ins().f32const(c);
                    if ty.is_vector() { fb.ins().splat(ty, s) } else { s }
                }
                ExprNode::Acc => acc.expect("validated: Acc only where an accumulator exists"),
                ExprNode::Count => count.expect("validated: Count only in reductions"),
                ExprNode::Unary(f, a) => {
                    let x = values[a.0 as usize];
                    let l = &mut Lanes::new(fb, ty, self.helpers.has_fma());
                    match f {
                        UnaryFn::Abs => l.fb.ins().fabs(x),
                        UnaryFn::Neg => l.fb.ins().fneg(x),
                        UnaryFn::Ceil => l.fb.ins().ceil(x),
                        UnaryFn::Floor => l.fb.ins().floor(x),
                        UnaryFn::RoundEven => l.fb.ins().nearest(x),
                        UnaryFn::Sqrt => l.fb.ins().sqrt(x),
                        UnaryFn::Trunc => l.fb.ins().trunc(x),
                        UnaryFn::Exp => math::exp(l, x),
                        UnaryFn::Log => math::log(l, x),
                        UnaryFn::Erf => math::erf(l, x),
                        UnaryFn::Sin => math::trig(l, x, Trig::Sin, self.helpers.get(Helper::Sin)),
                        UnaryFn::Cos => math::trig(l, x, Trig::Cos, self.helpers.get(Helper::Cos)),
                        UnaryFn::Tan => math::trig(l, x, Trig::Tan, self.helpers.get(Helper::Tan)),
                        UnaryFn::Tanh => math::tanh(l, x),
                        UnaryFn::RoundF16 => math::round_f16(l, x),
                    }
                }
                ExprNode::Binary(f, a, b) => {
                    let (x, y) = (values[a.0 as usize], values[b.0 as usize]);
                    let l = &mut Lanes::new(fb, ty, self.helpers.has_fma());
                    let mut compare = |cc: FloatCC| {
                        let c = l.fcmp(cc, x, y);
                        // A select on this comparison uses the mask itself.
                        masks.insert(values.len(), c);
                        let one = l.f(1.0);
                        let zero = l.f(0.0);
                        l.select(c, one, zero)
                    };
                    match f {
                        BinaryFn::Add => l.add(x, y),
                        BinaryFn::Sub => l.sub(x, y),
                        BinaryFn::Mul => l.mul(x, y),
                        BinaryFn::Div => l.div(x, y),
                        BinaryFn::Max | BinaryFn::Min => {
                            let konst = |v: ValueId| match expr.nodes[v.0 as usize] {
                                ExprNode::Const(c) if !c.is_nan() => Some(c),
                                _ => None,
                            };
                            match (konst(a), konst(b)) {
                                (_, Some(c)) => min_max_const(l, f, x, c),
                                (Some(c), None) => min_max_const(l, f, y, c),
                                _ if f == BinaryFn::Max => l.fb.ins().fmax(x, y),
                                _ => l.fb.ins().fmin(x, y),
                            }
                        }
                        BinaryFn::Pow => match expr.nodes[b.0 as usize] {
                            ExprNode::Const(e) => pow_const(l, x, y, e),
                            _ => math::pow(l, x, y),
                        },
                        BinaryFn::Equal => compare(FloatCC::Equal),
                        BinaryFn::Greater => compare(FloatCC::GreaterThan),
                        BinaryFn::GreaterOrEqual => compare(FloatCC::GreaterThanOrEqual),
                        BinaryFn::Lesser => compare(FloatCC::LessThan),
                        BinaryFn::LesserOrEqual => compare(FloatCC::LessThanOrEqual),
                    }
                }
                ExprNode::Select(c, a, b) => {
                    let l = &mut Lanes::new(fb, ty, self.helpers.has_fma());
                    // A comparison's 1.0/0.0 is != 0 exactly where its mask is set.
                    let cond = match masks.get(&(c.0 as usize)) {
                        Some(&m) => m,
                        None => {
                            let zero = l.f(0.0);
                            l.fcmp(FloatCC::NotEqual, values[c.0 as usize], zero)
                        }
                    };
                    l.select(cond, values[a.0 as usize], values[b.0 as usize])
                }
            };
            values.push(v);
        }
        *values.last().expect("validated: expressions are not empty")
    }

    fn map(&mut self, fb: &mut FunctionBuilder, domain: &[usize], inputs: &[Access], expr: &Expr, out: &Access) {
        if self.map_vector(fb, domain, inputs, expr, out) || self.map_guarded(fb, domain, inputs, expr, out) {
            return;
        }
        if domain.is_empty() {
            // One index and no axis to split: every task would compute it,
            // and in a Map planned in place a later task would read what an
            // earlier one wrote.
            self.single_task(fb);
        }
        let ranges = self.ranges(fb, domain, true);
        let out_type = self.program.buffer(out.buffer).data_type;
        let bit_copy = matches!(expr.nodes.as_slice(), [ExprNode::Load(0)])
            && inputs[0].guard.is_none()
            && self.program.buffer(inputs[0].buffer).data_type == out_type;
        nest(fb, &ranges, &mut Vec::new(), &mut |fb, index| {
            let dst = Self::offset(fb, out, index);
            if bit_copy {
                let src = Self::offset(fb, &inputs[0], index);
                let from = self.address(fb, inputs[0].buffer, src);
                let v = fb.ins().load(int_type(out_type), flags(), from, 0);
                let to = self.address(fb, out.buffer, dst);
                fb.ins().store(flags(), v, to, 0);
            } else {
                let v = self.expr(fb, expr, &mut |fb, n| self.read(fb, &inputs[n as usize], index), None, None);
                self.store_f32(fb, out.buffer, dst, v);
            }
        });
    }

    #[allow(clippy::too_many_arguments)]
    fn reduce(
        &mut self,
        fb: &mut FunctionBuilder,
        domain: &[usize],
        reduced: usize,
        inputs: &[Access],
        element: &Expr,
        combine: Combine,
        finish: Finish<'_>,
        out: &Access,
    ) {
        if self.reduce_vector(fb, domain, reduced, inputs, element, combine, finish, out)
            || self.reduce_guarded(fb, domain, reduced, inputs, element, combine, finish, out)
        {
            return;
        }
        let kept = domain.len() - reduced;
        if kept == 0 {
            self.single_task(fb);
        }
        let outer = self.ranges(fb, &domain[..kept], true);
        let inner = self.ranges(fb, &domain[kept..], false);
        nest(fb, &outer, &mut Vec::new(), &mut |fb, kept_index| {
            self.reduce_point(fb, &inner, kept_index, inputs, element, combine, finish, out);
        });
    }

    /// A reduction's finish for one output at `kept_index`, from its
    /// accumulator and count (f32 scalars).
    pub(super) fn finish(&self, fb: &mut FunctionBuilder, finish: Finish<'_>, kept_index: &[Value], acc: Value, count: Value) -> Value {
        self.expr(fb, finish.expr, &mut |fb, n| self.read(fb, &finish.inputs[n as usize], kept_index), Some(acc), Some(count))
    }

    /// The scalar reduction of one output element at `kept_index`, over
    /// the reduced loop bounds `inner`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn reduce_point(
        &self,
        fb: &mut FunctionBuilder,
        inner: &[(Value, Value)],
        kept_index: &[Value],
        inputs: &[Access],
        element: &Expr,
        combine: Combine,
        finish: Finish<'_>,
        out: &Access,
    ) {
        let acc = fb.declare_var(types::F32);
        let count = fb.declare_var(types::I64);
        let init = fb.ins().f32const(combine.identity());
        fb.def_var(acc, init);
        let zero = fb.ins().iconst(types::I64, 0);
        fb.def_var(count, zero);
        let mut index = kept_index.to_vec();
        nest(fb, inner, &mut index, &mut |fb, full| {
            let x = self.expr(fb, element, &mut |fb, n| self.read(fb, &inputs[n as usize], full), None, None);
            let a = fb.use_var(acc);
            let a = match combine {
                Combine::Sum => fb.ins().fadd(a, x),
                Combine::Product => fb.ins().fmul(a, x),
                Combine::Max => fb.ins().fmax(a, x),
                Combine::Min => fb.ins().fmin(a, x),
            };
            fb.def_var(acc, a);
            let valid = match inputs.first() {
                Some(first) if first.guard.is_some() => {
                    let inside = Self::in_range(fb, first, full);
                    fb.ins().uextend(types::I64, inside)
                }
                _ => fb.ins().iconst(types::I64, 1),
            };
            let c = fb.use_var(count);
            let c = fb.ins().iadd(c, valid);
            fb.def_var(count, c);
        });
        let a = fb.use_var(acc);
        let c = fb.use_var(count);
        let c = fb.ins().fcvt_from_sint(types::F32, c);
        let v = self.finish(fb, finish, kept_index, a, c);
        let dst = Self::offset(fb, out, kept_index);
        self.store_f32(fb, out.buffer, dst, v);
    }

    #[allow(clippy::too_many_arguments)]
    fn gemm(
        &mut self,
        fb: &mut FunctionBuilder,
        domain: &[usize],
        a: &Access,
        b: &Access,
        epilogue_inputs: &[Access],
        epilogue: &Expr,
        out: &Access,
    ) {
        let outer_rank = domain.len() - 1;
        let outer = self.ranges(fb, &domain[..outer_rank], true);
        let k = self.ranges(fb, &domain[outer_rank..], false);
        nest(fb, &outer, &mut Vec::new(), &mut |fb, mn| {
            let acc = fb.declare_var(types::F32);
            let zero = fb.ins().f32const(0.0);
            fb.def_var(acc, zero);
            let mut index = mn.to_vec();
            nest(fb, &k, &mut index, &mut |fb, full| {
                let x = self.read(fb, a, full);
                let y = self.read(fb, b, full);
                let p = fb.ins().fmul(x, y);
                let s = fb.use_var(acc);
                let s = fb.ins().fadd(s, p);
                fb.def_var(acc, s);
            });
            let s = fb.use_var(acc);
            let v = self.expr(fb, epilogue, &mut |fb, n| self.read(fb, &epilogue_inputs[n as usize], mn), Some(s), None);
            let dst = Self::offset(fb, out, mn);
            self.store_f32(fb, out.buffer, dst, v);
        });
    }

    #[allow(clippy::too_many_arguments)]
    fn gather(
        &mut self,
        fb: &mut FunctionBuilder,
        outer: usize,
        axis_len: usize,
        inner: usize,
        input: BufferId,
        indices: BufferId,
        index_count: usize,
        out: BufferId,
    ) {
        // One index per (outer, j): its row of `inner` elements is copied
        // 16 bytes at a time, then element by element.
        let ranges = self.ranges(fb, &[outer, index_count], true);
        let index_type = self.program.buffer(indices).data_type;
        let elem = int_type(self.program.buffer(out).data_type);
        let size = self.program.buffer(out).data_type.byte_size();
        let chunk_bytes = (inner * size / 16 * 16) as i64;
        nest(fb, &ranges, &mut Vec::new(), &mut |fb, i| {
            let (o, j) = (i[0], i[1]);
            let at = self.address(fb, indices, j);
            let idx = match index_type {
                DataType::Int64 => fb.ins().load(types::I64, flags(), at, 0),
                DataType::Uint32 => fb.ins().uload32(flags(), at, 0),
                _ => fb.ins().sload32(flags(), at, 0),
            };
            // Negative indices count from the end; anything else out of range is clamped.
            let negative = fb.ins().icmp_imm_s(IntCC::SignedLessThan, idx, 0);
            let wrapped = fb.ins().iadd_imm_s(idx, axis_len as i64);
            let idx = fb.ins().select(negative, wrapped, idx);
            let (first, last) = (fb.ins().iconst(types::I64, 0), fb.ins().iconst(types::I64, axis_len as i64 - 1));
            let idx = fb.ins().smax(idx, first);
            let idx = fb.ins().smin(idx, last);
            let src = fb.ins().imul_imm_s(o, axis_len as i64);
            let src = fb.ins().iadd(src, idx);
            let src = fb.ins().imul_imm_s(src, inner as i64);
            let dst = fb.ins().imul_imm_s(o, index_count as i64);
            let dst = fb.ins().iadd(dst, j);
            let dst = fb.ins().imul_imm_s(dst, inner as i64);
            let from = self.address(fb, input, src);
            let to = self.address(fb, out, dst);
            if chunk_bytes > 0 {
                let (zero, end) = (fb.ins().iconst(types::I64, 0), fb.ins().iconst(types::I64, chunk_bytes));
                for_step(fb, zero, end, 16, &mut |fb, b| {
                    let (f, t) = (fb.ins().iadd(from, b), fb.ins().iadd(to, b));
                    let v = fb.ins().load(types::I8X16, flags(), f, 0);
                    fb.ins().store(flags(), v, t, 0);
                });
            }
            for k in (chunk_bytes as usize / size)..inner {
                let v = fb.ins().load(elem, flags(), from, (k * size) as i32);
                fb.ins().store(flags(), v, to, (k * size) as i32);
            }
        });
    }
}
