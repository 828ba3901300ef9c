//! A string interner for the series index: each distinct label name and value is
//! stored once and named by a dense `u32` symbol.
//!
//! Strings are appended to large chunks that never move (no per-string allocation);
//! a symbol is an index into a table of spans of those chunks. Lookup hashes the
//! string (xxh3_64) and compares the stored string, so a hash collision costs a
//! second map, not a wrong answer.

use std::collections::HashMap;

use xxhash_rust::xxh3::xxh3_64;

/// The size the chunks grow to (the first ones are smaller, so small tenants stay small).
const MAX_CHUNK_BYTES: usize = 1 << 20;
const MIN_CHUNK_BYTES: usize = 4 << 10;

/// Where a symbol's string is: `chunks[chunk][start..start + len]`.
#[derive(Clone, Copy)]
struct Span {
    chunk: u32,
    start: u32,
    len: u32,
}

/// Interned strings, each stored once, named by dense ids in insertion order.
#[derive(Default)]
pub(crate) struct Symbols {
    chunks: Vec<String>,
    spans: Vec<Span>,
    /// Hash of the string → its symbol (the first string with that hash).
    by_hash: HashMap<u64, u32>,
    /// Strings whose hash an earlier, different string holds in `by_hash` (almost always empty).
    collisions: HashMap<Box<str>, u32>,
}

impl Symbols {
    /// Returns the symbol of `text` if it was interned.
    pub fn get(&self, text: &str) -> Option<u32> {
        let symbol = *self.by_hash.get(&xxh3_64(text.as_bytes()))?;
        if self.resolve(symbol) == text {
            return Some(symbol);
        }
        self.collisions.get(text).copied()
    }

    /// Returns the symbol of `text`, interning it first if needed.
    pub fn intern(&mut self, text: &str) -> u32 {
        let hash = xxh3_64(text.as_bytes());
        match self.by_hash.get(&hash) {
            Some(&symbol) if self.resolve(symbol) == text => symbol,
            Some(_) => {
                if let Some(&symbol) = self.collisions.get(text) {
                    return symbol;
                }
                let symbol = self.push(text);
                self.collisions.insert(text.into(), symbol);
                symbol
            }
            None => {
                let symbol = self.push(text);
                self.by_hash.insert(hash, symbol);
                symbol
            }
        }
    }

    /// Returns the string of a symbol handed out by [`Symbols::intern`].
    pub fn resolve(&self, symbol: u32) -> &str {
        let span = self.spans[symbol as usize];
        let start = span.start as usize;
        &self.chunks[span.chunk as usize][start..start + span.len as usize]
    }

    /// Number of distinct strings.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// Bytes allocated on the heap (an estimate: hash tables count one control byte per slot).
    #[cfg(test)]
    pub fn heap_bytes(&self) -> usize {
        let chunks: usize = self.chunks.iter().map(String::capacity).sum();
        let collisions: usize = self.collisions.keys().map(|k| k.len()).sum();
        chunks
            + self.chunks.capacity() * size_of::<String>()
            + self.spans.capacity() * size_of::<Span>()
            + map_bytes(&self.by_hash)
            + map_bytes(&self.collisions)
            + collisions
    }

    fn push(&mut self, text: &str) -> u32 {
        let fits = self
            .chunks
            .last()
            .is_some_and(|chunk| chunk.capacity() - chunk.len() >= text.len());
        if !fits {
            let previous = self.chunks.last().map_or(0, String::capacity);
            let capacity = (previous * 2).clamp(MIN_CHUNK_BYTES, MAX_CHUNK_BYTES);
            self.chunks
                .push(String::with_capacity(capacity.max(text.len())));
        }
        let chunk_index = self.chunks.len() - 1;
        let chunk = &mut self.chunks[chunk_index];
        let start = chunk.len();
        chunk.push_str(text);
        self.spans.push(Span {
            chunk: u32::try_from(chunk_index).expect("fewer than 2^32 chunks"),
            start: u32::try_from(start).expect("chunks are far below 4 GiB"),
            len: u32::try_from(text.len()).expect("label strings are far below 4 GiB"),
        });
        u32::try_from(self.spans.len() - 1).expect("fewer than 2^32 distinct label strings")
    }
}

/// Estimated heap bytes of a std hash map: one entry plus one control byte per slot.
#[cfg(test)]
pub(crate) fn map_bytes<K, V, S>(map: &HashMap<K, V, S>) -> usize {
    map.capacity() * (size_of::<(K, V)>() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interning_is_idempotent_and_round_trips() {
        let mut symbols = Symbols::default();
        let a = symbols.intern("job");
        let b = symbols.intern("instance");
        assert_eq!(symbols.intern("job"), a);
        assert_ne!(a, b);
        assert_eq!(symbols.resolve(a), "job");
        assert_eq!(symbols.resolve(b), "instance");
        assert_eq!(symbols.get("instance"), Some(b));
        assert_eq!(symbols.get("absent"), None);
        assert_eq!(symbols.len(), 2);
    }

    #[test]
    fn each_string_is_stored_once_across_chunks() {
        let mut symbols = Symbols::default();
        let texts: Vec<String> = (0..50_000).map(|i| format!("value-{i}")).collect();
        let ids: Vec<u32> = texts.iter().map(|t| symbols.intern(t)).collect();
        // Interning again stores nothing new.
        let bytes = symbols.heap_bytes();
        for text in &texts {
            symbols.intern(text);
        }
        assert_eq!(symbols.heap_bytes(), bytes);
        assert_eq!(symbols.len(), texts.len());
        let stored: usize = symbols.chunks.iter().map(String::len).sum();
        assert_eq!(stored, texts.iter().map(String::len).sum::<usize>());
        assert!(symbols.chunks.len() > 1, "the test spans several chunks");
        for (text, id) in texts.iter().zip(ids) {
            assert_eq!(symbols.resolve(id), text);
        }
        // A string longer than a chunk gets a chunk of its own.
        let long = "x".repeat(MAX_CHUNK_BYTES + 1);
        let id = symbols.intern(&long);
        assert_eq!(symbols.resolve(id), long);
    }

    #[test]
    fn hash_collisions_resolve_to_distinct_symbols() {
        let mut symbols = Symbols::default();
        let a = symbols.intern("a");
        // Simulate a collision: make "b"'s hash point at "a".
        symbols.by_hash.insert(xxh3_64(b"b"), a);
        let b = symbols.intern("b");
        assert_ne!(a, b);
        assert_eq!(symbols.intern("b"), b);
        assert_eq!(symbols.get("b"), Some(b));
        assert_eq!(symbols.resolve(b), "b");
    }
}
