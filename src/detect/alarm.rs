//! Alarm events and the sinks that receive them.

use std::sync::mpsc;

use serde::Serialize;

use super::metric::MetricValue;

/// The state an alarm event reports, named as Device Defender names violation events.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AlarmState {
    /// Enough violating datapoints in a row: the alarm is raised.
    InAlarm,
    /// Enough normal datapoints in a row: the alarm is over.
    AlarmCleared,
    /// The metric stopped arriving while the alarm was raised, so its state is unknown.
    AlarmInvalidated,
}

impl AlarmState {
    /// Returns the state's name: `in-alarm`, `alarm-cleared` or `alarm-invalidated`.
    pub fn as_str(self) -> &'static str {
        match self {
            AlarmState::InAlarm => "in-alarm",
            AlarmState::AlarmCleared => "alarm-cleared",
            AlarmState::AlarmInvalidated => "alarm-invalidated",
        }
    }
}

/// What raised an alarm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AlarmKind {
    /// A behavior of a security profile.
    Behavior,
    /// The latency drift detector.
    Drift,
    /// A mining indicator found in `/proc`.
    Indicator,
}

/// One change of an alarm's state, ready to log, print or publish as JSON.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AlarmEvent {
    /// Wall-clock time of the evaluation, in milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// What raised it.
    pub kind: AlarmKind,
    /// The behavior name, `latency-drift`, or the indicator name.
    pub behavior: String,
    /// The metric evaluated.
    pub metric: String,
    /// The new state.
    pub state: AlarmState,
    /// The comparison that holds for normal datapoints, such as `less-than`.
    pub operator: String,
    /// The value observed (after aggregation over `durationSeconds`); absent for an
    /// invalidated alarm.
    pub value: Option<MetricValue>,
    /// The value compared with: a number, or the ports, ranges or set of the behavior.
    pub threshold: Option<MetricValue>,
    /// A readable account, such as the process or connection an indicator found.
    pub detail: String,
}

/// The callbacks and channels that alarm events are delivered to, in registration order.
///
/// Callbacks run on the thread that evaluates (the detector thread, or the caller of
/// `Detector::evaluate_now`), so they should return quickly. A channel whose receiver was
/// dropped is removed.
pub(crate) type Callback = Box<dyn Fn(&AlarmEvent) + Send + Sync>;

#[derive(Default)]
pub(crate) struct Sinks {
    callbacks: Vec<Callback>,
    channels: Vec<mpsc::Sender<AlarmEvent>>,
}

impl std::fmt::Debug for Sinks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sinks")
            .field("callbacks", &self.callbacks.len())
            .field("channels", &self.channels.len())
            .finish()
    }
}

impl Sinks {
    pub(crate) fn add_callback(&mut self, callback: Callback) {
        self.callbacks.push(callback);
    }

    pub(crate) fn add_channel(&mut self, sender: mpsc::Sender<AlarmEvent>) {
        self.channels.push(sender);
    }

    pub(crate) fn deliver(&mut self, event: &AlarmEvent) {
        log_event(event);
        for callback in &self.callbacks {
            callback(event);
        }
        self.channels.retain(|sender| sender.send(event.clone()).is_ok());
    }
}

fn format_value(value: &Option<MetricValue>) -> String {
    match value {
        None => "none".to_owned(),
        Some(MetricValue::Number(number)) => format!("{number:.3}"),
        Some(other) => serde_json::to_string(other).unwrap_or_default(),
    }
}

fn log_event(event: &AlarmEvent) {
    let value = format_value(&event.value);
    let threshold = format_value(&event.threshold);
    match event.state {
        AlarmState::InAlarm => tracing::warn!(
            behavior = %event.behavior,
            metric = %event.metric,
            value = %value,
            operator = %event.operator,
            threshold = %threshold,
            "alarm raised: {}",
            event.detail
        ),
        AlarmState::AlarmCleared | AlarmState::AlarmInvalidated => tracing::info!(
            behavior = %event.behavior,
            metric = %event.metric,
            value = %value,
            state = event.state.as_str(),
            "alarm ended: {}",
            event.detail
        ),
    }
}
