//! Graph rewriting by equality saturation (egg): the graph becomes an
//! e-graph ([`egraph`]), the rules ([`rules`]) add equivalent forms of
//! what they match, and the cheapest form of every output, by a cost
//! model of kernels' time, is built back into a graph.
//!
//! Each iteration searches every rule on every e-node of the e-graph as it
//! stands (skipping an e-node a rule has seen unless one of its operands'
//! classes has grown since), then adds every match and merges it with the
//! matched class, then rebuilds. It stops when an iteration changes nothing (saturated), or at
//! a limit: [`RewriteOptions::iterations`], [`RewriteOptions::nodes`]
//! (e-nodes in the e-graph), or [`RewriteOptions::time`]. The time limit
//! is generous; the iteration and node limits are the ones that bind, so
//! the result does not depend on the machine's speed. Classes and e-nodes
//! are visited in a fixed order (egg's `deterministic` feature), so the
//! same graph always gives the same result.
//!
//! Extraction picks one e-node per class so that the modelled time of the
//! whole graph ([`cost`], every chosen node counted once however many
//! readers it has) is least: see `extract`. The rewritten graph is validated by construction (every node
//! goes through [`Graph::add_node`]).

pub mod cost;
pub mod egraph;
mod extract;
pub mod rules;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use std::collections::HashSet;

use egg::{Id, Language};
use kiln_ir::{Graph, GraphError};

use egraph::{add_term, ENode};

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
    let (mut egraph, roots, original) = egraph::from_graph(graph);
    let cost_before = cost::graph_cost(graph);
    let rules = rules::all();
    let mut fired: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut stop = Stop::IterationLimit;
    let mut iterations = 0;
    // (rule, e-node, its children's sizes) already tried: a rule sees an
    // e-node again only when a child class has gained e-nodes, so that
    // building the same weights again is not paid for every iteration.
    // Rules that look deeper than their operands (gelu, hardSwish,
    // softmax, layer norm) can so miss a pattern that a rewrite further
    // down completes: a missed rewrite, never a wrong one.
    let mut tried: HashSet<(usize, ENode, Vec<usize>)> = HashSet::new();
    while iterations < options.iterations {
        iterations += 1;
        let mut classes: Vec<Id> = egraph.classes().map(|c| c.id).collect();
        classes.sort();
        let mut matches = Vec::new();
        for &class in &classes {
            for node in &egraph[class].nodes {
                let sizes: Vec<usize> = node.children().iter().map(|&c| egraph[c].nodes.len()).collect();
                for (r, rule) in rules.iter().enumerate() {
                    if !tried.insert((r, node.clone(), sizes.clone())) {
                        continue;
                    }
                    if let Some(term) = (rule.apply)(&egraph, node) {
                        matches.push((class, rule.name, term));
                    }
                }
            }
        }
        let mut changed = false;
        for (class, name, term) in matches {
            let Some(id) = add_term(&mut egraph, &term) else { continue };
            // A rule whose guard missed a broadcast or a rank would merge
            // values of different shapes: such a match is dropped.
            if egraph[id].data.descs != egraph[class].data.descs {
                continue;
            }
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
    let choice = extract::choose(&egraph, &roots, &original);
    let rewritten = egraph::to_graph(&egraph, graph, &roots, &|id| choice.node(&egraph, id).clone())?;
    let report = Rewritten {
        fired,
        iterations,
        stop,
        egraph_nodes: egraph.total_size(),
        egraph_classes: egraph.number_of_classes(),
        cost_before,
        cost_after: cost::graph_cost(&rewritten),
    };
    Ok((rewritten, report))
}
