//! Helpers shared by the integration tests.

#![allow(dead_code, reason = "each test file uses a different subset")]

use std::path::PathBuf;

use inferwatch::{Tensor, TensorMap, npy};

/// Returns the path of `relative` inside the repository's `models/` folder.
pub fn model_path(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models").join(relative)
}

/// Returns `models/expected.json`, the outputs onnxruntime computed for the sample inputs.
pub fn expected() -> serde_json::Value {
    let text = std::fs::read_to_string(model_path("expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Reads the inputs of an `expected.json` case (`{"name": "file.npy", ...}`).
pub fn case_inputs(inputs: &serde_json::Value) -> TensorMap {
    inputs
        .as_object()
        .unwrap()
        .iter()
        .map(|(name, file)| {
            (name.clone(), npy::read_npy(model_path(file.as_str().unwrap())).unwrap())
        })
        .collect()
}

/// Returns the float32 values of `name` in `outputs`.
pub fn floats(outputs: &TensorMap, name: &str) -> Vec<f32> {
    match outputs.get(name) {
        Some(Tensor::F32(array)) => array.iter().copied().collect(),
        other => panic!("output {name} is {other:?}, not float32"),
    }
}

/// Returns the float numbers of a JSON array.
pub fn json_floats(value: &serde_json::Value) -> Vec<f32> {
    value.as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect()
}

/// Returns the largest absolute difference between two equally long slices.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "length differs");
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}
