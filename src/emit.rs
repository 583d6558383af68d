//! The stable text of every stage of compilation, for people (`kiln emit`)
//! and for snapshot tests of generated code (see `docs/snapshot-testing.md`).
//!
//! Every stage is deterministic: the same graph and target give the same
//! bytes on any host (code for any x86-64 feature level is generated
//! whatever the machine; nothing is executed).

use kiln_codegen::cpu::{listing, CodegenError, Listing, Target};
use kiln_codegen::wgsl::{self, WgslError};
use kiln_ir::Graph;
use kiln_passes::CompileError;

/// A point of the compilation [`emit`] prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// The graph as given, as `.webnn` text.
    Graph,
    /// The graph after the graph passes (folding, rewriting), as `.webnn`
    /// text.
    Opt,
    /// The lowered, fused, memory-planned kernel program.
    Kernels,
    /// Cranelift IR of every kernel, before optimisation.
    Clif,
    /// Machine code of every kernel (and of the micro-kernels they call).
    Asm,
    /// WGSL compute shaders of the gpu backend's program (lowered for the
    /// gpu, for WebGPU's default limits; the target is not used).
    Wgsl,
}

/// Why a stage could not be printed.
#[derive(Debug, thiserror::Error)]
pub enum EmitError {
    #[error(transparent)]
    Compile(#[from] CompileError),
    #[error("code generation: {0}")]
    Codegen(#[from] CodegenError),
    #[error("WGSL: {0}")]
    Wgsl(#[from] WgslError),
}

/// `graph` at `stage`, compiled as the cpu backend compiles it for `target`
/// (the graph text is named `graph`).
pub fn emit(graph: &Graph, stage: Stage, target: &Target) -> Result<String, EmitError> {
    let text = |g: &Graph| kiln_frontend::webnn_text::print(&kiln_frontend::webnn_text::from_graph(g, "graph"));
    if stage == Stage::Graph {
        return Ok(text(graph));
    }
    if stage == Stage::Wgsl {
        let compiled = kiln_passes::Pipeline::default().run(graph)?;
        return Ok(wgsl::listing(&compiled.program, &wgsl::Limits::default())?);
    }
    let compiled = kiln_runtime::pipeline_for(target).run(graph)?;
    Ok(match stage {
        Stage::Graph | Stage::Wgsl => unreachable!("returned above"),
        Stage::Opt => text(&compiled.graph),
        Stage::Kernels => compiled.program.to_string(),
        Stage::Clif => listing(&compiled.program, target, Listing::Clif)?,
        Stage::Asm => listing(&compiled.program, target, Listing::Asm)?,
    })
}
