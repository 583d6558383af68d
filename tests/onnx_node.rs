//! The ONNX backend node tests of the `onnx` package (1.22.0: 1,765
//! cases; scripts/fetch_onnx_data.sh extracts them to
//! `target/onnx-data/node`) on the `cpu` backend, through
//! `kiln_harness::onnx_tests` (what `kiln onnx-tests` prints).
//!
//! Cases whose operator or element types kiln does not map are not run
//! (the runner reports them as unmapped). Every mapped case passes except
//! those listed, with their reasons, in
//! `tests/data/onnx-node-expected-failures.txt`. An unlisted failure fails
//! this test, and so does a listed case that passes or no longer exists:
//! the list only shrinks.

use std::collections::BTreeMap;
use std::path::PathBuf;

use kiln::Backend;
use kiln_harness::onnx_tests::{CaseOutcome, Tolerance, counts, run_suite};

/// Passing cases when this test was written; the count only grows.
const PASSED: usize = 955;

fn node_dir() -> PathBuf {
    let dir = std::env::var_os("KILN_ONNX_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/onnx-data"))
        .join("node");
    assert!(
        dir.is_dir(),
        "{} is missing: run scripts/fetch_onnx_data.sh (scripts/test runs it before cargo test)",
        dir.display()
    );
    dir
}

/// `case -> reason` from the expected-failures file.
fn expected_failures() -> BTreeMap<String, String> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/onnx-node-expected-failures.txt");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut list = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((case, reason)) = line.split_once('\t') else {
            panic!("{}:{}: expected `case<TAB>reason`", path.display(), i + 1);
        };
        assert!(list.insert(case.to_string(), reason.to_string()).is_none(), "{}:{}: {case} listed twice", path.display(), i + 1);
    }
    list
}

#[test]
fn onnx_node_tests_pass_on_cpu_except_the_listed_ones() {
    let results = run_suite(&node_dir(), Backend::Cpu, "", Tolerance::default(), |_| {}).unwrap();
    let mut expected = expected_failures();
    let mut unexpected = Vec::new();
    let mut now_passing = Vec::new();
    for r in &results {
        let listed = expected.remove(&r.name);
        match (&r.outcome, listed) {
            (CaseOutcome::Failed(e), None) => unexpected.push(format!("{}: {e}", r.name)),
            (CaseOutcome::Passed, Some(_)) => now_passing.push(r.name.clone()),
            (CaseOutcome::Unmapped(_), Some(_)) => now_passing.push(format!("{} (now unmapped)", r.name)),
            _ => {}
        }
    }
    let (total, _) = counts(&results);
    let mapped = total.passed + total.failed;
    println!(
        "cpu: {} cases; {mapped} mapped: {} passed, {} failed ({:.1}%); {} unmapped",
        results.len(),
        total.passed,
        total.failed,
        100.0 * total.passed as f64 / mapped as f64,
        total.unmapped
    );
    assert!(unexpected.is_empty(), "{} unexpected failures:\n{}", unexpected.len(), unexpected.join("\n"));
    assert!(
        now_passing.is_empty(),
        "these cases no longer fail; remove them from tests/data/onnx-node-expected-failures.txt:\n{}",
        now_passing.join("\n")
    );
    let stale: Vec<_> = expected.into_keys().collect();
    assert!(stale.is_empty(), "the expected-failures list names cases that do not exist:\n{}", stale.join("\n"));
    assert!(total.passed >= PASSED, "{} passed, fewer than {PASSED}", total.passed);
}
