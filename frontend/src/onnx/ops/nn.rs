//! Neural-network operators: convolutions, pooling, matrix products and
//! normalizations.
//!
//! - `Conv` and `ConvTranspose` are `conv2d`/`convTranspose2d` (ONNX's
//!   weight layouts are WebNN's `oihw` and `iohw`); 1-D ones are reshaped
//!   to 2-D with a size-1 height. `auto_pad` is resolved into explicit
//!   padding. A `ConvTranspose` `output_shape` smaller than the full
//!   transposed convolution is padding (split as ONNX specifies, the
//!   larger half at the start); a larger one becomes `outputSizes` (extra
//!   elements at the end, as in the ONNX reference).
//! - `MaxPool`, `AveragePool` and `LpPool` are the 2-D pools: 1-D ones
//!   reshaped, 3-D ones a pool over height and width then one over depth
//!   (each of these pools is separable over its box window); `LpPool` with
//!   p ≠ 2 is `l2Pool2d(|x|^(p/2))^(2/p)`. The output size follows ONNX,
//!   including `ceil_mode`'s rule that a window starting in the end
//!   padding is dropped. WebNN's average pool never counts padding:
//!   `count_include_pad` with padding pads the input with zeros first.
//!   `GlobalAveragePool`/`GlobalMaxPool` are a whole-window pool (4-D) or
//!   a reduction over the spatial axes.
//! - `Gemm` is `gemm`; `MatMul` is `matmul`, 1-D operands reshaped to
//!   matrices and the added axis removed from the result, as numpy does.
//! - `BatchNormalization` (inference only), `InstanceNormalization` (any
//!   rank from 3, reshaped to 4-D) and `LayerNormalization` (a scale or
//!   bias that only broadcasts to the normalized shape is expanded; the
//!   `Mean` and `InvStdDev` outputs, when used, are computed with
//!   `reduceMean`, `sub`, `mul`, `add`, `sqrt` and `reciprocal`).
//!
//! 3-D convolutions, `MaxPool`'s `Indices` output, training-mode batch
//! normalization and integer `Conv`/`Gemm`/`MatMul` are unsupported.

use kiln_ir::*;

use super::Handler;
use super::shape::reshape;
use crate::onnx::import::{Importer, NodeCx, NodeError, NodeResult, Value, axis, invalid, unsupported};

pub const TABLE: &[(&str, Handler)] = &[
    ("AveragePool", |im, cx| pool(im, cx, PoolOp::Average)),
    ("BatchNormalization", batch_normalization),
    ("Conv", conv),
    ("ConvTranspose", conv_transpose),
    ("Gemm", gemm),
    ("GlobalAveragePool", |im, cx| global_pool(im, cx, PoolOp::Average)),
    ("GlobalMaxPool", |im, cx| global_pool(im, cx, PoolOp::Max)),
    ("InstanceNormalization", instance_normalization),
    ("LayerNormalization", layer_normalization),
    ("LpPool", |im, cx| pool(im, cx, PoolOp::L2)),
    ("MatMul", matmul),
    ("MaxPool", |im, cx| pool(im, cx, PoolOp::Max)),
];

fn dims_of(im: &Importer, id: OperandId) -> Vec<u32> {
    im.desc(id).shape.dims().to_vec()
}

fn require_float(im: &Importer, id: OperandId, what: &str) -> NodeResult<()> {
    let t = im.desc(id).data_type;
    if t.is_float() { Ok(()) } else { unsupported(format!("{what} on {t} tensors (kiln's is defined on float32 and float16)")) }
}

/// Fails when any output after the first is used.
fn only_first_output(cx: &NodeCx, what: &str) -> NodeResult<()> {
    if cx.has_outputs_from(1) {
        return unsupported(format!("the {what} output"));
    }
    Ok(())
}

/// A per-spatial-axis integer attribute, `default` when absent.
fn spatial_ints(cx: &NodeCx, name: &str, n: usize, default: u32) -> NodeResult<Vec<u32>> {
    match cx.ints(name)? {
        None => Ok(vec![default; n]),
        Some(v) if v.len() != n => invalid(format!("{name} {v:?} must have {n} values")),
        Some(v) => v
            .iter()
            .map(|&x| u32::try_from(x).or_else(|_| invalid(format!("{name} {v:?} must be non-negative"))))
            .collect(),
    }
}

/// The sliding-window attributes of a convolution or pool.
struct Window {
    strides: Vec<u32>,
    dilations: Vec<u32>,
    /// (beginning, end) padding per spatial axis.
    pads: Vec<(u32, u32)>,
    /// `auto_pad` is `SAME_UPPER` or `SAME_LOWER`.
    same: bool,
}

/// Reads `strides`, `dilations`, `pads` and `auto_pad` for an input with
/// spatial sizes `input` and a window of `kernel`.
fn window(cx: &NodeCx, input: &[u32], kernel: &[u32]) -> NodeResult<Window> {
    let n = input.len();
    let strides = spatial_ints(cx, "strides", n, 1)?;
    let dilations = spatial_ints(cx, "dilations", n, 1)?;
    if strides.contains(&0) || dilations.contains(&0) {
        return invalid(format!("strides {strides:?} and dilations {dilations:?} must be positive"));
    }
    let auto_pad = cx.string_or("auto_pad", "NOTSET")?;
    let pads = match auto_pad.as_str() {
        // Some exporters write an empty string for the default.
        "NOTSET" | "" => {
            let p = spatial_ints(cx, "pads", 2 * n, 0)?;
            (0..n).map(|i| (p[i], p[i + n])).collect()
        }
        "VALID" => vec![(0, 0); n],
        "SAME_UPPER" | "SAME_LOWER" => (0..n)
            .map(|i| {
                // In i128: kernel sizes and dilations come from the model.
                let out = i128::from(input[i].div_ceil(strides[i]));
                let effective = (i128::from(kernel[i]) - 1) * i128::from(dilations[i]) + 1;
                let total = ((out - 1) * i128::from(strides[i]) + effective - i128::from(input[i])).max(0);
                let total = u32::try_from(total).unwrap_or(u32::MAX);
                let small = total / 2;
                if auto_pad == "SAME_UPPER" { (small, total - small) } else { (total - small, small) }
            })
            .collect(),
        other => return invalid(format!("unknown auto_pad `{other}`")),
    };
    Ok(Window { strides, dilations, pads, same: auto_pad.starts_with("SAME") })
}

/// The kernel's spatial size: the weights' trailing dimensions, which a
/// `kernel_shape` attribute must repeat.
fn kernel_of(cx: &NodeCx, weights: &[u32]) -> NodeResult<Vec<u32>> {
    let kernel = weights[2..].to_vec();
    if let Some(k) = cx.ints("kernel_shape")?
        && k.iter().copied().ne(kernel.iter().map(|&x| x as i64))
    {
        return invalid(format!("kernel_shape {k:?} does not match the weights' {kernel:?}"));
    }
    Ok(kernel)
}

/// Checks the rank of a convolution input: 1-D and 2-D spatial.
fn spatial_rank(dims: &[u32], what: &str) -> NodeResult<()> {
    match dims.len() {
        3 | 4 => Ok(()),
        r if r > 4 => unsupported(format!("{}-D {what} (kiln has 1-D and 2-D)", r - 2)),
        r => invalid(format!("the input has rank {r}; {what} needs (N, C, spatial...)")),
    }
}

/// A 1-D spatial shape `[N, C, L]` as `[N, C, 1, L]`.
fn as_2d(dims: &[u32]) -> Vec<u32> {
    if dims.len() == 3 { vec![dims[0], dims[1], 1, dims[2]] } else { dims.to_vec() }
}

/// Per-spatial-axis values for 2-D, with `one` for the added height of 1-D.
fn pair(v: &[u32], one: u32) -> [u32; 2] {
    if v.len() == 1 { [one, v[0]] } else { [v[0], v[1]] }
}

/// WebNN padding `[top, bottom, left, right]`.
fn padding(pads: &[(u32, u32)]) -> [u32; 4] {
    if pads.len() == 1 { [0, 0, pads[0].0, pads[0].1] } else { [pads[0].0, pads[0].1, pads[1].0, pads[1].1] }
}

/// `Conv`, 1-D or 2-D.
fn conv(im: &mut Importer, cx: &NodeCx) -> NodeResult<Vec<Value>> {
    let x = im.input(cx, 0)?;
    let w = im.input(cx, 1)?;
    require_float(im, x, "Conv")?;
    let (xd, wd) = (dims_of(im, x), dims_of(im, w));
    spatial_rank(&xd, "convolution")?;
    if wd.len() != xd.len() {
        return invalid(format!("weights of rank {} for an input of rank {}", wd.len(), xd.len()));
    }
    let kernel = kernel_of(cx, &wd)?;
    let win = window(cx, &xd[2..], &kernel)?;
    let groups = u32::try_from(cx.int_or("group", 1)?).ok().filter(|&g| g > 0).ok_or_else(|| NodeError::Invalid("group must be positive".into()))?;
    let bias = im.opt_input(cx, 2)?;
    let x4 = reshape(im, cx, x, &as_2d(&xd))?;
    let w4 = reshape(im, cx, w, &as_2d(&wd))?;
    let options = Conv2dOptions {
        padding: padding(&win.pads),
        strides: pair(&win.strides, 1),
        dilations: pair(&win.dilations, 1),
        groups,
        bias,
        ..Default::default()
    };
    let y = im.op1(cx, Op::Conv2d { input: x4, filter: w4, options })?;
    Ok(vec![restore_rank(im, cx, y, xd.len())?.into()])
}

/// Removes the height added by [`as_2d`] from a 1-D operator's result.
fn restore_rank(im: &mut Importer, cx: &NodeCx, y: OperandId, rank: usize) -> NodeResult<OperandId> {
    if rank == 3 {
        let d = dims_of(im, y);
        reshape(im, cx, y, &[d[0], d[1], d[3]])
    } else {
        Ok(y)
    }
}

/// `ConvTranspose`, 1-D or 2-D.
fn conv_transpose(im: &mut Importer, cx: &NodeCx) -> NodeResult<Vec<Value>> {
    let x = im.input(cx, 0)?;
    let w = im.input(cx, 1)?;
    require_float(im, x, "ConvTranspose")?;
    let (xd, wd) = (dims_of(im, x), dims_of(im, w));
    spatial_rank(&xd, "transposed convolution")?;
    if wd.len() != xd.len() {
        return invalid(format!("weights of rank {} for an input of rank {}", wd.len(), xd.len()));
    }
    let n = xd.len() - 2;
    let kernel = kernel_of(cx, &wd)?;
    let strides = spatial_ints(cx, "strides", n, 1)?;
    let dilations = spatial_ints(cx, "dilations", n, 1)?;
    if strides.contains(&0) || dilations.contains(&0) {
        return invalid(format!("strides {strides:?} and dilations {dilations:?} must be positive"));
    }
    let output_padding = spatial_ints(cx, "output_padding", n, 0)?;
    let groups = u32::try_from(cx.int_or("group", 1)?).ok().filter(|&g| g > 0).ok_or_else(|| NodeError::Invalid("group must be positive".into()))?;
    let auto_pad = cx.string_or("auto_pad", "NOTSET")?;
    let output_shape = match cx.ints("output_shape")? {
        // Some exporters include the batch and channel dimensions.
        Some(s) if s.len() == n + 2 => Some(s[2..].to_vec()),
        Some(s) if s.len() == n => Some(s),
        Some(s) => return invalid(format!("output_shape {s:?} must have {n} values")),
        None => None,
    };
    // The full size of each output axis, before padding removes any.
    let full: Vec<i64> = (0..n)
        .map(|i| {
            // In i128 (kernel sizes and dilations come from the model),
            // saturated: an oversized axis fails the u32 checks below.
            let full = i128::from(strides[i]) * (i128::from(xd[i + 2]) - 1)
                + i128::from(output_padding[i])
                + (i128::from(kernel[i]) - 1) * i128::from(dilations[i])
                + 1;
            full.min(i128::from(i64::MAX)) as i64
        })
        .collect();
    let explicit = cx.ints("pads")?;
    if let Some(p) = &explicit
        && (p.len() != 2 * n || p.iter().any(|&v| v < 0))
    {
        return invalid(format!("pads {p:?} must be {} non-negative values", 2 * n));
    }
    let same = match auto_pad.as_str() {
        "SAME_UPPER" | "SAME_LOWER" => true,
        "NOTSET" | "" | "VALID" => false,
        other => return invalid(format!("unknown auto_pad `{other}`")),
    };
    // Per axis: the padding at both ends (the end may be negative: the
    // output extends past the full size) and the output size, as the ONNX
    // reference computes them.
    let mut pads: Vec<(u32, u32)> = Vec::with_capacity(n);
    let mut sizes: Vec<u32> = Vec::with_capacity(n);
    let mut extended = false;
    for i in 0..n {
        let ((begin, end), size) = if let Some(p) = &explicit {
            let pad = (p[i], p[i + n]);
            (pad, output_shape.as_ref().map_or(full[i] - pad.0 - pad.1, |t| t[i]))
        } else if same {
            let target = output_shape.as_ref().map_or(xd[i + 2] as i64 * strides[i] as i64, |t| t[i]);
            let total = full[i] - target;
            let half = total.div_euclid(2);
            (if auto_pad == "SAME_UPPER" { (half, total - half) } else { (total - half, half) }, target)
        } else if let Some(t) = &output_shape {
            // The ONNX formula when the output is smaller than the full
            // size; extra elements at the end when it is larger.
            let total = full[i] - t[i];
            (if total >= 0 { (total - total / 2, total / 2) } else { (0, 0) }, t[i])
        } else {
            ((0, 0), full[i])
        };
        if begin < 0 {
            return unsupported(format!("output_shape {output_shape:?} starts before the full output (negative start padding)"));
        }
        if size < 1 {
            return invalid(format!("the output size {size} on spatial axis {i} is not positive"));
        }
        let end = end.max(0);
        let natural = full[i] - begin - end;
        // Smaller than the padded size: crop more at the end. Larger:
        // `outputSizes`, which WebNN allows up to a stride past the size
        // without output padding.
        let end = if size <= natural { end + natural - size } else { end };
        if size > natural {
            if size - (natural - output_padding[i] as i64) >= strides[i] as i64 {
                return unsupported(format!(
                    "output size {size} on spatial axis {i} is a stride or more past the full output {}",
                    natural - output_padding[i] as i64
                ));
            }
            extended = true;
        }
        let fits = |v: i64| u32::try_from(v).or_else(|_| unsupported("a padding exceeds 2^32 - 1"));
        pads.push((fits(begin)?, fits(end)?));
        sizes.push(fits(size)?);
    }
    // With `outputSizes`, WebNN drops the output padding: every axis must
    // then be less than a stride past its unpadded size.
    if extended
        && (0..n).any(|i| sizes[i] as i64 - (full[i] - output_padding[i] as i64 - pads[i].0 as i64 - pads[i].1 as i64) >= strides[i] as i64)
    {
        return unsupported(format!("output_shape {output_shape:?} with output_padding {output_padding:?}"));
    }
    let output_sizes = extended.then(|| pair(&sizes, 1));
    let output_padding = if extended { [0, 0] } else { pair(&output_padding, 0) };
    let bias = im.opt_input(cx, 2)?;
    let x4 = reshape(im, cx, x, &as_2d(&xd))?;
    let w4 = reshape(im, cx, w, &as_2d(&wd))?;
    let options = ConvTranspose2dOptions {
        padding: padding(&pads),
        strides: pair(&strides, 1),
        dilations: pair(&dilations, 1),
        output_padding,
        output_sizes,
        groups,
        bias,
        ..Default::default()
    };
    let y = im.op1(cx, Op::ConvTranspose2d { input: x4, filter: w4, options })?;
    Ok(vec![restore_rank(im, cx, y, xd.len())?.into()])
}

/// ONNX's pooled output size along one axis.
fn pooled_size(input: u32, kernel: u32, dilation: u32, stride: u32, pads: (u32, u32), ceil: bool) -> NodeResult<u32> {
    let effective = (kernel as i128 - 1) * dilation as i128 + 1;
    let span = input as i128 + pads.0 as i128 + pads.1 as i128 - effective;
    if span < 0 {
        return invalid(format!("the window ({effective}) is larger than the padded input ({})", span + effective));
    }
    let stride = stride as i128;
    let mut out = if ceil { (span + stride - 1) / stride + 1 } else { span / stride + 1 };
    // A last window that would start in the end padding is dropped.
    if ceil && (out - 1) * stride >= input as i128 + pads.0 as i128 {
        out -= 1;
    }
    u32::try_from(out).or_else(|_| unsupported("the output size exceeds 2^32 - 1"))
}

/// One WebNN pool over the two spatial axes of the 4-D `input`, with
/// (beginning, end) `pads` and ONNX's output `sizes`.
#[allow(clippy::too_many_arguments)]
fn pool2d(
    im: &mut Importer,
    cx: &NodeCx,
    kind: PoolOp,
    input: OperandId,
    window: [u32; 2],
    pads: [(u32, u32); 2],
    strides: [u32; 2],
    dilations: [u32; 2],
    sizes: [u32; 2],
) -> NodeResult<OperandId> {
    let d = dims_of(im, input);
    // WebNN takes the floor or the ceil size; ONNX's is one of them unless
    // a whole window lies in the padding.
    let (mut floor, mut ceil) = ([0i128; 2], [0i128; 2]);
    for i in 0..2 {
        let span = d[2 + i] as i128 + pads[i].0 as i128 + pads[i].1 as i128 - ((window[i] as i128 - 1) * dilations[i] as i128 + 1);
        let stride = strides[i] as i128;
        (floor[i], ceil[i]) = (span / stride + 1, (span + stride - 1) / stride + 1);
        if sizes[i] as i128 != floor[i] && sizes[i] as i128 != ceil[i] {
            return unsupported(format!("output size {} (a window lies wholly in the padding)", sizes[i]));
        }
    }
    let sizes = sizes.map(|s| s as i128);
    let (output_shape_rounding, output_sizes) = if sizes == floor {
        (RoundingType::Floor, None)
    } else if sizes == ceil {
        (RoundingType::Ceil, None)
    } else {
        (RoundingType::Floor, Some(sizes.map(|s| s as u32)))
    };
    let options = Pool2dOptions {
        window_dimensions: Some(window),
        padding: [pads[0].0, pads[0].1, pads[1].0, pads[1].1],
        strides,
        dilations,
        output_shape_rounding,
        output_sizes,
        ..Default::default()
    };
    im.op1(cx, Op::Pool2d { kind, input, options })
}

/// `MaxPool`, `AveragePool` and `LpPool`, 1-D to 3-D.
///
/// Every pool here is separable over a box window (the max of maxes, the
/// mean of means (each mean counts the window's elements inside the input
/// along its axes, so their product is the box's count), the L2 norm of
/// L2 norms), so a 3-D pool is a 2-D pool over height and width, then one
/// over depth. `LpPool` with p ≠ 2 is `l2Pool2d(|x|^(p/2))^(2/p)`.
fn pool(im: &mut Importer, cx: &NodeCx, kind: PoolOp) -> NodeResult<Vec<Value>> {
    let x = im.input(cx, 0)?;
    let xd = dims_of(im, x);
    if !(3..=5).contains(&xd.len()) {
        return match xd.len() {
            r if r > 5 => unsupported(format!("{}-D pooling (kiln has 1-D to 3-D)", r - 2)),
            r => invalid(format!("the input has rank {r}; pooling needs (N, C, spatial...)")),
        };
    }
    if kind != PoolOp::Max {
        require_float(im, x, if kind == PoolOp::Average { "AveragePool" } else { "LpPool" })?;
    }
    if kind == PoolOp::Max {
        only_first_output(cx, "Indices")?;
    }
    let norm = if kind == PoolOp::L2 { cx.int_or("p", 2)? } else { 2 };
    if norm < 1 {
        return invalid(format!("p = {norm} must be at least 1"));
    }
    let n = xd.len() - 2;
    let Some(kernel) = cx.ints("kernel_shape")? else {
        return invalid("kernel_shape is required");
    };
    if kernel.len() != n || kernel.iter().any(|&k| k < 1 || k > u32::MAX as i64) {
        return invalid(format!("kernel_shape {kernel:?} must have {n} positive values"));
    }
    let kernel: Vec<u32> = kernel.iter().map(|&k| k as u32).collect();
    let win = window(cx, &xd[2..], &kernel)?;
    let ceil = !win.same && cx.int_or("ceil_mode", 0)? != 0;
    let out: Vec<u32> = (0..n)
        .map(|i| pooled_size(xd[i + 2], kernel[i], win.dilations[i], win.strides[i], win.pads[i], ceil))
        .collect::<NodeResult<_>>()?;
    let mut pads = win.pads.clone();
    let mut input = x;
    let include_pad = kind == PoolOp::Average && cx.int_or("count_include_pad", 0)? != 0;
    if include_pad && pads.iter().any(|&(b, e)| b > 0 || e > 0) {
        let mut beginning_padding = vec![0, 0];
        let mut ending_padding = vec![0, 0];
        beginning_padding.extend(pads.iter().map(|p| p.0));
        ending_padding.extend(pads.iter().map(|p| p.1));
        input = im.op1(cx, Op::Pad { input, beginning_padding, ending_padding, options: PadOptions::default() })?;
        pads = vec![(0, 0); n];
    }
    // (Σ|x|^p)^(1/p) = l2Pool2d(|x|^(p/2))^(2/p).
    let power = |im: &mut Importer, x: OperandId, e: f64| -> NodeResult<OperandId> {
        let t = im.desc(x).data_type;
        let e = im.scalar(t, e)?;
        im.op1(cx, Op::Binary { kind: BinaryOp::Pow, a: x, b: e })
    };
    if norm != 2 {
        let a = im.unary(cx, UnaryOp::Abs, input)?;
        input = power(im, a, norm as f64 / 2.0)?;
    }
    let d = dims_of(im, input);
    let (nb, c) = (d[0], d[1]);
    let last2 = n - n.min(2);
    let two = |v: &[u32], one: u32| -> [u32; 2] { if v.len() == 1 { [one, v[0]] } else { [v[0], v[1]] } };
    let plane = |v: &[(u32, u32)]| -> [(u32, u32); 2] { if v.len() == 1 { [(0, 0), v[0]] } else { [v[0], v[1]] } };
    // The last (up to) two spatial axes.
    let lead: u32 = d[2..2 + last2].iter().product();
    let x4 = reshape(im, cx, input, &[nb, c * lead, if n == 1 { 1 } else { d[d.len() - 2] }, d[d.len() - 1]])?;
    let mut y = pool2d(
        im,
        cx,
        kind,
        x4,
        two(&kernel[last2..], 1),
        plane(&pads[last2..]),
        two(&win.strides[last2..], 1),
        two(&win.dilations[last2..], 1),
        two(&out[last2..], 1),
    )?;
    if n == 3 {
        // Then depth, over [N, C, D, H' * W'].
        let plane_size = out[1] * out[2];
        let y4 = reshape(im, cx, y, &[nb, c, d[2], plane_size])?;
        y = pool2d(
            im,
            cx,
            kind,
            y4,
            [kernel[0], 1],
            [pads[0], (0, 0)],
            [win.strides[0], 1],
            [win.dilations[0], 1],
            [out[0], plane_size],
        )?;
    }
    if norm != 2 {
        y = power(im, y, 2.0 / norm as f64)?;
    }
    let mut final_dims = vec![nb, c];
    final_dims.extend(&out);
    Ok(vec![reshape(im, cx, y, &final_dims)?.into()])
}

/// `GlobalAveragePool` and `GlobalMaxPool`.
fn global_pool(im: &mut Importer, cx: &NodeCx, kind: PoolOp) -> NodeResult<Vec<Value>> {
    let x = im.input(cx, 0)?;
    let xd = dims_of(im, x);
    if xd.len() < 3 {
        return invalid(format!("the input has rank {}; global pooling needs (N, C, spatial...)", xd.len()));
    }
    if kind == PoolOp::Average {
        require_float(im, x, "GlobalAveragePool")?;
    }
    if xd.len() == 4 {
        return Ok(vec![im.op1(cx, Op::Pool2d { kind, input: x, options: Pool2dOptions::default() })?.into()]);
    }
    let reduce = if kind == PoolOp::Average { ReduceOp::Mean } else { ReduceOp::Max };
    let options = ReduceOptions { axes: Some((2..xd.len() as u32).collect()), keep_dimensions: true };
    Ok(vec![im.op1(cx, Op::Reduce { kind: reduce, input: x, options })?.into()])
}

/// `Gemm`: `alpha * A' * B' + beta * C`.
fn gemm(im: &mut Importer, cx: &NodeCx) -> NodeResult<Vec<Value>> {
    let a = im.input(cx, 0)?;
    let b = im.input(cx, 1)?;
    require_float(im, a, "Gemm")?;
    let c = im.opt_input(cx, 2)?;
    let options = GemmOptions {
        c,
        alpha: cx.float_or("alpha", 1.0)? as f64,
        beta: cx.float_or("beta", 1.0)? as f64,
        a_transpose: cx.int_or("transA", 0)? != 0,
        b_transpose: cx.int_or("transB", 0)? != 0,
    };
    Ok(vec![im.op1(cx, Op::Gemm { a, b, options })?.into()])
}

/// `MatMul` with numpy's rules: 1-D operands become matrices for the
/// product, and the added axis is removed from the result.
fn matmul(im: &mut Importer, cx: &NodeCx) -> NodeResult<Vec<Value>> {
    let a = im.input(cx, 0)?;
    let b = im.input(cx, 1)?;
    require_float(im, a, "MatMul")?;
    let (ad, bd) = (dims_of(im, a), dims_of(im, b));
    if ad.is_empty() || bd.is_empty() {
        return invalid("MatMul operands must have rank 1 or more");
    }
    let a2 = if ad.len() == 1 { reshape(im, cx, a, &[1, ad[0]])? } else { a };
    let b2 = if bd.len() == 1 { reshape(im, cx, b, &[bd[0], 1])? } else { b };
    let y = im.op1(cx, Op::Matmul { a: a2, b: b2 })?;
    if ad.len() > 1 && bd.len() > 1 {
        return Ok(vec![y.into()]);
    }
    let mut d = dims_of(im, y);
    if bd.len() == 1 {
        d.pop();
    }
    if ad.len() == 1 {
        d.remove(d.len() - 1 - usize::from(bd.len() > 1));
    }
    Ok(vec![reshape(im, cx, y, &d)?.into()])
}

/// `BatchNormalization` in inference mode.
fn batch_normalization(im: &mut Importer, cx: &NodeCx) -> NodeResult<Vec<Value>> {
    if cx.int_or("training_mode", 0)? != 0 {
        return unsupported("training mode");
    }
    if cx.opset < 9 && cx.int_or("spatial", 1)? == 0 {
        return unsupported("spatial = 0 (per-activation statistics)");
    }
    only_first_output(cx, "running mean, variance and saved statistics (training)")?;
    let input = im.input(cx, 0)?;
    require_float(im, input, "BatchNormalization")?;
    if im.desc(input).shape.rank() < 2 {
        return invalid("the input must have rank 2 or more");
    }
    let scale = im.input(cx, 1)?;
    let bias = im.input(cx, 2)?;
    let mean = im.input(cx, 3)?;
    let variance = im.input(cx, 4)?;
    let options = BatchNormalizationOptions {
        scale: Some(scale),
        bias: Some(bias),
        axis: 1,
        epsilon: cx.float_or("epsilon", 1e-5)? as f64,
    };
    Ok(vec![im.op1(cx, Op::BatchNormalization { input, mean, variance, options })?.into()])
}

/// `InstanceNormalization`: inputs of rank 3 and more are normalised as
/// `[N, C, spatial elements, 1]`.
fn instance_normalization(im: &mut Importer, cx: &NodeCx) -> NodeResult<Vec<Value>> {
    let x = im.input(cx, 0)?;
    require_float(im, x, "InstanceNormalization")?;
    let xd = dims_of(im, x);
    if xd.len() < 3 {
        return invalid(format!("the input has rank {}; instance normalization needs (N, C, spatial...)", xd.len()));
    }
    let scale = im.input(cx, 1)?;
    let bias = im.input(cx, 2)?;
    let spatial = xd[2..].iter().try_fold(1u32, |n, &d| n.checked_mul(d)).ok_or_else(|| NodeError::Unsupported("the spatial size exceeds 2^32 - 1".into()))?;
    let x4 = if xd.len() == 4 { x } else { reshape(im, cx, x, &[xd[0], xd[1], spatial, 1])? };
    let options = InstanceNormalizationOptions {
        scale: Some(scale),
        bias: Some(bias),
        epsilon: cx.float_or("epsilon", 1e-5)? as f64,
        ..Default::default()
    };
    let y = im.op1(cx, Op::InstanceNormalization { input: x4, options })?;
    Ok(vec![reshape(im, cx, y, &xd)?.into()])
}

/// `LayerNormalization` over the axes from `axis` to the last.
fn layer_normalization(im: &mut Importer, cx: &NodeCx) -> NodeResult<Vec<Value>> {
    let x = im.input(cx, 0)?;
    require_float(im, x, "LayerNormalization")?;
    let xd = dims_of(im, x);
    let first = axis(cx.int_or("axis", -1)?, xd.len())? as usize;
    let normalized = xd[first..].to_vec();
    let fit = |im: &mut Importer, i: usize| -> NodeResult<Option<OperandId>> {
        let Some(id) = im.opt_input(cx, i)? else { return Ok(None) };
        let d = dims_of(im, id);
        if d == normalized {
            return Ok(Some(id));
        }
        if d.iter().product::<u32>() == normalized.iter().product::<u32>() && d.len() <= normalized.len() {
            return Ok(Some(reshape(im, cx, id, &normalized)?));
        }
        let broadcasts = d.len() <= normalized.len()
            && d.iter().rev().zip(normalized.iter().rev()).all(|(&s, &t)| s == t || s == 1);
        if !broadcasts {
            return invalid(format!("input {i} of shape {} does not broadcast to {}", Shape::new(d), Shape::new(normalized.clone())));
        }
        Ok(Some(im.op1(cx, Op::Expand { input: id, new_shape: normalized.clone() })?))
    };
    let scale = fit(im, 1)?;
    let bias = fit(im, 2)?;
    let axes: Vec<u32> = (first as u32..xd.len() as u32).collect();
    let epsilon = cx.float_or("epsilon", 1e-5)? as f64;
    let options = LayerNormalizationOptions { scale, bias, axes: Some(axes.clone()), epsilon };
    let mut outputs: Vec<Value> = vec![im.op1(cx, Op::LayerNormalization { input: x, options })?.into()];
    // Mean and InvStdDev (1 / sqrt(variance + epsilon)), kept as
    // size-1 normalized axes, when the model uses them; computed in (and
    // typed as) `stash_type`, float32 by default.
    if cx.has_outputs_from(1) {
        let stash = i32::try_from(cx.int_or("stash_type", 1)?).unwrap_or(-1);
        let t = crate::onnx::tensor::data_type(stash)
            .ok()
            .filter(|t| t.is_float())
            .ok_or_else(|| NodeError::Unsupported(format!("stash_type {}", crate::onnx::proto::elem_type::name(stash))))?;
        let x = if im.desc(x).data_type == t { x } else { im.op1(cx, Op::Cast { input: x, data_type: t })? };
        let reduce = ReduceOptions { axes: Some(axes), keep_dimensions: true };
        let mean = im.op1(cx, Op::Reduce { kind: ReduceOp::Mean, input: x, options: reduce.clone() })?;
        let centred = im.op1(cx, Op::Binary { kind: BinaryOp::Sub, a: x, b: mean })?;
        let squared = im.op1(cx, Op::Binary { kind: BinaryOp::Mul, a: centred, b: centred })?;
        let variance = im.op1(cx, Op::Reduce { kind: ReduceOp::Mean, input: squared, options: reduce })?;
        let eps = im.scalar(t, epsilon)?;
        let shifted = im.op1(cx, Op::Binary { kind: BinaryOp::Add, a: variance, b: eps })?;
        let root = im.unary(cx, UnaryOp::Sqrt, shifted)?;
        let inv = im.unary(cx, UnaryOp::Reciprocal, root)?;
        outputs.extend([mean.into(), inv.into()]);
    }
    Ok(outputs)
}
