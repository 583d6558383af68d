//! The builder rejects hostile or wrong input with errors that name the
//! operator, the operand and the rule; it never panics.

use kiln_frontend::builder::{BuildError, GraphBuilder};
use kiln_ir::*;

fn f32_input(b: &GraphBuilder, name: &str, shape: &[u32]) -> OperandId {
    b.input(name, OperandDescriptor::new(DataType::Float32, shape)).unwrap()
}

fn message(e: BuildError) -> String {
    e.to_string()
}

#[test]
fn shape_mismatch_names_operator_operand_and_rule() {
    let b = GraphBuilder::new();
    let x = f32_input(&b, "x", &[2, 3]);
    let y = f32_input(&b, "y", &[4, 3]);
    let e = message(b.add(x, y).unwrap_err());
    assert!(e.contains("add") && e.contains("`b`") && e.contains("broadcast"), "{e}");

    let w = f32_input(&b, "w", &[5, 4]);
    let e = message(b.matmul(x, w).unwrap_err());
    assert!(e.contains("matmul") && e.contains("does not match"), "{e}");
}

#[test]
fn labels_appear_in_errors() {
    let b = GraphBuilder::new();
    let x = f32_input(&b, "x", &[1, 3, 8, 8]);
    let w = f32_input(&b, "w", &[4, 2, 3, 3]);
    let op = Op::Conv2d { input: x, filter: w, options: Conv2dOptions::default() };
    let e = message(b.op(op, "stem").unwrap_err());
    assert!(e.starts_with("conv2d 'stem': operand `filter`"), "{e}");
}

#[test]
fn data_type_rules() {
    let b = GraphBuilder::new();
    let x = b.input("x", OperandDescriptor::new(DataType::Int32, [4])).unwrap();
    let e = message(b.exp(x).unwrap_err());
    assert!(e.contains("exp") && e.contains("int32 is not one of float32, float16"), "{e}");
    let f = f32_input(&b, "f", &[4]);
    let e = message(b.add(x, f).unwrap_err());
    assert!(e.contains("must match"), "{e}");
    let e = message(b.logical_and(f, f).unwrap_err());
    assert!(e.contains("logicalAnd") && e.contains("uint8"), "{e}");
}

#[test]
fn used_up_builder_is_an_error() {
    let b = GraphBuilder::new();
    let x = f32_input(&b, "x", &[2]);
    let y = b.relu(x).unwrap();
    b.build(&[("y", y)]).unwrap();
    assert_eq!(b.relu(x).unwrap_err(), BuildError::AlreadyBuilt);
    assert_eq!(b.build(&[("y", y)]).unwrap_err(), BuildError::AlreadyBuilt);
    assert_eq!(b.input("z", OperandDescriptor::new(DataType::Float32, [1])).unwrap_err(), BuildError::AlreadyBuilt);
}

#[test]
fn bad_outputs() {
    let b = GraphBuilder::new();
    let x = f32_input(&b, "x", &[2]);
    assert_eq!(b.build(&[]).unwrap_err(), BuildError::NoOutputs);
    let e = message(b.build(&[("x", x)]).unwrap_err());
    assert!(e.contains("output `x`") && e.contains("input"), "{e}");
    let b = GraphBuilder::new();
    let x = f32_input(&b, "x", &[2]);
    let y = b.relu(x).unwrap();
    let e = message(b.build(&[("y", y), ("y", y)]).unwrap_err());
    assert!(e.contains("already exists"), "{e}");
}

#[test]
fn unknown_operand_ids() {
    let b = GraphBuilder::new();
    let e = b.relu(OperandId(42)).unwrap_err();
    assert_eq!(e, BuildError::Graph(GraphError::UnknownOperand(OperandId(42))));
}

#[test]
fn overflowing_and_empty_shapes() {
    let b = GraphBuilder::new();
    let e = message(b.input("x", OperandDescriptor::new(DataType::Float32, [u32::MAX, u32::MAX, u32::MAX])).unwrap_err());
    assert!(e.contains("input `x`") && e.contains("limit"), "{e}");
    let e = message(b.input("z", OperandDescriptor::new(DataType::Float32, [3, 0])).unwrap_err());
    assert!(e.contains("zero dimension"), "{e}");
    let x = f32_input(&b, "y", &[65536, 65536]);
    let e = message(b.expand(x, [65536, 65536, 65536]).unwrap_err());
    assert!(e.contains("expand") && e.contains("limit"), "{e}");
    let e = message(b.reshape(x, [u32::MAX, 4]).unwrap_err());
    assert!(e.contains("reshape") && e.contains("number of elements"), "{e}");
    let c = f32_input(&b, "c", &[u32::MAX / 2 + 1]);
    let e = message(b.concat(&[c, c], 0).unwrap_err());
    assert!(e.contains("concat") && e.contains("overflow"), "{e}");
}

#[test]
fn constant_data_must_match_its_descriptor() {
    let b = GraphBuilder::new();
    let e = message(b.constant(OperandDescriptor::new(DataType::Float32, [2, 2]), vec![0; 15]).unwrap_err());
    assert!(e.contains("needs 16 bytes, got 15"), "{e}");
    let e = message(b.constant_f32([3], &[1.0, 2.0]).unwrap_err());
    assert!(e.contains("needs 12 bytes, got 8"), "{e}");
}

#[test]
fn duplicate_inputs_and_empty_names() {
    let b = GraphBuilder::new();
    f32_input(&b, "x", &[1]);
    let e = message(b.input("x", OperandDescriptor::new(DataType::Float32, [1])).unwrap_err());
    assert!(e.contains("already exists"), "{e}");
    let e = message(b.input("", OperandDescriptor::new(DataType::Float32, [1])).unwrap_err());
    assert!(e.contains("empty"), "{e}");
}

#[test]
fn option_rules() {
    let b = GraphBuilder::new();
    let x = f32_input(&b, "x", &[2, 3, 4]);
    let e = message(b.softmax(x, 3).unwrap_err());
    assert!(e.contains("softmax") && e.contains("axis 3 is out of range"), "{e}");
    let e = message(b.transpose(x, Some(vec![0, 0, 1])).unwrap_err());
    assert!(e.contains("permutation") && e.contains("more than once"), "{e}");
    let e = message(b.reduce_sum(x, ReduceOptions { axes: Some(vec![5]), keep_dimensions: false }).unwrap_err());
    assert!(e.contains("reduceSum") && e.contains("axis 5"), "{e}");
    let e = message(b.slice(x, vec![0, 0, 2], vec![1, 1, 3], None).unwrap_err());
    assert!(e.contains("slice") && e.contains("exceeds"), "{e}");
    let e = message(b.split(x, Splits::Count(2), 1).unwrap_err());
    assert!(e.contains("split") && e.contains("does not divide"), "{e}");
    let e = message(b.clamp(x, Some(Number::Float(2.0)), Some(Number::Float(1.0))).unwrap_err());
    assert!(e.contains("clamp") && e.contains("greater than maxValue"), "{e}");
    let img = f32_input(&b, "img", &[1, 1, 4, 4]);
    let pool = Pool2dOptions { window_dimensions: Some([5, 5]), ..Default::default() };
    let e = message(b.max_pool2d(img, pool).unwrap_err());
    assert!(e.contains("maxPool2d") && e.contains("larger than the padded input"), "{e}");
    let pool = Pool2dOptions { strides: [0, 1], ..Default::default() };
    let e = message(b.average_pool2d(img, pool).unwrap_err());
    assert!(e.contains("strides") && e.contains("greater than 0"), "{e}");
}

#[test]
fn shapes_follow_the_spec() {
    let b = GraphBuilder::new();
    let x = f32_input(&b, "x", &[1, 224, 224, 3]);
    let w = f32_input(&b, "w", &[3, 3, 3, 32]);
    let options = Conv2dOptions {
        padding: [0, 1, 0, 1],
        strides: [2, 2],
        input_layout: InputLayout::Nhwc,
        filter_layout: Conv2dFilterLayout::Hwio,
        ..Default::default()
    };
    let y = b.conv2d(x, w, options).unwrap();
    assert_eq!(b.descriptor(y).unwrap().shape.dims(), &[1, 112, 112, 32]);
    let pool = Pool2dOptions {
        window_dimensions: Some([3, 3]),
        strides: [2, 2],
        layout: InputLayout::Nhwc,
        output_shape_rounding: RoundingType::Ceil,
        ..Default::default()
    };
    let p = b.max_pool2d(y, pool).unwrap();
    assert_eq!(b.descriptor(p).unwrap().shape.dims(), &[1, 56, 56, 32]);
    let a = f32_input(&b, "a", &[2, 1, 3, 4]);
    let m = f32_input(&b, "m", &[5, 4, 6]);
    let mm = b.matmul(a, m).unwrap();
    assert_eq!(b.descriptor(mm).unwrap().shape.dims(), &[2, 5, 3, 6]);
    let parts = b.split(a, Splits::Sizes(vec![1, 3]), 3).unwrap();
    assert_eq!(parts.len(), 2);
    assert_eq!(b.descriptor(parts[1]).unwrap().shape.dims(), &[2, 1, 3, 3]);
}

#[test]
fn feeds_are_checked_by_name_type_and_shape() {
    let b = GraphBuilder::new();
    let x = f32_input(&b, "x", &[2]);
    let y = b.relu(x).unwrap();
    let g = b.build(&[("y", y)]).unwrap();
    let good = Tensor::from_f32([2], &[1.0, 2.0]).unwrap();
    let wrong_shape = Tensor::from_f32([3], &[1.0, 2.0, 3.0]).unwrap();
    let wrong_type = Tensor::from_bytes(OperandDescriptor::new(DataType::Int32, [2]), vec![0; 8]).unwrap();
    assert!(g.check_feeds(&[("x", &good)]).is_ok());
    let e = g.check_feeds(&[]).unwrap_err().to_string();
    assert!(e.contains("input `x`: is missing; expected f32[2]"), "{e}");
    let e = g.check_feeds(&[("x", &good), ("z", &good)]).unwrap_err().to_string();
    assert!(e.contains("input `z`: is not an input"), "{e}");
    let e = g.check_feeds(&[("x", &wrong_shape)]).unwrap_err().to_string();
    assert!(e.contains("expected f32[2], got f32[3]"), "{e}");
    let e = g.check_feeds(&[("x", &wrong_type)]).unwrap_err().to_string();
    assert!(e.contains("expected f32[2], got i32[2]"), "{e}");
    let e = g.check_feeds(&[("x", &good), ("x", &good)]).unwrap_err().to_string();
    assert!(e.contains("more than once"), "{e}");
}

#[test]
fn built_graphs_validate() {
    let b = GraphBuilder::new();
    let x = f32_input(&b, "x", &[2, 3]);
    let parts = b.split(x, Splits::Count(3), 1).unwrap();
    let c = b.concat(&parts, 1).unwrap();
    let g = b.build(&[("c", c)]).unwrap();
    g.validate().unwrap();
    assert_eq!(g.nodes().len(), 2);
}

#[test]
fn huge_split_counts_are_refused_before_allocating() {
    let b = GraphBuilder::new();
    let x = b.input("x", OperandDescriptor::new(DataType::Uint8, [u32::MAX])).unwrap();
    let e = message(b.split(x, Splits::Count(u32::MAX), 0).unwrap_err());
    assert!(e.contains("split") && e.contains("exceed the limit"), "{e}");
}

#[test]
fn negative_zero_options_are_not_mistaken_for_defaults() {
    let b = GraphBuilder::new();
    let x = f32_input(&b, "x", &[2]);
    let pad = Op::Pad { input: x, beginning_padding: vec![1], ending_padding: vec![1], options: PadOptions { value: Number::Float(-0.0), ..Default::default() } };
    let (_, named) = pad.arguments();
    assert!(matches!(named.as_slice(), [("value", Attr::Float(v))] if v.to_bits() == (-0.0f64).to_bits()), "{named:?}");
    let linear = Op::Linear { input: x, alpha: 1.0, beta: -0.0 };
    assert_eq!(linear.arguments().1.len(), 1);
    let default_pad = Op::Pad { input: x, beginning_padding: vec![1], ending_padding: vec![1], options: PadOptions::default() };
    assert!(default_pad.arguments().1.is_empty());
}

#[test]
fn the_indexing_scan_and_quantization_operators_name_the_rule_they_break() {
    use DataType::*;
    let b = GraphBuilder::new();
    let x = f32_input(&b, "x", &[2, 3, 4]);
    let input = |name: &str, t: DataType, shape: &[u32]| b.input(name, OperandDescriptor::new(t, shape)).unwrap();
    let expect = |r: Result<OperandId, BuildError>, needles: &[&str]| {
        let e = message(r.unwrap_err());
        assert!(needles.iter().all(|n| e.contains(n)), "{e} lacks one of {needles:?}");
    };
    expect(b.arg_min_max(ArgOp::Max, x, 3, false, Int32), &["argMax", "`axis`", "axis 3 is out of range"]);
    expect(b.arg_min_max(ArgOp::Min, x, 0, false, Float32), &["argMin", "`outputDataType`", "not one of int32, int64"]);
    let scalar = f32_input(&b, "s", &[]);
    expect(b.arg_min_max(ArgOp::Max, scalar, 0, false, Int32), &["argMax", "`input`", "rank must be in 1"]);
    let bytes = input("u8", Uint8, &[2, 3]);
    expect(b.cumulative_sum(bytes, 0, false, false), &["cumulativeSum", "`input`", "uint8 is not one of"]);
    expect(b.sign(bytes), &["sign", "uint8 is not one of"]);
    expect(b.reverse(x, Some(vec![1, 1])), &["reverse", "`axes`", "more than once"]);
    expect(b.tile(x, [2, 2]), &["tile", "`repetitions`", "length 2 must equal the input rank 3"]);
    expect(b.tile(x, [1, 0, 1]), &["tile", "`repetitions`", "greater than 0"]);
    let row = f32_input(&b, "row", &[4]);
    expect(b.triangular(row, true, 0), &["triangular", "`input`", "rank must be in 2"]);

    let idx = input("idx", Int32, &[2, 5, 4]);
    expect(b.gather_elements(x, idx, 2), &["gatherElements", "`indices`", "except along axis 2"]);
    let fidx = f32_input(&b, "fidx", &[2, 3, 4]);
    expect(b.gather_elements(x, fidx, 0), &["gatherElements", "`indices`", "float32 is not one of int32, uint32, int64"]);
    let tuples = input("tuples", Int64, &[5, 4]);
    expect(b.gather_nd(x, tuples), &["gatherND", "`indices`", "last dimension 4 exceeds the input rank 3"]);
    let idx = input("idx2", Int32, &[1, 3, 4]);
    let updates = f32_input(&b, "updates", &[1, 3, 3]);
    expect(b.scatter_elements(x, idx, updates, 0), &["scatterElements", "`updates`", "must equal the indices' shape"]);
    let tuples = input("tuples2", Int32, &[5, 1]);
    let updates = f32_input(&b, "updates2", &[5, 4, 3]);
    expect(b.scatter_nd(x, tuples, updates), &["scatterND", "`updates`", "[5, 3, 4]"]);

    let q = input("q", Uint8, &[4, 6]);
    let (scale, zero) = (f32_input(&b, "scale", &[4, 4]), input("zero", Uint8, &[4, 4]));
    expect(b.dequantize_linear(q, scale, zero), &["dequantizeLinear", "`scale`", "dimension 1 (4) must divide the input's 6"]);
    let (scale, zero) = (f32_input(&b, "scale2", &[2, 3]), input("zero2", Uint8, &[2, 1]));
    expect(b.dequantize_linear(q, scale, zero), &["dequantizeLinear", "`zeroPoint`", "must equal the scale's"]);
    let (scale, zero) = (f32_input(&b, "scale3", &[6]), input("zero3", Uint8, &[6]));
    expect(b.dequantize_linear(q, scale, zero), &["dequantizeLinear", "`scale`", "rank 1 must equal the input rank 2"]);
    let f = f32_input(&b, "f", &[4, 6]);
    let (scale, zero) = (f32_input(&b, "scale4", &[1, 1]), input("zero4", Int64, &[1, 1]));
    expect(b.quantize_linear(f, scale, zero), &["quantizeLinear", "`zeroPoint`", "int64 is not one of"]);
    let (scale, zero) = (input("scale5", Float16, &[1, 1]), input("zero5", Int8, &[1, 1]));
    expect(b.quantize_linear(f, scale, zero), &["quantizeLinear", "`scale`", "must match the input's float32"]);
}
