//! The monitor: one window, its load samplers, and sessions that record into it.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use crate::clock::Clock;
use crate::error::SessionError;
use crate::load::{DEFAULT_SAMPLE_PERIOD, LoadCells, LoadSource, ProcCpu, Sampler};
use crate::recorder::Recorder;
use crate::session::{Backend, InstrumentedSession, SessionOptions, load_backend};
use crate::snapshot::Snapshot;
use crate::window::{WindowConfig, WindowStats};

/// Ties together a rolling window, the threads that sample load, and the sessions that
/// record into the window.
///
/// Building a monitor starts one sampler thread (named `inferwatch-sampler`) that polls the
/// load sources every sample period and resets the next window slot ahead of the writers.
/// With NVML (feature `nvml`, driver installed) it also starts one `inferwatch-nvml-INDEX`
/// thread per sampled GPU. The threads stop when the last clone of the monitor is dropped
/// or [`Monitor::shutdown`] is called. Cloning is cheap; clones share everything.
#[derive(Clone, Debug)]
pub struct Monitor {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    recorder: Recorder,
    sampler: Mutex<Option<Sampler>>,
    span: Duration,
    #[cfg(feature = "nvml")]
    nvml: Mutex<Option<crate::load::nvml::NvmlSampler>>,
    #[cfg(feature = "nvml")]
    gpu_readings: crate::load::nvml::GpuReadings,
}

/// Whether a monitor samples GPUs through NVML.
#[cfg(feature = "nvml")]
#[derive(Debug, Default)]
enum GpuChoice {
    /// Open NVML with default options if the library is there; log one info line if not.
    #[default]
    IfPresent,
    /// Sample these GPUs.
    Given(crate::load::nvml::NvmlGpus),
    /// Do not sample GPUs.
    Off,
}

/// Configures a [`Monitor`].
#[derive(Default)]
pub struct MonitorBuilder {
    window: WindowConfig,
    clock: Option<Clock>,
    sources: Vec<Box<dyn LoadSource>>,
    no_proc_cpu: bool,
    sample_period: Option<Duration>,
    #[cfg(feature = "nvml")]
    gpu: GpuChoice,
}

impl std::fmt::Debug for MonitorBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sources: Vec<String> = self.sources.iter().map(|s| s.name()).collect();
        f.debug_struct("MonitorBuilder")
            .field("window", &self.window)
            .field("sources", &sources)
            .field("proc_cpu", &!self.no_proc_cpu)
            .finish_non_exhaustive()
    }
}

impl MonitorBuilder {
    /// Sets the window's shape (default: 60 slots of 5 s).
    pub fn window(mut self, window: WindowConfig) -> Self {
        self.window = window;
        self
    }

    /// Uses `clock` instead of the real clock, for tests.
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Adds a load source.
    pub fn load_source(mut self, source: impl LoadSource) -> Self {
        self.sources.push(Box::new(source));
        self
    }

    /// Turns the `/proc` CPU source off (it is on by default).
    pub fn without_proc_cpu(mut self) -> Self {
        self.no_proc_cpu = true;
        self
    }

    /// Sets the time between two polls of the load sources (default 500 ms).
    pub fn sample_period(mut self, period: Duration) -> Self {
        self.sample_period = Some(period);
        self
    }

    /// Samples `gpus` through NVML. Without this call, the monitor opens NVML with default
    /// options when the driver library is installed and runs without GPU metrics otherwise.
    #[cfg(feature = "nvml")]
    #[cfg_attr(docsrs, doc(cfg(feature = "nvml")))]
    pub fn nvml(mut self, gpus: crate::load::nvml::NvmlGpus) -> Self {
        self.gpu = GpuChoice::Given(gpus);
        self
    }

    /// Turns NVML sampling off.
    #[cfg(feature = "nvml")]
    #[cfg_attr(docsrs, doc(cfg(feature = "nvml")))]
    pub fn without_nvml(mut self) -> Self {
        self.gpu = GpuChoice::Off;
        self
    }

    /// Builds the monitor and starts its sampler threads.
    pub fn build(mut self) -> std::io::Result<Monitor> {
        if !self.no_proc_cpu && Path::new("/proc/stat").exists() {
            self.sources.insert(0, Box::new(ProcCpu::new()));
        }
        let cells = Arc::new(LoadCells::default());
        let clock = self.clock.unwrap_or_default();
        let recorder = Recorder::with_parts(self.window, clock, cells.clone());
        let housekeeping = recorder.clone();
        let period = self.sample_period.unwrap_or(DEFAULT_SAMPLE_PERIOD);
        let sampler = Sampler::start(self.sources, cells, period, move || {
            housekeeping.window().prepare(housekeeping.now_nanos());
        })?;
        let span = self.window.span();
        #[cfg(feature = "nvml")]
        let (nvml, gpu_readings) = {
            let gpus = match self.gpu {
                GpuChoice::IfPresent => crate::load::nvml::open_if_present(),
                GpuChoice::Given(gpus) => Some(gpus),
                GpuChoice::Off => None,
            };
            match gpus {
                Some(gpus) => {
                    let sampler = crate::load::nvml::NvmlSampler::start(
                        gpus,
                        recorder.loads().clone(),
                        recorder.clock().clone(),
                    )?;
                    let readings = sampler.readings().clone();
                    (Some(sampler), readings)
                }
                None => (None, Default::default()),
            }
        };
        Ok(Monitor {
            shared: Arc::new(Shared {
                recorder,
                sampler: Mutex::new(Some(sampler)),
                span,
                #[cfg(feature = "nvml")]
                nvml: Mutex::new(nvml),
                #[cfg(feature = "nvml")]
                gpu_readings,
            }),
        })
    }
}

impl Monitor {
    /// Starts configuring a monitor.
    pub fn builder() -> MonitorBuilder {
        MonitorBuilder::default()
    }

    /// Returns the recorder, for timing calls by hand.
    pub fn recorder(&self) -> &Recorder {
        &self.shared.recorder
    }

    /// Loads the model at `path` and wraps it so that every call is recorded here.
    pub fn session(
        &self,
        path: impl AsRef<Path>,
        options: &SessionOptions,
    ) -> Result<InstrumentedSession, SessionError> {
        Ok(self.instrument(load_backend(path, options)?))
    }

    /// Wraps an already loaded backend.
    pub fn instrument(&self, backend: Arc<dyn Backend>) -> InstrumentedSession {
        InstrumentedSession::new(backend, self.shared.recorder.clone())
    }

    /// Returns the window's span.
    pub fn span(&self) -> Duration {
        self.shared.span
    }

    /// Returns the counts over the whole window.
    pub fn stats(&self) -> WindowStats {
        self.shared.recorder.stats(self.shared.span)
    }

    /// Returns a snapshot of the whole window.
    pub fn snapshot(&self) -> Snapshot {
        self.snapshot_over(self.shared.span)
    }

    /// Returns a snapshot of the trailing `span`, rounded up to whole slots.
    pub fn snapshot_over(&self, span: Duration) -> Snapshot {
        Snapshot::from_stats(&self.shared.recorder.stats(span), SystemTime::now())
    }

    /// Returns the latest reading of each GPU sampled through NVML; empty without NVML.
    #[cfg(feature = "nvml")]
    #[cfg_attr(docsrs, doc(cfg(feature = "nvml")))]
    pub fn gpu_readings(&self) -> Vec<crate::load::nvml::GpuReading> {
        self.shared.gpu_readings.get()
    }

    /// Stops the sampler threads and waits for them. Recording still works afterwards, with
    /// the last load values frozen.
    pub fn shutdown(&self) {
        if let Ok(mut sampler) = self.shared.sampler.lock()
            && let Some(mut sampler) = sampler.take()
        {
            sampler.stop();
        }
        #[cfg(feature = "nvml")]
        if let Ok(mut nvml) = self.shared.nvml.lock()
            && let Some(mut nvml) = nvml.take()
        {
            nvml.stop();
        }
    }
}
