//! End to end: the real `inferwatch simulate miner` beside a monitor that runs a real
//! model, and `inferwatch run` on the simulated GPU feedback files.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use inferwatch::detect::{
    AlarmKind, AlarmState, Detector, DriftConfig, IndicatorConfig, IndicatorScanner,
};
use inferwatch::{Monitor, SessionOptions, TensorMap, WindowConfig, npy};

const BIN: &str = env!("CARGO_BIN_EXE_inferwatch");

/// Kills the child when the test ends, also when it fails.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_miner(args: &[&str]) -> Reaped {
    let child = Command::new(BIN)
        .args(["simulate", "miner"])
        .args(args)
        .stderr(Stdio::null())
        .spawn()
        .expect("the inferwatch binary starts");
    Reaped(child)
}

#[test]
fn miner_raises_alarm_beside_running_model() {
    let monitor = Monitor::builder()
        .window(WindowConfig::spanning(Duration::from_secs(60), Duration::from_secs(1)))
        .build()
        .unwrap();
    let input = npy::read_npy("models/ppocr-cls/x.npy").unwrap();
    let example: TensorMap = [("x", input.clone())].into_iter().collect();
    let options = SessionOptions::default().with_shapes_of(&example);
    let session = monitor.session("models/ppocr-cls/model.onnx", &options).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let worker = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let inputs: TensorMap = [("x", input.clone())].into_iter().collect();
                session.run(inputs).unwrap();
            }
        })
    };
    let detector = Detector::builder(&monitor)
        .drift(DriftConfig { warmup_datapoints: 8, ..DriftConfig::default() })
        // A low CPU threshold: on a machine shared with other busy processes the miner's
        // threads get only their share of the cores.
        .indicators(IndicatorConfig {
            sustained: Duration::from_secs(5),
            cpu_percent: 10.0,
            ..IndicatorConfig::default()
        })
        .eval_period(Duration::from_secs(1))
        .build();
    let alarms = detector.subscribe();
    detector.start().unwrap();
    // Benign warm-up: the drift baseline forms.
    std::thread::sleep(Duration::from_secs(10));
    let early: Vec<_> = alarms.try_iter().collect();

    let miner = start_miner(&["--threads", "4", "--duration", "90", "--name", "iw-e2e-miner"]);
    let pid = miner.0.id();
    let started = Instant::now();
    let mut found = None;
    while started.elapsed() < Duration::from_secs(60) {
        let Ok(event) = alarms.recv_timeout(Duration::from_secs(1)) else { continue };
        let names_miner = event.detail.contains(&format!("process {pid} (iw-e2e-miner)"));
        if event.state == AlarmState::InAlarm && (names_miner || event.kind == AlarmKind::Drift) {
            found = Some((event, started.elapsed()));
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    detector.stop();
    worker.join().unwrap();
    drop(miner);
    let (event, after) = found.unwrap_or_else(|| {
        panic!("no alarm within 60 s of starting the miner (pid {pid}); earlier: {early:?}")
    });
    eprintln!("alarm after {:.1} s: {} {}", after.as_secs_f64(), event.behavior, event.detail);
}

#[test]
fn miner_takes_name_and_nice_value() {
    let miner =
        start_miner(&["--threads", "1", "--nice", "19", "--duration", "30", "--name", "xmrig"]);
    let pid = miner.0.id();
    let mut scanner = IndicatorScanner::new(IndicatorConfig::default());
    let started = Instant::now();
    let mut finding = None;
    while started.elapsed() < Duration::from_secs(10) && finding.is_none() {
        std::thread::sleep(Duration::from_millis(100));
        finding = scanner
            .scan(0)
            .into_iter()
            .find(|f| f.indicator == "miner-name" && f.key.starts_with(&format!("{pid} ")));
    }
    let finding = finding.expect("the miner shows up under the name xmrig");
    assert_eq!(finding.detail, format!("process {pid} (xmrig) has the name of a known miner"));
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    // Field 19 of /proc/PID/stat is the nice value; fields[0] is field 3.
    assert_eq!(fields[16], "19", "{stat}");
}

#[test]
fn feedback_files_alarm_on_first_datapoint() {
    let dir = tempfile::tempdir().unwrap();
    let status = Command::new(BIN)
        .args(["simulate", "feedback", "--gpu-load", "85", "--inference-time", "180", "--dir"])
        .arg(dir.path())
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(std::fs::read_to_string(dir.path().join("gpu_load_fb")).unwrap(), "85\n");
    assert_eq!(std::fs::read_to_string(dir.path().join("gpu_inference_fb")).unwrap(), "180\n");

    let output = Command::new(BIN)
        .args(["run", "models/ppocr-cls/model.onnx", "--profile", "crypto-mining", "--json"])
        .args(["--eval-period", "1", "--window", "60", "--duration", "4", "--feedback-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let first_alarm = lines
        .iter()
        .position(|line| {
            line["alarms"].as_array().is_some_and(|a| a.iter().any(|a| a["kind"] == "behavior"))
        })
        .expect("an alarm in the JSON lines");
    // Other tests may run a miner at the same time: look at the profile's alarms only.
    let alarms: Vec<&serde_json::Value> = lines[first_alarm]["alarms"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["kind"] == "behavior")
        .collect();
    let mut behaviors: Vec<&str> = alarms.iter().map(|a| a["behavior"].as_str().unwrap()).collect();
    behaviors.sort_unstable();
    assert_eq!(behaviors, ["avg_inference_time_behavior", "gpu_load_per_inference_behavior"]);
    let latency = alarms.iter().find(|a| a["metric"] == "avg_inference_time").unwrap();
    assert_eq!(latency["value"], 180.0);
    assert_eq!(latency["threshold"], 100.0);
    assert_eq!(latency["state"], "in-alarm");
    // The first datapoint ends at the first 1 s boundary: its alarm is in one of the
    // first two lines.
    assert!(first_alarm <= 1, "first alarm in line {first_alarm}");
    let last = lines.last().unwrap();
    assert_eq!(last["simulated"]["avg_inference_time"], 180.0);
    assert_eq!(last["gpu_load_per_inference"], 85.0);
    let active = last["active_alarms"].as_array().unwrap();
    assert!(active.iter().any(|name| name == "avg_inference_time_behavior"), "{active:?}");
    assert!(active.iter().any(|name| name == "gpu_load_per_inference_behavior"), "{active:?}");
}
