//! Chains of data movement that merge into one operator.

use kiln_ir::infer::resolved_permutation;
use kiln_ir::Op;

use super::{find, op, Rule};
use crate::rewrite::egraph::{desc, slot, EGraph, ENode, Term};

pub const RULES: &[Rule] = &[
    Rule { name: "reshape-reshape", apply: reshape_reshape },
    Rule { name: "transpose-transpose", apply: transpose_transpose },
];

/// `reshape(reshape(x, s1), s2)` is `reshape(x, s2)`.
fn reshape_reshape(egraph: &EGraph, node: &ENode) -> Option<Term> {
    let (Op::Reshape { new_shape, .. }, &[y]) = op(node)? else { return None };
    let (_, &[x]) = find(egraph, y, |o| matches!(o, Op::Reshape { .. }))? else { return None };
    Some(Term::Op(Op::Reshape { input: slot(0), new_shape: new_shape.clone() }, vec![Term::Class(x)]))
}

/// `transpose(transpose(x, p1), p2)` is `transpose(x, q)` with
/// `q[j] = p1[p2[j]]`.
fn transpose_transpose(egraph: &EGraph, node: &ENode) -> Option<Term> {
    let (Op::Transpose { permutation: outer, .. }, &[y]) = op(node)? else { return None };
    let (Op::Transpose { permutation: inner, .. }, &[x]) = find(egraph, y, |o| matches!(o, Op::Transpose { .. }))? else {
        return None;
    };
    let rank = desc(egraph, x).shape.rank();
    let (p1, p2) = (resolved_permutation(inner, rank), resolved_permutation(outer, rank));
    let q: Vec<u32> = p2.iter().map(|&j| p1[j as usize]).collect();
    Some(Term::Op(Op::Transpose { input: slot(0), permutation: Some(q) }, vec![Term::Class(x)]))
}
