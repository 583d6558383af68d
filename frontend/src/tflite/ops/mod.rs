//! The operator table: TFLite builtin (and the MediaPipe custom) operators
//! onto WebNN operators, one handler each, grouped by family:
//! [`elementwise`] (arithmetic, activations, comparisons, quantization,
//! casts), [`nn`] (convolutions, fully connected, pooling, softmax,
//! resize, reductions) and [`shape`] (reshapes, slices, concatenation,
//! padding, gathers, transposes).

mod elementwise;
mod nn;
mod shape;

use super::import::{Importer, OpCx, OpResult};
use super::names::builtin_name;
use super::schema::CUSTOM;

pub type Handler = fn(&mut Importer, &OpCx) -> OpResult<()>;

/// Custom operators the importer maps, by name.
const CUSTOM_OPS: &[(&str, Handler)] = &[
    // MediaPipe's transposed convolution with bias (selfie segmentation and others).
    ("Convolution2DTransposeBias", nn::convolution_2d_transpose_bias),
];

/// Builtin operators by code.
const BUILTINS: &[(i32, Handler)] = &[
    (0, elementwise::add),
    (1, nn::average_pool_2d),
    (2, shape::concatenation),
    (3, nn::conv_2d),
    (4, nn::depthwise_conv_2d),
    (5, shape::depth_to_space),
    (6, elementwise::dequantize),
    (8, elementwise::floor),
    (9, nn::fully_connected),
    (14, elementwise::logistic),
    (17, nn::max_pool_2d),
    (18, elementwise::mul),
    (19, elementwise::relu),
    (20, elementwise::relu_n1_to_1),
    (21, elementwise::relu6),
    (22, shape::reshape),
    (23, nn::resize_bilinear),
    (25, nn::softmax),
    (26, shape::space_to_depth),
    (28, elementwise::tanh),
    (34, shape::pad),
    (36, shape::gather),
    (39, shape::transpose),
    (40, nn::mean),
    (41, elementwise::sub),
    (42, elementwise::div),
    (43, shape::squeeze),
    (45, shape::strided_slice),
    (47, elementwise::exp),
    (49, shape::split),
    (53, elementwise::cast),
    (54, elementwise::prelu),
    (55, elementwise::maximum),
    (57, elementwise::minimum),
    (58, elementwise::less),
    (59, elementwise::neg),
    (60, shape::pad),
    (61, elementwise::greater),
    (62, elementwise::greater_equal),
    (63, elementwise::less_equal),
    (64, elementwise::select),
    (65, shape::slice),
    (66, elementwise::sin),
    (67, nn::transpose_conv),
    (70, shape::expand_dims),
    (71, elementwise::equal),
    (72, elementwise::not_equal),
    (73, elementwise::log),
    (74, nn::sum),
    (75, elementwise::sqrt),
    (76, elementwise::rsqrt),
    (78, elementwise::pow),
    (81, nn::reduce_prod),
    (82, nn::reduce_max),
    (83, shape::pack),
    (84, elementwise::logical_or),
    (86, elementwise::logical_and),
    (87, elementwise::logical_not),
    (88, shape::unpack),
    (89, nn::reduce_min),
    (92, elementwise::square),
    (97, nn::resize_nearest_neighbor),
    (98, elementwise::leaky_relu),
    (99, elementwise::squared_difference),
    (100, shape::mirror_pad),
    (101, elementwise::abs),
    (102, shape::split_v),
    (104, elementwise::ceil),
    (108, elementwise::cos),
    (111, elementwise::elu),
    (114, elementwise::quantize),
    (116, elementwise::round),
    (117, elementwise::hard_swish),
    (123, elementwise::select),
    (124, elementwise::densify),
    (126, nn::batch_matmul),
    (130, shape::broadcast_to),
    (150, elementwise::gelu),
];

/// The handler of the operator `cx` runs, if the table has one.
pub fn handler(cx: &OpCx) -> Option<Handler> {
    if cx.code == CUSTOM {
        return CUSTOM_OPS.iter().find(|(name, _)| *name == cx.op_type).map(|&(_, h)| h);
    }
    BUILTINS.iter().find(|(code, _)| *code == cx.code).map(|&(_, h)| h)
}

/// Why an operator without a handler cannot be imported.
pub fn unsupported_reason(cx: &OpCx) -> String {
    if cx.code == CUSTOM {
        format!("custom operator `{}` has no mapping in kiln", cx.op_type)
    } else {
        format!("operator {} has no mapping in kiln", cx.op_type)
    }
}

/// The operators the importer maps: builtin names (sorted), then custom
/// ones.
pub fn supported_operators() -> Vec<String> {
    let mut names: Vec<String> = BUILTINS.iter().map(|&(code, _)| builtin_name(code)).collect();
    names.sort();
    names.dedup();
    names.extend(CUSTOM_OPS.iter().map(|(name, _)| name.to_string()));
    names
}
