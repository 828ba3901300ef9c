//! Label sets of recently written series, keyed by a hash of their raw label bytes.
//!
//! A remote_write sender repeats the same label sets every scrape interval. Building
//! a [`Labels`] from the wire costs two allocations per label (and as many frees once
//! the write is stored), which was the largest cost of the receiver after the decode.
//! This cache keeps the label sets of recent requests: a series whose label fields are
//! byte-for-byte the same as before (xxh3-128 of the contiguous `Label` fields, seeded
//! with the limits they were validated under) takes its label set out of the cache,
//! lends it to the write, and puts it back afterwards. No allocation, no validation,
//! no sort. A label set in use by a request is absent from the cache meanwhile, so
//! concurrent requests never share one: the second builds its own.
//!
//! Memory is bounded: at most [`CAPACITY`] entries. When full, new label sets are not
//! kept; once as many misses as the capacity happened since the last reset, the cache
//! is emptied, so a changed set of series (pods replaced) takes it over again.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Mutex;

use storage::series::Labels;

/// Most label sets kept (about 1 KB each for a typical 12-label series).
pub(crate) const CAPACITY: usize = 1 << 16;
/// Independent shards, so concurrent requests rarely wait for each other.
const SHARDS: usize = 16;

/// A hasher for keys that already are uniform hashes.
#[derive(Default)]
pub(crate) struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(byte);
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }

    fn write_u128(&mut self, value: u128) {
        self.0 = value as u64 ^ (value >> 64) as u64;
    }
}

/// A cached label set and the hash a request uses to group its series.
#[derive(Debug)]
pub(crate) struct Cached {
    /// The validated label set.
    pub labels: Labels,
    /// xxh3-64 of its canonical bytes (see `convert::Builder`).
    pub hash: u64,
}

#[derive(Default)]
struct Shard {
    entries: HashMap<u128, Cached, BuildHasherDefault<PassThrough>>,
    misses: usize,
}

/// The cache; one per router (shared by every connection).
pub(crate) struct LabelCache {
    shards: Vec<Mutex<Shard>>,
    capacity_per_shard: usize,
}

impl Default for LabelCache {
    fn default() -> Self {
        LabelCache::with_capacity(CAPACITY)
    }
}

impl LabelCache {
    /// A cache of at most `capacity` label sets.
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        LabelCache {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            capacity_per_shard: capacity.div_ceil(SHARDS).max(1),
        }
    }

    fn shard(&self, key: u128) -> std::sync::MutexGuard<'_, Shard> {
        let index = (key >> 64) as usize % SHARDS;
        self.shards[index]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Takes the label set stored under `key` out of the cache.
    pub(crate) fn take(&self, key: u128) -> Option<Cached> {
        let mut shard = self.shard(key);
        let found = shard.entries.remove(&key);
        if found.is_none() {
            shard.misses += 1;
        }
        found
    }

    /// Puts a label set (back) under `key`, unless the shard is full. Returns the
    /// entries dropped by a reset, so the caller frees them outside the lock.
    pub(crate) fn put(&self, key: u128, cached: Cached) {
        let dropped = {
            let mut shard = self.shard(key);
            let mut dropped = None;
            if shard.entries.len() >= self.capacity_per_shard {
                if shard.misses < self.capacity_per_shard {
                    return;
                }
                dropped = Some(std::mem::take(&mut shard.entries));
                shard.misses = 0;
            }
            shard.entries.insert(key, cached);
            dropped
        };
        drop(dropped);
    }

    /// Label sets held.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().map(|s| s.entries.len()).unwrap_or(0))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cached(name: &str) -> Cached {
        Cached {
            labels: Labels::new(vec![("__name__".to_string(), name.to_string())]).unwrap(),
            hash: 1,
        }
    }

    #[test]
    fn take_lends_and_put_returns() {
        let cache = LabelCache::with_capacity(64);
        assert!(cache.take(7).is_none());
        cache.put(7, cached("up"));
        let taken = cache.take(7).unwrap();
        assert_eq!(taken.labels.metric_name(), "up");
        assert!(cache.take(7).is_none(), "lent out, so absent");
        cache.put(7, taken);
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn full_cache_keeps_its_entries_until_enough_misses() {
        let cache = LabelCache::with_capacity(SHARDS);
        // Keys with the same high half land in the same one-entry shard.
        cache.put(1, cached("a"));
        cache.put(2, cached("b"));
        assert_eq!(cache.len(), 1, "full: b is not kept");
        assert!(cache.take(3).is_none());
        cache.put(2, cached("b"));
        assert_eq!(cache.len(), 1, "reset after a miss, then b is kept");
        assert_eq!(cache.take(2).unwrap().labels.metric_name(), "b");
    }
}
