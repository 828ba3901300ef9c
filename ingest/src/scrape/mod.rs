//! Prometheus scrape receiver: pull `/metrics` from configured targets.
//!
//! ```text
//!   [[ingest.scrape_configs]] ──► job task: discover targets (static, file SD every refresh_interval)
//!                                   │ one loop per target, start spread over the interval
//!                                   ▼
//!   every scrape_interval: GET (Accept: OpenMetrics, text 0.0.4; gzip; timeout; size cap)
//!     ──► parse (text 0.0.4 / OpenMetrics by Content-Type) ──► job/instance/target labels
//!     ──► stale markers for vanished series ──► up, scrape_duration_seconds,
//!         scrape_samples_scraped ──► IngestService::write_metrics(Protocol::Scrape)
//! ```
//!
//! Semantics follow Prometheus: `honor_labels = false` renames conflicting scraped
//! labels to `exported_<name>`; a failed scrape (connection, status, timeout, body over
//! `ingest.max_decompressed_size`, parse error, `sample_limit`, invalid labels) writes
//! `up` = 0 and a staleness NaN (`0x7ff0000000000002`) once for each series of the
//! previous scrape; a target that leaves discovery gets stale markers for all its
//! series, `up` included. `http` and `https` (`tls_config`: `ca_file`, client
//! certificate, `insecure_skip_verify`), `basic_auth` / `authorization` (credentials
//! inline or from a file read at every scrape), `params`, `relabel_configs` on targets
//! and `metric_relabel_configs` on series ([`relabel`]), `sample_limit` counted after
//! metric relabelling, file SD in JSON or YAML. Differences: every sample is stamped
//! with the scrape start (a timestamp in the exposition is ignored); `__`-prefixed
//! target labels in static configs and SD files are refused.

mod config;
pub mod parse;
pub mod relabel;
pub mod target;
mod yaml;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use proto::TenantId;
use storage::metrics::{MetricMetadata, MetricsWrite, Sample, SeriesWrite};
use storage::series::{Labels, METRIC_NAME_LABEL};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

pub(crate) use config::validate_scrape_configs;
pub use config::{Authorization, BasicAuth, FileSdConfig, ScrapeConfig, StaticConfig, TlsConfig};
use parse::Format;
use relabel::Relabel;
pub use relabel::{RelabelAction, RelabelConfig};
use target::{Discovery, ScrapeTarget, resolve};

use crate::body::{Encoding, decompress};
use crate::remote_write::convert::{Limits, check_pairs, exemplar};
use crate::{Error, IngestService, Protocol};

/// The `Accept` header of every scrape: OpenMetrics first, then text 0.0.4.
pub const ACCEPT: &str =
    "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// Bits of the NaN Prometheus writes as a staleness marker.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// The staleness marker value.
pub fn stale_nan() -> f64 {
    f64::from_bits(STALE_NAN_BITS)
}

/// Synthetic series written after every scrape.
const UP: &str = "up";
const SCRAPE_DURATION: &str = "scrape_duration_seconds";
const SAMPLES_SCRAPED: &str = "scrape_samples_scraped";

/// The running scrape jobs; [`Scraper::stop`] ends them.
#[derive(Debug)]
pub struct Scraper {
    stop: watch::Sender<bool>,
    jobs: Vec<JoinHandle<()>>,
}

impl Scraper {
    /// Starts one task per `ingest.scrape_configs` entry (none without configs). Call it
    /// inside a tokio runtime once storage is open.
    pub fn start(service: IngestService) -> Scraper {
        let (stop, stopped) = watch::channel(false);
        let mut jobs = Vec::new();
        for config in &service.config().scrape_configs {
            let tenant_name = config
                .tenant
                .as_deref()
                .unwrap_or(&service.config().default_tenant);
            let tenant = match TenantId::new(tenant_name) {
                Ok(tenant) => tenant,
                Err(error) => {
                    tracing::error!(
                        job = %config.job_name,
                        error = %error,
                        "invalid scrape tenant; job not started",
                    );
                    continue;
                }
            };
            let steps = relabel::compile(&config.relabel_configs)
                .and_then(|r| relabel::compile(&config.metric_relabel_configs).map(|m| (r, m)));
            let (relabel, metric_relabel) = match steps {
                Ok(steps) => steps,
                Err(error) => {
                    tracing::error!(job = %config.job_name, %error, "invalid relabelling; job not started");
                    continue;
                }
            };
            let client = match http_client(config) {
                Ok(client) => client,
                Err(error) => {
                    tracing::error!(
                        job = %config.job_name,
                        error = %error,
                        "cannot build the scrape http client; job not started",
                    );
                    continue;
                }
            };
            let job = Job {
                service: service.clone(),
                config: Arc::new(config.clone()),
                tenant,
                client,
                relabel: Arc::new(relabel),
                metric_relabel: Arc::new(metric_relabel),
            };
            jobs.push(tokio::spawn(job.run(stopped.clone())));
        }
        if !jobs.is_empty() {
            tracing::info!(jobs = jobs.len(), "scraping started");
        }
        Scraper { stop, jobs }
    }

    /// Signals every scrape loop to stop now (no stale markers: the targets did not go
    /// away); the returned future resolves once they all have.
    pub fn stop(self) -> impl Future<Output = ()> + Send + 'static {
        let _ = self.stop.send(true);
        let jobs = self.jobs;
        async move {
            for job in jobs {
                if let Err(error) = job.await {
                    tracing::warn!(error = %error, "scrape job task failed");
                }
            }
        }
    }
}

/// Everything a job's tasks share.
#[derive(Clone)]
struct Job {
    service: IngestService,
    config: Arc<ScrapeConfig>,
    tenant: TenantId,
    client: reqwest::Client,
    relabel: Arc<Vec<Relabel>>,
    metric_relabel: Arc<Vec<Relabel>>,
}

/// The job's HTTP client: user agent, and for `https` the `tls_config`.
fn http_client(config: &ScrapeConfig) -> Result<reqwest::Client, String> {
    let mut builder =
        reqwest::Client::builder().user_agent(concat!("Sightline/", env!("CARGO_PKG_VERSION")));
    let tls = &config.tls_config;
    if let Some(ca_file) = &tls.ca_file {
        let pem =
            std::fs::read(ca_file).map_err(|e| format!("tls_config.ca_file {ca_file}: {e}"))?;
        let certificates = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| format!("tls_config.ca_file {ca_file}: {}", error_chain(&e)))?;
        if certificates.is_empty() {
            return Err(format!(
                "tls_config.ca_file {ca_file}: no certificate in it"
            ));
        }
        for certificate in certificates {
            builder = builder.add_root_certificate(certificate);
        }
    }
    if let (Some(cert_file), Some(key_file)) = (&tls.cert_file, &tls.key_file) {
        let mut pem = std::fs::read(cert_file)
            .map_err(|e| format!("tls_config.cert_file {cert_file}: {e}"))?;
        pem.push(b'\n');
        pem.extend(
            std::fs::read(key_file).map_err(|e| format!("tls_config.key_file {key_file}: {e}"))?,
        );
        let identity = reqwest::Identity::from_pem(&pem)
            .map_err(|e| format!("tls_config client certificate: {}", error_chain(&e)))?;
        builder = builder.identity(identity);
    }
    if tls.insecure_skip_verify {
        builder = builder.danger_accept_invalid_certs(true);
    }
    builder.build().map_err(|e| error_chain(&e))
}

/// Reads a secret from a file (trailing newline dropped), as Prometheus' `*_file` keys.
async fn read_secret(path: &str) -> Result<String, String> {
    let text = tokio::fs::read_to_string(path)
        .await
        .map_err(|e| format!("cannot read {path}: {e}"))?;
    Ok(text.trim_end_matches(['\n', '\r']).to_string())
}

struct RunningTarget {
    removed: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Job {
    /// Discovers targets (again every file-SD refresh interval) and keeps one loop per target.
    async fn run(self, mut stop: watch::Receiver<bool>) {
        let refresh = self
            .config
            .file_sd_configs
            .iter()
            .map(|sd| sd.refresh_interval.get())
            .min();
        let mut discovery = Some(Discovery::default());
        let mut running: HashMap<ScrapeTarget, RunningTarget> = HashMap::new();
        while let Some(mut current_discovery) = discovery.take() {
            let config = self.config.clone();
            let relabel = self.relabel.clone();
            let found = tokio::task::spawn_blocking(move || {
                let mut targets: Vec<ScrapeTarget> = current_discovery
                    .targets(&config)
                    .iter()
                    .filter_map(|target| resolve(&config, &relabel, target))
                    .collect();
                targets.sort();
                targets.dedup();
                (current_discovery, targets)
            })
            .await;
            let targets = match found {
                Ok((back, targets)) => {
                    discovery = Some(back);
                    targets
                }
                Err(error) => {
                    tracing::error!(
                        job = %self.config.job_name,
                        error = %error,
                        "target discovery failed",
                    );
                    break;
                }
            };
            let wanted: HashSet<&ScrapeTarget> = targets.iter().collect();
            let gone: Vec<ScrapeTarget> = running
                .keys()
                .filter(|target| !wanted.contains(target))
                .cloned()
                .collect();
            for target in gone {
                if let Some(old) = running.remove(&target) {
                    tracing::info!(
                        job = %self.config.job_name,
                        target = %target.address,
                        "scrape target removed",
                    );
                    let _ = old.removed.send(());
                    if let Err(error) = old.task.await {
                        tracing::warn!(error = %error, "scrape loop task failed");
                    }
                }
            }
            for target in targets {
                if running.contains_key(&target) {
                    continue;
                }
                tracing::info!(
                    job = %self.config.job_name,
                    target = %target.address,
                    "scrape target added",
                );
                let (removed, removed_receiver) = oneshot::channel();
                let scrape_loop = TargetLoop::new(self.clone(), target.clone());
                let task = tokio::spawn(scrape_loop.run(stop.clone(), removed_receiver));
                running.insert(target, RunningTarget { removed, task });
            }
            let stopped = match refresh {
                Some(every) => tokio::select! {
                    () = tokio::time::sleep(every) => false,
                    () = stopped(&mut stop) => true,
                },
                None => {
                    stopped(&mut stop).await;
                    true
                }
            };
            if stopped {
                break;
            }
        }
        // The loops see the stop signal themselves; keep their `removed` senders alive
        // until they have ended, so that none mistakes shutdown for removal.
        for (_, target) in running {
            if let Err(error) = target.task.await {
                tracing::warn!(error = %error, "scrape loop task failed");
            }
            drop(target.removed);
        }
    }
}

/// One target's scrape loop and the state kept between scrapes.
struct TargetLoop {
    job: Job,
    target: ScrapeTarget,
    /// `job`, `instance` and the target labels.
    target_labels: BTreeMap<String, String>,
    /// Series written by the previous scrape (for staleness).
    previous: HashSet<Labels>,
    /// Metadata written last (rewritten only when it changes).
    previous_metadata: Vec<MetricMetadata>,
    /// Whether the previous scrape succeeded (for logging transitions).
    was_up: Option<bool>,
}

impl TargetLoop {
    fn new(job: Job, target: ScrapeTarget) -> Self {
        let target_labels = target.labels.clone();
        TargetLoop {
            job,
            target,
            target_labels,
            previous: HashSet::new(),
            previous_metadata: Vec::new(),
            was_up: None,
        }
    }

    /// Where in the interval this target is scraped: a stable hash of job and target.
    fn start_offset(&self, interval: Duration) -> Duration {
        let mut hasher = DefaultHasher::new();
        self.job.config.job_name.hash(&mut hasher);
        self.target.hash(&mut hasher);
        let interval_ms = u64::try_from(interval.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        Duration::from_millis(hasher.finish() % interval_ms)
    }

    async fn run(mut self, mut stop: watch::Receiver<bool>, mut removed: oneshot::Receiver<()>) {
        let interval = self.job.config.scrape_interval.get();
        let first = tokio::time::Instant::now() + self.start_offset(interval);
        let mut ticker = tokio::time::interval_at(first, interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                () = stopped(&mut stop) => return,
                Ok(()) = &mut removed => {
                    self.write_end_of_run_staleness().await;
                    return;
                }
            }
            tokio::select! {
                () = self.scrape_once() => {}
                () = stopped(&mut stop) => return,
            }
        }
    }

    /// Scrapes once and writes the samples, stale markers and report series.
    async fn scrape_once(&mut self) {
        let started = Instant::now();
        let ts_ms = now_ms();
        let result = self.fetch().await;
        let mut write = MetricsWrite::default();
        let mut current = HashSet::new();
        let (scraped, failure) = match result {
            Ok(parsed) => {
                let count = parsed.samples.len();
                match self.build(parsed, ts_ms, &mut write, &mut current) {
                    Ok(()) => (count, None),
                    Err(message) => {
                        write = MetricsWrite::default();
                        current.clear();
                        (0, Some(message))
                    }
                }
            }
            Err(message) => (0, Some(message)),
        };
        let up = failure.is_none();
        self.log_outcome(failure);
        for labels in self.previous.difference(&current) {
            write.series.push(SeriesWrite {
                labels: labels.clone(),
                samples: vec![Sample {
                    ts_ms,
                    value: stale_nan(),
                }],
                exemplars: Vec::new(),
            });
        }
        self.previous = current;
        let duration = started.elapsed().as_secs_f64();
        for (name, value) in [
            (UP, if up { 1.0 } else { 0.0 }),
            (SCRAPE_DURATION, duration),
            (SAMPLES_SCRAPED, scraped as f64),
        ] {
            if let Some(series) = self.report_series(name, ts_ms, value) {
                write.series.push(series);
            }
        }
        self.write(&write).await;
    }

    fn log_outcome(&mut self, failure: Option<String>) {
        let job = &self.job.config.job_name;
        let target = &self.target.address;
        match (failure, self.was_up) {
            (None, Some(false)) => {
                tracing::info!(job = %job, target = %target, "scrape target is up again");
                self.was_up = Some(true);
            }
            (None, _) => self.was_up = Some(true),
            (Some(error), Some(false)) => {
                tracing::debug!(job = %job, target = %target, error = %error, "scrape failed");
            }
            (Some(error), _) => {
                tracing::warn!(job = %job, target = %target, error = %error, "scrape failed");
                self.was_up = Some(false);
            }
        }
    }

    /// Stale markers for every series of the target, report series included.
    async fn write_end_of_run_staleness(&mut self) {
        if self.was_up.is_none() {
            // Never scraped: nothing was written, so nothing goes stale.
            return;
        }
        let ts_ms = now_ms();
        let mut write = MetricsWrite::default();
        let stale = |labels: Labels| SeriesWrite {
            labels,
            samples: vec![Sample {
                ts_ms,
                value: stale_nan(),
            }],
            exemplars: Vec::new(),
        };
        write
            .series
            .extend(std::mem::take(&mut self.previous).into_iter().map(stale));
        for name in [UP, SCRAPE_DURATION, SAMPLES_SCRAPED] {
            if let Some(series) = self.report_series(name, ts_ms, stale_nan()) {
                write.series.push(series);
            }
        }
        self.write(&write).await;
    }

    async fn write(&self, write: &MetricsWrite) {
        let result = self
            .job
            .service
            .write_metrics(Protocol::Scrape, &self.job.tenant, write)
            .await;
        match result {
            Ok(()) => {}
            Err(Error::NotReady(_) | Error::Storage(storage::Error::Unavailable(_))) => {
                tracing::debug!(
                    job = %self.job.config.job_name,
                    "storage is not accepting writes; scrape dropped",
                );
            }
            Err(error) => {
                tracing::warn!(
                    job = %self.job.config.job_name,
                    target = %self.target.address,
                    error = %error,
                    "cannot write scraped samples",
                );
            }
        }
    }

    fn report_series(&self, name: &str, ts_ms: i64, value: f64) -> Option<SeriesWrite> {
        let mut pairs: Vec<(String, String)> = self
            .target_labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        pairs.push((METRIC_NAME_LABEL.to_string(), name.to_string()));
        let labels = Labels::new(pairs).ok()?;
        Some(SeriesWrite {
            labels,
            samples: vec![Sample { ts_ms, value }],
            exemplars: Vec::new(),
        })
    }

    /// GET, read (capped), decompress (capped) and parse the target's metrics.
    async fn fetch(&self) -> Result<parse::Parsed, String> {
        let config = &self.job.config;
        let timeout = config.scrape_timeout.get();
        let limit = self.job.service.config().max_decompressed_size.bytes();
        let mut request = self.job.client.get(&self.target.url);
        if let Some(auth) = &config.basic_auth {
            let password = match (&auth.password, &auth.password_file) {
                (_, Some(file)) => Some(read_secret(file).await?),
                (password, None) => password.clone(),
            };
            request = request.basic_auth(&auth.username, password);
        }
        if let Some(auth) = &config.authorization {
            let credentials = match (&auth.credentials, &auth.credentials_file) {
                (_, Some(file)) => read_secret(file).await?,
                (credentials, None) => credentials.clone().unwrap_or_default(),
            };
            request = request.header(
                reqwest::header::AUTHORIZATION,
                format!("{} {credentials}", auth.kind),
            );
        }
        let mut response = request
            .header(reqwest::header::ACCEPT, ACCEPT)
            .header(reqwest::header::ACCEPT_ENCODING, "gzip")
            .header(
                "X-Prometheus-Scrape-Timeout-Seconds",
                format!("{}", timeout.as_secs_f64()),
            )
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| error_chain(&e))?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("target answered http status {status}"));
        }
        let header = |name| {
            response
                .headers()
                .get(name)
                .and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok())
                .map(str::to_string)
        };
        let format = Format::from_content_type(header(reqwest::header::CONTENT_TYPE).as_deref());
        let gzip = header(reqwest::header::CONTENT_ENCODING)
            .is_some_and(|value| value.trim().eq_ignore_ascii_case("gzip"));
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| error_chain(&e))? {
            if (body.len() + chunk.len()) as u64 > limit {
                return Err(format!("body is larger than {limit} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        // With metric relabelling the limit counts what is kept, checked in `build`;
        // the body cap bounds parsing either way.
        let sample_limit = if config.metric_relabel_configs.is_empty() {
            config.sample_limit
        } else {
            0
        };
        tokio::task::spawn_blocking(move || {
            let body = if gzip {
                decompress(Encoding::Gzip, Bytes::from(body), limit).map_err(|e| e.to_string())?
            } else {
                Bytes::from(body)
            };
            parse::parse(&body, format, sample_limit).map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| format!("parse task failed: {e}"))?
    }

    /// Turns parsed samples into series with the target's labels; any invalid series
    /// fails the whole scrape (as in Prometheus).
    fn build(
        &mut self,
        parsed: parse::Parsed,
        ts_ms: i64,
        write: &mut MetricsWrite,
        current: &mut HashSet<Labels>,
    ) -> Result<(), String> {
        let limits = Limits::new(self.job.service.config(), ts_ms);
        write.series.reserve(parsed.samples.len());
        let sample_limit = self.job.config.sample_limit;
        for (index, sample) in parsed.samples.into_iter().enumerate() {
            let mut pairs = merge_labels(
                sample.name,
                sample.labels,
                &self.target_labels,
                self.job.config.honor_labels,
            );
            if !self.job.metric_relabel.is_empty() {
                let mut set: BTreeMap<String, String> = pairs.into_iter().collect();
                if !relabel::apply(&self.job.metric_relabel, &mut set) {
                    continue;
                }
                set.retain(|_, value| !value.is_empty());
                pairs = set.into_iter().collect();
                if sample_limit > 0 && write.series.len() >= sample_limit {
                    return Err(format!(
                        "sample_limit exceeded: more than {sample_limit} samples after metric relabelling"
                    ));
                }
            }
            check_pairs(&limits, "scraped series", index, &pairs).map_err(|e| e.to_string())?;
            let labels = Labels::new(pairs).map_err(|e| format!("scraped series {index}: {e}"))?;
            // A repeated series keeps its first sample (Prometheus reports a duplicate).
            if !current.insert(labels.clone()) {
                continue;
            }
            let exemplars = match sample.exemplar {
                Some(raw) => vec![
                    exemplar(
                        &limits,
                        index,
                        raw.labels,
                        raw.value,
                        raw.ts_ms.unwrap_or(ts_ms),
                    )
                    .map_err(|e| e.to_string())?,
                ],
                None => Vec::new(),
            };
            write.series.push(SeriesWrite {
                labels,
                samples: vec![Sample {
                    ts_ms,
                    value: sample.value,
                }],
                exemplars,
            });
        }
        if parsed.metadata != self.previous_metadata {
            write.metadata = parsed.metadata.clone();
            self.previous_metadata = parsed.metadata;
        }
        Ok(())
    }
}

/// Label pairs of one scraped sample: its own labels plus the target labels. With
/// `honor_labels`, scraped labels win; without, a scraped label that conflicts with a
/// target label is renamed `exported_<name>` (repeatedly, until free).
fn merge_labels(
    name: String,
    scraped: Vec<(String, String)>,
    target_labels: &BTreeMap<String, String>,
    honor_labels: bool,
) -> Vec<(String, String)> {
    let mut out = Vec::with_capacity(scraped.len() + target_labels.len() + 1);
    out.push((METRIC_NAME_LABEL.to_string(), name));
    if honor_labels {
        for (key, value) in target_labels {
            if !scraped.iter().any(|(scraped_name, _)| scraped_name == key) {
                out.push((key.clone(), value.clone()));
            }
        }
        out.extend(scraped);
        return out;
    }
    let mut used: HashSet<String> = target_labels.keys().cloned().collect();
    used.extend(scraped.iter().map(|(key, _)| key.clone()));
    for (key, value) in scraped {
        if target_labels.contains_key(&key) {
            let mut new_name = format!("exported_{key}");
            while used.contains(&new_name) {
                new_name = format!("exported_{new_name}");
            }
            used.insert(new_name.clone());
            out.push((new_name, value));
        } else {
            out.push((key, value));
        }
    }
    out.extend(target_labels.iter().map(|(k, v)| (k.clone(), v.clone())));
    out
}

/// Resolves once the stop signal is set (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopping| *stopping).await;
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// An error and its sources, joined with ": " (reqwest hides the cause otherwise).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn target_labels() -> BTreeMap<String, String> {
        BTreeMap::from([
            ("job".to_string(), "node".to_string()),
            ("instance".to_string(), "a:1".to_string()),
            ("env".to_string(), "prod".to_string()),
        ])
    }

    #[test]
    fn conflicting_labels_are_exported_without_honor_labels() {
        let merged = merge_labels(
            "m".to_string(),
            pairs(&[("job", "inner"), ("exported_job", "x"), ("path", "/")]),
            &target_labels(),
            false,
        );
        let labels = Labels::new(merged).unwrap();
        assert_eq!(labels.get("job"), Some("node"));
        assert_eq!(labels.get("exported_job"), Some("x"));
        assert_eq!(labels.get("exported_exported_job"), Some("inner"));
        assert_eq!(labels.get("instance"), Some("a:1"));
        assert_eq!(labels.get("env"), Some("prod"));
        assert_eq!(labels.get("path"), Some("/"));
        assert_eq!(labels.metric_name(), "m");
    }

    #[test]
    fn honor_labels_keeps_scraped_values() {
        let merged = merge_labels(
            "m".to_string(),
            pairs(&[("job", "inner"), ("instance", "b:2")]),
            &target_labels(),
            true,
        );
        let labels = Labels::new(merged).unwrap();
        assert_eq!(labels.get("job"), Some("inner"));
        assert_eq!(labels.get("instance"), Some("b:2"));
        assert_eq!(labels.get("env"), Some("prod"));
        assert_eq!(labels.get("exported_job"), None);
    }

    #[test]
    fn stale_marker_has_prometheus_bits() {
        assert!(stale_nan().is_nan());
        assert_eq!(stale_nan().to_bits(), 0x7ff0000000000002);
        assert_eq!(
            ACCEPT,
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
        );
    }
}
