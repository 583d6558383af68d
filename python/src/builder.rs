//! `kiln.GraphBuilder`: WebNN's `MLGraphBuilder` for Python.
//!
//! One entry point, `_call(op, args, options)`, reaches every operator
//! through kiln's operator table (`kiln::frontend::op_table::build_call`,
//! the table the `.webnn` text format uses): arguments in spec order,
//! options by their WebNN names. `kiln/__init__.py` turns it into one method
//! per operator name. Every call checks the operator's WebNN rules; a broken
//! rule is a `ValueError` with kiln's message.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use kiln::frontend::op_table::{build_call, ArgValue};
use kiln::{DataType, Number, OperandDescriptor, OperandId, Tensor};
use numpy::PyArrayDescr;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyList, PyString, PyTuple, PyType};

use crate::convert::{dtype, dtype_name, tensor_from_array};
use crate::error;
use crate::model::{context, Model};

/// Builders are numbered so an operand of one cannot be passed to another.
static BUILDERS: AtomicU64 = AtomicU64::new(0);

/// An operand of a graph being built: its dtype and shape are known.
#[pyclass(frozen, module = "kiln")]
pub struct Operand {
    builder: u64,
    id: OperandId,
    data_type: DataType,
    dims: Vec<u32>,
}

#[pymethods]
impl Operand {
    /// The NumPy dtype.
    #[getter]
    fn dtype<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArrayDescr>> {
        dtype(py, self.data_type)
    }

    /// The dimensions, as a tuple.
    #[getter]
    fn shape<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(py, &self.dims)
    }

    fn __repr__(&self) -> String {
        format!("Operand({}, {})", self.data_type.name(), kiln::Shape::new(self.dims.clone()))
    }
}

/// Builds a graph one WebNN operator at a time, then compiles it.
#[pyclass(frozen, subclass, module = "kiln")]
pub struct GraphBuilder {
    inner: Mutex<kiln::GraphBuilder>,
    number: u64,
}

impl GraphBuilder {
    /// Runs `f` on the builder, a panic caught (so the lock is never poisoned).
    fn with<T>(&self, f: impl FnOnce(&kiln::GraphBuilder) -> PyResult<T>) -> PyResult<T> {
        let builder = self.inner.lock().map_err(|_| error::KilnError::new_err("the builder's lock was poisoned"))?;
        error::catch(|| f(&builder))
    }

    fn operand(&self, builder: &kiln::GraphBuilder, id: OperandId) -> PyResult<Operand> {
        let desc = builder.descriptor(id).map_err(error::build)?;
        Ok(Operand { builder: self.number, id, data_type: desc.data_type, dims: desc.shape.dims().to_vec() })
    }

    /// An operand of this builder.
    fn own(&self, value: &Bound<'_, Operand>) -> PyResult<OperandId> {
        let operand = value.get();
        if operand.builder != self.number {
            return Err(PyValueError::new_err("the operand belongs to another GraphBuilder"));
        }
        Ok(operand.id)
    }

    /// A Python value as an operator argument.
    fn arg(&self, value: &Bound<'_, PyAny>) -> PyResult<ArgValue> {
        let py = value.py();
        Ok(if value.is_none() {
            ArgValue::Null
        } else if let Ok(operand) = value.cast::<Operand>() {
            ArgValue::Operand(self.own(operand)?)
        } else if let Ok(b) = value.cast::<PyBool>() {
            ArgValue::Bool(b.is_true())
        } else if let Ok(s) = value.cast::<PyString>() {
            ArgValue::Str(s.to_string())
        } else if value.is_instance_of::<PyType>() || value.is_instance_of::<PyArrayDescr>() {
            // A dtype given as numpy.float32 or numpy.dtype("float32").
            ArgValue::Str(dtype_name(&PyArrayDescr::new(py, value)?)?)
        } else if let Ok(i) = value.extract::<i128>() {
            ArgValue::Number(Number::Int(i))
        } else if let Ok(x) = value.extract::<f64>() {
            ArgValue::Number(Number::Float(x))
        } else if value.is_instance_of::<PyList>() || value.is_instance_of::<PyTuple>() {
            ArgValue::List(value.try_iter()?.map(|item| self.arg(&item?)).collect::<PyResult<_>>()?)
        } else {
            let type_name = value.get_type().name()?;
            return Err(PyValueError::new_err(format!(
                "cannot pass a {type_name} to a builder call (operands, numbers, strings, booleans, None, dtypes and lists of these)"
            )));
        })
    }
}

#[pymethods]
impl GraphBuilder {
    #[new]
    fn new() -> Self {
        GraphBuilder { inner: Mutex::new(kiln::GraphBuilder::new()), number: BUILDERS.fetch_add(1, Ordering::Relaxed) }
    }

    /// `input(name, dtype, shape)`: an operand fed at run time.
    fn input(&self, py: Python<'_>, name: &str, dtype: &Bound<'_, PyAny>, shape: Vec<u32>) -> PyResult<Operand> {
        let dtype_name = dtype_name(&PyArrayDescr::new(py, dtype)?)?;
        let data_type = DataType::from_name(&dtype_name)
            .ok_or_else(|| PyValueError::new_err(format!("input `{name}`: numpy dtype {dtype_name} is not a kiln data type")))?;
        self.with(|b| {
            let id = b.input(name, OperandDescriptor::new(data_type, shape)).map_err(error::build)?;
            self.operand(b, id)
        })
    }

    /// `constant(value, dtype=None)`: a constant from an array (or anything
    /// `numpy.asarray` takes, converted to `dtype` when given). The values
    /// are copied: changing the array later does not change the graph.
    #[pyo3(signature = (value, dtype = None))]
    fn constant(&self, py: Python<'_>, value: &Bound<'_, PyAny>, dtype: Option<&Bound<'_, PyAny>>) -> PyResult<Operand> {
        let array = py.import("numpy")?.call_method1("asarray", (value, dtype))?;
        let tensor = tensor_from_array(py, "constant", &array)?;
        let owned = Tensor::from_bytes(tensor.desc().clone(), tensor.bytes().to_vec()).map_err(|e| error::KilnError::new_err(e.to_string()))?;
        self.with(|b| {
            let id = b.constant_tensor(None, owned).map_err(error::build)?;
            self.operand(b, id)
        })
    }

    /// Adds WebNN operator `op` with positional `args` (spec order) and
    /// `options` (by WebNN name, e.g. `windowDimensions`; `label` names the
    /// node); returns its outputs.
    fn _call(&self, op: &str, args: &Bound<'_, PyTuple>, options: &Bound<'_, PyDict>) -> PyResult<Vec<Operand>> {
        let positional = args.iter().map(|a| self.arg(&a)).collect::<PyResult<Vec<_>>>()?;
        let named = options
            .iter()
            .map(|(k, v)| Ok((k.extract::<String>()?, self.arg(&v)?)))
            .collect::<PyResult<BTreeMap<_, _>>>()?;
        self.with(|b| {
            let ids = build_call(b, op, positional, named).map_err(error::call)?;
            ids.into_iter().map(|id| self.operand(b, id)).collect()
        })
    }

    /// `build(outputs)`: the graph with `outputs` (name -> operand), compiled
    /// for `backend` ("cpu", "interp", "kernels" or "gpu") on `threads`
    /// threads (0: all cores). The builder cannot be used afterwards.
    #[pyo3(signature = (outputs, *, backend = "cpu", threads = 0, optimize = true))]
    fn build(&self, py: Python<'_>, outputs: &Bound<'_, PyDict>, backend: &str, threads: usize, optimize: bool) -> PyResult<Model> {
        let outputs = outputs
            .iter()
            .map(|(name, operand)| Ok((name.extract::<String>()?, self.own(operand.cast::<Operand>()?)?)))
            .collect::<PyResult<Vec<_>>>()?;
        let refs: Vec<(&str, OperandId)> = outputs.iter().map(|(n, id)| (n.as_str(), *id)).collect();
        let graph = self.with(|b| b.build(&refs).map_err(error::build))?;
        let ctx = context(backend, threads, optimize)?;
        Model::compile(py, ctx, move |ctx| ctx.compile(graph).map_err(error::runtime))
    }
}
