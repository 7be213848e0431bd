//! hashsieve-core: the hashing behind hashsieve, a tool that matches content against lists of
//! hashes of known child sexual abuse material so that it can be blocked and reported, and so
//! that fewer images have to be looked at by people.
//!
//! Hash lists name content by cryptographic digest or by perceptual hash. This crate computes
//! both from one read of the bytes:
//!
//! - [`digest`]: MD5, SHA-1, SHA-256 and BLAKE3 in a single pass, spread over cores.
//! - [`decode`]: image decoding with limits, converting to RGB the way Pillow does, so hashes
//!   agree with lists made by the Python tools in the field.
//! - [`pdq`]: Meta's PDQ hash, bit-exact with the reference, with its quality score and the
//!   eight dihedral (rotated and mirrored) variants.
//! - [`keypoints`]: local features (corners with binary descriptors) that find cropped copies
//!   of a picture, which PDQ loses, and the rules that keep a collage or a shared watermark
//!   from counting as the same picture.
//! - [`perceptual`]: the 64-bit pHash, dHash and aHash of the img_hash family.
//! - [`signals`]: all of the above for one input as one [`Signals`](signals::Signals) value,
//!   and many inputs in parallel.
//! - [`clock`]: the time stamps the stores record.
//! - [`files`]: walking the files and directories a user names.
//! - [`hashes`] and [`import`]: the hash kinds lists carry, and streaming importers for them.
//! - [`index`]: hash lists built into one immutable, checksummed, memory-mapped file, with
//!   exact lookup and complete Hamming-radius search.
//! - [`delta`] and the [index directory](index::dir): live list changes (adds, removals,
//!   allow-lists) in a durable log beside the index file, and compaction that folds them in
//!   and swaps while queries run.
//! - [`matcher`]: the embedding API — check content or hashes, get every match with its
//!   provenance.
//! - [`preview`]: the wellbeing preview of an image for the people who review it — small,
//!   greyscale and blurred first, revealed a step at a time.
//!
//! No content is written anywhere by this crate: it reads bytes and returns hashes, and the
//! previews it makes are returned in memory.
//!
//! # Example
//!
//! ```
//! use hashsieve_core::signals::{PdqMode, SignalOptions, Signals};
//!
//! let bytes = std::fs::read("../../samples/images/wee.jpg")?;
//! let options = SignalOptions { pdq: PdqMode::Dihedral, ..SignalOptions::default() };
//! let signals = Signals::from_bytes(&bytes, &options);
//!
//! let pdq = signals.pdq.expect("a JPEG decodes");
//! assert_eq!(pdq.quality, 100);
//! // Rotated and mirrored copies of the picture are found through these eight hashes.
//! assert_eq!(pdq.dihedral.unwrap()[0], pdq.hash);
//! assert_eq!(signals.digests.sha256.map(hex::encode).unwrap().len(), 64);
//! # Ok::<(), std::io::Error>(())
//! ```

#![warn(missing_docs)]

pub mod clock;
pub mod decode;
pub mod delta;
pub mod digest;
pub mod files;
pub mod hashes;
pub mod import;
pub mod index;
pub mod keypoints;
pub mod matcher;
pub mod pdq;
pub mod perceptual;
pub mod preview;
pub mod signals;
