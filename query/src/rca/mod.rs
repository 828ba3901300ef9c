//! The failing-hop (root cause) analysis behind `GET /api/v1/rca`.
//!
//! ```text
//!  spans (window + baseline) ──► traces ──► blame per failing/slow trace ──┐
//!  logs  (window + baseline) ──► error counts, new templates, span marks ──┼─► candidates
//!  metrics (every series)    ──► family z per service/instance ──────────┘   ranked
//! ```
//!
//! Owns the analysis and its correlation primitives ([`correlate`]). It reads only
//! through the storage read API and knows nothing of any particular fleet: service
//! names, metric families and dependencies all come from the data. The method is the
//! one of RCA-NOTES.md: blame the deepest failing (or slowest self-time) span whose
//! children are healthy, aggregate by hop, weigh against the same hop's baseline,
//! corroborate with the callee's metrics and logs, and rank.

pub mod correlate;
pub mod logs;
pub mod metrics;
pub mod red;
pub mod spans;
pub mod stats;

use std::collections::{BTreeMap, HashMap, HashSet};

use proto::{TenantId, TraceId};
use serde::Serialize;
use serde_json::{Value, json};
use storage::{LogScan, SpanScan, Storage};
use tokio::time::Instant;

use self::logs::LogIndex;
use self::metrics::Move;
use self::red::Red;
use self::spans::{BlameKind, Span, Tree};
use self::stats::{Z_CAP, rate_z, strength};
use crate::{Error, Result};

/// Most spans decoded per window (window and baseline each); traces are sampled by id
/// beyond it.
const MAX_SPANS: usize = 400_000;
/// Most log lines decoded per window.
const MAX_LOGS: usize = 300_000;
/// Fewest failing traces before trace blame counts.
const MIN_FAILING: usize = 3;
/// Suspects returned.
const MAX_SUSPECTS: usize = 5;
/// Example trace ids per suspect.
const EXAMPLES: usize = 3;

/// What to analyse.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// Window start, Unix milliseconds.
    pub start_ms: i64,
    /// Window end, Unix milliseconds.
    pub end_ms: i64,
    /// Baseline window, Unix milliseconds.
    pub baseline: (i64, i64),
    /// The symptom's service: only traces through it are analysed.
    pub service: Option<String>,
    /// The symptom's operation (with `service`).
    pub operation: Option<String>,
    /// Which signals to read: `traces`, `logs`, `metrics` (all by default).
    pub signals: Vec<&'static str>,
}

/// Every signal the analysis can read.
pub const SIGNALS: [&str; 3] = ["traces", "logs", "metrics"];

impl Request {
    /// A request over `[start_ms, end_ms]` with the default baseline: the three window
    /// lengths just before `start_ms`.
    pub fn new(start_ms: i64, end_ms: i64) -> Self {
        let length = (end_ms - start_ms).max(1);
        Request {
            start_ms,
            end_ms,
            baseline: (start_ms - 3 * length, start_ms - 1),
            service: None,
            operation: None,
            signals: SIGNALS.to_vec(),
        }
    }
}

/// One ranked suspect hop.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Suspect {
    /// 1 for the most likely cause.
    pub rank: usize,
    /// The service at fault (the callee of the hop, a dependency included).
    pub service: String,
    /// The replica at fault, when one replica is the problem.
    pub instance: Option<String>,
    /// The calling service of the failing hop, when known.
    pub caller: Option<String>,
    /// The called service or dependency of the failing hop.
    pub callee: String,
    /// The failing operation, when known.
    pub operation: Option<String>,
    /// `errors`, `latency`, `saturation`, `unavailability` or `stuck`.
    pub kind: String,
    /// Confidence score, larger is more likely (about 0..1.5).
    pub score: f64,
    /// Counts against baseline, example traces, log lines, moved series.
    pub evidence: Value,
}

/// The answer of one analysis.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// Signals the analysis found data for: `traces`, `logs`, `metrics`.
    pub signals_used: Vec<&'static str>,
    /// Signals without data in the window.
    pub signals_missing: Vec<&'static str>,
    /// Suspects, most likely first.
    pub suspects: Vec<Suspect>,
}

fn check(deadline: Instant, timeout: std::time::Duration) -> Result<()> {
    if Instant::now() >= deadline {
        return Err(Error::Timeout(timeout));
    }
    Ok(())
}

/// Loads the spans of a window, sampling traces by id past [`MAX_SPANS`].
pub async fn load_spans(
    storage: &Storage,
    tenant: &TenantId,
    start_ms: i64,
    end_ms: i64,
) -> Result<Vec<Span>> {
    let scan = SpanScan {
        start_ns: start_ms.saturating_mul(1_000_000),
        end_ns: end_ms.saturating_mul(1_000_000),
        ..SpanScan::default()
    };
    let batches = storage.scan_spans(tenant, &scan).await?;
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    let keep_one_in = rows.div_ceil(MAX_SPANS).clamp(1, 256) as u32;
    spans::decode(
        &batches,
        |trace: &TraceId| u32::from(trace.0[15]) % keep_one_in == 0,
        MAX_SPANS,
    )
}

/// Loads the log lines of a window, at most [`MAX_LOGS`].
pub async fn load_logs(
    storage: &Storage,
    tenant: &TenantId,
    start_ms: i64,
    end_ms: i64,
) -> Result<Vec<logs::Line>> {
    let scan = LogScan {
        start_ns: start_ms.saturating_mul(1_000_000),
        end_ns: end_ms.saturating_mul(1_000_000),
        ..LogScan::default()
    };
    let batches = storage.scan_logs(tenant, &scan).await?;
    logs::decode(&batches, MAX_LOGS)
}

/// Blame accumulated for one callee.
#[derive(Debug, Default)]
struct Aggregate {
    weight: f64,
    baseline_weight: f64,
    callers: HashMap<Option<String>, f64>,
    operations: HashMap<String, f64>,
    instances: HashMap<String, f64>,
    kinds: HashMap<&'static str, f64>,
    examples: Vec<TraceId>,
    dependency: bool,
    excess_ms: Vec<f64>,
}

fn kind_name(kind: BlameKind) -> &'static str {
    match kind {
        BlameKind::Errors => "errors",
        BlameKind::Latency => "latency",
        BlameKind::Unavailability => "unavailability",
    }
}

fn top<K: Clone + Ord>(map: &HashMap<K, f64>) -> Option<(K, f64)> {
    map.iter()
        .max_by(|a, b| a.1.total_cmp(b.1).then_with(|| b.0.cmp(a.0)))
        .map(|(k, v)| (k.clone(), *v))
}

/// A consumer/server operation whose traffic vanished while its callers' did not.
#[derive(Debug, Clone)]
struct Drop {
    service: String,
    operation: String,
    caller: Option<String>,
    expected: f64,
    seen: u64,
}

/// Finds entry operations whose rate fell below 30 % of the baseline's while the
/// operation that used to call them kept at least 60 % of its rate.
fn drops(window: &[Vec<Span>], baseline: &[Vec<Span>], ratio: f64) -> Vec<Drop> {
    let mut base_counts: HashMap<(String, String), u64> = HashMap::new();
    let mut parents: HashMap<(String, String), HashMap<(String, String), u64>> = HashMap::new();
    for trace in baseline {
        let tree = Tree::new(trace);
        for (i, span) in trace.iter().enumerate() {
            let key = (span.service.clone(), span.name.clone());
            *base_counts.entry(key.clone()).or_default() += 1;
            if span.kind.is_entry() {
                // The nearest span of another service above: the producer or caller.
                let mut at = tree.parent[i];
                while let Some(p) = at {
                    if trace[p].service != span.service {
                        *parents
                            .entry(key.clone())
                            .or_default()
                            .entry((trace[p].service.clone(), trace[p].name.clone()))
                            .or_default() += 1;
                        break;
                    }
                    at = tree.parent[p];
                }
            }
        }
    }
    let mut counts: HashMap<(String, String), u64> = HashMap::new();
    for span in window.iter().flatten() {
        *counts
            .entry((span.service.clone(), span.name.clone()))
            .or_default() += 1;
    }
    let base_traces = baseline.len() as f64 * ratio;
    let traffic_kept = base_traces > 0.0 && window.len() as f64 >= 0.6 * base_traces;
    let mut out = Vec::new();
    let entry_ops: HashSet<(String, String)> = baseline
        .iter()
        .flatten()
        .filter(|s| s.kind.is_entry())
        .map(|s| (s.service.clone(), s.name.clone()))
        .collect();
    for key in entry_ops {
        let expected = base_counts.get(&key).copied().unwrap_or(0) as f64 * ratio;
        let seen = counts.get(&key).copied().unwrap_or(0);
        if expected < 20.0 || seen as f64 >= 0.3 * expected {
            continue;
        }
        let parent = parents.get(&key).and_then(|p| {
            p.iter()
                .max_by(|a, b| a.1.cmp(b.1).then_with(|| b.0.cmp(a.0)))
                .map(|(k, _)| k.clone())
        });
        let parent_kept = match &parent {
            Some(parent_key) => {
                let expected_parent =
                    base_counts.get(parent_key).copied().unwrap_or(0) as f64 * ratio;
                counts.get(parent_key).copied().unwrap_or(0) as f64 >= 0.6 * expected_parent
            }
            None => traffic_kept,
        };
        if parent_kept {
            out.push(Drop {
                service: key.0,
                operation: key.1,
                caller: parent.map(|p| p.0),
                expected,
                seen,
            });
        }
    }
    out.sort_by(|a, b| {
        (a.service.clone(), a.operation.clone()).cmp(&(b.service.clone(), b.operation.clone()))
    });
    out
}

/// Metric and log corroboration of one service: max z per family.
fn families(service: &str, moves: &[Move], log_index: &LogIndex) -> BTreeMap<&'static str, f64> {
    let mut out: BTreeMap<&'static str, f64> = BTreeMap::new();
    for m in moves.iter().filter(|m| m.service == service) {
        let weight = if m.family == "other" { 0.5 } else { 1.0 };
        let z = m.z * weight;
        let entry = out.entry(m.family).or_default();
        *entry = entry.max(z);
    }
    if let Some(window) = log_index.window.get(service) {
        let base = log_index.baseline.get(service).cloned().unwrap_or_default();
        let z = rate_z(window.errors, window.lines, base.errors, base.lines);
        let new = log_index.new_templates(service);
        let new_errors: u64 = new.iter().map(|t| t.1).sum();
        let template_z = if new_errors >= 3 {
            (3.0 + (new_errors as f64).ln()).min(Z_CAP)
        } else {
            0.0
        };
        let logs_z = z.max(template_z);
        if logs_z > 0.0 {
            out.insert("logs", logs_z);
        }
    }
    out
}

/// Runs the analysis. `deadline` bounds it; past it the analysis fails with a timeout.
pub async fn analyze(
    storage: &Storage,
    tenant: &TenantId,
    request: &Request,
    timeout: std::time::Duration,
) -> Result<Report> {
    let deadline = Instant::now() + timeout;
    if request.end_ms <= request.start_ms {
        return Err(Error::BadRequest(
            "end timestamp must not be before start time".into(),
        ));
    }
    if request.baseline.1 <= request.baseline.0 {
        return Err(Error::BadRequest(
            "baseline_end must be after baseline_start".into(),
        ));
    }
    let window = (request.start_ms, request.end_ms);
    let ratio = (window.1 - window.0) as f64 / (request.baseline.1 - request.baseline.0) as f64;

    let wants = |signal: &str| request.signals.contains(&signal);
    let (mut window_spans, mut baseline_spans) = (Vec::new(), Vec::new());
    if wants("traces") {
        window_spans = load_spans(storage, tenant, window.0, window.1).await?;
        check(deadline, timeout)?;
        baseline_spans =
            load_spans(storage, tenant, request.baseline.0, request.baseline.1).await?;
        check(deadline, timeout)?;
    }
    let (mut window_logs, mut baseline_logs) = (Vec::new(), Vec::new());
    if wants("logs") {
        window_logs = load_logs(storage, tenant, window.0, window.1).await?;
        check(deadline, timeout)?;
        baseline_logs = load_logs(storage, tenant, request.baseline.0, request.baseline.1).await?;
        check(deadline, timeout)?;
    }
    let (moves, metrics_present) = if wants("metrics") {
        metrics::moves(storage, tenant, window, request.baseline, deadline).await?
    } else {
        (Vec::new(), false)
    };
    check(deadline, timeout)?;

    let mut signals_used = Vec::new();
    let mut signals_missing = Vec::new();
    for (name, present) in [
        ("traces", !window_spans.is_empty()),
        ("logs", !window_logs.is_empty()),
        ("metrics", metrics_present),
    ] {
        if present {
            signals_used.push(name);
        } else {
            signals_missing.push(name);
        }
    }

    // Every service name the data knows, for log mentions.
    let mut services: HashSet<String> = HashSet::new();
    services.extend(window_spans.iter().map(|s| s.service.clone()));
    services.extend(baseline_spans.iter().map(|s| s.service.clone()));
    services.extend(window_spans.iter().filter_map(|s| s.peer.clone()));
    services.extend(window_logs.iter().map(|l| l.service.clone()));
    services.extend(baseline_logs.iter().map(|l| l.service.clone()));
    services.extend(moves.iter().map(|m| m.service.clone()));
    let log_index = LogIndex::build(&window_logs, &baseline_logs, &services);
    drop(window_logs);
    drop(baseline_logs);

    let instrumented: HashSet<String> = window_spans
        .iter()
        .chain(&baseline_spans)
        .filter(|s| s.kind.is_entry())
        .map(|s| s.service.clone())
        .collect();
    let mut window_traces = spans::group_traces(window_spans);
    let baseline_traces = spans::group_traces(baseline_spans);
    if let Some(service) = &request.service {
        window_traces.retain(|trace| {
            trace.iter().any(|s| {
                &s.service == service && request.operation.as_ref().is_none_or(|op| &s.name == op)
            })
        });
    }
    let reference = spans::reference(&baseline_traces, instrumented.clone());
    check(deadline, timeout)?;

    // Blame every failing trace, window and baseline.
    let mut aggregates: HashMap<String, Aggregate> = HashMap::new();
    let mut failing_window = 0usize;
    for trace in &window_traces {
        let tree = Tree::new(trace);
        let blames = spans::blame_trace(&tree, &reference, &log_index);
        if blames.is_empty() {
            continue;
        }
        failing_window += 1;
        let weight = 1.0 / blames.len() as f64;
        for blame in blames {
            let entry = aggregates.entry(blame.callee.clone()).or_default();
            entry.weight += weight;
            *entry.callers.entry(blame.caller.clone()).or_default() += weight;
            *entry.operations.entry(blame.operation.clone()).or_default() += weight;
            if let Some(instance) = &blame.instance {
                *entry.instances.entry(instance.clone()).or_default() += weight;
            }
            *entry.kinds.entry(kind_name(blame.kind)).or_default() += weight;
            entry.dependency |= blame.dependency;
            if entry.examples.len() < EXAMPLES && !entry.examples.contains(&trace[0].trace_id) {
                entry.examples.push(trace[0].trace_id);
            }
            entry.excess_ms.push(blame.excess_ns as f64 / 1e6);
        }
    }
    check(deadline, timeout)?;
    for trace in &baseline_traces {
        let tree = Tree::new(trace);
        let blames = spans::blame_trace(&tree, &reference, &());
        let weight = 1.0 / blames.len().max(1) as f64;
        for blame in blames {
            if let Some(entry) = aggregates.get_mut(&blame.callee) {
                entry.baseline_weight += weight;
            }
        }
    }
    let drops = drops(&window_traces, &baseline_traces, ratio);
    check(deadline, timeout)?;

    let flat_window: Vec<Span> = window_traces.iter().flatten().cloned().collect();
    let flat_baseline: Vec<Span> = baseline_traces.iter().flatten().cloned().collect();
    let total_window = window_traces.len().max(1) as f64;
    let total_baseline = baseline_traces.len().max(1) as f64;

    let mut candidates: Vec<Suspect> = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    if failing_window >= MIN_FAILING {
        for (callee, agg) in &aggregates {
            let share = agg.weight / failing_window as f64;
            let window_rate = agg.weight / total_window;
            let base_rate = agg.baseline_weight / total_baseline;
            let excess = if window_rate > 0.0 {
                (1.0 - base_rate / window_rate).max(0.0)
            } else {
                0.0
            };
            let base = share * excess;
            if base < 0.02 {
                continue;
            }
            let mut fams = families(callee, &moves, &log_index);
            let is_instrumented = !agg.dependency && instrumented.contains(callee);
            let red_window = Red::of(red::callee_spans(&flat_window, callee, is_instrumented));
            let red_baseline = Red::of(red::callee_spans(&flat_baseline, callee, is_instrumented));
            let red_z = red_z(&red_window, &red_baseline);
            if red_z > 0.0 {
                fams.insert("traces", red_z);
            }
            let e_max = fams.values().copied().map(strength).fold(0.0, f64::max);
            let agreeing = fams.values().filter(|z| **z >= 3.0).count() as f64;
            let score = base * (0.5 + 0.5 * e_max) + 0.05 * agreeing * (4.0 * base).min(1.0);
            let (kind, _) = top(&agg.kinds).unwrap_or(("errors", 0.0));
            let kind = refine_kind(
                kind,
                &fams,
                &moves,
                callee,
                &flat_window,
                &flat_baseline,
                ratio,
                !agg.dependency,
            );
            let instance = pick_instance(agg, callee, &flat_window, &flat_baseline, ratio, kind);
            let caller = top(&agg.callers).and_then(|c| c.0);
            // A dependency failing for one caller while its other callers are served
            // is that caller's problem (its queries, its pool), not the dependency's.
            let mut service = callee.clone();
            if agg.dependency
                && let Some(caller) = &caller
            {
                let callers: HashSet<&str> = red::callee_spans(&flat_window, callee, false)
                    .iter()
                    .map(|s| s.service.as_str())
                    .collect();
                let weight = agg
                    .callers
                    .get(&Some(caller.clone()))
                    .copied()
                    .unwrap_or(0.0);
                if callers.len() >= 2 && weight >= 0.9 * agg.weight {
                    service = caller.clone();
                }
            }
            let operation = top(&agg.operations).map(|o| o.0);
            let evidence = evidence(EvidenceInput {
                callee,
                caller: caller.as_deref(),
                share,
                agg: Some(agg),
                failing_window,
                base_rate,
                window_rate,
                instrumented: is_instrumented,
                window: &flat_window,
                baseline: &flat_baseline,
                moves: &moves,
                fams: &fams,
                log_index: &log_index,
                examples: &agg.examples,
            });
            seen.insert(callee.clone());
            candidates.push(Suspect {
                rank: 0,
                service,
                instance,
                caller,
                callee: callee.clone(),
                operation,
                kind: kind.to_string(),
                score,
                evidence,
            });
        }
    }
    for drop in &drops {
        if seen.contains(&drop.service) {
            continue;
        }
        let fams = families(&drop.service, &moves, &log_index);
        let e_max = fams.values().copied().map(strength).fold(0.0, f64::max);
        let vanished = 1.0 - drop.seen as f64 / drop.expected.max(1.0);
        let score = 0.8 * vanished * (0.5 + 0.5 * e_max);
        let stopped_errors = fams.get("liveness").copied().unwrap_or(0.0) >= 3.0;
        let kind = if stopped_errors {
            "unavailability"
        } else {
            "stuck"
        };
        let mut evidence = evidence(EvidenceInput {
            callee: &drop.service,
            caller: drop.caller.as_deref(),
            share: 0.0,
            agg: None,
            failing_window,
            base_rate: 0.0,
            window_rate: 0.0,
            instrumented: true,
            window: &flat_window,
            baseline: &flat_baseline,
            moves: &moves,
            fams: &fams,
            log_index: &log_index,
            examples: &[],
        });
        evidence["throughput"] = json!({
            "operation": drop.operation,
            "expected_calls": drop.expected.round(),
            "window_calls": drop.seen,
        });
        evidence["summary"] = Value::String(format!(
            "{} {} handled {} calls where the baseline rate predicts {:.0}, while its caller kept its traffic",
            drop.service, drop.operation, drop.seen, drop.expected
        ));
        seen.insert(drop.service.clone());
        candidates.push(Suspect {
            rank: 0,
            service: drop.service.clone(),
            instance: None,
            caller: drop.caller.clone(),
            callee: drop.service.clone(),
            operation: Some(drop.operation.clone()),
            kind: kind.to_string(),
            score,
            evidence,
        });
    }
    // Services seen only through metrics and logs (no traces, or no blame).
    let trace_based = !candidates.is_empty();
    let mut by_service: BTreeMap<String, ()> = BTreeMap::new();
    for m in &moves {
        by_service.insert(m.service.clone(), ());
    }
    for service in log_index.window.keys() {
        by_service.insert(service.clone(), ());
    }
    // Who names whom in error lines: a service mostly naming others passes errors through.
    let mut pointed: HashMap<String, f64> = HashMap::new();
    for (from, targets) in &log_index.mentions {
        let total: u64 = targets.values().sum();
        for (to, n) in targets {
            *pointed.entry(to.clone()).or_default() += *n as f64 / total.max(1) as f64;
        }
        let _ = from;
    }
    for service in by_service.keys() {
        if seen.contains(service) {
            continue;
        }
        let fams = families(service, &moves, &log_index);
        let e_max = fams.values().copied().map(strength).fold(0.0, f64::max);
        if e_max < strength(3.0) {
            continue;
        }
        let errors = log_index.window.get(service).map_or(0, |c| c.errors);
        let passing: u64 = log_index
            .mentions
            .get(service)
            .map_or(0, |m| m.values().copied().max().unwrap_or(0));
        let pass_through = if errors > 0 {
            (passing as f64 / errors as f64).min(1.0)
        } else {
            0.0
        };
        let pointed_at = pointed.get(service).copied().unwrap_or(0.0).min(3.0);
        let agreeing = fams.values().filter(|z| **z >= 3.0).count() as f64;
        let mut score =
            e_max * (1.0 - 0.8 * pass_through) * (1.0 + 0.3 * pointed_at) + 0.03 * agreeing;
        if trace_based {
            score *= 0.3;
        }
        score *= 0.6;
        let kind = metric_kind(&fams);
        let caller = log_index
            .mentions
            .iter()
            .filter_map(|(from, targets)| targets.get(service).map(|n| (from.clone(), *n)))
            .max_by(|a, b| a.1.cmp(&b.1).then_with(|| b.0.cmp(&a.0)))
            .map(|(from, _)| from);
        let instance = metric_instance(service, &moves);
        let mut evidence = evidence(EvidenceInput {
            callee: service,
            caller: caller.as_deref(),
            share: 0.0,
            agg: None,
            failing_window,
            base_rate: 0.0,
            window_rate: 0.0,
            instrumented: true,
            window: &flat_window,
            baseline: &flat_baseline,
            moves: &moves,
            fams: &fams,
            log_index: &log_index,
            examples: &[],
        });
        evidence["service_level_only"] = Value::Bool(true);
        candidates.push(Suspect {
            rank: 0,
            service: service.clone(),
            instance,
            caller,
            callee: service.clone(),
            operation: None,
            kind: kind.to_string(),
            score,
            evidence,
        });
    }
    candidates.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then_with(|| a.service.cmp(&b.service))
    });
    candidates.truncate(MAX_SUSPECTS);
    for (i, suspect) in candidates.iter_mut().enumerate() {
        suspect.rank = i + 1;
        suspect.score = (suspect.score * 1000.0).round() / 1000.0;
    }
    Ok(Report {
        signals_used,
        signals_missing,
        suspects: candidates,
    })
}

/// z of the callee's own RED: error ratio against the baseline's, and median latency
/// against the baseline's (a quarter of the baseline median, at least 1 ms, per unit).
fn red_z(window: &Red, baseline: &Red) -> f64 {
    if window.calls < 10 {
        return 0.0;
    }
    let errors = rate_z(window.errors, window.calls, baseline.errors, baseline.calls);
    let latency = if baseline.calls >= 10 {
        ((window.p50_ms - baseline.p50_ms) / (0.25 * baseline.p50_ms).max(1.0)).clamp(0.0, Z_CAP)
    } else {
        0.0
    };
    errors.max(latency)
}

/// The kind a metrics-only candidate gets from its strongest families.
fn metric_kind(fams: &BTreeMap<&'static str, f64>) -> &'static str {
    let z = |f: &str| fams.get(f).copied().unwrap_or(0.0);
    if z("liveness") >= 3.0 {
        "unavailability"
    } else if z("queue") >= 3.0 && z("errors") < 3.0 && z("logs") < 3.0 {
        "stuck"
    } else if z("waiting") >= 3.0 || z("pool") >= 3.0 {
        "saturation"
    } else if z("errors") >= 3.0 || z("logs") >= 3.0 {
        "errors"
    } else {
        "latency"
    }
}

/// Turns the majority blame kind into the reported kind, with the callee's metrics
/// and its traffic.
#[allow(clippy::too_many_arguments)]
fn refine_kind(
    kind: &'static str,
    fams: &BTreeMap<&'static str, f64>,
    moves: &[Move],
    callee: &str,
    window: &[Span],
    baseline: &[Span],
    ratio: f64,
    instrumented: bool,
) -> &'static str {
    let z = |f: &str| fams.get(f).copied().unwrap_or(0.0);
    // Work waiting for a resource (pool pending, timeouts, rejections) is saturation;
    // busy threads and active connections rise with any slowdown and prove nothing.
    // CPU that moved and sits at its limit (a fraction of one, as process/container
    // CPU usage is exported): the service is starved, not merely slower.
    let cpu_bound = z("cpu") >= 3.0
        && z("cpu") >= z("mem").max(z("gc"))
        && moves
            .iter()
            .any(|m| m.service == callee && m.family == "cpu" && (0.8..=1.0).contains(&m.window));
    match kind {
        "latency" | "errors" if z("waiting") >= 3.0 => "saturation",
        "latency" if cpu_bound => "saturation",
        "errors" if z("liveness") >= 3.0 => "unavailability",
        "errors" if instrumented => {
            // The callee stopped answering: its entry spans mostly vanished.
            let expected = red::callee_spans(baseline, callee, true).len() as f64 * ratio;
            let seen = red::callee_spans(window, callee, true).len() as f64;
            if expected >= 20.0 && seen < 0.3 * expected {
                "unavailability"
            } else {
                "errors"
            }
        }
        "errors" => {
            // A dependency that fails (nearly) every call is down, not erring.
            let red = Red::of(red::callee_spans(window, callee, false));
            if red.calls >= 10 && red.error_ratio() >= 0.9 {
                "unavailability"
            } else {
                "errors"
            }
        }
        other => other,
    }
}

/// The replica at fault: blame concentrated on one of ≥ 2 replicas, or, for an
/// unreachable callee, the replica whose traffic vanished while a sibling's did not.
fn pick_instance(
    agg: &Aggregate,
    callee: &str,
    window: &[Span],
    baseline: &[Span],
    ratio: f64,
    kind: &str,
) -> Option<String> {
    let count_by_instance = |spans: &[Span]| {
        let mut counts: HashMap<String, f64> = HashMap::new();
        for s in spans
            .iter()
            .filter(|s| s.kind.is_entry() && s.service == callee)
        {
            if let Some(instance) = &s.instance {
                *counts.entry(instance.clone()).or_default() += 1.0;
            }
        }
        counts
    };
    let base = count_by_instance(baseline);
    let now = count_by_instance(window);
    let replicas: HashSet<&String> = base.keys().chain(now.keys()).collect();
    if replicas.len() < 2 {
        return None;
    }
    let total: f64 = agg.instances.values().sum();
    if let Some((instance, weight)) = top(&agg.instances)
        && total > 0.0
        && weight / total >= 0.75
        && kind != "unavailability"
    {
        // Siblings must be serving: a callee-wide fault spreads over all replicas.
        return Some(instance);
    }
    // Traffic that vanished from one replica while its siblings kept theirs.
    let mut vanished: Vec<(String, f64)> = base
        .iter()
        .filter(|(_, n)| **n * ratio >= 10.0)
        .map(|(i, n)| (i.clone(), now.get(i).copied().unwrap_or(0.0) / (n * ratio)))
        .collect();
    vanished.sort_by(|a, b| a.1.total_cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
    match vanished.as_slice() {
        [(instance, low), rest @ ..]
            if *low < 0.2 && rest.iter().all(|(_, r)| *r >= 0.5) && !rest.is_empty() =>
        {
            Some(instance.clone())
        }
        _ => None,
    }
}

/// The replica named by metrics: one replica moved (z ≥ 3) and its siblings did not.
fn metric_instance(service: &str, moves: &[Move]) -> Option<String> {
    let mut by_instance: HashMap<String, f64> = HashMap::new();
    for m in moves
        .iter()
        .filter(|m| m.service == service && m.family != "other")
    {
        if let Some(instance) = &m.instance {
            let entry = by_instance.entry(instance.clone()).or_default();
            *entry = entry.max(m.z);
        }
    }
    let strong: Vec<&String> = by_instance
        .iter()
        .filter(|(_, z)| **z >= 3.0)
        .map(|(i, _)| i)
        .collect();
    (strong.len() == 1).then(|| strong[0].clone())
}

struct EvidenceInput<'a> {
    callee: &'a str,
    caller: Option<&'a str>,
    share: f64,
    agg: Option<&'a Aggregate>,
    failing_window: usize,
    base_rate: f64,
    window_rate: f64,
    instrumented: bool,
    window: &'a [Span],
    baseline: &'a [Span],
    moves: &'a [Move],
    fams: &'a BTreeMap<&'static str, f64>,
    log_index: &'a LogIndex,
    examples: &'a [TraceId],
}

fn red_json(red: &Red) -> Value {
    json!({
        "calls": red.calls,
        "errors": red.errors,
        "error_ratio": (red.error_ratio() * 10_000.0).round() / 10_000.0,
        "p50_ms": (red.p50_ms * 100.0).round() / 100.0,
        "p99_ms": (red.p99_ms * 100.0).round() / 100.0,
    })
}

fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn evidence(input: EvidenceInput<'_>) -> Value {
    let callee = input.callee;
    let red_window = Red::of(red::callee_spans(input.window, callee, input.instrumented));
    let red_baseline = Red::of(red::callee_spans(
        input.baseline,
        callee,
        input.instrumented,
    ));
    let window_logs = input
        .log_index
        .window
        .get(callee)
        .cloned()
        .unwrap_or_default();
    let baseline_logs = input
        .log_index
        .baseline
        .get(callee)
        .cloned()
        .unwrap_or_default();
    let new_templates: Vec<Value> = input
        .log_index
        .new_templates(callee)
        .into_iter()
        .take(3)
        .map(|(template, count, example)| json!({"template": template, "count": count, "example": example}))
        .collect();
    let mut lines: Vec<Value> = Vec::new();
    for trace in input.examples {
        for (service, body) in input.log_index.error_lines.get(trace).into_iter().flatten() {
            if lines.len() < 3 {
                lines
                    .push(json!({"trace_id": trace.to_string(), "service": service, "line": body}));
            }
        }
    }
    let series: Vec<Value> = input
        .moves
        .iter()
        .filter(|m| m.service == callee)
        .take(5)
        .map(|m| {
            json!({
                "selector": m.selector,
                "family": m.family,
                "instance": m.instance,
                "window": round(m.window),
                "baseline_median": round(m.baseline),
                "z": round(m.z),
            })
        })
        .collect();
    let fams: BTreeMap<&str, f64> = input.fams.iter().map(|(k, v)| (*k, round(*v))).collect();
    let blame = input.agg.map(|agg| {
        let callers: BTreeMap<String, f64> = agg
            .callers
            .iter()
            .map(|(k, v)| (k.clone().unwrap_or_else(|| "(root)".into()), round(*v)))
            .collect();
        let instances: BTreeMap<String, f64> = agg
            .instances
            .iter()
            .map(|(k, v)| (k.clone(), round(*v)))
            .collect();
        let mut excess = agg.excess_ms.clone();
        json!({
            "share": round(input.share),
            "failing_traces": input.failing_window,
            "blamed_traces": round(agg.weight),
            "window_blame_rate": round(input.window_rate),
            "baseline_blame_rate": round(input.base_rate),
            "callers": callers,
            "instances": instances,
            "dependency": agg.dependency,
            "median_self_time_excess_ms": round(stats::quantile(&mut excess, 0.5).max(0.0)),
        })
    });
    let summary = match input.agg {
        Some(_) => format!(
            "{:.0}% of {} failing traces end at {} → {} ({} calls, {:.1}% errors, p99 {:.0} ms; baseline {:.1}% errors, p99 {:.0} ms)",
            input.share * 100.0,
            input.failing_window,
            input.caller.unwrap_or("(root)"),
            callee,
            red_window.calls,
            red_window.error_ratio() * 100.0,
            red_window.p99_ms,
            red_baseline.error_ratio() * 100.0,
            red_baseline.p99_ms,
        ),
        None => format!(
            "{callee}: strongest moves {}",
            fams.iter()
                .map(|(k, v)| format!("{k} z={v}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    json!({
        "summary": summary,
        "blame": blame,
        "window": red_json(&red_window),
        "baseline": red_json(&red_baseline),
        "example_trace_ids": input.examples.iter().map(|t| t.to_string()).collect::<Vec<_>>(),
        "logs": {
            "errors_window": window_logs.errors,
            "errors_baseline": baseline_logs.errors,
            "lines_window": window_logs.lines,
            "lines_baseline": baseline_logs.lines,
            "new_templates": new_templates,
            "trace_lines": lines,
        },
        "metrics": series,
        "families_z": fams,
    })
}

#[cfg(test)]
mod tests {
    use super::spans::SpanKind::*;
    use super::spans::tests::span;
    use super::*;

    #[test]
    fn a_consumer_that_stopped_while_its_producer_kept_sending_is_a_drop() {
        let make = |t: u8, with_consumer: bool| {
            let mut trace = vec![
                span(
                    t,
                    1,
                    None,
                    "shop",
                    "shop-0",
                    "POST /buy",
                    Server,
                    0,
                    10,
                    false,
                ),
                span(
                    t,
                    2,
                    Some(1),
                    "shop",
                    "shop-0",
                    "publish",
                    Producer,
                    1,
                    1,
                    false,
                ),
            ];
            if with_consumer {
                trace.push(span(
                    t,
                    3,
                    Some(2),
                    "mailer",
                    "mailer-0",
                    "consume",
                    Consumer,
                    5,
                    3,
                    false,
                ));
            }
            trace
        };
        let baseline: Vec<Vec<Span>> = (0..120u8).map(|t| make(t, true)).collect();
        let window: Vec<Vec<Span>> = (0..40u8).map(|t| make(t, t < 2)).collect();
        let found = drops(&window, &baseline, 1.0 / 3.0);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].service, "mailer");
        assert_eq!(found[0].caller.as_deref(), Some("shop"));
        // When the producer's traffic fell as well, the consumer is not to blame.
        let quiet: Vec<Vec<Span>> = (0..5u8).map(|t| make(t, false)).collect();
        assert!(drops(&quiet, &baseline, 1.0 / 3.0).is_empty());
    }

    #[test]
    fn one_replica_with_the_blame_is_named() {
        let mut agg = Aggregate::default();
        agg.instances.insert("api-1".into(), 9.0);
        agg.instances.insert("api-0".into(), 1.0);
        let spans: Vec<Span> = (0..10u8)
            .flat_map(|t| {
                vec![
                    span(t, 1, None, "api", "api-0", "GET", Server, 0, 1, false),
                    span(t, 2, None, "api", "api-1", "GET", Server, 0, 1, false),
                ]
            })
            .collect();
        assert_eq!(
            pick_instance(&agg, "api", &spans, &spans, 1.0, "errors").as_deref(),
            Some("api-1")
        );
        // Spread over both replicas: the service, not a replica.
        agg.instances.insert("api-0".into(), 8.0);
        assert_eq!(
            pick_instance(&agg, "api", &spans, &spans, 1.0, "errors"),
            None
        );
        // A replica whose traffic vanished.
        let window: Vec<Span> = spans
            .iter()
            .filter(|s| s.instance.as_deref() == Some("api-0"))
            .cloned()
            .collect();
        assert_eq!(
            pick_instance(&agg, "api", &window, &spans, 1.0, "unavailability").as_deref(),
            Some("api-1")
        );
    }
}
