//! Metric values handed to the evaluator, and the sources that provide them.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use serde::Serialize;

/// One datapoint of one metric, in the shapes that Device Defender metrics take.
///
/// Counters (`aws:all-bytes-in` and the like) are passed as the delta since the previous
/// datapoint, so a `durationSeconds` window sums them.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum MetricValue {
    /// A number: a custom `number` metric, a count or a counter delta.
    Number(f64),
    /// A list of ports, as `aws:listening-tcp-ports` reports them.
    Ports(Vec<u16>),
    /// A list of IP addresses, as `aws:destination-ip-addresses` reports them.
    Addresses(Vec<IpAddr>),
    /// A custom `number_list` metric.
    Numbers(Vec<f64>),
    /// A custom `string_list` metric.
    Strings(Vec<String>),
}

/// Provides the current value of metrics by name, one datapoint per evaluation period.
///
/// The detector asks its sources in order and takes the first value it gets. A source
/// returns `None` for a metric it does not provide or has no value for right now.
///
/// Sources of the device-side `aws:` metrics (listening ports, established connections,
/// byte and packet counters, destination addresses) plug in here: implement this trait
/// over the `/proc/net` readers and add the source with
/// [`DetectorBuilder::metric_source`](crate::detect::DetectorBuilder::metric_source).
pub trait MetricSource: Send {
    /// Returns the value of `name` for the current datapoint.
    fn metric(&mut self, name: &str) -> Option<MetricValue>;
}

impl MetricSource for HashMap<String, MetricValue> {
    fn metric(&mut self, name: &str) -> Option<MetricValue> {
        self.get(name).cloned()
    }
}

impl MetricSource for BTreeMap<String, MetricValue> {
    fn metric(&mut self, name: &str) -> Option<MetricValue> {
        self.get(name).cloned()
    }
}

impl<F> MetricSource for F
where
    F: FnMut(&str) -> Option<MetricValue> + Send,
{
    fn metric(&mut self, name: &str) -> Option<MetricValue> {
        self(name)
    }
}
