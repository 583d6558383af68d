//! `quantizeLinear` and `dequantizeLinear`. Each scale and zero point
//! covers one block of the input: along axis `i`, `input / scale` elements
//! share one (so a dimension of 1 broadcasts).

use super::{encode_f64, for_each_index, strides_of, Res};
use half::f16;

use crate::{DataType, OperandDescriptor, Tensor, Values};

/// `(input - zeroPoint) * scale`, exact in `f64` and rounded once to the
/// scale's type.
pub(super) fn dequantize_linear(input: &Tensor, scale: &Tensor, zero_point: &Tensor, out: &OperandDescriptor) -> Res<Tensor> {
    let (Values::Int(x), Values::Int(z)) = (input.values(), zero_point.values()) else {
        return Err("the input and zero point must be integer tensors".into());
    };
    let Values::Float(s) = scale.values() else {
        return Err("the scale must be a float tensor".into());
    };
    let block = block_map(input, scale);
    encode_f64(out, x.iter().zip(&block).map(|(&x, &b)| (x - z[b]) as f64 * s[b]).collect())
}

/// `roundEven(input / scale) + zeroPoint`, saturated to the zero point's
/// type (NaN gives 0). The quotient is rounded to the input's type before
/// `roundEven`, as a division in that type gives it (ONNX's reference and
/// ONNX Runtime divide in float32): where the exact quotient lies just off
/// a tie, the rounded one can sit on it.
pub(super) fn quantize_linear(input: &Tensor, scale: &Tensor, zero_point: &Tensor, out: &OperandDescriptor) -> Res<Tensor> {
    let (Values::Float(x), Values::Float(s)) = (input.values(), scale.values()) else {
        return Err("the input and scale must be float tensors".into());
    };
    let Values::Int(z) = zero_point.values() else {
        return Err("the zero point must be an integer tensor".into());
    };
    let block = block_map(input, scale);
    // Encoding a float as an integer type truncates (exact here: the value
    // is already whole) and saturates, NaN giving 0.
    let in_type = |q: f64| match input.data_type() {
        DataType::Float16 => f16::from_f64(q).to_f64(),
        _ => q as f32 as f64,
    };
    encode_f64(out, x.iter().zip(&block).map(|(&x, &b)| in_type(x / s[b]).round_ties_even() + z[b] as f64).collect())
}

/// For every input element, the flat index of its scale (and zero point).
fn block_map(input: &Tensor, scale: &Tensor) -> Vec<usize> {
    let (shape, blocks) = (input.shape().dims(), scale.shape().dims());
    let strides = strides_of(blocks);
    let mut map = Vec::with_capacity(input.shape().element_count());
    for_each_index(shape, |index| {
        map.push(index.iter().enumerate().map(|(a, &i)| strides[a] * (i / (shape[a] / blocks[a]) as usize)).sum())
    });
    map
}
