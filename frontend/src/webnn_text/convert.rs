//! Between documents and graphs: [`to_graph`] builds a [`Graph`] through the
//! [`GraphBuilder`] and the operator table; [`from_graph`] writes any graph
//! as a document.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use kiln_ir::{
    Attr, DataType, Graph, GraphError, Number, OperandDescriptor, OperandId, OperandKind, Shape, Tensor, Values,
};

use super::ast::*;
use super::parser::RESERVED;
use super::weights::WeightSource;
use super::{TextError, UnknownOperator};
use crate::builder::{BuildError, GraphBuilder};
use crate::op_table::{self, ArgValue};

/// The most bytes a `@scalar` constant with a non-scalar shape may fill.
/// Larger fills are an error: declare a scalar and `expand` it instead.
pub const MAX_FILLED_BYTES: u64 = 1 << 28;

fn invalid(pos: Pos, message: impl Into<String>) -> TextError {
    TextError::Invalid { pos, message: message.into() }
}

/// Builds the graph `doc` describes, reading `@weights` constants from
/// `weights`.
///
/// Meaning beyond the grammar:
/// - inputs, constants and statement targets share one namespace; a name is
///   defined once, before it is used;
/// - `x = y;` makes `x` another name for what `y` names; `x = <literal>;`
///   names a value that is substituted wherever `x` is used as an argument;
/// - a call's positional arguments follow the WebNN signature and its named
///   arguments are options; a positional argument may also be passed by its
///   spec name (`softmax(x, axis=1)`, `split(x, splits=2)`);
/// - `x = op(...)` needs an operator with one output; `[a, b] = op(...)`
///   binds every output, in order;
/// - each output names an operand computed by a statement and becomes the
///   graph output of that name;
/// - every constant has exactly one annotation; `@scalar(v)` fills every
///   element with `v` (an integer type needs an integer in its range);
/// - the header's version and `@quantized` flag are not interpreted.
///
/// Errors carry the position of the declaration, statement or name at
/// fault. Operator names are checked first: every unknown operator in the
/// file is reported in one [`TextError::UnknownOperators`].
pub fn to_graph(doc: &Document, weights: &dyn WeightSource) -> Result<Graph, TextError> {
    check_operators(doc)?;
    let mut definitions = HashMap::new();
    let all_names = doc
        .inputs
        .iter()
        .map(|d| &d.name)
        .chain(doc.consts.iter().map(|d| &d.name))
        .chain(doc.nodes.iter().flat_map(|s| &s.targets));
    for ident in all_names {
        definitions.entry(ident.name.as_str()).or_insert(ident.pos);
    }
    let mut cx = Converter { b: GraphBuilder::new(), scope: HashMap::new(), definitions };
    for d in &doc.inputs {
        cx.check_new(&d.name)?;
        let pos = d.name.pos;
        let data_type = supported(d.ty.dtype)
            .map_err(|m| invalid(pos, format!("input `{}`: {m}", d.name.name)))?;
        let id = cx
            .b
            .input(&d.name.name, OperandDescriptor::new(data_type, d.ty.shape.clone()))
            .map_err(|e| invalid(pos, e.to_string()))?;
        cx.define(&d.name, ArgValue::Operand(id))?;
    }
    for d in &doc.consts {
        cx.check_new(&d.name)?;
        let tensor = constant_tensor(d, weights)?;
        let id = cx.b.constant_tensor(Some(&d.name.name), tensor).map_err(|e| invalid(d.name.pos, e.to_string()))?;
        cx.define(&d.name, ArgValue::Operand(id))?;
    }
    for s in &doc.nodes {
        cx.statement(s)?;
    }
    cx.finish(doc)
}

fn supported(dtype: DType) -> Result<DataType, String> {
    dtype.data_type().ok_or_else(|| format!("data type {} is not supported by kiln", dtype.name()))
}

fn check_operators(doc: &Document) -> Result<(), TextError> {
    let known: BTreeSet<&str> = op_table::operator_names().into_iter().collect();
    let mut unknown: Vec<UnknownOperator> = Vec::new();
    for s in &doc.nodes {
        let Expr::Call(call) = &s.expr else { continue };
        if known.contains(call.op.name.as_str()) {
            continue;
        }
        match unknown.iter_mut().find(|u| u.name == call.op.name) {
            Some(u) => u.uses += 1,
            None => unknown.push(UnknownOperator { name: call.op.name.clone(), pos: call.op.pos, uses: 1 }),
        }
    }
    if unknown.is_empty() { Ok(()) } else { Err(TextError::UnknownOperators(unknown)) }
}

fn constant_tensor(d: &ConstDecl, weights: &dyn WeightSource) -> Result<Tensor, TextError> {
    let err = |message: String| TextError::Constant { pos: d.name.pos, name: d.name.name.clone(), message };
    let desc = OperandDescriptor::new(supported(d.ty.dtype).map_err(err)?, d.ty.shape.clone());
    match d.annotations.as_slice() {
        [] => Err(err("no value annotation: add @weights(\"key\") or @scalar(value)".to_string())),
        [Annotation::Weights(key)] => {
            let t = weights.tensor(key).map_err(|e| err(e.to_string()))?;
            if *t.desc() != desc {
                return Err(err(format!("declared {desc}, but the weights \"{key}\" hold {}", t.desc())));
            }
            Ok(t)
        }
        [Annotation::Scalar(v)] => filled(&desc, *v).map_err(err),
        more => Err(err(format!("{} value annotations; expected exactly one", more.len()))),
    }
}

/// A tensor of `desc` with every element equal to `value`.
fn filled(desc: &OperandDescriptor, value: Number) -> Result<Tensor, String> {
    let t = desc.data_type;
    match desc.checked_byte_length() {
        Some(n) if n <= MAX_FILLED_BYTES => {}
        _ => return Err(format!("@scalar would fill {desc}, more than the {MAX_FILLED_BYTES} bytes kiln expands")),
    }
    let one = match (value, t.int_range()) {
        (Number::Float(x), None) => Values::Float(vec![x]),
        (Number::Int(i), None) => Values::Float(vec![i as f64]),
        (value, Some((lo, hi))) => {
            let i = match value {
                Number::Int(i) => Some(i),
                Number::Float(x) => (x.fract() == 0.0).then_some(x as i128),
            };
            match i.filter(|i| (lo..=hi).contains(i)) {
                Some(i) => Values::Int(vec![i]),
                None => {
                    let shown = super::printer::format_number(value);
                    return Err(format!("@scalar({shown}) is not an integer in the range of {} ({lo}..={hi})", t.short_name()));
                }
            }
        }
    };
    let scalar = Tensor::from_values(OperandDescriptor::new(t, Shape::scalar()), &one).map_err(|e| e.to_string())?;
    let count = desc.shape.element_count();
    Tensor::from_bytes(desc.clone(), scalar.bytes().repeat(count)).map_err(|e| e.to_string())
}

struct Converter<'d> {
    b: GraphBuilder,
    /// What each name defined so far stands for, and where it was defined.
    scope: HashMap<String, (ArgValue, Pos)>,
    /// Where every name in the file is first defined, for better errors.
    definitions: HashMap<&'d str, Pos>,
}

impl Converter<'_> {
    fn check_new(&self, ident: &Ident) -> Result<(), TextError> {
        match self.scope.get(&ident.name) {
            Some((_, first)) => Err(invalid(ident.pos, format!("`{}` is already defined at {first}", ident.name))),
            None => Ok(()),
        }
    }

    fn define(&mut self, ident: &Ident, value: ArgValue) -> Result<(), TextError> {
        self.check_new(ident)?;
        self.scope.insert(ident.name.clone(), (value, ident.pos));
        Ok(())
    }

    fn resolve(&self, ident: &Ident) -> Result<ArgValue, TextError> {
        if let Some((v, _)) = self.scope.get(&ident.name) {
            return Ok(v.clone());
        }
        Err(invalid(
            ident.pos,
            match self.definitions.get(ident.name.as_str()) {
                Some(at) => format!("`{}` is used before its definition at {at}; define names before using them", ident.name),
                None => format!("`{}` is not defined", ident.name),
            },
        ))
    }

    fn value(&self, v: &Value) -> Result<ArgValue, TextError> {
        Ok(match v {
            Value::Ident(i) => self.resolve(i)?,
            Value::Int(i) => ArgValue::Number(Number::Int(*i)),
            Value::Float(x) => ArgValue::Number(Number::Float(*x)),
            Value::Str(s) => ArgValue::Str(s.clone()),
            Value::Bool(b) => ArgValue::Bool(*b),
            Value::Null => ArgValue::Null,
            Value::Array(items) => ArgValue::List(items.iter().map(|v| self.value(v)).collect::<Result<_, _>>()?),
        })
    }

    fn statement(&mut self, s: &Stmt) -> Result<(), TextError> {
        let call = match &s.expr {
            Expr::Value(v) => {
                let ([target], false) = (s.targets.as_slice(), s.multi) else {
                    return Err(invalid(s.pos, "only an operator call can bind a list of names"));
                };
                let v = self.value(v)?;
                return self.define(target, v);
            }
            Expr::Call(call) => call,
        };
        let mut positional = Vec::new();
        let mut named = BTreeMap::new();
        for arg in &call.args {
            let v = self.value(&arg.value)?;
            match &arg.name {
                None => positional.push(v),
                Some(n) => {
                    if named.insert(n.name.clone(), v).is_some() {
                        return Err(invalid(n.pos, format!("`{}` is given twice", n.name)));
                    }
                }
            }
        }
        let op = &call.op.name;
        let outputs = op_table::build_call(&self.b, op, positional, named).map_err(|e| invalid(s.pos, e.to_string()))?;
        let n = outputs.len();
        if !s.multi && n != 1 {
            let names: Vec<String> = (0..n).map(|i| format!("x{i}")).collect();
            return Err(invalid(
                s.pos,
                format!("{op} produces {n} outputs; bind them all with `[{}] = {op}(...)`", names.join(", ")),
            ));
        }
        if s.targets.len() != n {
            return Err(invalid(s.pos, format!("{op} produces {n} outputs, but {} names are bound", s.targets.len())));
        }
        for (target, id) in s.targets.iter().zip(outputs) {
            self.b.set_name(id, &target.name).map_err(|e| invalid(target.pos, e.to_string()))?;
            self.define(target, ArgValue::Operand(id))?;
        }
        Ok(())
    }

    fn finish(self, doc: &Document) -> Result<Graph, TextError> {
        let mut outputs: Vec<(&str, OperandId)> = Vec::new();
        let mut seen: HashMap<&str, Pos> = HashMap::new();
        for o in &doc.outputs {
            if let Some(first) = seen.insert(&o.name, o.pos) {
                return Err(invalid(o.pos, format!("output `{}` is listed twice (first at {first})", o.name)));
            }
            match self.scope.get(&o.name) {
                Some((ArgValue::Operand(id), _)) => outputs.push((&o.name, *id)),
                Some(_) => return Err(invalid(o.pos, format!("output `{}` names a literal value, not an operand", o.name))),
                None => {
                    return Err(invalid(o.pos, format!("output `{}` names nothing: no input, constant or statement defines it", o.name)));
                }
            }
        }
        self.b.build(&outputs).map_err(|e| {
            let pos = match &e {
                BuildError::Graph(GraphError::Output { name, .. }) => seen.get(name.as_str()).copied(),
                _ => None,
            };
            invalid(pos.unwrap_or(Pos::new(1, 1)), e.to_string())
        })
    }
}

/// The document of `graph`, named `name`: inputs in graph order; every
/// constant in operand order, as `@scalar(v)` when it has one element (and
/// that element is not NaN), otherwise as `@weights("<its name>")`; one
/// statement per node in execution order, written with
/// [`kiln_ir::Op::arguments`] plus a `label` option when the node has one;
/// an alias statement for each further output name of an operand; the
/// outputs in graph order.
///
/// Names are deterministic and never collide: inputs keep their names, then
/// each output operand takes its output name, then operands with a name keep
/// it, then the rest are called `v<operand index>`. A name that is not an
/// identifier has its other characters replaced by `_` (and `_` put in front
/// of a leading digit; a reserved word gets a `_` suffix); a name already
/// taken gets the first free suffix `_1`, `_2`, ... So a graph whose input
/// or output names are not identifiers, or whose output shares its name with
/// an input, comes back with those names changed.
pub fn from_graph(graph: &Graph, name: &str) -> Document {
    graph_document(graph, name).0
}

/// [`from_graph`] together with the tensors of its `@weights` constants, by key.
pub(super) fn graph_document(graph: &Graph, name: &str) -> (Document, BTreeMap<String, Tensor>) {
    let operands = graph.operands();
    let mut names: Vec<Option<String>> = vec![None; operands.len()];
    let mut taken = Names::default();
    for &id in graph.inputs() {
        names[id.index()] = Some(taken.claim(graph.input_name(id).unwrap_or_default()));
    }
    let mut aliases = Vec::new();
    let mut output_names = Vec::new();
    for (out, id) in graph.outputs() {
        let ident = taken.claim(out);
        match &names[id.index()] {
            Some(existing) => aliases.push((ident.clone(), existing.clone())),
            None => names[id.index()] = Some(ident.clone()),
        }
        output_names.push(ident);
    }
    for (slot, operand) in names.iter_mut().zip(operands) {
        if let (None, Some(n)) = (&slot, &operand.name) {
            *slot = Some(taken.claim(n));
        }
    }
    for (i, slot) in names.iter_mut().enumerate() {
        if slot.is_none() {
            *slot = Some(taken.claim(&format!("v{i}")));
        }
    }
    let names: Vec<String> = names.into_iter().flatten().collect();
    let name_of = |id: OperandId| names.get(id.index()).cloned().unwrap_or_else(|| format!("v{}", id.0));

    let mut doc = Document::new(name);
    let mut tensors = BTreeMap::new();
    for &id in graph.inputs() {
        doc.inputs.push(InputDecl { name: Ident::new(name_of(id)), ty: graph.desc(id).into() });
    }
    for (i, operand) in operands.iter().enumerate() {
        let OperandKind::Constant(t) = &operand.kind else { continue };
        let ident = name_of(OperandId(i as u32));
        let annotation = scalar_value(t).map(Annotation::Scalar).unwrap_or_else(|| {
            tensors.insert(ident.clone(), t.clone());
            Annotation::Weights(ident.clone())
        });
        doc.consts.push(ConstDecl { name: Ident::new(ident), ty: (&operand.desc).into(), annotations: vec![annotation] });
    }
    let attr = |a: Attr| -> Value {
        match a {
            Attr::Operand(id) => Value::Ident(Ident::new(name_of(id))),
            Attr::Operands(ids) => Value::Array(ids.into_iter().map(|id| Value::Ident(Ident::new(name_of(id)))).collect()),
            Attr::Int(i) => Value::Int(i),
            Attr::Float(x) => Value::Float(x),
            Attr::Bool(b) => Value::Bool(b),
            Attr::Str(s) => Value::Str(s.to_string()),
            Attr::Strs(v) => Value::Array(v.into_iter().map(|s| Value::Str(s.to_string())).collect()),
            Attr::Ints(v) => Value::Array(v.into_iter().map(|i| Value::Int(i.into())).collect()),
            Attr::Floats(v) => Value::Array(v.into_iter().map(Value::Float).collect()),
        }
    };
    for node in graph.nodes() {
        let (positional, named) = node.op.arguments();
        let mut args: Vec<Arg> = positional.into_iter().map(|a| Arg { name: None, value: attr(a) }).collect();
        args.extend(named.into_iter().map(|(k, a)| Arg { name: Some(Ident::new(k)), value: attr(a) }));
        if !node.label.is_empty() {
            args.push(Arg { name: Some(Ident::new("label")), value: Value::Str(node.label.clone()) });
        }
        doc.nodes.push(Stmt {
            targets: node.outputs.iter().map(|&o| Ident::new(name_of(o))).collect(),
            multi: node.outputs.len() != 1,
            expr: Expr::Call(Call { op: Ident::new(node.op.name()), args }),
            pos: Pos::default(),
        });
    }
    for (alias, existing) in aliases {
        doc.nodes.push(Stmt {
            targets: vec![Ident::new(alias)],
            multi: false,
            expr: Expr::Value(Value::Ident(Ident::new(existing))),
            pos: Pos::default(),
        });
    }
    doc.outputs = output_names.into_iter().map(Ident::new).collect();
    (doc, tensors)
}

/// The value of a one-element tensor, when `@scalar` reproduces its bytes
/// exactly (every value but NaN, whose payload the text cannot keep).
fn scalar_value(t: &Tensor) -> Option<Number> {
    if t.shape().checked_element_count() != Some(1) {
        return None;
    }
    match t.values() {
        Values::Float(v) => v.first().filter(|x| !x.is_nan()).map(|&x| Number::Float(x)),
        Values::Int(v) => v.first().map(|&i| Number::Int(i)),
    }
}

/// The identifiers handed out so far.
#[derive(Default)]
struct Names(HashSet<String>);

impl Names {
    /// `desired` made into an unused identifier, now taken.
    fn claim(&mut self, desired: &str) -> String {
        let mut base: String =
            desired.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect();
        if !base.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
            base.insert(0, '_');
        }
        if RESERVED.contains(&base.as_str()) {
            base.push('_');
        }
        if self.0.insert(base.clone()) {
            return base;
        }
        (1..)
            .map(|k| format!("{base}_{k}"))
            .find(|candidate| self.0.insert(candidate.clone()))
            .unwrap_or(base)
    }
}
