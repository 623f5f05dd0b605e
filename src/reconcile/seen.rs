//! A fixed-size "have I seen this transaction id before?" filter over a bill's payment rows
//! (a blocked Bloom filter: all of one key's bits in one 64-byte cache line).
//!
//! It answers "no" only when the key was certainly not inserted before, and "maybe" otherwise.
//! Reconciliation uses the certain "no": a bill in which no payment's transaction id was maybe
//! seen before has no duplicate, so counting its rows that match a local payment counts distinct
//! payments. A false "maybe" only sends the run down the exact path (see `reconcile::classify`).
//! Memory is fixed (16 MiB) whatever the bill's size.

use std::hash::{BuildHasher, Hasher};

/// 2^18 blocks of 512 bits: 16 MiB. At 1 M keys a false "maybe" happens about once in a
/// thousand bills; at 2 M, about once in ten.
const BLOCKS: usize = 1 << 18;
const WORDS_PER_BLOCK: usize = 8;
/// Bits set per key, each chosen by 9 bits of the second hash.
const BITS_PER_KEY: u32 = 7;

pub struct SeenFilter {
    words: Vec<u64>,
    hasher: std::collections::hash_map::RandomState,
}

impl SeenFilter {
    pub fn new() -> Self {
        SeenFilter {
            words: vec![0; BLOCKS * WORDS_PER_BLOCK],
            hasher: std::collections::hash_map::RandomState::new(),
        }
    }

    /// Inserts `key`; answers whether it may have been inserted before (`false`: certainly not).
    pub fn insert(&mut self, key: &[u8]) -> bool {
        let (base, bits) = self.position(key);
        let mut all_set = true;
        for (word, mask) in bits.map(|bit| (base + bit / 64, 1u64 << (bit % 64))) {
            all_set &= self.words[word] & mask != 0;
            self.words[word] |= mask;
        }
        all_set
    }

    /// Whether `key` may have been inserted (`false`: certainly not).
    pub fn may_contain(&self, key: &[u8]) -> bool {
        let (base, bits) = self.position(key);
        bits.map(|bit| (base + bit / 64, 1u64 << (bit % 64)))
            .all(|(word, mask)| self.words[word] & mask != 0)
    }

    /// The first word of `key`'s block and its bits within the block.
    fn position(&self, key: &[u8]) -> (usize, impl Iterator<Item = usize> + use<>) {
        let mut h = self.hasher.build_hasher();
        h.write(key);
        let first = h.finish();
        // A second, independent 64-bit hash: the same keyed hasher over the first one.
        let mut h2 = self.hasher.build_hasher();
        h2.write_u64(first);
        let second = h2.finish();
        let block = (first as usize) & (BLOCKS - 1);
        let bits = (0..BITS_PER_KEY).map(move |i| ((second >> (9 * i)) & 511) as usize);
        (block * WORDS_PER_BLOCK, bits)
    }
}

impl Default for SeenFilter {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_inserted_twice_is_maybe_seen_and_fresh_keys_are_not() {
        let mut seen = SeenFilter::new();
        let mut maybe = 0;
        for i in 0..100_000u32 {
            if seen.insert(format!("4200000{i:021}").as_bytes()) {
                maybe += 1;
            }
        }
        // 100 k distinct keys in 2^18 blocks: a false "maybe" is about 1e-13 per key.
        assert_eq!(maybe, 0);
        // Every key already inserted answers "maybe" (no false "no"); fresh ones "no".
        for i in (0..100_000u32).step_by(997) {
            assert!(seen.may_contain(format!("4200000{i:021}").as_bytes()));
            assert!(!seen.may_contain(format!("4300000{i:021}").as_bytes()));
            assert!(seen.insert(format!("4200000{i:021}").as_bytes()));
        }
    }
}
