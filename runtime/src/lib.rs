//! kiln's runtime: a [`Context`] compiles graphs for a backend and runs them.
//!
//! Backends today: `interp`, the reference interpreter. Every backend checks
//! the caller's tensors against the graph's inputs before running.

mod dispatch;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

pub use dispatch::{block_on, Dispatch};

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
#[derive(Clone, Debug)]
pub struct ContextOptions {
    pub backend: Backend,
    /// Threads a computation may use; 0 means all cores.
    pub threads: usize,
}

impl Default for ContextOptions {
    fn default() -> Self {
        ContextOptions { backend: Backend::default(), threads: 0 }
    }
}

/// Where graphs are compiled and run.
#[derive(Clone, Debug)]
pub struct Context {
    backend: Backend,
    threads: usize,
}

/// A graph compiled for one context's backend. `Send + Sync`; cloning is
/// cheap and shares the compiled code.
#[derive(Clone, Debug)]
pub struct CompiledGraph {
    inner: Arc<Compiled>,
}

#[derive(Debug)]
struct Compiled {
    graph: Graph,
}

impl CompiledGraph {
    /// The graph this was compiled from.
    pub fn graph(&self) -> &Graph {
        &self.inner.graph
    }
}

impl Context {
    pub fn new(options: ContextOptions) -> Result<Self, RuntimeError> {
        let threads = match options.threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        Ok(Context { backend: options.backend, threads })
    }

    /// The number of threads a computation uses.
    pub fn threads(&self) -> usize {
        self.threads
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Compiles `graph` for this context's backend.
    pub fn compile(&self, graph: Graph) -> Result<CompiledGraph, RuntimeError> {
        graph.validate()?;
        Ok(CompiledGraph { inner: Arc::new(Compiled { graph }) })
    }

    /// Runs `graph` on named input tensors; returns the outputs in the
    /// graph's output order, with their names.
    pub fn compute(
        &self,
        graph: &CompiledGraph,
        inputs: &[(&str, &Tensor)],
    ) -> Result<Vec<(String, Tensor)>, RuntimeError> {
        let g = graph.graph();
        g.check_feeds(inputs)?;
        let outputs = kiln_ir::interp::run(g, inputs)?;
        Ok(g.outputs().iter().map(|(n, _)| n.clone()).zip(outputs).collect())
    }

    /// Like [`Context::compute`], but runs off the calling thread; the
    /// returned future resolves to the outputs. Inputs are taken by value
    /// (cloning a [`Tensor`] shares its bytes).
    pub fn dispatch(&self, graph: &CompiledGraph, inputs: Vec<(String, Tensor)>) -> Dispatch {
        let (ctx, graph) = (self.clone(), graph.clone());
        Dispatch::spawn(move || {
            let feeds: Vec<(&str, &Tensor)> = inputs.iter().map(|(n, t)| (n.as_str(), t)).collect();
            ctx.compute(&graph, &feeds)
        })
    }
}
