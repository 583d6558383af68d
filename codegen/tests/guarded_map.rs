//! Guarded maps that are padded copies (the im2col matrix before a
//! convolution) take the 4-lane interior path of `vector.rs`
//! (`map_guarded`), borders the scalar loop. Results must equal the
//! reference interpreter (`kiln_ir::kernel::eval`) bit for bit, for every
//! feature level this machine runs and with 1 and 3 tasks.

use kiln_codegen::cpu::{listing, Listing, Target};
mod common;

use common::{f32s, run, to_f32s};
use kiln_ir::kernel::*;
use kiln_ir::{DataType, Tensor};


/// Distinct values, a NaN with a payload and a negative zero among them
/// (a copy must keep their bits).
fn values(n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| match i % 7 {
            3 => f32::from_bits(0x7fc0_1234),
            5 => -0.0,
            _ => i as f32 * 0.5 - 3.0,
        })
        .collect()
}

fn check(p: &Program, x: &[f32], what: &str) {
    let out_len = p.buffers[1].len;
    let want = {
        let t = Tensor::from_f32(vec![x.len() as u32], x).unwrap();
        let outs = eval(p, &[("x", &t)]).unwrap();
        outs[0].1.to_f32_vec()
    };
    assert_eq!(want.len(), out_len);
    for target in Target::host_levels() {
        for tasks in [1, 3] {
            let buffers = vec![f32s(x), vec![0xA5u8; out_len * 4]];
            let got = to_f32s(&run(p, buffers, &target, tasks)[1]);
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert!(
                    g.to_bits() == w.to_bits(),
                    "{what}, {target}, {tasks} tasks: element {i}: got {g}, want {w}"
                );
            }
        }
    }
}

fn row(rank: usize, terms: &[(usize, isize)]) -> Vec<isize> {
    let mut r = vec![0; rank];
    for &(a, c) in terms {
        r[a] += c;
    }
    r
}

fn out_len(n: usize, k: usize, s: usize, d: usize, p: usize) -> Option<usize> {
    let span = d * (k - 1) + 1;
    (n + 2 * p >= span).then(|| (n + 2 * p - span) / s + 1)
}

/// An im2col copy of an NCHW input `[1, c, h, w]`. `rows_first`: domain
/// `[1, OH, OW, C, KH, KW]` (matrix `[N, K]`, as lowered); else
/// `[1, C, KH, KW, OH, OW]` (matrix `[K, N]`: the output is contiguous
/// along `ow`). The output is the identity over the domain.
#[allow(clippy::too_many_arguments)]
fn im2col(c: usize, h: usize, w: usize, k: usize, s: usize, p: usize, d: usize, rows_first: bool) -> Option<Program> {
    let (oh, ow) = (out_len(h, k, s, d, p)?, out_len(w, k, s, d, p)?);
    let mut prog = Program::default();
    let x = prog.add_buffer(BufferKind::Input("x".into()), DataType::Float32, c * h * w);
    let y = prog.add_buffer(BufferKind::Output("y".into()), DataType::Float32, c * k * k * oh * ow);
    let r = 6;
    // Domain axes of oh, ow, c, kh, kw.
    let (aoh, aow, ac, akh, akw) = if rows_first { (1, 2, 3, 4, 5) } else { (4, 5, 1, 2, 3) };
    let domain = if rows_first { vec![1, oh, ow, c, k, k] } else { vec![1, c, k, k, oh, ow] };
    let (s, d, p) = (s as isize, d as isize, p as isize);
    let input = Access {
        buffer: x,
        shape: vec![1, c, h, w],
        base: vec![0, 0, -p, -p],
        coef: vec![row(r, &[(0, 1)]), row(r, &[(ac, 1)]), row(r, &[(aoh, s), (akh, d)]), row(r, &[(aow, s), (akw, d)])],
        guard: Some(0.0),
    };
    prog.kernels.push(Kernel::Map { out: Access::identity(y, &domain), domain, inputs: vec![input], expr: Expr::load(0) });
    Some(prog)
}

#[test]
fn im2col_copies() {
    for rows_first in [true, false] {
        for k in [1, 3, 7] {
            for s in [1, 2] {
                for p in [0, 1, 3] {
                    for d in [1, 2] {
                        for w in 1..=20 {
                            let (c, h) = (2, 5);
                            let Some(prog) = im2col(c, h, w, k, s, p, d, rows_first) else { continue };
                            let x = values(c * h * w);
                            check(&prog, &x, &format!("im2col rows_first={rows_first} k={k} s={s} p={p} d={d} w={w}"));
                        }
                    }
                }
            }
        }
    }
}

/// A fill other than zero, and a padded copy that is not an im2col (an
/// explicit pad: output `[c, h + 2p, w + 2p]`).
#[test]
fn padding_copies() {
    for p in [0, 1, 2, 5] {
        for w in 1..=20 {
            let (c, h) = (3, 4);
            let (ph, pw) = (h + 2 * p, w + 2 * p);
            let mut prog = Program::default();
            let x = prog.add_buffer(BufferKind::Input("x".into()), DataType::Float32, c * h * w);
            let y = prog.add_buffer(BufferKind::Output("y".into()), DataType::Float32, c * ph * pw);
            let p = p as isize;
            let input = Access {
                buffer: x,
                shape: vec![c, h, w],
                base: vec![0, -p, -p],
                coef: vec![row(3, &[(0, 1)]), row(3, &[(1, 1)]), row(3, &[(2, 1)])],
                guard: Some(-7.5),
            };
            let domain = vec![c, ph, pw];
            prog.kernels.push(Kernel::Map { out: Access::identity(y, &domain), domain, inputs: vec![input], expr: Expr::load(0) });
            check(&prog, &values(c * h * w), &format!("pad p={p} w={w}"));
        }
    }
}

#[test]
fn wide_copies_use_lanes() {
    for rows_first in [true, false] {
        let prog = im2col(3, 12, 16, 3, 1, 1, 1, rows_first).unwrap();
        for target in Target::host_levels() {
            let clif = listing(&prog, &target, Listing::Clif).unwrap();
            assert!(clif.contains("f32x4"), "{target}: no f32x4 in\n{clif}");
        }
    }
    // No axis with an interior of 4 (3x3 image, padding 1, kernel 3): scalar.
    let prog = im2col(3, 3, 3, 3, 1, 1, 1, true).unwrap();
    let clif = listing(&prog, &Target::host(), Listing::Clif).unwrap();
    assert!(!clif.contains("f32x4"));
}
