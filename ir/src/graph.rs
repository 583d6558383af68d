//! The graph: operands (inputs, constants, intermediates) and the nodes that
//! produce them. Every operand's descriptor has been inferred and checked
//! when it is added, so a `Graph` is valid by construction; [`Graph::validate`]
//! re-checks a graph that was assembled or edited elsewhere.

use std::fmt;

use petgraph::graph::DiGraph;

use crate::infer::{self, OpError};
use crate::{Op, OperandDescriptor, Tensor, MAX_TENSOR_BYTES};

/// Index of an operand in its graph.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OperandId(pub u32);

impl OperandId {
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Display for OperandId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "%{}", self.0)
    }
}

/// Index of a node in its graph.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub u32);

/// Where an operand's value comes from.
#[derive(Clone, Debug)]
pub enum OperandKind {
    /// Fed at dispatch under `name`.
    Input { name: String },
    /// Known at build time.
    Constant(Tensor),
    /// Output `index` of node `node`.
    Output { node: NodeId, index: u32 },
}

#[derive(Clone, Debug)]
pub struct Operand {
    pub desc: OperandDescriptor,
    pub kind: OperandKind,
    /// A name for printing (the text form's identifier), if one was given.
    pub name: Option<String>,
}

/// One operator application.
#[derive(Clone, Debug)]
pub struct Node {
    pub op: Op,
    /// The user's `label` option; empty if none was given.
    pub label: String,
    pub outputs: Vec<OperandId>,
}

/// An error in building or validating a graph. Each names what broke the
/// rule and where.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GraphError {
    #[error("{op}{}: operand `{operand}`: {rule}", fmt_label(.label))]
    Operator {
        op: &'static str,
        label: String,
        operand: String,
        rule: String,
    },
    #[error("input `{name}`: {rule}")]
    Input { name: String, rule: String },
    #[error("constant{}: {rule}", fmt_label(.name))]
    Constant { name: String, rule: String },
    #[error("output `{name}`: {rule}")]
    Output { name: String, rule: String },
    #[error("input `{name}`: {rule}")]
    Feed { name: String, rule: String },
    #[error("operand {0} does not belong to this graph")]
    UnknownOperand(OperandId),
    #[error("the graph has a cycle through node {0}")]
    Cycle(u32),
}

fn fmt_label(label: &str) -> String {
    if label.is_empty() {
        String::new()
    } else {
        format!(" '{label}'")
    }
}

/// A WebNN graph with named inputs and outputs.
#[derive(Clone, Debug, Default)]
pub struct Graph {
    operands: Vec<Operand>,
    nodes: Vec<Node>,
    inputs: Vec<OperandId>,
    outputs: Vec<(String, OperandId)>,
}

impl Graph {
    pub fn new() -> Self {
        Graph::default()
    }

    pub fn operand(&self, id: OperandId) -> &Operand {
        &self.operands[id.index()]
    }

    pub fn desc(&self, id: OperandId) -> &OperandDescriptor {
        &self.operands[id.index()].desc
    }

    pub fn operands(&self) -> &[Operand] {
        &self.operands
    }

    /// Nodes in a valid execution order.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    pub fn inputs(&self) -> &[OperandId] {
        &self.inputs
    }

    pub fn outputs(&self) -> &[(String, OperandId)] {
        &self.outputs
    }

    pub fn input_name(&self, id: OperandId) -> Option<&str> {
        match &self.operand(id).kind {
            OperandKind::Input { name } => Some(name),
            _ => None,
        }
    }

    /// Whether a tensor of `desc` may exist: no zero dimension, at most
    /// [`MAX_TENSOR_BYTES`]; the rule broken, if not.
    pub fn check_descriptor(desc: &OperandDescriptor) -> Result<(), String> {
        if desc.shape.dims().contains(&0) {
            return Err(format!("shape {} has a zero dimension; WebNN tensors are never empty", desc.shape));
        }
        match desc.checked_byte_length() {
            Some(n) if n <= MAX_TENSOR_BYTES => Ok(()),
            _ => Err(format!(
                "descriptor {desc} exceeds the {MAX_TENSOR_BYTES}-byte tensor limit"
            )),
        }
    }

    fn push_operand(&mut self, desc: OperandDescriptor, kind: OperandKind, name: Option<String>) -> OperandId {
        let id = OperandId(self.operands.len() as u32);
        self.operands.push(Operand { desc, kind, name });
        id
    }

    /// Adds a named input. Names are unique among inputs.
    pub fn add_input(&mut self, name: &str, desc: OperandDescriptor) -> Result<OperandId, GraphError> {
        let err = |rule: String| GraphError::Input { name: name.to_string(), rule };
        if name.is_empty() {
            return Err(err("the name must not be empty".into()));
        }
        if self.inputs.iter().any(|&i| self.input_name(i) == Some(name)) {
            return Err(err("an input with this name already exists".into()));
        }
        Self::check_descriptor(&desc).map_err(err)?;
        let id = self.push_operand(desc, OperandKind::Input { name: name.to_string() }, Some(name.to_string()));
        self.inputs.push(id);
        Ok(id)
    }

    /// Adds a constant; `name` is only used for printing and errors.
    pub fn add_constant(&mut self, name: Option<&str>, tensor: Tensor) -> Result<OperandId, GraphError> {
        Self::check_descriptor(tensor.desc()).map_err(|rule| GraphError::Constant {
            name: name.unwrap_or_default().to_string(),
            rule,
        })?;
        let desc = tensor.desc().clone();
        Ok(self.push_operand(desc, OperandKind::Constant(tensor), name.map(str::to_string)))
    }

    /// Checks `op` against its operands, infers its outputs and appends it.
    pub fn add_node(&mut self, op: Op, label: &str) -> Result<Vec<OperandId>, GraphError> {
        let op_err = |e: OpError| GraphError::Operator {
            op: op.name(),
            label: label.to_string(),
            operand: e.operand,
            rule: e.rule,
        };
        for (_, id) in op.inputs() {
            if id.index() >= self.operands.len() {
                return Err(GraphError::UnknownOperand(id));
            }
        }
        let descs = infer::output_descriptors(&op, &|id| self.desc(id)).map_err(op_err)?;
        for d in &descs {
            Self::check_descriptor(d).map_err(|rule| op_err(OpError::new("output", rule)))?;
        }
        let node = NodeId(self.nodes.len() as u32);
        let outputs = descs
            .into_iter()
            .enumerate()
            .map(|(index, desc)| {
                self.push_operand(desc, OperandKind::Output { node, index: index as u32 }, None)
            })
            .collect();
        self.nodes.push(Node { op, label: label.to_string(), outputs });
        Ok(self.nodes.last().unwrap().outputs.clone())
    }

    /// Gives operand `id` a printing name.
    pub fn set_name(&mut self, id: OperandId, name: &str) {
        self.operands[id.index()].name = Some(name.to_string());
    }

    /// Marks `id` as the graph output `name`.
    pub fn add_output(&mut self, name: &str, id: OperandId) -> Result<(), GraphError> {
        let err = |rule: &str| GraphError::Output { name: name.to_string(), rule: rule.to_string() };
        if id.index() >= self.operands.len() {
            return Err(GraphError::UnknownOperand(id));
        }
        if name.is_empty() {
            return Err(err("the name must not be empty"));
        }
        if self.outputs.iter().any(|(n, _)| n == name) {
            return Err(err("an output with this name already exists"));
        }
        match self.operand(id).kind {
            OperandKind::Output { .. } => {}
            OperandKind::Input { .. } => return Err(err("an output must be computed by an operator, not be an input")),
            OperandKind::Constant(_) => return Err(err("an output must be computed by an operator, not be a constant")),
        }
        self.outputs.push((name.to_string(), id));
        Ok(())
    }

    /// Checks that `feeds` supply every graph input exactly once, by name,
    /// with the declared data type and shape, and nothing else. Every
    /// backend calls this before it reads a byte.
    pub fn check_feeds(&self, feeds: &[(&str, &Tensor)]) -> Result<(), GraphError> {
        let feed_err = |name: &str, rule: String| GraphError::Feed { name: name.to_string(), rule };
        for (i, (name, tensor)) in feeds.iter().enumerate() {
            if feeds[..i].iter().any(|(n, _)| n == name) {
                return Err(feed_err(name, "is given more than once".into()));
            }
            let Some(&id) = self.inputs.iter().find(|&&id| self.input_name(id) == Some(*name)) else {
                let known: Vec<_> = self.inputs.iter().filter_map(|&id| self.input_name(id)).collect();
                return Err(feed_err(name, format!("is not an input of this graph (inputs: {})", known.join(", "))));
            };
            let expected = self.desc(id);
            if tensor.desc() != expected {
                return Err(feed_err(name, format!("expected {expected}, got {}", tensor.desc())));
            }
        }
        if let Some(missing) = self
            .inputs
            .iter()
            .filter_map(|&id| self.input_name(id))
            .find(|name| !feeds.iter().any(|(n, _)| n == name))
        {
            return Err(feed_err(missing, format!("is missing; expected {}", self.desc(self.inputs.iter().copied().find(|&id| self.input_name(id) == Some(missing)).unwrap()))));
        }
        Ok(())
    }

    /// Re-checks every invariant: operands exist, nodes form an acyclic
    /// graph, every node's output descriptors match its shape rule.
    pub fn validate(&self) -> Result<(), GraphError> {
        let mut deps = DiGraph::<u32, ()>::new();
        let ids: Vec<_> = (0..self.nodes.len()).map(|n| deps.add_node(n as u32)).collect();
        for (n, node) in self.nodes.iter().enumerate() {
            for (_, input) in node.op.inputs() {
                let operand = self.operands.get(input.index()).ok_or(GraphError::UnknownOperand(input))?;
                if let OperandKind::Output { node: producer, .. } = operand.kind {
                    let producer = *ids.get(producer.0 as usize).ok_or(GraphError::UnknownOperand(input))?;
                    deps.add_edge(producer, ids[n], ());
                }
            }
        }
        petgraph::algo::toposort(&deps, None).map_err(|c| GraphError::Cycle(deps[c.node_id()]))?;
        for node in &self.nodes {
            let descs = infer::output_descriptors(&node.op, &|id| self.desc(id)).map_err(|e| GraphError::Operator {
                op: node.op.name(),
                label: node.label.clone(),
                operand: e.operand,
                rule: e.rule,
            })?;
            let actual: Vec<_> = node.outputs.iter().map(|&o| self.desc(o).clone()).collect();
            if descs != actual {
                return Err(GraphError::Operator {
                    op: node.op.name(),
                    label: node.label.clone(),
                    operand: "output".into(),
                    rule: "the recorded output descriptors disagree with the shape rule".into(),
                });
            }
        }
        Ok(())
    }
    /// The graph without the nodes and constants no output depends on.
    /// Inputs all stay (callers feed them by name); nodes keep their order,
    /// operands their names and labels.
    pub fn pruned(&self) -> Graph {
        let mut live = vec![false; self.operands.len()];
        for (_, id) in &self.outputs {
            live[id.index()] = true;
        }
        let mut live_nodes = vec![false; self.nodes.len()];
        for (n, node) in self.nodes.iter().enumerate().rev() {
            if node.outputs.iter().any(|o| live[o.index()]) {
                live_nodes[n] = true;
                for (_, input) in node.op.inputs() {
                    live[input.index()] = true;
                }
            }
        }
        let mut pruned = Graph::new();
        let mut map: Vec<Option<OperandId>> = vec![None; self.operands.len()];
        for &id in &self.inputs {
            let operand = &self.operands[id.index()];
            let new = pruned.push_operand(operand.desc.clone(), operand.kind.clone(), operand.name.clone());
            pruned.inputs.push(new);
            map[id.index()] = Some(new);
        }
        for (i, operand) in self.operands.iter().enumerate() {
            if live[i] && matches!(operand.kind, OperandKind::Constant(_)) {
                map[i] = Some(pruned.push_operand(operand.desc.clone(), operand.kind.clone(), operand.name.clone()));
            }
        }
        for (node, _) in self.nodes.iter().zip(&live_nodes).filter(|(_, live)| **live) {
            let mut op = node.op.clone();
            for (_, id) in op.inputs_mut() {
                *id = map[id.index()].expect("a live node's inputs are live and come first");
            }
            let index = NodeId(pruned.nodes.len() as u32);
            let outputs = node
                .outputs
                .iter()
                .enumerate()
                .map(|(i, &o)| {
                    let operand = &self.operands[o.index()];
                    let kind = OperandKind::Output { node: index, index: i as u32 };
                    let new = pruned.push_operand(operand.desc.clone(), kind, operand.name.clone());
                    map[o.index()] = Some(new);
                    new
                })
                .collect();
            pruned.nodes.push(Node { op, label: node.label.clone(), outputs });
        }
        pruned.outputs = self.outputs.iter().map(|(name, id)| (name.clone(), map[id.index()].expect("outputs are live"))).collect();
        pruned
    }
}

