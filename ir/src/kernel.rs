//! The kernel IR: what the backends compile. A [`Program`] is a list of
//! kernels over numbered buffers (graph inputs, graph outputs, constants and
//! scratch space in one arena). Each kernel is a loop structure over an
//! iteration *domain* plus a scalar expression, so that a backend translates
//! loops and arithmetic without knowing which WebNN operator they came from.
//!
//! Memory is read and written through [`Access`]es: affine maps from a
//! domain index to tensor coordinates. They express broadcasting (a zero
//! coefficient), transposes, slices, strides, dilations and im2col windows.
//! An access may be *guarded*: coordinates outside the tensor read a fill
//! value instead of memory (padding). [`Program::validate`] proves that every
//! unguarded access stays inside its buffer for every index of its domain, so
//! generated code needs no run-time bounds checks beyond the guards.
//!
//! Kernels compute in f32. Loads convert from the buffer's data type
//! (floats exactly, integers rounded to nearest, so exactly below 2^24) and
//! stores convert back (float16 rounds to nearest, ties to even; integer
//! types truncate toward zero and saturate, NaN giving 0); a
//! [`Kernel::Map`] whose expression is a single load of a buffer of the
//! output's data type is a plain copy of the element bytes, so every data
//! type (int64 included) moves exactly (a guarded element outside its shape
//! stores the fill, converted). The scalar functions are defined by
//! [`UnaryFn::apply`], [`BinaryFn::apply`] and [`Combine::apply`].
//!
//! A kernel writes memory it also reads in one case only: memory planning
//! may place a [`Kernel::Map`]'s scratch output over a scratch input that
//! dies at that Map and that it reads, unguarded, exactly at the element
//! (of the same byte size) it writes at each index, writing every element
//! once (`kiln_passes::writes_in_place` states the rule). Each element is
//! then read only at the index that overwrites it, so the order in which a
//! kernel visits its domain, or splits it among threads, still does not
//! matter, provided each index's loads come before its store. Graph
//! inputs, outputs and constants never share memory with anything.
//!
//! One kind of kernel is not a loop nest: a [`Kernel::Host`] runs one WebNN
//! operator with the reference interpreter's semantics
//! ([`crate::interp::eval_op`]) on whole buffers, on the host, in Rust. The
//! lowering emits it for nodes the f32 kernels cannot compute exactly
//! (arithmetic on 32- and 64-bit integers, integer casts and reductions beyond
//! 2^24, ...), the way ONNX Runtime falls back to its CPU provider: exact by
//! construction, and slow (a copy of every input and output, one thread).
//! Backends run it between their own kernels, in program order, and never
//! generate code for it.
//!
//! [`eval`] runs a program by these definitions, element by element: it is
//! the oracle the native and WGSL backends are tested against.

use std::fmt::{self, Write};

use crate::{Attr, DataType, Op, OperandDescriptor, OperandId, Tensor};

mod eval;
pub use eval::{eval, load_f32, store_f32};

/// Index of a buffer in its program.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BufferId(pub u32);

impl fmt::Display for BufferId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "b{}", self.0)
    }
}

/// Where a buffer's memory comes from.
#[derive(Clone, Debug)]
pub enum BufferKind {
    /// The caller's tensor for graph input `name`.
    Input(String),
    /// The caller-visible tensor for graph output `name`.
    Output(String),
    /// Data fixed at compile time.
    Constant(Tensor),
    /// Temporary memory at `offset` bytes into the arena (set by planning).
    Scratch { offset: usize },
}

/// A flat, row-major run of elements.
#[derive(Clone, Debug)]
pub struct Buffer {
    pub kind: BufferKind,
    pub data_type: DataType,
    /// Length in elements.
    pub len: usize,
}

impl Buffer {
    pub fn byte_len(&self) -> usize {
        self.len * self.data_type.byte_size()
    }
}

/// An affine access: for a domain index `i`, tensor coordinate `j` is
/// `base[j] + Σ_a coef[j][a] * i[a]`, and the element read or written is
/// at the row-major offset of those coordinates in `shape`.
#[derive(Clone, Debug, PartialEq)]
pub struct Access {
    pub buffer: BufferId,
    /// The tensor's shape as laid out in the buffer (row-major).
    pub shape: Vec<usize>,
    pub base: Vec<isize>,
    /// `coef[j][a]`: one row per tensor dimension, one column per domain axis.
    pub coef: Vec<Vec<isize>>,
    /// `Some(fill)`: coordinates outside `shape` read `fill` (never memory).
    /// `None`: the validator proves every coordinate is inside `shape`.
    pub guard: Option<f32>,
}

impl Access {
    /// The identity access of a whole tensor over a domain equal to its shape.
    pub fn identity(buffer: BufferId, shape: &[usize]) -> Self {
        let rank = shape.len();
        Access {
            buffer,
            shape: shape.to_vec(),
            base: vec![0; rank],
            coef: (0..rank).map(|j| (0..rank).map(|a| isize::from(a == j)).collect()).collect(),
            guard: None,
        }
    }

    /// Row-major element strides of `shape`.
    pub fn strides(&self) -> Vec<isize> {
        let mut s = vec![1isize; self.shape.len()];
        for j in (0..self.shape.len().saturating_sub(1)).rev() {
            s[j] = s[j + 1] * self.shape[j + 1] as isize;
        }
        s
    }

    /// The smallest and largest value coordinate `j` takes over a domain of
    /// extents `domain` (before any guard).
    pub fn coordinate_range(&self, j: usize, domain: &[usize]) -> (isize, isize) {
        let (mut lo, mut hi) = (self.base[j], self.base[j]);
        for (&c, &d) in self.coef[j].iter().zip(domain) {
            let reach = c * (d.max(1) as isize - 1);
            lo += reach.min(0);
            hi += reach.max(0);
        }
        (lo, hi)
    }

    /// The smallest and largest flat element offsets the access touches
    /// over a domain of extents `domain`: each coordinate's range clamped to
    /// the shape (a guarded access never touches memory outside it, an
    /// unguarded one stays inside), at the row-major strides.
    pub fn element_range(&self, domain: &[usize]) -> (isize, isize) {
        let strides = self.strides();
        let (mut lo, mut hi) = (0isize, 0isize);
        for (j, &extent) in self.shape.iter().enumerate() {
            let (from, to) = self.coordinate_range(j, domain);
            let last = (extent as isize - 1).max(0);
            lo += from.clamp(0, last) * strides[j];
            hi += to.clamp(0, last) * strides[j];
        }
        (lo, hi)
    }

    /// The flat element offset's affine form over the domain: `(offset, per-axis stride)`.
    /// Only meaningful for unguarded accesses (for guarded ones it is the
    /// offset the coordinates would have, before the guard).
    pub fn linear(&self, domain_rank: usize) -> (isize, Vec<isize>) {
        let strides = self.strides();
        let offset = self.base.iter().zip(&strides).map(|(b, s)| b * s).sum();
        let per_axis = (0..domain_rank)
            .map(|a| self.coef.iter().zip(&strides).map(|(row, s)| row[a] * s).sum())
            .collect();
        (offset, per_axis)
    }
}

/// Reference to a node of an [`Expr`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ValueId(pub u32);

/// A one-argument scalar function.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UnaryFn {
    Abs,
    Neg,
    Ceil,
    Floor,
    Sqrt,
    Exp,
    Log,
    Erf,
    Sin,
    Cos,
    Tan,
    Tanh,
    /// Rounds to the nearest integer, ties to even.
    RoundEven,
    /// Truncation toward zero (float to integer casts).
    Trunc,
    /// Rounds to the nearest float16 value (casts to float16).
    RoundF16,
}

/// A two-argument scalar function. Comparisons give 1.0 or 0.0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinaryFn {
    Add,
    Sub,
    Mul,
    Div,
    /// IEEE maximum that propagates NaN.
    Max,
    /// IEEE minimum that propagates NaN.
    Min,
    Pow,
    Equal,
    Greater,
    GreaterOrEqual,
    Lesser,
    LesserOrEqual,
}

/// One node of an expression.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ExprNode {
    /// The element of the kernel's input access `n` at the current index.
    Load(u32),
    Const(f32),
    /// The accumulator (in reductions' and gemms' finishing expressions).
    Acc,
    /// In a reduction's `finish`: the number of reduced indices at which
    /// every coordinate of input 0 was inside its shape (so all of them
    /// when input 0 is unguarded or the kernel has no inputs). For an
    /// average pool with input 0 guarded, it counts the window's elements
    /// that are not padding. As f32 (exact below 2^24). Not allowed in a
    /// gemm's epilogue (the validator rejects it).
    Count,
    Unary(UnaryFn, ValueId),
    Binary(BinaryFn, ValueId, ValueId),
    /// `if cond != 0 { a } else { b }` (a NaN `cond` is not 0: it picks `a`).
    Select(ValueId, ValueId, ValueId),
}

/// A scalar expression in SSA form; the last node is the result. Nodes only
/// refer to earlier nodes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Expr {
    pub nodes: Vec<ExprNode>,
}

impl Expr {
    pub fn push(&mut self, node: ExprNode) -> ValueId {
        self.nodes.push(node);
        ValueId(self.nodes.len() as u32 - 1)
    }

    /// The expression that just loads input `n`.
    pub fn load(n: u32) -> Self {
        Expr { nodes: vec![ExprNode::Load(n)] }
    }

    /// The expression that is just the accumulator.
    pub fn acc() -> Self {
        Expr { nodes: vec![ExprNode::Acc] }
    }

    pub fn result(&self) -> ValueId {
        ValueId(self.nodes.len() as u32 - 1)
    }
}

/// How a reduction combines elements.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Combine {
    Sum,
    Product,
    Max,
    Min,
}

impl Combine {
    /// The identity element of the combination.
    pub fn identity(self) -> f32 {
        match self {
            Combine::Sum => 0.0,
            Combine::Product => 1.0,
            Combine::Max => f32::NEG_INFINITY,
            Combine::Min => f32::INFINITY,
        }
    }
}

/// One kernel: a loop nest over `domain` plus scalar work.
#[derive(Clone, Debug, PartialEq)]
pub enum Kernel {
    /// For every index `i` of `domain`: `out[i] = expr(i)`.
    Map { domain: Vec<usize>, inputs: Vec<Access>, expr: Expr, out: Access },
    /// `domain` is the kept axes followed by `reduced` reduced axes. For each
    /// kept index: `acc = combine.identity()`, then over the reduced axes,
    /// in row-major order, `acc = combine(acc, element(i))` (every reduced
    /// index is combined; a guarded input reads its fill outside its
    /// shape), then `out[kept] = finish(acc, count)` (see
    /// [`ExprNode::Count`]), where the finish's loads read
    /// `finish_inputs` at the kept index (an epilogue: a bias, an
    /// activation's operands, a residual). `out` and the finish inputs are
    /// indexed by the kept axes only; the inputs by the whole domain. With
    /// `reduced == 0` the reduced loop runs once.
    Reduce {
        domain: Vec<usize>,
        reduced: usize,
        inputs: Vec<Access>,
        element: Expr,
        combine: Combine,
        finish: Expr,
        finish_inputs: Vec<Access>,
        out: Access,
    },
    /// Batched matrix product over the domain `[batch.., m, n, k]`:
    /// `out[b, m, n] = epilogue(Σ_k a[b, m, k] * b[b, k, n])`. The accesses
    /// `a`, `b` are over the full domain (their `n`, respectively `m`,
    /// coefficients are zero); `out` and the epilogue's inputs are over
    /// `[batch.., m, n]`. In the epilogue, `Acc` is the sum. The reference
    /// ([`eval`]) sums from 0.0 in order of `k`, rounding every product and
    /// every addition to f32; backends may reorder and fuse within their
    /// tolerance.
    Gemm { domain: Vec<usize>, a: Access, b: Access, epilogue_inputs: Vec<Access>, epilogue: Expr, out: Access },
    /// `out[o, j, i] = input[o, clamp(indices[j]), i]` over the domain
    /// `[outer, indices, inner]`, where negative indices count from the end
    /// of `axis_len` and out-of-range ones are clamped into it.
    Gather {
        outer: usize,
        axis_len: usize,
        inner: usize,
        input: BufferId,
        indices: BufferId,
        index_count: usize,
        out: BufferId,
    },
    /// One operator run on the host by the reference interpreter (see
    /// [`HostKernel`]).
    Host(HostKernel),
}

impl Kernel {
    /// A short name for printing and profiles.
    pub fn kind(&self) -> &'static str {
        match self {
            Kernel::Map { .. } => "map",
            Kernel::Reduce { .. } => "reduce",
            Kernel::Gemm { .. } => "gemm",
            Kernel::Gather { .. } => "gather",
            Kernel::Host(_) => "host",
        }
    }

    /// The buffers the kernel reads (one entry per operand that reads one)
    /// and those it writes (one, but for a host kernel with several results).
    pub fn reads_writes(&self) -> (Vec<BufferId>, Vec<BufferId>) {
        let ids = |accesses: &[Access]| accesses.iter().map(|a| a.buffer).collect::<Vec<_>>();
        match self {
            Kernel::Map { inputs, out, .. } => (ids(inputs), vec![out.buffer]),
            Kernel::Reduce { inputs, finish_inputs, out, .. } => {
                let mut v = ids(inputs);
                v.extend(ids(finish_inputs));
                (v, vec![out.buffer])
            }
            Kernel::Gemm { a, b, epilogue_inputs, out, .. } => {
                let mut v = ids(epilogue_inputs);
                v.extend([a.buffer, b.buffer]);
                (v, vec![out.buffer])
            }
            Kernel::Gather { input, indices, out, .. } => (vec![*input, *indices], vec![*out]),
            Kernel::Host(h) => {
                (h.inputs.iter().map(|i| i.buffer).collect(), h.outputs.iter().map(|o| o.buffer).collect())
            }
        }
    }

    /// Every access of the kernel with the extents of the domain it is
    /// indexed by (a Reduce's output and finish inputs, a Gemm's output and
    /// epilogue inputs: the domain without the reduced axes) and whether
    /// the kernel writes through it; `None` for kernels that name buffers
    /// without accesses (Gather, Host).
    pub fn accesses_mut(&mut self) -> Option<Vec<(&mut Access, Vec<usize>, bool)>> {
        Some(match self {
            Kernel::Map { domain, inputs, out, .. } => {
                let mut v: Vec<_> = inputs.iter_mut().map(|a| (a, domain.clone(), false)).collect();
                v.push((out, domain.clone(), true));
                v
            }
            Kernel::Reduce { domain, reduced, inputs, finish_inputs, out, .. } => {
                let kept = domain[..domain.len() - *reduced].to_vec();
                let mut v: Vec<_> = inputs.iter_mut().map(|a| (a, domain.clone(), false)).collect();
                v.extend(finish_inputs.iter_mut().map(|a| (a, kept.clone(), false)));
                v.push((out, kept, true));
                v
            }
            Kernel::Gemm { domain, a, b, epilogue_inputs, out, .. } => {
                let outer = domain[..domain.len() - 1].to_vec();
                let mut v = vec![(a, domain.clone(), false), (b, domain.clone(), false)];
                v.extend(epilogue_inputs.iter_mut().map(|e| (e, outer.clone(), false)));
                v.push((out, outer, true));
                v
            }
            Kernel::Gather { .. } | Kernel::Host(_) => return None,
        })
    }

    /// Applies `f` to every buffer id the kernel names (to renumber them).
    pub fn for_each_buffer_mut(&mut self, f: &mut dyn FnMut(&mut BufferId)) {
        match self {
            Kernel::Map { inputs, out, .. } => inputs.iter_mut().chain([out]).for_each(|a| f(&mut a.buffer)),
            Kernel::Reduce { inputs, finish_inputs, out, .. } => {
                inputs.iter_mut().chain(finish_inputs).chain([out]).for_each(|a| f(&mut a.buffer))
            }
            Kernel::Gemm { a, b, epilogue_inputs, out, .. } => {
                epilogue_inputs.iter_mut().chain([a, b, out]).for_each(|x| f(&mut x.buffer))
            }
            Kernel::Gather { input, indices, out, .. } => [input, indices, out].into_iter().for_each(f),
            Kernel::Host(h) => h.inputs.iter_mut().chain(&mut h.outputs).for_each(|o| f(&mut o.buffer)),
        }
    }

    /// Whether the kernel runs on the host ([`Kernel::Host`]) rather than
    /// as generated code.
    pub fn is_host(&self) -> bool {
        matches!(self, Kernel::Host(_))
    }
}

/// A whole buffer seen as a tensor of `desc` (as many elements, of the
/// buffer's data type).
#[derive(Clone, Debug, PartialEq)]
pub struct HostOperand {
    pub buffer: BufferId,
    pub desc: OperandDescriptor,
}

/// A WebNN operator run by [`crate::interp::eval_op`] on whole buffers:
/// reads every input, then writes every output, each completely. `op`'s
/// operands are renumbered: its `n`-th operand in [`Op::inputs`] order is
/// `OperandId(n)`, the tensor in `inputs[n]` (an operand read twice is
/// listed twice). `outputs` are the operator's results in order, with
/// the descriptors its shape rule gives. The validator checks all of
/// this, and that every buffer holds exactly its descriptor's elements, so
/// running the kernel touches no memory outside its buffers.
#[derive(Clone, Debug, PartialEq)]
pub struct HostKernel {
    pub op: Op,
    pub inputs: Vec<HostOperand>,
    pub outputs: Vec<HostOperand>,
}

impl HostKernel {
    /// Runs the operator on `inputs` (one tensor per [`HostKernel::inputs`]
    /// entry, with its descriptor) and returns one tensor per output.
    pub fn run(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>, String> {
        if inputs.len() != self.inputs.len() {
            return Err(format!("{} input tensors for {} operands", inputs.len(), self.inputs.len()));
        }
        for (n, (t, operand)) in inputs.iter().zip(&self.inputs).enumerate() {
            if t.desc() != &operand.desc {
                return Err(format!("input {n} is {}, expected {}", t.desc(), operand.desc));
            }
        }
        let descs: Vec<OperandDescriptor> = self.outputs.iter().map(|o| o.desc.clone()).collect();
        // The validator proved every operand id is an index into `inputs`;
        // `eval_op` re-checks the shapes before it reads anything.
        let operand = |id: OperandId| &inputs[id.index()];
        crate::interp::eval_op(&self.op, &operand, &descs).map_err(|e| e.to_string())
    }

    /// Every buffer the kernel reads, then every buffer it writes.
    pub fn buffers(&self) -> impl Iterator<Item = BufferId> + '_ {
        self.inputs.iter().chain(&self.outputs).map(|o| o.buffer)
    }
}

/// A program: buffers, and kernels in execution order.
#[derive(Clone, Debug, Default)]
pub struct Program {
    pub buffers: Vec<Buffer>,
    pub kernels: Vec<Kernel>,
    /// Bytes of scratch memory one execution needs.
    pub arena_bytes: usize,
}

/// A kernel that could touch memory outside a buffer, or is malformed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("kernel {kernel} ({kind}): {message}")]
pub struct KernelError {
    pub kernel: usize,
    pub kind: &'static str,
    pub message: String,
}

impl Program {
    pub fn add_buffer(&mut self, kind: BufferKind, data_type: DataType, len: usize) -> BufferId {
        self.buffers.push(Buffer { kind, data_type, len });
        BufferId(self.buffers.len() as u32 - 1)
    }

    pub fn buffer(&self, id: BufferId) -> &Buffer {
        &self.buffers[id.0 as usize]
    }

    /// The host kernels, with their indices in the program.
    pub fn host_kernels(&self) -> impl Iterator<Item = (usize, &HostKernel)> {
        self.kernels.iter().enumerate().filter_map(|(k, kernel)| match kernel {
            Kernel::Host(h) => Some((k, h)),
            _ => None,
        })
    }

    /// Proves every access of every kernel stays inside its buffer and that
    /// every expression is well formed. Backends call this before generating
    /// code.
    pub fn validate(&self) -> Result<(), KernelError> {
        for (k, kernel) in self.kernels.iter().enumerate() {
            let fail = |message: String| KernelError { kernel: k, kind: kernel.kind(), message };
            match kernel {
                Kernel::Map { domain, inputs, expr, out } => {
                    for (n, a) in inputs.iter().enumerate() {
                        self.check_access(a, domain).map_err(|m| fail(format!("input {n}: {m}")))?;
                    }
                    self.check_output(out, domain).map_err(|m| fail(format!("output: {m}")))?;
                    check_expr(expr, inputs.len(), Scope::Element).map_err(fail)?;
                }
                Kernel::Reduce { domain, reduced, inputs, element, finish, finish_inputs, out, .. } => {
                    if *reduced > domain.len() {
                        return Err(fail(format!("{reduced} reduced axes in a rank-{} domain", domain.len())));
                    }
                    for (n, a) in inputs.iter().enumerate() {
                        self.check_access(a, domain).map_err(|m| fail(format!("input {n}: {m}")))?;
                    }
                    let kept = &domain[..domain.len() - reduced];
                    for (n, a) in finish_inputs.iter().enumerate() {
                        self.check_access(a, kept).map_err(|m| fail(format!("finish input {n}: {m}")))?;
                    }
                    self.check_output(out, kept).map_err(|m| fail(format!("output: {m}")))?;
                    check_expr(element, inputs.len(), Scope::Element).map_err(fail)?;
                    check_expr(finish, finish_inputs.len(), Scope::Finish).map_err(fail)?;
                }
                Kernel::Gemm { domain, a, b, epilogue_inputs, epilogue, out } => {
                    if domain.len() < 3 {
                        return Err(fail("a gemm domain needs at least [m, n, k]".into()));
                    }
                    self.check_access(a, domain).map_err(|m| fail(format!("a: {m}")))?;
                    self.check_access(b, domain).map_err(|m| fail(format!("b: {m}")))?;
                    let outer = &domain[..domain.len() - 1];
                    for (n, e) in epilogue_inputs.iter().enumerate() {
                        self.check_access(e, outer).map_err(|m| fail(format!("epilogue input {n}: {m}")))?;
                    }
                    self.check_output(out, outer).map_err(|m| fail(format!("output: {m}")))?;
                    check_expr(epilogue, epilogue_inputs.len(), Scope::Epilogue).map_err(fail)?;
                }
                Kernel::Gather { outer, axis_len, inner, input, indices, index_count, out } => {
                    let need = |id: BufferId, len: usize, what: &str| -> Result<(), KernelError> {
                        let have = self.buffers.get(id.0 as usize).map(|b| b.len);
                        if have.is_some_and(|h| h >= len) {
                            Ok(())
                        } else {
                            Err(fail(format!("{what} {id} holds {have:?} elements, needs {len}")))
                        }
                    };
                    let input_len = outer.checked_mul(*axis_len).and_then(|x| x.checked_mul(*inner));
                    let out_len = outer.checked_mul(*index_count).and_then(|x| x.checked_mul(*inner));
                    let (Some(input_len), Some(out_len)) = (input_len, out_len) else {
                        return Err(fail("sizes overflow".into()));
                    };
                    if *axis_len == 0 {
                        return Err(fail("empty gather axis".into()));
                    }
                    need(*input, input_len, "input")?;
                    need(*indices, *index_count, "indices")?;
                    need(*out, out_len, "output")?;
                    let t = self.buffer(*indices).data_type;
                    if !matches!(t, DataType::Int32 | DataType::Uint32 | DataType::Int64) {
                        return Err(fail(format!("indices of type {t}")));
                    }
                    if self.buffer(*input).data_type != self.buffer(*out).data_type {
                        return Err(fail("input and output types differ".into()));
                    }
                }
                Kernel::Host(h) => self.check_host(h).map_err(fail)?,
            }
        }
        Ok(())
    }

    /// A host kernel: operands numbered as documented on [`HostKernel`],
    /// every buffer exactly its descriptor's size and type, outputs as the
    /// shape rule gives them, writable, and distinct from each other and
    /// from the inputs.
    fn check_host(&self, h: &HostKernel) -> Result<(), String> {
        let ids = h.op.inputs();
        if ids.len() != h.inputs.len() {
            let (name, n) = (h.op.name(), h.inputs.len());
            return Err(format!("{name} has {} operands, the kernel lists {n} inputs", ids.len()));
        }
        for (n, (name, id)) in ids.iter().enumerate() {
            if id.index() != n {
                return Err(format!("operand {n} (`{name}`) of {} is {id}, not %{n}", h.op.name()));
            }
        }
        let fits = |what: String, o: &HostOperand| -> Result<(), String> {
            let b = self.buffers.get(o.buffer.0 as usize).ok_or_else(|| format!("{what}: no buffer {}", o.buffer))?;
            let elements = o.desc.shape.checked_element_count();
            if b.data_type != o.desc.data_type || elements.is_none_or(|e| e != b.len as u64) {
                return Err(format!("{what}: {} is {}[{}], not {}", o.buffer, b.data_type.short_name(), b.len, o.desc));
            }
            Ok(())
        };
        for (n, i) in h.inputs.iter().enumerate() {
            fits(format!("input {n}"), i)?;
        }
        if h.outputs.is_empty() {
            return Err("no outputs".into());
        }
        for (n, o) in h.outputs.iter().enumerate() {
            fits(format!("output {n}"), o)?;
            if let BufferKind::Constant(_) | BufferKind::Input(_) = self.buffer(o.buffer).kind {
                return Err(format!("output {n}: {} is read-only", o.buffer));
            }
            if h.inputs.iter().any(|i| i.buffer == o.buffer) || h.outputs[..n].iter().any(|p| p.buffer == o.buffer) {
                return Err(format!("output {n}: {} is also another operand of the kernel", o.buffer));
            }
        }
        let descs: Vec<&OperandDescriptor> = h.inputs.iter().map(|i| &i.desc).collect();
        let inferred = crate::infer::output_descriptors(&h.op, &|id| descs[id.index()])
            .map_err(|e| format!("{}: operand `{}`: {}", h.op.name(), e.operand, e.rule))?;
        if inferred.len() != h.outputs.len() || inferred.iter().zip(&h.outputs).any(|(d, o)| *d != o.desc) {
            let show = |d: Vec<String>| d.join(", ");
            return Err(format!(
                "{} gives [{}], the kernel writes [{}]",
                h.op.name(),
                show(inferred.iter().map(|d| d.to_string()).collect()),
                show(h.outputs.iter().map(|o| o.desc.to_string()).collect())
            ));
        }
        Ok(())
    }

    fn check_access(&self, a: &Access, domain: &[usize]) -> Result<(), String> {
        let buffer = self.buffers.get(a.buffer.0 as usize).ok_or_else(|| format!("no buffer {}", a.buffer))?;
        let rank = a.shape.len();
        if a.base.len() != rank || a.coef.len() != rank || a.coef.iter().any(|row| row.len() != domain.len()) {
            return Err(format!("access to {} has the wrong rank for a rank-{} domain", a.buffer, domain.len()));
        }
        let elements = a.shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
        if elements.is_none_or(|e| e > buffer.len) {
            return Err(format!("shape {:?} is larger than {} ({} elements)", a.shape, a.buffer, buffer.len));
        }
        if domain.contains(&0) {
            return Ok(()); // nothing is accessed
        }
        if a.guard.is_some() {
            return Ok(()); // every coordinate is checked when the code runs
        }
        for j in 0..rank {
            let (lo, hi) = coordinate_range(a.base[j], &a.coef[j], domain).ok_or("coordinate arithmetic overflows")?;
            if lo < 0 || hi >= a.shape[j] as i128 {
                return Err(format!(
                    "coordinate {j} of {} spans [{lo}, {hi}], outside [0, {})",
                    a.buffer, a.shape[j]
                ));
            }
        }
        Ok(())
    }

    fn check_output(&self, a: &Access, domain: &[usize]) -> Result<(), String> {
        if a.guard.is_some() {
            return Err("a written access cannot be guarded".into());
        }
        match self.buffers.get(a.buffer.0 as usize).map(|b| &b.kind) {
            Some(BufferKind::Constant(_)) | Some(BufferKind::Input(_)) => {
                Err(format!("{} is read-only", a.buffer))
            }
            _ => self.check_access(a, domain),
        }
    }
}

/// The least and greatest value of `base + Σ coef[a] * i[a]` over the domain box.
fn coordinate_range(base: isize, coef: &[isize], domain: &[usize]) -> Option<(i128, i128)> {
    let (mut lo, mut hi) = (base as i128, base as i128);
    for (&c, &d) in coef.iter().zip(domain) {
        let span = (c as i128).checked_mul(d as i128 - 1)?;
        if span < 0 {
            lo += span;
        } else {
            hi += span;
        }
    }
    Some((lo, hi))
}

/// Which accumulator values an expression may read.
#[derive(Clone, Copy, PartialEq)]
enum Scope {
    /// Element expressions: loads and constants only.
    Element,
    /// A reduction's finish: `Acc`, `Count` and loads of the finish inputs.
    Finish,
    /// A gemm epilogue: `Acc`, no `Count`.
    Epilogue,
}

fn check_expr(expr: &Expr, inputs: usize, scope: Scope) -> Result<(), String> {
    if expr.nodes.is_empty() {
        return Err("empty expression".into());
    }
    for (i, node) in expr.nodes.iter().enumerate() {
        let ok = |v: &ValueId| (v.0 as usize) < i;
        let valid = match node {
            ExprNode::Load(n) => (*n as usize) < inputs,
            ExprNode::Const(_) => true,
            ExprNode::Acc => scope != Scope::Element,
            ExprNode::Count => scope == Scope::Finish,
            ExprNode::Unary(_, a) => ok(a),
            ExprNode::Binary(_, a, b) => ok(a) && ok(b),
            ExprNode::Select(c, a, b) => ok(c) && ok(a) && ok(b),
        };
        if !valid {
            return Err(format!("expression node {i} ({node:?}) refers to something it cannot"));
        }
    }
    Ok(())
}

impl fmt::Display for Program {
    /// A stable text form: buffers, then kernels with their accesses and
    /// expressions.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.buffers.iter().enumerate() {
            let kind = match &b.kind {
                BufferKind::Input(n) => format!("input \"{n}\""),
                BufferKind::Output(n) => format!("output \"{n}\""),
                BufferKind::Constant(_) => "constant".to_string(),
                BufferKind::Scratch { offset } => format!("scratch @{offset}"),
            };
            writeln!(f, "b{i}: {}[{}] {kind}", b.data_type.short_name(), b.len)?;
        }
        writeln!(f, "arena: {} bytes", self.arena_bytes)?;
        for (k, kernel) in self.kernels.iter().enumerate() {
            let mut s = String::new();
            match kernel {
                Kernel::Map { domain, inputs, expr, out } => {
                    let _ = writeln!(s, "k{k}: map {domain:?}");
                    write_accesses(&mut s, "in", inputs);
                    let _ = writeln!(s, "  out: {}", fmt_access(out));
                    let _ = writeln!(s, "  expr: {}", fmt_expr(expr));
                }
                Kernel::Reduce { domain, reduced, inputs, element, combine, finish, finish_inputs, out } => {
                    let _ = writeln!(s, "k{k}: reduce {domain:?} over the last {reduced} ({combine:?})");
                    write_accesses(&mut s, "in", inputs);
                    write_accesses(&mut s, "finish in", finish_inputs);
                    let _ = writeln!(s, "  out: {}", fmt_access(out));
                    let _ = writeln!(s, "  element: {}", fmt_expr(element));
                    let _ = writeln!(s, "  finish: {}", fmt_expr(finish));
                }
                Kernel::Gemm { domain, a, b, epilogue_inputs, epilogue, out } => {
                    let _ = writeln!(s, "k{k}: gemm {domain:?}");
                    let _ = writeln!(s, "  a: {}", fmt_access(a));
                    let _ = writeln!(s, "  b: {}", fmt_access(b));
                    write_accesses(&mut s, "epilogue in", epilogue_inputs);
                    let _ = writeln!(s, "  out: {}", fmt_access(out));
                    let _ = writeln!(s, "  epilogue: {}", fmt_expr(epilogue));
                }
                Kernel::Gather { outer, axis_len, inner, input, indices, index_count, out } => {
                    let _ = writeln!(
                        s,
                        "k{k}: gather {out} = {input}[{outer}, {indices}[{index_count}] of {axis_len}, {inner}]"
                    );
                }
                Kernel::Host(h) => {
                    let _ = writeln!(s, "k{k}: host {h}");
                }
            }
            f.write_str(&s)?;
        }
        Ok(())
    }
}

impl fmt::Display for HostKernel {
    /// `op(b1 i32[2, 3], b2 i32[3], axis=1) -> b4 i32[2, 3]`: the operator
    /// with its arguments as [`Op::arguments`] lists them, operands as their
    /// buffers and descriptors.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&fmt_host(self))
    }
}

fn fmt_host(h: &HostKernel) -> String {
    let operand = |id: &OperandId| match h.inputs.get(id.index()) {
        Some(o) => format!("{} {}", o.buffer, o.desc),
        None => format!("{id}?"),
    };
    let attr = |a: &Attr| -> String {
        let list = |items: Vec<String>| format!("[{}]", items.join(", "));
        match a {
            Attr::Operand(id) => operand(id),
            Attr::Operands(ids) => list(ids.iter().map(operand).collect()),
            Attr::Int(i) => i.to_string(),
            Attr::Float(x) => format!("{x:?}"),
            Attr::Bool(b) => b.to_string(),
            Attr::Str(s) => format!("{s:?}"),
            Attr::Strs(v) => list(v.iter().map(|s| format!("{s:?}")).collect()),
            Attr::Ints(v) => list(v.iter().map(|i| i.to_string()).collect()),
            Attr::Floats(v) => list(v.iter().map(|x| format!("{x:?}")).collect()),
        }
    };
    let (positional, named) = h.op.arguments();
    let args: Vec<String> =
        positional.iter().map(attr).chain(named.iter().map(|(k, a)| format!("{k}={}", attr(a)))).collect();
    let outs: Vec<String> = h.outputs.iter().map(|o| format!("{} {}", o.buffer, o.desc)).collect();
    format!("{}({}) -> {}", h.op.name(), args.join(", "), outs.join(", "))
}

fn write_accesses(s: &mut String, label: &str, accesses: &[Access]) {
    for (n, a) in accesses.iter().enumerate() {
        let _ = writeln!(s, "  {label}{n}: {}", fmt_access(a));
    }
}

fn fmt_access(a: &Access) -> String {
    let coords: Vec<String> = a
        .base
        .iter()
        .zip(&a.coef)
        .map(|(b, row)| {
            let mut terms: Vec<String> = row
                .iter()
                .enumerate()
                .filter(|(_, c)| **c != 0)
                .map(|(ax, c)| if *c == 1 { format!("i{ax}") } else { format!("{c}*i{ax}") })
                .collect();
            if *b != 0 || terms.is_empty() {
                terms.push(b.to_string());
            }
            terms.join("+")
        })
        .collect();
    let guard = a.guard.map(|g| format!(" else {g:?}")).unwrap_or_default();
    format!("{}{:?}[{}]{guard}", a.buffer, a.shape, coords.join(", "))
}

fn fmt_expr(e: &Expr) -> String {
    let items: Vec<String> = e
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let rhs = match n {
                ExprNode::Load(k) => format!("in{k}"),
                ExprNode::Const(c) => format!("{c:?}"),
                ExprNode::Acc => "acc".into(),
                ExprNode::Count => "count".into(),
                ExprNode::Unary(op, a) => format!("{op:?}(v{})", a.0),
                ExprNode::Binary(op, a, b) => format!("{op:?}(v{}, v{})", a.0, b.0),
                ExprNode::Select(c, a, b) => format!("select(v{}, v{}, v{})", c.0, a.0, b.0),
            };
            format!("v{i}={rhs}")
        })
        .collect();
    items.join("; ")
}
