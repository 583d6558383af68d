//! The harness the code generator's integration tests share: run a
//! program's kernels on byte buffers, and f32 <-> byte conversions.

#![allow(dead_code, reason = "each test file uses a different subset")]

use kiln_codegen::cpu::{compile, Target};
use kiln_ir::kernel::Program;

/// Compiles `program` for `target` and runs every kernel, each as `tasks`
/// tasks one after another, on `buffers` (one per program buffer, in order).
pub fn run(program: &Program, mut buffers: Vec<Vec<u8>>, target: &Target, tasks: u64) -> Vec<Vec<u8>> {
    let jit = compile(program, target).unwrap();
    let mut scratch = jit.task_scratch(tasks);
    let mut pointers: Vec<*mut u8> = buffers.iter_mut().map(|b| b.as_mut_ptr()).collect();
    pointers.push(scratch.base());
    for k in jit.kernels().iter().copied().flatten() {
        for task in 0..tasks {
            // SAFETY: every buffer is as large as the program declares it.
            unsafe { k(pointers.as_ptr(), task, tasks) };
        }
    }
    buffers
}

pub fn f32s(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub fn to_f32s(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()
}

/// Like [`run`], with the scratch buffers at their planned offsets in one
/// arena of `program.arena_bytes` (so buffers planned to share memory do),
/// and each kernel's tasks run one after another, last task first when
/// `reverse`. `buffers` has one entry per program buffer (scratch ones are
/// ignored and come back empty).
pub fn run_in_arena(program: &Program, mut buffers: Vec<Vec<u8>>, target: &Target, tasks: u64, reverse: bool) -> Vec<Vec<u8>> {
    use kiln_ir::kernel::BufferKind;
    let jit = compile(program, target).unwrap();
    let mut arena = vec![0u8; program.arena_bytes];
    let base = arena.as_mut_ptr();
    let mut scratch = jit.task_scratch(tasks);
    let mut pointers: Vec<*mut u8> = buffers
        .iter_mut()
        .zip(&program.buffers)
        .map(|(b, buffer)| match buffer.kind {
            BufferKind::Scratch { offset } => {
                assert!(offset + buffer.byte_len() <= program.arena_bytes);
                // SAFETY: inside the arena (checked above).
                unsafe { base.add(offset) }
            }
            _ => b.as_mut_ptr(),
        })
        .collect();
    pointers.push(scratch.base());
    for k in jit.kernels().iter().copied().flatten() {
        for t in 0..tasks {
            let task = if reverse { tasks - 1 - t } else { t };
            // SAFETY: every buffer is as large as the program declares it.
            unsafe { k(pointers.as_ptr(), task, tasks) };
        }
    }
    for (b, buffer) in buffers.iter_mut().zip(&program.buffers) {
        if matches!(buffer.kind, BufferKind::Scratch { .. }) {
            b.clear();
        }
    }
    buffers
}
