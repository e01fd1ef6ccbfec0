//! The monotonic clock that times inferences and places them in window slots.

use std::sync::Arc;
use std::time::Duration;

/// A monotonic clock in nanoseconds since the clock was created.
///
/// The real clock reads the CPU's time-stamp counter through [`quanta`] where it is stable
/// and falls back to the OS monotonic clock elsewhere. `benches/README.md` gives the cost of
/// a read on the machine measured there (about 18 ns in that VM). A manual clock,
/// made by [`Clock::manual`], moves only when a test calls [`ManualClock::advance`], so slot
/// rotation and time-based detection can be tested without sleeping.
///
/// Cloning is cheap: clones share the same origin and, for a manual clock, the same time.
#[derive(Clone, Debug)]
pub struct Clock {
    inner: quanta::Clock,
    origin: quanta::Instant,
}

/// The handle that moves a [`Clock`] made by [`Clock::manual`].
#[derive(Clone, Debug)]
pub struct ManualClock {
    mock: Arc<quanta::Mock>,
}

impl Clock {
    /// Creates the real monotonic clock.
    pub fn new() -> Self {
        let inner = quanta::Clock::new();
        let origin = inner.now();
        Clock { inner, origin }
    }

    /// Creates a clock that starts at zero and moves only through the returned handle.
    pub fn manual() -> (Self, ManualClock) {
        let (inner, mock) = quanta::Clock::mock();
        let origin = inner.now();
        (Clock { inner, origin }, ManualClock { mock })
    }

    /// Returns the nanoseconds elapsed since the clock was created.
    #[inline]
    pub fn now_nanos(&self) -> u64 {
        // `quanta::Instant` is a nanosecond count; saturating keeps a clock that steps back
        // across cores from producing a huge value.
        let now = self.inner.now();
        now.saturating_duration_since(self.origin).as_nanos() as u64
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

impl ManualClock {
    /// Moves the clock forward by `step`.
    pub fn advance(&self, step: Duration) {
        self.mock.increment(step);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_advanced() {
        let (clock, handle) = Clock::manual();
        assert_eq!(clock.now_nanos(), 0);
        handle.advance(Duration::from_millis(1500));
        assert_eq!(clock.now_nanos(), 1_500_000_000);
        let copy = clock.clone();
        handle.advance(Duration::from_nanos(7));
        assert_eq!(copy.now_nanos(), 1_500_000_007);
    }

    #[test]
    fn real_clock_is_monotonic() {
        let clock = Clock::new();
        let a = clock.now_nanos();
        std::thread::sleep(Duration::from_millis(2));
        let b = clock.now_nanos();
        assert!(b >= a + 1_000_000, "clock moved {} ns over a 2 ms sleep", b - a);
    }
}
