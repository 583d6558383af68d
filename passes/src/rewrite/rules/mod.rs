//! The rewrite rules, grouped by family. Each rule is a named function
//! from one e-node (and the e-graph it sits in) to an equivalent term, or
//! `None` where it does not apply; [`super::rewrite`] adds the term and
//! merges it with the e-node's class. No rule commutes or reassociates in
//! general (the e-graph must stay small): rules that accept an operator's
//! operands in either order say so.
//!
//! | family | rules |
//! |---|---|
//! | [`identities`] | `identity`, `cast-same-type`, `reshape-same-shape`, `expand-same-shape`, `transpose-identity`, `mul-one`, `div-one`, `add-zero`, `sub-zero` |
//! | [`movement`] | `reshape-reshape`, `transpose-transpose` |
//! | [`folding`] | `batchnorm-into-conv`, `mul-into-conv`, `add-into-conv`, `pad-into-conv`, `matmul-add-to-gemm` |
//! | [`patterns`] | `gelu-erf`, `gelu-tanh`, `hard-swish`, `silu`, `mish` |
//! | [`normalization`] | `softmax`, `layer-norm`, `layer-norm-scale`, `layer-norm-bias` |
//! | [`attention`] | `attention` |
//! | [`merging`] | `merge-matmul`, `merge-conv` |

pub mod attention;
pub mod folding;
pub mod identities;
pub mod merging;
pub mod movement;
pub mod normalization;
pub mod patterns;

use egg::Id;
use kiln_ir::{Op, OperandDescriptor, Shape, Tensor, Values};

use super::egraph::{constant, EGraph, ENode, Term};

/// A named rewrite.
#[derive(Clone, Copy)]
pub struct Rule {
    pub name: &'static str,
    pub apply: fn(&EGraph, &ENode) -> Option<Term>,
}

impl std::fmt::Debug for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

/// Every rule, in the order they are tried.
pub fn all() -> Vec<Rule> {
    [
        identities::RULES,
        movement::RULES,
        folding::RULES,
        patterns::RULES,
        normalization::RULES,
        attention::RULES,
        merging::RULES,
    ]
    .concat()
}

/// The operator of an e-node and its operand classes, if it is one.
pub fn op(node: &ENode) -> Option<(&Op, &[Id])> {
    match node {
        ENode::Op(tag, children) => Some((tag.op(), children.as_slice())),
        _ => None,
    }
}

/// The first operator e-node of class `id` that `want` accepts.
pub fn find(egraph: &EGraph, id: Id, want: impl Fn(&Op) -> bool) -> Option<(&Op, &[Id])> {
    egraph[id].nodes.iter().filter_map(op).find(|(o, _)| want(o))
}

/// The value every element of `t` has, if they all have the same bits
/// (stops at the first element that differs, converting only one).
pub fn uniform(t: &Tensor) -> Option<f64> {
    let size = t.data_type().byte_size();
    let bytes = t.bytes();
    let first = bytes.get(..size)?;
    if !bytes.chunks_exact(size).all(|c| c == first) {
        return None;
    }
    let one = Tensor::from_bytes(OperandDescriptor::new(t.data_type(), Shape::scalar()), first.to_vec()).ok()?;
    match one.values() {
        Values::Float(v) => v.first().copied(),
        Values::Int(v) => v.first().map(|&x| x as f64),
    }
}

/// Whether class `id` is a constant whose elements all equal `value`.
pub fn is_uniform(egraph: &EGraph, id: Id, value: f64) -> bool {
    constant(egraph, id).and_then(uniform) == Some(value)
}

/// The constant class `id` holds as float values, if it is a float
/// constant.
pub fn float_values(egraph: &EGraph, id: Id) -> Option<Vec<f64>> {
    let t = constant(egraph, id)?;
    match (t.data_type().is_float(), t.values()) {
        (true, Values::Float(v)) => Some(v),
        _ => None,
    }
}
