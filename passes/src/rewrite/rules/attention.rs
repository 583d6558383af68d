//! Scaled dot-product attention, as exporters write it, recognised as
//! kiln's one `attention` operator: `matmul(softmax(s, last axis), v)`
//! where the scores `s` are `matmul(q, kt)`, optionally scaled (`* c`,
//! `c *` or `/ c` by a uniform constant) and then masked (`+ mask`, either
//! order, the mask broadcast to the scores).
//!
//! The key is `kt` with its last two axes swapped back: the input of a
//! transpose that swaps exactly them, else `kt`'s transpose composed with
//! the swap (BERT-style exports transpose the key heads once, to `[0, 2, 3,
//! 1]`, which becomes `[0, 2, 1, 3]`), else a new transpose of `kt`.

use egg::Id;
use kiln_ir::infer::resolved_permutation;
use kiln_ir::{AttentionOptions, BinaryOp, Op};

use super::{find, op, uniform, Rule};
use crate::rewrite::egraph::constant;
use crate::rewrite::egraph::{desc, slot, EGraph, ENode, Term};

pub const RULES: &[Rule] = &[Rule { name: "attention", apply: attention }];

/// The uniform value of constant class `id` if it holds one element
/// (so that multiplying by it changes no shape).
fn scalar(egraph: &EGraph, id: Id) -> Option<f64> {
    constant(egraph, id).filter(|t| t.desc().shape.element_count() == 1).and_then(uniform)
}

/// The scores of class `id`: `(q, kt, scale, mask)` for `matmul(q, kt)
/// [* scale] [+ mask]`.
fn scores(egraph: &EGraph, id: Id) -> Option<(Id, Id, f64, Option<Id>)> {
    let scaled = |id: Id| -> Option<(Id, Id, f64)> {
        egraph[id].nodes.iter().filter_map(op).find_map(|(o, c)| match (o, c) {
            (Op::Matmul { .. }, &[q, kt]) => Some((q, kt, 1.0)),
            (Op::Binary { kind: BinaryOp::Mul, .. }, &[a, b]) => [(a, b), (b, a)].into_iter().find_map(|(m, k)| {
                let s = scalar(egraph, k)?;
                let (_, &[q, kt]) = find(egraph, m, |o| matches!(o, Op::Matmul { .. }))? else { return None };
                (desc(egraph, m) == desc(egraph, id)).then_some((q, kt, s))
            }),
            (Op::Binary { kind: BinaryOp::Div, .. }, &[m, k]) => {
                let s = scalar(egraph, k).filter(|&s| s != 0.0)?;
                let (_, &[q, kt]) = find(egraph, m, |o| matches!(o, Op::Matmul { .. }))? else { return None };
                (desc(egraph, m) == desc(egraph, id)).then_some((q, kt, 1.0 / s))
            }
            _ => None,
        })
    };
    if let Some((q, kt, s)) = scaled(id) {
        return Some((q, kt, s, None));
    }
    let (_, &[a, b]) = find(egraph, id, |o| matches!(o, Op::Binary { kind: BinaryOp::Add, .. }))? else {
        return None;
    };
    [(a, b), (b, a)].into_iter().find_map(|(x, mask)| {
        let (q, kt, s) = scaled(x)?;
        (desc(egraph, x) == desc(egraph, id)).then_some((q, kt, s, Some(mask)))
    })
}

/// The key whose last two axes `kt` holds swapped.
fn key_of(egraph: &EGraph, kt: Id) -> Term {
    let rank = desc(egraph, kt).shape.rank();
    let mut swap: Vec<u32> = (0..rank as u32).collect();
    swap.swap(rank - 2, rank - 1);
    let transposed = |x: Id, permutation: Vec<u32>| {
        if permutation.iter().enumerate().all(|(j, &p)| p == j as u32) {
            Term::Class(x)
        } else {
            Term::Op(Op::Transpose { input: slot(0), permutation: Some(permutation) }, vec![Term::Class(x)])
        }
    };
    match find(egraph, kt, |o| matches!(o, Op::Transpose { .. })) {
        Some((Op::Transpose { permutation, .. }, &[x])) => {
            let inner = resolved_permutation(permutation, rank);
            transposed(x, swap.iter().map(|&j| inner[j as usize]).collect())
        }
        _ => transposed(kt, swap),
    }
}

/// `matmul(softmax(scores, last axis), v)` is `attention(q, k, v, {mask,
/// scale})`.
fn attention(egraph: &EGraph, node: &ENode) -> Option<Term> {
    let (Op::Matmul { .. }, &[p, v]) = op(node)? else { return None };
    let rank = desc(egraph, p).shape.rank();
    let (_, &[s]) = find(egraph, p, |o| matches!(o, Op::Softmax { axis, .. } if *axis as usize + 1 == rank))? else {
        return None;
    };
    let (q, kt, scale, mask) = scores(egraph, s)?;
    if desc(egraph, s).shape.rank() != rank {
        return None;
    }
    let mut children = vec![Term::Class(q), key_of(egraph, kt), Term::Class(v)];
    if let Some(m) = mask {
        children.push(Term::Class(m));
    }
    let options = AttentionOptions { mask: mask.map(|_| slot(3)), scale };
    // The rewriter drops a term whose shape rule fails or whose result
    // differs from the node's (a batch or mask broadcast that disagrees).
    Some(Term::Op(Op::Attention { query: slot(0), key: slot(1), value: slot(2), options }, children))
}
