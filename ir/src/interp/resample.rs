//! resample2d, with the half-pixel coordinate transform of WPT's
//! `resample2d-nearest-half-pixel` conformance tests.
//!
//! Along each of the two resampled axes, output coordinate `d` samples input
//! coordinate `s = (d + 0.5) * in / out - 0.5`, clamped to `[0, in - 1]`.
//! The ratio is always that of the actual sizes, also when the output size
//! came from `scales` (`out = floor(in * scale)`): WPT's "noninteger
//! upscaling with scales" case (width 3, scale 1.5 -> `[10, 20, 20, 30]`)
//! requires it. (webnn-baseline divides by the given scale instead, which
//! gives `[10, 10, 20, 30]` there.) `sizes` wins over `scales`.
//! - nearest-neighbor reads element `ceil(s - 0.5)`: the nearest, ties to the
//!   smaller index. It copies element bytes.
//! - linear interpolates the two neighbours `floor(s)` and `floor(s) + 1`
//!   (clamped to the edge) with weights `1 - frac(s)` and `frac(s)`, along
//!   both axes. For the integer types (uint8, int8) the result rounds to
//!   nearest, ties away from zero.

use super::{encode, encode_f64, gather_elements, strides_of, Res};
use crate::{InterpolationMode, OperandDescriptor, Resample2dOptions, Tensor, Values};

pub(super) fn resample2d(input: &Tensor, o: &Resample2dOptions, out: &OperandDescriptor) -> Res<Tensor> {
    let ishape = input.shape().dims();
    let oshape = out.shape.dims();
    if ishape.len() != 4 || oshape.len() != 4 {
        return Err("resample2d takes a 4-D input".into());
    }
    let axes = o.axes.map(|a| a as usize);
    let sizes = |k: usize| (ishape[axes[k]], oshape[axes[k]]);
    let is = strides_of(ishape);
    let count = out.shape.element_count();

    match o.mode {
        InterpolationMode::NearestNeighbor => {
            let pick: Vec<Vec<usize>> = (0..2).map(|k| nearest_indices(sizes(k).0, sizes(k).1)).collect();
            let mut map = Vec::with_capacity(count);
            for_each_index(oshape, |index| {
                let mut src = 0;
                for axis in 0..4 {
                    let i = if axis == axes[0] {
                        pick[0][index[axis]]
                    } else if axis == axes[1] {
                        pick[1][index[axis]]
                    } else {
                        index[axis]
                    };
                    src += i * is[axis];
                }
                map.push(src);
            });
            gather_elements(input, &map, out)
        }
        InterpolationMode::Linear => {
            let (x, is_int) = match input.values() {
                Values::Float(v) => (v, false),
                Values::Int(v) => (v.into_iter().map(|i| i as f64).collect(), true),
            };
            let taps: Vec<Vec<(usize, usize, f64)>> = (0..2).map(|k| linear_taps(sizes(k).0, sizes(k).1)).collect();
            let mut y = Vec::with_capacity(count);
            for_each_index(oshape, |index| {
                let mut base = 0;
                for axis in 0..4 {
                    if axis != axes[0] && axis != axes[1] {
                        base += index[axis] * is[axis];
                    }
                }
                let (l0, h0, u) = taps[0][index[axes[0]]];
                let (l1, h1, v) = taps[1][index[axes[1]]];
                let at = |p: usize, q: usize| x[base + p * is[axes[0]] + q * is[axes[1]]];
                y.push((1.0 - u) * ((1.0 - v) * at(l0, l1) + v * at(l0, h1)) + u * ((1.0 - v) * at(h0, l1) + v * at(h0, h1)));
            });
            if is_int {
                let (lo, hi) = out.data_type.int_range().ok_or("integer type without a range")?;
                encode(out, Values::Int(y.into_iter().map(|v| (v.round() as i128).clamp(lo, hi)).collect()))
            } else {
                encode_f64(out, y)
            }
        }
    }
}

/// The clamped source coordinate `s` of every output coordinate along one
/// resampled axis of `n_in` input and `n_out` output elements.
fn source_coordinates(n_in: u32, n_out: u32) -> impl Iterator<Item = f64> {
    let n = n_in as f64;
    (0..n_out).map(move |d| ((d as f64 + 0.5) * n / n_out as f64 - 0.5).clamp(0.0, n - 1.0))
}

/// Nearest-neighbor resampling along one axis: the input index that every
/// output index copies.
pub fn nearest_indices(n_in: u32, n_out: u32) -> Vec<usize> {
    source_coordinates(n_in, n_out).map(|s| (s - 0.5).ceil().max(0.0) as usize).collect()
}

/// Linear resampling along one axis: for every output index, the lower and
/// upper input indices and the weight of the upper one.
pub fn linear_taps(n_in: u32, n_out: u32) -> Vec<(usize, usize, f64)> {
    let last = n_in as usize - 1;
    source_coordinates(n_in, n_out)
        .map(|s| {
            let lo = s.floor();
            (lo as usize, (lo as usize + 1).min(last), s - lo)
        })
        .collect()
}

/// Calls `f` with every multi-index of `shape`, in row-major order.
fn for_each_index(shape: &[u32], mut f: impl FnMut(&[usize])) {
    let count: usize = shape.iter().map(|&d| d as usize).product();
    let mut index = vec![0usize; shape.len()];
    for _ in 0..count {
        f(&index);
        for axis in (0..shape.len()).rev() {
            index[axis] += 1;
            if index[axis] < shape[axis] as usize {
                break;
            }
            index[axis] = 0;
        }
    }
}
