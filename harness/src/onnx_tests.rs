//! The ONNX backend test runner: folders holding `model.onnx` and
//! `test_data_set_N/{input,output}_K.pb` (the layout of the `onnx` package's
//! node tests, and of kiln's generated model tests).
//!
//! A case is *mapped* when every operator type of its model is in kiln's
//! ONNX table and every element type it uses is one kiln has (no
//! `DOUBLE`, `INT16`, float8, strings, sequences); only mapped cases run.
//! Symbolic dimensions are bound from the input files' shapes. An input
//! the importer needs at load time (a `Reshape` shape, `Reduce` axes,
//! `Resize` scales: static attributes in WebNN) is bound to its test value
//! as a constant, the way `LoadOptions::constants` lets users do it; the
//! result records it. Outputs are judged like `onnx.backend.test`'s
//! `assert_allclose`, per element: `|actual - expected| <= atol + rtol *
//! |expected|`, NaN matching NaN, integers and booleans exactly.

use std::collections::BTreeMap;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use kiln_frontend::LoadOptions;
use kiln_frontend::onnx::{OnnxError, OnnxModel, read_tensor};
use kiln_ir::{Tensor, Values};
use kiln_runtime::{Backend, Context, ContextOptions};

/// Element tolerance for floating-point outputs.
#[derive(Clone, Copy, Debug)]
pub struct Tolerance {
    pub rtol: f64,
    pub atol: f64,
}

impl Default for Tolerance {
    /// `onnx.backend.test`'s defaults (rtol 1e-3, atol 1e-7) with atol
    /// raised to 1e-5: kiln computes in float32 with fused multiply-adds
    /// and polynomial transcendental functions.
    fn default() -> Self {
        Tolerance { rtol: 1e-3, atol: 1e-5 }
    }
}

/// What happened to one case.
#[derive(Clone, Debug, PartialEq)]
pub enum CaseOutcome {
    Passed,
    /// The message says which step failed and how.
    Failed(String),
    /// Not run: these operator types are not in the table, or these
    /// element types are not kiln's.
    Unmapped(Vec<String>),
}

/// One case's outcome, with the operator types of its model.
#[derive(Clone, Debug)]
pub struct CaseResult {
    pub name: String,
    pub operators: Vec<String>,
    pub outcome: CaseOutcome,
    /// Inputs bound to their test values at load time.
    pub bound: Vec<String>,
}

/// The case folders under `root` (those holding a `model.onnx`), sorted.
pub fn case_dirs(root: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("model.onnx").is_file())
        .collect();
    dirs.sort();
    Ok(dirs)
}

/// The tensors `prefix_0.pb`, `prefix_1.pb`, ... in `dir`.
pub fn read_tensors(dir: &Path, prefix: &str) -> Result<Vec<(String, Tensor)>, String> {
    let mut tensors = Vec::new();
    for i in 0.. {
        let path = dir.join(format!("{prefix}_{i}.pb"));
        if !path.is_file() {
            break;
        }
        tensors.push(read_tensor(&path).map_err(|e| e.to_string())?);
    }
    Ok(tensors)
}

/// Runs one case folder on `context`.
pub fn run_case(context: &Context, dir: &Path, tolerance: Tolerance) -> CaseResult {
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let model = match OnnxModel::open(dir.join("model.onnx")) {
        Ok(m) => m,
        Err(e) => {
            let outcome = CaseOutcome::Failed(format!("open: {e}"));
            return CaseResult { name, operators: Vec::new(), outcome, bound: Vec::new() };
        }
    };
    let operators: Vec<String> = model.operator_counts().into_keys().collect();
    let mut unmapped: Vec<String> = model.unmapped_nodes().into_iter().map(|u| u.op_type).collect();
    unmapped.sort();
    unmapped.dedup();
    unmapped.extend(model.unsupported_types().into_iter().map(|t| format!("element type {t}")));
    let mut bound = Vec::new();
    let outcome = if !unmapped.is_empty() {
        CaseOutcome::Unmapped(unmapped)
    } else {
        let result = panic::catch_unwind(AssertUnwindSafe(|| run_model(context, &model, dir, tolerance, &mut bound)))
            .unwrap_or_else(|payload| {
                let message = payload
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                Err(format!("panic: {message}"))
            });
        match result {
            Ok(()) => CaseOutcome::Passed,
            Err(e) => CaseOutcome::Failed(e),
        }
    };
    CaseResult { name, operators, outcome, bound }
}

/// Imports, compiles and runs `model` on every `test_data_set_*` in `dir`.
fn run_model(
    context: &Context,
    model: &OnnxModel,
    dir: &Path,
    tolerance: Tolerance,
    bound: &mut Vec<String>,
) -> Result<(), String> {
    let mut sets: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| e.to_string())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir() && p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("test_data_set_")))
        .collect();
    sets.sort();
    if sets.is_empty() {
        return Err("no test_data_set_* folder".into());
    }
    let input_names: Vec<String> = model.input_names().into_iter().map(str::to_string).collect();
    let output_names: Vec<String> = model.output_names().into_iter().map(str::to_string).collect();
    for set in sets {
        let set_name = set.file_name().unwrap().to_string_lossy().into_owned();
        let inputs = read_tensors(&set, "input")?;
        let expected = read_tensors(&set, "output")?;
        if inputs.len() > input_names.len() {
            return Err(format!("{set_name}: {} input files for {} model inputs", inputs.len(), input_names.len()));
        }
        let mut options = LoadOptions::default();
        let feeds: Vec<(String, Tensor)> =
            inputs.into_iter().zip(&input_names).map(|((_, t), name)| (name.clone(), t)).collect();
        for (name, t) in &feeds {
            options.shapes.insert(name.clone(), t.shape().dims().to_vec());
        }
        let graph = loop {
            match model.to_graph(&options) {
                Ok(graph) => break graph,
                // Each retry binds at least one more input, so this ends.
                Err(OnnxError::Unsupported(nodes))
                    if nodes.iter().all(|n| n.needs_values.iter().any(|v| !options.constants.contains_key(v))) =>
                {
                    for name in nodes.iter().flat_map(|n| &n.needs_values) {
                        let (_, value) = feeds.iter().find(|(n, _)| n == name).ok_or_else(|| format!("no test value for `{name}`"))?;
                        options.shapes.remove(name);
                        options.constants.insert(name.clone(), value.clone());
                        if !bound.contains(name) {
                            bound.push(name.clone());
                        }
                    }
                }
                Err(e) => return Err(format!("import: {e}")),
            }
        };
        let compiled = context.compile(graph).map_err(|e| format!("compile: {e}"))?;
        // Bound and zero-size inputs are constants now, not fed.
        let graph = compiled.graph();
        let feed_refs: Vec<(&str, &Tensor)> = feeds
            .iter()
            .filter(|(n, _)| graph.inputs().iter().any(|&id| graph.input_name(id) == Some(n.as_str())))
            .map(|(n, t)| (n.as_str(), t))
            .collect();
        let outputs = context.compute(&compiled, &feed_refs).map_err(|e| format!("compute: {e}"))?;
        if expected.len() != output_names.len() {
            return Err(format!("{set_name}: {} output files for {} model outputs", expected.len(), output_names.len()));
        }
        for ((_, want), name) in expected.iter().zip(&output_names) {
            let got = outputs
                .iter()
                .find_map(|(n, t)| (n == name).then_some(t))
                .ok_or_else(|| format!("no output `{name}`"))?;
            compare(got, want, tolerance).map_err(|e| format!("{set_name}: output `{name}`: {e}"))?;
        }
    }
    Ok(())
}

/// Compares shapes and every element.
pub fn compare(actual: &Tensor, expected: &Tensor, tolerance: Tolerance) -> Result<(), String> {
    if actual.shape() != expected.shape() {
        return Err(format!("shape {} expected, got {}", expected.shape(), actual.shape()));
    }
    let mismatch = |i: usize, a: String, e: String| format!("element {i}: expected {e}, got {a}");
    match (actual.values(), expected.values()) {
        (Values::Float(a), Values::Float(e)) => {
            let mut worst: Option<(usize, f64)> = None;
            let mut bad = 0usize;
            for (i, (&x, &y)) in a.iter().zip(&e).enumerate() {
                let ok = (x.is_nan() && y.is_nan()) || x == y || (x - y).abs() <= tolerance.atol + tolerance.rtol * y.abs();
                if !ok {
                    bad += 1;
                    let err = if (x - y).abs().is_nan() { f64::INFINITY } else { (x - y).abs() };
                    if worst.is_none_or(|(_, w)| err > w) {
                        worst = Some((i, err));
                    }
                }
            }
            match worst {
                None => Ok(()),
                Some((i, _)) => Err(format!(
                    "{bad} of {} elements differ beyond rtol {} atol {}; worst {}",
                    a.len(),
                    tolerance.rtol,
                    tolerance.atol,
                    mismatch(i, a[i].to_string(), e[i].to_string())
                )),
            }
        }
        (Values::Int(a), Values::Int(e)) => match a.iter().zip(&e).position(|(x, y)| x != y) {
            None => Ok(()),
            Some(i) => Err(mismatch(i, a[i].to_string(), e[i].to_string())),
        },
        _ => Err(format!("data type {} expected, got {}", expected.data_type(), actual.data_type())),
    }
}

/// Pass/fail counts of the mapped cases, per operator type.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub passed: usize,
    pub failed: usize,
    pub unmapped: usize,
}

/// Runs every case folder under `root` whose name contains `filter`, on
/// `backend`; `progress` sees each result as it completes.
pub fn run_suite(
    root: &Path,
    backend: Backend,
    filter: &str,
    tolerance: Tolerance,
    mut progress: impl FnMut(&CaseResult),
) -> Result<Vec<CaseResult>, String> {
    let context = Context::new(ContextOptions { backend, ..ContextOptions::default() }).map_err(|e| e.to_string())?;
    let dirs = case_dirs(root).map_err(|e| format!("{}: {e}", root.display()))?;
    if dirs.is_empty() {
        return Err(format!("{}: no case folders (folders holding a model.onnx)", root.display()));
    }
    let mut results = Vec::new();
    for dir in dirs.iter().filter(|d| d.file_name().is_some_and(|n| n.to_string_lossy().contains(filter))) {
        let r = run_case(&context, dir, tolerance);
        progress(&r);
        results.push(r);
    }
    Ok(results)
}

/// Totals, and counts per operator type (a case counts for every operator
/// type of its model).
pub fn counts(results: &[CaseResult]) -> (Counts, BTreeMap<String, Counts>) {
    let mut total = Counts::default();
    let mut per_op: BTreeMap<String, Counts> = BTreeMap::new();
    for r in results {
        let bump = |c: &mut Counts| match r.outcome {
            CaseOutcome::Passed => c.passed += 1,
            CaseOutcome::Failed(_) => c.failed += 1,
            CaseOutcome::Unmapped(_) => c.unmapped += 1,
        };
        bump(&mut total);
        for op in &r.operators {
            bump(per_op.entry(op.clone()).or_default());
        }
    }
    (total, per_op)
}
