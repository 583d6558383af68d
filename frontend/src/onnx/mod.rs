//! The ONNX frontend: `.onnx` model files onto the WebNN operator set.
//!
//! ```no_run
//! use kiln_frontend::LoadOptions;
//! use kiln_frontend::onnx::OnnxModel;
//!
//! let model = OnnxModel::open("model.onnx")?;
//! let options = LoadOptions::default().with_shape("input", [1, 3, 224, 224]);
//! let graph = model.to_graph(&options)?;
//! # Ok::<(), kiln_frontend::onnx::OnnxError>(())
//! ```
//!
//! The file is memory-mapped and decoded with prost; tensor data (inline
//! `raw_data` and external data files) is shared with the map, never
//! copied. Operators go through one table ([`supported_operators`] lists
//! it); ONNX operator names stop in this module. Every unsupported node of
//! a model is reported in one [`OnnxError::Unsupported`].

mod import;
mod ops;
pub mod proto;
mod tensor;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kiln_ir::{Graph, Tensor};

use crate::LoadOptions;
use prost::Message;

pub use import::operator_counts;
pub use ops::supported_operators;

/// The oldest default-domain opset the importer accepts.
pub const MIN_OPSET: i64 = 7;

/// A node the importer cannot express, and why.
#[derive(Clone, Debug, PartialEq)]
pub struct Unsupported {
    /// The node's name (`#index` when the model leaves it empty).
    pub node: String,
    /// `OpType`, or `domain::OpType` outside the default domain.
    pub op_type: String,
    pub reason: String,
    /// The graph inputs whose values the node needs at load time, when
    /// that is the reason (else empty): binding them
    /// ([`crate::LoadOptions::constants`]) lets the import go on.
    pub needs_values: Vec<String>,
}

/// An error loading or importing an ONNX model.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OnnxError {
    #[error("{path}: {message}")]
    File { path: String, message: String },
    #[error("{0}")]
    Model(String),
    #[error("node `{node}` ({op_type}): {message}")]
    Node { node: String, op_type: String, message: String },
    #[error("input `{name}`: {message}")]
    Input { name: String, message: String },
    #[error("{}", unsupported_message(.0))]
    Unsupported(Vec<Unsupported>),
}

fn unsupported_message(nodes: &[Unsupported]) -> String {
    let mut types: Vec<&str> = nodes.iter().map(|n| n.op_type.as_str()).collect();
    types.sort_unstable();
    types.dedup();
    let mut s = format!(
        "{} node{} cannot be imported (operator types: {}):",
        nodes.len(),
        if nodes.len() == 1 { "" } else { "s" },
        types.join(", ")
    );
    for n in nodes {
        s.push_str(&format!("\n  node `{}` ({}): {}", n.node, n.op_type, n.reason));
    }
    s
}

/// A decoded ONNX model, ready to import.
pub struct OnnxModel {
    proto: proto::ModelProto,
    /// Where external data files are looked up.
    base: PathBuf,
    opset: i64,
    /// The address range of the model file's read-only mapping, when the
    /// model was opened from a file.
    mapped: Option<std::ops::Range<usize>>,
}

impl std::fmt::Debug for OnnxModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let nodes = self.proto.graph.as_ref().map_or(0, |g| g.node.len());
        f.debug_struct("OnnxModel").field("opset", &self.opset).field("nodes", &nodes).finish_non_exhaustive()
    }
}

/// Reads a whole file into shared bytes: memory-mapped, so that tensor
/// data decoded from it stays in the page cache instead of being copied.
fn map_file(path: &Path) -> Result<bytes::Bytes, OnnxError> {
    let err = |message: String| OnnxError::File { path: path.display().to_string(), message };
    let file = std::fs::File::open(path).map_err(|e| err(e.to_string()))?;
    let len = file.metadata().map_err(|e| err(e.to_string()))?.len();
    if len == 0 {
        return Err(err("the file is empty".into()));
    }
    // SAFETY: a read-only map; the file must not be truncated while in use,
    // as for every memory-mapped model loader.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| err(e.to_string()))?;
    Ok(bytes::Bytes::from_owner(map))
}

impl OnnxModel {
    /// Maps and decodes `path`; external data is looked up next to it.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, OnnxError> {
        let path = path.as_ref();
        let bytes = map_file(path)?;
        let mapped = bytes.as_ptr() as usize..bytes.as_ptr() as usize + bytes.len();
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let model = Self::decode(bytes, base).map_err(|e| match e {
            OnnxError::Model(message) => OnnxError::File { path: path.display().to_string(), message },
            e => e,
        })?;
        Ok(OnnxModel { mapped: Some(mapped), ..model })
    }

    /// Decodes a model held in memory; `base` is where external data files
    /// are looked up.
    pub fn decode(bytes: bytes::Bytes, base: PathBuf) -> Result<Self, OnnxError> {
        let proto = proto::ModelProto::decode(bytes)
            .map_err(|e| OnnxError::Model(format!("not a valid ONNX model (protobuf: {e})")))?;
        let Some(graph) = &proto.graph else {
            return Err(OnnxError::Model(format!(
                "not an ONNX model: it has no graph (IR version {})",
                proto.ir_version
            )));
        };
        if proto.ir_version < 3 && proto.opset_import.is_empty() {
            return Err(OnnxError::Model(format!(
                "ONNX IR version {} predates opset imports; kiln reads opset {MIN_OPSET} and later",
                proto.ir_version
            )));
        }
        let opset = proto
            .opset_import
            .iter()
            .find(|o| import::is_default_domain(&o.domain))
            .map(|o| o.version)
            .unwrap_or(0);
        let default_domain = graph.node.iter().any(|n| import::is_default_domain(&n.domain));
        if opset < MIN_OPSET && default_domain {
            return Err(OnnxError::Model(format!("opset {opset} is not supported; kiln reads opset {MIN_OPSET} and later")));
        }
        Ok(OnnxModel { proto, base, opset, mapped: None })
    }

    /// The default-domain opset version the model imports.
    pub fn opset(&self) -> i64 {
        self.opset
    }

    /// The model's producer (e.g. `pytorch`), if it names one.
    pub fn producer(&self) -> &str {
        &self.proto.producer_name
    }

    fn graph(&self) -> &proto::GraphProto {
        self.proto.graph.as_ref().expect("checked in decode")
    }

    /// The names of the inputs fed at run time (graph inputs that are not
    /// initializers), in order.
    pub fn input_names(&self) -> Vec<&str> {
        let g = self.graph();
        g.input.iter().map(|i| i.name.as_str()).filter(|n| !g.initializer.iter().any(|t| t.name == *n)).collect()
    }

    /// The names of the graph outputs, in order.
    pub fn output_names(&self) -> Vec<&str> {
        self.graph().output.iter().map(|o| o.name.as_str()).collect()
    }

    /// Operator types with their node counts.
    pub fn operator_counts(&self) -> BTreeMap<String, usize> {
        operator_counts(self.graph())
    }

    /// The nodes whose operator types the table does not map. Nodes whose
    /// attributes kiln cannot express are found by [`OnnxModel::to_graph`].
    pub fn unmapped_nodes(&self) -> Vec<Unsupported> {
        self.graph()
            .node
            .iter()
            .enumerate()
            .filter(|(_, n)| ops::handler(&n.domain, &n.op_type).is_none())
            .map(|(i, n)| Unsupported {
                node: if n.name.is_empty() { format!("#{i}") } else { n.name.clone() },
                op_type: import::qualified(n),
                reason: ops::unsupported_reason(&n.domain, &n.op_type),
                needs_values: Vec::new(),
            })
            .collect()
    }

    /// The element types and value kinds the model's tensors use that kiln
    /// has not (e.g. `DOUBLE`, `FLOAT8E4M3FN`, `sequence`), sorted: found in
    /// graph inputs and outputs, initializers, `Constant` values and
    /// `Cast` targets.
    pub fn unsupported_types(&self) -> Vec<String> {
        use proto::type_proto::Value as T;
        let g = self.graph();
        let mut found = std::collections::BTreeSet::new();
        let mut types: Vec<i32> = g.initializer.iter().map(|t| t.data_type).collect();
        for info in g.input.iter().chain(&g.output) {
            match info.r#type.as_ref().and_then(|t| t.value.as_ref()) {
                Some(T::TensorType(t)) => types.push(t.elem_type),
                Some(T::SequenceType(_)) => drop(found.insert("sequence".to_string())),
                Some(T::MapType(_)) => drop(found.insert("map".to_string())),
                Some(T::OptionalType(_)) => drop(found.insert("optional".to_string())),
                Some(T::SparseTensorType(_)) => drop(found.insert("sparse tensor".to_string())),
                None => {}
            }
        }
        for node in &g.node {
            for a in &node.attribute {
                match (node.op_type.as_str(), a.name.as_str(), &a.t) {
                    ("Cast", "to", _) => types.push(i32::try_from(a.i).unwrap_or(-1)),
                    (_, "value", Some(t)) => types.push(t.data_type),
                    _ => {}
                }
            }
        }
        found.extend(types.into_iter().filter(|&t| tensor::data_type(t).is_err()).map(|t| proto::elem_type::name(t).to_string()));
        found.into_iter().collect()
    }

    /// Imports the model as a kiln graph.
    pub fn to_graph(&self, options: &LoadOptions) -> Result<Graph, OnnxError> {
        import::import(self.graph(), self.opset, tensor::ExternalFiles::new(&self.base, self.mapped.clone()), options)
    }
}

/// Opens, decodes and imports an ONNX model.
pub fn load(path: impl AsRef<Path>, options: &LoadOptions) -> Result<Graph, OnnxError> {
    OnnxModel::open(path)?.to_graph(options)
}

/// Reads a serialized `TensorProto` file (the `input_N.pb`/`output_N.pb`
/// files of ONNX test data): its name and its value.
pub fn read_tensor(path: impl AsRef<Path>) -> Result<(String, Tensor), OnnxError> {
    let path = path.as_ref();
    let err = |message: String| OnnxError::File { path: path.display().to_string(), message };
    let bytes = bytes::Bytes::from(std::fs::read(path).map_err(|e| err(e.to_string()))?);
    let t = proto::TensorProto::decode(bytes).map_err(|e| err(format!("not a TensorProto ({e})")))?;
    let base = path.parent().unwrap_or(Path::new("."));
    let tensor = tensor::convert(&t, &mut tensor::ExternalFiles::new(base, None)).map_err(err)?;
    Ok((t.name, tensor))
}
