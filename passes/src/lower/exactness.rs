//! Exactness: which nodes the f32 kernels compute exactly. [`host_reason`]
//! is the one place that sends a node to a host kernel instead (the cases
//! are listed in the [`lower`](super) module documentation); [`cast_rule`]
//! decides how a cast is lowered.

use half::f16;
use kiln_ir::{
    BinaryOp, DataType, Graph, InterpolationMode, Op, OperandId, OperandKind, PaddingMode, PoolOp, ReduceOp, UnaryOp,
    Values,
};

use super::movement::pad_fill;

/// Whether kernels compute exactly on this type (floats; the 8-bit integers).
fn computable(t: DataType) -> bool {
    t.is_float() || matches!(t, DataType::Int8 | DataType::Uint8)
}

fn need_computable(t: DataType) -> Result<(), String> {
    if computable(t) {
        Ok(())
    } else {
        Err(format!(
            "{t} operands: kernels compute in f32, which holds integers exactly only up to 2^24, \
             so arithmetic, comparisons and selections on 32- and 64-bit integers are not exact there"
        ))
    }
}

/// Whether operand `id` is an integer constant whose every value lies
/// strictly between -2^24 and 2^24. A comparison with such a constant is
/// exact in f32 whatever the other operand: an integer of magnitude up to
/// 2^24 converts exactly, and a larger one converts (rounding is monotone)
/// to a value of magnitude at least 2^24, on the same side of every such
/// constant as the integer itself, and equal to none of them.
fn small_int_constant(graph: &Graph, id: OperandId) -> bool {
    const LIMIT: i128 = 1 << 24;
    match &graph.operand(id).kind {
        OperandKind::Constant(t) => match t.values() {
            Values::Int(v) => v.iter().all(|x| x.abs() < LIMIT),
            Values::Float(_) => false,
        },
        _ => false,
    }
}

/// Why the f32 kernels cannot compute `op` exactly (so that it becomes a
/// host kernel), or `None` when they can. The one place that decides; the
/// [`lower`](super) module documentation lists the cases.
pub(super) fn host_reason(graph: &Graph, op: &Op) -> Option<String> {
    let t_of = |id: OperandId| graph.desc(id).data_type;
    let dim = |id: OperandId, axis: usize| graph.desc(id).shape.dims()[axis] as usize;
    let result = match op {
        Op::Binary { kind, a, .. } => {
            let t = t_of(*a);
            need_computable(t).and_then(|()| {
                if *kind == BinaryOp::Pow && !t.is_float() {
                    Err(format!("pow on {t}: exact integer powers do not fit f32"))
                } else {
                    Ok(())
                }
            })
        }
        Op::Compare { a, b, .. } if [*a, *b].iter().any(|&id| small_int_constant(graph, id)) => Ok(()),
        Op::Compare { a, .. } => need_computable(t_of(*a)),
        // sign's result depends only on the sign, which converting to f32 keeps.
        Op::Unary { kind, input } if !matches!(kind, UnaryOp::Identity | UnaryOp::Sign) => need_computable(t_of(*input)),
        Op::Clamp { input, .. } | Op::Prelu { input, .. } => need_computable(t_of(*input)),
        Op::Where { true_value, .. } => need_computable(t_of(*true_value)),
        Op::Cast { input, data_type } => cast_rule(t_of(*input), *data_type).map(|_| ()),
        Op::Pool2d { kind: PoolOp::Max, input, .. } => need_computable(t_of(*input)),
        Op::Reduce { kind, input, .. } => {
            let t = t_of(*input);
            match kind {
                ReduceOp::Max | ReduceOp::Min => need_computable(t),
                _ if !t.is_float() => Err(format!(
                    "{} on {t}: kernels accumulate in f32, which holds integers exactly only up to 2^24",
                    kind.name()
                )),
                _ => Ok(()),
            }
        }
        Op::Resample2d { input, options } if options.mode == InterpolationMode::Linear && !t_of(*input).is_float() => {
            Err(format!(
                "linear resampling of {}: the result is rounded to an integer, and an f32 \
                 interpolation can round differently from the exact one at ties",
                t_of(*input)
            ))
        }
        Op::Pad { input, beginning_padding, ending_padding, options }
            if options.mode == PaddingMode::Constant
                && beginning_padding.iter().chain(ending_padding).any(|&p| p != 0) =>
        {
            pad_fill(t_of(*input), options.value).map(|_| ())
        }
        Op::ArgMinMax { input, axis, .. } => {
            need_computable(t_of(*input)).and_then(|()| countable("the axis", dim(*input, *axis as usize)))
        }
        Op::Triangular { input, .. } => need_computable(t_of(*input)),
        Op::CumulativeSum { input, .. } if !t_of(*input).is_float() => Err(format!(
            "cumulativeSum on {}: kernels add in f32, which holds integers exactly only up to 2^24",
            t_of(*input)
        )),
        Op::DequantizeLinear { input: q, .. } | Op::QuantizeLinear { zero_point: q, .. } => need_computable(t_of(*q)),
        Op::GatherElements { input, axis, .. } | Op::ScatterElements { input, axis, .. } => {
            need_computable(t_of(*input)).and_then(|()| countable("the axis", dim(*input, *axis as usize)))
        }
        Op::GatherNd { input, indices } | Op::ScatterNd { input, indices, .. } => {
            let k = *graph.desc(*indices).shape.dims().last().unwrap_or(&0) as usize;
            let addressed: usize = graph.desc(*input).shape.dims()[..k].iter().map(|&d| d as usize).product();
            let tuples = graph.desc(*indices).shape.element_count() / k.max(1);
            need_computable(t_of(*input))
                .and_then(|()| countable("the addressed extent", addressed))
                .and_then(|()| countable("the index tuples", tuples))
        }
        _ => Ok(()),
    };
    result.err()
}

/// Kernels that compare positions count them in f32: exact up to 2^24.
fn countable(what: &str, n: usize) -> Result<(), String> {
    if n <= 1 << 24 {
        Ok(())
    } else {
        Err(format!("{what} has {n} positions: kernels count positions in f32, exactly only up to 2^24"))
    }
}

/// `x` rounded to a value of data type `t` (floats; used for bounds and
/// fills that are stored unchanged), as f32.
pub(super) fn round_to(t: DataType, x: f64) -> f32 {
    match t {
        DataType::Float16 => f16::from_f64(x).to_f32(),
        _ => x as f32,
    }
}

/// How a cast between two data types is lowered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CastRule {
    /// Same type: a byte copy.
    Copy,
    /// Load as f32, store converted: exact for every float source or
    /// target and for int8/uint8 sources whose values the target holds.
    Convert,
    /// int8 <-> uint8: converted and wrapped modulo 256 (exact).
    Wrap,
}

/// The rule for a cast `from -> to`, or why it is not lowered:
/// - the same type: a byte copy;
/// - to a float type, or from a float type: load/convert/store (float to
///   integer truncates toward zero and saturates, NaN giving 0; integer to
///   float rounds to nearest, from the value itself);
/// - from int8/uint8 to an integer type that holds every source value
///   (uint8 to any integer type, int8 to int32/int64): exact;
/// - int8 <-> uint8: exact, wrapping modulo 256;
/// - every other integer-to-integer cast (from a 32/64-bit integer, or
///   int8 to uint32/uint64, which wraps beyond 2^24) is unsupported.
pub fn cast_rule(from: DataType, to: DataType) -> Result<CastRule, String> {
    use DataType::*;
    if from == to {
        return Ok(CastRule::Copy);
    }
    if from.is_float() || to.is_float() {
        return Ok(CastRule::Convert);
    }
    match (from, to) {
        (Uint8, _) | (Int8, Int32 | Int64) if to != Int8 => Ok(CastRule::Convert),
        (Int8, Uint8) | (Uint8, Int8) => Ok(CastRule::Wrap),
        _ => Err(format!(
            "cast {from} -> {to}: kernels compute in f32, which holds integers exactly only up to 2^24, \
             and this integer cast needs the exact value (it may wrap)"
        )),
    }
}
