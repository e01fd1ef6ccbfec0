//! The recording handle used on the hot path.

use std::sync::Arc;
use std::time::Duration;

use crate::clock::Clock;
use crate::load::{LoadCells, LoadSample};
use crate::window::{RollingWindow, WindowConfig, WindowStats};

/// Records timed calls into a [`RollingWindow`], attributing to each the load observed over
/// its span: the GPU samples NVML took during the call, and the latest value of the rest.
///
/// Use it directly to time code that is not an ONNX session (a PyTorch call, a whole
/// request), or through [`InstrumentedSession`](crate::InstrumentedSession). Recording takes
/// no lock, allocates nothing and cannot panic; see `benches/README.md` for its cost.
/// Cloning is cheap and clones record into the same window.
#[derive(Clone, Debug)]
pub struct Recorder {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    window: RollingWindow,
    clock: Clock,
    loads: Arc<LoadCells>,
}

impl Recorder {
    /// Creates a recorder with its own window, the real clock and no load sources.
    pub fn new(config: WindowConfig) -> Self {
        Recorder::with_parts(config, Clock::new(), Arc::new(LoadCells::default()))
    }

    /// Creates a recorder on `clock` that attributes the values in `loads` to inferences.
    pub fn with_parts(config: WindowConfig, clock: Clock, loads: Arc<LoadCells>) -> Self {
        Recorder { shared: Arc::new(Shared { window: RollingWindow::new(config), clock, loads }) }
    }

    /// Returns the recorder's clock time in nanoseconds.
    #[inline]
    pub fn now_nanos(&self) -> u64 {
        self.shared.clock.now_nanos()
    }

    /// Records a call that took `duration` and ended now.
    #[inline]
    pub fn record(&self, duration: Duration) {
        let duration = duration.as_nanos().min(u128::from(u64::MAX)) as u64;
        self.record_at(self.now_nanos(), duration);
    }

    /// Records a call that started at clock time `start` and ended at `end`, both from
    /// [`Recorder::now_nanos`].
    #[inline]
    pub fn record_span(&self, start: u64, end: u64) {
        self.record_at(end, end.saturating_sub(start));
    }

    /// Records a call that ended at clock time `end` and took `duration_nanos`.
    #[inline]
    pub fn record_at(&self, end: u64, duration_nanos: u64) {
        let shared = &*self.shared;
        if shared.loads.is_unset() {
            // Without load sources the sample is known to be empty, which lets the window
            // leave out its load path.
            shared.window.record(end, duration_nanos, &LoadSample::EMPTY);
        } else {
            let load = shared.loads.observed(end.saturating_sub(duration_nanos), end);
            shared.window.record(end, duration_nanos, &load);
        }
    }

    /// Records a failed call that ended now.
    pub fn record_failure(&self) {
        self.shared.window.record_failure(self.now_nanos());
    }

    /// Runs `call`, records how long it took and returns its result.
    #[inline]
    pub fn time<T>(&self, call: impl FnOnce() -> T) -> T {
        let start = self.now_nanos();
        let value = call();
        self.record_span(start, self.now_nanos());
        value
    }

    /// Returns the counts over the trailing `span` (rounded up to whole slots).
    pub fn stats(&self, span: Duration) -> WindowStats {
        self.shared.window.stats(self.now_nanos(), span)
    }

    /// Returns the window.
    pub fn window(&self) -> &RollingWindow {
        &self.shared.window
    }

    /// Returns the load cells whose latest values are attributed to each record.
    pub fn loads(&self) -> &Arc<LoadCells> {
        &self.shared.loads
    }

    /// Returns the clock.
    pub fn clock(&self) -> &Clock {
        &self.shared.clock
    }
}
