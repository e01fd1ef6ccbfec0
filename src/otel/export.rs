//! The OTLP exporter wrapped to count exports and to log failures once per streak.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::Temporality;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;

/// Counts of export attempts since the exporter started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExportCounts {
    /// Exports the collector accepted.
    pub exported: u64,
    /// Exports that failed (collector unreachable, rejected, timed out).
    pub failed: u64,
}

/// The counters shared between the exporter and its handle.
#[derive(Debug, Default)]
pub(crate) struct ExportCounters {
    exported: AtomicU64,
    failed: AtomicU64,
    /// Failures since the last success.
    streak: AtomicU64,
}

impl ExportCounters {
    pub(crate) fn get(&self) -> ExportCounts {
        ExportCounts {
            exported: self.exported.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
        }
    }

    fn count(&self, result: &OTelSdkResult, endpoint: &str) {
        match result {
            Ok(()) => {
                self.exported.fetch_add(1, Ordering::Relaxed);
                let streak = self.streak.swap(0, Ordering::Relaxed);
                if streak > 0 {
                    tracing::info!(endpoint, failed = streak, "OTLP export recovered");
                }
            }
            Err(error) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                if self.streak.fetch_add(1, Ordering::Relaxed) == 0 {
                    tracing::warn!(
                        endpoint,
                        %error,
                        "OTLP export failed; later failures are counted, not logged, until one \
                         succeeds"
                    );
                }
            }
        }
    }
}

/// An OTLP metric exporter that counts its results and, for gRPC, runs the export on its
/// own Tokio runtime.
///
/// The SDK's periodic reader calls `export` on its own thread through a plain executor,
/// but tonic's channel needs a Tokio runtime to connect. So this wrapper drives the gRPC
/// export with [`tokio::runtime::Runtime::block_on`] on that thread. The HTTP exporter uses
/// reqwest's blocking client and needs no runtime.
pub(crate) struct CountingExporter {
    inner: opentelemetry_otlp::MetricExporter,
    runtime: Option<tokio::runtime::Runtime>,
    counters: Arc<ExportCounters>,
    endpoint: String,
}

impl std::fmt::Debug for CountingExporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CountingExporter").field("endpoint", &self.endpoint).finish_non_exhaustive()
    }
}

impl CountingExporter {
    pub(crate) fn new(
        inner: opentelemetry_otlp::MetricExporter,
        runtime: Option<tokio::runtime::Runtime>,
        counters: Arc<ExportCounters>,
        endpoint: String,
    ) -> Self {
        CountingExporter { inner, runtime, counters, endpoint }
    }
}

impl PushMetricExporter for CountingExporter {
    async fn export(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        let result = match &self.runtime {
            Some(runtime) => runtime.block_on(self.inner.export(metrics)),
            None => self.inner.export(metrics).await,
        };
        self.counters.count(&result, &self.endpoint);
        result
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        match &self.runtime {
            Some(runtime) => {
                let _guard = runtime.enter();
                self.inner.shutdown_with_timeout(timeout)
            }
            None => self.inner.shutdown_with_timeout(timeout),
        }
    }

    fn temporality(&self) -> Temporality {
        self.inner.temporality()
    }
}
