//! Security profiles: the behaviors JSON of `aws iot create-security-profile --behaviors`,
//! parsed and validated with every problem reported at its JSON path.

mod check;

use std::fmt;
use std::net::IpAddr;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use serde_json::Value;

use check::Checker;

/// The profile shipped with inferwatch: the two behaviors of the AWS reference setup for
/// cryptojacking on ML inference devices.
pub const CRYPTO_MINING_JSON: &str = include_str!("../../../profiles/crypto-mining.json");

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
