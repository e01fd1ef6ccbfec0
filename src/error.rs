//! Errors, one type per family of operations.
//!
//! Policy: every fallible operation returns the error type of its family ([`SessionError`]
//! for loading and running models, [`NpyError`] for tensor files, [`LoadError`] for load
//! sources, [`ConfigError`] for configuration, [`OtelError`] for the OpenTelemetry
//! exporter, [`BaselineError`] and [`PlotError`] for benchmarks). Messages are lowercase, have no final period, name the value that failed and
//! where it came from, and end with the usual fix when there is one. Nothing in the library panics on input; a panic is a bug.

use std::path::PathBuf;

/// An error while loading a model, checking its inputs, or running it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The model file does not exist or cannot be read.
    #[error("failed to read model {path}: {source}")]
    ReadModel {
        /// The model path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not an ONNX model (not a valid protobuf, or truncated).
    #[error(
        "{path} is not a valid ONNX model ({detail}): check that the file is complete and was \
         exported as .onnx"
    )]
    NotOnnx {
        /// The model path.
        path: PathBuf,
        /// The decoder's message.
        detail: String,
    },
    /// The model uses an operator the backend does not implement.
    #[error(
        "model {path} uses operator {op} (node {node:?}) that the {backend} backend does not \
         support: {}",
        other_backend_hint(backend)
    )]
    UnsupportedOperator {
        /// The model path.
        path: PathBuf,
        /// The backend name.
        backend: &'static str,
        /// The ONNX node name.
        node: String,
        /// The operator type.
        op: String,
    },
    /// The backend failed to load, type-check or optimize the model.
    #[error("failed to load model {path} with the {backend} backend: {detail}")]
    Load {
        /// The model path.
        path: PathBuf,
        /// The backend name.
        backend: &'static str,
        /// The backend's error, with its causes.
        detail: String,
    },
    /// An input was given that the model does not have.
    #[error("the model has no input named {name:?}; its inputs are {expected}")]
    UnknownInput {
        /// The given name.
        name: String,
        /// The model's input names, formatted.
        expected: String,
    },
    /// An input the model needs was not given.
    #[error("missing input {name:?} ({expected}): pass it with --input {name}=FILE.npy")]
    MissingInput {
        /// The input name.
        name: String,
        /// The type and shape the model expects, formatted.
        expected: String,
    },
    /// An input has the wrong element type.
    #[error("input {name:?} has element type {actual} but the model expects {expected}")]
    WrongType {
        /// The input name.
        name: String,
        /// The element type the model expects.
        expected: String,
        /// The element type given.
        actual: String,
    },
    /// An input has the wrong shape.
    #[error("input {name:?} has shape {actual} but the model expects {expected}")]
    WrongShape {
        /// The input name.
        name: String,
        /// The shape the model expects, with `?` for free dimensions.
        expected: String,
        /// The shape given.
        actual: String,
    },
    /// The backend failed while running the model.
    #[error("inference failed in the {backend} backend: {detail}")]
    Run {
        /// The backend name.
        backend: &'static str,
        /// The backend's error, with its causes.
        detail: String,
    },
    /// The backend's runtime library could not be found or loaded.
    #[error("{0}")]
    Runtime(String),
    /// The ONNX Runtime library could not be found, loaded or started.
    #[error(transparent)]
    OrtLibrary(#[from] OrtLibraryError),
    /// An execution provider (such as CUDA) was requested and failed to register, so the
    /// model would have run elsewhere than requested.
    #[error(
        "failed to register the {provider} execution provider for model {path}: {detail}: \
         install onnxruntime-gpu==1.31.1 with its CUDA and cuDNN libraries, or use --ep cpu"
    )]
    ExecutionProvider {
        /// The model path.
        path: PathBuf,
        /// The execution provider, such as `CUDA`.
        provider: &'static str,
        /// ONNX Runtime's error.
        detail: String,
    },
    /// The backend is not compiled into this build.
    #[error("the {0} backend is not part of this build: rebuild with --features {0}")]
    BackendUnavailable(&'static str),
}

/// Returns the usual fix for an operator that `backend` lacks: the other backend.
fn other_backend_hint(backend: &str) -> &'static str {
    match backend {
        "tract" => "try --backend ort",
        _ => {
            "try --backend tract, or export the model with an opset and types ONNX Runtime supports"
        }
    }
}

/// A failure to find, load or start the ONNX Runtime shared library.
///
/// The `origin` fields name the source of the path: the configured path (`--ort-lib` or
/// `OrtOptions::library`), `ORT_DYLIB_PATH`, a Python environment, or the system search path.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OrtLibraryError {
    /// No library was found in any of the places searched.
    #[error(
        "ONNX Runtime library not found; tried {}: run `pip install onnxruntime==1.31.1` or set \
         ORT_DYLIB_PATH to the path of libonnxruntime.so",
        tried.join("; ")
    )]
    NotFound {
        /// Each place searched and what was found there.
        tried: Vec<String>,
    },
    /// The path does not exist.
    #[error(
        "ONNX Runtime library {path} ({origin}) does not exist: give the path of \
         onnxruntime/capi/libonnxruntime.so.1.31.1 from `pip install onnxruntime==1.31.1`"
    )]
    Missing {
        /// The path given.
        path: PathBuf,
        /// The source of the path, such as `ORT_DYLIB_PATH`.
        origin: String,
    },
    /// The file is not an ELF shared library at all (a text file, say).
    #[error(
        "{path} ({origin}) is not a shared library: give the path of \
         onnxruntime/capi/libonnxruntime.so.1.31.1 from `pip install onnxruntime==1.31.1`"
    )]
    NotSharedLibrary {
        /// The path given.
        path: PathBuf,
        /// The source of the path, such as `ORT_DYLIB_PATH`.
        origin: String,
    },
    /// The dynamic loader failed to open the library.
    #[error(
        "failed to load {path} ({origin}): {detail}: set ORT_DYLIB_PATH to a \
         libonnxruntime.so.1.31.1 that loads, or `pip install onnxruntime==1.31.1`"
    )]
    Open {
        /// The path given.
        path: PathBuf,
        /// The source of the path, such as `ORT_DYLIB_PATH`.
        origin: String,
        /// The loader's message.
        detail: String,
    },
    /// The library loads but is not ONNX Runtime: it does not export `OrtGetApiBase`.
    #[error(
        "{path} ({origin}) is a shared library but not ONNX Runtime (it does not export \
         OrtGetApiBase): give the path of onnxruntime/capi/libonnxruntime.so.1.31.1"
    )]
    NotOnnxRuntime {
        /// The path given.
        path: PathBuf,
        /// The source of the path, such as `ORT_DYLIB_PATH`.
        origin: String,
    },
    /// The library is an ONNX Runtime release older than the one this build calls.
    #[error(
        "{path} ({origin}) is ONNX Runtime {found}, but inferwatch needs {required} or newer: \
         run `pip install onnxruntime==1.31.1` or set ORT_DYLIB_PATH to a newer libonnxruntime"
    )]
    TooOld {
        /// The path given.
        path: PathBuf,
        /// The source of the path, such as `ORT_DYLIB_PATH`.
        origin: String,
        /// The version the library reports, such as `1.20.1`.
        found: String,
        /// The oldest version accepted, such as `1.31`.
        required: String,
    },
    /// A different library is already loaded in this process; ONNX Runtime cannot be unloaded.
    #[error(
        "ONNX Runtime is already loaded from {loaded} in this process, so {requested} cannot be \
         loaded too: use one ONNX Runtime library per process"
    )]
    AlreadyLoaded {
        /// The library in use.
        loaded: PathBuf,
        /// The library requested.
        requested: PathBuf,
    },
    /// The library loaded but its environment failed to start.
    #[error("failed to start ONNX Runtime from {path}: {detail}")]
    Start {
        /// The library path.
        path: PathBuf,
        /// ONNX Runtime's message.
        detail: String,
    },
}

/// An error while reading or writing a `.npy` tensor file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NpyError {
    /// The file cannot be read or written.
    #[error("failed to access {path}: {source}")]
    Io {
        /// The file path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not in the `.npy` format or uses a feature that is not supported.
    #[error("{path} is not a readable .npy file: {detail}")]
    Format {
        /// The file path.
        path: PathBuf,
        /// The problem found.
        detail: String,
    },
}

/// An error from a load source.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// A file the source reads cannot be read.
    #[error("failed to read {path}: {source}")]
    ReadFile {
        /// The file path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A load file does not hold one number.
    #[error("{path} holds {text:?}, not a number: write one decimal number such as 42.5")]
    NotANumber {
        /// The file path.
        path: PathBuf,
        /// The start of the file's text.
        text: String,
    },
    /// A `/proc` file does not have the expected layout.
    #[error("failed to parse the {what} of {path}")]
    Parse {
        /// The file path.
        path: PathBuf,
        /// The part of the file that was expected.
        what: &'static str,
    },
    /// A driver library (such as NVML) failed.
    #[error("{0}")]
    Driver(String),
    /// The NVML library (`libnvidia-ml.so.1`) cannot be loaded or initialized.
    #[error(
        "failed to load NVML from {library}: {detail}: install the NVIDIA driver, or pass \
         --gpu off to run without GPU metrics"
    )]
    NvmlUnavailable {
        /// The library name or path that was opened.
        library: String,
        /// The message of the loader or of `nvmlInit`.
        detail: String,
    },
    /// An NVML call failed on a GPU.
    #[error("NVML call {call} failed on GPU {gpu}: {detail}")]
    Nvml {
        /// The NVML function.
        call: &'static str,
        /// The GPU index or UUID.
        gpu: String,
        /// The NVML error.
        detail: String,
    },
    /// A GPU given by index or UUID does not exist.
    #[error("GPU {gpu} not found: NVML sees {count} GPU(s); list them with nvidia-smi -L")]
    GpuNotFound {
        /// The index or UUID given.
        gpu: String,
        /// The number of GPUs NVML reports.
        count: u32,
    },
}

/// An error in configuration: a file, a flag or an environment variable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A value is invalid.
    #[error("invalid {key} {value:?} in {origin}: {expected}")]
    Invalid {
        /// The origin of the value: a file path, `--flag` or a variable name.
        origin: String,
        /// The key or flag.
        key: String,
        /// The value given.
        value: String,
        /// The form expected.
        expected: String,
    },
    /// The configuration file cannot be read or parsed.
    #[error("failed to read config {path}: {detail}")]
    File {
        /// The file path.
        path: PathBuf,
        /// The reader's or parser's message.
        detail: String,
    },
}

/// An error while starting, flushing or stopping the OpenTelemetry exporter.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OtelError {
    /// A setting, or an `OTEL_*` variable, is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The OTLP exporter could not be built.
    #[error("failed to build the OTLP {protocol} exporter for {endpoint}: {detail}")]
    Build {
        /// `grpc` or `http/protobuf`.
        protocol: &'static str,
        /// The collector endpoint.
        endpoint: String,
        /// The exporter's message.
        detail: String,
    },
    /// The Tokio runtime that drives the gRPC exporter could not start.
    #[error("failed to start the Tokio runtime of the OTLP gRPC exporter: {0}")]
    Runtime(std::io::Error),
    /// A flush or the final export at shutdown failed.
    #[error("failed to {action} OpenTelemetry metrics to {endpoint}: {detail}")]
    Export {
        /// `flush` or `shut down`.
        action: &'static str,
        /// The collector endpoint.
        endpoint: String,
        /// The SDK's message.
        detail: String,
    },
}

/// An error while reading, writing or checking a benchmark baseline file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BaselineError {
    /// The file cannot be read or written.
    #[error("failed to access baseline {path}: {source}: record one with --save-baseline")]
    Io {
        /// The file path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not JSON, or not a baseline.
    #[error("{path} is not a valid baseline file ({detail}): record it again with --save-baseline")]
    Format {
        /// The file path.
        path: PathBuf,
        /// The parser's message.
        detail: String,
    },
    /// The file was written in a format version this build does not read.
    #[error(
        "baseline {path} has format version {found}, but this inferwatch reads version \
         {expected}: record it again with --save-baseline"
    )]
    Version {
        /// The file path.
        path: PathBuf,
        /// The version in the file.
        found: u64,
        /// The version this build reads and writes.
        expected: u32,
    },
    /// The baseline was recorded for other model contents or another backend.
    #[error(
        "baseline {path} was recorded for {expected}, but this run uses {actual}: compare \
         against a baseline of the same model and backend, or record one with --save-baseline"
    )]
    Mismatch {
        /// The file path.
        path: PathBuf,
        /// The model or backend of the baseline.
        expected: String,
        /// The model or backend of this run.
        actual: String,
    },
    /// The baseline contains no latency samples.
    #[error("baseline {path} contains no latency samples: record it again with --save-baseline")]
    Empty {
        /// The file path.
        path: PathBuf,
    },
}

/// An error while drawing a latency plot.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PlotError {
    /// The file name does not end in a supported extension.
    #[error("cannot plot to {path}: the file name must end in .svg or .png")]
    UnsupportedFormat {
        /// The file path.
        path: PathBuf,
    },
    /// There is nothing to plot.
    #[error("cannot plot to {path}: the run has no latency samples")]
    NoSamples {
        /// The file path.
        path: PathBuf,
    },
    /// Drawing or writing the file failed.
    #[error("failed to draw plot {path}: {detail}")]
    Draw {
        /// The file path.
        path: PathBuf,
        /// The drawing library's message.
        detail: String,
    },
}
