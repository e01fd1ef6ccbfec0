"""Monitor exports its window over OTLP/HTTP to a collector, here a receiver in the test."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator

import pytest

import inferwatch


class Receiver(http.server.ThreadingHTTPServer):
    """An OTLP/HTTP endpoint on 127.0.0.1 that stores each request and returns an empty
    ExportMetricsServiceResponse (an empty protobuf message)."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), ReceiverHandler)
        self.requests: list[tuple[str, str, bytes]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class ReceiverHandler(http.server.BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:  # noqa: N802 (the name http.server calls)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.requests.append((self.path, self.headers["Content-Type"], body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


def test_flush_sends_window_metrics(receiver: Receiver) -> None:
    monitor = inferwatch.Monitor(
        proc_cpu=False,
        otlp_endpoint=receiver.url,
        export_interval=3600,
        service_name="ocr-edge",
    )
    assert monitor.otlp_endpoint == f"{receiver.url}/v1/metrics"
    for _ in range(5):
        monitor.record(0.002)
    monitor.flush()
    assert len(receiver.requests) == 1
    path, content_type, body = receiver.requests[0]
    assert path == "/v1/metrics"
    assert content_type == "application/x-protobuf"
    # Protobuf stores strings as raw UTF-8, so names and attribute values appear as is.
    assert b"inferwatch.inference.duration" in body
    assert b"ocr-edge" in body
    assert monitor.export_counts() == {"exported": 1, "failed": 0}


def test_flush_to_closed_port_raises_export_error() -> None:
    closed = Receiver()
    url = closed.url
    closed.server_close()
    monitor = inferwatch.Monitor(proc_cpu=False, otlp_endpoint=url, export_interval=3600)
    monitor.record(0.001)
    with pytest.raises(inferwatch.ExportError) as error:
        monitor.flush()
    assert str(error.value).startswith(f"failed to flush OpenTelemetry metrics to {url}/v1/metrics")
    assert monitor.export_counts()["failed"] == 1


def test_flush_without_exporter_raises_config_error() -> None:
    monitor = inferwatch.Monitor(proc_cpu=False)
    assert monitor.otlp_endpoint is None
    assert monitor.export_counts() == {"exported": 0, "failed": 0}
    with pytest.raises(inferwatch.ConfigError, match="flush\\(\\) needs an exporter"):
        monitor.flush()


def test_unknown_protocol_raises_config_error() -> None:
    with pytest.raises(inferwatch.ConfigError) as error:
        inferwatch.Monitor(otlp_endpoint="http://127.0.0.1:4318", otlp_protocol="http/json")
    assert str(error.value) == (
        'invalid otlp_protocol in Monitor(): unsupported OTLP protocol "http/json": '
        "use grpc or http/protobuf"
    )
