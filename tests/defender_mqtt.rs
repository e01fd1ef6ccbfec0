//! Device Defender reports against a real Mosquitto 2 broker with mutual TLS, checked by
//! `inferwatch fleet`. Every test starts its own broker on a free port of 127.0.0.1 with
//! certificates made by the `openssl` command, and stops it at the end. Install both with
//! `scripts/deps/30-mosquitto.sh`.

#![cfg(feature = "defender")]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use inferwatch::defender::{
    CustomMetric, DeviceMetrics, Publisher, PublisherConfig, ThingName, TlsFiles,
};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_inferwatch");

/// Waits for `condition` up to `timeout`; returns whether it became true.
fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if condition() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    condition()
}

fn run(command: &mut Command) {
    let output =
        command.output().expect("failed to start openssl: run scripts/deps/30-mosquitto.sh");
    assert!(output.status.success(), "{command:?}: {}", String::from_utf8_lossy(&output.stderr));
}

/// A CA and the certificates it signs, in a directory the `mosquitto` user can read.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        set_mode(dir.path(), 0o755);
        let pki = Pki { dir };
        pki.make_ca("ca");
        pki.make_ca("wrong-ca");
        pki.sign(
            "ca",
            "server",
            "127.0.0.1",
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
        );
        pki
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn make_ca(&self, name: &str) {
        run(Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-days",
                "2",
            ])
            .arg("-keyout")
            .arg(self.path(&format!("{name}.key")))
            .arg("-out")
            .arg(self.path(&format!("{name}.pem")))
            .args(["-subj", &format!("/CN=inferwatch test {name}")]));
    }

    /// Makes `{name}.pem` and `{name}.key` for `common_name`, signed by `ca`.
    fn sign(&self, ca: &str, name: &str, common_name: &str, extensions: &str) {
        let ext = self.path(&format!("{name}.ext"));
        std::fs::write(&ext, format!("basicConstraints=CA:FALSE\n{extensions}")).unwrap();
        let csr = self.path(&format!("{name}.csr"));
        run(Command::new("openssl")
            .args(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"])
            .arg("-keyout")
            .arg(self.path(&format!("{name}.key")))
            .arg("-out")
            .arg(&csr)
            .args(["-subj", &format!("/CN={common_name}")]));
        run(Command::new("openssl")
            .args(["x509", "-req", "-days", "2", "-CAcreateserial"])
            .arg("-in")
            .arg(&csr)
            .arg("-CA")
            .arg(self.path(&format!("{ca}.pem")))
            .arg("-CAkey")
            .arg(self.path(&format!("{ca}.key")))
            .arg("-out")
            .arg(self.path(&format!("{name}.pem")))
            .arg("-extfile")
            .arg(&ext));
        // Mosquitto reads its key after dropping root for the `mosquitto` user.
        set_mode(&self.path(&format!("{name}.key")), 0o644);
    }

    /// Client files for a thing (certificate common name = thing name).
    fn client(&self, thing: &str) -> TlsFiles {
        if !self.path(&format!("{thing}.pem")).exists() {
            self.sign("ca", thing, thing, "extendedKeyUsage=clientAuth\n");
        }
        TlsFiles {
            ca: self.path("ca.pem"),
            cert: self.path(&format!("{thing}.pem")),
            key: self.path(&format!("{thing}.key")),
        }
    }
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn mosquitto_binary() -> PathBuf {
    ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("mosquitto is not installed: run scripts/deps/30-mosquitto.sh")
}

/// A Mosquitto broker with `require_certificate true`; killed when dropped.
struct Broker {
    port: u16,
    config: PathBuf,
    child: Option<Child>,
}

impl Broker {
    fn start(pki: &Pki) -> Broker {
        let port = free_port();
        let config = pki.path(&format!("mosquitto-{port}.conf"));
        let text = format!(
            "per_listener_settings false\npersistence false\nlog_dest stderr\n\
             listener {port} 127.0.0.1\ncafile {}\ncertfile {}\nkeyfile {}\n\
             require_certificate true\nuse_identity_as_username true\n",
            pki.path("ca.pem").display(),
            pki.path("server.pem").display(),
            pki.path("server.key").display(),
        );
        std::fs::write(&config, text).unwrap();
        set_mode(&config, 0o644);
        let mut broker = Broker { port, config, child: None };
        broker.restart();
        broker
    }

    fn restart(&mut self) {
        let child = Command::new(mosquitto_binary())
            .arg("-c")
            .arg(&self.config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("failed to start mosquitto");
        self.child = Some(child);
        let port = self.port;
        assert!(
            wait_until(Duration::from_secs(10), || TcpStream::connect(("127.0.0.1", port)).is_ok()),
            "mosquitto did not listen on port {port} within 10 s"
        );
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A child process whose stdout lines are collected; killed when dropped.
struct Collected {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Collected {
    fn spawn(command: &mut Command) -> Collected {
        let mut child = command.stdout(Stdio::piped()).spawn().expect("failed to start inferwatch");
        let stdout = child.stdout.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Collected { child, lines }
    }

    fn responses(&self) -> Vec<Value> {
        self.lines.lock().unwrap().iter().filter_map(|l| serde_json::from_str(l).ok()).collect()
    }
}

impl Drop for Collected {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_fleet(pki: &Pki, broker: &Broker) -> Collected {
    start_fleet_with(pki, broker, &[])
}

/// Starts `inferwatch fleet` with `extra` arguments, such as `--profile`.
fn start_fleet_with(pki: &Pki, broker: &Broker, extra: &[&str]) -> Collected {
    let files = pki.client("inferwatch-fleet");
    let fleet = Collected::spawn(
        Command::new(BIN)
            .args(["fleet", "--host", "127.0.0.1", "--port", &broker.port.to_string()])
            .args(extra)
            .arg("--ca")
            .arg(&files.ca)
            .arg("--cert")
            .arg(&files.cert)
            .arg("--key")
            .arg(&files.key)
            .env("INFERWATCH_LOG", "warn")
            .stderr(Stdio::null()),
    );
    // The fleet's subscription must exist before reports flow; a probe report from a
    // throwaway thing proves it.
    let probe = pki.client("probe");
    let probe_spool = tempfile::tempdir().unwrap();
    let publisher = start_publisher(broker, probe, "probe", probe_spool.path());
    publisher.submit(DeviceMetrics::default(), BTreeMap::new()).unwrap();
    assert!(
        wait_until(Duration::from_secs(20), || publisher.stats().accepted == 1),
        "the fleet peer did not respond to a probe report within 20 s: {:?}",
        publisher.stats()
    );
    publisher.shutdown();
    fleet
}

fn start_publisher(broker: &Broker, tls: TlsFiles, thing: &str, spool: &Path) -> Publisher {
    let mut config =
        PublisherConfig::new("127.0.0.1", broker.port, ThingName::new(thing).unwrap(), tls, spool);
    config.response_timeout = Duration::from_secs(3);
    config.reconnect_min = Duration::from_millis(100);
    config.reconnect_max = Duration::from_secs(1);
    config.min_report_gap = Duration::ZERO;
    Publisher::start(config).unwrap()
}

/// Report ids the fleet accepted for `thing`, first copies only, in arrival order.
fn accepted_ids(fleet: &Collected, thing: &str) -> Vec<u64> {
    fleet
        .responses()
        .iter()
        .filter(|a| a["thing"] == thing && a["status"] == "ACCEPTED" && a["duplicate"] == false)
        .filter_map(|a| a["report_id"].as_u64())
        .collect()
}

fn latency_metric(ms: f64) -> BTreeMap<String, CustomMetric> {
    BTreeMap::from([("avg_inference_time".to_owned(), CustomMetric::Number(ms))])
}

#[test]
fn report_round_trip_through_fleet() {
    let pki = Pki::new();
    let broker = Broker::start(&pki);
    let fleet = start_fleet(&pki, &broker);
    let spool = tempfile::tempdir().unwrap();
    let publisher = start_publisher(&broker, pki.client("cam-1"), "cam-1", spool.path());

    let ids: Vec<u64> = (0..3)
        .map(|i| {
            publisher.submit(DeviceMetrics::default(), latency_metric(10.0 + f64::from(i))).unwrap()
        })
        .collect();
    assert!(
        wait_until(Duration::from_secs(20), || publisher.stats().accepted == 3),
        "{:?}",
        publisher.stats()
    );
    assert_eq!(accepted_ids(&fleet, "cam-1"), ids);
    let stats = publisher.stats();
    assert_eq!(stats.rejected, 0);
    assert_eq!(stats.pending, 0);
    assert!(stats.connected);
    let files = std::fs::read_dir(spool.path()).unwrap().count();
    assert_eq!(files, 1, "only last_report_id stays in the spool");
    publisher.shutdown();
}

#[test]
fn malformed_report_is_rejected() {
    let pki = Pki::new();
    let broker = Broker::start(&pki);
    let fleet = start_fleet(&pki, &broker);

    let files = pki.client("cam-2");
    let tls = inferwatch::defender::client_config(&files).unwrap();
    let mut options = rumqttc::MqttOptions::new("cam-2", "127.0.0.1", broker.port);
    options
        .set_transport(rumqttc::Transport::tls_with_config(rumqttc::TlsConfiguration::Rustls(tls)));
    let (client, mut connection) = rumqttc::Client::new(options, 10);
    let topic = "$aws/things/cam-2/defender/metrics/json";
    client.subscribe(format!("{topic}/rejected"), rumqttc::QoS::AtLeastOnce).unwrap();
    // The number is a string, which the service drops silently; the peer rejects it.
    let malformed = r#"{"header":{"report_id":42,"version":"1.0"},"metrics":{},
        "custom_metrics":{"avg_inference_time":[{"number":"12.5"}]}}"#;
    let mut published = false;
    let mut response = None;
    let deadline = Instant::now() + Duration::from_secs(20);
    while response.is_none() && Instant::now() < deadline {
        match connection.recv_timeout(Duration::from_millis(500)) {
            Ok(Ok(rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_)))) if !published => {
                client.publish(topic, rumqttc::QoS::AtLeastOnce, false, malformed).unwrap();
                published = true;
            }
            Ok(Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p)))) => {
                response = Some(serde_json::from_slice::<Value>(&p.payload).unwrap());
            }
            _ => {}
        }
    }
    let response = response.expect("no response on /rejected within 20 s");
    assert_eq!(response["status"], "REJECTED");
    assert_eq!(response["thingName"], "cam-2");
    assert_eq!(response["reportId"], 42);
    assert_eq!(response["statusDetails"]["ErrorCode"], "InvalidPayload");
    let message = response["statusDetails"]["ErrorMessage"].as_str().unwrap();
    assert!(message.contains("custom_metrics.avg_inference_time[0].number"), "{message}");
    assert!(response["timestamp"].as_u64().unwrap() > 0);
    let logged = fleet.responses();
    assert!(
        logged.iter().any(|a| a["thing"] == "cam-2" && a["status"] == "REJECTED"),
        "{logged:?}"
    );
}

#[test]
fn client_without_certificate_is_refused() {
    let pki = Pki::new();
    let broker = Broker::start(&pki);
    inferwatch::defender::install_ring_provider();
    let mut roots = rustls::RootCertStore::empty();
    let ca = std::fs::read(pki.path("ca.pem")).unwrap();
    for cert in rustls_pemfile_certs(&ca) {
        roots.add(cert).unwrap();
    }
    let config =
        rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
    let mut options = rumqttc::MqttOptions::new("anonymous", "127.0.0.1", broker.port);
    options.set_transport(rumqttc::Transport::tls_with_config(rumqttc::TlsConfiguration::Rustls(
        Arc::new(config),
    )));
    let (_client, mut connection) = rumqttc::Client::new(options, 10);
    let mut outcome = None;
    let deadline = Instant::now() + Duration::from_secs(15);
    while outcome.is_none() && Instant::now() < deadline {
        match connection.recv_timeout(Duration::from_secs(1)) {
            Ok(Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(_)))) => outcome = Some(Ok(())),
            Ok(Err(error)) => outcome = Some(Err(error.to_string())),
            _ => {}
        }
    }
    let error = outcome
        .expect("no outcome within 15 s")
        .expect_err("the broker accepted a client without a certificate");
    assert!(!error.is_empty());
}

fn rustls_pemfile_certs(pem: &[u8]) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_slice_iter(pem).map(Result::unwrap).collect()
}

#[test]
fn broker_with_wrong_ca_is_refused() {
    let pki = Pki::new();
    let broker = Broker::start(&pki);
    let mut files = pki.client("cam-3");
    files.ca = pki.path("wrong-ca.pem");
    let spool = tempfile::tempdir().unwrap();
    let publisher = start_publisher(&broker, files, "cam-3", spool.path());
    let id = publisher.submit(DeviceMetrics::default(), latency_metric(5.0)).unwrap();
    assert!(
        wait_until(Duration::from_secs(15), || publisher.stats().last_error.is_some()),
        "no connection error within 15 s"
    );
    let stats = publisher.stats();
    let error = stats.last_error.unwrap();
    assert!(error.contains("UnknownIssuer") || error.contains("certificate"), "{error}");
    assert!(!stats.connected);
    assert_eq!(stats.accepted, 0);
    assert_eq!(stats.pending, 1, "the report waits in the spool");
    publisher.shutdown();
    let reopened = inferwatch::defender::Spool::open(spool.path(), 10).unwrap();
    assert_eq!(reopened.pending_ids(), vec![id]);
}

#[test]
fn reports_survive_broker_restart() {
    let pki = Pki::new();
    let mut broker = Broker::start(&pki);
    let fleet = start_fleet(&pki, &broker);
    let spool = tempfile::tempdir().unwrap();
    let publisher = start_publisher(&broker, pki.client("cam-4"), "cam-4", spool.path());

    let mut ids = Vec::new();
    for second in 0..12 {
        ids.push(
            publisher.submit(DeviceMetrics::default(), latency_metric(f64::from(second))).unwrap(),
        );
        if second == 3 {
            broker.kill();
        }
        if second == 7 {
            broker.restart();
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    assert!(
        wait_until(Duration::from_secs(60), || publisher.stats().accepted == ids.len() as u64),
        "not every report got a response within 60 s: {:?}",
        publisher.stats()
    );
    // Every id arrives once (copies sent again after a lost response are marked duplicate)
    // and in order.
    assert_eq!(accepted_ids(&fleet, "cam-4"), ids);
    let copies = fleet
        .responses()
        .iter()
        .filter(|a| a["thing"] == "cam-4" && a["duplicate"] == true)
        .count();
    eprintln!("{} reports, {copies} copies sent again, {:?}", ids.len(), publisher.stats());
    assert_eq!(publisher.stats().pending, 0);
    publisher.shutdown();
}

/// Reads `report_id=N` from the "report spooled" debug lines of `inferwatch run`.
fn spooled_ids(log: &str) -> Vec<u64> {
    log.lines()
        .filter(|l| l.contains("report spooled"))
        .filter_map(|l| l.split("report_id=").nth(1))
        .filter_map(|rest| rest.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok())
        .collect()
}

/// Starts `inferwatch run` reporting every second, configured by flags or, with
/// `config_file`, by a `[defender]` section.
fn start_agent(pki: &Pki, broker: &Broker, spool: &Path, thing: &str, config_file: bool) -> Child {
    let files = pki.client(thing);
    let mut command = Command::new(BIN);
    command.args(["run", "models/ppocr-cls/model.onnx", "--rate", "20", "--window", "10"]);
    if config_file {
        let path = pki.path(&format!("{thing}.toml"));
        let text = format!(
            "[defender]\nendpoint = \"127.0.0.1\"\nport = {}\nthing = \"{thing}\"\n\
             ca = \"ca.pem\"\ncert = \"{thing}.pem\"\nkey = \"{thing}.key\"\ninterval = 1\n\
             spool_dir = \"{}\"\n",
            broker.port,
            spool.display()
        );
        std::fs::write(&path, text).unwrap();
        command.arg("--config").arg(path);
    } else {
        command
            .args(["--endpoint", "127.0.0.1", "--mqtt-port", &broker.port.to_string()])
            .args(["--thing", thing, "--report-interval", "1"])
            .arg("--ca")
            .arg(&files.ca)
            .arg("--cert")
            .arg(&files.cert)
            .arg("--key")
            .arg(&files.key)
            .arg("--spool-dir")
            .arg(spool);
    }
    command
        .env("INFERWATCH_LOG", "inferwatch=debug,warn")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("failed to start inferwatch run")
}

fn kill_and_read_log(mut child: Child) -> String {
    let _ = child.kill();
    let _ = child.wait();
    let mut log = String::new();
    child.stderr.take().unwrap().read_to_string(&mut log).unwrap();
    log
}

#[test]
fn spool_resumes_after_publisher_restart() {
    let pki = Pki::new();
    let mut broker = Broker::start(&pki);
    let fleet = start_fleet(&pki, &broker);
    let spool = tempfile::tempdir().unwrap();

    let first = start_agent(&pki, &broker, spool.path(), "cam-5", false);
    assert!(
        wait_until(Duration::from_secs(60), || accepted_ids(&fleet, "cam-5").len() >= 2),
        "the agent's first reports were not accepted within 60 s"
    );
    broker.kill();
    let pending_files = || {
        std::fs::read_dir(spool.path())
            .unwrap()
            .filter(|e| {
                e.as_ref().is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".json"))
            })
            .count()
    };
    assert!(
        wait_until(Duration::from_secs(20), || pending_files() >= 3),
        "reports did not pile up in the spool while the broker was down"
    );
    let first_log = kill_and_read_log(first);
    let left_over = inferwatch::defender::Spool::open(spool.path(), 1000).unwrap().pending_ids();
    assert!(left_over.len() >= 3, "{left_over:?}");
    // A report spooled just before the kill may lack its log line: the spool has it.
    let mut first_ids = spooled_ids(&first_log);
    first_ids.extend(&left_over);
    first_ids.sort_unstable();
    first_ids.dedup();
    assert!(first_ids.len() >= 4, "{first_log}");

    broker.restart();
    let second = start_agent(&pki, &broker, spool.path(), "cam-5", true);
    let all_first_arrived = || {
        let accepted = accepted_ids(&fleet, "cam-5");
        first_ids.iter().all(|id| accepted.contains(id))
    };
    let done = wait_until(Duration::from_secs(60), all_first_arrived);
    let second_log = kill_and_read_log(second);
    assert!(done, "reports of the killed process were not delivered: {second_log}");

    let accepted = accepted_ids(&fleet, "cam-5");
    assert!(accepted.windows(2).all(|w| w[0] < w[1]), "out of order: {accepted:?}");
    let second_ids = spooled_ids(&second_log);
    assert!(
        second_ids.iter().all(|id| id > first_ids.last().unwrap()),
        "the restarted process reused an id: {first_ids:?} then {second_ids:?}"
    );
}

#[test]
fn thing_names_with_topic_characters_rejected() {
    for thing in ["cam/1", "cam#", "cam+1"] {
        let output = Command::new(BIN)
            .args(["run", "models/ppocr-cls/model.onnx", "--duration", "1"])
            .args(["--endpoint", "127.0.0.1", "--thing", thing])
            .args(["--ca", "ca.pem", "--cert", "c.pem", "--key", "k.pem"])
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{thing}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(&format!("invalid thing name {thing:?}")), "{stderr}");
        assert!(stderr.contains("would change the MQTT topic"), "{stderr}");
    }
}

#[test]
fn invalid_report_gap_rejected() {
    for (args, message) in [
        (["--min-report-gap", "inf"].as_slice(), "invalid --min-report-gap inf (the flags)"),
        (["--min-report-gap", "-0.5"].as_slice(), "invalid --min-report-gap -0.5 (the flags)"),
        (["--min-report-gap", "1e9"].as_slice(), "invalid --min-report-gap 1000000000 (the flags)"),
    ] {
        let output = Command::new(BIN)
            .args(["run", "models/ppocr-cls/model.onnx", "--duration", "1"])
            .args(["--endpoint", "127.0.0.1", "--thing", "cam-1"])
            .args(["--ca", "ca.pem", "--cert", "c.pem", "--key", "k.pem"])
            .args(args)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(message), "{stderr}");
        assert!(
            stderr.contains("expected 0 or a positive number of seconds below 1e9"),
            "{stderr}"
        );
    }
}

/// A gap longer than the report interval lets the spool grow by a report every few intervals
/// until it drops the oldest ones, even with the broker up.
#[test]
fn report_gap_over_interval_rejected() {
    let output = Command::new(BIN)
        .args(["run", "models/ppocr-cls/model.onnx", "--duration", "1"])
        .args(["--endpoint", "127.0.0.1", "--thing", "cam-1"])
        .args(["--ca", "ca.pem", "--cert", "c.pem", "--key", "k.pem"])
        .args(["--report-interval", "1", "--min-report-gap", "3"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--min-report-gap 3 is longer than the report interval of 1 s"),
        "{stderr}"
    );
    assert!(stderr.contains("(the flags)"), "{stderr}");
}

/// A client subscribed to every thing's alarm topic.
struct AlarmWatcher {
    // Kept so that the connection stays open.
    _client: rumqttc::Client,
    connection: rumqttc::Connection,
}

impl AlarmWatcher {
    fn subscribe(pki: &Pki, broker: &Broker) -> AlarmWatcher {
        let files = pki.client("watcher");
        let tls = inferwatch::defender::client_config(&files).unwrap();
        let mut options = rumqttc::MqttOptions::new("watcher", "127.0.0.1", broker.port);
        options.set_transport(rumqttc::Transport::tls_with_config(
            rumqttc::TlsConfiguration::Rustls(tls),
        ));
        let (client, mut connection) = rumqttc::Client::new(options, 10);
        client.subscribe("inferwatch/things/+/alarms", rumqttc::QoS::AtLeastOnce).unwrap();
        let subscribed = (0..40).any(|_| {
            matches!(
                connection.recv_timeout(Duration::from_millis(500)),
                Ok(Ok(rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_))))
            )
        });
        assert!(subscribed, "no SUBACK within 20 s");
        AlarmWatcher { _client: client, connection }
    }

    /// Returns the topic and JSON payload of the next alarm, waiting up to 20 s.
    fn next(&mut self) -> Option<(String, Value)> {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p)))) =
                self.connection.recv_timeout(Duration::from_millis(500))
            {
                return Some((p.topic.clone(), serde_json::from_slice(&p.payload).unwrap()));
            }
        }
        None
    }
}

#[test]
fn alarm_reaches_alarm_topic() {
    let pki = Pki::new();
    let broker = Broker::start(&pki);
    let mut watcher = AlarmWatcher::subscribe(&pki, &broker);

    let spool = tempfile::tempdir().unwrap();
    let publisher = start_publisher(&broker, pki.client("cam-6"), "cam-6", spool.path());
    let alarm = serde_json::json!({"behavior": "gpu_load_per_inference", "event": "in-alarm"});
    publisher.publish_alarm(&alarm).unwrap();
    let (topic, payload) = watcher.next().expect("no alarm within 20 s");
    assert_eq!(topic, "inferwatch/things/cam-6/alarms");
    assert_eq!(payload, alarm);
    assert_eq!(publisher.stats().alarms_sent, 1);
    publisher.shutdown();
}

#[test]
fn fleet_profile_publishes_alarm_of_thing() {
    let pki = Pki::new();
    let broker = Broker::start(&pki);
    let mut watcher = AlarmWatcher::subscribe(&pki, &broker);
    let fleet = start_fleet_with(&pki, &broker, &["--profile", "crypto-mining"]);

    let spool = tempfile::tempdir().unwrap();
    let publisher = start_publisher(&broker, pki.client("cam-7"), "cam-7", spool.path());
    // crypto-mining is normal below 40 % GPU load per inference and below 100 ms per
    // inference: only the inference time is violated, and one datapoint raises the alarm.
    let mut custom = latency_metric(180.0);
    custom.insert("gpu_load_per_inference".to_owned(), CustomMetric::Number(20.0));
    let id = publisher.submit(DeviceMetrics::default(), custom).unwrap();
    assert!(
        wait_until(Duration::from_secs(20), || accepted_ids(&fleet, "cam-7") == [id]),
        "the fleet did not accept report {id}: {:?}",
        fleet.responses()
    );

    let (topic, alarm) = watcher.next().expect("no alarm within 20 s");
    assert_eq!(topic, "inferwatch/things/cam-7/alarms");
    assert_eq!(alarm["kind"], "behavior");
    assert_eq!(alarm["behavior"], "avg_inference_time_behavior");
    assert_eq!(alarm["metric"], "avg_inference_time");
    assert_eq!(alarm["state"], "in-alarm");
    assert_eq!(alarm["operator"], "less-than");
    assert_eq!(alarm["value"], 180.0);
    assert_eq!(alarm["threshold"], 100.0);
    publisher.shutdown();
}

#[test]
fn fleet_rejects_missing_profile_file() {
    let output = Command::new(BIN)
        .args(["fleet", "--profile", "/nonexistent/profile.json"])
        .args(["--ca", "ca.pem", "--cert", "c.pem", "--key", "k.pem"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--profile"), "{stderr}");
    assert!(stderr.contains("/nonexistent/profile.json"), "{stderr}");
}

#[test]
fn run_profile_publishes_alarms_of_thing() {
    let pki = Pki::new();
    let broker = Broker::start(&pki);
    let mut watcher = AlarmWatcher::subscribe(&pki, &broker);
    let files = pki.client("cam-8");
    let spool = tempfile::tempdir().unwrap();
    let feedback = tempfile::tempdir().unwrap();
    // 85 % GPU load per inference and 180 ms per inference violate both behaviors.
    std::fs::write(feedback.path().join("gpu_load_fb"), "85\n").unwrap();
    std::fs::write(feedback.path().join("gpu_inference_fb"), "180\n").unwrap();
    let output = Command::new(BIN)
        .args(["run", "models/ppocr-cls/model.onnx", "--rate", "20", "--duration", "4"])
        .args(["--profile", "crypto-mining", "--eval-period", "1", "--window", "60"])
        .arg("--feedback-dir")
        .arg(feedback.path())
        .args(["--endpoint", "127.0.0.1", "--mqtt-port", &broker.port.to_string()])
        .args(["--thing", "cam-8"])
        .arg("--ca")
        .arg(&files.ca)
        .arg("--cert")
        .arg(&files.cert)
        .arg("--key")
        .arg(&files.key)
        .arg("--spool-dir")
        .arg(spool.path())
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));

    // Other tests may run a miner at the same time, which adds indicator alarms: look at the
    // profile's behaviors only.
    let mut behaviors = Vec::new();
    while behaviors.len() < 2 {
        let (topic, alarm) = watcher.next().expect("fewer than two behavior alarms within 20 s");
        assert_eq!(topic, "inferwatch/things/cam-8/alarms");
        if alarm["kind"] == "behavior" {
            assert_eq!(alarm["state"], "in-alarm", "{alarm}");
            behaviors.push(alarm["behavior"].as_str().unwrap().to_owned());
        }
    }
    behaviors.sort_unstable();
    assert_eq!(behaviors, ["avg_inference_time_behavior", "gpu_load_per_inference_behavior"]);
}

/// A report as the test peer received it.
#[derive(Clone, Debug)]
struct Arrival {
    at: Instant,
    report_id: u64,
}

/// A stand-in for the Device Defender service that records when each report of one thing
/// arrives and responds on `/accepted`, or on `/rejected` with `ErrorCode` "Throttled" for
/// the first `throttle_first` arrivals. It subscribes again after every reconnect.
struct ReportPeer {
    arrivals: Arc<Mutex<Vec<Arrival>>>,
    subscribed: Arc<Mutex<bool>>,
}

/// Returns the response topic suffix and document for a report: a throttling rejection, as
/// the peer sends for its first arrivals, or an acceptance.
fn peer_response(thing: &str, report_id: u64, throttled: bool) -> (&'static str, Value) {
    if throttled {
        let details = serde_json::json!({
            "ErrorCode": "Throttled",
            "ErrorMessage": "reports of this thing arrive too often",
        });
        let response = serde_json::json!({
            "thingName": thing,
            "reportId": report_id,
            "status": "REJECTED",
            "statusDetails": details,
        });
        ("rejected", response)
    } else {
        let response = serde_json::json!({
            "thingName": thing,
            "reportId": report_id,
            "status": "ACCEPTED",
        });
        ("accepted", response)
    }
}

impl ReportPeer {
    fn start(pki: &Pki, broker: &Broker, thing: &str, throttle_first: usize) -> ReportPeer {
        let files = pki.client("report-peer");
        let tls = inferwatch::defender::client_config(&files).unwrap();
        let mut options = rumqttc::MqttOptions::new("report-peer", "127.0.0.1", broker.port);
        options.set_transport(rumqttc::Transport::tls_with_config(
            rumqttc::TlsConfiguration::Rustls(tls),
        ));
        let (client, mut connection) = rumqttc::Client::new(options, 100);
        let topic = format!("$aws/things/{thing}/defender/metrics/json");
        let arrivals = Arc::new(Mutex::new(Vec::new()));
        let subscribed = Arc::new(Mutex::new(false));
        let peer = ReportPeer { arrivals: arrivals.clone(), subscribed: subscribed.clone() };
        let thing = thing.to_owned();

        std::thread::spawn(move || {
            for event in connection.iter() {
                match event {
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(_))) => {
                        client.subscribe(topic.as_str(), rumqttc::QoS::AtLeastOnce).unwrap();
                    }
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_))) => {
                        *subscribed.lock().unwrap() = true;
                    }
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p)))
                        if p.topic == topic =>
                    {
                        let at = Instant::now();
                        let report: Value = serde_json::from_slice(&p.payload).unwrap();
                        let report_id = report["header"]["report_id"].as_u64().unwrap();
                        let count = {
                            let mut arrivals = arrivals.lock().unwrap();
                            arrivals.push(Arrival { at, report_id });
                            arrivals.len()
                        };
                        let (suffix, response) =
                            peer_response(&thing, report_id, count <= throttle_first);
                        let payload = serde_json::to_vec(&response).unwrap();
                        let reply = format!("{topic}/{suffix}");
                        client.publish(reply, rumqttc::QoS::AtLeastOnce, false, payload).unwrap();
                    }
                    Ok(_) => {}
                    Err(_) => {
                        *subscribed.lock().unwrap() = false;
                        std::thread::sleep(Duration::from_millis(100));
                    }
                }
            }
        });

        assert!(
            wait_until(Duration::from_secs(20), || peer.is_subscribed()),
            "the report peer did not subscribe within 20 s"
        );
        peer
    }

    fn is_subscribed(&self) -> bool {
        *self.subscribed.lock().unwrap()
    }

    fn arrivals(&self) -> Vec<Arrival> {
        self.arrivals.lock().unwrap().clone()
    }
}

/// Report ids in arrival order, each id only at its first arrival.
fn first_arrivals(arrivals: &[Arrival]) -> Vec<u64> {
    let mut ids: Vec<u64> = Vec::new();
    for arrival in arrivals {
        if !ids.contains(&arrival.report_id) {
            ids.push(arrival.report_id);
        }
    }
    ids
}

/// Returns the shortest time between two consecutive arrivals.
fn shortest_gap(arrivals: &[Arrival]) -> Duration {
    arrivals.windows(2).map(|w| w[1].at - w[0].at).min().unwrap()
}

/// Arrival times on 127.0.0.1 can come closer together than the publish times by the
/// difference in transit delay of two messages, a few milliseconds at most.
const TRANSIT_JITTER: Duration = Duration::from_millis(25);

#[test]
fn backlog_after_outage_is_paced() {
    let pki = Pki::new();
    let mut broker = Broker::start(&pki);
    let peer = ReportPeer::start(&pki, &broker, "cam-8", 0);
    let spool = tempfile::tempdir().unwrap();
    let gap = Duration::from_millis(400);
    let mut config = PublisherConfig::new(
        "127.0.0.1",
        broker.port,
        ThingName::new("cam-8").unwrap(),
        pki.client("cam-8"),
        spool.path(),
    );
    config.response_timeout = Duration::from_secs(2);
    config.reconnect_min = Duration::from_millis(100);
    config.reconnect_max = Duration::from_millis(500);
    config.min_report_gap = gap;
    let publisher = Publisher::start(config).unwrap();

    let mut ids = vec![publisher.submit(DeviceMetrics::default(), latency_metric(1.0)).unwrap()];
    assert!(
        wait_until(Duration::from_secs(20), || publisher.stats().accepted == 1),
        "the first report was not accepted within 20 s: {:?}",
        publisher.stats()
    );
    broker.kill();
    assert!(wait_until(Duration::from_secs(10), || !publisher.stats().connected));
    for i in 0..5 {
        ids.push(publisher.submit(DeviceMetrics::default(), latency_metric(f64::from(i))).unwrap());
    }
    assert_eq!(publisher.stats().pending, 5, "the backlog waits in the spool");
    broker.restart();

    assert!(
        wait_until(Duration::from_secs(60), || publisher.stats().accepted == 6),
        "the backlog was not accepted within 60 s: {:?}",
        publisher.stats()
    );
    let arrivals = peer.arrivals();
    // A report the peer missed while it subscribed again is sent again after the response
    // timeout, so an id may arrive twice, but the first arrivals are every id once, in order.
    assert_eq!(first_arrivals(&arrivals), ids);
    let shortest = shortest_gap(&arrivals);
    assert!(shortest + TRANSIT_JITTER >= gap, "reports {shortest:?} apart: {arrivals:?}");
    let stats = publisher.stats();
    assert_eq!(stats.pending, 0);
    assert_eq!(stats.rejected, 0);
    assert_eq!(stats.throttled, 0);
    publisher.shutdown();
}

#[test]
fn throttled_report_sent_again_after_gap() {
    let pki = Pki::new();
    let broker = Broker::start(&pki);
    let peer = ReportPeer::start(&pki, &broker, "cam-9", 2);
    let spool = tempfile::tempdir().unwrap();
    let gap = Duration::from_millis(300);
    let mut config = PublisherConfig::new(
        "127.0.0.1",
        broker.port,
        ThingName::new("cam-9").unwrap(),
        pki.client("cam-9"),
        spool.path(),
    );
    config.response_timeout = Duration::from_secs(5);
    config.min_report_gap = gap;
    let publisher = Publisher::start(config).unwrap();

    let ids: Vec<u64> = (0..2)
        .map(|i| publisher.submit(DeviceMetrics::default(), latency_metric(f64::from(i))).unwrap())
        .collect();
    assert!(
        wait_until(Duration::from_secs(20), || publisher.stats().accepted == 2),
        "the throttled report was not accepted within 20 s: {:?}",
        publisher.stats()
    );
    let arrivals = peer.arrivals();
    let arrived: Vec<u64> = arrivals.iter().map(|a| a.report_id).collect();
    // The first report is throttled twice, kept, and sent again after the gap each time.
    assert_eq!(arrived, vec![ids[0], ids[0], ids[0], ids[1]]);
    let shortest = shortest_gap(&arrivals);
    assert!(shortest + TRANSIT_JITTER >= gap, "reports {shortest:?} apart: {arrivals:?}");
    let stats = publisher.stats();
    assert_eq!(stats.throttled, 2);
    assert_eq!(stats.rejected, 0);
    assert_eq!(stats.resent, 2);
    assert_eq!(stats.pending, 0);
    assert_eq!(stats.last_rejection, None);
    publisher.shutdown();
}
