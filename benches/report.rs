//! Building one Device Defender report on this machine's `/proc`, for comparison with the
//! AWS Python agent that `benches/defender_agent.sh` times.
//!
//! - `collect`: what the reporter does per report: list the interface addresses, read
//!   `/proc/net/{tcp,tcp6,udp,udp6,dev}`, take a monitor snapshot and pick its custom
//!   metrics.
//! - `collect: …`: each of these three parts alone.
//! - `encode …`: one collected report as JSON with long keys, JSON with short keys and CBOR
//!   with short keys.
//! - `collect and encode JSON, long keys`: both, the counterpart of the agent's collect and
//!   encode.
//!
//! Run: `cargo bench --bench report -- --warm-up-time 1 --measurement-time 3`
//! (`--no-default-features --features defender` builds the same bench without tract). The
//! figures are in `benches/README.md`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use inferwatch::Monitor;
use inferwatch::defender::{
    Format, InterfaceMap, KeyStyle, NetStat, OPTIONAL_METRICS, Report, ReportOptions,
    custom_metrics,
};

/// Collects one report the way the reporting thread does.
fn collect(netstat: &mut NetStat, monitor: &Monitor, options: &ReportOptions) -> Report {
    let interfaces = InterfaceMap::from_system().expect("failed to list the network interfaces");
    let metrics = netstat.collect(&interfaces).expect("failed to read /proc/net");
    Report {
        report_id: 1_764_806_400_000,
        metrics,
        custom_metrics: custom_metrics(&monitor.snapshot(), options),
    }
}

fn report(c: &mut Criterion) {
    let monitor = Monitor::builder().build().expect("failed to start the monitor");
    for micros in (0..200).map(|i| 1_200 + i * 10) {
        monitor.recorder().record(Duration::from_micros(micros));
    }
    // Every optional metric, so that the report has all the custom metrics it can carry.
    let options = ReportOptions {
        extra_metrics: OPTIONAL_METRICS.iter().map(|name| name.to_string()).collect(),
        ..ReportOptions::default()
    };
    let mut netstat = NetStat::default();
    // The first read sets the traffic baseline. Later reads also carry `network_stats`.
    collect(&mut netstat, &monitor, &options);
    let sample = collect(&mut netstat, &monitor, &options);
    let encodings = [
        ("encode JSON, long keys", Format::Json, KeyStyle::Long),
        ("encode JSON, short keys", Format::Json, KeyStyle::Short),
        ("encode CBOR, short keys", Format::Cbor, KeyStyle::Short),
    ];
    for (name, format, style) in encodings {
        let bytes = sample.encode(format, style).expect("failed to encode").len();
        println!("report/{name}: {bytes} bytes");
    }

    let mut group = c.benchmark_group("report");
    group.throughput(Throughput::Elements(1));
    group.bench_function("collect", |b| {
        b.iter(|| collect(&mut netstat, black_box(&monitor), &options))
    });
    // The parts of `collect`.
    group.bench_function("collect: interface addresses", |b| b.iter(InterfaceMap::from_system));
    let interfaces = InterfaceMap::from_system().expect("failed to list the network interfaces");
    group.bench_function("collect: read /proc/net", |b| {
        b.iter(|| netstat.collect(black_box(&interfaces)).expect("failed to read /proc/net"))
    });
    group.bench_function("collect: snapshot and custom metrics", |b| {
        b.iter(|| custom_metrics(&black_box(&monitor).snapshot(), &options))
    });
    for (name, format, style) in encodings {
        group.bench_function(name, |b| {
            b.iter(|| black_box(&sample).encode(format, style).expect("failed to encode"))
        });
    }
    group.bench_function("collect and encode JSON, long keys", |b| {
        b.iter(|| {
            collect(&mut netstat, black_box(&monitor), &options)
                .encode(Format::Json, KeyStyle::Long)
                .expect("failed to encode")
        })
    });
    group.finish();
    monitor.shutdown();
}

criterion_group!(benches, report);
criterion_main!(benches);
