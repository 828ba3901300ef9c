//! The calls a handler makes: HTTP to another service (with retries, timeouts,
//! partitions and crash-looping targets), MySQL/Redis/MinIO client spans (with pool
//! exhaustion, slow queries, deadlocks, outages) and RabbitMQ publishes with their
//! asynchronous consumer.

use rand::Rng as _;

use super::{
    CONNECT_TIMEOUT_US, Caller, Done, Engine, Exception, FEIGN_TIMEOUT_US, Failure,
    GATEWAY_TIMEOUT_US, Level, POOL_TIMEOUT_US, SimLog, SimSpan, SpanKind,
};
use crate::fleet::{Dep, Entry, Handler, REPLICAS, SERVICES, service_index};
use crate::scenario::Effect;

impl Engine {
    pub(super) fn call_http(&mut self, callee: &Handler, caller: Caller, start_us: i64) -> Done {
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
    pub(super) fn push_client(
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
    pub(super) fn call_dependency(
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

    pub(super) fn publish(
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
}
