//! Command-line parsing and dispatch.

mod bench;
mod detection;
#[cfg(feature = "defender")]
mod fleet;
mod inputs;
mod profile;
#[cfg(feature = "defender")]
mod report;
mod run;
mod simulate;
mod status;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Instruments ONNX inference and detects when something else on the device takes its CPU
/// or GPU.
#[derive(Debug, Parser)]
#[command(name = "inferwatch", version, about, max_term_width = 100)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a model in a loop, time every inference and print live window statistics.
    Run(run::RunArgs),
    /// Print this device's Device Defender report now (JSON, or CBOR with --cbor).
    #[cfg(feature = "defender")]
    Report(report::ReportArgs),
    /// Check Device Defender reports on an MQTT broker and respond as the AWS service does.
    #[cfg(feature = "defender")]
    Fleet(fleet::FleetArgs),
    /// Time a model many times: latency distribution, drift against a saved baseline, a plot.
    Bench(bench::BenchArgs),
    /// Check security profiles.
    Profile(profile::ProfileArgs),
    /// Simulate a CPU miner, or write the GPU feedback files.
    Simulate(simulate::SimulateArgs),
}

/// An error that ends the command: the message and the exit status.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) message: String,
    pub(crate) status: u8,
}

impl Failure {
    /// Creates a failure caused by the user's input (a file, a flag, a model): exit status 2.
    pub(crate) fn input(message: impl std::fmt::Display) -> Self {
        Failure { message: message.to_string(), status: 2 }
    }

    /// Creates a failure at run time (a network peer, the system): exit status 1.
    pub(crate) fn runtime(message: impl std::fmt::Display) -> Self {
        Failure { message: message.to_string(), status: 1 }
    }
}

pub(crate) fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let result = match cli.command {
        Command::Run(args) => run::run(args),
        #[cfg(feature = "defender")]
        Command::Report(args) => report::report(args),
        #[cfg(feature = "defender")]
        Command::Fleet(args) => fleet::fleet(args),
        Command::Bench(args) => bench::run(args),
        Command::Profile(args) => profile::run(args),
        Command::Simulate(args) => simulate::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("error: {}", failure.message);
            ExitCode::from(failure.status)
        }
    }
}

/// Logs to stderr at `info` and above, or as `INFERWATCH_LOG` (a `tracing` filter such as
/// `debug` or `inferwatch=trace`) sets.
fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_env("INFERWATCH_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .compact()
        .init();
}
