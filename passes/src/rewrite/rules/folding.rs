//! Constant work folded into the weights of a convolution or a matrix
//! product: per-channel affine maps after a conv2d (batch normalization, a
//! multiply, an add), zero padding before one, and an add after a matmul.
//! New weights are computed in f64 from the constants and stored in the
//! filter's data type.

use egg::Id;
use kiln_ir::infer::channel_axis;
use kiln_ir::{
    BinaryOp, Conv2dFilterLayout, Conv2dOptions, GemmOptions, InputLayout, Number, Op, OperandDescriptor, PaddingMode,
    Shape, Tensor, Values,
};

use super::{find, float_values, op, Rule};
use crate::rewrite::egraph::{constant, desc, slot, EGraph, ENode, Term};

pub const RULES: &[Rule] = &[
    Rule { name: "batchnorm-into-conv", apply: batchnorm_into_conv },
    Rule { name: "mul-into-conv", apply: mul_into_conv },
    Rule { name: "add-into-conv", apply: add_into_conv },
    Rule { name: "pad-into-conv", apply: pad_into_conv },
    Rule { name: "matmul-add-to-gemm", apply: matmul_add_to_gemm },
];

/// A conv2d with a constant float filter (and bias, if any), found in a
/// class: its operand classes and options.
struct Conv {
    input: Id,
    /// The filter's and bias's classes (constants), converted only when a
    /// rule builds new weights.
    filter: Id,
    filter_desc: OperandDescriptor,
    bias: Option<Id>,
    options: Conv2dOptions,
    /// Output channels.
    channels: usize,
}

fn conv_in(egraph: &EGraph, id: Id) -> Option<Conv> {
    let (Op::Conv2d { options, .. }, children) = find(egraph, id, |o| matches!(o, Op::Conv2d { .. }))? else {
        return None;
    };
    let float_constant = |id: Id| constant(egraph, id).is_some_and(|t| t.data_type().is_float());
    if !float_constant(children[1]) || (options.bias.is_some() && !float_constant(children[2])) {
        return None;
    }
    let filter = children[1];
    let bias = options.bias.map(|_| children[2]);
    let channels = desc(egraph, id).shape.dims()[channel_axis(options.input_layout)] as usize;
    Some(Conv {
        input: children[0],
        filter,
        filter_desc: desc(egraph, children[1]).clone(),
        bias,
        options: options.clone(),
        channels,
    })
}

/// The filter axis that runs over output channels.
fn filter_out_axis(layout: Conv2dFilterLayout) -> usize {
    match layout {
        Conv2dFilterLayout::Oihw | Conv2dFilterLayout::Ohwi => 0,
        Conv2dFilterLayout::Hwio | Conv2dFilterLayout::Ihwo => 3,
    }
}

/// `conv` with output channel `c` scaled by `scale[c]` and shifted by
/// `shift[c]`: the filter's channel-`c` weights times `scale[c]`, the bias
/// `bias[c] * scale[c] + shift[c]`.
fn affine_conv(egraph: &EGraph, conv: Conv, scale: &[f64], shift: &[f64]) -> Option<Term> {
    let dims = conv.filter_desc.shape.dims();
    let axis = filter_out_axis(conv.options.filter_layout);
    let stride: usize = dims[axis + 1..].iter().map(|&d| d as usize).product();
    let extent = dims[axis] as usize;
    if extent != conv.channels || scale.len() != extent || shift.len() != extent {
        return None;
    }
    // An add leaves the filter as it is.
    let filter = if scale.iter().all(|&s| s == 1.0) {
        Term::Class(conv.filter)
    } else {
        let filter = constant(egraph, conv.filter)?;
        Term::Constant(scaled(filter, |i| scale[(i / stride) % extent])?)
    };
    let bias_dtype = conv.filter_desc.data_type;
    let old_bias = match conv.bias {
        Some(b) => float_values(egraph, b)?,
        None => vec![0.0; extent],
    };
    let bias: Vec<f64> = (0..extent).map(|c| old_bias[c] * scale[c] + shift[c]).collect();
    let bias_desc = OperandDescriptor::new(bias_dtype, Shape::new(vec![extent as u32]));
    let bias = Tensor::from_values(bias_desc, &Values::Float(bias)).ok()?;
    let options = Conv2dOptions { bias: Some(slot(2)), ..conv.options };
    Some(Term::Op(
        Op::Conv2d { input: slot(0), filter: slot(1), options },
        vec![Term::Class(conv.input), filter, Term::Constant(bias)],
    ))
}

/// `t` (a float tensor) with element `i` multiplied by `factor(i)`, in f64
/// and rounded once (f32 read and written directly, other types through
/// [`Values`]).
fn scaled(t: &Tensor, factor: impl Fn(usize) -> f64) -> Option<Tensor> {
    if t.data_type() == kiln_ir::DataType::Float32 {
        let bytes = t
            .bytes()
            .chunks_exact(4)
            .enumerate()
            .flat_map(|(i, w)| ((f32::from_le_bytes(w.try_into().expect("4 bytes")) as f64 * factor(i)) as f32).to_le_bytes())
            .collect();
        return Tensor::from_bytes(t.desc().clone(), bytes).ok();
    }
    let Values::Float(v) = t.values() else { return None };
    let v = v.iter().enumerate().map(|(i, &x)| x * factor(i)).collect();
    Tensor::from_values(t.desc().clone(), &Values::Float(v)).ok()
}

/// The values of constant class `id` per output channel of a rank-4
/// result whose channels run along `axis`: `id` broadcasts to the result
/// with every dimension 1 but the channel one (a scalar gives every
/// channel its value).
fn per_channel(egraph: &EGraph, id: Id, axis: usize, channels: usize) -> Option<Vec<f64>> {
    let values = float_values(egraph, id)?;
    let dims = desc(egraph, id).shape.dims();
    if dims.len() > 4 {
        return None;
    }
    let pad = 4 - dims.len();
    let varies = (0..dims.len()).filter(|&j| dims[j] != 1).collect::<Vec<_>>();
    match varies.as_slice() {
        [] => Some(vec![values[0]; channels]),
        [j] if j + pad == axis && dims[*j] as usize == channels => Some(values),
        _ => None,
    }
}

/// `batchNormalization(conv2d(x, w, b), mean, var, scale, bias)` over the
/// conv's channel axis, everything constant, is `conv2d(x, w', b')`.
fn batchnorm_into_conv(egraph: &EGraph, node: &ENode) -> Option<Term> {
    let (Op::BatchNormalization { options, .. }, children) = op(node)? else { return None };
    let conv = conv_in(egraph, children[0])?;
    if options.axis as usize != channel_axis(conv.options.input_layout) {
        return None;
    }
    let mean = float_values(egraph, children[1])?;
    let var = float_values(egraph, children[2])?;
    let mut next = 3;
    let mut operand = |present: bool| -> Option<Option<Vec<f64>>> {
        if !present {
            return Some(None);
        }
        next += 1;
        float_values(egraph, children[next - 1]).map(Some)
    };
    let gamma = operand(options.scale.is_some())?.unwrap_or_else(|| vec![1.0; mean.len()]);
    let beta = operand(options.bias.is_some())?.unwrap_or_else(|| vec![0.0; mean.len()]);
    let scale: Vec<f64> = (0..mean.len()).map(|c| gamma[c] / (var[c] + options.epsilon).sqrt()).collect();
    let shift: Vec<f64> = (0..mean.len()).map(|c| beta[c] - mean[c] * scale[c]).collect();
    affine_conv(egraph, conv, &scale, &shift)
}

/// `conv2d(...)` and a per-channel constant `k` as the operands of a
/// binary `kind` (either order), with the result's descriptor the conv's.
fn conv_and_channels(egraph: &EGraph, node: &ENode, kind: BinaryOp) -> Option<(Conv, Vec<f64>)> {
    let (Op::Binary { kind: k, .. }, &[a, b]) = op(node)? else { return None };
    if *k != kind {
        return None;
    }
    [(a, b), (b, a)].into_iter().find_map(|(c, k)| {
        let conv = conv_in(egraph, c)?;
        let result = crate::rewrite::egraph::infer_op(egraph, op(node)?.0, &[a, b]).ok()?;
        if desc(egraph, c) != &result[0] {
            return None;
        }
        let values = per_channel(egraph, k, channel_axis(conv.options.input_layout), conv.channels)?;
        Some((conv, values))
    })
}

/// `conv2d(x, w, b) * k` (either order) for a per-channel constant `k` is
/// `conv2d(x, w·k, b·k)`.
fn mul_into_conv(egraph: &EGraph, node: &ENode) -> Option<Term> {
    let (conv, k) = conv_and_channels(egraph, node, BinaryOp::Mul)?;
    let zero = vec![0.0; k.len()];
    affine_conv(egraph, conv, &k, &zero)
}

/// `conv2d(x, w, b) + k` (either order) for a per-channel constant `k` is
/// `conv2d(x, w, b + k)`.
fn add_into_conv(egraph: &EGraph, node: &ENode) -> Option<Term> {
    let (conv, k) = conv_and_channels(egraph, node, BinaryOp::Add)?;
    let one = vec![1.0; k.len()];
    affine_conv(egraph, conv, &one, &k)
}

/// `conv2d(pad(x, zeros on the spatial axes only), w)` is `conv2d(x, w)`
/// with the padding added to the conv's.
fn pad_into_conv(egraph: &EGraph, node: &ENode) -> Option<Term> {
    let (Op::Conv2d { options, .. }, children) = op(node)? else { return None };
    let (Op::Pad { beginning_padding, ending_padding, options: pad, .. }, &[x]) =
        find(egraph, children[0], |o| matches!(o, Op::Pad { .. }))?
    else {
        return None;
    };
    let zero = match pad.value {
        Number::Float(v) => v == 0.0,
        Number::Int(v) => v == 0,
    };
    if pad.mode != PaddingMode::Constant || !zero {
        return None;
    }
    let (h, w) = match options.input_layout {
        InputLayout::Nchw => (2, 3),
        InputLayout::Nhwc => (1, 2),
    };
    if beginning_padding.len() != 4 || ending_padding.len() != 4 {
        return None;
    }
    if !(0..4).all(|j| j == h || j == w || (beginning_padding[j] == 0 && ending_padding[j] == 0)) {
        return None;
    }
    let p = options.padding;
    let padding = [
        p[0].checked_add(beginning_padding[h])?,
        p[1].checked_add(ending_padding[h])?,
        p[2].checked_add(beginning_padding[w])?,
        p[3].checked_add(ending_padding[w])?,
    ];
    let mut options = Conv2dOptions { padding, ..options.clone() };
    let mut terms = vec![Term::Class(x), Term::Class(children[1])];
    if options.bias.is_some() {
        options.bias = Some(slot(2));
        terms.push(Term::Class(children[2]));
    }
    Some(Term::Op(Op::Conv2d { input: slot(0), filter: slot(1), options }, terms))
}

/// `matmul(a, b) + c` (either order) for 2-D `a`, `b` and a `c` that
/// broadcasts to the product is `gemm(a, b, c)`.
fn matmul_add_to_gemm(egraph: &EGraph, node: &ENode) -> Option<Term> {
    let (Op::Binary { kind: BinaryOp::Add, .. }, &[l, r]) = op(node)? else { return None };
    let result = crate::rewrite::egraph::infer_op(egraph, op(node)?.0, &[l, r]).ok()?;
    [(l, r), (r, l)].into_iter().find_map(|(m, c)| {
        let (_, &[a, b]) = find(egraph, m, |o| matches!(o, Op::Matmul { .. }))? else { return None };
        let rank2 = |x| desc(egraph, x).shape.rank() == 2;
        if !(rank2(a) && rank2(b)) || desc(egraph, m) != &result[0] {
            return None;
        }
        let options = GemmOptions { c: Some(slot(2)), ..GemmOptions::default() };
        Some(Term::Op(
            Op::Gemm { a: slot(0), b: slot(1), options },
            vec![Term::Class(a), Term::Class(b), Term::Class(c)],
        ))
    })
}
