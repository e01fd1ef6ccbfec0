//! inferwatch instruments ML inference and detects when something else on the device, such
//! as a cryptocurrency miner, takes the CPU or GPU that the model needs.
//!
//! # How the parts fit
//!
//! - A [`Backend`] runs an ONNX model: [`TractBackend`] (pure Rust, the default) or
//!   [`OrtBackend`] (ONNX Runtime, feature `ort`), which keeps a pool of sessions so that
//!   threads do not wait for each other.
//! - An [`InstrumentedSession`] wraps a backend and times every `run` with a monotonic clock.
//! - A [`Recorder`] puts each timed call into a [`RollingWindow`]: a ring of time slots
//!   (60 × 5 s by default) counted with relaxed atomics, so recording takes no lock and
//!   allocates nothing. Each record also carries the latest [`LoadSample`]: system and
//!   foreign CPU from `/proc`, GPU load from NVML or from a file.
//! - A [`Monitor`] owns the window and the sampler thread, loads sessions, and turns the
//!   window into a [`Snapshot`]: mean, p50, p90 and p99 latency in milliseconds, and the
//!   load per inference in percent.
//! - With the `defender` feature, a [`defender::Reporter`] turns snapshots and `/proc/net`
//!   into AWS IoT Device Defender reports, which a [`defender::Publisher`] sends over MQTT
//!   with mutual TLS, keeping unsent ones in an on-disk spool.
//! - With the `defender` feature, a [`defender::Reporter`] turns snapshots and `/proc/net`
//!   into AWS IoT Device Defender reports, which a [`defender::Publisher`] sends over MQTT
//!   with mutual TLS, keeping unsent ones in an on-disk spool.
//! - A [`Detector`](detect::Detector) evaluates a security profile, a latency drift test
//!   and mining indicators from `/proc` on the monitor's window, and sends alarm events to
//!   callbacks, channels and the log (module [`detect`]).
//!
//! ```text
//! model.onnx ─► Backend ─► InstrumentedSession::run ─► outputs
//!                              │ clock before and after, latest load sample
//!                              ▼
//!                 Recorder ─► RollingWindow ─► Snapshot (off the hot path)
//! ```
//!
//! # Example
//!
//! ```no_run
//! use inferwatch::{Monitor, SessionOptions, TensorMap, npy};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let monitor = Monitor::builder().build()?;
//! let inputs: TensorMap = [("x", npy::read_npy("models/ppocr-cls/x.npy")?)].into_iter().collect();
//! // The classifier's input is [?,3,?,?]: tract optimizes for the sample's shape.
//! let options = SessionOptions::default().with_shapes_of(&inputs);
//! let session = monitor.session("models/ppocr-cls/model.onnx", &options)?;
//! for _ in 0..100 {
//!     session.run(inputs.clone())?;
//! }
//! let snapshot = monitor.snapshot();
//! println!("{} inferences, mean {:?} ms", snapshot.inference_count, snapshot.avg_inference_time);
//! # Ok(())
//! # }
//! ```
//!
//! # Features
//!
//! - `tract` (default): the tract backend.
//! - `ort` (default): the ONNX Runtime backend, loaded from `libonnxruntime` at run time.
//! - `nvml` (default): GPU load through NVML, opened at run time.
//! - `otel` (default): OpenTelemetry metrics over OTLP.
//! - `defender` (default): AWS IoT Device Defender metric reports over MQTT.
//! - `plot` (with `cli`): SVG and PNG latency plots of benchmark runs, [`bench::plot`].
//! - `cli` (default): the `inferwatch` command.
//!
//! # Limitations
//!
//! - Tensors of type float32, float64, int64, int32, uint8 and bool only; no strings,
//!   float16 or sequences.
//! - Percentiles are within 1 % of the exact value (a log-linear histogram with 64 buckets
//!   per power of two); durations above about 73 minutes all land in the last bucket.
//! - A record that meets its slot while another thread resets it is dropped and counted
//!   (`dropped_records`); with the monitor's housekeeping this is rare, not impossible.
//! - Load is sampled every 500 ms by default, so a load sample is attributed to inferences
//!   by time of the latest sample, not measured per inference. GPU load from NVML is the
//!   exception: each inference gets the mean of the driver's samples (1/6 s to 1 s apart)
//!   taken during its span, or the latest one before it.
//! - Linux only: load sources read `/proc`.
//! - The ONNX Runtime backend loads one `libonnxruntime` (1.31 or newer) per process and
//!   offers the CPU and CUDA execution providers only.

#![warn(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    rust_2018_idioms,
    clippy::undocumented_unsafe_blocks
)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod bench;
mod clock;
pub mod config;
#[cfg(feature = "defender")]
#[cfg_attr(docsrs, doc(cfg(feature = "defender")))]
pub mod defender;
pub mod detect;
pub mod error;
pub mod load;
mod monitor;
#[cfg(feature = "otel")]
#[cfg_attr(docsrs, doc(cfg(feature = "otel")))]
pub mod otel;
mod recorder;
pub mod session;
mod snapshot;
pub mod window;

pub use clock::{Clock, ManualClock};
#[cfg(feature = "otel")]
pub use error::OtelError;
pub use error::{
    BaselineError, ConfigError, LoadError, NpyError, OrtLibraryError, PlotError, SessionError,
};
pub use load::{LoadCells, LoadKind, LoadSample, LoadSource};
pub use monitor::{Monitor, MonitorBuilder};
pub use recorder::Recorder;
#[cfg(feature = "tract")]
pub use session::TractBackend;
pub use session::npy;
pub use session::{
    Backend, BackendKind, DType, InstrumentedSession, SessionOptions, Tensor, TensorInfo, TensorMap,
};
#[cfg(feature = "ort")]
pub use session::{OrtBackend, OrtOptions};
pub use snapshot::Snapshot;
pub use window::{RollingWindow, WindowConfig, WindowStats};
