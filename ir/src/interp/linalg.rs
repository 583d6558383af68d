//! gemm and matmul, accumulating in `f64`.

use super::{broadcast_map, encode_f64, floats, Res};
use crate::{GemmOptions, OperandDescriptor, Tensor};

/// `alpha * A' * B' + beta * C`, where `A'`/`B'` are `a`/`b`, transposed if
/// asked, and `C` (optional, rank 0 to 2) is broadcast to `[M, N]`.
pub(super) fn gemm(a: &Tensor, b: &Tensor, c: Option<&Tensor>, o: &GemmOptions, out: &OperandDescriptor) -> Res<Tensor> {
    let (x, y) = (floats(a)?, floats(b)?);
    let (ad, bd) = (a.shape().dims(), b.shape().dims());
    let (&[a0, a1], &[b0, b1]) = (ad, bd) else {
        return Err("gemm takes 2-D operands".into());
    };
    let (a1, b1) = (a1 as usize, b1 as usize);
    let (m, k) = if o.a_transpose { (a1, a0 as usize) } else { (a0 as usize, a1) };
    let n = if o.b_transpose { b0 as usize } else { b1 };
    // Element (i, p) of A' and (p, j) of B'.
    let at = |i: usize, p: usize| if o.a_transpose { x[p * a1 + i] } else { x[i * a1 + p] };
    let bt = |p: usize, j: usize| if o.b_transpose { y[j * b1 + p] } else { y[p * b1 + j] };
    let mut result = vec![0.0f64; m * n];
    for i in 0..m {
        for j in 0..n {
            let dot: f64 = (0..k).map(|p| at(i, p) * bt(p, j)).sum();
            result[i * n + j] = o.alpha * dot;
        }
    }
    if let Some(c) = c {
        let cv = floats(c)?;
        let map = broadcast_map(c.shape().dims(), out.shape.dims())?;
        for (r, &ci) in result.iter_mut().zip(&map) {
            *r += o.beta * cv[ci];
        }
    }
    encode_f64(out, result)
}

/// Matrix product over the last two axes; the leading (batch) axes
/// broadcast numpy-style.
pub(super) fn matmul(a: &Tensor, b: &Tensor, out: &OperandDescriptor) -> Res<Tensor> {
    let (x, y) = (floats(a)?, floats(b)?);
    let (ad, bd, od) = (a.shape().dims(), b.shape().dims(), out.shape.dims());
    let (ra, rb, ro) = (ad.len(), bd.len(), od.len());
    if ra < 2 || rb < 2 || ro < 2 {
        return Err("matmul takes operands of rank 2 or more".into());
    }
    let (m, k, n) = (ad[ra - 2] as usize, ad[ra - 1] as usize, bd[rb - 1] as usize);
    let batch = &od[..ro - 2];
    let a_batch = broadcast_map(&ad[..ra - 2], batch)?;
    let b_batch = broadcast_map(&bd[..rb - 2], batch)?;
    let mut result = vec![0.0f64; a_batch.len() * m * n];
    for (bi, (&ai, &bj)) in a_batch.iter().zip(&b_batch).enumerate() {
        let am = &x[ai * m * k..][..m * k];
        let bm = &y[bj * k * n..][..k * n];
        let om = &mut result[bi * m * n..][..m * n];
        for i in 0..m {
            for j in 0..n {
                om[i * n + j] = (0..k).map(|p| am[i * k + p] * bm[p * n + j]).sum();
            }
        }
    }
    encode_f64(out, result)
}
