//! `inferwatch bench` end to end: the real binary on the shipped classifier with tract.

use std::path::Path;
use std::process::{Command, Output};

const MODEL: &str = "models/ppocr-cls/model.onnx";
/// SHA-256 of the shipped classifier, as listed in models/SHA256SUMS.
const MODEL_SHA256: &str = "e47acedf663230f8863ff1ab0e64dd2d82b838fceb5957146dab185a89d6215c";

fn inferwatch(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_inferwatch"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("failed to start inferwatch")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn json_of(output: &Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!("stdout is not JSON ({e}): {}", String::from_utf8_lossy(&output.stdout))
    })
}

/// Writes a baseline of `latency_ns` repeated 200 times for the shipped classifier.
fn write_baseline(path: &Path, latency_ns: u64) {
    let samples = vec![latency_ns; 200];
    let summary = inferwatch::bench::Summary::from_nanos(&samples, None);
    let baseline = inferwatch::bench::Baseline::new(
        MODEL,
        MODEL_SHA256.to_owned(),
        "tract",
        summary,
        &samples,
    );
    baseline.save(path).unwrap();
}

#[test]
fn bench_json_reports_fifty_inferences() {
    let output = inferwatch(&["bench", MODEL, "--iterations", "50", "--json"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let report = json_of(&output);
    assert_eq!(report["model"], MODEL);
    assert_eq!(report["model_sha256"], MODEL_SHA256);
    assert_eq!(report["backend"], "tract");
    assert_eq!(report["warmup"], 10);
    let summary = &report["summary"];
    assert_eq!(summary["count"], 50);
    let value = |key: &str| summary[key].as_f64().unwrap_or_else(|| panic!("{key} missing"));
    assert!(value("min_ms") > 0.0);
    assert!(value("min_ms") <= value("p50_ms"));
    assert!(value("p50_ms") <= value("p90_ms"));
    assert!(value("p90_ms") <= value("p99_ms"));
    assert!(value("p99_ms") <= value("max_ms"));
    assert!(value("std_dev_ms") >= 0.0);
    // Throughput counts the loop's wall time, so it is at most one over the mean latency.
    assert!(value("throughput_per_s") > 0.0);
    assert!(value("throughput_per_s") <= 1e3 / value("mean_ms") * 1.0001);
    assert!(report["drift"].is_null());
}

#[test]
fn bench_saves_baseline_and_compares() {
    let dir = tempfile::tempdir().unwrap();
    let baseline = dir.path().join("baseline.json");
    let baseline_arg = baseline.to_str().unwrap();
    let output = inferwatch(&[
        "bench",
        MODEL,
        "--iterations",
        "30",
        "--warmup",
        "2",
        "--save-baseline",
        baseline_arg,
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let saved = inferwatch::bench::Baseline::load(&baseline).unwrap();
    assert_eq!(saved.samples_ns.len(), 30);
    assert_eq!(saved.model_sha256, MODEL_SHA256);
    assert_eq!(saved.backend, "tract");

    let output = inferwatch(&[
        "bench",
        MODEL,
        "--iterations",
        "30",
        "--warmup",
        "2",
        "--baseline",
        baseline_arg,
        "--json",
    ]);
    // The same model on the same machine: a regression beyond 5 % would be a false alarm,
    // though a burst of load from other processes can cause one.
    let report = json_of(&output);
    assert_eq!(report["drift"]["baseline_count"], 30);
    assert_eq!(report["drift"]["current_count"], 30);
    let verdict = report["drift"]["verdict"].as_str().unwrap();
    assert!(["no_change", "regression", "improvement"].contains(&verdict), "{verdict}");
}

#[test]
fn regression_exits_with_status_one() {
    // A baseline of 10 µs per inference: the classifier takes milliseconds, so this run is
    // far slower than the baseline.
    let dir = tempfile::tempdir().unwrap();
    let baseline = dir.path().join("fast.json");
    write_baseline(&baseline, 10_000);
    let output = inferwatch(&[
        "bench",
        MODEL,
        "--iterations",
        "30",
        "--warmup",
        "1",
        "--baseline",
        baseline.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert_eq!(json_of(&output)["drift"]["verdict"], "regression");
    assert!(
        stderr(&output).contains("median latency regressed from 0.010 ms"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn improvement_exits_with_status_zero() {
    let dir = tempfile::tempdir().unwrap();
    let baseline = dir.path().join("slow.json");
    write_baseline(&baseline, 10_000_000_000);
    let output = inferwatch(&[
        "bench",
        MODEL,
        "--iterations",
        "30",
        "--warmup",
        "1",
        "--baseline",
        baseline.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains(": improvement"), "{text}");
}

#[test]
fn missing_baseline_exits_with_status_two() {
    let output =
        inferwatch(&["bench", MODEL, "--iterations", "5", "--baseline", "/nonexistent/b.json"]);
    assert_eq!(output.status.code(), Some(2));
    let message = stderr(&output);
    assert!(message.contains("error: failed to access baseline /nonexistent/b.json"), "{message}");
}

#[test]
fn baseline_of_other_model_exits_with_status_two() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.json");
    let samples = [1_000_000u64; 10];
    let summary = inferwatch::bench::Summary::from_nanos(&samples, None);
    inferwatch::bench::Baseline::new("other.onnx", "00".repeat(32), "tract", summary, &samples)
        .save(&path)
        .unwrap();
    let output =
        inferwatch(&["bench", MODEL, "--iterations", "5", "--baseline", path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    let message = stderr(&output);
    assert!(
        message.contains("was recorded for model other.onnx (sha256 000000000000)"),
        "{message}"
    );
    assert!(message.contains("this run uses model models/ppocr-cls/model.onnx"), "{message}");
}

#[test]
fn bench_writes_png_plot() {
    let dir = tempfile::tempdir().unwrap();
    let plot = dir.path().join("latency.png");
    let output = inferwatch(&[
        "bench",
        MODEL,
        "--iterations",
        "20",
        "--warmup",
        "1",
        "--plot",
        plot.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let bytes = std::fs::read(&plot).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
}

#[test]
fn duration_and_iterations_conflict() {
    let output = inferwatch(&["bench", MODEL, "--iterations", "5", "--duration", "1"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("cannot be used with"), "{}", stderr(&output));
}

#[test]
fn bench_rejects_bad_indicator_flags() {
    for (flag, value, expected) in [
        ("--busy-cpu", "0", "\"0\" is not a positive number"),
        ("--busy-secs", "-1", "\"-1\" is not a positive number of seconds"),
        ("--busy-secs", "1e9", "\"1e9\" is not a positive number of seconds below 1e9"),
        ("--ignore-process", "bin/rustc", "give the program's file name, not its path"),
    ] {
        let output = inferwatch(&["bench", MODEL, "--drift", &format!("{flag}={value}")]);
        let text = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "{flag} {value}: {text}");
        assert!(text.contains(flag), "{flag} {value}: {text}");
        assert!(text.contains(expected), "{flag} {value}: {text}");
    }
}

/// An evaluation period beyond an hour used to size a window of one-second slots for the whole
/// period and abort the process on the allocation.
#[test]
fn bench_rejects_eval_period_over_an_hour() {
    for value in ["3601", "1e6", "999999999"] {
        let output =
            inferwatch(&["bench", MODEL, "--iterations", "5", "--drift", "--eval-period", value]);
        let text = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "--eval-period {value}: {text}");
        assert!(text.contains("--eval-period"), "--eval-period {value}: {text}");
        assert!(text.contains("at most 3600"), "--eval-period {value}: {text}");
    }
}

#[test]
fn bench_accepts_eval_period_of_an_hour() {
    let output =
        inferwatch(&["bench", MODEL, "--iterations", "5", "--drift", "--eval-period", "3600"]);
    assert!(output.status.success(), "{}", stderr(&output));
}

/// Output paths are checked before the timed loop, so a typo fails at once rather than after
/// a long run.
#[test]
fn bad_output_paths_fail_before_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    let cases = [
        ("--plot", missing.join("run.svg"), "folder"),
        ("--plot", dir.path().join("run.jpg"), "must end in .svg or .png"),
        ("--save-baseline", missing.join("base.json"), "folder"),
    ];
    for (flag, path, expected) in cases {
        let started = std::time::Instant::now();
        let output =
            inferwatch(&["bench", MODEL, "--duration", "20", flag, path.to_str().unwrap()]);
        let elapsed = started.elapsed();
        let text = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "{flag} {}: {text}", path.display());
        assert!(text.contains(flag), "{flag} {}: {text}", path.display());
        assert!(text.contains(expected), "{flag} {}: {text}", path.display());
        assert!(elapsed < std::time::Duration::from_secs(10), "{flag} took {elapsed:?}");
    }
}

#[test]
fn duration_limits_the_run() {
    let output = inferwatch(&["bench", MODEL, "--duration", "0.5", "--warmup", "1", "--json"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let report = json_of(&output);
    assert!(report["summary"]["count"].as_u64().unwrap() >= 1);
    let wall = report["wall_seconds"].as_f64().unwrap();
    // The loop stops after the first inference that ends past 0.5 s.
    assert!(wall >= 0.5, "wall time {wall} s");
}

/// A profile whose only behavior alarms on the first datapoint with any inference: normal
/// would be an average latency below 0 ms.
const ALWAYS_ALARMS: &str = r#"[{"name": "always_slow", "metric": "avg_inference_time",
    "criteria": {"comparisonOperator": "less-than", "value": {"number": 0},
                 "consecutiveDatapointsToAlarm": 1, "consecutiveDatapointsToClear": 1}}]"#;

/// Counts the red lines of an SVG plot, the alarm markers `bench::plot` draws.
fn alarm_markers(svg: &Path) -> usize {
    let text = std::fs::read_to_string(svg).unwrap();
    let document = roxmltree::Document::parse(&text).unwrap();
    document
        .descendants()
        .filter(|n| n.tag_name().name() == "polyline")
        .filter(|n| n.attribute("stroke") == Some("#FF0000"))
        .count()
}

#[test]
fn profile_alarm_reaches_json_and_plot() {
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("always.json");
    std::fs::write(&profile, ALWAYS_ALARMS).unwrap();
    let plot = dir.path().join("latency.svg");
    let output = inferwatch(&[
        "bench",
        MODEL,
        "--duration",
        "1.5",
        "--warmup",
        "1",
        "--profile",
        profile.to_str().unwrap(),
        "--eval-period",
        "0.5",
        "--json",
        "--plot",
        plot.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));

    let report = json_of(&output);
    let wall = report["wall_seconds"].as_f64().unwrap();
    let alarms = report["alarms"].as_array().expect("alarms is an array");
    let raised: Vec<&serde_json::Value> = alarms
        .iter()
        .filter(|a| a["behavior"] == "always_slow" && a["state"] == "in-alarm")
        .collect();
    // The behavior never clears, so it is raised once.
    assert_eq!(raised.len(), 1, "{alarms:?}");
    let alarm = raised[0];
    assert_eq!(alarm["kind"], "behavior");
    assert_eq!(alarm["metric"], "avg_inference_time");
    assert_eq!(alarm["operator"], "less-than");
    assert_eq!(alarm["threshold"], 0.0);
    assert!(alarm["value"].as_f64().unwrap() > 0.0, "{alarm}");
    assert!(alarm["time_ms"].as_u64().unwrap() > 0, "{alarm}");
    let seconds = alarm["seconds"].as_f64().unwrap();
    // Periods end on multiples of 0.5 s of the monitor's clock, which starts just before
    // the loop. So the first datapoint ends within 0.5 s of the start, or within 1 s when
    // the detector starts slowly.
    assert!(seconds > 0.0, "alarm at {seconds} s");
    assert!(seconds <= 1.0, "alarm at {seconds} s");
    assert!(seconds <= wall, "alarm at {seconds} s after a loop of {wall} s");

    // Indicator alarms from unrelated processes may add markers, never remove one.
    let markers = alarm_markers(&plot);
    let in_alarm = alarms.iter().filter(|a| a["state"] == "in-alarm").count();
    assert!(markers >= 1, "{markers} markers");
    assert!(markers <= in_alarm, "{markers} markers for {in_alarm} raised alarms");
}

#[test]
fn profile_alarm_printed_in_summary() {
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("always.json");
    std::fs::write(&profile, ALWAYS_ALARMS).unwrap();
    let output = inferwatch(&[
        "bench",
        MODEL,
        "--duration",
        "0.8",
        "--warmup",
        "1",
        "--profile",
        profile.to_str().unwrap(),
        "--eval-period",
        "0.3",
    ]);
    // An alarm leaves the exit status at 0.
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let text = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with("alarm at ")).collect();
    let line = lines.iter().find(|l| l.contains("always_slow in-alarm")).copied();
    let line = line.unwrap_or_else(|| panic!("no alarm line in {text}"));
    assert!(line.contains("avg_inference_time = "), "{line}");
    assert!(line.contains("where normal is less-than 0.000"), "{line}");
}

#[test]
fn no_profile_means_no_alarms() {
    let dir = tempfile::tempdir().unwrap();
    let plot = dir.path().join("latency.svg");
    let output = inferwatch(&[
        "bench",
        MODEL,
        "--iterations",
        "20",
        "--warmup",
        "1",
        "--json",
        "--plot",
        plot.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(json_of(&output)["alarms"].is_null());
    assert_eq!(alarm_markers(&plot), 0);
}

#[test]
fn short_drift_run_warns_of_warmup() {
    let output = inferwatch(&["bench", MODEL, "--iterations", "5", "--drift", "--json"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let alarms = json_of(&output)["alarms"].clone();
    let drift_alarms = alarms
        .as_array()
        .expect("alarms is an array")
        .iter()
        .filter(|a| a["behavior"] == "latency-drift")
        .count();
    assert_eq!(drift_alarms, 0);
    let message = stderr(&output);
    assert!(message.contains("still learning its baseline"), "{message}");
}

#[test]
fn unknown_profile_exits_with_status_two() {
    let output = inferwatch(&["bench", MODEL, "--iterations", "5", "--profile", "no-such-profile"]);
    assert_eq!(output.status.code(), Some(2));
    let message = stderr(&output);
    assert!(
        message.contains("error: --profile: failed to read profile no-such-profile"),
        "{message}"
    );
    assert!(message.contains("give a shipped profile (crypto-mining)"), "{message}");
}
