//! Data-dependent indexing: `gatherElements`, `gatherND`, `scatterElements`,
//! `scatterND`. Element bytes are copied, so every data type moves exactly.
//! Indices are read as [`clamped_index`] says (negative ones count from the
//! end, out-of-range ones are clamped).

use super::{assemble, clamped_index, for_each_index, gather_elements as pick, index_values, strides_of, Res};
use crate::{OperandDescriptor, Tensor};

/// `output[i] = input[i with coordinate axis replaced by indices[i]]`; the
/// output has the indices' shape.
pub(super) fn gather_elements(input: &Tensor, indices: &Tensor, axis: u32, out: &OperandDescriptor) -> Res<Tensor> {
    let map = element_targets(input, indices, axis)?;
    pick(input, &map, out)
}

/// `output[j, s] = input[indices[j, 0], ..., indices[j, k-1], s]`: every
/// index tuple (the indices' last dimension, `k` long) addresses one slice
/// of the input's trailing dimensions.
pub(super) fn gather_nd(input: &Tensor, indices: &Tensor, out: &OperandDescriptor) -> Res<Tensor> {
    let (bases, slice) = nd_slices(input, indices)?;
    let map: Vec<usize> = bases.iter().flat_map(|&b| b..b + slice).collect();
    pick(input, &map, out)
}

/// A copy of the input in which `output[i with coordinate axis replaced by
/// indices[i]] = updates[i]` for every position `i` of the indices, in
/// row-major order: where two positions address the same element, the
/// later one's update is the one kept.
pub(super) fn scatter_elements(
    input: &Tensor,
    indices: &Tensor,
    updates: &Tensor,
    axis: u32,
    out: &OperandDescriptor,
) -> Res<Tensor> {
    let targets = element_targets(input, indices, axis)?;
    let mut picks: Vec<Option<(usize, usize)>> = (0..input.shape().element_count()).map(|e| Some((0, e))).collect();
    for (u, &t) in targets.iter().enumerate() {
        picks[t] = Some((1, u));
    }
    assemble(&[input, updates], &picks, out)
}

/// A copy of the input in which the slice that index tuple `j` addresses
/// (as in [`gather_nd`]) is `updates[j]`, tuples in row-major order: where
/// two address the same slice, the later one's update is the one kept.
pub(super) fn scatter_nd(input: &Tensor, indices: &Tensor, updates: &Tensor, out: &OperandDescriptor) -> Res<Tensor> {
    let (bases, slice) = nd_slices(input, indices)?;
    let mut picks: Vec<Option<(usize, usize)>> = (0..input.shape().element_count()).map(|e| Some((0, e))).collect();
    for (j, &b) in bases.iter().enumerate() {
        for s in 0..slice {
            picks[b + s] = Some((1, j * slice + s));
        }
    }
    assemble(&[input, updates], &picks, out)
}

/// For every position of `indices` (row-major), the flat input element it
/// addresses along `axis` (the elements variants).
fn element_targets(input: &Tensor, indices: &Tensor, axis: u32) -> Res<Vec<usize>> {
    let shape = input.shape().dims();
    let axis = axis as usize;
    let dim = *shape.get(axis).ok_or("axis out of range")?;
    let strides = strides_of(shape);
    let values = index_values(indices)?;
    let mut targets = Vec::with_capacity(values.len());
    let mut n = 0;
    for_each_index(indices.shape().dims(), |index| {
        let at = |a: usize, i: usize| strides[a] * if a == axis { clamped_index(values[n], dim) } else { i };
        targets.push(index.iter().enumerate().map(|(a, &i)| at(a, i)).sum());
        n += 1;
    });
    Ok(targets)
}

/// The flat input offset of the slice each index tuple addresses, and the
/// slice's element count (the ND variants).
fn nd_slices(input: &Tensor, indices: &Tensor) -> Res<(Vec<usize>, usize)> {
    let shape = input.shape().dims();
    let k = *indices.shape().dims().last().ok_or("indices must have a rank of at least 1")? as usize;
    if k > shape.len() {
        return Err(format!("index tuples of {k} exceed the input rank {}", shape.len()));
    }
    let strides = strides_of(shape);
    let slice: usize = shape[k..].iter().map(|&d| d as usize).product();
    let values = index_values(indices)?;
    let bases = if k == 0 {
        vec![0; indices.shape().element_count()]
    } else {
        values.chunks(k).map(|tuple| tuple.iter().enumerate().map(|(t, &i)| strides[t] * clamped_index(i, shape[t])).sum()).collect()
    };
    Ok((bases, slice))
}
