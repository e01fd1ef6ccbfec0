//! The Device Defender metric report: the model, and its JSON and CBOR encodings with long or
//! short keys.
//!
//! A report is built as a [`serde_json::Value`] tree with the keys of one [`KeyStyle`], checked
//! by the same validator that [`parse_report`](super::parse_report) applies to received
//! documents, and serialized as JSON or CBOR. Checking the encoded tree, not the model, means a
//! report that leaves the device is one the peer accepts.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use serde_json::{Map, Number, Value, json};

use super::error::ReportError;
use super::validate;

/// The only report format version the service accepts.
pub const REPORT_VERSION: &str = "1.0";

/// The largest payload AWS IoT Core accepts in one MQTT message, 128 KiB.
pub const MAX_REPORT_BYTES: usize = 128 * 1024;

/// Report ids and integers must stay below 2^53 so that they survive a JSON number.
pub const MAX_REPORT_ID: u64 = (1 << 53) - 1;

/// Significant digits a number keeps in a report.
pub const SIGNIFICANT_DIGITS: usize = 15;

/// The payload encoding, which is also the last level of the report topic.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Format {
    /// JSON (`…/metrics/json`).
    #[default]
    Json,
    /// CBOR (`…/metrics/cbor`).
    Cbor,
}

impl Format {
    /// Returns `json` or `cbor`.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Cbor => "cbor",
        }
    }
}

impl std::str::FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "json" => Ok(Format::Json),
            "cbor" => Ok(Format::Cbor),
            _ => Err(format!("unknown report format {s:?}: use json or cbor")),
        }
    }
}

/// Long keys (`header`, `report_id`) or short keys (`hed`, `rid`); one report uses one style.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum KeyStyle {
    /// The readable names.
    #[default]
    Long,
    /// The abbreviations that keep reports small.
    Short,
}

/// One key in both styles.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Key {
    pub(crate) long: &'static str,
    pub(crate) short: &'static str,
}

impl Key {
    pub(crate) fn name(self, style: KeyStyle) -> &'static str {
        match style {
            KeyStyle::Long => self.long,
            KeyStyle::Short => self.short,
        }
    }
}

macro_rules! keys {
    ($($name:ident = $long:literal / $short:literal;)*) => {
        /// Report keys in both styles. Custom metric names and their type keys (`number`,
        /// `number_list`, `string_list`, `ip_list`) are never shortened.
        pub(crate) mod key {
            use super::Key;
            $(pub(crate) const $name: Key = Key { long: $long, short: $short };)*
        }
    };
}

keys! {
    HEADER = "header" / "hed";
    REPORT_ID = "report_id" / "rid";
    VERSION = "version" / "v";
    METRICS = "metrics" / "met";
    CUSTOM_METRICS = "custom_metrics" / "cmet";
    LISTENING_TCP_PORTS = "listening_tcp_ports" / "tp";
    LISTENING_UDP_PORTS = "listening_udp_ports" / "up";
    PORTS = "ports" / "pts";
    PORT = "port" / "pt";
    INTERFACE = "interface" / "if";
    TOTAL = "total" / "t";
    NETWORK_STATS = "network_stats" / "ns";
    BYTES_IN = "bytes_in" / "bi";
    BYTES_OUT = "bytes_out" / "bo";
    PACKETS_IN = "packets_in" / "pi";
    PACKETS_OUT = "packets_out" / "po";
    TCP_CONNECTIONS = "tcp_connections" / "tc";
    ESTABLISHED_CONNECTIONS = "established_connections" / "ec";
    CONNECTIONS = "connections" / "cs";
    LOCAL_INTERFACE = "local_interface" / "li";
    LOCAL_PORT = "local_port" / "lp";
    REMOTE_ADDR = "remote_addr" / "rad";
}

/// A metric report: header, device metrics and custom metrics.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Report {
    /// Strictly increasing per thing; epoch milliseconds clamped to the last id + 1.
    pub report_id: u64,
    /// The standard device-side metrics.
    pub metrics: DeviceMetrics,
    /// Custom metrics by name, such as `avg_inference_time`.
    pub custom_metrics: BTreeMap<String, CustomMetric>,
}

/// The standard device-side metrics; an absent group is left out of the document.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DeviceMetrics {
    /// TCP ports in the LISTEN state.
    pub listening_tcp_ports: Option<PortList>,
    /// UDP ports bound without a remote peer.
    pub listening_udp_ports: Option<PortList>,
    /// Traffic since the previous report.
    pub network_stats: Option<NetworkStats>,
    /// Established TCP connections.
    pub tcp_connections: Option<ConnectionList>,
}

/// A possibly capped list of listening ports and the uncapped count.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PortList {
    /// The listed ports.
    pub ports: Vec<ListeningPort>,
    /// How many ports listen, including those left out of `ports`.
    pub total: u64,
}

/// One listening port.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ListeningPort {
    /// The interface the port is bound on; `None` for a wildcard listener (all interfaces).
    pub interface: Option<String>,
    /// The port number.
    pub port: u16,
}

/// Network traffic counts over all non-loopback interfaces since the previous report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetworkStats {
    /// Bytes received.
    pub bytes_in: u64,
    /// Bytes sent.
    pub bytes_out: u64,
    /// Packets received.
    pub packets_in: u64,
    /// Packets sent.
    pub packets_out: u64,
}

/// A possibly capped list of established TCP connections and the uncapped count.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ConnectionList {
    /// The listed connections.
    pub connections: Vec<TcpConnection>,
    /// How many connections are established, including those left out.
    pub total: u64,
}

/// One established TCP connection.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TcpConnection {
    /// The interface that holds the local address, when one does.
    pub local_interface: Option<String>,
    /// The local port.
    pub local_port: u16,
    /// The peer; IPv6 addresses print bracketed, as `[2001:db8::1]:443`.
    pub remote_addr: SocketAddr,
}

/// The value of one custom metric.
#[derive(Clone, Debug, PartialEq)]
pub enum CustomMetric {
    /// One number, such as a mean latency in milliseconds.
    Number(f64),
    /// A list of numbers.
    NumberList(Vec<f64>),
    /// A list of strings.
    StringList(Vec<String>),
    /// A list of IP addresses.
    IpList(Vec<IpAddr>),
}

impl Report {
    /// Builds the document tree with the keys of `style`.
    pub fn to_value(&self, style: KeyStyle) -> Value {
        let k = |key: Key| key.name(style).to_owned();
        let mut root = Map::new();
        root.insert(
            k(key::HEADER),
            json!({ key::REPORT_ID.name(style): self.report_id, key::VERSION.name(style): REPORT_VERSION }),
        );
        root.insert(k(key::METRICS), Value::Object(self.metrics.to_map(style)));
        if !self.custom_metrics.is_empty() {
            let custom = self
                .custom_metrics
                .iter()
                .map(|(name, metric)| (name.clone(), Value::Array(vec![metric.to_value()])))
                .collect();
            root.insert(k(key::CUSTOM_METRICS), Value::Object(custom));
        }
        Value::Object(root)
    }

    /// Encodes the report, after checking it as the service would.
    pub fn encode(&self, format: Format, style: KeyStyle) -> Result<Vec<u8>, ReportError> {
        let value = self.to_value(style);
        validate::report_from_value(&value)?;
        let bytes = encode_value(&value, format)?;
        if bytes.len() > MAX_REPORT_BYTES {
            return Err(ReportError::TooLarge { size: bytes.len(), max: MAX_REPORT_BYTES });
        }
        Ok(bytes)
    }
}

/// Serializes a document tree as JSON or CBOR.
pub(crate) fn encode_value(value: &Value, format: Format) -> Result<Vec<u8>, ReportError> {
    let failed = |detail: String| ReportError::Encode { format: format.as_str(), detail };
    match format {
        Format::Json => serde_json::to_vec(value).map_err(|e| failed(e.to_string())),
        Format::Cbor => {
            let mut bytes = Vec::new();
            ciborium::into_writer(value, &mut bytes).map_err(|e| failed(e.to_string()))?;
            Ok(bytes)
        }
    }
}

impl DeviceMetrics {
    fn to_map(&self, style: KeyStyle) -> Map<String, Value> {
        let k = |key: Key| key.name(style).to_owned();
        let mut map = Map::new();
        if let Some(list) = &self.listening_tcp_ports {
            map.insert(k(key::LISTENING_TCP_PORTS), list.to_value(style));
        }
        if let Some(list) = &self.listening_udp_ports {
            map.insert(k(key::LISTENING_UDP_PORTS), list.to_value(style));
        }
        if let Some(stats) = &self.network_stats {
            map.insert(
                k(key::NETWORK_STATS),
                json!({
                    key::BYTES_IN.name(style): stats.bytes_in,
                    key::BYTES_OUT.name(style): stats.bytes_out,
                    key::PACKETS_IN.name(style): stats.packets_in,
                    key::PACKETS_OUT.name(style): stats.packets_out,
                }),
            );
        }
        if let Some(list) = &self.tcp_connections {
            let connections: Vec<Value> = list
                .connections
                .iter()
                .map(|c| {
                    let mut entry = Map::new();
                    if let Some(interface) = &c.local_interface {
                        entry.insert(k(key::LOCAL_INTERFACE), json!(interface));
                    }
                    entry.insert(k(key::LOCAL_PORT), json!(c.local_port));
                    entry.insert(k(key::REMOTE_ADDR), json!(c.remote_addr.to_string()));
                    Value::Object(entry)
                })
                .collect();
            map.insert(
                k(key::TCP_CONNECTIONS),
                json!({ key::ESTABLISHED_CONNECTIONS.name(style): {
                    key::CONNECTIONS.name(style): connections,
                    key::TOTAL.name(style): list.total,
                }}),
            );
        }
        map
    }
}

impl PortList {
    fn to_value(&self, style: KeyStyle) -> Value {
        let ports: Vec<Value> = self
            .ports
            .iter()
            .map(|p| {
                let mut entry = Map::new();
                if let Some(interface) = &p.interface {
                    entry.insert(key::INTERFACE.name(style).to_owned(), json!(interface));
                }
                entry.insert(key::PORT.name(style).to_owned(), json!(p.port));
                Value::Object(entry)
            })
            .collect();
        json!({ key::PORTS.name(style): ports, key::TOTAL.name(style): self.total })
    }
}

impl CustomMetric {
    fn to_value(&self) -> Value {
        match self {
            CustomMetric::Number(x) => json!({ "number": number_value(*x) }),
            CustomMetric::NumberList(xs) => {
                json!({ "number_list": xs.iter().map(|x| number_value(*x)).collect::<Vec<_>>() })
            }
            CustomMetric::StringList(items) => json!({ "string_list": items }),
            CustomMetric::IpList(ips) => {
                json!({ "ip_list": ips.iter().map(|ip| ip.to_string()).collect::<Vec<_>>() })
            }
        }
    }
}

/// Rounds `x` to [`SIGNIFICANT_DIGITS`] significant digits.
pub fn round_significant(x: f64) -> f64 {
    if !x.is_finite() || x == 0.0 {
        return x;
    }
    // Formatting with 14 digits after the point in scientific notation keeps 15 significant
    // digits, and the decimal text parses back to the nearest f64.
    format!("{:.*e}", SIGNIFICANT_DIGITS - 1, x).parse().unwrap_or(x)
}

/// Returns `x` as a JSON number: rounded to 15 significant digits, and written as an integer
/// when it is one (so 23.0 becomes `23`). A NaN or infinity becomes `null`, which validation
/// then rejects.
pub(crate) fn number_value(x: f64) -> Value {
    let x = round_significant(x);
    if x.fract() == 0.0 && x.abs() <= MAX_REPORT_ID as f64 {
        return if x < 0.0 { json!(x as i64) } else { json!(x as u64) };
    }
    Number::from_f64(x).map_or(Value::Null, Value::Number)
}
