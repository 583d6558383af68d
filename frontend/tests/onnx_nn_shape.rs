//! ONNX shape, data-movement and neural-network operators in the forms the
//! `onnx` package's node tests leave out or that exporters produce: the
//! WebNN operator each form becomes (one `resample2d` for a 2x nearest
//! `Resize`, a single `reshape` for a folded `Shape` chain) and its values
//! on the reference interpreter. Models are built as prost messages.

mod common;
use common::*;

use kiln_frontend::LoadOptions;
use kiln_frontend::onnx::{OnnxError, OnnxModel};
use kiln_frontend::onnx::proto::{
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto, ValueInfoProto, elem_type,
};
use kiln_ir::{Graph, Tensor, Values, interp};
use prost::Message;

/// A model at `opset` with float32 `inputs`.
fn model(opset: i64, nodes: Vec<NodeProto>, inputs: &[(&str, &[u32])], init: Vec<TensorProto>, outputs: &[&str]) -> OnnxModel {
    let graph = GraphProto {
        node: nodes,
        name: "g".into(),
        initializer: init,
        input: inputs.iter().map(|(n, s)| value_info(n, elem_type::FLOAT, s)).collect(),
        output: outputs.iter().map(|n| ValueInfoProto { name: n.to_string(), r#type: None }).collect(),
        ..Default::default()
    };
    let proto = ModelProto {
        ir_version: 8,
        opset_import: vec![OperatorSetIdProto { domain: String::new(), version: opset }],
        graph: Some(graph),
        ..Default::default()
    };
    OnnxModel::decode(proto.encode_to_vec().into(), ".".into()).expect("decodes")
}

fn import(m: &OnnxModel) -> Graph {
    m.to_graph(&LoadOptions::default()).unwrap_or_else(|e| panic!("import: {e}"))
}

/// The WebNN operator names of the graph's nodes, in order.
fn ops(g: &Graph) -> Vec<&'static str> {
    g.nodes().iter().map(|n| n.op.name()).collect()
}

fn run(g: &Graph, feeds: &[(&str, &[u32], &[f32])]) -> Vec<Tensor> {
    let tensors: Vec<(&str, Tensor)> =
        feeds.iter().map(|(n, s, v)| (*n, Tensor::from_f32(s.to_vec(), v).expect("tensor"))).collect();
    let refs: Vec<(&str, &Tensor)> = tensors.iter().map(|(n, t)| (*n, t)).collect();
    interp::run(g, &refs).unwrap_or_else(|e| panic!("interp: {e}"))
}

fn assert_close(got: &Tensor, shape: &[u32], want: &[f64]) {
    assert_close_within(got, shape, want, 1e-5);
}

fn iota(n: usize) -> Vec<f32> {
    (0..n).map(|i| i as f32).collect()
}

/// `x[n, c, h, w]` of an iota tensor of `dims`, as an index.
fn at(dims: &[u32], index: &[usize]) -> f64 {
    index.iter().zip(dims).fold(0usize, |acc, (&i, &d)| acc * d as usize + i) as f64
}

#[test]
fn nearest_2x_resize_is_one_resample2d() {
    // Paddle2ONNX and torch exports: scales as a constant, an empty roi.
    for (ctm, nearest) in [("asymmetric", "floor"), ("half_pixel", "round_prefer_floor"), ("pytorch_half_pixel", "round_prefer_ceil")] {
        let m = model(
            11,
            vec![node(
                "Resize",
                &["x", "roi", "scales"],
                &["y"],
                vec![string("mode", "nearest"), string("coordinate_transformation_mode", ctm), string("nearest_mode", nearest)],
            )],
            &[("x", &[1, 2, 3, 4])],
            vec![f32s("roi", &[0], &[]), f32s("scales", &[4], &[1.0, 1.0, 2.0, 2.0])],
            &["y"],
        );
        let g = import(&m);
        assert_eq!(ops(&g), ["resample2d"], "{ctm} {nearest}");
        let y = run(&g, &[("x", &[1, 2, 3, 4], &iota(24))]);
        let mut want = Vec::new();
        for c in 0..2 {
            for h in 0..6 {
                for w in 0..8 {
                    want.push(at(&[1, 2, 3, 4], &[0, c, h / 2, w / 2]));
                }
            }
        }
        assert_close(&y[0], &[1, 2, 6, 8], &want);
    }
}

#[test]
fn half_pixel_linear_resize_is_one_resample2d_and_align_corners_is_not() {
    let resize = |ctm: &str| {
        model(
            13,
            vec![node("Resize", &["x", "", "", "sizes"], &["y"], vec![string("mode", "linear"), string("coordinate_transformation_mode", ctm)])],
            &[("x", &[1, 1, 2, 3])],
            vec![i64s("sizes", &[4], &[1, 1, 4, 5])],
            &["y"],
        )
    };
    assert_eq!(ops(&import(&resize("half_pixel"))), ["resample2d"]);
    assert_eq!(ops(&import(&resize("pytorch_half_pixel"))), ["resample2d"]);
    // align_corners samples other positions: gathers and weights per axis.
    let g = import(&resize("align_corners"));
    assert!(!ops(&g).contains(&"resample2d"), "{:?}", ops(&g));
    let y = run(&g, &[("x", &[1, 1, 2, 3], &[0.0, 1.0, 2.0, 10.0, 20.0, 30.0])]);
    // Rows: 0, 1/3, 2/3, 1 of the way; columns: 0, 0.5, 1, 1.5, 2.
    let row = |r: f64| -> Vec<f64> {
        [0.0, 0.5, 1.0, 1.5, 2.0]
            .iter()
            .map(|&c: &f64| {
                let top = c;
                let bottom = 10.0 * (c + 1.0);
                top + (bottom - top) * r
            })
            .collect()
    };
    let want: Vec<f64> = [0.0, 1.0 / 3.0, 2.0 / 3.0, 1.0].iter().flat_map(|&r| row(r)).collect();
    assert_close(&y[0], &[1, 1, 4, 5], &want);
}

#[test]
fn nearest_resize_with_a_non_integer_scale_gathers() {
    // asymmetric + floor at 5 -> 9 columns picks floor(x * 5 / 9).
    let m = model(
        13,
        vec![node(
            "Resize",
            &["x", "", "", "sizes"],
            &["y"],
            vec![string("coordinate_transformation_mode", "asymmetric"), string("nearest_mode", "floor")],
        )],
        &[("x", &[1, 1, 1, 5])],
        vec![i64s("sizes", &[4], &[1, 1, 1, 9])],
        &["y"],
    );
    let g = import(&m);
    assert_eq!(ops(&g), ["gather"]);
    let y = run(&g, &[("x", &[1, 1, 1, 5], &iota(5))]);
    let want: Vec<f64> = (0..9).map(|x| (x as f64 * 5.0 / 9.0).floor()).collect();
    assert_close(&y[0], &[1, 1, 1, 9], &want);
}

#[test]
fn upsample_attribute_scales_before_opset_9() {
    let m = model(7, vec![node("Upsample", &["x"], &["y"], vec![floats_attr("scales", &[1.0, 1.0, 2.0, 3.0])])], &[("x", &[1, 1, 2, 2])], vec![], &["y"]);
    let g = import(&m);
    let y = run(&g, &[("x", &[1, 1, 2, 2], &iota(4))]);
    let want: Vec<f64> = (0..4).flat_map(|h| (0..6).map(move |w| at(&[2, 2], &[h / 2, w / 3]))).collect();
    assert_close(&y[0], &[1, 1, 4, 6], &want);
}

#[test]
fn shape_gather_unsqueeze_concat_reshape_folds_to_one_reshape() {
    for opset in [11, 13] {
        let unsqueeze = if opset < 13 {
            node("Unsqueeze", &["g"], &["u"], vec![ints("axes", &[0])])
        } else {
            node("Unsqueeze", &["g", "axes"], &["u"], vec![])
        };
        let m = model(
            opset,
            vec![
                node("Shape", &["x"], &["s"], vec![]),
                node("Gather", &["s", "zero"], &["g"], vec![int("axis", 0)]),
                unsqueeze,
                node("Concat", &["u", "minus_one"], &["shape"], vec![int("axis", 0)]),
                node("Reshape", &["x", "shape"], &["y"], vec![]),
            ],
            &[("x", &[2, 3, 4])],
            vec![i64s("zero", &[], &[0]), i64s("minus_one", &[1], &[-1]), i64s("axes", &[1], &[0])],
            &["y"],
        );
        let g = import(&m);
        assert_eq!(ops(&g), ["reshape"], "opset {opset}");
        let y = run(&g, &[("x", &[2, 3, 4], &iota(24))]);
        assert_eq!(y[0].shape().dims(), [2, 12]);
    }
}

#[test]
fn flatten_gemm_head() {
    let w: Vec<f32> = (0..12).map(|i| (i % 5) as f32 - 2.0).collect();
    let m = model(
        13,
        vec![
            node("GlobalAveragePool", &["x"], &["p"], vec![]),
            node("Flatten", &["p"], &["f"], vec![]),
            node("Gemm", &["f", "w", "b"], &["y"], vec![int("transB", 1)]),
        ],
        &[("x", &[1, 4, 2, 2])],
        vec![f32s("w", &[3, 4], &w), f32s("b", &[3], &[0.5, -0.5, 1.0])],
        &["y"],
    );
    let g = import(&m);
    assert_eq!(ops(&g), ["averagePool2d", "reshape", "gemm"]);
    let y = run(&g, &[("x", &[1, 4, 2, 2], &iota(16))]);
    let means: Vec<f64> = (0..4).map(|c| (4 * c) as f64 + 1.5).collect();
    let want: Vec<f64> =
        (0..3).map(|o| (0..4).map(|c| means[c] * w[o * 4 + c] as f64).sum::<f64>() + [0.5, -0.5, 1.0][o]).collect();
    assert_close(&y[0], &[1, 3], &want);
}

#[test]
fn slice_with_negative_steps_gathers_reversed_indices() {
    // x[::-2, 1:3] of a 5 x 4 tensor.
    let m = model(
        13,
        vec![node("Slice", &["x", "starts", "ends", "axes", "steps"], &["y"], vec![])],
        &[("x", &[5, 4])],
        vec![
            i64s("starts", &[2], &[-1, 1]),
            i64s("ends", &[2], &[i64::MIN, 3]),
            i64s("axes", &[2], &[0, 1]),
            i64s("steps", &[2], &[-2, 1]),
        ],
        &["y"],
    );
    let g = import(&m);
    assert_eq!(ops(&g), ["slice", "gather"]);
    let y = run(&g, &[("x", &[5, 4], &iota(20))]);
    assert_close(&y[0], &[3, 2], &[17.0, 18.0, 9.0, 10.0, 1.0, 2.0]);
}

#[test]
fn pad_wrap_and_negative_pads() {
    let wrap = model(
        19,
        vec![node("Pad", &["x", "pads"], &["y"], vec![string("mode", "wrap")])],
        &[("x", &[2, 3])],
        vec![i64s("pads", &[4], &[0, 2, 1, 1])],
        &["y"],
    );
    let y = run(&import(&wrap), &[("x", &[2, 3], &iota(6))]);
    assert_close(
        &y[0],
        &[3, 6],
        &[1.0, 2.0, 0.0, 1.0, 2.0, 0.0, 4.0, 5.0, 3.0, 4.0, 5.0, 3.0, 1.0, 2.0, 0.0, 1.0, 2.0, 0.0],
    );
    // Crop one column at the start, pad two at the end with 9.
    let crop = model(
        13,
        vec![node("Pad", &["x", "pads", "value"], &["y"], vec![])],
        &[("x", &[2, 3])],
        vec![i64s("pads", &[4], &[0, -1, 0, 2]), f32s("value", &[], &[9.0])],
        &["y"],
    );
    let y = run(&import(&crop), &[("x", &[2, 3], &iota(6))]);
    assert_close(&y[0], &[2, 4], &[1.0, 2.0, 9.0, 9.0, 4.0, 5.0, 9.0, 9.0]);
}

#[test]
fn empty_values_stay_load_time_constants() {
    // Shape with start > end is empty; Concat skips it. A zero-size Split
    // part is an empty constant nobody reads.
    let m = model(
        15,
        vec![
            node("Shape", &["x"], &["none"], vec![int("start", 2), int("end", 1)]),
            node("Shape", &["x"], &["all"], vec![]),
            node("Concat", &["none", "all", "none"], &["shape"], vec![int("axis", 0)]),
            node("Reshape", &["x", "shape"], &["r"], vec![]),
            node("Split", &["r", "split"], &["a", "empty", "b"], vec![int("axis", 1)]),
        ],
        &[("x", &[2, 3])],
        vec![i64s("split", &[3], &[1, 0, 2])],
        &["a", "b"],
    );
    let g = import(&m);
    let y = run(&g, &[("x", &[2, 3], &iota(6))]);
    assert_close(&y[0], &[2, 1], &[0.0, 3.0]);
    assert_close(&y[1], &[2, 2], &[1.0, 2.0, 4.0, 5.0]);
}

#[test]
fn conv_transpose_output_shape_crops_or_extends_at_the_end() {
    // 1 x 1 x 2 x 2 input, 1 x 1 x 2 x 2 kernel of ones, stride 2: the full
    // output is 4 x 4, each input element copied into a 2 x 2 block.
    let conv = |shape: &[i64]| {
        model(
            13,
            vec![node("ConvTranspose", &["x", "w"], &["y"], vec![ints("strides", &[2, 2]), ints("output_shape", shape)])],
            &[("x", &[1, 1, 2, 2])],
            vec![f32s("w", &[1, 1, 2, 2], &[1.0; 4])],
            &["y"],
        )
    };
    let x = [1.0, 2.0, 3.0, 4.0];
    // 5 x 4: one more row at the end (zero).
    let y = run(&import(&conv(&[5, 4])), &[("x", &[1, 1, 2, 2], &x)]);
    let block = |h: usize, w: usize| if h < 4 { x[(h / 2) * 2 + w / 2] as f64 } else { 0.0 };
    let want: Vec<f64> = (0..5).flat_map(|h| (0..4).map(move |w| block(h, w))).collect();
    assert_close(&y[0], &[1, 1, 5, 4], &want);
    // 3 x 4: ONNX pads the start more, dropping the first row.
    let y = run(&import(&conv(&[3, 4])), &[("x", &[1, 1, 2, 2], &x)]);
    let want: Vec<f64> = (1..4).flat_map(|h| (0..4).map(move |w| block(h, w))).collect();
    assert_close(&y[0], &[1, 1, 3, 4], &want);
}

#[test]
fn pools_follow_onnx_sizes_and_padding_counts() {
    // ceil_mode drops a last window that starts in the end padding: input
    // 4, kernel 2, stride 2, pads 1/1: ceil gives 3 windows at -1, 1, 3,
    // the last starts at 3 < 4 + 1 and stays.
    let pool = |op: &str, attrs: Vec<AttributeProto>| model(13, vec![node(op, &["x"], &["y"], attrs)], &[("x", &[1, 1, 1, 4])], vec![], &["y"]);
    let x = [1.0, 2.0, 3.0, 4.0];
    let common = || vec![ints("kernel_shape", &[1, 2]), ints("strides", &[1, 2]), ints("pads", &[0, 1, 0, 1])];
    let y = run(&import(&pool("AveragePool", common())), &[("x", &[1, 1, 1, 4], &x)]);
    assert_close(&y[0], &[1, 1, 1, 3], &[1.0, 2.5, 4.0]);
    let mut attrs = common();
    attrs.push(int("count_include_pad", 1));
    let y = run(&import(&pool("AveragePool", attrs)), &[("x", &[1, 1, 1, 4], &x)]);
    assert_close(&y[0], &[1, 1, 1, 3], &[0.5, 2.5, 2.0]);
    // Kernel 3, stride 2, no padding, ceil: windows at 0 and 2 (the one at
    // 2 overhangs by one element, which is not counted).
    let attrs = vec![ints("kernel_shape", &[1, 3]), ints("strides", &[1, 2]), int("ceil_mode", 1)];
    let y = run(&import(&pool("AveragePool", attrs)), &[("x", &[1, 1, 1, 4], &x)]);
    assert_close(&y[0], &[1, 1, 1, 2], &[2.0, 3.5]);
    // LpPool p = 3: (Σ|x|^3)^(1/3) over pairs.
    let attrs = vec![ints("kernel_shape", &[1, 2]), ints("strides", &[1, 2]), int("p", 3)];
    let y = run(&import(&pool("LpPool", attrs)), &[("x", &[1, 1, 1, 4], &[-1.0, 2.0, 3.0, -4.0])]);
    assert_close(&y[0], &[1, 1, 1, 2], &[9f64.cbrt(), 91f64.cbrt()]);
}

#[test]
fn max_pool_3d_is_two_separable_pools() {
    let m = model(
        13,
        vec![node("MaxPool", &["x"], &["y"], vec![ints("kernel_shape", &[2, 2, 2]), ints("strides", &[2, 2, 2])])],
        &[("x", &[1, 1, 2, 4, 4])],
        vec![],
        &["y"],
    );
    let g = import(&m);
    assert_eq!(ops(&g).iter().filter(|&&o| o == "maxPool2d").count(), 2);
    let y = run(&g, &[("x", &[1, 1, 2, 4, 4], &iota(32))]);
    // The max of each 2 x 2 x 2 block is its last element.
    assert_close(&y[0], &[1, 1, 1, 2, 2], &[21.0, 23.0, 29.0, 31.0]);
}

#[test]
fn matmul_with_vectors_drops_the_added_axis() {
    let m = model(13, vec![node("MatMul", &["a", "b"], &["y"], vec![])], &[("a", &[3]), ("b", &[2, 3, 2])], vec![], &["y"]);
    let g = import(&m);
    let b = iota(12);
    let y = run(&g, &[("a", &[3], &[1.0, 2.0, 3.0]), ("b", &[2, 3, 2], &b)]);
    let want: Vec<f64> =
        (0..2).flat_map(|n| (0..2).map(move |j| (0..3).map(|k| (k + 1) as f64 * (n * 6 + k * 2 + j) as f64).sum::<f64>())).collect();
    assert_close(&y[0], &[2, 2], &want);
}

#[test]
fn shape_arguments_fed_as_inputs_bind_as_constants() {
    // A Reshape whose shape is a graph input (as in ONNX's node tests).
    let graph = GraphProto {
        node: vec![node("Reshape", &["x", "shape"], &["y"], vec![])],
        name: "g".into(),
        input: vec![value_info("x", elem_type::FLOAT, &[2, 3]), value_info("shape", elem_type::INT64, &[2])],
        output: vec![ValueInfoProto { name: "y".into(), r#type: None }],
        ..Default::default()
    };
    let proto = ModelProto {
        ir_version: 8,
        opset_import: vec![OperatorSetIdProto { domain: String::new(), version: 13 }],
        graph: Some(graph),
        ..Default::default()
    };
    let m = OnnxModel::decode(proto.encode_to_vec().into(), ".".into()).expect("decodes");
    let mut options = LoadOptions::default();
    match m.to_graph(&options) {
        Err(OnnxError::Unsupported(nodes)) => assert_eq!(nodes[0].needs_values, ["shape"]),
        other => panic!("expected the shape input to be asked for, got {other:?}"),
    }
    let shape = Tensor::from_values(
        kiln_ir::OperandDescriptor::new(kiln_ir::DataType::Int64, [2]),
        &Values::Int(vec![3, -1]),
    )
    .unwrap();
    options.constants.insert("shape".into(), shape);
    let g = m.to_graph(&options).unwrap_or_else(|e| panic!("import: {e}"));
    let y = run(&g, &[("x", &[2, 3], &iota(6))]);
    assert_close(&y[0], &[3, 2], &(0..6).map(f64::from).collect::<Vec<_>>());
}
