//! The drift verdict, baseline files and plots of `inferwatch::bench`, on synthetic samples
//! from a seeded generator.

use std::path::Path;

use inferwatch::BaselineError;
use inferwatch::bench::{
    BASELINE_FORMAT_VERSION, Baseline, DriftConfig, PlotFormat, Sample, Summary, Verdict, compare,
    mann_whitney, plot,
};

/// Returns `count` latencies in nanoseconds, log-normal around `median_ns` with a log
/// standard deviation of 0.1, plus one slow outlier in fifty as a busy machine produces.
fn latencies(seed: u64, count: usize, median_ns: f64) -> Vec<u64> {
    let mut rng = fastrand::Rng::with_seed(seed);
    (0..count)
        .map(|_| {
            // Box–Muller: two uniform numbers give one standard normal number.
            let u1 = rng.f64().max(f64::MIN_POSITIVE);
            let u2 = rng.f64();
            let normal = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
            let outlier = if rng.usize(..50) == 0 { 3.0 } else { 1.0 };
            (median_ns * (0.1 * normal).exp() * outlier) as u64
        })
        .collect()
}

fn scaled(values: &[u64], factor: f64) -> Vec<u64> {
    values.iter().map(|&v| (v as f64 * factor) as u64).collect()
}

const MEDIAN_NS: f64 = 2_000_000.0;

#[test]
fn same_distribution_is_no_change() {
    let baseline = latencies(10, 500, MEDIAN_NS);
    let current = latencies(20, 500, MEDIAN_NS);
    let drift = compare(&baseline, &current, &DriftConfig::default());
    assert_eq!(drift.verdict, Verdict::NoChange);
    assert!(drift.mann_whitney.p_slower > 0.01, "p_slower {}", drift.mann_whitney.p_slower);
    assert!(drift.ratio_low < 1.0, "interval {drift:?}");
    assert!(drift.ratio_high > 1.0, "interval {drift:?}");
}

#[test]
fn mann_whitney_u_counts_slower_pairs() {
    // U is the number of (baseline, current) pairs where current is larger, ties one half.
    let baseline = latencies(1, 300, MEDIAN_NS);
    let current = latencies(2, 300, MEDIAN_NS);
    let mut pairs = 0.0;
    for &b in &baseline {
        for &c in &current {
            pairs += if c > b {
                1.0
            } else if c == b {
                0.5
            } else {
                0.0
            };
        }
    }
    assert_eq!(mann_whitney(&baseline, &current).u, pairs);
}

#[test]
fn unlucky_draw_below_threshold_is_no_change() {
    // Seeds 1 and 2 draw medians 1.6 % apart from one distribution: the rank test alone
    // calls that significant (p = 0.0066), and the 5 % threshold keeps the verdict calm.
    let baseline = latencies(1, 500, MEDIAN_NS);
    let current = latencies(2, 500, MEDIAN_NS);
    let drift = compare(&baseline, &current, &DriftConfig::default());
    assert!((drift.mann_whitney.p_slower - 0.006_633).abs() < 1e-6);
    assert_eq!(drift.verdict, Verdict::NoChange);
}

#[test]
fn twenty_percent_slower_is_regression() {
    let baseline = latencies(1, 500, MEDIAN_NS);
    let current = scaled(&latencies(2, 500, MEDIAN_NS), 1.2);
    let drift = compare(&baseline, &current, &DriftConfig::default());
    assert_eq!(drift.verdict, Verdict::Regression);
    assert!(drift.mann_whitney.p_slower < 1e-10, "p_slower {}", drift.mann_whitney.p_slower);
    assert!(drift.ratio_low > 1.05, "interval {drift:?}");
    assert!((drift.median_ratio - 1.2).abs() < 0.03, "ratio {}", drift.median_ratio);
}

#[test]
fn ten_percent_slower_is_regression_at_five_percent() {
    let baseline = latencies(3, 1000, MEDIAN_NS);
    let current = scaled(&latencies(4, 1000, MEDIAN_NS), 1.1);
    let drift = compare(&baseline, &current, &DriftConfig::default());
    assert_eq!(drift.verdict, Verdict::Regression);
}

#[test]
fn small_shift_within_threshold_is_no_change() {
    // Three percent slower is detected by the rank test, but stays under the 5 % threshold.
    let baseline = latencies(1, 2000, MEDIAN_NS);
    let current = scaled(&latencies(2, 2000, MEDIAN_NS), 1.03);
    let drift = compare(&baseline, &current, &DriftConfig::default());
    assert!(drift.mann_whitney.p_slower < 0.01, "p_slower {}", drift.mann_whitney.p_slower);
    assert_eq!(drift.verdict, Verdict::NoChange);
    let strict = DriftConfig { threshold: 0.0, ..DriftConfig::default() };
    assert_eq!(compare(&baseline, &current, &strict).verdict, Verdict::Regression);
}

#[test]
fn twenty_percent_faster_is_improvement() {
    let baseline = latencies(1, 500, MEDIAN_NS);
    let current = scaled(&latencies(2, 500, MEDIAN_NS), 0.8);
    let drift = compare(&baseline, &current, &DriftConfig::default());
    assert_eq!(drift.verdict, Verdict::Improvement);
    assert!(drift.mann_whitney.p_faster < 1e-10);
}

#[test]
fn few_samples_are_no_change() {
    // Three samples a side cannot reach p < 0.01 whatever their values.
    let drift = compare(&[1_000, 1_001, 1_002], &[9_000, 9_001, 9_002], &DriftConfig::default());
    assert_eq!(drift.verdict, Verdict::NoChange);
}

#[test]
fn bootstrap_interval_is_reproducible() {
    let baseline = latencies(5, 300, MEDIAN_NS);
    let current = latencies(6, 300, MEDIAN_NS);
    let first = compare(&baseline, &current, &DriftConfig::default());
    let second = compare(&baseline, &current, &DriftConfig::default());
    assert_eq!(first.ratio_low, second.ratio_low);
    assert_eq!(first.ratio_high, second.ratio_high);
    let other_seed =
        compare(&baseline, &current, &DriftConfig { seed: 7, ..DriftConfig::default() });
    assert_ne!(first.ratio_low, other_seed.ratio_low);
}

fn sample_baseline(latencies_ns: &[u64]) -> Baseline {
    let summary = Summary::from_nanos(latencies_ns, None);
    Baseline::new("models/ppocr-cls/model.onnx", "ab".repeat(32), "tract", summary, latencies_ns)
}

#[test]
fn baseline_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("baseline.json");
    let baseline = sample_baseline(&latencies(1, 100, MEDIAN_NS));
    baseline.save(&path).unwrap();
    let loaded = Baseline::load(&path).unwrap();
    assert_eq!(loaded, baseline);
    assert_eq!(loaded.format_version, BASELINE_FORMAT_VERSION);
    assert_eq!(loaded.samples_ns.len(), 100);
    assert_eq!(loaded.backend, "tract");
}

#[test]
fn baseline_keeps_ten_thousand_samples() {
    let all = latencies(1, 25_000, MEDIAN_NS);
    let baseline = sample_baseline(&all);
    assert_eq!(baseline.samples_ns.len(), 10_000);
    assert_eq!(baseline.summary.count, 25_000);
    assert_eq!(baseline.samples_ns[0], all[0]);
    assert_eq!(baseline.samples_ns[1], all[2]);
}

#[test]
fn missing_baseline_is_io_error() {
    let error = Baseline::load("/nonexistent/baseline.json").unwrap_err();
    assert!(matches!(error, BaselineError::Io { .. }), "{error:?}");
    let message = error.to_string();
    assert!(message.contains("/nonexistent/baseline.json"), "{message}");
    assert!(message.contains("--save-baseline"), "{message}");
}

#[test]
fn non_json_baseline_is_format_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("baseline.json");
    std::fs::write(&path, "latency: 2 ms\n").unwrap();
    let error = Baseline::load(&path).unwrap_err();
    assert!(matches!(error, BaselineError::Format { .. }), "{error:?}");
    assert!(error.to_string().contains("is not a valid baseline file"), "{error}");
}

#[test]
fn baseline_of_other_version_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("baseline.json");
    let mut value = serde_json::to_value(sample_baseline(&[1, 2, 3])).unwrap();
    value["format_version"] = serde_json::json!(2);
    std::fs::write(&path, value.to_string()).unwrap();
    let error = Baseline::load(&path).unwrap_err();
    assert!(matches!(error, BaselineError::Version { found: 2, expected: 1, .. }), "{error:?}");
    assert!(error.to_string().contains("format version 2"), "{error}");
}

#[test]
fn baseline_without_samples_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("baseline.json");
    sample_baseline(&[]).save(&path).unwrap();
    let error = Baseline::load(&path).unwrap_err();
    assert!(matches!(error, BaselineError::Empty { .. }), "{error:?}");
}

#[test]
fn baseline_of_other_model_is_mismatch() {
    let baseline = sample_baseline(&[1, 2, 3]);
    let other_hash = "cd".repeat(32);
    let model = Path::new("models/silero-vad/model.onnx");
    let error = baseline.check_matches("b.json", model, &other_hash, "tract").unwrap_err();
    assert!(matches!(error, BaselineError::Mismatch { .. }), "{error:?}");
    let message = error.to_string();
    assert!(message.contains("models/ppocr-cls/model.onnx (sha256 abababababab)"), "{message}");
    assert!(message.contains("models/silero-vad/model.onnx (sha256 cdcdcdcdcdcd)"), "{message}");
    let error = baseline.check_matches("b.json", model, &"ab".repeat(32), "ort").unwrap_err();
    assert!(error.to_string().contains("the tract backend"), "{error}");
    assert!(baseline.check_matches("b.json", model, &"ab".repeat(32), "tract").is_ok());
}

fn run_samples() -> Vec<Sample> {
    latencies(1, 400, MEDIAN_NS)
        .into_iter()
        .enumerate()
        .map(|(i, latency_ns)| Sample { at_ns: (i as u64 + 1) * 2_500_000, latency_ns })
        .collect()
}

#[test]
fn svg_plot_has_points_bars_and_alarms() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("latency.svg");
    let format = plot(&path, &run_samples(), &[0.5], "ppocr-cls (tract)").unwrap();
    assert_eq!(format, PlotFormat::Svg);
    let text = std::fs::read_to_string(&path).unwrap();
    let document = roxmltree::Document::parse(&text).unwrap();
    let root = document.root_element();
    assert_eq!(root.tag_name().name(), "svg");
    assert_eq!(root.attribute("width"), Some("1200"));
    assert_eq!(root.attribute("height"), Some("800"));
    let count = |tag: &str| root.descendants().filter(|n| n.tag_name().name() == tag).count();
    // One circle per sample in the upper panel.
    assert_eq!(count("circle"), 400);
    assert!(count("rect") >= 10, "{} rect elements", count("rect"));
    let texts: Vec<&str> = root
        .descendants()
        .filter(|n| n.tag_name().name() == "text")
        .filter_map(|n| n.text())
        .map(str::trim)
        .collect();
    assert!(texts.contains(&"ppocr-cls (tract)"), "{texts:?}");
    assert!(texts.contains(&"latency (ms)"), "{texts:?}");
    // The alarm is a red line.
    assert!(text.contains("#FF0000"), "no red alarm line");
}

#[test]
fn png_plot_has_signature_and_size() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("latency.PNG");
    let format = plot(&path, &run_samples(), &[], "unused").unwrap();
    assert_eq!(format, PlotFormat::Png);
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    // The IHDR chunk comes first: length, "IHDR", then width and height big-endian.
    assert_eq!(&bytes[12..16], b"IHDR");
    assert_eq!(u32::from_be_bytes(bytes[16..20].try_into().unwrap()), 1200);
    assert_eq!(u32::from_be_bytes(bytes[20..24].try_into().unwrap()), 800);
    assert!(bytes.len() > 1000, "{} bytes", bytes.len());
}

#[test]
fn plot_rejects_other_extension_and_no_samples() {
    let dir = tempfile::tempdir().unwrap();
    let error = plot(&dir.path().join("latency.jpg"), &run_samples(), &[], "t").unwrap_err();
    assert!(error.to_string().contains("must end in .svg or .png"), "{error}");
    let error = plot(&dir.path().join("latency.svg"), &[], &[], "t").unwrap_err();
    assert!(error.to_string().contains("no latency samples"), "{error}");
}
