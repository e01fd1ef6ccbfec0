//! Errors, one type per family of operations.
//!
//! Policy: every fallible operation returns the error type of its family ([`SessionError`]
//! for loading and running models, [`NpyError`] for tensor files, [`LoadError`] for load
//! sources, [`ConfigError`] for configuration, [`BaselineError`] and [`PlotError`] for
//! benchmarks). Messages are lowercase, have no final period, name the value that failed and where it
//! came from, and end with the usual fix when there is one. Nothing in the library panics on input; a panic is a bug.

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
        /// What the decoder reported.
        detail: String,
    },
    /// The model uses an operator the backend does not implement.
    #[error(
        "model {path} uses operator {op} (node {node:?}) that the {backend} backend does not \
         support: try --backend ort"
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
    /// The backend is not compiled into this build.
    #[error("the {0} backend is not part of this build: rebuild with --features {0}")]
    BackendUnavailable(&'static str),
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
        /// What is wrong.
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
        /// What was looked for.
        what: &'static str,
    },
    /// A driver library (such as NVML) failed.
    #[error("{0}")]
    Driver(String),
}

/// An error in configuration: a file, a flag or an environment variable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A value is invalid.
    #[error("invalid {key} {value:?} in {origin}: {expected}")]
    Invalid {
        /// Where the value came from: a file path, `--flag` or a variable name.
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
