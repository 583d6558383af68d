//! The eight WebNN operand data types.

use std::fmt;

/// An `MLOperandDataType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DataType {
    Float32,
    Float16,
    Int32,
    Uint32,
    Int64,
    Uint64,
    Int8,
    Uint8,
}

impl DataType {
    /// Every data type, in spec order.
    pub const ALL: [DataType; 8] = [
        DataType::Float32,
        DataType::Float16,
        DataType::Int32,
        DataType::Uint32,
        DataType::Int64,
        DataType::Uint64,
        DataType::Int8,
        DataType::Uint8,
    ];

    /// The two floating-point types.
    pub const FLOATS: &'static [DataType] = &[DataType::Float32, DataType::Float16];

    /// Size of one element in bytes.
    pub fn byte_size(self) -> usize {
        match self {
            DataType::Float32 | DataType::Int32 | DataType::Uint32 => 4,
            DataType::Float16 => 2,
            DataType::Int64 | DataType::Uint64 => 8,
            DataType::Int8 | DataType::Uint8 => 1,
        }
    }

    pub fn is_float(self) -> bool {
        matches!(self, DataType::Float32 | DataType::Float16)
    }

    pub fn is_signed(self) -> bool {
        !matches!(self, DataType::Uint32 | DataType::Uint64 | DataType::Uint8)
    }

    /// The WebNN (JavaScript) spelling: `float32`, `uint8`, ...
    pub fn name(self) -> &'static str {
        match self {
            DataType::Float32 => "float32",
            DataType::Float16 => "float16",
            DataType::Int32 => "int32",
            DataType::Uint32 => "uint32",
            DataType::Int64 => "int64",
            DataType::Uint64 => "uint64",
            DataType::Int8 => "int8",
            DataType::Uint8 => "uint8",
        }
    }

    /// The short spelling of the `.webnn` text format: `f32`, `u8`, ...
    pub fn short_name(self) -> &'static str {
        match self {
            DataType::Float32 => "f32",
            DataType::Float16 => "f16",
            DataType::Int32 => "i32",
            DataType::Uint32 => "u32",
            DataType::Int64 => "i64",
            DataType::Uint64 => "u64",
            DataType::Int8 => "i8",
            DataType::Uint8 => "u8",
        }
    }

    /// Parses either spelling (`float32` or `f32`).
    pub fn from_name(name: &str) -> Option<DataType> {
        DataType::ALL
            .into_iter()
            .find(|t| t.name() == name || t.short_name() == name)
    }

    /// The inclusive value range of an integer type, widened to `i128`.
    /// `None` for floating-point types.
    pub fn int_range(self) -> Option<(i128, i128)> {
        Some(match self {
            DataType::Int32 => (i32::MIN as i128, i32::MAX as i128),
            DataType::Uint32 => (0, u32::MAX as i128),
            DataType::Int64 => (i64::MIN as i128, i64::MAX as i128),
            DataType::Uint64 => (0, u64::MAX as i128),
            DataType::Int8 => (i8::MIN as i128, i8::MAX as i128),
            DataType::Uint8 => (0, u8::MAX as i128),
            DataType::Float32 | DataType::Float16 => return None,
        })
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
