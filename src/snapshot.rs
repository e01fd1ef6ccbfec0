//! A point-in-time summary of a window, as printed by `inferwatch run --json`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::load::LoadKind;
use crate::window::WindowStats;

/// Window statistics in the units of the metric names: milliseconds and percent.
///
/// Absent values (no inference in the window, no load source) are `None` and serialize as
/// `null`, never as zero.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Snapshot {
    /// Wall-clock time of the snapshot, in milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    /// The span the values cover, in seconds (whole slots).
    pub window_seconds: f64,
    /// Inferences that completed in the window.
    pub inference_count: u64,
    /// Inferences that returned an error in the window.
    pub failed_inferences: u64,
    /// Records dropped since start because their slot was being reset at that moment.
    pub dropped_records: u64,
    /// Mean inference time, in milliseconds.
    pub avg_inference_time: Option<f64>,
    /// Median inference time, in milliseconds.
    pub p50_inference_time: Option<f64>,
    /// 90th percentile of inference time, in milliseconds.
    pub p90_inference_time: Option<f64>,
    /// 99th percentile of inference time, in milliseconds.
    pub p99_inference_time: Option<f64>,
    /// Shortest inference time, in milliseconds.
    pub min_inference_time: Option<f64>,
    /// Longest inference time, in milliseconds.
    pub max_inference_time: Option<f64>,
    /// Mean system CPU utilization observed by the inferences, in percent.
    pub cpu_load_per_inference: Option<f64>,
    /// Mean GPU utilization observed by the inferences, in percent.
    pub gpu_load_per_inference: Option<f64>,
    /// Mean CPU utilization of other processes, in percent of all cores.
    pub foreign_cpu_load: Option<f64>,
    /// Mean GPU utilization of other processes, in percent.
    pub foreign_gpu_load: Option<f64>,
}

const NANOS_PER_MS: f64 = 1e6;

impl Snapshot {
    /// Converts window counts into a snapshot taken at `time`.
    pub fn from_stats(stats: &WindowStats, time: SystemTime) -> Self {
        let ms = |nanos: f64| nanos / NANOS_PER_MS;
        let timestamp_ms =
            time.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO).as_millis() as u64;
        Snapshot {
            timestamp_ms,
            window_seconds: stats.span.as_secs_f64(),
            inference_count: stats.count,
            failed_inferences: stats.failed,
            dropped_records: stats.dropped,
            avg_inference_time: stats.mean_nanos().map(ms),
            p50_inference_time: stats.quantile_nanos(0.50).map(ms),
            p90_inference_time: stats.quantile_nanos(0.90).map(ms),
            p99_inference_time: stats.quantile_nanos(0.99).map(ms),
            min_inference_time: stats.min_nanos().map(|n| ms(n as f64)),
            max_inference_time: stats.max_nanos().map(|n| ms(n as f64)),
            cpu_load_per_inference: stats.load_mean(LoadKind::Cpu),
            gpu_load_per_inference: stats.load_mean(LoadKind::Gpu),
            foreign_cpu_load: stats.load_mean(LoadKind::ForeignCpu),
            foreign_gpu_load: stats.load_mean(LoadKind::ForeignGpu),
        }
    }
}
