//! The native CPU executor: runs a lowered [`Program`] whose kernels were
//! JIT-compiled by `kiln_codegen::cpu`.
//!
//! Each execution binds the program's buffers to memory: graph inputs to the
//! caller's tensors (read only), constants to their (possibly
//! memory-mapped) bytes, outputs to fresh tensors, and scratch buffers to an
//! arena taken from a pool, so that concurrent executions never share
//! scratch memory and a warmed-up graph allocates only its outputs.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use kiln_codegen::cpu::{JitProgram, KernelFn, Target};
use kiln_ir::kernel::{BufferKind, Program};
use kiln_ir::{OperandDescriptor, Tensor};

use crate::pool::Pool;
use crate::RuntimeError;

/// A program and its machine code.
pub struct CpuExecutable {
    program: Program,
    jit: JitProgram,
    outputs: Vec<(String, OperandDescriptor)>,
    arenas: Mutex<Vec<Arena>>,
}

/// Scratch memory, 64-byte aligned.
struct Arena(Vec<Align64>);

#[derive(Clone, Copy)]
#[repr(align(64))]
struct Align64 {
    _bytes: [u8; 64],
}

impl Arena {
    fn new(bytes: usize) -> Self {
        Arena(vec![Align64 { _bytes: [0; 64] }; bytes.div_ceil(64)])
    }

    fn base(&mut self) -> *mut u8 {
        self.0.as_mut_ptr().cast()
    }
}

/// The buffer addresses of one execution.
struct Pointers(Vec<*mut u8>);

// SAFETY: the addresses are shared read-only between the threads of one
// execution; the kernels' tasks write disjoint parts of their outputs (each
// task owns a slice of the outermost parallel axis), and where a Map writes
// over its input (planned in place) a task reads only the elements it writes.
unsafe impl Sync for Pointers {}

/// Runs `kernels` in order, each split into one task per pool thread, with
/// a barrier between kernels.
///
/// With `times`, task 0 records each kernel's wall time (start to the
/// barrier after it: the time the slowest task took).
fn execute(kernels: &[KernelFn], pointers: &Pointers, pool: &Pool, times: Option<&Mutex<Vec<Duration>>>) {
    let tasks = pool.threads() as u64;
    pool.run(&|task, barrier| {
        for kernel in kernels {
            let start = Instant::now();
            // SAFETY: every pointer addresses a buffer at least as large as the
            // program declares (inputs were checked against the graph, outputs
            // and the arena were sized from it), and validated kernels only
            // touch memory inside their buffers; tasks write disjoint parts.
            unsafe { kernel(pointers.0.as_ptr(), task as u64, tasks) };
            if tasks > 1 {
                barrier.wait();
            }
            if let (0, Some(times)) = (task, times) {
                times.lock().unwrap_or_else(|p| p.into_inner()).push(start.elapsed());
            }
        }
    });
}

impl CpuExecutable {
    /// Generates code for `program` (already lowered and planned) for
    /// `target`. `outputs` are the graph's outputs in order.
    pub fn new(program: Program, target: &Target, outputs: Vec<(String, OperandDescriptor)>) -> Result<Self, RuntimeError> {
        let jit = kiln_codegen::cpu::compile(&program, target).map_err(|e| RuntimeError::Codegen(e.to_string()))?;
        Ok(CpuExecutable { program, jit, outputs, arenas: Mutex::new(Vec::new()) })
    }

    pub fn program(&self) -> &Program {
        &self.program
    }

    /// Runs the kernels on `feeds` (already checked against the graph),
    /// splitting each kernel's parallel loop across the pool's threads.
    pub fn run(&self, feeds: &[(&str, &Tensor)], pool: &Pool) -> Result<Vec<(String, Tensor)>, RuntimeError> {
        self.run_timed(feeds, pool, None)
    }

    /// Like [`CpuExecutable::run`], also returning each kernel's wall time.
    pub fn profile(&self, feeds: &[(&str, &Tensor)], pool: &Pool) -> Result<Vec<Duration>, RuntimeError> {
        let times = Mutex::new(Vec::with_capacity(self.program.kernels.len()));
        self.run_timed(feeds, pool, Some(&times))?;
        Ok(times.into_inner().unwrap_or_else(|p| p.into_inner()))
    }

    fn run_timed(
        &self,
        feeds: &[(&str, &Tensor)],
        pool: &Pool,
        times: Option<&Mutex<Vec<Duration>>>,
    ) -> Result<Vec<(String, Tensor)>, RuntimeError> {
        let mut outputs: Vec<Vec<u8>> = self.outputs.iter().map(|(_, d)| vec![0u8; d.byte_length()]).collect();
        let mut arena = self.arenas.lock().map_err(|_| RuntimeError::Poisoned)?.pop().unwrap_or_else(|| Arena::new(self.program.arena_bytes));
        let arena_base = arena.base();
        let mut pointers: Vec<*mut u8> = Vec::with_capacity(self.program.buffers.len());
        for buffer in &self.program.buffers {
            let p = match &buffer.kind {
                // Kernels never write inputs or constants (the kernel validator
                // rejects such programs), so handing out their addresses as
                // `*mut` is sound.
                BufferKind::Input(name) => {
                    let (_, t) = feeds.iter().find(|(n, _)| n == name).ok_or_else(|| RuntimeError::MissingBuffer(name.clone()))?;
                    t.bytes().as_ptr() as *mut u8
                }
                BufferKind::Constant(t) => t.bytes().as_ptr() as *mut u8,
                BufferKind::Output(name) => {
                    let i = self.outputs.iter().position(|(n, _)| n == name).ok_or_else(|| RuntimeError::MissingBuffer(name.clone()))?;
                    outputs[i].as_mut_ptr()
                }
                // SAFETY: planning keeps offset + size within arena_bytes.
                BufferKind::Scratch { offset } => unsafe { arena_base.add(*offset) },
            };
            pointers.push(p);
        }
        execute(self.jit.kernels(), &Pointers(pointers), pool, times);
        self.arenas.lock().map_err(|_| RuntimeError::Poisoned)?.push(arena);
        self.outputs
            .iter()
            .zip(outputs)
            .map(|((name, desc), bytes)| {
                let t = Tensor::from_bytes(desc.clone(), bytes).map_err(|e| RuntimeError::Codegen(e.to_string()))?;
                Ok((name.clone(), t))
            })
            .collect()
    }
}
