//! Span RED (rate, errors, duration) per service, per operation and per edge.

use std::collections::BTreeMap;

use serde::Serialize;

use super::spans::{Span, Tree, quantile};

/// Calls, errors and latency quantiles of a set of spans.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Red {
    /// Number of spans.
    pub calls: u64,
    /// Number of failed spans.
    pub errors: u64,
    /// Median duration, milliseconds.
    pub p50_ms: f64,
    /// 99th percentile duration, milliseconds.
    pub p99_ms: f64,
}

impl Red {
    /// Summarises spans.
    pub fn of<'a>(spans: impl IntoIterator<Item = &'a Span>) -> Self {
        let mut durations = Vec::new();
        let mut errors = 0;
        for span in spans {
            durations.push(span.duration_ns);
            errors += span.error as u64;
        }
        Red {
            calls: durations.len() as u64,
            errors,
            p50_ms: quantile(&mut durations, 0.5) as f64 / 1e6,
            p99_ms: quantile(&mut durations, 0.99) as f64 / 1e6,
        }
    }

    /// errors / calls, 0 without calls.
    pub fn error_ratio(&self) -> f64 {
        if self.calls == 0 {
            0.0
        } else {
            self.errors as f64 / self.calls as f64
        }
    }
}

/// RED of the entry (server and consumer) spans of each service.
pub fn by_service(spans: &[Span]) -> BTreeMap<String, Red> {
    let mut groups: BTreeMap<String, Vec<&Span>> = BTreeMap::new();
    for span in spans.iter().filter(|s| s.kind.is_entry()) {
        groups.entry(span.service.clone()).or_default().push(span);
    }
    groups.into_iter().map(|(k, v)| (k, Red::of(v))).collect()
}

/// RED of each edge `(caller, callee)` from the caller's exit spans: the callee is the
/// service of the entry span under it, or the exit span's peer (a dependency).
pub fn by_edge(traces: &[Vec<Span>]) -> BTreeMap<(String, String), Red> {
    let mut groups: BTreeMap<(String, String), Vec<&Span>> = BTreeMap::new();
    for trace in traces {
        let tree = Tree::new(trace);
        for (i, span) in trace.iter().enumerate() {
            if !span.kind.is_exit() {
                continue;
            }
            let callee = tree.children[i]
                .iter()
                .map(|&c| &trace[c])
                .find(|c| c.kind.is_entry() || c.service != span.service)
                .map(|c| c.service.clone())
                .or_else(|| span.peer.clone());
            if let Some(callee) = callee {
                groups
                    .entry((span.service.clone(), callee))
                    .or_default()
                    .push(span);
            }
        }
    }
    groups.into_iter().map(|(k, v)| (k, Red::of(v))).collect()
}

/// The spans that represent calls *into* `callee`: its entry spans, or, for a
/// dependency that reports no spans, the exit spans that name it as their peer.
pub fn callee_spans<'a>(spans: &'a [Span], callee: &str, instrumented: bool) -> Vec<&'a Span> {
    spans
        .iter()
        .filter(|s| {
            if instrumented {
                s.kind.is_entry() && s.service == callee
            } else {
                s.kind.is_exit() && s.peer.as_deref() == Some(callee)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::spans::SpanKind;
    use super::super::spans::tests::span;
    use super::*;

    #[test]
    fn red_per_service_and_edge() {
        use SpanKind::*;
        let mut db = span(1, 4, Some(3), "api", "", "SELECT", Client, 3, 5, true);
        db.peer = Some("db".into());
        let trace = vec![
            span(1, 1, None, "edge", "", "GET /", Server, 0, 20, true),
            span(1, 2, Some(1), "edge", "", "call", Client, 1, 18, true),
            span(1, 3, Some(2), "api", "", "GET /api", Server, 2, 15, true),
            db,
        ];
        let services = by_service(&trace);
        assert_eq!(services["api"].calls, 1);
        assert_eq!(services["api"].errors, 1);
        assert_eq!(services["edge"].p50_ms, 20.0);
        let edges = by_edge(std::slice::from_ref(&trace));
        assert_eq!(edges[&("edge".into(), "api".into())].calls, 1);
        assert_eq!(edges[&("api".into(), "db".into())].errors, 1);
        assert_eq!(callee_spans(&trace, "db", false).len(), 1);
        assert_eq!(callee_spans(&trace, "api", true).len(), 1);
    }
}
