//! The MQTT publisher: a cloneable handle and a driver thread that owns the connection.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rumqttc::{
    AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS, SubscribeReasonCode, TlsConfiguration,
    Transport,
};
use serde::Serialize;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::collect::AWS_MIN_INTERVAL;
use super::error::DefenderError;
use super::report::{CustomMetric, DeviceMetrics, Format, KeyStyle, Report, encode_value};
use super::spool::Spool;
use super::thing::ThingName;
use super::tls::{TlsFiles, client_config};
use super::validate::decode_value;

/// Settings of a [`Publisher`].
#[derive(Clone, Debug)]
pub struct PublisherConfig {
    /// Broker host name or address, such as `abc123-ats.iot.eu-west-1.amazonaws.com`.
    pub host: String,
    /// Broker port (8883 for MQTT over TLS).
    pub port: u16,
    /// The thing name, also the MQTT client id unless `client_id` is set.
    pub thing: ThingName,
    /// MQTT client id when it must differ from the thing name, such as on a Greengrass core
    /// whose own connection uses the thing name.
    pub client_id: Option<String>,
    /// CA, certificate and key files.
    pub tls: TlsFiles,
    /// Payload format of new reports.
    pub format: Format,
    /// Key style of new reports.
    pub keys: KeyStyle,
    /// Directory of the spool; one directory per thing and process.
    pub spool_dir: PathBuf,
    /// Pending reports kept at most; the oldest is dropped beyond that.
    pub spool_capacity: usize,
    /// How long to wait for the response to a report before sending it again.
    pub response_timeout: Duration,
    /// MQTT keep-alive interval (at least one second).
    pub keep_alive: Duration,
    /// First wait after a failed connection.
    pub reconnect_min: Duration,
    /// Maximum wait between two connection attempts.
    pub reconnect_max: Duration,
    /// Minimum time from one report publish to the next, resends included, so that a backlog
    /// spooled during an outage is not sent back to back. Zero sends reports as fast as the
    /// responses come.
    pub min_report_gap: Duration,
}

impl PublisherConfig {
    /// A configuration with the defaults: JSON, long keys, 1000 spooled reports, 30 s
    /// response timeout and keep-alive, reconnecting after 0.5 s up to 60 s, and reports at
    /// least [`AWS_MIN_INTERVAL`] (300 s) apart.
    pub fn new(
        host: impl Into<String>,
        port: u16,
        thing: ThingName,
        tls: TlsFiles,
        spool_dir: impl Into<PathBuf>,
    ) -> Self {
        PublisherConfig {
            host: host.into(),
            port,
            thing,
            client_id: None,
            tls,
            format: Format::Json,
            keys: KeyStyle::Long,
            spool_dir: spool_dir.into(),
            spool_capacity: 1000,
            response_timeout: Duration::from_secs(30),
            keep_alive: Duration::from_secs(30),
            reconnect_min: Duration::from_millis(500),
            reconnect_max: Duration::from_secs(60),
            min_report_gap: AWS_MIN_INTERVAL,
        }
    }

    /// Returns whether the host is an AWS IoT Core endpoint, where reports must be at least
    /// 300 s apart.
    pub fn is_aws_endpoint(&self) -> bool {
        let host = self.host.to_ascii_lowercase();
        host.contains(".iot.") && host.ends_with(".amazonaws.com")
    }
}

/// Returns the report topic of a thing: `$aws/things/{thing}/defender/metrics/{format}`.
pub fn report_topic(thing: &ThingName, format: Format) -> String {
    format!("$aws/things/{thing}/defender/metrics/{}", format.as_str())
}

/// Returns the topic that alarms are published to: `inferwatch/things/{thing}/alarms`.
pub fn alarm_topic(thing: &ThingName) -> String {
    format!("inferwatch/things/{thing}/alarms")
}

/// Alarms held in memory while the broker is unreachable; older ones are dropped.
const MAX_QUEUED_ALARMS: usize = 100;

/// Times a throttled report is sent again before it is deleted like any other rejection.
pub const MAX_THROTTLED_RETRIES: u32 = 5;

/// Returns whether a rejection's `ErrorCode` means that the report came too soon, not that
/// its content is invalid.
///
/// NOTE: AWS states that reports of one thing sent less than 5 minutes apart may be
/// throttled (AWS IoT Device SDK for Embedded C, Defender configuration), but documents no
/// `ErrorCode` for it. This matches any code containing "throttl" in any case (`Throttled`,
/// `THROTTLED`, `ThrottlingException`).
pub fn is_throttling_code(error_code: &str) -> bool {
    error_code.to_ascii_lowercase().contains("throttl")
}

/// A rejection received from the peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    /// The rejected report.
    pub report_id: u64,
    /// `statusDetails.ErrorCode`, such as `InvalidPayload`; AWS documents no closed list.
    pub error_code: String,
    /// `statusDetails.ErrorMessage`.
    pub error_message: String,
}

/// Counters and state of a publisher, for tests and status lines.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PublisherStats {
    /// Reports spooled by `submit`.
    pub submitted: u64,
    /// Reports the peer accepted.
    pub accepted: u64,
    /// Reports the peer rejected for good; throttled reports count here only once they have
    /// been sent [`MAX_THROTTLED_RETRIES`] times again.
    pub rejected: u64,
    /// Throttling rejections, each followed by a resend after `min_report_gap`.
    pub throttled: u64,
    /// Reports dropped because the spool was full.
    pub dropped: u64,
    /// Reports sent again after a reconnect or a response timeout.
    pub resent: u64,
    /// Alarms handed to the MQTT client.
    pub alarms_sent: u64,
    /// Alarms dropped because too many waited for the broker.
    pub alarms_dropped: u64,
    /// Reports waiting in the spool (including the one in flight).
    pub pending: usize,
    /// Whether the broker connection is up and subscribed.
    pub connected: bool,
    /// The last connection or subscription error.
    pub last_error: Option<String>,
    /// The last rejection.
    pub last_rejection: Option<Rejection>,
}

#[derive(Debug, Default)]
struct Counters {
    submitted: AtomicU64,
    accepted: AtomicU64,
    rejected: AtomicU64,
    throttled: AtomicU64,
    dropped: AtomicU64,
    resent: AtomicU64,
    alarms_sent: AtomicU64,
    alarms_dropped: AtomicU64,
    connected: AtomicBool,
}

/// State shared by the handles and the driver thread.
#[derive(Debug)]
struct Shared {
    config: PublisherConfig,
    spool: Mutex<Spool>,
    counters: Counters,
    last_error: Mutex<Option<String>>,
    last_rejection: Mutex<Option<Rejection>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks leaves consistent data: every update is a
    // single assignment or a completed file operation.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[derive(Debug)]
enum Command {
    Wake,
    Alarm(Vec<u8>),
    Shutdown,
}

/// The handle owned by users; the driver stops when the last clone is dropped.
#[derive(Debug)]
struct Handle {
    shared: Arc<Shared>,
    commands: mpsc::UnboundedSender<Command>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// Publishes Device Defender reports and alarms over MQTT with mutual TLS.
///
/// Cheap to clone; clones share one connection and one spool.
///
/// [`Publisher::submit`] gives each report its id, encodes it and writes it to the
/// [`Spool`] before it returns. From then on the report survives a broker outage or a
/// process restart. [`Publisher::start`] starts a thread named
/// `inferwatch-defender` that runs a single-threaded Tokio runtime with two tasks:
///
/// - the poller calls `EventLoop::poll` in a loop and forwards every event, so the request
///   channel is always drained and a full channel cannot deadlock. After a connection error
///   it waits with exponential backoff and jitter (from `reconnect_min` up to
///   `reconnect_max`) and polls again, which reconnects;
/// - the driver subscribes to `…/accepted` and `…/rejected` after every CONNACK (sessions
///   are clean), and only once the SUBACK arrives publishes the oldest spooled report at
///   QoS 1. One report is in flight at a time, so reports arrive in id order. The report
///   leaves the spool when the response with its id arrives. Without a response it is sent
///   again after a reconnect or after `response_timeout`; a peer that already saw the id
///   responds again without counting it twice, as `inferwatch fleet` does.
///
/// Two report publishes, resends included, are at least `min_report_gap` apart (300 s by
/// default, the shortest interval at which AWS IoT Device Defender accepts reports of a thing
/// without throttling them). A backlog spooled during an outage therefore drains at one
/// report per gap. When the reporting interval equals the gap, the backlog does not shrink:
/// each report then reaches the service `backlog × gap` late, and `spool_capacity` bounds
/// that delay. Alarms are not paced.
///
/// A rejected report is logged with its `ErrorCode` and `ErrorMessage`, counted, and
/// deleted from the spool: sending the same document again would be rejected again. The
/// exception is a throttling code (see [`is_throttling_code`]): the report stays in the spool
/// and is sent again after `min_report_gap`, up to [`MAX_THROTTLED_RETRIES`] times.
///
/// [`Publisher::shutdown`] (or dropping the last clone) disconnects; spooled reports stay on
/// disk for the next start.
#[derive(Clone, Debug)]
pub struct Publisher {
    handle: Arc<Handle>,
}

impl Publisher {
    /// Checks the TLS files, opens the spool and starts the driver thread.
    pub fn start(config: PublisherConfig) -> Result<Publisher, DefenderError> {
        let tls = client_config(&config.tls)?;
        let spool = Spool::open(&config.spool_dir, config.spool_capacity)?;
        if !spool.is_empty() {
            tracing::info!(thing = %config.thing, pending = spool.len(), dir = %config.spool_dir.display(), "resuming spooled reports");
        }
        let client_id = config.client_id.clone().unwrap_or_else(|| config.thing.to_string());
        let mut options = MqttOptions::new(client_id, &config.host, config.port);
        options
            .set_keep_alive(config.keep_alive.max(Duration::from_secs(1)))
            .set_clean_session(true)
            .set_max_packet_size(256 * 1024, 256 * 1024)
            .set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(tls)));
        let (client, eventloop) = AsyncClient::new(options, 64);

        let shared = Arc::new(Shared {
            config,
            spool: Mutex::new(spool),
            counters: Counters::default(),
            last_error: Mutex::new(None),
            last_rejection: Mutex::new(None),
        });
        let (commands, receiver) = mpsc::unbounded_channel();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| DefenderError::Stopped(format!("failed to start its runtime: {e}")))?;
        let driver = Driver::new(shared.clone(), client);
        let thread = std::thread::Builder::new()
            .name("inferwatch-defender".into())
            .spawn(move || runtime.block_on(driver.run(eventloop, receiver)))
            .map_err(|e| DefenderError::Stopped(format!("failed to start its thread: {e}")))?;
        let handle = Handle { shared, commands, thread: Mutex::new(Some(thread)) };
        Ok(Publisher { handle: Arc::new(handle) })
    }

    /// Returns the configuration.
    pub fn config(&self) -> &PublisherConfig {
        &self.handle.shared.config
    }

    /// Gives the metrics a report id, encodes them and stores the report in the spool; the
    /// driver sends it as soon as it can. Returns the report id.
    pub fn submit(
        &self,
        metrics: DeviceMetrics,
        custom_metrics: std::collections::BTreeMap<String, CustomMetric>,
    ) -> Result<u64, DefenderError> {
        let shared = &self.handle.shared;
        let config = &shared.config;
        let mut spool = lock(&shared.spool);
        let report_id = spool.next_report_id(now_millis())?;
        let report = Report { report_id, metrics, custom_metrics };
        let payload = report.encode(config.format, config.keys)?;
        let dropped = spool.push(report_id, config.format, &payload)?;
        drop(spool);
        shared.counters.submitted.fetch_add(1, Ordering::Relaxed);
        for id in dropped {
            shared.counters.dropped.fetch_add(1, Ordering::Relaxed);
            tracing::error!(thing = %config.thing, report_id = id, capacity = config.spool_capacity, "the spool is full: dropped the oldest report");
        }
        tracing::debug!(thing = %config.thing, report_id, bytes = payload.len(), "report spooled");
        self.wake()?;
        Ok(report_id)
    }

    /// Publishes an alarm as JSON to [`alarm_topic`] at QoS 1. Alarms wait in memory (at most
    /// 100) while the broker is unreachable; they are not spooled to disk.
    pub fn publish_alarm(&self, alarm: &impl Serialize) -> Result<(), DefenderError> {
        let payload = serde_json::to_vec(alarm).map_err(|e| {
            DefenderError::Report(super::ReportError::Encode {
                format: "json",
                detail: e.to_string(),
            })
        })?;
        self.handle
            .commands
            .send(Command::Alarm(payload))
            .map_err(|_| DefenderError::Stopped("has stopped".into()))
    }

    fn wake(&self) -> Result<(), DefenderError> {
        self.handle
            .commands
            .send(Command::Wake)
            .map_err(|_| DefenderError::Stopped("has stopped; the report stays spooled".into()))
    }

    /// Returns the counters and state.
    pub fn stats(&self) -> PublisherStats {
        let shared = &self.handle.shared;
        let c = &shared.counters;
        PublisherStats {
            submitted: c.submitted.load(Ordering::Relaxed),
            accepted: c.accepted.load(Ordering::Relaxed),
            rejected: c.rejected.load(Ordering::Relaxed),
            throttled: c.throttled.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            resent: c.resent.load(Ordering::Relaxed),
            alarms_sent: c.alarms_sent.load(Ordering::Relaxed),
            alarms_dropped: c.alarms_dropped.load(Ordering::Relaxed),
            pending: lock(&shared.spool).len(),
            connected: c.connected.load(Ordering::Relaxed),
            last_error: lock(&shared.last_error).clone(),
            last_rejection: lock(&shared.last_rejection).clone(),
        }
    }

    /// Waits until the spool is empty or `timeout` passes; returns whether it emptied.
    pub fn flush(&self, timeout: Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if lock(&self.handle.shared.spool).is_empty() {
                return true;
            }
            if std::time::Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Disconnects and stops the driver thread; pending reports stay in the spool.
    pub fn shutdown(&self) {
        let _ = self.handle.commands.send(Command::Shutdown);
        if let Some(thread) = lock(&self.handle.thread).take() {
            let _ = thread.join();
        }
    }
}

fn now_millis() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Exponential backoff with full jitter: each wait is drawn from [d/2, d], and d doubles
/// from the minimum up to the maximum.
#[derive(Debug)]
pub(crate) struct Backoff {
    min: Duration,
    max: Duration,
    current: Duration,
}

impl Backoff {
    pub(crate) fn new(min: Duration, max: Duration) -> Self {
        Backoff { min, max: max.max(min), current: min }
    }

    pub(crate) fn reset(&mut self) {
        self.current = self.min;
    }

    pub(crate) fn next_wait(&mut self) -> Duration {
        let ceiling = self.current;
        self.current = (self.current * 2).min(self.max);
        ceiling.mul_f64(0.5 + fastrand::f64() * 0.5)
    }
}

/// Polls the event loop forever and forwards events, waiting with backoff after errors.
/// Ends when the receiver is gone.
pub(crate) async fn poll_events(
    mut eventloop: EventLoop,
    events: mpsc::UnboundedSender<Result<Event, String>>,
    mut backoff: Backoff,
) {
    loop {
        match eventloop.poll().await {
            Ok(event) => {
                if matches!(event, Event::Incoming(Packet::ConnAck(_))) {
                    backoff.reset();
                }
                if events.send(Ok(event)).is_err() {
                    return;
                }
            }
            Err(error) => {
                if events.send(Err(error.to_string())).is_err() {
                    return;
                }
                tokio::time::sleep(backoff.next_wait()).await;
            }
        }
    }
}

#[derive(Debug)]
struct InFlight {
    report_id: u64,
    /// When it was handed to the client; `None` when it must be sent (again).
    sent_at: Option<Instant>,
}

struct Driver {
    shared: Arc<Shared>,
    client: AsyncClient,
    connected: bool,
    subscribed: bool,
    in_flight: Option<InFlight>,
    /// When the last report was handed to the client; the next one waits `min_report_gap`.
    last_report_at: Option<Instant>,
    /// When `send_pending` held a report back for the gap; the run loop wakes then.
    paced_until: Option<Instant>,
    /// The report sent again after a throttling rejection and how often that happened.
    throttled: Option<(u64, u32)>,
    alarms: VecDeque<Vec<u8>>,
    report_topic: String,
    response_topics: [String; 2],
    alarm_topic: String,
}

impl Driver {
    fn new(shared: Arc<Shared>, client: AsyncClient) -> Self {
        let thing = &shared.config.thing;
        let report_topic = report_topic(thing, shared.config.format);
        let response_topics =
            [format!("{report_topic}/accepted"), format!("{report_topic}/rejected")];
        let alarm_topic = alarm_topic(thing);
        Driver {
            shared,
            client,
            connected: false,
            subscribed: false,
            in_flight: None,
            last_report_at: None,
            paced_until: None,
            throttled: None,
            alarms: VecDeque::new(),
            report_topic,
            response_topics,
            alarm_topic,
        }
    }

    async fn run(mut self, eventloop: EventLoop, mut commands: mpsc::UnboundedReceiver<Command>) {
        let (event_sender, mut events) = mpsc::unbounded_channel();
        let config = &self.shared.config;
        let backoff = Backoff::new(config.reconnect_min, config.reconnect_max);
        let poller = tokio::spawn(poll_events(eventloop, event_sender, backoff));
        tracing::debug!(thing = %config.thing, host = %config.host, port = config.port, "publisher started");
        loop {
            self.send_pending();
            let deadline = self.response_deadline();
            let paced_until = self.paced_until;
            tokio::select! {
                event = events.recv() => match event {
                    Some(Ok(event)) => self.on_event(event),
                    Some(Err(error)) => self.on_error(error),
                    None => break,
                },
                command = commands.recv() => match command {
                    Some(Command::Wake) => {}
                    Some(Command::Alarm(payload)) => self.queue_alarm(payload),
                    Some(Command::Shutdown) | None => break,
                },
                _ = sleep_until(deadline), if deadline.is_some() => self.on_response_timeout(),
                // The loop calls `send_pending` again, which publishes the held report.
                _ = sleep_until(paced_until), if paced_until.is_some() => {}
            }
        }
        // Let the DISCONNECT go out, for at most one second.
        if self.connected && self.client.try_disconnect().is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(1), async {
                while let Some(Ok(_)) = events.recv().await {}
            })
            .await;
        }
        poller.abort();
        self.shared.counters.connected.store(false, Ordering::Relaxed);
        tracing::debug!(thing = %self.shared.config.thing, "publisher stopped");
    }

    fn response_deadline(&self) -> Option<Instant> {
        let sent_at = self.in_flight.as_ref()?.sent_at?;
        Some(sent_at + self.shared.config.response_timeout)
    }

    fn on_event(&mut self, event: Event) {
        let Event::Incoming(packet) = event else { return };
        match packet {
            Packet::ConnAck(_) => {
                self.connected = true;
                self.subscribed = false;
                if let Some(in_flight) = &mut self.in_flight {
                    in_flight.sent_at = None;
                }
                let topics = self
                    .response_topics
                    .iter()
                    .map(|t| rumqttc::SubscribeFilter::new(t.clone(), QoS::AtLeastOnce));
                if let Err(error) = self.client.try_subscribe_many(topics) {
                    tracing::warn!(thing = %self.shared.config.thing, %error, "failed to request the response subscriptions");
                }
                tracing::info!(thing = %self.shared.config.thing, host = %self.shared.config.host, port = self.shared.config.port, "connected to the broker");
            }
            Packet::SubAck(ack) => {
                if ack.return_codes.iter().all(|c| matches!(c, SubscribeReasonCode::Success(_))) {
                    self.subscribed = true;
                    self.shared.counters.connected.store(true, Ordering::Relaxed);
                    *lock(&self.shared.last_error) = None;
                } else {
                    let message = format!(
                        "the broker refused the subscription to {}: allow it in the thing's policy",
                        self.response_topics.join(" and ")
                    );
                    tracing::error!(thing = %self.shared.config.thing, "{message}");
                    *lock(&self.shared.last_error) = Some(message);
                }
            }
            Packet::Publish(publish) => self.on_response(&publish.topic, &publish.payload),
            _ => {}
        }
    }

    fn on_error(&mut self, error: String) {
        let thing = &self.shared.config.thing;
        let mut last = lock(&self.shared.last_error);
        if self.connected {
            tracing::warn!(%thing, %error, "lost the broker connection; reports wait in the spool");
        } else if last.as_deref() != Some(error.as_str()) {
            tracing::warn!(%thing, host = %self.shared.config.host, port = self.shared.config.port, %error, "failed to connect to the broker; retrying with backoff");
        } else {
            tracing::debug!(%thing, %error, "failed to connect to the broker");
        }
        *last = Some(error);
        self.connected = false;
        self.subscribed = false;
        self.shared.counters.connected.store(false, Ordering::Relaxed);
        if let Some(in_flight) = &mut self.in_flight {
            in_flight.sent_at = None;
        }
    }

    fn on_response_timeout(&mut self) {
        if let Some(in_flight) = &mut self.in_flight {
            tracing::debug!(thing = %self.shared.config.thing, report_id = in_flight.report_id, "no response in time; sending the report again");
            in_flight.sent_at = None;
        }
    }

    fn queue_alarm(&mut self, payload: Vec<u8>) {
        if self.alarms.len() >= MAX_QUEUED_ALARMS {
            self.alarms.pop_front();
            self.shared.counters.alarms_dropped.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(thing = %self.shared.config.thing, "too many alarms wait for the broker: dropped the oldest");
        }
        self.alarms.push_back(payload);
    }

    /// Hands queued alarms and the next report to the client when the connection is ready
    /// and `min_report_gap` has passed since the last report.
    fn send_pending(&mut self) {
        self.paced_until = None;
        if !self.connected || !self.subscribed {
            return;
        }
        while let Some(payload) = self.alarms.front() {
            if self
                .client
                .try_publish(&self.alarm_topic, QoS::AtLeastOnce, false, payload.clone())
                .is_err()
            {
                break;
            }
            self.alarms.pop_front();
            self.shared.counters.alarms_sent.fetch_add(1, Ordering::Relaxed);
        }
        if self.in_flight.as_ref().is_some_and(|f| f.sent_at.is_some()) {
            return;
        }
        if let Some(last) = self.last_report_at {
            let earliest = last + self.shared.config.min_report_gap;
            if Instant::now() < earliest {
                self.paced_until = Some(earliest);
                return;
            }
        }
        let mut spool = lock(&self.shared.spool);
        let Some((report_id, format, payload)) = spool.oldest() else {
            self.in_flight = None;
            return;
        };
        drop(spool);
        let resend = self.in_flight.as_ref().is_some_and(|f| f.report_id == report_id);
        let payload = match self.transcode(report_id, format, payload) {
            Some(payload) => payload,
            None => return,
        };
        if self.client.try_publish(&self.report_topic, QoS::AtLeastOnce, false, payload).is_err() {
            // The request channel is full; the poller drains it and the next event retries.
            self.in_flight = Some(InFlight { report_id, sent_at: None });
            return;
        }
        if resend {
            self.shared.counters.resent.fetch_add(1, Ordering::Relaxed);
        }
        tracing::trace!(thing = %self.shared.config.thing, report_id, resend, "report published");
        let now = Instant::now();
        self.last_report_at = Some(now);
        self.in_flight = Some(InFlight { report_id, sent_at: Some(now) });
    }

    /// Converts a report spooled in another format (before a configuration change) into the
    /// current one; an undecodable file is deleted with an error log.
    fn transcode(&mut self, report_id: u64, format: Format, payload: Vec<u8>) -> Option<Vec<u8>> {
        let target = self.shared.config.format;
        if format == target {
            return Some(payload);
        }
        match decode_value(&payload, format).and_then(|value| encode_value(&value, target)) {
            Ok(payload) => Some(payload),
            Err(error) => {
                tracing::error!(thing = %self.shared.config.thing, report_id, %error, "a spooled report cannot be decoded; it is lost");
                let _ = lock(&self.shared.spool).remove(report_id);
                self.in_flight = None;
                None
            }
        }
    }

    fn on_response(&mut self, topic: &str, payload: &[u8]) {
        let thing = &self.shared.config.thing;
        let accepted = topic == self.response_topics[0];
        if !accepted && topic != self.response_topics[1] {
            return;
        }
        let response = decode_value(payload, self.shared.config.format)
            .or_else(|_| decode_value(payload, Format::Json))
            .unwrap_or(Value::Null);
        let Some(report_id) = response.get("reportId").and_then(Value::as_u64) else {
            tracing::warn!(%thing, topic, payload = %String::from_utf8_lossy(payload), "a response without a report id was ignored");
            return;
        };
        if self.in_flight.as_ref().is_none_or(|f| f.report_id != report_id) {
            tracing::debug!(%thing, report_id, "response for a report that is not in flight; ignored");
            return;
        }
        self.in_flight = None;
        let counters = &self.shared.counters;
        let details = response.get("statusDetails");
        let field = |name: &str| {
            details.and_then(|d| d.get(name)).and_then(Value::as_str).unwrap_or("").to_owned()
        };
        if !accepted && is_throttling_code(&field("ErrorCode")) {
            let retries = match self.throttled {
                Some((id, retries)) if id == report_id => retries,
                _ => 0,
            };
            if retries < MAX_THROTTLED_RETRIES {
                counters.throttled.fetch_add(1, Ordering::Relaxed);
                self.throttled = Some((report_id, retries + 1));
                self.in_flight = Some(InFlight { report_id, sent_at: None });
                let gap_seconds = self.shared.config.min_report_gap.as_secs_f64();
                tracing::warn!(%thing, report_id, error_code = %field("ErrorCode"), retry = retries + 1, gap_seconds, "report throttled; sending it again after the report gap");
                return;
            }
            tracing::error!(%thing, report_id, retries, "report throttled after every retry; deleting it");
        }
        self.throttled = None;
        if accepted {
            counters.accepted.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%thing, report_id, "report accepted");
        } else {
            counters.rejected.fetch_add(1, Ordering::Relaxed);
            let rejection = Rejection {
                report_id,
                error_code: field("ErrorCode"),
                error_message: field("ErrorMessage"),
            };
            tracing::warn!(%thing, report_id, error_code = %rejection.error_code, error_message = %rejection.error_message, payload = %response, "report rejected; it is not sent again");
            *lock(&self.shared.last_rejection) = Some(rejection);
        }
        if let Err(error) = lock(&self.shared.spool).remove(report_id) {
            tracing::error!(%thing, report_id, %error, "failed to delete a report from the spool after its response; it will be sent again");
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
