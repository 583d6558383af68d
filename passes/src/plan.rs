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
                return Err(format!(
                    "b{i} ends at {} past the {}-byte arena",
                    offset + b.byte_len(),
                    program.arena_bytes
                ));
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

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_ir::DataType;
    use kiln_ir::kernel::Expr;

    /// A chain `in -> s0 -> s1 -> ... -> out` of copy Maps over `len`
    /// elements, plus extra reads: `reads[k]` lists scratch buffers kernel
    /// `k` also reads.
    fn chain(len: usize, scratch: usize, reads: &[(usize, usize)]) -> Program {
        let mut p = Program::default();
        let input = p.add_buffer(BufferKind::Input("x".into()), DataType::Float32, len);
        let s: Vec<BufferId> =
            (0..scratch).map(|_| p.add_buffer(BufferKind::Scratch { offset: 0 }, DataType::Float32, len)).collect();
        let out = p.add_buffer(BufferKind::Output("y".into()), DataType::Float32, len);
        let mut chain = vec![input];
        chain.extend(&s);
        chain.push(out);
        for k in 0..chain.len() - 1 {
            let mut inputs = vec![Access::identity(chain[k], &[len])];
            for &(kernel, buffer) in reads {
                if kernel == k {
                    inputs.push(Access::identity(s[buffer], &[len]));
                }
            }
            p.kernels.push(Kernel::Map {
                domain: vec![len],
                inputs,
                expr: Expr::load(0),
                out: Access::identity(chain[k + 1], &[len]),
            });
        }
        p
    }

    fn offsets(p: &Program) -> Vec<usize> {
        p.buffers
            .iter()
            .filter_map(|b| match b.kind {
                BufferKind::Scratch { offset } => Some(offset),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_chain_ping_pongs_between_two_slots() {
        // 10 floats = 40 bytes, aligned to 64.
        let mut p = chain(10, 5, &[]);
        plan(&mut p);
        check_plan(&p).unwrap();
        assert_eq!(offsets(&p), [0, 64, 0, 64, 0]);
        assert_eq!(p.arena_bytes, 128);
        p.validate().unwrap();
    }

    #[test]
    fn a_long_lived_buffer_keeps_its_space() {
        // s0 is read again by the last kernel (which writes the output):
        // it stays live throughout, the others share the rest.
        let mut p = chain(16, 4, &[(4, 0)]);
        plan(&mut p);
        check_plan(&p).unwrap();
        let o = offsets(&p);
        assert_eq!(o[0], 0);
        assert!(o[1..].iter().all(|&x| x != 0), "{o:?}");
        assert_eq!(p.arena_bytes, 3 * 64);
    }

    #[test]
    fn the_checker_finds_overlaps_and_misalignment() {
        let mut p = chain(10, 2, &[]);
        plan(&mut p);
        // s0 and s1 are both live at kernel 1: force them together.
        p.buffers[2].kind = BufferKind::Scratch { offset: 0 };
        assert!(check_plan(&p).unwrap_err().contains("overlaps"));
        p.buffers[2].kind = BufferKind::Scratch { offset: 32 };
        assert!(check_plan(&p).unwrap_err().contains("multiple of 64"));
        p.buffers[2].kind = BufferKind::Scratch { offset: 128 };
        assert!(check_plan(&p).unwrap_err().contains("past the"));
    }

    #[test]
    fn first_fit_reuses_a_gap_between_live_buffers() {
        // Sizes 64, 128, 64 bytes: a (k0..k1), b (k1..k3), c (k2..k2) fits where a was.
        let mut p = Program::default();
        let x = p.add_buffer(BufferKind::Input("x".into()), DataType::Float32, 16);
        let a = p.add_buffer(BufferKind::Scratch { offset: 0 }, DataType::Float32, 16);
        let b = p.add_buffer(BufferKind::Scratch { offset: 0 }, DataType::Float32, 32);
        let c = p.add_buffer(BufferKind::Scratch { offset: 0 }, DataType::Float32, 16);
        let y = p.add_buffer(BufferKind::Output("y".into()), DataType::Float32, 16);
        let copy = |from: BufferId, to: BufferId, n: usize| Kernel::Map {
            domain: vec![n],
            inputs: vec![Access::identity(from, &[n])],
            expr: Expr::load(0),
            out: Access::identity(to, &[n]),
        };
        p.kernels = vec![copy(x, a, 16), copy(a, b, 16), copy(x, c, 16), copy(b, y, 16)];
        plan(&mut p);
        check_plan(&p).unwrap();
        assert_eq!(offsets(&p), [0, 64, 0]);
        assert_eq!(p.arena_bytes, 192);
        assert_eq!(live_ranges(&p)[b.0 as usize], Some((1, 3)));
    }
}
