//! The checks of a behaviors document: each problem is recorded with its JSON path and the
//! check goes on, so that one pass reports them all.

use std::time::Duration;

use serde_json::{Map, Value};

use super::{
    Behavior, Cidr, Criteria, MAX_BEHAVIORS, MAX_DURATION_SECONDS, MetricKind, Operator, Problem,
    Profile, STATISTICS, Threshold, metric_kind,
};

#[derive(Default)]
pub(super) struct Checker {
    pub(super) problems: Vec<Problem>,
}

const BEHAVIOR_KEYS: [&str; 6] =
    ["name", "metric", "metricDimension", "criteria", "suppressAlerts", "exportMetric"];
const CRITERIA_KEYS: [&str; 7] = [
    "comparisonOperator",
    "value",
    "durationSeconds",
    "consecutiveDatapointsToAlarm",
    "consecutiveDatapointsToClear",
    "statisticalThreshold",
    "mlDetectionConfig",
];
const VALUE_KEYS: [&str; 6] = ["count", "cidrs", "ports", "number", "numbers", "strings"];

impl Checker {
    fn problem(&mut self, path: &str, message: impl Into<String>) {
        self.problems.push(Problem { path: path.to_owned(), message: message.into() });
    }

    pub(super) fn profile(&mut self, document: &Value) -> Profile {
        let (list, base) = match document {
            Value::Array(list) => (list, "$".to_owned()),
            Value::Object(map) => match map.get("behaviors") {
                Some(Value::Array(list)) => (list, "$.behaviors".to_owned()),
                Some(_) => {
                    self.problem("$.behaviors", "must be an array of behaviors");
                    return Profile { behaviors: Vec::new() };
                }
                None => {
                    self.problem("$", "missing key behaviors: expected an array of behaviors or an object with a behaviors array");
                    return Profile { behaviors: Vec::new() };
                }
            },
            _ => {
                self.problem(
                    "$",
                    "must be an array of behaviors or an object with a behaviors array",
                );
                return Profile { behaviors: Vec::new() };
            }
        };
        if list.len() > MAX_BEHAVIORS {
            self.problem(
                &base,
                format!("has {} behaviors; a profile holds at most {MAX_BEHAVIORS}", list.len()),
            );
        }
        let mut behaviors = Vec::new();
        let mut names: Vec<(&str, usize)> = Vec::new();
        for (index, item) in list.iter().enumerate() {
            let path = format!("{base}[{index}]");
            if let Some(name) = item.get("name").and_then(Value::as_str) {
                if let Some((_, first)) = names.iter().find(|(seen, _)| *seen == name) {
                    self.problem(
                        &format!("{path}.name"),
                        format!("duplicate behavior name {name:?} (also at {base}[{first}])"),
                    );
                } else {
                    names.push((name, index));
                }
            }
            if let Some(behavior) = self.behavior(&path, item) {
                behaviors.push(behavior);
            }
        }
        Profile { behaviors }
    }

    fn unknown_keys(&mut self, path: &str, map: &Map<String, Value>, known: &[&str]) {
        for key in map.keys() {
            if !known.contains(&key.as_str()) {
                self.problem(
                    &format!("{path}.{key}"),
                    format!("unknown key: expected one of {}", known.join(", ")),
                );
            }
        }
    }

    fn name(&mut self, path: &str, value: Option<&Value>, what: &str) -> Option<String> {
        match value {
            None => {
                self.problem(path, format!("missing {what}"));
                None
            }
            Some(Value::String(text)) => {
                let valid = !text.is_empty()
                    && text.len() <= 128
                    && text.bytes().all(|b| b.is_ascii_alphanumeric() || b"_:-".contains(&b));
                if valid {
                    Some(text.clone())
                } else {
                    self.problem(path, format!("{what} {text:?} must be 1 to 128 characters of a-z, A-Z, 0-9, :, _ and -"));
                    None
                }
            }
            Some(_) => {
                self.problem(path, format!("{what} must be a string"));
                None
            }
        }
    }

    fn behavior(&mut self, path: &str, item: &Value) -> Option<Behavior> {
        let Value::Object(map) = item else {
            self.problem(path, "a behavior must be an object with name, metric and criteria");
            return None;
        };
        self.unknown_keys(path, map, &BEHAVIOR_KEYS);
        let name = self.name(&format!("{path}.name"), map.get("name"), "behavior name");
        let metric_path = format!("{path}.metric");
        let metric = self.name(&metric_path, map.get("metric"), "metric name");
        let kind = metric.as_deref().and_then(|m| match metric_kind(m) {
            Ok(kind) => Some(kind),
            Err(message) => {
                self.problem(&metric_path, message);
                None
            }
        });
        if map.contains_key("metricDimension") {
            self.problem(
                &format!("{path}.metricDimension"),
                "metric dimensions (topic filters) are not evaluated on the device: remove it",
            );
        }
        let suppress_alerts =
            self.flag(&format!("{path}.suppressAlerts"), map.get("suppressAlerts"));
        let _ = self.flag(&format!("{path}.exportMetric"), map.get("exportMetric"));
        let criteria_path = format!("{path}.criteria");
        let criteria = match map.get("criteria") {
            Some(Value::Object(criteria)) => self.criteria(&criteria_path, criteria, kind),
            Some(_) => {
                self.problem(&criteria_path, "must be an object");
                None
            }
            None => {
                self.problem(&criteria_path, "missing criteria");
                None
            }
        };
        Some(Behavior { name: name?, metric: metric?, criteria: criteria?, suppress_alerts })
    }

    fn flag(&mut self, path: &str, value: Option<&Value>) -> bool {
        match value {
            None => false,
            Some(Value::Bool(flag)) => *flag,
            Some(_) => {
                self.problem(path, "must be true or false");
                false
            }
        }
    }

    fn datapoints(&mut self, path: &str, value: Option<&Value>) -> u8 {
        match value {
            None => 1,
            Some(value) => match value.as_u64() {
                Some(count @ 1..=10) => count as u8,
                _ => {
                    self.problem(path, format!("{value} must be an integer from 1 to 10"));
                    1
                }
            },
        }
    }

    fn criteria(
        &mut self,
        path: &str,
        map: &Map<String, Value>,
        kind: Option<MetricKind>,
    ) -> Option<Criteria> {
        self.unknown_keys(path, map, &CRITERIA_KEYS);
        if map.contains_key("mlDetectionConfig") {
            self.problem(
                &format!("{path}.mlDetectionConfig"),
                "ML Detect models are trained in the cloud and cannot be evaluated on the device: \
                 use comparisonOperator and value, or statisticalThreshold",
            );
            return None;
        }

        let operator_path = format!("{path}.comparisonOperator");
        let operator = self.operator(&operator_path, map.get("comparisonOperator"));
        if let (Some(op), Some(kind)) = (operator, kind) {
            self.check_operator_applies(&operator_path, op, kind);
        }

        let duration =
            self.duration(&format!("{path}.durationSeconds"), map.get("durationSeconds"));
        if let (Some(op), Some(_)) = (operator, duration)
            && !op.is_numeric()
        {
            self.problem(
                &format!("{path}.durationSeconds"),
                format!("durationSeconds applies to numeric operators only, not {op}"),
            );
        }
        let to_alarm = self.datapoints(
            &format!("{path}.consecutiveDatapointsToAlarm"),
            map.get("consecutiveDatapointsToAlarm"),
        );
        let to_clear = self.datapoints(
            &format!("{path}.consecutiveDatapointsToClear"),
            map.get("consecutiveDatapointsToClear"),
        );

        let threshold = self.threshold(path, map, operator, kind, duration.is_some());
        Some(Criteria {
            operator: operator?,
            threshold: threshold?,
            duration,
            datapoints_to_alarm: to_alarm,
            datapoints_to_clear: to_clear,
        })
    }

    fn operator(&mut self, path: &str, value: Option<&Value>) -> Option<Operator> {
        match value {
            None => {
                self.problem(path, "missing comparisonOperator");
                None
            }
            Some(Value::String(name)) => match name.parse::<Operator>() {
                Ok(op) => Some(op),
                Err(()) => {
                    let names: Vec<&str> = Operator::ALL.iter().map(|(n, _)| *n).collect();
                    self.problem(
                        path,
                        format!("unknown operator {name:?}: expected one of {}", names.join(", ")),
                    );
                    None
                }
            },
            Some(_) => {
                self.problem(path, "must be a string such as \"less-than\"");
                None
            }
        }
    }

    fn check_operator_applies(&mut self, path: &str, op: Operator, kind: MetricKind) {
        let port_operator = matches!(op, Operator::InPortSet | Operator::NotInPortSet);
        let (allowed, expected) = match kind {
            MetricKind::Gauge | MetricKind::Counter => (
                op.is_numeric(),
                "less-than, less-than-equals, greater-than or greater-than-equals",
            ),
            MetricKind::PortList => (port_operator, "in-port-set or not-in-port-set"),
            MetricKind::AddressList => (
                matches!(op, Operator::InCidrSet | Operator::NotInCidrSet),
                "in-cidr-set or not-in-cidr-set",
            ),
            MetricKind::Custom => (!port_operator, "a numeric, cidr-set or set operator"),
        };
        if !allowed {
            self.problem(
                path,
                format!("operator {op} does not apply to this metric: expected {expected}"),
            );
        }
    }

    /// Reads `value` or `statisticalThreshold`, exactly one of which must be present.
    fn threshold(
        &mut self,
        path: &str,
        map: &Map<String, Value>,
        operator: Option<Operator>,
        kind: Option<MetricKind>,
        has_duration: bool,
    ) -> Option<Threshold> {
        match (map.get("value"), map.get("statisticalThreshold")) {
            (Some(_), Some(_)) => {
                self.problem(path, "give either value or statisticalThreshold, not both");
                None
            }
            (None, None) => {
                self.problem(&format!("{path}.value"), "missing value (or statisticalThreshold)");
                None
            }
            (Some(value), None) => {
                operator.and_then(|op| self.value(&format!("{path}.value"), value, op, kind))
            }
            (None, Some(statistic)) => {
                let statistic_path = format!("{path}.statisticalThreshold");
                let percentile = self.statistic(&statistic_path, statistic);
                if let Some(op) = operator
                    && !op.is_numeric()
                {
                    self.problem(
                        &statistic_path,
                        format!("statisticalThreshold needs a numeric operator, not {op}"),
                    );
                }
                if !has_duration {
                    self.problem(
                        &format!("{path}.durationSeconds"),
                        "statisticalThreshold needs durationSeconds: the percentile is taken over \
                         that window",
                    );
                }
                percentile.map(Threshold::Percentile)
            }
        }
    }

    fn duration(&mut self, path: &str, value: Option<&Value>) -> Option<Duration> {
        let value = value?;
        match value.as_u64() {
            Some(secs @ 1..=MAX_DURATION_SECONDS) => Some(Duration::from_secs(secs)),
            _ => {
                self.problem(
                    path,
                    format!(
                        "{value} must be a whole number of seconds from 1 to {MAX_DURATION_SECONDS}"
                    ),
                );
                None
            }
        }
    }

    fn statistic(&mut self, path: &str, value: &Value) -> Option<f64> {
        let statistic = value.as_object().and_then(|m| m.get("statistic"));
        if let Value::Object(map) = value {
            self.unknown_keys(path, map, &["statistic"]);
        }
        match statistic.and_then(Value::as_str) {
            Some(name) if STATISTICS.contains(&name) => name[1..].parse().ok(),
            _ => {
                self.problem(
                    &format!("{path}.statistic"),
                    format!("must be one of {}", STATISTICS.join(", ")),
                );
                None
            }
        }
    }

    fn value(
        &mut self,
        path: &str,
        value: &Value,
        op: Operator,
        kind: Option<MetricKind>,
    ) -> Option<Threshold> {
        let Value::Object(map) = value else {
            self.problem(path, "must be an object such as {\"number\": 40}");
            return None;
        };
        self.unknown_keys(path, map, &VALUE_KEYS);
        let present: Vec<&str> =
            VALUE_KEYS.iter().copied().filter(|k| map.contains_key(*k)).collect();
        let expected: &[&str] = match op {
            _ if op.is_numeric() => match kind {
                Some(MetricKind::Gauge | MetricKind::Counter) => &["count"],
                Some(MetricKind::Custom) => &["number"],
                _ => &["count", "number"],
            },
            Operator::InPortSet | Operator::NotInPortSet => &["ports"],
            Operator::InCidrSet | Operator::NotInCidrSet => &["cidrs"],
            _ => &["numbers", "strings"],
        };
        let chosen = match present.as_slice() {
            [one] if expected.contains(one) => *one,
            _ => {
                self.problem(
                    path,
                    format!(
                        "operator {op} on this metric takes exactly one of value.{}; found {}",
                        expected.join(", value."),
                        if present.is_empty() { "none".to_owned() } else { present.join(", ") }
                    ),
                );
                return None;
            }
        };
        let item_path = format!("{path}.{chosen}");
        let item = &map[chosen];
        match chosen {
            "count" => match item.as_u64() {
                Some(count) => Some(Threshold::Number(count as f64)),
                None => {
                    self.problem(&item_path, format!("{item} must be a non-negative integer"));
                    None
                }
            },
            "number" => match item.as_f64() {
                Some(number) if number.is_finite() => Some(Threshold::Number(number)),
                _ => {
                    self.problem(&item_path, format!("{item} must be a number"));
                    None
                }
            },
            "ports" => self
                .list(
                    &item_path,
                    item,
                    |v| v.as_u64().filter(|p| *p <= 65535).map(|p| p as u16),
                    "a port from 0 to 65535",
                )
                .map(Threshold::Ports),
            "cidrs" => self
                .list(
                    &item_path,
                    item,
                    |v| v.as_str().and_then(|t| t.parse::<Cidr>().ok()),
                    "a CIDR range such as 10.0.0.0/8",
                )
                .map(Threshold::Cidrs),
            "numbers" => {
                self.list(&item_path, item, Value::as_f64, "a number").map(Threshold::Numbers)
            }
            _ => self
                .list(&item_path, item, |v| v.as_str().map(str::to_owned), "a string")
                .map(Threshold::Strings),
        }
    }

    fn list<T>(
        &mut self,
        path: &str,
        value: &Value,
        convert: impl Fn(&Value) -> Option<T>,
        expected: &str,
    ) -> Option<Vec<T>> {
        let Value::Array(items) = value else {
            self.problem(path, format!("must be an array of which each element is {expected}"));
            return None;
        };
        if items.is_empty() {
            self.problem(path, "must not be empty");
            return None;
        }
        let mut converted = Vec::with_capacity(items.len());
        let mut valid = true;
        for (index, item) in items.iter().enumerate() {
            match convert(item) {
                Some(value) => converted.push(value),
                None => {
                    self.problem(&format!("{path}[{index}]"), format!("{item} is not {expected}"));
                    valid = false;
                }
            }
        }
        valid.then_some(converted)
    }
}
