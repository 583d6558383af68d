//! Control flow: `If` with a condition known at load time. The branch it
//! selects is imported in place of the node (its initializers and nodes
//! join the graph, reading the enclosing graph's values by name) and its
//! outputs become the node's; the other branch is never looked at. A
//! condition computed at run time is unsupported (WebNN graphs have no
//! control flow); one computed from graph inputs can be bound at load
//! time (`LoadOptions::constants`).

use super::{Handler, handler, unsupported_reason};
use crate::onnx::import::{Importer, NodeCx, NodeError, NodeResult, Value, invalid};

pub const TABLE: &[(&str, Handler)] = &[("If", if_)];

fn if_(im: &mut Importer, cx: &NodeCx) -> NodeResult<Vec<Value>> {
    let Some(condition) = im.const_input(cx, 0)? else {
        return invalid("the condition input is required");
    };
    if condition.shape().element_count() != 1 {
        return invalid(format!("the condition must hold one value, got shape {}", condition.shape()));
    }
    let taken = match condition.values() {
        kiln_ir::Values::Float(v) => v[0] != 0.0,
        kiln_ir::Values::Int(v) => v[0] != 0,
    };
    let name = if taken { "then_branch" } else { "else_branch" };
    let Some(branch) = cx.graph(name)? else {
        return invalid(format!("the {name} attribute is required"));
    };
    for init in &branch.initializer {
        let t = im.convert_tensor(init)?;
        im.define(&init.name, Value::Const(t));
    }
    for (n, node) in branch.node.iter().enumerate() {
        let label = if node.name.is_empty() { format!("{}/{name}#{n}", cx.label) } else { node.name.clone() };
        let within = |e: NodeError| match e {
            NodeError::Unsupported(reason) => NodeError::Unsupported(format!("{name} node `{label}` ({}): {reason}", node.op_type)),
            NodeError::Invalid(message) => NodeError::Invalid(format!("{name} node `{label}` ({}): {message}", node.op_type)),
            other => other,
        };
        if let Some(input) = node.input.iter().find(|i| !i.is_empty() && !matches!(im.value(i), Some(Value::Const(_) | Value::Operand(_)))) {
            return Err(within(NodeError::Unsupported(format!("input `{input}` is not available"))));
        }
        let Some(run) = handler(&node.domain, &node.op_type) else {
            return Err(within(NodeError::Unsupported(unsupported_reason(&node.domain, &node.op_type))));
        };
        let inner = NodeCx { node, opset: cx.opset, label: label.clone() };
        let values = run(im, &inner).map_err(within)?;
        for (i, out) in node.output.iter().enumerate().filter(|(_, o)| !o.is_empty()) {
            let Some(v) = values.get(i) else {
                return Err(within(NodeError::Unsupported(format!("output {i} (`{out}`) is not supported"))));
            };
            im.define(out, v.clone());
        }
    }
    branch
        .output
        .iter()
        .map(|o| im.value(&o.name).cloned().ok_or_else(|| NodeError::Invalid(format!("{name} output `{}` is never computed", o.name))))
        .collect()
}
