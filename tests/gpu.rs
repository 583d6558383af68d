//! The gpu backend for real: WGSL shaders run through wgpu on the system's
//! adapter. In CI that is Mesa's lavapipe (a Vulkan device on the CPU,
//! installed by scripts/install_gpu.sh from scripts/test): no adapter is a
//! failure here, never a skip. (WPT on gpu: tests/lowered_conformance.rs;
//! random graphs: tests/differential.rs, which covers every backend.)
//!
//! Models (all nine of tests/onnx_models.rs) are compared with ONNX
//! Runtime's outputs with the tolerances of tests/onnx_models.rs, and the
//! bundled example with the interpreter.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use kiln::{Backend, Context, ContextOptions, DataType, GraphBuilder, OperandDescriptor, Tensor, Values};
use kiln_harness::onnx_tests::{run_case, CaseOutcome, Tolerance};

/// One device for the whole file (creating one takes a while on lavapipe).
fn gpu() -> &'static Context {
    static GPU: OnceLock<Context> = OnceLock::new();
    GPU.get_or_init(|| {
        Context::new(ContextOptions { backend: Backend::Gpu, ..Default::default() }).unwrap_or_else(|e| {
            panic!("no GPU adapter ({e}); on Debian: apt-get install mesa-vulkan-drivers (scripts/install_gpu.sh)")
        })
    })
}

#[test]
fn a_gpu_adapter_is_found() {
    let adapter = gpu().gpu_adapter().expect("a gpu context names its adapter");
    println!("adapter: {adapter}");
    assert!(!adapter.is_empty());
    let cpu = Context::new(ContextOptions::default()).unwrap();
    assert_eq!(cpu.gpu_adapter(), None);
}

fn models_dir() -> PathBuf {
    std::env::var_os("KILN_ONNX_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/onnx-data"))
        .join("models")
}

fn check_model(name: &str) {
    check_model_with(name, Tolerance::default());
}

fn check_model_with(name: &str, tolerance: Tolerance) {
    let dir = models_dir().join(name);
    assert!(dir.is_dir(), "{} is missing: run scripts/fetch_onnx_data.sh", dir.display());
    let result = run_case(gpu(), &dir, tolerance);
    println!("{name} on gpu: {:?}", result.outcome);
    assert_eq!(result.outcome, CaseOutcome::Passed, "{name}");
}

#[test]
fn mobilenetv2_matches_onnx_runtime_on_gpu() {
    check_model("mobilenetv2");
}

#[test]
fn squeezenet_matches_onnx_runtime_on_gpu() {
    check_model("squeezenet1.1");
}

#[test]
fn resnet50_matches_onnx_runtime_on_gpu() {
    check_model("resnet50");
}

#[test]
fn bert_encoder_layer_matches_onnx_runtime_on_gpu() {
    check_model("bert_encoder");
}

#[test]
fn yolov8n_matches_onnx_runtime_on_gpu() {
    // Box coordinates in pixels to 0.05 px, as in tests/onnx_models.rs.
    check_model_with("yolov8n", Tolerance { rtol: 1e-3, atol: 0.05 });
}

#[test]
fn ppocr_detector_and_recogniser_match_onnx_runtime_on_gpu() {
    check_model("ppocr_det");
    check_model("ppocr_rec");
}

#[test]
fn ppocr_direction_classifier_matches_onnx_runtime_on_gpu() {
    check_model("ppocr_cls");
}

#[test]
fn byte_classifier_matches_onnx_runtime_on_gpu() {
    // int32 input, a one-hot comparison, conv1d: narrow and integer data.
    check_model("byte_classifier");
}

#[test]
fn the_example_model_matches_the_interpreter_on_gpu() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let graph = kiln::frontend::webnn_text::load(&root.join("examples/small_cnn.webnn")).unwrap();
    let input = kiln::npy::parse(&std::fs::read(root.join("examples/small_cnn_input.npy")).unwrap()).unwrap();
    let feeds = [("x", &input)];
    let interp = Context::new(ContextOptions { backend: Backend::Interp, ..Default::default() }).unwrap();
    let expected = interp.compute(&interp.compile(graph.clone()).unwrap(), &feeds).unwrap();
    let compiled = gpu().compile(graph).unwrap();
    let shaders = compiled.wgsl().expect("the gpu backend keeps its shaders");
    assert!(!shaders.shaders.is_empty());
    let actual = gpu().compute(&compiled, &feeds).unwrap();
    for ((name, e), (_, a)) in expected.iter().zip(&actual) {
        let (e, a) = (e.to_f32_vec(), a.to_f32_vec());
        assert_eq!(e.len(), a.len());
        for (i, (x, y)) in e.iter().zip(&a).enumerate() {
            assert!((x - y).abs() <= 1e-5 + 1e-4 * x.abs(), "{name}[{i}]: gpu {y}, interpreter {x}");
        }
    }
}

#[test]
fn runs_of_one_graph_from_several_threads_agree() {
    let b = GraphBuilder::new();
    let x = b.input("x", OperandDescriptor::new(DataType::Float32, [256])).unwrap();
    let y = b.sigmoid(x).unwrap();
    let graph = b.build(&[("y", y)]).unwrap();
    let compiled = gpu().compile(graph).unwrap();
    std::thread::scope(|s| {
        for t in 0..4 {
            let compiled = &compiled;
            s.spawn(move || {
                for r in 0..5 {
                    let values: Vec<f32> = (0..256).map(|i| (i as f32 - 128.0) / 16.0 + (t * 5 + r) as f32).collect();
                    let input = Tensor::from_f32([256], &values).unwrap();
                    let out = gpu().compute(compiled, &[("x", &input)]).unwrap();
                    for (v, got) in values.iter().zip(out[0].1.to_f32_vec()) {
                        let want = 1.0 / (1.0 + (-v).exp());
                        assert!((got - want).abs() <= 1e-6, "sigmoid({v}) = {got}, not {want}");
                    }
                }
            });
        }
    });
}

#[test]
fn narrow_and_wide_integers_move_exactly() {
    // int8 and uint8 (written a byte at a time by atomics), float16 (bit
    // conversions) and int64 (two words) through a transpose.
    for t in [DataType::Int8, DataType::Uint8, DataType::Float16, DataType::Int64] {
        let b = GraphBuilder::new();
        let x = b.input("x", OperandDescriptor::new(t, [3, 5])).unwrap();
        let y = b.transpose(x, None).unwrap();
        let graph = b.build(&[("y", y)]).unwrap();
        let values = match t {
            DataType::Int8 => Values::Int((0..15).map(|i| i * 17 - 128).collect()),
            DataType::Uint8 => Values::Int((0..15).map(|i| i * 17).collect()),
            DataType::Float16 => Values::Float((0..15).map(|i| f64::from(i) * -0.5 + 1.0 / 3.0).collect()),
            _ => Values::Int((0..15).map(|i| (i - 7) * ((1i128 << 40) + 3)).collect()),
        };
        let input = Tensor::from_values(OperandDescriptor::new(t, [3, 5]), &values).unwrap();
        let compiled = gpu().compile(graph.clone()).unwrap();
        let got = gpu().compute(&compiled, &[("x", &input)]).unwrap();
        let interp = Context::new(ContextOptions { backend: Backend::Interp, ..Default::default() }).unwrap();
        let want = interp.compute(&interp.compile(graph).unwrap(), &[("x", &input)]).unwrap();
        assert_eq!(got[0].1.bytes(), want[0].1.bytes(), "{t}");
    }
}

#[test]
fn host_kernels_run_between_the_shaders() {
    // int64 negation beyond 2^24 is a host kernel; the relu after it a shader.
    let b = GraphBuilder::new();
    let x = b.input("x", OperandDescriptor::new(DataType::Int64, [4])).unwrap();
    let y = b.neg(x).unwrap();
    let z = b.relu(y).unwrap();
    let graph = b.build(&[("z", z)]).unwrap();
    let compiled = gpu().compile(graph.clone()).unwrap();
    let kinds: Vec<&str> = compiled.program().unwrap().kernels.iter().map(|k| k.kind()).collect();
    assert!(kinds.contains(&"host") && kinds.len() >= 2, "{kinds:?}");
    let values = Values::Int(vec![-((1 << 40) + 1), 5, -3, 0]);
    let input = Tensor::from_values(OperandDescriptor::new(DataType::Int64, [4]), &values).unwrap();
    let out = gpu().compute(&compiled, &[("x", &input)]).unwrap();
    assert_eq!(out[0].1.values(), Values::Int(vec![(1 << 40) + 1, 0, 3, 0]));
    // A WGSL program for the web has no host interpreter: refused, named.
    let program = kiln::passes::lower(&graph).unwrap();
    let err = kiln::codegen::wgsl::compile(&program, &Default::default(), kiln::codegen::wgsl::HostKernels::Refuse)
        .unwrap_err();
    assert!(err.to_string().contains("k0 neg"), "{err}");
}

#[test]
fn tiled_matrix_products_match_the_interpreter_at_ragged_edges() {
    // 37x19 by 19x45 in a batch of 3 (broadcast B), plus a bias: partial
    // tiles in m, n and k, a batch grid, an epilogue input.
    let b = GraphBuilder::new();
    let x = b.input("x", OperandDescriptor::new(DataType::Float32, [3, 37, 19])).unwrap();
    let w = b.input("w", OperandDescriptor::new(DataType::Float32, [19, 45])).unwrap();
    let bias = b.input("bias", OperandDescriptor::new(DataType::Float32, [45])).unwrap();
    let y = b.add(b.matmul(x, w).unwrap(), bias).unwrap();
    let graph = b.build(&[("y", y)]).unwrap();
    let values = |n: usize, seed: usize| -> Vec<f32> { (0..n).map(|i| (((i * 7919 + seed) % 101) as f32 - 50.0) / 25.0).collect() };
    let x = Tensor::from_f32([3, 37, 19], &values(3 * 37 * 19, 1)).unwrap();
    let w = Tensor::from_f32([19, 45], &values(19 * 45, 2)).unwrap();
    let bias = Tensor::from_f32([45], &values(45, 3)).unwrap();
    let feeds = [("x", &x), ("w", &w), ("bias", &bias)];
    let compiled = gpu().compile(graph.clone()).unwrap();
    let tiled = compiled.wgsl().unwrap().shaders.iter().any(|s| s.source.contains("var<workgroup> tile_a"));
    assert!(tiled, "the product should take the tiled shader");
    let got = gpu().compute(&compiled, &feeds).unwrap()[0].1.to_f32_vec();
    let interp = Context::new(ContextOptions { backend: Backend::Interp, ..Default::default() }).unwrap();
    let want = interp.compute(&interp.compile(graph).unwrap(), &feeds).unwrap()[0].1.to_f32_vec();
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert!((g - w).abs() <= 1e-5 + 1e-5 * w.abs(), "y[{i}]: gpu {g}, interpreter {w}");
    }
}

/// Runs `graph` on the gpu and the interpreter with one input `x`.
fn both(graph: kiln::Graph, x: &Tensor) -> (Tensor, Tensor) {
    let compiled = gpu().compile(graph.clone()).unwrap();
    let got = gpu().compute(&compiled, &[("x", x)]).unwrap().remove(0).1;
    let interp = Context::new(ContextOptions { backend: Backend::Interp, ..Default::default() }).unwrap();
    let want = interp.compute(&interp.compile(graph).unwrap(), &[("x", x)]).unwrap().remove(0).1;
    (got, want)
}

#[test]
fn special_values_match_the_interpreter() {
    // erf, sin, cos and tan of NaN and the infinities are NaN.
    let x = Tensor::from_f32([5], &[f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 0.5, -3.0]).unwrap();
    for f in ["erf", "sin", "cos", "tan"] {
        let b = GraphBuilder::new();
        let input = b.input("x", OperandDescriptor::new(DataType::Float32, [5])).unwrap();
        let y = match f {
            "erf" => b.erf(input),
            "sin" => b.sin(input),
            "cos" => b.cos(input),
            _ => b.tan(input),
        }
        .unwrap();
        let (got, want) = both(b.build(&[("y", y)]).unwrap(), &x);
        for (g, w) in got.to_f32_vec().iter().zip(want.to_f32_vec()) {
            assert!(g.is_nan() == w.is_nan() && (g.is_nan() || (g - w).abs() <= 1e-6), "{f}: gpu {g}, interpreter {w}");
        }
    }
    // int64 -> float32 rounds once, to nearest even, as `as f32` does.
    let wide: Vec<i128> = vec![6442451201, i64::MIN as i128, -((1 << 40) + 3), (1 << 24) + 1, (1 << 24) + 3, -5, i64::MAX as i128];
    let desc = OperandDescriptor::new(DataType::Int64, [wide.len() as u32]);
    let b = GraphBuilder::new();
    let input = b.input("x", desc.clone()).unwrap();
    let y = b.cast(input, DataType::Float32).unwrap();
    let (got, want) = both(b.build(&[("y", y)]).unwrap(), &Tensor::from_values(desc, &Values::Int(wide)).unwrap());
    assert_eq!(got.bytes(), want.bytes(), "int64 -> float32: gpu {:?}, interpreter {:?}", got.to_f32_vec(), want.to_f32_vec());
    // float16 NaNs become quiet float32 NaNs with their payload.
    let halves: Vec<u8> = [0x7c01u16, 0xfe00, 0x7c00, 0x0001, 0x3c00].iter().flat_map(|h| h.to_le_bytes()).collect();
    let desc = OperandDescriptor::new(DataType::Float16, [5]);
    let b = GraphBuilder::new();
    let input = b.input("x", desc.clone()).unwrap();
    let y = b.cast(input, DataType::Float32).unwrap();
    let (got, want) = both(b.build(&[("y", y)]).unwrap(), &Tensor::from_bytes(desc, halves).unwrap());
    assert_eq!(got.bytes(), want.bytes(), "float16 -> float32");
}

#[test]
fn shaders_bind_only_the_memories_they_read() {
    // A map over a constant and an arena buffer that reads only the latter:
    // the constant's chunk is not bound (an unused binding would not be in
    // the pipeline's layout, and binding it would fail).
    use kiln::ir::kernel::{Access, BufferKind, Expr, Kernel, Program};
    let mut p = Program::default();
    let c = p.add_buffer(BufferKind::Constant(Tensor::from_f32([4], &[1.0; 4]).unwrap()), DataType::Float32, 4);
    let x = p.add_buffer(BufferKind::Input("x".into()), DataType::Float32, 4);
    let y = p.add_buffer(BufferKind::Output("y".into()), DataType::Float32, 4);
    p.kernels.push(Kernel::Map {
        domain: vec![4],
        inputs: vec![Access::identity(c, &[4]), Access::identity(x, &[4])],
        expr: Expr::load(1),
        out: Access::identity(y, &[4]),
    });
    let wgsl = kiln::codegen::wgsl::compile(&p, &Default::default(), kiln::codegen::wgsl::HostKernels::Refuse).unwrap();
    let memories: Vec<_> = wgsl.shaders[0].bindings.iter().map(|b| b.memory).collect();
    assert_eq!(memories, [kiln::codegen::wgsl::Memory::Arena]);
}

#[test]
fn convolution_weights_are_read_four_floats_at_a_time() {
    // A 3x3 convolution, 8 -> 20 channels at 18x18: its GEMM's A operand is
    // the constant filter, 72 floats a row: staged from vec4 loads.
    let b = GraphBuilder::new();
    let x = b.input("x", OperandDescriptor::new(DataType::Float32, [1, 8, 18, 18])).unwrap();
    let values: Vec<f32> = (0..20 * 8 * 9).map(|i| ((i * 37 % 61) as f32 - 30.0) / 40.0).collect();
    let w = b.constant_f32([20, 8, 3, 3], &values).unwrap();
    let y = b.conv2d(x, w, kiln::Conv2dOptions { padding: [1; 4], ..Default::default() }).unwrap();
    let graph = b.build(&[("y", y)]).unwrap();
    let compiled = gpu().compile(graph.clone()).unwrap();
    let quads = compiled.wgsl().unwrap().shaders.iter().any(|s| s.source.contains("array<vec4<u32>>"));
    assert!(quads, "the filter should be read as vec4");
    let input: Vec<f32> = (0..8 * 18 * 18).map(|i| ((i * 13 % 29) as f32 - 14.0) / 7.0).collect();
    let x = Tensor::from_f32([1, 8, 18, 18], &input).unwrap();
    let (got, want) = both(graph, &x);
    for (i, (g, w)) in got.to_f32_vec().iter().zip(want.to_f32_vec()).enumerate() {
        assert!((g - w).abs() <= 1e-5 + 1e-5 * w.abs(), "y[{i}]: gpu {g}, interpreter {w}");
    }
}
