//! Thing names, checked before they become part of an MQTT topic.

use std::fmt;

use super::error::DefenderError;

/// The longest thing name AWS IoT accepts, in bytes.
pub const MAX_THING_NAME_LEN: usize = 128;

/// A thing name of 1 to 128 characters of `[a-zA-Z0-9:_-]`.
///
/// The check runs before the name is put into a topic such as
/// `$aws/things/{thing}/defender/metrics/json`, so a name with `/`, `+`, `#` or a space can
/// never publish to, or subscribe to, a topic other than its own.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ThingName(String);

impl ThingName {
    /// Checks `name` and wraps it.
    pub fn new(name: impl Into<String>) -> Result<Self, DefenderError> {
        let name = name.into();
        let reject = |reason: String| Err(DefenderError::ThingName { name: name.clone(), reason });
        if name.is_empty() {
            return reject("the name is empty".into());
        }
        if name.len() > MAX_THING_NAME_LEN {
            return reject(format!("the name is {} bytes long", name.len()));
        }
        if let Some(c) = name.chars().find(|&c| !is_name_char(c)) {
            let reason = match c {
                '/' | '+' | '#' => format!("{c:?} would change the MQTT topic"),
                _ => format!("{c:?} is not allowed"),
            };
            return reject(reason);
        }
        Ok(ThingName(name))
    }

    /// Returns the name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ThingName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for ThingName {
    type Err = DefenderError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ThingName::new(s)
    }
}

/// Returns whether `c` may appear in a thing name or a custom metric name.
pub(crate) fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, ':' | '_' | '-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thing_name_accepts_allowed_characters() {
        let name = ThingName::new("edge-cam_01:a").unwrap();
        assert_eq!(name.as_str(), "edge-cam_01:a");
        assert!(ThingName::new("x".repeat(128)).is_ok());
    }

    #[test]
    fn thing_name_rejects_topic_characters() {
        for name in ["a/b", "a+", "#", "a b", "", "é"] {
            let error = ThingName::new(name).unwrap_err().to_string();
            assert!(error.starts_with("invalid thing name"), "{name:?}: {error}");
        }
        let error = ThingName::new("cam/../other").unwrap_err().to_string();
        assert!(error.contains("'/' would change the MQTT topic"), "{error}");
        assert!(ThingName::new("x".repeat(129)).is_err());
    }
}
