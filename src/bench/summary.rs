//! Summary statistics of latency samples.

use serde::{Deserialize, Serialize};

const NANOS_PER_MS: f64 = 1e6;

/// One timed inference of a benchmark run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sample {
    /// When the inference ended, in nanoseconds since the first timed inference started.
    pub at_ns: u64,
    /// How long the inference took, in nanoseconds.
    pub latency_ns: u64,
}

/// Mean, spread and percentiles of a set of latencies, in milliseconds.
///
/// Percentiles are exact: the samples are sorted and interpolated linearly between the two
/// closest ranks (the method numpy calls `linear`). An empty set gives zeros everywhere.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Number of samples.
    pub count: usize,
    /// Arithmetic mean.
    pub mean_ms: f64,
    /// Sample standard deviation (divided by `count - 1`); 0 for fewer than two samples.
    pub std_dev_ms: f64,
    /// Shortest latency.
    pub min_ms: f64,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Longest latency.
    pub max_ms: f64,
    /// Inferences per second over the wall time of the run, or, without one, the inverse of
    /// the mean latency.
    pub throughput_per_s: f64,
}

impl Summary {
    /// Summarises latencies given in nanoseconds. `wall_ns` is the wall time the run took,
    /// including the time between inferences; without it throughput is `1 / mean`.
    pub fn from_nanos(latencies_ns: &[u64], wall_ns: Option<u64>) -> Self {
        let count = latencies_ns.len();
        if count == 0 {
            return Summary {
                count,
                mean_ms: 0.0,
                std_dev_ms: 0.0,
                min_ms: 0.0,
                p50_ms: 0.0,
                p90_ms: 0.0,
                p99_ms: 0.0,
                max_ms: 0.0,
                throughput_per_s: 0.0,
            };
        }
        let mut sorted: Vec<f64> =
            latencies_ns.iter().map(|&ns| ns as f64 / NANOS_PER_MS).collect();
        sorted.sort_by(f64::total_cmp);
        let mean = sorted.iter().sum::<f64>() / count as f64;
        let variance = if count > 1 {
            sorted.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (count - 1) as f64
        } else {
            0.0
        };
        let throughput_per_s = match wall_ns {
            Some(wall) if wall > 0 => count as f64 / (wall as f64 / 1e9),
            _ if mean > 0.0 => 1e3 / mean,
            _ => 0.0,
        };
        Summary {
            count,
            mean_ms: mean,
            std_dev_ms: variance.sqrt(),
            min_ms: sorted[0],
            p50_ms: percentile_sorted(&sorted, 50.0),
            p90_ms: percentile_sorted(&sorted, 90.0),
            p99_ms: percentile_sorted(&sorted, 99.0),
            max_ms: sorted[count - 1],
            throughput_per_s,
        }
    }
}

/// Returns the `percent` percentile of ascending `sorted` values, interpolating linearly
/// between ranks. `sorted` must not be empty.
pub(crate) fn percentile_sorted(sorted: &[f64], percent: f64) -> f64 {
    let rank = percent / 100.0 * (sorted.len() - 1) as f64;
    let lower = rank.floor() as usize;
    let upper = rank.ceil() as usize;
    let fraction = rank - lower as f64;
    sorted[lower] + (sorted[upper] - sorted[lower]) * fraction
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_of_one_to_hundred_ms() {
        let nanos: Vec<u64> = (1..=100).map(|ms| ms * 1_000_000).collect();
        let summary = Summary::from_nanos(&nanos, Some(10_000_000_000));
        assert_eq!(summary.count, 100);
        assert_eq!(summary.mean_ms, 50.5);
        assert!((summary.std_dev_ms - 29.011_491_975_882_016).abs() < 1e-9);
        assert_eq!(summary.min_ms, 1.0);
        assert_eq!(summary.p50_ms, 50.5);
        assert!((summary.p90_ms - 90.1).abs() < 1e-9);
        assert!((summary.p99_ms - 99.01).abs() < 1e-9);
        assert_eq!(summary.max_ms, 100.0);
        assert_eq!(summary.throughput_per_s, 10.0);
    }

    #[test]
    fn summary_without_wall_time_uses_mean() {
        let summary = Summary::from_nanos(&[2_000_000, 2_000_000], None);
        assert_eq!(summary.std_dev_ms, 0.0);
        assert_eq!(summary.throughput_per_s, 500.0);
    }

    #[test]
    fn summary_of_nothing_is_zero() {
        let summary = Summary::from_nanos(&[], None);
        assert_eq!(summary.count, 0);
        assert_eq!(summary.p99_ms, 0.0);
    }
}
