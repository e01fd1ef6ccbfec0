//! The cost of recording one latency: inferwatch's rolling window against the OpenTelemetry
//! SDK histogram, `metrics-util`'s bucket and summary, and `hdrhistogram`, on one thread and
//! on two threads recording at once. Results and the machine are in `benches/README.md`.
//!
//! Every competitor records the same 16 latencies (1.2–3.1 ms) in turn. In the two-thread
//! groups, both threads make N records at the same time. The reported time is the wall time
//! of the slower thread divided by N: the cost of one record to a thread while the other
//! thread also records. The throughput counts the records of both threads.

use std::hint::black_box;
use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hdrhistogram::Histogram;
use inferwatch::{LoadCells, LoadKind, LoadSample, Recorder, RollingWindow, WindowConfig};
use metrics_util::storage::{AtomicBucket, Summary};
use opentelemetry::KeyValue;
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider, Temporality};

/// Latencies in nanoseconds, spread over several histogram buckets of every competitor.
const LATENCIES_NS: [u64; 16] = [
    1_200_000, 2_250_000, 1_800_000, 3_100_000, 2_000_000, 1_950_000, 2_400_000, 1_300_000,
    2_700_000, 2_050_000, 1_500_000, 2_900_000, 2_100_000, 1_700_000, 2_600_000, 2_200_000,
];

fn latency_ns(index: u64) -> u64 {
    LATENCIES_NS[(index & 15) as usize]
}

fn latency_s(index: u64) -> f64 {
    latency_ns(index) as f64 / 1e9
}

/// Upper bound of the hdrhistogram ranges: one hour in nanoseconds.
const HOUR_NS: u64 = 3_600_000_000_000;

/// An exporter that drops what it is given. Its reader exports once an hour, so during a
/// bench the SDK only aggregates.
struct DiscardExporter;

impl PushMetricExporter for DiscardExporter {
    async fn export(&self, _metrics: &ResourceMetrics) -> OTelSdkResult {
        Ok(())
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }

    fn temporality(&self) -> Temporality {
        Temporality::Cumulative
    }
}

/// Creates a histogram of seconds on an SDK meter provider with a periodic reader and the
/// default bucket boundaries, as an application would set it up.
fn otel_histogram() -> (SdkMeterProvider, opentelemetry::metrics::Histogram<f64>) {
    let reader =
        PeriodicReader::builder(DiscardExporter).with_interval(Duration::from_secs(3600)).build();
    let provider = SdkMeterProvider::builder().with_reader(reader).build();
    let histogram = provider
        .meter("inferwatch-bench")
        .f64_histogram("inferwatch.inference.duration")
        .with_unit("s")
        .build();
    (provider, histogram)
}

fn hdr() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HOUR_NS, 2).expect("valid hdrhistogram bounds")
}

/// Runs `record` `iters` times in chunks and calls `reset` between chunks, outside the timed
/// part, so that stores which keep every value stay small.
fn chunked(iters: u64, mut record: impl FnMut(u64), mut reset: impl FnMut()) -> Duration {
    const CHUNK: u64 = 1 << 20;
    let mut total = Duration::ZERO;
    let mut done = 0;
    while done < iters {
        let count = CHUNK.min(iters - done);
        let start = Instant::now();
        for i in done..done + count {
            record(i);
        }
        total += start.elapsed();
        reset();
        done += count;
    }
    total
}

fn one_thread(c: &mut Criterion) {
    let mut group = c.benchmark_group("record/1 thread");
    group.throughput(Throughput::Elements(1));

    let window = RollingWindow::new(WindowConfig::default());
    let mut i = 0u64;
    group.bench_function("inferwatch RollingWindow::record", |b| {
        b.iter(|| {
            i += 1;
            window.record(black_box(1_000), black_box(latency_ns(i)), &LoadSample::EMPTY);
        })
    });

    let recorder = Recorder::new(WindowConfig::default());
    let end = recorder.now_nanos();
    group.bench_function("inferwatch Recorder::record_at", |b| {
        b.iter(|| {
            i += 1;
            recorder.record_at(black_box(end), black_box(latency_ns(i)));
        })
    });

    let loads = std::sync::Arc::new(LoadCells::default());
    loads.set(LoadKind::Cpu, Some(35.0));
    loads.set(LoadKind::ForeignCpu, Some(4.5));
    let loaded = Recorder::with_parts(WindowConfig::default(), inferwatch::Clock::new(), loads);
    let loaded_end = loaded.now_nanos();
    group.bench_function("inferwatch Recorder::record_at, 2 load metrics", |b| {
        b.iter(|| {
            i += 1;
            loaded.record_at(black_box(loaded_end), black_box(latency_ns(i)));
        })
    });

    group.bench_function("inferwatch Recorder::record (reads the clock)", |b| {
        b.iter(|| {
            i += 1;
            recorder.record(Duration::from_nanos(black_box(latency_ns(i))));
        })
    });

    let (_provider, histogram) = otel_histogram();
    group.bench_function("opentelemetry_sdk Histogram::record", |b| {
        b.iter(|| {
            i += 1;
            histogram.record(black_box(latency_s(i)), &[]);
        })
    });
    let attributes = [KeyValue::new("model", "ppocr-cls")];
    group.bench_function("opentelemetry_sdk Histogram::record, 1 attribute", |b| {
        b.iter(|| {
            i += 1;
            histogram.record(black_box(latency_s(i)), &attributes);
        })
    });

    let bucket = AtomicBucket::<f64>::new();
    group.bench_function("metrics-util AtomicBucket::push", |b| {
        b.iter_custom(|iters| {
            chunked(iters, |i| bucket.push(black_box(latency_s(i))), || bucket.clear())
        })
    });

    let mut summary = Summary::with_defaults();
    group.bench_function("metrics-util Summary::add", |b| {
        b.iter(|| {
            i += 1;
            summary.add(black_box(latency_s(i)));
        })
    });

    let mut plain = hdr();
    group.bench_function("hdrhistogram record", |b| {
        b.iter(|| {
            i += 1;
            plain.saturating_record(black_box(latency_ns(i)));
        })
    });
    group.finish();
}

/// Runs two threads that each build a recorder with `make` and call it `iters` times. Both
/// start at once, and the wall time of the slower one is returned.
fn two_threads<M, F>(iters: u64, make: M) -> Duration
where
    M: Fn() -> F + Sync,
    F: FnMut(u64),
{
    let barrier = Barrier::new(2);
    std::thread::scope(|scope| {
        let threads: Vec<_> = (0..2)
            .map(|_| {
                scope.spawn(|| {
                    let mut record = make();
                    barrier.wait();
                    let start = Instant::now();
                    for i in 0..iters {
                        record(i);
                    }
                    start.elapsed()
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().expect("bench thread panicked")).max().unwrap()
    })
}

fn two_threads_group(c: &mut Criterion) {
    let mut group = c.benchmark_group("record/2 threads");
    group.throughput(Throughput::Elements(2));

    let window = RollingWindow::new(WindowConfig::default());
    group.bench_function("inferwatch RollingWindow::record", |b| {
        b.iter_custom(|iters| {
            two_threads(iters, || {
                |i| window.record(black_box(1_000), black_box(latency_ns(i)), &LoadSample::EMPTY)
            })
        })
    });

    let recorder = Recorder::new(WindowConfig::default());
    let end = recorder.now_nanos();
    group.bench_function("inferwatch Recorder::record_at", |b| {
        b.iter_custom(|iters| {
            two_threads(iters, || |i| recorder.record_at(black_box(end), black_box(latency_ns(i))))
        })
    });
    group.bench_function("inferwatch Recorder::record (reads the clock)", |b| {
        b.iter_custom(|iters| {
            two_threads(iters, || {
                |i| recorder.record(Duration::from_nanos(black_box(latency_ns(i))))
            })
        })
    });

    let (_provider, histogram) = otel_histogram();
    group.bench_function("opentelemetry_sdk Histogram::record", |b| {
        b.iter_custom(|iters| {
            two_threads(iters, || |i| histogram.record(black_box(latency_s(i)), &[]))
        })
    });
    let attributes = [KeyValue::new("model", "ppocr-cls")];
    group.bench_function("opentelemetry_sdk Histogram::record, 1 attribute", |b| {
        b.iter_custom(|iters| {
            two_threads(iters, || |i| histogram.record(black_box(latency_s(i)), &attributes))
        })
    });

    let bucket = AtomicBucket::<f64>::new();
    group.bench_function("metrics-util AtomicBucket::push", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut done = 0;
            // Chunks keep the bucket, which stores every value, from growing without bound.
            while done < iters {
                let count = (iters - done).min(1 << 20);
                total += two_threads(count, || |i| bucket.push(black_box(latency_s(i))));
                bucket.clear();
                done += count;
            }
            total
        })
    });

    let summary = Mutex::new(Summary::with_defaults());
    group.bench_function("metrics-util Summary::add behind a Mutex", |b| {
        b.iter_custom(|iters| {
            two_threads(iters, || {
                |i| summary.lock().expect("unpoisoned").add(black_box(latency_s(i)))
            })
        })
    });

    group.bench_function("hdrhistogram record, one per thread", |b| {
        b.iter_custom(|iters| {
            two_threads(iters, || {
                let mut own = hdr();
                move |i| own.saturating_record(black_box(latency_ns(i)))
            })
        })
    });
    let shared = Mutex::new(hdr());
    group.bench_function("hdrhistogram record behind a Mutex", |b| {
        b.iter_custom(|iters| {
            two_threads(iters, || {
                |i| shared.lock().expect("unpoisoned").saturating_record(black_box(latency_ns(i)))
            })
        })
    });
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50)
}

criterion_group! { name = benches; config = config(); targets = one_thread, two_threads_group }
criterion_main!(benches);
