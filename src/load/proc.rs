//! System and process CPU load from `/proc`.

use std::path::PathBuf;

use super::{LoadCells, LoadKind, LoadSource};
use crate::error::LoadError;

/// CPU time counters of the whole machine, in clock ticks, summed over all cores.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SystemTicks {
    /// Ticks spent on anything but idle and I/O wait.
    pub busy: u64,
    /// All ticks.
    pub total: u64,
}

/// Parses the aggregate `cpu` line of `/proc/stat`.
///
/// The fields are user, nice, system, idle, iowait, irq, softirq and steal (guest time is
/// already part of user and nice, so it is not added again). Kernels older than 2.6.33 print
/// fewer fields; missing ones count as zero.
pub fn read_system_cpu_ticks(stat: &str) -> Option<SystemTicks> {
    let line = stat.lines().find(|line| line.starts_with("cpu "))?;
    let fields: Vec<u64> =
        line.split_whitespace().skip(1).take(8).map(|f| f.parse().ok()).collect::<Option<_>>()?;
    if fields.len() < 4 {
        return None;
    }
    let total: u64 = fields.iter().sum();
    let idle = fields[3] + fields.get(4).copied().unwrap_or(0);
    Some(SystemTicks { busy: total - idle, total })
}

/// Parses `utime + stime` (fields 14 and 15, in clock ticks) of a `/proc/PID/stat` line.
///
/// The process name (field 2) is in parentheses and may itself contain spaces and
/// parentheses, so the fields are counted from the last `)`.
pub fn read_process_cpu_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace();
    // After the name come state (field 3) ... utime (14) and stime (15): skip 11 fields.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// Samples `/proc/stat` and `/proc/PID/stat` and writes the system CPU utilization as
/// [`LoadKind::Cpu`] and the utilization of every other process as
/// [`LoadKind::ForeignCpu`], both in percent of all cores.
///
/// Both are rates over the time since the previous sample, so the first sample writes
/// nothing. The foreign load is the system's busy time less this process's CPU time: it is
/// what a miner sharing the machine shows up as, whatever its nice level.
#[derive(Debug)]
pub struct ProcCpu {
    proc_root: PathBuf,
    pid: String,
    previous: Option<(SystemTicks, u64)>,
}

impl Default for ProcCpu {
    fn default() -> Self {
        ProcCpu::new()
    }
}

impl ProcCpu {
    /// Samples the real `/proc` for this process.
    pub fn new() -> Self {
        ProcCpu::with_root("/proc", "self")
    }

    /// Samples a `/proc`-like tree at `proc_root` for process `pid` (`"self"` or a number).
    pub fn with_root(proc_root: impl Into<PathBuf>, pid: impl Into<String>) -> Self {
        ProcCpu { proc_root: proc_root.into(), pid: pid.into(), previous: None }
    }

    fn read(&self) -> Result<(SystemTicks, u64), LoadError> {
        let stat_path = self.proc_root.join("stat");
        let stat = std::fs::read_to_string(&stat_path)
            .map_err(|source| LoadError::ReadFile { path: stat_path.clone(), source })?;
        let system = read_system_cpu_ticks(&stat)
            .ok_or(LoadError::Parse { path: stat_path, what: "aggregate cpu line" })?;
        let pid_path = self.proc_root.join(&self.pid).join("stat");
        let pid_stat = std::fs::read_to_string(&pid_path)
            .map_err(|source| LoadError::ReadFile { path: pid_path.clone(), source })?;
        let own = read_process_cpu_ticks(&pid_stat)
            .ok_or(LoadError::Parse { path: pid_path, what: "utime and stime" })?;
        Ok((system, own))
    }
}

impl LoadSource for ProcCpu {
    fn name(&self) -> String {
        self.proc_root.join("stat").display().to_string()
    }

    fn sample(&mut self, cells: &LoadCells) -> Result<(), LoadError> {
        let (system, own) = self.read()?;
        if let Some((before, own_before)) = self.previous.replace((system, own))
            && system.total > before.total
        {
            let total = (system.total - before.total) as f64;
            let busy = system.busy.saturating_sub(before.busy) as f64;
            let own_delta = own.saturating_sub(own_before) as f64;
            let system_percent = (busy / total * 100.0).clamp(0.0, 100.0);
            // Own ticks and system ticks are sampled a moment apart, so the difference can
            // dip below zero on an idle machine.
            let foreign_percent = ((busy - own_delta) / total * 100.0).clamp(0.0, 100.0);
            cells.set(LoadKind::Cpu, Some(system_percent));
            cells.set(LoadKind::ForeignCpu, Some(foreign_percent));
        }
        Ok(())
    }

    fn kinds(&self) -> Vec<LoadKind> {
        vec![LoadKind::Cpu, LoadKind::ForeignCpu]
    }
}
