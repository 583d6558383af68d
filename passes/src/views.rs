//! Copy elision: copies that only move elements between a whole buffer and
//! a contiguous part of another disappear, the whole buffer becoming a
//! *view* of that part: every access to it is re-expressed as an access to
//! the other buffer at the view's offset.
//!
//! Two shapes of copy qualify, both a [`Kernel::Map`] whose expression is
//! its one input's load, unguarded on both sides, between buffers of one
//! data type, reading and writing the same flat offsets up to a constant
//! shift over a contiguous range of elements:
//!
//! * **Into a part** (a concat's input): copies from scratch buffer S into
//!   one buffer D (scratch or a graph output), all with the same shift,
//!   together reading every element of S exactly once. S becomes the view
//!   of D at that shift; its writers write into D. No other kernel may
//!   write that part of D.
//! * **Out of a part** (a split's or slice's output): a copy that writes
//!   every element of scratch buffer D, its only writer, from a part of S.
//!   D becomes the view of S; no kernel after the copy may write that part
//!   of S.
//!
//! An access to the view keeps its coordinates where it can (so kernels
//! keep the shapes their fast paths recognise): the view's first axis
//! longer than 1 is widened to the other buffer's length over the axes
//! after it, and the shift is added to that coordinate (a guarded access
//! only when that coordinate provably stays inside the view, so that its
//! guard still acts at the view's borders); an unguarded access whose
//! shift is not a whole number of rows reads the other buffer flat. A
//! view touched by a kernel without accesses (Gather, Host) stays a copy.
//!
//! No arithmetic changes: the same elements are read and written, once
//! fewer. A kernel may then read one part of a buffer and write another
//! (a concat's later input computed from an earlier one); code generators
//! compare the parts, not the buffers, before they assume aliasing.
//! Run after fusion (fusion already folds a copy into a producer whose
//! output nothing else reads) and before planning.

use std::collections::BTreeSet;

use kiln_ir::kernel::{Access, BufferId, BufferKind, ExprNode, Kernel, Program};

use crate::fuse::{flat_form, injective, remove_buffers};

/// One copy removed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct View {
    /// The copy kernels removed, in the kernel numbering at the time.
    pub kernels: Vec<usize>,
    /// The buffer that became a view, and the buffer it is a view of, both
    /// numbered as before the view's buffer was removed.
    pub buffer: BufferId,
    pub of: BufferId,
    /// The view's first element in `of`.
    pub offset: isize,
}

/// Removes every copy that can become a view (see the module
/// documentation), until none is left.
pub fn elide_copies(program: &mut Program) -> Vec<View> {
    let mut views = Vec::new();
    while let Some((view, changed)) = next_view(program) {
        for (j, kernel) in changed {
            program.kernels[j] = kernel;
        }
        for &k in view.kernels.iter().rev() {
            program.kernels.remove(k);
        }
        remove_buffers(program, &BTreeSet::from([view.buffer]));
        views.push(view);
    }
    views
}

/// A pure copy: `(kernel, source, destination, shift, source range)`.
struct Copy {
    kernel: usize,
    from: BufferId,
    to: BufferId,
    /// Destination offset minus source offset, in elements.
    shift: isize,
    /// The source elements read, `[lo, hi]`.
    range: (isize, isize),
}

fn copy_at(program: &Program, k: usize) -> Option<Copy> {
    let Kernel::Map { domain, inputs, expr, out } = &program.kernels[k] else { return None };
    let [src] = inputs.as_slice() else { return None };
    if expr.nodes != [ExprNode::Load(0)] || src.guard.is_some() || out.guard.is_some() || src.buffer == out.buffer {
        return None;
    }
    if program.buffer(src.buffer).data_type != program.buffer(out.buffer).data_type {
        return None;
    }
    let (read, written) = (flat_form(src, domain), flat_form(out, domain));
    let n: usize = domain.iter().product();
    if read.1 != written.1 || !injective(&written, domain) || n == 0 {
        return None;
    }
    let range = src.element_range(domain);
    // Injective over n indices within n consecutive elements: contiguous.
    if range.1 - range.0 + 1 != n as isize {
        return None;
    }
    Some(Copy { kernel: k, from: src.buffer, to: out.buffer, shift: written.0 - read.0, range })
}

fn is_scratch(program: &Program, b: BufferId) -> bool {
    matches!(program.buffer(b).kind, BufferKind::Scratch { .. })
}

/// Whether a kernel other than `except` (and, if `after`, only one after
/// it) writes an element of `buffer` in `[lo, hi]`.
fn written_by_others(program: &Program, buffer: BufferId, (lo, hi): (isize, isize), except: &[usize], after: Option<usize>) -> bool {
    program.kernels.iter().enumerate().any(|(j, kernel)| {
        if except.contains(&j) || after.is_some_and(|k| j <= k) || !kernel.reads_writes().1.contains(&buffer) {
            return false;
        }
        let mut kernel = kernel.clone();
        let Some(accesses) = kernel.accesses_mut() else { return true };
        accesses.iter().any(|(a, domain, writes)| {
            *writes && a.buffer == buffer && {
                let r = a.element_range(domain);
                r.0 <= hi && lo <= r.1
            }
        })
    })
}

/// The next view to make, and the kernels that change (index, new kernel).
fn next_view(program: &Program) -> Option<(View, Vec<(usize, Kernel)>)> {
    let copies: Vec<Copy> = (0..program.kernels.len()).filter_map(|k| copy_at(program, k)).collect();
    // Into a part: the copies out of one scratch buffer, grouped by
    // destination and shift, that read all of it.
    for c in &copies {
        if !is_scratch(program, c.from) {
            continue;
        }
        let to_kind = &program.buffer(c.to).kind;
        if !matches!(to_kind, BufferKind::Scratch { .. } | BufferKind::Output(_)) {
            continue;
        }
        let group: Vec<&Copy> = copies.iter().filter(|d| d.from == c.from && d.to == c.to && d.shift == c.shift).collect();
        if group.iter().any(|d| d.kernel < c.kernel) {
            continue; // the group was tried from its first copy
        }
        let mut ranges: Vec<(isize, isize)> = group.iter().map(|d| d.range).collect();
        ranges.sort_unstable();
        let len = program.buffer(c.from).len as isize;
        let partition = ranges.first().is_some_and(|r| r.0 == 0)
            && ranges.last().is_some_and(|r| r.1 == len - 1)
            && ranges.windows(2).all(|w| w[0].1 + 1 == w[1].0);
        let kernels: Vec<usize> = group.iter().map(|d| d.kernel).collect();
        let part = (c.shift, c.shift + len - 1);
        if partition
            && !written_by_others(program, c.to, part, &kernels, None)
            && let Some(done) = make_view(program, &kernels, c.from, c.to, c.shift)
        {
            return Some(done);
        }
    }
    // Out of a part: a copy that writes all of a scratch buffer.
    for c in &copies {
        let whole = (c.range.0 + c.shift, c.range.1 + c.shift) == (0, program.buffer(c.to).len as isize - 1);
        if !whole || !is_scratch(program, c.to) || written_by_others(program, c.to, (isize::MIN, isize::MAX), &[c.kernel], None) {
            continue;
        }
        if written_by_others(program, c.from, c.range, &[c.kernel], Some(c.kernel)) {
            continue;
        }
        if let Some(done) = make_view(program, &[c.kernel], c.to, c.from, -c.shift) {
            return Some(done);
        }
    }
    None
}

/// Makes `view` the view of `of` at element `offset`, the copy kernels
/// `copies` to be removed, if every access to `view` can be re-expressed:
/// the view and the kernels that change.
fn make_view(program: &Program, copies: &[usize], view: BufferId, of: BufferId, offset: isize) -> Option<(View, Vec<(usize, Kernel)>)> {
    let of_len = program.buffer(of).len;
    let mut changed = Vec::new();
    for (j, kernel) in program.kernels.iter().enumerate() {
        let (reads, writes) = kernel.reads_writes();
        if copies.contains(&j) || !(reads.contains(&view) || writes.contains(&view)) {
            continue;
        }
        let mut kernel = kernel.clone();
        for (access, domain, _) in kernel.accesses_mut()? {
            if access.buffer == view {
                *access = remap(access, &domain, of, of_len, offset)?;
            }
        }
        changed.push((j, kernel));
    }
    let mut removed: Vec<usize> = copies.to_vec();
    removed.sort_unstable();
    Some((View { kernels: removed, buffer: view, of, offset }, changed))
}

/// `a` (an access to a view, over `domain`) as an access to `of` (`len`
/// elements), the view starting at element `offset` of it: coordinates
/// kept, with the first axis longer than 1 widened, where the offset is a
/// whole number of its rows and a guard would still act at the view's
/// borders; else flat, if unguarded.
fn remap(a: &Access, domain: &[usize], of: BufferId, len: usize, offset: isize) -> Option<Access> {
    let rank = a.shape.len();
    if rank > 0 {
        let axis = a.shape.iter().position(|&d| d > 1).unwrap_or(rank - 1);
        let inner: usize = a.shape[axis + 1..].iter().product();
        let whole_rows = inner > 0 && offset % inner as isize == 0 && len.is_multiple_of(inner);
        let (lo, hi) = a.coordinate_range(axis, domain);
        let stays_inside = lo >= 0 && hi < a.shape[axis] as isize;
        if whole_rows && (a.guard.is_none() || stays_inside) {
            let mut b = a.clone();
            b.buffer = of;
            b.shape[axis] = len / inner;
            b.base[axis] += offset / inner as isize;
            return Some(b);
        }
    }
    if a.guard.is_some() {
        return None;
    }
    let (base, strides) = a.linear(domain.len());
    Some(Access { buffer: of, shape: vec![len], base: vec![base + offset], coef: vec![strides], guard: None })
}

