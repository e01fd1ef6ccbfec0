//! Detection during `inferwatch bench`: the timed inferences go into a monitor's window, a
//! detector evaluates them, and its alarm events come back with their time on the plot's
//! axis.

use std::sync::mpsc;
use std::time::Duration;

use inferwatch::detect::{AlarmEvent, AlarmState, Detector, Profile};
use inferwatch::{Monitor, Recorder, WindowConfig};
use serde::Serialize;

use super::super::Failure;
use super::super::detection::DetectionArgs;

/// Window slot for evaluation periods up to [`FINE_PERIODS_UP_TO`]. The detector rounds its
/// periods up to whole slots, so a fine slot keeps a short `--eval-period` as given.
const FINE_SLOT: Duration = Duration::from_millis(100);
/// Maximum evaluation period that gets [`FINE_SLOT`]. Longer periods get one-second slots,
/// so the window takes 10 to 20 KiB per second of the period: 9.5 KiB per slot, in a ring
/// rounded up to a power of two.
const FINE_PERIODS_UP_TO: Duration = Duration::from_secs(10);

/// One alarm event of a bench run.
#[derive(Debug, Serialize)]
pub(super) struct BenchAlarm {
    /// Seconds from the start of the timed loop to the end of the evaluated period, the
    /// time axis of the plot. Negative when that period ended before the first inference,
    /// as an indicator scan can.
    pub(super) seconds: f64,
    #[serde(flatten)]
    pub(super) event: AlarmEvent,
}

/// The monitor and detector that evaluate the timed inferences while `--profile` or
/// `--drift` is on.
///
/// The detector runs on its own thread, as in `inferwatch run`, and the monitor starts its
/// load sampler thread, so both take some CPU time beside the timed loop.
pub(super) struct AlarmWatch {
    monitor: Monitor,
    detector: Detector,
    events: mpsc::Receiver<AlarmEvent>,
    profile_on: bool,
    eval_period: Duration,
}

impl AlarmWatch {
    /// Builds the monitor and starts the detector that `detection` configures.
    pub(super) fn start(
        detection: &DetectionArgs,
        profile: Option<Profile>,
    ) -> Result<Self, Failure> {
        let slot = if detection.eval_period <= FINE_PERIODS_UP_TO {
            FINE_SLOT
        } else {
            Duration::from_secs(1)
        };
        // Two spare slots: the one still filling and the one the sampler prepares.
        let span = detection.eval_period + slot * 2;
        // One thread records, so one stripe is enough.
        let window = WindowConfig { stripes: 1, ..WindowConfig::spanning(span, slot) };
        let monitor = Monitor::builder()
            .window(window)
            .build()
            .map_err(|e| Failure::runtime(format!("failed to start the sampler thread: {e}")))?;
        let profile_on = profile.is_some();
        let detector = detection.detector_builder(&monitor, profile).build();
        let events = detector.subscribe();
        detector
            .start()
            .map_err(|e| Failure::runtime(format!("failed to start the detector thread: {e}")))?;
        Ok(AlarmWatch { monitor, detector, events, profile_on, eval_period: detection.eval_period })
    }

    /// Returns the recorder whose clock times the inferences and whose window the detector
    /// evaluates.
    pub(super) fn recorder(&self) -> &Recorder {
        self.monitor.recorder()
    }

    /// Stops the detector and returns the alarm events it delivered, which exclude behaviors
    /// with `suppressAlerts`. Each is timed in seconds since `origin_ns`, the recorder's
    /// clock time when the timed loop started. `wall_ns` is the loop's length, which the
    /// warning for a run too short to evaluate names.
    pub(super) fn finish(self, origin_ns: u64, wall_ns: u64) -> Vec<BenchAlarm> {
        self.detector.stop();
        // Evaluates a period that ended after the thread's last poll.
        self.detector.poll();
        self.monitor.shutdown();
        self.warn_if_nothing_evaluated(wall_ns);
        self.events
            .try_iter()
            .map(|event| {
                let at_ns = self.detector.clock_nanos_of(&event);
                let seconds = (at_ns as f64 - origin_ns as f64) / 1e9;
                BenchAlarm { seconds, event }
            })
            .collect()
    }

    fn warn_if_nothing_evaluated(&self, wall_ns: u64) {
        let wall_s = wall_ns as f64 / 1e9;
        let behaviors = self.detector.behaviors();
        if self.profile_on && behaviors.iter().all(|b| b.last_value.is_none()) {
            tracing::warn!(
                "no datapoint of the profile was evaluated: the timed loop lasted {wall_s:.2} s \
                 and --eval-period is {} s; raise --duration or --iterations, or lower \
                 --eval-period",
                self.eval_period.as_secs_f64()
            );
        }
        if self.detector.drift_state().is_some_and(|state| state.warming_up) {
            tracing::warn!(
                "the drift detector was still learning its baseline when the timed loop ended \
                 after {wall_s:.2} s; raise --duration or --iterations beyond --drift-warmup"
            );
        }
    }
}

/// Returns the times of the events that raised an alarm, the markers of the plot.
pub(super) fn raised_seconds(alarms: &[BenchAlarm]) -> Vec<f64> {
    alarms.iter().filter(|a| a.event.state == AlarmState::InAlarm).map(|a| a.seconds).collect()
}

/// Prints one line per alarm event.
pub(super) fn print_alarms(alarms: &[BenchAlarm]) {
    for alarm in alarms {
        println!(
            "alarm at {:.2} s: {} {}: {}",
            alarm.seconds,
            alarm.event.behavior,
            alarm.event.state.as_str(),
            alarm.event.detail
        );
    }
}
