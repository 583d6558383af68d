//! The importer: walks an ONNX graph in dependency order and builds the
//! kiln [`Graph`] through the operator table in [`super::ops`].
//!
//! Values known at load time (initializers, `Constant` nodes, and the
//! result of any operator whose inputs are all constants, such as the
//! `Shape -> Gather -> Concat` chains exporters emit for `Reshape`) are
//! folded with the reference interpreter, so the compiled graph only holds
//! work that depends on its inputs.

use std::collections::{BTreeMap, HashMap};

use kiln_ir::interp::{fold_node, MAX_FOLDED_ELEMENTS};
use kiln_ir::{
    DataType, Graph, GraphError, Op, OperandDescriptor, OperandId, OperandKind, Shape, Tensor, UnaryOp, Values,
};

use super::proto::{AttributeProto, AttributeType, GraphProto, NodeProto, TensorProto, ValueInfoProto, type_proto};
use super::tensor::{self, ExternalFiles};
use super::{OnnxError, Unsupported};
use crate::LoadOptions;

/// Refuses a load-time constant of `elements` elements above
/// [`MAX_FOLDED_ELEMENTS`] (a few bytes of model can declare a huge fill;
/// the same limit as on folded results, see [`kiln_ir::interp::fold_node`]).
pub fn check_constant_size(elements: u64, what: &str) -> NodeResult<()> {
    if elements > MAX_FOLDED_ELEMENTS as u64 {
        return unsupported(format!("{what} of {elements} elements exceeds the {MAX_FOLDED_ELEMENTS}-element limit on constants built at load time"));
    }
    Ok(())
}

/// What an ONNX value name stands for while importing.
#[derive(Clone, Debug)]
pub enum Value {
    /// An operand of the graph being built (possibly a constant one).
    Operand(OperandId),
    /// A constant not yet added to the graph: it may be empty (ONNX allows
    /// zero-size tensors, WebNN operands do not), and is added only when an
    /// operator takes it as an operand.
    Const(Tensor),
    /// Produced by an unsupported node; nodes that read it are skipped,
    /// the import fails listing every unsupported node.
    Unavailable,
}

impl From<OperandId> for Value {
    fn from(id: OperandId) -> Self {
        Value::Operand(id)
    }
}

/// Why a node could not be imported.
#[derive(Debug)]
pub enum NodeError {
    /// A valid node kiln cannot express (an attribute value, a rank, a
    /// data type): collected with the other unsupported nodes.
    Unsupported(String),
    /// The node breaks ONNX's rules or the shapes do not fit.
    Invalid(String),
    /// Input `index`, the value `name`, must be known at load time (a
    /// shape, axes, pads: WebNN takes them as static attributes) but is
    /// computed from the graph's inputs. Collected like `Unsupported`.
    NotConstant { index: usize, name: String },
}

impl From<GraphError> for NodeError {
    fn from(e: GraphError) -> Self {
        NodeError::Invalid(e.to_string())
    }
}

pub type NodeResult<T> = Result<T, NodeError>;

pub fn invalid<T>(message: impl Into<String>) -> NodeResult<T> {
    Err(NodeError::Invalid(message.into()))
}

pub fn unsupported<T>(message: impl Into<String>) -> NodeResult<T> {
    Err(NodeError::Unsupported(message.into()))
}

/// One node being imported: its proto and the model's default-domain opset.
pub struct NodeCx<'a> {
    pub node: &'a NodeProto,
    pub opset: i64,
    /// The node's name, or `#index` when the model leaves it empty.
    pub label: String,
}

impl NodeCx<'_> {
    pub fn attr(&self, name: &str) -> Option<&AttributeProto> {
        self.node.attribute.iter().find(|a| a.name == name)
    }

    fn typed_attr(&self, name: &str, expected: AttributeType) -> NodeResult<Option<&AttributeProto>> {
        match self.attr(name) {
            None => Ok(None),
            Some(a) if !a.ref_attr_name.is_empty() => unsupported(format!("attribute `{name}` refers to a function attribute")),
            Some(a) if a.r#type == expected as i32 || a.r#type == AttributeType::Undefined as i32 => Ok(Some(a)),
            Some(a) => invalid(format!(
                "attribute `{name}` must be {expected:?}, the model gives {:?}",
                AttributeType::try_from(a.r#type).unwrap_or(AttributeType::Undefined)
            )),
        }
    }

    /// A subgraph attribute (`If`'s `then_branch`, `else_branch`).
    pub fn graph(&self, name: &str) -> NodeResult<Option<&GraphProto>> {
        Ok(self.typed_attr(name, AttributeType::Graph)?.and_then(|a| a.g.as_deref()))
    }

    pub fn int(&self, name: &str) -> NodeResult<Option<i64>> {
        Ok(self.typed_attr(name, AttributeType::Int)?.map(|a| a.i))
    }

    pub fn int_or(&self, name: &str, default: i64) -> NodeResult<i64> {
        Ok(self.int(name)?.unwrap_or(default))
    }

    pub fn float(&self, name: &str) -> NodeResult<Option<f32>> {
        Ok(self.typed_attr(name, AttributeType::Float)?.map(|a| a.f))
    }

    pub fn float_or(&self, name: &str, default: f32) -> NodeResult<f32> {
        Ok(self.float(name)?.unwrap_or(default))
    }

    pub fn ints(&self, name: &str) -> NodeResult<Option<Vec<i64>>> {
        Ok(self.typed_attr(name, AttributeType::Ints)?.map(|a| a.ints.clone()))
    }

    pub fn floats(&self, name: &str) -> NodeResult<Option<Vec<f32>>> {
        Ok(self.typed_attr(name, AttributeType::Floats)?.map(|a| a.floats.clone()))
    }

    pub fn string(&self, name: &str) -> NodeResult<Option<String>> {
        self.typed_attr(name, AttributeType::String)?
            .map(|a| {
                String::from_utf8(a.s.to_vec()).or_else(|_| invalid(format!("attribute `{name}` is not UTF-8")))
            })
            .transpose()
    }

    pub fn strings(&self, name: &str) -> NodeResult<Option<Vec<String>>> {
        self.typed_attr(name, AttributeType::Strings)?
            .map(|a| {
                a.strings
                    .iter()
                    .map(|s| String::from_utf8(s.to_vec()).or_else(|_| invalid(format!("attribute `{name}` is not UTF-8"))))
                    .collect()
            })
            .transpose()
    }

    pub fn string_or(&self, name: &str, default: &str) -> NodeResult<String> {
        Ok(self.string(name)?.unwrap_or_else(|| default.to_string()))
    }

    pub fn tensor_attr(&self, name: &str) -> NodeResult<Option<&TensorProto>> {
        Ok(self.typed_attr(name, AttributeType::Tensor)?.and_then(|a| a.t.as_ref()))
    }

    /// The number of input slots, counting empty (omitted optional) ones.
    pub fn input_count(&self) -> usize {
        self.node.input.len()
    }

    /// Whether the model uses output `i` (it is named).
    pub fn has_output(&self, i: usize) -> bool {
        self.node.output.get(i).is_some_and(|n| !n.is_empty())
    }

    /// Whether the model uses any output from `i` on.
    pub fn has_outputs_from(&self, i: usize) -> bool {
        (i..self.node.output.len()).any(|j| self.has_output(j))
    }

    /// Whether optional input `i` is given.
    pub fn has_input(&self, i: usize) -> bool {
        self.node.input.get(i).is_some_and(|n| !n.is_empty())
    }
}

/// Normalises a possibly negative ONNX axis against `rank`.
pub fn axis(axis: i64, rank: usize) -> NodeResult<u32> {
    let r = rank as i64;
    if axis < -r || axis >= r {
        return invalid(format!("axis {axis} is out of range for rank {rank}"));
    }
    Ok(if axis < 0 { axis + r } else { axis } as u32)
}

/// Normalises a list of possibly negative ONNX axes against `rank`;
/// an axis given twice is an error.
pub fn distinct_axes(axes: &[i64], rank: usize) -> NodeResult<Vec<u32>> {
    let mut out: Vec<u32> = Vec::with_capacity(axes.len());
    for &a in axes {
        let a = axis(a, rank)?;
        if out.contains(&a) {
            return invalid(format!("axis {a} appears more than once in axes {axes:?}"));
        }
        out.push(a);
    }
    Ok(out)
}

/// Builds one [`Graph`] from one ONNX graph.
pub struct Importer {
    graph: Graph,
    values: HashMap<String, Value>,
    files: ExternalFiles,
    /// The graph's run-time inputs (not initializers), by ONNX name.
    input_names: Vec<String>,
}

impl Importer {
    /// The descriptor of an operand built so far.
    pub fn desc(&self, id: OperandId) -> &OperandDescriptor {
        self.graph.desc(id)
    }

    /// The value of a constant operand.
    pub fn constant(&self, id: OperandId) -> Option<&Tensor> {
        match &self.graph.operand(id).kind {
            OperandKind::Constant(t) => Some(t),
            _ => None,
        }
    }

    /// The value named `name` so far, if any.
    pub fn value(&self, name: &str) -> Option<&Value> {
        self.values.get(name)
    }

    /// Names `value` `name` (a subgraph's initializers and node outputs).
    pub fn define(&mut self, name: &str, value: Value) {
        self.values.insert(name.to_string(), value);
    }

    /// Input `i` of the node as an operand; an error if it is absent.
    pub fn input(&mut self, cx: &NodeCx, i: usize) -> NodeResult<OperandId> {
        match self.opt_input(cx, i)? {
            Some(id) => Ok(id),
            None => invalid(format!("input {i} is required")),
        }
    }

    /// Optional input `i` as an operand (`None` when omitted).
    pub fn opt_input(&mut self, cx: &NodeCx, i: usize) -> NodeResult<Option<OperandId>> {
        if !cx.has_input(i) {
            return Ok(None);
        }
        let name = &cx.node.input[i];
        match self.values.get(name) {
            Some(Value::Operand(id)) => Ok(Some(*id)),
            Some(Value::Const(t)) => {
                let t = t.clone();
                let id = self.add_constant(Some(name), t).map_err(|e| {
                    NodeError::Unsupported(format!("input {i} (`{name}`): {e}"))
                })?;
                self.values.insert(name.clone(), Value::Operand(id));
                Ok(Some(id))
            }
            Some(Value::Unavailable) | None => unreachable!("the importer only runs nodes whose inputs are available"),
        }
    }

    /// Input `i` as a load-time constant, if given; an error if it is
    /// computed from graph inputs.
    pub fn const_input(&self, cx: &NodeCx, i: usize) -> NodeResult<Option<Tensor>> {
        if !cx.has_input(i) {
            return Ok(None);
        }
        let name = &cx.node.input[i];
        match self.values.get(name) {
            Some(Value::Const(t)) => Ok(Some(t.clone())),
            Some(Value::Operand(id)) => match self.constant(*id) {
                Some(t) => Ok(Some(t.clone())),
                None => Err(NodeError::NotConstant { index: i, name: name.clone() }),
            },
            _ => unreachable!("the importer only runs nodes whose inputs are available"),
        }
    }

    /// Input `i`'s value if it is known at load time, else `None` (never
    /// an error): for handlers that take a different path for constants.
    pub fn known_input(&self, cx: &NodeCx, i: usize) -> Option<Tensor> {
        self.const_input(cx, i).ok().flatten()
    }

    /// The graph inputs (ONNX names, sorted) that the value `name` is
    /// computed from, following operands back through the nodes built so far.
    fn graph_inputs_behind(&self, name: &str) -> Vec<String> {
        let mut found = std::collections::BTreeSet::new();
        let mut stack: Vec<OperandId> = match self.values.get(name) {
            Some(Value::Operand(id)) => vec![*id],
            _ => Vec::new(),
        };
        let mut seen = std::collections::HashSet::new();
        while let Some(id) = stack.pop() {
            if !seen.insert(id) {
                continue;
            }
            match &self.graph.operand(id).kind {
                OperandKind::Input { name } => drop(found.insert(name.clone())),
                OperandKind::Output { node, .. } => {
                    stack.extend(self.graph.nodes()[node.0 as usize].op.inputs().into_iter().map(|(_, i)| i));
                }
                OperandKind::Constant(_) => {}
            }
        }
        found.into_iter().collect()
    }

    /// Input `i` as constant integers (any integer type), if given.
    pub fn const_ints(&self, cx: &NodeCx, i: usize) -> NodeResult<Option<Vec<i64>>> {
        Ok(self.const_input(cx, i)?.map(|t| tensor_ints(&t)))
    }

    /// Input `i` as constant floats (any type), if given.
    pub fn const_floats(&self, cx: &NodeCx, i: usize) -> NodeResult<Option<Vec<f64>>> {
        Ok(self.const_input(cx, i)?.map(|t| match t.values() {
            Values::Float(v) => v,
            Values::Int(v) => v.into_iter().map(|x| x as f64).collect(),
        }))
    }

    /// A tensor attribute (of `Constant`, `ConstantOfShape`, ...) as a
    /// tensor, its external data read relative to the model.
    pub fn convert_tensor(&mut self, t: &TensorProto) -> NodeResult<Tensor> {
        tensor::convert(t, &mut self.files).map_err(|e| NodeError::Unsupported(format!("tensor `{}`: {e}", t.name)))
    }

    /// Adds a constant operand.
    pub fn add_constant(&mut self, name: Option<&str>, tensor: Tensor) -> Result<OperandId, GraphError> {
        self.graph.add_constant(name, tensor)
    }

    /// A scalar constant of `data_type` (rank 0), for decompositions.
    pub fn scalar(&mut self, data_type: DataType, value: f64) -> NodeResult<OperandId> {
        let values = if data_type.is_float() { Values::Float(vec![value]) } else { Values::Int(vec![value as i128]) };
        let t = Tensor::from_values(OperandDescriptor::new(data_type, Shape::scalar()), &values)
            .map_err(|e| NodeError::Invalid(e.to_string()))?;
        Ok(self.add_constant(None, t)?)
    }

    /// Adds `op` (labelled with the node's name), or evaluates it now when
    /// every input is a constant. Returns the outputs.
    pub fn op(&mut self, cx: &NodeCx, op: Op) -> NodeResult<Vec<OperandId>> {
        let inputs = op.inputs();
        let outputs = self.graph.add_node(op, &cx.label)?;
        let node = self.graph.nodes().last().expect("just added");
        let Some(folded) = fold_node(&self.graph, node) else {
            return Ok(outputs);
        };
        // Folded: the node stays unused and is pruned with the graph.
        let tensors = folded.map_err(|e| NodeError::Invalid(e.to_string()))?;
        // Mapped weights read by the fold need not stay resident.
        for (_, id) in &inputs {
            if let OperandKind::Constant(t) = &self.graph.operand(*id).kind {
                let bytes = t.shared_bytes();
                bytes.release_pages(0..bytes.len());
            }
        }
        tensors.into_iter().map(|t| Ok(self.add_constant(None, t)?)).collect()
    }

    /// [`Importer::op`] for single-output operators.
    pub fn op1(&mut self, cx: &NodeCx, op: Op) -> NodeResult<OperandId> {
        Ok(self.op(cx, op)?[0])
    }

    /// `Unary` of `kind` on `input`.
    pub fn unary(&mut self, cx: &NodeCx, kind: UnaryOp, input: OperandId) -> NodeResult<OperandId> {
        self.op1(cx, Op::Unary { kind, input })
    }
}

/// The integers of an integer or float tensor, saturated to i64.
pub fn tensor_ints(t: &Tensor) -> Vec<i64> {
    match t.values() {
        Values::Int(v) => v.into_iter().map(|x| x.clamp(i64::MIN as i128, i64::MAX as i128) as i64).collect(),
        Values::Float(v) => v.into_iter().map(|x| x as i64).collect(),
    }
}

fn node_label(node: &NodeProto, index: usize) -> String {
    if node.name.is_empty() { format!("#{index}") } else { node.name.clone() }
}

/// The input's descriptor, with symbolic dims bound from `options`.
/// `given` is the shape bound to this input by name, if any. Zero
/// dimensions are allowed here; the caller decides.
fn input_descriptor(
    info: &ValueInfoProto,
    options: &LoadOptions,
    given: Option<&[u32]>,
) -> Result<OperandDescriptor, OnnxError> {
    let err = |message: String| OnnxError::Input { name: info.name.clone(), message };
    let tensor_type = match info.r#type.as_ref().and_then(|t| t.value.as_ref()) {
        Some(type_proto::Value::TensorType(t)) => t,
        Some(other) => {
            let kind = match other {
                type_proto::Value::SequenceType(_) => "a sequence",
                type_proto::Value::MapType(_) => "a map",
                type_proto::Value::SparseTensorType(_) => "a sparse tensor",
                type_proto::Value::OptionalType(_) => "an optional",
                type_proto::Value::TensorType(_) => unreachable!(),
            };
            return Err(err(format!("it is {kind}; kiln inputs are dense tensors")));
        }
        None => return Err(err("the model gives it no type".into())),
    };
    let data_type = tensor::data_type(tensor_type.elem_type).map_err(err)?;
    let dims: Vec<u32> = match (&tensor_type.shape, given) {
        (None, Some(shape)) => shape.to_vec(),
        (None, None) => {
            return Err(err(format!("the model gives it no shape; give one (--shape {}=1x3x224x224)", info.name)));
        }
        (Some(shape), given) => {
            if let Some(g) = given
                && g.len() != shape.dim.len()
            {
                return Err(err(format!("the model gives rank {}, --shape gives rank {}", shape.dim.len(), g.len())));
            }
            let mut dims = Vec::with_capacity(shape.dim.len());
            for (i, d) in shape.dim.iter().enumerate() {
                use super::proto::tensor_shape_proto::dimension::Value as D;
                let fixed = match &d.value {
                    Some(D::DimValue(v)) if *v >= 0 => Some(u32::try_from(*v).map_err(|_| err(format!("dimension {i} ({v}) exceeds 2^32 - 1")))?),
                    _ => None,
                };
                let param = match &d.value {
                    Some(D::DimParam(p)) if !p.is_empty() => Some(p.as_str()),
                    _ => None,
                };
                let bound = given.map(|g| g[i]).or_else(|| param.and_then(|p| options.shapes.get(p)).and_then(|v| v.first().copied()));
                dims.push(match (fixed, bound) {
                    (Some(f), Some(b)) if f != b => {
                        return Err(err(format!("dimension {i} is {f} in the model, --shape gives {b}")));
                    }
                    (Some(f), _) => f,
                    (None, Some(b)) => b,
                    (None, None) => {
                        let what = param.map(|p| format!(" (`{p}`)")).unwrap_or_default();
                        let hint = param.map(|p| format!(" or --shape {p}=N")).unwrap_or_default();
                        return Err(err(format!(
                            "dimension {i}{what} is symbolic and not bound; give --shape {}=D0x...{hint}",
                            info.name
                        )));
                    }
                });
            }
            dims
        }
    };
    Ok(OperandDescriptor::new(data_type, dims))
}

/// The nodes in an order where every value is produced before it is read.
fn dependency_order(graph: &GraphProto, known: &HashMap<String, Value>) -> Result<Vec<usize>, OnnxError> {
    let mut producer: HashMap<&str, usize> = HashMap::new();
    for (n, node) in graph.node.iter().enumerate() {
        for out in node.output.iter().filter(|o| !o.is_empty()) {
            if known.contains_key(out) || producer.insert(out, n).is_some() {
                return Err(OnnxError::Model(format!(
                    "value `{out}` is produced more than once (node `{}` and another node, initializer or input)",
                    node_label(node, n)
                )));
            }
        }
    }
    let mut waiting = vec![0usize; graph.node.len()];
    let mut readers: Vec<Vec<usize>> = vec![Vec::new(); graph.node.len()];
    for (n, node) in graph.node.iter().enumerate() {
        // A subgraph's reads of this graph's values order its node too.
        let implicit: Vec<String> =
            outer_scope_reads(node).into_iter().filter(|i| producer.contains_key(i.as_str())).collect();
        for input in node.input.iter().filter(|i| !i.is_empty()).chain(&implicit) {
            if known.contains_key(input) {
                continue;
            }
            match producer.get(input.as_str()) {
                Some(&p) => {
                    waiting[n] += 1;
                    readers[p].push(n);
                }
                None => {
                    return Err(OnnxError::Node {
                        node: node_label(node, n),
                        op_type: node.op_type.clone(),
                        message: format!("input `{input}` is not produced by any node, initializer or graph input"),
                    });
                }
            }
        }
    }
    // Kahn's algorithm, taking ready nodes in file order.
    let mut ready: std::collections::BTreeSet<usize> = (0..graph.node.len()).filter(|&n| waiting[n] == 0).collect();
    let mut order = Vec::with_capacity(graph.node.len());
    while let Some(n) = ready.pop_first() {
        order.push(n);
        for &r in &readers[n] {
            waiting[r] -= 1;
            if waiting[r] == 0 {
                ready.insert(r);
            }
        }
    }
    if order.len() < graph.node.len() {
        let stuck: Vec<String> = (0..graph.node.len())
            .filter(|&n| waiting[n] > 0)
            .take(8)
            .map(|n| format!("`{}`", node_label(&graph.node[n], n)))
            .collect();
        return Err(OnnxError::Model(format!("the graph has a cycle: nodes {} wait on each other", stuck.join(", "))));
    }
    Ok(order)
}

/// The values the subgraphs of `node` (at any depth) read from outside
/// themselves, sorted: names their nodes read that no node, initializer
/// or input of the subgraph defines.
pub fn outer_scope_reads(node: &NodeProto) -> Vec<String> {
    let mut reads = std::collections::BTreeSet::new();
    for g in node.attribute.iter().filter_map(|a| a.g.as_deref()) {
        let mut defined: std::collections::HashSet<&str> = g.initializer.iter().map(|t| t.name.as_str()).collect();
        defined.extend(g.input.iter().map(|i| i.name.as_str()));
        for inner in &g.node {
            let needs = inner.input.iter().filter(|i| !i.is_empty()).cloned().chain(outer_scope_reads(inner));
            reads.extend(needs.filter(|i| !defined.contains(i.as_str())));
            defined.extend(inner.output.iter().map(String::as_str));
        }
    }
    reads.into_iter().collect()
}

/// Imports `graph` (of a model at `opset`, whose external data lives in
/// `files`) with `options` binding its symbolic dimensions.
pub fn import(
    graph: &GraphProto,
    opset: i64,
    files: ExternalFiles,
    options: &LoadOptions,
) -> Result<Graph, OnnxError> {
    let mut im = Importer { graph: Graph::new(), values: HashMap::new(), files, input_names: Vec::new() };
    if let Some(sparse) = graph.sparse_initializer.first() {
        let name = sparse.values.as_ref().map(|v| v.name.as_str()).unwrap_or_default();
        return Err(OnnxError::Model(format!("sparse initializer `{name}`: sparse tensors are not supported")));
    }
    for init in &graph.initializer {
        let t = tensor::convert(init, &mut im.files)
            .map_err(|message| OnnxError::Model(format!("initializer `{}`: {message}", init.name)))?;
        im.values.insert(init.name.clone(), Value::Const(t));
    }
    for info in &graph.input {
        // Before IR version 4 initializers are also listed as inputs; they
        // stay constants.
        if im.values.contains_key(&info.name) {
            continue;
        }
        im.input_names.push(info.name.clone());
        let bound = options.constants.get(&info.name);
        let given = bound.map(|t| t.shape().dims().to_vec()).or_else(|| options.shapes.get(&info.name).cloned());
        let desc = input_descriptor(info, options, given.as_deref())?;
        let value = match bound {
            // Bound at load time: a constant like an initializer.
            Some(t) if t.data_type() != desc.data_type => {
                return Err(OnnxError::Input {
                    name: info.name.clone(),
                    message: format!("the model declares {}, the bound value is {}", desc.data_type, t.data_type()),
                });
            }
            Some(t) => Value::Const(t.clone()),
            // A zero-size input carries no data: its shape says everything.
            None if desc.shape.element_count() == 0 => {
                let empty = Tensor::new(desc, kiln_ir::Bytes::from_vec(Vec::new())).expect("an empty tensor has no bytes");
                Value::Const(empty)
            }
            None => Value::Operand(im.graph.add_input(&info.name, desc).map_err(|e| OnnxError::Model(e.to_string()))?),
        };
        im.values.insert(info.name.clone(), value);
    }
    if let Some(name) = options.constants.keys().find(|k| !im.input_names.contains(k)) {
        return Err(OnnxError::Input {
            name: name.clone(),
            message: format!("a value is bound to it, but it is not a graph input (inputs: {})", im.input_names.join(", ")),
        });
    }
    let unknown: Vec<&String> = options
        .shapes
        .keys()
        .filter(|k| !graph.input.iter().any(|i| &i.name == *k) && !mentions_dim_param(graph, k))
        .collect();
    if let Some(name) = unknown.first() {
        let inputs: Vec<&str> = graph.input.iter().map(|i| i.name.as_str()).collect();
        return Err(OnnxError::Input {
            name: name.to_string(),
            message: format!(
                "--shape names neither a graph input nor a symbolic dimension (inputs: {})",
                inputs.join(", ")
            ),
        });
    }

    let order = dependency_order(graph, &im.values)?;
    let mut unsupported_nodes: Vec<Unsupported> = Vec::new();
    for n in order {
        let node = &graph.node[n];
        let cx = NodeCx { node, opset, label: node_label(node, n) };
        let available = node.input.iter().filter(|i| !i.is_empty()).all(|i| !matches!(im.values[i], Value::Unavailable));
        let outcome = if !available {
            Err(None)
        } else {
            match super::ops::handler(&node.domain, &node.op_type) {
                None => Err(Some((super::ops::unsupported_reason(&node.domain, &node.op_type), Vec::new()))),
                Some(handler) => match handler(&mut im, &cx) {
                    Ok(values) => Ok(values),
                    Err(NodeError::Unsupported(reason)) => Err(Some((reason, Vec::new()))),
                    Err(NodeError::NotConstant { index, name }) => {
                        let inputs = im.graph_inputs_behind(&name);
                        let from = if inputs.is_empty() {
                            "it is computed at run time".to_string()
                        } else {
                            format!(
                                "it is computed from the graph input(s) {}: bind their values at load time \
                                 (LoadOptions::constants)",
                                inputs.iter().map(|i| format!("`{i}`")).collect::<Vec<_>>().join(", ")
                            )
                        };
                        let reason = format!("input {index} (`{name}`) must be known at load time, but {from}");
                        Err(Some((reason, inputs)))
                    }
                    Err(NodeError::Invalid(message)) => {
                        return Err(OnnxError::Node { node: cx.label, op_type: node.op_type.clone(), message });
                    }
                },
            }
        };
        match outcome {
            Ok(values) => {
                for (i, out) in node.output.iter().enumerate() {
                    if out.is_empty() {
                        continue;
                    }
                    let Some(v) = values.get(i) else {
                        unsupported_nodes.push(Unsupported {
                            node: cx.label.clone(),
                            op_type: node.op_type.clone(),
                            reason: format!("output {i} (`{out}`) is not supported"),
                            needs_values: Vec::new(),
                        });
                        im.values.insert(out.clone(), Value::Unavailable);
                        continue;
                    };
                    im.values.insert(out.clone(), v.clone());
                }
            }
            Err(reason) => {
                if let Some((reason, needs_values)) = reason {
                    unsupported_nodes.push(Unsupported { node: cx.label.clone(), op_type: qualified(node), reason, needs_values });
                }
                for out in node.output.iter().filter(|o| !o.is_empty()) {
                    im.values.insert(out.clone(), Value::Unavailable);
                }
            }
        }
    }
    if !unsupported_nodes.is_empty() {
        return Err(OnnxError::Unsupported(unsupported_nodes));
    }

    for out in &graph.output {
        let value = im.values.get(&out.name).cloned().ok_or_else(|| {
            OnnxError::Model(format!("graph output `{}` is not produced by any node, initializer or input", out.name))
        })?;
        let id = match value {
            Value::Operand(id) => id,
            Value::Const(t) => im.add_constant(Some(&out.name), t).map_err(|e| OnnxError::Model(format!("graph output `{}`: {e}", out.name)))?,
            Value::Unavailable => unreachable!("unsupported nodes were reported"),
        };
        // WebNN outputs are computed by operators: an output that is an
        // input, a constant or another output's operand gets an identity.
        let computed = matches!(im.graph.operand(id).kind, OperandKind::Output { .. })
            && !im.graph.outputs().iter().any(|(_, o)| *o == id);
        let id = if computed {
            id
        } else {
            im.graph
                .add_node(Op::Unary { kind: UnaryOp::Identity, input: id }, &out.name)
                .map_err(|e| OnnxError::Model(format!("graph output `{}`: {e}", out.name)))?[0]
        };
        im.graph.add_output(&out.name, id).map_err(|e| OnnxError::Model(e.to_string()))?;
    }
    if graph.output.is_empty() {
        return Err(OnnxError::Model("the graph has no outputs".into()));
    }
    Ok(im.graph.pruned())
}

fn mentions_dim_param(graph: &GraphProto, name: &str) -> bool {
    use super::proto::tensor_shape_proto::dimension::Value as D;
    graph.input.iter().any(|i| match i.r#type.as_ref().and_then(|t| t.value.as_ref()) {
        Some(type_proto::Value::TensorType(t)) => t
            .shape
            .as_ref()
            .is_some_and(|s| s.dim.iter().any(|d| matches!(&d.value, Some(D::DimParam(p)) if p == name))),
        _ => false,
    })
}

/// Whether `domain` names ONNX's default operator set.
pub fn is_default_domain(domain: &str) -> bool {
    domain.is_empty() || domain == "ai.onnx"
}

/// `domain::OpType`, or just `OpType` in the default domain.
pub fn qualified(node: &NodeProto) -> String {
    if is_default_domain(&node.domain) {
        node.op_type.clone()
    } else {
        format!("{}::{}", node.domain, node.op_type)
    }
}

/// Operator types with their node counts, sorted by name.
pub fn operator_counts(graph: &GraphProto) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for node in &graph.node {
        *counts.entry(qualified(node)).or_insert(0) += 1;
    }
    counts
}
