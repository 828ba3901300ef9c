//! The web UI in a real browser: a server fed by the simulator with one fault
//! (errors-funding, an hour of the 27-service fleet backfilled up to now), then
//! `ui/web/e2e/run.mjs` drives headless Chromium (playwright-core, Debian's
//! `/usr/bin/chromium`) through it: the service map with the faulty hop highlighted,
//! its trace evidence, the erroring span of the faulty service, that span's log lines,
//! a log search, a PromQL query and a SQL query. Screenshots of every view are kept in
//! `<target>/tmp/ui-e2e/` (named in the output) and checked for content; any console
//! error or failed request fails the test. The script also measures the time until the
//! map has drawn its nodes (BENCHMARKS.md, "Web UI").
//!
//! Needs Node.js (the UI build needs it anyway) and Chromium:
//! `bash scripts/test-deps/chromium.sh`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::TestServer;
use serde_json::Value;
use sim::{LogTransport, MetricTransport, RunConfig, SpanTransport};

const SCENARIO: &str = "errors-funding";

fn chromium() -> String {
    std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ui_leads_from_the_red_map_to_the_failing_span_its_logs_and_metrics() {
    let chromium = chromium();
    assert!(
        Path::new(&chromium).exists(),
        "{chromium} is missing: run `bash scripts/test-deps/chromium.sh` (or set CHROMIUM)"
    );
    let web = Path::new(env!("CARGO_MANIFEST_DIR")).join("ui/web");
    assert!(
        web.join("node_modules/playwright-core").exists(),
        "ui/web/node_modules lacks playwright-core: the ui crate's build runs `npm ci`"
    );

    let server = TestServer::start().await;
    // Fifty healthy minutes, then ten of the fault, ending now: the UI's default
    // range (the last hour) holds it all.
    let config = RunConfig {
        base_url: server.url(),
        tenant: None,
        seed: 3,
        scenario: Some(SCENARIO.to_string()),
        history: Duration::ZERO,
        warmup: Duration::from_secs(50 * 60),
        fault_duration: Duration::from_secs(10 * 60),
        realtime: false,
        start_ms: None,
        rps: 1.5,
        spans: SpanTransport::Zipkin,
        logs: LogTransport::EsBulk,
        metrics: MetricTransport::RemoteWrite,
        span_status: true,
    }
    .with_pinned_start();
    let truth = sim::plan(&config)
        .expect("plan")
        .expect("the scenario has a ground truth");
    let started = Instant::now();
    let report = sim::run(config, std::future::pending())
        .await
        .expect("simulation");
    let backfill = started.elapsed();
    // The simulated load follows the fleet's day (0.5x at 03:00 to 1.5x at 15:00, UTC+8):
    // an hour of it is ~48 k spans at the quietest and ~145 k at the busiest.
    assert!(report.spans > 25_000, "{} spans", report.spans);

    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ui-e2e");
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).expect("artefact dir");
    let mut command = Command::new(std::env::var("NODE").unwrap_or_else(|_| "node".into()));
    command
        .current_dir(&web)
        .arg("e2e/run.mjs")
        .args(["--url", &server.url()])
        .args(["--out", &out.display().to_string()])
        .args(["--service", &truth.service])
        .env("CHROMIUM", &chromium);
    let browsing = Instant::now();
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("join")
        .expect("node runs (install Node.js)");
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    let summary: Option<Value> = stdout
        .lines()
        .find_map(|line| line.strip_prefix("E2E-SUMMARY "))
        .and_then(|json| serde_json::from_str(json).ok());
    {
        use std::io::Write as _;
        let mut err = std::io::stderr().lock();
        let _ = writeln!(
            err,
            "backfill of {} spans, {} logs, {} samples: {:.1} s; browser: {:.1} s\n{stdout}\nscreenshots and summary.json in {}",
            report.spans,
            report.logs,
            report.samples,
            backfill.as_secs_f64(),
            browsing.elapsed().as_secs_f64(),
            out.display()
        );
    }
    assert!(
        output.status.success(),
        "the browser walk failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    let summary = summary.expect("the script prints E2E-SUMMARY");
    assert_eq!(summary["ok"], true, "{summary}");
    let first = &summary["timings"]["first_load"];
    assert!(first["nodes"].as_u64().unwrap_or(0) >= 27, "{summary}");
    for shot in [
        "map",
        "trace",
        "span-logs",
        "logs",
        "metrics",
        "sql",
        "traces",
    ] {
        let path = out.join(format!("{shot}.png"));
        let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        assert!(bytes > 8_000, "{} is {bytes} bytes", path.display());
    }
    server.stop().await;
}
