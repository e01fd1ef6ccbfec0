//! Unit tests: the documents of the report format, `/proc/net` fixtures and a live read.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};

use serde_json::{Value, json};

use super::*;

/// The example document of the report format, with long keys.
const SPEC_LONG: &str = r#"{"header": {"report_id": 1764844800123, "version": "1.0"},
 "metrics": {
   "listening_tcp_ports": {"ports": [{"interface": "eth0", "port": 22}], "total": 1},
   "listening_udp_ports": {"ports": [{"interface": "eth0", "port": 5353}], "total": 1},
   "network_stats": {"bytes_in": 29358, "bytes_out": 26485, "packets_in": 100, "packets_out": 113},
   "tcp_connections": {"established_connections": {
     "connections": [{"local_interface": "eth0", "local_port": 80, "remote_addr": "192.0.2.1:8000"}],
     "total": 1}}},
 "custom_metrics": {"avg_inference_time": [{"number": 12.5}],
                    "gpu_load_per_inference": [{"number": 23}]}}"#;

/// The same document with short keys.
const SPEC_SHORT: &str = r#"{"hed": {"rid": 1764844800123, "v": "1.0"},
 "met": {
   "tp": {"pts": [{"if": "eth0", "pt": 22}], "t": 1},
   "up": {"pts": [{"if": "eth0", "pt": 5353}], "t": 1},
   "ns": {"bi": 29358, "bo": 26485, "pi": 100, "po": 113},
   "tc": {"ec": {"cs": [{"li": "eth0", "lp": 80, "rad": "192.0.2.1:8000"}], "t": 1}}},
 "cmet": {"avg_inference_time": [{"number": 12.5}], "gpu_load_per_inference": [{"number": 23}]}}"#;

fn spec_report() -> Report {
    let eth0 = Some("eth0".to_owned());
    Report {
        report_id: 1764844800123,
        metrics: DeviceMetrics {
            listening_tcp_ports: Some(PortList {
                ports: vec![ListeningPort { interface: eth0.clone(), port: 22 }],
                total: 1,
            }),
            listening_udp_ports: Some(PortList {
                ports: vec![ListeningPort { interface: eth0.clone(), port: 5353 }],
                total: 1,
            }),
            network_stats: Some(NetworkStats {
                bytes_in: 29358,
                bytes_out: 26485,
                packets_in: 100,
                packets_out: 113,
            }),
            tcp_connections: Some(ConnectionList {
                connections: vec![TcpConnection {
                    local_interface: eth0,
                    local_port: 80,
                    remote_addr: "192.0.2.1:8000".parse().unwrap(),
                }],
                total: 1,
            }),
        },
        custom_metrics: BTreeMap::from([
            ("avg_inference_time".to_owned(), CustomMetric::Number(12.5)),
            ("gpu_load_per_inference".to_owned(), CustomMetric::Number(23.0)),
        ]),
    }
}

#[test]
fn report_encodes_spec_document_long_keys() {
    let bytes = spec_report().encode(Format::Json, KeyStyle::Long).unwrap();
    let sent: Value = serde_json::from_slice(&bytes).unwrap();
    let expected: Value = serde_json::from_str(SPEC_LONG).unwrap();
    assert_eq!(sent, expected);
    // 23 is written as an integer, exactly as in the document.
    assert!(
        String::from_utf8(bytes).unwrap().contains(r#""gpu_load_per_inference":[{"number":23}]"#)
    );
}

#[test]
fn report_encodes_spec_document_short_keys() {
    let bytes = spec_report().encode(Format::Json, KeyStyle::Short).unwrap();
    let sent: Value = serde_json::from_slice(&bytes).unwrap();
    let expected: Value = serde_json::from_str(SPEC_SHORT).unwrap();
    assert_eq!(sent, expected);
}

#[test]
fn report_parses_spec_documents() {
    let (long, style) = parse_report(SPEC_LONG.as_bytes(), Format::Json).unwrap();
    assert_eq!(style, KeyStyle::Long);
    assert_eq!(long, spec_report());
    let (short, style) = parse_report(SPEC_SHORT.as_bytes(), Format::Json).unwrap();
    assert_eq!(style, KeyStyle::Short);
    assert_eq!(short, spec_report());
}

#[test]
fn report_round_trips_through_cbor() {
    for style in [KeyStyle::Long, KeyStyle::Short] {
        let bytes = spec_report().encode(Format::Cbor, style).unwrap();
        assert_eq!(bytes[0] & 0xE0, 0xA0, "a CBOR map comes first");
        let (report, parsed_style) = parse_report(&bytes, Format::Cbor).unwrap();
        assert_eq!(report, spec_report());
        assert_eq!(parsed_style, style);
    }
    let long = spec_report().encode(Format::Cbor, KeyStyle::Long).unwrap().len();
    let short = spec_report().encode(Format::Cbor, KeyStyle::Short).unwrap().len();
    assert!(short < long, "short keys make the report smaller: {short} vs {long}");
}

#[test]
fn report_without_optional_groups_is_minimal() {
    let report = Report { report_id: 7, ..Report::default() };
    let bytes = report.encode(Format::Json, KeyStyle::Long).unwrap();
    assert_eq!(
        String::from_utf8(bytes).unwrap(),
        r#"{"header":{"report_id":7,"version":"1.0"},"metrics":{}}"#
    );
}

fn rejection(document: &str) -> String {
    parse_report(document.as_bytes(), Format::Json).unwrap_err().to_string()
}

#[test]
fn report_rejects_mixed_keys() {
    let error = rejection(r#"{"header":{"report_id":1,"version":"1.0"},"met":{}}"#);
    assert!(error.contains("mixes short keys"), "{error}");
    let error = rejection(r#"{"hed":{"rid":1,"version":"1.0"},"met":{}}"#);
    assert!(error.contains("hed.version"), "{error}");
}

#[test]
fn report_rejects_number_as_string() {
    let error = rejection(
        r#"{"header":{"report_id":1,"version":"1.0"},"metrics":{},
            "custom_metrics":{"avg_inference_time":[{"number":"12.5"}]}}"#,
    );
    assert!(error.contains("custom_metrics.avg_inference_time[0].number"), "{error}");
    assert!(error.contains("expected a JSON number"), "{error}");
}

#[test]
fn report_rejects_invalid_documents() {
    let cases = [
        (r#"{"metrics":{}}"#, "header"),
        (r#"{"header":{"report_id":1,"version":"1.0"}}"#, "metrics: missing"),
        (r#"{"header":{"report_id":"1","version":"1.0"},"metrics":{}}"#, "header.report_id"),
        (
            r#"{"header":{"report_id":9007199254740992,"version":"1.0"},"metrics":{}}"#,
            "header.report_id",
        ),
        (r#"{"header":{"report_id":0,"version":"1.0"},"metrics":{}}"#, "must be > 0"),
        (r#"{"header":{"report_id":1,"version":1.0},"metrics":{}}"#, "header.version"),
        (
            r#"{"header":{"report_id":1,"version":"1.0"},"metrics":{"listening_tcp_ports":{"ports":[{"port":70000}]}}}"#,
            "ports[0].port",
        ),
        (
            r#"{"header":{"report_id":1,"version":"1.0"},"metrics":{"listening_tcp_ports":{"ports":[{"port":1},{"port":2}],"total":1}}}"#,
            "less than the 2 entries",
        ),
        (
            r#"{"header":{"report_id":1,"version":"1.0"},"metrics":{"tcp_connections":{"established_connections":{"connections":[{"remote_addr":"2001:db8::1:443"}]}}}}"#,
            "remote_addr",
        ),
        (
            r#"{"header":{"report_id":1,"version":"1.0"},"metrics":{},"custom_metrics":{"aws:x":[{"number":1}]}}"#,
            "aws: prefix",
        ),
        (
            r#"{"header":{"report_id":1,"version":"1.0"},"metrics":{},"custom_metrics":{"a/b":[{"number":1}]}}"#,
            "custom_metrics.a/b",
        ),
        (
            r#"{"header":{"report_id":1,"version":"1.0"},"metrics":{},"custom_metrics":{"x":{"number":1}}}"#,
            "exactly one object",
        ),
        (
            r#"{"header":{"report_id":1,"version":"1.0"},"metrics":{},"custom_metrics":{"x":[{"number":1},{"number":2}]}}"#,
            "exactly one object",
        ),
        (
            r#"{"header":{"report_id":1,"version":"1.0"},"metrics":{},"custom_metrics":{"x":[{"number":0.12345678901234567}]}}"#,
            "significant digits",
        ),
        (
            r#"{"header":{"report_id":1,"version":"1.0"},"metrics":{},"custom_metrics":{"x":[{"string_list":["ok","tab\there"]}]}}"#,
            "printable ASCII",
        ),
        (
            r#"{"header":{"report_id":1,"version":"1.0"},"metrics":{},"custom_metrics":{"x":[{"ip_list":["10.0.0.300"]}]}}"#,
            "not an IPv4 or IPv6",
        ),
        (
            r#"{"header":{"report_id":1,"version":"1.0"},"metrics":{},"custom_metrics":{"x":[{"numbers":[1]}]}}"#,
            "unknown type",
        ),
        (r#"{"header":{"report_id":1,"version":"1.0"},"metrics":{"cpu":1}}"#, "unknown key"),
        ("[1,2]", "expected an object"),
        ("{", "failed to decode the json report"),
    ];
    for (document, expected) in cases {
        let error = rejection(document);
        assert!(error.contains(expected), "{document}: {error}");
    }
}

#[test]
fn report_accepts_ipv6_and_lists() {
    let document = r#"{"header":{"report_id":5,"version":"1.0"},"metrics":{"tcp_connections":
        {"established_connections":{"connections":[{"local_port":443,"remote_addr":"[2001:db8::1]:443"}],"total":3}}},
        "custom_metrics":{"pools":[{"ip_list":["192.0.2.7","2001:db8::7"]}],"tags":[{"string_list":["gpu-a","x y"]}],
        "lat":[{"number_list":[1,2.5,-3]}]}}"#;
    let (report, _) = parse_report(document.as_bytes(), Format::Json).unwrap();
    let connections = report.metrics.tcp_connections.unwrap();
    assert_eq!(connections.total, 3);
    assert_eq!(connections.connections[0].remote_addr.to_string(), "[2001:db8::1]:443");
    assert_eq!(report.custom_metrics["lat"], CustomMetric::NumberList(vec![1.0, 2.5, -3.0]));
}

#[test]
fn report_rejects_oversized_document() {
    let big = vec![b' '; MAX_REPORT_BYTES + 1];
    let error = parse_report(&big, Format::Json).unwrap_err();
    assert_eq!(error, ReportError::TooLarge { size: MAX_REPORT_BYTES + 1, max: MAX_REPORT_BYTES });
}

#[test]
fn numbers_keep_fifteen_significant_digits() {
    assert_eq!(round_significant(0.1 + 0.2), 0.3);
    assert_eq!(round_significant(1.0 / 3.0), 0.333333333333333);
    assert_eq!(round_significant(123456789.0 + 0.123456789), 123456789.123457);
    let report = Report {
        report_id: 1,
        custom_metrics: BTreeMap::from([("x".to_owned(), CustomMetric::Number(2.0 / 3.0))]),
        ..Report::default()
    };
    let value = report.to_value(KeyStyle::Long);
    assert_eq!(value["custom_metrics"]["x"], json!([{"number": 0.666666666666667}]));
    let nan = Report {
        report_id: 1,
        custom_metrics: BTreeMap::from([("x".to_owned(), CustomMetric::Number(f64::NAN))]),
        ..Report::default()
    };
    assert!(nan.encode(Format::Json, KeyStyle::Long).is_err());
}

#[test]
fn cbor_rejects_byte_strings() {
    let mut bytes = Vec::new();
    ciborium::into_writer(&ciborium::Value::Bytes(vec![1, 2]), &mut bytes).unwrap();
    let error = parse_report(&bytes, Format::Cbor).unwrap_err().to_string();
    assert!(error.contains("byte strings"), "{error}");
}

// /proc/net fixtures, as printed by Linux 6.1 on x86_64 (little-endian words).

const TCP: &str = "\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1001 1 0 100 0 0 10 0
   1: 0100007F:0277 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1002 1 0 100 0 0 10 0
   2: 0A00000A:0016 010200C0:1F40 01 00000000:00000000 02:0000A3D2 00000000     0        0 1003 4 0 20 10 -1
   3: 0A00000A:A1B2 070200C0:115C 01 00000000:00000000 00:00000000 00000000  1000        0 1004 1 0 20 4 30 10 -1
   4: 0A00000A:A1B3 080200C0:0050 06 00000000:00000000 03:00001190 00000000     0        0 0 3 0
";

const TCP6: &str = "\
  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:0016 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2001 1 0 100 0 0 10 0
   1: 00000000000000000000000000000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2002 1 0 100 0 0 10 0
   2: B80D0120000000000000000002000000:01BB B80D0120000000000000000001000000:C350 01 00000000:00000000 00:00000000 00000000     0        0 2003 1 0 20 4 30 10 -1
   3: 0000000000000000FFFF00000A00000A:0050 0000000000000000FFFF0000090200C0:D431 01 00000000:00000000 00:00000000 00000000     0        0 2004 1 0 20 4 30 10 -1
";

const UDP: &str = "\
   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  100: 00000000:14E9 00000000:0000 07 00000000:00000000 00:00000000 00000000   104        0 3001 2 0 0
  101: 0A00000A:0044 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 3002 2 0 0
  102: 0A00000A:D2F0 08080808:0035 01 00000000:00000000 00:00000000 00000000  1000        0 3003 2 0 0
";

const UDP6: &str = "\
  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  200: 00000000000000000000000000000000:14E9 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000   104        0 4001 2 0 0
  201: 00000000000000000000000001000000:1F91 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 4002 2 0 0
";

fn dev(eth0_in: u64, eth0_out: u64, packets: u64) -> String {
    format!(
        "Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo: 5000 50 0 0 0 0 0 0 5000 50 0 0 0 0 0 0
  eth0: {eth0_in} {packets} 0 0 0 0 0 0 {eth0_out} {packets} 0 0 0 0 0 0
"
    )
}

fn fixture_dir(dev_text: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in [("tcp", TCP), ("tcp6", TCP6), ("udp", UDP), ("udp6", UDP6)] {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    std::fs::write(dir.path().join("dev"), dev_text).unwrap();
    dir
}

fn fixture_interfaces() -> InterfaceMap {
    let mut map = InterfaceMap::default();
    map.insert("127.0.0.1".parse().unwrap(), "lo");
    map.insert("::1".parse().unwrap(), "lo");
    map.insert("10.0.0.10".parse().unwrap(), "eth0");
    map.insert("2001:db8::2".parse().unwrap(), "eth0");
    map
}

fn port(interface: Option<&str>, port: u16) -> ListeningPort {
    ListeningPort { interface: interface.map(str::to_owned), port }
}

#[test]
fn proc_endpoints_decode_ipv4_and_ipv6() {
    let entries = parse_sockets(TCP6);
    assert_eq!(entries.len(), 4);
    assert_eq!(entries[2].local, "[2001:db8::2]:443".parse::<SocketAddr>().unwrap());
    assert_eq!(entries[2].remote, "[2001:db8::1]:50000".parse::<SocketAddr>().unwrap());
    // IPv4-mapped addresses come back as IPv4.
    assert_eq!(entries[3].remote, "192.0.2.9:54321".parse::<SocketAddr>().unwrap());
    let v4 = parse_sockets(TCP);
    assert_eq!(v4[1].local, "127.0.0.1:631".parse::<SocketAddr>().unwrap());
    assert_eq!(v4[2].remote, "192.0.2.1:8000".parse::<SocketAddr>().unwrap());
    assert_eq!(v4[2].state, 0x01);
}

#[test]
fn netstat_reads_fixture_listeners_and_connections() {
    let dir = fixture_dir(&dev(1000, 2000, 10));
    let mut netstat = NetStat::with_root(dir.path());
    let metrics = netstat.collect(&fixture_interfaces()).unwrap();

    let tcp = metrics.listening_tcp_ports.unwrap();
    // Port 22 listens on both wildcards (0.0.0.0 and ::) and is reported once, without
    // an interface; 631 on loopback, 8080 on the IPv6 wildcard.
    assert_eq!(tcp.ports, vec![port(None, 22), port(None, 8080), port(Some("lo"), 631)]);
    assert_eq!(tcp.total, 3);

    let udp = metrics.listening_udp_ports.unwrap();
    // The connected DNS socket (to 8.8.8.8:53) is not a listener.
    assert_eq!(udp.ports, vec![port(None, 5353), port(Some("eth0"), 68), port(Some("lo"), 8081)]);
    assert_eq!(udp.total, 3);

    let connections = metrics.tcp_connections.unwrap();
    let listed: Vec<(Option<&str>, u16, String)> = connections
        .connections
        .iter()
        .map(|c| (c.local_interface.as_deref(), c.local_port, c.remote_addr.to_string()))
        .collect();
    assert_eq!(
        listed,
        vec![
            (Some("eth0"), 22, "192.0.2.1:8000".to_owned()),
            (Some("eth0"), 80, "192.0.2.9:54321".to_owned()),
            (Some("eth0"), 443, "[2001:db8::1]:50000".to_owned()),
            (Some("eth0"), 41394, "192.0.2.7:4444".to_owned()),
        ]
    );
    assert_eq!(connections.total, 4);
    assert_eq!(metrics.network_stats, None, "no delta exists on the first read");
}

#[test]
fn netstat_caps_lists_and_keeps_total() {
    let dir = fixture_dir(&dev(0, 0, 0));
    let mut netstat = NetStat::with_root(dir.path()).max_listed(2);
    let metrics = netstat.collect(&fixture_interfaces()).unwrap();
    let tcp = metrics.listening_tcp_ports.unwrap();
    assert_eq!(tcp.ports.len(), 2);
    assert_eq!(tcp.total, 3);
    let connections = metrics.tcp_connections.unwrap();
    assert_eq!(connections.connections.len(), 2);
    assert_eq!(connections.total, 4);
}

#[test]
fn netstat_reports_traffic_deltas_and_resets() {
    let dir = fixture_dir(&dev(1000, 2000, 10));
    let mut netstat = NetStat::with_root(dir.path());
    netstat.collect(&fixture_interfaces()).unwrap();

    std::fs::write(dir.path().join("dev"), dev(1500, 2600, 14)).unwrap();
    let stats = netstat.collect(&fixture_interfaces()).unwrap().network_stats.unwrap();
    // Loopback traffic is left out.
    assert_eq!(
        stats,
        NetworkStats { bytes_in: 500, bytes_out: 600, packets_in: 4, packets_out: 4 }
    );

    // The counters restarted (driver reload): the new values are the traffic since.
    std::fs::write(dir.path().join("dev"), dev(300, 200, 3)).unwrap();
    let stats = netstat.collect(&fixture_interfaces()).unwrap().network_stats.unwrap();
    assert_eq!(
        stats,
        NetworkStats { bytes_in: 300, bytes_out: 200, packets_in: 3, packets_out: 3 }
    );
}

#[test]
fn netstat_without_ipv6_files_reads_ipv4() {
    let dir = fixture_dir(&dev(0, 0, 0));
    std::fs::remove_file(dir.path().join("tcp6")).unwrap();
    std::fs::remove_file(dir.path().join("udp6")).unwrap();
    let metrics = NetStat::with_root(dir.path()).collect(&fixture_interfaces()).unwrap();
    assert_eq!(metrics.listening_tcp_ports.unwrap().total, 2);
}

#[test]
fn netstat_finds_live_listener_and_connection() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let listen_port = listener.local_addr().unwrap().port();
    let client = TcpStream::connect(("127.0.0.1", listen_port)).unwrap();
    let (_server_side, _) = listener.accept().unwrap();
    let client_port = client.local_addr().unwrap().port();

    let interfaces = InterfaceMap::from_system().unwrap();
    assert_eq!(interfaces.lookup("127.0.0.1".parse::<IpAddr>().unwrap()), Some("lo"));
    let metrics = NetStat::default().collect(&interfaces).unwrap();
    let tcp = metrics.listening_tcp_ports.unwrap();
    assert!(tcp.total as usize >= tcp.ports.len());
    let all_ports = NetStat::default().max_listed(usize::MAX).collect(&interfaces).unwrap();
    let listeners = all_ports.listening_tcp_ports.unwrap().ports;
    assert!(listeners.contains(&port(Some("lo"), listen_port)), "{listeners:?}");
    let connections = all_ports.tcp_connections.unwrap().connections;
    let expected = TcpConnection {
        local_interface: Some("lo".to_owned()),
        local_port: client_port,
        remote_addr: SocketAddr::from(([127, 0, 0, 1], listen_port)),
    };
    assert!(connections.contains(&expected), "{connections:?}");
}

#[test]
fn spool_keeps_reports_and_ids_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut spool = Spool::open(dir.path(), 3).unwrap();
    let first = spool.next_report_id(1000).unwrap();
    // The clock went back: the id still grows.
    let second = spool.next_report_id(500).unwrap();
    assert_eq!((first, second), (1000, 1001));
    spool.push(first, Format::Json, b"one").unwrap();
    spool.push(second, Format::Cbor, b"two").unwrap();
    drop(spool);

    let mut spool = Spool::open(dir.path(), 3).unwrap();
    assert_eq!(spool.pending_ids(), vec![1000, 1001]);
    assert_eq!(spool.oldest(), Some((1000, Format::Json, b"one".to_vec())));
    assert_eq!(spool.next_report_id(900).unwrap(), 1002);
    spool.remove(1000).unwrap();
    assert_eq!(spool.oldest(), Some((1001, Format::Cbor, b"two".to_vec())));
}

#[test]
fn spool_drops_oldest_when_full() {
    let dir = tempfile::tempdir().unwrap();
    let mut spool = Spool::open(dir.path(), 2).unwrap();
    assert!(spool.push(1, Format::Json, b"1").unwrap().is_empty());
    assert!(spool.push(2, Format::Json, b"2").unwrap().is_empty());
    assert_eq!(spool.push(3, Format::Json, b"3").unwrap(), vec![1]);
    assert_eq!(spool.pending_ids(), vec![2, 3]);
    let files = std::fs::read_dir(dir.path()).unwrap().count();
    assert_eq!(files, 2, "no temporary or dropped file remains");
}

#[test]
fn custom_metrics_omit_absent_values() {
    let mut snapshot = crate::Snapshot {
        timestamp_ms: 0,
        window_seconds: 300.0,
        inference_count: 10,
        failed_inferences: 0,
        dropped_records: 0,
        avg_inference_time: Some(12.5),
        p50_inference_time: Some(11.0),
        p90_inference_time: Some(20.0),
        p99_inference_time: Some(40.0),
        min_inference_time: Some(9.0),
        max_inference_time: Some(41.0),
        cpu_load_per_inference: Some(30.0),
        gpu_load_per_inference: None,
        foreign_cpu_load: None,
        foreign_gpu_load: None,
    };
    let options = ReportOptions {
        extra_metrics: vec!["p99_inference_time".into(), "foreign_cpu_load".into()],
        ..ReportOptions::default()
    };
    let metrics = custom_metrics(&snapshot, &options);
    assert_eq!(
        metrics,
        BTreeMap::from([
            ("avg_inference_time".to_owned(), CustomMetric::Number(12.5)),
            ("p99_inference_time".to_owned(), CustomMetric::Number(40.0)),
        ])
    );
    snapshot.gpu_load_per_inference = Some(23.0);
    let without_gpu = ReportOptions { gpu_metrics: false, ..ReportOptions::default() };
    assert!(!custom_metrics(&snapshot, &without_gpu).contains_key("gpu_load_per_inference"));
    assert!(
        custom_metrics(&snapshot, &ReportOptions::default()).contains_key("gpu_load_per_inference")
    );
}

#[test]
fn fleet_responds_and_marks_duplicates() {
    let mut last = std::collections::HashMap::new();
    let (response, payload) =
        respond_to_report("cam-1", Format::Json, SPEC_LONG.as_bytes(), &mut last);
    assert_eq!(response.status, Status::Accepted);
    assert!(!response.duplicate);
    let document: Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(document["status"], "ACCEPTED");
    assert_eq!(document["reportId"], 1764844800123u64);
    assert_eq!(document["thingName"], "cam-1");
    let (again, _) = respond_to_report("cam-1", Format::Json, SPEC_LONG.as_bytes(), &mut last);
    assert!(again.duplicate);

    let bad = r#"{"header":{"report_id":77,"version":"1.0"},"metrics":{"tp":{}}}"#;
    let (response, payload) = respond_to_report("cam-1", Format::Json, bad.as_bytes(), &mut last);
    assert_eq!(response.status, Status::Rejected);
    let document: Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(document["status"], "REJECTED");
    assert_eq!(document["reportId"], 77);
    assert_eq!(document["statusDetails"]["ErrorCode"], "InvalidPayload");
    assert!(document["statusDetails"]["ErrorMessage"].as_str().unwrap().contains("metrics.tp"));
}

#[test]
fn report_topic_parses_thing_and_format() {
    let (thing, format) = parse_report_topic("$aws/things/cam-1/defender/metrics/cbor").unwrap();
    assert_eq!(thing.as_str(), "cam-1");
    assert_eq!(format, Format::Cbor);
    assert!(parse_report_topic("$aws/things/cam-1/defender/metrics/json/accepted").is_none());
    assert!(parse_report_topic("$aws/things/cam-1/defender/metrics/xml").is_none());
}

#[test]
fn throttling_codes_recognised() {
    for code in ["Throttled", "THROTTLED", "ThrottlingException", "throttled"] {
        assert!(super::is_throttling_code(code), "{code}");
    }
    for code in ["InvalidPayload", "", "Unauthorized", "MissingVersion"] {
        assert!(!super::is_throttling_code(code), "{code}");
    }
}

#[test]
fn default_report_gap_is_aws_minimum() {
    let tls = super::TlsFiles { ca: "ca.pem".into(), cert: "c.pem".into(), key: "k.pem".into() };
    let thing = super::ThingName::new("cam-1").unwrap();
    let config = super::PublisherConfig::new("127.0.0.1", 8883, thing, tls, "/tmp/spool");
    assert_eq!(config.min_report_gap, std::time::Duration::from_secs(300));
}
