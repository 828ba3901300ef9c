//! The request engine: walks the flows' call trees per request and turns them into
//! spans, log lines and metric observations, applying the active fault.
//!
//! Everything is driven by one seeded `SmallRng` in a fixed order, so a seed and a
//! start time always give the same data. Time is simulated (epoch microseconds); the
//! engine never looks at the wall clock.

use rand::rngs::SmallRng;
use rand::{Rng as _, SeedableRng as _};

use crate::fleet::{
    Dep, Entry, Flow, Handler, REPLICAS, SERVICES, Step, flows, pod_name, service_index,
};
use crate::metrics::MetricsState;
use crate::scenario::{Effect, FaultSpec};

/// The kind of a generated span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SpanKind {
    Server,
    Client,
    Producer,
    Consumer,
    Internal,
}

/// An exception: Java class name and message.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Exception {
    pub class: String,
    pub message: String,
}

impl Exception {
    fn new(class: &str, message: impl Into<String>) -> Exception {
        Exception {
            class: class.to_string(),
            message: message.into(),
        }
    }

    /// The class name without its package (Micrometer's `exception` label).
    pub fn simple_name(&self) -> &str {
        self.class.rsplit('.').next().unwrap_or(&self.class)
    }
}

/// One generated span.
#[derive(Debug, Clone)]
pub(crate) struct SimSpan {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub parent_id: Option<[u8; 8]>,
    pub service: usize,
    pub replica: usize,
    pub name: String,
    pub kind: SpanKind,
    pub start_us: i64,
    pub duration_us: i64,
    pub error: Option<Exception>,
    /// The remote side (`peer.service`).
    pub peer: Option<String>,
    pub attributes: Vec<(&'static str, String)>,
}

/// Log severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Level {
    Info,
    Warn,
    Error,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Info => "INFO",
            Level::Warn => "WARN",
            Level::Error => "ERROR",
        }
    }
}

/// One generated log line.
#[derive(Debug, Clone)]
pub(crate) struct SimLog {
    pub time_us: i64,
    pub service: usize,
    pub replica: usize,
    pub level: Level,
    pub logger: String,
    pub thread: String,
    pub message: String,
    pub trace_id: Option<[u8; 16]>,
    pub span_id: Option<[u8; 8]>,
    pub exception: Option<Exception>,
}

/// Read timeout of Zuul routes (ribbon.ReadTimeout).
const GATEWAY_TIMEOUT_US: i64 = 10_000_000;
/// Read timeout of Feign clients.
const FEIGN_TIMEOUT_US: i64 = 5_000_000;
/// Connect timeout of Feign clients.
const CONNECT_TIMEOUT_US: i64 = 1_000_000;
/// HikariCP `connectionTimeout`.
const POOL_TIMEOUT_US: i64 = 3_000_000;
/// Share of requests failing for no particular reason.
const BACKGROUND_ERROR_RATE: f64 = 0.002;
/// Share of token checks answering 401.
const UNAUTHORIZED_RATE: f64 = 0.01;
/// Crash-loop cycle: the replica serves for `CRASH_UP_US`, then stays down.
const CRASH_CYCLE_US: i64 = 60_000_000;
const CRASH_UP_US: i64 = 20_000_000;

/// The fault and its window, in simulated microseconds.
#[derive(Debug, Clone)]
pub(crate) struct ActiveFault {
    pub spec: FaultSpec,
    pub service: Option<usize>,
    pub start_us: i64,
    pub end_us: i64,
}

impl ActiveFault {
    fn active(&self, at_us: i64) -> bool {
        at_us >= self.start_us && at_us < self.end_us
    }

    /// Fraction of the fault window elapsed at `at_us` (0..1).
    fn progress(&self, at_us: i64) -> f64 {
        let length = (self.end_us - self.start_us).max(1) as f64;
        ((at_us - self.start_us) as f64 / length).clamp(0.0, 1.0)
    }

    fn on(&self, service: usize, replica: usize) -> bool {
        self.service == Some(service) && self.spec.replica.is_none_or(|r| r == replica)
    }
}

/// How a call ended.
#[derive(Debug, Clone)]
struct Done {
    end_us: i64,
    /// HTTP status given back (0 when there was no response).
    status: u16,
    failure: Option<Failure>,
}

#[derive(Debug, Clone)]
struct Failure {
    exception: Exception,
    /// The call timed out or could not connect (no response).
    no_response: bool,
}

/// The caller side of a step.
#[derive(Debug, Clone, Copy)]
struct Caller {
    service: usize,
    replica: usize,
    span_id: [u8; 8],
    trace_id: [u8; 16],
}

/// Generates the fleet's telemetry, request by request.
pub(crate) struct Engine {
    rng: SmallRng,
    rps: f64,
    fault: Option<ActiveFault>,
    next_arrival_us: i64,
    next_scheduled_us: Vec<Option<i64>>,
    weights_total: f64,
    pods: Vec<Vec<String>>,
    pub(crate) metrics: MetricsState,
    pub(crate) spans: Vec<SimSpan>,
    pub(crate) logs: Vec<SimLog>,
}

impl Engine {
    /// A fleet starting at `start_us` with the seed, load and fault given.
    pub fn new(seed: u64, rps: f64, start_us: i64, fault: Option<ActiveFault>) -> Engine {
        let mut rng = SmallRng::seed_from_u64(seed);
        let flows = flows();
        let next_scheduled_us = flows
            .iter()
            .map(|flow| {
                flow.every_s.map(|every| {
                    let period = i64::from(every) * 1_000_000;
                    start_us + rng.random_range(0..period)
                })
            })
            .collect();
        let pods = SERVICES
            .iter()
            .map(|service| (0..REPLICAS).map(|r| pod_name(service, r)).collect())
            .collect();
        let metrics = MetricsState::new(start_us, seed ^ 0x6d65_7472_6963_7321);
        let mut engine = Engine {
            rng,
            rps: rps.max(0.001),
            fault,
            next_arrival_us: start_us,
            next_scheduled_us,
            weights_total: flows.iter().map(|flow| flow.weight).sum(),
            pods,
            metrics,
            spans: Vec::new(),
            logs: Vec::new(),
        };
        engine.next_arrival_us = start_us + engine.interarrival_us(start_us);
        engine
    }

    /// Pod names by service and replica.
    pub fn pods(&self) -> &[Vec<String>] {
        &self.pods
    }

    /// The pod name of a replica.
    pub fn pod(&self, service: usize, replica: usize) -> &str {
        &self.pods[service][replica]
    }

    /// Runs every request that starts before `end_us`, and every metric scrape before it.
    pub fn run_until(&mut self, end_us: i64) {
        loop {
            let (at_us, flow_index) = self.next_request();
            if at_us >= end_us {
                break;
            }
            let fault = self.fault.clone();
            self.metrics
                .scrape_until(at_us, fault.as_ref(), &self.pods, &mut self.logs);
            self.run_flow(flow_index, at_us);
        }
        let fault = self.fault.clone();
        self.metrics
            .scrape_until(end_us, fault.as_ref(), &self.pods, &mut self.logs);
    }

    /// The next request (time, flow), advancing the arrival clocks.
    fn next_request(&mut self) -> (i64, Option<usize>) {
        let scheduled = self
            .next_scheduled_us
            .iter()
            .enumerate()
            .filter_map(|(index, at)| at.map(|at| (at, index)))
            .min();
        match scheduled {
            Some((at, index)) if at <= self.next_arrival_us => {
                let every = flows()[index].every_s.unwrap_or(60);
                self.next_scheduled_us[index] = Some(at + i64::from(every) * 1_000_000);
                (at, Some(index))
            }
            _ => {
                let at = self.next_arrival_us;
                self.next_arrival_us = at + self.interarrival_us(at);
                (at, None)
            }
        }
    }

    /// Exponential inter-arrival time under the daily load shape.
    fn interarrival_us(&mut self, at_us: i64) -> i64 {
        let rate = self.rps * load_shape(at_us);
        let uniform: f64 = self.rng.random_range(f64::EPSILON..1.0);
        ((-uniform.ln() / rate) * 1e6).max(1.0) as i64
    }

    fn pick_flow(&mut self) -> usize {
        let mut target = self.rng.random_range(0.0..self.weights_total);
        for (index, flow) in flows().iter().enumerate() {
            if flow.weight <= 0.0 {
                continue;
            }
            if target < flow.weight {
                return index;
            }
            target -= flow.weight;
        }
        0
    }

    fn run_flow(&mut self, scheduled: Option<usize>, at_us: i64) {
        let flow: &'static Flow = &flows()[scheduled.unwrap_or_else(|| self.pick_flow())];
        let trace_id = self.rng.random::<u128>().to_be_bytes();
        let mut root = flow.root.clone();
        if flow.any_origin {
            let gateway = service_index("eureka-registry").unwrap_or(0);
            let origin = loop {
                let candidate = self.rng.random_range(0..SERVICES.len());
                if candidate != gateway {
                    break candidate;
                }
            };
            root.service = SERVICES[origin];
        }
        let service = service_index(root.service).unwrap_or(0);
        let replica = self.rng.random_range(0..REPLICAS);
        if self.crash_down(service, replica, at_us) {
            return;
        }
        let span_id = self.span_id();
        let kind = match root.entry {
            Entry::Scheduled { .. } => SpanKind::Internal,
            Entry::Consumer { .. } => SpanKind::Consumer,
            Entry::Http { .. } => SpanKind::Server,
        };
        self.run_handler(
            &root, service, replica, trace_id, span_id, None, at_us, kind,
        );
    }

    fn span_id(&mut self) -> [u8; 8] {
        self.rng.random_range(1..u64::MAX).to_be_bytes()
    }

    fn lognormal(&mut self, median: f64, sigma: f64) -> f64 {
        let u1: f64 = self.rng.random_range(f64::EPSILON..1.0);
        let u2: f64 = self.rng.random_range(0.0..1.0);
        let normal = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
        median * (sigma * normal).exp()
    }

    fn chance(&mut self, probability: f64) -> bool {
        self.rng.random_range(0.0..1.0) < probability
    }

    fn active_fault(&self, at_us: i64) -> Option<&ActiveFault> {
        self.fault.as_ref().filter(|fault| fault.active(at_us))
    }

    /// Whether a crash-looping replica is down at `at_us`.
    fn crash_down(&self, service: usize, replica: usize, at_us: i64) -> bool {
        crash_down(self.fault.as_ref(), service, replica, at_us)
    }

    #[allow(clippy::too_many_arguments)]
    fn run_handler(
        &mut self,
        handler: &Handler,
        service: usize,
        replica: usize,
        trace_id: [u8; 16],
        span_id: [u8; 8],
        parent_id: Option<[u8; 8]>,
        start_us: i64,
        kind: SpanKind,
    ) -> Done {
        let name = handler.span_name();
        let (multiplier, extra_ms, self_error) =
            self.own_behaviour(&name, service, replica, start_us);
        let own_ms = self.lognormal(handler.self_ms, 0.45) * multiplier;
        let pre_us = ((own_ms * 0.5 + extra_ms) * 1000.0) as i64;
        let post_us = (own_ms * 500.0) as i64;

        let unauthorized = matches!(
            handler.entry,
            Entry::Http {
                route: "/oauth/check_token",
                ..
            }
        ) && self.chance(UNAUTHORIZED_RATE);
        let fail_at = self_error
            .as_ref()
            .map(|_| self.rng.random_range(0..=handler.steps.len()));
        let caller = Caller {
            service,
            replica,
            span_id,
            trace_id,
        };
        let mut cursor = start_us + pre_us;
        let mut failure = None;
        let mut status = 200;
        for (index, step) in handler.steps.iter().enumerate() {
            if unauthorized || fail_at == Some(index) {
                break;
            }
            let done = self.run_step(step, caller, cursor);
            cursor = done.end_us;
            if let Some(child) = done.failure {
                failure = Some(self.propagate(handler, step, child));
                break;
            }
            if (400..500).contains(&done.status) {
                status = done.status;
                break;
            }
        }
        if let Some(exception) = self_error {
            failure = Some(Failure {
                exception,
                no_response: false,
            });
        }
        if unauthorized {
            status = 401;
        }
        cursor += if failure.is_some() {
            post_us / 3
        } else {
            post_us
        };
        if failure.is_some() {
            status = 500;
        }
        let duration_us = (cursor - start_us).max(1);
        self.metrics.add_busy(
            service,
            replica,
            (own_ms * 1000.0) as i64 + ((extra_ms * 1000.0) as i64),
        );

        let mut attributes = Vec::new();
        if let Entry::Http { method, route } = handler.entry {
            attributes.push(("http.method", method.to_string()));
            attributes.push(("http.route", route.to_string()));
            attributes.push(("http.status_code", status.to_string()));
            let exception = failure
                .as_ref()
                .map_or("None", |f| f.exception.simple_name());
            self.metrics.record_http(
                service,
                replica,
                method,
                route,
                status,
                exception,
                duration_us as f64 / 1e6,
            );
        }
        if let Entry::Consumer { queue } = handler.entry {
            attributes.push(("messaging.system", "rabbitmq".to_string()));
            attributes.push(("messaging.destination", queue.to_string()));
            attributes.push(("messaging.operation", "process".to_string()));
        }
        let error = failure.as_ref().map(|f| f.exception.clone());
        self.log_handler(
            handler,
            &name,
            service,
            replica,
            trace_id,
            span_id,
            cursor,
            duration_us,
            status,
            error.as_ref(),
        );
        self.spans.push(SimSpan {
            trace_id,
            span_id,
            parent_id,
            service,
            replica,
            name,
            kind,
            start_us,
            duration_us,
            error,
            peer: None,
            attributes,
        });
        Done {
            end_us: cursor,
            status,
            failure,
        }
    }

    /// Latency multiplier, extra milliseconds and own exception of one handler run.
    fn own_behaviour(
        &mut self,
        name: &str,
        service: usize,
        replica: usize,
        at_us: i64,
    ) -> (f64, f64, Option<Exception>) {
        let mut multiplier = 1.0;
        let mut extra_ms = 0.0;
        let mut error = None;
        if let Some(fault) = self.active_fault(at_us).cloned()
            && fault.on(service, replica)
            && fault.spec.operation.is_none_or(|op| op == name)
        {
            match fault.spec.effect {
                Effect::Latency { extra_ms: extra } => extra_ms += self.lognormal(extra, 0.25),
                Effect::Errors {
                    rate,
                    exception,
                    message,
                } => {
                    if self.chance(rate) {
                        error = Some(Exception::new(exception, message));
                    }
                }
                Effect::MemoryLeak => {
                    let progress = fault.progress(at_us);
                    multiplier *= 1.0 + 2.5 * progress;
                    if self.chance(0.1 + 0.5 * progress) {
                        extra_ms += self.lognormal(150.0 + 900.0 * progress, 0.4);
                    }
                }
                Effect::CpuSaturation => multiplier *= self.lognormal(4.0, 0.3),
                Effect::CrashLoop => multiplier *= 1.6,
                _ => {}
            }
        }
        if error.is_none() && self.chance(BACKGROUND_ERROR_RATE) {
            let (class, message) = match self.rng.random_range(0..3) {
                0 => (
                    "java.lang.IllegalArgumentException",
                    "amount must be positive",
                ),
                1 => (
                    "org.springframework.dao.DuplicateKeyException",
                    "Duplicate entry for key 'uk_biz_no'",
                ),
                _ => ("java.util.ConcurrentModificationException", "null"),
            };
            error = Some(Exception::new(class, message));
        }
        (multiplier, extra_ms, error)
    }

    /// The exception a handler raises when one of its calls failed.
    fn propagate(&mut self, handler: &Handler, step: &Step, child: Failure) -> Failure {
        let exception = match step {
            Step::Http(callee) => {
                let (method, route) = match callee.entry {
                    Entry::Http { method, route } => (method, route),
                    _ => ("POST", "/"),
                };
                let url = format!("http://{}{route}", callee.service);
                if handler.service == "zuul-gateway" {
                    if child.no_response {
                        Exception::new(
                            "com.netflix.zuul.exception.ZuulException",
                            format!("Forwarding error: {}", child.exception.message),
                        )
                    } else {
                        Exception::new(
                            "com.netflix.zuul.exception.ZuulException",
                            format!(
                                "Filter threw Exception: upstream {} returned 500",
                                callee.service
                            ),
                        )
                    }
                } else if child.no_response {
                    Exception::new(
                        "feign.RetryableException",
                        format!("{} executing {method} {url}", child.exception.message),
                    )
                } else {
                    Exception::new(
                        "feign.FeignException$InternalServerError",
                        format!(
                            "[500] during [{method}] to [{url}] [{}Client#call]",
                            crate::fleet::camel(callee.service)
                        ),
                    )
                }
            }
            _ => child.exception,
        };
        Failure {
            exception,
            no_response: false,
        }
    }

    fn run_step(&mut self, step: &Step, caller: Caller, start_us: i64) -> Done {
        match step {
            Step::Http(callee) => self.call_http(callee, caller, start_us),
            Step::Dependency {
                dep,
                operation,
                statement,
                target,
                median_ms,
            } => self.call_dependency(
                *dep, operation, statement, target, *median_ms, caller, start_us,
            ),
            Step::Publish { queue, consumer } => self.publish(*queue, consumer, caller, start_us),
            Step::Repeat { min, max, step } => {
                let count = self.rng.random_range(*min..=*max);
                let mut done = Done {
                    end_us: start_us,
                    status: 200,
                    failure: None,
                };
                for _ in 0..count {
                    done = self.run_step(step, caller, done.end_us);
                    if done.failure.is_some() {
                        break;
                    }
                }
                done
            }
        }
    }

    fn call_http(&mut self, callee: &Handler, caller: Caller, start_us: i64) -> Done {
        let callee_service = service_index(callee.service).unwrap_or(0);
        let (method, route) = match callee.entry {
            Entry::Http { method, route } => (method, route),
            _ => ("POST", "/"),
        };
        let timeout_us = if SERVICES[caller.service] == "zuul-gateway" {
            GATEWAY_TIMEOUT_US
        } else {
            FEIGN_TIMEOUT_US
        };
        let partitioned = self.active_fault(start_us).is_some_and(|fault| {
            matches!(fault.spec.effect, Effect::Partition { caller: from } if SERVICES[caller.service] == from)
                && fault.service == Some(callee_service)
        });
        let first = self.rng.random_range(0..REPLICAS);
        let mut cursor = start_us;
        let mut last_failure = None;
        for attempt in 0..REPLICAS {
            let replica = (first + attempt) % REPLICAS;
            let client_id = self.span_id();
            let pod = self.pod(callee_service, replica).to_string();
            let mut attributes = vec![
                ("http.method", method.to_string()),
                ("http.url", format!("http://{}{route}", callee.service)),
                ("peer.service", callee.service.to_string()),
                ("server.address", pod.clone()),
                ("server.port", "8080".to_string()),
            ];
            let unreachable = if partitioned {
                Some((
                    self.lognormal(1.0, 0.02) * CONNECT_TIMEOUT_US as f64,
                    Exception::new("java.net.SocketTimeoutException", "connect timed out"),
                ))
            } else if self.crash_down(callee_service, replica, cursor) {
                Some((
                    self.lognormal(1500.0, 0.3),
                    Exception::new(
                        "java.net.ConnectException",
                        "Connection refused (Connection refused)",
                    ),
                ))
            } else {
                None
            };
            if let Some((duration_us, exception)) = unreachable {
                let duration_us = duration_us.max(1.0) as i64;
                self.push_client(
                    caller,
                    client_id,
                    callee.span_name(),
                    cursor,
                    duration_us,
                    Some(exception.clone()),
                    callee.service,
                    attributes,
                );
                let thread = self.thread();
                self.logs.push(SimLog {
                    time_us: cursor + duration_us,
                    service: caller.service,
                    replica: caller.replica,
                    level: Level::Warn,
                    logger: "c.n.l.reactive.LoadBalancerCommand".to_string(),
                    thread,
                    message: format!(
                        "Request to {pod} failed ({}), retrying on next server",
                        exception.message
                    ),
                    trace_id: Some(caller.trace_id),
                    span_id: Some(caller.span_id),
                    exception: None,
                });
                cursor += duration_us;
                last_failure = Some(Failure {
                    exception,
                    no_response: true,
                });
                continue;
            }
            let out_us = self.lognormal(600.0, 0.4) as i64;
            let back_us = self.lognormal(600.0, 0.4) as i64;
            let server_id = self.span_id();
            let server = self.run_handler(
                callee,
                callee_service,
                replica,
                caller.trace_id,
                server_id,
                Some(client_id),
                cursor + out_us,
                SpanKind::Server,
            );
            let mut end_us = server.end_us + back_us;
            let mut done = Done {
                end_us,
                status: server.status,
                failure: server.failure.map(|failure| Failure {
                    exception: Exception::new(
                        "feign.FeignException$InternalServerError",
                        format!("[500] {}", failure.exception.message),
                    ),
                    no_response: false,
                }),
            };
            if end_us - cursor > timeout_us {
                end_us = cursor + timeout_us;
                done = Done {
                    end_us,
                    status: 0,
                    failure: Some(Failure {
                        exception: Exception::new(
                            "java.net.SocketTimeoutException",
                            "Read timed out",
                        ),
                        no_response: true,
                    }),
                };
            } else {
                attributes.push(("http.status_code", server.status.to_string()));
            }
            let error = done.failure.as_ref().map(|f| f.exception.clone());
            self.push_client(
                caller,
                client_id,
                callee.span_name(),
                cursor,
                end_us - cursor,
                error,
                callee.service,
                attributes,
            );
            return done;
        }
        Done {
            end_us: cursor,
            status: 0,
            failure: last_failure,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn push_client(
        &mut self,
        caller: Caller,
        span_id: [u8; 8],
        name: String,
        start_us: i64,
        duration_us: i64,
        error: Option<Exception>,
        peer: &str,
        attributes: Vec<(&'static str, String)>,
    ) {
        self.spans.push(SimSpan {
            trace_id: caller.trace_id,
            span_id,
            parent_id: Some(caller.span_id),
            service: caller.service,
            replica: caller.replica,
            name,
            kind: SpanKind::Client,
            start_us,
            duration_us: duration_us.max(1),
            error,
            peer: Some(peer.to_string()),
            attributes,
        });
    }

    #[allow(clippy::too_many_arguments)]
    fn call_dependency(
        &mut self,
        dep: Dep,
        operation: &str,
        statement: &str,
        target: &str,
        median_ms: f64,
        caller: Caller,
        start_us: i64,
    ) -> Done {
        let fault = self.active_fault(start_us).cloned();
        let on_caller = fault
            .as_ref()
            .is_some_and(|f| f.on(caller.service, caller.replica));
        let mut cursor = start_us;
        let mut duration_ms = self.lognormal(median_ms, 0.5);
        let mut error = None;
        if dep == Dep::Mysql {
            if let Some(fault) = &fault
                && on_caller
                && fault.spec.effect == Effect::PoolExhaustion
            {
                self.metrics.pool_wait(caller.service, caller.replica);
                if self.chance(0.7) {
                    self.metrics.pool_timeout(caller.service, caller.replica);
                    return Done {
                        end_us: start_us + POOL_TIMEOUT_US + self.rng.random_range(0..5_000),
                        status: 0,
                        failure: Some(Failure {
                            exception: Exception::new(
                                "java.sql.SQLTransientConnectionException",
                                "HikariPool-1 - Connection is not available, request timed out after 3000ms.",
                            ),
                            no_response: false,
                        }),
                    };
                }
                cursor += self.lognormal(1800.0, 0.3) as i64 * 1000;
            }
            if let Some(fault) = &fault
                && on_caller
                && fault.spec.operation.is_none_or(|op| op == operation)
            {
                match fault.spec.effect {
                    Effect::DbLatency { extra_ms } => duration_ms += self.lognormal(extra_ms, 0.3),
                    Effect::DbErrors { rate } if self.chance(rate) => {
                        error = Some(Exception::new(
                            "com.mysql.cj.jdbc.exceptions.MySQLTransactionRollbackException",
                            "Deadlock found when trying to get lock; try restarting transaction",
                        ));
                    }
                    _ => {}
                }
            }
            if error.is_none() && self.chance(0.0003) {
                error = Some(Exception::new(
                    "com.mysql.cj.jdbc.exceptions.CommunicationsException",
                    "Communications link failure",
                ));
            }
        }
        if let Some(fault) = &fault {
            match fault.spec.effect {
                Effect::DependencyDown(down) if down == dep => {
                    duration_ms = self.lognormal(3.0, 0.4);
                    error = Some(Exception::new(
                        "org.springframework.data.redis.RedisConnectionFailureException",
                        format!(
                            "Unable to connect to Redis; nested exception is io.lettuce.core.RedisConnectionException: Unable to connect to {}:6379",
                            dep.address()
                        ),
                    ));
                }
                Effect::DependencyLatency(slow, extra_ms) if slow == dep => {
                    duration_ms += self.lognormal(extra_ms, 0.3);
                }
                _ => {}
            }
        }
        let duration_us = ((duration_ms * 1000.0) as i64).max(1);
        if dep == Dep::Mysql {
            self.metrics
                .add_db(caller.service, caller.replica, duration_us);
        }
        let mut attributes = vec![
            ("peer.service", dep.name().to_string()),
            ("server.address", dep.address().to_string()),
        ];
        match dep {
            Dep::Mysql | Dep::Redis => {
                attributes.push(("db.system", dep.name().to_string()));
                attributes.push(("db.name", target.to_string()));
                attributes.push(("db.statement", statement.to_string()));
                attributes.push((
                    "db.operation",
                    operation.split(' ').next().unwrap_or(operation).to_string(),
                ));
            }
            Dep::Minio => {
                attributes.push(("rpc.system", "aws-api".to_string()));
                attributes.push(("rpc.method", operation.to_string()));
                attributes.push(("aws.s3.bucket", target.to_string()));
                attributes.push(("aws.s3.key", statement.to_string()));
            }
            Dep::Rabbitmq => {}
        }
        let span_id = self.span_id();
        self.push_client(
            caller,
            span_id,
            operation.to_string(),
            cursor,
            duration_us,
            error.clone(),
            dep.name(),
            attributes,
        );
        Done {
            end_us: cursor + duration_us,
            status: 200,
            failure: error.map(|exception| Failure {
                exception,
                no_response: false,
            }),
        }
    }

    fn publish(
        &mut self,
        queue: &'static str,
        consumer: &Handler,
        caller: Caller,
        start_us: i64,
    ) -> Done {
        let span_id = self.span_id();
        let duration_us = (self.lognormal(1.5, 0.4) * 1000.0) as i64 + 1;
        self.spans.push(SimSpan {
            trace_id: caller.trace_id,
            span_id,
            parent_id: Some(caller.span_id),
            service: caller.service,
            replica: caller.replica,
            name: format!("publish {queue}"),
            kind: SpanKind::Producer,
            start_us,
            duration_us,
            error: None,
            peer: Some(Dep::Rabbitmq.name().to_string()),
            attributes: vec![
                ("messaging.system", "rabbitmq".to_string()),
                ("messaging.destination", queue.to_string()),
                ("messaging.rabbitmq.routing_key", queue.to_string()),
                ("messaging.operation", "publish".to_string()),
                ("peer.service", Dep::Rabbitmq.name().to_string()),
                ("server.address", Dep::Rabbitmq.address().to_string()),
            ],
        });
        self.metrics.published(queue);
        let consumer_service = service_index(consumer.service).unwrap_or(0);
        let stuck = self.active_fault(start_us).is_some_and(|fault| {
            fault.service == Some(consumer_service)
                && matches!(fault.spec.effect, Effect::ConsumerStuck { queue: stuck } if stuck.is_none_or(|q| q == queue))
        });
        if !stuck {
            let delivered_us = start_us + duration_us + (self.lognormal(6.0, 0.6) * 1000.0) as i64;
            let replica = self.rng.random_range(0..REPLICAS);
            if !self.crash_down(consumer_service, replica, delivered_us) {
                self.metrics.consumed(queue);
                let consumer_id = self.span_id();
                self.run_handler(
                    consumer,
                    consumer_service,
                    replica,
                    caller.trace_id,
                    consumer_id,
                    Some(span_id),
                    delivered_us,
                    SpanKind::Consumer,
                );
            }
        }
        Done {
            end_us: start_us + duration_us,
            status: 200,
            failure: None,
        }
    }

    fn thread(&mut self) -> String {
        format!("http-nio-8080-exec-{}", self.rng.random_range(1..=200))
    }

    #[allow(clippy::too_many_arguments)]
    fn log_handler(
        &mut self,
        handler: &Handler,
        name: &str,
        service: usize,
        replica: usize,
        trace_id: [u8; 16],
        span_id: [u8; 8],
        end_us: i64,
        duration_us: i64,
        status: u16,
        error: Option<&Exception>,
    ) {
        let thread = match handler.entry {
            Entry::Http { .. } => self.thread(),
            Entry::Consumer { .. } => format!(
                "org.springframework.amqp.rabbit.RabbitListenerEndpointContainer#0-{}",
                self.rng.random_range(1..=4)
            ),
            Entry::Scheduled { .. } => {
                format!("xxl-job, JobThread-{}", self.rng.random_range(1..=20))
            }
        };
        let elapsed_ms = duration_us / 1000;
        let (level, message) = match (error, status) {
            (Some(exception), _) => (
                Level::Error,
                match handler.entry {
                    Entry::Consumer { queue } => format!(
                        "Listener failed on queue {queue}, message will be requeued: {}: {}",
                        exception.class, exception.message
                    ),
                    _ => format!(
                        "Servlet.service() for servlet [dispatcherServlet] threw exception [Request processing failed; nested exception is {}: {}] with root cause",
                        exception.class, exception.message
                    ),
                },
            ),
            (None, 400..=499) => (
                Level::Warn,
                format!("{name} rejected status={status} elapsed={elapsed_ms}ms: invalid_token"),
            ),
            (None, _) => (
                Level::Info,
                match handler.entry {
                    Entry::Consumer { queue } => {
                        format!("Consumed message from {queue} in {elapsed_ms}ms")
                    }
                    Entry::Scheduled { task } => format!("{task} finished in {elapsed_ms}ms"),
                    Entry::Http { .. } => {
                        format!("{name} completed status={status} elapsed={elapsed_ms}ms")
                    }
                },
            ),
        };
        self.logs.push(SimLog {
            time_us: end_us,
            service,
            replica,
            level,
            logger: handler.logger(),
            thread,
            message,
            trace_id: Some(trace_id),
            span_id: Some(span_id),
            exception: error.cloned(),
        });
    }
}

/// Whether a crash-looping replica is down at `at_us`.
pub(crate) fn crash_down(
    fault: Option<&ActiveFault>,
    service: usize,
    replica: usize,
    at_us: i64,
) -> bool {
    fault.is_some_and(|fault| {
        fault.active(at_us)
            && fault.spec.effect == Effect::CrashLoop
            && fault.on(service, replica)
            && (at_us - fault.start_us) % CRASH_CYCLE_US >= CRASH_UP_US
    })
}

/// The daily load shape: 1 on average, 0.5 at night, 1.5 mid-afternoon (UTC+8).
pub(crate) fn load_shape(at_us: i64) -> f64 {
    let day_us = 86_400_000_000_i64;
    let local_hour = ((at_us + 8 * 3_600_000_000).rem_euclid(day_us)) as f64 / 3_600_000_000.0;
    1.0 + 0.5 * ((local_hour - 9.0) / 24.0 * std::f64::consts::TAU).sin()
}
