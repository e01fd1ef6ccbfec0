//! The instruments, and the callbacks that read the monitor at collection time.

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Histogram, Meter};

use super::AlarmStates;
use super::cumulative::{Cumulative, Growth};
use super::export::ExportCounters;
use crate::monitor::Monitor;
use crate::snapshot::Snapshot;

/// Bucket bounds of `inferwatch.inference.duration`, in seconds: 1-2.5-5 steps from
/// 0.1 ms to 10 s.
pub const DURATION_BOUNDS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// The state the first callback of a collection updates, and the snapshot it leaves for
/// the callbacks that follow it.
struct Collection {
    cumulative: Cumulative,
    reported_lost: u64,
    failed: u64,
    snapshot: Option<Snapshot>,
}

/// Registers every instrument on `meter`. The SDK keeps the callbacks for the meter
/// provider's lifetime and runs them in registration order at each collection.
pub(crate) fn register(
    meter: &Meter,
    monitor: &Monitor,
    alarms: &AlarmStates,
    counters: &Arc<ExportCounters>,
) {
    let histogram = meter
        .f64_histogram("inferwatch.inference.duration")
        .with_unit("s")
        .with_description("Wall time of each inference")
        .with_boundaries(DURATION_BOUNDS.to_vec())
        .build();
    let collection = Arc::new(Mutex::new(Collection {
        cumulative: Cumulative::new(monitor.recorder()),
        reported_lost: 0,
        failed: 0,
        snapshot: None,
    }));

    // Registered first, so it runs before the callbacks that read what it stores.
    let source = monitor.clone();
    let state = collection.clone();
    meter
        .u64_observable_counter("inferwatch.inference.failures")
        .with_unit("{inference}")
        .with_description("Inferences that returned an error, since start")
        .with_callback(move |observer| {
            let Ok(mut state) = state.lock() else { return };
            collect(&mut state, &source, &histogram);
            observer.observe(state.failed, &[]);
        })
        .build();

    register_window_gauges(meter, &collection);
    register_gpu_gauges(meter, monitor);

    let alarms = alarms.clone();
    meter
        .i64_observable_gauge("inferwatch.alarm.active")
        .with_unit("1")
        .with_description("1 while a detection behavior is in alarm, 0 otherwise")
        .with_callback(move |observer| {
            for (behavior, active) in alarms.get() {
                observer
                    .observe(i64::from(active), &[KeyValue::new("inferwatch.behavior", behavior)]);
            }
        })
        .build();

    let counters = counters.clone();
    meter
        .u64_observable_counter("inferwatch.otlp.exports")
        .with_unit("{export}")
        .with_description("OTLP export attempts by this process")
        .with_callback(move |observer| {
            let counts = counters.get();
            observer.observe(counts.exported, &[KeyValue::new("result", "success")]);
            observer.observe(counts.failed, &[KeyValue::new("result", "failure")]);
        })
        .build();
}

/// Reads the window once for this collection: folds the cumulative totals, feeds the
/// histogram what grew, and takes the snapshot the gauges report.
fn collect(state: &mut Collection, monitor: &Monitor, histogram: &Histogram<f64>) {
    let growth = state.cumulative.advance(monitor.recorder());
    feed(histogram, &growth);
    state.failed = growth.total.failed;
    let lost = state.cumulative.lost_slots();
    if lost > state.reported_lost {
        tracing::warn!(
            lost_slots = lost - state.reported_lost,
            "window slots expired before an export read them, so their inferences are \
             missing from inferwatch.inference.duration: use an export interval shorter \
             than the window"
        );
        state.reported_lost = lost;
    }
    state.snapshot = Some(Snapshot::from_stats(&monitor.stats(), SystemTime::now()));
}

/// Records each new inference at its bucket's midpoint, scaled so that the recorded values
/// add up to the exact growth of the duration sum.
fn feed(histogram: &Histogram<f64>, growth: &Growth) {
    let midpoint_sum: f64 = growth.buckets.iter().map(|(mid, count)| mid * *count as f64).sum();
    let scale = if midpoint_sum > 0.0 { growth.sum_nanos as f64 / midpoint_sum } else { 1.0 };
    // NOTE: a record caught between its bucket increment and its sum increment while the
    // window is read adds its count now and its duration to the next collection's scale.
    for &(mid, count) in &growth.buckets {
        let seconds = mid * scale / 1e9;
        for _ in 0..count {
            histogram.record(seconds, &[]);
        }
    }
}

type SnapshotField = fn(&Snapshot) -> Option<f64>;

fn register_window_gauges(meter: &Meter, collection: &Arc<Mutex<Collection>>) {
    let gauges: [(&'static str, &'static str, &'static str, SnapshotField); 8] = [
        ("inferwatch.avg_inference_time", "ms", "Mean inference time over the window", |s| {
            s.avg_inference_time
        }),
        ("inferwatch.p50_inference_time", "ms", "Median inference time over the window", |s| {
            s.p50_inference_time
        }),
        ("inferwatch.p90_inference_time", "ms", "90th percentile of inference time", |s| {
            s.p90_inference_time
        }),
        ("inferwatch.p99_inference_time", "ms", "99th percentile of inference time", |s| {
            s.p99_inference_time
        }),
        (
            "inferwatch.gpu_load_per_inference",
            "%",
            "Mean GPU utilization observed by the inferences",
            |s| s.gpu_load_per_inference,
        ),
        (
            "inferwatch.cpu_load_per_inference",
            "%",
            "Mean system CPU utilization observed by the inferences",
            |s| s.cpu_load_per_inference,
        ),
        ("inferwatch.foreign_gpu_load", "%", "GPU utilization of other processes", |s| {
            s.foreign_gpu_load
        }),
        ("inferwatch.foreign_cpu_load", "%", "CPU utilization of other processes", |s| {
            s.foreign_cpu_load
        }),
    ];
    for (name, unit, description, field) in gauges {
        let state = collection.clone();
        meter
            .f64_observable_gauge(name)
            .with_unit(unit)
            .with_description(description)
            .with_callback(move |observer| {
                let Ok(state) = state.lock() else { return };
                if let Some(value) = state.snapshot.as_ref().and_then(field) {
                    observer.observe(value, &[]);
                }
            })
            .build();
    }
}

#[cfg(feature = "nvml")]
fn register_gpu_gauges(meter: &Meter, monitor: &Monitor) {
    let source = monitor.clone();
    meter
        .f64_observable_gauge("hw.gpu.utilization")
        .with_unit("1")
        .with_description("GPU utilization of the latest NVML sample, from 0 to 1")
        .with_callback(move |observer| {
            for reading in source.gpu_readings() {
                if let Some(percent) = reading.utilization {
                    observer.observe(percent / 100.0, &[KeyValue::new("hw.id", reading.gpu.uuid)]);
                }
            }
        })
        .build();
    let source = monitor.clone();
    meter
        .u64_observable_gauge("inferwatch.gpu.foreign_memory")
        .with_unit("By")
        .with_description("GPU memory held by other processes' compute contexts")
        .with_callback(move |observer| {
            for reading in source.gpu_readings() {
                if let Some(bytes) = reading.foreign_memory_bytes {
                    observer.observe(bytes, &[KeyValue::new("hw.id", reading.gpu.uuid)]);
                }
            }
        })
        .build();
}

#[cfg(not(feature = "nvml"))]
fn register_gpu_gauges(_meter: &Meter, _monitor: &Monitor) {}
