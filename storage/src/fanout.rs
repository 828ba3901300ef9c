//! Querier fan-out to ingesters for the rows they have not flushed yet.
//!
//! ```text
//!  querier read ─► snapshot (segments + per-node WAL checkpoints, one catalog load)
//!       │            ├─► segments ─────────────────────────────┐
//!       │            └─► every live ingester, in parallel,     ├─► merged answer
//!       │                 POST /internal/v1/scan/{samples,logs,spans}
//!       │                 { ..., coverage } ─► its memtable rows newer than
//!       │                 the checkpoint the snapshot covers ─┘
//!  series sync (every fanout.series_interval): POST /internal/v1/series
//!       { cursors } ─► label sets an ingester created that the querier lacks
//! ```
//!
//! No row is counted twice and none is missed around a flush: a flush commits its
//! segments and the node's WAL checkpoint in one catalog change, and a querier reads
//! both in one load, so its snapshot says exactly which WAL range of each ingester
//! its segments hold (everything below the checkpoint). The querier sends those
//! checkpoints; an ingester answers with its generations (active, frozen, and flushed
//! ones it keeps for `fanout.keep_flushed`) whose WAL range ends above its checkpoint,
//! and says whether it still holds everything from there (`complete`). Each generation
//! ends on a WAL file boundary, which is what checkpoints count.
//!
//! A slow, failing or dead ingester never fails a read: its part is left out, the
//! answer is partial, a warning is logged and `partial` is counted (self-metric
//! `sightline_fanout_partial_total`).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use proto::{HumanDuration, SeriesId, TenantId, TraceId};
use serde::{Deserialize, Serialize};
use tracing::{debug, warn};

use crate::engine::{Snapshot, Storage};
use crate::memtable::Generation;
use crate::metrics::{MetricMetadata, MetricType};
use crate::model::samples_batch;
use crate::read::{LogScan, SpanScan};
use crate::series::{LOCAL_ID_BITS, Labels};
use crate::{Error, Result, codec};

/// Header of a scan answer: `1` when the ingester held every row the request asked for.
pub const COMPLETE_HEADER: &str = "x-sightline-complete";

/// The `[storage.fanout]` section: how a querier reaches ingesters for unflushed rows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FanoutConfig {
    /// Ask ingesters at all (a node without the ingest duty only).
    pub enabled: bool,
    /// Ingester addresses (`host:port` of their main port) asked in addition to the
    /// live ingesters the catalog knows from their heartbeats.
    pub ingesters: Vec<String>,
    /// How long a read waits for an ingester before leaving its rows out.
    pub timeout: HumanDuration,
    /// How often a querier fetches the label sets ingesters created since the last time
    /// (the delay before a brand-new series is selectable on a querier).
    pub series_interval: HumanDuration,
    /// How long an ingester keeps a flushed generation readable by queriers whose
    /// segment list predates the flush (at least a few `catalog.refresh_interval`s).
    pub keep_flushed: HumanDuration,
    /// `host:port` this node's heartbeats carry (set by the server from
    /// `server.advertise_addr`, not read from the storage section).
    #[serde(skip)]
    pub advertise_address: String,
}

impl Default for FanoutConfig {
    fn default() -> Self {
        FanoutConfig {
            enabled: true,
            ingesters: Vec::new(),
            timeout: HumanDuration::secs(2),
            series_interval: HumanDuration::secs(1),
            keep_flushed: HumanDuration::secs(30),
            advertise_address: String::new(),
        }
    }
}

impl FanoutConfig {
    /// Checks the values serde cannot.
    pub fn validate(&self) -> Result<()> {
        if self.timeout.get().is_zero() || self.series_interval.get().is_zero() {
            return Err(Error::InvalidConfig(
                "storage.fanout.timeout and series_interval must be greater than zero".into(),
            ));
        }
        if let Some(bad) = self
            .ingesters
            .iter()
            .find(|a| a.is_empty() || a.contains('/'))
        {
            return Err(Error::InvalidConfig(format!(
                "storage.fanout.ingesters: {bad:?} is not host:port"
            )));
        }
        Ok(())
    }
}

/// Which WAL range of each node a querier's segments hold: every record below a
/// node's checkpoint is in a segment it knows, none at or above it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Coverage {
    /// Checkpoint per node id (shared catalog).
    #[serde(default)]
    pub checkpoints: BTreeMap<String, u64>,
    /// The checkpoint of a node not listed (embedded catalog: its one writer's).
    #[serde(default)]
    pub default: u64,
}

impl Coverage {
    fn of(&self, node_id: &str) -> u64 {
        self.checkpoints
            .get(node_id)
            .copied()
            .unwrap_or(self.default)
    }
}

/// A scan of an ingester's unflushed rows (the body of `POST /internal/v1/scan/*`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ScanRequest {
    /// The tenant.
    pub tenant: String,
    /// Inclusive start: Unix ms for samples, ns for logs and spans.
    pub start: i64,
    /// Inclusive end, same unit.
    pub end: i64,
    /// Samples: the series ids wanted.
    #[serde(default)]
    pub ids: Vec<u64>,
    /// Logs: keep only these services (empty: all).
    #[serde(default)]
    pub services: Vec<String>,
    /// Logs and spans: keep only this trace (hex).
    #[serde(default)]
    pub trace_id: Option<String>,
    /// Spans: keep only this service.
    #[serde(default)]
    pub service: Option<String>,
    /// What the asking querier's segments already hold.
    #[serde(default)]
    pub coverage: Coverage,
}

/// The label sets an ingester created (`POST /internal/v1/series`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SeriesRequest {
    /// Per tenant and node ordinal, one past the largest local id the querier knows.
    #[serde(default)]
    pub cursors: BTreeMap<String, BTreeMap<u64, u64>>,
}

/// The answer to a [`SeriesRequest`].
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SeriesResponse {
    /// The ingester's ordinal.
    pub ordinal: u64,
    /// New label sets and changed metadata, per tenant.
    pub tenants: Vec<TenantSeries>,
}

/// New label sets and metadata of one tenant.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TenantSeries {
    /// The tenant.
    pub tenant: String,
    /// `(id, [(name, value)])`.
    pub series: Vec<(u64, Vec<(String, String)>)>,
    /// Metric metadata not flushed yet: `(metric, type, help, unit)`.
    pub metadata: Vec<(String, String, String, String)>,
}

/// At most this many label sets per series answer (the rest come next time).
const MAX_SERIES_PER_ANSWER: usize = 100_000;

/// The kinds of rows a scan asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanKind {
    /// Metric samples ([`crate::model::SAMPLES_SCHEMA`]).
    Samples,
    /// Log records ([`crate::model::LOGS_SCHEMA`]).
    Logs,
    /// Spans ([`crate::model::SPANS_SCHEMA`]).
    Spans,
}

impl ScanKind {
    /// The path segment of the internal route.
    pub fn as_str(self) -> &'static str {
        match self {
            ScanKind::Samples => "samples",
            ScanKind::Logs => "logs",
            ScanKind::Spans => "spans",
        }
    }

    /// Parses a path segment.
    pub fn parse(name: &str) -> Option<ScanKind> {
        [ScanKind::Samples, ScanKind::Logs, ScanKind::Spans]
            .into_iter()
            .find(|k| k.as_str() == name)
    }
}

/// A querier's fan-out state: where the ingesters are and how the asking went.
#[derive(Default)]
pub(crate) struct Fanout {
    client: std::sync::OnceLock<reqwest::Client>,
    /// `host:port` of the ingesters to ask (catalog heartbeats plus the static list).
    targets: RwLock<Vec<String>>,
    /// Reads with at least one ingester left out.
    pub partial: AtomicU64,
    /// Ingester requests made.
    pub requests: AtomicU64,
}

/// Counters of the fan-out, for the self-metrics endpoint.
#[derive(Debug, Clone, Default)]
pub struct FanoutStats {
    /// Ingesters a querier currently asks.
    pub ingesters: u64,
    /// Requests to ingesters since start.
    pub requests: u64,
    /// Reads answered without some ingester's rows (timeout, error, or rows it no
    /// longer held) since start.
    pub partial: u64,
}

impl Storage {
    fn fans_out(&self) -> bool {
        !self.duties.ingest && self.config.fanout.enabled
    }

    /// The fan-out counters.
    pub fn fanout_stats(&self) -> FanoutStats {
        FanoutStats {
            ingesters: self
                .fanout
                .targets
                .read()
                .map(|t| t.len() as u64)
                .unwrap_or(0),
            requests: self.fanout.requests.load(Ordering::Relaxed),
            partial: self.fanout.partial.load(Ordering::Relaxed),
        }
    }

    /// The ingesters a querier asks, `host:port`.
    pub fn fanout_targets(&self) -> Vec<String> {
        self.fanout
            .targets
            .read()
            .map(|t| t.clone())
            .unwrap_or_default()
    }

    /// Renews the list of ingesters to ask: live nodes that ingest and said where
    /// they answer, plus `fanout.ingesters`.
    pub(crate) async fn refresh_fanout_targets(&self) {
        if !self.fans_out() {
            return;
        }
        let mut targets = self.config.fanout.ingesters.clone();
        match self.live_nodes().await {
            Ok(nodes) => targets.extend(
                nodes
                    .into_iter()
                    .filter(|n| (n.role == "ingest" || n.role == "all") && !n.address.is_empty())
                    .map(|n| n.address),
            ),
            Err(e) => warn!(error = ?e, "cannot list live ingesters; keeping the static list"),
        }
        targets.sort();
        targets.dedup();
        if let Ok(mut current) = self.fanout.targets.write() {
            *current = targets;
        }
    }

    fn client(&self) -> &reqwest::Client {
        self.fanout.client.get_or_init(|| {
            reqwest::Client::builder()
                .timeout(self.config.fanout.timeout.get())
                .connect_timeout(self.config.fanout.timeout.get())
                .build()
                .unwrap_or_default()
        })
    }

    /// Asks every ingester in parallel for `kind` rows; returns the decoded batches of
    /// those that answered in time. Never fails: an ingester that does not answer, or
    /// no longer holds all the rows asked for, makes the read partial.
    async fn ask_ingesters(
        &self,
        kind: ScanKind,
        snapshot: &Snapshot,
        mut request: ScanRequest,
    ) -> Vec<RecordBatch> {
        if !self.fans_out() {
            return Vec::new();
        }
        let targets = self.fanout_targets();
        if targets.is_empty() {
            return Vec::new();
        }
        request.coverage = (*snapshot.coverage).clone();
        let body = match serde_json::to_vec(&request) {
            Ok(body) => body,
            Err(e) => {
                warn!(error = %e, "cannot encode an ingester scan");
                return Vec::new();
            }
        };
        let deadline = self.config.fanout.timeout.get();
        let asks = targets.iter().map(|target| {
            let url = format!("http://{target}/internal/v1/scan/{}", kind.as_str());
            let body = body.clone();
            async move {
                let started = Instant::now();
                let answer = tokio::time::timeout(deadline, async {
                    let response = self
                        .client()
                        .post(&url)
                        .header("content-type", "application/json")
                        .body(body)
                        .send()
                        .await
                        .map_err(|e| e.to_string())?;
                    if !response.status().is_success() {
                        return Err(format!("status {}", response.status()));
                    }
                    let complete = response
                        .headers()
                        .get(COMPLETE_HEADER)
                        .is_some_and(|v| v.as_bytes() == b"1");
                    let bytes = response.bytes().await.map_err(|e| e.to_string())?;
                    let batches = decode_all(&bytes).map_err(|e| e.to_string())?;
                    Ok::<_, String>((batches, complete))
                })
                .await
                .unwrap_or_else(|_| Err(format!("no answer within {deadline:?}")));
                debug!(ingester = %target, elapsed_ms = started.elapsed().as_millis() as u64, "ingester scan");
                (target, answer)
            }
        });
        let answers = futures::future::join_all(asks).await;
        self.fanout
            .requests
            .fetch_add(answers.len() as u64, Ordering::Relaxed);
        let mut out = Vec::new();
        let mut partial = false;
        for (target, answer) in answers {
            match answer {
                Ok((batches, complete)) => {
                    if !complete {
                        partial = true;
                        warn!(ingester = %target, "ingester no longer holds rows this querier has no segments for yet; the answer is partial");
                    }
                    out.extend(batches);
                }
                Err(error) => {
                    partial = true;
                    warn!(ingester = %target, %error, "ingester left out of a read; the answer is partial");
                }
            }
        }
        if partial {
            self.fanout.partial.fetch_add(1, Ordering::Relaxed);
        }
        out
    }

    /// Unflushed samples of `ids` on every ingester, as samples batches, oldest first.
    pub(crate) async fn remote_samples(
        &self,
        snapshot: &Snapshot,
        tenant: &TenantId,
        ids: &[u64],
        start_ms: i64,
        end_ms: i64,
    ) -> Vec<RecordBatch> {
        if ids.is_empty() {
            return Vec::new();
        }
        let request = ScanRequest {
            tenant: tenant.as_str().to_string(),
            start: start_ms,
            end: end_ms,
            ids: ids.to_vec(),
            ..ScanRequest::default()
        };
        self.ask_ingesters(ScanKind::Samples, snapshot, request)
            .await
    }

    /// Unflushed log records matching `scan` on every ingester (the text filter is
    /// applied here).
    pub(crate) async fn remote_logs(
        &self,
        snapshot: &Snapshot,
        tenant: &TenantId,
        scan: &LogScan,
    ) -> Result<Vec<RecordBatch>> {
        let request = ScanRequest {
            tenant: tenant.as_str().to_string(),
            start: scan.start_ns,
            end: scan.end_ns,
            services: scan.services.clone(),
            trace_id: scan.trace_id.map(|id| id.to_string()),
            ..ScanRequest::default()
        };
        let mut out = Vec::new();
        for batch in self.ask_ingesters(ScanKind::Logs, snapshot, request).await {
            out.extend(scan.filter(&batch)?);
        }
        Ok(out)
    }

    /// Unflushed spans matching `scan` on every ingester.
    pub(crate) async fn remote_spans(
        &self,
        snapshot: &Snapshot,
        tenant: &TenantId,
        scan: &SpanScan,
    ) -> Result<Vec<RecordBatch>> {
        let request = ScanRequest {
            tenant: tenant.as_str().to_string(),
            start: scan.start_ns,
            end: scan.end_ns,
            trace_id: scan.trace_id.map(|id| id.to_string()),
            service: scan.service.clone(),
            ..ScanRequest::default()
        };
        let mut out = Vec::new();
        for batch in self.ask_ingesters(ScanKind::Spans, snapshot, request).await {
            out.extend(crate::read::filter_rows(&batch, |row| {
                scan.keep(&batch, row)
            })?);
        }
        Ok(out)
    }

    /// Answers an ingester scan (`POST /internal/v1/scan/{kind}`): the Arrow IPC
    /// stream of the matching rows of every generation the asking querier's segments
    /// do not hold, and whether this node still held all of them.
    pub async fn serve_scan(
        &self,
        kind: ScanKind,
        request: &ScanRequest,
    ) -> Result<(Vec<u8>, bool)> {
        let tenant = TenantId::new(request.tenant.clone())
            .map_err(|e| Error::InvalidQuery(format!("tenant: {e}")))?;
        let trace_id = match &request.trace_id {
            Some(hex) => Some(
                hex.parse::<TraceId>()
                    .map_err(|_| Error::InvalidQuery(format!("bad trace id {hex:?}")))?,
            ),
            None => None,
        };
        let after = request.coverage.of(self.catalog.node_id());
        let (generations, complete) = self.generations_after(after);
        let mut out = Vec::new();
        for generation in generations {
            let Some(memtable) = generation.get(&tenant) else {
                continue;
            };
            match kind {
                ScanKind::Samples => {
                    let (mut ids, mut ts, mut values) = (Vec::new(), Vec::new(), Vec::new());
                    memtable.visit_series(&request.ids, |id, buffer| {
                        for (t, v) in buffer.points() {
                            if *t >= request.start && *t <= request.end {
                                ids.push(id);
                                ts.push(*t);
                                values.push(*v);
                            }
                        }
                    });
                    if !ids.is_empty() {
                        push_batch(&mut out, &samples_batch(ids, ts, values)?)?;
                    }
                }
                ScanKind::Logs => {
                    let scan = LogScan {
                        start_ns: request.start,
                        end_ns: request.end,
                        services: request.services.clone(),
                        trace_id,
                        text: None,
                    };
                    for batch in memtable.logs() {
                        if let Some(batch) = scan.filter(&batch)? {
                            push_batch(&mut out, &batch)?;
                        }
                    }
                }
                ScanKind::Spans => {
                    let scan = SpanScan {
                        start_ns: request.start,
                        end_ns: request.end,
                        trace_id,
                        service: request.service.clone(),
                    };
                    for batch in memtable.spans() {
                        if let Some(batch) =
                            crate::read::filter_rows(&batch, |row| scan.keep(&batch, row))?
                        {
                            push_batch(&mut out, &batch)?;
                        }
                    }
                }
            }
        }
        Ok((out, complete))
    }

    /// The generations holding WAL records at or above `after`, oldest first, and
    /// whether this node still holds every record from `after` on.
    fn generations_after(&self, after: u64) -> (Vec<Arc<Generation>>, bool) {
        let state = self.state.read().unwrap_or_else(|p| p.into_inner());
        let complete = after >= state.memory_from;
        let mut out: Vec<Arc<Generation>> = state
            .recent
            .iter()
            .map(|(generation, _)| generation.clone())
            .chain(state.frozen.iter().cloned())
            .filter(|g| {
                let end = g.wal_end();
                end == 0 || end > after
            })
            .collect();
        out.push(state.active.clone());
        (out, complete)
    }

    /// Answers `POST /internal/v1/series`: the label sets of this node's id space the
    /// querier's cursors do not cover yet, and metadata not flushed yet.
    pub fn serve_series(&self, request: &SeriesRequest) -> SeriesResponse {
        let ordinal = self.node_ordinal();
        let catalogs: Vec<(TenantId, Arc<crate::engine::TenantCatalog>)> = self
            .catalogs
            .read()
            .map(|c| c.iter().map(|(t, c)| (t.clone(), c.clone())).collect())
            .unwrap_or_default();
        let mut budget = MAX_SERIES_PER_ANSWER;
        let mut tenants = Vec::new();
        for (tenant, catalog) in catalogs {
            let after = request
                .cursors
                .get(tenant.as_str())
                .and_then(|c| c.get(&ordinal))
                .copied()
                .unwrap_or(0);
            let series: Vec<(u64, Vec<(String, String)>)> = catalog
                .series
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .ids_from(ordinal, after, budget)
                .into_iter()
                .map(|(id, labels)| (id, labels.into_pairs()))
                .collect();
            budget = budget.saturating_sub(series.len());
            let metadata = if catalog.metadata_dirty.load(Ordering::Acquire) {
                catalog
                    .metadata
                    .read()
                    .map(|m| {
                        m.values()
                            .map(|e| {
                                (
                                    e.metric.clone(),
                                    e.kind.as_str().to_string(),
                                    e.help.clone(),
                                    e.unit.clone(),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default()
            } else {
                Vec::new()
            };
            if !series.is_empty() || !metadata.is_empty() {
                tenants.push(TenantSeries {
                    tenant: tenant.as_str().to_string(),
                    series,
                    metadata,
                });
            }
        }
        SeriesResponse { ordinal, tenants }
    }

    /// One series sync round: asks every ingester for the label sets it created that
    /// this node does not know and adds them to the index.
    pub(crate) async fn sync_series(&self) {
        if !self.fans_out() {
            return;
        }
        let targets = self.fanout_targets();
        if targets.is_empty() {
            return;
        }
        let cursors: BTreeMap<String, BTreeMap<u64, u64>> = self
            .catalogs
            .read()
            .map(|c| {
                c.iter()
                    .map(|(tenant, catalog)| {
                        let index = catalog.series.read().unwrap_or_else(|p| p.into_inner());
                        (tenant.as_str().to_string(), index.cursors())
                    })
                    .collect()
            })
            .unwrap_or_default();
        let body = match serde_json::to_vec(&SeriesRequest { cursors }) {
            Ok(body) => body,
            Err(_) => return,
        };
        let deadline = self.config.fanout.timeout.get();
        let asks = targets.iter().map(|target| {
            let url = format!("http://{target}/internal/v1/series");
            let body = body.clone();
            async move {
                let answer = tokio::time::timeout(deadline, async {
                    let response = self
                        .client()
                        .post(&url)
                        .header("content-type", "application/json")
                        .body(body)
                        .send()
                        .await
                        .map_err(|e| e.to_string())?;
                    if !response.status().is_success() {
                        return Err(format!("status {}", response.status()));
                    }
                    let bytes = response.bytes().await.map_err(|e| e.to_string())?;
                    serde_json::from_slice::<SeriesResponse>(&bytes).map_err(|e| e.to_string())
                })
                .await
                .unwrap_or_else(|_| Err(format!("no answer within {deadline:?}")));
                (target, answer)
            }
        });
        for (target, answer) in futures::future::join_all(asks).await {
            match answer {
                Ok(answer) => self.apply_series(answer),
                Err(error) => debug!(ingester = %target, %error, "series sync failed"),
            }
        }
    }

    fn apply_series(&self, answer: SeriesResponse) {
        for tenant_series in answer.tenants {
            let Ok(tenant) = TenantId::new(tenant_series.tenant) else {
                continue;
            };
            let catalog = self.catalog(&tenant);
            if !tenant_series.series.is_empty() {
                let mut index = catalog.series.write().unwrap_or_else(|p| p.into_inner());
                for (id, pairs) in tenant_series.series {
                    if id >> LOCAL_ID_BITS != answer.ordinal {
                        continue;
                    }
                    if let Ok(labels) = Labels::new(pairs) {
                        index.insert_with_id(SeriesId(id), &labels, true);
                        index.observe(SeriesId(id), i64::MIN, i64::MAX);
                    }
                }
            }
            if !tenant_series.metadata.is_empty() {
                let mut metadata = catalog.metadata.write().unwrap_or_else(|p| p.into_inner());
                for (metric, kind, help, unit) in tenant_series.metadata {
                    metadata.insert(
                        metric.clone(),
                        MetricMetadata {
                            metric,
                            kind: MetricType::parse(&kind),
                            help,
                            unit,
                        },
                    );
                }
            }
        }
    }
}

/// Appends one batch to a scan answer: its length (u64 little endian), then the
/// batch as an Arrow IPC stream (LZ4-compressed buffers).
fn push_batch(out: &mut Vec<u8>, batch: &RecordBatch) -> Result<()> {
    let mut encoded = Vec::new();
    codec::encode_batch(batch, &mut encoded)?;
    out.extend_from_slice(&(encoded.len() as u64).to_le_bytes());
    out.extend_from_slice(&encoded);
    Ok(())
}

/// Decodes a scan answer written by [`push_batch`].
fn decode_all(bytes: &[u8]) -> Result<Vec<RecordBatch>> {
    let corrupt = || Error::Corrupt {
        what: "ingester scan answer".into(),
        reason: "truncated batch".into(),
    };
    let mut out = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let (len, tail) = rest.split_first_chunk::<8>().ok_or_else(corrupt)?;
        let len = usize::try_from(u64::from_le_bytes(*len)).map_err(|_| corrupt())?;
        if tail.len() < len {
            return Err(corrupt());
        }
        out.extend(codec::decode_batches(&tail[..len])?);
        rest = &tail[len..];
    }
    Ok(out)
}

/// Syncs series from ingesters every `interval` until shutdown.
pub(crate) async fn series_loop(
    storage: std::sync::Weak<Storage>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
    interval: Duration,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shutdown.changed() => return,
        }
        let Some(engine) = storage.upgrade() else {
            return;
        };
        engine.sync_series().await;
    }
}
