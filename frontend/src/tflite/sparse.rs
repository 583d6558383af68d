//! Sparse constant tensors (`SparsityParameters`, the input of `DENSIFY`),
//! expanded to dense ones at load time.
//!
//! The format (TACO-style, as TFLite's `FormatConverter` reads it): the
//! dense shape's `rank` dimensions, plus one block dimension per entry of
//! `block_map` (block `k` splits dimension `block_map[k]` into blocks of
//! `dense_size` of that level), are traversed in `traversal_order`; each
//! level is DENSE (every index `0..dense_size`) or SPARSE_CSR (the indices
//! `array_indices[array_segments[p]..array_segments[p + 1]]` under parent
//! position `p`). The stored values follow in traversal order.

use kiln_ir::interp::MAX_FOLDED_ELEMENTS;
use kiln_ir::{OperandDescriptor, Tensor};

use super::flatbuf::Table;
use super::import::{OpError, OpResult, invalid, unsupported};

enum Level {
    Dense(usize),
    Sparse { segments: Vec<usize>, indices: Vec<usize> },
}

fn index_vector(t: &Table, type_id: usize, id: usize, what: &str) -> OpResult<Vec<usize>> {
    let kind = t.scalar::<u8>(type_id, 0, what)?;
    let Some(v) = t.table(id, what)? else {
        return invalid(format!("{what} is missing"));
    };
    let values = v.vector(0, what)?;
    Ok(match kind {
        1 => values.scalars::<i32>(what)?.into_iter().map(|x| usize::try_from(x).unwrap_or(usize::MAX)).collect(),
        2 => values.scalars::<u16>(what)?.into_iter().map(usize::from).collect(),
        3 => values.scalars::<u8>(what)?.into_iter().map(usize::from).collect(),
        k => return invalid(format!("{what} has vector type {k}")),
    })
}

/// The dense value of a tensor of `desc` whose buffer `bytes` holds its
/// non-zero elements as `sparsity` describes.
pub fn densify(name: &str, desc: &OperandDescriptor, bytes: &[u8], sparsity: &Table) -> OpResult<Tensor> {
    let fail = |m: String| OpError::Invalid(format!("sparse tensor `{name}`: {m}"));
    let traversal: Vec<i32> = sparsity.vector(0, "SparsityParameters.traversal_order")?.scalars("traversal_order")?;
    let block_map: Vec<i32> = sparsity.vector(1, "SparsityParameters.block_map")?.scalars("block_map")?;
    let metadata = sparsity.vector(2, "SparsityParameters.dim_metadata")?;
    let dense: Vec<usize> = desc.shape.dims().iter().map(|&d| d as usize).collect();
    let rank = dense.len();
    if rank == 0 {
        return Err(fail("a scalar cannot be stored sparse".into()));
    }
    let elements = desc.shape.element_count();
    if elements > MAX_FOLDED_ELEMENTS {
        return unsupported(format!(
            "sparse tensor `{name}`: its dense form has {elements} elements, over the {MAX_FOLDED_ELEMENTS}-element limit on constants built at load time"
        ));
    }
    let levels = rank + block_map.len();
    if traversal.len() != levels || metadata.len() != levels || rank > 8 {
        return Err(fail(format!(
            "{} traversal entries and {} levels of metadata for rank {rank} with {} blocks",
            traversal.len(),
            metadata.len(),
            block_map.len()
        )));
    }
    let mut order = Vec::with_capacity(levels);
    for &t in &traversal {
        match usize::try_from(t) {
            Ok(t) if t < levels && !order.contains(&t) => order.push(t),
            _ => return Err(fail(format!("traversal order {traversal:?} is not a permutation of 0..{levels}"))),
        }
    }
    let mut parsed = Vec::with_capacity(levels);
    for l in 0..levels {
        let m = metadata.table(l, "a DimensionMetadata")?;
        parsed.push(match m.scalar::<i8>(0, 0, "DimensionMetadata.format")? {
            0 => Level::Dense(usize::try_from(m.scalar::<i32>(1, 0, "dense_size")?).map_err(|_| fail("negative dense_size".into()))?),
            1 => Level::Sparse {
                segments: index_vector(&m, 2, 3, "DimensionMetadata.array_segments")?,
                indices: index_vector(&m, 4, 5, "DimensionMetadata.array_indices")?,
            },
            f => return unsupported(format!("sparse tensor `{name}`: dimension format {f} is not supported")),
        });
    }
    // Expanded sizes: original dimensions divided by their blocks, then the blocks.
    let mut sizes: Vec<usize> = dense.clone();
    let mut blocked = vec![None; rank];
    for (k, &d) in block_map.iter().enumerate() {
        let level = order.iter().position(|&o| o == rank + k).expect("a permutation");
        let Level::Dense(b) = parsed[level] else {
            return Err(fail(format!("block {k} is not stored dense")));
        };
        let d = usize::try_from(d).ok().filter(|&d| d < rank && blocked[d].is_none());
        let Some(d) = d.filter(|&d| b > 0 && dense[d].is_multiple_of(b)) else {
            return Err(fail(format!("block {k} (size {b}) does not divide a distinct dimension of {:?}", dense)));
        };
        blocked[d] = Some(k);
        sizes[d] = dense[d] / b;
        sizes.push(b);
    }
    for (l, level) in parsed.iter().enumerate() {
        if let Level::Dense(n) = level
            && *n != sizes[order[l]]
        {
            return Err(fail(format!("level {l} is dense of size {n}, its dimension has {}", sizes[order[l]])));
        }
    }

    let size = desc.data_type.byte_size();
    let total = desc.byte_length();
    let mut out = vec![0u8; total];
    let strides: Vec<usize> = (0..rank).map(|d| dense[d + 1..].iter().product()).collect();
    let mut index = vec![0usize; levels];
    let mut next_value = 0usize;
    // Depth-first over the levels with an explicit stack of (level, parent position, cursor, end).
    let range = |l: usize, parent: usize| -> OpResult<(usize, usize)> {
        match &parsed[l] {
            Level::Dense(n) => Ok((parent.checked_mul(*n).ok_or_else(|| fail("positions overflow".into()))?, parent * n + n)),
            Level::Sparse { segments, indices } => {
                let (a, b) = (segments.get(parent).copied(), segments.get(parent + 1).copied());
                match (a, b) {
                    (Some(a), Some(b)) if a <= b && b <= indices.len() => Ok((a, b)),
                    _ => Err(fail(format!("level {l}: array_segments do not cover position {parent}"))),
                }
            }
        }
    };
    let mut stack: Vec<(usize, usize)> = Vec::with_capacity(levels); // (cursor, end) per level
    stack.push(range(0, 0)?);
    while let Some(&(cursor, end)) = stack.last() {
        let l = stack.len() - 1;
        if cursor == end {
            stack.pop();
            continue;
        }
        let position = cursor;
        stack[l].0 += 1;
        index[order[l]] = match &parsed[l] {
            Level::Dense(n) => position % n,
            Level::Sparse { indices, .. } => indices[position],
        };
        if index[order[l]] >= sizes[order[l]] {
            return Err(fail(format!("level {l}: index {} is outside size {}", index[order[l]], sizes[order[l]])));
        }
        if l + 1 < levels {
            stack.push(range(l + 1, position)?);
            continue;
        }
        let mut flat = 0;
        for d in 0..rank {
            let coordinate = match blocked[d] {
                Some(k) => index[d] * sizes[rank + k] + index[rank + k],
                None => index[d],
            };
            flat += coordinate * strides[d];
        }
        let src = next_value * size;
        let value = bytes.get(src..src + size).ok_or_else(|| fail(format!("its buffer holds {} values, the structure names more", bytes.len() / size)))?;
        out[flat * size..flat * size + size].copy_from_slice(value);
        next_value += 1;
    }
    if next_value * size != bytes.len() {
        return Err(fail(format!("its buffer holds {} values, the structure names {next_value}", bytes.len() / size)));
    }
    Tensor::from_bytes(desc.clone(), out).map_err(|e| OpError::Invalid(e.to_string()))
}
