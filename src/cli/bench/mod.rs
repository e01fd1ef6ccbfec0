//! `inferwatch bench`: the latency distribution of a model, and its drift against a saved
//! baseline.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use inferwatch::bench::{Baseline, DriftConfig, MachineInfo, PlotFormat, Sample, Summary, Verdict};
use inferwatch::session::{check_inputs, load_backend};
use inferwatch::{Backend, BackendKind, Clock, SessionOptions, Tensor, TensorMap};
use serde::Serialize;

use self::alarms::{AlarmWatch, BenchAlarm};
use super::Failure;
use super::detection::DetectionArgs;
use super::inputs;
use super::run::{declared_inputs, parse_backend, parse_seconds};

mod alarms;

/// Iterations when neither --iterations nor --duration is given.
const DEFAULT_ITERATIONS: u64 = 200;

/// Options of `inferwatch bench`.
#[derive(Debug, Args)]
#[command(after_help = "With --profile or --drift, every timed inference is also evaluated as \
    `inferwatch run` does, and each alarm event is printed and listed under \"alarms\" \
    with --json; each raised alarm is a red vertical line on the --plot. Alarms do not change the exit \
    status: they report what happened on the device during the run, and the regression test \
    against --baseline is the pass or fail of a benchmark.\n\n\
    Exit status: 0 when the run completes without a regression; 1 when latency regressed \
    significantly beyond --threshold against --baseline, or when an inference fails; 2 when an \
    input is invalid (model, input file, baseline file, profile, flag).")]
pub(crate) struct BenchArgs {
    /// The ONNX model file.
    model: PathBuf,

    /// Backend that runs the model: tract (pure Rust) or ort (ONNX Runtime).
    #[arg(long, default_value = "tract", value_parser = parse_backend)]
    backend: BackendKind,

    /// An input tensor as NAME=FILE.npy; repeat for each input. Without it, the sample
    /// inputs shipped next to the model (NAME.npy) are used, or generated ones.
    #[arg(long = "input", value_name = "NAME=FILE")]
    inputs: Vec<String>,

    /// Number of timed inferences [default: 200 unless --duration is given].
    #[arg(long, value_name = "N", conflicts_with = "duration",
          value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    iterations: Option<u64>,

    /// Run timed inferences for this many seconds instead of a fixed count.
    #[arg(long, value_name = "SECS", value_parser = parse_seconds)]
    duration: Option<Duration>,

    /// Untimed inferences before the timed ones, to fill caches and let the CPU clock up.
    #[arg(long, value_name = "N", default_value_t = 10)]
    warmup: u64,

    /// Write this run's latencies as a baseline JSON file.
    #[arg(long, value_name = "FILE")]
    save_baseline: Option<PathBuf>,

    /// Compare this run against a baseline file written by --save-baseline, of the same model
    /// and backend.
    #[arg(long, value_name = "FILE")]
    baseline: Option<PathBuf>,

    /// Smallest slowdown of the median, in percent, that counts as a regression against
    /// --baseline.
    #[arg(long, value_name = "PCT", default_value_t = 5.0, value_parser = parse_percent)]
    threshold: f64,

    /// Draw latency over time and its distribution to FILE.svg (labelled) or FILE.png (no
    /// text).
    #[arg(long, value_name = "FILE")]
    plot: Option<PathBuf>,

    /// Print the result as one JSON object on stdout.
    #[arg(long)]
    json: bool,

    #[command(flatten)]
    detection: DetectionArgs,
}

fn parse_percent(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(percent) if percent.is_finite() && (0.0..1000.0).contains(&percent) => Ok(percent),
        _ => Err(format!("{text:?} is not a percentage between 0 and 1000")),
    }
}

/// The JSON object printed with `--json`.
#[derive(Serialize)]
struct JsonReport<'a> {
    model: &'a std::path::Path,
    model_sha256: &'a str,
    backend: &'a str,
    warmup: u64,
    wall_seconds: f64,
    summary: &'a Summary,
    baseline: Option<&'a std::path::Path>,
    drift: Option<&'a inferwatch::bench::Drift>,
    saved_baseline: Option<&'a std::path::Path>,
    plot: Option<&'a std::path::Path>,
    /// Alarm events, or null when neither --profile nor --drift is given.
    alarms: Option<&'a [BenchAlarm]>,
}

/// Checks the --plot and --save-baseline paths before the run, so that a typo fails in a
/// second rather than after the timed loop. The files are still written only at the end.
fn check_output_paths(args: &BenchArgs) -> Result<(), Failure> {
    if let Some(path) = &args.plot {
        PlotFormat::from_path(path).map_err(|e| Failure::input(format!("--plot: {e}")))?;
    }
    let outputs = [("--plot", &args.plot), ("--save-baseline", &args.save_baseline)];
    for (flag, path) in outputs {
        let Some(path) = path else { continue };
        let folder = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        if !folder.is_dir() {
            return Err(Failure::input(format!(
                "{flag} {}: the folder {} does not exist: create it or choose another path",
                path.display(),
                folder.display()
            )));
        }
    }
    Ok(())
}

pub(crate) fn run(args: BenchArgs) -> Result<(), Failure> {
    let model_sha256 = inferwatch::bench::sha256_file(&args.model).map_err(|e| {
        Failure::input(format!("failed to read model {}: {e}", args.model.display()))
    })?;
    // The baseline is checked before the run so that a wrong file fails in a second.
    let baseline = match &args.baseline {
        Some(path) => {
            let baseline = Baseline::load(path).map_err(Failure::input)?;
            baseline
                .check_matches(path, &args.model, &model_sha256, args.backend.as_str())
                .map_err(Failure::input)?;
            warn_if_other_machine(&baseline.machine);
            Some(baseline)
        }
        None => None,
    };

    check_output_paths(&args)?;
    let profile = args.detection.load_profile()?;

    let (backend, ordered) = open_backend(&args)?;
    for _ in 0..args.warmup {
        backend.run(ordered.clone()).map_err(Failure::runtime)?;
    }
    // Started after the warm-up, so that only timed inferences are evaluated.
    let watch = if args.detection.enabled() {
        Some(AlarmWatch::start(&args.detection, profile)?)
    } else {
        None
    };
    let (samples, timing) = measure(&args, backend.as_ref(), &ordered, watch.as_ref())?;
    let wall_ns = timing.wall_ns;
    let alarms = watch.map(|watch| watch.finish(timing.origin_ns, wall_ns));
    let latencies: Vec<u64> = samples.iter().map(|s| s.latency_ns).collect();
    let summary = Summary::from_nanos(&latencies, Some(wall_ns));

    let config = DriftConfig { threshold: args.threshold / 100.0, ..DriftConfig::default() };
    let drift =
        baseline.as_ref().map(|b| inferwatch::bench::compare(&b.samples_ns, &latencies, &config));
    if let Some(path) = &args.save_baseline {
        Baseline::new(
            &args.model,
            model_sha256.clone(),
            args.backend.as_str(),
            summary.clone(),
            &latencies,
        )
        .save(path)
        .map_err(Failure::input)?;
    }
    if let Some(path) = &args.plot {
        let title = format!("{} ({})", args.model.display(), args.backend);
        let markers = alarms.as_deref().map(alarms::raised_seconds).unwrap_or_default();
        inferwatch::bench::plot(path, &samples, &markers, &title).map_err(Failure::input)?;
    }

    if args.json {
        let report = JsonReport {
            model: &args.model,
            model_sha256: &model_sha256,
            backend: args.backend.as_str(),
            warmup: args.warmup,
            wall_seconds: wall_ns as f64 / 1e9,
            summary: &summary,
            baseline: args.baseline.as_deref(),
            drift: drift.as_ref(),
            saved_baseline: args.save_baseline.as_deref(),
            plot: args.plot.as_deref(),
            alarms: alarms.as_deref(),
        };
        let text = serde_json::to_string_pretty(&report)
            .map_err(|e| Failure::runtime(format!("failed to encode the result as JSON: {e}")))?;
        println!("{text}");
    } else {
        print_summary(&args, &summary, wall_ns);
        if let (Some(drift), Some(path)) = (&drift, &args.baseline) {
            print_drift(path, drift);
        }
        if let Some(alarms) = &alarms {
            alarms::print_alarms(alarms);
        }
    }

    match drift {
        Some(drift) if drift.verdict == Verdict::Regression => Err(Failure::runtime(format!(
            "median latency regressed from {:.3} ms to {:.3} ms ({:+.1} %, {:.0} % interval \
             {:+.1} % to {:+.1} %), beyond the {} % threshold",
            drift.baseline_median_ms,
            drift.current_median_ms,
            (drift.median_ratio - 1.0) * 100.0,
            drift.confidence * 100.0,
            (drift.ratio_low - 1.0) * 100.0,
            (drift.ratio_high - 1.0) * 100.0,
            args.threshold,
        ))),
        _ => Ok(()),
    }
}

/// Loads the model and returns it with its inputs, checked and in the model's order.
fn open_backend(args: &BenchArgs) -> Result<(std::sync::Arc<dyn Backend>, Vec<Tensor>), Failure> {
    let base = SessionOptions { backend: args.backend, ..SessionOptions::default() };
    let declared = declared_inputs(&args.model, &base)?;
    let inputs: TensorMap = if !args.inputs.is_empty() {
        inputs::read_given(&args.inputs)?
    } else if let Some((samples, paths)) = inputs::find_samples(&args.model, &declared)? {
        let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        tracing::info!("using the sample inputs {}", names.join(", "));
        samples
    } else {
        tracing::info!(
            "no --input given and no sample inputs next to the model: using generated inputs"
        );
        inputs::generate(&declared)
    };
    let options = inputs::options_for(&base, &inputs);
    let backend = load_backend(&args.model, &options).map_err(Failure::input)?;
    let ordered = check_inputs(backend.inputs(), inputs).map_err(Failure::input)?;
    Ok((backend, ordered))
}

/// Clock times of the timed loop.
struct Timing {
    /// Clock time when the loop started, the zero of every [`Sample::at_ns`].
    origin_ns: u64,
    /// Length of the whole loop.
    wall_ns: u64,
}

/// Runs the timed inferences and returns them with the clock times of the loop. With
/// `watch`, the inferences are timed on its recorder's clock and recorded into its window.
fn measure(
    args: &BenchArgs,
    backend: &dyn Backend,
    inputs: &[Tensor],
    watch: Option<&AlarmWatch>,
) -> Result<(Vec<Sample>, Timing), Failure> {
    let recorder = watch.map(AlarmWatch::recorder);
    let clock = recorder.map_or_else(Clock::new, |r| r.clock().clone());
    let (progress, limit) = match args.duration {
        Some(duration) => {
            let bar = ProgressBar::new(duration.as_millis() as u64);
            bar.set_style(style("{elapsed_precise} [{bar:40}] {msg}"));
            (bar, Limit::Time(duration.as_nanos() as u64))
        }
        None => {
            let count = args.iterations.unwrap_or(DEFAULT_ITERATIONS);
            let bar = ProgressBar::new(count);
            bar.set_style(style("{elapsed_precise} [{bar:40}] {pos}/{len} {msg}"));
            (bar, Limit::Count(count))
        }
    };
    let mut samples = Vec::with_capacity(match limit {
        Limit::Count(count) => count.min(10_000_000) as usize,
        Limit::Time(_) => 4096,
    });
    let origin = clock.now_nanos();
    loop {
        let elapsed = clock.now_nanos() - origin;
        let done = match limit {
            Limit::Count(count) => samples.len() as u64 >= count,
            Limit::Time(nanos) => elapsed >= nanos,
        };
        if done {
            break;
        }
        let batch = inputs.to_vec();
        let start = clock.now_nanos();
        backend.run(batch).map_err(Failure::runtime)?;
        let end = clock.now_nanos();
        // Recorded after both timestamps, so recording does not add to the latency.
        if let Some(recorder) = recorder {
            recorder.record_span(start, end);
        }
        samples.push(Sample { at_ns: end - origin, latency_ns: end - start });
        match limit {
            Limit::Count(_) => progress.inc(1),
            Limit::Time(_) => progress.set_position((end - origin) / 1_000_000),
        }
        if samples.len() % 64 == 0 {
            let latest = samples.last().map_or(0, |s| s.latency_ns);
            progress.set_message(format!("{:.3} ms", latest as f64 / 1e6));
        }
    }
    let wall_ns = clock.now_nanos() - origin;
    progress.finish_and_clear();
    Ok((samples, Timing { origin_ns: origin, wall_ns }))
}

enum Limit {
    Count(u64),
    Time(u64),
}

fn style(template: &str) -> ProgressStyle {
    // The templates are constants of this file, so the end-to-end tests catch a parse error.
    // The default style keeps the command running even then.
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar())
}

fn warn_if_other_machine(recorded: &MachineInfo) {
    let current = MachineInfo::current();
    if recorded.hostname != current.hostname
        || recorded.cpu_model != current.cpu_model
        || recorded.cpus != current.cpus
    {
        tracing::warn!(
            "the baseline was recorded on {} ({}, {} CPUs) and this run is on {} ({}, {} CPUs): \
             latencies of different machines are not comparable",
            recorded.hostname,
            recorded.cpu_model,
            recorded.cpus,
            current.hostname,
            current.cpu_model,
            current.cpus
        );
    }
}

fn print_summary(args: &BenchArgs, summary: &Summary, wall_ns: u64) {
    println!(
        "{} on {}: {} inferences in {:.2} s after {} warm-up runs",
        args.model.display(),
        args.backend,
        summary.count,
        wall_ns as f64 / 1e9,
        args.warmup
    );
    println!(
        "latency    mean {:.3} ms  std dev {:.3} ms  min {:.3}  p50 {:.3}  p90 {:.3}  p99 {:.3}  \
         max {:.3} ms",
        summary.mean_ms,
        summary.std_dev_ms,
        summary.min_ms,
        summary.p50_ms,
        summary.p90_ms,
        summary.p99_ms,
        summary.max_ms
    );
    println!("throughput {:.1} inferences/s", summary.throughput_per_s);
    if let Some(path) = &args.save_baseline {
        println!("baseline saved to {}", path.display());
    }
    if let Some(path) = &args.plot {
        println!("plot written to {}", path.display());
    }
}

fn print_drift(path: &std::path::Path, drift: &inferwatch::bench::Drift) {
    println!(
        "against {}: median {:.3} ms -> {:.3} ms (x{:.3}, {:.0} % interval x{:.3} to x{:.3}), \
         Mann-Whitney p(slower) = {:.2e}, p(faster) = {:.2e}: {}",
        path.display(),
        drift.baseline_median_ms,
        drift.current_median_ms,
        drift.median_ratio,
        drift.confidence * 100.0,
        drift.ratio_low,
        drift.ratio_high,
        drift.mann_whitney.p_slower,
        drift.mann_whitney.p_faster,
        drift.verdict
    );
}
