//! Baseline files: the latency samples of one benchmark run, saved as JSON.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::summary::Summary;
use crate::error::BaselineError;

/// The format version this build writes and reads. A file with another version is rejected.
pub const BASELINE_FORMAT_VERSION: u32 = 1;

/// Most samples a baseline keeps. Longer runs keep an evenly spaced subset, so the file stays
/// under about 100 KB and the drift test stays fast, while the summary covers every sample.
pub const MAX_BASELINE_SAMPLES: usize = 10_000;

/// The machine a baseline was recorded on. Latency compares only on the same machine, so a
/// comparison across machines is reported, though not rejected.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MachineInfo {
    /// Host name, from `/proc/sys/kernel/hostname`.
    pub hostname: String,
    /// CPU model, the `model name` of `/proc/cpuinfo`.
    pub cpu_model: String,
    /// Logical CPUs available to the process.
    pub cpus: usize,
    /// Operating system and architecture, such as `linux x86_64`.
    pub os: String,
    /// Kernel release, from `/proc/sys/kernel/osrelease`.
    pub kernel: String,
}

impl MachineInfo {
    /// Describes the machine this process runs on. Values that cannot be read are empty.
    pub fn current() -> Self {
        let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default().trim().to_owned();
        let cpu_model = read("/proc/cpuinfo")
            .lines()
            .find_map(|line| {
                let (key, value) = line.split_once(':')?;
                (key.trim() == "model name").then(|| value.trim().to_owned())
            })
            .unwrap_or_default();
        MachineInfo {
            hostname: read("/proc/sys/kernel/hostname"),
            cpu_model,
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            os: format!("{} {}", std::env::consts::OS, std::env::consts::ARCH),
            kernel: read("/proc/sys/kernel/osrelease"),
        }
    }
}

/// The recorded latencies of one benchmark run, with what they were measured on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    /// Always [`BASELINE_FORMAT_VERSION`] for a file this build wrote.
    pub format_version: u32,
    /// The model path as given on the command line.
    pub model: PathBuf,
    /// SHA-256 of the model file, in lowercase hex: the baseline's identity.
    pub model_sha256: String,
    /// Backend name, such as `tract`.
    pub backend: String,
    /// The machine the run was on.
    pub machine: MachineInfo,
    /// inferwatch version that recorded the run.
    pub inferwatch_version: String,
    /// When the run ended, in milliseconds since the Unix epoch.
    pub recorded_at_ms: u64,
    /// Summary over every sample of the run.
    pub summary: Summary,
    /// Latencies in nanoseconds in run order: all of them, or an evenly spaced subset of
    /// [`MAX_BASELINE_SAMPLES`].
    pub samples_ns: Vec<u64>,
}

impl Baseline {
    /// Builds a baseline from the latencies of a run, keeping at most
    /// [`MAX_BASELINE_SAMPLES`] of them.
    pub fn new(
        model: impl Into<PathBuf>,
        model_sha256: String,
        backend: &str,
        summary: Summary,
        latencies_ns: &[u64],
    ) -> Self {
        let recorded_at_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        Baseline {
            format_version: BASELINE_FORMAT_VERSION,
            model: model.into(),
            model_sha256,
            backend: backend.to_owned(),
            machine: MachineInfo::current(),
            inferwatch_version: env!("CARGO_PKG_VERSION").to_owned(),
            recorded_at_ms,
            summary,
            samples_ns: thin(latencies_ns, MAX_BASELINE_SAMPLES),
        }
    }

    /// Writes the baseline as pretty-printed JSON to `path`, replacing the file.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), BaselineError> {
        let path = path.as_ref();
        let text = serde_json::to_string_pretty(self)
            .map_err(|e| BaselineError::Format { path: path.to_owned(), detail: e.to_string() })?;
        std::fs::write(path, text + "\n")
            .map_err(|source| BaselineError::Io { path: path.to_owned(), source })
    }

    /// Reads a baseline from `path` and checks its format version and that it contains samples.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, BaselineError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|source| BaselineError::Io { path: path.to_owned(), source })?;
        let format = |detail: String| BaselineError::Format { path: path.to_owned(), detail };
        let value: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| format(e.to_string()))?;
        // The version is checked before the fields so that a file of another version is
        // reported as such rather than as a missing or mistyped field.
        let version = value
            .get("format_version")
            .ok_or_else(|| format("no format_version field".to_owned()))?
            .as_u64()
            .ok_or_else(|| format("format_version is not a non-negative integer".to_owned()))?;
        if version != u64::from(BASELINE_FORMAT_VERSION) {
            return Err(BaselineError::Version {
                path: path.to_owned(),
                found: version,
                expected: BASELINE_FORMAT_VERSION,
            });
        }
        let baseline: Baseline =
            serde_json::from_value(value).map_err(|e| format(e.to_string()))?;
        if baseline.samples_ns.is_empty() {
            return Err(BaselineError::Empty { path: path.to_owned() });
        }
        Ok(baseline)
    }

    /// Checks that the baseline was recorded for a model with `model_sha256` on `backend`.
    /// `path` is the baseline file, for the error message.
    pub fn check_matches(
        &self,
        path: impl AsRef<Path>,
        model: &Path,
        model_sha256: &str,
        backend: &str,
    ) -> Result<(), BaselineError> {
        if self.model_sha256 != model_sha256 {
            return Err(BaselineError::Mismatch {
                path: path.as_ref().to_owned(),
                expected: format!(
                    "model {} (sha256 {})",
                    self.model.display(),
                    short_hash(&self.model_sha256)
                ),
                actual: format!("model {} (sha256 {})", model.display(), short_hash(model_sha256)),
            });
        }
        if self.backend != backend {
            return Err(BaselineError::Mismatch {
                path: path.as_ref().to_owned(),
                expected: format!("the {} backend", self.backend),
                actual: format!("the {backend} backend"),
            });
        }
        Ok(())
    }
}

fn short_hash(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}

/// Returns at most `max` values of `values`, evenly spaced and in their order.
fn thin(values: &[u64], max: usize) -> Vec<u64> {
    if values.len() <= max {
        return values.to_vec();
    }
    (0..max).map(|i| values[i * values.len() / max]).collect()
}

/// Returns the SHA-256 of the file at `path` in lowercase hex.
pub fn sha256_file(path: impl AsRef<Path>) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 16];
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
    }
    Ok(hasher.finalize().iter().map(|byte| format!("{byte:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thin_keeps_evenly_spaced_values() {
        let values: Vec<u64> = (0..10).collect();
        assert_eq!(thin(&values, 20), values);
        assert_eq!(thin(&values, 5), vec![0, 2, 4, 6, 8]);
    }

    #[test]
    fn sha256_of_known_text() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("abc");
        std::fs::write(&path, "abc").unwrap();
        assert_eq!(
            sha256_file(&path).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
