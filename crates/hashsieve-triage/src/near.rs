//! Complete Hamming-radius search over the PDQ hashes of the items in the store.
//!
//! Core's tables are not reachable from here (the index file's are built once for a fixed list;
//! the delta's are crate-private), so this is a small multi-index hashing table of its own,
//! grown one item at a time: each 256-bit hash is cut into sixteen 16-bit chunks, and chunk `i`
//! keys a map from chunk value to the positions of the hashes that have it there. By the
//! generalised pigeonhole principle, if two hashes are within `t` bits then for radii `r_i` with
//! `Σ (r_i + 1) = t + 1` some chunk `i` differs in at most `r_i` bits; at the default `t = 31`
//! every `r_i` is 1, so a query probes 16 × 17 chunk values and verifies the candidates. When
//! probing would cost more than reading every hash (few items, or a wide threshold), it reads
//! every hash. Either way the result is exactly the brute-force answer; the tests check it.
//!
//! Items are never removed from the store, so the table only grows; an item's status (pending in
//! a group, assessed) changes in place.

use std::collections::HashMap;

use hashsieve_core::pdq::PdqHash;

use crate::model::{GroupId, ItemId};

const CHUNKS: usize = 16;
const CHUNK_BITS: u32 = 16;

type Words = [u64; 4];

fn words(hash: &PdqHash) -> Words {
    let mut words = [0u64; 4];
    for (word, bytes) in words.iter_mut().zip(hash.0.chunks_exact(8)) {
        *word = u64::from_be_bytes(bytes.try_into().expect("8-byte chunk"));
    }
    words
}

fn distance(a: &Words, b: &Words) -> u32 {
    a.iter().zip(b).map(|(x, y)| (x ^ y).count_ones()).sum()
}

fn chunk(words: &Words, index: usize) -> u16 {
    (words[index / 4] >> (48 - 16 * (index % 4))) as u16
}

/// The radius to probe in each chunk so that nothing within `threshold` is missed: `r_i` with
/// `Σ (r_i + 1) = threshold + 1` (a radius of -1 means the chunk is not probed).
fn radii(threshold: u32) -> impl Iterator<Item = i64> {
    let total = i64::from(threshold) + 1;
    let (base, extra) = (total / CHUNKS as i64, total % CHUNKS as i64);
    (0..CHUNKS as i64).map(move |i| base - 1 + i64::from(i < extra))
}

/// The number of 16-bit values within `radius` bits of one value.
fn masks_within(radius: i64) -> u64 {
    let mut binomial = 1u64;
    let mut total = 0;
    for k in 0..=radius.clamp(-1, 16) {
        if k > 0 {
            binomial = binomial * (17 - k as u64) / k as u64;
        }
        total += binomial;
    }
    total
}

/// Calls `each` with every 16-bit mask of at most `radius` set bits.
fn for_each_mask(radius: i64, each: &mut impl FnMut(u16)) {
    fn go(start: u32, left: i64, mask: u16, each: &mut impl FnMut(u16)) {
        each(mask);
        if left == 0 {
            return;
        }
        for bit in start..CHUNK_BITS {
            go(bit + 1, left - 1, mask | (1 << bit), each);
        }
    }
    if radius >= 0 {
        go(0, radius, 0, each);
    }
}

/// What an item in the near table is, for classification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NearStatus {
    /// Awaiting review in this group.
    Pending(GroupId),
    /// Assessed by an analyst, directly or through its group: a verdict others may inherit.
    Assessed,
    /// Its verdict was inherited: it passes the verdict on only to byte-identical content, so
    /// that a chain of near-duplicates cannot carry a verdict ever further from what an analyst
    /// saw.
    Inherited,
}

/// One item within the threshold of a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NearHit {
    pub(crate) item: ItemId,
    /// The smallest distance from any of the query's hashes.
    pub(crate) distance: u32,
    pub(crate) status: NearStatus,
}

#[derive(Debug, Default)]
pub(crate) struct NearTable {
    items: Vec<ItemId>,
    hashes: Vec<Words>,
    statuses: Vec<NearStatus>,
    positions: HashMap<ItemId, u32>,
    chunks: Vec<HashMap<u16, Vec<u32>>>,
}

impl NearTable {
    pub(crate) fn new() -> NearTable {
        NearTable { chunks: vec![HashMap::new(); CHUNKS], ..NearTable::default() }
    }

    /// Adds an item, or updates its status if it is already in.
    pub(crate) fn insert(&mut self, item: ItemId, hash: &PdqHash, status: NearStatus) {
        if self.set_status(item, status) {
            return;
        }
        let position = u32::try_from(self.items.len()).expect("fewer than 2^32 items with a PDQ hash");
        let words = words(hash);
        for (index, table) in self.chunks.iter_mut().enumerate() {
            table.entry(chunk(&words, index)).or_default().push(position);
        }
        self.items.push(item);
        self.hashes.push(words);
        self.statuses.push(status);
        self.positions.insert(item, position);
    }

    /// Sets the status of an item in the table; false if it is not in.
    pub(crate) fn set_status(&mut self, item: ItemId, status: NearStatus) -> bool {
        match self.positions.get(&item) {
            Some(&position) => {
                self.statuses[position as usize] = status;
                true
            }
            None => false,
        }
    }

    /// Every item within `threshold` of any of `queries`, each once at its smallest distance,
    /// sorted by distance, then item.
    pub(crate) fn within(&self, queries: &[PdqHash], threshold: u32) -> Vec<NearHit> {
        let queries: Vec<Words> = queries.iter().map(words).collect();
        let mut best: HashMap<u32, u32> = HashMap::new();
        let probes: u64 = radii(threshold).map(masks_within).sum::<u64>() * queries.len() as u64;
        // A probe is a hash-map lookup, several times the cost of checking one hash in a scan.
        if threshold >= 256 || probes.saturating_mul(8) >= self.items.len() as u64 {
            self.scan(&queries, threshold, &mut best);
        } else {
            self.probe(&queries, threshold, &mut best);
        }
        let mut hits: Vec<NearHit> = best
            .into_iter()
            .map(|(position, distance)| NearHit {
                item: self.items[position as usize],
                distance,
                status: self.statuses[position as usize],
            })
            .collect();
        hits.sort_unstable_by_key(|hit| (hit.distance, hit.item));
        hits
    }

    fn scan(&self, queries: &[Words], threshold: u32, best: &mut HashMap<u32, u32>) {
        for (position, hash) in self.hashes.iter().enumerate() {
            let d = queries.iter().map(|query| distance(query, hash)).min().unwrap_or(u32::MAX);
            if d <= threshold {
                best.insert(position as u32, d);
            }
        }
    }

    fn probe(&self, queries: &[Words], threshold: u32, best: &mut HashMap<u32, u32>) {
        let mut candidates = Vec::new();
        for query in queries {
            candidates.clear();
            for (index, radius) in radii(threshold).enumerate() {
                let table = &self.chunks[index];
                let key = chunk(query, index);
                for_each_mask(radius, &mut |mask| {
                    if let Some(positions) = table.get(&(key ^ mask)) {
                        candidates.extend_from_slice(positions);
                    }
                });
            }
            candidates.sort_unstable();
            candidates.dedup();
            for &position in &candidates {
                let d = distance(query, &self.hashes[position as usize]);
                if d <= threshold {
                    let slot = best.entry(position).or_insert(d);
                    *slot = (*slot).min(d);
                }
            }
        }
    }

    #[cfg(test)]
    fn probed_and_scanned(&self, queries: &[PdqHash], threshold: u32) -> [Vec<(u32, u32)>; 2] {
        let queries: Vec<Words> = queries.iter().map(words).collect();
        let [mut probed, mut scanned] = [HashMap::new(), HashMap::new()];
        self.probe(&queries, threshold, &mut probed);
        self.scan(&queries, threshold, &mut scanned);
        [probed, scanned].map(|found| {
            let mut found: Vec<(u32, u32)> = found.into_iter().collect();
            found.sort_unstable();
            found
        })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn flipped(hash: &PdqHash, bits: &[usize]) -> PdqHash {
        let mut out = *hash;
        for &bit in bits {
            out.0[bit / 8 % 32] ^= 1 << (bit % 8);
        }
        out
    }

    /// The oracle: every hash, every query, core's own distance.
    fn brute_force(hashes: &[PdqHash], queries: &[PdqHash], threshold: u32) -> Vec<(u32, u32)> {
        hashes
            .iter()
            .enumerate()
            .filter_map(|(position, hash)| {
                let d = queries.iter().map(|q| q.hamming_distance(hash)).min()?;
                (d <= threshold).then_some((position as u32, d))
            })
            .collect()
    }

    #[test]
    fn radii_add_up_to_the_threshold_plus_one() {
        for threshold in 0..300 {
            let sum: i64 = radii(threshold).map(|r| r + 1).sum();
            assert_eq!(sum, i64::from(threshold) + 1);
        }
        assert!(radii(31).all(|r| r == 1));
    }

    #[test]
    fn masks_within_counts_what_for_each_mask_visits() {
        for radius in -1..=4 {
            let mut seen = std::collections::HashSet::new();
            for_each_mask(radius, &mut |mask| assert!(seen.insert(mask)));
            assert_eq!(seen.len() as u64, masks_within(radius), "radius {radius}");
            assert!(seen.iter().all(|mask| i64::from(mask.count_ones()) <= radius));
        }
    }

    #[test]
    fn the_shared_matching_vectors_are_found_at_31() {
        let read =
            |name: &str| std::fs::read_to_string(format!("../../tests/vectors/pdq/matching/{name}")).unwrap();
        let haystack: Vec<PdqHash> =
            read("haystack.txt").lines().map(|l| PdqHash::from_hex(l).unwrap()).collect();
        let needles: Vec<PdqHash> =
            read("needles.txt").lines().map(|l| PdqHash::from_hex(l).unwrap()).collect();
        let mut table = NearTable::new();
        for (i, hash) in haystack.iter().enumerate() {
            table.insert(ItemId(i as u64), hash, NearStatus::Assessed);
        }
        let mut found = Vec::new();
        for (n, needle) in needles.iter().enumerate() {
            for hit in table.within(&[*needle], 31) {
                found.push(format!("{n},{},{}", hit.item.0, hit.distance));
            }
        }
        found.sort();
        let mut expected: Vec<String> = read("expected-matches-31.csv")
            .lines()
            .skip(1)
            .map(|line| {
                let f: Vec<&str> = line.split(',').collect();
                format!("{},{},{}", f[0], f[2], f[4])
            })
            .collect();
        expected.sort();
        assert_eq!(found, expected);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(96))]

        /// Against brute force, with hashes clustered around a few seeds (so that many are
        /// near one another), queries of one to eight hashes near an entry, and thresholds from
        /// 0 to past the width of the hash; both strategies, whichever `within` would pick.
        #[test]
        fn equals_brute_force(
            seeds in proptest::collection::vec(any::<[u8; 32]>(), 1..6),
            flips in proptest::collection::vec(proptest::collection::vec(0usize..256, 0..40), 1..400),
            query_flips in proptest::collection::vec(proptest::collection::vec(0usize..256, 0..48), 1..=8),
            near in any::<prop::sample::Index>(),
            threshold in prop_oneof![0u32..=64, Just(31), 0u32..=260],
        ) {
            let hashes: Vec<PdqHash> = flips
                .iter()
                .enumerate()
                .map(|(i, bits)| flipped(&PdqHash(seeds[i % seeds.len()]), bits))
                .collect();
            let mut table = NearTable::new();
            for (i, hash) in hashes.iter().enumerate() {
                table.insert(ItemId(i as u64), hash, NearStatus::Pending(GroupId(i as u64 % 3)));
            }
            let base = hashes[near.index(hashes.len())];
            let queries: Vec<PdqHash> = query_flips.iter().map(|bits| flipped(&base, bits)).collect();
            let expected = brute_force(&hashes, &queries, threshold);
            let mut found: Vec<(u32, u32)> =
                table.within(&queries, threshold).iter().map(|hit| (hit.item.0 as u32, hit.distance)).collect();
            found.sort_unstable();
            prop_assert_eq!(&found, &expected);
            if threshold < 256 {
                let [probed, scanned] = table.probed_and_scanned(&queries, threshold);
                prop_assert_eq!(&probed, &expected);
                prop_assert_eq!(&scanned, &expected);
            }
        }
    }
}
