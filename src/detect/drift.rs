//! Latency drift: a robust baseline of log latency and a one-sided CUSUM above it.

use serde::Serialize;

/// Settings of the [`DriftDetector`].
///
/// The defaults were chosen on synthetic heavy-tailed noise (`tests/detect_drift.rs`) and
/// checked on the per-second p90 latency of benign and miner runs on a shared 2-core
/// machine (`docs/detection.md`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct DriftConfig {
    /// Datapoints that form the baseline before any test.
    pub warmup_datapoints: usize,
    /// Shift, in robust standard deviations, that the sum ignores per datapoint (the CUSUM
    /// reference value `k`).
    pub slack: f64,
    /// Value of the sum that raises the alarm (the CUSUM decision threshold `h`).
    pub threshold: f64,
    /// Largest standardized value one datapoint adds, so that one outlier of a heavy-tailed
    /// distribution cannot raise the alarm alone.
    pub clamp: f64,
    /// Smallest robust standard deviation of log latency used to standardize, so that a
    /// very steady warm-up does not make every small wobble look large.
    pub min_scale: f64,
}

impl Default for DriftConfig {
    fn default() -> Self {
        DriftConfig {
            warmup_datapoints: 30,
            slack: 1.5,
            threshold: 8.0,
            clamp: 4.0,
            min_scale: 0.15,
        }
    }
}

/// The detector's state, for snapshots and status lines.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DriftState {
    /// Whether the baseline is still being learned.
    pub warming_up: bool,
    /// Datapoints seen, warm-up included.
    pub datapoints: u64,
    /// Median of the warm-up latency statistic, in milliseconds.
    pub baseline_median_ms: Option<f64>,
    /// Robust standard deviation (1.4826 × MAD) of the warm-up log latency, before the
    /// `min_scale` floor.
    pub baseline_log_scale: Option<f64>,
    /// The latest latency statistic, in milliseconds.
    pub last_value_ms: Option<f64>,
    /// The latest standardized value, before clamping.
    pub last_score: Option<f64>,
    /// The CUSUM statistic.
    pub statistic: f64,
    /// The decision threshold.
    pub threshold: f64,
    /// Whether the alarm is raised.
    pub in_alarm: bool,
}

/// A change of the drift alarm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DriftChange {
    /// The sum crossed the threshold.
    Raised,
    /// The sum fell back to zero.
    Cleared,
}

/// Detects a sustained rise of a latency statistic.
///
/// During warm-up it stores the log of each datapoint. It then takes their median `m` and
/// median absolute deviation (MAD). For every later datapoint `x` it computes
/// `z = (ln x − m) / max(1.4826 · MAD, min_scale)`, clamps `z` to `±clamp`, and updates
/// `S = max(0, S + z − slack)`, capped at twice the threshold. The alarm is raised when `S`
/// exceeds `threshold` and cleared when `S` is back at zero. A step of 1.5× in the statistic
/// adds `min(ln 1.5 / scale, clamp) − slack` per datapoint before noise, 1.2 with the
/// defaults and a scale of at most 0.15, so the alarm comes on about the seventh shifted
/// datapoint. A step of 1.9× or more reaches the clamp and adds 2.5, so the alarm comes on
/// the fourth. One datapoint adds at most `clamp − slack` = 2.5, so at least four outliers
/// close together are needed to raise it.
#[derive(Clone, Debug)]
pub struct DriftDetector {
    config: DriftConfig,
    warmup: Vec<f64>,
    baseline: Option<(f64, f64)>,
    datapoints: u64,
    statistic: f64,
    in_alarm: bool,
    last_value: Option<f64>,
    last_score: Option<f64>,
}

impl DriftDetector {
    /// Creates a detector that starts learning its baseline.
    pub fn new(config: DriftConfig) -> Self {
        DriftDetector {
            config,
            warmup: Vec::with_capacity(config.warmup_datapoints),
            baseline: None,
            datapoints: 0,
            statistic: 0.0,
            in_alarm: false,
            last_value: None,
            last_score: None,
        }
    }

    /// Returns the settings.
    pub fn config(&self) -> DriftConfig {
        self.config
    }

    /// Adds one datapoint of the latency statistic (milliseconds) and returns the alarm
    /// change it causes. Values that are not positive and finite are ignored.
    pub fn observe(&mut self, value_ms: f64) -> Option<DriftChange> {
        if !(value_ms.is_finite() && value_ms > 0.0) {
            return None;
        }
        self.datapoints += 1;
        self.last_value = Some(value_ms);
        let log_value = value_ms.ln();
        let Some((median, scale)) = self.baseline else {
            self.warmup.push(log_value);
            if self.warmup.len() >= self.config.warmup_datapoints.max(1) {
                self.baseline = Some(robust_location_scale(&mut self.warmup));
                self.warmup = Vec::new();
            }
            return None;
        };
        let z = (log_value - median) / scale.max(self.config.min_scale);
        self.last_score = Some(z);
        let clamped = z.clamp(-self.config.clamp, self.config.clamp);
        // Capped at twice the threshold, so that a long alarm clears within a few normal
        // datapoints of the latency coming back.
        self.statistic =
            (self.statistic + clamped - self.config.slack).clamp(0.0, 2.0 * self.config.threshold);
        if !self.in_alarm && self.statistic > self.config.threshold {
            self.in_alarm = true;
            return Some(DriftChange::Raised);
        }
        if self.in_alarm && self.statistic == 0.0 {
            self.in_alarm = false;
            return Some(DriftChange::Cleared);
        }
        None
    }

    /// Returns the current state.
    pub fn state(&self) -> DriftState {
        DriftState {
            warming_up: self.baseline.is_none(),
            datapoints: self.datapoints,
            baseline_median_ms: self.baseline.map(|(median, _)| median.exp()),
            baseline_log_scale: self.baseline.map(|(_, scale)| scale),
            last_value_ms: self.last_value,
            last_score: self.last_score,
            statistic: self.statistic,
            threshold: self.config.threshold,
            in_alarm: self.in_alarm,
        }
    }
}

/// Returns the median and 1.4826 × the median absolute deviation of `values`, which must
/// not be empty; 1.4826 makes the MAD estimate the standard deviation of normal data.
fn robust_location_scale(values: &mut [f64]) -> (f64, f64) {
    let median = median(values);
    let mut deviations: Vec<f64> = values.iter().map(|v| (v - median).abs()).collect();
    (median, 1.4826 * self::median(&mut deviations))
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    if values.len() % 2 == 1 { values[middle] } else { (values[middle - 1] + values[middle]) / 2.0 }
}
