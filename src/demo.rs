//! `sightline demo`: a server on embedded local storage, a simulated fleet with one
//! injected fault, and the failing-hop analysis run until its verdict is stable.
//!
//! The demo owns only the choreography: start the server, run the simulator (healthy
//! history backfilled so baselines exist, a short realtime warm-up, then the fault),
//! analyse the last minutes every few seconds once the fault has started, print the
//! verdict next to the ground truth, and keep serving until Ctrl-C. The analysis never
//! sees the ground truth.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use clap::Args;
use proto::TenantId;
use query::rca::{self, Report, Request};
use sightline::{Config, Listen};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;
use tracing::{info, warn};

/// Flags of `demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Data directory [default: a fresh directory under the system temp dir].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Main HTTP address (API and UI).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:7700")]
    listen: SocketAddr,
    /// Fault scenario of the simulator's catalogue [default: a random one].
    #[arg(long, value_name = "NAME")]
    scenario: Option<String>,
    /// Seed of the simulated fleet [default: from the clock].
    #[arg(long)]
    seed: Option<u64>,
    /// Gateway requests per second.
    #[arg(long, default_value_t = 10.0)]
    rps: f64,
    /// Healthy history backfilled before the realtime part, minutes.
    #[arg(long, value_name = "MINUTES", default_value_t = 20)]
    history_minutes: u64,
    /// Realtime healthy warm-up before the fault, seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    warmup_seconds: u64,
    /// How long the fault lasts, minutes.
    #[arg(long, value_name = "MINUTES", default_value_t = 10)]
    fault_minutes: u64,
    /// Lists the scenarios and exits.
    #[arg(long)]
    list: bool,
}

/// How often the analysis runs once the fault has started.
const EVERY: Duration = Duration::from_secs(10);
/// The window each analysis looks at (ending now).
const WINDOW_MS: i64 = 3 * 60_000;
/// Consecutive identical top suspects that make a verdict.
const STABLE_RUNS: usize = 3;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Writes lines to stdout (the verdict is the command's output).
fn say(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}");
    let _ = out.flush();
}

/// Runs the demo until Ctrl-C.
pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let catalogue = sim::catalogue();
    if args.list {
        for scenario in &catalogue {
            say(&format!("{:32} {}", scenario.name, scenario.description));
        }
        return Ok(());
    }
    anyhow::ensure!(!catalogue.is_empty(), "the simulator has no scenario");
    let clock = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(7);
    let scenario = match &args.scenario {
        Some(name) => {
            anyhow::ensure!(
                catalogue.iter().any(|s| &s.name == name),
                "unknown scenario {name:?}; `sightline demo --list` lists them"
            );
            name.clone()
        }
        None => catalogue[(clock % catalogue.len() as u64) as usize]
            .name
            .clone(),
    };
    let seed = args.seed.unwrap_or(clock >> 8);

    let mut config = Config::default();
    config.server.listen = args.listen;
    // Everything the demo needs is on the main port; the side listeners stay out of
    // the way of anything else running on this machine.
    config.server.grpc_listen = SocketAddr::from(([127, 0, 0, 1], 0));
    config.server.otlp_http_listen = Listen::Off;
    config.server.jaeger_listen = Listen::Off;
    config.server.es_listen = Listen::Off;
    config.server.data_dir = match args.data_dir {
        Some(dir) => dir,
        None => std::env::temp_dir().join(format!("sightline-demo-{}", std::process::id())),
    };
    crate::init_logging(&config.telemetry.log_filter)?;
    let tenant = TenantId::new(config.ingest.default_tenant.as_str())
        .map_err(|e| anyhow::anyhow!("default tenant: {e}"))?;
    let query_config = config.query.clone();
    let data_dir = config.server.data_dir.clone();

    // One Ctrl-C stops the simulator and the server.
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut terminate = signal(SignalKind::terminate()).context("failed to listen for SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("failed to listen for SIGINT")?;
    tokio::spawn(async move {
        tokio::select! {
            _ = terminate.recv() => info!("received SIGTERM, shutting down"),
            _ = interrupt.recv() => info!("received SIGINT, shutting down"),
        }
        let _ = stop_tx.send(true);
    });
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };

    let running = sightline::run(config, stopped(stop_rx.clone())).await?;
    while !running.is_ready() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let storage = running.storage().context("storage did not open")?;
    let base_url = format!("http://{}", running.http_addr());
    say(&format!(
        "sightline demo: serving {base_url}/ (data in {})",
        data_dir.display()
    ));

    let sim_config = sim::RunConfig {
        base_url: base_url.clone(),
        tenant: None,
        seed,
        scenario: Some(scenario.clone()),
        history: Duration::from_secs(args.history_minutes * 60),
        warmup: Duration::from_secs(args.warmup_seconds),
        fault_duration: Duration::from_secs(args.fault_minutes.max(1) * 60),
        realtime: true,
        rps: args.rps,
        ..sim::RunConfig::default()
    }
    .with_pinned_start();
    let truth = sim::plan(&sim_config)?.context("the scenario has no ground truth")?;
    say(&format!(
        "simulating scenario {scenario} (seed {seed}): {} min of history backfilled, {} s warm-up, then the fault",
        args.history_minutes, args.warmup_seconds
    ));
    let sim_stop = stopped(stop_rx.clone());
    let simulation = tokio::spawn(sim::run(sim_config, sim_stop));

    let mut history: Vec<(String, String)> = Vec::new();
    let mut first_seen_ms: Option<i64> = None;
    let mut verdict: Option<(Report, i64)> = None;
    let mut stop_watch = stop_rx.clone();
    loop {
        if *stop_watch.borrow() {
            break;
        }
        let now = now_ms();
        if now >= truth.start_ms + 5_000 {
            let start = now - WINDOW_MS;
            let mut request = Request::new(start, now);
            request.baseline = (start - 5 * WINDOW_MS, start - 1);
            match rca::analyze(&storage, &tenant, &request, query_config.timeout.get()).await {
                Ok(report) => {
                    let top = report
                        .suspects
                        .first()
                        .map(|s| (s.service.clone(), s.kind.clone()));
                    match top {
                        Some(key) => {
                            if history.last() != Some(&key) {
                                first_seen_ms = Some(now);
                                history.clear();
                            }
                            info!(service = %key.0, kind = %key.1, "top suspect");
                            history.push(key);
                        }
                        None => history.clear(),
                    }
                    if history.len() >= STABLE_RUNS {
                        verdict = Some((report, first_seen_ms.unwrap_or(now)));
                        break;
                    }
                }
                Err(error) => warn!(%error, "analysis failed"),
            }
            if now > truth.end_ms {
                break;
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(EVERY) => {}
            _ = stop_watch.changed() => {}
        }
    }

    let api = format!(
        "{base_url}/api/v1/rca?start={}&end={}",
        (truth.start_ms / 1000).max(0),
        (now_ms() / 1000).max(0)
    );
    let mut lines = Vec::new();
    match &verdict {
        Some((report, seen_ms)) => {
            let s = &report.suspects[0];
            lines.push("VERDICT".to_string());
            lines.push(format!(
                "  suspect hop:   {} -> {}{}{}",
                s.caller.as_deref().unwrap_or("(entry)"),
                s.callee,
                s.operation
                    .as_deref()
                    .map(|o| format!("  [{o}]"))
                    .unwrap_or_default(),
                s.instance
                    .as_deref()
                    .map(|i| format!("  on {i}"))
                    .unwrap_or_default()
            ));
            lines.push(format!("  kind:          {}", s.kind));
            lines.push(format!("  score:         {:.3}", s.score));
            if let Some(summary) = s.evidence["summary"].as_str() {
                lines.push(format!("  evidence:      {summary}"));
            }
            if let Some(traces) = s.evidence["example_trace_ids"].as_array()
                && let Some(trace) = traces.first().and_then(|t| t.as_str())
            {
                lines.push(format!("  example trace: {base_url}/api/traces/{trace}"));
            }
            lines.push(format!(
                "  signals used:  {}",
                report.signals_used.join(", ")
            ));
            lines.push(format!(
                "  time to verdict: first named {:.0} s after the fault started, stable {:.0} s after",
                (seen_ms - truth.start_ms) as f64 / 1000.0,
                (now_ms() - truth.start_ms) as f64 / 1000.0
            ));
            let hit = s.service == truth.service || s.callee == truth.callee;
            lines.push(format!(
                "  ground truth:  {} -> {}{}, kind {} ({})",
                truth.caller.as_deref().unwrap_or("(any)"),
                truth.callee,
                truth
                    .instance
                    .as_deref()
                    .map(|i| format!(" on {i}"))
                    .unwrap_or_default(),
                truth.kind,
                if hit { "match" } else { "MISS" }
            ));
        }
        None => lines.push(format!(
            "no stable verdict (scenario {scenario}: ground truth {} -> {}, kind {})",
            truth.caller.as_deref().unwrap_or("(any)"),
            truth.callee,
            truth.kind
        )),
    }
    // The web UI shows the map with the suspect hop, its traces, logs and metrics;
    // Grafana's stock datasources work too.
    lines.push(format!("  UI:            {base_url}/"));
    lines.push(format!(
        "  Grafana:       deploy/grafana/datasources.yaml with the URL {base_url}"
    ));
    lines.push(format!("  API:           {api}"));
    lines.push("serving until Ctrl-C".to_string());
    say(&lines.join("\n"));

    match simulation.await {
        Ok(Ok(report)) => info!(
            spans = report.spans,
            logs = report.logs,
            samples = report.samples,
            "simulation finished"
        ),
        Ok(Err(error)) => warn!(%error, "simulation failed"),
        Err(error) => warn!(%error, "simulation task failed"),
    }
    running.wait().await
}
