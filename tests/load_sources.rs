//! Load sources: /proc CPU, files, and the sampler that polls them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use inferwatch::load::{
    FileSource, LoadCells, LoadKind, LoadSource, ProcCpu, Sampler, read_process_cpu_ticks,
    read_system_cpu_ticks,
};
use inferwatch::{LoadError, Monitor, WindowConfig};

#[test]
fn system_ticks_from_proc_stat() {
    let stat = "cpu  100 20 30 400 50 6 7 8 9 10\ncpu0 50 10 15 200 25 3 3 4 4 5\nintr 1 2\n";
    let ticks = read_system_cpu_ticks(stat).unwrap();
    // user+nice+system+idle+iowait+irq+softirq+steal; guest is already in user and nice.
    assert_eq!(ticks.total, 100 + 20 + 30 + 400 + 50 + 6 + 7 + 8);
    assert_eq!(ticks.busy, ticks.total - 400 - 50);
    assert!(read_system_cpu_ticks("cpu0 1 2 3 4\n").is_none());
    assert!(read_system_cpu_ticks("cpu  1 2 x 4\n").is_none());
}

#[test]
fn process_ticks_odd_name() {
    let stat = "4242 (my (odd) proc) R 1 4242 4242 0 -1 4194304 100 0 0 0 1234 567 0 0 20 0 1 0";
    assert_eq!(read_process_cpu_ticks(stat), Some(1234 + 567));
    assert_eq!(read_process_cpu_ticks("4242 (cut) R 1 2"), None);
}

fn write_proc(root: &std::path::Path, busy_user: u64, idle: u64, own: u64) {
    std::fs::create_dir_all(root.join("77")).unwrap();
    std::fs::write(root.join("stat"), format!("cpu  {busy_user} 0 0 {idle} 0 0 0 0 0 0\n"))
        .unwrap();
    let pid = format!("77 (worker) S 1 77 77 0 -1 0 0 0 0 0 {own} 0 0 0 20 0 1 0\n");
    std::fs::write(root.join("77/stat"), pid).unwrap();
}

#[test]
fn cpu_source_splits_own_and_foreign_load() {
    let dir = tempfile::tempdir().unwrap();
    let cells = LoadCells::default();
    let mut source = ProcCpu::with_root(dir.path(), "77");
    write_proc(dir.path(), 1000, 1000, 100);
    source.sample(&cells).unwrap();
    assert_eq!(cells.get(LoadKind::Cpu), None, "the first sample has no rate yet");
    // 400 ticks elapse: 300 busy, of which this process used 100.
    write_proc(dir.path(), 1300, 1100, 200);
    source.sample(&cells).unwrap();
    assert_eq!(cells.get(LoadKind::Cpu), Some(75.0));
    assert_eq!(cells.get(LoadKind::ForeignCpu), Some(50.0));
}

#[test]
fn cpu_source_on_the_real_proc() {
    let cells = LoadCells::default();
    let mut source = ProcCpu::new();
    source.sample(&cells).unwrap();
    let deadline = Instant::now() + Duration::from_millis(300);
    while Instant::now() < deadline {
        std::hint::black_box((0..1000u64).sum::<u64>());
    }
    source.sample(&cells).unwrap();
    let system = cells.get(LoadKind::Cpu).unwrap();
    let foreign = cells.get(LoadKind::ForeignCpu).unwrap();
    assert!(system > 0.0, "system {system}");
    assert!(system <= 100.0, "system {system}");
    assert!(foreign <= system, "foreign {foreign} above system {system}");
}

#[test]
fn file_source_cases() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gpu_load_fb");
    let cells = LoadCells::default();
    let mut source = FileSource::new(&path, LoadKind::Gpu);

    let error = source.sample(&cells).unwrap_err();
    assert!(matches!(error, LoadError::ReadFile { .. }), "{error}");
    assert!(error.to_string().contains("gpu_load_fb"), "{error}");

    for (text, expected) in [("85", 85.0), (" 42.5\n", 42.5), ("8.5e1", 85.0), ("0", 0.0)] {
        std::fs::write(&path, text).unwrap();
        source.sample(&cells).unwrap();
        assert_eq!(cells.get(LoadKind::Gpu), Some(expected), "{text:?}");
    }
    for text in ["", "85%", "NaN", "inf", "eighty"] {
        std::fs::write(&path, text).unwrap();
        let error = source.sample(&cells).unwrap_err();
        assert!(matches!(error, LoadError::NotANumber { .. }), "{text:?}: {error}");
        assert!(error.to_string().contains("not a number"), "{error}");
    }

    std::fs::write(&path, [0xff, 0xfe, 0x00]).unwrap();
    assert!(source.sample(&cells).is_err(), "bytes that are not UTF-8");
}

#[test]
fn sampler_marks_a_failing_source_absent_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("load");
    std::fs::write(&path, "30").unwrap();
    let cells = Arc::new(LoadCells::default());
    let sources: Vec<Box<dyn LoadSource>> = vec![Box::new(FileSource::new(&path, LoadKind::Gpu))];
    let mut sampler =
        Sampler::start(sources, cells.clone(), Duration::from_millis(20), || {}).unwrap();
    let wait_for = |expected: Option<f64>| {
        let deadline = Instant::now() + Duration::from_secs(5);
        while cells.get(LoadKind::Gpu) != expected {
            assert!(Instant::now() < deadline, "gpu load never became {expected:?}");
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    wait_for(Some(30.0));
    std::fs::write(&path, "garbage").unwrap();
    wait_for(None);
    std::fs::write(&path, "55.5").unwrap();
    wait_for(Some(55.5));
    sampler.stop();
}

#[test]
fn monitor_attributes_file_load_to_recorded_calls() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gpu");
    std::fs::write(&path, "85").unwrap();
    let monitor = Monitor::builder()
        .window(WindowConfig::spanning(Duration::from_secs(60), Duration::from_secs(5)))
        .without_proc_cpu()
        .load_source(FileSource::new(&path, LoadKind::Gpu))
        .sample_period(Duration::from_millis(10))
        .build()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while monitor.recorder().loads().get(LoadKind::Gpu).is_none() {
        assert!(Instant::now() < deadline, "the sampler never read the file");
        std::thread::sleep(Duration::from_millis(5));
    }
    for millis in [10, 20, 30] {
        monitor.recorder().record(Duration::from_millis(millis));
    }
    let snapshot = monitor.snapshot();
    assert_eq!(snapshot.inference_count, 3);
    assert_eq!(snapshot.avg_inference_time, Some(20.0));
    assert_eq!(snapshot.gpu_load_per_inference, Some(85.0));
    assert_eq!(snapshot.cpu_load_per_inference, None);
    monitor.shutdown();
}
