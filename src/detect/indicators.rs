//! Mining indicators read from `/proc`: connections to pool ports, miner command lines and
//! names, and foreign processes that keep a core busy.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::metric::MetricValue;

/// Remote ports of mining pools' stratum endpoints. 3333, 4444, 5555, 7777 and 14444 are
/// the stratum ports most pools publish (14433 is nanopool's TLS twin of 14444), and 45700
/// is the port of the Monero pool named in the AWS cryptojacking reference setup.
pub const POOL_PORTS: [u16; 7] = [3333, 4444, 5555, 7777, 14433, 14444, 45700];

/// Names (`comm`, lowercased, at most 15 bytes as the kernel keeps them) of common CPU and
/// GPU miners.
pub const MINER_NAMES: [&str; 22] = [
    "xmrig",
    "xmrig-notls",
    "xmr-stak",
    "xmr-stak-rx",
    "xmr-stak-cpu",
    "cpuminer",
    "cpuminer-multi",
    "cpuminer-opt",
    "minerd",
    "ethminer",
    "nbminer",
    "t-rex",
    "phoenixminer",
    "lolminer",
    "teamredminer",
    "nanominer",
    "srbminer-multi",
    "bzminer",
    "ccminer",
    "cgminer",
    "bfgminer",
    "kawpowminer",
];

/// Command-line fragments that only miners use: pool URLs and XMRig's donation flag.
pub const CMDLINE_PATTERNS: [&str; 3] = ["stratum+tcp://", "stratum+ssl://", "--donate-level"];

/// Settings of the [`IndicatorScanner`].
#[derive(Clone, Debug)]
pub struct IndicatorConfig {
    /// The `/proc` tree to read; tests point it at a fixture.
    pub proc_root: PathBuf,
    /// Remote ports that count as mining pools.
    pub pool_ports: Vec<u16>,
    /// Process names that count as miners, lowercase.
    pub miner_names: Vec<String>,
    /// Command-line fragments that count as miners.
    pub cmdline_patterns: Vec<String>,
    /// CPU use, in percent of one core, that counts as a busy process when sustained.
    pub cpu_percent: f64,
    /// How long a process must keep that CPU use.
    pub sustained: Duration,
    /// Process names that are never reported as busy, such as compilers on a shared build
    /// machine. A name matches `comm` (or its first 15 bytes, which is all the kernel keeps)
    /// or the file name of `argv[0]`, case-sensitively. The other indicators still report
    /// these processes, because a miner can take any name.
    pub ignore_busy_names: Vec<String>,
    /// Processes never reported: this process, by default.
    pub exclude_pids: Vec<u32>,
    /// Clock ticks per second of `/proc/PID/stat` times (`sysconf(_SC_CLK_TCK)`).
    pub ticks_per_second: f64,
}

impl Default for IndicatorConfig {
    fn default() -> Self {
        // SAFETY: sysconf only reads a system constant.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        IndicatorConfig {
            proc_root: PathBuf::from("/proc"),
            pool_ports: POOL_PORTS.to_vec(),
            miner_names: MINER_NAMES.iter().map(|n| (*n).to_owned()).collect(),
            cmdline_patterns: CMDLINE_PATTERNS.iter().map(|p| (*p).to_owned()).collect(),
            cpu_percent: 80.0,
            sustained: Duration::from_secs(20),
            ignore_busy_names: Vec::new(),
            exclude_pids: vec![std::process::id()],
            ticks_per_second: if ticks > 0 { ticks as f64 } else { 100.0 },
        }
    }
}

impl IndicatorConfig {
    /// Returns the CPU use of all online cores, in percent of one core: the most any process
    /// can reach, so a [`cpu_percent`](Self::cpu_percent) above it never reports one.
    pub fn max_cpu_percent() -> f64 {
        // SAFETY: sysconf only reads a system constant.
        let online = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
        let cores = if online > 0 {
            online as usize
        } else {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        };
        100.0 * cores as f64
    }
}

/// One indicator found by a scan.
#[derive(Clone, Debug, PartialEq)]
pub struct Finding {
    /// The indicator: `pool-connection`, `miner-name`, `miner-cmdline` or `busy-process`.
    pub indicator: &'static str,
    /// What identifies this finding between scans: the connection or the process.
    pub key: String,
    /// The value observed: the remote address, the name, the fragment, or the CPU percent.
    pub value: MetricValue,
    /// What it matched: the pool ports, the name list, or the CPU threshold.
    pub threshold: MetricValue,
    /// A readable account naming the process (PID, name) or the connection.
    pub detail: String,
}

/// An established TCP connection from `/proc/net/tcp` or `/proc/net/tcp6`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpConnection {
    /// Local address and port.
    pub local: SocketAddr,
    /// Remote address and port.
    pub remote: SocketAddr,
}

/// Parses the established connections (state `01`) of a `/proc/net/tcp` or `tcp6` table.
/// Lines that do not parse are skipped.
pub fn parse_established(table: &str) -> Vec<TcpConnection> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.get(3) != Some(&"01") {
                return None;
            }
            Some(TcpConnection {
                local: parse_socket(fields.get(1)?)?,
                remote: parse_socket(fields.get(2)?)?,
            })
        })
        .collect()
}

/// Parses `0100007F:0CEA` (IPv4) or the 32-digit IPv6 form. The kernel prints each 32-bit
/// word of the address in host byte order and the port in ordinary hexadecimal.
fn parse_socket(text: &str) -> Option<SocketAddr> {
    let (address, port) = text.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let word = |i: usize| -> Option<[u8; 4]> {
        let hex = address.get(i * 8..i * 8 + 8)?;
        Some(u32::from_str_radix(hex, 16).ok()?.to_ne_bytes())
    };
    let ip = match address.len() {
        8 => IpAddr::V4(Ipv4Addr::from(word(0)?)),
        32 => {
            let mut bytes = [0u8; 16];
            for i in 0..4 {
                bytes[i * 4..i * 4 + 4].copy_from_slice(&word(i)?);
            }
            let v6 = Ipv6Addr::from(bytes);
            v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4)
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// Fields of `/proc/PID/stat` that the scanner uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessStat {
    /// The name (`comm`), at most 15 bytes.
    pub name: String,
    /// `utime + stime`, in clock ticks.
    pub cpu_ticks: u64,
    /// Start time after boot, in clock ticks. Together with the PID, it distinguishes a reused PID.
    pub start_ticks: u64,
}

/// Parses a `/proc/PID/stat` line. The name may hold spaces and parentheses, so the other
/// fields are counted from the last `)`.
pub fn parse_process_stat(stat: &str) -> Option<ProcessStat> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let name = stat.get(open + 1..close)?.to_owned();
    let fields: Vec<&str> = stat.get(close + 1..)?.split_whitespace().collect();
    // fields[0] is field 3 (state): utime is field 14, stime 15, starttime 22.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    let start_ticks: u64 = fields.get(19)?.parse().ok()?;
    Some(ProcessStat { name, cpu_ticks: utime + stime, start_ticks })
}

/// Scans `/proc` for mining indicators and keeps the CPU history that "sustained" needs.
///
/// Each scan reads `net/tcp`, `net/tcp6` and, for every numeric directory, `stat` and
/// `cmdline`; a process that exits mid-scan is skipped. It never resolves a name or opens
/// a connection.
#[derive(Debug)]
pub struct IndicatorScanner {
    config: IndicatorConfig,
    /// CPU samples per (PID, start time): clock time in nanoseconds and CPU ticks.
    cpu_history: HashMap<(u32, u64), VecDeque<(u64, u64)>>,
}

impl IndicatorScanner {
    /// Creates a scanner.
    pub fn new(config: IndicatorConfig) -> Self {
        IndicatorScanner { config, cpu_history: HashMap::new() }
    }

    /// Returns the settings.
    pub fn config(&self) -> &IndicatorConfig {
        &self.config
    }

    /// Scans once at clock time `now_nanos` and returns every indicator present now.
    pub fn scan(&mut self, now_nanos: u64) -> Vec<Finding> {
        let mut findings = self.scan_connections();
        let mut seen = HashSet::new();
        let entries = match std::fs::read_dir(&self.config.proc_root) {
            Ok(entries) => entries,
            Err(error) => {
                tracing::debug!(path = %self.config.proc_root.display(), %error, "cannot list processes");
                return findings;
            }
        };
        let mut pids: Vec<u32> = entries
            .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
            .filter(|pid| !self.config.exclude_pids.contains(pid))
            .collect();
        pids.sort_unstable();
        for pid in pids {
            let dir = self.config.proc_root.join(pid.to_string());
            let Some(stat) = read(&dir.join("stat")).as_deref().and_then(parse_process_stat) else {
                continue;
            };
            seen.insert((pid, stat.start_ticks));
            let cmdline = read(&dir.join("cmdline")).unwrap_or_default();
            self.check_process(pid, &stat, &cmdline, &mut findings);
            if self.is_ignored_when_busy(&stat, &cmdline) {
                continue;
            }
            if let Some(finding) = self.check_cpu(pid, &stat, now_nanos) {
                findings.push(finding);
            }
        }
        self.cpu_history.retain(|key, _| seen.contains(key));
        findings
    }

    fn scan_connections(&self) -> Vec<Finding> {
        let mut findings = Vec::new();
        for table in ["net/tcp", "net/tcp6"] {
            let Some(text) = read(&self.config.proc_root.join(table)) else { continue };
            for connection in parse_established(&text) {
                if !self.config.pool_ports.contains(&connection.remote.port()) {
                    continue;
                }
                let remote = connection.remote.to_string();
                findings.push(Finding {
                    indicator: "pool-connection",
                    key: format!("{} {remote}", connection.local),
                    value: MetricValue::Strings(vec![remote.clone()]),
                    threshold: MetricValue::Ports(self.config.pool_ports.clone()),
                    detail: format!(
                        "established TCP connection from {} to {remote}, a mining pool port",
                        connection.local
                    ),
                });
            }
        }
        findings
    }

    fn is_ignored_when_busy(&self, stat: &ProcessStat, cmdline: &str) -> bool {
        let program = program_name(cmdline);
        self.config.ignore_busy_names.iter().any(|ignored| {
            stat.name == *ignored
                || stat.name.as_bytes() == &ignored.as_bytes()[..ignored.len().min(15)]
                || program == *ignored
        })
    }

    fn check_process(&self, pid: u32, stat: &ProcessStat, cmdline: &str, out: &mut Vec<Finding>) {
        let name = stat.name.to_lowercase();
        // argv[0]'s file name catches a miner whose comm was changed, and names longer
        // than the 15 bytes the kernel keeps in comm.
        let program = program_name(cmdline).to_lowercase();
        let matched = self.config.miner_names.iter().find(|miner| {
            let short: String = miner.chars().take(15).collect();
            name == **miner || name == short || program == **miner
        });
        if let Some(miner) = matched {
            out.push(Finding {
                indicator: "miner-name",
                key: format!("{pid} {}", stat.start_ticks),
                value: MetricValue::Strings(vec![stat.name.clone()]),
                threshold: MetricValue::Strings(vec![miner.clone()]),
                detail: format!("process {pid} ({}) has the name of a known miner", stat.name),
            });
        }
        let arguments = cmdline.replace('\0', " ");
        if let Some(pattern) =
            self.config.cmdline_patterns.iter().find(|p| arguments.contains(p.as_str()))
        {
            out.push(Finding {
                indicator: "miner-cmdline",
                key: format!("{pid} {}", stat.start_ticks),
                value: MetricValue::Strings(vec![pattern.clone()]),
                threshold: MetricValue::Strings(self.config.cmdline_patterns.clone()),
                detail: format!("process {pid} ({}) has {pattern} in its command line", stat.name),
            });
        }
    }

    fn check_cpu(&mut self, pid: u32, stat: &ProcessStat, now: u64) -> Option<Finding> {
        let sustained = self.config.sustained.as_nanos() as u64;
        let history = self.cpu_history.entry((pid, stat.start_ticks)).or_default();
        history.push_back((now, stat.cpu_ticks));
        // Keep exactly one sample at least `sustained` old, the start of the measured span.
        while history.len() > 2 && now.saturating_sub(history[1].0) >= sustained {
            history.pop_front();
        }
        let (start, start_ticks) = *history.front()?;
        let elapsed = now.saturating_sub(start);
        if elapsed < sustained || elapsed == 0 {
            return None;
        }
        let cpu_seconds =
            stat.cpu_ticks.saturating_sub(start_ticks) as f64 / self.config.ticks_per_second;
        let percent = cpu_seconds / (elapsed as f64 / 1e9) * 100.0;
        (percent >= self.config.cpu_percent).then(|| Finding {
            indicator: "busy-process",
            key: format!("{pid} {}", stat.start_ticks),
            value: MetricValue::Number(percent),
            threshold: MetricValue::Number(self.config.cpu_percent),
            detail: format!(
                "process {pid} ({}) used {percent:.0} % of a core over the last {:.0} s",
                stat.name,
                elapsed as f64 / 1e9
            ),
        })
    }
}

/// Returns the file name of `argv[0]` in a NUL-separated command line, or "" when it has none.
fn program_name(cmdline: &str) -> &str {
    cmdline
        .split('\0')
        .next()
        .and_then(|arg| Path::new(arg).file_name())
        .and_then(|n| n.to_str())
        .unwrap_or_default()
}

fn read(path: &Path) -> Option<String> {
    std::fs::read(path).ok().map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
}
