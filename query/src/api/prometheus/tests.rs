//! In-process tests of the Prometheus API router over a real storage engine.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use proto::TenantId;
use storage::Storage;
use storage::metrics::{Exemplar, MetricMetadata, MetricType, MetricsWrite, Sample, SeriesWrite};
use storage::series::Labels;
use tower::ServiceExt;

use super::*;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    Labels::new(
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
    )
    .unwrap()
}

async fn fixture() -> (tempfile::TempDir, Router) {
    let dir = tempfile::tempdir().unwrap();
    let storage: Arc<Storage> = Storage::open(storage::Config::default(), dir.path())
        .await
        .unwrap();
    let tenant = TenantId::default();
    let series = |pairs: &[(&str, &str)], start: i64| SeriesWrite {
        labels: labels(pairs),
        samples: (0..4)
            .map(|i| Sample {
                ts_ms: start + i * 15_000,
                value: i as f64,
            })
            .collect(),
        exemplars: Vec::new(),
    };
    let mut bucket = series(
        &[("__name__", "lat_bucket"), ("le", "0.5"), ("job", "api")],
        1_000_000,
    );
    bucket.exemplars.push(Exemplar {
        ts_ms: 1_015_500,
        value: 0.27,
        trace_id: Some("4bf92f3577b34da6a3ce929d0e0e4736".parse().unwrap()),
        span_id: None,
        labels: [("user".to_string(), "u1".to_string())].into(),
    });
    let write = MetricsWrite {
        series: vec![
            series(&[("__name__", "up"), ("job", "api")], 1_000_000),
            series(&[("__name__", "up"), ("job", "db")], 5_000_000),
            bucket,
        ],
        metadata: vec![MetricMetadata {
            metric: "up".to_string(),
            kind: MetricType::Gauge,
            help: "Target is up.".to_string(),
            unit: String::new(),
        }],
    };
    storage.append_metrics(&tenant, &write).await.unwrap();
    let context = QueryContext::with_storage(crate::Config::default(), storage, tenant);
    (dir, routes().with_state(context))
}

async fn call(router: &Router, request: Request<Body>) -> (StatusCode, serde_json::Value) {
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "application/json",
        "content type"
    );
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, serde_json::from_slice(&body).unwrap())
}

async fn get_json(router: &Router, uri: &str) -> (StatusCode, serde_json::Value) {
    call(router, Request::get(uri).body(Body::empty()).unwrap()).await
}

async fn post_form(router: &Router, uri: &str, form: &str) -> (StatusCode, serde_json::Value) {
    let request = Request::post(uri)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(form.to_string()))
        .unwrap();
    call(router, request).await
}

#[tokio::test]
async fn series_labels_and_values() {
    let (_dir, router) = fixture().await;
    let (status, body) = get_json(&router, "/api/v1/series?match[]=up").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        serde_json::json!({"status":"success","data":[
            {"__name__":"up","job":"api"},{"__name__":"up","job":"db"}]})
    );
    // POST form, restricted in time: only the series with samples in [1000 s, 1100 s].
    let (_, body) = post_form(
        &router,
        "/api/v1/series",
        "match%5B%5D=%7Bjob%3D%22api%22%7D&match%5B%5D=up&start=1000&end=1100",
    )
    .await;
    assert_eq!(
        body["data"],
        serde_json::json!([
            {"__name__":"lat_bucket","job":"api","le":"0.5"},
            {"__name__":"up","job":"api"}])
    );
    let (_, body) = get_json(&router, "/api/v1/labels").await;
    assert_eq!(body["data"], serde_json::json!(["__name__", "job", "le"]));
    let (_, body) = get_json(&router, "/api/v1/labels?match[]=up&limit=1").await;
    assert_eq!(body["data"], serde_json::json!(["__name__"]));
    assert_eq!(body["warnings"], serde_json::json!([TRUNCATED_WARNING]));
    let (_, body) = get_json(&router, "/api/v1/label/__name__/values").await;
    assert_eq!(body["data"], serde_json::json!(["lat_bucket", "up"]));
    let (_, body) = get_json(&router, "/api/v1/label/job/values?start=4000&end=6000").await;
    assert_eq!(body["data"], serde_json::json!(["db"]));
    let (_, body) = get_json(&router, "/api/v1/label/job/values?match[]=lat_bucket").await;
    assert_eq!(body["data"], serde_json::json!(["api"]));
    let (_, body) = get_json(&router, "/api/v1/label/nope/values").await;
    assert_eq!(body["data"], serde_json::json!([]));
}

#[tokio::test]
async fn bad_parameters_are_bad_data() {
    let (_dir, router) = fixture().await;
    for uri in [
        "/api/v1/series",
        "/api/v1/series?match[]=rate(up%5B5m%5D)",
        "/api/v1/series?match[]=%7Bjob%3D~%22.*%22%7D",
        "/api/v1/labels?start=yesterday",
        "/api/v1/labels?start=10&end=5",
        "/api/v1/labels?limit=x",
        "/api/v1/query_range?query=up&start=1&end=2&step=0",
        "/api/v1/query_range?query=up&start=1&end=2&step=abc",
        "/api/v1/query_range?query=up&start=0&end=11001&step=1",
        "/api/v1/query_range?query=up&start=2&end=1&step=1",
        "/api/v1/query?query=up&time=abc",
        "/api/v1/query?query=up&timeout=-1s",
        "/api/v1/query_exemplars?query=up%7B",
        "/api/v1/format_query?query=sum(",
    ] {
        let (status, body) = get_json(&router, uri).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {body}");
        assert_eq!(body["status"], "error", "{uri}");
        assert_eq!(body["errorType"], "bad_data", "{uri}");
        assert!(
            body["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{uri}"
        );
    }
    let (_, body) = get_json(&router, "/api/v1/query_range?query=up&start=1&end=2&step=0").await;
    assert_eq!(
        body["error"],
        "invalid parameter \"step\": zero or negative query resolution step widths are not accepted. Try a positive integer"
    );
    // Exactly 11,000 steps passes the API's check (Prometheus: `(end-start)/step > 11000`).
    let params = Params::from_pairs(&[("start", "0"), ("end", "11000"), ("step", "1")]);
    assert_eq!(range_bounds(&params).unwrap(), (0, 11_000_000, 1000));
}

#[tokio::test]
async fn metadata_and_exemplars() {
    let (_dir, router) = fixture().await;
    let (_, body) = get_json(&router, "/api/v1/metadata").await;
    assert_eq!(
        body["data"],
        serde_json::json!({"up":[{"type":"gauge","help":"Target is up.","unit":""}]})
    );
    let (_, body) = get_json(&router, "/api/v1/metadata?metric=nope").await;
    assert_eq!(body["data"], serde_json::json!({}));
    let (_, body) = post_form(
        &router,
        "/api/v1/query_exemplars",
        "query=histogram_quantile(0.9%2C+sum+by+(le)(rate(lat_bucket%5B5m%5D)))+or+up&start=1000&end=1100",
    )
    .await;
    assert_eq!(
        body["data"],
        serde_json::json!([{
            "seriesLabels":{"__name__":"lat_bucket","job":"api","le":"0.5"},
            "exemplars":[{"labels":{"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","user":"u1"},
                          "value":"0.27","timestamp":1015.5}]}])
    );
    let (_, body) = get_json(
        &router,
        "/api/v1/query_exemplars?query=lat_bucket&start=2000&end=3000",
    )
    .await;
    assert_eq!(body["data"], serde_json::json!([]));
}

#[tokio::test]
async fn status_endpoints() {
    let (_dir, router) = fixture().await;
    let (_, body) = get_json(&router, "/api/v1/status/buildinfo").await;
    assert_eq!(body["data"]["version"], status::REPORTED_VERSION);
    assert!(body["data"].get("features").is_none());
    let (_, body) = get_json(&router, "/api/v1/rules").await;
    assert_eq!(
        body,
        serde_json::json!({"status":"success","data":{"groups":[]}})
    );
    let (_, body) = get_json(&router, "/api/v1/alerts").await;
    assert_eq!(body["data"], serde_json::json!({"alerts":[]}));
    let (_, body) = get_json(
        &router,
        "/api/v1/format_query?query=sum(rate(x%5B5m%5D))by(job)",
    )
    .await;
    assert_eq!(body["data"], "sum by (job) (rate(x[5m]))");
}

#[test]
fn errors_map_to_prometheus_types() {
    let cases = [
        (Error::BadRequest("x".into()), 400, "bad_data"),
        (Error::Execution("x".into()), 422, "execution"),
        (Error::TooLarge("x".into()), 422, "execution"),
        (Error::Timeout(Duration::from_secs(1)), 503, "timeout"),
        (Error::NotReady("replay"), 503, "unavailable"),
        (Error::Internal("x".into()), 500, "internal"),
        (Error::NotFound("x".into()), 404, "not_found"),
    ];
    for (error, status, error_type) in cases {
        let (got_status, got_type) = classify(&error);
        assert_eq!(
            (got_status.as_u16(), got_type),
            (status, error_type),
            "{error}"
        );
    }
}

#[test]
fn range_results_become_sorted_matrices() {
    let a = labels(&[("__name__", "a")]);
    let b = labels(&[("__name__", "b")]);
    let value = into_matrix(Value::Vector(vec![
        InstantSample {
            labels: b.clone(),
            t_ms: 1,
            v: 1.0,
        },
        InstantSample {
            labels: a.clone(),
            t_ms: 1,
            v: 2.0,
        },
    ]))
    .unwrap();
    let Value::Matrix(series) = value else {
        panic!("matrix")
    };
    assert_eq!(series[0].labels, a);
    assert_eq!(series[1].labels, b);
    let Value::Matrix(series) = into_matrix(Value::Scalar { t_ms: 5, v: 2.0 }).unwrap() else {
        panic!("matrix")
    };
    assert_eq!(series[0].points, vec![(5, 2.0)]);
    assert!(
        into_matrix(Value::String {
            t_ms: 1,
            v: "x".into()
        })
        .is_err()
    );
    let mut warnings = Vec::new();
    let mut vector = Value::Vector(vec![
        InstantSample {
            labels: a,
            t_ms: 1,
            v: 1.0,
        },
        InstantSample {
            labels: b,
            t_ms: 1,
            v: 1.0,
        },
    ]);
    apply_limit(&mut vector, 1, &mut warnings);
    assert_eq!(warnings, [TRUNCATED_WARNING]);
    assert!(matches!(vector, Value::Vector(v) if v.len() == 1));
}

#[tokio::test]
async fn queries_are_parsed_before_evaluation() {
    let (_dir, router) = fixture().await;
    let (status, body) = get_json(&router, "/api/v1/query?query=sum(up&time=1").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("invalid parameter \"query\": ")
    );
    let (status, body) = post_form(
        &router,
        "/api/v1/query_range",
        "query=up%5B5m%5D&start=1&end=100&step=10",
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body["error"],
        "invalid parameter \"query\": invalid expression type \"range vector\" for range query, must be Scalar or instant Vector"
    );
}

#[tokio::test]
async fn lookback_delta_applies_per_request() {
    let (_dir, router) = fixture().await;
    // up{job="api"} has its last sample at 1045 s; 400 s later the default 5m misses it.
    let value = |body: &serde_json::Value| body["data"]["result"][0]["value"][1].clone();
    let uri = "/api/v1/query?query=up%7Bjob%3D%22api%22%7D&time=1445";
    let (status, body) = get_json(&router, uri).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["result"], serde_json::json!([]));
    let (_, body) = get_json(&router, &format!("{uri}&lookback_delta=10m")).await;
    assert_eq!(value(&body), "3", "{body}");
    let (_, body) = post_form(
        &router,
        "/api/v1/query",
        "query=up%7Bjob%3D%22api%22%7D&time=1445&lookback_delta=401",
    )
    .await;
    assert_eq!(value(&body), "3", "{body}");
    // Zero and negative keep the configured lookback, as in Prometheus.
    for keep in ["0", "-600"] {
        let (status, body) = get_json(&router, &format!("{uri}&lookback_delta={keep}")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["data"]["result"], serde_json::json!([]), "{keep}");
    }
    // The window stays left-open: a 1s lookback at 1046 s misses the sample at 1045 s.
    let short = "/api/v1/query?query=up%7Bjob%3D%22api%22%7D&lookback_delta=1s&time=";
    let (_, body) = get_json(&router, &format!("{short}1046")).await;
    assert_eq!(body["data"]["result"], serde_json::json!([]), "{body}");
    let (_, body) = get_json(&router, &format!("{short}1045.5")).await;
    assert_eq!(value(&body), "3", "{body}");
    // Range queries take it too: every step from 1100 s to 1400 s sees the last sample.
    let (_, body) = get_json(
        &router,
        "/api/v1/query_range?query=up%7Bjob%3D%22api%22%7D&start=1100&end=1400&step=100&lookback_delta=6m",
    )
    .await;
    let values = body["data"]["result"][0]["values"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(values.len(), 4, "{body}");
    assert!(values.iter().all(|p| p[1] == "3"), "{body}");
    let (_, body) = get_json(
        &router,
        "/api/v1/query_range?query=up%7Bjob%3D%22api%22%7D&start=1100&end=1400&step=100",
    )
    .await;
    assert_eq!(
        body["data"]["result"][0]["values"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    // Unparsable or beyond the bound: bad_data.
    for bad in ["abc", "8d"] {
        let (status, body) = get_json(&router, &format!("{uri}&lookback_delta={bad}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(body["errorType"], "bad_data");
        assert!(
            body["error"].as_str().unwrap().contains("lookback_delta"),
            "{body}"
        );
    }
}

#[tokio::test]
async fn parse_query_answers_the_syntax_tree() {
    let (_dir, router) = fixture().await;
    let (status, body) = get_json(&router, "/api/v1/parse_query?query=foo/bar").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "success");
    let selector = |name: &str| {
        serde_json::json!({
            "type": "vectorSelector",
            "name": name,
            "offset": 0,
            "offsetExpr": null,
            "matchers": [{"name": "__name__", "type": "=", "value": name}],
            "timestamp": null,
            "startOrEnd": null,
            "anchored": false,
            "smoothed": false,
        })
    };
    assert_eq!(
        body["data"],
        serde_json::json!({
            "type": "binaryExpr",
            "op": "/",
            "lhs": selector("foo"),
            "rhs": selector("bar"),
            "matching": {
                "card": "one-to-one",
                "labels": [],
                "on": false,
                "include": [],
                "fillValues": {"lhs": null, "rhs": null},
            },
            "bool": false,
        })
    );
    let (status, body) = post_form(
        &router,
        "/api/v1/parse_query",
        "query=histogram_quantile(0.9%2C+sum+by+(le)+(rate(lat_bucket%5B5m%5D)))",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["type"], "call");
    assert_eq!(body["data"]["func"]["name"], "histogram_quantile");
    assert_eq!(
        body["data"]["func"]["argTypes"],
        serde_json::json!(["scalar", "vector"])
    );
    assert_eq!(body["data"]["args"][0]["val"], "0.9");
    assert_eq!(
        body["data"]["args"][1]["grouping"],
        serde_json::json!(["le"])
    );
    assert_eq!(body["data"]["args"][1]["expr"]["args"][0]["range"], 300_000);
    let (status, body) = get_json(&router, "/api/v1/parse_query?query=sum(").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["errorType"], "bad_data");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("invalid parameter \"query\": "),
        "{body}"
    );
}

#[tokio::test]
async fn byte_escapes_that_are_not_utf8_are_invalid_label_names() {
    let (_dir, router) = fixture().await;
    for query in [
        r#"count_values("a\xc5z", up)"#,
        r#"label_replace(up, "\xff", "", "job", "(.*)")"#,
    ] {
        let form = format!("query={}&start=1000&end=1060&step=15", url_encode(query));
        let (status, body) = post_form(&router, "/api/v1/query_range", &form).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{query}: {body}");
        assert_eq!(body["errorType"], "execution");
    }
}

fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
