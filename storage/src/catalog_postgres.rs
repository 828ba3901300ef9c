//! The PostgreSQL catalog: one catalog shared by every node of a scaled-out deployment.
//!
//! Tables (migrations below, applied at start under an advisory lock, each once):
//! `segments` (one row per live segment, with its statistics), `nodes` (heartbeat and
//! WAL checkpoint per node), `leases` (one row per compaction range, with an expiry).
//! A change of the segment list is one transaction; a compaction's removal checks that
//! every input row was still there, so two nodes can never both replace one range.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::future::BoxFuture;
use proto::TenantId;
use tokio::sync::Mutex;
use tokio_postgres::{Client, NoTls, Row};
use tracing::{info, warn};

use crate::catalog::{Catalog, CatalogChange, NodeInfo};
use crate::manifest::{Manifest, SegmentMeta, Table};
use crate::{CatalogConfig, Error, Result};

/// Schema versions, applied in order; a version once shipped never changes.
const MIGRATIONS: &[(i32, &str)] = &[
    (
        1,
        "CREATE TABLE segments (
        id            BIGINT PRIMARY KEY,
        tenant        TEXT   NOT NULL,
        table_name    TEXT   NOT NULL,
        path          TEXT   NOT NULL,
        index_path    TEXT,
        min_time_ns   BIGINT NOT NULL,
        max_time_ns   BIGINT NOT NULL,
        row_count     BIGINT NOT NULL,
        parquet_bytes BIGINT NOT NULL,
        bytes         BIGINT NOT NULL,
        level         INTEGER NOT NULL,
        created_by    TEXT   NOT NULL,
        created_at    TIMESTAMPTZ NOT NULL DEFAULT now()
    );
    CREATE INDEX segments_by_range ON segments (tenant, table_name, min_time_ns, max_time_ns);
    CREATE SEQUENCE segment_ids START 1;
    CREATE TABLE nodes (
        node_id        TEXT PRIMARY KEY,
        role           TEXT NOT NULL DEFAULT '',
        wal_checkpoint BIGINT NOT NULL DEFAULT 0,
        heartbeat_at   TIMESTAMPTZ NOT NULL DEFAULT now()
    );
    CREATE TABLE leases (
        range_key  TEXT PRIMARY KEY,
        holder     TEXT NOT NULL,
        expires_at TIMESTAMPTZ NOT NULL
    );",
    ),
    (
        2,
        // Ordinals make series ids unique across nodes (ordinal << 40 | local id); a
        // node registered before this migration gets one at its next start. The
        // address is where a querier reaches an ingester for its unflushed rows.
        "CREATE SEQUENCE node_ordinals START 1;
    ALTER TABLE nodes ADD COLUMN ordinal BIGINT UNIQUE;
    ALTER TABLE nodes ADD COLUMN address TEXT NOT NULL DEFAULT '';",
    ),
];

/// Key of the advisory lock that serialises migrations between nodes starting together.
const MIGRATION_LOCK: i64 = 0x5167_6874_6c69_6e65;

const SEGMENT_COLUMNS: &str = "id, tenant, table_name, path, index_path, min_time_ns, \
     max_time_ns, row_count, parquet_bytes, bytes, level";

/// A catalog in PostgreSQL.
pub struct PostgresCatalog {
    config: tokio_postgres::Config,
    node_id: String,
    ordinal: u64,
    client: Mutex<Client>,
    /// Every node's WAL checkpoint as of the last load.
    checkpoints: std::sync::Mutex<BTreeMap<String, u64>>,
}

fn db(operation: &'static str) -> impl FnOnce(tokio_postgres::Error) -> Error {
    move |source| Error::Catalog { operation, source }
}

impl PostgresCatalog {
    /// Connects, applies missing migrations and registers this node.
    pub async fn connect(config: &CatalogConfig) -> Result<PostgresCatalog> {
        let url = config
            .url
            .as_deref()
            .ok_or_else(|| Error::InvalidConfig("storage.catalog.url is not set".into()))?;
        let mut pg_config: tokio_postgres::Config = url.parse().map_err(|e| {
            Error::InvalidConfig(format!("storage.catalog.url is not a PostgreSQL URL: {e}"))
        })?;
        if let Some(path) = &config.password_file {
            let password = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
            pg_config.password(password.trim_end_matches(['\n', '\r']));
        }
        pg_config.connect_timeout(Duration::from_secs(10));
        pg_config.application_name("sightline");
        let node_id = config.node_id.clone().ok_or_else(|| {
            Error::InvalidConfig(
                "storage.catalog.node_id is required with a PostgreSQL catalog".into(),
            )
        })?;
        let mut client = connect(&pg_config).await?;
        migrate(&mut client).await?;
        client
            .execute(
                "INSERT INTO nodes (node_id) VALUES ($1) ON CONFLICT (node_id) DO NOTHING",
                &[&node_id],
            )
            .await
            .map_err(db("registering the node"))?;
        // nextval only for a node without an ordinal, so restarts do not use them up.
        client
            .execute(
                "UPDATE nodes SET ordinal = nextval('node_ordinals') \
                 WHERE node_id = $1 AND ordinal IS NULL",
                &[&node_id],
            )
            .await
            .map_err(db("giving the node an ordinal"))?;
        let ordinal: i64 = client
            .query_one("SELECT ordinal FROM nodes WHERE node_id = $1", &[&node_id])
            .await
            .map_err(db("reading the node ordinal"))?
            .get(0);
        let ordinal = u64::try_from(ordinal).unwrap_or(0);
        info!(node = %node_id, ordinal, "connected to the postgresql catalog");
        Ok(PostgresCatalog {
            config: pg_config,
            node_id,
            ordinal,
            client: Mutex::new(client),
            checkpoints: std::sync::Mutex::new(BTreeMap::new()),
        })
    }

    /// The client, reconnected first if the connection dropped.
    async fn client(&self) -> Result<tokio::sync::MutexGuard<'_, Client>> {
        let mut client = self.client.lock().await;
        if client.is_closed() {
            warn!("catalog connection lost, reconnecting");
            *client = connect(&self.config).await?;
        }
        Ok(client)
    }
}

async fn connect(config: &tokio_postgres::Config) -> Result<Client> {
    let (client, connection) = config
        .connect(NoTls)
        .await
        .map_err(db("connecting to postgresql"))?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            warn!(error = %error, "catalog connection ended");
        }
    });
    Ok(client)
}

/// Applies every migration newer than the database's version, one transaction each.
async fn migrate(client: &mut Client) -> Result<()> {
    let tx = client
        .transaction()
        .await
        .map_err(db("starting migrations"))?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(db("locking migrations"))?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS sightline_migrations (
            version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
    )
    .await
    .map_err(db("creating the migrations table"))?;
    let applied: i32 = tx
        .query_one(
            "SELECT COALESCE(MAX(version), 0) FROM sightline_migrations",
            &[],
        )
        .await
        .map_err(db("reading the schema version"))?
        .get(0);
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > applied) {
        tx.batch_execute(sql)
            .await
            .map_err(db("applying a migration"))?;
        tx.execute(
            "INSERT INTO sightline_migrations (version) VALUES ($1)",
            &[version],
        )
        .await
        .map_err(db("recording a migration"))?;
        info!(version, "applied catalog migration");
    }
    tx.commit().await.map_err(db("committing migrations"))
}

fn table_from_name(name: &str) -> Result<Table> {
    Table::ALL
        .into_iter()
        .find(|t| t.as_str() == name)
        .ok_or_else(|| Error::Corrupt {
            what: "catalog segment row".into(),
            reason: format!("unknown table {name:?}"),
        })
}

fn segment_from_row(row: &Row) -> Result<SegmentMeta> {
    let non_negative = |value: i64| u64::try_from(value).unwrap_or(0);
    Ok(SegmentMeta {
        id: non_negative(row.get(0)),
        tenant: row.get(1),
        table: table_from_name(row.get(2))?,
        path: row.get(3),
        index_path: row.get(4),
        min_time_ns: row.get(5),
        max_time_ns: row.get(6),
        rows: non_negative(row.get(7)),
        parquet_bytes: non_negative(row.get(8)),
        bytes: non_negative(row.get(9)),
        level: u32::try_from(row.get::<_, i32>(10)).unwrap_or(0),
    })
}

fn as_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

impl Catalog for PostgresCatalog {
    fn is_shared(&self) -> bool {
        true
    }

    fn node_ordinal(&self) -> u64 {
        self.ordinal
    }

    fn node_id(&self) -> &str {
        &self.node_id
    }

    fn node_checkpoints(&self) -> BTreeMap<String, u64> {
        self.checkpoints
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn load(&self) -> BoxFuture<'_, Result<Manifest>> {
        Box::pin(async move {
            let mut client = self.client().await?;
            // One snapshot for segments and checkpoints: a flush changes both at once,
            // and a querier's fan-out relies on them matching.
            let tx = client
                .build_transaction()
                .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .await
                .map_err(db("starting a catalog load"))?;
            let rows = tx
                .query(
                    &format!("SELECT {SEGMENT_COLUMNS} FROM segments ORDER BY id"),
                    &[],
                )
                .await
                .map_err(db("listing segments"))?;
            let segments = rows
                .iter()
                .map(segment_from_row)
                .collect::<Result<Vec<_>>>()?;
            let checkpoints: BTreeMap<String, u64> = tx
                .query("SELECT node_id, wal_checkpoint FROM nodes", &[])
                .await
                .map_err(db("reading the wal checkpoints"))?
                .iter()
                .map(|row| {
                    (
                        row.get::<_, String>(0),
                        u64::try_from(row.get::<_, i64>(1)).unwrap_or(0),
                    )
                })
                .collect();
            tx.commit().await.map_err(db("ending a catalog load"))?;
            let checkpoint = checkpoints.get(&self.node_id).copied().unwrap_or(0);
            *self.checkpoints.lock().unwrap_or_else(|p| p.into_inner()) = checkpoints;
            Ok(Manifest {
                format: 1,
                version: 0,
                next_segment_id: segments.iter().map(|s| s.id + 1).max().unwrap_or(1),
                wal_checkpoint: checkpoint,
                segments,
            })
        })
    }

    fn list_segments<'a>(
        &'a self,
        tenant: &'a TenantId,
        table: Table,
        start_ns: i64,
        end_ns: i64,
    ) -> BoxFuture<'a, Result<Vec<SegmentMeta>>> {
        Box::pin(async move {
            let client = self.client().await?;
            let rows = client
                .query(
                    &format!(
                        "SELECT {SEGMENT_COLUMNS} FROM segments WHERE tenant = $1 AND table_name = $2 \
                         AND min_time_ns <= $4 AND max_time_ns >= $3 ORDER BY id"
                    ),
                    &[&tenant.as_str(), &table.as_str(), &start_ns, &end_ns],
                )
                .await
                .map_err(db("listing segments of a range"))?;
            rows.iter().map(segment_from_row).collect()
        })
    }

    fn allocate_segment_id(&self) -> BoxFuture<'_, Result<u64>> {
        Box::pin(async move {
            let id: i64 = self
                .client()
                .await?
                .query_one("SELECT nextval('segment_ids')", &[])
                .await
                .map_err(db("allocating a segment id"))?
                .get(0);
            Ok(u64::try_from(id).unwrap_or(0))
        })
    }

    fn commit(&self, change: CatalogChange) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let mut client = self.client().await?;
            let tx = client
                .transaction()
                .await
                .map_err(db("starting a catalog change"))?;
            if !change.removed.is_empty() {
                let ids: Vec<i64> = change.removed.iter().map(|id| as_i64(*id)).collect();
                let deleted = tx
                    .execute("DELETE FROM segments WHERE id = ANY($1)", &[&ids])
                    .await
                    .map_err(db("removing segments"))?;
                if change.removed_must_exist && deleted != ids.len() as u64 {
                    // Dropping the transaction rolls it back.
                    return Err(Error::Conflict(format!(
                        "{} of {} segments to replace are no longer live",
                        ids.len() as u64 - deleted,
                        ids.len()
                    )));
                }
            }
            let insert = tx
                .prepare(&format!(
                    "INSERT INTO segments ({SEGMENT_COLUMNS}, created_by) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
                ))
                .await
                .map_err(db("preparing a segment insert"))?;
            for segment in &change.added {
                let level = i32::try_from(segment.level).unwrap_or(i32::MAX);
                tx.execute(
                    &insert,
                    &[
                        &as_i64(segment.id),
                        &segment.tenant,
                        &segment.table.as_str(),
                        &segment.path,
                        &segment.index_path,
                        &segment.min_time_ns,
                        &segment.max_time_ns,
                        &as_i64(segment.rows),
                        &as_i64(segment.parquet_bytes),
                        &as_i64(segment.bytes),
                        &level,
                        &self.node_id,
                    ],
                )
                .await
                .map_err(db("adding a segment"))?;
            }
            if let Some(seq) = change.wal_checkpoint {
                tx.execute(
                    "UPDATE nodes SET wal_checkpoint = GREATEST(wal_checkpoint, $2) WHERE node_id = $1",
                    &[&self.node_id, &as_i64(seq)],
                )
                .await
                .map_err(db("moving the wal checkpoint"))?;
            }
            tx.commit().await.map_err(db("committing a catalog change"))
        })
    }

    fn acquire_lease<'a>(&'a self, range: &'a str, ttl: Duration) -> BoxFuture<'a, Result<bool>> {
        Box::pin(async move {
            let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
            let row = self
                .client()
                .await?
                .query_opt(
                    "INSERT INTO leases (range_key, holder, expires_at) \
                     VALUES ($1, $2, now() + $3::BIGINT * interval '1 millisecond') \
                     ON CONFLICT (range_key) DO UPDATE \
                       SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at \
                       WHERE leases.expires_at < now() OR leases.holder = EXCLUDED.holder \
                     RETURNING holder",
                    &[&range, &self.node_id, &ttl_ms],
                )
                .await
                .map_err(db("taking a lease"))?;
            Ok(row.is_some())
        })
    }

    fn release_lease<'a>(&'a self, range: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            self.client()
                .await?
                .execute(
                    "DELETE FROM leases WHERE range_key = $1 AND holder = $2",
                    &[&range, &self.node_id],
                )
                .await
                .map_err(db("releasing a lease"))?;
            Ok(())
        })
    }

    fn heartbeat<'a>(&'a self, role: &'a str, address: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            self.client()
                .await?
                .execute(
                    "INSERT INTO nodes (node_id, role, address, heartbeat_at) \
                     VALUES ($1, $2, $3, now()) \
                     ON CONFLICT (node_id) DO UPDATE \
                       SET role = $2, address = $3, heartbeat_at = now()",
                    &[&self.node_id, &role, &address],
                )
                .await
                .map_err(db("recording a heartbeat"))?;
            Ok(())
        })
    }

    fn live_nodes(&self, within: Duration) -> BoxFuture<'_, Result<Vec<NodeInfo>>> {
        Box::pin(async move {
            let within_ms = i64::try_from(within.as_millis()).unwrap_or(i64::MAX);
            let rows = self
                .client()
                .await?
                .query(
                    "SELECT node_id, role, \
                       EXTRACT(EPOCH FROM now() - heartbeat_at)::BIGINT, address \
                     FROM nodes WHERE heartbeat_at >= now() - $1::BIGINT * interval '1 millisecond' \
                     ORDER BY node_id",
                    &[&within_ms],
                )
                .await
                .map_err(db("listing live nodes"))?;
            Ok(rows
                .iter()
                .map(|row| NodeInfo {
                    node_id: row.get(0),
                    role: row.get(1),
                    seconds_since_heartbeat: u64::try_from(row.get::<_, i64>(2)).unwrap_or(0),
                    address: row.get(3),
                })
                .collect())
        })
    }
}
