//! Decomposed activations, as exporters write them, recognised as the one
//! operator they compute (WebNN's `gelu` and `hardSwish`, kiln's `silu`,
//! `mish` and `geluTanh`).
//!
//! Products are matched as a multiset of factors: a `mul` e-node's
//! operands, descending through further `mul` e-nodes (two levels), so
//! `x * 0.5 * (1 + erf(x / √2))` matches whatever the order and nesting.

use egg::Id;
use kiln_ir::{BinaryOp, Number, Op, UnaryOp};

use super::{find, is_uniform, op, uniform, Rule};
use crate::rewrite::egraph::{constant, desc, slot, EGraph, ENode, Term};

pub const RULES: &[Rule] = &[
    Rule { name: "gelu-erf", apply: gelu_erf },
    Rule { name: "gelu-tanh", apply: gelu_tanh },
    Rule { name: "hard-swish", apply: hard_swish },
    Rule { name: "silu", apply: silu },
    Rule { name: "mish", apply: mish },
];

/// Relative tolerance on the constants of a pattern (`√2` written with
/// a few digits).
const CONSTANT_TOLERANCE: f64 = 1e-4;

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= CONSTANT_TOLERANCE * b.abs()
}

/// The factors of the product `node` is, or `None` if it is no `mul`.
fn factors(egraph: &EGraph, node: &ENode) -> Option<Vec<Id>> {
    let (Op::Binary { kind: BinaryOp::Mul, .. }, &[a, b]) = op(node)? else { return None };
    let mut out = Vec::new();
    let mut pending = vec![(a, 1), (b, 1)];
    while let Some((id, depth)) = pending.pop() {
        match find(egraph, id, |o| matches!(o, Op::Binary { kind: BinaryOp::Mul, .. })) {
            Some((_, &[x, y])) if depth < 3 && constant(egraph, id).is_none() => {
                pending.push((x, depth + 1));
                pending.push((y, depth + 1));
            }
            _ => out.push(id),
        }
    }
    out.sort();
    Some(out)
}

/// The one factor not among `known` (each taken once), if exactly one is left.
fn the_rest(factors: &[Id], known: &[Id]) -> Option<Id> {
    let mut rest = factors.to_vec();
    for k in known {
        let at = rest.iter().position(|f| f == k)?;
        rest.remove(at);
    }
    match rest.as_slice() {
        [x] => Some(*x),
        _ => None,
    }
}

/// The result class of `node` has `x`'s descriptor.
fn keeps(egraph: &EGraph, node: &ENode, x: Id) -> bool {
    let Some((o, children)) = op(node) else { return false };
    crate::rewrite::egraph::infer_op(egraph, o, children).is_ok_and(|d| &d[0] == desc(egraph, x))
}

/// Whether class `id` is `x / √2` or `x * (1/√2)`, for some class `x`
/// (returned).
fn scaled_by_inverse_sqrt2(egraph: &EGraph, id: Id) -> Option<Id> {
    egraph[id].nodes.iter().filter_map(op).find_map(|(o, c)| match (o, c) {
        (Op::Binary { kind: BinaryOp::Div, .. }, &[x, k]) => {
            constant(egraph, k).and_then(uniform).filter(|&v| close(v, std::f64::consts::SQRT_2)).map(|_| x)
        }
        (Op::Binary { kind: BinaryOp::Mul, .. }, &[p, q]) => [(p, q), (q, p)].into_iter().find_map(|(x, k)| {
            constant(egraph, k).and_then(uniform).filter(|&v| close(v, std::f64::consts::FRAC_1_SQRT_2)).map(|_| x)
        }),
        _ => None,
    })
}

/// `x * 0.5 * (1 + erf(x / √2))` (any order and nesting of the product;
/// `x * (1/√2)` for the division) is `gelu(x)`.
fn gelu_erf(egraph: &EGraph, node: &ENode) -> Option<Term> {
    let fs = factors(egraph, node)?;
    let half = *fs.iter().find(|&&f| is_uniform(egraph, f, 0.5))?;
    // The `1 + erf(..)` factor, and the x inside it.
    let (one_plus, x) = fs.iter().find_map(|&f| {
        let (_, &[a, b]) = find(egraph, f, |o| matches!(o, Op::Binary { kind: BinaryOp::Add, .. }))? else {
            return None;
        };
        let e = [(a, b), (b, a)].into_iter().find(|&(_, one)| is_uniform(egraph, one, 1.0))?.0;
        let (_, &[inner]) = find(egraph, e, |o| matches!(o, Op::Unary { kind: UnaryOp::Erf, .. }))? else {
            return None;
        };
        Some((f, scaled_by_inverse_sqrt2(egraph, inner)?))
    })?;
    if the_rest(&fs, &[half, one_plus])? != x || !keeps(egraph, node, x) {
        return None;
    }
    Some(Term::Op(Op::Unary { kind: UnaryOp::Gelu, input: slot(0) }, vec![Term::Class(x)]))
}

/// `x * hardSigmoid(x, 1/6, 1/2)` and `x * clamp(x + 3, 0, 6) / 6` (or
/// `x * (clamp(x + 3, 0, 6) / 6)`) are `hardSwish(x)`.
fn hard_swish(egraph: &EGraph, node: &ENode) -> Option<Term> {
    let swish = |x: Id| Some(Term::Op(Op::Unary { kind: UnaryOp::HardSwish, input: slot(0) }, vec![Term::Class(x)]));
    // clamp(x + 3, 0, 6) in class `id`: x.
    let relu6_shifted = |id: Id| -> Option<Id> {
        let (Op::Clamp { min_value: Some(lo), max_value: Some(hi), .. }, &[s]) =
            find(egraph, id, |o| matches!(o, Op::Clamp { .. }))?
        else {
            return None;
        };
        let num = |n: &Number| n.as_f64();
        if num(lo) != 0.0 || num(hi) != 6.0 {
            return None;
        }
        let (_, &[a, b]) = find(egraph, s, |o| matches!(o, Op::Binary { kind: BinaryOp::Add, .. }))? else {
            return None;
        };
        [(a, b), (b, a)].into_iter().find(|&(_, k)| is_uniform(egraph, k, 3.0)).map(|(x, _)| x)
    };
    match op(node)? {
        // (x * clamp(x + 3, 0, 6)) / 6
        (Op::Binary { kind: BinaryOp::Div, .. }, &[p, six]) if is_uniform(egraph, six, 6.0) => {
            let (_, &[a, b]) = find(egraph, p, |o| matches!(o, Op::Binary { kind: BinaryOp::Mul, .. }))? else {
                return None;
            };
            let x = [(a, b), (b, a)].into_iter().find(|&(x, r)| relu6_shifted(r) == Some(x))?.0;
            keeps(egraph, node, x).then(|| swish(x))?
        }
        (Op::Binary { kind: BinaryOp::Mul, .. }, &[a, b]) => {
            let x = [(a, b), (b, a)].into_iter().find_map(|(x, g)| {
                let hard_sigmoid = find(egraph, g, |o| {
                    matches!(o, Op::HardSigmoid { alpha, beta, .. } if close(*alpha, 1.0 / 6.0) && *beta == 0.5)
                });
                if let Some((_, &[inner])) = hard_sigmoid
                    && inner == x
                {
                    return Some(x);
                }
                // clamp(x + 3, 0, 6) / 6
                let (_, &[c, six]) = find(egraph, g, |o| matches!(o, Op::Binary { kind: BinaryOp::Div, .. }))? else {
                    return None;
                };
                (is_uniform(egraph, six, 6.0) && relu6_shifted(c) == Some(x)).then_some(x)
            })?;
            keeps(egraph, node, x).then(|| swish(x))?
        }
        _ => None,
    }
}

/// The operator `kind` applied to class `x`.
fn unary_of(kind: UnaryOp, x: Id) -> Term {
    Term::Op(Op::Unary { kind, input: slot(0) }, vec![Term::Class(x)])
}

/// Whether class `id` holds `kind(x)`.
fn holds_unary(egraph: &EGraph, id: Id, kind: UnaryOp, x: Id) -> bool {
    egraph[id].nodes.iter().filter_map(op).any(|(o, c)| matches!(o, Op::Unary { kind: k, .. } if *k == kind) && c == [x])
}

/// `x * sigmoid(x)` (either order) is `silu(x)`.
fn silu(egraph: &EGraph, node: &ENode) -> Option<Term> {
    let (Op::Binary { kind: BinaryOp::Mul, .. }, &[a, b]) = op(node)? else { return None };
    let x = [(a, b), (b, a)].into_iter().find(|&(x, s)| holds_unary(egraph, s, UnaryOp::Sigmoid, x))?.0;
    keeps(egraph, node, x).then(|| unary_of(UnaryOp::Silu, x))
}

/// `x * tanh(softplus(x))` (either order) is `mish(x)`.
fn mish(egraph: &EGraph, node: &ENode) -> Option<Term> {
    let (Op::Binary { kind: BinaryOp::Mul, .. }, &[a, b]) = op(node)? else { return None };
    let x = [(a, b), (b, a)].into_iter().find(|&(x, t)| {
        egraph[t].nodes.iter().filter_map(op).any(|(o, c)| {
            matches!(o, Op::Unary { kind: UnaryOp::Tanh, .. }) && holds_unary(egraph, c[0], UnaryOp::Softplus, x)
        })
    })?.0;
    keeps(egraph, node, x).then(|| unary_of(UnaryOp::Mish, x))
}

/// The coefficients `[c0, c1, c2, c3]` of class `id` as a polynomial of
/// degree at most 3 in class `x`, built from `x`, scalar constants, `add`,
/// `sub`, `mul`, division by a constant and `pow` by 2 or 3 (looking
/// `depth` operators down), if it is one.
fn cubic_in(egraph: &EGraph, id: Id, x: Id, depth: u32) -> Option<[f64; 4]> {
    if id == x {
        return Some([0.0, 1.0, 0.0, 0.0]);
    }
    if let Some(c) = constant(egraph, id).filter(|t| t.desc().shape.element_count() == 1).and_then(uniform) {
        return Some([c, 0.0, 0.0, 0.0]);
    }
    if depth == 0 {
        return None;
    }
    let product = |p: [f64; 4], q: [f64; 4]| -> Option<[f64; 4]> {
        let mut r = [0.0; 4];
        for (i, &a) in p.iter().enumerate() {
            for (j, &b) in q.iter().enumerate() {
                if a != 0.0 && b != 0.0 {
                    *r.get_mut(i + j)? += a * b;
                }
            }
        }
        Some(r)
    };
    let sub = |id: Id| cubic_in(egraph, id, x, depth - 1);
    egraph[id].nodes.iter().filter_map(op).find_map(|(o, c)| match (o, c) {
        (Op::Binary { kind, .. }, &[a, b]) => {
            let (p, q) = (sub(a)?, sub(b)?);
            match kind {
                BinaryOp::Add => Some(std::array::from_fn(|i| p[i] + q[i])),
                BinaryOp::Sub => Some(std::array::from_fn(|i| p[i] - q[i])),
                BinaryOp::Mul => product(p, q),
                BinaryOp::Div if q[1..].iter().all(|&k| k == 0.0) && q[0] != 0.0 => Some(p.map(|k| k / q[0])),
                BinaryOp::Pow if q == [2.0, 0.0, 0.0, 0.0] => product(p, p),
                BinaryOp::Pow if q == [3.0, 0.0, 0.0, 0.0] => product(product(p, p)?, p),
                _ => None,
            }
        }
        _ => None,
    })
}

/// `0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³)))`, in any order and nesting
/// of the product and any arrangement of the polynomial inside the tanh
/// (`x³` as `pow(x, 3)` or products), is `geluTanh(x)`.
fn gelu_tanh(egraph: &EGraph, node: &ENode) -> Option<Term> {
    let fs = factors(egraph, node)?;
    let half = *fs.iter().find(|&&f| is_uniform(egraph, f, 0.5))?;
    let k = (2.0 / std::f64::consts::PI).sqrt();
    let (one_plus, x) = fs.iter().find_map(|&f| {
        let (_, &[a, b]) = find(egraph, f, |o| matches!(o, Op::Binary { kind: BinaryOp::Add, .. }))? else {
            return None;
        };
        let t = [(a, b), (b, a)].into_iter().find(|&(_, one)| is_uniform(egraph, one, 1.0))?.0;
        let (_, &[inner]) = find(egraph, t, |o| matches!(o, Op::Unary { kind: UnaryOp::Tanh, .. }))? else {
            return None;
        };
        // x is one of the other factors: the one the tanh's polynomial is in.
        let x = fs.iter().copied().filter(|&x| x != f && x != half).find(|&x| {
            cubic_in(egraph, inner, x, 6).is_some_and(|[c0, c1, c2, c3]| {
                c0 == 0.0 && c2 == 0.0 && close(c1, k) && close(c3, k * 0.044715)
            })
        })?;
        Some((f, x))
    })?;
    if the_rest(&fs, &[half, one_plus])? != x || !keeps(egraph, node, x) {
        return None;
    }
    Some(unary_of(UnaryOp::GeluTanh, x))
}
