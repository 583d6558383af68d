//! gemm, matmul and attention, accumulating in `f64`.

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

/// Scaled dot-product attention over the last two axes, the leading axes
/// broadcast: for each query row `q`, the scores `scale * (q . k_j) +
/// mask_j` over the key rows `k_j`, their softmax `p`, and `sum_j p_j v_j`.
/// Computed in `f64` throughout and rounded once, like every operator here;
/// a row whose scores are all `-inf` gives NaN, as the composed softmax does.
pub(super) fn attention(
    query: &Tensor,
    key: &Tensor,
    value: &Tensor,
    mask: Option<&Tensor>,
    scale: f64,
    out: &OperandDescriptor,
) -> Res<Tensor> {
    let (q, k, v) = (floats(query)?, floats(key)?, floats(value)?);
    let (qd, kd, vd, od) = (query.shape().dims(), key.shape().dims(), value.shape().dims(), out.shape.dims());
    let (rq, rk, rv, ro) = (qd.len(), kd.len(), vd.len(), od.len());
    if rq < 2 || rk < 2 || rv < 2 || ro < 2 {
        return Err("attention takes operands of rank 2 or more".into());
    }
    let (l, e, s, ev) = (qd[rq - 2] as usize, qd[rq - 1] as usize, kd[rk - 2] as usize, vd[rv - 1] as usize);
    let batch = &od[..ro - 2];
    let q_batch = broadcast_map(&qd[..rq - 2], batch)?;
    let k_batch = broadcast_map(&kd[..rk - 2], batch)?;
    let v_batch = broadcast_map(&vd[..rv - 2], batch)?;
    let mask = match mask {
        Some(m) => {
            let mut scores: Vec<u32> = batch.to_vec();
            scores.extend([l as u32, s as u32]);
            Some((floats(m)?, broadcast_map(m.shape().dims(), &scores)?))
        }
        None => None,
    };
    let mut result = vec![0.0f64; q_batch.len() * l * ev];
    let mut p = vec![0.0f64; s];
    for (bi, ((&qi, &ki), &vi)) in q_batch.iter().zip(&k_batch).zip(&v_batch).enumerate() {
        let (qm, km, vm) = (&q[qi * l * e..][..l * e], &k[ki * s * e..][..s * e], &v[vi * s * ev..][..s * ev]);
        for i in 0..l {
            for (j, pj) in p.iter_mut().enumerate() {
                let dot: f64 = (0..e).map(|t| qm[i * e + t] * km[j * e + t]).sum();
                let bias = mask.as_ref().map_or(0.0, |(mv, map)| mv[map[(bi * l + i) * s + j]]);
                *pj = scale * dot + bias;
            }
            let max = p.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let mut sum = 0.0;
            for pj in &mut p {
                *pj = (*pj - max).exp();
                sum += *pj;
            }
            let row = &mut result[(bi * l + i) * ev..][..ev];
            for (c, r) in row.iter_mut().enumerate() {
                *r = (0..s).map(|j| p[j] / sum * vm[j * ev + c]).sum();
            }
        }
    }
    encode_f64(out, result)
}
