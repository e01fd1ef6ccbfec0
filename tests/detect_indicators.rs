//! Mining indicators on `/proc` fixtures written to a temporary folder.

use std::path::Path;
use std::time::Duration;

use inferwatch::detect::{
    IndicatorConfig, IndicatorScanner, MetricValue, parse_established, parse_process_stat,
};

const SECOND: u64 = 1_000_000_000;

/// The header of `/proc/net/tcp` and `/proc/net/tcp6`.
const TCP_HEADER: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n";

fn stat_line(pid: u32, name: &str, cpu_ticks: u64, start: u64) -> String {
    // Fields 3 to 22 are state, ppid, pgrp, session, tty, tpgid, flags, minflt, cminflt,
    // majflt, cmajflt, utime, stime, cutime, cstime, priority, nice, threads, itrealvalue
    // and starttime. All the CPU ticks go to utime.
    format!(
        "{pid} ({name}) R 1 {pid} {pid} 0 -1 4194304 100 0 0 0 {cpu_ticks} 0 0 0 20 0 1 0 {start} 1000000 100\n"
    )
}

fn write_process(root: &Path, pid: u32, name: &str, cmdline: &[&str], cpu_ticks: u64) {
    let dir = root.join(pid.to_string());
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("stat"), stat_line(pid, name, cpu_ticks, 5000)).unwrap();
    let mut args = cmdline.join("\0");
    args.push('\0');
    std::fs::write(dir.join("cmdline"), args).unwrap();
}

fn config(root: &Path) -> IndicatorConfig {
    IndicatorConfig {
        proc_root: root.to_owned(),
        exclude_pids: vec![1],
        ticks_per_second: 100.0,
        sustained: Duration::from_secs(20),
        cpu_percent: 80.0,
        ..IndicatorConfig::default()
    }
}

#[test]
fn parses_established_ipv4_and_ipv6() {
    let table = format!(
        "{TCP_HEADER}   0: 0100007F:0CEA 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 1 1 0 100 0 0 10 0\n   1: 0F02000A:A1B2 0500710C:0D05 01 00000000:00000000 00:00000000 00000000  1000        0 2 1 0 100 0 0 10 0\n   2: garbage\n"
    );
    let connections = parse_established(&table);
    assert_eq!(connections.len(), 1);
    assert_eq!(connections[0].local.to_string(), "10.0.2.15:41394");
    assert_eq!(connections[0].remote.to_string(), "12.113.0.5:3333");

    let table6 = format!(
        "{TCP_HEADER}   0: 00000000000000000000000001000000:1F90 B80D0120000000000000000001000000:115C 01 00000000:00000000 00:00000000 00000000  1000 0 3 1 0 100 0 0 10 0\n   1: 0000000000000000FFFF00000100007F:8000 0000000000000000FFFF00000500710C:1B58 01 00000000:00000000 00:00000000 00000000  1000 0 4 1 0 100 0 0 10 0\n"
    );
    let connections = parse_established(&table6);
    assert_eq!(connections.len(), 2);
    assert_eq!(connections[0].local.to_string(), "[::1]:8080");
    assert_eq!(connections[0].remote.to_string(), "[2001:db8::1]:4444");
    // IPv4-mapped addresses read as IPv4.
    assert_eq!(connections[1].remote.to_string(), "12.113.0.5:7000");
}

#[test]
fn parses_stat_with_parentheses_in_name() {
    let stat = parse_process_stat(&stat_line(42, "a) (b", 1234, 777)).unwrap();
    assert_eq!(stat.name, "a) (b");
    assert_eq!(stat.cpu_ticks, 1234);
    assert_eq!(stat.start_ticks, 777);
    assert_eq!(parse_process_stat("42 (x) R 1"), None);
}

#[test]
fn finds_connection_to_pool_port() {
    let root = tempfile::tempdir().unwrap();
    let net = root.path().join("net");
    std::fs::create_dir_all(&net).unwrap();
    // One established connection to port 3333, one to 443, one listening on 4444.
    std::fs::write(
        net.join("tcp"),
        format!("{TCP_HEADER}   0: 0F02000A:A1B2 0500710C:0D05 01 0 0 0 0 0 1\n   1: 0F02000A:A1B3 0500710C:01BB 01 0 0 0 0 0 2\n   2: 00000000:115C 00000000:0000 0A 0 0 0 0 0 3\n"),
    )
    .unwrap();
    let mut scanner = IndicatorScanner::new(config(root.path()));
    let findings = scanner.scan(0);
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert_eq!(findings[0].indicator, "pool-connection");
    assert_eq!(findings[0].value, MetricValue::Strings(vec!["12.113.0.5:3333".into()]));
    assert_eq!(
        findings[0].detail,
        "established TCP connection from 10.0.2.15:41394 to 12.113.0.5:3333, a mining pool port"
    );
}

#[test]
fn finds_miner_by_name_and_cmdline() {
    let root = tempfile::tempdir().unwrap();
    write_process(root.path(), 100, "bash", &["/bin/bash"], 10);
    write_process(root.path(), 200, "xmrig", &["./xmrig", "-o", "pool.example:3333"], 10);
    write_process(
        root.path(),
        300,
        "kworker",
        &["/tmp/.x/kworker", "-o", "stratum+tcp://pool.example:4444", "-u", "wallet"],
        10,
    );
    write_process(root.path(), 400, "sshd", &["/usr/bin/renamed", "--donate-level", "1"], 10);
    // A process whose comm was changed but whose program file is a known miner.
    write_process(root.path(), 500, "systemd-helper", &["/opt/PhoenixMiner"], 10);
    // The excluded PID matches, but is never reported.
    write_process(root.path(), 1, "xmrig", &["xmrig"], 10);
    let mut scanner = IndicatorScanner::new(config(root.path()));
    let mut found: Vec<(String, String)> =
        scanner.scan(0).into_iter().map(|f| (f.indicator.to_owned(), f.detail)).collect();
    found.sort();
    assert_eq!(
        found,
        [
            (
                "miner-cmdline".to_owned(),
                "process 300 (kworker) has stratum+tcp:// in its command line".to_owned()
            ),
            (
                "miner-cmdline".to_owned(),
                "process 400 (sshd) has --donate-level in its command line".to_owned()
            ),
            (
                "miner-name".to_owned(),
                "process 200 (xmrig) has the name of a known miner".to_owned()
            ),
            (
                "miner-name".to_owned(),
                "process 500 (systemd-helper) has the name of a known miner".to_owned()
            ),
        ]
    );
}

#[test]
fn busy_process_needs_sustained_cpu() {
    let root = tempfile::tempdir().unwrap();
    let mut scanner = IndicatorScanner::new(config(root.path()));
    // Process 700 uses 90 % of a core (90 ticks per second at 100 ticks per second);
    // process 800 uses 50 %.
    let mut at = |seconds: u64| {
        write_process(root.path(), 700, "hasher", &["hasher"], 90 * seconds);
        write_process(root.path(), 800, "builder", &["builder"], 50 * seconds);
        scanner.scan(seconds * SECOND)
    };
    for seconds in [0, 5, 10, 15] {
        assert_eq!(at(seconds), [], "nothing before 20 s of history ({seconds} s)");
    }
    let findings = at(20);
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert_eq!(findings[0].indicator, "busy-process");
    assert_eq!(findings[0].value, MetricValue::Number(90.0));
    assert_eq!(findings[0].threshold, MetricValue::Number(80.0));
    assert_eq!(findings[0].detail, "process 700 (hasher) used 90 % of a core over the last 20 s");
    assert_eq!(at(25).len(), 1);
}

#[test]
fn busy_process_stops_when_it_idles() {
    let root = tempfile::tempdir().unwrap();
    let mut scanner = IndicatorScanner::new(config(root.path()));
    for seconds in [0, 10, 20] {
        write_process(root.path(), 700, "hasher", &["hasher"], 100 * seconds);
        scanner.scan(seconds * SECOND);
    }
    // Idle from 20 s on: the 20 s span from 10 s to 30 s contains 1000 ticks, 50 %.
    write_process(root.path(), 700, "hasher", &["hasher"], 2000);
    assert_eq!(scanner.scan(30 * SECOND), []);
}

#[test]
fn reused_pid_starts_a_new_history() {
    let root = tempfile::tempdir().unwrap();
    let mut scanner = IndicatorScanner::new(config(root.path()));
    let dir = root.path().join("700");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("stat"), stat_line(700, "old", 0, 100)).unwrap();
    scanner.scan(0);
    // A new process with the same PID and a later start time: its CPU time is not a delta
    // of the old one's.
    std::fs::write(dir.join("stat"), stat_line(700, "new", 5000, 900)).unwrap();
    assert_eq!(scanner.scan(20 * SECOND), []);
}

/// Scans `root` at 0, 10 and 20 s while every listed process uses `ticks_per_second` ticks
/// per second, and returns the details of the busy-process findings at 20 s.
fn busy_after_20s(
    root: &Path,
    config: IndicatorConfig,
    processes: &[(u32, &str, &[&str], u64)],
) -> Vec<String> {
    let mut scanner = IndicatorScanner::new(config);
    let mut findings = Vec::new();
    for seconds in [0, 10, 20] {
        for (pid, name, cmdline, ticks_per_second) in processes {
            write_process(root, *pid, name, cmdline, ticks_per_second * seconds);
        }
        findings = scanner.scan(seconds * SECOND);
    }
    let mut busy: Vec<String> =
        findings.into_iter().filter(|f| f.indicator == "busy-process").map(|f| f.detail).collect();
    busy.sort();
    busy
}

#[test]
fn ignored_names_not_reported_busy() {
    let root = tempfile::tempdir().unwrap();
    let ignore = ["cc1plus", "rustc", "cargo-nextest-runner"];
    let config = IndicatorConfig {
        ignore_busy_names: ignore.iter().map(|n| (*n).to_owned()).collect(),
        ..config(root.path())
    };
    let processes: &[(u32, &str, &[&str], u64)] = &[
        // Matched by comm.
        (100, "cc1plus", &["/usr/lib/gcc/x86_64-linux-gnu/13/cc1plus", "-quiet"], 95),
        // Matched by the file name of argv[0]; comm is the thread name.
        (200, "rustc-worker", &["/home/u/.rustup/bin/rustc", "--crate-name", "x"], 95),
        // A name longer than the 15 bytes of comm, matched by its first 15 bytes.
        (300, "cargo-nextest-r", &["nextest"], 95),
        // Case-sensitive: RUSTC is not rustc.
        (400, "RUSTC", &["RUSTC"], 95),
        // Not on the list.
        (500, "hasher", &["./hasher"], 95),
    ];
    assert_eq!(
        busy_after_20s(root.path(), config, processes),
        [
            "process 400 (RUSTC) used 95 % of a core over the last 20 s",
            "process 500 (hasher) used 95 % of a core over the last 20 s",
        ]
    );
}

#[test]
fn ignored_name_keeps_miner_indicators() {
    let root = tempfile::tempdir().unwrap();
    let config = IndicatorConfig {
        ignore_busy_names: vec!["cc1plus".to_owned(), "xmrig".to_owned()],
        ..config(root.path())
    };
    let mut scanner = IndicatorScanner::new(config);
    let mut findings = Vec::new();
    for seconds in [0, 10, 20] {
        // A miner that calls itself cc1plus but has a pool URL in its command line.
        write_process(
            root.path(),
            600,
            "cc1plus",
            &["cc1plus", "-o", "stratum+tcp://pool.example:3333"],
            95 * seconds,
        );
        // Ignoring a known miner's name silences only its busy-process finding.
        write_process(root.path(), 700, "xmrig", &["./xmrig"], 95 * seconds);
        findings = scanner.scan(seconds * SECOND);
    }
    let mut found: Vec<(&str, String)> =
        findings.iter().map(|f| (f.indicator, f.detail.clone())).collect();
    found.sort();
    assert_eq!(
        found,
        [
            (
                "miner-cmdline",
                "process 600 (cc1plus) has stratum+tcp:// in its command line".to_owned()
            ),
            ("miner-name", "process 700 (xmrig) has the name of a known miner".to_owned()),
        ]
    );
}

#[test]
fn busy_thresholds_follow_config() {
    let processes: &[(u32, &str, &[&str], u64)] =
        &[(700, "hasher", &["hasher"], 90), (800, "builder", &["builder"], 50)];

    // A higher CPU threshold reports neither process.
    let root = tempfile::tempdir().unwrap();
    let strict = IndicatorConfig { cpu_percent: 95.0, ..config(root.path()) };
    assert_eq!(busy_after_20s(root.path(), strict, processes), Vec::<String>::new());

    // A lower one reports both.
    let root = tempfile::tempdir().unwrap();
    let loose = IndicatorConfig { cpu_percent: 40.0, ..config(root.path()) };
    assert_eq!(
        busy_after_20s(root.path(), loose, processes),
        [
            "process 700 (hasher) used 90 % of a core over the last 20 s",
            "process 800 (builder) used 50 % of a core over the last 20 s",
        ]
    );
}

#[test]
fn busy_secs_sets_the_span() {
    let root = tempfile::tempdir().unwrap();
    let config = IndicatorConfig { sustained: Duration::from_secs(5), ..config(root.path()) };
    let mut scanner = IndicatorScanner::new(config);
    let mut at = |seconds: u64| {
        write_process(root.path(), 700, "hasher", &["hasher"], 90 * seconds);
        scanner.scan(seconds * SECOND)
    };
    assert_eq!(at(0), []);
    assert_eq!(at(4), [], "4 s of history is shorter than 5 s");
    let findings = at(5);
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert_eq!(findings[0].detail, "process 700 (hasher) used 90 % of a core over the last 5 s");
}

#[test]
fn real_proc_scan_finds_nothing_of_its_own() {
    let mut scanner = IndicatorScanner::new(IndicatorConfig::default());
    let findings = scanner.scan(0);
    let own = format!("process {} (", std::process::id());
    assert!(findings.iter().all(|f| !f.detail.starts_with(&own)), "{findings:?}");
}
