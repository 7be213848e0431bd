//! The index file's container: header, section table, checksums, and atomic writing.
//!
//! An index file is a set of sections (sorted digest tables, hash arrays, multi-index hashing
//! tables, string tables, …) behind a fixed header and a table that says where each section
//! lives. This module knows nothing about what sections mean; it guarantees that a file opened
//! through it is the file that was written:
//!
//! - the header carries a magic number and a format version, checked first;
//! - the header and section table are covered by a checksum checked on every open, and every
//!   section's offset and length are bounds-checked, so no later read can go out of the file;
//! - every section carries its own checksum, verified by [`IndexFile::verify`]. Opening does not
//!   hash every section, because opening a multi-gigabyte index must cost an mmap and a header
//!   check, not a pass over the whole file.
//!
//! Layout (all integers little-endian; `docs/INDEX-FORMAT.md` describes the same bytes):
//!
//! ```text
//! offset  size  field
//! 0       8     magic "HSIEVIDX"
//! 8       4     format version (1)
//! 12      4     section count N
//! 16      8     file length in bytes
//! 24      8     reserved, zero
//! 32      16    BLAKE3 of bytes 0..32, bytes 48..64 and the section table, first 16 bytes
//! 48      16    reserved, zero
//! 64      40·N  section table: kind u32, reserved u32, offset u64, length u64,
//!               BLAKE3 of the section's bytes (first 16 bytes)
//! …             sections, each starting at a multiple of 64 bytes
//! ```
//!
//! Sections start on 64-byte boundaries so that arrays of `u32`/`u64` inside them are aligned
//! in an mmap (whose base is page-aligned); readers must still not assume alignment for a
//! `Vec<u8>`-backed file, whose base is only byte-aligned.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

/// The first eight bytes of every index file.
pub const MAGIC: [u8; 8] = *b"HSIEVIDX";
/// The format version this code writes and reads.
pub const FORMAT_VERSION: u32 = 1;

const HEADER_LEN: usize = 64;
const ENTRY_LEN: usize = 40;
const ALIGN: usize = 64;
const CHECKSUM_LEN: usize = 16;

/// Why bytes are not a readable index file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// Shorter than a header, or than the header says.
    #[error("index file truncated: {found} bytes, {needed} needed")]
    Truncated {
        /// Bytes needed.
        needed: u64,
        /// Bytes present.
        found: u64,
    },
    /// Not an index file at all.
    #[error("not a hashsieve index file (bad magic number)")]
    BadMagic,
    /// Written by a different version of the format.
    #[error("index format version {found} is not supported (this build reads version {FORMAT_VERSION})")]
    UnsupportedVersion {
        /// The file's version.
        found: u32,
    },
    /// Header or section table do not match their checksum.
    #[error("index header or section table is corrupt (checksum mismatch)")]
    HeaderChecksum,
    /// A section's offset or length points outside the file, overlaps the table, or is unaligned.
    #[error("index section {index} (kind {kind}) lies outside the file or is misaligned")]
    OutOfBounds {
        /// Position in the section table.
        index: usize,
        /// The section's kind.
        kind: u32,
    },
    /// A section's bytes do not match its checksum.
    #[error("index section {index} (kind {kind}) is corrupt (checksum mismatch)")]
    SectionChecksum {
        /// Position in the section table.
        index: usize,
        /// The section's kind.
        kind: u32,
    },
}

/// One entry of the section table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Section {
    /// What the section holds; meaning is up to the index layer.
    pub kind: u32,
    offset: usize,
    len: usize,
    checksum: [u8; CHECKSUM_LEN],
}

impl Section {
    /// Where the section's bytes lie in the file.
    pub fn range(&self) -> std::ops::Range<usize> {
        self.offset..self.offset + self.len
    }

    /// The section's length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the section is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

fn checksum(parts: &[&[u8]]) -> [u8; CHECKSUM_LEN] {
    let mut hasher = blake3::Hasher::new();
    for part in parts {
        hasher.update(part);
    }
    let mut out = [0; CHECKSUM_LEN];
    out.copy_from_slice(&hasher.finalize().as_bytes()[..CHECKSUM_LEN]);
    out
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}

/// An opened index file over any bytes: an mmap in production, a `Vec<u8>` in tests and
/// fuzzing.
#[derive(Debug)]
pub struct IndexFile<B> {
    bytes: B,
    sections: Vec<Section>,
}

impl<B: AsRef<[u8]>> IndexFile<B> {
    /// Checks the header, the section table's checksum and every section's bounds. Cost:
    /// proportional to the number of sections, not to the file's size.
    pub fn open(bytes: B) -> Result<IndexFile<B>, FormatError> {
        let data = bytes.as_ref();
        let found = data.len() as u64;
        if data.len() < HEADER_LEN {
            return Err(FormatError::Truncated { needed: HEADER_LEN as u64, found });
        }
        if data[..8] != MAGIC {
            return Err(FormatError::BadMagic);
        }
        let version = u32_at(data, 8);
        if version != FORMAT_VERSION {
            return Err(FormatError::UnsupportedVersion { found: version });
        }
        let count = u32_at(data, 12) as usize;
        let declared_len = u64_at(data, 16);
        let table_end = count
            .checked_mul(ENTRY_LEN)
            .and_then(|n| n.checked_add(HEADER_LEN))
            .ok_or(FormatError::HeaderChecksum)?;
        if (table_end as u64) > found || declared_len > found {
            return Err(FormatError::Truncated { needed: declared_len.max(table_end as u64), found });
        }
        let table = &data[HEADER_LEN..table_end];
        if data[32..48] != checksum(&[&data[..32], &data[48..HEADER_LEN], table]) {
            return Err(FormatError::HeaderChecksum);
        }
        let sections = table
            .chunks_exact(ENTRY_LEN)
            .enumerate()
            .map(|(index, entry)| {
                let kind = u32_at(entry, 0);
                let (offset, len) = (u64_at(entry, 8), u64_at(entry, 16));
                let end = offset.checked_add(len);
                let inside = offset as usize >= table_end
                    && offset % ALIGN as u64 == 0
                    && end.is_some_and(|end| end <= declared_len);
                if !inside {
                    return Err(FormatError::OutOfBounds { index, kind });
                }
                let checksum = entry[24..40].try_into().expect("16 bytes");
                Ok(Section { kind, offset: offset as usize, len: len as usize, checksum })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(IndexFile { bytes, sections })
    }

    /// The whole file.
    pub fn bytes(&self) -> &[u8] {
        self.bytes.as_ref()
    }

    /// The section table, in file order.
    pub fn sections(&self) -> &[Section] {
        &self.sections
    }

    /// The bytes of the first section of `kind`.
    pub fn section(&self, kind: u32) -> Option<&[u8]> {
        self.sections.iter().find(|s| s.kind == kind).map(|s| self.bytes_of(s))
    }

    /// The bytes of a section from [`IndexFile::sections`].
    pub fn bytes_of(&self, section: &Section) -> &[u8] {
        // In bounds: checked against the file's length in `open`, and `bytes` is immutable.
        &self.bytes.as_ref()[section.offset..section.offset + section.len]
    }

    /// Checks every section against its checksum: a full read of the file.
    pub fn verify(&self) -> Result<(), FormatError> {
        for (index, section) in self.sections.iter().enumerate() {
            if checksum(&[self.bytes_of(section)]) != section.checksum {
                return Err(FormatError::SectionChecksum { index, kind: section.kind });
            }
        }
        Ok(())
    }
}

/// Maps an index file into memory, read-only: the one place hashsieve maps a file.
pub fn map_file(path: &Path) -> io::Result<memmap2::Mmap> {
    let file = File::open(path)?;
    // SAFETY: the map is read-only, and index files are immutable once published: the writer
    // below writes a temporary file and renames it into place, and nothing in hashsieve modifies
    // a published file. Another process truncating or rewriting one in place would break this;
    // `docs/INDEX-FORMAT.md` tells operators to replace index files, never edit them.
    unsafe { memmap2::Mmap::map(&file) }
}

/// Collects sections and writes them as one index file.
#[derive(Debug, Default)]
pub struct IndexFileBuilder {
    sections: Vec<(u32, Vec<u8>)>,
}

impl IndexFileBuilder {
    /// An empty builder.
    pub fn new() -> IndexFileBuilder {
        IndexFileBuilder::default()
    }

    /// Adds a section; sections keep the order they are added in.
    pub fn add_section(&mut self, kind: u32, bytes: Vec<u8>) -> &mut Self {
        self.sections.push((kind, bytes));
        self
    }

    /// The file's bytes.
    pub fn to_vec(&self) -> Vec<u8> {
        let table_end = HEADER_LEN + ENTRY_LEN * self.sections.len();
        let mut offset = table_end.next_multiple_of(ALIGN);
        let mut table = Vec::with_capacity(table_end - HEADER_LEN);
        for (kind, bytes) in &self.sections {
            table.extend(kind.to_le_bytes());
            table.extend(0u32.to_le_bytes());
            table.extend((offset as u64).to_le_bytes());
            table.extend((bytes.len() as u64).to_le_bytes());
            table.extend(checksum(&[bytes]));
            offset = (offset + bytes.len()).next_multiple_of(ALIGN);
        }
        let file_len = offset;
        let mut out = Vec::with_capacity(file_len);
        out.extend(MAGIC);
        out.extend(FORMAT_VERSION.to_le_bytes());
        out.extend((self.sections.len() as u32).to_le_bytes());
        out.extend((file_len as u64).to_le_bytes());
        out.extend([0u8; 8]);
        let header_checksum = checksum(&[&out[..32], &[0u8; 16], &table]);
        out.extend(header_checksum);
        out.extend([0u8; 16]);
        out.extend(table);
        for (_, bytes) in &self.sections {
            out.resize(out.len().next_multiple_of(ALIGN), 0);
            out.extend(bytes);
        }
        out.resize(file_len, 0);
        out
    }

    /// Writes the file so that `path` is either absent/old or complete, never partial: to a
    /// temporary file in the same directory, fsync'd, renamed over `path`, and the directory
    /// fsync'd so the rename itself survives a crash.
    pub fn write_to_path(&self, path: &Path) -> io::Result<()> {
        write_atomically(path, |file| file.write_all(&self.to_vec()))
    }
}

/// Writes a file so that `path` is either absent/old or complete, never partial: `write` fills
/// a temporary file in the same directory (named `.NAME.tmp-PID`, which
/// [`is_temporary`] recognises), which is fsync'd and renamed over `path`; then the directory
/// is fsync'd so the rename itself survives a crash.
pub fn write_atomically(path: &Path, write: impl FnOnce(&mut File) -> io::Result<()>) -> io::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().ok_or_else(|| io::Error::other("path has no file name"))?;
    let temp = dir.join(format!(".{}.tmp-{}", name.to_string_lossy(), std::process::id()));
    let result = (|| {
        let mut file = File::create(&temp)?;
        write(&mut file)?;
        file.sync_all()?;
        fs::rename(&temp, path)?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}

/// Whether a file name is one [`write_atomically`] was writing when it was interrupted.
pub fn is_temporary(name: &str) -> bool {
    name.starts_with('.') && name.contains(".tmp-")
}

/// Makes a directory's entries (creations, renames, removals) durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let mut builder = IndexFileBuilder::new();
        builder.add_section(7, b"seven".to_vec()).add_section(1, vec![]).add_section(3, (0..=255).collect());
        builder.to_vec()
    }

    #[test]
    fn sections_round_trip_aligned() {
        let file = IndexFile::open(sample()).unwrap();
        assert_eq!(file.sections().iter().map(|s| s.kind).collect::<Vec<_>>(), [7, 1, 3]);
        assert_eq!(file.section(7), Some(&b"seven"[..]));
        assert_eq!(file.section(1), Some(&[][..]));
        assert_eq!(file.section(3).unwrap().len(), 256);
        assert_eq!(file.section(9), None);
        assert!(file.sections().iter().all(|s| s.offset % ALIGN == 0));
        file.verify().unwrap();
    }

    #[test]
    fn every_truncation_is_an_error() {
        let bytes = sample();
        for len in 0..bytes.len() {
            assert!(IndexFile::open(&bytes[..len]).is_err(), "truncated to {len} opened");
        }
    }

    #[test]
    fn every_flipped_bit_is_caught_on_open_or_verify() {
        let bytes = sample();
        for at in 0..bytes.len() {
            for bit in 0..8 {
                let mut corrupt = bytes.clone();
                corrupt[at] ^= 1 << bit;
                let caught = IndexFile::open(&corrupt[..]).and_then(|f| f.verify());
                // Padding between sections is covered by nothing, and changes nothing read.
                let in_padding = IndexFile::open(&bytes[..]).unwrap().sections().iter().all(|s| {
                    let (start, end) = (s.offset, s.offset + s.len);
                    at < start || at >= end
                }) && at >= HEADER_LEN + ENTRY_LEN * 3;
                assert!(caught.is_err() || in_padding, "flip at byte {at} bit {bit} went unnoticed");
            }
        }
    }

    #[test]
    fn wrong_magic_and_version_are_named() {
        let mut bytes = sample();
        bytes[0] = b'X';
        assert_eq!(IndexFile::open(&bytes[..]).unwrap_err(), FormatError::BadMagic);
        let mut bytes = sample();
        bytes[8] = 2;
        assert_eq!(IndexFile::open(&bytes[..]).unwrap_err(), FormatError::UnsupportedVersion { found: 2 });
    }

    #[test]
    fn writing_is_atomic_and_mmap_reads_the_same_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lists.hsidx");
        let mut builder = IndexFileBuilder::new();
        builder.add_section(2, vec![42; 1000]);
        builder.write_to_path(&path).unwrap();
        builder.add_section(5, vec![1; 10]);
        builder.write_to_path(&path).unwrap();
        let mapped = IndexFile::open(map_file(&path).unwrap()).unwrap();
        mapped.verify().unwrap();
        assert_eq!(mapped.section(5), Some(&[1u8; 10][..]));
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["lists.hsidx"], "no temporary file is left behind");
    }
}
