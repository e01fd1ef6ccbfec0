//! Conversions between inferwatch's tensors and ONNX Runtime values, and from ONNX Runtime's
//! errors to [`SessionError`].

use std::path::Path;

use ort::value::{DynValue, Outlet, TensorElementType, ValueType};

use super::NAME;
use crate::error::SessionError;
use crate::session::tensor::{DType, Tensor, TensorInfo};

/// Returns the name, element type and shape of a model input or output. Free dimensions
/// (ONNX Runtime reports them as -1) become `None`.
pub(super) fn tensor_info(
    path: &Path,
    kind: &str,
    outlet: &Outlet,
) -> Result<TensorInfo, SessionError> {
    let unsupported = |what: String| SessionError::Load {
        path: path.to_owned(),
        backend: NAME,
        detail: format!("{kind} {:?} is {what}, which inferwatch does not handle", outlet.name()),
    };
    let ValueType::Tensor { ty, shape, .. } = outlet.dtype() else {
        return Err(unsupported(format!("a {}", outlet.dtype())));
    };
    let dtype = dtype_of(*ty).ok_or_else(|| unsupported(format!("a tensor of {ty}")))?;
    let dims = shape.iter().map(|&size| usize::try_from(size).ok()).collect();
    Ok(TensorInfo { name: outlet.name().to_owned(), dtype, shape: Some(dims) })
}

fn dtype_of(element: TensorElementType) -> Option<DType> {
    Some(match element {
        TensorElementType::Float32 => DType::F32,
        TensorElementType::Float64 => DType::F64,
        TensorElementType::Int64 => DType::I64,
        TensorElementType::Int32 => DType::I32,
        TensorElementType::Uint8 => DType::U8,
        TensorElementType::Bool => DType::Bool,
        _ => return None,
    })
}

/// Moves a tensor into an ONNX Runtime value. A tensor in standard (C) layout is handed over
/// without a copy.
pub(super) fn to_value(tensor: Tensor) -> ort::Result<DynValue> {
    use ort::value::Tensor as OrtTensor;
    Ok(match tensor {
        Tensor::F32(array) => OrtTensor::from_array(array)?.into_dyn(),
        Tensor::F64(array) => OrtTensor::from_array(array)?.into_dyn(),
        Tensor::I64(array) => OrtTensor::from_array(array)?.into_dyn(),
        Tensor::I32(array) => OrtTensor::from_array(array)?.into_dyn(),
        Tensor::U8(array) => OrtTensor::from_array(array)?.into_dyn(),
        Tensor::Bool(array) => OrtTensor::from_array(array)?.into_dyn(),
    })
}

/// Copies an output value into a tensor.
pub(super) fn from_value(name: &str, value: &DynValue) -> Result<Tensor, SessionError> {
    let run_error = |detail: String| SessionError::Run { backend: NAME, detail };
    let ValueType::Tensor { ty, .. } = value.dtype() else {
        return Err(run_error(format!("output {name:?} is a {}, not a tensor", value.dtype())));
    };
    let extract_error = |e: ort::Error| run_error(format!("failed to read output {name:?}: {e}"));
    Ok(match dtype_of(*ty) {
        Some(DType::F32) => {
            Tensor::F32(value.try_extract_array().map_err(extract_error)?.to_owned())
        }
        Some(DType::F64) => {
            Tensor::F64(value.try_extract_array().map_err(extract_error)?.to_owned())
        }
        Some(DType::I64) => {
            Tensor::I64(value.try_extract_array().map_err(extract_error)?.to_owned())
        }
        Some(DType::I32) => {
            Tensor::I32(value.try_extract_array().map_err(extract_error)?.to_owned())
        }
        Some(DType::U8) => Tensor::U8(value.try_extract_array().map_err(extract_error)?.to_owned()),
        Some(DType::Bool) => {
            Tensor::Bool(value.try_extract_array().map_err(extract_error)?.to_owned())
        }
        None => {
            return Err(run_error(format!(
                "output {name:?} has element type {ty}, which inferwatch does not handle"
            )));
        }
    })
}

/// Turns an error from creating a session into the most specific [`SessionError`].
pub(super) fn classify_load_error(path: &Path, error: &ort::Error) -> SessionError {
    let detail = error.message().to_owned();
    match error.code() {
        ort::ErrorCode::InvalidProtobuf | ort::ErrorCode::NoModel => {
            return SessionError::NotOnnx { path: path.to_owned(), detail };
        }
        ort::ErrorCode::NotImplemented
        | ort::ErrorCode::InvalidGraph
        | ort::ErrorCode::GenericFailure => {
            if let Some((op, node)) = unsupported_operator(&detail) {
                return SessionError::UnsupportedOperator {
                    path: path.to_owned(),
                    backend: NAME,
                    node,
                    op,
                };
            }
        }
        _ => {}
    }
    SessionError::Load { path: path.to_owned(), backend: NAME, detail }
}

/// Finds the operator and node in ONNX Runtime's messages about an operator it lacks.
///
/// ONNX Runtime 1.31.1 reports an operator that no opset defines as `This is an invalid
/// model. In Node, ("Conv@0", NoSuchOp, "", -1) : (...) -> (...) , Error No Op registered for
/// NoSuchOp with domain_version of 11`, and an operator without a kernel for the given types
/// as `Could not find an implementation for Neg(13) node with name 'negate'`.
fn unsupported_operator(message: &str) -> Option<(String, String)> {
    const NO_KERNEL: &str = "Could not find an implementation for ";
    const NO_OP: &str = "No Op registered for ";
    if let Some(start) = message.find(NO_KERNEL) {
        let rest = &message[start + NO_KERNEL.len()..];
        let op: String = rest.chars().take_while(|&c| c != '(' && c != ' ').collect();
        let node = quoted_between(rest, "node with name '", "'").unwrap_or_default();
        return Some((op, node));
    }
    let start = message.find(NO_OP)? + NO_OP.len();
    let op: String = message[start..].chars().take_while(|c| !c.is_whitespace()).collect();
    let node = quoted_between(message, "In Node, (\"", "\"").unwrap_or_default();
    Some((op, node))
}

fn quoted_between(text: &str, open: &str, close: &str) -> Option<String> {
    let start = text.find(open)? + open.len();
    let len = text[start..].find(close)?;
    Some(text[start..start + len].to_owned())
}
