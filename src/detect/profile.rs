//! Security profiles: the behaviors JSON of `aws iot create-security-profile --behaviors`,
//! parsed and validated with every problem reported at its JSON path.

use std::fmt;
use std::net::IpAddr;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use serde_json::{Map, Value};

/// The profile shipped with inferwatch: the two behaviors of the AWS reference setup for
/// cryptojacking on ML inference devices.
pub const CRYPTO_MINING_JSON: &str = include_str!("../../profiles/crypto-mining.json");

/// Most behaviors a profile may have, as in Device Defender.
pub const MAX_BEHAVIORS: usize = 100;

/// Longest `durationSeconds` accepted.
// NOTE: the Device Defender API reference gives no upper bound for durationSeconds; one day
// keeps the per-behavior history bounded.
pub const MAX_DURATION_SECONDS: u64 = 86_400;

/// The percentiles `statisticalThreshold.statistic` accepts, as in Device Defender.
pub const STATISTICS: [&str; 11] =
    ["p0", "p0.1", "p0.01", "p1", "p10", "p50", "p90", "p99", "p99.9", "p99.99", "p100"];

/// A parsed and validated security profile.
#[derive(Clone, Debug, PartialEq)]
pub struct Profile {
    /// The behaviors, in file order.
    pub behaviors: Vec<Behavior>,
}

/// One behavior: the normal range of one metric.
#[derive(Clone, Debug, PartialEq)]
pub struct Behavior {
    /// The behavior's name, unique in the profile.
    pub name: String,
    /// The metric name: an `aws:` device-side metric or a custom metric.
    pub metric: String,
    /// The normal range of the metric.
    pub criteria: Criteria,
    /// `suppressAlerts`: the behavior is evaluated but its events are not sent to sinks.
    pub suppress_alerts: bool,
}

/// The `criteria` object of a behavior.
#[derive(Clone, Debug, PartialEq)]
pub struct Criteria {
    /// The comparison that holds for normal datapoints.
    pub operator: Operator,
    /// The value or set the datapoint is compared with.
    pub threshold: Threshold,
    /// The trailing window the metric is aggregated over (`durationSeconds`).
    pub duration: Option<Duration>,
    /// Violating datapoints in a row that raise the alarm (1–10, default 1).
    pub datapoints_to_alarm: u8,
    /// Normal datapoints in a row that clear the alarm (1–10, default 1).
    pub datapoints_to_clear: u8,
}

/// A comparison operator of Device Defender.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operator {
    /// `less-than`.
    LessThan,
    /// `less-than-equals`.
    LessThanEquals,
    /// `greater-than`.
    GreaterThan,
    /// `greater-than-equals`.
    GreaterThanEquals,
    /// `in-port-set`: every port is in the set.
    InPortSet,
    /// `not-in-port-set`: no port is in the set.
    NotInPortSet,
    /// `in-cidr-set`: every address is in one of the ranges.
    InCidrSet,
    /// `not-in-cidr-set`: no address is in any of the ranges.
    NotInCidrSet,
    /// `in-set`: every element is in the set.
    InSet,
    /// `not-in-set`: no element is in the set.
    NotInSet,
}

impl Operator {
    const ALL: [(&'static str, Operator); 10] = [
        ("less-than", Operator::LessThan),
        ("less-than-equals", Operator::LessThanEquals),
        ("greater-than", Operator::GreaterThan),
        ("greater-than-equals", Operator::GreaterThanEquals),
        ("in-port-set", Operator::InPortSet),
        ("not-in-port-set", Operator::NotInPortSet),
        ("in-cidr-set", Operator::InCidrSet),
        ("not-in-cidr-set", Operator::NotInCidrSet),
        ("in-set", Operator::InSet),
        ("not-in-set", Operator::NotInSet),
    ];

    /// Returns the operator's name in the behaviors JSON.
    pub fn as_str(self) -> &'static str {
        Operator::ALL.iter().find(|(_, op)| *op == self).map_or("", |(name, _)| name)
    }

    /// Returns whether the operator compares numbers.
    pub fn is_numeric(self) -> bool {
        matches!(
            self,
            Operator::LessThan
                | Operator::LessThanEquals
                | Operator::GreaterThan
                | Operator::GreaterThanEquals
        )
    }

    /// Applies a numeric operator: whether `value OP threshold` holds. List operators
    /// return `false`.
    pub fn compare(self, value: f64, threshold: f64) -> bool {
        match self {
            Operator::LessThan => value < threshold,
            Operator::LessThanEquals => value <= threshold,
            Operator::GreaterThan => value > threshold,
            Operator::GreaterThanEquals => value >= threshold,
            _ => false,
        }
    }
}

impl fmt::Display for Operator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Operator {
    type Err = ();

    fn from_str(name: &str) -> Result<Self, ()> {
        Operator::ALL.iter().find(|(n, _)| *n == name).map(|(_, op)| *op).ok_or(())
    }
}

/// The value or set a datapoint is compared with.
#[derive(Clone, Debug, PartialEq)]
pub enum Threshold {
    /// `value.number` or `value.count`.
    Number(f64),
    /// `statisticalThreshold.statistic`: the given percentile (0–100) of this device's own
    /// datapoints over `durationSeconds`.
    Percentile(f64),
    /// `value.ports`.
    Ports(Vec<u16>),
    /// `value.cidrs`.
    Cidrs(Vec<Cidr>),
    /// `value.numbers`.
    Numbers(Vec<f64>),
    /// `value.strings`.
    Strings(Vec<String>),
}

/// An IPv4 or IPv6 address range such as `10.0.0.0/8`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    /// The network address.
    pub address: IpAddr,
    /// The prefix length in bits.
    pub prefix: u8,
}

impl Cidr {
    /// Returns whether `address` is in the range. IPv4 ranges also match IPv4-mapped IPv6
    /// addresses (`::ffff:10.0.0.1`), as `/proc/net/tcp6` lists them.
    pub fn contains(&self, address: IpAddr) -> bool {
        let address = match address {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
            v4 => v4,
        };
        match (self.address, address) {
            (IpAddr::V4(net), IpAddr::V4(addr)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(net) & mask == u32::from(addr) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(addr)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(net) & mask == u128::from(addr) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let (address, prefix) = text
            .split_once('/')
            .ok_or_else(|| format!("{text:?} is not a CIDR range: write it as 10.0.0.0/8"))?;
        let address: IpAddr =
            address.parse().map_err(|_| format!("{address:?} in {text:?} is not an IP address"))?;
        let max = if address.is_ipv4() { 32 } else { 128 };
        match prefix.parse::<u8>() {
            Ok(prefix) if prefix <= max => Ok(Cidr { address, prefix }),
            _ => Err(format!("prefix {prefix:?} in {text:?} is not a number from 0 to {max}")),
        }
    }
}

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn join<T: fmt::Display>(items: &[T]) -> String {
            let texts: Vec<String> = items.iter().map(ToString::to_string).collect();
            format!("[{}]", texts.join(", "))
        }
        match self {
            Threshold::Number(number) => write!(f, "{number}"),
            Threshold::Percentile(percentile) => write!(f, "p{percentile} of its own history"),
            Threshold::Ports(ports) => f.write_str(&join(ports)),
            Threshold::Cidrs(cidrs) => f.write_str(&join(cidrs)),
            Threshold::Numbers(numbers) => f.write_str(&join(numbers)),
            Threshold::Strings(strings) => write!(f, "{strings:?}"),
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix)
    }
}

/// The shape of a metric's datapoints and their aggregation over `durationSeconds`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricKind {
    /// A number that stands for itself: a `durationSeconds` window takes the mean.
    Gauge,
    /// A delta of a counter: a `durationSeconds` window takes the sum.
    Counter,
    /// A list of ports.
    PortList,
    /// A list of IP addresses.
    AddressList,
    /// A custom metric, whose shape follows the operator.
    Custom,
}

/// Returns the kind of a device-side `aws:` metric, `Err` with the reason for one that
/// cannot be evaluated on the device, and `Custom` for any other name.
pub fn metric_kind(name: &str) -> Result<MetricKind, String> {
    let kind = match name {
        "aws:all-bytes-in" | "aws:all-bytes-out" | "aws:all-packets-in" | "aws:all-packets-out" => {
            MetricKind::Counter
        }
        "aws:num-listening-tcp-ports"
        | "aws:num-listening-udp-ports"
        | "aws:num-established-tcp-connections" => MetricKind::Gauge,
        "aws:listening-tcp-ports" | "aws:listening-udp-ports" => MetricKind::PortList,
        "aws:destination-ip-addresses" => MetricKind::AddressList,
        "aws:message-byte-size"
        | "aws:num-messages-received"
        | "aws:num-messages-sent"
        | "aws:num-authorization-failures"
        | "aws:num-connection-attempts"
        | "aws:num-disconnects"
        | "aws:disconnect-duration"
        | "aws:source-ip-address" => {
            return Err(format!(
                "{name} is measured by the cloud service, not on the device: remove the \
                 behavior or evaluate it in AWS IoT Device Defender"
            ));
        }
        other if other.starts_with("aws:") => {
            return Err(format!(
                "unknown device metric {other}: the device-side metrics are aws:all-bytes-in, \
                 aws:all-bytes-out, aws:all-packets-in, aws:all-packets-out, \
                 aws:num-listening-tcp-ports, aws:num-listening-udp-ports, \
                 aws:num-established-tcp-connections, aws:listening-tcp-ports, \
                 aws:listening-udp-ports and aws:destination-ip-addresses"
            ));
        }
        _ => MetricKind::Custom,
    };
    Ok(kind)
}

/// One problem in a profile: where it is and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// A JSONPath such as `$[0].criteria.value.number`.
    pub path: String,
    /// The problem and the valid form.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Every problem found in a profile.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProfileError {
    /// The file cannot be read.
    #[error("failed to read profile {path}: {source}")]
    Read {
        /// The file path.
        path: std::path::PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The text is not valid JSON, or the profile breaks the rules of Device Defender.
    #[error("invalid profile {origin}: {}", format_problems(.problems))]
    Invalid {
        /// The origin of the profile: a path or a profile name.
        origin: String,
        /// Every problem, in document order.
        problems: Vec<Problem>,
    },
}

fn format_problems(problems: &[Problem]) -> String {
    let lines: Vec<String> = problems.iter().map(Problem::to_string).collect();
    lines.join("; ")
}

impl ProfileError {
    /// Returns the problems of an invalid profile, or none for a read error.
    pub fn problems(&self) -> &[Problem] {
        match self {
            ProfileError::Invalid { problems, .. } => problems,
            ProfileError::Read { .. } => &[],
        }
    }
}

impl Profile {
    /// Returns the profile shipped under `name`, if there is one (`crypto-mining`).
    pub fn builtin(name: &str) -> Option<Profile> {
        match name {
            "crypto-mining" => Profile::parse(CRYPTO_MINING_JSON, "crypto-mining").ok(),
            _ => None,
        }
    }

    /// Names of the shipped profiles.
    pub fn builtin_names() -> &'static [&'static str] {
        &["crypto-mining"]
    }

    /// Reads a shipped profile by name, or else a profile file.
    pub fn load(name_or_path: &str) -> Result<Profile, ProfileError> {
        if let Some(profile) = Profile::builtin(name_or_path) {
            return Ok(profile);
        }
        Profile::read(Path::new(name_or_path))
    }

    /// Reads and validates a profile file.
    pub fn read(path: &Path) -> Result<Profile, ProfileError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ProfileError::Read { path: path.to_owned(), source })?;
        Profile::parse(&text, &path.display().to_string())
    }

    /// Parses and validates a profile: a bare array of behaviors, or an object whose
    /// `behaviors` key contains the array (the output of `describe-security-profile`).
    /// `origin` names the text in error messages.
    pub fn parse(text: &str, origin: &str) -> Result<Profile, ProfileError> {
        let invalid =
            |problems: Vec<Problem>| ProfileError::Invalid { origin: origin.to_owned(), problems };
        let document: Value = serde_json::from_str(text).map_err(|e| {
            invalid(vec![Problem {
                path: "$".to_owned(),
                message: format!("not valid JSON at line {} column {}: {e}", e.line(), e.column()),
            }])
        })?;
        let mut checker = Checker::default();
        let profile = checker.profile(&document);
        if checker.problems.is_empty() { Ok(profile) } else { Err(invalid(checker.problems)) }
    }
}

#[derive(Default)]
struct Checker {
    problems: Vec<Problem>,
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

    fn profile(&mut self, document: &Value) -> Profile {
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
