//! The WebNN operator table: maps an operator's JavaScript name and its
//! arguments (positional in spec order, options by name) onto the typed
//! [`Op`]. The `.webnn` text format and the WPT conformance JSON both go
//! through here, so operator names stop at this file.

use std::collections::BTreeMap;

use kiln_ir::*;

use crate::builder::{BuildError, GraphBuilder};

/// An argument value before it is typed by the operator's signature.
#[derive(Clone, Debug, PartialEq)]
pub enum ArgValue {
    Operand(OperandId),
    Number(Number),
    Str(String),
    Bool(bool),
    Null,
    List(Vec<ArgValue>),
}

/// An error in a call's arguments, or from building the operator.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CallError {
    #[error("unknown operator `{0}`")]
    UnknownOperator(String),
    #[error("{op}: argument `{arg}`: {rule}")]
    Argument { op: String, arg: String, rule: String },
    #[error(transparent)]
    Build(#[from] BuildError),
}

/// Every operator name the table maps, sorted: every operator of the IR
/// ([`kiln_ir::operator_names`]).
pub use kiln_ir::operator_names;

/// Whether `name` is an operator the table maps.
pub fn is_operator(name: &str) -> bool {
    operator_names().contains(&name)
}

/// A call's arguments being consumed by an operator signature.
struct Args<'a> {
    op: &'a str,
    positional: std::vec::IntoIter<ArgValue>,
    position: usize,
    named: BTreeMap<String, ArgValue>,
}

impl Args<'_> {
    fn error<T>(&self, arg: &str, rule: impl Into<String>) -> Result<T, CallError> {
        Err(CallError::Argument { op: self.op.to_string(), arg: arg.to_string(), rule: rule.into() })
    }

    /// The next positional argument; once the positional list is used up, the
    /// argument given by its spec name instead (`softmax(x, axis=1)`).
    fn next(&mut self, name: &str) -> Result<ArgValue, CallError> {
        self.position += 1;
        match self.positional.next().or_else(|| self.named.remove(name)) {
            Some(v) => Ok(v),
            None => self.error(name, format!("missing positional argument {}", self.position)),
        }
    }

    fn option(&mut self, name: &str) -> Option<ArgValue> {
        self.named.remove(name).filter(|v| *v != ArgValue::Null)
    }

    fn operand(&mut self, name: &str) -> Result<OperandId, CallError> {
        let v = self.next(name)?;
        self.as_operand(name, v)
    }

    fn as_operand(&self, name: &str, v: ArgValue) -> Result<OperandId, CallError> {
        match v {
            ArgValue::Operand(id) => Ok(id),
            other => self.error(name, format!("expected an operand, got {other:?}")),
        }
    }

    fn opt_operand(&mut self, name: &str) -> Result<Option<OperandId>, CallError> {
        self.option(name).map(|v| self.as_operand(name, v)).transpose()
    }

    fn as_number(&self, name: &str, v: ArgValue) -> Result<Number, CallError> {
        match v {
            ArgValue::Number(n) => Ok(n),
            other => self.error(name, format!("expected a number, got {other:?}")),
        }
    }

    fn as_u32(&self, name: &str, v: ArgValue) -> Result<u32, CallError> {
        match v {
            ArgValue::Number(Number::Int(i)) if (0..=u32::MAX as i128).contains(&i) => Ok(i as u32),
            ArgValue::Number(Number::Float(x)) if x.fract() == 0.0 && (0.0..=u32::MAX as f64).contains(&x) => Ok(x as u32),
            other => self.error(name, format!("expected an unsigned 32-bit integer, got {other:?}")),
        }
    }

    fn as_u32s(&self, name: &str, v: ArgValue) -> Result<Vec<u32>, CallError> {
        match v {
            ArgValue::List(items) => items.into_iter().map(|x| self.as_u32(name, x)).collect(),
            other => self.error(name, format!("expected a list of unsigned integers, got {other:?}")),
        }
    }

    fn u32_pos(&mut self, name: &str) -> Result<u32, CallError> {
        let v = self.next(name)?;
        self.as_u32(name, v)
    }

    fn u32s_pos(&mut self, name: &str) -> Result<Vec<u32>, CallError> {
        let v = self.next(name)?;
        self.as_u32s(name, v)
    }

    fn opt_u32(&mut self, name: &str, default: u32) -> Result<u32, CallError> {
        self.option(name).map_or(Ok(default), |v| self.as_u32(name, v))
    }

    fn opt_u32s(&mut self, name: &str) -> Result<Option<Vec<u32>>, CallError> {
        self.option(name).map(|v| self.as_u32s(name, v)).transpose()
    }

    fn opt_array<const N: usize>(&mut self, name: &str) -> Result<Option<[u32; N]>, CallError> {
        match self.opt_u32s(name)? {
            None => Ok(None),
            Some(v) => match <[u32; N]>::try_from(v) {
                Ok(a) => Ok(Some(a)),
                Err(v) => self.error(name, format!("expected {N} values, got {}", v.len())),
            },
        }
    }

    fn opt_f64(&mut self, name: &str, default: f64) -> Result<f64, CallError> {
        self.option(name).map_or(Ok(default), |v| self.as_number(name, v).map(Number::as_f64))
    }

    fn opt_number(&mut self, name: &str) -> Result<Option<Number>, CallError> {
        self.option(name).map(|v| self.as_number(name, v)).transpose()
    }

    fn opt_bool(&mut self, name: &str) -> Result<bool, CallError> {
        self.opt_bool_or(name, false)
    }

    fn opt_bool_or(&mut self, name: &str, default: bool) -> Result<bool, CallError> {
        match self.option(name) {
            None => Ok(default),
            Some(ArgValue::Bool(b)) => Ok(b),
            Some(other) => self.error(name, format!("expected true or false, got {other:?}")),
        }
    }

    fn as_str(&self, name: &str, v: ArgValue) -> Result<String, CallError> {
        match v {
            ArgValue::Str(s) => Ok(s),
            other => self.error(name, format!("expected a string, got {other:?}")),
        }
    }

    fn opt_enum<T: Default>(&mut self, name: &str, parse: fn(&str) -> Option<T>) -> Result<T, CallError> {
        match self.option(name) {
            None => Ok(T::default()),
            Some(v) => {
                let s = self.as_str(name, v)?;
                parse(&s).map_or_else(|| self.error(name, format!("unknown value \"{s}\"")), Ok)
            }
        }
    }

    /// `activations`: exactly `N` names of `MLRecurrentNetworkActivation`.
    fn opt_activations<const N: usize>(
        &mut self,
        default: [RecurrentActivation; N],
    ) -> Result<[RecurrentActivation; N], CallError> {
        let name = "activations";
        let Some(v) = self.option(name) else { return Ok(default) };
        let ArgValue::List(items) = v else {
            return self.error(name, format!("expected a list of {N} activation names, got {v:?}"));
        };
        let parsed = items
            .into_iter()
            .map(|item| {
                let s = self.as_str(name, item)?;
                RecurrentActivation::from_name(&s).map_or_else(|| self.error(name, format!("unknown activation \"{s}\"")), Ok)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let count = parsed.len();
        <[RecurrentActivation; N]>::try_from(parsed)
            .or_else(|_| self.error(name, format!("expected {N} activations, got {count}")))
    }

    /// The options of `gruCell`, also the cell part of `gru`'s.
    fn gru_cell_options(&mut self) -> Result<GruCellOptions, CallError> {
        let d = GruCellOptions::default();
        Ok(GruCellOptions {
            bias: self.opt_operand("bias")?,
            recurrent_bias: self.opt_operand("recurrentBias")?,
            reset_after: self.opt_bool_or("resetAfter", d.reset_after)?,
            layout: self.opt_enum("layout", GruWeightLayout::from_name)?,
            activations: self.opt_activations(d.activations)?,
        })
    }

    /// The options of `lstmCell`, also the cell part of `lstm`'s.
    fn lstm_cell_options(&mut self) -> Result<LstmCellOptions, CallError> {
        let d = LstmCellOptions::default();
        Ok(LstmCellOptions {
            bias: self.opt_operand("bias")?,
            recurrent_bias: self.opt_operand("recurrentBias")?,
            peephole_weight: self.opt_operand("peepholeWeight")?,
            layout: self.opt_enum("layout", LstmWeightLayout::from_name)?,
            activations: self.opt_activations(d.activations)?,
        })
    }

    /// Fails on any argument the signature did not consume.
    fn finish(mut self) -> Result<(), CallError> {
        if self.positional.next().is_some() {
            return self.error("(positional)", format!("too many positional arguments (expected {})", self.position));
        }
        if let Some(name) = self.named.keys().find(|k| *k != "label") {
            return self.error(name, "unknown option");
        }
        Ok(())
    }
}

/// Builds the operator `name` with its arguments and returns its outputs.
/// `named` holds the options (and `label`, which names the node); a
/// positional argument missing from `positional` may be given there under its
/// spec name (`axis`, `splits`, `newShape`, ...).
pub fn build_call(
    builder: &GraphBuilder,
    name: &str,
    positional: Vec<ArgValue>,
    named: BTreeMap<String, ArgValue>,
) -> Result<Vec<OperandId>, CallError> {
    let label = match named.get("label") {
        Some(ArgValue::Str(s)) => s.clone(),
        _ => String::new(),
    };
    let mut a = Args { op: name, positional: positional.into_iter(), position: 0, named };
    let op = if let Some(kind) = BinaryOp::from_name(name) {
        Op::Binary { kind, a: a.operand("a")?, b: a.operand("b")? }
    } else if let Some(kind) = CompareOp::from_name(name) {
        Op::Compare { kind, a: a.operand("a")?, b: a.operand("b")? }
    } else if let Some(kind) = LogicalOp::from_name(name) {
        Op::Logical { kind, a: a.operand("a")?, b: a.operand("b")? }
    } else if let Some(kind) = UnaryOp::from_name(name) {
        Op::Unary { kind, input: a.operand("input")? }
    } else if let Some(kind) = ReduceOp::from_name(name) {
        let input = a.operand("input")?;
        Op::Reduce {
            kind,
            input,
            options: ReduceOptions { axes: a.opt_u32s("axes")?, keep_dimensions: a.opt_bool("keepDimensions")? },
        }
    } else if let Some(kind) = PredicateOp::from_name(name) {
        Op::Predicate { kind, a: a.operand("a")? }
    } else if let Some(kind) = ArgOp::from_name(name) {
        let (input, axis) = (a.operand("input")?, a.u32_pos("axis")?);
        let keep_dimensions = a.opt_bool("keepDimensions")?;
        let output_data_type = match a.option("outputDataType") {
            None => DataType::Int32,
            Some(v) => {
                let t = a.as_str("outputDataType", v)?;
                DataType::from_name(&t).map_or_else(|| a.error("outputDataType", format!("unknown data type \"{t}\"")), Ok)?
            }
        };
        Op::ArgMinMax { kind, input, axis, keep_dimensions, output_data_type }
    } else if let Some(kind) = PoolOp::from_name(name) {
        let input = a.operand("input")?;
        let d = Pool2dOptions::default();
        Op::Pool2d {
            kind,
            input,
            options: Pool2dOptions {
                window_dimensions: a.opt_array("windowDimensions")?,
                padding: a.opt_array("padding")?.unwrap_or(d.padding),
                strides: a.opt_array("strides")?.unwrap_or(d.strides),
                dilations: a.opt_array("dilations")?.unwrap_or(d.dilations),
                layout: a.opt_enum("layout", InputLayout::from_name)?,
                output_shape_rounding: a.opt_enum("outputShapeRounding", RoundingType::from_name)?,
                output_sizes: a.opt_array("outputSizes")?,
            },
        }
    } else {
        match name {
            "clamp" => {
                let input = a.operand("input")?;
                Op::Clamp { input, min_value: a.opt_number("minValue")?, max_value: a.opt_number("maxValue")? }
            }
            "elu" => Op::Elu { input: a.operand("input")?, alpha: a.opt_f64("alpha", 1.0)? },
            "leakyRelu" => Op::LeakyRelu { input: a.operand("input")?, alpha: a.opt_f64("alpha", 0.01)? },
            "hardSigmoid" => Op::HardSigmoid {
                input: a.operand("input")?,
                alpha: a.opt_f64("alpha", 0.2)?,
                beta: a.opt_f64("beta", 0.5)?,
            },
            "linear" => Op::Linear {
                input: a.operand("input")?,
                alpha: a.opt_f64("alpha", 1.0)?,
                beta: a.opt_f64("beta", 0.0)?,
            },
            "prelu" => Op::Prelu { input: a.operand("input")?, slope: a.operand("slope")? },
            "cast" => {
                let input = a.operand("input")?;
                let v = a.next("type")?;
                let t = a.as_str("type", v)?;
                let data_type = DataType::from_name(&t).map_or_else(|| a.error("type", format!("unknown data type \"{t}\"")), Ok)?;
                Op::Cast { input, data_type }
            }
            "conv2d" => {
                let (input, filter) = (a.operand("input")?, a.operand("filter")?);
                let d = Conv2dOptions::default();
                let options = Conv2dOptions {
                    padding: a.opt_array("padding")?.unwrap_or(d.padding),
                    strides: a.opt_array("strides")?.unwrap_or(d.strides),
                    dilations: a.opt_array("dilations")?.unwrap_or(d.dilations),
                    groups: a.opt_u32("groups", d.groups)?,
                    input_layout: a.opt_enum("inputLayout", InputLayout::from_name)?,
                    filter_layout: a.opt_enum("filterLayout", Conv2dFilterLayout::from_name)?,
                    bias: a.opt_operand("bias")?,
                };
                Op::Conv2d { input, filter, options }
            }
            "convTranspose2d" => {
                let (input, filter) = (a.operand("input")?, a.operand("filter")?);
                let d = ConvTranspose2dOptions::default();
                let options = ConvTranspose2dOptions {
                    padding: a.opt_array("padding")?.unwrap_or(d.padding),
                    strides: a.opt_array("strides")?.unwrap_or(d.strides),
                    dilations: a.opt_array("dilations")?.unwrap_or(d.dilations),
                    output_padding: a.opt_array("outputPadding")?.unwrap_or(d.output_padding),
                    output_sizes: a.opt_array("outputSizes")?,
                    groups: a.opt_u32("groups", d.groups)?,
                    input_layout: a.opt_enum("inputLayout", InputLayout::from_name)?,
                    filter_layout: a.opt_enum("filterLayout", ConvTranspose2dFilterLayout::from_name)?,
                    bias: a.opt_operand("bias")?,
                };
                Op::ConvTranspose2d { input, filter, options }
            }
            "gemm" => {
                let (x, y) = (a.operand("a")?, a.operand("b")?);
                let options = GemmOptions {
                    c: a.opt_operand("c")?,
                    alpha: a.opt_f64("alpha", 1.0)?,
                    beta: a.opt_f64("beta", 1.0)?,
                    a_transpose: a.opt_bool("aTranspose")?,
                    b_transpose: a.opt_bool("bTranspose")?,
                };
                Op::Gemm { a: x, b: y, options }
            }
            "matmul" => Op::Matmul { a: a.operand("a")?, b: a.operand("b")? },
            "batchNormalization" => {
                let (input, mean, variance) = (a.operand("input")?, a.operand("mean")?, a.operand("variance")?);
                let options = BatchNormalizationOptions {
                    scale: a.opt_operand("scale")?,
                    bias: a.opt_operand("bias")?,
                    axis: a.opt_u32("axis", 1)?,
                    epsilon: a.opt_f64("epsilon", 1e-5)?,
                };
                Op::BatchNormalization { input, mean, variance, options }
            }
            "layerNormalization" => {
                let input = a.operand("input")?;
                let options = LayerNormalizationOptions {
                    scale: a.opt_operand("scale")?,
                    bias: a.opt_operand("bias")?,
                    axes: a.opt_u32s("axes")?,
                    epsilon: a.opt_f64("epsilon", 1e-5)?,
                };
                Op::LayerNormalization { input, options }
            }
            "instanceNormalization" => {
                let input = a.operand("input")?;
                let options = InstanceNormalizationOptions {
                    scale: a.opt_operand("scale")?,
                    bias: a.opt_operand("bias")?,
                    epsilon: a.opt_f64("epsilon", 1e-5)?,
                    layout: a.opt_enum("layout", InputLayout::from_name)?,
                };
                Op::InstanceNormalization { input, options }
            }
            "softmax" => Op::Softmax { input: a.operand("input")?, axis: a.u32_pos("axis")? },
            "reshape" => Op::Reshape { input: a.operand("input")?, new_shape: a.u32s_pos("newShape")? },
            "transpose" => Op::Transpose { input: a.operand("input")?, permutation: a.opt_u32s("permutation")? },
            "concat" => {
                let inputs = match a.next("inputs")? {
                    ArgValue::List(items) => items
                        .into_iter()
                        .map(|v| a.as_operand("inputs", v))
                        .collect::<Result<Vec<_>, _>>()?,
                    other => return a.error("inputs", format!("expected a list of operands, got {other:?}")),
                };
                Op::Concat { inputs, axis: a.u32_pos("axis")? }
            }
            "split" => {
                let input = a.operand("input")?;
                let splits = match a.next("splits")? {
                    v @ ArgValue::List(_) => Splits::Sizes(a.as_u32s("splits", v)?),
                    v => Splits::Count(a.as_u32("splits", v)?),
                };
                Op::Split { input, splits, axis: a.opt_u32("axis", 0)? }
            }
            "slice" => Op::Slice {
                input: a.operand("input")?,
                starts: a.u32s_pos("starts")?,
                sizes: a.u32s_pos("sizes")?,
                strides: a.opt_u32s("strides")?,
            },
            "expand" => Op::Expand { input: a.operand("input")?, new_shape: a.u32s_pos("newShape")? },
            "gather" => Op::Gather {
                input: a.operand("input")?,
                indices: a.operand("indices")?,
                axis: a.opt_u32("axis", 0)?,
            },
            "pad" => {
                let input = a.operand("input")?;
                let (beginning_padding, ending_padding) = (a.u32s_pos("beginningPadding")?, a.u32s_pos("endingPadding")?);
                let options = PadOptions {
                    mode: a.opt_enum("mode", PaddingMode::from_name)?,
                    value: a.opt_number("value")?.unwrap_or(Number::Float(0.0)),
                };
                Op::Pad { input, beginning_padding, ending_padding, options }
            }
            "resample2d" => {
                let input = a.operand("input")?;
                let scales = match a.option("scales") {
                    None => None,
                    Some(ArgValue::List(items)) if items.len() == 2 => {
                        let s: Vec<f32> = items
                            .into_iter()
                            .map(|v| a.as_number("scales", v).map(|n| n.as_f64() as f32))
                            .collect::<Result<_, _>>()?;
                        Some([s[0], s[1]])
                    }
                    Some(other) => return a.error("scales", format!("expected 2 numbers, got {other:?}")),
                };
                let options = Resample2dOptions {
                    mode: a.opt_enum("mode", InterpolationMode::from_name)?,
                    scales,
                    sizes: a.opt_array("sizes")?,
                    axes: a.opt_array("axes")?.unwrap_or([2, 3]),
                };
                Op::Resample2d { input, options }
            }
            "where" => Op::Where {
                condition: a.operand("condition")?,
                true_value: a.operand("trueValue")?,
                false_value: a.operand("falseValue")?,
            },
            "cumulativeSum" => Op::CumulativeSum {
                input: a.operand("input")?,
                axis: a.u32_pos("axis")?,
                exclusive: a.opt_bool("exclusive")?,
                reversed: a.opt_bool("reversed")?,
            },
            "dequantizeLinear" => Op::DequantizeLinear {
                input: a.operand("input")?,
                scale: a.operand("scale")?,
                zero_point: a.operand("zeroPoint")?,
            },
            "quantizeLinear" => Op::QuantizeLinear {
                input: a.operand("input")?,
                scale: a.operand("scale")?,
                zero_point: a.operand("zeroPoint")?,
            },
            "gatherElements" => Op::GatherElements {
                input: a.operand("input")?,
                indices: a.operand("indices")?,
                axis: a.opt_u32("axis", 0)?,
            },
            "gatherND" => Op::GatherNd { input: a.operand("input")?, indices: a.operand("indices")? },
            "scatterElements" => Op::ScatterElements {
                input: a.operand("input")?,
                indices: a.operand("indices")?,
                updates: a.operand("updates")?,
                axis: a.opt_u32("axis", 0)?,
            },
            "scatterND" => Op::ScatterNd {
                input: a.operand("input")?,
                indices: a.operand("indices")?,
                updates: a.operand("updates")?,
            },
            "reverse" => Op::Reverse { input: a.operand("input")?, axes: a.opt_u32s("axes")? },
            "tile" => Op::Tile { input: a.operand("input")?, repetitions: a.u32s_pos("repetitions")? },
            "triangular" => {
                let input = a.operand("input")?;
                let upper = a.opt_bool_or("upper", true)?;
                let diagonal = match a.option("diagonal") {
                    None => 0,
                    Some(v) => match a.as_number("diagonal", v)? {
                        Number::Int(i) if i32::try_from(i).is_ok() => i as i32,
                        Number::Float(x) if x.fract() == 0.0 && (i32::MIN as f64..=i32::MAX as f64).contains(&x) => x as i32,
                        other => return a.error("diagonal", format!("expected a 32-bit integer, got {other:?}")),
                    },
                };
                Op::Triangular { input, upper, diagonal }
            }
            "attention" => {
                let (query, key, value) = (a.operand("query")?, a.operand("key")?, a.operand("value")?);
                let options = AttentionOptions { mask: a.opt_operand("mask")?, scale: a.opt_f64("scale", 1.0)? };
                Op::Attention { query, key, value, options }
            }
            "gru" => {
                let (input, weight, recurrent_weight) =
                    (a.operand("input")?, a.operand("weight")?, a.operand("recurrentWeight")?);
                let (steps, hidden_size) = (a.u32_pos("steps")?, a.u32_pos("hiddenSize")?);
                let cell = a.gru_cell_options()?;
                let options = GruOptions {
                    cell,
                    initial_hidden_state: a.opt_operand("initialHiddenState")?,
                    return_sequence: a.opt_bool("returnSequence")?,
                    direction: a.opt_enum("direction", RecurrentDirection::from_name)?,
                };
                Op::Gru { input, weight, recurrent_weight, steps, hidden_size, options }
            }
            "gruCell" => {
                let (input, weight, recurrent_weight, hidden_state) = (
                    a.operand("input")?,
                    a.operand("weight")?,
                    a.operand("recurrentWeight")?,
                    a.operand("hiddenState")?,
                );
                let hidden_size = a.u32_pos("hiddenSize")?;
                let options = a.gru_cell_options()?;
                Op::GruCell { input, weight, recurrent_weight, hidden_state, hidden_size, options }
            }
            "lstm" => {
                let (input, weight, recurrent_weight) =
                    (a.operand("input")?, a.operand("weight")?, a.operand("recurrentWeight")?);
                let (steps, hidden_size) = (a.u32_pos("steps")?, a.u32_pos("hiddenSize")?);
                let cell = a.lstm_cell_options()?;
                let options = LstmOptions {
                    cell,
                    initial_hidden_state: a.opt_operand("initialHiddenState")?,
                    initial_cell_state: a.opt_operand("initialCellState")?,
                    return_sequence: a.opt_bool("returnSequence")?,
                    direction: a.opt_enum("direction", RecurrentDirection::from_name)?,
                };
                Op::Lstm { input, weight, recurrent_weight, steps, hidden_size, options }
            }
            "lstmCell" => {
                let (input, weight, recurrent_weight, hidden_state, cell_state) = (
                    a.operand("input")?,
                    a.operand("weight")?,
                    a.operand("recurrentWeight")?,
                    a.operand("hiddenState")?,
                    a.operand("cellState")?,
                );
                let hidden_size = a.u32_pos("hiddenSize")?;
                let options = a.lstm_cell_options()?;
                Op::LstmCell { input, weight, recurrent_weight, hidden_state, cell_state, hidden_size, options }
            }
            other => return Err(CallError::UnknownOperator(other.to_string())),
        }
    };
    a.finish()?;
    Ok(builder.op(op, &label)?)
}
