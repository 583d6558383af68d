//! The epilogue shape the micro-kernels apply in registers:
//! `clamp(acc + bias, lo, hi)`, each part optional, as the lowering writes
//! it (`acc; load n; add`, then per bound `c; cmp(x, c); select(cmp, c, x)`
//! with `Lesser` for the lower and `Greater` for the upper bound). NaN
//! passes through such a clamp, as `vmaxps`/`vminps` with the value as
//! second operand do. Instead of a clamp, a sigmoid or SiLU
//! (`x * sigmoid(x)`, either order) of `acc + bias`, with the sigmoid as
//! the lowering writes it: `t = exp(-|x|)`, `select(x < 0, t, 1) / (1 + t)`.

use kiln_ir::kernel::{BinaryFn, Expr, ExprNode, UnaryFn, ValueId};

use super::microkernel::Activation;

/// A matched epilogue: the input read as the bias (if any), the bounds, or
/// a smooth activation (then no bounds).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BiasClamp {
    pub bias: Option<usize>,
    pub lo: Option<f32>,
    pub hi: Option<f32>,
    pub activation: Option<Activation>,
}

/// The [`BiasClamp`] form of `expr`, if it has one.
pub fn bias_clamp(expr: &Expr) -> Option<BiasClamp> {
    use ExprNode::*;
    let nodes = &expr.nodes;
    if !matches!(nodes.first(), Some(Acc)) {
        return None;
    }
    let mut bias = None;
    let mut current = 0u32;
    let mut i = 1;
    if let (Some(Load(n)), Some(Binary(BinaryFn::Add, a, b))) = (nodes.get(1), nodes.get(2)) {
        if !((a.0, b.0) == (0, 1) || (a.0, b.0) == (1, 0)) {
            return None;
        }
        bias = Some(*n as usize);
        current = 2;
        i = 3;
    }
    if let Some(activation) = activation(nodes, current) {
        return Some(BiasClamp { bias, lo: None, hi: None, activation: Some(activation) });
    }
    let (mut lo, mut hi) = (None, None);
    // Each bound: `c; cmp(x, c); select(cmp, c, x)`, the selected constant
    // possibly a second node of the same value.
    while i < nodes.len() {
        let [Const(c), Binary(cmp, x, k), ..] = nodes.get(i..)? else { return None };
        let (k_at, cmp_at) = (i as u32, i as u32 + 1);
        let (width, t_ok): (usize, &dyn Fn(u32) -> bool) = match nodes.get(i + 2) {
            Some(Const(c2)) if c2.to_bits() == c.to_bits() => (4, &|t| t == k_at || t == k_at + 2),
            _ => (3, &|t| t == k_at),
        };
        let Some(Select(p, t, e)) = nodes.get(i + width - 1) else { return None };
        if x.0 != current || k.0 != k_at || p.0 != cmp_at || !t_ok(t.0) || e.0 != current || c.is_nan() {
            return None;
        }
        match cmp {
            BinaryFn::Lesser if lo.is_none() && hi.is_none() => lo = Some(*c),
            BinaryFn::Greater if hi.is_none() => hi = Some(*c),
            _ => return None,
        }
        current = (i + width - 1) as u32;
        i += width;
    }
    Some(BiasClamp { bias, lo, hi, activation: None })
}

/// The activation the result of `nodes` applies to node `x`, if any.
fn activation(nodes: &[ExprNode], x: u32) -> Option<Activation> {
    let result = nodes.len().checked_sub(1)? as u32;
    if result <= x {
        return None;
    }
    if is_sigmoid(nodes, result, x) {
        return Some(Activation::Sigmoid);
    }
    match nodes[result as usize] {
        ExprNode::Binary(BinaryFn::Mul, ValueId(p), ValueId(q))
            if (p == x && is_sigmoid(nodes, q, x)) || (q == x && is_sigmoid(nodes, p, x)) =>
        {
            Some(Activation::Silu)
        }
        _ => None,
    }
}

/// Whether node `s` is the lowering's sigmoid of node `x`.
fn is_sigmoid(nodes: &[ExprNode], s: u32, x: u32) -> bool {
    use ExprNode::*;
    let node = |i: ValueId| nodes.get(i.0 as usize).copied();
    let constant = |i: ValueId, c: f32| matches!(node(i), Some(Const(k)) if k == c);
    let Some(Binary(BinaryFn::Div, num, den)) = nodes.get(s as usize).copied() else { return false };
    // den = 1 + t, t = exp(-|x|)
    let Some(Binary(BinaryFn::Add, d0, d1)) = node(den) else { return false };
    let t = if constant(d0, 1.0) { d1 } else if constant(d1, 1.0) { d0 } else { return false };
    let Some(Unary(UnaryFn::Exp, n)) = node(t) else { return false };
    let Some(Unary(UnaryFn::Neg, a)) = node(n) else { return false };
    if node(a) != Some(Unary(UnaryFn::Abs, ValueId(x))) {
        return false;
    }
    // num = select(x < 0, t, 1)
    let Some(Select(c, on_true, on_false)) = node(num) else { return false };
    let Some(Binary(BinaryFn::Lesser, cx, zero)) = node(c) else { return false };
    on_true == t && constant(on_false, 1.0) && cx == ValueId(x) && constant(zero, 0.0)
}
