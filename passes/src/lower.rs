//! Lowering: a WebNN [`Graph`] to a kernel-IR [`Program`].
//!
//! Every node becomes one or more kernels (see the table in the crate
//! documentation). Buffers: each graph input is an `Input` buffer, each
//! graph output an `Output` buffer (an output operand that later nodes read
//! is read from there), each constant a `Constant` buffer sharing the
//! graph's bytes, and every other operand a `Scratch` buffer. Every operand
//! keeps its own data type in memory: an op computes in f32 and rounds once,
//! to its output type, as the interpreter does; values that only live
//! inside one op (a softmax's maximum and sum, a layer norm's mean and
//! variance) are f32 scratch; a grouped convolution adds its bias in its
//! reduction's finish.
//!
//! Operators that keep every element in place alias their input's buffer
//! with the new shape (no kernel): `reshape`, `identity`, a cast to the same
//! type, and the degenerate `expand` (only size-1 dimensions added),
//! `transpose` (only size-1 axes moved), `slice` (everything), `pad`
//! (nothing), `concat` (one input) and `split` (one part). A result that
//! is a graph output gets a copy instead. An operand is always a whole buffer, so an
//! alias is only a different shape on the same `BufferId` and liveness
//! (per buffer) stays right.
//!
//! Integers: kernels compute in f32, which holds integers exactly only up
//! to 2^24. Data movement copies element bytes, so it is exact for every
//! type. Arithmetic, comparisons and selections are lowered to kernels for
//! float16, float32, int8 and uint8 (int8/uint8 results that can leave
//! their range wrap, as the interpreter does, by exact f32 arithmetic).
//! Casts: see [`cast_rule`].
//!
//! Host kernels: a node the f32 kernels cannot compute exactly becomes one
//! [`Kernel::Host`] instead, which runs the operator with the reference
//! interpreter's semantics (`kiln_ir::interp::eval_op`) on whole buffers,
//! on the host, between the generated kernels: exact by construction, and
//! slow (one thread, a copy of every input and output). These nodes are:
//! - arithmetic, comparisons, selections (`where`), `clamp`, `prelu`,
//!   `abs`/`neg`/`relu`, `reduceMax`/`reduceMin` and `maxPool2d` on 32- and
//!   64-bit integers, except a comparison with a constant whose values all
//!   lie strictly within ±2^24 (exact in f32, see `small_int_constant`:
//!   one-hot encodings compare indices with such a range);
//! - `pow` on integers, and the accumulating reductions (`reduceSum`,
//!   `reduceL1`, `reduceSumSquare`, `reduceProduct`) on integers;
//! - integer-to-integer casts that need more than f32's exact integers
//!   ([`cast_rule`] refuses them);
//! - linear `resample2d` of integers, and a constant `pad` whose value f32
//!   cannot hold exactly.
//!
//! A host kernel's buffers are whole operands, as for every other kernel;
//! fusion never merges it with anything, and memory planning never lets it
//! write over its inputs. [`LowerOptions::host_kernels`] off (for a backend
//! that cannot run host code) reports these nodes as
//! [`LowerError::Unsupported`] instead, every one of them at once.

use std::collections::HashMap;
use std::fmt;

use half::f16;
use kiln_ir::infer::{
    channel_axis, conv_transpose2d_filter_dims, conv2d_filter_dims, resolved_layer_norm_axes, resolved_permutation,
    resolved_reduce_axes, resolved_slice_strides, resolved_window, spatial_axes,
};
use kiln_ir::kernel::{
    Access, BinaryFn, BufferId, BufferKind, Combine, Expr, ExprNode, HostKernel, HostOperand, Kernel, KernelError,
    Program, UnaryFn, ValueId,
};
use kiln_ir::{
    BinaryOp, CompareOp, Conv2dFilterLayout, Conv2dOptions, ConvTranspose2dFilterLayout, ConvTranspose2dOptions,
    DataType, Graph, InputLayout, InterpolationMode, LogicalOp, Node, Number, Op, OperandDescriptor, OperandId,
    OperandKind, PaddingMode, Pool2dOptions, PoolOp, ReduceOp, Tensor, UnaryOp, Values,
};

use crate::plan::plan;

/// A node the lowering cannot turn into kernels, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unsupported {
    /// The WebNN operator name.
    pub op: &'static str,
    /// The node's label (empty if none was given).
    pub label: String,
    pub reason: String,
}

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.op)?;
        if !self.label.is_empty() {
            write!(f, " '{}'", self.label)?;
        }
        write!(f, ": {}", self.reason)
    }
}

/// Why a graph could not be lowered.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum LowerError {
    /// Every node that cannot be lowered, in graph order (only with
    /// [`LowerOptions::host_kernels`] off: with host kernels every node
    /// lowers).
    #[error("{}", fmt_unsupported(.0))]
    Unsupported(Vec<Unsupported>),
    /// The lowering built a program its validator rejects: a bug in kiln.
    #[error("lowering produced an invalid kernel program (a bug): {0}")]
    Invalid(KernelError),
}

fn fmt_unsupported(list: &[Unsupported]) -> String {
    let items: Vec<String> = list.iter().map(|u| u.to_string()).collect();
    format!("{} unsupported node{}: {}", list.len(), if list.len() == 1 { "" } else { "s" }, items.join("; "))
}

/// Options for [`lower_with`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LowerOptions {
    /// Whether a node the f32 kernels cannot compute exactly becomes a
    /// [`Kernel::Host`] (the default), or is reported in
    /// [`LowerError::Unsupported`] (for backends that cannot run host code).
    pub host_kernels: bool,
    /// Whether a float32 nchw `conv2d` with one group, a window larger than
    /// one pixel but of at most 64, a column stride of 1 or 2 and output
    /// rows at least 12 long becomes a window Reduce (read in place by a
    /// code generator with direct convolution kernels: AVX-512 on the cpu
    /// backend) instead of an im2col Map and a Gemm. Off by default.
    pub direct_convolution: bool,
}

impl Default for LowerOptions {
    fn default() -> Self {
        LowerOptions { host_kernels: true, direct_convolution: false }
    }
}

/// Lowers `graph` to a validated, fused ([`crate::fuse()`]), memory-planned
/// kernel program, with host kernels where the f32 kernels are not exact
/// (see the module documentation).
pub fn lower(graph: &Graph) -> Result<Program, LowerError> {
    lower_with(graph, LowerOptions::default())
}

/// [`lower`] with options.
pub fn lower_with(graph: &Graph, options: LowerOptions) -> Result<Program, LowerError> {
    let mut program = lower_nodes(graph, options)?;
    crate::fuse::fuse(&mut program);
    plan(&mut program);
    program.validate().map_err(LowerError::Invalid)?;
    Ok(program)
}

/// Lowers `graph` (with host kernels) without fusing or planning memory:
/// every scratch buffer is at offset 0 and `arena_bytes` is 0. [`lower`] is
/// this plus [`crate::fuse()`] and [`plan`].
pub fn lower_unplanned(graph: &Graph) -> Result<Program, LowerError> {
    lower_nodes(graph, LowerOptions::default())
}

fn lower_nodes(graph: &Graph, options: LowerOptions) -> Result<Program, LowerError> {
    let mut l = Lowerer::new(graph, options);
    let needed = needed_nodes(graph);
    for (n, node) in graph.nodes().iter().enumerate() {
        if !needed[n] {
            continue;
        }
        let result = match host_reason(graph, &node.op) {
            Some(_) if options.host_kernels => {
                l.host(node);
                Ok(())
            }
            Some(reason) => Err(reason),
            None => l.node(node),
        };
        if let Err(reason) = result {
            l.unsupported.push(Unsupported { op: node.op.name(), label: node.label.clone(), reason });
            // Give the outputs buffers so later nodes can still be checked.
            for &o in &node.outputs {
                if l.vals[o.index()].is_none() {
                    l.dest(o);
                }
            }
            continue;
        }
        l.copy_to_extra_outputs(node);
    }
    if !l.unsupported.is_empty() {
        return Err(LowerError::Unsupported(l.unsupported));
    }
    l.program.validate().map_err(LowerError::Invalid)?;
    Ok(l.program)
}

/// Whether a node's results are needed: it produces a graph output or an
/// operand a needed node reads.
fn needed_nodes(graph: &Graph) -> Vec<bool> {
    let mut operand_needed = vec![false; graph.operands().len()];
    for (_, id) in graph.outputs() {
        operand_needed[id.index()] = true;
    }
    let mut needed = vec![false; graph.nodes().len()];
    for (n, node) in graph.nodes().iter().enumerate().rev() {
        if node.outputs.iter().any(|o| operand_needed[o.index()]) {
            needed[n] = true;
            for (_, i) in node.op.inputs() {
                operand_needed[i.index()] = true;
            }
        }
    }
    needed
}

// ---------------------------------------------------------------------------
// Values, accesses and expressions.

/// An operand in memory: a whole buffer seen with a shape.
#[derive(Clone, Debug)]
struct Val {
    buf: BufferId,
    shape: Vec<usize>,
    dtype: DataType,
}

impl Val {
    /// The same buffer seen with another shape of as many elements.
    fn view(&self, shape: &[usize]) -> Val {
        debug_assert_eq!(shape.iter().product::<usize>(), self.shape.iter().product::<usize>());
        Val { buf: self.buf, shape: shape.to_vec(), dtype: self.dtype }
    }

    fn len(&self) -> usize {
        self.shape.iter().product()
    }

    fn rank(&self) -> usize {
        self.shape.len()
    }
}

/// One coordinate of an access: `base + Σ (axis, coef)`.
#[derive(Clone, Debug, Default)]
struct Row {
    base: isize,
    terms: Vec<(usize, isize)>,
}

impl Row {
    /// Domain axis `a` (coefficient 1).
    fn axis(a: usize) -> Row {
        Row { base: 0, terms: vec![(a, 1)] }
    }

    /// The constant coordinate `c`.
    fn fixed(c: isize) -> Row {
        Row { base: c, terms: vec![] }
    }

    fn offset(mut self, by: isize) -> Row {
        self.base += by;
        self
    }
}

/// An access to `v` over a rank-`rank` domain, one row per dimension of `v`.
fn access(v: &Val, rank: usize, rows: &[Row], guard: Option<f32>) -> Access {
    assert_eq!(rows.len(), v.rank(), "one row per tensor dimension");
    let mut coef = vec![vec![0isize; rank]; rows.len()];
    for (j, row) in rows.iter().enumerate() {
        for &(a, c) in &row.terms {
            coef[j][a] += c;
        }
    }
    Access { buffer: v.buf, shape: v.shape.clone(), base: rows.iter().map(|r| r.base).collect(), coef, guard }
}

/// `v` with dimension `j` on domain axis `axes[j]` (`None`: a size-1
/// dimension that stays at 0).
fn placed(v: &Val, rank: usize, axes: &[Option<usize>]) -> Access {
    let rows: Vec<Row> = axes.iter().map(|a| a.map_or(Row::fixed(0), Row::axis)).collect();
    access(v, rank, &rows, None)
}

/// `v` broadcast (numpy-style, right-aligned) over a domain `shape`.
fn bcast(v: &Val, shape: &[usize]) -> Access {
    let lead = shape.len() - v.rank();
    let axes: Vec<Option<usize>> = v
        .shape
        .iter()
        .enumerate()
        .map(|(j, &d)| if d == 1 && shape[lead + j] != 1 { None } else { Some(lead + j) })
        .collect();
    placed(v, shape.len(), &axes)
}

fn ident(v: &Val) -> Access {
    Access::identity(v.buf, &v.shape)
}

/// Builds an expression; values are [`ValueId`]s.
struct E {
    e: Expr,
}

type V = ValueId;

impl E {
    fn new() -> Self {
        E { e: Expr::default() }
    }

    fn push(&mut self, n: ExprNode) -> V {
        self.e.push(n)
    }

    fn load(&mut self, n: u32) -> V {
        self.push(ExprNode::Load(n))
    }

    fn c(&mut self, x: f32) -> V {
        self.push(ExprNode::Const(x))
    }

    fn acc(&mut self) -> V {
        self.push(ExprNode::Acc)
    }

    fn count(&mut self) -> V {
        self.push(ExprNode::Count)
    }

    fn un(&mut self, f: UnaryFn, a: V) -> V {
        self.push(ExprNode::Unary(f, a))
    }

    fn bin(&mut self, f: BinaryFn, a: V, b: V) -> V {
        self.push(ExprNode::Binary(f, a, b))
    }

    fn add(&mut self, a: V, b: V) -> V {
        self.bin(BinaryFn::Add, a, b)
    }

    fn sub(&mut self, a: V, b: V) -> V {
        self.bin(BinaryFn::Sub, a, b)
    }

    fn mul(&mut self, a: V, b: V) -> V {
        self.bin(BinaryFn::Mul, a, b)
    }

    fn div(&mut self, a: V, b: V) -> V {
        self.bin(BinaryFn::Div, a, b)
    }

    fn sel(&mut self, c: V, a: V, b: V) -> V {
        self.push(ExprNode::Select(c, a, b))
    }

    /// `x < 0` as 1/0.
    fn negative(&mut self, x: V) -> V {
        let zero = self.c(0.0);
        self.bin(BinaryFn::Lesser, x, zero)
    }

    /// `min(max(x, lo), hi)` that lets a NaN `x` through (bounds optional).
    fn clamp(&mut self, x: V, lo: Option<f32>, hi: Option<f32>) -> V {
        let mut y = x;
        if let Some(lo) = lo {
            let l = self.c(lo);
            let below = self.bin(BinaryFn::Lesser, y, l);
            y = self.sel(below, l, y);
        }
        if let Some(hi) = hi {
            let h = self.c(hi);
            let above = self.bin(BinaryFn::Greater, y, h);
            y = self.sel(above, h, y);
        }
        y
    }

    /// `e^x - 1`, accurate near 0 (Kahan: `(u - 1) * x / ln u` with `u = e^x`).
    fn expm1(&mut self, x: V) -> V {
        let u = self.un(UnaryFn::Exp, x);
        let one = self.c(1.0);
        let um1 = self.sub(u, one);
        let minus_one = self.c(-1.0);
        let lnu = self.un(UnaryFn::Log, u);
        let t = self.mul(um1, x);
        let general = self.div(t, lnu);
        let saturated = self.bin(BinaryFn::Equal, um1, minus_one);
        let r = self.sel(saturated, minus_one, general);
        let exact_one = self.bin(BinaryFn::Equal, u, one);
        self.sel(exact_one, x, r)
    }

    /// `ln(1 + e)` for `e >= 0`, accurate for small `e` (Goldberg:
    /// `ln(u) * e / (u - 1)` with `u = 1 + e`).
    fn log1p(&mut self, e: V) -> V {
        let one = self.c(1.0);
        let u = self.add(one, e);
        let lnu = self.un(UnaryFn::Log, u);
        let um1 = self.sub(u, one);
        let t = self.mul(lnu, e);
        let general = self.div(t, um1);
        let tiny = self.bin(BinaryFn::Equal, u, one);
        self.sel(tiny, e, general)
    }

    /// Wraps an exact integer value to int8 or uint8 (two's complement), as
    /// the interpreter does; other types pass through.
    fn wrap(&mut self, v: V, t: DataType) -> V {
        let lo = match t {
            DataType::Int8 => -128.0,
            DataType::Uint8 => 0.0,
            _ => return v,
        };
        // v - 256 * floor((v - lo) / 256), exact in f32 for |v| < 2^24.
        let l = self.c(lo);
        let m = self.c(256.0);
        let shifted = self.sub(v, l);
        let q = self.div(shifted, m);
        let f = self.un(UnaryFn::Floor, q);
        let k = self.mul(f, m);
        self.sub(v, k)
    }

    /// The expression whose result is `v`.
    fn done(mut self, v: V) -> Expr {
        if v != self.e.result() {
            // Make `v` the last node without changing it.
            self.push(ExprNode::Select(v, v, v));
        }
        self.e
    }
}

/// Whether kernels compute exactly on this type (floats; the 8-bit integers).
fn computable(t: DataType) -> bool {
    t.is_float() || matches!(t, DataType::Int8 | DataType::Uint8)
}

fn need_computable(t: DataType) -> Result<(), String> {
    if computable(t) {
        Ok(())
    } else {
        Err(format!(
            "{t} operands: kernels compute in f32, which holds integers exactly only up to 2^24, \
             so arithmetic, comparisons and selections on 32- and 64-bit integers are not exact there"
        ))
    }
}

/// Whether operand `id` is an integer constant whose every value lies
/// strictly between -2^24 and 2^24. A comparison with such a constant is
/// exact in f32 whatever the other operand: an integer of magnitude up to
/// 2^24 converts exactly, and a larger one converts (rounding is monotone)
/// to a value of magnitude at least 2^24, on the same side of every such
/// constant as the integer itself, and equal to none of them.
fn small_int_constant(graph: &Graph, id: OperandId) -> bool {
    const LIMIT: i128 = 1 << 24;
    match &graph.operand(id).kind {
        OperandKind::Constant(t) => match t.values() {
            Values::Int(v) => v.iter().all(|x| x.abs() < LIMIT),
            Values::Float(_) => false,
        },
        _ => false,
    }
}

/// Why the f32 kernels cannot compute `op` exactly (so that it becomes a
/// host kernel), or `None` when they can. The one place that decides; the
/// module documentation lists the cases.
fn host_reason(graph: &Graph, op: &Op) -> Option<String> {
    let t_of = |id: OperandId| graph.desc(id).data_type;
    let result = match op {
        Op::Binary { kind, a, .. } => {
            let t = t_of(*a);
            need_computable(t).and_then(|()| {
                if *kind == BinaryOp::Pow && !t.is_float() {
                    Err(format!("pow on {t}: exact integer powers do not fit f32"))
                } else {
                    Ok(())
                }
            })
        }
        Op::Compare { a, b, .. } if [*a, *b].iter().any(|&id| small_int_constant(graph, id)) => Ok(()),
        Op::Compare { a, .. } => need_computable(t_of(*a)),
        Op::Unary { kind, input } if *kind != UnaryOp::Identity => need_computable(t_of(*input)),
        Op::Clamp { input, .. } | Op::Prelu { input, .. } => need_computable(t_of(*input)),
        Op::Where { true_value, .. } => need_computable(t_of(*true_value)),
        Op::Cast { input, data_type } => cast_rule(t_of(*input), *data_type).map(|_| ()),
        Op::Pool2d { kind: PoolOp::Max, input, .. } => need_computable(t_of(*input)),
        Op::Reduce { kind, input, .. } => {
            let t = t_of(*input);
            match kind {
                ReduceOp::Max | ReduceOp::Min => need_computable(t),
                _ if !t.is_float() => Err(format!(
                    "{} on {t}: kernels accumulate in f32, which holds integers exactly only up to 2^24",
                    kind.name()
                )),
                _ => Ok(()),
            }
        }
        Op::Resample2d { input, options } if options.mode == InterpolationMode::Linear && !t_of(*input).is_float() => {
            Err(format!(
                "linear resampling of {}: the result is rounded to an integer, and an f32 \
                 interpolation can round differently from the exact one at ties",
                t_of(*input)
            ))
        }
        Op::Pad { input, beginning_padding, ending_padding, options }
            if options.mode == PaddingMode::Constant
                && beginning_padding.iter().chain(ending_padding).any(|&p| p != 0) =>
        {
            pad_fill(t_of(*input), options.value).map(|_| ())
        }
        _ => Ok(()),
    };
    result.err()
}

/// `x` rounded to a value of data type `t` (floats; used for bounds and
/// fills that are stored unchanged), as f32.
fn round_to(t: DataType, x: f64) -> f32 {
    match t {
        DataType::Float16 => f16::from_f64(x).to_f32(),
        _ => x as f32,
    }
}

/// How a cast between two data types is lowered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CastRule {
    /// Same type: a byte copy.
    Copy,
    /// Load as f32, store converted: exact for every float source or
    /// target and for int8/uint8 sources whose values the target holds.
    Convert,
    /// int8 <-> uint8: converted and wrapped modulo 256 (exact).
    Wrap,
}

/// The rule for a cast `from -> to`, or why it is not lowered:
/// - the same type: a byte copy;
/// - to a float type, or from a float type: load/convert/store (float to
///   integer truncates toward zero and saturates, NaN giving 0; integer to
///   float rounds to nearest, from the value itself);
/// - from int8/uint8 to an integer type that holds every source value
///   (uint8 to any integer type, int8 to int32/int64): exact;
/// - int8 <-> uint8: exact, wrapping modulo 256;
/// - every other integer-to-integer cast (from a 32/64-bit integer, or
///   int8 to uint32/uint64, which wraps beyond 2^24) is unsupported.
pub fn cast_rule(from: DataType, to: DataType) -> Result<CastRule, String> {
    use DataType::*;
    if from == to {
        return Ok(CastRule::Copy);
    }
    if from.is_float() || to.is_float() {
        return Ok(CastRule::Convert);
    }
    match (from, to) {
        (Uint8, _) | (Int8, Int32 | Int64) if to != Int8 => Ok(CastRule::Convert),
        (Int8, Uint8) | (Uint8, Int8) => Ok(CastRule::Wrap),
        _ => Err(format!(
            "cast {from} -> {to}: kernels compute in f32, which holds integers exactly only up to 2^24, \
             and this integer cast needs the exact value (it may wrap)"
        )),
    }
}

// ---------------------------------------------------------------------------
// The lowering state.

struct Lowerer<'g> {
    graph: &'g Graph,
    program: Program,
    /// Every operand's memory, once known.
    vals: Vec<Option<Val>>,
    /// The output buffers of each graph-output operand, in output order.
    outputs: HashMap<OperandId, Vec<BufferId>>,
    unsupported: Vec<Unsupported>,
    options: LowerOptions,
}

type R = Result<(), String>;

fn dims(d: &OperandDescriptor) -> Vec<usize> {
    d.shape.dims().iter().map(|&x| x as usize).collect()
}

impl<'g> Lowerer<'g> {
    fn new(graph: &'g Graph, options: LowerOptions) -> Self {
        let mut l = Lowerer {
            graph,
            program: Program::default(),
            vals: vec![None; graph.operands().len()],
            outputs: HashMap::new(),
            unsupported: Vec::new(),
            options,
        };
        for &id in graph.inputs() {
            let d = graph.desc(id);
            let name = graph.input_name(id).unwrap_or_default().to_string();
            let buf = l.program.add_buffer(BufferKind::Input(name), d.data_type, d.shape.element_count());
            l.vals[id.index()] = Some(Val { buf, shape: dims(d), dtype: d.data_type });
        }
        for (name, id) in graph.outputs() {
            let d = graph.desc(*id);
            let buf = l.program.add_buffer(BufferKind::Output(name.clone()), d.data_type, d.shape.element_count());
            l.outputs.entry(*id).or_default().push(buf);
        }
        l
    }

    /// The memory of operand `id` (constants get their buffer on first use).
    fn val(&mut self, id: OperandId) -> Val {
        if let Some(v) = &self.vals[id.index()] {
            return v.clone();
        }
        let operand = self.graph.operand(id);
        let d = &operand.desc;
        let kind = match &operand.kind {
            OperandKind::Constant(t) => BufferKind::Constant(t.clone()),
            // Not reached for a graph in execution order; a scratch buffer
            // keeps the lowering total.
            _ => BufferKind::Scratch { offset: 0 },
        };
        let buf = self.program.add_buffer(kind, d.data_type, d.shape.element_count());
        let v = Val { buf, shape: dims(d), dtype: d.data_type };
        self.vals[id.index()] = Some(v.clone());
        v
    }

    fn desc(&self, id: OperandId) -> &'g OperandDescriptor {
        self.graph.desc(id)
    }

    /// The memory a node writes its result `id` to: its (first) output
    /// buffer if it is a graph output, else a new scratch buffer.
    fn dest(&mut self, id: OperandId) -> Val {
        let d = self.desc(id);
        let buf = match self.outputs.get(&id) {
            Some(bufs) => bufs[0],
            None => self.program.add_buffer(BufferKind::Scratch { offset: 0 }, d.data_type, d.shape.element_count()),
        };
        let v = Val { buf, shape: dims(d), dtype: d.data_type };
        self.vals[id.index()] = Some(v.clone());
        v
    }

    /// A new scratch buffer.
    fn scratch(&mut self, dtype: DataType, shape: &[usize]) -> Val {
        let len = shape.iter().product();
        let buf = self.program.add_buffer(BufferKind::Scratch { offset: 0 }, dtype, len);
        Val { buf, shape: shape.to_vec(), dtype }
    }

    /// Result `id` is `src`'s memory seen with `id`'s shape: an alias, or a
    /// copy if `id` is a graph output.
    fn alias(&mut self, id: OperandId, src: &Val) {
        let d = self.desc(id);
        match self.outputs.get(&id) {
            Some(bufs) => {
                let out = Val { buf: bufs[0], shape: dims(d), dtype: d.data_type };
                self.copy(src, &out);
                self.vals[id.index()] = Some(out);
            }
            None => self.vals[id.index()] = Some(src.view(&dims(d))),
        }
    }

    /// A byte copy of `src` into `dst` (same type and element count).
    fn copy(&mut self, src: &Val, dst: &Val) {
        let n = [src.len()];
        let (s, d) = (src.view(&n), dst.view(&n));
        self.map(n.to_vec(), vec![ident(&s)], Expr::load(0), ident(&d));
    }

    /// Graph outputs that name an operand more than once get copies.
    fn copy_to_extra_outputs(&mut self, node: &Node) {
        for &o in &node.outputs {
            let Some(bufs) = self.outputs.get(&o).cloned() else { continue };
            let Some(v) = self.vals[o.index()].clone() else { continue };
            for &b in &bufs[1..] {
                let dst = Val { buf: b, ..v.clone() };
                self.copy(&v, &dst);
            }
        }
    }

    fn map(&mut self, domain: Vec<usize>, inputs: Vec<Access>, expr: Expr, out: Access) {
        self.program.kernels.push(Kernel::Map { domain, inputs, expr, out });
    }

    /// `node` as one [`Kernel::Host`]: its operands renumbered to the
    /// kernel's inputs, its results written to their destinations.
    fn host(&mut self, node: &Node) {
        let mut op = node.op.clone();
        let mut inputs = Vec::new();
        for (n, (_, id)) in op.inputs_mut().into_iter().enumerate() {
            let v = self.val(*id);
            inputs.push(HostOperand { buffer: v.buf, desc: self.desc(*id).clone() });
            *id = OperandId(n as u32);
        }
        let outputs = node
            .outputs
            .iter()
            .map(|&o| HostOperand { buffer: self.dest(o).buf, desc: self.desc(o).clone() })
            .collect();
        self.program.kernels.push(Kernel::Host(HostKernel { op, inputs, outputs }));
    }

    /// One Map over the output's shape: the inputs broadcast to it, loaded
    /// as values `0..n`, and `f` builds the result.
    fn elementwise(&mut self, out: OperandId, ins: &[OperandId], f: impl FnOnce(&mut E, &[V]) -> V) {
        let shape = dims(self.desc(out));
        let vals: Vec<Val> = ins.iter().map(|&i| self.val(i)).collect();
        let accesses = vals.iter().map(|v| bcast(v, &shape)).collect();
        let mut e = E::new();
        let loads: Vec<V> = (0..vals.len() as u32).map(|n| e.load(n)).collect();
        let r = f(&mut e, &loads);
        let expr = e.done(r);
        let y = self.dest(out);
        self.map(shape, accesses, expr, ident(&y));
    }

    // -----------------------------------------------------------------------
    // Nodes.

    fn node(&mut self, node: &Node) -> R {
        let out = node.outputs.first().copied().ok_or("the node has no outputs")?;
        let t_of = |id: OperandId| self.desc(id).data_type;
        match &node.op {
            Op::Binary { kind, a, b } => self.binary(*kind, *a, *b, out),
            Op::Compare { kind, a, b } => {
                let kind = *kind;
                self.elementwise(out, &[*a, *b], |e, x| {
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
            Op::Logical { kind, a, b } => {
                let kind = *kind;
                self.elementwise(out, &[*a, *b], |e, x| {
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
            Op::Unary { kind, input } => self.unary(*kind, *input, out),
            Op::Clamp { input, min_value, max_value } => self.clamp(*input, *min_value, *max_value, out),
            Op::Elu { input, alpha } => {
                let alpha = *alpha as f32;
                self.elementwise(out, &[*input], |e, x| {
                    let neg = e.negative(x[0]);
                    let m = e.expm1(x[0]);
                    let a = e.c(alpha);
                    let scaled = e.mul(a, m);
                    e.sel(neg, scaled, x[0])
                });
                Ok(())
            }
            Op::LeakyRelu { input, alpha } => {
                let alpha = *alpha as f32;
                self.elementwise(out, &[*input], |e, x| {
                    let neg = e.negative(x[0]);
                    let a = e.c(alpha);
                    let scaled = e.mul(a, x[0]);
                    e.sel(neg, scaled, x[0])
                });
                Ok(())
            }
            Op::HardSigmoid { input, alpha, beta } => {
                let (alpha, beta) = (*alpha as f32, *beta as f32);
                self.elementwise(out, &[*input], |e, x| {
                    let (a, b) = (e.c(alpha), e.c(beta));
                    let ax = e.mul(a, x[0]);
                    let y = e.add(ax, b);
                    e.clamp(y, Some(0.0), Some(1.0))
                });
                Ok(())
            }
            Op::Linear { input, alpha, beta } => {
                let (alpha, beta) = (*alpha as f32, *beta as f32);
                self.elementwise(out, &[*input], |e, x| {
                    let (a, b) = (e.c(alpha), e.c(beta));
                    let ax = e.mul(a, x[0]);
                    e.add(ax, b)
                });
                Ok(())
            }
            Op::Prelu { input, slope } => {
                let t = t_of(*input);
                self.elementwise(out, &[*input, *slope], |e, x| {
                    let neg = e.negative(x[0]);
                    let p = e.mul(x[1], x[0]);
                    let p = e.wrap(p, t);
                    e.sel(neg, p, x[0])
                });
                Ok(())
            }
            Op::Cast { input, data_type } => {
                let from = t_of(*input);
                match cast_rule(from, *data_type)? {
                    CastRule::Copy => {
                        let x = self.val(*input);
                        self.alias(out, &x);
                    }
                    CastRule::Convert => self.elementwise(out, &[*input], |_, x| x[0]),
                    CastRule::Wrap => {
                        let to = *data_type;
                        self.elementwise(out, &[*input], |e, x| e.wrap(x[0], to));
                    }
                }
                Ok(())
            }
            Op::Where { condition, true_value, false_value } => {
                self.elementwise(out, &[*condition, *true_value, *false_value], |e, x| e.sel(x[0], x[1], x[2]));
                Ok(())
            }
            Op::Conv2d { input, filter, options } => self.conv2d(*input, *filter, options, out),
            Op::ConvTranspose2d { input, filter, options } => self.conv_transpose2d(*input, *filter, options, out),
            Op::Pool2d { kind, input, options } => self.pool2d(*kind, *input, options, out),
            Op::Gemm { a, b, options } => {
                let (va, vb) = (self.val(*a), self.val(*b));
                let y = self.dest(out);
                let (m, n) = (y.shape[0], y.shape[1]);
                let k = if options.a_transpose { va.shape[0] } else { va.shape[1] };
                let a_rows =
                    if options.a_transpose { [Row::axis(2), Row::axis(0)] } else { [Row::axis(0), Row::axis(2)] };
                let b_rows =
                    if options.b_transpose { [Row::axis(1), Row::axis(2)] } else { [Row::axis(2), Row::axis(1)] };
                let mut e = E::new();
                let mut r = e.acc();
                if options.alpha != 1.0 {
                    let alpha = e.c(options.alpha as f32);
                    r = e.mul(alpha, r);
                }
                let mut epilogue_inputs = vec![];
                if let Some(c) = options.c {
                    let vc = self.val(c);
                    epilogue_inputs.push(bcast(&vc, &[m, n]));
                    let mut cv = e.load(0);
                    if options.beta != 1.0 {
                        let beta = e.c(options.beta as f32);
                        cv = e.mul(beta, cv);
                    }
                    r = e.add(r, cv);
                }
                self.program.kernels.push(Kernel::Gemm {
                    domain: vec![m, n, k],
                    a: access(&va, 3, &a_rows, None),
                    b: access(&vb, 3, &b_rows, None),
                    epilogue_inputs,
                    epilogue: e.done(r),
                    out: ident(&y),
                });
                Ok(())
            }
            Op::Matmul { a, b } => {
                let (va, vb) = (self.val(*a), self.val(*b));
                let y = self.dest(out);
                let nb = y.rank() - 2;
                let (m, n, k) = (y.shape[nb], y.shape[nb + 1], va.shape[va.rank() - 1]);
                let batch = &y.shape[..nb];
                let operand = |v: &Val, last2: [usize; 2]| {
                    let vb = v.rank() - 2;
                    let lead = nb - vb;
                    let mut axes: Vec<Option<usize>> = (0..vb)
                        .map(|j| if v.shape[j] == 1 && batch[lead + j] != 1 { None } else { Some(lead + j) })
                        .collect();
                    axes.extend(last2.map(Some));
                    placed(v, nb + 3, &axes)
                };
                let mut domain = batch.to_vec();
                domain.extend([m, n, k]);
                self.program.kernels.push(Kernel::Gemm {
                    domain,
                    a: operand(&va, [nb, nb + 2]),
                    b: operand(&vb, [nb + 2, nb + 1]),
                    epilogue_inputs: vec![],
                    epilogue: Expr::acc(),
                    out: ident(&y),
                });
                Ok(())
            }
            Op::BatchNormalization { input, mean, variance, options } => {
                let axis = options.axis as usize;
                let eps = options.epsilon as f32;
                let shape = dims(self.desc(out));
                let rank = shape.len();
                let x = self.val(*input);
                let mut inputs = vec![ident(&x)];
                for id in [Some(*mean), Some(*variance), options.scale, options.bias].into_iter().flatten() {
                    let v = self.val(id);
                    inputs.push(placed(&v, rank, &[Some(axis)]));
                }
                let mut e = E::new();
                let (xv, mv, vv) = (e.load(0), e.load(1), e.load(2));
                let mut next = 3;
                let eps = e.c(eps);
                let centered = e.sub(xv, mv);
                let ve = e.add(vv, eps);
                let sd = e.un(UnaryFn::Sqrt, ve);
                let mut r = e.div(centered, sd);
                if options.scale.is_some() {
                    let s = e.load(next);
                    next += 1;
                    r = e.mul(s, r);
                }
                if options.bias.is_some() {
                    let b = e.load(next);
                    r = e.add(r, b);
                }
                let y = self.dest(out);
                self.map(shape, inputs, e.done(r), ident(&y));
                Ok(())
            }
            Op::LayerNormalization { input, options } => {
                let rank = self.desc(*input).shape.rank();
                let axes: Vec<usize> = resolved_layer_norm_axes(options, rank).iter().map(|&a| a as usize).collect();
                // scale/bias dimension i lies on input axis axes[i].
                let params: Vec<Option<usize>> = axes.iter().map(|&a| Some(a)).collect();
                self.normalize(*input, &axes, options.scale, options.bias, &params, options.epsilon, out);
                Ok(())
            }
            Op::InstanceNormalization { input, options } => {
                let (h, w) = spatial_axes(options.layout);
                let c = channel_axis(options.layout);
                self.normalize(*input, &[h, w], options.scale, options.bias, &[Some(c)], options.epsilon, out);
                Ok(())
            }
            Op::Softmax { input, axis } => {
                let x = self.val(*input);
                let plan = RedPlan::new(&x.shape, &[*axis as usize]);
                let max = self.reduce_scratch(&x, &plan, Combine::Max, |_, v| v[0], |e| e.acc(), vec![]);
                let sum = self.reduce_scratch(
                    &x,
                    &plan,
                    Combine::Sum,
                    |e, v| {
                        let d = e.sub(v[0], v[1]);
                        e.un(UnaryFn::Exp, d)
                    },
                    |e| e.acc(),
                    vec![max.clone()],
                );
                let y = self.dest(out);
                let (m_acc, s_acc) = (plan.kept_on_input(&max, x.rank()), plan.kept_on_input(&sum, x.rank()));
                let mut e = E::new();
                let (xv, mv, sv) = (e.load(0), e.load(1), e.load(2));
                let d = e.sub(xv, mv);
                let ex = e.un(UnaryFn::Exp, d);
                let r = e.div(ex, sv);
                self.map(x.shape.clone(), vec![ident(&x), m_acc, s_acc], e.done(r), ident(&y));
                Ok(())
            }
            Op::Reduce { kind, input, options } => {
                let x = self.val(*input);
                let axes: Vec<usize> = resolved_reduce_axes(options, x.rank()).iter().map(|&a| a as usize).collect();
                self.reduce(*kind, &x, &axes, out)
            }
            Op::Reshape { input, .. } => {
                let x = self.val(*input);
                self.alias(out, &x);
                Ok(())
            }
            Op::Transpose { input, permutation } => {
                let x = self.val(*input);
                let perm = resolved_permutation(permutation, x.rank());
                // Moving only size-1 axes keeps the element order.
                let moved: Vec<u32> = perm.iter().copied().filter(|&p| x.shape[p as usize] != 1).collect();
                if moved.windows(2).all(|w| w[0] < w[1]) {
                    self.alias(out, &x);
                    return Ok(());
                }
                let y = self.dest(out);
                // Output axis i is input axis perm[i].
                let mut axes = vec![None; x.rank()];
                for (i, &p) in perm.iter().enumerate() {
                    axes[p as usize] = Some(i);
                }
                self.map(y.shape.clone(), vec![placed(&x, y.rank(), &axes)], Expr::load(0), ident(&y));
                Ok(())
            }
            Op::Concat { inputs, .. } if inputs.len() == 1 => {
                let x = self.val(inputs[0]);
                self.alias(out, &x);
                Ok(())
            }
            Op::Split { input, .. } if node.outputs.len() == 1 => {
                let x = self.val(*input);
                self.alias(out, &x);
                Ok(())
            }
            Op::Concat { inputs, axis } => {
                let axis = *axis as usize;
                let y = self.dest(out);
                let mut at = 0isize;
                for &i in inputs {
                    let x = self.val(i);
                    let rows: Vec<Row> =
                        (0..y.rank()).map(|j| if j == axis { Row::axis(j).offset(at) } else { Row::axis(j) }).collect();
                    self.map(x.shape.clone(), vec![ident(&x)], Expr::load(0), access(&y, x.rank(), &rows, None));
                    at += x.shape[axis] as isize;
                }
                Ok(())
            }
            Op::Split { input, axis, .. } => {
                let axis = *axis as usize;
                let x = self.val(*input);
                let mut at = 0isize;
                for &o in &node.outputs {
                    let y = self.dest(o);
                    let rows: Vec<Row> =
                        (0..x.rank()).map(|j| if j == axis { Row::axis(j).offset(at) } else { Row::axis(j) }).collect();
                    self.map(y.shape.clone(), vec![access(&x, y.rank(), &rows, None)], Expr::load(0), ident(&y));
                    at += y.shape[axis] as isize;
                }
                Ok(())
            }
            Op::Slice { input, starts, strides, .. } => {
                let x = self.val(*input);
                if starts.iter().all(|&s| s == 0) && dims(self.desc(out)) == x.shape {
                    self.alias(out, &x);
                    return Ok(());
                }
                let steps = resolved_slice_strides(strides, x.rank());
                let rows: Vec<Row> = (0..x.rank())
                    .map(|j| Row { base: starts[j] as isize, terms: vec![(j, steps[j] as isize)] })
                    .collect();
                let y = self.dest(out);
                self.map(y.shape.clone(), vec![access(&x, y.rank(), &rows, None)], Expr::load(0), ident(&y));
                Ok(())
            }
            Op::Expand { input, .. } => {
                let x = self.val(*input);
                let shape = dims(self.desc(out));
                if shape.iter().product::<usize>() == x.len() {
                    // Only size-1 dimensions: the same elements in the same order.
                    self.alias(out, &x);
                } else {
                    let y = self.dest(out);
                    self.map(shape.clone(), vec![bcast(&x, &shape)], Expr::load(0), ident(&y));
                }
                Ok(())
            }
            Op::Gather { input, indices, axis } => {
                let (x, idx) = (self.val(*input), self.val(*indices));
                let y = self.dest(out);
                self.gather(&x, *axis as usize, &idx, &y);
                Ok(())
            }
            Op::Pad { input, beginning_padding, ending_padding, options } => {
                let x = self.val(*input);
                if beginning_padding.iter().chain(ending_padding).all(|&p| p == 0) {
                    self.alias(out, &x);
                    return Ok(());
                }
                let y = self.dest(out);
                let begin: Vec<usize> = beginning_padding.iter().map(|&b| b as usize).collect();
                let end: Vec<usize> = ending_padding.iter().map(|&b| b as usize).collect();
                match options.mode {
                    PaddingMode::Constant => {
                        let fill = pad_fill(x.dtype, options.value)?;
                        let rows: Vec<Row> = (0..x.rank()).map(|j| Row::axis(j).offset(-(begin[j] as isize))).collect();
                        self.map(
                            y.shape.clone(),
                            vec![access(&x, y.rank(), &rows, Some(fill))],
                            Expr::load(0),
                            ident(&y),
                        );
                    }
                    mode => self.pad_regions(&x, &y, &begin, &end, mode),
                }
                Ok(())
            }
            Op::Resample2d { input, options } => {
                let x = self.val(*input);
                let y = self.dest(out);
                let axes = options.axes.map(|a| a as usize);
                match options.mode {
                    InterpolationMode::NearestNeighbor => {
                        let picks =
                            axes.map(|a| kiln_ir::interp::nearest_indices(x.shape[a] as u32, y.shape[a] as u32));
                        self.resample_nearest(&x, &y, axes, &picks);
                    }
                    InterpolationMode::Linear => self.resample_linear(&x, &y, axes),
                }
                Ok(())
            }
        }
    }

    fn binary(&mut self, kind: BinaryOp, a: OperandId, b: OperandId, out: OperandId) -> R {
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

    fn unary(&mut self, kind: UnaryOp, input: OperandId, out: OperandId) -> R {
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
            UnaryOp::Sigmoid => self.elementwise(out, &[input], |e, x| {
                // With t = e^-|x| (never overflows): 1 / (1 + t) for x >= 0,
                // t / (1 + t) for x < 0, so tiny results keep their precision.
                let one = e.c(1.0);
                let a = e.un(UnaryFn::Abs, x[0]);
                let na = e.un(UnaryFn::Neg, a);
                let t = e.un(UnaryFn::Exp, na);
                let d = e.add(one, t);
                let neg = e.negative(x[0]);
                let num = e.sel(neg, t, one);
                e.div(num, d)
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
            UnaryOp::Softplus => self.elementwise(out, &[input], |e, x| {
                // max(x, 0) + ln(1 + e^-|x|): no overflow, accurate tails.
                let zero = e.c(0.0);
                let m = e.bin(BinaryFn::Max, x[0], zero);
                let a = e.un(UnaryFn::Abs, x[0]);
                let na = e.un(UnaryFn::Neg, a);
                let ex = e.un(UnaryFn::Exp, na);
                let l = e.log1p(ex);
                e.add(m, l)
            }),
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

    fn clamp(&mut self, input: OperandId, lo: Option<Number>, hi: Option<Number>, out: OperandId) -> R {
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

    // -----------------------------------------------------------------------
    // Reductions and normalizations.

    /// A Reduce over `plan` of `x` (input 0, accessed over the whole
    /// domain) and `extra` kept-shaped values (inputs 1.., broadcast over
    /// the reduced axes), into the kept-shaped `out`.
    #[allow(clippy::too_many_arguments)]
    fn reduce_into(
        &mut self,
        x: &Val,
        plan: &RedPlan,
        combine: Combine,
        element: impl FnOnce(&mut E, &[V]) -> V,
        finish: impl FnOnce(&mut E) -> V,
        extra: Vec<Val>,
        out: &Val,
    ) {
        let rank = plan.domain.len();
        let mut inputs = vec![plan.input_access(x)];
        inputs.extend(extra.iter().map(|v| plan.kept_access(v, rank)));
        let mut e = E::new();
        let loads: Vec<V> = (0..inputs.len() as u32).map(|n| e.load(n)).collect();
        let r = element(&mut e, &loads);
        let element = e.done(r);
        let mut f = E::new();
        let r = finish(&mut f);
        let finish = f.done(r);
        self.program.kernels.push(Kernel::Reduce {
            domain: plan.domain.clone(),
            reduced: plan.reduced.len(),
            inputs,
            element,
            combine,
            finish,
            finish_inputs: vec![],
            out: ident(&out.view(&plan.kept_shape())),
        });
    }

    /// [`Self::reduce_into`] a new f32 scratch buffer of the kept shape.
    fn reduce_scratch(
        &mut self,
        x: &Val,
        plan: &RedPlan,
        combine: Combine,
        element: impl FnOnce(&mut E, &[V]) -> V,
        finish: impl FnOnce(&mut E) -> V,
        extra: Vec<Val>,
    ) -> Val {
        let out = self.scratch(DataType::Float32, &plan.kept_shape());
        self.reduce_into(x, plan, combine, element, finish, extra, &out);
        out
    }

    fn reduce(&mut self, kind: ReduceOp, x: &Val, axes: &[usize], out: OperandId) -> R {
        let plan = RedPlan::new(&x.shape, axes);
        if kind == ReduceOp::LogSumExp {
            // max + ln Σ exp(x - max); an infinite max is the result itself.
            let max = self.reduce_scratch(x, &plan, Combine::Max, |_, v| v[0], |e| e.acc(), vec![]);
            let sum = self.reduce_scratch(
                x,
                &plan,
                Combine::Sum,
                |e, v| {
                    let d = e.sub(v[0], v[1]);
                    e.un(UnaryFn::Exp, d)
                },
                |e| e.acc(),
                vec![max.clone()],
            );
            let y = self.dest(out).view(&plan.kept_shape());
            let mut e = E::new();
            let (m, s) = (e.load(0), e.load(1));
            let l = e.un(UnaryFn::Log, s);
            let r = e.add(m, l);
            let a = e.un(UnaryFn::Abs, m);
            let inf = e.c(f32::INFINITY);
            let infinite = e.bin(BinaryFn::Equal, a, inf);
            let r = e.sel(infinite, m, r);
            self.map(y.shape.clone(), vec![ident(&max), ident(&sum)], e.done(r), ident(&y));
            return Ok(());
        }
        let combine = match kind {
            ReduceOp::Max => Combine::Max,
            ReduceOp::Min => Combine::Min,
            ReduceOp::Product => Combine::Product,
            _ => Combine::Sum,
        };
        let y = self.dest(out);
        self.reduce_into(
            x,
            &plan,
            combine,
            |e, v| match kind {
                ReduceOp::L1 => e.un(UnaryFn::Abs, v[0]),
                ReduceOp::L2 | ReduceOp::SumSquare => e.mul(v[0], v[0]),
                _ => v[0],
            },
            |e| {
                let acc = e.acc();
                match kind {
                    ReduceOp::Mean => {
                        let n = e.count();
                        e.div(acc, n)
                    }
                    ReduceOp::L2 => e.un(UnaryFn::Sqrt, acc),
                    ReduceOp::LogSum => e.un(UnaryFn::Log, acc),
                    _ => acc,
                }
            },
            vec![],
            &y,
        );
        Ok(())
    }

    /// `(x - mean) / sqrt(variance + epsilon) * scale + bias` with the
    /// population mean and variance over `axes`; `scale`/`bias` dimension
    /// `i` lies on input axis `params[i]`.
    #[allow(clippy::too_many_arguments)]
    fn normalize(
        &mut self,
        input: OperandId,
        axes: &[usize],
        scale: Option<OperandId>,
        bias: Option<OperandId>,
        params: &[Option<usize>],
        epsilon: f64,
        out: OperandId,
    ) {
        let x = self.val(input);
        let plan = RedPlan::new(&x.shape, axes);
        let mean_finish = |e: &mut E| {
            let (acc, n) = (e.acc(), e.count());
            e.div(acc, n)
        };
        let mean = self.reduce_scratch(&x, &plan, Combine::Sum, |_, v| v[0], mean_finish, vec![]);
        let var = self.reduce_scratch(
            &x,
            &plan,
            Combine::Sum,
            |e, v| {
                let d = e.sub(v[0], v[1]);
                e.mul(d, d)
            },
            mean_finish,
            vec![mean.clone()],
        );
        let rank = x.rank();
        let mut inputs = vec![ident(&x), plan.kept_on_input(&mean, rank), plan.kept_on_input(&var, rank)];
        let mut e = E::new();
        let (xv, mv, vv) = (e.load(0), e.load(1), e.load(2));
        let eps = e.c(epsilon as f32);
        let centered = e.sub(xv, mv);
        let ve = e.add(vv, eps);
        let sd = e.un(UnaryFn::Sqrt, ve);
        let mut r = e.div(centered, sd);
        if let Some(s) = scale {
            let v = self.val(s);
            inputs.push(placed(&v, rank, params));
            let sv = e.load(inputs.len() as u32 - 1);
            r = e.mul(sv, r);
        }
        if let Some(b) = bias {
            let v = self.val(b);
            inputs.push(placed(&v, rank, params));
            let bv = e.load(inputs.len() as u32 - 1);
            r = e.add(r, bv);
        }
        let y = self.dest(out);
        self.map(x.shape.clone(), inputs, e.done(r), ident(&y));
    }

    // -----------------------------------------------------------------------
    // Convolutions and pooling.

    fn conv2d(&mut self, input: OperandId, filter: OperandId, o: &Conv2dOptions, out: OperandId) -> R {
        let (x, w) = (self.val(input), self.val(filter));
        let y = self.dest(out);
        let nhwc = o.input_layout == InputLayout::Nhwc;
        let (ha, wa) = spatial_axes(o.input_layout);
        let (n, c) = (x.shape[0], x.shape[channel_axis(o.input_layout)]);
        let (ih, iw) = (x.shape[ha] as isize, x.shape[wa] as isize);
        let (oh, ow) = (y.shape[ha], y.shape[wa]);
        let (oc, icg, kh, kw) =
            conv2d_filter_dims(o.filter_layout, &kiln_ir::Shape(w.shape.iter().map(|&d| d as u32).collect()));
        let (oc, icg, kh, kw) = (oc as usize, icg as usize, kh as usize, kw as usize);
        let [sh, sw] = o.strides.map(|s| s as isize);
        let [dh, dw] = o.dilations.map(|d| d as isize);
        let (pt, pl) = (o.padding[0] as isize, o.padding[2] as isize);
        let groups = o.groups as usize;
        let input_rows = |rows: [Row; 4]| -> Vec<Row> {
            let [rn, rc, rh, rw] = rows;
            if nhwc { vec![rn, rh, rw, rc] } else { vec![rn, rc, rh, rw] }
        };
        // Whether some window position falls into the padding.
        let needs_guard = pt > 0
            || pl > 0
            || (oh as isize - 1) * sh + (kh as isize - 1) * dh - pt >= ih
            || (ow as isize - 1) * sw + (kw as isize - 1) * dw - pl >= iw;
        let guard = needs_guard.then_some(0.0);
        let p = oh * ow;
        let window_reduce = self.options.direct_convolution
            && !nhwc
            && (kh > 1 || kw > 1)
            && kh * kw <= 64
            && (sw == 1 || sw == 2)
            && ow >= 12
            && [x.dtype, w.dtype, y.dtype].iter().all(|&t| t == DataType::Float32);

        if groups == 1 && !window_reduce {
            // im2col (unless the filter is 1x1 with unit strides and no
            // padding) + one gemm whose epilogue adds the bias.
            // The im2col K order follows the filter layout, so the filter
            // is a [OC, K] or [K, OC] matrix in place.
            let k = c * kh * kw;
            let filter_oc_first = matches!(o.filter_layout, Conv2dFilterLayout::Oihw | Conv2dFilterLayout::Ohwi);
            let wm = if filter_oc_first { w.view(&[oc, k]) } else { w.view(&[k, oc]) };
            let direct = kh == 1 && kw == 1 && sh == 1 && sw == 1 && guard.is_none();
            // `cols` is x itself as [N, P, C] (nhwc) / [N, C, P] (nchw), or
            // im2col [N, P, K] (nhwc: rows of A) / [N, K, P] (nchw: rows of
            // B, so that the copy and the packing both run along P).
            let cols = if direct {
                x.view(&if nhwc { [n, p, c] } else { [n, c, p] })
            } else {
                let kc_first = matches!(o.filter_layout, Conv2dFilterLayout::Oihw | Conv2dFilterLayout::Ihwo);
                // Domain [N, OH, OW, K1, K2, K3] (nhwc) or [N, K1, K2, K3, OH, OW]
                // (nchw), with (K1, K2, K3) = (C, KH, KW) or (KH, KW, C).
                let (k0, aoh, aow) = if nhwc { (3, 1, 2) } else { (1, 4, 5) };
                let (ac, aky, akx, kdims) =
                    if kc_first { (k0, k0 + 1, k0 + 2, [c, kh, kw]) } else { (k0 + 2, k0, k0 + 1, [kh, kw, c]) };
                let domain = if nhwc {
                    vec![n, oh, ow, kdims[0], kdims[1], kdims[2]]
                } else {
                    vec![n, kdims[0], kdims[1], kdims[2], oh, ow]
                };
                let rows = input_rows([
                    Row::axis(0),
                    Row::axis(ac),
                    Row { base: -pt, terms: vec![(aoh, sh), (aky, dh)] },
                    Row { base: -pl, terms: vec![(aow, sw), (akx, dw)] },
                ]);
                let col = self.scratch(x.dtype, &domain);
                self.map(domain, vec![access(&x, 6, &rows, guard)], Expr::load(0), ident(&col));
                col.view(&if nhwc { [n, p, k] } else { [n, k, p] })
            };
            let mut e = E::new();
            let mut r = e.acc();
            let mut epilogue_inputs = vec![];
            // nchw: domain [N, OC, P, K], out [N, OC, P]; nhwc: [N, P, OC, K], out [N, P, OC].
            let (a_oc, a_p, a_k) = if nhwc { (2, 1, 3) } else { (1, 2, 3) };
            if let Some(b) = o.bias {
                let vb = self.val(b);
                epilogue_inputs.push(placed(&vb, 3, &[Some(a_oc)]));
                let bv = e.load(0);
                r = e.add(r, bv);
            }
            let wm_rows =
                if filter_oc_first { [Row::axis(a_oc), Row::axis(a_k)] } else { [Row::axis(a_k), Row::axis(a_oc)] };
            let wm_access = access(&wm, 4, &wm_rows, None);
            let cols_access = if !nhwc {
                access(&cols, 4, &[Row::axis(0), Row::axis(a_k), Row::axis(a_p)], None)
            } else {
                access(&cols, 4, &[Row::axis(0), Row::axis(a_p), Row::axis(a_k)], None)
            };
            let (a, b, domain, out_shape) = if nhwc {
                (cols_access, wm_access, vec![n, p, oc, k], [n, p, oc])
            } else {
                (wm_access, cols_access, vec![n, oc, p, k], [n, oc, p])
            };
            self.program.kernels.push(Kernel::Gemm {
                domain,
                a,
                b,
                epilogue_inputs,
                epilogue: e.done(r),
                out: ident(&y.view(&out_shape)),
            });
            return Ok(());
        }

        // Grouped: a reduction over (ICG, KH, KW) for every output element,
        // with the output channel split into (group, channel in group).
        let ocg = oc / groups;
        // Kept axes: nchw [N, G, OCG, OH, OW], nhwc [N, OH, OW, G, OCG]; reduced [ICG, KH, KW].
        let (an, ag, aocg, aoh, aow) = if nhwc { (0, 3, 4, 1, 2) } else { (0, 1, 2, 3, 4) };
        let (aicg, akh, akw) = (5, 6, 7);
        let kept = if nhwc { vec![n, oh, ow, groups, ocg] } else { vec![n, groups, ocg, oh, ow] };
        let mut domain = kept.clone();
        domain.extend([icg, kh, kw]);
        let x_rows = input_rows([
            Row::axis(an),
            Row { base: 0, terms: vec![(ag, icg as isize), (aicg, 1)] },
            Row { base: -pt, terms: vec![(aoh, sh), (akh, dh)] },
            Row { base: -pl, terms: vec![(aow, sw), (akw, dw)] },
        ]);
        let f_logical = [
            Row { base: 0, terms: vec![(ag, ocg as isize), (aocg, 1)] },
            Row::axis(aicg),
            Row::axis(akh),
            Row::axis(akw),
        ];
        let f_rows = conv_filter_rows(o.filter_layout, f_logical);
        let inputs = vec![access(&x, 8, &x_rows, guard), access(&w, 8, &f_rows, None)];
        // The bias, per output channel g*OCG + ocg, is the finish's input.
        let mut e = E::new();
        let (xv, wv) = (e.load(0), e.load(1));
        let r = e.mul(xv, wv);
        let element = e.done(r);
        let mut finish = E::new();
        let mut sum = finish.acc();
        let mut finish_inputs = vec![];
        if let Some(b) = o.bias {
            let vb = self.val(b);
            let channel = Row { base: 0, terms: vec![(ag, ocg as isize), (aocg, 1)] };
            finish_inputs.push(access(&vb, 5, &[channel], None));
            let bv = finish.load(0);
            sum = finish.add(sum, bv);
        }
        self.program.kernels.push(Kernel::Reduce {
            domain,
            reduced: 3,
            inputs,
            element,
            combine: Combine::Sum,
            finish: finish.done(sum),
            finish_inputs,
            out: ident(&y.view(&kept)),
        });
        Ok(())
    }

    /// A transposed convolution as one GEMM per output *phase*: the outputs
    /// `(py + sh*i, px + sw*j)` of one phase `(py, px)` receive exactly the
    /// taps `ky` with `py + pt - ky*dh` divisible by `sh` (likewise `kx`),
    /// each from input row `i + (py + pt - ky*dh) / sh`, so a phase is a
    /// stride-1 correlation of the input with a sub-filter. Per phase: a
    /// GEMM over `[N, G, I, (OCG, J) or (J, OCG), ICG*taps]` writing the
    /// phase's outputs in place (bias in the epilogue); with one tap and
    /// every input coordinate inside the input, the GEMM reads the input
    /// and the filter where they are, else an im2col Map gathers the
    /// phase's windows (zero outside the input) and a Map gathers its
    /// sub-filter. A phase without taps is the bias (or zero).
    fn conv_transpose2d(
        &mut self,
        input: OperandId,
        filter: OperandId,
        o: &ConvTranspose2dOptions,
        out: OperandId,
    ) -> R {
        let (x, w) = (self.val(input), self.val(filter));
        let y = self.dest(out);
        let bias = o.bias.map(|b| self.val(b));
        let nhwc = o.input_layout == InputLayout::Nhwc;
        let (ha, wa) = spatial_axes(o.input_layout);
        let (n, c) = (x.shape[0], x.shape[channel_axis(o.input_layout)]);
        let (ih, iw) = (x.shape[ha] as isize, x.shape[wa] as isize);
        let (oh, ow) = (y.shape[ha], y.shape[wa]);
        let (_, ocg, kh, kw) =
            conv_transpose2d_filter_dims(o.filter_layout, &kiln_ir::Shape(w.shape.iter().map(|&d| d as u32).collect()));
        let (ocg, kh, kw) = (ocg as usize, kh as usize, kw as usize);
        let groups = o.groups as usize;
        let icg = c / groups;
        let [sh, sw] = o.strides.map(|s| s as usize);
        let [dh, dw] = o.dilations.map(|d| d as isize);
        let (pt, pl) = (o.padding[0] as isize, o.padding[2] as isize);
        // Physical rows of the input and filter from logical ones.
        let x_rows = |[rn, rc, rh, rw]: [Row; 4]| if nhwc { vec![rn, rh, rw, rc] } else { vec![rn, rc, rh, rw] };
        let f_rows = |[ri, ro, rh, rw]: [Row; 4]| match o.filter_layout {
            ConvTranspose2dFilterLayout::Iohw => vec![ri, ro, rh, rw],
            ConvTranspose2dFilterLayout::Hwoi => vec![rh, rw, ro, ri],
            ConvTranspose2dFilterLayout::Ohwi => vec![ro, rh, rw, ri],
        };
        for py in 0..sh.min(oh) {
            for px in 0..sw.min(ow) {
                let (pi, pj) = ((oh - py).div_ceil(sh), (ow - px).div_ceil(sw));
                let ty = phase_taps(py as isize + pt, sh as isize, dh, kh);
                let tx = phase_taps(px as isize + pl, sw as isize, dw, kw);
                // GEMM domain [N, G, I, X, Y, K]: (X, Y) = (OCG, J) in nchw
                // (out[oc][j]), (J, OCG) in nhwc (out[j][oc]).
                let (aoc, aj) = if nhwc { (4, 3) } else { (3, 4) };
                let outer = if nhwc { vec![n, groups, pi, pj, ocg] } else { vec![n, groups, pi, ocg, pj] };
                let oc_row = Row { base: 0, terms: vec![(1, ocg as isize), (aoc, 1)] };
                let y_rows = x_rows([
                    Row::axis(0),
                    oc_row.clone(),
                    Row { base: py as isize, terms: vec![(2, sh as isize)] },
                    Row { base: px as isize, terms: vec![(aj, sw as isize)] },
                ]);
                let mut e = E::new();
                let mut epilogue_inputs = vec![];
                let bias_term = bias.as_ref().map(|vb| {
                    epilogue_inputs.push(access(vb, 5, std::slice::from_ref(&oc_row), None));
                    e.load(0)
                });
                let (Some(ty), Some(tx)) = (ty, tx) else {
                    // No tap reaches this phase: the bias, or zero.
                    let r = bias_term.unwrap_or_else(|| e.c(0.0));
                    let out = access(&y, 5, &y_rows, None);
                    self.map(outer, epilogue_inputs, e.done(r), out);
                    continue;
                };
                let taps = ty.count * tx.count;
                let k = icg * taps;
                // Input rows at tap (t, u) of the phase: i + off - t*step.
                let in_y = |ai: usize, at: Option<usize>| Row {
                    base: ty.offset,
                    terms: [(ai, 1)].into_iter().chain(at.map(|a| (a, -ty.step))).collect(),
                };
                let in_x = |aj: usize, au: Option<usize>| Row {
                    base: tx.offset,
                    terms: [(aj, 1)].into_iter().chain(au.map(|a| (a, -tx.step))).collect(),
                };
                let inside = |t: &PhaseTaps, len: usize, extent: isize| {
                    t.offset - (t.count as isize - 1) * t.step >= 0 && len as isize - 1 + t.offset < extent
                };
                let guard = !(inside(&ty, pi, ih) && inside(&tx, pj, iw));
                let chan = |a: usize| Row { base: 0, terms: vec![(1, icg as isize), (a, 1)] };
                // The phase's windows: x itself, or im2col scratch
                // [N, G, ICG, Ty, Tx, I, J] (nchw) / [N, G, I, J, ICG, Ty, Tx] (nhwc).
                let windows = if taps == 1 && !guard {
                    let rows = x_rows([Row::axis(0), chan(5), in_y(2, None), in_x(aj, None)]);
                    access(&x, 6, &rows, None)
                } else {
                    let (shape, [ac, at, au, ai, ajj]) = if nhwc {
                        (vec![n, groups, pi, pj, icg, ty.count, tx.count], [4, 5, 6, 2, 3])
                    } else {
                        (vec![n, groups, icg, ty.count, tx.count, pi, pj], [2, 3, 4, 5, 6])
                    };
                    let cols = self.scratch(x.dtype, &shape);
                    let rows = x_rows([Row::axis(0), chan(ac), in_y(ai, Some(at)), in_x(ajj, Some(au))]);
                    self.map(shape, vec![access(&x, 7, &rows, guard.then_some(0.0))], Expr::load(0), ident(&cols));
                    if nhwc {
                        let v = cols.view(&[n, groups, pi, pj, k]);
                        access(&v, 6, &[Row::axis(0), Row::axis(1), Row::axis(2), Row::axis(3), Row::axis(5)], None)
                    } else {
                        let v = cols.view(&[n, groups, k, pi, pj]);
                        access(&v, 6, &[Row::axis(0), Row::axis(1), Row::axis(5), Row::axis(2), Row::axis(4)], None)
                    }
                };
                // The phase's sub-filter: w itself, or gathered into scratch
                // [G, OCG, ICG, Ty, Tx] (nchw) / [G, ICG, Ty, Tx, OCG] (nhwc).
                let ky_row = |at: Option<usize>| Row {
                    base: ty.first as isize,
                    terms: at.map(|a| (a, ty.tap_step as isize)).into_iter().collect(),
                };
                let kx_row = |au: Option<usize>| Row {
                    base: tx.first as isize,
                    terms: au.map(|a| (a, tx.tap_step as isize)).into_iter().collect(),
                };
                let filter = if taps == 1 {
                    let rows = f_rows([chan(5), Row::axis(aoc), ky_row(None), kx_row(None)]);
                    access(&w, 6, &rows, None)
                } else {
                    let (shape, [ac, ao, at, au]) = if nhwc {
                        (vec![groups, icg, ty.count, tx.count, ocg], [1, 4, 2, 3])
                    } else {
                        (vec![groups, ocg, icg, ty.count, tx.count], [2, 1, 3, 4])
                    };
                    let sub = self.scratch(w.dtype, &shape);
                    let g_chan = Row { base: 0, terms: vec![(0, icg as isize), (ac, 1)] };
                    let rows = f_rows([g_chan, Row::axis(ao), ky_row(Some(at)), kx_row(Some(au))]);
                    self.map(shape, vec![access(&w, 5, &rows, None)], Expr::load(0), ident(&sub));
                    if nhwc {
                        access(&sub.view(&[groups, k, ocg]), 6, &[Row::axis(1), Row::axis(5), Row::axis(aoc)], None)
                    } else {
                        access(&sub.view(&[groups, ocg, k]), 6, &[Row::axis(1), Row::axis(aoc), Row::axis(5)], None)
                    }
                };
                let acc = e.acc();
                let r = match bias_term {
                    Some(b) => e.add(acc, b),
                    None => acc,
                };
                let (a, b) = if nhwc { (windows, filter) } else { (filter, windows) };
                let mut domain = outer.clone();
                domain.push(k);
                self.program.kernels.push(Kernel::Gemm {
                    domain,
                    a,
                    b,
                    epilogue_inputs,
                    epilogue: e.done(r),
                    out: access(&y, 5, &y_rows, None),
                });
            }
        }
        Ok(())
    }

    fn pool2d(&mut self, kind: PoolOp, input: OperandId, o: &Pool2dOptions, out: OperandId) -> R {
        let x = self.val(input);
        let y = self.dest(out);
        let [kh, kw] = resolved_window(o, &self.desc(input).shape).map(|k| k as usize);
        let (ha, wa) = spatial_axes(o.layout);
        let [sh, sw] = o.strides.map(|s| s as isize);
        let [dh, dw] = o.dilations.map(|d| d as isize);
        let (pt, pl) = (o.padding[0] as isize, o.padding[2] as isize);
        let (ih, iw) = (x.shape[ha] as isize, x.shape[wa] as isize);
        let (oh, ow) = (y.shape[ha] as isize, y.shape[wa] as isize);
        let needs_guard = pt > 0
            || pl > 0
            || (oh - 1) * sh + (kh as isize - 1) * dh - pt >= ih
            || (ow - 1) * sw + (kw as isize - 1) * dw - pl >= iw;
        // Kept axes: the output's, in its layout; reduced: [KH, KW].
        let mut domain = y.shape.clone();
        domain.extend([kh, kw]);
        let rows: Vec<Row> = (0..4)
            .map(|j| {
                if j == ha {
                    Row { base: -pt, terms: vec![(j, sh), (4, dh)] }
                } else if j == wa {
                    Row { base: -pl, terms: vec![(j, sw), (5, dw)] }
                } else {
                    Row::axis(j)
                }
            })
            .collect();
        let fill = if kind == PoolOp::Max { f32::NEG_INFINITY } else { 0.0 };
        let input_access = access(&x, 6, &rows, needs_guard.then_some(fill));
        let mut e = E::new();
        let v = e.load(0);
        let element = if kind == PoolOp::L2 {
            let sq = e.mul(v, v);
            e.done(sq)
        } else {
            e.done(v)
        };
        let mut f = E::new();
        let acc = f.acc();
        let finish = match kind {
            PoolOp::Max => f.done(acc),
            PoolOp::L2 => {
                let r = f.un(UnaryFn::Sqrt, acc);
                f.done(r)
            }
            PoolOp::Average => {
                // Padding is not counted; a window entirely in the padding
                // gives 0 (its sum is 0).
                let count = f.count();
                let one = f.c(1.0);
                let n = f.bin(BinaryFn::Max, count, one);
                let r = f.div(acc, n);
                f.done(r)
            }
        };
        self.program.kernels.push(Kernel::Reduce {
            domain,
            reduced: 2,
            inputs: vec![input_access],
            element,
            combine: if kind == PoolOp::Max { Combine::Max } else { Combine::Sum },
            finish,
            finish_inputs: vec![],
            out: ident(&y),
        });
        Ok(())
    }

    // -----------------------------------------------------------------------
    // Data movement.

    /// `out = x` gathered along `axis` by `indices` (a Gather kernel).
    fn gather(&mut self, x: &Val, axis: usize, indices: &Val, out: &Val) {
        let outer = x.shape[..axis].iter().product();
        let inner = x.shape[axis + 1..].iter().product();
        self.program.kernels.push(Kernel::Gather {
            outer,
            axis_len: x.shape[axis],
            inner,
            input: x.buf,
            indices: indices.buf,
            index_count: indices.len(),
            out: out.buf,
        });
    }

    /// An int32 constant of `values`.
    fn index_constant(&mut self, values: &[usize]) -> Val {
        let bytes: Vec<u8> = values.iter().flat_map(|&v| (v as i32).to_le_bytes()).collect();
        let desc = OperandDescriptor::new(DataType::Int32, [values.len() as u32]);
        let t = Tensor::from_bytes(desc, bytes).expect("sized to the values");
        let buf = self.program.add_buffer(BufferKind::Constant(t), DataType::Int32, values.len());
        Val { buf, shape: vec![values.len()], dtype: DataType::Int32 }
    }

    /// An f32 constant of shape `[values.len()]`.
    fn f32_constant(&mut self, values: &[f32]) -> Val {
        let t = Tensor::from_f32([values.len() as u32], values).expect("sized to the values");
        let buf = self.program.add_buffer(BufferKind::Constant(t), DataType::Float32, values.len());
        Val { buf, shape: vec![values.len()], dtype: DataType::Float32 }
    }

    /// Gathers `x` along `axis` with the constant `picks` into `out`, or
    /// into a new scratch buffer when `out` is `None`.
    fn gather_const(&mut self, x: &Val, axis: usize, picks: &[usize], out: Option<&Val>) -> Val {
        let mut shape = x.shape.clone();
        shape[axis] = picks.len();
        let out = match out {
            Some(o) => o.clone(),
            None => self.scratch(x.dtype, &shape),
        };
        let idx = self.index_constant(picks);
        self.gather(x, axis, &idx, &out);
        out
    }

    fn resample_nearest(&mut self, x: &Val, y: &Val, axes: [usize; 2], picks: &[Vec<usize>; 2]) {
        let identity =
            |k: usize| picks[k].len() == x.shape[axes[k]] && picks[k].iter().enumerate().all(|(i, &p)| i == p);
        match (identity(0), identity(1)) {
            (true, true) => self.copy(x, y),
            (false, true) => {
                self.gather_const(x, axes[0], &picks[0], Some(y));
            }
            (true, false) => {
                self.gather_const(x, axes[1], &picks[1], Some(y));
            }
            (false, false) => {
                let t = self.gather_const(x, axes[0], &picks[0], None);
                self.gather_const(&t, axes[1], &picks[1], Some(y));
            }
        }
    }

    fn resample_linear(&mut self, x: &Val, y: &Val, axes: [usize; 2]) {
        let taps = axes.map(|a| kiln_ir::interp::linear_taps(x.shape[a] as u32, y.shape[a] as u32));
        let lo = |k: usize| taps[k].iter().map(|t| t.0).collect::<Vec<_>>();
        let hi = |k: usize| taps[k].iter().map(|t| t.1).collect::<Vec<_>>();
        let (lo0, hi0, lo1, hi1) = (lo(0), hi(0), lo(1), hi(1));
        let a_lo = self.gather_const(x, axes[0], &lo0, None);
        let a_hi = self.gather_const(x, axes[0], &hi0, None);
        let ll = self.gather_const(&a_lo, axes[1], &lo1, None);
        let lh = self.gather_const(&a_lo, axes[1], &hi1, None);
        let hl = self.gather_const(&a_hi, axes[1], &lo1, None);
        let hh = self.gather_const(&a_hi, axes[1], &hi1, None);
        let weights = |k: usize, upper: bool| -> Vec<f32> {
            taps[k].iter().map(|t| if upper { t.2 as f32 } else { (1.0 - t.2) as f32 }).collect()
        };
        let (u1, u) = (self.f32_constant(&weights(0, false)), self.f32_constant(&weights(0, true)));
        let (v1, v) = (self.f32_constant(&weights(1, false)), self.f32_constant(&weights(1, true)));
        let on = |w: &Val, axis: usize| placed(w, 4, &[Some(axis)]);
        let inputs = vec![
            ident(&ll),
            ident(&lh),
            ident(&hl),
            ident(&hh),
            on(&u1, axes[0]),
            on(&u, axes[0]),
            on(&v1, axes[1]),
            on(&v, axes[1]),
        ];
        // (1-u)((1-v) ll + v lh) + u((1-v) hl + v hh), as the interpreter.
        let mut e = E::new();
        let l: Vec<V> = (0..8).map(|n| e.load(n)).collect();
        let (a, b) = (e.mul(l[6], l[0]), e.mul(l[7], l[1]));
        let top = e.add(a, b);
        let (c, d) = (e.mul(l[6], l[2]), e.mul(l[7], l[3]));
        let bottom = e.add(c, d);
        let (p, q) = (e.mul(l[4], top), e.mul(l[5], bottom));
        let r = e.add(p, q);
        self.map(y.shape.clone(), inputs, e.done(r), ident(y));
    }

    /// Edge and reflection padding: the output splits, per axis, into
    /// before / inside / after segments, and on each segment the source
    /// coordinate is affine; one Map per combination of segments.
    fn pad_regions(&mut self, x: &Val, y: &Val, begin: &[usize], end: &[usize], mode: PaddingMode) {
        // Per axis: (output start, length, source row as a function of the
        // region's own index on domain axis j).
        type Segment = (usize, usize, isize, isize); // (start, len, base, coef)
        let rank = x.rank();
        let segments: Vec<Vec<Segment>> = (0..rank)
            .map(|j| {
                let (b, e, d) = (begin[j] as isize, end[j] as isize, x.shape[j] as isize);
                let mut s: Vec<Segment> = vec![(b as usize, d as usize, 0, 1)];
                if b > 0 {
                    // Output o in [0, b): source -(o - b) = b - o (reflect) or 0 (edge).
                    s.insert(0, if mode == PaddingMode::Edge { (0, b as usize, 0, 0) } else { (0, b as usize, b, -1) });
                }
                if e > 0 {
                    // Output o = b + d + t, t in [0, e): source 2(d-1) - (d + t) = d - 2 - t, or d - 1.
                    let start = (b + d) as usize;
                    s.push(if mode == PaddingMode::Edge {
                        (start, e as usize, d - 1, 0)
                    } else {
                        (start, e as usize, d - 2, -1)
                    });
                }
                s
            })
            .collect();
        // Every combination of segments.
        let mut choice = vec![0usize; rank];
        loop {
            let seg: Vec<Segment> = (0..rank).map(|j| segments[j][choice[j]]).collect();
            let domain: Vec<usize> = seg.iter().map(|s| s.1).collect();
            let src: Vec<Row> = seg.iter().enumerate().map(|(j, s)| Row { base: s.2, terms: vec![(j, s.3)] }).collect();
            let dst: Vec<Row> = seg.iter().enumerate().map(|(j, s)| Row::axis(j).offset(s.0 as isize)).collect();
            self.map(domain, vec![access(x, rank, &src, None)], Expr::load(0), access(y, rank, &dst, None));
            let mut j = rank;
            loop {
                if j == 0 {
                    return;
                }
                j -= 1;
                choice[j] += 1;
                if choice[j] < segments[j].len() {
                    break;
                }
                choice[j] = 0;
            }
        }
    }
}

/// The filter's rows in its layout, from logical `(o, i, h, w)` rows.
/// The filter taps one output phase of a transposed convolution receives
/// along one spatial axis (see `Lowerer::conv_transpose2d`): taps
/// `first + t*tap_step` for `t < count`, tap `t` reading input coordinate
/// `i + offset - t*step` for the phase's `i`-th output.
struct PhaseTaps {
    first: usize,
    tap_step: usize,
    count: usize,
    offset: isize,
    step: isize,
}

/// The taps `k < kernel` with `shifted - k*dilation` divisible by `stride`
/// (`shifted` = phase + padding), or `None` if there are none.
fn phase_taps(shifted: isize, stride: isize, dilation: isize, kernel: usize) -> Option<PhaseTaps> {
    let first = (0..kernel).find(|&k| (shifted - k as isize * dilation).rem_euclid(stride) == 0)?;
    let g = gcd(stride as usize, dilation as usize);
    let tap_step = stride as usize / g;
    let count = (kernel - first).div_ceil(tap_step);
    let offset = (shifted - first as isize * dilation).div_euclid(stride);
    Some(PhaseTaps { first, tap_step, count, offset, step: dilation / g as isize })
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a } else { gcd(b, a % b) }
}

fn conv_filter_rows(layout: Conv2dFilterLayout, logical: [Row; 4]) -> Vec<Row> {
    let [ro, ri, rh, rw] = logical;
    match layout {
        Conv2dFilterLayout::Oihw => vec![ro, ri, rh, rw],
        Conv2dFilterLayout::Hwio => vec![rh, rw, ri, ro],
        Conv2dFilterLayout::Ohwi => vec![ro, rh, rw, ri],
        Conv2dFilterLayout::Ihwo => vec![ri, rh, rw, ro],
    }
}

/// The constant-padding fill as the f32 that stores exactly the value the
/// interpreter pads with (converted to the data type as it does).
fn pad_fill(t: DataType, value: Number) -> Result<f32, String> {
    let v = match (t.int_range(), value) {
        (None, v) => Values::Float(vec![v.as_f64()]),
        (Some((lo, hi)), Number::Int(i)) => Values::Int(vec![i.clamp(lo, hi)]),
        (Some(_), Number::Float(f)) => Values::Int(vec![kiln_ir::saturate_float_to_int(t, f)]),
    };
    let tensor = Tensor::from_values(OperandDescriptor::new(t, []), &v).map_err(|e| e.to_string())?;
    let fill = kiln_ir::kernel::load_f32(t, tensor.bytes());
    // The fill is stored through f32: it must come back as the same bytes.
    let mut back = vec![0u8; t.byte_size()];
    kiln_ir::kernel::store_f32(t, fill, &mut back);
    if back != tensor.bytes() {
        return Err(format!("the padding value {value:?} is not exactly representable in f32 as {t}"));
    }
    Ok(fill)
}

/// The domain of a reduction over `reduced` axes of a tensor: the kept axes
/// (in order) followed by the reduced ones (ascending, so the reduction
/// walks memory in order).
struct RedPlan {
    /// Kept tensor axes.
    kept: Vec<usize>,
    /// Reduced tensor axes.
    reduced: Vec<usize>,
    domain: Vec<usize>,
    /// Domain position of every tensor axis.
    position: Vec<usize>,
}

impl RedPlan {
    fn new(shape: &[usize], axes: &[usize]) -> RedPlan {
        let mut reduced = axes.to_vec();
        reduced.sort_unstable();
        let kept: Vec<usize> = (0..shape.len()).filter(|a| !reduced.contains(a)).collect();
        let order: Vec<usize> = kept.iter().chain(&reduced).copied().collect();
        let mut position = vec![0; shape.len()];
        for (p, &a) in order.iter().enumerate() {
            position[a] = p;
        }
        RedPlan { domain: order.iter().map(|&a| shape[a]).collect(), kept, reduced, position }
    }

    fn kept_shape(&self) -> Vec<usize> {
        self.domain[..self.kept.len()].to_vec()
    }

    /// The reduced tensor over the whole domain.
    fn input_access(&self, x: &Val) -> Access {
        let axes: Vec<Option<usize>> = self.position.iter().map(|&p| Some(p)).collect();
        placed(x, self.domain.len(), &axes)
    }

    /// A kept-shaped value over a rank-`rank` domain that starts with the
    /// kept axes (the Reduce domain).
    fn kept_access(&self, v: &Val, rank: usize) -> Access {
        let axes: Vec<Option<usize>> = (0..self.kept.len()).map(Some).collect();
        placed(v, rank, &axes)
    }

    /// A kept-shaped value over the input's own shape (a Map domain).
    fn kept_on_input(&self, v: &Val, rank: usize) -> Access {
        let axes: Vec<Option<usize>> = self.kept.iter().map(|&a| Some(a)).collect();
        placed(v, rank, &axes)
    }
}

/// How [`lower`] handles the WebNN operator `name`. Either way every data
/// type and option the shape rules accept is lowered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Support {
    /// Always to generated kernels.
    Full,
    /// To generated kernels, except the cases the note names, which run as
    /// host kernels ([`Kernel::Host`]: exact, slow; refused with
    /// [`LowerOptions::host_kernels`] off).
    Host(&'static str),
}

/// The lowering's support for the WebNN operator `name` (for `kiln ops`);
/// `None` for a name that is not a WebNN operator kiln knows. Agrees with
/// the decisions `lower` makes per node (see the module documentation).
pub fn op_support(name: &str) -> Option<Support> {
    const WIDE_INTS: &str = "32/64-bit integers";
    let host = match name {
        "add" | "sub" | "mul" | "div" | "max" | "min" | "abs" | "neg" | "relu" | "clamp" | "prelu" | "where"
        | "maxPool2d" | "reduceMax" | "reduceMin" => WIDE_INTS,
        "equal" | "notEqual" | "greater" | "greaterOrEqual" | "lesser" | "lesserOrEqual" => {
            "32/64-bit integers, unless one side is a constant within ±2^24"
        }
        "pow" => "integers",
        "reduceL1" | "reduceSum" | "reduceSumSquare" | "reduceProduct" => "integers",
        "cast" => "integer-to-integer casts from 32/64-bit integers, int8 to uint32/uint64 (see cast_rule)",
        "resample2d" => "linear mode on integers",
        "pad" => "constant values f32 cannot hold exactly",
        _ => {
            let known = BinaryOp::ALL
                .iter()
                .map(|k| k.name())
                .chain(CompareOp::ALL.iter().map(|k| k.name()))
                .chain(LogicalOp::ALL.iter().map(|k| k.name()))
                .chain(UnaryOp::ALL.iter().map(|k| k.name()))
                .chain(ReduceOp::ALL.iter().map(|k| k.name()))
                .chain(PoolOp::ALL.iter().map(|k| k.name()))
                .any(|n| n == name);
            let other = [
                "elu",
                "leakyRelu",
                "hardSigmoid",
                "linear",
                "conv2d",
                "convTranspose2d",
                "gemm",
                "matmul",
                "batchNormalization",
                "layerNormalization",
                "instanceNormalization",
                "softmax",
                "reshape",
                "transpose",
                "concat",
                "split",
                "slice",
                "expand",
                "gather",
            ];
            return (known || other.contains(&name)).then_some(Support::Full);
        }
    };
    Some(Support::Host(host))
}
