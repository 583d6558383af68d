//! Operator fusion on the kernel IR: a kernel that writes a scratch buffer
//! read by exactly one later elementwise [`Kernel::Map`] absorbs that Map.
//!
//! Three fusions, repeated until nothing changes:
//!
//! * **Gemm epilogue** ([`FusionKind::GemmEpilogue`]): the Map's expression
//!   is appended to the Gemm's epilogue (its loads of the Gemm's output
//!   become the epilogue's result), its other inputs become epilogue inputs
//!   and the Gemm writes the Map's output. This folds conv + bias + relu /
//!   clamp, gemm + bias + activation and residual adds into one Gemm.
//! * **Map into Map** ([`FusionKind::MapMap`]): the consumer's expression is
//!   appended to the producer's.
//! * **Reduce finish** ([`FusionKind::ReduceFinish`]): like a Gemm
//!   epilogue, over the Reduce's kept axes: the Map's expression is
//!   appended to the finish, its other inputs become finish inputs. This
//!   folds a depthwise or direct convolution's bias and activation, or a
//!   pooled result's scaling, into the reduction.
//!
//! A [`Kernel::Host`] is never fused, as producer or as consumer: it runs
//! an operator on whole buffers, outside the generated code. It still
//! counts as a kernel that touches its buffers, so a scratch buffer a host
//! kernel reads or writes is never fused away.
//!
//! # When
//! A producer P (Gemm, Reduce or Map) and a consumer Map C fuse when all hold:
//! * P's output buffer S is scratch (not a graph output), and P and C are
//!   the only kernels that touch S; P writes it, C only reads it.
//! * S is float32, so storing and reloading it is exact (or P is a Map
//!   whose result is a comparison, 0 or 1 in any type, or P and C are
//!   both plain copies of one data type: the fused copy moves the same
//!   bytes), and a copy through S does not become a byte copy that skips
//!   S's rounding.
//! * C's domain is P's (for a Gemm: `[batch.., m, n]`; for a Reduce: its
//!   kept axes) with some axes split
//!   into consecutive sub-axes of the same total size (a reshape), size-1
//!   axes aside; every access of C is re-expressible over P's domain
//!   (affine in the merged index) — an unguarded access by its flat offset,
//!   a guarded one coordinate by coordinate.
//! * Every read of S by C is unguarded and, over P's domain, hits the
//!   element P writes at the same index, and P's write is injective.
//! * For a Gemm: C's output is float32 (the fast Gemm path needs it).
//! * The fused kernel can sit at C's position (no kernel in between writes
//!   a buffer P reads) or else at P's (no kernel in between touches C's
//!   output or writes C's other inputs), and it does not read its output.
//!
//! Fusion substitutes values and never reorders arithmetic: the fused
//! program computes the same f32 operations in the same order, so results
//! are bit for bit those of the unfused program. S is removed from the
//! program (buffers are renumbered).
//!
//! Fusion reasons about buffers, not memory: run it before planning, which
//! may then place a fused Map's output over an input that dies there
//! ([`crate::writes_in_place`]).

use std::collections::BTreeSet;

use kiln_ir::DataType;
use kiln_ir::kernel::{Access, BufferId, BufferKind, Expr, ExprNode, Kernel, Program, ValueId};

/// Which fusion happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FusionKind {
    /// A Map folded into a Gemm's epilogue.
    GemmEpilogue,
    /// A Map folded into the Map that produced its input.
    MapMap,
    /// A Map folded into a Reduce's finish.
    ReduceFinish,
}

/// One fusion decision, in the kernel numbering of the program at the time
/// it was made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fusion {
    pub kind: FusionKind,
    /// The producer's kernel index.
    pub producer: usize,
    /// The consumer Map's kernel index.
    pub consumer: usize,
    /// The intermediate buffer that disappeared (numbered before removal).
    pub buffer: BufferId,
    /// Where the fused kernel stands: `producer` or `consumer` (the other
    /// index is removed, and the kernels after it move down by one).
    pub at: usize,
}

/// Fuses `program` in place (see the module documentation) and returns the
/// decisions made, in order. Run it before planning.
///
/// Gemm and Reduce producers go first: a Map that reads both a Gemm's
/// output and a Map's (a residual add of a padded or transposed value)
/// becomes the Gemm's epilogue, in registers, rather than part of the
/// other Map.
pub fn fuse(program: &mut Program) -> Vec<Fusion> {
    let mut done = Vec::new();
    let mut removed = BTreeSet::new();
    'again: loop {
        for maps in [false, true] {
            for p in 0..program.kernels.len() {
                if matches!(program.kernels[p], Kernel::Map { .. }) != maps {
                    continue;
                }
                if let Some(f) = try_fuse(program, p) {
                    removed.insert(f.buffer);
                    done.push(f);
                    continue 'again;
                }
            }
        }
        break;
    }
    remove_buffers(program, &removed);
    done
}


fn touches(kernel: &Kernel, id: BufferId) -> bool {
    let (r, w) = kernel.reads_writes();
    w.contains(&id) || r.contains(&id)
}

fn try_fuse(program: &mut Program, p: usize) -> Option<Fusion> {
    let (kind, pdomain, pout) = match &program.kernels[p] {
        Kernel::Gemm { domain, out, .. } => (FusionKind::GemmEpilogue, domain[..domain.len() - 1].to_vec(), out),
        Kernel::Reduce { domain, reduced, out, .. } => {
            (FusionKind::ReduceFinish, domain[..domain.len() - reduced].to_vec(), out)
        }
        Kernel::Map { domain, out, .. } => (FusionKind::MapMap, domain.clone(), out),
        _ => return None,
    };
    let s = pout.buffer;
    if !matches!(program.buffer(s).kind, BufferKind::Scratch { .. }) || pout.guard.is_some() {
        return None;
    }
    let users: Vec<usize> =
        (0..program.kernels.len()).filter(|&k| k != p && touches(&program.kernels[k], s)).collect();
    let [c] = users[..] else { return None };
    if c < p || program.kernels[p].reads_writes().0.contains(&s) {
        return None;
    }
    let Kernel::Map { domain: cdomain, inputs: cinputs, expr: cexpr, out: cout } = &program.kernels[c] else {
        return None;
    };
    if cout.buffer == s {
        return None;
    }
    // Exact round trip through S.
    let s_type = program.buffer(s).data_type;
    if s_type != DataType::Float32 && !truth_values(&program.kernels[p]) {
        let Kernel::Map { inputs: pinputs, expr: pexpr, .. } = &program.kernels[p] else { return None };
        let copy_of = |e: &Expr, ins: &[Access]| match e.nodes[..] {
            [ExprNode::Load(n)] => Some(ins[n as usize].buffer),
            _ => None,
        };
        let p_copy = copy_of(pexpr, pinputs).map(|b| program.buffer(b).data_type);
        if p_copy != Some(s_type)
            || copy_of(cexpr, cinputs) != Some(s)
            || program.buffer(cout.buffer).data_type != s_type
        {
            return None;
        }
    }
    if kind == FusionKind::GemmEpilogue && program.buffer(cout.buffer).data_type != DataType::Float32 {
        return None;
    }
    let groups = merge_groups(cdomain, &pdomain)?;
    // The write of S, flat over P's domain, must be injective and match
    // every read of S by C.
    let written = flat_form(pout, &pdomain);
    if !injective(&written, &pdomain) {
        return None;
    }
    let mut is_s = Vec::new();
    let mut other = Vec::new();
    for a in cinputs {
        if a.buffer == s {
            if a.guard.is_some() {
                return None;
            }
            let read = flat_form(&regroup(&flatten(a, cdomain.len()), cdomain, &groups)?, &pdomain);
            if read != written {
                return None;
            }
            is_s.push(true);
        } else {
            is_s.push(false);
            other.push(reexpress(a, cdomain, &groups)?);
        }
    }
    let new_out = reexpress(cout, cdomain, &groups)?;
    // Placement.
    let (preads, _) = program.kernels[p].reads_writes();
    if preads.contains(&new_out.buffer) {
        return None;
    }
    let between = &program.kernels[p + 1..c];
    let writes_any = |k: &Kernel, set: &[BufferId]| k.reads_writes().1.iter().any(|w| set.contains(w));
    let other_bufs: Vec<BufferId> = other.iter().map(|a| a.buffer).collect();
    let at = if between.iter().all(|k| !writes_any(k, &preads)) {
        c
    } else if between.iter().all(|k| !touches(k, new_out.buffer) && !writes_any(k, &other_bufs)) {
        p
    } else {
        return None;
    };

    let Kernel::Map { expr: cexpr, .. } = program.kernels[c].clone() else { unreachable!() };
    let mut fused = program.kernels[p].clone();
    match &mut fused {
        Kernel::Gemm { epilogue_inputs: ins, epilogue: e, out, .. }
        | Kernel::Reduce { finish_inputs: ins, finish: e, out, .. }
        | Kernel::Map { inputs: ins, expr: e, out, .. } => {
            let first = ins.len() as u32;
            let mut next = first;
            let numbering: Vec<u32> = is_s
                .iter()
                .map(|&x| {
                    if x {
                        u32::MAX
                    } else {
                        next += 1;
                        next - 1
                    }
                })
                .collect();
            *e = splice(e, &cexpr, &numbering);
            ins.extend(other);
            *out = new_out;
        }
        _ => unreachable!(),
    }
    // A copy from X through an f32 S into a buffer of X's type would become
    // a byte copy, skipping the round trip through f32: keep it apart.
    if let Kernel::Map { inputs, expr, out, .. } = &fused
        && let [ExprNode::Load(n)] = expr.nodes[..]
    {
        let (tx, to) = (program.buffer(inputs[n as usize].buffer).data_type, program.buffer(out.buffer).data_type);
        if tx == to && tx != s_type {
            return None;
        }
    }
    program.kernels[at] = fused;
    program.kernels.remove(if at == c { p } else { c });
    Some(Fusion { kind, producer: p, consumer: c, buffer: s, at })
}

/// `second` evaluated after `first`: `second`'s loads of input `n` become
/// loads of `numbering[n]`, or `first`'s result where that is `u32::MAX`.
fn splice(first: &Expr, second: &Expr, numbering: &[u32]) -> Expr {
    if let ExprNode::Load(n) = second.nodes[second.result().0 as usize]
        && numbering[n as usize] == u32::MAX
    {
        return first.clone();
    }
    let mut e = first.clone();
    let r = first.result();
    let mut map: Vec<ValueId> = Vec::with_capacity(second.nodes.len());
    for node in &second.nodes {
        let m = |v: &ValueId| map[v.0 as usize];
        let id = match node {
            ExprNode::Load(n) if numbering[*n as usize] == u32::MAX => r,
            ExprNode::Load(n) => e.push(ExprNode::Load(numbering[*n as usize])),
            ExprNode::Unary(f, a) => e.push(ExprNode::Unary(*f, m(a))),
            ExprNode::Binary(f, a, b) => e.push(ExprNode::Binary(*f, m(a), m(b))),
            ExprNode::Select(c, a, b) => e.push(ExprNode::Select(m(c), m(a), m(b))),
            n @ (ExprNode::Const(_) | ExprNode::Acc | ExprNode::Count) => e.push(*n),
        };
        map.push(id);
    }
    e
}

/// For each axis of `coarse`, the axes of `fine` it is made of, in order,
/// when `fine` is `coarse` with axes split into consecutive row-major
/// sub-axes (size-1 axes of either may sit anywhere); `None` otherwise.
fn merge_groups(fine: &[usize], coarse: &[usize]) -> Option<Vec<Vec<usize>>> {
    if fine.contains(&0) || coarse.contains(&0) {
        return None;
    }
    let mut axes = (0..fine.len()).filter(|&a| fine[a] != 1).peekable();
    let mut groups = Vec::with_capacity(coarse.len());
    for &d in coarse {
        let mut g = Vec::new();
        let mut size = 1usize;
        while size < d {
            let a = axes.next()?;
            size *= fine[a];
            g.push(a);
        }
        if size != d {
            return None;
        }
        groups.push(g);
    }
    axes.peek().is_none().then_some(groups)
}

/// `a` (over `fine`) as an access over the coarse domain the groups describe,
/// coordinate by coordinate; `None` where a coordinate is not affine in the
/// merged index.
fn regroup(a: &Access, fine: &[usize], groups: &[Vec<usize>]) -> Option<Access> {
    let mut coef = Vec::with_capacity(a.coef.len());
    for row in &a.coef {
        let mut new_row = Vec::with_capacity(groups.len());
        for g in groups {
            let Some(&last) = g.last() else {
                new_row.push(0);
                continue;
            };
            let c = row[last];
            let mut scale = 1isize;
            for &ax in g.iter().rev() {
                if row[ax] != c.checked_mul(scale)? {
                    return None;
                }
                scale = scale.checked_mul(fine[ax] as isize)?;
            }
            new_row.push(c);
        }
        coef.push(new_row);
    }
    Some(Access { coef, ..a.clone() })
}

/// An unguarded access as a rank-1 access by its flat element offset.
fn flatten(a: &Access, rank: usize) -> Access {
    let (off, per_axis) = a.linear(rank);
    Access {
        buffer: a.buffer,
        shape: vec![a.shape.iter().product()],
        base: vec![off],
        coef: vec![per_axis],
        guard: a.guard,
    }
}

/// `a` over the coarse domain: coordinate by coordinate, else (unguarded)
/// by its flat offset, written as the identity access of the coarse domain
/// when it is one.
fn reexpress(a: &Access, fine: &[usize], groups: &[Vec<usize>]) -> Option<Access> {
    if let Some(r) = regroup(a, fine, groups) {
        return Some(r);
    }
    if a.guard.is_some() {
        return None;
    }
    let flat = regroup(&flatten(a, fine.len()), fine, groups)?;
    let coarse: Vec<usize> = groups.iter().map(|g| g.iter().map(|&ax| fine[ax]).product()).collect();
    let identity = Access::identity(flat.buffer, &coarse);
    if flat_form(&flat, &coarse) == flat_form(&identity, &coarse) {
        Some(identity)
    } else {
        Some(flat)
    }
}

/// The flat offset over `domain` with the strides of size-1 axes zeroed
/// (they are never used): two unguarded accesses with equal forms reach the
/// same element at every index of `domain`.
pub(crate) fn flat_form(a: &Access, domain: &[usize]) -> (isize, Vec<isize>) {
    let (off, mut s) = a.linear(domain.len());
    for (x, &d) in s.iter_mut().zip(domain) {
        if d == 1 {
            *x = 0;
        }
    }
    (off, s)
}

/// Whether Map `kernel` computes only 0 and 1 (its result is a
/// comparison): values every data type holds exactly, so storing them in
/// any type and loading them back changes nothing (a one-hot `equal`
/// stored as bool and cast to float32).
fn truth_values(kernel: &Kernel) -> bool {
    use kiln_ir::kernel::BinaryFn::{Equal, Greater, GreaterOrEqual, Lesser, LesserOrEqual};
    let Kernel::Map { expr, .. } = kernel else { return false };
    matches!(expr.nodes.last(), Some(ExprNode::Binary(Equal | Greater | GreaterOrEqual | Lesser | LesserOrEqual, _, _)))
}

/// Whether distinct indices of `domain` reach distinct offsets (a
/// sufficient test: sorted by stride, each stride exceeds the span of the
/// smaller ones).
pub(crate) fn injective(form: &(isize, Vec<isize>), domain: &[usize]) -> bool {
    let mut axes: Vec<(i128, i128)> = form
        .1
        .iter()
        .zip(domain)
        .filter(|(_, d)| **d > 1)
        .map(|(s, d)| ((*s as i128).abs(), *d as i128))
        .collect();
    axes.sort_unstable();
    let mut span = 0i128;
    for (s, d) in axes {
        if s <= span {
            return false;
        }
        span += s * (d - 1);
    }
    true
}

/// Removes the given buffers (no kernel may touch them) and renumbers the
/// rest.
pub(crate) fn remove_buffers(program: &mut Program, removed: &BTreeSet<BufferId>) {
    if removed.is_empty() {
        return;
    }
    let mut new_id = Vec::with_capacity(program.buffers.len());
    let mut next = 0u32;
    for i in 0..program.buffers.len() as u32 {
        if removed.contains(&BufferId(i)) {
            new_id.push(None);
        } else {
            new_id.push(Some(BufferId(next)));
            next += 1;
        }
    }
    let old = std::mem::take(&mut program.buffers);
    program.buffers = old.into_iter().enumerate().filter(|(i, _)| new_id[*i].is_some()).map(|(_, b)| b).collect();
    let mut fix = |id: &mut BufferId| *id = new_id[id.0 as usize].expect("a removed buffer is still used");
    for kernel in &mut program.kernels {
        kernel.for_each_buffer_mut(&mut fix);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_kernels_are_never_fused() {
        use kiln_ir::kernel::{HostKernel, HostOperand};
        use kiln_ir::{Op, OperandDescriptor, OperandId, UnaryOp};
        // x -> s (Map), t = neg(s) (host), u = t + 1 (Map), u -> y (Map):
        // the host kernel is neither producer nor consumer, and s and t stay.
        let mut p = Program::default();
        let x = p.add_buffer(BufferKind::Input("x".into()), DataType::Float32, 8);
        let s = p.add_buffer(BufferKind::Scratch { offset: 0 }, DataType::Float32, 8);
        let t = p.add_buffer(BufferKind::Scratch { offset: 0 }, DataType::Float32, 8);
        let u = p.add_buffer(BufferKind::Scratch { offset: 0 }, DataType::Float32, 8);
        let y = p.add_buffer(BufferKind::Output("y".into()), DataType::Float32, 8);
        let map = |from: BufferId, to: BufferId, plus: f32| {
            let mut expr = Expr::load(0);
            let c = expr.push(ExprNode::Const(plus));
            expr.push(ExprNode::Binary(kiln_ir::kernel::BinaryFn::Add, ValueId(0), c));
            Kernel::Map { domain: vec![8], inputs: vec![Access::identity(from, &[8])], expr, out: Access::identity(to, &[8]) }
        };
        let operand = |buffer| HostOperand { buffer, desc: OperandDescriptor::new(DataType::Float32, [8]) };
        p.kernels = vec![
            map(x, s, 2.0),
            Kernel::Host(HostKernel {
                op: Op::Unary { kind: UnaryOp::Neg, input: OperandId(0) },
                inputs: vec![operand(s)],
                outputs: vec![operand(t)],
            }),
            map(t, u, 1.0),
            map(u, y, 3.0),
        ];
        p.validate().unwrap();
        let decisions = fuse(&mut p);
        // Only the two Maps after the host kernel fuse (through u).
        assert_eq!(decisions.len(), 1);
        assert_eq!((decisions[0].producer, decisions[0].consumer, decisions[0].buffer), (2, 3, u));
        assert_eq!(p.kernels.iter().map(|k| k.kind()).collect::<Vec<_>>(), ["map", "host", "map"]);
        p.validate().unwrap();
        let Kernel::Host(h) = &p.kernels[1] else { unreachable!() };
        assert_eq!((h.inputs[0].buffer, h.outputs[0].buffer), (s, t));
    }

    #[test]
    fn reshapes_merge_consecutive_axes_only() {
        assert_eq!(merge_groups(&[1, 4, 6, 6], &[1, 4, 36]), Some(vec![vec![], vec![1], vec![2, 3]]));
        assert_eq!(merge_groups(&[4, 1, 9], &[4, 9, 1]), Some(vec![vec![0], vec![2], vec![]]));
        assert_eq!(merge_groups(&[1, 2, 72], &[1, 4, 36]), None, "a split the other way");
        assert_eq!(merge_groups(&[6, 4], &[4, 6]), None, "a transpose is not a reshape");
    }

    #[test]
    fn injectivity_needs_strides_beyond_the_smaller_spans() {
        assert!(injective(&(0, vec![36, 1]), &[4, 36]));
        assert!(injective(&(0, vec![0, 1]), &[1, 5]), "size-1 axes do not count");
        assert!(!injective(&(0, vec![0, 1]), &[2, 5]), "a broadcast write");
        assert!(!injective(&(0, vec![3, 1]), &[2, 5]), "overlapping rows");
    }
}
