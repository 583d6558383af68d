//! Ahead-of-time compilation: a graph to a relocatable object file and a C
//! header, for x86-64 or aarch64 Linux, to link into a program with no
//! kiln runtime (see `docs/aot.md` for the calling contract).
//!
//! ```no_run
//! use kiln::aot::{self, AotOptions, Emit};
//!
//! let graph = kiln::load_graph("model.onnx", &Default::default())?;
//! let options = AotOptions { name: "model".into(), target: "x86_64+avx2".parse()?, ..Default::default() };
//! let artifact = aot::compile(&graph, &options)?;
//! artifact.write("out", &[Emit::Object, Emit::Header])?; // out/model.o, out/model.h
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use kiln_codegen::cpu::{object, Arch, CodegenError, ObjectCode, ObjectSignature, Target};
use kiln_ir::kernel::Kernel;
use kiln_ir::{DataType, Graph, OperandDescriptor};
use kiln_runtime::{pipeline_for, Pass, RuntimeError};

/// What [`compile`] builds.
#[derive(Clone, Debug)]
pub struct AotOptions {
    /// The code generation target (default: this machine).
    pub target: Target,
    /// The C identifier prefixing every exported symbol and macro.
    pub name: String,
    /// Run the graph passes (constant folding, rewrites); default true.
    pub optimize: bool,
}

impl Default for AotOptions {
    fn default() -> Self {
        AotOptions { target: Target::host(), name: "model".into(), optimize: true }
    }
}

/// A file [`Artifact::write`] can produce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Emit {
    /// `NAME.o`, the relocatable object.
    Object,
    /// `NAME.h`, the C header.
    Header,
    /// `NAME.so`, the object linked as a shared library by the system's C
    /// compiler (`cc`, or `aarch64-linux-gnu-gcc` for aarch64 on another
    /// host; `$CC` overrides).
    SharedLibrary,
}

impl std::str::FromStr for Emit {
    type Err = AotError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "obj" => Ok(Emit::Object),
            "header" => Ok(Emit::Header),
            "so" => Ok(Emit::SharedLibrary),
            other => Err(AotError::Usage(format!("unknown --emit kind `{other}` (obj, header, so)"))),
        }
    }
}

/// An error from ahead-of-time compilation.
#[derive(Debug, thiserror::Error)]
pub enum AotError {
    #[error(transparent)]
    Compile(#[from] RuntimeError),
    #[error("{}", host_kernels_refused(.0, "an object file"))]
    HostKernels(Vec<String>),
    #[error("{0}")]
    Usage(String),
    #[error("code generation: {0}")]
    Codegen(String),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("linking {path}: {message}")]
    Link { path: PathBuf, message: String },
}

/// One graph input or output as the entry points see it.
#[derive(Clone, Debug)]
pub struct TensorInfo {
    pub name: String,
    pub desc: OperandDescriptor,
}

/// A compiled model: the object file's bytes, its C header and what both
/// describe.
pub struct Artifact {
    pub name: String,
    pub target: Target,
    /// In the order of the `inputs` array of the entry points.
    pub inputs: Vec<TensorInfo>,
    /// In the order of the `outputs` array.
    pub outputs: Vec<TensorInfo>,
    code: ObjectCode,
    header: String,
}

/// Compiles `graph` into an object file for `options.target`.
/// Deterministic: the same graph, target and options give the same bytes.
pub fn compile(graph: &Graph, options: &AotOptions) -> Result<Artifact, AotError> {
    graph.validate().map_err(RuntimeError::from)?;
    let mut pipeline = pipeline_for(&options.target);
    if !options.optimize {
        pipeline = pipeline.without(Pass::Fold).without(Pass::Rewrite);
    }
    let compiled = pipeline.run(graph).map_err(RuntimeError::from)?;
    let host = host_kernel_nodes(&compiled);
    if !host.is_empty() {
        return Err(AotError::HostKernels(host));
    }
    let inputs: Vec<TensorInfo> = graph
        .inputs()
        .iter()
        .map(|&id| TensorInfo {
            name: graph.input_name(id).unwrap_or_default().to_string(),
            desc: graph.desc(id).clone(),
        })
        .collect();
    let outputs: Vec<TensorInfo> =
        graph.outputs().iter().map(|(name, id)| TensorInfo { name: name.clone(), desc: graph.desc(*id).clone() }).collect();
    let signature = ObjectSignature {
        name: options.name.clone(),
        inputs: inputs.iter().map(|t| t.name.clone()).collect(),
        outputs: outputs.iter().map(|t| t.name.clone()).collect(),
    };
    let code = object(&compiled.program, &options.target, &signature).map_err(|e| match e {
        CodegenError::Target(message) => AotError::Usage(message),
        other => AotError::Codegen(other.to_string()),
    })?;
    let mut artifact = Artifact { name: options.name.clone(), target: options.target, inputs, outputs, code, header: String::new() };
    artifact.header = header(&artifact);
    Ok(artifact)
}

/// Why an artifact without a host interpreter (`place`) refuses the
/// graph nodes `nodes` (see [`host_kernel_nodes`]).
pub(crate) fn host_kernels_refused(nodes: &[String], place: &str) -> String {
    format!(
        "{} operator(s) compute integer results the generated f32 code cannot compute exactly; \
         they run on the host (the reference interpreter), which {place} has no room for:\n  {}",
        nodes.len(),
        nodes.join("\n  ")
    )
}

/// The graph nodes that run as host kernels in `compiled`, as
/// `node name: host kernel` lines (artifacts without a host interpreter
/// refuse them by these names).
pub(crate) fn host_kernel_nodes(compiled: &kiln_passes::Compiled) -> Vec<String> {
    let rewritten = &compiled.graph;
    compiled
        .program
        .kernels
        .iter()
        .zip(&compiled.report.kernel_nodes)
        .filter_map(|(k, nodes)| match k {
            Kernel::Host(h) => Some((h, nodes)),
            _ => None,
        })
        .flat_map(|(h, nodes)| nodes.iter().map(move |&n| format!("{}: {h}", crate::explain::node_name(rewritten, n))))
        .collect()
}

impl Artifact {
    /// The relocatable object (ELF).
    pub fn object(&self) -> &[u8] {
        &self.code.bytes
    }

    /// The C header.
    pub fn header(&self) -> &str {
        &self.header
    }

    /// The scratch bytes the entry points need to run as `tasks` tasks
    /// (`NAME_run`: 1).
    pub fn scratch_bytes(&self, tasks: usize) -> usize {
        self.code.scratch_bytes(tasks)
    }

    /// Writes the files `emit` names into `dir` (created if missing) and
    /// returns their paths.
    pub fn write(&self, dir: impl AsRef<Path>, emit: &[Emit]) -> Result<Vec<PathBuf>, AotError> {
        let dir = dir.as_ref();
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| AotError::Io { path, source }
        };
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        // Without `obj`, the shared library is linked from a temporary
        // object next to it (never overwriting a NAME.o there).
        let object = if emit.contains(&Emit::Object) {
            dir.join(format!("{}.o", self.name))
        } else {
            dir.join(format!(".{}.{}.kiln-link.o", self.name, std::process::id()))
        };
        let mut written = Vec::new();
        if emit.contains(&Emit::Object) || emit.contains(&Emit::SharedLibrary) {
            std::fs::write(&object, self.object()).map_err(io(&object))?;
            if emit.contains(&Emit::Object) {
                written.push(object.clone());
            }
        }
        if emit.contains(&Emit::Header) {
            let path = dir.join(format!("{}.h", self.name));
            std::fs::write(&path, &self.header).map_err(io(&path))?;
            written.push(path);
        }
        if emit.contains(&Emit::SharedLibrary) {
            let path = dir.join(format!("lib{}.so", self.name));
            let linked = link_shared(&object, &path, self.target);
            if !emit.contains(&Emit::Object) {
                std::fs::remove_file(&object).map_err(io(&object))?;
            }
            linked?;
            written.push(path);
        }
        Ok(written)
    }
}

/// The C compiler that links for `target`: `$CC`, else `cc` on a host of
/// the same architecture, else the Debian cross compiler's name.
pub fn c_compiler(target: Target) -> String {
    if let Ok(cc) = std::env::var("CC") {
        return cc;
    }
    let native = match target.arch {
        Arch::X86_64 => cfg!(target_arch = "x86_64"),
        Arch::Aarch64 => cfg!(target_arch = "aarch64"),
    };
    match (native, target.arch) {
        (true, _) => "cc".into(),
        (false, Arch::X86_64) => "x86_64-linux-gnu-gcc".into(),
        (false, Arch::Aarch64) => "aarch64-linux-gnu-gcc".into(),
    }
}

fn link_shared(object: &Path, path: &Path, target: Target) -> Result<(), AotError> {
    let cc = c_compiler(target);
    let link = |message: String| AotError::Link { path: path.to_path_buf(), message };
    let out = Command::new(&cc)
        .arg("-shared")
        .arg("-o")
        .arg(path)
        .arg(object)
        .arg("-lm")
        .output()
        .map_err(|e| link(format!("cannot run the C compiler `{cc}` (set $CC to another): {e}")))?;
    if !out.status.success() {
        return Err(link(format!("`{cc}` failed: {}", String::from_utf8_lossy(&out.stderr).trim())));
    }
    Ok(())
}

/// The C type of one element, as the header's comments name it.
fn c_type(t: DataType) -> &'static str {
    match t {
        DataType::Float32 => "float",
        DataType::Float16 => "uint16_t (IEEE binary16 bits)",
        DataType::Int32 => "int32_t",
        DataType::Uint32 => "uint32_t",
        DataType::Int64 => "int64_t",
        DataType::Uint64 => "uint64_t",
        DataType::Int8 => "int8_t",
        DataType::Uint8 => "uint8_t",
    }
}

/// The C header of the module documentation of `docs/aot.md`.
fn header(a: &Artifact) -> String {
    let n = &a.name;
    let upper = n.to_ascii_uppercase();
    let mut h = String::new();
    let _ = writeln!(h, "/* {n}.h: generated by kiln {} for {}. Do not edit.", env!("CARGO_PKG_VERSION"), a.target);
    let _ = writeln!(h, " * Link {n}.o (or lib{n}.so) and the C math library (-lm). Contract: docs/aot.md. */");
    let _ = writeln!(h, "#ifndef KILN_{upper}_H\n#define KILN_{upper}_H\n");
    h.push_str("#include <stddef.h>\n#include <stdint.h>\n\n#ifdef __cplusplus\nextern \"C\" {\n#endif\n\n");
    h.push_str(
        "#ifndef KILN_AOT_COMMON\n#define KILN_AOT_COMMON\n\
         /* Results of the entry points. */\n\
         #define KILN_OK 0\n\
         #define KILN_ERROR_NULL 1      /* a null array, tensor pointer or callback */\n\
         #define KILN_ERROR_ALIGNMENT 2 /* scratch is not 64-byte aligned */\n\
         #define KILN_ERROR_TASKS 3     /* tasks is 0 */\n\
         /* One task of a kernel: the host calls it for every task < tasks. */\n\
         typedef void (*kiln_task_fn)(void *const *table, uint64_t task, uint64_t tasks);\n\
         /* Runs task(table, i, tasks) for every i < tasks, on any threads, and returns when all are done. */\n\
         typedef void (*kiln_parallel_for)(void *ctx, kiln_task_fn task, void *const *table, uint64_t tasks);\n\
         #endif\n\n",
    );
    // Initializer lists are never empty (`{}` is not C before C23): an
    // empty list is `{0}`.
    let initializer = |items: Vec<String>| if items.is_empty() { "{0}".to_string() } else { format!("{{{}}}", items.join(", ")) };
    let bytes = |tensors: &[TensorInfo]| initializer(tensors.iter().map(|t| t.desc.byte_length().to_string()).collect());
    let _ = writeln!(h, "#define {upper}_INPUT_COUNT {}", a.inputs.len());
    let _ = writeln!(h, "#define {upper}_OUTPUT_COUNT {}", a.outputs.len());
    h.push_str("/* Initializers for arrays of the tensors' sizes (COUNT + 1 elements suffice,\n * also for a count of 0): size_t in[] = NAME_INPUT_BYTES_ARRAY; */\n");
    let _ = writeln!(h, "#define {upper}_INPUT_BYTES_ARRAY {}", bytes(&a.inputs));
    let _ = writeln!(h, "#define {upper}_OUTPUT_BYTES_ARRAY {}\n", bytes(&a.outputs));
    for (kind, list) in [("INPUT", &a.inputs), ("OUTPUT", &a.outputs)] {
        for (i, t) in list.iter().enumerate() {
            let shape = t.desc.shape.dims().iter().map(|d| d.to_string()).collect::<Vec<_>>();
            let elements = t.desc.shape.element_count();
            let p = format!("{upper}_{kind}_{i}");
            let (dt, what) = (t.desc.data_type, kind.to_ascii_lowercase());
            let _ = writeln!(h, "/* {what} {i}: {dt} [{}], {elements} elements of {} */", shape.join(", "), c_type(dt));
            let _ = writeln!(h, "#define {p}_NAME {}", c_string(&t.name));
            let _ = writeln!(h, "#define {p}_TYPE \"{dt}\"");
            let _ = writeln!(h, "#define {p}_RANK {}", shape.len());
            let _ = writeln!(h, "#define {p}_SHAPE {} /* {{0}} for a scalar (rank 0) */", initializer(shape.clone()));
            let _ = writeln!(h, "#define {p}_ELEMENTS {elements}");
            let _ = writeln!(h, "#define {p}_BYTES {}\n", t.desc.byte_length());
        }
    }
    let c = &a.code;
    h.push_str("/* Scratch: 64-byte aligned memory the caller owns, one per concurrent call. */\n");
    let _ = writeln!(h, "#define {upper}_SCRATCH_ALIGNMENT 64");
    let _ = writeln!(
        h,
        "#define {upper}_SCRATCH_BYTES_FOR_TASKS(tasks) ((size_t){} + (size_t){} * (size_t)(tasks))",
        c.table_bytes + c.arena_bytes,
        c.task_scratch_bytes
    );
    let _ = writeln!(h, "#define {upper}_SCRATCH_BYTES {upper}_SCRATCH_BYTES_FOR_TASKS(1)\n");
    let _ = writeln!(h, "/* Runs the model on the calling thread. inputs[i] and outputs[i] point to the tensors");
    let _ = writeln!(h, " * above (row-major, no alignment needed); scratch holds {upper}_SCRATCH_BYTES.");
    let _ = writeln!(h, " * Returns KILN_OK or a KILN_ERROR_* code. */");
    let _ = writeln!(h, "int {n}_run(const void *const *inputs, void *const *outputs, void *scratch);\n");
    let _ = writeln!(h, "/* Like {n}_run, with each kernel split into `tasks` tasks that parallel_for runs");
    let _ = writeln!(h, " * (ctx is passed through); scratch holds {upper}_SCRATCH_BYTES_FOR_TASKS(tasks). */");
    let _ = writeln!(
        h,
        "int {n}_run_parallel(const void *const *inputs, void *const *outputs, void *scratch,\n    uint64_t tasks, kiln_parallel_for parallel_for, void *ctx);\n"
    );
    let _ = writeln!(h, "#ifdef __cplusplus\n}}\n#endif\n\n#endif /* KILN_{upper}_H */");
    h
}

/// `s` as a C string literal (escaped).
fn c_string(s: &str) -> String {
    let mut out = String::from("\"");
    for b in s.bytes() {
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'?' => out.push_str("\\?"),
            0x20..=0x7e => out.push(b as char),
            _ => {
                let _ = write!(out, "\\{b:03o}");
            }
        }
    }
    out.push('"');
    out
}
