//! Trace search: group the spans of a window by trace, keep the traces a matcher
//! accepts, newest first, up to a limit.
//!
//! A [`TraceSearch`] (per-span conditions) is late-materialised: storage first returns
//! the trace id, start and the condition columns of the window's spans
//! ([`storage::Storage::span_timeline`]), the newest matching traces are picked from
//! those, and only their spans are read in full. TraceQL ([`search_with`]) judges whole
//! span sets and reads every column.

use std::collections::{HashMap, HashSet};

use proto::{TenantId, TraceId};
use storage::SpanScan;

use super::rows::{ProjectedSpans, SearchFields, SpanBatch, SpanRef};
use super::{MAX_LIMIT, MAX_SCANNED_SPANS, TimeRange, Trace, scan, with_timeout};
use crate::{Error, QueryContext, Result};

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

    pub(crate) fn matches<'a>(&self, span: &impl SearchFields<'a>) -> bool {
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

    /// The span columns [`TraceSearch::matches`] looks at for this search.
    fn columns(&self) -> Vec<&'static str> {
        let mut columns = vec!["trace_id", "start"];
        if self.service.is_some() {
            columns.push("service");
        }
        if self.span_name.is_some() {
            columns.push("name");
        }
        if self.min_duration_ns.is_some() || self.max_duration_ns.is_some() {
            columns.push("duration_ns");
        }
        if self.error.is_some() || !self.tags.is_empty() {
            columns.push("status_code");
        }
        if !self.tags.is_empty() {
            columns.extend(["attributes", "resource", "events"]);
        }
        columns
    }
}

fn has_event<'a>(span: &impl SearchFields<'a>, name: &str) -> bool {
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
/// newest first (by their first span in the window, ties by trace id), each assembled
/// from its spans in the window.
pub async fn search(
    context: &QueryContext,
    tenant: &TenantId,
    search: &TraceSearch,
) -> Result<Vec<Trace>> {
    with_timeout(context, async {
        let range = search.range.validate()?;
        let storage = context.storage()?;
        let scan = SpanScan {
            start_ns: range.start_ns,
            end_ns: range.end_ns,
            trace_id: None,
            service: None,
        };
        // First pass: trace id, start and the condition columns of the window's spans.
        let timeline = storage
            .span_timeline(tenant, &scan, &search.columns())
            .await?;
        let rows = timeline.len();
        if rows > MAX_SCANNED_SPANS {
            return Err(Error::TooLarge(format!(
                "the time range holds {rows} spans, more than the {MAX_SCANNED_SPANS} one query may read: narrow it"
            )));
        }
        let mut sources = Vec::with_capacity(timeline.sources.len());
        for source in &timeline.sources {
            sources.push(
                source
                    .columns
                    .iter()
                    .map(ProjectedSpans::new)
                    .collect::<Result<Vec<_>>>()?,
            );
        }
        // Each trace's first start in the window, and whether one of its spans matches.
        let mut traces: HashMap<TraceId, (i64, bool)> = HashMap::new();
        for batches in &sources {
            for batch in batches {
                for row in 0..batch.len() {
                    let span = batch.span(row);
                    let entry = traces
                        .entry(span.trace_id())
                        .or_insert((i64::MAX, false));
                    entry.0 = entry.0.min(span.start_ns());
                    if !entry.1 && search.matches(&span) {
                        entry.1 = true;
                    }
                }
            }
        }
        let mut hits: Vec<(i64, TraceId)> = traces
            .into_iter()
            .filter(|(_, (_, matched))| *matched)
            .map(|(id, (start, _))| (start, id))
            .collect();
        let limit = search.limit.clamp(1, MAX_LIMIT);
        hits.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        hits.truncate(limit);
        let chosen: HashSet<TraceId> = hits.iter().map(|(_, id)| *id).collect();
        // Second pass: every column of the chosen traces' spans, in source order.
        let mut spans: HashMap<TraceId, Vec<storage::model::SpanRecord>> = HashMap::new();
        for (source, batches) in timeline.sources.iter().zip(&sources) {
            let mut numbers = source.rows.iter();
            let mut wanted = Vec::new();
            for batch in batches {
                for row in 0..batch.len() {
                    let number = numbers.next().copied().unwrap_or_default();
                    if chosen.contains(&batch.span(row).trace_id()) {
                        wanted.push(number);
                    }
                }
            }
            for batch in storage.read_span_rows(source, &wanted).await? {
                let batch = SpanBatch::new(&batch)?;
                for row in 0..batch.len() {
                    let span = batch.span(row);
                    spans
                        .entry(span.trace_id())
                        .or_default()
                        .push(span.to_record());
                }
            }
        }
        Ok(hits
            .into_iter()
            .map(|(_, id)| Trace::assemble(id, spans.remove(&id).unwrap_or_default()))
            .collect())
    })
    .await
}

/// [`search`] the way it ran before it was late-materialised: every column of every span
/// of the window, grouped by trace before the conditions are checked. Same answer,
/// slower; kept as the reference the tests and the `trace_lookup` benchmark compare
/// [`search`] against.
pub async fn search_full_scan(
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
    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};
    use storage::model::{SpanRecord, spans_batch};

    /// Random traces: ids, services, names, durations, statuses, tags and events drawn
    /// from small sets so that every condition has hits and ties happen.
    fn random_spans(rng: &mut SmallRng, traces: u64) -> Vec<SpanRecord> {
        let services = ["api", "db", "pay", "auth"];
        let names = ["GET /", "POST /", "select", "charge"];
        let mut out = Vec::new();
        for trace in 0..traces {
            let start = rng.random_range(0..2_000i64) * 1_000;
            for index in 0..rng.random_range(1..7u8) {
                let mut record = span(
                    (trace % 251) as u8,
                    index + 1,
                    (index > 0).then_some(index),
                    services[rng.random_range(0..services.len())],
                    names[rng.random_range(0..names.len())],
                    start + rng.random_range(0..50_000i64),
                    rng.random_range(0..1_000i64),
                );
                record.trace_id.0[1] = (trace / 251) as u8;
                record.status_code = rng.random_range(0..3);
                if rng.random_bool(0.3) {
                    record.attributes.insert(
                        "db.system".into(),
                        ["pg", "mysql"][rng.random_range(0..2)].into(),
                    );
                }
                if rng.random_bool(0.2) {
                    record.events =
                        Some(r#"[{"name":"retry","time_unix_nano":1,"attributes":{}}]"#.into());
                }
                out.push(record);
            }
        }
        out
    }

    fn searches(rng: &mut SmallRng) -> Vec<TraceSearch> {
        let mut out = Vec::new();
        for _ in 0..24 {
            let start_ns = rng.random_range(0..1_500i64) * 1_000;
            let range = TimeRange {
                start_ns,
                end_ns: start_ns + rng.random_range(1..1_000i64) * 1_000,
            };
            let mut search = TraceSearch::new(range, rng.random_range(1..40));
            if rng.random_bool(0.4) {
                search.service = Some(["api", "db", "pay", "nope"][rng.random_range(0..4)].into());
            }
            if rng.random_bool(0.3) {
                search.span_name = Some(["GET /", "select"][rng.random_range(0..2)].into());
            }
            if rng.random_bool(0.4) {
                search.min_duration_ns = Some(rng.random_range(0..900));
            }
            if rng.random_bool(0.2) {
                search.max_duration_ns = Some(rng.random_range(100..1_000));
            }
            if rng.random_bool(0.3) {
                search.error = Some(rng.random_bool(0.5));
            }
            if rng.random_bool(0.2) {
                search
                    .tags
                    .push(TagFilter::Equals("db.system".into(), "pg".into()));
            }
            if rng.random_bool(0.15) {
                search.tags.push(TagFilter::Exists("retry".into()));
            }
            out.push(search);
        }
        out.push(TraceSearch::new(TimeRange::all(), 10_000));
        out
    }

    /// The late-materialised search returns exactly what grouping every span of the
    /// window did, over flushed, compacted and hot spans.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn late_materialised_search_matches_the_full_scan() {
        let dir = tempfile::tempdir().unwrap();
        let config = storage::Config {
            row_group_rows: 1024,
            compaction_min_segments: 2,
            ..storage::Config::default()
        };
        let storage = storage::Storage::open(config, dir.path()).await.unwrap();
        let tenant = TenantId::default();
        let mut rng = SmallRng::seed_from_u64(5);
        let spans = random_spans(&mut rng, 1_500);
        let context =
            QueryContext::with_storage(crate::Config::default(), storage.clone(), tenant.clone());
        let chunks: Vec<&[SpanRecord]> = spans.chunks(spans.len() / 3 + 1).collect();
        let check = |stage: &'static str| {
            let context = context.clone();
            let tenant = tenant.clone();
            let searches = searches(&mut SmallRng::seed_from_u64(stage.len() as u64));
            async move {
                let mut nonempty = 0;
                for search in &searches {
                    let fast = super::search(&context, &tenant, search).await.unwrap();
                    let full = search_full_scan(&context, &tenant, search).await.unwrap();
                    assert_eq!(fast, full, "{stage}: {search:?}");
                    nonempty += usize::from(!fast.is_empty());
                }
                assert!(nonempty > searches.len() / 3, "{stage}: too few hits");
            }
        };
        for (i, chunk) in chunks.iter().enumerate() {
            storage
                .append_spans(&tenant, spans_batch(chunk).unwrap())
                .await
                .unwrap();
            if i < 2 {
                storage.flush().await.unwrap();
            }
        }
        check("two segments and hot spans").await;
        storage.flush().await.unwrap();
        storage.compact().await.unwrap();
        check("compacted").await;
        storage.close().await.unwrap();
    }

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
