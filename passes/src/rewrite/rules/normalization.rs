//! Decomposed normalizations, as exporters write them (ONNX before opset
//! 17 has no LayerNormalization; many exporters spell softmax out),
//! recognised as the WebNN operator they compute.

use egg::Id;
use kiln_ir::infer::resolved_reduce_axes;
use kiln_ir::{BinaryOp, LayerNormalizationOptions, Op, OperandDescriptor, ReduceOp, Shape, Tensor, UnaryOp};

use super::{find, is_uniform, op, uniform, Rule};
use crate::rewrite::egraph::{constant, desc, slot, EGraph, ENode, Term};

pub const RULES: &[Rule] = &[
    Rule { name: "softmax", apply: softmax },
    Rule { name: "layer-norm", apply: layer_norm },
    Rule { name: "layer-norm-scale", apply: layer_norm_scale },
    Rule { name: "layer-norm-bias", apply: layer_norm_bias },
];

/// A `kind` reduction that keeps its dimensions in class `id`: its axes
/// (resolved, ascending) and its input.
fn reduction(egraph: &EGraph, id: Id, kind: ReduceOp) -> Option<(Vec<u32>, Id)> {
    let (Op::Reduce { options, .. }, &[x]) =
        find(egraph, id, |o| matches!(o, Op::Reduce { kind: k, options, .. } if *k == kind && options.keep_dimensions))?
    else {
        return None;
    };
    let mut axes = resolved_reduce_axes(options, desc(egraph, x).shape.rank());
    axes.sort_unstable();
    Some((axes, x))
}

/// The operands `(a, b)` of a `kind` binary operator in class `id`.
fn binary(egraph: &EGraph, id: Id, kind: BinaryOp) -> Option<(Id, Id)> {
    match find(egraph, id, |o| matches!(o, Op::Binary { kind: k, .. } if *k == kind))? {
        (_, &[a, b]) => Some((a, b)),
        _ => None,
    }
}

/// `exp(x - reduceMax(x, [a])) / reduceSum(that, [a])` (or without the
/// maximum), both reductions keeping dimensions, is `softmax(x, a)`.
fn softmax(egraph: &EGraph, node: &ENode) -> Option<Term> {
    let (Op::Binary { kind: BinaryOp::Div, .. }, &[e, s]) = op(node)? else { return None };
    let (axes, summed) = reduction(egraph, s, ReduceOp::Sum)?;
    let [axis] = axes[..] else { return None };
    if egraph.find(summed) != egraph.find(e) {
        return None;
    }
    let (_, &[y]) = find(egraph, e, |o| matches!(o, Op::Unary { kind: UnaryOp::Exp, .. }))? else { return None };
    let x = match binary(egraph, y, BinaryOp::Sub) {
        Some((x, m)) if reduction(egraph, m, ReduceOp::Max) == Some((vec![axis], x)) => x,
        _ => y,
    };
    if desc(egraph, x) != desc(egraph, e) {
        return None;
    }
    Some(Term::Op(Op::Softmax { input: slot(0), axis }, vec![Term::Class(x)]))
}

/// `(x - mean) / sqrt(mean((x - mean)^2) + ε)` with `mean` a reduceMean
/// over axes A keeping dimensions (the square as `pow(d, 2)` or `d * d`)
/// is `layerNormalization(x, axes = A, epsilon = ε)`.
fn layer_norm(egraph: &EGraph, node: &ENode) -> Option<Term> {
    let (Op::Binary { kind: BinaryOp::Div, .. }, &[d, s]) = op(node)? else { return None };
    let (x, m) = binary(egraph, d, BinaryOp::Sub)?;
    let (axes, of) = reduction(egraph, m, ReduceOp::Mean)?;
    if egraph.find(of) != egraph.find(x) {
        return None;
    }
    let (_, &[shifted]) = find(egraph, s, |o| matches!(o, Op::Unary { kind: UnaryOp::Sqrt, .. }))? else {
        return None;
    };
    let (p, q) = binary(egraph, shifted, BinaryOp::Add)?;
    let (variance, epsilon) = [(p, q), (q, p)].into_iter().find_map(|(v, k)| {
        let eps = constant(egraph, k).and_then(uniform)?;
        (desc(egraph, k).shape.element_count() == 1 && eps >= 0.0).then_some((v, eps))
    })?;
    let (var_axes, squared) = reduction(egraph, variance, ReduceOp::Mean)?;
    let is_square = egraph[squared].nodes.iter().filter_map(op).any(|(o, c)| match (o, c) {
        (Op::Binary { kind: BinaryOp::Pow, .. }, &[b, two]) => egraph.find(b) == egraph.find(d) && is_uniform(egraph, two, 2.0),
        (Op::Binary { kind: BinaryOp::Mul, .. }, &[a, b]) => egraph.find(a) == egraph.find(d) && egraph.find(b) == egraph.find(d),
        _ => false,
    });
    if var_axes != axes || !is_square || desc(egraph, x) != desc(egraph, d) {
        return None;
    }
    let options = LayerNormalizationOptions { axes: Some(axes), epsilon, ..LayerNormalizationOptions::default() };
    Some(Term::Op(Op::LayerNormalization { input: slot(0), options }, vec![Term::Class(x)]))
}

/// A layerNormalization without `which` (scale or bias) in class `id`, over
/// trailing axes: its input and options.
fn layer_norm_in(egraph: &EGraph, id: Id, scale: bool) -> Option<(Vec<Id>, LayerNormalizationOptions)> {
    let (Op::LayerNormalization { options, .. }, children) = find(egraph, id, |o| {
        matches!(o, Op::LayerNormalization { options, .. } if if scale { options.scale.is_none() && options.bias.is_none() } else { options.bias.is_none() })
    })?
    else {
        return None;
    };
    Some((children.to_vec(), options.clone()))
}

/// The constant class `k` as a scale or bias of a layer normalization of
/// `input` over `axes`: `k` broadcasts along the normalized axes only, which
/// must be the trailing ones; reshaped to their sizes if need be.
fn affine_operand(egraph: &EGraph, k: Id, input: &OperandDescriptor, axes: &[u32]) -> Option<Term> {
    let t = constant(egraph, k)?;
    let rank = input.shape.rank();
    let trailing = axes.iter().enumerate().all(|(i, &a)| a as usize == rank - axes.len() + i);
    let want: Vec<u32> = axes.iter().map(|&a| input.shape.dims()[a as usize]).collect();
    let dims = t.shape().dims();
    let lead = dims.len().checked_sub(want.len())?;
    if !trailing || t.data_type() != input.data_type || dims[lead..] != want[..] || dims[..lead].iter().any(|&d| d != 1) {
        return None;
    }
    if lead == 0 {
        return Some(Term::Class(k));
    }
    let reshaped = Tensor::from_bytes(OperandDescriptor::new(t.data_type(), Shape::new(want)), t.bytes().to_vec()).ok()?;
    Some(Term::Constant(reshaped))
}

/// `layerNormalization(x) * γ` (either order) for a constant γ over the
/// normalized axes is `layerNormalization(x, scale = γ)`.
fn layer_norm_scale(egraph: &EGraph, node: &ENode) -> Option<Term> {
    let (Op::Binary { kind: BinaryOp::Mul, .. }, &[a, b]) = op(node)? else { return None };
    [(a, b), (b, a)].into_iter().find_map(|(n, g)| {
        let (children, options) = layer_norm_in(egraph, n, true)?;
        let x = children[0];
        let axes = options.axes.clone()?;
        let scale = affine_operand(egraph, g, desc(egraph, x), &axes)?;
        let options = LayerNormalizationOptions { scale: Some(slot(1)), ..options };
        Some(Term::Op(Op::LayerNormalization { input: slot(0), options }, vec![Term::Class(x), scale]))
    })
}

/// `layerNormalization(x, scale?) + β` (either order) for a constant β over
/// the normalized axes is `layerNormalization(x, scale?, bias = β)`.
fn layer_norm_bias(egraph: &EGraph, node: &ENode) -> Option<Term> {
    let (Op::Binary { kind: BinaryOp::Add, .. }, &[a, b]) = op(node)? else { return None };
    [(a, b), (b, a)].into_iter().find_map(|(n, k)| {
        let (children, options) = layer_norm_in(egraph, n, false)?;
        let x = children[0];
        let axes = options.axes.clone()?;
        let bias = affine_operand(egraph, k, desc(egraph, x), &axes)?;
        let mut terms = vec![Term::Class(x)];
        let scale = options.scale.map(|_| {
            terms.push(Term::Class(children[1]));
            slot(1)
        });
        let bias_slot = slot(terms.len());
        terms.push(bias);
        let options = LayerNormalizationOptions { scale, bias: Some(bias_slot), ..options };
        Some(Term::Op(Op::LayerNormalization { input: slot(0), options }, terms))
    })
}
