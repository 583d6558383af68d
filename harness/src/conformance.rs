//! The WebNN conformance runner: W3C Web Platform Tests (WPT) vectors run
//! through kiln and judged exactly as WPT judges them.
//!
//! The vectors live in `tests/data/wpt-webnn/` (one `<op>.json` per
//! operator; the README there documents the format and WPT's precision
//! rules). A run:
//!
//! 1. [`load_cases`] reads a file or a folder into typed [`Case`]s.
//! 2. [`build_case`] builds a case's graph with the [`GraphBuilder`]
//!    through the op table ([`kiln_frontend::op_table::build_call`]), the
//!    way WPT's `buildAndExecuteGraph` calls `MLGraphBuilder`, and checks
//!    every expected output's descriptor.
//! 3. [`run_case`] compiles and computes it on a [`kiln_runtime::Context`]
//!    and judges every output with the case's tolerance ([`check_output`]).
//! 4. [`run_cases`] does this for many cases, honouring an [`Exclusions`]
//!    list, and returns a [`Report`].
//!
//! A case that fails to build or to run is a failure with its error, never a
//! skip. Excluded cases are not run and are counted apart from passes and
//! failures.
//!
//! Judging replicates WPT's `utils.js` (see [`judge`]). Where kiln departs
//! from WPT, on purpose:
//! - NaN against NaN passes under every metric (WPT: yes for float32, no for
//!   float16, whose `toHalf(NaN)` is `0x7c01`, and no under ATOL).
//! - Under ATOL equal values pass, so equal infinities do (WPT computes
//!   `Inf − Inf = NaN` and fails).
//! - WPT's float16 check first compares the raw result bits with the
//!   expected *number* (`actual[i] === expected[i]`), which passes by
//!   coincidence when the two happen to be equal; kiln does not copy that.
//! - Integer data must be integral and in range (a `TypedArray` would wrap);
//!   a `null` element (lost upstream; such cases carry `lossy`) reads as NaN.
//! - A graph input is created once per name, however often it is used (WPT
//!   calls `builder.input` per use).
//! - kiln supports every data type, so WPT's `castedType` detour for
//!   unsupported types never applies.
//!
//! [`GraphBuilder`]: kiln_frontend::builder::GraphBuilder

mod case;
mod graph;
pub mod judge;
mod report;

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use kiln_ir::{OperandDescriptor, Tensor};
use kiln_runtime::{Context, ContextOptions};

pub use case::{
    Arg, Case, CaseInput, CaseOperator, CaseTensor, Data, Tolerance, load_cases, load_file, parse_file,
    parse_number_str,
};
pub use graph::{BuiltCase, build_case, encode_tensor};
pub use judge::{Element, ValueMismatch, check_element, check_output};
pub use kiln_runtime::Backend;
pub use report::{CaseResult, Counts, Outcome, Report};

/// The repository's `tests/data` folder (this crate sits in `harness/`).
fn repository_test_data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data")
}

/// The vectors shipped with kiln's sources (`tests/data/wpt-webnn`).
pub fn bundled_vectors_dir() -> PathBuf {
    repository_test_data().join("wpt-webnn")
}

/// Hand-checked cases, in the vectors' format, for the operators WPT has
/// no vectors for here (`tests/data/webnn-hand`, written with their
/// expected values computed by numpy by `scripts/webnn_hand_cases.py`).
pub fn hand_checked_vectors_dir() -> PathBuf {
    repository_test_data().join("webnn-hand")
}

/// The exclusion list shipped with kiln's sources
/// (`tests/data/wpt-excluded.txt`).
pub fn bundled_exclusions_file() -> PathBuf {
    repository_test_data().join("wpt-excluded.txt")
}

/// A file or case that could not be read; names the file and, where there
/// is one, the case.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}{}: {message}", .file.display(), fmt_case(.case))]
pub struct LoadError {
    pub file: PathBuf,
    pub case: Option<String>,
    pub message: String,
}

impl LoadError {
    fn new(file: &Path, case: Option<String>, message: impl Into<String>) -> Self {
        LoadError { file: file.to_path_buf(), case, message: message.into() }
    }
}

fn fmt_case(case: &Option<String>) -> String {
    case.as_ref().map_or_else(String::new, |c| format!(": case \"{c}\""))
}

/// Why a case failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Failure {
    /// The graph could not be built, or the case's data do not fit it.
    #[error("build: {0}")]
    Build(String),
    /// An output's descriptor differs from the expected one.
    #[error("output `{output}`: descriptor {actual}, expected {expected}")]
    Descriptor { output: String, expected: OperandDescriptor, actual: OperandDescriptor },
    /// Compiling or computing failed.
    #[error("run: {0}")]
    Run(String),
    /// Building or running panicked (a bug in kiln, reported, not fatal).
    #[error("panicked: {0}")]
    Panic(String),
    /// An output element is outside the tolerance.
    #[error("{0}")]
    Value(Box<ValueMismatch>),
}

/// Cases not to run, each with a reason. File format: one
/// `case name<TAB>reason` per line; blank lines and lines starting with `#`
/// are ignored.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Exclusions {
    reasons: BTreeMap<String, String>,
}

impl Exclusions {
    /// No exclusions.
    pub fn none() -> Self {
        Exclusions::default()
    }

    /// Parses the exclusion format; errors name the line.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut reasons = BTreeMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() || line.trim_start().starts_with('#') {
                continue;
            }
            let (name, reason) = line
                .split_once('\t')
                .filter(|(n, r)| !n.is_empty() && !r.trim().is_empty())
                .ok_or_else(|| format!("line {}: expected `case name<TAB>reason`", i + 1))?;
            if reasons.insert(name.to_string(), reason.trim().to_string()).is_some() {
                return Err(format!("line {}: case \"{name}\" is listed twice", i + 1));
            }
        }
        Ok(Exclusions { reasons })
    }

    /// Reads and parses an exclusion file.
    pub fn load(path: &Path) -> Result<Self, LoadError> {
        let text = fs::read_to_string(path).map_err(|e| LoadError::new(path, None, e.to_string()))?;
        Exclusions::parse(&text).map_err(|e| LoadError::new(path, None, e))
    }

    /// The reason `case_name` is excluded, if it is.
    pub fn reason(&self, case_name: &str) -> Option<&str> {
        self.reasons.get(case_name).map(String::as_str)
    }

    /// The excluded case names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.reasons.keys().map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.reasons.len()
    }

    pub fn is_empty(&self) -> bool {
        self.reasons.is_empty()
    }

    /// Excluded names that match none of `cases` (stale entries).
    pub fn unknown<'a>(&'a self, cases: &[Case]) -> Vec<&'a str> {
        self.names().filter(|n| !cases.iter().any(|c| c.name == *n)).collect()
    }
}

/// Builds, compiles, computes and judges one case on `context`.
pub fn run_case(context: &Context, case: &Case) -> Result<(), Failure> {
    let BuiltCase { graph, feeds } = build_case(case)?;
    let compiled = context.compile(graph).map_err(|e| Failure::Run(e.to_string()))?;
    let feed_refs: Vec<(&str, &Tensor)> = feeds.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let outputs = context.compute(&compiled, &feed_refs).map_err(|e| Failure::Run(e.to_string()))?;
    for (name, expected) in &case.expected {
        let actual = outputs
            .iter()
            .find_map(|(n, t)| (n == name).then_some(t))
            .ok_or_else(|| Failure::Run(format!("the backend returned no output `{name}`")))?;
        check_output(name, expected, actual, case.tolerance)?;
    }
    Ok(())
}

/// Runs every case not in `exclusions` on a fresh context for `backend` and
/// reports each outcome, in the order of `cases`. A panic inside kiln fails
/// that case ([`Failure::Panic`]) and the run goes on.
pub fn run_cases(cases: &[Case], backend: Backend, exclusions: &Exclusions) -> Report {
    run_cases_observed(cases, backend, exclusions, |_| {})
}

/// [`run_cases`], with `observe` seeing each result as it completes (for
/// progress).
pub fn run_cases_observed(
    cases: &[Case],
    backend: Backend,
    exclusions: &Exclusions,
    mut observe: impl FnMut(&CaseResult),
) -> Report {
    #[allow(clippy::needless_update)]
    let context = Context::new(ContextOptions { backend, ..ContextOptions::default() });
    let results = cases
        .iter()
        .map(|case| {
            let outcome = match (exclusions.reason(&case.name), &context) {
                (Some(reason), _) => Outcome::Excluded(reason.to_string()),
                (None, Err(e)) => Outcome::Failed(Failure::Run(format!("cannot create a {backend} context: {e}"))),
                (None, Ok(context)) => outcome_of(run_guarded(context, case)),
            };
            let result = CaseResult { op: case.op.clone(), name: case.name.clone(), outcome };
            observe(&result);
            result
        })
        .collect();
    Report { backend, results }
}

fn outcome_of(result: Result<(), Failure>) -> Outcome {
    match result {
        Ok(()) => Outcome::Passed,
        Err(f) => Outcome::Failed(f),
    }
}

/// [`run_case`], with a panic turned into [`Failure::Panic`].
fn run_guarded(context: &Context, case: &Case) -> Result<(), Failure> {
    panic::catch_unwind(AssertUnwindSafe(|| run_case(context, case))).unwrap_or_else(|payload| {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a non-string panic payload".to_string());
        Err(Failure::Panic(message))
    })
}

impl fmt::Display for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] {}", self.op, self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exclusions_parse_names_and_reasons() {
        let text = "# comment\n\nabs float32 1D tensor\tlossy data\n  # indented comment\nsplit x\t  reason two \n";
        let ex = Exclusions::parse(text).unwrap();
        assert_eq!(ex.len(), 2);
        assert_eq!(ex.reason("abs float32 1D tensor"), Some("lossy data"));
        assert_eq!(ex.reason("split x"), Some("reason two"));
        assert_eq!(ex.reason("split"), None);
        assert_eq!(Exclusions::parse("no tab here").unwrap_err(), "line 1: expected `case name<TAB>reason`");
        assert_eq!(Exclusions::parse("a\t\n").unwrap_err(), "line 1: expected `case name<TAB>reason`");
        assert_eq!(Exclusions::parse("a\tx\na\ty").unwrap_err(), "line 2: case \"a\" is listed twice");
        assert!(Exclusions::parse("# only comments\n").unwrap().is_empty());
    }

    fn relu_case(name: &str, out_shape: &str, out_data: &str) -> Case {
        let text = format!(
            r#"{{"op": "relu", "cases": [{{"name": "{name}", "graph": {{
                "inputs": {{"x": {{"descriptor": {{"dataType": "float32", "shape": [2]}}, "data": [-1, 2]}}}},
                "operators": [{{"name": "relu", "arguments": [{{"input": "x"}}], "outputs": "y"}}],
                "expectedOutputs": {{"y": {{"descriptor": {{"dataType": "float32", "shape": {out_shape}}}, "data": {out_data}}}}}}},
                "tolerance": {{"metricType": "ULP", "value": 0}}}}]}}"#
        );
        parse_file(Path::new("relu.json"), &text).unwrap().remove(0)
    }

    #[test]
    fn run_cases_counts_every_case_and_never_skips() {
        let cases = vec![
            relu_case("good", "[2]", "[0, 2]"),
            relu_case("bad shape", "[3]", "0"),
            relu_case("skipped", "[2]", "[0, 2]"),
        ];
        let exclusions = Exclusions::parse("skipped\tbecause\n").unwrap();
        let report = run_cases(&cases, Backend::Interp, &exclusions);
        let c = report.counts();
        assert_eq!((c.total(), c.failed, c.excluded), (3, c.failed, 1));
        assert_eq!(c.passed + c.failed, 2);
        let failures: Vec<_> = report.failures().map(|(r, f)| (r.name.as_str(), f.to_string())).collect();
        assert!(failures.contains(&("bad shape", "output `y`: descriptor f32[2], expected f32[3]".to_string())));
        assert!(matches!(report.results[2].outcome, Outcome::Excluded(ref r) if r == "because"));

        let json = report.to_json();
        assert_eq!(json["backend"], "interp");
        assert_eq!(json["total"], 3);
        assert_eq!(json["excluded"], 1);
        assert_eq!(json["passed"].as_u64().unwrap() + json["failed"].as_u64().unwrap(), 2);
        assert_eq!(json["ops"]["relu"]["excluded"], 1);
        assert_eq!(json["ops"].as_object().unwrap().len(), 1);

        let mut text = Vec::new();
        report.write_summary(&mut text, true).unwrap();
        let text = String::from_utf8(text).unwrap();
        assert!(text.contains("FAILED [relu] bad shape: output `y`: descriptor f32[2], expected f32[3]"), "{text}");
        assert!(text.contains("EXCLUDED [relu] skipped: because"), "{text}");
        assert!(text.contains("total 3: "), "{text}");
    }
}
