//! One inference on each shipped model, tract against ONNX Runtime (one intra-op thread) in
//! the same criterion group. Results and the machine they come from: `benches/README.md`.
//!
//! ONNX Runtime is found as by the library: run `source scripts/env.sh` first, or have a
//! `.venv` with `onnxruntime==1.31.1` in this folder.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use inferwatch::session::{Backend, check_inputs, load_backend};
use inferwatch::{BackendKind, SessionOptions, TensorMap, npy};

/// Each model with its sample inputs, by input name (see `models/README.md`).
const MODELS: [(&str, &[(&str, &str)]); 4] = [
    ("ppocr-cls", &[("x", "x.npy")]),
    ("ppocr-det", &[("x", "x.npy")]),
    ("silero-vad", &[("input", "speech.npy"), ("state", "speech_state.npy")]),
    ("silero-vad-sequence", &[("input", "input.npy"), ("h", "h.npy"), ("c", "c.npy")]),
];

fn load(kind: BackendKind, dir: &Path, inputs: &TensorMap) -> Arc<dyn Backend> {
    let options =
        SessionOptions { backend: kind, ..SessionOptions::default() }.with_shapes_of(inputs);
    let path = dir.join("model.onnx");
    load_backend(&path, &options)
        .unwrap_or_else(|e| panic!("the {kind} backend failed to load {}: {e}", path.display()))
}

fn backends(c: &mut Criterion) {
    let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
    for (model, files) in MODELS {
        let dir = models.join(model);
        let inputs: TensorMap = files
            .iter()
            .map(|(name, file)| (*name, npy::read_npy(dir.join(file)).unwrap()))
            .collect();
        let mut group = c.benchmark_group(model);
        group.throughput(Throughput::Elements(1));
        for kind in [BackendKind::Tract, BackendKind::Ort] {
            let backend = load(kind, &dir, &inputs);
            let ordered = check_inputs(backend.inputs(), inputs.clone()).unwrap();
            group.bench_function(kind.as_str(), |b| {
                b.iter_batched(
                    || ordered.clone(),
                    |ordered| backend.run(ordered).unwrap(),
                    BatchSize::SmallInput,
                )
            });
        }
        group.finish();
    }
}

criterion_group! {
    name = benches;
    // Short runs: the whole suite takes a few minutes on two cores.
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    targets = backends
}
criterion_main!(benches);
