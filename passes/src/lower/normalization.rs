//! Normalizations. `batchNormalization` is one Map with the mean,
//! variance, scale and bias on the channel axis; `layerNormalization` and
//! `instanceNormalization` ([`Lowerer::normalize`]) are Reduce mean,
//! Reduce variance (f32 scratch, population statistics) and a Map.

use kiln_ir::infer::{channel_axis, resolved_layer_norm_axes, spatial_axes};
use kiln_ir::kernel::{Combine, UnaryFn};
use kiln_ir::{BatchNormalizationOptions, InstanceNormalizationOptions, LayerNormalizationOptions, OperandId};

use super::reduction::RedPlan;
use super::values::{E, ident, placed};
use super::{Lowerer, R, dims};

impl Lowerer<'_> {
    /// `batchNormalization`: `(x - mean) / sqrt(variance + epsilon) * scale + bias`
    /// with the parameters on `options.axis`, one Map.
    pub(super) fn batch_normalization(
        &mut self,
        input: OperandId,
        mean: OperandId,
        variance: OperandId,
        options: &BatchNormalizationOptions,
        out: OperandId,
    ) -> R {
        let axis = options.axis as usize;
        let eps = options.epsilon as f32;
        let shape = dims(self.desc(out));
        let rank = shape.len();
        let x = self.val(input);
        let mut inputs = vec![ident(&x)];
        for id in [Some(mean), Some(variance), options.scale, options.bias].into_iter().flatten() {
            let v = self.val(id);
            inputs.push(placed(&v, rank, &[Some(axis)]));
        }
        let mut e = E::new();
        let (xv, mv, vv) = (e.load(0), e.load(1), e.load(2));
        let mut next = 3;
        let eps = e.c(eps);
        let centered = e.sub(xv, mv);
        let ve = e.add(vv, eps);
        let sd = e.un(UnaryFn::Sqrt, ve);
        let mut r = e.div(centered, sd);
        if options.scale.is_some() {
            let s = e.load(next);
            next += 1;
            r = e.mul(s, r);
        }
        if options.bias.is_some() {
            let b = e.load(next);
            r = e.add(r, b);
        }
        let y = self.dest(out);
        self.map(shape, inputs, e.done(r), ident(&y));
        Ok(())
    }

    /// `layerNormalization` over its resolved axes.
    pub(super) fn layer_normalization(
        &mut self,
        input: OperandId,
        options: &LayerNormalizationOptions,
        out: OperandId,
    ) -> R {
        let rank = self.desc(input).shape.rank();
        let axes: Vec<usize> = resolved_layer_norm_axes(options, rank).iter().map(|&a| a as usize).collect();
        // scale/bias dimension i lies on input axis axes[i].
        let params: Vec<Option<usize>> = axes.iter().map(|&a| Some(a)).collect();
        self.normalize(input, &axes, options.scale, options.bias, &params, options.epsilon, out);
        Ok(())
    }

    /// `instanceNormalization` over the spatial axes, the parameters on the
    /// channel axis.
    pub(super) fn instance_normalization(
        &mut self,
        input: OperandId,
        options: &InstanceNormalizationOptions,
        out: OperandId,
    ) -> R {
        let (h, w) = spatial_axes(options.layout);
        let c = channel_axis(options.layout);
        self.normalize(input, &[h, w], options.scale, options.bias, &[Some(c)], options.epsilon, out);
        Ok(())
    }

    /// `(x - mean) / sqrt(variance + epsilon) * scale + bias` with the
    /// population mean and variance over `axes`; `scale`/`bias` dimension
    /// `i` lies on input axis `params[i]`.
    #[allow(clippy::too_many_arguments)]
    fn normalize(
        &mut self,
        input: OperandId,
        axes: &[usize],
        scale: Option<OperandId>,
        bias: Option<OperandId>,
        params: &[Option<usize>],
        epsilon: f64,
        out: OperandId,
    ) {
        let x = self.val(input);
        let plan = RedPlan::new(&x.shape, axes);
        let mean_finish = |e: &mut E| {
            let (acc, n) = (e.acc(), e.count());
            e.div(acc, n)
        };
        let mean = self.reduce_scratch(&x, &plan, Combine::Sum, |_, v| v[0], mean_finish, vec![]);
        let var = self.reduce_scratch(
            &x,
            &plan,
            Combine::Sum,
            |e, v| {
                let d = e.sub(v[0], v[1]);
                e.mul(d, d)
            },
            mean_finish,
            vec![mean.clone()],
        );
        let rank = x.rank();
        let mut inputs = vec![ident(&x), plan.kept_on_input(&mean, rank), plan.kept_on_input(&var, rank)];
        let mut e = E::new();
        let (xv, mv, vv) = (e.load(0), e.load(1), e.load(2));
        let eps = e.c(epsilon as f32);
        let centered = e.sub(xv, mv);
        let ve = e.add(vv, eps);
        let sd = e.un(UnaryFn::Sqrt, ve);
        let mut r = e.div(centered, sd);
        if let Some(s) = scale {
            let v = self.val(s);
            inputs.push(placed(&v, rank, params));
            let sv = e.load(inputs.len() as u32 - 1);
            r = e.mul(sv, r);
        }
        if let Some(b) = bias {
            let v = self.val(b);
            inputs.push(placed(&v, rank, params));
            let bv = e.load(inputs.len() as u32 - 1);
            r = e.add(r, bv);
        }
        let y = self.dest(out);
        self.map(x.shape.clone(), inputs, e.done(r), ident(&y));
    }
}
