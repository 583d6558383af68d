//! Element-wise operators: arithmetic with fused activations, activations,
//! comparisons and logic, casts, and the quantization operators.

use kiln_ir::{BinaryOp, CompareOp, DataType, LogicalOp, Number, Op, UnaryOp};

use crate::tflite::import::{Importer, OpCx, OpResult, unsupported};

/// A binary operator; `activation` is the options field of its fused
/// activation, if it has one.
fn binary(im: &mut Importer, cx: &OpCx, kind: BinaryOp, activation: Option<usize>) -> OpResult<()> {
    cx.arity(2..=2, 1)?;
    let (a, b) = (im.input(cx, 0)?, im.input(cx, 1)?);
    let y = im.op1(cx, Op::Binary { kind, a, b })?;
    let y = match activation {
        Some(field) => {
            let code = cx.options.byte(field, "fused_activation_function")?;
            im.activation(cx, y, code)?
        }
        None => y,
    };
    im.set_output(cx, 0, y)
}

pub fn add(im: &mut Importer, cx: &OpCx) -> OpResult<()> {
    binary(im, cx, BinaryOp::Add, Some(0))
}

pub fn sub(im: &mut Importer, cx: &OpCx) -> OpResult<()> {
    binary(im, cx, BinaryOp::Sub, Some(0))
}

pub fn mul(im: &mut Importer, cx: &OpCx) -> OpResult<()> {
    binary(im, cx, BinaryOp::Mul, Some(0))
}

pub fn div(im: &mut Importer, cx: &OpCx) -> OpResult<()> {
    binary(im, cx, BinaryOp::Div, Some(0))
}

pub fn maximum(im: &mut Importer, cx: &OpCx) -> OpResult<()> {
    binary(im, cx, BinaryOp::Max, None)
}

pub fn minimum(im: &mut Importer, cx: &OpCx) -> OpResult<()> {
    binary(im, cx, BinaryOp::Min, None)
}

pub fn pow(im: &mut Importer, cx: &OpCx) -> OpResult<()> {
    binary(im, cx, BinaryOp::Pow, None)
}

/// `(a - b)^2`.
pub fn squared_difference(im: &mut Importer, cx: &OpCx) -> OpResult<()> {
    cx.arity(2..=2, 1)?;
    let (a, b) = (im.input(cx, 0)?, im.input(cx, 1)?);
    let d = im.op1(cx, Op::Binary { kind: BinaryOp::Sub, a, b })?;
    let y = im.op1(cx, Op::Binary { kind: BinaryOp::Mul, a: d, b: d })?;
    im.set_output(cx, 0, y)
}

/// One operator on the single input (any arity-1 `op`).
fn map(im: &mut Importer, cx: &OpCx, op: impl FnOnce(kiln_ir::OperandId) -> Op) -> OpResult<()> {
    cx.arity(1..=1, 1)?;
    let x = im.input(cx, 0)?;
    let y = im.op1(cx, op(x))?;
    im.set_output(cx, 0, y)
}

fn unary(im: &mut Importer, cx: &OpCx, kind: UnaryOp) -> OpResult<()> {
    map(im, cx, |input| Op::Unary { kind, input })
}

pub fn abs(im: &mut Importer, cx: &OpCx) -> OpResult<()> {
    unary(im, cx, UnaryOp::Abs)
}

pub fn neg(im: &mut Importer, cx: &OpCx) -> OpResult<()> {
    unary(im, cx, UnaryOp::Neg)
}

pub fn exp(im: &mut Importer, cx: &OpCx) -> OpResult<()> {
    unary(im, cx, UnaryOp::Exp)
}

pub fn log(im: &mut Importer, cx: &OpCx) -> OpResult<()> {
    unary(im, cx, UnaryOp::Log)
}

pub fn sqrt(im: &mut Importer, cx: &OpCx) -> OpResult<()> {
    unary(im, cx, UnaryOp::Sqrt)
}

pub fn floor(im: &mut Importer, cx: &OpCx) -> OpResult<()> {
    unary(im, cx, UnaryOp::Floor)
}

pub fn ceil(im: &mut Importer, cx: &OpCx) -> OpResult<()> {
    unary(im, cx, UnaryOp::Ceil)
}

/// TFLite's ROUND rounds half to even, as WebNN's roundEven.
pub fn round(im: &mut Importer, cx: &OpCx) -> OpResult<()> {
    unary(im, cx, UnaryOp::RoundEven)
}

pub fn sin(im: &mut Importer, cx: &OpCx) -> OpResult<()> {
    unary(im, cx, UnaryOp::Sin)
}

pub fn cos(im: &mut Importer, cx: &OpCx) -> OpResult<()> {
    unary(im, cx, UnaryOp::Cos)
}

pub fn tanh(im: &mut Importer, cx: &OpCx) -> OpResult<()> {
    unary(im, cx, UnaryOp::Tanh)
}

pub fn logistic(im: &mut Importer, cx: &OpCx) -> OpResult<()> {
    unary(im, cx, UnaryOp::Sigmoid)
}

pub fn relu(im: &mut Importer, cx: &OpCx) -> OpResult<()> {
    unary(im, cx, UnaryOp::Relu)
}

pub fn hard_swish(im: &mut Importer, cx: &OpCx) -> OpResult<()> {
    unary(im, cx, UnaryOp::HardSwish)
}

fn clamp(im: &mut Importer, cx: &OpCx, lo: f64, hi: f64) -> OpResult<()> {
    map(im, cx, |input| Op::Clamp { input, min_value: Some(Number::Float(lo)), max_value: Some(Number::Float(hi)) })
}

pub fn relu6(im: &mut Importer, cx: &OpCx) -> OpResult<()> {
    clamp(im, cx, 0.0, 6.0)
}

pub fn relu_n1_to_1(im: &mut Importer, cx: &OpCx) -> OpResult<()> {
    clamp(im, cx, -1.0, 1.0)
}

pub fn leaky_relu(im: &mut Importer, cx: &OpCx) -> OpResult<()> {
    let alpha = cx.options.float(0, 0.0, "LeakyReluOptions.alpha")? as f64;
    map(im, cx, |input| Op::LeakyRelu { input, alpha })
}

pub fn elu(im: &mut Importer, cx: &OpCx) -> OpResult<()> {
    map(im, cx, |input| Op::Elu { input, alpha: 1.0 })
}

/// `x * x`.
pub fn square(im: &mut Importer, cx: &OpCx) -> OpResult<()> {
    map(im, cx, |x| Op::Binary { kind: BinaryOp::Mul, a: x, b: x })
}

/// `1 / sqrt(x)`.
pub fn rsqrt(im: &mut Importer, cx: &OpCx) -> OpResult<()> {
    cx.arity(1..=1, 1)?;
    let x = im.input(cx, 0)?;
    let s = im.op1(cx, Op::Unary { kind: UnaryOp::Sqrt, input: x })?;
    let y = im.op1(cx, Op::Unary { kind: UnaryOp::Reciprocal, input: s })?;
    im.set_output(cx, 0, y)
}

/// GELU: `gelu`, or kiln's `geluTanh` with `approximate`.
pub fn gelu(im: &mut Importer, cx: &OpCx) -> OpResult<()> {
    let approximate = cx.options.bool(0, "GeluOptions.approximate")?;
    unary(im, cx, if approximate { UnaryOp::GeluTanh } else { UnaryOp::Gelu })
}

pub fn prelu(im: &mut Importer, cx: &OpCx) -> OpResult<()> {
    cx.arity(2..=2, 1)?;
    let (x, slope) = (im.input(cx, 0)?, im.input(cx, 1)?);
    let y = im.op1(cx, Op::Prelu { input: x, slope })?;
    im.set_output(cx, 0, y)
}

fn compare(im: &mut Importer, cx: &OpCx, kind: CompareOp) -> OpResult<()> {
    cx.arity(2..=2, 1)?;
    let (a, b) = (im.input(cx, 0)?, im.input(cx, 1)?);
    let y = im.op1(cx, Op::Compare { kind, a, b })?;
    im.set_output(cx, 0, y)
}

pub fn equal(im: &mut Importer, cx: &OpCx) -> OpResult<()> {
    compare(im, cx, CompareOp::Equal)
}

pub fn not_equal(im: &mut Importer, cx: &OpCx) -> OpResult<()> {
    compare(im, cx, CompareOp::NotEqual)
}

pub fn less(im: &mut Importer, cx: &OpCx) -> OpResult<()> {
    compare(im, cx, CompareOp::Lesser)
}

pub fn less_equal(im: &mut Importer, cx: &OpCx) -> OpResult<()> {
    compare(im, cx, CompareOp::LesserOrEqual)
}

pub fn greater(im: &mut Importer, cx: &OpCx) -> OpResult<()> {
    compare(im, cx, CompareOp::Greater)
}

pub fn greater_equal(im: &mut Importer, cx: &OpCx) -> OpResult<()> {
    compare(im, cx, CompareOp::GreaterOrEqual)
}

fn logical(im: &mut Importer, cx: &OpCx, kind: LogicalOp) -> OpResult<()> {
    cx.arity(2..=2, 1)?;
    let (a, b) = (im.input(cx, 0)?, im.input(cx, 1)?);
    let y = im.op1(cx, Op::Logical { kind, a, b })?;
    im.set_output(cx, 0, y)
}

pub fn logical_and(im: &mut Importer, cx: &OpCx) -> OpResult<()> {
    logical(im, cx, LogicalOp::And)
}

pub fn logical_or(im: &mut Importer, cx: &OpCx) -> OpResult<()> {
    logical(im, cx, LogicalOp::Or)
}

pub fn logical_not(im: &mut Importer, cx: &OpCx) -> OpResult<()> {
    unary(im, cx, UnaryOp::LogicalNot)
}

/// SELECT and SELECT_V2: `where(condition, x, y)`.
pub fn select(im: &mut Importer, cx: &OpCx) -> OpResult<()> {
    cx.arity(3..=3, 1)?;
    let (c, a, b) = (im.input(cx, 0)?, im.input(cx, 1)?, im.input(cx, 2)?);
    let y = im.op1(cx, Op::Where { condition: c, true_value: a, false_value: b })?;
    im.set_output(cx, 0, y)
}

/// A cast to the declared output type.
pub fn cast(im: &mut Importer, cx: &OpCx) -> OpResult<()> {
    cx.arity(1..=1, 1)?;
    let x = im.input(cx, 0)?;
    let to = Importer::tensor_type(im.out_def(cx, 0)?)?;
    let y = if im.desc(x).data_type == to { x } else { im.op1(cx, Op::Cast { input: x, data_type: to })? };
    im.set_output(cx, 0, y)
}

/// DEQUANTIZE: reading the input already dequantizes an int8/uint8 value;
/// a float16 one (weights stored in half precision) is cast.
pub fn dequantize(im: &mut Importer, cx: &OpCx) -> OpResult<()> {
    cx.arity(1..=1, 1)?;
    let x = im.input(cx, 0)?;
    let y = match im.desc(x).data_type {
        DataType::Float32 => x,
        DataType::Float16 => im.op1(cx, Op::Cast { input: x, data_type: DataType::Float32 })?,
        t => return unsupported(format!("DEQUANTIZE of a {t} tensor without quantization parameters")),
    };
    im.set_output(cx, 0, y)
}

/// QUANTIZE (and requantize): the value read, written to a quantized
/// output.
pub fn quantize(im: &mut Importer, cx: &OpCx) -> OpResult<()> {
    cx.arity(1..=1, 1)?;
    let x = im.input(cx, 0)?;
    if !im.desc(x).data_type.is_float() {
        return unsupported("QUANTIZE of an integer tensor without quantization parameters");
    }
    im.set_output(cx, 0, x)
}

/// DENSIFY: its input is a sparse constant, already dense once read.
pub fn densify(im: &mut Importer, cx: &OpCx) -> OpResult<()> {
    cx.arity(1..=1, 1)?;
    let x = im.input(cx, 0)?;
    im.set_output(cx, 0, x)
}
