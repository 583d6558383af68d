//! What every operator accepts, operand by operand: data types and ranks.
//!
//! One table, read twice: by the validator ([`crate::infer`] checks every
//! operand of a node against it before the operator's own rules) and by
//! [`op_support_limits`] (WebNN's `MLOpSupportLimits`), so the limits a
//! context reports and the graphs it accepts cannot disagree. Rules that
//! relate operands beyond their types and ranks (shapes, broadcasting,
//! options) stay with each operator in `infer.rs`.
//!
//! Every backend runs every operator for every data type the table allows
//! (what generated kernels cannot compute exactly runs as a host kernel),
//! so the limits do not depend on the backend.

use crate::{DataType, InputLayout, Op, OperandDescriptor, OperandId, UnaryOp, ReduceOp, PoolOp, MAX_TENSOR_BYTES};

use DataType::*;

/// Every data type.
pub const ANY: &[DataType] = &DataType::ALL;
/// The floating-point types.
pub const FLOATS: &[DataType] = &[Float32, Float16];
const SIGNED_NUMERIC: &[DataType] = &[Float32, Float16, Int64, Int32, Int8];
const INDEX_TYPES: &[DataType] = &[Int32, Uint32, Int64];
const ACCUMULATING: &[DataType] = &[Float32, Float16, Int32, Uint32, Int64, Uint64];
const QUANTIZED: &[DataType] = &[Uint8, Int8, Uint32, Int32];
const RESAMPLED: &[DataType] = &[Float32, Float16, Uint8, Int8];
const BOOLEAN: &[DataType] = &[Uint8];

/// The data types an operand accepts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Types {
    /// Any of these.
    OneOf(&'static [DataType]),
    /// The data type of the operand of this name (listed before it).
    SameAs(&'static str),
}

/// The ranks an operand accepts: `min..=max`, `max` `None` for no limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ranks {
    pub min: usize,
    pub max: Option<usize>,
}

impl Ranks {
    pub const ANY: Ranks = Ranks { min: 0, max: None };

    pub const fn exactly(n: usize) -> Ranks {
        Ranks { min: n, max: Some(n) }
    }

    pub const fn at_least(n: usize) -> Ranks {
        Ranks { min: n, max: None }
    }

    pub fn contains(self, rank: usize) -> bool {
        rank >= self.min && self.max.is_none_or(|m| rank <= m)
    }
}

/// The limits of one operand (or of the output, named `output`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OperandLimits {
    /// The spec's name of the operand (`input`, `filter`, `bias`, ...).
    pub operand: &'static str,
    pub types: Types,
    pub ranks: Ranks,
}

const fn operand(operand: &'static str, types: Types, ranks: Ranks) -> OperandLimits {
    OperandLimits { operand, types, ranks }
}

const fn one_of(name: &'static str, types: &'static [DataType], ranks: Ranks) -> OperandLimits {
    operand(name, Types::OneOf(types), ranks)
}

const fn same_as(name: &'static str, other: &'static str, ranks: Ranks) -> OperandLimits {
    operand(name, Types::SameAs(other), ranks)
}

const OUT_SAME: OperandLimits = same_as("output", "input", Ranks::ANY);
const ANY_INPUT: OperandLimits = one_of("input", ANY, Ranks::ANY);

/// The limits of the operator named `name` (its WebNN name, or kiln's for
/// its own operators), operands in the spec's order, then `output`; `None`
/// for an unknown name.
pub fn operand_limits(name: &str) -> Option<Vec<OperandLimits>> {
    use Ranks as Rk;
    let any = Rk::ANY;
    let unary = |types: &'static [DataType]| vec![one_of("input", types, any), OUT_SAME];
    let binary = |types: &'static [DataType], out: Types| {
        vec![one_of("a", types, any), same_as("b", "a", any), operand("output", out, any)]
    };
    let recurrent = |rank: usize, vectors: &[&'static str], states: &[&'static str]| {
        let mut v = vec![
            one_of("input", FLOATS, Rk::exactly(rank)),
            same_as("weight", "input", Rk::exactly(rank)),
            same_as("recurrentWeight", "input", Rk::exactly(rank)),
        ];
        v.extend(vectors.iter().map(|&n| same_as(n, "input", Rk::exactly(rank - 1))));
        v.extend(states.iter().map(|&n| same_as(n, "input", Rk::exactly(rank))));
        v
    };
    if let Some(kind) = UnaryOp::from_name(name) {
        return Some(unary(match kind {
            UnaryOp::Abs | UnaryOp::Neg | UnaryOp::Relu | UnaryOp::Sign => SIGNED_NUMERIC,
            UnaryOp::Identity => ANY,
            UnaryOp::LogicalNot => BOOLEAN,
            _ => FLOATS,
        }));
    }
    if let Some(kind) = ReduceOp::from_name(name) {
        return Some(unary(match kind {
            ReduceOp::L1 | ReduceOp::Sum | ReduceOp::SumSquare | ReduceOp::Product => ACCUMULATING,
            ReduceOp::Max | ReduceOp::Min => ANY,
            ReduceOp::L2 | ReduceOp::LogSum | ReduceOp::LogSumExp | ReduceOp::Mean => FLOATS,
        }));
    }
    if let Some(kind) = PoolOp::from_name(name) {
        let types = if kind == PoolOp::Max { ANY } else { FLOATS };
        return Some(vec![one_of("input", types, Rk::exactly(4)), OUT_SAME]);
    }
    let limits = match name {
        "add" | "sub" | "mul" | "div" | "max" | "min" | "pow" => binary(ANY, Types::SameAs("a")),
        "equal" | "notEqual" | "greater" | "greaterOrEqual" | "lesser" | "lesserOrEqual" => {
            binary(ANY, Types::OneOf(BOOLEAN))
        }
        "logicalAnd" | "logicalOr" | "logicalXor" => binary(BOOLEAN, Types::OneOf(BOOLEAN)),
        "isNaN" | "isInfinite" => vec![one_of("a", ANY, any), one_of("output", BOOLEAN, any)],
        "clamp" | "reshape" | "transpose" | "expand" | "slice" | "pad" | "reverse" | "tile" => {
            vec![ANY_INPUT, OUT_SAME]
        }
        "elu" | "leakyRelu" | "hardSigmoid" | "linear" => unary(FLOATS),
        "prelu" => vec![one_of("input", SIGNED_NUMERIC, any), same_as("slope", "input", any), OUT_SAME],
        "cast" => vec![ANY_INPUT, one_of("output", ANY, any)],
        "conv2d" | "convTranspose2d" => vec![
            one_of("input", FLOATS, Rk::exactly(4)),
            same_as("filter", "input", Rk::exactly(4)),
            same_as("bias", "input", Rk::exactly(1)),
            OUT_SAME,
        ],
        "gemm" => vec![
            one_of("a", FLOATS, Rk::exactly(2)),
            same_as("b", "a", Rk::exactly(2)),
            same_as("c", "a", Ranks { min: 0, max: Some(2) }),
            same_as("output", "a", Rk::exactly(2)),
        ],
        "matmul" => vec![
            one_of("a", FLOATS, Rk::at_least(2)),
            same_as("b", "a", Rk::at_least(2)),
            same_as("output", "a", Rk::at_least(2)),
        ],
        "batchNormalization" => vec![
            one_of("input", FLOATS, Rk::at_least(1)),
            same_as("mean", "input", Rk::exactly(1)),
            same_as("variance", "input", Rk::exactly(1)),
            same_as("scale", "input", Rk::exactly(1)),
            same_as("bias", "input", Rk::exactly(1)),
            OUT_SAME,
        ],
        "layerNormalization" => vec![
            one_of("input", FLOATS, any),
            same_as("scale", "input", any),
            same_as("bias", "input", any),
            OUT_SAME,
        ],
        "instanceNormalization" => vec![
            one_of("input", FLOATS, Rk::exactly(4)),
            same_as("scale", "input", Rk::exactly(1)),
            same_as("bias", "input", Rk::exactly(1)),
            OUT_SAME,
        ],
        "softmax" => vec![one_of("input", FLOATS, Rk::at_least(1)), OUT_SAME],
        "concat" => vec![one_of("inputs", ANY, Rk::at_least(1)), same_as("output", "inputs", Rk::at_least(1))],
        "split" => vec![one_of("input", ANY, Rk::at_least(1)), OUT_SAME],
        "triangular" => vec![one_of("input", ANY, Rk::at_least(2)), OUT_SAME],
        "argMin" | "argMax" => vec![one_of("input", ANY, Rk::at_least(1)), one_of("output", &[Int32, Int64], any)],
        "cumulativeSum" => vec![one_of("input", ACCUMULATING, Rk::at_least(1)), OUT_SAME],
        "gather" | "gatherElements" => {
            vec![one_of("input", ANY, Rk::at_least(1)), one_of("indices", INDEX_TYPES, any), OUT_SAME]
        }
        "gatherND" => vec![
            one_of("input", ANY, Rk::at_least(1)),
            one_of("indices", INDEX_TYPES, Rk::at_least(1)),
            OUT_SAME,
        ],
        "scatterElements" => vec![
            one_of("input", ANY, Rk::at_least(1)),
            one_of("indices", INDEX_TYPES, any),
            same_as("updates", "input", any),
            OUT_SAME,
        ],
        "scatterND" => vec![
            one_of("input", ANY, Rk::at_least(1)),
            one_of("indices", INDEX_TYPES, Rk::at_least(1)),
            same_as("updates", "input", any),
            OUT_SAME,
        ],
        "resample2d" => vec![one_of("input", RESAMPLED, Rk::exactly(4)), OUT_SAME],
        "where" => vec![
            one_of("condition", BOOLEAN, any),
            one_of("trueValue", ANY, any),
            same_as("falseValue", "trueValue", any),
            same_as("output", "trueValue", any),
        ],
        "dequantizeLinear" => vec![
            one_of("input", QUANTIZED, any),
            one_of("scale", FLOATS, any),
            same_as("zeroPoint", "input", any),
            same_as("output", "scale", any),
        ],
        "quantizeLinear" => vec![
            one_of("input", FLOATS, any),
            same_as("scale", "input", any),
            one_of("zeroPoint", QUANTIZED, any),
            same_as("output", "zeroPoint", any),
        ],
        "attention" => vec![
            one_of("query", FLOATS, Rk::at_least(2)),
            same_as("key", "query", Rk::at_least(2)),
            same_as("value", "query", Rk::at_least(2)),
            same_as("mask", "query", any),
            same_as("output", "query", Rk::at_least(2)),
        ],
        "gru" => {
            let mut v = recurrent(3, &["bias", "recurrentBias"], &["initialHiddenState"]);
            v.push(same_as("output", "input", Ranks { min: 3, max: Some(4) }));
            v
        }
        "gruCell" => {
            let mut v = recurrent(2, &["bias", "recurrentBias"], &["hiddenState"]);
            v.push(same_as("output", "input", Rk::exactly(2)));
            v
        }
        "lstm" => {
            let mut v = recurrent(3, &["bias", "recurrentBias", "peepholeWeight"], &["initialHiddenState", "initialCellState"]);
            v.push(same_as("output", "input", Ranks { min: 3, max: Some(4) }));
            v
        }
        "lstmCell" => {
            let mut v = recurrent(2, &["bias", "recurrentBias", "peepholeWeight"], &["hiddenState", "cellState"]);
            v.push(same_as("output", "input", Rk::exactly(2)));
            v
        }
        _ => return None,
    };
    Some(limits)
}

/// Checks every operand of `op` against [`operand_limits`]: its type and
/// rank. The error names the operand and the rule, as the validator's
/// other rules do.
pub(crate) fn check_operands<'g>(
    op: &Op,
    desc: &dyn Fn(OperandId) -> &'g OperandDescriptor,
) -> Result<(), crate::infer::OpError> {
    let limits = operand_limits(op.name()).expect("every operator has limits (tests/limits.rs)");
    let inputs = op.inputs();
    let type_of = |name: &str| inputs.iter().find(|(n, _)| *n == name).map(|&(_, id)| desc(id).data_type);
    for (name, id) in &inputs {
        let Some(l) = limits.iter().find(|l| l.operand == *name) else { continue };
        let d = desc(*id);
        match l.types {
            Types::OneOf(allowed) if !allowed.contains(&d.data_type) => {
                let names: Vec<_> = allowed.iter().map(|t| t.name()).collect();
                return Err(crate::infer::OpError::new(
                    *name,
                    format!("data type {} is not one of {}", d.data_type, names.join(", ")),
                ));
            }
            Types::SameAs(other) => {
                if let Some(expected) = type_of(other).filter(|t| *t != d.data_type) {
                    return Err(crate::infer::OpError::new(
                        *name,
                        format!("data type {} must match the {other}'s {expected}", d.data_type),
                    ));
                }
            }
            Types::OneOf(_) => {}
        }
        let r = d.shape.rank();
        if !l.ranks.contains(r) {
            let rule = match l.ranks.max {
                Some(max) if max == l.ranks.min => format!("rank must be {max}, got {r} (shape {})", d.shape),
                Some(max) => format!("rank must be in {}..={max}, got {r} (shape {})", l.ranks.min, d.shape),
                None => format!("rank must be in {}..={}, got {r} (shape {})", l.ranks.min, usize::MAX, d.shape),
            };
            return Err(crate::infer::OpError::new(*name, rule));
        }
    }
    Ok(())
}

/// The limits of one operand as `MLOpSupportLimits` reports them: the data
/// types (a `SameAs` resolved to the other operand's) and the rank range.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorLimits {
    pub operand: &'static str,
    pub data_types: Vec<DataType>,
    pub ranks: Ranks,
}

/// WebNN's `MLOpSupportLimits`: what a context accepts.
#[derive(Clone, Debug, PartialEq)]
pub struct OpSupportLimits {
    /// The layout the backends prefer for convolutions and pooling.
    pub preferred_input_layout: InputLayout,
    /// The largest tensor, in bytes.
    pub max_tensor_byte_length: u64,
    /// The data types of graph inputs, constants and outputs.
    pub input: Vec<DataType>,
    pub constant: Vec<DataType>,
    pub output: Vec<DataType>,
    /// Per operator (sorted by name), per operand.
    pub operators: Vec<(&'static str, Vec<TensorLimits>)>,
}

/// The limits of every operator of [`crate::operator_names`].
pub fn op_support_limits() -> OpSupportLimits {
    let operators = crate::operator_names()
        .into_iter()
        .map(|name| {
            let limits = operand_limits(name).expect("every operator has limits (tests/limits.rs)");
            let resolved = limits
                .iter()
                .map(|l| TensorLimits { operand: l.operand, data_types: resolve(&limits, l.types), ranks: l.ranks })
                .collect();
            (name, resolved)
        })
        .collect();
    OpSupportLimits {
        preferred_input_layout: InputLayout::Nchw,
        max_tensor_byte_length: MAX_TENSOR_BYTES,
        input: ANY.to_vec(),
        constant: ANY.to_vec(),
        output: ANY.to_vec(),
        operators,
    }
}

/// The data types `types` stands for among `limits`.
fn resolve(limits: &[OperandLimits], types: Types) -> Vec<DataType> {
    match types {
        Types::OneOf(t) => t.to_vec(),
        Types::SameAs(other) => {
            let l = limits.iter().find(|l| l.operand == other).expect("SameAs names an earlier operand");
            resolve(limits, l.types)
        }
    }
}
