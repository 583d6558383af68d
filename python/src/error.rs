//! kiln's errors as Python exceptions, with the Rust error's message.
//!
//! Mistakes in what the caller passes (a feed of the wrong name, type or
//! shape; a builder call that breaks an operator's rule; an unknown backend)
//! are `ValueError`; anything else kiln reports (a model file it cannot read,
//! a graph it cannot compile) is `kiln.KilnError`. A panic inside kiln
//! becomes `kiln.KilnError` too, never a Python `PanicException`.

use std::panic::{catch_unwind, AssertUnwindSafe};

use kiln::frontend::op_table::CallError;
use kiln::{BuildError, GraphError, RuntimeError};
use pyo3::exceptions::{PyException, PyValueError};
use pyo3::prelude::*;

pyo3::create_exception!(kiln, KilnError, PyException, "An error kiln reports: a model it cannot read, compile or run.");

/// A runtime error as a Python exception.
pub fn runtime(e: RuntimeError) -> PyErr {
    match &e {
        RuntimeError::Graph(GraphError::Feed { .. }) | RuntimeError::UnknownBackend(_) => PyValueError::new_err(e.to_string()),
        _ => KilnError::new_err(e.to_string()),
    }
}

/// A builder error (an operator's rule broken) as `ValueError`.
pub fn build(e: BuildError) -> PyErr {
    PyValueError::new_err(e.to_string())
}

/// A builder call's error (unknown operator, bad argument, rule broken) as
/// `ValueError`.
pub fn call(e: CallError) -> PyErr {
    PyValueError::new_err(e.to_string())
}

/// Runs `f`, turning a panic into `kiln.KilnError` (needs no Python
/// thread state, so it runs inside `Python::detach`).
pub fn catch<T>(f: impl FnOnce() -> PyResult<T>) -> PyResult<T> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|payload| {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_string());
        Err(KilnError::new_err(format!("internal error (a bug in kiln, please report it): {message}")))
    })
}
