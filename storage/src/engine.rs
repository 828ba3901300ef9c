//! The engine: open and replay, the write path, flush triggers and shutdown.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};

use arrow::array::{Array, FixedSizeBinaryArray, RecordBatch};
use object_store::path::Path as ObjectPath;
use proto::{SeriesId, Signal, TenantId, TraceId};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

use crate::catalog::{Catalog, Duties};
use crate::codec::{self, MetricsRecord};
use crate::manifest::{Manifest, Table};
use crate::memtable::Generation;
use crate::metrics::{MetricMetadata, MetricsWrite};
use crate::model::{LOGS_SCHEMA, SPANS_SCHEMA, check_schema, span_col};
use crate::series::Labels;
use crate::series_index::SeriesIndex;
use crate::store::SegmentStore;
use crate::textindex::LogIndex;
use crate::wal::{self, RecordKind, Wal, WalEntry, WalOptions};
use crate::{Config, Error, FlushReport, Result, StorageStats};

/// Approximate memory of one buffered sample (ts + value).
const SAMPLE_BYTES: u64 = 16;
/// How long replaced segment files stay readable for queries that started before.
pub(crate) const DELETE_GRACE: Duration = Duration::from_secs(300);
const INDEX_CACHE_ENTRIES: usize = 64;

/// The series and metadata of one tenant.
#[derive(Default)]
pub(crate) struct TenantCatalog {
    pub series: RwLock<SeriesIndex>,
    pub metadata: RwLock<BTreeMap<String, MetricMetadata>>,
    /// Metadata changed since the last metadata segment.
    pub metadata_dirty: AtomicBool,
}

/// What reads see: memtables and the manifest, swapped atomically by flushes.
pub(crate) struct State {
    pub active: Arc<Generation>,
    pub frozen: Vec<Arc<Generation>>,
    pub manifest: Arc<Manifest>,
    /// Flushed generations kept for queriers' fan-out, oldest first, with their flush time.
    pub recent: Vec<(Arc<Generation>, Instant)>,
    /// Memtables hold every WAL record from this sequence on (the end of the last
    /// generation dropped; the replay checkpoint at start).
    pub memory_from: u64,
    /// Which WAL range of each ingester `manifest` holds (queriers).
    pub coverage: Arc<crate::fanout::Coverage>,
}

/// A consistent view for one read: every row is in exactly one of these places.
pub(crate) struct Snapshot {
    /// Frozen generations oldest first, then the active one.
    pub generations: Vec<Arc<Generation>>,
    pub manifest: Arc<Manifest>,
    /// Which WAL range of each ingester `manifest` holds (sent with fan-out reads).
    pub coverage: Arc<crate::fanout::Coverage>,
}

#[derive(Default)]
pub(crate) struct Counters {
    pub flushes: AtomicU64,
    pub compactions: AtomicU64,
    pub retention_deleted: AtomicU64,
    pub backpressure: AtomicU64,
    pub appended: [AtomicU64; 3],
}

/// The storage engine. Cheap to share behind an `Arc`.
pub struct Storage {
    pub(crate) config: Config,
    pub(crate) wal: Wal,
    pub(crate) store: SegmentStore,
    /// Where segment changes are made durable (and other nodes' changes come from).
    pub(crate) catalog: Arc<dyn Catalog>,
    /// What this node does besides reads.
    pub(crate) duties: Duties,
    /// The first id of this node's series id space (its catalog ordinal << 40).
    pub(crate) series_base: u64,
    /// `host:port` other nodes reach this node's main port at (heartbeats carry it).
    advertise_address: RwLock<String>,
    /// Appends hold it shared from WAL write to memtable insert; a flush takes it
    /// exclusively to rotate the WAL and swap memtables, so no record can fall between.
    pub(crate) gate: tokio::sync::RwLock<()>,
    pub(crate) state: RwLock<State>,
    pub(crate) catalogs: RwLock<HashMap<TenantId, Arc<TenantCatalog>>>,
    /// Serialises manifest changes (flush, compaction, retention).
    pub(crate) manifest_lock: tokio::sync::Mutex<()>,
    pub(crate) counters: Counters,
    pub(crate) pending_deletes: Mutex<Vec<(Instant, Vec<ObjectPath>)>>,
    pub(crate) index_cache: Mutex<HashMap<u64, Arc<LogIndex>>>,
    /// A querier's view of the ingesters it asks for unflushed rows.
    pub(crate) fanout: crate::fanout::Fanout,
    flush_wanted: Arc<Notify>,
    shutdown: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    closed: AtomicBool,
}

fn read_lock<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|p| p.into_inner())
}

fn write_lock<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|p| p.into_inner())
}

impl Storage {
    /// Opens (or creates) the store under `data_dir`, replays the WAL and starts the
    /// background flush, compaction and retention tasks. Returns once writes and
    /// queries can be served.
    pub async fn open(config: Config, data_dir: &Path) -> Result<Arc<Storage>> {
        Storage::open_with_duties(config, data_dir, Duties::ALL).await
    }

    /// Opens the store like [`Storage::open`] for a node with only some `duties`: an
    /// ingester flushes but does not compact, a querier only reads (and reloads the
    /// segment list from the catalog), a compactor compacts and applies retention.
    pub async fn open_with_duties(
        config: Config,
        data_dir: &Path,
        duties: Duties,
    ) -> Result<Arc<Storage>> {
        config.validate()?;
        let started = Instant::now();
        let wal_dir = data_dir.join("wal");
        std::fs::create_dir_all(&wal_dir).map_err(|e| Error::io(&wal_dir, e))?;
        let store = SegmentStore::open(&config, data_dir).await?;
        let catalog = crate::catalog::open(&config.catalog, &store).await?;
        let manifest = catalog.load().await?;
        let catalogs = load_catalogs(&store, &manifest).await?;
        let active = Arc::new(Generation::default());
        let mut catalogs = catalogs;
        let replay_dir = wal_dir.clone();
        let checkpoint = manifest.wal_checkpoint;
        let (next_seq, catalogs, active) = tokio::task::spawn_blocking(move || {
            let next_seq = wal::replay(&replay_dir, checkpoint, |entry| {
                replay_entry(entry, &mut catalogs, &active)
            })?;
            Ok::<_, Error>((next_seq, catalogs, active))
        })
        .await
        .map_err(|e| Error::Task(e.to_string()))??;
        let wal = Wal::start(
            &wal_dir,
            next_seq,
            WalOptions {
                group_commit: config.wal_group_commit.get(),
                max_batch: config.wal_max_batch.bytes() as usize,
                segment_size: config.wal_segment_size.bytes(),
            },
        )?;
        let (shutdown, _) = watch::channel(false);
        let ordinal = catalog.node_ordinal();
        let shared = catalog.is_shared();
        let catalog_checkpoints = catalog.node_checkpoints();
        if ordinal >= 1 << (64 - crate::series::LOCAL_ID_BITS) {
            return Err(Error::InvalidConfig(format!(
                "node ordinal {ordinal} is out of the series id range"
            )));
        }
        let storage = Arc::new(Storage {
            wal,
            store,
            catalog,
            duties,
            series_base: crate::series::series_id_base(ordinal),
            advertise_address: RwLock::new(config.fanout.advertise_address.clone()),
            gate: tokio::sync::RwLock::new(()),
            state: RwLock::new(State {
                active,
                frozen: Vec::new(),
                recent: Vec::new(),
                memory_from: checkpoint,
                coverage: Arc::new(crate::fanout::Coverage {
                    checkpoints: catalog_checkpoints,
                    default: if shared { 0 } else { checkpoint },
                }),
                manifest: Arc::new(manifest),
            }),
            catalogs: RwLock::new(catalogs),
            manifest_lock: tokio::sync::Mutex::new(()),
            counters: Counters::default(),
            pending_deletes: Mutex::new(Vec::new()),
            index_cache: Mutex::new(HashMap::new()),
            fanout: crate::fanout::Fanout::default(),
            flush_wanted: Arc::new(Notify::new()),
            shutdown,
            tasks: Mutex::new(Vec::new()),
            closed: AtomicBool::new(false),
            config,
        });
        // Only a lone node that writes and maintains knows that every unnamed object is an
        // orphan; with readers or other writers, objects may be in flight.
        if duties == Duties::ALL && !storage.catalog.is_shared() {
            storage.remove_orphans().await?;
        }
        storage.start_background_tasks();
        let state = read_lock(&storage.state);
        info!(
            segments = state.manifest.segments.len(),
            replayed_rows = state.active.rows(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "storage opened"
        );
        drop(state);
        Ok(storage)
    }

    /// Sets where other nodes reach this node's main port (`host:port`); sent with
    /// every heartbeat from the next catalog refresh on.
    pub fn set_advertise_address(&self, address: &str) {
        *write_lock(&self.advertise_address) = address.to_string();
    }

    /// Where other nodes reach this node ("" until set).
    pub fn advertise_address(&self) -> String {
        read_lock(&self.advertise_address).clone()
    }

    /// This node's ordinal in the catalog (the high bits of the series ids it creates).
    pub fn node_ordinal(&self) -> u64 {
        self.series_base >> crate::series::LOCAL_ID_BITS
    }

    pub(crate) fn catalog(&self, tenant: &TenantId) -> Arc<TenantCatalog> {
        if let Some(catalog) = read_lock(&self.catalogs).get(tenant) {
            return catalog.clone();
        }
        write_lock(&self.catalogs)
            .entry(tenant.clone())
            .or_default()
            .clone()
    }

    pub(crate) fn existing_catalog(&self, tenant: &TenantId) -> Option<Arc<TenantCatalog>> {
        read_lock(&self.catalogs).get(tenant).cloned()
    }

    pub(crate) fn snapshot(&self) -> Snapshot {
        let state = read_lock(&self.state);
        let mut generations = state.frozen.clone();
        generations.push(state.active.clone());
        Snapshot {
            generations,
            manifest: state.manifest.clone(),
            coverage: state.coverage.clone(),
        }
    }

    fn buffered_bytes(&self) -> u64 {
        let state = read_lock(&self.state);
        state.active.bytes() + state.frozen.iter().map(|g| g.bytes()).sum::<u64>()
    }

    /// Refuses a write that would push memtables past the memory limit.
    fn admit(&self, incoming: u64) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Unavailable("storage is shutting down"));
        }
        let used = self.buffered_bytes();
        let limit = self.config.memory_limit.bytes();
        if used + incoming > limit {
            self.counters.backpressure.fetch_add(1, Ordering::Relaxed);
            self.flush_wanted.notify_one();
            return Err(Error::Backpressure { used, limit });
        }
        Ok(())
    }

    fn after_append(&self, signal: Signal, rows: u64) {
        self.counters.appended[signal_index(signal)].fetch_add(rows, Ordering::Relaxed);
        if read_lock(&self.state).active.bytes() >= self.config.memtable_flush_size.bytes() {
            self.flush_wanted.notify_one();
        }
    }

    /// Appends metric samples, exemplars and metadata; resolves once they are durable
    /// and visible to queries.
    pub async fn append_metrics(&self, tenant: &TenantId, write: &MetricsWrite) -> Result<()> {
        let sample_count = write.sample_count() as u64;
        self.admit(sample_count * SAMPLE_BYTES)?;
        let catalog = self.catalog(tenant);
        let _gate = self.gate.read().await;
        let mut record = MetricsRecord {
            samples: Vec::with_capacity(sample_count as usize),
            metadata: write.metadata.clone(),
            ..MetricsRecord::default()
        };
        // The new series reach the index in `resolve_series`; the WAL record borrows
        // their labels from the request (replay decodes them into `record.new_series`).
        let mut new_series = Vec::new();
        let ids = resolve_series(
            &catalog,
            write,
            &mut new_series,
            self.config.max_series_per_tenant,
            self.series_base,
        )?;
        for (series, id) in write.series.iter().zip(&ids) {
            record
                .samples
                .extend(series.samples.iter().map(|s| (id.0, s.ts_ms, s.value)));
            record
                .exemplars
                .extend(series.exemplars.iter().map(|e| (id.0, e.clone())));
        }
        let mut body = Vec::with_capacity(16 + record.samples.len() * 12);
        record.encode_with_series(&new_series, &mut body);
        self.append_record(RecordKind::Metrics, tenant, &body)
            .await?;
        let active = read_lock(&self.state).active.clone();
        apply_metrics(&catalog, &active.tenant(tenant), record);
        active.add_usage(sample_count, sample_count * SAMPLE_BYTES);
        self.after_append(Signal::Metrics, sample_count);
        Ok(())
    }

    /// Appends a batch of log records ([`crate::model::LOGS_SCHEMA`]); resolves once durable and visible.
    pub async fn append_logs(&self, tenant: &TenantId, batch: RecordBatch) -> Result<()> {
        check_schema(&batch, &LOGS_SCHEMA, "logs")?;
        let rows = batch.num_rows() as u64;
        if rows == 0 {
            return Ok(());
        }
        let bytes = batch.get_array_memory_size() as u64;
        self.admit(bytes)?;
        let mut body = Vec::new();
        codec::encode_batch(&batch, &mut body)?;
        let _gate = self.gate.read().await;
        self.append_record(RecordKind::Logs, tenant, &body).await?;
        let active = read_lock(&self.state).active.clone();
        active.tenant(tenant).append_logs(batch);
        active.add_usage(rows, bytes);
        self.after_append(Signal::Logs, rows);
        Ok(())
    }

    /// Appends a batch of spans ([`crate::model::SPANS_SCHEMA`]); resolves once durable and visible.
    pub async fn append_spans(&self, tenant: &TenantId, batch: RecordBatch) -> Result<()> {
        check_schema(&batch, &SPANS_SCHEMA, "spans")?;
        let rows = batch.num_rows() as u64;
        if rows == 0 {
            return Ok(());
        }
        let trace_ids = trace_ids(&batch)?;
        let bytes = batch.get_array_memory_size() as u64 + rows * 24;
        self.admit(bytes)?;
        let mut body = Vec::new();
        codec::encode_batch(&batch, &mut body)?;
        let _gate = self.gate.read().await;
        self.append_record(RecordKind::Spans, tenant, &body).await?;
        let active = read_lock(&self.state).active.clone();
        active.tenant(tenant).append_spans(batch, trace_ids);
        active.add_usage(rows, bytes);
        self.after_append(Signal::Spans, rows);
        Ok(())
    }

    async fn append_record(&self, kind: RecordKind, tenant: &TenantId, body: &[u8]) -> Result<()> {
        if body.len() + 80 > wal::MAX_RECORD_LEN {
            return Err(Error::InvalidWrite(format!(
                "write of {} bytes is larger than the {} byte limit of one record",
                body.len(),
                wal::MAX_RECORD_LEN
            )));
        }
        self.wal.append(wal::frame(kind, tenant, body)).await
    }

    /// Returns a snapshot of the engine's counters.
    pub fn stats(&self) -> StorageStats {
        let state = read_lock(&self.state);
        let counters = &self.counters;
        StorageStats {
            wal_bytes_written: self.wal.stats.bytes.load(Ordering::Relaxed),
            wal_fsyncs: self.wal.stats.fsyncs.load(Ordering::Relaxed),
            wal_records: self.wal.stats.records.load(Ordering::Relaxed),
            memtable_bytes: state.active.bytes()
                + state.frozen.iter().map(|g| g.bytes()).sum::<u64>(),
            series: read_lock(&self.catalogs)
                .values()
                .map(|c| read_lock(&c.series).len() as u64)
                .sum(),
            segments: state.manifest.segments.len() as u64,
            segment_bytes: state.manifest.segments.iter().map(|s| s.bytes).sum(),
            flushes: counters.flushes.load(Ordering::Relaxed),
            compactions: counters.compactions.load(Ordering::Relaxed),
            retention_deleted_segments: counters.retention_deleted.load(Ordering::Relaxed),
            backpressure_rejections: counters.backpressure.load(Ordering::Relaxed),
            appended_rows: std::array::from_fn(|i| counters.appended[i].load(Ordering::Relaxed)),
            fanout: self.fanout_stats(),
        }
    }

    /// Returns the live segments.
    pub fn segments(&self) -> Vec<crate::SegmentMeta> {
        read_lock(&self.state).manifest.segments.clone()
    }

    /// Stops accepting writes, waits for in-flight appends to be fsynced, stops the
    /// background tasks. Data stays in the WAL; nothing acknowledged is lost.
    pub async fn close(&self) -> Result<()> {
        if self.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let _ = self.shutdown.send(true);
        let tasks: Vec<JoinHandle<()>> =
            std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|p| p.into_inner()));
        for task in tasks {
            if let Err(e) = task.await {
                warn!(error = %e, "a storage task ended abnormally");
            }
        }
        let _manifest = self.manifest_lock.lock().await;
        let _gate = self.gate.write().await;
        self.wal.close().await;
        info!("storage closed");
        Ok(())
    }

    fn start_background_tasks(self: &Arc<Self>) {
        let mut tasks = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
        let weak = Arc::downgrade(self);
        if self.duties.ingest {
            tasks.push(tokio::spawn(flush_loop(
                weak.clone(),
                self.flush_wanted.clone(),
                self.shutdown.subscribe(),
                self.config.flush_interval.get(),
            )));
        }
        if self.duties.maintain {
            tasks.push(tokio::spawn(maintenance_loop(
                weak.clone(),
                self.shutdown.subscribe(),
                self.config.compaction_interval.get(),
            )));
        }
        if !self.duties.ingest && self.config.fanout.enabled {
            tasks.push(tokio::spawn(crate::fanout::series_loop(
                weak.clone(),
                self.shutdown.subscribe(),
                self.config.fanout.series_interval.get(),
            )));
        }
        if self.catalog.is_shared() || self.duties != Duties::ALL {
            tasks.push(tokio::spawn(crate::catalog::refresh_loop(
                weak,
                self.shutdown.subscribe(),
                self.config.catalog.refresh_interval.get(),
            )));
        }
    }

    /// Deletes objects that no manifest entry names (left by a crash mid-flush or
    /// mid-compaction, or by deletes that were pending at shutdown).
    async fn remove_orphans(&self) -> Result<()> {
        let manifest = read_lock(&self.state).manifest.clone();
        let mut removed = 0;
        for object in self.store.list(&ObjectPath::from("")).await? {
            let path = object.location.as_ref().to_string();
            if !manifest.references(&path) {
                self.store.delete(&object.location).await?;
                removed += 1;
            }
        }
        if removed > 0 {
            info!(removed, "removed objects no segment refers to");
        }
        Ok(())
    }

    /// Moves just-flushed generations to the ones kept for queriers and drops those
    /// kept longer than `fanout.keep_flushed` or beyond a quarter of the memory limit.
    pub(crate) fn keep_flushed(&self, state: &mut State, flushed: &[Arc<Generation>]) {
        let now = Instant::now();
        let keep = self.config.fanout.keep_flushed.get();
        if self.duties.ingest && !keep.is_zero() {
            state
                .recent
                .extend(flushed.iter().map(|g| (g.clone(), now)));
        } else if let Some(last) = flushed.iter().map(|g| g.wal_end()).max() {
            state.memory_from = state.memory_from.max(last);
        }
        let budget = self.config.memory_limit.bytes() / 4;
        let mut held: u64 = state.recent.iter().map(|(g, _)| g.bytes()).sum();
        while let Some((oldest, at)) = state.recent.first() {
            if now.duration_since(*at) < keep && held <= budget {
                break;
            }
            held = held.saturating_sub(oldest.bytes());
            state.memory_from = state.memory_from.max(oldest.wal_end());
            state.recent.remove(0);
        }
    }

    /// Deletes files whose grace period is over.
    pub(crate) async fn run_pending_deletes(&self, force: bool) {
        let due: Vec<ObjectPath> = {
            let mut pending = self
                .pending_deletes
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            let (due, keep): (Vec<_>, Vec<_>) = pending
                .drain(..)
                .partition(|(at, _)| force || now.duration_since(*at) >= DELETE_GRACE);
            *pending = keep;
            due.into_iter().flat_map(|(_, paths)| paths).collect()
        };
        for path in due {
            if let Err(e) = self.store.delete(&path).await {
                warn!(path = %path, error = %e, "cannot delete a replaced segment file");
            }
        }
    }

    pub(crate) fn schedule_delete(&self, paths: Vec<ObjectPath>) {
        if paths.is_empty() {
            return;
        }
        self.pending_deletes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((Instant::now(), paths));
    }

    pub(crate) fn forget_indexes(&self, segment_ids: &[u64]) {
        self.store.forget_metadata(segment_ids);
        let mut cache = self.index_cache.lock().unwrap_or_else(|p| p.into_inner());
        for id in segment_ids {
            cache.remove(id);
        }
    }

    pub(crate) fn cache_index(&self, segment_id: u64, index: Arc<LogIndex>) {
        let mut cache = self.index_cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= INDEX_CACHE_ENTRIES
            && let Some(victim) = cache.keys().next().copied()
        {
            cache.remove(&victim);
        }
        cache.insert(segment_id, index);
    }
}

fn signal_index(signal: Signal) -> usize {
    match signal {
        Signal::Metrics => 0,
        Signal::Logs => 1,
        Signal::Spans => 2,
    }
}

/// Looks up (or creates) the id of every series of a write; new ones go to `new_series`.
fn resolve_series<'a>(
    catalog: &TenantCatalog,
    write: &'a MetricsWrite,
    new_series: &mut Vec<(SeriesId, &'a Labels)>,
    max_series: u64,
    base: u64,
) -> Result<Vec<SeriesId>> {
    let mut ids = Vec::with_capacity(write.series.len());
    let mut missing = Vec::new();
    {
        let index = read_lock(&catalog.series);
        for (i, series) in write.series.iter().enumerate() {
            match index.get(&series.labels) {
                Some(id) => ids.push(id),
                None => {
                    ids.push(SeriesId(u64::MAX));
                    missing.push(i);
                }
            }
        }
    }
    // A series already in the index was checked when it was created: only new label
    // sets need a metric name.
    if missing
        .iter()
        .any(|i| write.series[*i].labels.metric_name().is_empty())
    {
        return Err(Error::InvalidWrite(
            "a series has no __name__ label".to_string(),
        ));
    }
    if !missing.is_empty() {
        let mut index = write_lock(&catalog.series);
        if max_series > 0 {
            let mut to_create: Vec<&Labels> = missing
                .iter()
                .map(|i| &write.series[*i].labels)
                .filter(|labels| index.get(labels).is_none())
                .collect();
            to_create.sort_unstable();
            to_create.dedup();
            if index.len() as u64 + to_create.len() as u64 > max_series {
                return Err(Error::InvalidWrite(format!(
                    "the tenant's series limit ({max_series}) is reached: {} new series refused",
                    to_create.len()
                )));
            }
        }
        for i in missing {
            let (id, created) = index.get_or_create(&write.series[i].labels, base);
            if created {
                new_series.push((id, &write.series[i].labels));
            }
            ids[i] = id;
        }
    }
    Ok(ids)
}

/// Puts a metrics record into the catalog and memtable (after it is durable, or on replay).
fn apply_metrics(
    catalog: &TenantCatalog,
    memtable: &crate::memtable::TenantMemtable,
    record: MetricsRecord,
) {
    if !record.new_series.is_empty() {
        let mut index = write_lock(&catalog.series);
        for (id, labels) in &record.new_series {
            index.insert_with_id(*id, labels, false);
        }
    }
    if !record.samples.is_empty() {
        memtable.append_samples(&record.samples);
        // Samples of one series are contiguous in a record: widen bounds once per run.
        let mut index = write_lock(&catalog.series);
        let mut run_start = 0;
        for i in 1..=record.samples.len() {
            if i == record.samples.len() || record.samples[i].0 != record.samples[run_start].0 {
                let run = &record.samples[run_start..i];
                let min = run.iter().map(|s| s.1).min().unwrap_or(i64::MAX);
                let max = run.iter().map(|s| s.1).max().unwrap_or(i64::MIN);
                index.observe(SeriesId(run[0].0), min, max);
                run_start = i;
            }
        }
    }
    if !record.exemplars.is_empty() {
        memtable.append_exemplars(record.exemplars);
    }
    if !record.metadata.is_empty() {
        let mut metadata = write_lock(&catalog.metadata);
        for entry in record.metadata {
            if metadata.get(&entry.metric) != Some(&entry) {
                metadata.insert(entry.metric.clone(), entry);
                catalog.metadata_dirty.store(true, Ordering::Release);
            }
        }
    }
}

pub(crate) fn trace_ids(batch: &RecordBatch) -> Result<Vec<TraceId>> {
    let column = batch
        .column(span_col::TRACE_ID)
        .as_any()
        .downcast_ref::<FixedSizeBinaryArray>()
        .ok_or_else(|| Error::InvalidWrite("spans trace_id column is not binary".to_string()))?;
    if column.null_count() > 0 {
        return Err(Error::InvalidWrite("a span has no trace id".to_string()));
    }
    Ok((0..column.len())
        .map(|i| TraceId::from_slice(column.value(i)).unwrap_or_default())
        .collect())
}

fn replay_entry(
    entry: WalEntry,
    catalogs: &mut HashMap<TenantId, Arc<TenantCatalog>>,
    active: &Generation,
) -> Result<()> {
    let memtable = active.tenant(&entry.tenant);
    match entry.kind {
        RecordKind::Metrics => {
            let record = MetricsRecord::decode(&entry.body)?;
            let catalog = catalogs.entry(entry.tenant.clone()).or_default().clone();
            let samples = record.samples.len() as u64;
            apply_metrics(&catalog, &memtable, record);
            active.add_usage(samples, samples * SAMPLE_BYTES);
        }
        RecordKind::Logs => {
            for batch in codec::decode_batches(&entry.body)? {
                check_schema(&batch, &LOGS_SCHEMA, "logs")?;
                active.add_usage(
                    batch.num_rows() as u64,
                    batch.get_array_memory_size() as u64,
                );
                memtable.append_logs(batch);
            }
        }
        RecordKind::Spans => {
            for batch in codec::decode_batches(&entry.body)? {
                check_schema(&batch, &SPANS_SCHEMA, "spans")?;
                let ids = trace_ids(&batch)?;
                active.add_usage(
                    batch.num_rows() as u64,
                    batch.get_array_memory_size() as u64,
                );
                memtable.append_spans(batch, ids);
            }
        }
    }
    Ok(())
}

/// Rebuilds every tenant's series index and metadata from their segments.
pub(crate) async fn load_catalogs(
    store: &SegmentStore,
    manifest: &Manifest,
) -> Result<HashMap<TenantId, Arc<TenantCatalog>>> {
    let mut catalogs: HashMap<TenantId, Arc<TenantCatalog>> = HashMap::new();
    for segment in &manifest.segments {
        let tenant = TenantId::new(segment.tenant.clone()).map_err(|e| Error::Corrupt {
            what: "manifest".into(),
            reason: e.to_string(),
        })?;
        let catalog = catalogs.entry(tenant).or_default().clone();
        load_catalog_segment(store, segment, &catalog).await?;
    }
    Ok(catalogs)
}

/// Puts the series or metadata of one segment into a tenant's catalog (other tables: nothing).
pub(crate) async fn load_catalog_segment(
    store: &SegmentStore,
    segment: &crate::SegmentMeta,
    catalog: &TenantCatalog,
) -> Result<()> {
    match segment.table {
        Table::Series => {
            let batches = crate::segment::read(store, segment, |_| true, None).await?;
            let loaded = crate::series_segment::series_from_batches(&batches)?;
            let mut index = write_lock(&catalog.series);
            for (id, labels) in loaded {
                index.insert_with_id(id, &labels, true);
                // Segment series have samples somewhere on disk; their span is not tracked.
                index.observe(id, i64::MIN, i64::MAX);
            }
        }
        Table::Metadata => {
            let batches = crate::segment::read(store, segment, |_| true, None).await?;
            let mut metadata = write_lock(&catalog.metadata);
            for entry in crate::flush::metadata_from_batches(&batches)? {
                metadata.insert(entry.metric.clone(), entry);
            }
        }
        Table::Samples | Table::Exemplars | Table::Logs | Table::Spans => {}
    }
    Ok(())
}

async fn flush_loop(
    storage: Weak<Storage>,
    wanted: Arc<Notify>,
    mut shutdown: watch::Receiver<bool>,
    interval: Duration,
) {
    loop {
        tokio::select! {
            _ = wanted.notified() => {}
            _ = tokio::time::sleep(interval) => {}
            _ = shutdown.changed() => return,
        }
        let Some(storage) = storage.upgrade() else {
            return;
        };
        if let Err(e) = storage.flush().await {
            error!(error = ?e, "background flush failed; the data stays in the wal and memtables");
        }
    }
}

async fn maintenance_loop(
    storage: Weak<Storage>,
    mut shutdown: watch::Receiver<bool>,
    interval: Duration,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shutdown.changed() => return,
        }
        let Some(storage) = storage.upgrade() else {
            return;
        };
        let now_ns = crate::now_ns();
        if let Err(e) = storage.apply_retention(now_ns).await {
            error!(error = ?e, "retention failed");
        }
        if let Err(e) = storage.compact().await {
            error!(error = ?e, "compaction failed");
        }
        storage.run_pending_deletes(false).await;
    }
}

/// Reports a flush.
pub(crate) fn merge_reports(into: &mut FlushReport, segment: &crate::SegmentMeta) {
    into.segments += 1;
    into.rows += segment.rows;
    into.bytes += segment.bytes;
}
