//! Trace assembly: the spans of one trace, ordered by start, with parent links and depth.

use std::collections::HashMap;

use proto::{SpanId, TraceId};
use storage::model::SpanRecord;

/// One assembled trace.
#[derive(Debug, Clone, PartialEq)]
pub struct Trace {
    /// The trace id.
    pub trace_id: TraceId,
    /// Spans ordered by start time (then span id).
    pub spans: Vec<SpanRecord>,
    /// For each span, the index of its parent in `spans` when that parent is present.
    pub parents: Vec<Option<usize>>,
    /// For each span, its depth: 0 for roots and for spans whose parent is missing.
    pub depths: Vec<usize>,
}

impl Trace {
    /// Assembles a trace from its spans (in any order).
    pub fn assemble(trace_id: TraceId, mut spans: Vec<SpanRecord>) -> Trace {
        spans.sort_by(|a, b| {
            (a.start_ns, a.span_id, &a.kind).cmp(&(b.start_ns, b.span_id, &b.kind))
        });
        // A span id can appear twice (Zipkin shared client/server halves): a child
        // prefers the half of its own service, else the server half.
        let mut by_id: HashMap<SpanId, Vec<usize>> = HashMap::new();
        for (index, span) in spans.iter().enumerate() {
            by_id.entry(span.span_id).or_default().push(index);
        }
        let parents: Vec<Option<usize>> = spans
            .iter()
            .enumerate()
            .map(|(index, span)| {
                let candidates = by_id.get(&span.parent_span_id?)?;
                let candidates: Vec<usize> =
                    candidates.iter().copied().filter(|c| *c != index).collect();
                candidates
                    .iter()
                    .copied()
                    .find(|c| spans[*c].service == span.service)
                    .or_else(|| {
                        candidates
                            .iter()
                            .copied()
                            .find(|c| spans[*c].kind == "server")
                    })
                    .or_else(|| candidates.first().copied())
            })
            .collect();
        let mut depths = vec![usize::MAX; spans.len()];
        for start in 0..spans.len() {
            // Walk up until a known depth or a root; cycles are cut at the span count.
            let mut chain = vec![start];
            let mut current = start;
            let mut base = 0;
            while depths[current] == usize::MAX {
                match parents[current] {
                    Some(parent) if chain.len() <= spans.len() && !chain.contains(&parent) => {
                        chain.push(parent);
                        current = parent;
                    }
                    _ => break,
                }
            }
            if depths[current] != usize::MAX {
                base = depths[current] + 1;
                chain.pop();
            }
            for (offset, index) in chain.iter().rev().enumerate() {
                depths[*index] = base + offset;
            }
        }
        Trace {
            trace_id,
            spans,
            parents,
            depths,
        }
    }

    /// The root span: the first span without a parent, else the earliest span.
    pub fn root(&self) -> Option<&SpanRecord> {
        self.spans
            .iter()
            .find(|s| s.parent_span_id.is_none())
            .or_else(|| self.spans.first())
    }

    /// Earliest span start, Unix nanoseconds.
    pub fn start_ns(&self) -> i64 {
        self.spans.iter().map(|s| s.start_ns).min().unwrap_or(0)
    }

    /// Latest span end, Unix nanoseconds.
    pub fn end_ns(&self) -> i64 {
        self.spans
            .iter()
            .map(|s| s.start_ns.saturating_add(s.duration_ns))
            .max()
            .unwrap_or(0)
    }

    /// From the first start to the last end, nanoseconds.
    pub fn duration_ns(&self) -> i64 {
        self.end_ns().saturating_sub(self.start_ns())
    }
}

#[cfg(test)]
mod tests {
    use super::super::rows::tests::span;
    use super::*;

    #[test]
    fn spans_are_sorted_and_linked() {
        let spans = vec![
            span(1, 3, Some(2), "db", "select", 30, 5),
            span(1, 1, None, "api", "GET /", 10, 50),
            span(1, 2, Some(1), "api", "call db", 20, 20),
            span(1, 9, Some(7), "orphan", "lost", 25, 1),
        ];
        let trace = Trace::assemble(TraceId([1; 16]), spans);
        let names: Vec<&str> = trace.spans.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["GET /", "call db", "lost", "select"]);
        assert_eq!(trace.parents, [None, Some(0), None, Some(1)]);
        assert_eq!(trace.depths, [0, 1, 0, 2]);
        assert_eq!(trace.root().unwrap().name, "GET /");
        assert_eq!(
            (trace.start_ns(), trace.end_ns(), trace.duration_ns()),
            (10, 60, 50)
        );
    }

    #[test]
    fn shared_halves_and_cycles() {
        let mut client = span(1, 2, Some(1), "api", "call", 20, 20);
        client.kind = "client".into();
        let server = span(1, 2, Some(1), "db", "serve", 21, 18);
        let child = span(1, 3, Some(2), "db", "query", 22, 5);
        let a = span(2, 5, Some(6), "x", "a", 1, 1);
        let b = span(2, 6, Some(5), "x", "b", 2, 1);
        let trace = Trace::assemble(TraceId([1; 16]), vec![client, server, child]);
        assert_eq!(trace.parents[2], Some(1), "the db half is the parent");
        let cycle = Trace::assemble(TraceId([2; 16]), vec![a, b]);
        assert!(cycle.depths.iter().all(|d| *d < 3));
    }
}
