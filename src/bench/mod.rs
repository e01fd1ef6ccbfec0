//! Latency benchmarks of a model: summary statistics, saved baselines, a drift test against a
//! baseline, and a plot.
//!
//! `inferwatch bench` runs a model many times, keeps every latency as a [`Sample`], and turns
//! them into a [`Summary`] (mean, standard deviation, p50/p90/p99, throughput). A
//! [`Baseline`] stores the samples of one run as JSON, so that [`compare`] can check a later
//! run of the same model on the same machine against it. A Mann–Whitney U test and a
//! bootstrap interval on the ratio of medians decide whether latency drifted beyond a
//! threshold. [`plot`] draws the latency over time and its distribution to SVG or PNG.
//!
//! ```no_run
//! use inferwatch::bench::{Baseline, DriftConfig, Summary, compare};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let baseline = Baseline::load("baseline.json")?;
//! let current: Vec<u64> = vec![2_310_000, 2_290_000, 2_405_000]; // nanoseconds
//! let summary = Summary::from_nanos(&current, None);
//! let drift = compare(&baseline.samples_ns, &current, &DriftConfig::default());
//! println!("p50 {:.3} ms, verdict {}", summary.p50_ms, drift.verdict);
//! # Ok(())
//! # }
//! ```

mod baseline;
mod drift;
#[cfg(feature = "plot")]
mod plot;
mod summary;

pub use baseline::{
    BASELINE_FORMAT_VERSION, Baseline, MAX_BASELINE_SAMPLES, MachineInfo, sha256_file,
};
pub use drift::{Drift, DriftConfig, Verdict, compare, mann_whitney};
#[cfg(feature = "plot")]
#[cfg_attr(docsrs, doc(cfg(feature = "plot")))]
pub use plot::{PlotFormat, plot};
pub use summary::{Sample, Summary};
