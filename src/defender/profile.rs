//! Security profiles evaluated on received reports, one state machine set per thing.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::detect::{AlarmEvent, Evaluator, MetricValue, Profile};

use super::report::{CustomMetric, PortList, Report};

/// Returns the metrics that a report gives a security profile, by the names behaviors use.
///
/// Custom metrics keep their names. The `aws:` device metrics come from the standard
/// metrics: the listening port counts and lists, the number of established TCP connections,
/// their remote addresses as `aws:destination-ip-addresses`, and the byte and packet counts
/// since the previous report as `aws:all-bytes-in` and the like. A group the report leaves
/// out gives no metric, so its behaviors get no datapoint.
pub fn report_metrics(report: &Report) -> BTreeMap<String, MetricValue> {
    let mut metrics = BTreeMap::new();
    for (name, metric) in &report.custom_metrics {
        let value = match metric {
            CustomMetric::Number(number) => MetricValue::Number(*number),
            CustomMetric::NumberList(numbers) => MetricValue::Numbers(numbers.clone()),
            CustomMetric::StringList(strings) => MetricValue::Strings(strings.clone()),
            CustomMetric::IpList(addresses) => MetricValue::Addresses(addresses.clone()),
        };
        metrics.insert(name.clone(), value);
    }
    let device = &report.metrics;
    let ports = |metrics: &mut BTreeMap<String, MetricValue>, list: &PortList, protocol: &str| {
        let numbers: BTreeSet<u16> = list.ports.iter().map(|p| p.port).collect();
        metrics.insert(
            format!("aws:num-listening-{protocol}-ports"),
            MetricValue::Number(list.total as f64),
        );
        metrics.insert(
            format!("aws:listening-{protocol}-ports"),
            MetricValue::Ports(numbers.into_iter().collect()),
        );
    };
    if let Some(list) = &device.listening_tcp_ports {
        ports(&mut metrics, list, "tcp");
    }
    if let Some(list) = &device.listening_udp_ports {
        ports(&mut metrics, list, "udp");
    }
    if let Some(stats) = &device.network_stats {
        for (name, count) in [
            ("aws:all-bytes-in", stats.bytes_in),
            ("aws:all-bytes-out", stats.bytes_out),
            ("aws:all-packets-in", stats.packets_in),
            ("aws:all-packets-out", stats.packets_out),
        ] {
            metrics.insert(name.to_owned(), MetricValue::Number(count as f64));
        }
    }
    if let Some(list) = &device.tcp_connections {
        metrics.insert(
            "aws:num-established-tcp-connections".to_owned(),
            MetricValue::Number(list.total as f64),
        );
        let addresses: BTreeSet<IpAddr> =
            list.connections.iter().map(|c| c.remote_addr.ip()).collect();
        metrics.insert(
            "aws:destination-ip-addresses".to_owned(),
            MetricValue::Addresses(addresses.into_iter().collect()),
        );
    }
    metrics
}

/// Evaluates one security profile for every thing that reports, one datapoint per report,
/// as Device Defender does in the cloud.
///
/// Each thing gets its own [`Evaluator`], created at its first report. A behavior whose
/// metric the report lacks gets no datapoint. After a minute without one, a raised alarm is
/// invalidated at the thing's next report.
///
/// NOTE: datapoint times are arrival times at the fleet, so a backlog of spooled reports
/// sent after an outage falls into one `durationSeconds` window, where the reports' own
/// spacing would spread it over several.
#[derive(Debug)]
pub struct FleetProfile {
    profile: Profile,
    things: HashMap<String, Evaluator>,
    started: Instant,
}

impl FleetProfile {
    /// Evaluates `profile` for every thing.
    pub fn new(profile: Profile) -> Self {
        FleetProfile { profile, things: HashMap::new(), started: Instant::now() }
    }

    /// Evaluates one report of `thing` and returns the alarm events it caused.
    pub fn evaluate(&mut self, thing: &str, report: &Report) -> Vec<AlarmEvent> {
        let evaluator =
            self.things.entry(thing.to_owned()).or_insert_with(|| Evaluator::new(&self.profile));
        let now_nanos = self.started.elapsed().as_nanos() as u64;
        let wall_ms =
            SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        let mut metrics = report_metrics(report);
        evaluator.evaluate(now_nanos, wall_ms, &mut metrics)
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use super::*;
    use crate::defender::report::{
        ConnectionList, DeviceMetrics, ListeningPort, NetworkStats, TcpConnection,
    };
    use crate::detect::AlarmState;

    fn report(custom: &[(&str, f64)], metrics: DeviceMetrics) -> Report {
        Report {
            report_id: 1,
            metrics,
            custom_metrics: custom
                .iter()
                .map(|(name, value)| ((*name).to_owned(), CustomMetric::Number(*value)))
                .collect(),
        }
    }

    #[test]
    fn device_metrics_become_aws_metrics() {
        let address: SocketAddr = "203.0.113.7:3333".parse().unwrap();
        let metrics = DeviceMetrics {
            listening_tcp_ports: Some(PortList {
                ports: vec![
                    ListeningPort { interface: None, port: 22 },
                    ListeningPort { interface: Some("eth0".into()), port: 22 },
                    ListeningPort { interface: None, port: 8080 },
                ],
                total: 5,
            }),
            listening_udp_ports: None,
            network_stats: Some(NetworkStats {
                bytes_in: 1000,
                bytes_out: 200,
                packets_in: 10,
                packets_out: 3,
            }),
            tcp_connections: Some(ConnectionList {
                connections: vec![
                    TcpConnection {
                        local_interface: None,
                        local_port: 40000,
                        remote_addr: address,
                    },
                    TcpConnection {
                        local_interface: None,
                        local_port: 40001,
                        remote_addr: address,
                    },
                ],
                total: 2,
            }),
        };
        let values = report_metrics(&report(&[("avg_inference_time", 12.5)], metrics));
        assert_eq!(values["avg_inference_time"], MetricValue::Number(12.5));
        assert_eq!(values["aws:num-listening-tcp-ports"], MetricValue::Number(5.0));
        assert_eq!(values["aws:listening-tcp-ports"], MetricValue::Ports(vec![22, 8080]));
        assert!(!values.contains_key("aws:num-listening-udp-ports"));
        assert_eq!(values["aws:all-bytes-in"], MetricValue::Number(1000.0));
        assert_eq!(values["aws:all-packets-out"], MetricValue::Number(3.0));
        assert_eq!(values["aws:num-established-tcp-connections"], MetricValue::Number(2.0));
        assert_eq!(
            values["aws:destination-ip-addresses"],
            MetricValue::Addresses(vec![address.ip()])
        );
    }

    #[test]
    fn each_thing_has_its_own_alarms() {
        let mut fleet = FleetProfile::new(Profile::load("crypto-mining").unwrap());
        let slow = report(
            &[("avg_inference_time", 180.0), ("gpu_load_per_inference", 20.0)],
            DeviceMetrics::default(),
        );
        let fast = report(
            &[("avg_inference_time", 40.0), ("gpu_load_per_inference", 20.0)],
            DeviceMetrics::default(),
        );
        let events = fleet.evaluate("cam-1", &slow);
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0].behavior, "avg_inference_time_behavior");
        assert_eq!(events[0].state, AlarmState::InAlarm);
        assert_eq!(events[0].value, Some(MetricValue::Number(180.0)));
        assert!(fleet.evaluate("cam-2", &fast).is_empty());
        // The 300 s average of cam-1 is (180 + 40) / 2 = 110, still above 100.
        assert!(fleet.evaluate("cam-1", &fast).is_empty());
        let cleared = fleet.evaluate("cam-1", &fast);
        assert_eq!(cleared.len(), 1, "{cleared:?}");
        assert_eq!(cleared[0].state, AlarmState::AlarmCleared);
    }
}
