//! Periodic reports built from a monitor's window and `/proc/net`.

use std::collections::BTreeMap;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::netstat::{InterfaceMap, NetStat};
use super::publisher::Publisher;
use super::report::CustomMetric;
use crate::{Monitor, Snapshot};

/// Custom metrics sent only when listed in [`ReportOptions::extra_metrics`];
/// `avg_inference_time` and `gpu_load_per_inference` are always sent when they have a value.
pub const OPTIONAL_METRICS: [&str; 7] = [
    "p50_inference_time",
    "p90_inference_time",
    "p99_inference_time",
    "inference_count",
    "cpu_load_per_inference",
    "foreign_gpu_load",
    "foreign_cpu_load",
];

/// The shortest report interval AWS IoT Device Defender accepts without throttling.
pub const AWS_MIN_INTERVAL: Duration = Duration::from_secs(300);

/// Settings of a [`Reporter`]: the metrics it sends and the interval.
#[derive(Clone, Debug, PartialEq)]
pub struct ReportOptions {
    /// Time between two reports (default 300 s).
    pub interval: Duration,
    /// Whether GPU metrics (`gpu_load_per_inference`, `foreign_gpu_load`) are sent.
    pub gpu_metrics: bool,
    /// Names from [`OPTIONAL_METRICS`] to send as well.
    pub extra_metrics: Vec<String>,
}

impl Default for ReportOptions {
    fn default() -> Self {
        ReportOptions { interval: AWS_MIN_INTERVAL, gpu_metrics: true, extra_metrics: Vec::new() }
    }
}

/// Returns the custom metrics of a snapshot. A metric without a value (no inference in the
/// window, no GPU source) is left out, never sent as 0.
pub fn custom_metrics(
    snapshot: &Snapshot,
    options: &ReportOptions,
) -> BTreeMap<String, CustomMetric> {
    let mut metrics = BTreeMap::new();
    let mut put = |name: &str, value: Option<f64>| {
        if let Some(value) = value.filter(|v| v.is_finite()) {
            metrics.insert(name.to_owned(), CustomMetric::Number(value));
        }
    };
    put("avg_inference_time", snapshot.avg_inference_time);
    if options.gpu_metrics {
        put("gpu_load_per_inference", snapshot.gpu_load_per_inference);
    }
    for name in &options.extra_metrics {
        let value = match name.as_str() {
            "p50_inference_time" => snapshot.p50_inference_time,
            "p90_inference_time" => snapshot.p90_inference_time,
            "p99_inference_time" => snapshot.p99_inference_time,
            "inference_count" => Some(snapshot.inference_count as f64),
            "cpu_load_per_inference" => snapshot.cpu_load_per_inference,
            "foreign_gpu_load" if options.gpu_metrics => snapshot.foreign_gpu_load,
            "foreign_cpu_load" => snapshot.foreign_cpu_load,
            _ => None,
        };
        put(name, value);
    }
    metrics
}

type StopFlag = Arc<(Mutex<bool>, Condvar)>;

/// Submits a report every interval on a thread named `inferwatch-defender-reports`.
///
/// The first report goes out one interval after the start, so that the window and the
/// network counters have data. Stopping wakes the thread at once; it submits no last report.
#[derive(Debug)]
pub struct Reporter {
    stop: StopFlag,
    thread: Option<JoinHandle<()>>,
}

impl Reporter {
    /// Starts the reporting thread.
    pub fn start(
        monitor: Monitor,
        publisher: Publisher,
        options: ReportOptions,
    ) -> std::io::Result<Reporter> {
        if options.interval < AWS_MIN_INTERVAL && publisher.config().is_aws_endpoint() {
            tracing::warn!(
                interval_seconds = options.interval.as_secs_f64(),
                host = %publisher.config().host,
                "reports more often than every 300 s may be throttled by AWS IoT Device Defender"
            );
        }
        let stop: StopFlag = Arc::new((Mutex::new(false), Condvar::new()));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("inferwatch-defender-reports".into())
            .spawn(move || report_loop(&monitor, &publisher, &options, &flag))?;
        Ok(Reporter { stop, thread: Some(thread) })
    }

    /// Stops the thread and waits for it.
    pub fn stop(mut self) {
        self.stop_thread();
    }

    fn stop_thread(&mut self) {
        let (stopped, wake) = &*self.stop;
        *stopped.lock().unwrap_or_else(PoisonError::into_inner) = true;
        wake.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Reporter {
    fn drop(&mut self) {
        self.stop_thread();
    }
}

fn report_loop(monitor: &Monitor, publisher: &Publisher, options: &ReportOptions, stop: &StopFlag) {
    let mut netstat = NetStat::default();
    let interfaces = || {
        InterfaceMap::from_system().unwrap_or_else(|error| {
            tracing::warn!(%error, "failed to list the network interfaces; reporting ports without them");
            InterfaceMap::default()
        })
    };
    // The first read sets the traffic counters' baseline.
    if let Err(error) = netstat.collect(&interfaces()) {
        tracing::warn!(%error, "failed to read the network metrics");
    }
    let mut next = Instant::now() + options.interval;
    loop {
        let (stopped, wake) = &**stop;
        let mut guard = stopped.lock().unwrap_or_else(PoisonError::into_inner);
        while !*guard {
            let now = Instant::now();
            if now >= next {
                break;
            }
            guard = wake.wait_timeout(guard, next - now).unwrap_or_else(PoisonError::into_inner).0;
        }
        if *guard {
            return;
        }
        drop(guard);
        // Missed intervals are skipped rather than sent in a burst.
        next = (next + options.interval).max(Instant::now());

        let metrics = match netstat.collect(&interfaces()) {
            Ok(metrics) => metrics,
            Err(error) => {
                tracing::warn!(%error, "failed to read the network metrics; sending custom metrics only");
                Default::default()
            }
        };
        let custom = custom_metrics(&monitor.snapshot(), options);
        if let Err(error) = publisher.submit(metrics, custom) {
            tracing::error!(thing = %publisher.config().thing, %error, "failed to submit a report");
        }
    }
}
