//! Spans as the analysis sees them, trace assembly and per-trace blame extraction.
//!
//! Owns: decoding span batches into [`Span`], deciding whether a span failed (status,
//! HTTP/gRPC codes, exception events, trace-linked ERROR logs), assembling a trace
//! into a tree (Zipkin shared span ids included), exclusive (self) time, and the blame
//! rule: the deepest erroring span whose children are healthy, or, for a slow trace,
//! the span whose self time grew the most over its baseline.

use std::collections::{HashMap, HashSet};

use arrow::array::{
    Array, FixedSizeBinaryArray, Int32Array, Int64Array, MapArray, RecordBatch, StringArray,
    TimestampNanosecondArray,
};
use proto::{SpanId, TraceId};

use crate::{Error, Result};

/// What a span stands for in a call, from its `kind` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SpanKind {
    /// Handles an incoming request.
    Server,
    /// Makes an outgoing request.
    Client,
    /// Sends a message.
    Producer,
    /// Handles a message.
    Consumer,
    /// Anything else.
    Internal,
}

impl SpanKind {
    /// Parses the stored kind (`server`, `client`…); unknown values are internal.
    pub fn parse(text: &str) -> Self {
        match text.to_ascii_lowercase().as_str() {
            "server" => SpanKind::Server,
            "client" => SpanKind::Client,
            "producer" => SpanKind::Producer,
            "consumer" => SpanKind::Consumer,
            _ => SpanKind::Internal,
        }
    }

    /// True for the spans that receive work (server, consumer).
    pub fn is_entry(self) -> bool {
        matches!(self, SpanKind::Server | SpanKind::Consumer)
    }

    /// True for the spans that send work (client, producer).
    pub fn is_exit(self) -> bool {
        matches!(self, SpanKind::Client | SpanKind::Producer)
    }
}

/// One span, reduced to what the analysis needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    /// The trace.
    pub trace_id: TraceId,
    /// The span.
    pub span_id: SpanId,
    /// The parent span, if any.
    pub parent_id: Option<SpanId>,
    /// The reporting service.
    pub service: String,
    /// The reporting replica.
    pub instance: Option<String>,
    /// The operation.
    pub name: String,
    /// The span kind.
    pub kind: SpanKind,
    /// Start, Unix nanoseconds.
    pub start_ns: i64,
    /// Duration, nanoseconds.
    pub duration_ns: i64,
    /// Whether the span failed (status, HTTP/gRPC code or exception event).
    pub error: bool,
    /// The status message or error description, when any.
    pub message: Option<String>,
    /// The remote side of an exit span: `peer.service`, `db.system`, `server.address`…
    pub peer: Option<String>,
}

impl Span {
    /// End, Unix nanoseconds.
    pub fn end_ns(&self) -> i64 {
        self.start_ns.saturating_add(self.duration_ns.max(0))
    }
}

fn column<'a, T: 'static>(batch: &'a RecordBatch, index: usize, what: &str) -> Result<&'a T> {
    batch
        .columns()
        .get(index)
        .and_then(|c| c.as_any().downcast_ref::<T>())
        .ok_or_else(|| Error::Internal(format!("spans batch: unexpected column {what}")))
}

/// Reads one row's attribute map into (key, value) pairs the caller filters.
pub(crate) fn map_entries(map: &MapArray, row: usize) -> Vec<(String, String)> {
    if map.is_null(row) {
        return Vec::new();
    }
    let entries = map.value(row);
    let keys = entries.column(0).as_any().downcast_ref::<StringArray>();
    let values = entries.column(1).as_any().downcast_ref::<StringArray>();
    let (Some(keys), Some(values)) = (keys, values) else {
        return Vec::new();
    };
    (0..keys.len())
        .map(|i| {
            let value = if values.is_valid(i) {
                values.value(i)
            } else {
                ""
            };
            (keys.value(i).to_string(), value.to_string())
        })
        .collect()
}

fn optional(strings: &StringArray, row: usize) -> Option<String> {
    (strings.is_valid(row) && !strings.value(row).is_empty())
        .then(|| strings.value(row).to_string())
}

/// Attribute keys naming the remote side of an exit span, in order of preference.
const PEER_KEYS: [&str; 7] = [
    "peer.service",
    "db.system",
    "messaging.system",
    "server.address",
    "net.peer.name",
    "db.name",
    "messaging.destination.name",
];

/// Decides from a span's status and attributes whether it failed.
fn failed(status: i32, attributes: &[(String, String)], events: &str) -> bool {
    if status == 2 {
        return true;
    }
    for (key, value) in attributes {
        let value = value.trim();
        let failed = match key.as_str() {
            "http.status_code" | "http.response.status_code" => {
                value.parse::<u16>().is_ok_and(|code| code >= 500)
            }
            // Codes that mean the server failed (UNKNOWN, DEADLINE_EXCEEDED, INTERNAL, UNAVAILABLE…).
            "rpc.grpc.status_code" => matches!(value, "2" | "4" | "8" | "13" | "14" | "15"),
            "error" => !value.eq_ignore_ascii_case("false"),
            _ => false,
        };
        if failed {
            return true;
        }
    }
    events.contains("\"name\":\"exception\"")
}

/// Decodes span batches ([`storage::model::SPANS_SCHEMA`]). `keep` samples traces by id
/// (return false to skip a trace); at most `limit` spans are returned.
pub fn decode(
    batches: &[RecordBatch],
    keep: impl Fn(&TraceId) -> bool,
    limit: usize,
) -> Result<Vec<Span>> {
    let mut out = Vec::new();
    for batch in batches {
        if batch.num_rows() == 0 {
            continue;
        }
        let trace = column::<FixedSizeBinaryArray>(batch, 0, "trace_id")?;
        let span = column::<FixedSizeBinaryArray>(batch, 1, "span_id")?;
        let parent = column::<FixedSizeBinaryArray>(batch, 2, "parent_span_id")?;
        let service = column::<StringArray>(batch, 3, "service")?;
        let instance = column::<StringArray>(batch, 4, "instance")?;
        let name = column::<StringArray>(batch, 5, "name")?;
        let kind = column::<StringArray>(batch, 6, "kind")?;
        let start = column::<TimestampNanosecondArray>(batch, 7, "start")?;
        let duration = column::<Int64Array>(batch, 8, "duration_ns")?;
        let status = column::<Int32Array>(batch, 9, "status_code")?;
        let message = column::<StringArray>(batch, 10, "status_message")?;
        let peer = column::<StringArray>(batch, 11, "peer_service")?;
        let attributes = column::<MapArray>(batch, 12, "attributes")?;
        let events = column::<StringArray>(batch, 14, "events")?;
        for row in 0..batch.num_rows() {
            if out.len() >= limit {
                return Ok(out);
            }
            let Some(trace_id) = TraceId::from_slice(trace.value(row)) else {
                continue;
            };
            if !keep(&trace_id) {
                continue;
            }
            let Some(span_id) = SpanId::from_slice(span.value(row)) else {
                continue;
            };
            let parent_id = parent
                .is_valid(row)
                .then(|| SpanId::from_slice(parent.value(row)))
                .flatten()
                .filter(|id| !id.is_zero());
            let kind_value = SpanKind::parse(kind.value(row));
            let attrs = map_entries(attributes, row);
            let event_text = if events.is_valid(row) {
                events.value(row)
            } else {
                ""
            };
            let error = failed(status.value(row), &attrs, event_text);
            let mut peer_name = optional(peer, row);
            if kind_value.is_exit() && peer_name.is_none() {
                peer_name = PEER_KEYS.iter().find_map(|key| {
                    attrs
                        .iter()
                        .find(|(k, v)| k == key && !v.is_empty())
                        .map(|(_, v)| v.clone())
                });
            }
            let mut error_message = optional(message, row);
            if error && error_message.is_none() {
                error_message = attrs
                    .iter()
                    .find(|(k, _)| k == "exception.message" || k == "error.type")
                    .map(|(_, v)| v.clone());
            }
            out.push(Span {
                trace_id,
                span_id,
                parent_id,
                service: service.value(row).to_string(),
                instance: optional(instance, row),
                name: name.value(row).to_string(),
                kind: kind_value,
                start_ns: start.value(row),
                duration_ns: duration.value(row).max(0),
                error,
                message: error_message,
                peer: peer_name,
            });
        }
    }
    Ok(out)
}

/// Groups spans by trace, each trace's spans in start order.
pub fn group_traces(mut spans: Vec<Span>) -> Vec<Vec<Span>> {
    spans.sort_by(|a, b| {
        (a.trace_id, a.start_ns, a.span_id).cmp(&(b.trace_id, b.start_ns, b.span_id))
    });
    let mut traces: Vec<Vec<Span>> = Vec::new();
    for span in spans {
        match traces.last_mut() {
            Some(last) if last[0].trace_id == span.trace_id => last.push(span),
            _ => traces.push(vec![span]),
        }
    }
    traces
}

/// One trace as a tree over its spans.
#[derive(Debug)]
pub struct Tree<'a> {
    /// The spans.
    pub spans: &'a [Span],
    /// Parent index of each span.
    pub parent: Vec<Option<usize>>,
    /// Child indices of each span.
    pub children: Vec<Vec<usize>>,
}

impl<'a> Tree<'a> {
    /// Links spans to their parents. A server span sharing its id with a client span
    /// (Zipkin's shared spans) is that client span's child.
    pub fn new(spans: &'a [Span]) -> Self {
        let mut by_id: HashMap<SpanId, Vec<usize>> = HashMap::new();
        for (i, span) in spans.iter().enumerate() {
            by_id.entry(span.span_id).or_default().push(i);
        }
        let mut parent = vec![None; spans.len()];
        for (i, span) in spans.iter().enumerate() {
            let twin = by_id.get(&span.span_id).and_then(|ids| {
                ids.iter()
                    .copied()
                    .find(|&j| j != i && spans[j].kind.is_exit() && span.kind.is_entry())
            });
            parent[i] = twin.or_else(|| {
                let id = span.parent_id?;
                let candidates = by_id.get(&id)?;
                // With a shared id the client half is the parent of the server's children
                // only when the server half is absent; prefer the entry half.
                candidates
                    .iter()
                    .copied()
                    .filter(|&j| j != i)
                    .max_by_key(|&j| spans[j].kind.is_entry() as u8)
            });
        }
        // Break any cycle a malformed trace could form.
        for i in 0..spans.len() {
            let mut seen = HashSet::new();
            let mut at = i;
            while let Some(p) = parent[at] {
                if !seen.insert(at) || seen.len() > spans.len() {
                    parent[i] = None;
                    break;
                }
                at = p;
            }
        }
        let mut children = vec![Vec::new(); spans.len()];
        for (i, p) in parent.iter().enumerate() {
            if let Some(p) = p {
                children[*p].push(i);
            }
        }
        Tree {
            spans,
            parent,
            children,
        }
    }

    /// Spans without a parent in the trace.
    pub fn roots(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.spans.len()).filter(|&i| self.parent[i].is_none())
    }

    /// The span's own time: its duration minus the time covered by its children.
    pub fn self_time(&self, i: usize) -> i64 {
        let span = &self.spans[i];
        let (lo, hi) = (span.start_ns, span.end_ns());
        let mut intervals: Vec<(i64, i64)> = self.children[i]
            .iter()
            .map(|&c| {
                let child = &self.spans[c];
                (child.start_ns.max(lo), child.end_ns().min(hi))
            })
            .filter(|(a, b)| b > a)
            .collect();
        intervals.sort_unstable();
        let mut covered = 0i64;
        let mut current: Option<(i64, i64)> = None;
        for (a, b) in intervals {
            match current {
                Some((ca, cb)) if a <= cb => current = Some((ca, cb.max(b))),
                Some((ca, cb)) => {
                    covered += cb - ca;
                    current = Some((a, b));
                }
                None => current = Some((a, b)),
            }
        }
        if let Some((ca, cb)) = current {
            covered += cb - ca;
        }
        (span.duration_ns - covered).max(0)
    }

    /// The nearest ancestor reported by another service than span `i`'s.
    fn caller_of(&self, i: usize) -> Option<usize> {
        let service = &self.spans[i].service;
        let mut at = self.parent[i];
        while let Some(p) = at {
            if &self.spans[p].service != service {
                return Some(p);
            }
            at = self.parent[p];
        }
        None
    }

    /// The entry (server) child of an exit span, if the callee reported one.
    fn entry_child(&self, i: usize) -> Option<usize> {
        self.children[i].iter().copied().find(|&c| {
            self.spans[c].kind.is_entry() || self.spans[c].service != self.spans[i].service
        })
    }
}

/// Why a span is blamed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BlameKind {
    /// The span failed and its children did not.
    Errors,
    /// The span's own time grew the most on a slow trace.
    Latency,
    /// An exit span failed and the callee never reported a span: unreachable.
    Unavailability,
}

/// The hop that owns one failing trace.
#[derive(Debug, Clone, PartialEq)]
pub struct Blame {
    /// The calling service, when known.
    pub caller: Option<String>,
    /// The calling replica, when known.
    pub caller_instance: Option<String>,
    /// The service (or dependency) at fault.
    pub callee: String,
    /// The replica at fault, when the callee reported spans.
    pub instance: Option<String>,
    /// The failing operation.
    pub operation: String,
    /// Errors, latency or unreachable.
    pub kind: BlameKind,
    /// True when the callee is a dependency seen only through exit spans.
    pub dependency: bool,
    /// The blamed span.
    pub span_id: SpanId,
    /// Self time of the blamed span minus its baseline median (latency blames), ns.
    pub excess_ns: i64,
}

/// Baseline knowledge the per-trace blame needs.
#[derive(Debug, Default, Clone)]
pub struct Reference {
    /// Median self time per (service, operation, kind) in the baseline, ns.
    pub self_median: HashMap<(String, String, SpanKindKey), i64>,
    /// Duration above which an entry operation counts as slow, per (service, operation), ns.
    pub slow_threshold: HashMap<(String, String), i64>,
    /// Services that report spans themselves (callees of exit spans that are not dependencies).
    pub instrumented: HashSet<String>,
}

/// A span kind as a hashable key.
pub type SpanKindKey = u8;

/// The key of a span kind in [`Reference::self_median`].
pub fn kind_key(kind: SpanKind) -> SpanKindKey {
    kind as u8
}

/// Tells which spans have an ERROR log joined to them (trace-linked logs).
pub trait ErrorLogs {
    /// True when an error log names this span (or, without a span id, this trace and service).
    fn marks(&self, span: &Span) -> bool;

    /// The text of an error log joined to this span, when any.
    fn text(&self, _span: &Span) -> Option<&str> {
        None
    }
}

impl ErrorLogs for () {
    fn marks(&self, _: &Span) -> bool {
        false
    }
}

/// Whether a trace is failing, and the blamed hops (usually one).
pub fn blame_trace(tree: &Tree<'_>, reference: &Reference, logs: &dyn ErrorLogs) -> Vec<Blame> {
    let spans = tree.spans;
    let failing: Vec<bool> = spans.iter().map(|s| s.error || logs.marks(s)).collect();
    if failing.iter().any(|f| *f) {
        let mut blames = Vec::new();
        let mut seen = HashSet::new();
        for i in 0..spans.len() {
            if !failing[i] || tree.children[i].iter().any(|&c| failing[c]) {
                continue;
            }
            // An error log joined to the span names the remote side of one of its
            // unanswered calls (spans without status): that call is where it failed.
            let mut i = i;
            if let Some(text) = logs.text(&spans[i]) {
                let text = text.to_ascii_lowercase();
                if let Some(&call) = tree.children[i].iter().find(|&&c| {
                    spans[c].kind.is_exit()
                        && tree.entry_child(c).is_none()
                        && spans[c]
                            .peer
                            .as_ref()
                            .is_some_and(|p| p.len() >= 3 && text.contains(&p.to_ascii_lowercase()))
                }) {
                    i = call;
                }
            }
            if let Some(blame) = blame_error(tree, reference, i, &failing) {
                let key = (
                    blame.caller.clone(),
                    blame.callee.clone(),
                    blame.operation.clone(),
                );
                if seen.insert(key) {
                    blames.push(blame);
                }
            }
        }
        return blames;
    }
    // Latency: a root entry span over its slow threshold.
    let slow_root = tree.roots().find(|&r| {
        let span = &spans[r];
        reference
            .slow_threshold
            .get(&(span.service.clone(), span.name.clone()))
            .is_some_and(|threshold| span.duration_ns > *threshold)
    });
    match slow_root {
        Some(root) => blame_latency(tree, reference, root).into_iter().collect(),
        None => Vec::new(),
    }
}

/// Builds the blame for a failing span whose children are healthy.
fn blame_error(
    tree: &Tree<'_>,
    reference: &Reference,
    i: usize,
    failing: &[bool],
) -> Option<Blame> {
    let span = &tree.spans[i];
    if span.kind.is_exit() {
        match tree.entry_child(i) {
            None => {
                let callee = span.peer.clone().unwrap_or_else(|| span.name.clone());
                let dependency = !reference.instrumented.contains(&callee);
                return Some(Blame {
                    caller: Some(span.service.clone()),
                    caller_instance: span.instance.clone(),
                    callee,
                    instance: None,
                    operation: span.name.clone(),
                    kind: if dependency {
                        BlameKind::Errors
                    } else {
                        BlameKind::Unavailability
                    },
                    dependency,
                    span_id: span.span_id,
                    excess_ns: 0,
                });
            }
            Some(child) if !failing[child] => {
                // The caller gave up (timeout) on a callee that answered OK but slowly:
                // the slowness inside the callee is the cause.
                if let Some(mut blame) = blame_latency(tree, reference, child) {
                    blame.kind = BlameKind::Latency;
                    return Some(blame);
                }
                return Some(entry_blame(tree, child, BlameKind::Latency, 0));
            }
            Some(_) => {}
        }
    }
    Some(entry_blame(tree, i, BlameKind::Errors, 0))
}

/// Blames span `i`'s service, called by the nearest other service above it.
fn entry_blame(tree: &Tree<'_>, i: usize, kind: BlameKind, excess_ns: i64) -> Blame {
    let span = &tree.spans[i];
    // The operation is the entry span's name of this service's part of the trace.
    let mut entry = i;
    while let Some(p) = tree.parent[entry] {
        if tree.spans[p].service != span.service {
            break;
        }
        entry = p;
    }
    let operation = tree.spans[entry].name.clone();
    let caller = tree.caller_of(i).map(|c| &tree.spans[c]);
    Blame {
        caller: caller.map(|c| c.service.clone()),
        caller_instance: caller.and_then(|c| c.instance.clone()),
        callee: span.service.clone(),
        instance: span.instance.clone(),
        operation,
        kind,
        dependency: false,
        span_id: span.span_id,
        excess_ns,
    }
}

/// In the subtree of `root`, blames the span whose self time exceeds its baseline median
/// the most.
fn blame_latency(tree: &Tree<'_>, reference: &Reference, root: usize) -> Option<Blame> {
    let mut stack = vec![root];
    let mut best: Option<(i64, usize, i64)> = None;
    while let Some(i) = stack.pop() {
        stack.extend(tree.children[i].iter().copied());
        let span = &tree.spans[i];
        let own = match (span.kind.is_exit(), tree.entry_child(i)) {
            // Client minus server time: the network and the callee's queueing.
            (true, Some(child)) => (span.duration_ns - tree.spans[child].duration_ns).max(0),
            _ => tree.self_time(i),
        };
        let key = (span.service.clone(), span.name.clone(), kind_key(span.kind));
        let median = reference.self_median.get(&key).copied().unwrap_or(0);
        let excess = own - median;
        if best.is_none_or(|(b, _, _)| excess > b) {
            best = Some((excess, i, own));
        }
    }
    let (excess, i, _) = best.filter(|(excess, _, _)| *excess > 0)?;
    let span = &tree.spans[i];
    if span.kind.is_exit() {
        let callee_entry = tree.entry_child(i);
        let callee = match callee_entry {
            Some(c) => tree.spans[c].service.clone(),
            None => span.peer.clone().unwrap_or_else(|| span.name.clone()),
        };
        let dependency = callee_entry.is_none() && !reference.instrumented.contains(&callee);
        return Some(Blame {
            caller: Some(span.service.clone()),
            caller_instance: span.instance.clone(),
            callee,
            instance: callee_entry.and_then(|c| tree.spans[c].instance.clone()),
            operation: span.name.clone(),
            kind: BlameKind::Latency,
            dependency,
            span_id: span.span_id,
            excess_ns: excess,
        });
    }
    Some(entry_blame(tree, i, BlameKind::Latency, excess))
}

/// Fills a [`Reference`] from baseline traces: median self time per operation and the
/// slow threshold of each root operation (max of 2× its median and its p99).
pub fn reference(traces: &[Vec<Span>], instrumented: HashSet<String>) -> Reference {
    let mut own: HashMap<(String, String, SpanKindKey), Vec<i64>> = HashMap::new();
    let mut roots: HashMap<(String, String), Vec<i64>> = HashMap::new();
    for trace in traces {
        let tree = Tree::new(trace);
        for i in 0..trace.len() {
            let span = &trace[i];
            let value = match (span.kind.is_exit(), tree.entry_child(i)) {
                (true, Some(child)) => (span.duration_ns - trace[child].duration_ns).max(0),
                _ => tree.self_time(i),
            };
            own.entry((span.service.clone(), span.name.clone(), kind_key(span.kind)))
                .or_default()
                .push(value);
            if tree.parent[i].is_none() && !span.error {
                roots
                    .entry((span.service.clone(), span.name.clone()))
                    .or_default()
                    .push(span.duration_ns);
            }
        }
    }
    let self_median = own
        .into_iter()
        .map(|(key, mut values)| (key, quantile(&mut values, 0.5)))
        .collect();
    let slow_threshold = roots
        .into_iter()
        .filter(|(_, values)| values.len() >= 10)
        .map(|(key, mut values)| {
            let median = quantile(&mut values, 0.5);
            let p99 = quantile(&mut values, 0.99);
            (key, p99.max(median.saturating_mul(2)))
        })
        .collect();
    Reference {
        self_median,
        slow_threshold,
        instrumented,
    }
}

/// The q-quantile (nearest rank) of `values`; 0 when empty. Sorts in place.
pub fn quantile(values: &mut [i64], q: f64) -> i64 {
    if values.is_empty() {
        return 0;
    }
    values.sort_unstable();
    let rank = ((values.len() as f64 - 1.0) * q.clamp(0.0, 1.0)).round() as usize;
    values[rank.min(values.len() - 1)]
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds a span for hand-made trees: ids are small integers.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn span(
        trace: u8,
        id: u8,
        parent: Option<u8>,
        service: &str,
        instance: &str,
        name: &str,
        kind: SpanKind,
        start_ms: i64,
        duration_ms: i64,
        error: bool,
    ) -> Span {
        Span {
            trace_id: TraceId([trace; 16]),
            span_id: SpanId([id; 8]),
            parent_id: parent.map(|p| SpanId([p; 8])),
            service: service.into(),
            instance: (!instance.is_empty()).then(|| instance.into()),
            name: name.into(),
            kind,
            start_ns: start_ms * 1_000_000,
            duration_ns: duration_ms * 1_000_000,
            error,
            message: None,
            peer: None,
        }
    }

    fn chain(trace: u8, failing: &[bool; 5]) -> Vec<Span> {
        use SpanKind::*;
        vec![
            span(
                trace, 1, None, "edge", "edge-0", "GET /", Server, 0, 100, failing[0],
            ),
            span(
                trace,
                2,
                Some(1),
                "edge",
                "edge-0",
                "call mid",
                Client,
                1,
                90,
                failing[1],
            ),
            span(
                trace,
                3,
                Some(2),
                "mid",
                "mid-0",
                "GET /mid",
                Server,
                2,
                80,
                failing[2],
            ),
            span(
                trace,
                4,
                Some(3),
                "mid",
                "mid-0",
                "call leaf",
                Client,
                3,
                60,
                failing[3],
            ),
            span(
                trace,
                5,
                Some(4),
                "leaf",
                "leaf-1",
                "GET /leaf",
                Server,
                4,
                50,
                failing[4],
            ),
        ]
    }

    #[test]
    fn deepest_failing_span_with_healthy_children_is_blamed() {
        let spans = chain(1, &[true; 5]);
        let tree = Tree::new(&spans);
        let blames = blame_trace(&tree, &Reference::default(), &());
        assert_eq!(blames.len(), 1);
        let blame = &blames[0];
        assert_eq!(blame.callee, "leaf");
        assert_eq!(blame.caller.as_deref(), Some("mid"));
        assert_eq!(blame.instance.as_deref(), Some("leaf-1"));
        assert_eq!(blame.operation, "GET /leaf");
        assert_eq!(blame.kind, BlameKind::Errors);

        // The middle fails on its own: the leaf is healthy, the middle is blamed.
        let spans = chain(2, &[true, true, true, false, false]);
        let blames = blame_trace(&Tree::new(&spans), &Reference::default(), &());
        assert_eq!(blames[0].callee, "mid");
        assert_eq!(blames[0].caller.as_deref(), Some("edge"));
        assert_eq!(blames[0].operation, "GET /mid");

        // A healthy trace without a slow threshold blames nothing.
        let spans = chain(3, &[false; 5]);
        assert!(blame_trace(&Tree::new(&spans), &Reference::default(), &()).is_empty());
    }

    #[test]
    fn failing_exit_span_without_callee_blames_the_dependency_or_unreachable_service() {
        use SpanKind::*;
        let mut db_call = span(
            1,
            3,
            Some(1),
            "orders",
            "orders-0",
            "SELECT",
            Client,
            5,
            20,
            true,
        );
        db_call.peer = Some("db".into());
        let spans = vec![
            span(
                1,
                1,
                None,
                "orders",
                "orders-0",
                "POST /order",
                Server,
                0,
                40,
                true,
            ),
            db_call,
        ];
        let blames = blame_trace(&Tree::new(&spans), &Reference::default(), &());
        assert_eq!(blames[0].callee, "db");
        assert_eq!(blames[0].caller.as_deref(), Some("orders"));
        assert!(blames[0].dependency);
        assert_eq!(blames[0].kind, BlameKind::Errors);

        // The same shape towards a service that reports spans elsewhere: unreachable.
        let reference = Reference {
            instrumented: ["db".to_string()].into_iter().collect(),
            ..Reference::default()
        };
        let blames = blame_trace(&Tree::new(&spans), &reference, &());
        assert_eq!(blames[0].kind, BlameKind::Unavailability);
        assert!(!blames[0].dependency);
    }

    #[test]
    fn zipkin_shared_span_ids_link_server_under_client() {
        use SpanKind::*;
        let mut spans = vec![
            span(1, 1, None, "edge", "", "GET /", Server, 0, 100, true),
            span(1, 2, Some(1), "edge", "", "get", Client, 1, 90, true),
            // Shared id: the server half has the client's id and the client's parent.
            span(1, 2, Some(1), "api", "api-1", "get", Server, 2, 80, true),
        ];
        spans[2].parent_id = Some(SpanId([1; 8]));
        let tree = Tree::new(&spans);
        assert_eq!(tree.parent[2], Some(1));
        let blames = blame_trace(&tree, &Reference::default(), &());
        assert_eq!(blames[0].callee, "api");
        assert_eq!(blames[0].caller.as_deref(), Some("edge"));
    }

    #[test]
    fn slow_trace_blames_the_span_whose_self_time_grew() {
        use SpanKind::*;
        let healthy: Vec<Vec<Span>> = (0..20u8)
            .map(|t| {
                vec![
                    span(t, 1, None, "edge", "", "GET /", Server, 0, 30, false),
                    span(t, 2, Some(1), "edge", "", "call", Client, 1, 25, false),
                    span(
                        t,
                        3,
                        Some(2),
                        "api",
                        "api-0",
                        "GET /api",
                        Server,
                        2,
                        20,
                        false,
                    ),
                    span(
                        t,
                        4,
                        Some(3),
                        "api",
                        "api-0",
                        "SELECT",
                        Client,
                        5,
                        10,
                        false,
                    ),
                ]
            })
            .collect();
        let reference = reference(&healthy, HashSet::new());
        assert_eq!(
            reference.slow_threshold[&("edge".into(), "GET /".into())],
            60_000_000
        );
        // The query under the api got 200 ms slower: inclusive time rises everywhere,
        // but only the database call's own time grew.
        let mut slow = vec![
            span(99, 1, None, "edge", "", "GET /", Server, 0, 230, false),
            span(99, 2, Some(1), "edge", "", "call", Client, 1, 225, false),
            span(
                99,
                3,
                Some(2),
                "api",
                "api-0",
                "GET /api",
                Server,
                2,
                220,
                false,
            ),
            span(
                99,
                4,
                Some(3),
                "api",
                "api-0",
                "SELECT",
                Client,
                5,
                210,
                false,
            ),
        ];
        slow[3].peer = Some("db".into());
        let blames = blame_trace(&Tree::new(&slow), &reference, &());
        assert_eq!(blames.len(), 1);
        assert_eq!(blames[0].callee, "db");
        assert_eq!(blames[0].caller.as_deref(), Some("api"));
        assert_eq!(blames[0].kind, BlameKind::Latency);
        assert!(blames[0].excess_ns >= 190_000_000);

        // The api itself is slow (its own time grew): the api is blamed.
        let slow_api = vec![
            span(98, 1, None, "edge", "", "GET /", Server, 0, 230, false),
            span(98, 2, Some(1), "edge", "", "call", Client, 1, 225, false),
            span(
                98,
                3,
                Some(2),
                "api",
                "api-1",
                "GET /api",
                Server,
                2,
                220,
                false,
            ),
            span(
                98,
                4,
                Some(3),
                "api",
                "api-1",
                "SELECT",
                Client,
                5,
                10,
                false,
            ),
        ];
        let blames = blame_trace(&Tree::new(&slow_api), &reference, &());
        assert_eq!(blames[0].callee, "api");
        assert_eq!(blames[0].instance.as_deref(), Some("api-1"));
        assert_eq!(blames[0].caller.as_deref(), Some("edge"));
    }

    #[test]
    fn caller_timeout_on_a_slow_healthy_callee_is_latency_at_the_callee() {
        use SpanKind::*;
        let spans = vec![
            span(1, 1, None, "edge", "", "GET /", Server, 0, 1000, true),
            span(1, 2, Some(1), "edge", "", "call", Client, 1, 999, true),
            span(
                1,
                3,
                Some(2),
                "api",
                "api-0",
                "GET /api",
                Server,
                2,
                1500,
                false,
            ),
        ];
        let blames = blame_trace(&Tree::new(&spans), &Reference::default(), &());
        assert_eq!(blames[0].callee, "api");
        assert_eq!(blames[0].kind, BlameKind::Latency);
    }

    #[test]
    fn error_logs_mark_spans_without_status() {
        struct Marked(SpanId);
        impl ErrorLogs for Marked {
            fn marks(&self, span: &Span) -> bool {
                span.span_id == self.0
            }
        }
        let spans = chain(1, &[false; 5]);
        let blames = blame_trace(
            &Tree::new(&spans),
            &Reference::default(),
            &Marked(SpanId([5; 8])),
        );
        assert_eq!(blames[0].callee, "leaf");
    }

    #[test]
    fn log_only_error_naming_an_unanswered_call_blames_that_call() {
        use SpanKind::*;
        struct Logged;
        impl ErrorLogs for Logged {
            fn marks(&self, span: &Span) -> bool {
                span.span_id == SpanId([1; 8])
            }
            fn text(&self, span: &Span) -> Option<&str> {
                self.marks(span)
                    .then_some("RedisConnectionFailureException: Unable to connect to cache-7:6379")
            }
        }
        let mut call = span(1, 2, Some(1), "auth", "auth-0", "GET", Client, 1, 2, false);
        call.peer = Some("cache-7".into());
        let spans = vec![
            span(
                1,
                1,
                None,
                "auth",
                "auth-0",
                "POST /token",
                Server,
                0,
                10,
                false,
            ),
            call,
        ];
        let blames = blame_trace(&Tree::new(&spans), &Reference::default(), &Logged);
        assert_eq!(blames[0].callee, "cache-7");
        assert_eq!(blames[0].caller.as_deref(), Some("auth"));
        assert!(blames[0].dependency);
    }

    #[test]
    fn self_time_subtracts_overlapping_children_once() {
        use SpanKind::*;
        let spans = vec![
            span(1, 1, None, "a", "", "op", Server, 0, 100, false),
            span(1, 2, Some(1), "a", "", "c1", Client, 10, 30, false),
            span(1, 3, Some(1), "a", "", "c2", Client, 20, 30, false),
            span(1, 4, Some(1), "a", "", "c3", Client, 90, 50, false),
        ];
        let tree = Tree::new(&spans);
        // Covered: [10,50) and [90,100) = 50 ms.
        assert_eq!(tree.self_time(0), 50_000_000);
    }
}
