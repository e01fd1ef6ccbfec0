//! The detector handle: profiles, drift and indicators evaluated on the monitor's window.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::alarm::{AlarmEvent, AlarmKind, AlarmState, Sinks};
use super::drift::{DriftChange, DriftConfig, DriftDetector, DriftState};
use super::evaluator::{BehaviorStatus, Evaluator};
use super::indicators::{Finding, IndicatorConfig, IndicatorScanner};
use super::metric::{MetricSource, MetricValue};
use super::profile::Profile;
use crate::monitor::Monitor;
use crate::snapshot::Snapshot;
use crate::window::WindowStats;

/// Default time between two datapoints of the profile and two indicator scans.
pub const DEFAULT_EVAL_PERIOD: Duration = Duration::from_secs(5);

/// Default time between two datapoints of the drift detector.
pub const DEFAULT_DRIFT_PERIOD: Duration = Duration::from_secs(1);

/// Inferences a drift datapoint needs; periods with fewer are skipped.
pub const MIN_DRIFT_INFERENCES: u64 = 3;

/// The behavior name of drift alarms.
pub const DRIFT_BEHAVIOR: &str = "latency-drift";

/// Configures a [`Detector`].
pub struct DetectorBuilder {
    monitor: Monitor,
    profile: Option<Profile>,
    drift: Option<DriftConfig>,
    indicators: Option<IndicatorConfig>,
    eval_period: Duration,
    drift_period: Duration,
    invalidate_after: Option<Duration>,
    sources: Vec<Box<dyn MetricSource>>,
}

impl std::fmt::Debug for DetectorBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DetectorBuilder")
            .field("profile", &self.profile)
            .field("drift", &self.drift)
            .field("indicators", &self.indicators)
            .field("eval_period", &self.eval_period)
            .field("drift_period", &self.drift_period)
            .field("sources", &self.sources.len())
            .finish_non_exhaustive()
    }
}

impl DetectorBuilder {
    /// Evaluates the behaviors of `profile`.
    pub fn profile(mut self, profile: Profile) -> Self {
        self.profile = Some(profile);
        self
    }

    /// Runs the latency drift detector.
    pub fn drift(mut self, config: DriftConfig) -> Self {
        self.drift = Some(config);
        self
    }

    /// Scans `/proc` for mining indicators once per evaluation period.
    pub fn indicators(mut self, config: IndicatorConfig) -> Self {
        self.indicators = Some(config);
        self
    }

    /// Sets the time between two profile datapoints (default 5 s), rounded up to whole
    /// window slots.
    pub fn eval_period(mut self, period: Duration) -> Self {
        self.eval_period = period;
        self
    }

    /// Sets the time between two drift datapoints (default 1 s), rounded up to whole
    /// window slots.
    pub fn drift_period(mut self, period: Duration) -> Self {
        self.drift_period = period;
        self
    }

    /// Sets the time without data after which a behavior's alarm is invalidated (default
    /// 60 s).
    pub fn invalidate_after(mut self, time: Duration) -> Self {
        self.invalidate_after = Some(time);
        self
    }

    /// Adds a metric source, asked before the monitor's own metrics: a source of `aws:`
    /// network metrics, or one that replaces a measured metric with a simulated one.
    pub fn metric_source(mut self, source: impl MetricSource + 'static) -> Self {
        self.sources.push(Box::new(source));
        self
    }

    /// Builds the detector. Nothing is evaluated until [`Detector::poll`] is called or
    /// [`Detector::start`] starts the detector thread.
    pub fn build(self) -> Detector {
        let recorder = self.monitor.recorder();
        let slot = recorder.window().config().slot.max(Duration::from_nanos(1));
        let round = |period: Duration| {
            let slots = period.as_nanos().div_ceil(slot.as_nanos()).max(1);
            (slot.as_nanos() * slots) as u64
        };
        let eval_period = round(self.eval_period);
        let drift_period = round(self.drift_period);
        let now = recorder.now_nanos();
        let wall_now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        let wall_origin_ms = (wall_now.as_millis() as u64).saturating_sub(now / 1_000_000);
        let evaluator = self.profile.as_ref().map(|profile| {
            let evaluator = Evaluator::new(profile);
            match self.invalidate_after {
                Some(time) => evaluator.invalidate_after(time),
                None => evaluator,
            }
        });
        let suppressed = self
            .profile
            .iter()
            .flat_map(|p| &p.behaviors)
            .filter(|b| b.suppress_alerts)
            .map(|b| b.name.clone())
            .collect();
        let inner = Inner {
            evaluator,
            suppressed,
            drift: self.drift.map(DriftDetector::new),
            scanner: self.indicators.map(IndicatorScanner::new),
            sources: self.sources,
            eval_period,
            drift_period,
            next_eval: next_boundary(now, eval_period),
            next_drift: next_boundary(now, drift_period),
            wall_origin_ms,
            active: BTreeMap::new(),
            findings: HashMap::new(),
            last_metrics: BTreeMap::new(),
        };
        Detector {
            shared: Arc::new(Shared {
                monitor: self.monitor,
                inner: Mutex::new(inner),
                sinks: Mutex::new(Sinks::default()),
                stop: AtomicBool::new(false),
                thread: Mutex::new(None),
            }),
        }
    }
}

fn next_boundary(now: u64, period: u64) -> u64 {
    (now / period + 1) * period
}

/// Evaluates a security profile, the latency drift detector and the mining indicators on a
/// [`Monitor`]'s window, and delivers alarm events to callbacks, channels and the log.
///
/// Every evaluation period (5 s by default) the detector takes one datapoint of each metric
/// over the last complete period of the window, evaluates every behavior, and scans
/// `/proc` for indicators; every drift period (1 s by default) it feeds the p90 latency of
/// the last complete period to the drift detector. Periods are aligned to the window's
/// slots, so a datapoint never mixes a slot that is still filling.
///
/// [`Detector::start`] runs this on a thread named `inferwatch-detector`, which stops when
/// [`Detector::stop`] is called or the last handle is dropped. Without the thread,
/// [`Detector::poll`] evaluates every period that has ended on the monitor's clock, which
/// lets tests drive time with [`Clock::manual`](crate::Clock::manual). Cloning is cheap.
#[derive(Clone, Debug)]
pub struct Detector {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    monitor: Monitor,
    inner: Mutex<Inner>,
    sinks: Mutex<Sinks>,
    stop: AtomicBool,
    thread: Mutex<Option<JoinHandle<()>>>,
}

struct Inner {
    evaluator: Option<Evaluator>,
    suppressed: Vec<String>,
    drift: Option<DriftDetector>,
    scanner: Option<IndicatorScanner>,
    sources: Vec<Box<dyn MetricSource>>,
    eval_period: u64,
    drift_period: u64,
    next_eval: u64,
    next_drift: u64,
    wall_origin_ms: u64,
    /// The raised alarms by behavior name (indicators: by indicator and key).
    active: BTreeMap<String, AlarmEvent>,
    /// Indicator findings present at the last scan, by indicator and key.
    findings: HashMap<String, Finding>,
    last_metrics: BTreeMap<String, MetricValue>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inner")
            .field("evaluator", &self.evaluator)
            .field("drift", &self.drift)
            .field("scanner", &self.scanner)
            .field("active", &self.active.len())
            .finish_non_exhaustive()
    }
}

/// The monitor's metrics over one period, the way a profile names them.
fn window_metrics(snapshot: &Snapshot) -> BTreeMap<String, MetricValue> {
    let entries = [
        ("avg_inference_time", snapshot.avg_inference_time),
        ("p50_inference_time", snapshot.p50_inference_time),
        ("p90_inference_time", snapshot.p90_inference_time),
        ("p99_inference_time", snapshot.p99_inference_time),
        ("min_inference_time", snapshot.min_inference_time),
        ("max_inference_time", snapshot.max_inference_time),
        ("inference_count", Some(snapshot.inference_count as f64)),
        ("cpu_load_per_inference", snapshot.cpu_load_per_inference),
        ("gpu_load_per_inference", snapshot.gpu_load_per_inference),
        ("foreign_cpu_load", snapshot.foreign_cpu_load),
        ("foreign_gpu_load", snapshot.foreign_gpu_load),
    ];
    entries
        .into_iter()
        .filter_map(|(name, value)| Some((name.to_owned(), MetricValue::Number(value?))))
        .collect()
}

/// The sources of one datapoint: the added sources in order, then the window.
struct Chain<'a> {
    sources: &'a mut [Box<dyn MetricSource>],
    window: &'a BTreeMap<String, MetricValue>,
    seen: BTreeMap<String, MetricValue>,
}

impl MetricSource for Chain<'_> {
    fn metric(&mut self, name: &str) -> Option<MetricValue> {
        let value = self
            .sources
            .iter_mut()
            .find_map(|source| source.metric(name))
            .or_else(|| self.window.get(name).cloned())?;
        self.seen.insert(name.to_owned(), value.clone());
        Some(value)
    }
}

impl Detector {
    /// Starts configuring a detector on `monitor`'s window and clock.
    pub fn builder(monitor: &Monitor) -> DetectorBuilder {
        DetectorBuilder {
            monitor: monitor.clone(),
            profile: None,
            drift: None,
            indicators: None,
            eval_period: DEFAULT_EVAL_PERIOD,
            drift_period: DEFAULT_DRIFT_PERIOD,
            invalidate_after: None,
            sources: Vec::new(),
        }
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        // A callback that panicked poisons nothing of value: the state is consistent
        // between evaluations, so the guard is taken back.
        self.shared.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn sinks(&self) -> MutexGuard<'_, Sinks> {
        self.shared.sinks.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Calls `callback` with every alarm event, on the evaluating thread.
    pub fn on_alarm(&self, callback: impl Fn(&AlarmEvent) + Send + Sync + 'static) {
        self.sinks().add_callback(Box::new(callback));
    }

    /// Returns a channel that receives every alarm event from now on.
    pub fn subscribe(&self) -> mpsc::Receiver<AlarmEvent> {
        let (sender, receiver) = mpsc::channel();
        self.sinks().add_channel(sender);
        receiver
    }

    /// Returns the alarms raised now, each as the event that raised it.
    pub fn active_alarms(&self) -> Vec<AlarmEvent> {
        self.inner().active.values().cloned().collect()
    }

    /// Returns the time of `event`, one this detector raised, on the monitor's clock in
    /// nanoseconds, so that it can be placed among inferences timed with that clock.
    ///
    /// The detector derives `time_ms` from the clock time of the period's end, rounded down
    /// to the millisecond, so this returns that clock time to the millisecond.
    pub fn clock_nanos_of(&self, event: &AlarmEvent) -> u64 {
        let wall_origin_ms = self.inner().wall_origin_ms;
        event.time_ms.saturating_sub(wall_origin_ms).saturating_mul(1_000_000)
    }

    /// Returns the state of every behavior of the profile.
    pub fn behaviors(&self) -> Vec<BehaviorStatus> {
        self.inner().evaluator.as_ref().map(Evaluator::status).unwrap_or_default()
    }

    /// Returns the drift detector's state, if it runs.
    pub fn drift_state(&self) -> Option<DriftState> {
        self.inner().drift.as_ref().map(DriftDetector::state)
    }

    /// Returns the metric values of the last profile datapoint.
    pub fn last_metrics(&self) -> BTreeMap<String, MetricValue> {
        self.inner().last_metrics.clone()
    }

    /// Evaluates every period that has ended on the monitor's clock and returns the events,
    /// which are also delivered to the sinks.
    pub fn poll(&self) -> Vec<AlarmEvent> {
        let events = {
            let mut inner = self.inner();
            inner.poll(&self.shared.monitor)
        };
        if !events.is_empty() {
            let mut sinks = self.sinks();
            for event in &events {
                let suppressed = self.inner().suppressed.contains(&event.behavior);
                if !suppressed {
                    sinks.deliver(event);
                }
            }
        }
        events
    }

    /// Starts the thread that polls at every period boundary. Calling it again does nothing.
    pub fn start(&self) -> std::io::Result<()> {
        let mut thread = self.shared.thread.lock().unwrap_or_else(|e| e.into_inner());
        if thread.is_some() {
            return Ok(());
        }
        let weak: Weak<Shared> = Arc::downgrade(&self.shared);
        *thread = Some(
            std::thread::Builder::new()
                .name("inferwatch-detector".to_owned())
                .spawn(move || detector_loop(&weak))?,
        );
        tracing::debug!("detector thread started");
        Ok(())
    }

    /// Stops the detector thread and waits for it.
    pub fn stop(&self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        let handle = self.shared.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(handle) = handle {
            let _ = handle.join();
            tracing::debug!("detector thread stopped");
        }
    }
}

fn detector_loop(weak: &Weak<Shared>) {
    loop {
        let Some(shared) = weak.upgrade() else { return };
        if shared.stop.load(Ordering::Relaxed) {
            return;
        }
        let detector = Detector { shared };
        detector.poll();
        let wait = {
            let inner = detector.inner();
            let now = detector.shared.monitor.recorder().now_nanos();
            inner.next_eval.min(inner.next_drift).saturating_sub(now)
        };
        drop(detector);
        // Short sleeps keep `stop` responsive; the boundary is met within 100 ms.
        std::thread::sleep(
            Duration::from_nanos(wait).clamp(Duration::from_millis(1), Duration::from_millis(100)),
        );
    }
}

impl Inner {
    fn poll(&mut self, monitor: &Monitor) -> Vec<AlarmEvent> {
        let recorder = monitor.recorder();
        let now = recorder.now_nanos();
        let mut events = Vec::new();
        // A detector that fell behind (a suspended process) evaluates the latest period
        // only, as the older ones have rotated out of the window or no longer matter.
        if now >= self.next_drift {
            let boundary = now / self.drift_period * self.drift_period;
            self.next_drift = boundary + self.drift_period;
            let stats =
                recorder.window().stats(boundary - 1, Duration::from_nanos(self.drift_period));
            events.extend(self.drift_step(&stats, boundary));
        }
        if now >= self.next_eval {
            let boundary = now / self.eval_period * self.eval_period;
            self.next_eval = boundary + self.eval_period;
            let stats =
                recorder.window().stats(boundary - 1, Duration::from_nanos(self.eval_period));
            events.extend(self.eval_step(&stats, boundary));
        }
        for event in events.iter().filter(|e| e.kind != AlarmKind::Indicator) {
            let key = event.behavior.clone();
            match event.state {
                AlarmState::InAlarm => {
                    self.active.insert(key, event.clone());
                }
                AlarmState::AlarmCleared | AlarmState::AlarmInvalidated => {
                    self.active.remove(&key);
                }
            }
        }
        events
    }

    fn wall_ms(&self, clock_nanos: u64) -> u64 {
        self.wall_origin_ms + clock_nanos / 1_000_000
    }

    fn drift_step(&mut self, stats: &WindowStats, boundary: u64) -> Option<AlarmEvent> {
        let drift = self.drift.as_mut()?;
        if stats.count < MIN_DRIFT_INFERENCES {
            return None;
        }
        let p90_ms = stats.quantile_nanos(0.9)? / 1e6;
        let change = drift.observe(p90_ms)?;
        let state = drift.state();
        let baseline = state.baseline_median_ms.unwrap_or(f64::NAN);
        let (alarm_state, detail) = match change {
            DriftChange::Raised => (
                AlarmState::InAlarm,
                format!(
                    "p90 latency {p90_ms:.3} ms has stayed above its baseline of {baseline:.3} ms"
                ),
            ),
            DriftChange::Cleared => (
                AlarmState::AlarmCleared,
                format!("p90 latency {p90_ms:.3} ms is back near its baseline of {baseline:.3} ms"),
            ),
        };
        Some(AlarmEvent {
            time_ms: self.wall_ms(boundary),
            kind: AlarmKind::Drift,
            behavior: DRIFT_BEHAVIOR.to_owned(),
            metric: "p90_inference_time_cusum".to_owned(),
            state: alarm_state,
            operator: "less-than-equals".to_owned(),
            value: Some(MetricValue::Number(state.statistic)),
            threshold: Some(MetricValue::Number(state.threshold)),
            detail,
        })
    }

    fn eval_step(&mut self, stats: &WindowStats, boundary: u64) -> Vec<AlarmEvent> {
        let wall_ms = self.wall_ms(boundary);
        let mut events = Vec::new();
        if let Some(evaluator) = self.evaluator.as_mut() {
            let snapshot = Snapshot::from_stats(stats, SystemTime::UNIX_EPOCH);
            let window = window_metrics(&snapshot);
            let mut chain =
                Chain { sources: &mut self.sources, window: &window, seen: BTreeMap::new() };
            events.extend(evaluator.evaluate(boundary, wall_ms, &mut chain));
            self.last_metrics = chain.seen;
        }
        if let Some(scanner) = self.scanner.as_mut() {
            let found: HashMap<String, Finding> = scanner
                .scan(boundary)
                .into_iter()
                .map(|f| (format!("{} {}", f.indicator, f.key), f))
                .collect();
            let mut raised: Vec<&String> =
                found.keys().filter(|k| !self.findings.contains_key(*k)).collect();
            raised.sort();
            for key in raised {
                let event = indicator_event(&found[key], AlarmState::InAlarm, wall_ms);
                self.active.insert(key.clone(), event.clone());
                events.push(event);
            }
            let mut cleared: Vec<&String> =
                self.findings.keys().filter(|k| !found.contains_key(*k)).collect();
            cleared.sort();
            for key in cleared {
                let mut event =
                    indicator_event(&self.findings[key], AlarmState::AlarmCleared, wall_ms);
                event.value = None;
                // The finding describes the last scan that saw it, such as a CPU use above
                // the threshold, which no longer holds.
                event.detail = format!("no longer found: {}", event.detail);
                self.active.remove(key);
                events.push(event);
            }
            self.findings = found;
        }
        events
    }
}

fn indicator_event(finding: &Finding, state: AlarmState, time_ms: u64) -> AlarmEvent {
    let (metric, operator) = match finding.indicator {
        "pool-connection" => ("tcp_connections", "not-in-port-set"),
        "miner-name" => ("process_name", "not-in-set"),
        "miner-cmdline" => ("process_cmdline", "not-in-set"),
        _ => ("process_cpu", "less-than"),
    };
    AlarmEvent {
        time_ms,
        kind: AlarmKind::Indicator,
        behavior: finding.indicator.to_owned(),
        metric: metric.to_owned(),
        state,
        operator: operator.to_owned(),
        value: Some(finding.value.clone()),
        threshold: Some(finding.threshold.clone()),
        detail: finding.detail.clone(),
    }
}
