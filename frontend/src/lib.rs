//! kiln's frontends: every way a graph gets in.
//!
//! - [`builder`]: the WebNN `MLGraphBuilder` API in Rust.
//! - [`onnx`]: ONNX models onto the WebNN operator set.
//! - [`op_table`]: WebNN operator names and arguments onto typed ops; shared
//!   by the text format and the conformance JSON.
//! - [`webnn_text`]: the `.webnn` graph text format and its weights sidecars.

pub mod builder;
pub mod onnx;
pub mod op_table;
pub mod webnn_text;
