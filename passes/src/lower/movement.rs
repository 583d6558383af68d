//! Data movement: `reshape`, `transpose`, `concat`, `split`, `slice`,
//! `expand`, `gather`, `pad`, `resample2d`, `reverse`, `tile` and
//! `triangular`. Data movement copies
//! element bytes, so it is exact for every type. An operator that keeps
//! every element in place aliases its input (see the [`lower`](super)
//! module documentation); otherwise `transpose`, `slice`, `expand`,
//! `concat` (a Map per input), `split` (a Map per output) and `pad`
//! (constant: one guarded Map; edge, reflection: a Map per region) are copy
//! Maps with affine accesses, `gather` is a Gather kernel, and
//! `resample2d` is Gathers with constant indices (nearest) or, for float
//! types, 6 Gathers and a weighting Map (linear). `reverse` is a copy Map
//! reading with coefficient -1 along the reversed axes; `tile` a copy Map
//! over `[repetitions0, size0, repetitions1, size1, ...]` writing at
//! `size * r + i`; `triangular` a Map that selects the element or 0 by a
//! guarded read of a constant of ones along the diagonals it keeps.

use kiln_ir::infer::{resolved_permutation, resolved_slice_strides};
use kiln_ir::kernel::{BufferKind, Expr, Kernel};
use kiln_ir::{
    DataType, InterpolationMode, Number, OperandDescriptor, OperandId, PadOptions, PaddingMode, Resample2dOptions,
    Tensor, Values,
};

use super::values::{E, Row, V, Val, access, bcast, ident, placed};
use super::{Lowerer, R, dims};

impl Lowerer<'_> {
    /// `reshape`: always an alias (a copy into a graph output).
    pub(super) fn reshape(&mut self, input: OperandId, out: OperandId) -> R {
        let x = self.val(input);
        self.alias(out, &x);
        Ok(())
    }

    /// `transpose`: a copy Map, or an alias when only size-1 axes move.
    pub(super) fn transpose(&mut self, input: OperandId, permutation: &Option<Vec<u32>>, out: OperandId) -> R {
        let x = self.val(input);
        let perm = resolved_permutation(permutation, x.rank());
        // Moving only size-1 axes keeps the element order.
        let moved: Vec<u32> = perm.iter().copied().filter(|&p| x.shape[p as usize] != 1).collect();
        if moved.windows(2).all(|w| w[0] < w[1]) {
            self.alias(out, &x);
            return Ok(());
        }
        let y = self.dest(out);
        // Output axis i is input axis perm[i].
        let mut axes = vec![None; x.rank()];
        for (i, &p) in perm.iter().enumerate() {
            axes[p as usize] = Some(i);
        }
        self.map(y.shape.clone(), vec![placed(&x, y.rank(), &axes)], Expr::load(0), ident(&y));
        Ok(())
    }

    /// `concat`: a copy Map per input into its place in the output (one input:
    /// an alias).
    pub(super) fn concat(&mut self, inputs: &[OperandId], axis: u32, out: OperandId) -> R {
        if inputs.len() == 1 {
            let x = self.val(inputs[0]);
            self.alias(out, &x);
            return Ok(());
        }
        let axis = axis as usize;
        let y = self.dest(out);
        let mut at = 0isize;
        for &i in inputs {
            let x = self.val(i);
            let rows: Vec<Row> =
                (0..y.rank()).map(|j| if j == axis { Row::axis(j).offset(at) } else { Row::axis(j) }).collect();
            self.map(x.shape.clone(), vec![ident(&x)], Expr::load(0), access(&y, x.rank(), &rows, None));
            at += x.shape[axis] as isize;
        }
        Ok(())
    }

    /// `split`: a copy Map per output from its place in the input (one part:
    /// an alias). `outputs` are the node's.
    pub(super) fn split(&mut self, input: OperandId, axis: u32, outputs: &[OperandId]) -> R {
        if outputs.len() == 1 {
            let x = self.val(input);
            self.alias(outputs[0], &x);
            return Ok(());
        }
        let axis = axis as usize;
        let x = self.val(input);
        let mut at = 0isize;
        for &o in outputs {
            let y = self.dest(o);
            let rows: Vec<Row> =
                (0..x.rank()).map(|j| if j == axis { Row::axis(j).offset(at) } else { Row::axis(j) }).collect();
            self.map(y.shape.clone(), vec![access(&x, y.rank(), &rows, None)], Expr::load(0), ident(&y));
            at += y.shape[axis] as isize;
        }
        Ok(())
    }

    /// `slice`: a strided copy Map, or an alias of the whole input.
    pub(super) fn slice(&mut self, input: OperandId, starts: &[u32], strides: &Option<Vec<u32>>, out: OperandId) -> R {
        let x = self.val(input);
        if starts.iter().all(|&s| s == 0) && dims(self.desc(out)) == x.shape {
            self.alias(out, &x);
            return Ok(());
        }
        let steps = resolved_slice_strides(strides, x.rank());
        let rows: Vec<Row> =
            (0..x.rank()).map(|j| Row { base: starts[j] as isize, terms: vec![(j, steps[j] as isize)] }).collect();
        let y = self.dest(out);
        self.map(y.shape.clone(), vec![access(&x, y.rank(), &rows, None)], Expr::load(0), ident(&y));
        Ok(())
    }

    /// `expand`: a broadcasting copy Map, or an alias when only size-1
    /// dimensions are added.
    pub(super) fn expand(&mut self, input: OperandId, out: OperandId) -> R {
        let x = self.val(input);
        let shape = dims(self.desc(out));
        if shape.iter().product::<usize>() == x.len() {
            // Only size-1 dimensions: the same elements in the same order.
            self.alias(out, &x);
        } else {
            let y = self.dest(out);
            self.map(shape.clone(), vec![bcast(&x, &shape)], Expr::load(0), ident(&y));
        }
        Ok(())
    }

    /// `gather`: a Gather kernel.
    pub(super) fn gather(&mut self, input: OperandId, indices: OperandId, axis: u32, out: OperandId) -> R {
        let (x, idx) = (self.val(input), self.val(indices));
        let y = self.dest(out);
        self.gather_into(&x, axis as usize, &idx, &y);
        Ok(())
    }

    /// `pad`: constant, one guarded copy Map; edge and reflection, a copy Map
    /// per region ([`Self::pad_regions`]); no padding, an alias.
    pub(super) fn pad(
        &mut self,
        input: OperandId,
        beginning_padding: &[u32],
        ending_padding: &[u32],
        options: &PadOptions,
        out: OperandId,
    ) -> R {
        let x = self.val(input);
        if beginning_padding.iter().chain(ending_padding).all(|&p| p == 0) {
            self.alias(out, &x);
            return Ok(());
        }
        let y = self.dest(out);
        let begin: Vec<usize> = beginning_padding.iter().map(|&b| b as usize).collect();
        let end: Vec<usize> = ending_padding.iter().map(|&b| b as usize).collect();
        match options.mode {
            PaddingMode::Constant => {
                let fill = pad_fill(x.dtype, options.value)?;
                let rows: Vec<Row> = (0..x.rank()).map(|j| Row::axis(j).offset(-(begin[j] as isize))).collect();
                self.map(y.shape.clone(), vec![access(&x, y.rank(), &rows, Some(fill))], Expr::load(0), ident(&y));
            }
            mode => self.pad_regions(&x, &y, &begin, &end, mode),
        }
        Ok(())
    }

    /// `resample2d`: Gathers with constant indices (nearest), or Gathers and
    /// a weighting Map (linear).
    pub(super) fn resample2d(&mut self, input: OperandId, options: &Resample2dOptions, out: OperandId) -> R {
        let x = self.val(input);
        let y = self.dest(out);
        let axes = options.axes.map(|a| a as usize);
        match options.mode {
            InterpolationMode::NearestNeighbor => {
                let picks = axes.map(|a| kiln_ir::interp::nearest_indices(x.shape[a] as u32, y.shape[a] as u32));
                self.resample_nearest(&x, &y, axes, &picks);
            }
            InterpolationMode::Linear => self.resample_linear(&x, &y, axes),
        }
        Ok(())
    }

    /// `reverse`: a copy Map reading the reversed axes backwards (no axis
    /// reversed: an alias).
    pub(super) fn reverse(&mut self, input: OperandId, axes: &Option<Vec<u32>>, out: OperandId) -> R {
        let x = self.val(input);
        let flipped = |a: usize| x.shape[a] > 1 && axes.as_ref().is_none_or(|axes| axes.contains(&(a as u32)));
        if !(0..x.rank()).any(flipped) {
            self.alias(out, &x);
            return Ok(());
        }
        let rows: Vec<Row> = (0..x.rank())
            .map(|a| if flipped(a) { Row { base: x.shape[a] as isize - 1, terms: vec![(a, -1)] } } else { Row::axis(a) })
            .collect();
        let y = self.dest(out);
        self.map(y.shape.clone(), vec![access(&x, y.rank(), &rows, None)], Expr::load(0), ident(&y));
        Ok(())
    }

    /// `tile`: a copy Map over `[r0, n0, r1, n1, ...]` (repetitions and
    /// sizes) reading `x[i0, i1, ...]` and writing `y[n0 r0 + i0, ...]`.
    pub(super) fn tile(&mut self, input: OperandId, repetitions: &[u32], out: OperandId) -> R {
        let x = self.val(input);
        let y = self.dest(out);
        let domain: Vec<usize> = x.shape.iter().zip(repetitions).flat_map(|(&n, &r)| [r as usize, n]).collect();
        let rank = domain.len();
        let read: Vec<Row> = (0..x.rank()).map(|a| Row::axis(2 * a + 1)).collect();
        let write: Vec<Row> = (0..x.rank())
            .map(|a| Row { base: 0, terms: vec![(2 * a, x.shape[a] as isize), (2 * a + 1, 1)] })
            .collect();
        self.map(domain, vec![access(&x, rank, &read, None)], Expr::load(0), access(&y, rank, &write, None));
        Ok(())
    }

    /// `triangular`: `y = keep ? x : 0`, where `keep` reads a constant of
    /// ones at `column - row - diagonal` (upper) or `row - column + diagonal`
    /// (lower), guarded: outside the constant, that is below 0 or past the
    /// last kept diagonal, it reads 0. The diagonal is first clamped to
    /// `[-rows, columns]` (all or nothing is kept beyond), so the constant
    /// has at most rows + columns elements.
    pub(super) fn triangular(&mut self, input: OperandId, upper: bool, diagonal: i32, out: OperandId) -> R {
        let x = self.val(input);
        let y = self.dest(out);
        let rank = x.rank();
        let (rows, columns) = (x.shape[rank - 2] as isize, x.shape[rank - 1] as isize);
        let (r, c) = (rank - 2, rank - 1);
        // upper: keep c - r - d >= 0 (at most columns - 1 - d); lower: keep
        // r - c + d >= 0 (at most rows - 1 + d). Either way d <= -rows keeps
        // all (upper) or nothing (lower), d >= columns nothing or all.
        let d = (diagonal as isize).clamp(-rows, columns);
        let (base, sign, len) = if upper { (-d, 1, columns - d) } else { (d, -1, rows + d) };
        // Nothing kept: one element that no coordinate (all negative) reaches.
        let ones = self.f32_constant(&vec![1.0; len.max(1) as usize]);
        let diag = Row { base, terms: vec![(c, sign), (r, -sign)] };
        let keep = access(&ones, rank, &[diag], Some(0.0));
        let mut e = E::new();
        let (v, k) = (e.load(0), e.load(1));
        let zero = e.c(0.0);
        let r = e.sel(k, v, zero);
        self.map(y.shape.clone(), vec![ident(&x), keep], e.done(r), ident(&y));
        Ok(())
    }

    /// `out = x` gathered along `axis` by `indices` (a Gather kernel).
    fn gather_into(&mut self, x: &Val, axis: usize, indices: &Val, out: &Val) {
        let outer = x.shape[..axis].iter().product();
        let inner = x.shape[axis + 1..].iter().product();
        self.program.kernels.push(Kernel::Gather {
            outer,
            axis_len: x.shape[axis],
            inner,
            input: x.buf,
            indices: indices.buf,
            index_count: indices.len(),
            out: out.buf,
        });
    }

    /// An int32 constant of `values`.
    fn index_constant(&mut self, values: &[usize]) -> Val {
        let bytes: Vec<u8> = values.iter().flat_map(|&v| (v as i32).to_le_bytes()).collect();
        let desc = OperandDescriptor::new(DataType::Int32, [values.len() as u32]);
        let t = Tensor::from_bytes(desc, bytes).expect("sized to the values");
        let buf = self.program.add_buffer(BufferKind::Constant(t), DataType::Int32, values.len());
        Val { buf, shape: vec![values.len()], dtype: DataType::Int32 }
    }

    /// An f32 constant of shape `[values.len()]`.
    pub(super) fn f32_constant(&mut self, values: &[f32]) -> Val {
        let t = Tensor::from_f32([values.len() as u32], values).expect("sized to the values");
        let buf = self.program.add_buffer(BufferKind::Constant(t), DataType::Float32, values.len());
        Val { buf, shape: vec![values.len()], dtype: DataType::Float32 }
    }

    /// Gathers `x` along `axis` with the constant `picks` into `out`, or
    /// into a new scratch buffer when `out` is `None`.
    fn gather_const(&mut self, x: &Val, axis: usize, picks: &[usize], out: Option<&Val>) -> Val {
        let mut shape = x.shape.clone();
        shape[axis] = picks.len();
        let out = match out {
            Some(o) => o.clone(),
            None => self.scratch(x.dtype, &shape),
        };
        let idx = self.index_constant(picks);
        self.gather_into(x, axis, &idx, &out);
        out
    }

    fn resample_nearest(&mut self, x: &Val, y: &Val, axes: [usize; 2], picks: &[Vec<usize>; 2]) {
        let identity =
            |k: usize| picks[k].len() == x.shape[axes[k]] && picks[k].iter().enumerate().all(|(i, &p)| i == p);
        match (identity(0), identity(1)) {
            (true, true) => self.copy(x, y),
            (false, true) => {
                self.gather_const(x, axes[0], &picks[0], Some(y));
            }
            (true, false) => {
                self.gather_const(x, axes[1], &picks[1], Some(y));
            }
            (false, false) => {
                let t = self.gather_const(x, axes[0], &picks[0], None);
                self.gather_const(&t, axes[1], &picks[1], Some(y));
            }
        }
    }

    fn resample_linear(&mut self, x: &Val, y: &Val, axes: [usize; 2]) {
        let taps = axes.map(|a| kiln_ir::interp::linear_taps(x.shape[a] as u32, y.shape[a] as u32));
        let lo = |k: usize| taps[k].iter().map(|t| t.0).collect::<Vec<_>>();
        let hi = |k: usize| taps[k].iter().map(|t| t.1).collect::<Vec<_>>();
        let (lo0, hi0, lo1, hi1) = (lo(0), hi(0), lo(1), hi(1));
        // Gathers are copies, so the order of the two axes does not change
        // a bit: the inner one (the larger axis number, whose gathers move
        // single elements) goes first, at the input's size along the other
        // axis; the outer one then moves whole rows.
        let (ll, lh, hl, hh) = if axes[1] > axes[0] {
            let b_lo = self.gather_const(x, axes[1], &lo1, None);
            let b_hi = self.gather_const(x, axes[1], &hi1, None);
            (
                self.gather_const(&b_lo, axes[0], &lo0, None),
                self.gather_const(&b_hi, axes[0], &lo0, None),
                self.gather_const(&b_lo, axes[0], &hi0, None),
                self.gather_const(&b_hi, axes[0], &hi0, None),
            )
        } else {
            let a_lo = self.gather_const(x, axes[0], &lo0, None);
            let a_hi = self.gather_const(x, axes[0], &hi0, None);
            (
                self.gather_const(&a_lo, axes[1], &lo1, None),
                self.gather_const(&a_lo, axes[1], &hi1, None),
                self.gather_const(&a_hi, axes[1], &lo1, None),
                self.gather_const(&a_hi, axes[1], &hi1, None),
            )
        };
        let weights = |k: usize, upper: bool| -> Vec<f32> {
            taps[k].iter().map(|t| if upper { t.2 as f32 } else { (1.0 - t.2) as f32 }).collect()
        };
        let (u1, u) = (self.f32_constant(&weights(0, false)), self.f32_constant(&weights(0, true)));
        let (v1, v) = (self.f32_constant(&weights(1, false)), self.f32_constant(&weights(1, true)));
        let on = |w: &Val, axis: usize| placed(w, 4, &[Some(axis)]);
        let inputs = vec![
            ident(&ll),
            ident(&lh),
            ident(&hl),
            ident(&hh),
            on(&u1, axes[0]),
            on(&u, axes[0]),
            on(&v1, axes[1]),
            on(&v, axes[1]),
        ];
        // (1-u)((1-v) ll + v lh) + u((1-v) hl + v hh), as the interpreter.
        let mut e = E::new();
        let l: Vec<V> = (0..8).map(|n| e.load(n)).collect();
        let (a, b) = (e.mul(l[6], l[0]), e.mul(l[7], l[1]));
        let top = e.add(a, b);
        let (c, d) = (e.mul(l[6], l[2]), e.mul(l[7], l[3]));
        let bottom = e.add(c, d);
        let (p, q) = (e.mul(l[4], top), e.mul(l[5], bottom));
        let r = e.add(p, q);
        self.map(y.shape.clone(), inputs, e.done(r), ident(y));
    }

    /// Edge and reflection padding: the output splits, per axis, into
    /// before / inside / after segments, and on each segment the source
    /// coordinate is affine; one Map per combination of segments.
    fn pad_regions(&mut self, x: &Val, y: &Val, begin: &[usize], end: &[usize], mode: PaddingMode) {
        // Per axis: (output start, length, source row as a function of the
        // region's own index on domain axis j).
        type Segment = (usize, usize, isize, isize); // (start, len, base, coef)
        let rank = x.rank();
        let segments: Vec<Vec<Segment>> = (0..rank)
            .map(|j| {
                let (b, e, d) = (begin[j] as isize, end[j] as isize, x.shape[j] as isize);
                let mut s: Vec<Segment> = vec![(b as usize, d as usize, 0, 1)];
                if b > 0 {
                    // Output o in [0, b): source -(o - b) = b - o (reflect) or 0 (edge).
                    s.insert(0, if mode == PaddingMode::Edge { (0, b as usize, 0, 0) } else { (0, b as usize, b, -1) });
                }
                if e > 0 {
                    // Output o = b + d + t, t in [0, e): source 2(d-1) - (d + t) = d - 2 - t, or d - 1.
                    let start = (b + d) as usize;
                    s.push(if mode == PaddingMode::Edge {
                        (start, e as usize, d - 1, 0)
                    } else {
                        (start, e as usize, d - 2, -1)
                    });
                }
                s
            })
            .collect();
        // Every combination of segments.
        let mut choice = vec![0usize; rank];
        loop {
            let seg: Vec<Segment> = (0..rank).map(|j| segments[j][choice[j]]).collect();
            let domain: Vec<usize> = seg.iter().map(|s| s.1).collect();
            let src: Vec<Row> = seg.iter().enumerate().map(|(j, s)| Row { base: s.2, terms: vec![(j, s.3)] }).collect();
            let dst: Vec<Row> = seg.iter().enumerate().map(|(j, s)| Row::axis(j).offset(s.0 as isize)).collect();
            self.map(domain, vec![access(x, rank, &src, None)], Expr::load(0), access(y, rank, &dst, None));
            let mut j = rank;
            loop {
                if j == 0 {
                    return;
                }
                j -= 1;
                choice[j] += 1;
                if choice[j] < segments[j].len() {
                    break;
                }
                choice[j] = 0;
            }
        }
    }
}

/// The constant-padding fill as the f32 that stores exactly the value the
/// interpreter pads with (converted to the data type as it does).
pub(super) fn pad_fill(t: DataType, value: Number) -> Result<f32, String> {
    let v = match (t.int_range(), value) {
        (None, v) => Values::Float(vec![v.as_f64()]),
        (Some((lo, hi)), Number::Int(i)) => Values::Int(vec![i.clamp(lo, hi)]),
        (Some(_), Number::Float(f)) => Values::Int(vec![kiln_ir::saturate_float_to_int(t, f)]),
    };
    let tensor = Tensor::from_values(OperandDescriptor::new(t, []), &v).map_err(|e| e.to_string())?;
    let fill = kiln_ir::kernel::load_f32(t, tensor.bytes());
    // The fill is stored through f32: it must come back as the same bytes.
    let mut back = vec![0u8; t.byte_size()];
    kiln_ir::kernel::store_f32(t, fill, &mut back);
    if back != tensor.bytes() {
        return Err(format!("the padding value {value:?} is not exactly representable in f32 as {t}"));
    }
    Ok(fill)
}
