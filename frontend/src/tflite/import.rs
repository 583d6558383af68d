//! The importer: walks the entry subgraph's operators in file order (TFLite
//! stores them in execution order) and builds the kiln [`Graph`] through
//! the operator table in [`super::ops`].
//!
//! Every tensor index the file names is checked before it is used, a
//! tensor read before any operator writes it is an error (the graph is
//! cyclic or out of order), and every output's shape and type is checked
//! against the one the file declares. Quantized values are dequantized
//! where an operator reads them and quantized where it writes them (see
//! the module documentation of [`super`]).

use kiln_ir::interp::fold_node;
use kiln_ir::{
    BinaryOp, DataType, Graph, GraphError, Number, Op, OperandDescriptor, OperandId, OperandKind, Shape, Tensor,
    UnaryOp, Values,
};

use super::flatbuf::FlatError;
use super::schema::{self, Model, OperatorCode, Options, Quantization, SubGraph, TensorDef};
use super::{TfliteError, Unsupported, names, ops, sparse};

/// What a tensor holds while importing.
#[derive(Clone)]
enum Slot {
    /// Not written yet (and not a constant or graph input).
    Pending,
    Operand(OperandId),
    /// Written by an unsupported operator; readers are skipped.
    Unavailable,
}

/// Why an operator could not be imported.
#[derive(Debug)]
pub enum OpError {
    /// A valid operator kiln cannot express (an option value, a type):
    /// collected with the other unsupported operators.
    Unsupported(String),
    /// The operator breaks TFLite's rules or the shapes do not fit.
    Invalid(String),
}

impl From<GraphError> for OpError {
    fn from(e: GraphError) -> Self {
        OpError::Invalid(e.to_string())
    }
}

impl From<FlatError> for OpError {
    fn from(e: FlatError) -> Self {
        OpError::Invalid(e.to_string())
    }
}

pub type OpResult<T> = Result<T, OpError>;

pub fn invalid<T>(message: impl Into<String>) -> OpResult<T> {
    Err(OpError::Invalid(message.into()))
}

pub fn unsupported<T>(message: impl Into<String>) -> OpResult<T> {
    Err(OpError::Unsupported(message.into()))
}

/// One operator being imported.
pub struct OpCx<'a> {
    pub op_type: String,
    pub code: i32,
    pub inputs: Vec<i32>,
    pub outputs: Vec<i32>,
    pub options: Options<'a>,
    pub custom_options: &'a [u8],
    /// The label its kiln nodes carry: the first output tensor's name.
    pub label: String,
}

impl OpCx<'_> {
    /// Whether optional input `i` is given (present and not -1).
    pub fn has_input(&self, i: usize) -> bool {
        self.inputs.get(i).is_some_and(|&t| t >= 0)
    }

    /// Fails unless the operator has `inputs` inputs (counting omitted
    /// optional ones within `range`) and `outputs` outputs.
    pub fn arity(&self, inputs: std::ops::RangeInclusive<usize>, outputs: usize) -> OpResult<()> {
        if !inputs.contains(&self.inputs.len()) {
            let want = if inputs.start() == inputs.end() { inputs.start().to_string() } else { format!("{} to {}", inputs.start(), inputs.end()) };
            return invalid(format!("takes {want} inputs, the model gives {}", self.inputs.len()));
        }
        if self.outputs.len() != outputs {
            return invalid(format!("has {outputs} output{}, the model gives {}", if outputs == 1 { "" } else { "s" }, self.outputs.len()));
        }
        Ok(())
    }
}

/// Builds one [`Graph`] from the entry subgraph.
pub struct Importer<'a> {
    pub graph: Graph,
    model: &'a Model<'a>,
    tensors: Vec<TensorDef<'a>>,
    slots: Vec<Slot>,
    /// The dequantized value of quantized tensors read so far.
    dequantized: Vec<Option<OperandId>>,
    buffer_count: usize,
}

/// The subgraph a model runs: the first.
pub fn entry_subgraph<'a>(model: &Model<'a>) -> Result<SubGraph<'a>, TfliteError> {
    let count = model.subgraph_count().map_err(|e| TfliteError::Model(e.to_string()))?;
    if count == 0 {
        return Err(TfliteError::Model("the model has no subgraph".into()));
    }
    model.subgraph(0).map_err(|e| TfliteError::Model(e.to_string()))
}

/// The operator's name for messages: the builtin name, or `CUSTOM(name)`
/// (`name` alone: custom operators are known by their names).
pub fn op_type(code: &OperatorCode) -> String {
    if code.builtin == schema::CUSTOM { code.custom.clone() } else { names::builtin_name(code.builtin) }
}

fn model_err(message: impl Into<String>) -> TfliteError {
    TfliteError::Model(message.into())
}

/// Imports the entry subgraph of `model`.
pub fn import(model: &Model) -> Result<Graph, TfliteError> {
    let flat = |e: FlatError| model_err(e.to_string());
    let codes = model.operator_codes().map_err(flat)?;
    let sub = entry_subgraph(model)?;
    let tensors = (0..sub.tensors.len()).map(|i| sub.tensor(i)).collect::<Result<Vec<_>, _>>().map_err(flat)?;
    let buffer_count = model.buffer_count().map_err(flat)?;
    let mut im = Importer { graph: Graph::new(), model, slots: vec![Slot::Pending; tensors.len()], dequantized: vec![None; tensors.len()], tensors, buffer_count };

    for (i, t) in im.tensors.iter().enumerate() {
        if t.buffer as usize >= buffer_count {
            return Err(model_err(format!(
                "tensor {i} (`{}`) names buffer {}, the model has {buffer_count}",
                t.name, t.buffer
            )));
        }
    }
    for &t in &sub.inputs {
        let i = im.tensor_index(t).map_err(|e| model_err(format!("subgraph input: {}", message(e))))?;
        let def = &im.tensors[i];
        if im.constant_bytes(i).map_err(|e| model_err(message(e)))?.is_some() {
            continue; // A constant listed as an input (older converters): it stays a constant.
        }
        let desc = im.declared(i).map_err(|e| model_err(format!("input `{}`: {}", def.name, message(e))))?;
        let id = im.graph.add_input(&def.name, desc).map_err(|e| model_err(e.to_string()))?;
        im.slots[i] = Slot::Operand(id);
    }

    let mut unsupported: Vec<Unsupported> = Vec::new();
    for index in 0..sub.operators.len() {
        let op = sub.operator(index).map_err(flat)?;
        let code = codes.get(op.opcode_index as usize).ok_or_else(|| {
            model_err(format!(
                "operator #{index} names operator code {}, the model has {}",
                op.opcode_index,
                codes.len()
            ))
        })?;
        let label = op
            .outputs
            .first()
            .and_then(|&t| usize::try_from(t).ok())
            .and_then(|t| im.tensors.get(t))
            .map(|t| t.name.clone())
            .unwrap_or_default();
        let cx = OpCx {
            op_type: op_type(code),
            code: code.builtin,
            inputs: op.inputs,
            outputs: op.outputs,
            options: Options { table: op.options },
            custom_options: op.custom_options,
            label,
        };
        let fail = |message: String| TfliteError::Operator {
            index,
            op_type: cx.op_type.clone(),
            output: cx.label.clone(),
            message,
        };
        // Index checks and the dependency rule, before anything is built.
        let mut skip = false;
        for (n, &t) in cx.inputs.iter().enumerate() {
            if t == -1 {
                continue; // An omitted optional input.
            }
            let i = im.tensor_index(t).map_err(|e| fail(format!("input {n}: {}", message(e))))?;
            match im.slots[i] {
                Slot::Unavailable => skip = true,
                Slot::Pending if im.constant_bytes(i).map_err(|e| fail(message(e)))?.is_none() => {
                    return Err(fail(format!(
                        "input {n} reads tensor {i} (`{}`) before any operator writes it (the graph is cyclic or out of order)",
                        im.tensors[i].name
                    )));
                }
                _ => {}
            }
        }
        for (n, &t) in cx.outputs.iter().enumerate() {
            let i = im.tensor_index(t).map_err(|e| fail(format!("output {n}: {}", message(e))))?;
            let name = &im.tensors[i].name;
            if let Some(m) = cx.outputs[..n].iter().position(|&u| u == t) {
                return Err(fail(format!("output {n} writes tensor {i} (`{name}`), which output {m} writes too")));
            }
            let already = match im.slots[i] {
                Slot::Pending if im.constant_bytes(i).map_err(|e| fail(message(e)))?.is_some() => Some("a constant"),
                Slot::Pending => None,
                Slot::Operand(id) if matches!(im.graph.operand(id).kind, OperandKind::Input { .. }) => Some("a graph input"),
                Slot::Operand(id) if matches!(im.graph.operand(id).kind, OperandKind::Constant(_)) => Some("a constant"),
                _ => Some("another operator's output"),
            };
            if let Some(what) = already {
                return Err(fail(format!("output {n} writes tensor {i} (`{name}`), which is already {what}")));
            }
        }
        let result = if skip {
            Err(None)
        } else {
            match ops::handler(&cx) {
                Some(handler) => handler(&mut im, &cx).map_err(Some),
                None => Err(Some(OpError::Unsupported(ops::unsupported_reason(&cx)))),
            }
        };
        match result {
            Ok(()) => {
                if let Some(n) = cx.outputs.iter().position(|&t| matches!(im.slots[t as usize], Slot::Pending)) {
                    return Err(fail(format!("output {n} was not produced (an importer bug)")));
                }
            }
            Err(e) => {
                match e {
                    Some(OpError::Invalid(message)) => return Err(fail(message)),
                    Some(OpError::Unsupported(reason)) => unsupported.push(Unsupported {
                        index,
                        op_type: cx.op_type.clone(),
                        output: cx.label.clone(),
                        reason,
                    }),
                    None => {}
                }
                for &t in &cx.outputs {
                    im.slots[t as usize] = Slot::Unavailable;
                }
            }
        }
    }
    if !unsupported.is_empty() {
        return Err(TfliteError::Unsupported(unsupported));
    }

    if sub.outputs.is_empty() {
        return Err(model_err("the subgraph has no outputs"));
    }
    for &t in &sub.outputs {
        let i = im.tensor_index(t).map_err(|e| model_err(format!("subgraph output: {}", message(e))))?;
        let name = im.tensors[i].name.clone();
        let id = match im.slots[i].clone() {
            Slot::Operand(id) => id,
            Slot::Pending if im.constant_bytes(i).map_err(|e| model_err(message(e)))?.is_some() => {
                im.raw_constant(i).map_err(|e| model_err(format!("output `{name}`: {}", message(e))))?
            }
            _ => return Err(model_err(format!("output `{name}` (tensor {i}) is not written by any operator"))),
        };
        // A graph output must be a node's output: inputs and constants go
        // through an identity.
        let id = match im.graph.operand(id).kind {
            OperandKind::Output { .. } => id,
            _ => im
                .graph
                .add_node(Op::Unary { kind: UnaryOp::Identity, input: id }, &name)
                .map_err(|e| model_err(format!("output `{name}`: {e}")))?[0],
        };
        im.graph.add_output(&name, id).map_err(|e| model_err(format!("output `{name}`: {e}")))?;
    }
    Ok(im.graph.pruned())
}

fn message(e: OpError) -> String {
    match e {
        OpError::Invalid(m) | OpError::Unsupported(m) => m,
    }
}

/// Whether quantization parameters describe an affine quantized tensor of
/// an integer type (float tensors may carry min/max ranges only).
fn quantized<'d>(def: &'d TensorDef, data_type: DataType) -> Option<&'d Quantization> {
    def.quantization.as_ref().filter(|_| !data_type.is_float())
}

impl<'a> Importer<'a> {
    fn tensor_index(&self, t: i32) -> OpResult<usize> {
        match usize::try_from(t) {
            Ok(i) if i < self.tensors.len() => Ok(i),
            _ => invalid(format!("tensor index {t} is out of range (the subgraph has {} tensors)", self.tensors.len())),
        }
    }

    /// The tensor definition input `n` of `cx` names.
    pub fn def(&self, cx: &OpCx, n: usize) -> OpResult<&TensorDef<'a>> {
        match cx.inputs.get(n) {
            Some(&t) if t >= 0 => Ok(&self.tensors[self.tensor_index(t)?]),
            _ => invalid(format!("input {n} is required")),
        }
    }

    /// The definition of output `n`.
    pub fn out_def(&self, cx: &OpCx, n: usize) -> OpResult<&TensorDef<'a>> {
        match cx.outputs.get(n) {
            Some(&t) => Ok(&self.tensors[self.tensor_index(t)?]),
            None => invalid(format!("output {n} is missing")),
        }
    }

    pub fn tensor_type(def: &TensorDef) -> OpResult<DataType> {
        schema::data_type(def.type_code).or_else(|name| {
            unsupported(format!("tensor `{}` is {name}; kiln has float32, float16, int32, uint32, int64, uint64, int8, uint8 and bool", def.name))
        })
    }

    /// The shape the file declares for tensor `i`.
    fn declared_shape(def: &TensorDef) -> OpResult<Shape> {
        let dims = def
            .shape
            .iter()
            .map(|&d| u32::try_from(d).ok().filter(|&d| d > 0))
            .collect::<Option<Vec<u32>>>()
            .ok_or_else(|| {
                OpError::Unsupported(format!(
                    "tensor `{}` has shape {:?}; kiln needs static shapes with every dimension at least 1",
                    def.name, def.shape
                ))
            })?;
        let shape = Shape::new(dims);
        if shape.checked_element_count().is_none_or(|n| n > 1 << 40) {
            return invalid(format!("tensor `{}` has shape {shape}, too many elements", def.name));
        }
        Ok(shape)
    }

    /// The descriptor tensor `i` is declared with.
    fn declared(&self, i: usize) -> OpResult<OperandDescriptor> {
        let def = &self.tensors[i];
        Ok(OperandDescriptor::new(Self::tensor_type(def)?, Self::declared_shape(def)?))
    }

    /// The bytes of tensor `i`'s buffer, if it has data (a constant).
    fn constant_bytes(&self, i: usize) -> OpResult<Option<&'a [u8]>> {
        let def = &self.tensors[i];
        if def.buffer == 0 {
            return Ok(None);
        }
        debug_assert!((def.buffer as usize) < self.buffer_count, "checked in import");
        let bytes = self.model.buffer(def.buffer as usize)?;
        Ok((!bytes.is_empty()).then_some(bytes))
    }

    /// Tensor `i` (which has data) as a constant tensor in its own type,
    /// densified when stored sparse.
    fn constant_tensor(&self, i: usize) -> OpResult<Tensor> {
        let def = &self.tensors[i];
        let bytes = self.constant_bytes(i)?.expect("the caller checked");
        let desc = self.declared(i)?;
        if let Some(sparsity) = &def.sparsity {
            return sparse::densify(&def.name, &desc, bytes, sparsity);
        }
        if bytes.len() != desc.byte_length() {
            return invalid(format!(
                "tensor `{}`: its buffer holds {} bytes, {} {} needs {}",
                def.name,
                bytes.len(),
                desc.data_type,
                desc.shape,
                desc.byte_length()
            ));
        }
        Tensor::from_bytes(desc, bytes.to_vec()).map_err(|e| OpError::Invalid(e.to_string()))
    }

    /// Tensor `i` as an operand in its stored type (constants are added on
    /// first use).
    fn raw_constant(&mut self, i: usize) -> OpResult<OperandId> {
        let t = self.constant_tensor(i)?;
        let id = self.graph.add_constant(Some(&self.tensors[i].name.clone()), t)?;
        self.slots[i] = Slot::Operand(id);
        Ok(id)
    }

    fn raw(&mut self, i: usize) -> OpResult<OperandId> {
        match self.slots[i] {
            Slot::Operand(id) => Ok(id),
            _ => self.raw_constant(i),
        }
    }

    /// Input `n` in its stored type (quantized values stay quantized).
    pub fn raw_input(&mut self, cx: &OpCx, n: usize) -> OpResult<OperandId> {
        self.def(cx, n)?;
        self.raw(cx.inputs[n] as usize)
    }

    /// Input `n` as a value: dequantized to float32 when the tensor is
    /// quantized, else as stored.
    pub fn input(&mut self, cx: &OpCx, n: usize) -> OpResult<OperandId> {
        let i = self.tensor_index(*cx.inputs.get(n).filter(|&&t| t >= 0).ok_or_else(|| OpError::Invalid(format!("input {n} is required")))?)?;
        self.value(i)
    }

    /// Optional input `n` as a value (`None` when omitted).
    pub fn opt_input(&mut self, cx: &OpCx, n: usize) -> OpResult<Option<OperandId>> {
        if cx.has_input(n) { self.input(cx, n).map(Some) } else { Ok(None) }
    }

    fn value(&mut self, i: usize) -> OpResult<OperandId> {
        if let Some(id) = self.dequantized[i] {
            return Ok(id);
        }
        let def = &self.tensors[i];
        let data_type = Self::tensor_type(def)?;
        let Some(q) = quantized(def, data_type).cloned() else {
            return self.raw(i);
        };
        let shape = Self::declared_shape(def)?;
        let axis = check_quantization(&def.name, &q, &shape)?;
        let id = if matches!(self.slots[i], Slot::Pending) {
            // A quantized constant (weights, biases): dequantized now.
            let t = self.constant_tensor(i)?;
            let Values::Int(values) = t.values() else { unreachable!("quantized() takes integer types only") };
            let channel = channel_of(&shape, axis);
            let out: Vec<f32> = values
                .iter()
                .enumerate()
                .map(|(k, &v)| {
                    let c = channel(k);
                    q.scale[c] * (v - q.zero_point.get(c).copied().unwrap_or(0) as i128) as f32
                })
                .collect();
            let name = self.tensors[i].name.clone();
            let t = Tensor::from_f32(shape, &out).map_err(|e| OpError::Invalid(e.to_string()))?;
            self.graph.add_constant(Some(&name), t)?
        } else {
            let raw = self.raw(i)?;
            self.dequantize(raw, &q, axis, &shape)?
        };
        self.dequantized[i] = Some(id);
        Ok(id)
    }

    /// `scale * (cast(q) - zero_point)` for a quantized operand.
    pub fn dequantize(&mut self, q_id: OperandId, q: &Quantization, axis: Option<usize>, shape: &Shape) -> OpResult<OperandId> {
        let label = format!("dequantize {}", self.graph.operand(q_id).name.clone().unwrap_or_default());
        let x = self.graph.add_node(Op::Cast { input: q_id, data_type: DataType::Float32 }, &label)?[0];
        let (scale, zero) = self.quantization_operands(q, axis, shape)?;
        let x = match zero {
            Some(z) => self.graph.add_node(Op::Binary { kind: BinaryOp::Sub, a: x, b: z }, &label)?[0],
            None => x,
        };
        Ok(self.graph.add_node(Op::Binary { kind: BinaryOp::Mul, a: x, b: scale }, &label)?[0])
    }

    /// The scale and (unless all zero) zero point as float32 operands that
    /// broadcast against `shape` (per-channel: along `axis`).
    fn quantization_operands(&mut self, q: &Quantization, axis: Option<usize>, shape: &Shape) -> OpResult<(OperandId, Option<OperandId>)> {
        let dims: Vec<u32> = match axis {
            None => vec![],
            Some(a) => (0..shape.rank()).map(|d| if d == a { shape.dims()[d] } else { 1 }).collect(),
        };
        let count = if axis.is_some() { q.scale.len() } else { 1 };
        let scale = Tensor::from_f32(dims.clone(), &q.scale[..count]).map_err(|e| OpError::Invalid(e.to_string()))?;
        let scale = self.graph.add_constant(None, scale)?;
        let zero = if q.zero_point.iter().take(count).all(|&z| z == 0) {
            None
        } else {
            let z: Vec<f32> = (0..count).map(|c| q.zero_point.get(c).copied().unwrap_or(0) as f32).collect();
            let z = Tensor::from_f32(dims, &z).map_err(|e| OpError::Invalid(e.to_string()))?;
            Some(self.graph.add_constant(None, z)?)
        };
        Ok((scale, zero))
    }

    /// Input `n` as constant integers (shapes, axes, paddings): it must be
    /// a constant in the file.
    pub fn const_ints(&mut self, cx: &OpCx, n: usize) -> OpResult<Vec<i64>> {
        let t = self.const_value(cx, n)?;
        Ok(match t.values() {
            Values::Int(v) => v.into_iter().map(|x| x as i64).collect(),
            Values::Float(_) => return invalid(format!("input {n} must be integers, it is {}", t.data_type())),
        })
    }

    /// Input `n`'s value, which must be known at load time (a constant, or
    /// computed from constants only).
    pub fn const_value(&mut self, cx: &OpCx, n: usize) -> OpResult<Tensor> {
        let id = self.input(cx, n)?;
        match &self.graph.operand(id).kind {
            OperandKind::Constant(t) => Ok(t.clone()),
            _ => unsupported(format!(
                "input {n} (`{}`) must be a constant: kiln takes it as a static attribute",
                self.def(cx, n)?.name
            )),
        }
    }

    /// The descriptor of an operand built so far.
    pub fn desc(&self, id: OperandId) -> &OperandDescriptor {
        self.graph.desc(id)
    }

    /// The declared shape of output `n`.
    pub fn out_shape(&self, cx: &OpCx, n: usize) -> OpResult<Shape> {
        Self::declared_shape(self.out_def(cx, n)?)
    }

    /// Adds `op`, or evaluates it now when every input is a constant.
    pub fn op(&mut self, cx: &OpCx, op: Op) -> OpResult<Vec<OperandId>> {
        let outputs = self.graph.add_node(op, &cx.label)?;
        let node = self.graph.nodes().last().expect("just added");
        let Some(folded) = fold_node(&self.graph, node) else {
            return Ok(outputs);
        };
        let tensors = folded.map_err(|e| OpError::Invalid(e.to_string()))?;
        tensors.into_iter().map(|t| Ok(self.graph.add_constant(None, t)?)).collect()
    }

    /// [`Importer::op`] for single-output operators.
    pub fn op1(&mut self, cx: &OpCx, op: Op) -> OpResult<OperandId> {
        Ok(self.op(cx, op)?[0])
    }

    /// A float32 constant of `shape`.
    pub fn constant_f32(&mut self, shape: impl Into<Shape>, values: &[f32]) -> OpResult<OperandId> {
        let t = Tensor::from_f32(shape, values).map_err(|e| OpError::Invalid(e.to_string()))?;
        Ok(self.graph.add_constant(None, t)?)
    }

    /// A constant of `data_type` and `shape` from integers.
    pub fn constant_ints(&mut self, data_type: DataType, shape: impl Into<Shape>, values: &[i64]) -> OpResult<OperandId> {
        let values = Values::Int(values.iter().map(|&v| v as i128).collect());
        let t = Tensor::from_values(OperandDescriptor::new(data_type, shape), &values)
            .map_err(|e| OpError::Invalid(e.to_string()))?;
        Ok(self.graph.add_constant(None, t)?)
    }

    /// Reshapes `id` to `shape` unless it has it already.
    pub fn reshape(&mut self, cx: &OpCx, id: OperandId, shape: &Shape) -> OpResult<OperandId> {
        if &self.desc(id).shape == shape {
            return Ok(id);
        }
        self.op1(cx, Op::Reshape { input: id, new_shape: shape.dims().to_vec() })
    }

    /// Applies a fused activation (`ActivationFunctionType`) as LiteRT's
    /// builtin kernels do: as a clamp range (kernel_util's
    /// `CalculateActivationRange`), which is unbounded for TANH and
    /// SIGN_BIT, so those two change nothing (LiteRT returns the
    /// operator's result as it is; converters never fuse them).
    pub fn activation(&mut self, cx: &OpCx, id: OperandId, code: i8) -> OpResult<OperandId> {
        let clamp = |lo: f64, hi: Option<f64>| Op::Clamp {
            input: id,
            min_value: Some(Number::Float(lo)),
            max_value: hi.map(Number::Float),
        };
        match code {
            0 | 4 | 5 => Ok(id),
            1 => self.op1(cx, Op::Unary { kind: UnaryOp::Relu, input: id }),
            2 => self.op1(cx, clamp(-1.0, Some(1.0))),
            3 => self.op1(cx, clamp(0.0, Some(6.0))),
            c => invalid(format!("fused activation code {c} is not defined")),
        }
    }

    /// Writes `value` (a float value, or one in the output's stored type)
    /// to output `n`: checks it against the declared shape and type, and
    /// quantizes it when the output is quantized.
    pub fn set_output(&mut self, cx: &OpCx, n: usize, value: OperandId) -> OpResult<()> {
        let i = self.tensor_index(cx.outputs[n])?;
        let def = &self.tensors[i];
        let declared = self.declared(i)?;
        let got = self.desc(value).clone();
        if got.shape != declared.shape {
            return invalid(format!(
                "output {n} (`{}`) is declared {}, the operator computes {}",
                def.name, declared.shape, got.shape
            ));
        }
        let value = match quantized(def, declared.data_type) {
            Some(q) if got.data_type.is_float() => {
                let q = q.clone();
                if check_quantization(&def.name, &q, &declared.shape)?.is_some() {
                    return unsupported(format!("output `{}` is quantized per channel; kiln quantizes activations per tensor", def.name));
                }
                self.quantize(cx, value, &q, declared.data_type)?
            }
            _ if got.data_type != declared.data_type => {
                return invalid(format!(
                    "output {n} (`{}`) is declared {}, the operator computes {}",
                    def.name, declared.data_type, got.data_type
                ));
            }
            _ => value,
        };
        if self.graph.operand(value).name.is_none() {
            self.graph.set_name(value, &self.tensors[i].name.clone());
        }
        self.slots[i] = Slot::Operand(value);
        Ok(())
    }

    /// `clamp(roundEven(x / scale) + zero_point, min, max)` cast to
    /// `data_type` (per tensor).
    pub fn quantize(&mut self, cx: &OpCx, x: OperandId, q: &Quantization, data_type: DataType) -> OpResult<OperandId> {
        let (lo, hi) = data_type.int_range().expect("quantized types are integers");
        let scale = self.constant_f32(Shape::scalar(), &[q.scale[0]])?;
        let y = self.op1(cx, Op::Binary { kind: BinaryOp::Div, a: x, b: scale })?;
        let mut y = self.op1(cx, Op::Unary { kind: UnaryOp::RoundEven, input: y })?;
        let zero = q.zero_point.first().copied().unwrap_or(0);
        if zero != 0 {
            let z = self.constant_f32(Shape::scalar(), &[zero as f32])?;
            y = self.op1(cx, Op::Binary { kind: BinaryOp::Add, a: y, b: z })?;
        }
        // int32 bounds are not f32 values; casts saturate beyond them anyway.
        let (lo, hi) = (lo.max(-(1 << 24)), hi.min(1 << 24));
        let y = self.op1(
            cx,
            Op::Clamp { input: y, min_value: Some(Number::Float(lo as f64)), max_value: Some(Number::Float(hi as f64)) },
        )?;
        self.op1(cx, Op::Cast { input: y, data_type })
    }
}

/// Checks a tensor's quantization parameters against its shape; returns
/// the per-channel axis (`None` for per tensor).
fn check_quantization(name: &str, q: &Quantization, shape: &Shape) -> OpResult<Option<usize>> {
    if !q.zero_point.is_empty() && q.zero_point.len() != q.scale.len() {
        return invalid(format!(
            "tensor `{name}` has {} scales and {} zero points",
            q.scale.len(),
            q.zero_point.len()
        ));
    }
    if let Some(s) = q.scale.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
        return invalid(format!("tensor `{name}` has quantization scale {s}; scales must be positive and finite"));
    }
    if q.scale.len() == 1 {
        return Ok(None);
    }
    let axis = usize::try_from(q.axis).ok().filter(|&a| a < shape.rank());
    match axis {
        Some(a) if shape.dims()[a] as usize == q.scale.len() => Ok(Some(a)),
        _ => invalid(format!(
            "tensor `{name}` has {} scales along dimension {} of shape {shape}; per-channel scales need one per element of that dimension",
            q.scale.len(),
            q.axis
        )),
    }
}

/// For a row-major tensor of `shape`, the function from flat index to the
/// channel along `axis` (always 0 per tensor).
fn channel_of(shape: &Shape, axis: Option<usize>) -> impl Fn(usize) -> usize + use<> {
    let (inner, extent) = match axis {
        Some(a) => (shape.dims()[a + 1..].iter().map(|&d| d as usize).product::<usize>(), shape.dims()[a] as usize),
        None => (1, 1),
    };
    move |k| (k / inner) % extent
}
