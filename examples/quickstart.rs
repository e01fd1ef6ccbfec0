//! Runs the shipped text-direction classifier 200 times through an instrumented tract
//! session and prints the window's statistics.
//!
//! ```sh
//! cargo run --example quickstart
//! ```

use std::path::Path;

use inferwatch::{Monitor, SessionOptions, TensorMap, npy};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/ppocr-cls");
    let input = npy::read_npy(models.join("x.npy"))?;
    let inputs: TensorMap = [("x", input)].into_iter().collect();

    let monitor = Monitor::builder().build()?;
    let options = SessionOptions::default().with_shapes_of(&inputs);
    let session = monitor.session(models.join("model.onnx"), &options)?;

    let mut upright = 0;
    for _ in 0..200 {
        let outputs = session.run(inputs.clone())?;
        let (_, probs) = outputs.iter().next().ok_or("the model returned no output")?;
        let probs = probs.as_f32().ok_or("the output is not float32")?;
        if probs[[0, 0]] > probs[[0, 1]] {
            upright += 1;
        }
    }

    let snapshot = monitor.snapshot();
    println!("{upright} of 200 runs read the line as upright");
    println!("{}", serde_json::to_string_pretty(&snapshot)?);
    Ok(())
}
