//! The manifest: the list of live segments, rewritten whole and atomically on every change.
//!
//! It is one JSON object (`manifest.json`) in the segment store. A put of one object
//! is atomic on every object store (the local one writes a temporary file and
//! renames it), so a reader sees the old list or the new one, never a mix. Segment
//! files are written and made durable before the manifest that names them.

use object_store::path::Path as ObjectPath;
use proto::{SegmentId, Signal, TenantId};
use serde::{Deserialize, Serialize};

use crate::store::SegmentStore;
use crate::{Error, Result};

const MANIFEST_PATH: &str = "manifest.json";
const FORMAT_VERSION: u32 = 1;

/// The table a segment belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Table {
    /// Metric samples.
    Samples,
    /// Metric series (labels by id).
    Series,
    /// Metric exemplars.
    Exemplars,
    /// Metric metadata (a full snapshot per segment; the newest wins).
    Metadata,
    /// Log records (with a full-text index beside the Parquet file).
    Logs,
    /// Trace spans.
    Spans,
}

impl Table {
    /// Every table.
    pub const ALL: [Table; 6] = [
        Table::Samples,
        Table::Series,
        Table::Exemplars,
        Table::Metadata,
        Table::Logs,
        Table::Spans,
    ];

    /// The signal the table belongs to.
    pub fn signal(self) -> Signal {
        match self {
            Table::Samples | Table::Series | Table::Exemplars | Table::Metadata => Signal::Metrics,
            Table::Logs => Signal::Logs,
            Table::Spans => Signal::Spans,
        }
    }

    /// The name used in object paths.
    pub fn as_str(self) -> &'static str {
        match self {
            Table::Samples => "samples",
            Table::Series => "series",
            Table::Exemplars => "exemplars",
            Table::Metadata => "metadata",
            Table::Logs => "logs",
            Table::Spans => "spans",
        }
    }

    /// True for tables whose rows age out with retention.
    pub fn has_retention(self) -> bool {
        !matches!(self, Table::Series | Table::Metadata)
    }
}

/// One immutable segment: a Parquet file (and, for logs, its index).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentMeta {
    /// Unique, increasing id.
    pub id: u64,
    /// Owning tenant.
    pub tenant: String,
    /// Table.
    pub table: Table,
    /// Object path of the Parquet file.
    pub path: String,
    /// Object path of the packed full-text index (logs only).
    pub index_path: Option<String>,
    /// Smallest row time, Unix nanoseconds (0 for tables without time).
    pub min_time_ns: i64,
    /// Largest row time, Unix nanoseconds.
    pub max_time_ns: i64,
    /// Rows in the file.
    pub rows: u64,
    /// Bytes of the Parquet file.
    pub parquet_bytes: u64,
    /// Bytes of the file and its index.
    pub bytes: u64,
    /// 0 for a flushed segment, n+1 for the merge of level-n segments.
    pub level: u32,
}

impl SegmentMeta {
    /// The segment id.
    pub fn segment_id(&self) -> SegmentId {
        SegmentId(self.id)
    }

    /// True when the segment may hold rows in `[start_ns, end_ns]`.
    pub fn overlaps(&self, start_ns: i64, end_ns: i64) -> bool {
        self.min_time_ns <= end_ns && self.max_time_ns >= start_ns
    }

    /// The object path of the Parquet file.
    pub fn object_path(&self) -> ObjectPath {
        ObjectPath::from(self.path.as_str())
    }

    /// The object paths of the file and its companions.
    pub fn object_paths(&self) -> Vec<ObjectPath> {
        let mut paths = vec![self.object_path()];
        paths.extend(self.index_path.as_deref().map(ObjectPath::from));
        paths
    }
}

/// Object path of a new segment file.
pub(crate) fn segment_path(tenant: &TenantId, table: Table, id: u64, extension: &str) -> String {
    format!(
        "{}/{}/{}/{id:016x}.{extension}",
        tenant.as_str(),
        table.signal().as_str(),
        table.as_str()
    )
}

/// The set of live segments.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// On-disk format version.
    pub format: u32,
    /// Bumped on every write.
    pub version: u64,
    /// The next segment id to hand out.
    pub next_segment_id: u64,
    /// Every WAL file with a smaller sequence number is already in segments: replay
    /// skips it (a crash between this manifest and the WAL trim must not double rows).
    #[serde(default)]
    pub wal_checkpoint: u64,
    /// Live segments.
    pub segments: Vec<SegmentMeta>,
}

impl Manifest {
    /// Loads the manifest, or an empty one for a new store.
    pub(crate) async fn load(store: &SegmentStore) -> Result<Manifest> {
        let path = ObjectPath::from(MANIFEST_PATH);
        let Some(bytes) = store.get_opt(&path).await? else {
            return Ok(Manifest {
                format: FORMAT_VERSION,
                version: 0,
                next_segment_id: 1,
                wal_checkpoint: 0,
                segments: Vec::new(),
            });
        };
        let manifest: Manifest = serde_json::from_slice(&bytes).map_err(|e| Error::Corrupt {
            what: MANIFEST_PATH.to_string(),
            reason: e.to_string(),
        })?;
        if manifest.format != FORMAT_VERSION {
            return Err(Error::Corrupt {
                what: MANIFEST_PATH.to_string(),
                reason: format!("unsupported format {}", manifest.format),
            });
        }
        Ok(manifest)
    }

    /// Writes the manifest durably.
    pub(crate) async fn store(&self, store: &SegmentStore) -> Result<()> {
        let bytes = serde_json::to_vec(self).map_err(|e| Error::Corrupt {
            what: MANIFEST_PATH.to_string(),
            reason: e.to_string(),
        })?;
        store
            .put(&ObjectPath::from(MANIFEST_PATH), bytes.into())
            .await
    }

    /// Returns a copy with `removed` taken out and `added` put in, version bumped.
    pub(crate) fn apply(&self, removed: &[u64], added: Vec<SegmentMeta>) -> Manifest {
        let mut next = self.clone();
        next.version += 1;
        next.segments.retain(|s| !removed.contains(&s.id));
        next.segments.extend(added);
        next
    }

    /// Segments of one tenant and table.
    pub fn segments_of<'a>(
        &'a self,
        tenant: &'a TenantId,
        table: Table,
    ) -> impl Iterator<Item = &'a SegmentMeta> + 'a {
        self.segments
            .iter()
            .filter(move |s| s.table == table && s.tenant == tenant.as_str())
    }

    /// True when `path` belongs to a live segment (or is the manifest itself).
    pub(crate) fn references(&self, path: &str) -> bool {
        path == MANIFEST_PATH
            || self
                .segments
                .iter()
                .any(|s| s.path == path || s.index_path.as_deref() == Some(path))
    }
}
