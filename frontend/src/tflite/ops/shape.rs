//! Data movement: reshapes, squeezes, concatenation, padding, slices,
//! gathers, transposes, splits, packs and depth/space rearrangements.
//! Shapes, axes and paddings come from constant inputs or options.

use kiln_ir::{Number, Op, OperandId, PadOptions, PaddingMode, Shape, Splits};

use crate::tflite::import::{Importer, OpCx, OpResult, invalid, unsupported};

/// A possibly negative axis of `rank` (`rank + 1` positions when
/// `inserting`).
fn axis(a: i64, rank: usize) -> OpResult<u32> {
    let r = rank as i64;
    let n = if a < 0 { a + r } else { a };
    if !(0..r).contains(&n) {
        return invalid(format!("axis {a} is out of range for rank {rank}"));
    }
    Ok(n as u32)
}

fn dims(im: &Importer, id: OperandId) -> Vec<u32> {
    im.desc(id).shape.dims().to_vec()
}

/// Resolves a TFLite shape (one -1 allowed) for `elements` elements.
fn resolve_shape(shape: &[i64], elements: u64) -> OpResult<Shape> {
    let known: i64 = shape.iter().filter(|&&d| d != -1).product();
    let unknown = shape.iter().filter(|&&d| d == -1).count();
    if shape.iter().any(|&d| d < -1 || d == 0) || unknown > 1 || known <= 0 {
        return invalid(format!("new shape {shape:?} is not valid (positive dimensions and at most one -1)"));
    }
    let resolved: Vec<u32> = shape
        .iter()
        .map(|&d| if d == -1 { elements / known as u64 } else { d as u64 })
        .map(|d| u32::try_from(d).unwrap_or(0))
        .collect();
    let shape = Shape::new(resolved);
    if shape.checked_element_count() != Some(elements) {
        return invalid(format!("new shape {shape} does not hold the input's {elements} elements"));
    }
    Ok(shape)
}

/// RESHAPE to the shape of input 1 (when constant) or of the options.
pub fn reshape(im: &mut Importer, cx: &OpCx) -> OpResult<()> {
    cx.arity(1..=2, 1)?;
    let x = im.input(cx, 0)?;
    let elements = im.desc(x).shape.element_count() as u64;
    let target = if cx.has_input(1) {
        im.const_ints(cx, 1)?
    } else if let Some(s) = cx.options.ints(0, "ReshapeOptions.new_shape")? {
        s.into_iter().map(i64::from).collect()
    } else {
        im.out_shape(cx, 0)?.dims().iter().map(|&d| d as i64).collect()
    };
    let shape = resolve_shape(&target, elements)?;
    let y = im.reshape(cx, x, &shape)?;
    im.set_output(cx, 0, y)
}

/// SQUEEZE: drops the listed size-1 axes (every size-1 axis when none).
pub fn squeeze(im: &mut Importer, cx: &OpCx) -> OpResult<()> {
    cx.arity(1..=1, 1)?;
    let x = im.input(cx, 0)?;
    let d = dims(im, x);
    let listed = cx.options.ints(0, "SqueezeOptions.squeeze_dims")?.unwrap_or_default();
    let mut drop = vec![listed.is_empty(); d.len()];
    for a in listed {
        let a = axis(a as i64, d.len())? as usize;
        if d[a] != 1 {
            return invalid(format!("axis {a} has size {}, only size-1 axes can be squeezed", d[a]));
        }
        drop[a] = true;
    }
    let shape: Vec<u32> = d.iter().zip(&drop).filter(|&(&n, &dropped)| !(dropped && n == 1)).map(|(&n, _)| n).collect();
    let y = im.reshape(cx, x, &Shape::new(shape))?;
    im.set_output(cx, 0, y)
}

/// EXPAND_DIMS: a size-1 axis at the constant position of input 1.
pub fn expand_dims(im: &mut Importer, cx: &OpCx) -> OpResult<()> {
    cx.arity(2..=2, 1)?;
    let x = im.input(cx, 0)?;
    let mut d = dims(im, x);
    let a = match im.const_ints(cx, 1)?[..] {
        [a] => axis(a, d.len() + 1)? as usize,
        ref v => return invalid(format!("axis must be one value, it holds {}", v.len())),
    };
    d.insert(a, 1);
    let y = im.reshape(cx, x, &Shape::new(d))?;
    im.set_output(cx, 0, y)
}

/// BROADCAST_TO the constant shape of input 1.
pub fn broadcast_to(im: &mut Importer, cx: &OpCx) -> OpResult<()> {
    cx.arity(2..=2, 1)?;
    let x = im.input(cx, 0)?;
    let shape = im.const_ints(cx, 1)?;
    let new_shape = shape.iter().map(|&d| u32::try_from(d).ok().filter(|&d| d > 0)).collect::<Option<Vec<u32>>>();
    let Some(new_shape) = new_shape else {
        return invalid(format!("shape {shape:?} must be positive"));
    };
    let y = im.op1(cx, Op::Expand { input: x, new_shape })?;
    im.set_output(cx, 0, y)
}

/// CONCATENATION along an axis, with a fused activation.
pub fn concatenation(im: &mut Importer, cx: &OpCx) -> OpResult<()> {
    if cx.inputs.is_empty() || cx.outputs.len() != 1 {
        return invalid("takes one or more inputs and one output");
    }
    let inputs = (0..cx.inputs.len()).map(|n| im.input(cx, n)).collect::<OpResult<Vec<_>>>()?;
    let rank = im.desc(inputs[0]).shape.rank();
    let a = axis(cx.options.int(0, 0, "ConcatenationOptions.axis")? as i64, rank)?;
    let activation = cx.options.byte(1, "fused_activation_function")?;
    let y = im.op1(cx, Op::Concat { inputs, axis: a })?;
    let y = im.activation(cx, y, activation)?;
    im.set_output(cx, 0, y)
}

/// The constant `[rank, 2]` paddings of input 1.
fn paddings(im: &mut Importer, cx: &OpCx, rank: usize) -> OpResult<(Vec<u32>, Vec<u32>)> {
    let p = im.const_ints(cx, 1)?;
    if p.len() != 2 * rank {
        return invalid(format!("paddings hold {} values, an input of rank {rank} needs {}", p.len(), 2 * rank));
    }
    let checked = |v: i64| u32::try_from(v).map_err(|_| ());
    let (mut begin, mut end) = (Vec::new(), Vec::new());
    for pair in p.chunks(2) {
        match (checked(pair[0]), checked(pair[1])) {
            (Ok(b), Ok(e)) => {
                begin.push(b);
                end.push(e);
            }
            _ => return unsupported(format!("paddings {p:?}: negative padding (cropping) is not supported")),
        }
    }
    Ok((begin, end))
}

/// PAD and PADV2 (whose input 2 is the constant fill value).
pub fn pad(im: &mut Importer, cx: &OpCx) -> OpResult<()> {
    cx.arity(2..=3, 1)?;
    let x = im.input(cx, 0)?;
    let (begin, end) = paddings(im, cx, im.desc(x).shape.rank())?;
    let value = if cx.has_input(2) {
        let v = im.const_value(cx, 2)?;
        let f = v.to_f32_vec();
        match f[..] {
            [v] => v as f64,
            _ => return invalid(format!("constant_values must be one value, it holds {}", f.len())),
        }
    } else {
        0.0
    };
    let value = if im.desc(x).data_type.is_float() { Number::Float(value) } else { Number::Int(value as i128) };
    let options = PadOptions { mode: PaddingMode::Constant, value };
    let y = im.op1(cx, Op::Pad { input: x, beginning_padding: begin, ending_padding: end, options })?;
    im.set_output(cx, 0, y)
}

/// MIRROR_PAD in REFLECT mode (SYMMETRIC has no WebNN counterpart).
pub fn mirror_pad(im: &mut Importer, cx: &OpCx) -> OpResult<()> {
    cx.arity(2..=2, 1)?;
    if cx.options.byte(0, "MirrorPadOptions.mode")? != 0 {
        return unsupported("MIRROR_PAD in SYMMETRIC mode is not supported (REFLECT is)");
    }
    let x = im.input(cx, 0)?;
    let (begin, end) = paddings(im, cx, im.desc(x).shape.rank())?;
    let options = PadOptions { mode: PaddingMode::Reflection, ..Default::default() };
    let y = im.op1(cx, Op::Pad { input: x, beginning_padding: begin, ending_padding: end, options })?;
    im.set_output(cx, 0, y)
}

/// A slice with positive strides, then a reshape to `out`.
fn slice_to(im: &mut Importer, cx: &OpCx, x: OperandId, starts: Vec<u32>, sizes: Vec<u32>, strides: Vec<u32>, out: Shape) -> OpResult<()> {
    let full = dims(im, x);
    let y = if starts.iter().all(|&s| s == 0) && sizes == full && strides.iter().all(|&s| s == 1) {
        x
    } else {
        let strides = strides.iter().any(|&s| s != 1).then_some(strides);
        im.op1(cx, Op::Slice { input: x, starts, sizes, strides })?
    };
    let y = im.reshape(cx, y, &out)?;
    im.set_output(cx, 0, y)
}

/// SLICE: constant begin and size (-1: to the end).
pub fn slice(im: &mut Importer, cx: &OpCx) -> OpResult<()> {
    cx.arity(3..=3, 1)?;
    let x = im.input(cx, 0)?;
    let d = dims(im, x);
    let (begin, size) = (im.const_ints(cx, 1)?, im.const_ints(cx, 2)?);
    if begin.len() != d.len() || size.len() != d.len() {
        return invalid(format!("begin {begin:?} and size {size:?} must have one value per axis of {d:?}"));
    }
    let (mut starts, mut sizes) = (Vec::new(), Vec::new());
    for i in 0..d.len() {
        let n = d[i] as i64;
        let b = begin[i];
        let s = if size[i] == -1 { n - b } else { size[i] };
        if b < 0 || s <= 0 || b + s > n {
            return invalid(format!("axis {i}: begin {b} size {} does not fit a dimension of {n} (an empty slice is not supported)", size[i]));
        }
        starts.push(b as u32);
        sizes.push(s as u32);
    }
    let out = Shape::new(sizes.clone());
    slice_to(im, cx, x, starts, sizes, vec![1; d.len()], out)
}

/// STRIDED_SLICE with begin/end/shrink masks and positive strides.
pub fn strided_slice(im: &mut Importer, cx: &OpCx) -> OpResult<()> {
    cx.arity(3..=4, 1)?;
    let o = cx.options;
    let begin_mask = o.int(0, 0, "begin_mask")?;
    let end_mask = o.int(1, 0, "end_mask")?;
    if o.int(2, 0, "ellipsis_mask")? != 0 || o.int(3, 0, "new_axis_mask")? != 0 {
        return unsupported("STRIDED_SLICE with an ellipsis or new-axis mask is not supported");
    }
    let shrink = o.int(4, 0, "shrink_axis_mask")?;
    let offset = o.bool(5, "offset")?;
    let x = im.input(cx, 0)?;
    let d = dims(im, x);
    let begin = im.const_ints(cx, 1)?;
    let end = im.const_ints(cx, 2)?;
    let strides = if cx.has_input(3) { im.const_ints(cx, 3)? } else { vec![1; begin.len()] };
    if begin.len() != end.len() || begin.len() != strides.len() || begin.len() > d.len() {
        return invalid(format!("begin {begin:?}, end {end:?} and strides {strides:?} must have one value per sliced axis of {d:?}"));
    }
    let (mut starts, mut sizes, mut steps, mut out) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (i, &n) in d.iter().enumerate() {
        let n = n as i64;
        if i >= begin.len() {
            starts.push(0);
            sizes.push(n as u32);
            steps.push(1);
            out.push(n as u32);
            continue;
        }
        let bit = |mask: i32| mask >> i & 1 == 1;
        let s = strides[i];
        if s <= 0 {
            return unsupported(format!("axis {i}: stride {s}; kiln slices with positive strides"));
        }
        let norm = |v: i64| (if v < 0 { v + n } else { v }).clamp(0, n);
        let b = if bit(begin_mask) { 0 } else { norm(begin[i]) };
        let e = if bit(shrink) {
            b + 1
        } else if bit(end_mask) {
            n
        } else if offset {
            norm(begin[i] + end[i])
        } else {
            norm(end[i])
        };
        let count = if e > b { (e - b + s - 1) / s } else { 0 };
        if count == 0 || b >= n {
            return invalid(format!("axis {i}: the slice is empty (kiln tensors have no zero-size dimensions)"));
        }
        starts.push(b as u32);
        sizes.push(((count - 1) * s + 1) as u32);
        steps.push(s as u32);
        if !bit(shrink) {
            out.push(count as u32);
        }
    }
    slice_to(im, cx, x, starts, sizes, steps, Shape::new(out))
}

/// TRANSPOSE by the constant permutation of input 1.
pub fn transpose(im: &mut Importer, cx: &OpCx) -> OpResult<()> {
    cx.arity(2..=2, 1)?;
    let x = im.input(cx, 0)?;
    let permutation = im.const_ints(cx, 1)?.into_iter().map(|p| u32::try_from(p).unwrap_or(u32::MAX)).collect();
    let y = im.op1(cx, Op::Transpose { input: x, permutation: Some(permutation) })?;
    im.set_output(cx, 0, y)
}

/// GATHER along an axis (batch_dims 0).
pub fn gather(im: &mut Importer, cx: &OpCx) -> OpResult<()> {
    cx.arity(2..=2, 1)?;
    if cx.options.int(1, 0, "GatherOptions.batch_dims")? != 0 {
        return unsupported("GATHER with batch_dims is not supported");
    }
    let x = im.input(cx, 0)?;
    let indices = im.raw_input(cx, 1)?;
    let a = axis(cx.options.int(0, 0, "GatherOptions.axis")? as i64, im.desc(x).shape.rank())?;
    let y = im.op1(cx, Op::Gather { input: x, indices, axis: a })?;
    im.set_output(cx, 0, y)
}

fn split_outputs(im: &mut Importer, cx: &OpCx, x: OperandId, splits: Splits, a: u32) -> OpResult<()> {
    let parts = im.op(cx, Op::Split { input: x, splits, axis: a })?;
    if parts.len() != cx.outputs.len() {
        return invalid(format!("the split makes {} parts, the operator has {} outputs", parts.len(), cx.outputs.len()));
    }
    for (n, p) in parts.into_iter().enumerate() {
        im.set_output(cx, n, p)?;
    }
    Ok(())
}

/// SPLIT: input 0 is the constant axis, input 1 the tensor.
pub fn split(im: &mut Importer, cx: &OpCx) -> OpResult<()> {
    if cx.inputs.len() != 2 {
        return invalid(format!("takes 2 inputs, the model gives {}", cx.inputs.len()));
    }
    let x = im.input(cx, 1)?;
    let a = match im.const_ints(cx, 0)?[..] {
        [a] => axis(a, im.desc(x).shape.rank())?,
        ref v => return invalid(format!("axis must be one value, it holds {}", v.len())),
    };
    let n = u32::try_from(cx.options.int(0, 0, "SplitOptions.num_splits")?).unwrap_or(0);
    if n == 0 || n as usize != cx.outputs.len() {
        return invalid(format!("num_splits is {n}, the operator has {} outputs", cx.outputs.len()));
    }
    split_outputs(im, cx, x, Splits::Count(n), a)
}

/// SPLIT_V: input, constant sizes (one -1 allowed), constant axis.
pub fn split_v(im: &mut Importer, cx: &OpCx) -> OpResult<()> {
    if cx.inputs.len() != 3 {
        return invalid(format!("takes 3 inputs, the model gives {}", cx.inputs.len()));
    }
    let x = im.input(cx, 0)?;
    let d = dims(im, x);
    let a = match im.const_ints(cx, 2)?[..] {
        [a] => axis(a, d.len())?,
        ref v => return invalid(format!("axis must be one value, it holds {}", v.len())),
    };
    let sizes = im.const_ints(cx, 1)?;
    let total = d[a as usize] as i64;
    let known: i64 = sizes.iter().filter(|&&s| s != -1).sum();
    if sizes.iter().any(|&s| s < -1) || sizes.iter().filter(|&&s| s == -1).count() > 1 {
        return invalid(format!("size_splits {sizes:?} must be positive, with at most one -1"));
    }
    let resolved: Vec<u32> =
        sizes.iter().map(|&s| u32::try_from(if s == -1 { total - known } else { s }).unwrap_or(0)).collect();
    if resolved.contains(&0) || resolved.iter().map(|&s| s as u64).sum::<u64>() != d[a as usize] as u64 {
        return invalid(format!("size_splits {sizes:?} do not sum to {}", d[a as usize]));
    }
    split_outputs(im, cx, x, Splits::Sizes(resolved), a)
}

/// PACK: the inputs, each with a new size-1 axis, concatenated along it.
pub fn pack(im: &mut Importer, cx: &OpCx) -> OpResult<()> {
    if cx.inputs.is_empty() || cx.outputs.len() != 1 {
        return invalid("takes one or more inputs and one output");
    }
    let mut inputs = (0..cx.inputs.len()).map(|n| im.input(cx, n)).collect::<OpResult<Vec<_>>>()?;
    let mut d = dims(im, inputs[0]);
    let a = axis(cx.options.int(1, 0, "PackOptions.axis")? as i64, d.len() + 1)?;
    d.insert(a as usize, 1);
    let shape = Shape::new(d);
    for x in &mut inputs {
        *x = im.reshape(cx, *x, &shape)?;
    }
    let y = im.op1(cx, Op::Concat { inputs, axis: a })?;
    im.set_output(cx, 0, y)
}

/// UNPACK: a split into size-1 parts along an axis, which is dropped.
pub fn unpack(im: &mut Importer, cx: &OpCx) -> OpResult<()> {
    cx.arity(1..=1, cx.outputs.len().max(1))?;
    let x = im.input(cx, 0)?;
    let d = dims(im, x);
    let a = axis(cx.options.int(1, 0, "UnpackOptions.axis")? as i64, d.len())?;
    if d[a as usize] as usize != cx.outputs.len() {
        return invalid(format!("axis {a} has {} elements, the operator has {} outputs", d[a as usize], cx.outputs.len()));
    }
    let parts = if cx.outputs.len() == 1 { vec![x] } else { im.op(cx, Op::Split { input: x, splits: Splits::Count(d[a as usize]), axis: a })? };
    let mut out = d.clone();
    out.remove(a as usize);
    let out = Shape::new(out);
    for (n, p) in parts.into_iter().enumerate() {
        let p = im.reshape(cx, p, &out)?;
        im.set_output(cx, n, p)?;
    }
    Ok(())
}

fn block_size(cx: &OpCx) -> OpResult<u32> {
    match u32::try_from(cx.options.int(0, 0, "block_size")?) {
        Ok(b) if b > 0 => Ok(b),
        _ => invalid("block_size must be at least 1"),
    }
}

/// `reshape -> transpose [0, 1, 3, 2, 4, 5] -> reshape`.
fn rearrange(im: &mut Importer, cx: &OpCx, x: OperandId, split: [u32; 6], out: [u32; 4]) -> OpResult<()> {
    let y = im.reshape(cx, x, &Shape::new(split))?;
    let y = im.op1(cx, Op::Transpose { input: y, permutation: Some(vec![0, 1, 3, 2, 4, 5]) })?;
    let y = im.reshape(cx, y, &Shape::new(out))?;
    im.set_output(cx, 0, y)
}

/// DEPTH_TO_SPACE (NHWC): `out[n, h*b + i, w*b + j, c] = in[n, h, w, (i*b + j)*C' + c]`.
pub fn depth_to_space(im: &mut Importer, cx: &OpCx) -> OpResult<()> {
    cx.arity(1..=1, 1)?;
    let b = block_size(cx)?;
    let x = im.input(cx, 0)?;
    let d = dims(im, x);
    if d.len() != 4 || !d[3].is_multiple_of(b * b) {
        return invalid(format!("input {d:?} must be NHWC with channels divisible by {}", b * b));
    }
    let c = d[3] / (b * b);
    rearrange(im, cx, x, [d[0], d[1], d[2], b, b, c], [d[0], d[1] * b, d[2] * b, c])
}

/// SPACE_TO_DEPTH (NHWC), the inverse of DEPTH_TO_SPACE.
pub fn space_to_depth(im: &mut Importer, cx: &OpCx) -> OpResult<()> {
    cx.arity(1..=1, 1)?;
    let b = block_size(cx)?;
    let x = im.input(cx, 0)?;
    let d = dims(im, x);
    if d.len() != 4 || !d[1].is_multiple_of(b) || !d[2].is_multiple_of(b) {
        return invalid(format!("input {d:?} must be NHWC with height and width divisible by {b}"));
    }
    rearrange(im, cx, x, [d[0], d[1] / b, b, d[2] / b, b, d[3]], [d[0], d[1] / b, d[2] / b, b * b * d[3]])
}
