//! Shape and data-movement operators: `Reshape`, `Flatten`, `Squeeze`,
//! `Unsqueeze`, `Transpose`, `Concat`, `Split`, `Slice`, `Gather`, `Pad`,
//! `CenterCropPad`, `Expand`, `Tile`, `DepthToSpace`, `SpaceToDepth`,
//! `Resize`, `Upsample`, and the operators that only make load-time
//! constants: `Constant`, `ConstantOfShape`, `Shape`, `Size`, `Range`.
//!
//! Shape arguments given as inputs (`Reshape`'s shape, `Slice`'s starts and
//! ends, `Pad`'s pads, `Resize`'s scales or sizes, ...) must be known at
//! load time; a node whose shape argument depends on the graph's inputs is
//! unsupported. `Shape` and `Size` read the static shape, so the
//! `Shape -> Gather -> Unsqueeze -> Concat -> Reshape` chains of exporters
//! fold to constants.
//!
//! WebNN tensors are never empty, ONNX ones may be: a result with a zero
//! dimension is returned as an empty load-time constant, and `Concat`
//! skips empty inputs. Reshaping operators on constants re-describe the
//! bytes without adding anything to the graph.
//!
//! Decompositions:
//! - `Slice` with a negative step: the positive-step axes with one `slice`,
//!   then a `gather` with constant indices per negative-step axis.
//! - `Pad` with negative pads crops with `slice` first; `wrap` mode is
//!   `slice`s and a `concat` per axis (pads up to the axis size).
//! - `Tile` is WebNN's `tile`. `DepthToSpace`/`SpaceToDepth`: `reshape`,
//!   `transpose`, `reshape`. `CenterCropPad`: `slice` and a zero `pad`.
//! - `Gather` with constant indices normalises negative ones at load time;
//!   runtime indices go to `gather` as they are (kiln's `gather` adds the
//!   axis size to a negative index, as ONNX does).
//! - `Resize`/`Upsample`: the ONNX interpolation (every mode, coordinate
//!   transformation, nearest rounding, cubic coefficient, `antialias`,
//!   `exclude_outside`, `tf_crop_and_resize` with its extrapolation value,
//!   `keep_aspect_ratio_policy`) is computed per resized axis at load time
//!   as taps: input indices and weights for every output index. When the
//!   taps are those of WebNN's `resample2d` (4-D, two consecutive resized
//!   axes, nearest-neighbor or linear sampling that picks the same
//!   elements with the same weights) the node is one `resample2d`.
//!   Otherwise each resized axis, last first, is a `gather` per tap (a
//!   nearest axis needs one) weighted with `mul` and summed with `add`,
//!   and out-of-range `tf_crop_and_resize` positions are set with a `mul`
//!   by a 0/1 mask and an `add`. Interpolating 8-bit integers casts to
//!   float32 and back (truncating, as the ONNX reference does); wider
//!   integers are only resized by nearest modes. Axes at scale 1 are
//!   copied unless a `tf_crop_and_resize` roi crops them. `Upsample` and
//!   opset-10 `Resize` use asymmetric coordinates and ONNX Runtime's
//!   nearest rule for them (floor when upscaling, ceil when downscaling).

use kiln_ir::*;

use super::Handler;
use crate::onnx::import::{
    Importer, NodeCx, NodeError, NodeResult, Value, axis, check_constant_size, distinct_axes, invalid, tensor_ints, unsupported,
};

pub const TABLE: &[(&str, Handler)] = &[
    ("CenterCropPad", center_crop_pad),
    ("Concat", concat),
    ("Constant", constant),
    ("ConstantOfShape", constant_of_shape),
    ("DepthToSpace", depth_to_space),
    ("Expand", expand),
    ("Flatten", flatten),
    ("Gather", gather),
    ("Pad", pad),
    ("Range", range),
    ("Reshape", reshape_node),
    ("Resize", resize),
    ("Shape", shape_node),
    ("Size", size),
    ("Slice", slice),
    ("SpaceToDepth", space_to_depth),
    ("Split", split),
    ("Squeeze", squeeze),
    ("Tile", tile),
    ("Transpose", transpose),
    ("Unsqueeze", unsqueeze),
    ("Upsample", upsample),
];

// ---------------------------------------------------------------------------
// Helpers shared with the other operator families.

/// The data type and dimensions of input `i`, constant (even empty) or not.
pub(super) fn input_info(im: &mut Importer, cx: &NodeCx, i: usize) -> NodeResult<(DataType, Vec<u32>)> {
    if let Some(t) = im.known_input(cx, i) {
        return Ok((t.data_type(), t.shape().dims().to_vec()));
    }
    let id = im.input(cx, i)?;
    let d = im.desc(id);
    Ok((d.data_type, d.shape.dims().to_vec()))
}

/// The number of elements of `dims`, saturating.
pub(super) fn count(dims: &[u32]) -> u64 {
    dims.iter().fold(1u64, |n, &d| n.saturating_mul(d as u64))
}

/// An empty load-time constant.
pub(super) fn empty(data_type: DataType, dims: Vec<u32>) -> Value {
    Value::Const(Tensor::from_bytes(OperandDescriptor::new(data_type, dims), Vec::new()).expect("no bytes for no elements"))
}

/// A constant of `data_type` and `dims` holding `values`.
pub(super) fn tensor(data_type: DataType, dims: Vec<u32>, values: &Values) -> NodeResult<Tensor> {
    Tensor::from_values(OperandDescriptor::new(data_type, dims), values).map_err(|e| NodeError::Invalid(e.to_string()))
}

/// `id` reshaped to `dims` (itself when it already has them).
pub(super) fn reshape(im: &mut Importer, cx: &NodeCx, id: OperandId, dims: &[u32]) -> NodeResult<OperandId> {
    if im.desc(id).shape.dims() == dims {
        return Ok(id);
    }
    im.op1(cx, Op::Reshape { input: id, new_shape: dims.to_vec() })
}

/// Input `i` with its dimensions replaced by `dims` (same element count):
/// a constant is re-described at load time, an operand reshaped.
fn reshape_input(im: &mut Importer, cx: &NodeCx, i: usize, dims: Vec<u32>) -> NodeResult<Value> {
    if let Some(t) = im.known_input(cx, i) {
        if count(&dims) != count(t.shape().dims()) {
            return invalid(format!("cannot reshape {} to {}", t.shape(), Shape::new(dims)));
        }
        let desc = OperandDescriptor::new(t.data_type(), dims);
        return Ok(Value::Const(Tensor::new(desc, t.shared_bytes().clone()).map_err(|e| NodeError::Invalid(e.to_string()))?));
    }
    let id = im.input(cx, i)?;
    Ok(reshape(im, cx, id, &dims)?.into())
}

/// A constant index vector for `gather` (int32 unless an index needs more).
fn index_constant(im: &mut Importer, dims: Vec<u32>, indices: &[i64]) -> NodeResult<OperandId> {
    let fits = indices.iter().all(|&i| i32::try_from(i).is_ok());
    let t = tensor(
        if fits { DataType::Int32 } else { DataType::Int64 },
        dims,
        &Values::Int(indices.iter().map(|&i| i as i128).collect()),
    )?;
    Ok(im.add_constant(None, t)?)
}

/// Integer attribute values as non-negative dimensions.
fn to_dims(what: &str, values: &[i64]) -> NodeResult<Vec<u32>> {
    values
        .iter()
        .map(|&v| u32::try_from(v).or_else(|_| invalid(format!("{what} {v} is not a valid dimension"))))
        .collect()
}

// ---------------------------------------------------------------------------
// Reshaping.

/// `Reshape`: 0 copies the input's dimension (unless `allowzero`), -1 is
/// inferred.
fn reshape_node(im: &mut Importer, cx: &NodeCx) -> NodeResult<Vec<Value>> {
    let (_, dims) = input_info(im, cx, 0)?;
    let Some(shape) = im.const_ints(cx, 1)? else {
        return invalid("the target shape is required");
    };
    let allowzero = cx.int_or("allowzero", 0)? != 0;
    let total = count(&dims);
    let mut out = Vec::with_capacity(shape.len());
    let mut inferred = None;
    for (i, &s) in shape.iter().enumerate() {
        out.push(match s {
            -1 if inferred.is_some() => return invalid(format!("shape {shape:?} has more than one -1")),
            -1 => {
                inferred = Some(i);
                1
            }
            0 if !allowzero => match dims.get(i) {
                Some(&d) => d,
                None => return invalid(format!("shape {shape:?}: 0 at index {i} has no input dimension to copy")),
            },
            s => to_dims("shape value", &[s])?[0],
        });
    }
    if let Some(i) = inferred {
        let known_part = count(&out);
        if known_part == 0 || !total.is_multiple_of(known_part) {
            return invalid(format!("shape {shape:?} cannot hold the input's {total} elements"));
        }
        out[i] = u32::try_from(total / known_part).or_else(|_| invalid("the inferred dimension is too large"))?;
    }
    if count(&out) != total {
        return invalid(format!("shape {shape:?} cannot hold the input's {total} elements ({})", Shape::new(dims)));
    }
    Ok(vec![reshape_input(im, cx, 0, out)?])
}

/// `Flatten`: `[prod(dims[..axis]), prod(dims[axis..])]`.
fn flatten(im: &mut Importer, cx: &NodeCx) -> NodeResult<Vec<Value>> {
    let (_, dims) = input_info(im, cx, 0)?;
    let r = dims.len() as i64;
    let a = cx.int_or("axis", 1)?;
    if a < -r || a > r {
        return invalid(format!("axis {a} is out of range for rank {r}"));
    }
    let a = if a < 0 { a + r } else { a } as usize;
    let out = [count(&dims[..a]), count(&dims[a..])]
        .iter()
        .map(|&n| u32::try_from(n).or_else(|_| unsupported("a flattened dimension exceeds 2^32 - 1")))
        .collect::<NodeResult<Vec<u32>>>()?;
    Ok(vec![reshape_input(im, cx, 0, out)?])
}

/// `Squeeze`: the listed size-1 axes (attribute before opset 13, input
/// after), or every size-1 axis.
fn squeeze(im: &mut Importer, cx: &NodeCx) -> NodeResult<Vec<Value>> {
    let (_, dims) = input_info(im, cx, 0)?;
    let axes = if cx.opset < 13 { cx.ints("axes")? } else { im.const_ints(cx, 1)? };
    let remove: Vec<usize> = match axes {
        Some(axes) => {
            let mut v = Vec::new();
            for a in axes {
                let a = axis(a, dims.len())? as usize;
                if dims[a] != 1 {
                    return invalid(format!("axis {a} has size {}, not 1", dims[a]));
                }
                v.push(a);
            }
            v
        }
        None => (0..dims.len()).filter(|&a| dims[a] == 1).collect(),
    };
    let out = dims.iter().enumerate().filter(|(a, _)| !remove.contains(a)).map(|(_, &d)| d).collect();
    Ok(vec![reshape_input(im, cx, 0, out)?])
}

/// `Unsqueeze`: size-1 axes inserted at the listed output positions
/// (attribute before opset 13, input after).
fn unsqueeze(im: &mut Importer, cx: &NodeCx) -> NodeResult<Vec<Value>> {
    let (_, dims) = input_info(im, cx, 0)?;
    let axes = if cx.opset < 13 { cx.ints("axes")? } else { im.const_ints(cx, 1)? };
    let Some(axes) = axes else {
        return invalid("axes are required");
    };
    let rank = dims.len() + axes.len();
    let mut inserted = vec![false; rank];
    for a in axes {
        let a = axis(a, rank)? as usize;
        if inserted[a] {
            return invalid(format!("axis {a} appears more than once"));
        }
        inserted[a] = true;
    }
    let mut rest = dims.iter();
    let out = inserted.iter().map(|&ins| if ins { 1 } else { *rest.next().expect("rank adds up") }).collect();
    Ok(vec![reshape_input(im, cx, 0, out)?])
}

// ---------------------------------------------------------------------------
// Data movement.

/// `Transpose`: `perm` defaults to reversing the axes.
fn transpose(im: &mut Importer, cx: &NodeCx) -> NodeResult<Vec<Value>> {
    let (data_type, dims) = input_info(im, cx, 0)?;
    let rank = dims.len();
    let perm: Vec<u32> = match cx.ints("perm")? {
        Some(p) => p.iter().map(|&a| u32::try_from(a).or_else(|_| invalid(format!("perm {p:?} is not a permutation")))).collect::<NodeResult<_>>()?,
        None => (0..rank as u32).rev().collect(),
    };
    let mut seen = vec![false; rank];
    if perm.len() != rank || perm.iter().any(|&a| (a as usize) >= rank || std::mem::replace(&mut seen[a as usize], true)) {
        return invalid(format!("perm {perm:?} is not a permutation of {rank} axes"));
    }
    let out: Vec<u32> = perm.iter().map(|&a| dims[a as usize]).collect();
    if count(&out) == 0 {
        return Ok(vec![empty(data_type, out)]);
    }
    let input = im.input(cx, 0)?;
    if perm.iter().enumerate().all(|(i, &a)| i == a as usize) {
        return Ok(vec![input.into()]);
    }
    Ok(vec![im.op1(cx, Op::Transpose { input, permutation: Some(perm) })?.into()])
}

/// `Concat`: empty inputs are skipped.
fn concat(im: &mut Importer, cx: &NodeCx) -> NodeResult<Vec<Value>> {
    let Some(a) = cx.int("axis")? else {
        return invalid("the axis attribute is required");
    };
    let mut out: Option<(DataType, Vec<u32>, usize)> = None;
    let mut parts = Vec::new();
    for i in 0..cx.input_count() {
        if !cx.has_input(i) {
            continue;
        }
        let (t, dims) = input_info(im, cx, i)?;
        match &mut out {
            None => {
                let ax = axis(a, dims.len())? as usize;
                out = Some((t, dims.clone(), ax));
            }
            Some((t0, d0, ax)) => {
                if *t0 != t
                    || d0.len() != dims.len()
                    || d0.iter().zip(&dims).enumerate().any(|(k, (x, y))| k != *ax && x != y)
                {
                    return invalid(format!(
                        "input {i} ({t} {}) does not fit input 0 ({t0} {}) along axis {ax}",
                        Shape::new(dims),
                        Shape::new(d0.clone())
                    ));
                }
                d0[*ax] = d0[*ax].checked_add(dims[*ax]).ok_or_else(|| NodeError::Unsupported("the concatenated axis exceeds 2^32 - 1".into()))?;
            }
        }
        if count(&dims) > 0 {
            parts.push(i);
        }
    }
    let Some((data_type, dims, ax)) = out else {
        return invalid("at least one input is required");
    };
    if count(&dims) == 0 {
        return Ok(vec![empty(data_type, dims)]);
    }
    let inputs = parts.iter().map(|&i| im.input(cx, i)).collect::<NodeResult<Vec<_>>>()?;
    if inputs.len() == 1 {
        return Ok(vec![inputs[0].into()]);
    }
    Ok(vec![im.op1(cx, Op::Concat { inputs, axis: ax as u32 })?.into()])
}

/// `Split`: sizes from the `split` attribute (before opset 13) or input
/// (after), else `num_outputs` parts (opset 18: the last may be smaller),
/// else as many equal parts as outputs. Zero-size parts are empty constants.
fn split(im: &mut Importer, cx: &NodeCx) -> NodeResult<Vec<Value>> {
    let (data_type, dims) = input_info(im, cx, 0)?;
    let a = axis(cx.int_or("axis", 0)?, dims.len())? as usize;
    let dim = dims[a] as i64;
    let outputs = cx.node.output.len() as i64;
    let given = if cx.opset < 13 { cx.ints("split")? } else { im.const_ints(cx, 1)? };
    let sizes: Vec<i64> = match (given, cx.int("num_outputs")?) {
        (Some(s), _) => {
            if s.len() as i64 != outputs {
                return invalid(format!("split {s:?} has {} sizes for {outputs} outputs", s.len()));
            }
            s
        }
        (None, Some(n)) if cx.opset >= 18 => {
            if n < 1 || n != outputs {
                return invalid(format!("num_outputs {n} does not match the {outputs} outputs"));
            }
            let chunk = (dim + n - 1) / n;
            let last = dim - chunk * (n - 1);
            if last < 0 {
                return invalid(format!("axis size {dim} cannot be split into {n} parts of {chunk}"));
            }
            let mut s = vec![chunk; n as usize - 1];
            s.push(last);
            s
        }
        (None, _) => {
            if outputs < 1 || dim % outputs != 0 {
                return invalid(format!("axis size {dim} does not split into {outputs} equal parts"));
            }
            vec![dim / outputs; outputs as usize]
        }
    };
    if sizes.iter().any(|&s| s < 0) || sizes.iter().sum::<i64>() != dim {
        return invalid(format!("split sizes {sizes:?} do not sum to the axis size {dim}"));
    }
    let nonzero: Vec<u32> = sizes.iter().filter(|&&s| s > 0).map(|&s| s as u32).collect();
    let mut parts: Vec<Value> = match nonzero.len() {
        _ if count(&dims) == 0 => Vec::new(),
        0 => Vec::new(),
        1 => vec![im.input(cx, 0)?.into()],
        _ => {
            let input = im.input(cx, 0)?;
            im.op(cx, Op::Split { input, splits: Splits::Sizes(nonzero), axis: a as u32 })?.into_iter().map(Value::from).collect()
        }
    }
    .into_iter()
    .rev()
    .collect();
    Ok(sizes
        .iter()
        .map(|&s| {
            let mut d = dims.clone();
            d[a] = s as u32;
            if count(&d) == 0 { empty(data_type, d) } else { parts.pop().expect("one part per non-empty size") }
        })
        .collect())
}

/// One sliced axis: `n` elements from `start`, `step` apart.
struct AxisSlice {
    start: i64,
    n: i64,
    step: i64,
}

/// Clamps an ONNX slice range on an axis of size `d` the way numpy does
/// (in i128: starts, ends and steps may be anywhere in i64).
fn slice_axis(d: i64, start: i64, end: i64, step: i64) -> AxisSlice {
    let (d, st) = (i128::from(d), i128::from(step));
    let norm = |v: i64| if v < 0 { i128::from(v) + d } else { i128::from(v) };
    let (s, e) = (norm(start), norm(end));
    let (first, n) = if step > 0 {
        let (s, e) = (s.clamp(0, d), e.clamp(0, d));
        (s, if e > s { (e - s + st - 1) / st } else { 0 })
    } else if d == 0 {
        (0, 0)
    } else {
        let (s, e) = (s.clamp(0, d - 1), e.clamp(-1, d - 1));
        (s, if s > e { (s - e - st - 1) / -st } else { 0 })
    };
    // Both are within 0..=d, which came from an i64.
    AxisSlice { start: first as i64, n: n as i64, step }
}

/// `Slice`: starts, ends, axes and steps as attributes (before opset 10)
/// or constant inputs (after).
fn slice(im: &mut Importer, cx: &NodeCx) -> NodeResult<Vec<Value>> {
    let (data_type, dims) = input_info(im, cx, 0)?;
    let rank = dims.len();
    let (starts, ends, axes, steps) = if cx.opset < 10 {
        (cx.ints("starts")?, cx.ints("ends")?, cx.ints("axes")?, None)
    } else {
        (im.const_ints(cx, 1)?, im.const_ints(cx, 2)?, im.const_ints(cx, 3)?, im.const_ints(cx, 4)?)
    };
    let (Some(starts), Some(ends)) = (starts, ends) else {
        return invalid("starts and ends are required");
    };
    let axes = axes.unwrap_or_else(|| (0..starts.len() as i64).collect());
    let steps = steps.unwrap_or_else(|| vec![1; starts.len()]);
    if ends.len() != starts.len() || axes.len() != starts.len() || steps.len() != starts.len() {
        return invalid(format!(
            "starts ({}), ends ({}), axes ({}) and steps ({}) must have the same length",
            starts.len(),
            ends.len(),
            axes.len(),
            steps.len()
        ));
    }
    let mut per_axis: Vec<AxisSlice> = dims.iter().map(|&d| AxisSlice { start: 0, n: d as i64, step: 1 }).collect();
    let mut seen = vec![false; rank];
    for k in 0..starts.len() {
        let a = axis(axes[k], rank)? as usize;
        if std::mem::replace(&mut seen[a], true) {
            return invalid(format!("axis {a} appears more than once"));
        }
        if steps[k] == 0 {
            return invalid("a step is 0");
        }
        per_axis[a] = slice_axis(dims[a] as i64, starts[k], ends[k], steps[k]);
    }
    let out: Vec<u32> = per_axis.iter().map(|s| s.n as u32).collect();
    if count(&out) == 0 {
        return Ok(vec![empty(data_type, out)]);
    }
    let mut x = im.input(cx, 0)?;
    // One element needs no direction.
    for s in per_axis.iter_mut().filter(|s| s.n == 1) {
        s.step = 1;
    }
    let whole = |s: &AxisSlice, d: u32| s.start == 0 && s.n == d as i64 && s.step == 1;
    if !per_axis.iter().zip(&dims).all(|(s, &d)| whole(s, d) || s.step < 0) {
        let mut starts = Vec::with_capacity(rank);
        let mut sizes = Vec::with_capacity(rank);
        let mut strides = Vec::with_capacity(rank);
        for (s, &d) in per_axis.iter().zip(&dims) {
            if s.step < 0 {
                starts.push(0);
                sizes.push(d);
                strides.push(1);
            } else {
                starts.push(s.start as u32);
                // With two or more elements the step is below the axis size.
                let step = if s.n > 1 { s.step as u32 } else { 1 };
                sizes.push(((s.n - 1) * s.step + 1) as u32);
                strides.push(step);
            }
        }
        let strides = strides.iter().any(|&s| s != 1).then_some(strides);
        x = im.op1(cx, Op::Slice { input: x, starts, sizes, strides })?;
    }
    for (a, s) in per_axis.iter().enumerate().filter(|(_, s)| s.step < 0) {
        let indices: Vec<i64> = (0..s.n).map(|k| s.start + k * s.step).collect();
        let indices = index_constant(im, vec![s.n as u32], &indices)?;
        x = im.op1(cx, Op::Gather { input: x, indices, axis: a as u32 })?;
    }
    Ok(vec![x.into()])
}

/// `Gather` along any axis.
fn gather(im: &mut Importer, cx: &NodeCx) -> NodeResult<Vec<Value>> {
    let (data_type, dims) = input_info(im, cx, 0)?;
    if dims.is_empty() {
        return invalid("the data input must have rank 1 or more");
    }
    let a = axis(cx.int_or("axis", 0)?, dims.len())? as usize;
    let dim = dims[a] as i64;
    let (index_type, index_dims) = input_info(im, cx, 1)?;
    if !matches!(index_type, DataType::Int32 | DataType::Int64) {
        return invalid(format!("indices must be int32 or int64, not {index_type}"));
    }
    let mut out = dims[..a].to_vec();
    out.extend(&index_dims);
    out.extend(&dims[a + 1..]);
    if count(&out) == 0 {
        return Ok(vec![empty(data_type, out)]);
    }
    let indices = match im.known_input(cx, 1) {
        Some(t) => {
            let mut values = tensor_ints(&t);
            for v in &mut values {
                if *v < -dim || *v >= dim {
                    return invalid(format!("index {v} is out of range for axis {a} of size {dim}"));
                }
                if *v < 0 {
                    *v += dim;
                }
            }
            let input = im.input(cx, 0)?;
            if index_dims.len() == 1 && values.iter().enumerate().all(|(i, &v)| v == i as i64) && values.len() as i64 == dim {
                return Ok(vec![input.into()]);
            }
            index_constant(im, index_dims, &values)?
        }
        None => im.input(cx, 1)?,
    };
    let input = im.input(cx, 0)?;
    Ok(vec![im.op1(cx, Op::Gather { input, indices, axis: a as u32 })?.into()])
}

/// `Expand`: bidirectional broadcasting to a constant shape.
fn expand(im: &mut Importer, cx: &NodeCx) -> NodeResult<Vec<Value>> {
    let (data_type, dims) = input_info(im, cx, 0)?;
    let Some(shape) = im.const_ints(cx, 1)? else {
        return invalid("the shape input is required");
    };
    let (from, to) = (Shape::new(dims.clone()), Shape::new(to_dims("shape value", &shape)?));
    let Some(Shape(out)) = kiln_ir::infer::broadcast_shapes(&from, &to) else {
        return invalid(format!("shape {from} cannot be broadcast with {to}"));
    };
    if count(&out) == 0 {
        return Ok(vec![empty(data_type, out)]);
    }
    let input = im.input(cx, 0)?;
    if out == dims {
        return Ok(vec![input.into()]);
    }
    Ok(vec![im.op1(cx, Op::Expand { input, new_shape: out })?.into()])
}

/// `Tile`: `reshape` to put a size-1 axis before every tiled axis,
/// `expand` it to the repeat count, `reshape` to the tiled shape.
fn tile(im: &mut Importer, cx: &NodeCx) -> NodeResult<Vec<Value>> {
    let (data_type, dims) = input_info(im, cx, 0)?;
    let Some(repeats) = im.const_ints(cx, 1)? else {
        return invalid("the repeats input is required");
    };
    if repeats.len() != dims.len() {
        return invalid(format!("{} repeats for rank {}", repeats.len(), dims.len()));
    }
    let repeats = to_dims("repeat", &repeats)?;
    let out = dims
        .iter()
        .zip(&repeats)
        .map(|(&d, &r)| d.checked_mul(r).ok_or_else(|| NodeError::Unsupported("a tiled dimension exceeds 2^32 - 1".into())))
        .collect::<NodeResult<Vec<u32>>>()?;
    if count(&out) == 0 {
        return Ok(vec![empty(data_type, out)]);
    }
    let input = im.input(cx, 0)?;
    Ok(vec![im.op1(cx, Op::Tile { input, repetitions: repeats })?.into()])
}

/// `Pad`: modes constant, edge, reflect and wrap; pads as an attribute
/// (before opset 11) or constant input, with the optional constant value
/// and axes (opset 18) inputs. Negative pads crop.
fn pad(im: &mut Importer, cx: &NodeCx) -> NodeResult<Vec<Value>> {
    let (data_type, dims) = input_info(im, cx, 0)?;
    let rank = dims.len();
    let mode = cx.string_or("mode", "constant")?;
    let (pads, value, axes) = if cx.opset < 11 {
        (cx.ints("pads")?, Some(cx.float_or("value", 0.0)? as f64), None)
    } else {
        let value = match im.const_input(cx, 2)? {
            None => None,
            Some(t) if t.shape().element_count() == 1 => Some(match t.values() {
                Values::Float(v) => v[0],
                Values::Int(v) => v[0] as f64,
            }),
            Some(t) => return invalid(format!("constant_value must have one element, it has shape {}", t.shape())),
        };
        (im.const_ints(cx, 1)?, value, im.const_ints(cx, 3)?)
    };
    let Some(pads) = pads else {
        return invalid("pads are required");
    };
    let axes: Vec<usize> = match axes {
        Some(list) => distinct_axes(&list, rank)?.into_iter().map(|a| a as usize).collect(),
        None => (0..rank).collect(),
    };
    if pads.len() != 2 * axes.len() {
        return invalid(format!("{} pads for {} axes", pads.len(), axes.len()));
    }
    let (mut begin, mut end) = (vec![0i64; rank], vec![0i64; rank]);
    for (k, &a) in axes.iter().enumerate() {
        begin[a] = pads[k];
        end[a] = pads[k + axes.len()];
    }
    let mode = match mode.as_str() {
        "constant" => PaddingMode::Constant,
        "edge" => PaddingMode::Edge,
        "reflect" => PaddingMode::Reflection,
        "wrap" => PaddingMode::Constant, // decomposed below
        other => return invalid(format!("unknown mode `{other}`")),
    };
    let wrap = cx.string_or("mode", "constant")? == "wrap";
    let mut out = Vec::with_capacity(rank);
    for a in 0..rank {
        let crop = -i128::from(begin[a].min(0)) - i128::from(end[a].min(0));
        let n = i128::from(dims[a]) + i128::from(begin[a]) + i128::from(end[a]);
        if n < 0 || crop > i128::from(dims[a]) {
            return invalid(format!("pads {pads:?} remove more than axis {a} holds"));
        }
        out.push(u32::try_from(n).or_else(|_| unsupported("a padded dimension exceeds 2^32 - 1"))?);
    }
    if count(&out) == 0 {
        return Ok(vec![empty(data_type, out)]);
    }
    let mut x = im.input(cx, 0)?;
    // Negative pads crop first.
    if begin.iter().chain(&end).any(|&p| p < 0) {
        let starts: Vec<u32> = begin.iter().map(|&b| (-b).max(0) as u32).collect();
        let sizes: Vec<u32> = (0..rank).map(|a| (dims[a] as i64 + begin[a].min(0) + end[a].min(0)) as u32).collect();
        if sizes.contains(&0) {
            return unsupported("the pads crop an axis to nothing and pad it again");
        }
        x = im.op1(cx, Op::Slice { input: x, starts, sizes, strides: None })?;
    }
    let begin: Vec<u32> = begin.iter().map(|&b| b.max(0) as u32).collect();
    let end: Vec<u32> = end.iter().map(|&e| e.max(0) as u32).collect();
    if begin.iter().chain(&end).all(|&p| p == 0) {
        return Ok(vec![x.into()]);
    }
    if wrap {
        for a in 0..rank {
            if begin[a] == 0 && end[a] == 0 {
                continue;
            }
            let d = im.desc(x).shape.dims().to_vec();
            if begin[a] > d[a] || end[a] > d[a] {
                return unsupported(format!("wrap padding of {} and {} on axis {a} of size {} (at most the size is supported)", begin[a], end[a], d[a]));
            }
            let mut parts = Vec::new();
            let piece = |im: &mut Importer, start: u32, size: u32| -> NodeResult<OperandId> {
                let mut starts = vec![0; rank];
                let mut sizes = d.clone();
                starts[a] = start;
                sizes[a] = size;
                im.op1(cx, Op::Slice { input: x, starts, sizes, strides: None })
            };
            if begin[a] > 0 {
                parts.push(piece(im, d[a] - begin[a], begin[a])?);
            }
            parts.push(x);
            if end[a] > 0 {
                parts.push(piece(im, 0, end[a])?);
            }
            x = im.op1(cx, Op::Concat { inputs: parts, axis: a as u32 })?;
        }
        return Ok(vec![x.into()]);
    }
    if mode == PaddingMode::Reflection {
        let d = im.desc(x).shape.dims().to_vec();
        if (0..rank).any(|a| begin[a] >= d[a] || end[a] >= d[a]) {
            return unsupported(format!("reflect padding {pads:?} reaches past the edge of shape {} (pads must be smaller than the axis)", Shape::new(d)));
        }
    }
    let value = value.unwrap_or(0.0);
    let value = if data_type.is_float() {
        Number::Float(value)
    } else {
        if value.fract() != 0.0 || !value.is_finite() {
            return invalid(format!("constant value {value} for an integer tensor"));
        }
        Number::Int(value as i128)
    };
    Ok(vec![im.op1(cx, Op::Pad { input: x, beginning_padding: begin, ending_padding: end, options: PadOptions { mode, value } })?.into()])
}

/// `DepthToSpace` (modes DCR and CRD) and `SpaceToDepth`: `reshape`,
/// `transpose`, `reshape`.
fn depth_to_space(im: &mut Importer, cx: &NodeCx) -> NodeResult<Vec<Value>> {
    block_rearrange(im, cx, true)
}

fn space_to_depth(im: &mut Importer, cx: &NodeCx) -> NodeResult<Vec<Value>> {
    block_rearrange(im, cx, false)
}

fn block_rearrange(im: &mut Importer, cx: &NodeCx, to_space: bool) -> NodeResult<Vec<Value>> {
    let x = im.input(cx, 0)?;
    let d = im.desc(x).shape.dims().to_vec();
    let Some(b) = cx.int("blocksize")?.and_then(|b| u32::try_from(b).ok()).filter(|&b| b > 0 && b <= u16::MAX as u32)
    else {
        return invalid("blocksize must be a positive integer below 2^16");
    };
    let dim = |a: u32, f: u32| a.checked_mul(f).ok_or_else(|| NodeError::Unsupported("a dimension exceeds 2^32 - 1".into()));
    let [n, c, h, w] = d[..] else {
        return invalid(format!("the input must be 4-D, it has shape {}", Shape::new(d)));
    };
    let (split, perm, out): (Vec<u32>, Vec<u32>, Vec<u32>) = if to_space {
        if c % (b * b) != 0 {
            return invalid(format!("channels {c} are not a multiple of blocksize² {}", b * b));
        }
        let c2 = c / (b * b);
        let out = vec![n, c2, dim(h, b)?, dim(w, b)?];
        match cx.string_or("mode", "DCR")?.as_str() {
            "DCR" => (vec![n, b, b, c2, h, w], vec![0, 3, 4, 1, 5, 2], out),
            "CRD" => (vec![n, c2, b, b, h, w], vec![0, 1, 4, 2, 5, 3], out),
            other => return invalid(format!("unknown mode `{other}`")),
        }
    } else {
        if h % b != 0 || w % b != 0 {
            return invalid(format!("height {h} and width {w} must be multiples of blocksize {b}"));
        }
        (vec![n, c, h / b, b, w / b, b], vec![0, 3, 5, 1, 2, 4], vec![n, dim(c, b * b)?, h / b, w / b])
    };
    let x = reshape(im, cx, x, &split)?;
    let x = im.op1(cx, Op::Transpose { input: x, permutation: Some(perm) })?;
    Ok(vec![reshape(im, cx, x, &out)?.into()])
}

/// `CenterCropPad`: a centred `slice` where the target is smaller, a
/// centred zero `pad` where it is larger (the extra element of an odd
/// difference at the end).
fn center_crop_pad(im: &mut Importer, cx: &NodeCx) -> NodeResult<Vec<Value>> {
    let x = im.input(cx, 0)?;
    let d = im.desc(x).shape.dims().to_vec();
    let rank = d.len();
    let Some(shape) = im.const_ints(cx, 1)? else {
        return invalid("the shape input is required");
    };
    let axes: Vec<usize> = match cx.ints("axes")? {
        Some(list) => distinct_axes(&list, rank)?.into_iter().map(|a| a as usize).collect(),
        None => (0..rank).collect(),
    };
    if shape.len() != axes.len() {
        return invalid(format!("{} sizes for {} axes", shape.len(), axes.len()));
    }
    let target = to_dims("size", &shape)?;
    let (mut starts, mut sizes) = (vec![0; rank], d.clone());
    let (mut begin, mut end) = (vec![0; rank], vec![0; rank]);
    for (&a, &t) in axes.iter().zip(&target) {
        if t == 0 {
            return unsupported("a zero target size (kiln tensors are never empty)");
        }
        if t < d[a] {
            starts[a] = (d[a] - t) / 2;
            sizes[a] = t;
        } else {
            begin[a] = (t - d[a]) / 2;
            end[a] = t - d[a] - begin[a];
        }
    }
    let mut y = x;
    if sizes != d {
        y = im.op1(cx, Op::Slice { input: y, starts, sizes, strides: None })?;
    }
    if begin.iter().chain(&end).any(|&p| p > 0) {
        y = im.op1(cx, Op::Pad { input: y, beginning_padding: begin, ending_padding: end, options: PadOptions::default() })?;
    }
    Ok(vec![y.into()])
}

// ---------------------------------------------------------------------------
// Load-time constants.

/// `Constant`: `value`, `value_float(s)`, `value_int(s)`.
fn constant(im: &mut Importer, cx: &NodeCx) -> NodeResult<Vec<Value>> {
    let t = if let Some(t) = cx.tensor_attr("value")? {
        im.convert_tensor(t)?
    } else if let Some(f) = cx.float("value_float")? {
        tensor(DataType::Float32, vec![], &Values::Float(vec![f as f64]))?
    } else if let Some(f) = cx.floats("value_floats")? {
        tensor(DataType::Float32, vec![f.len() as u32], &Values::Float(f.iter().map(|&x| x as f64).collect()))?
    } else if let Some(i) = cx.int("value_int")? {
        tensor(DataType::Int64, vec![], &Values::Int(vec![i as i128]))?
    } else if let Some(i) = cx.ints("value_ints")? {
        tensor(DataType::Int64, vec![i.len() as u32], &Values::Int(i.iter().map(|&x| x as i128).collect()))?
    } else if cx.attr("sparse_value").is_some() {
        return unsupported("sparse constants are not supported");
    } else if cx.attr("value_string").is_some() || cx.attr("value_strings").is_some() {
        return unsupported("string constants are not supported");
    } else {
        return invalid("no value attribute");
    };
    Ok(vec![Value::Const(t)])
}

/// `ConstantOfShape`: the one-element `value` (float32 0 by default)
/// repeated to the constant shape.
fn constant_of_shape(im: &mut Importer, cx: &NodeCx) -> NodeResult<Vec<Value>> {
    let Some(shape) = im.const_ints(cx, 0)? else {
        return invalid("the shape input is required");
    };
    let dims = to_dims("shape value", &shape)?;
    let (data_type, value) = match cx.tensor_attr("value")? {
        Some(t) => {
            let t = im.convert_tensor(t)?;
            if t.shape().element_count() != 1 {
                return invalid(format!("value must have one element, it has shape {}", t.shape()));
            }
            (t.data_type(), t.values())
        }
        None => (DataType::Float32, Values::Float(vec![0.0])),
    };
    let n = count(&dims);
    check_constant_size(n, "a constant")?;
    let values = match value {
        Values::Float(v) => Values::Float(vec![v[0]; n as usize]),
        Values::Int(v) => Values::Int(vec![v[0]; n as usize]),
    };
    Ok(vec![Value::Const(tensor(data_type, dims, &values)?)])
}

/// `Shape`: the static shape as int64, from `start` to `end` (opset 15).
fn shape_node(im: &mut Importer, cx: &NodeCx) -> NodeResult<Vec<Value>> {
    let (_, dims) = input_info(im, cx, 0)?;
    let r = dims.len() as i64;
    let clamp = |v: i64| if v < 0 { v + r } else { v }.clamp(0, r) as usize;
    let start = clamp(cx.int_or("start", 0)?);
    let end = clamp(cx.int_or("end", r)?);
    let part: Vec<i128> = if start < end { dims[start..end].iter().map(|&d| d as i128).collect() } else { Vec::new() };
    Ok(vec![Value::Const(tensor(DataType::Int64, vec![part.len() as u32], &Values::Int(part))?)])
}

/// `Size`: the element count as an int64 scalar.
fn size(im: &mut Importer, cx: &NodeCx) -> NodeResult<Vec<Value>> {
    let (_, dims) = input_info(im, cx, 0)?;
    Ok(vec![Value::Const(tensor(DataType::Int64, vec![], &Values::Int(vec![count(&dims) as i128]))?)])
}

/// `Range` of constant scalars, folded to a constant.
fn range(im: &mut Importer, cx: &NodeCx) -> NodeResult<Vec<Value>> {
    let mut scalars = Vec::new();
    for i in 0..3 {
        let Some(t) = im.const_input(cx, i)? else {
            return invalid(format!("input {i} is required"));
        };
        if t.shape().element_count() != 1 {
            return invalid(format!("input {i} must be a scalar, it has shape {}", t.shape()));
        }
        scalars.push(t);
    }
    let data_type = scalars[0].data_type();
    let values = match (scalars[0].values(), scalars[1].values(), scalars[2].values()) {
        (Values::Int(s), Values::Int(l), Values::Int(d)) => {
            let (s, l, d) = (s[0], l[0], d[0]);
            if d == 0 {
                return invalid("delta is 0");
            }
            let n = if d > 0 { (l - s + d - 1).div_euclid(d) } else { (s - l - d - 1).div_euclid(-d) }.max(0);
            check_constant_size(u64::try_from(n).unwrap_or(u64::MAX), "a range")?;
            Values::Int((0..n).map(|i| s + i * d).collect())
        }
        (Values::Float(s), Values::Float(l), Values::Float(d)) => {
            let (s, l, d) = (s[0], l[0], d[0]);
            let n = ((l - s) / d).ceil();
            if !n.is_finite() {
                return invalid("the range has no finite length");
            }
            let n = n.max(0.0);
            if n > (1u64 << 28) as f64 {
                return unsupported(format!("a range of {n} elements"));
            }
            Values::Float((0..n as i64).map(|i| s + i as f64 * d).collect())
        }
        _ => return invalid("start, limit and delta must have the same type"),
    };
    let n = values.len() as u32;
    Ok(vec![Value::Const(tensor(data_type, vec![n], &values)?)])
}

// ---------------------------------------------------------------------------
// Resize and Upsample.

/// How ONNX maps an output coordinate to an input coordinate.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Transform {
    HalfPixel,
    HalfPixelSymmetric,
    PytorchHalfPixel,
    AlignCorners,
    Asymmetric,
    TfHalfPixelForNn,
    TfCropAndResize { roi_start: f64, roi_end: f64 },
}

/// ONNX's nearest rounding (`nearest_mode`); `Simple` is the opset 7-10
/// rule (floor when upsampling, ceil when downsampling).
#[derive(Clone, Copy, PartialEq, Debug)]
enum Nearest {
    RoundPreferFloor,
    RoundPreferCeil,
    Floor,
    Ceil,
    Simple,
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Interpolation {
    Nearest(Nearest),
    Linear,
    Cubic { a: f64, },
}

/// The interpolation of one node.
#[derive(Clone, Copy, Debug)]
struct Sampling {
    mode: Interpolation,
    antialias: bool,
    exclude_outside: bool,
    extrapolation_value: f64,
}

/// Along one axis, for every output index: the input indices it reads
/// (each at most once, in `[0, n_in)`) with their weights, or `None` where
/// `tf_crop_and_resize` extrapolates.
type Taps = Vec<Option<Vec<(usize, f64)>>>;

/// The coefficients of ONNX's interpolation kernels at fractional offset
/// `ratio` (in `(0, 1]`) for an axis scaled by `scale`.
fn coefficients(s: &Sampling, ratio: f64, scale: f64) -> Vec<f64> {
    match s.mode {
        Interpolation::Nearest(mode) => {
            if ratio.fract() == 0.0 {
                return vec![0.0, 1.0];
            }
            let upper = match mode {
                Nearest::RoundPreferFloor => ratio > 0.5,
                Nearest::RoundPreferCeil => ratio >= 0.5,
                Nearest::Floor => false,
                Nearest::Ceil => true,
                Nearest::Simple => scale < 1.0,
            };
            vec![if upper { 0.0 } else { 1.0 }, if upper { 1.0 } else { 0.0 }]
        }
        Interpolation::Linear if s.antialias => {
            let scale = scale.min(1.0);
            let start = (-1.0 / scale).floor() as i64 + 1;
            let footprint = 2 - 2 * start;
            let c: Vec<f64> = (start..start + footprint).map(|i| (1.0 - ((i as f64 - ratio) * scale).abs()).clamp(0.0, 1.0)).collect();
            let sum: f64 = c.iter().sum();
            c.into_iter().map(|x| x / sum).collect()
        }
        Interpolation::Linear => vec![1.0 - ratio, ratio],
        Interpolation::Cubic { a } if s.antialias => {
            let scale = scale.min(1.0);
            let cubic = |x: f64| {
                let x = x.abs();
                if x <= 1.0 {
                    ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
                } else if x < 2.0 {
                    ((a * x - 5.0 * a) * x + 8.0 * a) * x - 4.0 * a
                } else {
                    0.0
                }
            };
            let start = (-2.0 / scale).floor() as i64 + 1;
            let end = 2 - start;
            let c: Vec<f64> = (start..end).map(|i| cubic(scale * (i as f64 - ratio))).collect();
            let sum: f64 = c.iter().sum();
            c.into_iter().map(|x| x / sum).collect()
        }
        Interpolation::Cubic { a } => {
            let r = ratio;
            vec![
                ((a * (r + 1.0) - 5.0 * a) * (r + 1.0) + 8.0 * a) * (r + 1.0) - 4.0 * a,
                ((a + 2.0) * r - (a + 3.0)) * r * r + 1.0,
                ((a + 2.0) * (1.0 - r) - (a + 3.0)) * (1.0 - r) * (1.0 - r) + 1.0,
                ((a * (2.0 - r) - 5.0 * a) * (2.0 - r) + 8.0 * a) * (2.0 - r) - 4.0 * a,
            ]
        }
    }
}

/// The taps of one axis of `n_in` elements resized to `n_out` with scale
/// `scale`, following the ONNX reference: the coordinate transform gives
/// the input coordinate `x`; the kernel's `k` coefficients apply to the
/// `k` input positions nearest `x` (ties to the smaller), positions outside
/// the axis reading the edge element.
fn axis_taps(s: &Sampling, transform: Transform, n_in: u32, n_out: u32, scale: f64) -> Taps {
    let (n_in_f, out_f) = (n_in as f64, scale * n_in as f64);
    (0..n_out)
        .map(|x| {
            let x = x as f64;
            let x_ori = match transform {
                Transform::AlignCorners => {
                    if out_f == 1.0 { 0.0 } else { x * (n_in_f - 1.0) / (out_f - 1.0) }
                }
                Transform::Asymmetric => x / scale,
                Transform::TfHalfPixelForNn => (x + 0.5) / scale,
                Transform::TfCropAndResize { roi_start, roi_end } => {
                    let x_ori = if out_f == 1.0 {
                        (roi_end - roi_start) * (n_in_f - 1.0) / 2.0
                    } else {
                        x * (roi_end - roi_start) * (n_in_f - 1.0) / (out_f - 1.0)
                    } + roi_start * (n_in_f - 1.0);
                    if x_ori < 0.0 || x_ori > n_in_f - 1.0 {
                        return None;
                    }
                    x_ori
                }
                Transform::PytorchHalfPixel => {
                    if out_f == 1.0 { -0.5 } else { (x + 0.5) / scale - 0.5 }
                }
                Transform::HalfPixel => (x + 0.5) / scale - 0.5,
                Transform::HalfPixelSymmetric => {
                    let adjustment = n_out as f64 / out_f;
                    let offset = n_in_f / 2.0 * (1.0 - adjustment);
                    offset + (x + 0.5) / scale - 0.5
                }
            };
            let ratio = if x_ori.fract() == 0.0 { 1.0 } else { x_ori - x_ori.floor() };
            let mut coeffs = coefficients(s, ratio, scale);
            let k = coeffs.len() as i64;
            // The k positions nearest x_ori (ties to the smaller) among
            // [-pad, n_in + pad), the axis padded with its edge elements.
            let pad = (k + 1) / 2;
            let limit = n_in as i64 + 2 * pad;
            let xp = x_ori + pad as f64;
            let f = xp.floor();
            let centre = (if xp - f > 0.5 { f + 1.0 } else { f }).clamp(0.0, (limit - 1) as f64) as i64;
            let (mut lo, mut hi) = (centre, centre);
            while hi - lo + 1 < k {
                let (left, right) = (lo - 1, hi + 1);
                let take_left = left >= 0 && (right >= limit || (xp - left as f64).abs() <= (right as f64 - xp).abs());
                if take_left {
                    lo = left;
                } else if right < limit {
                    hi = right;
                } else {
                    break;
                }
            }
            let first = lo - pad;
            if s.exclude_outside {
                for (j, c) in coeffs.iter_mut().enumerate() {
                    let idx = first + j as i64;
                    if idx < 0 || idx >= n_in as i64 {
                        *c = 0.0;
                    }
                }
                let sum: f64 = coeffs.iter().sum();
                coeffs.iter_mut().for_each(|c| *c /= sum);
            }
            let mut taps: Vec<(usize, f64)> = Vec::new();
            for (j, &c) in coeffs.iter().enumerate() {
                let idx = (first + j as i64).clamp(0, (n_in as i64 - 1).max(0)) as usize;
                match taps.iter_mut().find(|(i, _)| *i == idx) {
                    Some(t) => t.1 += c,
                    None => taps.push((idx, c)),
                }
            }
            taps.retain(|&(_, w)| w != 0.0);
            Some(taps)
        })
        .collect()
}

/// Whether `taps` are what WebNN's `resample2d` computes along an axis.
fn matches_webnn(taps: &Taps, mode: InterpolationMode, n_in: u32, n_out: u32) -> bool {
    let webnn: Vec<Vec<(usize, f64)>> = match mode {
        InterpolationMode::NearestNeighbor => {
            kiln_ir::interp::nearest_indices(n_in, n_out).into_iter().map(|i| vec![(i, 1.0)]).collect()
        }
        InterpolationMode::Linear => kiln_ir::interp::linear_taps(n_in, n_out)
            .into_iter()
            .map(|(lo, hi, u)| if lo == hi { vec![(lo, 1.0)] } else { vec![(lo, 1.0 - u), (hi, u)] })
            .collect(),
    };
    taps.len() == webnn.len()
        && taps.iter().zip(&webnn).all(|(t, w)| {
            let Some(t) = t else { return false };
            let weight = |taps: &[(usize, f64)], i: usize| taps.iter().find(|p| p.0 == i).map_or(0.0, |p| p.1);
            t.iter().chain(w).all(|&(i, _)| (weight(t, i) - weight(w, i)).abs() <= 1e-6)
        })
}

/// Applies `taps` along `axis` of `x` (one `gather` per tap, weighted
/// and summed), then the extrapolation value where there are no taps.
fn apply_taps(im: &mut Importer, cx: &NodeCx, x: OperandId, axis: usize, taps: &Taps, extrapolation: f64) -> NodeResult<OperandId> {
    let d = im.desc(x).clone();
    let rank = d.shape.rank();
    let n_out = taps.len();
    let width = taps.iter().map(|t| t.as_ref().map_or(0, Vec::len)).max().unwrap_or(0).max(1);
    let weighted = width > 1 || taps.iter().flatten().flatten().any(|&(_, w)| w != 1.0);
    if weighted && !d.data_type.is_float() {
        return unsupported(format!("interpolating a {} tensor (kiln interpolates float and 8-bit integer tensors)", d.data_type));
    }
    // A weight vector shaped to broadcast along `axis`.
    let mut wdims = vec![1u32; rank];
    wdims[axis] = n_out as u32;
    let mut sum: Option<OperandId> = None;
    for k in 0..width {
        let indices: Vec<i64> = taps.iter().map(|t| t.as_ref().and_then(|t| t.get(k)).map_or(0, |p| p.0 as i64)).collect();
        let weights: Vec<f64> = taps.iter().map(|t| t.as_ref().and_then(|t| t.get(k)).map_or(0.0, |p| p.1)).collect();
        if weights.iter().all(|&w| w == 0.0) && k > 0 {
            continue;
        }
        let identity = d.shape.dims()[axis] as usize == n_out && indices.iter().enumerate().all(|(i, &j)| i as i64 == j);
        let g = if identity {
            x
        } else {
            let idx = index_constant(im, vec![n_out as u32], &indices)?;
            im.op1(cx, Op::Gather { input: x, indices: idx, axis: axis as u32 })?
        };
        let term = if weighted {
            let w = tensor(d.data_type, wdims.clone(), &Values::Float(weights))?;
            let w = im.add_constant(None, w)?;
            im.op1(cx, Op::Binary { kind: BinaryOp::Mul, a: g, b: w })?
        } else {
            g
        };
        sum = Some(match sum {
            None => term,
            Some(s) => im.op1(cx, Op::Binary { kind: BinaryOp::Add, a: s, b: term })?,
        });
    }
    let mut y = sum.expect("at least one tap");
    if taps.iter().any(Option::is_none) {
        if !d.data_type.is_float() {
            return unsupported(format!("tf_crop_and_resize extrapolation on a {} tensor", d.data_type));
        }
        let keep: Vec<f64> = taps.iter().map(|t| if t.is_some() { 1.0 } else { 0.0 }).collect();
        let fill: Vec<f64> = keep.iter().map(|k| (1.0 - k) * extrapolation).collect();
        let keep = im.add_constant(None, tensor(d.data_type, wdims.clone(), &Values::Float(keep))?)?;
        y = im.op1(cx, Op::Binary { kind: BinaryOp::Mul, a: y, b: keep })?;
        if extrapolation != 0.0 {
            let fill = im.add_constant(None, tensor(d.data_type, wdims, &Values::Float(fill))?)?;
            y = im.op1(cx, Op::Binary { kind: BinaryOp::Add, a: y, b: fill })?;
        }
    }
    Ok(y)
}

/// Resizes input 0 to `out` dims with per-axis `scales`: one `resample2d`
/// when it computes the same, else the tap decomposition.
fn resample(
    im: &mut Importer,
    cx: &NodeCx,
    s: &Sampling,
    transforms: &[Transform],
    scales: &[f64],
    out: &[u32],
) -> NodeResult<Vec<Value>> {
    let (data_type, dims) = input_info(im, cx, 0)?;
    if count(out) == 0 {
        return Ok(vec![empty(data_type, out.to_vec())]);
    }
    let x = im.input(cx, 0)?;
    // Axes kept at scale 1 are copied (tf_half_pixel_for_nn would shift
    // them by half an element), except where a tf_crop_and_resize roi
    // crops them.
    let taps: Vec<(usize, Taps)> = (0..dims.len())
        .filter(|&a| dims[a] != out[a] || scales[a] != 1.0 || matches!(transforms[a], Transform::TfCropAndResize { .. }))
        .map(|a| (a, axis_taps(s, transforms[a], dims[a], out[a], scales[a])))
        .collect();
    // Axes whose taps read each element in place are no-ops.
    let taps: Vec<(usize, Taps)> = taps
        .into_iter()
        .filter(|(a, t)| !(dims[*a] == out[*a] && t.iter().enumerate().all(|(i, p)| p.as_deref() == Some(&[(i, 1.0)][..]))))
        .collect();
    if taps.is_empty() {
        return Ok(vec![x.into()]);
    }
    // 8-bit integers interpolate in float32 and truncate back, as the ONNX
    // reference and ONNX Runtime do.
    let weighted = taps.iter().flat_map(|(_, t)| t).any(|p| p.as_ref().is_none_or(|p| p.len() > 1 || p[0].1 != 1.0));
    let (x, data_type, cast_back) = if weighted && matches!(data_type, DataType::Uint8 | DataType::Int8) {
        (im.op1(cx, Op::Cast { input: x, data_type: DataType::Float32 })?, DataType::Float32, Some(data_type))
    } else {
        (x, data_type, None)
    };
    let finish = |im: &mut Importer, y: OperandId| -> NodeResult<Vec<Value>> {
        let y = match cast_back {
            Some(t) => im.op1(cx, Op::Cast { input: y, data_type: t })?,
            None => y,
        };
        Ok(vec![y.into()])
    };
    if dims.len() == 4 && matches!(data_type, DataType::Float32 | DataType::Float16 | DataType::Uint8 | DataType::Int8) {
        let axes: Vec<usize> = taps.iter().map(|(a, _)| *a).collect();
        let pair = match axes[..] {
            [a] => Some(if a == 3 { [2, 3] } else { [a, a + 1] }),
            [a, b] if b == a + 1 => Some([a, b]),
            _ => None,
        };
        let modes: &[InterpolationMode] = match s.mode {
            Interpolation::Nearest(_) => &[InterpolationMode::NearestNeighbor],
            _ => &[InterpolationMode::Linear, InterpolationMode::NearestNeighbor],
        };
        if let Some(pair) = pair {
            for &mode in modes {
                let all = pair.iter().all(|&a| match taps.iter().find(|(t, _)| *t == a) {
                    Some((_, t)) => matches_webnn(t, mode, dims[a], out[a]),
                    None => dims[a] == out[a],
                });
                if all && (mode == InterpolationMode::NearestNeighbor || data_type.is_float()) {
                    let options = Resample2dOptions {
                        mode,
                        scales: None,
                        sizes: Some([out[pair[0]], out[pair[1]]]),
                        axes: [pair[0] as u32, pair[1] as u32],
                    };
                    let y = im.op1(cx, Op::Resample2d { input: x, options })?;
                    return finish(im, y);
                }
            }
        }
    }
    let mut y = x;
    for (a, t) in taps.iter().rev() {
        y = apply_taps(im, cx, y, *a, t, s.extrapolation_value)?;
    }
    finish(im, y)
}

/// `Resize` (opsets 10 to 19) with constant scales or sizes.
fn resize(im: &mut Importer, cx: &NodeCx) -> NodeResult<Vec<Value>> {
    let (_, dims) = input_info(im, cx, 0)?;
    let rank = dims.len();
    let mode = cx.string_or("mode", "nearest")?;
    let ctm = if cx.opset < 11 { "asymmetric".to_string() } else { cx.string_or("coordinate_transformation_mode", "half_pixel")? };
    // The roi only matters to tf_crop_and_resize.
    let (roi, scales, sizes) = if cx.opset < 11 {
        (None, im.const_floats(cx, 1)?, None)
    } else {
        let roi = if ctm == "tf_crop_and_resize" { im.const_floats(cx, 1)? } else { None };
        (roi, im.const_floats(cx, 2)?, im.const_ints(cx, 3)?)
    };
    let scales = scales.filter(|s| !s.is_empty());
    let sizes = sizes.filter(|s| !s.is_empty());
    let axes: Vec<usize> = match cx.ints("axes")? {
        Some(list) => distinct_axes(&list, rank)?.into_iter().map(|a| a as usize).collect(),
        None => (0..rank).collect(),
    };
    let nearest = if cx.opset < 11 {
        Nearest::Simple
    } else {
        match cx.string_or("nearest_mode", "round_prefer_floor")?.as_str() {
            "round_prefer_floor" => Nearest::RoundPreferFloor,
            "round_prefer_ceil" => Nearest::RoundPreferCeil,
            "floor" => Nearest::Floor,
            "ceil" => Nearest::Ceil,
            other => return invalid(format!("unknown nearest_mode `{other}`")),
        }
    };
    let interpolation = match mode.as_str() {
        "nearest" => Interpolation::Nearest(nearest),
        "linear" | "bilinear" | "trilinear" => Interpolation::Linear,
        "cubic" | "bicubic" => Interpolation::Cubic { a: cx.float_or("cubic_coeff_a", -0.75)? as f64 },
        other => return invalid(format!("unknown mode `{other}`")),
    };
    let antialias = cx.int_or("antialias", 0)? != 0;
    if antialias && matches!(interpolation, Interpolation::Nearest(_)) {
        return invalid("antialias applies to linear and cubic modes");
    }
    let sampling = Sampling {
        mode: interpolation,
        antialias,
        exclude_outside: cx.int_or("exclude_outside", 0)? != 0,
        extrapolation_value: cx.float_or("extrapolation_value", 0.0)? as f64,
    };
    let mut full_scales = vec![1.0f64; rank];
    let mut out = dims.clone();
    match (scales, sizes) {
        (Some(_), Some(_)) => return invalid("only one of scales and sizes may be given"),
        (Some(s), None) => {
            if s.len() != axes.len() {
                return invalid(format!("{} scales for {} axes", s.len(), axes.len()));
            }
            for (&a, &sc) in axes.iter().zip(&s) {
                if !(sc.is_finite() && sc > 0.0) {
                    return invalid(format!("scale {sc} must be positive"));
                }
                full_scales[a] = sc;
                let n = (dims[a] as f64 * sc).floor();
                if n > u32::MAX as f64 {
                    return unsupported(format!("scale {sc} gives an output size of {n}"));
                }
                out[a] = n as u32;
            }
        }
        (None, Some(sz)) => {
            if sz.len() != axes.len() {
                return invalid(format!("{} sizes for {} axes", sz.len(), axes.len()));
            }
            let sz = to_dims("size", &sz)?;
            for (&a, &n) in axes.iter().zip(&sz) {
                full_scales[a] = n as f64 / dims[a] as f64;
                out[a] = n;
            }
            let policy = cx.string_or("keep_aspect_ratio_policy", "stretch")?;
            if policy != "stretch" {
                let chosen = axes.iter().map(|&a| full_scales[a]);
                let scale = match policy.as_str() {
                    "not_larger" => chosen.fold(f64::INFINITY, f64::min),
                    "not_smaller" => chosen.fold(f64::NEG_INFINITY, f64::max),
                    other => return invalid(format!("unknown keep_aspect_ratio_policy `{other}`")),
                };
                for &a in &axes {
                    full_scales[a] = scale;
                    out[a] = (scale * dims[a] as f64 + 0.5) as u32;
                }
            }
        }
        (None, None) => return invalid("scales or sizes are required"),
    }
    let transform = |a: usize| -> NodeResult<Transform> {
        Ok(match ctm.as_str() {
            "half_pixel" => Transform::HalfPixel,
            "half_pixel_symmetric" => Transform::HalfPixelSymmetric,
            "pytorch_half_pixel" => Transform::PytorchHalfPixel,
            "align_corners" => Transform::AlignCorners,
            "asymmetric" => Transform::Asymmetric,
            "tf_half_pixel_for_nn" => Transform::TfHalfPixelForNn,
            "tf_crop_and_resize" => {
                let Some(roi) = &roi else {
                    return invalid("tf_crop_and_resize needs the roi input");
                };
                if roi.len() != 2 * axes.len() {
                    return invalid(format!("roi has {} values for {} axes", roi.len(), axes.len()));
                }
                match axes.iter().position(|&x| x == a) {
                    Some(k) => Transform::TfCropAndResize { roi_start: roi[k], roi_end: roi[k + axes.len()] },
                    None => Transform::TfCropAndResize { roi_start: 0.0, roi_end: 1.0 },
                }
            }
            other => return invalid(format!("unknown coordinate_transformation_mode `{other}`")),
        })
    };
    let transforms = (0..rank).map(transform).collect::<NodeResult<Vec<_>>>()?;
    resample(im, cx, &sampling, &transforms, &full_scales, &out)
}

/// `Upsample` (opsets 7 to 9): asymmetric coordinates, nearest (floor) or
/// linear; scales as an attribute (opset 7) or constant input.
fn upsample(im: &mut Importer, cx: &NodeCx) -> NodeResult<Vec<Value>> {
    let (_, dims) = input_info(im, cx, 0)?;
    let scales: Vec<f64> = match if cx.opset < 9 { cx.floats("scales")?.map(|s| s.iter().map(|&x| x as f64).collect()) } else { im.const_floats(cx, 1)? } {
        Some(s) => s,
        None => return invalid("scales are required"),
    };
    if scales.len() != dims.len() || scales.iter().any(|&s| !(s.is_finite() && s >= 1.0)) {
        return invalid(format!("scales {scales:?} must be one value of at least 1 per axis"));
    }
    let mode = match cx.string_or("mode", "nearest")?.as_str() {
        "nearest" => Interpolation::Nearest(Nearest::Simple),
        "linear" | "bilinear" => Interpolation::Linear,
        other => return invalid(format!("unknown mode `{other}`")),
    };
    let sampling = Sampling { mode, antialias: false, exclude_outside: false, extrapolation_value: 0.0 };
    let out: Vec<u32> = dims.iter().zip(&scales).map(|(&d, &s)| (d as f64 * s).floor() as u32).collect();
    let transforms = vec![Transform::Asymmetric; dims.len()];
    resample(im, cx, &sampling, &transforms, &scales, &out)
}
