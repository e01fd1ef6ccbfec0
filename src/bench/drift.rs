//! The drift test: did latency change between a baseline run and the current one?
//!
//! Two tests look at the same samples. The Mann–Whitney U test (normal approximation with
//! tie correction and continuity correction) tests whether one run's latencies tend to be
//! larger than the other's, whatever their distribution. A percentile bootstrap interval on
//! the ratio of the medians says by how much. A regression is declared only when both agree:
//! the rank test finds the current run slower at significance `alpha`, and the whole interval
//! lies above `1 + threshold`.
//!
//! Both tests treat samples as independent. Consecutive inferences are not quite: a
//! background job slows a stretch of them at once, which makes the p-value optimistic. The
//! threshold absorbs part of that, so keep it above the run-to-run noise of the machine.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::summary::percentile_sorted;

/// Settings of the drift test.
#[derive(Clone, Debug, PartialEq)]
pub struct DriftConfig {
    /// Smallest relative change of the median that counts, as a fraction (0.05 is 5 %).
    pub threshold: f64,
    /// Significance level of the one-sided rank test.
    pub alpha: f64,
    /// Confidence level of the bootstrap interval on the ratio of medians.
    pub confidence: f64,
    /// Number of bootstrap resamples.
    pub resamples: usize,
    /// Seed of the bootstrap's random numbers, so that a comparison always gives the same
    /// interval.
    pub seed: u64,
}

impl Default for DriftConfig {
    fn default() -> Self {
        DriftConfig { threshold: 0.05, alpha: 0.01, confidence: 0.95, resamples: 1000, seed: 1 }
    }
}

/// The outcome of a drift test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The current run is significantly slower, by more than the threshold.
    Regression,
    /// The current run is significantly faster, by more than the threshold.
    Improvement,
    /// No change beyond the threshold could be shown.
    NoChange,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::Regression => "regression",
            Verdict::Improvement => "improvement",
            Verdict::NoChange => "no significant change",
        })
    }
}

/// The Mann–Whitney U statistic of the current run against the baseline.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct MannWhitney {
    /// U of the current run: the number of (baseline, current) pairs where the current
    /// latency is larger, ties counting one half.
    pub u: f64,
    /// Standardised U under the null hypothesis, without continuity correction.
    pub z: f64,
    /// One-sided p-value for "the current run is slower".
    pub p_slower: f64,
    /// One-sided p-value for "the current run is faster".
    pub p_faster: f64,
}

/// The result of comparing a run against a baseline.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Drift {
    /// Samples in the baseline.
    pub baseline_count: usize,
    /// Samples in the current run.
    pub current_count: usize,
    /// Median latency of the baseline, in milliseconds.
    pub baseline_median_ms: f64,
    /// Median latency of the current run, in milliseconds.
    pub current_median_ms: f64,
    /// Current median divided by baseline median.
    pub median_ratio: f64,
    /// Lower end of the bootstrap interval on the ratio of medians.
    pub ratio_low: f64,
    /// Upper end of the bootstrap interval on the ratio of medians.
    pub ratio_high: f64,
    /// Confidence level of the interval.
    pub confidence: f64,
    /// The rank test.
    pub mann_whitney: MannWhitney,
    /// The probability that a random current sample is slower than a random baseline
    /// sample (ties count one half): `U / (n1 · n2)`.
    pub probability_slower: f64,
    /// The threshold used, as a fraction.
    pub threshold: f64,
    /// The significance level used.
    pub alpha: f64,
    /// The outcome.
    pub verdict: Verdict,
}

/// Compares `current` latencies against `baseline` latencies, both in nanoseconds.
///
/// Returns [`Verdict::NoChange`] with neutral statistics when either side is empty.
pub fn compare(baseline: &[u64], current: &[u64], config: &DriftConfig) -> Drift {
    let mann_whitney = mann_whitney(baseline, current);
    let pairs = baseline.len() as f64 * current.len() as f64;
    let baseline_median = median(baseline);
    let current_median = median(current);
    let median_ratio =
        if baseline_median > 0.0 { current_median / baseline_median } else { f64::NAN };
    let (ratio_low, ratio_high) = bootstrap_ratio(baseline, current, config);
    let slower = mann_whitney.p_slower < config.alpha && ratio_low > 1.0 + config.threshold;
    let faster = mann_whitney.p_faster < config.alpha && ratio_high < 1.0 - config.threshold;
    let verdict = if slower {
        Verdict::Regression
    } else if faster {
        Verdict::Improvement
    } else {
        Verdict::NoChange
    };
    Drift {
        baseline_count: baseline.len(),
        current_count: current.len(),
        baseline_median_ms: baseline_median / 1e6,
        current_median_ms: current_median / 1e6,
        median_ratio,
        ratio_low,
        ratio_high,
        confidence: config.confidence,
        mann_whitney,
        probability_slower: if pairs > 0.0 { mann_whitney.u / pairs } else { 0.5 },
        threshold: config.threshold,
        alpha: config.alpha,
        verdict,
    }
}

/// Runs the Mann–Whitney U test of `current` against `baseline`.
///
/// Ranks are mid-ranks, the variance is corrected for ties, and the p-values use the
/// normal approximation with a continuity correction of one half, which is accurate once
/// both sides have more than about 20 samples. When every value is tied, or a side is
/// empty, both p-values are 1.
pub fn mann_whitney(baseline: &[u64], current: &[u64]) -> MannWhitney {
    let n1 = baseline.len() as f64;
    let n2 = current.len() as f64;
    let neutral = MannWhitney { u: n1 * n2 / 2.0, z: 0.0, p_slower: 1.0, p_faster: 1.0 };
    if baseline.is_empty() || current.is_empty() {
        return neutral;
    }
    // (value, is_current), sorted by value: ties get the mean of the ranks they span.
    let mut all: Vec<(u64, bool)> = baseline.iter().map(|&v| (v, false)).collect();
    all.extend(current.iter().map(|&v| (v, true)));
    all.sort_unstable_by_key(|&(value, _)| value);
    let mut current_rank_sum = 0.0;
    let mut tie_term = 0.0;
    let mut start = 0;
    while start < all.len() {
        let mut end = start + 1;
        while end < all.len() && all[end].0 == all[start].0 {
            end += 1;
        }
        let tied = (end - start) as f64;
        // Ranks are 1-based: positions start..end hold ranks start+1 ..= end.
        let mid_rank = (start + 1 + end) as f64 / 2.0;
        let current_in_run = all[start..end].iter().filter(|&&(_, is_current)| is_current).count();
        current_rank_sum += mid_rank * current_in_run as f64;
        tie_term += tied * tied * tied - tied;
        start = end;
    }

    let n = n1 + n2;
    let u = current_rank_sum - n2 * (n2 + 1.0) / 2.0;
    let mean = n1 * n2 / 2.0;
    let variance = n1 * n2 / 12.0 * ((n + 1.0) - tie_term / (n * (n - 1.0)));
    if variance <= 0.0 {
        return neutral;
    }
    let sd = variance.sqrt();
    MannWhitney {
        u,
        z: (u - mean) / sd,
        p_slower: normal_upper_tail((u - mean - 0.5) / sd),
        p_faster: normal_upper_tail((mean - u - 0.5) / sd),
    }
}

/// Returns the percentile bootstrap interval of median(current) / median(baseline).
fn bootstrap_ratio(baseline: &[u64], current: &[u64], config: &DriftConfig) -> (f64, f64) {
    if baseline.is_empty() || current.is_empty() || config.resamples == 0 {
        return (f64::NAN, f64::NAN);
    }
    let mut rng = fastrand::Rng::with_seed(config.seed);
    let mut scratch_baseline = vec![0u64; baseline.len()];
    let mut scratch_current = vec![0u64; current.len()];
    let mut ratios = Vec::with_capacity(config.resamples);
    for _ in 0..config.resamples {
        for slot in scratch_baseline.iter_mut() {
            *slot = baseline[rng.usize(..baseline.len())];
        }
        for slot in scratch_current.iter_mut() {
            *slot = current[rng.usize(..current.len())];
        }
        let denominator = median_in_place(&mut scratch_baseline);
        if denominator > 0.0 {
            ratios.push(median_in_place(&mut scratch_current) / denominator);
        }
    }
    if ratios.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    ratios.sort_by(f64::total_cmp);
    let tail = (1.0 - config.confidence.clamp(0.0, 1.0)) / 2.0 * 100.0;
    (percentile_sorted(&ratios, tail), percentile_sorted(&ratios, 100.0 - tail))
}

fn median(values: &[u64]) -> f64 {
    median_in_place(&mut values.to_vec())
}

/// Returns the median of `values`, reordering them; NaN when empty.
fn median_in_place(values: &mut [u64]) -> f64 {
    let n = values.len();
    if n == 0 {
        return f64::NAN;
    }
    let (_, &mut upper, _) = values.select_nth_unstable(n / 2);
    if n % 2 == 1 {
        return upper as f64;
    }
    // The lower middle is the largest value left of the upper one after the partition.
    let lower = values[..n / 2].iter().copied().max().unwrap_or(upper);
    (lower as f64 + upper as f64) / 2.0
}

/// Returns P(Z > z) for a standard normal Z.
pub(crate) fn normal_upper_tail(z: f64) -> f64 {
    0.5 * erfc(z / std::f64::consts::SQRT_2)
}

/// The complementary error function, from a Chebyshev fit whose relative error is below
/// 1.2e-7 for every `x` (accurate in the far tails too, where p-values are tiny).
fn erfc(x: f64) -> f64 {
    const C: [f64; 10] = [
        -1.265_512_23,
        1.000_023_68,
        0.374_091_96,
        0.096_784_18,
        -0.186_288_06,
        0.278_868_07,
        -1.135_203_98,
        1.488_515_87,
        -0.822_152_23,
        0.170_872_77,
    ];
    let t = 1.0 / (1.0 + 0.5 * x.abs());
    let poly = C.iter().rev().fold(0.0, |acc, &c| acc * t + c);
    let value = t * (-x * x + poly).exp();
    if x >= 0.0 { value } else { 2.0 - value }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erfc_matches_known_values() {
        let cases = [(0.0, 1.0), (1.0, 0.157_299_207_050_285), (3.0, 2.209_049_699_858_544e-5)];
        for (x, expected) in cases {
            let relative = (erfc(x) - expected).abs() / expected;
            assert!(relative < 2e-7, "erfc({x}) = {}, expected {expected}", erfc(x));
        }
        assert!((erfc(-1.0) - 1.842_700_792_949_715).abs() < 2e-7);
    }

    #[test]
    fn normal_tail_at_1_96() {
        assert!((normal_upper_tail(1.959_963_984_540_054) - 0.025).abs() < 1e-8);
    }

    #[test]
    fn mann_whitney_without_ties() {
        let test = mann_whitney(&[1, 2, 3], &[4, 5, 6]);
        assert_eq!(test.u, 9.0);
        // Mean 4.5, variance 9/12 × 7 = 5.25.
        assert!((test.z - 4.5 / 5.25f64.sqrt()).abs() < 1e-12);
        assert!((test.p_slower - normal_upper_tail(4.0 / 5.25f64.sqrt())).abs() < 1e-12);
        assert!((test.p_faster - normal_upper_tail(-5.0 / 5.25f64.sqrt())).abs() < 1e-12);
    }

    #[test]
    fn mann_whitney_with_ties() {
        // Mid-ranks 1, 3, 3, 3, 5.5, 5.5: U = 3 + 5.5 + 5.5 - 6 = 8. The ties of 3 and 2
        // values cut the variance from 5.25 to 9/12 × (7 - 30/30) = 4.5, so the corrected
        // z is 3/√4.5 = √2 and p is erfc(1)/2.
        let test = mann_whitney(&[1, 2, 2], &[2, 3, 3]);
        assert_eq!(test.u, 8.0);
        assert!((test.p_slower - 0.078_649_603_525_142).abs() < 1e-7);
    }

    #[test]
    fn mann_whitney_all_tied_is_neutral() {
        let test = mann_whitney(&[5, 5, 5], &[5, 5]);
        assert_eq!(test.p_slower, 1.0);
        assert_eq!(test.p_faster, 1.0);
    }

    #[test]
    fn median_of_even_and_odd_counts() {
        assert_eq!(median(&[3, 1, 2]), 2.0);
        assert_eq!(median(&[4, 1, 3, 2]), 2.5);
        assert!(median(&[]).is_nan());
    }
}
