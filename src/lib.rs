//! kiln: a graph compiler for neural networks in the W3C WebNN model.
//!
//! Build a graph with [`GraphBuilder`] (or load a model file with [`load`]
//! or [`Context::load`]),
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

pub mod aot;
mod emit;
pub mod explain;
pub use kiln_frontend::npy;
pub mod output_files;
pub mod web;

use std::path::Path;

pub use kiln_frontend as frontend;
pub use kiln_frontend::builder::{BuildError, GraphBuilder};
pub use kiln_ir as ir;
pub use kiln_codegen as codegen;
pub use kiln_passes as passes;
pub use kiln_ir::*;
pub use kiln_runtime as runtime;
pub use kiln_runtime::{Backend, CompiledGraph, Context, ContextOptions, DeviceTensor, RuntimeError, TensorUsage};

pub use emit::{emit, EmitError, Stage};
pub use kiln_frontend::{LoadError, LoadOptions, load as load_graph};

/// Loads a model file (`.onnx`, `.tflite` or `.webnn`) and compiles it for the
/// default context (the `cpu` backend on all cores); run it with
/// `Context::new(ContextOptions::default())?.compute(..)`. Models with
/// symbolic dimensions need [`Context::load`] with [`LoadOptions`].
pub fn load(path: impl AsRef<Path>) -> Result<CompiledGraph, RuntimeError> {
    Context::new(ContextOptions::default())?.load(path, &LoadOptions::default())
}

/// The README's Rust examples, compiled and run as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
