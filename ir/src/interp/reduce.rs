//! The ten reductions, `argMin`/`argMax` and `cumulativeSum`. Floats
//! accumulate in `f64`; the integer reductions (sum, L1, product, sum of
//! squares, max, min, cumulative sums) are exact and wrap to the output
//! type once.

use super::{affine_map, encode, encode_f64, strides_of, Res};
use crate::infer::resolved_reduce_axes;
use crate::{ArgOp, OperandDescriptor, ReduceOp, ReduceOptions, Tensor, Values};

/// For every element of `shape`, the index of its group: its position over
/// the axes not in `axes`. Also returns the number of groups.
pub(super) fn group_map(shape: &[u32], axes: &[u32]) -> (Vec<usize>, usize) {
    let kept: Vec<u32> = (0..shape.len())
        .filter(|i| !axes.contains(&(*i as u32)))
        .map(|i| shape[i])
        .collect();
    let kept_strides = strides_of(&kept);
    let mut strides = vec![0usize; shape.len()];
    let mut k = 0;
    for (i, s) in strides.iter_mut().enumerate() {
        if !axes.contains(&(i as u32)) {
            *s = kept_strides[k];
            k += 1;
        }
    }
    let groups = kept.iter().map(|&d| d as usize).product();
    (affine_map(shape, 0, &strides), groups)
}

/// Reduces over `axes` (default: all). Keeping the reduced dimensions only
/// changes the output shape, which comes from shape inference.
pub(super) fn reduce(kind: ReduceOp, input: &Tensor, o: &ReduceOptions, out: &OperandDescriptor) -> Res<Tensor> {
    let shape = input.shape().dims();
    let axes = resolved_reduce_axes(o, shape.len());
    let (group, groups) = group_map(shape, &axes);
    if groups != out.shape.element_count() {
        return Err(format!("{groups} groups for an output of shape {}", out.shape));
    }
    match input.values() {
        Values::Float(x) => {
            let count = if groups == 0 { 0.0 } else { x.len() as f64 / groups as f64 };
            let fold = |init: f64, f: &dyn Fn(f64, f64) -> f64| {
                let mut acc = vec![init; groups];
                for (&v, &g) in x.iter().zip(&group) {
                    acc[g] = f(acc[g], v);
                }
                acc
            };
            let sum = |g: &dyn Fn(f64) -> f64| fold(0.0, &|acc, v| acc + g(v));
            let y = match kind {
                ReduceOp::Sum => sum(&|v| v),
                ReduceOp::Mean => sum(&|v| v).into_iter().map(|s| s / count).collect(),
                ReduceOp::L1 => sum(&f64::abs),
                ReduceOp::L2 => sum(&|v| v * v).into_iter().map(f64::sqrt).collect(),
                ReduceOp::SumSquare => sum(&|v| v * v),
                ReduceOp::LogSum => sum(&|v| v).into_iter().map(f64::ln).collect(),
                ReduceOp::Product => fold(1.0, &|acc, v| acc * v),
                ReduceOp::Max => fold(f64::NEG_INFINITY, &|a, v| if a.is_nan() || v.is_nan() { f64::NAN } else { a.max(v) }),
                ReduceOp::Min => fold(f64::INFINITY, &|a, v| if a.is_nan() || v.is_nan() { f64::NAN } else { a.min(v) }),
                ReduceOp::LogSumExp => {
                    // max + ln Σ exp(x - max), so that large inputs do not overflow.
                    let max = fold(f64::NEG_INFINITY, &|a, v| if a.is_nan() || v.is_nan() { f64::NAN } else { a.max(v) });
                    let mut acc = vec![0.0f64; groups];
                    for (&v, &g) in x.iter().zip(&group) {
                        acc[g] += (v - max[g]).exp();
                    }
                    max.iter().zip(acc).map(|(&m, s)| if m.is_infinite() { m } else { m + s.ln() }).collect()
                }
            };
            encode_f64(out, y)
        }
        Values::Int(x) => {
            let fold = |init: i128, f: &dyn Fn(i128, i128) -> i128| {
                let mut acc = vec![init; groups];
                for (&v, &g) in x.iter().zip(&group) {
                    acc[g] = f(acc[g], v);
                }
                acc
            };
            let y = match kind {
                ReduceOp::Sum => fold(0, &|a, v| a.wrapping_add(v)),
                ReduceOp::L1 => fold(0, &|a, v| a.wrapping_add(v.wrapping_abs())),
                ReduceOp::SumSquare => fold(0, &|a, v| a.wrapping_add(v.wrapping_mul(v))),
                ReduceOp::Product => fold(1, &|a, v| a.wrapping_mul(v)),
                ReduceOp::Max => fold(i128::MIN, &|a, v| a.max(v)),
                ReduceOp::Min => fold(i128::MAX, &|a, v| a.min(v)),
                ReduceOp::L2 | ReduceOp::LogSum | ReduceOp::LogSumExp | ReduceOp::Mean => {
                    return Err(format!("{} is not defined on {}", kind.name(), input.data_type()));
                }
            };
            encode(out, Values::Int(y))
        }
    }
}

/// `(outer, size, inner)`: the element counts before, along and after `axis`.
fn around_axis(shape: &[u32], axis: u32) -> Res<(usize, usize, usize)> {
    let axis = axis as usize;
    let size = *shape.get(axis).ok_or("axis out of range")? as usize;
    let count = |d: &[u32]| d.iter().map(|&x| x as usize).product::<usize>();
    Ok((count(&shape[..axis]), size, count(&shape[axis + 1..])))
}

/// The position along `axis` of the largest (`argMax`) or smallest
/// (`argMin`) element, the first one where several are equal. A NaN counts
/// as beyond every number, so the first NaN wins either way (as numpy's
/// `argmax`/`argmin`).
pub(super) fn arg_min_max(kind: ArgOp, input: &Tensor, axis: u32, out: &OperandDescriptor) -> Res<Tensor> {
    let (outer, size, inner) = around_axis(input.shape().dims(), axis)?;
    // Whether `a` (at a later position) replaces the best so far, `b`.
    let better_float = |a: f64, b: f64| {
        !b.is_nan() && (a.is_nan() || if kind == ArgOp::Max { a > b } else { a < b })
    };
    let better_int = |a: i128, b: i128| if kind == ArgOp::Max { a > b } else { a < b };
    let values = input.values();
    let better = |i: usize, j: usize| match &values {
        Values::Float(v) => better_float(v[i], v[j]),
        Values::Int(v) => better_int(v[i], v[j]),
    };
    let mut result = Vec::with_capacity(outer * inner);
    for o in 0..outer {
        for i in 0..inner {
            let at = |k: usize| (o * size + k) * inner + i;
            let best = (1..size).fold(0, |best, k| if better(at(k), at(best)) { k } else { best });
            result.push(best as i128);
        }
    }
    encode(out, Values::Int(result))
}

/// Running sums along `axis`: element `k` is the sum of elements `0..=k`
/// (`exclusive`: `0..k`, so the first is 0), or of `k..size` (`reversed`;
/// with `exclusive`, `k+1..size`). Floats sum in `f64` and round once;
/// integers are exact and wrap to the data type.
pub(super) fn cumulative_sum(input: &Tensor, axis: u32, exclusive: bool, reversed: bool, out: &OperandDescriptor) -> Res<Tensor> {
    let (outer, size, inner) = around_axis(input.shape().dims(), axis)?;
    fn scan<T: Copy + Default>(x: &[T], outer: usize, size: usize, inner: usize, exclusive: bool, reversed: bool, add: fn(T, T) -> T) -> Vec<T> {
        let mut y = vec![T::default(); x.len()];
        for o in 0..outer {
            for i in 0..inner {
                let mut acc = T::default();
                for step in 0..size {
                    let k = if reversed { size - 1 - step } else { step };
                    let at = (o * size + k) * inner + i;
                    if exclusive {
                        y[at] = acc;
                        acc = add(acc, x[at]);
                    } else {
                        acc = add(acc, x[at]);
                        y[at] = acc;
                    }
                }
            }
        }
        y
    }
    match input.values() {
        Values::Float(x) => encode_f64(out, scan(&x, outer, size, inner, exclusive, reversed, |a, b| a + b)),
        Values::Int(x) => encode(out, Values::Int(scan(&x, outer, size, inner, exclusive, reversed, i128::wrapping_add))),
    }
}
