//! kiln's runtime: a [`Context`] compiles graphs for a backend and runs them.
//!
//! Backends: `cpu`, native code (the graph compiled to the kernel IR by
//! the passes of a `kiln_passes::Pipeline` and JIT-compiled by
//! `kiln_codegen::cpu`); `interp`, the reference interpreter; and
//! `kernels`, the compiled program run by the kernel-IR reference evaluator
//! (`kiln_ir::kernel::eval`); and `gpu`, the program as WGSL compute
//! shaders (`kiln_codegen::wgsl`) run through wgpu. Every backend
//! checks the caller's tensors against the graph's inputs before running.
//!
//! The lowered cpu and kernels backends run every graph: nodes f32 kernels cannot compute
//! exactly (32/64-bit integer arithmetic, ...) are host kernels, the
//! interpreter's operator run on the calling thread between the other
//! kernels (see `kiln_passes::lower`). The gpu backend refuses graphs with
//! host kernels, naming their operators.

mod cpu;
mod dispatch;
mod gpu;
mod pool;
mod tensors;

use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, OnceLock};

pub use dispatch::{block_on, Dispatch, Outputs};
pub use tensors::{DeviceTensor, TensorUsage};
use dispatch::Dispatcher;

use kiln_ir::kernel::{KernelError, Program};
use kiln_ir::{Graph, GraphError, Tensor};
pub use kiln_frontend::{LoadError, LoadOptions};
pub use kiln_passes::{CompileError, FoldError, LowerError, Pass, Pipeline, Report};

/// The backends a [`Context`] can run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Backend {
    /// Native code for this machine's CPU (Cranelift, with AVX-512/AVX2
    /// micro-kernels where the CPU has them). The default.
    #[default]
    Cpu,
    /// The reference interpreter (`kiln_ir::interp`): exact, slow, the oracle.
    Interp,
    /// The graph lowered to kernels and run by the kernel-IR evaluator
    /// (`kiln_ir::kernel::eval`): f32 arithmetic (and host kernels where
    /// it would not be exact), slow, the oracle of the code generators.
    Kernels,
    /// WGSL compute shaders run through wgpu on the system's GPU adapter
    /// (Vulkan, Metal, DX12; Mesa's lavapipe where there is no GPU).
    Gpu,
}

impl Backend {
    pub const ALL: &'static [Backend] = &[Backend::Cpu, Backend::Interp, Backend::Kernels, Backend::Gpu];

    pub fn name(self) -> &'static str {
        match self {
            Backend::Cpu => "cpu",
            Backend::Interp => "interp",
            Backend::Kernels => "kernels",
            Backend::Gpu => "gpu",
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
    #[error("unknown backend `{0}` (available: cpu, interp, kernels, gpu)")]
    UnknownBackend(String),
    /// The model file could not be read or imported.
    #[error(transparent)]
    Load(#[from] LoadError),
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
    /// Native code generation failed.
    #[error("code generation: {0}")]
    Codegen(String),
    /// The GPU adapter, device or a run on it failed.
    #[error("gpu: {0}")]
    Gpu(String),
    #[error("{what} needs the cpu backend, not {backend}")]
    NotOnBackend { what: &'static str, backend: Backend },
    #[error("internal: the program has no buffer for `{0}`")]
    MissingBuffer(String),
    #[error("internal: a lock was poisoned by a panicking thread")]
    Poisoned,
    /// A computation panicked (a bug in kiln): on the dispatch thread, or in
    /// a task of the worker pool. The context stays usable.
    #[error("internal: a computation panicked: {0}")]
    Panicked(String),
    /// A graph or tensor was used after `destroy`.
    #[error("{0} was destroyed")]
    Destroyed(&'static str),
    /// A tensor operation broke a rule (see [`DeviceTensor`]).
    #[error("tensor: {0}")]
    Tensor(String),
}

/// Options for a [`Context`]. The default: the `cpu` backend on all cores,
/// with the graph optimizer on.
#[derive(Clone, Debug)]
pub struct ContextOptions {
    pub backend: Backend,
    /// Threads a computation may use; 0 means all cores.
    pub threads: usize,
    /// Whether the graph passes (constant folding, rewriting) run before
    /// lowering; off compiles the graph as given (for measuring what the
    /// optimizer gains, or ruling it out when hunting a bug).
    pub optimize: bool,
}

impl Default for ContextOptions {
    fn default() -> Self {
        ContextOptions { backend: Backend::default(), threads: 0, optimize: true }
    }
}

/// Where graphs are compiled and run. Cloning is cheap and shares the
/// worker threads.
#[derive(Clone)]
pub struct Context {
    backend: Backend,
    optimize: bool,
    pool: Arc<pool::Pool>,
    /// The device of the gpu backend.
    gpu: Option<Arc<gpu::GpuDevice>>,
    /// The thread that runs dispatched computations, started by the first
    /// [`Context::dispatch`] (`None` inside if the system refused it).
    dispatcher: Arc<OnceLock<Option<Dispatcher>>>,
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context").field("backend", &self.backend).field("threads", &self.threads()).finish()
    }
}

/// A graph compiled for one context's backend. `Send + Sync`; cloning is
/// cheap and shares the compiled code.
#[derive(Clone)]
pub struct CompiledGraph {
    inner: Arc<Compiled>,
}

struct Compiled {
    graph: Graph,
    executable: Executable,
    /// What the compiler's passes did (backends that lower the graph).
    report: Option<Report>,
    /// Set by [`CompiledGraph::destroy`].
    destroyed: std::sync::atomic::AtomicBool,
}

/// What a backend runs.
enum Executable {
    Interp,
    Kernels(Program),
    Cpu(Box<cpu::CpuExecutable>),
    Gpu(Box<gpu::GpuExecutable>),
}

impl fmt::Debug for CompiledGraph {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CompiledGraph").field("nodes", &self.graph().nodes().len()).finish_non_exhaustive()
    }
}

impl CompiledGraph {
    /// Marks the graph destroyed (every clone shares it): computing it
    /// afterwards is an error. Runs already queued finish.
    pub fn destroy(&self) {
        self.inner.destroyed.store(true, std::sync::atomic::Ordering::Release);
    }

    pub fn is_destroyed(&self) -> bool {
        self.inner.destroyed.load(std::sync::atomic::Ordering::Acquire)
    }

    fn check_live(&self) -> Result<(), RuntimeError> {
        if self.is_destroyed() { Err(RuntimeError::Destroyed("the graph")) } else { Ok(()) }
    }

    /// The graph this was compiled from.
    pub fn graph(&self) -> &Graph {
        &self.inner.graph
    }

    /// What the compiler's passes did, for backends that lower the graph.
    pub fn report(&self) -> Option<&Report> {
        self.inner.report.as_ref()
    }

    /// The kernel program, for backends that lower the graph.
    pub fn program(&self) -> Option<&Program> {
        match &self.inner.executable {
            Executable::Interp => None,
            Executable::Kernels(p) => Some(p),
            Executable::Cpu(c) => Some(c.program()),
            Executable::Gpu(g) => Some(g.program()),
        }
    }

    /// The WGSL shaders, on the gpu backend.
    pub fn wgsl(&self) -> Option<&kiln_codegen::wgsl::WgslProgram> {
        match &self.inner.executable {
            Executable::Gpu(g) => Some(g.shaders()),
            _ => None,
        }
    }
}

impl Context {
    pub fn new(options: ContextOptions) -> Result<Self, RuntimeError> {
        let threads = match options.threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        // Only native code runs in parallel; the reference backends need no workers.
        let threads = if options.backend == Backend::Cpu { threads } else { 1 };
        let gpu = match options.backend {
            Backend::Gpu => Some(Arc::new(gpu::GpuDevice::new()?)),
            _ => None,
        };
        let pool = Arc::new(pool::Pool::new(threads));
        Ok(Context { backend: options.backend, optimize: options.optimize, pool, gpu, dispatcher: Arc::default() })
    }

    /// The GPU adapter this context runs on (gpu backend), for people:
    /// its name, graphics API and kind.
    pub fn gpu_adapter(&self) -> Option<String> {
        self.gpu.as_ref().map(|g| g.describe())
    }

    /// The number of threads a computation uses.
    pub fn threads(&self) -> usize {
        self.pool.threads()
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// WebNN's `opSupportLimits()`: the data types and ranks every operand
    /// of every operator accepts, the preferred layout and the largest
    /// tensor. The validator checks graphs against the same table
    /// ([`kiln_ir::limits`]), and every backend runs everything it allows
    /// (host kernels where generated code is not exact), so the limits are
    /// the same for every backend.
    pub fn op_support_limits(&self) -> kiln_ir::limits::OpSupportLimits {
        kiln_ir::limits::op_support_limits()
    }

    /// Loads a model file (`.onnx` or `.webnn`, see [`kiln_frontend::load`])
    /// and compiles it for this context's backend.
    pub fn load(&self, path: impl AsRef<std::path::Path>, options: &LoadOptions) -> Result<CompiledGraph, RuntimeError> {
        self.compile(kiln_frontend::load(path, options)?)
    }

    /// Compiles `graph` for this context's backend.
    pub fn compile(&self, graph: Graph) -> Result<CompiledGraph, RuntimeError> {
        graph.validate()?;
        let (executable, report) = match self.backend {
            Backend::Interp => (Executable::Interp, None),
            Backend::Kernels => {
                let compiled = self.pipeline(Pipeline::default()).run(&graph)?;
                (Executable::Kernels(compiled.program), Some(compiled.report))
            }
            Backend::Cpu => {
                let target = kiln_codegen::cpu::Target::host();
                let compiled = self.pipeline(pipeline_for(&target)).run(&graph)?;
                let outputs = graph.outputs().iter().map(|(n, id)| (n.clone(), graph.desc(*id).clone())).collect();
                let executable = cpu::CpuExecutable::new(compiled.program, &target, outputs)?;
                (Executable::Cpu(Box::new(executable)), Some(compiled.report))
            }
            Backend::Gpu => {
                let device = self.gpu.clone().ok_or_else(|| RuntimeError::Gpu("the context has no device".into()))?;
                let compiled = self.pipeline(Pipeline::default()).run(&graph)?;
                let outputs = graph.outputs().iter().map(|(n, id)| (n.clone(), graph.desc(*id).clone())).collect();
                let executable = gpu::GpuExecutable::new(compiled.program, device, outputs)?;
                (Executable::Gpu(Box::new(executable)), Some(compiled.report))
            }
        };
        let destroyed = Default::default();
        Ok(CompiledGraph { inner: Arc::new(Compiled { graph, executable, report, destroyed }) })
    }

    /// `pipeline`, without the graph passes if this context does not optimize.
    fn pipeline(&self, pipeline: Pipeline) -> Pipeline {
        if self.optimize { pipeline } else { pipeline.without(Pass::Fold).without(Pass::Rewrite) }
    }

    /// Runs `graph` on named input tensors; returns the outputs in the
    /// graph's output order, with their names.
    pub fn compute(
        &self,
        graph: &CompiledGraph,
        inputs: &[(&str, &Tensor)],
    ) -> Result<Vec<(String, Tensor)>, RuntimeError> {
        graph.check_live()?;
        let g = graph.graph();
        g.check_feeds(inputs)?;
        match &graph.inner.executable {
            Executable::Interp => {
                let outputs = kiln_ir::interp::run(g, inputs)?;
                Ok(g.outputs().iter().map(|(n, _)| n.clone()).zip(outputs).collect())
            }
            Executable::Kernels(program) => shape_outputs(g, kiln_ir::kernel::eval(program, inputs)?),
            Executable::Cpu(exe) => exe.run(inputs, &self.pool),
            Executable::Gpu(exe) => exe.run(inputs),
        }
    }

    /// Runs `graph` once and returns the wall time of each kernel of its
    /// program, host kernels included, in program order (`cpu` backend
    /// only).
    pub fn profile(&self, graph: &CompiledGraph, inputs: &[(&str, &Tensor)]) -> Result<Vec<std::time::Duration>, RuntimeError> {
        graph.check_live()?;
        graph.graph().check_feeds(inputs)?;
        match &graph.inner.executable {
            Executable::Cpu(exe) => exe.profile(inputs, &self.pool),
            _ => Err(RuntimeError::NotOnBackend { what: "profiling", backend: self.backend }),
        }
    }

    /// Like [`Context::compute`], but runs off the calling thread, on the
    /// context's dispatch thread (one per context, started by the first
    /// call; computations run in call order); the returned future resolves
    /// to the outputs. Inputs are taken by value (cloning a [`Tensor`]
    /// shares its bytes).
    pub fn dispatch(&self, graph: &CompiledGraph, inputs: Vec<(String, Tensor)>) -> Dispatch {
        let (ctx, graph) = (self.clone(), graph.clone());
        Dispatcher::submit(self.dispatcher(), move || {
            let feeds: Vec<(&str, &Tensor)> = inputs.iter().map(|(n, t)| (n.as_str(), t)).collect();
            ctx.compute(&graph, &feeds)
        })
    }
}

/// Orders the kernel evaluator's flat output buffers as the graph's outputs
/// and gives each its descriptor (no copy).
fn shape_outputs(graph: &Graph, mut flat: Vec<(String, Tensor)>) -> Result<Vec<(String, Tensor)>, RuntimeError> {
    graph
        .outputs()
        .iter()
        .map(|(name, id)| {
            let at = flat.iter().position(|(n, _)| n == name).ok_or_else(|| RuntimeError::MissingBuffer(name.clone()))?;
            let (_, t) = flat.swap_remove(at);
            let t = Tensor::new(graph.desc(*id).clone(), t.shared_bytes().clone()).map_err(|e| KernelError {
                kernel: 0,
                kind: "memory",
                message: format!("output `{name}`: {e}"),
            })?;
            Ok((name.clone(), t))
        })
        .collect()
}

/// The pipeline the cpu backend runs for `target`: the lowering depends on
/// the target only through the kernels its code generator has (direct
/// convolutions on AVX-512).
pub fn pipeline_for(target: &kiln_codegen::cpu::Target) -> Pipeline {
    Pipeline::new(kiln_passes::LowerOptions { direct_convolution: target.direct_convolution(), ..Default::default() })
}

impl From<CompileError> for RuntimeError {
    fn from(e: CompileError) -> Self {
        match e {
            CompileError::Lower(e) => RuntimeError::Lower(e),
            CompileError::Fold(FoldError::Interp(e)) => RuntimeError::Interp(e),
            CompileError::Fold(FoldError::Graph(e)) | CompileError::Rewrite(e) | CompileError::Layout(e) => {
                RuntimeError::Graph(e)
            }
        }
    }
}
