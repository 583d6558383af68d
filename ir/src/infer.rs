//! Validation and shape inference for every operator, following the WebNN
//! spec's "create an MLOperand" steps. All arithmetic on dimensions is
//! checked: an overflow is an error, never a wrap or a panic.
//!
//! Every operand's data type and rank are checked first, against the one
//! table of [`crate::limits`] (which `MLOpSupportLimits` reports); the
//! rules here are the rest: shapes, broadcasting, options.
//!
//! The `resolved_*` helpers compute options whose default depends on the
//! input; the interpreter and later passes call the same helpers.

use crate::op::*;
use crate::{DataType, OperandDescriptor, OperandId, Shape};

/// A broken rule: which operand (or option) and what rule.
#[derive(Debug, Clone, PartialEq)]
pub struct OpError {
    pub operand: String,
    pub rule: String,
}

impl OpError {
    pub fn new(operand: impl Into<String>, rule: impl Into<String>) -> Self {
        OpError {
            operand: operand.into(),
            rule: rule.into(),
        }
    }
}

type R<T> = Result<T, OpError>;

fn err<T>(operand: &str, rule: impl Into<String>) -> R<T> {
    Err(OpError::new(operand, rule))
}

use DataType::*;

/// The most outputs one `split` may produce.
pub const MAX_SPLITS: u32 = 1 << 16;

fn check_same_type(operand: &str, desc: &OperandDescriptor, expected: DataType) -> R<()> {
    if desc.data_type == expected {
        Ok(())
    } else {
        err(operand, format!("data type {} must match the input's {}", desc.data_type, expected))
    }
}

fn check_axis(name: &str, axis: u32, rank: usize) -> R<usize> {
    if (axis as usize) < rank {
        Ok(axis as usize)
    } else {
        err(name, format!("axis {axis} is out of range for rank {rank}"))
    }
}

fn check_axes(name: &str, axes: &[u32], rank: usize) -> R<()> {
    for (i, &a) in axes.iter().enumerate() {
        check_axis(name, a, rank)?;
        if axes[..i].contains(&a) {
            return err(name, format!("axis {a} appears more than once"));
        }
    }
    Ok(())
}

fn check_positive(name: &str, values: &[u32]) -> R<()> {
    if values.contains(&0) {
        err(name, format!("values {values:?} must all be greater than 0"))
    } else {
        Ok(())
    }
}

/// Checks that every dimension is at least 1 (WebNN forbids empty tensors).
pub fn check_dims(operand: &str, shape: &Shape) -> R<()> {
    if shape.dims().contains(&0) {
        err(operand, format!("shape {shape} has a zero dimension"))
    } else {
        Ok(())
    }
}

/// Numpy-style bidirectional broadcasting of two shapes.
pub fn broadcast_shapes(a: &Shape, b: &Shape) -> Option<Shape> {
    let rank = a.rank().max(b.rank());
    // Dimension `i` of a shape right-aligned to `rank`, 1 where it has none.
    let dim = |s: &Shape, i: usize| if i + s.rank() >= rank { s.0[i + s.rank() - rank] } else { 1 };
    (0..rank)
        .map(|i| match (dim(a, i), dim(b, i)) {
            (x, y) if x == y => Some(x),
            (1, y) => Some(y),
            (x, 1) => Some(x),
            _ => None,
        })
        .collect::<Option<Vec<_>>>()
        .map(Shape)
}

/// Whether `from` broadcasts to exactly `to` (unidirectional broadcasting).
pub fn broadcasts_to(from: &Shape, to: &Shape) -> bool {
    from.rank() <= to.rank() && broadcast_shapes(from, to).as_ref() == Some(to)
}

fn broadcast(op_a: &str, a: &Shape, op_b: &str, b: &Shape) -> R<Shape> {
    broadcast_shapes(a, b).ok_or_else(|| {
        OpError::new(op_b, format!("shape {b} cannot be broadcast with `{op_a}` shape {a}"))
    })
}

fn mul_dims(name: &str, a: u32, b: u32) -> R<u32> {
    a.checked_mul(b).ok_or_else(|| OpError::new(name, format!("{a} x {b} overflows a dimension")))
}

/// Effective reduction axes: the given ones, or all of them.
pub fn resolved_reduce_axes(options: &ReduceOptions, rank: usize) -> Vec<u32> {
    options.axes.clone().unwrap_or_else(|| (0..rank as u32).collect())
}

/// Effective layer-normalization axes: the given ones, or `[1, rank)`.
pub fn resolved_layer_norm_axes(options: &LayerNormalizationOptions, rank: usize) -> Vec<u32> {
    options.axes.clone().unwrap_or_else(|| (1..rank.max(1) as u32).collect())
}

/// Effective transpose permutation: the given one, or reversed axes.
pub fn resolved_permutation(permutation: &Option<Vec<u32>>, rank: usize) -> Vec<u32> {
    permutation.clone().unwrap_or_else(|| (0..rank as u32).rev().collect())
}

/// Effective slice strides: the given ones, or ones.
pub fn resolved_slice_strides(strides: &Option<Vec<u32>>, rank: usize) -> Vec<u32> {
    strides.clone().unwrap_or_else(|| vec![1; rank])
}

/// The `(height, width)` axes of a 4-D tensor in `layout`.
pub fn spatial_axes(layout: InputLayout) -> (usize, usize) {
    match layout {
        InputLayout::Nchw => (2, 3),
        InputLayout::Nhwc => (1, 2),
    }
}

/// The channel axis of a 4-D tensor in `layout`.
pub fn channel_axis(layout: InputLayout) -> usize {
    match layout {
        InputLayout::Nchw => 1,
        InputLayout::Nhwc => 3,
    }
}

/// Effective pooling window: the given one, or the input's spatial size.
pub fn resolved_window(options: &Pool2dOptions, input: &Shape) -> [u32; 2] {
    let (h, w) = spatial_axes(options.layout);
    options.window_dimensions.unwrap_or([input.0[h], input.0[w]])
}

/// Conv2d filter dimensions `(out_channels, in_channels_per_group, height, width)`.
pub fn conv2d_filter_dims(layout: Conv2dFilterLayout, f: &Shape) -> (u32, u32, u32, u32) {
    let d = &f.0;
    match layout {
        Conv2dFilterLayout::Oihw => (d[0], d[1], d[2], d[3]),
        Conv2dFilterLayout::Hwio => (d[3], d[2], d[0], d[1]),
        Conv2dFilterLayout::Ohwi => (d[0], d[3], d[1], d[2]),
        Conv2dFilterLayout::Ihwo => (d[3], d[0], d[1], d[2]),
    }
}

/// ConvTranspose2d filter dimensions `(in_channels, out_channels_per_group, height, width)`.
pub fn conv_transpose2d_filter_dims(layout: ConvTranspose2dFilterLayout, f: &Shape) -> (u32, u32, u32, u32) {
    let d = &f.0;
    match layout {
        ConvTranspose2dFilterLayout::Iohw => (d[0], d[1], d[2], d[3]),
        ConvTranspose2dFilterLayout::Hwoi => (d[3], d[2], d[0], d[1]),
        ConvTranspose2dFilterLayout::Ohwi => (d[3], d[0], d[1], d[2]),
    }
}

fn nchw_like(layout: InputLayout, n: u32, c: u32, h: u32, w: u32) -> Shape {
    match layout {
        InputLayout::Nchw => Shape(vec![n, c, h, w]),
        InputLayout::Nhwc => Shape(vec![n, h, w, c]),
    }
}

/// One spatial output size of a windowed operator, or an error if the
/// effective window exceeds the padded input.
fn windowed_size(
    name: &str,
    input: u32,
    window: u32,
    dilation: u32,
    pad: (u32, u32),
    stride: u32,
    rounding: RoundingType,
) -> R<u32> {
    let effective = (window as u64 - 1) * dilation as u64 + 1;
    let padded = input as u64 + pad.0 as u64 + pad.1 as u64;
    if effective > padded {
        return err(
            name,
            format!("the dilated window ({effective}) is larger than the padded input ({padded})"),
        );
    }
    let span = padded - effective;
    let steps = match rounding {
        RoundingType::Floor => span / stride as u64,
        RoundingType::Ceil => span.div_ceil(stride as u64),
    };
    u32::try_from(steps + 1).map_err(|_| OpError::new(name, "the output size overflows a dimension"))
}

fn check_optional_vector<'g>(
    name: &str,
    operand: Option<OperandId>,
    desc: &dyn Fn(OperandId) -> &'g OperandDescriptor,
    len: u32,
) -> R<()> {
    if let Some(id) = operand {
        let d = desc(id);
        if d.shape.0 != [len] {
            return err(name, format!("shape must be [{len}], got {}", d.shape));
        }
    }
    Ok(())
}

/// Validates `op` against the descriptors of its operands and returns the
/// descriptors of its outputs.
pub fn output_descriptors<'g>(
    op: &Op,
    desc: &dyn Fn(OperandId) -> &'g OperandDescriptor,
) -> R<Vec<OperandDescriptor>> {
    crate::limits::check_operands(op, desc)?;
    let same = |d: &OperandDescriptor| Ok(vec![d.clone()]);
    match op {
        Op::Binary { a, b, .. } | Op::Compare { a, b, .. } | Op::Logical { a, b, .. } => {
            let (da, db) = (desc(*a), desc(*b));
            let shape = broadcast("a", &da.shape, "b", &db.shape)?;
            let t = if matches!(op, Op::Binary { .. }) { da.data_type } else { Uint8 };
            Ok(vec![OperandDescriptor::new(t, shape)])
        }
        Op::Unary { input, .. } => {
            let d = desc(*input);
            same(d)
        }
        Op::Clamp { input, min_value, max_value } => {
            let d = desc(*input);
            if let (Some(lo), Some(hi)) = (min_value, max_value) {
                let greater = match (lo, hi) {
                    (Number::Int(l), Number::Int(h)) => l > h,
                    _ => lo.as_f64() > hi.as_f64(),
                };
                if greater {
                    return err("minValue", format!("minValue {lo:?} is greater than maxValue {hi:?}"));
                }
            }
            same(d)
        }
        Op::Elu { input, .. } | Op::LeakyRelu { input, .. } | Op::HardSigmoid { input, .. } | Op::Linear { input, .. } => {
            same(desc(*input))
        }
        Op::Prelu { input, slope } => {
            let (d, s) = (desc(*input), desc(*slope));
            let shape = broadcast("input", &d.shape, "slope", &s.shape)?;
            Ok(vec![OperandDescriptor::new(d.data_type, shape)])
        }
        Op::Cast { input, data_type } => Ok(vec![OperandDescriptor::new(*data_type, desc(*input).shape.clone())]),
        Op::Conv2d { input, filter, options: o } => conv2d(desc(*input), desc(*filter), o, desc),
        Op::ConvTranspose2d { input, filter, options: o } => conv_transpose2d(desc(*input), desc(*filter), o, desc),
        Op::Pool2d { input, options: o, .. } => {
            let d = desc(*input);
            let window = resolved_window(o, &d.shape);
            check_positive("windowDimensions", &window)?;
            check_positive("strides", &o.strides)?;
            check_positive("dilations", &o.dilations)?;
            let (ha, wa) = spatial_axes(o.layout);
            let c = channel_axis(o.layout);
            let out = |rounding| -> R<[u32; 2]> {
                Ok([
                    windowed_size("input", d.shape.0[ha], window[0], o.dilations[0], (o.padding[0], o.padding[1]), o.strides[0], rounding)?,
                    windowed_size("input", d.shape.0[wa], window[1], o.dilations[1], (o.padding[2], o.padding[3]), o.strides[1], rounding)?,
                ])
            };
            let sizes = match o.output_sizes {
                Some(sizes) => {
                    let (fl, ce) = (out(RoundingType::Floor)?, out(RoundingType::Ceil)?);
                    for i in 0..2 {
                        if sizes[i] != fl[i] && sizes[i] != ce[i] {
                            return err(
                                "outputSizes",
                                format!("{sizes:?} must match the floor {fl:?} or ceil {ce:?} output sizes"),
                            );
                        }
                    }
                    sizes
                }
                None => out(o.output_shape_rounding)?,
            };
            let s = &d.shape.0;
            Ok(vec![OperandDescriptor::new(d.data_type, nchw_like(o.layout, s[0], s[c], sizes[0], sizes[1]))])
        }
        Op::Gemm { a, b, options: o } => {
            let (da, db) = (desc(*a), desc(*b));
            let (m, k) = if o.a_transpose { (da.shape.0[1], da.shape.0[0]) } else { (da.shape.0[0], da.shape.0[1]) };
            let (kb, n) = if o.b_transpose { (db.shape.0[1], db.shape.0[0]) } else { (db.shape.0[0], db.shape.0[1]) };
            if k != kb {
                return err("b", format!("inner dimension {kb} does not match a's {k}"));
            }
            let out = Shape(vec![m, n]);
            if let Some(c) = o.c {
                let dc = desc(c);
                if !broadcasts_to(&dc.shape, &out) {
                    return err("c", format!("shape {} does not broadcast to the output shape {out}", dc.shape));
                }
            }
            Ok(vec![OperandDescriptor::new(da.data_type, out)])
        }
        Op::Matmul { a, b } => {
            let (da, db) = (desc(*a), desc(*b));
            let (ra, rb) = (da.shape.rank(), db.shape.rank());
            let (m, k) = (da.shape.0[ra - 2], da.shape.0[ra - 1]);
            let (kb, n) = (db.shape.0[rb - 2], db.shape.0[rb - 1]);
            if k != kb {
                return err("b", format!("dimension {kb} (rows) does not match a's {k} (columns)"));
            }
            let batch = broadcast("a", &Shape(da.shape.0[..ra - 2].to_vec()), "b", &Shape(db.shape.0[..rb - 2].to_vec()))?;
            let mut out = batch.0;
            out.extend([m, n]);
            Ok(vec![OperandDescriptor::new(da.data_type, out)])
        }
        Op::BatchNormalization { input, mean, variance, options: o } => {
            let d = desc(*input);
            let axis = check_axis("axis", o.axis, d.shape.rank())?;
            let c = d.shape.0[axis];
            check_optional_vector("mean", Some(*mean), desc, c)?;
            check_optional_vector("variance", Some(*variance), desc, c)?;
            check_optional_vector("scale", o.scale, desc, c)?;
            check_optional_vector("bias", o.bias, desc, c)?;
            same(d)
        }
        Op::LayerNormalization { input, options: o } => {
            let d = desc(*input);
            let axes = resolved_layer_norm_axes(o, d.shape.rank());
            check_axes("axes", &axes, d.shape.rank())?;
            let expected = Shape(axes.iter().map(|&a| d.shape.0[a as usize]).collect());
            for (name, operand) in [("scale", o.scale), ("bias", o.bias)] {
                if let Some(id) = operand {
                    let dd = desc(id);
                    if dd.shape != expected {
                        return err(name, format!("shape must be {expected} (the input's sizes along axes), got {}", dd.shape));
                    }
                }
            }
            same(d)
        }
        Op::InstanceNormalization { input, options: o } => {
            let d = desc(*input);
            let c = d.shape.0[channel_axis(o.layout)];
            check_optional_vector("scale", o.scale, desc, c)?;
            check_optional_vector("bias", o.bias, desc, c)?;
            same(d)
        }
        Op::Softmax { input, axis } => {
            let d = desc(*input);
            check_axis("axis", *axis, d.shape.rank())?;
            same(d)
        }
        Op::Reduce { input, options: o, .. } => {
            let d = desc(*input);
            let axes = resolved_reduce_axes(o, d.shape.rank());
            check_axes("axes", &axes, d.shape.rank())?;
            let mut out = Vec::new();
            for (i, &dim) in d.shape.0.iter().enumerate() {
                if !axes.contains(&(i as u32)) {
                    out.push(dim);
                } else if o.keep_dimensions {
                    out.push(1);
                }
            }
            Ok(vec![OperandDescriptor::new(d.data_type, out)])
        }
        Op::Reshape { input, new_shape } => {
            let d = desc(*input);
            let s = Shape(new_shape.clone());
            check_dims("newShape", &s)?;
            if s.checked_element_count() != d.shape.checked_element_count() {
                return err("newShape", format!("{s} does not have the same number of elements as the input shape {}", d.shape));
            }
            Ok(vec![OperandDescriptor::new(d.data_type, s)])
        }
        Op::Transpose { input, permutation } => {
            let d = desc(*input);
            let rank = d.shape.rank();
            let perm = resolved_permutation(permutation, rank);
            if perm.len() != rank {
                return err("permutation", format!("length {} must equal the input rank {rank}", perm.len()));
            }
            check_axes("permutation", &perm, rank)?;
            Ok(vec![OperandDescriptor::new(d.data_type, Shape(perm.iter().map(|&p| d.shape.0[p as usize]).collect()))])
        }
        Op::Concat { inputs, axis } => {
            let Some(first) = inputs.first() else {
                return err("inputs", "at least one input is required");
            };
            let d0 = desc(*first);
            let axis = check_axis("axis", *axis, d0.shape.rank())?;
            let mut out = d0.shape.0.clone();
            for (i, id) in inputs.iter().enumerate().skip(1) {
                let di = desc(*id);
                let name = format!("inputs[{i}]");
                check_same_type(&name, di, d0.data_type)?;
                if di.shape.rank() != d0.shape.rank()
                    || di.shape.0.iter().zip(&d0.shape.0).enumerate().any(|(k, (x, y))| k != axis && x != y)
                {
                    return err(&name, format!("shape {} must equal inputs[0]'s {} except along axis {axis}", di.shape, d0.shape));
                }
                out[axis] = out[axis]
                    .checked_add(di.shape.0[axis])
                    .ok_or_else(|| OpError::new(name.clone(), "the concatenated size overflows a dimension"))?;
            }
            Ok(vec![OperandDescriptor::new(d0.data_type, out)])
        }
        Op::Split { input, splits, axis } => {
            let d = desc(*input);
            let a = check_axis("axis", *axis, d.shape.rank())?;
            let dim = d.shape.0[a];
            let sizes = match splits {
                Splits::Count(0) => return err("splits", "the count must be greater than 0"),
                Splits::Count(n) if *n > MAX_SPLITS => {
                    return err("splits", format!("{n} parts exceed the limit of {MAX_SPLITS} outputs"));
                }
                Splits::Count(n) if !dim.is_multiple_of(*n) => {
                    return err("splits", format!("{n} does not divide the axis size {dim}"));
                }
                Splits::Count(n) => vec![dim / n; *n as usize],
                Splits::Sizes(s) => {
                    check_positive("splits", s)?;
                    if s.iter().map(|&x| x as u64).sum::<u64>() != dim as u64 {
                        return err("splits", format!("{s:?} does not sum to the axis size {dim}"));
                    }
                    s.clone()
                }
            };
            Ok(sizes
                .into_iter()
                .map(|n| {
                    let mut s = d.shape.0.clone();
                    s[a] = n;
                    OperandDescriptor::new(d.data_type, s)
                })
                .collect())
        }
        Op::Slice { input, starts, sizes, strides } => {
            let d = desc(*input);
            let rank = d.shape.rank();
            let strides = resolved_slice_strides(strides, rank);
            for (name, v) in [("starts", starts), ("sizes", sizes), ("strides", &strides)] {
                if v.len() != rank {
                    return err(name, format!("length {} must equal the input rank {rank}", v.len()));
                }
            }
            check_positive("sizes", sizes)?;
            check_positive("strides", &strides)?;
            let mut out = Vec::with_capacity(rank);
            for i in 0..rank {
                if starts[i] as u64 + sizes[i] as u64 > d.shape.0[i] as u64 {
                    return err(
                        "sizes",
                        format!("axis {i}: start {} + size {} exceeds the dimension {}", starts[i], sizes[i], d.shape.0[i]),
                    );
                }
                out.push(sizes[i].div_ceil(strides[i]));
            }
            Ok(vec![OperandDescriptor::new(d.data_type, out)])
        }
        Op::Expand { input, new_shape } => {
            let d = desc(*input);
            let s = Shape(new_shape.clone());
            check_dims("newShape", &s)?;
            let out = broadcast("input", &d.shape, "newShape", &s)?;
            Ok(vec![OperandDescriptor::new(d.data_type, out)])
        }
        Op::Gather { input, indices, axis } => {
            let (d, di) = (desc(*input), desc(*indices));
            let a = check_axis("axis", *axis, d.shape.rank())?;
            let mut out = d.shape.0[..a].to_vec();
            out.extend(&di.shape.0);
            out.extend(&d.shape.0[a + 1..]);
            Ok(vec![OperandDescriptor::new(d.data_type, out)])
        }
        Op::Pad { input, beginning_padding, ending_padding, options: o } => {
            let d = desc(*input);
            let rank = d.shape.rank();
            for (name, v) in [("beginningPadding", beginning_padding), ("endingPadding", ending_padding)] {
                if v.len() != rank {
                    return err(name, format!("length {} must equal the input rank {rank}", v.len()));
                }
            }
            let mut out = Vec::with_capacity(rank);
            for i in 0..rank {
                let (b, e, dim) = (beginning_padding[i], ending_padding[i], d.shape.0[i]);
                if o.mode == PaddingMode::Reflection && (b >= dim || e >= dim) {
                    return err("beginningPadding", format!("axis {i}: reflection padding must be smaller than the dimension {dim}"));
                }
                let n = dim as u64 + b as u64 + e as u64;
                out.push(u32::try_from(n).map_err(|_| OpError::new("endingPadding", "the padded size overflows a dimension"))?);
            }
            Ok(vec![OperandDescriptor::new(d.data_type, out)])
        }
        Op::Resample2d { input, options: o } => {
            let d = desc(*input);
            check_axes("axes", &o.axes, 4)?;
            if !matches!(o.axes, [0, 1] | [1, 2] | [2, 3]) {
                return err("axes", format!("{:?} must be two consecutive axes: [0, 1], [1, 2] or [2, 3]", o.axes));
            }
            let mut out = d.shape.0.clone();
            match (o.sizes, o.scales) {
                (Some(sizes), _) => {
                    check_positive("sizes", &sizes)?;
                    out[o.axes[0] as usize] = sizes[0];
                    out[o.axes[1] as usize] = sizes[1];
                }
                (None, scales) => {
                    let scales = scales.unwrap_or([1.0, 1.0]);
                    for i in 0..2 {
                        let s = scales[i];
                        if !(s.is_finite() && s > 0.0) {
                            return err("scales", format!("{scales:?} must be finite and greater than 0"));
                        }
                        let n = (out[o.axes[i] as usize] as f64 * s as f64).floor();
                        if !(1.0..=u32::MAX as f64).contains(&n) {
                            return err("scales", format!("scale {s} gives an output size of {n}"));
                        }
                        out[o.axes[i] as usize] = n as u32;
                    }
                }
            }
            Ok(vec![OperandDescriptor::new(d.data_type, out)])
        }
        Op::Where { condition, true_value, false_value } => {
            let (dc, dt, df) = (desc(*condition), desc(*true_value), desc(*false_value));
            let s = broadcast("trueValue", &dt.shape, "falseValue", &df.shape)?;
            let s = broadcast("values", &s, "condition", &dc.shape)?;
            Ok(vec![OperandDescriptor::new(dt.data_type, s)])
        }
        Op::Predicate { a, .. } => Ok(vec![OperandDescriptor::new(Uint8, desc(*a).shape.clone())]),
        Op::ArgMinMax { input, axis, keep_dimensions, output_data_type, .. } => {
            let d = desc(*input);
            let a = check_axis("axis", *axis, d.shape.rank())?;
            if !matches!(output_data_type, Int32 | Int64) {
                return err("outputDataType", format!("{output_data_type} is not one of int32, int64"));
            }
            let mut out = d.shape.0.clone();
            if *keep_dimensions {
                out[a] = 1;
            } else {
                out.remove(a);
            }
            Ok(vec![OperandDescriptor::new(*output_data_type, out)])
        }
        Op::CumulativeSum { input, axis, .. } => {
            let d = desc(*input);
            check_axis("axis", *axis, d.shape.rank())?;
            same(d)
        }
        Op::DequantizeLinear { input, scale, zero_point } => {
            let (d, ds, dz) = (desc(*input), desc(*scale), desc(*zero_point));
            check_blocks(d, ds, dz)?;
            Ok(vec![OperandDescriptor::new(ds.data_type, d.shape.clone())])
        }
        Op::QuantizeLinear { input, scale, zero_point } => {
            let (d, ds, dz) = (desc(*input), desc(*scale), desc(*zero_point));
            check_blocks(d, ds, dz)?;
            Ok(vec![OperandDescriptor::new(dz.data_type, d.shape.clone())])
        }
        Op::GatherElements { input, indices, axis } => {
            let (d, di) = (desc(*input), desc(*indices));
            let a = check_axis("axis", *axis, d.shape.rank())?;
            check_same_but_axis("indices", &di.shape, &d.shape, a)?;
            Ok(vec![OperandDescriptor::new(d.data_type, di.shape.clone())])
        }
        Op::GatherNd { input, indices } => {
            let (d, di) = (desc(*input), desc(*indices));
            Ok(vec![OperandDescriptor::new(d.data_type, nd_slices_shape(&d.shape, &di.shape)?)])
        }
        Op::ScatterElements { input, indices, updates, axis } => {
            let (d, di, du) = (desc(*input), desc(*indices), desc(*updates));
            let a = check_axis("axis", *axis, d.shape.rank())?;
            check_same_but_axis("indices", &di.shape, &d.shape, a)?;
            if du.shape != di.shape {
                return err("updates", format!("shape {} must equal the indices' shape {}", du.shape, di.shape));
            }
            same(d)
        }
        Op::ScatterNd { input, indices, updates } => {
            let (d, di, du) = (desc(*input), desc(*indices), desc(*updates));
            let expected = nd_slices_shape(&d.shape, &di.shape)?;
            if du.shape != expected {
                return err(
                    "updates",
                    format!("shape {} must be the indices' leading dimensions and the addressed slices' shape, {expected}", du.shape),
                );
            }
            same(d)
        }
        Op::Reverse { input, axes } => {
            let d = desc(*input);
            if let Some(axes) = axes {
                check_axes("axes", axes, d.shape.rank())?;
            }
            same(d)
        }
        Op::Tile { input, repetitions } => {
            let d = desc(*input);
            if repetitions.len() != d.shape.rank() {
                return err("repetitions", format!("length {} must equal the input rank {}", repetitions.len(), d.shape.rank()));
            }
            check_positive("repetitions", repetitions)?;
            let out = d.shape.0.iter().zip(repetitions).map(|(&x, &r)| mul_dims("repetitions", x, r)).collect::<R<Vec<_>>>()?;
            Ok(vec![OperandDescriptor::new(d.data_type, out)])
        }
        Op::Triangular { input, .. } => same(desc(*input)),
        Op::Attention { query, key, value, options: o } => {
            let (dq, dk, dv) = (desc(*query), desc(*key), desc(*value));
            let last_two = |d: &OperandDescriptor| {
                let r = d.shape.rank();
                (d.shape.0[r - 2], d.shape.0[r - 1])
            };
            let batch = |d: &OperandDescriptor| Shape(d.shape.0[..d.shape.rank() - 2].to_vec());
            let ((l, e), (s, ek), (sv, ev)) = (last_two(dq), last_two(dk), last_two(dv));
            if ek != e {
                return err("key", format!("dimension {ek} (last) must match the query's {e} (last)"));
            }
            if sv != s {
                return err("value", format!("dimension {sv} (rows) must match the key's {s} (rows)"));
            }
            let qk = broadcast("query", &batch(dq), "key", &batch(dk))?;
            let all = broadcast("query and key", &qk, "value", &batch(dv))?;
            if let Some(m) = o.mask {
                let dm = desc(m);
                let mut scores = all.0.clone();
                scores.extend([l, s]);
                let scores = Shape(scores);
                if !broadcasts_to(&dm.shape, &scores) {
                    return err("mask", format!("shape {} does not broadcast to the scores' shape {scores}", dm.shape));
                }
            }
            if !o.scale.is_finite() {
                return err("scale", format!("must be finite, got {}", o.scale));
            }
            let mut out = all.0;
            out.extend([l, ev]);
            Ok(vec![OperandDescriptor::new(dq.data_type, out)])
        }
        Op::Gru { input, weight, recurrent_weight, steps, hidden_size, options: o } => {
            let c = &o.cell;
            let dirs = recurrent_directions(o.direction);
            let (t, batch) = recurrent(
                desc,
                Recurrent { input: *input, weight: *weight, recurrent_weight: *recurrent_weight, gates: 3 },
                Some((*steps, dirs)),
                *hidden_size,
                &[("bias", c.bias, 3), ("recurrentBias", c.recurrent_bias, 3)],
                &[("initialHiddenState", o.initial_hidden_state)],
            )?;
            let state = OperandDescriptor::new(t, [dirs, batch, *hidden_size]);
            let mut out = vec![state];
            if o.return_sequence {
                out.push(OperandDescriptor::new(t, [*steps, dirs, batch, *hidden_size]));
            }
            Ok(out)
        }
        Op::GruCell { input, weight, recurrent_weight, hidden_state, hidden_size, options: c } => {
            let (t, batch) = recurrent(
                desc,
                Recurrent { input: *input, weight: *weight, recurrent_weight: *recurrent_weight, gates: 3 },
                None,
                *hidden_size,
                &[("bias", c.bias, 3), ("recurrentBias", c.recurrent_bias, 3)],
                &[("hiddenState", Some(*hidden_state))],
            )?;
            Ok(vec![OperandDescriptor::new(t, [batch, *hidden_size])])
        }
        Op::Lstm { input, weight, recurrent_weight, steps, hidden_size, options: o } => {
            let c = &o.cell;
            let dirs = recurrent_directions(o.direction);
            let (t, batch) = recurrent(
                desc,
                Recurrent { input: *input, weight: *weight, recurrent_weight: *recurrent_weight, gates: 4 },
                Some((*steps, dirs)),
                *hidden_size,
                &[("bias", c.bias, 4), ("recurrentBias", c.recurrent_bias, 4), ("peepholeWeight", c.peephole_weight, 3)],
                &[("initialHiddenState", o.initial_hidden_state), ("initialCellState", o.initial_cell_state)],
            )?;
            let state = OperandDescriptor::new(t, [dirs, batch, *hidden_size]);
            let mut out = vec![state.clone(), state];
            if o.return_sequence {
                out.push(OperandDescriptor::new(t, [*steps, dirs, batch, *hidden_size]));
            }
            Ok(out)
        }
        Op::LstmCell { input, weight, recurrent_weight, hidden_state, cell_state, hidden_size, options: c } => {
            let (t, batch) = recurrent(
                desc,
                Recurrent { input: *input, weight: *weight, recurrent_weight: *recurrent_weight, gates: 4 },
                None,
                *hidden_size,
                &[("bias", c.bias, 4), ("recurrentBias", c.recurrent_bias, 4), ("peepholeWeight", c.peephole_weight, 3)],
                &[("hiddenState", Some(*hidden_state)), ("cellState", Some(*cell_state))],
            )?;
            let state = OperandDescriptor::new(t, [batch, *hidden_size]);
            Ok(vec![state.clone(), state])
        }
    }
}

/// How many networks a recurrent operator runs: 2 for `both` directions.
pub fn recurrent_directions(direction: RecurrentDirection) -> u32 {
    match direction {
        RecurrentDirection::Both => 2,
        RecurrentDirection::Forward | RecurrentDirection::Backward => 1,
    }
}

/// The operands every recurrent operator has; `gates` is 3 (GRU) or 4 (LSTM).
struct Recurrent {
    input: OperandId,
    weight: OperandId,
    recurrent_weight: OperandId,
    gates: u32,
}

/// Checks a recurrent operator's operands and returns its data type and
/// batch size. `sequence` is `Some((steps, directions))` for `gru`/`lstm`,
/// whose input is `[steps, batch, inputSize]` and whose other operands
/// have a leading direction axis; `None` for the cells, whose input is
/// `[batch, inputSize]`. `vectors` are the optional per-gate vectors with
/// their length in blocks of `hiddenSize`; `states` are the `[batch,
/// hiddenSize]` states (optional for the sequences, given for the cells).
fn recurrent<'g>(
    desc: &dyn Fn(OperandId) -> &'g OperandDescriptor,
    ops: Recurrent,
    sequence: Option<(u32, u32)>,
    hidden_size: u32,
    vectors: &[(&str, Option<OperandId>, u32)],
    states: &[(&str, Option<OperandId>)],
) -> R<(DataType, u32)> {
    let dx = desc(ops.input);
    let t = dx.data_type;
    let (prefix, batch, input_size) = match sequence {
        Some((steps, dirs)) => {
            let d = dx.shape.dims();
            if steps == 0 {
                return err("steps", "must be greater than 0");
            }
            if d[0] != steps {
                return err("steps", format!("{steps} must equal the input's first dimension {}", d[0]));
            }
            (vec![dirs], d[1], d[2])
        }
        None => {
            let d = dx.shape.dims();
            (vec![], d[0], d[1])
        }
    };
    if hidden_size == 0 {
        return err("hiddenSize", "must be greater than 0");
    }
    let rows = mul_dims("hiddenSize", ops.gates, hidden_size)?;
    let shaped = |tail: &[u32]| Shape(prefix.iter().chain(tail).copied().collect());
    let check = |name: &str, id: OperandId, expected: Shape| -> R<()> {
        let d = desc(id);
        if d.shape != expected {
            return err(name, format!("shape must be {expected}, got {}", d.shape));
        }
        Ok(())
    };
    check("weight", ops.weight, shaped(&[rows, input_size]))?;
    check("recurrentWeight", ops.recurrent_weight, shaped(&[rows, hidden_size]))?;
    for &(name, id, blocks) in vectors {
        if let Some(id) = id {
            check(name, id, shaped(&[mul_dims(name, blocks, hidden_size)?]))?;
        }
    }
    for &(name, id) in states {
        if let Some(id) = id {
            check(name, id, shaped(&[batch, hidden_size]))?;
        }
    }
    Ok((t, batch))
}

/// `quantizeLinear` and `dequantizeLinear`: `scale` has the input's rank and
/// each of its dimensions divides the input's (one scale per block of
/// `input / scale` elements; a dimension of 1 broadcasts); `zeroPoint` has
/// `scale`'s shape.
fn check_blocks(input: &OperandDescriptor, scale: &OperandDescriptor, zero_point: &OperandDescriptor) -> R<()> {
    if scale.shape.rank() != input.shape.rank() {
        return err("scale", format!("rank {} must equal the input rank {}", scale.shape.rank(), input.shape.rank()));
    }
    if let Some(i) = (0..input.shape.rank()).find(|&i| !input.shape.0[i].is_multiple_of(scale.shape.0[i])) {
        return err(
            "scale",
            format!("dimension {i} ({}) must divide the input's {} (block-wise quantization)", scale.shape.0[i], input.shape.0[i]),
        );
    }
    if zero_point.shape != scale.shape {
        return err("zeroPoint", format!("shape {} must equal the scale's {}", zero_point.shape, scale.shape));
    }
    Ok(())
}

/// `gatherElements` and `scatterElements`: `indices` has the input's rank
/// and its shape along every axis but `axis`.
fn check_same_but_axis(name: &str, indices: &Shape, input: &Shape, axis: usize) -> R<()> {
    let same = indices.rank() == input.rank()
        && indices.0.iter().zip(&input.0).enumerate().all(|(i, (x, y))| i == axis || x == y);
    if same {
        Ok(())
    } else {
        err(name, format!("shape {indices} must equal the input's {input} except along axis {axis}"))
    }
}

/// `gatherND`'s output and `scatterND`'s updates shape: the indices' shape
/// without its last dimension `k`, then the input's dimensions after the
/// first `k` (each index tuple addresses one such slice).
fn nd_slices_shape(input: &Shape, indices: &Shape) -> R<Shape> {
    let k = *indices.0.last().unwrap_or(&0) as usize;
    if k > input.rank() {
        return err("indices", format!("the last dimension {k} exceeds the input rank {}", input.rank()));
    }
    let mut out = indices.0[..indices.rank() - 1].to_vec();
    out.extend(&input.0[k..]);
    Ok(Shape(out))
}

fn conv2d<'g>(
    d: &OperandDescriptor,
    f: &OperandDescriptor,
    o: &Conv2dOptions,
    desc: &dyn Fn(OperandId) -> &'g OperandDescriptor,
) -> R<Vec<OperandDescriptor>> {
    check_positive("strides", &o.strides)?;
    check_positive("dilations", &o.dilations)?;
    if o.groups == 0 {
        return err("groups", "must be greater than 0");
    }
    let (ha, wa) = spatial_axes(o.input_layout);
    let cin = d.shape.0[channel_axis(o.input_layout)];
    let (cout, cin_per_group, kh, kw) = conv2d_filter_dims(o.filter_layout, &f.shape);
    if !cin.is_multiple_of(o.groups) || cin / o.groups != cin_per_group {
        return err(
            "filter",
            format!("input channels per group ({cin} / groups {}) must equal the filter's {cin_per_group}", o.groups),
        );
    }
    if !cout.is_multiple_of(o.groups) {
        return err("filter", format!("output channels {cout} must be divisible by groups {}", o.groups));
    }
    check_optional_vector("bias", o.bias, desc, cout)?;
    let oh = windowed_size("input", d.shape.0[ha], kh, o.dilations[0], (o.padding[0], o.padding[1]), o.strides[0], RoundingType::Floor)?;
    let ow = windowed_size("input", d.shape.0[wa], kw, o.dilations[1], (o.padding[2], o.padding[3]), o.strides[1], RoundingType::Floor)?;
    Ok(vec![OperandDescriptor::new(d.data_type, nchw_like(o.input_layout, d.shape.0[0], cout, oh, ow))])
}

fn conv_transpose2d<'g>(
    d: &OperandDescriptor,
    f: &OperandDescriptor,
    o: &ConvTranspose2dOptions,
    desc: &dyn Fn(OperandId) -> &'g OperandDescriptor,
) -> R<Vec<OperandDescriptor>> {
    check_positive("strides", &o.strides)?;
    check_positive("dilations", &o.dilations)?;
    if o.groups == 0 {
        return err("groups", "must be greater than 0");
    }
    let (ha, wa) = spatial_axes(o.input_layout);
    let cin = d.shape.0[channel_axis(o.input_layout)];
    let (fin, cout_per_group, kh, kw) = conv_transpose2d_filter_dims(o.filter_layout, &f.shape);
    if fin != cin {
        return err("filter", format!("input channels {fin} must equal the input's {cin}"));
    }
    if !cin.is_multiple_of(o.groups) {
        return err("groups", format!("{} must divide the input channels {cin}", o.groups));
    }
    let cout = mul_dims("filter", cout_per_group, o.groups)?;
    check_optional_vector("bias", o.bias, desc, cout)?;
    for i in 0..2 {
        if o.output_padding[i] >= o.strides[i] && o.output_padding[i] >= o.dilations[i] {
            return err("outputPadding", format!("{:?} must be smaller than the strides or the dilations", o.output_padding));
        }
    }
    let mut sizes = [0u32; 2];
    for (i, (axis, k)) in [(ha, kh), (wa, kw)].into_iter().enumerate() {
        let input = d.shape.0[axis] as i64;
        let effective = (k as i64 - 1) * o.dilations[i] as i64 + 1;
        let total = (input - 1) * o.strides[i] as i64 + effective - o.padding[2 * i] as i64 - o.padding[2 * i + 1] as i64;
        let size = match o.output_sizes {
            Some(s) => {
                let s = s[i] as i64;
                if s < total || s >= total + o.strides[i] as i64 {
                    return err(
                        "outputSizes",
                        format!("{:?}: size {s} must be in [{total}, {}) for the given strides and padding", o.output_sizes.unwrap(), total + o.strides[i] as i64),
                    );
                }
                s
            }
            None => total + o.output_padding[i] as i64,
        };
        if size < 1 || size > u32::MAX as i64 {
            return err("input", format!("the output size {size} along spatial axis {i} is not a valid dimension"));
        }
        sizes[i] = size as u32;
    }
    Ok(vec![OperandDescriptor::new(d.data_type, nchw_like(o.input_layout, d.shape.0[0], cout, sizes[0], sizes[1]))])
}
