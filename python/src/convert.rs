//! NumPy arrays to kiln tensors and back.
//!
//! In: a C-contiguous, aligned, native-byte-order array of a kiln data type
//! is read in place (the tensor's bytes are a window into the array, which the
//! tensor keeps alive); any other layout is first made so by
//! `numpy.ascontiguousarray` (one copy). Out: an output array is a read-only
//! view of the output tensor's bytes, which the array keeps alive.

use std::sync::Arc;

use kiln::{Bytes, DataType, GraphError, OperandDescriptor, Tensor};
use numpy::npyffi::{self, NPY_ARRAY_ALIGNED, NPY_ARRAY_C_CONTIGUOUS, PY_ARRAY_API};
use numpy::{PyArrayDescr, PyArrayDescrMethods, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

/// The name of a NumPy dtype, whatever its byte order (`>f4` is
/// `float32`): kiln's data types have NumPy's names.
pub fn dtype_name(dtype: &Bound<'_, PyArrayDescr>) -> PyResult<String> {
    dtype.getattr("name")?.extract()
}

/// The NumPy dtype of a kiln data type.
pub fn dtype<'py>(py: Python<'py>, data_type: DataType) -> PyResult<Bound<'py, PyArrayDescr>> {
    PyArrayDescr::new(py, data_type.name())
}

/// The bytes of a NumPy array, borrowed in place: the array stays alive
/// (and, holding a reference, cannot be resized) while a tensor uses them.
struct ArrayBytes {
    /// Keeps the array, and so `data`, alive.
    _array: Py<PyAny>,
    data: *const u8,
    len: usize,
}

// SAFETY: `data` points into the buffer of the array held by `_array`,
// which stays allocated (and unresized) while this value lives, whichever
// thread drops it (pyo3 defers the reference count change to a thread that
// is attached to the interpreter). kiln only reads it. A Python thread that
// writes the array while a run reads it races the way NumPy's own
// GIL-releasing operations do; the docs say not to.
unsafe impl Send for ArrayBytes {}
unsafe impl Sync for ArrayBytes {}

impl AsRef<[u8]> for ArrayBytes {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: see the `Send` impl; `len` is the array's byte length.
        unsafe { std::slice::from_raw_parts(self.data, self.len) }
    }
}

/// The feed error kiln reports for input `name` (the same message as
/// `Graph::check_feeds`), as a Python `ValueError`.
pub fn feed_error(name: &str, rule: String) -> PyErr {
    PyValueError::new_err(GraphError::Feed { name: name.to_string(), rule }.to_string())
}

/// A tensor of `array`'s dtype and shape, reading the array in place when its
/// layout allows. `what` names the value in errors (an input's name).
pub fn tensor_from_array(py: Python<'_>, what: &str, value: &Bound<'_, PyAny>) -> PyResult<Tensor> {
    let Ok(array) = value.cast::<PyUntypedArray>() else {
        let type_name = value.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "?".into());
        return Err(feed_error(what, format!("expected a numpy.ndarray, got {type_name}")));
    };
    let dtype = array.dtype();
    let dtype_name = dtype_name(&dtype)?;
    let Some(data_type) = DataType::from_name(&dtype_name) else {
        return Err(feed_error(
            what,
            format!("numpy dtype {dtype_name} is not a kiln data type (float32, float16, int8, uint8, int32, uint32, int64, uint64)"),
        ));
    };
    let dims = array
        .shape()
        .iter()
        .map(|&d| u32::try_from(d).ok().filter(|&d| d > 0))
        .collect::<Option<Vec<u32>>>()
        .ok_or_else(|| feed_error(what, format!("shape {:?}: every dimension must be between 1 and 2^32 - 1", array.shape())))?;
    let desc = OperandDescriptor::new(data_type, dims);
    let in_place = array.is_c_contiguous() && array.is_aligned() && dtype.is_native_byteorder() != Some(false);
    let array = if in_place {
        array.clone()
    } else {
        let native = dtype.call_method1("newbyteorder", ("=",))?;
        let numpy = py.import("numpy")?;
        numpy.call_method1("ascontiguousarray", (array, native))?.cast_into::<PyUntypedArray>()?
    };
    // SAFETY: a live array; its data pointer and byte length describe its
    // buffer, C-contiguous after the step above.
    let data = unsafe { (*npyffi::_PyArray_GET_ITEM_DATA(array.as_array_ptr())).data as *const u8 };
    let len = array.len() * dtype.itemsize();
    let owner = Arc::new(ArrayBytes { _array: array.into_any().unbind(), data, len });
    let bytes = Bytes::from_shared(owner, 0..len).ok_or_else(|| feed_error(what, "the array's buffer is shorter than its shape".into()))?;
    Tensor::new(desc, bytes).map_err(|e| feed_error(what, e.to_string()))
}

/// Holds an output tensor for the NumPy array that views its bytes.
#[pyclass(frozen, module = "kiln")]
pub struct TensorBuffer {
    _tensor: Tensor,
}

/// A read-only NumPy array viewing `tensor`'s bytes (no copy).
pub fn array_from_tensor<'py>(py: Python<'py>, tensor: Tensor) -> PyResult<Bound<'py, PyAny>> {
    let dtype = dtype(py, tensor.data_type())?;
    let mut dims: Vec<npyffi::npy_intp> = tensor.shape().dims().iter().map(|&d| d as npyffi::npy_intp).collect();
    let data = tensor.bytes().as_ptr();
    let aligned = (data as usize).is_multiple_of(tensor.data_type().byte_size());
    let owner = Bound::new(py, TensorBuffer { _tensor: tensor })?;
    // NumPy reads an array not marked aligned correctly, only slower.
    let flags = NPY_ARRAY_C_CONTIGUOUS | if aligned { NPY_ARRAY_ALIGNED } else { 0 };
    // SAFETY: `data` points to `dims`' product of `dtype` elements (a
    // tensor's byte length matches its descriptor), C-contiguous (null
    // strides), kept alive by `owner`, which becomes the array's base; the
    // array is not writeable (no WRITEABLE flag), so the shared bytes are
    // never written. NewFromDescr steals the dtype reference.
    unsafe {
        let array = PY_ARRAY_API.PyArray_NewFromDescr(
            py,
            npyffi::get_type_object(py, npyffi::NpyTypes::PyArray_Type),
            dtype.into_dtype_ptr(),
            dims.len() as std::ffi::c_int,
            dims.as_mut_ptr(),
            std::ptr::null_mut(),
            data as *mut std::ffi::c_void,
            flags,
            std::ptr::null_mut(),
        );
        let array = Bound::from_owned_ptr_or_err(py, array)?;
        if PY_ARRAY_API.PyArray_SetBaseObject(py, array.as_ptr().cast(), owner.into_ptr()) != 0 {
            return Err(PyErr::fetch(py));
        }
        Ok(array)
    }
}
