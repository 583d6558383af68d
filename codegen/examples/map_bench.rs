//! Throughput of generated elementwise and reduction code on one core:
//! a 1M-element f32 map `x * sigmoid(x)` (sigmoid composed as the
//! lowering does, through exp(-|x|)),
//! a relu, a reduce-sum of the same tensor (over rows of 1024, over
//! columns of 1024, and everything at once) and a copy. Each runs through the 4-lane loops and, for
//! comparison, through the scalar loops (an always-passing guard on the
//! input keeps a kernel scalar).
//!
//! `cargo run --release -p kiln-codegen --example map_bench [-- target]`

use std::time::Instant;

use kiln_codegen::cpu::{compile, Target};
use kiln_ir::kernel::*;
use kiln_ir::DataType;

const N: usize = 1 << 20;

fn program(scalar: bool, kind: &str) -> Program {
    let mut p = Program::default();
    let x = p.add_buffer(BufferKind::Input("x".into()), DataType::Float32, N);
    let out_len = match kind {
        "rows" | "cols" => N / 1024,
        "all" => 1,
        _ => N,
    };
    let o = p.add_buffer(BufferKind::Output("y".into()), DataType::Float32, out_len);
    let mut input = Access::identity(x, &[N]);
    if kind == "rows" {
        input = Access::identity(x, &[N / 1024, 1024]);
    }
    if kind == "cols" {
        // Domain [column, row]: a sum over the outer axis of [1024, 1024].
        input = Access { buffer: x, shape: vec![1024, N / 1024], base: vec![0, 0], coef: vec![vec![0, 1], vec![1, 0]], guard: None };
    }
    if scalar {
        input.guard = Some(0.0);
    }
    let kernel = match kind {
        "silu" => {
            // sigmoid as the lowering writes it: t = exp(-|x|),
            // (x < 0 ? t : 1) / (1 + t).
            let mut e = Expr::default();
            let v = e.push(ExprNode::Load(0));
            let one = e.push(ExprNode::Const(1.0));
            let a = e.push(ExprNode::Unary(UnaryFn::Abs, v));
            let na = e.push(ExprNode::Unary(UnaryFn::Neg, a));
            let t = e.push(ExprNode::Unary(UnaryFn::Exp, na));
            let d = e.push(ExprNode::Binary(BinaryFn::Add, one, t));
            let zero = e.push(ExprNode::Const(0.0));
            let neg = e.push(ExprNode::Binary(BinaryFn::Lesser, v, zero));
            let num = e.push(ExprNode::Select(neg, t, one));
            let s = e.push(ExprNode::Binary(BinaryFn::Div, num, d));
            e.push(ExprNode::Binary(BinaryFn::Mul, v, s));
            Kernel::Map { domain: vec![N], inputs: vec![input], expr: e, out: Access::identity(o, &[N]) }
        }
        "relu" => {
            // relu as the lowering writes it: x < 0 ? 0 : x.
            let mut e = Expr::default();
            let v = e.push(ExprNode::Load(0));
            let z = e.push(ExprNode::Const(0.0));
            let neg = e.push(ExprNode::Binary(BinaryFn::Lesser, v, z));
            e.push(ExprNode::Select(neg, z, v));
            Kernel::Map { domain: vec![N], inputs: vec![input], expr: e, out: Access::identity(o, &[N]) }
        }
        "copy" => Kernel::Map { domain: vec![N], inputs: vec![input], expr: Expr::load(0), out: Access::identity(o, &[N]) },
        "rows" | "cols" => Kernel::Reduce {
            domain: vec![N / 1024, 1024],
            reduced: 1,
            inputs: vec![input],
            element: Expr::load(0),
            combine: Combine::Sum,
            finish: Expr::acc(),
            finish_inputs: vec![],
            out: Access::identity(o, &[N / 1024]),
        },
        _ => Kernel::Reduce {
            domain: vec![N],
            reduced: 1,
            inputs: vec![input],
            element: Expr::load(0),
            combine: Combine::Sum,
            finish: Expr::acc(),
            finish_inputs: vec![],
            out: Access::identity(o, &[]),
        },
    };
    p.kernels.push(kernel);
    p
}

/// Best-of time per element in ns.
fn time(p: &Program, target: &Target, x: &mut [f32], y: &mut [f32]) -> f64 {
    let jit = compile(p, target).unwrap();
    let k = jit.kernels()[0].expect("a generated kernel");
    let mut scratch = jit.task_scratch(1);
    let ptrs = [x.as_mut_ptr() as *mut u8, y.as_mut_ptr() as *mut u8, scratch.base()];
    let mut best = f64::INFINITY;
    for _ in 0..15 {
        let t = Instant::now();
        unsafe { k(ptrs.as_ptr(), 0, 1) };
        best = best.min(t.elapsed().as_secs_f64());
    }
    best * 1e9 / N as f64
}

fn main() {
    let target = match std::env::args().nth(1) {
        Some(t) => t.parse().unwrap(),
        None => Target::host(),
    };
    let mut x: Vec<f32> = (0..N).map(|i| ((i * 7919) % 2001) as f32 * 0.01 - 10.0).collect();
    let mut y = vec![0f32; N];
    println!("target {target}, {N} f32 elements, one thread");
    for (kind, what, bytes) in [
        ("silu", "map x * sigmoid(x)", 8.0),
        ("relu", "map relu (x < 0 ? 0 : x)", 8.0),
        ("rows", "reduce-sum rows of 1024", 4.0),
        ("cols", "reduce-sum columns of 1024", 4.0),
        ("all", "reduce-sum of everything", 4.0),
        ("copy", "copy", 8.0),
    ] {
        let v = time(&program(false, kind), &target, &mut x, &mut y);
        let s = time(&program(true, kind), &target, &mut x, &mut y);
        println!(
            "{what:<26} f32x4: {v:6.3} ns/element ({:5.1} GB/s)   scalar: {s:6.3} ns/element ({:5.1} GB/s)   x{:.1}",
            bytes / v,
            bytes / s,
            s / v
        );
    }
}
