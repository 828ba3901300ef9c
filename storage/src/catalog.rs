//! The catalog: which segments exist, per tenant, table and time range, with their
//! statistics; atomic add/remove of segments; compaction leases; node heartbeats.
//!
//! ```text
//!  flush ──────┐  commit(added, removed, wal checkpoint)   ┌─► EmbeddedCatalog: manifest.json
//!  compaction ─┼─► dyn Catalog ──────────────────────────────┤   in the segment store (one node)
//!  retention ──┘  leases, heartbeats, load / list           └─► PostgresCatalog: rows shared by
//!  refresh loop ◄── load() every catalog.refresh_interval        every node (catalog_postgres.rs)
//! ```
//!
//! The engine keeps its own in-memory [`Manifest`] as the view its reads use; the
//! catalog is where changes are made durable and where other nodes' changes come from.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use proto::TenantId;

use crate::manifest::{Manifest, SegmentMeta, Table};
use crate::store::SegmentStore;
use crate::{Error, Result};

/// One atomic change of the segment list.
#[derive(Debug, Clone, Default)]
pub struct CatalogChange {
    /// Segments that become live.
    pub added: Vec<SegmentMeta>,
    /// Segments that stop being live.
    pub removed: Vec<u64>,
    /// When true, the change fails with [`Error::Conflict`] (and changes nothing) unless
    /// every removed segment is still live: how two compactions of one range are kept
    /// from both landing.
    pub removed_must_exist: bool,
    /// This node's WAL files below this sequence number are in segments now.
    pub wal_checkpoint: Option<u64>,
}

/// A node as the catalog knows it from its heartbeats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    /// The node's id (`storage.catalog.node_id`).
    pub node_id: String,
    /// What it runs (`all`, `ingest`, `query`, `compact`).
    pub role: String,
    /// Seconds since its last heartbeat.
    pub seconds_since_heartbeat: u64,
    /// Where its main port answers (`host:port`), "" when it did not say.
    pub address: String,
}

/// What the engine of one node does besides serving reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Duties {
    /// Accepts writes: WAL replay and flushes of memtables to segments.
    pub ingest: bool,
    /// Runs compaction, retention and the deletion of replaced files.
    pub maintain: bool,
}

impl Duties {
    /// Everything: the single-node server.
    pub const ALL: Duties = Duties {
        ingest: true,
        maintain: true,
    };
    /// Writes only (an ingester).
    pub const INGEST: Duties = Duties {
        ingest: true,
        maintain: false,
    };
    /// Reads only (a querier).
    pub const QUERY: Duties = Duties {
        ingest: false,
        maintain: false,
    };
    /// Compaction and retention only (a compactor).
    pub const COMPACT: Duties = Duties {
        ingest: false,
        maintain: true,
    };

    /// The role name reported in heartbeats.
    pub fn role_name(self) -> &'static str {
        match (self.ingest, self.maintain) {
            (true, true) => "all",
            (true, false) => "ingest",
            (false, true) => "compact",
            (false, false) => "query",
        }
    }
}

/// The catalog contract. Every method is one round trip (or one atomic write) to the
/// backing store; the engine serialises its own changes, the catalog makes them atomic
/// against other nodes.
pub trait Catalog: Send + Sync + 'static {
    /// True when other nodes share this catalog (their segments appear through
    /// [`Catalog::load`], and objects may be in flight from them at any time).
    fn is_shared(&self) -> bool;

    /// This node's ordinal: a small number no other node sharing the catalog has, kept
    /// across restarts; the high bits of the series ids it creates
    /// ([`crate::series::series_id_base`]). 0 for the embedded catalog (one writer).
    fn node_ordinal(&self) -> u64;

    /// This node's id in the catalog ("" for the embedded catalog).
    fn node_id(&self) -> &str;

    /// Every node's WAL checkpoint as of the last [`Catalog::load`], read in the same
    /// transaction as its segments (empty for the embedded catalog, whose one writer's
    /// checkpoint is the manifest's).
    fn node_checkpoints(&self) -> std::collections::BTreeMap<String, u64> {
        std::collections::BTreeMap::new()
    }

    /// Loads every live segment, the next free segment id and this node's WAL checkpoint.
    fn load(&self) -> BoxFuture<'_, Result<Manifest>>;

    /// Lists the live segments of one tenant and table that may hold rows in
    /// `[start_ns, end_ns]`, oldest id first.
    fn list_segments<'a>(
        &'a self,
        tenant: &'a TenantId,
        table: Table,
        start_ns: i64,
        end_ns: i64,
    ) -> BoxFuture<'a, Result<Vec<SegmentMeta>>>;

    /// Hands out a segment id no other segment (on any node) has or will have.
    fn allocate_segment_id(&self) -> BoxFuture<'_, Result<u64>>;

    /// Applies one change atomically.
    fn commit(&self, change: CatalogChange) -> BoxFuture<'_, Result<()>>;

    /// Takes the lease of `range` for `ttl` unless another node holds an unexpired one;
    /// returns whether this node holds it now.
    fn acquire_lease<'a>(&'a self, range: &'a str, ttl: Duration) -> BoxFuture<'a, Result<bool>>;

    /// Gives a lease back early (only if this node holds it).
    fn release_lease<'a>(&'a self, range: &'a str) -> BoxFuture<'a, Result<()>>;

    /// Records that this node is alive, what it runs and where it answers (`address`,
    /// `host:port` of its main port, or "").
    fn heartbeat<'a>(&'a self, role: &'a str, address: &'a str) -> BoxFuture<'a, Result<()>>;

    /// Nodes with a heartbeat younger than `within`.
    fn live_nodes(&self, within: Duration) -> BoxFuture<'_, Result<Vec<NodeInfo>>>;
}

/// Opens the catalog `config` names: PostgreSQL when `url` is set, else the embedded one.
pub(crate) async fn open(
    config: &crate::CatalogConfig,
    store: &SegmentStore,
) -> Result<std::sync::Arc<dyn Catalog>> {
    match &config.url {
        Some(_) => Ok(std::sync::Arc::new(
            crate::catalog_postgres::PostgresCatalog::connect(config).await?,
        )),
        None => Ok(std::sync::Arc::new(
            EmbeddedCatalog::open(store.clone()).await?,
        )),
    }
}

/// The single-node catalog: `manifest.json` in the segment store, rewritten whole on
/// every change. Leases and heartbeats live in memory (there is one node).
pub struct EmbeddedCatalog {
    store: SegmentStore,
    current: tokio::sync::Mutex<Manifest>,
    next_segment_id: AtomicU64,
    leases: Mutex<HashMap<String, Instant>>,
    heartbeat: Mutex<Option<(String, String, Instant)>>,
}

impl EmbeddedCatalog {
    pub(crate) async fn open(store: SegmentStore) -> Result<EmbeddedCatalog> {
        let manifest = Manifest::load(&store).await?;
        Ok(EmbeddedCatalog {
            store,
            next_segment_id: AtomicU64::new(manifest.next_segment_id.max(1)),
            current: tokio::sync::Mutex::new(manifest),
            leases: Mutex::new(HashMap::new()),
            heartbeat: Mutex::new(None),
        })
    }
}

impl Catalog for EmbeddedCatalog {
    fn is_shared(&self) -> bool {
        false
    }

    fn node_ordinal(&self) -> u64 {
        0
    }

    fn node_id(&self) -> &str {
        ""
    }

    fn load(&self) -> BoxFuture<'_, Result<Manifest>> {
        Box::pin(async move {
            // Re-read the file: a read-only node sharing the store sees the writer's changes.
            let manifest = Manifest::load(&self.store).await?;
            self.next_segment_id
                .fetch_max(manifest.next_segment_id, Ordering::AcqRel);
            *self.current.lock().await = manifest.clone();
            Ok(manifest)
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
            let current = self.current.lock().await;
            let mut segments: Vec<SegmentMeta> = current
                .segments_of(tenant, table)
                .filter(|s| s.overlaps(start_ns, end_ns))
                .cloned()
                .collect();
            segments.sort_by_key(|s| s.id);
            Ok(segments)
        })
    }

    fn allocate_segment_id(&self) -> BoxFuture<'_, Result<u64>> {
        Box::pin(async move { Ok(self.next_segment_id.fetch_add(1, Ordering::AcqRel)) })
    }

    fn commit(&self, change: CatalogChange) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let mut current = self.current.lock().await;
            if change.removed_must_exist
                && let Some(gone) = change
                    .removed
                    .iter()
                    .find(|id| !current.segments.iter().any(|s| s.id == **id))
            {
                return Err(Error::Conflict(format!("segment {gone} is no longer live")));
            }
            let mut next = current.apply(&change.removed, change.added);
            next.next_segment_id = next
                .next_segment_id
                .max(self.next_segment_id.load(Ordering::Acquire));
            if let Some(seq) = change.wal_checkpoint {
                next.wal_checkpoint = next.wal_checkpoint.max(seq);
            }
            next.store(&self.store).await?;
            *current = next;
            Ok(())
        })
    }

    fn acquire_lease<'a>(&'a self, range: &'a str, ttl: Duration) -> BoxFuture<'a, Result<bool>> {
        Box::pin(async move {
            let mut leases = self.leases.lock().unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            leases.retain(|_, expires| *expires > now);
            // One node: a lease it holds already is its own.
            leases.insert(range.to_string(), now + ttl);
            Ok(true)
        })
    }

    fn release_lease<'a>(&'a self, range: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            self.leases
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(range);
            Ok(())
        })
    }

    fn heartbeat<'a>(&'a self, role: &'a str, address: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            *self.heartbeat.lock().unwrap_or_else(|p| p.into_inner()) =
                Some((role.to_string(), address.to_string(), Instant::now()));
            Ok(())
        })
    }

    fn live_nodes(&self, within: Duration) -> BoxFuture<'_, Result<Vec<NodeInfo>>> {
        Box::pin(async move {
            let beat = self
                .heartbeat
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            Ok(beat
                .filter(|(_, _, at)| at.elapsed() <= within)
                .map(|(role, address, at)| NodeInfo {
                    node_id: "local".to_string(),
                    role,
                    seconds_since_heartbeat: at.elapsed().as_secs(),
                    address,
                })
                .into_iter()
                .collect())
        })
    }
}

/// The lease key of one compaction range.
pub(crate) fn compaction_range_key(tenant: &str, table: Table, day: i64) -> String {
    format!("compact/{tenant}/{}/{day}", table.as_str())
}

impl crate::Storage {
    /// Reloads the segment list from the catalog (other nodes' flushes, compactions and
    /// retention) and renews this node's heartbeat; returns how many segments are new.
    /// A node that does not ingest also loads the series and metadata of new segments.
    pub async fn refresh_catalog(&self) -> Result<usize> {
        let _guard = self.manifest_lock.lock().await;
        let loaded = self.catalog.load().await?;
        let previous = self
            .state
            .read()
            .map(|s| s.manifest.clone())
            .map_err(|_| Error::Task("state lock poisoned".into()))?;
        let known: std::collections::HashSet<u64> =
            previous.segments.iter().map(|s| s.id).collect();
        let live: std::collections::HashSet<u64> = loaded.segments.iter().map(|s| s.id).collect();
        let added: Vec<&SegmentMeta> = loaded
            .segments
            .iter()
            .filter(|s| !known.contains(&s.id))
            .collect();
        if !self.duties.ingest {
            for segment in &added {
                let tenant = TenantId::new(segment.tenant.clone()).map_err(|e| Error::Corrupt {
                    what: "catalog".into(),
                    reason: e.to_string(),
                })?;
                let catalog = self.catalog(&tenant);
                crate::engine::load_catalog_segment(&self.store, segment, &catalog).await?;
            }
        }
        let gone: Vec<u64> = known.difference(&live).copied().collect();
        let new_segments = added.len();
        let mut next = loaded;
        next.version = previous.version + 1;
        next.wal_checkpoint = next.wal_checkpoint.max(previous.wal_checkpoint);
        next.next_segment_id = next.next_segment_id.max(previous.next_segment_id);
        let coverage = crate::fanout::Coverage {
            checkpoints: self.catalog.node_checkpoints(),
            default: if self.catalog.is_shared() {
                0
            } else {
                next.wal_checkpoint
            },
        };
        {
            let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
            if new_segments > 0 || !gone.is_empty() {
                state.manifest = std::sync::Arc::new(next);
            }
            // Checkpoints move with segments in one catalog change, and this load read
            // both at once: the coverage always matches the manifest it goes with.
            if *state.coverage != coverage {
                state.coverage = std::sync::Arc::new(coverage);
            }
            if self.duties.ingest {
                let now = Instant::now();
                let keep = self.config.fanout.keep_flushed.get();
                if state
                    .recent
                    .first()
                    .is_some_and(|(_, at)| now.duration_since(*at) >= keep)
                {
                    self.keep_flushed(&mut state, &[]);
                }
            }
        }
        self.forget_indexes(&gone);
        let address = self.advertise_address();
        self.catalog
            .heartbeat(self.duties.role_name(), &address)
            .await?;
        self.refresh_fanout_targets().await;
        Ok(new_segments)
    }

    /// Nodes whose heartbeat is younger than three refresh intervals.
    pub async fn live_nodes(&self) -> Result<Vec<NodeInfo>> {
        let within = self.config.catalog.refresh_interval.get() * 3;
        self.catalog.live_nodes(within).await
    }
}

/// Reloads the catalog every `interval` until shutdown.
pub(crate) async fn refresh_loop(
    storage: std::sync::Weak<crate::Storage>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
    interval: Duration,
) {
    loop {
        let Some(engine) = storage.upgrade() else {
            return;
        };
        if let Err(e) = engine.refresh_catalog().await {
            tracing::warn!(error = ?e, "catalog refresh failed; keeping the last segment list");
        }
        drop(engine);
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shutdown.changed() => return,
        }
    }
}
