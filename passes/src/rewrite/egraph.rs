//! The e-graph the rewrite rules work on: kiln's operators as an egg
//! [`Language`], operand descriptors as the e-class analysis, and the
//! conversions from and to [`Graph`].
//!
//! An e-node is a graph input, a constant, an operator over operand
//! e-classes, or one result of a multi-output operator (`split`). An
//! operator's e-node holds the [`Op`] with its operands replaced by
//! *slots* (`OperandId(0)`, `OperandId(1)`, ... in [`Op::inputs`] order)
//! and the e-classes of those operands as its children; two operators are
//! the same e-node when their ops print the same (`Debug`, with slots) and
//! their children are the same classes. So the e-graph shares common
//! subexpressions by construction.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::rc::Rc;

use egg::{Analysis, DidMerge, Id, Language};
use kiln_ir::infer;
use kiln_ir::{Graph, GraphError, Op, OperandDescriptor, OperandId, OperandKind, Tensor, UnaryOp};

/// An operator with its operands replaced by slots, compared by its text.
#[derive(Clone)]
pub struct OpTag {
    key: Rc<str>,
    op: Rc<Op>,
}

impl OpTag {
    /// `op` whose operands are slots (see the module documentation).
    pub fn new(op: Op) -> Self {
        OpTag { key: format!("{op:?}").into(), op: Rc::new(op) }
    }

    pub fn op(&self) -> &Op {
        &self.op
    }
}

impl PartialEq for OpTag {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}
impl Eq for OpTag {}
impl PartialOrd for OpTag {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for OpTag {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key.cmp(&other.key)
    }
}
impl Hash for OpTag {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.key.hash(state)
    }
}
impl fmt::Debug for OpTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.key)
    }
}

/// Slot `i`: the `i`-th operand of an operator inside an e-node.
pub fn slot(i: usize) -> OperandId {
    OperandId(i as u32)
}

/// `op` with its operands renumbered to slots, and the operands in order.
pub fn with_slots(op: &Op) -> (Op, Vec<OperandId>) {
    let mut op = op.clone();
    let mut operands = Vec::new();
    for (i, (_, id)) in op.inputs_mut().into_iter().enumerate() {
        operands.push(*id);
        *id = slot(i);
    }
    (op, operands)
}

/// An e-node.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ENode {
    /// Graph input number `i`.
    Input(u32),
    /// Constant number `i` of [`Meta::constants`].
    Constant(u32),
    /// An operator over its operands' classes.
    Op(OpTag, Vec<Id>),
    /// Result `i` of a multi-output operator's class.
    Output(u32, [Id; 1]),
}

impl Language for ENode {
    type Discriminant = (u8, Option<OpTag>, u32);

    fn discriminant(&self) -> Self::Discriminant {
        match self {
            ENode::Input(i) => (0, None, *i),
            ENode::Constant(i) => (1, None, *i),
            ENode::Op(tag, _) => (2, Some(tag.clone()), 0),
            ENode::Output(i, _) => (3, None, *i),
        }
    }

    fn matches(&self, other: &Self) -> bool {
        self.discriminant() == other.discriminant() && self.children().len() == other.children().len()
    }

    fn children(&self) -> &[Id] {
        match self {
            ENode::Input(_) | ENode::Constant(_) => &[],
            ENode::Op(_, c) => c,
            ENode::Output(_, c) => c,
        }
    }

    fn children_mut(&mut self) -> &mut [Id] {
        match self {
            ENode::Input(_) | ENode::Constant(_) => &mut [],
            ENode::Op(_, c) => c,
            ENode::Output(_, c) => c,
        }
    }
}

/// What every e-class knows about its values.
#[derive(Clone, Debug, PartialEq)]
pub struct ClassData {
    /// The descriptors of the class's results: one, or one per output of a
    /// multi-output operator.
    pub descs: Vec<OperandDescriptor>,
    /// A constant the class equals, if any.
    pub constant: Option<u32>,
    /// The label of the graph node the class came from, if any (kept for
    /// the rewritten node that replaces it).
    pub label: Option<String>,
}

/// The analysis: the graph's input descriptors and every constant, the
/// graph's and those rules computed.
#[derive(Debug, Default)]
pub struct Meta {
    pub inputs: Vec<OperandDescriptor>,
    pub constants: Vec<Tensor>,
    /// The constants rules computed, by descriptor and a fingerprint of
    /// their bytes (the bytes compared on a hit), so that a rule matching
    /// again builds the same e-node (and saturation ends).
    computed: HashMap<(OperandDescriptor, u64), Vec<u32>>,
}

pub type EGraph = egg::EGraph<ENode, Meta>;

/// The descriptor of single-valued class `id`.
pub fn desc(egraph: &EGraph, id: Id) -> &OperandDescriptor {
    &egraph[id].data.descs[0]
}

/// The constant class `id` equals, if any.
pub fn constant(egraph: &EGraph, id: Id) -> Option<&Tensor> {
    egraph[id].data.constant.map(|c| &egraph.analysis.constants[c as usize])
}

/// The result descriptors of `op` (with slots) over the classes `children`,
/// or why the shape rules refuse it.
pub fn infer_op(egraph: &EGraph, op: &Op, children: &[Id]) -> Result<Vec<OperandDescriptor>, String> {
    let missing = OperandDescriptor::new(kiln_ir::DataType::Float32, kiln_ir::Shape::scalar());
    let lookup = |id: OperandId| children.get(id.index()).map_or(&missing, |&c| desc(egraph, c));
    if op.inputs().len() != children.len() {
        return Err(format!("{} takes {} operands, not {}", op.name(), op.inputs().len(), children.len()));
    }
    infer::output_descriptors(op, &lookup).map_err(|e| format!("{}: operand `{}`: {}", op.name(), e.operand, e.rule))
}

impl Analysis<ENode> for Meta {
    type Data = ClassData;

    fn make(egraph: &mut EGraph, enode: &ENode, _id: Id) -> ClassData {
        let (descs, constant) = match enode {
            ENode::Input(i) => (vec![egraph.analysis.inputs[*i as usize].clone()], None),
            ENode::Constant(i) => (vec![egraph.analysis.constants[*i as usize].desc().clone()], Some(*i)),
            ENode::Op(tag, children) => {
                let descs = infer_op(egraph, tag.op(), children).expect("terms are checked before they are added");
                (descs, None)
            }
            ENode::Output(i, [tuple]) => (vec![egraph[*tuple].data.descs[*i as usize].clone()], None),
        };
        ClassData { descs, constant, label: None }
    }

    fn merge(&mut self, to: &mut ClassData, from: ClassData) -> DidMerge {
        debug_assert_eq!(to.descs, from.descs, "rewrites keep descriptors");
        let mut changed = false;
        if to.constant.is_none() && from.constant.is_some() {
            to.constant = from.constant;
            changed = true;
        }
        if to.label.is_none() && from.label.is_some() {
            to.label = from.label.clone();
        }
        DidMerge(changed, to.constant != from.constant || to.label != from.label)
    }
}

/// A term a rule builds: an existing class, a new constant, or an
/// operator (with slots) over terms.
#[derive(Clone, Debug)]
pub enum Term {
    Class(Id),
    Constant(Tensor),
    Op(Op, Vec<Term>),
}

/// Adds `term` to the e-graph, or `None` if the shape rules refuse one of
/// its operators (a rule's guard missed a case: the match is dropped).
pub fn add_term(egraph: &mut EGraph, term: &Term) -> Option<Id> {
    match term {
        Term::Class(id) => Some(*id),
        Term::Constant(t) => {
            let meta = &mut egraph.analysis;
            let same = meta.computed.entry((t.desc().clone(), fingerprint(t.bytes()))).or_default();
            let index = match same.iter().find(|&&i| meta.constants[i as usize].bytes() == t.bytes()) {
                Some(&i) => i,
                None => {
                    meta.constants.push(t.clone());
                    let i = (meta.constants.len() - 1) as u32;
                    same.push(i);
                    i
                }
            };
            Some(egraph.add(ENode::Constant(index)))
        }
        Term::Op(op, children) => {
            let ids = children.iter().map(|c| add_term(egraph, c)).collect::<Option<Vec<_>>>()?;
            let descs = infer_op(egraph, op, &ids).ok()?;
            if descs.len() != 1 {
                return None;
            }
            Some(egraph.add(ENode::Op(OpTag::new(op.clone()), ids)))
        }
    }
}

/// A 64-bit fingerprint of `bytes` (FNV-style over 8-byte words; not
/// cryptographic: hits are confirmed byte for byte).
fn fingerprint(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ bytes.len() as u64;
    let mut words = bytes.chunks_exact(8);
    for w in &mut words {
        h = (h ^ u64::from_le_bytes(w.try_into().expect("8 bytes"))).wrapping_mul(0x0000_0100_0000_01b3);
    }
    for &b in words.remainder() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The e-graph of `graph`, the classes of its outputs in order, and the
/// e-node every operand of the graph became (with the class it was added
/// to), in graph order.
pub fn from_graph(graph: &Graph) -> (EGraph, Vec<Id>, Vec<(Id, ENode)>) {
    let meta = Meta { inputs: graph.inputs().iter().map(|&i| graph.desc(i).clone()).collect(), ..Meta::default() };
    let mut egraph = EGraph::new(meta);
    let mut class: Vec<Option<Id>> = vec![None; graph.operands().len()];
    let mut original = Vec::new();
    let mut add = |egraph: &mut EGraph, node: ENode| {
        let id = egraph.add(node.clone());
        original.push((id, node));
        id
    };
    for (i, &id) in graph.inputs().iter().enumerate() {
        class[id.index()] = Some(add(&mut egraph, ENode::Input(i as u32)));
    }
    for (i, operand) in graph.operands().iter().enumerate() {
        if let OperandKind::Constant(t) = &operand.kind {
            egraph.analysis.constants.push(t.clone());
            let index = (egraph.analysis.constants.len() - 1) as u32;
            class[i] = Some(add(&mut egraph, ENode::Constant(index)));
        }
    }
    for node in graph.nodes() {
        let (op, operands) = with_slots(&node.op);
        let children = operands.iter().map(|o| class[o.index()].expect("operands come first")).collect();
        let id = add(&mut egraph, ENode::Op(OpTag::new(op), children));
        if !node.label.is_empty() {
            egraph[id].data.label = Some(node.label.clone());
        }
        if node.outputs.len() == 1 {
            class[node.outputs[0].index()] = Some(id);
        } else {
            for (k, o) in node.outputs.iter().enumerate() {
                class[o.index()] = Some(add(&mut egraph, ENode::Output(k as u32, [id])));
            }
        }
    }
    let roots = graph.outputs().iter().map(|(_, id)| class[id.index()].expect("outputs are operands")).collect();
    egraph.rebuild();
    (egraph, roots, original)
}

/// Builds the graph that computes `roots` (named like `original`'s
/// outputs) from the e-node `choose(class)` picks in every class needed,
/// sharing every class once. Inputs are `original`'s, in order.
pub fn to_graph(
    egraph: &EGraph,
    original: &Graph,
    roots: &[Id],
    choose: &dyn Fn(Id) -> ENode,
) -> Result<Graph, GraphError> {
    let mut graph = Graph::new();
    let inputs: Vec<OperandId> = original
        .inputs()
        .iter()
        .map(|&i| graph.add_input(original.input_name(i).expect("inputs are named"), original.desc(i).clone()))
        .collect::<Result<_, _>>()?;
    // Each class built once: its results (one, or one per output).
    let mut built: HashMap<Id, Vec<OperandId>> = HashMap::new();
    // Post-order without recursion: (class, children pushed). A class met
    // again while its children are being built is a cycle in the choice.
    let mut open = std::collections::HashSet::new();
    let mut stack: Vec<(Id, bool)> = roots.iter().rev().map(|&r| (egraph.find(r), false)).collect();
    while let Some((id, expanded)) = stack.pop() {
        if built.contains_key(&id) {
            continue;
        }
        let node = choose(id);
        if !expanded {
            if !open.insert(id) {
                return Err(GraphError::Cycle(usize::from(id) as u32));
            }
            stack.push((id, true));
            for &c in node.children().iter().rev() {
                let c = egraph.find(c);
                if !built.contains_key(&c) {
                    stack.push((c, false));
                }
            }
            continue;
        }
        let results = match &node {
            ENode::Input(i) => vec![inputs[*i as usize]],
            ENode::Constant(c) => vec![graph.add_constant(None, egraph.analysis.constants[*c as usize].clone())?],
            ENode::Op(tag, children) => {
                let mut op = tag.op().clone();
                for (_, operand) in op.inputs_mut() {
                    *operand = built[&egraph.find(children[operand.index()])][0];
                }
                let label = egraph[id].data.label.as_deref().unwrap_or("");
                graph.add_node(op, label)?
            }
            ENode::Output(i, [tuple]) => vec![built[&egraph.find(*tuple)][*i as usize]],
        };
        built.insert(id, results);
    }
    for ((name, _), root) in original.outputs().iter().zip(roots) {
        let mut result = built[&egraph.find(*root)][0];
        // An output is computed by an operator: one that became an input
        // or a constant is copied.
        if !matches!(graph.operand(result).kind, OperandKind::Output { .. }) {
            result = graph.add_node(Op::Unary { kind: UnaryOp::Identity, input: result }, "")?[0];
        }
        graph.add_output(name, result)?;
    }
    Ok(graph)
}
