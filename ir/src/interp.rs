//! The reference interpreter. (Being written.)

use crate::{Graph, Tensor};

/// An error while interpreting a graph.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{op}: {message}")]
pub struct InterpError {
    pub op: &'static str,
    pub message: String,
}

/// Runs `graph` on `feeds` (already checked with [`Graph::check_feeds`]) and
/// returns the outputs in `graph.outputs()` order.
pub fn run(graph: &Graph, feeds: &[(&str, &Tensor)]) -> Result<Vec<Tensor>, InterpError> {
    let _ = (graph, feeds);
    Err(InterpError { op: "graph", message: "the interpreter is not written yet".into() })
}
