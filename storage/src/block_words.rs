//! The distinct words of a block of log lines: what one document of the full-text index
//! holds ([`crate::textindex`]).
//!
//! Log lines repeat themselves: within a few dozen lines of one service, the date, the
//! level, the logger, the thread and the message template come back on every line. The
//! index is fed each distinct word once per block, so the words are gathered here first,
//! in a small open-addressing table that stays in cache, and handed over joined by
//! spaces.

use xxhash_rust::xxh3::xxh3_64;

/// The smallest table; it doubles when it is half full.
const MIN_SLOTS: usize = 1024;

/// A set of words, kept in insertion order as one space-separated string.
#[derive(Debug)]
pub(crate) struct BlockWords {
    /// The distinct words so far, each followed by a space.
    joined: String,
    /// Open addressing over `words`: 0 is empty, otherwise an index into `words` plus 1.
    slots: Vec<u32>,
    /// The distinct words.
    words: Vec<Word>,
}

/// A distinct word: most words are compared by `prefix` and `len` alone.
#[derive(Debug, Clone, Copy)]
struct Word {
    /// The first 16 bytes, little-endian, zero-padded.
    prefix: [u64; 2],
    hash: u64,
    /// Where the word starts in `joined`.
    start: u32,
    len: u32,
}

/// The first 16 bytes of `word` as two little-endian words, zero-padded.
#[inline]
fn prefix_of(word: &[u8]) -> [u64; 2] {
    let mut prefix = [0u64; 2];
    for (i, byte) in word.iter().take(16).enumerate() {
        prefix[i / 8] |= u64::from(*byte) << (8 * (i % 8));
    }
    prefix
}

/// The hash of a word of `len` bytes starting with `prefix`: a multiply-xorshift mix for
/// words of up to 16 bytes (the prefix is all of them), xxh3 for longer ones.
#[inline]
fn hash_of(word: &[u8], prefix: [u64; 2]) -> u64 {
    if word.len() > 16 {
        return xxh3_64(word);
    }
    let mut hash = prefix[0].wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ prefix[1].rotate_left(29)
        ^ (word.len() as u64) << 59;
    hash = (hash ^ (hash >> 32)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    hash ^ (hash >> 29)
}

impl Default for BlockWords {
    fn default() -> Self {
        BlockWords {
            joined: String::new(),
            slots: vec![0; MIN_SLOTS],
            words: Vec::new(),
        }
    }
}

impl BlockWords {
    /// Adds an ASCII word, lowercased.
    pub fn add_ascii_lowercased(&mut self, word: &str) {
        let start = self.joined.len();
        self.joined.push_str(word);
        self.joined[start..].make_ascii_lowercase();
        self.commit(start);
    }

    /// Adds a word, lowercased character by character.
    pub fn add_lowercased(&mut self, word: &str) {
        let start = self.joined.len();
        self.joined
            .extend(word.chars().flat_map(char::to_lowercase));
        self.commit(start);
    }

    /// Adds a word as it is.
    pub fn add(&mut self, word: &str) {
        let start = self.joined.len();
        self.joined.push_str(word);
        self.commit(start);
    }

    /// The distinct words, each followed by a space, in the order they were first added.
    pub fn joined(&self) -> &str {
        &self.joined
    }

    /// Forgets every word, keeping the memory.
    pub fn clear(&mut self) {
        if !self.words.is_empty() {
            self.joined.clear();
            self.words.clear();
            self.slots.fill(0);
        }
    }

    /// Keeps the word written at `joined[start..]` if it is new, else takes it back.
    fn commit(&mut self, start: usize) {
        let word = &self.joined.as_bytes()[start..];
        if word.is_empty() {
            return;
        }
        let prefix = prefix_of(word);
        let hash = hash_of(word, prefix);
        let len = word.len() as u32;
        let mask = self.slots.len() - 1;
        let mut slot = hash as usize & mask;
        loop {
            match self.slots[slot] {
                0 => break,
                taken => {
                    let other = self.words[taken as usize - 1];
                    if other.hash == hash
                        && other.len == len
                        && other.prefix == prefix
                        && (len <= 16 || {
                            let from = other.start as usize + 16;
                            self.joined.as_bytes()[from..from + len as usize - 16] == word[16..]
                        })
                    {
                        self.joined.truncate(start);
                        return;
                    }
                    slot = (slot + 1) & mask;
                }
            }
        }
        self.words.push(Word {
            prefix,
            hash,
            start: start as u32,
            len,
        });
        self.slots[slot] = self.words.len() as u32;
        self.joined.push(' ');
        if self.words.len() * 2 > self.slots.len() {
            self.grow();
        }
    }

    fn grow(&mut self) {
        let slots = self.slots.len() * 2;
        self.slots.clear();
        self.slots.resize(slots, 0);
        let mask = slots - 1;
        for (index, word) in self.words.iter().enumerate() {
            let mut slot = word.hash as usize & mask;
            while self.slots[slot] != 0 {
                slot = (slot + 1) & mask;
            }
            self.slots[slot] = index as u32 + 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    #[test]
    fn keeps_each_word_once_in_first_seen_order() {
        let mut words = BlockWords::default();
        words.add_ascii_lowercased("GET");
        words.add("get");
        words.add_lowercased("Ünïcode");
        words.add_ascii_lowercased("orders");
        words.add_lowercased("ÜNÏCODE");
        assert_eq!(words.joined(), "get ünïcode orders ");
        words.clear();
        assert_eq!(words.joined(), "");
        words.add("orders");
        assert_eq!(words.joined(), "orders ");
    }

    #[test]
    fn grows_past_its_first_table() {
        let mut words = BlockWords::default();
        for round in 0..2 {
            for i in 0..10 * MIN_SLOTS {
                words.add(&format!("w{i}"));
            }
            let listed: Vec<&str> = words.joined().split_terminator(' ').collect();
            let distinct: BTreeSet<&str> = listed.iter().copied().collect();
            assert_eq!(listed.len(), 10 * MIN_SLOTS, "round {round}");
            assert_eq!(distinct.len(), 10 * MIN_SLOTS, "round {round}");
        }
    }

    #[test]
    fn words_sharing_their_first_16_bytes_stay_apart() {
        let mut words = BlockWords::default();
        let long = "abcdefghijklmnop";
        for word in [
            long,
            "abcdefghijklmnopq",
            "abcdefghijklmnopr",
            "abcdefghijklmnopq",
            long,
        ] {
            words.add(word);
        }
        assert_eq!(
            words.joined(),
            "abcdefghijklmnop abcdefghijklmnopq abcdefghijklmnopr "
        );
    }

    proptest! {
        #[test]
        fn agrees_with_a_set(input in prop::collection::vec("[a-c]{1,3}|[ab]{15,18}", 0..200)) {
            let mut words = BlockWords::default();
            let mut expected = Vec::new();
            let mut seen = BTreeSet::new();
            for word in &input {
                words.add(word);
                if seen.insert(word.clone()) {
                    expected.push(word.clone());
                }
            }
            let got: Vec<&str> = words.joined().split_terminator(' ').collect();
            prop_assert_eq!(got, expected);
        }
    }
}
