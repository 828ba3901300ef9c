//! Scale-out across processes (issue 8): `sightline serve --role ingest|query|compact`
//! processes sharing a PostgreSQL catalog and a SeaweedFS S3 bucket, all started by the
//! test on free loopback ports and killed at its end.
//!
//! - Writes spread over two ingesters (the same log stream, the same trace, the same
//!   metric series through both), flushed, are answered exactly by either querier.
//! - An ingester killed with SIGKILL after acknowledged writes and before its flush
//!   replays its WAL on restart and uploads it: every acknowledged write is answered.
//! - Two compactors on one catalog merge a range exactly once (a lease the test holds
//!   first makes both of them skip it, visibly), and retention deletes expired
//!   segments' objects from the bucket and their catalog rows.

mod s3_support;
mod scale_out_support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use s3_support::{SECRET_KEY, Seaweed};
use scale_out_support::{Node, Postgres, eventually};
use serde_json::{Value, json};

const BUCKET: &str = "sightline-scale";
const PREFIX: &str = "cluster";
const SERVICE: &str = "scale-checkout";
const METRIC: &str = "scale_queue_depth";
const STEP_S: i64 = 15;
const NS: i64 = 1_000_000_000;

fn now_s() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

/// The shared part of every node's config: the bucket, the catalog, fast refreshes,
/// no background flush (the test flushes), plus `extra` (per-role settings).
fn config_text(
    seaweed: &Seaweed,
    credentials: &Path,
    postgres: &Postgres,
    node_id: &str,
    extra_storage: &str,
) -> String {
    format!(
        r#"[storage]
url = "s3://{BUCKET}/{PREFIX}"
flush_interval = "1h"
{extra_storage}

[storage.s3]
endpoint = "{endpoint}"
allow_http = true
request_timeout = "10s"
credentials_file = {credentials:?}

[storage.catalog]
url = "{catalog}"
password_file = {password:?}
node_id = "{node_id}"
refresh_interval = "200ms"
lease_ttl = "30s"
"#,
        endpoint = seaweed.endpoint(),
        credentials = credentials.display().to_string(),
        catalog = postgres.url(),
        password = postgres.password_file().display().to_string(),
    )
}

/// Postgres, SeaweedFS with the bucket, a credentials file, and a directory for nodes.
struct Cluster {
    postgres: Postgres,
    seaweed: Seaweed,
    dir: tempfile::TempDir,
    credentials: std::path::PathBuf,
}

impl Cluster {
    async fn start() -> Cluster {
        let postgres = Postgres::start();
        let seaweed = Seaweed::start(&[BUCKET]).await;
        let dir = tempfile::tempdir().expect("tempdir");
        let credentials = seaweed.credentials_file(dir.path(), SECRET_KEY);
        Cluster {
            postgres,
            seaweed,
            dir,
            credentials,
        }
    }

    fn node(&self, name: &str, role: &'static str, extra_storage: &str) -> Node {
        let text = config_text(
            &self.seaweed,
            &self.credentials,
            &self.postgres,
            name,
            extra_storage,
        );
        Node::start(self.dir.path(), name, role, &text)
    }

    /// Every object key under the cluster's prefix, listed through the S3 API.
    async fn keys(&self) -> BTreeSet<String> {
        self.seaweed
            .keys(BUCKET, PREFIX)
            .await
            .into_iter()
            .map(|key| key.trim_start_matches(&format!("{PREFIX}/")).to_string())
            .collect()
    }
}

async fn post_json(url: &str, body: &Value) {
    let response = reqwest::Client::new()
        .post(url)
        .json(body)
        .send()
        .await
        .expect("post");
    let status = response.status();
    assert!(
        status.is_success(),
        "{url}: {status} {:?}",
        response.text().await
    );
}

async fn get_json(url: &str, params: &[(&str, String)]) -> Result<Value, String> {
    let response = reqwest::Client::new()
        .get(url)
        .query(params)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    let body = response.text().await.map_err(|e| e.to_string())?;
    if !status.is_success() {
        return Err(format!("{url}: {status} {body}"));
    }
    serde_json::from_str(&body).map_err(|e| format!("{url}: {e}: {body}"))
}

/// Pushes log lines (timestamp ns, line) of the one test stream to a node (Loki push).
async fn push_lines(node: &Node, lines: &[(i64, String)]) {
    let values: Vec<Value> = lines
        .iter()
        .map(|(ts, line)| json!([ts.to_string(), line]))
        .collect();
    let body = json!({"streams": [{"stream": {"service_name": SERVICE}, "values": values}]});
    post_json(&format!("{}/loki/api/v1/push", node.url()), &body).await;
}

/// Every (timestamp ns, line) of the test stream a querier answers in `[start, end]`.
async fn query_lines(
    node: &Node,
    start_ns: i64,
    end_ns: i64,
) -> Result<Vec<(i64, String)>, String> {
    let body = get_json(
        &format!("{}/loki/api/v1/query_range", node.url()),
        &[
            ("query", format!("{{service_name=\"{SERVICE}\"}}")),
            ("start", start_ns.to_string()),
            ("end", end_ns.to_string()),
            ("limit", "5000".to_string()),
            ("direction", "forward".to_string()),
        ],
    )
    .await?;
    let mut lines: Vec<(i64, String)> = body["data"]["result"]
        .as_array()
        .ok_or_else(|| format!("no result: {body}"))?
        .iter()
        .flat_map(|stream| stream["values"].as_array().cloned().unwrap_or_default())
        .map(|pair| {
            (
                pair[0].as_str().unwrap_or("0").parse().unwrap_or(0),
                pair[1].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    lines.sort();
    Ok(lines)
}

/// One OTLP span: (span id, parent span id or "", name, start ns).
type Span = (&'static str, &'static str, &'static str, i64);

async fn push_spans(node: &Node, trace_id: &str, spans: &[Span]) {
    let spans: Vec<Value> = spans
        .iter()
        .map(|(id, parent, name, start)| {
            json!({"traceId": trace_id, "spanId": id, "parentSpanId": parent, "name": name,
                   "kind": 2, "startTimeUnixNano": start.to_string(),
                   "endTimeUnixNano": (start + 250_000_000).to_string()})
        })
        .collect();
    let body = json!({"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": SERVICE}}]},
        "scopeSpans": [{"spans": spans}]
    }]});
    post_json(&format!("{}/v1/traces", node.url()), &body).await;
}

/// The (span id, name) pairs of a trace through Tempo's trace-by-id API.
async fn query_trace(node: &Node, trace_id: &str) -> Result<BTreeSet<(String, String)>, String> {
    let body = get_json(&format!("{}/api/traces/{trace_id}", node.url()), &[]).await?;
    let spans = body["resourceSpans"]
        .as_array()
        .ok_or_else(|| format!("no resourceSpans: {body}"))?
        .iter()
        .flat_map(|r| r["scopeSpans"].as_array().cloned().unwrap_or_default())
        .flat_map(|s| s["spans"].as_array().cloned().unwrap_or_default())
        .map(|span| {
            (
                span["spanId"].as_str().unwrap_or_default().to_string(),
                span["name"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    Ok(spans)
}

/// Gauge points (queue label, timestamp s, value) written over OTLP/HTTP.
async fn push_points(node: &Node, points: &[(&str, i64, f64)]) {
    let points: Vec<Value> = points
        .iter()
        .map(|(queue, ts, value)| {
            json!({"timeUnixNano": (ts * NS).to_string(), "asDouble": value,
                   "attributes": [{"key": "queue", "value": {"stringValue": queue}}]})
        })
        .collect();
    let body = json!({"resourceMetrics": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": SERVICE}}]},
        "scopeMetrics": [{"metrics": [{"name": METRIC, "gauge": {"dataPoints": points}}]}]
    }]});
    post_json(&format!("{}/v1/metrics", node.url()), &body).await;
}

/// Every series of the test metric a querier answers over `[start, end]` (PromQL range
/// query at the write step): queue label -> (timestamp s, value).
async fn query_points(
    node: &Node,
    start_s: i64,
    end_s: i64,
) -> Result<BTreeMap<String, Vec<(i64, f64)>>, String> {
    let body = get_json(
        &format!("{}/api/v1/query_range", node.url()),
        &[
            ("query", METRIC.to_string()),
            ("start", start_s.to_string()),
            ("end", end_s.to_string()),
            ("step", format!("{STEP_S}s")),
        ],
    )
    .await?;
    let mut series = BTreeMap::new();
    for result in body["data"]["result"]
        .as_array()
        .ok_or_else(|| format!("no result: {body}"))?
    {
        let queue = result["metric"]["queue"]
            .as_str()
            .unwrap_or("?")
            .to_string();
        let values: Vec<(i64, f64)> = result["values"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|pair| {
                (
                    pair[0].as_f64().unwrap_or(0.0) as i64,
                    pair[1]
                        .as_str()
                        .unwrap_or("NaN")
                        .parse()
                        .unwrap_or(f64::NAN),
                )
            })
            .collect();
        let previous = series.insert(queue.clone(), values);
        if previous.is_some() {
            return Err(format!("two series with queue={queue}: {body}"));
        }
    }
    Ok(series)
}

/// Waits until `querier` answers exactly `expected` lines (fails with the last answer).
async fn expect_lines(querier: &Node, start_ns: i64, end_ns: i64, expected: &[(i64, String)]) {
    eventually(
        &format!("{} to answer every log line", querier.name),
        || async {
            let lines = query_lines(querier, start_ns, end_ns).await?;
            if lines == expected {
                Ok(())
            } else {
                Err(format!(
                    "{} lines, expected {}: {lines:?}",
                    lines.len(),
                    expected.len()
                ))
            }
        },
    )
    .await;
}

async fn expect_trace(querier: &Node, trace_id: &str, expected: &[Span]) {
    let expected: BTreeSet<(String, String)> = expected
        .iter()
        .map(|(id, _, name, _)| (id.to_string(), name.to_string()))
        .collect();
    eventually(
        &format!("{} to answer trace {trace_id}", querier.name),
        || async {
            let spans = query_trace(querier, trace_id).await?;
            if spans == expected {
                Ok(())
            } else {
                Err(format!("{spans:?}"))
            }
        },
    )
    .await;
}

/// Segments in the catalog written by `node`.
fn segments_by(postgres: &Postgres, node: &str) -> u64 {
    postgres
        .value(&format!(
            "SELECT count(*) FROM segments WHERE created_by = '{node}'"
        ))
        .parse()
        .expect("count")
}

const TRACE_A: &str = "7a0000000000000000000000000000a1";
const TRACE_B: &str = "7a0000000000000000000000000000b2";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_through_two_ingesters_are_answered_by_both_queriers_and_survive_a_sigkill() {
    let cluster = Cluster::start().await;
    let mut ingesters = [
        cluster.node("ingest-1", "ingest", ""),
        cluster.node("ingest-2", "ingest", ""),
    ];
    let mut queriers = [
        cluster.node("query-1", "query", ""),
        cluster.node("query-2", "query", ""),
    ];
    for node in ingesters.iter_mut().chain(queriers.iter_mut()) {
        node.wait_ready().await;
    }

    // (a) One log stream, one trace and one metric spread over both ingesters.
    let t0_s = now_s() - 600;
    let t0 = t0_s * NS;
    let line = |i: i64| {
        (
            t0 + i * NS,
            format!("order {i:02} accepted by ingester {}", i % 2 + 1),
        )
    };
    let first: Vec<(i64, String)> = (0..20).map(line).collect();
    for (i, entry) in first.iter().enumerate() {
        push_lines(&ingesters[i % 2], std::slice::from_ref(entry)).await;
    }
    let trace_a: [Span; 4] = [
        ("a100000000000001", "", "checkout", t0),
        ("a100000000000002", "a100000000000001", "reserve", t0 + NS),
        (
            "a100000000000003",
            "a100000000000001",
            "charge",
            t0 + 2 * NS,
        ),
        (
            "a100000000000004",
            "a100000000000003",
            "card-gateway",
            t0 + 3 * NS,
        ),
    ];
    for (i, span) in trace_a.iter().enumerate() {
        push_spans(&ingesters[i % 2], TRACE_A, std::slice::from_ref(span)).await;
    }
    // Series "one" only through ingester 1, "two" only through ingester 2, and "shared"
    // alternating between them point by point.
    let value = |queue: &str, i: i64| match queue {
        "one" => i as f64,
        "two" => 100.0 + i as f64,
        _ => 1000.0 + i as f64 * 0.5,
    };
    let mut written_points: BTreeMap<String, Vec<(i64, f64)>> = BTreeMap::new();
    for i in 0..10 {
        let ts = t0_s + i * STEP_S;
        let shared_via = (i % 2) as usize;
        for (queue, via) in [("one", 0), ("two", 1), ("shared", shared_via)] {
            push_points(&ingesters[via], &[(queue, ts, value(queue, i))]).await;
            written_points
                .entry(queue.to_string())
                .or_default()
                .push((ts, value(queue, i)));
        }
    }
    for ingester in &ingesters {
        assert!(
            ingester.flush().await >= 3,
            "{} flushed logs, spans and samples",
            ingester.name
        );
    }
    for ingester in &ingesters {
        assert!(
            segments_by(&cluster.postgres, &ingester.name) >= 3,
            "{}",
            ingester.name
        );
    }
    let (start, end) = (t0 - 60 * NS, t0 + 3600 * NS);
    for querier in &queriers {
        expect_lines(querier, start, end, &first).await;
        expect_trace(querier, TRACE_A, &trace_a).await;
    }
    let keys = cluster.keys().await;
    assert!(
        keys.iter().filter(|k| k.ends_with(".parquet")).count() >= 6,
        "both ingesters uploaded segments: {keys:?}"
    );

    // (b) Acknowledged writes to both, then SIGKILL of ingester 1 before its flush.
    let second: Vec<(i64, String)> = (20..30).map(line).collect();
    for (i, entry) in second.iter().enumerate() {
        push_lines(&ingesters[i % 2], std::slice::from_ref(entry)).await;
    }
    let trace_b: [Span; 2] = [
        ("b200000000000001", "", "refund", t0 + 30 * NS),
        (
            "b200000000000002",
            "b200000000000001",
            "ledger",
            t0 + 31 * NS,
        ),
    ];
    push_spans(&ingesters[0], TRACE_B, &trace_b[..1]).await;
    push_spans(&ingesters[1], TRACE_B, &trace_b[1..]).await;
    for i in 10..14 {
        let ts = t0_s + i * STEP_S;
        for (queue, via) in [("one", 0), ("two", 1), ("shared", 0)] {
            push_points(&ingesters[via], &[(queue, ts, value(queue, i))]).await;
            written_points
                .entry(queue.to_string())
                .or_default()
                .push((ts, value(queue, i)));
        }
    }
    let flushed_before_kill = segments_by(&cluster.postgres, "ingest-1");
    ingesters[0].kill_9();
    assert_eq!(
        segments_by(&cluster.postgres, "ingest-1"),
        flushed_before_kill,
        "nothing of the second batch was flushed by ingester 1 before the kill"
    );
    ingesters[0].restart().await;
    assert!(
        ingesters[0].log().contains("replayed wal file"),
        "the restarted ingester replayed its wal:\n{}",
        ingesters[0].log()
    );
    for ingester in &ingesters {
        assert!(
            ingester.flush().await >= 3,
            "{} flushed its part of the second batch",
            ingester.name
        );
    }
    assert!(segments_by(&cluster.postgres, "ingest-1") >= flushed_before_kill + 3);
    let every_line: Vec<(i64, String)> = first.iter().chain(&second).cloned().collect();
    for querier in &queriers {
        expect_lines(querier, start, end, &every_line).await;
        expect_trace(querier, TRACE_A, &trace_a).await;
        expect_trace(querier, TRACE_B, &trace_b).await;
    }

    // Metrics last, so that their check does not hide the others': the same label set
    // written through two ingesters is one series with every point, exact values.
    let last_s = t0_s + 13 * STEP_S;
    for querier in &queriers {
        let expected = written_points.clone();
        eventually(
            &format!("{} to answer every metric point", querier.name),
            || {
                let expected = expected.clone();
                async move {
                    let series = query_points(querier, t0_s, last_s).await?;
                    if series == expected {
                        Ok(())
                    } else {
                        Err(format!("{series:?}, expected {expected:?}"))
                    }
                }
            },
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_compactors_merge_a_range_once_and_retention_empties_the_bucket() {
    let cluster = Cluster::start().await;
    let mut ingester = cluster.node("ingest-1", "ingest", "");
    let mut querier = cluster.node("query-1", "query", "");
    ingester.wait_ready().await;
    querier.wait_ready().await;

    // Fresh lines in four flushes: four small log segments of one range (tenant, day).
    let fresh_s = now_s() - 120;
    let fresh = fresh_s * NS;
    let mut lines = Vec::new();
    for round in 0..4 {
        let batch: Vec<(i64, String)> = (0..5)
            .map(|i| {
                (
                    fresh + (round * 5 + i) * 1_000_000,
                    format!("round {round} line {i}"),
                )
            })
            .collect();
        push_lines(&ingester, &batch).await;
        assert!(ingester.flush().await >= 1);
        lines.extend(batch);
    }
    // Old lines and spans (two days ago), past the compactors' one-hour retention.
    let old = (now_s() - 2 * 86_400) * NS;
    let old_lines: Vec<(i64, String)> =
        (0..3).map(|i| (old + i, format!("old line {i}"))).collect();
    push_lines(&ingester, &old_lines).await;
    push_spans(
        &ingester,
        TRACE_B,
        &[("b200000000000009", "", "old-span", old)],
    )
    .await;
    assert!(ingester.flush().await >= 2);

    let postgres = &cluster.postgres;
    let cutoff = (now_s() - 3600) * NS;
    let expired_objects: Vec<String> = postgres
        .query(&format!(
            "SELECT path FROM segments WHERE max_time_ns < {cutoff} \
             UNION ALL SELECT index_path FROM segments WHERE max_time_ns < {cutoff} AND index_path IS NOT NULL"
        ));
    assert!(
        expired_objects.len() >= 3,
        "a log and a span segment and a log index: {expired_objects:?}"
    );
    let keys = cluster.keys().await;
    for object in &expired_objects {
        assert!(keys.contains(object), "{object} is in the bucket: {keys:?}");
    }
    let inputs: Vec<String> = postgres.query(&format!(
        "SELECT id FROM segments WHERE table_name = 'logs' AND min_time_ns >= {fresh} ORDER BY id"
    ));
    assert_eq!(inputs.len(), 4, "{inputs:?}");
    let day = fresh.div_euclid(86_400 * NS);

    // The test holds the range's lease for a few seconds: both compactors see it and skip.
    let range = format!("compact/default/logs/{day}");
    postgres.query(&format!(
        "INSERT INTO leases (range_key, holder, expires_at) \
         VALUES ('{range}', 'scale-out-test', now() + interval '3 seconds')"
    ));
    let maintenance = r#"compaction_interval = "300ms"
compaction_min_segments = 3
logs_retention = "1h"
spans_retention = "1h"
metrics_retention = "1h""#;
    let mut compactors = [
        cluster.node("compact-1", "compact", maintenance),
        cluster.node("compact-2", "compact", maintenance),
    ];
    for compactor in compactors.iter_mut() {
        compactor.wait_ready().await;
    }

    // (d) Retention: the expired objects leave the bucket and their rows the catalog.
    eventually(
        "retention to delete the expired objects and rows",
        || async {
            let rows = postgres.value(&format!(
                "SELECT count(*) FROM segments WHERE max_time_ns < {cutoff}"
            ));
            let keys = cluster.keys().await;
            let left: Vec<&String> = expired_objects
                .iter()
                .filter(|o| keys.contains(*o))
                .collect();
            if rows == "0" && left.is_empty() {
                Ok(())
            } else {
                Err(format!("{rows} rows, objects left: {left:?}"))
            }
        },
    )
    .await;
    let answered = query_lines(&querier, old - 60 * NS, old + 60 * NS).await;
    eventually("the querier to forget the expired lines", || async {
        match query_lines(&querier, old - 60 * NS, old + 60 * NS).await {
            Ok(lines) if lines.is_empty() => Ok(()),
            other => Err(format!("{other:?} (first answer {answered:?})")),
        }
    })
    .await;

    // (c) Compaction: once the test's lease expired, exactly one compactor merged the range.
    let merged = eventually("the range to be merged", || async {
        let rows = postgres.query(&format!(
            "SELECT id || ':' || level || ':' || row_count || ':' || created_by FROM segments \
             WHERE table_name = 'logs' AND min_time_ns >= {fresh}"
        ));
        match rows.as_slice() {
            [one] if one.split(':').nth(1) == Some("1") => Ok(one.clone()),
            _ => Err(format!("{rows:?}")),
        }
    })
    .await;
    let fields: Vec<&str> = merged.split(':').collect();
    assert_eq!(
        fields[2], "20",
        "the merged segment holds every row once: {merged}"
    );
    let input_list = inputs.join(",");
    assert_eq!(
        postgres.value(&format!(
            "SELECT count(*) FROM segments WHERE id IN ({input_list})"
        )),
        "0",
        "the inputs' rows are gone"
    );
    let merges: Vec<usize> = compactors
        .iter()
        .map(|c| {
            c.log()
                .lines()
                .filter(|l| l.contains("compacted segments") && l.contains("logs"))
                .count()
        })
        .collect();
    assert_eq!(
        merges.iter().sum::<usize>(),
        1,
        "one merge in all: {merges:?}"
    );
    let winner = if merges[0] == 1 {
        "compact-1"
    } else {
        "compact-2"
    };
    assert_eq!(fields[3], winner, "{merged}");
    for compactor in &compactors {
        assert!(
            compactor
                .log()
                .contains("another node holds the compaction lease"),
            "{} skipped the range while the test held its lease:\n{}",
            compactor.name,
            compactor.log()
        );
    }
    // The merged object is in the bucket, and no duplicate row is answered.
    let merged_path = postgres.value(&format!(
        "SELECT path FROM segments WHERE id = {}",
        fields[0]
    ));
    assert!(cluster.keys().await.contains(&merged_path));
    expect_lines(&querier, fresh - 60 * NS, fresh + 60 * NS, &lines).await;
    // Nothing is left to merge: a few more rounds change nothing.
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let total: usize = compactors
        .iter()
        .map(|c| c.log().matches("compacted segments").count())
        .sum();
    assert_eq!(total, 1, "no range was merged twice");
    assert_eq!(
        postgres.value("SELECT count(*) FROM leases WHERE range_key LIKE 'compact/%' AND holder <> 'scale-out-test'"),
        "0"
    );
}
