//! Hand-built kernel programs, JIT-compiled for every feature level this
//! machine runs, against hand-computed results.

use kiln_codegen::cpu::{compile, listing, Listing, Target};
use kiln_ir::kernel::*;
use kiln_ir::DataType;

/// Runs `program` with `buffers` (one byte vector per buffer, in order) and
/// returns the buffers afterwards.
fn run(program: &Program, mut buffers: Vec<Vec<u8>>, target: &Target) -> Vec<Vec<u8>> {
    let jit = compile(program, target).unwrap();
    let mut scratch = jit.task_scratch(3);
    let mut pointers: Vec<*mut u8> = buffers.iter_mut().map(|b| b.as_mut_ptr()).collect();
    pointers.push(scratch.base());
    for k in jit.kernels().iter().copied().flatten() {
        // Split into 3 tasks to exercise the partitioning.
        for task in 0..3 {
            unsafe { k(pointers.as_ptr(), task, 3) };
        }
    }
    buffers
}

fn f32s(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn to_f32s(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()
}

fn scratch(program: &mut Program, t: DataType, len: usize) -> BufferId {
    program.add_buffer(BufferKind::Output(format!("o{}", program.buffers.len())), t, len)
}

fn input(program: &mut Program, t: DataType, len: usize) -> BufferId {
    program.add_buffer(BufferKind::Input(format!("i{}", program.buffers.len())), t, len)
}

#[test]
fn a_rank_0_map_in_place_runs_once() {
    // y = 2x + 1 with x and y in the same memory (as memory planning places
    // a Map that writes over an input that dies there): only one task may
    // compute the single element, or a later task reads the new value.
    for target in Target::host_levels() {
        let mut p = Program::default();
        let x = input(&mut p, DataType::Float32, 1);
        let y = scratch(&mut p, DataType::Float32, 1);
        let mut expr = Expr::load(0);
        let two = expr.push(ExprNode::Const(2.0));
        let one = expr.push(ExprNode::Const(1.0));
        let t = expr.push(ExprNode::Binary(BinaryFn::Mul, ValueId(0), two));
        expr.push(ExprNode::Binary(BinaryFn::Add, t, one));
        p.kernels.push(Kernel::Map {
            domain: vec![],
            inputs: vec![Access::identity(x, &[])],
            expr,
            out: Access::identity(y, &[]),
        });
        let jit = compile(&p, &target).unwrap();
        let mut memory = f32s(&[3.0]);
        let mut scratch = jit.task_scratch(3);
        let pointers = [memory.as_mut_ptr(), memory.as_mut_ptr(), scratch.base()];
        for k in jit.kernels().iter().copied().flatten() {
            for task in 0..3 {
                unsafe { k(pointers.as_ptr(), task, 3) };
            }
        }
        assert_eq!(to_f32s(&memory), [7.0], "{target}");
    }
}

#[test]
fn map_broadcast_add_relu() {
    for target in Target::host_levels() {
        let mut p = Program::default();
        let a = input(&mut p, DataType::Float32, 6);
        let b = input(&mut p, DataType::Float32, 3);
        let o = scratch(&mut p, DataType::Float32, 6);
        let mut bcast = Access::identity(b, &[3]);
        bcast.coef = vec![vec![0, 1]];
        let mut expr = Expr::default();
        let x = expr.push(ExprNode::Load(0));
        let y = expr.push(ExprNode::Load(1));
        let s = expr.push(ExprNode::Binary(BinaryFn::Add, x, y));
        let z = expr.push(ExprNode::Const(0.0));
        expr.push(ExprNode::Binary(BinaryFn::Max, s, z));
        p.kernels.push(Kernel::Map {
            domain: vec![2, 3],
            inputs: vec![Access::identity(a, &[2, 3]), bcast],
            expr,
            out: Access::identity(o, &[2, 3]),
        });
        let out = run(&p, vec![f32s(&[1., -2., 3., -4., 5., -6.]), f32s(&[10., 1., -10.]), vec![0; 24]], &target);
        assert_eq!(to_f32s(&out[2]), vec![11., 0., 0., 6., 6., 0.], "{target}");
    }
}

#[test]
fn guarded_padding_and_type_conversions() {
    let mut p = Program::default();
    let a = input(&mut p, DataType::Float32, 3);
    let o8 = scratch(&mut p, DataType::Int8, 5);
    let o16 = scratch(&mut p, DataType::Float16, 5);
    // out[i] = a[i - 1], zero outside: [0, a0, a1, a2, 0]
    let padded = Access { buffer: a, shape: vec![3], base: vec![-1], coef: vec![vec![1]], guard: Some(0.0) };
    for out in [o8, o16] {
        p.kernels.push(Kernel::Map {
            domain: vec![5],
            inputs: vec![padded.clone()],
            expr: Expr::load(0),
            out: Access::identity(out, &[5]),
        });
    }
    let out = run(&p, vec![f32s(&[300.7, -1.9, 0.1]), vec![0; 5], vec![0; 10]], &Target::host());
    assert_eq!(out[1].iter().map(|&b| b as i8).collect::<Vec<_>>(), vec![0, 127, -1, 0, 0]);
    let halves: Vec<f32> = out[2].chunks_exact(2).map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32()).collect();
    assert_eq!(halves, vec![0.0, 300.75, -1.900_390_6, 0.099_975_586, 0.0]);
}

#[test]
fn reduce_sum_and_average_with_count() {
    let mut p = Program::default();
    let a = input(&mut p, DataType::Float32, 4);
    let o = scratch(&mut p, DataType::Float32, 4);
    // A 1-D average pool, window 3, padding 1: out[i] = mean of valid a[i-1..=i+1].
    let window = Access { buffer: a, shape: vec![4], base: vec![-1], coef: vec![vec![1, 1]], guard: Some(0.0) };
    let mut finish = Expr::default();
    let acc = finish.push(ExprNode::Acc);
    let n = finish.push(ExprNode::Count);
    finish.push(ExprNode::Binary(BinaryFn::Div, acc, n));
    p.kernels.push(Kernel::Reduce {
        domain: vec![4, 3],
        reduced: 1,
        inputs: vec![window],
        element: Expr::load(0),
        combine: Combine::Sum,
        finish,
        finish_inputs: vec![],
        out: Access::identity(o, &[4]),
    });
    let out = run(&p, vec![f32s(&[1., 2., 3., 4.]), vec![0; 16]], &Target::host());
    assert_eq!(to_f32s(&out[1]), vec![1.5, 2., 3., 3.5]);
}

#[test]
fn gemm_with_transposed_b_and_bias() {
    let mut p = Program::default();
    let a = input(&mut p, DataType::Float32, 6); // [2, 3]
    let b = input(&mut p, DataType::Float32, 6); // [2(n), 3(k)]: transposed
    let bias = input(&mut p, DataType::Float32, 2);
    let o = scratch(&mut p, DataType::Float32, 4);
    // domain [m=2, n=2, k=3]
    let a_access = Access { buffer: a, shape: vec![2, 3], base: vec![0, 0], coef: vec![vec![1, 0, 0], vec![0, 0, 1]], guard: None };
    let b_access = Access { buffer: b, shape: vec![2, 3], base: vec![0, 0], coef: vec![vec![0, 1, 0], vec![0, 0, 1]], guard: None };
    let bias_access = Access { buffer: bias, shape: vec![2], base: vec![0], coef: vec![vec![0, 1]], guard: None };
    let mut epilogue = Expr::default();
    let acc = epilogue.push(ExprNode::Acc);
    let c = epilogue.push(ExprNode::Load(0));
    epilogue.push(ExprNode::Binary(BinaryFn::Add, acc, c));
    p.kernels.push(Kernel::Gemm {
        domain: vec![2, 2, 3],
        a: a_access,
        b: b_access,
        epilogue_inputs: vec![bias_access],
        epilogue,
        out: Access::identity(o, &[2, 2]),
    });
    let out = run(&p, vec![f32s(&[1., 2., 3., 4., 5., 6.]), f32s(&[1., 0., 1., 0., 1., 0.]), f32s(&[100., 200.]), vec![0; 16]], &Target::host());
    assert_eq!(to_f32s(&out[3]), vec![104., 202., 110., 205.]);
}

#[test]
fn gather_wraps_negative_and_clamps_indices() {
    let mut p = Program::default();
    let data = input(&mut p, DataType::Int64, 3);
    let idx = input(&mut p, DataType::Int32, 4);
    let o = scratch(&mut p, DataType::Int64, 4);
    p.kernels.push(Kernel::Gather { outer: 1, axis_len: 3, inner: 1, input: data, indices: idx, index_count: 4, out: o });
    let big = 1i64 << 60;
    let d: Vec<u8> = [big, big + 1, big + 2].iter().flat_map(|x| x.to_le_bytes()).collect();
    let i: Vec<u8> = [2i32, -1, 7, -9].iter().flat_map(|x| x.to_le_bytes()).collect();
    let out = run(&p, vec![d, i, vec![0; 32]], &Target::host());
    let got: Vec<i64> = out[2].chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap())).collect();
    assert_eq!(got, vec![big + 2, big + 2, big + 2, big]);
}

#[test]
fn invalid_programs_are_refused_before_codegen() {
    let mut p = Program::default();
    let a = input(&mut p, DataType::Float32, 4);
    let o = scratch(&mut p, DataType::Float32, 5);
    p.kernels.push(Kernel::Map { domain: vec![5], inputs: vec![Access::identity(a, &[5])], expr: Expr::load(0), out: Access::identity(o, &[5]) });
    let e = compile(&p, &Target::host()).err().expect("out-of-bounds read is refused").to_string();
    assert!(e.contains("larger than b0"), "{e}");
    let mut p = Program::default();
    let a = input(&mut p, DataType::Float32, 4);
    let o = scratch(&mut p, DataType::Float32, 4);
    let shifted = Access { buffer: a, shape: vec![4], base: vec![1], coef: vec![vec![1]], guard: None };
    p.kernels.push(Kernel::Map { domain: vec![4], inputs: vec![shifted], expr: Expr::load(0), out: Access::identity(o, &[4]) });
    let e = compile(&p, &Target::host()).err().expect("out-of-bounds read is refused").to_string();
    assert!(e.contains("spans [1, 4]"), "{e}");
}

#[test]
fn listings_are_deterministic_and_follow_the_target() {
    let mut p = Program::default();
    let a = input(&mut p, DataType::Float32, 8);
    let o = scratch(&mut p, DataType::Float32, 8);
    let mut expr = Expr::default();
    let x = expr.push(ExprNode::Load(0));
    expr.push(ExprNode::Binary(BinaryFn::Mul, x, x));
    p.kernels.push(Kernel::Map { domain: vec![8], inputs: vec![Access::identity(a, &[8])], expr, out: Access::identity(o, &[8]) });
    let base: Target = "x86_64".parse().unwrap();
    let avx512: Target = "x86_64+avx512".parse().unwrap();
    let clif = listing(&p, &base, Listing::Clif).unwrap();
    assert!(clif.contains("fmul"), "{clif}");
    assert_eq!(clif, listing(&p, &base, Listing::Clif).unwrap());
    let sse = listing(&p, &base, Listing::Asm).unwrap();
    let vex = listing(&p, &avx512, Listing::Asm).unwrap();
    assert!(sse.contains("mulss"), "{sse}");
    assert!(vex.contains("vmulss"), "{vex}");
    assert_eq!(vex, listing(&p, &avx512, Listing::Asm).unwrap());
}
