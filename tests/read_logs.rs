//! The native log API: full-text search (terms, phrases, boolean operators, prefix,
//! fuzzy, field filters), paging, histograms and patterns, over lines written through
//! Loki push, Elasticsearch `_bulk` and OTLP, before and after a flush.

mod common;
mod logs_support;

use std::collections::BTreeSet;

use logs_support::*;
use serde_json::{Value, json};

async fn search(server: &common::TestServer, t0: i64, extra: &[(&str, &str)]) -> Value {
    let mut params = vec![("start", t0.to_string()), ("end", at(t0, 60).to_string())];
    params.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
    let (status, body) = get(server, "/api/v1/logs/search", &params).await;
    assert_eq!(status, 200, "{extra:?}: {body}");
    assert_eq!(body["status"], "success");
    body["data"].clone()
}

fn bodies(data: &Value) -> Vec<String> {
    data["lines"]
        .as_array()
        .expect("lines")
        .iter()
        .map(|l| l["body"].as_str().expect("body").to_string())
        .collect()
}

async fn hits(server: &common::TestServer, t0: i64, extra: &[(&str, &str)]) -> BTreeSet<String> {
    bodies(&search(server, t0, extra).await)
        .into_iter()
        .collect()
}

/// Search parameters of one case.
type Params = Vec<(&'static str, &'static str)>;

async fn check_search(server: &common::TestServer, t0: i64, phase: &str) {
    let q = |text: &'static str| [("q", text)];
    let cases: Vec<(Params, Vec<&str>)> = vec![
        (
            q("timeout").to_vec(),
            vec![MYSQL, INVOICE_TIMEOUT, CART_FAILED],
        ),
        (q("TIMEOUT mysql").to_vec(), vec![MYSQL]),
        (q("\"connection timeout\"").to_vec(), vec![MYSQL]),
        (q("\"timeout connection\"").to_vec(), vec![]),
        (
            q("timeout AND NOT mysql").to_vec(),
            vec![INVOICE_TIMEOUT, CART_FAILED],
        ),
        (q("timeout -mysql -invoice").to_vec(), vec![CART_FAILED]),
        (q("mysql OR declined").to_vec(), vec![MYSQL, DECLINED]),
        (q("invoic*").to_vec(), vec![INVOICE_TIMEOUT, INVOICE_OK]),
        (q("paymnet~2").to_vec(), vec![DECLINED, CART_FAILED]),
        (q("paymnet~1").to_vec(), vec![]),
        (
            q("service:billing").to_vec(),
            vec![INVOICE_TIMEOUT, INVOICE_OK],
        ),
        (q("service:cart timeout").to_vec(), vec![CART_FAILED]),
        (
            q("severity:error").to_vec(),
            vec![MYSQL, DECLINED, INVOICE_TIMEOUT, CART_FAILED],
        ),
        (q("level:warn").to_vec(), vec![RETRY]),
        (q("attr.user:u1").to_vec(), vec![RETRY]),
        (
            q("attr.customer.tier:gold invoice").to_vec(),
            vec![INVOICE_TIMEOUT, INVOICE_OK],
        ),
        (q("user-42").to_vec(), vec![DECLINED]),
        (
            vec![("q", "timeout"), ("service", "billing")],
            vec![INVOICE_TIMEOUT],
        ),
        (
            vec![("q", "invoice"), ("severity", "info")],
            vec![INVOICE_OK],
        ),
        (
            vec![("trace_id", TRACE)],
            vec![RETRY, CART_FAILED, CART_UPDATED],
        ),
        (
            q("trace_id:4BF92F3577B34DA6A3CE929D0E0E4736 failed").to_vec(),
            vec![CART_FAILED],
        ),
        (
            q("(mysql OR invoice) AND severity:error").to_vec(),
            vec![MYSQL, INVOICE_TIMEOUT],
        ),
    ];
    for (params, expected) in cases {
        assert_eq!(
            hits(server, t0, &params).await,
            set(&expected),
            "{phase}: {params:?}"
        );
    }

    // Newest first, fields filled in from each protocol.
    let data = search(server, t0, &[("q", "cart")]).await;
    assert_eq!(bodies(&data), vec![CART_UPDATED, CART_FAILED], "{phase}");
    let line = &data["lines"][1];
    assert_eq!(line["service"], "cart");
    assert_eq!(line["severity"], "ERROR");
    assert_eq!(line["trace_id"], TRACE);
    assert_eq!(line["ts_ns"], json!(at(t0, 8)));
    assert_eq!(line["attributes"]["http.status_code"], "503");

    // Paging: three pages of three, newest first, no line twice.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for page in 0..3 {
        let mut params = vec![("limit", "3".to_string())];
        if let Some(c) = &cursor {
            params.push(("cursor", c.clone()));
        }
        let refs: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let data = search(server, t0, &refs).await;
        let page_bodies = bodies(&data);
        assert_eq!(page_bodies.len(), 3, "{phase} page {page}: {data}");
        seen.extend(page_bodies);
        cursor = data["next_cursor"].as_str().map(str::to_string);
        if page < 2 {
            assert!(cursor.is_some(), "{phase} page {page}");
        }
    }
    assert!(cursor.is_none(), "{phase}: a last page has no cursor");
    let mut newest_first: Vec<String> = ALL.iter().map(|s| s.to_string()).collect();
    newest_first.reverse();
    assert_eq!(seen, newest_first, "{phase}");

    // Histogram: one line per second at offsets 1..9.
    let (status, body) = get(
        server,
        "/api/v1/logs/histogram",
        &[
            ("start", t0.to_string()),
            ("end", (at(t0, 10) - 1).to_string()),
            ("step", "1s".to_string()),
            ("q", "timeout".to_string()),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let buckets: Vec<(i64, u64)> = body["data"]["buckets"]
        .as_array()
        .expect("buckets")
        .iter()
        .map(|b| (b[0].as_i64().unwrap(), b[1].as_u64().unwrap()))
        .collect();
    assert_eq!(buckets.len(), 10, "{phase}: {body}");
    let nonzero: Vec<(i64, u64)> = buckets.into_iter().filter(|b| b.1 > 0).collect();
    assert_eq!(
        nonzero,
        vec![(at(t0, 1), 1), (at(t0, 6), 1), (at(t0, 8), 1)],
        "{phase}"
    );
    assert_eq!(body["data"]["total"], 3);

    let (status, body) = get(
        server,
        "/api/v1/logs/search",
        &[("q", "(unclosed".to_string())],
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["status"], "error");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_hot_and_cold() {
    let server = common::TestServer::start().await;
    let t0 = t0();
    write_all(&server, t0).await;
    check_search(&server, t0, "hot").await;
    flush(&server).await;
    check_search(&server, t0, "cold").await;
    // Half hot, half cold: a second write after the flush.
    let later = t0 + 20 * 1_000_000_000;
    let push = json!({"streams": [{"stream": {"job": "api", "level": "error"},
        "values": [[later.to_string(), "late timeout after flush"]]}]});
    reqwest::Client::new()
        .post(format!("{}/loki/api/v1/push", server.url()))
        .json(&push)
        .send()
        .await
        .expect("push");
    assert_eq!(
        hits(&server, t0, &[("q", "timeout")]).await,
        set(&[
            MYSQL,
            INVOICE_TIMEOUT,
            CART_FAILED,
            "late timeout after flush"
        ])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patterns_and_baseline_changes() {
    let server = common::TestServer::start().await;
    let t0 = t0();
    let mut baseline = Vec::new();
    let mut incident = Vec::new();
    for i in 0..20i64 {
        baseline.push(json!([
            at(t0, i).to_string(),
            format!("served order {i} in {}ms", 10 + i)
        ]));
        incident.push(json!([
            at(t0, 300 + i).to_string(),
            format!("served order {} in {}ms", 100 + i, 5 + i)
        ]));
        incident.push(json!([
            at(t0, 300 + i).to_string(),
            format!("connection refused to 10.0.0.{i}:5432 after {i}s")
        ]));
    }
    let push = json!({"streams": [
        {"stream": {"service_name": "worker"}, "values": baseline},
        {"stream": {"service_name": "worker"}, "values": incident}]});
    let response = reqwest::Client::new()
        .post(format!("{}/loki/api/v1/push", server.url()))
        .json(&push)
        .send()
        .await
        .expect("push");
    assert_eq!(response.status(), 204);
    for phase in ["hot", "cold"] {
        let (status, body) = get(
            &server,
            "/api/v1/logs/patterns",
            &[
                ("service", "worker".to_string()),
                ("start", at(t0, 300).to_string()),
                ("end", at(t0, 360).to_string()),
                ("step", "10s".to_string()),
                ("baseline_start", t0.to_string()),
                ("baseline_end", at(t0, 60).to_string()),
            ],
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let patterns = body["data"]["patterns"].as_array().expect("patterns");
        let templates: BTreeSet<&str> = patterns
            .iter()
            .map(|p| p["template"].as_str().unwrap())
            .collect();
        assert_eq!(
            templates,
            BTreeSet::from([
                "connection refused to <_> after <_>",
                "served order <_> in <_>"
            ]),
            "{phase}: {body}"
        );
        for p in patterns {
            assert_eq!(p["total"], 20, "{phase}");
            assert_eq!(p["buckets"].as_array().unwrap().len(), 2, "{phase}: {p}");
        }
        let changes = body["data"]["changes"].as_array().expect("changes");
        assert_eq!(changes.len(), 1, "{phase}: {body}");
        assert_eq!(changes[0]["kind"], "new");
        assert_eq!(
            changes[0]["template"],
            "connection refused to <_> after <_>"
        );
        assert_eq!(changes[0]["incident_count"], 20);
        if phase == "hot" {
            flush(&server).await;
        }
    }
}

/// Pages through every hit of `q` with `limit` lines per page; returns `(ts, body)`.
async fn all_pages(
    server: &common::TestServer,
    t0: i64,
    q: &str,
    limit: usize,
) -> Vec<(i64, String)> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..1_000 {
        let limit = limit.to_string();
        let mut params = vec![("q", q), ("limit", limit.as_str())];
        if let Some(cursor) = &cursor {
            params.push(("cursor", cursor.as_str()));
        }
        let data = search(server, t0, &params).await;
        for line in data["lines"].as_array().expect("lines") {
            out.push((
                line["ts_ns"].as_i64().expect("ts"),
                line["body"].as_str().expect("body").to_string(),
            ));
        }
        match data["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => return out,
        }
    }
    panic!("too many pages");
}

/// Many lines, some sharing a timestamp, half flushed: pages of the late-materialised
/// search (times first, rows later) hold every hit once, newest first, and the
/// histogram (counted from times alone) agrees.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paging_many_hits_hot_and_cold() {
    let server = common::TestServer::start().await;
    let t0 = t0();
    let http = reqwest::Client::new();
    let mut expected = Vec::new();
    for (round, level) in ["info", "error"].iter().enumerate() {
        let mut values = Vec::new();
        for i in 0..1_500i64 {
            // Two lines per millisecond: ties broken by the line's hash.
            let ts = t0 + 1_000_000_000 + round as i64 * 2_000_000_000 + (i / 2) * 1_000_000;
            let body = match i % 3 {
                0 => format!("request {round}-{i} served"),
                1 => format!("Request {round}-{i} refused"),
                _ => format!("cache hit {round}-{i}"),
            };
            if i % 3 != 2 {
                expected.push((ts, body.clone()));
            }
            values.push(json!([ts.to_string(), body]));
        }
        let push =
            json!({"streams": [{"stream": {"job": "bulk", "level": level}, "values": values}]});
        let response = http
            .post(format!("{}/loki/api/v1/push", server.url()))
            .json(&push)
            .send()
            .await
            .expect("push");
        assert_eq!(response.status(), 204);
        if round == 0 {
            flush(&server).await;
        }
    }
    expected.sort_by_key(|e| std::cmp::Reverse(e.0));
    for limit in [7, 100, 5_000] {
        let got = all_pages(&server, t0, "request", limit).await;
        assert_eq!(got.len(), expected.len(), "limit {limit}");
        let unique: BTreeSet<&(i64, String)> = got.iter().collect();
        assert_eq!(unique.len(), got.len(), "limit {limit}: duplicates");
        assert!(
            got.windows(2).all(|w| w[0].0 >= w[1].0),
            "limit {limit}: order"
        );
        let want: BTreeSet<&(i64, String)> = expected.iter().collect();
        assert_eq!(unique, want, "limit {limit}");
    }
    // A phrase (confirmed on the body) pages the same way.
    let got = all_pages(&server, t0, "\"request 1\"", 50).await;
    let want: BTreeSet<(i64, String)> = expected
        .iter()
        .filter(|(_, b)| b.to_lowercase().starts_with("request 1-"))
        .cloned()
        .collect();
    assert_eq!(got.iter().cloned().collect::<BTreeSet<_>>(), want);
    assert_eq!(got.len(), want.len());
    let (status, body) = get(
        &server,
        "/api/v1/logs/histogram",
        &[
            ("start", t0.to_string()),
            ("end", at(t0, 60).to_string()),
            ("step", "1s".to_string()),
            ("q", "request".to_string()),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["total"], json!(expected.len()), "{body}");
}
