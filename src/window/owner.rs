//! Which stripe of a [`RollingWindow`](super::RollingWindow) a recording thread writes to.
//!
//! The process has [`OWNERS`] owner indices. A thread claims the lowest free index the
//! first time it records and gives it back when it exits, so a program that starts fresh
//! threads keeps reusing the low indices. Only one live thread has index `i` at a time.
//! So stripe `i` of every window (when the window has that many) has a single writer, and
//! that thread updates its counters with plain loads and stores instead of locked
//! read-modify-writes. A thread that finds every index taken, or that records during its own
//! exit, gets [`SHARED`] and writes to the window's shared stripe with atomic adds.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

/// Number of owner indices in the process, one bit each in [`CLAIMED`].
pub(crate) const OWNERS: usize = 64;
/// The index of a thread without its own: larger than any window's number of owned stripes.
pub(crate) const SHARED: usize = OWNERS;
const UNCLAIMED: usize = usize::MAX;

/// Bit `i` is set while a live thread has claimed owner index `i`.
static CLAIMED: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// This thread's owner index, [`SHARED`], or [`UNCLAIMED`] before its first record.
    static INDEX: Cell<usize> = const { Cell::new(UNCLAIMED) };
    /// Gives the index back when the thread exits. Touched once, when the index is claimed,
    /// which registers its destructor.
    static RELEASE: Release = const { Release };
}

struct Release;

impl Drop for Release {
    fn drop(&mut self) {
        // Any record made after this point, by a later destructor of this thread, goes to
        // the shared stripe, so the next holder of the index is its only writer.
        let index = INDEX.with(|cell| cell.replace(SHARED));
        if index < OWNERS {
            // Release: the next thread to claim the index observes every store this thread made.
            CLAIMED.fetch_and(!(1 << index), Ordering::Release);
        }
    }
}

/// Returns this thread's owner index, claiming one on the first call.
#[inline]
pub(crate) fn index() -> usize {
    let index = INDEX.with(Cell::get);
    if index != UNCLAIMED { index } else { claim() }
}

#[cold]
fn claim() -> usize {
    let mut claimed = CLAIMED.load(Ordering::Relaxed);
    let mut index = loop {
        if claimed == u64::MAX {
            break SHARED;
        }
        let free = claimed.trailing_ones() as usize;
        // Acquire: pairs with the release of the index's previous holder.
        match CLAIMED.compare_exchange_weak(
            claimed,
            claimed | (1 << free),
            Ordering::Acquire,
            Ordering::Relaxed,
        ) {
            Ok(_) => break free,
            Err(actual) => claimed = actual,
        }
    };
    if index < OWNERS && RELEASE.try_with(|_| ()).is_err() {
        // The thread is already exiting and could not give the index back: return it now.
        CLAIMED.fetch_and(!(1 << index), Ordering::Release);
        index = SHARED;
    }
    INDEX.with(|cell| cell.set(index));
    index
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exited_threads_give_their_index_back() {
        // Far more threads than OWNERS run one after the other. Each exits before the next
        // starts, so with indices given back every one of them finds a free index, whatever
        // the other tests of this process hold at the time.
        for round in 0..4 * OWNERS {
            let index = std::thread::spawn(index).join().expect("thread ran");
            assert!(index < OWNERS, "thread {round} found no free index");
        }
    }

    #[test]
    fn live_threads_hold_distinct_indices() {
        let barrier = std::sync::Barrier::new(2);
        let [a, b] = std::thread::scope(|scope| {
            let claim_and_wait = || {
                let claimed = index();
                barrier.wait();
                claimed
            };
            let a = scope.spawn(claim_and_wait);
            let b = scope.spawn(claim_and_wait);
            [a.join().expect("thread ran"), b.join().expect("thread ran")]
        });
        assert!(a < OWNERS, "first thread got index {a}");
        assert!(b < OWNERS, "second thread got index {b}");
        assert_ne!(a, b, "two live threads hold the same owner index");
    }
}
