//! Timestamped GPU utilization samples that the hot path attributes to each inference.
//!
//! NVML reports GPU utilization as samples with timestamps (one every 1/6 s to 1 s,
//! depending on the GPU). A sampler thread pushes them into a [`GpuTimeline`], a small ring
//! of packed atomic words, and `Recorder::record_span` reads the ring to find the samples
//! that fall inside the inference's span. Reading takes no lock and allocates nothing: one
//! acquire load of the ring's head, then one relaxed load per sample walked, newest first,
//! and the walk stops at the first sample older than the span.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Samples kept per GPU. At NVML's fastest rate (6 per second) this covers about 10 s,
/// which bounds the span over which an inference can be averaged.
pub const TIMELINE_CAPACITY: usize = 64;
/// GPUs whose timelines the hot path can average.
pub const MAX_GPUS: usize = 8;

/// Bits of a packed entry that hold the value (hundredths of a percent, at most 10 000).
const VALUE_BITS: u32 = 14;
const VALUE_MASK: u64 = (1 << VALUE_BITS) - 1;
/// The largest timestamp a packed entry can hold, in microseconds (about 35 years).
const MAX_MICROS: u64 = u64::MAX >> VALUE_BITS;

/// A ring of (timestamp, utilization) samples of one GPU, written by one sampler thread
/// and read by any number of recording threads.
///
/// Its `Debug` output shows the number of samples pushed, not the samples.
///
/// Each entry is one `AtomicU64` that packs the timestamp (recorder clock, microseconds) in
/// the high 50 bits and the utilization (hundredths of a percent) in the low 14 bits, so a
/// reader never sees half of an entry. `head` counts the samples ever pushed since the last
/// clear. The writer stores the entry, then publishes it by a release store of `head`, so a
/// reader's acquire load of `head` makes every entry below it visible. A writer that laps a
/// slow reader overwrites an entry with a newer timestamp, which the reader recognises
/// because timestamps must fall while it walks back, and it stops there.
pub struct GpuTimeline {
    head: AtomicU64,
    entries: [AtomicU64; TIMELINE_CAPACITY],
}

impl std::fmt::Debug for GpuTimeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuTimeline")
            .field("pushed", &self.head.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Default for GpuTimeline {
    fn default() -> Self {
        GpuTimeline { head: AtomicU64::new(0), entries: std::array::from_fn(|_| AtomicU64::new(0)) }
    }
}

impl GpuTimeline {
    /// Appends a sample taken at `micros` (recorder clock) of `hundredths` of a percent.
    ///
    /// Only one thread may push to a timeline; samples must come in time order.
    pub fn push(&self, micros: u64, hundredths: u32) {
        let head = self.head.load(Ordering::Relaxed);
        let entry = (micros.min(MAX_MICROS) << VALUE_BITS) | u64::from(hundredths.min(10_000));
        self.entries[(head % TIMELINE_CAPACITY as u64) as usize].store(entry, Ordering::Relaxed);
        self.head.store(head + 1, Ordering::Release);
    }

    /// Forgets every sample, so that readers see no value until the next push.
    pub fn clear(&self) {
        self.head.store(0, Ordering::Release);
    }

    /// Returns the mean utilization (hundredths of a percent) of the samples taken between
    /// `start` and `end` (microseconds, inclusive), or the latest sample taken before `start`
    /// when none falls inside, or `None` when the timeline is empty.
    ///
    /// When every sample is newer than `end` (the inference ended before the first sample
    /// arrived), the oldest one stands for it.
    #[inline]
    pub fn observe(&self, start: u64, end: u64) -> Option<u32> {
        let head = self.head.load(Ordering::Acquire);
        let available = head.min(TIMELINE_CAPACITY as u64);
        let mut sum = 0u64;
        let mut count = 0u64;
        let mut after_end = None;
        let mut previous = u64::MAX;
        for back in 1..=available {
            let entry = self.entries[((head - back) % TIMELINE_CAPACITY as u64) as usize]
                .load(Ordering::Relaxed);
            let micros = entry >> VALUE_BITS;
            let value = (entry & VALUE_MASK) as u32;
            if micros > previous {
                // The writer lapped this reader: older entries are gone.
                break;
            }
            previous = micros;
            if micros > end {
                after_end = Some(value);
            } else if micros >= start {
                sum += u64::from(value);
                count += 1;
            } else if count == 0 {
                return Some(value);
            } else {
                break;
            }
        }
        sum.checked_div(count).map(|mean| mean as u32).or(after_end)
    }
}

/// The timelines of the GPUs being sampled; the first `active` of them are read.
#[derive(Default)]
pub struct GpuTimelines {
    active: AtomicUsize,
    lines: [GpuTimeline; MAX_GPUS],
}

impl std::fmt::Debug for GpuTimelines {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuTimelines")
            .field("active", &self.active.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl GpuTimelines {
    /// Makes the first `count` timelines (at most [`MAX_GPUS`]) visible to readers.
    pub fn activate(&self, count: usize) {
        self.active.store(count.min(MAX_GPUS), Ordering::Release);
    }

    /// Returns timeline `index`, or `None` beyond [`MAX_GPUS`].
    pub fn get(&self, index: usize) -> Option<&GpuTimeline> {
        self.lines.get(index)
    }

    /// Returns true when at least one GPU timeline is read.
    #[inline]
    pub fn is_active(&self) -> bool {
        self.active.load(Ordering::Relaxed) != 0
    }

    /// Returns the mean over the active GPUs of [`GpuTimeline::observe`], skipping GPUs
    /// with no sample, or `None` when no GPU timeline is active or none has a sample.
    #[inline]
    pub fn observe(&self, start_nanos: u64, end_nanos: u64) -> Option<u32> {
        let active = self.active.load(Ordering::Relaxed);
        if active == 0 {
            return None;
        }
        self.observe_active(active, start_nanos / 1_000, end_nanos / 1_000)
    }

    // Kept out of line so that the check above is all that recording costs without NVML.
    #[inline(never)]
    fn observe_active(&self, active: usize, start: u64, end: u64) -> Option<u32> {
        let mut sum = 0u32;
        let mut count = 0u32;
        for line in &self.lines[..active.min(MAX_GPUS)] {
            if let Some(value) = line.observe(start, end) {
                sum += value;
                count += 1;
            }
        }
        (count > 0).then(|| sum / count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_timeline_has_no_value() {
        let line = GpuTimeline::default();
        assert_eq!(line.observe(0, 1_000), None);
    }

    #[test]
    fn span_averages_samples_inside() {
        let line = GpuTimeline::default();
        line.push(100, 4_000);
        line.push(200, 6_000);
        line.push(300, 8_000);
        assert_eq!(line.observe(50, 150), Some(4_000));
        assert_eq!(line.observe(50, 250), Some(5_000));
        assert_eq!(line.observe(150, 350), Some(7_000));
        assert_eq!(line.observe(100, 300), Some(6_000));
    }

    #[test]
    fn short_span_takes_latest_sample_before() {
        let line = GpuTimeline::default();
        line.push(100, 4_000);
        line.push(200, 6_000);
        assert_eq!(line.observe(150, 160), Some(4_000));
        assert_eq!(line.observe(500, 510), Some(6_000));
    }

    #[test]
    fn span_before_every_sample_takes_oldest() {
        let line = GpuTimeline::default();
        line.push(100, 4_000);
        line.push(200, 6_000);
        assert_eq!(line.observe(10, 20), Some(4_000));
    }

    #[test]
    fn ring_keeps_newest_capacity_samples() {
        let line = GpuTimeline::default();
        for i in 0..(TIMELINE_CAPACITY as u64 * 2) {
            line.push(i * 10, (i % 100) as u32 * 100);
        }
        // Sample 64 (time 640, value 64 %) is the oldest kept.
        assert_eq!(line.observe(0, 645), Some(6_400));
        assert_eq!(line.observe(0, 5), Some(6_400));
    }

    #[test]
    fn clear_hides_samples() {
        let line = GpuTimeline::default();
        line.push(100, 4_000);
        line.clear();
        assert_eq!(line.observe(0, 1_000), None);
        line.push(300, 2_500);
        assert_eq!(line.observe(0, 1_000), Some(2_500));
    }

    #[test]
    fn timelines_average_active_gpus() {
        let lines = GpuTimelines::default();
        assert_eq!(lines.observe(0, 1_000_000), None);
        lines.get(0).unwrap().push(500, 2_000);
        lines.get(1).unwrap().push(500, 6_000);
        lines.activate(1);
        assert_eq!(lines.observe(0, 1_000_000), Some(2_000));
        lines.activate(2);
        assert_eq!(lines.observe(0, 1_000_000), Some(4_000));
        lines.activate(3);
        assert_eq!(lines.observe(0, 1_000_000), Some(4_000), "an empty timeline is skipped");
    }
}
