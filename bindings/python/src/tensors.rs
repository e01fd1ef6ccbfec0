//! Conversion between numpy arrays and inferwatch tensors.
//!
//! An input array is read through a read-only borrow and copied once into the owned
//! `ndarray::ArrayD` that a [`Tensor`] holds, in C order whatever the array's strides: the
//! backends take their inputs by value, so a copy cannot be avoided. Outputs move into numpy
//! without a copy (`into_pyarray` hands the Rust buffer to the new array).

use inferwatch::Tensor;
use numpy::PyUntypedArrayMethods;
use numpy::ndarray::{ArrayD, ArrayViewD};
use numpy::{Element, IntoPyArray, PyArrayDyn, PyArrayMethods, PyUntypedArray};
use pyo3::prelude::*;

use crate::errors::{Kind, error, input_error};

/// The numpy dtypes a model input may have, as listed in errors.
const SUPPORTED: &str = "float32, float64, int64, int32, uint8 or bool";

/// Copies the numpy array `value`, given for input `name`, into a tensor.
pub(crate) fn to_tensor(py: Python<'_>, name: &str, value: &Bound<'_, PyAny>) -> PyResult<Tensor> {
    let Ok(array) = value.cast::<PyUntypedArray>() else {
        let type_name = value.get_type().name()?;
        return Err(input_error(
            py,
            format!(
                "input {name:?} is a {type_name}, not a numpy.ndarray: convert it with \
                 numpy.asarray(value, dtype=...)"
            ),
        ));
    };
    if let Some(tensor) = copy_as::<f32>(py, name, value, Tensor::F32)? {
        return Ok(tensor);
    }
    if let Some(tensor) = copy_as::<f64>(py, name, value, Tensor::F64)? {
        return Ok(tensor);
    }
    if let Some(tensor) = copy_as::<i64>(py, name, value, Tensor::I64)? {
        return Ok(tensor);
    }
    if let Some(tensor) = copy_as::<i32>(py, name, value, Tensor::I32)? {
        return Ok(tensor);
    }
    if let Some(tensor) = copy_as::<u8>(py, name, value, Tensor::U8)? {
        return Ok(tensor);
    }
    if let Some(tensor) = copy_as::<bool>(py, name, value, Tensor::Bool)? {
        return Ok(tensor);
    }
    let dtype = array.dtype().str()?;
    Err(input_error(
        py,
        format!(
            "input {name:?} has dtype {dtype}, which inferwatch does not support: convert it \
             to {SUPPORTED} in native byte order with array.astype(...)"
        ),
    ))
}

/// Copies `value` into a tensor when its dtype is `T`; returns `None` for another dtype.
fn copy_as<T: Element + Clone>(
    py: Python<'_>,
    name: &str,
    value: &Bound<'_, PyAny>,
    wrap: fn(ArrayD<T>) -> Tensor,
) -> PyResult<Option<Tensor>> {
    let Ok(array) = value.cast::<PyArrayDyn<T>>() else {
        return Ok(None);
    };
    let readonly = array.try_readonly().map_err(|e| {
        input_error(py, format!("input {name:?} cannot be read while Rust code writes it: {e}"))
    })?;
    Ok(Some(wrap(standard_copy(readonly.as_array()))))
}

/// Copies a view of any strides into an owned array in C order.
fn standard_copy<T: Clone>(view: ArrayViewD<'_, T>) -> ArrayD<T> {
    view.as_standard_layout().into_owned()
}

/// Moves an output tensor into a new numpy array.
pub(crate) fn to_numpy<'py>(
    py: Python<'py>,
    name: &str,
    tensor: Tensor,
) -> PyResult<Bound<'py, PyAny>> {
    Ok(match tensor {
        Tensor::F32(array) => array.into_pyarray(py).into_any(),
        Tensor::F64(array) => array.into_pyarray(py).into_any(),
        Tensor::I64(array) => array.into_pyarray(py).into_any(),
        Tensor::I32(array) => array.into_pyarray(py).into_any(),
        Tensor::U8(array) => array.into_pyarray(py).into_any(),
        Tensor::Bool(array) => array.into_pyarray(py).into_any(),
        other => {
            return Err(error(
                py,
                Kind::Base,
                format!(
                    "output {name:?} has element type {}, which the Python binding cannot \
                     convert to numpy",
                    other.dtype()
                ),
            ));
        }
    })
}
