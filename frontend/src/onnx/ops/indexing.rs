//! Indexing operators: `GatherElements`, `GatherND`, `ScatterElements`,
//! `ScatterND` (WebNN's `gatherElements`, `gatherND`, `scatterElements`,
//! `scatterND`) and `Trilu` (`triangular`).
//!
//! - `GatherElements` may take indices smaller than the data along the
//!   other axes; WebNN's needs them equal, so the data is sliced to the
//!   indices' size there first (the elements outside are never read).
//! - `GatherND` with `batch_dims` other than 0 is unsupported.
//! - The scatters: `reduction="none"` only (WebNN's scatters replace; `add`,
//!   `mul`, `max` and `min` are refused by name); `ScatterElements` with
//!   indices smaller than the data along the other axes is unsupported.
//!   Duplicate indices, which ONNX leaves undefined, keep the last update.
//! - `Trilu` of an empty tensor is the empty tensor, as a load-time
//!   constant (WebNN tensors are never empty).
//! - Indices: negative ones count from the end in both; ONNX leaves
//!   out-of-range ones undefined, WebNN (kiln) clamps them.

use kiln_ir::*;

use super::Handler;
use super::shape::{count, empty, input_info};
use crate::onnx::import::{Importer, NodeCx, NodeResult, Value, axis, invalid, unsupported};

pub const TABLE: &[(&str, Handler)] = &[
    ("GatherElements", gather_elements),
    ("GatherND", gather_nd),
    ("ScatterElements", scatter_elements),
    ("ScatterND", scatter_nd),
    ("Trilu", trilu),
];

fn gather_elements(im: &mut Importer, cx: &NodeCx) -> NodeResult<Vec<Value>> {
    let (mut x, indices) = (im.input(cx, 0)?, im.input(cx, 1)?);
    let (dims, index_dims) = (im.desc(x).shape.0.clone(), im.desc(indices).shape.0.clone());
    let a = axis(cx.int_or("axis", 0)?, dims.len())?;
    if index_dims.len() != dims.len() {
        return invalid(format!("the indices have rank {}, the data {}", index_dims.len(), dims.len()));
    }
    let mut sizes = dims.clone();
    for (i, (&n, &m)) in dims.iter().zip(&index_dims).enumerate() {
        if i != a as usize {
            if m > n {
                return invalid(format!("the indices' dimension {i} ({m}) exceeds the data's ({n})"));
            }
            sizes[i] = m;
        }
    }
    if sizes != dims {
        x = im.op1(cx, Op::Slice { input: x, starts: vec![0; dims.len()], sizes, strides: None })?;
    }
    Ok(vec![im.op1(cx, Op::GatherElements { input: x, indices, axis: a })?.into()])
}

fn gather_nd(im: &mut Importer, cx: &NodeCx) -> NodeResult<Vec<Value>> {
    if cx.int_or("batch_dims", 0)? != 0 {
        return unsupported("batch_dims other than 0");
    }
    let (input, indices) = (im.input(cx, 0)?, im.input(cx, 1)?);
    Ok(vec![im.op1(cx, Op::GatherNd { input, indices })?.into()])
}

/// The scatters' `reduction`: only `none` has a WebNN operator.
fn check_reduction(cx: &NodeCx) -> NodeResult<()> {
    match cx.string_or("reduction", "none")?.as_str() {
        "none" => Ok(()),
        other => unsupported(format!(
            "reduction \"{other}\": WebNN's scatters replace elements (reduction \"none\"); they do not combine them"
        )),
    }
}

fn scatter_elements(im: &mut Importer, cx: &NodeCx) -> NodeResult<Vec<Value>> {
    check_reduction(cx)?;
    let (input, indices, updates) = (im.input(cx, 0)?, im.input(cx, 1)?, im.input(cx, 2)?);
    let rank = im.desc(input).shape.rank();
    let a = axis(cx.int_or("axis", 0)?, rank)?;
    Ok(vec![im.op1(cx, Op::ScatterElements { input, indices, updates, axis: a })?.into()])
}

fn scatter_nd(im: &mut Importer, cx: &NodeCx) -> NodeResult<Vec<Value>> {
    check_reduction(cx)?;
    let (input, indices, updates) = (im.input(cx, 0)?, im.input(cx, 1)?, im.input(cx, 2)?);
    Ok(vec![im.op1(cx, Op::ScatterNd { input, indices, updates })?.into()])
}

/// `Trilu`: `triangular` with the `upper` attribute and the optional
/// constant `k` input as the diagonal.
fn trilu(im: &mut Importer, cx: &NodeCx) -> NodeResult<Vec<Value>> {
    let (data_type, dims) = input_info(im, cx, 0)?;
    if count(&dims) == 0 {
        // Nothing to keep or drop: the empty result is a load-time constant.
        return Ok(vec![empty(data_type, dims)]);
    }
    let input = im.input(cx, 0)?;
    let diagonal = match im.const_ints(cx, 1)? {
        None if cx.has_input(1) => return unsupported("the k input must be known at load time"),
        None => 0,
        Some(k) => match k[..] {
            // Beyond ±2^31 every element is kept or dropped alike.
            [k] => k.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32,
            _ => return invalid(format!("k must hold one value, got {}", k.len())),
        },
    };
    let upper = cx.int_or("upper", 1)? != 0;
    Ok(vec![im.op1(cx, Op::Triangular { input, upper, diagonal })?.into()])
}
