//! The harness the code generator's integration tests share: run a
//! program's kernels on byte buffers, and f32 <-> byte conversions.

#![allow(dead_code, reason = "each test file uses a different subset")]

use kiln_codegen::cpu::{compile, Target};
use kiln_ir::kernel::{BinaryFn, Expr, ExprNode, Program, UnaryFn, ValueId};

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

/// A copy of some bytes in fresh pages with an inaccessible page on each
/// side, placed to end exactly at the upper one (or, `at_start`, to begin
/// exactly after the lower one): generated code that reads or writes a
/// byte past either end of its buffer faults instead of passing unnoticed.
pub struct Guarded {
    map: *mut u8,
    map_len: usize,
    data: *mut u8,
    len: usize,
}

mod sys {
    use std::ffi::c_void;
    unsafe extern "C" {
        pub fn mmap(addr: *mut c_void, len: usize, prot: i32, flags: i32, fd: i32, offset: i64) -> *mut c_void;
        pub fn mprotect(addr: *mut c_void, len: usize, prot: i32) -> i32;
        pub fn munmap(addr: *mut c_void, len: usize) -> i32;
    }
    pub const PROT_NONE: i32 = 0;
    pub const PROT_READ_WRITE: i32 = 3;
    pub const MAP_PRIVATE_ANONYMOUS: i32 = 0x02 | 0x20;
    pub const PAGE: usize = 4096;
}

impl Guarded {
    pub fn new(bytes: &[u8], at_start: bool) -> Self {
        let pages = bytes.len().div_ceil(sys::PAGE).max(1);
        let map_len = (pages + 2) * sys::PAGE;
        // SAFETY: a fresh private anonymous mapping; the pages on each side
        // are then made inaccessible.
        unsafe {
            let map = sys::mmap(std::ptr::null_mut(), map_len, sys::PROT_READ_WRITE, sys::MAP_PRIVATE_ANONYMOUS, -1, 0);
            assert!(!map.is_null() && map as isize != -1, "mmap failed");
            let map = map.cast::<u8>();
            assert_eq!(sys::mprotect(map.cast(), sys::PAGE, sys::PROT_NONE), 0);
            assert_eq!(sys::mprotect(map.add(map_len - sys::PAGE).cast(), sys::PAGE, sys::PROT_NONE), 0);
            let data = if at_start { map.add(sys::PAGE) } else { map.add(map_len - sys::PAGE - bytes.len()) };
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), data, bytes.len());
            Guarded { map, map_len, data, len: bytes.len() }
        }
    }

    pub fn ptr(&self) -> *mut u8 {
        self.data
    }

    pub fn bytes(&self) -> Vec<u8> {
        // SAFETY: `len` bytes at `data` are inside the readable pages.
        unsafe { std::slice::from_raw_parts(self.data, self.len) }.to_vec()
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`.
        unsafe { sys::munmap(self.map.cast(), self.map_len) };
    }
}

/// The lowering's sigmoid of `x`: `t = exp(-|x|)`,
/// `select(x < 0, t, 1) / (1 + t)`.
pub fn sigmoid_nodes(e: &mut Expr, x: ValueId) -> ValueId {
    let one = e.push(ExprNode::Const(1.0));
    let a = e.push(ExprNode::Unary(UnaryFn::Abs, x));
    let na = e.push(ExprNode::Unary(UnaryFn::Neg, a));
    let t = e.push(ExprNode::Unary(UnaryFn::Exp, na));
    let d = e.push(ExprNode::Binary(BinaryFn::Add, one, t));
    let zero = e.push(ExprNode::Const(0.0));
    let neg = e.push(ExprNode::Binary(BinaryFn::Lesser, x, zero));
    let num = e.push(ExprNode::Select(neg, t, one));
    e.push(ExprNode::Binary(BinaryFn::Div, num, d))
}

/// `x * sigmoid(x)` as the fuse pass builds it from a Mul of a value and
/// its sigmoid (either order).
pub fn silu_nodes(e: &mut Expr, x: ValueId, sigmoid_first: bool) -> ValueId {
    let s = sigmoid_nodes(e, x);
    let (a, b) = if sigmoid_first { (s, x) } else { (x, s) };
    e.push(ExprNode::Binary(BinaryFn::Mul, a, b))
}
