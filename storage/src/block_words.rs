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
    /// Per distinct word: its hash, where it starts in `joined`, and its length.
    words: Vec<(u64, u32, u32)>,
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
        let hash = xxh3_64(word);
        let mask = self.slots.len() - 1;
        let mut slot = hash as usize & mask;
        loop {
            match self.slots[slot] {
                0 => break,
                taken => {
                    let (other_hash, other_start, other_len) = self.words[taken as usize - 1];
                    let other_start = other_start as usize;
                    if other_hash == hash
                        && &self.joined.as_bytes()[other_start..other_start + other_len as usize]
                            == word
                    {
                        self.joined.truncate(start);
                        return;
                    }
                    slot = (slot + 1) & mask;
                }
            }
        }
        self.words.push((hash, start as u32, word.len() as u32));
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
        for (index, (hash, _, _)) in self.words.iter().enumerate() {
            let mut slot = *hash as usize & mask;
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

    proptest! {
        #[test]
        fn agrees_with_a_set(input in prop::collection::vec("[a-c]{1,3}", 0..200)) {
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
