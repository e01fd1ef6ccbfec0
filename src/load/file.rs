//! A load value read from a file, such as `/var/gpu_load_fb`.

use std::path::{Path, PathBuf};

use super::{LoadCells, LoadKind, LoadSource};
use crate::error::LoadError;

/// Reads one number (percent) from a file on every sample.
///
/// This is how a device without a GPU, or with a GPU that has no NVML, feeds its load: some
/// other program writes the number (the reference setup writes `/var/gpu_load_fb`). The file
/// holds one decimal number, optionally surrounded by whitespace; `85`, `85.5` and `8.5e1`
/// are read, while an empty file, `85%` or `NaN` are errors that make the metric absent.
#[derive(Debug)]
pub struct FileSource {
    path: PathBuf,
    kind: LoadKind,
}

impl FileSource {
    /// Creates a source that stores the file's number as `kind`.
    pub fn new(path: impl Into<PathBuf>, kind: LoadKind) -> Self {
        FileSource { path: path.into(), kind }
    }

    /// Returns the file path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Reads one finite number from `path`.
pub fn read_number(path: &Path) -> Result<f64, LoadError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| LoadError::ReadFile { path: path.to_owned(), source })?;
    let trimmed = text.trim();
    match trimmed.parse::<f64>() {
        Ok(value) if value.is_finite() => Ok(value),
        _ => Err(LoadError::NotANumber { path: path.to_owned(), text: clip(trimmed) }),
    }
}

fn clip(text: &str) -> String {
    let mut clipped: String = text.chars().take(40).collect();
    if clipped.len() < text.len() {
        clipped.push('…');
    }
    clipped
}

impl LoadSource for FileSource {
    fn name(&self) -> String {
        self.path.display().to_string()
    }

    fn sample(&mut self, cells: &LoadCells) -> Result<(), LoadError> {
        let value = read_number(&self.path)?;
        cells.set(self.kind, Some(value));
        Ok(())
    }

    fn kinds(&self) -> Vec<LoadKind> {
        vec![self.kind]
    }
}
