//! conv2d and convTranspose2d. Both work on an NCHW copy of the input and a
//! canonical copy of the filter (OIHW for conv2d, IOHW for convTranspose2d),
//! accumulate in `f64`, add the bias and convert back to the input layout.

use super::{encode_f64, floats, permute, Res};
use crate::infer::spatial_axes;
use crate::{Conv2dFilterLayout, Conv2dOptions, ConvTranspose2dFilterLayout, ConvTranspose2dOptions, InputLayout};
use crate::{OperandDescriptor, Tensor};

/// The input as NCHW `f64` values and its `[n, c, h, w]`.
fn to_nchw(input: &Tensor, layout: InputLayout) -> Res<(Vec<f64>, [usize; 4])> {
    let x = floats(input)?;
    let (x, shape) = match layout {
        InputLayout::Nchw => (x, input.shape().dims().to_vec()),
        InputLayout::Nhwc => permute(&x, input.shape().dims(), &[0, 3, 1, 2]),
    };
    Ok((x, dims4(&shape)?))
}

fn dims4(shape: &[u32]) -> Res<[usize; 4]> {
    match shape {
        &[a, b, c, d] => Ok([a as usize, b as usize, c as usize, d as usize]),
        _ => Err(format!("expected a 4-D shape, got {shape:?}")),
    }
}

/// Adds the bias (one value per channel) to NCHW `y`, converts it to
/// `layout` and encodes it.
fn finish(mut y: Vec<f64>, nchw: [usize; 4], bias: Option<&Tensor>, layout: InputLayout, out: &OperandDescriptor) -> Res<Tensor> {
    let [_, c, h, w] = nchw;
    if let Some(bias) = bias {
        let b = floats(bias)?;
        if b.len() != c {
            return Err(format!("bias has {} values for {c} output channels", b.len()));
        }
        for (i, plane) in y.chunks_mut(h * w).enumerate() {
            let bc = b[i % c];
            plane.iter_mut().for_each(|v| *v += bc);
        }
    }
    let y = match layout {
        InputLayout::Nchw => y,
        InputLayout::Nhwc => permute(&y, &nchw.map(|d| d as u32), &[0, 2, 3, 1]).0,
    };
    encode_f64(out, y)
}

/// The output's spatial size `(height, width)`.
fn out_hw(out: &OperandDescriptor, layout: InputLayout) -> (usize, usize) {
    let (ha, wa) = spatial_axes(layout);
    (out.shape.0[ha] as usize, out.shape.0[wa] as usize)
}

/// 2-D convolution: `y[n, oc, oy, ox] = bias[oc] + Σ_{ic in group, ky, kx}
/// x[n, ic, oy*sh + ky*dh - pad_top, ox*sw + kx*dw - pad_left] * w[oc, ic, ky, kx]`,
/// where positions outside the input (the padding) read as 0.
pub(super) fn conv2d(
    input: &Tensor,
    filter: &Tensor,
    bias: Option<&Tensor>,
    o: &Conv2dOptions,
    out: &OperandDescriptor,
) -> Res<Tensor> {
    let (x, [n, c, h, w]) = to_nchw(input, o.input_layout)?;
    let perm = match o.filter_layout {
        Conv2dFilterLayout::Oihw => [0, 1, 2, 3],
        Conv2dFilterLayout::Hwio => [3, 2, 0, 1],
        Conv2dFilterLayout::Ohwi => [0, 3, 1, 2],
        Conv2dFilterLayout::Ihwo => [3, 0, 1, 2],
    };
    let (f, fshape) = permute(&floats(filter)?, filter.shape().dims(), &perm);
    let [oc_count, icg, kh, kw] = dims4(&fshape)?;
    let (oh, ow) = out_hw(out, o.input_layout);
    let groups = o.groups as usize;
    if groups == 0 || oc_count % groups != 0 || icg * groups != c {
        return Err("the channels do not divide into the groups".into());
    }
    let ocg = oc_count / groups;
    let [sh, sw] = o.strides.map(|s| s as i64);
    let [dh, dw] = o.dilations.map(|d| d as i64);
    let (pt, pl) = (o.padding[0] as i64, o.padding[2] as i64);

    let mut y = vec![0.0f64; n * oc_count * oh * ow];
    for ni in 0..n {
        for oc in 0..oc_count {
            let g = oc / ocg;
            let plane = &mut y[(ni * oc_count + oc) * oh * ow..][..oh * ow];
            for icl in 0..icg {
                let ic = g * icg + icl;
                let xplane = &x[(ni * c + ic) * h * w..][..h * w];
                for ky in 0..kh {
                    for kx in 0..kw {
                        let wv = f[((oc * icg + icl) * kh + ky) * kw + kx];
                        for oy in 0..oh {
                            let iy = oy as i64 * sh + ky as i64 * dh - pt;
                            if iy < 0 || iy >= h as i64 {
                                continue;
                            }
                            let row = &xplane[iy as usize * w..][..w];
                            let orow = &mut plane[oy * ow..][..ow];
                            for (ox, acc) in orow.iter_mut().enumerate() {
                                let ix = ox as i64 * sw + kx as i64 * dw - pl;
                                if ix >= 0 && ix < w as i64 {
                                    *acc += wv * row[ix as usize];
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    finish(y, [n, oc_count, oh, ow], bias, o.input_layout, out)
}

/// Transposed 2-D convolution: every input element scatters
/// `x[n, ic, iy, ix] * w[ic, oc, ky, kx]` to
/// `y[n, g*ocg + oc, iy*sh + ky*dh - pad_top, ix*sw + kx*dw - pad_left]`
/// (contributions that land outside the output are dropped). The output
/// size comes from shape inference, so `outputPadding` and `outputSizes`
/// only add rows and columns that receive fewer (or no) contributions.
pub(super) fn conv_transpose2d(
    input: &Tensor,
    filter: &Tensor,
    bias: Option<&Tensor>,
    o: &ConvTranspose2dOptions,
    out: &OperandDescriptor,
) -> Res<Tensor> {
    let (x, [n, c, h, w]) = to_nchw(input, o.input_layout)?;
    let perm = match o.filter_layout {
        ConvTranspose2dFilterLayout::Iohw => [0, 1, 2, 3],
        ConvTranspose2dFilterLayout::Hwoi => [3, 2, 0, 1],
        ConvTranspose2dFilterLayout::Ohwi => [3, 0, 1, 2],
    };
    let (f, fshape) = permute(&floats(filter)?, filter.shape().dims(), &perm);
    let [fin, ocg, kh, kw] = dims4(&fshape)?;
    let (oh, ow) = out_hw(out, o.input_layout);
    let groups = o.groups as usize;
    if groups == 0 || fin != c || c % groups != 0 {
        return Err("the channels do not divide into the groups".into());
    }
    let icg = c / groups;
    let oc_count = ocg * groups;
    let [sh, sw] = o.strides.map(|s| s as i64);
    let [dh, dw] = o.dilations.map(|d| d as i64);
    let (pt, pl) = (o.padding[0] as i64, o.padding[2] as i64);

    let mut y = vec![0.0f64; n * oc_count * oh * ow];
    for ni in 0..n {
        for ic in 0..c {
            let g = ic / icg;
            let xplane = &x[(ni * c + ic) * h * w..][..h * w];
            for ocl in 0..ocg {
                let oc = g * ocg + ocl;
                let plane = &mut y[(ni * oc_count + oc) * oh * ow..][..oh * ow];
                for ky in 0..kh {
                    for kx in 0..kw {
                        let wv = f[((ic * ocg + ocl) * kh + ky) * kw + kx];
                        for iy in 0..h {
                            let oy = iy as i64 * sh + ky as i64 * dh - pt;
                            if oy < 0 || oy >= oh as i64 {
                                continue;
                            }
                            let row = &xplane[iy * w..][..w];
                            let orow = &mut plane[oy as usize * ow..][..ow];
                            for (ix, &xv) in row.iter().enumerate() {
                                let ox = ix as i64 * sw + kx as i64 * dw - pl;
                                if ox >= 0 && ox < ow as i64 {
                                    orow[ox as usize] += xv * wv;
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    finish(y, [n, oc_count, oh, ow], bias, o.input_layout, out)
}
