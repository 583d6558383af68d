//! kiln's graph passes, run in order by a [`Pipeline`] (see
//! [`pipeline`]): constant folding ([`fold()`]), graph rewriting by
//! equality saturation ([`rewrite()`]), channels-last networks made
//! channels-first ([`relayout()`]), lowering a WebNN graph to
//! the kernel IR ([`lower()`]), fusion of elementwise Maps into the kernels
//! that produce their inputs ([`fuse()`]) and memory planning ([`plan()`]).
//!
//! How each operator lowers (computing in f32, see `kiln_ir::kernel`, but
//! for host kernels):
//!
//! | operators | kernels |
//! |---|---|
//! | unary, binary, comparison and logical ops, `clamp`, `elu`, `leakyRelu`, `hardSigmoid`, `hardSwish`, `linear`, `gelu`, `softplus`, `softsign`, `sigmoid`, `relu`, `prelu`, `where`, `cast` | one Map, broadcasting by zero coefficients |
//! | `reshape`, `identity`, and ops that keep every element in place (a cast to the same type, an `expand`/`transpose` of size-1 dimensions, a whole `slice`, an empty `pad`, a one-input `concat`, a one-part `split`) | nothing (an alias), or a copy Map into a graph output |
//! | `transpose`, `slice`, `expand`, `concat` (a Map per input), `split` (a Map per output), `pad` (constant: one guarded Map; edge, reflection: a Map per region) | copy Maps with affine accesses |
//! | `gather` | Gather |
//! | the ten reductions | Reduce (`reduceLogSumExp`: Reduce max, Reduce Σexp(x − max), Map) |
//! | `softmax` | Reduce max, Reduce Σexp, Map |
//! | `layerNormalization`, `instanceNormalization` | Reduce mean, Reduce variance, Map |
//! | `batchNormalization` | one Map |
//! | `gemm`, `matmul` | Gemm (transposes, broadcast batches by coefficients; alpha, beta, c in the epilogue) |
//! | `conv2d`, groups = 1 | im2col Map (guarded for padding) + Gemm with the bias in its epilogue; a 1x1 unit-stride unpadded filter reads the input directly |
//! | `conv2d`, groups > 1 | Reduce of x·w over (channel in group, kh, kw) (+ a bias Map) |
//! | `convTranspose2d` | (strides > 1: zero Map + strided copy Map, spreading the input) Reduce over the flipped window (+ a bias Map) |
//! | `averagePool2d`, `l2Pool2d`, `maxPool2d` | Reduce with a guarded input (padding is not counted) |
//! | `resample2d` | nearest: Gathers with constant indices; linear (float types): 6 Gathers + a weighting Map |
//! | what f32 kernels cannot compute exactly (below) | one Host kernel: the operator run by the reference interpreter on the host |
//!
//! Then [`fuse()`] folds an elementwise Map into the Gemm or Map that
//! produced its only input of a scratch buffer (bias, activation, clamp and
//! residual adds into Gemm epilogues; elementwise chains into one Map), with
//! the exact conditions in [`fuse`](mod@fuse).
//!
//! Host kernels ([`kiln_ir::kernel::Kernel::Host`], exact by construction
//! and slow; never fused, never written in place): arithmetic,
//! comparisons, selections and reductions (except max/min of int8/uint8)
//! on 32/64-bit integers; `pow` on integers; integer casts that need more
//! than f32's exact integers ([`cast_rule`]); linear `resample2d` of
//! integers; a constant `pad` value that f32 cannot hold exactly. With
//! [`LowerOptions::host_kernels`] off these nodes are refused instead,
//! every one at once, in a [`LowerError::Unsupported`].

pub mod fold;
pub mod fuse;
pub mod layout;
pub mod lower;
pub mod pipeline;
pub mod plan;
pub mod rewrite;
pub mod views;

pub use fold::{FoldError, Folded, fold};
pub use fuse::{Fusion, FusionKind, fuse};
pub use layout::{Relayout, relayout};
pub use pipeline::{CompileError, Compiled, Pass, Pipeline, Report, Snapshot};
pub use rewrite::{RewriteOptions, Rewritten, rewrite};
pub use lower::{
    CastRule, LowerError, LowerOptions, Support, Unsupported, cast_rule, lower, lower_unplanned, lower_with, op_support,
};
pub use plan::{ALIGNMENT, check_plan, live_ranges, plan, writes_in_place};
pub use views::{View, elide_copies};
