//! Search for reframed copies — crops, and crops combined with resizing, re-encoding, mirroring
//! or brightening — of the items in the store, by their keypoints
//! ([`hashsieve_core::keypoints`]), for when PDQ finds nothing within its threshold.
//!
//! Comparing a query with every stored set would cost about half a millisecond an item, so
//! candidates come first: each stored descriptor is filed in four tables under 24 of its bits
//! (one table per 64-bit word). A descriptor of the same patch in a reframed copy differs in
//! some 10–40 of 256 bits, so it often shares one word's 24 bits with the original. Each query
//! descriptor looks itself up in the four tables and measures the stored descriptors it finds
//! there; of those within [`keypoints::MAX_DESCRIPTOR_DISTANCE`], the items whose nearest is
//! within [`NEAR_BEST`] bits of the nearest of all get one vote each — unless there are more
//! than [`MAX_ITEMS_A_VOTE`] of them. Descriptor bits are far from uniform (a straight edge or a
//! smooth gradient is described alike in every picture), and such a generic descriptor is near
//! something in most items; a descriptor of the picture's own detail is near a few items at
//! most: the copies of that picture. The items with at least [`MIN_VOTES`] votes, most first,
//! are then aligned one by one, and only [`Alignment::is_same_picture`] decides. Keys filed
//! more than [`MAX_BUCKET`] times are not looked up at all (the bits of a flat patch).
//!
//! Replayed on the hotline simulation's stores (about 1,000 items, 515 queries, 126 of them
//! with a same-picture item), this aligned 2.1 candidates a query and found every query's
//! same-picture item; counting bare key collisions as votes had aligned the full dozen for
//! nearly every query (unrelated items collected a median of 316 votes) and missed 2 of the 126.
//!
//! Unlike the PDQ search this is not exhaustive: a copy whose descriptors all fail to collide
//! is not a candidate. That costs a review, never a wrong verdict.

use std::collections::HashMap;
use std::hash::Hash;

use hashsieve_core::keypoints::{self, Alignment, Keypoints};

/// Bits of each descriptor word a table files it under.
const KEY_BITS: u32 = 24;
/// Keys filed more often than this are not looked up. In a store of a few thousand items a key
/// is filed about 0.05 times on average; the largest bucket in the simulation held 495.
const MAX_BUCKET: usize = 256;
/// An item counts as near a query descriptor when its nearest descriptor is at most this many
/// bits farther than the nearest of all …
const NEAR_BEST: u32 = 8;
/// … and a query descriptor near more items than this votes for none (it is generic).
const MAX_ITEMS_A_VOTE: usize = 8;
/// An item needs this many votes to be aligned at all (same-picture items had at least 14 in
/// the simulation, unrelated ones mostly none) …
const MIN_VOTES: u32 = 12;
/// … and at most this many candidates, most votes first, are aligned.
const MAX_CANDIDATES: usize = 12;

/// Keypoint sets filed for candidate search, each under an id (`Id`: the store's items, or its
/// listed copies) with a status the search can filter on (`Status`).
#[derive(Debug)]
pub(crate) struct CropTable<Id, Status> {
    entries: Vec<(Id, Keypoints, Status)>,
    positions: HashMap<Id, usize>,
    /// Per descriptor word: key → the descriptors filed under it, as an entry's position
    /// shifted left by 8 bits and the point's index (below [`keypoints::MAX_KEYPOINTS`] = 256).
    tables: [HashMap<u32, Vec<u32>>; 4],
}

/// A set aligned with the query as the same picture.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CropHit<Id, Status> {
    pub(crate) id: Id,
    pub(crate) status: Status,
    pub(crate) alignment: Alignment,
}

impl<Id, Status> Default for CropTable<Id, Status> {
    fn default() -> Self {
        CropTable { entries: Vec::new(), positions: HashMap::new(), tables: Default::default() }
    }
}

impl<Id: Copy + Eq + Hash + Ord, Status: Copy> CropTable<Id, Status> {
    /// Files a set of keypoints (the stored form, without mirrored descriptors). Sets past
    /// the 2²⁴th are not filed (the position would not fit beside the point index): a store
    /// that large is far beyond a hotline's, and such items are still found by digest and PDQ.
    pub(crate) fn insert(&mut self, id: Id, keypoints: Keypoints, status: Status) {
        let position = self.entries.len();
        if keypoints.is_empty() || self.positions.contains_key(&id) || position >= 1 << 24 {
            return;
        }
        for (word, table) in self.tables.iter_mut().enumerate() {
            for (point, descriptor) in keypoints.descriptors().iter().enumerate() {
                table.entry(key(descriptor[word])).or_default().push(filed(position, point));
            }
        }
        self.positions.insert(id, position);
        self.entries.push((id, keypoints, status));
    }

    /// Changes a set's status; false if it is not filed.
    pub(crate) fn set_status(&mut self, id: Id, status: Status) -> bool {
        match self.positions.get(&id) {
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
        wanted: impl Fn(Status) -> bool,
    ) -> Vec<CropHit<Id, Status>> {
        let mut votes: HashMap<u32, u32> = HashMap::new();
        // Per query descriptor: (entry position, distance) of the stored descriptors near it.
        let mut near: Vec<(u32, u32)> = Vec::new();
        for descriptor in query.descriptors().iter().chain(query.mirrored_descriptors()) {
            near.clear();
            for (word, table) in self.tables.iter().enumerate() {
                let Some(bucket) = table.get(&key(descriptor[word])) else { continue };
                if bucket.len() > MAX_BUCKET {
                    continue;
                }
                for &filed in bucket {
                    let (position, point) = (filed >> 8, (filed & 0xff) as usize);
                    let stored = &self.entries[position as usize].1.descriptors()[point];
                    let distance = keypoints::descriptor_distance(descriptor, stored);
                    if distance <= keypoints::MAX_DESCRIPTOR_DISTANCE {
                        near.push((position, distance));
                    }
                }
            }
            // Each item once, at its nearest.
            near.sort_unstable();
            near.dedup_by_key(|&mut (position, _)| position);
            let Some(best) = near.iter().map(|&(_, distance)| distance).min() else { continue };
            let voted = || near.iter().filter(move |&&(_, distance)| distance <= best + NEAR_BEST);
            if voted().count() <= MAX_ITEMS_A_VOTE {
                for &(position, _) in voted() {
                    *votes.entry(position).or_default() += 1;
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
        let mut hits: Vec<CropHit<Id, Status>> = candidates
            .into_iter()
            .filter_map(|(position, _)| {
                let (id, stored, status) = &self.entries[position as usize];
                let alignment = keypoints::align(query, stored)?;
                alignment.is_same_picture().then_some(CropHit { id: *id, status: *status, alignment })
            })
            .collect();
        hits.sort_by(|a, b| b.alignment.agreeing.cmp(&a.alignment.agreeing).then(a.id.cmp(&b.id)));
        hits
    }
}

/// A filed descriptor: its entry's position and its index among the entry's points.
fn filed(position: usize, point: usize) -> u32 {
    (position as u32) << 8 | point as u32
}

fn key(word: u64) -> u32 {
    (word & ((1 << KEY_BITS) - 1)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{GroupId, ItemId};
    use crate::near::NearStatus;
    use hashsieve_testkit::{crop, picture};

    /// Every item filed is found from its crops by the table exactly when a brute-force
    /// alignment against every stored set finds it, and distinct pictures are never found.
    #[test]
    fn candidate_search_finds_what_aligning_everything_finds() {
        let (width, height) = (360, 270);
        let pictures: Vec<Vec<u8>> = (1..=12).map(|seed| picture(seed, width, height)).collect();
        let mut table: CropTable<ItemId, NearStatus> = CropTable::default();
        let stored: Vec<Keypoints> =
            pictures.iter().map(|rgb| Keypoints::from_rgb(rgb, width, height).without_mirrored()).collect();
        for (number, keypoints) in stored.iter().enumerate() {
            let status = if number % 2 == 0 { NearStatus::Assessed } else { NearStatus::Pending(GroupId(1)) };
            table.insert(ItemId(number as u64), keypoints.clone(), status);
        }
        let mut found = 0;
        for (number, rgb) in pictures.iter().enumerate() {
            for edges in [[4, 3, 14, 8], [15, 10, 2, 2], [0, 0, 0, 0]] {
                let (crop, w, h) = crop(rgb, width, edges);
                let query = Keypoints::from_rgb(&crop, w, h);
                let brute: Vec<ItemId> = stored
                    .iter()
                    .enumerate()
                    .filter(|(_, s)| keypoints::align(&query, s).is_some_and(|a| a.is_same_picture()))
                    .map(|(n, _)| ItemId(n as u64))
                    .collect();
                assert_eq!(brute, vec![ItemId(number as u64)], "picture {number} cut {edges:?}");
                let hits: Vec<ItemId> =
                    table.same_picture(&query, |_| true).iter().map(|hit| hit.id).collect();
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
        assert_eq!(table.same_picture(&query, |status| status == NearStatus::Assessed)[0].id, ItemId(1));
    }

    /// Several stored copies of one picture share its distinctive descriptors: a query's
    /// descriptor near all of them still votes (up to eight items), so every copy is found.
    #[test]
    fn every_stored_copy_of_a_picture_is_found() {
        let (width, height) = (360, 270);
        let original = picture(40, width, height);
        let mut table: CropTable<ItemId, NearStatus> = CropTable::default();
        let mut stored = Vec::new();
        // Brightened a little: descriptors compare, so the copies are described (nearly) alike.
        for number in 0..6u8 {
            let copy: Vec<u8> = original.iter().map(|&value| value.saturating_add(2 * number)).collect();
            let keypoints = Keypoints::from_rgb(&copy, width, height).without_mirrored();
            table.insert(ItemId(u64::from(number)), keypoints.clone(), NearStatus::Assessed);
            stored.push(keypoints);
        }
        for seed in 41..=50 {
            let other = Keypoints::from_rgb(&picture(seed, width, height), width, height);
            table.insert(ItemId(seed), other.without_mirrored(), NearStatus::Assessed);
        }
        let (crop, w, h) = crop(&original, width, [5, 6, 4, 1]);
        let query = Keypoints::from_rgb(&crop, w, h);
        let brute: Vec<u64> = (0..stored.len() as u64)
            .filter(|&n| keypoints::align(&query, &stored[n as usize]).is_some_and(|a| a.is_same_picture()))
            .collect();
        assert_eq!(brute.len(), 6);
        let mut hits: Vec<u64> = table.same_picture(&query, |_| true).iter().map(|hit| hit.id.0).collect();
        hits.sort_unstable();
        assert_eq!(hits, brute);
    }
}
