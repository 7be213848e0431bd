//! The memory-mapped index of hash lists.
//!
//! Built so far: [`format`], the file container every index is stored in — header, version,
//! section table, per-section checksums, bounds-checked open over any bytes
//! (`IndexFile<B: AsRef<[u8]>>`, an mmap in production and a `Vec<u8>` in tests), and atomic
//! writing. The sections that hold digests, perceptual hashes and their search tables come next.

pub mod format;
