//! Lock-free rolling windows of inference latency and load.
//!
//! A [`RollingWindow`] is a ring of time slots (by default 60 slots of 5 s, so 300 s). Every
//! slot counts the inferences that ended in its time span: their number, the sum, minimum
//! and maximum of their durations, a log-linear latency histogram, the failed inferences, and
//! the sum of each load metric observed by the inferences. Percentiles come from the same
//! histogram, so p50, p90 and p99 are within 1 % of the exact values.
//!
//! Recording is a few relaxed atomic operations on the current slot: no lock, no allocation,
//! no system call, no panic. So that two threads never fight over one cache line, the ring is
//! striped, and a reader sums the stripes. A thread that has claimed an owner index (see
//! `owner.rs`) below the number of stripes is the only writer of that stripe and updates it
//! with plain loads and stores. Any other thread writes to one more, shared stripe with
//! atomic read-modify-writes.

mod histogram;
mod owner;
mod stats;
#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use crossbeam_utils::CachePadded;

pub use stats::WindowStats;

use crate::load::{LOAD_KINDS, LoadSample};

/// Default length of one slot.
pub const DEFAULT_SLOT: Duration = Duration::from_secs(5);
/// Default number of slots; with [`DEFAULT_SLOT`] the window spans 300 s.
pub const DEFAULT_SLOTS: usize = 60;

/// The shape of a [`RollingWindow`]: slot length, number of slots and stripes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WindowConfig {
    /// Length of one slot. Snapshots cover whole slots, so this is their time resolution.
    pub slot: Duration,
    /// Number of slots the window spans.
    pub slots: usize,
    /// Number of copies of the ring that one recording thread each writes to alone, at most
    /// 64. Threads beyond these share one more copy and pay for atomic adds, so set it to the
    /// number of threads that record at once. Each stripe takes about 9.5 KiB per slot.
    pub stripes: usize,
}

impl Default for WindowConfig {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        WindowConfig { slot: DEFAULT_SLOT, slots: DEFAULT_SLOTS, stripes: cores.min(16) }
    }
}

impl WindowConfig {
    /// Returns a configuration that spans `span` with slots of `slot`, rounding the number of
    /// slots up.
    pub fn spanning(span: Duration, slot: Duration) -> Self {
        let slot = slot.max(Duration::from_millis(1));
        let slots = span.as_nanos().div_ceil(slot.as_nanos()).max(1) as usize;
        WindowConfig { slot, slots, ..WindowConfig::default() }
    }

    /// Returns the time the window spans.
    pub fn span(&self) -> Duration {
        self.slot * self.slots as u32
    }
}

/// One time slot of one stripe.
///
/// `state` governs every other field. It is 0 for a slot never used. It is `(epoch + 1) << 1`
/// for a slot that contains the counts of `epoch`, the slot's time span counted in slot
/// lengths since the clock's origin. It is the same with bit 0 set while one writer resets the
/// slot for a new epoch. A slot never used goes straight from 0 to its first epoch, as its
/// counters are already zero. Only the writer whose compare-and-swap set bit 0 stores to the
/// counters with plain relaxed stores, then publishes the new epoch with a release store.
/// Other writers only add once they have seen the exact epoch they want (acquire load), so
/// their adds follow the reset. Readers load `state` before and after reading the counters
/// and drop the slot if it changed, which discards a slot reset while it was read.
struct Slot {
    state: AtomicU64,
    sum: AtomicU64,
    min: AtomicU64,
    max: AtomicU64,
    failed: AtomicU64,
    /// Sum of each load metric over the inferences that saw one, in hundredths of a percent.
    load_sum: [AtomicU64; LOAD_KINDS],
    load_count: [AtomicU64; LOAD_KINDS],
    /// Kept inline, so that reaching a bucket takes no pointer load after the slot's address.
    buckets: [AtomicU32; histogram::BUCKETS],
}

const RESETTING: u64 = 1;

impl Slot {
    fn new() -> Self {
        Slot {
            state: AtomicU64::new(0),
            sum: AtomicU64::new(0),
            min: AtomicU64::new(u64::MAX),
            max: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            load_sum: Default::default(),
            load_count: Default::default(),
            buckets: [const { AtomicU32::new(0) }; histogram::BUCKETS],
        }
    }

    /// Makes the slot contain `target` (an encoded state), resetting it if it contains an
    /// older epoch. Returns false when the sample must be dropped: another writer is resetting the
    /// slot, or the slot already moved on to a newer epoch than the sample's.
    #[cold]
    fn rotate(&self, mut current: u64, target: u64) -> bool {
        loop {
            if current == target {
                return true;
            }
            if current & RESETTING != 0 || current > target {
                return false;
            }
            if current == 0 {
                // A slot never used contains the counters of `Slot::new`, so it needs no reset, and
                // no writer that comes at the same time has to drop its record.
                match self.state.compare_exchange(0, target, Ordering::Acquire, Ordering::Acquire) {
                    Ok(_) => return true,
                    Err(actual) => {
                        current = actual;
                        continue;
                    }
                }
            }
            match self.state.compare_exchange(
                current,
                target | RESETTING,
                Ordering::Acquire,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    // This thread owns the reset, so no writer adds until the release store below.
                    self.clear();
                    self.state.store(target, Ordering::Release);
                    return true;
                }
                // Another writer changed the state first: look again at what it stored.
                Err(actual) => current = actual,
            }
        }
    }

    fn clear(&self) {
        self.sum.store(0, Ordering::Relaxed);
        self.min.store(u64::MAX, Ordering::Relaxed);
        self.max.store(0, Ordering::Relaxed);
        self.failed.store(0, Ordering::Relaxed);
        for kind in 0..LOAD_KINDS {
            self.load_sum[kind].store(0, Ordering::Relaxed);
            self.load_count[kind].store(0, Ordering::Relaxed);
        }
        for bucket in self.buckets.iter() {
            bucket.store(0, Ordering::Relaxed);
        }
    }
}

/// A ring of time slots that counts inference latency and load, written without locks.
///
/// Memory is fixed at construction: `(stripes + 1) × ring × 9.5 KiB`, where the ring is the number
/// of slots rounded up past the next power of two (64 for the default 60). The extra slots
/// mean the slot a writer resets is never one a snapshot of the full window reads.
///
/// A record whose slot another thread is resetting at that moment (once per slot length and
/// stripe, for about a microsecond) is dropped and counted in [`WindowStats::dropped`];
/// [`RollingWindow::prepare`] resets the next slot ahead of time so that this stays rare.
pub struct RollingWindow {
    config: WindowConfig,
    slot_nanos: u64,
    /// `u64::MAX / slot_nanos`: turns the division by the slot length into a multiplication
    /// whose result is at most one below the quotient, corrected by one comparison.
    slot_reciprocal: u64,
    ring_mask: u64,
    /// Stripes `0..owned` each have one writer, the thread holding that owner index; stripe
    /// `owned` is shared by every other thread.
    owned: usize,
    /// The slots of all stripes, stripe after stripe: slot `r` of stripe `s` is at
    /// `s * ring + r`. One flat array means one address computation and no pointer chasing
    /// on the hot path.
    slots: Box<[CachePadded<Slot>]>,
    dropped: CachePadded<AtomicU64>,
}

impl std::fmt::Debug for RollingWindow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RollingWindow")
            .field("config", &self.config)
            .field("dropped", &self.dropped.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// Counter updates of one thread: plain loads and stores when the thread is the slot's only
/// writer (`OWNED`), atomic read-modify-writes otherwise.
struct Update<const OWNED: bool>;

impl<const OWNED: bool> Update<OWNED> {
    #[inline(always)]
    fn add(counter: &AtomicU64, value: u64) {
        if OWNED {
            counter.store(counter.load(Ordering::Relaxed).wrapping_add(value), Ordering::Relaxed);
        } else {
            counter.fetch_add(value, Ordering::Relaxed);
        }
    }

    #[inline(always)]
    fn increment(counter: &AtomicU32) {
        if OWNED {
            counter.store(counter.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
        } else {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Lowers `counter` to `value`. Most records change neither extreme, so a shared writer
    /// also loads first and runs the read-modify-write only for a new extreme.
    #[inline(always)]
    fn lower(counter: &AtomicU64, value: u64) {
        if value < counter.load(Ordering::Relaxed) {
            if OWNED {
                counter.store(value, Ordering::Relaxed);
            } else {
                counter.fetch_min(value, Ordering::Relaxed);
            }
        }
    }

    #[inline(always)]
    fn raise(counter: &AtomicU64, value: u64) {
        if value > counter.load(Ordering::Relaxed) {
            if OWNED {
                counter.store(value, Ordering::Relaxed);
            } else {
                counter.fetch_max(value, Ordering::Relaxed);
            }
        }
    }

    #[inline(always)]
    fn record(slot: &Slot, duration_nanos: u64, load: &LoadSample) {
        Self::add(&slot.sum, duration_nanos);
        Self::increment(&slot.buckets[histogram::bucket_index(duration_nanos)]);
        Self::lower(&slot.min, duration_nanos);
        Self::raise(&slot.max, duration_nanos);
        if !load.is_empty() {
            Self::record_load(slot, load);
        }
    }

    /// Kept out of line so that the common path of [`Self::record`] stays short.
    #[inline(never)]
    fn record_load(slot: &Slot, load: &LoadSample) {
        for kind in 0..LOAD_KINDS {
            if let Some(value) = load.raw(kind) {
                Self::add(&slot.load_sum[kind], u64::from(value));
                Self::add(&slot.load_count[kind], 1);
            }
        }
    }
}

impl RollingWindow {
    /// Creates an empty window.
    pub fn new(config: WindowConfig) -> Self {
        let slot_nanos = (config.slot.as_nanos() as u64).max(1);
        let slots = config.slots.max(1);
        let ring = (slots + 1).next_power_of_two();
        let owned = config.stripes.clamp(1, owner::OWNERS);
        let all_slots = (0..(owned + 1) * ring).map(|_| CachePadded::new(Slot::new())).collect();
        RollingWindow {
            config: WindowConfig { slots, stripes: owned, ..config },
            slot_nanos,
            slot_reciprocal: u64::MAX / slot_nanos,
            ring_mask: ring as u64 - 1,
            owned,
            slots: all_slots,
            dropped: CachePadded::new(AtomicU64::new(0)),
        }
    }

    /// Returns the window's configuration, with the number of stripes clamped as used.
    pub fn config(&self) -> WindowConfig {
        self.config
    }

    #[inline]
    fn epoch(&self, now_nanos: u64) -> u64 {
        let estimate = ((now_nanos as u128 * self.slot_reciprocal as u128) >> 64) as u64;
        let remainder = now_nanos - estimate * self.slot_nanos;
        estimate + u64::from(remainder >= self.slot_nanos)
    }

    /// Returns the slot of `stripe` that contains `epoch` (or an older or newer epoch that maps
    /// to the same place in the ring).
    #[inline(always)]
    fn slot(&self, stripe: usize, epoch: u64) -> &Slot {
        let ring = self.ring_mask as usize + 1;
        &self.slots[stripe * ring + (epoch & self.ring_mask) as usize]
    }

    /// Returns the slot of `stripe` for the time `now_nanos`, reset for its epoch, or `None`
    /// when the record must be dropped.
    #[inline(always)]
    fn slot_for(&self, stripe: usize, now_nanos: u64) -> Option<&Slot> {
        let epoch = self.epoch(now_nanos);
        let slot = self.slot(stripe, epoch);
        let target = (epoch + 1) << 1;
        let current = slot.state.load(Ordering::Acquire);
        if current == target || slot.rotate(current, target) {
            Some(slot)
        } else {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            None
        }
    }

    /// Records one inference that ended at `now_nanos` (clock time) and took `duration_nanos`,
    /// with the load observed during it.
    #[inline(always)]
    pub fn record(&self, now_nanos: u64, duration_nanos: u64, load: &LoadSample) {
        let index = owner::index();
        if index < self.owned {
            if let Some(slot) = self.slot_for(index, now_nanos) {
                Update::<true>::record(slot, duration_nanos, load);
            }
        } else {
            self.record_shared(now_nanos, duration_nanos, load);
        }
    }

    #[inline(never)]
    fn record_shared(&self, now_nanos: u64, duration_nanos: u64, load: &LoadSample) {
        if let Some(slot) = self.slot_for(self.owned, now_nanos) {
            Update::<false>::record(slot, duration_nanos, load);
        }
    }

    /// Records one failed inference that ended at `now_nanos`.
    pub fn record_failure(&self, now_nanos: u64) {
        let index = owner::index();
        if index < self.owned {
            if let Some(slot) = self.slot_for(index, now_nanos) {
                Update::<true>::add(&slot.failed, 1);
            }
        } else if let Some(slot) = self.slot_for(self.owned, now_nanos) {
            Update::<false>::add(&slot.failed, 1);
        }
    }

    /// Resets, on every stripe, the slot that the next slot length after `now_nanos` will
    /// use, so that writers do not pay for the reset. Meant for a housekeeping thread that
    /// calls it at least once per slot length.
    pub fn prepare(&self, now_nanos: u64) {
        let epoch = self.epoch(now_nanos) + 1;
        let target = (epoch + 1) << 1;
        for stripe in 0..=self.owned {
            let slot = self.slot(stripe, epoch);
            slot.rotate(slot.state.load(Ordering::Acquire), target);
        }
    }

    /// Returns the epoch of clock time `now_nanos`: the number of whole slot lengths since
    /// the clock's origin. Slot `epoch` covers `[epoch, epoch + 1)` slot lengths.
    pub fn epoch_at(&self, now_nanos: u64) -> u64 {
        self.epoch(now_nanos)
    }

    /// Sums the slots of epochs `first..=last` that still hold those epochs. A slot reused
    /// for a newer epoch (more than the window's span ago) is skipped, as in [`Self::stats`].
    pub fn stats_of_epochs(&self, first: u64, last: u64) -> WindowStats {
        let slots = last.saturating_sub(first) + 1;
        let mut stats = WindowStats::empty(self.slot_nanos.saturating_mul(slots));
        if first > last {
            return stats;
        }
        for stripe in 0..=self.owned {
            for epoch in first..=last {
                stats.add_slot(self.slot(stripe, epoch), (epoch + 1) << 1);
            }
        }
        stats.dropped = self.dropped.load(Ordering::Relaxed);
        stats
    }

    /// Sums the slots that cover the trailing `span` at clock time `now_nanos`.
    ///
    /// The span is rounded up to whole slots and capped at the window. It includes the current
    /// slot, which is still filling, so with 5 s slots a 10 s span covers between 5 and 10 s of
    /// past records plus the current ones.
    pub fn stats(&self, now_nanos: u64, span: Duration) -> WindowStats {
        let span_slots = (span.as_nanos().div_ceil(u128::from(self.slot_nanos)) as u64)
            .clamp(1, self.config.slots as u64);
        let newest = self.epoch(now_nanos);
        let oldest = newest.saturating_sub(span_slots - 1);
        let mut stats = WindowStats::empty(self.slot_nanos * span_slots);
        for stripe in 0..=self.owned {
            for epoch in oldest..=newest {
                stats.add_slot(self.slot(stripe, epoch), (epoch + 1) << 1);
            }
        }
        stats.dropped = self.dropped.load(Ordering::Relaxed);
        stats
    }
}
