//! Search for reframed copies — crops, and crops combined with resizing, re-encoding, mirroring
//! or brightening — of the items in the store, by their keypoints
//! ([`hashsieve_core::keypoints`]), for when PDQ finds nothing within its threshold.
//!
//! Comparing a query with every stored set would cost about half a millisecond an item, so
//! candidates come first: each stored descriptor is filed in four tables under 24 of its bits
//! (one table per 64-bit word), and a query descriptor votes for every item filed under the
//! same 24 bits in any table. A descriptor of the same patch in a reframed copy differs in some
//! 10–40 of 256 bits, so it shares a word's 24 bits often enough that a copy collects dozens of
//! votes from its ~200 descriptors, while unrelated descriptors share them by chance about once
//! in 16 million comparisons. The items with the most votes are then aligned one by one, and
//! only [`Alignment::is_same_picture`] decides.
//!
//! Unlike the PDQ search this is not exhaustive: a copy whose descriptors all fail to collide
//! is not a candidate. That costs a review, never a wrong verdict.

use std::collections::HashMap;

use hashsieve_core::keypoints::{self, Alignment, Keypoints};

use crate::model::ItemId;
use crate::near::NearStatus;

/// Bits of each descriptor word a table files it under.
const KEY_BITS: u32 = 24;
/// An item needs this many votes to be aligned at all …
const MIN_VOTES: u32 = 6;
/// … and at most this many candidates, most votes first, are aligned.
const MAX_CANDIDATES: usize = 12;

/// The keypoints of the store's items, filed for candidate search.
#[derive(Debug, Default)]
pub(crate) struct ReframedTable {
    entries: Vec<(ItemId, Keypoints, NearStatus)>,
    positions: HashMap<ItemId, usize>,
    /// Per descriptor word: key → entry positions (an entry once per distinct key).
    tables: [HashMap<u32, Vec<u32>>; 4],
}

/// An item aligned with the query as the same picture.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReframedHit {
    pub(crate) item: ItemId,
    pub(crate) status: NearStatus,
    pub(crate) alignment: Alignment,
}

impl ReframedTable {
    /// Files an item's keypoints (the stored form, without mirrored descriptors).
    pub(crate) fn insert(&mut self, item: ItemId, keypoints: Keypoints, status: NearStatus) {
        if keypoints.is_empty() || self.positions.contains_key(&item) {
            return;
        }
        let position = self.entries.len() as u32;
        for (word, table) in self.tables.iter_mut().enumerate() {
            let mut keys: Vec<u32> = keypoints.descriptors().iter().map(|d| key(d[word])).collect();
            keys.sort_unstable();
            keys.dedup();
            for key in keys {
                table.entry(key).or_default().push(position);
            }
        }
        self.positions.insert(item, self.entries.len());
        self.entries.push((item, keypoints, status));
    }

    /// Changes an item's status; false if it is not filed.
    pub(crate) fn set_status(&mut self, item: ItemId, status: NearStatus) -> bool {
        match self.positions.get(&item) {
            Some(&position) => {
                self.entries[position].2 = status;
                true
            }
            None => false,
        }
    }

    /// The candidates that `query` aligns with as the same picture and whose status `wanted`
    /// accepts, most agreeing points first.
    pub(crate) fn same_picture(
        &self,
        query: &Keypoints,
        wanted: impl Fn(NearStatus) -> bool,
    ) -> Vec<ReframedHit> {
        let mut votes: HashMap<u32, u32> = HashMap::new();
        let descriptor_sets = [query.descriptors(), query.mirrored_descriptors()];
        for descriptors in descriptor_sets {
            for descriptor in descriptors {
                for (word, table) in self.tables.iter().enumerate() {
                    for &position in table.get(&key(descriptor[word])).into_iter().flatten() {
                        *votes.entry(position).or_default() += 1;
                    }
                }
            }
        }
        let mut candidates: Vec<(u32, u32)> = votes
            .into_iter()
            .filter(|&(position, count)| count >= MIN_VOTES && wanted(self.entries[position as usize].2))
            .collect();
        // Most votes first; ties to the older item.
        candidates.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        candidates.truncate(MAX_CANDIDATES);
        let mut hits: Vec<ReframedHit> = candidates
            .into_iter()
            .filter_map(|(position, _)| {
                let (item, stored, status) = &self.entries[position as usize];
                let alignment = keypoints::align(query, stored)?;
                alignment.is_same_picture().then_some(ReframedHit { item: *item, status: *status, alignment })
            })
            .collect();
        hits.sort_by(|a, b| b.alignment.agreeing.cmp(&a.alignment.agreeing).then(a.item.cmp(&b.item)));
        hits
    }
}

fn key(word: u64) -> u32 {
    (word & ((1 << KEY_BITS) - 1)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::GroupId;

    fn picture(seed: u64, width: usize, height: usize) -> Vec<u8> {
        let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let shapes: Vec<[usize; 5]> = (0..60)
            .map(|_| {
                let (x, y) = (next() as usize % width, next() as usize % height);
                [
                    x,
                    y,
                    6 + next() as usize % (width / 6),
                    6 + next() as usize % (height / 6),
                    next() as usize % 256,
                ]
            })
            .collect();
        (0..width * height)
            .flat_map(|p| {
                let (x, y) = (p % width, p / width);
                let mut value = ((x / 9 + y / 7) % 5 * 20) as u8;
                for &[sx, sy, w, h, shade] in &shapes {
                    if (sx..sx + w).contains(&x) && (sy..sy + h).contains(&y) {
                        value = shade as u8;
                    }
                }
                [value, value / 2, 255 - value]
            })
            .collect()
    }

    fn cropped(rgb: &[u8], width: usize, [left, top, right, bottom]: [usize; 4]) -> (Vec<u8>, usize, usize) {
        let height = rgb.len() / 3 / width;
        let out = (top..height - bottom)
            .flat_map(|y| rgb[(y * width + left) * 3..(y * width + width - right) * 3].to_vec())
            .collect();
        (out, width - left - right, height - top - bottom)
    }

    /// Every item filed is found from its crops by the table exactly when a brute-force
    /// alignment against every stored set finds it, and distinct pictures are never found.
    #[test]
    fn candidate_search_finds_what_aligning_everything_finds() {
        let (width, height) = (360, 270);
        let pictures: Vec<Vec<u8>> = (1..=12).map(|seed| picture(seed, width, height)).collect();
        let mut table = ReframedTable::default();
        let stored: Vec<Keypoints> =
            pictures.iter().map(|rgb| Keypoints::from_rgb(rgb, width, height).without_mirrored()).collect();
        for (number, keypoints) in stored.iter().enumerate() {
            let status = if number % 2 == 0 { NearStatus::Assessed } else { NearStatus::Pending(GroupId(1)) };
            table.insert(ItemId(number as u64), keypoints.clone(), status);
        }
        let mut found = 0;
        for (number, rgb) in pictures.iter().enumerate() {
            for edges in [[4, 3, 14, 8], [15, 10, 2, 2], [0, 0, 0, 0]] {
                let (crop, w, h) = cropped(rgb, width, edges);
                let query = Keypoints::from_rgb(&crop, w, h);
                let brute: Vec<ItemId> = stored
                    .iter()
                    .enumerate()
                    .filter(|(_, s)| keypoints::align(&query, s).is_some_and(|a| a.is_same_picture()))
                    .map(|(n, _)| ItemId(n as u64))
                    .collect();
                assert_eq!(brute, vec![ItemId(number as u64)], "picture {number} cut {edges:?}");
                let hits: Vec<ItemId> =
                    table.same_picture(&query, |_| true).iter().map(|hit| hit.item).collect();
                assert_eq!(hits, brute);
                let assessed_only = table.same_picture(&query, |status| status == NearStatus::Assessed);
                assert_eq!(assessed_only.len(), usize::from(number % 2 == 0));
                found += hits.len();
            }
        }
        assert_eq!(found, 36);
        // A status change is seen by the next search.
        assert!(table.set_status(ItemId(1), NearStatus::Assessed));
        assert!(!table.set_status(ItemId(99), NearStatus::Assessed));
        let query = Keypoints::from_rgb(&pictures[1], width, height);
        assert_eq!(table.same_picture(&query, |status| status == NearStatus::Assessed)[0].item, ItemId(1));
    }
}
