//! Every shipped model gives the expected output on its real sample input through tract.

mod common;

use common::*;
use inferwatch::session::InstrumentedSession;
use inferwatch::{Recorder, SessionOptions, TractBackend, WindowConfig};
use std::sync::Arc;

fn session(relative: &str, inputs: &inferwatch::TensorMap) -> InstrumentedSession {
    let options = SessionOptions::default().with_shapes_of(inputs);
    let backend = TractBackend::load(&model_path(relative), &options).unwrap();
    InstrumentedSession::new(Arc::new(backend), Recorder::new(WindowConfig::default()))
}

/// Largest difference allowed between tract and the onnxruntime values in expected.json.
const TOLERANCE: f32 = 1e-4;

#[test]
fn classifier_tells_upright_from_upside_down() {
    let expected = expected();
    for case in expected["ppocr-cls"]["cases"].as_array().unwrap() {
        let inputs = case_inputs(&case["inputs"]);
        let session = session("ppocr-cls/model.onnx", &inputs);
        let outputs = session.run(inputs).unwrap();
        let probs = floats(&outputs, case["output"].as_str().unwrap());
        let label = if probs[0] >= probs[1] { 0 } else { 1 };
        assert_eq!(label, case["label"].as_u64().unwrap(), "case {}", case["name"]);
        let diff = max_abs_diff(&probs, &json_floats(&case["probs"]));
        assert!(diff <= TOLERANCE, "case {}: differs from onnxruntime by {diff}", case["name"]);
        assert_eq!(session.recorder().stats(std::time::Duration::from_secs(300)).count, 1);
    }
}

#[test]
fn detector_map_marks_text() {
    let expected = &expected()["ppocr-det"];
    let inputs = case_inputs(&expected["inputs"]);
    let session = session("ppocr-det/model.onnx", &inputs);
    let outputs = session.run(inputs).unwrap();
    let map = floats(&outputs, expected["output"].as_str().unwrap());
    assert_eq!(map.len(), 320 * 320);
    let boxes: Vec<[usize; 4]> = expected["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|line| {
            let b = line["box"].as_array().unwrap();
            std::array::from_fn(|i| b[i].as_u64().unwrap() as usize)
        })
        .collect();
    let inside =
        |x: usize, y: usize| boxes.iter().any(|b| x >= b[0] && x < b[2] && y >= b[1] && y < b[3]);
    let (mut in_sum, mut in_n, mut out_max) = (0.0f64, 0usize, 0.0f32);
    for y in 0..320 {
        for x in 0..320 {
            let value = map[y * 320 + x];
            if inside(x, y) {
                in_sum += f64::from(value);
                in_n += 1;
            } else {
                out_max = out_max.max(value);
            }
        }
    }
    let in_mean = in_sum / in_n as f64;
    let expected_mean = expected["mean_inside_boxes"].as_f64().unwrap();
    assert!(
        (in_mean - expected_mean).abs() < 1e-3,
        "mean inside boxes {in_mean}, onnxruntime {expected_mean}"
    );
    assert!(in_mean > 0.4, "text regions average {in_mean}");
    assert!(out_max < 0.3, "background reaches {out_max}, above the 0.3 binarization threshold");
}

#[test]
fn vad_sequence_separates_speech_from_silence() {
    let expected = &expected()["silero-vad-sequence"];
    let inputs = case_inputs(&expected["inputs"]);
    let session = session("silero-vad-sequence/model.onnx", &inputs);
    let outputs = session.run(inputs).unwrap();
    let probs = floats(&outputs, "speech_probs");
    let reference = json_floats(&expected["probs"]);
    assert_eq!(probs.len(), 123);
    let diff = max_abs_diff(&probs, &reference);
    assert!(diff <= TOLERANCE, "differs from onnxruntime by {diff}");
    // Chunks 0 to 15 are the leading silence; the middle chunk 61 is speech.
    assert!(probs[..16].iter().all(|&p| p < 0.05), "silence scored {:?}", &probs[..16]);
    assert!(probs[61] > 0.9, "speech chunk scored {}", probs[61]);
    let voiced = probs.iter().filter(|&&p| p > 0.5).count();
    assert_eq!(voiced, reference.iter().filter(|&&p| p > 0.5).count());
}

#[test]
fn threads_share_one_plan_with_exact_counts() {
    let inputs = case_inputs(&expected()["ppocr-cls"]["cases"][0]["inputs"]);
    let session = session("ppocr-cls/model.onnx", &inputs);
    let threads = 4;
    let runs = 25;
    std::thread::scope(|scope| {
        for _ in 0..threads {
            let session = session.clone();
            let inputs = inputs.clone();
            scope.spawn(move || {
                for _ in 0..runs {
                    session.run(inputs.clone()).unwrap();
                }
            });
        }
    });
    let stats = session.recorder().stats(std::time::Duration::from_secs(300));
    assert_eq!(stats.count, threads * runs);
    assert_eq!(stats.failed, 0);
}

#[test]
fn free_dimensions_without_shapes_are_named() {
    let path = model_path("ppocr-cls/model.onnx");
    let error = TractBackend::load(&path, &SessionOptions::default()).unwrap_err();
    let text = error.to_string();
    assert!(text.contains("x float32[?,3,?,?] have free dimensions"), "{text}");
    assert!(text.contains("input_shapes"), "{text}");
}
