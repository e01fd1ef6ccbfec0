//! Exporter settings and the standard `OTEL_*` environment variables.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::error::ConfigError;

/// The OTLP transport.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Protocol {
    /// OTLP over gRPC (`grpc`), usually on port 4317.
    Grpc,
    /// OTLP over HTTP with protobuf bodies (`http/protobuf`), usually on port 4318; the
    /// default, as the OpenTelemetry specification recommends.
    #[default]
    HttpProtobuf,
}

impl Protocol {
    /// Returns the name used by `OTEL_EXPORTER_OTLP_PROTOCOL`.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Grpc => "grpc",
            Protocol::HttpProtobuf => "http/protobuf",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Protocol {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim() {
            "grpc" => Ok(Protocol::Grpc),
            "http/protobuf" => Ok(Protocol::HttpProtobuf),
            other => Err(format!("unsupported OTLP protocol {other:?}: use grpc or http/protobuf")),
        }
    }
}

/// Settings of an [`OtelExporter`](super::OtelExporter).
///
/// Every field left `None` falls back to the standard variable, then to the default:
///
/// | field | variables | default |
/// |---|---|---|
/// | `endpoint` | `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`, `OTEL_EXPORTER_OTLP_ENDPOINT` | `http://localhost:4318` (HTTP) or `http://localhost:4317` (gRPC) |
/// | `protocol` | `OTEL_EXPORTER_OTLP_METRICS_PROTOCOL`, `OTEL_EXPORTER_OTLP_PROTOCOL` | `http/protobuf` |
/// | `interval` | `OTEL_METRIC_EXPORT_INTERVAL` (milliseconds) | 60 s |
/// | `service_name` | `OTEL_SERVICE_NAME`, `service.name` in `OTEL_RESOURCE_ATTRIBUTES` | `inferwatch` |
///
/// `OTEL_EXPORTER_OTLP_HEADERS` (and the metrics-specific variable), `..._TIMEOUT` and
/// `OTEL_RESOURCE_ATTRIBUTES` are read by the OpenTelemetry SDK and OTLP exporter 0.33
/// themselves. An explicit endpoint for HTTP without a path gets `/v1/metrics` appended,
/// as the specification does for `OTEL_EXPORTER_OTLP_ENDPOINT`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OtelConfig {
    /// The collector URL, such as `http://127.0.0.1:4317`.
    pub endpoint: Option<String>,
    /// The transport.
    pub protocol: Option<Protocol>,
    /// Time between two exports.
    pub interval: Option<Duration>,
    /// The `service.name` resource attribute.
    pub service_name: Option<String>,
    /// The model name, exported as the `inferwatch.model.name` resource attribute.
    pub model_name: Option<String>,
    /// The AWS IoT thing name, exported as `inferwatch.thing.name` when set.
    pub thing_name: Option<String>,
}

impl OtelConfig {
    /// Returns the protocol: the field, else the metrics-specific variable, else the
    /// general one, else `http/protobuf`.
    pub fn resolved_protocol(&self) -> Result<Protocol, ConfigError> {
        if let Some(protocol) = self.protocol {
            return Ok(protocol);
        }
        for variable in ["OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"] {
            if let Some(value) = env_value(variable) {
                return value.parse().map_err(|expected| ConfigError::Invalid {
                    origin: "the environment".into(),
                    key: variable.into(),
                    value,
                    expected,
                });
            }
        }
        Ok(Protocol::default())
    }

    /// Returns true when an endpoint is configured here or in the environment, which is
    /// how the command line decides to export at all.
    pub fn endpoint_configured(&self) -> bool {
        self.endpoint.is_some()
            || env_value("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT").is_some()
            || env_value("OTEL_EXPORTER_OTLP_ENDPOINT").is_some()
    }

    /// Returns the endpoint to set on the exporter, or `None` to let the exporter read the
    /// environment. Fails on a value that is not an `http://` or `https://` URL.
    pub(crate) fn explicit_endpoint(
        &self,
        protocol: Protocol,
    ) -> Result<Option<String>, ConfigError> {
        let Some(endpoint) = &self.endpoint else { return Ok(None) };
        let invalid = |expected: &str| ConfigError::Invalid {
            origin: "the OTLP settings".into(),
            key: "endpoint".into(),
            value: endpoint.clone(),
            expected: expected.into(),
        };
        let rest = endpoint
            .strip_prefix("http://")
            .or_else(|| endpoint.strip_prefix("https://"))
            .ok_or_else(|| invalid("a URL such as http://127.0.0.1:4318"))?;
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        if authority.is_empty() {
            return Err(invalid("a URL with a host, such as http://127.0.0.1:4318"));
        }
        if protocol == Protocol::HttpProtobuf && path.is_empty() {
            let base = endpoint.trim_end_matches('/');
            return Ok(Some(format!("{base}/v1/metrics")));
        }
        Ok(Some(endpoint.clone()))
    }

    /// Returns the service name to set, or `None` when the environment sets one.
    pub(crate) fn service_name_override(&self) -> Option<String> {
        if let Some(name) = &self.service_name {
            return Some(name.clone());
        }
        let from_attributes = env_value("OTEL_RESOURCE_ATTRIBUTES").is_some_and(|attributes| {
            attributes.split(',').any(|pair| pair.trim_start().starts_with("service.name="))
        });
        if env_value("OTEL_SERVICE_NAME").is_some() || from_attributes {
            None
        } else {
            Some("inferwatch".into())
        }
    }
}

/// Returns the variable's value, or `None` when it is unset or empty.
fn env_value(variable: &str) -> Option<String> {
    std::env::var(variable).ok().filter(|value| !value.trim().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_parses_spec_names() {
        assert_eq!("grpc".parse::<Protocol>(), Ok(Protocol::Grpc));
        assert_eq!("http/protobuf".parse::<Protocol>(), Ok(Protocol::HttpProtobuf));
        assert!("http/json".parse::<Protocol>().is_err());
    }

    #[test]
    fn http_endpoint_gets_metrics_path() {
        let config =
            OtelConfig { endpoint: Some("http://127.0.0.1:4318".into()), ..Default::default() };
        assert_eq!(
            config.explicit_endpoint(Protocol::HttpProtobuf).unwrap().as_deref(),
            Some("http://127.0.0.1:4318/v1/metrics")
        );
        assert_eq!(
            config.explicit_endpoint(Protocol::Grpc).unwrap().as_deref(),
            Some("http://127.0.0.1:4318")
        );
        let with_path = OtelConfig {
            endpoint: Some("https://collector.example/otlp/v1/metrics".into()),
            ..Default::default()
        };
        assert_eq!(
            with_path.explicit_endpoint(Protocol::HttpProtobuf).unwrap().as_deref(),
            Some("https://collector.example/otlp/v1/metrics")
        );
    }

    #[test]
    fn endpoint_without_scheme_is_invalid() {
        let config = OtelConfig { endpoint: Some("127.0.0.1:4317".into()), ..Default::default() };
        let error = config.explicit_endpoint(Protocol::Grpc).unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid endpoint \"127.0.0.1:4317\" in the OTLP settings: a URL such as \
             http://127.0.0.1:4318"
        );
    }
}
