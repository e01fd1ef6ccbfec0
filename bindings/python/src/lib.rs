//! The native module `inferwatch._native` behind the Python package `inferwatch`.
//!
//! The package re-exports everything defined here; the user documentation of each class
//! and method lives in the hand-written stubs (`python/inferwatch/_native.pyi`), which
//! `mypy.stubtest` checks against this module.
//!
//! - `Session` (`session.rs`) loads a model and runs it on numpy arrays with the GIL released.
//! - `Monitor` (`monitor.rs`) owns the rolling window and times any Python code through
//!   `measure()`, `time()` and `record()`.
//! - `alarms.rs` runs the detector a `Monitor` starts for a profile or drift detection,
//!   and calls the `on_alarm` callbacks with the GIL held.
//! - `errors.rs` maps the library's errors onto the Python exception hierarchy.

mod alarms;
mod errors;
mod monitor;
mod session;
mod tensors;

use pyo3::prelude::*;

#[pymodule]
fn _native(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_class::<session::Session>()?;
    module.add_class::<session::TensorInfo>()?;
    module.add_class::<monitor::Monitor>()?;
    module.add_class::<monitor::Measure>()?;
    module.add_class::<monitor::MeasuredFunction>()?;
    errors::register(module)?;
    module.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
