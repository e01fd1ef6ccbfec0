//! The cost of `Recorder::record` with the OpenTelemetry exporter attached and with NVML
//! GPU timelines active, against plain recording. The exporter only reads the window on
//! its own thread, so the exporter cases should match plain recording. An active GPU
//! timeline adds the walk over the samples inside each span.
//!
//! Run: `cargo bench --no-default-features --features otel --bench record_export --
//! --warm-up-time 1 --measurement-time 4`.
//!
//! Results on 2026-12-04, 2-core x86_64 VM shared with other builds (load average 10 to 11
//! during the run, so differences under about 20 % are noise), rustc 1.95, bench profile:
//!
//! | case | time per record (95 % interval) |
//! |---|---|
//! | plain | 67.6 – 75.9 ns |
//! | OTLP exporter attached, 60 s interval | 62.4 – 67.2 ns |
//! | OTLP exporter attached, 50 ms interval | 89.5 – 108.2 ns |
//! | GPU timeline active | 64.8 – 69.4 ns |
//!
//! The exporter adds nothing to `record` itself. At a 50 ms interval and about 15 million
//! records per second, its reader thread feeds the SDK histogram one value per record and
//! takes CPU time from the benchmark thread on this 2-core machine.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use inferwatch::Monitor;
use inferwatch::otel::{OtelConfig, OtelExporter, Protocol};

fn monitor() -> Monitor {
    Monitor::builder().without_proc_cpu().build().expect("failed to start the monitor")
}

fn record(c: &mut Criterion) {
    let mut group = c.benchmark_group("record");
    group.throughput(Throughput::Elements(1));

    let plain = monitor();
    group.bench_function("plain", |b| {
        let recorder = plain.recorder();
        b.iter(|| recorder.record(black_box(Duration::from_micros(1_500))))
    });

    // Exports to a port where nothing listens. With the default 60 s interval no
    // collection runs during the measurement. With a 50 ms interval the reader thread
    // collects all the time, feeding the SDK histogram one value per record, and competes
    // with the benchmark for the cores.
    let dead_port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("failed to find a free port");
    for (name, interval) in [
        ("otlp exporter attached, 60 s interval", Duration::from_secs(60)),
        ("otlp exporter attached, 50 ms interval", Duration::from_millis(50)),
    ] {
        let exported = monitor();
        let config = OtelConfig {
            endpoint: Some(format!("http://127.0.0.1:{dead_port}")),
            protocol: Some(Protocol::HttpProtobuf),
            interval: Some(interval),
            ..OtelConfig::default()
        };
        let exporter =
            OtelExporter::start(&exported, &config).expect("failed to start the exporter");
        group.bench_function(name, |b| {
            let recorder = exported.recorder();
            b.iter(|| recorder.record(black_box(Duration::from_micros(1_500))))
        });
        drop(exporter);
    }

    // One GPU timeline with a sample every 200 ms: a 1.5 ms span finds the latest one.
    let timed = monitor();
    let cells = timed.recorder().loads().clone();
    let now_micros = timed.recorder().now_nanos() / 1_000;
    let timeline = cells.gpu_timelines().get(0).expect("timeline 0 exists");
    for step in (0..64u64).rev() {
        timeline.push(now_micros.saturating_sub(step * 200_000), 5_000);
    }
    cells.gpu_timelines().activate(1);
    group.bench_function("gpu timeline active", |b| {
        let recorder = timed.recorder();
        b.iter(|| recorder.record(black_box(Duration::from_micros(1_500))))
    });
    group.finish();
}

criterion_group!(benches, record);
criterion_main!(benches);
