//! Without the NVIDIA driver, GPU metrics are absent (null), never zero, and only an
//! explicit request for NVML is an error. These tests need a machine without
//! `libnvidia-ml.so.1`; on a machine with the driver they check nothing and say so.
#![cfg(all(feature = "nvml", feature = "cli"))]

use std::process::Command;

use inferwatch::LoadError;
use inferwatch::load::nvml::{NvmlGpus, NvmlOptions};

const MODEL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/models/ppocr-cls/model.onnx");

/// Returns true when this machine has a working NVML, which these tests cannot cover.
fn driver_present() -> bool {
    match NvmlGpus::open(&NvmlOptions::default()) {
        Ok(_) => {
            eprintln!("NVML opened on this machine: the no-driver fallback is not checked here");
            true
        }
        Err(_) => false,
    }
}

#[test]
fn open_without_driver_names_library() {
    if driver_present() {
        return;
    }
    let error = NvmlGpus::open(&NvmlOptions::default()).unwrap_err();
    assert!(matches!(error, LoadError::NvmlUnavailable { .. }), "{error:?}");
    let message = error.to_string();
    assert!(message.starts_with("failed to load NVML from libnvidia-ml.so.1: "), "{message}");
    assert!(
        message
            .ends_with("install the NVIDIA driver, or pass --gpu off to run without GPU metrics")
    );
}

#[test]
fn run_without_driver_reports_null_gpu_load() {
    if driver_present() {
        return;
    }
    let output = Command::new(env!("CARGO_BIN_EXE_inferwatch"))
        .args(["run", MODEL, "--duration", "1", "--json", "--rate", "200"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "inferwatch run failed: {stderr}");
    let nvml_lines: Vec<&str> = stderr.lines().filter(|line| line.contains("NVML")).collect();
    assert_eq!(nvml_lines.len(), 1, "expected one NVML line in:\n{stderr}");
    assert!(nvml_lines[0].contains("INFO"), "{}", nvml_lines[0]);
    assert!(nvml_lines[0].contains("NVML not available"), "{}", nvml_lines[0]);

    let stdout = String::from_utf8_lossy(&output.stdout);
    let last = stdout.lines().last().expect("no JSON line on stdout");
    let snapshot: serde_json::Value = serde_json::from_str(last).unwrap();
    assert!(snapshot["inference_count"].as_u64().unwrap() > 0, "{last}");
    assert!(snapshot["gpu_load_per_inference"].is_null(), "{last}");
    assert!(snapshot["foreign_gpu_load"].is_null(), "{last}");
}

#[test]
fn run_with_gpu_nvml_fails_without_driver() {
    if driver_present() {
        return;
    }
    let output = Command::new(env!("CARGO_BIN_EXE_inferwatch"))
        .args(["run", MODEL, "--duration", "1", "--gpu", "nvml"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("error: failed to load NVML from libnvidia-ml.so.1"), "{stderr}");
}
