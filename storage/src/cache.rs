//! The local read cache of a remote segment store: byte ranges of segment objects
//! (Parquet footers and page indexes, the column chunks of the row groups queries
//! touch) and whole log-index blobs, kept as files in one directory and evicted least
//! recently used first once their total passes `storage.cache.max_bytes`.
//!
//! Segment objects never change once written, so a cached range is valid for as long
//! as its object exists; a delete through the store forgets the object's ranges. The
//! directory is emptied when the store opens: nothing in it is needed to start, and
//! nothing in it outlives the process that wrote it (a new process may point at another
//! bucket, or at a store whose segment ids started over).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use proto::ByteSize;
use serde::{Deserialize, Serialize};
use tracing::{debug, warn};

use crate::{Error, Result};

/// Bytes charged for an entry at the least: one file costs about a block on disk.
const MIN_ENTRY_COST: u64 = 4096;

/// The `[storage.cache]` section: the query side's local cache of remote segments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// Directory of the cache; unset means `<data_dir>/cache`. Emptied at start.
    pub dir: Option<PathBuf>,
    /// Most bytes the cache keeps on disk; `0` turns it off.
    pub max_bytes: ByteSize,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            dir: None,
            max_bytes: ByteSize::mib(1024),
        }
    }
}

/// What the read cache has done since start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadCacheStats {
    /// Reads answered from the cache.
    pub hits: u64,
    /// Reads that went to the object store.
    pub misses: u64,
    /// Entries dropped to stay under the bound.
    pub evictions: u64,
    /// Entries held now.
    pub entries: u64,
    /// Bytes charged for the entries held now (at most the configured maximum).
    pub bytes: u64,
}

/// One cached range of one object.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Key {
    object: String,
    start: u64,
    end: u64,
}

#[derive(Debug)]
struct Entry {
    file: u64,
    cost: u64,
    last_used: u64,
}

#[derive(Debug, Default)]
struct Index {
    entries: HashMap<Key, Entry>,
    /// Cached ranges by object, to find one that contains a wanted range.
    ranges: HashMap<String, BTreeSet<(u64, u64)>>,
    /// Objects cached whole, with their length.
    whole: HashMap<String, u64>,
    /// Least recently used first.
    lru: BTreeMap<u64, Key>,
    clock: u64,
    bytes: u64,
    next_file: u64,
}

impl Index {
    fn touch(&mut self, key: &Key) -> Option<u64> {
        self.clock += 1;
        let clock = self.clock;
        let entry = self.entries.get_mut(key)?;
        self.lru.remove(&entry.last_used);
        entry.last_used = clock;
        self.lru.insert(clock, key.clone());
        Some(entry.file)
    }

    /// A cached range of `object` that contains `wanted`.
    fn containing(&self, object: &str, wanted: &Range<u64>) -> Option<Key> {
        let ranges = self.ranges.get(object)?;
        // Nearest starts first; overlapping entries are rare, so a few looks suffice.
        ranges
            .range(..=(wanted.start, u64::MAX))
            .rev()
            .take(8)
            .find(|(_, end)| *end >= wanted.end)
            .map(|(start, end)| Key {
                object: object.to_string(),
                start: *start,
                end: *end,
            })
    }

    fn remove(&mut self, key: &Key) -> Option<Entry> {
        let entry = self.entries.remove(key)?;
        self.lru.remove(&entry.last_used);
        self.bytes -= entry.cost;
        if let Some(ranges) = self.ranges.get_mut(&key.object) {
            ranges.remove(&(key.start, key.end));
            if ranges.is_empty() {
                self.ranges.remove(&key.object);
            }
        }
        if self.whole.get(&key.object) == Some(&key.end) && key.start == 0 {
            self.whole.remove(&key.object);
        }
        Some(entry)
    }
}

/// A bounded, least-recently-used cache of object bytes on local disk.
#[derive(Debug)]
pub(crate) struct ReadCache {
    dir: PathBuf,
    max_bytes: u64,
    index: Mutex<Index>,
    hits: AtomicU64,
    misses: AtomicU64,
    evictions: AtomicU64,
}

impl ReadCache {
    /// Opens the cache in `dir`, deleting the entries a previous process left there (and
    /// only those: files named like our entries).
    pub fn open(dir: &Path, max_bytes: u64) -> Result<ReadCache> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let listing = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
        for item in listing {
            let path = item.map_err(|e| Error::io(dir, e))?.path();
            let is_entry = path.extension().is_some_and(|e| e == "bin")
                && path
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .is_some_and(|s| s.len() == 16 && s.bytes().all(|b| b.is_ascii_hexdigit()));
            if is_entry {
                std::fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
            }
        }
        Ok(ReadCache {
            dir: dir.to_path_buf(),
            max_bytes,
            index: Mutex::new(Index::default()),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
        })
    }

    fn index(&self) -> std::sync::MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn file_path(&self, file: u64) -> PathBuf {
        self.dir.join(format!("{file:016x}.bin"))
    }

    /// Returns the bytes `range` of `object` when a cached range holds them.
    pub async fn get_range(&self, object: &str, range: Range<u64>) -> Option<Bytes> {
        let found = {
            let mut index = self.index();
            index.containing(object, &range).and_then(|key| {
                let file = index.touch(&key)?;
                Some((file, range.start - key.start))
            })
        };
        let Some((file, offset)) = found else {
            self.misses.fetch_add(1, Ordering::Relaxed);
            return None;
        };
        let len = (range.end - range.start) as usize;
        self.read_file(file, offset, len).await
    }

    /// Returns a whole object cached with [`ReadCache::insert_whole`].
    pub async fn get_whole(&self, object: &str) -> Option<Bytes> {
        let found = {
            let mut index = self.index();
            let len = index.whole.get(object).copied();
            len.and_then(|len| {
                let key = Key {
                    object: object.to_string(),
                    start: 0,
                    end: len,
                };
                Some((index.touch(&key)?, len))
            })
        };
        let Some((file, len)) = found else {
            self.misses.fetch_add(1, Ordering::Relaxed);
            return None;
        };
        self.read_file(file, 0, len as usize).await
    }

    async fn read_file(&self, file: u64, offset: u64, len: usize) -> Option<Bytes> {
        let path = self.file_path(file);
        let read = tokio::task::spawn_blocking(move || {
            let file = std::fs::File::open(&path)?;
            let mut buffer = vec![0u8; len];
            file.read_exact_at(&mut buffer, offset)?;
            Ok::<_, std::io::Error>(buffer)
        })
        .await;
        match read {
            Ok(Ok(buffer)) => {
                self.hits.fetch_add(1, Ordering::Relaxed);
                Some(Bytes::from(buffer))
            }
            // Evicted between the lookup and the read: an ordinary miss.
            Ok(Err(e)) => {
                debug!(error = %e, "a cache entry vanished before it was read");
                self.misses.fetch_add(1, Ordering::Relaxed);
                None
            }
            Err(e) => {
                warn!(error = %e, "cache read task failed");
                self.misses.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// Keeps the bytes `range` of `object`.
    pub async fn insert_range(&self, object: &str, range: Range<u64>, bytes: Bytes) {
        self.insert(object, range, bytes, false).await;
    }

    /// Keeps a whole object.
    pub async fn insert_whole(&self, object: &str, bytes: Bytes) {
        let len = bytes.len() as u64;
        self.insert(object, 0..len, bytes, true).await;
    }

    async fn insert(&self, object: &str, range: Range<u64>, bytes: Bytes, whole: bool) {
        let cost = (bytes.len() as u64).max(MIN_ENTRY_COST);
        // One entry may not take more than a quarter of the cache: a huge read would
        // otherwise empty it of everything hot.
        if bytes.len() as u64 != range.end - range.start || cost > self.max_bytes / 4 {
            return;
        }
        let key = Key {
            object: object.to_string(),
            start: range.start,
            end: range.end,
        };
        let file = {
            let mut index = self.index();
            if index.entries.contains_key(&key) {
                return;
            }
            index.next_file += 1;
            index.next_file
        };
        let path = self.file_path(file);
        let written = tokio::task::spawn_blocking(move || std::fs::write(&path, &bytes)).await;
        if !matches!(written, Ok(Ok(()))) {
            warn!(object, "cannot write a cache entry; the read is not cached");
            self.delete_files(vec![file]);
            return;
        }
        let victims = {
            let mut index = self.index();
            if index.entries.contains_key(&key) {
                vec![file]
            } else {
                index.clock += 1;
                let clock = index.clock;
                index.entries.insert(
                    key.clone(),
                    Entry {
                        file,
                        cost,
                        last_used: clock,
                    },
                );
                index.lru.insert(clock, key.clone());
                index.bytes += cost;
                index
                    .ranges
                    .entry(key.object.clone())
                    .or_default()
                    .insert((key.start, key.end));
                if whole {
                    index.whole.insert(key.object.clone(), key.end);
                }
                let mut victims = Vec::new();
                while index.bytes > self.max_bytes {
                    let Some(oldest) = index.lru.values().next().cloned() else {
                        break;
                    };
                    match index.remove(&oldest) {
                        Some(entry) => victims.push(entry.file),
                        None => break,
                    }
                }
                self.evictions
                    .fetch_add(victims.len() as u64, Ordering::Relaxed);
                victims
            }
        };
        self.delete_files(victims);
    }

    /// Drops every cached range of `object` (it was deleted from the store).
    pub fn forget(&self, object: &str) {
        let files: Vec<u64> = {
            let mut index = self.index();
            let keys: Vec<Key> = index
                .ranges
                .get(object)
                .map(|ranges| {
                    ranges
                        .iter()
                        .map(|(start, end)| Key {
                            object: object.to_string(),
                            start: *start,
                            end: *end,
                        })
                        .collect()
                })
                .unwrap_or_default();
            keys.iter()
                .filter_map(|key| index.remove(key))
                .map(|entry| entry.file)
                .collect()
        };
        self.delete_files(files);
    }

    fn delete_files(&self, files: Vec<u64>) {
        if files.is_empty() {
            return;
        }
        let paths: Vec<PathBuf> = files.into_iter().map(|f| self.file_path(f)).collect();
        let remove = move || {
            for path in paths {
                if let Err(e) = std::fs::remove_file(&path)
                    && e.kind() != std::io::ErrorKind::NotFound
                {
                    warn!(path = %path.display(), error = %e, "cannot remove a cache file");
                }
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => drop(handle.spawn_blocking(remove)),
            Err(_) => remove(),
        }
    }

    /// Returns the cache's counters.
    pub fn stats(&self) -> ReadCacheStats {
        let index = self.index();
        ReadCacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            evictions: self.evictions.load(Ordering::Relaxed),
            entries: index.entries.len() as u64,
            bytes: index.bytes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(len: usize, fill: u8) -> Bytes {
        Bytes::from(vec![fill; len])
    }

    fn files_in(dir: &Path) -> usize {
        std::fs::read_dir(dir).unwrap().count()
    }

    #[tokio::test]
    async fn stays_under_its_bound_and_evicts_the_least_recently_used() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ReadCache::open(dir.path(), 64 * 1024).unwrap();
        // Four 16 KiB entries fill it exactly.
        for i in 0..4u64 {
            cache
                .insert_range(
                    "a.parquet",
                    i * 16384..(i + 1) * 16384,
                    bytes(16384, i as u8),
                )
                .await;
        }
        assert_eq!(cache.stats().bytes, 64 * 1024);
        // Use the first one, so the second is now the least recently used.
        let first = cache.get_range("a.parquet", 100..200).await.unwrap();
        assert_eq!(first, bytes(100, 0));
        cache
            .insert_range("b.parquet", 0..16384, bytes(16384, 9))
            .await;
        let stats = cache.stats();
        assert!(stats.bytes <= 64 * 1024, "{stats:?}");
        assert_eq!(stats.evictions, 1);
        assert!(cache.get_range("a.parquet", 16384..16400).await.is_none());
        assert!(cache.get_range("a.parquet", 0..10).await.is_some());
        assert_eq!(
            cache.get_range("b.parquet", 10..20).await.unwrap(),
            bytes(10, 9)
        );
        // Deleted files go on the blocking pool; wait for them.
        for _ in 0..100 {
            if files_in(dir.path()) == 4 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(files_in(dir.path()), 4);
    }

    #[tokio::test]
    async fn many_small_entries_are_charged_a_block_each() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ReadCache::open(dir.path(), 40 * MIN_ENTRY_COST).unwrap();
        for i in 0..1000u64 {
            cache.insert_range("x", i * 8..i * 8 + 8, bytes(8, 1)).await;
        }
        let stats = cache.stats();
        assert_eq!(stats.entries, 40);
        assert_eq!(stats.bytes, 40 * MIN_ENTRY_COST);
        assert_eq!(stats.evictions, 960);
    }

    #[tokio::test]
    async fn oversized_entries_are_not_kept_and_whole_objects_are() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ReadCache::open(dir.path(), 64 * 1024).unwrap();
        cache.insert_whole("big.idx", bytes(20 * 1024, 1)).await;
        assert!(cache.get_whole("big.idx").await.is_none());
        cache.insert_whole("small.idx", bytes(5000, 2)).await;
        assert_eq!(cache.get_whole("small.idx").await.unwrap(), bytes(5000, 2));
        // A whole object also answers ranges of itself.
        assert_eq!(
            cache.get_range("small.idx", 10..20).await.unwrap(),
            bytes(10, 2)
        );
        cache.forget("small.idx");
        assert!(cache.get_whole("small.idx").await.is_none());
        assert_eq!(cache.stats().bytes, 0);
    }

    #[tokio::test]
    async fn opening_empties_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("00000000000000ff.bin"), b"old").unwrap();
        std::fs::write(dir.path().join("notes.txt"), b"not ours").unwrap();
        let cache = ReadCache::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(files_in(dir.path()), 1, "only cache entries are removed");
        assert!(cache.get_range("stale", 0..3).await.is_none());
        assert_eq!(cache.stats().misses, 1);
    }
}
