//! `QuantizeLinear` and `DequantizeLinear`: WebNN's `quantizeLinear` and
//! `dequantizeLinear`. ONNX's scale and zero point (a scalar per tensor, a
//! vector along `axis`, or, with `block_size`, a tensor of the input's rank
//! with blocks along `axis`) are reshaped to the input's rank, which
//! WebNN reads block-wise. A missing zero point is 0 (uint8 for
//! `QuantizeLinear` unless `output_dtype` says int8). The quantized types
//! are WebNN's int8, uint8 (and int32 for dequantization); the 4-bit,
//! 16-bit and float8 ones are unsupported. `saturate` only concerns float8.

use kiln_ir::*;

use super::Handler;
use crate::onnx::import::{Importer, NodeCx, NodeResult, Value, axis, invalid, unsupported};
use crate::onnx::proto::elem_type;

pub const TABLE: &[(&str, Handler)] = &[("DequantizeLinear", dequantize), ("QuantizeLinear", quantize)];

/// `v` (a scale or zero point) reshaped to `rank`: a scalar to all ones,
/// a vector to its length at `axis`, one of rank `rank` as it is.
fn to_rank(im: &mut Importer, cx: &NodeCx, v: OperandId, rank: usize) -> NodeResult<OperandId> {
    let dims = im.desc(v).shape.0.clone();
    let new_shape = match dims.len() {
        r if r == rank => return Ok(v),
        0 => vec![1; rank],
        1 => {
            let a = axis(cx.int_or("axis", 1)?, rank)? as usize;
            let mut s = vec![1; rank];
            s[a] = dims[0];
            s
        }
        r => return invalid(format!("a scale or zero point of rank {r} for an input of rank {rank}")),
    };
    im.op1(cx, Op::Reshape { input: v, new_shape })
}

/// The scale and zero point at the input's rank; `zero` gives a missing
/// zero point's type.
fn parameters(im: &mut Importer, cx: &NodeCx, x: OperandId, zero: DataType) -> NodeResult<(OperandId, OperandId)> {
    let rank = im.desc(x).shape.rank();
    let scale = im.input(cx, 1)?;
    let zero_point = match im.opt_input(cx, 2)? {
        Some(z) => z,
        None => im.scalar(zero, 0.0)?,
    };
    Ok((to_rank(im, cx, scale, rank)?, to_rank(im, cx, zero_point, rank)?))
}

fn dequantize(im: &mut Importer, cx: &NodeCx) -> NodeResult<Vec<Value>> {
    let x = im.input(cx, 0)?;
    let t = im.desc(x).data_type;
    if !matches!(t, DataType::Int8 | DataType::Uint8 | DataType::Int32) {
        return unsupported(format!("dequantizing {t} (kiln dequantizes int8, uint8 and int32)"));
    }
    let (scale, zero_point) = parameters(im, cx, x, t)?;
    let y = im.op1(cx, Op::DequantizeLinear { input: x, scale, zero_point })?;
    match i32::try_from(cx.int_or("output_dtype", 0)?).unwrap_or(-1) {
        0 => Ok(vec![y.into()]),
        elem_type::FLOAT if im.desc(y).data_type == DataType::Float32 => Ok(vec![y.into()]),
        elem_type::FLOAT16 if im.desc(y).data_type == DataType::Float16 => Ok(vec![y.into()]),
        other => unsupported(format!("output_dtype {other} other than the scale's type")),
    }
}

fn quantize(im: &mut Importer, cx: &NodeCx) -> NodeResult<Vec<Value>> {
    let x = im.input(cx, 0)?;
    let t = im.desc(x).data_type;
    let declared = match (i32::try_from(cx.int_or("output_dtype", 0)?).unwrap_or(-1), im.opt_input(cx, 2)?) {
        (0, Some(z)) => im.desc(z).data_type,
        (0, None) | (elem_type::UINT8, _) => DataType::Uint8,
        (elem_type::INT8, _) => DataType::Int8,
        (other, _) => return unsupported(format!("quantizing to element type {other} (kiln quantizes to int8 and uint8)")),
    };
    if !matches!(declared, DataType::Int8 | DataType::Uint8) {
        return unsupported(format!("quantizing to {declared} (kiln quantizes to int8 and uint8)"));
    }
    let (mut scale, zero_point) = parameters(im, cx, x, declared)?;
    if im.desc(scale).data_type != t {
        // WebNN takes the scale in the input's type.
        scale = im.op1(cx, Op::Cast { input: scale, data_type: t })?;
    }
    Ok(vec![im.op1(cx, Op::QuantizeLinear { input: x, scale, zero_point })?.into()])
}
