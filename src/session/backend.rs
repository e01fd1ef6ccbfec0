//! The backend trait, backend selection and the input checks every backend shares.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use super::tensor::{Tensor, TensorInfo, TensorMap, shape_string};
use crate::error::SessionError;

/// A loaded model that runs inferences.
///
/// Implementations are shared between threads: `run` takes `&self`, and a backend whose
/// runtime needs exclusive access per call (ONNX Runtime's `Session::run` takes `&mut self`)
/// keeps a pool of sessions inside.
pub trait Backend: Send + Sync + 'static {
    /// Returns the backend's name, such as `"tract"`.
    fn name(&self) -> &'static str;

    /// Returns the model's inputs, in the order `run` takes them.
    fn inputs(&self) -> &[TensorInfo];

    /// Returns the model's outputs, in the order `run` returns them.
    fn outputs(&self) -> &[TensorInfo];

    /// Runs one inference. `inputs` are in the order of [`Backend::inputs`] and have already
    /// been checked against them by [`check_inputs`].
    fn run(&self, inputs: Vec<Tensor>) -> Result<Vec<Tensor>, SessionError>;
}

/// Which backend runs a model.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BackendKind {
    /// tract, in pure Rust: needs nothing installed.
    #[default]
    Tract,
    /// ONNX Runtime, loaded from `libonnxruntime` at run time.
    Ort,
}

impl BackendKind {
    /// Returns the backend's name as used on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Tract => "tract",
            BackendKind::Ort => "ort",
        }
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for BackendKind {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        match name {
            "tract" => Ok(BackendKind::Tract),
            "ort" | "onnxruntime" => Ok(BackendKind::Ort),
            _ => Err(format!("unknown backend {name:?}: expected tract or ort")),
        }
    }
}

/// Options for loading a model.
#[derive(Clone, Debug, Default)]
pub struct SessionOptions {
    /// The backend.
    pub backend: BackendKind,
    /// Concrete shapes for inputs whose declared shape has free dimensions, by input name.
    /// tract optimizes the model for these shapes; ONNX Runtime only checks that they fit.
    pub input_shapes: HashMap<String, Vec<usize>>,
    /// ONNX Runtime options.
    #[cfg(feature = "ort")]
    pub ort: crate::session::OrtOptions,
}

impl SessionOptions {
    /// Sets `input_shapes` from example inputs.
    pub fn with_shapes_of(mut self, inputs: &TensorMap) -> Self {
        for (name, tensor) in inputs.iter() {
            self.input_shapes.insert(name.to_owned(), tensor.shape().to_vec());
        }
        self
    }
}

/// Loads the model at `path` with the backend `options` names.
#[cfg_attr(
    not(any(feature = "tract", feature = "ort")),
    allow(unused_variables, reason = "every backend feature is off")
)]
pub fn load_backend(
    path: impl AsRef<Path>,
    options: &SessionOptions,
) -> Result<Arc<dyn Backend>, SessionError> {
    let path = path.as_ref();
    match options.backend {
        #[cfg(feature = "tract")]
        BackendKind::Tract => Ok(Arc::new(super::TractBackend::load(path, options)?)),
        #[cfg(feature = "ort")]
        BackendKind::Ort => Ok(Arc::new(super::OrtBackend::load(path, options)?)),
        #[allow(unreachable_patterns, reason = "reached when a backend feature is off")]
        other => Err(SessionError::BackendUnavailable(other.as_str())),
    }
}

/// Orders `inputs` as the model declares them and checks every name, element type and shape.
pub fn check_inputs(
    declared: &[TensorInfo],
    inputs: TensorMap,
) -> Result<Vec<Tensor>, SessionError> {
    let names = || declared.iter().map(|info| info.to_string()).collect::<Vec<_>>().join(", ");
    let mut inputs = inputs;
    if let Some((unknown, _)) =
        inputs.iter().find(|(name, _)| !declared.iter().any(|info| info.name == *name))
    {
        return Err(SessionError::UnknownInput { name: unknown.to_owned(), expected: names() });
    }
    let mut ordered = Vec::with_capacity(declared.len());
    for info in declared {
        let tensor = inputs.remove(&info.name).ok_or_else(|| SessionError::MissingInput {
            name: info.name.clone(),
            expected: format!("{}{}", info.dtype, info.shape_string()),
        })?;
        if tensor.dtype() != info.dtype {
            return Err(SessionError::WrongType {
                name: info.name.clone(),
                expected: info.dtype.to_string(),
                actual: tensor.dtype().to_string(),
            });
        }
        if !info.accepts_shape(tensor.shape()) {
            return Err(SessionError::WrongShape {
                name: info.name.clone(),
                expected: info.shape_string(),
                actual: shape_string(tensor.shape()),
            });
        }
        ordered.push(tensor);
    }
    Ok(ordered)
}
