//! `kiln explain`: what the compiler did to a model, for a person (text)
//! or a tool (JSON): the operators before and after the graph passes, the
//! rewrite rules that fired, the time of every pass, the modelled cost
//! before and after rewriting, and which graph operators every kernel
//! computes (fusion groups, by operator and label).

use std::collections::BTreeMap;
use std::fmt::Write;

use kiln_ir::kernel::Kernel;
use kiln_ir::Graph;
use kiln_passes::{Compiled, FusionKind};
use serde_json::{json, Value};

/// Operators of `graph` by name, counted.
fn census(graph: &Graph) -> BTreeMap<&'static str, usize> {
    let mut counts = BTreeMap::new();
    for node in graph.nodes() {
        *counts.entry(node.op.name()).or_default() += 1;
    }
    counts
}

/// `op 'label'` of node `n` of `graph` (`op` alone when unlabelled).
pub(crate) fn node_name(graph: &Graph, n: usize) -> String {
    let node = &graph.nodes()[n];
    if node.label.is_empty() { node.op.name().to_string() } else { format!("{} '{}'", node.op.name(), node.label) }
}

/// A kernel's iteration domain as `kiln bench --profile` and `kiln explain`
/// print it (a host kernel: its operator).
pub fn kernel_domain(kernel: &Kernel) -> String {
    match kernel {
        Kernel::Map { domain, .. } | Kernel::Reduce { domain, .. } | Kernel::Gemm { domain, .. } => format!("{domain:?}"),
        Kernel::Gather { outer, index_count, inner, .. } => format!("[{outer}, {index_count}, {inner}]"),
        Kernel::Host(h) => h.to_string(),
    }
}

/// The fusions of `compiled`, counted by kind.
fn fusion_counts(compiled: &Compiled) -> BTreeMap<&'static str, usize> {
    let mut counts = BTreeMap::new();
    for f in &compiled.report.fusions {
        *counts.entry(fusion_kind(f.kind)).or_default() += 1;
    }
    counts
}

fn fusion_kind(kind: FusionKind) -> &'static str {
    match kind {
        FusionKind::GemmEpilogue => "gemm epilogue",
        FusionKind::MapMap => "map into map",
        FusionKind::ReduceFinish => "reduce finish",
    }
}

/// The explanation of compiling `original` to `compiled`, as JSON.
pub fn to_json(original: &Graph, compiled: &Compiled) -> Value {
    let report = &compiled.report;
    let rewrite = report.rewrite.as_ref().map(|r| {
        json!({
            "iterations": r.iterations,
            "stop": format!("{:?}", r.stop),
            "egraph_nodes": r.egraph_nodes,
            "egraph_classes": r.egraph_classes,
            "cost_before_ns": r.cost_before,
            "cost_after_ns": r.cost_after,
            "fired": r.fired,
        })
    });
    let fusions = fusion_counts(compiled);
    let kernels: Vec<Value> = compiled
        .program
        .kernels
        .iter()
        .zip(&report.kernel_nodes)
        .enumerate()
        .map(|(k, (kernel, nodes))| {
            json!({
                "kernel": k,
                "kind": kernel.kind(),
                "domain": kernel_domain(kernel),
                "operators": nodes.iter().map(|&n| node_name(&compiled.graph, n)).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "operators_before": report.operators_before,
        "operators_after": report.operators_after,
        "operators_by_name_before": census(original),
        "operators_by_name_after": census(&compiled.graph),
        "folded": report.folded.nodes.len(),
        "rewrite": rewrite,
        "layout": json!({
            "channels_first": report.layout.channels_first,
            "transposes": report.layout.transposes,
        }),
        "kernels_lowered": report.kernels_lowered,
        "kernels": kernels,
        "fusions": fusions,
        "views": report.views.len(),
        "copies_removed": report.views.iter().map(|v| v.kernels.len()).sum::<usize>(),
        "passes_ms": report.timings.iter().map(|(p, t)| (p.name(), t.as_secs_f64() * 1e3)).collect::<BTreeMap<_, _>>(),
        "total_ms": report.total().as_secs_f64() * 1e3,
    })
}

/// The explanation as text.
pub fn to_text(original: &Graph, compiled: &Compiled) -> String {
    let report = &compiled.report;
    let mut s = String::new();
    let (before, after) = (census(original), census(&compiled.graph));
    let _ = writeln!(s, "operators: {} -> {} after the graph passes", report.operators_before, report.operators_after);
    let names: std::collections::BTreeSet<_> = before.keys().chain(after.keys()).collect();
    let changed: Vec<String> = names
        .into_iter()
        .filter_map(|n| {
            let (b, a) = (before.get(n).copied().unwrap_or(0), after.get(n).copied().unwrap_or(0));
            (a != b).then(|| format!("{n} {b} -> {a}"))
        })
        .collect();
    if !changed.is_empty() {
        let _ = writeln!(s, "  changed: {}", changed.join(", "));
    }
    let fusions: Vec<String> = fusion_counts(compiled).iter().map(|(k, n)| format!("{n} {k}")).collect();
    let _ = writeln!(
        s,
        "kernels: {} lowered -> {} after fusion ({} fusions{}{})",
        report.kernels_lowered,
        compiled.program.kernels.len(),
        report.fusions.len(),
        if fusions.is_empty() { "" } else { ": " },
        fusions.join(", ")
    );
    let _ = writeln!(s, "passes:");
    for (pass, time) in &report.timings {
        let detail = match pass {
            kiln_passes::Pass::Fold => {
                let mut by: BTreeMap<&str, usize> = BTreeMap::new();
                for n in &report.folded.nodes {
                    *by.entry(n).or_default() += 1;
                }
                let list: Vec<String> = by.iter().map(|(k, n)| format!("{k} {n}")).collect();
                format!("{} nodes folded{}{}", report.folded.nodes.len(), if list.is_empty() { "" } else { ": " }, list.join(", "))
            }
            kiln_passes::Pass::Rewrite => match &report.rewrite {
                Some(r) => {
                    let fired: Vec<String> = r.fired.iter().map(|(k, n)| format!("{k} {n}")).collect();
                    format!(
                        "{} iterations ({:?}), e-graph {} nodes in {} classes, modelled {:.3} -> {:.3} ms; rules: {}",
                        r.iterations,
                        r.stop,
                        r.egraph_nodes,
                        r.egraph_classes,
                        r.cost_before / 1e6,
                        r.cost_after / 1e6,
                        if fired.is_empty() { "none fired".to_string() } else { fired.join(", ") }
                    )
                }
                None => String::new(),
            },
            kiln_passes::Pass::Layout => format!(
                "{} nodes channels-first, {} transposes added",
                report.layout.channels_first, report.layout.transposes
            ),
            kiln_passes::Pass::Views => {
                let copies: usize = report.views.iter().map(|v| v.kernels.len()).sum();
                format!("{copies} copies removed, {} buffers became views", report.views.len())
            }
            _ => String::new(),
        };
        let _ = writeln!(s, "  {:<8} {:>9.3} ms  {detail}", pass.name(), time.as_secs_f64() * 1e3);
    }
    let _ = writeln!(s, "  {:<8} {:>9.3} ms", "total", report.total().as_secs_f64() * 1e3);
    let _ = writeln!(s, "kernels (operators each computes):");
    for (k, (kernel, nodes)) in compiled.program.kernels.iter().zip(&report.kernel_nodes).enumerate() {
        let ops: Vec<String> = nodes.iter().map(|&n| node_name(&compiled.graph, n)).collect();
        let _ = writeln!(s, "  k{k:<4} {:<7} {:<28} {}", kernel.kind(), kernel_domain(kernel), ops.join(" + "));
    }
    s
}
