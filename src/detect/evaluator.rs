//! The per-behavior state machines that turn datapoints into alarm events.

use std::collections::VecDeque;
use std::time::Duration;

use super::alarm::{AlarmEvent, AlarmKind, AlarmState};
use super::metric::{MetricSource, MetricValue};
use super::profile::{Behavior, MetricKind, Operator, Profile, Threshold, metric_kind};

/// Time without a datapoint after which a raised alarm is invalidated, unless
/// [`Evaluator::invalidate_after`] sets another.
pub const DEFAULT_INVALIDATE_AFTER: Duration = Duration::from_secs(60);

/// Datapoints of history a `statisticalThreshold` needs before it is evaluated.
pub const MIN_STATISTIC_DATAPOINTS: usize = 5;

/// Evaluates the behaviors of a profile, one datapoint per call to [`Evaluator::evaluate`].
///
/// Each behavior runs its own state machine. A violating datapoint (the criterion is false)
/// adds to a run of violations and resets the run of normal ones, and the other way round.
/// When the violations reach `consecutiveDatapointsToAlarm` the behavior goes into alarm;
/// in alarm, `consecutiveDatapointsToClear` normal datapoints clear it. A datapoint missing
/// from every source changes neither run. When no datapoint has come for the
/// invalidation time while in alarm, the alarm is invalidated and the runs start over.
///
/// Times are nanoseconds of the detector's clock, so tests can drive them by hand.
#[derive(Debug)]
pub struct Evaluator {
    behaviors: Vec<BehaviorState>,
    invalidate_after: Duration,
}

/// The state of one behavior, as [`Evaluator::status`] returns it.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct BehaviorStatus {
    /// The behavior name.
    pub behavior: String,
    /// The metric name.
    pub metric: String,
    /// Whether the behavior is in alarm.
    pub in_alarm: bool,
    /// Violating datapoints in a row.
    pub violations: u32,
    /// Normal datapoints in a row.
    pub normals: u32,
    /// The last aggregated value, if any.
    pub last_value: Option<MetricValue>,
}

#[derive(Debug)]
struct BehaviorState {
    behavior: Behavior,
    counter: bool,
    /// Numeric datapoints inside the trailing `durationSeconds`, oldest first.
    history: VecDeque<(u64, f64)>,
    violations: u32,
    normals: u32,
    in_alarm: bool,
    last_data: Option<u64>,
    last_value: Option<MetricValue>,
}

impl Evaluator {
    /// Creates the state machines of every behavior of `profile`, all normal.
    pub fn new(profile: &Profile) -> Self {
        let behaviors = profile
            .behaviors
            .iter()
            .map(|behavior| BehaviorState {
                counter: metric_kind(&behavior.metric) == Ok(MetricKind::Counter),
                behavior: behavior.clone(),
                history: VecDeque::new(),
                violations: 0,
                normals: 0,
                in_alarm: false,
                last_data: None,
                last_value: None,
            })
            .collect();
        Evaluator { behaviors, invalidate_after: DEFAULT_INVALIDATE_AFTER }
    }

    /// Sets the time without a datapoint after which an alarm is invalidated.
    pub fn invalidate_after(mut self, time: Duration) -> Self {
        self.invalidate_after = time;
        self
    }

    /// Returns the metric names the behaviors read.
    pub fn metrics(&self) -> Vec<&str> {
        let mut names: Vec<&str> =
            self.behaviors.iter().map(|b| b.behavior.metric.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        names
    }

    /// Returns the state of every behavior.
    pub fn status(&self) -> Vec<BehaviorStatus> {
        self.behaviors
            .iter()
            .map(|state| BehaviorStatus {
                behavior: state.behavior.name.clone(),
                metric: state.behavior.metric.clone(),
                in_alarm: state.in_alarm,
                violations: state.violations,
                normals: state.normals,
                last_value: state.last_value.clone(),
            })
            .collect()
    }

    /// Evaluates one datapoint of every behavior at clock time `now_nanos`, reading the
    /// metrics from `source`, and returns the alarm events with `time_ms` set to `wall_ms`.
    pub fn evaluate(
        &mut self,
        now_nanos: u64,
        wall_ms: u64,
        source: &mut dyn MetricSource,
    ) -> Vec<AlarmEvent> {
        let invalidate_after = self.invalidate_after.as_nanos() as u64;
        let mut events = Vec::new();
        for state in &mut self.behaviors {
            let value = source.metric(&state.behavior.metric);
            let event = match value {
                Some(value) => state.observe(now_nanos, value),
                None => state.check_stale(now_nanos, invalidate_after),
            };
            if let Some(mut event) = event {
                event.time_ms = wall_ms;
                events.push(event);
            }
        }
        events
    }
}

impl BehaviorState {
    fn event(
        &self,
        state: AlarmState,
        value: Option<MetricValue>,
        threshold: Option<MetricValue>,
        detail: String,
    ) -> AlarmEvent {
        AlarmEvent {
            time_ms: 0,
            kind: AlarmKind::Behavior,
            behavior: self.behavior.name.clone(),
            metric: self.behavior.metric.clone(),
            state,
            operator: self.behavior.criteria.operator.as_str().to_owned(),
            value,
            threshold,
            detail,
        }
    }

    fn check_stale(&mut self, now: u64, invalidate_after: u64) -> Option<AlarmEvent> {
        let last = self.last_data?;
        if !self.in_alarm || now.saturating_sub(last) < invalidate_after {
            return None;
        }
        self.in_alarm = false;
        self.violations = 0;
        self.normals = 0;
        self.history.clear();
        let detail = format!(
            "no datapoint of {} for {} s",
            self.behavior.metric,
            (now - last) / 1_000_000_000
        );
        Some(self.event(AlarmState::AlarmInvalidated, None, None, detail))
    }

    fn observe(&mut self, now: u64, value: MetricValue) -> Option<AlarmEvent> {
        self.last_data = Some(now);
        let criteria = &self.behavior.criteria;
        let verdict = match (&value, criteria.operator.is_numeric()) {
            (MetricValue::Number(number), true) => self.numeric(now, *number),
            (value, false) => list_verdict(criteria.operator, &criteria.threshold, value),
            // A number for a list operator or a list for a numeric one: a source bug, which
            // counts as a missing datapoint rather than a violation.
            _ => None,
        };
        let (normal, observed, threshold) = verdict?;
        self.last_value = Some(observed.clone());
        if normal {
            self.normals = self.normals.saturating_add(1);
            self.violations = 0;
        } else {
            self.violations = self.violations.saturating_add(1);
            self.normals = 0;
        }
        let operator = self.behavior.criteria.operator;
        let detail = format!(
            "{} = {} where normal is {operator} {}",
            self.behavior.metric,
            describe(&observed),
            describe(&threshold)
        );
        if !self.in_alarm
            && self.violations >= u32::from(self.behavior.criteria.datapoints_to_alarm)
        {
            self.in_alarm = true;
            return Some(self.event(AlarmState::InAlarm, Some(observed), Some(threshold), detail));
        }
        if self.in_alarm && self.normals >= u32::from(self.behavior.criteria.datapoints_to_clear) {
            self.in_alarm = false;
            return Some(self.event(
                AlarmState::AlarmCleared,
                Some(observed),
                Some(threshold),
                detail,
            ));
        }
        None
    }

    /// Aggregates a numeric datapoint over the trailing duration and compares it. Returns
    /// whether it is normal, the aggregated value and the threshold, or `None` when a
    /// percentile threshold has too little history yet.
    fn numeric(&mut self, now: u64, number: f64) -> Option<(bool, MetricValue, MetricValue)> {
        let criteria = &self.behavior.criteria;
        let window = criteria.duration.map(|d| d.as_nanos() as u64);
        // The percentile compares the new datapoint with the history before it.
        let threshold = match criteria.threshold {
            Threshold::Number(threshold) => Some(threshold),
            Threshold::Percentile(percentile) => {
                let mut past: Vec<f64> = self.history.iter().map(|(_, v)| *v).collect();
                (past.len() >= MIN_STATISTIC_DATAPOINTS)
                    .then(|| percentile_of(&mut past, percentile))
            }
            _ => None,
        };
        self.history.push_back((now, number));
        match window {
            Some(window) => {
                while self.history.front().is_some_and(|(t, _)| now.saturating_sub(*t) >= window) {
                    self.history.pop_front();
                }
            }
            None => {
                while self.history.len() > 1 {
                    self.history.pop_front();
                }
            }
        }
        let threshold = threshold?;
        let aggregated = match (window, matches!(criteria.threshold, Threshold::Percentile(_))) {
            // A percentile threshold compares the datapoint itself with the history.
            (_, true) | (None, _) => number,
            (Some(_), false) => {
                let sum: f64 = self.history.iter().map(|(_, v)| v).sum();
                if self.counter { sum } else { sum / self.history.len() as f64 }
            }
        };
        let normal = criteria.operator.compare(aggregated, threshold);
        Some((normal, MetricValue::Number(aggregated), MetricValue::Number(threshold)))
    }
}

/// Returns the nearest-rank `percentile` (0–100) of `values`, which must not be empty.
fn percentile_of(values: &mut [f64], percentile: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    let rank = (percentile / 100.0 * values.len() as f64).ceil() as usize;
    values[rank.clamp(1, values.len()) - 1]
}

fn list_verdict(
    operator: Operator,
    threshold: &Threshold,
    value: &MetricValue,
) -> Option<(bool, MetricValue, MetricValue)> {
    let (all_in, none_in, threshold_value) = match (threshold, value) {
        (Threshold::Ports(set), MetricValue::Ports(ports)) => (
            ports.iter().all(|p| set.contains(p)),
            !ports.iter().any(|p| set.contains(p)),
            MetricValue::Ports(set.clone()),
        ),
        (Threshold::Cidrs(ranges), MetricValue::Addresses(addresses)) => (
            addresses.iter().all(|a| ranges.iter().any(|r| r.contains(*a))),
            !addresses.iter().any(|a| ranges.iter().any(|r| r.contains(*a))),
            MetricValue::Strings(ranges.iter().map(ToString::to_string).collect()),
        ),
        (Threshold::Numbers(set), MetricValue::Numbers(numbers)) => (
            numbers.iter().all(|n| set.contains(n)),
            !numbers.iter().any(|n| set.contains(n)),
            MetricValue::Numbers(set.clone()),
        ),
        (Threshold::Numbers(set), MetricValue::Number(number)) => {
            (set.contains(number), !set.contains(number), MetricValue::Numbers(set.clone()))
        }
        (Threshold::Strings(set), MetricValue::Strings(strings)) => (
            strings.iter().all(|s| set.contains(s)),
            !strings.iter().any(|s| set.contains(s)),
            MetricValue::Strings(set.clone()),
        ),
        _ => return None,
    };
    let normal = match operator {
        Operator::InPortSet | Operator::InCidrSet | Operator::InSet => all_in,
        _ => none_in,
    };
    Some((normal, value.clone(), threshold_value))
}

fn describe(value: &MetricValue) -> String {
    match value {
        MetricValue::Number(number) => format!("{number:.3}"),
        other => serde_json::to_string(other).unwrap_or_default(),
    }
}
