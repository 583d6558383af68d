//! Operators that leave their input unchanged: the result's class is the
//! input's.

use kiln_ir::infer::resolved_permutation;
use kiln_ir::{BinaryOp, Op, UnaryOp};

use super::{is_uniform, op, Rule};
use crate::rewrite::egraph::{desc, EGraph, ENode, Term};

pub const RULES: &[Rule] = &[
    Rule { name: "identity", apply: identity },
    Rule { name: "cast-same-type", apply: cast_same_type },
    Rule { name: "reshape-same-shape", apply: reshape_same_shape },
    Rule { name: "expand-same-shape", apply: expand_same_shape },
    Rule { name: "transpose-identity", apply: transpose_identity },
    Rule { name: "mul-one", apply: mul_one },
    Rule { name: "div-one", apply: div_one },
    Rule { name: "add-zero", apply: add_zero },
    Rule { name: "sub-zero", apply: sub_zero },
];

/// `identity(x)` is `x`.
fn identity(_: &EGraph, node: &ENode) -> Option<Term> {
    match op(node)? {
        (Op::Unary { kind: UnaryOp::Identity, .. }, [x]) => Some(Term::Class(*x)),
        _ => None,
    }
}

/// `cast(x, T)` of an `x` of type `T` is `x`.
fn cast_same_type(egraph: &EGraph, node: &ENode) -> Option<Term> {
    match op(node)? {
        (Op::Cast { data_type, .. }, [x]) if desc(egraph, *x).data_type == *data_type => Some(Term::Class(*x)),
        _ => None,
    }
}

/// `reshape(x, shape(x))` is `x`.
fn reshape_same_shape(egraph: &EGraph, node: &ENode) -> Option<Term> {
    match op(node)? {
        (Op::Reshape { new_shape, .. }, [x]) if desc(egraph, *x).shape.dims() == new_shape.as_slice() => {
            Some(Term::Class(*x))
        }
        _ => None,
    }
}

/// `expand(x, shape(x))` is `x`.
fn expand_same_shape(egraph: &EGraph, node: &ENode) -> Option<Term> {
    match op(node)? {
        (Op::Expand { new_shape, .. }, [x]) if desc(egraph, *x).shape.dims() == new_shape.as_slice() => {
            Some(Term::Class(*x))
        }
        _ => None,
    }
}

/// A transpose by the identity permutation is its input.
fn transpose_identity(egraph: &EGraph, node: &ENode) -> Option<Term> {
    match op(node)? {
        (Op::Transpose { permutation, .. }, [x]) => {
            let p = resolved_permutation(permutation, desc(egraph, *x).shape.rank());
            p.iter().enumerate().all(|(i, &a)| a as usize == i).then_some(Term::Class(*x))
        }
        _ => None,
    }
}

/// `kind(a, b)` is the operand `keep` when the other operand is a constant
/// of `neutral`s (on either side where `commutes`) and the result has the
/// kept operand's descriptor (the constant broadcasts to nothing wider and
/// converts nothing).
fn neutral(egraph: &EGraph, node: &ENode, kind: BinaryOp, value: f64, commutes: bool) -> Option<Term> {
    let (Op::Binary { kind: k, .. }, &[a, b]) = op(node)? else { return None };
    if *k != kind {
        return None;
    }
    let result = crate::rewrite::egraph::infer_op(egraph, op(node)?.0, &[a, b]).ok()?;
    let same = |x| desc(egraph, x) == &result[0];
    if is_uniform(egraph, b, value) && same(a) {
        return Some(Term::Class(a));
    }
    (commutes && is_uniform(egraph, a, value) && same(b)).then_some(Term::Class(b))
}

/// `x * 1` and `1 * x` are `x`.
fn mul_one(egraph: &EGraph, node: &ENode) -> Option<Term> {
    neutral(egraph, node, BinaryOp::Mul, 1.0, true)
}

/// `x / 1` is `x`.
fn div_one(egraph: &EGraph, node: &ENode) -> Option<Term> {
    neutral(egraph, node, BinaryOp::Div, 1.0, false)
}

/// `x + 0` and `0 + x` are `x` (but for the sign of a zero `x`: -0 + 0 is
/// +0).
fn add_zero(egraph: &EGraph, node: &ENode) -> Option<Term> {
    neutral(egraph, node, BinaryOp::Add, 0.0, true)
}

/// `x - 0` is `x`.
fn sub_zero(egraph: &EGraph, node: &ENode) -> Option<Term> {
    neutral(egraph, node, BinaryOp::Sub, 0.0, false)
}
