//! A cumulative view of a rolling window: every record since the exporter started.

use crate::recorder::Recorder;
use crate::window::WindowStats;

/// Folds the window's completed slots into running totals, so that counts survive the
/// slots' reuse once they leave the window.
///
/// At each collection, every slot whose time span has ended since the previous collection
/// is read once and added to `folded`. The slot still filling is added to a copy, never
/// to `folded`, because it will be read again once complete. A record that ends in a slot
/// is therefore counted as long as the collection interval is shorter than the window
/// span: with the defaults (60 s interval, 300 s window) every slot is read while it still
/// contains its epoch. Slots that were reused before being read are reported by
/// [`Cumulative::lost_slots`].
///
/// NOTE: a record whose end time falls just before a slot boundary but whose write lands
/// after the collection folded that slot (its thread was preempted in between) is missed.
/// The window counts it; the cumulative totals do not.
/// The totals since start and what grew since the previous collection.
#[derive(Debug)]
pub(crate) struct Growth {
    pub(crate) total: WindowStats,
    /// (bucket midpoint in nanoseconds, new records) for each bucket that grew.
    pub(crate) buckets: Vec<(f64, u64)>,
    /// The growth of the duration sum, in nanoseconds.
    pub(crate) sum_nanos: u64,
}

#[derive(Debug)]
pub(crate) struct Cumulative {
    folded: WindowStats,
    /// The next epoch to fold.
    next_epoch: u64,
    /// The total of the previous collection, which the histogram has already been fed.
    previous: WindowStats,
    lost_slots: u64,
}

impl Cumulative {
    /// Starts with every record still in `recorder`'s window.
    pub(crate) fn new(recorder: &Recorder) -> Self {
        let window = recorder.window();
        let current = window.epoch_at(recorder.now_nanos());
        let slots = window.config().slots as u64;
        Cumulative {
            folded: WindowStats::empty(0),
            next_epoch: current.saturating_sub(slots - 1),
            previous: WindowStats::empty(0),
            lost_slots: 0,
        }
    }

    /// Folds the slots completed since the last call and returns the total since start.
    pub(crate) fn advance(&mut self, recorder: &Recorder) -> Growth {
        let window = recorder.window();
        let current = window.epoch_at(recorder.now_nanos());
        if current > self.next_epoch {
            let slots = window.config().slots as u64;
            let oldest_kept = current.saturating_sub(slots - 1);
            if self.next_epoch < oldest_kept {
                self.lost_slots += oldest_kept - self.next_epoch;
                self.next_epoch = oldest_kept;
            }
            self.folded.merge(&window.stats_of_epochs(self.next_epoch, current - 1));
            self.next_epoch = current;
        }
        let mut total = self.folded.clone();
        total.merge(&window.stats_of_epochs(current, current));
        let growth = Growth {
            buckets: total.histogram_since(&self.previous),
            sum_nanos: total.sum_nanos.saturating_sub(self.previous.sum_nanos),
            total: total.clone(),
        };
        self.previous = total;
        growth
    }

    /// Returns the number of slots that left the window before they could be folded.
    pub(crate) fn lost_slots(&self) -> u64 {
        self.lost_slots
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::clock::Clock;
    use crate::load::LoadCells;
    use crate::window::WindowConfig;

    fn recorder() -> (Recorder, crate::clock::ManualClock) {
        let (clock, manual) = Clock::manual();
        let config = WindowConfig { slot: Duration::from_secs(1), slots: 4, stripes: 1 };
        (Recorder::with_parts(config, clock, Arc::new(LoadCells::default())), manual)
    }

    #[test]
    fn totals_outlive_window() {
        let (recorder, clock) = recorder();
        let mut cumulative = Cumulative::new(&recorder);
        let mut expected_sum = 0;
        for second in 0..20u64 {
            for _ in 0..3 {
                let nanos = 1_000_000 * (second + 1);
                recorder.record(Duration::from_nanos(nanos));
                expected_sum += nanos;
            }
            if second % 2 == 1 {
                let total = cumulative.advance(&recorder).total;
                assert_eq!(total.count, 3 * (second + 1));
            }
            clock.advance(Duration::from_secs(1));
        }
        let total = cumulative.advance(&recorder).total;
        assert_eq!(total.count, 60);
        assert_eq!(total.sum_nanos, expected_sum);
        assert_eq!(cumulative.lost_slots(), 0);
    }

    #[test]
    fn growth_is_reported_once() {
        let (recorder, clock) = recorder();
        let mut cumulative = Cumulative::new(&recorder);
        recorder.record(Duration::from_millis(2));
        recorder.record(Duration::from_millis(2));
        let growth = cumulative.advance(&recorder);
        assert_eq!(growth.buckets.len(), 1);
        assert_eq!(growth.buckets[0].1, 2);
        assert_eq!(growth.sum_nanos, 4_000_000);
        clock.advance(Duration::from_secs(1));
        recorder.record(Duration::from_millis(2));
        let growth = cumulative.advance(&recorder);
        assert_eq!(growth.total.count, 3);
        assert_eq!(growth.buckets.iter().map(|(_, count)| count).sum::<u64>(), 1);
        assert_eq!(growth.sum_nanos, 2_000_000);
        let growth = cumulative.advance(&recorder);
        assert!(growth.buckets.is_empty());
        assert_eq!(growth.sum_nanos, 0);
    }

    #[test]
    fn slow_collection_counts_lost_slots() {
        let (recorder, clock) = recorder();
        let mut cumulative = Cumulative::new(&recorder);
        recorder.record(Duration::from_millis(1));
        clock.advance(Duration::from_secs(10));
        recorder.record(Duration::from_millis(1));
        let total = cumulative.advance(&recorder).total;
        assert_eq!(total.count, 1);
        assert_eq!(cumulative.lost_slots(), 7);
    }
}
