//! The detector on a monitor's window, with time moved by a manual clock.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use inferwatch::detect::{
    AlarmKind, AlarmState, DRIFT_BEHAVIOR, Detector, DriftConfig, IndicatorConfig, MetricValue,
    Profile,
};
use inferwatch::{Clock, ManualClock, Monitor, WindowConfig};

fn monitor() -> (Monitor, ManualClock) {
    let (clock, handle) = Clock::manual();
    let monitor = Monitor::builder()
        .clock(clock)
        .without_proc_cpu()
        .window(WindowConfig::spanning(Duration::from_secs(60), Duration::from_secs(1)))
        .build()
        .unwrap();
    (monitor, handle)
}

/// Records `count` inferences of `millis` spread over the next second, then moves the
/// clock to the end of that second.
fn second_of(monitor: &Monitor, clock: &ManualClock, count: u64, millis: f64) {
    let step = Duration::from_secs(1) / count as u32;
    for _ in 0..count {
        clock.advance(step);
        let now = monitor.recorder().now_nanos();
        monitor.recorder().record_at(now - 1, (millis * 1e6) as u64);
    }
}

#[test]
fn drift_alarm_reaches_callback_and_channel() {
    let (monitor, clock) = monitor();
    let detector = Detector::builder(&monitor)
        .drift(DriftConfig { warmup_datapoints: 20, ..DriftConfig::default() })
        .build();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    detector.on_alarm(move |event| sink.lock().unwrap().push(event.clone()));
    let channel = detector.subscribe();
    for second in 0..40 {
        // Latency varies a little around 2 ms.
        second_of(&monitor, &clock, 20, 2.0 + 0.02 * (second % 3) as f64);
        assert_eq!(detector.poll(), [], "no alarm at {second} s");
    }
    let state = detector.drift_state().unwrap();
    assert!(!state.warming_up);
    let baseline = state.baseline_median_ms.unwrap();
    assert!((baseline - 2.02).abs() < 0.05, "baseline {baseline} ms");
    let mut raised_after = None;
    for second in 1..=10 {
        second_of(&monitor, &clock, 20, 3.0);
        let events = detector.poll();
        if !events.is_empty() {
            assert_eq!(events.len(), 1);
            assert_eq!(events[0].kind, AlarmKind::Drift);
            assert_eq!(events[0].behavior, DRIFT_BEHAVIOR);
            assert_eq!(events[0].state, AlarmState::InAlarm);
            raised_after = Some(second);
            break;
        }
    }
    let raised_after = raised_after.expect("a 1.5x latency step raises the drift alarm");
    // Each second adds ln(3.0 / 2.02) / 0.15 (the scale floor) - 1.5 (the slack) = 1.14, so
    // the sum passes the threshold of 8 on the eighth second.
    assert_eq!(raised_after, 8, "raised after {raised_after} s");
    assert_eq!(seen.lock().unwrap().len(), 1);
    let received = channel.try_recv().unwrap();
    assert_eq!(received.behavior, DRIFT_BEHAVIOR);
    assert_eq!(detector.active_alarms().len(), 1);
}

#[test]
fn profile_alarm_on_first_datapoint_and_clears() {
    let (monitor, clock) = monitor();
    let detector = Detector::builder(&monitor)
        .profile(Profile::builtin("crypto-mining").unwrap())
        .eval_period(Duration::from_secs(5))
        .build();
    for _ in 0..5 {
        second_of(&monitor, &clock, 4, 150.0);
    }
    let events = detector.poll();
    // The GPU load has no source: only the latency behavior has a datapoint.
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].behavior, "avg_inference_time_behavior");
    assert_eq!(events[0].state, AlarmState::InAlarm);
    assert_eq!(events[0].value, Some(MetricValue::Number(150.0)));
    assert_eq!(events[0].threshold, Some(MetricValue::Number(100.0)));
    let metrics = detector.last_metrics();
    assert_eq!(metrics.get("avg_inference_time"), Some(&MetricValue::Number(150.0)));
    assert_eq!(metrics.get("gpu_load_per_inference"), None);
    // The second datapoint is 10 ms; over durationSeconds 300 the mean of the two
    // datapoints is (150 + 10) / 2 = 80: cleared.
    for _ in 0..5 {
        second_of(&monitor, &clock, 4, 10.0);
    }
    let events = detector.poll();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].state, AlarmState::AlarmCleared);
    assert_eq!(events[0].value, Some(MetricValue::Number(80.0)));
    assert!(detector.active_alarms().is_empty());
}

#[test]
fn metric_source_overrides_measured_metric() {
    let (monitor, clock) = monitor();
    let detector = Detector::builder(&monitor)
        .profile(Profile::builtin("crypto-mining").unwrap())
        .metric_source(|name: &str| match name {
            "avg_inference_time" => Some(MetricValue::Number(180.0)),
            "gpu_load_per_inference" => Some(MetricValue::Number(85.0)),
            _ => None,
        })
        .build();
    for _ in 0..5 {
        second_of(&monitor, &clock, 10, 2.0);
    }
    let mut events = detector.poll();
    events.sort_by(|a, b| a.behavior.cmp(&b.behavior));
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].behavior, "avg_inference_time_behavior");
    assert_eq!(events[0].value, Some(MetricValue::Number(180.0)));
    assert_eq!(events[1].behavior, "gpu_load_per_inference_behavior");
    assert_eq!(events[1].value, Some(MetricValue::Number(85.0)));
}

#[test]
fn alarm_invalidated_when_inferences_stop() {
    let (monitor, clock) = monitor();
    let detector = Detector::builder(&monitor)
        .profile(Profile::builtin("crypto-mining").unwrap())
        .invalidate_after(Duration::from_secs(20))
        .build();
    for _ in 0..5 {
        second_of(&monitor, &clock, 4, 150.0);
    }
    assert_eq!(detector.poll().len(), 1);
    let mut invalidated_at = None;
    for second in 1..=60 {
        clock.advance(Duration::from_secs(1));
        let events = detector.poll();
        if let Some(event) = events.first() {
            assert_eq!(event.state, AlarmState::AlarmInvalidated);
            invalidated_at = Some(second);
            break;
        }
    }
    // A period without inferences has no avg_inference_time. The last datapoint came at
    // 5 s on the clock, so the evaluation at 25 s, loop second 20, is the first one 20 s
    // without data.
    assert_eq!(invalidated_at, Some(20));
    assert!(detector.active_alarms().is_empty());
}

#[test]
fn suppressed_behavior_skips_the_sinks() {
    let (monitor, clock) = monitor();
    let text = r#"[{"name": "quiet", "metric": "avg_inference_time", "suppressAlerts": true,
                    "criteria": {"comparisonOperator": "less-than", "value": {"number": 100}}}]"#;
    let detector =
        Detector::builder(&monitor).profile(Profile::parse(text, "test").unwrap()).build();
    let channel = detector.subscribe();
    for _ in 0..5 {
        second_of(&monitor, &clock, 4, 150.0);
    }
    assert_eq!(detector.poll().len(), 1);
    assert!(channel.try_recv().is_err());
    assert_eq!(detector.active_alarms().len(), 1);
}

#[test]
fn event_time_maps_to_clock_time() {
    let (monitor, clock) = monitor();
    // The detector is built at 0.3 s, but its periods still end on multiples of 5 s.
    clock.advance(Duration::from_millis(300));
    let detector = Detector::builder(&monitor)
        .profile(Profile::builtin("crypto-mining").unwrap())
        .eval_period(Duration::from_secs(5))
        .build();
    for _ in 0..6 {
        second_of(&monitor, &clock, 4, 150.0);
    }
    // The clock is at 6.3 s: the period that ended at 5 s raised the alarm.
    let events = detector.poll();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(detector.clock_nanos_of(&events[0]), 5_000_000_000);
}

/// Writes a process named `name` under the `/proc` fixture `root`.
fn write_process(root: &std::path::Path, pid: u32, name: &str) {
    let dir = root.join(pid.to_string());
    std::fs::create_dir_all(&dir).unwrap();
    // Fields 3 to 22 of /proc/PID/stat end with starttime 5000; the process used no CPU.
    let stat = format!(
        "{pid} ({name}) S 1 {pid} {pid} 0 -1 4194304 100 0 0 0 0 0 0 0 20 0 1 0 5000 1000000 100\n"
    );
    std::fs::write(dir.join("stat"), stat).unwrap();
    std::fs::write(dir.join("cmdline"), format!("{name}\0")).unwrap();
}

#[test]
fn cleared_indicator_says_it_is_gone() {
    let root = tempfile::tempdir().unwrap();
    write_process(root.path(), 200, "xmrig");
    let (monitor, clock) = monitor();
    let config =
        IndicatorConfig { proc_root: root.path().to_owned(), ..IndicatorConfig::default() };
    let detector =
        Detector::builder(&monitor).indicators(config).eval_period(Duration::from_secs(5)).build();
    for _ in 0..5 {
        second_of(&monitor, &clock, 4, 10.0);
    }
    let events = detector.poll();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].state, AlarmState::InAlarm);
    assert_eq!(events[0].detail, "process 200 (xmrig) has the name of a known miner");

    std::fs::remove_dir_all(root.path().join("200")).unwrap();
    for _ in 0..5 {
        second_of(&monitor, &clock, 4, 10.0);
    }
    let events = detector.poll();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].state, AlarmState::AlarmCleared);
    assert_eq!(
        events[0].detail,
        "no longer found: process 200 (xmrig) has the name of a known miner"
    );
    assert!(detector.active_alarms().is_empty());
}
