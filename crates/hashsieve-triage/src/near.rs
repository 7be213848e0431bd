//! Complete Hamming-radius search over the PDQ hashes of the items in the store: core's
//! growable multi-index-hashing table ([`Mih`]), with each item's status as its payload.
//!
//! Items are never removed from the store, so the table only grows, one slot per item in the
//! order they are filed; an item's status (pending in a group, assessed) changes in place.

use std::collections::HashMap;

use hashsieve_core::index::mih::Mih;
use hashsieve_core::pdq::PdqHash;

use crate::model::{GroupId, ItemId};

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

#[derive(Debug)]
pub(crate) struct NearTable {
    table: Mih<(ItemId, NearStatus)>,
    slots: HashMap<ItemId, u32>,
}

impl NearTable {
    pub(crate) fn new() -> NearTable {
        NearTable { table: Mih::new(256), slots: HashMap::new() }
    }

    /// Adds an item, or updates its status if it is already in.
    pub(crate) fn insert(&mut self, item: ItemId, hash: &PdqHash, status: NearStatus) {
        if self.set_status(item, status) {
            return;
        }
        let slot = u32::try_from(self.slots.len()).expect("fewer than 2^32 items with a PDQ hash");
        self.table.insert(slot, &hash.0, (item, status));
        self.slots.insert(item, slot);
    }

    /// Sets the status of an item in the table; false if it is not in.
    pub(crate) fn set_status(&mut self, item: ItemId, status: NearStatus) -> bool {
        let Some(&slot) = self.slots.get(&item) else { return false };
        if let Some((_, held)) = self.table.get_mut(slot) {
            *held = status;
        }
        true
    }

    /// Every item within `threshold` of any of `queries`, each once at its smallest distance,
    /// sorted by distance, then item.
    pub(crate) fn within(&self, queries: &[PdqHash], threshold: u32) -> Vec<NearHit> {
        let mut best: HashMap<u32, NearHit> = HashMap::new();
        for query in queries {
            self.table.search(&query.0, threshold, |slot, &(item, status), distance| {
                let hit = best.entry(slot).or_insert(NearHit { item, distance, status });
                hit.distance = hit.distance.min(distance);
            });
        }
        let mut hits: Vec<NearHit> = best.into_values().collect();
        hits.sort_unstable_by_key(|hit| (hit.distance, hit.item));
        hits
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flipped(hash: &PdqHash, bits: &[usize]) -> PdqHash {
        let mut out = *hash;
        for &bit in bits {
            out.0[bit / 8 % 32] ^= 1 << (bit % 8);
        }
        out
    }

    /// The search itself is core's, property-tested there; here, what triage adds: several
    /// queries (a picture's rotations), each item once at its smallest distance, with its
    /// status as it is now.
    #[test]
    fn each_item_once_at_its_smallest_distance_from_any_query_with_its_status() {
        let base = PdqHash([0x3c; 32]);
        let mut table = NearTable::new();
        table.insert(ItemId(1), &flipped(&base, &[0, 1, 2]), NearStatus::Pending(GroupId(4)));
        table.insert(ItemId(2), &flipped(&base, &(0..40).collect::<Vec<_>>()), NearStatus::Assessed);
        table.insert(ItemId(3), &flipped(&base, &[9]), NearStatus::Inherited);
        let queries = [flipped(&base, &[0]), base, flipped(&base, &[9, 10])];
        let hits = table.within(&queries, 31);
        let seen: Vec<(u64, u32, NearStatus)> =
            hits.iter().map(|h| (h.item.0, h.distance, h.status)).collect();
        assert_eq!(seen, [(3, 1, NearStatus::Inherited), (1, 2, NearStatus::Pending(GroupId(4)))]);

        table.insert(ItemId(1), &base, NearStatus::Assessed);
        assert!(!table.set_status(ItemId(9), NearStatus::Assessed), "not in the table");
        let hits = table.within(&[base], 31);
        assert_eq!(
            hits[1],
            NearHit { item: ItemId(1), distance: 3, status: NearStatus::Assessed },
            "{hits:?}"
        );
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
}
