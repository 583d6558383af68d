//! Element-wise operators: arithmetic (variadic `Max`/`Min`/`Sum`/`Mean`
//! included), the unary functions and activations, `Clip`, comparisons,
//! logic, `Where`, `Cast`/`CastLike`, and the inference no-ops `Identity`
//! and `Dropout`.
//!
//! Mapped one to one where WebNN has the operator. Decomposed, one WebNN
//! operator per step: `Selu` (`elu` then `linear`), `Sign` of unsigned
//! integers (`min(x, 1)`), `IsInf` of one sign (`isInfinite` and a
//! comparison), `Mod` (`a - b * trunc(a / b)`, adjusted to `b`'s sign
//! unless `fmod`), `Mean`
//! (a sum divided by the count), `Cast` to `BOOL` (`notEqual` 0), `Pow`
//! with an exponent of another type (casts around a same-type `pow`).
//!
//! Semantics checked against ONNX: integer `Div` truncates toward zero in
//! both; `Clip` with `min > max` gives `max` everywhere (ONNX's rule; WebNN
//! `clamp` rejects it, so the bounds become `[max, max]`); `PRelu`'s slope
//! must broadcast to the input (ONNX's unidirectional rule), which WebNN's
//! bidirectional `prelu` then reads the same way.

use kiln_ir::*;

use super::Handler;
use crate::onnx::import::{Importer, NodeCx, NodeResult, Value, check_constant_size, invalid, unsupported};
use crate::onnx::proto::elem_type;
use crate::onnx::tensor;

pub const TABLE: &[(&str, Handler)] = &[
    ("Add", |im, cx| binary(im, cx, BinaryOp::Add)),
    ("Sub", |im, cx| binary(im, cx, BinaryOp::Sub)),
    ("Mul", |im, cx| binary(im, cx, BinaryOp::Mul)),
    ("Div", |im, cx| binary(im, cx, BinaryOp::Div)),
    ("Pow", pow),
    ("Max", |im, cx| variadic(im, cx, BinaryOp::Max)),
    ("Min", |im, cx| variadic(im, cx, BinaryOp::Min)),
    ("Sum", |im, cx| variadic(im, cx, BinaryOp::Add)),
    ("Mean", mean),
    ("Sqrt", |im, cx| unary(im, cx, UnaryOp::Sqrt)),
    ("Exp", |im, cx| unary(im, cx, UnaryOp::Exp)),
    ("Log", |im, cx| unary(im, cx, UnaryOp::Log)),
    ("Neg", |im, cx| unary(im, cx, UnaryOp::Neg)),
    ("Abs", abs),
    ("Reciprocal", |im, cx| unary(im, cx, UnaryOp::Reciprocal)),
    ("Floor", |im, cx| unary(im, cx, UnaryOp::Floor)),
    ("Ceil", |im, cx| unary(im, cx, UnaryOp::Ceil)),
    ("Round", |im, cx| unary(im, cx, UnaryOp::RoundEven)),
    ("Erf", |im, cx| unary(im, cx, UnaryOp::Erf)),
    ("Sin", |im, cx| unary(im, cx, UnaryOp::Sin)),
    ("Cos", |im, cx| unary(im, cx, UnaryOp::Cos)),
    ("Tan", |im, cx| unary(im, cx, UnaryOp::Tan)),
    ("Tanh", |im, cx| unary(im, cx, UnaryOp::Tanh)),
    ("Sigmoid", |im, cx| unary(im, cx, UnaryOp::Sigmoid)),
    ("Relu", |im, cx| unary(im, cx, UnaryOp::Relu)),
    ("HardSwish", |im, cx| unary(im, cx, UnaryOp::HardSwish)),
    ("Softplus", |im, cx| unary(im, cx, UnaryOp::Softplus)),
    ("Softsign", |im, cx| unary(im, cx, UnaryOp::Softsign)),
    ("Mish", |im, cx| unary(im, cx, UnaryOp::Mish)),
    ("Not", |im, cx| unary(im, cx, UnaryOp::LogicalNot)),
    ("Clip", clip),
    ("LeakyRelu", leaky_relu),
    ("PRelu", prelu),
    ("Elu", elu),
    ("Selu", selu),
    ("HardSigmoid", hard_sigmoid),
    ("Gelu", gelu),
    ("Sign", sign),
    ("Where", where_),
    ("Equal", |im, cx| compare(im, cx, CompareOp::Equal)),
    ("Greater", |im, cx| compare(im, cx, CompareOp::Greater)),
    ("GreaterOrEqual", |im, cx| compare(im, cx, CompareOp::GreaterOrEqual)),
    ("Less", |im, cx| compare(im, cx, CompareOp::Lesser)),
    ("LessOrEqual", |im, cx| compare(im, cx, CompareOp::LesserOrEqual)),
    ("And", |im, cx| logical(im, cx, LogicalOp::And)),
    ("Or", |im, cx| logical(im, cx, LogicalOp::Or)),
    ("Xor", |im, cx| logical(im, cx, LogicalOp::Xor)),
    ("IsNaN", is_nan),
    ("IsInf", is_inf),
    ("Mod", modulo),
    ("Cast", cast),
    ("CastLike", cast_like),
    ("Identity", identity),
    ("Dropout", dropout),
];

/// The data type of `id`, or `Unsupported` naming the ONNX operator when
/// kiln's operator does not take it.
pub(super) fn require_type(im: &Importer, cx: &NodeCx, id: OperandId, allowed: &[DataType]) -> NodeResult<DataType> {
    let t = im.desc(id).data_type;
    if allowed.contains(&t) {
        return Ok(t);
    }
    let names: Vec<&str> = allowed.iter().map(|t| t.name()).collect();
    unsupported(format!("`{}` on {t} is not supported (kiln computes it on {})", cx.node.op_type, names.join(", ")))
}

fn one(id: OperandId) -> NodeResult<Vec<Value>> {
    Ok(vec![id.into()])
}

fn unary(im: &mut Importer, cx: &NodeCx, kind: UnaryOp) -> NodeResult<Vec<Value>> {
    let input = im.input(cx, 0)?;
    let allowed: &[DataType] = match kind {
        UnaryOp::Neg | UnaryOp::Relu => {
            &[DataType::Float32, DataType::Float16, DataType::Int64, DataType::Int32, DataType::Int8]
        }
        UnaryOp::LogicalNot => &[DataType::Uint8],
        _ => DataType::FLOATS,
    };
    require_type(im, cx, input, allowed)?;
    one(im.unary(cx, kind, input)?)
}

/// `Abs`: the identity on unsigned types, which WebNN's `abs` does not take.
fn abs(im: &mut Importer, cx: &NodeCx) -> NodeResult<Vec<Value>> {
    let input = im.input(cx, 0)?;
    if !im.desc(input).data_type.is_signed() {
        return Ok(vec![input.into()]);
    }
    one(im.unary(cx, UnaryOp::Abs, input)?)
}

fn binary(im: &mut Importer, cx: &NodeCx, kind: BinaryOp) -> NodeResult<Vec<Value>> {
    let (a, b) = (im.input(cx, 0)?, im.input(cx, 1)?);
    one(im.op1(cx, Op::Binary { kind, a, b })?)
}

/// `Pow`: since opset 12 the exponent may have another type than the base.
/// The power is computed in float32 when either is a float (float16 when
/// both are), else in the base's type, and cast back to the base's type.
fn pow(im: &mut Importer, cx: &NodeCx) -> NodeResult<Vec<Value>> {
    let (a, b) = (im.input(cx, 0)?, im.input(cx, 1)?);
    let (ta, tb) = (im.desc(a).data_type, im.desc(b).data_type);
    let compute = if ta == tb {
        ta
    } else if ta.is_float() || tb.is_float() {
        if ta == DataType::Float16 && tb == DataType::Float16 { DataType::Float16 } else { DataType::Float32 }
    } else {
        ta
    };
    let a2 = cast_to(im, cx, a, compute)?;
    let b2 = cast_to(im, cx, b, compute)?;
    let y = im.op1(cx, Op::Binary { kind: BinaryOp::Pow, a: a2, b: b2 })?;
    one(cast_to(im, cx, y, ta)?)
}

/// `input` cast to `data_type` (no operator when it already has it).
fn cast_to(im: &mut Importer, cx: &NodeCx, input: OperandId, data_type: DataType) -> NodeResult<OperandId> {
    if im.desc(input).data_type == data_type { Ok(input) } else { im.op1(cx, Op::Cast { input, data_type }) }
}

/// The inputs of a variadic node (`Max`, `Min`, `Sum`, `Mean`): at least one.
fn variadic_inputs(im: &mut Importer, cx: &NodeCx) -> NodeResult<Vec<OperandId>> {
    if cx.input_count() == 0 {
        return invalid("at least one input is required");
    }
    (0..cx.input_count()).map(|i| im.input(cx, i)).collect()
}

/// Folds the inputs left to right with a broadcasting binary operator; one
/// input is returned as it is.
fn fold(im: &mut Importer, cx: &NodeCx, kind: BinaryOp, inputs: &[OperandId]) -> NodeResult<OperandId> {
    let mut acc = inputs[0];
    for &b in &inputs[1..] {
        acc = im.op1(cx, Op::Binary { kind, a: acc, b })?;
    }
    Ok(acc)
}

fn variadic(im: &mut Importer, cx: &NodeCx, kind: BinaryOp) -> NodeResult<Vec<Value>> {
    let inputs = variadic_inputs(im, cx)?;
    one(fold(im, cx, kind, &inputs)?)
}

/// `Mean`: the sum divided by the number of inputs.
fn mean(im: &mut Importer, cx: &NodeCx) -> NodeResult<Vec<Value>> {
    let inputs = variadic_inputs(im, cx)?;
    let t = require_type(im, cx, inputs[0], DataType::FLOATS)?;
    let sum = fold(im, cx, BinaryOp::Add, &inputs)?;
    if inputs.len() == 1 {
        return one(sum);
    }
    let n = im.scalar(t, inputs.len() as f64)?;
    one(im.op1(cx, Op::Binary { kind: BinaryOp::Div, a: sum, b: n })?)
}

/// The value of a one-element constant as an `MLNumber`.
fn number(t: &Tensor, what: &str) -> NodeResult<Number> {
    if t.shape().element_count() != 1 {
        return invalid(format!("{what} must be a scalar, got shape {}", t.shape()));
    }
    Ok(match t.values() {
        Values::Float(v) => Number::Float(v[0]),
        Values::Int(v) => Number::Int(v[0]),
    })
}

/// `Clip`: bounds are attributes before opset 11, optional inputs after.
/// Constant bounds become one `clamp`; bounds computed at run time become
/// `max` then `min`.
fn clip(im: &mut Importer, cx: &NodeCx) -> NodeResult<Vec<Value>> {
    let input = im.input(cx, 0)?;
    let (lo, hi) = if cx.opset < 11 {
        (cx.float("min")?.map(Number::from), cx.float("max")?.map(Number::from))
    } else {
        let constant = |i: usize, what: &str| -> NodeResult<Option<Option<Number>>> {
            match im.const_input(cx, i) {
                Ok(Some(t)) => Ok(Some(Some(number(&t, what)?))),
                Ok(None) => Ok(Some(None)),
                Err(_) => Ok(None),
            }
        };
        match (constant(1, "min")?, constant(2, "max")?) {
            (Some(lo), Some(hi)) => (lo, hi),
            _ => {
                // A bound depends on the graph's inputs.
                let mut y = input;
                for (i, kind) in [(1, BinaryOp::Max), (2, BinaryOp::Min)] {
                    if let Some(bound) = im.opt_input(cx, i)? {
                        y = im.op1(cx, Op::Binary { kind, a: y, b: bound })?;
                    }
                }
                return one(y);
            }
        }
    };
    let greater = match (lo, hi) {
        (Some(Number::Int(l)), Some(Number::Int(h))) => l > h,
        (Some(l), Some(h)) => l.as_f64() > h.as_f64(),
        _ => false,
    };
    let lo = if greater { hi } else { lo };
    one(im.op1(cx, Op::Clamp { input, min_value: lo, max_value: hi })?)
}

fn leaky_relu(im: &mut Importer, cx: &NodeCx) -> NodeResult<Vec<Value>> {
    let input = im.input(cx, 0)?;
    let alpha = cx.float_or("alpha", 0.01)? as f64;
    one(im.op1(cx, Op::LeakyRelu { input, alpha })?)
}

/// `PRelu`: ONNX broadcasts the slope to the input's shape (one way).
fn prelu(im: &mut Importer, cx: &NodeCx) -> NodeResult<Vec<Value>> {
    let (input, slope) = (im.input(cx, 0)?, im.input(cx, 1)?);
    let (x, s) = (im.desc(input).clone(), im.desc(slope).clone());
    if !infer::broadcasts_to(&s.shape, &x.shape) {
        return invalid(format!("slope shape {} does not broadcast to the input shape {}", s.shape, x.shape));
    }
    if !x.data_type.is_signed() {
        // Unsigned inputs are never negative.
        return Ok(vec![input.into()]);
    }
    one(im.op1(cx, Op::Prelu { input, slope })?)
}

fn elu(im: &mut Importer, cx: &NodeCx) -> NodeResult<Vec<Value>> {
    let input = im.input(cx, 0)?;
    let alpha = cx.float_or("alpha", 1.0)? as f64;
    one(im.op1(cx, Op::Elu { input, alpha })?)
}

/// `Selu`: `gamma * elu(x, alpha)`.
fn selu(im: &mut Importer, cx: &NodeCx) -> NodeResult<Vec<Value>> {
    let input = im.input(cx, 0)?;
    let alpha = cx.float_or("alpha", 1.673_263_2)? as f64;
    let gamma = cx.float_or("gamma", 1.050_701)? as f64;
    let e = im.op1(cx, Op::Elu { input, alpha })?;
    one(im.op1(cx, Op::Linear { input: e, alpha: gamma, beta: 0.0 })?)
}

fn hard_sigmoid(im: &mut Importer, cx: &NodeCx) -> NodeResult<Vec<Value>> {
    let input = im.input(cx, 0)?;
    let alpha = cx.float_or("alpha", 0.2)? as f64;
    let beta = cx.float_or("beta", 0.5)? as f64;
    one(im.op1(cx, Op::HardSigmoid { input, alpha, beta })?)
}

/// `Gelu` (opset 20): `gelu` with `approximate="none"`, kiln's `geluTanh`
/// with `"tanh"`.
fn gelu(im: &mut Importer, cx: &NodeCx) -> NodeResult<Vec<Value>> {
    let x = im.input(cx, 0)?;
    require_type(im, cx, x, DataType::FLOATS)?;
    match cx.string_or("approximate", "none")?.as_str() {
        "none" => one(im.unary(cx, UnaryOp::Gelu, x)?),
        "tanh" => one(im.unary(cx, UnaryOp::GeluTanh, x)?),
        other => invalid(format!("approximate must be \"none\" or \"tanh\", got {other:?}")),
    }
}

/// `Sign`: WebNN's `sign` (which keeps zeros and NaN); on unsigned
/// integers, which `sign` does not take, `min(x, 1)`.
fn sign(im: &mut Importer, cx: &NodeCx) -> NodeResult<Vec<Value>> {
    let x = im.input(cx, 0)?;
    let t = im.desc(x).data_type;
    if t.is_float() || t.is_signed() {
        return one(im.unary(cx, UnaryOp::Sign, x)?);
    }
    let one_ = im.scalar(t, 1.0)?;
    one(im.op1(cx, Op::Binary { kind: BinaryOp::Min, a: x, b: one_ })?)
}

fn where_(im: &mut Importer, cx: &NodeCx) -> NodeResult<Vec<Value>> {
    let (condition, true_value, false_value) = (im.input(cx, 0)?, im.input(cx, 1)?, im.input(cx, 2)?);
    one(im.op1(cx, Op::Where { condition, true_value, false_value })?)
}

fn compare(im: &mut Importer, cx: &NodeCx, kind: CompareOp) -> NodeResult<Vec<Value>> {
    let (a, b) = (im.input(cx, 0)?, im.input(cx, 1)?);
    one(im.op1(cx, Op::Compare { kind, a, b })?)
}

fn logical(im: &mut Importer, cx: &NodeCx, kind: LogicalOp) -> NodeResult<Vec<Value>> {
    let (a, b) = (im.input(cx, 0)?, im.input(cx, 1)?);
    one(im.op1(cx, Op::Logical { kind, a, b })?)
}

/// `IsNaN`: WebNN's `isNaN`.
fn is_nan(im: &mut Importer, cx: &NodeCx) -> NodeResult<Vec<Value>> {
    let x = im.input(cx, 0)?;
    require_type(im, cx, x, DataType::FLOATS)?;
    one(im.op1(cx, Op::Predicate { kind: PredicateOp::IsNaN, a: x })?)
}

/// `IsInf`: WebNN's `isInfinite`, joined with `x > 0` or `x < 0` by
/// `logicalAnd` when `detect_positive` or `detect_negative` is off.
fn is_inf(im: &mut Importer, cx: &NodeCx) -> NodeResult<Vec<Value>> {
    let x = im.input(cx, 0)?;
    let t = require_type(im, cx, x, DataType::FLOATS)?;
    let (positive, negative) = (cx.int_or("detect_positive", 1)? != 0, cx.int_or("detect_negative", 1)? != 0);
    let infinite = im.op1(cx, Op::Predicate { kind: PredicateOp::IsInfinite, a: x })?;
    let zero = im.scalar(t, 0.0)?;
    let side = match (positive, negative) {
        (true, true) => return one(infinite),
        (true, false) => CompareOp::Greater,
        (false, true) => CompareOp::Lesser,
        (false, false) => {
            // Detects nothing: all false.
            let never = im.op1(cx, Op::Compare { kind: CompareOp::NotEqual, a: zero, b: zero })?;
            let shape = im.desc(x).shape.0.clone();
            return one(im.op1(cx, Op::Expand { input: never, new_shape: shape })?);
        }
    };
    let on_side = im.op1(cx, Op::Compare { kind: side, a: x, b: zero })?;
    one(im.op1(cx, Op::Logical { kind: LogicalOp::And, a: infinite, b: on_side })?)
}

/// `Mod`: `a - b * trunc(a / b)` with `fmod=1` (C's `fmod`, the sign of
/// `a`; floats need it); with `fmod=0` (integers only) the remainder takes
/// the sign of `b`: `b` is added where it is nonzero and its sign differs
/// from `b`'s. `trunc(q)` of a float is `sign(q) * floor(|q|)`; integer
/// `div` truncates already.
fn modulo(im: &mut Importer, cx: &NodeCx) -> NodeResult<Vec<Value>> {
    let (a, b) = (im.input(cx, 0)?, im.input(cx, 1)?);
    let t = im.desc(a).data_type;
    let fmod = cx.int_or("fmod", 0)? != 0;
    if t.is_float() && !fmod {
        return invalid("fmod must be 1 for floating-point inputs");
    }
    let bin = |im: &mut Importer, kind, a, b| im.op1(cx, Op::Binary { kind, a, b });
    let mut q = bin(im, BinaryOp::Div, a, b)?;
    if t.is_float() {
        let magnitude = im.unary(cx, UnaryOp::Abs, q)?;
        let whole = im.unary(cx, UnaryOp::Floor, magnitude)?;
        let sign = im.unary(cx, UnaryOp::Sign, q)?;
        q = bin(im, BinaryOp::Mul, sign, whole)?;
    }
    let bq = bin(im, BinaryOp::Mul, b, q)?;
    let r = bin(im, BinaryOp::Sub, a, bq)?;
    if fmod || !t.is_signed() {
        return one(r);
    }
    let zero = im.scalar(t, 0.0)?;
    let nonzero = im.op1(cx, Op::Compare { kind: CompareOp::NotEqual, a: r, b: zero })?;
    let r_negative = im.op1(cx, Op::Compare { kind: CompareOp::Lesser, a: r, b: zero })?;
    let b_negative = im.op1(cx, Op::Compare { kind: CompareOp::Lesser, a: b, b: zero })?;
    let differ = im.op1(cx, Op::Logical { kind: LogicalOp::Xor, a: r_negative, b: b_negative })?;
    let adjust = im.op1(cx, Op::Logical { kind: LogicalOp::And, a: nonzero, b: differ })?;
    let shifted = bin(im, BinaryOp::Add, r, b)?;
    one(im.op1(cx, Op::Where { condition: adjust, true_value: shifted, false_value: r })?)
}

/// `input` converted to ONNX element type `to`: `BOOL` is `input != 0`
/// (uint8), every other type kiln has is a WebNN `cast`.
fn cast_elem(im: &mut Importer, cx: &NodeCx, input: OperandId, to: i32) -> NodeResult<OperandId> {
    let data_type = tensor::data_type(to).or_else(|e| unsupported(format!("cast to {e}")))?;
    if to == elem_type::BOOL {
        let zero = im.scalar(im.desc(input).data_type, 0.0)?;
        return im.op1(cx, Op::Compare { kind: CompareOp::NotEqual, a: input, b: zero });
    }
    cast_to(im, cx, input, data_type)
}

fn cast(im: &mut Importer, cx: &NodeCx) -> NodeResult<Vec<Value>> {
    let input = im.input(cx, 0)?;
    let Some(to) = cx.int("to")? else {
        return invalid("attribute `to` is required");
    };
    let to = i32::try_from(to).or_else(|_| invalid(format!("`to` {to} is not an element type")))?;
    one(cast_elem(im, cx, input, to)?)
}

/// `CastLike`: a cast to the type of the second input. (Which ONNX type
/// that was is not kept: uint8 targets cast as uint8, never as `BOOL`.)
/// An empty input casts to an empty constant of the target type.
fn cast_like(im: &mut Importer, cx: &NodeCx) -> NodeResult<Vec<Value>> {
    let data_type = match im.const_input(cx, 1) {
        Ok(Some(t)) => t.data_type(),
        _ => {
            let like = im.input(cx, 1)?;
            im.desc(like).data_type
        }
    };
    if let Some(empty) = im.known_input(cx, 0).filter(|t| t.shape().element_count() == 0) {
        let desc = OperandDescriptor::new(data_type, empty.shape().clone());
        return Ok(vec![Value::Const(Tensor::new(desc, Bytes::from_vec(Vec::new())).or_else(|e| invalid(e.to_string()))?)]);
    }
    let input = im.input(cx, 0)?;
    one(cast_to(im, cx, input, data_type)?)
}

fn identity(im: &mut Importer, cx: &NodeCx) -> NodeResult<Vec<Value>> {
    Ok(vec![im.input(cx, 0)?.into()])
}

/// `Dropout` at inference: the output is the input and the optional mask
/// is all ones (a constant: `BOOL` from opset 10, the input's type before).
/// Training mode (opset 12's `training_mode` input, when true) is
/// unsupported unless the ratio is 0.
fn dropout(im: &mut Importer, cx: &NodeCx) -> NodeResult<Vec<Value>> {
    let input = im.input(cx, 0)?;
    if cx.opset >= 12 && cx.has_input(2) {
        let training = im.const_ints(cx, 2)?.is_some_and(|v| v.first().is_some_and(|&t| t != 0));
        let ratio = if training { im.const_floats(cx, 1)?.and_then(|v| v.first().copied()).unwrap_or(0.5) } else { 0.0 };
        if training && ratio != 0.0 {
            return unsupported("training mode (random dropout) is not supported; kiln runs inference");
        }
    }
    let mut outputs = vec![Value::from(input)];
    if cx.has_output(1) {
        let desc = im.desc(input).clone();
        let data_type = if cx.opset >= 10 { DataType::Uint8 } else { desc.data_type };
        check_constant_size(desc.shape.element_count() as u64, "Dropout's mask")?;
        let values = if data_type.is_float() {
            Values::Float(vec![1.0; desc.shape.element_count()])
        } else {
            Values::Int(vec![1; desc.shape.element_count()])
        };
        let mask = Tensor::from_values(OperandDescriptor::new(data_type, desc.shape), &values)
            .or_else(|e| invalid(e.to_string()))?;
        outputs.push(Value::Const(mask));
    }
    Ok(outputs)
}
