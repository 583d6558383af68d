//! Host kernels end to end: graphs that mix 32/64-bit integer arithmetic
//! (which the lowering turns into `Kernel::Host`, the operator run by the
//! reference interpreter on the host) with float kernels (generated code)
//! compile and run on the `cpu` and `kernels` backends, and agree with the
//! interpreter: integer results bit for bit, with values far beyond f32's
//! exact 2^24.

use kiln::codegen::cpu::{Listing, Target, listing};
use kiln::ir::kernel::Kernel;
use kiln::{
    Backend, Context, ContextOptions, DataType, Graph, GraphBuilder, Number, OperandDescriptor, Tensor, Values,
};

fn int_tensor(t: DataType, shape: &[u32], values: Vec<i128>) -> Tensor {
    Tensor::from_values(OperandDescriptor::new(t, shape.to_vec()), &Values::Int(values)).unwrap()
}

/// `x` f32 [4, 8], `i` int64 [8], `j` int32 [4, 8]:
/// - `a = relu(x @ w)`, `xi = cast(a * 1024, int64)` (generated kernels);
/// - `s = xi + i`, `jc = cast(j, int64)`, `m = max(s, jc)`, `eq = equal(m, jc)`,
///   `w = where(eq, s, jc)`, `k = j + j` (host kernels, int32/int64);
/// - `y = sigmoid(cast(w, f32) * 1e-12)` (generated kernels again).
///
/// Outputs: `y`, `w` (also as `w2`), `k`, `eq`.
fn mixed_graph() -> Graph {
    let b = GraphBuilder::new();
    let x = b.input("x", OperandDescriptor::new(DataType::Float32, [4, 8])).unwrap();
    let i = b.input("i", OperandDescriptor::new(DataType::Int64, [8])).unwrap();
    let j = b.input("j", OperandDescriptor::new(DataType::Int32, [4, 8])).unwrap();
    let weights: Vec<f32> = (0..64).map(|n| ((n * 37 % 17) as f32 - 8.0) / 8.0).collect();
    let w = b.constant_f32([8, 8], &weights).unwrap();
    let a = b.relu(b.matmul(x, w).unwrap()).unwrap();
    let scale = b.constant_scalar(DataType::Float32, Number::Float(1024.0)).unwrap();
    let xi = b.cast(b.mul(a, scale).unwrap(), DataType::Int64).unwrap();
    let s = b.add(xi, i).unwrap();
    let jc = b.cast(j, DataType::Int64).unwrap();
    let m = b.max(s, jc).unwrap();
    let eq = b.equal(m, jc).unwrap();
    let wv = b.where_(eq, s, jc).unwrap();
    let k = b.add(j, j).unwrap();
    let tiny = b.constant_scalar(DataType::Float32, Number::Float(1e-12)).unwrap();
    let y = b.sigmoid(b.mul(b.cast(wv, DataType::Float32).unwrap(), tiny).unwrap()).unwrap();
    b.build(&[("y", y), ("w", wv), ("w2", wv), ("k", k), ("eq", eq)]).unwrap()
}

fn mixed_inputs() -> Vec<(String, Tensor)> {
    // Multiples of 1/4 (and weights of 1/8): the float part is exact in f32 too.
    let x: Vec<f32> = (0..32).map(|n| ((n * 13 % 11) as f32 - 5.0) / 4.0).collect();
    // About ±2^40 (alternating by column) and 2^30: f32 rounds most of them.
    let i: Vec<i128> = (0..8).map(|n| if n % 2 == 0 { (1i128 << 40) + n } else { -(1i128 << 40) + n }).collect();
    let j: Vec<i128> = (0..32).map(|n| (1 << 30) + 3 * n - 50).collect();
    vec![
        ("x".into(), Tensor::from_f32([4, 8], &x).unwrap()),
        ("i".into(), int_tensor(DataType::Int64, &[8], i)),
        ("j".into(), int_tensor(DataType::Int32, &[4, 8], j)),
    ]
}

fn run(backend: Backend, graph: &Graph, inputs: &[(String, Tensor)]) -> Vec<(String, Tensor)> {
    let ctx = Context::new(ContextOptions { backend, threads: 2, ..Default::default() }).unwrap();
    let compiled = ctx.compile(graph.clone()).unwrap_or_else(|e| panic!("{backend}: {e}"));
    let feeds: Vec<(&str, &Tensor)> = inputs.iter().map(|(n, t)| (n.as_str(), t)).collect();
    ctx.compute(&compiled, &feeds).unwrap_or_else(|e| panic!("{backend}: {e}"))
}

#[test]
fn mixed_integer_and_float_graphs_agree_with_the_interpreter() {
    let graph = mixed_graph();
    let inputs = mixed_inputs();
    let expected = run(Backend::Interp, &graph, &inputs);
    // The integer results really are beyond f32 and exercise both `where` branches.
    let w = expected.iter().find(|(n, _)| n == "w").unwrap().1.values();
    let Values::Int(w) = w else { panic!() };
    assert!(w.iter().any(|&v| (v as f32) as i128 != v), "{w:?}");
    let Values::Int(eq) = expected.iter().find(|(n, _)| n == "eq").unwrap().1.values() else { panic!() };
    assert!(eq.contains(&0) && eq.contains(&1), "{eq:?}");

    let program = kiln::passes::lower(&graph).unwrap();
    let host: Vec<&str> = program
        .kernels
        .iter()
        .filter_map(|k| match k {
            Kernel::Host(h) => Some(h.op.name()),
            _ => None,
        })
        .collect();
    assert_eq!(host, ["add", "cast", "max", "equal", "where", "add"], "{program}");
    assert!(program.kernels.iter().any(|k| matches!(k, Kernel::Gemm { .. })), "{program}");

    for backend in [Backend::Cpu, Backend::Kernels] {
        let actual = run(backend, &graph, &inputs);
        assert_eq!(actual.len(), expected.len());
        for ((name, a), (ename, e)) in actual.iter().zip(&expected) {
            assert_eq!(name, ename);
            assert_eq!(a.desc(), e.desc(), "{backend}: {name}");
            if e.data_type().is_float() {
                for (x, y) in a.to_f32_vec().iter().zip(e.to_f32_vec()) {
                    assert!((x - y).abs() <= 1e-5 * y.abs().max(1.0), "{backend}: {name}: {x} vs {y}");
                }
            } else {
                assert_eq!(a.bytes(), e.bytes(), "{backend}: {name}: {:?} vs {:?}", a.values(), e.values());
            }
        }
    }
}

#[test]
fn host_kernels_are_profiled_and_listed_but_get_no_code() {
    let graph = mixed_graph();
    let inputs = mixed_inputs();
    let ctx = Context::new(ContextOptions { backend: Backend::Cpu, threads: 2, ..Default::default() }).unwrap();
    let compiled = ctx.compile(graph).unwrap();
    let feeds: Vec<(&str, &Tensor)> = inputs.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let program = compiled.program().unwrap();
    // One time per kernel, host kernels included.
    assert_eq!(ctx.profile(&compiled, &feeds).unwrap().len(), program.kernels.len());
    let clif = listing(program, &Target::host(), Listing::Clif).unwrap();
    let hosts = program.kernels.iter().filter(|k| k.is_host()).count();
    assert_eq!(
        clif.matches("runs on the host (the reference interpreter): no generated code").count(),
        hosts,
        "{clif}"
    );
    assert_eq!(clif.matches("function ").count(), program.kernels.len() - hosts, "{clif}");
    assert!(clif.contains("; kernel 0: gemm"), "{clif}");
    let text = program.to_string();
    let first_host = program.kernels.iter().position(|k| k.is_host()).unwrap();
    let line =
        text.lines().find(|l| l.starts_with(&format!("k{first_host}: host add("))).unwrap_or_else(|| panic!("{text}"));
    assert!(line.contains(" i64[4, 8]") && line.contains(" i64[8]"), "{line}");
}

#[test]
fn a_host_kernel_between_two_generated_ones_with_one_thread_and_many() {
    // neg on int64 between float work, on 1 and 3 threads: the order of
    // execution is the program's.
    let b = GraphBuilder::new();
    let x = b.input("x", OperandDescriptor::new(DataType::Float32, [3, 5])).unwrap();
    let xi = b.cast(b.floor(b.exp(x).unwrap()).unwrap(), DataType::Int64).unwrap();
    let big = b.constant_tensor(None, int_tensor(DataType::Int64, &[], vec![(1 << 50) + 1])).unwrap();
    let n = b.neg(b.sub(xi, big).unwrap()).unwrap();
    let y = b.tanh(b.cast(n, DataType::Float32).unwrap()).unwrap();
    let graph = b.build(&[("y", y), ("n", n)]).unwrap();
    let x: Vec<f32> = (0..15).map(|i| i as f32 * 0.7 - 3.0).collect();
    let inputs = vec![("x".to_string(), Tensor::from_f32([3, 5], &x).unwrap())];
    let expected = run(Backend::Interp, &graph, &inputs);
    for threads in [1, 3] {
        let ctx = Context::new(ContextOptions { backend: Backend::Cpu, threads, ..Default::default() }).unwrap();
        let compiled = ctx.compile(graph.clone()).unwrap();
        let feeds: Vec<(&str, &Tensor)> = inputs.iter().map(|(n, t)| (n.as_str(), t)).collect();
        let actual = ctx.compute(&compiled, &feeds).unwrap();
        assert_eq!(actual[1].1.bytes(), expected[1].1.bytes(), "{threads} threads");
        assert_eq!(actual[0].1.to_f32_vec(), expected[0].1.to_f32_vec(), "{threads} threads");
    }
}
