//! The configuration file: one TOML document with a section per component, such as
//! `[defender]`. Unknown sections and keys are errors that name the file and the key.
//! Relative paths in the file are relative to the file's directory.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::ConfigError;

/// The whole configuration file.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Config {
    /// Device Defender reports over MQTT.
    pub defender: Option<DefenderSection>,
}

/// The `[defender]` section; every key also has a flag of `inferwatch run`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DefenderSection {
    /// Broker host, such as `abc123-ats.iot.eu-west-1.amazonaws.com`.
    pub endpoint: Option<String>,
    /// Broker port (default 8883).
    pub port: Option<u16>,
    /// Thing name, also the MQTT client id unless `client_id` is set.
    pub thing: Option<String>,
    /// MQTT client id, when it must differ from the thing name.
    pub client_id: Option<String>,
    /// CA certificate (PEM).
    pub ca: Option<PathBuf>,
    /// Client certificate (PEM).
    pub cert: Option<PathBuf>,
    /// Client private key (PEM).
    pub key: Option<PathBuf>,
    /// Seconds between reports (default 300).
    pub interval: Option<f64>,
    /// `json` (default) or `cbor`.
    pub format: Option<String>,
    /// Short keys (`hed`, `met`, …) instead of long ones.
    pub short_keys: Option<bool>,
    /// Directory of the report spool.
    pub spool_dir: Option<PathBuf>,
    /// Reports kept in the spool at most (default 1000).
    pub spool_capacity: Option<usize>,
    /// Seconds to wait for a response before sending a report again (default 30).
    pub response_timeout: Option<f64>,
    /// Minimum seconds from one report publish to the next, which paces a spooled backlog
    /// (default: 300, or `interval` when that is shorter; 0 turns pacing off).
    pub min_report_gap: Option<f64>,
    /// Whether to send GPU metrics (default true).
    pub gpu_metrics: Option<bool>,
    /// Further custom metrics to send, such as `p99_inference_time`.
    pub extra_metrics: Option<Vec<String>>,
}

impl Config {
    /// Reads and parses a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::File { path: path.to_owned(), detail: e.to_string() })?;
        let mut config = Config::parse(&text, path)?;
        let base = path.parent().unwrap_or(Path::new("."));
        if let Some(defender) = &mut config.defender {
            for file in
                [&mut defender.ca, &mut defender.cert, &mut defender.key, &mut defender.spool_dir]
                    .into_iter()
                    .flatten()
            {
                if file.is_relative() {
                    *file = base.join(&*file);
                }
            }
        }
        Ok(config)
    }

    /// Parses the text of a configuration file; `path` only names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::File {
            path: path.to_owned(),
            detail: e.to_string().trim_end().replace('\n', " "),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_reads_defender_section() {
        let text = "[defender]\nendpoint = \"127.0.0.1\"\nport = 8884\nthing = \"cam-1\"\ninterval = 1.5\nresponse_timeout = 30\n";
        let config = Config::parse(text, Path::new("a.toml")).unwrap();
        let defender = config.defender.unwrap();
        assert_eq!(defender.endpoint.as_deref(), Some("127.0.0.1"));
        assert_eq!(defender.port, Some(8884));
        assert_eq!(defender.interval, Some(1.5));
        // Whole seconds are written as TOML integers.
        assert_eq!(defender.response_timeout, Some(30.0));
        assert_eq!(defender.min_report_gap, None);
    }

    #[test]
    fn config_reads_min_report_gap() {
        let config = Config::parse("[defender]\nmin_report_gap = 0.25\n", Path::new("a.toml"));
        assert_eq!(config.unwrap().defender.unwrap().min_report_gap, Some(0.25));
    }

    #[test]
    fn config_rejects_unknown_key() {
        let error = Config::parse("[defender]\nendpiont = \"x\"\n", Path::new("/etc/iw.toml"))
            .unwrap_err()
            .to_string();
        assert!(error.contains("/etc/iw.toml"), "{error}");
        assert!(error.contains("endpiont"), "{error}");
        let error = Config::parse("[detector]\n", Path::new("a.toml")).unwrap_err().to_string();
        assert!(error.contains("detector"), "{error}");
    }
}
