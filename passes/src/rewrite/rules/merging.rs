//! Operators that read one input with different constant weights merge
//! into one wider operator (TENSAT's multi-pattern rewrites):
//!
//! * `merge-matmul`: sibling products `matmul(x, w_i)` (2-D constant
//!   `w_i` of one depth) become `slice(matmul(x, concat(w_i, axis 1)))`;
//! * `merge-conv`: sibling convolutions `conv2d(x, f_i, b_i)` of one
//!   geometry become `slice(conv2d(x, concat(f_i), concat(b_i)))` over the
//!   channel axis, and the same activation of each of them (one operand,
//!   elementwise, equal options: relu, clamp, silu, ...)
//!   `slice(act(conv2d(...)))`, so that the activation stays in the merged
//!   kernel's epilogue.
//!
//! Every member's class gets its slice of one merged e-node that all of
//! them share. Extraction switches the members of such a group together
//! (see `extract`), and takes the merged form only where the cost model
//! finds the whole group cheaper: one launch and one read of `x` instead
//! of several, against the slices, which cost nothing where they are a
//! contiguous part (a channel range of a batch-1 NCHW result, which the
//! views pass turns into a view) and a copy elsewhere.
//!
//! Members are the first [`MAX_MEMBERS`] siblings in class order, the
//! merged weights at most [`MAX_MERGED_BYTES`], so a wide fan-out costs a
//! bounded amount of work per rule application.

use egg::Id;
use kiln_ir::infer::channel_axis;
use kiln_ir::{Conv2dFilterLayout, Op, OperandDescriptor, Shape, Tensor};

use super::{op, Rule};
use crate::rewrite::cost::elementwise_ns;
use crate::rewrite::egraph::{constant, desc, slot, EGraph, ENode, OpTag, Term};

pub const RULES: &[Rule] = &[
    Rule { name: "merge-matmul", apply: merge_matmul },
    Rule { name: "merge-conv", apply: merge_conv },
];

/// Siblings merged at most.
pub const MAX_MEMBERS: usize = 8;
/// Bytes of merged weights at most.
pub const MAX_MERGED_BYTES: usize = 64 << 20;

/// One operator of a group: its class, its operand classes.
struct Member {
    class: Id,
    children: Vec<Id>,
}

/// The operator e-nodes reading class `x`, one per class (the first that
/// `accept` takes), in class order: `(class, children)`.
fn readers_of(egraph: &EGraph, x: Id, accept: impl Fn(&Op, &[Id]) -> bool) -> Vec<Member> {
    let x = egraph.find(x);
    let mut classes: Vec<Id> = egraph[x].parents().map(|p| egraph.find(p)).collect();
    classes.sort();
    classes.dedup();
    classes
        .into_iter()
        .filter_map(|class| {
            let (_, children) = egraph[class].nodes.iter().filter_map(op).find(|(o, c)| c.first() == Some(&x) && accept(o, c))?;
            Some(Member { class, children: children.to_vec() })
        })
        .collect()
}

/// Whether an operator e-node that `pred` accepts reads class `id`.
fn read_by(egraph: &EGraph, id: Id, pred: impl Fn(&Op) -> bool) -> bool {
    let id = egraph.find(id);
    egraph[id].parents().any(|p| egraph[p].nodes.iter().filter_map(op).any(|(o, c)| c.contains(&id) && pred(o)))
}

/// The members of `class`'s group among `all` (the first [`MAX_MEMBERS`]
/// whose results no slice reads: a merged operator, read by its parts'
/// slices, never joins a group again; and, unless `activated`, no
/// elementwise operator reads: its activation would leave the merged
/// kernel's epilogue for a pass of its own), if `class` is one of them
/// and it has another.
fn group(egraph: &EGraph, all: Vec<Member>, class: Id, activated: bool) -> Option<Vec<Member>> {
    let members: Vec<Member> = all
        .into_iter()
        .filter(|m| {
            !read_by(egraph, m.class, |o| {
                matches!(o, Op::Slice { .. }) || (!activated && elementwise_ns(o).is_some())
            })
        })
        .take(MAX_MEMBERS)
        .collect();
    (members.len() >= 2 && members.iter().any(|m| m.class == class)).then_some(members)
}

/// `parts` concatenated along `axis` (all of one data type and rank, equal
/// but for `axis`), byte for byte.
fn concat(parts: &[&Tensor], axis: usize) -> Option<Tensor> {
    let first = parts.first()?;
    let t = first.data_type();
    let dims = first.shape().dims();
    let size = t.byte_size();
    let outer: usize = dims[..axis].iter().map(|&d| d as usize).product();
    let inner: usize = dims[axis + 1..].iter().map(|&d| d as usize).product::<usize>() * size;
    let mut shape = dims.to_vec();
    shape[axis] = parts.iter().map(|p| p.shape().dims()[axis]).sum();
    let total: usize = parts.iter().map(|p| p.bytes().len()).sum();
    if total > MAX_MERGED_BYTES {
        return None;
    }
    let mut bytes = Vec::with_capacity(total);
    for o in 0..outer {
        for p in parts {
            let chunk = p.shape().dims()[axis] as usize * inner;
            bytes.extend_from_slice(p.bytes().get(o * chunk..(o + 1) * chunk)?);
        }
    }
    Tensor::from_bytes(OperandDescriptor::new(t, Shape::new(shape)), bytes).ok()
}

/// `merged` sliced to member `k`'s part along `axis`: the parts are the
/// members' extents along it, in order.
fn part_of(egraph: &EGraph, merged: Term, members: &[Member], k: usize, axis: usize) -> Term {
    let dims = desc(egraph, members[k].class).shape.dims().to_vec();
    let offset: u32 = members[..k].iter().map(|m| desc(egraph, m.class).shape.dims()[axis]).sum();
    let mut starts = vec![0; dims.len()];
    starts[axis] = offset;
    Term::Op(Op::Slice { input: slot(0), starts, sizes: dims, strides: None }, vec![merged])
}

/// `matmul(x, w)` with `w` a 2-D float constant, and the other such
/// products of `x` with weights of the same depth and type.
fn merge_matmul(egraph: &EGraph, node: &ENode) -> Option<Term> {
    let (Op::Matmul { .. }, &[x, w]) = op(node)? else { return None };
    let weights = |w: Id| constant(egraph, w).filter(|t| t.data_type().is_float() && t.shape().rank() == 2);
    let like = weights(w)?.desc().clone();
    let members = readers_of(egraph, x, |o, c| {
        matches!(o, Op::Matmul { .. })
            && weights(c[1]).is_some_and(|t| t.data_type() == like.data_type && t.shape().dims()[0] == like.shape.dims()[0])
    });
    let this = egraph.lookup(node.clone())?;
    let members = group(egraph, members, this, false)?;
    let parts: Vec<&Tensor> = members.iter().map(|m| constant(egraph, m.children[1])).collect::<Option<_>>()?;
    let merged = Term::Op(Op::Matmul { a: slot(0), b: slot(1) }, vec![Term::Class(x), Term::Constant(concat(&parts, 1)?)]);
    let k = members.iter().position(|m| m.class == this)?;
    Some(part_of(egraph, merged, &members, k, desc(egraph, this).shape.rank() - 1))
}

/// The filter axis that runs over output channels.
fn filter_out_axis(layout: Conv2dFilterLayout) -> usize {
    match layout {
        Conv2dFilterLayout::Oihw | Conv2dFilterLayout::Ohwi => 0,
        Conv2dFilterLayout::Hwio | Conv2dFilterLayout::Ihwo => 3,
    }
}

/// The convolutions of `x` (ungrouped, float constant filter and bias)
/// with `like`'s geometry and a filter like `filter` but for its output
/// channels.
fn conv_readers(egraph: &EGraph, x: Id, like: &kiln_ir::Conv2dOptions, filter: &OperandDescriptor) -> Vec<Member> {
    let axis = filter_out_axis(like.filter_layout);
    let same_filter = |d: &OperandDescriptor| {
        d.data_type == filter.data_type
            && d.shape.rank() == 4
            && (0..4).all(|j| j == axis || d.shape.dims()[j] == filter.shape.dims()[j])
    };
    let float_constant = |id: Id| constant(egraph, id).is_some_and(|t| t.data_type() == filter.data_type);
    readers_of(egraph, x, |o, c| {
        let Op::Conv2d { options, .. } = o else { return false };
        let geometry = |o: &kiln_ir::Conv2dOptions| {
            (o.padding, o.strides, o.dilations, o.groups, o.input_layout, o.filter_layout)
        };
        geometry(options) == geometry(like)
            && options.groups == 1
            && float_constant(c[1])
            && same_filter(desc(egraph, c[1]))
            && (options.bias.is_none() || float_constant(c[2]))
    })
}

/// The merged convolution of `members` over `x`: filters concatenated
/// along their output axis, biases (zeros where a member has none) along
/// theirs.
fn merged_conv(egraph: &EGraph, x: Id, members: &[Member], like: &kiln_ir::Conv2dOptions) -> Option<Term> {
    let filters: Vec<&Tensor> = members.iter().map(|m| constant(egraph, m.children[1])).collect::<Option<_>>()?;
    let filter = concat(&filters, filter_out_axis(like.filter_layout))?;
    let mut options = like.clone();
    let mut terms = vec![Term::Class(x), Term::Constant(filter)];
    if members.iter().any(|m| m.children.len() > 2) {
        let t = filters[0].data_type();
        let mut biases = Vec::new();
        for (m, f) in members.iter().zip(&filters) {
            let channels = f.shape().dims()[filter_out_axis(like.filter_layout)];
            biases.push(match m.children.get(2) {
                Some(&b) => constant(egraph, b)?.clone(),
                None => Tensor::from_bytes(
                    OperandDescriptor::new(t, Shape::new(vec![channels])),
                    vec![0; channels as usize * t.byte_size()],
                )
                .ok()?,
            });
        }
        let refs: Vec<&Tensor> = biases.iter().collect();
        terms.push(Term::Constant(concat(&refs, 0)?));
        options.bias = Some(slot(2));
    } else {
        options.bias = None;
    }
    Some(Term::Op(Op::Conv2d { input: slot(0), filter: slot(1), options }, terms))
}

/// A convolution's class `id`: its input, options and filter descriptor.
fn conv_of(egraph: &EGraph, id: Id) -> Option<(Id, kiln_ir::Conv2dOptions, OperandDescriptor)> {
    egraph[id].nodes.iter().filter_map(op).find_map(|(o, c)| match o {
        Op::Conv2d { options, .. } if options.groups == 1 => Some((c[0], options.clone(), desc(egraph, c[1]).clone())),
        _ => None,
    })
}

/// Sibling convolutions, or the same activation of sibling convolutions.
fn merge_conv(egraph: &EGraph, node: &ENode) -> Option<Term> {
    let (o, children) = op(node)?;
    let this = egraph.lookup(node.clone())?;
    let axis = |options: &kiln_ir::Conv2dOptions| channel_axis(options.input_layout);
    if let Op::Conv2d { options, .. } = o {
        let (x, filter) = (children[0], desc(egraph, children[1]).clone());
        let members = group(egraph, conv_readers(egraph, x, options, &filter), this, false)?;
        let k = members.iter().position(|m| m.class == this)?;
        let merged = merged_conv(egraph, x, &members, options)?;
        return Some(part_of(egraph, merged, &members, k, axis(options)));
    }
    // act(conv2d(x, ..)): the members are the convolutions of x that the
    // same activation (equal with slots) reads.
    let &[c] = children else { return None };
    elementwise_ns(o)?;
    let tag = OpTag::new(o.clone());
    let (x, options, filter) = conv_of(egraph, c)?;
    let convs = conv_readers(egraph, x, &options, &filter);
    let acts: Vec<Member> = convs
        .iter()
        .filter_map(|conv| {
            let act = readers_of(egraph, conv.class, |a, _| OpTag::new(a.clone()) == tag).into_iter().next()?;
            Some((conv, act))
        })
        .map(|(conv, act)| Member { class: act.class, children: conv.children.clone() })
        .collect();
    let members = group(egraph, acts, this, true)?;
    let k = members.iter().position(|m| m.class == this)?;
    let merged = Term::Op(o.clone(), vec![merged_conv(egraph, x, &members, &options)?]);
    Some(part_of(egraph, merged, &members, k, axis(&options)))
}
