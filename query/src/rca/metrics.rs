//! Metric corroboration: every series of the window is classified by its name into a
//! family (cpu, mem, gc, threads, pool, queue, errors, latency, traffic, liveness,
//! other), compared with its baseline by a capped one-sided robust z, and attributed to
//! a service and instance through common label names. Nothing here knows any fleet.

use std::collections::{HashMap, HashSet};

use arrow::array::{Array, Float64Array, Int64Array, UInt64Array};
use proto::{SeriesId, TenantId};
use storage::Storage;
use storage::metrics::MetricType;
use storage::series::{Labels, MatchOp, Matcher};

use super::stats::{Robust, Z_CAP};
use crate::{Error, Result};

/// Label names that carry the service, in order of preference.
pub const SERVICE_LABELS: [&str; 7] = [
    "service",
    "service_name",
    "app",
    "application",
    "job",
    "container",
    "exported_job",
];
/// Label names that carry the replica, in order of preference.
pub const INSTANCE_LABELS: [&str; 5] =
    ["service_instance_id", "pod", "instance", "hostname", "host"];

/// Most series one analysis compares.
const MAX_SERIES: usize = 50_000;
/// Series read per sample scan.
const CHUNK: usize = 2_000;

/// One series that moved in the window.
#[derive(Debug, Clone, PartialEq)]
pub struct Move {
    /// PromQL selector of the series (rate() applied by the reader for counters).
    pub selector: String,
    /// Its family.
    pub family: &'static str,
    /// The service its labels name.
    pub service: String,
    /// The replica its labels name, when any.
    pub instance: Option<String>,
    /// Window value (upper or lower quartile, in the bad direction; per second for counters).
    pub window: f64,
    /// Baseline median.
    pub baseline: f64,
    /// Capped one-sided robust z.
    pub z: f64,
}

/// The family of a series, from its name and labels.
pub fn family(name: &str, labels: &Labels) -> &'static str {
    let lower = name.to_ascii_lowercase();
    let has = |needle: &str| lower.contains(needle);
    if lower == "up" {
        return "liveness";
    }
    let server_error = ["status", "code", "status_code", "http_status_code"]
        .iter()
        .any(|l| labels.get(l).is_some_and(|v| v.starts_with('5')))
        || labels
            .get("outcome")
            .is_some_and(|v| v.eq_ignore_ascii_case("SERVER_ERROR"));
    if server_error || has("error") || has("exception") || has("fail") {
        return "errors";
    }
    if has("cpu") {
        return "cpu";
    }
    if has("_gc_") || lower.starts_with("gc_") || has("garbage") {
        return "gc";
    }
    if has("queue") || has("messages_ready") || has("backlog") || has("_lag") || has("depth") {
        return "queue";
    }
    if has("pending") || has("timeout") || has("rejected") || has("exhaust") {
        return "waiting";
    }
    if has("pool") || has("hikari") || has("connections_active") {
        return "pool";
    }
    if has("thread") {
        return "threads";
    }
    if has("memory") || has("heap") || has("rss") || has("_mem_") {
        return "mem";
    }
    if has("latency") || has("duration") || labels.get("quantile").is_some() {
        return "latency";
    }
    if has("request") || has("calls") || has("consum") || has("processed") || has("handled") {
        return "traffic";
    }
    "other"
}

/// The service a series belongs to, from its labels.
pub fn service_of(labels: &Labels) -> Option<String> {
    SERVICE_LABELS
        .iter()
        .find_map(|l| labels.get(l).filter(|v| !v.is_empty()).map(str::to_string))
}

/// The replica a series belongs to, from its labels.
pub fn instance_of(labels: &Labels) -> Option<String> {
    INSTANCE_LABELS
        .iter()
        .find_map(|l| labels.get(l).filter(|v| !v.is_empty()).map(str::to_string))
}

/// PromQL selector text of a series.
pub fn selector(labels: &Labels) -> String {
    let inner: Vec<String> = labels
        .iter()
        .filter(|(n, _)| *n != storage::series::METRIC_NAME_LABEL)
        .map(|(n, v)| format!("{n}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\"")))
        .collect();
    format!("{}{{{}}}", labels.metric_name(), inner.join(","))
}

fn is_counter(name: &str, types: &HashMap<String, MetricType>) -> bool {
    let base = ["_total", "_count", "_sum"]
        .iter()
        .find_map(|s| name.strip_suffix(s))
        .unwrap_or(name);
    match types.get(name).or_else(|| types.get(base)) {
        Some(MetricType::Counter) => true,
        Some(MetricType::Histogram | MetricType::Summary) => name != base,
        Some(_) => false,
        None => name != base,
    }
}

/// Per-second increase between consecutive samples (resets count from zero).
fn rates(points: &[(i64, f64)]) -> Vec<(i64, f64)> {
    points
        .windows(2)
        .filter(|w| w[1].0 > w[0].0)
        .map(|w| {
            let delta = if w[1].1 >= w[0].1 {
                w[1].1 - w[0].1
            } else {
                w[1].1
            };
            (w[1].0, delta * 1000.0 / (w[1].0 - w[0].0) as f64)
        })
        .collect()
}

/// Compares one series' window with its baseline; None when it did not move.
pub fn compare(
    family: &'static str,
    points: &[(i64, f64)],
    window: (i64, i64),
    baseline: (i64, i64),
    others_have_data: bool,
) -> Option<(f64, f64, f64)> {
    let base: Vec<f64> = points
        .iter()
        .filter(|(t, _)| *t >= baseline.0 && *t <= baseline.1)
        .map(|p| p.1)
        .collect();
    let mut now: Vec<f64> = points
        .iter()
        .filter(|(t, _)| *t >= window.0 && *t <= window.1)
        .map(|p| p.1)
        .collect();
    if base.len() < 3 {
        return None;
    }
    let fit = Robust::fit(&base, base_floor(family, &base))?;
    if now.is_empty() {
        // The series stopped while others kept reporting: a scrape gap, not a zero.
        return (others_have_data && base.len() >= 5).then_some((
            f64::NAN,
            fit.median,
            Z_CAP / 2.0,
        ));
    }
    let down_is_bad = matches!(family, "liveness" | "traffic");
    let q = if down_is_bad { 0.25 } else { 0.75 };
    let value = super::stats::quantile(&mut now, q);
    let z = if down_is_bad {
        fit.z_down(value)
    } else {
        fit.z_up(value)
    };
    // A move must also be large relative to the level, so tiny wiggles on flat series stay quiet.
    let relative = (value - fit.median).abs() / fit.median.abs().max(1e-9);
    (z >= 3.0 && relative >= 0.2).then_some((value, fit.median, z))
}

fn base_floor(family: &str, base: &[f64]) -> f64 {
    let level = base.iter().map(|v| v.abs()).fold(0.0, f64::max);
    match family {
        "liveness" => 0.1,
        // Counts that are flat at zero in the baseline: one unit is already a change.
        _ => (level * 0.05).max(1e-3),
    }
}

/// Reads every series active in `[baseline.0, window.1]` and returns those that moved,
/// strongest first, and whether any series had samples in the window. Span-derived
/// and self series are left out.
pub async fn moves(
    storage: &Storage,
    tenant: &TenantId,
    window: (i64, i64),
    baseline: (i64, i64),
    deadline: tokio::time::Instant,
) -> Result<(Vec<Move>, bool)> {
    let not_ours = Matcher::new(
        MatchOp::RegexNoMatch,
        storage::series::METRIC_NAME_LABEL,
        "(traces_spanmetrics_|traces_service_graph_|sightline_).*|.*_bucket",
    )
    .map_err(|e| Error::Internal(e.to_string()))?;
    let mut series: Vec<(SeriesId, Labels)> =
        storage.select_series(tenant, &[not_ours], baseline.0, window.1);
    series.retain(|(_, labels)| service_of(labels).is_some());
    series.truncate(MAX_SERIES);
    let types: HashMap<String, MetricType> = storage
        .metric_metadata(tenant)
        .into_iter()
        .map(|m| (m.metric, m.kind))
        .collect();
    let labels_of: HashMap<u64, &Labels> = series.iter().map(|(id, l)| (id.0, l)).collect();
    let mut points: HashMap<u64, Vec<(i64, f64)>> = HashMap::new();
    let step = 60_000i64.min(((window.1 - window.0) / 10).max(1));
    for chunk in series.chunks(CHUNK) {
        if tokio::time::Instant::now() >= deadline {
            break;
        }
        let ids: Vec<SeriesId> = chunk.iter().map(|(id, _)| *id).collect();
        let batch = storage
            .scan_samples(tenant, &ids, baseline.0 - step, window.1)
            .await?;
        let (Some(ids), Some(ts), Some(values)) = (
            batch.column(0).as_any().downcast_ref::<UInt64Array>(),
            batch.column(1).as_any().downcast_ref::<Int64Array>(),
            batch.column(2).as_any().downcast_ref::<Float64Array>(),
        ) else {
            return Err(Error::Internal("samples batch: unexpected columns".into()));
        };
        for row in 0..batch.num_rows() {
            points
                .entry(ids.value(row))
                .or_default()
                .push((ts.value(row), values.value(row)));
        }
    }
    let in_window: HashSet<u64> = points
        .iter()
        .filter(|(_, p)| p.iter().any(|(t, _)| *t >= window.0 && *t <= window.1))
        .map(|(id, _)| *id)
        .collect();
    let others_have_data = !in_window.is_empty();
    let mut out = Vec::new();
    for (id, raw) in &points {
        let Some(labels) = labels_of.get(id) else {
            continue;
        };
        let name = labels.metric_name();
        let family = family(name, labels);
        let values = if is_counter(name, &types) {
            rates(raw)
        } else {
            raw.clone()
        };
        if let Some((window_value, base, z)) =
            compare(family, &values, window, baseline, others_have_data)
        {
            out.push(Move {
                selector: selector(labels),
                family: if window_value.is_nan() {
                    "liveness"
                } else {
                    family
                },
                service: service_of(labels).unwrap_or_default(),
                instance: instance_of(labels),
                window: if window_value.is_nan() {
                    0.0
                } else {
                    window_value
                },
                baseline: base,
                z,
            });
        }
    }
    out.sort_by(|a, b| {
        b.z.total_cmp(&a.z)
            .then_with(|| a.selector.cmp(&b.selector))
    });
    Ok((out, others_have_data))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        Labels::new(
            pairs
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
        )
        .unwrap()
    }

    #[test]
    fn families_come_from_names_and_labels() {
        let l = labels(&[
            ("__name__", "hikaricp_connections_pending"),
            ("service", "a"),
        ]);
        assert_eq!(family(l.metric_name(), &l), "waiting");
        let l = labels(&[("__name__", "hikaricp_connections_active")]);
        assert_eq!(family(l.metric_name(), &l), "pool");
        let l = labels(&[
            ("__name__", "http_server_requests_seconds_count"),
            ("status", "503"),
        ]);
        assert_eq!(family(l.metric_name(), &l), "errors");
        let l = labels(&[("__name__", "process_cpu_usage")]);
        assert_eq!(family(l.metric_name(), &l), "cpu");
        let l = labels(&[("__name__", "up")]);
        assert_eq!(family(l.metric_name(), &l), "liveness");
        let l = labels(&[("__name__", "rabbitmq_queue_messages_ready")]);
        assert_eq!(family(l.metric_name(), &l), "queue");
        let l = labels(&[("__name__", "x"), ("job", "svc"), ("instance", "svc-1")]);
        assert_eq!(service_of(&l).as_deref(), Some("svc"));
        assert_eq!(instance_of(&l).as_deref(), Some("svc-1"));
        assert_eq!(selector(&l), "x{instance=\"svc-1\",job=\"svc\"}");
    }

    #[test]
    fn compare_flags_moves_in_the_bad_direction_only() {
        let baseline = (0, 100_000);
        let window = (100_001, 200_000);
        let mut points: Vec<(i64, f64)> = (0..10)
            .map(|i| (i * 10_000, 0.2 + (i % 2) as f64 * 0.01))
            .collect();
        points.extend((0..10).map(|i| (100_001 + i * 10_000, 0.9)));
        let (value, base, z) = compare("cpu", &points, window, baseline, true).unwrap();
        assert!(value > 0.8 && (base - 0.205).abs() < 0.01 && z >= 3.0);
        // Down is not bad for cpu.
        let down: Vec<(i64, f64)> = points.iter().map(|(t, v)| (*t, 1.0 - v)).collect();
        assert!(compare("cpu", &down, window, baseline, true).is_none());
        // up went to 0.
        let mut up: Vec<(i64, f64)> = (0..10).map(|i| (i * 10_000, 1.0)).collect();
        up.extend((0..10).map(|i| (100_001 + i * 10_000, 0.0)));
        assert!(compare("liveness", &up, window, baseline, true).is_some());
        // A series that stopped reporting while others did not: a gap.
        let gone: Vec<(i64, f64)> = (0..10).map(|i| (i * 10_000, 1.0)).collect();
        assert!(compare("cpu", &gone, window, baseline, true).is_some());
        assert!(compare("cpu", &gone, window, baseline, false).is_none());
        assert_eq!(
            rates(&[(0, 0.0), (1000, 5.0), (2000, 2.0)]),
            vec![(1000, 5.0), (2000, 2.0)]
        );
    }
}
