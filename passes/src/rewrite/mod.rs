//! Graph rewriting by equality saturation (egg): the graph becomes an
//! e-graph ([`egraph`]), the rules ([`rules`]) add equivalent forms of
//! what they match, and the cheapest form of every output, by a cost
//! model of kernels' time, is built back into a graph.
//!
//! Each iteration searches every rule on every e-node of the e-graph as it
//! stands, then adds every match and merges it with the matched class, then
//! rebuilds. It stops when an iteration changes nothing (saturated), or at
//! a limit: [`RewriteOptions::iterations`], [`RewriteOptions::nodes`]
//! (e-nodes in the e-graph), or [`RewriteOptions::time`]. The time limit
//! is generous; the iteration and node limits are the ones that bind, so
//! the result does not depend on the machine's speed. Classes and e-nodes
//! are visited in a fixed order (egg's `deterministic` feature), so the
//! same graph always gives the same result.
//!
//! Extraction picks, for every class, the e-node of least total cost
//! ([`cost`]: the modelled time of the operator plus that of its operands'
//! classes). The rewritten graph is validated by construction (every node
//! goes through [`Graph::add_node`]).

pub mod egraph;
pub mod rules;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use egg::{CostFunction, Extractor, Id, Language};
use kiln_ir::{Graph, GraphError, Op, OperandId};

use egraph::{add_term, desc, EGraph, ENode};

/// Limits on one rewrite run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RewriteOptions {
    /// Saturation iterations at most.
    pub iterations: usize,
    /// E-nodes in the e-graph at most: the run stops after the iteration
    /// that passes it (the bound that matters on large graphs).
    pub nodes: usize,
    /// Wall time at most (a safety net; set high so that it never binds on
    /// real models).
    pub time: Duration,
}

impl Default for RewriteOptions {
    fn default() -> Self {
        RewriteOptions { iterations: 8, nodes: 200_000, time: Duration::from_secs(30) }
    }
}

/// Why saturation stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// An iteration added nothing new.
    Saturated,
    IterationLimit,
    NodeLimit,
    TimeLimit,
}

/// What a rewrite run did.
#[derive(Clone, Debug, PartialEq)]
pub struct Rewritten {
    /// How many times each rule merged a new form into a class, by name.
    pub fired: BTreeMap<&'static str, usize>,
    pub iterations: usize,
    pub stop: Stop,
    /// E-nodes and classes in the final e-graph.
    pub egraph_nodes: usize,
    pub egraph_classes: usize,
    /// Modelled time of the graph before and after, in nanoseconds.
    pub cost_before: f64,
    pub cost_after: f64,
}

/// Rewrites `graph` (see the module documentation). The result computes
/// the same outputs, named alike, from the same inputs.
pub fn rewrite(graph: &Graph, options: &RewriteOptions) -> Result<(Graph, Rewritten), GraphError> {
    let start = Instant::now();
    let (mut egraph, roots) = egraph::from_graph(graph);
    let cost_before = graph_cost(graph);
    let rules = rules::all();
    let mut fired: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut stop = Stop::IterationLimit;
    let mut iterations = 0;
    while iterations < options.iterations {
        iterations += 1;
        let mut classes: Vec<Id> = egraph.classes().map(|c| c.id).collect();
        classes.sort();
        let mut matches = Vec::new();
        for &class in &classes {
            for node in &egraph[class].nodes {
                for rule in &rules {
                    if let Some(term) = (rule.apply)(&egraph, node) {
                        matches.push((class, rule.name, term));
                    }
                }
            }
        }
        let mut changed = false;
        for (class, name, term) in matches {
            let Some(id) = add_term(&mut egraph, &term) else { continue };
            if egraph.union(class, id) {
                changed = true;
                *fired.entry(name).or_default() += 1;
            }
        }
        egraph.rebuild();
        if !changed {
            stop = Stop::Saturated;
            break;
        }
        if egraph.total_size() > options.nodes {
            stop = Stop::NodeLimit;
            break;
        }
        if start.elapsed() > options.time {
            stop = Stop::TimeLimit;
            break;
        }
    }
    let extractor = Extractor::new(&egraph, ModelCost { egraph: &egraph });
    let rewritten = egraph::to_graph(&egraph, graph, &roots, &|id| extractor.find_best_node(id).clone())?;
    let report = Rewritten {
        fired,
        iterations,
        stop,
        egraph_nodes: egraph.total_size(),
        egraph_classes: egraph.number_of_classes(),
        cost_before,
        cost_after: graph_cost(&rewritten),
    };
    Ok((rewritten, report))
}

/// The cost model, in modelled nanoseconds on one core: a fixed cost per
/// kernel launch, plus arithmetic at [`NS_PER_FLOP`] and memory traffic
/// (every non-constant operand read and every result written once) at
/// [`NS_PER_BYTE`]. Operators that lower to an alias of their input
/// (reshape, identity) cost [`ALIAS_NS`]. Calibrated on `kiln bench
/// --profile` of the example models on the development machine: GEMM-bound
/// kernels run at ~100 GFLOP/s, streaming elementwise Maps at ~10 GB/s,
/// and the smallest kernels take ~1 µs.
pub mod cost {
    pub const LAUNCH_NS: f64 = 1000.0;
    pub const NS_PER_FLOP: f64 = 0.01;
    pub const NS_PER_BYTE: f64 = 0.1;
    pub const ALIAS_NS: f64 = 1.0;
}

/// The modelled time of `op` with operand descriptors `inputs` (`None`
/// for constant operands, which are packed or folded at compile time).
fn op_cost(op: &Op, inputs: &[(kiln_ir::OperandDescriptor, bool)], outputs: &[kiln_ir::OperandDescriptor]) -> f64 {
    if matches!(op, Op::Reshape { .. } | Op::Unary { kind: kiln_ir::UnaryOp::Identity, .. }) {
        return cost::ALIAS_NS;
    }
    let flops = kiln_ir::cost::op_flops(op, &|id: OperandId| &inputs[id.index()].0, outputs) as f64;
    let read: usize = inputs.iter().filter(|(_, constant)| !constant).map(|(d, _)| d.byte_length()).sum();
    let written: usize = outputs.iter().map(|d| d.byte_length()).sum();
    cost::LAUNCH_NS + flops * cost::NS_PER_FLOP + (read + written) as f64 * cost::NS_PER_BYTE
}

/// The modelled time of every node of `graph`.
pub fn graph_cost(graph: &Graph) -> f64 {
    graph
        .nodes()
        .iter()
        .map(|node| {
            let (op, operands) = egraph::with_slots(&node.op);
            let inputs: Vec<_> = operands
                .iter()
                .map(|&o| (graph.desc(o).clone(), matches!(graph.operand(o).kind, kiln_ir::OperandKind::Constant(_))))
                .collect();
            let outputs: Vec<_> = node.outputs.iter().map(|&o| graph.desc(o).clone()).collect();
            op_cost(&op, &inputs, &outputs)
        })
        .sum()
}

/// [`op_cost`] as an egg cost function: an e-node's own cost plus its
/// children's.
struct ModelCost<'a> {
    egraph: &'a EGraph,
}

impl CostFunction<ENode> for ModelCost<'_> {
    type Cost = f64;

    fn cost<C>(&mut self, enode: &ENode, mut costs: C) -> f64
    where
        C: FnMut(Id) -> f64,
    {
        let own = match enode {
            ENode::Input(_) | ENode::Constant(_) | ENode::Output(..) => 0.0,
            ENode::Op(tag, children) => {
                let inputs: Vec<_> = children
                    .iter()
                    .map(|&c| (desc(self.egraph, c).clone(), self.egraph[c].data.constant.is_some()))
                    .collect();
                let outputs = egraph::infer_op(self.egraph, tag.op(), children).unwrap_or_default();
                op_cost(tag.op(), &inputs, &outputs)
            }
        };
        enode.children().iter().fold(own, |sum, &c| sum + costs(c))
    }
}
