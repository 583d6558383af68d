//! Memory planning: arena offsets for scratch buffers.
//!
//! A scratch buffer is live from the first kernel that touches it to the
//! last one (inclusive; aliases are the same buffer, so they share its
//! range). Buffers are placed in order of their first use. A buffer that
//! an elementwise Map writes over one of its inputs ([`writes_in_place`]:
//! the input dies at that Map and is read element for element where the
//! output is written) takes that input's offset; any other buffer goes to
//! the lowest [`ALIGNMENT`]-aligned offset where it overlaps no buffer
//! whose live range overlaps its own (first fit). A buffer whose last use
//! is before another's first use gives its space back.
//!
//! A [`Kernel::Host`] reads and writes whole buffers like any other kernel
//! (its inputs and outputs are live at it) and never writes in place.
//!
//! So two buffers live at the same kernel share memory only as such an
//! in-place pair; [`check_plan`] accepts exactly those overlaps. Only
//! scratch buffers are planned: graph inputs, outputs and constants have
//! memory of their own and are never written over.

use kiln_ir::kernel::{BufferId, BufferKind, Kernel, Program};

use crate::fuse::{flat_form, injective};

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
    let (mut v, w) = kernel.reads_writes();
    v.extend(w);
    v
}

fn align(n: usize) -> usize {
    n.div_ceil(ALIGNMENT) * ALIGNMENT
}

/// Whether kernel `k` may write its output over scratch buffer `input`:
/// whether planning may give the two the same arena offset although both
/// are live at `k`. `ranges` are the program's [`live_ranges`].
///
/// True exactly when all of these hold:
/// * kernel `k` is a [`Kernel::Map`] (never a [`Kernel::Host`] or any
///   other kind) whose output buffer is not `input`,
///   and `input` and the output are both scratch buffers (graph inputs,
///   outputs and constants never share memory);
/// * `k` is the last kernel that touches `input` and the first that
///   touches the output, so the two are live together at `k` only;
/// * the two hold the same number of elements of the same size in bytes
///   (the data types may differ: a cast from f32 to i32 qualifies);
/// * the output access is unguarded and injective over the domain, and
///   the domain has as many indices as the output has elements: `k`
///   writes every element exactly once;
/// * `k` does not read its output, and every access of `k` to `input` is
///   unguarded and reaches, at every index, the element the output access
///   writes at that index (the same flat offset, size-1 axes aside): no
///   broadcasting, transposing, shifting or padding.
///
/// Then every byte of `input` is read only at the one index that writes
/// the same bytes of the output. A backend that reads an index's inputs
/// before it writes that index's output computes the same result as with
/// separate memory, whatever order it visits the indices in and however it
/// splits them among threads.
pub fn writes_in_place(program: &Program, ranges: &[Option<(usize, usize)>], k: usize, input: BufferId) -> bool {
    let Some(Kernel::Map { domain, inputs, out, .. }) = program.kernels.get(k) else { return false };
    let (Some(a), Some(o)) = (program.buffers.get(input.0 as usize), program.buffers.get(out.buffer.0 as usize)) else {
        return false;
    };
    let scratch = |kind: &BufferKind| matches!(kind, BufferKind::Scratch { .. });
    let range = |id: BufferId| ranges.get(id.0 as usize).copied().flatten();
    if out.buffer == input
        || !scratch(&a.kind)
        || !scratch(&o.kind)
        || range(input).is_none_or(|(_, last)| last != k)
        || range(out.buffer).is_none_or(|(first, _)| first != k)
        || a.len != o.len
        || a.data_type.byte_size() != o.data_type.byte_size()
        || out.guard.is_some()
        || domain.iter().try_fold(1usize, |n, &d| n.checked_mul(d)) != Some(o.len)
    {
        return false;
    }
    let written = flat_form(out, domain);
    if !injective(&written, domain) {
        return false;
    }
    let mut reads_input = false;
    for i in inputs {
        if i.buffer == out.buffer {
            return false;
        }
        if i.buffer == input {
            if i.guard.is_some() || flat_form(i, domain) != written {
                return false;
            }
            reads_input = true;
        }
    }
    reads_input
}

/// Assigns every scratch buffer its arena offset and sets
/// `program.arena_bytes` (see the module documentation). Scratch buffers
/// no kernel touches get offset 0.
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
    // Placed buffers still live: (offset, aligned size, last use, buffer).
    let mut active: Vec<(usize, usize, usize, usize)> = Vec::new();
    let mut arena = 0usize;
    for (first, last, i) in order {
        active.retain(|&(_, _, end, _)| end >= first);
        let size = align(program.buffers[i].byte_len().max(1));
        // An input this Map may write over, already placed (it dies here).
        let shared = match &program.kernels[first] {
            Kernel::Map { inputs, out, .. } if out.buffer.0 as usize == i => inputs.iter().find_map(|a| {
                let n = active.iter().position(|e| e.3 == a.buffer.0 as usize)?;
                writes_in_place(program, &ranges, first, a.buffer).then_some(n)
            }),
            _ => None,
        };
        let offset = match shared {
            Some(n) => active.swap_remove(n).0,
            None => {
                active.sort_unstable();
                let mut offset = 0usize;
                for &(o, s, _, _) in &active {
                    if offset + size <= o {
                        break;
                    }
                    offset = offset.max(o + s);
                }
                offset
            }
        };
        active.push((offset, size, last, i));
        arena = arena.max(offset + size);
        program.buffers[i].kind = BufferKind::Scratch { offset };
    }
    program.arena_bytes = arena;
}

/// Checks a plan: every scratch buffer is aligned and inside the arena, and
/// two scratch buffers whose live ranges overlap share no byte, except an
/// input and the output of a Map that [`writes_in_place`], at the same
/// offset.
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
    // `input` dies at the kernel that writes `out` over it, in place.
    let in_place = |input: usize, out: usize| {
        let Some((_, last)) = ranges[input] else { return false };
        matches!(&program.kernels[last], Kernel::Map { out: o, .. } if o.buffer.0 as usize == out)
            && writes_in_place(program, &ranges, last, BufferId(input as u32))
    };
    for (n, &(i, lo, hi, (f, l))) in placed.iter().enumerate() {
        for &(j, lo2, hi2, (f2, l2)) in &placed[n + 1..] {
            let live_together = f <= l2 && f2 <= l;
            let share_bytes = lo < hi2 && lo2 < hi;
            if live_together && share_bytes && !(lo == lo2 && (in_place(i, j) || in_place(j, i))) {
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
    use kiln_ir::kernel::{Access, BinaryFn, Expr, ExprNode, UnaryFn, ValueId, eval};
    use kiln_ir::{Tensor, Values};

    /// A chain `in -> s0 -> s1 -> ... -> out` of `neg` Maps over `len`
    /// elements, each reading its input through `read` (the identity, or
    /// reversed), plus extra reads: `reads[k]` lists scratch buffers kernel
    /// `k` also reads.
    fn chain_with(len: usize, scratch: usize, reads: &[(usize, usize)], reversed: bool) -> Program {
        let mut p = Program::default();
        let input = p.add_buffer(BufferKind::Input("x".into()), DataType::Float32, len);
        let s: Vec<BufferId> =
            (0..scratch).map(|_| p.add_buffer(BufferKind::Scratch { offset: 0 }, DataType::Float32, len)).collect();
        let out = p.add_buffer(BufferKind::Output("y".into()), DataType::Float32, len);
        let mut chain = vec![input];
        chain.extend(&s);
        chain.push(out);
        let read = |b: BufferId| {
            if reversed {
                Access { buffer: b, shape: vec![len], base: vec![len as isize - 1], coef: vec![vec![-1]], guard: None }
            } else {
                Access::identity(b, &[len])
            }
        };
        for k in 0..chain.len() - 1 {
            let mut inputs = vec![read(chain[k])];
            for &(kernel, buffer) in reads {
                if kernel == k {
                    inputs.push(Access::identity(s[buffer], &[len]));
                }
            }
            let mut expr = Expr::load(0);
            expr.push(ExprNode::Unary(UnaryFn::Neg, ValueId(0)));
            p.kernels.push(Kernel::Map { domain: vec![len], inputs, expr, out: Access::identity(chain[k + 1], &[len]) });
        }
        p
    }

    fn chain(len: usize, scratch: usize, reads: &[(usize, usize)]) -> Program {
        chain_with(len, scratch, reads, false)
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
    fn a_chain_of_elementwise_maps_runs_in_one_slot() {
        // 10 floats = 40 bytes, aligned to 64. Every Map writes over its
        // input, which dies there.
        let mut p = chain(10, 5, &[]);
        plan(&mut p);
        check_plan(&p).unwrap();
        assert_eq!(offsets(&p), [0; 5]);
        assert_eq!(p.arena_bytes, 64);
        p.validate().unwrap();
        // Reading in reverse order is not in place: first fit ping-pongs
        // between two slots, twice the arena.
        let mut q = chain_with(10, 5, &[], true);
        plan(&mut q);
        check_plan(&q).unwrap();
        assert_eq!(offsets(&q), [0, 64, 0, 64, 0]);
        assert_eq!(q.arena_bytes, 128);
        // Both compute the same thing: -(-(...x)) six times, reversed or not.
        let x: Vec<f32> = (0..10).map(|i| i as f32 - 4.5).collect();
        let xt = Tensor::from_f32([10], &x).unwrap();
        for (program, want) in [(&p, x.clone()), (&q, x.clone())] {
            let got = eval(program, &[("x", &xt)]).unwrap().remove(0).1;
            let Values::Float(got) = got.values() else { panic!() };
            let got: Vec<f32> = got.iter().map(|&v| v as f32).collect();
            assert_eq!(got, want);
        }
    }

    #[test]
    fn a_long_lived_buffer_keeps_its_space() {
        // s0 is read again by the last kernel (which writes the output):
        // it stays live throughout and is never written over; s1..s3 share
        // one slot in place.
        let mut p = chain(16, 4, &[(4, 0)]);
        plan(&mut p);
        check_plan(&p).unwrap();
        assert_eq!(offsets(&p), [0, 64, 64, 64]);
        assert_eq!(p.arena_bytes, 2 * 64);
    }

    #[test]
    fn the_checker_finds_overlaps_and_misalignment() {
        let mut p = chain(10, 2, &[]);
        plan(&mut p);
        assert_eq!(offsets(&p), [0, 0], "in place");
        check_plan(&p).unwrap();
        // The in-place pair anywhere else, together: still fine.
        p.buffers[1].kind = BufferKind::Scratch { offset: 64 };
        p.buffers[2].kind = BufferKind::Scratch { offset: 64 };
        p.arena_bytes = 128;
        check_plan(&p).unwrap();
        // The in-place pair at different, overlapping offsets (128 bytes
        // each, 64 apart): rejected.
        let mut q = chain(32, 2, &[]);
        plan(&mut q);
        q.arena_bytes = 192;
        q.buffers[2].kind = BufferKind::Scratch { offset: 64 };
        assert!(check_plan(&q).unwrap_err().contains("overlaps"));
        // Not in place (reversed reads): s0 and s1 are both live at kernel 1.
        let mut p = chain_with(10, 2, &[], true);
        plan(&mut p);
        p.buffers[2].kind = BufferKind::Scratch { offset: 0 };
        assert!(check_plan(&p).unwrap_err().contains("overlaps"));
        p.buffers[2].kind = BufferKind::Scratch { offset: 32 };
        assert!(check_plan(&p).unwrap_err().contains("multiple of 64"));
        p.buffers[2].kind = BufferKind::Scratch { offset: 128 };
        assert!(check_plan(&p).unwrap_err().contains("past the"));
    }

    /// `x -> a` (a copy), `b = neg(a)` as a host kernel, `b -> y`: 16
    /// floats each.
    fn host_in_the_middle() -> Program {
        use kiln_ir::kernel::{HostKernel, HostOperand};
        use kiln_ir::{Op, OperandDescriptor, OperandId, UnaryOp};
        let mut p = Program::default();
        let x = p.add_buffer(BufferKind::Input("x".into()), DataType::Float32, 16);
        let a = p.add_buffer(BufferKind::Scratch { offset: 0 }, DataType::Float32, 16);
        let b = p.add_buffer(BufferKind::Scratch { offset: 0 }, DataType::Float32, 16);
        let y = p.add_buffer(BufferKind::Output("y".into()), DataType::Float32, 16);
        let copy = |from: BufferId, to: BufferId| Kernel::Map {
            domain: vec![16],
            inputs: vec![Access::identity(from, &[16])],
            expr: Expr::load(0),
            out: Access::identity(to, &[16]),
        };
        let operand = |buffer| HostOperand { buffer, desc: OperandDescriptor::new(DataType::Float32, [4, 4]) };
        let host = Kernel::Host(HostKernel {
            op: Op::Unary { kind: UnaryOp::Neg, input: OperandId(0) },
            inputs: vec![operand(a)],
            outputs: vec![operand(b)],
        });
        p.kernels = vec![copy(x, a), host, copy(b, y)];
        p
    }

    #[test]
    fn host_kernels_keep_their_buffers_live_and_never_write_in_place() {
        let mut p = host_in_the_middle();
        plan(&mut p);
        check_plan(&p).unwrap();
        let ranges = live_ranges(&p);
        assert_eq!(ranges[1..3], [Some((0, 1)), Some((1, 2))]);
        // `a` dies at the host kernel, which reads it element for element
        // where it writes `b`, but `b` gets memory of its own.
        assert!(!writes_in_place(&p, &ranges, 1, BufferId(1)));
        assert_eq!(offsets(&p), [0, 64]);
        let x: Vec<f32> = (0..16).map(|i| i as f32 - 7.5).collect();
        let got = eval(&p, &[("x", &Tensor::from_f32([16], &x).unwrap())]).unwrap().remove(0).1.to_f32_vec();
        assert_eq!(got, x.iter().map(|v| -v).collect::<Vec<_>>());
        // The same two at one offset: the checker refuses it.
        p.buffers[2].kind = BufferKind::Scratch { offset: 0 };
        assert!(check_plan(&p).unwrap_err().contains("overlaps"));
    }

    #[test]
    fn first_fit_reuses_a_gap_between_live_buffers() {
        // Sizes 64, 128, 64 bytes: a (k0..k1), b (k1..k3), c (k2..k2) fits
        // where a was. b is twice a's size, so not written over a.
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

    /// `x -> a` (a copy, `a` of type `at`), then kernel 1: `b = f(a, ...)`
    /// over `domain` reading `a` through `read` (and `extra` accesses), then
    /// `b -> y`, with kernel 2 also reading `a` when `a_later`.
    struct Pair {
        at: DataType,
        a_len: usize,
        bt: DataType,
        b_len: usize,
        domain: Vec<usize>,
        read: Access,
        extra: Vec<Access>,
        out: Option<Access>,
        a_later: bool,
    }

    const A: BufferId = BufferId(1);
    const B: BufferId = BufferId(2);

    impl Pair {
        /// The plain case: `b[i, j] = a[i, j] + a[i, j]` over a 4x6 domain, f32.
        fn new() -> Self {
            Pair {
                at: DataType::Float32,
                a_len: 24,
                bt: DataType::Float32,
                b_len: 24,
                domain: vec![4, 6],
                read: Access::identity(A, &[4, 6]),
                extra: vec![],
                out: None,
                a_later: false,
            }
        }

        fn program(&self) -> Program {
            let mut p = Program::default();
            let x = p.add_buffer(BufferKind::Input("x".into()), self.at, self.a_len);
            assert_eq!(p.add_buffer(BufferKind::Scratch { offset: 0 }, self.at, self.a_len), A);
            assert_eq!(p.add_buffer(BufferKind::Scratch { offset: 0 }, self.bt, self.b_len), B);
            let y = p.add_buffer(BufferKind::Output("y".into()), self.bt, self.b_len);
            let c = p.add_buffer(BufferKind::Constant(Tensor::from_f32([6], &[1.0; 6]).unwrap()), DataType::Float32, 6);
            let z = p.add_buffer(BufferKind::Output("z".into()), self.at, self.a_len);
            assert_eq!(c, BufferId(4));
            let copy = |from: BufferId, to: BufferId, n: usize| Kernel::Map {
                domain: vec![n],
                inputs: vec![Access::identity(from, &[n])],
                expr: Expr::load(0),
                out: Access::identity(to, &[n]),
            };
            p.kernels.push(copy(x, A, self.a_len));
            let mut inputs = vec![self.read.clone(), self.read.clone()];
            inputs.extend(self.extra.iter().cloned());
            let mut expr = Expr::load(0);
            let v1 = expr.push(ExprNode::Load(1));
            expr.push(ExprNode::Binary(BinaryFn::Add, ValueId(0), v1));
            let out = self.out.clone().unwrap_or_else(|| Access::identity(B, &self.domain));
            p.kernels.push(Kernel::Map { domain: self.domain.clone(), inputs, expr, out });
            p.kernels.push(copy(B, y, self.b_len));
            if self.a_later {
                p.kernels.push(copy(A, z, self.a_len));
            }
            p.validate().unwrap();
            p
        }

        /// Whether kernel 1 writes `b` over `a`; checks that planning does
        /// exactly that and that the checker accepts the sharing only then.
        #[track_caller]
        fn in_place(&self) -> bool {
            let mut p = self.program();
            let legal = writes_in_place(&p, &live_ranges(&p), 1, A);
            plan(&mut p);
            check_plan(&p).unwrap();
            let offset = |id: BufferId| match p.buffer(id).kind {
                BufferKind::Scratch { offset } => offset,
                _ => unreachable!(),
            };
            let (a, b) = (offset(A), offset(B));
            assert_eq!(a == b, legal, "planned\n{p}");
            // Force them together: accepted exactly when legal.
            p.buffers[B.0 as usize].kind = BufferKind::Scratch { offset: a };
            p.arena_bytes = p.arena_bytes.max(a + p.buffer(B).byte_len());
            assert_eq!(check_plan(&p).is_ok(), legal, "forced\n{p}");
            legal
        }
    }

    #[test]
    fn a_map_writes_over_an_input_it_reads_element_for_element() {
        assert!(Pair::new().in_place());
        // The same element through a different shape (a reshape), and size-1
        // axes walked by one access only (a depthwise conv's bias Map).
        let mut c = Pair::new();
        c.read = Access { buffer: A, shape: vec![24], base: vec![0], coef: vec![vec![6, 1]], guard: None };
        assert!(c.in_place());
        let mut c = Pair::new();
        c.domain = vec![1, 4, 6];
        c.read = Access::identity(A, &[1, 4, 6]);
        c.out = Some(Access { buffer: B, shape: vec![4, 6], base: vec![0, 0], coef: vec![vec![0, 1, 0], vec![0, 0, 1]], guard: None });
        assert!(c.in_place());
        // A cast between types of one size; another input broadcast.
        let mut c = Pair::new();
        c.bt = DataType::Int32;
        c.extra = vec![Access { buffer: BufferId(4), shape: vec![6], base: vec![0], coef: vec![vec![0, 1]], guard: None }];
        assert!(c.in_place());
        // Transposed alike on both sides: still element for element.
        let mut c = Pair::new();
        let t = |b| Access { buffer: b, shape: vec![6, 4], base: vec![0, 0], coef: vec![vec![0, 1], vec![1, 0]], guard: None };
        c.read = t(A);
        c.out = Some(t(B));
        assert!(c.in_place());
    }

    #[test]
    fn a_map_does_not_write_over_other_inputs() {
        // Broadcast: a[0, j] for every row (a still has 24 elements).
        let mut c = Pair::new();
        c.read = Access { buffer: A, shape: vec![4, 6], base: vec![0, 0], coef: vec![vec![0, 0], vec![0, 1]], guard: None };
        assert!(!c.in_place(), "broadcast");
        // Transposed: a[j, i] written to b[i, j].
        let mut c = Pair::new();
        c.domain = vec![6, 6];
        c.a_len = 36;
        c.b_len = 36;
        c.read = Access { buffer: A, shape: vec![6, 6], base: vec![0, 0], coef: vec![vec![0, 1], vec![1, 0]], guard: None };
        assert!(!c.in_place(), "transposed");
        // Reversed: a[23 - i] written to b[i].
        let mut c = Pair::new();
        c.domain = vec![24];
        c.read = Access { buffer: A, shape: vec![24], base: vec![23], coef: vec![vec![-1]], guard: None };
        assert!(!c.in_place(), "reversed");
        // Element sizes differ (f32 -> f16), however the counts match.
        let mut c = Pair::new();
        c.bt = DataType::Float16;
        assert!(!c.in_place(), "different element size");
        // a is read again after kernel 1.
        let mut c = Pair::new();
        c.a_later = true;
        assert!(!c.in_place(), "input still live");
        // A guarded read (padding), even where it never leaves the shape.
        let mut c = Pair::new();
        c.read.guard = Some(0.0);
        assert!(!c.in_place(), "guarded");
        // The domain writes 24 of the output's 30 elements.
        let mut c = Pair::new();
        c.a_len = 30;
        c.b_len = 30;
        assert!(!c.in_place(), "partly written output");
        // A write that is not injective: b[j] for every row i, 24 times over
        // the first 6 elements (the reads alike).
        let mut c = Pair::new();
        let row = |b| Access { buffer: b, shape: vec![24], base: vec![0], coef: vec![vec![0, 1]], guard: None };
        c.read = row(A);
        c.out = Some(row(B));
        assert!(!c.in_place(), "not injective");
    }

    #[test]
    fn only_scratch_buffers_are_written_over() {
        let c = Pair::new();
        let mut p = c.program();
        // Kernel 2 copies b into output y: b is scratch, y is not.
        assert!(!writes_in_place(&p, &live_ranges(&p), 2, B));
        // Kernel 0 reads graph input x.
        assert!(!writes_in_place(&p, &live_ranges(&p), 0, BufferId(0)));
        // Make a an output: it is not scratch, b gets its own space.
        p.buffers[A.0 as usize].kind = BufferKind::Output("a".into());
        assert!(!writes_in_place(&p, &live_ranges(&p), 1, A));
        // Not a Map.
        assert!(!writes_in_place(&p, &live_ranges(&p), 7, A));
    }
}
