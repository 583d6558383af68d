//! kiln: a graph compiler for neural networks in the W3C WebNN model.
//!
//! Build a graph with [`GraphBuilder`] (or load one with [`load_graph`]),
//! compile it in a [`Context`] and run it with typed tensors:
//!
//! ```
//! use kiln::{Context, ContextOptions, GraphBuilder, Conv2dOptions, DataType, OperandDescriptor, Tensor};
//!
//! let b = GraphBuilder::new();
//! let x = b.input("x", OperandDescriptor::new(DataType::Float32, [1, 1, 4, 4]))?;
//! let w = b.constant_f32([1, 1, 3, 3], &[1.0 / 9.0; 9])?;
//! let y = b.relu(b.conv2d(x, w, Conv2dOptions { padding: [1; 4], ..Default::default() })?)?;
//! let graph = b.build(&[("y", y)])?;
//!
//! let ctx = Context::new(ContextOptions::default())?;
//! let compiled = ctx.compile(graph)?;
//! let input = Tensor::from_f32([1, 1, 4, 4], &[9.0; 16])?;
//! let outputs = ctx.compute(&compiled, &[("x", &input)])?;
//! let y = outputs[0].1.to_f32_vec();
//! assert!((y[5] - 9.0).abs() < 1e-5); // an interior pixel sees nine 9s
//! assert!((y[0] - 4.0).abs() < 1e-5); // a corner sees four
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod conformance;
pub mod npy;
pub mod onnx_tests;

use std::path::Path;

pub use kiln_frontend as frontend;
pub use kiln_frontend::builder::{BuildError, GraphBuilder};
pub use kiln_ir as ir;
pub use kiln_codegen as codegen;
pub use kiln_passes as passes;
pub use kiln_ir::*;
pub use kiln_runtime as runtime;
pub use kiln_runtime::{Backend, CompiledGraph, Context, ContextOptions, RuntimeError};

/// An error from loading a model file.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error(transparent)]
    Text(#[from] kiln_frontend::webnn_text::TextError),
    #[error("{path}: unsupported model format (kiln reads .webnn graphs)")]
    UnknownFormat { path: String },
}

/// Loads a model file into a graph, choosing the format by extension:
/// `.webnn` (the WebNN text format, with weights sidecars next to it).
pub fn load_graph(path: impl AsRef<Path>) -> Result<Graph, LoadError> {
    let path = path.as_ref();
    match path.extension().and_then(|e| e.to_str()) {
        Some("webnn") => Ok(kiln_frontend::webnn_text::load(path)?),
        _ => Err(LoadError::UnknownFormat { path: path.display().to_string() }),
    }
}

/// The README's Rust examples, compiled and run as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
