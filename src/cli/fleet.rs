//! `inferwatch fleet`: a local Device Defender peer.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::Args;
use inferwatch::defender::{FleetConfig, TlsFiles, run_fleet};

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

    /// Security profile (behaviors JSON) to evaluate for every thing; needs the local
    /// detection engine, which this build does not include.
    #[arg(long, value_name = "FILE")]
    profile: Option<PathBuf>,
}

/// Responds to reports until Ctrl-C, printing one JSON object per response on stdout.
pub(crate) fn fleet(args: FleetArgs) -> Result<(), Failure> {
    if let Some(profile) = &args.profile {
        return Err(Failure::input(format!(
            "--profile {}: evaluating security profiles needs the local detection engine, \
             which this build does not include; run without --profile to validate reports and \
             respond only",
            profile.display()
        )));
    }
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
    run_fleet(&config, stop, |response| {
        let mut out = std::io::stdout().lock();
        let line = serde_json::to_string(response).unwrap_or_default();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    })
    .map_err(Failure::input)
}
