//! Decoding and checking received reports as the Device Defender service does: the parser
//! that `inferwatch fleet` runs on every message, and that every report is run through
//! before it is sent.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use serde_json::{Map, Value};

use super::error::ReportError;
use super::report::{
    ConnectionList, CustomMetric, DeviceMetrics, Format, Key, KeyStyle, ListeningPort,
    MAX_REPORT_BYTES, MAX_REPORT_ID, NetworkStats, PortList, REPORT_VERSION, Report,
    SIGNIFICANT_DIGITS, TcpConnection, key,
};
use super::thing::is_name_char;

/// The longest string accepted in a `string_list` or as an interface name, in bytes.
// NOTE: AWS documents no limit for these strings; 256 bytes is this crate's choice.
pub const MAX_STRING_BYTES: usize = 256;

/// Decodes and checks a report; returns it with the key style it used.
pub fn parse_report(bytes: &[u8], format: Format) -> Result<(Report, KeyStyle), ReportError> {
    if bytes.len() > MAX_REPORT_BYTES {
        return Err(ReportError::TooLarge { size: bytes.len(), max: MAX_REPORT_BYTES });
    }
    let value = decode_value(bytes, format)?;
    report_from_value(&value)
}

/// Decodes JSON or CBOR into a JSON tree. CBOR maps must have text keys, and byte strings,
/// tags and non-finite floats are rejected, since JSON has no equivalent.
pub fn decode_value(bytes: &[u8], format: Format) -> Result<Value, ReportError> {
    let failed = |detail: String| ReportError::Decode { format: format.as_str(), detail };
    match format {
        Format::Json => serde_json::from_slice(bytes).map_err(|e| failed(e.to_string())),
        Format::Cbor => {
            let value: ciborium::Value =
                ciborium::from_reader(bytes).map_err(|e| failed(e.to_string()))?;
            cbor_to_json(value).map_err(failed)
        }
    }
}

fn cbor_to_json(value: ciborium::Value) -> Result<Value, String> {
    use ciborium::Value as Cbor;
    Ok(match value {
        Cbor::Integer(i) => {
            let i = i128::from(i);
            if let Ok(u) = u64::try_from(i) {
                Value::from(u)
            } else if let Ok(s) = i64::try_from(i) {
                Value::from(s)
            } else {
                return Err(format!("integer {i} does not fit in 64 bits"));
            }
        }
        Cbor::Float(x) => serde_json::Number::from_f64(x)
            .map(Value::Number)
            .ok_or_else(|| format!("float {x} is not finite"))?,
        Cbor::Text(text) => Value::String(text),
        Cbor::Bool(b) => Value::Bool(b),
        Cbor::Null => Value::Null,
        Cbor::Array(items) => {
            Value::Array(items.into_iter().map(cbor_to_json).collect::<Result<_, _>>()?)
        }
        Cbor::Map(entries) => {
            let mut map = Map::new();
            for (k, v) in entries {
                let Cbor::Text(k) = k else {
                    return Err("a map key is not a text string".into());
                };
                map.insert(k, cbor_to_json(v)?);
            }
            Value::Object(map)
        }
        Cbor::Bytes(_) => return Err("byte strings are not allowed".into()),
        Cbor::Tag(tag, _) => return Err(format!("tag {tag} is not allowed")),
        _ => return Err("unsupported CBOR value".into()),
    })
}

/// Checks a document tree and converts it into a [`Report`].
pub fn report_from_value(value: &Value) -> Result<(Report, KeyStyle), ReportError> {
    let root = value.as_object().ok_or_else(|| ReportError::invalid("$", "expected an object"))?;
    let style = if root.contains_key(key::HEADER.long) {
        KeyStyle::Long
    } else if root.contains_key(key::HEADER.short) {
        KeyStyle::Short
    } else {
        return Err(ReportError::invalid("header", "missing (or hed with short keys)"));
    };
    let reader = Reader { style };
    reader.check_keys(root, "$", &[key::HEADER, key::METRICS, key::CUSTOM_METRICS])?;

    let (header, path) = reader.object_field(root, "", key::HEADER)?;
    reader.check_keys(header, &path, &[key::REPORT_ID, key::VERSION])?;
    let report_id = reader.integer_field(header, &path, key::REPORT_ID, MAX_REPORT_ID)?;
    if report_id == 0 {
        return Err(ReportError::invalid(join(&path, key::REPORT_ID.name(style)), "must be > 0"));
    }
    let version_path = join(&path, key::VERSION.name(style));
    match reader.field(header, &path, key::VERSION)? {
        Value::String(v) if v == REPORT_VERSION => {}
        other => {
            return Err(ReportError::invalid(
                version_path,
                format!("expected the string \"1.0\", found {other}"),
            ));
        }
    }

    let (metrics, path) = reader.object_field(root, "", key::METRICS)?;
    let metrics = reader.device_metrics(metrics, &path)?;

    let custom_key = key::CUSTOM_METRICS.name(style);
    let custom_metrics = match root.get(custom_key) {
        None => BTreeMap::new(),
        Some(value) => custom_metrics(value, custom_key)?,
    };
    Ok((Report { report_id, metrics, custom_metrics }, style))
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() { name.to_owned() } else { format!("{path}.{name}") }
}

/// Reads objects whose keys must all be of one style.
struct Reader {
    style: KeyStyle,
}

impl Reader {
    fn check_keys(
        &self,
        map: &Map<String, Value>,
        path: &str,
        known: &[Key],
    ) -> Result<(), ReportError> {
        for name in map.keys() {
            if known.iter().any(|k| k.name(self.style) == name) {
                continue;
            }
            let other = match self.style {
                KeyStyle::Long => "short",
                KeyStyle::Short => "long",
            };
            let reason = if known.iter().any(|k| k.long == name || k.short == name) {
                format!("the report mixes {other} keys into a report that uses the other style")
            } else {
                let expected: Vec<&str> = known.iter().map(|k| k.name(self.style)).collect();
                format!("unknown key, expected one of {}", expected.join(", "))
            };
            return Err(ReportError::invalid(join(path, name), reason));
        }
        Ok(())
    }

    fn field<'a>(
        &self,
        map: &'a Map<String, Value>,
        path: &str,
        key: Key,
    ) -> Result<&'a Value, ReportError> {
        let name = key.name(self.style);
        map.get(name).ok_or_else(|| ReportError::invalid(join(path, name), "missing"))
    }

    fn object_field<'a>(
        &self,
        map: &'a Map<String, Value>,
        path: &str,
        key: Key,
    ) -> Result<(&'a Map<String, Value>, String), ReportError> {
        let field_path = join(path, key.name(self.style));
        let value = self.field(map, path, key)?;
        let object = value
            .as_object()
            .ok_or_else(|| ReportError::invalid(&field_path, "expected an object"))?;
        Ok((object, field_path))
    }

    fn integer_field(
        &self,
        map: &Map<String, Value>,
        path: &str,
        key: Key,
        max: u64,
    ) -> Result<u64, ReportError> {
        let value = self.field(map, path, key)?;
        integer(value, &join(path, key.name(self.style)), max)
    }

    fn optional_string(
        &self,
        map: &Map<String, Value>,
        path: &str,
        key: Key,
    ) -> Result<Option<String>, ReportError> {
        let name = key.name(self.style);
        match map.get(name) {
            None => Ok(None),
            Some(value) => plain_string(value, &join(path, name)).map(Some),
        }
    }

    fn device_metrics(
        &self,
        map: &Map<String, Value>,
        path: &str,
    ) -> Result<DeviceMetrics, ReportError> {
        self.check_keys(
            map,
            path,
            &[
                key::LISTENING_TCP_PORTS,
                key::LISTENING_UDP_PORTS,
                key::NETWORK_STATS,
                key::TCP_CONNECTIONS,
            ],
        )?;
        let mut metrics = DeviceMetrics::default();
        for (key, slot) in [
            (key::LISTENING_TCP_PORTS, &mut metrics.listening_tcp_ports),
            (key::LISTENING_UDP_PORTS, &mut metrics.listening_udp_ports),
        ] {
            if map.contains_key(key.name(self.style)) {
                let (list, list_path) = self.object_field(map, path, key)?;
                *slot = Some(self.port_list(list, &list_path)?);
            }
        }
        if map.contains_key(key::NETWORK_STATS.name(self.style)) {
            let (stats, stats_path) = self.object_field(map, path, key::NETWORK_STATS)?;
            let keys = [key::BYTES_IN, key::BYTES_OUT, key::PACKETS_IN, key::PACKETS_OUT];
            self.check_keys(stats, &stats_path, &keys)?;
            let read = |key: Key| match stats.get(key.name(self.style)) {
                None => Ok(0),
                Some(v) => integer(v, &join(&stats_path, key.name(self.style)), MAX_REPORT_ID),
            };
            metrics.network_stats = Some(NetworkStats {
                bytes_in: read(key::BYTES_IN)?,
                bytes_out: read(key::BYTES_OUT)?,
                packets_in: read(key::PACKETS_IN)?,
                packets_out: read(key::PACKETS_OUT)?,
            });
        }
        if map.contains_key(key::TCP_CONNECTIONS.name(self.style)) {
            let (tcp, tcp_path) = self.object_field(map, path, key::TCP_CONNECTIONS)?;
            self.check_keys(tcp, &tcp_path, &[key::ESTABLISHED_CONNECTIONS])?;
            let (established, est_path) =
                self.object_field(tcp, &tcp_path, key::ESTABLISHED_CONNECTIONS)?;
            metrics.tcp_connections = Some(self.connection_list(established, &est_path)?);
        }
        Ok(metrics)
    }

    fn port_list(&self, map: &Map<String, Value>, path: &str) -> Result<PortList, ReportError> {
        self.check_keys(map, path, &[key::PORTS, key::TOTAL])?;
        let ports_path = join(path, key::PORTS.name(self.style));
        let items = match map.get(key::PORTS.name(self.style)) {
            None => &Vec::new(),
            Some(v) => {
                v.as_array().ok_or_else(|| ReportError::invalid(&ports_path, "expected a list"))?
            }
        };
        let mut ports = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let item_path = format!("{ports_path}[{i}]");
            let entry = item
                .as_object()
                .ok_or_else(|| ReportError::invalid(&item_path, "expected an object"))?;
            self.check_keys(entry, &item_path, &[key::PORT, key::INTERFACE])?;
            let port =
                self.integer_field(entry, &item_path, key::PORT, u64::from(u16::MAX))? as u16;
            let interface = self.optional_string(entry, &item_path, key::INTERFACE)?;
            ports.push(ListeningPort { interface, port });
        }
        let total = self.optional_total(map, path, ports.len())?;
        Ok(PortList { ports, total })
    }

    fn connection_list(
        &self,
        map: &Map<String, Value>,
        path: &str,
    ) -> Result<ConnectionList, ReportError> {
        self.check_keys(map, path, &[key::CONNECTIONS, key::TOTAL])?;
        let list_path = join(path, key::CONNECTIONS.name(self.style));
        let items = match map.get(key::CONNECTIONS.name(self.style)) {
            None => &Vec::new(),
            Some(v) => {
                v.as_array().ok_or_else(|| ReportError::invalid(&list_path, "expected a list"))?
            }
        };
        let mut connections = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let item_path = format!("{list_path}[{i}]");
            let entry = item
                .as_object()
                .ok_or_else(|| ReportError::invalid(&item_path, "expected an object"))?;
            self.check_keys(
                entry,
                &item_path,
                &[key::LOCAL_INTERFACE, key::LOCAL_PORT, key::REMOTE_ADDR],
            )?;
            let local_interface = self.optional_string(entry, &item_path, key::LOCAL_INTERFACE)?;
            let local_port = match entry.get(key::LOCAL_PORT.name(self.style)) {
                None => 0,
                Some(v) => {
                    integer(v, &join(&item_path, key::LOCAL_PORT.name(self.style)), 65535)? as u16
                }
            };
            let addr_path = join(&item_path, key::REMOTE_ADDR.name(self.style));
            let text = plain_string(self.field(entry, &item_path, key::REMOTE_ADDR)?, &addr_path)?;
            let remote_addr: SocketAddr = text.parse().map_err(|_| {
                ReportError::invalid(
                    &addr_path,
                    format!("{text:?} is not IP:PORT (IPv6 as [ADDR]:PORT)"),
                )
            })?;
            connections.push(TcpConnection { local_interface, local_port, remote_addr });
        }
        let total = self.optional_total(map, path, connections.len())?;
        Ok(ConnectionList { connections, total })
    }

    fn optional_total(
        &self,
        map: &Map<String, Value>,
        path: &str,
        listed: usize,
    ) -> Result<u64, ReportError> {
        let name = key::TOTAL.name(self.style);
        match map.get(name) {
            None => Ok(listed as u64),
            Some(v) => {
                let total = integer(v, &join(path, name), MAX_REPORT_ID)?;
                if total < listed as u64 {
                    return Err(ReportError::invalid(
                        join(path, name),
                        format!("{total} is less than the {listed} entries listed"),
                    ));
                }
                Ok(total)
            }
        }
    }
}

fn integer(value: &Value, path: &str, max: u64) -> Result<u64, ReportError> {
    match value.as_u64() {
        Some(n) if n <= max => Ok(n),
        _ => Err(ReportError::invalid(
            path,
            format!("expected an integer from 0 to {max}, found {value}"),
        )),
    }
}

fn plain_string(value: &Value, path: &str) -> Result<String, ReportError> {
    let text = value
        .as_str()
        .ok_or_else(|| ReportError::invalid(path, format!("expected a string, found {value}")))?;
    if text.is_empty()
        || text.len() > MAX_STRING_BYTES
        || text.chars().any(|c| !(' '..='~').contains(&c))
    {
        return Err(ReportError::invalid(
            path,
            format!("{text:?} must be 1 to {MAX_STRING_BYTES} printable ASCII characters"),
        ));
    }
    Ok(text.to_owned())
}

/// Checks a custom metric name: `[a-zA-Z0-9:_-]{1,128}`, not starting with `aws:`.
pub fn check_metric_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 128 || !name.chars().all(is_name_char) {
        return Err(
            "a metric name is 1 to 128 characters of a-z, A-Z, 0-9, ':', '_' and '-'".into()
        );
    }
    if name.starts_with("aws:") {
        return Err("the aws: prefix is reserved for AWS metrics".into());
    }
    Ok(())
}

fn custom_metrics(
    value: &Value,
    path: &str,
) -> Result<BTreeMap<String, CustomMetric>, ReportError> {
    let map = value.as_object().ok_or_else(|| ReportError::invalid(path, "expected an object"))?;
    let mut metrics = BTreeMap::new();
    for (name, value) in map {
        let metric_path = join(path, name);
        check_metric_name(name).map_err(|reason| ReportError::invalid(&metric_path, reason))?;
        let items = value.as_array().filter(|items| items.len() == 1).ok_or_else(|| {
            ReportError::invalid(&metric_path, "expected a list of exactly one object")
        })?;
        let item_path = format!("{metric_path}[0]");
        let entry = items[0]
            .as_object()
            .ok_or_else(|| ReportError::invalid(&item_path, "expected an object"))?;
        if entry.len() != 1 {
            return Err(ReportError::invalid(
                &item_path,
                "expected exactly one of number, number_list, string_list, ip_list",
            ));
        }
        let (kind, inner) = entry.iter().next().expect("the map has exactly one entry");
        let inner_path = join(&item_path, kind);
        let list = |what: &str| {
            inner.as_array().ok_or_else(|| {
                ReportError::invalid(&inner_path, format!("expected a list of {what}"))
            })
        };
        let metric = match kind.as_str() {
            "number" => CustomMetric::Number(number(inner, &inner_path)?),
            "number_list" => CustomMetric::NumberList(
                list("numbers")?
                    .iter()
                    .enumerate()
                    .map(|(i, v)| number(v, &format!("{inner_path}[{i}]")))
                    .collect::<Result<_, _>>()?,
            ),
            "string_list" => CustomMetric::StringList(
                list("strings")?
                    .iter()
                    .enumerate()
                    .map(|(i, v)| plain_string(v, &format!("{inner_path}[{i}]")))
                    .collect::<Result<_, _>>()?,
            ),
            "ip_list" => CustomMetric::IpList(
                list("IP addresses")?
                    .iter()
                    .enumerate()
                    .map(|(i, v)| {
                        let item_path = format!("{inner_path}[{i}]");
                        let text = plain_string(v, &item_path)?;
                        text.parse::<IpAddr>().map_err(|_| {
                            ReportError::invalid(
                                &item_path,
                                format!("{text:?} is not an IPv4 or IPv6 address"),
                            )
                        })
                    })
                    .collect::<Result<_, _>>()?,
            ),
            _ => {
                return Err(ReportError::invalid(
                    &inner_path,
                    "unknown type, expected number, number_list, string_list or ip_list",
                ));
            }
        };
        metrics.insert(name.clone(), metric);
    }
    Ok(metrics)
}

/// Reads a JSON number with at most 15 significant digits. A number written as a string is
/// rejected: the service would drop it without a word.
fn number(value: &Value, path: &str) -> Result<f64, ReportError> {
    let Some(x) = value.as_f64().filter(|_| value.is_number()) else {
        return Err(ReportError::invalid(path, format!("expected a JSON number, found {value}")));
    };
    let digits = significant_digits(x);
    if digits > SIGNIFICANT_DIGITS {
        return Err(ReportError::invalid(
            path,
            format!("{x} has {digits} significant digits, more than {SIGNIFICANT_DIGITS}"),
        ));
    }
    Ok(x)
}

/// Counts the significant digits of the shortest decimal that reads back as `x`.
pub(crate) fn significant_digits(x: f64) -> usize {
    let text = format!("{:e}", x.abs());
    let mantissa = text.split('e').next().unwrap_or("");
    mantissa.chars().filter(char::is_ascii_digit).count()
}
