//! Detection options that `inferwatch run` and `inferwatch bench` share: a security profile,
//! the latency drift detector and the mining indicators.

use std::time::Duration;

use clap::Args;
use inferwatch::Monitor;
use inferwatch::detect::{
    DEFAULT_DRIFT_PERIOD, DetectorBuilder, DriftConfig, IndicatorConfig, Profile, ProfileError,
};

use super::Failure;
use super::run::parse_seconds;

/// Options that turn detection on and tune it. The indicator options require `--profile` or
/// `--drift` (the `detection` group), since without them nothing scans /proc.
#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("detection").multiple(true))]
pub(crate) struct DetectionArgs {
    /// Evaluate a security profile: the name of a shipped one (crypto-mining) or a
    /// behaviors JSON file. Also scans /proc for mining indicators unless --no-indicators.
    #[arg(long, value_name = "NAME|FILE", group = "detection")]
    pub(crate) profile: Option<String>,

    /// Watch p90 latency for a sustained rise over a baseline learned during a warm-up, which
    /// then follows slow changes (--drift-baseline). Also scans /proc for mining indicators
    /// unless --no-indicators.
    #[arg(long, group = "detection")]
    pub(crate) drift: bool,

    /// Seconds of latency that form the first drift baseline, at most 86400.
    #[arg(long, value_name = "SECS", default_value = "30", value_parser = parse_warmup,
          requires = "drift", allow_negative_numbers = true)]
    pub(crate) drift_warmup: Duration,

    /// Seconds of recent calm latency whose median is the drift baseline after warm-up, so
    /// that it follows slow changes of the device. At most 86400. A span shorter than
    /// --drift-warmup counts as --drift-warmup, and 0 keeps the warm-up baseline.
    #[arg(long, value_name = "SECS", default_value = "300", value_parser = parse_baseline_span,
          requires = "drift", allow_negative_numbers = true)]
    pub(crate) drift_baseline: Duration,

    /// CUSUM sum, in robust standard deviations of log latency, that raises the drift
    /// alarm. Higher values alarm later and less often.
    #[arg(long, value_name = "SUM", default_value_t = DriftConfig::default().threshold,
          value_parser = parse_positive, requires = "drift", allow_negative_numbers = true)]
    pub(crate) drift_threshold: f64,

    /// Seconds between two datapoints of the profile and two scans for indicators, at most
    /// 3600.
    #[arg(long, value_name = "SECS", default_value = "5", value_parser = parse_eval_period)]
    pub(crate) eval_period: Duration,

    /// CPU use, in percent of one core, at or above which another process counts as busy. A
    /// multi-threaded process can exceed 100, up to 100 × the online cores [default: 80].
    #[arg(long, value_name = "PCT", value_parser = parse_busy_cpu, requires = "detection",
          allow_negative_numbers = true)]
    pub(crate) busy_cpu: Option<f64>,

    /// Seconds a process must stay above --busy-cpu to be reported as busy [default: 20].
    #[arg(long, value_name = "SECS", value_parser = parse_seconds, requires = "detection")]
    pub(crate) busy_secs: Option<Duration>,

    /// Never report a process with this name (comm, or the file name of argv[0]) as busy,
    /// such as cc1plus or rustc. Repeat for more names. Its pool connections, miner name
    /// and miner command line (stratum+tcp://, --donate-level) are still reported, because
    /// a miner can take any name.
    #[arg(long, value_name = "NAME", value_parser = parse_process_name, requires = "detection")]
    pub(crate) ignore_process: Vec<String>,

    /// Do not scan /proc for mining indicators. The profile and drift detector still run.
    #[arg(long, conflicts_with_all = ["busy_cpu", "busy_secs", "ignore_process"],
          requires = "detection")]
    pub(crate) no_indicators: bool,
}

/// Longest `--drift-warmup` and `--drift-baseline`: one day of datapoints takes 1.3 MiB
/// (history and sort space).
const MAX_BASELINE_SPAN: Duration = Duration::from_secs(86_400);

fn parse_warmup(text: &str) -> Result<Duration, String> {
    parse_span(text, false)
}

fn parse_baseline_span(text: &str) -> Result<Duration, String> {
    parse_span(text, true)
}

/// Parses a number of seconds up to [`MAX_BASELINE_SPAN`], positive unless `zero_allowed`.
fn parse_span(text: &str, zero_allowed: bool) -> Result<Duration, String> {
    let max = MAX_BASELINE_SPAN.as_secs_f64();
    match text.parse::<f64>() {
        Ok(secs)
            if secs.is_finite() && secs <= max && (secs > 0.0 || zero_allowed && secs >= 0.0) =>
        {
            Ok(Duration::from_secs_f64(secs))
        }
        _ if zero_allowed => Err(format!("{text:?} is not a number of seconds from 0 to {max}")),
        _ => Err(format!("{text:?} is not a positive number of seconds up to {max}")),
    }
}

fn parse_busy_cpu(text: &str) -> Result<f64, String> {
    let percent = parse_positive(text)?;
    let limit = IndicatorConfig::max_cpu_percent();
    if percent > limit {
        return Err(format!(
            "{text:?} is above {limit}, the CPU use of all {} online cores, so no process could \
             reach it: give {limit} or less",
            limit / 100.0
        ));
    }
    Ok(percent)
}

fn parse_positive(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(value) if value.is_finite() && value > 0.0 => Ok(value),
        _ => Err(format!("{text:?} is not a positive number")),
    }
}

/// Maximum `--eval-period`. `bench` sizes its window to span one period in slots of at most
/// one second, about 10 KiB per second, so a longer period would take gigabytes.
const MAX_EVAL_PERIOD: Duration = Duration::from_secs(3600);

fn parse_eval_period(text: &str) -> Result<Duration, String> {
    let period = parse_seconds(text)?;
    if period > MAX_EVAL_PERIOD {
        return Err(format!(
            "{text:?} is too long: the evaluation period is at most {} s",
            MAX_EVAL_PERIOD.as_secs()
        ));
    }
    Ok(period)
}

fn parse_process_name(text: &str) -> Result<String, String> {
    if text.is_empty() {
        Err("the process name is empty".to_owned())
    } else if text.contains('/') {
        Err(format!("{text:?} contains '/': give the program's file name, not its path"))
    } else {
        Ok(text.to_owned())
    }
}

impl DetectionArgs {
    /// Returns whether `--profile` or `--drift` turns detection on.
    pub(crate) fn enabled(&self) -> bool {
        self.profile.is_some() || self.drift
    }

    /// Loads the profile that `--profile` names, a shipped one or a file.
    pub(crate) fn load_profile(&self) -> Result<Option<Profile>, Failure> {
        let Some(name) = self.profile.as_deref() else { return Ok(None) };
        match Profile::load(name) {
            Ok(profile) => Ok(Some(profile)),
            Err(error @ ProfileError::Read { .. }) => Err(Failure::input(format!(
                "--profile: {error}: give a shipped profile ({}) or the path of a behaviors \
                 JSON file",
                Profile::builtin_names().join(", ")
            ))),
            Err(error) => Err(Failure::input(format!("--profile: {error}"))),
        }
    }

    /// Returns the indicator settings with the --busy-* and --ignore-process overrides, or
    /// `None` with --no-indicators.
    pub(crate) fn indicator_config(&self) -> Option<IndicatorConfig> {
        if self.no_indicators {
            return None;
        }
        let mut config = IndicatorConfig::default();
        if let Some(percent) = self.busy_cpu {
            config.cpu_percent = percent;
        }
        if let Some(sustained) = self.busy_secs {
            config.sustained = sustained;
        }
        config.ignore_busy_names = self.ignore_process.clone();
        Some(config)
    }

    /// Configures a detector on `monitor` with `profile`, the drift detector when `--drift`
    /// is given, and the mining indicators, which run whenever detection is on unless
    /// --no-indicators turns them off.
    pub(crate) fn detector_builder(
        &self,
        monitor: &Monitor,
        profile: Option<Profile>,
    ) -> DetectorBuilder {
        let mut builder =
            inferwatch::detect::Detector::builder(monitor).eval_period(self.eval_period);
        if let Some(config) = self.indicator_config() {
            builder = builder.indicators(config);
        }
        if let Some(profile) = profile {
            builder = builder.profile(profile);
        }
        if self.drift {
            let datapoints = |span: Duration| {
                (span.as_secs_f64() / DEFAULT_DRIFT_PERIOD.as_secs_f64()).ceil() as usize
            };
            builder = builder.drift(DriftConfig {
                warmup_datapoints: datapoints(self.drift_warmup).max(1),
                baseline_datapoints: datapoints(self.drift_baseline),
                threshold: self.drift_threshold,
                ..DriftConfig::default()
            });
        }
        builder
    }
}
