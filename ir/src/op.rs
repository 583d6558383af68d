//! The WebNN operator set: one typed enum, option structs with the spec's
//! defaults. Operands are referenced by [`OperandId`] inside each variant, in
//! the spec's positional order; optional operands (`bias`, `scale`, `c`) sit
//! in the option structs as `Option<OperandId>`.
//!
//! Options whose default depends on the input (reduction axes, transpose
//! permutation, pooling window, ...) are `Option`s here; the `resolved_*`
//! helpers in [`crate::infer`] compute the effective value, once, for shape
//! inference and the interpreter alike.

use crate::{DataType, OperandId};

/// An `MLNumber`: a JavaScript number or a bigint. Integers are kept exact.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Number {
    Float(f64),
    Int(i128),
}

impl Number {
    pub fn as_f64(self) -> f64 {
        match self {
            Number::Float(x) => x,
            Number::Int(i) => i as f64,
        }
    }
}

impl From<f64> for Number {
    fn from(x: f64) -> Self {
        Number::Float(x)
    }
}

impl From<f32> for Number {
    fn from(x: f32) -> Self {
        Number::Float(x as f64)
    }
}

impl From<i64> for Number {
    fn from(x: i64) -> Self {
        Number::Int(x as i128)
    }
}

macro_rules! kinds {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $js:literal),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name { $($(#[$vmeta])* $variant),* }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),*];

            /// The WebNN (JavaScript) name.
            pub fn name(self) -> &'static str {
                match self { $($name::$variant => $js),* }
            }

            pub fn from_name(name: &str) -> Option<Self> {
                match name { $($js => Some($name::$variant),)* _ => None }
            }
        }
    };
}

kinds!(
    /// Element-wise binary arithmetic with broadcasting.
    BinaryOp { Add => "add", Sub => "sub", Mul => "mul", Div => "div", Max => "max", Min => "min", Pow => "pow" }
);
kinds!(
    /// Element-wise comparisons with broadcasting; the output is uint8 0/1.
    CompareOp {
        Equal => "equal", NotEqual => "notEqual", Greater => "greater",
        GreaterOrEqual => "greaterOrEqual", Lesser => "lesser", LesserOrEqual => "lesserOrEqual",
    }
);
kinds!(
    /// Element-wise logical operators on uint8 (non-zero is true).
    LogicalOp { And => "logicalAnd", Or => "logicalOr", Xor => "logicalXor" }
);
kinds!(
    /// Element-wise unary operators without options. `silu`, `mish` and
    /// `geluTanh` are kiln's own (not in WebNN): activations that models
    /// write as several WebNN operators, one node so that the optimizer
    /// and the backends see them whole (`silu(x) = x * sigmoid(x)`,
    /// `mish(x) = x * tanh(softplus(x))`, `geluTanh(x) = 0.5 x (1 +
    /// tanh(√(2/π) (x + 0.044715 x³)))`, the tanh approximation of gelu).
    UnaryOp {
        Abs => "abs", Ceil => "ceil", Floor => "floor", Exp => "exp", Log => "log", Neg => "neg",
        Sqrt => "sqrt", Erf => "erf", Reciprocal => "reciprocal", Sin => "sin", Cos => "cos",
        Tan => "tan", Tanh => "tanh", Sigmoid => "sigmoid", Relu => "relu", HardSwish => "hardSwish",
        Gelu => "gelu", Softplus => "softplus", Softsign => "softsign", Identity => "identity",
        LogicalNot => "logicalNot", RoundEven => "roundEven", Silu => "silu", Mish => "mish",
        GeluTanh => "geluTanh",
        Sign => "sign",
    }
);
kinds!(
    /// Element-wise tests of a value's class; the output is uint8 0/1.
    PredicateOp { IsNaN => "isNaN", IsInfinite => "isInfinite" }
);
kinds!(
    /// The index of the largest or smallest element along an axis.
    ArgOp { Max => "argMax", Min => "argMin" }
);
kinds!(
    /// The ten reductions.
    ReduceOp {
        L1 => "reduceL1", L2 => "reduceL2", LogSum => "reduceLogSum", LogSumExp => "reduceLogSumExp",
        Max => "reduceMax", Mean => "reduceMean", Min => "reduceMin", Product => "reduceProduct",
        Sum => "reduceSum", SumSquare => "reduceSumSquare",
    }
);
kinds!(
    /// The three 2-D pooling operators.
    PoolOp { Average => "averagePool2d", Max => "maxPool2d", L2 => "l2Pool2d" }
);
kinds!(
    /// `MLInputOperandLayout`.
    #[derive(Default)]
    InputLayout { #[default] Nchw => "nchw", Nhwc => "nhwc" }
);
kinds!(
    /// `MLConv2dFilterOperandLayout`.
    #[derive(Default)]
    Conv2dFilterLayout { #[default] Oihw => "oihw", Hwio => "hwio", Ohwi => "ohwi", Ihwo => "ihwo" }
);
kinds!(
    /// `MLConvTranspose2dFilterOperandLayout`.
    #[derive(Default)]
    ConvTranspose2dFilterLayout { #[default] Iohw => "iohw", Hwoi => "hwoi", Ohwi => "ohwi" }
);
kinds!(
    /// `MLRoundingType`.
    #[derive(Default)]
    RoundingType { #[default] Floor => "floor", Ceil => "ceil" }
);
kinds!(
    /// `MLInterpolationMode`.
    #[derive(Default)]
    InterpolationMode { #[default] NearestNeighbor => "nearest-neighbor", Linear => "linear" }
);
kinds!(
    /// `MLRecurrentNetworkDirection`: the order in which `gru` and `lstm`
    /// walk the time steps (`both`: one network each way).
    #[derive(Default)]
    RecurrentDirection { #[default] Forward => "forward", Backward => "backward", Both => "both" }
);
kinds!(
    /// `MLRecurrentNetworkActivation`: a gate activation of the recurrent operators.
    RecurrentActivation { Relu => "relu", Sigmoid => "sigmoid", Tanh => "tanh" }
);
kinds!(
    /// `MLGruWeightLayout`: the order of the update (z), reset (r) and new
    /// (n) gates' rows in the weights and biases.
    #[derive(Default)]
    GruWeightLayout { #[default] Zrn => "zrn", Rzn => "rzn" }
);
kinds!(
    /// `MLLstmWeightLayout`: the order of the input (i), output (o), forget
    /// (f) and cell (g) gates' rows in the weights and biases.
    #[derive(Default)]
    LstmWeightLayout { #[default] Iofg => "iofg", Ifgo => "ifgo" }
);

impl GruWeightLayout {
    /// The row block (in units of `hiddenSize`) of the update, reset and
    /// new gates, in that order.
    pub fn blocks(self) -> [usize; 3] {
        match self {
            GruWeightLayout::Zrn => [0, 1, 2],
            GruWeightLayout::Rzn => [1, 0, 2],
        }
    }
}

impl LstmWeightLayout {
    /// The row block (in units of `hiddenSize`) of the input, output,
    /// forget and cell gates, in that order. (`peepholeWeight` is always
    /// input, output, forget: blocks 0, 1, 2.)
    pub fn blocks(self) -> [usize; 4] {
        match self {
            LstmWeightLayout::Iofg => [0, 1, 2, 3],
            LstmWeightLayout::Ifgo => [0, 3, 1, 2],
        }
    }
}

kinds!(
    /// `MLPaddingMode`.
    #[derive(Default)]
    PaddingMode { #[default] Constant => "constant", Edge => "edge", Reflection => "reflection" }
);


/// `MLConv2dOptions`. Padding is `[top, bottom, left, right]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Conv2dOptions {
    pub padding: [u32; 4],
    pub strides: [u32; 2],
    pub dilations: [u32; 2],
    pub groups: u32,
    pub input_layout: InputLayout,
    pub filter_layout: Conv2dFilterLayout,
    pub bias: Option<OperandId>,
}

impl Default for Conv2dOptions {
    fn default() -> Self {
        Conv2dOptions {
            padding: [0; 4],
            strides: [1; 2],
            dilations: [1; 2],
            groups: 1,
            input_layout: InputLayout::Nchw,
            filter_layout: Conv2dFilterLayout::Oihw,
            bias: None,
        }
    }
}

/// `MLConvTranspose2dOptions`. Padding is `[top, bottom, left, right]`.
#[derive(Clone, Debug, PartialEq)]
pub struct ConvTranspose2dOptions {
    pub padding: [u32; 4],
    pub strides: [u32; 2],
    pub dilations: [u32; 2],
    pub output_padding: [u32; 2],
    pub output_sizes: Option<[u32; 2]>,
    pub groups: u32,
    pub input_layout: InputLayout,
    pub filter_layout: ConvTranspose2dFilterLayout,
    pub bias: Option<OperandId>,
}

impl Default for ConvTranspose2dOptions {
    fn default() -> Self {
        ConvTranspose2dOptions {
            padding: [0; 4],
            strides: [1; 2],
            dilations: [1; 2],
            output_padding: [0; 2],
            output_sizes: None,
            groups: 1,
            input_layout: InputLayout::Nchw,
            filter_layout: ConvTranspose2dFilterLayout::Iohw,
            bias: None,
        }
    }
}

/// `MLPool2dOptions`. `window_dimensions` defaults to the input's spatial size.
#[derive(Clone, Debug, PartialEq)]
pub struct Pool2dOptions {
    pub window_dimensions: Option<[u32; 2]>,
    pub padding: [u32; 4],
    pub strides: [u32; 2],
    pub dilations: [u32; 2],
    pub layout: InputLayout,
    pub output_shape_rounding: RoundingType,
    pub output_sizes: Option<[u32; 2]>,
}

impl Default for Pool2dOptions {
    fn default() -> Self {
        Pool2dOptions {
            window_dimensions: None,
            padding: [0; 4],
            strides: [1; 2],
            dilations: [1; 2],
            layout: InputLayout::Nchw,
            output_shape_rounding: RoundingType::Floor,
            output_sizes: None,
        }
    }
}

/// `MLGemmOptions`.
#[derive(Clone, Debug, PartialEq)]
pub struct GemmOptions {
    pub c: Option<OperandId>,
    pub alpha: f64,
    pub beta: f64,
    pub a_transpose: bool,
    pub b_transpose: bool,
}

impl Default for GemmOptions {
    fn default() -> Self {
        GemmOptions {
            c: None,
            alpha: 1.0,
            beta: 1.0,
            a_transpose: false,
            b_transpose: false,
        }
    }
}

/// `MLBatchNormalizationOptions`.
#[derive(Clone, Debug, PartialEq)]
pub struct BatchNormalizationOptions {
    pub scale: Option<OperandId>,
    pub bias: Option<OperandId>,
    pub axis: u32,
    pub epsilon: f64,
}

impl Default for BatchNormalizationOptions {
    fn default() -> Self {
        BatchNormalizationOptions {
            scale: None,
            bias: None,
            axis: 1,
            epsilon: 1e-5,
        }
    }
}

/// `MLLayerNormalizationOptions`. `axes` defaults to `[1, rank)`.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerNormalizationOptions {
    pub scale: Option<OperandId>,
    pub bias: Option<OperandId>,
    pub axes: Option<Vec<u32>>,
    pub epsilon: f64,
}

impl Default for LayerNormalizationOptions {
    fn default() -> Self {
        LayerNormalizationOptions {
            scale: None,
            bias: None,
            axes: None,
            epsilon: 1e-5,
        }
    }
}

/// `MLInstanceNormalizationOptions`.
#[derive(Clone, Debug, PartialEq)]
pub struct InstanceNormalizationOptions {
    pub scale: Option<OperandId>,
    pub bias: Option<OperandId>,
    pub epsilon: f64,
    pub layout: InputLayout,
}

impl Default for InstanceNormalizationOptions {
    fn default() -> Self {
        InstanceNormalizationOptions {
            scale: None,
            bias: None,
            epsilon: 1e-5,
            layout: InputLayout::Nchw,
        }
    }
}

/// `MLReduceOptions`. `axes` defaults to every axis.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReduceOptions {
    pub axes: Option<Vec<u32>>,
    pub keep_dimensions: bool,
}

/// `MLResample2dOptions`. `axes` defaults to `[2, 3]`, `scales` to `[1, 1]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Resample2dOptions {
    pub mode: InterpolationMode,
    pub scales: Option<[f32; 2]>,
    pub sizes: Option<[u32; 2]>,
    pub axes: [u32; 2],
}

impl Default for Resample2dOptions {
    fn default() -> Self {
        Resample2dOptions {
            mode: InterpolationMode::NearestNeighbor,
            scales: None,
            sizes: None,
            axes: [2, 3],
        }
    }
}

/// `MLPadOptions`.
#[derive(Clone, Debug, PartialEq)]
pub struct PadOptions {
    pub mode: PaddingMode,
    pub value: Number,
}

impl Default for PadOptions {
    fn default() -> Self {
        PadOptions {
            mode: PaddingMode::Constant,
            value: Number::Float(0.0),
        }
    }
}

/// How `split` divides its axis: into `Count` equal parts or into the listed sizes.
#[derive(Clone, Debug, PartialEq)]
pub enum Splits {
    Count(u32),
    Sizes(Vec<u32>),
}

/// The options of kiln's `attention` operator.
#[derive(Clone, Debug, PartialEq)]
pub struct AttentionOptions {
    /// Added to the scaled scores before the softmax (broadcast to them).
    pub mask: Option<OperandId>,
    /// Multiplies `query x key^T` before the mask is added.
    pub scale: f64,
}

impl Default for AttentionOptions {
    fn default() -> Self {
        AttentionOptions { mask: None, scale: 1.0 }
    }
}

/// `MLGruCellOptions`, also the per-step part of [`GruOptions`]. In a
/// `gru`, `bias` and `recurrentBias` have a leading direction axis.
#[derive(Clone, Debug, PartialEq)]
pub struct GruCellOptions {
    pub bias: Option<OperandId>,
    pub recurrent_bias: Option<OperandId>,
    /// Whether the reset gate multiplies the recurrent product (`true`, the
    /// default) or the hidden state before it.
    pub reset_after: bool,
    pub layout: GruWeightLayout,
    /// The gates' activation and the new gate's activation.
    pub activations: [RecurrentActivation; 2],
}

impl Default for GruCellOptions {
    fn default() -> Self {
        GruCellOptions {
            bias: None,
            recurrent_bias: None,
            reset_after: true,
            layout: GruWeightLayout::Zrn,
            activations: [RecurrentActivation::Sigmoid, RecurrentActivation::Tanh],
        }
    }
}

/// `MLGruOptions`: the cell's options plus the sequence's.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GruOptions {
    pub cell: GruCellOptions,
    pub initial_hidden_state: Option<OperandId>,
    /// Whether a second output holds every step's hidden state.
    pub return_sequence: bool,
    pub direction: RecurrentDirection,
}

/// `MLLstmCellOptions`, also the per-step part of [`LstmOptions`]. In an
/// `lstm`, `bias`, `recurrentBias` and `peepholeWeight` have a leading
/// direction axis.
#[derive(Clone, Debug, PartialEq)]
pub struct LstmCellOptions {
    pub bias: Option<OperandId>,
    pub recurrent_bias: Option<OperandId>,
    /// `3 * hiddenSize` weights of the input, output and forget gates'
    /// connections to the (previous) cell state.
    pub peephole_weight: Option<OperandId>,
    pub layout: LstmWeightLayout,
    /// The gates' activation, the cell gate's and the one applied to the
    /// cell state for the hidden state.
    pub activations: [RecurrentActivation; 3],
}

impl Default for LstmCellOptions {
    fn default() -> Self {
        LstmCellOptions {
            bias: None,
            recurrent_bias: None,
            peephole_weight: None,
            layout: LstmWeightLayout::Iofg,
            activations: [RecurrentActivation::Sigmoid, RecurrentActivation::Tanh, RecurrentActivation::Tanh],
        }
    }
}

/// `MLLstmOptions`: the cell's options plus the sequence's.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LstmOptions {
    pub cell: LstmCellOptions,
    pub initial_hidden_state: Option<OperandId>,
    pub initial_cell_state: Option<OperandId>,
    /// Whether a third output holds every step's hidden state.
    pub return_sequence: bool,
    pub direction: RecurrentDirection,
}

/// Which recurrent network, with its per-step options.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RecurrentGates<'o> {
    Gru(&'o GruCellOptions),
    Lstm(&'o LstmCellOptions),
}

/// The four recurrent operators seen one way ([`Op::recurrent`]): a cell
/// is a network of one step and one forward direction whose operands lack
/// the step and direction axes.
#[derive(Clone, Debug, PartialEq)]
pub struct RecurrentNetwork<'o> {
    pub gates: RecurrentGates<'o>,
    pub input: OperandId,
    pub weight: OperandId,
    pub recurrent_weight: OperandId,
    pub bias: Option<OperandId>,
    pub recurrent_bias: Option<OperandId>,
    pub peephole_weight: Option<OperandId>,
    /// The initial (sequence) or given (cell) states.
    pub hidden_state: Option<OperandId>,
    pub cell_state: Option<OperandId>,
    pub hidden_size: u32,
    /// `Some` for `gru`/`lstm`, whose operands have step and direction
    /// axes; `None` for the cells.
    pub direction: Option<RecurrentDirection>,
    pub return_sequence: bool,
}

impl RecurrentNetwork<'_> {
    /// Per direction, whether it walks the steps backward (a cell: one,
    /// forward).
    pub fn backward(&self) -> Vec<bool> {
        match self.direction {
            None | Some(RecurrentDirection::Forward) => vec![false],
            Some(RecurrentDirection::Backward) => vec![true],
            Some(RecurrentDirection::Both) => vec![false, true],
        }
    }
}

/// One WebNN operator applied to its operands.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    Binary { kind: BinaryOp, a: OperandId, b: OperandId },
    Compare { kind: CompareOp, a: OperandId, b: OperandId },
    Logical { kind: LogicalOp, a: OperandId, b: OperandId },
    Unary { kind: UnaryOp, input: OperandId },
    Clamp { input: OperandId, min_value: Option<Number>, max_value: Option<Number> },
    Elu { input: OperandId, alpha: f64 },
    LeakyRelu { input: OperandId, alpha: f64 },
    HardSigmoid { input: OperandId, alpha: f64, beta: f64 },
    Linear { input: OperandId, alpha: f64, beta: f64 },
    Prelu { input: OperandId, slope: OperandId },
    Cast { input: OperandId, data_type: DataType },
    Conv2d { input: OperandId, filter: OperandId, options: Conv2dOptions },
    ConvTranspose2d { input: OperandId, filter: OperandId, options: ConvTranspose2dOptions },
    Pool2d { kind: PoolOp, input: OperandId, options: Pool2dOptions },
    Gemm { a: OperandId, b: OperandId, options: GemmOptions },
    Matmul { a: OperandId, b: OperandId },
    BatchNormalization {
        input: OperandId,
        mean: OperandId,
        variance: OperandId,
        options: BatchNormalizationOptions,
    },
    LayerNormalization { input: OperandId, options: LayerNormalizationOptions },
    InstanceNormalization { input: OperandId, options: InstanceNormalizationOptions },
    Softmax { input: OperandId, axis: u32 },
    Reduce { kind: ReduceOp, input: OperandId, options: ReduceOptions },
    Reshape { input: OperandId, new_shape: Vec<u32> },
    /// `permutation` defaults to reversing the axes.
    Transpose { input: OperandId, permutation: Option<Vec<u32>> },
    Concat { inputs: Vec<OperandId>, axis: u32 },
    Split { input: OperandId, splits: Splits, axis: u32 },
    /// `strides` defaults to all ones.
    Slice { input: OperandId, starts: Vec<u32>, sizes: Vec<u32>, strides: Option<Vec<u32>> },
    Expand { input: OperandId, new_shape: Vec<u32> },
    Gather { input: OperandId, indices: OperandId, axis: u32 },
    Pad { input: OperandId, beginning_padding: Vec<u32>, ending_padding: Vec<u32>, options: PadOptions },
    Resample2d { input: OperandId, options: Resample2dOptions },
    Where { condition: OperandId, true_value: OperandId, false_value: OperandId },
    /// `isNaN(a)`, `isInfinite(a)`.
    Predicate { kind: PredicateOp, a: OperandId },
    /// `argMax`/`argMin(input, axis, {keepDimensions, outputDataType})`.
    ArgMinMax { kind: ArgOp, input: OperandId, axis: u32, keep_dimensions: bool, output_data_type: DataType },
    /// `cumulativeSum(input, axis, {exclusive, reversed})`.
    CumulativeSum { input: OperandId, axis: u32, exclusive: bool, reversed: bool },
    /// `dequantizeLinear(input, scale, zeroPoint)`: `(input - zeroPoint) * scale`,
    /// `scale` and `zeroPoint` applied block-wise.
    DequantizeLinear { input: OperandId, scale: OperandId, zero_point: OperandId },
    /// `quantizeLinear(input, scale, zeroPoint)`: `clamp(roundEven(input / scale) +
    /// zeroPoint)` to the zero point's type, block-wise.
    QuantizeLinear { input: OperandId, scale: OperandId, zero_point: OperandId },
    /// `gatherElements(input, indices, {axis})`.
    GatherElements { input: OperandId, indices: OperandId, axis: u32 },
    /// `gatherND(input, indices)`.
    GatherNd { input: OperandId, indices: OperandId },
    /// `scatterElements(input, indices, updates, {axis})`.
    ScatterElements { input: OperandId, indices: OperandId, updates: OperandId, axis: u32 },
    /// `scatterND(input, indices, updates)`.
    ScatterNd { input: OperandId, indices: OperandId, updates: OperandId },
    /// `reverse(input, {axes})`; `axes` defaults to every axis.
    Reverse { input: OperandId, axes: Option<Vec<u32>> },
    /// `tile(input, repetitions)`.
    Tile { input: OperandId, repetitions: Vec<u32> },
    /// `triangular(input, {upper, diagonal})`; the spec defaults are `true` and 0.
    Triangular { input: OperandId, upper: bool, diagonal: i32 },
    /// kiln's `attention(query, key, value, {mask, scale})`: scaled
    /// dot-product attention, `matmul(softmax(matmul(query,
    /// transpose(key)) * scale + mask, last axis), value)` over the last two
    /// axes, the leading axes broadcast. Not a WebNN operator: the optimizer
    /// recognises the decomposed form, and backends run it as one kernel
    /// group without storing the scores twice.
    Attention { query: OperandId, key: OperandId, value: OperandId, options: AttentionOptions },
    /// `gru(input, weight, recurrentWeight, steps, hiddenSize, options)`:
    /// outputs the last hidden state, and the sequence of them when
    /// `returnSequence`.
    Gru {
        input: OperandId,
        weight: OperandId,
        recurrent_weight: OperandId,
        steps: u32,
        hidden_size: u32,
        options: GruOptions,
    },
    /// `gruCell(input, weight, recurrentWeight, hiddenState, hiddenSize, options)`.
    GruCell {
        input: OperandId,
        weight: OperandId,
        recurrent_weight: OperandId,
        hidden_state: OperandId,
        hidden_size: u32,
        options: GruCellOptions,
    },
    /// `lstm(input, weight, recurrentWeight, steps, hiddenSize, options)`:
    /// outputs the last hidden and cell states, and the sequence of hidden
    /// states when `returnSequence`.
    Lstm {
        input: OperandId,
        weight: OperandId,
        recurrent_weight: OperandId,
        steps: u32,
        hidden_size: u32,
        options: LstmOptions,
    },
    /// `lstmCell(input, weight, recurrentWeight, hiddenState, cellState,
    /// hiddenSize, options)`: outputs the new hidden and cell states.
    LstmCell {
        input: OperandId,
        weight: OperandId,
        recurrent_weight: OperandId,
        hidden_state: OperandId,
        cell_state: OperandId,
        hidden_size: u32,
        options: LstmCellOptions,
    },
}

/// A value in an operator's argument list, as the text form and the op
/// table print it. Operand-valued arguments are `Operand`/`Operands`.
#[derive(Clone, Debug, PartialEq)]
pub enum Attr {
    Operand(OperandId),
    Operands(Vec<OperandId>),
    Int(i128),
    Float(f64),
    Bool(bool),
    Str(&'static str),
    Strs(Vec<&'static str>),
    Ints(Vec<u32>),
    Floats(Vec<f64>),
}

impl From<Number> for Attr {
    fn from(n: Number) -> Self {
        match n {
            Number::Float(x) => Attr::Float(x),
            Number::Int(i) => Attr::Int(i),
        }
    }
}

/// The operators that are one variant of [`Op`] each, with their WebNN
/// names: declared once here, for [`Op::name`] and [`operator_names`].
macro_rules! single_operators {
    ($($variant:ident => $name:literal),* $(,)?) => {
        /// The WebNN names of the operators that are one [`Op`] variant each.
        const SINGLE_OPERATOR_NAMES: &[&str] = &[$($name),*];

        impl Op {
            /// The name of a single-variant operator; `None` for the
            /// families (`Binary`, `Unary`, ...), named by their kind.
            fn single_name(&self) -> Option<&'static str> {
                match self {
                    $(Op::$variant { .. } => Some($name),)*
                    _ => None,
                }
            }
        }
    };
}

single_operators! {
    Clamp => "clamp", Elu => "elu", LeakyRelu => "leakyRelu", HardSigmoid => "hardSigmoid", Linear => "linear",
    Prelu => "prelu", Cast => "cast", Conv2d => "conv2d", ConvTranspose2d => "convTranspose2d", Gemm => "gemm",
    Matmul => "matmul", BatchNormalization => "batchNormalization", LayerNormalization => "layerNormalization",
    InstanceNormalization => "instanceNormalization", Softmax => "softmax", Reshape => "reshape",
    Transpose => "transpose", Concat => "concat", Split => "split", Slice => "slice", Expand => "expand",
    Gather => "gather", Pad => "pad", Resample2d => "resample2d", Where => "where",
    CumulativeSum => "cumulativeSum", DequantizeLinear => "dequantizeLinear", QuantizeLinear => "quantizeLinear",
    GatherElements => "gatherElements", GatherNd => "gatherND", ScatterElements => "scatterElements",
    ScatterNd => "scatterND", Reverse => "reverse", Tile => "tile", Triangular => "triangular",
    Attention => "attention", Gru => "gru", GruCell => "gruCell", Lstm => "lstm", LstmCell => "lstmCell",
}

/// Every WebNN operator name of [`Op`], sorted: the one list the operator
/// table, the text format, the support table and `kiln ops` read.
pub fn operator_names() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = SINGLE_OPERATOR_NAMES.to_vec();
    names.extend(BinaryOp::ALL.iter().map(|k| k.name()));
    names.extend(CompareOp::ALL.iter().map(|k| k.name()));
    names.extend(LogicalOp::ALL.iter().map(|k| k.name()));
    names.extend(UnaryOp::ALL.iter().map(|k| k.name()));
    names.extend(ReduceOp::ALL.iter().map(|k| k.name()));
    names.extend(PoolOp::ALL.iter().map(|k| k.name()));
    names.extend(PredicateOp::ALL.iter().map(|k| k.name()));
    names.extend(ArgOp::ALL.iter().map(|k| k.name()));
    names.sort_unstable();
    names
}

impl Op {
    /// The WebNN (JavaScript) name of the operator.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Binary { kind, .. } => kind.name(),
            Op::Compare { kind, .. } => kind.name(),
            Op::Logical { kind, .. } => kind.name(),
            Op::Unary { kind, .. } => kind.name(),
            Op::Pool2d { kind, .. } => kind.name(),
            Op::Predicate { kind, .. } => kind.name(),
            Op::ArgMinMax { kind, .. } => kind.name(),
            Op::Reduce { kind, .. } => kind.name(),
            other => other.single_name().expect("every other variant is declared in single_operators!"),
        }
    }

    /// `gru`, `gruCell`, `lstm` and `lstmCell` as one description; `None`
    /// for every other operator.
    pub fn recurrent(&self) -> Option<RecurrentNetwork<'_>> {
        Some(match self {
            Op::Gru { input, weight, recurrent_weight, hidden_size, options: o, .. } => RecurrentNetwork {
                gates: RecurrentGates::Gru(&o.cell),
                input: *input,
                weight: *weight,
                recurrent_weight: *recurrent_weight,
                bias: o.cell.bias,
                recurrent_bias: o.cell.recurrent_bias,
                peephole_weight: None,
                hidden_state: o.initial_hidden_state,
                cell_state: None,
                hidden_size: *hidden_size,
                direction: Some(o.direction),
                return_sequence: o.return_sequence,
            },
            Op::GruCell { input, weight, recurrent_weight, hidden_state, hidden_size, options: o } => RecurrentNetwork {
                gates: RecurrentGates::Gru(o),
                input: *input,
                weight: *weight,
                recurrent_weight: *recurrent_weight,
                bias: o.bias,
                recurrent_bias: o.recurrent_bias,
                peephole_weight: None,
                hidden_state: Some(*hidden_state),
                cell_state: None,
                hidden_size: *hidden_size,
                direction: None,
                return_sequence: false,
            },
            Op::Lstm { input, weight, recurrent_weight, hidden_size, options: o, .. } => RecurrentNetwork {
                gates: RecurrentGates::Lstm(&o.cell),
                input: *input,
                weight: *weight,
                recurrent_weight: *recurrent_weight,
                bias: o.cell.bias,
                recurrent_bias: o.cell.recurrent_bias,
                peephole_weight: o.cell.peephole_weight,
                hidden_state: o.initial_hidden_state,
                cell_state: o.initial_cell_state,
                hidden_size: *hidden_size,
                direction: Some(o.direction),
                return_sequence: o.return_sequence,
            },
            Op::LstmCell { input, weight, recurrent_weight, hidden_state, cell_state, hidden_size, options: o } => {
                RecurrentNetwork {
                    gates: RecurrentGates::Lstm(o),
                    input: *input,
                    weight: *weight,
                    recurrent_weight: *recurrent_weight,
                    bias: o.bias,
                    recurrent_bias: o.recurrent_bias,
                    peephole_weight: o.peephole_weight,
                    hidden_state: Some(*hidden_state),
                    cell_state: Some(*cell_state),
                    hidden_size: *hidden_size,
                    direction: None,
                    return_sequence: false,
                }
            }
            _ => return None,
        })
    }

    /// Every operand the operator reads, each with its spec name, in order.
    pub fn inputs(&self) -> Vec<(&'static str, OperandId)> {
        self.clone().inputs_mut().into_iter().map(|(name, id)| (name, *id)).collect()
    }

    /// [`Op::inputs`], mutable: for rewriting a node onto other operands.
    pub fn inputs_mut(&mut self) -> Vec<(&'static str, &mut OperandId)> {
        fn opt<'a>(v: &mut Vec<(&'static str, &'a mut OperandId)>, name: &'static str, id: &'a mut Option<OperandId>) {
            if let Some(id) = id {
                v.push((name, id));
            }
        }
        let mut v = Vec::new();
        match self {
            Op::Binary { a, b, .. }
            | Op::Compare { a, b, .. }
            | Op::Logical { a, b, .. }
            | Op::Matmul { a, b } => v.extend([("a", a), ("b", b)]),
            Op::Unary { input, .. }
            | Op::Clamp { input, .. }
            | Op::Elu { input, .. }
            | Op::LeakyRelu { input, .. }
            | Op::HardSigmoid { input, .. }
            | Op::Linear { input, .. }
            | Op::Cast { input, .. }
            | Op::Pool2d { input, .. }
            | Op::Softmax { input, .. }
            | Op::Reduce { input, .. }
            | Op::Reshape { input, .. }
            | Op::Transpose { input, .. }
            | Op::Split { input, .. }
            | Op::Slice { input, .. }
            | Op::Expand { input, .. }
            | Op::Pad { input, .. }
            | Op::Resample2d { input, .. }
            | Op::ArgMinMax { input, .. }
            | Op::CumulativeSum { input, .. }
            | Op::Reverse { input, .. }
            | Op::Tile { input, .. }
            | Op::Triangular { input, .. } => v.push(("input", input)),
            Op::Predicate { a, .. } => v.push(("a", a)),
            Op::DequantizeLinear { input, scale, zero_point } | Op::QuantizeLinear { input, scale, zero_point } => {
                v.extend([("input", input), ("scale", scale), ("zeroPoint", zero_point)])
            }
            Op::GatherElements { input, indices, .. } | Op::GatherNd { input, indices } => {
                v.extend([("input", input), ("indices", indices)])
            }
            Op::ScatterElements { input, indices, updates, .. } | Op::ScatterNd { input, indices, updates } => {
                v.extend([("input", input), ("indices", indices), ("updates", updates)])
            }
            Op::Prelu { input, slope } => v.extend([("input", input), ("slope", slope)]),
            Op::Conv2d { input, filter, options } => {
                v.extend([("input", input), ("filter", filter)]);
                opt(&mut v, "bias", &mut options.bias);
            }
            Op::ConvTranspose2d { input, filter, options } => {
                v.extend([("input", input), ("filter", filter)]);
                opt(&mut v, "bias", &mut options.bias);
            }
            Op::Gemm { a, b, options } => {
                v.extend([("a", a), ("b", b)]);
                opt(&mut v, "c", &mut options.c);
            }
            Op::BatchNormalization { input, mean, variance, options } => {
                v.extend([("input", input), ("mean", mean), ("variance", variance)]);
                opt(&mut v, "scale", &mut options.scale);
                opt(&mut v, "bias", &mut options.bias);
            }
            Op::LayerNormalization { input, options } => {
                v.push(("input", input));
                opt(&mut v, "scale", &mut options.scale);
                opt(&mut v, "bias", &mut options.bias);
            }
            Op::InstanceNormalization { input, options } => {
                v.push(("input", input));
                opt(&mut v, "scale", &mut options.scale);
                opt(&mut v, "bias", &mut options.bias);
            }
            Op::Concat { inputs, .. } => v.extend(inputs.iter_mut().map(|i| ("inputs", i))),
            Op::Gather { input, indices, .. } => v.extend([("input", input), ("indices", indices)]),
            Op::Where { condition, true_value, false_value } => v.extend([
                ("condition", condition),
                ("trueValue", true_value),
                ("falseValue", false_value),
            ]),
            Op::Attention { query, key, value, options } => {
                v.extend([("query", query), ("key", key), ("value", value)]);
                opt(&mut v, "mask", &mut options.mask);
            }
            Op::Gru { input, weight, recurrent_weight, options: o, .. } => {
                v.extend([("input", input), ("weight", weight), ("recurrentWeight", recurrent_weight)]);
                opt(&mut v, "bias", &mut o.cell.bias);
                opt(&mut v, "recurrentBias", &mut o.cell.recurrent_bias);
                opt(&mut v, "initialHiddenState", &mut o.initial_hidden_state);
            }
            Op::GruCell { input, weight, recurrent_weight, hidden_state, options: o, .. } => {
                v.extend([
                    ("input", input),
                    ("weight", weight),
                    ("recurrentWeight", recurrent_weight),
                    ("hiddenState", hidden_state),
                ]);
                opt(&mut v, "bias", &mut o.bias);
                opt(&mut v, "recurrentBias", &mut o.recurrent_bias);
            }
            Op::Lstm { input, weight, recurrent_weight, options: o, .. } => {
                v.extend([("input", input), ("weight", weight), ("recurrentWeight", recurrent_weight)]);
                opt(&mut v, "bias", &mut o.cell.bias);
                opt(&mut v, "recurrentBias", &mut o.cell.recurrent_bias);
                opt(&mut v, "peepholeWeight", &mut o.cell.peephole_weight);
                opt(&mut v, "initialHiddenState", &mut o.initial_hidden_state);
                opt(&mut v, "initialCellState", &mut o.initial_cell_state);
            }
            Op::LstmCell { input, weight, recurrent_weight, hidden_state, cell_state, options: o, .. } => {
                v.extend([
                    ("input", input),
                    ("weight", weight),
                    ("recurrentWeight", recurrent_weight),
                    ("hiddenState", hidden_state),
                    ("cellState", cell_state),
                ]);
                opt(&mut v, "bias", &mut o.bias);
                opt(&mut v, "recurrentBias", &mut o.recurrent_bias);
                opt(&mut v, "peepholeWeight", &mut o.peephole_weight);
            }
        }
        v
    }

    /// The call as the `.webnn` text form writes it: positional arguments in
    /// spec order, then the options that differ from their defaults, named in
    /// their JavaScript spelling.
    pub fn arguments(&self) -> (Vec<Attr>, Vec<(&'static str, Attr)>) {
        use Attr::*;
        let ints = |v: &[u32]| Ints(v.to_vec());
        let mut named: Vec<(&'static str, Attr)> = Vec::new();
        let positional = match self {
            Op::Binary { a, b, .. } | Op::Compare { a, b, .. } | Op::Logical { a, b, .. } | Op::Matmul { a, b } => {
                vec![Operand(*a), Operand(*b)]
            }
            Op::Unary { input, .. } => vec![Operand(*input)],
            Op::Clamp { input, min_value, max_value } => {
                if let Some(m) = min_value {
                    named.push(("minValue", (*m).into()));
                }
                if let Some(m) = max_value {
                    named.push(("maxValue", (*m).into()));
                }
                vec![Operand(*input)]
            }
            Op::Elu { input, alpha } => {
                push_if(&mut named, "alpha", differs(*alpha, 1.0), Float(*alpha));
                vec![Operand(*input)]
            }
            Op::LeakyRelu { input, alpha } => {
                push_if(&mut named, "alpha", differs(*alpha, 0.01), Float(*alpha));
                vec![Operand(*input)]
            }
            Op::HardSigmoid { input, alpha, beta } => {
                push_if(&mut named, "alpha", differs(*alpha, 0.2), Float(*alpha));
                push_if(&mut named, "beta", differs(*beta, 0.5), Float(*beta));
                vec![Operand(*input)]
            }
            Op::Linear { input, alpha, beta } => {
                push_if(&mut named, "alpha", differs(*alpha, 1.0), Float(*alpha));
                push_if(&mut named, "beta", differs(*beta, 0.0), Float(*beta));
                vec![Operand(*input)]
            }
            Op::Prelu { input, slope } => vec![Operand(*input), Operand(*slope)],
            Op::Cast { input, data_type } => vec![Operand(*input), Str(data_type.name())],
            Op::Conv2d { input, filter, options: o } => {
                let d = Conv2dOptions::default();
                push_if(&mut named, "padding", o.padding != d.padding, ints(&o.padding));
                push_if(&mut named, "strides", o.strides != d.strides, ints(&o.strides));
                push_if(&mut named, "dilations", o.dilations != d.dilations, ints(&o.dilations));
                push_if(&mut named, "groups", o.groups != d.groups, Int(o.groups.into()));
                push_if(&mut named, "inputLayout", o.input_layout != d.input_layout, Str(o.input_layout.name()));
                push_if(&mut named, "filterLayout", o.filter_layout != d.filter_layout, Str(o.filter_layout.name()));
                if let Some(b) = o.bias {
                    named.push(("bias", Operand(b)));
                }
                vec![Operand(*input), Operand(*filter)]
            }
            Op::ConvTranspose2d { input, filter, options: o } => {
                let d = ConvTranspose2dOptions::default();
                push_if(&mut named, "padding", o.padding != d.padding, ints(&o.padding));
                push_if(&mut named, "strides", o.strides != d.strides, ints(&o.strides));
                push_if(&mut named, "dilations", o.dilations != d.dilations, ints(&o.dilations));
                push_if(&mut named, "outputPadding", o.output_padding != d.output_padding, ints(&o.output_padding));
                if let Some(s) = &o.output_sizes {
                    named.push(("outputSizes", ints(s)));
                }
                push_if(&mut named, "groups", o.groups != d.groups, Int(o.groups.into()));
                push_if(&mut named, "inputLayout", o.input_layout != d.input_layout, Str(o.input_layout.name()));
                push_if(&mut named, "filterLayout", o.filter_layout != d.filter_layout, Str(o.filter_layout.name()));
                if let Some(b) = o.bias {
                    named.push(("bias", Operand(b)));
                }
                vec![Operand(*input), Operand(*filter)]
            }
            Op::Pool2d { input, options: o, .. } => {
                let d = Pool2dOptions::default();
                if let Some(w) = &o.window_dimensions {
                    named.push(("windowDimensions", ints(w)));
                }
                push_if(&mut named, "padding", o.padding != d.padding, ints(&o.padding));
                push_if(&mut named, "strides", o.strides != d.strides, ints(&o.strides));
                push_if(&mut named, "dilations", o.dilations != d.dilations, ints(&o.dilations));
                push_if(&mut named, "layout", o.layout != d.layout, Str(o.layout.name()));
                push_if(
                    &mut named,
                    "outputShapeRounding",
                    o.output_shape_rounding != d.output_shape_rounding,
                    Str(o.output_shape_rounding.name()),
                );
                if let Some(s) = &o.output_sizes {
                    named.push(("outputSizes", ints(s)));
                }
                vec![Operand(*input)]
            }
            Op::Gemm { a, b, options: o } => {
                if let Some(c) = o.c {
                    named.push(("c", Operand(c)));
                }
                push_if(&mut named, "alpha", differs(o.alpha, 1.0), Float(o.alpha));
                push_if(&mut named, "beta", differs(o.beta, 1.0), Float(o.beta));
                push_if(&mut named, "aTranspose", o.a_transpose, Bool(true));
                push_if(&mut named, "bTranspose", o.b_transpose, Bool(true));
                vec![Operand(*a), Operand(*b)]
            }
            Op::BatchNormalization { input, mean, variance, options: o } => {
                if let Some(s) = o.scale {
                    named.push(("scale", Operand(s)));
                }
                if let Some(b) = o.bias {
                    named.push(("bias", Operand(b)));
                }
                push_if(&mut named, "axis", o.axis != 1, Int(o.axis.into()));
                push_if(&mut named, "epsilon", differs(o.epsilon, 1e-5), Float(o.epsilon));
                vec![Operand(*input), Operand(*mean), Operand(*variance)]
            }
            Op::LayerNormalization { input, options: o } => {
                if let Some(s) = o.scale {
                    named.push(("scale", Operand(s)));
                }
                if let Some(b) = o.bias {
                    named.push(("bias", Operand(b)));
                }
                if let Some(a) = &o.axes {
                    named.push(("axes", ints(a)));
                }
                push_if(&mut named, "epsilon", differs(o.epsilon, 1e-5), Float(o.epsilon));
                vec![Operand(*input)]
            }
            Op::InstanceNormalization { input, options: o } => {
                if let Some(s) = o.scale {
                    named.push(("scale", Operand(s)));
                }
                if let Some(b) = o.bias {
                    named.push(("bias", Operand(b)));
                }
                push_if(&mut named, "epsilon", differs(o.epsilon, 1e-5), Float(o.epsilon));
                push_if(&mut named, "layout", o.layout != InputLayout::Nchw, Str(o.layout.name()));
                vec![Operand(*input)]
            }
            Op::Softmax { input, axis } => vec![Operand(*input), Int((*axis).into())],
            Op::Reduce { input, options: o, .. } => {
                if let Some(a) = &o.axes {
                    named.push(("axes", ints(a)));
                }
                push_if(&mut named, "keepDimensions", o.keep_dimensions, Bool(true));
                vec![Operand(*input)]
            }
            Op::Reshape { input, new_shape } => vec![Operand(*input), ints(new_shape)],
            Op::Transpose { input, permutation } => {
                if let Some(p) = permutation {
                    named.push(("permutation", ints(p)));
                }
                vec![Operand(*input)]
            }
            Op::Concat { inputs, axis } => vec![Operands(inputs.clone()), Int((*axis).into())],
            Op::Split { input, splits, axis } => {
                push_if(&mut named, "axis", *axis != 0, Int((*axis).into()));
                let splits = match splits {
                    Splits::Count(n) => Int((*n).into()),
                    Splits::Sizes(s) => ints(s),
                };
                vec![Operand(*input), splits]
            }
            Op::Slice { input, starts, sizes, strides } => {
                if let Some(s) = strides {
                    named.push(("strides", ints(s)));
                }
                vec![Operand(*input), ints(starts), ints(sizes)]
            }
            Op::Expand { input, new_shape } => vec![Operand(*input), ints(new_shape)],
            Op::Gather { input, indices, axis } => {
                push_if(&mut named, "axis", *axis != 0, Int((*axis).into()));
                vec![Operand(*input), Operand(*indices)]
            }
            Op::Pad { input, beginning_padding, ending_padding, options: o } => {
                push_if(&mut named, "mode", o.mode != PaddingMode::Constant, Str(o.mode.name()));
                push_if(&mut named, "value", !matches!(o.value, Number::Float(v) if !differs(v, 0.0)), o.value.into());
                vec![Operand(*input), ints(beginning_padding), ints(ending_padding)]
            }
            Op::Resample2d { input, options: o } => {
                push_if(&mut named, "mode", o.mode != InterpolationMode::NearestNeighbor, Str(o.mode.name()));
                if let Some(s) = o.scales {
                    named.push(("scales", Floats(s.iter().map(|&x| x as f64).collect())));
                }
                if let Some(s) = &o.sizes {
                    named.push(("sizes", ints(s)));
                }
                push_if(&mut named, "axes", o.axes != [2, 3], ints(&o.axes));
                vec![Operand(*input)]
            }
            Op::Where { condition, true_value, false_value } => {
                vec![Operand(*condition), Operand(*true_value), Operand(*false_value)]
            }
            Op::Predicate { a, .. } => vec![Operand(*a)],
            Op::ArgMinMax { input, axis, keep_dimensions, output_data_type, .. } => {
                push_if(&mut named, "keepDimensions", *keep_dimensions, Bool(true));
                push_if(&mut named, "outputDataType", *output_data_type != DataType::Int32, Str(output_data_type.name()));
                vec![Operand(*input), Int((*axis).into())]
            }
            Op::CumulativeSum { input, axis, exclusive, reversed } => {
                push_if(&mut named, "exclusive", *exclusive, Bool(true));
                push_if(&mut named, "reversed", *reversed, Bool(true));
                vec![Operand(*input), Int((*axis).into())]
            }
            Op::DequantizeLinear { input, scale, zero_point } | Op::QuantizeLinear { input, scale, zero_point } => {
                vec![Operand(*input), Operand(*scale), Operand(*zero_point)]
            }
            Op::GatherElements { input, indices, axis } => {
                push_if(&mut named, "axis", *axis != 0, Int((*axis).into()));
                vec![Operand(*input), Operand(*indices)]
            }
            Op::GatherNd { input, indices } => vec![Operand(*input), Operand(*indices)],
            Op::ScatterElements { input, indices, updates, axis } => {
                push_if(&mut named, "axis", *axis != 0, Int((*axis).into()));
                vec![Operand(*input), Operand(*indices), Operand(*updates)]
            }
            Op::ScatterNd { input, indices, updates } => vec![Operand(*input), Operand(*indices), Operand(*updates)],
            Op::Reverse { input, axes } => {
                if let Some(a) = axes {
                    named.push(("axes", ints(a)));
                }
                vec![Operand(*input)]
            }
            Op::Tile { input, repetitions } => vec![Operand(*input), ints(repetitions)],
            Op::Triangular { input, upper, diagonal } => {
                push_if(&mut named, "upper", !*upper, Bool(false));
                push_if(&mut named, "diagonal", *diagonal != 0, Int((*diagonal).into()));
                vec![Operand(*input)]
            }
            Op::Attention { query, key, value, options: o } => {
                if let Some(m) = o.mask {
                    named.push(("mask", Operand(m)));
                }
                push_if(&mut named, "scale", differs(o.scale, 1.0), Float(o.scale));
                vec![Operand(*query), Operand(*key), Operand(*value)]
            }
            Op::Gru { input, weight, recurrent_weight, steps, hidden_size, options: o } => {
                gru_cell_arguments(&mut named, &o.cell);
                if let Some(h) = o.initial_hidden_state {
                    named.push(("initialHiddenState", Operand(h)));
                }
                push_if(&mut named, "returnSequence", o.return_sequence, Bool(true));
                push_if(&mut named, "direction", o.direction != RecurrentDirection::Forward, Str(o.direction.name()));
                let sizes = [Int((*steps).into()), Int((*hidden_size).into())];
                [Operand(*input), Operand(*weight), Operand(*recurrent_weight)].into_iter().chain(sizes).collect()
            }
            Op::GruCell { input, weight, recurrent_weight, hidden_state, hidden_size, options: o } => {
                gru_cell_arguments(&mut named, o);
                vec![
                    Operand(*input),
                    Operand(*weight),
                    Operand(*recurrent_weight),
                    Operand(*hidden_state),
                    Int((*hidden_size).into()),
                ]
            }
            Op::Lstm { input, weight, recurrent_weight, steps, hidden_size, options: o } => {
                lstm_cell_arguments(&mut named, &o.cell);
                if let Some(h) = o.initial_hidden_state {
                    named.push(("initialHiddenState", Operand(h)));
                }
                if let Some(c) = o.initial_cell_state {
                    named.push(("initialCellState", Operand(c)));
                }
                push_if(&mut named, "returnSequence", o.return_sequence, Bool(true));
                push_if(&mut named, "direction", o.direction != RecurrentDirection::Forward, Str(o.direction.name()));
                let sizes = [Int((*steps).into()), Int((*hidden_size).into())];
                [Operand(*input), Operand(*weight), Operand(*recurrent_weight)].into_iter().chain(sizes).collect()
            }
            Op::LstmCell { input, weight, recurrent_weight, hidden_state, cell_state, hidden_size, options: o } => {
                lstm_cell_arguments(&mut named, o);
                vec![
                    Operand(*input),
                    Operand(*weight),
                    Operand(*recurrent_weight),
                    Operand(*hidden_state),
                    Operand(*cell_state),
                    Int((*hidden_size).into()),
                ]
            }
        };
        (positional, named)
    }
}

/// The options of a `gruCell` (and the cell part of a `gru`) that differ
/// from their defaults.
fn gru_cell_arguments(named: &mut Vec<(&'static str, Attr)>, o: &GruCellOptions) {
    let d = GruCellOptions::default();
    if let Some(b) = o.bias {
        named.push(("bias", Attr::Operand(b)));
    }
    if let Some(b) = o.recurrent_bias {
        named.push(("recurrentBias", Attr::Operand(b)));
    }
    push_if(named, "resetAfter", !o.reset_after, Attr::Bool(false));
    push_if(named, "layout", o.layout != d.layout, Attr::Str(o.layout.name()));
    push_if(named, "activations", o.activations != d.activations, activation_names(&o.activations));
}

/// The options of an `lstmCell` (and the cell part of an `lstm`) that
/// differ from their defaults.
fn lstm_cell_arguments(named: &mut Vec<(&'static str, Attr)>, o: &LstmCellOptions) {
    let d = LstmCellOptions::default();
    if let Some(b) = o.bias {
        named.push(("bias", Attr::Operand(b)));
    }
    if let Some(b) = o.recurrent_bias {
        named.push(("recurrentBias", Attr::Operand(b)));
    }
    if let Some(p) = o.peephole_weight {
        named.push(("peepholeWeight", Attr::Operand(p)));
    }
    push_if(named, "layout", o.layout != d.layout, Attr::Str(o.layout.name()));
    push_if(named, "activations", o.activations != d.activations, activation_names(&o.activations));
}

fn activation_names(activations: &[RecurrentActivation]) -> Attr {
    Attr::Strs(activations.iter().map(|a| a.name()).collect())
}

/// Whether a float option differs from its default, bit for bit (so that
/// `-0.0` and NaN are printed, not mistaken for the default).
fn differs(value: f64, default: f64) -> bool {
    value.to_bits() != default.to_bits()
}

fn push_if(named: &mut Vec<(&'static str, Attr)>, key: &'static str, cond: bool, value: Attr) {
    if cond {
        named.push((key, value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operator_names_are_unique_and_name_the_ops() {
        let names = operator_names();
        let mut unique = names.clone();
        unique.dedup();
        assert_eq!(unique, names, "a name is declared twice");
        let x = OperandId(0);
        let ops = [
            Op::Clamp { input: x, min_value: None, max_value: None },
            Op::Softmax { input: x, axis: 0 },
            Op::Where { condition: x, true_value: x, false_value: x },
            Op::Unary { kind: UnaryOp::Gelu, input: x },
            Op::Pool2d { kind: PoolOp::L2, input: x, options: Pool2dOptions::default() },
        ];
        for op in ops {
            assert!(names.contains(&op.name()), "{}", op.name());
        }
        assert_eq!(names.len(), SINGLE_OPERATOR_NAMES.len() + BinaryOp::ALL.len() + CompareOp::ALL.len()
            + LogicalOp::ALL.len() + UnaryOp::ALL.len() + ReduceOp::ALL.len() + PoolOp::ALL.len()
            + PredicateOp::ALL.len() + ArgOp::ALL.len());
    }
}
