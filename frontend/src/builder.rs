//! `GraphBuilder`: the `MLGraphBuilder` of WebNN with Rust names.
//!
//! Every method validates its operands with the IR's shape rules and returns
//! the new operand (an [`OperandId`], cheap to copy). `build` hands the graph
//! over once; any call after it is [`BuildError::AlreadyBuilt`], not a panic.
//!
//! ```
//! use kiln_frontend::builder::GraphBuilder;
//! use kiln_ir::{Conv2dOptions, DataType, OperandDescriptor};
//!
//! let b = GraphBuilder::new();
//! let x = b.input("x", OperandDescriptor::new(DataType::Float32, [1, 3, 8, 8]))?;
//! let w = b.constant_f32([4, 3, 3, 3], &vec![0.1; 4 * 27])?;
//! let y = b.relu(b.conv2d(x, w, Conv2dOptions { padding: [1; 4], ..Default::default() })?)?;
//! let graph = b.build(&[("y", y)])?;
//! assert_eq!(graph.desc(graph.outputs()[0].1).shape.dims(), &[1, 4, 8, 8]);
//! # Ok::<(), kiln_frontend::builder::BuildError>(())
//! ```

use std::cell::RefCell;

use kiln_ir::*;

/// An error from the builder.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Graph(#[from] GraphError),
    #[error("constant{}: {error}", fmt_name(.name))]
    ConstantData { error: TensorSizeError, name: String },
    #[error("this builder has already built its graph; create a new GraphBuilder")]
    AlreadyBuilt,
    #[error("build: at least one output is required")]
    NoOutputs,
}

fn fmt_name(name: &str) -> String {
    if name.is_empty() { String::new() } else { format!(" `{name}`") }
}

/// Builds a [`Graph`] one operator at a time.
#[derive(Default)]
pub struct GraphBuilder {
    graph: RefCell<Option<Graph>>,
}

macro_rules! unary_methods {
    ($($method:ident => $kind:ident),* $(,)?) => {$(
        #[doc = concat!("`", stringify!($method), "(input)`.")]
        pub fn $method(&self, input: OperandId) -> Result<OperandId, BuildError> {
            self.op1(Op::Unary { kind: UnaryOp::$kind, input })
        }
    )*};
}

macro_rules! binary_methods {
    ($variant:ident, $enum:ident: $($method:ident => $kind:ident),* $(,)?) => {$(
        #[doc = concat!("`", stringify!($method), "(a, b)` with broadcasting.")]
        pub fn $method(&self, a: OperandId, b: OperandId) -> Result<OperandId, BuildError> {
            self.op1(Op::$variant { kind: $enum::$kind, a, b })
        }
    )*};
}

macro_rules! reduce_methods {
    ($($method:ident => $kind:ident),* $(,)?) => {$(
        #[doc = concat!("`", stringify!($method), "(input, options)`.")]
        pub fn $method(&self, input: OperandId, options: ReduceOptions) -> Result<OperandId, BuildError> {
            self.op1(Op::Reduce { kind: ReduceOp::$kind, input, options })
        }
    )*};
}

macro_rules! pool_methods {
    ($($method:ident => $kind:ident),* $(,)?) => {$(
        #[doc = concat!("`", stringify!($method), "(input, options)`.")]
        pub fn $method(&self, input: OperandId, options: Pool2dOptions) -> Result<OperandId, BuildError> {
            self.op1(Op::Pool2d { kind: PoolOp::$kind, input, options })
        }
    )*};
}

impl GraphBuilder {
    pub fn new() -> Self {
        GraphBuilder {
            graph: RefCell::new(Some(Graph::new())),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Graph) -> Result<T, BuildError>) -> Result<T, BuildError> {
        let mut g = self.graph.borrow_mut();
        let g = g.as_mut().ok_or(BuildError::AlreadyBuilt)?;
        f(g)
    }

    /// The descriptor of an operand built so far.
    pub fn descriptor(&self, id: OperandId) -> Result<OperandDescriptor, BuildError> {
        self.with(|g| {
            g.operands()
                .get(id.index())
                .map(|o| o.desc.clone())
                .ok_or(BuildError::Graph(GraphError::UnknownOperand(id)))
        })
    }

    /// Gives an operand a name for printing (the text form's identifier).
    pub fn set_name(&self, id: OperandId, name: &str) -> Result<(), BuildError> {
        self.with(|g| {
            if id.index() >= g.operands().len() {
                return Err(GraphError::UnknownOperand(id).into());
            }
            g.set_name(id, name);
            Ok(())
        })
    }

    /// `input(name, descriptor)`: an operand fed at dispatch.
    pub fn input(&self, name: &str, desc: OperandDescriptor) -> Result<OperandId, BuildError> {
        self.with(|g| Ok(g.add_input(name, desc)?))
    }

    /// `constant(descriptor, bytes)`: little-endian data of exactly the
    /// descriptor's byte length.
    pub fn constant(&self, desc: OperandDescriptor, bytes: Vec<u8>) -> Result<OperandId, BuildError> {
        let t = Tensor::from_bytes(desc, bytes).map_err(|error| BuildError::ConstantData { error, name: String::new() })?;
        self.constant_tensor(None, t)
    }

    /// A constant from a tensor (whose bytes may be memory-mapped), with an
    /// optional name for printing and errors.
    pub fn constant_tensor(&self, name: Option<&str>, tensor: Tensor) -> Result<OperandId, BuildError> {
        self.with(|g| Ok(g.add_constant(name, tensor)?))
    }

    /// A float32 constant from values.
    pub fn constant_f32(&self, shape: impl Into<Shape>, values: &[f32]) -> Result<OperandId, BuildError> {
        let t = Tensor::from_f32(shape, values).map_err(|error| BuildError::ConstantData { error, name: String::new() })?;
        self.constant_tensor(None, t)
    }

    /// `constant(type, value)`: a scalar constant.
    pub fn constant_scalar(&self, data_type: DataType, value: Number) -> Result<OperandId, BuildError> {
        let values = match value {
            Number::Float(x) if data_type.is_float() => Values::Float(vec![x]),
            Number::Float(x) => Values::Int(vec![saturate_float_to_int(data_type, x)]),
            Number::Int(i) if data_type.is_float() => Values::Float(vec![i as f64]),
            Number::Int(i) => {
                let (lo, hi) = data_type.int_range().expect("integer type");
                Values::Int(vec![i.clamp(lo, hi)])
            }
        };
        let t = Tensor::from_values(OperandDescriptor::new(data_type, Shape::scalar()), &values)
            .map_err(|error| BuildError::ConstantData { error, name: String::new() })?;
        self.constant_tensor(None, t)
    }

    /// Adds any operator with a label; returns all of its outputs.
    pub fn op(&self, op: Op, label: &str) -> Result<Vec<OperandId>, BuildError> {
        self.with(|g| Ok(g.add_node(op, label)?))
    }

    fn op1(&self, op: Op) -> Result<OperandId, BuildError> {
        Ok(self.op(op, "")?[0])
    }

    /// `build(outputs)`: checks the outputs and hands the graph over. The
    /// builder cannot be used afterwards.
    pub fn build(&self, outputs: &[(&str, OperandId)]) -> Result<Graph, BuildError> {
        if outputs.is_empty() {
            return Err(BuildError::NoOutputs);
        }
        self.with(|g| {
            for (name, id) in outputs {
                g.add_output(name, *id)?;
            }
            Ok(())
        })?;
        self.graph.borrow_mut().take().ok_or(BuildError::AlreadyBuilt)
    }

    unary_methods!(
        abs => Abs, ceil => Ceil, floor => Floor, round_even => RoundEven, exp => Exp, log => Log, neg => Neg, sqrt => Sqrt,
        erf => Erf, reciprocal => Reciprocal, sin => Sin, cos => Cos, tan => Tan, tanh => Tanh,
        sigmoid => Sigmoid, relu => Relu, hard_swish => HardSwish, gelu => Gelu, softplus => Softplus,
        softsign => Softsign, identity => Identity, logical_not => LogicalNot, silu => Silu, mish => Mish,
        gelu_tanh => GeluTanh,
    );
    binary_methods!(Binary, BinaryOp: add => Add, sub => Sub, mul => Mul, div => Div, max => Max, min => Min, pow => Pow);
    binary_methods!(Compare, CompareOp:
        equal => Equal, not_equal => NotEqual, greater => Greater, greater_or_equal => GreaterOrEqual,
        lesser => Lesser, lesser_or_equal => LesserOrEqual,
    );
    binary_methods!(Logical, LogicalOp: logical_and => And, logical_or => Or, logical_xor => Xor);
    reduce_methods!(
        reduce_l1 => L1, reduce_l2 => L2, reduce_log_sum => LogSum, reduce_log_sum_exp => LogSumExp,
        reduce_max => Max, reduce_mean => Mean, reduce_min => Min, reduce_product => Product,
        reduce_sum => Sum, reduce_sum_square => SumSquare,
    );
    pool_methods!(average_pool2d => Average, max_pool2d => Max, l2_pool2d => L2);

    /// `clamp(input, {minValue, maxValue})`.
    pub fn clamp(&self, input: OperandId, min_value: Option<Number>, max_value: Option<Number>) -> Result<OperandId, BuildError> {
        self.op1(Op::Clamp { input, min_value, max_value })
    }

    /// `elu(input, {alpha})`; the spec default alpha is 1.
    pub fn elu(&self, input: OperandId, alpha: f64) -> Result<OperandId, BuildError> {
        self.op1(Op::Elu { input, alpha })
    }

    /// `leakyRelu(input, {alpha})`; the spec default alpha is 0.01.
    pub fn leaky_relu(&self, input: OperandId, alpha: f64) -> Result<OperandId, BuildError> {
        self.op1(Op::LeakyRelu { input, alpha })
    }

    /// `hardSigmoid(input, {alpha, beta})`; the spec defaults are 0.2 and 0.5.
    pub fn hard_sigmoid(&self, input: OperandId, alpha: f64, beta: f64) -> Result<OperandId, BuildError> {
        self.op1(Op::HardSigmoid { input, alpha, beta })
    }

    /// `linear(input, {alpha, beta})` = alpha * x + beta; the spec defaults are 1 and 0.
    pub fn linear(&self, input: OperandId, alpha: f64, beta: f64) -> Result<OperandId, BuildError> {
        self.op1(Op::Linear { input, alpha, beta })
    }

    /// `prelu(input, slope)`.
    pub fn prelu(&self, input: OperandId, slope: OperandId) -> Result<OperandId, BuildError> {
        self.op1(Op::Prelu { input, slope })
    }

    /// `cast(input, type)`.
    pub fn cast(&self, input: OperandId, data_type: DataType) -> Result<OperandId, BuildError> {
        self.op1(Op::Cast { input, data_type })
    }

    /// `conv2d(input, filter, options)`.
    pub fn conv2d(&self, input: OperandId, filter: OperandId, options: Conv2dOptions) -> Result<OperandId, BuildError> {
        self.op1(Op::Conv2d { input, filter, options })
    }

    /// `convTranspose2d(input, filter, options)`.
    pub fn conv_transpose2d(
        &self,
        input: OperandId,
        filter: OperandId,
        options: ConvTranspose2dOptions,
    ) -> Result<OperandId, BuildError> {
        self.op1(Op::ConvTranspose2d { input, filter, options })
    }

    /// `gemm(a, b, options)`.
    pub fn gemm(&self, a: OperandId, b: OperandId, options: GemmOptions) -> Result<OperandId, BuildError> {
        self.op1(Op::Gemm { a, b, options })
    }

    /// `matmul(a, b)` with batch broadcasting.
    pub fn matmul(&self, a: OperandId, b: OperandId) -> Result<OperandId, BuildError> {
        self.op1(Op::Matmul { a, b })
    }

    /// kiln's `attention(query, key, value, {mask, scale})`: scaled
    /// dot-product attention (see [`Op::Attention`]).
    pub fn attention(
        &self,
        query: OperandId,
        key: OperandId,
        value: OperandId,
        options: AttentionOptions,
    ) -> Result<OperandId, BuildError> {
        self.op1(Op::Attention { query, key, value, options })
    }

    /// `gru(input, weight, recurrentWeight, steps, hiddenSize, options)`:
    /// the last hidden state, then the sequence if `returnSequence`.
    pub fn gru(
        &self,
        input: OperandId,
        weight: OperandId,
        recurrent_weight: OperandId,
        steps: u32,
        hidden_size: u32,
        options: GruOptions,
    ) -> Result<Vec<OperandId>, BuildError> {
        self.op(Op::Gru { input, weight, recurrent_weight, steps, hidden_size, options }, "")
    }

    /// `gruCell(input, weight, recurrentWeight, hiddenState, hiddenSize, options)`.
    pub fn gru_cell(
        &self,
        input: OperandId,
        weight: OperandId,
        recurrent_weight: OperandId,
        hidden_state: OperandId,
        hidden_size: u32,
        options: GruCellOptions,
    ) -> Result<OperandId, BuildError> {
        self.op1(Op::GruCell { input, weight, recurrent_weight, hidden_state, hidden_size, options })
    }

    /// `lstm(input, weight, recurrentWeight, steps, hiddenSize, options)`:
    /// the last hidden and cell states, then the sequence if
    /// `returnSequence`.
    pub fn lstm(
        &self,
        input: OperandId,
        weight: OperandId,
        recurrent_weight: OperandId,
        steps: u32,
        hidden_size: u32,
        options: LstmOptions,
    ) -> Result<Vec<OperandId>, BuildError> {
        self.op(Op::Lstm { input, weight, recurrent_weight, steps, hidden_size, options }, "")
    }

    /// `lstmCell(input, weight, recurrentWeight, hiddenState, cellState,
    /// hiddenSize, options)`: the new hidden and cell states.
    #[allow(clippy::too_many_arguments)]
    pub fn lstm_cell(
        &self,
        input: OperandId,
        weight: OperandId,
        recurrent_weight: OperandId,
        hidden_state: OperandId,
        cell_state: OperandId,
        hidden_size: u32,
        options: LstmCellOptions,
    ) -> Result<Vec<OperandId>, BuildError> {
        let op = Op::LstmCell { input, weight, recurrent_weight, hidden_state, cell_state, hidden_size, options };
        self.op(op, "")
    }

    /// `batchNormalization(input, mean, variance, options)`.
    pub fn batch_normalization(
        &self,
        input: OperandId,
        mean: OperandId,
        variance: OperandId,
        options: BatchNormalizationOptions,
    ) -> Result<OperandId, BuildError> {
        self.op1(Op::BatchNormalization { input, mean, variance, options })
    }

    /// `layerNormalization(input, options)`.
    pub fn layer_normalization(&self, input: OperandId, options: LayerNormalizationOptions) -> Result<OperandId, BuildError> {
        self.op1(Op::LayerNormalization { input, options })
    }

    /// `instanceNormalization(input, options)`.
    pub fn instance_normalization(
        &self,
        input: OperandId,
        options: InstanceNormalizationOptions,
    ) -> Result<OperandId, BuildError> {
        self.op1(Op::InstanceNormalization { input, options })
    }

    /// `softmax(input, axis)`.
    pub fn softmax(&self, input: OperandId, axis: u32) -> Result<OperandId, BuildError> {
        self.op1(Op::Softmax { input, axis })
    }

    /// `reshape(input, newShape)`.
    pub fn reshape(&self, input: OperandId, new_shape: impl Into<Vec<u32>>) -> Result<OperandId, BuildError> {
        self.op1(Op::Reshape { input, new_shape: new_shape.into() })
    }

    /// `transpose(input, {permutation})`; `None` reverses the axes.
    pub fn transpose(&self, input: OperandId, permutation: Option<Vec<u32>>) -> Result<OperandId, BuildError> {
        self.op1(Op::Transpose { input, permutation })
    }

    /// `concat(inputs, axis)`.
    pub fn concat(&self, inputs: &[OperandId], axis: u32) -> Result<OperandId, BuildError> {
        self.op1(Op::Concat { inputs: inputs.to_vec(), axis })
    }

    /// `split(input, splits, {axis})`; returns one operand per part.
    pub fn split(&self, input: OperandId, splits: Splits, axis: u32) -> Result<Vec<OperandId>, BuildError> {
        self.op(Op::Split { input, splits, axis }, "")
    }

    /// `slice(input, starts, sizes, {strides})`.
    pub fn slice(
        &self,
        input: OperandId,
        starts: Vec<u32>,
        sizes: Vec<u32>,
        strides: Option<Vec<u32>>,
    ) -> Result<OperandId, BuildError> {
        self.op1(Op::Slice { input, starts, sizes, strides })
    }

    /// `expand(input, newShape)`.
    pub fn expand(&self, input: OperandId, new_shape: impl Into<Vec<u32>>) -> Result<OperandId, BuildError> {
        self.op1(Op::Expand { input, new_shape: new_shape.into() })
    }

    /// `gather(input, indices, {axis})`.
    pub fn gather(&self, input: OperandId, indices: OperandId, axis: u32) -> Result<OperandId, BuildError> {
        self.op1(Op::Gather { input, indices, axis })
    }

    /// `pad(input, beginningPadding, endingPadding, options)`.
    pub fn pad(
        &self,
        input: OperandId,
        beginning_padding: Vec<u32>,
        ending_padding: Vec<u32>,
        options: PadOptions,
    ) -> Result<OperandId, BuildError> {
        self.op1(Op::Pad { input, beginning_padding, ending_padding, options })
    }

    /// `resample2d(input, options)`.
    pub fn resample2d(&self, input: OperandId, options: Resample2dOptions) -> Result<OperandId, BuildError> {
        self.op1(Op::Resample2d { input, options })
    }

    /// `isNaN(a)`: uint8 1 where `a` is NaN.
    pub fn is_nan(&self, a: OperandId) -> Result<OperandId, BuildError> {
        self.op1(Op::Predicate { kind: PredicateOp::IsNaN, a })
    }

    /// `isInfinite(a)`: uint8 1 where `a` is ±infinity.
    pub fn is_infinite(&self, a: OperandId) -> Result<OperandId, BuildError> {
        self.op1(Op::Predicate { kind: PredicateOp::IsInfinite, a })
    }

    /// `sign(input)`.
    pub fn sign(&self, input: OperandId) -> Result<OperandId, BuildError> {
        self.op1(Op::Unary { kind: UnaryOp::Sign, input })
    }

    /// `argMax`/`argMin(input, axis, {keepDimensions, outputDataType})`;
    /// the spec defaults are `false` and int32.
    pub fn arg_min_max(
        &self,
        kind: ArgOp,
        input: OperandId,
        axis: u32,
        keep_dimensions: bool,
        output_data_type: DataType,
    ) -> Result<OperandId, BuildError> {
        self.op1(Op::ArgMinMax { kind, input, axis, keep_dimensions, output_data_type })
    }

    /// `cumulativeSum(input, axis, {exclusive, reversed})`.
    pub fn cumulative_sum(&self, input: OperandId, axis: u32, exclusive: bool, reversed: bool) -> Result<OperandId, BuildError> {
        self.op1(Op::CumulativeSum { input, axis, exclusive, reversed })
    }

    /// `dequantizeLinear(input, scale, zeroPoint)`.
    pub fn dequantize_linear(&self, input: OperandId, scale: OperandId, zero_point: OperandId) -> Result<OperandId, BuildError> {
        self.op1(Op::DequantizeLinear { input, scale, zero_point })
    }

    /// `quantizeLinear(input, scale, zeroPoint)`.
    pub fn quantize_linear(&self, input: OperandId, scale: OperandId, zero_point: OperandId) -> Result<OperandId, BuildError> {
        self.op1(Op::QuantizeLinear { input, scale, zero_point })
    }

    /// `gatherElements(input, indices, {axis})`.
    pub fn gather_elements(&self, input: OperandId, indices: OperandId, axis: u32) -> Result<OperandId, BuildError> {
        self.op1(Op::GatherElements { input, indices, axis })
    }

    /// `gatherND(input, indices)`.
    pub fn gather_nd(&self, input: OperandId, indices: OperandId) -> Result<OperandId, BuildError> {
        self.op1(Op::GatherNd { input, indices })
    }

    /// `scatterElements(input, indices, updates, {axis})`.
    pub fn scatter_elements(&self, input: OperandId, indices: OperandId, updates: OperandId, axis: u32) -> Result<OperandId, BuildError> {
        self.op1(Op::ScatterElements { input, indices, updates, axis })
    }

    /// `scatterND(input, indices, updates)`.
    pub fn scatter_nd(&self, input: OperandId, indices: OperandId, updates: OperandId) -> Result<OperandId, BuildError> {
        self.op1(Op::ScatterNd { input, indices, updates })
    }

    /// `reverse(input, {axes})`; `None` reverses every axis.
    pub fn reverse(&self, input: OperandId, axes: Option<Vec<u32>>) -> Result<OperandId, BuildError> {
        self.op1(Op::Reverse { input, axes })
    }

    /// `tile(input, repetitions)`.
    pub fn tile(&self, input: OperandId, repetitions: impl Into<Vec<u32>>) -> Result<OperandId, BuildError> {
        self.op1(Op::Tile { input, repetitions: repetitions.into() })
    }

    /// `triangular(input, {upper, diagonal})`; the spec defaults are `true` and 0.
    pub fn triangular(&self, input: OperandId, upper: bool, diagonal: i32) -> Result<OperandId, BuildError> {
        self.op1(Op::Triangular { input, upper, diagonal })
    }

    /// `where(condition, trueValue, falseValue)`.
    pub fn where_(&self, condition: OperandId, true_value: OperandId, false_value: OperandId) -> Result<OperandId, BuildError> {
        self.op1(Op::Where { condition, true_value, false_value })
    }
}
