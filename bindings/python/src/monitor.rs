//! `Monitor`: the rolling window, its sampler thread, and the ways to time Python code.

use std::path::PathBuf;
use std::sync::{Mutex, mpsc};
use std::time::Duration;

use inferwatch::detect::{AlarmEvent, DEFAULT_DRIFT_PERIOD, Detector};
use inferwatch::load::FileSource;
use inferwatch::otel::{OtelConfig, OtelExporter};
use inferwatch::window::DEFAULT_SLOT;
use inferwatch::{LoadKind, Recorder, WindowConfig};
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple, PyType};

use crate::alarms::{self, DetectorOptions, IndicatorOptions};
use crate::errors::{Kind, config_error, error, input_error, invalid_argument, otel_error};

/// Largest window or sample period accepted, in seconds (about 31 years); keeps the
/// conversion to `Duration` in range.
const MAX_SECONDS: f64 = 1e9;

/// Shortest window slot, as in `window_config`.
const MIN_SLOT: Duration = Duration::from_millis(100);

#[pyclass(module = "inferwatch", frozen)]
pub(crate) struct Monitor {
    inner: inferwatch::Monitor,
    window: f64,
    load_files: Vec<(LoadKind, PathBuf)>,
    /// The OTLP exporter, when one was configured; dropping it exports once more.
    exporter: Option<OtelExporter>,
    /// The detector, when a profile or drift detection was requested.
    detector: Option<Detector>,
    /// The alarm events not yet returned by `snapshot()`.
    events: Option<Mutex<mpsc::Receiver<AlarmEvent>>>,
}

impl Monitor {
    pub(crate) fn inner(&self) -> &inferwatch::Monitor {
        &self.inner
    }

    /// Builds a monitor with the default window, as `Monitor()` does.
    pub(crate) fn build_default(py: Python<'_>) -> PyResult<Self> {
        Monitor::new(
            py, 300.0, None, 0.5, true, None, None, None, None, None, false, None, 5.0, false,
            None, None, None,
        )
    }
}

#[pymethods]
impl Monitor {
    #[new]
    #[pyo3(signature = (
        window=300.0,
        *,
        load_files=None,
        sample_period=0.5,
        proc_cpu=true,
        otlp_endpoint=None,
        otlp_protocol=None,
        export_interval=None,
        service_name=None,
        profile=None,
        drift=false,
        feedback_dir=None,
        eval_period=5.0,
        indicators=false,
        busy_cpu=None,
        busy_secs=None,
        ignore_processes=None,
    ))]
    #[allow(clippy::too_many_arguments, reason = "the keyword arguments of Monitor()")]
    fn new(
        py: Python<'_>,
        window: f64,
        load_files: Option<&Bound<'_, PyDict>>,
        sample_period: f64,
        proc_cpu: bool,
        otlp_endpoint: Option<String>,
        otlp_protocol: Option<&str>,
        export_interval: Option<f64>,
        service_name: Option<String>,
        profile: Option<PathBuf>,
        drift: bool,
        feedback_dir: Option<PathBuf>,
        eval_period: f64,
        indicators: bool,
        busy_cpu: Option<f64>,
        busy_secs: Option<f64>,
        ignore_processes: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let origin = "Monitor()";
        let span = seconds(window).ok_or_else(|| {
            invalid_argument(py, origin, "window", window, "expected a positive number of seconds")
        })?;
        let period = seconds(sample_period).ok_or_else(|| {
            invalid_argument(
                py,
                origin,
                "sample_period",
                sample_period,
                "expected a positive number of seconds",
            )
        })?;
        let eval_span = seconds(eval_period).ok_or_else(|| {
            invalid_argument(
                py,
                origin,
                "eval_period",
                eval_period,
                "expected a positive number of seconds",
            )
        })?;
        let indicators = IndicatorOptions { busy_cpu, busy_secs, ignore_processes }
            .config(py, origin, indicators)?;
        let profile = profile.map(|path| alarms::load_profile(py, origin, &path)).transpose()?;
        let detecting = profile.is_some() || drift;
        if indicators.is_some() && !detecting {
            // The /proc scan runs on the detector thread, which only a profile or drift starts.
            return Err(config_error(
                py,
                format!(
                    "indicators=True in {origin} needs a detector: pass profile= or drift=True"
                ),
            ));
        }
        let mut config = window_config(span);
        if detecting {
            // A datapoint covers whole slots: slots no longer than the evaluation period
            // (and the drift period) keep the periods as requested.
            let mut slot = config.slot.min(eval_span);
            if drift {
                slot = slot.min(DEFAULT_DRIFT_PERIOD);
            }
            config = WindowConfig::spanning(span, slot.max(MIN_SLOT));
        }
        let mut builder = inferwatch::Monitor::builder().window(config).sample_period(period);
        if let Some(dir) = &feedback_dir {
            builder = builder
                .load_source(FileSource::new(dir.join(alarms::GPU_LOAD_FILE), LoadKind::Gpu));
        }
        if !proc_cpu {
            builder = builder.without_proc_cpu();
        }
        let mut files = Vec::new();
        if let Some(load_files) = load_files {
            for (metric, path) in load_files.iter() {
                let metric: String = metric.extract().map_err(|_| {
                    invalid_argument(
                        py,
                        origin,
                        "load_files",
                        metric.repr().map(|r| r.to_string()).unwrap_or_default(),
                        "expected metric names (str) as keys",
                    )
                })?;
                let kind: LoadKind = metric.parse().map_err(|message: String| {
                    config_error(py, format!("invalid load_files key in {origin}: {message}"))
                })?;
                let path: PathBuf = path.extract().map_err(|_| {
                    invalid_argument(
                        py,
                        origin,
                        &format!("load_files[{metric:?}]"),
                        path.repr().map(|r| r.to_string()).unwrap_or_default(),
                        "expected a file path (str or os.PathLike)",
                    )
                })?;
                builder = builder.load_source(FileSource::new(&path, kind));
                files.push((kind, path));
            }
        }
        let protocol = otlp_protocol
            .map(|text| {
                text.parse().map_err(|message: String| {
                    config_error(py, format!("invalid otlp_protocol in {origin}: {message}"))
                })
            })
            .transpose()?;
        let interval = export_interval
            .map(|value| {
                seconds(value).ok_or_else(|| {
                    invalid_argument(
                        py,
                        origin,
                        "export_interval",
                        value,
                        "expected a positive number of seconds",
                    )
                })
            })
            .transpose()?;
        let otel = OtelConfig {
            endpoint: otlp_endpoint,
            protocol,
            interval,
            service_name,
            ..OtelConfig::default()
        };
        let inner = builder.build().map_err(|e| {
            error(py, Kind::Base, format!("failed to start the load sampler thread: {e}"))
        })?;
        let exporter = if otel.endpoint_configured() {
            Some(OtelExporter::start(&inner, &otel).map_err(|e| otel_error(py, e))?)
        } else {
            None
        };
        let (detector, events) = if detecting {
            let options = DetectorOptions {
                profile,
                drift,
                feedback_dir,
                eval_period: eval_span,
                indicators,
            };
            let detector = alarms::start_detector(py, &inner, options)?;
            let events = detector.subscribe();
            (Some(detector), Some(Mutex::new(events)))
        } else {
            (None, None)
        };
        Ok(Monitor {
            inner,
            window: span.as_secs_f64(),
            load_files: files,
            exporter,
            detector,
            events,
        })
    }

    /// Returns the alarms raised now, each as the event that raised it.
    fn alarms<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let active = match &self.detector {
            // The detector thread may wait for the GIL while it holds its state.
            Some(detector) => py.detach(|| detector.active_alarms()),
            None => Vec::new(),
        };
        let list = PyList::empty(py);
        for event in &active {
            list.append(alarms::to_python(py, event)?)?;
        }
        Ok(list)
    }

    #[pyo3(signature = (callback, /))]
    fn on_alarm(&self, py: Python<'_>, callback: Bound<'_, PyAny>) -> PyResult<()> {
        let Some(detector) = &self.detector else {
            return Err(config_error(
                py,
                "on_alarm() needs a detector: pass profile= or drift=True to Monitor()",
            ));
        };
        if !callback.is_callable() {
            let type_name = callback.get_type().name()?;
            return Err(input_error(
                py,
                format!("invalid callback in on_alarm(): expected a callable, got {type_name}"),
            ));
        }
        let callback = callback.unbind();
        py.detach(|| detector.on_alarm(move |event| alarms::call(&callback, event)));
        Ok(())
    }

    /// The endpoint metrics are exported to, or None without an exporter.
    #[getter]
    fn otlp_endpoint(&self) -> Option<&str> {
        self.exporter.as_ref().map(OtelExporter::endpoint)
    }

    fn flush(&self, py: Python<'_>) -> PyResult<()> {
        let Some(exporter) = &self.exporter else {
            return Err(config_error(
                py,
                "flush() needs an exporter: pass otlp_endpoint= to Monitor() or set \
                 OTEL_EXPORTER_OTLP_ENDPOINT",
            ));
        };
        // The export is a network call: other Python threads run meanwhile.
        py.detach(|| exporter.force_flush()).map_err(|e| otel_error(py, e))
    }

    fn export_counts<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let dict = PyDict::new(py);
        let counts = self.exporter.as_ref().map(OtelExporter::counts).unwrap_or_default();
        dict.set_item("exported", counts.exported)?;
        dict.set_item("failed", counts.failed)?;
        Ok(dict)
    }

    /// The window span in seconds, rounded up to whole slots.
    #[getter]
    fn window(&self) -> f64 {
        self.window
    }

    /// The load files by metric name.
    #[getter]
    fn load_files<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let dict = PyDict::new(py);
        for (kind, path) in &self.load_files {
            dict.set_item(kind.metric_name(), path)?;
        }
        Ok(dict)
    }

    fn measure(&self) -> Measure {
        Measure { recorder: self.inner.recorder().clone(), starts: Mutex::new(Vec::new()) }
    }

    #[pyo3(signature = (func, /, *args, **kwargs))]
    fn time<'py>(
        &self,
        func: &Bound<'py, PyAny>,
        args: &Bound<'py, PyTuple>,
        kwargs: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        time_call(self.inner.recorder(), func, args, kwargs)
    }

    fn record(&self, py: Python<'_>, seconds: f64) -> PyResult<()> {
        if !(seconds.is_finite() && (0.0..MAX_SECONDS).contains(&seconds)) {
            return Err(input_error(
                py,
                format!("invalid duration {seconds} passed to record(): expected seconds >= 0"),
            ));
        }
        self.inner.recorder().record(Duration::from_secs_f64(seconds));
        Ok(())
    }

    fn record_failure(&self) {
        self.inner.recorder().record_failure();
    }

    #[pyo3(signature = (seconds=None))]
    fn snapshot<'py>(&self, py: Python<'py>, seconds: Option<f64>) -> PyResult<Bound<'py, PyDict>> {
        let snapshot = match seconds {
            None => self.inner.snapshot(),
            Some(value) => {
                let span = self::seconds(value).ok_or_else(|| {
                    invalid_argument(
                        py,
                        "snapshot()",
                        "seconds",
                        value,
                        "expected a positive number of seconds",
                    )
                })?;
                self.inner.snapshot_over(span)
            }
        };
        // Through JSON text so that the dict keeps the field order of `inferwatch run --json`
        // and integers stay `int`; a snapshot holds only numbers and nulls.
        let text = serde_json::to_string(&snapshot).map_err(|e| {
            error(py, Kind::Base, format!("failed to convert the snapshot to a dict: {e}"))
        })?;
        let value = py.import("json")?.call_method1("loads", (text,))?;
        let dict = value.cast_into::<PyDict>().map_err(PyErr::from)?;
        if let (Some(detector), Some(events)) = (&self.detector, &self.events) {
            // As in `inferwatch run --json`: the events since the previous snapshot, then
            // the names of the alarms raised now.
            let (events, active) = py.detach(|| {
                let receiver = events.lock().unwrap_or_else(|e| e.into_inner());
                let events: Vec<AlarmEvent> = receiver.try_iter().collect();
                (events, detector.active_alarms())
            });
            let list = PyList::empty(py);
            for event in &events {
                list.append(alarms::to_python(py, event)?)?;
            }
            dict.set_item("alarms", list)?;
            let names: Vec<&str> = active.iter().map(|event| event.behavior.as_str()).collect();
            dict.set_item("active_alarms", names)?;
        }
        Ok(dict)
    }

    fn shutdown(&self, py: Python<'_>) {
        // The sampler thread never takes the GIL, so waiting for it with the GIL released
        // only lets other Python threads run meanwhile. The detector thread takes the GIL
        // to call `on_alarm` callbacks, which it can do while this thread waits.
        py.detach(|| {
            if let Some(detector) = &self.detector {
                detector.stop();
            }
            self.inner.shutdown();
        });
    }

    fn __repr__(&self) -> String {
        format!("Monitor(window={})", self.window)
    }
}

/// Returns the window configuration for `span`: slots of 5 s for the usual windows, and
/// shorter slots for windows under a minute so that the window keeps at least 12 slots
/// (the rule `inferwatch run` uses).
fn window_config(span: Duration) -> WindowConfig {
    let slot = (span / 12).clamp(MIN_SLOT, DEFAULT_SLOT);
    WindowConfig::spanning(span, slot)
}

/// Returns `value` as a duration when it is a positive, finite number of seconds.
pub(crate) fn seconds(value: f64) -> Option<Duration> {
    (value.is_finite() && value > 0.0 && value < MAX_SECONDS)
        .then(|| Duration::from_secs_f64(value))
}

/// Calls `func(*args, **kwargs)` and records its duration, or a failure when it raises.
fn time_call<'py>(
    recorder: &Recorder,
    func: &Bound<'py, PyAny>,
    args: &Bound<'py, PyTuple>,
    kwargs: Option<&Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyAny>> {
    let start = recorder.now_nanos();
    let result = func.call(args, kwargs);
    let end = recorder.now_nanos();
    match result {
        Ok(value) => {
            recorder.record_span(start, end);
            Ok(value)
        }
        Err(error) => {
            recorder.record_failure();
            Err(error)
        }
    }
}

/// A context manager and decorator that records the time of a block or call.
///
/// The start times of open blocks are kept on a stack, so one `Measure` may be entered
/// again inside its own block. Each `__exit__` pops the start of the innermost open block.
#[pyclass(module = "inferwatch", frozen)]
pub(crate) struct Measure {
    recorder: Recorder,
    starts: Mutex<Vec<u64>>,
}

#[pymethods]
impl Measure {
    fn __enter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        let measure = slf.get();
        let start = measure.recorder.now_nanos();
        // A poisoned lock only means another thread panicked between push and pop; the
        // stack itself is still consistent.
        measure.starts.lock().unwrap_or_else(|e| e.into_inner()).push(start);
        slf
    }

    #[pyo3(signature = (exc_type, exc_value, traceback))]
    fn __exit__(
        &self,
        exc_type: Option<&Bound<'_, PyAny>>,
        exc_value: Option<&Bound<'_, PyAny>>,
        traceback: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        let _ = (exc_value, traceback);
        let end = self.recorder.now_nanos();
        let start = self.starts.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let Some(start) = start else {
            return Err(PyRuntimeError::new_err(
                "Measure.__exit__ called without a matching __enter__: use it in a with block",
            ));
        };
        if exc_type.is_some_and(|t| !t.is_none()) {
            self.recorder.record_failure();
        } else {
            self.recorder.record_span(start, end);
        }
        // Never swallow the exception.
        Ok(false)
    }

    fn __call__(&self, py: Python<'_>, func: Bound<'_, PyAny>) -> PyResult<Py<MeasuredFunction>> {
        if !func.is_callable() {
            let type_name = func.get_type().name()?;
            return Err(input_error(
                py,
                format!("measure() decorates functions, not a {type_name} object"),
            ));
        }
        let wrapper = Py::new(
            py,
            MeasuredFunction { recorder: self.recorder.clone(), func: func.clone().unbind() },
        )?;
        py.import("functools")?.call_method1("update_wrapper", (wrapper.bind(py), func))?;
        Ok(wrapper)
    }

    fn __repr__(&self) -> String {
        let open = self.starts.lock().map_or(0, |starts| starts.len());
        format!("<inferwatch.Measure, {open} open>")
    }
}

/// A function decorated with `Monitor.measure()`: every call is timed.
///
/// It carries an instance `__dict__` so that `functools.update_wrapper` can copy the
/// function's name, docstring and `__wrapped__`, and it binds like a function when it
/// decorates a method.
#[pyclass(module = "inferwatch", frozen, dict)]
pub(crate) struct MeasuredFunction {
    recorder: Recorder,
    func: Py<PyAny>,
}

#[pymethods]
impl MeasuredFunction {
    #[pyo3(signature = (*args, **kwargs))]
    fn __call__<'py>(
        &self,
        py: Python<'py>,
        args: &Bound<'py, PyTuple>,
        kwargs: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        time_call(&self.recorder, self.func.bind(py), args, kwargs)
    }

    fn __get__<'py>(
        slf: Bound<'py, Self>,
        instance: &Bound<'py, PyAny>,
        owner: Option<&Bound<'py, PyType>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let _ = owner;
        if instance.is_none() {
            // Looked up on the class: the plain function, as for `def`.
            return Ok(slf.into_any());
        }
        let py = slf.py();
        py.import("types")?.getattr("MethodType")?.call1((slf, instance))
    }
}
