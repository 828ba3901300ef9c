//! The `logs`, `spans` and `metrics` table providers over the storage read API.
//!
//! `scan()` only describes the work: it folds the pushed filters into a
//! [`ScanRequest`] and returns a one-partition [`StreamingTableExec`]. The storage calls
//! happen when the partition is executed, in a task that streams converted batches:
//!
//! - logs: `search_logs` (time, services, trace id and text pushed down; the tantivy
//!   index picks candidate rows of each segment, confirmed on the body), then
//!   `fetch_log_rows` one segment at a time;
//! - spans: `scan_spans` (time, service, trace id pushed down);
//! - metrics: `select_series` (metric name and label equalities), then `scan_samples`
//!   for chunks of series.
//!
//! Memory: what a scan holds is reserved in the query's memory pool before it is read,
//! from the row counts the storage reports (log hits, segment metadata), so a scan too
//! large for `query.memory_limit` fails with "resources exhausted" instead of loading.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryReservation};
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::stream::RecordBatchReceiverStream;
use datafusion::physical_plan::streaming::{PartitionStream, StreamingTableExec};
use datafusion::physical_plan::{ExecutionPlan, SendableRecordBatchStream};
use proto::TenantId;
use storage::model::{LOGS_SCHEMA, SPANS_SCHEMA};
use storage::{LogScan, SpanScan, Storage, Table};
use tokio::sync::mpsc::Sender;

use super::pushdown::{ScanRequest, support};
use super::schema::{SeriesRow, TableKind, convert_batch, metrics_batch};
use crate::QueryContext;

/// Bytes reserved per log row before it is read (a row with a modest body and attributes).
const LOG_ROW_BYTES: usize = 256;
/// Bytes reserved per span row before it is read.
const SPAN_ROW_BYTES: usize = 384;
/// Series whose samples are read per storage call.
const SERIES_PER_CHUNK: usize = 512;

/// One SQL table of one tenant.
#[derive(Debug)]
pub struct SignalTable {
    kind: TableKind,
    context: QueryContext,
    tenant: TenantId,
    schema: SchemaRef,
}

impl SignalTable {
    /// Creates the table `kind` reading `tenant`'s data.
    pub fn new(kind: TableKind, context: QueryContext, tenant: TenantId) -> Self {
        SignalTable {
            kind,
            context,
            tenant,
            schema: kind.schema(),
        }
    }
}

#[async_trait]
impl TableProvider for SignalTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(filters.iter().map(|f| support(self.kind, f)).collect())
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let projection: Vec<usize> = match projection {
            Some(p) => p.clone(),
            None => (0..self.schema.fields().len()).collect(),
        };
        let schema = Arc::new(self.schema.project(&projection)?);
        let request = ScanRequest::from_filters(self.kind, filters);
        tracing::debug!(
            table = self.kind.name(),
            ?request,
            ?limit,
            "sql scan planned"
        );
        let partition = ScanPartition {
            kind: self.kind,
            context: self.context.clone(),
            tenant: self.tenant.clone(),
            request: Arc::new(request),
            projection: Arc::new(projection),
            schema: schema.clone(),
            limit,
        };
        let exec = StreamingTableExec::try_new(
            schema,
            vec![Arc::new(partition)],
            None,
            Vec::new(),
            false,
            limit,
        )?;
        Ok(Arc::new(exec))
    }
}

/// The single partition of a table scan.
#[derive(Debug)]
struct ScanPartition {
    kind: TableKind,
    context: QueryContext,
    tenant: TenantId,
    request: Arc<ScanRequest>,
    projection: Arc<Vec<usize>>,
    schema: SchemaRef,
    limit: Option<usize>,
}

impl PartitionStream for ScanPartition {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let mut builder = RecordBatchReceiverStream::builder(self.schema.clone(), 2);
        let reservation =
            MemoryConsumer::new(format!("{} scan", self.kind.name())).register(ctx.memory_pool());
        let producer = Producer {
            kind: self.kind,
            tenant: self.tenant.clone(),
            request: self.request.clone(),
            projection: self.projection.clone(),
            schema: self.schema.clone(),
            remaining: self.limit.unwrap_or(usize::MAX),
            reservation,
            tx: builder.tx(),
        };
        let storage = self.context.storage().cloned();
        builder.spawn(async move {
            let storage = storage.map_err(|e| DataFusionError::External(Box::new(e)))?;
            if producer.request.empty {
                return Ok(());
            }
            producer.run(&storage).await
        });
        builder.build()
    }
}

fn storage_error(error: storage::Error) -> DataFusionError {
    DataFusionError::External(Box::new(error))
}

/// Reads storage and sends public batches until done, the limit is reached or the
/// consumer is gone.
struct Producer {
    kind: TableKind,
    tenant: TenantId,
    request: Arc<ScanRequest>,
    projection: Arc<Vec<usize>>,
    schema: SchemaRef,
    remaining: usize,
    reservation: MemoryReservation,
    tx: Sender<Result<RecordBatch>>,
}

impl Producer {
    async fn run(self, storage: &Storage) -> Result<()> {
        match self.kind {
            TableKind::Logs => self.logs(storage).await,
            TableKind::Spans => self.spans(storage).await,
            TableKind::Metrics => self.metrics(storage).await,
        }
    }

    /// Sends one batch (cut to the limit). Returns false when the scan should stop.
    async fn send(&mut self, batch: RecordBatch) -> bool {
        if batch.num_rows() == 0 {
            return self.remaining > 0;
        }
        let batch = if batch.num_rows() > self.remaining {
            batch.slice(0, self.remaining)
        } else {
            batch
        };
        self.remaining -= batch.num_rows();
        self.tx.send(Ok(batch)).await.is_ok() && self.remaining > 0
    }

    fn reserve(&self, bytes: usize, what: &str) -> Result<()> {
        self.reservation.try_resize(bytes).map_err(|error| {
            DataFusionError::ResourcesExhausted(format!(
                "the {} scan would hold about {} MiB of {what}, more than query.memory_limit \
                 allows; narrow the time range or filter on service/trace_id ({error})",
                self.kind.name(),
                bytes / (1 << 20),
            ))
        })
    }

    async fn logs(mut self, storage: &Storage) -> Result<()> {
        let scan = LogScan {
            start_ns: self.request.start_ns,
            end_ns: self.request.end_ns,
            services: self.request.services.clone().unwrap_or_default(),
            trace_id: self.request.trace_id,
            text: self.request.text_query(),
        };
        let hits = storage
            .search_logs(&self.tenant, &scan)
            .await
            .map_err(storage_error)?;
        let hot_bytes: usize = hits
            .hot
            .iter()
            .map(RecordBatch::get_array_memory_size)
            .sum();
        self.reserve(hot_bytes, "log rows")?;
        for refs in &hits.cold {
            self.reserve(
                hot_bytes + refs.rows.len().saturating_mul(LOG_ROW_BYTES),
                "log rows",
            )?;
            let batches = storage.fetch_log_rows(refs).await.map_err(storage_error)?;
            let size: usize = batches.iter().map(RecordBatch::get_array_memory_size).sum();
            self.reserve(hot_bytes + size, "log rows")?;
            for batch in batches {
                if !self.send_converted(&batch).await? {
                    return Ok(());
                }
            }
        }
        for batch in &hits.hot {
            if !self.send_converted(batch).await? {
                return Ok(());
            }
        }
        Ok(())
    }

    async fn spans(mut self, storage: &Storage) -> Result<()> {
        if self.request.services.as_ref().is_some_and(|s| s.len() > 1) {
            return Err(DataFusionError::Internal(
                "spans scan got more than one service".into(),
            ));
        }
        let scan = SpanScan {
            start_ns: self.request.start_ns,
            end_ns: self.request.end_ns,
            trace_id: self.request.trace_id,
            service: self
                .request
                .services
                .as_ref()
                .and_then(|s| s.first().cloned()),
        };
        if scan.trace_id.is_none() {
            let rows: u64 = storage
                .segments()
                .iter()
                .filter(|s| {
                    s.table == Table::Spans
                        && s.tenant == self.tenant.as_str()
                        && s.overlaps(scan.start_ns, scan.end_ns)
                })
                .map(|s| s.rows)
                .sum();
            self.reserve(
                usize::try_from(rows)
                    .unwrap_or(usize::MAX)
                    .saturating_mul(SPAN_ROW_BYTES),
                "spans",
            )?;
        }
        let batches = storage
            .scan_spans(&self.tenant, &scan)
            .await
            .map_err(storage_error)?;
        let size: usize = batches.iter().map(RecordBatch::get_array_memory_size).sum();
        self.reserve(size, "spans")?;
        for batch in &batches {
            if !self.send_converted(batch).await? {
                break;
            }
        }
        Ok(())
    }

    async fn send_converted(&mut self, batch: &RecordBatch) -> Result<bool> {
        debug_assert!(
            batch.schema().fields().len()
                == match self.kind {
                    TableKind::Logs => LOGS_SCHEMA.fields().len(),
                    _ => SPANS_SCHEMA.fields().len(),
                }
        );
        let public = convert_batch(self.kind, batch, &self.projection, &self.schema)?;
        Ok(self.send(public).await)
    }

    async fn metrics(mut self, storage: &Storage) -> Result<()> {
        let (start_ms, end_ms) = self.request.range_ms();
        if start_ms > end_ms {
            return Ok(());
        }
        let matchers = self.request.matchers();
        let selected = storage.select_series(&self.tenant, &matchers, start_ms, end_ms);
        let series: HashMap<u64, SeriesRow> = selected
            .iter()
            .map(|(id, labels)| {
                (
                    id.0,
                    SeriesRow {
                        metric: labels.metric_name().to_string(),
                        labels: labels.without_name(),
                    },
                )
            })
            .collect();
        let ids: Vec<_> = selected.iter().map(|(id, _)| *id).collect();
        for chunk in ids.chunks(SERIES_PER_CHUNK) {
            let samples = storage
                .scan_samples(&self.tenant, chunk, start_ms, end_ms)
                .await
                .map_err(storage_error)?;
            self.reserve(samples.get_array_memory_size(), "samples")?;
            let public = metrics_batch(&samples, &series, &self.projection, &self.schema)?;
            if !self.send(public).await {
                break;
            }
        }
        Ok(())
    }
}
