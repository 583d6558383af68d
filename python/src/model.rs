//! `kiln.Model`: a compiled model and the context that runs it.

use kiln::{CompiledGraph, Context, ContextOptions, DataType, Tensor};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

use crate::convert::{array_from_tensor, dtype, tensor_from_array};
use crate::error::{self, catch};

/// A model input's or output's name, dtype and shape.
#[pyclass(frozen, module = "kiln")]
pub struct TensorInfo {
    name: String,
    data_type: DataType,
    dims: Vec<u32>,
}

#[pymethods]
impl TensorInfo {
    #[getter]
    fn name(&self) -> &str {
        &self.name
    }

    /// The NumPy dtype.
    #[getter]
    fn dtype<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, numpy::PyArrayDescr>> {
        dtype(py, self.data_type)
    }

    /// The dimensions, as a tuple.
    #[getter]
    fn shape<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(py, &self.dims)
    }

    fn __repr__(&self) -> String {
        let dims: Vec<String> = self.dims.iter().map(u32::to_string).collect();
        let comma = if dims.len() == 1 { "," } else { "" };
        format!("TensorInfo(name={:?}, dtype={}, shape=({}{comma}))", self.name, self.data_type.name(), dims.join(", "))
    }
}

/// A model compiled for one backend. Its methods may be called from several
/// Python threads at once: each run has its own scratch memory, and kiln
/// releases the GIL while the kernels run.
#[pyclass(frozen, module = "kiln")]
pub struct Model {
    ctx: Context,
    compiled: CompiledGraph,
}

impl Model {
    /// Compiles `graph` in `ctx` (the GIL released).
    pub fn compile(py: Python<'_>, ctx: Context, load: impl FnOnce(&Context) -> PyResult<CompiledGraph> + Send) -> PyResult<Self> {
        let compiled = py.detach(|| catch(|| load(&ctx)))?;
        Ok(Model { ctx, compiled })
    }

    fn infos(&self, named: impl Iterator<Item = (String, kiln::OperandId)>) -> Vec<TensorInfo> {
        let graph = self.compiled.graph();
        named
            .map(|(name, id)| {
                let desc = graph.desc(id);
                TensorInfo { name, data_type: desc.data_type, dims: desc.shape.dims().to_vec() }
            })
            .collect()
    }

    /// The feeds of `inputs` (name -> array), read in place where they can be.
    fn feeds(py: Python<'_>, inputs: &Bound<'_, PyDict>) -> PyResult<Vec<(String, Tensor)>> {
        inputs
            .iter()
            .map(|(name, value)| {
                let name: String = name.extract()?;
                let tensor = tensor_from_array(py, &name, &value)?;
                Ok((name, tensor))
            })
            .collect()
    }
}

#[pymethods]
impl Model {
    /// The graph's inputs, in order.
    #[getter]
    fn inputs(&self) -> Vec<TensorInfo> {
        let graph = self.compiled.graph();
        self.infos(graph.inputs().iter().map(|&id| (graph.input_name(id).unwrap_or_default().to_string(), id)))
    }

    /// The graph's outputs, in order.
    #[getter]
    fn outputs(&self) -> Vec<TensorInfo> {
        self.infos(self.compiled.graph().outputs().iter().cloned())
    }

    /// The backend the model was compiled for.
    #[getter]
    fn backend(&self) -> &'static str {
        self.ctx.backend().name()
    }

    /// The threads one run uses.
    #[getter]
    fn threads(&self) -> usize {
        self.ctx.threads()
    }

    /// Runs the model on `inputs` (input name -> array) and returns its
    /// outputs (output name -> read-only array), in the model's output order.
    fn run<'py>(&self, py: Python<'py>, inputs: &Bound<'py, PyDict>) -> PyResult<Bound<'py, PyDict>> {
        let feeds = Self::feeds(py, inputs)?;
        let outputs = py.detach(|| {
            catch(|| {
                let refs: Vec<(&str, &Tensor)> = feeds.iter().map(|(n, t)| (n.as_str(), t)).collect();
                self.ctx.compute(&self.compiled, &refs).map_err(error::runtime)
            })
        })?;
        drop(feeds);
        let result = PyDict::new(py);
        for (name, tensor) in outputs {
            result.set_item(name, array_from_tensor(py, tensor)?)?;
        }
        Ok(result)
    }

    /// `await model.run_async(inputs)`: a coroutine (`kiln._run_async`)
    /// that runs [`Model::run`] on a thread of the asyncio loop's default
    /// executor, so the loop serves other tasks while the kernels run.
    fn run_async<'py>(slf: &Bound<'py, Self>, inputs: Bound<'py, PyDict>) -> PyResult<Bound<'py, PyAny>> {
        slf.py().import("kiln")?.getattr("_run_async")?.call1((slf, inputs))
    }

    /// What the compiler does to this model (the text of `kiln explain`, or
    /// its JSON with `json=True`): operators before and after the graph
    /// passes, rules fired, fusions, pass times, and the operators each
    /// kernel computes, for the cpu backend on this machine.
    #[pyo3(signature = (*, json = false))]
    fn explain(&self, py: Python<'_>, json: bool) -> PyResult<String> {
        let graph = self.compiled.graph();
        py.detach(|| {
            catch(|| {
                let target = kiln::codegen::cpu::Target::host();
                let compiled = kiln::runtime::pipeline_for(&target)
                    .run(graph)
                    .map_err(|e| error::runtime(e.into()))?;
                Ok(if json {
                    kiln::explain::to_json(graph, &compiled).to_string()
                } else {
                    kiln::explain::to_text(graph, &compiled)
                })
            })
        })
    }

    fn __repr__(&self) -> String {
        let graph = self.compiled.graph();
        format!(
            "Model(backend={:?}, threads={}, inputs={}, outputs={})",
            self.ctx.backend().name(),
            self.ctx.threads(),
            graph.inputs().len(),
            graph.outputs().len()
        )
    }
}

/// A context for `backend` on `threads` threads (0: all cores).
pub fn context(backend: &str, threads: usize, optimize: bool) -> PyResult<Context> {
    let backend = backend.parse().map_err(error::runtime)?;
    Context::new(ContextOptions { backend, threads, optimize }).map_err(error::runtime)
}
