//! The segment store: every segment read and write goes through `object_store`.
//!
//! Two kinds of store: a local directory (`file://`, the single-node default) and an
//! S3-compatible bucket (`s3://bucket/prefix`, see [`crate::s3`]). A put on S3 is
//! durable once it returns. The local filesystem store does not fsync, so for
//! `file://` stores we fsync the file and its directory ourselves before anything (the
//! manifest, a WAL trim) relies on the object.
//!
//! Reads of immutable segment objects from a remote store go through a bounded local
//! cache ([`crate::cache`]): ranges (Parquet footers, column chunks) and whole log
//! indexes. The manifest, which changes, is always read from the store.

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use parquet::arrow::arrow_reader::ArrowReaderMetadata;

use bytes::Bytes;
use futures::TryStreamExt;
use futures::future::join_all;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{GetOptions, ObjectMeta, ObjectStore, ObjectStoreExt, PutOptions, PutPayload};
use tracing::info;

use crate::cache::{ReadCache, ReadCacheStats};
use crate::s3::{S3Credentials, S3Location};
use crate::wal::sync_dir;
use crate::{Config, Error, Result};

/// The object store holding segments, plus its local root when it is a directory.
#[derive(Clone)]
pub(crate) struct SegmentStore {
    store: Arc<dyn ObjectStore>,
    local_root: Option<PathBuf>,
    /// The local cache of a remote store's segment bytes (`None` for local stores).
    cache: Option<Arc<ReadCache>>,
    /// Parsed Parquet footers (with page indexes) by segment id; segments are immutable.
    footers: Arc<Mutex<HashMap<u64, ArrowReaderMetadata>>>,
}

const FOOTER_CACHE_ENTRIES: usize = 4096;

impl SegmentStore {
    /// Opens the store `config.url` names (`file:///path`, `s3://bucket/prefix`), or
    /// `<data_dir>/segments`. A remote store is checked with one request, so that a
    /// wrong endpoint, bucket or credentials fail here with a message that says which.
    pub async fn open(config: &Config, data_dir: &Path) -> Result<Self> {
        let url = config.url.as_deref();
        if let Some(location) = url.and_then(S3Location::parse) {
            let location = location?;
            let url = url.unwrap_or_default();
            let credentials = S3Credentials::resolve(&config.s3, |name| std::env::var(name).ok())?;
            let store = crate::s3::build_store(&location, &config.s3, &credentials)?;
            crate::s3::check_access(store.as_ref(), url, &config.s3, &credentials).await?;
            let cache = match config.cache.max_bytes.bytes() {
                0 => None,
                max_bytes => {
                    let dir = config
                        .cache
                        .dir
                        .clone()
                        .unwrap_or_else(|| data_dir.join("cache"));
                    Some(Arc::new(ReadCache::open(&dir, max_bytes)?))
                }
            };
            info!(
                url,
                endpoint = config.s3.endpoint.as_deref().unwrap_or("aws"),
                cache_bytes = config.cache.max_bytes.bytes(),
                "segment store is an s3 bucket"
            );
            return Ok(SegmentStore {
                store,
                local_root: None,
                cache,
                footers: Arc::default(),
            });
        }
        let root = match url {
            None => data_dir.join("segments"),
            Some(url) => match url.strip_prefix("file://") {
                Some(path) => PathBuf::from(path),
                None => {
                    return Err(Error::InvalidConfig(format!(
                        "storage.url {url:?}: only file:// and s3:// URLs are supported"
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
            cache: None,
            footers: Arc::default(),
        })
    }

    /// Returns the read cache's counters, when the store has a cache.
    pub fn cache_stats(&self) -> Option<ReadCacheStats> {
        self.cache.as_ref().map(|cache| cache.stats())
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

    /// Reads byte ranges of an immutable object: from the cache when it has them, the
    /// rest with range requests (which the object store coalesces), then cached.
    pub async fn get_ranges(&self, path: &ObjectPath, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        let Some(cache) = &self.cache else {
            return self
                .store
                .get_ranges(path, ranges)
                .await
                .map_err(|e| Error::object_store(path, e));
        };
        let object = path.as_ref();
        let mut found: Vec<Option<Bytes>> = join_all(
            ranges
                .iter()
                .map(|range| cache.get_range(object, range.clone())),
        )
        .await;
        let missing: Vec<Range<u64>> = ranges
            .iter()
            .zip(&found)
            .filter(|(_, bytes)| bytes.is_none())
            .map(|(range, _)| range.clone())
            .collect();
        if !missing.is_empty() {
            let fetched = self
                .store
                .get_ranges(path, &missing)
                .await
                .map_err(|e| Error::object_store(path, e))?;
            let mut fetched = missing.into_iter().zip(fetched);
            for slot in found.iter_mut().filter(|slot| slot.is_none()) {
                let Some((range, bytes)) = fetched.next() else {
                    break;
                };
                let (cache, object, kept) = (cache.clone(), object.to_string(), bytes.clone());
                // Filling the cache is not the query's business: it does not wait for it.
                tokio::spawn(async move { cache.insert_range(&object, range, kept).await });
                *slot = Some(bytes);
            }
        }
        found
            .into_iter()
            .map(|bytes| {
                bytes.ok_or_else(|| Error::Corrupt {
                    what: format!("segment object {path}"),
                    reason: "the object store returned fewer ranges than asked".to_string(),
                })
            })
            .collect()
    }

    /// Reads a whole immutable object (a log index): from the cache when it has it.
    pub async fn get_immutable(&self, path: &ObjectPath) -> Result<Bytes> {
        if let Some(cache) = &self.cache
            && let Some(bytes) = cache.get_whole(path.as_ref()).await
        {
            return Ok(bytes);
        }
        let bytes = self.get(path).await?;
        if let Some(cache) = &self.cache {
            let (cache, object, kept) = (cache.clone(), path.to_string(), bytes.clone());
            tokio::spawn(async move { cache.insert_whole(&object, kept).await });
        }
        Ok(bytes)
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

    /// Deletes an object (and forgets its cached bytes); a missing object is not an error.
    pub async fn delete(&self, path: &ObjectPath) -> Result<()> {
        if let Some(cache) = &self.cache {
            cache.forget(path.as_ref());
        }
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

impl crate::Storage {
    /// Returns the counters of the local read cache of a remote segment store; `None`
    /// when segments are on local disk (no cache).
    pub fn read_cache_stats(&self) -> Option<ReadCacheStats> {
        self.store.cache_stats()
    }
}
