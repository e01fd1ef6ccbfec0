//! `inferwatch report` and the Device Defender options of `inferwatch run`.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Args;
use inferwatch::Monitor;
use inferwatch::config::{Config, DefenderSection};
use inferwatch::defender::{
    Format, InterfaceMap, KeyStyle, NetStat, OPTIONAL_METRICS, Publisher, PublisherConfig, Report,
    ReportOptions, Reporter, ThingName, TlsFiles,
};

use super::Failure;

/// Device Defender options of `inferwatch run`; each overrides the same key of the
/// `[defender]` section of `--config`. Reports are published when an endpoint is set.
#[derive(Debug, Args)]
#[command(next_help_heading = "Device Defender reports")]
pub(crate) struct DefenderArgs {
    /// MQTT broker host, such as abc123-ats.iot.eu-west-1.amazonaws.com; publishes reports.
    #[arg(long, value_name = "HOST")]
    endpoint: Option<String>,

    /// MQTT broker port [default: 8883].
    #[arg(long, value_name = "PORT")]
    mqtt_port: Option<u16>,

    /// Thing name, also the MQTT client id.
    #[arg(long, value_name = "NAME", env = "AWS_IOT_THING_NAME")]
    thing: Option<String>,

    /// MQTT client id [default: the thing name].
    #[arg(long, value_name = "ID")]
    mqtt_client_id: Option<String>,

    /// CA certificate of the broker (PEM).
    #[arg(long, value_name = "FILE")]
    ca: Option<PathBuf>,

    /// Client certificate (PEM).
    #[arg(long, value_name = "FILE")]
    cert: Option<PathBuf>,

    /// Client private key (PEM).
    #[arg(long, value_name = "FILE")]
    key: Option<PathBuf>,

    /// Seconds between reports [default: 300]; AWS throttles shorter intervals.
    #[arg(long, value_name = "SECS")]
    report_interval: Option<f64>,

    /// Report format: json or cbor [default: json].
    #[arg(long, value_name = "FORMAT")]
    report_format: Option<String>,

    /// Use the short report keys (hed, met, cmet, …).
    #[arg(long)]
    short_keys: bool,

    /// Minimum seconds between two published reports, which paces the spooled backlog after
    /// an outage; 0 sends it back to back [default: 300, or --report-interval if shorter].
    #[arg(long, value_name = "SECS", allow_negative_numbers = true)]
    min_report_gap: Option<f64>,

    /// Directory of the on-disk spool of unsent reports
    /// [default: $XDG_STATE_HOME/inferwatch/spool/THING].
    #[arg(long, value_name = "DIR")]
    spool_dir: Option<PathBuf>,
}

/// Options of `inferwatch report`.
#[derive(Debug, Args)]
pub(crate) struct ReportArgs {
    /// Use the short keys (hed, met, cmet, …).
    #[arg(long)]
    short_keys: bool,

    /// Encode as CBOR: raw bytes on stdout, or lowercase hex when stdout is a terminal or
    /// with --hex.
    #[arg(long)]
    cbor: bool,

    /// Print CBOR as lowercase hex even when stdout is not a terminal.
    #[arg(long, requires = "cbor")]
    hex: bool,
}

/// Prints this device's report now. Without a running model there are no custom metrics,
/// and without a previous reading no network_stats.
pub(crate) fn report(args: ReportArgs) -> Result<(), Failure> {
    let interfaces = InterfaceMap::from_system()
        .map_err(|e| Failure::runtime(format!("failed to list the network interfaces: {e}")))?;
    let metrics = NetStat::default().collect(&interfaces).map_err(Failure::runtime)?;
    let report_id =
        SystemTime::now().duration_since(UNIX_EPOCH).map_or(1, |d| d.as_millis() as u64);
    let report = Report { report_id, metrics, ..Report::default() };
    let style = if args.short_keys { KeyStyle::Short } else { KeyStyle::Long };
    let format = if args.cbor { Format::Cbor } else { Format::Json };
    let bytes = report.encode(format, style).map_err(Failure::runtime)?;
    let mut out = std::io::stdout().lock();
    let written = if format == Format::Cbor && (args.hex || out.is_terminal()) {
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        writeln!(out, "{hex}")
    } else if format == Format::Cbor {
        out.write_all(&bytes)
    } else {
        out.write_all(&bytes).and_then(|()| writeln!(out))
    };
    written
        .and_then(|()| out.flush())
        .map_err(|e| Failure::runtime(format!("failed to write the report to stdout: {e}")))
}

/// A running publisher and its reporting thread.
pub(crate) struct Reporting {
    publisher: Publisher,
    reporter: Reporter,
}

impl Reporting {
    /// Returns the publisher, which also publishes alarm events.
    pub(crate) fn publisher(&self) -> &Publisher {
        &self.publisher
    }

    /// Stops reporting, gives the publisher two seconds to send what is pending, and
    /// disconnects; unsent reports stay in the spool for the next start.
    pub(crate) fn stop(self) {
        self.reporter.stop();
        if !self.publisher.flush(Duration::from_secs(2)) {
            let pending = self.publisher.stats().pending;
            tracing::info!(pending, "unsent reports stay in the spool for the next start");
        }
        self.publisher.shutdown();
    }
}

/// Starts publishing reports when the flags or the config file name an endpoint.
pub(crate) fn start(
    args: &DefenderArgs,
    config_path: Option<&Path>,
    monitor: &Monitor,
) -> Result<Option<Reporting>, Failure> {
    let section = match config_path {
        Some(path) => Config::load(path).map_err(Failure::input)?.defender,
        None => None,
    };
    let origin = config_path.map_or_else(
        || "the flags".to_owned(),
        |p| format!("--config {} or the flags", p.display()),
    );
    let file = section.unwrap_or_default();
    let Some(endpoint) = args.endpoint.clone().or(file.endpoint.clone()) else {
        return Ok(None);
    };
    let (config, options) = resolve(args, &file, endpoint, &origin)?;
    let publisher = Publisher::start(config).map_err(Failure::input)?;
    let reporter = Reporter::start(monitor.clone(), publisher.clone(), options)
        .map_err(|e| Failure::runtime(format!("failed to start the reporting thread: {e}")))?;
    Ok(Some(Reporting { publisher, reporter }))
}

fn resolve(
    args: &DefenderArgs,
    file: &DefenderSection,
    endpoint: String,
    origin: &str,
) -> Result<(PublisherConfig, ReportOptions), Failure> {
    let required = |flag: Option<&PathBuf>, key: Option<&PathBuf>, name: &str| {
        flag.or(key).cloned().ok_or_else(|| {
            Failure::input(format!(
                "Device Defender reports need the {name} file: set `{name}` in the [defender] \
                 section or --{name} ({origin})"
            ))
        })
    };
    let thing = args.thing.clone().or(file.thing.clone()).ok_or_else(|| {
        Failure::input(format!(
            "Device Defender reports need a thing name: set `thing` in the [defender] section, \
             --thing or AWS_IOT_THING_NAME ({origin})"
        ))
    })?;
    let thing = ThingName::new(thing).map_err(Failure::input)?;
    let tls = TlsFiles {
        ca: required(args.ca.as_ref(), file.ca.as_ref(), "ca")?,
        cert: required(args.cert.as_ref(), file.cert.as_ref(), "cert")?,
        key: required(args.key.as_ref(), file.key.as_ref(), "key")?,
    };
    let spool_dir = args
        .spool_dir
        .clone()
        .or(file.spool_dir.clone())
        .unwrap_or_else(|| default_spool_dir(&thing));
    let port = args.mqtt_port.or(file.port).unwrap_or(8883);
    let mut config = PublisherConfig::new(endpoint, port, thing, tls, spool_dir);
    config.client_id = args.mqtt_client_id.clone().or(file.client_id.clone());
    if let Some(text) = args.report_format.as_deref().or(file.format.as_deref()) {
        config.format =
            text.parse().map_err(|e: String| Failure::input(format!("{e} ({origin})")))?;
    }
    if args.short_keys || file.short_keys == Some(true) {
        config.keys = KeyStyle::Short;
    }
    if let Some(capacity) = file.spool_capacity {
        config.spool_capacity = capacity.max(1);
    }
    if let Some(seconds) = file.response_timeout {
        config.response_timeout = seconds_value(seconds, "response_timeout", origin)?;
    }
    let mut options = ReportOptions::default();
    if let Some(seconds) = args.report_interval.or(file.interval) {
        options.interval = seconds_value(seconds, "interval", origin)?;
    }
    let gap = match (args.min_report_gap, file.min_report_gap) {
        (Some(seconds), _) => Some((seconds, "--min-report-gap")),
        (None, Some(seconds)) => Some((seconds, "min_report_gap")),
        (None, None) => None,
    };
    config.min_report_gap = match gap {
        Some((seconds, name)) => gap_value(seconds, name, origin)?,
        // A report interval below 300 s is a deliberate choice, such as for a local
        // `inferwatch fleet`. Pacing the backlog slower than the interval would only delay it.
        None => config.min_report_gap.min(options.interval),
    };
    if let Some((seconds, name)) = gap
        && config.min_report_gap > options.interval
    {
        // The reporter makes one report per interval and the publisher sends at most one per
        // gap, so the spool would grow until it drops the oldest reports, even with the
        // broker up.
        return Err(Failure::input(format!(
            "{name} {seconds} is longer than the report interval of {} s ({origin}): the \
             spool would fill and drop reports, so lower the gap or raise the interval",
            options.interval.as_secs_f64()
        )));
    }
    options.gpu_metrics = file.gpu_metrics.unwrap_or(true);
    for name in file.extra_metrics.iter().flatten() {
        if !OPTIONAL_METRICS.contains(&name.as_str()) {
            return Err(Failure::input(format!(
                "unknown metric {name:?} in extra_metrics ({origin}): use {}",
                OPTIONAL_METRICS.join(", ")
            )));
        }
        options.extra_metrics.push(name.clone());
    }
    Ok((config, options))
}

fn seconds_value(seconds: f64, key: &str, origin: &str) -> Result<Duration, Failure> {
    if seconds.is_finite() && seconds > 0.0 && seconds < 1e9 {
        Ok(Duration::from_secs_f64(seconds))
    } else {
        Err(Failure::input(format!(
            "invalid {key} {seconds} ({origin}): expected a positive number of seconds below 1e9"
        )))
    }
}

fn gap_value(seconds: f64, name: &str, origin: &str) -> Result<Duration, Failure> {
    if (0.0..1e9).contains(&seconds) {
        Ok(Duration::from_secs_f64(seconds))
    } else {
        Err(Failure::input(format!(
            "invalid {name} {seconds} ({origin}): expected 0 or a positive number of seconds \
             below 1e9"
        )))
    }
}

/// `$XDG_STATE_HOME/inferwatch/spool/THING`, or `~/.local/state/…`, or `/var/lib/inferwatch/…`.
fn default_spool_dir(thing: &ThingName) -> PathBuf {
    let state = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".local/state")))
        .unwrap_or_else(|| PathBuf::from("/var/lib"));
    state.join("inferwatch").join("spool").join(thing.as_str())
}
