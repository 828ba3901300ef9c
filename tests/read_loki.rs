//! The Loki API as Grafana's Loki datasource and the Logs Drilldown app call it: the
//! health check, the label browser, Explore queries for each LogQL construct (line
//! sets compared, not status codes), the logs volume query, metric queries, index
//! stats/volume, detected fields/labels, patterns and live tail, over lines written
//! through Loki push, Elasticsearch `_bulk` and OTLP, before and after a flush.

mod common;
mod logs_support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};

use logs_support::*;
use serde_json::{Value, json};

const LOKI: &str = "/loki/api/v1";

/// Runs a range log query the way Grafana does and returns `(labels, line)` per entry.
async fn log_query(
    server: &common::TestServer,
    t0: i64,
    query: &str,
) -> Vec<(BTreeMap<String, String>, String)> {
    let params = [
        ("query", query.to_string()),
        ("start", t0.to_string()),
        ("end", at(t0, 60).to_string()),
        ("limit", "1000".to_string()),
        ("direction", "backward".to_string()),
        ("step", "1000ms".to_string()),
    ];
    let (status, body) = get(server, &format!("{LOKI}/query_range"), &params).await;
    assert_eq!(status, 200, "{query}: {body}");
    assert_eq!(body["status"], "success");
    assert_eq!(body["data"]["resultType"], "streams", "{query}");
    assert!(body["data"]["stats"].is_object());
    let mut out = Vec::new();
    for stream in body["data"]["result"].as_array().expect("result") {
        let labels: BTreeMap<String, String> =
            serde_json::from_value(stream["stream"].clone()).expect("labels");
        let mut last = i64::MAX;
        for value in stream["values"].as_array().expect("values") {
            let ts: i64 = value[0].as_str().expect("ns string").parse().expect("ns");
            assert!(ts <= last, "backward order");
            last = ts;
            out.push((labels.clone(), value[1].as_str().expect("line").to_string()));
        }
    }
    out
}

async fn lines(server: &common::TestServer, t0: i64, query: &str) -> BTreeSet<String> {
    log_query(server, t0, query)
        .await
        .into_iter()
        .map(|(_, line)| line)
        .collect()
}

/// Range metric query: `{labels: [(offset s, value)]}`.
async fn matrix(
    server: &common::TestServer,
    t0: i64,
    query: &str,
    start_s: i64,
    end_s: i64,
    step: &str,
) -> BTreeMap<String, Vec<(i64, f64)>> {
    let params = [
        ("query", query.to_string()),
        ("start", at(t0, start_s).to_string()),
        ("end", at(t0, end_s).to_string()),
        ("step", step.to_string()),
    ];
    let (status, body) = get(server, &format!("{LOKI}/query_range"), &params).await;
    assert_eq!(status, 200, "{query}: {body}");
    assert_eq!(body["data"]["resultType"], "matrix", "{query}: {body}");
    let t0_s = t0 / 1_000_000_000;
    body["data"]["result"]
        .as_array()
        .expect("result")
        .iter()
        .map(|s| {
            (
                s["metric"].to_string(),
                s["values"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| {
                        (
                            p[0].as_i64().unwrap() - t0_s,
                            p[1].as_str().unwrap().parse::<f64>().unwrap(),
                        )
                    })
                    .collect(),
            )
        })
        .collect()
}

/// Instant metric query at `t0 + at_s`: `{labels: value}`.
async fn instant(
    server: &common::TestServer,
    t0: i64,
    query: &str,
    at_s: i64,
) -> BTreeMap<String, f64> {
    let params = [
        ("query", query.to_string()),
        ("time", at(t0, at_s).to_string()),
    ];
    let (status, body) = get(server, &format!("{LOKI}/query"), &params).await;
    assert_eq!(status, 200, "{query}: {body}");
    assert_eq!(body["data"]["resultType"], "vector", "{query}: {body}");
    body["data"]["result"]
        .as_array()
        .expect("result")
        .iter()
        .map(|s| {
            (
                s["metric"].to_string(),
                s["value"][1].as_str().unwrap().parse::<f64>().unwrap(),
            )
        })
        .collect()
}

async fn check_log_queries(server: &common::TestServer, t0: i64, phase: &str) {
    let cases: Vec<(&str, Vec<&str>)> = vec![
        (
            r#"{job="api"}"#,
            vec![MYSQL, DECLINED, SERVED_BO, SERVED_AL],
        ),
        (r#"{job="api", level="error"}"#, vec![MYSQL, DECLINED]),
        (
            r#"{job=~"ap.*", level!="error"}"#,
            vec![SERVED_BO, SERVED_AL],
        ),
        (r#"{service_name="cart"}"#, vec![CART_FAILED, CART_UPDATED]),
        (
            r#"{service_name=~"bill.*"} |= "timeout""#,
            vec![INVOICE_TIMEOUT],
        ),
        (
            r#"{service_name=~".+", service_name!~"api|cart", env!="prod"}"#,
            vec![RETRY, INVOICE_TIMEOUT, INVOICE_OK],
        ),
        (
            r#"{job="api"} != "timeout""#,
            vec![DECLINED, SERVED_BO, SERVED_AL],
        ),
        (r#"{job="api"} |~ "status=5\\d\\d""#, vec![MYSQL]),
        (
            r#"{job="api"} !~ "^\\{" |= `status`"#,
            vec![MYSQL, DECLINED],
        ),
        (
            r#"{job="api"} |= "mysql" or "declined""#,
            vec![MYSQL, DECLINED],
        ),
        (
            r#"{job="api"} |= ``"#,
            vec![MYSQL, DECLINED, SERVED_BO, SERVED_AL],
        ),
        (
            r#"{service_name=~".+"} |= "timeout" |= "payment""#,
            vec![CART_FAILED],
        ),
        (r#"{job="api"} | logfmt | status >= 500"#, vec![MYSQL]),
        (r#"{job="api"} | logfmt | duration > 1s"#, vec![MYSQL]),
        (
            r#"{job="api"} | logfmt | duration <= 100ms or status == 504"#,
            vec![MYSQL, DECLINED],
        ),
        (r#"{job="api"} | json | status >= 500"#, vec![SERVED_AL]),
        (r#"{job="api"} | json | took > 100ms"#, vec![SERVED_AL]),
        (
            r#"{job="api"} | json | __error__="""#,
            vec![SERVED_BO, SERVED_AL],
        ),
        (
            r#"{job="api"} | json | __error__="JSONParserErr""#,
            vec![MYSQL, DECLINED],
        ),
        (
            r#"{job="api"} | pattern "<_> for <who> status=<code> <_>" | who="user-42""#,
            vec![DECLINED],
        ),
        (
            r#"{job="api"} | regexp "status=(?P<code>\\d+)" | code="402""#,
            vec![DECLINED],
        ),
        (r#"{service_name="checkout"} | user="u1""#, vec![RETRY]),
        (
            r#"{service_name="cart"} | http_status_code="503" |= "failed""#,
            vec![CART_FAILED],
        ),
        (
            r#"{service_name=~".+", detected_level="error"}"#,
            vec![INVOICE_TIMEOUT, CART_FAILED],
        ),
        (
            r#"{service_name="billing"} | customer_tier="gold" |= "generated""#,
            vec![INVOICE_OK],
        ),
        (r#"{service_name="cart", process_pid="42"}"#, vec![]),
        (
            r#"{service_name="cart"} | process_pid="42""#,
            vec![CART_FAILED, CART_UPDATED],
        ),
    ];
    for (query, expected) in cases {
        assert_eq!(
            lines(server, t0, query).await,
            set(&expected),
            "{phase}: {query}"
        );
    }

    // line_format rewrites lines; label_format renames; drop/keep shape the streams.
    assert_eq!(
        lines(
            server,
            t0,
            r#"{job="api"} | json | user_name="bo" | line_format "{{.msg}} by {{ .user_name }} ({{.level}})""#
        )
        .await,
        set(&["request served by bo (info)"]),
        "{phase}"
    );
    let renamed = log_query(
        server,
        t0,
        r#"{job="api"} | label_format lvl=level | lvl="info""#,
    )
    .await;
    assert_eq!(renamed.len(), 2, "{phase}");
    assert!(
        renamed
            .iter()
            .all(|(l, _)| l["lvl"] == "info" && !l.contains_key("level"))
    );
    let kept = log_query(
        server,
        t0,
        r#"{job="api"} | logfmt | keep status | status="504""#,
    )
    .await;
    assert_eq!(kept.len(), 1, "{phase}");
    assert_eq!(
        kept[0].0,
        BTreeMap::from([("status".to_string(), "504".to_string())])
    );
    let dropped = log_query(
        server,
        t0,
        r#"{job="api", level="info"} | json | drop __error__, user_name, took, msg, status"#,
    )
    .await;
    assert_eq!(dropped.len(), 2);
    assert!(
        dropped
            .iter()
            .all(|(l, _)| l.keys().eq(["env", "job", "level", "service_name"].iter())),
        "{dropped:?}"
    );

    // Every stream has service_name, and a Loki stream's own labels come back.
    let all = log_query(server, t0, r#"{service_name=~".+"}"#).await;
    assert_eq!(all.len(), 9, "{phase}");
    let labels_of = |line: &str| all.iter().find(|(_, l)| l == line).unwrap().0.clone();
    assert_eq!(
        labels_of(MYSQL),
        BTreeMap::from([
            ("env".into(), "prod".into()),
            ("job".into(), "api".into()),
            ("level".into(), "error".into()),
            ("service_name".into(), "api".into())
        ])
    );
    assert_eq!(labels_of(RETRY)["pod"], "checkout-0");
    assert_eq!(labels_of(RETRY)["detected_level"], "warn");
    assert_eq!(labels_of(INVOICE_OK)["service_name"], "billing");
    assert_eq!(labels_of(INVOICE_OK)["detected_level"], "info");
    assert_eq!(
        labels_of(CART_FAILED),
        BTreeMap::from([
            ("detected_level".into(), "error".into()),
            ("service_name".into(), "cart".into())
        ])
    );

    // Forward direction and limit.
    let params = [
        ("query", r#"{service_name=~".+"}"#.to_string()),
        ("start", t0.to_string()),
        ("end", at(t0, 60).to_string()),
        ("limit", "2".to_string()),
        ("direction", "forward".to_string()),
    ];
    let (_, body) = get(server, &format!("{LOKI}/query_range"), &params).await;
    let got: BTreeSet<&str> = body["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| {
            s["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v[1].as_str().unwrap())
        })
        .collect();
    assert_eq!(got, BTreeSet::from([MYSQL, DECLINED]), "{phase}");

    // Parse errors are 400 with a plain-text message.
    let (status, body) = get(
        server,
        &format!("{LOKI}/query_range"),
        &[("query", "{job=".to_string())],
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.as_str().unwrap().contains("parse error"));
}

async fn check_metric_queries(server: &common::TestServer, t0: i64, phase: &str) {
    // The logs volume query Grafana fires with every Explore log query.
    let volume = matrix(
        server,
        t0,
        r#"sum by (level, detected_level) (count_over_time({service_name=~".+"} | drop __error__[10s]))"#,
        10,
        10,
        "10000ms",
    )
    .await;
    let expected: BTreeMap<String, Vec<(i64, f64)>> = [
        (json!({"level": "error"}), 2.0),
        (json!({"level": "info"}), 2.0),
        (json!({"detected_level": "warn"}), 1.0),
        (json!({"detected_level": "error"}), 2.0),
        (json!({"detected_level": "info"}), 2.0),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), vec![(10, v)]))
    .collect();
    assert_eq!(volume, expected, "{phase}");

    // count_over_time by step: api lines at 1..4 s, 2 s windows.
    let counts = matrix(
        server,
        t0,
        r#"count_over_time({job="api"}[2s])"#,
        0,
        6,
        "2s",
    )
    .await;
    assert_eq!(
        counts[&json!({"env":"prod","job":"api","level":"error","service_name":"api"}).to_string()],
        vec![(2, 2.0)],
        "{phase}"
    );
    assert_eq!(
        counts[&json!({"env":"prod","job":"api","level":"info","service_name":"api"}).to_string()],
        vec![(4, 2.0)],
        "{phase}"
    );

    let one = |v: f64| BTreeMap::from([("{}".to_string(), v)]);
    assert_eq!(
        instant(
            server,
            t0,
            r#"sum(count_over_time({service_name="cart"}[1m]))"#,
            60
        )
        .await,
        one(2.0)
    );
    assert_eq!(
        instant(server, t0, r#"sum(rate({job="api"}[10s]))"#, 10).await,
        one(0.4)
    );
    assert_eq!(
        instant(
            server,
            t0,
            r#"sum(bytes_over_time({service_name="billing"}[1m]))"#,
            60
        )
        .await,
        one((INVOICE_TIMEOUT.len() + INVOICE_OK.len()) as f64)
    );
    assert_eq!(
        instant(
            server,
            t0,
            r#"sum(bytes_rate({service_name="billing"}[1m]))"#,
            60
        )
        .await,
        one((INVOICE_TIMEOUT.len() + INVOICE_OK.len()) as f64 / 60.0)
    );
    assert_eq!(
        instant(
            server,
            t0,
            r#"topk(1, sum by (service_name) (count_over_time({service_name=~".+"}[1m])))"#,
            60
        )
        .await,
        BTreeMap::from([(json!({"service_name":"api"}).to_string(), 4.0)])
    );
    let bottom = instant(
        server,
        t0,
        r#"bottomk(2, sum by (service_name) (count_over_time({service_name=~".+"}[1m])))"#,
        60,
    )
    .await;
    assert_eq!(bottom.len(), 2, "{phase}: {bottom:?}");
    assert_eq!(bottom[&json!({"service_name":"checkout"}).to_string()], 1.0);
    assert!(bottom.values().any(|v| *v == 2.0));
    assert_eq!(
        instant(
            server,
            t0,
            r#"sum(sum_over_time({job="api"} | logfmt | unwrap status [1m]))"#,
            60
        )
        .await,
        one(906.0)
    );
    assert_eq!(
        instant(
            server,
            t0,
            r#"max(max_over_time({job="api"} | json | unwrap duration(took) | __error__="" [1m]))"#,
            60
        )
        .await,
        one(0.25)
    );
    assert_eq!(
        instant(server, t0, r#"quantile_over_time(0.5, {job="api"} | json | unwrap duration(took) | __error__="" [1m]) by (job)"#, 60).await,
        BTreeMap::from([(json!({"job":"api"}).to_string(), 0.131)])
    );
    assert_eq!(
        instant(
            server,
            t0,
            r#"avg by (level) (count_over_time({job="api"}[1m])) * 2 > 3"#,
            60
        )
        .await,
        BTreeMap::from([
            (json!({"level":"error"}).to_string(), 4.0),
            (json!({"level":"info"}).to_string(), 4.0)
        ])
    );
    assert_eq!(
        instant(
            server,
            t0,
            r#"count(sum by (service_name) (count_over_time({service_name=~".+"}[1m])))"#,
            60
        )
        .await,
        one(4.0)
    );
    assert_eq!(
        instant(server, t0, r#"sum without (env, job, service_name) (count_over_time({job="api"} |= "status=" [1m]))"#, 60).await,
        BTreeMap::from([(json!({"level":"error"}).to_string(), 2.0)]),
        "{phase}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explore_queries_hot_and_cold() {
    let server = common::TestServer::start().await;
    let t0 = t0();
    write_all(&server, t0).await;
    check_log_queries(&server, t0, "hot").await;
    check_metric_queries(&server, t0, "hot").await;
    flush(&server).await;
    check_log_queries(&server, t0, "cold").await;
    check_metric_queries(&server, t0, "cold").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grafana_health_check_and_label_browser() {
    let server = common::TestServer::start().await;
    let t0 = t0();
    write_all(&server, t0).await;
    flush(&server).await;

    // Current health check: instant vector(1)+vector(1) at 4 s.
    let (status, body) = get(
        &server,
        &format!("{LOKI}/query"),
        &[
            ("query", "vector(1)+vector(1)".to_string()),
            ("time", "4000000000".to_string()),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["resultType"], "vector");
    let result = body["data"]["result"].as_array().unwrap();
    assert_eq!(result.len(), 1);
    assert_eq!(result[0]["value"][1], "2");
    // Older health check: labels over the last 10 minutes.
    let now = t0 + 1800 * 1_000_000_000;
    let (status, body) = get(
        &server,
        &format!("{LOKI}/labels"),
        &[
            ("start", (now - 600_000_000_000).to_string()),
            ("end", now.to_string()),
        ],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "success");
    // Instant log queries are refused.
    let (status, _) = get(
        &server,
        &format!("{LOKI}/query"),
        &[("query", r#"{job="api"}"#.to_string())],
    )
    .await;
    assert_eq!(status, 400);

    // Label browser: names, values (with a selector filter), series.
    let range = [("start", t0.to_string()), ("end", at(t0, 60).to_string())];
    let (_, body) = get(&server, &format!("{LOKI}/labels"), &range).await;
    let names: BTreeSet<&str> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        BTreeSet::from([
            "detected_level",
            "env",
            "job",
            "level",
            "pod",
            "service_name"
        ])
    );
    let (_, body) = get(
        &server,
        &format!("{LOKI}/label/service_name/values"),
        &range,
    )
    .await;
    assert_eq!(body["data"], json!(["api", "billing", "cart", "checkout"]));
    let mut filtered = range.to_vec();
    filtered.push(("query", r#"{detected_level="error"}"#.to_string()));
    let (_, body) = get(
        &server,
        &format!("{LOKI}/label/service_name/values"),
        &filtered,
    )
    .await;
    assert_eq!(body["data"], json!(["billing", "cart"]));
    let mut series = range.to_vec();
    series.push(("match[]", r#"{service_name="cart"}"#.to_string()));
    series.push(("match[]", r#"{job="api", level="info"}"#.to_string()));
    let (_, body) = get(&server, &format!("{LOKI}/series"), &series).await;
    let got: BTreeSet<String> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(Value::to_string)
        .collect();
    let want: BTreeSet<String> = [
        json!({"detected_level":"error","service_name":"cart"}),
        json!({"detected_level":"info","service_name":"cart"}),
        json!({"env":"prod","job":"api","level":"info","service_name":"api"}),
    ]
    .iter()
    .map(Value::to_string)
    .collect();
    assert_eq!(got, want);
    // POST form, as Grafana's label browser may.
    let response = reqwest::Client::new()
        .post(format!("{}{LOKI}/series", server.url()))
        .form(&[
            ("match[]", r#"{service_name="billing"}"#),
            ("start", &t0.to_string()),
            ("end", &at(t0, 60).to_string()),
        ])
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["data"],
        json!([{"detected_level":"error","service_name":"billing"},{"detected_level":"info","service_name":"billing"}])
    );

    // Query-size hint.
    let mut stats = range.to_vec();
    stats.push(("query", r#"{job="api"}"#.to_string()));
    let (_, body) = get(&server, &format!("{LOKI}/index/stats"), &stats).await;
    assert_eq!(body["streams"], 2);
    assert_eq!(body["entries"], 4);
    assert_eq!(
        body["bytes"],
        json!(MYSQL.len() + DECLINED.len() + SERVED_BO.len() + SERVED_AL.len())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_drilldown_calls() {
    let server = common::TestServer::start().await;
    let t0 = t0();
    write_all(&server, t0).await;
    let range = [("start", t0.to_string()), ("end", at(t0, 60).to_string())];
    let with = |extra: &[(&'static str, &str)]| {
        let mut p = range.to_vec();
        p.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
        p
    };

    // Service selection: volume per service.
    let (status, body) = get(
        &server,
        &format!("{LOKI}/index/volume"),
        &with(&[
            ("query", r#"{service_name=~".+"}"#),
            ("limit", "5000"),
            ("targetLabels", "service_name"),
            ("aggregateBy", "series"),
        ]),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["resultType"], "vector");
    let volumes: BTreeMap<String, u64> = body["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["metric"]["service_name"].as_str().unwrap().to_string(),
                r["value"][1].as_str().unwrap().parse().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        volumes["billing"],
        (INVOICE_TIMEOUT.len() + INVOICE_OK.len()) as u64
    );
    assert_eq!(volumes.len(), 4);
    let (_, body) = get(
        &server,
        &format!("{LOKI}/index/volume_range"),
        &with(&[("query", r#"{service_name="cart"}"#), ("step", "10s")]),
    )
    .await;
    assert_eq!(body["data"]["resultType"], "matrix");
    let result = body["data"]["result"].as_array().unwrap();
    assert_eq!(result.len(), 1, "{body}");
    assert_eq!(result[0]["metric"], json!({"service_name":"cart"}));
    assert_eq!(
        result[0]["values"],
        json!([[
            t0 / 1_000_000_000 + 10,
            (CART_FAILED.len() + CART_UPDATED.len()).to_string()
        ]])
    );

    // Labels and fields tabs.
    let (_, body) = get(
        &server,
        &format!("{LOKI}/detected_labels"),
        &with(&[("query", r#"{service_name="api"}"#)]),
    )
    .await;
    let labels: BTreeMap<String, u64> = body["detectedLabels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["label"].as_str().unwrap().to_string(),
                l["cardinality"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(labels["level"], 2);
    assert_eq!(labels["job"], 1);
    let (_, body) = get(
        &server,
        &format!("{LOKI}/detected_fields"),
        &with(&[("query", r#"{service_name="api"}"#)]),
    )
    .await;
    let fields: BTreeMap<String, &Value> = body["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["label"].as_str().unwrap().to_string(), f))
        .collect();
    assert_eq!(fields["status"]["type"], "int", "{body}");
    assert_eq!(fields["status"]["cardinality"], 4);
    assert_eq!(fields["status"]["parsers"], json!(["json", "logfmt"]));
    assert_eq!(fields["duration"]["type"], "duration");
    assert_eq!(fields["user_name"]["parsers"], json!(["json"]));
    let (_, body) = get(
        &server,
        &format!("{LOKI}/detected_field/user_name/values"),
        &with(&[("query", r#"{service_name="api"}"#)]),
    )
    .await;
    assert_eq!(body["values"], json!(["al", "bo"]));

    // Patterns tab.
    let (status, body) = get(
        &server,
        &format!("{LOKI}/patterns"),
        &with(&[("query", r#"{service_name="billing"}"#), ("step", "60s")]),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let patterns = body["data"].as_array().unwrap();
    assert_eq!(patterns.len(), 2, "{body}");
    let templates: BTreeSet<&str> = patterns
        .iter()
        .map(|p| p["pattern"].as_str().unwrap())
        .collect();
    assert_eq!(
        templates,
        BTreeSet::from([
            "invoice generated for customer <_>",
            "invoice generation timeout for customer <_>"
        ])
    );
    assert_eq!(patterns[0]["samples"][0][1], 1);
    assert_eq!(
        patterns[0]["samples"][0][0],
        json!((t0 / 1_000_000_000) / 60 * 60)
    );

    // Build info and format_query.
    let (_, body) = get(&server, &format!("{LOKI}/status/buildinfo"), &[]).await;
    assert!(body["version"].as_str().unwrap().starts_with('3'));
}

/// A minimal WebSocket client: handshake, then reads text frames (the server does not mask).
fn ws_read_first_text(addr: std::net::SocketAddr, path_and_query: &str) -> String {
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path_and_query} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).expect("handshake");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let mut header = [0u8; 2];
    stream.read_exact(&mut header).unwrap();
    assert_eq!(header[0] & 0x0f, 1, "a text frame");
    let len = match header[1] & 0x7f {
        126 => {
            let mut b = [0u8; 2];
            stream.read_exact(&mut b).unwrap();
            u16::from_be_bytes(b) as usize
        }
        127 => {
            let mut b = [0u8; 8];
            stream.read_exact(&mut b).unwrap();
            u64::from_be_bytes(b) as usize
        }
        n => n as usize,
    };
    let mut payload = vec![0u8; len];
    stream.read_exact(&mut payload).unwrap();
    String::from_utf8(payload).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_tail_sends_matching_lines() {
    let server = common::TestServer::start().await;
    let t0 = t0();
    write_all(&server, t0).await;
    let query = "query=%7Bjob%3D%22api%22%7D%20%7C%3D%20%22status%3D%22";
    let path = format!("{LOKI}/tail?{query}&start={t0}&limit=10");
    let addr = server.http_addr();
    let text = tokio::task::spawn_blocking(move || ws_read_first_text(addr, &path))
        .await
        .unwrap();
    let message: Value = serde_json::from_str(&text).unwrap();
    let got: BTreeSet<&str> = message["streams"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| {
            s["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v[1].as_str().unwrap())
        })
        .collect();
    assert_eq!(got, BTreeSet::from([MYSQL, DECLINED]));
}

/// A range query with Grafana's `X-Loki-Response-Encoding-Flags: categorize-labels`
/// header (sent by Explore and Logs Drilldown): the raw body.
async fn categorized(server: &common::TestServer, t0: i64, query: &str, flags: &str) -> Value {
    let params = [
        ("query", query.to_string()),
        ("start", t0.to_string()),
        ("end", at(t0, 60).to_string()),
        ("limit", "1000".to_string()),
        ("direction", "backward".to_string()),
        ("step", "1s".to_string()),
    ];
    let response = reqwest::Client::new()
        .get(format!("{}{LOKI}/query_range", server.url()))
        .header("X-Loki-Response-Encoding-Flags", flags)
        .query(&params)
        .send()
        .await
        .expect("query_range");
    assert_eq!(response.status(), 200);
    response.json().await.expect("json")
}

/// `(stream labels, line, structuredMetadata, parsed)` per entry of a categorized answer.
type CategorizedEntry = (
    BTreeMap<String, String>,
    String,
    BTreeMap<String, String>,
    BTreeMap<String, String>,
);

fn categorized_entries(body: &Value) -> Vec<CategorizedEntry> {
    assert_eq!(
        body["data"]["encodingFlags"],
        json!(["categorize-labels"]),
        "{body}"
    );
    let mut out = Vec::new();
    for stream in body["data"]["result"].as_array().expect("result") {
        let labels: BTreeMap<String, String> =
            serde_json::from_value(stream["stream"].clone()).expect("labels");
        for value in stream["values"].as_array().expect("values") {
            assert_eq!(value.as_array().map(Vec::len), Some(3), "{value}");
            let categories = value[2].as_object().expect("categories object");
            assert!(
                categories
                    .keys()
                    .all(|k| k == "structuredMetadata" || k == "parsed"),
                "{value}"
            );
            let group = |name: &str| -> BTreeMap<String, String> {
                match categories.get(name) {
                    Some(map) => {
                        let map: BTreeMap<String, String> =
                            serde_json::from_value(map.clone()).expect("label map");
                        assert!(!map.is_empty(), "empty {name} is left out: {value}");
                        map
                    }
                    None => BTreeMap::new(),
                }
            };
            out.push((
                labels.clone(),
                value[1].as_str().expect("line").to_string(),
                group("structuredMetadata"),
                group("parsed"),
            ));
        }
    }
    out
}

async fn check_categorized(server: &common::TestServer, t0: i64, phase: &str) {
    // Structured metadata pushed with a Loki line stays out of the stream labels.
    let body = categorized(
        server,
        t0,
        r#"{service_name="checkout"}"#,
        "categorize-labels",
    )
    .await;
    let entries = categorized_entries(&body);
    assert_eq!(entries.len(), 1, "{phase}: {body}");
    let (labels, line, metadata, parsed) = &entries[0];
    assert_eq!(line, RETRY);
    assert_eq!(labels["service_name"], "checkout", "{phase}");
    assert_eq!(labels["pod"], "checkout-0", "{phase}");
    assert!(!labels.contains_key("trace_id"), "{phase}: {labels:?}");
    assert_eq!(metadata["trace_id"], TRACE, "{phase}");
    assert_eq!(metadata["user"], "u1", "{phase}");
    assert!(parsed.is_empty(), "{phase}: {parsed:?}");

    // Parsed labels go to `parsed`; entries group by their stream labels alone.
    let body = categorized(server, t0, r#"{job="api"} | json"#, "categorize-labels").await;
    let entries = categorized_entries(&body);
    assert_eq!(entries.len(), 4, "{phase}: {body}");
    let served: Vec<&CategorizedEntry> = entries
        .iter()
        .filter(|e| e.1 == SERVED_AL || e.1 == SERVED_BO)
        .collect();
    assert_eq!(served.len(), 2, "{phase}");
    assert_eq!(served[0].0, served[1].0, "{phase}: one stream for both");
    let al = served.iter().find(|e| e.1 == SERVED_AL).expect("al");
    assert_eq!(al.0["job"], "api", "{phase}");
    assert_eq!(al.0["level"], "info", "{phase}");
    assert!(!al.0.contains_key("status"), "{phase}: {:?}", al.0);
    assert_eq!(al.3["status"], "500", "{phase}");
    assert_eq!(al.3["user_name"], "al", "{phase}");
    assert_eq!(al.3["took"], "250ms", "{phase}");
    assert!(al.2.is_empty(), "{phase}: {:?}", al.2);
    let mysql = entries.iter().find(|e| e.1 == MYSQL).expect("mysql");
    assert_eq!(
        mysql.3["__error__"], "JSONParserErr",
        "{phase}: {:?}",
        mysql.3
    );
    // The flag list may carry other flags.
    let body = categorized(
        server,
        t0,
        r#"{job="api"} | json"#,
        "other, categorize-labels",
    )
    .await;
    assert_eq!(categorized_entries(&body).len(), 4, "{phase}");

    // OTLP attributes and ids are structured metadata, resource service name a label.
    let body = categorized(
        server,
        t0,
        r#"{service_name="cart"} |= "failed""#,
        "categorize-labels",
    )
    .await;
    let entries = categorized_entries(&body);
    assert_eq!(entries.len(), 1, "{phase}: {body}");
    let (labels, line, metadata, _) = &entries[0];
    assert_eq!(line, CART_FAILED);
    assert_eq!(labels["service_name"], "cart", "{phase}");
    assert_eq!(metadata["trace_id"], TRACE, "{phase}");
    assert_eq!(metadata["http_status_code"], "503", "{phase}");
    assert_eq!(metadata["process_pid"], "42", "{phase}");

    // Metric queries carry the flag too; without the header nothing changes.
    let body = categorized(
        server,
        t0,
        r#"sum(count_over_time({job="api"}[1m]))"#,
        "categorize-labels",
    )
    .await;
    assert_eq!(body["data"]["resultType"], "matrix", "{phase}");
    assert_eq!(body["data"]["encodingFlags"], json!(["categorize-labels"]));
    let body = categorized(server, t0, r#"{job="api"} | json"#, "something-else").await;
    assert!(
        body["data"].get("encodingFlags").is_none(),
        "{phase}: {body}"
    );
    for stream in body["data"]["result"].as_array().expect("result") {
        for value in stream["values"].as_array().expect("values") {
            assert_eq!(value.as_array().map(Vec::len), Some(2), "{phase}: {value}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn categorize_labels_encoding() {
    let server = common::TestServer::start().await;
    let t0 = t0();
    write_all(&server, t0).await;
    check_categorized(&server, t0, "hot").await;
    flush(&server).await;
    check_categorized(&server, t0, "cold").await;
}
