//! The on-disk spool: reports waiting to be sent, one file per report id, and the last
//! report id handed out.
//!
//! Every write goes to a temporary file that is fsync'd, renamed into place, and followed by
//! an fsync of the directory, so that after a crash a report file is either complete or
//! absent. File names are the zero-padded report id and the format (`00001764844800123.json`),
//! so sorting them by name sorts them by id.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::error::DefenderError;
use super::report::{Format, MAX_REPORT_ID};

const LAST_ID_FILE: &str = "last_report_id";

/// A bounded directory of pending reports.
///
/// Not thread-safe by itself: the publisher keeps it behind a mutex. Two processes must not
/// share one spool directory.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    capacity: usize,
    pending: BTreeMap<u64, Format>,
    last_id: u64,
}

impl Spool {
    /// Opens (and creates) the spool in `dir`, keeping at most `capacity` pending reports.
    pub fn open(dir: impl Into<PathBuf>, capacity: usize) -> Result<Self, DefenderError> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(|source| DefenderError::Spool {
            action: "create the spool directory",
            path: dir.clone(),
            source,
        })?;
        let mut pending = BTreeMap::new();
        let entries = fs::read_dir(&dir).map_err(|source| DefenderError::Spool {
            action: "list the spool directory",
            path: dir.clone(),
            source,
        })?;
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some((id, format)) = name.to_str().and_then(parse_file_name) else { continue };
            pending.insert(id, format);
        }
        let last_path = dir.join(LAST_ID_FILE);
        let stored = match fs::read_to_string(&last_path) {
            Ok(text) => text.trim().parse::<u64>().ok(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(source) => {
                return Err(DefenderError::Spool {
                    action: "read the last report id",
                    path: last_path,
                    source,
                });
            }
        };
        if stored.is_none() && last_path.exists() {
            tracing::warn!(path = %last_path.display(), "the last report id file is unreadable; using the spooled ids and the clock");
        }
        let newest_pending = pending.keys().next_back().copied().unwrap_or(0);
        let last_id = stored.unwrap_or(0).max(newest_pending);
        Ok(Spool { dir, capacity: capacity.max(1), pending, last_id })
    }

    /// Returns the spool directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Returns the number of pending reports.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Returns whether no report is pending.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Returns the last report id handed out (0 when none was).
    pub fn last_id(&self) -> u64 {
        self.last_id
    }

    /// Hands out the next report id: `now_ms` clamped to the last id + 1, and stores it before
    /// returning, so that a restarted process never reuses an id.
    pub fn next_report_id(&mut self, now_ms: u64) -> Result<u64, DefenderError> {
        let id = now_ms.max(self.last_id + 1);
        if id > MAX_REPORT_ID {
            return Err(DefenderError::ReportIdExhausted(id));
        }
        let path = self.dir.join(LAST_ID_FILE);
        write_durably(&self.dir, &path, id.to_string().as_bytes()).map_err(|source| {
            DefenderError::Spool { action: "store the last report id in", path, source }
        })?;
        self.last_id = id;
        Ok(id)
    }

    /// Stores a report. When the spool is full, the oldest reports are deleted to make room,
    /// and their ids are returned.
    pub fn push(
        &mut self,
        id: u64,
        format: Format,
        payload: &[u8],
    ) -> Result<Vec<u64>, DefenderError> {
        let path = self.path_of(id, format);
        write_durably(&self.dir, &path, payload).map_err(|source| DefenderError::Spool {
            action: "write the spooled report",
            path,
            source,
        })?;
        self.pending.insert(id, format);
        let mut dropped = Vec::new();
        while self.pending.len() > self.capacity {
            let Some((&oldest, _)) = self.pending.iter().next() else { break };
            self.remove(oldest)?;
            dropped.push(oldest);
        }
        Ok(dropped)
    }

    /// Returns the oldest pending report: its id, format and payload. A file that vanished or
    /// cannot be read is forgotten with an error log, and the next one is returned.
    pub fn oldest(&mut self) -> Option<(u64, Format, Vec<u8>)> {
        while let Some((&id, &format)) = self.pending.iter().next() {
            let path = self.path_of(id, format);
            match fs::read(&path) {
                Ok(payload) => return Some((id, format, payload)),
                Err(error) => {
                    tracing::error!(report_id = id, path = %path.display(), %error, "failed to read a spooled report; it is lost");
                    self.pending.remove(&id);
                }
            }
        }
        None
    }

    /// Returns the ids of the pending reports, oldest first.
    pub fn pending_ids(&self) -> Vec<u64> {
        self.pending.keys().copied().collect()
    }

    /// Deletes a report once its response arrived.
    pub fn remove(&mut self, id: u64) -> Result<(), DefenderError> {
        let Some(format) = self.pending.remove(&id) else { return Ok(()) };
        let path = self.path_of(id, format);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(source) => {
                Err(DefenderError::Spool { action: "delete the spooled report", path, source })
            }
        }
    }

    fn path_of(&self, id: u64, format: Format) -> PathBuf {
        self.dir.join(format!("{id:017}.{}", format.as_str()))
    }
}

fn parse_file_name(name: &str) -> Option<(u64, Format)> {
    let (stem, extension) = name.split_once('.')?;
    let format = extension.parse().ok()?;
    if stem.is_empty() || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((stem.parse().ok()?, format))
}

/// Writes `bytes` to `path` through a temporary file, fsyncs it, renames it into place and
/// fsyncs the directory.
fn write_durably(dir: &Path, path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    let temporary = PathBuf::from(temporary);
    {
        let mut file =
            OpenOptions::new().write(true).create(true).truncate(true).open(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    fs::rename(&temporary, path)?;
    File::open(dir)?.sync_all()
}
