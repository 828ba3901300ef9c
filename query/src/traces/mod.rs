//! Traces: assembly of a trace from its spans, trace search, the service and operation
//! lists, dependency links and the service graph, all computed from stored spans (hot
//! memtables and cold segments alike, through [`storage::Storage::scan_spans`]).
//!
//! ```text
//!   scan_spans(window) ──► SpanBatch (columnar, no copy) ──► group by trace ──► filter /
//!                                                            TraceQL ──► newest N traces
//!                                                      └──► parent/child pairs ──► graph
//! ```
//!
//! The HTTP shapes (Zipkin, Tempo, Jaeger) live in `crate::api`; this module returns
//! plain Rust values. Every call is bounded: a time window, a result limit, at most
//! [`MAX_SCANNED_SPANS`] spans read, at most [`MAX_TRACE_SPANS`] spans in one trace, and
//! the query timeout.

mod assembly;
mod graph;
pub mod metrics;
pub(crate) mod rows;
mod search;
pub mod traceql;

use std::collections::BTreeSet;
use std::future::Future;

use proto::{TenantId, TraceId};
use storage::SpanScan;

pub use assembly::Trace;
pub use graph::{
    DependencyLink, ServiceEdge, ServiceGraph, ServiceNode, dependencies, service_graph,
};
pub use search::{TagFilter, TraceSearch, search, search_full_scan};
pub(crate) use search::{TraceMatch, search_with};

use crate::{Error, QueryContext, Result};
use rows::SpanBatch;

/// Most spans one trace may have; a bigger trace is refused with [`Error::TooLarge`].
pub const MAX_TRACE_SPANS: usize = 100_000;
/// Most spans one search, list or graph may read; past it the caller must narrow the window.
pub const MAX_SCANNED_SPANS: usize = 5_000_000;
/// The window searches and lists use when the request gives none: the last hour.
pub const DEFAULT_WINDOW_NS: i64 = 3_600 * 1_000_000_000;
/// Most traces one search may return.
pub const MAX_LIMIT: usize = 10_000;

/// A time window on span start, Unix nanoseconds, both ends inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeRange {
    /// Inclusive start.
    pub start_ns: i64,
    /// Inclusive end.
    pub end_ns: i64,
}

impl TimeRange {
    /// The last [`DEFAULT_WINDOW_NS`] up to now.
    pub fn recent() -> TimeRange {
        let now = now_ns();
        TimeRange {
            start_ns: now - DEFAULT_WINDOW_NS,
            end_ns: now,
        }
    }

    /// Everything.
    pub fn all() -> TimeRange {
        TimeRange {
            start_ns: i64::MIN,
            end_ns: i64::MAX,
        }
    }

    /// Checks that the window is not inverted.
    pub fn validate(self) -> Result<TimeRange> {
        if self.start_ns > self.end_ns {
            return Err(Error::BadRequest(
                "the end of the time range is before its start".to_string(),
            ));
        }
        Ok(self)
    }
}

/// The current time, Unix nanoseconds.
pub fn now_ns() -> i64 {
    chrono::Utc::now()
        .timestamp_nanos_opt()
        .unwrap_or(i64::MAX / 2)
}

/// Runs `work` under the query timeout.
pub(crate) async fn with_timeout<T>(
    context: &QueryContext,
    work: impl Future<Output = Result<T>>,
) -> Result<T> {
    let limit = context.config().timeout.get();
    tokio::time::timeout(limit, work)
        .await
        .map_err(|_| Error::Timeout(limit))?
}

/// Reads the spans of a window (optionally one trace), bounded by [`MAX_SCANNED_SPANS`].
pub(crate) async fn scan(
    context: &QueryContext,
    tenant: &TenantId,
    range: TimeRange,
    trace_id: Option<TraceId>,
) -> Result<Vec<SpanBatch>> {
    let scan = SpanScan {
        start_ns: range.start_ns,
        end_ns: range.end_ns,
        trace_id,
        service: None,
    };
    let batches = context.storage()?.scan_spans(tenant, &scan).await?;
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    if rows > MAX_SCANNED_SPANS {
        return Err(Error::TooLarge(format!(
            "the time range holds {rows} spans, more than the {MAX_SCANNED_SPANS} one query may read: narrow it"
        )));
    }
    SpanBatch::all(&batches)
}

/// Returns every span of one trace, assembled, or `None` when no span is stored.
/// `range` narrows the scan when the caller knows when the trace happened.
pub async fn trace_by_id(
    context: &QueryContext,
    tenant: &TenantId,
    trace_id: TraceId,
    range: Option<TimeRange>,
) -> Result<Option<Trace>> {
    with_timeout(context, async {
        let range = range.unwrap_or_else(TimeRange::all).validate()?;
        let batches = scan(context, tenant, range, Some(trace_id)).await?;
        let count: usize = batches.iter().map(SpanBatch::len).sum();
        if count > MAX_TRACE_SPANS {
            return Err(Error::TooLarge(format!(
                "trace {trace_id} has {count} spans, more than the {MAX_TRACE_SPANS} one answer may hold"
            )));
        }
        if count == 0 {
            return Ok(None);
        }
        let spans = batches
            .iter()
            .flat_map(|batch| (0..batch.len()).map(|row| batch.span(row)))
            .filter(|span| span.trace_id() == trace_id)
            .map(|span| span.to_record())
            .collect();
        Ok(Some(Trace::assemble(trace_id, spans)))
    })
    .await
}

/// One operation (span name) of a service, with its span kind.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Operation {
    /// The service.
    pub service: String,
    /// The span name.
    pub name: String,
    /// The span kind (`server`, `client`…).
    pub kind: String,
}

/// Lists (services, operations, keys, values) read their window in at most this many
/// slices, newest first, so a long window is bounded by the timeout rather than by
/// [`MAX_SCANNED_SPANS`] at once.
const LIST_SLICES: i64 = 64;
/// The shortest slice a list reads.
const LIST_SLICE_NS: i64 = 10 * 60 * 1_000_000_000;

/// Scans `range` slice by slice, newest first, until `visit` returns true.
async fn scan_slices(
    context: &QueryContext,
    tenant: &TenantId,
    range: TimeRange,
    mut visit: impl FnMut(&[SpanBatch]) -> bool,
) -> Result<()> {
    let range = range.validate()?;
    let width = range.end_ns.saturating_sub(range.start_ns);
    let slice = (width / LIST_SLICES).max(LIST_SLICE_NS);
    let mut end = range.end_ns;
    loop {
        let start = end.saturating_sub(slice).max(range.start_ns);
        let batches = scan(
            context,
            tenant,
            TimeRange {
                start_ns: start,
                end_ns: end,
            },
            None,
        )
        .await?;
        if visit(&batches) || start <= range.start_ns {
            return Ok(());
        }
        end = start - 1;
    }
}

/// The services that recorded spans in `range`, sorted.
pub async fn service_names(
    context: &QueryContext,
    tenant: &TenantId,
    range: TimeRange,
) -> Result<Vec<String>> {
    with_timeout(context, async {
        let mut names = BTreeSet::new();
        scan_slices(context, tenant, range, |batches| {
            for batch in batches {
                for row in 0..batch.len() {
                    let service = batch.span(row).service();
                    if !names.contains(service) {
                        names.insert(service.to_string());
                    }
                }
            }
            false
        })
        .await?;
        Ok(names.into_iter().collect())
    })
    .await
}

/// The operations seen in `range`, of one service or of all, sorted.
pub async fn operations(
    context: &QueryContext,
    tenant: &TenantId,
    range: TimeRange,
    service: Option<&str>,
) -> Result<Vec<Operation>> {
    with_timeout(context, async {
        let mut seen = BTreeSet::new();
        scan_slices(context, tenant, range, |batches| {
            for batch in batches {
                for row in 0..batch.len() {
                    let span = batch.span(row);
                    if service.is_some_and(|s| s != span.service()) {
                        continue;
                    }
                    let operation = Operation {
                        service: span.service().to_string(),
                        name: span.name().to_string(),
                        kind: span.kind().to_string(),
                    };
                    if !seen.contains(&operation) {
                        seen.insert(operation);
                    }
                }
            }
            false
        })
        .await?;
        Ok(seen.into_iter().collect())
    })
    .await
}

/// The remote services `service` called in `range` (`peer.service` / Zipkin
/// `remoteEndpoint.serviceName` of its spans), sorted.
pub async fn remote_services(
    context: &QueryContext,
    tenant: &TenantId,
    range: TimeRange,
    service: &str,
) -> Result<Vec<String>> {
    with_timeout(context, async {
        let mut names = BTreeSet::new();
        scan_slices(context, tenant, range, |batches| {
            for batch in batches {
                for row in 0..batch.len() {
                    let span = batch.span(row);
                    if span.service() == service
                        && let Some(peer) = span.peer_service()
                        && !names.contains(peer)
                    {
                        names.insert(peer.to_string());
                    }
                }
            }
            false
        })
        .await?;
        Ok(names.into_iter().collect())
    })
    .await
}

/// Span attribute keys and resource attribute keys seen in `range`, each sorted, at most
/// `limit` of each.
pub async fn attribute_keys(
    context: &QueryContext,
    tenant: &TenantId,
    range: TimeRange,
    limit: usize,
) -> Result<(Vec<String>, Vec<String>)> {
    with_timeout(context, async {
        let mut span_keys = BTreeSet::new();
        let mut resource_keys = BTreeSet::new();
        scan_slices(context, tenant, range, |batches| {
            for batch in batches {
                for row in 0..batch.len() {
                    let span = batch.span(row);
                    for (key, _) in span.attributes() {
                        if span_keys.len() < limit && !span_keys.contains(key) {
                            span_keys.insert(key.to_string());
                        }
                    }
                    for (key, _) in span.resource() {
                        if resource_keys.len() < limit && !resource_keys.contains(key) {
                            resource_keys.insert(key.to_string());
                        }
                    }
                }
            }
            span_keys.len() >= limit && resource_keys.len() >= limit
        })
        .await?;
        Ok((
            span_keys.into_iter().collect(),
            resource_keys.into_iter().collect(),
        ))
    })
    .await
}

/// Where [`attribute_values`] looks for a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttributeScope {
    /// Span attributes only.
    Span,
    /// Resource attributes only.
    Resource,
    /// Both.
    Any,
}

/// The distinct values of one attribute in `range`, sorted, at most `limit`.
pub async fn attribute_values(
    context: &QueryContext,
    tenant: &TenantId,
    range: TimeRange,
    scope: AttributeScope,
    key: &str,
    limit: usize,
) -> Result<Vec<String>> {
    with_timeout(context, async {
        let mut values = BTreeSet::new();
        scan_slices(context, tenant, range, |batches| {
            for batch in batches {
                for row in 0..batch.len() {
                    let span = batch.span(row);
                    let found = [
                        (scope != AttributeScope::Resource)
                            .then(|| span.attribute(key))
                            .flatten(),
                        (scope != AttributeScope::Span)
                            .then(|| span.resource_attribute(key))
                            .flatten(),
                    ];
                    for value in found.into_iter().flatten() {
                        if !values.contains(value) {
                            values.insert(value.to_string());
                            if values.len() >= limit {
                                return true;
                            }
                        }
                    }
                }
            }
            false
        })
        .await?;
        Ok(values.into_iter().collect())
    })
    .await
}

/// Parses a trace id as the read APIs receive it: 1 to 32 hex digits, left-padded with
/// zeros (Tempo trims leading zeros; Zipkin sends 16 digits for 64-bit ids).
pub fn parse_trace_id(text: &str) -> Result<TraceId> {
    let text = text.trim();
    if text.is_empty() || text.len() > 32 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::BadRequest(format!(
            "invalid trace id {text:?}: expected 1 to 32 hex digits"
        )));
    }
    format!("{text:0>32}")
        .parse()
        .map_err(|e| Error::BadRequest(format!("invalid trace id {text:?}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_ids_are_left_padded() {
        assert_eq!(
            parse_trace_id("abc").unwrap().to_string(),
            "00000000000000000000000000000abc"
        );
        assert_eq!(
            parse_trace_id("5AF7183FB1D4CF5F").unwrap().to_string(),
            "00000000000000005af7183fb1d4cf5f"
        );
        for bad in ["", "xyz", "123456789012345678901234567890123"] {
            assert!(
                matches!(parse_trace_id(bad), Err(Error::BadRequest(_))),
                "{bad}"
            );
        }
    }
}
