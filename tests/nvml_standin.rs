//! NVML sampling against a stand-in for the NVIDIA driver.
//!
//! This machine has no NVIDIA GPU, so each test compiles a small C library with gcc that
//! stands in for `libnvidia-ml.so`: it exports the NVML functions the sampler calls and
//! returns a scripted sequence of GPU utilization samples and a process list holding this
//! process and another one (pid 4242). The sampler loads it through nvml-wrapper's
//! library-path option, exactly as it would load the real driver library.
#![cfg(feature = "nvml")]

mod standin_nvml;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use inferwatch::load::nvml::{GpuId, GpuInfo, NvmlGpus, NvmlOptions};
use inferwatch::{Clock, LoadError, LoadKind, Monitor};
use standin_nvml::build_standin;

fn options(library: PathBuf, gpus: Vec<GpuId>) -> NvmlOptions {
    NvmlOptions { library: Some(library), gpus, period: Some(Duration::from_millis(20)) }
}

const MS: u64 = 1_000_000;

#[test]
fn default_selection_picks_gpu_of_this_process() {
    let dir = tempfile::tempdir().unwrap();
    let library = build_standin(dir.path());
    let gpus = NvmlGpus::open(&options(library, vec![])).unwrap();
    assert_eq!(gpus.gpus(), &[GpuInfo { index: 1, uuid: "GPU-standin-1".into() }]);
}

#[test]
fn gpus_resolve_by_index_and_uuid() {
    let dir = tempfile::tempdir().unwrap();
    let library = build_standin(dir.path());
    let gpus = NvmlGpus::open(&options(
        library.clone(),
        vec![GpuId::Uuid("GPU-standin-0".into()), GpuId::Index(1)],
    ))
    .unwrap();
    let indices: Vec<u32> = gpus.gpus().iter().map(|gpu| gpu.index).collect();
    assert_eq!(indices, [0, 1]);

    let error = NvmlGpus::open(&options(library.clone(), vec![GpuId::Index(5)])).unwrap_err();
    assert!(matches!(error, LoadError::GpuNotFound { count: 2, .. }), "{error}");
    let error =
        NvmlGpus::open(&options(library, vec![GpuId::Uuid("GPU-nope".into())])).unwrap_err();
    assert_eq!(
        error.to_string(),
        "GPU GPU-nope not found: NVML sees 2 GPU(s); list them with nvidia-smi -L"
    );
}

/// Starts a monitor on the stand-in driver with a manual clock stopped at `clock_at`, and
/// waits for the sampler's first poll. The returned folder contains the library, so it must
/// outlive the monitor.
fn sampled_monitor(clock_at: Duration) -> (tempfile::TempDir, Monitor) {
    let dir = tempfile::tempdir().unwrap();
    let library = build_standin(dir.path());
    let gpus = NvmlGpus::open(&options(library, vec![])).unwrap();
    let (clock, manual) = Clock::manual();
    manual.advance(clock_at);
    let monitor = Monitor::builder().clock(clock).without_proc_cpu().nvml(gpus).build().unwrap();
    wait_for("the NVML sampler's first poll", || {
        monitor.gpu_readings().first().and_then(|r| r.foreign_utilization).is_some()
    });
    (dir, monitor)
}

#[test]
fn inferences_get_gpu_load_of_their_span() {
    // The clock stays at T = 100 s, so the first poll maps the stand-in's samples to
    // T - 400 ms, T - 200 ms and T (plus the few microseconds the call itself takes).
    let (_dir, monitor) = sampled_monitor(Duration::from_secs(100));
    let t = 100_000 * MS;
    let reading = &monitor.gpu_readings()[0];
    assert_eq!(reading.gpu.uuid, "GPU-standin-1");
    assert_eq!(reading.utilization, Some(80.0));
    assert_eq!(reading.own_utilization, Some(30.0));
    assert_eq!(reading.foreign_utilization, Some(45.0));
    assert_eq!(reading.foreign_memory_bytes, Some(300 << 20));

    let loads = monitor.recorder().loads();
    let gpu_over = |start: u64, end: u64| loads.observed(start, end).get(LoadKind::Gpu);
    // (start, end, attributed load): spans around the samples at -400, -200 and 0 ms.
    let cases = [
        (t - 450 * MS, t - 300 * MS, 40.0),
        (t - 450 * MS, t - 100 * MS, 50.0),
        (t - 250 * MS, t + 100 * MS, 70.0),
        (t - 150 * MS, t - 140 * MS, 60.0),
        (t + 100 * MS, t + 110 * MS, 80.0),
    ];
    for (start, end, expected) in cases {
        assert_eq!(
            gpu_over(start, end),
            Some(expected),
            "span {} ms .. {} ms around T",
            start as i64 / MS as i64 - 100_000,
            end as i64 / MS as i64 - 100_000
        );
    }

    for (start, end, _) in cases {
        monitor.recorder().record_span(start, end);
    }
    let snapshot = monitor.snapshot();
    assert_eq!(snapshot.inference_count, 5);
    assert_eq!(snapshot.gpu_load_per_inference, Some(60.0));
    assert_eq!(snapshot.foreign_gpu_load, Some(45.0));
    monitor.shutdown();
}

#[test]
fn pre_clock_samples_keep_the_last() {
    // At T = 100 ms, the samples at -400 and -200 ms predate the clock. Only the later one,
    // 60 %, stays, at time 0, as the load in effect when the clock started.
    let (_dir, monitor) = sampled_monitor(Duration::from_millis(100));
    let loads = monitor.recorder().loads();
    let gpu_over = |start: u64, end: u64| loads.observed(start, end).get(LoadKind::Gpu);
    assert_eq!(gpu_over(0, 50 * MS), Some(60.0));
    assert_eq!(gpu_over(0, 150 * MS), Some(70.0));
    assert_eq!(gpu_over(120 * MS, 150 * MS), Some(80.0));
    monitor.shutdown();
}

fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out after 10 s waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn driver_error_clears_values_until_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let library = build_standin(dir.path());
    let gpus = NvmlGpus::open(&options(library, vec![])).unwrap();
    let monitor = Monitor::builder().without_proc_cpu().nvml(gpus).build().unwrap();
    let loads = monitor.recorder().loads().clone();
    wait_for("the first sample", || loads.get(LoadKind::ForeignGpu).is_some());
    assert_eq!(loads.get(LoadKind::Gpu), Some(80.0));

    let fail = dir.path().join("fail");
    std::fs::write(&fail, "").unwrap();
    wait_for("the GPU values to clear", || loads.get(LoadKind::ForeignGpu).is_none());
    assert_eq!(loads.get(LoadKind::Gpu), None);
    let now = monitor.recorder().now_nanos();
    assert_eq!(loads.observed(now - 1_000_000, now).get(LoadKind::Gpu), None);
    assert_eq!(monitor.gpu_readings()[0].utilization, None);

    std::fs::remove_file(&fail).unwrap();
    wait_for("sampling to recover", || loads.get(LoadKind::ForeignGpu).is_some());
    assert_eq!(loads.get(LoadKind::ForeignGpu), Some(45.0));
    wait_for("the samples to return", || loads.get(LoadKind::Gpu).is_some());
    assert_eq!(loads.get(LoadKind::Gpu), Some(80.0));
    monitor.shutdown();
}
