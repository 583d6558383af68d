//! The epilogue shape the micro-kernels apply in registers:
//! `clamp(acc + bias, lo, hi)`, each part optional, as the lowering writes
//! it (`acc; load n; add`, then per bound `c; cmp(x, c); select(cmp, c, x)`
//! with `Lesser` for the lower and `Greater` for the upper bound). NaN
//! passes through such a clamp, as `vmaxps`/`vminps` with the value as
//! second operand do.

use kiln_ir::kernel::{BinaryFn, Expr, ExprNode};

/// A matched epilogue: the input read as the bias (if any) and the bounds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BiasClamp {
    pub bias: Option<usize>,
    pub lo: Option<f32>,
    pub hi: Option<f32>,
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
    Some(BiasClamp { bias, lo, hi })
}
