//! The `kiln` command line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

mod compare;
mod progress;
use progress::Progress;
use kiln::{Backend, Context, ContextOptions, Graph, OperandKind, Tensor};

#[derive(Parser)]
#[command(name = "kiln", version, about = "A graph compiler for neural networks in the W3C WebNN model")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a model on .npy inputs and write one .npy per output.
    Run {
        /// The model file (.onnx, .tflite or .webnn).
        model: PathBuf,
        /// Bind a symbolic input shape: NAME=D0xD1x... for an input, or
        /// NAME=N for a named symbolic dimension (repeatable; .onnx models).
        #[arg(long = "shape", value_name = "NAME=DIMS")]
        shapes: Vec<String>,
        /// An input as NAME=FILE.npy; repeat for each graph input.
        #[arg(long = "input", value_name = "NAME=FILE.npy")]
        inputs: Vec<String>,
        /// The folder for the outputs: each is written to `DIR/<name>.npy`,
        /// the name made a safe, distinct file name (`a/b:0` -> `a_b_0.npy`).
        #[arg(long, value_name = "DIR", default_value = ".")]
        output_dir: PathBuf,
        /// Write output NAME to FILE instead (repeatable); with a model of
        /// one output, `--output FILE` alone.
        #[arg(long = "output", value_name = "NAME=FILE")]
        outputs: Vec<String>,
        /// The backend that runs the graph: cpu, interp, kernels or gpu.
        #[arg(long, default_value = "cpu")]
        backend: String,
    },
    /// Describe a model: inputs, outputs, operators, parameters, FLOPs.
    Info {
        /// The model file (.onnx, .tflite or .webnn).
        model: PathBuf,
        /// Bind a symbolic input shape: NAME=D0xD1x... for an input, or
        /// NAME=N for a named symbolic dimension (repeatable; .onnx models).
        #[arg(long = "shape", value_name = "NAME=DIMS")]
        shapes: Vec<String>,
    },
    /// Print the operator support table (operator x backend).
    Ops {
        /// Print WebNN's opSupportLimits instead, as JSON: per operator and
        /// operand, the data types and the rank range accepted.
        #[arg(long)]
        json: bool,
    },
    /// Measure compile time and latency of a model on random inputs.
    Bench {
        /// The model file (.onnx, .tflite or .webnn).
        model: PathBuf,
        /// Bind a symbolic input shape: NAME=D0xD1x... for an input, or
        /// NAME=N for a named symbolic dimension (repeatable; .onnx models).
        #[arg(long = "shape", value_name = "NAME=DIMS")]
        shapes: Vec<String>,
        /// The backend to measure: cpu, interp, kernels or gpu.
        #[arg(long, default_value = "cpu")]
        backend: String,
        /// Worker threads (default: all cores).
        #[arg(long)]
        threads: Option<usize>,
        /// Timed runs after one warm-up run.
        #[arg(long, default_value_t = 20)]
        runs: usize,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
        /// Also time every kernel and list the slowest (cpu backend).
        #[arg(long)]
        profile: bool,
        /// With --profile: how many of the slowest kernels to list.
        #[arg(long, value_name = "N", default_value_t = 15, requires = "profile")]
        top: usize,
        /// Compile the graph as given: no constant folding, no rewrites.
        #[arg(long)]
        no_optimize: bool,
        /// Also time a reference runtime on the same file, inputs and thread
        /// count, interleaved with kiln in 5 rounds: onnxruntime (.onnx) or
        /// litert (.tflite), run by a Python that imports it.
        #[arg(long, value_name = "ENGINE", conflicts_with = "profile")]
        compare: Option<compare::Engine>,
        /// The Python interpreter for --compare (default: $KILN_PYTHON, else
        /// python3 or target/bench-venv/bin/python, whichever imports it).
        #[arg(long, value_name = "PATH", requires = "compare")]
        python: Option<PathBuf>,
    },
    /// Show what the compiler did to a model: operators before and after the
    /// graph passes, rewrite rules fired, fusions, pass times, and the
    /// operators every kernel computes.
    Explain {
        /// The model file (.onnx, .tflite or .webnn).
        model: PathBuf,
        /// Bind a symbolic input shape: NAME=D0xD1x... for an input, or
        /// NAME=N for a named symbolic dimension (repeatable; .onnx models).
        #[arg(long = "shape", value_name = "NAME=DIMS")]
        shapes: Vec<String>,
        /// Code generation target whose pipeline to explain: native, x86_64,
        /// x86_64+avx2 or x86_64+avx512.
        #[arg(long, default_value = "native")]
        target: String,
        /// Print the explanation as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print a stage of the compilation in its stable text form.
    Emit {
        /// The model file (.onnx, .tflite or .webnn).
        model: PathBuf,
        /// Bind a symbolic input shape: NAME=D0xD1x... for an input, or
        /// NAME=N for a named symbolic dimension (repeatable; .onnx models).
        #[arg(long = "shape", value_name = "NAME=DIMS")]
        shapes: Vec<String>,
        /// Which stage to print.
        #[arg(long, value_enum, default_value = "graph")]
        stage: Stage,
        /// Code generation target for the opt, kernels, clif and asm stages (the
        /// lowering depends on it: direct convolutions on AVX-512):
        /// native, x86_64, x86_64+avx2 or x86_64+avx512 (any, whatever the host).
        #[arg(long, default_value = "native")]
        target: String,
        /// Print the graph or the kernel program right after this pass instead
        /// of a stage (the passes, in order: fold, rewrite, lower, fuse, views, plan).
        #[arg(long, value_name = "PASS", conflicts_with = "stage")]
        dump_after: Option<String>,
    },
    /// Compile a model ahead of time into an object file and a C header
    /// (docs/aot.md): link NAME.o into any program, no kiln runtime needed.
    Compile {
        /// The model file (.onnx, .tflite or .webnn).
        model: PathBuf,
        /// Bind a symbolic input shape: NAME=D0xD1x... for an input, or
        /// NAME=N for a named symbolic dimension (repeatable; .onnx models).
        #[arg(long = "shape", value_name = "NAME=DIMS")]
        shapes: Vec<String>,
        /// native, x86_64, x86_64+avx2, x86_64+avx512, aarch64, a Linux
        /// triple with +features (x86_64-unknown-linux-gnu+avx2), or wgsl
        /// (a WebGPU bundle: shaders, manifest, weights and kiln.js).
        #[arg(long, default_value = "native")]
        target: String,
        /// The folder to write into.
        #[arg(short = 'o', long = "output", value_name = "DIR")]
        output: PathBuf,
        /// The C identifier that prefixes the symbols and the file names
        /// (default: the model file's name, made an identifier).
        #[arg(long)]
        name: Option<String>,
        /// Which files to write, comma-separated: obj (NAME.o), header (NAME.h),
        /// so (libNAME.so, linked by the C compiler).
        #[arg(long, value_delimiter = ',', default_value = "obj,header")]
        emit: Vec<String>,
        /// Compile the graph as given: no constant folding, no rewrites.
        #[arg(long)]
        no_optimize: bool,
    },
    /// Run WebNN conformance test vectors (WPT JSON files or folders).
    Conformance {
        /// JSON files or folders of them.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// The backend under test.
        #[arg(long, default_value = "interp")]
        backend: String,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// List every failing case with its reason.
        #[arg(long)]
        verbose: bool,
        /// A list of cases not to run (`name<TAB>reason` lines), e.g.
        /// tests/data/wpt-excluded.txt.
        #[arg(long, value_name = "FILE")]
        exclusions: Option<PathBuf>,
    },
    /// Run ONNX backend tests: folders holding model.onnx and
    /// test_data_set_N/{input,output}_K.pb (the onnx package's node tests).
    OnnxTests {
        /// A folder of case folders (e.g. target/onnx-data/node).
        root: PathBuf,
        /// Only cases whose folder name contains this.
        #[arg(long, default_value = "")]
        filter: String,
        /// The backend under test.
        #[arg(long, default_value = "cpu")]
        backend: String,
        /// Print every case (default: failures only).
        #[arg(long)]
        verbose: bool,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Stage {
    /// The validated WebNN graph, as `.webnn` text.
    Graph,
    /// The graph after the graph passes (constant folding, rewrites), as
    /// `.webnn` text.
    Opt,
    /// The lowered, fused, memory-planned kernel program (the kernel IR's
    /// text form).
    Kernels,
    /// Cranelift IR of every kernel, before optimisation.
    Clif,
    /// Machine code of every kernel.
    Asm,
    /// WGSL compute shaders (the gpu backend; WebGPU's default limits).
    Wgsl,
}

type CliResult = Result<(), Box<dyn std::error::Error>>;

/// Restores the default action of SIGPIPE, so that `kiln ... | head` ends
/// quietly when the reader goes away instead of failing on a write (Rust
/// ignores SIGPIPE by default, which turns `println!` into a panic).
#[cfg(unix)]
fn default_sigpipe() {
    unsafe extern "C" {
        fn signal(signum: i32, handler: usize) -> usize;
    }
    const SIGPIPE: i32 = 13;
    const SIG_DFL: usize = 0;
    // SAFETY: `signal` is the C library's; installing the default action
    // for SIGPIPE before any thread starts has no other effect.
    unsafe {
        signal(SIGPIPE, SIG_DFL);
    }
}

fn main() -> ExitCode {
    #[cfg(unix)]
    default_sigpipe();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run { model, shapes, inputs, output_dir, outputs, backend } => {
            run(&model, &shapes, &inputs, &output_dir, &outputs, &backend)
        }
        Command::Info { model, shapes } => info(&model, &shapes),
        Command::Ops { json } => {
            if json {
                println!("{}", serde_json::to_string_pretty(&limits_json()).expect("JSON values serialize"));
            } else {
                ops();
            }
            Ok(())
        }
        Command::Explain { model, shapes, target, json } => explain(&model, &shapes, &target, json),
        Command::Emit { model, shapes, stage, target, dump_after } => match dump_after {
            Some(pass) => dump_after_pass(&model, &shapes, &target, &pass),
            None => emit(&model, &shapes, stage, &target),
        },
        Command::Bench { model, shapes, backend, threads, runs, json, profile, top, no_optimize, compare, python } => {
            let options = BenchOptions { threads, runs, json, profile: profile.then_some(top), optimize: !no_optimize };
            match compare {
                Some(engine) => bench_compare(&model, &shapes, &backend, &options, engine, python.as_deref()),
                None => bench(&model, &shapes, &backend, &options),
            }
        }
        Command::Compile { model, shapes, target, output, name, emit, no_optimize } => {
            compile(&model, &shapes, &target, &output, name, &emit, !no_optimize)
        }
        Command::Conformance { paths, backend, json, verbose, exclusions } => {
            conformance(&paths, &backend, json, verbose, exclusions.as_deref())
        }
        Command::OnnxTests { root, filter, backend, verbose } => onnx_tests(&root, &filter, &backend, verbose),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `kiln compile`: the object file, header and shared library of a model.
fn compile(
    model: &Path,
    shapes: &[String],
    target: &str,
    output: &Path,
    name: Option<String>,
    emit: &[String],
    optimize: bool,
) -> Result<(), Box<dyn std::error::Error>> {
    use std::time::Instant;
    let name = name.unwrap_or_else(|| identifier(model));
    if target == "wgsl" {
        let start = Instant::now();
        let graph = load(model, shapes)?;
        let progress = Progress::step(format!("compiling {} operators for WebGPU", graph.nodes().len()));
        let bundle = kiln::web::compile(&graph, &kiln::web::WebOptions { name, optimize })?;
        drop(progress);
        let written = bundle.write(output)?;
        eprintln!(
            "compiled {} for WebGPU in {:.0} ms: {} files",
            model.display(),
            start.elapsed().as_secs_f64() * 1e3,
            written.len()
        );
        for path in written {
            println!("{}", path.display());
        }
        return Ok(());
    }
    let emit = emit.iter().map(|e| e.parse()).collect::<Result<Vec<kiln::aot::Emit>, _>>()?;
    let target = target.parse()?;
    let start = Instant::now();
    let graph = load(model, shapes)?;
    let loaded = start.elapsed();
    let progress = Progress::step(format!("compiling {} operators for {target}", graph.nodes().len()));
    let artifact = kiln::aot::compile(&graph, &kiln::aot::AotOptions { target, name, optimize })?;
    drop(progress);
    let compiled = start.elapsed() - loaded;
    let written = artifact.write(output, &emit)?;
    eprintln!(
        "compiled {} for {target} in {:.0} ms (load {:.0} ms): {} bytes of code and data, scratch {} bytes",
        model.display(),
        compiled.as_secs_f64() * 1e3,
        loaded.as_secs_f64() * 1e3,
        artifact.object().len(),
        artifact.scratch_bytes(1)
    );
    for path in written {
        println!("{}", path.display());
    }
    Ok(())
}

/// A C identifier from a model file's name: `mobilenet-v2.onnx` ->
/// `mobilenet_v2`, `2stage.onnx` -> `model_2stage`.
fn identifier(model: &Path) -> String {
    let stem = model.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let id: String = stem.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).collect();
    if id.starts_with(|c: char| c.is_ascii_alphabetic()) { id } else { format!("model_{id}") }
}

/// Loads a model with the `--shape` bindings.
fn load(model: &Path, shapes: &[String]) -> Result<Graph, Box<dyn std::error::Error>> {
    let options = load_options(shapes)?;
    let _progress = Progress::step(format!("loading {}", model.display()));
    Ok(kiln::load_graph(model, &options)?)
}

/// Compiles `graph` on `ctx`, with a spinner on a terminal.
fn compile_graph(ctx: &Context, graph: Graph) -> Result<kiln::CompiledGraph, kiln::RuntimeError> {
    let _progress = Progress::step(format!("compiling {} operators", graph.nodes().len()));
    ctx.compile(graph)
}

/// The `--shape` bindings as load options.
fn load_options(shapes: &[String]) -> Result<kiln::LoadOptions, Box<dyn std::error::Error>> {
    let mut options = kiln::LoadOptions::default();
    for s in shapes {
        options.parse_shape(s)?;
    }
    Ok(options)
}

fn context(backend: &str) -> Result<Context, Box<dyn std::error::Error>> {
    let backend: Backend = backend.parse()?;
    Ok(Context::new(ContextOptions { backend, ..Default::default() })?)
}

/// Splits `NAME=VALUE` where NAME is one of `names` (names may hold `=`
/// themselves: the first split whose left side is a name wins), else at the
/// first `=`; `None` without any `=`.
fn split_named<'a>(spec: &'a str, names: &[&str]) -> Option<(&'a str, &'a str)> {
    let splits = || spec.match_indices('=').map(|(i, _)| (&spec[..i], &spec[i + 1..]));
    splits().find(|(name, _)| names.contains(name)).or_else(|| splits().next())
}

/// The graph's inputs as `\n  NAME: TYPE[SHAPE]` lines.
fn list_inputs(graph: &Graph) -> String {
    graph.inputs().iter().map(|&id| format!("\n  {}: {}", graph.input_name(id).unwrap_or_default(), graph.desc(id))).collect()
}

/// The `--input NAME=FILE.npy` arguments of `kiln run` as (name, file),
/// checked against the graph before any file is read: every NAME is an
/// input (else the inputs are listed), none is given twice, and every
/// input is given (else all missing ones are listed with their types).
fn input_files<'a>(graph: &Graph, specs: &'a [String]) -> Result<Vec<(&'a str, &'a str)>, Box<dyn std::error::Error>> {
    let names: Vec<&str> = graph.inputs().iter().map(|&id| graph.input_name(id).unwrap_or_default()).collect();
    let mut given: Vec<(&str, &str)> = Vec::new();
    for spec in specs {
        let Some((name, file)) = split_named(spec, &names) else {
            return Err(format!("--input `{spec}`: expected NAME=FILE.npy").into());
        };
        if !names.contains(&name) {
            return Err(format!("--input {name}: the model has no input `{name}`; its inputs:{}", list_inputs(graph)).into());
        }
        if given.iter().any(|(n, _)| *n == name) {
            return Err(format!("--input {name}: given more than once").into());
        }
        given.push((name, file));
    }
    let missing: String = graph
        .inputs()
        .iter()
        .filter_map(|&id| {
            let name = graph.input_name(id).unwrap_or_default();
            (!given.iter().any(|(n, _)| *n == name)).then(|| format!("\n  {name}: {}", graph.desc(id)))
        })
        .collect();
    if !missing.is_empty() {
        return Err(format!("the model needs these inputs too (give each as --input NAME=FILE.npy):{missing}").into());
    }
    Ok(given)
}

fn read_input(name: &str, file: &str) -> Result<(String, Tensor), Box<dyn std::error::Error>> {
    let bytes = std::fs::read(file).map_err(|e| format!("--input {name}: {file}: {e}"))?;
    let tensor = kiln::npy::parse(&bytes).map_err(|e| format!("--input {name}: {file}: {e}"))?;
    Ok((name.to_string(), tensor))
}

/// Where `kiln run` writes each output, in the graph's output order: the
/// `--output NAME=FILE` paths as given (`--output FILE` for a model of one
/// output), every other output in `dir` under its name made a safe,
/// distinct file name ([`kiln::output_files`]) that reuses no explicit
/// FILE's name.
fn output_paths(graph: &Graph, dir: &Path, specs: &[String]) -> Result<Vec<(String, PathBuf)>, Box<dyn std::error::Error>> {
    let names: Vec<&str> = graph.outputs().iter().map(|(n, _)| n.as_str()).collect();
    let listing = || names.iter().map(|n| format!("\n  {n}")).collect::<String>();
    let mut explicit: Vec<(&str, PathBuf)> = Vec::new();
    for spec in specs {
        let (name, file) = match split_named(spec, &names) {
            Some((name, file)) if names.contains(&name) => (name, file),
            Some((name, _)) => {
                return Err(format!("--output {name}: the model has no output `{name}`; its outputs:{}", listing()).into());
            }
            None if names.len() == 1 => (names[0], spec.as_str()),
            None => {
                let n = names.len();
                return Err(format!("--output `{spec}`: expected NAME=FILE (the model has {n} outputs):{}", listing()).into());
            }
        };
        if file.is_empty() {
            return Err(format!("--output {name}: the file name is empty").into());
        }
        if explicit.iter().any(|(n, _)| *n == name) {
            return Err(format!("--output {name}: given more than once").into());
        }
        if let Some((other, _)) = explicit.iter().find(|(_, f)| f == Path::new(file)) {
            return Err(format!("--output {name}: {file} is already the file of output `{other}`").into());
        }
        explicit.push((name, PathBuf::from(file)));
    }
    let reserved: Vec<String> =
        explicit.iter().filter_map(|(_, f)| f.file_name()).map(|f| f.to_string_lossy().into_owned()).collect();
    let reserved: Vec<&str> = reserved.iter().map(String::as_str).collect();
    let rest: Vec<&str> = names.iter().copied().filter(|n| !explicit.iter().any(|(e, _)| e == n)).collect();
    let mut generated = rest.iter().zip(kiln::output_files::file_names(&rest, &reserved));
    Ok(names
        .iter()
        .map(|&name| {
            let path = match explicit.iter().find(|(n, _)| *n == name) {
                Some((_, file)) => file.clone(),
                None => generated.next().map(|(_, file)| dir.join(file)).unwrap_or_default(),
            };
            (name.to_string(), path)
        })
        .collect())
}

/// `kiln run`: checks the `--input` and `--output` arguments against the
/// graph, reads the inputs, compiles, runs, writes every output and lists
/// `NAME: TYPE[SHAPE] -> FILE` on stdout.
fn run(model: &Path, shapes: &[String], inputs: &[String], output_dir: &Path, outputs: &[String], backend: &str) -> CliResult {
    let ctx = context(backend)?;
    let graph = load(model, shapes)?;
    let files = input_files(&graph, inputs)?;
    let paths = output_paths(&graph, output_dir, outputs)?;
    let feeds = files.iter().map(|(name, file)| read_input(name, file)).collect::<Result<Vec<_>, _>>()?;
    let compiled = compile_graph(&ctx, graph)?;
    let feed_refs: Vec<(&str, &Tensor)> = feeds.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let results = ctx.compute(&compiled, &feed_refs)?;
    for (name, path) in &paths {
        let tensor = results.iter().find(|(n, _)| n == name).map(|(_, t)| t).ok_or_else(|| format!("output `{name}` was not computed"))?;
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        }
        std::fs::write(path, kiln::npy::to_bytes(tensor)).map_err(|e| format!("output {name}: {}: {e}", path.display()))?;
        println!("{name}: {} -> {}", tensor.desc(), path.display());
    }
    Ok(())
}

/// Deterministic pseudo-random inputs for every graph input (values in
/// [-1, 1) for floats, small non-negative integers otherwise).
fn random_inputs(graph: &Graph) -> Result<Vec<(String, Tensor)>, Box<dyn std::error::Error>> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    graph
        .inputs()
        .iter()
        .map(|&id| {
            let desc = graph.desc(id).clone();
            let n = desc.shape.element_count();
            let values = if desc.data_type.is_float() {
                kiln::Values::Float((0..n).map(|_| (next() >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0).collect())
            } else {
                kiln::Values::Int((0..n).map(|_| (next() % 4) as i128).collect())
            };
            let name = graph.input_name(id).unwrap_or_default().to_string();
            Ok((name, Tensor::from_values(desc, &values)?))
        })
        .collect()
}

/// How `kiln bench` measures.
struct BenchOptions {
    threads: Option<usize>,
    runs: usize,
    json: bool,
    /// Also time every kernel and list that many of the slowest.
    profile: Option<usize>,
    /// Run the graph passes (folding, rewriting).
    optimize: bool,
}

fn bench(model: &Path, shapes: &[String], backend: &str, options: &BenchOptions) -> CliResult {
    use std::time::Instant;
    let BenchOptions { threads, runs, json, profile, optimize } = *options;
    let backend: Backend = backend.parse()?;
    let threads = threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let ctx = Context::new(ContextOptions { backend, threads, optimize })?;
    let graph = load(model, shapes)?;
    let flops = kiln::ir::cost::graph_flops(&graph);
    let inputs = random_inputs(&graph)?;
    let feeds: Vec<(&str, &Tensor)> = inputs.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let start = Instant::now();
    let compiled = compile_graph(&ctx, graph)?;
    let compile_ms = start.elapsed().as_secs_f64() * 1e3;
    ctx.compute(&compiled, &feeds)?; // warm-up
    let times = time_runs(&ctx, &compiled, &feeds, runs.max(1))?;
    let (median_ms, min_ms) = median_min(&times);
    let gflops = flops as f64 / (median_ms * 1e-3) / 1e9;
    let report = compiled.report();
    if json {
        let pass_ms = |pass: kiln::passes::Pass| {
            report.and_then(|r| r.timings.iter().find(|(p, _)| *p == pass)).map(|(_, t)| t.as_secs_f64() * 1e3)
        };
        println!(
            "{}",
            serde_json::json!({
                "model": model.display().to_string(), "backend": backend.name(), "compile_ms": compile_ms,
                "median_ms": median_ms, "min_ms": min_ms, "gflops": gflops, "threads": ctx.threads(), "runs": times.len(),
                "adapter": ctx.gpu_adapter(),
                "arena_bytes": compiled.program().map(|p| p.arena_bytes),
                "optimize": optimize,
                "operators_before": report.map(|r| r.operators_before),
                "operators_after": report.map(|r| r.operators_after),
                "kernels": compiled.program().map(|p| p.kernels.len()),
                "rewrite_ms": pass_ms(kiln::passes::Pass::Rewrite),
            })
        );
    } else {
        let on = match ctx.gpu_adapter() {
            Some(adapter) => format!("gpu: {adapter}"),
            None => format!("{} ({} threads)", backend.name(), ctx.threads()),
        };
        println!("{} on {on}, {} runs", model.display(), times.len());
        println!("  compile  {compile_ms:10.2} ms");
        if let (Some(r), Some(p)) = (report, compiled.program()) {
            println!("  operators {} -> {} (graph passes), {} kernels", r.operators_before, r.operators_after, p.kernels.len());
        }
        println!("  median   {median_ms:10.3} ms");
        println!("  min      {min_ms:10.3} ms");
        println!("  {gflops:.2} GFLOP/s ({:.3} GFLOP per run)", flops as f64 / 1e9);
    }
    if let Some(top) = profile {
        print_profile(&ctx, &compiled, &feeds, runs, top)?;
    }
    Ok(())
}

/// The wall time of `n` runs, in milliseconds.
fn time_runs(ctx: &Context, compiled: &kiln::CompiledGraph, feeds: &[(&str, &Tensor)], n: usize) -> Result<Vec<f64>, kiln::RuntimeError> {
    (0..n)
        .map(|_| {
            let t = std::time::Instant::now();
            ctx.compute(compiled, feeds).map(|_| t.elapsed().as_secs_f64() * 1e3)
        })
        .collect()
}

/// The median (`sorted[len / 2]`) and the minimum of `times` (not empty).
fn median_min(times: &[f64]) -> (f64, f64) {
    let mut sorted = times.to_vec();
    sorted.sort_by(f64::total_cmp);
    (sorted[sorted.len() / 2], sorted[0])
}

/// `kiln bench --compare ENGINE`: kiln and the reference runtime on the same
/// file, the same inputs (kiln's random inputs, handed to the reference as
/// .npy files) and the same thread count; one warm-up run each, then the
/// timed runs in 5 rounds that alternate kiln and the reference, so that a
/// slow spell of a shared machine hits both. Reports compile (session)
/// time, median and min of each and kiln/reference of the medians.
fn bench_compare(
    model: &Path,
    shapes: &[String],
    backend: &str,
    options: &BenchOptions,
    engine: compare::Engine,
    python: Option<&Path>,
) -> CliResult {
    engine.check_model(model)?;
    let python = compare::find_python(engine, python)?;
    let backend: Backend = backend.parse()?;
    let threads = options.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let ctx = Context::new(ContextOptions { backend, threads, optimize: options.optimize })?;
    let graph = load(model, shapes)?;
    let inputs = random_inputs(&graph)?;
    let dir = std::env::temp_dir().join(format!("kiln-bench-compare-{}", std::process::id()));
    let reference = compare::Reference::start(engine, &python, model, ctx.threads(), &inputs, &dir);
    let _ = std::fs::remove_dir_all(&dir); // the driver has read its inputs
    let mut reference = reference?;
    let feeds: Vec<(&str, &Tensor)> = inputs.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let start = std::time::Instant::now();
    let compiled = compile_graph(&ctx, graph)?;
    let compile_ms = start.elapsed().as_secs_f64() * 1e3;
    ctx.compute(&compiled, &feeds)?; // warm-ups
    reference.time(1)?;
    let rounds = compare::round_sizes(options.runs.max(1), 5);
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for &n in &rounds {
        ours.extend(time_runs(&ctx, &compiled, &feeds, n)?);
        theirs.extend(reference.time(n)?);
    }
    let (median_ms, min_ms) = median_min(&ours);
    let (ref_median_ms, ref_min_ms) = median_min(&theirs);
    let ratio = median_ms / ref_median_ms;
    let name = engine.name();
    if options.json {
        println!(
            "{}",
            serde_json::json!({
                "model": model.display().to_string(), "threads": ctx.threads(), "runs": ours.len(), "rounds": rounds.len(),
                "kiln": {"backend": backend.name(), "compile_ms": compile_ms, "median_ms": median_ms, "min_ms": min_ms},
                "reference": {
                    "engine": name, "version": reference.version, "python": python.display().to_string(),
                    "compile_ms": reference.compile_ms, "median_ms": ref_median_ms, "min_ms": ref_min_ms,
                },
                "ratio": ratio,
            })
        );
        return Ok(());
    }
    let reference_name = format!("{name} {}", reference.version);
    println!(
        "{}: {} threads, {} timed runs each after a warm-up, interleaved in {} rounds",
        model.display(),
        ctx.threads(),
        ours.len(),
        rounds.len()
    );
    println!("  {:<10} {:>14} {:>24}", "", format!("kiln ({})", backend.name()), reference_name);
    println!("  {:<10} {:>11.2} ms {:>21.2} ms", "compile", compile_ms, reference.compile_ms);
    println!("  {:<10} {:>11.3} ms {:>21.3} ms", "median", median_ms, ref_median_ms);
    println!("  {:<10} {:>11.3} ms {:>21.3} ms", "min", min_ms, ref_min_ms);
    let verdict = if ratio <= 1.0 { "kiln is as fast or faster" } else { "kiln is slower" };
    println!("  kiln/{name} (median): {ratio:.2} ({verdict})");
    Ok(())
}

/// Per-kernel times (median over `runs`), the `top` slowest first.
fn print_profile(ctx: &Context, compiled: &kiln::CompiledGraph, feeds: &[(&str, &Tensor)], runs: usize, top: usize) -> CliResult {
    let program = compiled.program().ok_or("profiling needs a backend that lowers the graph (cpu)")?;
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); program.kernels.len()];
    for _ in 0..runs.max(1) {
        for (k, t) in ctx.profile(compiled, feeds)?.into_iter().enumerate() {
            samples[k].push(t.as_secs_f64() * 1e3);
        }
    }
    let mut rows: Vec<(usize, f64)> = samples
        .iter_mut()
        .enumerate()
        .map(|(k, s)| {
            s.sort_by(f64::total_cmp);
            (k, s[s.len() / 2])
        })
        .collect();
    let total: f64 = rows.iter().map(|r| r.1).sum();
    // Time by kind of kernel; a Map that is one load is data movement
    // (copies, im2col, padding, concat).
    let mut by_kind: Vec<(&str, f64, usize)> = Vec::new();
    for &(k, ms) in &rows {
        let kind = match &program.kernels[k] {
            kiln::ir::kernel::Kernel::Map { expr, .. } if expr.nodes.len() == 1 => "map (copy)",
            kernel => kernel.kind(),
        };
        match by_kind.iter_mut().find(|(n, ..)| *n == kind) {
            Some(entry) => {
                entry.1 += ms;
                entry.2 += 1;
            }
            None => by_kind.push((kind, ms, 1)),
        }
    }
    by_kind.sort_by(|a, b| b.1.total_cmp(&a.1));
    let summary: Vec<String> =
        by_kind.iter().map(|(kind, ms, n)| format!("{kind} {ms:.3} ms ({:.1}%, {n})", 100.0 * ms / total)).collect();
    rows.sort_by(|a, b| b.1.total_cmp(&a.1));
    println!("kernels: {} (sum of medians {total:.3} ms); by kind: {}", rows.len(), summary.join(", "));
    println!("slowest:");
    for (k, ms) in rows.iter().take(top) {
        let kernel = &program.kernels[*k];
        let domain = kiln::explain::kernel_domain(kernel);
        println!("  k{k:<4} {:<7} {ms:9.3} ms {:5.1}%  {domain}", kernel.kind(), 100.0 * ms / total);
    }
    Ok(())
}

fn info(model: &Path, shapes: &[String]) -> CliResult {
    // An import error lists every unsupported node (on stderr).
    let graph = if model.extension().is_some_and(|e| e == "onnx") {
        let onnx = kiln::frontend::onnx::OnnxModel::open(model)?;
        let producer = if onnx.producer().is_empty() { "unknown" } else { onnx.producer() };
        println!("ONNX model: opset {}, producer {producer}", onnx.opset());
        let unmapped = onnx.unmapped_nodes();
        let counts = onnx.operator_counts();
        println!("ONNX operators: {} nodes", counts.values().sum::<usize>());
        for (op, n) in &counts {
            let mark = if unmapped.iter().any(|u| &u.op_type == op) { "  (not supported)" } else { "" };
            println!("  {op:<24} {n}{mark}");
        }
        onnx.to_graph(&load_options(shapes)?)?
    } else if model.extension().is_some_and(|e| e == "tflite") {
        let tflite = kiln::frontend::tflite::TfliteModel::open(model)?;
        let description = tflite.description();
        println!("TFLite model: {}", if description.is_empty() { "no description" } else { &description });
        let supported = kiln::frontend::tflite::supported_operators();
        let counts = tflite.operator_counts()?;
        println!("TFLite operators: {} operators", counts.values().sum::<usize>());
        for (op, n) in &counts {
            let mapped = supported.iter().any(|s| s == op);
            let mark = if mapped { "" } else { "  (not supported)" };
            println!("  {op:<24} {n}{mark}");
        }
        load(model, shapes)?
    } else {
        load(model, shapes)?
    };
    print!("{}", describe(&graph));
    Ok(())
}

/// The `kiln info` report.
fn describe(graph: &Graph) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(s, "inputs:");
    for &id in graph.inputs() {
        let _ = writeln!(s, "  {}: {}", graph.input_name(id).unwrap_or("?"), graph.desc(id));
    }
    let _ = writeln!(s, "outputs:");
    for (name, id) in graph.outputs() {
        let _ = writeln!(s, "  {name}: {}", graph.desc(*id));
    }
    let mut histogram: BTreeMap<&str, usize> = BTreeMap::new();
    for node in graph.nodes() {
        *histogram.entry(node.op.name()).or_default() += 1;
    }
    let _ = writeln!(s, "operators: {} nodes", graph.nodes().len());
    for (op, n) in &histogram {
        let _ = writeln!(s, "  {op:<24} {n}");
    }
    let (mut params, mut bytes) = (0u64, 0u64);
    for operand in graph.operands() {
        if let OperandKind::Constant(t) = &operand.kind {
            params += t.shape().element_count() as u64;
            bytes += t.bytes().len() as u64;
        }
    }
    let _ = writeln!(s, "parameters: {params} ({bytes} bytes)");
    let flops = kiln::ir::cost::graph_flops(graph);
    let _ = writeln!(s, "FLOPs: {flops} ({:.3} GFLOP)", flops as f64 / 1e9);
    // The memory plan of the lowered program (what the cpu and kernels
    // backends run): one arena of scratch buffers per execution.
    match kiln::passes::lower(graph) {
        Ok(p) => {
            let (count, total) = p
                .buffers
                .iter()
                .filter(|b| matches!(b.kind, kiln::ir::kernel::BufferKind::Scratch { .. }))
                .fold((0usize, 0usize), |(n, t), b| (n + 1, t + b.byte_len()));
            let hosts = p.kernels.iter().filter(|k| k.is_host()).count();
            let on_host = if hosts > 0 { format!(" ({hosts} on the host)") } else { String::new() };
            let _ = writeln!(
                s,
                "arena: {} bytes ({count} scratch buffers, {total} bytes unshared), {} kernels{on_host}",
                p.arena_bytes,
                p.kernels.len()
            );
        }
        Err(e) => {
            let _ = writeln!(s, "arena: not lowered ({e})");
        }
    }
    s
}

fn ops() {
    let names = kiln::frontend::op_table::operator_names();
    let backends = Backend::ALL;
    print!("{:<24}", "operator");
    for b in backends {
        print!(" {:<8}", b.name());
    }
    println!();
    let mut host_notes = Vec::new();
    for name in names {
        print!("{name:<24}");
        for b in backends {
            let support = match b {
                // The interpreter implements every operator of the IR (an
                // exhaustive match), so every mapped name is supported.
                Backend::Interp => "yes",
                // All run the lowered program (gpu: host kernels between
                // compute passes): the lowering decides.
                Backend::Kernels | Backend::Cpu | Backend::Gpu => match kiln::passes::op_support(name) {
                    Some(kiln::passes::Support::Full) => "yes",
                    Some(kiln::passes::Support::Host(note)) => {
                        if !host_notes.iter().any(|(n, _)| *n == name) {
                            host_notes.push((name, note));
                        }
                        "yes+host"
                    }
                    None => "no",
                },
            };
            print!(" {support:<8}");
        }
        println!();
    }
    if !host_notes.is_empty() {
        println!();
        println!("yes+host: every data type and option; some cases run as host kernels (the reference");
        println!("interpreter on the calling thread, between the generated kernels: exact, but slow):");
        for (name, note) in host_notes {
            println!("  {name:<22} {note}");
        }
        println!("(A WebGPU bundle, `kiln compile --target wgsl`, has no host: models with host kernels are refused.)");
    }
}

/// `MLOpSupportLimits` as the spec's dictionary: `preferredInputLayout`,
/// `maxTensorByteLength`, `input`/`constant`/`output` data types, and per
/// operator, per operand, `dataTypes` and `rankRange` (`max` 4294967295:
/// no limit).
fn limits_json() -> serde_json::Value {
    use serde_json::{Map, Value, json};
    let ctx_limits = kiln::limits::op_support_limits();
    let types = |t: &[kiln::DataType]| Value::from(t.iter().map(|t| t.name()).collect::<Vec<_>>());
    let mut root = Map::new();
    root.insert("preferredInputLayout".into(), ctx_limits.preferred_input_layout.name().into());
    root.insert("maxTensorByteLength".into(), ctx_limits.max_tensor_byte_length.into());
    for (key, list) in [("input", &ctx_limits.input), ("constant", &ctx_limits.constant), ("output", &ctx_limits.output)] {
        root.insert(key.into(), json!({ "dataTypes": types(list) }));
    }
    for (name, operands) in &ctx_limits.operators {
        let mut op = Map::new();
        for l in operands {
            let max = l.ranks.max.map_or(u64::from(u32::MAX), |m| m as u64);
            op.insert(
                l.operand.into(),
                json!({ "dataTypes": types(&l.data_types), "rankRange": { "min": l.ranks.min, "max": max } }),
            );
        }
        root.insert((*name).into(), Value::Object(op));
    }
    Value::Object(root)
}

fn emit(model: &Path, shapes: &[String], stage: Stage, target: &str) -> CliResult {
    let target: kiln::codegen::cpu::Target = target.parse()?;
    let stage = match stage {
        Stage::Graph => kiln::Stage::Graph,
        Stage::Opt => kiln::Stage::Opt,
        Stage::Kernels => kiln::Stage::Kernels,
        Stage::Clif => kiln::Stage::Clif,
        Stage::Asm => kiln::Stage::Asm,
        Stage::Wgsl => kiln::Stage::Wgsl,
    };
    print!("{}", kiln::emit(&load(model, shapes)?, stage, &target)?);
    Ok(())
}

fn explain(model: &Path, shapes: &[String], target: &str, json: bool) -> CliResult {
    let target: kiln::codegen::cpu::Target = target.parse()?;
    let graph = load(model, shapes)?;
    let progress = Progress::step(format!("compiling {} operators", graph.nodes().len()));
    let compiled = kiln::runtime::pipeline_for(&target).run(&graph)?;
    drop(progress);
    if json {
        println!("{}", kiln::explain::to_json(&graph, &compiled));
    } else {
        println!("{} for {target}", model.display());
        print!("{}", kiln::explain::to_text(&graph, &compiled));
    }
    Ok(())
}

/// `kiln emit --dump-after PASS`: the graph or kernel program right after
/// `pass` of the cpu backend's pipeline for `target`.
fn dump_after_pass(model: &Path, shapes: &[String], target: &str, pass: &str) -> CliResult {
    let pass: kiln::passes::Pass = pass.parse()?;
    let target: kiln::codegen::cpu::Target = target.parse()?;
    let graph = load(model, shapes)?;
    let pipeline = kiln::runtime::pipeline_for(&target);
    if !pipeline.passes().contains(&pass) {
        return Err(format!("the pipeline does not run `{pass}`").into());
    }
    let mut text = String::new();
    pipeline.run_observed(&graph, &mut |done, snapshot| {
        if done == pass {
            text = match snapshot {
                kiln::passes::Snapshot::Graph(g) => {
                    kiln::frontend::webnn_text::print(&kiln::frontend::webnn_text::from_graph(g, "graph"))
                }
                kiln::passes::Snapshot::Program(p) => p.to_string(),
            };
        }
    })?;
    print!("{text}");
    Ok(())
}

fn conformance(paths: &[PathBuf], backend: &str, json: bool, verbose: bool, exclusions: Option<&Path>) -> CliResult {
    use kiln_harness::conformance::{load_cases, run_cases_observed, Exclusions, Outcome};
    let backend: Backend = backend.parse()?;
    let exclusions = match exclusions {
        Some(file) => Exclusions::load(file)?,
        None => Exclusions::none(),
    };
    let mut cases = Vec::new();
    for path in paths {
        cases.extend(load_cases(path)?);
    }
    let progress = Progress::bar(cases.len(), "cases");
    let mut failed = 0;
    let report = run_cases_observed(&cases, backend, &exclusions, |r| {
        failed += usize::from(matches!(r.outcome, Outcome::Failed(_)));
        progress.advance(if failed == 0 { r.op.clone() } else { format!("{} ({failed} failed)", r.op) });
    });
    drop(progress);
    if json {
        println!("{}", report.to_json());
    } else {
        report.print_summary(verbose);
    }
    if report.all_passed() {
        Ok(())
    } else {
        Err(format!("{} of {} cases failed", report.counts().failed, report.counts().total()).into())
    }
}

fn onnx_tests(root: &Path, filter: &str, backend: &str, verbose: bool) -> CliResult {
    use kiln_harness::onnx_tests::{CaseOutcome, Tolerance, case_dirs, counts, run_suite};
    let backend: Backend = backend.parse()?;
    let selected = case_dirs(root)
        .map(|dirs| dirs.iter().filter(|d| d.file_name().is_some_and(|n| n.to_string_lossy().contains(filter))).count())
        .unwrap_or(0);
    let progress = Progress::bar(selected, "cases");
    let results = run_suite(root, backend, filter, Tolerance::default(), |r| {
        match &r.outcome {
            CaseOutcome::Passed if verbose && !r.bound.is_empty() => {
                progress.println(&format!("pass      {} (bound at load time: {})", r.name, r.bound.join(", ")))
            }
            CaseOutcome::Passed if verbose => progress.println(&format!("pass      {}", r.name)),
            CaseOutcome::Failed(e) => progress.println(&format!("FAIL      {}: {e}", r.name)),
            CaseOutcome::Unmapped(ops) if verbose => progress.println(&format!("unmapped  {} ({})", r.name, ops.join(", "))),
            _ => {}
        }
        progress.advance(r.name.clone());
    })?;
    drop(progress);
    let (total, per_op) = counts(&results);
    println!("\n{:<28} {:>6} {:>6} {:>8}", "operator", "passed", "failed", "unmapped");
    for (op, c) in &per_op {
        println!("{op:<28} {:>6} {:>6} {:>8}", c.passed, c.failed, c.unmapped);
    }
    let mapped = total.passed + total.failed;
    let bound = results.iter().filter(|r| !r.bound.is_empty()).count();
    println!("{bound} mapped cases bound inputs that kiln needs at load time to their test values");
    println!(
        "\n{backend}: {} cases; {mapped} mapped: {} passed, {} failed ({:.1}% of mapped pass); {} unmapped",
        results.len(),
        total.passed,
        total.failed,
        if mapped == 0 { 0.0 } else { 100.0 * total.passed as f64 / mapped as f64 },
        total.unmapped
    );
    Ok(())
}
