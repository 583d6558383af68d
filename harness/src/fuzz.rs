//! Fuzzing entry points, one per target: each takes arbitrary bytes and
//! must return normally, whatever they are (an error is fine; a panic, a
//! crash, a hang or an allocation beyond the limits is a bug). The
//! cargo-fuzz targets of `fuzz/` call them (`scripts/fuzz.sh TARGET
//! SECONDS`), and `tests/fuzz_regressions.rs` runs them on every input saved
//! under `tests/data/fuzz/<target>/`, so a crash, once fixed, stays fixed.

use std::collections::BTreeMap;
use std::path::PathBuf;

use kiln_frontend::{LoadOptions, npy, onnx, tflite, webnn_text};
use kiln_ir::{Graph, Tensor};

/// A fuzzing entry point: any bytes in, and it returns.
pub type Target = fn(&[u8]);

/// Every target: its name (the fuzz target's and the regression folder's)
/// and its entry point.
pub const TARGETS: &[(&str, Target)] = &[
    ("onnx", onnx_model),
    ("tflite", tflite_model),
    ("webnn_text", webnn_text_file),
    ("npy", npy_file),
    ("differential", differential),
];

/// Where no file exists: ONNX external data is looked up here, and found
/// nowhere.
fn nowhere() -> PathBuf {
    PathBuf::from("/nonexistent/kiln-fuzz")
}

/// A graph that imported is also lowered to kernels (fused, planned): the
/// passes see hostile graphs too.
fn lower(graph: Graph) {
    let _ = kiln_passes::lower(&graph);
}

/// An `.onnx` file: decoded, imported, lowered.
pub fn onnx_model(data: &[u8]) {
    if let Ok(model) = onnx::OnnxModel::decode(bytes::Bytes::copy_from_slice(data), nowhere())
        && let Ok(graph) = model.to_graph(&LoadOptions::default())
    {
        lower(graph);
    }
}

/// A `.tflite` file: decoded, imported, lowered.
pub fn tflite_model(data: &[u8]) {
    if let Ok(model) = tflite::TfliteModel::from_bytes(data.to_vec())
        && let Ok(graph) = model.to_graph()
    {
        lower(graph);
    }
}

/// A `.webnn` text file: parsed, built (no weights sidecar), lowered.
pub fn webnn_text_file(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(doc) = webnn_text::parse(text)
        && let Ok(graph) = webnn_text::to_graph(&doc, &BTreeMap::<String, Tensor>::new())
    {
        lower(graph);
    }
}

/// A `.npy` file: parsed, and a parsed tensor written and read back equal.
pub fn npy_file(data: &[u8]) {
    if let Ok(tensor) = npy::parse(data) {
        let back = npy::parse(&npy::to_bytes(&tensor)).expect("kiln reads the .npy files it writes");
        assert_eq!(back.desc(), tensor.desc());
        assert_eq!(back.bytes(), tensor.bytes());
    }
}

/// A random graph ([`crate::differential::random_graph`] of the seed in the
/// first 8 bytes) on the kernels and cpu backends against the interpreter:
/// a difference beyond the tolerance is a finding (a panic naming the seed
/// and the graph).
pub fn differential(data: &[u8]) {
    let mut seed = [0u8; 8];
    let n = data.len().min(8);
    seed[..n].copy_from_slice(&data[..n]);
    let seed = u64::from_le_bytes(seed);
    for backend in [kiln_runtime::Backend::Kernels, kiln_runtime::Backend::Cpu] {
        if let Err(e) = crate::differential::check(seed, backend) {
            panic!("seed {seed}: {e}");
        }
    }
}
