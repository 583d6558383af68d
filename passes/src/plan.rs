//! Memory planning: arena offsets for scratch buffers.
//!
//! A scratch buffer is live from the first kernel that touches it to the
//! last one (inclusive; aliases are the same buffer, so they share its
//! range). Buffers are placed in order of their first use, each at the
//! lowest [`ALIGNMENT`]-aligned offset where it overlaps no buffer whose
//! live range overlaps its own (first fit); a buffer whose last use is
//! before another's first use gives its space back. Two buffers one kernel
//! touches are both live at that kernel, so a kernel never writes over
//! its own inputs.

use kiln_ir::kernel::{Access, BufferId, BufferKind, Kernel, Program};

/// The alignment, in bytes, of every scratch buffer's offset.
pub const ALIGNMENT: usize = 64;

/// The kernels each buffer is live over: `(first, last)` kernel index, or
/// `None` for a buffer no kernel touches.
pub fn live_ranges(program: &Program) -> Vec<Option<(usize, usize)>> {
    let mut ranges: Vec<Option<(usize, usize)>> = vec![None; program.buffers.len()];
    for (k, kernel) in program.kernels.iter().enumerate() {
        for id in touched(kernel) {
            if let Some(slot) = ranges.get_mut(id.0 as usize) {
                *slot = Some(match *slot {
                    None => (k, k),
                    Some((first, _)) => (first, k),
                });
            }
        }
    }
    ranges
}

/// Every buffer a kernel reads or writes.
fn touched(kernel: &Kernel) -> Vec<BufferId> {
    let ids = |accesses: &[Access]| accesses.iter().map(|a| a.buffer).collect::<Vec<_>>();
    match kernel {
        Kernel::Map { inputs, out, .. } | Kernel::Reduce { inputs, out, .. } => {
            let mut v = ids(inputs);
            v.push(out.buffer);
            v
        }
        Kernel::Gemm { a, b, epilogue_inputs, out, .. } => {
            let mut v = ids(epilogue_inputs);
            v.extend([a.buffer, b.buffer, out.buffer]);
            v
        }
        Kernel::Gather { input, indices, out, .. } => vec![*input, *indices, *out],
    }
}

fn align(n: usize) -> usize {
    n.div_ceil(ALIGNMENT) * ALIGNMENT
}

/// Assigns every scratch buffer its arena offset and sets
/// `program.arena_bytes`. Scratch buffers no kernel touches get offset 0.
pub fn plan(program: &mut Program) {
    let ranges = live_ranges(program);
    let mut order: Vec<(usize, usize, usize)> = Vec::new(); // (first, last, buffer)
    for (i, b) in program.buffers.iter_mut().enumerate() {
        if let BufferKind::Scratch { offset } = &mut b.kind {
            *offset = 0;
            if let Some((first, last)) = ranges[i] {
                order.push((first, last, i));
            }
        }
    }
    order.sort_unstable();
    // Placed buffers still live: (offset, aligned size, last use).
    let mut active: Vec<(usize, usize, usize)> = Vec::new();
    let mut arena = 0usize;
    for (first, last, i) in order {
        active.retain(|&(_, _, end)| end >= first);
        active.sort_unstable();
        let size = align(program.buffers[i].byte_len().max(1));
        let mut offset = 0usize;
        for &(o, s, _) in &active {
            if offset + size <= o {
                break;
            }
            offset = offset.max(o + s);
        }
        active.push((offset, size, last));
        arena = arena.max(offset + size);
        program.buffers[i].kind = BufferKind::Scratch { offset };
    }
    program.arena_bytes = arena;
}

/// Checks a plan: every scratch buffer is aligned and inside the arena, and
/// no two scratch buffers whose live ranges overlap share a byte.
pub fn check_plan(program: &Program) -> Result<(), String> {
    let ranges = live_ranges(program);
    let mut placed = Vec::new();
    for (i, b) in program.buffers.iter().enumerate() {
        if let BufferKind::Scratch { offset } = b.kind {
            let Some(range) = ranges[i] else { continue };
            if offset % ALIGNMENT != 0 {
                return Err(format!("b{i} is at offset {offset}, not a multiple of {ALIGNMENT}"));
            }
            if offset + b.byte_len() > program.arena_bytes {
                return Err(format!("b{i} ends at {} past the {}-byte arena", offset + b.byte_len(), program.arena_bytes));
            }
            placed.push((i, offset, offset + b.byte_len(), range));
        }
    }
    for (n, &(i, lo, hi, (f, l))) in placed.iter().enumerate() {
        for &(j, lo2, hi2, (f2, l2)) in &placed[n + 1..] {
            let live_together = f <= l2 && f2 <= l;
            let share_bytes = lo < hi2 && lo2 < hi;
            if live_together && share_bytes {
                return Err(format!(
                    "b{i} [{lo}, {hi}) live over kernels {f}..={l} overlaps b{j} [{lo2}, {hi2}) live over {f2}..={l2}"
                ));
            }
        }
    }
    Ok(())
}
