//! PDQ, Meta's 256-bit perceptual image hash, bit-exact with the reference implementation.
//!
//! Hash lists shared between platforms and hotlines carry PDQ hashes made with Meta's reference
//! code, and a match is a Hamming distance of at most 31 bits, so a hash that differs from the
//! reference by rounding noise is a hash that misses matches. This is our own implementation
//! of the published algorithm; it performs the reference's f32 operations in the reference's
//! order for every value that reaches the output (no fused multiply-add, no reordered sums),
//! and so reproduces its bits even on images whose bits are decided by rounding. It is fast
//! because of *where* it does that work — see [`downsample`](self) — not because it cuts corners.
//!
//! The pipeline: luma `Y = 0.299R + 0.587G + 0.114B`; two passes of a Jarosz box filter with
//! windows of `ceil(dimension / 128)`; a 64×64 sample; the reference's quality score on that
//! grid; a 16×16 DCT (frequencies 1..=16 of a 64-point DCT-II); one bit per coefficient, set
//! when it is above the median. The eight dihedral variants (rotations by 90°, mirror images)
//! come from sign changes and a transpose of the same 16×16 coefficients, as in the reference:
//! a rotated copy of an image hashes close to the matching variant of the original.
//!
//! Input is full resolution: no 512-pixel pre-resize (that is a property of one reference
//! command-line tool, not of the algorithm or the Java/Python implementations). Images smaller
//! than 5 pixels on a side get the all-zero hash and quality 0, as in the reference.
//!
//! ```
//! use hashsieve_core::pdq::{self, Dihedral, PdqHash};
//!
//! // A 32×24 image with a diagonal gradient.
//! let (width, height) = (32, 24);
//! let rgb: Vec<u8> = (0..width * height)
//!     .flat_map(|p| { let v = ((p % width) * 4 + (p / width) * 5) as u8; [v, v / 2, 255 - v] })
//!     .collect();
//! let out = pdq::hash_rgb(&rgb, width, height);
//! let all = pdq::dihedral_rgb(&rgb, width, height);
//! assert_eq!(all.hashes[Dihedral::Original as usize], out.hash);
//! assert_eq!(out.hash.to_hex().parse::<PdqHash>().unwrap(), out.hash);
//! assert!(out.hash.hamming_distance(&all.hashes[Dihedral::Rotate180 as usize]) > 0);
//! ```

mod dct;
mod downsample;

use std::fmt;
use std::str::FromStr;

/// Images smaller than this on either side are not hashed (all-zero hash, quality 0).
pub const MIN_DIMENSION: usize = 5;

/// A 256-bit PDQ hash.
///
/// Byte 0 holds the first two hex digits of the reference's 64-digit hex form, which reads as a
/// big-endian 256-bit number whose bit `k` is the `k`-th DCT coefficient's bit.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PdqHash(pub [u8; 32]);

impl PdqHash {
    /// Parses the reference's format: exactly 64 hex digits, either case.
    pub fn from_hex(text: &str) -> Result<PdqHash, ParseHashError> {
        if text.len() != 64 {
            return Err(ParseHashError::Length(text.len()));
        }
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(text, &mut bytes).map_err(|_| ParseHashError::NotHex)?;
        Ok(PdqHash(bytes))
    }

    /// The reference's format: 64 lower-case hex digits.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The number of bits in which two hashes differ, 0..=256.
    pub fn hamming_distance(&self, other: &PdqHash) -> u32 {
        self.0.iter().zip(&other.0).map(|(a, b)| (a ^ b).count_ones()).sum()
    }
}

impl fmt::Display for PdqHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for PdqHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PdqHash({})", self.to_hex())
    }
}

impl FromStr for PdqHash {
    type Err = ParseHashError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        PdqHash::from_hex(text)
    }
}

/// Text that is not a PDQ hash.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseHashError {
    /// Not 64 characters long.
    #[error("a PDQ hash has 64 hex digits, not {0} characters")]
    Length(usize),
    /// A character that is not a hex digit.
    #[error("a PDQ hash has only hex digits")]
    NotHex,
}

/// A PDQ hash with the reference's integer quality score.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PdqOutput {
    /// The hash.
    pub hash: PdqHash,
    /// 0..=100: the sum of neighbour gradients on the 64×64 grid, scaled. Below 50 the image is
    /// flat or featureless and its hash matches unrelated images too easily.
    pub quality: u8,
}

/// The eight dihedral variants and the quality score.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PdqDihedral {
    /// Indexed by [`Dihedral`], in the reference's order.
    pub hashes: [PdqHash; 8],
    /// As in [`PdqOutput::quality`].
    pub quality: u8,
}

/// The rotations and mirror images of a picture, in the reference's order. Each names the
/// transform that, applied to the picture, gives an image whose hash is closest to that
/// variant (closest, not equal: the blur and sampling are not symmetric).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dihedral {
    /// The picture as it is.
    Original,
    /// Rotated 90° counter-clockwise.
    Rotate90,
    /// Rotated 180°.
    Rotate180,
    /// Rotated 90° clockwise.
    Rotate270,
    /// Flipped top to bottom.
    FlipX,
    /// Mirrored left to right.
    FlipY,
    /// Transposed across the main diagonal.
    FlipPlus1,
    /// Transposed across the anti-diagonal.
    FlipMinus1,
}

impl Dihedral {
    /// All eight, in the reference's order.
    pub const ALL: [Dihedral; 8] = [
        Dihedral::Original,
        Dihedral::Rotate90,
        Dihedral::Rotate180,
        Dihedral::Rotate270,
        Dihedral::FlipX,
        Dihedral::FlipY,
        Dihedral::FlipPlus1,
        Dihedral::FlipMinus1,
    ];

    /// The reference's column names: `original`, `rot90`, `rot180`, `rot270`, `flipx`, `flipy`,
    /// `flipplus1`, `flipminus1`.
    pub fn name(self) -> &'static str {
        match self {
            Dihedral::Original => "original",
            Dihedral::Rotate90 => "rot90",
            Dihedral::Rotate180 => "rot180",
            Dihedral::Rotate270 => "rot270",
            Dihedral::FlipX => "flipx",
            Dihedral::FlipY => "flipy",
            Dihedral::FlipPlus1 => "flipplus1",
            Dihedral::FlipMinus1 => "flipminus1",
        }
    }
}

/// A PDQ hasher that keeps its working buffers between images, so that hashing many images
/// allocates only when an image is wider or taller than any before it.
#[derive(Debug)]
pub struct PdqHasher {
    scratch: downsample::Scratch,
    simd: bool,
}

impl Default for PdqHasher {
    fn default() -> PdqHasher {
        PdqHasher::new()
    }
}

impl PdqHasher {
    /// A hasher with empty buffers, using the fastest code the CPU supports.
    pub fn new() -> PdqHasher {
        PdqHasher { scratch: downsample::Scratch::default(), simd: true }
    }

    /// A hasher that never uses CPU-specific instructions. It gives the same bits as
    /// [`PdqHasher::new`], more slowly; it exists so that tests can check exactly that.
    pub fn portable() -> PdqHasher {
        PdqHasher { scratch: downsample::Scratch::default(), simd: false }
    }

    /// The hash and quality of a row-major RGB8 image.
    ///
    /// # Panics
    /// If `rgb.len() != width * height * 3`.
    pub fn hash_rgb(&mut self, rgb: &[u8], width: usize, height: usize) -> PdqOutput {
        check_len(rgb.len(), width, height, 3);
        self.hash(downsample::Source::Rgb(rgb), width, height)
    }

    /// The eight dihedral hashes and the quality of a row-major RGB8 image.
    ///
    /// # Panics
    /// If `rgb.len() != width * height * 3`.
    pub fn dihedral_rgb(&mut self, rgb: &[u8], width: usize, height: usize) -> PdqDihedral {
        check_len(rgb.len(), width, height, 3);
        self.dihedral(downsample::Source::Rgb(rgb), width, height)
    }

    /// The hash and quality of a row-major image given as luma, one f32 per pixel, as the
    /// reference's `pdqHash256FromFloatLuma` takes it. With luma computed as
    /// `(0.299·R + 0.587·G) + 0.114·B` in f32 this equals [`PdqHasher::hash_rgb`]; greyscale
    /// pixels can be passed as their value.
    ///
    /// # Panics
    /// If `luma.len() != width * height`.
    pub fn hash_luma(&mut self, luma: &[f32], width: usize, height: usize) -> PdqOutput {
        check_len(luma.len(), width, height, 1);
        self.hash(downsample::Source::Luma(luma), width, height)
    }

    /// The eight dihedral hashes and the quality of an image given as luma (see
    /// [`PdqHasher::hash_luma`]).
    ///
    /// # Panics
    /// If `luma.len() != width * height`.
    pub fn dihedral_luma(&mut self, luma: &[f32], width: usize, height: usize) -> PdqDihedral {
        check_len(luma.len(), width, height, 1);
        self.dihedral(downsample::Source::Luma(luma), width, height)
    }

    fn hash(&mut self, source: downsample::Source<'_>, width: usize, height: usize) -> PdqOutput {
        if width < MIN_DIMENSION || height < MIN_DIMENSION {
            return PdqOutput { hash: PdqHash([0; 32]), quality: 0 };
        }
        // The reference's single-hash path takes a 64×64 image as its own grid, unfiltered.
        let grid = if width == downsample::GRID && height == downsample::GRID {
            downsample::luma_grid_unfiltered(source)
        } else {
            downsample::luma_grid(source, width, height, &mut self.scratch, self.simd)
        };
        PdqOutput { hash: PdqHash(dct::to_bits(&dct::dct_16x16(&grid))), quality: dct::quality(&grid) }
    }

    fn dihedral(&mut self, source: downsample::Source<'_>, width: usize, height: usize) -> PdqDihedral {
        if width < MIN_DIMENSION || height < MIN_DIMENSION {
            return PdqDihedral { hashes: [PdqHash([0; 32]); 8], quality: 0 };
        }
        let grid = downsample::luma_grid(source, width, height, &mut self.scratch, self.simd);
        let variants = dct::dihedral(&dct::dct_16x16(&grid));
        PdqDihedral { hashes: variants.map(|c| PdqHash(dct::to_bits(&c))), quality: dct::quality(&grid) }
    }
}

/// Panics unless `len == width * height * channels` (without overflow).
fn check_len(len: usize, width: usize, height: usize, channels: usize) {
    let expected = width.checked_mul(height).and_then(|n| n.checked_mul(channels));
    assert_eq!(Some(len), expected, "buffer length does not match {width}x{height}x{channels}");
}

/// The hash and quality of a row-major RGB8 image (see [`PdqHasher::hash_rgb`]). To hash many
/// images, keep a [`PdqHasher`] instead, which reuses its buffers.
///
/// # Panics
/// If `rgb.len() != width * height * 3`.
pub fn hash_rgb(rgb: &[u8], width: usize, height: usize) -> PdqOutput {
    PdqHasher::new().hash_rgb(rgb, width, height)
}

/// The eight dihedral hashes and the quality of a row-major RGB8 image (see
/// [`PdqHasher::dihedral_rgb`]).
///
/// # Panics
/// If `rgb.len() != width * height * 3`.
pub fn dihedral_rgb(rgb: &[u8], width: usize, height: usize) -> PdqDihedral {
    PdqHasher::new().dihedral_rgb(rgb, width, height)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_rejects_bad_text() {
        let text = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22";
        let hash = PdqHash::from_hex(text).unwrap();
        assert_eq!(hash.0[0], 0xf8);
        assert_eq!(hash.to_hex(), text);
        assert_eq!(PdqHash::from_hex(&text.to_uppercase()).unwrap(), hash);
        assert_eq!(PdqHash::from_hex(&text[1..]), Err(ParseHashError::Length(63)));
        assert_eq!(PdqHash::from_hex(&format!("{}g", &text[1..])), Err(ParseHashError::NotHex));
        assert_eq!("".parse::<PdqHash>(), Err(ParseHashError::Length(0)));
    }

    #[test]
    fn hamming_distance_counts_differing_bits() {
        let mut rng = hashsieve_testkit::Rng::new(1);
        let mut random = || PdqHash(rng.bytes());
        for _ in 0..100 {
            let (a, b) = (random(), random());
            let naive = (0..256)
                .filter(|&bit| (a.0[bit / 8] >> (bit % 8)) & 1 != (b.0[bit / 8] >> (bit % 8)) & 1)
                .count();
            assert_eq!(a.hamming_distance(&b) as usize, naive);
            assert_eq!(a.hamming_distance(&a), 0);
        }
    }

    #[test]
    fn tiny_images_hash_to_zero_with_zero_quality() {
        for (w, h) in [(1, 1), (3, 7), (4, 100), (100, 4)] {
            let rgb = vec![200u8; w * h * 3];
            assert_eq!(hash_rgb(&rgb, w, h), PdqOutput { hash: PdqHash([0; 32]), quality: 0 });
            assert_eq!(dihedral_rgb(&rgb, w, h).hashes, [PdqHash([0; 32]); 8]);
        }
    }

    #[test]
    #[should_panic(expected = "does not match")]
    fn a_short_buffer_is_refused() {
        hash_rgb(&[0; 10], 5, 5);
    }
}
