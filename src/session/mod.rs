//! Model sessions: backends that run ONNX models, and the instrumented session that times
//! every call.
//!
//! A [`Backend`] loads a model once and runs it from any number of threads through `&self`.
//! [`InstrumentedSession`] wraps a backend: it checks the inputs against the model's declared
//! inputs, reads the monotonic clock before and after the backend's `run`, and hands the two
//! times to a [`Recorder`](crate::Recorder). Input checks are shared by every backend, so a
//! wrong name, type or shape gives the same error whichever backend runs the model.

mod backend;
mod instrumented;
pub mod npy;
mod tensor;
#[cfg(feature = "tract")]
mod tract;

pub use backend::{Backend, BackendKind, SessionOptions, check_inputs, load_backend};
pub use instrumented::InstrumentedSession;
pub use tensor::{DType, Dim, Tensor, TensorInfo, TensorMap, shape_string};
#[cfg(feature = "tract")]
pub use tract::TractBackend;
#[cfg(feature = "ort")]
mod ort;
#[cfg(feature = "ort")]
pub use ort::{ExecutionProvider, OptimizationLevel, OrtBackend, OrtOptions};
