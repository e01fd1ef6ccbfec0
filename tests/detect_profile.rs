//! Profile parsing and validation: valid documents in both shapes, and every problem
//! reported at its JSON path, through the library and through `inferwatch profile check`.

use std::process::Command;

use inferwatch::detect::{Operator, Profile, ProfileError, Threshold};

fn problems(text: &str) -> Vec<(String, String)> {
    match Profile::parse(text, "test") {
        Ok(profile) => panic!("expected problems, parsed {profile:?}"),
        Err(error) => {
            error.problems().iter().map(|p| (p.path.clone(), p.message.clone())).collect()
        }
    }
}

fn paths(text: &str) -> Vec<String> {
    problems(text).into_iter().map(|(path, _)| path).collect()
}

#[test]
fn builtin_crypto_mining_profile() {
    let profile = Profile::builtin("crypto-mining").expect("the shipped profile parses");
    assert_eq!(profile.behaviors.len(), 2);
    let gpu = &profile.behaviors[0];
    assert_eq!(gpu.metric, "gpu_load_per_inference");
    assert_eq!(gpu.criteria.operator, Operator::LessThan);
    assert_eq!(gpu.criteria.threshold, Threshold::Number(40.0));
    assert_eq!(gpu.criteria.duration, Some(std::time::Duration::from_secs(300)));
    let latency = &profile.behaviors[1];
    assert_eq!(latency.metric, "avg_inference_time");
    assert_eq!(latency.criteria.threshold, Threshold::Number(100.0));
    assert_eq!(latency.criteria.datapoints_to_alarm, 1);
    assert_eq!(latency.criteria.datapoints_to_clear, 1);
    let file = Profile::read(std::path::Path::new("profiles/crypto-mining.json")).unwrap();
    assert_eq!(file, profile);
}

#[test]
fn object_with_behaviors_key() {
    let text = r#"{"securityProfileName": "x", "behaviors": [
        {"name": "ports", "metric": "aws:listening-tcp-ports",
         "criteria": {"comparisonOperator": "in-port-set", "value": {"ports": [22, 443]}}}]}"#;
    // `securityProfileName` is not a behaviors key: the object form reads `behaviors` only.
    let profile = Profile::parse(text, "test").unwrap();
    assert_eq!(profile.behaviors[0].criteria.threshold, Threshold::Ports(vec![22, 443]));
}

#[test]
fn not_json_names_line_and_column() {
    let found = problems("[{\"name\": }]");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].0, "$");
    assert!(found[0].1.contains("line 1 column 11"), "{}", found[0].1);
}

#[test]
fn wrong_top_level_shapes() {
    assert_eq!(paths("42"), ["$"]);
    assert_eq!(paths("{}"), ["$"]);
    assert_eq!(paths(r#"{"behaviors": 3}"#), ["$.behaviors"]);
    assert_eq!(paths("[3]"), ["$[0]"]);
}

#[test]
fn every_problem_with_its_path() {
    let text = r#"[
      {"name": "bad name", "metric": "aws:listening-tcp-ports",
       "criteria": {"comparisonOperator": "in-port-set", "value": {"ports": [22, 70000, "x"]},
                    "consecutiveDatapointsToAlarm": 11, "consecutiveDatapointsToClear": 0}},
      {"name": "cloud", "metric": "aws:num-messages-sent",
       "criteria": {"comparisonOperator": "less-than", "value": {"count": 5}}},
      {"name": "cloud", "metric": "temp", "extra": true,
       "criteria": {"comparisonOperator": "bigger", "value": {"number": 1}}},
      {"name": "cidr", "metric": "aws:destination-ip-addresses",
       "criteria": {"comparisonOperator": "in-cidr-set", "value": {"cidrs": ["10.0.0.0/33", "10.0.0.1"]},
                    "durationSeconds": 300}},
      {"name": "stat", "metric": "temp",
       "criteria": {"comparisonOperator": "greater-than", "statisticalThreshold": {"statistic": "p95"}}},
      {"name": "both", "metric": "temp",
       "criteria": {"comparisonOperator": "greater-than", "value": {"number": 1},
                    "statisticalThreshold": {"statistic": "p90"}, "durationSeconds": 60}},
      {"name": "ml", "metric": "temp", "criteria": {"mlDetectionConfig": {"confidenceLevel": "LOW"}}},
      {"name": "kind", "metric": "aws:num-listening-tcp-ports",
       "criteria": {"comparisonOperator": "less-than", "value": {"number": 3}, "durationSeconds": 1.5}}
    ]"#;
    let expected = [
        "$[0].name",
        "$[0].criteria.consecutiveDatapointsToAlarm",
        "$[0].criteria.consecutiveDatapointsToClear",
        "$[0].criteria.value.ports[1]",
        "$[0].criteria.value.ports[2]",
        "$[1].metric",
        "$[2].name",
        "$[2].extra",
        "$[2].criteria.comparisonOperator",
        "$[3].criteria.durationSeconds",
        "$[3].criteria.value.cidrs[0]",
        "$[3].criteria.value.cidrs[1]",
        "$[4].criteria.statisticalThreshold.statistic",
        "$[4].criteria.durationSeconds",
        "$[5].criteria",
        "$[6].criteria.mlDetectionConfig",
        "$[7].criteria.durationSeconds",
        "$[7].criteria.value",
    ];
    let found = paths(text);
    assert_eq!(found, expected, "{:#?}", problems(text));
}

#[test]
fn messages_name_value_and_fix() {
    let text = r#"[{"name": "a", "metric": "m",
        "criteria": {"comparisonOperator": "less-than", "value": {"number": 1},
                     "consecutiveDatapointsToAlarm": 11}}]"#;
    let found = problems(text);
    assert_eq!(found[0].1, "11 must be an integer from 1 to 10");
    let text = r#"[{"name": "a", "metric": "aws:listening-udp-ports",
        "criteria": {"comparisonOperator": "less-than", "value": {"count": 1}}}]"#;
    let found = problems(text);
    assert_eq!(
        found[0].1,
        "operator less-than does not apply to this metric: expected in-port-set or not-in-port-set"
    );
}

#[test]
fn at_most_one_hundred_behaviors() {
    let behavior = |i: usize| {
        format!(
            r#"{{"name": "b{i}", "metric": "m", "criteria": {{"comparisonOperator": "less-than", "value": {{"number": 1}}}}}}"#
        )
    };
    let hundred: Vec<String> = (0..100).map(behavior).collect();
    assert!(Profile::parse(&format!("[{}]", hundred.join(",")), "test").is_ok());
    let many: Vec<String> = (0..101).map(behavior).collect();
    assert_eq!(paths(&format!("[{}]", many.join(","))), ["$"]);
}

#[test]
fn missing_file_is_a_read_error() {
    let error = Profile::load("/nonexistent/profile.json").unwrap_err();
    assert!(matches!(error, ProfileError::Read { .. }));
    assert!(error.to_string().starts_with("failed to read profile /nonexistent/profile.json"));
}

#[test]
fn check_command_lists_problems_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.json");
    std::fs::write(
        &path,
        r#"[{"name": "a", "metric": "m", "criteria": {"comparisonOperator": "less-than",
            "value": {"number": "40"}, "consecutiveDatapointsToClear": 20}}]"#,
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_inferwatch"))
        .args(["profile", "check"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(lines[0].ends_with(
        "$[0].criteria.consecutiveDatapointsToClear: 20 must be an integer from 1 to 10"
    ));
    assert!(lines[1].ends_with("$[0].criteria.value.number: \"40\" must be a number"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("has 2 problems"), "{stderr}");
}

#[test]
fn check_command_accepts_valid_profile() {
    let output = Command::new(env!("CARGO_BIN_EXE_inferwatch"))
        .args(["profile", "check", "profiles/crypto-mining.json"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("valid, 2 behaviors"), "{stdout}");
    assert!(stdout.contains("avg_inference_time less-than 100 over 300 s"), "{stdout}");
}
