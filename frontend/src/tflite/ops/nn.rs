//! Network operators: convolutions (NHWC input, OHWI filters, as the file
//! stores them), fully connected, pooling, softmax, resize, reductions and
//! batched matrix products.
//!
//! TFLite's `SAME` padding is TensorFlow's: `out = ceil(in / stride)` and
//! the total padding `max((out - 1) * stride + (k - 1) * dilation + 1 - in,
//! 0)`, half before (rounded down) and the rest after.

use kiln_ir::{
    Conv2dFilterLayout, Conv2dOptions, ConvTranspose2dFilterLayout, ConvTranspose2dOptions, GemmOptions, InputLayout,
    InterpolationMode, Op, OperandId, PoolOp, Pool2dOptions, ReduceOp, ReduceOptions, Resample2dOptions, Shape,
};

use crate::tflite::import::{Importer, OpCx, OpResult, invalid, unsupported};

/// `Padding`: SAME (0) or VALID (1).
fn same_padding(code: i8) -> OpResult<bool> {
    match code {
        0 => Ok(true),
        1 => Ok(false),
        c => invalid(format!("padding code {c} is not defined (SAME is 0, VALID 1)")),
    }
}

/// The `[before, after]` padding of one spatial axis.
fn axis_padding(same: bool, input: u32, k: u32, stride: u32, dilation: u32) -> [u32; 2] {
    if !same {
        return [0, 0];
    }
    let (input, k, stride, dilation) = (input as u64, k as u64, stride as u64, dilation as u64);
    let effective = (k.saturating_sub(1)) * dilation + 1;
    let out = input.div_ceil(stride);
    let total = ((out.saturating_sub(1)) * stride + effective).saturating_sub(input);
    let before = total / 2;
    [before as u32, (total - before) as u32]
}

/// WebNN's `[top, bottom, left, right]` for an NHWC window.
fn window_padding(same: bool, input: &[u32], kernel: [u32; 2], strides: [u32; 2], dilations: [u32; 2]) -> [u32; 4] {
    let [t, b] = axis_padding(same, input[1], kernel[0], strides[0], dilations[0]);
    let [l, r] = axis_padding(same, input[2], kernel[1], strides[1], dilations[1]);
    [t, b, l, r]
}

/// A positive option read as `u32`.
fn positive(value: i32, what: &str) -> OpResult<u32> {
    match u32::try_from(value) {
        Ok(v) if v > 0 => Ok(v),
        _ => invalid(format!("{what} is {value}; it must be at least 1")),
    }
}

fn rank4(im: &Importer, id: OperandId, what: &str) -> OpResult<Vec<u32>> {
    let shape = im.desc(id).shape.dims().to_vec();
    if shape.len() != 4 {
        return invalid(format!("the {what} must have rank 4, it has shape {:?}", shape));
    }
    Ok(shape)
}

/// CONV_2D and DEPTHWISE_CONV_2D share their options' layout up to the
/// depth multiplier: (padding, stride_w, stride_h, [depth_multiplier],
/// activation, dilation_w, dilation_h).
fn convolution(im: &mut Importer, cx: &OpCx, depthwise: bool) -> OpResult<()> {
    cx.arity(2..=3, 1)?;
    let o = cx.options;
    let shift = usize::from(depthwise);
    let same = same_padding(o.byte(0, "padding")?)?;
    let strides = [positive(o.int(2, 0, "stride_h")?, "stride_h")?, positive(o.int(1, 0, "stride_w")?, "stride_w")?];
    let activation = o.byte(3 + shift, "fused_activation_function")?;
    let dilations = [
        positive(o.int(5 + shift, 1, "dilation_h_factor")?, "dilation_h_factor")?,
        positive(o.int(4 + shift, 1, "dilation_w_factor")?, "dilation_w_factor")?,
    ];
    let x = im.input(cx, 0)?;
    let w = im.input(cx, 1)?;
    let bias = im.opt_input(cx, 2)?;
    let xs = rank4(im, x, "input")?;
    let ws = rank4(im, w, "filter")?;
    let (groups, filter_layout) = if depthwise {
        // Filter [1, KH, KW, C * multiplier]: one group per input channel.
        if ws[0] != 1 || ws[3] % xs[3] != 0 {
            return invalid(format!("depthwise filter {ws:?} does not fit input channels {}", xs[3]));
        }
        (xs[3], Conv2dFilterLayout::Ihwo)
    } else {
        // Filter [O, KH, KW, I]; fewer filter than input channels is a grouped convolution.
        if ws[3] == 0 || xs[3] % ws[3] != 0 {
            return invalid(format!("filter {ws:?} does not fit input channels {}", xs[3]));
        }
        (xs[3] / ws[3], Conv2dFilterLayout::Ohwi)
    };
    let options = Conv2dOptions {
        padding: window_padding(same, &xs, [ws[1], ws[2]], strides, dilations),
        strides,
        dilations,
        groups,
        input_layout: InputLayout::Nhwc,
        filter_layout,
        bias,
    };
    let y = im.op1(cx, Op::Conv2d { input: x, filter: w, options })?;
    let y = im.activation(cx, y, activation)?;
    im.set_output(cx, 0, y)
}

pub fn conv_2d(im: &mut Importer, cx: &OpCx) -> OpResult<()> {
    convolution(im, cx, false)
}

pub fn depthwise_conv_2d(im: &mut Importer, cx: &OpCx) -> OpResult<()> {
    convolution(im, cx, true)
}

/// A transposed convolution of `x` by an OHWI filter `w` to the declared
/// output size. TFLite computes its padding from the output size as if the
/// output were the input of a forward convolution, and writes
/// `out[y * stride - top + ky]`: WebNN's padding `[top, bottom]` with the
/// bottom that makes the sizes agree (output padding where it would be
/// negative).
struct Transposed {
    x: OperandId,
    w: OperandId,
    bias: Option<OperandId>,
    same: bool,
    strides: [u32; 2],
    activation: i8,
}

fn transposed(im: &mut Importer, cx: &OpCx, t: Transposed) -> OpResult<()> {
    let Transposed { x, w, bias, same, strides, activation } = t;
    let xs = rank4(im, x, "input")?;
    let ws = rank4(im, w, "filter")?;
    let out = im.out_shape(cx, 0)?;
    if out.rank() != 4 {
        return invalid(format!("the output must have rank 4, it is declared {out}"));
    }
    let mut padding = [0u32; 4];
    let mut output_padding = [0u32; 2];
    for axis in 0..2 {
        let (input, k, s, o) = (xs[1 + axis] as i64, ws[1 + axis], strides[axis], out.dims()[1 + axis] as i64);
        let [before, _] = axis_padding(same, o as u32, k, s, 1);
        let full = (input - 1) * s as i64 + k as i64 - before as i64;
        let after = full - o;
        padding[2 * axis] = before;
        if after >= 0 {
            padding[2 * axis + 1] = after as u32;
        } else {
            output_padding[axis] = (-after) as u32;
        }
    }
    let options = ConvTranspose2dOptions {
        padding,
        strides,
        output_padding,
        input_layout: InputLayout::Nhwc,
        filter_layout: ConvTranspose2dFilterLayout::Ohwi,
        bias,
        ..Default::default()
    };
    let y = im.op1(cx, Op::ConvTranspose2d { input: x, filter: w, options })?;
    let y = im.activation(cx, y, activation)?;
    im.set_output(cx, 0, y)
}

/// TRANSPOSE_CONV: inputs output_shape, weights, input, optional bias.
pub fn transpose_conv(im: &mut Importer, cx: &OpCx) -> OpResult<()> {
    cx.arity(3..=4, 1)?;
    let o = cx.options;
    let same = same_padding(o.byte(0, "padding")?)?;
    let strides = [positive(o.int(2, 0, "stride_h")?, "stride_h")?, positive(o.int(1, 0, "stride_w")?, "stride_w")?];
    let activation = o.byte(3, "fused_activation_function")?;
    let shape = im.const_ints(cx, 0)?;
    let declared: Vec<i64> = im.out_shape(cx, 0)?.dims().iter().map(|&d| d as i64).collect();
    if shape != declared {
        return invalid(format!("output_shape {shape:?} differs from the declared output shape {declared:?}"));
    }
    let (w, x) = (im.input(cx, 1)?, im.input(cx, 2)?);
    let bias = im.opt_input(cx, 3)?;
    transposed(im, cx, Transposed { x, w, bias, same, strides, activation })
}

/// MediaPipe's `Convolution2DTransposeBias`: input, OHWI weights, bias;
/// its custom options are the C struct `TfLiteTransposeConvParams`
/// (`padding` with SAME = 1 and VALID = 2, `stride_width`,
/// `stride_height`, each a little-endian int32).
pub fn convolution_2d_transpose_bias(im: &mut Importer, cx: &OpCx) -> OpResult<()> {
    cx.arity(3..=3, 1)?;
    let raw = cx.custom_options;
    if raw.len() < 12 {
        return invalid(format!("custom options hold {} bytes, TfLiteTransposeConvParams needs 12", raw.len()));
    }
    let int = |k: usize| i32::from_le_bytes(raw[4 * k..4 * k + 4].try_into().expect("4 bytes"));
    let same = match int(0) {
        1 => true,
        2 => false,
        p => return invalid(format!("padding code {p} is not defined (SAME is 1, VALID 2)")),
    };
    let strides = [positive(int(2), "stride_height")?, positive(int(1), "stride_width")?];
    let (x, w, bias) = (im.input(cx, 0)?, im.input(cx, 1)?, im.input(cx, 2)?);
    transposed(im, cx, Transposed { x, w, bias: Some(bias), same, strides, activation: 0 })
}

/// FULLY_CONNECTED: `x [.., K]` as `[M, K]` times `W [N, K]` transposed,
/// plus the bias; reshaped to the declared output (`keep_num_dims`).
pub fn fully_connected(im: &mut Importer, cx: &OpCx) -> OpResult<()> {
    cx.arity(2..=3, 1)?;
    let activation = cx.options.byte(0, "fused_activation_function")?;
    if cx.options.byte(1, "weights_format")? != 0 {
        return unsupported("shuffled weights (weights_format SHUFFLED4x16INT8) are not supported");
    }
    let x = im.input(cx, 0)?;
    let w = im.input(cx, 1)?;
    let c = im.opt_input(cx, 2)?;
    let ws = im.desc(w).shape.dims().to_vec();
    if ws.len() != 2 {
        return invalid(format!("the weights must have rank 2, they have shape {ws:?}"));
    }
    let elements = im.desc(x).shape.element_count() as u64;
    let k = ws[1] as u64;
    if !elements.is_multiple_of(k) {
        return invalid(format!("the input's {elements} elements are not rows of the weights' {k} columns"));
    }
    let rows = Shape::new([(elements / k) as u32, k as u32]);
    let x = im.reshape(cx, x, &rows)?;
    let y = im.op1(cx, Op::Gemm { a: x, b: w, options: GemmOptions { c, b_transpose: true, ..Default::default() } })?;
    let y = im.activation(cx, y, activation)?;
    let out = im.out_shape(cx, 0)?;
    let y = if out.element_count() == im.desc(y).shape.element_count() { im.reshape(cx, y, &out)? } else { y };
    im.set_output(cx, 0, y)
}

/// Pool2DOptions: padding, stride_w, stride_h, filter_width,
/// filter_height, activation.
fn pool(im: &mut Importer, cx: &OpCx, kind: PoolOp) -> OpResult<()> {
    cx.arity(1..=1, 1)?;
    let o = cx.options;
    let same = same_padding(o.byte(0, "padding")?)?;
    let strides = [positive(o.int(2, 0, "stride_h")?, "stride_h")?, positive(o.int(1, 0, "stride_w")?, "stride_w")?];
    let window = [positive(o.int(4, 0, "filter_height")?, "filter_height")?, positive(o.int(3, 0, "filter_width")?, "filter_width")?];
    let activation = o.byte(5, "fused_activation_function")?;
    let x = im.input(cx, 0)?;
    let xs = rank4(im, x, "input")?;
    let options = Pool2dOptions {
        window_dimensions: Some(window),
        padding: window_padding(same, &xs, window, strides, [1, 1]),
        strides,
        layout: InputLayout::Nhwc,
        ..Default::default()
    };
    let y = im.op1(cx, Op::Pool2d { kind, input: x, options })?;
    let y = im.activation(cx, y, activation)?;
    im.set_output(cx, 0, y)
}

pub fn average_pool_2d(im: &mut Importer, cx: &OpCx) -> OpResult<()> {
    pool(im, cx, PoolOp::Average)
}

pub fn max_pool_2d(im: &mut Importer, cx: &OpCx) -> OpResult<()> {
    pool(im, cx, PoolOp::Max)
}

/// SOFTMAX along the last axis of `beta * x`.
pub fn softmax(im: &mut Importer, cx: &OpCx) -> OpResult<()> {
    cx.arity(1..=1, 1)?;
    // The schema's default (an absent field) is 0; converters always write it.
    let beta = cx.options.float(0, 0.0, "SoftmaxOptions.beta")?;
    let mut x = im.input(cx, 0)?;
    let rank = im.desc(x).shape.rank();
    if rank == 0 {
        return invalid("the input must have rank 1 or more");
    }
    if beta != 1.0 {
        let b = im.constant_f32(Shape::scalar(), &[beta])?;
        x = im.op1(cx, Op::Binary { kind: kiln_ir::BinaryOp::Mul, a: x, b })?;
    }
    let y = im.op1(cx, Op::Softmax { input: x, axis: rank as u32 - 1 })?;
    im.set_output(cx, 0, y)
}

/// A reduction over the constant axes of input 1 (ReducerOptions.keep_dims).
fn reduce(im: &mut Importer, cx: &OpCx, kind: ReduceOp) -> OpResult<()> {
    cx.arity(2..=2, 1)?;
    let keep_dimensions = cx.options.bool(0, "ReducerOptions.keep_dims")?;
    let x = im.input(cx, 0)?;
    let rank = im.desc(x).shape.rank() as i64;
    let mut axes: Vec<u32> = Vec::new();
    for a in im.const_ints(cx, 1)? {
        let a = if a < 0 { a + rank } else { a };
        if !(0..rank).contains(&a) {
            return invalid(format!("axis {a} is out of range for rank {rank}"));
        }
        if !axes.contains(&(a as u32)) {
            axes.push(a as u32);
        }
    }
    if axes.is_empty() {
        return unsupported("a reduction over no axes");
    }
    axes.sort_unstable();
    let y = im.op1(cx, Op::Reduce { kind, input: x, options: ReduceOptions { axes: Some(axes), keep_dimensions } })?;
    im.set_output(cx, 0, y)
}

pub fn mean(im: &mut Importer, cx: &OpCx) -> OpResult<()> {
    reduce(im, cx, ReduceOp::Mean)
}

pub fn sum(im: &mut Importer, cx: &OpCx) -> OpResult<()> {
    reduce(im, cx, ReduceOp::Sum)
}

pub fn reduce_max(im: &mut Importer, cx: &OpCx) -> OpResult<()> {
    reduce(im, cx, ReduceOp::Max)
}

pub fn reduce_min(im: &mut Importer, cx: &OpCx) -> OpResult<()> {
    reduce(im, cx, ReduceOp::Min)
}

pub fn reduce_prod(im: &mut Importer, cx: &OpCx) -> OpResult<()> {
    reduce(im, cx, ReduceOp::Product)
}

/// BATCH_MATMUL with `adj_x`/`adj_y` as transposes of the last two axes.
pub fn batch_matmul(im: &mut Importer, cx: &OpCx) -> OpResult<()> {
    cx.arity(2..=2, 1)?;
    let mut operands = [im.input(cx, 0)?, im.input(cx, 1)?];
    for (k, field) in [(0, 0), (1, 1)] {
        if cx.options.bool(field, "BatchMatMulOptions.adj")? {
            let rank = im.desc(operands[k]).shape.rank() as u32;
            if rank < 2 {
                return invalid("an adjoint operand must have rank 2 or more");
            }
            let mut permutation: Vec<u32> = (0..rank).collect();
            permutation.swap(rank as usize - 2, rank as usize - 1);
            operands[k] = im.op1(cx, Op::Transpose { input: operands[k], permutation: Some(permutation) })?;
        }
    }
    let y = im.op1(cx, Op::Matmul { a: operands[0], b: operands[1] })?;
    im.set_output(cx, 0, y)
}

/// The taps of one resized axis: `(lower, upper, weight of upper)` per
/// output index, by TFLite's reference kernels.
fn taps(input: u32, output: u32, align_corners: bool, half_pixel: bool, bilinear: bool) -> Vec<(u32, u32, f32)> {
    let scale = if align_corners && output > 1 {
        (input - 1) as f32 / (output - 1) as f32
    } else {
        input as f32 / output as f32
    };
    let last = input as i64 - 1;
    (0..output)
        .map(|o| {
            if bilinear {
                let s = if half_pixel { (o as f32 + 0.5) * scale - 0.5 } else { o as f32 * scale };
                let lower = (s.floor() as i64).max(0);
                let upper = (s.ceil() as i64).min(last);
                (lower.min(last) as u32, upper.max(0) as u32, s - lower as f32)
            } else {
                let offset = if half_pixel { 0.5 } else { 0.0 };
                let v = (o as f32 + offset) * scale;
                let i = if align_corners { v.round() as i64 } else { v.floor() as i64 };
                let i = i.min(last);
                let i = if half_pixel { i.max(0) } else { i };
                (i as u32, i as u32, 0.0)
            }
        })
        .collect()
}

/// Resizes along NHWC `axis` (1 or 2) by gathering the taps: one gather
/// for nearest, `x[lower] * (1 - w) + x[upper] * w` for linear.
fn resize_axis(im: &mut Importer, cx: &OpCx, x: OperandId, axis: u32, taps: &[(u32, u32, f32)]) -> OpResult<OperandId> {
    let n = taps.len() as u32;
    let lower: Vec<i64> = taps.iter().map(|t| t.0 as i64).collect();
    let indices = im.constant_ints(kiln_ir::DataType::Int32, [n], &lower)?;
    let g0 = im.op1(cx, Op::Gather { input: x, indices, axis })?;
    if taps.iter().all(|t| t.2 == 0.0 || t.0 == t.1) {
        return Ok(g0);
    }
    let upper: Vec<i64> = taps.iter().map(|t| t.1 as i64).collect();
    let indices = im.constant_ints(kiln_ir::DataType::Int32, [n], &upper)?;
    let g1 = im.op1(cx, Op::Gather { input: x, indices, axis })?;
    let dims = if axis == 1 { [1, n, 1, 1] } else { [1, 1, n, 1] };
    let w1: Vec<f32> = taps.iter().map(|t| t.2).collect();
    let w0: Vec<f32> = w1.iter().map(|w| 1.0 - w).collect();
    let (w0, w1) = (im.constant_f32(dims, &w0)?, im.constant_f32(dims, &w1)?);
    use kiln_ir::BinaryOp::{Add, Mul};
    let a = im.op1(cx, Op::Binary { kind: Mul, a: g0, b: w0 })?;
    let b = im.op1(cx, Op::Binary { kind: Mul, a: g1, b: w1 })?;
    im.op1(cx, Op::Binary { kind: Add, a, b })
}

/// RESIZE_BILINEAR and RESIZE_NEAREST_NEIGHBOR to the constant size of
/// input 1. Bilinear with half-pixel centers is WebNN's resample2d; every
/// other variant gathers TFLite's own taps.
fn resize(im: &mut Importer, cx: &OpCx, bilinear: bool, align_corners: bool, half_pixel: bool) -> OpResult<()> {
    cx.arity(2..=2, 1)?;
    if align_corners && half_pixel {
        return invalid("align_corners and half_pixel_centers are exclusive");
    }
    let x = im.input(cx, 0)?;
    let xs = rank4(im, x, "input")?;
    let size = im.const_ints(cx, 1)?;
    let [h, w] = size[..] else {
        return invalid(format!("size must hold 2 values, it holds {}", size.len()));
    };
    let (h, w) = match (u32::try_from(h), u32::try_from(w)) {
        (Ok(h), Ok(w)) if h > 0 && w > 0 => (h, w),
        _ => return invalid(format!("size [{h}, {w}] must be positive")),
    };
    let y = if bilinear && half_pixel {
        let options =
            Resample2dOptions { mode: InterpolationMode::Linear, sizes: Some([h, w]), axes: [1, 2], ..Default::default() };
        im.op1(cx, Op::Resample2d { input: x, options })?
    } else {
        let y = resize_axis(im, cx, x, 1, &taps(xs[1], h, align_corners, half_pixel, bilinear))?;
        resize_axis(im, cx, y, 2, &taps(xs[2], w, align_corners, half_pixel, bilinear))?
    };
    im.set_output(cx, 0, y)
}

pub fn resize_bilinear(im: &mut Importer, cx: &OpCx) -> OpResult<()> {
    let align = cx.options.bool(2, "ResizeBilinearOptions.align_corners")?;
    let half = cx.options.bool(3, "ResizeBilinearOptions.half_pixel_centers")?;
    resize(im, cx, true, align, half)
}

pub fn resize_nearest_neighbor(im: &mut Importer, cx: &OpCx) -> OpResult<()> {
    let align = cx.options.bool(0, "ResizeNearestNeighborOptions.align_corners")?;
    let half = cx.options.bool(1, "ResizeNearestNeighborOptions.half_pixel_centers")?;
    resize(im, cx, false, align, half)
}
