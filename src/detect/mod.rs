//! On-device detection: security profiles, latency drift and mining indicators.
//!
//! - A [`Profile`] is the behaviors JSON that `aws iot create-security-profile --behaviors`
//!   takes, parsed and validated like the service does; [`Profile::builtin`] returns the
//!   shipped `crypto-mining` profile.
//! - An [`Evaluator`] runs one state machine per behavior over datapoints that
//!   [`MetricSource`]s provide.
//! - A [`DriftDetector`] learns a baseline of log latency and runs a one-sided CUSUM above
//!   it.
//! - An [`IndicatorScanner`] looks through `/proc` for pool connections, miner names and
//!   command lines, and foreign processes that keep a core busy.
//! - A [`Detector`] drives all three on a [`Monitor`](crate::Monitor)'s window and sends
//!   each [`AlarmEvent`] to callbacks, channels and the log.
//!
//! # Example
//!
//! ```no_run
//! use inferwatch::Monitor;
//! use inferwatch::detect::{Detector, DriftConfig, IndicatorConfig, Profile};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let monitor = Monitor::builder().build()?;
//! let detector = Detector::builder(&monitor)
//!     .profile(Profile::load("crypto-mining")?)
//!     .drift(DriftConfig::default())
//!     .indicators(IndicatorConfig::default())
//!     .build();
//! detector.on_alarm(|event| eprintln!("{}: {} {}", event.behavior, event.state.as_str(), event.detail));
//! detector.start()?;
//! # Ok(())
//! # }
//! ```
//!
//! # Device-side metrics
//!
//! The monitor provides `avg_inference_time`, `p50_inference_time`, `p90_inference_time`,
//! `p99_inference_time`, `min_inference_time`, `max_inference_time`, `inference_count`,
//! `cpu_load_per_inference`, `gpu_load_per_inference`, `foreign_cpu_load` and
//! `foreign_gpu_load`. Behaviors on `aws:` network metrics (`aws:num-listening-tcp-ports`,
//! `aws:listening-tcp-ports`, `aws:destination-ip-addresses`, the byte and packet counters,
//! ...) are validated and evaluated only when a [`MetricSource`] added with
//! [`DetectorBuilder::metric_source`] provides them; until then they have no datapoints
//! and never alarm. On the fleet side, `inferwatch fleet --profile` derives them from each
//! received report (`defender::report_metrics`, with the `defender` feature).
//!
//! # Where alarms go
//!
//! `inferwatch run` registers callbacks that set the OpenTelemetry gauge
//! `inferwatch.alarm.active` (through `otel::AlarmStates`) and publish each event on the
//! thing's MQTT alarm topic (through `defender::Publisher::publish_alarm`), when OTLP export
//! and Device Defender reports are on.

mod alarm;
mod detector;
mod drift;
mod evaluator;
mod indicators;
mod metric;
mod profile;

pub use alarm::{AlarmEvent, AlarmKind, AlarmState};
pub use detector::{
    DEFAULT_DRIFT_PERIOD, DEFAULT_EVAL_PERIOD, DRIFT_BEHAVIOR, Detector, DetectorBuilder,
    MIN_DRIFT_INFERENCES,
};
pub use drift::{DriftChange, DriftConfig, DriftDetector, DriftState};
pub use evaluator::{
    BehaviorStatus, DEFAULT_INVALIDATE_AFTER, Evaluator, MIN_STATISTIC_DATAPOINTS,
};
pub use indicators::{
    CMDLINE_PATTERNS, Finding, IndicatorConfig, IndicatorScanner, MINER_NAMES, POOL_PORTS,
    ProcessStat, TcpConnection, parse_established, parse_process_stat,
};
pub use metric::{MetricSource, MetricValue};
pub use profile::{
    Behavior, CRYPTO_MINING_JSON, Cidr, Criteria, MAX_BEHAVIORS, MAX_DURATION_SECONDS, MetricKind,
    Operator, Problem, Profile, ProfileError, STATISTICS, Threshold, metric_kind,
};
