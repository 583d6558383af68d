//! WebGPU bundles: a graph as WGSL compute shaders with a manifest, its
//! weights and a small JavaScript module (`kiln.js`) that runs it in a web
//! page, with no kiln on the page's side (`kiln compile --target wgsl`).
//!
//! ```no_run
//! let graph = kiln::load_graph("model.onnx", &Default::default())?;
//! let bundle = kiln::web::compile(&graph, &kiln::web::WebOptions { name: "model".into(), ..Default::default() })?;
//! bundle.write("site/model")?; // model.json, model.k000.wgsl, ..., model.c0.bin, kiln.js
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! In the page:
//!
//! ```js
//! import { load } from "./model/kiln.js";
//! const model = await load("./model/model.json");
//! const { y } = await model.run({ x: new Float32Array(3 * 224 * 224) });
//! ```
//!
//! The shaders are generated for WebGPU's default limits, so they run on
//! any adapter a browser offers; the manifest (`NAME.json`, format
//! `kiln-webgpu-1`) lists the buffers, each kernel's shader, bindings and
//! workgroup counts in dispatch order. Host kernels have no place in a
//! page: a graph with some is refused, naming its nodes. docs/gpu.md
//! describes the files.

use std::path::{Path, PathBuf};

use kiln_codegen::wgsl::{self, HostKernels, Limits, Memory};
use kiln_ir::kernel::BufferKind;
use kiln_ir::Graph;
use kiln_passes::{Pass, Pipeline};
use kiln_runtime::RuntimeError;

/// The JavaScript module that runs a bundle.
pub const KILN_JS: &str = include_str!("web/kiln.js");

/// What [`compile`] builds.
#[derive(Clone, Debug)]
pub struct WebOptions {
    /// Prefix of the bundle's file names.
    pub name: String,
    /// Run the graph passes (constant folding, rewrites); default true.
    pub optimize: bool,
}

impl Default for WebOptions {
    fn default() -> Self {
        WebOptions { name: "model".into(), optimize: true }
    }
}

/// Why a graph has no bundle.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    #[error(transparent)]
    Compile(#[from] RuntimeError),
    #[error("{}", crate::aot::host_kernels_refused(.0, "a web page"))]
    HostKernels(Vec<String>),
    #[error("WGSL: {0}")]
    Wgsl(#[from] wgsl::WgslError),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

/// A compiled bundle: its files' names and bytes.
#[derive(Clone, Debug)]
pub struct WebBundle {
    pub name: String,
    files: Vec<(String, Vec<u8>)>,
}

impl WebBundle {
    /// Every file: name (no folder) and contents, manifest first.
    pub fn files(&self) -> &[(String, Vec<u8>)] {
        &self.files
    }

    /// The manifest's text.
    pub fn manifest(&self) -> &str {
        std::str::from_utf8(&self.files[0].1).expect("the manifest is JSON text")
    }

    /// Writes every file into `dir` (created if missing); returns their paths.
    pub fn write(&self, dir: impl AsRef<Path>) -> Result<Vec<PathBuf>, WebError> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|source| WebError::Io { path: dir.to_path_buf(), source })?;
        self.files
            .iter()
            .map(|(name, bytes)| {
                let path = dir.join(name);
                std::fs::write(&path, bytes).map_err(|source| WebError::Io { path: path.clone(), source })?;
                Ok(path)
            })
            .collect()
    }
}

/// Compiles `graph` into a bundle. Deterministic: the same graph and
/// options give the same files.
pub fn compile(graph: &Graph, options: &WebOptions) -> Result<WebBundle, WebError> {
    graph.validate().map_err(RuntimeError::from)?;
    let mut pipeline = Pipeline::default();
    if !options.optimize {
        pipeline = pipeline.without(Pass::Fold).without(Pass::Rewrite);
    }
    let compiled = pipeline.run(graph).map_err(RuntimeError::from)?;
    let host = crate::aot::host_kernel_nodes(&compiled);
    if !host.is_empty() {
        return Err(WebError::HostKernels(host));
    }
    let program = &compiled.program;
    let shaders = wgsl::compile(program, &Limits::default(), HostKernels::Refuse)?;
    let name = &options.name;
    let layout = &shaders.layout;
    let memory = |m: Memory| m.name();
    let tensor = |tensor_name: &str, id: kiln_ir::OperandId, kind: fn(&BufferKind) -> Option<&String>| {
        let buffer = program.buffers.iter().position(|b| kind(&b.kind).is_some_and(|n| n == tensor_name));
        let desc = graph.desc(id);
        serde_json::json!({
            "name": tensor_name,
            "dataType": desc.data_type.name(),
            "shape": desc.shape.dims(),
            "offset": buffer.map(|b| layout.buffers[b].offset),
            "bytes": buffer.map(|b| program.buffers[b].byte_len()),
        })
    };
    let inputs: Vec<_> = graph
        .inputs()
        .iter()
        .map(|&id| {
            let n = graph.input_name(id).unwrap_or_default();
            tensor(n, id, |k| if let BufferKind::Input(n) = k { Some(n) } else { None })
        })
        .collect();
    let outputs: Vec<_> = graph
        .outputs()
        .iter()
        .map(|(n, id)| tensor(n, *id, |k| if let BufferKind::Output(n) = k { Some(n) } else { None }))
        .collect();
    let mut files = Vec::new();
    let mut kernels = Vec::new();
    for s in &shaders.shaders {
        let file = format!("{name}.k{:03}.wgsl", s.kernel);
        kernels.push(serde_json::json!({
            "kernel": s.kernel,
            "shader": file,
            "workgroups": s.workgroups,
            "bindings": s.bindings.iter().map(|b| serde_json::json!({
                "memory": memory(b.memory), "offset": b.offset, "size": b.size,
            })).collect::<Vec<_>>(),
        }));
        files.push((file, s.source.clone().into_bytes()));
    }
    let mut constants = Vec::new();
    for (n, chunk) in layout.constants.iter().enumerate() {
        let file = format!("{name}.c{n}.bin");
        constants.push(serde_json::json!({ "memory": memory(Memory::Constants(n)), "file": file, "bytes": chunk.len() }));
        files.push((file, chunk.clone()));
    }
    let manifest = serde_json::json!({
        "format": "kiln-webgpu-1",
        "name": name,
        "arenaBytes": layout.arena_bytes,
        "inputs": inputs,
        "outputs": outputs,
        "constants": constants,
        "kernels": kernels,
    });
    let text = serde_json::to_string_pretty(&manifest).expect("JSON values serialize") + "\n";
    files.insert(0, (format!("{name}.json"), text.into_bytes()));
    files.push(("kiln.js".into(), KILN_JS.as_bytes().to_vec()));
    Ok(WebBundle { name: name.clone(), files })
}
