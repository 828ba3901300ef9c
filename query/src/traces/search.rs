//! Trace search: group the spans of a window by trace, keep the traces a matcher
//! accepts, newest first, up to a limit.

use std::collections::HashMap;

use proto::{TenantId, TraceId};

use super::rows::{SpanBatch, SpanRef};
use super::{MAX_LIMIT, TimeRange, Trace, scan, with_timeout};
use crate::{QueryContext, Result};

/// A tag condition of [`TraceSearch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagFilter {
    /// The span (or its resource) has `key` with exactly `value`.
    Equals(String, String),
    /// The span has a tag `key`, or an annotation (event) named `key`.
    Exists(String),
}

/// A search the Zipkin, Jaeger and legacy Tempo APIs share: a trace matches when one of
/// its spans satisfies every condition given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceSearch {
    /// The window on span start.
    pub range: TimeRange,
    /// The span's service.
    pub service: Option<String>,
    /// The span's name (operation).
    pub span_name: Option<String>,
    /// Tags (all must hold).
    pub tags: Vec<TagFilter>,
    /// Shortest span duration, nanoseconds.
    pub min_duration_ns: Option<i64>,
    /// Longest span duration, nanoseconds.
    pub max_duration_ns: Option<i64>,
    /// Only failed spans (`Some(true)`) or only successful ones (`Some(false)`).
    pub error: Option<bool>,
    /// Most traces returned.
    pub limit: usize,
}

impl TraceSearch {
    /// A search of `range` with no condition.
    pub fn new(range: TimeRange, limit: usize) -> TraceSearch {
        TraceSearch {
            range,
            service: None,
            span_name: None,
            tags: Vec::new(),
            min_duration_ns: None,
            max_duration_ns: None,
            error: None,
            limit,
        }
    }

    pub(crate) fn matches(&self, span: &SpanRef<'_>) -> bool {
        if self.service.as_deref().is_some_and(|s| s != span.service()) {
            return false;
        }
        if self.span_name.as_deref().is_some_and(|n| n != span.name()) {
            return false;
        }
        let duration = span.duration_ns();
        if self.min_duration_ns.is_some_and(|min| duration < min)
            || self.max_duration_ns.is_some_and(|max| duration > max)
        {
            return false;
        }
        if self.error.is_some_and(|error| error != span.is_error()) {
            return false;
        }
        self.tags.iter().all(|tag| match tag {
            TagFilter::Equals(key, value) => {
                span.attribute(key).or_else(|| span.resource_attribute(key)) == Some(value)
                    || (key == "error" && value == "true" && span.is_error())
            }
            TagFilter::Exists(key) => span.attribute(key).is_some() || has_event(span, key),
        })
    }
}

fn has_event(span: &SpanRef<'_>, name: &str) -> bool {
    let Some(events) = span.events_json() else {
        return false;
    };
    if !events.contains(name) {
        return false;
    }
    serde_json::from_str::<Vec<serde_json::Value>>(events)
        .map(|list| list.iter().any(|event| event["name"] == name))
        .unwrap_or(false)
}

/// One trace a search kept, with what the matcher said about it.
#[derive(Debug, Clone)]
pub(crate) struct TraceMatch<M> {
    /// The trace, assembled from the spans inside the window.
    pub trace: Trace,
    /// The matcher's answer.
    pub matched: M,
}

/// What a search kept, and how much it read.
#[derive(Debug, Clone)]
pub(crate) struct SearchResult<M> {
    /// The newest matching traces.
    pub traces: Vec<TraceMatch<M>>,
    /// Traces examined.
    pub inspected_traces: usize,
    /// Spans examined.
    pub inspected_spans: usize,
}

/// Runs `matcher` over every trace of `range` (its spans in the window, in no
/// particular order) and returns the newest `limit` traces it accepted.
pub(crate) async fn search_with<M>(
    context: &QueryContext,
    tenant: &TenantId,
    range: TimeRange,
    limit: usize,
    matcher: impl Fn(&[SpanRef<'_>]) -> Option<M>,
) -> Result<SearchResult<M>> {
    with_timeout(context, async {
        let batches = scan(context, tenant, range.validate()?, None).await?;
        Ok(select(&batches, limit, matcher))
    })
    .await
}

pub(crate) fn select<M>(
    batches: &[SpanBatch],
    limit: usize,
    matcher: impl Fn(&[SpanRef<'_>]) -> Option<M>,
) -> SearchResult<M> {
    let limit = limit.clamp(1, MAX_LIMIT);
    let mut traces: HashMap<TraceId, Vec<SpanRef<'_>>> = HashMap::new();
    for batch in batches {
        for row in 0..batch.len() {
            let span = batch.span(row);
            traces.entry(span.trace_id()).or_default().push(span);
        }
    }
    let mut hits: Vec<(i64, TraceId, M)> = traces
        .iter()
        .filter_map(|(id, spans)| {
            let matched = matcher(spans)?;
            let start = spans.iter().map(SpanRef::start_ns).min().unwrap_or(0);
            Some((start, *id, matched))
        })
        .collect();
    hits.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    hits.truncate(limit);
    let found = hits
        .into_iter()
        .map(|(_, id, matched)| {
            let spans = traces[&id].iter().map(|s| s.to_record()).collect();
            TraceMatch {
                trace: Trace::assemble(id, spans),
                matched,
            }
        })
        .collect();
    SearchResult {
        traces: found,
        inspected_traces: traces.len(),
        inspected_spans: batches.iter().map(SpanBatch::len).sum(),
    }
}

/// Runs a [`TraceSearch`]: traces with at least one span satisfying every condition,
/// newest first.
pub async fn search(
    context: &QueryContext,
    tenant: &TenantId,
    search: &TraceSearch,
) -> Result<Vec<Trace>> {
    let hits = search_with(context, tenant, search.range, search.limit, |spans| {
        spans.iter().any(|s| search.matches(s)).then_some(())
    })
    .await?;
    Ok(hits.traces.into_iter().map(|hit| hit.trace).collect())
}

#[cfg(test)]
mod tests {
    use super::super::rows::tests::{batch, span};
    use super::*;

    #[test]
    fn conditions_apply_to_one_span_and_newest_come_first() {
        let mut failed = span(2, 3, Some(1), "db", "select", 200, 900);
        failed.status_code = 2;
        failed.attributes.insert("db.system".into(), "pg".into());
        failed.events = Some(r#"[{"name":"retry","time_unix_nano":1,"attributes":{}}]"#.into());
        let spans = vec![
            span(1, 1, None, "api", "GET /", 100, 1000),
            span(2, 1, None, "api", "GET /", 150, 1000),
            failed,
            span(3, 1, None, "api", "POST /", 300, 10),
        ];
        let batches = vec![batch(&spans)];
        let run = |search: &TraceSearch| -> Vec<u8> {
            select(&batches, search.limit, |s| {
                s.iter().any(|x| search.matches(x)).then_some(())
            })
            .traces
            .iter()
            .map(|m| m.trace.trace_id.0[0])
            .collect()
        };
        let all = TraceSearch::new(TimeRange::all(), 10);
        assert_eq!(run(&all), [3, 2, 1]);
        assert_eq!(
            run(&TraceSearch {
                limit: 2,
                ..all.clone()
            }),
            [3, 2]
        );
        let by_name = TraceSearch {
            span_name: Some("GET /".into()),
            ..all.clone()
        };
        assert_eq!(run(&by_name), [2, 1]);
        let mixed = TraceSearch {
            service: Some("db".into()),
            min_duration_ns: Some(500),
            error: Some(true),
            tags: vec![
                TagFilter::Equals("db.system".into(), "pg".into()),
                TagFilter::Exists("retry".into()),
            ],
            ..all.clone()
        };
        assert_eq!(run(&mixed), [2]);
        let too_long = TraceSearch {
            service: Some("db".into()),
            max_duration_ns: Some(100),
            ..all
        };
        assert!(run(&too_long).is_empty());
    }
}
