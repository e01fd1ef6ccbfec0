//! OTLP metric receivers on 127.0.0.1 for the export tests: a gRPC server built on the
//! metrics service of `opentelemetry-proto`, and an HTTP/1.1 server over `std::net` that
//! decodes `POST /v1/metrics` bodies. Both store every request they receive.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::metrics::v1::number_data_point::Value as NumberValue;
use opentelemetry_proto::tonic::metrics::v1::{HistogramDataPoint, Metric, NumberDataPoint};
use prost::Message;

/// A received export: its headers (lowercase names) and its decoded body.
#[derive(Clone, Debug)]
pub struct Received {
    pub headers: Vec<(String, String)>,
    pub request: ExportMetricsServiceRequest,
}

pub type Inbox = Arc<Mutex<Vec<Received>>>;

/// Waits up to `timeout` for `inbox` to hold a request that satisfies `accept`, and
/// returns the last such request.
pub fn wait_for(
    inbox: &Inbox,
    timeout: Duration,
    accept: impl Fn(&Received) -> bool,
) -> Option<Received> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(found) = inbox.lock().unwrap().iter().rev().find(|r| accept(r)).cloned() {
            return Some(found);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Returns a port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

// ---- HTTP ----

/// An HTTP/1.1 OTLP receiver on its own thread; it stops when the test process ends.
pub struct HttpReceiver {
    pub addr: SocketAddr,
    pub inbox: Inbox,
}

impl HttpReceiver {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let inbox: Inbox = Arc::default();
        let store = inbox.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let store = store.clone();
                std::thread::spawn(move || serve_http(stream, &store));
            }
        });
        HttpReceiver { addr, inbox }
    }
}

/// Serves the requests of one keep-alive connection.
fn serve_http(stream: TcpStream, inbox: &Inbox) {
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
            }
        }
        let length: usize = headers
            .iter()
            .find(|(name, _)| name == "content-length")
            .map_or(0, |(_, value)| value.parse().unwrap());
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let status = if !request_line.starts_with("POST /v1/metrics ") {
            "404 Not Found"
        } else {
            match ExportMetricsServiceRequest::decode(body.as_slice()) {
                Ok(request) => {
                    inbox.lock().unwrap().push(Received { headers, request });
                    "200 OK"
                }
                Err(_) => "400 Bad Request",
            }
        };
        let response = ExportMetricsServiceResponse::default().encode_to_vec();
        let head = format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/x-protobuf\r\ncontent-length: {}\r\n\r\n",
            response.len()
        );
        if writer.write_all(head.as_bytes()).is_err() || writer.write_all(&response).is_err() {
            return;
        }
    }
}

// ---- gRPC ----

struct GrpcService {
    inbox: Inbox,
}

#[tonic::async_trait]
impl MetricsService for GrpcService {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        let headers = request
            .metadata()
            .iter()
            .filter_map(|entry| match entry {
                tonic::metadata::KeyAndValueRef::Ascii(key, value) => {
                    Some((key.as_str().to_owned(), value.to_str().unwrap_or("").to_owned()))
                }
                tonic::metadata::KeyAndValueRef::Binary(..) => None,
            })
            .collect();
        self.inbox.lock().unwrap().push(Received { headers, request: request.into_inner() });
        Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
    }
}

/// A gRPC OTLP receiver on a Tokio runtime of its own; dropping it stops the server.
pub struct GrpcReceiver {
    pub addr: SocketAddr,
    pub inbox: Inbox,
    runtime: Option<tokio::runtime::Runtime>,
}

impl GrpcReceiver {
    /// Starts the server on `port` of 127.0.0.1 (0 for any free port).
    pub fn start(port: u16) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let inbox: Inbox = Arc::default();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind(("127.0.0.1", port)))
            .expect("the gRPC receiver port is taken");
        let addr = listener.local_addr().unwrap();
        let service = MetricsServiceServer::new(GrpcService { inbox: inbox.clone() });
        runtime.spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
        );
        GrpcReceiver { addr, inbox, runtime: Some(runtime) }
    }
}

impl Drop for GrpcReceiver {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(Duration::from_secs(1));
        }
    }
}

// ---- reading requests ----

/// Returns the metric `name` of the request, if present.
pub fn metric<'a>(request: &'a ExportMetricsServiceRequest, name: &str) -> Option<&'a Metric> {
    request
        .resource_metrics
        .iter()
        .flat_map(|r| &r.scope_metrics)
        .flat_map(|s| &s.metrics)
        .find(|m| m.name == name)
}

/// Returns the string value of resource attribute `key`.
pub fn resource_attribute(request: &ExportMetricsServiceRequest, key: &str) -> Option<String> {
    let resource = request.resource_metrics.first()?.resource.as_ref()?;
    string_attribute(&resource.attributes, key)
}

pub fn string_attribute(attributes: &[KeyValue], key: &str) -> Option<String> {
    attributes.iter().find(|kv| kv.key == key).and_then(|kv| match &kv.value {
        Some(value) => match &value.value {
            Some(AnyValue::StringValue(text)) => Some(text.clone()),
            _ => None,
        },
        None => None,
    })
}

/// Returns the single histogram data point of `metric`.
pub fn histogram_point(metric: &Metric) -> &HistogramDataPoint {
    match &metric.data {
        Some(Data::Histogram(histogram)) => {
            assert_eq!(histogram.data_points.len(), 1, "{} has one series", metric.name);
            &histogram.data_points[0]
        }
        other => panic!("{} is not a histogram: {other:?}", metric.name),
    }
}

/// Returns the data points of a gauge or sum.
pub fn number_points(metric: &Metric) -> &[NumberDataPoint] {
    match &metric.data {
        Some(Data::Gauge(gauge)) => &gauge.data_points,
        Some(Data::Sum(sum)) => &sum.data_points,
        other => panic!("{} is not a gauge or sum: {other:?}", metric.name),
    }
}

/// Returns a number data point's value as f64.
pub fn number_value(point: &NumberDataPoint) -> f64 {
    match point.value {
        Some(NumberValue::AsDouble(value)) => value,
        Some(NumberValue::AsInt(value)) => value as f64,
        None => panic!("data point without a value"),
    }
}

/// Returns the histogram count of `inferwatch.inference.duration` in `received`, or 0.
pub fn duration_count(received: &Received) -> u64 {
    metric(&received.request, "inferwatch.inference.duration")
        .map_or(0, |m| histogram_point(m).count)
}
