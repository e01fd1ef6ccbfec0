//! `inferwatch run` end to end, and its errors on bad input.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::model_path;

fn inferwatch(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_inferwatch"))
        .args(args)
        .env("INFERWATCH_LOG", "info")
        .output()
        .expect("the inferwatch binary runs")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn json_lines(output: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect()
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn run_prints_json_snapshots_every_second() {
    let model = model_path("ppocr-cls/model.onnx");
    let output = inferwatch(&["run", path(&model), "--duration", "3", "--json"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let lines = json_lines(&output);
    // One line per elapsed second plus the final snapshot.
    assert!((3..=5).contains(&lines.len()), "{} lines", lines.len());
    let last = lines.last().unwrap();
    for key in [
        "inference_count",
        "failed_inferences",
        "avg_inference_time",
        "p50_inference_time",
        "p90_inference_time",
        "p99_inference_time",
        "cpu_load_per_inference",
        "gpu_load_per_inference",
    ] {
        assert!(last.get(key).is_some(), "missing {key} in {last}");
    }
    let count = last["inference_count"].as_u64().unwrap();
    assert!(count > 10, "only {count} inferences in 3 s");
    assert_eq!(last["failed_inferences"], 0);
    assert!(last["gpu_load_per_inference"].is_null(), "no GPU source, so null: {last}");
    let p50 = last["p50_inference_time"].as_f64().unwrap();
    let p99 = last["p99_inference_time"].as_f64().unwrap();
    let avg = last["avg_inference_time"].as_f64().unwrap();
    assert!(p50 > 0.0, "p50 {p50}");
    assert!(p50 <= p99, "p50 {p50} p99 {p99}");
    // 3 s of back-to-back inferences on one thread: count × mean is at most the run time.
    assert!(count as f64 * avg <= 3_500.0, "{count} × {avg} ms exceeds the run");
    let counts: Vec<u64> = lines.iter().map(|l| l["inference_count"].as_u64().unwrap()).collect();
    assert!(counts.windows(2).all(|w| w[0] <= w[1]), "counts go down: {counts:?}");
    assert!(stderr(&output).contains("using the sample inputs"), "{}", stderr(&output));
}

#[test]
fn run_load_files_read_and_absent() {
    let dir = tempfile::tempdir().unwrap();
    let gpu = dir.path().join("gpu_load_fb");
    std::fs::write(&gpu, "85\n").unwrap();
    let missing = dir.path().join("absent");
    let model = model_path("ppocr-cls/model.onnx");
    let output = inferwatch(&[
        "run",
        path(&model),
        "--duration",
        "2",
        "--json",
        "--load-file",
        &format!("gpu_load_per_inference={}", gpu.display()),
        "--load-file",
        &format!("foreign_gpu={}", missing.display()),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let last = json_lines(&output).pop().unwrap();
    assert_eq!(last["gpu_load_per_inference"].as_f64(), Some(85.0));
    assert!(last["foreign_gpu_load"].is_null(), "{last}");
    let warnings = stderr(&output).matches("reporting the metric as absent").count();
    assert_eq!(warnings, 1, "one warning for the missing file: {}", stderr(&output));
}

#[test]
fn run_with_several_threads_and_a_rate() {
    let model = model_path("ppocr-cls/model.onnx");
    let output = inferwatch(&[
        "run",
        path(&model),
        "--duration",
        "2",
        "--threads",
        "2",
        "--rate",
        "50",
        "--json",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let count = json_lines(&output).pop().unwrap()["inference_count"].as_u64().unwrap();
    // 50 per second for 2 s, plus the checked first run; scheduling can lose a few.
    assert!((80..=103).contains(&count), "{count} inferences at 50 Hz for 2 s");
}

/// Runs `inferwatch run` with `args` after the model and returns stderr, asserting exit 2.
fn run_fails(model: &Path, args: &[&str]) -> String {
    let mut all = vec!["run", path(model), "--duration", "1"];
    all.extend_from_slice(args);
    let output = inferwatch(&all);
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{text}");
    assert!(!text.contains("panicked"), "{text}");
    text
}

#[test]
fn missing_model_file() {
    let text = run_fails(Path::new("/nonexistent/model.onnx"), &[]);
    assert!(text.contains("failed to read model /nonexistent/model.onnx"), "{text}");
}

#[test]
fn file_that_is_not_onnx() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("notes.onnx");
    std::fs::write(&file, "these are plain text notes, not a model\n").unwrap();
    let text = run_fails(&file, &[]);
    assert!(text.contains("is not a valid ONNX model"), "{text}");
    assert!(text.contains("notes.onnx"), "{text}");
}

#[test]
fn truncated_model() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("truncated.onnx");
    let bytes = std::fs::read(model_path("ppocr-cls/model.onnx")).unwrap();
    std::fs::write(&file, &bytes[..bytes.len() / 2]).unwrap();
    let text = run_fails(&file, &[]);
    assert!(text.contains("is not a valid ONNX model"), "{text}");
}

#[test]
fn unsupported_operator_names_the_node() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/unsupported-op.onnx");
    let text = run_fails(&file, &[]);
    assert!(text.contains("operator NoSuchOp"), "{text}");
    assert!(text.contains("\"mystery\""), "{text}");
}

#[test]
fn input_name_the_model_lacks() {
    let model = model_path("ppocr-cls/model.onnx");
    let sample = model_path("ppocr-cls/x.npy");
    let text = run_fails(
        &model,
        &[
            "--input",
            &format!("x={}", sample.display()),
            "--input",
            &format!("image={}", sample.display()),
        ],
    );
    assert!(text.contains("no input named \"image\""), "{text}");
    assert!(text.contains("its inputs are x float32["), "{text}");
}

#[test]
fn wrong_shape_and_dtype() {
    let dir = tempfile::tempdir().unwrap();
    let model = model_path("silero-vad-sequence/model.onnx");
    let h = model_path("silero-vad-sequence/h.npy");
    let c = model_path("silero-vad-sequence/c.npy");
    let short = dir.path().join("short.npy");
    let array = ndarray::ArrayD::<f32>::zeros(ndarray::IxDyn(&[2, 100]));
    inferwatch::npy::write_npy(&short, &inferwatch::Tensor::F32(array)).unwrap();
    let inputs = |input: &Path| {
        vec![
            format!("input={}", input.display()),
            format!("h={}", h.display()),
            format!("c={}", c.display()),
        ]
    };
    let flags: Vec<String> =
        inputs(&short).into_iter().flat_map(|i| ["--input".to_owned(), i]).collect();
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let text = run_fails(&model, &flags);
    assert!(
        text.contains("input \"input\" has shape [2,100] but the model expects [?,576]"),
        "{text}"
    );

    let ints = dir.path().join("ints.npy");
    let array = ndarray::ArrayD::<i64>::zeros(ndarray::IxDyn(&[2, 576]));
    inferwatch::npy::write_npy(&ints, &inferwatch::Tensor::I64(array)).unwrap();
    let flags: Vec<String> =
        inputs(&ints).into_iter().flat_map(|i| ["--input".to_owned(), i]).collect();
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let text = run_fails(&model, &flags);
    assert!(
        text.contains("input \"input\" has element type int64 but the model expects float32"),
        "{text}"
    );
}

#[test]
fn unreadable_npy() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.npy");
    std::fs::write(&bad, b"\x93NUMPY\x01\x00garbage").unwrap();
    let model = model_path("ppocr-cls/model.onnx");
    let text = run_fails(&model, &["--input", &format!("x={}", bad.display())]);
    assert!(text.contains("--input x:"), "{text}");
    assert!(text.contains("bad.npy is not a readable .npy file"), "{text}");
    let text = run_fails(&model, &["--input", "x=/nonexistent/x.npy"]);
    assert!(text.contains("failed to access /nonexistent/x.npy"), "{text}");
}

#[test]
fn bad_flag_values() {
    let model = model_path("ppocr-cls/model.onnx");
    for (flag, value, expected) in [
        ("--duration", "soon", "not a positive number of seconds"),
        ("--rate", "-3", "not a rate"),
        ("--threads", "0", "0 is not in 1..=256"),
        ("--backend", "torch", "unknown backend \"torch\""),
        ("--load-file", "gpu", "expected NAME=VALUE"),
        ("--load-file", "vram=/tmp/x", "unknown load metric \"vram\""),
        ("--input", "x", "expected NAME=VALUE"),
        ("--drift-baseline", "90000", "\"90000\" is not a number of seconds from 0 to 86400"),
        ("--drift-baseline", "-1", "\"-1\" is not a number of seconds from 0 to 86400"),
        ("--drift-warmup", "90000", "\"90000\" is not a positive number of seconds up to 86400"),
    ] {
        let output = inferwatch(&["run", path(&model), &format!("{flag}={value}")]);
        let text = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "{flag} {value}: {text}");
        assert!(text.contains(expected), "{flag} {value}: {text}");
    }
}

#[test]
fn bad_indicator_flag_values() {
    let model = model_path("ppocr-cls/model.onnx");
    for (flag, value, expected) in [
        ("--busy-cpu", "0", "\"0\" is not a positive number"),
        ("--busy-cpu", "-5", "\"-5\" is not a positive number"),
        ("--busy-cpu", "lots", "\"lots\" is not a positive number"),
        ("--busy-cpu", "1000000", "\"1000000\" is above"),
        ("--busy-secs", "0", "\"0\" is not a positive number of seconds"),
        ("--busy-secs", "inf", "\"inf\" is not a positive number of seconds"),
        ("--ignore-process", "", "the process name is empty"),
        ("--ignore-process", "/usr/bin/cc1plus", "give the program's file name, not its path"),
    ] {
        let output = inferwatch(&["run", path(&model), "--drift", &format!("{flag}={value}")]);
        let text = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "{flag} {value}: {text}");
        assert!(text.contains(flag), "{flag} {value}: {text}");
        assert!(text.contains(expected), "{flag} {value}: {text}");
    }
}

#[test]
fn no_indicators_conflicts_with_indicator_flags() {
    let model = model_path("ppocr-cls/model.onnx");
    for flag in ["--busy-cpu=50", "--busy-secs=5", "--ignore-process=rustc"] {
        let output = inferwatch(&["run", path(&model), "--drift", "--no-indicators", flag]);
        let text = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "{flag}: {text}");
        assert!(text.contains("cannot be used with"), "{flag}: {text}");
        assert!(text.contains("--no-indicators"), "{flag}: {text}");
    }
}

#[test]
fn eval_period_longer_than_window_rejected() {
    let model = model_path("ppocr-cls/model.onnx");
    let output = inferwatch(&[
        "run",
        path(&model),
        "--profile",
        "crypto-mining",
        "--window",
        "10",
        "--eval-period",
        "600",
    ]);
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{text}");
    assert!(text.contains("--eval-period 600 s is longer than --window 10 s"), "{text}");
}

#[test]
fn zero_drift_baseline_stays_fixed() {
    let model = model_path("ppocr-cls/model.onnx");
    let output = inferwatch(&[
        "run",
        path(&model),
        "--drift",
        "--no-indicators",
        "--drift-warmup",
        "2",
        "--drift-baseline",
        "0",
        "--json",
        "--duration",
        "5",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let states: Vec<_> = json_lines(&output)
        .into_iter()
        .map(|line| line["drift"].clone())
        .filter(|drift| drift["warming_up"] == false)
        .collect();
    assert!(!states.is_empty(), "the 2 s warm-up never ended");
    for state in states {
        assert_eq!(state["baseline_datapoints"], 2, "{state}");
    }
}

#[test]
fn negative_values_reach_value_check() {
    // Written apart from the flag, a negative number is still read as the flag's value.
    let model = model_path("ppocr-cls/model.onnx");
    for (flag, value) in [("--drift-baseline", "-1"), ("--busy-cpu", "-5")] {
        let text = run_fails(&model, &["--drift", flag, value]);
        assert!(text.contains(&format!("\"{value}\" is not")), "{flag} {value}: {text}");
    }
}

#[test]
fn drift_flags_require_drift() {
    let model = model_path("ppocr-cls/model.onnx");
    for flag in ["--drift-warmup=5", "--drift-baseline=60", "--drift-threshold=10"] {
        let text = run_fails(&model, &["--profile", "crypto-mining", flag]);
        assert!(text.contains("--drift"), "{flag}: {text}");
    }
}

#[test]
fn indicator_flags_require_detection() {
    let model = model_path("ppocr-cls/model.onnx");
    for flag in ["--busy-cpu=50", "--busy-secs=5", "--ignore-process=rustc", "--no-indicators"] {
        let output = inferwatch(&["run", path(&model), "--duration", "1", flag]);
        let text = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "{flag}: {text}");
        assert!(text.contains("--profile <NAME|FILE>|--drift"), "{flag}: {text}");
    }
}

/// Returns the details of the busy-process alarms raised during a 6 s `inferwatch run` with
/// `extra` flags.
fn busy_alarms(model: &Path, extra: &[&str]) -> Vec<String> {
    let mut args = vec!["run", path(model), "--drift", "--json", "--duration", "6", "--rate", "5"];
    args.extend(["--eval-period", "1"]);
    args.extend(extra);
    let output = inferwatch(&args);
    assert!(output.status.success(), "{}", stderr(&output));
    json_lines(&output)
        .iter()
        .filter_map(|line| line["alarms"].as_array().cloned())
        .flatten()
        .filter(|event| event["behavior"] == "busy-process" && event["state"] == "in-alarm")
        .filter_map(|event| event["detail"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn ignore_process_silences_busy_alarm() {
    let model = model_path("ppocr-cls/model.onnx");
    // One hashing thread keeps a core busy under a name no other process has.
    let mut miner = Command::new(env!("CARGO_BIN_EXE_inferwatch"))
        .args(["simulate", "miner", "--threads", "1", "--name", "iw-busy-test"])
        .args(["--duration", "40"])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let name = format!("({})", "iw-busy-test");
    // A 2 s span at 30 % of a core, so that a loaded machine still reports the miner.
    let busy = ["--busy-secs", "2", "--busy-cpu", "30"];
    let reported = busy_alarms(&model, &busy);
    let ignored = busy_alarms(&model, &[&busy[..], &["--ignore-process", "iw-busy-test"]].concat());
    let switched_off = busy_alarms(&model, &["--no-indicators"]);
    let _ = miner.kill();
    let _ = miner.wait();
    assert!(reported.iter().any(|d| d.contains(&name)), "{reported:?}");
    assert!(!ignored.iter().any(|d| d.contains(&name)), "{ignored:?}");
    assert_eq!(switched_off, Vec::<String>::new());
}

#[test]
fn run_ctrl_c_exits_zero() {
    let model = model_path("ppocr-cls/model.onnx");
    let child = Command::new(env!("CARGO_BIN_EXE_inferwatch"))
        .args(["run", path(&model), "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(2500));
    // SAFETY: kill only sends a signal to the child this test started.
    let sent = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    assert_eq!(sent, 0);
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let lines = json_lines(&output);
    assert!(lines.len() >= 2, "{} lines", lines.len());
    let last = lines.last().unwrap();
    assert!(last["inference_count"].as_u64().unwrap() > 0, "{last}");
    assert!(last["elapsed_seconds"].as_f64().unwrap() >= 2.0, "{last}");
}
