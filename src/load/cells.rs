//! The latest load values, shared between the sampler thread and the hot path.

use std::str::FromStr;
use std::sync::atomic::{AtomicU32, Ordering};

use crossbeam_utils::CachePadded;

use super::timeline::GpuTimelines;

/// Number of [`LoadKind`]s.
pub const LOAD_KINDS: usize = 4;

/// A load metric attributed to inferences, in percent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(usize)]
pub enum LoadKind {
    /// GPU utilization while the inference ran (`gpu_load_per_inference`).
    Gpu = 0,
    /// System-wide CPU utilization while the inference ran (`cpu_load_per_inference`).
    Cpu = 1,
    /// GPU utilization of processes other than this one (`foreign_gpu_load`).
    ForeignGpu = 2,
    /// CPU utilization of processes other than this one (`foreign_cpu_load`).
    ForeignCpu = 3,
}

impl LoadKind {
    /// Every kind, in index order.
    pub const ALL: [LoadKind; LOAD_KINDS] =
        [LoadKind::Gpu, LoadKind::Cpu, LoadKind::ForeignGpu, LoadKind::ForeignCpu];

    /// Returns the metric name used in snapshots and reports.
    pub fn metric_name(self) -> &'static str {
        match self {
            LoadKind::Gpu => "gpu_load_per_inference",
            LoadKind::Cpu => "cpu_load_per_inference",
            LoadKind::ForeignGpu => "foreign_gpu_load",
            LoadKind::ForeignCpu => "foreign_cpu_load",
        }
    }
}

impl FromStr for LoadKind {
    type Err = String;

    /// Parses a metric name, or its short form `gpu`, `cpu`, `foreign_gpu`, `foreign_cpu`.
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        match name {
            "gpu_load_per_inference" | "gpu" => Ok(LoadKind::Gpu),
            "cpu_load_per_inference" | "cpu" => Ok(LoadKind::Cpu),
            "foreign_gpu_load" | "foreign_gpu" => Ok(LoadKind::ForeignGpu),
            "foreign_cpu_load" | "foreign_cpu" => Ok(LoadKind::ForeignCpu),
            _ => Err(format!(
                "unknown load metric {name:?}: expected gpu_load_per_inference, \
                 cpu_load_per_inference, foreign_gpu_load or foreign_cpu_load"
            )),
        }
    }
}

/// Stored in a cell or sample when the metric has no value.
const ABSENT: u32 = u32::MAX;

/// One value per [`LoadKind`], in hundredths of a percent; `ABSENT` marks a missing value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoadSample {
    values: [u32; LOAD_KINDS],
}

impl LoadSample {
    /// A sample with every metric absent.
    pub const EMPTY: LoadSample = LoadSample { values: [ABSENT; LOAD_KINDS] };

    /// Returns a sample with `kind` set to `percent` (clamped to 0–100 000 %).
    pub fn with(mut self, kind: LoadKind, percent: f64) -> Self {
        self.values[kind as usize] = encode(percent);
        self
    }

    /// Returns true when every metric is absent.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.values == [ABSENT; LOAD_KINDS]
    }

    /// Returns the value of `kind` in percent.
    pub fn get(&self, kind: LoadKind) -> Option<f64> {
        self.raw(kind as usize).map(|value| f64::from(value) / 100.0)
    }

    #[inline]
    pub(crate) fn raw(&self, index: usize) -> Option<u32> {
        let value = self.values[index];
        (value != ABSENT).then_some(value)
    }
}

fn encode(percent: f64) -> u32 {
    if percent.is_nan() {
        return ABSENT;
    }
    (percent.clamp(0.0, 100_000.0) * 100.0).round() as u32
}

/// The latest value of each [`LoadKind`], written by samplers and read by the hot path,
/// and the timestamped GPU samples that inferences are matched against.
///
/// Each cell is written by whichever source owns that metric and read with relaxed loads:
/// a reader sees either the previous or the new value, and values of different kinds may
/// come from different sample times, which is as precise as the sampling itself.
#[derive(Debug)]
pub struct LoadCells {
    values: CachePadded<[AtomicU32; LOAD_KINDS]>,
    gpu_timelines: GpuTimelines,
}

impl Default for LoadCells {
    fn default() -> Self {
        LoadCells {
            values: CachePadded::new(std::array::from_fn(|_| AtomicU32::new(ABSENT))),
            gpu_timelines: GpuTimelines::default(),
        }
    }
}

impl LoadCells {
    /// Stores the latest value of `kind`, in percent; `None` marks it absent.
    pub fn set(&self, kind: LoadKind, percent: Option<f64>) {
        let value = percent.map_or(ABSENT, encode);
        self.values[kind as usize].store(value, Ordering::Relaxed);
    }

    /// Returns the latest value of `kind`, in percent.
    pub fn get(&self, kind: LoadKind) -> Option<f64> {
        self.latest().get(kind)
    }

    /// Returns the latest values of every kind.
    #[inline]
    pub fn latest(&self) -> LoadSample {
        LoadSample { values: std::array::from_fn(|i| self.values[i].load(Ordering::Relaxed)) }
    }

    /// Returns the load observed by a call that ran from `start_nanos` to `end_nanos`
    /// (recorder clock): the latest values, with [`LoadKind::Gpu`] taken from the GPU
    /// timelines when an NVML sampler feeds them.
    #[inline]
    pub fn observed(&self, start_nanos: u64, end_nanos: u64) -> LoadSample {
        let mut sample = self.latest();
        if let Some(gpu) = self.gpu_timelines.observe(start_nanos, end_nanos) {
            sample.values[LoadKind::Gpu as usize] = gpu;
        }
        sample
    }

    /// Returns the GPU timelines that NVML samplers push to.
    pub fn gpu_timelines(&self) -> &GpuTimelines {
        &self.gpu_timelines
    }
}
