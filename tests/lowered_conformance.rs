//! WebNN conformance on the backends that run the lowered graph: `kernels`
//! (the kernel-IR evaluator) and `cpu` (native code from Cranelift). Both
//! see every WPT vector lowered to the kernel IR (`kiln_passes::lower`), so
//! they share one list of what the lowering refuses.
//!
//! The cases that fail, and why, are listed in
//! `tests/data/lowering-expected-failures.txt`. A failure not in that list
//! fails this test, and so does a listed case that passes (take it off the
//! list): the list only shrinks.

use std::collections::BTreeMap;

use kiln::conformance::{
    Backend, Exclusions, Outcome, bundled_exclusions_file, bundled_vectors_dir, load_cases, run_cases,
};

/// The pass count measured when the backends were added (of 1,477 cases, 7
/// excluded as lossy; the interpreter passes 1,470).
const LOWERED_PASSED: usize = 1441;

/// `(operator, case name) -> reason` from the expected-failures file.
fn expected_failures() -> BTreeMap<(String, String), String> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/lowering-expected-failures.txt");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut list = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let mut fields = line.split('\t');
        let (Some(op), Some(name), Some(reason), None) = (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            panic!("{}:{}: expected `operator<TAB>case name<TAB>reason`", path.display(), i + 1);
        };
        let previous = list.insert((op.to_string(), name.to_string()), reason.to_string());
        assert!(previous.is_none(), "{}:{}: [{op}] {name} is listed twice", path.display(), i + 1);
    }
    list
}

#[test]
fn wpt_cases_pass_on_the_kernels_backend_except_the_listed_ones() {
    check_backend(Backend::Kernels);
}

#[test]
fn wpt_cases_pass_on_the_cpu_backend_except_the_listed_ones() {
    check_backend(Backend::Cpu);
}

fn check_backend(backend: Backend) {
    let cases = load_cases(&bundled_vectors_dir()).unwrap();
    let exclusions = Exclusions::load(&bundled_exclusions_file()).unwrap();
    let report = run_cases(&cases, backend, &exclusions);
    let mut expected = expected_failures();
    let mut unexpected = Vec::new();
    let mut now_passing = Vec::new();
    for r in &report.results {
        let listed = expected.remove(&(r.op.clone(), r.name.clone()));
        match (&r.outcome, listed) {
            (Outcome::Failed(f), None) => unexpected.push(format!("[{}] {}: {f}", r.op, r.name)),
            (Outcome::Passed, Some(_)) => now_passing.push(format!("[{}] {}", r.op, r.name)),
            _ => {}
        }
    }
    let counts = report.counts();
    println!("{backend}: {} passed, {} failed, {} excluded", counts.passed, counts.failed, counts.excluded);
    assert!(unexpected.is_empty(), "{backend}: {} unexpected failures:\n{}", unexpected.len(), unexpected.join("\n"));
    assert!(
        now_passing.is_empty(),
        "{backend}: these cases pass now; remove them from tests/data/lowering-expected-failures.txt:\n{}",
        now_passing.join("\n")
    );
    let stale: Vec<_> = expected.keys().map(|(op, name)| format!("[{op}] {name}")).collect();
    assert!(stale.is_empty(), "the expected-failures list names cases that do not exist:\n{}", stale.join("\n"));
    assert!(counts.passed >= LOWERED_PASSED, "{backend}: {} passed, fewer than {LOWERED_PASSED}", counts.passed);
}

#[test]
fn compiling_an_unsupported_graph_names_every_offending_node() {
    use kiln::{Context, ContextOptions, DataType, GraphBuilder, OperandDescriptor, RuntimeError};
    let b = GraphBuilder::new();
    let x = b.input("x", OperandDescriptor::new(DataType::Int64, [4])).unwrap();
    let y = b.neg(x).unwrap();
    let z = b.abs(y).unwrap();
    let graph = b.build(&[("z", z)]).unwrap();
    let ctx = Context::new(ContextOptions { backend: Backend::Kernels, threads: 1 }).unwrap();
    let err = ctx.compile(graph).unwrap_err();
    let RuntimeError::Lower(kiln::passes::LowerError::Unsupported(list)) = &err else { panic!("{err}") };
    assert_eq!(list.iter().map(|u| u.op).collect::<Vec<_>>(), ["neg", "abs"]);
    assert!(err.to_string().starts_with("lowering: 2 unsupported nodes: neg: int64 operands"), "{err}");
}

#[test]
fn the_support_table_knows_every_operator() {
    for name in kiln::frontend::op_table::operator_names() {
        assert!(kiln::passes::op_support(name).is_some(), "{name} is missing from kiln_passes::op_support");
    }
    assert_eq!(kiln::passes::op_support("frobnicate"), None);
}
