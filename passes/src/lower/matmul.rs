//! `gemm` and `matmul`: one Gemm kernel each; `attention`: two Gemms
//! around a softmax. Transposes are accesses with swapped rows and
//! broadcast batch dimensions have zero coefficients; `gemm`'s alpha, beta
//! and `c` and attention's scale and mask are Gemm epilogues.

use kiln_ir::kernel::{Access, Expr, Kernel};
use kiln_ir::{AttentionOptions, DataType, GemmOptions, OperandId};

use super::values::{E, Row, Val, access, bcast, ident, placed};
use super::{Lowerer, R};

impl Lowerer<'_> {
    /// `gemm`: `alpha * op(a) * op(b) + beta * c`, `op` transposing when the
    /// options ask; `c` broadcast.
    pub(super) fn gemm(&mut self, a: OperandId, b: OperandId, options: &GemmOptions, out: OperandId) -> R {
        let (va, vb) = (self.val(a), self.val(b));
        let y = self.dest(out);
        let (m, n) = (y.shape[0], y.shape[1]);
        let k = if options.a_transpose { va.shape[0] } else { va.shape[1] };
        let a_rows = if options.a_transpose { [Row::axis(2), Row::axis(0)] } else { [Row::axis(0), Row::axis(2)] };
        let b_rows = if options.b_transpose { [Row::axis(1), Row::axis(2)] } else { [Row::axis(2), Row::axis(1)] };
        let mut e = E::new();
        let mut r = e.acc();
        if options.alpha != 1.0 {
            let alpha = e.c(options.alpha as f32);
            r = e.mul(alpha, r);
        }
        let mut epilogue_inputs = vec![];
        if let Some(c) = options.c {
            let vc = self.val(c);
            epilogue_inputs.push(bcast(&vc, &[m, n]));
            let mut cv = e.load(0);
            if options.beta != 1.0 {
                let beta = e.c(options.beta as f32);
                cv = e.mul(beta, cv);
            }
            r = e.add(r, cv);
        }
        self.program.kernels.push(Kernel::Gemm {
            domain: vec![m, n, k],
            a: access(&va, 3, &a_rows, None),
            b: access(&vb, 3, &b_rows, None),
            epilogue_inputs,
            epilogue: e.done(r),
            out: ident(&y),
        });
        Ok(())
    }

    /// `matmul`: a batched product, the batch dimensions broadcast.
    pub(super) fn matmul(&mut self, a: OperandId, b: OperandId, out: OperandId) -> R {
        let (va, vb) = (self.val(a), self.val(b));
        let y = self.dest(out);
        self.product(&va, &vb, false, vec![], Expr::acc(), &y);
        Ok(())
    }

    /// `attention`: one Gemm for the scores `query x key^T` (key read
    /// transposed in place) with `scale` and `mask` as its epilogue, a
    /// softmax over the last axis, and one Gemm of the probabilities by
    /// `value`. Scores and probabilities are f32 scratch whatever the
    /// operands' type.
    pub(super) fn attention(
        &mut self,
        query: OperandId,
        key: OperandId,
        value: OperandId,
        options: &AttentionOptions,
        out: OperandId,
    ) -> R {
        let (vq, vk, vv) = (self.val(query), self.val(key), self.val(value));
        let y = self.dest(out);
        let nb = y.rank() - 2;
        let mut scores_shape = y.shape[..nb].to_vec();
        scores_shape.extend([vq.shape[vq.rank() - 2], vk.shape[vk.rank() - 2]]);
        let mut e = E::new();
        let mut r = e.acc();
        if options.scale != 1.0 {
            let scale = e.c(options.scale as f32);
            r = e.mul(r, scale);
        }
        let mut epilogue_inputs = vec![];
        if let Some(m) = options.mask {
            let vm = self.val(m);
            epilogue_inputs.push(bcast(&vm, &scores_shape));
            let mv = e.load(0);
            r = e.add(r, mv);
        }
        let scores = self.scratch(DataType::Float32, &scores_shape);
        self.product(&vq, &vk, true, epilogue_inputs, e.done(r), &scores);
        let probabilities = self.scratch(DataType::Float32, &scores_shape);
        self.softmax_of(&scores, nb + 1, &probabilities);
        self.product(&probabilities, &vv, false, vec![], Expr::acc(), &y);
        Ok(())
    }

    /// The batched product `a x b` (`a x b^T` when `b_transposed`) into
    /// `y`, the batch dimensions of `a` and `b` broadcast to `y`'s, with
    /// `epilogue` (its inputs over `y`'s shape) applied to each result.
    fn product(&mut self, va: &Val, vb: &Val, b_transposed: bool, epilogue_inputs: Vec<Access>, epilogue: Expr, y: &Val) {
        let nb = y.rank() - 2;
        let (m, n, k) = (y.shape[nb], y.shape[nb + 1], va.shape[va.rank() - 1]);
        let batch = &y.shape[..nb];
        let operand = |v: &Val, last2: [usize; 2]| {
            let vb = v.rank() - 2;
            let lead = nb - vb;
            let mut axes: Vec<Option<usize>> =
                (0..vb).map(|j| if v.shape[j] == 1 && batch[lead + j] != 1 { None } else { Some(lead + j) }).collect();
            axes.extend(last2.map(Some));
            placed(v, nb + 3, &axes)
        };
        let mut domain = batch.to_vec();
        domain.extend([m, n, k]);
        let b_rows = if b_transposed { [nb + 1, nb + 2] } else { [nb + 2, nb + 1] };
        self.program.kernels.push(Kernel::Gemm {
            domain,
            a: operand(va, [nb, nb + 2]),
            b: operand(vb, b_rows),
            epilogue_inputs,
            epilogue,
            out: ident(y),
        });
    }
}
