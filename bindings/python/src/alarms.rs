//! The detector behind `Monitor(profile=..., drift=..., feedback_dir=...)` and the delivery
//! of its alarm events to Python.

use std::path::{Path, PathBuf};
use std::time::Duration;

use inferwatch::detect::{
    AlarmEvent, Detector, DriftConfig, IndicatorConfig, MetricValue, Profile,
};
use inferwatch::load::read_number;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};

use crate::errors::{Kind, config_error, error, invalid_argument};
use crate::monitor::seconds;

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
    /// The settings of the `/proc` scan, or `None` without `indicators=True`.
    pub(crate) indicators: Option<IndicatorConfig>,
}

/// The tuning of the busy-process indicator, as passed to `Monitor()`. Each field is `None`
/// when the argument was not given.
pub(crate) struct IndicatorOptions<'py> {
    pub(crate) busy_cpu: Option<f64>,
    pub(crate) busy_secs: Option<f64>,
    pub(crate) ignore_processes: Option<Bound<'py, PyAny>>,
}

impl IndicatorOptions<'_> {
    /// Returns the indicator settings for `indicators=` with these overrides, or `None` when
    /// `indicators` is false.
    ///
    /// Raises `ConfigError` for an option given without `indicators=True`, a CPU percent or
    /// a duration that is not a positive number, or a process name that is empty, contains
    /// '/' or is not a `str`. These are the values that `inferwatch run` rejects for
    /// `--busy-cpu`, `--busy-secs` and `--ignore-process`.
    pub(crate) fn config(
        &self,
        py: Python<'_>,
        origin: &str,
        indicators: bool,
    ) -> PyResult<Option<IndicatorConfig>> {
        if !indicators {
            let options = [
                ("busy_cpu", self.busy_cpu.is_some()),
                ("busy_secs", self.busy_secs.is_some()),
                ("ignore_processes", self.ignore_processes.is_some()),
            ];
            if let Some((name, _)) = options.iter().find(|(_, given)| *given) {
                return Err(config_error(
                    py,
                    format!(
                        "{name}= in {origin} tunes the mining indicators: pass indicators=True \
                         as well, or leave {name} out"
                    ),
                ));
            }
            return Ok(None);
        }
        let mut config = IndicatorConfig::default();
        if let Some(percent) = self.busy_cpu {
            if !(percent.is_finite() && percent > 0.0) {
                return Err(invalid_argument(
                    py,
                    origin,
                    "busy_cpu",
                    percent,
                    "expected a positive CPU use in percent of one core",
                ));
            }
            let limit = IndicatorConfig::max_cpu_percent();
            if percent > limit {
                let expected = format!(
                    "expected at most {limit}, the CPU use of all {} online cores, which no \
                     process can exceed",
                    limit / 100.0
                );
                return Err(invalid_argument(py, origin, "busy_cpu", percent, &expected));
            }
            config.cpu_percent = percent;
        }
        if let Some(secs) = self.busy_secs {
            config.sustained = seconds(secs).ok_or_else(|| {
                invalid_argument(
                    py,
                    origin,
                    "busy_secs",
                    secs,
                    "expected a positive number of seconds",
                )
            })?;
        }
        if let Some(names) = &self.ignore_processes {
            config.ignore_busy_names = process_names(py, origin, names)?;
        }
        Ok(Some(config))
    }
}

/// Returns the process names of the `ignore_processes` sequence.
fn process_names(py: Python<'_>, origin: &str, names: &Bound<'_, PyAny>) -> PyResult<Vec<String>> {
    let repr = |value: &Bound<'_, PyAny>| value.repr().map(|r| r.to_string()).unwrap_or_default();
    // Iterating a str would give one-letter names, so a single name is rejected with a hint.
    if names.is_instance_of::<PyString>() {
        return Err(invalid_argument(
            py,
            origin,
            "ignore_processes",
            repr(names),
            "expected a sequence of process names, such as [\"rustc\"], not a str",
        ));
    }
    let items = names.try_iter().map_err(|_| {
        invalid_argument(
            py,
            origin,
            "ignore_processes",
            repr(names),
            "expected a sequence of process names (str)",
        )
    })?;
    let mut result = Vec::new();
    for (index, item) in items.enumerate() {
        let item = item?;
        let key = format!("ignore_processes[{index}]");
        let name: String = item.extract().map_err(|_| {
            invalid_argument(py, origin, &key, repr(&item), "expected a process name (str)")
        })?;
        if name.is_empty() {
            return Err(invalid_argument(
                py,
                origin,
                &key,
                "",
                "expected a process name, not an empty string",
            ));
        }
        if name.contains('/') {
            return Err(invalid_argument(
                py,
                origin,
                &key,
                &name,
                "expected the program's file name, not its path",
            ));
        }
        result.push(name);
    }
    Ok(result)
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
    if let Some(config) = options.indicators {
        builder = builder.indicators(config);
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
