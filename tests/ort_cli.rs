//! `inferwatch run --backend ort`: the snapshot it prints, its flags, and how it finds
//! `libonnxruntime` from the environment it is started in.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn model() -> PathBuf {
    root().join("models/ppocr-cls/model.onnx")
}

/// Returns the `.venv` that `scripts/deps/10-python.sh` creates, with ONNX Runtime 1.31.1.
fn venv() -> PathBuf {
    let venv = root().join(".venv");
    assert!(venv.is_dir(), "{} is missing: run scripts/deps/10-python.sh", venv.display());
    venv
}

fn venv_library() -> PathBuf {
    let capi = std::fs::read_dir(venv().join("lib"))
        .unwrap()
        .filter_map(Result::ok)
        .map(|entry| entry.path().join("site-packages/onnxruntime/capi"))
        .find(|capi| capi.is_dir())
        .expect("no onnxruntime package in .venv: run scripts/deps/10-python.sh");
    std::fs::read_dir(capi)
        .unwrap()
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .find(|path| {
            path.file_name().unwrap().to_string_lossy().starts_with("libonnxruntime.so.1.")
        })
        .expect("no libonnxruntime.so.1.* in .venv")
}

/// Returns an `inferwatch` command without the variables that point at ONNX Runtime, and with
/// only `/usr/bin` and `/bin` on PATH.
fn inferwatch(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_inferwatch"));
    command
        .current_dir(dir)
        .env_remove("ORT_DYLIB_PATH")
        .env_remove("VIRTUAL_ENV")
        .env_remove("LD_LIBRARY_PATH")
        .env("PATH", "/usr/bin:/bin")
        .env("INFERWATCH_LOG", "debug");
    command
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Returns the last JSON line printed by `inferwatch run --json`.
fn last_snapshot(output: &Output) -> Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line =
        stdout.lines().last().unwrap_or_else(|| panic!("no output; stderr: {}", stderr(output)));
    serde_json::from_str(line).unwrap()
}

#[test]
fn ort_snapshot_has_tract_fields() {
    let mut snapshots = Vec::new();
    for backend in ["tract", "ort"] {
        let output = inferwatch(root())
            .env("ORT_DYLIB_PATH", venv_library())
            .args(["run", "--json", "--duration", "1", "--backend", backend])
            .arg(model())
            .output()
            .unwrap();
        assert!(output.status.success(), "{backend}: {}", stderr(&output));
        snapshots.push(last_snapshot(&output));
    }
    let keys = |snapshot: &Value| snapshot.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&snapshots[0]), keys(&snapshots[1]));
    assert_eq!(snapshots[1]["backend"], "ort");
    assert_eq!(snapshots[1]["failed_inferences"], 0);
    assert!(snapshots[1]["inference_count"].as_u64().unwrap() > 0);
    assert!(snapshots[1]["p50_inference_time"].as_f64().unwrap() > 0.0);
}

#[test]
fn ep_cuda_fails_without_gpu_build() {
    let output = inferwatch(root())
        .env("ORT_DYLIB_PATH", venv_library())
        .args(["run", "--duration", "1", "--backend", "ort", "--ep", "cuda"])
        .arg(model())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let message = stderr(&output);
    assert!(message.contains("failed to register the CUDA execution provider"), "{message}");
    assert!(message.contains("--ep cpu"), "{message}");
}

#[test]
fn missing_library_lists_places_tried() {
    let dir = tempfile::tempdir().unwrap();
    let output = inferwatch(dir.path())
        .args(["run", "--duration", "1", "--backend", "ort"])
        .arg(model())
        .output()
        .unwrap();
    let message = stderr(&output);
    // When the system's python3 has onnxruntime installed, nothing is missing and this test
    // cannot show the error.
    assert!(
        !message.contains("loaded ONNX Runtime"),
        "the system provides ONNX Runtime, so nothing is missing: {message}"
    );
    assert_eq!(output.status.code(), Some(2), "{message}");
    for place in [
        "ONNX Runtime library not found",
        "ORT_DYLIB_PATH (not set)",
        "a .venv in",
        "VIRTUAL_ENV (not set)",
        "python3",
        "libonnxruntime.so on the library search path",
        "pip install onnxruntime==1.31.1",
    ] {
        assert!(message.contains(place), "{place:?} missing from: {message}");
    }
}

#[test]
fn library_found_in_virtual_env() {
    let dir = tempfile::tempdir().unwrap();
    let output = inferwatch(dir.path())
        .env("VIRTUAL_ENV", venv())
        .args(["run", "--duration", "1", "--backend", "ort"])
        .arg(model())
        .output()
        .unwrap();
    let message = stderr(&output);
    assert!(output.status.success(), "{message}");
    let origin = format!("VIRTUAL_ENV {}", venv().display());
    assert!(message.contains(&origin), "{message}");
}

#[test]
fn library_found_in_venv_of_parent_dir() {
    let output = inferwatch(&root().join("models/ppocr-cls"))
        .args(["run", "--duration", "1", "--backend", "ort"])
        .arg(model())
        .output()
        .unwrap();
    let message = stderr(&output);
    assert!(output.status.success(), "{message}");
    assert!(message.contains("the .venv nearest the current directory"), "{message}");
}

#[test]
fn ort_lib_flag_overrides_environment() {
    let output = inferwatch(root())
        .env("ORT_DYLIB_PATH", "/nonexistent/libonnxruntime.so")
        .args(["run", "--duration", "1", "--backend", "ort", "--ort-lib"])
        .arg(venv_library())
        .arg(model())
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
}

#[test]
fn missing_env_library_is_not_replaced_by_search() {
    let output = inferwatch(root())
        .env("ORT_DYLIB_PATH", "/nonexistent/libonnxruntime.so")
        .args(["run", "--duration", "1", "--backend", "ort"])
        .arg(model())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let message = stderr(&output);
    assert!(
        message.contains("/nonexistent/libonnxruntime.so (ORT_DYLIB_PATH) does not exist"),
        "{message}"
    );
}
