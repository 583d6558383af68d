//! Whether two accesses of one kernel may touch the same bytes: the
//! question every fast path asks before it reorders loads and stores.
//! Different buffers overlap where planning placed them in overlapping
//! arena ranges (a Map written in place over its input); the same buffer
//! overlaps only where the two accesses' element ranges meet (a kernel
//! may read one part of a buffer and write another: a concat's later part
//! computed from an earlier one, see `kiln_passes::views`).

use kiln_ir::kernel::{Access, BufferKind, Program};

/// Whether `a` (indexed by a domain of extents `a_domain`) and `b` (by
/// `b_domain`) may touch a common byte.
pub(crate) fn may_overlap(program: &Program, a: &Access, a_domain: &[usize], b: &Access, b_domain: &[usize]) -> bool {
    if a.buffer != b.buffer {
        let (x, y) = (program.buffer(a.buffer), program.buffer(b.buffer));
        return match (&x.kind, &y.kind) {
            (BufferKind::Scratch { offset: p }, BufferKind::Scratch { offset: q }) => {
                *p < q + y.byte_len() && *q < p + x.byte_len()
            }
            _ => false,
        };
    }
    let (lo_a, hi_a) = a.element_range(a_domain);
    let (lo_b, hi_b) = b.element_range(b_domain);
    lo_a <= hi_b && lo_b <= hi_a
}
