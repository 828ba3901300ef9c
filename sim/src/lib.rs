//! Sim: a simulated fleet of 27 Spring-Cloud-style services × 2 replicas with fault
//! injection, talking to Sightline only through its public protocols.
//!
//! ```text
//!  load shape ─► flows (call trees through zuul-gateway, job-scheduler, RabbitMQ)
//!                  │ engine: one seeded SmallRng, simulated clock, active fault
//!                  ▼
//!    spans ─► Zipkin v2 JSON /api/v2/spans | OTLP/HTTP /v1/traces
//!    logs  ─► ES _bulk /es/_bulk (Filebeat ECS) | OTLP/HTTP /v1/logs
//!    15 s scrapes (Micrometer names) ─► remote_write 1.0 /api/v1/write
//!                  │ bounded concurrency, 429/503 retried with Retry-After
//!                  ▼
//!              sightline (main port)
//! ```
//!
//! This crate owns the fleet (`fleet`), the fault catalogue and its ground truth
//! (`scenario`), the request engine (`engine`), the per-replica metric state
//! (`metrics`), the wire encodings (`encode`) and the HTTP sender (`send`). It is the
//! end-to-end test of the failing-hop analysis: it knows which hop it broke. It
//! depends on `proto` for wire types only, never on `storage`, `ingest` or `query`.
//!
//! Same seed and start time, same data: [`run`] with `realtime = false` backfills the
//! whole timeline (history + warm-up + fault) as fast as the server accepts it.

mod encode;
mod engine;
mod error;
pub mod fleet;
mod metrics;
mod run;
mod scenario;
mod send;

use std::str::FromStr;
use std::time::Duration;

pub use error::{Error, Result};
pub use run::{RunReport, run};
pub use scenario::{GroundTruth, Scenario, catalogue};

/// How spans are shipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanTransport {
    /// Zipkin v2 JSON to `POST /api/v2/spans` (Spring Cloud Sleuth).
    Zipkin,
    /// OTLP/HTTP protobuf to `POST /v1/traces` (OpenTelemetry Java agent).
    Otlp,
}

/// How logs are shipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogTransport {
    /// ECS documents to `POST /es/_bulk` (Filebeat).
    EsBulk,
    /// OTLP/HTTP protobuf to `POST /v1/logs`.
    Otlp,
}

/// How metrics are shipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricTransport {
    /// Prometheus remote_write 1.0 to `POST /api/v1/write`.
    RemoteWrite,
    /// No metrics.
    None,
}

impl FromStr for SpanTransport {
    type Err = Error;
    fn from_str(text: &str) -> Result<Self> {
        match text {
            "zipkin" => Ok(SpanTransport::Zipkin),
            "otlp" => Ok(SpanTransport::Otlp),
            other => Err(Error::InvalidConfig(format!(
                "span transport {other:?}: expected zipkin or otlp"
            ))),
        }
    }
}

impl FromStr for LogTransport {
    type Err = Error;
    fn from_str(text: &str) -> Result<Self> {
        match text {
            "es" | "es-bulk" => Ok(LogTransport::EsBulk),
            "otlp" => Ok(LogTransport::Otlp),
            other => Err(Error::InvalidConfig(format!(
                "log transport {other:?}: expected es or otlp"
            ))),
        }
    }
}

impl FromStr for MetricTransport {
    type Err = Error;
    fn from_str(text: &str) -> Result<Self> {
        match text {
            "remote-write" | "remote_write" => Ok(MetricTransport::RemoteWrite),
            "none" => Ok(MetricTransport::None),
            other => Err(Error::InvalidConfig(format!(
                "metric transport {other:?}: expected remote-write or none"
            ))),
        }
    }
}

/// What to simulate and where to send it.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Main port of Sightline, e.g. `http://127.0.0.1:7700` (all transports go there).
    pub base_url: String,
    /// Sent as `X-Scope-OrgID` when set.
    pub tenant: Option<String>,
    /// Seed of every random choice.
    pub seed: u64,
    /// The fault scenario; `None`: a healthy fleet only.
    pub scenario: Option<String>,
    /// Healthy history before the warm-up, always backfilled as fast as possible.
    pub history: Duration,
    /// Healthy period before the fault.
    pub warmup: Duration,
    /// How long the fault lasts.
    pub fault_duration: Duration,
    /// `false`: the whole run is backfilled with past timestamps as fast as possible.
    pub realtime: bool,
    /// Start of the timeline, epoch ms (default: now − history − warmup − fault in
    /// backfill mode, now − history in realtime mode).
    pub start_ms: Option<i64>,
    /// Gateway requests per second (before the daily load shape).
    pub rps: f64,
    /// Span transport.
    pub spans: SpanTransport,
    /// Log transport.
    pub logs: LogTransport,
    /// Metric transport.
    pub metrics: MetricTransport,
    /// `false`: spans carry no error status, `error` tag or exception event (errors
    /// remain visible in `http.status_code`, logs and metrics).
    pub span_status: bool,
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            base_url: "http://127.0.0.1:7700".to_string(),
            tenant: None,
            seed: 1,
            scenario: None,
            history: Duration::from_secs(10 * 60),
            warmup: Duration::from_secs(5 * 60),
            fault_duration: Duration::from_secs(10 * 60),
            realtime: false,
            start_ms: None,
            rps: 10.0,
            spans: SpanTransport::Zipkin,
            logs: LogTransport::EsBulk,
            metrics: MetricTransport::RemoteWrite,
            span_status: true,
        }
    }
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX / 4)
}

pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The timeline of a run, epoch milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Timeline {
    pub start_ms: i64,
    pub fault_start_ms: i64,
    pub fault_end_ms: i64,
    /// Where generation stops; `None`: until stopped (realtime without a scenario).
    pub end_ms: Option<i64>,
}

impl RunConfig {
    /// The same config with `start_ms` fixed from the clock if unset, so that
    /// [`plan`] and [`run`] agree on the timeline.
    pub fn with_pinned_start(mut self) -> RunConfig {
        if self.start_ms.is_none() {
            let now = now_ms();
            let before_now = if self.realtime {
                millis(self.history)
            } else {
                millis(self.history) + millis(self.warmup) + millis(self.fault_duration)
            };
            self.start_ms = Some(now - before_now);
        }
        self
    }

    /// Checks ranges and the scenario name.
    pub fn validate(&self) -> Result<()> {
        if !self.rps.is_finite() || self.rps <= 0.0 || self.rps > 10_000.0 {
            return Err(Error::InvalidConfig(format!(
                "rps {} must be in (0, 10000]",
                self.rps
            )));
        }
        if !(self.base_url.starts_with("http://") || self.base_url.starts_with("https://")) {
            return Err(Error::InvalidConfig(format!(
                "target {:?} must be an http(s) URL",
                self.base_url
            )));
        }
        if let Some(name) = &self.scenario {
            if scenario::find(name).is_none() {
                return Err(Error::UnknownScenario(name.clone()));
            }
            if self.fault_duration.is_zero() {
                return Err(Error::InvalidConfig(
                    "fault duration must be positive".to_string(),
                ));
            }
        }
        let total = self.history + self.warmup + self.fault_duration;
        if total > Duration::from_secs(31 * 86_400) {
            return Err(Error::InvalidConfig(
                "history + warmup + fault longer than 31 days".to_string(),
            ));
        }
        Ok(())
    }

    pub(crate) fn timeline(&self) -> Timeline {
        let pinned = self.clone().with_pinned_start();
        let start_ms = pinned.start_ms.unwrap_or_default();
        let fault_start_ms = start_ms + millis(self.history) + millis(self.warmup);
        let fault_end_ms = fault_start_ms + millis(self.fault_duration);
        let end_ms = if self.realtime && self.scenario.is_none() {
            None
        } else {
            Some(fault_end_ms)
        };
        Timeline {
            start_ms,
            fault_start_ms,
            fault_end_ms,
            end_ms,
        }
    }
}

/// The fault's ground truth for this config (`None` without a scenario).
/// Deterministic for a config with `start_ms` set (see [`RunConfig::with_pinned_start`]).
pub fn plan(config: &RunConfig) -> Result<Option<GroundTruth>> {
    config.validate()?;
    let Some(name) = &config.scenario else {
        return Ok(None);
    };
    let spec = scenario::find(name).ok_or_else(|| Error::UnknownScenario(name.clone()))?;
    debug_assert!(
        scenario::targets_exist(&spec),
        "scenario {name} names no fleet member"
    );
    let timeline = config.timeline();
    Ok(Some(
        spec.truth(timeline.fault_start_ms, timeline.fault_end_ms),
    ))
}

#[cfg(test)]
mod tests;
