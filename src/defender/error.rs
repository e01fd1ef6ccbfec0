//! Errors of the Device Defender reporter, following the crate's error policy: one type per
//! family ([`ReportError`] for report documents, [`DefenderError`] for thing names, TLS
//! files, the spool and the MQTT connection), lowercase messages naming the value and the fix.

use std::path::PathBuf;

/// A report document that is not valid as the Device Defender service reads it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    /// The bytes are not a JSON or CBOR document.
    #[error("failed to decode the {format} report: {detail}")]
    Decode {
        /// `json` or `cbor`.
        format: &'static str,
        /// The decoder's message.
        detail: String,
    },
    /// The document could not be serialized.
    #[error("failed to encode the {format} document: {detail}")]
    Encode {
        /// `json` or `cbor`.
        format: &'static str,
        /// The serializer's message.
        detail: String,
    },
    /// A field is missing, has the wrong type or an invalid value.
    #[error("invalid report field {path}: {reason}")]
    Invalid {
        /// The field, as dotted keys and list indexes such as `metrics.tcp_connections`.
        path: String,
        /// The problem and the expected form.
        reason: String,
    },
    /// The encoded report is larger than the message limit.
    #[error("the report is {size} bytes, more than the limit of {max}: cap the port lists")]
    TooLarge {
        /// The encoded size in bytes.
        size: usize,
        /// The limit in bytes.
        max: usize,
    },
}

impl ReportError {
    pub(crate) fn invalid(path: impl Into<String>, reason: impl Into<String>) -> Self {
        ReportError::Invalid { path: path.into(), reason: reason.into() }
    }
}

/// An error while setting up or running the Device Defender publisher or peer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DefenderError {
    /// A thing name that AWS IoT would reject or that would change the MQTT topic.
    #[error(
        "invalid thing name {name:?}: {reason}; use 1 to 128 characters of a-z, A-Z, 0-9, \
         ':', '_' and '-'"
    )]
    ThingName {
        /// The name given.
        name: String,
        /// The offending part.
        reason: String,
    },
    /// A PEM file (CA, certificate or key) cannot be read or contains nothing usable.
    #[error("failed to load the {role} from {path}: {detail}")]
    Pem {
        /// `CA certificate`, `client certificate` or `private key`.
        role: &'static str,
        /// The file path.
        path: PathBuf,
        /// The reader's message.
        detail: String,
    },
    /// rustls rejected the certificate and key pair.
    #[error("invalid TLS configuration: {0}")]
    Tls(String),
    /// The spool directory or a file in it cannot be used.
    #[error("failed to {action} {path}: {source}")]
    Spool {
        /// The attempted action, such as `write the spooled report`.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A report could not be built or encoded.
    #[error(transparent)]
    Report(#[from] ReportError),
    /// Reading `/proc/net` failed.
    #[error("failed to read {path}: {source}")]
    Proc {
        /// The file path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The publisher's thread or runtime could not start, or it has stopped.
    #[error("the Device Defender publisher {0}")]
    Stopped(String),
    /// The report id would not fit in a JSON number (2^53 or more).
    #[error(
        "report id {0} is not below 2^53: delete the last_report_id file of the spool only if \
         the clock was wrong"
    )]
    ReportIdExhausted(u64),
}
