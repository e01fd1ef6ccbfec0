//! The ONNX Runtime backend on the shipped models, compared with tract and with the outputs
//! recorded in `models/expected.json`, plus its pool under several threads.
//!
//! These tests load `libonnxruntime` the way the library does: `ORT_DYLIB_PATH` (which
//! `scripts/env.sh` sets), else the `.venv` that `scripts/deps/10-python.sh` creates. Without
//! either, they fail with the library's message on how to install it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use inferwatch::session::{Backend, OrtBackend, OrtOptions, load_backend};
use inferwatch::{
    BackendKind, InstrumentedSession, Monitor, OrtLibraryError, Recorder, SessionError,
    SessionOptions, Tensor, TensorMap, WindowConfig, npy,
};
use serde_json::Value;

/// The largest difference allowed between a tract output and an ONNX Runtime output, or
/// between either and `expected.json`.
///
/// These tests print the differences they measure with `--nocapture`. Between tract 0.23.9
/// and ONNX Runtime 1.31.1 (2-core x86-64, 2026-12-04) the maxima were: ppocr-cls 1.6e-18,
/// ppocr-det 3.6e-5 (one pixel of the map), silero-vad 3.8e-6 (on `stateN`, and 6.0e-8 on
/// the probability), the 123-chunk silero-vad stream 1.3e-6, and silero-vad-sequence 3.4e-5
/// (on `cn`, and 1.3e-6 on the probabilities).
const TOLERANCE: f32 = 1e-4;

fn models() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models")
}

fn expected() -> Value {
    let path = models().join("expected.json");
    let text = std::fs::read_to_string(&path).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn read_input(relative: &str) -> Tensor {
    npy::read_npy(models().join(relative)).unwrap()
}

/// Reads the `inputs` object of an `expected.json` case (input name to `.npy` path).
fn case_inputs(case: &Value) -> TensorMap {
    let inputs = case["inputs"].as_object().unwrap();
    inputs.iter().map(|(name, path)| (name.as_str(), read_input(path.as_str().unwrap()))).collect()
}

fn load(kind: BackendKind, model: &str, inputs: &TensorMap) -> InstrumentedSession {
    let options =
        SessionOptions { backend: kind, ..SessionOptions::default() }.with_shapes_of(inputs);
    let path = models().join(model);
    let backend = load_backend(&path, &options)
        .unwrap_or_else(|e| panic!("the {kind} backend failed to load {}: {e}", path.display()));
    InstrumentedSession::new(backend, Recorder::new(WindowConfig::default()))
}

/// Runs `model` on both backends and returns the outputs of tract, then of ONNX Runtime.
fn run_both(model: &str, inputs: &TensorMap) -> (TensorMap, TensorMap) {
    let tract = load(BackendKind::Tract, model, inputs).run(inputs.clone()).unwrap();
    let ort = load(BackendKind::Ort, model, inputs).run(inputs.clone()).unwrap();
    (tract, ort)
}

fn floats(tensor: &Tensor) -> &ndarray::ArrayD<f32> {
    tensor.as_f32().unwrap_or_else(|| panic!("expected float32, got {}", tensor.dtype()))
}

/// Returns the largest absolute difference between two float32 tensors of one shape.
fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.shape(), b.shape());
    floats(a).iter().zip(floats(b)).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// Checks that both backends return the same outputs, by name, within [`TOLERANCE`]; returns
/// the largest difference.
fn assert_same_outputs(model: &str, tract: &TensorMap, ort: &TensorMap) -> f32 {
    let tract_names: Vec<&str> = tract.iter().map(|(name, _)| name).collect();
    let ort_names: Vec<&str> = ort.iter().map(|(name, _)| name).collect();
    assert_eq!(tract_names, ort_names, "{model}: output names differ");
    let mut largest = 0.0f32;
    for (name, tract_output) in tract.iter() {
        let diff = max_abs_diff(tract_output, ort.get(name).unwrap());
        eprintln!("{model} {name}: max |tract - ort| = {diff:e}");
        assert!(diff <= TOLERANCE, "{model} {name}: tract and ort differ by {diff}");
        largest = largest.max(diff);
    }
    largest
}

fn assert_close(actual: f32, expected: f64, what: &str) {
    let diff = (f64::from(actual) - expected).abs();
    assert!(diff <= f64::from(TOLERANCE), "{what}: got {actual}, expected {expected}");
}

#[test]
fn ppocr_cls_matches_tract_and_expected() {
    let expected = expected();
    for case in expected["ppocr-cls"]["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let inputs = case_inputs(case);
        let (tract, ort) = run_both("ppocr-cls/model.onnx", &inputs);
        assert_same_outputs(&format!("ppocr-cls {name}"), &tract, &ort);

        let output = case["output"].as_str().unwrap();
        for (backend, outputs) in [("tract", &tract), ("ort", &ort)] {
            let probs = floats(outputs.get(output).unwrap());
            assert_eq!(probs.shape(), [1, 2]);
            for (index, want) in case["probs"].as_array().unwrap().iter().enumerate() {
                let what = format!("{backend} {name} probability {index}");
                assert_close(probs[[0, index]], want.as_f64().unwrap(), &what);
            }
            let label = if probs[[0, 1]] > probs[[0, 0]] { 1 } else { 0 };
            assert_eq!(label, case["label"].as_u64().unwrap(), "{backend} {name} label");
        }
    }
}

#[test]
fn ppocr_det_matches_tract_and_expected() {
    let expected = &expected()["ppocr-det"];
    let inputs = case_inputs(expected);
    let (tract, ort) = run_both("ppocr-det/model.onnx", &inputs);
    assert_same_outputs("ppocr-det", &tract, &ort);

    let output = expected["output"].as_str().unwrap();
    let threshold = expected["threshold"].as_f64().unwrap() as f32;
    for (backend, outputs) in [("tract", &tract), ("ort", &ort)] {
        let map = floats(outputs.get(output).unwrap());
        assert_eq!(map.shape(), [1, 1, 320, 320]);
        for line in expected["lines"].as_array().unwrap() {
            let text = line["text"].as_str().unwrap();
            let bounds: Vec<usize> = line["box"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as usize)
                .collect();
            let (x0, y0, x1, y1) = (bounds[0], bounds[1], bounds[2], bounds[3]);
            let mut sum = 0.0f64;
            let mut above = 0usize;
            for y in y0..y1 {
                for x in x0..x1 {
                    let p = map[[0, 0, y, x]];
                    sum += f64::from(p);
                    above += usize::from(p > threshold);
                }
            }
            let pixels = ((x1 - x0) * (y1 - y0)) as f64;
            let mean = (sum / pixels) as f32;
            assert_close(mean, line["mean"].as_f64().unwrap(), &format!("{backend} {text} mean"));
            let fraction = (above as f64 / pixels) as f32;
            let want = line["fraction_above_threshold"].as_f64().unwrap();
            // One pixel of a box is 1/5157 or more of it; a pixel near the threshold may
            // land on either side, so allow two.
            let diff = (f64::from(fraction) - want).abs();
            assert!(diff * pixels <= 2.0, "{backend} {text}: fraction {fraction}, want {want}");
        }
    }
}

#[test]
fn silero_vad_matches_tract_and_expected() {
    let expected = &expected()["silero-vad"];
    for case in expected["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let inputs = case_inputs(case);
        let (tract, ort) = run_both("silero-vad/model.onnx", &inputs);
        assert_same_outputs(&format!("silero-vad {name}"), &tract, &ort);
        for (backend, outputs) in [("tract", &tract), ("ort", &ort)] {
            let prob = floats(outputs.get("output").unwrap());
            assert_eq!(prob.shape(), [1, 1]);
            let want = case["prob"].as_f64().unwrap();
            assert_close(prob[[0, 0]], want, &format!("{backend} {name} probability"));
            assert_eq!(outputs.get("stateN").unwrap().shape(), [2, 1, 128]);
        }
    }
}

/// Runs the one-chunk model over the whole recording, carrying the state and the 64-sample
/// context from call to call, and returns the probability of each chunk.
fn stream(session: &InstrumentedSession, audio: &ndarray::ArrayD<f32>) -> Vec<f32> {
    const CHUNK: usize = 512;
    const CONTEXT: usize = 64;
    let samples = audio.as_slice().unwrap();
    let mut state = Tensor::F32(ndarray::ArrayD::zeros(vec![2, 1, 128]));
    let mut context = vec![0.0f32; CONTEXT];
    let mut probs = Vec::new();
    for chunk in samples.chunks_exact(CHUNK) {
        let framed: Vec<f32> = context.iter().chain(chunk).copied().collect();
        let input = ndarray::ArrayD::from_shape_vec(vec![1, CONTEXT + CHUNK], framed).unwrap();
        let inputs: TensorMap =
            [("input", Tensor::F32(input)), ("state", state.clone())].into_iter().collect();
        let mut outputs = session.run(inputs).unwrap();
        probs.push(floats(outputs.get("output").unwrap())[[0, 0]]);
        state = outputs.remove("stateN").unwrap();
        context.copy_from_slice(&chunk[CHUNK - CONTEXT..]);
    }
    probs
}

#[test]
fn silero_vad_stream_matches_tract_and_expected() {
    let expected = &expected()["silero-vad"]["stream"];
    let audio = read_input(expected["audio"].as_str().unwrap());
    let audio = floats(&audio);
    let first: TensorMap = [
        ("input", read_input("silero-vad/silence.npy")),
        ("state", read_input("silero-vad/state.npy")),
    ]
    .into_iter()
    .collect();
    let tract = stream(&load(BackendKind::Tract, "silero-vad/model.onnx", &first), audio);
    let ort = stream(&load(BackendKind::Ort, "silero-vad/model.onnx", &first), audio);
    let want: Vec<f64> =
        expected["probs"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    assert_eq!(tract.len(), want.len());
    assert_eq!(ort.len(), want.len());
    let diff = tract.iter().zip(&ort).map(|(t, o)| (t - o).abs()).fold(0.0, f32::max);
    eprintln!("silero-vad stream: max |tract - ort| = {diff:e}");
    assert!(diff <= TOLERANCE, "tract and ort streams differ by {diff}");
    for (index, want) in want.iter().enumerate() {
        assert_close(tract[index], *want, &format!("tract chunk {index}"));
        assert_close(ort[index], *want, &format!("ort chunk {index}"));
    }
    let above = ort.iter().filter(|&&p| p > 0.5).count() as u64;
    assert_eq!(above, expected["chunks_above_0.5"].as_u64().unwrap());
}

#[test]
fn silero_vad_sequence_matches_tract_and_expected() {
    let expected = &expected()["silero-vad-sequence"];
    let inputs = case_inputs(expected);
    let (tract, ort) = run_both("silero-vad-sequence/model.onnx", &inputs);
    assert_same_outputs("silero-vad-sequence", &tract, &ort);
    let want = expected["probs"].as_array().unwrap();
    for (backend, outputs) in [("tract", &tract), ("ort", &ort)] {
        let probs = floats(outputs.get("speech_probs").unwrap());
        assert_eq!(probs.shape(), [want.len()]);
        for (index, want) in want.iter().enumerate() {
            let what = format!("{backend} chunk {index}");
            assert_close(probs[index], want.as_f64().unwrap(), &what);
        }
        assert_eq!(outputs.get("hn").unwrap().shape(), [1, 1, 128]);
        assert_eq!(outputs.get("cn").unwrap().shape(), [1, 1, 128]);
    }
}

#[test]
fn ort_reports_declared_inputs_like_tract() {
    for model in ["ppocr-cls", "ppocr-det", "silero-vad", "silero-vad-sequence"] {
        let path = models().join(model).join("model.onnx");
        let tract = inferwatch::TractBackend::declared_inputs(&path).unwrap();
        let options = SessionOptions { backend: BackendKind::Ort, ..SessionOptions::default() };
        let ort = load_backend(&path, &options).unwrap();
        assert_eq!(ort.inputs(), tract.as_slice(), "{model}");
    }
}

#[test]
fn pool_counts_every_run_from_four_threads() {
    const THREADS: usize = 4;
    const RUNS: usize = 50;
    let inputs: TensorMap = [
        ("input", read_input("silero-vad/speech.npy")),
        ("state", read_input("silero-vad/speech_state.npy")),
    ]
    .into_iter()
    .collect();
    let path = models().join("silero-vad/model.onnx");
    // Fewer sessions than threads, so that threads also wait for a session to come back.
    let options = SessionOptions {
        backend: BackendKind::Ort,
        ort: OrtOptions::default().pool_size(2),
        ..SessionOptions::default()
    };
    let backend = Arc::new(OrtBackend::load(&path, &options).unwrap());
    // A manual clock does not move, so every record lands in one slot. No record can then
    // be dropped by a slot reset, and the count must be exact.
    let (clock, _hand) = inferwatch::Clock::manual();
    let monitor = Monitor::builder().clock(clock).without_proc_cpu().build().unwrap();
    let session = monitor.instrument(backend.clone() as Arc<dyn Backend>);
    let reference = session.run(inputs.clone()).unwrap();

    std::thread::scope(|scope| {
        for _ in 0..THREADS {
            scope.spawn(|| {
                for _ in 0..RUNS {
                    let outputs = session.run(inputs.clone()).unwrap();
                    assert_eq!(outputs, reference);
                }
            });
        }
    });

    let stats = monitor.stats();
    assert_eq!(stats.count, (THREADS * RUNS + 1) as u64);
    assert_eq!(stats.failed, 0);
    assert_eq!(stats.dropped, 0);
    assert_eq!(backend.sessions(), 2);
    assert_eq!(backend.max_sessions(), 2);
}

#[test]
fn default_pool_stays_within_cpus() {
    const THREADS: usize = 4;
    let inputs: TensorMap = [
        ("input", read_input("silero-vad/speech.npy")),
        ("state", read_input("silero-vad/speech_state.npy")),
    ]
    .into_iter()
    .collect();
    let path = models().join("silero-vad/model.onnx");
    let options = SessionOptions { backend: BackendKind::Ort, ..SessionOptions::default() };
    let backend = Arc::new(OrtBackend::load(&path, &options).unwrap());
    assert_eq!(backend.sessions(), 1);
    let cpus = std::thread::available_parallelism().unwrap().get();
    assert_eq!(backend.max_sessions(), cpus);

    let session = InstrumentedSession::new(
        backend.clone() as Arc<dyn Backend>,
        Recorder::new(WindowConfig::default()),
    );
    std::thread::scope(|scope| {
        for _ in 0..THREADS {
            scope.spawn(|| {
                for _ in 0..20 {
                    session.run(inputs.clone()).unwrap();
                }
            });
        }
    });
    // How far the pool grew depends on how the runs overlapped, but never past its maximum.
    assert!(backend.sessions() >= 1);
    assert!(backend.sessions() <= cpus.min(THREADS), "{} sessions", backend.sessions());
}

/// Returns the path of the C library this process runs on, as the loader mapped it.
fn libc_path() -> PathBuf {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    maps.lines()
        .filter_map(|line| line.split_whitespace().nth(5))
        .find(|path| {
            let name = Path::new(path).file_name().unwrap_or_default().to_string_lossy();
            name.starts_with("libc.so") || name.starts_with("libc-")
        })
        .map(PathBuf::from)
        .expect("no libc in /proc/self/maps")
}

#[test]
fn second_library_is_rejected_once_one_is_loaded() {
    let path = models().join("silero-vad/model.onnx");
    let first = SessionOptions { backend: BackendKind::Ort, ..SessionOptions::default() };
    let loaded = OrtBackend::load(&path, &first).unwrap();
    assert!(loaded.library_version().starts_with("1.31."), "{}", loaded.library_version());

    // Another name for the loaded file is the same library.
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("libonnxruntime.so");
    std::os::unix::fs::symlink(loaded.library_path(), &link).unwrap();
    let same = SessionOptions { ort: OrtOptions::default().library(&link), ..first.clone() };
    assert!(OrtBackend::load(&path, &same).is_ok());

    let other = SessionOptions { ort: OrtOptions::default().library(libc_path()), ..first };
    let error = OrtBackend::load(&path, &other).unwrap_err();
    let SessionError::OrtLibrary(OrtLibraryError::AlreadyLoaded { loaded: in_use, .. }) = &error
    else {
        panic!("expected AlreadyLoaded, got {error}");
    };
    assert_eq!(in_use, loaded.library_path());
}
