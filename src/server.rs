//! Server lifecycle: bind every listener, open storage in the background, serve,
//! then drain and close on shutdown.
//!
//! ```text
//!   run() ──► bind all listeners ──► serve (/health 200, /ready 503) ──► storage opened ──► /ready 200
//!                                                                                │
//!   shutdown future resolves ──► /ready 503 ──► stop accepting, drain (≤ grace) ──► storage.close()
//! ```

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use storage::Storage;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

use crate::http::{AppState, app_for_role, es_router, jaeger_router, otlp_http_router};
use crate::{Config, Role};

/// A started server. Dropping it does not stop the server; resolve the shutdown
/// future given to [`run`] and then [`wait`](Running::wait).
#[derive(Debug)]
pub struct Running {
    http_addr: SocketAddr,
    grpc_addr: SocketAddr,
    otlp_http_addr: Option<SocketAddr>,
    jaeger_addr: Option<SocketAddr>,
    es_addr: Option<SocketAddr>,
    state: AppState,
    supervisor: JoinHandle<anyhow::Result<()>>,
}

impl Running {
    /// Returns the bound address of the main HTTP listener.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// Returns the bound address of the OTLP/gRPC listener.
    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc_addr
    }

    /// Returns the bound address of the OTLP/HTTP listener, unless it is off.
    pub fn otlp_http_addr(&self) -> Option<SocketAddr> {
        self.otlp_http_addr
    }

    /// Returns the bound address of the Jaeger query listener, unless it is off.
    pub fn jaeger_addr(&self) -> Option<SocketAddr> {
        self.jaeger_addr
    }

    /// Returns the bound address of the extra Elasticsearch listener, unless it is off.
    pub fn es_addr(&self) -> Option<SocketAddr> {
        self.es_addr
    }

    /// Returns the service the write protocols go through.
    pub fn ingest(&self) -> &ingest::IngestService {
        self.state.ingest()
    }

    /// Returns the storage engine once it has opened (tests read back through it).
    pub fn storage(&self) -> Option<Arc<Storage>> {
        self.state.storage().cloned()
    }

    /// Returns true once storage has opened, until shutdown begins (what `/ready` says).
    pub fn is_ready(&self) -> bool {
        self.state.is_ready()
    }

    /// Waits until the server has shut down: listeners drained and storage closed.
    /// Fails if storage could not be opened or closed.
    pub async fn wait(self) -> anyhow::Result<()> {
        self.supervisor
            .await
            .context("server supervisor task failed")?
    }
}

/// Starts a server: validates `config`, binds every configured listener, then opens
/// storage in the background (`/ready` turns 200 once it has). Returns once the
/// listeners are bound. When `shutdown` resolves, the server stops accepting, drains
/// in-flight requests for up to `server.shutdown_grace`, and closes storage.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<Running> {
    config.validate()?;
    let Config {
        server,
        storage: storage_config,
        ingest,
        query,
        telemetry: _,
    } = config;

    let role = server.role;
    let mut storage_config = storage_config;
    if storage_config.catalog.url.is_some() && storage_config.catalog.node_id.is_none() {
        storage_config.catalog.node_id = Some(host_name()?);
    }
    let body_limit = usize::try_from(ingest.max_request_size.bytes())
        .context("ingest.max_request_size does not fit in memory")?;
    let state = AppState::new(body_limit, ingest.clone(), query);
    state.ingest().set_data_dir(server.data_dir.clone());

    // A node binds only the listeners of its role: the write protocols' when it
    // ingests, Jaeger's when it queries. (The gRPC address is held either way, so that
    // `grpc_addr` always names a bound port.)
    let only_if = |wanted: bool, listen: crate::Listen| listen.addr().filter(|_| wanted);
    let http = bind("server.listen", server.listen).await?;
    let grpc = bind("server.grpc_listen", server.grpc_listen).await?;
    let otlp_http = bind_optional(
        "server.otlp_http_listen",
        only_if(role.ingests(), server.otlp_http_listen),
    )
    .await?;
    let jaeger = bind_optional(
        "server.jaeger_listen",
        only_if(role.queries(), server.jaeger_listen),
    )
    .await?;
    let es = bind_optional(
        "server.es_listen",
        only_if(role.ingests(), server.es_listen),
    )
    .await?;

    let http_addr = local_addr(&http)?;
    let grpc_addr = local_addr(&grpc)?;
    let otlp_http_addr = otlp_http.as_ref().map(local_addr).transpose()?;
    let jaeger_addr = jaeger.as_ref().map(local_addr).transpose()?;
    let es_addr = es.as_ref().map(local_addr).transpose()?;
    info!(
        role = %role,
        http = %http_addr,
        grpc = %grpc_addr,
        otlp_http = %display_optional(otlp_http_addr),
        jaeger = %display_optional(jaeger_addr),
        es = %display_optional(es_addr),
        "listening"
    );

    storage_config.fanout.advertise_address =
        advertise_address(server.advertise_addr.as_deref(), http_addr)?;

    let (drain_sender, drain_receiver) = watch::channel(false);
    let mut servers = vec![serve(
        "http",
        http,
        app_for_role(state.clone(), role),
        &drain_receiver,
    )];
    if role.ingests() {
        servers.push(serve_grpc(grpc, &state, &drain_receiver));
    } else {
        // Bound but not served: connections are refused at the protocol level.
        drop(grpc);
    }
    if let Some(listener) = otlp_http {
        let router = otlp_http_router(state.clone());
        servers.push(serve("otlp_http", listener, router, &drain_receiver));
    }
    if let Some(listener) = jaeger {
        let router = jaeger_router(state.clone());
        servers.push(serve("jaeger", listener, router, &drain_receiver));
    }
    if let Some(listener) = es {
        servers.push(serve(
            "es",
            listener,
            es_router(state.clone()),
            &drain_receiver,
        ));
    }

    let opening = tokio::spawn(open_storage(storage_config, server.data_dir, role));
    // The failing-hop analysis of the default tenant, exported as series every minute:
    // it reads and writes, so only a node that does both runs it.
    if role == Role::All
        && let Ok(tenant) = proto::TenantId::new(ingest.default_tenant.as_str())
    {
        crate::rca_loop::spawn(state.clone(), tenant, drain_receiver.clone());
    }

    let lifecycle = Lifecycle {
        role,
        state: state.clone(),
        servers,
        drain_sender,
        grace: server.shutdown_grace.get(),
    };
    let supervisor = tokio::spawn(lifecycle.supervise(shutdown, opening));

    Ok(Running {
        http_addr,
        grpc_addr,
        otlp_http_addr,
        jaeger_addr,
        es_addr,
        state,
        supervisor,
    })
}

fn display_optional(addr: Option<SocketAddr>) -> String {
    addr.map_or_else(|| "off".to_string(), |addr| addr.to_string())
}

async fn bind(key: &str, addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("failed to bind {key} {addr}"))
}

async fn bind_optional(key: &str, addr: Option<SocketAddr>) -> anyhow::Result<Option<TcpListener>> {
    match addr {
        Some(addr) => bind(key, addr).await.map(Some),
        None => Ok(None),
    }
}

fn local_addr(listener: &TcpListener) -> anyhow::Result<SocketAddr> {
    listener
        .local_addr()
        .context("failed to read a bound listener's address")
}

/// Serves OTLP/gRPC on `listener` until the drain signal, then lets in-flight calls finish.
fn serve_grpc(
    listener: TcpListener,
    state: &AppState,
    drain: &watch::Receiver<bool>,
) -> (&'static str, JoinHandle<std::io::Result<()>>) {
    let mut drain = drain.clone();
    let drained = async move {
        // An error means the sender is gone, which also means: shut down.
        let _ = drain.wait_for(|draining| *draining).await;
    };
    let service = state.ingest().clone();
    let task = tokio::spawn(ingest::otlp::grpc::serve(service, listener, drained));
    ("grpc", task)
}

/// Serves `router` on `listener` until the drain signal, then lets in-flight requests finish.
fn serve(
    name: &'static str,
    listener: TcpListener,
    router: Router,
    drain: &watch::Receiver<bool>,
) -> (&'static str, JoinHandle<std::io::Result<()>>) {
    let mut drain = drain.clone();
    let drained = async move {
        // An error means the sender is gone, which also means: shut down.
        let _ = drain.wait_for(|draining| *draining).await;
    };
    let task = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(drained)
            .await
    });
    (name, task)
}

/// The storage duties of a role.
fn duties(role: Role) -> storage::Duties {
    match role {
        Role::All => storage::Duties::ALL,
        Role::Ingest => storage::Duties::INGEST,
        Role::Query => storage::Duties::QUERY,
        Role::Compact => storage::Duties::COMPACT,
    }
}

/// This machine's host name: a pod's name in Kubernetes, the default catalog node id.
fn host_name() -> anyhow::Result<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .context("cannot read the host name; set storage.catalog.node_id")?;
    let name = name.trim();
    anyhow::ensure!(
        !name.is_empty(),
        "the host name is empty; set storage.catalog.node_id"
    );
    Ok(name.to_string())
}

/// Where other nodes reach this node's main port: `server.advertise_addr` with
/// `${NAME}` read from the environment, else the bound address (the host name for an
/// unspecified IP).
fn advertise_address(configured: Option<&str>, http_addr: SocketAddr) -> anyhow::Result<String> {
    let Some(configured) = configured else {
        if http_addr.ip().is_unspecified() {
            return Ok(format!("{}:{}", host_name()?, http_addr.port()));
        }
        return Ok(http_addr.to_string());
    };
    let mut out = String::new();
    let mut rest = configured;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = rest[start..]
            .find('}')
            .with_context(|| format!("server.advertise_addr {configured:?}: unclosed ${{"))?;
        let name = &rest[start + 2..start + end];
        let value = std::env::var(name).with_context(|| {
            format!("server.advertise_addr {configured:?}: ${{{name}}} is not set")
        })?;
        out.push_str(&value);
        rest = &rest[start + end + 1..];
    }
    out.push_str(rest);
    anyhow::ensure!(
        out.rsplit_once(':')
            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok()),
        "server.advertise_addr {configured:?} is not host:port"
    );
    Ok(out)
}

async fn open_storage(
    config: storage::Config,
    data_dir: PathBuf,
    role: Role,
) -> anyhow::Result<Arc<Storage>> {
    tokio::fs::create_dir_all(&data_dir)
        .await
        .with_context(|| format!("failed to create data dir {}", data_dir.display()))?;
    info!(data_dir = %data_dir.display(), "opening storage");
    Storage::open_with_duties(config, &data_dir, duties(role))
        .await
        .with_context(|| format!("failed to open storage in {}", data_dir.display()))
}

/// Everything the supervisor needs to shut the server down in order.
struct Lifecycle {
    role: Role,
    state: AppState,
    servers: Vec<(&'static str, JoinHandle<std::io::Result<()>>)>,
    drain_sender: watch::Sender<bool>,
    grace: Duration,
}

impl Lifecycle {
    async fn supervise(
        self,
        shutdown: impl Future<Output = ()> + Send,
        mut opening: JoinHandle<anyhow::Result<Arc<Storage>>>,
    ) -> anyhow::Result<()> {
        let mut failure = None;
        let mut opening_done = false;
        let mut scraper = None;
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                joined = &mut opening, if !opening_done => {
                    opening_done = true;
                    match flatten(joined, "storage open task") {
                        Ok(storage) => {
                            self.state.set_storage(storage);
                            if self.role.ingests() {
                                let service = self.state.ingest().clone();
                                scraper = Some(ingest::scrape::Scraper::start(service));
                            }
                            info!("storage opened, server is ready");
                        }
                        Err(open_error) => {
                            error!(error = format!("{open_error:#}"), "storage failed to open, shutting down");
                            failure = Some(open_error);
                            break;
                        }
                    }
                }
            }
        }

        self.state.begin_shutdown();
        info!(grace = ?self.grace, "shutting down: draining in-flight requests");
        let deadline = tokio::time::Instant::now() + self.grace;
        let _ = self.drain_sender.send(true);
        // Scrape loops stop at once (the signal is sent before waiting); in-flight
        // scrapes are abandoned, their writes before storage closes.
        let scraper_stopped = scraper.map(ingest::scrape::Scraper::stop);
        drain_servers(self.servers, deadline).await;
        if let Some(stopped) = scraper_stopped
            && tokio::time::timeout_at(deadline, stopped).await.is_err()
        {
            warn!("scrape loops outlived the shutdown grace");
        }

        if !opening_done {
            match tokio::time::timeout_at(deadline, &mut opening).await {
                Ok(joined) => match flatten(joined, "storage open task") {
                    Ok(storage) => self.state.set_storage(storage),
                    Err(open_error) => failure = failure.or(Some(open_error)),
                },
                Err(_) => {
                    warn!("storage was still opening at the end of the grace; abandoning it");
                    opening.abort();
                }
            }
        }
        if let Some(storage) = self.state.storage() {
            storage.close().await.context("failed to close storage")?;
            info!("storage closed");
        }
        match failure {
            Some(failure) => Err(failure),
            None => {
                info!("shutdown complete");
                Ok(())
            }
        }
    }
}

async fn drain_servers(
    servers: Vec<(&'static str, JoinHandle<std::io::Result<()>>)>,
    deadline: tokio::time::Instant,
) {
    for (name, mut task) in servers {
        match tokio::time::timeout_at(deadline, &mut task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(serve_error))) => {
                warn!(listener = name, error = %serve_error, "listener failed")
            }
            Ok(Err(join_error)) => {
                warn!(listener = name, error = %join_error, "listener task failed")
            }
            Err(_) => {
                warn!(
                    listener = name,
                    "in-flight requests outlived the shutdown grace; dropping them"
                );
                task.abort();
            }
        }
    }
}

fn flatten<T>(
    joined: Result<anyhow::Result<T>, tokio::task::JoinError>,
    what: &str,
) -> anyhow::Result<T> {
    joined.with_context(|| format!("{what} panicked or was cancelled"))?
}
