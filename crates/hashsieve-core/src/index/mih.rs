//! A growable multi-index-hashing table: complete Hamming-radius search over hashes added and
//! removed one at a time, each with a payload. The index directory's delta keeps its Hamming
//! hashes in one, and triage's verdict memory its items' PDQ hashes.
//!
//! The index file's tables ([`super::hamming`]) are sorted arrays planned once for a fixed
//! list; this table changes with every insert, and shares their completeness argument, radius
//! split and mask enumeration. Each 16-bit chunk of a hash keys a table of the slots whose hash
//! has that value there, indexed directly by the value: no hashing, and an address known before
//! any load, so the probes of a search overlap in memory (1.5 MiB per chunk, allocated on the
//! first insert: 6 MiB for 64-bit hashes, 24 MiB for PDQ's 256). A search at threshold `t`
//! probes every chunk value within its chunk's radius and verifies each candidate by its full
//! distance, so nothing within `t` is missed; when probing would cost more than reading every
//! hash, it reads every hash. Either way the answer is exactly the brute-force one (the
//! property test below checks it).
//!
//! ```
//! use hashsieve_core::index::mih::Mih;
//!
//! let mut table = Mih::new(64);
//! table.insert(7, &[0xff; 8], "seven");
//! table.insert(9, &[0x0f; 8], "nine");
//! let mut found = Vec::new();
//! table.search(&[0xfe; 8], 8, |slot, name, distance| found.push((slot, *name, distance)));
//! assert_eq!(found, [(7, "seven", 8)]);
//! assert_eq!(table.remove(7), Some("seven"));
//! assert_eq!(table.len(), 1);
//! ```

use super::hamming::{for_each_mask, masks_within, radii};

const CHUNK_BITS: u32 = 16;

/// The widest hash a table holds.
pub const MAX_HASH_BITS: u32 = 256;

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

/// One chunk's table: the slots whose hash has each 16-bit value there.
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

/// Hashes of one width, each in a slot with a payload `T`. Slots are the caller's numbers and
/// should be small and dense (the table keeps a vector indexed by slot): the delta reuses
/// freed entry numbers, triage numbers its items in order.
#[derive(Debug, Clone)]
pub struct Mih<T> {
    hash_bits: u32,
    tables: Vec<ChunkTable>,
    slots: Vec<Option<(Words, T)>>,
    count: usize,
}

impl<T> Mih<T> {
    /// An empty table for hashes of `hash_bits` bits: a multiple of 16, at most
    /// [`MAX_HASH_BITS`].
    ///
    /// # Panics
    ///
    /// For any other width: the widths are the hash kinds', fixed in code.
    pub fn new(hash_bits: u32) -> Mih<T> {
        assert!(
            hash_bits > 0 && hash_bits <= MAX_HASH_BITS && hash_bits.is_multiple_of(CHUNK_BITS),
            "a Hamming table holds hashes of 16 to 256 bits in 16-bit chunks, not {hash_bits}"
        );
        let chunks = (hash_bits / CHUNK_BITS) as usize;
        Mih { hash_bits, tables: vec![ChunkTable::default(); chunks], slots: Vec::new(), count: 0 }
    }

    /// The width of the hashes it holds.
    pub fn hash_bits(&self) -> u32 {
        self.hash_bits
    }

    /// The number of hashes in it.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether it holds no hash.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Puts hash `value` (`hash_bits / 8` bytes) with `payload` in `slot`; returns the payload
    /// the slot held before, whose hash it replaces.
    ///
    /// # Panics
    ///
    /// If `value` is not `hash_bits / 8` bytes long.
    pub fn insert(&mut self, slot: u32, value: &[u8], payload: T) -> Option<T> {
        assert_eq!(value.len() * 8, self.hash_bits as usize, "a hash of the table's width");
        let previous = self.remove(slot);
        for (index, table) in self.tables.iter_mut().enumerate() {
            table.bucket_mut(chunk(value, index)).push(slot);
        }
        let at = slot as usize;
        if self.slots.len() <= at {
            self.slots.resize_with(at + 1, || None);
        }
        self.slots[at] = Some((words(value), payload));
        self.count += 1;
        previous
    }

    /// Empties `slot`, returning its payload.
    pub fn remove(&mut self, slot: u32) -> Option<T> {
        let (hash, payload) = self.slots.get_mut(slot as usize)?.take()?;
        let bytes: Vec<u8> = hash.iter().flat_map(|word| word.to_be_bytes()).collect();
        for (index, table) in self.tables.iter_mut().enumerate() {
            table.bucket_mut(chunk(&bytes, index)).retain(|&s| s != slot);
        }
        self.count -= 1;
        Some(payload)
    }

    /// The payload in `slot`.
    pub fn get(&self, slot: u32) -> Option<&T> {
        self.slots.get(slot as usize)?.as_ref().map(|(_, payload)| payload)
    }

    /// The payload in `slot`, to change in place.
    pub fn get_mut(&mut self, slot: u32) -> Option<&mut T> {
        self.slots.get_mut(slot as usize)?.as_mut().map(|(_, payload)| payload)
    }

    /// Calls `found(slot, payload, distance)` for every hash within `threshold` bits of
    /// `query`, each once, in no particular order. A query of another width finds nothing.
    pub fn search(&self, query: &[u8], threshold: u32, found: impl FnMut(u32, &T, u32)) {
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

    fn scan(&self, query: &[u8], threshold: u32, mut found: impl FnMut(u32, &T, u32)) {
        let query = words(query);
        for (slot, held) in self.slots.iter().enumerate() {
            if let Some((hash, payload)) = held {
                let d = distance(&query, hash);
                if d <= threshold {
                    found(slot as u32, payload, d);
                }
            }
        }
    }

    fn probe(&self, query: &[u8], threshold: u32, mut found: impl FnMut(u32, &T, u32)) {
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
            if let Some(Some((hash, payload))) = self.slots.get(slot as usize) {
                let d = distance(&query, hash);
                if d <= threshold {
                    found(slot, payload, d);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// The oracle: every hash held, bit by bit.
    fn brute_force(held: &[(u32, Vec<u8>)], query: &[u8], threshold: u32) -> Vec<(u32, u32)> {
        let bits = |a: &[u8], b: &[u8]| a.iter().zip(b).map(|(x, y)| (x ^ y).count_ones()).sum::<u32>();
        let mut out: Vec<(u32, u32)> = held
            .iter()
            .map(|(slot, value)| (*slot, bits(value, query)))
            .filter(|&(_, d)| d <= threshold)
            .collect();
        out.sort_unstable();
        out
    }

    /// Whichever strategy `search` picks, and both, so that small tables cover probing too.
    fn searched(table: &Mih<u32>, query: &[u8], threshold: u32) -> [Vec<(u32, u32)>; 3] {
        let mut out = [Vec::new(), Vec::new(), Vec::new()];
        let check = |slot: u32, payload: &u32, _: u32| assert_eq!(*payload, slot * 10, "the slot's payload");
        table.search(query, threshold, |slot, payload, d| {
            check(slot, payload, d);
            out[0].push((slot, d));
        });
        table.scan(query, threshold, |slot, payload, d| {
            check(slot, payload, d);
            out[1].push((slot, d));
        });
        if threshold < table.hash_bits {
            table.probe(query, threshold, |slot, payload, d| {
                check(slot, payload, d);
                out[2].push((slot, d));
            });
        } else {
            out[2] = out[1].clone();
        }
        out.each_mut().map(|found| {
            found.sort_unstable();
            std::mem::take(found)
        })
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
        #![proptest_config(ProptestConfig::with_cases(96))]

        /// Against brute force, for 64- and 256-bit hashes clustered around a few seeds,
        /// after inserts, replacements and removals, at thresholds from 0 to past the width,
        /// with queries near a held hash; each found once, with its slot's payload.
        #[test]
        fn equals_brute_force(
            wide in any::<bool>(),
            seeds in proptest::collection::vec(any::<[u8; 32]>(), 1..6),
            flips in proptest::collection::vec(proptest::collection::vec(0usize..256, 0..40), 1..300),
            replaced in proptest::collection::vec(any::<prop::sample::Index>(), 0..30),
            removed in proptest::collection::vec(any::<prop::sample::Index>(), 0..100),
            query_flips in proptest::collection::vec(0usize..256, 0..70),
            threshold in prop_oneof![0u32..=40, Just(31), 0u32..=260],
            near in any::<prop::sample::Index>(),
        ) {
            let bytes = if wide { 32 } else { 8 };
            let mut table = Mih::new(bytes as u32 * 8);
            let mut held: Vec<(u32, Vec<u8>)> = flips
                .iter()
                .enumerate()
                .map(|(i, bits)| (i as u32, flip(&seeds[i % seeds.len()][..bytes], bits)))
                .collect();
            for (slot, value) in &held {
                prop_assert_eq!(table.insert(*slot, value, slot * 10), None);
            }
            for index in replaced {
                let at = index.index(held.len());
                let value = flip(&held[at].1, &[at, at * 7]);
                let slot = held[at].0;
                prop_assert_eq!(table.insert(slot, &value, slot * 10), Some(slot * 10));
                held[at].1 = value;
            }
            for index in removed {
                if held.is_empty() {
                    break;
                }
                let (slot, _) = held.swap_remove(index.index(held.len()));
                prop_assert_eq!(table.remove(slot), Some(slot * 10));
            }
            prop_assert_eq!(table.len(), held.len());
            let base = if held.is_empty() { vec![0u8; bytes] } else { held[near.index(held.len())].1.clone() };
            let query = flip(&base, &query_flips[..query_flips.len().min(bytes * 8)]);
            let expected = brute_force(&held, &query, threshold);
            for found in searched(&table, &query, threshold) {
                prop_assert_eq!(&found, &expected);
            }
        }
    }

    #[test]
    fn a_query_of_another_width_finds_nothing_and_an_emptied_slot_is_gone() {
        let mut table = Mih::new(64);
        table.insert(1, &[0; 8], ());
        let mut found = Vec::new();
        table.search(&[0; 32], 64, |slot, (), d| found.push((slot, d)));
        assert_eq!(found, []);
        table.search(&[0; 8], 0, |slot, (), d| found.push((slot, d)));
        assert_eq!(found, [(1, 0)]);
        assert_eq!(table.remove(1), Some(()));
        assert_eq!(table.remove(1), None);
        assert!(table.is_empty() && table.get(1).is_none());
        table.search(&[0; 8], 64, |slot, (), d| found.push((slot, d)));
        assert_eq!(found, [(1, 0)]);
    }

    #[test]
    #[should_panic(expected = "16 to 256 bits")]
    fn a_width_not_in_16_bit_chunks_is_refused() {
        let _ = Mih::<()>::new(100);
    }
}
