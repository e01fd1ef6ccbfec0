//! Sums of window slots, read off the hot path.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::{Slot, histogram};
use crate::load::{LOAD_KINDS, LoadKind};

/// The counts of a trailing span of a [`RollingWindow`](super::RollingWindow), summed over
/// slots and stripes.
///
/// The counters are read one by one while writers go on, so a record that lands during the
/// read can be counted in the histogram but not yet in the sum. The difference is at most
/// the records of that moment.
#[derive(Clone, Debug)]
pub struct WindowStats {
    /// The span of time the counts cover, in whole slots.
    pub span: Duration,
    /// Inferences recorded.
    pub count: u64,
    /// Inferences that returned an error.
    pub failed: u64,
    /// Records dropped since the window was created because their slot was being reset.
    pub dropped: u64,
    /// Sum of the recorded durations, in nanoseconds.
    pub sum_nanos: u64,
    min_nanos: u64,
    max_nanos: u64,
    load_sum: [u64; LOAD_KINDS],
    load_count: [u64; LOAD_KINDS],
    buckets: Vec<u64>,
}

impl WindowStats {
    pub(crate) fn empty(span_nanos: u64) -> Self {
        WindowStats {
            span: Duration::from_nanos(span_nanos),
            count: 0,
            failed: 0,
            dropped: 0,
            sum_nanos: 0,
            min_nanos: u64::MAX,
            max_nanos: 0,
            load_sum: [0; LOAD_KINDS],
            load_count: [0; LOAD_KINDS],
            buckets: vec![0; histogram::BUCKETS],
        }
    }

    /// Adds `slot` if its encoded state equals `target` before and after the read.
    pub(super) fn add_slot(&mut self, slot: &Slot, target: u64) {
        if slot.state.load(Ordering::Acquire) != target {
            return;
        }
        // Every counted duration lies between the slot's minimum and maximum, so only the
        // buckets between theirs can be non-zero. Reading those few dozen instead of all
        // 2368 keeps a snapshot of a long window cheap. A record that lands during the read
        // with a new extreme can be missed by this read; the next read counts it.
        let min = slot.min.load(Ordering::Relaxed);
        let max = slot.max.load(Ordering::Relaxed);
        let range = if min <= max {
            histogram::bucket_index(min)..histogram::bucket_index(max) + 1
        } else {
            0..0
        };
        let mut buckets = [0u32; histogram::BUCKETS];
        for index in range.clone() {
            buckets[index] = slot.buckets[index].load(Ordering::Relaxed);
        }
        let sum = slot.sum.load(Ordering::Relaxed);
        let failed = slot.failed.load(Ordering::Relaxed);
        let load_sum: [u64; LOAD_KINDS] =
            std::array::from_fn(|kind| slot.load_sum[kind].load(Ordering::Relaxed));
        let load_count: [u64; LOAD_KINDS] =
            std::array::from_fn(|kind| slot.load_count[kind].load(Ordering::Relaxed));
        if slot.state.load(Ordering::Acquire) != target {
            // The slot was reset for a newer epoch while it was read.
            return;
        }
        for index in range {
            let count = u64::from(buckets[index]);
            self.buckets[index] += count;
            self.count += count;
        }
        self.sum_nanos += sum;
        self.min_nanos = self.min_nanos.min(min);
        self.max_nanos = self.max_nanos.max(max);
        self.failed += failed;
        for kind in 0..LOAD_KINDS {
            self.load_sum[kind] += load_sum[kind];
            self.load_count[kind] += load_count[kind];
        }
    }

    /// Adds the counts of `other`, as if its slots had been read into this one.
    pub fn merge(&mut self, other: &WindowStats) {
        self.span += other.span;
        self.count += other.count;
        self.failed += other.failed;
        self.dropped = self.dropped.max(other.dropped);
        self.sum_nanos += other.sum_nanos;
        self.min_nanos = self.min_nanos.min(other.min_nanos);
        self.max_nanos = self.max_nanos.max(other.max_nanos);
        for kind in 0..LOAD_KINDS {
            self.load_sum[kind] += other.load_sum[kind];
            self.load_count[kind] += other.load_count[kind];
        }
        for (total, &count) in self.buckets.iter_mut().zip(other.buckets.iter()) {
            *total += count;
        }
    }

    /// Returns, for each histogram bucket that holds more records here than in `earlier`,
    /// the bucket's midpoint in nanoseconds and the difference in count.
    ///
    /// `earlier` is meant to be an earlier read of the same growing total, so no bucket
    /// shrinks; one that does counts as unchanged.
    pub fn histogram_since(&self, earlier: &WindowStats) -> Vec<(f64, u64)> {
        self.buckets
            .iter()
            .zip(earlier.buckets.iter())
            .enumerate()
            .filter(|(_, (now, before))| now > before)
            .map(|(index, (now, before))| (histogram::bucket_mid(index), now - before))
            .collect()
    }

    /// Returns the mean duration in nanoseconds, or `None` without records.
    pub fn mean_nanos(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum_nanos as f64 / self.count as f64)
    }

    /// Returns the shortest recorded duration in nanoseconds.
    pub fn min_nanos(&self) -> Option<u64> {
        (self.count > 0).then_some(self.min_nanos)
    }

    /// Returns the longest recorded duration in nanoseconds.
    pub fn max_nanos(&self) -> Option<u64> {
        (self.count > 0).then_some(self.max_nanos)
    }

    /// Returns the duration at quantile `q` (0.0 ..= 1.0) in nanoseconds, within 1 % of the
    /// exact nearest-rank value.
    pub fn quantile_nanos(&self, q: f64) -> Option<f64> {
        histogram::quantile(&self.buckets, self.count, q, self.min_nanos, self.max_nanos)
    }

    /// Returns the mean of load metric `kind` (percent) over the inferences that observed
    /// one, or `None` when none did.
    pub fn load_mean(&self, kind: LoadKind) -> Option<f64> {
        let index = kind as usize;
        let count = self.load_count[index];
        (count > 0).then(|| self.load_sum[index] as f64 / count as f64 / 100.0)
    }

    /// Returns the histogram's bucket counts with each bucket's midpoint in nanoseconds,
    /// skipping empty buckets.
    pub fn histogram(&self) -> impl Iterator<Item = (f64, u64)> + '_ {
        self.buckets
            .iter()
            .enumerate()
            .filter(|(_, count)| **count > 0)
            .map(|(index, &count)| (histogram::bucket_mid(index), count))
    }
}
