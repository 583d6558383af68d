//! Extraction: one e-node per class, minimising the modelled time of the
//! graph the choice builds, each chosen e-node counted once (a DAG cost).
//!
//! egg's extractor minimises a tree cost, which counts a class once per
//! path to it: a decomposed activation that reads `x` three times would pay
//! for everything before `x` three times and always lose to one operator,
//! however slow. So the tree-cost choice is only the start; then, for every
//! class with more than one e-node (in class order), each alternative is
//! tried and kept if the DAG cost of the whole choice drops (coordinate
//! descent, one sweep). Each try walks the chosen graph once; the sweep
//! stops trying after [`WORK_LIMIT`] e-node visits in all, so the work is
//! bounded by a count, not a clock.

use std::collections::HashMap;

use egg::{CostFunction, Extractor, Id, Language};

use super::cost::op_cost;
use super::egraph::{desc, infer_op, EGraph, ENode};

/// E-node visits the improvement sweep may spend.
pub const WORK_LIMIT: usize = 4_000_000;

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

/// The DAG cost of `index` from `roots`, and the e-nodes visited; `None`
/// if the choice has a cycle.
fn dag_cost(egraph: &EGraph, roots: &[Id], index: &HashMap<Id, usize>, own: &HashMap<(Id, usize), f64>) -> (Option<f64>, usize) {
    // 1: on the current path, 2: done.
    let mut state: HashMap<Id, u8> = HashMap::new();
    let mut stack: Vec<(Id, bool)> = roots.iter().map(|&r| (egraph.find(r), false)).collect();
    let (mut total, mut visits) = (0.0, 0);
    while let Some((id, expanded)) = stack.pop() {
        if expanded {
            state.insert(id, 2);
            continue;
        }
        match state.get(&id) {
            Some(2) => continue,
            Some(_) => return (None, visits),
            None => {}
        }
        visits += 1;
        state.insert(id, 1);
        let i = index[&id];
        total += own[&(id, i)];
        stack.push((id, true));
        for &c in egraph[id].nodes[i].children() {
            let c = egraph.find(c);
            match state.get(&c) {
                Some(2) => {}
                Some(_) => return (None, visits),
                None => stack.push((c, false)),
            }
        }
    }
    (Some(total), visits)
}

/// The extraction of the module documentation.
pub fn choose(egraph: &EGraph, roots: &[Id]) -> Choice {
    let extractor = Extractor::new(egraph, TreeCost { egraph });
    let mut classes: Vec<Id> = egraph.classes().map(|c| c.id).collect();
    classes.sort();
    let mut own = HashMap::new();
    let mut index = HashMap::new();
    for &id in &classes {
        let best = extractor.find_best_node(id);
        for (i, node) in egraph[id].nodes.iter().enumerate() {
            own.insert((id, i), own_cost(egraph, node));
            if node == best {
                index.insert(id, i);
            }
        }
    }
    let (mut best, mut work) = dag_cost(egraph, roots, &index, &own);
    let Some(mut best_cost) = best.take() else {
        return Choice { index };
    };
    'sweep: for &id in classes.iter().filter(|&&id| egraph[id].nodes.len() > 1) {
        let current = index[&id];
        for i in 0..egraph[id].nodes.len() {
            if i == current || work > WORK_LIMIT {
                if work > WORK_LIMIT {
                    break 'sweep;
                }
                continue;
            }
            let kept = index.insert(id, i).expect("every class has a choice");
            let (cost, visits) = dag_cost(egraph, roots, &index, &own);
            work += visits;
            match cost {
                Some(c) if c < best_cost => best_cost = c,
                _ => {
                    index.insert(id, kept);
                }
            }
        }
    }
    Choice { index }
}
