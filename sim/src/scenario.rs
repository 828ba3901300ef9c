//! The fault catalogue: each scenario names what breaks (service, replica, operation,
//! edge or dependency), how, and the ground truth the analysis should find.

use serde::{Deserialize, Serialize};

use crate::fleet::{Dep, pod_name, service_index};

/// One fault scenario of the catalogue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scenario {
    /// Stable kebab-case name.
    pub name: String,
    /// What is injected and what it should look like.
    pub description: String,
}

/// Ground truth of the injected fault, known before the run starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroundTruth {
    /// The scenario name.
    pub scenario: String,
    /// The service at fault (root cause), or the dependency (`redis`, `minio`) when the
    /// dependency itself fails for every caller.
    pub service: String,
    /// The replica (pod name), when one replica is the problem.
    pub instance: Option<String>,
    /// The failing hop's caller service, when the fault is on an edge.
    pub caller: Option<String>,
    /// The failing hop's callee (the service, or a dependency such as `mysql`).
    pub callee: String,
    /// The failing operation (span name) when specific.
    pub operation: Option<String>,
    /// `errors` | `latency` | `saturation` | `unavailability` | `stuck`.
    pub kind: String,
    /// Fault start, epoch milliseconds.
    pub start_ms: i64,
    /// Fault end, epoch milliseconds.
    pub end_ms: i64,
}

impl GroundTruth {
    /// The ground truth as one line of JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// What a fault does.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Effect {
    /// Own processing of the service (replica, operation) slowed by about `extra_ms`.
    Latency { extra_ms: f64 },
    /// A share of requests of the service (replica, operation) fail with an exception.
    Errors {
        rate: f64,
        exception: &'static str,
        message: &'static str,
    },
    /// MySQL calls of the service (matching `operation` if set) slowed by `extra_ms`.
    DbLatency { extra_ms: f64 },
    /// A share of MySQL calls of the service fail.
    DbErrors { rate: f64 },
    /// The HikariCP pool of the service is exhausted.
    PoolExhaustion,
    /// Every call to the dependency fails.
    DependencyDown(Dep),
    /// Every call to the dependency is slow.
    DependencyLatency(Dep, f64),
    /// The service's RabbitMQ listener (on `queue`, or all) stops consuming.
    ConsumerStuck { queue: Option<&'static str> },
    /// The replica crashes every minute and refuses connections while down.
    CrashLoop,
    /// The replica's heap fills up: GC pauses grow, latency follows.
    MemoryLeak,
    /// The replica's CPU is saturated: everything on it is slow.
    CpuSaturation,
    /// Calls from `caller` to the service cannot connect.
    Partition { caller: &'static str },
}

/// A catalogue entry.
#[derive(Debug, Clone)]
pub(crate) struct FaultSpec {
    pub name: &'static str,
    pub description: &'static str,
    /// The service the effect applies to (for dependency faults: unused, see effect).
    pub service: &'static str,
    pub replica: Option<usize>,
    /// Span name the effect is limited to.
    pub operation: Option<&'static str>,
    pub effect: Effect,
}

impl FaultSpec {
    /// The failure kind reported in ground truth.
    pub fn kind(&self) -> &'static str {
        match self.effect {
            Effect::Latency { .. }
            | Effect::DbLatency { .. }
            | Effect::DependencyLatency(..)
            | Effect::MemoryLeak => "latency",
            Effect::Errors { .. } | Effect::DbErrors { .. } => "errors",
            Effect::PoolExhaustion | Effect::CpuSaturation => "saturation",
            Effect::DependencyDown(_) | Effect::CrashLoop | Effect::Partition { .. } => {
                "unavailability"
            }
            Effect::ConsumerStuck { .. } => "stuck",
        }
    }

    /// The ground truth for a fault window.
    pub fn truth(&self, start_ms: i64, end_ms: i64) -> GroundTruth {
        let own = self.service.to_string();
        let (service, caller, callee) = match &self.effect {
            Effect::DbLatency { .. } | Effect::DbErrors { .. } => {
                (own.clone(), Some(own), Dep::Mysql.name().to_string())
            }
            Effect::DependencyDown(dep) | Effect::DependencyLatency(dep, _) => {
                (dep.name().to_string(), None, dep.name().to_string())
            }
            Effect::Partition { caller } => (own.clone(), Some(caller.to_string()), own),
            _ => (own.clone(), None, own),
        };
        let operation = match &self.effect {
            Effect::ConsumerStuck { queue: Some(queue) } => Some(format!("process {queue}")),
            _ => self.operation.map(str::to_string),
        };
        GroundTruth {
            scenario: self.name.to_string(),
            service,
            instance: self.replica.map(|replica| pod_name(self.service, replica)),
            caller,
            callee,
            operation,
            kind: self.kind().to_string(),
            start_ms,
            end_ms,
        }
    }
}

const fn fault(
    name: &'static str,
    description: &'static str,
    service: &'static str,
    effect: Effect,
) -> FaultSpec {
    FaultSpec {
        name,
        description,
        service,
        replica: None,
        operation: None,
        effect,
    }
}

fn on_replica(mut spec: FaultSpec, replica: usize) -> FaultSpec {
    spec.replica = Some(replica);
    spec
}

fn on_operation(mut spec: FaultSpec, operation: &'static str) -> FaultSpec {
    spec.operation = Some(operation);
    spec
}

/// Every fault, in catalogue order.
pub(crate) fn specs() -> Vec<FaultSpec> {
    vec![
        fault(
            "latency-risk",
            "risk answers ~900 ms slower on every operation; subscriptions and transfers slow down at the gateway",
            "risk",
            Effect::Latency { extra_ms: 900.0 },
        ),
        fault(
            "latency-ta",
            "the transfer agent (ta) answers ~1.2 s slower; redemptions and regulatory reports slow down",
            "ta",
            Effect::Latency { extra_ms: 1200.0 },
        ),
        fault(
            "errors-funding",
            "funding fails 35% of its requests with HTTP 500 (IllegalStateException)",
            "funding",
            Effect::Errors {
                rate: 0.35,
                exception: "java.lang.IllegalStateException",
                message: "subscription quota state inconsistent",
            },
        ),
        fault(
            "errors-invoicing",
            "invoicing fails 50% of its requests with HTTP 500 (tax service client bug)",
            "invoicing",
            Effect::Errors {
                rate: 0.5,
                exception: "com.trust.invoicing.TaxCalculationException",
                message: "tax rate not found for category",
            },
        ),
        on_operation(
            fault(
                "exception-project-get",
                "project throws NullPointerException on GET /api/projects/{id} only (60%); its other operations are fine",
                "project",
                Effect::Errors {
                    rate: 0.6,
                    exception: "java.lang.NullPointerException",
                    message: "Cannot invoke \"com.trust.project.domain.Product.getRiskLevel()\" because \"product\" is null",
                },
            ),
            "GET /api/projects/{id}",
        ),
        on_operation(
            fault(
                "exception-regulatory-filing",
                "regulatory-reporting throws on POST /api/regulatory/filings only (70%); ABS issuance fails",
                "regulatory-reporting",
                Effect::Errors {
                    rate: 0.7,
                    exception: "com.fasterxml.jackson.databind.exc.InvalidFormatException",
                    message: "Cannot deserialize value of type `java.time.LocalDate` from String \"2026/11/24\"",
                },
            ),
            "POST /api/regulatory/filings",
        ),
        on_operation(
            fault(
                "slow-mysql-finance",
                "a slow query on the trust_finance schema (missing index): finance's SELECT ledger_entry calls take ~1.5 s",
                "finance",
                Effect::DbLatency { extra_ms: 1500.0 },
            ),
            "SELECT trust_finance.ledger_entry",
        ),
        fault(
            "slow-mysql-family-trust",
            "every MySQL call of family-trust takes ~800 ms more (table lock on trust_family)",
            "family-trust",
            Effect::DbLatency { extra_ms: 800.0 },
        ),
        fault(
            "pool-exhaustion-interest-settlement",
            "interest-settlement's HikariCP pool is exhausted: connections wait, most time out after 3 s",
            "interest-settlement",
            Effect::PoolExhaustion,
        ),
        fault(
            "pool-exhaustion-funding",
            "funding's HikariCP pool is exhausted (leaked connections): pending > 0, SQLTransientConnectionException",
            "funding",
            Effect::PoolExhaustion,
        ),
        fault(
            "redis-down",
            "Redis is unreachable: every Redis client span fails, token checks fail, everything behind the gateway errors",
            "redis",
            Effect::DependencyDown(Dep::Redis),
        ),
        fault(
            "minio-slow",
            "MinIO answers ~2.5 s slower: contract signing, reports and invoices mails slow down",
            "minio",
            Effect::DependencyLatency(Dep::Minio, 2500.0),
        ),
        fault(
            "consumer-stuck-report",
            "report's RabbitMQ listener on report.generate is stuck: the queue grows, no consumer spans, no errors upstream",
            "report",
            Effect::ConsumerStuck {
                queue: Some("report.generate"),
            },
        ),
        fault(
            "consumer-stuck-mail",
            "mail's RabbitMQ listeners are stuck (thread pool deadlock): its queues grow silently",
            "mail",
            Effect::ConsumerStuck { queue: None },
        ),
        on_replica(
            fault(
                "crashloop-bank-transfer-1",
                "one bank-transfer replica crash-loops (OOM on start-up): up flaps, connections refused while down",
                "bank-transfer",
                Effect::CrashLoop,
            ),
            1,
        ),
        on_replica(
            fault(
                "crashloop-workflow-engine-0",
                "one workflow-engine replica crash-loops: up flaps, connections refused while down",
                "workflow-engine",
                Effect::CrashLoop,
            ),
            0,
        ),
        on_replica(
            fault(
                "memory-leak-asset-0",
                "one asset replica leaks memory: old gen fills, GC pauses grow, its latency grows",
                "asset",
                Effect::MemoryLeak,
            ),
            0,
        ),
        on_replica(
            fault(
                "cpu-saturation-rules-engine-1",
                "one rules-engine replica is CPU saturated (noisy neighbour): it is ~4x slower, its sibling is fine",
                "rules-engine",
                Effect::CpuSaturation,
            ),
            1,
        ),
        on_replica(
            fault(
                "cpu-saturation-valuation-0",
                "one valuation replica is CPU saturated: ~4x slower",
                "valuation",
                Effect::CpuSaturation,
            ),
            0,
        ),
        on_replica(
            fault(
                "bad-deploy-sales-0",
                "a bad deploy of one sales replica: 60% NoSuchMethodError on that pod only",
                "sales",
                Effect::Errors {
                    rate: 0.6,
                    exception: "java.lang.NoSuchMethodError",
                    message: "'void com.trust.common.dto.OrderDTO.setChannel(java.lang.String)'",
                },
            ),
            0,
        ),
        on_replica(
            fault(
                "bad-deploy-company-info-1",
                "a bad deploy of one company-info replica: 70% ClassCastException on that pod only",
                "company-info",
                Effect::Errors {
                    rate: 0.7,
                    exception: "java.lang.ClassCastException",
                    message: "class java.lang.Long cannot be cast to class java.lang.Integer",
                },
            ),
            1,
        ),
        fault(
            "partition-funding-asset",
            "a network partition between funding and asset: funding's calls to asset time out on connect; other callers of asset are fine",
            "asset",
            Effect::Partition { caller: "funding" },
        ),
        fault(
            "partition-open-api-company-info",
            "a network partition between open-api and company-info: connect timeouts on that edge only",
            "company-info",
            Effect::Partition { caller: "open-api" },
        ),
        fault(
            "cascade-valuation-slow",
            "valuation becomes ~6 s slow: asset's calls time out (5 s), funding and portal fail, the gateway returns errors; the cause is valuation latency",
            "valuation",
            Effect::Latency { extra_ms: 6000.0 },
        ),
        fault(
            "cascade-interest-settlement-db-errors",
            "interest-settlement's MySQL calls deadlock (60%): errors surface at portal and the gateway",
            "interest-settlement",
            Effect::DbErrors { rate: 0.6 },
        ),
        fault(
            "sms-errors",
            "the SMS provider behind sms fails: sms returns 500 on 50% of requests, contract signing fails",
            "sms",
            Effect::Errors {
                rate: 0.5,
                exception: "com.trust.sms.SmsProviderException",
                message: "provider returned 503 Service Unavailable",
            },
        ),
        fault(
            "e-signature-latency",
            "e-signature answers ~2 s slower (CA certificate service slow)",
            "e-signature",
            Effect::Latency { extra_ms: 2000.0 },
        ),
        fault(
            "oauth2-auth-errors",
            "oauth2-auth fails 60% of token checks with 500: every gateway flow fails, oauth2-auth is the cause",
            "oauth2-auth",
            Effect::Errors {
                rate: 0.6,
                exception: "org.springframework.security.oauth2.common.exceptions.OAuth2Exception",
                message: "token store read failed: JWK set decode error",
            },
        ),
    ]
}

/// The public catalogue, in a stable order.
pub fn catalogue() -> Vec<Scenario> {
    specs()
        .into_iter()
        .map(|spec| Scenario {
            name: spec.name.to_string(),
            description: spec.description.to_string(),
        })
        .collect()
}

/// The spec of a scenario name.
pub(crate) fn find(name: &str) -> Option<FaultSpec> {
    specs().into_iter().find(|spec| spec.name == name)
}

/// Whether the spec's targets exist in the fleet (used by tests and at plan time).
pub(crate) fn targets_exist(spec: &FaultSpec) -> bool {
    let service_ok = match &spec.effect {
        Effect::DependencyDown(_) | Effect::DependencyLatency(..) => true,
        Effect::Partition { caller } => {
            service_index(caller).is_some() && service_index(spec.service).is_some()
        }
        _ => service_index(spec.service).is_some(),
    };
    service_ok
        && spec
            .replica
            .is_none_or(|replica| replica < crate::fleet::REPLICAS)
}
