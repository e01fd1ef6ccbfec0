//! The thread that polls load sources.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use super::{LoadCells, LoadSource};

/// Default time between two polls of the load sources.
pub const DEFAULT_SAMPLE_PERIOD: Duration = Duration::from_millis(500);

/// A background thread that polls [`LoadSource`]s every period and stores their values in
/// shared [`LoadCells`].
///
/// A source that fails gets its metrics cleared (absent, not zero) and one warning with the
/// error; the next failure of the same kind logs nothing until the source has recovered,
/// which is logged at info level. Dropping the sampler stops the thread and joins it.
#[derive(Debug)]
pub struct Sampler {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

struct SourceState {
    source: Box<dyn LoadSource>,
    failing: bool,
}

impl Sampler {
    /// Starts the sampler thread. `tick` runs after each round of polls (the monitor uses it
    /// for housekeeping such as preparing window slots).
    pub fn start(
        sources: Vec<Box<dyn LoadSource>>,
        cells: Arc<LoadCells>,
        period: Duration,
        mut tick: impl FnMut() + Send + 'static,
    ) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let stop_flag = stop.clone();
        let mut states: Vec<SourceState> =
            sources.into_iter().map(|source| SourceState { source, failing: false }).collect();
        let thread =
            std::thread::Builder::new().name("inferwatch-sampler".into()).spawn(move || {
                while !stop_flag.load(Ordering::Relaxed) {
                    for state in &mut states {
                        poll(state, &cells);
                    }
                    tick();
                    park_for(period, &stop_flag);
                }
            })?;
        Ok(Sampler { stop, thread: Some(thread) })
    }

    /// Stops the thread and waits for it.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop();
    }
}

fn poll(state: &mut SourceState, cells: &LoadCells) {
    match state.source.sample(cells) {
        Ok(()) => {
            if state.failing {
                tracing::info!(source = %state.source.name(), "load source recovered");
                state.failing = false;
            }
        }
        Err(error) => {
            for kind in state.source.kinds() {
                cells.set(kind, None);
            }
            if !state.failing {
                let metrics: Vec<_> =
                    state.source.kinds().iter().map(|kind| kind.metric_name()).collect();
                tracing::warn!(
                    source = %state.source.name(),
                    metrics = ?metrics,
                    "{error}; reporting the metric as absent until the source recovers"
                );
                state.failing = true;
            }
        }
    }
}

/// Sleeps for `period` in short steps so that a stop request ends the wait early.
fn park_for(period: Duration, stop: &AtomicBool) {
    let deadline = std::time::Instant::now() + period;
    loop {
        let now = std::time::Instant::now();
        if stop.load(Ordering::Relaxed) || now >= deadline {
            return;
        }
        std::thread::park_timeout(deadline - now);
    }
}
