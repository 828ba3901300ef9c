//! Runs a simulation: a blocking generator walks simulated time in chunks and encodes
//! them; the async side sends the payloads with bounded concurrency, pacing them to
//! the wall clock in realtime mode.

use std::future::Future;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tracing::{debug, info};

use crate::encode::{self, Payload, Signal};
use crate::engine::{ActiveFault, Engine, SimLog, SimSpan};
use crate::error::{Error, Result};
use crate::fleet::service_index;
use crate::metrics::SeriesSamples;
use crate::scenario::{self, GroundTruth};
use crate::{LogTransport, MetricTransport, RunConfig, SpanTransport, Timeline, now_ms, plan};

/// Records per span or log request.
const BATCH_RECORDS: usize = 2_000;
/// Requests in flight at once.
const MAX_IN_FLIGHT: usize = 4;
/// Simulated time per chunk while backfilling.
const BACKFILL_CHUNK_MS: i64 = 30_000;
/// Simulated time per chunk in realtime.
const REALTIME_CHUNK_MS: i64 = 1_000;

/// What a run sent.
#[derive(Debug, Clone, PartialEq)]
pub struct RunReport {
    /// The injected fault, if any.
    pub truth: Option<GroundTruth>,
    /// Spans acknowledged by the server.
    pub spans: u64,
    /// Log records acknowledged.
    pub logs: u64,
    /// Metric samples acknowledged.
    pub samples: u64,
}

/// The payloads of one stretch of simulated time.
struct Chunk {
    end_ms: i64,
    payloads: Vec<Payload>,
}

/// Runs the fleet: backfills the history (and, when `!realtime`, everything), then in
/// realtime mode keeps sending until the fault ends or `stop` resolves. Returns once
/// every batch it sent was acknowledged.
pub async fn run(config: RunConfig, stop: impl Future<Output = ()> + Send) -> Result<RunReport> {
    let config = config.with_pinned_start();
    let truth = plan(&config)?;
    let timeline = config.timeline();
    let sender = crate::send::Sender::new(&config.base_url, config.tenant.clone())?;
    info!(
        scenario = config.scenario.as_deref().unwrap_or("none"),
        seed = config.seed,
        rps = config.rps,
        start_ms = timeline.start_ms,
        fault_start_ms = timeline.fault_start_ms,
        end_ms = ?timeline.end_ms,
        realtime = config.realtime,
        "simulation starting"
    );
    let (chunks_tx, mut chunks_rx) = mpsc::channel::<Chunk>(4);
    let generator_config = config.clone();
    let generator =
        tokio::task::spawn_blocking(move || generate(&generator_config, timeline, &chunks_tx));

    let mut report = RunReport {
        truth,
        spans: 0,
        logs: 0,
        samples: 0,
    };
    let mut in_flight: JoinSet<Result<(Signal, u64)>> = JoinSet::new();
    let mut outcome = Ok(());
    let mut sent_until_ms = timeline.start_ms;
    tokio::pin!(stop);
    'chunks: loop {
        let chunk = tokio::select! {
            () = &mut stop => break 'chunks,
            chunk = chunks_rx.recv() => chunk,
        };
        let Some(chunk) = chunk else { break };
        if config.realtime {
            let wait_ms = chunk.end_ms - now_ms();
            if wait_ms > 0 {
                tokio::select! {
                    () = &mut stop => break 'chunks,
                    () = tokio::time::sleep(Duration::from_millis(wait_ms.unsigned_abs())) => {}
                }
            }
        }
        for payload in chunk.payloads {
            while in_flight.len() >= MAX_IN_FLIGHT {
                if let Err(error) = collect(in_flight.join_next().await, &mut report) {
                    outcome = Err(error);
                    break 'chunks;
                }
            }
            let sender = sender.clone();
            in_flight.spawn(async move {
                sender.send(&payload).await?;
                Ok((payload.signal, payload.records))
            });
        }
        if chunk.end_ms - sent_until_ms >= 60_000 {
            debug!(
                until_ms = chunk.end_ms,
                spans = report.spans,
                logs = report.logs,
                samples = report.samples,
                "progress"
            );
            sent_until_ms = chunk.end_ms;
        }
    }
    drop(chunks_rx);
    while let Some(joined) = in_flight.join_next().await {
        if let Err(error) = collect(Some(joined), &mut report)
            && outcome.is_ok()
        {
            outcome = Err(error);
        }
    }
    generator
        .await
        .map_err(|error| Error::Generator(error.to_string()))?;
    outcome?;
    info!(
        spans = report.spans,
        logs = report.logs,
        samples = report.samples,
        "simulation finished"
    );
    Ok(report)
}

fn collect(
    joined: Option<std::result::Result<Result<(Signal, u64)>, tokio::task::JoinError>>,
    report: &mut RunReport,
) -> Result<()> {
    let Some(joined) = joined else { return Ok(()) };
    let (signal, records) = joined.map_err(|error| Error::Generator(error.to_string()))??;
    match signal {
        Signal::Spans => report.spans += records,
        Signal::Logs => report.logs += records,
        Signal::Samples => report.samples += records,
    }
    Ok(())
}

/// The active fault of a config, in simulated microseconds.
pub(crate) fn active_fault(config: &RunConfig, timeline: Timeline) -> Option<ActiveFault> {
    let spec = scenario::find(config.scenario.as_deref()?)?;
    let service = match &spec.effect {
        scenario::Effect::DependencyDown(_) | scenario::Effect::DependencyLatency(..) => None,
        _ => service_index(spec.service),
    };
    Some(ActiveFault {
        spec,
        service,
        start_us: timeline.fault_start_ms * 1000,
        end_us: timeline.fault_end_ms * 1000,
    })
}

/// Generates and encodes chunk after chunk until the end of the timeline or until the
/// receiver is gone.
fn generate(config: &RunConfig, timeline: Timeline, chunks: &mpsc::Sender<Chunk>) {
    let fault = active_fault(config, timeline);
    let mut engine = Engine::new(config.seed, config.rps, timeline.start_ms * 1000, fault);
    let mut at_ms = timeline.start_ms;
    while timeline.end_ms.is_none_or(|end| at_ms < end) {
        let step = if config.realtime && at_ms + BACKFILL_CHUNK_MS > now_ms() {
            REALTIME_CHUNK_MS
        } else {
            BACKFILL_CHUNK_MS
        };
        let next_ms = timeline
            .end_ms
            .map_or(at_ms + step, |end| (at_ms + step).min(end));
        engine.run_until(next_ms * 1000);
        let spans = std::mem::take(&mut engine.spans);
        let logs = std::mem::take(&mut engine.logs);
        let series = engine.metrics.take();
        let payloads = encode_chunk(config, &engine, &spans, &logs, series);
        if chunks
            .blocking_send(Chunk {
                end_ms: next_ms,
                payloads,
            })
            .is_err()
        {
            return;
        }
        at_ms = next_ms;
    }
}

fn encode_chunk(
    config: &RunConfig,
    engine: &Engine,
    spans: &[SimSpan],
    logs: &[SimLog],
    series: SeriesSamples,
) -> Vec<Payload> {
    let pods = engine.pods();
    let mut payloads = Vec::new();
    for batch in spans.chunks(BATCH_RECORDS) {
        payloads.push(match config.spans {
            SpanTransport::Zipkin => encode::zipkin_json(batch, pods, config.span_status),
            SpanTransport::Otlp => encode::otlp_traces(batch, pods, config.span_status),
        });
    }
    for batch in logs.chunks(BATCH_RECORDS) {
        payloads.push(match config.logs {
            LogTransport::EsBulk => encode::es_bulk(batch, pods),
            LogTransport::Otlp => encode::otlp_logs(batch, pods),
        });
    }
    if config.metrics == MetricTransport::RemoteWrite && !series.is_empty() {
        payloads.push(encode::remote_write(series));
    }
    payloads
}

/// Everything a config generates, without sending it (for tests and tools).
#[cfg(test)]
pub(crate) struct Generated {
    pub spans: Vec<SimSpan>,
    pub logs: Vec<SimLog>,
    pub series: SeriesSamples,
    pub pods: Vec<Vec<String>>,
}

#[cfg(test)]
pub(crate) fn generate_in_memory(config: &RunConfig) -> Generated {
    let timeline = config.timeline();
    let fault = active_fault(config, timeline);
    let mut engine = Engine::new(config.seed, config.rps, timeline.start_ms * 1000, fault);
    engine.run_until(timeline.end_ms.unwrap_or(timeline.fault_end_ms) * 1000);
    let series = engine.metrics.take();
    Generated {
        spans: std::mem::take(&mut engine.spans),
        logs: std::mem::take(&mut engine.logs),
        series,
        pods: engine.pods().to_vec(),
    }
}
