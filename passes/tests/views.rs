//! Copy elision ([`kiln_passes::elide_copies`]): which copies became views
//! and which stayed, on programs lowered from small graphs with concat and
//! split. Every program is evaluated before and after: the results must be
//! the same bits (a view reads and writes the same elements), and the
//! planned program must pass `check_plan` and validate.

use kiln_ir::kernel::{Kernel, Program, eval};
use kiln_ir::*;
use kiln_passes::{View, check_plan, elide_copies, fuse, lower_unplanned, plan};

mod common;
use common::G;

/// The fused program of `g` (outputs `outputs`), and the same after copy
/// elision with its views; both planned, evaluated and compared bit for bit.
#[track_caller]
fn elided(mut g: G, outputs: &[OperandId]) -> (Program, Program, Vec<View>) {
    for (i, &o) in outputs.iter().enumerate() {
        g.g.add_output(&format!("y{i}"), o).unwrap();
    }
    let mut before = lower_unplanned(&g.g).unwrap();
    fuse(&mut before);
    let mut after = before.clone();
    let views = elide_copies(&mut after);
    plan(&mut before);
    plan(&mut after);
    check_plan(&after).unwrap();
    after.validate().unwrap();
    let feeds = g.feed_refs();
    let (a, b) = (eval(&before, &feeds).unwrap(), eval(&after, &feeds).unwrap());
    for ((name, x), (_, y)) in a.iter().zip(&b) {
        assert_eq!(x.bytes(), y.bytes(), "{name}: elision changed the result\n{before}\n{after}");
    }
    (before, after, views)
}

/// The plain copies of `p` (one unguarded input loaded as it is; im2col
/// and padding Maps, guarded, do not count).
fn copies(p: &Program) -> usize {
    let plain = |k: &&Kernel| {
        matches!(k, Kernel::Map { expr, inputs, .. }
            if inputs.len() == 1 && inputs[0].guard.is_none() && expr.nodes == [kiln_ir::kernel::ExprNode::Load(0)])
    };
    p.kernels.iter().filter(plain).count()
}

fn split(g: &mut G, input: OperandId, parts: u32, axis: u32) -> Vec<OperandId> {
    g.g.add_node(Op::Split { input, splits: Splits::Count(parts), axis }, "").unwrap()
}

/// YOLOv8's C2f block: a 1x1 conv, split in two halves, a 3x3 conv of the
/// second half with a residual add, and the concat of all three. The split
/// and the concat of the two halves become views of the concat's buffer:
/// the 1x1 conv writes straight into it, the 3x3 conv reads its input from
/// it (guarded, padded) and writes the last third next to it.
#[test]
fn c2f_split_and_concat_become_views() {
    let mut g = G::new();
    let x = g.input("x", &[1, 4, 6, 7]);
    let c = g.conv(x, 8, 4, 1, 0, true);
    let c = g.unary(UnaryOp::Sigmoid, c);
    let halves = split(&mut g, c, 2, 1);
    let m = g.conv(halves[1], 4, 4, 3, 1, true);
    let m = g.binary(BinaryOp::Add, m, halves[1]);
    let cat = g.op(Op::Concat { inputs: vec![halves[0], halves[1], m], axis: 1 });
    let y = g.conv(cat, 3, 12, 1, 0, false);
    let (before, after, views) = elided(g, &[y]);
    assert!(copies(&before) >= 3, "the split and concat copies are there to elide\n{before}");
    assert_eq!(copies(&after), 0, "{views:?}\n{after}");
    assert_eq!(after.kernels.len() + views.iter().map(|v| v.kernels.len()).sum::<usize>(), before.kernels.len());
}

/// A slice out of the middle of a buffer read by a padded convolution
/// stays guarded at the slice's borders: the channel coordinate never
/// leaves the view, the spatial guard acts as before.
#[test]
fn a_split_half_read_with_padding_is_a_view() {
    let mut g = G::new();
    let x = g.input("x", &[1, 6, 5, 5]);
    let e = g.unary(UnaryOp::Exp, x);
    let parts = split(&mut g, e, 3, 1);
    let y = g.conv(parts[1], 2, 2, 3, 1, false);
    let z = g.unary(UnaryOp::Neg, parts[2]);
    let (before, after, views) = elided(g, &[y, z]);
    assert!(copies(&before) > copies(&after), "{views:?}\n{after}");
}

/// Splitting along an inner axis gives parts that are not contiguous:
/// their copies stay.
#[test]
fn non_contiguous_parts_stay_copies() {
    let mut g = G::new();
    let x = g.input("x", &[2, 3, 8]);
    let e = g.unary(UnaryOp::Exp, x);
    let parts = split(&mut g, e, 2, 2);
    let a = g.unary(UnaryOp::Neg, parts[0]);
    let b = g.unary(UnaryOp::Abs, parts[1]);
    let cat = g.op(Op::Concat { inputs: vec![a, b], axis: 2 });
    let y = g.unary(UnaryOp::Sqrt, cat);
    let (before, after, views) = elided(g, &[y, a]);
    assert!(views.is_empty(), "{views:?}\n{after}");
    assert_eq!(copies(&before), copies(&after));
}

/// A graph input or output is never made a view of something else (its
/// memory is the caller's); a copy into a graph output can host a view.
#[test]
fn graph_inputs_stay_and_outputs_host_views() {
    let mut g = G::new();
    let x = g.input("x", &[1, 4, 3]);
    let w = g.input("w", &[1, 4, 3]);
    let e = g.unary(UnaryOp::Exp, x);
    let t = g.unary(UnaryOp::Tanh, x);
    let cat = g.op(Op::Concat { inputs: vec![e, w, t], axis: 1 });
    let s = g.binary(BinaryOp::Add, e, t);
    let (before, after, views) = elided(g, &[cat, s]);
    let output = before.buffers.iter().position(|b| matches!(&b.kind, kiln_ir::kernel::BufferKind::Output(n) if n == "y0")).unwrap();
    assert_eq!(views.len(), 2, "exp and tanh write into the output\n{after}");
    assert!(views.iter().all(|v| v.of.0 as usize == output), "{views:?}");
    // The copy of the input `w` into the output stays.
    assert_eq!(copies(&after), 1, "{views:?}\n{after}");
}
