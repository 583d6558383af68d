//! Lowering checked against the reference interpreter: every operator (above
//! all those without WPT vectors: pooling, gemm, pad, prelu, where, gelu,
//! softplus, resample2d, grouped and transposed convolutions in every
//! layout, int8/uint8 arithmetic, and the 32/64-bit integer arithmetic,
//! casts and reductions that become host kernels) is built into a small
//! graph, lowered, planned and run on the kernel evaluator, and compared with
//! `kiln_ir::interp` on pseudo-random inputs. Data movement and integer
//! results must match bit for bit; float results within a tolerance (the
//! interpreter computes in f64, kernels in f32).

#![allow(clippy::type_complexity)]

use kiln_ir::kernel::Kernel;
use kiln_ir::kernel::eval;
use kiln_ir::*;
use kiln_passes::{LowerError, LowerOptions, check_plan, lower, lower_with};

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in [-r, r).
    fn float(&mut self, r: f64) -> f64 {
        ((self.next() >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) * r
    }

    fn int(&mut self, lo: i128, hi: i128) -> i128 {
        lo + (self.next() as u128 % (hi - lo + 1) as u128) as i128
    }
}

fn random_tensor(rng: &mut Rng, t: DataType, shape: &[u32]) -> Tensor {
    let n: usize = shape.iter().map(|&d| d as usize).product();
    let values = match t {
        DataType::Float32 | DataType::Float16 => Values::Float((0..n).map(|_| rng.float(4.0)).collect()),
        DataType::Int8 | DataType::Uint8 => {
            let (lo, hi) = t.int_range().unwrap();
            Values::Int((0..n).map(|_| rng.int(lo, hi)).collect())
        }
        // Wide integers: values beyond 2^24, where f32 is no longer exact.
        _ => {
            let (lo, hi) = t.int_range().unwrap();
            Values::Int((0..n).map(|_| rng.int(lo.max(-(1 << 40)), hi.min(1 << 40))).collect())
        }
    };
    Tensor::from_values(OperandDescriptor::new(t, shape.to_vec()), &values).unwrap()
}

/// How results are compared: bit for bit, or within `atol + rtol * |expected|`.
#[derive(Clone, Copy, Debug)]
enum Tol {
    Exact,
    Close { rtol: f64, atol: f64 },
}

const F32: Tol = Tol::Close { rtol: 1e-5, atol: 1e-6 };
const F16: Tol = Tol::Close { rtol: 2e-3, atol: 1e-3 };

fn float_values(t: &Tensor) -> Vec<f64> {
    match t.values() {
        Values::Float(v) => v,
        Values::Int(v) => v.into_iter().map(|x| x as f64).collect(),
    }
}

#[track_caller]
fn compare(what: &str, actual: &Tensor, expected: &Tensor, tol: Tol) {
    assert_eq!(actual.desc(), expected.desc(), "{what}: descriptor");
    match tol {
        Tol::Exact => {
            if actual.bytes() != expected.bytes() {
                panic!("{what}: bytes differ\n  kernels: {:?}\n  interp:  {:?}", actual.values(), expected.values());
            }
        }
        Tol::Close { rtol, atol } => {
            let (a, e) = (float_values(actual), float_values(expected));
            for (i, (&x, &y)) in a.iter().zip(&e).enumerate() {
                let ok = (x.is_nan() && y.is_nan()) || x == y || (x - y).abs() <= atol + rtol * y.abs();
                assert!(ok, "{what}: element {i}: kernels {x}, interp {y}\n  kernels: {a:?}\n  interp:  {e:?}");
            }
        }
    }
}

/// Runs `graph` on both backends and compares every output.
#[track_caller]
fn check_graph(name: &str, graph: &Graph, feeds: &[(String, Tensor)], tol: Tol) {
    check_graph_with(name, graph, feeds, tol, LowerOptions::default());
}

fn check_graph_with(name: &str, graph: &Graph, feeds: &[(String, Tensor)], tol: Tol, options: LowerOptions) {
    let refs: Vec<(&str, &Tensor)> = feeds.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let expected = kiln_ir::interp::run(graph, &refs).unwrap_or_else(|e| panic!("{name}: interp: {e}"));
    let program = lower_with(graph, options).unwrap_or_else(|e| panic!("{name}: lower: {e}"));
    check_plan(&program).unwrap_or_else(|e| panic!("{name}: plan: {e}\n{program}"));
    let actual = eval(&program, &refs).unwrap_or_else(|e| panic!("{name}: eval: {e}\n{program}"));
    assert_eq!(actual.len(), graph.outputs().len());
    for ((out_name, id), e) in graph.outputs().iter().zip(&expected) {
        let (n, flat) = actual.iter().find(|(n, _)| n == out_name).expect("every output is returned");
        assert_eq!(n, out_name);
        let t = Tensor::new(graph.desc(*id).clone(), flat.shared_bytes().clone()).unwrap();
        compare(&format!("{name}: output `{out_name}`"), &t, e, tol);
    }
}

/// Builds a graph with random inputs `x0, x1, ...` of the given types and
/// shapes, adds the nodes `build` returns outputs for, and checks it.
#[track_caller]
fn check(
    name: &str,
    inputs: &[(DataType, &[u32])],
    tol: Tol,
    build: impl FnOnce(&mut Graph, &[OperandId]) -> Vec<OperandId>,
) {
    let seed = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3));
    let mut rng = Rng(seed | 1);
    let mut g = Graph::new();
    let mut feeds = Vec::new();
    let mut ids = Vec::new();
    for (i, (t, shape)) in inputs.iter().enumerate() {
        let n = format!("x{i}");
        ids.push(g.add_input(&n, OperandDescriptor::new(*t, shape.to_vec())).unwrap());
        feeds.push((n, random_tensor(&mut rng, *t, shape)));
    }
    let outs = build(&mut g, &ids);
    for (i, o) in outs.iter().enumerate() {
        g.add_output(&format!("y{i}"), *o).unwrap();
    }
    check_graph(name, &g, &feeds, tol);
}

fn node(g: &mut Graph, op: Op) -> OperandId {
    g.add_node(op, "").unwrap()[0]
}

fn tol_for(t: DataType) -> Tol {
    if t == DataType::Float16 { F16 } else { F32 }
}

use DataType::{Float16, Float32, Int8, Int32, Int64, Uint8};

// ---------------------------------------------------------------------------
// Element-wise.

#[test]
fn unary_float_ops() {
    for t in [Float32, Float16] {
        for kind in UnaryOp::ALL.iter().copied().filter(|k| *k != UnaryOp::LogicalNot) {
            let tol = match kind {
                // Functions of large arguments and cancellations: looser.
                UnaryOp::Tan | UnaryOp::Gelu => Tol::Close { rtol: 1e-4, atol: 1e-5 },
                _ => tol_for(t),
            };
            let tol = if t == Float16 { F16 } else { tol };
            let input = [(t, &[2u32, 3, 4][..])];
            check(&format!("{} {t}", kind.name()), &input, tol, |g, x| {
                let y = match kind {
                    // Keep log/sqrt in their domain.
                    UnaryOp::Log | UnaryOp::Sqrt => {
                        let a = node(g, Op::Unary { kind: UnaryOp::Abs, input: x[0] });
                        node(g, Op::Unary { kind, input: a })
                    }
                    _ => node(g, Op::Unary { kind, input: x[0] }),
                };
                vec![y]
            });
        }
    }
}

#[test]
fn activations_on_extreme_values() {
    // The tails and overflow points of the composed activations.
    let values: Vec<f32> = vec![
        -1000.0,
        -100.0,
        -88.0,
        -30.0,
        -20.0,
        -10.0,
        -5.0,
        -1.0,
        -2.5,
        -1.5,
        -0.5,
        -1e-3,
        -1e-7,
        -0.0,
        0.0,
        1e-7,
        1e-3,
        0.5,
        1.0,
        1.5,
        2.5,
        5.0,
        8388607.5,
        20.0,
        30.0,
        88.0,
        100.0,
        1000.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
    ];
    let x = Tensor::from_f32([values.len() as u32], &values).unwrap();
    let cases: Vec<(&str, Box<dyn Fn(OperandId) -> Op>)> = vec![
        ("sigmoid", Box::new(|i| Op::Unary { kind: UnaryOp::Sigmoid, input: i })),
        ("softplus", Box::new(|i| Op::Unary { kind: UnaryOp::Softplus, input: i })),
        ("softsign", Box::new(|i| Op::Unary { kind: UnaryOp::Softsign, input: i })),
        ("relu", Box::new(|i| Op::Unary { kind: UnaryOp::Relu, input: i })),
        ("hardSwish", Box::new(|i| Op::Unary { kind: UnaryOp::HardSwish, input: i })),
        ("elu", Box::new(|i| Op::Elu { input: i, alpha: 1.5 })),
        ("leakyRelu", Box::new(|i| Op::LeakyRelu { input: i, alpha: 0.01 })),
        ("hardSigmoid", Box::new(|i| Op::HardSigmoid { input: i, alpha: 0.2, beta: 0.5 })),
        ("tanh", Box::new(|i| Op::Unary { kind: UnaryOp::Tanh, input: i })),
        ("erf", Box::new(|i| Op::Unary { kind: UnaryOp::Erf, input: i })),
        ("gelu", Box::new(|i| Op::Unary { kind: UnaryOp::Gelu, input: i })),
        ("roundEven", Box::new(|i| Op::Unary { kind: UnaryOp::RoundEven, input: i })),
    ];
    for (name, op) in cases {
        let mut g = Graph::new();
        let i = g.add_input("x", x.desc().clone()).unwrap();
        let y = node(&mut g, op(i));
        g.add_output("y", y).unwrap();
        check_graph(name, &g, &[("x".into(), x.clone())], Tol::Close { rtol: 4e-7, atol: 0.0 });
    }
    // kiln's composite activations: x times a function of x computed in
    // f32 first, so a subnormal result (x * sigmoid(x) near -88) keeps
    // only the factor's subnormal precision: an absolute floor at the
    // smallest normal f32. geluTanh's sigmoid of 2√(2/π)(x + 0.044715 x³)
    // amplifies the argument's f32 rounding by its size (about 17 at
    // x = -5): 2e-6 relative.
    for (kind, rtol) in [(UnaryOp::Silu, 4e-7), (UnaryOp::Mish, 4e-7), (UnaryOp::GeluTanh, 2e-6)] {
        let mut g = Graph::new();
        let i = g.add_input("x", x.desc().clone()).unwrap();
        let y = node(&mut g, Op::Unary { kind, input: i });
        g.add_output("y", y).unwrap();
        check_graph(kind.name(), &g, &[("x".into(), x.clone())], Tol::Close { rtol, atol: f32::MIN_POSITIVE as f64 });
    }
}

#[test]
fn binary_ops_broadcast() {
    let shapes: [(&[u32], &[u32]); 4] =
        [(&[2, 3, 4], &[2, 3, 4]), (&[2, 3, 4], &[4]), (&[3, 1], &[2, 1, 5]), (&[], &[2, 2])];
    for t in [Float32, Float16] {
        for kind in BinaryOp::ALL.iter().copied() {
            for (sa, sb) in shapes {
                let name = format!("{} {t} {sa:?} {sb:?}", kind.name());
                check(&name, &[(t, sa), (t, sb)], tol_for(t), |g, x| {
                    vec![node(g, Op::Binary { kind, a: x[0], b: x[1] })]
                });
            }
        }
    }
}

#[test]
fn int8_and_uint8_arithmetic_wraps_like_the_interpreter() {
    for t in [Int8, Uint8] {
        for kind in [BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div, BinaryOp::Max, BinaryOp::Min] {
            let name = format!("{} {t}", kind.name());
            check(&name, &[(t, &[64]), (t, &[64])], Tol::Exact, |g, x| {
                vec![node(g, Op::Binary { kind, a: x[0], b: x[1] })]
            });
        }
        for kind in CompareOp::ALL.iter().copied() {
            let name = format!("{} {t}", kind.name());
            check(&name, &[(t, &[4, 8]), (t, &[8])], Tol::Exact, |g, x| {
                vec![node(g, Op::Compare { kind, a: x[0], b: x[1] })]
            });
        }
    }
    for kind in [UnaryOp::Abs, UnaryOp::Neg, UnaryOp::Relu] {
        check(kind.name(), &[(Int8, &[256])], Tol::Exact, |g, x| vec![node(g, Op::Unary { kind, input: x[0] })]);
    }
    check("prelu int8", &[(Int8, &[64]), (Int8, &[64])], Tol::Exact, |g, x| {
        vec![node(g, Op::Prelu { input: x[0], slope: x[1] })]
    });
    // abs(-128) and neg(-128) wrap to -128; division by zero gives 0.
    let mut g = Graph::new();
    let a = g.add_input("a", OperandDescriptor::new(Int8, [4])).unwrap();
    let b = g.add_input("b", OperandDescriptor::new(Int8, [4])).unwrap();
    let abs = node(&mut g, Op::Unary { kind: UnaryOp::Abs, input: a });
    let div = node(&mut g, Op::Binary { kind: BinaryOp::Div, a, b });
    g.add_output("abs", abs).unwrap();
    g.add_output("div", div).unwrap();
    let at = Tensor::from_values(OperandDescriptor::new(Int8, [4]), &Values::Int(vec![-128, -7, 7, 100])).unwrap();
    let bt = Tensor::from_values(OperandDescriptor::new(Int8, [4]), &Values::Int(vec![-1, 2, 0, -3])).unwrap();
    check_graph("int8 edge cases", &g, &[("a".into(), at), ("b".into(), bt)], Tol::Exact);
}

#[test]
fn comparisons_logical_and_where() {
    for t in [Float32, Float16] {
        for kind in CompareOp::ALL.iter().copied() {
            check(&format!("{} {t}", kind.name()), &[(t, &[3, 4]), (t, &[4])], Tol::Exact, |g, x| {
                // Rounded inputs make equalities likely.
                let fa = node(g, Op::Unary { kind: UnaryOp::Floor, input: x[0] });
                let fb = node(g, Op::Unary { kind: UnaryOp::Floor, input: x[1] });
                vec![node(g, Op::Compare { kind, a: fa, b: fb })]
            });
        }
    }
    for kind in LogicalOp::ALL.iter().copied() {
        check(kind.name(), &[(Uint8, &[2, 50]), (Uint8, &[50])], Tol::Exact, |g, x| {
            // Mostly zeros and ones, some other non-zero values.
            let c = g
                .add_constant(
                    None,
                    Tensor::from_values(OperandDescriptor::new(Uint8, []), &Values::Int(vec![100])).unwrap(),
                )
                .unwrap();
            let a = node(g, Op::Compare { kind: CompareOp::Greater, a: x[0], b: c });
            let b = node(g, Op::Binary { kind: BinaryOp::Mul, a, b: x[1] });
            vec![node(g, Op::Logical { kind, a, b })]
        });
    }
    check("logicalNot", &[(Uint8, &[30])], Tol::Exact, |g, x| {
        vec![node(g, Op::Unary { kind: UnaryOp::LogicalNot, input: x[0] })]
    });
    for t in [Float32, Float16, Int8, Uint8] {
        check(&format!("where {t}"), &[(Uint8, &[3, 1, 4]), (t, &[2, 1]), (t, &[3, 2, 4])], Tol::Exact, |g, x| {
            vec![node(g, Op::Where { condition: x[0], true_value: x[1], false_value: x[2] })]
        });
    }
}

#[test]
fn clamp_prelu_and_parameterised_activations() {
    for t in [Float32, Float16] {
        let tol = tol_for(t);
        let bounds = [
            (Some(Number::Float(-1.1)), Some(Number::Float(0.7))),
            (None, Some(Number::Float(0.1))),
            (Some(Number::Float(f64::NAN)), None),
            (Some(Number::Int(-2)), Some(Number::Int(3))),
        ];
        for (min_value, max_value) in bounds {
            check(&format!("clamp {t} {min_value:?} {max_value:?}"), &[(t, &[50])], Tol::Exact, |g, x| {
                vec![node(g, Op::Clamp { input: x[0], min_value, max_value })]
            });
        }
        check(&format!("prelu {t}"), &[(t, &[2, 3, 4]), (t, &[3, 1])], tol, |g, x| {
            vec![node(g, Op::Prelu { input: x[0], slope: x[1] })]
        });
        check(&format!("elu {t}"), &[(t, &[40])], tol, |g, x| vec![node(g, Op::Elu { input: x[0], alpha: 0.7 })]);
        check(&format!("linear {t}"), &[(t, &[40])], tol, |g, x| {
            vec![node(g, Op::Linear { input: x[0], alpha: -1.5, beta: 0.25 })]
        });
        check(&format!("hardSigmoid {t}"), &[(t, &[40])], tol, |g, x| {
            vec![node(g, Op::HardSigmoid { input: x[0], alpha: 0.3, beta: 0.4 })]
        });
    }
    for t in [Int8, Uint8] {
        check(&format!("clamp {t}"), &[(t, &[64])], Tol::Exact, |g, x| {
            vec![node(
                g,
                Op::Clamp { input: x[0], min_value: Some(Number::Float(-3.5)), max_value: Some(Number::Int(1000)) },
            )]
        });
    }
}

#[test]
fn casts() {
    // Every pair: by a kernel where cast_rule allows it, else on the host.
    let all = DataType::ALL;
    for from in all {
        for to in all {
            check(&format!("cast {from} -> {to}"), &[(from, &[40])], Tol::Exact, |g, x| {
                vec![node(g, Op::Cast { input: x[0], data_type: to })]
            });
        }
    }
    // Float to integer: truncation, saturation, NaN -> 0.
    let v = [1.9f32, -1.9, 300.0, -300.0, f32::NAN, f32::INFINITY, -0.5, 1e10];
    let x = Tensor::from_f32([v.len() as u32], &v).unwrap();
    for to in [Int8, Uint8, Int32, DataType::Uint32, Int64, DataType::Uint64, Float16] {
        let mut g = Graph::new();
        let i = g.add_input("x", x.desc().clone()).unwrap();
        let y = node(&mut g, Op::Cast { input: i, data_type: to });
        g.add_output("y", y).unwrap();
        check_graph(&format!("cast f32 -> {to}"), &g, &[("x".into(), x.clone())], Tol::Exact);
    }
}

// ---------------------------------------------------------------------------
// Reductions and normalizations.

#[test]
fn reductions() {
    let axes_cases: [Option<Vec<u32>>; 5] = [None, Some(vec![]), Some(vec![1]), Some(vec![2, 0]), Some(vec![0, 1, 2])];
    for t in [Float32, Float16] {
        for kind in ReduceOp::ALL.iter().copied() {
            for axes in &axes_cases {
                for keep_dimensions in [false, true] {
                    let name = format!("{} {t} {axes:?} keep {keep_dimensions}", kind.name());
                    let tol = if t == Float16 { F16 } else { Tol::Close { rtol: 1e-5, atol: 1e-5 } };
                    check(&name, &[(t, &[3, 4, 5])], tol, |g, x| {
                        let input = match kind {
                            // Positive inputs keep the logarithms real.
                            ReduceOp::LogSum => node(g, Op::Unary { kind: UnaryOp::Abs, input: x[0] }),
                            _ => x[0],
                        };
                        let options = ReduceOptions { axes: axes.clone(), keep_dimensions };
                        vec![node(g, Op::Reduce { kind, input, options })]
                    });
                }
            }
        }
    }
    for t in [Int8, Uint8] {
        for kind in [ReduceOp::Max, ReduceOp::Min] {
            check(&format!("{} {t}", kind.name()), &[(t, &[4, 6])], Tol::Exact, |g, x| {
                vec![node(
                    g,
                    Op::Reduce {
                        kind,
                        input: x[0],
                        options: ReduceOptions { axes: Some(vec![1]), keep_dimensions: false },
                    },
                )]
            });
        }
    }
    // reduceLogSumExp with infinite maxima and NaN.
    let v = [f32::NEG_INFINITY, f32::NEG_INFINITY, f32::INFINITY, 1.0, f32::NAN, 2.0, 100.0, 100.0];
    let x = Tensor::from_f32([4, 2], &v).unwrap();
    let mut g = Graph::new();
    let i = g.add_input("x", x.desc().clone()).unwrap();
    let options = ReduceOptions { axes: Some(vec![1]), keep_dimensions: false };
    let y = node(&mut g, Op::Reduce { kind: ReduceOp::LogSumExp, input: i, options });
    g.add_output("y", y).unwrap();
    check_graph("reduceLogSumExp special values", &g, &[("x".into(), x)], F32);
}

#[test]
fn softmax_and_normalizations() {
    for t in [Float32, Float16] {
        let tol = if t == Float16 { F16 } else { Tol::Close { rtol: 1e-5, atol: 1e-5 } };
        for axis in 0..3 {
            check(&format!("softmax {t} axis {axis}"), &[(t, &[3, 4, 5])], tol, |g, x| {
                vec![node(g, Op::Softmax { input: x[0], axis })]
            });
        }
        for axes in [None, Some(vec![2, 1]), Some(vec![0]), Some(vec![])] {
            let p: Vec<u32> = axes.clone().unwrap_or(vec![1, 2]).iter().map(|&a| [2, 3, 4][a as usize]).collect();
            check(&format!("layerNormalization {t} {axes:?}"), &[(t, &[2, 3, 4]), (t, &p), (t, &p)], tol, |g, x| {
                let options = LayerNormalizationOptions {
                    scale: Some(x[1]),
                    bias: Some(x[2]),
                    axes: axes.clone(),
                    epsilon: 1e-3,
                };
                vec![node(g, Op::LayerNormalization { input: x[0], options })]
            });
        }
        for layout in [InputLayout::Nchw, InputLayout::Nhwc] {
            let shape: &[u32] = if layout == InputLayout::Nchw { &[2, 3, 4, 5] } else { &[2, 4, 5, 3] };
            check(
                &format!("instanceNormalization {t} {layout:?}"),
                &[(t, shape), (t, &[3]), (t, &[3])],
                tol,
                |g, x| {
                    let options =
                        InstanceNormalizationOptions { scale: Some(x[1]), bias: Some(x[2]), epsilon: 1e-4, layout };
                    vec![node(g, Op::InstanceNormalization { input: x[0], options })]
                },
            );
        }
        for axis in [1, 3] {
            let c = [2u32, 3, 4, 5][axis as usize];
            check(
                &format!("batchNormalization {t} axis {axis}"),
                &[(t, &[2, 3, 4, 5]), (t, &[c]), (t, &[c]), (t, &[c])],
                tol,
                |g, x| {
                    let var = node(g, Op::Unary { kind: UnaryOp::Abs, input: x[2] });
                    let options = BatchNormalizationOptions { scale: Some(x[3]), bias: None, axis, epsilon: 1e-5 };
                    vec![node(g, Op::BatchNormalization { input: x[0], mean: x[1], variance: var, options })]
                },
            );
        }
    }
}

// ---------------------------------------------------------------------------
// Linear algebra, convolutions, pooling.

#[test]
fn gemm_and_matmul() {
    for t in [Float32, Float16] {
        let tol = if t == Float16 { F16 } else { Tol::Close { rtol: 1e-5, atol: 1e-5 } };
        for (at, bt) in [(false, false), (true, false), (false, true), (true, true)] {
            for c_shape in [None, Some(vec![]), Some(vec![4]), Some(vec![3, 1]), Some(vec![3, 4])] {
                let a_shape: &[u32] = if at { &[5, 3] } else { &[3, 5] };
                let b_shape: &[u32] = if bt { &[4, 5] } else { &[5, 4] };
                let mut inputs = vec![(t, a_shape), (t, b_shape)];
                if let Some(s) = &c_shape {
                    inputs.push((t, s.as_slice()));
                }
                check(&format!("gemm {t} {at} {bt} {c_shape:?}"), &inputs, tol, |g, x| {
                    let options =
                        GemmOptions { c: x.get(2).copied(), alpha: 0.5, beta: -2.0, a_transpose: at, b_transpose: bt };
                    vec![node(g, Op::Gemm { a: x[0], b: x[1], options })]
                });
            }
        }
        let shapes: [(&[u32], &[u32]); 4] =
            [(&[3, 4], &[4, 2]), (&[2, 1, 3, 4], &[5, 4, 2]), (&[3, 4], &[2, 4, 6]), (&[2, 3, 4], &[1, 4, 3])];
        for (sa, sb) in shapes {
            check(&format!("matmul {t} {sa:?} {sb:?}"), &[(t, sa), (t, sb)], tol, |g, x| {
                vec![node(g, Op::Matmul { a: x[0], b: x[1] })]
            });
        }
    }
}

#[test]
fn attention() {
    // (query, key, value, mask): batches of one rank and broadcast ones, a
    // rank-2 value, masks of the scores' shape, a row and a scalar.
    let shapes: [(&[u32], &[u32], &[u32], Option<&[u32]>); 4] = [
        (&[2, 3, 4], &[2, 5, 4], &[2, 5, 6], None),
        (&[2, 3, 4], &[2, 5, 4], &[2, 5, 6], Some(&[2, 3, 5])),
        (&[2, 1, 3, 4], &[1, 2, 5, 4], &[5, 3], Some(&[5])),
        (&[1, 4], &[7, 4], &[7, 2], Some(&[])),
    ];
    for t in [Float32, Float16] {
        for (sq, sk, sv, sm) in shapes {
            let mut inputs = vec![(t, sq), (t, sk), (t, sv)];
            if let Some(m) = sm {
                inputs.push((t, m));
            }
            check(&format!("attention {t} {sq:?} {sk:?} {sv:?} {sm:?}"), &inputs, tol_for(t), |g, x| {
                let options = AttentionOptions { mask: x.get(3).copied(), scale: 0.35 };
                vec![node(g, Op::Attention { query: x[0], key: x[1], value: x[2], options })]
            });
        }
    }
}

/// `gru` and `lstm` in every direction, layout, reset mode and activation
/// set, with and without the optional operands, and their cells: the
/// lowering's step loop against the interpreter. Operands are graph
/// inputs (random values), so no product is folded away.
#[test]
fn recurrent_networks() {
    use RecurrentActivation::{Relu, Sigmoid, Tanh};
    let (steps, batch, input, hidden) = (3u32, 2u32, 5u32, 4u32);
    for t in [Float32, Float16] {
        let tol = tol_for(t);
        for (direction, full) in [
            (RecurrentDirection::Forward, false),
            (RecurrentDirection::Backward, true),
            (RecurrentDirection::Both, true),
            (RecurrentDirection::Both, false),
        ] {
            let dirs = kiln_ir::infer::recurrent_directions(direction);
            for (layout, reset_after, activations) in
                [(GruWeightLayout::Zrn, true, [Sigmoid, Tanh]), (GruWeightLayout::Rzn, false, [Sigmoid, Relu])]
            {
                let mut inputs: Vec<(DataType, Vec<u32>)> = vec![
                    (t, vec![steps, batch, input]),
                    (t, vec![dirs, 3 * hidden, input]),
                    (t, vec![dirs, 3 * hidden, hidden]),
                ];
                if full {
                    inputs.extend([(t, vec![dirs, 3 * hidden]), (t, vec![dirs, 3 * hidden]), (t, vec![dirs, batch, hidden])]);
                }
                let shapes: Vec<(DataType, &[u32])> = inputs.iter().map(|(t, s)| (*t, s.as_slice())).collect();
                let name = format!("gru {t} {direction:?} {layout:?} reset_after={reset_after} full={full}");
                check(&name, &shapes, tol, |g, x| {
                    let cell = GruCellOptions {
                        bias: x.get(3).copied(),
                        recurrent_bias: x.get(4).copied(),
                        reset_after,
                        layout,
                        activations,
                    };
                    let options =
                        GruOptions { cell, initial_hidden_state: x.get(5).copied(), return_sequence: full, direction };
                    let op = Op::Gru { input: x[0], weight: x[1], recurrent_weight: x[2], steps, hidden_size: hidden, options };
                    g.add_node(op, "").unwrap()
                });
            }
            for (layout, activations) in
                [(LstmWeightLayout::Iofg, [Sigmoid, Tanh, Tanh]), (LstmWeightLayout::Ifgo, [Sigmoid, Relu, Tanh])]
            {
                let mut inputs: Vec<(DataType, Vec<u32>)> = vec![
                    (t, vec![steps, batch, input]),
                    (t, vec![dirs, 4 * hidden, input]),
                    (t, vec![dirs, 4 * hidden, hidden]),
                ];
                if full {
                    inputs.extend([
                        (t, vec![dirs, 4 * hidden]),
                        (t, vec![dirs, 4 * hidden]),
                        (t, vec![dirs, 3 * hidden]),
                        (t, vec![dirs, batch, hidden]),
                        (t, vec![dirs, batch, hidden]),
                    ]);
                }
                let shapes: Vec<(DataType, &[u32])> = inputs.iter().map(|(t, s)| (*t, s.as_slice())).collect();
                let name = format!("lstm {t} {direction:?} {layout:?} full={full}");
                check(&name, &shapes, tol, |g, x| {
                    let cell = LstmCellOptions {
                        bias: x.get(3).copied(),
                        recurrent_bias: x.get(4).copied(),
                        peephole_weight: x.get(5).copied(),
                        layout,
                        activations,
                    };
                    let options = LstmOptions {
                        cell,
                        initial_hidden_state: x.get(6).copied(),
                        initial_cell_state: x.get(7).copied(),
                        return_sequence: full,
                        direction,
                    };
                    let op =
                        Op::Lstm { input: x[0], weight: x[1], recurrent_weight: x[2], steps, hidden_size: hidden, options };
                    g.add_node(op, "").unwrap()
                });
            }
        }
        let cell_inputs = |gates: u32| {
            vec![
                (t, vec![batch, input]),
                (t, vec![gates * hidden, input]),
                (t, vec![gates * hidden, hidden]),
                (t, vec![batch, hidden]),
                (t, vec![batch, hidden]),
                (t, vec![gates * hidden]),
                (t, vec![gates * hidden]),
                (t, vec![3 * hidden]),
            ]
        };
        let gru_cell = cell_inputs(3);
        let shapes: Vec<(DataType, &[u32])> = gru_cell.iter().take(7).map(|(t, s)| (*t, s.as_slice())).collect();
        check(&format!("gruCell {t}"), &shapes, tol, |g, x| {
            let options = GruCellOptions { bias: Some(x[5]), recurrent_bias: Some(x[6]), ..Default::default() };
            let op = Op::GruCell {
                input: x[0],
                weight: x[1],
                recurrent_weight: x[2],
                hidden_state: x[3],
                hidden_size: hidden,
                options,
            };
            g.add_node(op, "").unwrap()
        });
        let lstm_cell = cell_inputs(4);
        let shapes: Vec<(DataType, &[u32])> = lstm_cell.iter().map(|(t, s)| (*t, s.as_slice())).collect();
        check(&format!("lstmCell {t}"), &shapes, tol, |g, x| {
            let options = LstmCellOptions {
                bias: Some(x[5]),
                recurrent_bias: Some(x[6]),
                peephole_weight: Some(x[7]),
                ..Default::default()
            };
            let op = Op::LstmCell {
                input: x[0],
                weight: x[1],
                recurrent_weight: x[2],
                hidden_state: x[3],
                cell_state: x[4],
                hidden_size: hidden,
                options,
            };
            g.add_node(op, "").unwrap()
        });
    }
}

fn conv_input_shape(layout: InputLayout, n: u32, c: u32, h: u32, w: u32) -> Vec<u32> {
    match layout {
        InputLayout::Nchw => vec![n, c, h, w],
        InputLayout::Nhwc => vec![n, h, w, c],
    }
}

fn conv_filter_shape(layout: Conv2dFilterLayout, o: u32, i: u32, h: u32, w: u32) -> Vec<u32> {
    match layout {
        Conv2dFilterLayout::Oihw => vec![o, i, h, w],
        Conv2dFilterLayout::Hwio => vec![h, w, i, o],
        Conv2dFilterLayout::Ohwi => vec![o, h, w, i],
        Conv2dFilterLayout::Ihwo => vec![i, h, w, o],
    }
}

#[test]
fn conv2d_every_layout_group_and_window() {
    let tol = Tol::Close { rtol: 1e-5, atol: 1e-5 };
    // (channels, out channels, groups, kernel, padding, strides, dilations)
    let configs: [(u32, u32, u32, [u32; 2], [u32; 4], [u32; 2], [u32; 2]); 6] = [
        (3, 4, 1, [3, 3], [1, 1, 1, 1], [1, 1], [1, 1]),
        (3, 4, 1, [1, 1], [0; 4], [1, 1], [1, 1]),
        (3, 2, 1, [2, 3], [0, 2, 1, 0], [2, 1], [1, 2]),
        (4, 4, 4, [3, 3], [1, 1, 1, 1], [1, 1], [1, 1]),
        (4, 6, 2, [2, 2], [1, 0, 0, 1], [2, 2], [2, 1]),
        (2, 2, 1, [1, 1], [0; 4], [2, 2], [1, 1]),
    ];
    for (c, oc, groups, [kh, kw], padding, strides, dilations) in configs {
        for layout in [InputLayout::Nchw, InputLayout::Nhwc] {
            for filter_layout in Conv2dFilterLayout::ALL.iter().copied() {
                for bias in [false, true] {
                    let xs = conv_input_shape(layout, 2, c, 6, 7);
                    let fs = conv_filter_shape(filter_layout, oc, c / groups, kh, kw);
                    let mut inputs = vec![(Float32, xs.as_slice()), (Float32, fs.as_slice())];
                    let bs = [oc];
                    if bias {
                        inputs.push((Float32, &bs));
                    }
                    let name =
                        format!("conv2d c{c} oc{oc} g{groups} k{kh}x{kw} {layout:?} {filter_layout:?} bias {bias}");
                    check(&name, &inputs, tol, |g, x| {
                        let options = Conv2dOptions {
                            padding,
                            strides,
                            dilations,
                            groups,
                            input_layout: layout,
                            filter_layout,
                            bias: x.get(2).copied(),
                        };
                        vec![node(g, Op::Conv2d { input: x[0], filter: x[1], options })]
                    });
                }
            }
        }
    }
    // float16.
    check("conv2d f16", &[(Float16, &[1, 2, 5, 5]), (Float16, &[3, 2, 3, 3]), (Float16, &[3])], F16, |g, x| {
        let options = Conv2dOptions { padding: [1; 4], bias: Some(x[2]), ..Default::default() };
        vec![node(g, Op::Conv2d { input: x[0], filter: x[1], options })]
    });
}

/// With `direct_convolution`, an nchw float32 conv2d with one group, a
/// window and rows of 12 or more becomes a window Reduce (plus a bias Map):
/// the same numbers, and no im2col Map or Gemm.
#[test]
fn conv2d_as_window_reduce_for_direct_convolution() {
    let tol = Tol::Close { rtol: 1e-5, atol: 1e-5 };
    let options = LowerOptions { direct_convolution: true, ..Default::default() };
    // (channels, out channels, kernel, padding, strides, dilations, width)
    let configs: [(u32, u32, [u32; 2], [u32; 4], [u32; 2], [u32; 2], u32); 3] = [
        (3, 5, [3, 3], [1, 1, 1, 1], [1, 1], [1, 1], 14),
        (2, 4, [2, 3], [0, 2, 1, 0], [2, 1], [1, 2], 16),
        (1, 9, [5, 5], [2; 4], [2, 2], [1, 1], 30),
    ];
    for (c, oc, [kh, kw], padding, strides, dilations, width) in configs {
        for filter_layout in Conv2dFilterLayout::ALL.iter().copied() {
            for bias in [false, true] {
                let name = format!("direct conv2d c{c} oc{oc} k{kh}x{kw} {filter_layout:?} bias {bias}");
                let seed = name.bytes().fold(7u64, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3));
                let mut rng = Rng(seed | 1);
                let mut g = Graph::new();
                let xs = [1, c, 6, width];
                let fs = conv_filter_shape(filter_layout, oc, c, kh, kw);
                let x = g.add_input("x", OperandDescriptor::new(Float32, xs.to_vec())).unwrap();
                let w = g.add_input("w", OperandDescriptor::new(Float32, fs.clone())).unwrap();
                let mut feeds = vec![("x".to_string(), random_tensor(&mut rng, Float32, &xs)), ("w".to_string(), random_tensor(&mut rng, Float32, &fs))];
                let b = bias.then(|| {
                    feeds.push(("b".to_string(), random_tensor(&mut rng, Float32, &[oc])));
                    g.add_input("b", OperandDescriptor::new(Float32, vec![oc])).unwrap()
                });
                let options_conv = Conv2dOptions { padding, strides, dilations, filter_layout, bias: b, ..Default::default() };
                let y = node(&mut g, Op::Conv2d { input: x, filter: w, options: options_conv });
                g.add_output("y", y).unwrap();
                let program = lower_with(&g, options).unwrap();
                let kinds: Vec<&str> = program.kernels.iter().map(|k| k.kind()).collect();
                assert_eq!(kinds[0], "reduce", "{name}:\n{program}");
                assert!(!kinds.contains(&"gemm"), "{name}:\n{program}");
                check_graph_with(&name, &g, &feeds, tol, options);
            }
        }
    }
}

#[test]
fn conv_transpose2d_every_layout_and_stride() {
    let tol = Tol::Close { rtol: 1e-5, atol: 1e-5 };
    // (channels, out channels per group, groups, kernel, padding, strides, dilations, output padding)
    // The strided cases cover every kind of output phase: one tap read in
    // place (2x2 stride 2), several taps (4x4 stride 2), taps needing
    // padding (3x3 stride 2, output padding), and no tap at all (dilation 2).
    let configs: [(u32, u32, u32, [u32; 2], [u32; 4], [u32; 2], [u32; 2], [u32; 2]); 7] = [
        (2, 3, 1, [3, 3], [0; 4], [1, 1], [1, 1], [0, 0]),
        (3, 2, 1, [2, 2], [0; 4], [2, 2], [1, 1], [0, 0]),
        (2, 3, 1, [4, 4], [1; 4], [2, 2], [1, 1], [0, 0]),
        (2, 2, 1, [3, 3], [1; 4], [2, 2], [1, 1], [1, 1]),
        (2, 2, 1, [3, 2], [1, 0, 0, 1], [2, 3], [1, 1], [1, 0]),
        (4, 1, 2, [2, 2], [0, 1, 1, 0], [2, 2], [2, 1], [1, 1]),
        (3, 2, 3, [3, 3], [1, 1, 1, 1], [1, 2], [1, 1], [0, 1]),
    ];
    for (c, ocg, groups, [kh, kw], padding, strides, dilations, output_padding) in configs {
        for layout in [InputLayout::Nchw, InputLayout::Nhwc] {
            for filter_layout in ConvTranspose2dFilterLayout::ALL.iter().copied() {
                for bias in [false, true] {
                    let xs = conv_input_shape(layout, 1, c, 3, 4);
                    let fs = match filter_layout {
                        ConvTranspose2dFilterLayout::Iohw => vec![c, ocg, kh, kw],
                        ConvTranspose2dFilterLayout::Hwoi => vec![kh, kw, ocg, c],
                        ConvTranspose2dFilterLayout::Ohwi => vec![ocg, kh, kw, c],
                    };
                    let bs = [ocg * groups];
                    let mut inputs = vec![(Float32, xs.as_slice()), (Float32, fs.as_slice())];
                    if bias {
                        inputs.push((Float32, &bs));
                    }
                    let name = format!(
                        "convTranspose2d c{c} ocg{ocg} g{groups} {layout:?} {filter_layout:?} s{strides:?} bias {bias}"
                    );
                    check(&name, &inputs, tol, |g, x| {
                        let options = ConvTranspose2dOptions {
                            padding,
                            strides,
                            dilations,
                            output_padding,
                            output_sizes: None,
                            groups,
                            input_layout: layout,
                            filter_layout,
                            bias: x.get(2).copied(),
                        };
                        vec![node(g, Op::ConvTranspose2d { input: x[0], filter: x[1], options })]
                    });
                }
            }
        }
    }
}

#[test]
fn pooling() {
    let tol = Tol::Close { rtol: 1e-5, atol: 1e-6 };
    // (window, padding, strides, dilations, rounding)
    let configs: [(Option<[u32; 2]>, [u32; 4], [u32; 2], [u32; 2], RoundingType); 6] = [
        (None, [0; 4], [1, 1], [1, 1], RoundingType::Floor),
        (Some([2, 2]), [0; 4], [2, 2], [1, 1], RoundingType::Floor),
        (Some([3, 3]), [1, 1, 1, 1], [1, 1], [1, 1], RoundingType::Floor),
        (Some([2, 3]), [0, 1, 2, 0], [2, 2], [1, 2], RoundingType::Ceil),
        (Some([3, 3]), [0; 4], [2, 2], [1, 1], RoundingType::Ceil),
        // Windows entirely in the padding.
        (Some([2, 2]), [3, 3, 3, 3], [1, 1], [1, 1], RoundingType::Floor),
    ];
    for kind in PoolOp::ALL.iter().copied() {
        for (window_dimensions, padding, strides, dilations, output_shape_rounding) in configs {
            for layout in [InputLayout::Nchw, InputLayout::Nhwc] {
                for t in [Float32, Float16] {
                    let xs = conv_input_shape(layout, 2, 3, 5, 6);
                    let name = format!("{} {t} {window_dimensions:?} {padding:?} {strides:?} {layout:?}", kind.name());
                    let tol = if t == Float16 { F16 } else { tol };
                    check(&name, &[(t, &xs)], tol, |g, x| {
                        let options = Pool2dOptions {
                            window_dimensions,
                            padding,
                            strides,
                            dilations,
                            layout,
                            output_shape_rounding,
                            output_sizes: None,
                        };
                        vec![node(g, Op::Pool2d { kind, input: x[0], options })]
                    });
                }
            }
        }
    }
    for t in [Int8, Uint8] {
        check(&format!("maxPool2d {t}"), &[(t, &[1, 2, 4, 4])], Tol::Exact, |g, x| {
            let options = Pool2dOptions { window_dimensions: Some([2, 2]), padding: [1; 4], ..Default::default() };
            vec![node(g, Op::Pool2d { kind: PoolOp::Max, input: x[0], options })]
        });
    }
}

// ---------------------------------------------------------------------------
// Data movement.

#[test]
fn data_movement_is_exact_for_every_type() {
    for t in [Float32, Float16, Int64, DataType::Uint64, Int32, Int8, Uint8] {
        check(&format!("transpose {t}"), &[(t, &[2, 3, 4])], Tol::Exact, |g, x| {
            vec![
                node(g, Op::Transpose { input: x[0], permutation: None }),
                node(g, Op::Transpose { input: x[0], permutation: Some(vec![1, 2, 0]) }),
            ]
        });
        check(&format!("slice {t}"), &[(t, &[5, 6, 7])], Tol::Exact, |g, x| {
            vec![
                node(g, Op::Slice { input: x[0], starts: vec![1, 0, 2], sizes: vec![3, 6, 5], strides: None }),
                node(
                    g,
                    Op::Slice {
                        input: x[0],
                        starts: vec![0, 1, 1],
                        sizes: vec![5, 5, 6],
                        strides: Some(vec![2, 3, 2]),
                    },
                ),
            ]
        });
        check(&format!("concat {t}"), &[(t, &[2, 3]), (t, &[2, 1]), (t, &[2, 4])], Tol::Exact, |g, x| {
            vec![node(g, Op::Concat { inputs: vec![x[0], x[1], x[2]], axis: 1 })]
        });
        check(&format!("split {t}"), &[(t, &[6, 2])], Tol::Exact, |g, x| {
            g.add_node(Op::Split { input: x[0], splits: Splits::Sizes(vec![1, 3, 2]), axis: 0 }, "").unwrap()
        });
        check(&format!("expand {t}"), &[(t, &[3, 1])], Tol::Exact, |g, x| {
            vec![node(g, Op::Expand { input: x[0], new_shape: vec![2, 3, 4] })]
        });
        check(&format!("reshape and identity {t}"), &[(t, &[2, 6])], Tol::Exact, |g, x| {
            let r = node(g, Op::Reshape { input: x[0], new_shape: vec![3, 4] });
            let i = node(g, Op::Unary { kind: UnaryOp::Identity, input: r });
            let e = node(g, Op::Expand { input: i, new_shape: vec![3, 4] });
            vec![node(g, Op::Transpose { input: e, permutation: None })]
        });
        for idx_type in [Int32, DataType::Uint32, Int64] {
            check(&format!("gather {t} by {idx_type}"), &[(t, &[4, 5, 3])], Tol::Exact, |g, x| {
                let values: Vec<i128> = match idx_type {
                    DataType::Uint32 => vec![0, 3, 9, 1, 4, 2],
                    _ => vec![0, -1, 7, -9, 2, 4],
                };
                let it = Tensor::from_values(OperandDescriptor::new(idx_type, [2, 3]), &Values::Int(values)).unwrap();
                let i = g.add_constant(None, it).unwrap();
                vec![node(g, Op::Gather { input: x[0], indices: i, axis: 1 })]
            });
        }
        for mode in PaddingMode::ALL.iter().copied() {
            check(&format!("pad {t} {mode:?}"), &[(t, &[3, 4])], Tol::Exact, |g, x| {
                let options = PadOptions { mode, value: Number::Float(-2.0) };
                vec![node(
                    g,
                    Op::Pad { input: x[0], beginning_padding: vec![2, 0], ending_padding: vec![1, 3], options },
                )]
            });
        }
    }
}

#[test]
fn resample2d_nearest_and_linear() {
    for (t, modes) in [
        (Float32, InterpolationMode::ALL),
        (Float16, InterpolationMode::ALL),
        (Uint8, &[InterpolationMode::NearestNeighbor][..]),
    ] {
        for &mode in modes {
            for (axes, sizes) in [([2, 3], [6, 9]), ([1, 2], [2, 3]), ([2, 3], [4, 5]), ([0, 1], [3, 3])] {
                let name = format!("resample2d {t} {mode:?} {axes:?} {sizes:?}");
                let tol = if t == Float32 {
                    F32
                } else if t == Float16 {
                    F16
                } else {
                    Tol::Exact
                };
                check(&name, &[(t, &[2, 3, 4, 5])], tol, |g, x| {
                    let options = Resample2dOptions { mode, scales: None, sizes: Some(sizes), axes };
                    vec![node(g, Op::Resample2d { input: x[0], options })]
                });
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Outputs, aliases, the whole pipeline.

#[test]
fn outputs_aliases_and_shared_operands() {
    check("outputs", &[(Float32, &[2, 3])], F32, |g, x| {
        let r = node(g, Op::Unary { kind: UnaryOp::Relu, input: x[0] });
        // `r` is an output and read again; a reshape of it is an output (a copy).
        let s = node(g, Op::Reshape { input: r, new_shape: vec![3, 2] });
        let e = node(g, Op::Unary { kind: UnaryOp::Exp, input: s });
        // A reshape of a graph input, as an output.
        let xi = node(g, Op::Reshape { input: x[0], new_shape: vec![6] });
        // The same operand under two output names.
        g.add_output("again", e).unwrap();
        vec![r, s, e, xi]
    });
}

#[test]
fn a_small_cnn_end_to_end() {
    check(
        "cnn",
        &[
            (Float32, &[1, 3, 8, 8]),
            (Float32, &[4, 3, 3, 3]),
            (Float32, &[4]),
            (Float32, &[4, 1, 3, 3]),
            (Float32, &[16, 5]),
        ],
        Tol::Close { rtol: 1e-4, atol: 1e-5 },
        |g, x| {
            let c = node(
                g,
                Op::Conv2d {
                    input: x[0],
                    filter: x[1],
                    options: Conv2dOptions { padding: [1; 4], bias: Some(x[2]), ..Default::default() },
                },
            );
            let r = node(g, Op::Unary { kind: UnaryOp::Relu, input: c });
            let d = node(
                g,
                Op::Conv2d {
                    input: r,
                    filter: x[3],
                    options: Conv2dOptions { groups: 4, strides: [2, 2], padding: [1; 4], ..Default::default() },
                },
            );
            let p = node(
                g,
                Op::Pool2d {
                    kind: PoolOp::Average,
                    input: d,
                    options: Pool2dOptions { window_dimensions: Some([2, 2]), strides: [2, 2], ..Default::default() },
                },
            );
            let f = node(g, Op::Reshape { input: p, new_shape: vec![1, 16] });
            let m = node(g, Op::Matmul { a: f, b: x[4] });
            vec![node(g, Op::Softmax { input: m, axis: 1 })]
        },
    );
}

/// `transpose(cast(a + a, int64) * b)` on int32 `a` and int64 `b`: three
/// nodes f32 kernels cannot compute exactly, then data movement.
fn wide_integer_graph() -> Graph {
    let mut g = Graph::new();
    let a = g.add_input("a", OperandDescriptor::new(Int32, [2, 3])).unwrap();
    let b = g.add_input("b", OperandDescriptor::new(Int64, [3])).unwrap();
    let s = g.add_node(Op::Binary { kind: BinaryOp::Add, a, b: a }, "sum").unwrap()[0];
    let c = g.add_node(Op::Cast { input: s, data_type: Int64 }, "widen").unwrap()[0];
    let m = node(&mut g, Op::Binary { kind: BinaryOp::Mul, a: c, b });
    let t = node(&mut g, Op::Transpose { input: m, permutation: None });
    g.add_output("y", t).unwrap();
    g
}

#[test]
fn wide_integer_nodes_become_host_kernels() {
    let g = wide_integer_graph();
    let p = lower(&g).unwrap();
    let kinds: Vec<&str> = p.kernels.iter().map(|k| k.kind()).collect();
    assert_eq!(kinds, ["host", "host", "host", "map"], "{p}");
    let text = p.to_string();
    for line in [
        "k0: host add(b0 i32[2, 3], b0 i32[2, 3]) -> b3 i32[2, 3]",
        "k1: host cast(b3 i32[2, 3], \"int64\") -> b4 i64[2, 3]",
        "k2: host mul(b4 i64[2, 3], b1 i64[3]) -> b5 i64[2, 3]",
    ] {
        assert!(text.lines().any(|l| l == line), "`{line}` missing from:\n{text}");
    }
    let mut rng = Rng(11);
    let feeds = [
        ("a".to_string(), random_tensor(&mut rng, Int32, &[2, 3])),
        ("b".into(), random_tensor(&mut rng, Int64, &[3])),
    ];
    check_graph("wide integers", &g, &feeds, Tol::Exact);
}

/// A comparison of wide integers with a constant whose values all lie
/// strictly within ±2^24 is computed by the f32 kernels (exactly: values
/// beyond 2^24 round to at least 2^24 in magnitude); with one constant value
/// at 2^24 it stays a host kernel.
#[test]
fn comparisons_with_small_integer_constants_are_kernels() {
    const BIG: i64 = 1 << 24;
    // Runtime values around and far beyond 2^24, both signs.
    let x_values: Vec<i64> = vec![0, 1, -1, BIG - 1, BIG, BIG + 1, -BIG - 1, 3 * BIG + 5, i64::MAX, i64::MIN];
    for (data_type, limit_ok) in [(Int32, true), (Int64, true), (Int64, false)] {
        let consts: Vec<i64> = if limit_ok { vec![0, 1, -1, BIG - 1, 1 - BIG] } else { vec![0, BIG] };
        let xs: Vec<i64> = match data_type {
            Int32 => x_values.iter().map(|&v| v.clamp(i32::MIN as i64, i32::MAX as i64)).collect(),
            _ => x_values.clone(),
        };
        let mut g = Graph::new();
        let x = g.add_input("x", OperandDescriptor::new(data_type, vec![xs.len() as u32, 1])).unwrap();
        let values = Values::Int(consts.iter().map(|&v| v as i128).collect());
        let c = Tensor::from_values(OperandDescriptor::new(data_type, vec![consts.len() as u32]), &values).unwrap();
        let c = g.add_constant(None, c).unwrap();
        for (n, kind) in [CompareOp::Equal, CompareOp::NotEqual, CompareOp::Greater, CompareOp::LesserOrEqual]
            .into_iter()
            .enumerate()
        {
            let (a, b) = if n % 2 == 0 { (x, c) } else { (c, x) };
            let y = node(&mut g, Op::Compare { kind, a, b });
            g.add_output(&format!("y{n}"), y).unwrap();
        }
        let p = lower(&g).unwrap();
        let hosts = p.kernels.iter().filter(|k| k.is_host()).count();
        assert_eq!(hosts, if limit_ok { 0 } else { 4 }, "{data_type} constants {consts:?}:\n{p}");
        let xv = Values::Int(xs.iter().map(|&v| v as i128).collect());
        let feeds = [("x".to_string(), Tensor::from_values(OperandDescriptor::new(data_type, vec![xs.len() as u32, 1]), &xv).unwrap())];
        check_graph(&format!("{data_type} compare with {consts:?}"), &g, &feeds, Tol::Exact);
    }
}

#[test]
fn without_host_kernels_every_unsupported_node_is_reported_at_once() {
    let g = wide_integer_graph();
    let err = lower_with(&g, LowerOptions { host_kernels: false, ..Default::default() }).unwrap_err();
    let LowerError::Unsupported(list) = &err else { panic!("{err}") };
    let summary: Vec<(&str, &str)> = list.iter().map(|u| (u.op, u.label.as_str())).collect();
    assert_eq!(summary, [("add", "sum"), ("cast", "widen"), ("mul", "")]);
    let text = err.to_string();
    assert!(text.starts_with("3 unsupported nodes: add 'sum': int32 operands"), "{text}");
    // Float graphs need no host kernels.
    let mut g = Graph::new();
    let x = g.add_input("x", OperandDescriptor::new(Float32, [4])).unwrap();
    let y = node(&mut g, Op::Binary { kind: BinaryOp::Pow, a: x, b: x });
    g.add_output("y", y).unwrap();
    assert_eq!(
        lower_with(&g, LowerOptions { host_kernels: false, ..Default::default() }).unwrap().to_string(),
        lower(&g).unwrap().to_string()
    );
}

#[test]
fn wide_integer_arithmetic_runs_exactly_on_the_host() {
    use DataType::{Uint32, Uint64};
    for t in [Int32, Uint32, Int64, Uint64] {
        for kind in BinaryOp::ALL.iter().copied() {
            check(&format!("{} {t}", kind.name()), &[(t, &[3, 4]), (t, &[4])], Tol::Exact, |g, x| {
                let b = match kind {
                    // Small exponents keep some powers from wrapping to 0.
                    BinaryOp::Pow => {
                        let exponents = Values::Int(vec![0, 1, 2, 3]);
                        let c = Tensor::from_values(OperandDescriptor::new(t, [4]), &exponents).unwrap();
                        g.add_constant(None, c).unwrap()
                    }
                    _ => x[1],
                };
                vec![node(g, Op::Binary { kind, a: x[0], b })]
            });
        }
        for kind in CompareOp::ALL.iter().copied() {
            check(&format!("{} {t}", kind.name()), &[(t, &[3, 4]), (t, &[4])], Tol::Exact, |g, x| {
                // Equal elements too: compare x with a copy of one of its rows.
                let row = node(g, Op::Slice { input: x[0], starts: vec![1, 0], sizes: vec![1, 4], strides: None });
                let b = node(g, Op::Binary { kind: BinaryOp::Max, a: row, b: x[1] });
                vec![node(g, Op::Compare { kind, a: x[0], b }), node(g, Op::Compare { kind, a: x[0], b: row })]
            });
        }
        check(&format!("where {t}"), &[(Uint8, &[3, 1, 4]), (t, &[2, 1]), (t, &[3, 2, 4])], Tol::Exact, |g, x| {
            vec![node(g, Op::Where { condition: x[0], true_value: x[1], false_value: x[2] })]
        });
        let bounds = [(Some(Number::Int(-(1 << 30))), Some(Number::Int(1 << 35))), (Some(Number::Float(2.5)), None)];
        for (min_value, max_value) in bounds {
            check(&format!("clamp {t} {min_value:?} {max_value:?}"), &[(t, &[50])], Tol::Exact, |g, x| {
                vec![node(g, Op::Clamp { input: x[0], min_value, max_value })]
            });
        }
        for kind in ReduceOp::ALL.iter().copied().filter(|k| {
            matches!(
                k,
                ReduceOp::Sum | ReduceOp::L1 | ReduceOp::SumSquare | ReduceOp::Product | ReduceOp::Max | ReduceOp::Min
            )
        }) {
            check(&format!("{} {t}", kind.name()), &[(t, &[3, 4, 5])], Tol::Exact, |g, x| {
                let options = ReduceOptions { axes: Some(vec![2, 0]), keep_dimensions: false };
                vec![node(g, Op::Reduce { kind, input: x[0], options })]
            });
        }
        check(&format!("maxPool2d {t}"), &[(t, &[1, 2, 5, 5])], Tol::Exact, |g, x| {
            let options =
                Pool2dOptions { window_dimensions: Some([2, 3]), padding: [1, 0, 0, 1], ..Default::default() };
            vec![node(g, Op::Pool2d { kind: PoolOp::Max, input: x[0], options })]
        });
    }
    for t in [Int32, Int64] {
        for kind in [UnaryOp::Abs, UnaryOp::Neg, UnaryOp::Relu] {
            check(&format!("{} {t}", kind.name()), &[(t, &[64])], Tol::Exact, |g, x| {
                vec![node(g, Op::Unary { kind, input: x[0] })]
            });
        }
        check(&format!("prelu {t}"), &[(t, &[4, 8]), (t, &[8])], Tol::Exact, |g, x| {
            vec![node(g, Op::Prelu { input: x[0], slope: x[1] })]
        });
    }
    // pow on int8 (exact integer powers) and linear resampling of uint8.
    check("pow int8", &[(Int8, &[16]), (Int8, &[16])], Tol::Exact, |g, x| {
        vec![node(g, Op::Binary { kind: BinaryOp::Pow, a: x[0], b: x[1] })]
    });
    check("resample2d linear uint8", &[(Uint8, &[1, 2, 3, 4])], Tol::Exact, |g, x| {
        let options = Resample2dOptions { mode: InterpolationMode::Linear, sizes: Some([5, 7]), ..Default::default() };
        vec![node(g, Op::Resample2d { input: x[0], options })]
    });
    // A padding value f32 cannot hold: 2^24 + 1 in int32.
    check("pad int32 2^24 + 1", &[(Int32, &[2, 3])], Tol::Exact, |g, x| {
        let options = PadOptions { value: Number::Int((1 << 24) + 1), ..Default::default() };
        vec![node(g, Op::Pad { input: x[0], beginning_padding: vec![1, 0], ending_padding: vec![0, 2], options })]
    });
}

#[test]
fn host_kernels_mix_with_fused_float_kernels() {
    // relu(cast(where(x > 0, cast(x) * 3, cast(x)), f32) + 1): float Maps
    // around int64 host kernels; nothing fuses across a host kernel.
    let mut g = Graph::new();
    let x = g.add_input("x", OperandDescriptor::new(Float32, [4, 6])).unwrap();
    let big = g
        .add_constant(
            None,
            Tensor::from_values(OperandDescriptor::new(Float32, []), &Values::Float(vec![1e9])).unwrap(),
        )
        .unwrap();
    let xs = node(&mut g, Op::Binary { kind: BinaryOp::Mul, a: x, b: big });
    let i = node(&mut g, Op::Cast { input: xs, data_type: Int64 });
    let three = g
        .add_constant(None, Tensor::from_values(OperandDescriptor::new(Int64, []), &Values::Int(vec![3])).unwrap())
        .unwrap();
    let m = node(&mut g, Op::Binary { kind: BinaryOp::Mul, a: i, b: three });
    let zero = g
        .add_constant(
            None,
            Tensor::from_values(OperandDescriptor::new(Float32, []), &Values::Float(vec![0.0])).unwrap(),
        )
        .unwrap();
    let c = node(&mut g, Op::Compare { kind: CompareOp::Greater, a: x, b: zero });
    let w = node(&mut g, Op::Where { condition: c, true_value: m, false_value: i });
    let f = node(&mut g, Op::Cast { input: w, data_type: Float32 });
    let one = g
        .add_constant(
            None,
            Tensor::from_values(OperandDescriptor::new(Float32, []), &Values::Float(vec![1.0])).unwrap(),
        )
        .unwrap();
    let a = node(&mut g, Op::Binary { kind: BinaryOp::Add, a: f, b: one });
    let y = node(&mut g, Op::Unary { kind: UnaryOp::Relu, input: a });
    g.add_output("y", y).unwrap();
    g.add_output("w", w).unwrap();
    let p = lower(&g).unwrap();
    let host: Vec<&str> = p
        .kernels
        .iter()
        .filter_map(|k| match k {
            Kernel::Host(h) => Some(h.op.name()),
            _ => None,
        })
        .collect();
    assert_eq!(host, ["mul", "where"], "{p}");
    // The float tail (cast, add, relu) is one Map.
    assert_eq!(p.kernels.iter().filter(|k| !k.is_host()).count(), 3, "{p}");
    let mut rng = Rng(5);
    check_graph("host and fused kernels", &g, &[("x".into(), random_tensor(&mut rng, Float32, &[4, 6]))], Tol::Exact);
}

#[test]
fn dead_nodes_are_not_lowered() {
    let mut g = Graph::new();
    let a = g.add_input("a", OperandDescriptor::new(Int32, [4])).unwrap();
    // A node nobody reads is not lowered at all.
    node(&mut g, Op::Unary { kind: UnaryOp::Neg, input: a });
    let y = node(&mut g, Op::Transpose { input: a, permutation: None });
    g.add_output("y", y).unwrap();
    let p = lower(&g).unwrap();
    assert_eq!(p.kernels.len(), 1);
}

#[test]
fn plans_never_overlap_live_buffers_and_reuse_memory() {
    // A deeper net: conv, relu, grouped conv, pool, norm, softmax.
    let mut g = Graph::new();
    let mut rng = Rng(7);
    let x = g.add_input("x", OperandDescriptor::new(Float32, [1, 4, 16, 16])).unwrap();
    let mut constant =
        |g: &mut Graph, shape: &[u32]| g.add_constant(None, random_tensor(&mut rng, Float32, shape)).unwrap();
    let mut h = x;
    for _ in 0..4 {
        let w = constant(&mut g, &[4, 4, 3, 3]);
        let c = node(
            &mut g,
            Op::Conv2d { input: h, filter: w, options: Conv2dOptions { padding: [1; 4], ..Default::default() } },
        );
        let r = node(&mut g, Op::Unary { kind: UnaryOp::Relu, input: c });
        let dw = constant(&mut g, &[4, 1, 3, 3]);
        let b = constant(&mut g, &[4]);
        let options = Conv2dOptions { padding: [1; 4], groups: 4, bias: Some(b), ..Default::default() };
        let d = node(&mut g, Op::Conv2d { input: r, filter: dw, options });
        h = node(&mut g, Op::Binary { kind: BinaryOp::Add, a: d, b: h });
    }
    let options = InstanceNormalizationOptions::default();
    let n = node(&mut g, Op::InstanceNormalization { input: h, options });
    let p = node(
        &mut g,
        Op::Pool2d {
            kind: PoolOp::Max,
            input: n,
            options: Pool2dOptions { window_dimensions: Some([4, 4]), strides: [4, 4], ..Default::default() },
        },
    );
    let f = node(&mut g, Op::Reshape { input: p, new_shape: vec![1, 64] });
    let s = node(&mut g, Op::Softmax { input: f, axis: 1 });
    g.add_output("y", s).unwrap();
    let program = lower(&g).unwrap();
    check_plan(&program).unwrap();
    let scratch_total: usize = program
        .buffers
        .iter()
        .filter(|b| matches!(b.kind, kiln_ir::kernel::BufferKind::Scratch { .. }))
        .map(|b| b.byte_len().div_ceil(64) * 64)
        .sum();
    assert!(program.arena_bytes * 3 < scratch_total, "arena {} of {scratch_total} scratch bytes", program.arena_bytes);
    let xt = random_tensor(&mut Rng(11), Float32, &[1, 4, 16, 16]);
    check_graph("deep net", &g, &[("x".into(), xt)], Tol::Close { rtol: 1e-4, atol: 1e-5 });
}

#[test]
fn gelu_keeps_its_relative_precision_in_the_negative_tail() {
    let mut values: Vec<f32> = (0..=400).map(|i| -10.0 + i as f32 * 0.05).collect();
    values.extend([-13.7, -13.0, -12.3, -0.3 - 1e-6, 1e-30, -1e-30]);
    let x = Tensor::from_f32([values.len() as u32], &values).unwrap();
    let mut g = Graph::new();
    let i = g.add_input("x", x.desc().clone()).unwrap();
    let y = node(&mut g, Op::Unary { kind: UnaryOp::Gelu, input: i });
    g.add_output("y", y).unwrap();
    let feeds = [("x", &x)];
    let want = kiln_ir::interp::run(&g, &feeds).unwrap().remove(0).to_f32_vec();
    let got = eval(&lower(&g).unwrap(), &feeds).unwrap().remove(0).1.to_f32_vec();
    let ulps = |a: f32, b: f32| (a.to_bits() as i64 - b.to_bits() as i64).unsigned_abs();
    let worst =
        values.iter().zip(got.iter().zip(&want)).map(|(x, (a, b))| (ulps(*a, *b), *x)).max_by_key(|p| p.0).unwrap();
    println!("gelu: worst {} ulp at x = {}", worst.0, worst.1);
    // WPT's gelu tolerance is 18 ulp.
    assert!(worst.0 <= 18, "{worst:?}");
}

#[test]
fn element_preserving_ops_alias_their_input() {
    let mut g = Graph::new();
    let x = g.add_input("x", OperandDescriptor::new(Int64, [3, 1, 4])).unwrap();
    let a = node(&mut g, Op::Reshape { input: x, new_shape: vec![12] });
    let b = node(&mut g, Op::Expand { input: a, new_shape: vec![1, 12] });
    let c = node(&mut g, Op::Transpose { input: b, permutation: Some(vec![1, 0]) });
    let d = node(&mut g, Op::Slice { input: c, starts: vec![0, 0], sizes: vec![12, 1], strides: Some(vec![1, 3]) });
    let options = PadOptions::default();
    let e = node(&mut g, Op::Pad { input: d, beginning_padding: vec![0, 0], ending_padding: vec![0, 0], options });
    let f = node(&mut g, Op::Cast { input: e, data_type: Int64 });
    let h = node(&mut g, Op::Concat { inputs: vec![f], axis: 0 });
    let i = g.add_node(Op::Split { input: h, splits: Splits::Count(1), axis: 1 }, "").unwrap()[0];
    let j = node(&mut g, Op::Unary { kind: UnaryOp::Identity, input: i });
    // A real transpose at the end, then the aliased value as an output too.
    let k = node(&mut g, Op::Transpose { input: j, permutation: None });
    g.add_output("k", k).unwrap();
    g.add_output("j", j).unwrap();
    let p = lower(&g).unwrap();
    // One transpose and one copy into output `j`; no scratch at all.
    assert_eq!(p.kernels.len(), 2, "{p}");
    assert_eq!(p.arena_bytes, 0);
    let xt = random_tensor(&mut Rng(3), Int64, &[3, 1, 4]);
    check_graph("aliases", &g, &[("x".into(), xt)], Tol::Exact);
}
