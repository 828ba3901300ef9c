//! Per-replica metric state (Micrometer-style names) and the 15 s scrapes that turn it
//! into remote_write samples.
//!
//! The engine reports observations (requests, busy time, database time, pool waits,
//! RabbitMQ publishes/consumes); every 15 s of simulated time each replica is
//! "scraped": counters are cumulative since process start (reset when a crash-looping
//! replica restarts), gauges are derived from the last window.

use std::collections::BTreeMap;

use rand::rngs::SmallRng;
use rand::{Rng as _, SeedableRng as _};

use crate::engine::{ActiveFault, Level, SimLog, crash_down};
use crate::fleet::{REPLICAS, SERVICES, consumed_queues, uses_mysql};
use crate::scenario::Effect;

/// Scrape interval.
pub(crate) const SCRAPE_INTERVAL_US: i64 = 15_000_000;
/// Histogram bucket bounds of `http_server_requests_seconds` (seconds).
const BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// HikariCP `maximumPoolSize`.
const POOL_MAX: f64 = 10.0;
const MIB: f64 = 1024.0 * 1024.0;

#[derive(Debug, Clone, Default)]
struct Histogram {
    count: u64,
    sum: f64,
    buckets: [u64; BUCKETS.len()],
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct HttpKey {
    method: &'static str,
    uri: &'static str,
    status: u16,
    exception: String,
}

#[derive(Debug, Clone, Default)]
struct Replica {
    http: BTreeMap<HttpKey, Histogram>,
    busy_us: i64,
    db_us: i64,
    pool_waits: u64,
    pool_timeouts: f64,
    minor_gc: (f64, f64),
    major_gc: Option<(f64, f64)>,
    eden_mib: f64,
    was_down: bool,
}

#[derive(Debug, Clone, Default)]
struct Queue {
    ready: f64,
    published: u64,
    consumed: u64,
}

/// One series (sorted labels) and its samples.
pub(crate) type SeriesSamples = BTreeMap<Vec<(String, String)>, Vec<(i64, f64)>>;

/// Metric state of the fleet.
pub(crate) struct MetricsState {
    rng: SmallRng,
    replicas: Vec<Vec<Replica>>,
    queues: BTreeMap<&'static str, Queue>,
    next_scrape_us: i64,
    /// Samples scraped since the last [`MetricsState::take`].
    out: SeriesSamples,
}

impl MetricsState {
    pub fn new(start_us: i64, seed: u64) -> MetricsState {
        let replicas = SERVICES
            .iter()
            .map(|_| {
                (0..REPLICAS)
                    .map(|_| Replica {
                        eden_mib: 120.0,
                        ..Replica::default()
                    })
                    .collect()
            })
            .collect();
        let mut queues = BTreeMap::new();
        for service in SERVICES {
            for queue in consumed_queues(service) {
                queues.insert(queue, Queue::default());
            }
        }
        let first = start_us - start_us.rem_euclid(SCRAPE_INTERVAL_US) + SCRAPE_INTERVAL_US;
        MetricsState {
            rng: SmallRng::seed_from_u64(seed),
            replicas,
            queues,
            next_scrape_us: first,
            out: BTreeMap::new(),
        }
    }

    /// Records one finished HTTP server request.
    #[allow(clippy::too_many_arguments)]
    pub fn record_http(
        &mut self,
        service: usize,
        replica: usize,
        method: &'static str,
        uri: &'static str,
        status: u16,
        exception: &str,
        seconds: f64,
    ) {
        let key = HttpKey {
            method,
            uri,
            status,
            exception: exception.to_string(),
        };
        let histogram = self.replicas[service][replica].http.entry(key).or_default();
        histogram.count += 1;
        histogram.sum += seconds;
        for (index, bound) in BUCKETS.iter().enumerate() {
            if seconds <= *bound {
                histogram.buckets[index] += 1;
            }
        }
    }

    pub fn add_busy(&mut self, service: usize, replica: usize, micros: i64) {
        self.replicas[service][replica].busy_us += micros;
    }

    pub fn add_db(&mut self, service: usize, replica: usize, micros: i64) {
        self.replicas[service][replica].db_us += micros;
    }

    pub fn pool_wait(&mut self, service: usize, replica: usize) {
        self.replicas[service][replica].pool_waits += 1;
    }

    pub fn pool_timeout(&mut self, service: usize, replica: usize) {
        self.replicas[service][replica].pool_timeouts += 1.0;
    }

    pub fn published(&mut self, queue: &'static str) {
        self.queues.entry(queue).or_default().published += 1;
    }

    pub fn consumed(&mut self, queue: &'static str) {
        self.queues.entry(queue).or_default().consumed += 1;
    }

    /// Takes the samples scraped so far.
    pub fn take(&mut self) -> SeriesSamples {
        std::mem::take(&mut self.out)
    }

    /// Scrapes every replica at each scrape time `<= until_us`.
    pub fn scrape_until(
        &mut self,
        until_us: i64,
        fault: Option<&ActiveFault>,
        pods: &[Vec<String>],
        logs: &mut Vec<SimLog>,
    ) {
        while self.next_scrape_us <= until_us {
            let at_us = self.next_scrape_us;
            self.update_queues(at_us, fault);
            for service in 0..SERVICES.len() {
                for replica in 0..REPLICAS {
                    self.scrape_replica(
                        service,
                        replica,
                        at_us,
                        fault,
                        &pods[service][replica],
                        logs,
                    );
                }
            }
            self.next_scrape_us += SCRAPE_INTERVAL_US;
        }
    }

    fn update_queues(&mut self, at_us: i64, fault: Option<&ActiveFault>) {
        for (queue, state) in &mut self.queues {
            let stuck = fault.is_some_and(|fault| {
                at_us >= fault.start_us
                    && at_us < fault.end_us
                    && matches!(fault.spec.effect, Effect::ConsumerStuck { queue: q } if q.is_none_or(|q| q == *queue))
            });
            let backlog = state.published.saturating_sub(state.consumed) as f64;
            state.published = 0;
            state.consumed = 0;
            if stuck {
                state.ready += backlog;
            } else {
                state.ready =
                    (state.ready * 0.3).floor() + f64::from(self.rng.random_range(0..3_u8));
            }
        }
    }

    fn push(
        &mut self,
        name: &str,
        labels: &[(&str, &str)],
        base: &[(&str, &str)],
        at_ms: i64,
        value: f64,
    ) {
        let mut all: Vec<(String, String)> = Vec::with_capacity(labels.len() + base.len() + 1);
        all.push(("__name__".to_string(), name.to_string()));
        for (key, value) in base.iter().chain(labels) {
            all.push((key.to_string(), value.to_string()));
        }
        all.sort();
        self.out.entry(all).or_default().push((at_ms, value));
    }

    fn scrape_replica(
        &mut self,
        service: usize,
        replica: usize,
        at_us: i64,
        fault: Option<&ActiveFault>,
        pod: &str,
        logs: &mut Vec<SimLog>,
    ) {
        let name = SERVICES[service];
        let base = [("job", name), ("instance", pod), ("service", name)];
        let at_ms = at_us / 1000;
        let down = crash_down(fault, service, replica, at_us);
        let was_down = self.replicas[service][replica].was_down;
        if down {
            if !was_down {
                logs.push(restart_log(
                    service,
                    replica,
                    at_us,
                    Level::Error,
                    "Application run failed: java.lang.OutOfMemoryError: Java heap space"
                        .to_string(),
                ));
            }
            // The process is gone: counters restart from zero with the next process.
            let state = &mut self.replicas[service][replica];
            *state = Replica {
                eden_mib: 120.0,
                was_down: true,
                ..Replica::default()
            };
            self.push("up", &[], &base, at_ms, 0.0);
            return;
        }
        if was_down {
            let seconds = self.rng.random_range(14.0..22.0_f64);
            logs.push(restart_log(
                service,
                replica,
                at_us,
                Level::Info,
                format!(
                    "Started {}Application in {seconds:.3} seconds (JVM running for {:.3})",
                    crate::fleet::camel(name),
                    seconds + 1.2
                ),
            ));
        }
        let on_me = |effect: &dyn Fn(&Effect) -> bool| {
            fault.is_some_and(|fault| {
                at_us >= fault.start_us
                    && at_us < fault.end_us
                    && fault.service == Some(service)
                    && fault.spec.replica.is_none_or(|r| r == replica)
                    && effect(&fault.spec.effect)
            })
        };
        let leak_progress = fault
            .filter(|_| on_me(&|effect| *effect == Effect::MemoryLeak))
            .map(|fault| {
                ((at_us - fault.start_us) as f64 / (fault.end_us - fault.start_us).max(1) as f64)
                    .clamp(0.0, 1.0)
            });
        let cpu_saturated = on_me(&|effect| *effect == Effect::CpuSaturation);
        let pool_exhausted = on_me(&|effect| *effect == Effect::PoolExhaustion);

        let noise = self.rng.random_range(-1.0..1.0_f64);
        let noise2 = self.rng.random_range(-1.0..1.0_f64);
        let gc_minor = f64::from(self.rng.random_range(1..4_u8));
        let state = &mut self.replicas[service][replica];
        state.was_down = false;
        let window_s = SCRAPE_INTERVAL_US as f64 / 1e6;
        let busy = state.busy_us as f64 / 1e6 / window_s;
        let db_busy = state.db_us as f64 / 1e6 / window_s;
        let pool_waits = state.pool_waits;
        state.busy_us = 0;
        state.db_us = 0;
        state.pool_waits = 0;

        let process_cpu = if cpu_saturated {
            0.96 + 0.03 * noise.abs()
        } else {
            (0.02 + busy * 0.35 + 0.008 * noise).clamp(0.005, 0.9)
        };
        let system_cpu = if cpu_saturated {
            0.99
        } else {
            (process_cpu + 0.08 + 0.02 * noise2).clamp(0.0, 1.0)
        };
        state.eden_mib = if state.eden_mib > 220.0 {
            40.0
        } else {
            state.eden_mib + 30.0 + 20.0 * noise.abs()
        };
        let old_mib = 180.0 + 10.0 * noise2 + leak_progress.map_or(0.0, |p| 1750.0 * p);
        state.minor_gc.0 += gc_minor;
        state.minor_gc.1 += gc_minor * (0.006 + 0.004 * noise.abs());
        if let Some(progress) = leak_progress {
            let major = state.major_gc.get_or_insert((0.0, 0.0));
            let count = (1.0 + 12.0 * progress).round();
            major.0 += count;
            major.1 += count * (0.08 + 0.9 * progress);
        }
        let minor = state.minor_gc;
        let major = state.major_gc;
        let http: Vec<(HttpKey, Histogram)> = state
            .http
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let pool_timeouts = state.pool_timeouts;
        let eden = state.eden_mib;

        self.push("up", &[], &base, at_ms, 1.0);
        self.push("process_cpu_usage", &[], &base, at_ms, process_cpu);
        self.push("system_cpu_usage", &[], &base, at_ms, system_cpu);
        self.push(
            "jvm_memory_used_bytes",
            &[("area", "heap"), ("id", "G1 Eden Space")],
            &base,
            at_ms,
            (eden * MIB).round(),
        );
        self.push(
            "jvm_memory_used_bytes",
            &[("area", "heap"), ("id", "G1 Old Gen")],
            &base,
            at_ms,
            (old_mib.min(2040.0) * MIB).round(),
        );
        self.push(
            "jvm_memory_used_bytes",
            &[("area", "nonheap"), ("id", "Metaspace")],
            &base,
            at_ms,
            (112.0 * MIB).round(),
        );
        self.push(
            "jvm_memory_max_bytes",
            &[("area", "heap"), ("id", "G1 Old Gen")],
            &base,
            at_ms,
            2048.0 * MIB,
        );
        let minor_labels = [
            ("action", "end of minor GC"),
            ("cause", "G1 Evacuation Pause"),
        ];
        self.push(
            "jvm_gc_pause_seconds_count",
            &minor_labels,
            &base,
            at_ms,
            minor.0,
        );
        self.push(
            "jvm_gc_pause_seconds_sum",
            &minor_labels,
            &base,
            at_ms,
            minor.1,
        );
        if let Some((count, sum)) = major {
            let major_labels = [
                ("action", "end of major GC"),
                ("cause", "G1 Humongous Allocation"),
            ];
            self.push(
                "jvm_gc_pause_seconds_count",
                &major_labels,
                &base,
                at_ms,
                count,
            );
            self.push("jvm_gc_pause_seconds_sum", &major_labels, &base, at_ms, sum);
        }
        if uses_mysql(name) {
            let pool = [("pool", "HikariPool-1")];
            let (active, pending) = if pool_exhausted {
                (
                    POOL_MAX,
                    6.0 + (pool_waits as f64).min(40.0) + 4.0 * noise.abs(),
                )
            } else {
                (
                    (db_busy * (1.0 + 0.2 * noise)).clamp(0.0, POOL_MAX).round(),
                    0.0,
                )
            };
            self.push("hikaricp_connections_active", &pool, &base, at_ms, active);
            self.push(
                "hikaricp_connections_pending",
                &pool,
                &base,
                at_ms,
                pending.round(),
            );
            self.push("hikaricp_connections_max", &pool, &base, at_ms, POOL_MAX);
            self.push(
                "hikaricp_connections_timeout_total",
                &pool,
                &base,
                at_ms,
                pool_timeouts,
            );
        }
        for queue in consumed_queues(name) {
            let ready = self.queues.get(queue).map_or(0.0, |q| q.ready);
            self.push(
                "rabbitmq_queue_messages_ready",
                &[("queue", queue)],
                &base,
                at_ms,
                ready,
            );
        }
        for (key, histogram) in http {
            let status = key.status.to_string();
            let outcome = match key.status {
                200..=299 => "SUCCESS",
                400..=499 => "CLIENT_ERROR",
                _ => "SERVER_ERROR",
            };
            let labels = [
                ("method", key.method),
                ("uri", key.uri),
                ("status", status.as_str()),
                ("outcome", outcome),
                ("exception", key.exception.as_str()),
            ];
            self.push(
                "http_server_requests_seconds_count",
                &labels,
                &base,
                at_ms,
                histogram.count as f64,
            );
            self.push(
                "http_server_requests_seconds_sum",
                &labels,
                &base,
                at_ms,
                histogram.sum,
            );
            for (index, bound) in BUCKETS.iter().enumerate() {
                let le = format_le(*bound);
                let mut with_le = labels.to_vec();
                with_le.push(("le", le.as_str()));
                self.push(
                    "http_server_requests_seconds_bucket",
                    &with_le,
                    &base,
                    at_ms,
                    histogram.buckets[index] as f64,
                );
            }
            let mut inf = labels.to_vec();
            inf.push(("le", "+Inf"));
            self.push(
                "http_server_requests_seconds_bucket",
                &inf,
                &base,
                at_ms,
                histogram.count as f64,
            );
        }
    }
}

fn format_le(bound: f64) -> String {
    format!("{bound:?}")
}

fn restart_log(
    service: usize,
    replica: usize,
    at_us: i64,
    level: Level,
    message: String,
) -> SimLog {
    SimLog {
        time_us: at_us,
        service,
        replica,
        level,
        logger: format!(
            "c.t.{}.{}Application",
            SERVICES[service].replace('-', ""),
            crate::fleet::camel(SERVICES[service])
        ),
        thread: "main".to_string(),
        message,
        trace_id: None,
        span_id: None,
        exception: None,
    }
}
