//! The Python exception hierarchy and the mapping of inferwatch errors onto it.
//!
//! ```text
//! Exception
//! └── InferwatchError          every error inferwatch raises; inference failures
//!     ├── ModelError           the model file cannot be read, decoded or loaded
//!     ├── InputError           (also a ValueError) an input or argument does not fit
//!     ├── ConfigError          (also a ValueError) an option is invalid, or a runtime
//!     │                        library or backend is missing
//!     └── ExportError          an exporter failed to send
//! ```
//!
//! `InputError` and `ConfigError` also derive from `ValueError`, so code that already catches
//! `ValueError` for bad arguments keeps working. The classes are made with `type()` when the
//! module is first imported, because pyo3's exception macro takes a single base class.
//! Messages are those of the Rust errors, except where the Rust message gives a hint that
//! names a command-line flag: there the hint names the Python argument instead.

use std::fmt::Display;

use inferwatch::{OtelError, SessionError};
use pyo3::exceptions::{PyException, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple, PyType};

/// The exception classes, created once per interpreter.
struct ExceptionTypes {
    base: Py<PyType>,
    model: Py<PyType>,
    input: Py<PyType>,
    config: Py<PyType>,
    export: Py<PyType>,
}

static TYPES: PyOnceLock<ExceptionTypes> = PyOnceLock::new();

/// The exception class an error maps onto.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Kind {
    /// `InferwatchError` itself.
    Base,
    /// `ModelError`.
    Model,
    /// `InputError`.
    Input,
    /// `ConfigError`.
    Config,
    /// `ExportError`.
    Export,
}

fn types(py: Python<'_>) -> PyResult<&ExceptionTypes> {
    TYPES.get_or_try_init(py, || create_types(py))
}

fn create_types(py: Python<'_>) -> PyResult<ExceptionTypes> {
    let make = |name: &str, bases: Bound<'_, PyTuple>, doc: &str| -> PyResult<Py<PyType>> {
        let namespace = PyDict::new(py);
        namespace.set_item("__module__", "inferwatch")?;
        namespace.set_item("__doc__", doc)?;
        let class = py.get_type::<PyType>().call1((name, bases, namespace))?;
        Ok(class.cast_into::<PyType>()?.unbind())
    };
    let exception = py.get_type::<PyException>();
    let value_error = py.get_type::<PyValueError>();
    let base = make(
        "InferwatchError",
        PyTuple::new(py, [exception])?,
        "Base class of every error inferwatch raises.",
    )?;
    let base_bound = base.bind(py).clone();
    let model = make(
        "ModelError",
        PyTuple::new(py, [base_bound.clone()])?,
        "The model file cannot be read, decoded or loaded by the backend.",
    )?;
    let input = make(
        "InputError",
        PyTuple::new(py, [base_bound.clone(), value_error.clone()])?,
        "An input tensor or argument has the wrong name, type, shape or value.",
    )?;
    let config = make(
        "ConfigError",
        PyTuple::new(py, [base_bound.clone(), value_error])?,
        "An option is invalid, or a backend or its runtime library is not available.",
    )?;
    let export = make(
        "ExportError",
        PyTuple::new(py, [base_bound])?,
        "An exporter failed to send metrics or reports.",
    )?;
    Ok(ExceptionTypes { base, model, input, config, export })
}

/// Adds the exception classes to the module.
pub(crate) fn register(module: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = module.py();
    let types = types(py)?;
    module.add("InferwatchError", types.base.bind(py))?;
    module.add("ModelError", types.model.bind(py))?;
    module.add("InputError", types.input.bind(py))?;
    module.add("ConfigError", types.config.bind(py))?;
    module.add("ExportError", types.export.bind(py))?;
    Ok(())
}

/// Returns an exception of `kind` carrying `message`.
pub(crate) fn error(py: Python<'_>, kind: Kind, message: impl Display) -> PyErr {
    let types = match types(py) {
        Ok(types) => types,
        Err(error) => return error,
    };
    let class = match kind {
        Kind::Base => &types.base,
        Kind::Model => &types.model,
        Kind::Input => &types.input,
        Kind::Config => &types.config,
        Kind::Export => &types.export,
    };
    PyErr::from_type(class.bind(py).clone(), message.to_string())
}

/// Returns an `InputError`.
pub(crate) fn input_error(py: Python<'_>, message: impl Display) -> PyErr {
    error(py, Kind::Input, message)
}

/// Returns a `ConfigError`.
pub(crate) fn config_error(py: Python<'_>, message: impl Display) -> PyErr {
    error(py, Kind::Config, message)
}

/// Returns a `ConfigError` for an invalid argument, worded like the library's config errors:
/// `invalid window "-1" in Monitor(): expected a positive number of seconds`.
pub(crate) fn invalid_argument(
    py: Python<'_>,
    origin: &str,
    key: &str,
    value: impl Display,
    expected: &str,
) -> PyErr {
    let error = inferwatch::ConfigError::Invalid {
        origin: origin.to_owned(),
        key: key.to_owned(),
        value: value.to_string(),
        expected: expected.to_owned(),
    };
    config_error(py, error)
}

/// Maps a session error onto the exception hierarchy.
///
/// Reading, decoding and loading the model raise `ModelError`. The input checks raise
/// `InputError`, and a missing backend or runtime library raises `ConfigError`. A failure
/// while the backend runs raises `InferwatchError`.
pub(crate) fn session_error(py: Python<'_>, failure: SessionError) -> PyErr {
    match failure {
        SessionError::UnsupportedOperator { path, backend, node, op } => error(
            py,
            Kind::Model,
            format!(
                "model {} uses operator {op} (node {node:?}) that the {backend} backend does \
                 not support: try backend=\"ort\"",
                path.display()
            ),
        ),
        SessionError::MissingInput { name, expected } => input_error(
            py,
            format!("missing input {name:?} ({expected}): add it to the dict passed to run()"),
        ),
        SessionError::ReadModel { .. }
        | SessionError::NotOnnx { .. }
        | SessionError::Load { .. } => error(py, Kind::Model, failure),
        SessionError::UnknownInput { .. }
        | SessionError::WrongType { .. }
        | SessionError::WrongShape { .. } => error(py, Kind::Input, failure),
        SessionError::Runtime(_) | SessionError::BackendUnavailable(_) => {
            error(py, Kind::Config, failure)
        }
        other => error(py, Kind::Base, other),
    }
}

/// Maps an OpenTelemetry exporter error: an invalid setting or endpoint raises
/// `ConfigError`, a failed export `ExportError`.
pub(crate) fn otel_error(py: Python<'_>, failure: OtelError) -> PyErr {
    match failure {
        OtelError::Config(_) | OtelError::Build { .. } => error(py, Kind::Config, failure),
        other => error(py, Kind::Export, other),
    }
}
