//! The native CPU executor: runs a lowered [`Program`] whose kernels were
//! JIT-compiled by `kiln_codegen::cpu`.
//!
//! Each execution binds the program's buffers to memory: graph inputs to the
//! caller's tensors (read only), constants to their (possibly
//! memory-mapped) bytes, outputs to fresh tensors, and scratch buffers to an
//! arena taken from a pool, so that concurrent executions never share
//! scratch memory and a warmed-up graph allocates only its outputs.
//!
//! Host kernels ([`Kernel::Host`], which have no machine code) run on the
//! calling thread between the generated kernels, in program order: the
//! generated kernels before one run to completion on the pool, then the
//! host kernel copies its input buffers into tensors, runs the operator
//! with the reference interpreter's semantics and copies the results into
//! its output buffers (which allocates, unlike the generated kernels), then
//! the next generated kernels start.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use kiln_codegen::cpu::{JitProgram, KernelFn, Target};
use kiln_ir::kernel::{BufferKind, HostKernel, Kernel, KernelError, Program};
use kiln_ir::{OperandDescriptor, Tensor};

use crate::pool::Pool;
use crate::RuntimeError;

/// A program and its machine code.
pub struct CpuExecutable {
    program: Program,
    /// Owns the machine code `steps` points into.
    jit: JitProgram,
    /// The kernels in program order, as runs of generated kernels between
    /// host kernels.
    steps: Vec<Step>,
    outputs: Vec<(String, OperandDescriptor)>,
    arenas: Mutex<Vec<Arena>>,
}

/// A part of an execution.
enum Step {
    /// Consecutive generated kernels, run on the pool.
    Generated(Vec<KernelFn>),
    /// The host kernel at this index of the program, run on the calling thread.
    Host(usize),
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

    fn bytes(&self) -> usize {
        self.0.len() * 64
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

/// Copies a host kernel's results into its output buffers (`buffer` gives
/// a buffer's address and byte length).
fn write_results(
    h: &HostKernel,
    results: &[Tensor],
    buffer: &dyn Fn(kiln_ir::kernel::BufferId) -> (*mut u8, usize),
) -> Result<(), String> {
    if results.len() != h.outputs.len() {
        return Err(format!("{} results for {} outputs", results.len(), h.outputs.len()));
    }
    for (o, t) in h.outputs.iter().zip(results) {
        let (p, len) = buffer(o.buffer);
        if t.bytes().len() != len {
            return Err(format!("a result of {} bytes for {}, which holds {len}", t.bytes().len(), o.buffer));
        }
        // SAFETY: `p` addresses the output buffer's `len` bytes, which the
        // validator proved are writable scratch or output memory that no
        // input of this kernel shares, and nothing else runs meanwhile.
        unsafe { std::ptr::copy_nonoverlapping(t.bytes().as_ptr(), p, len) };
    }
    Ok(())
}

/// Runs `kernels` in order, each split into one task per pool thread, with
/// a barrier between kernels. A panicking task is an error of the run
/// ([`RuntimeError::Panicked`]); the pool stays usable.
///
/// With `times`, task 0 records each kernel's wall time (start to the
/// barrier after it: the time the slowest task took).
fn execute(
    kernels: &[KernelFn],
    pointers: &Pointers,
    pool: &Pool,
    times: Option<&Mutex<Vec<Duration>>>,
) -> Result<(), RuntimeError> {
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
    })
    .map_err(RuntimeError::Panicked)
}

impl CpuExecutable {
    /// Runs host kernel `k` on the calling thread, while no generated
    /// kernel runs: its inputs copied out of their buffers, its results
    /// copied into theirs.
    fn run_host(&self, k: usize, pointers: &Pointers) -> Result<(), RuntimeError> {
        let Some(Kernel::Host(h)) = self.program.kernels.get(k) else {
            return Err(RuntimeError::Codegen(format!("kernel {k} has no machine code and is not a host kernel")));
        };
        let fail = |message: String| RuntimeError::Kernel(KernelError { kernel: k, kind: "host", message });
        let bytes_of = |id: kiln_ir::kernel::BufferId| -> (*mut u8, usize) {
            (pointers.0[id.0 as usize], self.program.buffer(id).byte_len())
        };
        let inputs = h
            .inputs
            .iter()
            .map(|i| {
                let (p, len) = bytes_of(i.buffer);
                // SAFETY: the pointer addresses the buffer's `len` bytes (see
                // `execute`), and no kernel writes memory while this one runs.
                let bytes = unsafe { std::slice::from_raw_parts(p as *const u8, len) }.to_vec();
                Tensor::from_bytes(i.desc.clone(), bytes).map_err(|e| fail(e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let results = h.run(&inputs).map_err(fail)?;
        write_results(h, &results, &bytes_of).map_err(fail)
    }

    /// Generates code for `program` (already lowered and planned) for
    /// `target`. `outputs` are the graph's outputs in order.
    pub fn new(program: Program, target: &Target, outputs: Vec<(String, OperandDescriptor)>) -> Result<Self, RuntimeError> {
        let jit = kiln_codegen::cpu::compile(&program, target).map_err(|e| RuntimeError::Codegen(e.to_string()))?;
        let mut steps = Vec::new();
        for (k, f) in jit.kernels().iter().enumerate() {
            match (f, steps.last_mut()) {
                (Some(f), Some(Step::Generated(run))) => run.push(*f),
                (Some(f), _) => steps.push(Step::Generated(vec![*f])),
                (None, _) => steps.push(Step::Host(k)),
            }
        }
        Ok(CpuExecutable { program, jit, steps, outputs, arenas: Mutex::new(Vec::new()) })
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
        // The arena holds the planned scratch buffers, then one region of
        // per-task scratch for each pool thread.
        let planned = self.program.arena_bytes.div_ceil(64) * 64;
        let bytes = planned + pool.threads() * self.jit.task_scratch_bytes();
        let mut arena = match self.arenas.lock().map_err(|_| RuntimeError::Poisoned)?.pop() {
            Some(a) if a.bytes() >= bytes => a,
            _ => Arena::new(bytes),
        };
        let arena_base = arena.base();
        let mut pointers: Vec<*mut u8> = Vec::with_capacity(self.program.buffers.len() + 1);
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
        // SAFETY: `planned` <= the arena's size (computed above).
        pointers.push(unsafe { arena_base.add(planned) });
        let pointers = Pointers(pointers);
        let mut result = Ok(());
        for step in &self.steps {
            match step {
                Step::Generated(kernels) => {
                    result = execute(kernels, &pointers, pool, times);
                    if result.is_err() {
                        break;
                    }
                }
                Step::Host(k) => {
                    let start = Instant::now();
                    result = self.run_host(*k, &pointers);
                    if result.is_err() {
                        break;
                    }
                    if let Some(times) = times {
                        times.lock().unwrap_or_else(|p| p.into_inner()).push(start.elapsed());
                    }
                }
            }
        }
        self.arenas.lock().map_err(|_| RuntimeError::Poisoned)?.push(arena);
        result?;
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
