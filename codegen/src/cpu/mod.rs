//! Native code through Cranelift.
//!
//! One Cranelift module per program (in executable memory, [`compile`], or
//! an object file, [`object`]); one function per kernel with the
//! signature `extern "C" fn(buffers: *const *mut u8, task: u64, tasks: u64)`:
//! `buffers[i]` is the base address of buffer `i` of the [`Program`], and the
//! kernel does its share `task` of `tasks` equal parts of its outermost
//! parallel loop. The table has one more entry, `buffers[n]` for `n`
//! buffers: the base of the per-task scratch, 64-byte aligned, with
//! [`JitProgram::task_scratch_bytes`] bytes for each task (task `i`'s
//! region starts at `i` times that; GEMM packing buffers live there, so
//! generated code has no global or thread-local state). Host kernels ([`Kernel::Host`]) get no function: the
//! caller runs them itself, in program order between the generated ones
//! (the listings say so). The program is validated before any code is generated, so
//! every unguarded access is in bounds; guarded accesses branch around the
//! load.
//!
//! Gemm kernels whose operands are plain strided f32 matrices take the fast
//! path of [`gemm`]: Cranelift loops and packing around a micro-kernel
//! chosen by the target's features ([`microkernel`]: AVX-512 or AVX2 code
//! encoded with iced-x86 and placed in the module with
//! `define_function_bytes`, or a Cranelift F32X4 fallback). Constant
//! operands are packed at compile time into buffers the [`JitProgram`] owns,
//! reached through pointer data objects of the module (in an object file:
//! read-only data objects). Generated code calls out only to the C
//! library's `sin`, `cos` and `tan` (see `runtime_fns`).

mod bias_clamp;
pub(crate) mod emit;
pub mod gemm;
pub mod microkernel;
mod object;
mod overlap;
mod runtime_fns;
mod target;
mod zmm_epilogue;
mod zmm_math;

use cranelift_codegen::ir::{types, AbiParam, Signature};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_codegen::control::ControlPlane;
use cranelift_codegen::Context;
use cranelift_module::{default_libcall_names, FuncId, Linkage, Module, ModuleReloc};
use kiln_ir::kernel::{Kernel, KernelError, Program};

pub use object::{object, ObjectCode, ObjectSignature};
pub use target::{Arch, Features, Target};

/// A generated kernel: see the module documentation for the contract.
pub type KernelFn = unsafe extern "C" fn(buffers: *const *mut u8, task: u64, tasks: u64);

/// An error from generating code.
#[derive(Debug, thiserror::Error)]
pub enum CodegenError {
    #[error(transparent)]
    Invalid(#[from] KernelError),
    #[error("target: {0}")]
    Target(String),
    #[error("cranelift: {0}")]
    Cranelift(String),
}

fn cranelift<E: std::fmt::Display>(e: E) -> CodegenError {
    CodegenError::Cranelift(e.to_string())
}

/// A program compiled to machine code in this process.
pub struct JitProgram {
    /// Owns the executable memory the kernel pointers point into.
    _module: JITModule,
    /// Weights packed at compile time; the code holds their addresses.
    _packed: Vec<gemm::PackedData>,
    kernels: Vec<Option<KernelFn>>,
    task_scratch_bytes: usize,
}

// SAFETY: after `finalize_definitions` the module's memory is immutable
// executable code that is only ever called, never written; the kernels are
// plain functions of their arguments.
unsafe impl Send for JitProgram {}
unsafe impl Sync for JitProgram {}

impl JitProgram {
    /// The kernels in program order: one function per kernel, `None` for
    /// a host kernel, which the caller runs.
    pub fn kernels(&self) -> &[Option<KernelFn>] {
        &self.kernels
    }

    /// Bytes of scratch each task needs (a multiple of 64; see the module
    /// documentation for the buffer table entry that points to it).
    pub fn task_scratch_bytes(&self) -> usize {
        self.task_scratch_bytes
    }

    /// Per-task scratch for running the kernels as up to `tasks` tasks.
    pub fn task_scratch(&self, tasks: u64) -> TaskScratch {
        TaskScratch(vec![Line([0; 64]); (self.task_scratch_bytes / 64).max(1) * tasks.max(1) as usize])
    }
}

/// One cache line, the unit of [`TaskScratch`].
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([u8; 64]);

/// 64-byte aligned per-task scratch memory: pass [`TaskScratch::base`] as
/// the buffer table's last entry.
pub struct TaskScratch(Vec<Line>);

impl TaskScratch {
    pub fn base(&mut self) -> *mut u8 {
        self.0.as_mut_ptr().cast()
    }
}

/// The per-task scratch `program`'s kernels need on `target`, in bytes (a
/// multiple of 64): the largest GEMM packing space.
fn task_scratch_bytes(plans: &[Option<gemm::Plan>]) -> usize {
    plans.iter().flatten().map(gemm::Plan::scratch_bytes).max().unwrap_or(0)
}

fn kernel_signature(module: &impl Module) -> Signature {
    let mut sig = module.make_signature();
    let ptr = module.target_config().pointer_type();
    sig.params.push(AbiParam::new(ptr));
    sig.params.push(AbiParam::new(types::I64));
    sig.params.push(AbiParam::new(types::I64));
    sig
}

/// A text listing of generated code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listing {
    /// Cranelift IR as built, before optimisation.
    Clif,
    /// Machine code, as Cranelift's disassembly of its own output.
    Asm,
}

/// The functions [`define_kernels`] generated.
struct Defined {
    /// One per kernel, `None` for host kernels (which get no function).
    ids: Vec<Option<FuncId>>,
    /// See [`JitProgram::task_scratch_bytes`].
    task_scratch_bytes: usize,
}

/// Generates every kernel's function into `module`, packing constant GEMM
/// operands as `pack` says. With `listing`, appends each function's
/// listing to the string.
fn define_kernels<M: Module>(
    module: &mut M,
    program: &Program,
    target: &Target,
    mut listing: Option<(Listing, &mut String)>,
    mut pack: gemm::PackInto,
) -> Result<Defined, CodegenError> {
    program.validate()?;
    let helpers = runtime_fns::declare(module)?;
    let spec = microkernel::Spec::for_features(target.features);
    let plans: Vec<_> = program.kernels.iter().map(|kernel| gemm::plan(program, kernel, spec)).collect();
    let task_scratch_bytes = task_scratch_bytes(&plans);
    let mut micro = Vec::new();
    let mut ctx = module.make_context();
    let mut fb_ctx = FunctionBuilderContext::new();
    let mut ids = Vec::with_capacity(program.kernels.len());
    // Without a listing, functions are built here and compiled afterwards,
    // in parallel (`define_in_parallel`).
    let mut pending = Vec::new();
    for (k, kernel) in program.kernels.iter().enumerate() {
        if let Kernel::Host(h) = kernel {
            if let Some((_, out)) = &mut listing {
                out.push_str(&format!(
                    "; kernel {k}: host {h}\n; runs on the host (the reference interpreter): no generated code\n\n"
                ));
            }
            ids.push(None);
            continue;
        }
        let sig = kernel_signature(module);
        let id = module
            .declare_function(&format!("k{k}_{}", kernel.kind()), Linkage::Local, &sig)
            .map_err(cranelift)?;
        ctx.func.signature = sig;
        let frontend_config = module.target_config();
        let plan = &plans[k];
        let declared = match plan {
            Some(p) => Some(gemm::declare(module, program, k, p, &mut micro, &mut pack)?),
            None => None,
        };
        if let (Some((Listing::Asm, out)), Some((_, code))) = (&mut listing, declared.as_ref().and_then(|d| d.epilogue.as_ref())) {
            out.push_str(&format!("; epilogue k{k}_avx512_epilogue\n{}\n", microkernel::disassemble(code)));
        }
        // A window sum's micro-kernels are generated for that kernel.
        let window = emit::window::plan(program, kernel, target.features);
        let mut window_ids = Vec::new();
        if let Some(w) = &window {
            for (channels, rows) in w.variants() {
                let name = w.name(k, channels, rows);
                let id = module.declare_function(&name, Linkage::Local, &microkernel::signature(module, 5)).map_err(cranelift)?;
                let code = emit::window::avx512(w, channels, rows).map_err(cranelift)?;
                module.define_function_bytes(id, 64, &code, &[]).map_err(cranelift)?;
                if let Some((Listing::Asm, out)) = &mut listing {
                    out.push_str(&format!("; micro-kernel {name}\n{}\n", microkernel::disassemble(&code)));
                }
                window_ids.push(id);
            }
        }
        {
            let mut fb = FunctionBuilder::new(&mut ctx.func, &mut fb_ctx);
            let helper_refs = helpers.import(module, fb.func);
            let refs = declared.as_ref().map(|d| d.import(module, fb.func));
            let fast = plan.as_ref().zip(refs.as_ref());
            let window_refs: Vec<_> = window_ids.iter().map(|&id| module.declare_func_in_func(id, fb.func)).collect();
            let window = window.as_ref().map(|w| (w, window_refs.as_slice()));
            emit::kernel(&mut fb, program, kernel, &helper_refs, task_scratch_bytes, fast, window);
            fb.finalize(frontend_config);
        }
        if listing.is_none() {
            pending.push((id, std::mem::replace(&mut ctx, module.make_context())));
            ids.push(Some(id));
            continue;
        }
        if let Some((Listing::Clif, out)) = &mut listing {
            out.push_str(&format!("; kernel {k}: {}\n{}\n", kernel.kind(), ctx.func.display()));
        }
        ctx.set_disasm(matches!(listing, Some((Listing::Asm, _))));
        module.define_function(id, &mut ctx).map_err(cranelift)?;
        if let Some((Listing::Asm, out)) = &mut listing {
            let asm = ctx.compiled_code().and_then(|c| c.vcode.as_deref()).unwrap_or("");
            out.push_str(&format!("; kernel {k}: {}\n{asm}\n", kernel.kind()));
        }
        module.clear_context(&mut ctx);
        ids.push(Some(id));
    }
    define_in_parallel(module, pending)?;
    if let Some((Listing::Asm, out)) = &mut listing {
        for (spec, _) in &micro {
            if let Some(asm) = microkernel::disassembly(*spec)? {
                out.push_str(&format!("; micro-kernel {}\n{asm}\n", spec.name()));
            }
        }
    }
    Ok(Defined { ids, task_scratch_bytes })
}

/// Compiles the built functions `pending` on up to as many threads as the
/// machine has cores (Cranelift compiles each function on its own), then
/// defines them in `module` in order, so the module is the same as with
/// `define_function` one by one.
fn define_in_parallel<M: Module>(module: &mut M, mut pending: Vec<(FuncId, Context)>) -> Result<(), CodegenError> {
    struct Compiled {
        index: usize,
        align: u64,
        code: Vec<u8>,
        relocs: Vec<ModuleReloc>,
    }
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, pending.len().max(1));
    let isa = module.isa();
    let compile = |index: usize, id: FuncId, ctx: &mut Context| -> Result<Compiled, CodegenError> {
        ctx.compile(isa, &mut ControlPlane::default()).map_err(|e| cranelift(format!("{:?}", e.inner)))?;
        let compiled = ctx.compiled_code().ok_or_else(|| cranelift("no compiled code"))?;
        let align = (compiled.buffer.alignment as u64)
            .max(isa.function_alignment().minimum as u64)
            .max(isa.symbol_alignment());
        let code = compiled.code_buffer().to_vec();
        let relocs = compiled.buffer.relocs().iter().map(|r| ModuleReloc::from_mach_reloc(r, &ctx.func, id)).collect();
        Ok(Compiled { index, align, code, relocs })
    };
    // Function `i` goes to thread `i % threads`.
    let mut buckets: Vec<Vec<(usize, &mut (FuncId, Context))>> = (0..threads).map(|_| Vec::new()).collect();
    for (i, item) in pending.iter_mut().enumerate() {
        buckets[i % threads].push((i, item));
    }
    let mut results: Vec<Compiled> = std::thread::scope(|scope| {
        let handles: Vec<_> = buckets
            .into_iter()
            .map(|bucket| {
                scope.spawn(move || {
                    bucket.into_iter().map(|(i, (id, ctx))| compile(i, *id, ctx)).collect::<Result<Vec<_>, _>>()
                })
            })
            .collect();
        let mut all = Vec::new();
        for h in handles {
            all.extend(h.join().map_err(|_| CodegenError::Cranelift("a compiler thread panicked".into()))??);
        }
        Ok::<_, CodegenError>(all)
    })?;
    results.sort_by_key(|c| c.index);
    for c in results {
        let id = pending[c.index].0;
        module.define_function_bytes(id, c.align, &c.code, &c.relocs).map_err(cranelift)?;
    }
    Ok(())
}

/// Compiles `program` for the host into executable memory.
pub fn compile(program: &Program, target: &Target) -> Result<JitProgram, CodegenError> {
    if !target.is_host_compatible() {
        return Err(CodegenError::Target(format!("{target} cannot run on this machine")));
    }
    let isa = target.isa()?;
    let mut builder = JITBuilder::with_isa(isa, default_libcall_names());
    runtime_fns::register(&mut builder);
    let mut module = JITModule::new(builder);
    let mut packed = Vec::new();
    let defined = define_kernels(&mut module, program, target, None, gemm::PackInto::Memory(&mut packed))?;
    module.finalize_definitions().map_err(cranelift)?;
    let kernels = defined
        .ids
        .into_iter()
        .map(|id| {
            id.map(|id| {
                let ptr = module.get_finalized_function(id);
                // SAFETY: the function was defined with `kernel_signature`, the
                // C ABI of `KernelFn`.
                unsafe { std::mem::transmute::<*const u8, KernelFn>(ptr) }
            })
        })
        .collect();
    Ok(JitProgram { _module: module, _packed: packed, kernels, task_scratch_bytes: defined.task_scratch_bytes })
}

/// A listing of every kernel for `kiln emit --stage clif|asm`, for any
/// target (nothing is executed). Deterministic for a given program and target.
pub fn listing(program: &Program, target: &Target, which: Listing) -> Result<String, CodegenError> {
    let isa = target.isa()?;
    let mut module = JITModule::new(JITBuilder::with_isa(isa, default_libcall_names()));
    let mut out = String::new();
    define_kernels(&mut module, program, target, Some((which, &mut out)), gemm::PackInto::Nowhere)?;
    Ok(out)
}
