//! WebNN conformance on the backends that run the lowered graph: `kernels`
//! (the kernel-IR evaluator), `cpu` (native code from Cranelift) and `gpu`
//! (WGSL through wgpu). All
//! see every WPT vector lowered to the kernel IR (`kiln_passes::lower`),
//! with host kernels for the nodes f32 kernels cannot compute exactly.
//!
//! Every case the interpreter passes must pass on both. (Until host kernels
//! came, `tests/data/lowering-expected-failures.txt` listed the 29 cases of
//! 32/64-bit integer arithmetic, casts and reductions the lowering refused,
//! as a list that could only shrink; it has shrunk to nothing and is gone.)

use kiln_harness::conformance::{
    Backend, Case, Exclusions, Outcome, bundled_exclusions_file, bundled_vectors_dir, hand_checked_vectors_dir,
    load_cases, run_cases,
};

/// The pass count: every case of the 1,546 but the 7 excluded as lossy, as
/// on the interpreter. Guards against vectors silently going missing.
const LOWERED_PASSED: usize = 1539;

/// The cases excluded on the gpu backend only (`tests/data/wpt-excluded-gpu.txt`).
const GPU_EXCLUDED: usize = 2;

#[test]
fn wpt_cases_pass_on_the_kernels_backend() {
    check_backend(Backend::Kernels);
}

#[test]
fn wpt_cases_pass_on_the_cpu_backend() {
    check_backend(Backend::Cpu);
}

/// WGSL shaders on the system's GPU adapter (lavapipe in CI, see
/// tests/gpu.rs), host kernels between them.
#[test]
fn wpt_cases_pass_on_the_gpu_backend() {
    check_backend(Backend::Gpu);
}

/// The gpu-only exclusions name existing cases, each with a reason, and
/// are not also excluded everywhere.
#[test]
fn the_gpu_exclusions_name_existing_cases() {
    let cases = load_cases(&bundled_vectors_dir()).unwrap();
    let gpu = Exclusions::load(&gpu_exclusions_file()).unwrap();
    let everywhere = Exclusions::load(&bundled_exclusions_file()).unwrap();
    assert_eq!(gpu.len(), GPU_EXCLUDED);
    assert_eq!(gpu.unknown(&cases), Vec::<&str>::new(), "stale gpu exclusions");
    assert!(gpu.names().all(|n| everywhere.reason(n).is_none()));
}

fn gpu_exclusions_file() -> std::path::PathBuf {
    bundled_exclusions_file().with_file_name("wpt-excluded-gpu.txt")
}

/// The hand-checked cases of the operators WPT has no vectors for here
/// (`tests/data/webnn-hand`): all 140 pass on each lowered backend.
#[test]
fn hand_checked_cases_pass_on_the_kernels_backend() {
    check_cases(&load_cases(&hand_checked_vectors_dir()).unwrap(), Backend::Kernels, &Exclusions::none(), 140);
}

#[test]
fn hand_checked_cases_pass_on_the_cpu_backend() {
    check_cases(&load_cases(&hand_checked_vectors_dir()).unwrap(), Backend::Cpu, &Exclusions::none(), 140);
}

#[test]
fn hand_checked_cases_pass_on_the_gpu_backend() {
    check_cases(&load_cases(&hand_checked_vectors_dir()).unwrap(), Backend::Gpu, &Exclusions::none(), 140);
}

fn check_backend(backend: Backend) {
    let cases = load_cases(&bundled_vectors_dir()).unwrap();
    let mut text = std::fs::read_to_string(bundled_exclusions_file()).unwrap();
    let mut passed = LOWERED_PASSED;
    if backend == Backend::Gpu {
        text.push_str(&std::fs::read_to_string(gpu_exclusions_file()).unwrap());
        passed -= GPU_EXCLUDED;
    }
    let exclusions = Exclusions::parse(&text).unwrap();
    check_cases(&cases, backend, &exclusions, passed);
}

/// Every case passes on `backend` (none fails), at least `passed` of them.
fn check_cases(cases: &[Case], backend: Backend, exclusions: &Exclusions, passed: usize) {
    let report = run_cases(cases, backend, exclusions);
    let failures: Vec<String> = report
        .results
        .iter()
        .filter_map(|r| match &r.outcome {
            Outcome::Failed(f) => Some(format!("[{}] {}: {f}", r.op, r.name)),
            _ => None,
        })
        .collect();
    let counts = report.counts();
    println!("{backend}: {} passed, {} failed, {} excluded", counts.passed, counts.failed, counts.excluded);
    assert!(failures.is_empty(), "{backend}: {} failures:\n{}", failures.len(), failures.join("\n"));
    assert!(counts.passed >= passed, "{backend}: {} passed, fewer than {passed}", counts.passed);
}

#[test]
fn wide_integer_graphs_compile_with_host_kernels() {
    // The graph that used to be refused (neg and abs of int64) compiles on
    // both lowered backends and is exact beyond 2^24, i64::MIN included.
    use kiln::{Context, ContextOptions, DataType, GraphBuilder, OperandDescriptor, Tensor, Values};
    let b = GraphBuilder::new();
    let x = b.input("x", OperandDescriptor::new(DataType::Int64, [4])).unwrap();
    let y = b.neg(x).unwrap();
    let z = b.abs(y).unwrap();
    let graph = b.build(&[("z", z)]).unwrap();
    let values = Values::Int(vec![i64::MIN as i128, -((1 << 40) + 1), (1 << 24) + 1, -3]);
    let input = Tensor::from_values(OperandDescriptor::new(DataType::Int64, [4]), &values).unwrap();
    for backend in [Backend::Kernels, Backend::Cpu] {
        let ctx = Context::new(ContextOptions { backend, threads: 1, ..Default::default() }).unwrap();
        let compiled = ctx.compile(graph.clone()).unwrap_or_else(|e| panic!("{backend}: {e}"));
        let kinds: Vec<&str> = compiled.program().unwrap().kernels.iter().map(|k| k.kind()).collect();
        assert_eq!(kinds, ["host", "host"], "{backend}");
        let out = ctx.compute(&compiled, &[("x", &input)]).unwrap();
        let want = Values::Int(vec![i64::MIN as i128, (1 << 40) + 1, (1 << 24) + 1, 3]);
        assert_eq!(out[0].1.values(), want, "{backend}");
    }
    // Without host kernels the lowering still names every node it refuses.
    let err = kiln::passes::lower_with(&graph, kiln::passes::LowerOptions { host_kernels: false, ..Default::default() }).unwrap_err();
    let kiln::passes::LowerError::Unsupported(list) = &err else { panic!("{err}") };
    assert_eq!(list.iter().map(|u| u.op).collect::<Vec<_>>(), ["neg", "abs"]);
    assert!(err.to_string().starts_with("2 unsupported nodes: neg: int64 operands"), "{err}");
}

#[test]
fn the_support_table_knows_every_operator() {
    for name in kiln::frontend::op_table::operator_names() {
        assert!(kiln::passes::op_support(name).is_some(), "{name} is missing from kiln_passes::op_support");
    }
    assert_eq!(kiln::passes::op_support("frobnicate"), None);
}
