//! kiln's Python extension module, `kiln._kiln` (re-exported by the
//! `kiln` package, `python/kiln/__init__.py`): load a model file or build a
//! graph, compile it, and run it on NumPy arrays.
//!
//! Everything goes through the `kiln` crate's public API (the loaders,
//! `Context`, `GraphBuilder` and its operator table, `explain`); this crate
//! only converts between Python and kiln values. Kernels run with the GIL
//! released; kiln's errors become Python exceptions (see [`error`]).

mod builder;
mod convert;
mod error;
mod model;

use std::collections::BTreeMap;
use std::path::PathBuf;

use pyo3::prelude::*;

/// A dimension binding of `load(shapes=...)`: an input's dimensions, or one
/// value for a named symbolic dimension.
#[derive(FromPyObject)]
enum Dims {
    One(u32),
    Many(Vec<u32>),
}

/// Loads a model file (`.onnx`, `.tflite` or `.webnn`) and compiles it for
/// `backend` on `threads` threads (0: all cores). `shapes` binds symbolic
/// dimensions of ONNX models: an input's name to its dimensions, or a
/// dimension's name to its value.
#[pyfunction]
#[pyo3(signature = (path, *, shapes = None, threads = 0, backend = "cpu", optimize = true))]
fn load(
    py: Python<'_>,
    path: PathBuf,
    shapes: Option<BTreeMap<String, Dims>>,
    threads: usize,
    backend: &str,
    optimize: bool,
) -> PyResult<model::Model> {
    let mut options = kiln::LoadOptions::default();
    for (name, dims) in shapes.unwrap_or_default() {
        options = match dims {
            Dims::One(d) => options.with_shape(&name, [d]),
            Dims::Many(d) => options.with_shape(&name, d),
        };
    }
    let ctx = model::context(backend, threads, optimize)?;
    model::Model::compile(py, ctx, move |ctx| ctx.load(&path, &options).map_err(error::runtime))
}

/// The WebNN operators kiln has, by name, with how the cpu backend (and the
/// kernels and gpu backends) runs each: `"yes"` (generated code), `"host:
/// <cases>"` (generated code, except the cases named, which run as host
/// kernels) or `"no"`. The interp backend runs every operator.
#[pyfunction]
fn ops() -> BTreeMap<&'static str, String> {
    kiln::frontend::op_table::operator_names()
        .into_iter()
        .map(|name| {
            let support = match kiln::passes::op_support(name) {
                Some(kiln::passes::Support::Full) => "yes".to_string(),
                Some(kiln::passes::Support::Host(note)) => format!("host: {note}"),
                None => "no".to_string(),
            };
            (name, support)
        })
        .collect()
}

#[pymodule]
fn _kiln(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(load, m)?)?;
    m.add_function(wrap_pyfunction!(ops, m)?)?;
    m.add_class::<model::Model>()?;
    m.add_class::<model::TensorInfo>()?;
    m.add_class::<builder::GraphBuilder>()?;
    m.add_class::<builder::Operand>()?;
    m.add_class::<convert::TensorBuffer>()?;
    m.add("KilnError", m.py().get_type::<error::KilnError>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
