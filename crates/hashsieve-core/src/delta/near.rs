//! Hamming-radius search over the delta's hashes: multi-index hashing whose tables grow and
//! shrink one entry at a time.
//!
//! The index file's tables are sorted arrays planned for a fixed list; the delta changes with
//! every batch, so here each 16-bit chunk of a hash keys a hash map of entry slots. A search at
//! threshold `t` probes every chunk value within the chunk's radius (the same generalised
//! pigeonhole split as the file's tables, so nothing within `t` is missed) and verifies the
//! candidates; when probing would cost more than reading every hash, it reads every hash.

use crate::index::hamming::{for_each_mask, masks_within, radii};

const CHUNK_BITS: u32 = 16;

type Words = [u64; 4];

fn words(value: &[u8]) -> Words {
    let mut words = [0u64; 4];
    for (word, bytes) in words.iter_mut().zip(value.chunks(8)) {
        let mut buffer = [0u8; 8];
        buffer[..bytes.len()].copy_from_slice(bytes);
        *word = u64::from_be_bytes(buffer);
    }
    words
}

fn distance(a: &Words, b: &Words) -> u32 {
    a.iter().zip(b).map(|(x, y)| (x ^ y).count_ones()).sum()
}

fn chunk(value: &[u8], index: usize) -> u16 {
    u16::from_be_bytes([value[2 * index], value[2 * index + 1]])
}

/// One chunk's table: the slots whose hash has each 16-bit value there, indexed directly by the
/// value (no hashing, and an address known before any load, so the probes of a search overlap
/// in memory). Allocated on the first insert: 1.5 MiB per chunk.
#[derive(Debug, Clone, Default)]
struct ChunkTable {
    buckets: Vec<Vec<u32>>,
}

impl ChunkTable {
    fn bucket_mut(&mut self, key: u16) -> &mut Vec<u32> {
        if self.buckets.is_empty() {
            self.buckets = vec![Vec::new(); 1 << CHUNK_BITS];
        }
        &mut self.buckets[usize::from(key)]
    }

    fn bucket(&self, key: u16) -> &[u32] {
        self.buckets.get(usize::from(key)).map_or(&[], Vec::as_slice)
    }
}

/// The delta's hashes of one Hamming kind (64 or 256 bits), by slot. Slots are small, dense
/// numbers (the delta reuses freed ones), so hashes are kept in a vector indexed by slot.
#[derive(Debug, Clone)]
pub(crate) struct NearTable {
    hash_bits: u32,
    tables: Vec<ChunkTable>,
    hashes: Vec<Option<Words>>,
    count: usize,
}

impl NearTable {
    pub(crate) fn new(hash_bits: u32) -> NearTable {
        let chunks = (hash_bits / CHUNK_BITS) as usize;
        NearTable { hash_bits, tables: vec![ChunkTable::default(); chunks], hashes: Vec::new(), count: 0 }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.count
    }

    /// Adds `slot` with hash `value` (`hash_bits / 8` bytes).
    pub(crate) fn insert(&mut self, slot: u32, value: &[u8]) {
        for (index, table) in self.tables.iter_mut().enumerate() {
            table.bucket_mut(chunk(value, index)).push(slot);
        }
        let slot = slot as usize;
        if self.hashes.len() <= slot {
            self.hashes.resize(slot + 1, None);
        }
        if self.hashes[slot].replace(words(value)).is_none() {
            self.count += 1;
        }
    }

    /// Removes `slot`, which was inserted with `value`.
    pub(crate) fn remove(&mut self, slot: u32, value: &[u8]) {
        for (index, table) in self.tables.iter_mut().enumerate() {
            table.bucket_mut(chunk(value, index)).retain(|&s| s != slot);
        }
        if self.hashes.get_mut(slot as usize).and_then(Option::take).is_some() {
            self.count -= 1;
        }
    }

    /// Calls `found(slot, distance)` for every hash within `threshold` of `query`, each once.
    pub(crate) fn search(&self, query: &[u8], threshold: u32, found: impl FnMut(u32, u32)) {
        if query.len() * 8 != self.hash_bits as usize || self.count == 0 {
            return;
        }
        let chunks = self.tables.len() as u32;
        let probes: f64 =
            radii(chunks, threshold).filter(|&r| r >= 0).map(|r| masks_within(CHUNK_BITS, r as u32)).sum();
        // A probe is a memory access or two, a few times the cost of checking one hash in a scan.
        if threshold >= self.hash_bits || probes * 4.0 >= self.count as f64 {
            self.scan(query, threshold, found);
        } else {
            self.probe(query, threshold, found);
        }
    }

    fn scan(&self, query: &[u8], threshold: u32, mut found: impl FnMut(u32, u32)) {
        let query = words(query);
        for (slot, hash) in self.hashes.iter().enumerate() {
            if let Some(hash) = hash {
                let d = distance(&query, hash);
                if d <= threshold {
                    found(slot as u32, d);
                }
            }
        }
    }

    fn probe(&self, query: &[u8], threshold: u32, mut found: impl FnMut(u32, u32)) {
        let mut candidates = Vec::new();
        for (index, radius) in radii(self.tables.len() as u32, threshold).enumerate() {
            if radius < 0 {
                continue;
            }
            let table = &self.tables[index];
            let key = chunk(query, index);
            for_each_mask(CHUNK_BITS, radius as u32, &mut |mask| {
                candidates.extend_from_slice(table.bucket(key ^ mask as u16));
            });
        }
        candidates.sort_unstable();
        candidates.dedup();
        let query = words(query);
        for slot in candidates {
            if let Some(Some(hash)) = self.hashes.get(slot as usize) {
                let d = distance(&query, hash);
                if d <= threshold {
                    found(slot, d);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn brute_force(hashes: &[(u32, Vec<u8>)], query: &[u8], threshold: u32) -> Vec<(u32, u32)> {
        let mut out: Vec<(u32, u32)> = hashes
            .iter()
            .map(|(slot, value)| (*slot, distance(&words(value), &words(query))))
            .filter(|&(_, d)| d <= threshold)
            .collect();
        out.sort_unstable();
        out
    }

    fn searched(table: &NearTable, query: &[u8], threshold: u32) -> Vec<(u32, u32)> {
        let mut out = Vec::new();
        table.search(query, threshold, |slot, d| out.push((slot, d)));
        out.sort_unstable();
        out
    }

    /// Both strategies, whichever `search` would pick, so that small tests cover probing.
    fn probed_and_scanned(table: &NearTable, query: &[u8], threshold: u32) -> [Vec<(u32, u32)>; 2] {
        let mut probed = Vec::new();
        let mut scanned = Vec::new();
        if threshold < table.hash_bits {
            table.probe(query, threshold, |slot, d| probed.push((slot, d)));
        }
        table.scan(query, threshold, |slot, d| scanned.push((slot, d)));
        probed.sort_unstable();
        scanned.sort_unstable();
        if threshold >= table.hash_bits {
            probed = scanned.clone();
        }
        [probed, scanned]
    }

    fn flip(value: &[u8], bits: &[usize]) -> Vec<u8> {
        let mut out = value.to_vec();
        let len = out.len();
        for &bit in bits {
            out[bit / 8 % len] ^= 1 << (bit % 8);
        }
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Against brute force, after inserts and removals, at thresholds from 0 to past the
        /// width of the hash, for 256- and 64-bit hashes, with queries near entries.
        #[test]
        fn equals_brute_force(
            wide in any::<bool>(),
            seeds in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 32), 1..300),
            removed in proptest::collection::vec(any::<prop::sample::Index>(), 0..100),
            flips in proptest::collection::vec(0usize..256, 0..70),
            threshold in prop_oneof![0u32..=40, 0u32..=260],
            near in any::<prop::sample::Index>(),
        ) {
            let bytes = if wide { 32 } else { 8 };
            let mut table = NearTable::new(bytes as u32 * 8);
            // Clustered values: copies of a few seeds with some bits flipped.
            let mut hashes: Vec<(u32, Vec<u8>)> = seeds
                .iter()
                .enumerate()
                .map(|(i, seed)| (i as u32, flip(&seeds[i % 5][..bytes], &seed[..(i % 9)].iter().map(|&b| b as usize).collect::<Vec<_>>())))
                .collect();
            for (slot, value) in &hashes {
                table.insert(*slot, value);
            }
            for index in removed {
                if hashes.is_empty() { break; }
                let (slot, value) = hashes.swap_remove(index.index(hashes.len()));
                table.remove(slot, &value);
            }
            prop_assert_eq!(table.len(), hashes.len());
            let base = if hashes.is_empty() { vec![0u8; bytes] } else { hashes[near.index(hashes.len())].1.clone() };
            let query = flip(&base, &flips[..flips.len().min(bytes * 8)]);
            let expected = brute_force(&hashes, &query, threshold);
            prop_assert_eq!(&searched(&table, &query, threshold), &expected);
            let [probed, scanned] = probed_and_scanned(&table, &query, threshold);
            prop_assert_eq!(&probed, &expected);
            prop_assert_eq!(&scanned, &expected);
        }
    }

    #[test]
    fn a_query_of_another_width_matches_nothing() {
        let mut table = NearTable::new(64);
        table.insert(1, &[0; 8]);
        assert_eq!(searched(&table, &[0; 32], 64), []);
        assert_eq!(searched(&table, &[0; 8], 0), [(1, 0)]);
    }
}
