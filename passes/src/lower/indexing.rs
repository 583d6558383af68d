//! Data-dependent indexing: `gatherElements`, `gatherND`,
//! `scatterElements`, `scatterND`, as Reduces that compare positions. The
//! kernel IR addresses memory affinely only (its Gather kernel takes one
//! index list shared by every row), so an element read at a computed
//! index is the one element, of the `n` it could be, whose position
//! equals the index: a Reduce max over those `n` of `position == index ?
//! value : -∞`, which gives the value itself, NaN and -0 included. Positions
//! come from f32 constants `0, 1, ..., n - 1`; indices are read as f32,
//! made non-negative (a negative one counts from the end) and clamped into
//! the axis, as the interpreter does; both are exact while the addressed
//! extent is at most 2^24 (larger ones are host kernels, see
//! `exactness.rs`). The work is `n` times the output's size.
//!
//! A scatter is two Reduces: the last position whose index addresses each
//! output element (-1 if none), then the update at that position (a Reduce
//! max over the positions, as for a gather), with the input where there is
//! none (the finish reads it). Later positions win, as in the interpreter.

use kiln_ir::kernel::{Access, BinaryFn, Combine, Expr, Kernel};
use kiln_ir::{DataType, OperandId};

use super::values::{E, Row, V, Val, access, ident, placed};
use super::{Lowerer, R};

/// `index` made an axis position of an axis of `n` elements: plus `n` when
/// negative, then clamped into `[0, n - 1]`.
fn clamped(e: &mut E, index: V, n: usize) -> V {
    let size = e.c(n as f32);
    let wrapped = e.add(index, size);
    let negative = e.negative(index);
    let i = e.sel(negative, wrapped, index);
    e.clamp(i, Some(0.0), Some(n as f32 - 1.0))
}

/// `hit ? value : -∞`: the element of a Reduce max that picks `value`.
fn pick(e: &mut E, hit: V, value: V) -> V {
    let none = e.c(f32::NEG_INFINITY);
    e.sel(hit, value, none)
}

impl Lowerer<'_> {
    /// `0, 1, ..., n - 1` as an f32 constant.
    fn positions(&mut self, n: usize) -> Val {
        self.f32_constant(&(0..n).map(|k| k as f32).collect::<Vec<_>>())
    }

    /// The flat position, in the input's first `k` dimensions, that index
    /// tuple `tuple` (loaded values) addresses, each index clamped.
    fn tuple_position(e: &mut E, tuple: &[V], dims: &[usize]) -> V {
        let mut flat = e.c(0.0);
        for (t, &index) in tuple.iter().enumerate() {
            let i = clamped(e, index, dims[t]);
            let stride = e.c(dims[t + 1..].iter().product::<usize>() as f32);
            let term = e.mul(i, stride);
            flat = e.add(flat, term);
        }
        flat
    }

    /// Accesses of the `k` indices of each tuple of `indices` (seen as
    /// `[tuples, k]`), the tuple at coordinate `tuple`.
    fn tuple_accesses(indices: &Val, rank: usize, tuple: Row) -> Vec<Access> {
        let k = indices.shape[1];
        (0..k).map(|t| access(indices, rank, &[tuple.clone(), Row::fixed(t as isize)], None)).collect()
    }

    /// `gatherElements`: one Reduce max over the output's shape and the
    /// input's axis, `position == index ? x : -∞`.
    pub(super) fn gather_elements(&mut self, input: OperandId, indices: OperandId, axis: u32, out: OperandId) -> R {
        let (x, idx) = (self.val(input), self.val(indices));
        let (a, rank) = (axis as usize, x.rank());
        let n = x.shape[a];
        let y = self.dest(out);
        let mut domain = idx.shape.clone();
        domain.push(n);
        let at: Vec<Row> = (0..rank).map(|j| Row::axis(if j == a { rank } else { j })).collect();
        let positions = self.positions(n);
        let inputs = vec![
            placed(&idx, rank + 1, &(0..rank).map(Some).collect::<Vec<_>>()),
            access(&x, rank + 1, &at, None),
            placed(&positions, rank + 1, &[Some(rank)]),
        ];
        let mut e = E::new();
        let (i, v, p) = (e.load(0), e.load(1), e.load(2));
        let i = clamped(&mut e, i, n);
        let hit = e.bin(BinaryFn::Equal, i, p);
        let r = pick(&mut e, hit, v);
        self.reduce_max(domain, inputs, e.done(r), Expr::acc(), vec![], ident(&y));
        Ok(())
    }

    /// `gatherND`: the input seen as `[P, slice..]` (`P` the element count
    /// of its first `k` dimensions); one Reduce max over the output's
    /// shape (the tuples', then the slice's) and `P`, `position == tuple
    /// position ? x : -∞`.
    pub(super) fn gather_nd(&mut self, input: OperandId, indices: OperandId, out: OperandId) -> R {
        let (x, idx) = (self.val(input), self.val(indices));
        let k = *idx.shape.last().expect("indices have rank >= 1");
        let lead = idx.rank() - 1;
        let tuples: usize = idx.shape[..lead].iter().product();
        let idx = idx.view(&[tuples, k]);
        let (prefix, slice) = (x.shape[..k].to_vec(), x.shape[k..].to_vec());
        let p: usize = prefix.iter().product();
        let mut x_shape = vec![p];
        x_shape.extend(&slice);
        let xv = x.view(&x_shape);
        let y = self.dest(out);
        let mut domain = y.shape.clone();
        domain.push(p);
        let rank = domain.len();
        let mut inputs = Self::tuple_accesses(&idx, rank, flat_row(&y.shape[..lead], 0));
        let mut x_rows = vec![Row::axis(rank - 1)];
        x_rows.extend((0..slice.len()).map(|s| Row::axis(lead + s)));
        inputs.push(access(&xv, rank, &x_rows, None));
        let positions = self.positions(p);
        inputs.push(placed(&positions, rank, &[Some(rank - 1)]));
        let mut e = E::new();
        let tuple: Vec<V> = (0..k as u32).map(|t| e.load(t)).collect();
        let (v, pos) = (e.load(k as u32), e.load(k as u32 + 1));
        let flat = Self::tuple_position(&mut e, &tuple, &prefix);
        let hit = e.bin(BinaryFn::Equal, flat, pos);
        let r = pick(&mut e, hit, v);
        self.reduce_max(domain, inputs, e.done(r), Expr::acc(), vec![], ident(&y));
        Ok(())
    }

    /// `scatterElements`: Reduce max over the input's shape and the
    /// indices' axis of `index == this element's position ? k : -1` (the
    /// last position addressing each element), then Reduce max of `k ==
    /// last ? update : -∞`, finished with the input where `last < 0`.
    pub(super) fn scatter_elements(
        &mut self,
        input: OperandId,
        indices: OperandId,
        updates: OperandId,
        axis: u32,
        out: OperandId,
    ) -> R {
        let (x, idx, upd) = (self.val(input), self.val(indices), self.val(updates));
        let (a, rank) = (axis as usize, x.rank());
        let (n, count) = (x.shape[a], idx.shape[a]);
        let y = self.dest(out);
        let mut domain = x.shape.clone();
        domain.push(count);
        let at: Vec<Row> = (0..rank).map(|j| Row::axis(if j == a { rank } else { j })).collect();
        let (ks, targets) = (self.positions(count), self.positions(n));
        let mut e = E::new();
        let (i, k, target) = (e.load(0), e.load(1), e.load(2));
        let i = clamped(&mut e, i, n);
        let hit = e.bin(BinaryFn::Equal, i, target);
        let none = e.c(-1.0);
        let r = e.sel(hit, k, none);
        let last = self.scratch(DataType::Float32, &x.shape);
        let inputs = vec![
            access(&idx, rank + 1, &at, None),
            placed(&ks, rank + 1, &[Some(rank)]),
            placed(&targets, rank + 1, &[Some(a)]),
        ];
        self.reduce_max(domain.clone(), inputs, e.done(r), Expr::acc(), vec![], ident(&last));
        let inputs = vec![
            placed(&last, rank + 1, &(0..rank).map(Some).collect::<Vec<_>>()),
            access(&upd, rank + 1, &at, None),
            placed(&ks, rank + 1, &[Some(rank)]),
        ];
        self.scatter_pick(domain, inputs, &last, &x, &y);
        Ok(())
    }

    /// `scatterND`: with the input and output seen as `[P, slice..]` and the
    /// indices as `[tuples, k]`, Reduce max over `[P, tuples]` of `tuple
    /// position == p ? tuple : -1`, then Reduce max over `[P, slice..,
    /// tuples]` of `tuple == last ? update : -∞`, finished with the input
    /// where `last < 0`.
    pub(super) fn scatter_nd(&mut self, input: OperandId, indices: OperandId, updates: OperandId, out: OperandId) -> R {
        let (x, idx, upd) = (self.val(input), self.val(indices), self.val(updates));
        let k = *idx.shape.last().expect("indices have rank >= 1");
        let tuples: usize = idx.shape[..idx.rank() - 1].iter().product();
        let idx = idx.view(&[tuples, k]);
        let (prefix, slice) = (x.shape[..k].to_vec(), x.shape[k..].to_vec());
        let p: usize = prefix.iter().product();
        let mut flat_shape = vec![p];
        flat_shape.extend(&slice);
        let (xv, y) = (x.view(&flat_shape), self.dest(out));
        let yv = y.view(&flat_shape);
        let mut u_shape = vec![tuples];
        u_shape.extend(&slice);
        let uv = upd.view(&u_shape);
        let (ps, js) = (self.positions(p), self.positions(tuples));
        // The last tuple addressing each slice.
        let mut inputs = Self::tuple_accesses(&idx, 2, Row::axis(1));
        inputs.push(placed(&ps, 2, &[Some(0)]));
        inputs.push(placed(&js, 2, &[Some(1)]));
        let mut e = E::new();
        let tuple: Vec<V> = (0..k as u32).map(|t| e.load(t)).collect();
        let (pos, j) = (e.load(k as u32), e.load(k as u32 + 1));
        let flat = Self::tuple_position(&mut e, &tuple, &prefix);
        let hit = e.bin(BinaryFn::Equal, flat, pos);
        let none = e.c(-1.0);
        let r = e.sel(hit, j, none);
        let last = self.scratch(DataType::Float32, &[p]);
        self.reduce_max(vec![p, tuples], inputs, e.done(r), Expr::acc(), vec![], ident(&last));
        // Its update, or the input.
        let mut domain = flat_shape.clone();
        domain.push(tuples);
        let rank = domain.len();
        let mut u_rows = vec![Row::axis(rank - 1)];
        u_rows.extend((0..slice.len()).map(|s| Row::axis(1 + s)));
        let inputs =
            vec![placed(&last, rank, &[Some(0)]), access(&uv, rank, &u_rows, None), placed(&js, rank, &[Some(rank - 1)])];
        self.scatter_pick(domain, inputs, &last, &xv, &yv);
        Ok(())
    }

    /// The second Reduce of a scatter over `domain` (the output's shape,
    /// then the positions): inputs `last`, the update and the position, all
    /// over the domain; `y = last < 0 ? x : update at last`.
    fn scatter_pick(&mut self, domain: Vec<usize>, inputs: Vec<Access>, last: &Val, x: &Val, y: &Val) {
        let kept = domain.len() - 1;
        let mut e = E::new();
        let (l, u, k) = (e.load(0), e.load(1), e.load(2));
        let hit = e.bin(BinaryFn::Equal, k, l);
        let r = pick(&mut e, hit, u);
        let mut f = E::new();
        let (l, v) = (f.load(0), f.load(1));
        let acc = f.acc();
        let none = f.negative(l);
        let fin = f.sel(none, v, acc);
        let last_kept = placed(last, kept, &(0..last.rank()).map(Some).collect::<Vec<_>>());
        self.reduce_max(domain, inputs, e.done(r), f.done(fin), vec![last_kept, ident(x)], ident(y));
    }

    /// A Reduce max over the last axis of `domain`.
    fn reduce_max(
        &mut self,
        domain: Vec<usize>,
        inputs: Vec<Access>,
        element: Expr,
        finish: Expr,
        finish_inputs: Vec<Access>,
        out: Access,
    ) {
        self.program.kernels.push(Kernel::Reduce {
            domain,
            reduced: 1,
            inputs,
            element,
            combine: Combine::Max,
            finish,
            finish_inputs,
            out,
        });
    }
}

/// A row that flattens domain axes `first..first + dims.len()` (of extents
/// `dims`) into one row-major coordinate.
fn flat_row(dims: &[usize], first: usize) -> Row {
    let mut terms = Vec::new();
    let mut stride = 1isize;
    for (d, &n) in dims.iter().enumerate().rev() {
        terms.push((first + d, stride));
        stride *= n as isize;
    }
    Row { base: 0, terms }
}
