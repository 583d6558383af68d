//! kiln's runtime: a [`Context`] compiles graphs for a backend and runs them.
//!
//! Backends today: `interp`, the reference interpreter. Every backend checks
//! the caller's tensors against the graph's inputs before running.

use std::fmt;
use std::str::FromStr;

use kiln_ir::{Graph, GraphError, Tensor};

/// The backends a [`Context`] can run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Backend {
    /// The reference interpreter (`kiln_ir::interp`): exact, slow, the oracle.
    #[default]
    Interp,
}

impl Backend {
    pub const ALL: &'static [Backend] = &[Backend::Interp];

    pub fn name(self) -> &'static str {
        match self {
            Backend::Interp => "interp",
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Backend {
    type Err = RuntimeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Backend::ALL
            .iter()
            .copied()
            .find(|b| b.name() == s)
            .ok_or_else(|| RuntimeError::UnknownBackend(s.to_string()))
    }
}

/// An error from compiling or running a graph.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RuntimeError {
    #[error("unknown backend `{0}` (available: interp)")]
    UnknownBackend(String),
    #[error(transparent)]
    Graph(#[from] GraphError),
    #[error(transparent)]
    Interp(#[from] kiln_ir::interp::InterpError),
}

/// Options for a [`Context`].
#[derive(Clone, Debug, Default)]
pub struct ContextOptions {
    pub backend: Backend,
}

/// Where graphs are compiled and run.
#[derive(Clone, Debug)]
pub struct Context {
    backend: Backend,
}

/// A graph compiled for one context's backend. `Send + Sync`.
#[derive(Clone, Debug)]
pub struct CompiledGraph {
    graph: Graph,
}

impl CompiledGraph {
    /// The graph this was compiled from.
    pub fn graph(&self) -> &Graph {
        &self.graph
    }
}

impl Context {
    pub fn new(options: ContextOptions) -> Result<Self, RuntimeError> {
        Ok(Context { backend: options.backend })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Compiles `graph` for this context's backend.
    pub fn compile(&self, graph: Graph) -> Result<CompiledGraph, RuntimeError> {
        graph.validate()?;
        Ok(CompiledGraph { graph })
    }

    /// Runs `graph` on named input tensors; returns the outputs in the
    /// graph's output order, with their names.
    pub fn compute(
        &self,
        graph: &CompiledGraph,
        inputs: &[(&str, &Tensor)],
    ) -> Result<Vec<(String, Tensor)>, RuntimeError> {
        graph.graph.check_feeds(inputs)?;
        let outputs = kiln_ir::interp::run(&graph.graph, inputs)?;
        Ok(graph.graph.outputs().iter().map(|(n, _)| n.clone()).zip(outputs).collect())
    }
}
