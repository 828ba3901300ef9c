//! Background task: every minute, the failing-hop analysis over the last 15 minutes of
//! the default tenant; its suspects are written as ordinary samples of
//! `sightline_rca_suspect_score{service, caller, callee, operation, kind}` so PromQL and
//! Grafana read them like any series.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ingest::Protocol;
use proto::TenantId;
use query::rca::{self, Request};
use storage::metrics::{MetricMetadata, MetricType, MetricsWrite, Sample, SeriesWrite};
use storage::series::Labels;
use tokio::sync::watch;
use tracing::{debug, warn};

use crate::http::AppState;

/// How often the analysis runs.
const EVERY: Duration = Duration::from_secs(60);
/// The window each run analyses, ending now.
const WINDOW_MS: i64 = 15 * 60_000;
/// The series name.
pub const METRIC: &str = "sightline_rca_suspect_score";

/// The samples of one report, stamped `ts_ms`.
pub fn samples(report: &rca::Report, ts_ms: i64) -> MetricsWrite {
    let mut write = MetricsWrite::default();
    for suspect in &report.suspects {
        let pairs = vec![
            ("__name__".to_string(), METRIC.to_string()),
            ("service".to_string(), suspect.service.clone()),
            (
                "caller".to_string(),
                suspect.caller.clone().unwrap_or_default(),
            ),
            ("callee".to_string(), suspect.callee.clone()),
            (
                "operation".to_string(),
                suspect.operation.clone().unwrap_or_default(),
            ),
            ("kind".to_string(), suspect.kind.clone()),
        ]
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .collect();
        let Ok(labels) = Labels::new(pairs) else {
            continue;
        };
        write.series.push(SeriesWrite {
            labels,
            samples: vec![Sample {
                ts_ms,
                value: suspect.score,
            }],
            exemplars: Vec::new(),
        });
    }
    write.metadata.push(MetricMetadata {
        metric: METRIC.to_string(),
        kind: MetricType::Gauge,
        help: "Score of each current failing-hop suspect (last 15 minutes)".to_string(),
        unit: String::new(),
    });
    write
}

/// Starts the loop; it ends when `drain` turns true.
pub fn spawn(state: AppState, tenant: TenantId, mut drain: watch::Receiver<bool>) {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(EVERY) => {}
                _ = drain.wait_for(|d| *d) => return,
            }
            let Some(storage) = state.storage().cloned() else {
                continue;
            };
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0);
            let request = Request::new(now - WINDOW_MS, now);
            let timeout = state.query().config().timeout.get();
            match rca::analyze(&storage, &tenant, &request, timeout).await {
                Ok(report) if report.suspects.is_empty() => debug!("no rca suspect"),
                Ok(report) => {
                    let write = samples(&report, now);
                    if let Err(error) = state
                        .ingest()
                        .write_metrics(Protocol::SpanMetrics, &tenant, &write)
                        .await
                    {
                        warn!(%error, "writing rca suspect scores failed");
                    }
                }
                Err(error) => warn!(%error, "background rca failed"),
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suspects_become_labelled_samples() {
        let report = rca::Report {
            signals_used: vec!["traces"],
            signals_missing: vec![],
            suspects: vec![rca::Suspect {
                rank: 1,
                service: "db".into(),
                instance: None,
                caller: Some("api".into()),
                callee: "db".into(),
                operation: None,
                kind: "errors".into(),
                score: 0.9,
                evidence: serde_json::Value::Null,
            }],
        };
        let write = samples(&report, 42);
        assert_eq!(write.series.len(), 1);
        let labels = &write.series[0].labels;
        assert_eq!(labels.metric_name(), METRIC);
        assert_eq!(labels.get("caller"), Some("api"));
        assert_eq!(labels.get("operation"), None);
        assert_eq!(write.series[0].samples[0].value, 0.9);
    }
}
