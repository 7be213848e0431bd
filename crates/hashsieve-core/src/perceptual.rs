//! The 64-bit img_hash family — pHash, dHash, aHash — for grouping near-duplicates.
//!
//! These are weaker than PDQ (64 bits, no quality score) but cheap, widely used by hotline
//! and forensic tools, and good at what review grouping needs: telling that two reports are
//! the same picture resized or re-encoded. They come from the `image_hasher` crate (the
//! maintained fork of `img_hash`; see docs/ARCHITECTURE.md for why), configured after the
//! conventions of Python's `imagehash`, which most lists of such hashes were made with:
//!
//! - **aHash**: 8×8 greyscale thumbnail, bit set where a pixel is above the mean.
//! - **dHash**: 9×8 thumbnail, bit set where a pixel is brighter than its left neighbour.
//! - **pHash**: DCT of a greyscale thumbnail, bit set where a low-frequency coefficient is
//!   above the median.
//!
//! Bits are packed most significant first, row by row, so the 16 hex digits read like
//! `imagehash`'s. Values are close to, not identical with, `imagehash`'s: the thumbnail
//! resampling differs (Lanczos3 here, Pillow's antialias filter there), and `imagehash`'s
//! pHash takes its DCT over a 32×32 thumbnail where `image_hasher` uses 16×16.

use std::fmt;
use std::str::FromStr;

use image_hasher::{BitOrder, FilterType, HashAlg, HasherConfig};

use crate::decode::RgbImage;

/// A 64-bit perceptual hash kind of the img_hash family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ImageHashKind {
    /// DCT-based perceptual hash.
    PHash,
    /// Difference (gradient) hash.
    DHash,
    /// Average (mean) hash.
    AHash,
}

impl ImageHashKind {
    /// The lower-case name used in lists and output: `phash`, `dhash`, `ahash`.
    pub fn name(self) -> &'static str {
        match self {
            ImageHashKind::PHash => "phash",
            ImageHashKind::DHash => "dhash",
            ImageHashKind::AHash => "ahash",
        }
    }
}

/// A name that is not an img_hash kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown image hash {0:?} (expected phash, dhash or ahash)")]
pub struct UnknownImageHash(pub String);

impl FromStr for ImageHashKind {
    type Err = UnknownImageHash;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        [ImageHashKind::PHash, ImageHashKind::DHash, ImageHashKind::AHash]
            .into_iter()
            .find(|kind| kind.name().eq_ignore_ascii_case(name.trim()))
            .ok_or_else(|| UnknownImageHash(name.to_string()))
    }
}

/// A 64-bit perceptual hash; the first hex digit holds the first four bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ImageHash64(pub u64);

impl ImageHash64 {
    /// The number of bits in which two hashes differ, 0..=64.
    pub fn hamming_distance(self, other: ImageHash64) -> u32 {
        (self.0 ^ other.0).count_ones()
    }
}

/// 16 lower-case hex digits.
impl fmt::Display for ImageHash64 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// Text that is not 16 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a 64-bit image hash has exactly 16 hex digits")]
pub struct ParseImageHashError;

impl FromStr for ImageHash64 {
    type Err = ParseImageHashError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.len() != 16 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ParseImageHashError);
        }
        u64::from_str_radix(text, 16).map(ImageHash64).map_err(|_| ParseImageHashError)
    }
}

/// Computes one 64-bit hash of a decoded image.
pub fn image_hash(image: &RgbImage, kind: ImageHashKind) -> ImageHash64 {
    let config =
        HasherConfig::new().hash_size(8, 8).resize_filter(FilterType::Lanczos3).bit_order(BitOrder::MsbFirst);
    let config = match kind {
        ImageHashKind::AHash => config.hash_alg(HashAlg::Mean),
        ImageHashKind::DHash => config.hash_alg(HashAlg::Gradient),
        ImageHashKind::PHash => config.hash_alg(HashAlg::Median).preproc_dct(),
    };
    // The hasher needs an owned buffer; the copy is small next to decoding.
    let buffer = image::RgbImage::from_raw(image.width, image.height, image.pixels.clone())
        .expect("an RgbImage's pixel buffer matches its dimensions");
    let hash = config.to_hasher().hash_image(&buffer);
    let bytes: [u8; 8] = hash.as_bytes().try_into().expect("an 8×8 hash is 8 bytes");
    ImageHash64(u64::from_be_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(name: &str) -> RgbImage {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/vectors/pdq/images")
            .join(name);
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        crate::decode::decode_rgb(&bytes, &Default::default()).unwrap()
    }

    const KINDS: [ImageHashKind; 3] = [ImageHashKind::PHash, ImageHashKind::DHash, ImageHashKind::AHash];

    #[test]
    fn resized_copies_are_near_and_unrelated_photos_are_far() {
        let original = load("bridge-mods-aaa-orig.png");
        let resized = load("bridge-mods-shrink-a-little.png");
        let other = load("pen-and-coaster.png");
        for kind in KINDS {
            let (a, b, c) =
                (image_hash(&original, kind), image_hash(&resized, kind), image_hash(&other, kind));
            assert_eq!(a, image_hash(&original, kind), "{kind:?} is deterministic");
            assert!(a.hamming_distance(b) <= 6, "{kind:?}: resized copy {} bits away", a.hamming_distance(b));
            assert!(
                a.hamming_distance(c) >= 16,
                "{kind:?}: unrelated photo {} bits away",
                a.hamming_distance(c)
            );
        }
    }

    #[test]
    fn hex_round_trips() {
        let hash = ImageHash64(0x0123_4567_89ab_cdef);
        assert_eq!(hash.to_string(), "0123456789abcdef");
        assert_eq!("0123456789ABCDEF".parse::<ImageHash64>(), Ok(hash));
        assert_eq!("+123456789abcdef".parse::<ImageHash64>(), Err(ParseImageHashError));
        assert_eq!("123".parse::<ImageHash64>(), Err(ParseImageHashError));
        assert_eq!("dhash".parse::<ImageHashKind>(), Ok(ImageHashKind::DHash));
    }
}
