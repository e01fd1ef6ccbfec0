//! The ONNX Runtime backend, loaded from `libonnxruntime` at run time.

use std::path::{Path, PathBuf};

use super::backend::{Backend, SessionOptions};
use super::tensor::{Tensor, TensorInfo};
use crate::error::SessionError;

/// Options of the ONNX Runtime backend.
#[derive(Clone, Debug, Default)]
pub struct OrtOptions {
    /// Path of `libonnxruntime.so`; found automatically when unset.
    pub library: Option<PathBuf>,
}

/// A model loaded by ONNX Runtime.
#[derive(Debug)]
pub struct OrtBackend {
    inputs: Vec<TensorInfo>,
    outputs: Vec<TensorInfo>,
}

impl OrtBackend {
    /// Loads the model at `path`.
    pub fn load(_path: &Path, _options: &SessionOptions) -> Result<Self, SessionError> {
        // TODO: the ONNX Runtime backend is not written yet.
        Err(SessionError::BackendUnavailable("ort"))
    }
}

impl Backend for OrtBackend {
    fn name(&self) -> &'static str {
        "ort"
    }

    fn inputs(&self) -> &[TensorInfo] {
        &self.inputs
    }

    fn outputs(&self) -> &[TensorInfo] {
        &self.outputs
    }

    fn run(&self, _inputs: Vec<Tensor>) -> Result<Vec<Tensor>, SessionError> {
        Err(SessionError::BackendUnavailable("ort"))
    }
}
