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
//!   cannot hold exactly;
//! - `argMin`/`argMax`, `triangular`, `gatherElements`, `gatherND`,
//!   `scatterElements` and `scatterND` on 32- and 64-bit integer data,
//!   `cumulativeSum` on integers, `dequantizeLinear` of int32/uint32,
//!   `quantizeLinear` to int32/uint32; and argMin/argMax, the gathers and
//!   the scatters whose positions (the axis, or the addressed extent) go
//!   beyond 2^24, which f32 does not count exactly.
//!
//! A host kernel's buffers are whole operands, as for every other kernel;
//! fusion never merges it with anything, and memory planning never lets it
//! write over its inputs. [`LowerOptions::host_kernels`] off (for a backend
//! that cannot run host code) reports these nodes as
//! [`LowerError::Unsupported`] instead, every one of them at once.
//!
//! The lowering is split by operator family, one file each, so an
//! operator's kernels are found by its name (`Lowerer::node` dispatches
//! every node to its method):
//! - `elementwise.rs`: unary, binary, comparison and logical operators,
//!   `clamp`, the activations (`elu`, `leakyRelu`, `hardSigmoid`, `linear`,
//!   `prelu`), `where`, `cast`, `isNaN` and `isInfinite`;
//! - `reduction.rs`: the ten reductions, `softmax`, `argMin`/`argMax` and
//!   `cumulativeSum`;
//! - `indexing.rs`: `gatherElements`, `gatherND`, `scatterElements`,
//!   `scatterND`;
//! - `quantization.rs`: `quantizeLinear`, `dequantizeLinear`;
//! - `normalization.rs`: `batchNormalization`, `layerNormalization`,
//!   `instanceNormalization`;
//! - `matmul.rs`: `gemm`, `matmul`;
//! - `convolution.rs`: `conv2d`, `convTranspose2d`;
//! - `pooling.rs`: `averagePool2d`, `l2Pool2d`, `maxPool2d`;
//! - `recurrent.rs`: `gru`, `gruCell`, `lstm`, `lstmCell`;
//! - `movement.rs`: `reshape`, `transpose`, `concat`, `split`, `slice`,
//!   `expand`, `gather`, `pad`, `resample2d`, `reverse`, `tile`,
//!   `triangular`;
//! - `exactness.rs`: which nodes become host kernels, and [`cast_rule`];
//! - `support.rs`: [`op_support`], the per-operator summary for `kiln ops`;
//! - `values.rs`: operands in memory, accesses and the expression builder
//!   the families are written with.

mod convolution;
mod elementwise;
mod exactness;
mod indexing;
mod matmul;
mod movement;
mod normalization;
mod pooling;
mod quantization;
mod recurrent;
mod reduction;
mod support;
mod values;

use std::collections::HashMap;
use std::fmt;

use kiln_ir::kernel::{Access, BufferId, BufferKind, Expr, HostKernel, HostOperand, Kernel, KernelError, Program};
use kiln_ir::{DataType, Graph, Node, Op, OperandDescriptor, OperandId, OperandKind};

use exactness::host_reason;
pub use exactness::{CastRule, cast_rule};
pub use support::{Support, op_support};
use values::{E, V, Val, bcast, ident};

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
    /// rows at least 8 long becomes a window Reduce (read in place by a
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
/// (see the module documentation): the kernel passes of a
/// [`crate::Pipeline`], without the graph passes (folding, rewriting).
pub fn lower(graph: &Graph) -> Result<Program, LowerError> {
    lower_with(graph, LowerOptions::default())
}

/// [`lower`] with options.
pub fn lower_with(graph: &Graph, options: LowerOptions) -> Result<Program, LowerError> {
    let pipeline = crate::Pipeline::new(options).without(crate::Pass::Fold).without(crate::Pass::Rewrite);
    match pipeline.run(graph) {
        Ok(compiled) => Ok(compiled.program),
        Err(crate::CompileError::Lower(e)) => Err(e),
        Err(e) => unreachable!("only the kernel passes ran: {e}"),
    }
}

/// Lowers `graph` (with host kernels) without fusing or planning memory:
/// every scratch buffer is at offset 0 and `arena_bytes` is 0. [`lower`] is
/// this plus [`crate::fuse()`] and [`crate::plan()`].
pub fn lower_unplanned(graph: &Graph) -> Result<Program, LowerError> {
    Ok(lower_nodes(graph, LowerOptions::default())?.program)
}

/// A lowered program (unfused, unplanned) and the graph node each of its
/// kernels computes.
pub(crate) struct Lowered {
    pub program: Program,
    /// `origins[k]`: the index in `graph.nodes()` of the node kernel `k`
    /// was lowered from.
    pub origins: Vec<usize>,
}

pub(crate) fn lower_nodes(graph: &Graph, options: LowerOptions) -> Result<Lowered, LowerError> {
    let mut l = Lowerer::new(graph, options);
    let mut origins = Vec::new();
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
        origins.resize(l.program.kernels.len(), n);
    }
    if !l.unsupported.is_empty() {
        return Err(LowerError::Unsupported(l.unsupported));
    }
    l.program.validate().map_err(LowerError::Invalid)?;
    Ok(Lowered { program: l.program, origins })
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

    /// Lowers one node to kernels: the method of its operator, in the file
    /// of its family (see the module documentation).
    fn node(&mut self, node: &Node) -> R {
        let out = node.outputs.first().copied().ok_or("the node has no outputs")?;
        match &node.op {
            Op::Binary { kind, a, b } => self.binary(*kind, *a, *b, out),
            Op::Compare { kind, a, b } => self.compare(*kind, *a, *b, out),
            Op::Logical { kind, a, b } => self.logical(*kind, *a, *b, out),
            Op::Unary { kind, input } => self.unary(*kind, *input, out),
            Op::Clamp { input, min_value, max_value } => self.clamp(*input, *min_value, *max_value, out),
            Op::Elu { input, alpha } => self.elu(*input, *alpha, out),
            Op::LeakyRelu { input, alpha } => self.leaky_relu(*input, *alpha, out),
            Op::HardSigmoid { input, alpha, beta } => self.hard_sigmoid(*input, *alpha, *beta, out),
            Op::Linear { input, alpha, beta } => self.linear(*input, *alpha, *beta, out),
            Op::Prelu { input, slope } => self.prelu(*input, *slope, out),
            Op::Cast { input, data_type } => self.cast(*input, *data_type, out),
            Op::Where { condition, true_value, false_value } => self.where_(*condition, *true_value, *false_value, out),
            Op::Conv2d { input, filter, options } => self.conv2d(*input, *filter, options, out),
            Op::ConvTranspose2d { input, filter, options } => self.conv_transpose2d(*input, *filter, options, out),
            Op::Pool2d { kind, input, options } => self.pool2d(*kind, *input, options, out),
            Op::Gemm { a, b, options } => self.gemm(*a, *b, options, out),
            Op::Matmul { a, b } => self.matmul(*a, *b, out),
            Op::Attention { query, key, value, options } => self.attention(*query, *key, *value, options, out),
            Op::BatchNormalization { input, mean, variance, options } => {
                self.batch_normalization(*input, *mean, *variance, options, out)
            }
            Op::LayerNormalization { input, options } => self.layer_normalization(*input, options, out),
            Op::InstanceNormalization { input, options } => self.instance_normalization(*input, options, out),
            Op::Softmax { input, axis } => self.softmax(*input, *axis, out),
            Op::Reduce { kind, input, options } => self.reduce(*kind, *input, options, out),
            Op::Reshape { input, .. } => self.reshape(*input, out),
            Op::Transpose { input, permutation } => self.transpose(*input, permutation, out),
            Op::Concat { inputs, axis } => self.concat(inputs, *axis, out),
            Op::Split { input, axis, .. } => self.split(*input, *axis, &node.outputs),
            Op::Slice { input, starts, strides, .. } => self.slice(*input, starts, strides, out),
            Op::Expand { input, .. } => self.expand(*input, out),
            Op::Gather { input, indices, axis } => self.gather(*input, *indices, *axis, out),
            Op::Pad { input, beginning_padding, ending_padding, options } => {
                self.pad(*input, beginning_padding, ending_padding, options, out)
            }
            Op::Resample2d { input, options } => self.resample2d(*input, options, out),
            Op::Predicate { kind, a } => self.predicate(*kind, *a, out),
            Op::ArgMinMax { kind, input, axis, .. } => self.arg_min_max(*kind, *input, *axis, out),
            Op::CumulativeSum { input, axis, exclusive, reversed } => {
                self.cumulative_sum(*input, *axis, *exclusive, *reversed, out)
            }
            Op::DequantizeLinear { input, scale, zero_point } => self.dequantize_linear(*input, *scale, *zero_point, out),
            Op::QuantizeLinear { input, scale, zero_point } => self.quantize_linear(*input, *scale, *zero_point, out),
            Op::GatherElements { input, indices, axis } => self.gather_elements(*input, *indices, *axis, out),
            Op::GatherNd { input, indices } => self.gather_nd(*input, *indices, out),
            Op::ScatterElements { input, indices, updates, axis } => {
                self.scatter_elements(*input, *indices, *updates, *axis, out)
            }
            Op::ScatterNd { input, indices, updates } => self.scatter_nd(*input, *indices, *updates, out),
            Op::Reverse { input, axes } => self.reverse(*input, axes, out),
            Op::Tile { input, repetitions } => self.tile(*input, repetitions, out),
            Op::Triangular { input, upper, diagonal } => self.triangular(*input, *upper, *diagonal, out),
            Op::Gru { .. } | Op::GruCell { .. } | Op::Lstm { .. } | Op::LstmCell { .. } => {
                let net = node.op.recurrent().ok_or("a recurrent operator describes its network")?;
                self.recurrent(&net, &node.outputs)
            }
        }
    }
}
