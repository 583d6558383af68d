//! WGSL compute shaders: one per kernel of a [`Program`], each parsed and
//! validated by naga before anyone uses it.
//!
//! ## Memory
//!
//! A shader sees the program's buffers through a few storage bindings of
//! `array<u32>`, whatever the program's buffer count (WebGPU allows 8
//! storage buffers per stage by default, a fused kernel can read more
//! tensors than that). They view a few *memories* (GPU buffers):
//!
//! - `arena`, read-write: the scratch buffers at their planned offsets,
//!   then the graph inputs and outputs ([`Layout`]). The caller writes the
//!   inputs there before a run and copies the outputs out after.
//! - `c0`, `c1`, ..., read-only: the constants, packed into chunks of at
//!   most the buffer-size limit (a tensor is never split); a shader binds
//!   only the chunks it reads.
//!
//! A memory larger than one binding may be (128 MiB by WebGPU's default)
//! is bound as consecutive *pages* (`arena_p0`, `arena_p1`, ...) and read
//! and written through functions that pick the page, so a tensor of any
//! size up to the buffer-size limit is split, never refused.
//!
//! Elements of every data type are read from and written to those words
//! with the conversions of [`kiln_ir::kernel::load_f32`] and
//! [`kiln_ir::kernel::store_f32`] written out in WGSL (`library`). A kernel
//! whose output has elements narrower than a word (float16, int8, uint8)
//! binds the arena as `array<atomic<u32>>` and updates its bytes with
//! atomic and/or, so neighbouring elements written by other invocations
//! are never lost.
//!
//! ## Work
//!
//! A Map runs one invocation per index of its domain; a Reduce and a Gemm
//! one per output element, looping over the reduced axes or `k`; a Gather
//! one per output element. Workgroups of [`WORKGROUP_SIZE`] invocations,
//! counted in x and, past the per-dimension limit, y. All offsets, extents
//! and constants are literals of the shader. Host kernels have no shader:
//! [`compile`] refuses programs with them, naming their operators, unless
//! the caller runs them itself ([`HostKernels::CallerRuns`], as the native
//! gpu runtime does between its dispatches).

mod gemm;
mod library;
mod shader;

use kiln_ir::kernel::{BufferKind, Kernel, KernelError, Program};

/// Invocations per workgroup.
pub const WORKGROUP_SIZE: u32 = 64;

/// The device limits a program is generated for (WebGPU's names). The
/// default is WebGPU's default limits, which every adapter supports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest storage binding, in bytes.
    pub max_storage_buffer_binding_size: u64,
    /// Storage bindings one shader may use.
    pub max_storage_buffers_per_shader_stage: u32,
    /// Workgroups per dimension of one dispatch.
    pub max_compute_workgroups_per_dimension: u32,
    /// Largest buffer, in bytes.
    pub max_buffer_size: u64,
    /// Alignment of a storage binding's offset in its buffer.
    pub min_storage_buffer_offset_alignment: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_storage_buffer_binding_size: 128 << 20,
            max_storage_buffers_per_shader_stage: 8,
            max_compute_workgroups_per_dimension: 65_535,
            max_buffer_size: 256 << 20,
            min_storage_buffer_offset_alignment: 256,
        }
    }
}

/// Which storage binding holds a buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Memory {
    /// The read-write arena (scratch, inputs, outputs).
    Arena,
    /// Constant chunk `n`.
    Constants(usize),
}

impl Memory {
    /// The variable's name in the shaders.
    pub fn name(self) -> String {
        match self {
            Memory::Arena => "arena".into(),
            Memory::Constants(n) => format!("c{n}"),
        }
    }
}

/// Where one buffer of the program lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placement {
    pub memory: Memory,
    /// Byte offset in that memory.
    pub offset: u64,
}

/// Where every buffer lives, and the constant chunks' bytes.
#[derive(Clone, Debug)]
pub struct Layout {
    /// One entry per buffer of the program.
    pub buffers: Vec<Placement>,
    /// Bytes of the arena (a multiple of 4, at least 4).
    pub arena_bytes: u64,
    /// Each constant chunk's bytes (length a multiple of 16, at least 16).
    pub constants: Vec<Vec<u8>>,
    /// Bytes of one page: a memory is bound in pages of this size (the
    /// last one shorter), a multiple of the offset alignment.
    pub page_bytes: u64,
}

impl Layout {
    /// The size of memory `m` in bytes.
    pub fn memory_bytes(&self, m: Memory) -> u64 {
        match m {
            Memory::Arena => self.arena_bytes,
            Memory::Constants(n) => self.constants[n].len() as u64,
        }
    }

    /// The number of pages memory `m` is bound as.
    pub fn pages(&self, m: Memory) -> u64 {
        self.memory_bytes(m).div_ceil(self.page_bytes).max(1)
    }

    /// The bindings of `memories`, in order, page by page.
    fn bindings(&self, memories: &[Memory]) -> Vec<Binding> {
        let mut out = Vec::new();
        for &memory in memories {
            let total = self.memory_bytes(memory);
            for page in 0..self.pages(memory) {
                let offset = page * self.page_bytes;
                out.push(Binding { memory, offset, size: (total - offset).min(self.page_bytes) });
            }
        }
        out
    }
}

/// One storage binding of a shader: `size` bytes of `memory` from `offset`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Binding {
    pub memory: Memory,
    pub offset: u64,
    pub size: u64,
}

/// One kernel's compute shader.
#[derive(Clone, Debug)]
pub struct Shader {
    /// The kernel's index in the program.
    pub kernel: usize,
    /// WGSL text.
    pub source: String,
    /// The parsed and validated module.
    pub module: naga::Module,
    /// What binding `n` of group 0 views.
    pub bindings: Vec<Binding>,
    /// Workgroups to dispatch in x, y, z.
    pub workgroups: [u32; 3],
}

/// A program as WGSL shaders, in program order (kernels with an empty
/// domain and host kernels have none).
#[derive(Clone, Debug)]
pub struct WgslProgram {
    pub layout: Layout,
    pub shaders: Vec<Shader>,
}

/// Why a program has no WGSL form.
#[derive(Debug, thiserror::Error)]
pub enum WgslError {
    #[error(transparent)]
    Invalid(#[from] KernelError),
    /// Kernels the WGSL backend does not generate (host kernels).
    #[error("the WGSL backend cannot run {}: these operators run as host kernels (exact integer arithmetic or casts beyond f32), which have no shader", list(.0))]
    HostKernels(Vec<String>),
    /// A limit the program cannot be fitted into.
    #[error("{0}")]
    Limit(String),
    /// naga rejected a generated shader: a bug of this generator.
    #[error("internal: kernel {kernel}'s shader is invalid: {message}\n{wgsl}")]
    Naga { kernel: usize, message: String, wgsl: String },
}

fn list(items: &[String]) -> String {
    items.join(", ")
}

/// What [`compile`] does with host kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostKernels {
    /// Refuse the program, naming them (a web page has no host interpreter).
    Refuse,
    /// Leave them out: the caller runs them between the shaders.
    CallerRuns,
}

/// Generates and validates a shader for every kernel of `program`.
pub fn compile(program: &Program, limits: &Limits, host_kernels: HostKernels) -> Result<WgslProgram, WgslError> {
    program.validate()?;
    let host: Vec<String> = program.host_kernels().map(|(k, h)| format!("k{k} {}", h.op.name())).collect();
    if !host.is_empty() && host_kernels == HostKernels::Refuse {
        return Err(WgslError::HostKernels(host));
    }
    let layout = layout(program, limits)?;
    let mut shaders = Vec::new();
    for (k, kernel) in program.kernels.iter().enumerate() {
        if kernel.is_host() {
            continue;
        }
        let Some(generated) = shader::generate(program, &layout, k, kernel, limits)? else { continue };
        let module = validate(&generated.source).map_err(|message| WgslError::Naga {
            kernel: k,
            message,
            wgsl: generated.source.clone(),
        })?;
        let bindings = layout.bindings(&generated.memories);
        if bindings.len() > limits.max_storage_buffers_per_shader_stage as usize {
            return Err(WgslError::Limit(format!(
                "kernel {k} reads {} storage bindings, the device allows {}",
                bindings.len(),
                limits.max_storage_buffers_per_shader_stage
            )));
        }
        shaders.push(Shader {
            kernel: k,
            source: generated.source,
            module,
            bindings,
            workgroups: generated.workgroups,
        });
    }
    Ok(WgslProgram { layout, shaders })
}

/// Parses WGSL with naga's front end and validates it.
pub fn validate(source: &str) -> Result<naga::Module, String> {
    let module = naga::front::wgsl::parse_str(source).map_err(|e| e.emit_to_string(source))?;
    naga::valid::Validator::new(naga::valid::ValidationFlags::all(), naga::valid::Capabilities::empty())
        .validate(&module)
        .map_err(|e| e.emit_to_string(source))?;
    Ok(module)
}

/// Every kernel's WGSL in program order, for people and snapshots (host
/// kernels, which the native runtime runs itself, as a comment line).
pub fn listing(program: &Program, limits: &Limits) -> Result<String, WgslError> {
    let compiled = compile(program, limits, HostKernels::CallerRuns)?;
    let mut out = String::new();
    for (n, chunk) in compiled.layout.constants.iter().enumerate() {
        out.push_str(&format!("// c{n}: {} bytes of constants\n", chunk.len()));
    }
    out.push_str(&format!("// arena: {} bytes\n", compiled.layout.arena_bytes));
    let mut shaders = compiled.shaders.iter().peekable();
    for (k, kernel) in program.kernels.iter().enumerate() {
        if let Kernel::Host(h) = kernel {
            out.push_str(&format!("\n// ---- kernel {k}: host {h} (no shader: the runtime runs it)\n"));
        }
        if let Some(s) = shaders.next_if(|s| s.kernel == k) {
            let [x, y, z] = s.workgroups;
            out.push_str(&format!("\n// ---- kernel {k}: {x}x{y}x{z} workgroups\n"));
            out.push_str(&s.source);
        }
    }
    Ok(out)
}

/// Scratch buffers keep their planned offsets; graph inputs and outputs
/// follow, 16-byte aligned; constants fill chunks in buffer order.
fn layout(program: &Program, limits: &Limits) -> Result<Layout, WgslError> {
    let align = |n: u64, to: u64| n.div_ceil(to) * to;
    // Shaders address a memory's bytes with i32.
    let max = limits.max_buffer_size.min((1 << 31) - 256);
    let alignment = u64::from(limits.min_storage_buffer_offset_alignment.max(4));
    let page_bytes = limits.max_storage_buffer_binding_size / alignment * alignment;
    if page_bytes == 0 {
        return Err(WgslError::Limit("the device's storage bindings are smaller than their offset alignment".into()));
    }
    let mut arena = align(program.arena_bytes as u64, 16);
    let mut constants: Vec<Vec<u8>> = Vec::new();
    let mut buffers = Vec::with_capacity(program.buffers.len());
    for (i, b) in program.buffers.iter().enumerate() {
        let bytes = b.byte_len() as u64;
        let placement = match &b.kind {
            BufferKind::Scratch { offset } => {
                if b.data_type.byte_size() >= 4 && offset % 4 != 0 {
                    return Err(WgslError::Limit(format!("b{i}: scratch offset {offset} is not word-aligned")));
                }
                Placement { memory: Memory::Arena, offset: *offset as u64 }
            }
            BufferKind::Input(_) | BufferKind::Output(_) => {
                let offset = arena;
                arena = align(arena + bytes.max(1), 16);
                Placement { memory: Memory::Arena, offset }
            }
            BufferKind::Constant(t) => {
                if bytes > max {
                    return Err(WgslError::Limit(format!(
                        "constant b{i} has {bytes} bytes, more than one buffer may hold ({max})"
                    )));
                }
                let fits = constants.last().is_some_and(|c| align(c.len() as u64, 16) + bytes <= max);
                if !fits {
                    constants.push(Vec::new());
                }
                let chunk = constants.last_mut().expect("pushed above");
                chunk.resize(align(chunk.len() as u64, 16) as usize, 0);
                let offset = chunk.len() as u64;
                chunk.extend_from_slice(t.bytes());
                Placement { memory: Memory::Constants(constants.len() - 1), offset }
            }
        };
        buffers.push(placement);
    }
    // Whole 16-byte quads: shaders may read a chunk as `array<vec4<u32>>`.
    for chunk in &mut constants {
        chunk.resize(align(chunk.len().max(16) as u64, 16) as usize, 0);
    }
    let arena_bytes = align(arena.max(4), 4);
    if arena_bytes > max {
        return Err(WgslError::Limit(format!(
            "the arena (scratch, inputs and outputs) needs {arena_bytes} bytes, more than one buffer may hold ({max})"
        )));
    }
    Ok(Layout { buffers, arena_bytes, constants, page_bytes })
}
