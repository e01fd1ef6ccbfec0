//! `inferwatch fleet`: a local Device Defender peer for any MQTT broker.
//!
//! It subscribes to `$aws/things/+/defender/metrics/+`, runs every report through the same
//! parser and checks as [`parse_report`], and responds on the report topic plus `/accepted`
//! or `/rejected`, in the report's format:
//!
//! ```json
//! {"thingName": "cam-1", "reportId": 1764844800123, "status": "ACCEPTED", "timestamp": 1764844800456}
//! {"thingName": "cam-1", "reportId": 1764844800124, "status": "REJECTED",
//!  "statusDetails": {"ErrorCode": "InvalidPayload", "ErrorMessage": "invalid report field …"},
//!  "timestamp": 1764844800789}
//! ```
//!
//! A report whose id is not above the last accepted id of its thing is a copy sent again
//! after a lost response: it is accepted again and marked `duplicate`, so observers
//! see each report once.
//!
//! A security profile is evaluated per thing by an observer passed to
//! [`run_fleet_publishing`]: it receives every response with the accepted [`Report`], and
//! returns the messages to publish, such as the alarm events of a
//! [`FleetProfile`](super::FleetProfile) on each thing's
//! [`alarm_topic`](super::alarm_topic). `inferwatch fleet --profile` does this.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS, TlsConfiguration, Transport};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::error::DefenderError;
use super::publisher::{Backoff, poll_events};
use super::report::{Format, Report, encode_value};
use super::thing::ThingName;
use super::tls::{TlsFiles, client_config};
use super::validate::{decode_value, report_from_value};

/// The subscription that receives every thing's reports.
pub const REPORT_FILTER: &str = "$aws/things/+/defender/metrics/+";

/// Settings of the fleet peer.
#[derive(Clone, Debug)]
pub struct FleetConfig {
    /// Broker host.
    pub host: String,
    /// Broker port.
    pub port: u16,
    /// CA, certificate and key files.
    pub tls: TlsFiles,
    /// MQTT client id (default `inferwatch-fleet`).
    pub client_id: String,
}

/// `ACCEPTED` or `REJECTED`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    /// The report is valid.
    Accepted,
    /// The report is malformed.
    Rejected,
}

/// One response sent by the peer, as printed by `inferwatch fleet`.
#[derive(Clone, Debug, Serialize)]
pub struct FleetResponse {
    /// The thing from the topic.
    pub thing: String,
    /// The report id, when the document has a readable one.
    pub report_id: Option<u64>,
    /// The verdict.
    pub status: Status,
    /// Whether the id was already accepted (a copy sent again).
    pub duplicate: bool,
    /// `json` or `cbor`.
    pub format: &'static str,
    /// The reason the report was rejected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Milliseconds since the Unix epoch when the response was made.
    pub timestamp: u64,
    /// The parsed report, when it was accepted.
    #[serde(skip)]
    pub report: Option<Report>,
}

/// Checks one received report and builds the response and its payload. `last_ids` contains the
/// last accepted id per thing.
pub fn respond_to_report(
    thing: &str,
    format: Format,
    payload: &[u8],
    last_ids: &mut HashMap<String, u64>,
) -> (FleetResponse, Vec<u8>) {
    let timestamp =
        SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    let decoded = decode_value(payload, format);
    let report_id = decoded.as_ref().ok().and_then(header_report_id);
    let checked = decoded.and_then(|value| report_from_value(&value));
    let mut response = FleetResponse {
        thing: thing.to_owned(),
        report_id,
        status: Status::Accepted,
        duplicate: false,
        format: format.as_str(),
        error: None,
        timestamp,
        report: None,
    };
    let document = match checked {
        Ok((report, _style)) => {
            let last = last_ids.entry(thing.to_owned()).or_insert(0);
            response.duplicate = report.report_id <= *last;
            *last = (*last).max(report.report_id);
            response.report = Some(report);
            json!({"thingName": thing, "reportId": report_id, "status": "ACCEPTED", "timestamp": timestamp})
        }
        Err(error) => {
            response.status = Status::Rejected;
            response.error = Some(error.to_string());
            let mut document = json!({
                "thingName": thing,
                "status": "REJECTED",
                "statusDetails": {"ErrorCode": "InvalidPayload", "ErrorMessage": error.to_string()},
                "timestamp": timestamp,
            });
            if let Some(id) = report_id {
                document["reportId"] = json!(id);
            }
            document
        }
    };
    let bytes = encode_value(&document, format)
        .or_else(|_| encode_value(&document, Format::Json))
        .unwrap_or_default();
    (response, bytes)
}

/// Reads `header.report_id` or `hed.rid` from a document that may be invalid otherwise.
fn header_report_id(value: &Value) -> Option<u64> {
    let header = value.get("header").or_else(|| value.get("hed"))?;
    header.get("report_id").or_else(|| header.get("rid"))?.as_u64()
}

/// Splits `$aws/things/{thing}/defender/metrics/{format}` into the thing and the format.
pub fn parse_report_topic(topic: &str) -> Option<(ThingName, Format)> {
    let rest = topic.strip_prefix("$aws/things/")?;
    let (thing, rest) = rest.split_once('/')?;
    let format = rest.strip_prefix("defender/metrics/")?.parse().ok()?;
    Some((ThingName::new(thing).ok()?, format))
}

/// A message that an observer of [`run_fleet_publishing`] wants published.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FleetMessage {
    /// The MQTT topic.
    pub topic: String,
    /// The payload, sent at QoS 1 without the retain flag.
    pub payload: Vec<u8>,
}

/// Connects, subscribes to [`REPORT_FILTER`] and responds to reports until `stop` is set.
/// `observe` is called with every response.
///
/// Runs on the calling thread with a single-threaded Tokio runtime. Connection errors are
/// logged and retried with backoff; only an invalid TLS configuration returns an error.
pub fn run_fleet(
    config: &FleetConfig,
    stop: Arc<AtomicBool>,
    mut observe: impl FnMut(&FleetResponse),
) -> Result<(), DefenderError> {
    run_fleet_publishing(config, stop, |response| {
        observe(response);
        Vec::new()
    })
}

/// Like [`run_fleet`], and publishes the messages that `observe` returns for each response
/// after the response itself, in order. This is where a profile evaluator plugs in.
pub fn run_fleet_publishing(
    config: &FleetConfig,
    stop: Arc<AtomicBool>,
    mut observe: impl FnMut(&FleetResponse) -> Vec<FleetMessage>,
) -> Result<(), DefenderError> {
    let tls = client_config(&config.tls)?;
    let mut options = MqttOptions::new(&config.client_id, &config.host, config.port);
    options
        .set_keep_alive(Duration::from_secs(30))
        .set_clean_session(true)
        .set_max_packet_size(256 * 1024, 256 * 1024)
        .set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(tls)));
    let (client, eventloop) = AsyncClient::new(options, 256);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| DefenderError::Stopped(format!("failed to start its runtime: {e}")))?;
    runtime.block_on(async move {
        let (sender, mut events) = mpsc::unbounded_channel();
        let backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
        let poller = tokio::spawn(poll_events(eventloop, sender, backoff));
        let mut last_ids = HashMap::new();
        let mut last_error: Option<String> = None;
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        while !stop.load(Ordering::Relaxed) {
            let event = tokio::select! {
                event = events.recv() => event,
                _ = tick.tick() => continue,
            };
            match event {
                None => break,
                Some(Err(error)) => {
                    if last_error.as_deref() != Some(error.as_str()) {
                        tracing::warn!(host = %config.host, port = config.port, %error, "fleet: broker connection failed; retrying with backoff");
                    }
                    last_error = Some(error);
                }
                Some(Ok(Event::Incoming(Packet::ConnAck(_)))) => {
                    last_error = None;
                    if let Err(error) = client.subscribe(REPORT_FILTER, QoS::AtLeastOnce).await {
                        tracing::error!(%error, "fleet: failed to request the report subscription");
                    }
                    tracing::info!(host = %config.host, port = config.port, "fleet: connected; waiting for reports");
                }
                Some(Ok(Event::Incoming(Packet::SubAck(ack)))) => {
                    if ack.return_codes.iter().any(|c| matches!(c, rumqttc::SubscribeReasonCode::Failure)) {
                        tracing::error!("fleet: the broker rejected the subscription to {REPORT_FILTER}");
                    }
                }
                Some(Ok(Event::Incoming(Packet::Publish(publish)))) => {
                    let Some((thing, format)) = parse_report_topic(&publish.topic) else {
                        tracing::debug!(topic = %publish.topic, "fleet: ignored a message on an unexpected topic");
                        continue;
                    };
                    let (response, payload) =
                        respond_to_report(thing.as_str(), format, &publish.payload, &mut last_ids);
                    let suffix = match response.status {
                        Status::Accepted => "accepted",
                        Status::Rejected => "rejected",
                    };
                    if let Some(error) = &response.error {
                        tracing::warn!(%thing, report_id = ?response.report_id, %error, "fleet: rejected a report");
                    }
                    let topic = format!("{}/{suffix}", publish.topic);
                    if let Err(error) = client.publish(topic, QoS::AtLeastOnce, false, payload).await {
                        tracing::error!(%thing, %error, "fleet: failed to queue the response");
                    }
                    for message in observe(&response) {
                        if let Err(error) = client
                            .publish(message.topic.clone(), QoS::AtLeastOnce, false, message.payload)
                            .await
                        {
                            tracing::error!(topic = %message.topic, %error, "fleet: failed to queue a message");
                        }
                    }
                }
                Some(Ok(_)) => {}
            }
        }
        let _ = client.try_disconnect();
        let _ = tokio::time::timeout(Duration::from_millis(500), async {
            while let Some(Ok(_)) = events.recv().await {}
        })
        .await;
        poller.abort();
    });
    Ok(())
}
