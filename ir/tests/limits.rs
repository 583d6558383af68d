//! The operand limits table (`kiln_ir::limits`): complete, consistent, and
//! the one the validator enforces.

use kiln_ir::limits::{Types, op_support_limits, operand_limits};
use kiln_ir::*;

#[test]
fn every_operator_has_limits_with_one_output_entry_and_earlier_references() {
    for name in operator_names() {
        let limits = operand_limits(name).unwrap_or_else(|| panic!("{name} has no limits"));
        assert_eq!(limits.last().map(|l| l.operand), Some("output"), "{name}: the output entry comes last");
        for (i, l) in limits.iter().enumerate() {
            assert!(!limits[..i].iter().any(|e| e.operand == l.operand), "{name}: `{}` listed twice", l.operand);
            if let Types::SameAs(other) = l.types {
                assert!(limits[..i].iter().any(|e| e.operand == other), "{name}: `{}` refers to a later `{other}`", l.operand);
            }
            if let Some(max) = l.ranks.max {
                assert!(l.ranks.min <= max, "{name}: `{}` has an empty rank range", l.operand);
            }
        }
    }
    assert_eq!(operand_limits("notAnOperator"), None);
}

#[test]
fn the_reported_limits_resolve_every_reference() {
    let limits = op_support_limits();
    assert_eq!(limits.operators.len(), operator_names().len());
    assert_eq!(limits.preferred_input_layout, InputLayout::Nchw);
    assert_eq!(limits.max_tensor_byte_length, MAX_TENSOR_BYTES);
    let (_, gemm) = limits.operators.iter().find(|(n, _)| *n == "gemm").unwrap();
    let b = gemm.iter().find(|l| l.operand == "b").unwrap();
    assert_eq!(b.data_types, vec![DataType::Float32, DataType::Float16]);
    assert_eq!((b.ranks.min, b.ranks.max), (2, Some(2)));
    let (_, equal) = limits.operators.iter().find(|(n, _)| *n == "equal").unwrap();
    assert_eq!(equal.last().unwrap().data_types, vec![DataType::Uint8]);
    for (name, operands) in &limits.operators {
        assert!(operands.iter().all(|l| !l.data_types.is_empty()), "{name}: an operand with no data type");
    }
}

fn input(g: &mut Graph, name: &str, t: DataType, dims: &[u32]) -> OperandId {
    g.add_input(name, OperandDescriptor::new(t, dims.to_vec())).unwrap()
}

/// The error of adding `op`, as text.
fn rejected(g: &mut Graph, op: Op) -> String {
    match g.add_node(op, "") {
        Ok(_) => panic!("accepted"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn the_validator_enforces_the_table() {
    use DataType::*;
    let mut g = Graph::new();
    let a_int = input(&mut g, "ai", Int32, &[2, 2]);
    let a = input(&mut g, "a", Float32, &[2, 2]);
    let b16 = input(&mut g, "b16", Float16, &[2, 2]);
    let v3 = input(&mut g, "v3", Float32, &[2, 2, 2]);
    let e = rejected(&mut g, Op::Gemm { a: a_int, b: a, options: GemmOptions::default() });
    assert!(e.contains("`a`") && e.contains("data type int32 is not one of float32, float16"), "{e}");
    let e = rejected(&mut g, Op::Gemm { a, b: b16, options: GemmOptions::default() });
    assert!(e.contains("`b`") && e.contains("must match the a's float32"), "{e}");
    let e = rejected(&mut g, Op::Gemm { a, b: v3, options: GemmOptions::default() });
    assert!(e.contains("`b`") && e.contains("rank must be 2, got 3"), "{e}");
    let e = rejected(&mut g, Op::Conv2d { input: v3, filter: v3, options: Conv2dOptions::default() });
    assert!(e.contains("`input`") && e.contains("rank must be 4"), "{e}");
    let e = rejected(&mut g, Op::Softmax { input: a_int, axis: 0 });
    assert!(e.contains("`input`") && e.contains("int32"), "{e}");
    let e = rejected(
        &mut g,
        Op::Gru {
            input: v3,
            weight: b16,
            recurrent_weight: b16,
            steps: 2,
            hidden_size: 1,
            options: GruOptions::default(),
        },
    );
    assert!(e.contains("`weight`") && e.contains("must match the input's float32"), "{e}");
    // Within the limits, the operator's own rules apply.
    let b3 = input(&mut g, "b3", Float32, &[3, 2]);
    let e = rejected(&mut g, Op::Gemm { a, b: b3, options: GemmOptions::default() });
    assert!(e.contains("inner dimension"), "{e}");
}
