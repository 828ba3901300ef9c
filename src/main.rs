//! The `sightline` command line: `sightline serve [--config FILE] [flags]`.

use std::io::IsTerminal as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use sightline::{Config, Listen, Role};
use tokio::signal::unix::{SignalKind, signal};
use tracing::info;
use tracing_subscriber::EnvFilter;

/// mimalloc instead of the system allocator: the write path allocates many small
/// strings per request (labels, attributes), and glibc malloc was ~30 % of the CPU of a
/// remote_write load in a profile (BENCHMARKS.md). Built without transparent huge pages
/// (`no_thp`): memtables grow by fresh pages, and with huge pages asked for, the kernel
/// zeroing 2 MiB pages was half the CPU of an OTLP span load (BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// One server for metrics, logs and traces that pinpoints the failing hop.
#[derive(Debug, Parser)]
#[command(name = "sightline", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs the server until SIGTERM or SIGINT.
    Serve(ServeArgs),
    /// Runs the simulated trust-platform fleet against a Sightline; prints the fault's
    /// ground truth (JSON) on stdout.
    Sim(SimArgs),
    /// Runs a server, a simulated fleet with one fault, and prints the failing-hop verdict.
    Demo(demo::DemoArgs),
}

/// Flags of `serve`; each one overrides the same key of the config file.
#[derive(Debug, Args)]
struct ServeArgs {
    /// TOML config file (see deploy/sightline.example.toml); defaults apply without one.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Directory of the WAL and segments [server.data_dir, default ./data].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Main HTTP address [server.listen, default 0.0.0.0:7700].
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// OTLP/gRPC address [server.grpc_listen, default 0.0.0.0:4317].
    #[arg(long, value_name = "ADDR")]
    grpc_listen: Option<SocketAddr>,
    /// OTLP/HTTP address or off [server.otlp_http_listen, default 0.0.0.0:4318].
    #[arg(long, value_name = "ADDR|off")]
    otlp_http_listen: Option<Listen>,
    /// Jaeger query address or off [server.jaeger_listen, default 0.0.0.0:16686].
    #[arg(long, value_name = "ADDR|off")]
    jaeger_listen: Option<Listen>,
    /// Extra Elasticsearch API address or off [server.es_listen, default off].
    #[arg(long, value_name = "ADDR|off")]
    es_listen: Option<Listen>,
    /// What this node runs: all, ingest, query or compact [server.role, default all].
    #[arg(long, value_name = "all|ingest|query|compact")]
    role: Option<Role>,
}

impl ServeArgs {
    /// Loads the config file (or the defaults) and applies the flags over it.
    fn into_config(self) -> anyhow::Result<Config> {
        let mut config = match &self.config {
            Some(path) => Config::load(path)?,
            None => Config::default(),
        };
        let server = &mut config.server;
        if let Some(data_dir) = self.data_dir {
            server.data_dir = data_dir;
        }
        if let Some(listen) = self.listen {
            server.listen = listen;
        }
        if let Some(grpc_listen) = self.grpc_listen {
            server.grpc_listen = grpc_listen;
        }
        if let Some(otlp_http_listen) = self.otlp_http_listen {
            server.otlp_http_listen = otlp_http_listen;
        }
        if let Some(jaeger_listen) = self.jaeger_listen {
            server.jaeger_listen = jaeger_listen;
        }
        if let Some(es_listen) = self.es_listen {
            server.es_listen = es_listen;
        }
        if let Some(role) = self.role {
            server.role = role;
        }
        Ok(config)
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let outcome = match Cli::parse().command {
        Command::Serve(args) => serve(args).await,
        Command::Sim(args) => sim_command::run(args).await,
        Command::Demo(args) => demo::run(args).await,
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            output::report_error(&error);
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let config = args.into_config()?;
    init_logging(&config.telemetry.log_filter)?;

    // Register the handlers before anything binds, so an early SIGTERM still drains.
    let mut terminate = signal(SignalKind::terminate()).context("failed to listen for SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("failed to listen for SIGINT")?;
    let shutdown = async move {
        tokio::select! {
            _ = terminate.recv() => info!("received SIGTERM, shutting down"),
            _ = interrupt.recv() => info!("received SIGINT, shutting down"),
        }
    };

    let running = sightline::run(config, shutdown).await?;
    running.wait().await
}

/// Installs the global log subscriber: `RUST_LOG` if set, else `telemetry.log_filter`.
fn init_logging(log_filter: &str) -> anyhow::Result<()> {
    let filter = match std::env::var(EnvFilter::DEFAULT_ENV) {
        Ok(from_env) if !from_env.trim().is_empty() => EnvFilter::try_new(&from_env)
            .with_context(|| format!("invalid {} {from_env:?}", EnvFilter::DEFAULT_ENV))?,
        _ => EnvFilter::try_new(log_filter)
            .with_context(|| format!("invalid telemetry.log_filter {log_filter:?}"))?,
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init()
        .map_err(|error| anyhow::anyhow!("failed to install the log subscriber: {error}"))
}

/// `sightline sim`: flags, and the run with its ground truth on stdout.
mod sim_command {
    use std::io::Write as _;

    use anyhow::Context as _;
    use clap::Args;
    use proto::HumanDuration;
    use tokio::signal::unix::{SignalKind, signal};
    use tracing::info;

    /// Flags of `sim`.
    #[derive(Debug, Args)]
    pub struct SimArgs {
        /// Main URL of the Sightline to feed.
        #[arg(long, default_value = "http://127.0.0.1:7700")]
        target: String,
        /// Fault scenario to inject (see --list); none: a healthy fleet.
        #[arg(long, value_name = "NAME")]
        scenario: Option<String>,
        /// Lists the scenarios and exits.
        #[arg(long)]
        list: bool,
        /// Seed of every random choice (same seed, same data).
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Gateway requests per second before the daily load shape.
        #[arg(long, default_value_t = 10.0)]
        rps: f64,
        /// Healthy history backfilled before the warm-up.
        #[arg(long, default_value = "30m")]
        history: HumanDuration,
        /// Healthy period before the fault.
        #[arg(long, default_value = "2m")]
        warmup: HumanDuration,
        /// How long the fault lasts.
        #[arg(long, default_value = "10m")]
        fault_duration: HumanDuration,
        /// Backfill the whole run with past timestamps as fast as possible.
        #[arg(long)]
        backfill: bool,
        /// Span transport: zipkin or otlp.
        #[arg(long, default_value = "zipkin")]
        spans: sim::SpanTransport,
        /// Log transport: es or otlp.
        #[arg(long, default_value = "es")]
        logs: sim::LogTransport,
        /// Metric transport: remote-write or none.
        #[arg(long, default_value = "remote-write")]
        metrics: sim::MetricTransport,
        /// Tenant (X-Scope-OrgID).
        #[arg(long)]
        tenant: Option<String>,
        /// Spans carry no error status (errors only in logs, metrics, http.status_code).
        #[arg(long)]
        no_span_status: bool,
        /// Start of the timeline, epoch milliseconds (default: derived from now).
        #[arg(long, value_name = "EPOCH_MS")]
        start_ms: Option<i64>,
    }

    /// Runs `sightline sim`.
    pub async fn run(args: SimArgs) -> anyhow::Result<()> {
        super::init_logging("info")?;
        if args.list {
            let mut out = std::io::stdout().lock();
            for scenario in sim::catalogue() {
                writeln!(out, "{:<40} {}", scenario.name, scenario.description)?;
            }
            return Ok(());
        }
        let config = sim::RunConfig {
            base_url: args.target,
            tenant: args.tenant,
            seed: args.seed,
            scenario: args.scenario,
            history: args.history.get(),
            warmup: args.warmup.get(),
            fault_duration: args.fault_duration.get(),
            realtime: !args.backfill,
            start_ms: args.start_ms,
            rps: args.rps,
            spans: args.spans,
            logs: args.logs,
            metrics: args.metrics,
            span_status: !args.no_span_status,
        }
        .with_pinned_start();
        let truth = sim::plan(&config)?;
        {
            let mut out = std::io::stdout().lock();
            let json = truth
                .as_ref()
                .map_or_else(|| "null".to_string(), sim::GroundTruth::to_json);
            writeln!(out, "{json}")?;
            out.flush()?;
        }
        let mut terminate =
            signal(SignalKind::terminate()).context("failed to listen for SIGTERM")?;
        let mut interrupt =
            signal(SignalKind::interrupt()).context("failed to listen for SIGINT")?;
        let stop = async move {
            tokio::select! {
                _ = terminate.recv() => info!("received SIGTERM, stopping the simulation"),
                _ = interrupt.recv() => info!("received SIGINT, stopping the simulation"),
            }
        };
        let report = sim::run(config, stop).await?;
        info!(
            spans = report.spans,
            logs = report.logs,
            samples = report.samples,
            "simulation sent everything"
        );
        Ok(())
    }
}

use sim_command::SimArgs;

mod demo;

/// The one place that writes to the terminal directly: errors that end the process,
/// possibly before logging is installed (a bad config file, a flag out of range).
#[allow(clippy::print_stderr)]
mod output {
    /// Prints the error and each of its causes, one per line, without a backtrace.
    pub fn report_error(error: &anyhow::Error) {
        eprintln!("error: {error}");
        for cause in error.chain().skip(1) {
            eprintln!("caused by: {}", cause.to_string().trim_end());
        }
    }
}
