//! Keypoints: local features that find near-duplicates PDQ loses — cropped copies.
//!
//! PDQ describes the whole frame at low frequency, so trimming a few percent off the edges
//! moves every part of the picture relative to the frame and changes the hash as much as a
//! different picture would (a 3% crop of each edge: median 62 of 256 bits, against a match
//! threshold of 31). Keypoints describe small patches around corners instead, and a patch does
//! not care where the frame ends. Two images are the same picture when many of their keypoints
//! agree on **one** alignment (a scale and a shift per axis, mirrored or not) that makes the
//! two frames cover mostly the same area, with the agreeing points spread over it.
//!
//! The pipeline ([`Keypoints::from_rgb`]):
//! 1. Luma, scaled (aspect kept) to about [`WORKING_PIXELS`], so that resized copies are
//!    described at the same scale; a crop of up to ~20% changes it by less than the patch
//!    comparison tolerates.
//! 2. Harris corners on that image (Sobel gradients, a 5×5 structure tensor), the strongest
//!    local maxima kept, at most [`MAX_KEYPOINTS`], no more than an eighth of them in any cell
//!    of a 4×4 grid so that one textured corner cannot take them all.
//! 3. For each corner a 256-bit BRIEF-style descriptor: 256 comparisons of 5×5 box means at
//!    fixed, seeded offsets within a 31×31 patch. A second descriptor with the offsets mirrored
//!    is what the mirror image of the picture would have at the mirrored point, so a query
//!    carries both and a mirrored copy matches too (rotations by 90° are PDQ's job).
//!
//! [`align`] compares a query with one stored set: each query descriptor's nearest stored
//! descriptor (ratio test), then every alignment proposed by two of the best matches is scored
//! by how many matches it explains. [`Alignment::is_same_picture`] then applies the safety
//! rules: enough agreeing points, both frames mostly covered by the other (a picture inside a
//! collage, or a collage holding a picture, is **not** the same picture — a verdict must not be
//! carried from one to the other), and the agreeing points spread over the shared area (a shared
//! watermark or logo is not the picture).
//!
//! What a set holds is positions and comparison bits, 68 bytes a point: no pixels, and no way
//! back to them. Its byte form ([`Keypoints::to_bytes`], [`Keypoints::from_bytes`]) is laid out
//! in `format.rs`, beside the code that writes and parses it; parsing checks every length before
//! it allocates.
//!
//! The code is split by job: `extract.rs` goes from pixels to a set (steps 1–3 above),
//! `format.rs` holds the byte form, and `align.rs` matches descriptors, scores alignments and
//! applies the same-picture rules. This file holds the types they share.
//!
//! ```
//! use hashsieve_core::keypoints::{self, Keypoints};
//!
//! // A picture with structure, and a copy with 4% cut off the left and 2% off the top.
//! let (width, height) = (400usize, 300usize);
//! let value = |x: usize, y: usize| ((x * 7 ^ y * 13) % 256) as u8 / 2 + ((x / 40 + y / 30) % 2 * 120) as u8;
//! let rgb: Vec<u8> = (0..width * height).flat_map(|p| [value(p % width, p / width); 3]).collect();
//! let (left, top) = (16, 6);
//! let crop: Vec<u8> = (top..height)
//!     .flat_map(|y| (left..width).flat_map(move |x| [value(x, y); 3]))
//!     .collect();
//!
//! let stored = Keypoints::from_rgb(&rgb, width, height).without_mirrored();
//! let query = Keypoints::from_rgb(&crop, width - left, height - top);
//! let alignment = keypoints::align(&query, &stored).expect("aligned");
//! assert!(alignment.is_same_picture());
//! assert!(!alignment.mirrored);
//! ```

mod align;
mod extract;
mod format;

use std::fmt;

pub use self::align::{
    Alignment, MAX_DESCRIPTOR_DISTANCE, MIN_AGREEING, MIN_COVERAGE, MIN_SPREAD_CELLS, UNEXPLAINED_MIN_POINTS,
    UNEXPLAINED_SHARE, align,
};
pub use self::format::ParseKeypointsError;

/// The working image is scaled to about this many pixels (320 × 320), aspect kept.
pub const WORKING_PIXELS: f64 = 320.0 * 320.0;
/// At most this many keypoints an image.
pub const MAX_KEYPOINTS: usize = 256;

/// Positions are stored as fractions of the working image's width and height, in 1/65535.
const POSITION_SCALE: f32 = 65535.0;

/// A descriptor: 256 comparison bits.
pub type Descriptor = [u64; 4];

/// The Hamming distance of two descriptors: bits that differ, of 256.
#[inline]
pub fn descriptor_distance(a: &Descriptor, b: &Descriptor) -> u32 {
    a.iter().zip(b).map(|(x, y)| (x ^ y).count_ones()).sum()
}

/// The keypoints of one image: positions, descriptors, and (for a query) the descriptors the
/// image's mirror image would have. Its byte form is [`Keypoints::to_bytes`], laid out in
/// `format.rs`.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Keypoints {
    points: Vec<[u16; 2]>,
    descriptors: Vec<Descriptor>,
    /// Empty, or one per point.
    mirrored: Vec<Descriptor>,
}

impl fmt::Debug for Keypoints {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Keypoints({} points, mirrored: {})", self.len(), self.has_mirrored())
    }
}

impl Keypoints {
    /// The number of keypoints.
    pub fn len(&self) -> usize {
        self.points.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// Whether the mirrored descriptors are present (a query needs them; a stored set does not).
    pub fn has_mirrored(&self) -> bool {
        !self.mirrored.is_empty()
    }

    /// The set without its mirrored descriptors: what a store keeps (half the size). A query
    /// against it still finds mirrored copies, through the query's own mirrored descriptors.
    pub fn without_mirrored(mut self) -> Keypoints {
        self.mirrored = Vec::new();
        self
    }

    /// The descriptors, one per point.
    pub fn descriptors(&self) -> &[Descriptor] {
        &self.descriptors
    }

    /// The mirrored descriptors, one per point, or none.
    pub fn mirrored_descriptors(&self) -> &[Descriptor] {
        &self.mirrored
    }
}
