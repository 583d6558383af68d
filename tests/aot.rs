//! Ahead-of-time artifacts, linked by gcc with a C driver and run: on this
//! machine for every x86-64 level it runs, and for aarch64 under
//! qemu-user (gcc-aarch64-linux-gnu and qemu-user, which scripts/test
//! installs when missing).
//!
//! The driver (written per artifact from its header) runs `NAME_run` and
//! `NAME_run_parallel` with 3 tasks on pthreads, checks the error codes of
//! null, misaligned and zero-task calls, and writes the outputs. Checks:
//! the sequential and parallel results are bitwise equal; on the host's own
//! level they are bitwise equal to the JIT's (the same code); every result
//! is within tolerance of the reference interpreter (small graphs) or of
//! ONNX Runtime's outputs (real models, |kiln - ORT| <= 1e-5 + 1e-3 |ORT|
//! as in tests/onnx_models.rs).

use std::path::{Path, PathBuf};
use std::process::Command;

use kiln::aot::{self, AotError, AotOptions, Artifact, Emit};
use kiln::codegen::cpu::{Arch, Target};
use kiln::{Backend, Context, ContextOptions, DataType, Graph, GraphBuilder, OperandDescriptor, Tensor};
use kiln_harness::onnx_tests::{compare, read_tensors, Tolerance};

/// A fresh folder under the target directory for one artifact.
fn work_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("aot").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn require(tool: &str) {
    let found = Command::new("sh").arg("-c").arg(format!("command -v {tool}")).output().is_ok_and(|o| o.status.success());
    assert!(found, "`{tool}` is missing: scripts/test installs it (apt packages gcc-aarch64-linux-gnu, qemu-user)");
}

/// The C driver for an artifact named `model`.
const DRIVER: &str = include_str!("aot/driver.c");

/// Writes `artifact` and a driver into `dir`, links them with gcc (the
/// cross compiler for aarch64), runs the driver (under qemu for aarch64)
/// on `inputs` and returns the outputs of `NAME_run`, after checking that
/// `NAME_run_parallel` gave the same bytes.
fn run_linked(artifact: &Artifact, dir: &Path, inputs: &[Tensor]) -> Vec<Tensor> {
    artifact.write(dir, &[Emit::Object, Emit::Header]).unwrap();
    std::fs::write(dir.join("driver.c"), DRIVER).unwrap();
    for (i, t) in inputs.iter().enumerate() {
        std::fs::write(dir.join(format!("in{i}.bin")), t.bytes()).unwrap();
    }
    let cross = artifact.target.arch == Arch::Aarch64 && !cfg!(target_arch = "aarch64");
    let cc = aot::c_compiler(artifact.target);
    require(&cc);
    let mut link = Command::new(&cc);
    link.current_dir(dir).args(["-std=c11", "-O1", "-Wall", "-Werror", "-pthread", "-o", "driver", "driver.c", "model.o", "-lm"]);
    if cross {
        link.arg("-static");
    }
    let out = link.output().unwrap();
    assert!(out.status.success(), "{cc} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let out = if cross {
        require("qemu-aarch64");
        Command::new("qemu-aarch64").arg("./driver").current_dir(dir).output().unwrap()
    } else {
        Command::new("./driver").current_dir(dir).output().unwrap()
    };
    assert!(out.status.success(), "{}: driver exited with {:?}: {}", dir.display(), out.status.code(), String::from_utf8_lossy(&out.stderr));
    artifact
        .outputs
        .iter()
        .enumerate()
        .map(|(i, info)| {
            let seq = std::fs::read(dir.join(format!("seq{i}.bin"))).unwrap();
            let par = std::fs::read(dir.join(format!("par{i}.bin"))).unwrap();
            assert!(seq == par, "{}: output {i}: NAME_run and NAME_run_parallel differ", dir.display());
            Tensor::from_bytes(info.desc.clone(), seq).unwrap()
        })
        .collect()
}

/// The targets the tests link for: every x86-64 level this machine runs,
/// and aarch64.
fn targets() -> Vec<Target> {
    let mut t = Target::host_levels();
    t.push(Target::aarch64());
    t
}

/// Seeded inputs in [-1, 1) (small integers for integer inputs).
fn inputs_for(graph: &Graph, seed: u64) -> Vec<Tensor> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    };
    graph
        .inputs()
        .iter()
        .map(|&id| {
            let desc = graph.desc(id).clone();
            let n = desc.shape.element_count();
            let values: Vec<f32> = (0..n).map(|_| next()).collect();
            match desc.data_type {
                DataType::Float32 => Tensor::from_f32(desc.shape.clone(), &values).unwrap(),
                t => {
                    let bytes = values
                        .iter()
                        .flat_map(|v| {
                            let i = (v * 4.0) as i64;
                            i.to_le_bytes()[..t.byte_size()].to_vec()
                        })
                        .collect();
                    Tensor::from_bytes(desc, bytes).unwrap()
                }
            }
        })
        .collect()
}

fn feeds<'a>(graph: &'a Graph, inputs: &'a [Tensor]) -> Vec<(&'a str, &'a Tensor)> {
    graph.inputs().iter().zip(inputs).map(|(&id, t)| (graph.input_name(id).unwrap(), t)).collect()
}

/// Compiles `graph` for every target, runs it linked, and compares with
/// `reference` (and with the JIT, bitwise, on the host's own level).
fn check_graph(name: &str, graph: &Graph, inputs: &[Tensor], reference: &[Tensor], tolerance: Tolerance) {
    let cpu = Context::new(ContextOptions { backend: Backend::Cpu, ..Default::default() }).unwrap();
    let jit = cpu.compute(&cpu.compile(graph.clone()).unwrap(), &feeds(graph, inputs)).unwrap();
    for target in targets() {
        let options = AotOptions { target, name: "model".into(), optimize: true };
        let artifact = aot::compile(graph, &options).unwrap_or_else(|e| panic!("{name} for {target}: {e}"));
        let dir = work_dir(&format!("{name}-{target}"));
        let got = run_linked(&artifact, &dir, inputs);
        assert_eq!(got.len(), reference.len());
        for (i, (g, want)) in got.iter().zip(reference).enumerate() {
            compare(g, want, tolerance).unwrap_or_else(|e| panic!("{name} on {target}: output {i}: {e}"));
            if target == Target::host() {
                assert!(g.bytes() == jit[i].1.bytes(), "{name}: output {i}: the AOT artifact and the JIT differ on {target}");
            }
        }
        println!("{name}: {target}: {} outputs match", got.len());
    }
}

/// A small graph checked against the interpreter.
fn check_small(name: &str, graph: &Graph) {
    let inputs = inputs_for(graph, 7);
    let reference: Vec<Tensor> =
        kiln::interp::run(graph, &feeds(graph, &inputs)).unwrap_or_else(|e| panic!("{name}: interpreter: {e}"));
    check_graph(name, graph, &inputs, &reference, Tolerance { rtol: 1e-4, atol: 1e-5 });
}

fn repo(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path)
}

#[test]
fn example_and_golden_graphs_match_the_interpreter() {
    let mut files = vec![repo("examples/small_cnn.webnn")];
    let mut golden: Vec<PathBuf> = std::fs::read_dir(repo("tests/golden"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "webnn"))
        .collect();
    golden.sort();
    files.extend(golden);
    for file in files {
        let graph = kiln::load_graph(&file, &Default::default()).unwrap();
        check_small(&file.file_stem().unwrap().to_string_lossy(), &graph);
    }
}

/// sin and cos on arguments past the inline range call libm's `sin`/`cos`
/// (the object imports them); tan and erf run inline.
#[test]
fn large_trigonometric_arguments_call_the_c_library() {
    let b = GraphBuilder::new();
    let x = b.input("x", OperandDescriptor::new(DataType::Float32, [3, 17])).unwrap();
    let scale = b.constant_f32([1], &[3.0e6]).unwrap();
    let big = b.mul(x, scale).unwrap();
    let y = b.add(b.sin(big).unwrap(), b.cos(big).unwrap()).unwrap();
    let z = b.add(b.tan(x).unwrap(), b.erf(x).unwrap()).unwrap();
    let graph = b.build(&[("y", y), ("z", z)]).unwrap();
    check_small("trig", &graph);
}

/// The operators lowered to position-comparing Reduces, scans, block-wise
/// Maps and guarded or affine copies (reverse, tile, triangular,
/// cumulativeSum, argMax/argMin, sign, isNaN, isInfinite,
/// quantize/dequantizeLinear, the gathers and scatters), on every level.
#[test]
fn the_indexing_and_scan_operators_match_the_interpreter() {
    use kiln::{ArgOp, Number};
    let b = GraphBuilder::new();
    let x = b.input("x", OperandDescriptor::new(DataType::Float32, [2, 3, 5])).unwrap();
    let idx = |shape: &[u32], values: &[i32]| {
        let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        b.constant(OperandDescriptor::new(DataType::Int32, shape), bytes).unwrap()
    };
    let mut outputs = vec![
        ("reverse", b.reverse(x, Some(vec![0, 2])).unwrap()),
        ("tile", b.tile(x, [2, 1, 3]).unwrap()),
        ("triangular", b.triangular(x, false, 1).unwrap()),
        ("cumulative_sum", b.cumulative_sum(x, 2, true, true).unwrap()),
        ("arg_max", b.arg_min_max(ArgOp::Max, x, 1, false, DataType::Int32).unwrap()),
        ("arg_min", b.arg_min_max(ArgOp::Min, x, 2, true, DataType::Int64).unwrap()),
        ("sign", b.sign(x).unwrap()),
        ("is_nan", b.is_nan(x).unwrap()),
        ("is_infinite", b.is_infinite(x).unwrap()),
    ];
    let gi = idx(&[2, 2, 5], &[0, 1, 2, -1, 9, 2, 2, 1, 0, 0, -3, 0, 1, 2, 1, 1, 1, 0, 0, 2]);
    outputs.push(("gather_elements", b.gather_elements(x, gi, 1).unwrap()));
    let tuples = idx(&[3, 2], &[1, 2, 0, -1, 5, 0]);
    outputs.push(("gather_nd", b.gather_nd(x, tuples).unwrap()));
    let updates = b.constant_f32([2, 2, 5], &(0..20).map(|i| i as f32 * 0.5 - 4.0).collect::<Vec<_>>()).unwrap();
    outputs.push(("scatter_elements", b.scatter_elements(x, gi, updates, 1).unwrap()));
    let rows = idx(&[2, 2], &[1, 2, 0, 1]);
    let slices = b.constant_f32([2, 5], &(0..10).map(|i| i as f32 - 5.0).collect::<Vec<_>>()).unwrap();
    outputs.push(("scatter_nd", b.scatter_nd(x, rows, slices).unwrap()));
    let scale = b.constant_f32([1, 3, 1], &[0.01, 0.02, 0.005]).unwrap();
    let zero = b.constant(OperandDescriptor::new(DataType::Uint8, [1, 3, 1]), vec![128, 100, 140]).unwrap();
    let q = b.quantize_linear(x, scale, zero).unwrap();
    outputs.push(("quantized", q));
    outputs.push(("dequantized", b.dequantize_linear(q, scale, zero).unwrap()));
    let two = b.constant_scalar(DataType::Float32, Number::Float(2.0)).unwrap();
    outputs.push(("scaled_scan", b.mul(b.cumulative_sum(x, 0, false, false).unwrap(), two).unwrap()));
    let graph = b.build(&outputs).unwrap();
    check_small("indexing", &graph);
}

/// Real models against ONNX Runtime's outputs (fetched by
/// scripts/fetch_onnx_data.sh).
fn check_model(name: &str) {
    let dir = std::env::var_os("KILN_ONNX_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo("target/onnx-data"))
        .join("models")
        .join(name);
    assert!(dir.is_dir(), "{} is missing: run scripts/fetch_onnx_data.sh", dir.display());
    let set = dir.join("test_data_set_0");
    let inputs = read_tensors(&set, "input").unwrap();
    let expected: Vec<Tensor> = read_tensors(&set, "output").unwrap().into_iter().map(|(_, t)| t).collect();
    let model = kiln::frontend::onnx::OnnxModel::open(dir.join("model.onnx")).unwrap();
    let mut options = kiln::LoadOptions::default();
    for ((_, t), name) in inputs.iter().zip(model.input_names()) {
        options.shapes.insert(name.to_string(), t.shape().dims().to_vec());
    }
    let graph = kiln::load_graph(dir.join("model.onnx"), &options).unwrap();
    let inputs: Vec<Tensor> = inputs.into_iter().map(|(_, t)| t).collect();
    check_graph(name, &graph, &inputs, &expected, Tolerance::default());
    // The interpreter agrees with ONNX Runtime's outputs too, so the
    // artifacts match both references.
    let interp = kiln::interp::run(&graph, &feeds(&graph, &inputs)).unwrap();
    for (i, (got, want)) in interp.iter().zip(&expected).enumerate() {
        compare(got, want, Tolerance::default()).unwrap_or_else(|e| panic!("{name}: interpreter output {i}: {e}"));
    }
}

#[test]
fn mobilenetv2_links_and_matches_onnx_runtime() {
    check_model("mobilenetv2");
}

#[test]
fn squeezenet_links_and_matches_onnx_runtime() {
    check_model("squeezenet1.1");
}

#[test]
fn ppocr_models_link_and_match_onnx_runtime() {
    for name in ["ppocr_cls", "ppocr_det", "ppocr_rec"] {
        check_model(name);
    }
}

/// The README's C example, compiled by the `kiln compile` command and
/// linked by the C compiler with the object and with the shared library,
/// against the interpreter.
#[test]
fn readme_c_example_runs_and_matches_the_interpreter() {
    let source = std::fs::read_to_string(repo("examples/aot-c/main.c")).unwrap();
    let readme = std::fs::read_to_string(repo("README.md")).unwrap();
    assert!(readme.contains(&source), "README.md shows examples/aot-c/main.c verbatim");
    let dir = work_dir("readme-c");
    let out = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["compile", repo("examples/small_cnn.webnn").to_str().unwrap(), "--emit", "obj,header,so", "-o"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "kiln compile: {}", String::from_utf8_lossy(&out.stderr));
    let graph = kiln::load_graph(repo("examples/small_cnn.webnn"), &Default::default()).unwrap();
    let x: Vec<f32> = (0..3 * 32 * 32).map(|i| (i * 37 % 101) as f32 / 101.0 - 0.5).collect();
    let x = Tensor::from_f32([1, 3, 32, 32], &x).unwrap();
    let want = kiln::interp::run(&graph, &[("x", &x)]).unwrap()[0].to_f32_vec();
    // Linked with the object, and with the shared library.
    let rpath = format!("-Wl,-rpath,{}", dir.display());
    for (exe, link) in [("static", vec!["small_cnn.o", "-lm"]), ("shared", vec!["-L.", "-lsmall_cnn", rpath.as_str()])] {
        let out = Command::new("cc")
            .current_dir(&dir)
            .args(["-O2", "-Wall", "-Werror", "-I."])
            .arg(repo("examples/aot-c/main.c"))
            .args(link)
            .args(["-o", exe])
            .output()
            .unwrap();
        assert!(out.status.success(), "cc ({exe}): {}", String::from_utf8_lossy(&out.stderr));
        let out = Command::new(dir.join(exe)).output().unwrap();
        assert!(out.status.success(), "the {exe} example exited with {:?}", out.status.code());
        let got: Vec<f32> = String::from_utf8(out.stdout).unwrap().lines().map(|l| l.parse().unwrap()).collect();
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() <= 1e-5 + 1e-4 * w.abs(), "{exe}: {got:?} vs {want:?}");
        }
    }
}

/// The README's Rust excerpt is what `examples/aot-link` runs: each code
/// line of the block appears, in order, in the file its comment names
/// (the crate itself is built and tested by the workspace's tests).
#[test]
fn readme_rust_example_is_the_aot_link_crate() {
    let readme = std::fs::read_to_string(repo("README.md")).unwrap();
    let start = readme.find("```rs\n// build.rs").expect("README.md has the aot-link excerpt");
    let block = &readme[start + "```rs\n".len()..];
    let block = &block[..block.find("```").unwrap()];
    // The file a `// FILE: ...` line names, and how far into it the
    // excerpt has been found.
    let mut current: Option<(String, usize)> = None;
    let mut checked = 0;
    for line in block.lines() {
        if let Some(comment) = line.strip_prefix("// ") {
            let file = comment.split(':').next().unwrap();
            current = Some((std::fs::read_to_string(repo(&format!("examples/aot-link/{file}"))).unwrap(), 0));
            continue;
        }
        let (source, at) = current.as_mut().expect("the excerpt starts with a `// FILE: ...` line");
        let found = source[*at..].find(line).unwrap_or_else(|| panic!("README's `{line}` is not (in this order) in the aot-link crate"));
        *at += found + line.len();
        checked += 1;
    }
    assert!(checked >= 6, "{checked} lines checked");
}

/// WPT conformance cases of convolution, matmul and normalisation
/// operators, linked and run on this machine's level and under qemu for
/// aarch64, judged as WPT judges them.
#[test]
fn conformance_cases_pass_linked() {
    use kiln_harness::conformance::{build_case, bundled_exclusions_file, bundled_vectors_dir, check_output, load_file, Exclusions};
    let exclusions = Exclusions::load(&bundled_exclusions_file()).unwrap();
    let mut passed = 0;
    for op in ["conv2d", "convTranspose2d", "matmul", "softmax", "batchNormalization", "layerNormalization"] {
        for case in load_file(&bundled_vectors_dir().join(format!("{op}.json"))).unwrap() {
            if exclusions.reason(&case.name).is_some() {
                continue;
            }
            let built = build_case(&case).unwrap_or_else(|e| panic!("{}: {e}", case.name));
            let graph = &built.graph;
            let inputs: Vec<Tensor> = graph
                .inputs()
                .iter()
                .map(|&id| {
                    let name = graph.input_name(id).unwrap();
                    built.feeds.iter().find(|(n, _)| n == name).map(|(_, t)| t.clone()).unwrap()
                })
                .collect();
            for target in [Target::host(), Target::aarch64()] {
                let options = AotOptions { target, name: "model".into(), optimize: true };
                let artifact = aot::compile(graph, &options).unwrap_or_else(|e| panic!("{} for {target}: {e}", case.name));
                let dir = work_dir(&format!("wpt-{target}"));
                let got = run_linked(&artifact, &dir, &inputs);
                for (info, actual) in artifact.outputs.iter().zip(&got) {
                    let expected = &case.expected[&info.name];
                    check_output(&info.name, expected, actual, case.tolerance)
                        .unwrap_or_else(|e| panic!("{} on {target}: {e:?}", case.name));
                }
                passed += 1;
            }
        }
    }
    println!("{passed} case x target runs passed");
    assert!(passed >= 300, "only {passed} runs: cases went missing");
}

#[test]
fn same_model_same_bytes() {
    let graph = kiln::load_graph(repo("tests/golden/conv_batchnorm.webnn"), &Default::default()).unwrap();
    for target in targets() {
        let options = AotOptions { target, name: "model".into(), optimize: true };
        let a = aot::compile(&graph, &options).unwrap();
        let b = aot::compile(&graph, &options).unwrap();
        assert!(a.object() == b.object(), "{target}: two compilations differ");
        assert_eq!(a.header(), b.header());
    }
}

#[test]
fn host_kernels_are_refused_with_their_operators() {
    let b = GraphBuilder::new();
    let x = b.input("x", OperandDescriptor::new(DataType::Int32, [4])).unwrap();
    let y = b.input("y", OperandDescriptor::new(DataType::Int32, [4])).unwrap();
    let sum = b.add(x, y).unwrap();
    let product = b.mul(sum, y).unwrap();
    let graph = b.build(&[("sum", sum), ("product", product)]).unwrap();
    let err = aot::compile(&graph, &AotOptions::default()).err().expect("refused");
    let AotError::HostKernels(list) = &err else { panic!("{err}") };
    assert_eq!(list.len(), 2, "{err}");
    assert!(list[0].starts_with("add") && list[1].starts_with("mul"), "{err}");
}

#[test]
fn bad_names_and_targets_are_clear_errors() {
    let graph = kiln::load_graph(repo("examples/small_cnn.webnn"), &Default::default()).unwrap();
    for name in ["9lives", "_stdint", "with space", ""] {
        let err = aot::compile(&graph, &AotOptions { name: name.into(), ..Default::default() }).err().expect("refused");
        assert!(err.to_string().contains("not a C identifier"), "{name}: {err}");
    }
    for bad in [
        "riscv64",
        "x86_64+sve",
        "aarch64+avx2",
        "x86_64-pc-windows-msvc",
        "nonsense-target",
        "aarch64_be-unknown-linux-gnu",
        "x86_64-unknown-linux-gnux32",
    ] {
        let err = bad.parse::<Target>().err().unwrap_or_else(|| panic!("{bad} accepted"));
        assert!(err.to_string().contains("known targets"), "{bad}: {err}");
    }
    for (good, want) in [
        ("x86_64-unknown-linux-gnu+avx2", "x86_64+avx2"),
        ("aarch64-unknown-linux-gnu", "aarch64"),
        ("x86_64+avx2+avx512", "x86_64+avx512"),
    ] {
        assert_eq!(good.parse::<Target>().unwrap().to_string(), want);
    }
}
