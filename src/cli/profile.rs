//! `inferwatch profile check`: validates security profiles.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use inferwatch::detect::{Profile, ProfileError};

use super::Failure;

/// Options of `inferwatch profile`.
#[derive(Debug, Args)]
pub(crate) struct ProfileArgs {
    #[command(subcommand)]
    command: ProfileCommand,
}

#[derive(Debug, Subcommand)]
enum ProfileCommand {
    /// Validate a behaviors JSON file (as `aws iot create-security-profile --behaviors`
    /// takes) and list every problem with its JSON path.
    Check {
        /// The profile file, or the name of a shipped profile (crypto-mining).
        file: PathBuf,
    },
}

pub(crate) fn run(args: ProfileArgs) -> Result<(), Failure> {
    match args.command {
        ProfileCommand::Check { file } => check(&file),
    }
}

fn check(file: &std::path::Path) -> Result<(), Failure> {
    let name = file.to_string_lossy();
    match Profile::load(&name) {
        Ok(profile) => {
            println!("{}: valid, {} behaviors", file.display(), profile.behaviors.len());
            for behavior in &profile.behaviors {
                let criteria = &behavior.criteria;
                let duration = criteria
                    .duration
                    .map_or_else(String::new, |d| format!(" over {} s", d.as_secs()));
                println!(
                    "  {}: {} {} {}{duration}, {} to alarm, {} to clear",
                    behavior.name,
                    behavior.metric,
                    criteria.operator,
                    criteria.threshold,
                    criteria.datapoints_to_alarm,
                    criteria.datapoints_to_clear
                );
            }
            Ok(())
        }
        Err(error @ ProfileError::Invalid { .. }) => {
            for problem in error.problems() {
                println!("{}: {problem}", file.display());
            }
            Err(Failure::input(format!(
                "{} has {} problems",
                file.display(),
                error.problems().len()
            )))
        }
        Err(error) => Err(Failure::input(error)),
    }
}
