//! Extraction: one e-node per class, minimising the modelled time of the
//! graph the choice builds, each chosen e-node counted once (a DAG cost).
//!
//! egg's extractor minimises a tree cost, which counts a class once per
//! path to it: a decomposed activation that reads `x` twice would pay for
//! everything before `x` twice (in a chain of them, exponentially) and
//! always lose to one operator, however slow. So the start is the graph as
//! given (every class that holds an operand of the input graph takes the
//! e-node it came from; other classes, which only rules created, take the
//! tree-cost best); then, for every class with more than one e-node (in
//! class order), each alternative is tried and kept if the DAG cost of the
//! whole choice drops and no cycle forms (coordinate descent, one sweep).
//! A switch that does not pay alone is tried together with the other
//! chosen classes that have an e-node reading a class the switch brought
//! into the graph: the members of a merged operator (`merge-matmul`,
//! `merge-conv`) pay only as a group.
//! The chosen graph is kept with reference counts, so a try costs the
//! classes that enter or leave it, plus a reachability walk for a switch
//! that pays; the sweep stops after [`WORK_LIMIT`] class visits in all, so
//! the work is bounded by a count, not a clock, and the result never costs
//! more than the graph given.

use std::collections::HashMap;

use egg::{CostFunction, Extractor, Id, Language};

use super::cost::op_cost;
use super::egraph::{desc, infer_op, EGraph, ENode};

/// Class visits the improvement sweep may spend.
pub const WORK_LIMIT: usize = 5_000_000;

/// The chosen e-node of every class, by index in the class.
pub struct Choice {
    index: HashMap<Id, usize>,
}

impl Choice {
    /// The chosen e-node of class `id`.
    pub fn node<'a>(&self, egraph: &'a EGraph, id: Id) -> &'a ENode {
        let id = egraph.find(id);
        &egraph[id].nodes[self.index[&id]]
    }
}

/// The modelled time of `node` alone.
fn own_cost(egraph: &EGraph, node: &ENode) -> f64 {
    match node {
        ENode::Input(_) | ENode::Constant(_) | ENode::Output(..) => 0.0,
        ENode::Op(tag, children) => {
            let inputs: Vec<_> =
                children.iter().map(|&c| (desc(egraph, c).clone(), egraph[c].data.constant.is_some())).collect();
            let outputs = infer_op(egraph, tag.op(), children).unwrap_or_default();
            op_cost(tag.op(), &inputs, &outputs)
        }
    }
}

/// The tree cost, for egg's extractor.
struct TreeCost<'a> {
    egraph: &'a EGraph,
}

impl CostFunction<ENode> for TreeCost<'_> {
    type Cost = f64;

    fn cost<C>(&mut self, enode: &ENode, mut costs: C) -> f64
    where
        C: FnMut(Id) -> f64,
    {
        enode.children().iter().fold(own_cost(self.egraph, enode), |sum, &c| sum + costs(c))
    }
}

/// The e-graph as dense arrays over canonical class numbers: for class
/// `c`, e-node `i`: its own cost and its children's classes.
struct Dense {
    own: Vec<Vec<f64>>,
    children: Vec<Vec<Vec<usize>>>,
}

/// The chosen graph, kept with reference counts so that switching one
/// class's e-node costs only the part of the graph that changes.
struct Live<'a> {
    dense: &'a Dense,
    index: Vec<usize>,
    /// Chosen e-nodes (and roots) reading each class.
    refs: Vec<u32>,
    /// Scratch for `reaches`: the walk number that last saw each class.
    seen: Vec<u32>,
    walk: u32,
}

impl Live<'_> {
    fn children(&self, c: usize) -> &[usize] {
        &self.dense.children[c][self.index[c]]
    }

    /// Adds a reader to each of `ids`; returns the cost of the classes that
    /// become live.
    fn incref(&mut self, ids: &[usize], work: &mut usize) -> f64 {
        let mut added = 0.0;
        let mut stack = ids.to_vec();
        while let Some(c) = stack.pop() {
            *work += 1;
            self.refs[c] += 1;
            if self.refs[c] == 1 {
                added += self.dense.own[c][self.index[c]];
                stack.extend_from_slice(self.children(c));
            }
        }
        added
    }

    /// Removes a reader from each of `ids`; returns the cost of the classes
    /// no longer live.
    fn decref(&mut self, ids: &[usize], work: &mut usize) -> f64 {
        let mut removed = 0.0;
        let mut stack = ids.to_vec();
        while let Some(c) = stack.pop() {
            *work += 1;
            self.refs[c] -= 1;
            if self.refs[c] == 0 {
                removed += self.dense.own[c][self.index[c]];
                stack.extend_from_slice(self.children(c));
            }
        }
        removed
    }

    /// Chooses e-node `to` instead of `from` for live class `c`; returns the
    /// change of the graph's cost.
    fn switch(&mut self, c: usize, from: usize, to: usize, work: &mut usize) -> f64 {
        let old = self.dense.children[c][from].clone();
        let new = self.dense.children[c][to].clone();
        self.index[c] = to;
        let mut delta = self.dense.own[c][to] - self.dense.own[c][from];
        delta += self.incref(&new, work);
        delta -= self.decref(&old, work);
        delta
    }

    /// Whether the chosen e-node of `target` reaches `target` again (a
    /// cycle through it).
    fn cyclic(&mut self, target: usize, work: &mut usize) -> bool {
        self.walk += 1;
        let mut stack = self.children(target).to_vec();
        while let Some(c) = stack.pop() {
            *work += 1;
            if c == target {
                return true;
            }
            if self.seen[c] != self.walk {
                self.seen[c] = self.walk;
                stack.extend_from_slice(self.children(c));
            }
        }
        false
    }
}

/// The extraction of the module documentation; `original` is the e-node
/// each operand of the input graph became, with its class at the time.
pub fn choose(egraph: &EGraph, roots: &[Id], original: &[(Id, ENode)]) -> Choice {
    let extractor = Extractor::new(egraph, TreeCost { egraph });
    let mut classes: Vec<Id> = egraph.classes().map(|c| c.id).collect();
    classes.sort();
    let number: HashMap<Id, usize> = classes.iter().enumerate().map(|(n, &id)| (id, n)).collect();
    let dense = Dense {
        own: classes.iter().map(|&id| egraph[id].nodes.iter().map(|n| own_cost(egraph, n)).collect()).collect(),
        children: classes
            .iter()
            .map(|&id| {
                egraph[id].nodes.iter().map(|n| n.children().iter().map(|&c| number[&egraph.find(c)]).collect()).collect()
            })
            .collect(),
    };
    let tree: Vec<usize> = classes
        .iter()
        .map(|&id| {
            let best = extractor.find_best_node(id);
            egraph[id].nodes.iter().position(|n| n == best).expect("the best e-node is in its class")
        })
        .collect();
    // The graph as given: the first original e-node of each class.
    let mut index = tree.clone();
    let mut given = vec![false; classes.len()];
    for (id, node) in original {
        let c = number[&egraph.find(*id)];
        if given[c] {
            continue;
        }
        let mut canonical = node.clone();
        canonical.for_each_mut(|x| *x = egraph.find(*x));
        if let Some(i) = egraph[classes[c]].nodes.iter().position(|n| *n == canonical) {
            index[c] = i;
            given[c] = true;
        }
    }
    let roots: Vec<usize> = roots.iter().map(|&r| number[&egraph.find(r)]).collect();
    let n = classes.len();
    // The e-nodes reading each class: (class, e-node index).
    let mut readers: Vec<Vec<(usize, usize)>> = vec![Vec::new(); n];
    for (c, nodes) in dense.children.iter().enumerate() {
        for (i, children) in nodes.iter().enumerate() {
            for &d in children {
                readers[d].push((c, i));
            }
        }
    }
    let mut live = Live { dense: &dense, index, refs: vec![0; n], seen: vec![0; n], walk: 0 };
    let mut work = 0;
    let mut total = live.incref(&roots, &mut work);
    for c in 0..n {
        if dense.own[c].len() < 2 || live.refs[c] == 0 {
            continue; // one e-node, or not in the chosen graph
        }
        for i in 0..dense.own[c].len() {
            let current = live.index[c];
            if i == current {
                continue;
            }
            if work > WORK_LIMIT {
                break;
            }
            // The switch, and with it every other chosen class that has an
            // e-node reading a class the switch brought in (a merged
            // operator's other slices): a group pays only as a whole.
            let mut switched = vec![(c, current, i)];
            let mut delta = live.switch(c, current, i, &mut work);
            if delta >= -1e-9 * total.abs() {
                let fresh: Vec<usize> = dense.children[c][i].iter().copied().filter(|&d| live.refs[d] == 1).collect();
                for d in fresh {
                    work += readers[d].len();
                    for &(c2, i2) in &readers[d] {
                        let now = live.index[c2];
                        if c2 != c && live.refs[c2] > 0 && now != i2 && switched.iter().all(|s| s.0 != c2) {
                            delta += live.switch(c2, now, i2, &mut work);
                            switched.push((c2, now, i2));
                        }
                    }
                }
            }
            if delta < -1e-9 * total.abs() && !switched.iter().any(|s| live.cyclic(s.0, &mut work)) {
                total += delta;
            } else {
                for &(c2, from, to) in switched.iter().rev() {
                    live.switch(c2, to, from, &mut work);
                }
            }
        }
    }
    let index = live.index;
    Choice { index: classes.iter().enumerate().map(|(c, &id)| (id, index[c])).collect() }
}
