//! Data movement: reshape, transpose, concat, split, slice, expand, gather,
//! pad, reverse, tile, triangular. Element bytes are copied, so every data
//! type moves exactly.

use super::{affine_map, assemble, broadcast_map, clamped_index, for_each_index, gather_elements, index_values, strides_of, Res};
use crate::infer::{resolved_permutation, resolved_slice_strides};
use crate::{saturate_float_to_int, Number, OperandDescriptor, PadOptions, PaddingMode, Tensor, Values};

/// Same bytes, new shape.
pub(super) fn reshape(input: &Tensor, out: &OperandDescriptor) -> Res<Tensor> {
    if input.data_type() != out.data_type {
        return Err("reshape keeps the data type".into());
    }
    Tensor::new(out.clone(), input.shared_bytes().clone()).map_err(|e| e.to_string())
}

/// Output axis `i` is input axis `permutation[i]` (default: reversed axes).
pub(super) fn transpose(input: &Tensor, permutation: &Option<Vec<u32>>, out: &OperandDescriptor) -> Res<Tensor> {
    let shape = input.shape().dims();
    let perm = resolved_permutation(permutation, shape.len());
    let in_strides = strides_of(shape);
    let strides: Vec<usize> = perm.iter().map(|&p| in_strides[p as usize]).collect();
    gather_elements(input, &affine_map(out.shape.dims(), 0, &strides), out)
}

/// Joins the inputs along `axis`, in order.
pub(super) fn concat(inputs: &[&Tensor], axis: u32, out: &OperandDescriptor) -> Res<Tensor> {
    let axis = axis as usize;
    let oshape = out.shape.dims();
    let outer: usize = oshape[..axis].iter().map(|&d| d as usize).product();
    let inner: usize = oshape[axis + 1..].iter().map(|&d| d as usize).product();
    let size = out.data_type.byte_size();
    let mut bytes = Vec::with_capacity(out.byte_length());
    for o in 0..outer {
        for t in inputs {
            if t.data_type() != out.data_type {
                return Err("the inputs have different data types".into());
            }
            let chunk = *t.shape().dims().get(axis).ok_or("axis out of range")? as usize * inner * size;
            bytes.extend_from_slice(t.bytes().get(o * chunk..(o + 1) * chunk).ok_or("input smaller than its shape")?);
        }
    }
    Tensor::from_bytes(out.clone(), bytes).map_err(|e| e.to_string())
}

/// Consecutive pieces along `axis`, sized as the output descriptors say.
pub(super) fn split(input: &Tensor, axis: u32, outputs: &[OperandDescriptor]) -> Res<Vec<Tensor>> {
    let axis = axis as usize;
    let strides = strides_of(input.shape().dims());
    let stride = *strides.get(axis).ok_or("axis out of range")?;
    let mut offset = 0usize;
    outputs
        .iter()
        .map(|out| {
            let map = affine_map(out.shape.dims(), offset * stride, &strides);
            offset += out.shape.0[axis] as usize;
            gather_elements(input, &map, out)
        })
        .collect()
}

/// Elements `starts[i] + k * strides[i]` along every axis `i`.
pub(super) fn slice(input: &Tensor, starts: &[u32], strides: &Option<Vec<u32>>, out: &OperandDescriptor) -> Res<Tensor> {
    let shape = input.shape().dims();
    let steps = resolved_slice_strides(strides, shape.len());
    let in_strides = strides_of(shape);
    let base = starts.iter().zip(&in_strides).map(|(&s, &st)| s as usize * st).sum();
    let strides: Vec<usize> = steps.iter().zip(&in_strides).map(|(&k, &st)| k as usize * st).collect();
    gather_elements(input, &affine_map(out.shape.dims(), base, &strides), out)
}

/// Broadcasts the input to the output shape.
pub(super) fn expand(input: &Tensor, out: &OperandDescriptor) -> Res<Tensor> {
    gather_elements(input, &broadcast_map(input.shape().dims(), out.shape.dims())?, out)
}

/// `output[o, j..., i] = input[o, index(indices[j...]), i]` along `axis`. A
/// negative index counts from the end (adds the axis size); an index still
/// outside `[0, size)` is clamped to the nearest valid one.
pub(super) fn gather(input: &Tensor, indices: &Tensor, axis: u32, out: &OperandDescriptor) -> Res<Tensor> {
    let shape = input.shape().dims();
    let axis = axis as usize;
    let dim = *shape.get(axis).ok_or("axis out of range")?;
    let outer: usize = shape[..axis].iter().map(|&d| d as usize).product();
    let inner: usize = shape[axis + 1..].iter().map(|&d| d as usize).product();
    let idx: Vec<usize> = index_values(indices)?.into_iter().map(|i| clamped_index(i, dim)).collect();
    let mut map = Vec::with_capacity(outer * idx.len() * inner);
    for o in 0..outer {
        for &i in &idx {
            let base = (o * dim as usize + i) * inner;
            map.extend(base..base + inner);
        }
    }
    gather_elements(input, &map, out)
}

/// Pads every axis with `beginning_padding[i]` elements before and as many
/// as the output shape leaves after. `constant` fills with `value`
/// converted to the data type (floats round to nearest; for an integer
/// type the value is truncated toward zero and saturated, NaN giving 0);
/// `edge` repeats the border element; `reflection` mirrors without
/// repeating the border.
pub(super) fn pad(input: &Tensor, beginning_padding: &[u32], o: &PadOptions, out: &OperandDescriptor) -> Res<Tensor> {
    let t = input.data_type();
    if t != out.data_type {
        return Err("pad keeps the data type".into());
    }
    let fill = match (t.int_range(), o.value) {
        (None, v) => Values::Float(vec![v.as_f64()]),
        (Some((lo, hi)), Number::Int(i)) => Values::Int(vec![i.clamp(lo, hi)]),
        (Some(_), Number::Float(f)) => Values::Int(vec![saturate_float_to_int(t, f)]),
    };
    let fill = Tensor::from_values(OperandDescriptor::new(t, []), &fill).map_err(|e| e.to_string())?;
    let fill = fill.bytes();

    let ishape = input.shape().dims();
    let oshape = out.shape.dims();
    let rank = ishape.len();
    let in_strides = strides_of(ishape);
    let size = t.byte_size();
    let src = input.bytes();
    let count = out.shape.element_count();
    let mut bytes = Vec::with_capacity(count * size);
    let mut index = vec![0usize; rank];
    for _ in 0..count {
        // The source element of output position `index`, if it has one.
        let mut offset = Some(0usize);
        for axis in 0..rank {
            let dim = ishape[axis] as i64;
            let j = index[axis] as i64 - beginning_padding[axis] as i64;
            let j = if (0..dim).contains(&j) {
                Some(j)
            } else {
                match o.mode {
                    PaddingMode::Constant => None,
                    PaddingMode::Edge => Some(j.clamp(0, dim - 1)),
                    PaddingMode::Reflection => Some((if j < 0 { -j } else { 2 * (dim - 1) - j }).clamp(0, dim - 1)),
                }
            };
            offset = match (offset, j) {
                (Some(off), Some(j)) => Some(off + j as usize * in_strides[axis]),
                _ => None,
            };
        }
        match offset {
            Some(off) => bytes.extend_from_slice(src.get(off * size..(off + 1) * size).ok_or("element index out of range")?),
            None => bytes.extend_from_slice(fill),
        }
        for axis in (0..rank).rev() {
            index[axis] += 1;
            if index[axis] < oshape[axis] as usize {
                break;
            }
            index[axis] = 0;
        }
    }
    Tensor::from_bytes(out.clone(), bytes).map_err(|e| e.to_string())
}

/// Reverses the order of the elements along every axis of `axes` (default:
/// all of them; an empty list copies the input).
pub(super) fn reverse(input: &Tensor, axes: &Option<Vec<u32>>, out: &OperandDescriptor) -> Res<Tensor> {
    let shape = input.shape().dims();
    let strides = strides_of(shape);
    let flipped = |a: usize| axes.as_ref().is_none_or(|axes| axes.contains(&(a as u32)));
    let mut map = Vec::with_capacity(out.shape.element_count());
    for_each_index(shape, |index| {
        map.push(
            index
                .iter()
                .enumerate()
                .map(|(a, &i)| strides[a] * if flipped(a) { shape[a] as usize - 1 - i } else { i })
                .sum(),
        )
    });
    gather_elements(input, &map, out)
}

/// Repeats the input `repetitions[i]` times along every axis `i`: output
/// element `j` along an axis is input element `j mod size`.
pub(super) fn tile(input: &Tensor, out: &OperandDescriptor) -> Res<Tensor> {
    let shape = input.shape().dims();
    let strides = strides_of(shape);
    let mut map = Vec::with_capacity(out.shape.element_count());
    for_each_index(out.shape.dims(), |index| {
        map.push(index.iter().enumerate().map(|(a, &j)| strides[a] * (j % shape[a] as usize)).sum())
    });
    gather_elements(input, &map, out)
}

/// Keeps the upper (`upper`) or lower triangle of every matrix formed by
/// the last two axes and zeroes the rest: element `(row, column)` is kept
/// when `column - row >= diagonal` (upper) or `column - row <= diagonal`
/// (lower); a kept element's bytes are copied.
pub(super) fn triangular(input: &Tensor, upper: bool, diagonal: i32, out: &OperandDescriptor) -> Res<Tensor> {
    let shape = input.shape().dims();
    let rank = shape.len();
    if rank < 2 {
        return Err("triangular needs a rank of at least 2".into());
    }
    let mut picks = Vec::with_capacity(out.shape.element_count());
    let mut flat = 0usize;
    for_each_index(shape, |index| {
        let offset = index[rank - 1] as i64 - index[rank - 2] as i64;
        let kept = if upper { offset >= i64::from(diagonal) } else { offset <= i64::from(diagonal) };
        picks.push(kept.then_some((0, flat)));
        flat += 1;
    });
    assemble(&[input], &picks, out)
}
