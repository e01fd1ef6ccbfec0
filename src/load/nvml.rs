//! GPU load through NVML: utilization samples per GPU, and the load of other processes.
//!
//! [`NvmlGpus::open`] loads `libnvidia-ml.so.1` at run time (nothing links against it) and
//! picks the GPUs to watch: those given by index or UUID, otherwise every GPU on which this
//! process has a compute context, otherwise GPU 0. [`NvmlSampler::start`] then runs one
//! thread per GPU (named `inferwatch-nvml-INDEX`) that, every period:
//!
//! - reads the GPU utilization samples the driver buffered since the previous poll
//!   (`nvmlDeviceGetSamples`), maps their timestamps onto the recorder clock and pushes them
//!   into the GPU's [`GpuTimeline`](super::GpuTimeline), where each inference finds the
//!   samples taken during its span;
//! - reads per-process utilization (`nvmlDeviceGetProcessUtilization`) and splits this
//!   process from the others: the sum over other processes is `foreign_gpu_load`;
//! - reads the memory used by other processes' compute contexts
//!   (`nvmlDeviceGetComputeRunningProcesses_v3`).
//!
//! NVML is never called on the hot path. A failing call clears the GPU's values (absent, not
//! zero) and logs one warning. The thread then retries with a backoff that doubles from the
//! period up to 30 s, and logs the recovery at info level.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nvml_wrapper::Nvml;
use nvml_wrapper::enum_wrappers::device::Sampling;
use nvml_wrapper::enums::device::{SampleValue, UsedGpuMemory};
use nvml_wrapper::error::NvmlError;

use super::timeline::MAX_GPUS;
use super::{LoadCells, LoadKind};
use crate::clock::Clock;
use crate::error::LoadError;

/// The library opened when no path is configured.
pub const DEFAULT_NVML_LIBRARY: &str = "libnvidia-ml.so.1";
/// Default time between two polls of a GPU. NVML buffers its samples, so a longer period
/// loses none of them; it only delays them.
pub const DEFAULT_NVML_PERIOD: Duration = Duration::from_millis(500);
/// Maximum wait between two retries after an NVML error.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// A GPU, by NVML index or by UUID (`GPU-…`, as `nvidia-smi -L` prints it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GpuId {
    /// The NVML index.
    Index(u32),
    /// The UUID.
    Uuid(String),
}

impl FromStr for GpuId {
    type Err = String;

    /// Parses a decimal index or a UUID.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if text.is_empty() {
            return Err("empty GPU id: give an index such as 0 or a UUID such as GPU-…".into());
        }
        match text.parse::<u32>() {
            Ok(index) => Ok(GpuId::Index(index)),
            Err(_) if text.bytes().all(|b| b.is_ascii_digit()) => {
                Err(format!("GPU index {text} is too large"))
            }
            Err(_) => Ok(GpuId::Uuid(text.to_owned())),
        }
    }
}

impl fmt::Display for GpuId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GpuId::Index(index) => write!(f, "{index}"),
            GpuId::Uuid(uuid) => f.write_str(uuid),
        }
    }
}

/// How to open NVML and which GPUs to sample.
#[derive(Clone, Debug, Default)]
pub struct NvmlOptions {
    /// The NVML library to open; [`DEFAULT_NVML_LIBRARY`] when `None`.
    pub library: Option<PathBuf>,
    /// The GPUs to sample; empty picks the GPUs this process uses, otherwise GPU 0.
    pub gpus: Vec<GpuId>,
    /// Time between two polls of each GPU; [`DEFAULT_NVML_PERIOD`] when `None`.
    pub period: Option<Duration>,
}

/// A GPU chosen for sampling.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GpuInfo {
    /// The NVML index.
    pub index: u32,
    /// The UUID, used as `hw.id` in OpenTelemetry.
    pub uuid: String,
}

/// An initialized NVML library and the GPUs chosen for sampling.
pub struct NvmlGpus {
    nvml: Arc<Nvml>,
    gpus: Vec<GpuInfo>,
    period: Duration,
}

impl fmt::Debug for NvmlGpus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NvmlGpus").field("gpus", &self.gpus).field("period", &self.period).finish()
    }
}

impl NvmlGpus {
    /// Loads and initializes NVML and resolves the GPUs to sample.
    ///
    /// Fails with [`LoadError::NvmlUnavailable`] when the library cannot be loaded or
    /// initialized (no NVIDIA driver), and with [`LoadError::GpuNotFound`] for a GPU that
    /// does not exist.
    pub fn open(options: &NvmlOptions) -> Result<Self, LoadError> {
        let library = options
            .library
            .as_ref()
            .map_or_else(|| DEFAULT_NVML_LIBRARY.to_owned(), |p| p.display().to_string());
        let mut builder = Nvml::builder();
        if let Some(path) = &options.library {
            builder.lib_path(path.as_os_str());
        } else {
            builder.lib_path(OsStr::new(DEFAULT_NVML_LIBRARY));
        }
        let nvml = builder
            .init()
            .map_err(|error| LoadError::NvmlUnavailable { library, detail: error.to_string() })?;
        let gpus = if options.gpus.is_empty() {
            default_gpus(&nvml)?
        } else {
            options.gpus.iter().map(|id| resolve(&nvml, id)).collect::<Result<Vec<_>, _>>()?
        };
        let mut gpus = gpus;
        if gpus.len() > MAX_GPUS {
            tracing::warn!(
                requested = gpus.len(),
                "sampling only the first {MAX_GPUS} of the requested GPUs"
            );
            gpus.truncate(MAX_GPUS);
        }
        Ok(NvmlGpus {
            nvml: Arc::new(nvml),
            gpus,
            period: options.period.unwrap_or(DEFAULT_NVML_PERIOD),
        })
    }

    /// Returns the GPUs chosen for sampling.
    pub fn gpus(&self) -> &[GpuInfo] {
        &self.gpus
    }
}

fn nvml_error(call: &'static str, gpu: impl fmt::Display, error: NvmlError) -> LoadError {
    LoadError::Nvml { call, gpu: gpu.to_string(), detail: error.to_string() }
}

fn info_of(nvml: &Nvml, index: u32) -> Result<GpuInfo, LoadError> {
    let device = nvml
        .device_by_index(index)
        .map_err(|e| nvml_error("nvmlDeviceGetHandleByIndex_v2", index, e))?;
    let uuid = device.uuid().map_err(|e| nvml_error("nvmlDeviceGetUUID", index, e))?;
    Ok(GpuInfo { index, uuid })
}

fn resolve(nvml: &Nvml, id: &GpuId) -> Result<GpuInfo, LoadError> {
    let count = nvml.device_count().map_err(|e| nvml_error("nvmlDeviceGetCount_v2", id, e))?;
    match id {
        GpuId::Index(index) if *index < count => info_of(nvml, *index),
        GpuId::Index(_) => Err(LoadError::GpuNotFound { gpu: id.to_string(), count }),
        GpuId::Uuid(uuid) => {
            let device = nvml.device_by_uuid(uuid.as_str()).map_err(|error| match error {
                NvmlError::NotFound | NvmlError::InvalidArg => {
                    LoadError::GpuNotFound { gpu: uuid.clone(), count }
                }
                other => nvml_error("nvmlDeviceGetHandleByUUID", uuid, other),
            })?;
            let index = device.index().map_err(|e| nvml_error("nvmlDeviceGetIndex", uuid, e))?;
            Ok(GpuInfo { index, uuid: uuid.clone() })
        }
    }
}

/// Returns the GPUs on which this process has a compute context, or GPU 0 when it has none.
fn default_gpus(nvml: &Nvml) -> Result<Vec<GpuInfo>, LoadError> {
    let count = nvml.device_count().map_err(|e| nvml_error("nvmlDeviceGetCount_v2", "all", e))?;
    if count == 0 {
        return Err(LoadError::GpuNotFound { gpu: "0".into(), count });
    }
    let own_pid = std::process::id();
    let mut used = Vec::new();
    for index in 0..count {
        let Ok(device) = nvml.device_by_index(index) else { continue };
        let processes = device.running_compute_processes().unwrap_or_default();
        if processes.iter().any(|process| process.pid == own_pid) {
            used.push(info_of(nvml, index)?);
        }
    }
    if used.is_empty() {
        used.push(info_of(nvml, 0)?);
    }
    Ok(used)
}

/// The latest values measured on one GPU; `None` where NVML gave nothing.
#[derive(Clone, Debug, PartialEq)]
pub struct GpuReading {
    /// The GPU.
    pub gpu: GpuInfo,
    /// GPU utilization of the latest sample, in percent.
    pub utilization: Option<f64>,
    /// Utilization by this process, in percent.
    pub own_utilization: Option<f64>,
    /// Utilization by every other process together, in percent (capped at 100).
    pub foreign_utilization: Option<f64>,
    /// GPU memory held by other processes' compute contexts, in bytes.
    pub foreign_memory_bytes: Option<u64>,
}

impl GpuReading {
    fn empty(gpu: GpuInfo) -> Self {
        GpuReading {
            gpu,
            utilization: None,
            own_utilization: None,
            foreign_utilization: None,
            foreign_memory_bytes: None,
        }
    }

    fn clear(&mut self) {
        *self = GpuReading::empty(self.gpu.clone());
    }
}

/// A cheap, cloneable view of the latest [`GpuReading`] of every sampled GPU.
#[derive(Clone, Debug, Default)]
pub struct GpuReadings {
    readings: Arc<Mutex<Vec<GpuReading>>>,
}

impl GpuReadings {
    /// Returns a copy of the latest readings, one per GPU in sampling order.
    pub fn get(&self) -> Vec<GpuReading> {
        self.readings.lock().map(|readings| readings.clone()).unwrap_or_default()
    }

    /// Updates GPU `slot` and stores the means over GPUs as [`LoadKind::Gpu`] and
    /// [`LoadKind::ForeignGpu`].
    fn update(&self, slot: usize, cells: &LoadCells, change: impl FnOnce(&mut GpuReading)) {
        let Ok(mut readings) = self.readings.lock() else { return };
        if let Some(reading) = readings.get_mut(slot) {
            change(reading);
        }
        cells.set(LoadKind::Gpu, mean(readings.iter().map(|r| r.utilization)));
        cells.set(LoadKind::ForeignGpu, mean(readings.iter().map(|r| r.foreign_utilization)));
    }
}

fn mean(values: impl Iterator<Item = Option<f64>>) -> Option<f64> {
    let (sum, count) = values.flatten().fold((0.0, 0u32), |(sum, count), v| (sum + v, count + 1));
    (count > 0).then(|| sum / f64::from(count))
}

/// The threads that poll NVML, one per GPU.
///
/// Dropping the sampler, or calling [`NvmlSampler::stop`], stops the threads and joins them.
#[derive(Debug)]
pub struct NvmlSampler {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    readings: GpuReadings,
}

impl NvmlSampler {
    /// Starts one thread per GPU that pushes samples into the GPU timelines of `cells`,
    /// with timestamps on `clock`.
    pub fn start(gpus: NvmlGpus, cells: Arc<LoadCells>, clock: Clock) -> std::io::Result<Self> {
        let readings = GpuReadings::default();
        if let Ok(mut list) = readings.readings.lock() {
            *list = gpus.gpus.iter().cloned().map(GpuReading::empty).collect();
        }
        cells.gpu_timelines().activate(gpus.gpus.len());
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::with_capacity(gpus.gpus.len());
        for (slot, gpu) in gpus.gpus.iter().enumerate() {
            let mut poller = GpuPoller {
                nvml: gpus.nvml.clone(),
                slot,
                gpu: gpu.clone(),
                own_pid: std::process::id(),
                last_sample_micros: None,
                last_process_micros: 0,
                cells: cells.clone(),
                clock: clock.clone(),
                readings: readings.clone(),
            };
            let period = gpus.period;
            let stop = stop.clone();
            let thread = std::thread::Builder::new()
                .name(format!("inferwatch-nvml-{}", gpu.index))
                .spawn(move || poller.run(period, &stop))?;
            threads.push(thread);
        }
        Ok(NvmlSampler { stop, threads, readings })
    }

    /// Returns the handle to the latest readings.
    pub fn readings(&self) -> &GpuReadings {
        &self.readings
    }

    /// Stops the threads and waits for them.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}

impl Drop for NvmlSampler {
    fn drop(&mut self) {
        self.stop();
    }
}

struct GpuPoller {
    nvml: Arc<Nvml>,
    slot: usize,
    gpu: GpuInfo,
    own_pid: u32,
    last_sample_micros: Option<u64>,
    last_process_micros: u64,
    cells: Arc<LoadCells>,
    clock: Clock,
    readings: GpuReadings,
}

impl GpuPoller {
    fn run(&mut self, period: Duration, stop: &AtomicBool) {
        let mut failures = 0u32;
        let mut wait = period;
        while !stop.load(Ordering::Relaxed) {
            match self.poll() {
                Ok(()) => {
                    if failures > 0 {
                        tracing::info!(gpu = self.gpu.index, failures, "NVML sampling recovered");
                    }
                    failures = 0;
                    wait = period;
                }
                Err(error) => {
                    if failures == 0 {
                        self.clear();
                    }
                    failures += 1;
                    wait = if failures == 1 { period } else { (wait * 2).min(MAX_BACKOFF) };
                    if failures == 1 {
                        tracing::warn!(
                            gpu = self.gpu.index,
                            "{error}; GPU metrics are absent, retrying with backoff up to {} s",
                            MAX_BACKOFF.as_secs()
                        );
                    }
                }
            }
            park_for(wait, stop);
        }
    }

    fn clear(&mut self) {
        if let Some(timeline) = self.cells.gpu_timelines().get(self.slot) {
            timeline.clear();
        }
        self.last_sample_micros = None;
        self.readings.update(self.slot, &self.cells, GpuReading::clear);
    }

    fn poll(&mut self) -> Result<(), LoadError> {
        let index = self.gpu.index;
        let nvml = self.nvml.clone();
        let device = nvml
            .device_by_index(index)
            .map_err(|e| nvml_error("nvmlDeviceGetHandleByIndex_v2", index, e))?;
        // NVML stamps samples with the wall clock in microseconds, so this offset moves them
        // onto the recorder clock that inferences are timed with.
        let offset_nanos = i128::from(self.clock.now_nanos()) - wall_nanos();
        let utilization = match device.samples(Sampling::GpuUtilization, self.last_sample_micros) {
            Ok(samples) => self.push_samples(&samples, offset_nanos),
            Err(NvmlError::NotFound) => None,
            Err(NvmlError::NotSupported) => {
                // Without a sample buffer, the current utilization is used as a sample taken
                // now. NOTE: no test covers this path; the stand-in library has a buffer.
                let rates = device
                    .utilization_rates()
                    .map_err(|e| nvml_error("nvmlDeviceGetUtilizationRates", index, e))?;
                let value = f64::from(rates.gpu);
                self.push(self.clock.now_nanos() / 1_000, value);
                Some(value)
            }
            Err(error) => return Err(nvml_error("nvmlDeviceGetSamples", index, error)),
        };
        let processes = match device.process_utilization_stats(self.last_process_micros) {
            Ok(samples) => Some(self.split_processes(&samples)),
            Err(NvmlError::NotFound) => Some((0.0, 0.0)),
            Err(NvmlError::NotSupported) => None,
            Err(error) => return Err(nvml_error("nvmlDeviceGetProcessUtilization", index, error)),
        };
        let foreign_memory = match device.running_compute_processes() {
            Ok(list) => Some(
                list.iter()
                    .filter(|process| process.pid != self.own_pid)
                    .map(|process| match process.used_gpu_memory {
                        UsedGpuMemory::Used(bytes) => bytes,
                        UsedGpuMemory::Unavailable => 0,
                    })
                    .sum(),
            ),
            Err(error) => {
                tracing::trace!(gpu = index, %error, "failed to list compute processes");
                None
            }
        };
        self.readings.update(self.slot, &self.cells, |reading| {
            if utilization.is_some() {
                reading.utilization = utilization;
            }
            reading.own_utilization = processes.map(|(own, _)| own);
            reading.foreign_utilization = processes.map(|(_, foreign)| foreign);
            reading.foreign_memory_bytes = foreign_memory;
        });
        Ok(())
    }

    /// Pushes the samples newer than the last one seen and returns the newest value.
    fn push_samples(
        &mut self,
        samples: &[nvml_wrapper::struct_wrappers::device::Sample],
        offset_nanos: i128,
    ) -> Option<f64> {
        let mut ordered: Vec<_> = samples
            .iter()
            .filter(|s| self.last_sample_micros.is_none_or(|last| s.timestamp > last))
            .collect();
        ordered.sort_by_key(|s| s.timestamp);
        let clock_nanos = |sample: &&nvml_wrapper::struct_wrappers::device::Sample| {
            i128::from(sample.timestamp) * 1_000 + offset_nanos
        };
        let mut newest = None;
        for (i, sample) in ordered.iter().enumerate() {
            let value = match sample.value {
                SampleValue::U32(v) => f64::from(v),
                SampleValue::U64(v) => v as f64,
                SampleValue::I64(v) => v as f64,
                SampleValue::F64(v) => v,
            };
            self.last_sample_micros = Some(sample.timestamp);
            newest = Some(value);
            // Samples from before the clock's origin all land at time 0. Only the last of
            // them is kept, as the value in effect when the clock started.
            if ordered.get(i + 1).is_some_and(|next| clock_nanos(next) <= 0) {
                continue;
            }
            self.push((clock_nanos(sample).max(0) / 1_000) as u64, value);
        }
        newest
    }

    fn push(&self, micros: u64, percent: f64) {
        if let Some(timeline) = self.cells.gpu_timelines().get(self.slot) {
            timeline.push(micros, (percent.clamp(0.0, 100.0) * 100.0).round() as u32);
        }
    }

    /// Returns this process's utilization and the sum over other processes, each process
    /// averaged over its samples since the previous poll.
    fn split_processes(
        &mut self,
        samples: &[nvml_wrapper::struct_wrappers::device::ProcessUtilizationSample],
    ) -> (f64, f64) {
        let mut per_pid: HashMap<u32, (u64, u64)> = HashMap::new();
        for sample in samples {
            let entry = per_pid.entry(sample.pid).or_default();
            entry.0 += u64::from(sample.sm_util);
            entry.1 += 1;
            self.last_process_micros = self.last_process_micros.max(sample.timestamp);
        }
        let mut own = 0.0;
        let mut foreign = 0.0;
        for (pid, (sum, count)) in per_pid {
            let utilization = sum as f64 / count as f64;
            if pid == self.own_pid {
                own = utilization;
            } else {
                foreign += utilization;
            }
        }
        (own.min(100.0), foreign.min(100.0))
    }
}

fn wall_nanos() -> i128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as i128)
}

/// Sleeps for `period` in short steps so that a stop request ends the wait early.
fn park_for(period: Duration, stop: &AtomicBool) {
    let deadline = std::time::Instant::now() + period;
    loop {
        let now = std::time::Instant::now();
        if stop.load(Ordering::Relaxed) || now >= deadline {
            return;
        }
        std::thread::park_timeout(deadline - now);
    }
}

/// Opens NVML with default options, for a monitor built without GPU options.
///
/// A missing library is the normal case on a machine without an NVIDIA GPU: it is logged
/// once at info level and GPU metrics stay absent. Other failures are logged as warnings.
pub(crate) fn open_if_present() -> Option<NvmlGpus> {
    match NvmlGpus::open(&NvmlOptions::default()) {
        Ok(gpus) => {
            let ids: Vec<String> = gpus.gpus.iter().map(|g| g.uuid.clone()).collect();
            tracing::info!(gpus = ?ids, "sampling GPU load through NVML");
            Some(gpus)
        }
        Err(LoadError::NvmlUnavailable { detail, .. }) => {
            tracing::info!("NVML not available ({detail}): GPU metrics are absent");
            None
        }
        Err(error) => {
            tracing::warn!("{error}; GPU metrics are absent");
            None
        }
    }
}
