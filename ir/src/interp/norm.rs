//! batchNormalization, layerNormalization, instanceNormalization, softmax.

use super::reduce::group_map;
use super::{affine_map, encode_f64, floats, strides_of, Res};
use crate::infer::{channel_axis, resolved_layer_norm_axes, spatial_axes};
use crate::{BatchNormalizationOptions, InstanceNormalizationOptions, LayerNormalizationOptions, OperandDescriptor, Tensor};

/// The channel of every element: its index along `axis`.
fn channel_map(shape: &[u32], axis: usize) -> Vec<usize> {
    let mut strides = vec![0usize; shape.len()];
    strides[axis] = 1;
    affine_map(shape, 0, &strides)
}

/// `scale[c] * (x - mean[c]) / sqrt(variance[c] + epsilon) + bias[c]`, with
/// `c` the index along `axis`; scale defaults to 1 and bias to 0.
pub(super) fn batch_normalization(
    input: &Tensor,
    mean: &Tensor,
    variance: &Tensor,
    scale: Option<&Tensor>,
    bias: Option<&Tensor>,
    o: &BatchNormalizationOptions,
    out: &OperandDescriptor,
) -> Res<Tensor> {
    let x = floats(input)?;
    let (mean, var) = (floats(mean)?, floats(variance)?);
    let scale = scale.map(floats).transpose()?;
    let bias = bias.map(floats).transpose()?;
    let channel = channel_map(input.shape().dims(), o.axis as usize);
    let y = x
        .iter()
        .zip(&channel)
        .map(|(&v, &c)| {
            let normalized = (v - mean[c]) / (var[c] + o.epsilon).sqrt();
            scale.as_ref().map_or(1.0, |s| s[c]) * normalized + bias.as_ref().map_or(0.0, |b| b[c])
        })
        .collect();
    encode_f64(out, y)
}

/// Normalizes `x` over `axes` (population mean and variance per group of the
/// other axes), then applies `scale[param[i]]` and `bias[param[i]]`.
fn normalize(
    x: &[f64],
    shape: &[u32],
    axes: &[u32],
    epsilon: f64,
    scale: Option<Vec<f64>>,
    bias: Option<Vec<f64>>,
    param: &[usize],
) -> Vec<f64> {
    let (group, groups) = group_map(shape, axes);
    let per_group = if groups == 0 { 0.0 } else { x.len() as f64 / groups as f64 };
    let mut mean = vec![0.0f64; groups];
    for (&v, &g) in x.iter().zip(&group) {
        mean[g] += v;
    }
    mean.iter_mut().for_each(|m| *m /= per_group);
    let mut var = vec![0.0f64; groups];
    for (&v, &g) in x.iter().zip(&group) {
        var[g] += (v - mean[g]) * (v - mean[g]);
    }
    var.iter_mut().for_each(|s| *s /= per_group);
    x.iter()
        .zip(&group)
        .zip(param)
        .map(|((&v, &g), &p)| {
            let normalized = (v - mean[g]) / (var[g] + epsilon).sqrt();
            scale.as_ref().map_or(1.0, |s| s[p]) * normalized + bias.as_ref().map_or(0.0, |b| b[p])
        })
        .collect()
}

/// Normalizes over `axes` (default `[1, rank)`); `scale` and `bias` have the
/// input's sizes along `axes`, in the order `axes` lists them.
pub(super) fn layer_normalization(
    input: &Tensor,
    scale: Option<&Tensor>,
    bias: Option<&Tensor>,
    o: &LayerNormalizationOptions,
    out: &OperandDescriptor,
) -> Res<Tensor> {
    let shape = input.shape().dims();
    let axes = resolved_layer_norm_axes(o, shape.len());
    // Strides of the scale/bias tensor, placed on the input axes they index.
    let param_shape: Vec<u32> = axes.iter().map(|&a| shape[a as usize]).collect();
    let param_strides = strides_of(&param_shape);
    let mut strides = vec![0usize; shape.len()];
    for (&a, &s) in axes.iter().zip(&param_strides) {
        strides[a as usize] = s;
    }
    let param = affine_map(shape, 0, &strides);
    let x = floats(input)?;
    let y = normalize(&x, shape, &axes, o.epsilon, scale.map(floats).transpose()?, bias.map(floats).transpose()?, &param);
    encode_f64(out, y)
}

/// Normalizes every (batch, channel) over the spatial axes; `scale` and
/// `bias` are per channel.
pub(super) fn instance_normalization(
    input: &Tensor,
    scale: Option<&Tensor>,
    bias: Option<&Tensor>,
    o: &InstanceNormalizationOptions,
    out: &OperandDescriptor,
) -> Res<Tensor> {
    let shape = input.shape().dims();
    let (ha, wa) = spatial_axes(o.layout);
    let param = channel_map(shape, channel_axis(o.layout));
    let x = floats(input)?;
    let axes = [ha as u32, wa as u32];
    let y = normalize(&x, shape, &axes, o.epsilon, scale.map(floats).transpose()?, bias.map(floats).transpose()?, &param);
    encode_f64(out, y)
}

/// `exp(x - max) / Σ exp(x - max)` along `axis`.
pub(super) fn softmax(input: &Tensor, axis: u32, out: &OperandDescriptor) -> Res<Tensor> {
    let x = floats(input)?;
    let shape = input.shape().dims();
    let axis = axis as usize;
    let len = *shape.get(axis).ok_or("axis out of range")? as usize;
    let inner: usize = shape[axis + 1..].iter().map(|&d| d as usize).product();
    let outer: usize = shape[..axis].iter().map(|&d| d as usize).product();
    let mut y = vec![0.0f64; x.len()];
    for o in 0..outer {
        for i in 0..inner {
            let at = |k: usize| (o * len + k) * inner + i;
            let max = (0..len).map(|k| x[at(k)]).fold(f64::NEG_INFINITY, f64::max);
            let mut sum = 0.0;
            for k in 0..len {
                let e = (x[at(k)] - max).exp();
                y[at(k)] = e;
                sum += e;
            }
            for k in 0..len {
                y[at(k)] /= sum;
            }
        }
    }
    encode_f64(out, y)
}
