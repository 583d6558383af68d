//! kiln's tensor IR.
//!
//! - [`DataType`], [`Shape`], [`OperandDescriptor`], [`Tensor`]: values.
//! - [`Op`]: the WebNN operator set, one typed enum with option structs.
//! - [`Graph`]: operands and nodes; every node is checked by its shape rule
//!   ([`infer`]) when it is added.
//! - [`interp`]: the reference interpreter, the oracle every backend is
//!   tested against.

mod dtype;
mod graph;
pub mod cost;
pub mod infer;
pub mod interp;
pub mod kernel;
pub mod limits;
mod op;
mod shape;
mod tensor;

pub use dtype::DataType;
pub use graph::{Graph, GraphError, Node, NodeId, Operand, OperandId, OperandKind};
pub use op::*;
pub use shape::{OperandDescriptor, Shape, MAX_TENSOR_BYTES};
pub use tensor::{saturate_float_to_int, Bytes, Tensor, TensorSizeError, Values};
