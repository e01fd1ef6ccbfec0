//! What the instrumentation adds to an inference: the shipped classifier
//! (`models/ppocr-cls/model.onnx`, input `x.npy` of 1×3×48×192) run bare through its
//! backend and wrapped in an `InstrumentedSession`, with tract and, when `libonnxruntime`
//! loads, ONNX Runtime. Results and the machine are in `benches/README.md`.
//!
//! The difference between two runs of a 2 ms model is smaller than the run-to-run noise of
//! a busy machine. So the `session/wrapper` group also times the wrapper around a backend
//! that returns at once, which measures the overhead itself, to divide by the model's time.
//! Copying the input tensors happens outside the timed part in every bench.

use std::sync::Arc;
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use inferwatch::session::{check_inputs, load_backend};
use inferwatch::{
    Backend, BackendKind, DType, InstrumentedSession, Recorder, SessionError, SessionOptions,
    Tensor, TensorInfo, TensorMap, TractBackend, WindowConfig, npy,
};

const MODEL: &str = "models/ppocr-cls/model.onnx";
const INPUT: &str = "models/ppocr-cls/x.npy";

fn inputs() -> TensorMap {
    let tensor = npy::read_npy(INPUT).expect("models/ppocr-cls/x.npy is readable");
    [("x", tensor)].into_iter().collect()
}

/// Benches bare and wrapped runs of the classifier on `kind`, or prints why it cannot.
fn bare_and_wrapped(c: &mut Criterion, kind: BackendKind) {
    let inputs = inputs();
    let options =
        SessionOptions { backend: kind, ..SessionOptions::default() }.with_shapes_of(&inputs);
    let backend = match load_backend(MODEL, &options) {
        Ok(backend) => backend,
        Err(error) => {
            println!("skipping the {kind} backend: {error}");
            return;
        }
    };
    let ordered = check_inputs(backend.inputs(), inputs.clone()).expect("x.npy fits the model");
    let session = InstrumentedSession::new(backend.clone(), Recorder::new(WindowConfig::default()));

    let mut group = c.benchmark_group(format!("session/{kind}"));
    group.throughput(Throughput::Elements(1));
    group.bench_function("bare Backend::run", |b| {
        b.iter_batched(
            || ordered.clone(),
            |batch| backend.run(batch).expect("inference succeeds"),
            BatchSize::SmallInput,
        )
    });
    group.bench_function("InstrumentedSession::run", |b| {
        b.iter_batched(
            || inputs.clone(),
            |batch| session.run(batch).expect("inference succeeds"),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

fn tract(c: &mut Criterion) {
    bare_and_wrapped(c, BackendKind::Tract);
}

fn ort(c: &mut Criterion) {
    bare_and_wrapped(c, BackendKind::Ort);
}

/// A backend with the classifier's input and output that returns a fixed output at once.
struct Instant {
    inputs: Vec<TensorInfo>,
    outputs: Vec<TensorInfo>,
    output: Tensor,
}

impl Backend for Instant {
    fn name(&self) -> &'static str {
        "instant"
    }

    fn inputs(&self) -> &[TensorInfo] {
        &self.inputs
    }

    fn outputs(&self) -> &[TensorInfo] {
        &self.outputs
    }

    fn run(&self, _inputs: Vec<Tensor>) -> Result<Vec<Tensor>, SessionError> {
        Ok(vec![self.output.clone()])
    }
}

fn wrapper(c: &mut Criterion) {
    // The declared inputs, with free dimensions, and the smallest input they accept: freeing
    // a 110 KiB input tensor costs more than the wrapper itself and would hide it.
    let declared =
        TractBackend::declared_inputs(std::path::Path::new(MODEL)).expect("the classifier parses");
    let small: TensorMap = declared
        .iter()
        .map(|info| (info.name.clone(), Tensor::generated(info.dtype, &info.example_shape())))
        .collect();
    let instant: Arc<dyn Backend> = Arc::new(Instant {
        inputs: declared.clone(),
        outputs: vec![TensorInfo { name: "output".to_owned(), dtype: DType::F32, shape: None }],
        output: Tensor::generated(DType::F32, &[1, 2]),
    });
    let ordered = check_inputs(instant.inputs(), small.clone()).expect("the small input fits");
    let session = InstrumentedSession::new(instant.clone(), Recorder::new(WindowConfig::default()));

    let mut group = c.benchmark_group("session/wrapper");
    group.throughput(Throughput::Elements(1));
    group.bench_function("bare Backend::run, instant backend", |b| {
        b.iter_batched(|| ordered.clone(), |batch| instant.run(batch), BatchSize::SmallInput)
    });
    group.bench_function("InstrumentedSession::run, instant backend", |b| {
        b.iter_batched(|| small.clone(), |batch| session.run(batch), BatchSize::SmallInput)
    });
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(8))
        .sample_size(50)
}

criterion_group! { name = benches; config = config(); targets = tract, ort, wrapper }
criterion_main!(benches);
