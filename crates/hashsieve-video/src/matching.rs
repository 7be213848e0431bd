//! Comparing two videos' features as the reference does (SPEC §4): a bag of frame hashes, with
//! no use of frame numbers or timestamps.
//!
//! [`MatchRule::ThreatExchange`] (the default) is `match_VPDQ_hash_brute` of PyPI
//! `threatexchange` 1.2.17, which HMA uses: each side deduplicated by exact hash (first
//! occurrence kept) *before* the quality filter, then features of quality ≥ the threshold; a
//! feature counts when some feature on the other side is within the distance, inclusive;
//! percentages are `count * 100 / len`. The decision is `VPDQSignal.compare_hash`'s:
//! `query_pct >= 80 && compared_pct >= 0`. [`MatchRule::VpdqCpp`] is the C++
//! `matchTwoHashBrute` of the vpdq sources: no deduplication and a strict `<` distance.

use std::collections::HashSet;

use hashsieve_core::pdq::PdqHash;

use crate::VpdqFeature;

/// threatexchange's `VPDQ_DISTANCE_THRESHOLD`.
pub const DISTANCE_THRESHOLD: u32 = 31;
/// threatexchange's `VPDQ_QUALITY_THRESHOLD`.
pub const QUALITY_THRESHOLD: u8 = 50;
/// threatexchange's `VPDQ_QUERY_MATCH_THRESHOLD_PERCENT`.
pub const QUERY_MATCH_THRESHOLD_PERCENT: f64 = 80.0;
/// threatexchange's `VPDQ_INDEX_MATCH_THRESHOLD_PERCENT`.
pub const COMPARED_MATCH_THRESHOLD_PERCENT: f64 = 0.0;

/// Which reference's counting rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MatchRule {
    /// threatexchange / HMA: deduplicated, distance `<=` the threshold.
    #[default]
    ThreatExchange,
    /// The vpdq C++ matcher: not deduplicated, distance `<` the threshold.
    VpdqCpp,
}

/// Thresholds of a comparison; the default is HMA's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MatchOptions {
    /// Largest Hamming distance between two frames that match (strictly below it for
    /// [`MatchRule::VpdqCpp`]).
    pub distance: u32,
    /// Frames of lower quality are left out on both sides.
    pub quality: u8,
    /// `is_match` needs at least this share of the query's frames matched.
    pub query_match_percent: f64,
    /// … and at least this share of the compared video's.
    pub compared_match_percent: f64,
    /// The counting rule.
    pub rule: MatchRule,
}

impl Default for MatchOptions {
    fn default() -> MatchOptions {
        MatchOptions {
            distance: DISTANCE_THRESHOLD,
            quality: QUALITY_THRESHOLD,
            query_match_percent: QUERY_MATCH_THRESHOLD_PERCENT,
            compared_match_percent: COMPARED_MATCH_THRESHOLD_PERCENT,
            rule: MatchRule::ThreatExchange,
        }
    }
}

/// The result of comparing a query video with another.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VideoMatch {
    /// Share of the query's frames (as counted by the rule) within the distance of some frame
    /// of the compared video, 0..=100. 0 when the query has no frame of enough quality (the
    /// reference divides by zero there: an exception in Python, NaN in C++).
    pub query_pct: f64,
    /// The same, the other way round.
    pub compared_pct: f64,
    /// Both shares at or above their thresholds, and neither side empty.
    pub is_match: bool,
    /// Frames of the query that were compared (after deduplication and the quality filter).
    pub query_frames: usize,
    /// Frames of the compared video that were compared.
    pub compared_frames: usize,
}

/// The frames a rule compares: deduplicated first (threatexchange), then quality-filtered.
fn frames_used(features: &[VpdqFeature], options: &MatchOptions) -> Vec<PdqHash> {
    let mut seen = HashSet::new();
    features
        .iter()
        .filter(|f| options.rule == MatchRule::VpdqCpp || seen.insert(f.pdq))
        .filter(|f| f.quality >= options.quality)
        .map(|f| f.pdq)
        .collect()
}

/// Compares a query video's features with another's (see the module doc).
pub fn match_videos(query: &[VpdqFeature], compared: &[VpdqFeature], options: &MatchOptions) -> VideoMatch {
    let q = frames_used(query, options);
    let c = frames_used(compared, options);
    let near = |a: &PdqHash, b: &PdqHash| {
        let distance = a.hamming_distance(b);
        match options.rule {
            MatchRule::ThreatExchange => distance <= options.distance,
            MatchRule::VpdqCpp => distance < options.distance,
        }
    };
    let matched =
        |from: &[PdqHash], to: &[PdqHash]| from.iter().filter(|a| to.iter().any(|b| near(a, b))).count();
    let percent = |count: usize, len: usize| if len == 0 { 0.0 } else { count as f64 * 100.0 / len as f64 };
    let query_pct = percent(matched(&q, &c), q.len());
    let compared_pct = percent(matched(&c, &q), c.len());
    VideoMatch {
        query_pct,
        compared_pct,
        is_match: !q.is_empty()
            && !c.is_empty()
            && query_pct >= options.query_match_percent
            && compared_pct >= options.compared_match_percent,
        query_frames: q.len(),
        compared_frames: c.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feature(frame_number: u64, bytes: [u8; 32], quality: u8) -> VpdqFeature {
        VpdqFeature { frame_number, timestamp: frame_number as f64, pdq: PdqHash(bytes), quality }
    }

    #[test]
    fn duplicates_count_once_for_threatexchange_and_every_time_for_the_cpp_rule() {
        let a = [0u8; 32];
        let mut b = [0u8; 32];
        b[..4].fill(0xff); // 32 bits from a
        let query = [feature(0, a, 100), feature(1, a, 100), feature(2, b, 100)];
        let compared = [feature(0, a, 100)];
        let te = match_videos(&query, &compared, &MatchOptions::default());
        assert_eq!((te.query_pct, te.compared_pct, te.query_frames), (50.0, 100.0, 2));
        assert!(!te.is_match);
        let cpp = MatchOptions { rule: MatchRule::VpdqCpp, ..MatchOptions::default() };
        let c = match_videos(&query, &compared, &cpp);
        assert_eq!((c.query_pct, c.query_frames), (200.0 / 3.0, 3));
    }

    #[test]
    fn the_distance_is_inclusive_for_threatexchange_and_strict_for_cpp() {
        let a = [0u8; 32];
        let mut b = [0u8; 32];
        b[..3].fill(0xff);
        b[3] = 0x7f; // 31 bits
        let (q, c) = ([feature(0, a, 60)], [feature(0, b, 60)]);
        assert!(match_videos(&q, &c, &MatchOptions::default()).is_match);
        let cpp = MatchOptions { rule: MatchRule::VpdqCpp, ..MatchOptions::default() };
        assert_eq!(match_videos(&q, &c, &cpp).query_pct, 0.0);
    }

    #[test]
    fn low_quality_frames_are_left_out_and_an_empty_side_never_matches() {
        let (q, c) = ([feature(0, [1; 32], 49)], [feature(0, [1; 32], 100)]);
        let m = match_videos(&q, &c, &MatchOptions::default());
        assert_eq!((m.query_pct, m.compared_pct, m.is_match, m.query_frames), (0.0, 0.0, false, 0));
    }
}
