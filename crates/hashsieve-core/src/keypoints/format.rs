//! The byte form of a [`Keypoints`] set: what a store keeps, and what it reads back from bytes
//! it must not trust.
//!
//! `HSKP`, version 1, a flags byte (bit 0: mirrored descriptors present), the number of points
//! as u16 little-endian (at most [`MAX_KEYPOINTS`]); then per point x and y (u16 LE, fractions
//! of the width and height in 1/65535), the descriptor (four u64 LE) and, if flagged, the
//! mirrored descriptor (four u64 LE). Every integer is little-endian; nothing is padded.
//!
//! ```text
//! offset  size   field
//! 0       4      magic: the bytes "HSKP"
//! 4       1      version: 1
//! 5       1      flags: bit 0 set when every point carries a mirrored descriptor; others 0
//! 6       2      n, the number of points: u16 LE, at most MAX_KEYPOINTS (256)
//! 8       n × 36 the points, in the set's order: 36 bytes each without mirrored
//!      or n × 68 descriptors, 68 with them
//!
//! one point, from its first byte:
//! 0       2      x: u16 LE, the fraction of the working image's width in 1/65535
//!                (0 the first column, 65535 the last)
//! 2       2      y: u16 LE, the same of its height
//! 4       32     the descriptor: four u64 LE, word 0 first; bit k of word w is comparison
//!                64·w + k of the pattern, set when its first box is darker than its second
//! 36      32     only when flagged: the mirrored descriptor, laid out the same
//! ```
//!
//! [`Keypoints::from_bytes`] checks, in this order and before it allocates anything: at least
//! the 8 header bytes, with the magic and version ([`ParseKeypointsError::Header`]); no unknown
//! flag ([`ParseKeypointsError::Flags`]); `n` at most [`MAX_KEYPOINTS`]
//! ([`ParseKeypointsError::TooMany`]); and a length of exactly `8 + n × 36` (`8 + n × 68` when
//! flagged) ([`ParseKeypointsError::Length`]). After that every byte string is a set (any
//! position and any descriptor bits are valid), so reading the points cannot fail, and what it
//! allocates is bounded by the bytes it was given.
//!
//! There is no checksum of its own: a set is a value inside a store that checksums what it
//! holds (triage's redb file).

use super::{Descriptor, Keypoints, MAX_KEYPOINTS};

/// Bytes that are not a keypoint set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseKeypointsError {
    /// Not the magic bytes and version this crate writes.
    #[error("not a keypoint set (bad magic or version)")]
    Header,
    /// More points than [`MAX_KEYPOINTS`].
    #[error("a keypoint set has at most {MAX_KEYPOINTS} points, not {0}")]
    TooMany(usize),
    /// The length does not match the header.
    #[error("a keypoint set of {points} points is {expected} bytes, not {found}")]
    Length {
        /// Points the header announces.
        points: usize,
        /// Bytes they take.
        expected: usize,
        /// Bytes given.
        found: usize,
    },
    /// A flag this version does not know.
    #[error("unknown flags {0:#04x} in a keypoint set")]
    Flags(u8),
}

const MAGIC: &[u8; 4] = b"HSKP";
const VERSION: u8 = 1;
const FLAG_MIRRORED: u8 = 1;
const HEADER: usize = 4 + 1 + 1 + 2;

impl Keypoints {
    /// The byte form: see [`Keypoints::from_bytes`].
    pub fn to_bytes(&self) -> Vec<u8> {
        let per_point = point_bytes(self.has_mirrored());
        let mut out = Vec::with_capacity(HEADER + self.len() * per_point);
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        out.push(if self.has_mirrored() { FLAG_MIRRORED } else { 0 });
        out.extend_from_slice(&(self.len() as u16).to_le_bytes());
        for (index, point) in self.points.iter().enumerate() {
            out.extend_from_slice(&point[0].to_le_bytes());
            out.extend_from_slice(&point[1].to_le_bytes());
            for word in self.descriptors[index] {
                out.extend_from_slice(&word.to_le_bytes());
            }
            if let Some(mirrored) = self.mirrored.get(index) {
                for word in mirrored {
                    out.extend_from_slice(&word.to_le_bytes());
                }
            }
        }
        out
    }

    /// Parses the byte form (laid out in `keypoints/format.rs`), checking the header, the
    /// flags, the number of points and the length before it allocates.
    pub fn from_bytes(bytes: &[u8]) -> Result<Keypoints, ParseKeypointsError> {
        if bytes.len() < HEADER || &bytes[..4] != MAGIC || bytes[4] != VERSION {
            return Err(ParseKeypointsError::Header);
        }
        let flags = bytes[5];
        if flags & !FLAG_MIRRORED != 0 {
            return Err(ParseKeypointsError::Flags(flags));
        }
        let count = usize::from(u16::from_le_bytes([bytes[6], bytes[7]]));
        if count > MAX_KEYPOINTS {
            return Err(ParseKeypointsError::TooMany(count));
        }
        let mirrored = flags & FLAG_MIRRORED != 0;
        let expected = HEADER + count * point_bytes(mirrored);
        if bytes.len() != expected {
            return Err(ParseKeypointsError::Length { points: count, expected, found: bytes.len() });
        }
        let mut set = Keypoints::default();
        for point in bytes[HEADER..].chunks_exact(point_bytes(mirrored)) {
            let u16_at = |at: usize| u16::from_le_bytes([point[at], point[at + 1]]);
            let descriptor_at = |at: usize| -> Descriptor {
                std::array::from_fn(|word| {
                    let start = at + word * 8;
                    u64::from_le_bytes(point[start..start + 8].try_into().expect("8 bytes"))
                })
            };
            set.points.push([u16_at(0), u16_at(2)]);
            set.descriptors.push(descriptor_at(4));
            if mirrored {
                set.mirrored.push(descriptor_at(36));
            }
        }
        Ok(set)
    }
}

fn point_bytes(mirrored: bool) -> usize {
    4 + 32 + if mirrored { 32 } else { 0 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hashsieve_testkit::picture;

    #[test]
    fn bytes_round_trip_and_bad_bytes_are_refused() {
        let (width, height) = (200, 150);
        let set = Keypoints::from_rgb(&picture(3, width, height), width, height);
        assert!(set.has_mirrored() && !set.is_empty());
        assert_eq!(Keypoints::from_bytes(&set.to_bytes()).unwrap(), set);
        let stored = set.clone().without_mirrored();
        let bytes = stored.to_bytes();
        assert_eq!(bytes.len(), HEADER + stored.len() * 36);
        assert_eq!(Keypoints::from_bytes(&bytes).unwrap(), stored);
        assert_eq!(Keypoints::from_bytes(&[]), Err(ParseKeypointsError::Header));
        assert_eq!(Keypoints::from_bytes(b"HSKP\x02\x00\x00\x00"), Err(ParseKeypointsError::Header));
        assert_eq!(Keypoints::from_bytes(b"HSKP\x01\x04\x00\x00"), Err(ParseKeypointsError::Flags(4)));
        assert_eq!(Keypoints::from_bytes(b"HSKP\x01\x00\x01\x01"), Err(ParseKeypointsError::TooMany(257)));
        assert_eq!(
            Keypoints::from_bytes(&bytes[..bytes.len() - 1]),
            Err(ParseKeypointsError::Length {
                points: stored.len(),
                expected: bytes.len(),
                found: bytes.len() - 1
            })
        );
        assert_eq!(Keypoints::from_bytes(b"HSKP\x01\x00\x00\x00").unwrap(), Keypoints::default());
    }
}
