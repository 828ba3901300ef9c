//! The failing-hop analysis judged on the simulator: every scenario of
//! `sim::catalogue()` is backfilled (healthy minutes, then the fault) through the real
//! protocols into its own tenant of one server, `/api/v1/rca` is asked about the fault
//! window, and the verdict is compared with the ground truth. Prints a table and the
//! top-1/top-3 accuracy of the root-cause service and of the failing hop, for all
//! signals, traces only, metrics + logs only, and spans without error status.
//!
//! A realtime run of one scenario measures the time from fault start to a verdict
//! (`--ignored`, it takes a few minutes).

mod common;

use std::io::Write as _;
use std::time::{Duration, Instant};

use common::TestServer;
use serde_json::Value;
use sim::{GroundTruth, LogTransport, MetricTransport, RunConfig, SpanTransport};

/// A fixed past instant (2026-11-20T08:00:00Z): the analysis must work on old data.
const START_MS: i64 = 1_795_161_600_000;
const HEALTHY: Duration = Duration::from_secs(8 * 60);
const FAULT: Duration = Duration::from_secs(4 * 60);
const RPS: f64 = 2.5;
/// Scenarios simulated at once.
const PARALLEL: usize = 2;

fn config(server: &TestServer, tenant: &str, scenario: &str, span_status: bool) -> RunConfig {
    RunConfig {
        base_url: server.url(),
        tenant: Some(tenant.to_string()),
        seed: 11,
        scenario: Some(scenario.to_string()),
        history: Duration::ZERO,
        warmup: HEALTHY,
        fault_duration: FAULT,
        realtime: false,
        start_ms: Some(START_MS),
        rps: RPS,
        spans: SpanTransport::Zipkin,
        logs: LogTransport::EsBulk,
        metrics: MetricTransport::RemoteWrite,
        span_status,
    }
}

async fn rca(server: &TestServer, tenant: &str, truth: &GroundTruth, signals: &str) -> Value {
    let url = format!(
        "{}/api/v1/rca?start={}&end={}&signals={signals}",
        server.url(),
        truth.start_ms as f64 / 1000.0,
        truth.end_ms as f64 / 1000.0
    );
    let response = reqwest::Client::new()
        .get(url)
        .header("X-Scope-OrgID", tenant)
        .send()
        .await
        .expect("rca answers");
    assert_eq!(response.status().as_u16(), 200);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["status"], "success");
    body["data"].clone()
}

/// One verdict against its ground truth.
#[derive(Debug, Clone)]
struct Outcome {
    scenario: String,
    truth: String,
    got: String,
    service_rank: Option<usize>,
    hop_rank: Option<usize>,
    kind_ok: bool,
}

fn judge(scenario: &str, truth: &GroundTruth, data: &Value) -> Outcome {
    let suspects = data["suspects"].as_array().cloned().unwrap_or_default();
    let field = |s: &Value, k: &str| s[k].as_str().map(str::to_string);
    let service_rank = suspects.iter().position(|s| {
        field(s, "service").as_deref() == Some(truth.service.as_str())
            || field(s, "callee").as_deref() == Some(truth.service.as_str())
    });
    let hop_rank = suspects.iter().position(|s| {
        field(s, "callee").as_deref() == Some(truth.callee.as_str())
            && (truth.caller.is_none() || field(s, "caller") == truth.caller)
    });
    let got = suspects
        .first()
        .map(|s| {
            format!(
                "{} -> {} {} {} ({:.2})",
                field(s, "caller").unwrap_or_else(|| "-".into()),
                field(s, "callee").unwrap_or_default(),
                field(s, "instance").unwrap_or_default(),
                field(s, "kind").unwrap_or_default(),
                s["score"].as_f64().unwrap_or(0.0)
            )
        })
        .unwrap_or_else(|| "(none)".into());
    if let Some(top) = suspects.first()
        && top["kind"].as_str() != Some(truth.kind.as_str())
    {
        let mut out = std::io::stderr().lock();
        let _ = writeln!(
            out,
            "{scenario}: kind {} vs truth {}; families {}",
            top["kind"], truth.kind, top["evidence"]["families_z"]
        );
    }
    Outcome {
        scenario: scenario.to_string(),
        truth: format!(
            "{} -> {} {} {}",
            truth.caller.as_deref().unwrap_or("-"),
            truth.callee,
            truth.instance.as_deref().unwrap_or(""),
            truth.kind
        ),
        got,
        service_rank,
        hop_rank,
        kind_ok: suspects
            .first()
            .is_some_and(|s| s["kind"].as_str() == Some(truth.kind.as_str())),
    }
}

struct Accuracy {
    service_top1: f64,
    service_top3: f64,
    hop_top1: f64,
    hop_top3: f64,
    kind_top1: f64,
}

fn report(title: &str, outcomes: &[Outcome]) -> Accuracy {
    let n = outcomes.len().max(1) as f64;
    let share = |f: &dyn Fn(&Outcome) -> bool| outcomes.iter().filter(|o| f(o)).count() as f64 / n;
    let accuracy = Accuracy {
        service_top1: share(&|o| o.service_rank == Some(0)),
        service_top3: share(&|o| o.service_rank.is_some_and(|r| r < 3)),
        hop_top1: share(&|o| o.hop_rank == Some(0)),
        hop_top3: share(&|o| o.hop_rank.is_some_and(|r| r < 3)),
        kind_top1: share(&|o| o.kind_ok),
    };
    let mut text = format!("\n== {title} ==\n");
    text.push_str(&format!(
        "{:<34} {:<44} {:<56} {:>4} {:>4} {:>4}\n",
        "scenario", "truth (caller -> callee instance kind)", "top suspect", "svc", "hop", "kind"
    ));
    let rank = |r: Option<usize>| r.map_or("-".to_string(), |r| (r + 1).to_string());
    for o in outcomes {
        text.push_str(&format!(
            "{:<34} {:<44} {:<56} {:>4} {:>4} {:>4}\n",
            o.scenario,
            o.truth,
            o.got,
            rank(o.service_rank),
            rank(o.hop_rank),
            if o.kind_ok { "ok" } else { "-" }
        ));
    }
    text.push_str(&format!(
        "service top-1 {:.1}%  top-3 {:.1}%  |  hop top-1 {:.1}%  top-3 {:.1}%  |  kind top-1 {:.1}%  ({} scenarios)\n",
        accuracy.service_top1 * 100.0,
        accuracy.service_top3 * 100.0,
        accuracy.hop_top1 * 100.0,
        accuracy.hop_top3 * 100.0,
        accuracy.kind_top1 * 100.0,
        outcomes.len()
    ));
    let mut out = std::io::stderr().lock();
    let _ = out.write_all(text.as_bytes());
    accuracy
}

/// Backfills every scenario into its own tenant, `PARALLEL` at a time; returns the
/// tenants and truths.
async fn backfill(
    server: &TestServer,
    span_status: bool,
    prefix: &str,
    keep: impl Fn(&GroundTruth) -> bool,
) -> Vec<(String, String, GroundTruth)> {
    // RCA_SCENARIOS=a,b restricts the run while iterating on the analysis.
    let only: Option<Vec<String>> = std::env::var("RCA_SCENARIOS")
        .ok()
        .map(|v| v.split(',').map(str::to_string).collect());
    let names: Vec<String> = sim::catalogue()
        .into_iter()
        .map(|s| s.name)
        .filter(|n| only.as_ref().is_none_or(|o| o.contains(n)))
        .filter(|n| {
            let plan = sim::plan(&config(server, "plan", n, span_status));
            plan.ok().flatten().is_some_and(|truth| keep(&truth))
        })
        .collect();
    let mut out = Vec::new();
    for group in names.chunks(PARALLEL) {
        let runs = group.iter().map(|name| {
            let tenant = format!("{prefix}{name}");
            let run_config = config(server, &tenant, name, span_status);
            async move {
                let report = sim::run(run_config, std::future::pending())
                    .await
                    .expect("simulation runs");
                (name.clone(), tenant, report.truth.expect("ground truth"))
            }
        });
        out.extend(futures::future::join_all(runs).await);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scenario_is_localised() {
    let server = TestServer::start().await;
    let started = Instant::now();
    let runs = backfill(&server, true, "s-", |_| true).await;
    let ingest_time = started.elapsed();

    let mut all = Vec::new();
    let mut traces_only = Vec::new();
    let mut metrics_logs = Vec::new();
    let mut slowest = Duration::ZERO;
    for (name, tenant, truth) in &runs {
        let asked = Instant::now();
        let data = rca(&server, tenant, truth, "traces,logs,metrics").await;
        slowest = slowest.max(asked.elapsed());
        assert_eq!(
            data["signals_used"],
            serde_json::json!(["traces", "logs", "metrics"]),
            "{name}"
        );
        all.push(judge(name, truth, &data));
        let data = rca(&server, tenant, truth, "traces").await;
        assert_eq!(data["signals_used"], serde_json::json!(["traces"]));
        traces_only.push(judge(name, truth, &data));
        let data = rca(&server, tenant, truth, "metrics,logs").await;
        assert_eq!(data["signals_used"], serde_json::json!(["logs", "metrics"]));
        metrics_logs.push(judge(name, truth, &data));
    }
    let full = report("all signals", &all);
    let traces = report("traces only", &traces_only);
    let metrics = report("metrics + logs only", &metrics_logs);
    let mut out = std::io::stderr().lock();
    let _ = writeln!(
        out,
        "backfill of {} scenarios: {:.0?}; slowest analysis: {:.0?}",
        runs.len(),
        ingest_time,
        slowest
    );
    drop(out);
    assert!(full.service_top1 >= 0.95, "service top-1 below 95%");
    assert!(full.service_top3 >= 1.0, "service top-3 below 100%");
    assert!(full.hop_top1 >= 0.90, "hop top-1 below 90%");
    // Degraded signals: reported, with looser floors.
    assert!(
        traces.service_top3 >= 0.7,
        "traces only: service top-3 below 70%"
    );
    assert!(
        metrics.service_top3 >= 0.5,
        "metrics + logs: service top-3 below 50%"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_without_error_status_are_localised() {
    let server = TestServer::start().await;
    // Error status only matters where errors are the signal.
    let runs = backfill(&server, false, "n-", |truth| {
        matches!(truth.kind.as_str(), "errors" | "unavailability")
    })
    .await;
    let mut outcomes = Vec::new();
    for (name, tenant, truth) in &runs {
        let data = rca(&server, tenant, truth, "traces,logs,metrics").await;
        outcomes.push(judge(name, truth, &data));
    }
    let accuracy = report(
        "span_status=false (errors only in http codes, logs, metrics)",
        &outcomes,
    );
    assert!(accuracy.service_top3 >= 0.9, "service top-3 below 90%");
    assert!(accuracy.service_top1 >= 0.8, "service top-1 below 80%");
    server.stop().await;
}

/// Realtime: the fault starts after a backfilled history and a short warm-up; the
/// analysis of the last 3 minutes runs every 10 s until the same top suspect comes
/// three times; prints the time from fault start to the verdict.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "realtime, several minutes"]
async fn realtime_time_to_verdict() {
    let server = TestServer::start().await;
    let scenario = sim::catalogue()[0].name.clone();
    let run_config = RunConfig {
        base_url: server.url(),
        tenant: Some("live".into()),
        seed: 5,
        scenario: Some(scenario.clone()),
        history: Duration::from_secs(15 * 60),
        warmup: Duration::from_secs(60),
        fault_duration: Duration::from_secs(4 * 60),
        realtime: true,
        start_ms: None,
        rps: 5.0,
        spans: SpanTransport::Zipkin,
        logs: LogTransport::EsBulk,
        metrics: MetricTransport::RemoteWrite,
        span_status: true,
    }
    .with_pinned_start();
    let truth = sim::plan(&run_config).unwrap().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let simulation = tokio::spawn(sim::run(run_config, async move {
        let _ = stopped.await;
    }));
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64
    };
    let mut streak: Vec<String> = Vec::new();
    let mut first_ms = 0;
    let verdict_ms = loop {
        tokio::time::sleep(Duration::from_secs(10)).await;
        let t = now();
        assert!(
            t < truth.end_ms + 30_000,
            "no stable verdict before the fault ended"
        );
        if t < truth.start_ms {
            continue;
        }
        let url = format!(
            "{}/api/v1/rca?start={}&end={}&baseline_start={}&baseline_end={}",
            server.url(),
            (t - 180_000) / 1000,
            t / 1000,
            (t - 180_000 - 900_000) / 1000,
            (t - 180_001) / 1000
        );
        let body: Value = reqwest::Client::new()
            .get(url)
            .header("X-Scope-OrgID", "live")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let top = body["data"]["suspects"][0]["service"]
            .as_str()
            .unwrap_or("")
            .to_string();
        if top.is_empty() || streak.last() != Some(&top) {
            streak.clear();
            first_ms = t;
        }
        if !top.is_empty() {
            streak.push(top);
        }
        if streak.len() >= 3 {
            break t;
        }
    };
    let _ = stop.send(());
    let _ = simulation.await;
    let mut out = std::io::stderr().lock();
    let _ = writeln!(
        out,
        "realtime {scenario}: verdict {} (truth {}), first named {:.0} s after fault start, stable after {:.0} s",
        streak[0],
        truth.service,
        (first_ms - truth.start_ms) as f64 / 1000.0,
        (verdict_ms - truth.start_ms) as f64 / 1000.0
    );
    drop(out);
    assert_eq!(streak[0], truth.service);
    server.stop().await;
}
