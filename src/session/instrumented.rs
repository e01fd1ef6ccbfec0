//! A backend wrapped so that every call is timed and recorded.

use std::sync::Arc;

use super::backend::{Backend, check_inputs};
use super::tensor::{TensorInfo, TensorMap};
use crate::error::SessionError;
use crate::recorder::Recorder;

/// A model session that times every inference and records it in a rolling window.
///
/// `run` reads the monotonic clock right before and after the backend runs and records the
/// span with [`Recorder::record_span`], which also attributes the latest load sample to the
/// inference. Input checks happen before the first clock read, so they are not timed. A call
/// that fails, in the checks or in the backend, is counted as a failed inference and its
/// error is returned unchanged.
///
/// The session is `Send + Sync` and cheap to clone: threads share one backend (one optimized
/// tract plan, or a pool of ONNX Runtime sessions) and one recorder.
#[derive(Clone)]
pub struct InstrumentedSession {
    backend: Arc<dyn Backend>,
    recorder: Recorder,
}

impl std::fmt::Debug for InstrumentedSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InstrumentedSession")
            .field("backend", &self.backend.name())
            .field("inputs", &self.backend.inputs())
            .finish_non_exhaustive()
    }
}

impl InstrumentedSession {
    /// Wraps `backend`, recording into `recorder`.
    pub fn new(backend: Arc<dyn Backend>, recorder: Recorder) -> Self {
        InstrumentedSession { backend, recorder }
    }

    /// Runs one inference on named inputs and returns the named outputs.
    pub fn run(&self, inputs: TensorMap) -> Result<TensorMap, SessionError> {
        let ordered = match check_inputs(self.backend.inputs(), inputs) {
            Ok(ordered) => ordered,
            Err(error) => {
                self.recorder.record_failure();
                return Err(error);
            }
        };
        let start = self.recorder.now_nanos();
        let result = self.backend.run(ordered);
        let end = self.recorder.now_nanos();
        match result {
            Ok(outputs) => {
                self.recorder.record_span(start, end);
                let names = self.backend.outputs().iter().map(|info| info.name.clone());
                Ok(names.zip(outputs).collect())
            }
            Err(error) => {
                self.recorder.record_failure();
                Err(error)
            }
        }
    }

    /// Returns the model's inputs.
    pub fn inputs(&self) -> &[TensorInfo] {
        self.backend.inputs()
    }

    /// Returns the model's outputs.
    pub fn outputs(&self) -> &[TensorInfo] {
        self.backend.outputs()
    }

    /// Returns the wrapped backend.
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    /// Returns the recorder this session records into.
    pub fn recorder(&self) -> &Recorder {
        &self.recorder
    }
}
