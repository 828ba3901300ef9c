//! The service every receiver writes through: storage handle, limits, counters.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use proto::{Signal, TenantId};
use storage::Storage;
use storage::metrics::MetricsWrite;
use storage::model::{LogRow, SpanRecord, logs_batch, spans_batch};

use crate::es::templates::TemplateStore;
use crate::otlp::delta::DeltaState;
use crate::spanmetrics::SpanMetrics;
use crate::{Config, Error, Result};

/// The protocol a write arrived over (the `protocol` label of the ingest counters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// OTLP over gRPC.
    OtlpGrpc,
    /// OTLP over HTTP (protobuf or JSON).
    OtlpHttp,
    /// Prometheus remote_write 1.0 or 2.0.
    RemoteWrite,
    /// Samples pulled by our Prometheus scraper.
    Scrape,
    /// Zipkin v2 (JSON or proto3).
    Zipkin,
    /// Loki push (JSON or snappy protobuf).
    Loki,
    /// Elasticsearch `_bulk`.
    Elasticsearch,
    /// Span-derived metrics computed from ingested spans.
    SpanMetrics,
}

impl Protocol {
    /// Every protocol, in label order.
    pub const ALL: [Protocol; 8] = [
        Protocol::OtlpGrpc,
        Protocol::OtlpHttp,
        Protocol::RemoteWrite,
        Protocol::Scrape,
        Protocol::Zipkin,
        Protocol::Loki,
        Protocol::Elasticsearch,
        Protocol::SpanMetrics,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::OtlpGrpc => "otlp_grpc",
            Protocol::OtlpHttp => "otlp_http",
            Protocol::RemoteWrite => "remote_write",
            Protocol::Scrape => "scrape",
            Protocol::Zipkin => "zipkin",
            Protocol::Loki => "loki",
            Protocol::Elasticsearch => "elasticsearch",
            Protocol::SpanMetrics => "spanmetrics",
        }
    }

    fn index(self) -> usize {
        Protocol::ALL.iter().position(|p| *p == self).unwrap_or(0)
    }
}

/// Acknowledged rows per signal and protocol.
#[derive(Debug, Default)]
pub struct IngestStats {
    rows: [[AtomicU64; Protocol::ALL.len()]; 3],
}

fn signal_index(signal: Signal) -> usize {
    match signal {
        Signal::Metrics => 0,
        Signal::Logs => 1,
        Signal::Spans => 2,
    }
}

impl IngestStats {
    fn add(&self, signal: Signal, protocol: Protocol, rows: u64) {
        self.rows[signal_index(signal)][protocol.index()].fetch_add(rows, Ordering::Relaxed);
    }

    /// Returns `(signal, protocol, acknowledged rows)` for every pair.
    pub fn snapshot(&self) -> Vec<(Signal, Protocol, u64)> {
        let mut out = Vec::new();
        for signal in Signal::ALL {
            for protocol in Protocol::ALL {
                let rows =
                    self.rows[signal_index(signal)][protocol.index()].load(Ordering::Relaxed);
                out.push((signal, protocol, rows));
            }
        }
        out
    }
}

struct Inner {
    config: Config,
    storage: OnceLock<Arc<Storage>>,
    stats: IngestStats,
    span_metrics: Mutex<HashMap<TenantId, SpanMetrics>>,
    otlp_deltas: Mutex<DeltaState>,
    data_dir: OnceLock<PathBuf>,
    es_templates: OnceLock<Arc<Mutex<TemplateStore>>>,
}

/// How often span-derived metrics are written (Tempo's collection interval).
pub const SPAN_METRICS_INTERVAL: Duration = Duration::from_secs(15);

/// What every receiver writes through. Cheap to clone.
#[derive(Clone)]
pub struct IngestService {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for IngestService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IngestService").finish_non_exhaustive()
    }
}

impl IngestService {
    /// Builds the service; writes answer 503 until [`IngestService::set_storage`].
    pub fn new(config: Config) -> Self {
        let otlp_deltas = DeltaState::new(
            config.otlp_delta_max_streams,
            config.otlp_delta_max_stale.get(),
        );
        IngestService {
            inner: Arc::new(Inner {
                otlp_deltas: Mutex::new(otlp_deltas),
                data_dir: OnceLock::new(),
                es_templates: OnceLock::new(),
                config,
                storage: OnceLock::new(),
                stats: IngestStats::default(),
                span_metrics: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Hands over the opened storage engine and starts writing span-derived metrics
    /// every [`SPAN_METRICS_INTERVAL`] (when called inside a tokio runtime).
    pub fn set_storage(&self, storage: Arc<Storage>) {
        if self.inner.storage.set(storage).is_err() {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let service = Arc::downgrade(&self.inner);
            runtime.spawn(async move {
                let mut ticker = tokio::time::interval(SPAN_METRICS_INTERVAL);
                ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    ticker.tick().await;
                    let Some(inner) = service.upgrade() else {
                        return;
                    };
                    let service = IngestService { inner };
                    if let Err(error) = service.write_span_metrics().await {
                        // Storage refuses writes once it closes: that ends the loop quietly.
                        if matches!(error, Error::Storage(storage::Error::Unavailable(_))) {
                            return;
                        }
                        tracing::warn!(error = %error, "cannot write span-derived metrics");
                    }
                }
            });
        }
    }

    /// Writes the current span-derived metrics of every tenant (stamped now).
    pub async fn write_span_metrics(&self) -> Result<()> {
        let now = Instant::now();
        let ts_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        let writes: Vec<(TenantId, MetricsWrite)> = {
            let mut all = self
                .inner
                .span_metrics
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            all.iter_mut()
                .map(|(tenant, metrics)| {
                    metrics.expire(now);
                    (tenant.clone(), metrics.collect(ts_ms))
                })
                .collect()
        };
        for (tenant, write) in writes {
            self.write_metrics(Protocol::SpanMetrics, &tenant, &write)
                .await?;
        }
        Ok(())
    }

    /// The storage engine, or `NotReady` while it is opening.
    pub fn storage(&self) -> Result<&Arc<Storage>> {
        self.inner.storage.get().ok_or(Error::NotReady(
            "storage is opening (wal replay in progress)",
        ))
    }

    /// The `[ingest]` configuration.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Sets the data directory, where state that must survive a restart beyond the
    /// storage engine's (Elasticsearch templates) is kept. Only the first call counts;
    /// without one such state lives in memory only.
    pub fn set_data_dir(&self, dir: PathBuf) {
        let _ = self.inner.data_dir.set(dir);
    }

    /// The Elasticsearch template store, loaded from the data directory on first use
    /// (blocking file IO: call from a blocking thread).
    pub(crate) fn es_templates_blocking(&self) -> Arc<Mutex<TemplateStore>> {
        self.inner
            .es_templates
            .get_or_init(|| {
                Arc::new(Mutex::new(TemplateStore::open(
                    self.inner.data_dir.get().map(PathBuf::as_path),
                )))
            })
            .clone()
    }

    /// The running totals of OTLP delta streams.
    pub(crate) fn otlp_deltas(&self) -> std::sync::MutexGuard<'_, DeltaState> {
        self.inner
            .otlp_deltas
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Acknowledged rows per signal and protocol.
    pub fn stats(&self) -> &IngestStats {
        &self.inner.stats
    }

    /// Appends metrics; resolves once durable.
    pub async fn write_metrics(
        &self,
        protocol: Protocol,
        tenant: &TenantId,
        write: &MetricsWrite,
    ) -> Result<()> {
        let samples = write.sample_count() as u64;
        if write.series.is_empty() && write.metadata.is_empty() {
            return Ok(());
        }
        self.storage()?.append_metrics(tenant, write).await?;
        self.inner.stats.add(Signal::Metrics, protocol, samples);
        Ok(())
    }

    /// Appends log records; resolves once durable.
    pub async fn write_logs<R: LogRow + Sync>(
        &self,
        protocol: Protocol,
        tenant: &TenantId,
        records: &[R],
    ) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let storage = self.storage()?;
        storage.append_logs(tenant, logs_batch(records)?).await?;
        self.inner
            .stats
            .add(Signal::Logs, protocol, records.len() as u64);
        Ok(())
    }

    /// Appends spans; resolves once durable.
    pub async fn write_spans(
        &self,
        protocol: Protocol,
        tenant: &TenantId,
        records: &[SpanRecord],
    ) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let storage = self.storage()?;
        storage.append_spans(tenant, spans_batch(records)?).await?;
        self.inner
            .stats
            .add(Signal::Spans, protocol, records.len() as u64);
        self.inner
            .span_metrics
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(tenant.clone())
            .or_default()
            .record(records, Instant::now());
        Ok(())
    }
}
