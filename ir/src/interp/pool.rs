//! averagePool2d, maxPool2d and l2Pool2d.
//!
//! Window `(oy, ox)` covers input rows `oy*sh + ky*dh - pad_top` and columns
//! `ox*sw + kx*dw - pad_left`. Positions outside the input (padding, or the
//! overhang that `ceil` rounding or `outputSizes` adds) are skipped, not
//! read as zeros: the average divides by the number of input elements
//! actually in the window, and `l2Pool2d` is the square root of the sum of
//! their squares. A window that covers no input element at all (possible
//! when a padding is at least the window's extent) gives 0 for the average
//! and L2 pools and the lowest value of the type (`-Infinity` for floats)
//! for the max pool, which is what those pools give if the padding is read
//! as 0 (average, L2) or as `-Infinity` (max).

use super::{encode, encode_f64, strides_of, Res};
use crate::infer::{channel_axis, resolved_window, spatial_axes};
use crate::{OperandDescriptor, Pool2dOptions, PoolOp, Tensor, Values};

/// Calls `visit(output_index, input_indices)` for every output element, with
/// the flat indices of the input elements inside its window.
fn for_each_window(input: &Tensor, o: &Pool2dOptions, out: &OperandDescriptor, mut visit: impl FnMut(usize, &[usize])) {
    let ishape = input.shape().dims();
    let oshape = out.shape.dims();
    let [kh, kw] = resolved_window(o, input.shape()).map(|k| k as i64);
    let (ha, wa) = spatial_axes(o.layout);
    let ca = channel_axis(o.layout);
    let (is, os) = (strides_of(ishape), strides_of(oshape));
    let (h, w) = (ishape[ha] as i64, ishape[wa] as i64);
    let [sh, sw] = o.strides.map(|s| s as i64);
    let [dh, dw] = o.dilations.map(|d| d as i64);
    let (pt, pl) = (o.padding[0] as i64, o.padding[2] as i64);
    let mut window = Vec::with_capacity((kh * kw) as usize);
    for n in 0..oshape[0] as usize {
        for c in 0..oshape[ca] as usize {
            let base = n * is[0] + c * is[ca];
            for oy in 0..oshape[ha] as i64 {
                for ox in 0..oshape[wa] as i64 {
                    window.clear();
                    for ky in 0..kh {
                        let iy = oy * sh + ky * dh - pt;
                        if iy < 0 || iy >= h {
                            continue;
                        }
                        for kx in 0..kw {
                            let ix = ox * sw + kx * dw - pl;
                            if ix >= 0 && ix < w {
                                window.push(base + iy as usize * is[ha] + ix as usize * is[wa]);
                            }
                        }
                    }
                    let out_index = n * os[0] + c * os[ca] + oy as usize * os[ha] + ox as usize * os[wa];
                    visit(out_index, &window);
                }
            }
        }
    }
}

pub(super) fn pool2d(kind: PoolOp, input: &Tensor, o: &Pool2dOptions, out: &OperandDescriptor) -> Res<Tensor> {
    let count = out.shape.element_count();
    match input.values() {
        Values::Float(x) => {
            let mut y = vec![0.0f64; count];
            for_each_window(input, o, out, |i, window| {
                y[i] = match kind {
                    PoolOp::Average if window.is_empty() => 0.0,
                    PoolOp::Average => window.iter().map(|&j| x[j]).sum::<f64>() / window.len() as f64,
                    PoolOp::L2 => window.iter().map(|&j| x[j] * x[j]).sum::<f64>().sqrt(),
                    PoolOp::Max => window.iter().map(|&j| x[j]).fold(f64::NEG_INFINITY, max_nan),
                };
            });
            encode_f64(out, y)
        }
        Values::Int(x) if kind == PoolOp::Max => {
            let (lowest, _) = input.data_type().int_range().ok_or("integer type without a range")?;
            let mut y = vec![0i128; count];
            for_each_window(input, o, out, |i, window| {
                y[i] = window.iter().map(|&j| x[j]).fold(lowest, i128::max);
            });
            encode(out, Values::Int(y))
        }
        Values::Int(_) => Err(format!("{} is not defined on {}", kind.name(), input.data_type())),
    }
}

/// `max` that propagates NaN.
fn max_nan(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() { f64::NAN } else { a.max(b) }
}
