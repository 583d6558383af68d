//! Reductions and the operators built on them: the ten `Reduce*`,
//! `ArgMax`/`ArgMin`, `CumSum`, `Softmax`, `LogSoftmax`, `Hardmax` and `Einsum`.
//!
//! - `Reduce*`: `axes` is an attribute before opset 18 (`ReduceSum`: 13)
//!   and a load-time constant input from then on; no axes reduce every
//!   axis, unless `noop_with_empty_axes` makes the node an identity.
//! - `ArgMax`/`ArgMin` are WebNN's `argMax`/`argMin` with an int64 output
//!   (the first extreme; a NaN counts as the extreme, as in numpy); with
//!   `select_last_index`, of the input reversed along the axis, the
//!   position mirrored back. `Hardmax` compares `argMax`'s position with
//!   a constant of the positions. `CumSum` is `cumulativeSum`.
//! - `Softmax`, `LogSoftmax`, `Hardmax` before opset 13 work on the input
//!   flattened to 2-D at `axis` (the axes from `axis` on form one row);
//!   from 13 on, along the single `axis`. `LogSoftmax` is `x -
//!   reduceLogSumExp(x)`, which stays finite where `log(softmax(x))` would
//!   underflow to `-inf`.
//! - `Einsum`: repeated labels in one operand take a diagonal (a strided
//!   `slice` of the two axes flattened), labels used nowhere else are
//!   summed, and operands are contracted pairwise, left to right, as one
//!   batched `matmul` each (`transpose` + `reshape` around it); `...`
//!   broadcasts like numpy. The contraction needs float operands.

use kiln_ir::*;

use super::Handler;
use super::elementwise::require_type;
use crate::onnx::import::{Importer, NodeCx, NodeResult, Value, axis, check_constant_size, distinct_axes, invalid, unsupported};

pub const TABLE: &[(&str, Handler)] = &[
    ("ReduceMean", |im, cx| reduce(im, cx, ReduceOp::Mean)),
    ("ReduceSum", |im, cx| reduce(im, cx, ReduceOp::Sum)),
    ("ReduceMax", |im, cx| reduce(im, cx, ReduceOp::Max)),
    ("ReduceMin", |im, cx| reduce(im, cx, ReduceOp::Min)),
    ("ReduceProd", |im, cx| reduce(im, cx, ReduceOp::Product)),
    ("ReduceL1", |im, cx| reduce(im, cx, ReduceOp::L1)),
    ("ReduceL2", |im, cx| reduce(im, cx, ReduceOp::L2)),
    ("ReduceLogSum", |im, cx| reduce(im, cx, ReduceOp::LogSum)),
    ("ReduceLogSumExp", |im, cx| reduce(im, cx, ReduceOp::LogSumExp)),
    ("ReduceSumSquare", |im, cx| reduce(im, cx, ReduceOp::SumSquare)),
    ("ArgMax", |im, cx| arg_extreme(im, cx, true)),
    ("ArgMin", |im, cx| arg_extreme(im, cx, false)),
    ("CumSum", cum_sum),
    ("Softmax", |im, cx| softmax(im, cx, Normalize::Softmax)),
    ("LogSoftmax", |im, cx| softmax(im, cx, Normalize::LogSoftmax)),
    ("Hardmax", |im, cx| softmax(im, cx, Normalize::Hardmax)),
    ("Einsum", einsum),
];

use DataType::*;

/// The types each reduction takes in kiln (see `ir::infer`).
fn reduce_types(kind: ReduceOp) -> &'static [DataType] {
    match kind {
        ReduceOp::L1 | ReduceOp::Sum | ReduceOp::SumSquare | ReduceOp::Product => {
            &[Float32, Float16, Int32, Uint32, Int64, Uint64]
        }
        ReduceOp::Max | ReduceOp::Min => &DataType::ALL,
        ReduceOp::L2 | ReduceOp::LogSum | ReduceOp::LogSumExp | ReduceOp::Mean => DataType::FLOATS,
    }
}

fn reduce_op(
    im: &mut Importer,
    cx: &NodeCx,
    kind: ReduceOp,
    input: OperandId,
    axes: Vec<u32>,
    keep_dimensions: bool,
) -> NodeResult<OperandId> {
    im.op1(cx, Op::Reduce { kind, input, options: ReduceOptions { axes: Some(axes), keep_dimensions } })
}

fn reduce(im: &mut Importer, cx: &NodeCx, kind: ReduceOp) -> NodeResult<Vec<Value>> {
    let empty = im.known_input(cx, 0).filter(|t| t.shape().element_count() == 0);
    let (input, desc) = match &empty {
        Some(t) => (None, t.desc().clone()),
        None => {
            let input = im.input(cx, 0)?;
            require_type(im, cx, input, reduce_types(kind))?;
            (Some(input), im.desc(input).clone())
        }
    };
    let rank = desc.shape.rank();
    let axes_input = cx.opset >= 18 || (kind == ReduceOp::Sum && cx.opset >= 13);
    let axes = if axes_input { im.const_ints(cx, 1)? } else { cx.ints("axes")? };
    let keep = cx.int_or("keepdims", 1)? != 0;
    let axes = match axes {
        Some(a) if !a.is_empty() => distinct_axes(&a, rank)?,
        _ if axes_input && cx.int_or("noop_with_empty_axes", 0)? != 0 => {
            return Ok(vec![input.map_or_else(|| Value::Const(empty.clone().unwrap()), Value::from)]);
        }
        _ => (0..rank as u32).collect(),
    };
    match input {
        Some(input) => Ok(vec![reduce_op(im, cx, kind, input, axes, keep)?.into()]),
        None => Ok(vec![Value::Const(reduce_empty(kind, &desc, &axes, keep)?)]),
    }
}

/// A reduction of an empty tensor: every output element reduces the empty
/// set, so it is the reduction's identity (0 for sums and norms, 1 for the
/// product, -inf/+inf (the type's extremes for integers) for max/min,
/// -inf for the log-sums, NaN for the mean). Known at load time.
fn reduce_empty(kind: ReduceOp, desc: &OperandDescriptor, axes: &[u32], keep: bool) -> NodeResult<Tensor> {
    let dims: Vec<u32> = desc
        .shape
        .dims()
        .iter()
        .enumerate()
        .filter_map(|(i, &d)| match (axes.contains(&(i as u32)), keep) {
            (false, _) => Some(d),
            (true, true) => Some(1),
            (true, false) => None,
        })
        .collect();
    let out = OperandDescriptor::new(desc.data_type, dims);
    check_constant_size(out.shape.checked_element_count().unwrap_or(u64::MAX), "an empty-set reduction")?;
    let n = out.shape.element_count();
    let value = match kind {
        ReduceOp::Sum | ReduceOp::SumSquare | ReduceOp::L1 | ReduceOp::L2 => 0.0,
        ReduceOp::Product => 1.0,
        ReduceOp::Max | ReduceOp::LogSum | ReduceOp::LogSumExp => f64::NEG_INFINITY,
        ReduceOp::Min => f64::INFINITY,
        ReduceOp::Mean => f64::NAN,
    };
    let values = match desc.data_type.int_range() {
        None => Values::Float(vec![value; n]),
        Some(_) if matches!(kind, ReduceOp::Mean | ReduceOp::LogSum | ReduceOp::LogSumExp) => {
            return unsupported(format!("{} of an empty {} tensor has no integer value", kind.name(), desc.data_type));
        }
        Some((lo, hi)) => Values::Int(vec![if value == f64::NEG_INFINITY { lo } else if value == f64::INFINITY { hi } else { value as i128 }; n]),
    };
    Tensor::from_values(out, &values).or_else(|e| invalid(e.to_string()))
}

/// `ArgMax` (`max`) and `ArgMin`: WebNN's `argMax`/`argMin` (the first
/// extreme, the first NaN if any, as numpy), to int64. With
/// `select_last_index` the axis is reversed first and the position `i`
/// found there is `n - 1 - i` (computed in float32, exact for every axis
/// `argMax` lowers to kernels, then cast back).
fn arg_extreme(im: &mut Importer, cx: &NodeCx, max: bool) -> NodeResult<Vec<Value>> {
    let x = im.input(cx, 0)?;
    let shape = im.desc(x).shape.clone();
    if shape.rank() == 0 {
        return invalid("the input must have rank 1 or more");
    }
    let a = axis(cx.int_or("axis", 0)?, shape.rank())?;
    let keep_dimensions = cx.int_or("keepdims", 1)? != 0;
    let last = cx.opset >= 12 && cx.int_or("select_last_index", 0)? != 0;
    let kind = if max { ArgOp::Max } else { ArgOp::Min };
    if !last {
        let op = Op::ArgMinMax { kind, input: x, axis: a, keep_dimensions, output_data_type: Int64 };
        return Ok(vec![im.op1(cx, op)?.into()]);
    }
    let reversed = im.op1(cx, Op::Reverse { input: x, axes: Some(vec![a]) })?;
    let op = Op::ArgMinMax { kind, input: reversed, axis: a, keep_dimensions, output_data_type: Int32 };
    let i = im.op1(cx, op)?;
    let i = im.op1(cx, Op::Cast { input: i, data_type: Float32 })?;
    let n = f64::from(shape.0[a as usize]);
    let i = im.op1(cx, Op::Linear { input: i, alpha: -1.0, beta: n - 1.0 })?;
    Ok(vec![im.op1(cx, Op::Cast { input: i, data_type: Int64 })?.into()])
}

/// `CumSum`: WebNN's `cumulativeSum` along the constant `axis` input, with
/// `exclusive` and `reverse`.
fn cum_sum(im: &mut Importer, cx: &NodeCx) -> NodeResult<Vec<Value>> {
    let x = im.input(cx, 0)?;
    let rank = im.desc(x).shape.rank();
    let Some(a) = im.const_ints(cx, 1)? else {
        return unsupported("the axis input must be known at load time");
    };
    let [a] = a[..] else {
        return invalid(format!("the axis input must hold one value, got {}", a.len()));
    };
    if rank == 0 {
        return invalid("the input must have rank 1 or more");
    }
    let exclusive = cx.int_or("exclusive", 0)? != 0;
    let reversed = cx.int_or("reverse", 0)? != 0;
    let op = Op::CumulativeSum { input: x, axis: axis(a, rank)?, exclusive, reversed };
    Ok(vec![im.op1(cx, op)?.into()])
}

#[derive(Clone, Copy, PartialEq)]
enum Normalize {
    Softmax,
    LogSoftmax,
    Hardmax,
}

/// `Softmax`, `LogSoftmax` and `Hardmax`.
fn softmax(im: &mut Importer, cx: &NodeCx, kind: Normalize) -> NodeResult<Vec<Value>> {
    let x = im.input(cx, 0)?;
    let dims = im.desc(x).shape.0.clone();
    let rank = dims.len();
    if rank == 0 {
        return invalid("the input must have rank 1 or more");
    }
    if kind != Normalize::Hardmax {
        require_type(im, cx, x, DataType::FLOATS)?;
    }
    let coerced = cx.opset < 13;
    let a = axis(cx.int_or("axis", if coerced { 1 } else { -1 })?, rank)? as usize;
    let y = match kind {
        Normalize::LogSoftmax => {
            // Before opset 13 the row is every axis from `axis` on.
            let axes: Vec<u32> = if coerced { (a as u32..rank as u32).collect() } else { vec![a as u32] };
            let lse = reduce_op(im, cx, ReduceOp::LogSumExp, x, axes, true)?;
            im.op1(cx, Op::Binary { kind: BinaryOp::Sub, a: x, b: lse })?
        }
        Normalize::Softmax | Normalize::Hardmax => {
            // Flatten to 2-D when the row spans several axes.
            let flat = coerced && a + 1 < rank;
            let (input, along) = if flat {
                let outer = dims[..a].iter().product::<u32>();
                let inner = dims[a..].iter().try_fold(1u32, |p, &d| p.checked_mul(d));
                let Some(inner) = inner else {
                    return unsupported("the flattened row has more than 2^32 - 1 elements");
                };
                (reshape(im, cx, x, vec![outer, inner])?, 1)
            } else {
                (x, a as u32)
            };
            let y = if kind == Normalize::Softmax {
                im.op1(cx, Op::Softmax { input, axis: along })?
            } else {
                // The first maximum's position compared with every position.
                let op = Op::ArgMinMax { kind: ArgOp::Max, input, axis: along, keep_dimensions: true, output_data_type: Int32 };
                let first = im.op1(cx, op)?;
                let rank = im.desc(input).shape.rank();
                let n = im.desc(input).shape.0[along as usize];
                let mut index_shape = vec![n];
                index_shape.resize(rank - along as usize, 1);
                let positions = Values::Int((0..n).map(i128::from).collect());
                let index = Tensor::from_values(OperandDescriptor::new(Int32, index_shape), &positions)
                    .or_else(|e| invalid(e.to_string()))?;
                let index = im.add_constant(None, index)?;
                let hot = im.op1(cx, Op::Compare { kind: CompareOp::Equal, a: index, b: first })?;
                let data_type = im.desc(x).data_type;
                im.op1(cx, Op::Cast { input: hot, data_type })?
            };
            if flat { reshape(im, cx, y, dims)? } else { y }
        }
    };
    Ok(vec![y.into()])
}

/// `reshape`, or `x` itself when it already has the shape.
fn reshape(im: &mut Importer, cx: &NodeCx, x: OperandId, new_shape: Vec<u32>) -> NodeResult<OperandId> {
    if im.desc(x).shape.0 == new_shape {
        return Ok(x);
    }
    im.op1(cx, Op::Reshape { input: x, new_shape })
}

/// `transpose`, or `x` itself for the identity permutation.
fn transpose(im: &mut Importer, cx: &NodeCx, x: OperandId, permutation: Vec<u32>) -> NodeResult<OperandId> {
    if permutation.iter().enumerate().all(|(i, &p)| p as usize == i) {
        return Ok(x);
    }
    im.op1(cx, Op::Transpose { input: x, permutation: Some(permutation) })
}

/// An einsum label: a letter (its ASCII code) or one dimension of the
/// ellipsis (`ELLIPSIS + k`, right-aligned across operands).
type Label = u32;
const ELLIPSIS: Label = 256;

/// One side of an equation term: letters, and where `...` stands.
struct Term {
    letters: Vec<Label>,
    /// Index into `letters` where the ellipsis' dimensions go.
    ellipsis: Option<usize>,
}

fn parse_term(s: &str, equation: &str) -> NodeResult<Term> {
    let mut letters = Vec::new();
    let mut ellipsis = None;
    let mut rest = s;
    while let Some(c) = rest.chars().next() {
        if let Some(after) = rest.strip_prefix("...") {
            if ellipsis.is_some() {
                return invalid(format!("equation {equation:?}: `...` appears twice in one term"));
            }
            ellipsis = Some(letters.len());
            rest = after;
        } else if c.is_ascii_alphabetic() {
            letters.push(c as Label);
            rest = &rest[1..];
        } else {
            return invalid(format!("equation {equation:?}: unexpected character {c:?}"));
        }
    }
    Ok(Term { letters, ellipsis })
}

impl Term {
    /// The labels of an operand whose ellipsis stands for `ell_dims`
    /// dimensions: the last `ell_dims` of the `ell_rank` ellipsis
    /// dimensions overall (numpy aligns them to the right).
    fn labels(&self, ell_dims: usize, ell_rank: usize) -> Vec<Label> {
        let mut labels = self.letters.clone();
        if let Some(at) = self.ellipsis {
            let ell = (ell_rank - ell_dims..ell_rank).map(|k| ELLIPSIS + k as Label);
            labels.splice(at..at, ell);
        }
        labels
    }
}

fn label_name(l: Label) -> String {
    if l >= ELLIPSIS { format!("...[{}]", l - ELLIPSIS) } else { char::from_u32(l).unwrap_or('?').to_string() }
}

/// An operand during the contraction, with one label per axis.
struct Labelled {
    id: OperandId,
    labels: Vec<Label>,
}

fn einsum(im: &mut Importer, cx: &NodeCx) -> NodeResult<Vec<Value>> {
    let Some(equation) = cx.string("equation")? else {
        return invalid("attribute `equation` is required");
    };
    let compact: String = equation.chars().filter(|c| !c.is_whitespace()).collect();
    let (lhs, rhs) = match compact.split_once("->") {
        Some((l, r)) => (l, Some(r)),
        None => (compact.as_str(), None),
    };
    let terms = lhs.split(',').map(|t| parse_term(t, &equation)).collect::<NodeResult<Vec<Term>>>()?;
    if terms.len() != cx.input_count() {
        return invalid(format!(
            "equation {equation:?} has {} operands, the node {} inputs",
            terms.len(),
            cx.input_count()
        ));
    }
    let mut operands = Vec::with_capacity(terms.len());
    let mut ell_rank = 0;
    for (i, term) in terms.iter().enumerate() {
        let id = im.input(cx, i)?;
        let rank = im.desc(id).shape.rank();
        let ell = rank.checked_sub(term.letters.len()).filter(|&e| e == 0 || term.ellipsis.is_some());
        let Some(ell) = ell else {
            return invalid(format!(
                "equation {equation:?}: operand {i} has rank {rank}, its term {} labels",
                term.letters.len()
            ));
        };
        ell_rank = ell_rank.max(ell);
        operands.push((id, ell));
    }
    let mut operands: Vec<Labelled> = operands
        .into_iter()
        .zip(&terms)
        .map(|((id, ell), term)| Labelled { id, labels: term.labels(ell, ell_rank) })
        .collect();
    let ellipsis_labels: Vec<Label> = (0..ell_rank).map(|k| ELLIPSIS + k as Label).collect();
    let output: Vec<Label> = match rhs {
        Some(r) => {
            let term = parse_term(r, &equation)?;
            let mut labels = term.letters.clone();
            if let Some(at) = term.ellipsis {
                labels.splice(at..at, ellipsis_labels.iter().copied());
            }
            labels
        }
        None => {
            // Implicit: the ellipsis, then the letters used once, sorted.
            let mut once: Vec<Label> = Vec::new();
            let all: Vec<Label> = terms.iter().flat_map(|t| t.letters.iter().copied()).collect();
            for &l in &all {
                if all.iter().filter(|&&m| m == l).count() == 1 {
                    once.push(l);
                }
            }
            once.sort_unstable();
            ellipsis_labels.iter().copied().chain(once).collect()
        }
    };
    for (i, &l) in output.iter().enumerate() {
        if output[..i].contains(&l) {
            return invalid(format!("equation {equation:?}: output label {} appears twice", label_name(l)));
        }
        if !operands.iter().any(|o| o.labels.contains(&l)) {
            return invalid(format!("equation {equation:?}: output label {} is in no operand", label_name(l)));
        }
    }
    // The size of every letter must agree across operands; ellipsis
    // dimensions broadcast.
    let mut sizes: std::collections::BTreeMap<Label, u32> = Default::default();
    for o in &operands {
        for (&l, &d) in o.labels.iter().zip(&im.desc(o.id).shape.0) {
            let s = sizes.entry(l).or_insert(d);
            if *s != d {
                if l >= ELLIPSIS && (*s == 1 || d == 1) {
                    *s = (*s).max(d);
                } else {
                    return invalid(format!("equation {equation:?}: label {} has sizes {} and {d}", label_name(l), *s));
                }
            }
        }
    }

    for o in &mut operands {
        take_diagonals(im, cx, o, &equation)?;
    }
    let mut acc = operands.remove(0);
    let rest = operands;
    for (k, next) in rest.into_iter().enumerate() {
        // Labels still needed by the operands after `next` are kept.
        let mut keep = output.clone();
        for t in terms.iter().skip(k + 2) {
            keep.extend(t.letters.iter().copied());
        }
        let keep = keep_for_rest(keep, &terms, k + 2, &ellipsis_labels);
        acc = contract(im, cx, acc, next, &keep, &equation)?;
    }
    // Sum what the output does not keep, then order the axes.
    sum_labels_not_in(im, cx, &mut acc, &output)?;
    let perm: Vec<u32> = output
        .iter()
        .map(|l| acc.labels.iter().position(|m| m == l).expect("every output label is in an operand") as u32)
        .collect();
    let y = transpose(im, cx, acc.id, perm)?;
    Ok(vec![y.into()])
}

/// `keep` plus the ellipsis labels when an operand from `from` on has an
/// ellipsis (its dimensions are still to be combined).
fn keep_for_rest(mut keep: Vec<Label>, terms: &[Term], from: usize, ellipsis: &[Label]) -> Vec<Label> {
    if terms.iter().skip(from).any(|t| t.ellipsis.is_some()) {
        keep.extend(ellipsis.iter().copied());
    }
    keep
}

/// Replaces each repeated label of `o` by its diagonal: the two axes are
/// moved last, flattened, and every `(n + 1)`-th element is sliced out.
fn take_diagonals(im: &mut Importer, cx: &NodeCx, o: &mut Labelled, equation: &str) -> NodeResult<()> {
    loop {
        let repeated =
            (0..o.labels.len()).find_map(|q| o.labels[..q].iter().position(|&l| l == o.labels[q]).map(|p| (p, q)));
        let Some((p, q)) = repeated else { return Ok(()) };
        let dims = im.desc(o.id).shape.0.clone();
        let n = dims[p];
        if dims[q] != n {
            return invalid(format!(
                "equation {equation:?}: the diagonal of label {} has sizes {n} and {}",
                label_name(o.labels[p]),
                dims[q]
            ));
        }
        let others: Vec<usize> = (0..dims.len()).filter(|&i| i != p && i != q).collect();
        let perm: Vec<u32> = others.iter().chain([&p, &q]).map(|&i| i as u32).collect();
        let moved = transpose(im, cx, o.id, perm)?;
        let Some(square) = n.checked_mul(n) else {
            return unsupported(format!(
                "equation {equation:?}: the diagonal's {n} x {n} elements overflow a dimension"
            ));
        };
        let mut flat: Vec<u32> = others.iter().map(|&i| dims[i]).collect();
        flat.push(square);
        let flat_id = reshape(im, cx, moved, flat.clone())?;
        let rank = flat.len();
        let mut starts = vec![0; rank];
        let mut sizes = flat.clone();
        let mut strides = vec![1; rank];
        starts[rank - 1] = 0;
        sizes[rank - 1] = square;
        strides[rank - 1] = n + 1;
        o.id = im.op1(cx, Op::Slice { input: flat_id, starts, sizes, strides: Some(strides) })?;
        let label = o.labels[p];
        o.labels = others.iter().map(|&i| o.labels[i]).chain([label]).collect();
    }
}

/// Sums `o` over its labels that are not in `keep`.
fn sum_labels_not_in(im: &mut Importer, cx: &NodeCx, o: &mut Labelled, keep: &[Label]) -> NodeResult<()> {
    let axes: Vec<u32> = (0..o.labels.len()).filter(|&i| !keep.contains(&o.labels[i])).map(|i| i as u32).collect();
    if axes.is_empty() {
        return Ok(());
    }
    require_type(im, cx, o.id, reduce_types(ReduceOp::Sum))?;
    o.id = reduce_op(im, cx, ReduceOp::Sum, o.id, axes.clone(), false)?;
    o.labels = o.labels.iter().enumerate().filter(|(i, _)| !axes.contains(&(*i as u32))).map(|(_, &l)| l).collect();
    Ok(())
}

/// Contracts `a` and `b` into one operand whose labels are those of either
/// that `keep` lists: one batched `matmul`, with the labels of both that
/// `keep` lists as its batch, those of both it does not as its inner
/// dimension, and the rest as rows (from `a`) and columns (from `b`).
fn contract(
    im: &mut Importer,
    cx: &NodeCx,
    mut a: Labelled,
    mut b: Labelled,
    keep: &[Label],
    equation: &str,
) -> NodeResult<Labelled> {
    // A label only one side has and nobody needs is summed first.
    let keep_a: Vec<Label> = keep.iter().chain(&b.labels).copied().collect();
    let keep_b: Vec<Label> = keep.iter().chain(&a.labels).copied().collect();
    sum_labels_not_in(im, cx, &mut a, &keep_a)?;
    sum_labels_not_in(im, cx, &mut b, &keep_b)?;
    for o in [&a, &b] {
        if !im.desc(o.id).data_type.is_float() {
            return unsupported(format!(
                "equation {equation:?}: contracting two {} operands (kiln's matmul takes float32 and float16)",
                im.desc(o.id).data_type
            ));
        }
    }
    let batch: Vec<Label> = a.labels.iter().copied().filter(|l| b.labels.contains(l) && keep.contains(l)).collect();
    let inner: Vec<Label> = a.labels.iter().copied().filter(|l| b.labels.contains(l) && !keep.contains(l)).collect();
    let rows: Vec<Label> = a.labels.iter().copied().filter(|l| !b.labels.contains(l)).collect();
    let cols: Vec<Label> = b.labels.iter().copied().filter(|l| !a.labels.contains(l)).collect();
    let (da, db) = (im.desc(a.id).shape.0.clone(), im.desc(b.id).shape.0.clone());
    let size = |o: &Labelled, d: &[u32], l: Label| d[o.labels.iter().position(|&m| m == l).expect("label of o")];
    for &l in &inner {
        if size(&a, &da, l) != size(&b, &db, l) {
            return unsupported(format!(
                "equation {equation:?}: summing label {} over sizes {} and {} (broadcast) is not supported",
                label_name(l),
                size(&a, &da, l),
                size(&b, &db, l)
            ));
        }
    }
    let product = |o: &Labelled, d: &[u32], ls: &[Label]| -> NodeResult<u32> {
        ls.iter()
            .try_fold(1u32, |p, &l| p.checked_mul(size(o, d, l)))
            .map_or_else(|| unsupported(format!("equation {equation:?}: a flattened dimension exceeds 2^32 - 1")), Ok)
    };
    let (m, k, n) = (product(&a, &da, &rows)?, product(&a, &da, &inner)?, product(&b, &db, &cols)?);
    let position = |o: &Labelled, l: &Label| o.labels.iter().position(|m| m == l).expect("label of o") as u32;

    let perm_a: Vec<u32> = batch.iter().chain(&rows).chain(&inner).map(|l| position(&a, l)).collect();
    let a2 = transpose(im, cx, a.id, perm_a)?;
    let mut shape_a: Vec<u32> = batch.iter().map(|&l| size(&a, &da, l)).collect();
    shape_a.extend([m, k]);
    let a2 = reshape(im, cx, a2, shape_a)?;

    let perm_b: Vec<u32> = batch.iter().chain(&inner).chain(&cols).map(|l| position(&b, l)).collect();
    let b2 = transpose(im, cx, b.id, perm_b)?;
    let mut shape_b: Vec<u32> = batch.iter().map(|&l| size(&b, &db, l)).collect();
    shape_b.extend([k, n]);
    let b2 = reshape(im, cx, b2, shape_b)?;

    let product = im.op1(cx, Op::Matmul { a: a2, b: b2 })?;
    let mut shape: Vec<u32> = batch.iter().map(|&l| size(&a, &da, l).max(size(&b, &db, l))).collect();
    shape.extend(rows.iter().map(|&l| size(&a, &da, l)));
    shape.extend(cols.iter().map(|&l| size(&b, &db, l)));
    let id = reshape(im, cx, product, shape)?;
    Ok(Labelled { id, labels: batch.into_iter().chain(rows).chain(cols).collect() })
}
