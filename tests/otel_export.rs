//! OpenTelemetry export to OTLP receivers on 127.0.0.1, over gRPC and HTTP/protobuf.
#![cfg(feature = "otel")]

mod otlp_receiver;
#[cfg(feature = "nvml")]
mod standin_nvml;

use std::process::Command;
use std::time::Duration;

use inferwatch::otel::{DURATION_BOUNDS, OtelConfig, OtelExporter, Protocol};
use inferwatch::{LoadKind, Monitor};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::metrics::v1::AggregationTemporality;
use otlp_receiver::*;

/// The durations recorded by the in-process tests: 10 × 0.7 ms, 5 × 20 ms and 1 × 2 s, none
/// within 1 % of a bucket bound.
const DURATIONS: [(Duration, u64); 3] =
    [(Duration::from_micros(700), 10), (Duration::from_millis(20), 5), (Duration::from_secs(2), 1)];
const COUNT: u64 = 16;
/// 10 × 0.0007 + 5 × 0.02 + 2, in seconds.
const SUM_SECONDS: f64 = 2.107;

fn monitor() -> Monitor {
    Monitor::builder().without_proc_cpu().without_nvml().build().unwrap()
}

fn record_durations(monitor: &Monitor) {
    for (duration, times) in DURATIONS {
        for _ in 0..times {
            monitor.recorder().record(duration);
        }
    }
}

fn config(endpoint: String, protocol: Protocol) -> OtelConfig {
    OtelConfig {
        endpoint: Some(endpoint),
        protocol: Some(protocol),
        // Exports happen only when a test flushes, apart from the one at shutdown.
        interval: Some(Duration::from_secs(3600)),
        service_name: Some("ocr-edge".into()),
        model_name: Some("ppocr-cls".into()),
        thing_name: Some("camera-7".into()),
    }
}

/// Checks the names, units, attributes and values that every export of `DURATIONS` has.
fn assert_recorded_durations(request: &ExportMetricsServiceRequest) {
    assert_eq!(resource_attribute(request, "service.name").as_deref(), Some("ocr-edge"));
    assert_eq!(resource_attribute(request, "inferwatch.model.name").as_deref(), Some("ppocr-cls"));
    assert_eq!(resource_attribute(request, "inferwatch.thing.name").as_deref(), Some("camera-7"));
    let host = resource_attribute(request, "host.name").expect("host.name is set");
    assert!(!host.is_empty());

    let duration = metric(request, "inferwatch.inference.duration").expect("duration histogram");
    assert_eq!(duration.unit, "s");
    let point = histogram_point(duration);
    assert_eq!(point.count, COUNT);
    let sum = point.sum.expect("histogram sum");
    assert!((sum - SUM_SECONDS).abs() < 1e-9, "histogram sum {sum} s, expected {SUM_SECONDS} s");
    assert_eq!(point.explicit_bounds, DURATION_BOUNDS);
    let mut expected_buckets = vec![0u64; DURATION_BOUNDS.len() + 1];
    expected_buckets[3] = 10; // (0.5 ms, 1 ms]
    expected_buckets[7] = 5; // (10 ms, 25 ms]
    expected_buckets[13] = 1; // (1 s, 2.5 s]
    assert_eq!(point.bucket_counts, expected_buckets);
    let Some(opentelemetry_proto::tonic::metrics::v1::metric::Data::Histogram(histogram)) =
        &duration.data
    else {
        unreachable!()
    };
    assert_eq!(histogram.aggregation_temporality, AggregationTemporality::Cumulative as i32);

    let average = metric(request, "inferwatch.avg_inference_time").expect("average gauge");
    assert_eq!(average.unit, "ms");
    let points = number_points(average);
    assert_eq!(points.len(), 1);
    assert!((number_value(&points[0]) - 131.6875).abs() < 1e-9, "{:?}", points[0]);
    let p99 = metric(request, "inferwatch.p99_inference_time").expect("p99 gauge");
    let p99_ms = number_value(&number_points(p99)[0]);
    assert!((p99_ms - 2000.0).abs() / 2000.0 < 0.01, "p99 {p99_ms} ms");

    let gpu = metric(request, "inferwatch.gpu_load_per_inference").expect("GPU load gauge");
    assert_eq!(gpu.unit, "%");
    assert_eq!(number_value(&number_points(gpu)[0]), 37.5);
    assert!(
        metric(request, "inferwatch.foreign_gpu_load").is_none(),
        "an absent load has no data point"
    );
    assert!(metric(request, "hw.gpu.utilization").is_none(), "no NVML on this machine");

    let failures = metric(request, "inferwatch.inference.failures").expect("failure counter");
    assert_eq!(number_value(&number_points(failures)[0]), 1.0);
}

#[test]
fn http_export_carries_window_metrics() {
    let receiver = HttpReceiver::start();
    let monitor = monitor();
    monitor.recorder().loads().set(LoadKind::Gpu, Some(37.5));
    let endpoint = format!("http://{}", receiver.addr);
    let exporter =
        OtelExporter::start(&monitor, &config(endpoint, Protocol::HttpProtobuf)).unwrap();
    exporter.alarms().set("gpu_load_per_inference", true);
    exporter.alarms().set("avg_inference_time", false);
    record_durations(&monitor);
    monitor.recorder().record_failure();

    exporter.force_flush().unwrap();
    let received = wait_for(&receiver.inbox, Duration::from_secs(10), |r| duration_count(r) > 0)
        .expect("no export with the duration histogram reached the HTTP receiver");
    assert_recorded_durations(&received.request);
    let alarm = metric(&received.request, "inferwatch.alarm.active").expect("alarm gauge");
    let mut alarms: Vec<(String, f64)> = number_points(alarm)
        .iter()
        .map(|p| (string_attribute(&p.attributes, "inferwatch.behavior").unwrap(), number_value(p)))
        .collect();
    alarms.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        alarms,
        [("avg_inference_time".to_owned(), 0.0), ("gpu_load_per_inference".to_owned(), 1.0)]
    );
    assert_eq!(exporter.counts().exported, 1);
    assert_eq!(exporter.counts().failed, 0);

    // The histogram is cumulative: a second export counts everything again, plus more.
    monitor.recorder().record(Duration::from_millis(20));
    exporter.force_flush().unwrap();
    let received =
        wait_for(&receiver.inbox, Duration::from_secs(10), |r| duration_count(r) == COUNT + 1)
            .expect("the second export did not count 17 inferences");
    let point =
        histogram_point(metric(&received.request, "inferwatch.inference.duration").unwrap());
    assert!((point.sum.unwrap() - (SUM_SECONDS + 0.02)).abs() < 1e-9);
    exporter.shutdown().unwrap();
}

#[test]
fn grpc_export_carries_window_metrics() {
    let receiver = GrpcReceiver::start(0);
    let monitor = monitor();
    monitor.recorder().loads().set(LoadKind::Gpu, Some(37.5));
    let endpoint = format!("http://{}", receiver.addr);
    let exporter = OtelExporter::start(&monitor, &config(endpoint, Protocol::Grpc)).unwrap();
    record_durations(&monitor);
    monitor.recorder().record_failure();

    exporter.force_flush().unwrap();
    let received = wait_for(&receiver.inbox, Duration::from_secs(10), |r| duration_count(r) > 0)
        .expect("no export with the duration histogram reached the gRPC receiver");
    assert_recorded_durations(&received.request);
    assert_eq!(exporter.counts().exported, 1);
    exporter.shutdown().unwrap();
}

#[test]
fn collector_down_at_start_gets_metrics_later() {
    let port = free_port();
    let monitor = monitor();
    let mut settings = config(format!("http://127.0.0.1:{port}"), Protocol::Grpc);
    settings.interval = Some(Duration::from_millis(200));
    let exporter = OtelExporter::start(&monitor, &settings).unwrap();
    record_durations(&monitor);

    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while exporter.counts().failed == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "no export failed while the collector was down"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(exporter.counts().exported, 0);

    let receiver = GrpcReceiver::start(port);
    let received =
        wait_for(&receiver.inbox, Duration::from_secs(30), |r| duration_count(r) == COUNT)
            .expect("the collector that came up received no histogram of 16 inferences");
    let point =
        histogram_point(metric(&received.request, "inferwatch.inference.duration").unwrap());
    assert!((point.sum.unwrap() - SUM_SECONDS).abs() < 1e-9);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while exporter.counts().exported == 0 {
        assert!(std::time::Instant::now() < deadline, "the successful export was not counted");
        std::thread::sleep(Duration::from_millis(20));
    }
    exporter.shutdown().unwrap();
}

const MODEL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/models/ppocr-cls/model.onnx");

#[cfg(feature = "cli")]
#[test]
fn cli_honours_otel_environment() {
    let receiver = HttpReceiver::start();
    let output = Command::new(env!("CARGO_BIN_EXE_inferwatch"))
        .args(["run", MODEL, "--duration", "2", "--rate", "50", "--json", "--gpu", "off"])
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{}", receiver.addr))
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
        .env("OTEL_EXPORTER_OTLP_HEADERS", "x-api-key=key-123")
        .env("OTEL_SERVICE_NAME", "edge-ocr")
        .env("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=test,site=lab-2")
        .env("OTEL_METRIC_EXPORT_INTERVAL", "300")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "inferwatch run failed: {stderr}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let last: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    let inferences = last["inference_count"].as_u64().unwrap();
    assert!(inferences > 10, "{last}");

    let inbox = receiver.inbox.lock().unwrap().clone();
    // 2 s at a 300 ms interval, plus the export at shutdown.
    assert!(
        inbox.len() >= 4,
        "{} exports in 2 s with OTEL_METRIC_EXPORT_INTERVAL=300",
        inbox.len()
    );
    let final_export = inbox.last().unwrap();
    let request = &final_export.request;
    assert!(final_export.headers.contains(&("x-api-key".into(), "key-123".into())));
    assert_eq!(resource_attribute(request, "service.name").as_deref(), Some("edge-ocr"));
    assert_eq!(resource_attribute(request, "deployment.environment").as_deref(), Some("test"));
    assert_eq!(resource_attribute(request, "site").as_deref(), Some("lab-2"));
    assert_eq!(resource_attribute(request, "inferwatch.model.name").as_deref(), Some(MODEL));
    assert_eq!(duration_count(final_export), inferences, "the final export counts every inference");
}

#[cfg(feature = "cli")]
#[test]
fn cli_exports_over_grpc_flags() {
    let receiver = GrpcReceiver::start(0);
    let output = Command::new(env!("CARGO_BIN_EXE_inferwatch"))
        .args(["run", MODEL, "--duration", "1", "--rate", "50", "--json", "--gpu", "off"])
        .args(["--otlp-endpoint", &format!("http://{}", receiver.addr), "--otlp-protocol", "grpc"])
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_PROTOCOL")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "inferwatch run failed: {stderr}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let last: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    let inferences = last["inference_count"].as_u64().unwrap();
    let received = wait_for(&receiver.inbox, Duration::from_secs(5), |r| duration_count(r) > 0)
        .expect("the export at shutdown did not reach the gRPC receiver");
    assert_eq!(duration_count(&received), inferences);
    assert_eq!(
        resource_attribute(&received.request, "service.name").as_deref(),
        Some("inferwatch")
    );
}

#[cfg(feature = "nvml")]
#[test]
fn nvml_readings_export_as_hw_gpu_utilization() {
    use inferwatch::load::nvml::{NvmlGpus, NvmlOptions};

    // The stand-in driver library reports GPU 1 at 80 % (latest sample), another process
    // at 45 % with 300 MiB; see tests/standin_nvml.
    let dir = tempfile::tempdir().unwrap();
    let library = standin_nvml::build_standin(dir.path());
    let options = NvmlOptions {
        library: Some(library),
        gpus: vec![],
        period: Some(Duration::from_millis(20)),
    };
    let gpus = NvmlGpus::open(&options).unwrap();
    let monitor = Monitor::builder().without_proc_cpu().nvml(gpus).build().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while monitor.recorder().loads().get(LoadKind::ForeignGpu).is_none() {
        assert!(std::time::Instant::now() < deadline, "the NVML sampler took no sample");
        std::thread::sleep(Duration::from_millis(10));
    }
    // The inference starts after the first poll pushed its samples, so the newest one (80 %)
    // is the load in effect during it.
    let start = monitor.recorder().now_nanos();
    let receiver = HttpReceiver::start();
    let endpoint = format!("http://{}", receiver.addr);
    let exporter =
        OtelExporter::start(&monitor, &config(endpoint, Protocol::HttpProtobuf)).unwrap();
    monitor.recorder().record_span(start, monitor.recorder().now_nanos());
    exporter.force_flush().unwrap();
    let received = wait_for(&receiver.inbox, Duration::from_secs(10), |r| duration_count(r) > 0)
        .expect("no export reached the HTTP receiver");
    let request = &received.request;

    let utilization = metric(request, "hw.gpu.utilization").expect("hw.gpu.utilization");
    assert_eq!(utilization.unit, "1");
    let points = number_points(utilization);
    assert_eq!(points.len(), 1);
    assert_eq!(string_attribute(&points[0].attributes, "hw.id").as_deref(), Some("GPU-standin-1"));
    assert!((number_value(&points[0]) - 0.8).abs() < 1e-12, "{:?}", points[0]);

    let memory = metric(request, "inferwatch.gpu.foreign_memory").expect("foreign memory");
    assert_eq!(memory.unit, "By");
    assert_eq!(number_value(&number_points(memory)[0]), (300u64 << 20) as f64);
    let foreign = metric(request, "inferwatch.foreign_gpu_load").expect("foreign GPU load");
    assert_eq!(number_value(&number_points(foreign)[0]), 45.0);
    let gpu = metric(request, "inferwatch.gpu_load_per_inference").expect("GPU load");
    assert_eq!(number_value(&number_points(gpu)[0]), 80.0);
    exporter.shutdown().unwrap();
    monitor.shutdown();
}

#[cfg(feature = "cli")]
#[test]
fn cli_honours_metrics_specific_variables() {
    let receiver = GrpcReceiver::start(0);
    let output = Command::new(env!("CARGO_BIN_EXE_inferwatch"))
        .args(["run", MODEL, "--duration", "1", "--rate", "50", "--json", "--gpu", "off"])
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        // The metrics-specific variables win over the general ones.
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
        .env("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "grpc")
        .env("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", format!("http://{}", receiver.addr))
        .env("OTEL_EXPORTER_OTLP_METRICS_HEADERS", "x-tenant=plant-4")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "inferwatch run failed: {stderr}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let last: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    let inferences = last["inference_count"].as_u64().unwrap();
    let received = wait_for(&receiver.inbox, Duration::from_secs(5), |r| duration_count(r) > 0)
        .expect("no export reached the gRPC receiver named by the metrics endpoint variable");
    assert_eq!(duration_count(&received), inferences);
    assert!(
        received.headers.contains(&("x-tenant".into(), "plant-4".into())),
        "{:?}",
        received.headers
    );
}

#[cfg(feature = "cli")]
#[test]
fn cli_rejects_unknown_protocol_variable() {
    let output = Command::new(env!("CARGO_BIN_EXE_inferwatch"))
        .args(["run", MODEL, "--duration", "1", "--gpu", "off"])
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
        .env_remove("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(
            "error: invalid OTEL_EXPORTER_OTLP_PROTOCOL \"http/json\" in the environment: \
             unsupported OTLP protocol \"http/json\": use grpc or http/protobuf"
        ),
        "{stderr}"
    );
}

#[cfg(feature = "cli")]
#[test]
fn cli_exports_profile_alarms() {
    let receiver = HttpReceiver::start();
    let feedback = tempfile::tempdir().unwrap();
    // 85 % GPU load per inference and 180 ms per inference: both behaviors of
    // crypto-mining (normal below 40 % and below 100 ms) are violated.
    std::fs::write(feedback.path().join("gpu_load_fb"), "85\n").unwrap();
    std::fs::write(feedback.path().join("gpu_inference_fb"), "180\n").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_inferwatch"))
        .args(["run", MODEL, "--duration", "4", "--rate", "50", "--json", "--gpu", "off"])
        .args(["--profile", "crypto-mining", "--eval-period", "1", "--window", "60"])
        .arg("--feedback-dir")
        .arg(feedback.path())
        .args(["--otlp-endpoint", &format!("http://{}", receiver.addr)])
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_PROTOCOL")
        .env("OTEL_METRIC_EXPORT_INTERVAL", "500")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "inferwatch run failed: {stderr}");

    let inbox = receiver.inbox.lock().unwrap().clone();
    let final_export = inbox.last().expect("no export reached the HTTP receiver");
    let alarm = metric(&final_export.request, "inferwatch.alarm.active")
        .expect("no inferwatch.alarm.active gauge in the final export");
    // Other tests may run a miner at the same time, which adds indicator alarms: look at the
    // profile's behaviors only.
    let mut behaviors: Vec<(String, f64)> = number_points(alarm)
        .iter()
        .map(|p| (string_attribute(&p.attributes, "inferwatch.behavior").unwrap(), number_value(p)))
        .filter(|(name, _)| name.ends_with("_behavior"))
        .collect();
    behaviors.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        behaviors,
        [
            ("avg_inference_time_behavior".to_owned(), 1.0),
            ("gpu_load_per_inference_behavior".to_owned(), 1.0)
        ]
    );
    // Both behaviors are reported from the first export on, before they alarm.
    let first = metric(&inbox[0].request, "inferwatch.alarm.active")
        .expect("no inferwatch.alarm.active gauge in the first export");
    let first_values: Vec<f64> = number_points(first)
        .iter()
        .filter(|p| {
            string_attribute(&p.attributes, "inferwatch.behavior")
                .is_some_and(|name| name.ends_with("_behavior"))
        })
        .map(number_value)
        .collect();
    assert_eq!(first_values.len(), 2, "{first_values:?}");
}
