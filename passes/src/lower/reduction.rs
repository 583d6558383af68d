//! Reductions and `softmax`. The ten reductions are one Reduce each over
//! a [`RedPlan`] domain (the kept axes, then the reduced ones);
//! `reduceLogSumExp` is Reduce max, Reduce Σexp(x − max) and a Map;
//! `softmax` is Reduce max, Reduce Σexp and a Map; `argMax`/`argMin` are
//! a Reduce max (min) and a Reduce min of positions; `cumulativeSum` is a
//! log-step scan of Maps. Values that only live inside the operator (the
//! maximum, the sum, partial scans) are f32 scratch.

use kiln_ir::infer::resolved_reduce_axes;
use kiln_ir::kernel::{Access, BinaryFn, Combine, Expr, Kernel, UnaryFn};
use kiln_ir::{ArgOp, DataType, OperandId, ReduceOp, ReduceOptions};

use super::values::{E, Row, V, Val, access, ident, placed};
use super::{Lowerer, R};

impl Lowerer<'_> {
    /// A Reduce over `plan` of `x` (input 0, accessed over the whole
    /// domain) and `extra` kept-shaped values (inputs 1.., broadcast over
    /// the reduced axes), into the kept-shaped `out`.
    #[allow(clippy::too_many_arguments)]
    fn reduce_into(
        &mut self,
        x: &Val,
        plan: &RedPlan,
        combine: Combine,
        element: impl FnOnce(&mut E, &[V]) -> V,
        finish: impl FnOnce(&mut E) -> V,
        extra: Vec<Val>,
        out: &Val,
    ) {
        let rank = plan.domain.len();
        let mut inputs = vec![plan.input_access(x)];
        inputs.extend(extra.iter().map(|v| plan.kept_access(v, rank)));
        let mut e = E::new();
        let loads: Vec<V> = (0..inputs.len() as u32).map(|n| e.load(n)).collect();
        let r = element(&mut e, &loads);
        let element = e.done(r);
        let mut f = E::new();
        let r = finish(&mut f);
        let finish = f.done(r);
        self.program.kernels.push(Kernel::Reduce {
            domain: plan.domain.clone(),
            reduced: plan.reduced.len(),
            inputs,
            element,
            combine,
            finish,
            finish_inputs: vec![],
            out: ident(&out.view(&plan.kept_shape())),
        });
    }

    /// [`Self::reduce_into`] a new f32 scratch buffer of the kept shape.
    pub(super) fn reduce_scratch(
        &mut self,
        x: &Val,
        plan: &RedPlan,
        combine: Combine,
        element: impl FnOnce(&mut E, &[V]) -> V,
        finish: impl FnOnce(&mut E) -> V,
        extra: Vec<Val>,
    ) -> Val {
        let out = self.scratch(DataType::Float32, &plan.kept_shape());
        self.reduce_into(x, plan, combine, element, finish, extra, &out);
        out
    }

    /// The ten reductions (`reduceSum`, `reduceMean`, `reduceLogSumExp`, ...)
    /// over the resolved axes.
    pub(super) fn reduce(&mut self, kind: ReduceOp, input: OperandId, options: &ReduceOptions, out: OperandId) -> R {
        let x = self.val(input);
        let axes: Vec<usize> = resolved_reduce_axes(options, x.rank()).iter().map(|&a| a as usize).collect();
        let plan = RedPlan::new(&x.shape, &axes);
        if kind == ReduceOp::LogSumExp {
            // max + ln Σ exp(x - max); an infinite max is the result itself.
            let (max, sum) = self.max_and_exp_sum(&x, &plan);
            let y = self.dest(out).view(&plan.kept_shape());
            let mut e = E::new();
            let (m, s) = (e.load(0), e.load(1));
            let l = e.un(UnaryFn::Log, s);
            let r = e.add(m, l);
            let a = e.un(UnaryFn::Abs, m);
            let inf = e.c(f32::INFINITY);
            let infinite = e.bin(BinaryFn::Equal, a, inf);
            let r = e.sel(infinite, m, r);
            self.map(y.shape.clone(), vec![ident(&max), ident(&sum)], e.done(r), ident(&y));
            return Ok(());
        }
        let combine = match kind {
            ReduceOp::Max => Combine::Max,
            ReduceOp::Min => Combine::Min,
            ReduceOp::Product => Combine::Product,
            _ => Combine::Sum,
        };
        let y = self.dest(out);
        self.reduce_into(
            &x,
            &plan,
            combine,
            |e, v| match kind {
                ReduceOp::L1 => e.un(UnaryFn::Abs, v[0]),
                ReduceOp::L2 | ReduceOp::SumSquare => e.mul(v[0], v[0]),
                _ => v[0],
            },
            |e| {
                let acc = e.acc();
                match kind {
                    ReduceOp::Mean => {
                        let n = e.count();
                        e.div(acc, n)
                    }
                    ReduceOp::L2 => e.un(UnaryFn::Sqrt, acc),
                    ReduceOp::LogSum => e.un(UnaryFn::Log, acc),
                    _ => acc,
                }
            },
            vec![],
            &y,
        );
        Ok(())
    }

    /// The two reductions of a softmax and a log-sum-exp over `plan`: the
    /// maximum of `x`, and `Σ exp(x - max)`, each in f32 scratch.
    fn max_and_exp_sum(&mut self, x: &Val, plan: &RedPlan) -> (Val, Val) {
        let max = self.reduce_scratch(x, plan, Combine::Max, |_, v| v[0], |e| e.acc(), vec![]);
        let sum = self.reduce_scratch(
            x,
            plan,
            Combine::Sum,
            |e, v| {
                let d = e.sub(v[0], v[1]);
                e.un(UnaryFn::Exp, d)
            },
            |e| e.acc(),
            vec![max.clone()],
        );
        (max, sum)
    }

    /// `softmax` along `axis`: `exp(x - max) / Σ exp(x - max)`.
    pub(super) fn softmax(&mut self, input: OperandId, axis: u32, out: OperandId) -> R {
        let x = self.val(input);
        let y = self.dest(out);
        self.softmax_of(&x, axis as usize, &y);
        Ok(())
    }

    /// The softmax of `x` along `axis` into `y` (same shape).
    pub(super) fn softmax_of(&mut self, x: &Val, axis: usize, y: &Val) {
        let plan = RedPlan::new(&x.shape, &[axis]);
        let (max, sum) = self.max_and_exp_sum(x, &plan);
        let (m_acc, s_acc) = (plan.kept_on_input(&max, x.rank()), plan.kept_on_input(&sum, x.rank()));
        let mut e = E::new();
        let (xv, mv, sv) = (e.load(0), e.load(1), e.load(2));
        let d = e.sub(xv, mv);
        let ex = e.un(UnaryFn::Exp, d);
        let r = e.div(ex, sv);
        self.map(x.shape.clone(), vec![ident(x), m_acc, s_acc], e.done(r), ident(y));
    }
}

impl Lowerer<'_> {
    /// `argMax`/`argMin` along `axis`: a Reduce max (min) of `x` into f32
    /// scratch `m`, then a Reduce min over the axis of `x == m ? k : (x is
    /// NaN ? k : size)`, `k` read from an f32 constant `0, 1, ..., size -
    /// 1`: the first position of the extreme or, where `m` is NaN (no
    /// element equals it), of the first NaN. Positions are exact in f32
    /// (the exactness rules send axes beyond 2^24 to host kernels) and
    /// stored to the int32/int64 output exactly.
    pub(super) fn arg_min_max(&mut self, kind: ArgOp, input: OperandId, axis: u32, out: OperandId) -> R {
        let x = self.val(input);
        let a = axis as usize;
        let size = x.shape[a];
        let plan = RedPlan::new(&x.shape, &[a]);
        let combine = if kind == ArgOp::Max { Combine::Max } else { Combine::Min };
        let m = self.reduce_scratch(&x, &plan, combine, |_, v| v[0], |e| e.acc(), vec![]);
        let positions = self.f32_constant(&(0..size).map(|k| k as f32).collect::<Vec<_>>());
        let rank = plan.domain.len();
        let inputs = vec![plan.input_access(&x), plan.kept_access(&m, rank), placed(&positions, rank, &[Some(rank - 1)])];
        let mut e = E::new();
        let (v, mv, k) = (e.load(0), e.load(1), e.load(2));
        let end = e.c(size as f32);
        let ordered = e.bin(BinaryFn::Equal, v, v);
        let other = e.sel(ordered, end, k);
        let extreme = e.bin(BinaryFn::Equal, v, mv);
        let r = e.sel(extreme, k, other);
        let y = self.dest(out);
        self.program.kernels.push(Kernel::Reduce {
            domain: plan.domain.clone(),
            reduced: 1,
            inputs,
            element: e.done(r),
            combine: Combine::Min,
            finish: Expr::acc(),
            finish_inputs: vec![],
            out: ident(&y.view(&plan.kept_shape())),
        });
        Ok(())
    }

    /// `cumulativeSum` along `axis` (float types; the exactness rules send
    /// integers to host kernels): a Hillis-Steele scan, `⌈log2 size⌉` Maps
    /// `s'[i] = s[i] + s[i - 2^t]` (`i + 2^t` when `reversed`; guarded, 0
    /// outside), after one Map `s[i] = x[i - 1]` (`i + 1`) when
    /// `exclusive`. Partial scans are f32 scratch; the last Map writes the
    /// output. Each sum adds at most `⌈log2 size⌉` terms in f32.
    pub(super) fn cumulative_sum(&mut self, input: OperandId, axis: u32, exclusive: bool, reversed: bool, out: OperandId) -> R {
        let x = self.val(input);
        let a = axis as usize;
        let size = x.shape[a];
        let shape = x.shape.clone();
        let step = if reversed { 1 } else { -1 };
        let shifted = |v: &Val, by: usize| {
            let rows: Vec<Row> = (0..v.rank()).map(|j| if j == a { Row::axis(j).offset(step * by as isize) } else { Row::axis(j) }).collect();
            access(v, v.rank(), &rows, Some(0.0))
        };
        let mut shifts = Vec::new();
        let mut s = 1;
        while s < size {
            shifts.push(s);
            s *= 2;
        }
        let steps = usize::from(exclusive) + shifts.len();
        if steps == 0 {
            // One element along the axis: the sum is the element itself.
            self.alias(out, &x);
            return Ok(());
        }
        let mut current = x;
        for n in 0..steps {
            let next = if n + 1 == steps { self.dest(out) } else { self.scratch(DataType::Float32, &shape) };
            if exclusive && n == 0 {
                self.map(shape.clone(), vec![shifted(&current, 1)], Expr::load(0), ident(&next));
            } else {
                let by = shifts[n - usize::from(exclusive)];
                let mut e = E::new();
                let (p, q) = (e.load(0), e.load(1));
                let r = e.add(p, q);
                self.map(shape.clone(), vec![ident(&current), shifted(&current, by)], e.done(r), ident(&next));
            }
            current = next;
        }
        Ok(())
    }
}

/// The domain of a reduction over `reduced` axes of a tensor: the kept axes
/// (in order) followed by the reduced ones (ascending, so the reduction
/// walks memory in order).
pub(super) struct RedPlan {
    /// Kept tensor axes.
    kept: Vec<usize>,
    /// Reduced tensor axes.
    reduced: Vec<usize>,
    domain: Vec<usize>,
    /// Domain position of every tensor axis.
    position: Vec<usize>,
}

impl RedPlan {
    pub(super) fn new(shape: &[usize], axes: &[usize]) -> RedPlan {
        let mut reduced = axes.to_vec();
        reduced.sort_unstable();
        let kept: Vec<usize> = (0..shape.len()).filter(|a| !reduced.contains(a)).collect();
        let order: Vec<usize> = kept.iter().chain(&reduced).copied().collect();
        let mut position = vec![0; shape.len()];
        for (p, &a) in order.iter().enumerate() {
            position[a] = p;
        }
        RedPlan { domain: order.iter().map(|&a| shape[a]).collect(), kept, reduced, position }
    }

    fn kept_shape(&self) -> Vec<usize> {
        self.domain[..self.kept.len()].to_vec()
    }

    /// The reduced tensor over the whole domain.
    fn input_access(&self, x: &Val) -> Access {
        let axes: Vec<Option<usize>> = self.position.iter().map(|&p| Some(p)).collect();
        placed(x, self.domain.len(), &axes)
    }

    /// A kept-shaped value over a rank-`rank` domain that starts with the
    /// kept axes (the Reduce domain).
    fn kept_access(&self, v: &Val, rank: usize) -> Access {
        let axes: Vec<Option<usize>> = (0..self.kept.len()).map(Some).collect();
        placed(v, rank, &axes)
    }

    /// A kept-shaped value over the input's own shape (a Map domain).
    pub(super) fn kept_on_input(&self, v: &Val, rank: usize) -> Access {
        let axes: Vec<Option<usize>> = self.kept.iter().map(|&a| Some(a)).collect();
        placed(v, rank, &axes)
    }
}
