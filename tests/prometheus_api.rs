//! The Prometheus HTTP API as Grafana's built-in Prometheus datasource uses it: data
//! written through real remote_write (samples, exemplars, metadata), then the request
//! sequences Grafana sends for "Save & test", the metric browser, the query builder,
//! panels and exemplars, in both POST-form and GET form, checked for shape and content.

mod common;
#[path = "clients/prom_wire.rs"]
mod prom_wire;

use prost::Message;
use proto::prometheus::v1;
use reqwest::StatusCode;
use serde_json::{Value, json};

use common::TestServer;
use prom_wire::{V1_TYPE, now_ms, post, snappy, v1_label, v1_series};

const STEP_MS: i64 = 15_000;
const POINTS: i64 = 81;
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

/// The data every test reads: a start time (on a whole minute) and what was written.
struct Fixture {
    server: TestServer,
    /// First sample time, Unix ms.
    t0: i64,
}

impl Fixture {
    fn seconds(&self, offset_ms: i64) -> String {
        format_seconds(self.t0 + offset_ms)
    }

    /// Grafana's panel range: 5 to 15 minutes after the first sample, aligned to the step.
    fn panel_range(&self) -> (String, String) {
        (self.seconds(5 * 60_000), self.seconds(15 * 60_000))
    }
}

/// Unix ms as Grafana writes times: float seconds with minimal digits.
fn format_seconds(t_ms: i64) -> String {
    if t_ms % 1000 == 0 {
        (t_ms / 1000).to_string()
    } else {
        format!("{}", t_ms as f64 / 1000.0)
    }
}

fn counter(pairs: &[(&str, &str)], t0: i64, per_step: f64) -> v1::TimeSeries {
    let samples: Vec<(i64, f64)> = (0..POINTS)
        .map(|i| (t0 + i * STEP_MS, i as f64 * per_step))
        .collect();
    v1_series(pairs, &samples)
}

/// Writes the fixture through `POST /api/v1/write` (remote_write 1.0).
async fn write_fixture(url: &str, t0: i64) {
    let mut slow = counter(
        &[
            ("__name__", "http_request_duration_seconds_bucket"),
            ("job", "api"),
            ("le", "0.5"),
        ],
        t0,
        8.0,
    );
    slow.exemplars = vec![
        v1::Exemplar {
            labels: vec![
                v1_label("trace_id", TRACE_ID),
                v1_label("span_id", "00f067aa0ba902b7"),
            ],
            value: 0.27,
            timestamp: t0 + 10 * 60_000 + 479,
        },
        v1::Exemplar {
            labels: vec![v1_label("trace_id", "0af7651916cd43dd8448eb211c80319c")],
            value: 0.31,
            timestamp: t0 + 30 * 60_000,
        },
    ];
    let request = v1::WriteRequest {
        timeseries: vec![
            counter(
                &[
                    ("__name__", "http_requests_total"),
                    ("job", "api"),
                    ("instance", "a:1"),
                    ("code", "200"),
                ],
                t0,
                10.0,
            ),
            counter(
                &[
                    ("__name__", "http_requests_total"),
                    ("job", "api"),
                    ("instance", "a:1"),
                    ("code", "500"),
                ],
                t0,
                1.0,
            ),
            counter(
                &[
                    ("__name__", "http_requests_total"),
                    ("job", "db"),
                    ("instance", "b:1"),
                    ("code", "200"),
                ],
                t0,
                3.0,
            ),
            counter(
                &[
                    ("__name__", "http_request_duration_seconds_bucket"),
                    ("job", "api"),
                    ("le", "0.1"),
                ],
                t0,
                2.0,
            ),
            slow,
            counter(
                &[
                    ("__name__", "http_request_duration_seconds_bucket"),
                    ("job", "api"),
                    ("le", "+Inf"),
                ],
                t0,
                10.0,
            ),
        ],
        metadata: vec![
            v1::MetricMetadata {
                r#type: v1::MetricType::Counter as i32,
                metric_family_name: "http_requests_total".to_string(),
                help: "Requests served.".to_string(),
                unit: String::new(),
            },
            v1::MetricMetadata {
                r#type: v1::MetricType::Histogram as i32,
                metric_family_name: "http_request_duration_seconds".to_string(),
                help: "Request latency.".to_string(),
                unit: "seconds".to_string(),
            },
        ],
    };
    let response = post(
        url,
        V1_TYPE,
        Some("snappy"),
        snappy(&request.encode_to_vec()),
    )
    .await;
    assert_eq!(response.status(), 204, "{:?}", response.text().await);
}

async fn fixture() -> Fixture {
    let server = TestServer::start().await;
    // 40 minutes ago, on a whole minute, so Grafana-style aligned ranges hit samples.
    let t0 = (now_ms() - 40 * 60_000) / 60_000 * 60_000;
    write_fixture(&server.url(), t0).await;
    Fixture { server, t0 }
}

/// How Grafana sends a request: POST form (its default) or GET with a query string.
#[derive(Clone, Copy, Debug)]
enum Method {
    Post,
    Get,
}

async fn call(
    url: &str,
    method: Method,
    path: &str,
    params: &[(&str, &str)],
) -> (StatusCode, Value) {
    let client = reqwest::Client::new();
    let request = match method {
        Method::Post => client.post(format!("{url}{path}")).form(params),
        Method::Get => client.get(format!("{url}{path}")).query(params),
    };
    let response = request.send().await.expect("request");
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let text = response.text().await.expect("body");
    assert_eq!(content_type, "application/json", "{path}: {text}");
    let body = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}: {text}"));
    (status, body)
}

async fn ok(url: &str, method: Method, path: &str, params: &[(&str, &str)]) -> Value {
    let (status, body) = call(url, method, path, params).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "{method:?} {path} {params:?}: {body}"
    );
    assert_eq!(body["status"], "success", "{path}: {body}");
    body
}

/// Grafana's "Save & test": instant `1+1` at time 4, then GET buildinfo.
#[tokio::test]
async fn save_and_test_health_check() {
    let fixture = fixture().await;
    let url = fixture.server.url();
    for method in [Method::Post, Method::Get] {
        let body = ok(
            &url,
            method,
            "/api/v1/query",
            &[("query", "1+1"), ("time", "4")],
        )
        .await;
        assert_eq!(
            body,
            json!({"status":"success","data":{"resultType":"scalar","result":[4,"2"]}})
        );
    }
    let body = ok(&url, Method::Get, "/api/v1/status/buildinfo", &[]).await;
    let version = body["data"]["version"].as_str().expect("version");
    let (major, minor) = version.split_once('.').expect("x.y.z");
    let (major, minor): (u32, u32) = (
        major.parse().unwrap(),
        minor.split('.').next().unwrap().parse().unwrap(),
    );
    assert!(
        (major, minor) >= (2, 24),
        "{version}: Grafana needs >= 2.24 for the labels API"
    );
    assert!(
        body["data"].get("features").is_none(),
        "features would make Grafana see Mimir"
    );
    for key in ["revision", "branch", "buildUser", "buildDate", "goVersion"] {
        assert!(body["data"][key].is_string(), "{key}");
    }
}

/// The metric browser / label browser and the query builder's lookups.
#[tokio::test]
async fn metric_browser_and_query_builder_lookups() {
    let fixture = fixture().await;
    let url = fixture.server.url();
    let (start, end) = fixture.panel_range();
    let range = [("start", start.as_str()), ("end", end.as_str())];
    let with = |extra: &[(&'static str, &'static str)]| -> Vec<(&str, &str)> {
        range.iter().copied().chain(extra.iter().copied()).collect()
    };

    // Metric names (GET only in Grafana's list), then label keys (POST form first).
    let body = ok(
        &url,
        Method::Get,
        "/api/v1/label/__name__/values",
        &with(&[("limit", "40000")]),
    )
    .await;
    assert_eq!(
        body["data"],
        json!([
            "http_request_duration_seconds_bucket",
            "http_requests_total"
        ])
    );
    for method in [Method::Post, Method::Get] {
        let body = ok(&url, method, "/api/v1/labels", &with(&[("limit", "40000")])).await;
        assert_eq!(
            body["data"],
            json!(["__name__", "code", "instance", "job", "le"])
        );
        let body = ok(
            &url,
            method,
            "/api/v1/labels",
            &with(&[("match[]", "{__name__=\"http_requests_total\"}")]),
        )
        .await;
        assert_eq!(body["data"], json!(["__name__", "code", "instance", "job"]));
    }
    // Values of a label for the chosen metric (label_values(metric, job) variables too).
    let body = ok(
        &url,
        Method::Get,
        "/api/v1/label/job/values",
        &with(&[("match[]", "http_requests_total{code=\"200\"}")]),
    )
    .await;
    assert_eq!(body["data"], json!(["api", "db"]));
    let body = ok(
        &url,
        Method::Get,
        "/api/v1/label/code/values",
        &with(&[("match[]", "{job=\"api\", __name__=~\"http_req.*\"}")]),
    )
    .await;
    assert_eq!(body["data"], json!(["200", "500"]));
    // Out of the data's time range nothing is offered.
    let body = ok(
        &url,
        Method::Get,
        "/api/v1/label/__name__/values",
        &[("start", "1000"), ("end", "2000")],
    )
    .await;
    assert_eq!(body["data"], json!([]));

    // Series lookups of the query builder, POST then GET.
    for method in [Method::Post, Method::Get] {
        let body = ok(
            &url,
            method,
            "/api/v1/series",
            &with(&[("match[]", "http_requests_total"), ("limit", "40000")]),
        )
        .await;
        assert_eq!(
            body["data"],
            json!([
                {"__name__":"http_requests_total","code":"200","instance":"a:1","job":"api"},
                {"__name__":"http_requests_total","code":"200","instance":"b:1","job":"db"},
                {"__name__":"http_requests_total","code":"500","instance":"a:1","job":"api"}
            ])
        );
    }
    let body = ok(
        &url,
        Method::Post,
        "/api/v1/series",
        &with(&[
            ("match[]", "http_requests_total{job=\"db\"}"),
            (
                "match[]",
                "http_request_duration_seconds_bucket{le=~\"0.5|\\\\+Inf\"}",
            ),
            ("limit", "2"),
        ]),
    )
    .await;
    assert_eq!(
        body["data"],
        json!([
            {"__name__":"http_request_duration_seconds_bucket","job":"api","le":"+Inf"},
            {"__name__":"http_request_duration_seconds_bucket","job":"api","le":"0.5"}
        ])
    );
    assert_eq!(body["warnings"], json!(["results truncated due to limit"]));

    // Metadata: on editor start with no parameters, and for one metric.
    let body = ok(&url, Method::Get, "/api/v1/metadata", &[]).await;
    assert_eq!(
        body["data"],
        json!({
            "http_request_duration_seconds":[{"type":"histogram","help":"Request latency.","unit":"seconds"}],
            "http_requests_total":[{"type":"counter","help":"Requests served.","unit":""}]
        })
    );
    let body = ok(
        &url,
        Method::Get,
        "/api/v1/metadata",
        &[("metric", "http_requests_total"), ("limit", "1")],
    )
    .await;
    assert_eq!(body["data"].as_object().map(|o| o.len()), Some(1));
    assert_eq!(body["data"]["http_requests_total"][0]["type"], "counter");
}

/// The exemplars toggle: `query_exemplars` with the panel's query and range.
#[tokio::test]
async fn exemplars_carry_trace_ids() {
    let fixture = fixture().await;
    let url = fixture.server.url();
    let (start, end) = fixture.panel_range();
    let query = "histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket{job=\"api\"}[1m])))";
    for method in [Method::Post, Method::Get] {
        let body = ok(
            &url,
            method,
            "/api/v1/query_exemplars",
            &[("query", query), ("start", &start), ("end", &end)],
        )
        .await;
        // Only the exemplar inside the range; its trace id is the label Grafana links on.
        assert_eq!(
            body["data"],
            json!([{
                "seriesLabels":{"__name__":"http_request_duration_seconds_bucket","job":"api","le":"0.5"},
                "exemplars":[{
                    "labels":{"span_id":"00f067aa0ba902b7","trace_id":TRACE_ID},
                    "value":"0.27",
                    "timestamp": (fixture.t0 + 10 * 60_000 + 479) as f64 / 1000.0
                }]
            }])
        );
    }
    let body = ok(
        &url,
        Method::Get,
        "/api/v1/query_exemplars",
        &[
            ("query", "http_requests_total"),
            ("start", &start),
            ("end", &end),
        ],
    )
    .await;
    assert_eq!(body["data"], json!([]));
}

/// Panels: a range query with `step`, an instant table query, both request forms.
#[tokio::test]
async fn panel_range_and_instant_queries() {
    let fixture = fixture().await;
    let url = fixture.server.url();
    let (start, end) = fixture.panel_range();
    for method in [Method::Post, Method::Get] {
        let body = ok(
            &url,
            method,
            "/api/v1/query_range",
            &[
                ("query", "sum by (job) (rate(http_requests_total[1m]))"),
                ("start", &start),
                ("end", &end),
                ("step", "15"),
            ],
        )
        .await;
        assert_eq!(body["data"]["resultType"], "matrix", "{body}");
        let result = body["data"]["result"].as_array().expect("result");
        assert_eq!(result.len(), 2, "{body}");
        let expected = [("api", 11.0 / 15.0), ("db", 3.0 / 15.0)];
        for (series, (job, rate)) in result.iter().zip(expected) {
            assert_eq!(series["metric"], json!({ "job": job }));
            let values = series["values"].as_array().expect("values");
            assert_eq!(values.len(), 41, "10 minutes at 15 s, both ends included");
            for (k, point) in values.iter().enumerate() {
                let t = point[0].as_f64().expect("timestamp is a number");
                let expected_t = (fixture.t0 + 5 * 60_000 + k as i64 * STEP_MS) as f64 / 1000.0;
                assert_eq!(t, expected_t);
                let v: f64 = point[1]
                    .as_str()
                    .expect("value is a string")
                    .parse()
                    .unwrap();
                assert!(
                    (v - rate).abs() < 1e-9 * rate,
                    "{job} at {t}: {v} != {rate}"
                );
            }
        }
        // A table panel: instant query at the panel end.
        let body = ok(
            &url,
            method,
            "/api/v1/query",
            &[
                ("query", "http_requests_total{job=\"api\"}"),
                ("time", &end),
            ],
        )
        .await;
        assert_eq!(body["data"]["resultType"], "vector");
        let mut samples: Vec<(String, Value)> = body["data"]["result"]
            .as_array()
            .expect("result")
            .iter()
            .map(|s| {
                (
                    s["metric"]["code"].as_str().unwrap().to_string(),
                    s["value"].clone(),
                )
            })
            .collect();
        samples.sort_by(|a, b| a.0.cmp(&b.0));
        let t_end: i64 = end.parse().unwrap();
        // 15 minutes = step 60 of the counters.
        assert_eq!(
            samples,
            vec![
                ("200".to_string(), json!([t_end, "600"])),
                ("500".to_string(), json!([t_end, "60"]))
            ]
        );
    }
    // A scalar expression in a range query is one series with no labels.
    let body = ok(
        &url,
        Method::Post,
        "/api/v1/query_range",
        &[
            ("query", "2 * 3"),
            ("start", &start),
            ("end", &start),
            ("step", "60"),
        ],
    )
    .await;
    let t_start: i64 = start.parse().unwrap();
    assert_eq!(
        body["data"],
        json!({"resultType":"matrix","result":[{"metric":{},"values":[[t_start,"6"]]}]})
    );
}

/// `(path, parameters, status, errorType, part of the message)`.
type ErrorCase<'a> = (
    &'a str,
    Vec<(&'a str, &'a str)>,
    StatusCode,
    &'a str,
    &'a str,
);

/// Error envelopes: bad query, bad time, bad step, and execution errors.
#[tokio::test]
async fn error_envelopes() {
    let fixture = fixture().await;
    let url = fixture.server.url();
    let (start, end) = fixture.panel_range();
    let cases: Vec<ErrorCase> = vec![
        (
            "/api/v1/query",
            vec![
                (
                    "query",
                    "http_requests_total + ignoring (code, instance) http_requests_total",
                ),
                ("time", &end),
            ],
            StatusCode::UNPROCESSABLE_ENTITY,
            "execution",
            "many-to-many matching not allowed",
        ),
        (
            "/api/v1/query",
            vec![
                ("query", "sum(rate(http_requests_total[1m])"),
                ("time", &end),
            ],
            StatusCode::BAD_REQUEST,
            "bad_data",
            "invalid parameter \"query\"",
        ),
        (
            "/api/v1/query",
            vec![("query", "up"), ("time", "yesterday")],
            StatusCode::BAD_REQUEST,
            "bad_data",
            "invalid parameter \"time\"",
        ),
        (
            "/api/v1/query_range",
            vec![
                ("query", "up"),
                ("start", &start),
                ("end", &end),
                ("step", "fast"),
            ],
            StatusCode::BAD_REQUEST,
            "bad_data",
            "invalid parameter \"step\"",
        ),
        (
            "/api/v1/query_range",
            vec![
                ("query", "up"),
                ("start", &start),
                ("end", &end),
                ("step", "-15"),
            ],
            StatusCode::BAD_REQUEST,
            "bad_data",
            "zero or negative query resolution step",
        ),
        (
            "/api/v1/query_range",
            vec![
                ("query", "up"),
                ("start", &start),
                ("end", &end),
                ("step", "0.01"),
            ],
            StatusCode::BAD_REQUEST,
            "bad_data",
            "exceeded maximum resolution of 11,000 points",
        ),
        (
            "/api/v1/query_range",
            vec![
                ("query", "up"),
                ("start", &end),
                ("end", &start),
                ("step", "15"),
            ],
            StatusCode::BAD_REQUEST,
            "bad_data",
            "end timestamp must not be before start time",
        ),
        (
            "/api/v1/query_range",
            vec![("query", "up"), ("end", &end), ("step", "15")],
            StatusCode::BAD_REQUEST,
            "bad_data",
            "invalid parameter \"start\"",
        ),
        (
            "/api/v1/series",
            vec![("start", &start)],
            StatusCode::BAD_REQUEST,
            "bad_data",
            "no match[] parameter provided",
        ),
        (
            "/api/v1/labels",
            vec![("match[]", "{job=~\".*\"}")],
            StatusCode::BAD_REQUEST,
            "bad_data",
            "non-empty matcher",
        ),
    ];
    for (path, params, status, error_type, message) in cases {
        for method in [Method::Post, Method::Get] {
            let (got, body) = call(&url, method, path, &params).await;
            assert_eq!(got, status, "{method:?} {path} {params:?}: {body}");
            assert_eq!(body["status"], "error");
            assert_eq!(body["errorType"], error_type, "{path}: {body}");
            let error = body["error"].as_str().expect("error message");
            assert!(
                error.contains(message),
                "{path}: {error:?} lacks {message:?}"
            );
            assert!(body.get("data").is_none_or(Value::is_null));
        }
    }
}

/// Reads follow the write tenant (`X-Scope-OrgID`), as writes do.
#[tokio::test]
async fn tenants_are_isolated() {
    let fixture = fixture().await;
    let url = fixture.server.url();
    let request = v1::WriteRequest {
        timeseries: vec![counter(&[("__name__", "team_only_total")], fixture.t0, 1.0)],
        metadata: Vec::new(),
    };
    let response = reqwest::Client::new()
        .post(format!("{url}/api/v1/write"))
        .header("Content-Type", V1_TYPE)
        .header("Content-Encoding", "snappy")
        .header("X-Scope-OrgID", "team-a")
        .body(snappy(&request.encode_to_vec()))
        .send()
        .await
        .expect("write");
    assert_eq!(response.status(), 204);
    let names = |tenant: Option<&'static str>| {
        let url = url.clone();
        async move {
            let mut request =
                reqwest::Client::new().get(format!("{url}/api/v1/label/__name__/values"));
            if let Some(tenant) = tenant {
                request = request.header("X-Scope-OrgID", tenant);
            }
            let body: Value = request.send().await.unwrap().json().await.unwrap();
            body["data"].clone()
        }
    };
    assert_eq!(names(Some("team-a")).await, json!(["team_only_total"]));
    assert_eq!(
        names(None).await,
        json!([
            "http_request_duration_seconds_bucket",
            "http_requests_total"
        ])
    );
    // An invalid tenant name is refused in the Prometheus envelope.
    let response = reqwest::Client::new()
        .get(format!("{url}/api/v1/labels"))
        .header("X-Scope-OrgID", "../etc")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "error");
}

/// Grafana's other calls answer well-formed empty lists instead of 404.
#[tokio::test]
async fn rules_alerts_and_format_query() {
    let fixture = fixture().await;
    let url = fixture.server.url();
    let body = ok(&url, Method::Get, "/api/v1/rules", &[]).await;
    assert_eq!(body["data"], json!({"groups":[]}));
    let body = ok(&url, Method::Get, "/api/v1/alerts", &[]).await;
    assert_eq!(body["data"], json!({"alerts":[]}));
    let body = ok(
        &url,
        Method::Post,
        "/api/v1/format_query",
        &[(
            "query",
            "sum(rate(http_requests_total{job=\"api\"}[5m]))by(code)",
        )],
    )
    .await;
    assert_eq!(
        body["data"],
        "sum by (code) (rate(http_requests_total{job=\"api\"}[5m]))"
    );
}

/// `parse_query` (Prometheus 3), `lookback_delta` per request, and Go byte escapes.
#[tokio::test]
async fn parse_query_lookback_delta_and_byte_escapes() {
    let fixture = fixture().await;
    let url = fixture.server.url();
    let body = ok(
        &url,
        Method::Post,
        "/api/v1/parse_query",
        &[("query", "sum by (code) (rate(http_requests_total[5m]))")],
    )
    .await;
    assert_eq!(body["data"]["type"], "aggregation");
    assert_eq!(body["data"]["op"], "sum");
    assert_eq!(body["data"]["grouping"], json!(["code"]));
    assert_eq!(body["data"]["expr"]["args"][0]["type"], "matrixSelector");
    assert_eq!(body["data"]["expr"]["args"][0]["range"], 300_000);
    // The last sample is at t0 + 20 min; 10 minutes later only a longer lookback sees it.
    let time = fixture.seconds(30 * 60_000);
    let query = [
        ("query", "http_requests_total{code=\"500\"}"),
        ("time", &time),
    ];
    let body = ok(&url, Method::Get, "/api/v1/query", &query).await;
    assert_eq!(body["data"]["result"], json!([]));
    let mut longer = query.to_vec();
    longer.push(("lookback_delta", "15m"));
    let body = ok(&url, Method::Get, "/api/v1/query", &longer).await;
    assert_eq!(body["data"]["result"][0]["value"][1], "80", "{body}");
    let (start, end) = fixture.panel_range();
    for query in [
        r#"count_values("a\xc5z", http_requests_total)"#,
        r#"label_replace(http_requests_total, "\xff", "", "job", "(.*)")"#,
    ] {
        let params = [
            ("query", query),
            ("start", start.as_str()),
            ("end", end.as_str()),
            ("step", "60"),
        ];
        let (status, body) = call(&url, Method::Post, "/api/v1/query_range", &params).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{query}: {body}");
        assert_eq!(body["errorType"], "execution", "{body}");
    }
}
