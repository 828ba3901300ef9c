//! Hash maps keyed by numbers this process hands out (series ids, positions, symbols).
//!
//! The standard map hashes with SipHash, which resists keys chosen to collide but costs
//! about 20 ns a lookup; the write path looks series ids up once per sample. These keys
//! are assigned here, never chosen by a client, so a multiply-rotate mix (the one
//! rustc uses for its own maps) is enough to spread them over the table.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// The odd constant of the mix (2^64 / the golden ratio, rounded to odd).
const SEED: u64 = 0x9e37_79b9_7f4a_7c15;

/// A hasher for small integer keys.
#[derive(Default, Clone, Copy)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        // hashbrown takes the bucket from the low bits and the tag from the top 7:
        // fold the well-mixed high half down so both see every input bit.
        self.0 ^ (self.0 >> 32)
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = (self.0.rotate_left(5) ^ value).wrapping_mul(SEED);
    }

    fn write_u32(&mut self, value: u32) {
        self.write_u64(u64::from(value));
    }

    fn write_usize(&mut self, value: usize) {
        self.write_u64(value as u64);
    }
}

/// A map keyed by ids assigned by this process.
pub(crate) type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dense_ids_spread_over_buckets_and_tags() {
        let hash = |id: u64| {
            let mut h = IdHasher::default();
            h.write_u64(id);
            h.finish()
        };
        // Sequential ids land in distinct low-bit buckets and vary the top 7 bits.
        let buckets: std::collections::HashSet<u64> = (0..4096).map(|id| hash(id) & 4095).collect();
        assert!(buckets.len() > 2500, "{} buckets of 4096", buckets.len());
        let tags: std::collections::HashSet<u64> = (0..4096).map(|id| hash(id) >> 57).collect();
        assert_eq!(tags.len(), 128);
        let mut map: IdMap<u64, u32> = IdMap::default();
        for id in 0..10_000u64 {
            map.insert(id << 40 | id, id as u32);
        }
        assert!((0..10_000u64).all(|id| map[&(id << 40 | id)] == id as u32));
    }
}
