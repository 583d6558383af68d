//! Shapes and operand descriptors.

use std::fmt;

use crate::DataType;

/// The largest tensor, in bytes, that kiln accepts (`maxTensorByteLength`).
pub const MAX_TENSOR_BYTES: u64 = 1 << 36;

/// A static shape: one `u32` per dimension, as in WebNN. Rank 0 is a scalar.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Shape(pub Vec<u32>);

impl Shape {
    pub fn new(dims: impl Into<Vec<u32>>) -> Self {
        Shape(dims.into())
    }

    pub fn scalar() -> Self {
        Shape(Vec::new())
    }

    pub fn rank(&self) -> usize {
        self.0.len()
    }

    pub fn dims(&self) -> &[u32] {
        &self.0
    }

    /// The number of elements, or `None` if it overflows `u64`.
    pub fn checked_element_count(&self) -> Option<u64> {
        self.0
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(u64::from(d)))
    }

    /// The number of elements. Only call on shapes that passed validation
    /// (every operand of a [`crate::Graph`] did).
    pub fn element_count(&self) -> usize {
        self.0.iter().map(|&d| d as usize).product()
    }

    /// Row-major strides in elements.
    pub fn strides(&self) -> Vec<usize> {
        let mut strides = vec![1usize; self.rank()];
        for i in (0..self.rank().saturating_sub(1)).rev() {
            strides[i] = strides[i + 1] * self.0[i + 1] as usize;
        }
        strides
    }
}

impl<const N: usize> From<[u32; N]> for Shape {
    fn from(dims: [u32; N]) -> Self {
        Shape(dims.to_vec())
    }
}

impl From<Vec<u32>> for Shape {
    fn from(dims: Vec<u32>) -> Self {
        Shape(dims)
    }
}

impl From<&[u32]> for Shape {
    fn from(dims: &[u32]) -> Self {
        Shape(dims.to_vec())
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{d}")?;
        }
        f.write_str("]")
    }
}

/// An `MLOperandDescriptor`: data type and shape.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct OperandDescriptor {
    pub data_type: DataType,
    pub shape: Shape,
}

impl OperandDescriptor {
    pub fn new(data_type: DataType, shape: impl Into<Shape>) -> Self {
        OperandDescriptor {
            data_type,
            shape: shape.into(),
        }
    }

    /// Total size in bytes, or `None` on overflow.
    pub fn checked_byte_length(&self) -> Option<u64> {
        self.shape
            .checked_element_count()?
            .checked_mul(self.data_type.byte_size() as u64)
    }

    /// Size in bytes. Only for validated descriptors.
    pub fn byte_length(&self) -> usize {
        self.shape.element_count() * self.data_type.byte_size()
    }
}

impl fmt::Display for OperandDescriptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.data_type.short_name(), self.shape)
    }
}
