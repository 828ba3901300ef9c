//! The simulated fleet: 27 Spring Cloud services × 2 replicas, their dependencies
//! (MySQL, Redis, RabbitMQ, MinIO) and the business flows that cross them.
//!
//! A flow is a call tree of [`Handler`]s (server or consumer spans) and [`Step`]s
//! (HTTP calls, database/cache/object-store calls, RabbitMQ publishes with their
//! consumer). The tree is static; the engine walks it per request and decides
//! latencies, replicas and failures.

use std::sync::OnceLock;

/// Replicas per service.
pub const REPLICAS: usize = 2;

/// The 27 services, in a stable order.
pub const SERVICES: [&str; 27] = [
    "zuul-gateway",
    "oauth2-auth",
    "eureka-registry",
    "project",
    "funding",
    "asset",
    "interest-settlement",
    "finance",
    "ta",
    "sales",
    "family-trust",
    "abs",
    "workflow-engine",
    "rules-engine",
    "risk",
    "regulatory-reporting",
    "report",
    "e-signature",
    "sms",
    "mail",
    "invoicing",
    "bank-transfer",
    "valuation",
    "company-info",
    "open-api",
    "job-scheduler",
    "portal",
];

/// The index of a service in [`SERVICES`].
pub fn service_index(name: &str) -> Option<usize> {
    SERVICES.iter().position(|service| *service == name)
}

/// The pod name of a replica, e.g. `funding-7d9f-1`: the same string in span, log and
/// metric data. The middle part is a stable hash of the service name, like the
/// ReplicaSet hash of a Kubernetes Deployment.
pub fn pod_name(service: &str, replica: usize) -> String {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in service.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    format!("{service}-{:04x}-{replica}", hash & 0xffff)
}

/// Every pod name of the fleet.
pub fn all_pods() -> Vec<String> {
    SERVICES
        .iter()
        .flat_map(|service| (0..REPLICAS).map(move |replica| pod_name(service, replica)))
        .collect()
}

/// A dependency that appears only as client spans (no server spans of its own).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dep {
    /// MySQL 8 (one instance, one schema per service).
    Mysql,
    /// Redis (cache, token store, SMS codes).
    Redis,
    /// RabbitMQ (async flows).
    Rabbitmq,
    /// MinIO (contracts, reports).
    Minio,
}

impl Dep {
    /// The name used as `peer.service` and in ground truth.
    pub fn name(self) -> &'static str {
        match self {
            Dep::Mysql => "mysql",
            Dep::Redis => "redis",
            Dep::Rabbitmq => "rabbitmq",
            Dep::Minio => "minio",
        }
    }

    /// The host the clients connect to.
    pub fn address(self) -> &'static str {
        match self {
            Dep::Mysql => "mysql-primary.trust-prod.svc",
            Dep::Redis => "redis-master.trust-prod.svc",
            Dep::Rabbitmq => "rabbitmq.trust-prod.svc",
            Dep::Minio => "minio.trust-prod.svc",
        }
    }
}

/// What a handler is: an HTTP endpoint or a RabbitMQ listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// `@RequestMapping` endpoint.
    Http {
        /// HTTP method.
        method: &'static str,
        /// Route template (Micrometer `uri` label).
        route: &'static str,
    },
    /// `@RabbitListener` on a queue.
    Consumer {
        /// The queue.
        queue: &'static str,
    },
    /// A scheduled task (`@Scheduled`), a root span of kind internal.
    Scheduled {
        /// The task name.
        task: &'static str,
    },
}

/// One operation of a service: its server (or consumer) span and the steps it runs.
#[derive(Debug, Clone)]
pub struct Handler {
    /// The service.
    pub service: &'static str,
    /// What triggers it.
    pub entry: Entry,
    /// Median own processing time, milliseconds.
    pub self_ms: f64,
    /// The calls it makes, in order.
    pub steps: Vec<Step>,
}

impl Handler {
    /// The span name: `GET /api/x` for HTTP, `process <queue>` for consumers.
    pub fn span_name(&self) -> String {
        match &self.entry {
            Entry::Http { method, route } => format!("{method} {route}"),
            Entry::Consumer { queue } => format!("process {queue}"),
            Entry::Scheduled { task } => task.to_string(),
        }
    }

    /// The Java class that logs for this handler.
    pub fn logger(&self) -> String {
        let package = self.service.replace('-', "");
        match &self.entry {
            Entry::Http { .. } => format!("c.t.{package}.web.{}Controller", camel(self.service)),
            Entry::Consumer { .. } => format!("c.t.{package}.mq.{}Listener", camel(self.service)),
            Entry::Scheduled { .. } => format!("c.t.{package}.job.{}Job", camel(self.service)),
        }
    }
}

/// `interest-settlement` → `InterestSettlement`.
pub fn camel(service: &str) -> String {
    service
        .split('-')
        .map(|part| {
            let mut chars = part.chars();
            match chars.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
                None => String::new(),
            }
        })
        .collect()
}

/// A call made by a handler.
#[derive(Debug, Clone)]
pub enum Step {
    /// A synchronous HTTP call (Feign / Zuul route) to another service.
    Http(Box<Handler>),
    /// A call to MySQL, Redis or MinIO.
    Dependency {
        /// Which one.
        dep: Dep,
        /// The span name (`SELECT trust_funding.subscription`, `GET`, `PutObject`).
        operation: &'static str,
        /// `db.statement` (or the object key pattern for MinIO).
        statement: &'static str,
        /// `db.name` (schema), Redis db index, or MinIO bucket.
        target: &'static str,
        /// Median latency, milliseconds.
        median_ms: f64,
    },
    /// A RabbitMQ publish; the consumer runs asynchronously in the same trace.
    Publish {
        /// The queue (routing key).
        queue: &'static str,
        /// The listener.
        consumer: Box<Handler>,
    },
    /// The inner step repeated `min..=max` times (batch jobs).
    Repeat {
        /// Fewest repetitions.
        min: u32,
        /// Most repetitions.
        max: u32,
        /// The step.
        step: Box<Step>,
    },
}

/// A business flow: a weighted request type entering the fleet.
#[derive(Debug, Clone)]
pub struct Flow {
    /// Stable name.
    pub name: &'static str,
    /// Share of the gateway traffic (relative weight); 0 for scheduled flows.
    pub weight: f64,
    /// Scheduled flows fire every this many seconds instead.
    pub every_s: Option<u32>,
    /// The root handler.
    pub root: Handler,
    /// The root runs on a random service instead of `root.service` (registry renewals).
    pub any_origin: bool,
}

fn http(
    service: &'static str,
    method: &'static str,
    route: &'static str,
    self_ms: f64,
    steps: Vec<Step>,
) -> Step {
    Step::Http(Box::new(handler(service, method, route, self_ms, steps)))
}

fn handler(
    service: &'static str,
    method: &'static str,
    route: &'static str,
    self_ms: f64,
    steps: Vec<Step>,
) -> Handler {
    Handler {
        service,
        entry: Entry::Http { method, route },
        self_ms,
        steps,
    }
}

fn sql(operation: &'static str, schema: &'static str, statement: &'static str, ms: f64) -> Step {
    Step::Dependency {
        dep: Dep::Mysql,
        operation,
        statement,
        target: schema,
        median_ms: ms,
    }
}

fn redis(operation: &'static str, statement: &'static str) -> Step {
    Step::Dependency {
        dep: Dep::Redis,
        operation,
        statement,
        target: "0",
        median_ms: 0.6,
    }
}

fn minio(operation: &'static str, bucket: &'static str, key: &'static str, ms: f64) -> Step {
    Step::Dependency {
        dep: Dep::Minio,
        operation,
        statement: key,
        target: bucket,
        median_ms: ms,
    }
}

fn publish(queue: &'static str, service: &'static str, self_ms: f64, steps: Vec<Step>) -> Step {
    Step::Publish {
        queue,
        consumer: Box::new(Handler {
            service,
            entry: Entry::Consumer { queue },
            self_ms,
            steps,
        }),
    }
}

fn repeat(min: u32, max: u32, step: Step) -> Step {
    Step::Repeat {
        min,
        max,
        step: Box::new(step),
    }
}

/// Token check every gateway route does first.
fn auth_check() -> Step {
    http(
        "oauth2-auth",
        "POST",
        "/oauth/check_token",
        2.0,
        vec![redis("GET", "GET access_token:?")],
    )
}

fn valuation_latest() -> Step {
    http(
        "valuation",
        "GET",
        "/api/valuations/{assetId}/latest",
        6.0,
        vec![sql(
            "SELECT trust_valuation.valuation",
            "trust_valuation",
            "SELECT * FROM valuation WHERE asset_id = ? ORDER BY value_date DESC LIMIT 1",
            3.0,
        )],
    )
}

fn asset_nav() -> Step {
    http(
        "asset",
        "GET",
        "/api/assets/{id}/nav",
        5.0,
        vec![
            redis("GET", "GET asset:nav:?"),
            sql(
                "SELECT trust_asset.asset",
                "trust_asset",
                "SELECT id, code, status FROM asset WHERE id = ?",
                2.0,
            ),
            valuation_latest(),
        ],
    )
}

fn project_get() -> Step {
    http(
        "project",
        "GET",
        "/api/projects/{id}",
        4.0,
        vec![
            redis("GET", "GET project:?"),
            sql(
                "SELECT trust_project.project",
                "trust_project",
                "SELECT * FROM project WHERE id = ?",
                2.5,
            ),
        ],
    )
}

fn rules_evaluate() -> Step {
    http(
        "rules-engine",
        "POST",
        "/api/rules/evaluate",
        12.0,
        vec![redis("HGETALL", "HGETALL rules:active")],
    )
}

fn ledger_post() -> Step {
    http(
        "finance",
        "POST",
        "/api/ledger/entries",
        6.0,
        vec![sql(
            "INSERT trust_finance.ledger_entry",
            "trust_finance",
            "INSERT INTO ledger_entry (account_id, amount, direction, biz_no) VALUES (?, ?, ?, ?)",
            3.0,
        )],
    )
}

fn company_get() -> Step {
    http(
        "company-info",
        "GET",
        "/api/companies/{id}",
        4.0,
        vec![sql(
            "SELECT trust_company.company",
            "trust_company",
            "SELECT * FROM company WHERE id = ?",
            2.0,
        )],
    )
}

fn bank_transfer_post() -> Step {
    http(
        "bank-transfer",
        "POST",
        "/api/transfers",
        15.0,
        vec![
            sql(
                "INSERT trust_bank.transfer",
                "trust_bank",
                "INSERT INTO transfer (from_account, to_account, amount, status) VALUES (?, ?, ?, ?)",
                3.0,
            ),
            ledger_post(),
        ],
    )
}

fn gateway(method: &'static str, route: &'static str, steps: Vec<Step>) -> Handler {
    let mut all = vec![auth_check()];
    all.extend(steps);
    handler("zuul-gateway", method, route, 1.5, all)
}

fn build_flows() -> Vec<Flow> {
    vec![
        Flow {
            name: "login",
            weight: 8.0,
            every_s: None,
            any_origin: false,
            root: handler(
                "zuul-gateway",
                "POST",
                "/api/auth/login",
                1.5,
                vec![http(
                    "oauth2-auth",
                    "POST",
                    "/oauth/token",
                    25.0,
                    vec![
                        sql(
                            "SELECT trust_auth.user_account",
                            "trust_auth",
                            "SELECT id, password_hash FROM user_account WHERE username = ?",
                            2.0,
                        ),
                        redis("SETEX", "SETEX access_token:? 7200 ?"),
                    ],
                )],
            ),
        },
        Flow {
            name: "subscribe-to-trust-product",
            weight: 10.0,
            every_s: None,
            any_origin: false,
            root: gateway(
                "POST",
                "/api/subscriptions",
                vec![
                    project_get(),
                    http(
                        "funding",
                        "POST",
                        "/api/subscriptions",
                        10.0,
                        vec![
                            http(
                                "risk",
                                "POST",
                                "/api/risk/assess",
                                8.0,
                                vec![
                                    rules_evaluate(),
                                    sql(
                                        "SELECT trust_risk.customer_risk",
                                        "trust_risk",
                                        "SELECT level FROM customer_risk WHERE customer_id = ?",
                                        2.0,
                                    ),
                                ],
                            ),
                            asset_nav(),
                            sql(
                                "INSERT trust_funding.subscription",
                                "trust_funding",
                                "INSERT INTO subscription (customer_id, project_id, amount, status) VALUES (?, ?, ?, ?)",
                                4.0,
                            ),
                            publish(
                                "funding.subscribed",
                                "workflow-engine",
                                5.0,
                                vec![sql(
                                    "INSERT trust_workflow.task",
                                    "trust_workflow",
                                    "INSERT INTO task (process_id, node, assignee) VALUES (?, ?, ?)",
                                    3.0,
                                )],
                            ),
                        ],
                    ),
                ],
            ),
        },
        Flow {
            name: "redeem",
            weight: 5.0,
            every_s: None,
            any_origin: false,
            root: gateway(
                "POST",
                "/api/redemptions",
                vec![http(
                    "funding",
                    "POST",
                    "/api/redemptions",
                    9.0,
                    vec![
                        sql(
                            "SELECT trust_funding.holding",
                            "trust_funding",
                            "SELECT * FROM holding WHERE customer_id = ? FOR UPDATE",
                            3.0,
                        ),
                        asset_nav(),
                        http(
                            "ta",
                            "POST",
                            "/api/ta/redemptions",
                            7.0,
                            vec![sql(
                                "INSERT trust_ta.share_change",
                                "trust_ta",
                                "INSERT INTO share_change (holder_id, shares, reason) VALUES (?, ?, ?)",
                                3.0,
                            )],
                        ),
                        publish(
                            "funding.redeemed",
                            "finance",
                            4.0,
                            vec![sql(
                                "INSERT trust_finance.ledger_entry",
                                "trust_finance",
                                "INSERT INTO ledger_entry (account_id, amount, direction, biz_no) VALUES (?, ?, ?, ?)",
                                3.0,
                            )],
                        ),
                    ],
                )],
            ),
        },
        Flow {
            name: "daily-interest-settlement",
            weight: 0.0,
            every_s: Some(60),
            any_origin: false,
            root: Handler {
                service: "job-scheduler",
                entry: Entry::Scheduled {
                    task: "xxl-job trigger interestSettlementJobHandler",
                },
                self_ms: 3.0,
                steps: vec![http(
                    "interest-settlement",
                    "POST",
                    "/run/daily-interest",
                    20.0,
                    vec![
                        repeat(
                            4,
                            12,
                            sql(
                                "UPDATE trust_interest.accrual",
                                "trust_interest",
                                "UPDATE accrual SET accrued = accrued + ? WHERE account_id = ?",
                                4.0,
                            ),
                        ),
                        ledger_post(),
                        publish(
                            "interest.settled",
                            "bank-transfer",
                            6.0,
                            vec![sql(
                                "INSERT trust_bank.transfer",
                                "trust_bank",
                                "INSERT INTO transfer (from_account, to_account, amount, status) VALUES (?, ?, ?, ?)",
                                3.0,
                            )],
                        ),
                    ],
                )],
            },
        },
        Flow {
            name: "fund-transfer",
            weight: 5.0,
            every_s: None,
            any_origin: false,
            root: gateway(
                "POST",
                "/api/transfers",
                vec![http(
                    "bank-transfer",
                    "POST",
                    "/api/transfers/outbound",
                    12.0,
                    vec![
                        http(
                            "risk",
                            "POST",
                            "/api/risk/aml-check",
                            9.0,
                            vec![rules_evaluate()],
                        ),
                        sql(
                            "INSERT trust_bank.transfer",
                            "trust_bank",
                            "INSERT INTO transfer (from_account, to_account, amount, status) VALUES (?, ?, ?, ?)",
                            3.0,
                        ),
                        ledger_post(),
                        publish(
                            "transfer.completed",
                            "sms",
                            3.0,
                            vec![sql(
                                "INSERT trust_notify.sms_log",
                                "trust_notify",
                                "INSERT INTO sms_log (mobile, template, status) VALUES (?, ?, ?)",
                                2.0,
                            )],
                        ),
                    ],
                )],
            ),
        },
        Flow {
            name: "generate-regulatory-report",
            weight: 2.0,
            every_s: None,
            any_origin: false,
            root: gateway(
                "POST",
                "/api/reports/regulatory",
                vec![http(
                    "regulatory-reporting",
                    "POST",
                    "/api/regulatory/reports",
                    20.0,
                    vec![
                        http(
                            "finance",
                            "GET",
                            "/api/ledger/summary",
                            15.0,
                            vec![sql(
                                "SELECT trust_finance.ledger_entry",
                                "trust_finance",
                                "SELECT account_id, SUM(amount) FROM ledger_entry WHERE biz_date = ? GROUP BY account_id",
                                12.0,
                            )],
                        ),
                        http(
                            "ta",
                            "GET",
                            "/api/ta/holders",
                            8.0,
                            vec![sql(
                                "SELECT trust_ta.holder",
                                "trust_ta",
                                "SELECT * FROM holder WHERE product_id = ?",
                                5.0,
                            )],
                        ),
                        sql(
                            "INSERT trust_regulatory.report",
                            "trust_regulatory",
                            "INSERT INTO report (type, period, status) VALUES (?, ?, ?)",
                            3.0,
                        ),
                        publish(
                            "report.generate",
                            "report",
                            30.0,
                            vec![
                                sql(
                                    "SELECT trust_report.report_data",
                                    "trust_report",
                                    "SELECT * FROM report_data WHERE report_id = ?",
                                    8.0,
                                ),
                                minio(
                                    "PutObject",
                                    "reports",
                                    "regulatory/{period}/{id}.xlsx",
                                    25.0,
                                ),
                            ],
                        ),
                    ],
                )],
            ),
        },
        Flow {
            name: "sign-contract",
            weight: 4.0,
            every_s: None,
            any_origin: false,
            root: gateway(
                "POST",
                "/api/contracts/{id}/sign",
                vec![http(
                    "e-signature",
                    "POST",
                    "/api/esign/contracts/{id}/sign",
                    18.0,
                    vec![
                        sql(
                            "SELECT trust_esign.contract",
                            "trust_esign",
                            "SELECT * FROM contract WHERE id = ?",
                            2.0,
                        ),
                        minio("GetObject", "contracts", "contracts/{id}.pdf", 15.0),
                        http(
                            "sms",
                            "POST",
                            "/api/sms/verify-code",
                            6.0,
                            vec![redis("GET", "GET sms:code:?")],
                        ),
                        minio("PutObject", "contracts", "contracts/{id}-signed.pdf", 20.0),
                        sql(
                            "UPDATE trust_esign.contract",
                            "trust_esign",
                            "UPDATE contract SET status = 'SIGNED', signed_at = ? WHERE id = ?",
                            3.0,
                        ),
                    ],
                )],
            ),
        },
        Flow {
            name: "issue-invoice",
            weight: 3.0,
            every_s: None,
            any_origin: false,
            root: gateway(
                "POST",
                "/api/invoices",
                vec![http(
                    "invoicing",
                    "POST",
                    "/api/invoices",
                    10.0,
                    vec![
                        http(
                            "finance",
                            "GET",
                            "/api/ledger/entries/{id}",
                            4.0,
                            vec![sql(
                                "SELECT trust_finance.ledger_entry",
                                "trust_finance",
                                "SELECT * FROM ledger_entry WHERE id = ?",
                                2.0,
                            )],
                        ),
                        sql(
                            "INSERT trust_invoice.invoice",
                            "trust_invoice",
                            "INSERT INTO invoice (customer_id, amount, tax, status) VALUES (?, ?, ?, ?)",
                            3.0,
                        ),
                        publish(
                            "invoice.issued",
                            "mail",
                            8.0,
                            vec![
                                minio("GetObject", "invoices", "invoices/{id}.pdf", 12.0),
                                sql(
                                    "INSERT trust_notify.mail_log",
                                    "trust_notify",
                                    "INSERT INTO mail_log (recipient, template, status) VALUES (?, ?, ?)",
                                    2.0,
                                ),
                            ],
                        ),
                    ],
                )],
            ),
        },
        Flow {
            name: "valuation-run",
            weight: 0.0,
            every_s: Some(120),
            any_origin: false,
            root: Handler {
                service: "job-scheduler",
                entry: Entry::Scheduled {
                    task: "xxl-job trigger valuationJobHandler",
                },
                self_ms: 3.0,
                steps: vec![http(
                    "valuation",
                    "POST",
                    "/run/valuation",
                    15.0,
                    vec![repeat(
                        3,
                        8,
                        Step::Http(Box::new(handler(
                            "asset",
                            "GET",
                            "/api/assets/{id}",
                            4.0,
                            vec![sql(
                                "SELECT trust_asset.asset",
                                "trust_asset",
                                "SELECT id, code, status FROM asset WHERE id = ?",
                                2.0,
                            )],
                        ))),
                    )],
                )],
            },
        },
        Flow {
            name: "open-api-partner-query",
            weight: 6.0,
            every_s: None,
            any_origin: false,
            root: gateway(
                "GET",
                "/openapi/v1/products/{code}",
                vec![http(
                    "open-api",
                    "GET",
                    "/v1/products/{code}",
                    5.0,
                    vec![
                        redis("GET", "GET partner:quota:?"),
                        project_get(),
                        company_get(),
                    ],
                )],
            ),
        },
        Flow {
            name: "abs-issuance",
            weight: 3.0,
            every_s: None,
            any_origin: false,
            root: gateway(
                "POST",
                "/api/abs/issuances",
                vec![http(
                    "abs",
                    "POST",
                    "/api/abs/issuances",
                    20.0,
                    vec![
                        asset_nav(),
                        http(
                            "workflow-engine",
                            "POST",
                            "/api/workflows",
                            10.0,
                            vec![
                                rules_evaluate(),
                                sql(
                                    "INSERT trust_workflow.process",
                                    "trust_workflow",
                                    "INSERT INTO process (definition, business_key, status) VALUES (?, ?, ?)",
                                    3.0,
                                ),
                            ],
                        ),
                        http(
                            "regulatory-reporting",
                            "POST",
                            "/api/regulatory/filings",
                            8.0,
                            vec![sql(
                                "INSERT trust_regulatory.filing",
                                "trust_regulatory",
                                "INSERT INTO filing (type, ref_id, status) VALUES (?, ?, ?)",
                                3.0,
                            )],
                        ),
                        sql(
                            "INSERT trust_abs.issuance",
                            "trust_abs",
                            "INSERT INTO issuance (pool_id, tranche, amount) VALUES (?, ?, ?)",
                            4.0,
                        ),
                    ],
                )],
            ),
        },
        Flow {
            name: "family-trust-distribution",
            weight: 2.0,
            every_s: None,
            any_origin: false,
            root: gateway(
                "POST",
                "/api/family-trusts/{id}/distributions",
                vec![http(
                    "family-trust",
                    "POST",
                    "/api/family-trusts/{id}/distributions",
                    12.0,
                    vec![
                        sql(
                            "SELECT trust_family.beneficiary",
                            "trust_family",
                            "SELECT * FROM beneficiary WHERE trust_id = ?",
                            3.0,
                        ),
                        rules_evaluate(),
                        bank_transfer_post(),
                        publish(
                            "distribution.paid",
                            "sms",
                            3.0,
                            vec![redis("SETEX", "SETEX sms:sent:? 86400 ?")],
                        ),
                    ],
                )],
            ),
        },
        Flow {
            name: "portal-dashboard",
            weight: 9.0,
            every_s: None,
            any_origin: false,
            root: gateway(
                "GET",
                "/api/portal/dashboard",
                vec![http(
                    "portal",
                    "GET",
                    "/api/dashboard",
                    6.0,
                    vec![
                        http(
                            "funding",
                            "GET",
                            "/api/holdings",
                            5.0,
                            vec![
                                sql(
                                    "SELECT trust_funding.holding",
                                    "trust_funding",
                                    "SELECT * FROM holding WHERE customer_id = ?",
                                    3.0,
                                ),
                                asset_nav(),
                            ],
                        ),
                        http(
                            "interest-settlement",
                            "GET",
                            "/api/interest/accounts/{id}",
                            4.0,
                            vec![sql(
                                "SELECT trust_interest.accrual",
                                "trust_interest",
                                "SELECT * FROM accrual WHERE account_id = ?",
                                2.5,
                            )],
                        ),
                        http(
                            "report",
                            "GET",
                            "/api/reports/recent",
                            4.0,
                            vec![sql(
                                "SELECT trust_report.report",
                                "trust_report",
                                "SELECT id, name, created_at FROM report WHERE owner_id = ? ORDER BY created_at DESC LIMIT 10",
                                3.0,
                            )],
                        ),
                    ],
                )],
            ),
        },
        Flow {
            name: "sales-order",
            weight: 4.0,
            every_s: None,
            any_origin: false,
            root: gateway(
                "POST",
                "/api/sales/orders",
                vec![http(
                    "sales",
                    "POST",
                    "/api/sales/orders",
                    9.0,
                    vec![
                        company_get(),
                        project_get(),
                        sql(
                            "INSERT trust_sales.sales_order",
                            "trust_sales",
                            "INSERT INTO sales_order (agent_id, customer_id, project_id, amount) VALUES (?, ?, ?, ?)",
                            3.0,
                        ),
                        publish(
                            "order.created",
                            "mail",
                            6.0,
                            vec![sql(
                                "INSERT trust_notify.mail_log",
                                "trust_notify",
                                "INSERT INTO mail_log (recipient, template, status) VALUES (?, ?, ?)",
                                2.0,
                            )],
                        ),
                    ],
                )],
            ),
        },
        Flow {
            name: "registry-renewal",
            weight: 3.0,
            every_s: None,
            any_origin: true,
            root: Handler {
                service: "zuul-gateway",
                entry: Entry::Scheduled {
                    task: "eureka renew",
                },
                self_ms: 0.5,
                steps: vec![http(
                    "eureka-registry",
                    "PUT",
                    "/eureka/apps/{appName}/{instanceId}",
                    1.0,
                    Vec::new(),
                )],
            },
        },
    ]
}

/// The flows, built once.
pub fn flows() -> &'static [Flow] {
    static FLOWS: OnceLock<Vec<Flow>> = OnceLock::new();
    FLOWS.get_or_init(build_flows)
}

/// Calls `visit` on every handler reachable from `handler` (itself included).
pub fn visit_handlers<'a>(handler: &'a Handler, visit: &mut impl FnMut(&'a Handler)) {
    visit(handler);
    for step in &handler.steps {
        visit_step(step, visit);
    }
}

fn visit_step<'a>(step: &'a Step, visit: &mut impl FnMut(&'a Handler)) {
    match step {
        Step::Http(callee) => visit_handlers(callee, visit),
        Step::Publish { consumer, .. } => visit_handlers(consumer, visit),
        Step::Repeat { step, .. } => visit_step(step, visit),
        Step::Dependency { .. } => {}
    }
}

/// The queues a service consumes.
pub fn consumed_queues(service: &str) -> Vec<&'static str> {
    let mut queues = Vec::new();
    for flow in flows() {
        visit_handlers(&flow.root, &mut |handler| {
            if let Entry::Consumer { queue } = handler.entry
                && handler.service == service
                && !queues.contains(&queue)
            {
                queues.push(queue);
            }
        });
    }
    queues
}

/// Whether a service talks to MySQL (it then has a HikariCP pool).
pub fn uses_mysql(service: &str) -> bool {
    let mut found = false;
    for flow in flows() {
        visit_handlers(&flow.root, &mut |handler| {
            if handler.service == service
                && handler.steps.iter().any(|step| step_uses(step, Dep::Mysql))
            {
                found = true;
            }
        });
    }
    found
}

fn step_uses(step: &Step, wanted: Dep) -> bool {
    match step {
        Step::Dependency { dep, .. } => *dep == wanted,
        Step::Repeat { step, .. } => step_uses(step, wanted),
        Step::Http(_) | Step::Publish { .. } => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_service_appears_in_some_flow() {
        let mut seen = std::collections::BTreeSet::new();
        for flow in flows() {
            visit_handlers(&flow.root, &mut |handler| {
                seen.insert(handler.service);
            });
        }
        let missing: Vec<_> = SERVICES.iter().filter(|s| !seen.contains(*s)).collect();
        assert!(missing.is_empty(), "services without traffic: {missing:?}");
        assert_eq!(seen.len(), SERVICES.len(), "flows name unknown services");
    }

    #[test]
    fn pod_names_are_stable_and_distinct() {
        assert_eq!(pod_name("funding", 1), pod_name("funding", 1));
        let pods = all_pods();
        let distinct: std::collections::BTreeSet<_> = pods.iter().collect();
        assert_eq!(pods.len(), 54);
        assert_eq!(distinct.len(), 54);
        assert!(
            pods.iter()
                .any(|pod| pod.starts_with("funding-") && pod.ends_with("-1"))
        );
    }

    #[test]
    fn at_least_a_dozen_flows_and_async_consumers() {
        assert!(flows().len() >= 12);
        assert!(consumed_queues("report").contains(&"report.generate"));
        assert!(uses_mysql("finance"));
        assert!(!uses_mysql("zuul-gateway"));
    }
}
