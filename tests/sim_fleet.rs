//! The simulated fleet against a real Sightline: a short backfill per transport
//! combination (each in its own tenant), then the stored data is read back through the
//! storage read API: the fleet's services and pod names, spans and logs sharing trace
//! ids, metric series per replica, and the injected fault visible on its service.

mod common;
#[allow(dead_code)]
#[path = "ingest_otlp/read.rs"]
mod read;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::TestServer;
use proto::TenantId;
use sim::{LogTransport, MetricTransport, RunConfig, SpanTransport};

/// A fixed past instant (2026-11-23T08:00:00Z), so runs are reproducible.
const START_MS: i64 = 1_795_420_800_000;

fn config(
    server: &TestServer,
    tenant: &str,
    spans: SpanTransport,
    logs: LogTransport,
) -> RunConfig {
    RunConfig {
        base_url: server.url(),
        tenant: Some(tenant.to_string()),
        seed: 7,
        scenario: Some("errors-funding".to_string()),
        history: Duration::ZERO,
        warmup: Duration::from_secs(60),
        fault_duration: Duration::from_secs(60),
        realtime: false,
        start_ms: Some(START_MS),
        rps: 6.0,
        spans,
        logs,
        metrics: MetricTransport::RemoteWrite,
        span_status: true,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_transport_combination_lands_with_shared_trace_ids_and_pod_names() {
    let server = TestServer::start().await;
    let storage = server.storage();
    let pods: BTreeSet<String> = sim::fleet::all_pods().into_iter().collect();
    let combinations = [
        (
            "zipkin-es",
            SpanTransport::Zipkin,
            LogTransport::EsBulk,
            true,
        ),
        ("otlp-otlp", SpanTransport::Otlp, LogTransport::Otlp, true),
        (
            "zipkin-otlp-nostatus",
            SpanTransport::Zipkin,
            LogTransport::Otlp,
            false,
        ),
        ("otlp-es", SpanTransport::Otlp, LogTransport::EsBulk, true),
    ];
    for (tenant_name, span_transport, log_transport, span_status) in combinations {
        let mut run_config = config(&server, tenant_name, span_transport, log_transport);
        run_config.span_status = span_status;
        let started = Instant::now();
        let report = sim::run(run_config, std::future::pending())
            .await
            .expect("simulation runs");
        let elapsed = started.elapsed();
        let truth = report.truth.clone().expect("scenario has ground truth");
        assert_eq!(truth.service, "funding");
        assert!(
            report.spans > 5_000 && report.logs > 1_000 && report.samples > 10_000,
            "{tenant_name}: {report:?}"
        );
        assert!(
            elapsed < Duration::from_secs(20),
            "{tenant_name}: backfill of 2 min took {elapsed:?}"
        );

        let tenant = TenantId::new(tenant_name).expect("tenant");
        let spans = read::spans(&storage, &tenant).await;
        let logs = read::logs(&storage, &tenant).await;
        assert_eq!(
            spans.len() as u64,
            report.spans,
            "{tenant_name}: every span acknowledged is stored"
        );
        assert_eq!(
            logs.len() as u64,
            report.logs,
            "{tenant_name}: every log acknowledged is stored"
        );

        // The fleet's services and replicas, with the pod name as the instance everywhere.
        let services: BTreeSet<&str> = spans.iter().map(|span| span.service.as_str()).collect();
        assert_eq!(services.len(), 27, "{tenant_name}: {services:?}");
        let span_instances: BTreeSet<&str> = spans
            .iter()
            .filter_map(|span| span.instance.as_deref())
            .collect();
        assert!(
            span_instances.iter().all(|pod| pods.contains(*pod)),
            "{tenant_name}: {span_instances:?}"
        );
        assert!(
            span_instances.len() >= 50,
            "{tenant_name}: {} instances",
            span_instances.len()
        );
        let log_instances: BTreeSet<&str> = logs
            .iter()
            .filter_map(|log| log.instance.as_deref())
            .collect();
        assert!(
            log_instances.iter().all(|pod| pods.contains(*pod)),
            "{tenant_name}: {log_instances:?}"
        );

        // Dependencies appear as client spans with their peer attributes.
        for dep in ["mysql", "redis", "rabbitmq", "minio"] {
            assert!(
                spans
                    .iter()
                    .any(|span| span.peer_service.as_deref() == Some(dep)),
                "{tenant_name}: no client span to {dep}"
            );
        }
        assert!(spans.iter().any(|span| span.kind == "consumer"
            && span.attributes.get("messaging.destination").is_some()));
        assert!(spans.iter().any(|span| {
            span.attributes
                .get("db.statement")
                .is_some_and(|s| s.starts_with("SELECT"))
        }));

        // Logs carry the trace ids of the spans.
        let trace_ids: BTreeSet<_> = spans.iter().map(|span| span.trace_id).collect();
        let traced: Vec<_> = logs.iter().filter_map(|log| log.trace_id).collect();
        let shared = traced.iter().filter(|id| trace_ids.contains(id)).count();
        assert!(
            traced.len() * 10 > logs.len() * 9,
            "{tenant_name}: logs without trace ids"
        );
        assert_eq!(
            shared,
            traced.len(),
            "{tenant_name}: log trace ids unknown to the spans"
        );

        // The fault: funding's server spans fail in the window (errors in status or logs).
        let (fault_start, fault_end) = (truth.start_ms * 1_000_000, truth.end_ms * 1_000_000);
        let funding_server: Vec<_> = spans
            .iter()
            .filter(|span| {
                span.service == "funding"
                    && span.kind == "server"
                    && span.start_ns >= fault_start
                    && span.start_ns < fault_end
            })
            .collect();
        let failed_status = funding_server
            .iter()
            .filter(|span| span.status_code == 2)
            .count();
        let failed_http = funding_server
            .iter()
            .filter(|span| {
                span.attributes.get("http.status_code").map(String::as_str) == Some("500")
            })
            .count();
        assert!(
            failed_http * 5 > funding_server.len(),
            "{tenant_name}: {failed_http}/{}",
            funding_server.len()
        );
        if span_status {
            assert_eq!(failed_status, failed_http, "{tenant_name}");
        } else {
            assert!(
                spans.iter().all(|span| span.status_code != 2),
                "{tenant_name}: status despite --no-span-status"
            );
        }
        let funding_errors = logs
            .iter()
            .filter(|log| log.service == "funding" && log.severity_text.as_deref() == Some("ERROR"))
            .count();
        assert!(
            funding_errors >= failed_http,
            "{tenant_name}: {funding_errors} error logs"
        );

        // Metrics: `up` and Micrometer histograms for every replica.
        let up = read::series(&storage, &tenant, "up").await;
        let up_instances: BTreeSet<String> = up
            .keys()
            .filter_map(|labels| labels.get("instance").map(str::to_string))
            .collect();
        assert_eq!(up_instances, pods, "{tenant_name}");
        let requests = read::series(&storage, &tenant, "http_server_requests_seconds_count").await;
        assert!(requests.keys().any(|labels| {
            labels.get("service") == Some("funding")
                && labels.get("status") == Some("500")
                && labels.get("outcome") == Some("SERVER_ERROR")
                && labels
                    .get("uri")
                    .is_some_and(|uri| uri.starts_with("/api/"))
        }));
        let pool = read::series(&storage, &tenant, "hikaricp_connections_max").await;
        assert!(
            pool.keys()
                .any(|labels| labels.get("job") == Some("finance"))
        );
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_lists_scenarios_and_prints_ground_truth() {
    let server = TestServer::start().await;
    let binary = env!("CARGO_BIN_EXE_sightline");
    let list = common::run_command(std::process::Command::new(binary).args(["sim", "--list"]));
    assert!(list.lines().count() >= 20, "{list}");
    assert!(list.contains("redis-down"));
    let url = server.url();
    let output = tokio::task::spawn_blocking(move || {
        common::run_command(std::process::Command::new(binary).args([
            "sim",
            "--target",
            &url,
            "--scenario",
            "consumer-stuck-report",
            "--backfill",
            "--history",
            "0s",
            "--warmup",
            "30s",
            "--fault-duration",
            "30s",
            "--rps",
            "3",
            "--spans",
            "otlp",
            "--logs",
            "otlp",
            "--start-ms",
            &START_MS.to_string(),
        ]))
    })
    .await
    .expect("command");
    let truth: serde_json::Value = serde_json::from_str(output.trim()).expect("ground truth json");
    assert_eq!(truth["scenario"], "consumer-stuck-report");
    assert_eq!(truth["kind"], "stuck");
    assert_eq!(truth["operation"], "process report.generate");
    assert_eq!(truth["start_ms"], START_MS + 30_000);
    let spans = read::spans(&server.storage(), &TenantId::default()).await;
    assert!(spans.iter().any(|span| span.service == "report"));
    server.stop().await;
}
