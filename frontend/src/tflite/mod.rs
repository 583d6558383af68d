//! The TFLite frontend: `.tflite` models (the LiteRT flatbuffer format)
//! onto the WebNN operator set.
//!
//! ```no_run
//! let graph = kiln_frontend::tflite::load("face_detection_short_range.tflite")?;
//! # Ok::<(), kiln_frontend::tflite::TfliteError>(())
//! ```
//!
//! The flatbuffer is read by a bounds-checked reader of our own
//! ([`flatbuf`], no schema compiler); the schema's tables the importer
//! needs are typed in [`schema`]. Operators go through one table
//! ([`supported_operators`] lists it); TFLite operator codes stop in this
//! module. Layouts stay as the file has them (NHWC activations, OHWI
//! filters): the compiler's layout work decides what runs.
//!
//! Quantized tensors (int8/uint8, per tensor or per channel) are computed
//! through dequantize -> float operator -> quantize: a quantized input is
//! `scale * (q - zero_point)` in float32 (folded at load time for
//! weights), a quantized output is `clamp(roundEven(x / scale) +
//! zero_point)` cast to its type. Every unsupported operator of a model is
//! reported in one [`TfliteError::Unsupported`].

pub mod flatbuf;
mod import;
mod names;
mod ops;
pub mod schema;
mod sparse;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use kiln_ir::Graph;

pub use names::builtin_name;
pub use ops::supported_operators;

/// An operator the importer cannot express, and why.
#[derive(Clone, Debug, PartialEq)]
pub struct Unsupported {
    /// The operator's index in the subgraph's operator list.
    pub index: usize,
    /// The builtin name (`CONV_2D`), or the custom operator's name.
    pub op_type: String,
    /// The name of its first output tensor (TFLite operators have no
    /// names of their own).
    pub output: String,
    pub reason: String,
}

/// An error loading or importing a TFLite model.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TfliteError {
    #[error("{path}: {message}")]
    File { path: String, message: String },
    /// The flatbuffer or the graph in it breaks the format's rules.
    #[error("{0}")]
    Model(String),
    #[error("operator #{index} ({op_type}, output `{output}`): {message}")]
    Operator { index: usize, op_type: String, output: String, message: String },
    #[error("{}", unsupported_message(.0))]
    Unsupported(Vec<Unsupported>),
}

fn unsupported_message(ops: &[Unsupported]) -> String {
    let mut types: Vec<&str> = ops.iter().map(|n| n.op_type.as_str()).collect();
    types.sort_unstable();
    types.dedup();
    let mut s = format!(
        "{} operator{} cannot be imported (operator types: {}):",
        ops.len(),
        if ops.len() == 1 { "" } else { "s" },
        types.join(", ")
    );
    for n in ops {
        s.push_str(&format!("\n  operator #{} ({}, output `{}`): {}", n.index, n.op_type, n.output, n.reason));
    }
    s
}

/// A TFLite model held in memory, checked to be a TFLite flatbuffer.
pub struct TfliteModel {
    bytes: Arc<Vec<u8>>,
}

impl std::fmt::Debug for TfliteModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TfliteModel").field("bytes", &self.bytes.len()).finish_non_exhaustive()
    }
}

impl TfliteModel {
    /// Reads `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, TfliteError> {
        let path = path.as_ref();
        let err = |message: String| TfliteError::File { path: path.display().to_string(), message };
        let bytes = std::fs::read(path).map_err(|e| err(e.to_string()))?;
        Self::from_bytes(bytes).map_err(|e| match e {
            TfliteError::Model(message) => err(message),
            e => e,
        })
    }

    /// A model from the bytes of a `.tflite` file.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, TfliteError> {
        schema::Model::parse(&bytes).map_err(TfliteError::Model)?;
        Ok(TfliteModel { bytes: Arc::new(bytes) })
    }

    fn model(&self) -> schema::Model<'_> {
        schema::Model::parse(&self.bytes).expect("checked in from_bytes")
    }

    /// The model's description (the converter's name, usually).
    pub fn description(&self) -> String {
        self.model().description().unwrap_or_default()
    }

    /// Operator names (builtin or custom) with their counts, in the entry
    /// subgraph.
    pub fn operator_counts(&self) -> Result<BTreeMap<String, usize>, TfliteError> {
        let model = self.model();
        let flat = |e: flatbuf::FlatError| TfliteError::Model(e.to_string());
        let codes = model.operator_codes().map_err(flat)?;
        let sub = import::entry_subgraph(&model)?;
        let mut counts = BTreeMap::new();
        for i in 0..sub.operators.len() {
            let op = sub.operator(i).map_err(flat)?;
            let name = match codes.get(op.opcode_index as usize) {
                Some(code) => import::op_type(code),
                None => "(invalid operator code)".to_string(),
            };
            *counts.entry(name).or_insert(0) += 1;
        }
        Ok(counts)
    }

    /// Imports the entry subgraph as a kiln graph.
    pub fn to_graph(&self) -> Result<Graph, TfliteError> {
        import::import(&self.model())
    }
}

/// Reads and imports a TFLite model.
pub fn load(path: impl AsRef<Path>) -> Result<Graph, TfliteError> {
    TfliteModel::open(path)?.to_graph()
}
