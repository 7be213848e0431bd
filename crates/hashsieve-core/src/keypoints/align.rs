//! Matching and alignment: which of a query's descriptors have a clear nearest stored one
//! (Lowe's ratio test), the alignment (scale and shift per axis, mirrored or not) that two of
//! the best matches propose and most matches agree with, and the rules by which an
//! [`Alignment`] is the same picture and not a part of one or a shared watermark.

use super::{Descriptor, Keypoints, POSITION_SCALE, descriptor_distance};

/// Descriptor pairs farther apart than this are not matches (unrelated patches: about 128).
pub const MAX_DESCRIPTOR_DISTANCE: u32 = 50;
/// A query point is explained by a stored point where the alignment puts it with a descriptor
/// at most this far (unrelated patches: about 128).
const EXPLAINED_DESCRIPTOR_DISTANCE: u32 = 64;
/// A match must be this much closer than the second-best stored descriptor (Lowe's ratio).
const RATIO: f32 = 0.85;
/// How far (as a fraction of the frame) a point may land from its match and still agree.
const TOLERANCE: f32 = 0.012;
/// Alignments are proposed from pairs among this many best matches.
const PROPOSERS: usize = 64;
/// Two proposing points must be this far apart on each axis to fix a scale.
const MIN_SPAN: f32 = 0.05;
/// Scales (stored frame per query frame) outside this range are not considered: a copy less
/// than half or more than twice the other's extent is a different framing, not a trim.
const SCALES: std::ops::RangeInclusive<f32> = 0.5..=2.0;

/// [`Alignment::is_same_picture`]: at least this many agreeing points …
pub const MIN_AGREEING: usize = 24;
/// … each frame covered at least this much by the other …
pub const MIN_COVERAGE: f32 = 0.7;
/// … agreeing points in at least this many cells of a 4×4 grid over the shared area …
pub const MIN_SPREAD_CELLS: usize = 6;
/// … and no cell where this many query points land …
pub const UNEXPLAINED_MIN_POINTS: usize = 8;
/// … and fewer than this share of them are explained.
pub const UNEXPLAINED_SHARE: f32 = 0.1;

/// The best alignment of a query with a stored set: stored = scale · query + shift, per axis,
/// in fractions of each frame, after mirroring the query if `mirrored`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Alignment {
    /// Matches that agree with it.
    pub agreeing: usize,
    /// Whether the query is the mirror image.
    pub mirrored: bool,
    /// Horizontal and vertical scale.
    pub scale: [f32; 2],
    /// Horizontal and vertical shift.
    pub shift: [f32; 2],
    /// Share of the query's frame that falls inside the stored frame, 0..=1.
    pub query_coverage: f32,
    /// Share of the stored frame that the query's frame covers, 0..=1.
    pub stored_coverage: f32,
    /// Cells of a 4×4 grid over the shared area that hold an agreeing point.
    pub spread_cells: usize,
    /// Cells of that grid where at least [`UNEXPLAINED_MIN_POINTS`] query points land and
    /// fewer than [`UNEXPLAINED_SHARE`] of them are explained (a stored point with a close
    /// descriptor where the alignment puts them): content the other image does not have there,
    /// as in a collage that puts a picture beside another in the same frame.
    pub unexplained_cells: usize,
}

impl Alignment {
    /// Whether the alignment shows the same picture: enough agreeing points, each frame mostly
    /// covered by the other, the agreement spread over the shared area, and no part of the
    /// shared area where the query has content that does not agree.
    pub fn is_same_picture(&self) -> bool {
        self.agreeing >= MIN_AGREEING
            && self.query_coverage >= MIN_COVERAGE
            && self.stored_coverage >= MIN_COVERAGE
            && self.spread_cells >= MIN_SPREAD_CELLS
            && self.unexplained_cells == 0
    }
}

/// The best alignment of `query` with `stored` (plain, and mirrored if the query has mirrored
/// descriptors), or `None` if fewer than two matches propose one.
pub fn align(query: &Keypoints, stored: &Keypoints) -> Option<Alignment> {
    let plain = align_one(query, &query.descriptors, stored, false);
    let mirrored = query.has_mirrored().then(|| align_one(query, &query.mirrored, stored, true)).flatten();
    match (plain, mirrored) {
        (Some(a), Some(b)) => Some(if b.agreeing > a.agreeing { b } else { a }),
        (a, b) => a.or(b),
    }
}

/// For each query descriptor whose nearest stored descriptor is a match (within
/// [`MAX_DESCRIPTOR_DISTANCE`], and clearly nearer than the second nearest): its index, the
/// stored descriptor's index and the distance.
///
/// Every pair is measured, 65,536 distances for full sets: most of an alignment's time. With
/// the CPU's POPCNT instruction (not in the x86-64 baseline the crate is compiled for) that
/// time is 0.28 ms instead of 0.49 (criterion, `align/different-picture`), so it is used when
/// the CPU has it.
fn nearest(query: &[Descriptor], stored: &[Descriptor]) -> Vec<(usize, usize, u32)> {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("popcnt") {
        // SAFETY: `nearest_popcnt` only requires POPCNT, which the CPU was just checked to have.
        return unsafe { nearest_popcnt(query, stored) };
    }
    nearest_portable(query, stored)
}

/// [`nearest_portable`] compiled with POPCNT.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "popcnt")]
fn nearest_popcnt(query: &[Descriptor], stored: &[Descriptor]) -> Vec<(usize, usize, u32)> {
    nearest_portable(query, stored)
}

#[inline(always)]
fn nearest_portable(query: &[Descriptor], stored: &[Descriptor]) -> Vec<(usize, usize, u32)> {
    let mut found = Vec::new();
    for (index, descriptor) in query.iter().enumerate() {
        let (mut best, mut second, mut best_at) = (u32::MAX, u32::MAX, 0);
        for (at, candidate) in stored.iter().enumerate() {
            let distance = descriptor_distance(descriptor, candidate);
            if distance < best {
                (second, best, best_at) = (best, distance, at);
            } else if distance < second {
                second = distance;
            }
        }
        if best <= MAX_DESCRIPTOR_DISTANCE && (best as f32) < RATIO * second as f32 {
            found.push((index, best_at, best));
        }
    }
    found
}

/// A match: query point, stored point (fractions), descriptor distance.
type Pair = ([f32; 2], [f32; 2], u32);

/// A query point as a fraction of its frame, mirrored back if `mirrored`.
fn query_position(point: [u16; 2], mirrored: bool) -> [f32; 2] {
    let mut position = position(point);
    if mirrored {
        position[0] = 1.0 - position[0];
    }
    position
}

fn position(point: [u16; 2]) -> [f32; 2] {
    [f32::from(point[0]) / POSITION_SCALE, f32::from(point[1]) / POSITION_SCALE]
}

fn align_one(
    query: &Keypoints,
    descriptors: &[Descriptor],
    stored: &Keypoints,
    mirrored: bool,
) -> Option<Alignment> {
    let mut pairs: Vec<Pair> = nearest(descriptors, &stored.descriptors)
        .into_iter()
        .map(|(index, at, distance)| {
            (query_position(query.points[index], mirrored), position(stored.points[at]), distance)
        })
        .collect();
    // The closest descriptors propose; ties by position, so the answer does not depend on order.
    pairs.sort_by(|a, b| a.2.cmp(&b.2).then(a.0[0].total_cmp(&b.0[0])).then(a.0[1].total_cmp(&b.0[1])));
    let proposers = pairs.len().min(PROPOSERS);
    let mut best: Option<([f32; 2], [f32; 2], usize)> = None;
    for first in 0..proposers {
        for second in first + 1..proposers {
            let ((qa, sa, _), (qb, sb, _)) = (pairs[first], pairs[second]);
            let span = [qb[0] - qa[0], qb[1] - qa[1]];
            if span[0].abs() < MIN_SPAN || span[1].abs() < MIN_SPAN {
                continue;
            }
            let scale = [(sb[0] - sa[0]) / span[0], (sb[1] - sa[1]) / span[1]];
            if !SCALES.contains(&scale[0]) || !SCALES.contains(&scale[1]) {
                continue;
            }
            let shift = [sa[0] - scale[0] * qa[0], sa[1] - scale[1] * qa[1]];
            // Scored on the proposers only (a quarter of the work, measured); the winner is
            // counted on all matches below.
            let agreeing = pairs[..proposers].iter().filter(|pair| agrees(pair, scale, shift)).count();
            if best.is_none_or(|(_, _, most)| agreeing > most) {
                best = Some((scale, shift, agreeing));
            }
        }
    }
    let (scale, shift, _) = best?;
    let agreeing = pairs.iter().filter(|pair| agrees(pair, scale, shift)).count();
    // The query frame [0,1]² lands on [shift, shift + scale] in the stored frame.
    let low = [shift[0].max(0.0), shift[1].max(0.0)];
    let extent = |axis: usize| ((shift[axis] + scale[axis]).min(1.0) - low[axis]).max(0.0);
    let shared = extent(0) * extent(1);
    // Over a 4×4 grid on the shared area: where the agreeing matches are, and where query
    // points land that none explains.
    let cell_of = |at: [f32; 2]| -> Option<usize> {
        let share = |axis: usize| (at[axis] - low[axis]) / extent(axis).max(f32::EPSILON);
        let (x, y) = (share(0), share(1));
        ((0.0..1.0).contains(&x) && (0.0..1.0).contains(&y))
            .then(|| (y * 4.0) as usize * 4 + (x * 4.0) as usize)
    };
    let mut agreeing_in = [0usize; 16];
    for pair in pairs.iter().filter(|pair| agrees(pair, scale, shift)) {
        if let Some(cell) = cell_of(pair.1) {
            agreeing_in[cell] += 1;
        }
    }
    // A query point is explained when a stored point near where the alignment puts it has a
    // close descriptor, whether or not it was the point's best match overall (repeated
    // texture fails the ratio test but is still the same content).
    let mut points_in = [0usize; 16];
    let mut explained_in = [0usize; 16];
    let query_descriptors = if mirrored { &query.mirrored } else { &query.descriptors };
    for (&point, descriptor) in query.points.iter().zip(query_descriptors) {
        let at = query_position(point, mirrored);
        let mapped = [scale[0] * at[0] + shift[0], scale[1] * at[1] + shift[1]];
        let Some(cell) = cell_of(mapped) else { continue };
        points_in[cell] += 1;
        let explained =
            stored.points.iter().zip(&stored.descriptors).any(|(&candidate, stored_descriptor)| {
                let candidate = position(candidate);
                (0..2).all(|axis| (candidate[axis] - mapped[axis]).abs() <= 2.0 * TOLERANCE)
                    && descriptor_distance(descriptor, stored_descriptor) <= EXPLAINED_DESCRIPTOR_DISTANCE
            });
        if explained {
            explained_in[cell] += 1;
        }
    }
    let unexplained_cells = (0..16)
        .filter(|&cell| {
            points_in[cell] >= UNEXPLAINED_MIN_POINTS
                && (explained_in[cell] as f32) < UNEXPLAINED_SHARE * points_in[cell] as f32
        })
        .count();
    Some(Alignment {
        agreeing,
        mirrored,
        scale,
        shift,
        query_coverage: shared / (scale[0] * scale[1]),
        stored_coverage: shared,
        spread_cells: agreeing_in.iter().filter(|&&count| count > 0).count(),
        unexplained_cells,
    })
}

fn agrees(pair: &Pair, scale: [f32; 2], shift: [f32; 2]) -> bool {
    let (query, stored, _) = pair;
    (0..2).all(|axis| (scale[axis] * query[axis] + shift[axis] - stored[axis]).abs() <= TOLERANCE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hashsieve_testkit::{crop, mirror, picture};

    #[test]
    fn crops_and_mirror_images_are_the_same_picture_and_others_are_not() {
        let (width, height) = (480, 360);
        let pictures: Vec<Vec<u8>> = (1..=6).map(|seed| picture(seed, width, height)).collect();
        let stored: Vec<Keypoints> =
            pictures.iter().map(|rgb| Keypoints::from_rgb(rgb, width, height).without_mirrored()).collect();
        for (number, rgb) in pictures.iter().enumerate() {
            assert!(stored[number].len() > 100, "a textured picture has many keypoints");
            for edges in [[5, 4, 19, 14], [24, 18, 0, 0], [10, 3, 10, 3], [0, 0, 0, 0]] {
                let (cropped, w, h) = crop(rgb, width, edges);
                for (query, mirrored) in [
                    (Keypoints::from_rgb(&cropped, w, h), false),
                    (Keypoints::from_rgb(&mirror(&cropped, w), w, h), true),
                ] {
                    for (other, stored) in stored.iter().enumerate() {
                        let alignment = align(&query, stored);
                        let same = alignment.is_some_and(|a| a.is_same_picture());
                        assert_eq!(
                            same,
                            other == number,
                            "picture {number} cut {edges:?} against {other}: {alignment:?}"
                        );
                        if other == number {
                            let alignment = alignment.unwrap();
                            assert_eq!(alignment.mirrored, mirrored);
                            // The alignment is the crop: the query's left edge lands at left/width.
                            // (A mirrored query is mirrored back before it is aligned.)
                            assert!(
                                (alignment.shift[0] - edges[0] as f32 / width as f32).abs() < 0.01,
                                "{alignment:?}"
                            );
                            assert!((alignment.shift[1] - edges[1] as f32 / height as f32).abs() < 0.01);
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn a_picture_inside_a_collage_is_not_the_same_picture() {
        let (width, height) = (480, 360);
        let (a, b) = (picture(11, width, height), picture(12, width, height));
        // The collage: the left 60% of `a` beside the right 40% of `b`.
        let split = width * 6 / 10;
        let collage: Vec<u8> = (0..height)
            .flat_map(|y| {
                let row = |rgb: &[u8], from: usize, to: usize| {
                    rgb[(y * width + from) * 3..(y * width + to) * 3].to_vec()
                };
                [row(&a, 0, split), row(&b, split, width)].concat()
            })
            .collect();
        let stored_a = Keypoints::from_rgb(&a, width, height).without_mirrored();
        let query = Keypoints::from_rgb(&collage, width, height);
        let alignment = align(&query, &stored_a).expect("part of it aligns");
        assert!(alignment.agreeing >= MIN_AGREEING, "the shared part does agree: {alignment:?}");
        assert!(!alignment.is_same_picture(), "{alignment:?}");
        // Nor the other way round: the collage stored, `a` queried.
        let stored_collage = Keypoints::from_rgb(&collage, width, height).without_mirrored();
        let alignment = align(&Keypoints::from_rgb(&a, width, height), &stored_collage).unwrap();
        assert!(!alignment.is_same_picture(), "{alignment:?}");
    }

    #[test]
    fn a_shared_watermark_is_not_the_same_picture() {
        let (width, height) = (480, 360);
        let stamp = picture(99, width, height);
        let marked = |seed: u64| {
            let mut rgb = picture(seed, width, height);
            // The bottom-right eighth of every picture is the same stamp.
            for y in height * 3 / 4..height {
                for x in width / 2..width {
                    let at = (y * width + x) * 3;
                    rgb[at..at + 3].copy_from_slice(&stamp[at..at + 3]);
                }
            }
            rgb
        };
        let stored = Keypoints::from_rgb(&marked(21), width, height).without_mirrored();
        let query = Keypoints::from_rgb(&marked(22), width, height);
        let alignment = align(&query, &stored).expect("the stamps align");
        assert!(alignment.agreeing >= 10, "the stamps agree: {alignment:?}");
        assert!(!alignment.is_same_picture(), "{alignment:?}");
    }

    /// The matching the CPU's POPCNT speeds up finds what the portable code finds, for the same
    /// picture (many matches) and for different ones (few).
    #[test]
    fn nearest_matches_are_the_same_with_and_without_popcnt() {
        let (width, height) = (320, 240);
        let sets: Vec<Keypoints> =
            (11..=13).map(|seed| Keypoints::from_rgb(&picture(seed, width, height), width, height)).collect();
        let crop = picture(11, width, height)
            .chunks_exact(width * 3)
            .skip(9)
            .flat_map(|row| row[3 * 7..].to_vec())
            .collect::<Vec<u8>>();
        let query = Keypoints::from_rgb(&crop, width - 7, height - 9);
        let mut compared = 0;
        for stored in &sets {
            for descriptors in [query.descriptors(), query.mirrored_descriptors()] {
                let portable = nearest_portable(descriptors, stored.descriptors());
                assert_eq!(nearest(descriptors, stored.descriptors()), portable);
                compared += portable.len();
            }
        }
        assert!(compared > MIN_AGREEING, "the crop matches its picture: {compared} matches");
    }
}
