//! The kernel-IR validator refuses broken kernels before any code is
//! generated: each mutation of a valid program below must be an error that
//! names what is wrong (issue 15, generated-code safety). Code generators
//! rely on it: an unguarded access the validator accepted is in bounds.

use kiln_ir::DataType;
use kiln_ir::kernel::{Access, BufferKind, Expr, Kernel, Program};

/// `out[i, j] = in[i, j]` over [4, 4], and `c = a x b` over [4, 4, 4]:
/// both valid.
fn valid() -> Program {
    let mut p = Program::default();
    let input = p.add_buffer(BufferKind::Input("x".into()), DataType::Float32, 16);
    let out = p.add_buffer(BufferKind::Output("y".into()), DataType::Float32, 16);
    let gemm_out = p.add_buffer(BufferKind::Output("z".into()), DataType::Float32, 16);
    p.kernels.push(Kernel::Map {
        domain: vec![4, 4],
        inputs: vec![Access::identity(input, &[4, 4])],
        expr: Expr::load(0),
        out: Access::identity(out, &[4, 4]),
    });
    let rows = |buffer, rows: [usize; 2]| Access {
        buffer,
        shape: vec![4, 4],
        base: vec![0, 0],
        coef: rows.iter().map(|&a| (0..3).map(|d| isize::from(d == a)).collect()).collect(),
        guard: None,
    };
    p.kernels.push(Kernel::Gemm {
        domain: vec![4, 4, 4],
        a: rows(input, [0, 2]),
        b: rows(input, [2, 1]),
        epilogue_inputs: vec![],
        epilogue: Expr::acc(),
        out: Access::identity(gemm_out, &[4, 4]),
    });
    p
}

fn map_parts(p: &mut Program) -> (&mut Vec<Access>, &mut Expr, &mut Access) {
    match &mut p.kernels[0] {
        Kernel::Map { inputs, expr, out, .. } => (inputs, expr, out),
        _ => unreachable!(),
    }
}

fn gemm_parts(p: &mut Program) -> (&mut Vec<usize>, &mut Access, &mut Access) {
    match &mut p.kernels[1] {
        Kernel::Gemm { domain, a, out, .. } => (domain, a, out),
        _ => unreachable!(),
    }
}

#[test]
fn the_valid_program_is_accepted() {
    valid().validate().unwrap();
}

#[test]
fn every_broken_kernel_is_refused() {
    type Mutation = (&'static str, &'static str, fn(&mut Program));
    let mutations: &[Mutation] = &[
        ("off-by-one stride", "spans", |p| map_parts(p).0[0].coef[1][1] = 2),
        ("off-by-one base", "spans", |p| map_parts(p).0[0].base[0] = 1),
        ("negative base", "spans", |p| map_parts(p).2.base[1] = -1),
        ("shape larger than the buffer", "larger than", |p| map_parts(p).0[0].shape = vec![4, 5]),
        ("output buffer too small", "larger than", |p| p.buffers[1].len = 15),
        ("write to an input", "read-only", |p| map_parts(p).2.buffer = map_parts(p).0[0].buffer),
        ("guarded write", "cannot be guarded", |p| map_parts(p).2.guard = Some(0.0)),
        ("wrong access rank", "wrong rank", |p| map_parts(p).0[0].coef[0].push(0)),
        ("load of a missing input", "load", |p| *map_parts(p).1 = Expr::load(3)),
        ("accumulator in an element expression", "acc", |p| *map_parts(p).1 = Expr::acc()),
        ("gemm domain too small", "at least", |p| gemm_parts(p).0.truncate(2)),
        ("gemm operand past its rows", "spans", |p| gemm_parts(p).1.base[1] = 1),
        ("gemm output stride doubled", "spans", |p| gemm_parts(p).2.coef[0][0] = 2),
        ("missing buffer", "no buffer", |p| map_parts(p).0[0].buffer = kiln_ir::kernel::BufferId(99)),
    ];
    for (what, needle, mutate) in mutations {
        let mut p = valid();
        mutate(&mut p);
        let e = p.validate().expect_err(what).to_string();
        assert!(e.to_lowercase().contains(needle), "{what}: `{e}` does not say `{needle}`");
    }
}
