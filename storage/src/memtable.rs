//! Memtables: the rows acknowledged since the last flush, queryable at once.
//!
//! A [`Generation`] holds one memtable per tenant. Appends go to the active
//! generation; a flush freezes it (it stays readable) and starts a new one, and the
//! frozen one disappears from reads in the same step that puts its segments in the
//! manifest. Samples are kept per series in flat column vectors (no per-sample
//! objects), sharded so that concurrent writers rarely share a lock.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};

use arrow::array::RecordBatch;
use proto::{TenantId, TraceId};

use crate::idmap::IdMap;
use crate::metrics::Exemplar;

const SHARDS: usize = 16;

/// Samples of one series, in arrival order: `(ts, value)` pairs in one allocation.
#[derive(Debug, Default, Clone)]
pub(crate) struct SeriesBuffer {
    points: Vec<(i64, f64)>,
    sorted: bool,
}

impl SeriesBuffer {
    fn push(&mut self, ts: i64, value: f64) {
        match self.points.last() {
            None => self.sorted = true,
            Some((last, _)) if *last >= ts => self.sorted = false,
            Some(_) => {}
        }
        self.points.push((ts, value));
    }

    /// Returns the `(ts, value)` pairs in arrival order.
    pub fn points(&self) -> &[(i64, f64)] {
        &self.points
    }

    /// The points sorted by time, one per timestamp (the last written wins): borrowed
    /// when they arrived in order (the usual case), else a sorted copy.
    pub fn sorted_points(&self) -> Cow<'_, [(i64, f64)]> {
        if self.sorted {
            return Cow::Borrowed(&self.points);
        }
        let mut sorted = self.points.clone();
        // Stable: among equal timestamps the last written stays last.
        sorted.sort_by_key(|(t, _)| *t);
        let mut out: Vec<(i64, f64)> = Vec::with_capacity(sorted.len());
        for (t, v) in sorted {
            match out.last_mut() {
                Some(last) if last.0 == t => last.1 = v,
                _ => out.push((t, v)),
            }
        }
        Cow::Owned(out)
    }
}

/// Spans of one tenant plus a trace id → rows map.
#[derive(Default)]
pub(crate) struct SpanBuffer {
    pub batches: Vec<RecordBatch>,
    pub by_trace: HashMap<TraceId, Vec<(u32, u32)>>,
}

/// The memtable of one tenant within one generation.
pub(crate) struct TenantMemtable {
    samples: [RwLock<IdMap<u64, SeriesBuffer>>; SHARDS],
    pub exemplars: Mutex<Vec<(u64, Exemplar)>>,
    pub logs: Mutex<Vec<RecordBatch>>,
    pub spans: Mutex<SpanBuffer>,
}

impl Default for TenantMemtable {
    fn default() -> Self {
        TenantMemtable {
            samples: std::array::from_fn(|_| RwLock::new(IdMap::default())),
            exemplars: Mutex::default(),
            logs: Mutex::default(),
            spans: Mutex::default(),
        }
    }
}

// A panic while holding a memtable lock leaves plain data behind; keep serving it.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl TenantMemtable {
    /// Appends samples given as `(series, ts, value)`, grouped by shard.
    pub fn append_samples(&self, samples: &[(u64, i64, f64)]) {
        let mut by_shard: [Vec<usize>; SHARDS] = std::array::from_fn(|_| Vec::new());
        for (i, (series, _, _)) in samples.iter().enumerate() {
            by_shard[*series as usize % SHARDS].push(i);
        }
        for (shard, rows) in by_shard.iter().enumerate() {
            if rows.is_empty() {
                continue;
            }
            let mut map = write(&self.samples[shard]);
            for &i in rows {
                let (series, ts, value) = samples[i];
                map.entry(series).or_default().push(ts, value);
            }
        }
    }

    /// Calls `visit` with each series' buffer among `series` (sorted ids).
    pub fn visit_series(&self, series: &[u64], mut visit: impl FnMut(u64, &SeriesBuffer)) {
        for id in series {
            let map = read(&self.samples[*id as usize % SHARDS]);
            if let Some(buffer) = map.get(id) {
                visit(*id, buffer);
            }
        }
    }

    /// Calls `encode` with every series' points sorted by time (one per timestamp), by
    /// series id, for a flush. The points are borrowed from the memtable (read locks held
    /// meanwhile: a frozen memtable takes no writes, and reads share them), so a flush
    /// holds no second copy of the samples; only series written out of order are copied.
    pub fn with_sorted_series<R>(&self, encode: impl FnOnce(Vec<(u64, &[(i64, f64)])>) -> R) -> R {
        let shards: Vec<_> = self.samples.iter().map(read).collect();
        // Sorted copies of the series written out of order, made first so that the list
        // can borrow them beside the in-order ones.
        let copies: Vec<_> = shards
            .iter()
            .flat_map(|map| map.iter().filter(|(_, b)| !b.sorted))
            .map(|(id, buffer)| (*id, buffer.sorted_points()))
            .collect();
        let mut series: Vec<(u64, &[(i64, f64)])> = shards
            .iter()
            .flat_map(|map| map.iter().filter(|(_, b)| b.sorted))
            .map(|(id, buffer)| (*id, &buffer.points[..]))
            .chain(copies.iter().map(|(id, points)| (*id, &points[..])))
            .collect();
        series.sort_unstable_by_key(|(id, _)| *id);
        encode(series)
    }

    /// Appends a logs batch.
    pub fn append_logs(&self, batch: RecordBatch) {
        lock(&self.logs).push(batch);
    }

    /// Returns the logs batches.
    pub fn logs(&self) -> Vec<RecordBatch> {
        lock(&self.logs).clone()
    }

    /// Appends a spans batch and indexes its trace ids.
    pub fn append_spans(&self, batch: RecordBatch, trace_ids: Vec<TraceId>) {
        let mut spans = lock(&self.spans);
        let batch_index = spans.batches.len() as u32;
        for (row, trace_id) in trace_ids.into_iter().enumerate() {
            spans
                .by_trace
                .entry(trace_id)
                .or_default()
                .push((batch_index, row as u32));
        }
        spans.batches.push(batch);
    }

    /// Returns the spans batches.
    pub fn spans(&self) -> Vec<RecordBatch> {
        lock(&self.spans).batches.clone()
    }

    /// Returns the rows of one trace as `(batch, row)` pairs with the batches they point into.
    pub fn trace_rows(&self, trace_id: &TraceId) -> (Vec<RecordBatch>, Vec<(u32, u32)>) {
        let spans = lock(&self.spans);
        let rows = spans.by_trace.get(trace_id).cloned().unwrap_or_default();
        (spans.batches.clone(), rows)
    }

    /// Appends exemplars.
    pub fn append_exemplars(&self, exemplars: Vec<(u64, Exemplar)>) {
        lock(&self.exemplars).extend(exemplars);
    }

    /// Returns the exemplars.
    pub fn exemplars(&self) -> Vec<(u64, Exemplar)> {
        lock(&self.exemplars).clone()
    }
}

/// The memtables of every tenant, appended to until a flush freezes them.
#[derive(Default)]
pub(crate) struct Generation {
    tenants: RwLock<HashMap<TenantId, Arc<TenantMemtable>>>,
    bytes: AtomicU64,
    rows: AtomicU64,
    /// The WAL sequence this generation ends before, set when a flush freezes it (0
    /// while it is active): its rows are in the WAL files below it.
    wal_end: AtomicU64,
}

impl Generation {
    /// The WAL sequence this generation ends before (0: still active).
    pub fn wal_end(&self) -> u64 {
        self.wal_end.load(Ordering::Acquire)
    }

    /// Records where the generation ends in the WAL (at freeze).
    pub fn set_wal_end(&self, seq: u64) {
        self.wal_end.store(seq, Ordering::Release);
    }

    /// Returns the tenant's memtable, creating it on first use.
    pub fn tenant(&self, tenant: &TenantId) -> Arc<TenantMemtable> {
        if let Some(memtable) = self
            .tenants
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(tenant)
        {
            return memtable.clone();
        }
        self.tenants
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .entry(tenant.clone())
            .or_default()
            .clone()
    }

    /// Returns the tenant's memtable if it has one.
    pub fn get(&self, tenant: &TenantId) -> Option<Arc<TenantMemtable>> {
        self.tenants
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(tenant)
            .cloned()
    }

    /// Every tenant with a memtable.
    pub fn tenants(&self) -> Vec<(TenantId, Arc<TenantMemtable>)> {
        let map = self.tenants.read().unwrap_or_else(|p| p.into_inner());
        let mut tenants: Vec<_> = map.iter().map(|(t, m)| (t.clone(), m.clone())).collect();
        tenants.sort_by(|a, b| a.0.cmp(&b.0));
        tenants
    }

    /// Accounts for appended rows and their approximate memory.
    pub fn add_usage(&self, rows: u64, bytes: u64) {
        self.rows.fetch_add(rows, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Approximate bytes held.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Rows held.
    pub fn rows(&self) -> u64 {
        self.rows.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_order_samples_are_sorted_and_deduplicated() {
        let memtable = TenantMemtable::default();
        memtable.append_samples(&[(7, 30, 3.0), (7, 10, 1.0), (7, 30, 4.0), (8, 5, 0.5)]);
        memtable.with_sorted_series(|all| {
            assert_eq!(
                all,
                vec![(7, &[(10, 1.0), (30, 4.0)][..]), (8, &[(5, 0.5)][..])]
            );
        });
    }
}
