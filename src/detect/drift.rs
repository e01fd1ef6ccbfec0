//! Latency drift: a robust baseline of log latency and a one-sided CUSUM above it.

use std::collections::VecDeque;

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
    /// Number of recent calm datapoints whose median is the baseline after warm-up, so that
    /// the baseline follows slow changes of the device, such as a warmer chip or a busier
    /// host. A datapoint is calm when it leaves the sum at zero, so a rise that the sum is
    /// weighing never enters the baseline. A count below `warmup_datapoints` counts as
    /// `warmup_datapoints`, so the baseline never rests on fewer datapoints than the
    /// warm-up's. 0 keeps the warm-up median for good.
    pub baseline_datapoints: usize,
}

impl Default for DriftConfig {
    fn default() -> Self {
        DriftConfig {
            warmup_datapoints: 30,
            slack: 1.5,
            threshold: 8.0,
            clamp: 4.0,
            min_scale: 0.15,
            baseline_datapoints: 300,
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
    /// Median of the latency statistic over the warm-up and then over the recent calm
    /// datapoints, in milliseconds.
    pub baseline_median_ms: Option<f64>,
    /// Datapoints the baseline median is taken over.
    pub baseline_datapoints: usize,
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
///
/// After warm-up, `m` becomes the median of the last
/// [`baseline_datapoints`](DriftConfig::baseline_datapoints) calm datapoints: those after
/// which `S` is zero. The warm-up datapoints count as calm, so `m` starts at the warm-up
/// median and moves only once calm datapoints at a new level outnumber the older ones. A
/// rise of more than `slack` robust standard deviations (1.25× with the defaults and the
/// scale at its floor) makes `S` positive at once, so it never enters the baseline. A change
/// well under that, spread over minutes, moves the baseline along. The scale stays the
/// warm-up's.
#[derive(Clone, Debug)]
pub struct DriftDetector {
    config: DriftConfig,
    /// Log values: the warm-up's, then the calm datapoints the baseline median is taken over.
    history: VecDeque<f64>,
    /// Space in which the median of `history` is computed, so that no datapoint allocates.
    scratch: Vec<f64>,
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
            history: VecDeque::with_capacity(
                config.warmup_datapoints.max(config.baseline_datapoints).max(1) + 1,
            ),
            scratch: Vec::new(),
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
            self.history.push_back(log_value);
            if self.history.len() >= self.config.warmup_datapoints.max(1) {
                self.scratch.extend(&self.history);
                self.baseline = Some(robust_location_scale(&mut self.scratch));
            }
            return None;
        };
        let z = (log_value - median) / scale.max(self.config.min_scale);
        self.last_score = Some(z);
        let clamped = z.clamp(-self.config.clamp, self.config.clamp);
        // Capped at twice the threshold, so that a long alarm clears within about a dozen
        // normal datapoints of the latency coming back (16 / 1.5 with the defaults).
        self.statistic =
            (self.statistic + clamped - self.config.slack).clamp(0.0, 2.0 * self.config.threshold);
        if self.statistic == 0.0 && self.config.baseline_datapoints > 0 {
            self.follow(log_value, scale);
        }
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

    /// Adds a calm datapoint to the baseline and takes the median again.
    fn follow(&mut self, log_value: f64, scale: f64) {
        self.history.push_back(log_value);
        let keep = self.config.baseline_datapoints.max(self.config.warmup_datapoints);
        while self.history.len() > keep {
            self.history.pop_front();
        }
        self.scratch.clear();
        self.scratch.extend(&self.history);
        self.baseline = Some((median(&mut self.scratch), scale));
    }

    /// Returns the current state.
    pub fn state(&self) -> DriftState {
        DriftState {
            warming_up: self.baseline.is_none(),
            datapoints: self.datapoints,
            baseline_median_ms: self.baseline.map(|(median, _)| median.exp()),
            baseline_datapoints: if self.baseline.is_some() { self.history.len() } else { 0 },
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

/// Returns the median of `values`, which must not be empty, reordering them.
fn median(values: &mut [f64]) -> f64 {
    let len = values.len();
    let middle = len / 2;
    let (lower, upper, _) = values.select_nth_unstable_by(middle, f64::total_cmp);
    if len % 2 == 1 {
        return *upper;
    }
    // With an even count, the median is the mean of the two middle values. The lower of them
    // is the largest value left of `upper`.
    let below = lower.iter().copied().max_by(f64::total_cmp).unwrap_or(*upper);
    (below + *upper) / 2.0
}
