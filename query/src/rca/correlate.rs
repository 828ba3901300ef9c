//! Correlation primitives over the storage read API: the logs of a trace or span, the
//! traces of log lines, everything one service (or replica) emitted in a window, and
//! span RED per service and per edge.

use std::collections::{BTreeMap, BTreeSet};

use proto::{SpanId, TenantId, TraceId};
use storage::series::{MatchOp, Matcher};
use storage::{LogScan, SpanScan, Storage, TextQuery};

use super::logs::{self, Line};
use super::metrics::{INSTANCE_LABELS, SERVICE_LABELS, selector};
use super::red::{self, Red};
use super::spans::{self, Span};
use crate::{Error, Result};

/// Most rows one primitive returns.
const LIMIT: usize = 100_000;

/// The log lines of a trace (of one span of it when `span` is given) in `[start_ms, end_ms]`.
pub async fn logs_of_trace(
    storage: &Storage,
    tenant: &TenantId,
    trace: TraceId,
    span: Option<SpanId>,
    start_ms: i64,
    end_ms: i64,
) -> Result<Vec<Line>> {
    let scan = LogScan {
        start_ns: start_ms.saturating_mul(1_000_000),
        end_ns: end_ms.saturating_mul(1_000_000),
        trace_id: Some(trace),
        ..LogScan::default()
    };
    let mut lines = logs::decode(&storage.scan_logs(tenant, &scan).await?, LIMIT)?;
    if let Some(span) = span {
        lines.retain(|l| l.span_id == Some(span));
    }
    lines.sort_by_key(|l| l.timestamp_ns);
    Ok(lines)
}

/// The distinct traces of the log lines matching `text` (and `service`) in the window.
pub async fn traces_of_logs(
    storage: &Storage,
    tenant: &TenantId,
    service: Option<&str>,
    text: Option<TextQuery>,
    start_ms: i64,
    end_ms: i64,
) -> Result<Vec<TraceId>> {
    let scan = LogScan {
        start_ns: start_ms.saturating_mul(1_000_000),
        end_ns: end_ms.saturating_mul(1_000_000),
        services: service.map(|s| vec![s.to_string()]).unwrap_or_default(),
        text,
        ..LogScan::default()
    };
    let lines = logs::decode(&storage.scan_logs(tenant, &scan).await?, LIMIT)?;
    let traces: BTreeSet<TraceId> = lines.iter().filter_map(|l| l.trace_id).collect();
    Ok(traces.into_iter().collect())
}

/// The spans of one trace.
pub async fn trace_spans(
    storage: &Storage,
    tenant: &TenantId,
    trace: TraceId,
) -> Result<Vec<Span>> {
    let scan = SpanScan {
        start_ns: i64::MIN,
        end_ns: i64::MAX,
        trace_id: Some(trace),
        ..SpanScan::default()
    };
    spans::decode(&storage.scan_spans(tenant, &scan).await?, |_| true, LIMIT)
}

/// Everything one service (or one replica of it) emitted in a window.
#[derive(Debug, Default)]
pub struct ServiceWindow {
    /// Its spans.
    pub spans: Vec<Span>,
    /// Its log lines.
    pub logs: Vec<Line>,
    /// PromQL selectors of its series (labelled with the service, and the instance when given).
    pub series: Vec<String>,
}

/// Spans, logs and metric series of `service` (restricted to `instance` when given).
pub async fn service_window(
    storage: &Storage,
    tenant: &TenantId,
    service: &str,
    instance: Option<&str>,
    start_ms: i64,
    end_ms: i64,
) -> Result<ServiceWindow> {
    let span_scan = SpanScan {
        start_ns: start_ms.saturating_mul(1_000_000),
        end_ns: end_ms.saturating_mul(1_000_000),
        service: Some(service.to_string()),
        ..SpanScan::default()
    };
    let mut spans = spans::decode(
        &storage.scan_spans(tenant, &span_scan).await?,
        |_| true,
        LIMIT,
    )?;
    let log_scan = LogScan {
        start_ns: span_scan.start_ns,
        end_ns: span_scan.end_ns,
        services: vec![service.to_string()],
        ..LogScan::default()
    };
    let mut lines = logs::decode(&storage.scan_logs(tenant, &log_scan).await?, LIMIT)?;
    if let Some(instance) = instance {
        spans.retain(|s| s.instance.as_deref() == Some(instance));
        lines.retain(|l| l.instance.as_deref() == Some(instance));
    }
    let mut series = BTreeSet::new();
    for label in SERVICE_LABELS {
        let matcher = Matcher::new(MatchOp::Equal, label, service)
            .map_err(|e| Error::Internal(e.to_string()))?;
        for (_, labels) in storage.select_series(tenant, &[matcher], start_ms, end_ms) {
            let replica_ok = instance
                .is_none_or(|want| INSTANCE_LABELS.iter().any(|l| labels.get(l) == Some(want)));
            if replica_ok && series.len() < LIMIT {
                series.insert(selector(&labels));
            }
        }
    }
    Ok(ServiceWindow {
        spans,
        logs: lines,
        series: series.into_iter().collect(),
    })
}

/// Span RED per service (entry spans) in a window.
pub async fn red_by_service(
    storage: &Storage,
    tenant: &TenantId,
    start_ms: i64,
    end_ms: i64,
) -> Result<BTreeMap<String, Red>> {
    let spans = super::load_spans(storage, tenant, start_ms, end_ms).await?;
    Ok(red::by_service(&spans))
}

/// Span RED per edge (caller, callee) in a window, from the callers' exit spans.
pub async fn red_by_edge(
    storage: &Storage,
    tenant: &TenantId,
    start_ms: i64,
    end_ms: i64,
) -> Result<BTreeMap<(String, String), Red>> {
    let spans = super::load_spans(storage, tenant, start_ms, end_ms).await?;
    Ok(red::by_edge(&spans::group_traces(spans)))
}
