//! The fast GEMM path against a plain f64 reference, for every feature
//! level this machine runs: edge sizes around every micro-tile shape,
//! sizes over 1000, transposed operands through access coefficients, batch
//! broadcasting through zero coefficients, epilogues (bias, residual,
//! activation, a guarded input), constant (compile-time packed) operands,
//! transposed output, and splitting into tasks.
//!
//! Tolerance: `|got - want| <= (1e-5 + K * 6e-8) * Σ_k |a_mk * b_kn| + 1e-5 * |extra|`
//! where `extra` is what the epilogue adds: relative 1e-5, widened by the
//! worst-case rounding of a K-term f32 sum (K * 2^-24), plus the epilogue's.

mod common;

use common::{f32s, sigmoid_nodes, silu_nodes, to_f32s, Guarded};
use kiln_codegen::cpu::gemm::plan;
use kiln_codegen::cpu::microkernel::Spec;
use kiln_codegen::cpu::{compile, Features, Target};
use kiln_ir::kernel::*;
use kiln_ir::{DataType, Tensor};

/// xorshift64*: deterministic test data without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn value(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }
    fn values(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.value()).collect()
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Epilogue {
    None,
    /// `acc + bias[n]`
    Bias,
    /// `max(acc + bias[n], 0)`
    BiasRelu,
    /// `acc + residual[b, m, n]`, then `tanh` (a helper call per lane)
    ResidualTanh,
    /// `acc * 0.5 + in[m - 1, n]`, guarded (zero outside): the scalar epilogue
    GuardedShift,
    /// `clamp(acc + bias[m], 0, 6)` as the lowering writes relu6 (selects on
    /// compares): the AVX-512 kernels' register epilogue, a bias per row
    /// (per column with the output transposed)
    RowBiasRelu6,
    /// `silu(acc + bias[n])` (`x * sigmoid(x)`, the sigmoid as the
    /// lowering writes it): the AVX-512 kernels' register activation
    ColumnBiasSilu,
    /// `sigmoid(acc + bias[m])`
    RowBiasSigmoid,
}

#[derive(Clone, Debug)]
struct Case {
    batch: Vec<usize>,
    m: usize,
    n: usize,
    k: usize,
    a_trans: bool,
    b_trans: bool,
    /// Operand shared by every batch index (zero batch coefficients).
    a_shared: bool,
    b_shared: bool,
    a_const: bool,
    b_const: bool,
    out_trans: bool,
    epilogue: Epilogue,
}

impl Case {
    fn plain(m: usize, n: usize, k: usize) -> Self {
        Case {
            batch: vec![],
            m,
            n,
            k,
            a_trans: false,
            b_trans: false,
            a_shared: false,
            b_shared: false,
            a_const: false,
            b_const: false,
            out_trans: false,
            epilogue: Epilogue::None,
        }
    }
}

/// An operand's tensor shape and access over the domain `[batch.., m, n, k]`:
/// `dims` are the domain axes of its two matrix dimensions in tensor order.
fn operand(buffer: BufferId, batch: &[usize], shared: bool, dims: [(usize, usize); 2], rank: usize) -> Access {
    let nb = batch.len();
    let mut shape = Vec::new();
    let mut coef = Vec::new();
    if !shared {
        for (j, &d) in batch.iter().enumerate() {
            shape.push(d);
            coef.push((0..rank).map(|a| isize::from(a == j)).collect::<Vec<_>>());
        }
    }
    for (axis, size) in dims {
        shape.push(size);
        coef.push((0..rank).map(|a| isize::from(a == nb + axis)).collect());
    }
    let base = vec![0; shape.len()];
    Access { buffer, shape, base, coef, guard: None }
}

struct Built {
    program: Program,
    /// Buffer contents (inputs; outputs zeroed).
    data: Vec<Vec<f32>>,
    out: BufferId,
}

fn build(case: &Case, rng: &mut Rng) -> Built {
    let Case { m, n, k, .. } = *case;
    let nb = case.batch.len();
    let nbatch: usize = case.batch.iter().product();
    let rank = nb + 3;
    let mut program = Program::default();
    let mut data = Vec::new();
    let mut add = |program: &mut Program, constant: bool, values: Vec<f32>, name: &str| {
        let kind = if constant {
            let t = Tensor::from_f32(vec![values.len() as u32], &values).unwrap();
            BufferKind::Constant(t)
        } else {
            BufferKind::Input(name.into())
        };
        let id = program.add_buffer(kind, DataType::Float32, values.len());
        data.push(values);
        id
    };
    let a_len = if case.a_shared { 1 } else { nbatch } * m * k;
    let b_len = if case.b_shared { 1 } else { nbatch } * k * n;
    let a = add(&mut program, case.a_const, rng.values(a_len), "a");
    let b = add(&mut program, case.b_const, rng.values(b_len), "b");
    // axes: m = 0, n = 1, k = 2 (after the batch axes)
    let a_dims = if case.a_trans { [(2, k), (0, m)] } else { [(0, m), (2, k)] };
    let b_dims = if case.b_trans { [(1, n), (2, k)] } else { [(2, k), (1, n)] };
    let a_access = operand(a, &case.batch, case.a_shared, a_dims, rank);
    let b_access = operand(b, &case.batch, case.b_shared, b_dims, rank);
    let mut epilogue = Expr::default();
    let mut inputs = Vec::new();
    let acc = epilogue.push(ExprNode::Acc);
    match case.epilogue {
        Epilogue::None => {}
        Epilogue::Bias | Epilogue::BiasRelu => {
            let bias = add(&mut program, false, rng.values(n), "bias");
            let mut coef = vec![0; rank - 1];
            coef[nb + 1] = 1;
            inputs.push(Access { buffer: bias, shape: vec![n], base: vec![0], coef: vec![coef], guard: None });
            let x = epilogue.push(ExprNode::Load(0));
            let s = epilogue.push(ExprNode::Binary(BinaryFn::Add, acc, x));
            if case.epilogue == Epilogue::BiasRelu {
                let z = epilogue.push(ExprNode::Const(0.0));
                epilogue.push(ExprNode::Binary(BinaryFn::Max, s, z));
            }
        }
        Epilogue::RowBiasRelu6 => {
            let bias = add(&mut program, false, rng.values(m), "bias");
            let mut coef = vec![0; rank - 1];
            coef[nb] = 1;
            inputs.push(Access { buffer: bias, shape: vec![m], base: vec![0], coef: vec![coef], guard: None });
            let x = epilogue.push(ExprNode::Load(0));
            let mut v = epilogue.push(ExprNode::Binary(BinaryFn::Add, acc, x));
            for (bound, cmp) in [(0.0, BinaryFn::Lesser), (6.0, BinaryFn::Greater)] {
                let c = epilogue.push(ExprNode::Const(bound));
                let p = epilogue.push(ExprNode::Binary(cmp, v, c));
                v = epilogue.push(ExprNode::Select(p, c, v));
            }
        }
        Epilogue::ColumnBiasSilu | Epilogue::RowBiasSigmoid => {
            let per_row = case.epilogue == Epilogue::RowBiasSigmoid;
            let len = if per_row { m } else { n };
            let bias = add(&mut program, false, rng.values(len), "bias");
            let mut coef = vec![0; rank - 1];
            coef[if per_row { nb } else { nb + 1 }] = 1;
            inputs.push(Access { buffer: bias, shape: vec![len], base: vec![0], coef: vec![coef], guard: None });
            let x = epilogue.push(ExprNode::Load(0));
            let v = epilogue.push(ExprNode::Binary(BinaryFn::Add, acc, x));
            if per_row {
                sigmoid_nodes(&mut epilogue, v);
            } else {
                silu_nodes(&mut epilogue, v, false);
            }
        }
        Epilogue::ResidualTanh => {
            let r = add(&mut program, false, rng.values(nbatch * m * n), "residual");
            let mut shape = case.batch.clone();
            shape.extend([m, n]);
            inputs.push(Access::identity(r, &shape));
            let x = epilogue.push(ExprNode::Load(0));
            let s = epilogue.push(ExprNode::Binary(BinaryFn::Add, acc, x));
            epilogue.push(ExprNode::Unary(UnaryFn::Tanh, s));
        }
        Epilogue::GuardedShift => {
            let g = add(&mut program, false, rng.values(m * n), "shifted");
            let mut rows = vec![vec![0; rank - 1], vec![0; rank - 1]];
            rows[0][nb] = 1;
            rows[1][nb + 1] = 1;
            inputs.push(Access { buffer: g, shape: vec![m, n], base: vec![-1, 0], coef: rows, guard: Some(0.0) });
            let half = epilogue.push(ExprNode::Const(0.5));
            let h = epilogue.push(ExprNode::Binary(BinaryFn::Mul, acc, half));
            let x = epilogue.push(ExprNode::Load(0));
            epilogue.push(ExprNode::Binary(BinaryFn::Add, h, x));
        }
    }
    let out = program.add_buffer(BufferKind::Output("out".into()), DataType::Float32, nbatch * m * n);
    data.push(vec![0.0; nbatch * m * n]);
    let out_dims = if case.out_trans { [(1, n), (0, m)] } else { [(0, m), (1, n)] };
    let out_access = operand(out, &case.batch, false, out_dims, rank - 1);
    let mut domain = case.batch.clone();
    domain.extend([m, n, k]);
    program.kernels.push(Kernel::Gemm { domain, a: a_access, b: b_access, epilogue_inputs: inputs, epilogue, out: out_access });
    Built { program, data, out }
}

/// Element at `index` (domain coordinates) of an access, from `data`; the
/// guard's fill outside.
fn element(access: &Access, data: &[f32], index: &[usize]) -> f64 {
    let mut flat = 0isize;
    for j in 0..access.shape.len() {
        let c = access.base[j] + access.coef[j].iter().zip(index).map(|(&c, &i)| c * i as isize).sum::<isize>();
        if c < 0 || c >= access.shape[j] as isize {
            return access.guard.expect("unguarded access in bounds") as f64;
        }
        flat = flat * access.shape[j] as isize + c;
    }
    data[flat as usize] as f64
}

/// The f64 reference: (value, tolerance) per output element in `out`'s layout.
fn reference(built: &Built) -> Vec<(f64, f64)> {
    let Kernel::Gemm { domain, a, b, epilogue_inputs, epilogue, out } = &built.program.kernels[0] else { unreachable!() };
    let rank = domain.len();
    let (m, n, k) = (domain[rank - 3], domain[rank - 2], domain[rank - 1]);
    let batch = &domain[..rank - 3];
    let nbatch: usize = batch.iter().product();
    let data = |id: BufferId| &built.data[id.0 as usize];
    let mut result = vec![(f64::NAN, 0.0); built.data[built.out.0 as usize].len()];
    let mut index = vec![0; rank];
    for flat in 0..nbatch {
        let mut rest = flat;
        for j in (0..batch.len()).rev() {
            index[j] = rest % batch[j];
            rest /= batch[j];
        }
        for i in 0..m {
            for j in 0..n {
                let (mut sum, mut mag) = (0.0, 0.0);
                for p in 0..k {
                    index[rank - 3] = i;
                    index[rank - 2] = j;
                    index[rank - 1] = p;
                    let x = element(a, data(a.buffer), &index) * element(b, data(b.buffer), &index);
                    sum += x;
                    mag += x.abs();
                }
                let outer = &index[..rank - 1];
                let mut values = Vec::new();
                let mut extra = 0.0f64;
                for node in &epilogue.nodes {
                    let v = match *node {
                        ExprNode::Acc => sum,
                        ExprNode::Const(c) => c as f64,
                        ExprNode::Load(l) => {
                            let e = &epilogue_inputs[l as usize];
                            let v = element(e, data(e.buffer), outer);
                            extra += v.abs();
                            v
                        }
                        ExprNode::Binary(BinaryFn::Add, x, y) => values[x.0 as usize] + values[y.0 as usize],
                        ExprNode::Binary(BinaryFn::Mul, x, y) => values[x.0 as usize] * values[y.0 as usize],
                        ExprNode::Binary(BinaryFn::Max, x, y) => f64::max(values[x.0 as usize], values[y.0 as usize]),
                        ExprNode::Binary(BinaryFn::Lesser, x, y) => f64::from(values[x.0 as usize] < values[y.0 as usize]),
                        ExprNode::Binary(BinaryFn::Greater, x, y) => f64::from(values[x.0 as usize] > values[y.0 as usize]),
                        ExprNode::Select(p, t, e) => {
                            if values[p.0 as usize] != 0.0 { values[t.0 as usize] } else { values[e.0 as usize] }
                        }
                        ExprNode::Binary(BinaryFn::Div, x, y) => values[x.0 as usize] / values[y.0 as usize],
                        ExprNode::Unary(UnaryFn::Tanh, x) => f64::tanh(values[x.0 as usize]),
                        ExprNode::Unary(UnaryFn::Abs, x) => values[x.0 as usize].abs(),
                        ExprNode::Unary(UnaryFn::Neg, x) => -values[x.0 as usize],
                        ExprNode::Unary(UnaryFn::Exp, x) => values[x.0 as usize].exp(),
                        other => unreachable!("{other:?}"),
                    };
                    values.push(v);
                }
                let want = *values.last().unwrap();
                let tol = (1e-5 + k as f64 * 6e-8) * mag + 1e-5 * extra + 1e-30;
                let (o, s) = out.linear(rank - 1);
                let at = o + s.iter().zip(outer).map(|(&s, &i)| s * i as isize).sum::<isize>();
                result[at as usize] = (want, tol);
            }
        }
    }
    result
}

/// Runs the kernels as `tasks` tasks with every buffer between guard pages:
/// ending at one with 1 task, starting after one with more (an access past
/// either end faults).
fn run(built: &Built, target: &Target, tasks: u64) -> Vec<f32> {
    let jit = compile(&built.program, target).unwrap();
    let buffers: Vec<Guarded> = built.data.iter().map(|b| Guarded::new(&f32s(b), tasks > 1)).collect();
    let mut scratch = jit.task_scratch(tasks);
    let mut pointers: Vec<*mut u8> = buffers.iter().map(Guarded::ptr).collect();
    pointers.push(scratch.base());
    for kernel in jit.kernels().iter().copied().flatten() {
        for task in 0..tasks {
            unsafe { kernel(pointers.as_ptr(), task, tasks) };
        }
    }
    to_f32s(&buffers[built.out.0 as usize].bytes())
}

fn check(case: &Case, seed: u64, fast: bool) {
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let built = build(case, &mut rng);
    let want = reference(&built);
    for target in Target::host_levels() {
        let spec = Spec::for_features(target.features);
        assert_eq!(plan(&built.program, &built.program.kernels[0], spec).is_some(), fast, "{target} {case:?}: fast path");
        for tasks in [1, 3] {
            let got = run(&built, &target, tasks);
            for (i, (&g, &(w, tol))) in got.iter().zip(&want).enumerate() {
                let err = (g as f64 - w).abs();
                assert!(err <= tol, "{target} {tasks} tasks {case:?}: element {i}: got {g}, want {w} (error {err:e} > {tol:e})");
            }
        }
    }
}

/// Sizes around every micro-tile shape (4x8, 6x16, 8x32) and the k block
/// (256).
#[test]
fn edge_sizes() {
    let ms = [1, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 16, 17, 25];
    let ns = [1, 7, 8, 9, 15, 16, 17, 31, 32, 33, 64, 65];
    let ks = [1, 2, 7, 255, 256, 257];
    let mut seed = 1;
    for &m in &ms {
        for &n in &ns {
            let k = ks[(m + n) % ks.len()];
            seed += 1;
            check(&Case::plain(m, n, k), seed, true);
        }
    }
    for &k in &ks {
        check(&Case::plain(13, 33, k), k as u64, true);
    }
}

#[test]
fn large_sizes() {
    check(&Case::plain(1031, 45, 37), 10, true);
    check(&Case::plain(29, 1100, 61), 11, true);
    check(&Case::plain(17, 23, 1029), 12, true);
    check(&Case { b_const: true, ..Case::plain(100, 1060, 530) }, 13, true);
    // k blocks shortened so that all of N fits one B block (600 = 4 x 150).
    check(&Case::plain(20, 700, 600), 14, true);
    check(&Case { b_const: true, a_const: true, epilogue: Epilogue::Bias, ..Case::plain(20, 700, 600) }, 15, true);
}

#[test]
fn random_shapes_and_layouts() {
    let mut rng = Rng(77);
    for i in 0..40 {
        let epilogue = [Epilogue::None, Epilogue::Bias, Epilogue::BiasRelu, Epilogue::ResidualTanh][rng.below(4)];
        let batch: Vec<usize> = (0..rng.below(3)).map(|_| 1 + rng.below(3)).collect();
        let case = Case {
            batch,
            m: 1 + rng.below(70),
            n: 1 + rng.below(90),
            k: 1 + rng.below(300),
            a_trans: rng.below(2) == 1,
            b_trans: rng.below(2) == 1,
            a_shared: rng.below(3) == 0,
            b_shared: rng.below(2) == 0,
            a_const: rng.below(4) == 0,
            b_const: rng.below(2) == 0,
            out_trans: rng.below(4) == 0,
            epilogue,
        };
        check(&case, 1000 + i, true);
    }
}

#[test]
fn transposes() {
    for (a_trans, b_trans, out_trans) in [(true, false, false), (false, true, false), (true, true, false), (false, false, true), (true, true, true)] {
        let case = Case { a_trans, b_trans, out_trans, ..Case::plain(37, 45, 70) };
        check(&case, 5, true);
        check(&Case { a_const: true, b_const: true, ..case }, 6, true);
    }
}

#[test]
fn batch_broadcasting() {
    for (a_shared, b_shared) in [(false, false), (true, false), (false, true)] {
        for b_const in [false, true] {
            let case = Case { batch: vec![2, 3], a_shared, b_shared, b_const, epilogue: Epilogue::Bias, ..Case::plain(14, 35, 19) };
            check(&case, 7, true);
        }
    }
}

#[test]
fn epilogues() {
    let all = [
        Epilogue::Bias,
        Epilogue::BiasRelu,
        Epilogue::ResidualTanh,
        Epilogue::GuardedShift,
        Epilogue::RowBiasRelu6,
        Epilogue::ColumnBiasSilu,
        Epilogue::RowBiasSigmoid,
    ];
    for epilogue in all {
        // B read in place (30 rows) and packed (64 rows); edge tiles both ways.
        for (m, n, k) in [(30, 70, 300), (64, 45, 40)] {
            for out_trans in [false, true] {
                let batch = if epilogue == Epilogue::GuardedShift { vec![] } else { vec![2] };
                let case = Case { epilogue, out_trans, batch, ..Case::plain(m, n, k) };
                check(&case, 8, true);
                // The activations run in the AVX-512 kernel's registers.
                if matches!(epilogue, Epilogue::ColumnBiasSilu | Epilogue::RowBiasSigmoid) {
                    let built = build(&case, &mut Rng(1));
                    let spec = plan(&built.program, &built.program.kernels[0], Spec::for_features(Features::Avx512)).unwrap().spec;
                    assert!(spec.epilogue.is_some_and(|e| e.activation.is_some()), "{case:?}: {spec:?}");
                }
            }
        }
    }
}

#[test]
fn constant_operands() {
    for (a_const, b_const) in [(false, true), (true, false), (true, true)] {
        let case = Case { a_const, b_const, epilogue: Epilogue::BiasRelu, ..Case::plain(50, 77, 600) };
        check(&case, 9, true);
    }
}

/// Fewer rows than the micro-kernel has: the plan takes a kernel of exactly
/// that many rows (packed constant A panels included).
#[test]
fn short_products_use_a_kernel_of_their_rows() {
    for (m, a_const) in [(1, false), (3, true), (5, false)] {
        let case = Case { a_const, b_const: true, epilogue: Epilogue::Bias, ..Case::plain(m, 300, 700) };
        check(&case, 16 + m as u64, true);
        let built = build(&case, &mut Rng(1));
        for target in Target::host_levels() {
            let spec = Spec::for_features(target.features);
            let planned = plan(&built.program, &built.program.kernels[0], spec).unwrap().spec;
            assert_eq!(planned.mr, m.min(spec.mr), "{target}: m = {m}");
        }
    }
}

#[test]
fn guarded_or_non_f32_operands_use_the_scalar_loop() {
    let mut rng = Rng(3);
    let mut built = build(&Case::plain(5, 6, 7), &mut rng);
    let Kernel::Gemm { a, .. } = &mut built.program.kernels[0] else { unreachable!() };
    a.guard = Some(0.0);
    let want = reference(&built);
    for target in Target::host_levels() {
        assert!(plan(&built.program, &built.program.kernels[0], Spec::for_features(target.features)).is_none());
        let got = run(&built, &target, 2);
        for (&g, &(w, tol)) in got.iter().zip(&want) {
            assert!((g as f64 - w).abs() <= tol, "{target}: got {g}, want {w}");
        }
    }
}

/// More tasks than row tiles: the extra tasks do nothing, nothing is done twice.
#[test]
fn more_tasks_than_work() {
    let mut rng = Rng(4);
    let built = build(&Case { batch: vec![2], ..Case::plain(3, 40, 9) }, &mut rng);
    let want = reference(&built);
    for target in Target::host_levels() {
        let got = run(&built, &target, 7);
        for (&g, &(w, tol)) in got.iter().zip(&want) {
            assert!((g as f64 - w).abs() <= tol, "{target}: got {g}, want {w}");
        }
    }
}

/// `out` with no unit stride (every other column of a wider buffer): every
/// tile goes through the temporary tile; the gaps are never written.
#[test]
fn strided_output() {
    let mut rng = Rng(5);
    let mut built = build(&Case { epilogue: Epilogue::Bias, ..Case::plain(19, 37, 40) }, &mut rng);
    let (m, n) = (19, 37);
    let out = built.out;
    built.program.buffers[out.0 as usize].len = m * 2 * n;
    built.data[out.0 as usize] = vec![0.0; m * 2 * n];
    let Kernel::Gemm { out: o, .. } = &mut built.program.kernels[0] else { unreachable!() };
    o.shape = vec![m, 2 * n];
    o.coef = vec![vec![1, 0], vec![0, 2]];
    let want = reference(&built);
    for target in Target::host_levels() {
        assert!(plan(&built.program, &built.program.kernels[0], Spec::for_features(target.features)).is_some());
        for tasks in [1, 4] {
            let got = run(&built, &target, tasks);
            for (i, &g) in got.iter().enumerate() {
                if i % 2 == 1 {
                    assert_eq!(g, 0.0, "{target}: gap {i} written");
                } else {
                    let (w, tol) = want[i];
                    assert!((g as f64 - w).abs() <= tol, "{target}: element {i}: got {g}, want {w}");
                }
            }
        }
    }
}

/// Matrix-vector products: one row tile, so the columns are split into
/// chunks for the tasks.
#[test]
fn small_m_splits_columns() {
    check(&Case { b_const: true, epilogue: Epilogue::BiasRelu, ..Case::plain(1, 1000, 700) }, 21, true);
    check(&Case { batch: vec![2], b_shared: true, ..Case::plain(3, 515, 33) }, 22, true);
}

/// `out` with N = 1 (matrix times vector) is computed transposed so that
/// the long dimension runs along the micro-tile's rows.
#[test]
fn matrix_times_vector() {
    for (a_trans, a_const) in [(false, false), (true, false), (false, true)] {
        check(&Case { a_trans, a_const, epilogue: Epilogue::Bias, ..Case::plain(300, 1, 77) }, 23, true);
    }
    check(&Case { epilogue: Epilogue::ResidualTanh, batch: vec![3], ..Case::plain(1, 1, 10) }, 24, true);
}

/// The fast path's CLIF is deterministic (constant packing included).
#[test]
fn clif_is_deterministic() {
    let mut rng = Rng(6);
    let built = build(&Case { b_const: true, epilogue: Epilogue::Bias, ..Case::plain(20, 40, 30) }, &mut rng);
    for target in Target::host_levels() {
        let first = kiln_codegen::cpu::listing(&built.program, &target, kiln_codegen::cpu::Listing::Clif).unwrap();
        assert_eq!(first, kiln_codegen::cpu::listing(&built.program, &target, kiln_codegen::cpu::Listing::Clif).unwrap());
        assert!(first.contains("call"), "{first}");
    }
}
