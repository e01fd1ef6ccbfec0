//! `inferwatch fleet`: a local Device Defender peer.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::Args;
use inferwatch::defender::{
    FleetConfig, FleetMessage, FleetProfile, Status, ThingName, TlsFiles, alarm_topic,
    run_fleet_publishing,
};
use inferwatch::detect::{AlarmEvent, AlarmState, Profile};

use super::Failure;

/// Options of `inferwatch fleet`.
#[derive(Debug, Args)]
pub(crate) struct FleetArgs {
    /// MQTT broker host.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,

    /// MQTT broker port.
    #[arg(long, default_value_t = 8883)]
    port: u16,

    /// CA certificate of the broker (PEM).
    #[arg(long, value_name = "FILE")]
    ca: PathBuf,

    /// Client certificate of the peer (PEM).
    #[arg(long, value_name = "FILE")]
    cert: PathBuf,

    /// Client private key of the peer (PEM).
    #[arg(long, value_name = "FILE")]
    key: PathBuf,

    /// MQTT client id.
    #[arg(long, default_value = "inferwatch-fleet")]
    client_id: String,

    /// Evaluate a security profile for every thing, one datapoint per accepted report: the
    /// name of a shipped one (crypto-mining) or a behaviors JSON file. Alarm events are
    /// logged and published on inferwatch/things/THING/alarms.
    #[arg(long, value_name = "NAME|FILE")]
    profile: Option<String>,
}

/// Responds to reports until Ctrl-C, printing one JSON object per response on stdout.
pub(crate) fn fleet(args: FleetArgs) -> Result<(), Failure> {
    let mut evaluator = args
        .profile
        .as_deref()
        .map(|name| Profile::load(name).map_err(|e| Failure::input(format!("--profile: {e}"))))
        .transpose()?
        .map(FleetProfile::new);
    let config = FleetConfig {
        host: args.host,
        port: args.port,
        tls: TlsFiles { ca: args.ca, cert: args.cert, key: args.key },
        client_id: args.client_id,
    };
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc::set_handler(move || flag.store(true, Ordering::Relaxed))
        .map_err(|e| Failure::runtime(format!("failed to install the Ctrl-C handler: {e}")))?;
    run_fleet_publishing(&config, stop, |response| {
        let mut out = std::io::stdout().lock();
        let line = serde_json::to_string(response).unwrap_or_default();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
        match (&mut evaluator, &response.report) {
            // A copy sent again is not a new datapoint.
            (Some(evaluator), Some(report))
                if response.status == Status::Accepted && !response.duplicate =>
            {
                evaluator
                    .evaluate(&response.thing, report)
                    .iter()
                    .filter_map(|event| alarm_message(&response.thing, event))
                    .collect()
            }
            _ => Vec::new(),
        }
    })
    .map_err(Failure::input)
}

/// Logs an alarm event of `thing` and returns it as a message on the thing's alarm topic.
fn alarm_message(thing: &str, event: &AlarmEvent) -> Option<FleetMessage> {
    match event.state {
        AlarmState::InAlarm => tracing::warn!(
            thing,
            behavior = %event.behavior,
            metric = %event.metric,
            "fleet: alarm raised: {}",
            event.detail
        ),
        AlarmState::AlarmCleared | AlarmState::AlarmInvalidated => tracing::info!(
            thing,
            behavior = %event.behavior,
            state = event.state.as_str(),
            "fleet: alarm ended: {}",
            event.detail
        ),
    }
    // The topic parser already checked the name.
    let thing = ThingName::new(thing).ok()?;
    let payload = serde_json::to_vec(event).ok()?;
    Some(FleetMessage { topic: alarm_topic(&thing), payload })
}
