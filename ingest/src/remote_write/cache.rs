//! Label sets of recently written series, keyed by a hash of their raw label bytes.
//!
//! A remote_write sender repeats the same label sets every scrape interval. Building
//! a [`Labels`] from the wire costs two allocations per label (and as many frees once
//! the write is stored), which was the largest cost of the receiver after the decode.
//! This cache keeps the label sets of recent requests: a series whose label fields are
//! byte-for-byte the same as before (xxh3-128 of the contiguous `Label` fields, seeded
//! with the limits they were validated under) takes its label set out of the cache,
//! lends it to the write, and puts it back afterwards. No allocation, no validation,
//! no sort, and its label fields are not even parsed (their bytes are those of a set
//! already checked). A label set in use by a request is absent from the cache meanwhile, so
//! concurrent requests never share one: the second builds its own.
//!
//! Memory is bounded: at most [`CAPACITY`] entries. When full, new label sets are not
//! kept; once as many misses as the capacity happened since the last reset, the cache
//! is emptied, so a changed set of series (pods replaced) takes it over again.
//!
//! When the series written are many more than it holds (a million series through one
//! receiver), the cache only churns: a cycle from full to reset with almost no hits. A
//! shard then switches to sampling: it keeps only the label sets of one key in
//! [`SAMPLE`], at most 1/[`SAMPLE`] of its capacity, and so stops holding memory that
//! never serves a hit. The sampled keys still measure the hit rate the whole cache would
//! have (the sample is a uniform 1/[`SAMPLE`] of the keys, held in 1/[`SAMPLE`] of the
//! room); once they hit as often as they miss, the shard caches every key again.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Mutex;

use storage::series::Labels;

/// Most label sets kept (about 1 KB each for a typical 12-label series).
pub(crate) const CAPACITY: usize = 1 << 16;
/// Independent shards, so concurrent requests rarely wait for each other.
const SHARDS: usize = 16;
/// A sampling shard keeps one key in this many (and this much less room).
pub(crate) const SAMPLE: u128 = 64;
/// A cycle with fewer hits than misses / this switches a shard to sampling.
const CHURN: usize = 8;

/// Whether a sampling shard keeps `key` (low bits: independent of the shard choice).
fn sampled(key: u128) -> bool {
    key.is_multiple_of(SAMPLE)
}

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

#[derive(Default)]
struct Shard {
    entries: HashMap<u128, Labels, BuildHasherDefault<PassThrough>>,
    /// Lookups that missed and that hit since the last reset.
    misses: usize,
    hits: usize,
    /// Keeping only sampled keys (the label sets written do not fit).
    sampling: bool,
}

impl Shard {
    /// Whether this shard keeps `key` at all.
    fn keeps(&self, key: u128) -> bool {
        !self.sampling || sampled(key)
    }

    /// Entries this shard holds at most, given its full capacity.
    fn limit(&self, capacity: usize) -> usize {
        if self.sampling {
            (capacity / SAMPLE as usize).max(1)
        } else {
            capacity
        }
    }

    /// Empties the shard for a new cycle and picks its mode from the cycle's hit rate
    /// (a shard too small to hold a sample never samples).
    fn reset(&mut self, capacity: usize) -> HashMap<u128, Labels, BuildHasherDefault<PassThrough>> {
        if self.sampling {
            self.sampling = self.hits < self.misses;
        } else if capacity >= SAMPLE as usize {
            self.sampling = self.hits.saturating_mul(CHURN) < self.misses;
        }
        self.misses = 0;
        self.hits = 0;
        std::mem::take(&mut self.entries)
    }
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
    pub(crate) fn take(&self, key: u128) -> Option<Labels> {
        let mut shard = self.shard(key);
        if !shard.keeps(key) {
            return None;
        }
        let found = shard.entries.remove(&key);
        if found.is_some() {
            shard.hits += 1;
        } else {
            shard.misses += 1;
        }
        // A sampling shard holding its sample rarely fills: it judges its cycle by
        // lookups instead, to notice when the label sets fit again.
        let limit = shard.limit(self.capacity_per_shard);
        let dropped = (shard.sampling && shard.hits + shard.misses >= 2 * limit)
            .then(|| shard.reset(self.capacity_per_shard));
        drop(shard);
        drop(dropped);
        found
    }

    /// Puts a label set (back) under `key`, unless the shard is full or does not keep
    /// the key. What it drops is freed outside the lock.
    pub(crate) fn put(&self, key: u128, cached: Labels) {
        let mut shard = self.shard(key);
        if !shard.keeps(key) {
            drop(shard);
            drop(cached);
            return;
        }
        let limit = shard.limit(self.capacity_per_shard);
        let mut dropped = None;
        if shard.entries.len() >= limit {
            if shard.misses < limit {
                drop(shard);
                drop(cached);
                return;
            }
            dropped = Some(shard.reset(self.capacity_per_shard));
        }
        if shard.keeps(key) {
            shard.entries.insert(key, cached);
            drop(shard);
        } else {
            drop(shard);
            drop(cached);
        }
        drop(dropped);
    }

    /// Shards that keep only sampled keys.
    #[cfg(test)]
    pub(crate) fn sampling_shards(&self) -> usize {
        self.shards
            .iter()
            .filter(|s| s.lock().map(|s| s.sampling).unwrap_or(false))
            .count()
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

    fn cached(name: &str) -> Labels {
        Labels::new(vec![("__name__".to_string(), name.to_string())]).unwrap()
    }

    #[test]
    fn take_lends_and_put_returns() {
        let cache = LabelCache::with_capacity(64);
        assert!(cache.take(7).is_none());
        cache.put(7, cached("up"));
        let taken = cache.take(7).unwrap();
        assert_eq!(taken.metric_name(), "up");
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
        assert_eq!(cache.take(2).unwrap().metric_name(), "b");
    }

    /// Writes `keys` through the cache as the receiver does (take, else build; put back)
    /// and returns the hits.
    fn write_round(cache: &LabelCache, keys: impl Iterator<Item = u128>) -> usize {
        let mut hits = 0;
        for key in keys {
            let entry = match cache.take(key) {
                Some(entry) => {
                    hits += 1;
                    entry
                }
                None => cached("m"),
            };
            cache.put(key, entry);
        }
        hits
    }

    /// Keys spread over every shard and both halves of the sampling test.
    fn key(i: u64) -> u128 {
        let mixed = u128::from(i).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835);
        mixed ^ (mixed >> 67)
    }

    #[test]
    fn churning_shards_sample_and_come_back_when_the_series_fit() {
        let capacity = SHARDS * SAMPLE as usize * 4;
        let cache = LabelCache::with_capacity(capacity);
        // Twenty times more series than the cache holds, written round after round.
        let many = (capacity * 20) as u64;
        for _ in 0..4 {
            write_round(&cache, (0..many).map(key));
        }
        assert_eq!(cache.sampling_shards(), SHARDS, "every shard churned");
        assert!(
            cache.len() <= capacity / SAMPLE as usize + SHARDS,
            "sampling holds a sliver: {}",
            cache.len()
        );
        // Then the series fit again: the sample sees it and the shards cache them all.
        let few = (capacity / 2) as u64;
        for _ in 0..40 {
            write_round(&cache, (0..few).map(key));
        }
        assert_eq!(cache.sampling_shards(), 0);
        assert_eq!(write_round(&cache, (0..few).map(key)), few as usize);
    }

    #[test]
    fn a_working_set_that_fits_never_samples() {
        let capacity = SHARDS * SAMPLE as usize * 4;
        let cache = LabelCache::with_capacity(capacity);
        let few = (capacity / 2) as u64;
        write_round(&cache, (0..few).map(key));
        for _ in 0..10 {
            assert_eq!(write_round(&cache, (0..few).map(key)), few as usize);
        }
        assert_eq!(cache.sampling_shards(), 0);
    }
}
