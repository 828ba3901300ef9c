//! Compaction (merge small segments of one tenant, table and day) and retention
//! (drop segments older than the signal's retention).
//!
//! Both change the catalog in one atomic step, so a reader sees the old segments or
//! the merged one, never both; the replaced files stay for a grace period so that
//! scans that started before keep working, and are deleted after it. Each compaction
//! range (tenant, table, day) is merged under a lease in the catalog, so with several
//! compacting nodes exactly one merges it; retention deletes objects, then rows.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use arrow::array::{Array, Float64Array, Int64Array, RecordBatch, UInt64Array};
use object_store::path::Path as ObjectPath;
use proto::TenantId;
use tracing::{info, warn};

use crate::catalog::{CatalogChange, compaction_range_key};
use crate::engine::{Storage, TenantCatalog};
use crate::flush::{self, EncodedSegment};
use crate::manifest::{SegmentMeta, Table};
use crate::model::EXEMPLARS_SCHEMA;
use crate::{Error, Result, segment};

const NS_PER_DAY: i64 = 86_400 * 1_000_000_000;

/// The day a segment is compacted within (0 for tables without time).
fn compaction_day(segment: &SegmentMeta) -> i64 {
    if segment.table.has_retention() {
        segment.min_time_ns.div_euclid(NS_PER_DAY)
    } else {
        0
    }
}

impl Storage {
    /// Merges groups of small segments; returns the number of merges done.
    ///
    /// With a shared catalog the segment list is reloaded first, each group (tenant,
    /// table, day) is merged only under its lease, and its inputs are listed again from
    /// the catalog once the lease is held, so a range another node has just compacted
    /// is not compacted again. The commit also checks that every input is still live.
    pub async fn compact(&self) -> Result<usize> {
        if self.catalog.is_shared() {
            self.refresh_catalog().await?;
        }
        let _guard = self.manifest_lock.lock().await;
        let manifest = self
            .state
            .read()
            .map(|s| s.manifest.clone())
            .map_err(|_| Error::Task("state lock poisoned".into()))?;
        let mut groups: BTreeMap<(String, Table, i64), Vec<SegmentMeta>> = BTreeMap::new();
        for segment in manifest.segments.iter().filter(|s| self.compactable(s)) {
            groups
                .entry((
                    segment.tenant.clone(),
                    segment.table,
                    compaction_day(segment),
                ))
                .or_default()
                .push(segment.clone());
        }
        let mut next = (*manifest).clone();
        let mut merges = 0;
        let mut replaced = Vec::new();
        let ttl = self.config.catalog.lease_ttl.get();
        for ((tenant, table, day), inputs) in groups {
            if inputs.len() < self.config.compaction_min_segments {
                continue;
            }
            let tenant = TenantId::new(tenant).map_err(|e| Error::Corrupt {
                what: "manifest".into(),
                reason: e.to_string(),
            })?;
            let lease = compaction_range_key(tenant.as_str(), table, day);
            if !self.catalog.acquire_lease(&lease, ttl).await? {
                info!(range = %lease, "another node holds the compaction lease; skipping the range");
                continue;
            }
            let outcome = self.compact_range(&tenant, table, day, inputs).await;
            if let Err(e) = self.catalog.release_lease(&lease).await {
                warn!(range = %lease, error = ?e, "cannot release a compaction lease; it expires by itself");
            }
            let Some((removed, merged)) = outcome? else {
                continue;
            };
            next = next.apply(
                &removed.iter().map(|s| s.id).collect::<Vec<_>>(),
                vec![merged],
            );
            replaced.extend(removed);
            merges += 1;
        }
        if merges == 0 {
            return Ok(0);
        }
        self.install_manifest(next);
        let ids: Vec<u64> = replaced.iter().map(|s| s.id).collect();
        self.forget_indexes(&ids);
        self.schedule_delete(
            replaced
                .iter()
                .flat_map(SegmentMeta::object_paths)
                .collect(),
        );
        self.counters
            .compactions
            .fetch_add(merges as u64, Ordering::Relaxed);
        Ok(merges)
    }

    fn compactable(&self, segment: &SegmentMeta) -> bool {
        segment.table != Table::Metadata
            && segment.bytes < self.config.compaction_target_size.bytes()
    }

    /// Merges one range under its lease; returns the inputs replaced and the merged
    /// segment, or `None` when there is nothing (left) to merge.
    async fn compact_range(
        &self,
        tenant: &TenantId,
        table: Table,
        day: i64,
        mut inputs: Vec<SegmentMeta>,
    ) -> Result<Option<(Vec<SegmentMeta>, SegmentMeta)>> {
        if self.catalog.is_shared() {
            // The lease is ours: the catalog's list of the range is the one to merge.
            let (start, end) = if table.has_retention() {
                (day * NS_PER_DAY, (day + 1) * NS_PER_DAY - 1)
            } else {
                (i64::MIN, i64::MAX)
            };
            inputs = self
                .catalog
                .list_segments(tenant, table, start, end)
                .await?
                .into_iter()
                .filter(|s| self.compactable(s) && compaction_day(s) == day)
                .collect();
            if inputs.len() < self.config.compaction_min_segments {
                return Ok(None);
            }
        }
        inputs.sort_by_key(|s| s.id);
        let mut batches = Vec::new();
        for input in &inputs {
            batches.push(segment::read(&self.store, input, |_| true, None).await?);
        }
        let level = inputs.iter().map(|s| s.level).max().unwrap_or(0) + 1;
        let catalog = self.existing_catalog(tenant);
        let encoded = self
            .blocking(move |config| merge(table, batches, catalog.as_deref(), config))
            .await?;
        let merged = self.upload(tenant, encoded, level).await?;
        let change = CatalogChange {
            added: vec![merged.clone()],
            removed: inputs.iter().map(|s| s.id).collect(),
            removed_must_exist: true,
            wal_checkpoint: None,
        };
        match self.catalog.commit(change).await {
            Ok(()) => {}
            Err(Error::Conflict(reason)) => {
                warn!(tenant = %tenant, table = table.as_str(), reason, "compaction lost a race; dropping its output");
                for path in merged.object_paths() {
                    self.store.delete(&path).await?;
                }
                return Ok(None);
            }
            Err(e) => return Err(e),
        }
        info!(tenant = %tenant, table = table.as_str(), inputs = inputs.len(), rows = merged.rows, "compacted segments");
        Ok(Some((inputs, merged)))
    }

    /// Drops segments whose newest row is older than the retention of their signal:
    /// their objects first, then their catalog rows (a crash in between leaves rows
    /// that the next run removes, never objects nothing names).
    pub async fn apply_retention(&self, now_ns: i64) -> Result<usize> {
        if self.catalog.is_shared() {
            self.refresh_catalog().await?;
        }
        let _guard = self.manifest_lock.lock().await;
        let manifest = self
            .state
            .read()
            .map(|s| s.manifest.clone())
            .map_err(|_| Error::Task("state lock poisoned".into()))?;
        let expired: Vec<SegmentMeta> = manifest
            .segments
            .iter()
            .filter(|s| s.table.has_retention())
            .filter(|s| {
                let retention = match s.table.signal() {
                    proto::Signal::Metrics => self.config.metrics_retention,
                    proto::Signal::Logs => self.config.logs_retention,
                    proto::Signal::Spans => self.config.spans_retention,
                };
                let retention_ns = i64::try_from(retention.get().as_nanos()).unwrap_or(i64::MAX);
                s.max_time_ns < now_ns.saturating_sub(retention_ns)
            })
            .cloned()
            .collect();
        if expired.is_empty() {
            return Ok(0);
        }
        let lease = "retention";
        if !self
            .catalog
            .acquire_lease(lease, self.config.catalog.lease_ttl.get())
            .await?
        {
            return Ok(0);
        }
        let removed: Vec<u64> = expired.iter().map(|s| s.id).collect();
        let outcome = self.delete_expired(&expired, &removed).await;
        if let Err(e) = self.catalog.release_lease(lease).await {
            warn!(error = ?e, "cannot release the retention lease; it expires by itself");
        }
        outcome?;
        self.install_manifest(manifest.apply(&removed, Vec::new()));
        self.forget_indexes(&removed);
        self.counters
            .retention_deleted
            .fetch_add(expired.len() as u64, Ordering::Relaxed);
        info!(
            segments = expired.len(),
            "retention removed expired segments"
        );
        Ok(expired.len())
    }

    async fn delete_expired(&self, expired: &[SegmentMeta], removed: &[u64]) -> Result<()> {
        // Expired data is past its retention: nothing should read it any more.
        let paths: Vec<ObjectPath> = expired.iter().flat_map(SegmentMeta::object_paths).collect();
        for path in &paths {
            self.store.delete(path).await?;
        }
        self.catalog
            .commit(CatalogChange {
                removed: removed.to_vec(),
                ..CatalogChange::default()
            })
            .await
    }

    fn install_manifest(&self, manifest: crate::Manifest) {
        let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
        state.manifest = Arc::new(manifest);
    }

    /// Deletes every replaced file now instead of after the grace period (tests, shutdown).
    pub async fn delete_replaced_segments_now(&self) {
        self.run_pending_deletes(true).await;
    }
}

/// Merges the rows of several segments of one table into one sorted segment (samples:
/// in the layout of a flushed segment, with the metric ranks of `catalog`).
fn merge(
    table: Table,
    inputs: Vec<Vec<RecordBatch>>,
    catalog: Option<&TenantCatalog>,
    config: &crate::Config,
) -> Result<EncodedSegment> {
    let level = config.zstd_level_compacted;
    let batches: Vec<RecordBatch> = inputs.into_iter().flatten().collect();
    match table {
        Table::Samples => {
            // Inputs are in segment order: on equal (series, ts) the later input wins.
            let mut rows: Vec<(u64, i64, usize, f64)> = Vec::new();
            for batch in &batches {
                let (ids, ts, values) = sample_columns(batch)?;
                for row in 0..batch.num_rows() {
                    rows.push((ids.value(row), ts.value(row), rows.len(), values.value(row)));
                }
            }
            rows.sort_unstable_by_key(|(id, ts, order, _)| (*id, *ts, *order));
            let mut series: Vec<(u64, Vec<(i64, f64)>)> = Vec::new();
            for (id, t, _, v) in rows {
                match series.last_mut() {
                    Some((last, points)) if *last == id => match points.last_mut() {
                        Some(point) if point.0 == t => point.1 = v,
                        _ => points.push((t, v)),
                    },
                    _ => series.push((id, vec![(t, v)])),
                }
            }
            let ranks = flush::metric_ranks(catalog, series.iter().map(|(id, _)| *id));
            let series = series
                .iter()
                .map(|(id, points)| (*id, &points[..]))
                .collect();
            flush::encode_samples(series, &ranks, level, config.row_group_rows)
        }
        Table::Exemplars => {
            let sorted = segment::sort_batches(&EXEMPLARS_SCHEMA, &batches, &[0, 1])?;
            let ts = sorted.column(1).as_any().downcast_ref::<Int64Array>();
            let (min, max) = ts
                .map(|ts| {
                    (
                        arrow::compute::min(ts).unwrap_or(0),
                        arrow::compute::max(ts).unwrap_or(0),
                    )
                })
                .unwrap_or((0, 0));
            flush::encode_exemplar_batch(sorted, level, config.row_group_rows, min, max)
        }
        Table::Logs => flush::encode_logs(&batches, level, config),
        Table::Spans => flush::encode_spans(&batches, level, config.row_group_rows),
        Table::Series => {
            let mut series = crate::series_segment::series_from_batches(&batches)?;
            series.sort_by_key(|(id, _)| *id);
            series.dedup_by_key(|(id, _)| *id);
            let series: Vec<_> = series
                .into_iter()
                .map(|(id, labels)| (id.0, labels))
                .collect();
            crate::series_segment::encode_series(&series, config)
        }
        Table::Metadata => Err(Error::Task(
            "metadata segments are replaced, not merged".into(),
        )),
    }
}

fn sample_columns(batch: &RecordBatch) -> Result<(&UInt64Array, &Int64Array, &Float64Array)> {
    let ids = batch.column(0).as_any().downcast_ref::<UInt64Array>();
    let ts = batch.column(1).as_any().downcast_ref::<Int64Array>();
    let values = batch.column(2).as_any().downcast_ref::<Float64Array>();
    match (ids, ts, values) {
        (Some(ids), Some(ts), Some(values)) if ids.null_count() == 0 => Ok((ids, ts, values)),
        _ => Err(Error::Corrupt {
            what: "samples segment".into(),
            reason: "unexpected column types".into(),
        }),
    }
}
