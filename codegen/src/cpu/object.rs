//! Object files: a program's kernels, its constants and packed weights
//! (read-only data) and two exported entry points, through cranelift-object.
//!
//! ```c
//! int NAME_run(const void *const *inputs, void *const *outputs, void *scratch);
//! int NAME_run_parallel(const void *const *inputs, void *const *outputs, void *scratch,
//!                       uint64_t tasks, kiln_parallel_for parallel_for, void *ctx);
//! ```
//! `inputs` and `outputs` hold one pointer per graph input and output, in
//! the order of [`ObjectSignature`]. `scratch` is 64-byte aligned memory of
//! [`ObjectCode::scratch_bytes`] for the number of tasks, laid out as
//!
//! ```text
//! [0, table)                  the buffer table: one address per buffer, then the per-task scratch base
//! [table, table + arena)      the planned scratch buffers (Program::arena_bytes)
//! [table + arena, ...)        tasks x task_scratch_bytes, one region per task
//! ```
//! so a call touches no memory but its arguments, its stack and the
//! object's read-only data: two threads may run the same model at once
//! with two scratch buffers. `NAME_run` runs every kernel as one task;
//! `NAME_run_parallel` calls `parallel_for(ctx, kernel, table, tasks)` once
//! per kernel, in order, and the host runs `kernel(table, i, tasks)` for
//! every `i < tasks` (on any threads, in any order) before returning.
//! Results: 0, or [`ERROR_NULL`] (a null array, tensor pointer or
//! callback; an empty array may be null),
//! [`ERROR_ALIGNMENT`] (`scratch` not 64-byte aligned), [`ERROR_TASKS`]
//! (`tasks` is 0).

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{types, AbiParam, Block, InstBuilder, MachMemFlags, Value};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_module::{default_libcall_names, DataDescription, DataId, FuncId, Linkage, Module};
use cranelift_object::{ObjectBuilder, ObjectModule};
use kiln_ir::kernel::{BufferKind, Program};

use super::{cranelift, define_kernels, gemm, microkernel, CodegenError, Target};

/// A null `inputs`, `outputs`, `scratch`, tensor pointer or `parallel_for`.
pub const ERROR_NULL: i32 = 1;
/// `scratch` is not 64-byte aligned.
pub const ERROR_ALIGNMENT: i32 = 2;
/// `tasks` is 0.
pub const ERROR_TASKS: i32 = 3;

/// The entry points' names and argument order.
#[derive(Clone, Debug)]
pub struct ObjectSignature {
    /// The prefix of the exported symbols (`NAME_run`, `NAME_run_parallel`):
    /// a C identifier.
    pub name: String,
    /// The graph's inputs, in the order of the `inputs` array.
    pub inputs: Vec<String>,
    /// The graph's outputs, in the order of the `outputs` array.
    pub outputs: Vec<String>,
}

/// A compiled object file and the scratch layout its entry points expect.
pub struct ObjectCode {
    /// The ELF relocatable object.
    pub bytes: Vec<u8>,
    /// Bytes of the buffer table at the start of scratch (a multiple of 64).
    pub table_bytes: usize,
    /// Bytes of the planned scratch buffers after it (a multiple of 64).
    pub arena_bytes: usize,
    /// Bytes of scratch per task after those (a multiple of 64).
    pub task_scratch_bytes: usize,
}

impl ObjectCode {
    /// The scratch an entry point needs to run the kernels as `tasks` tasks.
    pub fn scratch_bytes(&self, tasks: usize) -> usize {
        self.table_bytes + self.arena_bytes + tasks * self.task_scratch_bytes
    }
}

fn round64(x: usize) -> usize {
    x.div_ceil(64) * 64
}

/// Compiles `program` for `target` into an object file exporting the entry
/// points of the module documentation. Host kernels have no code to put in
/// an object file: a program with any is refused, all of them listed.
pub fn object(program: &Program, target: &Target, signature: &ObjectSignature) -> Result<ObjectCode, CodegenError> {
    program.validate()?;
    let host: Vec<String> = program.host_kernels().map(|(k, h)| format!("kernel {k}: {h}")).collect();
    if !host.is_empty() {
        return Err(CodegenError::Target(format!(
            "{} kernel(s) run on the host (the reference interpreter) and have no code for an object file:\n  {}",
            host.len(),
            host.join("\n  ")
        )));
    }
    let valid_identifier = |s: &str| {
        s.chars().next().is_some_and(|c| c.is_ascii_alphabetic()) && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    if !valid_identifier(&signature.name) {
        return Err(CodegenError::Target(format!(
            "artifact name `{}` is not a C identifier kiln accepts (ASCII letters, digits and _, starting with a letter)",
            signature.name
        )));
    }
    let isa = target.isa_with(true)?;
    let builder = ObjectBuilder::new(isa, signature.name.as_bytes(), default_libcall_names()).map_err(cranelift)?;
    let mut module = ObjectModule::new(builder);
    let defined = define_kernels(&mut module, program, target, None, gemm::PackInto::Module)?;
    let constants = define_constants(&mut module, program, target, &signature.name)?;
    let layout = ObjectCode {
        bytes: Vec::new(),
        table_bytes: round64((program.buffers.len() + 1) * 8),
        arena_bytes: round64(program.arena_bytes),
        task_scratch_bytes: defined.task_scratch_bytes,
    };
    let kernels: Vec<FuncId> = defined.ids.into_iter().flatten().collect();
    let entry = Entry { program, signature, constants: &constants, kernels: &kernels, layout: &layout };
    entry.define(&mut module, false)?;
    entry.define(&mut module, true)?;
    let bytes = module.finish().emit().map_err(cranelift)?;
    Ok(ObjectCode { bytes, ..layout })
}

/// Defines each constant buffer some kernel reads in place as a 64-byte
/// aligned read-only data object. A constant only read as a GEMM operand
/// that is packed at compile time is left out (the packed copy is in the
/// object): its table entry is null.
fn define_constants(
    module: &mut ObjectModule,
    program: &Program,
    target: &Target,
    name: &str,
) -> Result<Vec<Option<DataId>>, CodegenError> {
    let mut reads = vec![0usize; program.buffers.len()];
    let spec = microkernel::Spec::for_features(target.features);
    for kernel in &program.kernels {
        for id in kernel.reads_writes().0 {
            reads[id.0 as usize] += 1;
        }
        if let Some(plan) = gemm::plan(program, kernel, spec) {
            for packed in plan.packed_a.iter().chain(&plan.packed_b) {
                reads[packed.source().0 as usize] -= 1;
            }
        }
    }
    program
        .buffers
        .iter()
        .enumerate()
        .map(|(i, buffer)| match &buffer.kind {
            BufferKind::Constant(t) if reads[i] > 0 => {
                let id = module
                    .declare_data(&format!("{name}_constant_{i}"), Linkage::Local, false, false)
                    .map_err(cranelift)?;
                let mut desc = DataDescription::new();
                desc.define(t.bytes().to_vec().into_boxed_slice());
                desc.set_align(64);
                module.define_data(id, &desc).map_err(cranelift)?;
                Ok(Some(id))
            }
            _ => Ok(None),
        })
        .collect()
}

/// What an entry point is generated from.
struct Entry<'a> {
    program: &'a Program,
    signature: &'a ObjectSignature,
    constants: &'a [Option<DataId>],
    kernels: &'a [FuncId],
    layout: &'a ObjectCode,
}

impl Entry<'_> {
    /// Defines `NAME_run` or, with `parallel`, `NAME_run_parallel`.
    fn define(&self, module: &mut ObjectModule, parallel: bool) -> Result<(), CodegenError> {
        let ptr = module.target_config().pointer_type();
        let mut sig = module.make_signature();
        sig.params.extend([AbiParam::new(ptr); 3]);
        if parallel {
            sig.params.extend([AbiParam::new(types::I64), AbiParam::new(ptr), AbiParam::new(ptr)]);
        }
        sig.returns.push(AbiParam::new(types::I32));
        let suffix = if parallel { "run_parallel" } else { "run" };
        let id = module
            .declare_function(&format!("{}_{suffix}", self.signature.name), Linkage::Export, &sig)
            .map_err(cranelift)?;
        let mut ctx = module.make_context();
        ctx.func.signature = sig;
        let mut fb_ctx = FunctionBuilderContext::new();
        {
            let mut fb = FunctionBuilder::new(&mut ctx.func, &mut fb_ctx);
            self.body(module, &mut fb, parallel);
            fb.seal_all_blocks();
            fb.finalize(module.target_config());
        }
        module.define_function(id, &mut ctx).map_err(|e| cranelift(format!("{e:?}")))
    }

    fn body(&self, module: &mut ObjectModule, fb: &mut FunctionBuilder, parallel: bool) {
        let flags = MachMemFlags::trusted();
        let entry = fb.create_block();
        fb.append_block_params_for_function_params(entry);
        fb.switch_to_block(entry);
        let params = fb.block_params(entry).to_vec();
        let (inputs, outputs, scratch) = (params[0], params[1], params[2]);
        // One block per error code, each returning it (filled at the end,
        // so that the entry block stays first in the layout).
        let errors = [ERROR_NULL, ERROR_ALIGNMENT, ERROR_TASKS].map(|code| (code, fb.create_block()));
        let [(_, null), (_, misaligned), (_, no_tasks)] = errors;
        // `if v == 0 goto to`, then carry on in a new block.
        let check = |fb: &mut FunctionBuilder, condition: Value, to: Block| {
            let next = fb.create_block();
            fb.ins().brif(condition, to, &[], next, &[]);
            fb.switch_to_block(next);
        };
        // The arrays (an empty one may be null) and scratch.
        let arrays = [(inputs, self.signature.inputs.len()), (outputs, self.signature.outputs.len()), (scratch, 1)];
        for (p, _) in arrays.into_iter().filter(|&(_, len)| len > 0) {
            let is_null = fb.ins().icmp_imm_u(IntCC::Equal, p, 0);
            check(fb, is_null, null);
        }
        let low = fb.ins().band_imm_u(scratch, 63);
        check(fb, low, misaligned);
        if parallel {
            let (tasks, callback) = (params[3], params[4]);
            let zero = fb.ins().icmp_imm_u(IntCC::Equal, tasks, 0);
            check(fb, zero, no_tasks);
            let is_null = fb.ins().icmp_imm_u(IntCC::Equal, callback, 0);
            check(fb, is_null, null);
        }
        // The buffer table at the start of scratch.
        let table = scratch;
        let arena = fb.ins().iadd_imm_s(scratch, self.layout.table_bytes as i64);
        let index = |names: &[String], name: &str| names.iter().position(|n| n == name);
        for (i, buffer) in self.program.buffers.iter().enumerate() {
            let address = match &buffer.kind {
                BufferKind::Input(name) | BufferKind::Output(name) => {
                    let (array, names) = match buffer.kind {
                        BufferKind::Input(_) => (inputs, &self.signature.inputs),
                        _ => (outputs, &self.signature.outputs),
                    };
                    // The signature is built from the same graph as the
                    // program; a name it lacks is an internal error caught
                    // by the tests (the entry point then reports null).
                    match index(names, name) {
                        Some(j) => {
                            let p = fb.ins().load(types::I64, flags, array, (j * 8) as i32);
                            let is_null = fb.ins().icmp_imm_u(IntCC::Equal, p, 0);
                            check(fb, is_null, null);
                            p
                        }
                        None => {
                            fb.ins().jump(null, &[]);
                            let dead = fb.create_block();
                            fb.switch_to_block(dead);
                            fb.ins().iconst(types::I64, 0)
                        }
                    }
                }
                BufferKind::Constant(_) => match self.constants[i] {
                    Some(data) => {
                        let gv = module.declare_data_in_func(data, fb.func);
                        fb.ins().symbol_value(types::I64, gv)
                    }
                    None => fb.ins().iconst(types::I64, 0),
                },
                BufferKind::Scratch { offset } => fb.ins().iadd_imm_s(arena, *offset as i64),
            };
            fb.ins().store(flags, address, table, (i * 8) as i32);
        }
        let task_base = fb.ins().iadd_imm_s(arena, self.layout.arena_bytes as i64);
        fb.ins().store(flags, task_base, table, (self.program.buffers.len() * 8) as i32);
        if parallel {
            let (tasks, callback, ctx) = (params[3], params[4], params[5]);
            let ptr = module.target_config().pointer_type();
            let mut sig = module.make_signature();
            sig.params.extend([AbiParam::new(ptr), AbiParam::new(ptr), AbiParam::new(ptr), AbiParam::new(types::I64)]);
            let sig = fb.import_signature(sig);
            for &k in self.kernels {
                let f = module.declare_func_in_func(k, fb.func);
                let address = fb.ins().func_addr(ptr, f);
                fb.ins().call_indirect(sig, callback, &[ctx, address, table, tasks]);
            }
        } else {
            let (zero, one) = (fb.ins().iconst(types::I64, 0), fb.ins().iconst(types::I64, 1));
            for &k in self.kernels {
                let f = module.declare_func_in_func(k, fb.func);
                fb.ins().call(f, &[table, zero, one]);
            }
        }
        let ok = fb.ins().iconst(types::I32, 0);
        fb.ins().return_(&[ok]);
        for (code, block) in errors {
            fb.switch_to_block(block);
            fb.set_cold_block(block);
            let v = fb.ins().iconst(types::I32, code as i64);
            fb.ins().return_(&[v]);
        }
    }
}
