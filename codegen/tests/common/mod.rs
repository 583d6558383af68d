//! The harness the code generator's integration tests share: run a
//! program's kernels on byte buffers, and f32 <-> byte conversions.

#![allow(dead_code, reason = "each test file uses a different subset")]

use kiln_codegen::cpu::{compile, Target};
use kiln_ir::kernel::Program;

/// Compiles `program` for `target` and runs every kernel, each as `tasks`
/// tasks one after another, on `buffers` (one per program buffer, in order).
pub fn run(program: &Program, mut buffers: Vec<Vec<u8>>, target: &Target, tasks: u64) -> Vec<Vec<u8>> {
    let jit = compile(program, target).unwrap();
    let pointers: Vec<*mut u8> = buffers.iter_mut().map(|b| b.as_mut_ptr()).collect();
    for k in jit.kernels() {
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
