//! Convolutions. `conv2d` with one group is an im2col Map (guarded for
//! padding) and a Gemm with the bias in its epilogue; a 1x1 unit-stride
//! unpadded filter reads the input in place. A grouped `conv2d` (and,
//! with [`direct_convolution`](super::LowerOptions::direct_convolution),
//! a float32 nchw one whose window a direct kernel reads in place) is a
//! Reduce of x·w over (channel in group, kh, kw), the bias in its finish.
//! `convTranspose2d` is one Gemm per output phase (see
//! [`Lowerer::conv_transpose2d`]).

use kiln_ir::infer::{channel_axis, conv_transpose2d_filter_dims, conv2d_filter_dims, spatial_axes};
use kiln_ir::kernel::{Combine, Expr, Kernel};
use kiln_ir::{
    Conv2dFilterLayout, Conv2dOptions, ConvTranspose2dFilterLayout, ConvTranspose2dOptions, DataType, InputLayout,
    OperandId,
};

use super::values::{E, Row, access, ident, placed};
use super::{Lowerer, R};

impl Lowerer<'_> {
    /// `conv2d` (see the module documentation).
    pub(super) fn conv2d(&mut self, input: OperandId, filter: OperandId, o: &Conv2dOptions, out: OperandId) -> R {
        let (x, w) = (self.val(input), self.val(filter));
        let y = self.dest(out);
        let nhwc = o.input_layout == InputLayout::Nhwc;
        let (ha, wa) = spatial_axes(o.input_layout);
        let (n, c) = (x.shape[0], x.shape[channel_axis(o.input_layout)]);
        let (ih, iw) = (x.shape[ha] as isize, x.shape[wa] as isize);
        let (oh, ow) = (y.shape[ha], y.shape[wa]);
        let (oc, icg, kh, kw) =
            conv2d_filter_dims(o.filter_layout, &kiln_ir::Shape(w.shape.iter().map(|&d| d as u32).collect()));
        let (oc, icg, kh, kw) = (oc as usize, icg as usize, kh as usize, kw as usize);
        let [sh, sw] = o.strides.map(|s| s as isize);
        let [dh, dw] = o.dilations.map(|d| d as isize);
        let (pt, pl) = (o.padding[0] as isize, o.padding[2] as isize);
        let groups = o.groups as usize;
        let input_rows = |rows: [Row; 4]| -> Vec<Row> {
            let [rn, rc, rh, rw] = rows;
            if nhwc { vec![rn, rh, rw, rc] } else { vec![rn, rc, rh, rw] }
        };
        // Whether some window position falls into the padding.
        let needs_guard = pt > 0
            || pl > 0
            || (oh as isize - 1) * sh + (kh as isize - 1) * dh - pt >= ih
            || (ow as isize - 1) * sw + (kw as isize - 1) * dw - pl >= iw;
        let guard = needs_guard.then_some(0.0);
        let p = oh * ow;
        let window_reduce = self.options.direct_convolution
            && !nhwc
            && (kh > 1 || kw > 1)
            && kh * kw <= 64
            && (sw == 1 || sw == 2)
            && ow >= 8
            && [x.dtype, w.dtype, y.dtype].iter().all(|&t| t == DataType::Float32);

        if groups == 1 && !window_reduce {
            // im2col (unless the filter is 1x1 with unit strides and no
            // padding) + one gemm whose epilogue adds the bias.
            // The im2col K order follows the filter layout, so the filter
            // is a [OC, K] or [K, OC] matrix in place.
            let k = c * kh * kw;
            let filter_oc_first = matches!(o.filter_layout, Conv2dFilterLayout::Oihw | Conv2dFilterLayout::Ohwi);
            let wm = if filter_oc_first { w.view(&[oc, k]) } else { w.view(&[k, oc]) };
            let direct = kh == 1 && kw == 1 && sh == 1 && sw == 1 && guard.is_none();
            // `cols` is x itself as [N, P, C] (nhwc) / [N, C, P] (nchw), or
            // im2col [N, P, K] (nhwc: rows of A) / [N, K, P] (nchw: rows of
            // B, so that the copy and the packing both run along P).
            let cols = if direct {
                x.view(&if nhwc { [n, p, c] } else { [n, c, p] })
            } else {
                let kc_first = matches!(o.filter_layout, Conv2dFilterLayout::Oihw | Conv2dFilterLayout::Ihwo);
                // Domain [N, OH, OW, K1, K2, K3] (nhwc) or [N, K1, K2, K3, OH, OW]
                // (nchw), with (K1, K2, K3) = (C, KH, KW) or (KH, KW, C).
                let (k0, aoh, aow) = if nhwc { (3, 1, 2) } else { (1, 4, 5) };
                let (ac, aky, akx, kdims) =
                    if kc_first { (k0, k0 + 1, k0 + 2, [c, kh, kw]) } else { (k0 + 2, k0, k0 + 1, [kh, kw, c]) };
                let domain = if nhwc {
                    vec![n, oh, ow, kdims[0], kdims[1], kdims[2]]
                } else {
                    vec![n, kdims[0], kdims[1], kdims[2], oh, ow]
                };
                let rows = input_rows([
                    Row::axis(0),
                    Row::axis(ac),
                    Row { base: -pt, terms: vec![(aoh, sh), (aky, dh)] },
                    Row { base: -pl, terms: vec![(aow, sw), (akx, dw)] },
                ]);
                let col = self.scratch(x.dtype, &domain);
                self.map(domain, vec![access(&x, 6, &rows, guard)], Expr::load(0), ident(&col));
                col.view(&if nhwc { [n, p, k] } else { [n, k, p] })
            };
            let mut e = E::new();
            let mut r = e.acc();
            let mut epilogue_inputs = vec![];
            // nchw: domain [N, OC, P, K], out [N, OC, P]; nhwc: [N, P, OC, K], out [N, P, OC].
            let (a_oc, a_p, a_k) = if nhwc { (2, 1, 3) } else { (1, 2, 3) };
            if let Some(b) = o.bias {
                let vb = self.val(b);
                epilogue_inputs.push(placed(&vb, 3, &[Some(a_oc)]));
                let bv = e.load(0);
                r = e.add(r, bv);
            }
            let wm_rows =
                if filter_oc_first { [Row::axis(a_oc), Row::axis(a_k)] } else { [Row::axis(a_k), Row::axis(a_oc)] };
            let wm_access = access(&wm, 4, &wm_rows, None);
            let cols_access = if !nhwc {
                access(&cols, 4, &[Row::axis(0), Row::axis(a_k), Row::axis(a_p)], None)
            } else {
                access(&cols, 4, &[Row::axis(0), Row::axis(a_p), Row::axis(a_k)], None)
            };
            let (a, b, domain, out_shape) = if nhwc {
                (cols_access, wm_access, vec![n, p, oc, k], [n, p, oc])
            } else {
                (wm_access, cols_access, vec![n, oc, p, k], [n, oc, p])
            };
            self.program.kernels.push(Kernel::Gemm {
                domain,
                a,
                b,
                epilogue_inputs,
                epilogue: e.done(r),
                out: ident(&y.view(&out_shape)),
            });
            return Ok(());
        }

        // Grouped: a reduction over (ICG, KH, KW) for every output element,
        // with the output channel split into (group, channel in group).
        let ocg = oc / groups;
        // Kept axes: nchw [N, G, OCG, OH, OW], nhwc [N, OH, OW, G, OCG]; reduced [ICG, KH, KW].
        let (an, ag, aocg, aoh, aow) = if nhwc { (0, 3, 4, 1, 2) } else { (0, 1, 2, 3, 4) };
        let (aicg, akh, akw) = (5, 6, 7);
        let kept = if nhwc { vec![n, oh, ow, groups, ocg] } else { vec![n, groups, ocg, oh, ow] };
        let mut domain = kept.clone();
        domain.extend([icg, kh, kw]);
        let x_rows = input_rows([
            Row::axis(an),
            Row { base: 0, terms: vec![(ag, icg as isize), (aicg, 1)] },
            Row { base: -pt, terms: vec![(aoh, sh), (akh, dh)] },
            Row { base: -pl, terms: vec![(aow, sw), (akw, dw)] },
        ]);
        let f_logical = [
            Row { base: 0, terms: vec![(ag, ocg as isize), (aocg, 1)] },
            Row::axis(aicg),
            Row::axis(akh),
            Row::axis(akw),
        ];
        let f_rows = conv_filter_rows(o.filter_layout, f_logical);
        let inputs = vec![access(&x, 8, &x_rows, guard), access(&w, 8, &f_rows, None)];
        // The bias, per output channel g*OCG + ocg, is the finish's input.
        let mut e = E::new();
        let (xv, wv) = (e.load(0), e.load(1));
        let r = e.mul(xv, wv);
        let element = e.done(r);
        let mut finish = E::new();
        let mut sum = finish.acc();
        let mut finish_inputs = vec![];
        if let Some(b) = o.bias {
            let vb = self.val(b);
            let channel = Row { base: 0, terms: vec![(ag, ocg as isize), (aocg, 1)] };
            finish_inputs.push(access(&vb, 5, &[channel], None));
            let bv = finish.load(0);
            sum = finish.add(sum, bv);
        }
        self.program.kernels.push(Kernel::Reduce {
            domain,
            reduced: 3,
            inputs,
            element,
            combine: Combine::Sum,
            finish: finish.done(sum),
            finish_inputs,
            out: ident(&y.view(&kept)),
        });
        Ok(())
    }

    /// A transposed convolution as one GEMM per output *phase*: the outputs
    /// `(py + sh*i, px + sw*j)` of one phase `(py, px)` receive exactly the
    /// taps `ky` with `py + pt - ky*dh` divisible by `sh` (likewise `kx`),
    /// each from input row `i + (py + pt - ky*dh) / sh`, so a phase is a
    /// stride-1 correlation of the input with a sub-filter. Per phase: a
    /// GEMM over `[N, G, I, (OCG, J) or (J, OCG), ICG*taps]` writing the
    /// phase's outputs in place (bias in the epilogue); with one tap and
    /// every input coordinate inside the input, the GEMM reads the input
    /// and the filter where they are, else an im2col Map gathers the
    /// phase's windows (zero outside the input) and a Map gathers its
    /// sub-filter. A phase without taps is the bias (or zero).
    pub(super) fn conv_transpose2d(
        &mut self,
        input: OperandId,
        filter: OperandId,
        o: &ConvTranspose2dOptions,
        out: OperandId,
    ) -> R {
        let (x, w) = (self.val(input), self.val(filter));
        let y = self.dest(out);
        let bias = o.bias.map(|b| self.val(b));
        let nhwc = o.input_layout == InputLayout::Nhwc;
        let (ha, wa) = spatial_axes(o.input_layout);
        let (n, c) = (x.shape[0], x.shape[channel_axis(o.input_layout)]);
        let (ih, iw) = (x.shape[ha] as isize, x.shape[wa] as isize);
        let (oh, ow) = (y.shape[ha], y.shape[wa]);
        let (_, ocg, kh, kw) =
            conv_transpose2d_filter_dims(o.filter_layout, &kiln_ir::Shape(w.shape.iter().map(|&d| d as u32).collect()));
        let (ocg, kh, kw) = (ocg as usize, kh as usize, kw as usize);
        let groups = o.groups as usize;
        let icg = c / groups;
        let [sh, sw] = o.strides.map(|s| s as usize);
        let [dh, dw] = o.dilations.map(|d| d as isize);
        let (pt, pl) = (o.padding[0] as isize, o.padding[2] as isize);
        // Physical rows of the input and filter from logical ones.
        let x_rows = |[rn, rc, rh, rw]: [Row; 4]| if nhwc { vec![rn, rh, rw, rc] } else { vec![rn, rc, rh, rw] };
        let f_rows = |[ri, ro, rh, rw]: [Row; 4]| match o.filter_layout {
            ConvTranspose2dFilterLayout::Iohw => vec![ri, ro, rh, rw],
            ConvTranspose2dFilterLayout::Hwoi => vec![rh, rw, ro, ri],
            ConvTranspose2dFilterLayout::Ohwi => vec![ro, rh, rw, ri],
        };
        for py in 0..sh.min(oh) {
            for px in 0..sw.min(ow) {
                let (pi, pj) = ((oh - py).div_ceil(sh), (ow - px).div_ceil(sw));
                let ty = phase_taps(py as isize + pt, sh as isize, dh, kh);
                let tx = phase_taps(px as isize + pl, sw as isize, dw, kw);
                // GEMM domain [N, G, I, X, Y, K]: (X, Y) = (OCG, J) in nchw
                // (out[oc][j]), (J, OCG) in nhwc (out[j][oc]).
                let (aoc, aj) = if nhwc { (4, 3) } else { (3, 4) };
                let outer = if nhwc { vec![n, groups, pi, pj, ocg] } else { vec![n, groups, pi, ocg, pj] };
                let oc_row = Row { base: 0, terms: vec![(1, ocg as isize), (aoc, 1)] };
                let y_rows = x_rows([
                    Row::axis(0),
                    oc_row.clone(),
                    Row { base: py as isize, terms: vec![(2, sh as isize)] },
                    Row { base: px as isize, terms: vec![(aj, sw as isize)] },
                ]);
                let mut e = E::new();
                let mut epilogue_inputs = vec![];
                let bias_term = bias.as_ref().map(|vb| {
                    epilogue_inputs.push(access(vb, 5, std::slice::from_ref(&oc_row), None));
                    e.load(0)
                });
                let (Some(ty), Some(tx)) = (ty, tx) else {
                    // No tap reaches this phase: the bias, or zero.
                    let r = bias_term.unwrap_or_else(|| e.c(0.0));
                    let out = access(&y, 5, &y_rows, None);
                    self.map(outer, epilogue_inputs, e.done(r), out);
                    continue;
                };
                let taps = ty.count * tx.count;
                let k = icg * taps;
                // Input rows at tap (t, u) of the phase: i + off - t*step.
                let in_y = |ai: usize, at: Option<usize>| Row {
                    base: ty.offset,
                    terms: [(ai, 1)].into_iter().chain(at.map(|a| (a, -ty.step))).collect(),
                };
                let in_x = |aj: usize, au: Option<usize>| Row {
                    base: tx.offset,
                    terms: [(aj, 1)].into_iter().chain(au.map(|a| (a, -tx.step))).collect(),
                };
                let inside = |t: &PhaseTaps, len: usize, extent: isize| {
                    t.offset - (t.count as isize - 1) * t.step >= 0 && len as isize - 1 + t.offset < extent
                };
                let guard = !(inside(&ty, pi, ih) && inside(&tx, pj, iw));
                let chan = |a: usize| Row { base: 0, terms: vec![(1, icg as isize), (a, 1)] };
                // The phase's windows: x itself, or im2col scratch
                // [N, G, ICG, Ty, Tx, I, J] (nchw) / [N, G, I, J, ICG, Ty, Tx] (nhwc).
                let windows = if taps == 1 && !guard {
                    let rows = x_rows([Row::axis(0), chan(5), in_y(2, None), in_x(aj, None)]);
                    access(&x, 6, &rows, None)
                } else {
                    let (shape, [ac, at, au, ai, ajj]) = if nhwc {
                        (vec![n, groups, pi, pj, icg, ty.count, tx.count], [4, 5, 6, 2, 3])
                    } else {
                        (vec![n, groups, icg, ty.count, tx.count, pi, pj], [2, 3, 4, 5, 6])
                    };
                    let cols = self.scratch(x.dtype, &shape);
                    let rows = x_rows([Row::axis(0), chan(ac), in_y(ai, Some(at)), in_x(ajj, Some(au))]);
                    self.map(shape, vec![access(&x, 7, &rows, guard.then_some(0.0))], Expr::load(0), ident(&cols));
                    if nhwc {
                        let v = cols.view(&[n, groups, pi, pj, k]);
                        access(&v, 6, &[Row::axis(0), Row::axis(1), Row::axis(2), Row::axis(3), Row::axis(5)], None)
                    } else {
                        let v = cols.view(&[n, groups, k, pi, pj]);
                        access(&v, 6, &[Row::axis(0), Row::axis(1), Row::axis(5), Row::axis(2), Row::axis(4)], None)
                    }
                };
                // The phase's sub-filter: w itself, or gathered into scratch
                // [G, OCG, ICG, Ty, Tx] (nchw) / [G, ICG, Ty, Tx, OCG] (nhwc).
                let ky_row = |at: Option<usize>| Row {
                    base: ty.first as isize,
                    terms: at.map(|a| (a, ty.tap_step as isize)).into_iter().collect(),
                };
                let kx_row = |au: Option<usize>| Row {
                    base: tx.first as isize,
                    terms: au.map(|a| (a, tx.tap_step as isize)).into_iter().collect(),
                };
                let filter = if taps == 1 {
                    let rows = f_rows([chan(5), Row::axis(aoc), ky_row(None), kx_row(None)]);
                    access(&w, 6, &rows, None)
                } else {
                    let (shape, [ac, ao, at, au]) = if nhwc {
                        (vec![groups, icg, ty.count, tx.count, ocg], [1, 4, 2, 3])
                    } else {
                        (vec![groups, ocg, icg, ty.count, tx.count], [2, 1, 3, 4])
                    };
                    let sub = self.scratch(w.dtype, &shape);
                    let g_chan = Row { base: 0, terms: vec![(0, icg as isize), (ac, 1)] };
                    let rows = f_rows([g_chan, Row::axis(ao), ky_row(Some(at)), kx_row(Some(au))]);
                    self.map(shape, vec![access(&w, 5, &rows, None)], Expr::load(0), ident(&sub));
                    if nhwc {
                        access(&sub.view(&[groups, k, ocg]), 6, &[Row::axis(1), Row::axis(5), Row::axis(aoc)], None)
                    } else {
                        access(&sub.view(&[groups, ocg, k]), 6, &[Row::axis(1), Row::axis(aoc), Row::axis(5)], None)
                    }
                };
                let acc = e.acc();
                let r = match bias_term {
                    Some(b) => e.add(acc, b),
                    None => acc,
                };
                let (a, b) = if nhwc { (windows, filter) } else { (filter, windows) };
                let mut domain = outer.clone();
                domain.push(k);
                self.program.kernels.push(Kernel::Gemm {
                    domain,
                    a,
                    b,
                    epilogue_inputs,
                    epilogue: e.done(r),
                    out: access(&y, 5, &y_rows, None),
                });
            }
        }
        Ok(())
    }
}

/// The filter taps one output phase of a transposed convolution receives
/// along one spatial axis (see `Lowerer::conv_transpose2d`): taps
/// `first + t*tap_step` for `t < count`, tap `t` reading input coordinate
/// `i + offset - t*step` for the phase's `i`-th output.
struct PhaseTaps {
    first: usize,
    tap_step: usize,
    count: usize,
    offset: isize,
    step: isize,
}

/// The taps `k < kernel` with `shifted - k*dilation` divisible by `stride`
/// (`shifted` = phase + padding), or `None` if there are none.
fn phase_taps(shifted: isize, stride: isize, dilation: isize, kernel: usize) -> Option<PhaseTaps> {
    let first = (0..kernel).find(|&k| (shifted - k as isize * dilation).rem_euclid(stride) == 0)?;
    let g = gcd(stride as usize, dilation as usize);
    let tap_step = stride as usize / g;
    let count = (kernel - first).div_ceil(tap_step);
    let offset = (shifted - first as isize * dilation).div_euclid(stride);
    Some(PhaseTaps { first, tap_step, count, offset, step: dilation / g as isize })
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// The filter's rows in its layout, from logical `(o, i, h, w)` rows.
fn conv_filter_rows(layout: Conv2dFilterLayout, logical: [Row; 4]) -> Vec<Row> {
    let [ro, ri, rh, rw] = logical;
    match layout {
        Conv2dFilterLayout::Oihw => vec![ro, ri, rh, rw],
        Conv2dFilterLayout::Hwio => vec![rh, rw, ri, ro],
        Conv2dFilterLayout::Ohwi => vec![ro, rh, rw, ri],
        Conv2dFilterLayout::Ihwo => vec![ri, rh, rw, ro],
    }
}
