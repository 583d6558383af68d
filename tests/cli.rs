//! The `kiln` command line: the README's main command works, and every
//! kind of bad input is a clear error with a non-zero exit, never a panic.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use kiln::{Context, ContextOptions, Tensor};

fn kiln(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("the kiln binary runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts a clean failure: exit code 1, an `error:` line containing
/// `needle`, and no panic.
fn assert_error(o: &Output, needle: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(1), "stderr: {err}");
    assert!(err.starts_with("error: ") && err.contains(needle), "expected `{needle}` in: {err}");
    assert!(!err.contains("panicked"), "{err}");
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kiln-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

const MODEL: &str = "examples/small_cnn.webnn";
const INPUT: &str = "x=examples/small_cnn_input.npy";

#[test]
fn run_writes_outputs_that_match_the_library() {
    let dir = scratch("run");
    let o = kiln(&["run", MODEL, "--input", INPUT, "--output-dir", dir.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("probs: f32[1, 10]"), "{}", stdout(&o));
    let written = kiln::npy::parse(&std::fs::read(dir.join("probs.npy")).unwrap()).unwrap();

    // The same graph through the library gives the same bytes.
    let ctx = Context::new(ContextOptions::default()).unwrap();
    let graph = ctx.load(Path::new(env!("CARGO_MANIFEST_DIR")).join(MODEL), &kiln::LoadOptions::default()).unwrap();
    let input = kiln::npy::parse(&std::fs::read("examples/small_cnn_input.npy").unwrap()).unwrap();
    let outputs = ctx.compute(&graph, &[("x", &input)]).unwrap();
    assert_eq!(outputs[0].1.bytes(), written.bytes());
    let probs = written.to_f32_vec();
    assert!((probs.iter().sum::<f32>() - 1.0).abs() < 1e-5, "softmax output sums to 1: {probs:?}");
}

#[test]
fn run_rejects_bad_inputs() {
    let dir = scratch("bad-inputs");
    let out = dir.to_str().unwrap();
    assert_error(&kiln(&["run", MODEL, "--output-dir", out]), "the model needs these inputs too (give each as --input NAME=FILE.npy):\n  x: f32[1, 3, 32, 32]");

    let extra = dir.join("extra.npy");
    std::fs::write(&extra, kiln::npy::to_bytes(&Tensor::from_f32([1], &[0.0]).unwrap())).unwrap();
    let extra_arg = format!("y={}", extra.display());
    assert_error(
        &kiln(&["run", MODEL, "--input", INPUT, "--input", &extra_arg, "--output-dir", out]),
        "--input y: the model has no input `y`; its inputs:\n  x: f32[1, 3, 32, 32]",
    );
    assert_error(&kiln(&["run", MODEL, "--input", INPUT, "--input", INPUT, "--output-dir", out]), "--input x: given more than once");

    let wrong_shape = format!("x={}", extra.display());
    assert_error(&kiln(&["run", MODEL, "--input", &wrong_shape, "--output-dir", out]), "expected f32[1, 3, 32, 32], got f32[1]");

    let int_input = dir.join("int.npy");
    let t = Tensor::from_bytes(kiln::OperandDescriptor::new(kiln::DataType::Int32, [1, 3, 32, 32]), vec![0; 4 * 3072]).unwrap();
    std::fs::write(&int_input, kiln::npy::to_bytes(&t)).unwrap();
    let int_arg = format!("x={}", int_input.display());
    assert_error(&kiln(&["run", MODEL, "--input", &int_arg, "--output-dir", out]), "got i32[1, 3, 32, 32]");

    let garbage = dir.join("garbage.npy");
    std::fs::write(&garbage, b"definitely not numpy").unwrap();
    let garbage_arg = format!("x={}", garbage.display());
    assert_error(&kiln(&["run", MODEL, "--input", &garbage_arg, "--output-dir", out]), "magic");

    assert_error(&kiln(&["run", MODEL, "--input", "x", "--output-dir", out]), "expected NAME=FILE.npy");
    assert_error(&kiln(&["run", MODEL, "--input", "x=/no/such/file.npy", "--output-dir", out]), "/no/such/file.npy");
    assert_error(&kiln(&["run", MODEL, "--input", INPUT, "--backend", "tpu"]), "unknown backend `tpu`");
}

#[test]
fn bad_model_files_are_clear_errors() {
    let dir = scratch("bad-models");
    assert_error(&kiln(&["info", "no/such/model.webnn"]), "no/such/model.webnn");
    let onnx = dir.join("model.onnx");
    std::fs::write(&onnx, b"\x08\x07").unwrap();
    assert_error(&kiln(&["info", onnx.to_str().unwrap()]), "not an ONNX model: it has no graph");
    let tflite = dir.join("model.tflite");
    std::fs::write(&tflite, b"TFL3").unwrap();
    assert_error(&kiln(&["info", tflite.to_str().unwrap()]), "not a TFLite model");
    let broken = dir.join("broken.webnn");
    std::fs::write(&broken, "webnn_graph \"g\" v1 {\n  inputs {\n    x: f32[2]\n  }\n}\n").unwrap();
    assert_error(&kiln(&["info", broken.to_str().unwrap()]), "3:");
    let unknown = dir.join("unknown.webnn");
    std::fs::write(
        &unknown,
        "webnn_graph \"g\" v1 {\n  inputs {\n    x: f32[2];\n  }\n  nodes {\n    a = frobnicate(x);\n    b = twiddle(a);\n  }\n  outputs {\n    b;\n  }\n}\n",
    )
    .unwrap();
    let o = kiln(&["info", unknown.to_str().unwrap()]);
    assert_error(&o, "frobnicate");
    assert!(stderr(&o).contains("twiddle"), "all unknown operators at once: {}", stderr(&o));
}

#[test]
fn info_reports_the_model() {
    let o = kiln(&["info", MODEL]);
    assert!(o.status.success(), "{}", stderr(&o));
    let s = stdout(&o);
    for needle in ["x: f32[1, 3, 32, 32]", "probs: f32[1, 10]", "conv2d", "softmax", "parameters: 1594", "FLOPs:", "arena: "] {
        assert!(s.contains(needle), "`{needle}` missing from:\n{s}");
    }
}

#[test]
fn ops_lists_every_operator() {
    let o = kiln(&["ops"]);
    assert!(o.status.success());
    let s = stdout(&o);
    for op in kiln::frontend::op_table::operator_names() {
        assert!(s.lines().any(|l| l.split_whitespace().next() == Some(op)), "{op} missing");
    }
}

/// `kiln ops --json`: opSupportLimits, every operator with every operand's
/// data types and rank range, as the context reports them.
#[test]
fn ops_json_prints_the_support_limits() {
    let o = kiln(&["ops", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["preferredInputLayout"], "nchw");
    assert_eq!(v["maxTensorByteLength"], kiln::MAX_TENSOR_BYTES);
    let ctx = kiln::Context::new(kiln::ContextOptions::default()).unwrap();
    for (name, operands) in &ctx.op_support_limits().operators {
        for l in operands {
            let entry = &v[*name][l.operand];
            let types: Vec<&str> = l.data_types.iter().map(|t| t.name()).collect();
            assert_eq!(entry["dataTypes"], serde_json::json!(types), "{name}.{}", l.operand);
            assert_eq!(entry["rankRange"]["min"], l.ranks.min, "{name}.{}", l.operand);
        }
    }
    assert_eq!(v["conv2d"]["filter"]["rankRange"]["max"], 4);
    assert_eq!(v["lstm"]["peepholeWeight"]["dataTypes"], serde_json::json!(["float32", "float16"]));
}

#[test]
fn emit_graph_reparses_to_the_same_text() {
    let o = kiln(&["emit", MODEL, "--stage", "graph"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    let doc = kiln::frontend::webnn_text::parse(&text).unwrap();
    assert_eq!(kiln::frontend::webnn_text::print(&doc), text);
}

#[test]
fn conformance_json_report() {
    let o = kiln(&["conformance", "tests/data/wpt-webnn/relu.json", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let report: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(report["backend"], "interp");
    assert_eq!(report["total"], 17);
    assert_eq!(report["passed"], 17);
    assert_eq!(report["failed"], 0);
    assert_eq!(report["ops"]["relu"]["passed"], 17);
    assert_error(&kiln(&["conformance", "no/such/dir"]), "no/such/dir");
}

#[test]
fn the_kernels_backend_runs_the_example_and_emits_its_program() {
    let dir = scratch("kernels");
    let o = kiln(&["run", MODEL, "--input", INPUT, "--output-dir", dir.to_str().unwrap(), "--backend", "kernels"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let kernels = kiln::npy::parse(&std::fs::read(dir.join("probs.npy")).unwrap()).unwrap().to_f32_vec();
    let o = kiln(&["run", MODEL, "--input", INPUT, "--output-dir", dir.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let interp = kiln::npy::parse(&std::fs::read(dir.join("probs.npy")).unwrap()).unwrap().to_f32_vec();
    for (k, i) in kernels.iter().zip(&interp) {
        assert!((k - i).abs() <= 1e-6 + 1e-5 * i.abs(), "kernels {kernels:?}\ninterp {interp:?}");
    }

    let o = kiln(&["emit", MODEL, "--stage", "kernels"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    for needle in ["input \"x\"", "output \"probs\"", "arena: ", ": gemm [", ": reduce ["] {
        assert!(text.contains(needle), "`{needle}` missing from:\n{text}");
    }
    // Deterministic.
    assert_eq!(stdout(&kiln(&["emit", MODEL, "--stage", "kernels"])), text);

    let o = kiln(&["ops"]);
    let s = stdout(&o);
    assert!(s.lines().next().unwrap().contains("kernels"), "{s}");
    assert_eq!(s.lines().next().unwrap().split_whitespace().collect::<Vec<_>>(), ["operator", "cpu", "interp", "kernels", "gpu"]);
    assert!(s.lines().any(|l| l.split_whitespace().collect::<Vec<_>>() == ["conv2d", "yes", "yes", "yes", "yes"]), "{s}");
    let row = |words: &[&str]| s.lines().any(|l| l.split_whitespace().collect::<Vec<_>>() == words);
    assert!(row(&["sub", "yes+host", "yes", "yes+host", "yes+host"]), "{s}");
    assert!(row(&["sub", "32/64-bit", "integers"]), "{s}");
}

#[test]
fn a_closed_pipe_is_not_a_panic() {
    use std::process::Stdio;
    let mut child = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["info", MODEL])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // the reader goes away before kiln writes
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
}

/// `kiln explain` on the example: its batch normalization folds into the
/// conv before it, and every kernel names the operators it computes.
#[test]
fn explain_shows_what_the_optimizer_did() {
    let o = kiln(&["explain", "examples/small_cnn.webnn"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    for needle in ["operators: 10 -> 9", "batchnorm-into-conv 1", "batchNormalization 1 -> 0", "kernels:", "fuse", "total"] {
        assert!(text.contains(needle), "`{needle}` missing from:\n{text}");
    }
    let o = kiln(&["explain", "examples/small_cnn.webnn", "--json"]);
    let json: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("explain --json prints JSON");
    assert_eq!(json["rewrite"]["fired"]["batchnorm-into-conv"], 1);
    let kernels = json["kernels"].as_array().unwrap();
    assert!(!kernels.is_empty());
    for k in kernels {
        assert!(!k["operators"].as_array().unwrap().is_empty(), "{k}");
    }
    // Every operator of the optimised graph is computed by some kernel.
    let named: usize = kernels.iter().map(|k| k["operators"].as_array().unwrap().len()).sum();
    assert!(named >= json["operators_after"].as_u64().unwrap() as usize - 1, "{json}"); // reshape aliases
}

#[test]
fn emit_prints_the_graph_after_any_pass() {
    let before = stdout(&kiln(&["emit", "examples/small_cnn.webnn", "--stage", "graph"]));
    let opt = stdout(&kiln(&["emit", "examples/small_cnn.webnn", "--stage", "opt"]));
    assert!(before.contains("batchNormalization(") && !opt.contains("batchNormalization("), "{opt}");
    assert_eq!(stdout(&kiln(&["emit", "examples/small_cnn.webnn", "--dump-after", "rewrite"])), opt);
    let kernels = stdout(&kiln(&["emit", "examples/small_cnn.webnn", "--stage", "kernels"]));
    assert_eq!(stdout(&kiln(&["emit", "examples/small_cnn.webnn", "--dump-after", "plan"])), kernels);
    let lowered = stdout(&kiln(&["emit", "examples/small_cnn.webnn", "--dump-after", "lower"]));
    let count = |text: &str| text.lines().filter(|l| l.starts_with('k') && l.contains(": ")).count();
    assert!(count(&lowered) > count(&kernels), "fusion removes kernels:\n{lowered}");
    assert_error(&kiln(&["emit", "examples/small_cnn.webnn", "--dump-after", "inline"]), "the passes are: fold, rewrite, layout, lower, fuse, views, plan");
}

#[test]
fn bench_can_switch_the_optimizer_off() {
    for (flag, after) in [(None, 9), (Some("--no-optimize"), 10)] {
        let mut args = vec!["bench", "examples/small_cnn.webnn", "--runs", "2", "--threads", "1", "--json"];
        args.extend(flag);
        let o = kiln(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        let json: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
        assert_eq!(json["operators_before"], 10);
        assert_eq!(json["operators_after"], after, "{json}");
    }
}

/// A TFLite model through `kiln info` and `kiln run`: its tensor names
/// (`serving_default_input:0`, `StatefulPartitionedCall:0`) work as input
/// names, the output goes to a file named after it (`:` made `_`), and the result is LiteRT's within one
/// quantum (the uint8 MobileNet of target/tflite-data, written by
/// scripts/fetch_onnx_data.sh).
#[test]
fn tflite_models_run_from_the_command_line_with_their_tensor_names() {
    let model = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/tflite-data/models/mobilenet_uint8");
    assert!(model.is_dir(), "{} is missing: run scripts/fetch_onnx_data.sh", model.display());
    let file = model.join("model.tflite");
    let info = stdout(&kiln(&["info", file.to_str().unwrap()]));
    assert!(info.contains("TFLite operators: 12 operators") && info.contains("CONV_2D"), "{info}");
    assert!(info.contains("serving_default_input:0: u8[1, 64, 64, 3]"), "{info}");
    let dir = scratch("tflite-run");
    let read = |name: &str| {
        kiln_harness::onnx_tests::read_tensors(&model.join("test_data_set_0"), name).unwrap().remove(0).1
    };
    let input = dir.join("input.npy");
    std::fs::write(&input, kiln::npy::to_bytes(&read("input"))).unwrap();
    let out = kiln(&[
        "run",
        file.to_str().unwrap(),
        "--input",
        &format!("serving_default_input:0={}", input.display()),
        "--output-dir",
        dir.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains(&format!("StatefulPartitionedCall:0: u8[1, 10] -> {}", dir.join("StatefulPartitionedCall_0.npy").display())), "{}", stdout(&out));
    let written = dir.join("StatefulPartitionedCall_0.npy");
    let got = kiln::npy::parse(&std::fs::read(&written).unwrap()).unwrap();
    let want = read("output");
    assert_eq!(got.desc(), want.desc());
    for (g, w) in got.bytes().iter().zip(want.bytes()) {
        assert!(g.abs_diff(*w) <= 1, "kiln {g}, LiteRT {w}");
    }
}

/// An ONNX model whose input and output names are not file names, as
/// PaddlePaddle and TensorFlow exports have them: inputs `x:0` and `mask=1`
/// (f32[2, 3]), and one output per entry of [`AWKWARD_OUTPUTS`], each a
/// different operator of the inputs.
fn awkward_model(dir: &Path) -> PathBuf {
    use kiln::frontend::onnx::proto::*;
    use prost::Message;
    use tensor_shape_proto::{Dimension, dimension::Value as D};
    let info = |name: &str| ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: elem_type::FLOAT,
                shape: Some(TensorShapeProto {
                    dim: [2, 3].iter().map(|&d| Dimension { value: Some(D::DimValue(d)) }).collect(),
                }),
            })),
        }),
    };
    let node = |(output, (op, inputs)): (&&str, &(&str, &[&str])) | NodeProto {
        op_type: op.to_string(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.to_string()],
        ..Default::default()
    };
    let ops: [(&str, &[&str]); 7] = [
        ("Add", &["x:0", "mask=1"]),
        ("Relu", &["x:0"]),
        ("Neg", &["x:0"]),
        ("Abs", &["mask=1"]),
        ("Mul", &["x:0", "mask=1"]),
        ("Sub", &["x:0", "mask=1"]),
        ("Sigmoid", &["x:0"]),
    ];
    let model = ModelProto {
        ir_version: 8,
        opset_import: vec![OperatorSetIdProto { domain: String::new(), version: 17 }],
        graph: Some(GraphProto {
            node: AWKWARD_OUTPUTS.iter().zip(&ops).map(node).collect(),
            input: vec![info("x:0"), info("mask=1")],
            output: AWKWARD_OUTPUTS.iter().map(|n| info(n)).collect(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let path = dir.join("awkward.onnx");
    std::fs::write(&path, model.encode_to_vec()).unwrap();
    path
}

/// The outputs of [`awkward_model`] and the files `kiln run` writes them
/// to: separators, `:` and leading dots become `_`, a Windows device name
/// gets a `_` prefix, and names equal after that (ignoring case) get
/// `_2`, `_3`.
const AWKWARD_OUTPUTS: [&str; 7] = ["save_infer_model/scale_0.tmp_1", "StatefulPartitionedCall:0", "a:0", "a/0", "A_0", "../escape", "con"];
const AWKWARD_FILES: [&str; 7] = [
    "save_infer_model_scale_0.tmp_1.npy",
    "StatefulPartitionedCall_0.npy",
    "a_0.npy",
    "a_0_2.npy",
    "A_0_3.npy",
    "___escape.npy",
    "_con.npy",
];

/// Writes the inputs of [`awkward_model`] and returns them with their
/// `--input` arguments.
fn awkward_inputs(dir: &Path) -> (Vec<(&'static str, Tensor)>, Vec<String>) {
    let x = Tensor::from_f32([2, 3], &[-1.5, 0.0, 2.0, 3.25, -4.0, 0.5]).unwrap();
    let mask = Tensor::from_f32([2, 3], &[1.0, -2.0, 0.5, 0.0, 3.0, -0.25]).unwrap();
    let mut args = Vec::new();
    for (name, file, t) in [("x:0", "x.npy", &x), ("mask=1", "mask.npy", &mask)] {
        std::fs::write(dir.join(file), kiln::npy::to_bytes(t)).unwrap();
        args.push(format!("{name}={}", dir.join(file).display()));
    }
    (vec![("x:0", x), ("mask=1", mask)], args)
}

/// The outputs of `model` on `inputs` by the reference interpreter.
fn interpreted(model: &Path, inputs: &[(&str, Tensor)]) -> Vec<(String, Tensor)> {
    let ctx = Context::new(ContextOptions { backend: kiln::Backend::Interp, ..Default::default() }).unwrap();
    let graph = ctx.load(model, &kiln::LoadOptions::default()).unwrap();
    let feeds: Vec<(&str, &Tensor)> = inputs.iter().map(|(n, t)| (*n, t)).collect();
    ctx.compute(&graph, &feeds).unwrap()
}

/// `kiln run` on a model whose names are not file names: every output is
/// written inside the output folder under a safe, distinct name, the
/// mapping is listed on stdout, nothing lands outside the folder, no
/// progress noise reaches a stderr that is not a terminal, and each file
/// holds what the reference interpreter computes.
#[test]
fn run_writes_awkward_output_names_to_safe_distinct_files() {
    let dir = scratch("awkward");
    let model = awkward_model(&dir);
    let (inputs, input_args) = awkward_inputs(&dir);
    let out = dir.join("out");
    let mut args = vec!["run", model.to_str().unwrap(), "--output-dir", out.to_str().unwrap()];
    for a in &input_args {
        args.extend(["--input", a]);
    }
    let o = kiln(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stderr(&o), "", "no progress or other noise on a stderr that is not a terminal");
    let listed = stdout(&o);
    let expected = interpreted(&model, &inputs);
    for (name, file) in AWKWARD_OUTPUTS.iter().zip(AWKWARD_FILES) {
        let path = out.join(file);
        assert!(listed.lines().any(|l| l == format!("{name}: f32[2, 3] -> {}", path.display())), "{name} -> {file} missing from:\n{listed}");
        let got = kiln::npy::parse(&std::fs::read(&path).unwrap()).unwrap();
        let want = &expected.iter().find(|(n, _)| n == name).unwrap().1;
        assert_eq!(got.desc(), want.desc(), "{name}");
        for (g, w) in got.to_f32_vec().iter().zip(want.to_f32_vec()) {
            assert!((g - w).abs() <= 1e-6 * w.abs().max(1.0), "{name}: kiln {g}, interpreter {w}");
        }
    }
    let mut written: Vec<String> = std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    written.sort();
    let mut want: Vec<String> = AWKWARD_FILES.iter().map(|f| f.to_string()).collect();
    want.sort();
    assert_eq!(written, want, "exactly one file per output, all inside the folder");
    assert!(!dir.join("escape.npy").exists());
}

/// `--output NAME=FILE` chooses an output's file (the others keep their
/// safe names and never take its name); `--output FILE` alone names the
/// output of a one-output model; unknown names, repeated names or files,
/// and a bare FILE for a many-output model are errors that list the
/// outputs.
#[test]
fn run_output_flag_chooses_files() {
    let dir = scratch("output-flag");
    let model = awkward_model(&dir);
    let (inputs, input_args) = awkward_inputs(&dir);
    let out = dir.join("out");
    let run = |extra: &[&str]| {
        let mut args = vec!["run", model.to_str().unwrap(), "--output-dir", out.to_str().unwrap()];
        for a in &input_args {
            args.extend(["--input", a]);
        }
        args.extend(extra);
        kiln(&args)
    };
    let chosen = dir.join("chosen").join("a_0.npy");
    let spec = format!("StatefulPartitionedCall:0={}", chosen.display());
    let o = run(&["--output", &spec]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains(&format!("StatefulPartitionedCall:0: f32[2, 3] -> {}", chosen.display())), "{}", stdout(&o));
    let relu = kiln::npy::parse(&std::fs::read(&chosen).unwrap()).unwrap();
    let expected = interpreted(&model, &inputs);
    assert_eq!(relu.bytes(), expected.iter().find(|(n, _)| n == "StatefulPartitionedCall:0").unwrap().1.bytes());
    // The chosen file's name is not reused in the folder: `a:0` moves on.
    assert!(stdout(&o).contains(&format!("a:0: f32[2, 3] -> {}", out.join("a_0_2.npy").display())), "{}", stdout(&o));
    assert!(!out.join("StatefulPartitionedCall_0.npy").exists() && !out.join("a_0.npy").exists());

    let o = run(&["--output", "nope=x.npy"]);
    assert_error(&o, "--output nope: the model has no output `nope`; its outputs:\n  save_infer_model/scale_0.tmp_1\n  StatefulPartitionedCall:0\n");
    assert_error(&run(&["--output", "out.npy"]), "--output `out.npy`: expected NAME=FILE (the model has 7 outputs):\n  save_infer_model/scale_0.tmp_1");
    assert_error(&run(&["--output", "a:0=1.npy", "--output", "a:0=2.npy"]), "--output a:0: given more than once");
    assert_error(&run(&["--output", "a:0=1.npy", "--output", "a/0=1.npy"]), "--output a/0: 1.npy is already the file of output `a:0`");
    assert_error(&run(&["--output", "a:0="]), "--output a:0: the file name is empty");

    // One output: `--output FILE` alone.
    let single = dir.join("probs-here.npy");
    let o = kiln(&["run", MODEL, "--input", INPUT, "--output", single.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), format!("probs: f32[1, 10] -> {}\n", single.display()));
    assert_eq!(kiln::npy::parse(&std::fs::read(&single).unwrap()).unwrap().shape().dims(), [1, 10]);
}

/// `kiln run` without some inputs names all the missing ones at once with
/// their types and shapes; an unknown `--input` name lists the inputs.
#[test]
fn run_lists_the_inputs_it_needs() {
    let dir = scratch("needs-inputs");
    let model = awkward_model(&dir);
    let (_, input_args) = awkward_inputs(&dir);
    let model = model.to_str().unwrap();
    assert_error(
        &kiln(&["run", model]),
        "the model needs these inputs too (give each as --input NAME=FILE.npy):\n  x:0: f32[2, 3]\n  mask=1: f32[2, 3]",
    );
    let o = kiln(&["run", model, "--input", &input_args[0]]);
    assert_error(&o, "(give each as --input NAME=FILE.npy):\n  mask=1: f32[2, 3]");
    assert!(!stderr(&o).contains("x:0: f32"), "{}", stderr(&o));
    assert_error(&kiln(&["run", model, "--input", "x=a.npy"]), "--input x: the model has no input `x`; its inputs:\n  x:0: f32[2, 3]\n  mask=1: f32[2, 3]");
}

/// The repository's benchmark environment (made by scripts/fetch_onnx_data.sh),
/// which has onnxruntime and ai-edge-litert.
const BENCH_PYTHON: &str = "target/bench-venv/bin/python";

/// `kiln bench --compare onnxruntime` on a model whose input names hold `:`
/// and `=`: kiln and ONNX Runtime side by side in one JSON report (the
/// interpreter found without --python), the ratio their medians'; the
/// text report shows both columns.
#[test]
fn bench_compares_with_onnx_runtime() {
    assert!(Path::new(env!("CARGO_MANIFEST_DIR")).join(BENCH_PYTHON).is_file(), "{BENCH_PYTHON} is missing: run scripts/fetch_onnx_data.sh");
    let dir = scratch("bench-compare");
    let model = awkward_model(&dir);
    let o = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["bench", model.to_str().unwrap(), "--compare", "onnxruntime", "--threads", "1", "--runs", "3", "--json"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("KILN_PYTHON")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let json: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!((json["threads"].as_u64(), json["runs"].as_u64(), json["rounds"].as_u64()), (Some(1), Some(3), Some(3)), "{json}");
    assert_eq!(json["reference"]["engine"], "onnxruntime");
    assert!(!json["reference"]["version"].as_str().unwrap().is_empty(), "{json}");
    let (kiln_ms, ort_ms) = (json["kiln"]["median_ms"].as_f64().unwrap(), json["reference"]["median_ms"].as_f64().unwrap());
    assert!(kiln_ms > 0.0 && ort_ms > 0.0 && json["reference"]["compile_ms"].as_f64().unwrap() > 0.0, "{json}");
    assert!((json["ratio"].as_f64().unwrap() - kiln_ms / ort_ms).abs() < 1e-9, "{json}");

    let o = kiln(&["bench", model.to_str().unwrap(), "--compare", "onnxruntime", "--python", BENCH_PYTHON, "--runs", "2", "--threads", "1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    for needle in ["1 threads, 2 timed runs each", "kiln (cpu)", "onnxruntime 1.", "median", "kiln/onnxruntime (median): "] {
        assert!(text.contains(needle), "`{needle}` missing from:\n{text}");
    }
}

/// `kiln bench --compare litert` on a .tflite file.
#[test]
fn bench_compares_with_litert() {
    let model = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/tflite-data/models/mobilenet_uint8/model.tflite");
    assert!(model.is_file(), "{} is missing: run scripts/fetch_onnx_data.sh", model.display());
    let o = kiln(&["bench", model.to_str().unwrap(), "--compare", "litert", "--python", BENCH_PYTHON, "--threads", "1", "--runs", "2", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let json: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(json["reference"]["engine"], "litert");
    assert!(json["reference"]["median_ms"].as_f64().unwrap() > 0.0, "{json}");
}

/// What `--compare` refuses, each with the reason.
#[test]
fn bench_compare_errors_are_clear() {
    let tflite = "target/tflite-data/models/mobilenet_uint8/model.tflite";
    assert_error(&kiln(&["bench", MODEL, "--compare", "onnxruntime"]), "--compare onnxruntime needs an .onnx model, not examples/small_cnn.webnn");
    assert_error(&kiln(&["bench", tflite, "--compare", "onnxruntime"]), "for target/tflite-data/models/mobilenet_uint8/model.tflite use --compare litert");
    let o = kiln(&["bench", tflite, "--compare", "litert", "--python", "/bin/false"]);
    assert_error(&o, "--compare litert: the interpreter of --python cannot import `ai_edge_litert` and numpy (pip install ai-edge-litert numpy):\n  /bin/false: exited with");
    let o = kiln(&["bench", tflite, "--compare", "litert", "--python", "/no/such/python"]);
    assert_error(&o, "/no/such/python: cannot run it");
    let o = kiln(&["bench", MODEL, "--compare", "tensorflow"]);
    assert_eq!(o.status.code(), Some(2), "a usage error: {}", stderr(&o));
    assert!(stderr(&o).contains("expected onnxruntime (.onnx models) or litert (.tflite models)"), "{}", stderr(&o));
    // A model kiln cannot load is kiln's error, before any Python runs.
    let dir = scratch("bench-compare-bad");
    let bad = dir.join("bad.onnx");
    std::fs::write(&bad, b"\x08\x07").unwrap();
    assert_error(&kiln(&["bench", bad.to_str().unwrap(), "--compare", "onnxruntime", "--python", BENCH_PYTHON]), "not an ONNX model");
    // The driver's own error (here from a stand-in interpreter that imports
    // everything and then fails to load the model) is passed on, naming the model.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let fake = dir.join("python");
        std::fs::write(&fake, "#!/bin/sh\ncase \"$2\" in import*) exit 0;; esac\necho '{\"error\": \"InvalidGraph: cannot load\"}'\nexit 1\n").unwrap();
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        let model = awkward_model(&dir);
        let o = kiln(&["bench", model.to_str().unwrap(), "--compare", "onnxruntime", "--python", fake.to_str().unwrap()]);
        assert_error(&o, &format!("onnxruntime on {}: InvalidGraph: cannot load", model.display()));
    }
}
