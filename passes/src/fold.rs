//! Constant folding over any graph: a node whose operands are all constants
//! is computed once, at compile time, by the reference interpreter
//! ([`kiln_ir::interp::fold_node`], within its size and cost limits), and
//! its results become constants. The ONNX importer folds as it loads; this
//! pass does the same for graphs built with the builder or the `.webnn`
//! text format.

use kiln_ir::interp::{fold_node, InterpError};
use kiln_ir::{Graph, GraphError, OperandId, OperandKind};

/// What [`fold`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Folded {
    /// The operators computed at compile time, by name, one entry per node.
    pub nodes: Vec<&'static str>,
}

/// Why folding failed: the interpreter refused a node the graph accepted
/// (a bug in one of the two), or rebuilding the graph did.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FoldError {
    #[error("constant folding: {0}")]
    Interp(#[from] InterpError),
    #[error("constant folding: {0}")]
    Graph(#[from] GraphError),
}

/// `graph` with every foldable node replaced by constants, in one pass in
/// execution order (a folded result makes its readers foldable in turn),
/// then pruned of what no output needs. A node that computes a graph
/// output stays (an output is never a constant). Inputs, output names, operand
/// names and labels stay.
pub fn fold(graph: &Graph) -> Result<(Graph, Folded), FoldError> {
    let mut out = Graph::new();
    let mut map: Vec<Option<OperandId>> = vec![None; graph.operands().len()];
    for &id in graph.inputs() {
        let name = graph.input_name(id).expect("an input has a name");
        map[id.index()] = Some(out.add_input(name, graph.desc(id).clone())?);
    }
    for (i, operand) in graph.operands().iter().enumerate() {
        if let OperandKind::Constant(t) = &operand.kind {
            map[i] = Some(out.add_constant(operand.name.as_deref(), t.clone())?);
        }
    }
    let mut folded = Folded::default();
    for node in graph.nodes() {
        let mut op = node.op.clone();
        for (_, id) in op.inputs_mut() {
            *id = map[id.index()].expect("operands come before their readers");
        }
        let results = out.add_node(op, &node.label)?;
        let added = out.nodes().last().expect("just added");
        // A graph output stays computed by an operator (its operands may be
        // folded).
        let is_output = node.outputs.iter().any(|o| graph.outputs().iter().any(|(_, id)| id == o));
        let results = match fold_node(&out, added).filter(|_| !is_output) {
            Some(tensors) => {
                folded.nodes.push(node.op.name());
                tensors?.into_iter().map(|t| out.add_constant(None, t)).collect::<Result<Vec<_>, _>>()?
            }
            None => results,
        };
        for (&old, new) in node.outputs.iter().zip(results) {
            if let Some(name) = &graph.operand(old).name {
                out.set_name(new, name);
            }
            map[old.index()] = Some(new);
        }
    }
    for (name, id) in graph.outputs() {
        out.add_output(name, map[id.index()].expect("outputs are operands"))?;
    }
    Ok((out.pruned(), folded))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_ir::{BinaryOp, DataType, Op, OperandDescriptor, Shape, Tensor, UnaryOp, Values};

    fn constant(g: &mut Graph, values: &[f64]) -> OperandId {
        let desc = OperandDescriptor::new(DataType::Float32, Shape::from(vec![values.len() as u32]));
        g.add_constant(None, Tensor::from_values(desc, &Values::Float(values.to_vec())).unwrap()).unwrap()
    }

    #[test]
    fn constant_chains_fold_and_inputs_stay() {
        let mut g = Graph::new();
        let x = g.add_input("x", OperandDescriptor::new(DataType::Float32, Shape::from(vec![3]))).unwrap();
        let (a, b) = (constant(&mut g, &[1.0, 2.0, 3.0]), constant(&mut g, &[0.5, 0.5, 0.5]));
        let s = g.add_node(Op::Binary { kind: BinaryOp::Mul, a, b }, "scale").unwrap()[0];
        let e = g.add_node(Op::Unary { kind: UnaryOp::Exp, input: s }, "").unwrap()[0];
        let y = g.add_node(Op::Binary { kind: BinaryOp::Add, a: x, b: e }, "sum").unwrap()[0];
        g.add_output("y", y).unwrap();
        let (folded, report) = fold(&g).unwrap();
        assert_eq!(report.nodes, ["mul", "exp"]);
        assert_eq!(folded.nodes().len(), 1);
        assert_eq!(folded.nodes()[0].label, "sum");
        let Op::Binary { b, .. } = folded.nodes()[0].op else { panic!("{:?}", folded.nodes()[0].op) };
        let OperandKind::Constant(t) = &folded.operand(b).kind else { panic!("not a constant") };
        let want: Vec<f64> = [0.5f64, 1.0, 1.5].iter().map(|v| (v.exp() as f32) as f64).collect();
        assert_eq!(t.values(), Values::Float(want));
        folded.validate().unwrap();
    }

    #[test]
    fn outputs_stay_computed_by_an_operator() {
        let mut g = Graph::new();
        g.add_input("unused", OperandDescriptor::new(DataType::Float32, Shape::from(vec![1]))).unwrap();
        let a = constant(&mut g, &[4.0]);
        let e = g.add_node(Op::Unary { kind: UnaryOp::Exp, input: a }, "").unwrap()[0];
        let y = g.add_node(Op::Unary { kind: UnaryOp::Sqrt, input: e }, "root").unwrap()[0];
        g.add_output("y", y).unwrap();
        let (folded, report) = fold(&g).unwrap();
        assert_eq!(report.nodes, ["exp"]);
        assert_eq!(folded.nodes().len(), 1);
        assert_eq!(folded.nodes()[0].label, "root");
        assert_eq!(folded.inputs().len(), 1);
        folded.validate().unwrap();
    }
}
