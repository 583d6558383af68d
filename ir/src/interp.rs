//! The reference interpreter: the numeric meaning of every operator, and the
//! oracle every backend is tested against.
//!
//! Conventions, shared by every operator:
//! - Floating-point operators compute in `f64` (float16 and float32 inputs
//!   are widened exactly) and round once, to nearest, when the result is
//!   encoded in the output data type. Sums accumulate in `f64`.
//! - Integer operators compute exactly in `i128` (wrapping at 128 bits, which
//!   agrees with wrapping at the output width) and then wrap to the output
//!   data type in two's complement, as JavaScript typed arrays do.
//! - Integer division truncates toward zero; division by zero gives 0.
//!   An integer `pow` is exact for non-negative exponents; for a negative
//!   exponent it is the truncated quotient `1 / a^-b` (so `1`, `±1` for
//!   `a = ±1`, and 0 otherwise, including `a = 0`).
//! - Data movement (reshape, transpose, concat, split, slice, expand, gather,
//!   pad, where, nearest-neighbor resampling, reverse, tile, triangular, the
//!   gathers and scatters) copies element bytes, so every data type, NaN
//!   payloads included, passes through unchanged.
//! - Indices (gather, gatherElements, gatherND, the scatters) count from the
//!   end of their axis when negative, and one still outside the axis is
//!   clamped to the nearest valid position ([`clamped_index`]).
//!
//! Operator-specific choices are documented on the functions that implement
//! them (see the submodules).
//!
//! The interpreter trusts nothing it is given: [`eval_op`] re-runs the
//! operator's shape rule on the tensors it receives and checks the result
//! against the output descriptors, so a mismatch is an [`InterpError`] and
//! never an out-of-bounds panic.

mod conv;
mod elementwise;
mod indexing;
mod linalg;
mod movement;
mod norm;
mod pool;
mod quantize;
mod recurrent;
mod reduce;
mod resample;

pub use elementwise::{erf, erfc};
pub use resample::{linear_taps, nearest_indices};

use crate::{infer, DataType, Graph, Node, Op, OperandDescriptor, OperandId, OperandKind, Tensor, Values};

/// An error while interpreting a graph.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{op}: {message}")]
pub struct InterpError {
    pub op: &'static str,
    pub message: String,
}

/// Internal result: operator code reports a message; [`eval_op`] names the op.
type Res<T> = Result<T, String>;

/// Runs `graph` on `feeds` (already checked with [`Graph::check_feeds`]) and
/// returns the outputs in `graph.outputs()` order.
///
/// Intermediate values are dropped after their last reader has run.
pub fn run(graph: &Graph, feeds: &[(&str, &Tensor)]) -> Result<Vec<Tensor>, InterpError> {
    let graph_err = |message: String| InterpError { op: "graph", message };
    let operands = graph.operands();
    let mut values: Vec<Option<Tensor>> = vec![None; operands.len()];
    for (i, operand) in operands.iter().enumerate() {
        match &operand.kind {
            OperandKind::Input { name } => {
                let (_, tensor) = feeds
                    .iter()
                    .find(|(n, _)| n == name)
                    .ok_or_else(|| graph_err(format!("input `{name}` is not fed")))?;
                if tensor.desc() != &operand.desc {
                    return Err(graph_err(format!(
                        "input `{name}` expects {}, got {}",
                        operand.desc,
                        tensor.desc()
                    )));
                }
                values[i] = Some((*tensor).clone());
            }
            OperandKind::Constant(tensor) => values[i] = Some(tensor.clone()),
            OperandKind::Output { .. } => {}
        }
    }

    // The index of the last node that reads each operand; graph outputs are kept.
    let mut last_use = vec![None; operands.len()];
    for (n, node) in graph.nodes().iter().enumerate() {
        for (_, id) in node.op.inputs() {
            if let Some(slot) = last_use.get_mut(id.index()) {
                *slot = Some(n);
            }
        }
    }
    for (_, id) in graph.outputs() {
        if let Some(slot) = last_use.get_mut(id.index()) {
            *slot = None;
        }
    }

    for (n, node) in graph.nodes().iter().enumerate() {
        let inputs = node.op.inputs();
        for (name, id) in &inputs {
            if values.get(id.index()).and_then(Option::as_ref).is_none() {
                return Err(InterpError {
                    op: node.op.name(),
                    message: format!("operand `{name}` ({id}) has no value yet: the nodes are not in execution order"),
                });
            }
        }
        let descs: Vec<OperandDescriptor> = node
            .outputs
            .iter()
            .map(|&o| operands.get(o.index()).map(|x| x.desc.clone()))
            .collect::<Option<_>>()
            .ok_or_else(|| graph_err(format!("node {n} has an output outside the graph")))?;
        let results = {
            let values = &values;
            // Every input was checked above to have a value.
            let lookup = |id: OperandId| -> &Tensor {
                values[id.index()].as_ref().expect("checked before the call")
            };
            eval_op(&node.op, &lookup, &descs)?
        };
        for (&o, t) in node.outputs.iter().zip(results) {
            values[o.index()] = Some(t);
        }
        for (_, id) in &inputs {
            if last_use[id.index()] == Some(n) {
                values[id.index()] = None;
            }
        }
    }

    graph
        .outputs()
        .iter()
        .map(|(name, id)| {
            values
                .get(id.index())
                .and_then(Option::clone)
                .ok_or_else(|| graph_err(format!("output `{name}` was never computed")))
        })
        .collect()
}

/// Results of more elements than this are not computed at compile time
/// even when every input is a constant (see [`fold_node`]).
pub const MAX_FOLDED_ELEMENTS: usize = 1 << 24;

/// Operators costing more than this many operations ([`crate::cost`]) are
/// not computed at compile time: the interpreter folding them would slow
/// loading and compiling down.
pub const MAX_FOLDED_FLOPS: u64 = 1 << 26;

/// Constant folding of one node: `None` unless the node reads at least one
/// operand, every one of them a constant, and its results and cost are
/// within [`MAX_FOLDED_ELEMENTS`] and [`MAX_FOLDED_FLOPS`]; else the node's
/// results computed by [`eval_op`].
pub fn fold_node(graph: &Graph, node: &Node) -> Option<Result<Vec<Tensor>, InterpError>> {
    let inputs = node.op.inputs();
    let constant = |id: OperandId| match &graph.operand(id).kind {
        OperandKind::Constant(t) => Some(t),
        _ => None,
    };
    let foldable = !inputs.is_empty() && inputs.iter().all(|&(_, id)| constant(id).is_some());
    let small = || {
        node.outputs.iter().all(|&o| graph.desc(o).shape.element_count() <= MAX_FOLDED_ELEMENTS)
            && crate::cost::node_flops(graph, node) <= MAX_FOLDED_FLOPS
    };
    if !(foldable && small()) {
        return None;
    }
    let descs: Vec<_> = node.outputs.iter().map(|&o| graph.desc(o).clone()).collect();
    Some(eval_op(&node.op, &|id| constant(id).expect("checked above"), &descs))
}

/// Evaluates one operator on tensors for its operands; `operand(id)` returns
/// the value of an input operand; `outputs` are the node's output
/// descriptors (from shape inference). Used by [`run`] and by constant
/// folding.
pub fn eval_op<'t>(
    op: &Op,
    operand: &dyn Fn(OperandId) -> &'t Tensor,
    outputs: &[OperandDescriptor],
) -> Result<Vec<Tensor>, InterpError> {
    let fail = |message: String| InterpError { op: op.name(), message };
    let inferred = infer::output_descriptors(op, &|id| operand(id).desc())
        .map_err(|e| fail(format!("operand `{}`: {}", e.operand, e.rule)))?;
    if inferred != outputs {
        let show = |d: &[OperandDescriptor]| d.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(", ");
        return Err(fail(format!(
            "the output descriptors [{}] disagree with the operands, which give [{}]",
            show(outputs),
            show(&inferred)
        )));
    }
    eval_checked(op, operand, outputs).map_err(fail)
}

/// [`eval_op`] after the shapes have been checked.
fn eval_checked<'t>(
    op: &Op,
    operand: &dyn Fn(OperandId) -> &'t Tensor,
    outputs: &[OperandDescriptor],
) -> Res<Vec<Tensor>> {
    let out = outputs.first().ok_or("the operator has no outputs")?;
    let opt = |id: Option<OperandId>| id.map(operand);
    let one = |t: Res<Tensor>| t.map(|t| vec![t]);
    match op {
        Op::Binary { kind, a, b } => one(elementwise::binary(*kind, operand(*a), operand(*b), out)),
        Op::Compare { kind, a, b } => one(elementwise::compare(*kind, operand(*a), operand(*b), out)),
        Op::Logical { kind, a, b } => one(elementwise::logical(*kind, operand(*a), operand(*b), out)),
        Op::Unary { kind, input } => one(elementwise::unary(*kind, operand(*input), out)),
        Op::Clamp { input, min_value, max_value } => {
            one(elementwise::clamp(operand(*input), *min_value, *max_value, out))
        }
        Op::Elu { input, alpha } => {
            let alpha = *alpha;
            one(elementwise::map_float(operand(*input), out, |x| if x < 0.0 { alpha * x.exp_m1() } else { x }))
        }
        Op::LeakyRelu { input, alpha } => {
            let alpha = *alpha;
            one(elementwise::map_float(operand(*input), out, |x| if x < 0.0 { alpha * x } else { x }))
        }
        Op::HardSigmoid { input, alpha, beta } => {
            let (alpha, beta) = (*alpha, *beta);
            one(elementwise::map_float(operand(*input), out, |x| elementwise::clamp_nan(alpha * x + beta, 0.0, 1.0)))
        }
        Op::Linear { input, alpha, beta } => {
            let (alpha, beta) = (*alpha, *beta);
            one(elementwise::map_float(operand(*input), out, |x| alpha * x + beta))
        }
        Op::Prelu { input, slope } => one(elementwise::prelu(operand(*input), operand(*slope), out)),
        Op::Cast { input, .. } => one(encode(out, operand(*input).values())),
        Op::Conv2d { input, filter, options } => {
            one(conv::conv2d(operand(*input), operand(*filter), opt(options.bias), options, out))
        }
        Op::ConvTranspose2d { input, filter, options } => {
            one(conv::conv_transpose2d(operand(*input), operand(*filter), opt(options.bias), options, out))
        }
        Op::Pool2d { kind, input, options } => one(pool::pool2d(*kind, operand(*input), options, out)),
        Op::Gemm { a, b, options } => one(linalg::gemm(operand(*a), operand(*b), opt(options.c), options, out)),
        Op::Matmul { a, b } => one(linalg::matmul(operand(*a), operand(*b), out)),
        Op::BatchNormalization { input, mean, variance, options } => one(norm::batch_normalization(
            operand(*input),
            operand(*mean),
            operand(*variance),
            opt(options.scale),
            opt(options.bias),
            options,
            out,
        )),
        Op::LayerNormalization { input, options } => one(norm::layer_normalization(
            operand(*input),
            opt(options.scale),
            opt(options.bias),
            options,
            out,
        )),
        Op::InstanceNormalization { input, options } => one(norm::instance_normalization(
            operand(*input),
            opt(options.scale),
            opt(options.bias),
            options,
            out,
        )),
        Op::Softmax { input, axis } => one(norm::softmax(operand(*input), *axis, out)),
        Op::Reduce { kind, input, options } => one(reduce::reduce(*kind, operand(*input), options, out)),
        Op::Reshape { input, .. } => one(movement::reshape(operand(*input), out)),
        Op::Transpose { input, permutation } => one(movement::transpose(operand(*input), permutation, out)),
        Op::Concat { inputs, axis } => {
            let tensors: Vec<&Tensor> = inputs.iter().map(|&i| operand(i)).collect();
            one(movement::concat(&tensors, *axis, out))
        }
        Op::Split { input, axis, .. } => movement::split(operand(*input), *axis, outputs),
        Op::Slice { input, starts, strides, .. } => one(movement::slice(operand(*input), starts, strides, out)),
        Op::Expand { input, .. } => one(movement::expand(operand(*input), out)),
        Op::Gather { input, indices, axis } => one(movement::gather(operand(*input), operand(*indices), *axis, out)),
        Op::Pad { input, beginning_padding, options, .. } => {
            one(movement::pad(operand(*input), beginning_padding, options, out))
        }
        Op::Resample2d { input, options } => one(resample::resample2d(operand(*input), options, out)),
        Op::Where { condition, true_value, false_value } => one(elementwise::where_(
            operand(*condition),
            operand(*true_value),
            operand(*false_value),
            out,
        )),
        Op::Predicate { kind, a } => one(elementwise::predicate(*kind, operand(*a), out)),
        Op::ArgMinMax { kind, input, axis, .. } => one(reduce::arg_min_max(*kind, operand(*input), *axis, out)),
        Op::CumulativeSum { input, axis, exclusive, reversed } => {
            one(reduce::cumulative_sum(operand(*input), *axis, *exclusive, *reversed, out))
        }
        Op::DequantizeLinear { input, scale, zero_point } => {
            one(quantize::dequantize_linear(operand(*input), operand(*scale), operand(*zero_point), out))
        }
        Op::QuantizeLinear { input, scale, zero_point } => {
            one(quantize::quantize_linear(operand(*input), operand(*scale), operand(*zero_point), out))
        }
        Op::GatherElements { input, indices, axis } => {
            one(indexing::gather_elements(operand(*input), operand(*indices), *axis, out))
        }
        Op::GatherNd { input, indices } => one(indexing::gather_nd(operand(*input), operand(*indices), out)),
        Op::ScatterElements { input, indices, updates, axis } => {
            one(indexing::scatter_elements(operand(*input), operand(*indices), operand(*updates), *axis, out))
        }
        Op::ScatterNd { input, indices, updates } => {
            one(indexing::scatter_nd(operand(*input), operand(*indices), operand(*updates), out))
        }
        Op::Reverse { input, axes } => one(movement::reverse(operand(*input), axes, out)),
        Op::Tile { input, .. } => one(movement::tile(operand(*input), out)),
        Op::Triangular { input, upper, diagonal } => one(movement::triangular(operand(*input), *upper, *diagonal, out)),
        Op::Attention { query, key, value, options } => one(linalg::attention(
            operand(*query),
            operand(*key),
            operand(*value),
            opt(options.mask),
            options.scale,
            out,
        )),
        Op::Gru { .. } | Op::GruCell { .. } | Op::Lstm { .. } | Op::LstmCell { .. } => {
            let net = op.recurrent().ok_or("a recurrent operator describes its network")?;
            recurrent::run(&net, operand, outputs)
        }
    }
}


// ---------------------------------------------------------------------------
// Helpers shared by the operator modules.

/// Wraps an exact integer to integer type `t` (two's complement, like a
/// JavaScript typed array store). Float types pass `x` through.
fn wrap_int(t: DataType, x: i128) -> i128 {
    match t {
        DataType::Int32 => x as i32 as i128,
        DataType::Uint32 => x as u32 as i128,
        DataType::Int64 => x as i64 as i128,
        DataType::Uint64 => x as u64 as i128,
        DataType::Int8 => x as i8 as i128,
        DataType::Uint8 => x as u8 as i128,
        DataType::Float32 | DataType::Float16 => x,
    }
}

/// Encodes computed values as a tensor of `desc`: floats are rounded to
/// nearest (or, for an integer type, truncated and saturated), integers are
/// wrapped to an integer type or rounded to a float type.
fn encode(desc: &OperandDescriptor, values: Values) -> Res<Tensor> {
    let expected = desc.shape.element_count();
    if values.len() != expected {
        return Err(format!("computed {} values for an output {desc} of {expected} elements", values.len()));
    }
    let values = match values {
        Values::Int(v) if !desc.data_type.is_float() => {
            Values::Int(v.into_iter().map(|x| wrap_int(desc.data_type, x)).collect())
        }
        other => other,
    };
    Tensor::from_values(desc.clone(), &values).map_err(|e| e.to_string())
}

/// Encodes float results.
fn encode_f64(desc: &OperandDescriptor, values: Vec<f64>) -> Res<Tensor> {
    encode(desc, Values::Float(values))
}

/// The elements of a floating-point tensor, widened to `f64`.
fn floats(t: &Tensor) -> Res<Vec<f64>> {
    match t.values() {
        Values::Float(v) => Ok(v),
        Values::Int(_) => Err(format!("expected a float32 or float16 operand, got {}", t.desc())),
    }
}

/// Row-major strides, in elements, of `shape`.
fn strides_of(shape: &[u32]) -> Vec<usize> {
    let mut strides = vec![1usize; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        strides[i] = strides[i + 1] * shape[i + 1] as usize;
    }
    strides
}

/// For every element of `shape` in row-major order, `base + Σ index[i] *
/// strides[i]`: the source element of an affine data movement (transpose,
/// slice, broadcast, ...).
fn affine_map(shape: &[u32], base: usize, strides: &[usize]) -> Vec<usize> {
    let count: usize = shape.iter().map(|&d| d as usize).product();
    let mut out = Vec::with_capacity(count);
    if count == 0 {
        return out;
    }
    let rank = shape.len();
    let mut index = vec![0usize; rank];
    let mut offset = base;
    for _ in 0..count {
        out.push(offset);
        // Advance the odometer.
        for axis in (0..rank).rev() {
            index[axis] += 1;
            offset += strides[axis];
            if index[axis] < shape[axis] as usize {
                break;
            }
            offset -= strides[axis] * index[axis];
            index[axis] = 0;
        }
    }
    out
}

/// For every element of `to`, the index of the element of `from` that numpy
/// broadcasting reads (`from` is right-aligned; size-1 dimensions repeat).
fn broadcast_map(from: &[u32], to: &[u32]) -> Res<Vec<usize>> {
    if from.len() > to.len() {
        return Err(format!("shape {from:?} does not broadcast to {to:?}"));
    }
    let lead = to.len() - from.len();
    let from_strides = strides_of(from);
    let mut strides = vec![0usize; to.len()];
    for (i, &d) in from.iter().enumerate() {
        if d == to[lead + i] {
            strides[lead + i] = from_strides[i];
        } else if d != 1 {
            return Err(format!("shape {from:?} does not broadcast to {to:?}"));
        }
    }
    Ok(affine_map(to, 0, &strides))
}

/// Builds a tensor of `desc` whose element `i` is element `map[i]` of `src`
/// (same data type): a pure data movement.
fn gather_elements(src: &Tensor, map: &[usize], desc: &OperandDescriptor) -> Res<Tensor> {
    if src.data_type() != desc.data_type {
        return Err(format!("data type {} does not match the output {}", src.data_type(), desc));
    }
    let size = desc.data_type.byte_size();
    let bytes = src.bytes();
    let mut out = Vec::with_capacity(map.len() * size);
    for &m in map {
        let element = bytes
            .get(m * size..(m + 1) * size)
            .ok_or_else(|| format!("element {m} is outside the operand {}", src.desc()))?;
        out.extend_from_slice(element);
    }
    Tensor::from_bytes(desc.clone(), out).map_err(|e| e.to_string())
}

/// Calls `f` with every index of `shape` in row-major order (once, with
/// an empty index, for a scalar).
fn for_each_index(shape: &[u32], mut f: impl FnMut(&[usize])) {
    let count: usize = shape.iter().map(|&d| d as usize).product();
    let mut index = vec![0usize; shape.len()];
    for _ in 0..count {
        f(&index);
        for axis in (0..shape.len()).rev() {
            index[axis] += 1;
            if index[axis] < shape[axis] as usize {
                break;
            }
            index[axis] = 0;
        }
    }
}

/// An index into an axis of `dim` elements: a negative one counts from the
/// end, and one still outside `[0, dim)` is clamped to the nearest end.
fn clamped_index(i: i128, dim: u32) -> usize {
    let dim = i128::from(dim);
    (if i < 0 { i + dim } else { i }).clamp(0, dim - 1) as usize
}

/// The integer elements of an indices operand.
fn index_values(indices: &Tensor) -> Res<Vec<i128>> {
    match indices.values() {
        Values::Int(v) => Ok(v),
        Values::Float(_) => Err(format!("indices must be an integer tensor, got {}", indices.desc())),
    }
}

/// Builds a tensor of `desc` whose element `i` is element `e` of
/// `sources[s]` where `picks[i]` is `Some((s, e))`, and zero bytes (0 in
/// every data type) where it is `None`. The sources have `desc`'s type.
fn assemble(sources: &[&Tensor], picks: &[Option<(usize, usize)>], desc: &OperandDescriptor) -> Res<Tensor> {
    let size = desc.data_type.byte_size();
    if let Some(t) = sources.iter().find(|t| t.data_type() != desc.data_type) {
        return Err(format!("data type {} does not match the output {}", t.data_type(), desc));
    }
    let mut out = Vec::with_capacity(picks.len() * size);
    for pick in picks {
        match *pick {
            Some((s, e)) => {
                let element = sources[s]
                    .bytes()
                    .get(e * size..(e + 1) * size)
                    .ok_or_else(|| format!("element {e} is outside the operand {}", sources[s].desc()))?;
                out.extend_from_slice(element);
            }
            None => out.extend(std::iter::repeat_n(0u8, size)),
        }
    }
    Tensor::from_bytes(desc.clone(), out).map_err(|e| e.to_string())
}

/// Transposes row-major `values` of `shape`: output axis `i` is input axis
/// `perm[i]`. Returns the permuted values and shape.
fn permute<T: Copy>(values: &[T], shape: &[u32], perm: &[usize]) -> (Vec<T>, Vec<u32>) {
    let in_strides = strides_of(shape);
    let out_shape: Vec<u32> = perm.iter().map(|&p| shape[p]).collect();
    let src: Vec<usize> = perm.iter().map(|&p| in_strides[p]).collect();
    let map = affine_map(&out_shape, 0, &src);
    (map.into_iter().map(|i| values[i]).collect(), out_shape)
}
