//! Element-wise operators: arithmetic, comparisons, logic, activations,
//! casts.

use kiln_ir::*;

use crate::onnx::import::{Importer, NodeCx, NodeResult, Value};
use super::Handler;

pub const TABLE: &[(&str, Handler)] = &[
    ("Add", |im, cx| binary(im, cx, BinaryOp::Add)),
    ("Relu", |im, cx| unary(im, cx, UnaryOp::Relu)),
];

fn unary(im: &mut Importer, cx: &NodeCx, kind: UnaryOp) -> NodeResult<Vec<Value>> {
    let input = im.input(cx, 0)?;
    Ok(vec![im.unary(cx, kind, input)?.into()])
}

fn binary(im: &mut Importer, cx: &NodeCx, kind: BinaryOp) -> NodeResult<Vec<Value>> {
    let (a, b) = (im.input(cx, 0)?, im.input(cx, 1)?);
    Ok(vec![im.op1(cx, Op::Binary { kind, a, b })?.into()])
}
