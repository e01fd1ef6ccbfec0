//! Load sources: what the CPU and GPU were doing while inferences ran.
//!
//! Each [`LoadSource`] is polled by a [`Sampler`] thread (every 500 ms by default), which
//! stores the latest value of each [`LoadKind`] in [`LoadCells`]. The hot path reads those
//! cells with one relaxed atomic load each and never calls a source itself.
//!
//! GPU utilization from NVML (feature `nvml`) also keeps timestamped samples, so that each
//! inference is attributed the GPU load observed during its own span; see [`GpuTimeline`].
//!
//! A source that fails or returns nothing makes its metric absent: absent metrics are
//! reported as `null`, never as zero.

mod cells;
mod file;
#[cfg(feature = "nvml")]
#[cfg_attr(docsrs, doc(cfg(feature = "nvml")))]
pub mod nvml;
mod proc;
mod sampler;
mod timeline;

pub use cells::{LOAD_KINDS, LoadCells, LoadKind, LoadSample};
pub use file::{FileSource, read_number};
pub use proc::{ProcCpu, SystemTicks, read_process_cpu_ticks, read_system_cpu_ticks};
pub use sampler::{DEFAULT_SAMPLE_PERIOD, Sampler};
pub use timeline::{GpuTimeline, GpuTimelines, MAX_GPUS, TIMELINE_CAPACITY};

use crate::error::LoadError;

/// A source of one or more load values, polled by a [`Sampler`] thread.
pub trait LoadSource: Send + 'static {
    /// Returns a short name for logs, such as `"/proc/stat"` or the file path.
    fn name(&self) -> String;

    /// Reads the source and stores what it measured in `cells`.
    ///
    /// Called on the sampler thread once per sample period. A source that measures a rate
    /// (CPU time) returns nothing on its first call and the rate since the previous call
    /// afterwards. On error the sampler marks the source's metrics absent and logs the
    /// error once until the source recovers.
    fn sample(&mut self, cells: &LoadCells) -> Result<(), LoadError>;

    /// Returns the metrics this source writes. The sampler clears them when `sample` fails.
    fn kinds(&self) -> Vec<LoadKind>;
}
