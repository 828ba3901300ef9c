//! Log patterns: lines grouped into templates with their variable parts masked, counted
//! per time bucket, and compared between a baseline and an incident window ("this
//! template is new", "up 40×").
//!
//! Mining is Drain-like: each line is split on whitespace, tokens that look like
//! variables (numbers, hex ids, UUIDs, IPs, durations, quoted strings, key=value with
//! such a value) are masked as `<_>`, and the line joins the most similar template of
//! its service with the same token count (similarity ≥ [`SIMILARITY`]); the positions
//! that differ become `<_>`. Clusters per service are bounded ([`MAX_CLUSTERS`]);
//! beyond it lines join the most similar template whatever its score.

use std::collections::HashMap;
use std::sync::Arc;

use proto::TenantId;
use serde::Serialize;
use storage::{LogScan, Storage};

use crate::logql::LogLine;
use crate::logql::fetch::{self, Direction};
use crate::{Error, Result};

/// The variable marker in templates (Loki's).
pub const WILDCARD: &str = "<_>";
/// Share of equal tokens for a line to join a template.
pub const SIMILARITY: f64 = 0.5;
/// Most templates kept per service.
pub const MAX_CLUSTERS: usize = 500;
/// Most tokens considered per line.
const MAX_TOKENS: usize = 64;

/// One template and its counts.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Pattern {
    /// The service the lines came from.
    pub service: String,
    /// The template, variables as `<_>`.
    pub template: String,
    /// Lines matched.
    pub total: u64,
    /// `(bucket start ns, lines)` for buckets with lines, ascending.
    pub buckets: Vec<(i64, u64)>,
    /// First line time, ns.
    pub first_seen_ns: i64,
    /// Last line time, ns.
    pub last_seen_ns: i64,
    /// One line of the template.
    pub sample: String,
}

/// How a template changed between two windows.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// Absent from the baseline.
    New,
    /// Rate up by at least 2×.
    Increased,
    /// Rate down by at least 2×.
    Decreased,
    /// Absent from the incident window.
    Gone,
}

/// A template whose rate changed between the baseline and incident windows.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PatternChange {
    /// Service.
    pub service: String,
    /// Template.
    pub template: String,
    /// What changed.
    pub kind: ChangeKind,
    /// Lines in the baseline window.
    pub baseline_count: u64,
    /// Lines in the incident window.
    pub incident_count: u64,
    /// Incident rate over baseline rate (per second); infinite for new templates.
    pub ratio: f64,
    /// One line of the template.
    pub sample: String,
}

fn is_hex_id(token: &str) -> bool {
    token.len() >= 8
        && token.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
        && token.bytes().any(|b| b.is_ascii_digit())
}

fn is_number(token: &str) -> bool {
    let t = token.trim_start_matches(['-', '+']);
    let t = t.strip_prefix("0x").unwrap_or(t);
    !t.is_empty()
        && t.bytes().any(|b| b.is_ascii_digit())
        && t.bytes()
            .all(|b| b.is_ascii_digit() || b == b'.' || b == b',' || b == b'_')
}

fn is_duration_or_size(token: &str) -> bool {
    let digits = token
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(token.len());
    if digits == 0 {
        return false;
    }
    matches!(
        token[digits..].to_ascii_lowercase().as_str(),
        "ns" | "us"
            | "µs"
            | "ms"
            | "s"
            | "m"
            | "h"
            | "d"
            | "b"
            | "kb"
            | "mb"
            | "gb"
            | "kib"
            | "mib"
            | "gib"
            | "%"
    )
}

fn is_ip(token: &str) -> bool {
    let host = token.split(':').next().unwrap_or(token);
    let parts: Vec<&str> = host.split('.').collect();
    (parts.len() == 4
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.parse::<u8>().is_ok()))
        || (token.matches(':').count() >= 2
            && token.bytes().all(|b| b.is_ascii_hexdigit() || b == b':'))
}

/// True when a token looks like a variable value.
pub fn is_variable(token: &str) -> bool {
    let core =
        token.trim_matches(|c: char| matches!(c, ',' | ';' | '(' | ')' | '[' | ']' | '{' | '}'));
    if core.is_empty() {
        return false;
    }
    (core.len() >= 2 && (core.starts_with('"') && core.ends_with('"')))
        || (core.len() >= 2 && (core.starts_with('\'') && core.ends_with('\'')))
        || is_number(core)
        || is_hex_id(core)
        || is_ip(core)
        || is_duration_or_size(core)
}

/// Masks a line's variable tokens; `key=value` keeps its key.
pub fn mask(line: &str) -> Vec<String> {
    line.split_whitespace()
        .take(MAX_TOKENS)
        .map(|token| {
            if let Some((key, value)) = token.split_once('=')
                && !key.is_empty()
                && (is_variable(value) || value.is_empty())
            {
                return format!("{key}={WILDCARD}");
            }
            if is_variable(token) {
                WILDCARD.to_string()
            } else {
                token.to_string()
            }
        })
        .collect()
}

struct Cluster {
    tokens: Vec<String>,
    total: u64,
    buckets: HashMap<i64, u64>,
    first: i64,
    last: i64,
    sample: String,
    /// Counts per window for [`compare`].
    windows: [u64; 2],
}

/// Incremental pattern miner.
#[derive(Default)]
pub struct Miner {
    groups: HashMap<(String, usize), Vec<Cluster>>,
    clusters_per_service: HashMap<String, usize>,
}

fn similarity(a: &[String], b: &[String]) -> f64 {
    if a.is_empty() {
        return 1.0;
    }
    let same = a
        .iter()
        .zip(b)
        .filter(|(x, y)| x == y && x.as_str() != WILDCARD)
        .count();
    let constant = a.iter().filter(|t| t.as_str() != WILDCARD).count().max(1);
    same as f64 / constant as f64
}

impl Miner {
    /// Adds one line; `window` is 0 or 1 (baseline, incident) for [`compare`].
    pub fn add(&mut self, service: &str, ts_ns: i64, body: &str, step_ns: i64, window: usize) {
        let tokens = mask(body);
        let key = (service.to_string(), tokens.len());
        let clusters = self.groups.entry(key).or_default();
        let best = clusters
            .iter()
            .enumerate()
            .map(|(i, c)| (i, similarity(&c.tokens, &tokens)))
            .max_by(|a, b| a.1.total_cmp(&b.1));
        let count = self
            .clusters_per_service
            .entry(service.to_string())
            .or_default();
        let index = match best {
            Some((i, score)) if score >= SIMILARITY || *count >= MAX_CLUSTERS => {
                let cluster = &mut clusters[i];
                for (t, new) in cluster.tokens.iter_mut().zip(&tokens) {
                    if t != new {
                        *t = WILDCARD.to_string();
                    }
                }
                i
            }
            _ => {
                *count += 1;
                clusters.push(Cluster {
                    tokens,
                    total: 0,
                    buckets: HashMap::new(),
                    first: ts_ns,
                    last: ts_ns,
                    sample: body.chars().take(1000).collect(),
                    windows: [0, 0],
                });
                clusters.len() - 1
            }
        };
        let cluster = &mut clusters[index];
        cluster.total += 1;
        *cluster
            .buckets
            .entry(ts_ns.div_euclid(step_ns.max(1)) * step_ns.max(1))
            .or_default() += 1;
        cluster.first = cluster.first.min(ts_ns);
        cluster.last = cluster.last.max(ts_ns);
        cluster.windows[window.min(1)] += 1;
    }

    fn clusters(&self) -> impl Iterator<Item = (&str, &Cluster)> {
        self.groups.iter().flat_map(|((service, _), clusters)| {
            clusters.iter().map(move |c| (service.as_str(), c))
        })
    }

    /// The templates, most frequent first.
    pub fn patterns(&self) -> Vec<Pattern> {
        let mut out: Vec<Pattern> = self
            .clusters()
            .map(|(service, c)| {
                let mut buckets: Vec<(i64, u64)> =
                    c.buckets.iter().map(|(k, v)| (*k, *v)).collect();
                buckets.sort_unstable();
                Pattern {
                    service: service.to_string(),
                    template: c.tokens.join(" "),
                    total: c.total,
                    buckets,
                    first_seen_ns: c.first,
                    last_seen_ns: c.last,
                    sample: c.sample.clone(),
                }
            })
            .collect();
        out.sort_by(|a, b| {
            b.total
                .cmp(&a.total)
                .then_with(|| a.template.cmp(&b.template))
        });
        out
    }
}

/// Mines `lines` into templates counted per bucket of `step_ns`.
pub fn mine(lines: &[LogLine], step_ns: i64) -> Vec<Pattern> {
    let mut miner = Miner::default();
    for line in lines {
        miner.add(&line.service, line.ts_ns, &line.body, step_ns, 0);
    }
    miner.patterns()
}

/// Compares the templates of a baseline and an incident window (mined together, so a
/// template means the same in both); durations in ns normalise the counts to rates.
/// Returns the new, gone, and ≥ 2× changed templates, biggest change first.
pub fn compare(
    baseline: &[LogLine],
    baseline_ns: i64,
    incident: &[LogLine],
    incident_ns: i64,
) -> Vec<PatternChange> {
    let mut miner = Miner::default();
    let step = baseline_ns.max(incident_ns).max(1);
    for line in baseline {
        miner.add(&line.service, line.ts_ns, &line.body, step, 0);
    }
    for line in incident {
        miner.add(&line.service, line.ts_ns, &line.body, step, 1);
    }
    let base_s = baseline_ns.max(1) as f64 / 1e9;
    let incident_s = incident_ns.max(1) as f64 / 1e9;
    let mut out: Vec<PatternChange> = miner
        .clusters()
        .filter_map(|(service, c)| {
            let [b, i] = c.windows;
            let ratio = if b == 0 {
                f64::INFINITY
            } else {
                (i as f64 / incident_s) / (b as f64 / base_s)
            };
            let kind = match (b, i) {
                (0, 0) => return None,
                (0, _) => ChangeKind::New,
                (_, 0) => ChangeKind::Gone,
                _ if ratio >= 2.0 => ChangeKind::Increased,
                _ if ratio <= 0.5 => ChangeKind::Decreased,
                _ => return None,
            };
            Some(PatternChange {
                service: service.to_string(),
                template: c.tokens.join(" "),
                kind,
                baseline_count: b,
                incident_count: i,
                ratio,
                sample: c.sample.clone(),
            })
        })
        .collect();
    let weight = |c: &PatternChange| match c.kind {
        ChangeKind::New => (3, c.incident_count as f64),
        ChangeKind::Increased => (2, c.ratio),
        ChangeKind::Decreased => (1, 1.0 / c.ratio.max(f64::MIN_POSITIVE)),
        ChangeKind::Gone => (0, c.baseline_count as f64),
    };
    out.sort_by(|a, b| {
        let (ka, wa) = weight(a);
        let (kb, wb) = weight(b);
        kb.cmp(&ka).then(wb.total_cmp(&wa))
    });
    out
}

/// [`mine`] on the blocking pool: mining is CPU work of seconds on large windows and
/// must not hold an async worker (that would stall every other request, ingest included).
pub async fn mine_blocking(lines: Arc<Vec<LogLine>>, step_ns: i64) -> Result<Vec<Pattern>> {
    tokio::task::spawn_blocking(move || mine(&lines, step_ns))
        .await
        .map_err(|e| Error::Internal(format!("pattern mining failed: {e}")))
}

/// [`compare`] on the blocking pool (see [`mine_blocking`]).
pub async fn compare_blocking(
    baseline: Vec<LogLine>,
    baseline_ns: i64,
    incident: Arc<Vec<LogLine>>,
    incident_ns: i64,
) -> Result<Vec<PatternChange>> {
    tokio::task::spawn_blocking(move || compare(&baseline, baseline_ns, &incident, incident_ns))
        .await
        .map_err(|e| Error::Internal(format!("pattern comparison failed: {e}")))
}

/// Reads the lines of `services` (all when empty) in `[start_ns, end_ns]` for mining.
pub async fn lines(
    storage: &Arc<Storage>,
    tenant: &TenantId,
    services: &[String],
    start_ns: i64,
    end_ns: i64,
) -> Result<Vec<LogLine>> {
    if start_ns > end_ns {
        return Err(Error::BadRequest("start must not be after end".into()));
    }
    let scan = LogScan {
        start_ns,
        end_ns,
        services: services.to_vec(),
        ..LogScan::default()
    };
    fetch::lines(storage, tenant, &scan, &|_| true, None, Direction::Forward).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(ts: i64, body: &str) -> LogLine {
        LogLine {
            ts_ns: ts,
            service: "api".into(),
            instance: None,
            severity: None,
            severity_number: 0,
            body: body.into(),
            trace_id: None,
            span_id: None,
            attributes: Default::default(),
            resource: Default::default(),
        }
    }

    #[test]
    fn masking() {
        assert_eq!(
            mask(
                "GET /api/v1/users/42 took 12ms from 10.0.0.7:443 id=4bf92f3577b34da6 user=\"bo\" 550e8400-e29b-41d4-a716-446655440000"
            ),
            vec![
                "GET",
                "/api/v1/users/42",
                "took",
                "<_>",
                "from",
                "<_>",
                "id=<_>",
                "user=<_>",
                "<_>"
            ]
        );
    }

    #[test]
    fn mining_and_compare() {
        let mut base = Vec::new();
        let mut incident = Vec::new();
        for i in 0..10 {
            base.push(line(i, &format!("request served user={i} in {i}ms")));
            incident.push(line(100 + i, &format!("request served user={i} in {i}ms")));
        }
        for i in 0..20 {
            incident.push(line(
                100 + i,
                &format!("connection refused to db-{i} after retry"),
            ));
        }
        let patterns = mine(&incident, 50);
        assert_eq!(patterns.len(), 2, "{patterns:#?}");
        assert_eq!(
            patterns[0].template,
            "connection refused to <_> after retry"
        );
        assert_eq!(patterns[0].total, 20);
        assert_eq!(patterns[1].template, "request served user=<_> in <_>");
        assert_eq!(patterns[1].buckets, vec![(100, 10)]);
        let changes = compare(&base, 10, &incident, 10);
        assert_eq!(changes.len(), 1, "{changes:#?}");
        assert_eq!(changes[0].kind, ChangeKind::New);
        assert_eq!(changes[0].incident_count, 20);
        let louder: Vec<LogLine> = (0..50)
            .map(|i| line(100 + i, &format!("request served user={i} in 1ms")))
            .collect();
        let changes = compare(&base, 10, &louder, 10);
        assert_eq!(changes[0].kind, ChangeKind::Increased);
        assert!((changes[0].ratio - 5.0).abs() < 1e-9);
    }
}
