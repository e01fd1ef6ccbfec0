//! The drift detector: quiet on stationary heavy-tailed noise, fast on a 1.5× shift, and
//! with a baseline that follows slow change but not a step.

use inferwatch::detect::{DriftChange, DriftConfig, DriftDetector};

/// Draws a latency of about `median_ms` with log-normal noise (sigma 0.05) and, one datapoint
/// in fifty, a spike that multiplies it by a Pareto draw (shape 1.5, so a heavy tail: one
/// spike in ten is over 4.6 times the median).
fn noisy_latency(rng: &mut fastrand::Rng, median_ms: f64) -> f64 {
    // Box-Muller for one standard normal draw.
    let u1 = rng.f64().max(1e-12);
    let u2 = rng.f64();
    let normal = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
    let mut value = median_ms * (0.05 * normal).exp();
    if rng.f64() < 0.02 {
        // Pareto with shape 1.5: heavy tail, finite mean.
        value *= 1.0 / rng.f64().max(1e-9).powf(1.0 / 1.5);
    }
    value
}

#[test]
fn quiet_on_stationary_heavy_tailed_noise() {
    for seed in 0..20 {
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut detector = DriftDetector::new(DriftConfig::default());
        for i in 0..10_000 {
            let change = detector.observe(noisy_latency(&mut rng, 2.3));
            assert_eq!(change, None, "seed {seed}: alarm at datapoint {i}: {:?}", detector.state());
        }
        assert!(!detector.state().warming_up);
    }
}

/// Returns the noise source of `seed` and a default detector that has seen 200 benign
/// datapoints around `median_ms` without an alarm.
fn warmed_up(seed: u64, median_ms: f64) -> (fastrand::Rng, DriftDetector) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut detector = DriftDetector::new(DriftConfig::default());
    for _ in 0..200 {
        assert_eq!(detector.observe(noisy_latency(&mut rng, median_ms)), None, "seed {seed}");
    }
    (rng, detector)
}

/// Returns, for each of 20 seeds, after how many datapoints at `factor` times the median a
/// detector that saw 200 benign datapoints raises the alarm.
fn datapoints_to_alarm(factor: f64) -> Vec<(u64, usize)> {
    (0..20)
        .map(|seed| {
            let (mut rng, mut detector) = warmed_up(seed, 2.3);
            let raised_at = (1..=100)
                .find(|_| {
                    let value = noisy_latency(&mut rng, 2.3 * factor);
                    detector.observe(value) == Some(DriftChange::Raised)
                })
                .unwrap_or_else(|| panic!("seed {seed}: a {factor}x shift raises no alarm"));
            (seed, raised_at)
        })
        .collect()
}

#[test]
fn shift_of_half_alarms_in_ten() {
    for (seed, raised_at) in datapoints_to_alarm(1.5) {
        assert!(raised_at <= 10, "seed {seed}: raised after {raised_at} shifted datapoints");
    }
}

#[test]
fn doubling_alarms_on_the_fourth() {
    for (seed, raised_at) in datapoints_to_alarm(2.0) {
        assert!(raised_at <= 4, "seed {seed}: raised after {raised_at} shifted datapoints");
    }
}

#[test]
fn clears_after_the_shift_ends() {
    let mut detector =
        DriftDetector::new(DriftConfig { warmup_datapoints: 10, ..DriftConfig::default() });
    for _ in 0..10 {
        detector.observe(2.0);
    }
    let changes: Vec<_> = (0..4).filter_map(|_| detector.observe(4.0)).collect();
    assert_eq!(changes, [DriftChange::Raised]);
    assert!(detector.state().in_alarm);
    let changes: Vec<_> = (0..10).filter_map(|_| detector.observe(2.0)).collect();
    assert_eq!(changes, [DriftChange::Cleared]);
    assert_eq!(detector.state().statistic, 0.0);
}

#[test]
fn state_reports_baseline_and_statistic() {
    let mut detector =
        DriftDetector::new(DriftConfig { warmup_datapoints: 5, ..DriftConfig::default() });
    for value in [2.0, 2.0, 2.0, 4.0, 1.0] {
        assert_eq!(detector.observe(value), None);
    }
    let state = detector.state();
    assert!(!state.warming_up);
    assert_eq!(state.datapoints, 5);
    assert!((state.baseline_median_ms.unwrap() - 2.0).abs() < 1e-12);
    // Log deviations from ln 2 are 0, 0, 0, ln 2, ln 2: the MAD is 0.
    assert_eq!(state.baseline_log_scale, Some(0.0));
    assert_eq!(state.threshold, 8.0);
    assert_eq!(state.baseline_datapoints, 5);
    // ln(2.2 / 2) / 0.15 (the scale floor) = 0.635, less the slack of 1.5: the sum stays 0.
    detector.observe(2.2);
    assert_eq!(detector.state().statistic, 0.0);
    // A calm datapoint joins the baseline: the median of ln 1, ln 2 (×3), ln 2.2 and ln 4 is
    // still ln 2.
    assert_eq!(detector.state().baseline_datapoints, 6);
    assert!((detector.state().baseline_median_ms.unwrap() - 2.0).abs() < 1e-12);
    // One clamped outlier adds 4 - 1.5 = 2.5, and stays out of the baseline.
    detector.observe(200.0);
    assert!((detector.state().statistic - 2.5).abs() < 1e-12);
    assert_eq!(detector.state().baseline_datapoints, 6);
}

#[test]
fn ignores_values_that_are_not_latencies() {
    let mut detector =
        DriftDetector::new(DriftConfig { warmup_datapoints: 2, ..DriftConfig::default() });
    for value in [f64::NAN, 0.0, -1.0, f64::INFINITY] {
        assert_eq!(detector.observe(value), None);
    }
    assert_eq!(detector.state().datapoints, 0);
}

#[test]
fn long_alarm_clears_within_seconds() {
    let mut detector =
        DriftDetector::new(DriftConfig { warmup_datapoints: 10, ..DriftConfig::default() });
    for _ in 0..10 {
        detector.observe(2.0);
    }
    for _ in 0..1000 {
        detector.observe(4.0);
    }
    // The sum stops at twice the threshold, 16, and each baseline datapoint takes away
    // the slack of 1.5: cleared on the eleventh.
    assert_eq!(detector.state().statistic, 16.0);
    let cleared_at = (1..=100).find(|_| detector.observe(2.0) == Some(DriftChange::Cleared));
    assert_eq!(cleared_at, Some(11));
}

/// Feeds a detector 100 datapoints around 2 ms, then 1500 whose median rises steadily to
/// 2.8 ms (1.4×) and 300 more at 2.8 ms, and returns it with the changes it reported.
fn slow_rise(seed: u64, config: DriftConfig) -> (DriftDetector, Vec<(usize, DriftChange)>) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut detector = DriftDetector::new(config);
    let mut changes = Vec::new();
    for i in 0..1900 {
        let progress = (i as f64 - 100.0).clamp(0.0, 1500.0) / 1500.0;
        let median = 2.0 * 1.4f64.powf(progress);
        if let Some(change) = detector.observe(noisy_latency(&mut rng, median)) {
            changes.push((i, change));
        }
    }
    (detector, changes)
}

#[test]
fn baseline_follows_a_slow_rise() {
    for seed in 0..20 {
        let (detector, changes) = slow_rise(seed, DriftConfig::default());
        assert_eq!(changes, [], "seed {seed}");
        let baseline = detector.state().baseline_median_ms.unwrap();
        assert!((baseline / 2.8 - 1.0).abs() < 0.03, "seed {seed}: baseline {baseline} ms");
        assert_eq!(detector.state().baseline_datapoints, 300);
    }
}

#[test]
fn fixed_baseline_alarms_on_a_slow_rise() {
    // The same rise against the warm-up median alone is a 1.4× shift.
    let config = DriftConfig { baseline_datapoints: 0, ..DriftConfig::default() };
    for seed in 0..20 {
        let (detector, changes) = slow_rise(seed, config);
        let first = changes.first().copied();
        assert!(
            matches!(first, Some((i, DriftChange::Raised)) if i > 100),
            "seed {seed}: {changes:?}"
        );
        let baseline = detector.state().baseline_median_ms.unwrap();
        assert!((baseline / 2.0 - 1.0).abs() < 0.03, "seed {seed}: baseline {baseline} ms");
        assert_eq!(detector.state().baseline_datapoints, 30);
    }
}

#[test]
fn baseline_ignores_a_lasting_step() {
    for seed in 0..20 {
        let (mut rng, mut detector) = warmed_up(seed, 2.0);
        let calm = detector.state().baseline_datapoints;
        // Half an hour of doubled latency, as under a miner that takes half the CPU.
        let mut changes = Vec::new();
        for i in 0..1800 {
            if let Some(change) = detector.observe(noisy_latency(&mut rng, 4.0)) {
                changes.push((i, change));
            }
        }
        assert_eq!(changes.len(), 1, "seed {seed}: {changes:?}");
        assert_eq!(changes[0].1, DriftChange::Raised, "seed {seed}");
        assert!(changes[0].0 < 4, "seed {seed}: raised after {} datapoints", changes[0].0 + 1);
        let state = detector.state();
        assert!(state.in_alarm, "seed {seed}");
        assert_eq!(state.baseline_datapoints, calm, "seed {seed}: a shifted datapoint was kept");
        let baseline = state.baseline_median_ms.unwrap();
        assert!((baseline / 2.0 - 1.0).abs() < 0.03, "seed {seed}: baseline {baseline} ms");
    }
}

#[test]
fn short_span_keeps_warm_up_count() {
    // A span of 2 below a warm-up of 10 counts as 10: one calm datapoint does not replace the
    // warm-up median.
    let config =
        DriftConfig { warmup_datapoints: 10, baseline_datapoints: 2, ..Default::default() };
    let mut detector = DriftDetector::new(config);
    for _ in 0..10 {
        detector.observe(2.0);
    }
    assert_eq!(detector.observe(2.2), None);
    let state = detector.state();
    assert_eq!(state.baseline_datapoints, 10);
    assert!((state.baseline_median_ms.unwrap() - 2.0).abs() < 1e-12, "{state:?}");
}
