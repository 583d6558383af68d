//! Values, accesses and expressions: the vocabulary every operator's
//! lowering is written in. A [`Val`] is an operand in memory (a whole
//! buffer seen with a shape); a [`Row`] is one affine coordinate of an
//! access, and [`access`], [`placed`], [`bcast`] and [`ident`] build
//! [`Access`]es from them; [`E`] builds a kernel's [`Expr`].

use kiln_ir::DataType;
use kiln_ir::kernel::{Access, BinaryFn, BufferId, Expr, ExprNode, UnaryFn, ValueId};

/// An operand in memory: a whole buffer seen with a shape.
#[derive(Clone, Debug)]
pub(super) struct Val {
    pub(super) buf: BufferId,
    pub(super) shape: Vec<usize>,
    pub(super) dtype: DataType,
}

impl Val {
    /// The same buffer seen with another shape of as many elements.
    pub(super) fn view(&self, shape: &[usize]) -> Val {
        debug_assert_eq!(shape.iter().product::<usize>(), self.shape.iter().product::<usize>());
        Val { buf: self.buf, shape: shape.to_vec(), dtype: self.dtype }
    }

    pub(super) fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub(super) fn rank(&self) -> usize {
        self.shape.len()
    }
}

/// One coordinate of an access: `base + Σ (axis, coef)`.
#[derive(Clone, Debug, Default)]
pub(super) struct Row {
    pub(super) base: isize,
    pub(super) terms: Vec<(usize, isize)>,
}

impl Row {
    /// Domain axis `a` (coefficient 1).
    pub(super) fn axis(a: usize) -> Row {
        Row { base: 0, terms: vec![(a, 1)] }
    }

    /// The constant coordinate `c`.
    pub(super) fn fixed(c: isize) -> Row {
        Row { base: c, terms: vec![] }
    }

    pub(super) fn offset(mut self, by: isize) -> Row {
        self.base += by;
        self
    }
}

/// An access to `v` over a rank-`rank` domain, one row per dimension of `v`.
pub(super) fn access(v: &Val, rank: usize, rows: &[Row], guard: Option<f32>) -> Access {
    assert_eq!(rows.len(), v.rank(), "one row per tensor dimension");
    let mut coef = vec![vec![0isize; rank]; rows.len()];
    for (j, row) in rows.iter().enumerate() {
        for &(a, c) in &row.terms {
            coef[j][a] += c;
        }
    }
    Access { buffer: v.buf, shape: v.shape.clone(), base: rows.iter().map(|r| r.base).collect(), coef, guard }
}

/// `v` with dimension `j` on domain axis `axes[j]` (`None`: a size-1
/// dimension that stays at 0).
pub(super) fn placed(v: &Val, rank: usize, axes: &[Option<usize>]) -> Access {
    let rows: Vec<Row> = axes.iter().map(|a| a.map_or(Row::fixed(0), Row::axis)).collect();
    access(v, rank, &rows, None)
}

/// `v` broadcast (numpy-style, right-aligned) over a domain `shape`.
pub(super) fn bcast(v: &Val, shape: &[usize]) -> Access {
    let lead = shape.len() - v.rank();
    let axes: Vec<Option<usize>> = v
        .shape
        .iter()
        .enumerate()
        .map(|(j, &d)| if d == 1 && shape[lead + j] != 1 { None } else { Some(lead + j) })
        .collect();
    placed(v, shape.len(), &axes)
}

pub(super) fn ident(v: &Val) -> Access {
    Access::identity(v.buf, &v.shape)
}

/// Builds an expression; values are [`ValueId`]s.
pub(super) struct E {
    e: Expr,
}

pub(super) type V = ValueId;

impl E {
    pub(super) fn new() -> Self {
        E { e: Expr::default() }
    }

    fn push(&mut self, n: ExprNode) -> V {
        self.e.push(n)
    }

    pub(super) fn load(&mut self, n: u32) -> V {
        self.push(ExprNode::Load(n))
    }

    pub(super) fn c(&mut self, x: f32) -> V {
        self.push(ExprNode::Const(x))
    }

    pub(super) fn acc(&mut self) -> V {
        self.push(ExprNode::Acc)
    }

    pub(super) fn count(&mut self) -> V {
        self.push(ExprNode::Count)
    }

    pub(super) fn un(&mut self, f: UnaryFn, a: V) -> V {
        self.push(ExprNode::Unary(f, a))
    }

    pub(super) fn bin(&mut self, f: BinaryFn, a: V, b: V) -> V {
        self.push(ExprNode::Binary(f, a, b))
    }

    pub(super) fn add(&mut self, a: V, b: V) -> V {
        self.bin(BinaryFn::Add, a, b)
    }

    pub(super) fn sub(&mut self, a: V, b: V) -> V {
        self.bin(BinaryFn::Sub, a, b)
    }

    pub(super) fn mul(&mut self, a: V, b: V) -> V {
        self.bin(BinaryFn::Mul, a, b)
    }

    pub(super) fn div(&mut self, a: V, b: V) -> V {
        self.bin(BinaryFn::Div, a, b)
    }

    pub(super) fn sel(&mut self, c: V, a: V, b: V) -> V {
        self.push(ExprNode::Select(c, a, b))
    }

    /// `x < 0` as 1/0.
    pub(super) fn negative(&mut self, x: V) -> V {
        let zero = self.c(0.0);
        self.bin(BinaryFn::Lesser, x, zero)
    }

    /// `min(max(x, lo), hi)` that lets a NaN `x` through (bounds optional).
    pub(super) fn clamp(&mut self, x: V, lo: Option<f32>, hi: Option<f32>) -> V {
        let mut y = x;
        if let Some(lo) = lo {
            let l = self.c(lo);
            let below = self.bin(BinaryFn::Lesser, y, l);
            y = self.sel(below, l, y);
        }
        if let Some(hi) = hi {
            let h = self.c(hi);
            let above = self.bin(BinaryFn::Greater, y, h);
            y = self.sel(above, h, y);
        }
        y
    }

    /// `e^x - 1`, accurate near 0 (Kahan: `(u - 1) * x / ln u` with `u = e^x`).
    pub(super) fn expm1(&mut self, x: V) -> V {
        let u = self.un(UnaryFn::Exp, x);
        let one = self.c(1.0);
        let um1 = self.sub(u, one);
        let minus_one = self.c(-1.0);
        let lnu = self.un(UnaryFn::Log, u);
        let t = self.mul(um1, x);
        let general = self.div(t, lnu);
        let saturated = self.bin(BinaryFn::Equal, um1, minus_one);
        let r = self.sel(saturated, minus_one, general);
        let exact_one = self.bin(BinaryFn::Equal, u, one);
        self.sel(exact_one, x, r)
    }

    /// `ln(1 + e)` for `e >= 0`, accurate for small `e` (Goldberg:
    /// `ln(u) * e / (u - 1)` with `u = 1 + e`).
    pub(super) fn log1p(&mut self, e: V) -> V {
        let one = self.c(1.0);
        let u = self.add(one, e);
        let lnu = self.un(UnaryFn::Log, u);
        let um1 = self.sub(u, one);
        let t = self.mul(lnu, e);
        let general = self.div(t, um1);
        let tiny = self.bin(BinaryFn::Equal, u, one);
        self.sel(tiny, e, general)
    }

    /// Wraps an exact integer value to int8 or uint8 (two's complement), as
    /// the interpreter does; other types pass through.
    pub(super) fn wrap(&mut self, v: V, t: DataType) -> V {
        let lo = match t {
            DataType::Int8 => -128.0,
            DataType::Uint8 => 0.0,
            _ => return v,
        };
        // v - 256 * floor((v - lo) / 256), exact in f32 for |v| < 2^24.
        let l = self.c(lo);
        let m = self.c(256.0);
        let shifted = self.sub(v, l);
        let q = self.div(shifted, m);
        let f = self.un(UnaryFn::Floor, q);
        let k = self.mul(f, m);
        self.sub(v, k)
    }

    /// The expression whose result is `v`.
    pub(super) fn done(mut self, v: V) -> Expr {
        if v != self.e.result() {
            // Make `v` the last node without changing it.
            self.push(ExprNode::Select(v, v, v));
        }
        self.e
    }
}
