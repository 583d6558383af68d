//! Operation counts for reporting (`kiln info`, GFLOP/s in benchmarks).
//!
//! A multiply-add counts as two operations; element-wise operators count one
//! per output element; data movement counts zero. These are the conventional
//! figures used to compare frameworks, not a latency model.

use crate::infer::{conv2d_filter_dims, conv_transpose2d_filter_dims, resolved_window};
use crate::{Graph, Node, Op, OperandDescriptor, OperandId};

/// Floating-point operations performed by one node.
pub fn node_flops(graph: &Graph, node: &Node) -> u64 {
    let outputs: Vec<_> = node.outputs.iter().map(|&o| graph.desc(o).clone()).collect();
    op_flops(&node.op, &|id| graph.desc(id), &outputs)
}

/// Floating-point operations performed by `op`, whose operands have the
/// descriptors `desc(id)` and whose results have `outputs`.
pub fn op_flops<'a>(op: &Op, desc: &dyn Fn(OperandId) -> &'a OperandDescriptor, outputs: &[OperandDescriptor]) -> u64 {
    let count = |id| desc(id).shape.element_count() as u64;
    let out = outputs.iter().map(|o| o.shape.element_count() as u64).sum::<u64>();
    match op {
        Op::Conv2d { filter, options, .. } => {
            let (_, cin_per_group, kh, kw) = conv2d_filter_dims(options.filter_layout, &desc(*filter).shape);
            2 * out * u64::from(cin_per_group) * u64::from(kh) * u64::from(kw)
        }
        Op::ConvTranspose2d { input, filter, options } => {
            let (_, cout_per_group, kh, kw) =
                conv_transpose2d_filter_dims(options.filter_layout, &desc(*filter).shape);
            2 * count(*input) * u64::from(cout_per_group) * u64::from(kh) * u64::from(kw)
        }
        Op::Gemm { a, options, .. } => {
            let a = &desc(*a).shape;
            let k = if options.a_transpose { a.dims()[0] } else { a.dims()[1] };
            2 * out * u64::from(k)
        }
        Op::Matmul { a, .. } => {
            let a = &desc(*a).shape;
            2 * out * u64::from(a.dims()[a.rank() - 1])
        }
        Op::Attention { query, key, value, .. } => {
            let last = |id: OperandId| {
                let d = desc(id).shape.dims().to_vec();
                (u64::from(d[d.len() - 2]), u64::from(d[d.len() - 1]))
            };
            let ((_, e), (s, _), (_, ev)) = (last(*query), last(*key), last(*value));
            // Both products, then scale, mask, and the softmax's 3 per score.
            let rows = out / ev.max(1);
            2 * rows * s * (e + ev) + 5 * rows * s
        }
        Op::Gru { input, weight, recurrent_weight, .. }
        | Op::GruCell { input, weight, recurrent_weight, .. }
        | Op::Lstm { input, weight, recurrent_weight, .. }
        | Op::LstmCell { input, weight, recurrent_weight, .. } => {
            // Both products for every step and direction (the weights hold
            // every direction's gates), then a few operations per gate value.
            let d = desc(*input).shape.dims().to_vec();
            let rows: u64 = d[..d.len() - 1].iter().map(|&x| u64::from(x)).product();
            let gates_per_row = desc(*weight).shape.dims()[..desc(*weight).shape.rank() - 1]
                .iter()
                .map(|&x| u64::from(x))
                .product::<u64>();
            2 * rows * (count(*weight) + count(*recurrent_weight)) + 4 * rows * gates_per_row
        }
        Op::Pool2d { input, options, .. } => {
            let [h, w] = resolved_window(options, &desc(*input).shape);
            out * u64::from(h) * u64::from(w)
        }
        Op::Reduce { input, .. } => count(*input),
        Op::BatchNormalization { .. } | Op::InstanceNormalization { .. } | Op::LayerNormalization { .. } => 4 * out,
        Op::Softmax { .. } => 3 * out,
        Op::Reshape { .. }
        | Op::Transpose { .. }
        | Op::Concat { .. }
        | Op::Split { .. }
        | Op::Slice { .. }
        | Op::Expand { .. }
        | Op::Gather { .. }
        | Op::Pad { .. }
        | Op::Cast { .. }
        | Op::Reverse { .. }
        | Op::Tile { .. }
        | Op::GatherElements { .. }
        | Op::GatherNd { .. }
        | Op::ScatterElements { .. }
        | Op::ScatterNd { .. } => 0,
        _ => out,
    }
}

/// Floating-point operations of a whole graph.
pub fn graph_flops(graph: &Graph) -> u64 {
    graph.nodes().iter().map(|n| node_flops(graph, n)).sum()
}
