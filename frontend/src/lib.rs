//! kiln's frontends: every way a graph gets in. [`load`] picks one by file
//! extension.
//!
//! - [`builder`]: the WebNN `MLGraphBuilder` API in Rust.
//! - [`onnx`]: ONNX models onto the WebNN operator set.
//! - [`tflite`]: TFLite (LiteRT) models onto the WebNN operator set.
//! - [`op_table`]: WebNN operator names and arguments onto typed ops; shared
//!   by the text format and the conformance JSON.
//! - [`webnn_text`]: the `.webnn` graph text format and its weights sidecars.

pub mod builder;
pub mod npy;
pub mod onnx;
pub mod tflite;
pub mod op_table;
pub mod webnn_text;

use std::collections::BTreeMap;
use std::path::Path;

use kiln_ir::Graph;

/// How to load a model file.
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    /// Shapes for inputs (by input name, every dimension) and values for
    /// symbolic dimensions (by name, one value). Only models with symbolic
    /// dimensions (ONNX) take them.
    pub shapes: BTreeMap<String, Vec<u32>>,
    /// Inputs bound to values at load time (by input name): they become
    /// constants and are not fed at run time. For inputs that carry what
    /// WebNN takes as static attributes (shapes, axes, pads, scales) in
    /// models that compute them at run time.
    pub constants: BTreeMap<String, kiln_ir::Tensor>,
}

impl LoadOptions {
    /// Binds input `name`'s shape, or the symbolic dimension `name` when
    /// `dims` has one value.
    pub fn with_shape(mut self, name: &str, dims: impl Into<Vec<u32>>) -> Self {
        self.shapes.insert(name.to_string(), dims.into());
        self
    }

    /// Parses the CLI's `NAME=D0xD1x...` (e.g. `input=1x3x224x224`,
    /// `batch=1`) and adds it.
    pub fn parse_shape(&mut self, arg: &str) -> Result<(), String> {
        let (name, dims) = arg
            .split_once('=')
            .ok_or_else(|| format!("--shape `{arg}`: expected NAME=D0xD1x... (e.g. input=1x3x224x224)"))?;
        let dims = dims
            .split('x')
            .map(|d| d.trim().parse::<u32>().ok().filter(|&d| d > 0))
            .collect::<Option<Vec<u32>>>()
            .ok_or_else(|| format!("--shape `{arg}`: every dimension must be a positive integer"))?;
        if name.is_empty() {
            return Err(format!("--shape `{arg}`: the name is empty"));
        }
        self.shapes.insert(name.to_string(), dims);
        Ok(())
    }
}

/// An error from loading a model file.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Text(#[from] webnn_text::TextError),
    #[error(transparent)]
    Onnx(#[from] onnx::OnnxError),
    #[error(transparent)]
    Tflite(#[from] tflite::TfliteError),
    #[error("{path}: unsupported model format (kiln reads .onnx and .tflite models and .webnn graphs)")]
    UnknownFormat { path: String },
    #[error("{path}: --shape applies to models with symbolic dimensions (.onnx); .webnn graphs and .tflite models have static shapes")]
    ShapesNotApplicable { path: String },
    #[error("{path}: load-time constants for inputs apply to .onnx models")]
    ConstantsNotApplicable { path: String },
}

/// Loads a model file into a graph, choosing the format by extension:
/// `.onnx` (ONNX, weights memory-mapped), `.tflite` (TFLite/LiteRT) or
/// `.webnn` (the WebNN text format, with weights sidecars next to it).
pub fn load(path: impl AsRef<Path>, options: &LoadOptions) -> Result<Graph, LoadError> {
    let path = path.as_ref();
    let display = || path.display().to_string();
    match path.extension().and_then(|e| e.to_str()) {
        Some("onnx") => Ok(onnx::load(path, options)?),
        Some("webnn" | "tflite") if !options.shapes.is_empty() => Err(LoadError::ShapesNotApplicable { path: display() }),
        Some("webnn" | "tflite") if !options.constants.is_empty() => {
            Err(LoadError::ConstantsNotApplicable { path: display() })
        }
        Some("webnn") => Ok(webnn_text::load(path)?),
        Some("tflite") => Ok(tflite::load(path)?),
        _ => Err(LoadError::UnknownFormat { path: display() }),
    }
}
