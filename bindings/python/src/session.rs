//! `Session`: an ONNX model loaded by a backend and timed on every run.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use inferwatch::session::{check_inputs, shape_string};
use inferwatch::{
    BackendKind, InstrumentedSession, SessionError, SessionOptions, TensorMap, TractBackend,
};
use pyo3::prelude::*;
use pyo3::sync::MutexExt;
use pyo3::types::{PyDict, PyString, PyTuple};

use crate::errors::{config_error, input_error, session_error};
use crate::monitor::Monitor;
use crate::tensors::{to_numpy, to_tensor};

/// A model session, loaded at construction or, for a tract model whose inputs have free
/// dimensions that `input_shapes` does not fix, at the first run.
///
/// tract optimizes a model for concrete input shapes only, so such a model waits for the
/// shapes of the first inputs, as `inferwatch run` uses the shapes of its sample inputs.
#[pyclass(module = "inferwatch", frozen)]
pub(crate) struct Session {
    monitor: Py<Monitor>,
    path: PathBuf,
    options: SessionOptions,
    /// The inputs as the model file declares them, free dimensions included.
    declared: Vec<inferwatch::TensorInfo>,
    /// Set once, at construction or by the first run; read without a lock afterwards.
    loaded: OnceLock<InstrumentedSession>,
    /// Held by the thread that loads the model at the first run, so that threads that run
    /// at once load it only once.
    loading: Mutex<()>,
    /// True when the model was loaded for the shapes of the first run.
    shapes_from_first_run: bool,
}

#[pymethods]
impl Session {
    #[new]
    #[pyo3(signature = (path, backend="tract", monitor=None, *, input_shapes=None))]
    fn new(
        py: Python<'_>,
        path: PathBuf,
        backend: &str,
        monitor: Option<Py<Monitor>>,
        input_shapes: Option<HashMap<String, Vec<usize>>>,
    ) -> PyResult<Self> {
        let backend: BackendKind = backend.parse().map_err(|message: String| {
            config_error(py, format!("invalid backend in Session(): {message}"))
        })?;
        let monitor = match monitor {
            Some(monitor) => monitor,
            None => Py::new(py, Monitor::build_default(py)?)?,
        };
        let options = SessionOptions {
            backend,
            input_shapes: input_shapes.unwrap_or_default(),
            ..SessionOptions::default()
        };
        let (mut declared, shapes_from_first_run) = match backend {
            BackendKind::Tract => {
                let declared = py
                    .detach(|| TractBackend::declared_inputs(&path))
                    .map_err(|e| session_error(py, e))?;
                let waits = declared.iter().any(|info| {
                    !options.input_shapes.contains_key(&info.name) && !is_concrete(info)
                });
                (declared, waits)
            }
            _ => (Vec::new(), false),
        };
        let loaded = OnceLock::new();
        if !shapes_from_first_run {
            let session = load(py, &monitor, &path, &options).map_err(|error| {
                if options.input_shapes.is_empty() {
                    return session_error(py, error);
                }
                let shapes = options
                    .input_shapes
                    .iter()
                    .map(|(name, shape)| format!("{name} {}", shape_string(shape)));
                shapes_error(py, shapes.collect(), error)
            })?;
            if declared.is_empty() {
                declared = session.inputs().to_vec();
            }
            let _ = loaded.set(session);
        }
        Ok(Session {
            monitor,
            path,
            options,
            declared,
            loaded,
            loading: Mutex::new(()),
            shapes_from_first_run,
        })
    }

    fn run<'py>(
        &self,
        py: Python<'py>,
        inputs: &Bound<'py, PyDict>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let recorder = self.monitor.get().inner().recorder();
        let tensors = match convert_inputs(py, inputs) {
            Ok(tensors) => tensors,
            Err(error) => {
                // Counted like an input the session's own checks reject.
                recorder.record_failure();
                return Err(error);
            }
        };
        let session = match self.loaded.get() {
            Some(session) => session,
            None => match self.load_for(py, &tensors) {
                Ok(session) => session,
                Err(error) => {
                    recorder.record_failure();
                    return Err(error);
                }
            },
        };
        let outputs = py.detach(|| session.run(tensors)).map_err(|e| self.run_error(py, e))?;
        let dict = PyDict::new(py);
        for (name, tensor) in outputs.into_vec() {
            let array = to_numpy(py, &name, tensor)?;
            dict.set_item(name, array)?;
        }
        Ok(dict)
    }

    /// The model's inputs, in declaration order: as the file declares them until the model
    /// is loaded, then with the shapes it was loaded for.
    #[getter]
    fn inputs(&self) -> Vec<TensorInfo> {
        let inputs = self.loaded.get().map_or(self.declared.as_slice(), |s| s.inputs());
        inputs.iter().map(TensorInfo::from).collect()
    }

    /// The model's outputs, in the order `run` returns them.
    #[getter]
    fn outputs(&self) -> Vec<TensorInfo> {
        self.loaded
            .get()
            .map(|session| session.outputs().iter().map(TensorInfo::from).collect())
            .unwrap_or_default()
    }

    #[getter]
    fn loaded(&self) -> bool {
        self.loaded.get().is_some()
    }

    #[getter]
    fn backend(&self) -> &'static str {
        self.options.backend.as_str()
    }

    #[getter]
    fn path(&self) -> PathBuf {
        self.path.clone()
    }

    #[getter]
    fn monitor(&self, py: Python<'_>) -> Py<Monitor> {
        self.monitor.clone_ref(py)
    }

    fn __repr__(&self) -> String {
        format!("Session({:?}, backend={:?})", self.path.display().to_string(), self.backend())
    }
}

impl Session {
    /// Loads the model for the shapes of `inputs`, the first run's, unless another thread
    /// loaded it meanwhile.
    fn load_for(&self, py: Python<'_>, inputs: &TensorMap) -> PyResult<&InstrumentedSession> {
        // Waits with the GIL released, because the loading thread needs the GIL to finish.
        let _guard = self.loading.lock_py_attached(py).unwrap_or_else(|e| e.into_inner());
        if let Some(session) = self.loaded.get() {
            return Ok(session);
        }
        let mut options = self.options.clone();
        for (name, tensor) in inputs.iter() {
            options.input_shapes.entry(name.to_owned()).or_insert_with(|| tensor.shape().to_vec());
        }
        // Check names, types and shapes against the declared inputs first, so that a wrong
        // input gets the same error as on a loaded session rather than a tract load error.
        check_inputs(&self.declared, inputs.clone()).map_err(|e| session_error(py, e))?;
        let session = load(py, &self.monitor, &self.path, &options).map_err(|error| {
            let shapes = inputs
                .iter()
                .map(|(name, tensor)| format!("{name} {}", shape_string(tensor.shape())));
            shapes_error(py, shapes.collect(), error)
        })?;
        Ok(self.loaded.get_or_init(|| session))
    }

    /// Maps a run error, adding what to do when the shapes fixed at the first run no
    /// longer fit.
    fn run_error(&self, py: Python<'_>, error: SessionError) -> PyErr {
        if self.shapes_from_first_run && matches!(error, SessionError::WrongShape { .. }) {
            return input_error(
                py,
                format!(
                    "{error} (the tract backend optimized the model for the shapes of the \
                     first run: create a Session per input shape, or use backend=\"ort\")"
                ),
            );
        }
        session_error(py, error)
    }
}

/// Loads the model with the GIL released: tract's optimization can take seconds.
fn load(
    py: Python<'_>,
    monitor: &Py<Monitor>,
    path: &Path,
    options: &SessionOptions,
) -> Result<InstrumentedSession, SessionError> {
    let monitor = monitor.get().inner().clone();
    py.detach(|| monitor.session(path, options))
}

/// Maps an error from loading the model for the given input shapes.
///
/// The file was parsed when the session was made, because tract reads the declared inputs
/// first. A failure to optimize the model therefore comes from the shapes and raises
/// `InputError`. Other errors map as usual.
fn shapes_error(py: Python<'_>, mut shapes: Vec<String>, error: SessionError) -> PyErr {
    match error {
        SessionError::Load { .. } => {
            shapes.sort();
            let shapes = shapes.join(", ");
            input_error(py, format!("the model does not accept inputs of shapes {shapes}: {error}"))
        }
        other => session_error(py, other),
    }
}

fn is_concrete(info: &inferwatch::TensorInfo) -> bool {
    info.shape.as_ref().is_some_and(|dims| dims.iter().all(Option::is_some))
}

fn convert_inputs(py: Python<'_>, inputs: &Bound<'_, PyDict>) -> PyResult<TensorMap> {
    let mut tensors = TensorMap::new();
    for (key, value) in inputs.iter() {
        let name: String = key.extract().map_err(|_| {
            let key_repr = key.repr().map(|r| r.to_string()).unwrap_or_default();
            input_error(py, format!("input name {key_repr} is not a str: key inputs by name"))
        })?;
        let tensor = to_tensor(py, &name, &value)?;
        tensors.insert(name, tensor);
    }
    Ok(tensors)
}

/// The name, element type and shape a model declares for an input or output.
#[pyclass(module = "inferwatch", frozen)]
pub(crate) struct TensorInfo {
    name: String,
    dtype: String,
    shape: Option<Vec<Option<usize>>>,
}

impl From<&inferwatch::TensorInfo> for TensorInfo {
    fn from(info: &inferwatch::TensorInfo) -> Self {
        TensorInfo {
            name: info.name.clone(),
            dtype: info.dtype.to_string(),
            shape: info.shape.clone(),
        }
    }
}

#[pymethods]
impl TensorInfo {
    #[getter]
    fn name(&self) -> &str {
        &self.name
    }

    #[getter]
    fn dtype(&self) -> &str {
        &self.dtype
    }

    #[getter]
    fn shape<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyTuple>>> {
        self.shape.as_ref().map(|dims| PyTuple::new(py, dims)).transpose()
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let shape = match self.shape(py)? {
            None => "None".to_owned(),
            Some(dims) => dims.repr()?.to_string(),
        };
        let name = PyString::new(py, &self.name).repr()?;
        let dtype = PyString::new(py, &self.dtype).repr()?;
        Ok(format!("TensorInfo(name={name}, dtype={dtype}, shape={shape})"))
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other.cast::<TensorInfo>().is_ok_and(|other| {
            let other = other.get();
            self.name == other.name && self.dtype == other.dtype && self.shape == other.shape
        })
    }
}
