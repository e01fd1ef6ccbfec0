//! `inferwatch run`: the main job.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Args;
use inferwatch::detect::{
    AlarmEvent, DEFAULT_DRIFT_PERIOD, Detector, DriftState, MetricValue, Profile,
};
use inferwatch::load::{FileSource, read_number};
use inferwatch::{
    BackendKind, InstrumentedSession, LoadKind, Monitor, SessionError, SessionOptions, TensorInfo,
    TensorMap, WindowConfig,
};
use serde::Serialize;

use super::Failure;
use super::detection::DetectionArgs;
use super::inputs::{self, InputOrigin};
use super::status::StatusLine;

/// Options of `inferwatch run`.
#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// The ONNX model file.
    model: PathBuf,

    /// Backend that runs the model: tract (pure Rust) or ort (ONNX Runtime).
    #[arg(long, default_value = "tract", value_parser = parse_backend)]
    backend: BackendKind,

    /// An input tensor as NAME=FILE.npy; repeat for each input. Without it, the sample
    /// inputs shipped next to the model (NAME.npy) are used, or generated ones.
    #[arg(long = "input", value_name = "NAME=FILE")]
    inputs: Vec<String>,

    /// Stop after this many seconds; without it, run until Ctrl-C.
    #[arg(long, value_name = "SECS", value_parser = parse_seconds)]
    duration: Option<Duration>,

    /// Inferences per second over all threads; 0 runs as fast as possible.
    #[arg(long, value_name = "HZ", default_value_t = 0.0, value_parser = parse_rate)]
    rate: f64,

    /// Threads that run inferences at the same time, sharing one model.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    threads: u16,

    /// Span of the rolling window the statistics cover, in seconds.
    #[arg(long, value_name = "SECS", default_value = "300", value_parser = parse_seconds)]
    window: Duration,

    /// Read a load metric from a file holding one number, as METRIC=PATH; METRIC is
    /// gpu_load_per_inference, cpu_load_per_inference, foreign_gpu_load or foreign_cpu_load.
    #[arg(long = "load-file", value_name = "METRIC=PATH")]
    load_files: Vec<String>,

    /// Print one JSON snapshot per second on stdout, one object per line.
    #[arg(long)]
    json: bool,

    /// Configuration file (TOML), such as one with a [defender] section.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,

    #[cfg(feature = "defender")]
    #[command(flatten)]
    defender: Box<super::report::DefenderArgs>,
    /// GPU load through NVML: auto (when the NVIDIA driver is installed), nvml (required:
    /// fail without it) or off.
    #[arg(long, value_name = "MODE", default_value = "auto", value_parser = ["auto", "nvml", "off"])]
    gpu: String,

    /// A GPU to sample, by NVML index or UUID; repeat for several. Default: the GPUs this
    /// process uses, otherwise GPU 0.
    #[arg(long = "gpu-id", value_name = "ID")]
    gpu_ids: Vec<String>,

    /// Export metrics over OTLP to this collector URL, such as http://127.0.0.1:4318.
    /// Setting OTEL_EXPORTER_OTLP_ENDPOINT also turns export on.
    #[cfg(feature = "otel")]
    #[arg(long, value_name = "URL")]
    otlp_endpoint: Option<String>,

    /// OTLP transport: grpc or http/protobuf. Default: OTEL_EXPORTER_OTLP_PROTOCOL, else
    /// http/protobuf.
    #[cfg(feature = "otel")]
    #[arg(long, value_name = "PROTOCOL", value_parser = parse_protocol)]
    otlp_protocol: Option<inferwatch::otel::Protocol>,

    /// With --backend ort: path of libonnxruntime.so (such as
    /// .venv/lib/python3.11/site-packages/onnxruntime/capi/libonnxruntime.so.1.31.1). Without
    /// it, ORT_DYLIB_PATH, then the onnxruntime Python package, then the system are searched.
    #[cfg(feature = "ort")]
    #[arg(long, value_name = "PATH")]
    ort_lib: Option<PathBuf>,

    /// With --backend ort: the execution provider, cpu or cuda. cuda fails when CUDA cannot be
    /// used, rather than running on the CPU.
    #[cfg(feature = "ort")]
    #[arg(long, value_name = "EP", default_value = "cpu")]
    ep: inferwatch::session::ExecutionProvider,

    /// With --backend ort: threads each inference uses inside one operator.
    #[cfg(feature = "ort")]
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    intra_threads: u16,
    #[command(flatten)]
    detection: DetectionArgs,

    /// Read the simulated GPU from DIR: gpu_load_fb as gpu_load_per_inference, and
    /// gpu_inference_fb (milliseconds) as the avg_inference_time that the profile evaluates.
    #[arg(long, value_name = "DIR")]
    feedback_dir: Option<PathBuf>,
}

#[cfg(feature = "otel")]
fn parse_protocol(text: &str) -> Result<inferwatch::otel::Protocol, String> {
    text.parse()
}

pub(super) fn parse_backend(text: &str) -> Result<BackendKind, String> {
    text.parse()
}

pub(super) fn parse_seconds(text: &str) -> Result<Duration, String> {
    match text.parse::<f64>() {
        Ok(secs) if secs.is_finite() && secs > 0.0 && secs < 1e9 => {
            Ok(Duration::from_secs_f64(secs))
        }
        _ => Err(format!("{text:?} is not a positive number of seconds below 1e9")),
    }
}

fn parse_rate(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate >= 0.0 => Ok(rate),
        _ => Err(format!("{text:?} is not a rate in inferences per second (0 or more)")),
    }
}

/// The JSON object printed each second with `--json`.
#[derive(Serialize)]
struct JsonLine<'a> {
    model: &'a str,
    backend: &'a str,
    elapsed_seconds: f64,
    #[serde(flatten)]
    snapshot: inferwatch::Snapshot,
    /// Metrics read from the feedback files in place of measured ones.
    #[serde(skip_serializing_if = "Option::is_none")]
    simulated: Option<BTreeMap<String, f64>>,
    /// Alarm events since the previous line.
    #[serde(skip_serializing_if = "Option::is_none")]
    alarms: Option<Vec<AlarmEvent>>,
    /// Behaviors and indicators in alarm now.
    #[serde(skip_serializing_if = "Option::is_none")]
    active_alarms: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    drift: Option<DriftState>,
}

pub(crate) fn run(args: RunArgs) -> Result<(), Failure> {
    let profile = args.detection.load_profile()?;
    let detecting = args.detection.enabled();
    if detecting && args.detection.eval_period > args.window {
        // A datapoint covers one evaluation period of the window, so a longer period would
        // silently evaluate only the window's span.
        return Err(Failure::input(format!(
            "--eval-period {} s is longer than --window {} s: each profile datapoint covers              one period of the window, so raise --window or lower --eval-period",
            args.detection.eval_period.as_secs_f64(),
            args.window.as_secs_f64()
        )));
    }
    let mut slot = slot_for(args.window);
    if detecting {
        // Drift datapoints are one second apart and must not share a slot.
        slot = slot.min(DEFAULT_DRIFT_PERIOD);
    }
    let mut window = WindowConfig::spanning(args.window, slot);
    // One stripe per inference thread, so that none of them shares a stripe.
    window.stripes = window.stripes.max(usize::from(args.threads));
    let mut builder = Monitor::builder().window(window);
    if let Some(dir) = &args.feedback_dir {
        builder = builder.load_source(FileSource::new(dir.join(GPU_LOAD_FILE), LoadKind::Gpu));
    }
    for text in &args.load_files {
        let (metric, path) = inputs::parse_pair("--load-file", text)?;
        let kind: LoadKind = metric
            .parse()
            .map_err(|e: String| Failure::input(format!("--load-file {text}: {e}")))?;
        builder = builder.load_source(FileSource::new(path, kind));
    }
    builder = configure_gpu(builder, &args)?;
    let monitor = builder
        .build()
        .map_err(|e| Failure::runtime(format!("failed to start the sampler thread: {e}")))?;

    #[cfg(feature = "defender")]
    let reporting = super::report::start(&args.defender, args.config.as_deref(), &monitor)?;
    #[cfg(not(feature = "defender"))]
    if let Some(path) = &args.config {
        inferwatch::config::Config::load(path).map_err(Failure::input)?;
    }

    #[cfg(feature = "otel")]
    let exporter = start_exporter(&monitor, &args)?;
    let (session, inputs) = open_session(&monitor, &args)?;
    // One checked run before the loop: a wrong input fails here with a clear error.
    session.run(inputs.clone()).map_err(Failure::input)?;
    // Started once the model runs, so that the first datapoint contains inferences.
    let detector = detecting.then(|| build_detector(&monitor, &args, profile));
    let alarms = detector.as_ref().map(Detector::subscribe);
    if let Some(detector) = &detector {
        forward_alarms(
            detector,
            #[cfg(feature = "otel")]
            exporter.as_ref(),
            #[cfg(feature = "defender")]
            reporting.as_ref(),
        );
        detector
            .start()
            .map_err(|e| Failure::runtime(format!("failed to start the detector thread: {e}")))?;
    }

    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc::set_handler(move || flag.store(true, Ordering::Relaxed))
        .map_err(|e| Failure::runtime(format!("failed to install the Ctrl-C handler: {e}")))?;

    let started = Instant::now();
    let failures = Arc::new(AtomicU64::new(0));
    let workers = start_workers(&args, &session, &inputs, &stop, &failures)?;
    let model_name = args.model.display().to_string();
    let report = |monitor: &Monitor, out: &mut dyn Write| {
        let line = JsonLine {
            model: &model_name,
            backend: args.backend.as_str(),
            elapsed_seconds: started.elapsed().as_secs_f64(),
            snapshot: monitor.snapshot(),
            simulated: args.feedback_dir.as_deref().map(read_simulated),
            alarms: alarms.as_ref().map(|receiver| receiver.try_iter().collect()),
            active_alarms: detector.as_ref().map(active_names),
            drift: detector.as_ref().and_then(Detector::drift_state),
        };
        let text = serde_json::to_string(&line).unwrap_or_default();
        let _ = writeln!(out, "{text}");
        let _ = out.flush();
    };

    let mut status = StatusLine::new(std::io::stderr().is_terminal() && !args.json);
    let mut next_tick = started + Duration::from_secs(1);
    loop {
        let deadline_reached = args.duration.is_some_and(|d| started.elapsed() >= d);
        if deadline_reached
            || stop.load(Ordering::Relaxed)
            || workers.iter().all(|w| w.is_finished())
        {
            break;
        }
        let now = Instant::now();
        if now >= next_tick {
            next_tick += Duration::from_secs(1);
            if args.json {
                report(&monitor, &mut std::io::stdout().lock());
            }
            let active = detector.as_ref().map(active_names).unwrap_or_default();
            status.update(started.elapsed(), &monitor.snapshot(), &active);
        }
        let wake = args.duration.map_or(next_tick, |d| next_tick.min(started + d));
        std::thread::sleep(
            wake.saturating_duration_since(Instant::now()).min(Duration::from_millis(100)),
        );
    }
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        let _ = worker.join();
    }
    status.finish();
    // The detector stops first so that its last alarm events still reach the publisher.
    if let Some(detector) = &detector {
        detector.stop();
    }
    #[cfg(feature = "defender")]
    if let Some(reporting) = reporting {
        reporting.stop();
    }
    monitor.shutdown();
    #[cfg(feature = "otel")]
    if let Some(exporter) = exporter {
        stop_exporter(&exporter);
    }
    if args.json {
        report(&monitor, &mut std::io::stdout().lock());
    } else {
        super::status::print_summary(started.elapsed(), &monitor.snapshot());
    }
    Ok(())
}

/// Applies `--gpu` and `--gpu-id`: with `nvml` or a GPU id, NVML must open or the run fails.
#[cfg(feature = "nvml")]
fn configure_gpu(
    builder: inferwatch::MonitorBuilder,
    args: &RunArgs,
) -> Result<inferwatch::MonitorBuilder, Failure> {
    use inferwatch::load::nvml::{GpuId, NvmlGpus, NvmlOptions};
    if args.gpu == "off" {
        return Ok(builder.without_nvml());
    }
    let gpus = args
        .gpu_ids
        .iter()
        .map(|text| text.parse::<GpuId>().map_err(|e| Failure::input(format!("--gpu-id: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    if args.gpu == "auto" && gpus.is_empty() {
        return Ok(builder);
    }
    let gpus =
        NvmlGpus::open(&NvmlOptions { gpus, ..NvmlOptions::default() }).map_err(Failure::input)?;
    Ok(builder.nvml(gpus))
}

#[cfg(not(feature = "nvml"))]
fn configure_gpu(
    builder: inferwatch::MonitorBuilder,
    args: &RunArgs,
) -> Result<inferwatch::MonitorBuilder, Failure> {
    if args.gpu == "nvml" || !args.gpu_ids.is_empty() {
        return Err(Failure::input(
            "NVML is not part of this build: rebuild with --features nvml, or pass --gpu off",
        ));
    }
    Ok(builder)
}

/// Starts the OTLP exporter when `--otlp-endpoint` or an `OTEL_*` endpoint variable is set.
#[cfg(feature = "otel")]
fn start_exporter(
    monitor: &Monitor,
    args: &RunArgs,
) -> Result<Option<inferwatch::otel::OtelExporter>, Failure> {
    use inferwatch::otel::{OtelConfig, OtelExporter};
    let config = OtelConfig {
        endpoint: args.otlp_endpoint.clone(),
        protocol: args.otlp_protocol,
        model_name: Some(args.model.display().to_string()),
        ..OtelConfig::default()
    };
    if !config.endpoint_configured() {
        return Ok(None);
    }
    OtelExporter::start(monitor, &config).map(Some).map_err(Failure::input)
}

/// Exports one last time and logs the export counts.
#[cfg(feature = "otel")]
fn stop_exporter(exporter: &inferwatch::otel::OtelExporter) {
    if let Err(error) = exporter.shutdown() {
        tracing::warn!("{error}");
    }
    let counts = exporter.counts();
    tracing::info!(
        endpoint = exporter.endpoint(),
        exported = counts.exported,
        failed = counts.failed,
        "OTLP exporter stopped"
    );
}

/// The feedback file whose number is the simulated GPU load, in percent.
const GPU_LOAD_FILE: &str = "gpu_load_fb";
/// The feedback file whose number is the simulated inference time, in milliseconds.
const GPU_INFERENCE_FILE: &str = "gpu_inference_fb";

fn build_detector(monitor: &Monitor, args: &RunArgs, profile: Option<Profile>) -> Detector {
    let mut builder = args.detection.detector_builder(monitor, profile);
    if let Some(dir) = &args.feedback_dir {
        let path = dir.join(GPU_INFERENCE_FILE);
        builder = builder.metric_source(move |name: &str| {
            (name == "avg_inference_time")
                .then(|| read_number(&path).ok())
                .flatten()
                .map(MetricValue::Number)
        });
    }
    builder.build()
}

/// Forwards every alarm event of `detector` to the `inferwatch.alarm.active` gauge when OTLP
/// export is on, and to the thing's alarm topic when Device Defender reports are on.
///
/// The gauge starts at 0 for every behavior of the profile and for drift, so that a
/// collector sees the behaviors before they alarm; mining indicators appear at their first
/// event. An event sets 1 when it raises the alarm and 0 when it clears or invalidates it.
#[cfg_attr(not(any(feature = "otel", feature = "defender")), allow(unused_variables))]
fn forward_alarms(
    detector: &Detector,
    #[cfg(feature = "otel")] exporter: Option<&inferwatch::otel::OtelExporter>,
    #[cfg(feature = "defender")] reporting: Option<&super::report::Reporting>,
) {
    #[cfg(feature = "otel")]
    if let Some(exporter) = exporter {
        let states = exporter.alarms().clone();
        for status in detector.behaviors() {
            states.set(&status.behavior, false);
        }
        if detector.drift_state().is_some() {
            states.set(inferwatch::detect::DRIFT_BEHAVIOR, false);
        }
        detector.on_alarm(move |event| {
            states.set(&event.behavior, event.state == inferwatch::detect::AlarmState::InAlarm);
        });
    }
    #[cfg(feature = "defender")]
    if let Some(reporting) = reporting {
        let publisher = reporting.publisher().clone();
        detector.on_alarm(move |event| {
            if let Err(error) = publisher.publish_alarm(event) {
                tracing::warn!(behavior = %event.behavior, %error, "failed to publish the alarm");
            }
        });
    }
}

fn read_simulated(dir: &Path) -> BTreeMap<String, f64> {
    let mut simulated = BTreeMap::new();
    if let Ok(value) = read_number(&dir.join(GPU_INFERENCE_FILE)) {
        simulated.insert("avg_inference_time".to_owned(), value);
    }
    if let Ok(value) = read_number(&dir.join(GPU_LOAD_FILE)) {
        simulated.insert("gpu_load_per_inference".to_owned(), value);
    }
    simulated
}

fn active_names(detector: &Detector) -> Vec<String> {
    detector.active_alarms().into_iter().map(|event| event.behavior).collect()
}

/// Picks a slot length: 5 s for the usual windows, shorter for windows under a minute so
/// that the window keeps at least 12 slots.
fn slot_for(window: Duration) -> Duration {
    (window / 12).clamp(Duration::from_millis(100), inferwatch::window::DEFAULT_SLOT)
}

fn open_session(
    monitor: &Monitor,
    args: &RunArgs,
) -> Result<(InstrumentedSession, TensorMap), Failure> {
    let base = SessionOptions { backend: args.backend, ..SessionOptions::default() };
    // One ONNX Runtime session per worker thread, all created before the timed loop, so that
    // no worker waits for another.
    #[cfg(feature = "ort")]
    let base = SessionOptions {
        ort: inferwatch::session::OrtOptions {
            library: args.ort_lib.clone(),
            execution_provider: args.ep,
            intra_threads: Some(usize::from(args.intra_threads)),
            pool_size: Some(usize::from(args.threads)),
            ..Default::default()
        },
        ..base
    };

    let declared = declared_inputs(&args.model, &base)?;
    let given = inputs::read_given(&args.inputs)?;
    let (mut inputs, origin) = match inputs::find_samples(&args.model, &declared)? {
        Some((samples, paths)) if args.inputs.is_empty() => (samples, InputOrigin::Sample(paths)),
        _ if !args.inputs.is_empty() => (given, InputOrigin::Given),
        _ => (inputs::generate(&declared), InputOrigin::Generated),
    };
    if origin == InputOrigin::Given {
        // Inputs the user left out are checked, and reported, by the session.
        for info in &declared {
            if inputs.get(&info.name).is_none() {
                return Err(Failure::input(SessionError::MissingInput {
                    name: info.name.clone(),
                    expected: format!("{}{}", info.dtype, info.shape_string()),
                }));
            }
        }
    }
    match &origin {
        InputOrigin::Sample(paths) => {
            let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
            tracing::info!("using the sample inputs {}", names.join(", "));
        }
        InputOrigin::Generated => {
            let shapes: Vec<String> = inputs
                .iter()
                .map(|(n, t)| {
                    format!("{n} {}{}", t.dtype(), inferwatch::session::shape_string(t.shape()))
                })
                .collect();
            tracing::info!(
                "no --input given and no sample inputs next to the model: using generated inputs {}",
                shapes.join(", ")
            );
        }
        InputOrigin::Given => {}
    }
    let options = inputs::options_for(&base, &inputs);
    let session = monitor.session(&args.model, &options).map_err(Failure::input)?;
    // Drop inputs the model does not declare so that the error names them up front.
    let extra: Vec<String> = inputs
        .iter()
        .map(|(n, _)| n.to_owned())
        .filter(|n| !session.inputs().iter().any(|i| &i.name == n))
        .collect();
    if let Some(name) = extra.first() {
        let _ = inputs.remove(name);
        return Err(Failure::input(SessionError::UnknownInput {
            name: name.clone(),
            expected: session.inputs().iter().map(|i| i.to_string()).collect::<Vec<_>>().join(", "),
        }));
    }
    Ok((session, inputs))
}

/// Returns the model's declared inputs: parsed by tract when the run uses tract, read from
/// a loaded session otherwise.
pub(super) fn declared_inputs(
    model: &Path,
    options: &SessionOptions,
) -> Result<Vec<TensorInfo>, Failure> {
    match options.backend {
        BackendKind::Tract => {
            inferwatch::TractBackend::declared_inputs(model).map_err(Failure::input)
        }
        _ => {
            // Only the declared inputs are needed: one session is enough.
            #[cfg_attr(not(feature = "ort"), allow(unused_mut))]
            let mut options = options.clone();
            #[cfg(feature = "ort")]
            {
                options.ort.pool_size = Some(1);
            }
            let backend =
                inferwatch::session::load_backend(model, &options).map_err(Failure::input)?;
            Ok(backend.inputs().to_vec())
        }
    }
}

fn start_workers(
    args: &RunArgs,
    session: &InstrumentedSession,
    inputs: &TensorMap,
    stop: &Arc<AtomicBool>,
    failures: &Arc<AtomicU64>,
) -> Result<Vec<std::thread::JoinHandle<()>>, Failure> {
    let threads = u32::from(args.threads);
    let period = (args.rate > 0.0).then(|| Duration::from_secs_f64(f64::from(threads) / args.rate));
    (0..threads)
        .map(|index| {
            let session = session.clone();
            let inputs = inputs.clone();
            let stop = stop.clone();
            let failures = failures.clone();
            std::thread::Builder::new()
                .name(format!("inferwatch-worker-{index}"))
                .spawn(move || worker(&session, &inputs, period, &stop, &failures))
                .map_err(|e| {
                    Failure::runtime(format!("failed to start worker thread {index}: {e}"))
                })
        })
        .collect()
}

fn worker(
    session: &InstrumentedSession,
    inputs: &TensorMap,
    period: Option<Duration>,
    stop: &AtomicBool,
    failures: &AtomicU64,
) {
    let mut next = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        if let Some(period) = period {
            let now = Instant::now();
            if next > now {
                std::thread::sleep((next - now).min(Duration::from_millis(200)));
                continue;
            }
            // Missed deadlines are skipped rather than run in a burst.
            next = (next + period).max(now);
        }
        if let Err(error) = session.run(inputs.clone())
            && failures.fetch_add(1, Ordering::Relaxed) == 0
        {
            tracing::warn!(%error, "inference failed; later failures are counted in failed_inferences");
        }
    }
}
