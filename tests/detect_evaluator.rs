//! The behavior state machines: operators at their boundaries, consecutive datapoints,
//! clearing, invalidation, durations and percentiles, driven by explicit clock times.

use std::collections::HashMap;
use std::net::IpAddr;

use inferwatch::detect::{AlarmEvent, AlarmState, Evaluator, MetricValue, Profile};

const SECOND: u64 = 1_000_000_000;

fn profile(behaviors: &str) -> Profile {
    Profile::parse(behaviors, "test").unwrap_or_else(|e| panic!("test profile is invalid: {e}"))
}

fn one_behavior(metric: &str, criteria: &str) -> Evaluator {
    let text = format!(r#"[{{"name": "b", "metric": "{metric}", "criteria": {criteria}}}]"#);
    Evaluator::new(&profile(&text))
}

/// Feeds `value` as metric `metric` at second `t` and returns the events.
fn feed(evaluator: &mut Evaluator, t: u64, metric: &str, value: MetricValue) -> Vec<AlarmEvent> {
    let mut source: HashMap<String, MetricValue> = HashMap::new();
    source.insert(metric.to_owned(), value);
    evaluator.evaluate(t * SECOND, 1_000 * t, &mut source)
}

fn number(evaluator: &mut Evaluator, t: u64, value: f64) -> Vec<AlarmState> {
    feed(evaluator, t, "m", MetricValue::Number(value)).iter().map(|e| e.state).collect()
}

fn nothing(evaluator: &mut Evaluator, t: u64) -> Vec<AlarmState> {
    let mut source: HashMap<String, MetricValue> = HashMap::new();
    evaluator.evaluate(t * SECOND, 1_000 * t, &mut source).iter().map(|e| e.state).collect()
}

/// Returns whether one datapoint of `value` raises the alarm for `operator` against `threshold`.
fn violates(operator: &str, threshold: f64, value: f64) -> bool {
    let criteria =
        format!(r#"{{"comparisonOperator": "{operator}", "value": {{"number": {threshold}}}}}"#);
    let mut evaluator = one_behavior("m", &criteria);
    number(&mut evaluator, 1, value) == [AlarmState::InAlarm]
}

#[test]
fn numeric_operators_at_their_boundaries() {
    // (operator, value, violates) around the threshold 40.
    let cases = [
        ("less-than", 39.999, false),
        ("less-than", 40.0, true),
        ("less-than", 40.001, true),
        ("less-than-equals", 39.999, false),
        ("less-than-equals", 40.0, false),
        ("less-than-equals", 40.001, true),
        ("greater-than", 39.999, true),
        ("greater-than", 40.0, true),
        ("greater-than", 40.001, false),
        ("greater-than-equals", 39.999, true),
        ("greater-than-equals", 40.0, false),
        ("greater-than-equals", 40.001, false),
    ];
    for (operator, value, expected) in cases {
        assert_eq!(violates(operator, 40.0, value), expected, "{value} against {operator} 40");
    }
}

#[test]
fn count_operators_on_device_metrics() {
    let criteria = r#"{"comparisonOperator": "less-than-equals", "value": {"count": 3}}"#;
    let mut evaluator = one_behavior("aws:num-listening-tcp-ports", criteria);
    let at = |e: &mut Evaluator, t, v| {
        feed(e, t, "aws:num-listening-tcp-ports", MetricValue::Number(v))
            .iter()
            .map(|e| e.state)
            .collect::<Vec<_>>()
    };
    assert_eq!(at(&mut evaluator, 1, 3.0), []);
    assert_eq!(at(&mut evaluator, 2, 4.0), [AlarmState::InAlarm]);
    assert_eq!(at(&mut evaluator, 3, 3.0), [AlarmState::AlarmCleared]);
}

#[test]
fn port_set_operators() {
    let in_set = r#"{"comparisonOperator": "in-port-set", "value": {"ports": [22, 443]}}"#;
    let mut evaluator = one_behavior("aws:listening-tcp-ports", in_set);
    let ports = |list: &[u16]| MetricValue::Ports(list.to_vec());
    let states = |events: Vec<AlarmEvent>| events.iter().map(|e| e.state).collect::<Vec<_>>();
    assert_eq!(states(feed(&mut evaluator, 1, "aws:listening-tcp-ports", ports(&[22]))), []);
    assert_eq!(states(feed(&mut evaluator, 2, "aws:listening-tcp-ports", ports(&[]))), []);
    let events = feed(&mut evaluator, 3, "aws:listening-tcp-ports", ports(&[22, 3333]));
    assert_eq!(states(events.clone()), [AlarmState::InAlarm]);
    assert_eq!(events[0].value, Some(ports(&[22, 3333])));
    assert_eq!(events[0].threshold, Some(ports(&[22, 443])));

    let not_in = r#"{"comparisonOperator": "not-in-port-set", "value": {"ports": [3333, 4444]}}"#;
    let mut evaluator = one_behavior("aws:listening-tcp-ports", not_in);
    assert_eq!(states(feed(&mut evaluator, 1, "aws:listening-tcp-ports", ports(&[22, 80]))), []);
    assert_eq!(
        states(feed(&mut evaluator, 2, "aws:listening-tcp-ports", ports(&[22, 4444]))),
        [AlarmState::InAlarm]
    );
}

#[test]
fn cidr_set_operators() {
    let addresses = |list: &[&str]| {
        MetricValue::Addresses(list.iter().map(|a| a.parse::<IpAddr>().unwrap()).collect())
    };
    let metric = "aws:destination-ip-addresses";
    let states = |events: Vec<AlarmEvent>| events.iter().map(|e| e.state).collect::<Vec<_>>();
    let in_set = r#"{"comparisonOperator": "in-cidr-set",
                     "value": {"cidrs": ["10.0.0.0/8", "2001:db8::/32"]}}"#;
    let mut evaluator = one_behavior(metric, in_set);
    assert_eq!(states(feed(&mut evaluator, 1, metric, addresses(&["10.255.255.255"]))), []);
    assert_eq!(states(feed(&mut evaluator, 2, metric, addresses(&["2001:db8::1"]))), []);
    assert_eq!(states(feed(&mut evaluator, 3, metric, addresses(&["::ffff:10.1.2.3"]))), []);
    assert_eq!(
        states(feed(&mut evaluator, 4, metric, addresses(&["10.0.0.1", "11.0.0.0"]))),
        [AlarmState::InAlarm]
    );

    let not_in =
        r#"{"comparisonOperator": "not-in-cidr-set", "value": {"cidrs": ["192.0.2.0/24"]}}"#;
    let mut evaluator = one_behavior(metric, not_in);
    assert_eq!(states(feed(&mut evaluator, 1, metric, addresses(&["192.0.3.0"]))), []);
    assert_eq!(
        states(feed(&mut evaluator, 2, metric, addresses(&["192.0.2.255"]))),
        [AlarmState::InAlarm]
    );
}

#[test]
fn set_operators_on_custom_lists() {
    let states = |events: Vec<AlarmEvent>| events.iter().map(|e| e.state).collect::<Vec<_>>();
    let strings =
        |list: &[&str]| MetricValue::Strings(list.iter().map(|s| s.to_string()).collect());
    let in_set = r#"{"comparisonOperator": "in-set", "value": {"strings": ["tract", "ort"]}}"#;
    let mut evaluator = one_behavior("backends", in_set);
    assert_eq!(states(feed(&mut evaluator, 1, "backends", strings(&["ort"]))), []);
    assert_eq!(
        states(feed(&mut evaluator, 2, "backends", strings(&["ort", "xmrig"]))),
        [AlarmState::InAlarm]
    );

    let not_in = r#"{"comparisonOperator": "not-in-set", "value": {"numbers": [3333, 4444]}}"#;
    let mut evaluator = one_behavior("ports_used", not_in);
    assert_eq!(states(feed(&mut evaluator, 1, "ports_used", MetricValue::Numbers(vec![80.0]))), []);
    assert_eq!(
        states(feed(&mut evaluator, 2, "ports_used", MetricValue::Numbers(vec![80.0, 3333.0]))),
        [AlarmState::InAlarm]
    );
}

#[test]
fn consecutive_datapoints_to_alarm_and_clear() {
    let criteria = r#"{"comparisonOperator": "less-than", "value": {"number": 100},
                       "consecutiveDatapointsToAlarm": 3, "consecutiveDatapointsToClear": 2}"#;
    let mut evaluator = one_behavior("m", criteria);
    assert_eq!(number(&mut evaluator, 1, 150.0), []);
    assert_eq!(number(&mut evaluator, 2, 150.0), []);
    // A normal datapoint breaks the run of violations.
    assert_eq!(number(&mut evaluator, 3, 50.0), []);
    assert_eq!(number(&mut evaluator, 4, 150.0), []);
    assert_eq!(number(&mut evaluator, 5, 150.0), []);
    assert_eq!(number(&mut evaluator, 6, 150.0), [AlarmState::InAlarm]);
    // Still in alarm: no second event.
    assert_eq!(number(&mut evaluator, 7, 150.0), []);
    assert_eq!(number(&mut evaluator, 8, 50.0), []);
    // A violation breaks the run of normal datapoints.
    assert_eq!(number(&mut evaluator, 9, 150.0), []);
    assert_eq!(number(&mut evaluator, 10, 50.0), []);
    assert_eq!(number(&mut evaluator, 11, 50.0), [AlarmState::AlarmCleared]);
    assert!(!evaluator.status()[0].in_alarm);
}

#[test]
fn missing_datapoints_keep_the_run() {
    let criteria = r#"{"comparisonOperator": "less-than", "value": {"number": 100},
                       "consecutiveDatapointsToAlarm": 2}"#;
    let mut evaluator = one_behavior("m", criteria);
    assert_eq!(number(&mut evaluator, 1, 150.0), []);
    assert_eq!(nothing(&mut evaluator, 2), []);
    assert_eq!(number(&mut evaluator, 3, 150.0), [AlarmState::InAlarm]);
}

#[test]
fn alarm_invalidated_when_data_stops() {
    let criteria = r#"{"comparisonOperator": "less-than", "value": {"number": 100}}"#;
    let mut evaluator =
        one_behavior("m", criteria).invalidate_after(std::time::Duration::from_secs(30));
    assert_eq!(number(&mut evaluator, 10, 150.0), [AlarmState::InAlarm]);
    assert_eq!(nothing(&mut evaluator, 20), []);
    assert_eq!(nothing(&mut evaluator, 39), []);
    assert_eq!(nothing(&mut evaluator, 40), [AlarmState::AlarmInvalidated]);
    assert_eq!(nothing(&mut evaluator, 50), []);
    assert!(!evaluator.status()[0].in_alarm);
    // After invalidation the behavior starts over and can raise the alarm again.
    assert_eq!(number(&mut evaluator, 60, 150.0), [AlarmState::InAlarm]);
}

#[test]
fn no_invalidation_outside_alarm() {
    let criteria = r#"{"comparisonOperator": "less-than", "value": {"number": 100}}"#;
    let mut evaluator =
        one_behavior("m", criteria).invalidate_after(std::time::Duration::from_secs(30));
    assert_eq!(number(&mut evaluator, 10, 50.0), []);
    assert_eq!(nothing(&mut evaluator, 100), []);
}

#[test]
fn duration_takes_the_window_mean_of_gauges() {
    let criteria =
        r#"{"comparisonOperator": "less-than", "value": {"number": 100}, "durationSeconds": 20}"#;
    let mut evaluator = one_behavior("m", criteria);
    assert_eq!(number(&mut evaluator, 0, 60.0), []);
    assert_eq!(number(&mut evaluator, 5, 60.0), []);
    assert_eq!(number(&mut evaluator, 10, 60.0), []);
    // Mean of 60, 60, 60, 220 is exactly 100: not less than 100.
    let events = feed(&mut evaluator, 15, "m", MetricValue::Number(220.0));
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].value, Some(MetricValue::Number(100.0)));
    assert_eq!(events[0].threshold, Some(MetricValue::Number(100.0)));
    // At 20 s the datapoint of 0 s has left the 20 s window: mean of 60, 60, 220, 0 = 85.
    let events = feed(&mut evaluator, 20, "m", MetricValue::Number(0.0));
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].state, AlarmState::AlarmCleared);
    assert_eq!(events[0].value, Some(MetricValue::Number(85.0)));
}

#[test]
fn duration_sums_counter_deltas() {
    let criteria = r#"{"comparisonOperator": "less-than-equals", "value": {"count": 1000}, "durationSeconds": 10}"#;
    let mut evaluator = one_behavior("aws:all-bytes-out", criteria);
    let at = |e: &mut Evaluator, t, v| feed(e, t, "aws:all-bytes-out", MetricValue::Number(v));
    assert!(at(&mut evaluator, 0, 400.0).is_empty());
    assert!(at(&mut evaluator, 5, 600.0).is_empty());
    // 600 + 401 in the last 10 s.
    let events = at(&mut evaluator, 10, 401.0);
    assert_eq!(events[0].state, AlarmState::InAlarm);
    assert_eq!(events[0].value, Some(MetricValue::Number(1001.0)));
}

#[test]
fn statistical_threshold_uses_own_history() {
    let criteria = r#"{"comparisonOperator": "less-than-equals",
                       "statisticalThreshold": {"statistic": "p90"}, "durationSeconds": 100}"#;
    let mut evaluator = one_behavior("m", criteria);
    // Too little history: no verdict yet, even for a huge value.
    for t in 0..5 {
        assert_eq!(number(&mut evaluator, t, 10.0 + t as f64), []);
    }
    assert_eq!(number(&mut evaluator, 5, 12.0), []);
    // History 10, 11, 12, 13, 14, 12: p90 (nearest rank) is 14.
    let events = feed(&mut evaluator, 6, "m", MetricValue::Number(14.5));
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].state, AlarmState::InAlarm);
    assert_eq!(events[0].threshold, Some(MetricValue::Number(14.0)));
    assert_eq!(events[0].value, Some(MetricValue::Number(14.5)));
}

#[test]
fn event_carries_names_and_time() {
    let mut evaluator = Evaluator::new(&Profile::builtin("crypto-mining").unwrap());
    let mut source: HashMap<String, MetricValue> = HashMap::new();
    source.insert("avg_inference_time".into(), MetricValue::Number(180.0));
    source.insert("gpu_load_per_inference".into(), MetricValue::Number(85.0));
    let events = evaluator.evaluate(5 * SECOND, 1_764_844_800_000, &mut source);
    assert_eq!(events.len(), 2);
    let json = serde_json::to_value(&events[1]).unwrap();
    assert_eq!(json["behavior"], "avg_inference_time_behavior");
    assert_eq!(json["metric"], "avg_inference_time");
    assert_eq!(json["state"], "in-alarm");
    assert_eq!(json["operator"], "less-than");
    assert_eq!(json["value"], 180.0);
    assert_eq!(json["threshold"], 100.0);
    assert_eq!(json["time_ms"], 1_764_844_800_000u64);
    assert_eq!(json["kind"], "behavior");
}
