//! Pooling: `averagePool2d`, `l2Pool2d` and `maxPool2d` are one Reduce
//! each over the window `(kh, kw)`, the input guarded where the window
//! reaches into the padding (filled with -inf for max, else 0), so padding
//! is not counted: an average divides by the window's elements inside
//! the input.

use kiln_ir::infer::{resolved_window, spatial_axes};
use kiln_ir::kernel::{BinaryFn, Combine, Kernel, UnaryFn};
use kiln_ir::{OperandId, Pool2dOptions, PoolOp};

use super::values::{E, Row, access, ident};
use super::{Lowerer, R};

impl Lowerer<'_> {
    /// `averagePool2d`, `l2Pool2d`, `maxPool2d`.
    pub(super) fn pool2d(&mut self, kind: PoolOp, input: OperandId, o: &Pool2dOptions, out: OperandId) -> R {
        let x = self.val(input);
        let y = self.dest(out);
        let [kh, kw] = resolved_window(o, &self.desc(input).shape).map(|k| k as usize);
        let (ha, wa) = spatial_axes(o.layout);
        let [sh, sw] = o.strides.map(|s| s as isize);
        let [dh, dw] = o.dilations.map(|d| d as isize);
        let (pt, pl) = (o.padding[0] as isize, o.padding[2] as isize);
        let (ih, iw) = (x.shape[ha] as isize, x.shape[wa] as isize);
        let (oh, ow) = (y.shape[ha] as isize, y.shape[wa] as isize);
        let needs_guard = pt > 0
            || pl > 0
            || (oh - 1) * sh + (kh as isize - 1) * dh - pt >= ih
            || (ow - 1) * sw + (kw as isize - 1) * dw - pl >= iw;
        // Kept axes: the output's, in its layout; reduced: [KH, KW].
        let mut domain = y.shape.clone();
        domain.extend([kh, kw]);
        let rows: Vec<Row> = (0..4)
            .map(|j| {
                if j == ha {
                    Row { base: -pt, terms: vec![(j, sh), (4, dh)] }
                } else if j == wa {
                    Row { base: -pl, terms: vec![(j, sw), (5, dw)] }
                } else {
                    Row::axis(j)
                }
            })
            .collect();
        let fill = if kind == PoolOp::Max { f32::NEG_INFINITY } else { 0.0 };
        let input_access = access(&x, 6, &rows, needs_guard.then_some(fill));
        let mut e = E::new();
        let v = e.load(0);
        let element = if kind == PoolOp::L2 {
            let sq = e.mul(v, v);
            e.done(sq)
        } else {
            e.done(v)
        };
        let mut f = E::new();
        let acc = f.acc();
        let finish = match kind {
            PoolOp::Max => f.done(acc),
            PoolOp::L2 => {
                let r = f.un(UnaryFn::Sqrt, acc);
                f.done(r)
            }
            PoolOp::Average => {
                // Padding is not counted; a window entirely in the padding
                // gives 0 (its sum is 0).
                let count = f.count();
                let one = f.c(1.0);
                let n = f.bin(BinaryFn::Max, count, one);
                let r = f.div(acc, n);
                f.done(r)
            }
        };
        self.program.kernels.push(Kernel::Reduce {
            domain,
            reduced: 2,
            inputs: vec![input_access],
            element,
            combine: if kind == PoolOp::Max { Combine::Max } else { Combine::Sum },
            finish,
            finish_inputs: vec![],
            out: ident(&y),
        });
        Ok(())
    }
}
