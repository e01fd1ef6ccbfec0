//! The detector behind `Monitor(profile=..., drift=..., feedback_dir=...)` and the delivery
//! of its alarm events to Python.

use std::path::{Path, PathBuf};
use std::time::Duration;

use inferwatch::detect::{
    AlarmEvent, Detector, DriftConfig, IndicatorConfig, MetricValue, Profile,
};
use inferwatch::load::read_number;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::errors::{Kind, config_error, error};

/// The feedback file whose number is the simulated GPU load, in percent.
pub(crate) const GPU_LOAD_FILE: &str = "gpu_load_fb";
/// The feedback file whose number is the simulated inference time, in milliseconds.
pub(crate) const GPU_INFERENCE_FILE: &str = "gpu_inference_fb";

/// The parts of the detector that `Monitor()` turns on.
pub(crate) struct DetectorOptions {
    pub(crate) profile: Option<Profile>,
    pub(crate) drift: bool,
    pub(crate) feedback_dir: Option<PathBuf>,
    pub(crate) eval_period: Duration,
    pub(crate) indicators: bool,
}

/// Loads the shipped profile named `name_or_path`, or else the profile file at that path.
///
/// Every problem of an invalid profile is in the `ConfigError` message with its JSON path,
/// such as `$[0].criteria.value.number`.
pub(crate) fn load_profile(py: Python<'_>, origin: &str, name_or_path: &Path) -> PyResult<Profile> {
    let text = name_or_path.to_string_lossy();
    Profile::load(&text).map_err(|e| config_error(py, format!("profile= in {origin}: {e}")))
}

/// Builds the detector on `monitor` and starts its thread.
pub(crate) fn start_detector(
    py: Python<'_>,
    monitor: &inferwatch::Monitor,
    options: DetectorOptions,
) -> PyResult<Detector> {
    let mut builder = Detector::builder(monitor).eval_period(options.eval_period);
    if let Some(profile) = options.profile {
        builder = builder.profile(profile);
    }
    if options.drift {
        builder = builder.drift(DriftConfig::default());
    }
    if options.indicators {
        builder = builder.indicators(IndicatorConfig::default());
    }
    if let Some(dir) = options.feedback_dir {
        let path = dir.join(GPU_INFERENCE_FILE);
        builder = builder.metric_source(move |name: &str| {
            (name == "avg_inference_time")
                .then(|| read_number(&path).ok())
                .flatten()
                .map(MetricValue::Number)
        });
    }
    let detector = builder.build();
    detector
        .start()
        .map_err(|e| error(py, Kind::Base, format!("failed to start the detector thread: {e}")))?;
    Ok(detector)
}

/// Returns `event` as a dict with the fields of its JSON form, in the same order.
pub(crate) fn to_python<'py>(py: Python<'py>, event: &AlarmEvent) -> PyResult<Bound<'py, PyDict>> {
    let text = serde_json::to_string(event).map_err(|e| {
        error(py, Kind::Base, format!("failed to convert an alarm event to a dict: {e}"))
    })?;
    let value = py.import("json")?.call_method1("loads", (text,))?;
    value.cast_into::<PyDict>().map_err(PyErr::from)
}

/// Calls a Python `on_alarm` callback with `event`, on the detector thread.
///
/// An exception the callback raises is printed to `sys.stderr` with its traceback and the
/// detector goes on. Once the interpreter shuts down, events are no longer delivered.
pub(crate) fn call(callback: &Py<PyAny>, event: &AlarmEvent) {
    let _ = Python::try_attach(|py| {
        let result = to_python(py, event).and_then(|dict| callback.bind(py).call1((dict,)));
        if let Err(failure) = result {
            failure.print(py);
        }
    });
}
