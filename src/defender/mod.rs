//! AWS IoT Device Defender metric reports over MQTT with mutual TLS.
//!
//! - [`Report`] is the document: standard device metrics from `/proc/net` ([`NetStat`]) and
//!   custom metrics from the monitor's window, encoded as JSON or CBOR with long or short
//!   keys, and checked by [`parse_report`] before it leaves the device.
//! - [`Publisher`] owns the MQTT connection (rumqttc, rustls on `ring`), the report ids and
//!   the on-disk [`Spool`]: a report is on disk before `submit` returns and leaves it only
//!   once the peer responded to it, so broker and process restarts lose nothing.
//! - [`Reporter`] builds and submits a report every interval from a [`Monitor`](crate::Monitor).
//! - [`run_fleet`] is the other side: a Device Defender peer that checks reports on any
//!   broker, used by `inferwatch fleet` and by the tests. With [`run_fleet_publishing`] and a
//!   [`FleetProfile`] it also evaluates a security profile per thing on each accepted
//!   report's metrics ([`report_metrics`]) and publishes the alarm events.
//!
//! Reports go to `$aws/things/{thing}/defender/metrics/{json|cbor}` at QoS 1; responses come
//! on the same topic plus `/accepted` or `/rejected`.

mod collect;
mod error;
mod fleet;
mod netstat;
mod profile;
mod publisher;
mod report;
mod spool;
mod thing;
mod tls;
mod validate;

#[cfg(test)]
mod tests;

pub use collect::{AWS_MIN_INTERVAL, OPTIONAL_METRICS, ReportOptions, Reporter, custom_metrics};
pub use error::{DefenderError, ReportError};
pub use fleet::{
    FleetConfig, FleetMessage, FleetResponse, REPORT_FILTER, Status, parse_report_topic,
    respond_to_report, run_fleet, run_fleet_publishing,
};
pub use netstat::{
    DEFAULT_MAX_LISTED, InterfaceCounters, InterfaceMap, NetStat, SocketEntry, parse_dev,
    parse_sockets, traffic_since,
};
pub use profile::{FleetProfile, report_metrics};
pub use publisher::{
    MAX_THROTTLED_RETRIES, Publisher, PublisherConfig, PublisherStats, Rejection, alarm_topic,
    is_throttling_code, report_topic,
};
pub use report::{
    ConnectionList, CustomMetric, DeviceMetrics, Format, KeyStyle, ListeningPort, MAX_REPORT_BYTES,
    MAX_REPORT_ID, NetworkStats, PortList, REPORT_VERSION, Report, SIGNIFICANT_DIGITS,
    TcpConnection, round_significant,
};
pub use spool::Spool;
pub use thing::{MAX_THING_NAME_LEN, ThingName};
pub use tls::{TlsFiles, client_config, install_ring_provider};
pub use validate::{
    MAX_STRING_BYTES, check_metric_name, decode_value, parse_report, report_from_value,
};
