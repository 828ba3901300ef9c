//! Series ids unique across ingesters (issue 8): two storage engines share a
//! PostgreSQL catalog and one segment directory, write the same and different label
//! sets, and a reader node sees one series per label set with every sample, before and
//! after compaction and across an ingester restart (WAL replay). A single node with the
//! embedded catalog keeps numbering its series from 0, so data written before
//! ordinals existed reads as before.

mod scale_support;

use std::path::Path;
use std::sync::Arc;

use proto::{HumanDuration, SeriesId, TenantId};
use scale_support::postgres::Postgres;
use storage::metrics::{MetricsWrite, Sample, SeriesWrite};
use storage::series::{Labels, MatchOp, Matcher, series_id_base};
use storage::{Duties, Storage, Table};

const MINUTE_MS: i64 = 60_000;

fn config(postgres: Option<&Postgres>, shared: &Path, node: &str) -> storage::Config {
    let mut config = storage::Config {
        url: Some(format!("file://{}", shared.display())),
        compaction_min_segments: 2,
        // Background work never runs by itself during the test: the test drives it.
        flush_interval: HumanDuration::secs(3600),
        compaction_interval: HumanDuration::secs(3600),
        ..storage::Config::default()
    };
    if let Some(postgres) = postgres {
        config.catalog.url = Some(postgres.url());
        config.catalog.password_file = Some(postgres.password_file());
        config.catalog.node_id = Some(node.to_string());
        config.catalog.refresh_interval = HumanDuration::secs(3600);
    }
    config
}

async fn open(
    postgres: Option<&Postgres>,
    shared: &Path,
    node: &str,
    duties: Duties,
) -> (Arc<Storage>, tempfile::TempDir) {
    let local = tempfile::tempdir().unwrap();
    let storage = Storage::open_with_duties(config(postgres, shared, node), local.path(), duties)
        .await
        .unwrap();
    (storage, local)
}

fn labels(name: &str, job: &str) -> Labels {
    Labels::new(vec![
        ("__name__".to_string(), name.to_string()),
        ("job".to_string(), job.to_string()),
    ])
    .unwrap()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Writes `values` one minute apart from `start_ms`.
async fn write(
    storage: &Storage,
    tenant: &TenantId,
    labels: &Labels,
    start_ms: i64,
    values: &[f64],
) {
    let samples = values
        .iter()
        .enumerate()
        .map(|(i, value)| Sample {
            ts_ms: start_ms + i as i64 * MINUTE_MS,
            value: *value,
        })
        .collect();
    let write = MetricsWrite {
        series: vec![SeriesWrite {
            labels: labels.clone(),
            samples,
            exemplars: Vec::new(),
        }],
        metadata: Vec::new(),
    };
    storage.append_metrics(tenant, &write).await.unwrap();
}

/// Every series named `name` as the reader sees it: labels and (time, value) samples.
async fn read(storage: &Storage, tenant: &TenantId, name: &str) -> Vec<(Labels, Vec<(i64, f64)>)> {
    let matcher = Matcher::new(MatchOp::Equal, "__name__", name).unwrap();
    let series = storage.select_series(tenant, &[matcher], i64::MIN, i64::MAX);
    let ids: Vec<SeriesId> = series.iter().map(|(id, _)| *id).collect();
    let found = storage
        .scan_series_samples(tenant, &ids, i64::MIN + 1, i64::MAX - 1, u64::MAX)
        .await
        .unwrap()
        .unwrap();
    let mut out = Vec::new();
    for (id, labels) in series {
        let samples = found
            .iter()
            .find(|s| s.id == id)
            .map(|s| s.ts.iter().copied().zip(s.values.iter().copied()).collect())
            .unwrap_or_default();
        out.push((labels, samples));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn expected(start_ms: i64, values: &[f64]) -> Vec<(i64, f64)> {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| (start_ms + i as i64 * MINUTE_MS, *v))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_ingesters_sharing_a_catalog_write_distinct_ids_and_a_reader_merges_label_sets() {
    let postgres = Postgres::start();
    let shared = tempfile::tempdir().unwrap();
    let tenant = TenantId::new("ids").unwrap();
    let t0 = now_ms() - 30 * MINUTE_MS;

    let (a, a_dir) = open(Some(&postgres), shared.path(), "ingest-a", Duties::INGEST).await;
    let (b, _b_dir) = open(Some(&postgres), shared.path(), "ingest-b", Duties::INGEST).await;
    assert_ne!(a.node_ordinal(), b.node_ordinal());
    assert!(a.node_ordinal() >= 1 && b.node_ordinal() >= 1);

    // The same label set through both ingesters (interleaved times, one shared
    // timestamp), and one series only each of them has.
    let shared_series = labels("up", "api");
    write(&a, &tenant, &shared_series, t0, &[1.0, 2.0, 3.0]).await;
    write(&b, &tenant, &shared_series, t0 + 3 * MINUTE_MS, &[4.0, 5.0]).await;
    write(&a, &tenant, &labels("up", "only-a"), t0, &[10.0]).await;
    write(&b, &tenant, &labels("up", "only-b"), t0, &[20.0]).await;
    a.flush().await.unwrap();
    b.flush().await.unwrap();

    // Ingester A restarts: a series written before the restart and not flushed comes
    // back from its WAL under its id, and a new series continues A's numbering.
    write(&a, &tenant, &labels("up", "replayed"), t0, &[30.0]).await;
    a.close().await.unwrap();
    drop(a);
    let a = Storage::open_with_duties(
        config(Some(&postgres), shared.path(), "ingest-a"),
        a_dir.path(),
        Duties::INGEST,
    )
    .await
    .unwrap();
    write(&a, &tenant, &labels("up", "after-restart"), t0, &[40.0]).await;
    write(&a, &tenant, &shared_series, t0 + 5 * MINUTE_MS, &[6.0]).await;
    a.flush().await.unwrap();

    let want = vec![
        (labels("up", "after-restart"), expected(t0, &[40.0])),
        (
            shared_series.clone(),
            expected(t0, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]),
        ),
        (labels("up", "only-a"), expected(t0, &[10.0])),
        (labels("up", "only-b"), expected(t0, &[20.0])),
        (labels("up", "replayed"), expected(t0, &[30.0])),
    ];

    // Every id in the series segments is distinct and carries its writer's ordinal.
    let (reader, _reader_dir) = open(Some(&postgres), shared.path(), "query", Duties::QUERY).await;
    assert_eq!(read(&reader, &tenant, "up").await, want);
    let values = reader.label_values(&tenant, "job", &[]);
    assert_eq!(
        values,
        ["after-restart", "api", "only-a", "only-b", "replayed"]
    );
    let series = reader.select_series(
        &tenant,
        &[Matcher::new(MatchOp::Equal, "job", "only-b").unwrap()],
        i64::MIN,
        i64::MAX,
    );
    assert_eq!(series.len(), 1);
    assert_eq!(
        series[0].0.0 >> 40,
        b.node_ordinal(),
        "B's series has B's ordinal"
    );
    let after_restart = reader.select_series(
        &tenant,
        &[Matcher::new(MatchOp::Equal, "job", "after-restart").unwrap()],
        i64::MIN,
        i64::MAX,
    );
    assert_eq!(after_restart[0].0.0 >> 40, a.node_ordinal());
    assert!(after_restart[0].0.0 >= series_id_base(a.node_ordinal()) + 3);

    // Compaction (on a compactor node) merges the samples and series segments of both
    // ingesters; the answer stays the same for the reader and for a node opened after.
    let samples_before = reader
        .segments()
        .iter()
        .filter(|s| s.table == Table::Samples)
        .count();
    assert!(samples_before >= 3, "{samples_before} samples segments");
    let (compactor, _compactor_dir) =
        open(Some(&postgres), shared.path(), "compact", Duties::COMPACT).await;
    assert!(compactor.compact().await.unwrap() >= 1);
    reader.refresh_catalog().await.unwrap();
    let samples_after = reader
        .segments()
        .iter()
        .filter(|s| s.table == Table::Samples)
        .count();
    assert!(
        samples_after < samples_before,
        "{samples_after} samples segments"
    );
    assert_eq!(read(&reader, &tenant, "up").await, want);
    let (late, _late_dir) = open(Some(&postgres), shared.path(), "query-2", Duties::QUERY).await;
    assert_eq!(read(&late, &tenant, "up").await, want);

    for storage in [&a, &b, &reader, &compactor, &late] {
        storage.close().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_node_keeps_numbering_series_from_zero() {
    let shared = tempfile::tempdir().unwrap();
    let tenant = TenantId::new("single").unwrap();
    let t0 = now_ms() - 10 * MINUTE_MS;
    let local = tempfile::tempdir().unwrap();
    let node = Storage::open(config(None, shared.path(), "solo"), local.path())
        .await
        .unwrap();
    assert_eq!(node.node_ordinal(), 0);
    write(&node, &tenant, &labels("up", "a"), t0, &[1.0]).await;
    write(&node, &tenant, &labels("up", "b"), t0, &[2.0]).await;
    node.flush().await.unwrap();
    write(&node, &tenant, &labels("up", "c"), t0, &[3.0]).await;
    node.close().await.unwrap();
    drop(node);

    // Reopened: segments and WAL give back ids 0..3; the next series is 3.
    let node = Storage::open(config(None, shared.path(), "solo"), local.path())
        .await
        .unwrap();
    write(&node, &tenant, &labels("up", "d"), t0, &[4.0]).await;
    let matcher = Matcher::new(MatchOp::Equal, "__name__", "up").unwrap();
    let ids: Vec<u64> = node
        .select_series(&tenant, &[matcher], i64::MIN, i64::MAX)
        .into_iter()
        .map(|(id, _)| id.0)
        .collect();
    assert_eq!(ids, vec![0, 1, 2, 3]);
    assert_eq!(
        read(&node, &tenant, "up").await,
        vec![
            (labels("up", "a"), expected(t0, &[1.0])),
            (labels("up", "b"), expected(t0, &[2.0])),
            (labels("up", "c"), expected(t0, &[3.0])),
            (labels("up", "d"), expected(t0, &[4.0])),
        ]
    );
    node.close().await.unwrap();
}
