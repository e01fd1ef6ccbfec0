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
    /// Bit `k` is set when `values[k]` is present. Testing one byte is cheaper than
    /// comparing the array, whose elements were just stored one by one.
    present: u8,
}

impl LoadSample {
    /// A sample with every metric absent.
    pub const EMPTY: LoadSample = LoadSample { values: [ABSENT; LOAD_KINDS], present: 0 };

    #[inline]
    fn set_raw(&mut self, index: usize, value: u32) {
        self.values[index] = value;
        if value == ABSENT {
            self.present &= !(1 << index);
        } else {
            self.present |= 1 << index;
        }
    }

    /// Returns a sample with `kind` set to `percent` (clamped to 0–100 000 %).
    pub fn with(mut self, kind: LoadKind, percent: f64) -> Self {
        self.set_raw(kind as usize, encode(percent));
        self
    }

    /// Returns true when every metric is absent.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.present == 0
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
    /// Bit `k` is set while `values[k]` has a value, so that a recorder without load
    /// sources pays one load instead of one per kind.
    present: AtomicU32,
    gpu_timelines: GpuTimelines,
}

impl Default for LoadCells {
    fn default() -> Self {
        LoadCells {
            values: CachePadded::new(std::array::from_fn(|_| AtomicU32::new(ABSENT))),
            present: AtomicU32::new(0),
            gpu_timelines: GpuTimelines::default(),
        }
    }
}

impl LoadCells {
    /// Stores the latest value of `kind`, in percent; `None` marks it absent.
    pub fn set(&self, kind: LoadKind, percent: Option<f64>) {
        let value = percent.map_or(ABSENT, encode);
        self.values[kind as usize].store(value, Ordering::Relaxed);
        let bit = 1 << kind as u32;
        if value == ABSENT {
            self.present.fetch_and(!bit, Ordering::Relaxed);
        } else {
            self.present.fetch_or(bit, Ordering::Relaxed);
        }
    }

    /// Returns true when no kind has a value and no GPU timeline is active, so that
    /// [`Self::observed`] would return [`LoadSample::EMPTY`].
    #[inline]
    pub fn is_unset(&self) -> bool {
        self.present.load(Ordering::Relaxed) == 0 && !self.gpu_timelines.is_active()
    }

    /// Returns the latest value of `kind`, in percent.
    pub fn get(&self, kind: LoadKind) -> Option<f64> {
        self.latest().get(kind)
    }

    /// Returns the latest values of every kind.
    #[inline]
    pub fn latest(&self) -> LoadSample {
        let mut sample = LoadSample::EMPTY;
        if self.present.load(Ordering::Relaxed) == 0 {
            return sample;
        }
        for (index, cell) in self.values.iter().enumerate() {
            sample.set_raw(index, cell.load(Ordering::Relaxed));
        }
        sample
    }

    /// Returns the load observed by a call that ran from `start_nanos` to `end_nanos`
    /// (recorder clock): the latest values, with [`LoadKind::Gpu`] taken from the GPU
    /// timelines when an NVML sampler feeds them.
    #[inline]
    pub fn observed(&self, start_nanos: u64, end_nanos: u64) -> LoadSample {
        let mut sample = self.latest();
        if let Some(gpu) = self.gpu_timelines.observe(start_nanos, end_nanos) {
            sample.set_raw(LoadKind::Gpu as usize, gpu);
        }
        sample
    }

    /// Returns the GPU timelines that NVML samplers push to.
    pub fn gpu_timelines(&self) -> &GpuTimelines {
        &self.gpu_timelines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_know_which_kinds_are_present() {
        let cells = LoadCells::default();
        assert!(cells.is_unset());
        assert!(cells.latest().is_empty());
        cells.set(LoadKind::ForeignCpu, Some(12.5));
        assert!(!cells.is_unset());
        let sample = cells.observed(0, 1);
        assert!(!sample.is_empty());
        assert_eq!(sample.get(LoadKind::ForeignCpu), Some(12.5));
        assert_eq!(sample.get(LoadKind::Cpu), None);
        cells.set(LoadKind::ForeignCpu, None);
        assert!(cells.is_unset());
        assert_eq!(cells.latest(), LoadSample::EMPTY);
        let cleared = LoadSample::EMPTY.with(LoadKind::Gpu, 40.0).with(LoadKind::Gpu, f64::NAN);
        assert!(cleared.is_empty(), "a NaN load clears the value it replaces");
    }
}
