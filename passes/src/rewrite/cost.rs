//! The cost model extraction minimises: modelled nanoseconds on one core.
//!
//! Elementwise operators cost their arithmetic only, per output element
//! ([`elementwise_ns`]): kiln fuses elementwise chains into the kernel that
//! produces their input (a GEMM epilogue, a reduction's finish, one Map), so
//! they add no memory traffic and no kernel of their own. Every other
//! operator costs a kernel launch ([`LAUNCH_NS`]), its arithmetic at
//! [`NS_PER_FLOP`] and its memory traffic (every non-constant operand read
//! and every result written once) at [`NS_PER_BYTE`]; operators that lower to
//! an alias of their input (reshape, a slice that is a contiguous part:
//! [`contiguous_part`]) cost [`ALIAS_NS`].
//!
//! Calibrated with `kiln bench` on the development machine (Intel Xeon,
//! AVX-512, one thread): GEMM-bound kernels run at ~100 GFLOP/s, a
//! streaming Map at ~17 GB/s, the smallest kernels take ~1 µs, and the
//! elementwise costs are those of a 1024x1024 f32 map of each operator
//! less that of `relu` (the memory traffic).

use kiln_ir::{BinaryOp, Graph, Op, OperandDescriptor, OperandId, OperandKind, UnaryOp};

pub const LAUNCH_NS: f64 = 1000.0;
pub const NS_PER_FLOP: f64 = 0.01;
pub const NS_PER_BYTE: f64 = 0.06;
pub const ALIAS_NS: f64 = 1.0;

/// Nanoseconds per output element of an elementwise operator, or `None`
/// for other operators.
pub fn elementwise_ns(op: &Op) -> Option<f64> {
    const CHEAP: f64 = 0.05;
    Some(match op {
        Op::Unary { kind, .. } => match kind {
            UnaryOp::Exp => 1.05,
            UnaryOp::Log => 1.9,
            UnaryOp::Sigmoid => 1.2,
            // A sigmoid and a product; a softplus and a tanh; a sigmoid and
            // five products and sums (each below its decomposition's sum,
            // so that the one node wins a tie).
            UnaryOp::Silu => 1.2,
            UnaryOp::Mish => 7.0,
            UnaryOp::GeluTanh => 1.4,
            UnaryOp::Tanh => 1.65,
            UnaryOp::Erf => 2.4,
            UnaryOp::Gelu => 8.05,
            UnaryOp::Softplus => 5.4,
            UnaryOp::Sin | UnaryOp::Cos | UnaryOp::Tan => 1.25,
            UnaryOp::Identity => return None,
            _ => CHEAP,
        },
        Op::Binary { kind: BinaryOp::Pow, .. } => 11.5,
        Op::Elu { .. } => 1.05,
        Op::Binary { .. }
        | Op::Compare { .. }
        | Op::Logical { .. }
        | Op::Clamp { .. }
        | Op::LeakyRelu { .. }
        | Op::HardSigmoid { .. }
        | Op::Linear { .. }
        | Op::Prelu { .. }
        | Op::Cast { .. }
        | Op::Where { .. } => CHEAP,
        _ => return None,
    })
}

/// The modelled time of `op` (with slots) whose operands have the
/// descriptors `inputs[slot]` (and whether each is a constant: constants
/// are packed or folded at compile time, never read at run time) and whose
/// results have `outputs`.
pub fn op_cost(op: &Op, inputs: &[(OperandDescriptor, bool)], outputs: &[OperandDescriptor]) -> f64 {
    if matches!(op, Op::Reshape { .. } | Op::Unary { kind: UnaryOp::Identity, .. }) {
        return ALIAS_NS;
    }
    if let (Op::Slice { starts, sizes, strides, .. }, [(input, _)]) = (op, inputs)
        && contiguous_part(input.shape.dims(), starts, sizes, strides.as_deref())
    {
        return ALIAS_NS;
    }
    let elements: usize = outputs.iter().map(|d| d.shape.element_count()).sum();
    if let Some(ns) = elementwise_ns(op) {
        return elements as f64 * ns;
    }
    let flops = kiln_ir::cost::op_flops(op, &|id: OperandId| &inputs[id.index()].0, outputs) as f64;
    let read: usize = inputs.iter().filter(|(_, constant)| !constant).map(|(d, _)| d.byte_length()).sum();
    let written: usize = outputs.iter().map(|d| d.byte_length()).sum();
    LAUNCH_NS + flops * NS_PER_FLOP + (read + written) as f64 * NS_PER_BYTE
}

/// Whether the slice `starts`/`sizes`/`strides` of a tensor of `dims` is
/// one contiguous range of its elements (every axis before the first
/// partial one of extent 1, every axis after it whole, unit strides): the
/// views pass makes such a slice a view of its input, without a copy.
pub fn contiguous_part(dims: &[u32], starts: &[u32], sizes: &[u32], strides: Option<&[u32]>) -> bool {
    if strides.is_some_and(|s| s.iter().any(|&s| s != 1)) || sizes.len() != dims.len() || starts.len() != dims.len() {
        return false;
    }
    let Some(first) = (0..dims.len()).find(|&j| sizes[j] != dims[j]) else { return true };
    sizes[..first].iter().all(|&s| s == 1) && (first + 1..dims.len()).all(|j| starts[j] == 0 && sizes[j] == dims[j])
}

/// The modelled time of every node of `graph`.
pub fn graph_cost(graph: &Graph) -> f64 {
    graph
        .nodes()
        .iter()
        .map(|node| {
            let (op, operands) = super::egraph::with_slots(&node.op);
            let inputs: Vec<_> = operands
                .iter()
                .map(|&o| (graph.desc(o).clone(), matches!(graph.operand(o).kind, OperandKind::Constant(_))))
                .collect();
            let outputs: Vec<_> = node.outputs.iter().map(|&o| graph.desc(o).clone()).collect();
            op_cost(&op, &inputs, &outputs)
        })
        .sum()
}
