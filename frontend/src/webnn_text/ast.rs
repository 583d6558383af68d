//! The syntax tree of a `.webnn` file: what the text says, before any
//! operand is built. Every identifier keeps the position it was written at,
//! so later errors can point at it; positions take no part in equality.

use std::fmt;

use kiln_ir::{DataType, Number, OperandDescriptor};

/// A position in the text: 1-based line and 1-based column, counted in
/// characters (Unicode scalar values; a tab is one column).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pos {
    pub line: u32,
    pub col: u32,
}

impl Pos {
    pub fn new(line: u32, col: u32) -> Self {
        Pos { line, col }
    }
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

/// An identifier and where it was written. Two identifiers are equal when
/// their names are, wherever they stand.
#[derive(Clone, Debug, Default)]
pub struct Ident {
    pub name: String,
    pub pos: Pos,
}

impl Ident {
    /// An identifier with no position (for documents built in code).
    pub fn new(name: impl Into<String>) -> Self {
        Ident { name: name.into(), pos: Pos::default() }
    }
}

impl PartialEq for Ident {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

/// The ten element types the grammar spells. `i4` and `u4` parse and print
/// but have no kiln [`DataType`]; converting them to a graph is an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    F32,
    F16,
    I4,
    U4,
    I32,
    U32,
    I64,
    U64,
    I8,
    U8,
}

impl DType {
    /// Every element type, in the grammar's order.
    pub const ALL: [DType; 10] =
        [DType::F32, DType::F16, DType::I4, DType::U4, DType::I32, DType::U32, DType::I64, DType::U64, DType::I8, DType::U8];

    /// The text spelling: `f32`, `u8`, ...
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F16 => "f16",
            DType::I4 => "i4",
            DType::U4 => "u4",
            DType::I32 => "i32",
            DType::U32 => "u32",
            DType::I64 => "i64",
            DType::U64 => "u64",
            DType::I8 => "i8",
            DType::U8 => "u8",
        }
    }

    /// Parses the text spelling.
    pub fn from_name(name: &str) -> Option<DType> {
        DType::ALL.into_iter().find(|t| t.name() == name)
    }

    /// The kiln data type, or `None` for the 4-bit types.
    pub fn data_type(self) -> Option<DataType> {
        Some(match self {
            DType::F32 => DataType::Float32,
            DType::F16 => DataType::Float16,
            DType::I32 => DataType::Int32,
            DType::U32 => DataType::Uint32,
            DType::I64 => DataType::Int64,
            DType::U64 => DataType::Uint64,
            DType::I8 => DataType::Int8,
            DType::U8 => DataType::Uint8,
            DType::I4 | DType::U4 => return None,
        })
    }
}

impl From<DataType> for DType {
    fn from(t: DataType) -> Self {
        match t {
            DataType::Float32 => DType::F32,
            DataType::Float16 => DType::F16,
            DataType::Int32 => DType::I32,
            DataType::Uint32 => DType::U32,
            DataType::Int64 => DType::I64,
            DataType::Uint64 => DType::U64,
            DataType::Int8 => DType::I8,
            DataType::Uint8 => DType::U8,
        }
    }
}

/// `f32[1, 2048]`: an element type and a static shape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorType {
    pub dtype: DType,
    pub shape: Vec<u32>,
}

impl From<&OperandDescriptor> for TensorType {
    fn from(desc: &OperandDescriptor) -> Self {
        TensorType { dtype: desc.data_type.into(), shape: desc.shape.dims().to_vec() }
    }
}

/// `x: f32[1, 2048];` in the `inputs` block.
#[derive(Clone, Debug, PartialEq)]
pub struct InputDecl {
    pub name: Ident,
    pub ty: TensorType,
}

/// Where a constant's value comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum Annotation {
    /// `@weights("key")`: the tensor `key` of the weights sidecar.
    Weights(String),
    /// `@scalar(v)`: every element equals `v`.
    Scalar(Number),
}

/// `W: f32[2048, 1000] @weights("W");` in the `consts` block. The grammar
/// allows any number of annotations; a graph needs exactly one.
#[derive(Clone, Debug, PartialEq)]
pub struct ConstDecl {
    pub name: Ident,
    pub ty: TensorType,
    pub annotations: Vec<Annotation>,
}

/// A value: an argument, an array element, or the right side of a binding.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A name defined earlier in the file.
    Ident(Ident),
    Int(i128),
    /// A float; `Infinity`, `-Infinity` and `NaN` are its non-finite spellings.
    Float(f64),
    Str(String),
    Bool(bool),
    Null,
    Array(Vec<Value>),
}

/// `name=value` or a positional `value` in a call.
#[derive(Clone, Debug, PartialEq)]
pub struct Arg {
    pub name: Option<Ident>,
    pub value: Value,
}

/// `op(args)`.
#[derive(Clone, Debug, PartialEq)]
pub struct Call {
    pub op: Ident,
    pub args: Vec<Arg>,
}

/// The right side of a statement.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    Call(Call),
    /// `x = y;` (an alias) or `x = [1, 2];` (a named literal).
    Value(Value),
}

/// `x = expr;` (one target) or `[a, b] = expr;` (`multi`, one or more).
#[derive(Clone, Debug)]
pub struct Stmt {
    pub targets: Vec<Ident>,
    /// Written with brackets, even around a single name.
    pub multi: bool,
    pub expr: Expr,
    /// Where the statement starts; not part of equality.
    pub pos: Pos,
}

impl PartialEq for Stmt {
    fn eq(&self, other: &Self) -> bool {
        self.targets == other.targets && self.multi == other.multi && self.expr == other.expr
    }
}

/// A whole `.webnn` file.
#[derive(Clone, Debug, PartialEq)]
pub struct Document {
    pub name: String,
    /// The `vN` of the header. Recorded, not interpreted.
    pub version: u32,
    /// The header's `@quantized` flag. Recorded, not interpreted.
    pub quantized: bool,
    pub inputs: Vec<InputDecl>,
    pub consts: Vec<ConstDecl>,
    pub nodes: Vec<Stmt>,
    pub outputs: Vec<Ident>,
}

impl Document {
    /// An empty `v1` document.
    pub fn new(name: impl Into<String>) -> Self {
        Document {
            name: name.into(),
            version: 1,
            quantized: false,
            inputs: Vec::new(),
            consts: Vec::new(),
            nodes: Vec::new(),
            outputs: Vec::new(),
        }
    }

    /// Whether any constant reads a weights sidecar.
    pub fn uses_weights(&self) -> bool {
        self.consts.iter().any(|c| c.annotations.iter().any(|a| matches!(a, Annotation::Weights(_))))
    }
}
