//! The PostgreSQL catalog against a real PostgreSQL (Debian `postgresql`, installed by
//! `scripts/test-deps/postgres.sh`): the test runs its own server (initdb in a
//! temporary directory, a free loopback port, as the `postgres` user when run as root,
//! password authentication through `storage.catalog.password_file`) and stops it at the
//! end. Two storage engines share the catalog and one segment directory: each sees the
//! other's flushed segments, a compaction run on both at once merges each range exactly
//! once, and retention removes the objects and then the rows.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use proto::{HumanDuration, TenantId};
use storage::model::{LogRecord, logs_batch};
use storage::{LogScan, Storage, Table};

mod scale_support;

use scale_support::postgres::Postgres;

fn storage_config(postgres: &Postgres, shared: &Path, node: &str) -> storage::Config {
    let mut config = storage::Config {
        url: Some(format!("file://{}", shared.display())),
        compaction_min_segments: 2,
        // Background work never runs by itself during the test: the test drives it.
        flush_interval: HumanDuration::secs(3600),
        compaction_interval: HumanDuration::secs(3600),
        ..storage::Config::default()
    };
    config.catalog.url = Some(postgres.url());
    config.catalog.password_file = Some(postgres.password_file());
    config.catalog.node_id = Some(node.to_string());
    config.catalog.refresh_interval = HumanDuration::secs(3600);
    config
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

async fn append_lines(storage: &Storage, tenant: &TenantId, ts_ns: i64, lines: &[&str]) {
    let records: Vec<LogRecord> = lines
        .iter()
        .enumerate()
        .map(|(i, line)| LogRecord {
            timestamp_ns: ts_ns + i as i64,
            observed_ns: ts_ns + i as i64,
            service: "checkout".to_string(),
            body: line.to_string(),
            ..LogRecord::default()
        })
        .collect();
    storage
        .append_logs(tenant, logs_batch(&records).unwrap())
        .await
        .unwrap();
}

async fn log_rows(storage: &Storage, tenant: &TenantId, around_ns: i64) -> usize {
    let scan = LogScan {
        start_ns: around_ns - 3_600_000_000_000,
        end_ns: around_ns + 3_600_000_000_000,
        ..LogScan::default()
    };
    storage
        .scan_logs(tenant, &scan)
        .await
        .unwrap()
        .iter()
        .map(|batch| batch.num_rows())
        .sum()
}

fn log_segments(storage: &Storage) -> Vec<storage::SegmentMeta> {
    storage
        .segments()
        .into_iter()
        .filter(|s| s.table == Table::Logs)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_engines_share_one_postgres_catalog() {
    let postgres = Postgres::start();
    let shared = tempfile::tempdir().unwrap();
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a: Arc<Storage> = Storage::open(
        storage_config(&postgres, shared.path(), "node-a"),
        dir_a.path(),
    )
    .await
    .unwrap();
    // The second engine finds the schema in place (migrations run once).
    let b: Arc<Storage> = Storage::open(
        storage_config(&postgres, shared.path(), "node-b"),
        dir_b.path(),
    )
    .await
    .unwrap();
    assert_eq!(
        postgres.value("SELECT count(*) FROM sightline_migrations"),
        "2"
    );
    let tenant = TenantId::new("team-a").unwrap();
    let t0 = now_ns();

    // Each flushes twice: two log segments per engine, in one day's range.
    for round in 0..2 {
        append_lines(&a, &tenant, t0 + round, &["a1", "a2"]).await;
        a.flush().await.unwrap();
        append_lines(&b, &tenant, t0 + 100 + round, &["b1", "b2", "b3"]).await;
        b.flush().await.unwrap();
    }
    assert_eq!(log_rows(&a, &tenant, t0).await, 4, "a sees its own rows");
    a.refresh_catalog().await.unwrap();
    b.refresh_catalog().await.unwrap();
    // Each sees the other's flushed segments: 4 + 6 rows from either engine.
    assert_eq!(log_rows(&a, &tenant, t0).await, 10);
    assert_eq!(log_rows(&b, &tenant, t0).await, 10);
    assert_eq!(log_segments(&a).len(), 4);
    assert_eq!(log_segments(&a), log_segments(&b));
    assert_eq!(
        postgres.value("SELECT count(*) FROM segments WHERE table_name = 'logs'"),
        "4"
    );
    // Segment ids come from one sequence: no two nodes ever share one.
    let mut ids: Vec<u64> = a.segments().iter().map(|s| s.id).collect();
    ids.dedup();
    assert_eq!(ids.len(), a.segments().len());
    // Both nodes heartbeat.
    let nodes: Vec<String> = a
        .live_nodes()
        .await
        .unwrap()
        .into_iter()
        .map(|n| n.node_id)
        .collect();
    assert_eq!(nodes, ["node-a", "node-b"]);

    // Compaction on both at once: the logs range is merged exactly once.
    let (merged_a, merged_b) = tokio::join!(a.compact(), b.compact());
    let (merged_a, merged_b) = (merged_a.unwrap(), merged_b.unwrap());
    let logs_rows: Vec<String> =
        postgres.query("SELECT level || ':' || row_count FROM segments WHERE table_name = 'logs'");
    assert_eq!(logs_rows, ["1:10"], "one merged segment holds every row");
    // One merge for the logs range; any other merges (none expected) would also be counted once.
    let merged_ranges: u64 = postgres
        .value("SELECT count(*) FROM segments WHERE level = 1")
        .parse()
        .unwrap();
    assert_eq!((merged_a + merged_b) as u64, merged_ranges);
    assert_eq!(postgres.value("SELECT count(*) FROM leases"), "0");
    a.refresh_catalog().await.unwrap();
    b.refresh_catalog().await.unwrap();
    assert_eq!(log_segments(&a), log_segments(&b));
    assert_eq!(log_rows(&a, &tenant, t0).await, 10);
    assert_eq!(log_rows(&b, &tenant, t0).await, 10);
    // A second run finds nothing left to merge.
    assert_eq!(a.compact().await.unwrap() + b.compact().await.unwrap(), 0);

    // Retention (as of 30 days from now): objects first, then rows.
    let merged = log_segments(&a);
    let object = shared.path().join(&merged[0].path);
    assert!(
        object.is_file(),
        "{} exists before retention",
        object.display()
    );
    let month_ns = 30 * 86_400 * 1_000_000_000;
    let removed = b.apply_retention(t0 + month_ns).await.unwrap();
    assert_eq!(removed, 1);
    assert!(!object.exists(), "retention deleted {}", object.display());
    if let Some(index) = &merged[0].index_path {
        assert!(!shared.path().join(index).exists());
    }
    assert_eq!(
        postgres.value("SELECT count(*) FROM segments WHERE table_name = 'logs'"),
        "0"
    );
    a.refresh_catalog().await.unwrap();
    assert!(log_segments(&a).is_empty());
    assert_eq!(log_rows(&a, &tenant, t0).await, 0);

    a.close().await.unwrap();
    b.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_held_by_one_node_keeps_the_other_out_until_it_expires() {
    let postgres = Postgres::start();
    let shared = tempfile::tempdir().unwrap();
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let catalog_a = storage::PostgresCatalog::connect(
        &storage_config(&postgres, shared.path(), "node-a").catalog,
    )
    .await
    .unwrap();
    let catalog_b = storage::PostgresCatalog::connect(
        &storage_config(&postgres, shared.path(), "node-b").catalog,
    )
    .await
    .unwrap();
    use storage::Catalog as _;
    let range = "compact/t/logs/1";
    assert!(
        catalog_a
            .acquire_lease(range, Duration::from_millis(300))
            .await
            .unwrap()
    );
    assert!(
        !catalog_b
            .acquire_lease(range, Duration::from_secs(60))
            .await
            .unwrap()
    );
    // The holder may renew its own lease.
    assert!(
        catalog_a
            .acquire_lease(range, Duration::from_millis(300))
            .await
            .unwrap()
    );
    // Releasing someone else's lease does nothing.
    catalog_b.release_lease(range).await.unwrap();
    assert!(
        !catalog_b
            .acquire_lease(range, Duration::from_secs(60))
            .await
            .unwrap()
    );
    // Once expired, the other node takes it over.
    let start = Instant::now();
    while !catalog_b
        .acquire_lease(range, Duration::from_secs(60))
        .await
        .unwrap()
    {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the lease never expired"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        postgres.value("SELECT holder FROM leases WHERE range_key = 'compact/t/logs/1'"),
        "node-b"
    );
    // An engine opened on the same catalog sees no segment and no leftover from it.
    let engine = Storage::open(
        storage_config(&postgres, shared.path(), "node-c"),
        dir_a.path(),
    )
    .await
    .unwrap();
    assert!(engine.segments().is_empty());
    engine.close().await.unwrap();
    drop(dir_b);
}
