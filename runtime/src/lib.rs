//! kiln's runtime: a [`Context`] compiles graphs for a backend and runs them.
//!
//! Backends today: `interp`, the reference interpreter, and `kernels`, which
//! lowers the graph to the kernel IR (`kiln_passes::lower`) and runs it on
//! the kernel-IR reference evaluator (`kiln_ir::kernel::eval`). Every
//! backend checks the caller's tensors against the graph's inputs before
//! running.

use std::fmt;
use std::str::FromStr;

use kiln_ir::kernel::{KernelError, Program};
use kiln_ir::{Graph, GraphError, Tensor};
pub use kiln_passes::LowerError;

/// The backends a [`Context`] can run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Backend {
    /// The reference interpreter (`kiln_ir::interp`): exact, slow, the oracle.
    #[default]
    Interp,
    /// The graph lowered to kernels and run by the kernel-IR evaluator
    /// (`kiln_ir::kernel::eval`): f32 arithmetic, slow, the oracle of the
    /// code generators. Compiling fails for graphs the lowering does not
    /// support.
    Kernels,
}

impl Backend {
    pub const ALL: &'static [Backend] = &[Backend::Interp, Backend::Kernels];

    pub fn name(self) -> &'static str {
        match self {
            Backend::Interp => "interp",
            Backend::Kernels => "kernels",
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
    #[error("unknown backend `{0}` (available: interp, kernels)")]
    UnknownBackend(String),
    #[error(transparent)]
    Graph(#[from] GraphError),
    #[error(transparent)]
    Interp(#[from] kiln_ir::interp::InterpError),
    /// The graph could not be lowered to kernels.
    #[error("lowering: {0}")]
    Lower(#[from] LowerError),
    /// A kernel program failed to run.
    #[error(transparent)]
    Kernel(#[from] KernelError),
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
    /// The lowered program (the `kernels` backend).
    program: Option<Program>,
}

impl CompiledGraph {
    /// The graph this was compiled from.
    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// The kernel program, for backends that lower the graph.
    pub fn program(&self) -> Option<&Program> {
        self.program.as_ref()
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
        let program = match self.backend {
            Backend::Interp => None,
            Backend::Kernels => Some(kiln_passes::lower(&graph)?),
        };
        Ok(CompiledGraph { graph, program })
    }

    /// Runs `graph` on named input tensors; returns the outputs in the
    /// graph's output order, with their names.
    pub fn compute(
        &self,
        graph: &CompiledGraph,
        inputs: &[(&str, &Tensor)],
    ) -> Result<Vec<(String, Tensor)>, RuntimeError> {
        graph.graph.check_feeds(inputs)?;
        match &graph.program {
            None => {
                let outputs = kiln_ir::interp::run(&graph.graph, inputs)?;
                Ok(graph.graph.outputs().iter().map(|(n, _)| n.clone()).zip(outputs).collect())
            }
            Some(program) => {
                let mut flat = kiln_ir::kernel::eval(program, inputs)?;
                graph
                    .graph
                    .outputs()
                    .iter()
                    .map(|(name, id)| {
                        let at = flat.iter().position(|(n, _)| n == name).ok_or_else(|| KernelError {
                            kernel: 0,
                            kind: "memory",
                            message: format!("the program has no output `{name}`"),
                        })?;
                        let (_, t) = flat.swap_remove(at);
                        let desc = graph.graph.desc(*id).clone();
                        let t = Tensor::new(desc, t.shared_bytes().clone()).map_err(|e| KernelError {
                            kernel: 0,
                            kind: "memory",
                            message: format!("output `{name}`: {e}"),
                        })?;
                        Ok((name.clone(), t))
                    })
                    .collect()
            }
        }
    }
}
