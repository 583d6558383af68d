//! Turning a [`Case`] into a kiln [`Graph`], the way WPT's
//! `buildAndExecuteGraph` drives `MLGraphBuilder`, and encoding its data.

use std::collections::{BTreeMap, HashMap};

use kiln_frontend::builder::GraphBuilder;
use kiln_frontend::op_table::{ArgValue, build_call};
use kiln_ir::{DataType, Graph, Number, OperandId, Tensor};

use super::Failure;
use super::case::{Arg, Case, CaseOperator, CaseTensor, Data, parse_number_str};
use super::judge::to_half_bits;

/// A case's graph, built and checked, with the tensors to feed it.
#[derive(Clone, Debug)]
pub struct BuiltCase {
    pub graph: Graph,
    /// One tensor per non-constant input, by name.
    pub feeds: Vec<(String, Tensor)>,
}

/// Builds `case`'s graph: inputs and constants are created on first use,
/// each operator goes through [`build_call`], and every expected output must
/// exist with exactly its expected descriptor (WPT's
/// `assertDescriptorsEquals`; a difference is a [`Failure::Descriptor`]).
/// Every data array is encoded and checked against its descriptor. Any other
/// broken rule is a [`Failure::Build`].
pub fn build_case(case: &Case) -> Result<BuiltCase, Failure> {
    check_expected_data(case)?;
    let mut assembly = Assembly { case, builder: GraphBuilder::new(), operands: HashMap::new() };
    for op in &case.operators {
        assembly.add_operator(op)?;
    }
    let outputs = assembly.graph_outputs()?;
    let refs: Vec<(&str, OperandId)> = outputs.iter().map(|(n, id)| (n.as_str(), *id)).collect();
    let graph = assembly.builder.build(&refs).map_err(|e| Failure::Build(e.to_string()))?;
    Ok(BuiltCase { graph, feeds: feeds(case)? })
}

/// The builder state while one case's graph is assembled.
struct Assembly<'a> {
    case: &'a Case,
    builder: GraphBuilder,
    /// Graph inputs created so far and operator outputs, by name.
    operands: HashMap<String, OperandId>,
}

impl Assembly<'_> {
    fn add_operator(&mut self, op: &CaseOperator) -> Result<(), Failure> {
        let mut positional = Vec::new();
        let mut named = BTreeMap::new();
        for (name, arg) in &op.arguments {
            match (name.as_str(), arg) {
                ("options", Arg::Map(options)) => {
                    for (key, value) in options {
                        named.insert(key.clone(), self.resolve(value)?);
                    }
                }
                ("options", other) => {
                    return Err(Failure::Build(format!("{}: options must be an object, got {other:?}", op.name)));
                }
                _ => positional.push(self.resolve(arg)?),
            }
        }
        let results =
            build_call(&self.builder, &op.name, positional, named).map_err(|e| Failure::Build(e.to_string()))?;
        if results.len() != op.outputs.len() {
            return Err(Failure::Build(format!(
                "{}: the operator has {} outputs but the case names {}",
                op.name,
                results.len(),
                op.outputs.len()
            )));
        }
        for (name, id) in op.outputs.iter().zip(results) {
            self.operands.insert(name.clone(), id);
        }
        Ok(())
    }

    /// An argument as the op table takes it: a string naming a graph input
    /// or an earlier output is that operand, a string that spells a number
    /// is that number, any other string stays a string.
    fn resolve(&mut self, arg: &Arg) -> Result<ArgValue, Failure> {
        Ok(match arg {
            Arg::Str(s) => match self.operand(s)? {
                Some(id) => ArgValue::Operand(id),
                None => parse_number_str(s).map_or_else(|| ArgValue::Str(s.clone()), ArgValue::Number),
            },
            Arg::Number(n) => ArgValue::Number(*n),
            Arg::Bool(b) => ArgValue::Bool(*b),
            Arg::Null => ArgValue::Null,
            Arg::List(items) => ArgValue::List(items.iter().map(|a| self.resolve(a)).collect::<Result<_, _>>()?),
            Arg::Map(_) => {
                return Err(Failure::Build(format!("a nested object is only allowed as `options`: {arg:?}")));
            }
        })
    }

    /// The operand named `name`, creating a graph input or constant on its
    /// first use; `None` if nothing has that name.
    fn operand(&mut self, name: &str) -> Result<Option<OperandId>, Failure> {
        if let Some(&id) = self.operands.get(name) {
            return Ok(Some(id));
        }
        let Some(input) = self.case.inputs.get(name) else {
            return Ok(None);
        };
        let built = if input.constant {
            let tensor = encode_tensor(&input.tensor).map_err(|e| Failure::Build(format!("constant `{name}`: {e}")))?;
            self.builder.constant_tensor(Some(name), tensor)
        } else {
            self.builder.input(name, input.tensor.desc.clone())
        };
        let id = built.map_err(|e| Failure::Build(e.to_string()))?;
        self.operands.insert(name.to_string(), id);
        Ok(Some(id))
    }

    /// The expected outputs, each an operator output with the expected
    /// descriptor.
    fn graph_outputs(&self) -> Result<Vec<(String, OperandId)>, Failure> {
        let mut outputs = Vec::new();
        for (name, expected) in &self.case.expected {
            let id = *self
                .operands
                .get(name)
                .ok_or_else(|| Failure::Build(format!("expected output `{name}` is not produced by any operator")))?;
            let built = self.builder.descriptor(id).map_err(|e| Failure::Build(e.to_string()))?;
            if built != expected.desc {
                return Err(Failure::Descriptor {
                    output: name.clone(),
                    expected: expected.desc.clone(),
                    actual: built,
                });
            }
            outputs.push((name.clone(), id));
        }
        Ok(outputs)
    }
}

/// Every expected output's data must fit its descriptor: a fill value, or
/// one value per element.
fn check_expected_data(case: &Case) -> Result<(), Failure> {
    for (name, tensor) in &case.expected {
        check_length(tensor).map_err(|e| Failure::Build(format!("expected output `{name}`: {e}")))?;
    }
    Ok(())
}

fn check_length(tensor: &CaseTensor) -> Result<(), String> {
    let count = tensor.desc.shape.element_count();
    match &tensor.data {
        Data::List(values) if values.len() != count => {
            Err(format!("{} has {count} elements but the data has {} values", tensor.desc, values.len()))
        }
        _ => Ok(()),
    }
}

/// The tensors for every non-constant input.
fn feeds(case: &Case) -> Result<Vec<(String, Tensor)>, Failure> {
    case.inputs
        .iter()
        .filter(|(_, input)| !input.constant)
        .map(|(name, input)| {
            encode_tensor(&input.tensor)
                .map(|t| (name.clone(), t))
                .map_err(|e| Failure::Build(format!("input `{name}`: {e}")))
        })
        .collect()
}

/// Encodes data as WPT's `getTypedArrayData` does: a scalar fills the
/// shape; float32 rounds to nearest; float16 goes through WPT's `toHalf`
/// ([`to_half_bits`]); integers must be integral and in range.
pub fn encode_tensor(tensor: &CaseTensor) -> Result<Tensor, String> {
    check_length(tensor)?;
    let desc = &tensor.desc;
    let count = desc.shape.element_count();
    let mut bytes = Vec::with_capacity(desc.byte_length());
    match &tensor.data {
        Data::Fill(v) => {
            let one = encode_element(desc.data_type, *v)?;
            for _ in 0..count {
                bytes.extend_from_slice(&one);
            }
        }
        Data::List(values) => {
            for (i, v) in values.iter().enumerate() {
                let one = encode_element(desc.data_type, *v).map_err(|e| format!("element {i}: {e}"))?;
                bytes.extend_from_slice(&one);
            }
        }
    }
    Tensor::from_bytes(desc.clone(), bytes).map_err(|e| e.to_string())
}

/// One element's little-endian bytes.
fn encode_element(data_type: DataType, value: Number) -> Result<Vec<u8>, String> {
    Ok(match data_type {
        DataType::Float32 => (value.as_f64() as f32).to_le_bytes().to_vec(),
        DataType::Float16 => to_half_bits(value.as_f64()).to_le_bytes().to_vec(),
        int_type => {
            let i = exact_int(int_type, value)?;
            match int_type {
                DataType::Int32 => (i as i32).to_le_bytes().to_vec(),
                DataType::Uint32 => (i as u32).to_le_bytes().to_vec(),
                DataType::Int64 => (i as i64).to_le_bytes().to_vec(),
                DataType::Uint64 => (i as u64).to_le_bytes().to_vec(),
                DataType::Int8 => vec![i as i8 as u8],
                _ => vec![i as u8],
            }
        }
    })
}

/// `value` as an integer of `data_type`'s range: integral floats convert,
/// anything else (fractions, NaN, out of range) is an error.
pub(crate) fn exact_int(data_type: DataType, value: Number) -> Result<i128, String> {
    let i = match value {
        Number::Int(i) => i,
        Number::Float(x) if x.fract() == 0.0 && x.abs() < 1e38 => x as i128,
        Number::Float(x) => return Err(format!("{x} is not an integer")),
    };
    let (lo, hi) = data_type.int_range().ok_or("not an integer type")?;
    if (lo..=hi).contains(&i) { Ok(i) } else { Err(format!("{i} is out of range for {data_type}")) }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use kiln_ir::{Op, OperandDescriptor, OperandKind, Shape};

    use super::*;
    use crate::conformance::case::parse_file;

    /// One case of operator `op` from its `graph` JSON.
    fn case(op: &str, graph: &str) -> Case {
        let text = format!(
            r#"{{"op": "{op}", "cases": [{{"name": "t", "graph": {graph},
                "tolerance": {{"metricType": "ULP", "value": 0}}}}]}}"#
        );
        parse_file(Path::new("t.json"), &text).unwrap().remove(0)
    }

    fn f32_input(name: &str, shape: &str, constant: bool, data: &str) -> String {
        format!(
            r#""{name}": {{"descriptor": {{"dataType": "float32", "shape": {shape}}}, "constant": {constant}, "data": {data}}}"#
        )
    }

    #[test]
    fn concat_takes_a_list_of_input_names() {
        let c = case(
            "concat",
            &format!(
                r#"{{"inputs": {{{}, {}}},
                    "operators": [{{"name": "concat", "arguments": [{{"inputs": ["a", "b", "a"]}}, {{"axis": 0}}], "outputs": "y"}}],
                    "expectedOutputs": {{"y": {{"descriptor": {{"dataType": "float32", "shape": [5]}}, "data": 0}}}}}}"#,
                f32_input("a", "[2]", false, "[1, 2]"),
                f32_input("b", "[1]", true, "[3]")
            ),
        );
        let built = build_case(&c).unwrap();
        assert_eq!(built.graph.inputs().len(), 1, "`a` is created once, `b` is a constant");
        assert_eq!(built.feeds.len(), 1);
        assert_eq!(built.feeds[0].0, "a");
        assert_eq!(built.feeds[0].1.to_f32_vec(), vec![1.0, 2.0]);
        let (name, id) = &built.graph.outputs()[0];
        assert_eq!((name.as_str(), built.graph.desc(*id).to_string()), ("y", "f32[5]".to_string()));
    }

    #[test]
    fn option_strings_naming_inputs_are_operands() {
        let c = case(
            "conv2d",
            &format!(
                r#"{{"inputs": {{{}, {}, {}}},
                    "operators": [{{"name": "conv2d", "arguments": [{{"input": "x"}}, {{"filter": "w"}},
                                   {{"options": {{"bias": "bias", "padding": [1, 1, 1, 1]}}}}], "outputs": "y"}}],
                    "expectedOutputs": {{"y": {{"descriptor": {{"dataType": "float32", "shape": [1, 1, 3, 3]}}, "data": 0}}}}}}"#,
                f32_input("x", "[1, 1, 3, 3]", false, "0.5"),
                f32_input("w", "[1, 1, 3, 3]", true, "1"),
                f32_input("bias", "[1]", true, "[2]")
            ),
        );
        let built = build_case(&c).unwrap();
        let Op::Conv2d { options, .. } = &built.graph.nodes()[0].op else { panic!("a conv2d node") };
        let bias = options.bias.expect("bias is an operand");
        assert!(matches!(built.graph.operand(bias).kind, OperandKind::Constant(_)));
        assert_eq!(options.padding, [1, 1, 1, 1]);
        assert_eq!(built.feeds[0].1.to_f32_vec(), vec![0.5; 9], "a scalar fills the shape");
    }

    #[test]
    fn integer_strings_in_options_are_exact_numbers() {
        let c = case(
            "clamp",
            r#"{"inputs": {"x": {"descriptor": {"dataType": "int64", "shape": [2]}, "constant": false, "data": ["-9223372036854775808", 5]}},
                "operators": [{"name": "clamp", "arguments": [{"input": "x"},
                               {"options": {"minValue": "-9223372036854775807", "maxValue": null}}], "outputs": "y"}],
                "expectedOutputs": {"y": {"descriptor": {"dataType": "int64", "shape": [2]}, "data": ["-9223372036854775807", 5]}}}"#,
        );
        let built = build_case(&c).unwrap();
        let Op::Clamp { min_value, max_value, .. } = &built.graph.nodes()[0].op else { panic!("a clamp node") };
        assert_eq!(*min_value, Some(Number::Int(i128::from(i64::MIN) + 1)));
        assert_eq!(*max_value, None);
        assert_eq!(built.feeds[0].1.bytes()[..8], i64::MIN.to_le_bytes());
    }

    #[test]
    fn split_outputs_are_named_in_order() {
        let c = case(
            "split",
            &format!(
                r#"{{"inputs": {{{}}},
                    "operators": [{{"name": "split", "arguments": [{{"input": "x"}}, {{"splits": [1, 3]}}], "outputs": ["p", "q"]}}],
                    "expectedOutputs": {{"p": {{"descriptor": {{"dataType": "float32", "shape": [1]}}, "data": [0]}},
                                         "q": {{"descriptor": {{"dataType": "float32", "shape": [3]}}, "data": [0, 0, 0]}}}}}}"#,
                f32_input("x", "[4]", false, "[1, 2, 3, 4]")
            ),
        );
        let built = build_case(&c).unwrap();
        let shapes: Vec<String> =
            built.graph.outputs().iter().map(|(n, id)| format!("{n}:{}", built.graph.desc(*id))).collect();
        assert_eq!(shapes, vec!["p:f32[1]", "q:f32[3]"]);
    }

    #[test]
    fn build_failures_say_what_broke() {
        let graph = |op: &str, out_shape: &str| {
            format!(
                r#"{{"inputs": {{{}}},
                    "operators": [{{"name": "{op}", "arguments": [{{"input": "x"}}], "outputs": "y"}}],
                    "expectedOutputs": {{"y": {{"descriptor": {{"dataType": "float32", "shape": {out_shape}}}, "data": 0}}}}}}"#,
                f32_input("x", "[2]", false, "[1, 2]")
            )
        };
        let err = build_case(&case("relu", &graph("relu", "[3]"))).unwrap_err();
        assert_eq!(err.to_string(), "output `y`: descriptor f32[2], expected f32[3]");
        let err = build_case(&case("frobnicate", &graph("frobnicate", "[2]"))).unwrap_err();
        assert_eq!(err.to_string(), "build: unknown operator `frobnicate`");
        let mut short = case("relu", &graph("relu", "[2]"));
        short.expected.get_mut("y").unwrap().data = Data::List(vec![Number::Int(1)]);
        let err = build_case(&short).unwrap_err();
        assert_eq!(err.to_string(), "build: expected output `y`: f32[2] has 2 elements but the data has 1 values");
    }

    fn tensor(data_type: DataType, shape: &[u32], data: Data) -> CaseTensor {
        CaseTensor { desc: OperandDescriptor::new(data_type, Shape::new(shape)), data }
    }

    #[test]
    fn encoding_follows_wpt_typed_arrays() {
        let fill = encode_tensor(&tensor(DataType::Float32, &[2, 2], Data::Fill(Number::Float(0.1)))).unwrap();
        assert_eq!(fill.to_f32_vec(), vec![0.1f32; 4]);
        let tie = 1.0 + 2f64.powi(-11);
        let half =
            encode_tensor(&tensor(DataType::Float16, &[2], Data::List(vec![Number::Float(tie), Number::Int(-2)])))
                .unwrap();
        assert_eq!(half.bytes(), &[0x01, 0x3c, 0x00, 0xc0], "float16 data go through toHalf");
        let u64s =
            encode_tensor(&tensor(DataType::Uint64, &[1], Data::List(vec![Number::Int(u64::MAX.into())]))).unwrap();
        assert_eq!(u64s.bytes(), &u64::MAX.to_le_bytes());
        let err = encode_tensor(&tensor(DataType::Uint8, &[2], Data::List(vec![Number::Int(1), Number::Int(256)])))
            .unwrap_err();
        assert_eq!(err, "element 1: 256 is out of range for uint8");
        let err = encode_tensor(&tensor(DataType::Int32, &[], Data::Fill(Number::Float(0.5)))).unwrap_err();
        assert_eq!(err, "0.5 is not an integer");
        let err = encode_tensor(&tensor(DataType::Int8, &[3], Data::List(vec![Number::Int(1)]))).unwrap_err();
        assert_eq!(err, "i8[3] has 3 elements but the data has 1 values");
    }
}
