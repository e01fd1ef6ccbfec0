use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::load::{LoadKind, LoadSample};

const SECOND: u64 = 1_000_000_000;

fn window(slots: usize, stripes: usize) -> RollingWindow {
    RollingWindow::new(WindowConfig { slot: Duration::from_secs(5), slots, stripes })
}

#[test]
fn exact_totals_from_many_threads() {
    for threads in [2usize, 4, 8] {
        let window = Arc::new(window(60, 4));
        let per_thread: u64 = 1_000_000;
        std::thread::scope(|scope| {
            for t in 0..threads {
                let window = window.clone();
                scope.spawn(move || {
                    for i in 0..per_thread {
                        // All records land in the first slot, so every one must be counted.
                        window.record(SECOND, 1_000 + (i % 7) + t as u64, &LoadSample::EMPTY);
                    }
                });
            }
        });
        let stats = window.stats(SECOND, Duration::from_secs(300));
        let expected_sum: u64 = (0..threads as u64)
            .map(|t| (0..per_thread).map(|i| 1_000 + (i % 7) + t).sum::<u64>())
            .sum();
        assert_eq!(stats.dropped, 0, "{threads} threads");
        assert_eq!(stats.count, threads as u64 * per_thread, "{threads} threads");
        assert_eq!(stats.sum_nanos, expected_sum, "{threads} threads");
        assert_eq!(stats.min_nanos(), Some(1_000));
        assert_eq!(stats.max_nanos(), Some(1_006 + threads as u64 - 1));
    }
}

#[test]
fn new_window_keeps_first_records() {
    // Threads that all start on a window never used before must not wait for one of them to
    // reset the slot: a slot never used contains zero counts already, and none is dropped.
    let threads = 4;
    for round in 0..300 {
        let window = Arc::new(window(60, 1));
        let barrier = Arc::new(std::sync::Barrier::new(threads));
        std::thread::scope(|scope| {
            for _ in 0..threads {
                let (window, barrier) = (window.clone(), barrier.clone());
                scope.spawn(move || {
                    barrier.wait();
                    for _ in 0..100 {
                        window.record(SECOND, 1_000, &LoadSample::EMPTY);
                    }
                });
            }
        });
        let stats = window.stats(SECOND, Duration::from_secs(300));
        assert_eq!(stats.dropped, 0, "round {round}");
        assert_eq!(stats.count, threads as u64 * 100, "round {round}");
    }
}

#[test]
fn exact_totals_when_threads_come_and_go() {
    // Threads that exit give their stripe to later threads, which go on adding to the same
    // counters with plain stores. With one owned stripe, threads of each wave take turns on
    // the owned and the shared stripe, and no record may be lost.
    let window = Arc::new(window(60, 1));
    let per_thread: u64 = 100_000;
    let waves = 20u64;
    for wave in 0..waves {
        std::thread::scope(|scope| {
            for t in 0..3 {
                let window = window.clone();
                scope.spawn(move || {
                    for _ in 0..per_thread {
                        window.record(SECOND, 100 + wave + t, &LoadSample::EMPTY);
                    }
                    window.record_failure(SECOND);
                });
            }
        });
    }
    let stats = window.stats(SECOND, Duration::from_secs(300));
    let expected_sum: u64 =
        (0..waves).flat_map(|wave| (0..3).map(move |t| per_thread * (100 + wave + t))).sum();
    assert_eq!(stats.dropped, 0);
    assert_eq!(stats.count, waves * 3 * per_thread);
    assert_eq!(stats.sum_nanos, expected_sum);
    assert_eq!(stats.failed, waves * 3);
    assert_eq!(stats.min_nanos(), Some(100));
    assert_eq!(stats.max_nanos(), Some(100 + waves - 1 + 2));
}

#[test]
fn slots_rotate_out_of_the_window() {
    let window = window(3, 1);
    // Slots are 5 s; the window spans 3 of them.
    window.record(0, 10, &LoadSample::EMPTY);
    window.record(5 * SECOND, 20, &LoadSample::EMPTY);
    window.record(10 * SECOND + 1, 30, &LoadSample::EMPTY);
    let full = window.stats(10 * SECOND + 1, Duration::from_secs(15));
    assert_eq!(full.count, 3);
    assert_eq!(full.sum_nanos, 60);
    // One slot later the first record has left the window.
    let later = window.stats(15 * SECOND, Duration::from_secs(15));
    assert_eq!(later.count, 2);
    assert_eq!(later.sum_nanos, 50);
    assert_eq!(later.min_nanos(), Some(20));
    // A span of one slot covers only the current one.
    let last = window.stats(10 * SECOND + 2, Duration::from_secs(5));
    assert_eq!(last.count, 1);
    assert_eq!(last.sum_nanos, 30);
}

#[test]
fn reused_slot_is_reset() {
    let window = window(3, 1);
    // The ring has 4 slots: epoch 0 and epoch 4 share one.
    window.record(SECOND, 100, &LoadSample::EMPTY);
    window.record(21 * SECOND, 7, &LoadSample::EMPTY);
    let stats = window.stats(21 * SECOND, Duration::from_secs(15));
    assert_eq!(stats.count, 1);
    assert_eq!(stats.sum_nanos, 7);
    assert_eq!(stats.max_nanos(), Some(7));
}

#[test]
fn late_record_for_a_reused_slot_is_dropped() {
    let window = window(3, 1);
    window.record(21 * SECOND, 7, &LoadSample::EMPTY);
    // A writer that read the clock 20 s earlier finds its slot taken by a newer epoch.
    window.record(SECOND, 100, &LoadSample::EMPTY);
    let stats = window.stats(21 * SECOND, Duration::from_secs(15));
    assert_eq!(stats.count, 1);
    assert_eq!(stats.dropped, 1);
}

#[test]
fn prepare_resets_the_next_slot() {
    let window = window(3, 2);
    window.record(SECOND, 100, &LoadSample::EMPTY);
    window.prepare(16 * SECOND);
    // Epoch 4 now owns the slot epoch 0 used; the old record is gone from every span.
    assert_eq!(window.stats(20 * SECOND, Duration::from_secs(15)).count, 0);
    window.record(20 * SECOND, 5, &LoadSample::EMPTY);
    assert_eq!(window.stats(20 * SECOND, Duration::from_secs(15)).count, 1);
}

#[test]
fn failures_are_counted_apart() {
    let window = window(60, 1);
    window.record(SECOND, 10, &LoadSample::EMPTY);
    window.record_failure(SECOND);
    window.record_failure(2 * SECOND);
    let stats = window.stats(2 * SECOND, Duration::from_secs(300));
    assert_eq!(stats.count, 1);
    assert_eq!(stats.failed, 2);
}

#[test]
fn load_is_averaged_over_inferences_that_saw_it() {
    let window = window(60, 1);
    window.record(SECOND, 10, &LoadSample::EMPTY.with(LoadKind::Gpu, 20.0));
    window.record(SECOND, 10, &LoadSample::EMPTY.with(LoadKind::Gpu, 50.5));
    window.record(SECOND, 10, &LoadSample::EMPTY.with(LoadKind::Cpu, 12.25));
    let stats = window.stats(SECOND, Duration::from_secs(300));
    assert_eq!(stats.load_mean(LoadKind::Gpu), Some(35.25));
    assert_eq!(stats.load_mean(LoadKind::Cpu), Some(12.25));
    assert_eq!(stats.load_mean(LoadKind::ForeignGpu), None);
}

#[test]
fn empty_window_has_no_values() {
    let stats = window(60, 1).stats(0, Duration::from_secs(300));
    assert_eq!(stats.count, 0);
    assert_eq!(stats.mean_nanos(), None);
    assert_eq!(stats.quantile_nanos(0.5), None);
    assert_eq!(stats.min_nanos(), None);
}

fn exact_quantile(sorted: &[u64], q: f64) -> f64 {
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1] as f64
}

proptest! {
    #[test]
    fn percentiles_within_one_percent(
        values in prop::collection::vec(1u64..20_000_000_000, 1..2_000),
    ) {
        let window = window(60, 1);
        for &value in &values {
            window.record(SECOND, value, &LoadSample::EMPTY);
        }
        let stats = window.stats(SECOND, Duration::from_secs(300));
        let mut sorted = values.clone();
        sorted.sort_unstable();
        for q in [0.5, 0.9, 0.99, 1.0] {
            let exact = exact_quantile(&sorted, q);
            let estimate = stats.quantile_nanos(q).unwrap();
            let error = (estimate - exact).abs() / exact;
            prop_assert!(error < 0.01, "q {q}: exact {exact}, estimate {estimate}");
        }
        let exact_mean = values.iter().sum::<u64>() as f64 / values.len() as f64;
        prop_assert_eq!(stats.mean_nanos(), Some(exact_mean));
    }
}

proptest! {
    #[test]
    fn epoch_is_exact_division(now in any::<u64>(), slot_nanos in 1u64..100_000_000_000) {
        let window = RollingWindow::new(WindowConfig {
            slot: Duration::from_nanos(slot_nanos),
            slots: 4,
            stripes: 1,
        });
        prop_assert_eq!(window.epoch(now), now / slot_nanos);
    }
}
