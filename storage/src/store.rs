//! The segment store: every segment read and write goes through `object_store`.
//!
//! A put on S3 is durable once it returns. The local filesystem store does not fsync,
//! so for `file://` stores we fsync the file and its directory ourselves before
//! anything (the manifest, a WAL trim) relies on the object.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use parquet::arrow::arrow_reader::ArrowReaderMetadata;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{GetOptions, ObjectMeta, ObjectStore, ObjectStoreExt, PutOptions, PutPayload};

use crate::wal::sync_dir;
use crate::{Error, Result};

/// The object store holding segments, plus its local root when it is a directory.
#[derive(Clone)]
pub(crate) struct SegmentStore {
    store: Arc<dyn ObjectStore>,
    local_root: Option<PathBuf>,
    /// Parsed Parquet footers (with page indexes) by segment id; segments are immutable.
    footers: Arc<Mutex<HashMap<u64, ArrowReaderMetadata>>>,
}

const FOOTER_CACHE_ENTRIES: usize = 4096;

impl SegmentStore {
    /// Opens the store named by `url` (`file:///path`), or `<data_dir>/segments`.
    pub fn open(url: Option<&str>, data_dir: &Path) -> Result<Self> {
        let root = match url {
            None => data_dir.join("segments"),
            Some(url) => match url.strip_prefix("file://") {
                Some(path) => PathBuf::from(path),
                None => {
                    return Err(Error::InvalidConfig(format!(
                        "storage.url {url:?}: only file:// is supported in this build"
                    )));
                }
            },
        };
        std::fs::create_dir_all(&root).map_err(|e| Error::io(&root, e))?;
        let store = LocalFileSystem::new_with_prefix(&root)
            .map_err(|e| Error::object_store(root.display(), e))?;
        Ok(SegmentStore {
            store: Arc::new(store),
            local_root: Some(root),
            footers: Arc::default(),
        })
    }

    /// Returns the parsed footer of a segment, if cached.
    pub fn cached_metadata(&self, segment: u64) -> Option<ArrowReaderMetadata> {
        self.footers.lock().ok()?.get(&segment).cloned()
    }

    /// Caches the parsed footer of a segment.
    pub fn cache_metadata(&self, segment: u64, metadata: ArrowReaderMetadata) {
        if let Ok(mut footers) = self.footers.lock() {
            if footers.len() >= FOOTER_CACHE_ENTRIES {
                footers.clear();
            }
            footers.insert(segment, metadata);
        }
    }

    /// Drops cached footers of deleted segments.
    pub fn forget_metadata(&self, segments: &[u64]) {
        if let Ok(mut footers) = self.footers.lock() {
            for segment in segments {
                footers.remove(segment);
            }
        }
    }

    /// The underlying object store, for readers that take one.
    pub fn inner(&self) -> Arc<dyn ObjectStore> {
        self.store.clone()
    }

    /// Writes an object and returns once it is durable.
    pub async fn put(&self, path: &ObjectPath, bytes: Bytes) -> Result<()> {
        self.store
            .put_opts(path, PutPayload::from_bytes(bytes), PutOptions::default())
            .await
            .map_err(|e| Error::object_store(path, e))?;
        if let Some(root) = &self.local_root {
            let file = root.join(path.as_ref());
            tokio::task::spawn_blocking(move || {
                std::fs::File::open(&file)
                    .and_then(|f| f.sync_all())
                    .map_err(|e| Error::io(&file, e))?;
                match file.parent() {
                    Some(parent) => sync_dir(parent),
                    None => Ok(()),
                }
            })
            .await
            .map_err(|e| Error::Task(e.to_string()))??;
        }
        Ok(())
    }

    /// Reads a whole object; `None` when it does not exist.
    pub async fn get_opt(&self, path: &ObjectPath) -> Result<Option<Bytes>> {
        match self.store.get_opts(path, GetOptions::default()).await {
            Ok(result) => Ok(Some(
                result
                    .bytes()
                    .await
                    .map_err(|e| Error::object_store(path, e))?,
            )),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(Error::object_store(path, e)),
        }
    }

    /// Reads a whole object.
    pub async fn get(&self, path: &ObjectPath) -> Result<Bytes> {
        self.get_opt(path).await?.ok_or_else(|| Error::Corrupt {
            what: format!("segment object {path}"),
            reason: "missing from the object store".to_string(),
        })
    }

    /// Deletes an object; a missing object is not an error.
    pub async fn delete(&self, path: &ObjectPath) -> Result<()> {
        match self.store.delete(path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(Error::object_store(path, e)),
        }
    }

    /// Lists every object under `prefix`.
    pub async fn list(&self, prefix: &ObjectPath) -> Result<Vec<ObjectMeta>> {
        self.store
            .list(Some(prefix))
            .try_collect()
            .await
            .map_err(|e| Error::object_store(prefix, e))
    }
}
