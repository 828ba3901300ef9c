//! Compaction (merge small segments of one tenant, table and day) and retention
//! (drop segments older than the signal's retention).
//!
//! Both change the manifest in one atomic step, so a reader sees the old segments or
//! the merged one, never both; the replaced files stay for a grace period so that
//! scans that started before keep working, and are deleted after it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use arrow::array::{Array, Float64Array, Int64Array, RecordBatch, UInt64Array};
use object_store::path::Path as ObjectPath;
use proto::TenantId;
use tracing::info;

use crate::engine::Storage;
use crate::flush::{self, EncodedSegment};
use crate::manifest::{SegmentMeta, Table};
use crate::model::EXEMPLARS_SCHEMA;
use crate::{Error, Result, segment};

const NS_PER_DAY: i64 = 86_400 * 1_000_000_000;

impl Storage {
    /// Merges groups of small segments; returns the number of merges done.
    pub async fn compact(&self) -> Result<usize> {
        let _guard = self.manifest_lock.lock().await;
        let manifest = self
            .state
            .read()
            .map(|s| s.manifest.clone())
            .map_err(|_| Error::Task("state lock poisoned".into()))?;
        let mut groups: BTreeMap<(String, Table, i64), Vec<SegmentMeta>> = BTreeMap::new();
        for segment in &manifest.segments {
            if segment.table == Table::Metadata
                || segment.bytes >= self.config.compaction_target_size.bytes()
            {
                continue;
            }
            let day = if segment.table.has_retention() {
                segment.min_time_ns.div_euclid(NS_PER_DAY)
            } else {
                0
            };
            groups
                .entry((segment.tenant.clone(), segment.table, day))
                .or_default()
                .push(segment.clone());
        }
        let mut next = (*manifest).clone();
        let mut merges = 0;
        let mut replaced = Vec::new();
        for ((tenant, table, _), mut inputs) in groups {
            if inputs.len() < self.config.compaction_min_segments {
                continue;
            }
            inputs.sort_by_key(|s| s.id);
            let tenant = TenantId::new(tenant).map_err(|e| Error::Corrupt {
                what: "manifest".into(),
                reason: e.to_string(),
            })?;
            let mut batches = Vec::new();
            for input in &inputs {
                batches.push(segment::read(&self.store, input, |_| true, None).await?);
            }
            let level = inputs.iter().map(|s| s.level).max().unwrap_or(0) + 1;
            let encoded = self
                .blocking(move |config| merge(table, batches, config))
                .await?;
            let mut next_id = next.next_segment_id;
            let merged = self.upload(&tenant, encoded, &mut next_id, level).await?;
            next.next_segment_id = next_id;
            let removed: Vec<u64> = inputs.iter().map(|s| s.id).collect();
            info!(tenant = %tenant, table = table.as_str(), inputs = removed.len(), rows = merged.rows, "compacted segments");
            next = next.apply(&removed, vec![merged]);
            replaced.extend(inputs);
            merges += 1;
        }
        if merges == 0 {
            return Ok(0);
        }
        next.store(&self.store).await?;
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

    /// Drops segments whose newest row is older than the retention of their signal.
    pub async fn apply_retention(&self, now_ns: i64) -> Result<usize> {
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
        let removed: Vec<u64> = expired.iter().map(|s| s.id).collect();
        let next = manifest.apply(&removed, Vec::new());
        next.store(&self.store).await?;
        self.install_manifest(next);
        self.forget_indexes(&removed);
        // Expired data is past its retention: nothing should read it any more.
        let paths: Vec<ObjectPath> = expired.iter().flat_map(SegmentMeta::object_paths).collect();
        for path in &paths {
            self.store.delete(path).await?;
        }
        self.counters
            .retention_deleted
            .fetch_add(expired.len() as u64, Ordering::Relaxed);
        info!(
            segments = expired.len(),
            "retention removed expired segments"
        );
        Ok(expired.len())
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

/// Merges the rows of several segments of one table into one sorted segment.
fn merge(
    table: Table,
    inputs: Vec<Vec<RecordBatch>>,
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
            let (mut ids, mut ts, mut values) = (Vec::new(), Vec::new(), Vec::<f64>::new());
            for (id, t, _, v) in rows {
                if ids.last() == Some(&id) && ts.last() == Some(&t) {
                    *values.last_mut().expect("pushed") = v;
                } else {
                    ids.push(id);
                    ts.push(t);
                    values.push(v);
                }
            }
            flush::encode_samples(ids, ts, values, level, config.row_group_rows)
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
            let mut series = flush::series_from_batches(&batches)?;
            series.sort_by_key(|(id, _)| *id);
            series.dedup_by_key(|(id, _)| *id);
            let series: Vec<_> = series
                .into_iter()
                .map(|(id, labels)| (id.0, labels))
                .collect();
            flush::encode_series(&series, config)
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
