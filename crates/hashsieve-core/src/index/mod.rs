//! The index: hash lists built into one immutable, checksummed file, searched in place.
//!
//! [`IndexBuilder`] takes list entries (from the [importers](crate::import)) and writes a file;
//! [`Index`] opens one over any bytes — an mmap in production ([`Index::open_path`]), a
//! `Vec<u8>` in tests and fuzzing — and answers "which entries match this hash?":
//!
//! - exact kinds (MD5, SHA-1, SHA-256, BLAKE3) by equality, from a sorted table with a directory
//!   on the leading bits ([`exact`]);
//! - Hamming kinds (PDQ, pHash, dHash, aHash) within a threshold, by multi-index hashing whose
//!   tables are stored in the file ([`hamming`]), complete by construction;
//! - vectors (PhotoDNA) within the distance their list declares, by a parallel scan
//!   ([`vectors`]).
//!
//! Opening reads the header, the section table and each section's few numbers; nothing is
//! rebuilt or deserialised, so a 10-million-entry index opens in the time of an mmap. Every
//! array's bounds are checked on open and every read inside one is checked too, so a corrupt
//! file gives wrong answers at worst, never a crash; [`Index::verify`] finds the corruption.
//! The bytes are described in `docs/INDEX-FORMAT.md`.
//!
//! ```
//! use hashsieve_core::hashes::HashKind;
//! use hashsieve_core::import::ImportedEntry;
//! use hashsieve_core::index::{Index, IndexBuilder, ListOptions, SearchOptions};
//!
//! let mut builder = IndexBuilder::new();
//! let list = builder.add_list(ListOptions::new("hotline-a"))?;
//! let pdq = hex::decode("f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22").unwrap();
//! builder.add(list, &ImportedEntry::new(HashKind::Pdq, pdq.clone()).with_id("A-17"))?;
//! let index = Index::open(builder.to_vec())?;
//!
//! let mut query = pdq.clone();
//! query[0] ^= 0b111; // three bits away
//! let hits = index.search(HashKind::Pdq, &query, &SearchOptions::default());
//! assert_eq!(hits.len(), 1);
//! assert_eq!(hits[0].distance, 3);
//! assert_eq!(index.record(&hits[0]).unwrap().id, Some("A-17"));
//! # Ok::<(), hashsieve_core::index::IndexError>(())
//! ```

mod build;
pub mod dir;
pub mod exact;
pub mod format;
pub mod hamming;
pub mod mih;
mod records;
mod section;
pub mod vectors;

use std::collections::BTreeMap;
use std::io;
use std::path::Path;

use serde::{Deserialize, Serialize};

pub use self::build::{IndexBuilder, ListId, ListOptions};
use self::exact::ExactTable;
use self::format::{FormatError, IndexFile};
use self::hamming::HammingTable;
pub use self::records::Record;
use self::records::RecordsTable;
use self::vectors::VectorTable;
pub use self::vectors::{Metric, VectorDistance};
use crate::hashes::HashKind;

/// Section kinds. Tables of hash kind `k` have kind `TABLE_BASE + k.code()`.
const MANIFEST: u32 = 1;
const RECORDS: u32 = 2;
const STRINGS: u32 = 3;
const TABLE_BASE: u32 = 0x100;
/// The manifest is parsed on open; a larger one is refused rather than read.
const MAX_MANIFEST: usize = 64 << 20;

/// Default PDQ threshold: Meta's recommended 31 of 256 bits.
pub const DEFAULT_PDQ_THRESHOLD: u32 = 31;
/// Default threshold of the 64-bit img_hash kinds.
pub const DEFAULT_HAMMING64_THRESHOLD: u32 = 8;

/// Why an index could not be built, opened or trusted.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// The container is damaged.
    #[error(transparent)]
    Format(#[from] FormatError),
    /// A section's contents do not add up.
    #[error("index is malformed: {0}")]
    Malformed(String),
    /// Reading or writing the file failed.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// More than the format can hold.
    #[error("index too large: {0}")]
    TooLarge(String),
    /// The builder was given something it cannot index.
    #[error("{0}")]
    Invalid(String),
}

/// What a list's entries mean to a match.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ListRole {
    /// Entries are known material: a match is reported (the default).
    #[default]
    Block,
    /// Entries are known false positives: content that matches one has its matches suppressed
    /// (reported as suppressed, with the allow-list entry).
    Allow,
}

impl ListRole {
    /// The role's name in manifests and output.
    pub fn name(self) -> &'static str {
        match self {
            ListRole::Block => "block",
            ListRole::Allow => "allow",
        }
    }
}

/// A list as the index records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListInfo {
    /// The list's name, unique in the index.
    pub name: String,
    /// Block-list or allow-list; absent in manifests written before allow-lists, meaning block.
    #[serde(default)]
    pub role: ListRole,
    /// PDQ matches are at most this many bits away.
    pub pdq_threshold: u32,
    /// pHash, dHash and aHash matches are at most this many bits away.
    pub hamming_threshold: u32,
    /// How the list's PhotoDNA vectors are compared, if it has any.
    pub photodna: Option<VectorDistance>,
    /// Entries added per hash kind.
    pub entries: BTreeMap<String, u64>,
    /// The files the list was imported from.
    pub sources: Vec<String>,
}

impl ListInfo {
    /// The threshold for a Hamming kind, `None` for other kinds.
    pub fn threshold(&self, kind: HashKind) -> Option<u32> {
        match kind {
            HashKind::Pdq => Some(self.pdq_threshold),
            HashKind::PHash | HashKind::DHash | HashKind::AHash => Some(self.hamming_threshold),
            _ => None,
        }
    }

    /// A list with these settings and no entries yet.
    pub fn empty(options: ListOptions) -> ListInfo {
        ListInfo {
            name: options.name,
            role: options.role,
            pdq_threshold: options.pdq_threshold,
            hamming_threshold: options.hamming_threshold,
            photodna: options.photodna,
            entries: BTreeMap::new(),
            sources: Vec::new(),
        }
    }

    /// The list's settings, as a builder takes them.
    pub fn options(&self) -> ListOptions {
        ListOptions {
            name: self.name.clone(),
            role: self.role,
            pdq_threshold: self.pdq_threshold,
            hamming_threshold: self.hamming_threshold,
            photodna: self.photodna,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Manifest {
    created_by: String,
    lists: Vec<ListInfo>,
}

/// How to search.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SearchOptions {
    /// A Hamming threshold for every list instead of each list's own.
    pub threshold: Option<u32>,
}

/// An entry that matched a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Hit {
    /// The entry's hash kind.
    pub kind: HashKind,
    /// Distance from the query: 0 for exact kinds.
    pub distance: u32,
    /// The entry's position in its kind's table.
    pub position: u32,
    /// The entry's provenance record; see [`Index::record`].
    pub record: u32,
}

/// An opened index over bytes `B`.
#[derive(Debug)]
pub struct Index<B> {
    file: IndexFile<B>,
    manifest: Manifest,
    records: RecordsTable,
    record_count: usize,
    exact: BTreeMap<HashKind, ExactTable>,
    pdq: Option<HammingTable<4>>,
    hamming64: BTreeMap<HashKind, HammingTable<1>>,
    photodna: Option<VectorTable>,
}

/// How a kind is stored.
enum Family {
    Exact,
    Pdq,
    Hamming64,
    Vector,
}

fn family(kind: HashKind) -> Family {
    match kind {
        HashKind::Md5 | HashKind::Sha1 | HashKind::Sha256 | HashKind::Blake3 => Family::Exact,
        HashKind::Pdq => Family::Pdq,
        HashKind::PHash | HashKind::DHash | HashKind::AHash => Family::Hamming64,
        HashKind::PhotoDna => Family::Vector,
    }
}

fn table_kind(kind: HashKind) -> u32 {
    TABLE_BASE + u32::from(kind.code())
}

impl<B: AsRef<[u8]>> Index<B> {
    /// Opens an index: checks the container and each section's numbers. Cost: proportional to
    /// the number of sections and lists, not to the number of entries.
    pub fn open(bytes: B) -> Result<Index<B>, IndexError> {
        let file = IndexFile::open(bytes)?;
        let data = file.bytes();
        let find = |kind: u32| file.sections().iter().find(|s| s.kind == kind).map(|s| s.range());
        let missing = |what: &str| IndexError::Malformed(format!("no {what} section"));

        let manifest_range = find(MANIFEST).ok_or_else(|| missing("manifest"))?;
        if manifest_range.len() > MAX_MANIFEST {
            return Err(IndexError::TooLarge("manifest section over 64 MiB".into()));
        }
        let manifest: Manifest = serde_json::from_slice(&data[manifest_range])
            .map_err(|err| IndexError::Malformed(format!("manifest: {err}")))?;
        if manifest.lists.iter().any(|l| l.pdq_threshold > 256 || l.hamming_threshold > 64) {
            return Err(IndexError::Malformed("manifest: a threshold exceeds its hash's width".into()));
        }
        let records = RecordsTable::open(
            data,
            find(RECORDS).ok_or_else(|| missing("records"))?,
            find(STRINGS).ok_or_else(|| missing("strings"))?,
        )?;
        let record_count = records.over(data).len();

        let (mut exact, mut pdq, mut hamming64, mut photodna) =
            (BTreeMap::new(), None, BTreeMap::new(), None);
        for kind in HashKind::ALL {
            let Some(range) = find(table_kind(kind)) else { continue };
            match family(kind) {
                Family::Exact => {
                    exact.insert(kind, ExactTable::open(data, range, kind.value_len())?);
                }
                Family::Pdq => pdq = Some(HammingTable::open(data, range)?),
                Family::Hamming64 => {
                    hamming64.insert(kind, HammingTable::open(data, range)?);
                }
                Family::Vector => photodna = Some(VectorTable::open(data, range, kind.value_len())?),
            }
        }
        Ok(Index { file, manifest, records, record_count, exact, pdq, hamming64, photodna })
    }

    /// The lists in the index, in the order they were added; [`Record::list`] numbers them.
    pub fn lists(&self) -> &[ListInfo] {
        &self.manifest.lists
    }

    /// The program that built the index.
    pub fn created_by(&self) -> &str {
        &self.manifest.created_by
    }

    /// The container, for inspection.
    pub fn file(&self) -> &IndexFile<B> {
        &self.file
    }

    /// How many entries of `kind` the index holds.
    pub fn len(&self, kind: HashKind) -> usize {
        match family(kind) {
            Family::Exact => self.exact.get(&kind).map_or(0, ExactTable::len),
            Family::Pdq => self.pdq.as_ref().map_or(0, HammingTable::len),
            Family::Hamming64 => self.hamming64.get(&kind).map_or(0, HammingTable::len),
            Family::Vector => self.photodna.as_ref().map_or(0, VectorTable::len),
        }
    }

    /// Whether the index holds no entries at all.
    pub fn is_empty(&self) -> bool {
        HashKind::ALL.iter().all(|&kind| self.len(kind) == 0)
    }

    /// The kinds the index holds entries of.
    pub fn kinds(&self) -> Vec<HashKind> {
        HashKind::ALL.into_iter().filter(|&kind| self.len(kind) > 0).collect()
    }

    /// Chunk width and chunk count of a Hamming kind's multi-index tables.
    pub fn hamming_layout(&self, kind: HashKind) -> Option<(u32, u32)> {
        match family(kind) {
            Family::Pdq => self.pdq.as_ref().map(HammingTable::layout),
            Family::Hamming64 => self.hamming64.get(&kind).map(HammingTable::layout),
            _ => None,
        }
    }

    fn list_of(&self, record: u32) -> Option<&ListInfo> {
        let record = self.records.over(self.file.bytes()).get(record)?;
        self.manifest.lists.get(record.list as usize)
    }

    /// Every entry of `kind` that matches `value`, in ascending (distance, position) order:
    /// equal for exact kinds; within the list's threshold (or `options.threshold`) for Hamming
    /// kinds; within the list's declared distance for vectors. A value of the wrong length
    /// matches nothing.
    pub fn search(&self, kind: HashKind, value: &[u8], options: &SearchOptions) -> Vec<Hit> {
        let mut hits = Vec::new();
        self.search_into(kind, value, options, &mut hits);
        hits
    }

    /// [`Index::search`], appending to `hits` (sorted among themselves), so that a caller
    /// making many lookups reuses one buffer instead of allocating per lookup.
    pub fn search_into(&self, kind: HashKind, value: &[u8], options: &SearchOptions, hits: &mut Vec<Hit>) {
        let data = self.file.bytes();
        let from = hits.len();
        match family(kind) {
            Family::Exact => {
                if let Some(table) = self.exact.get(&kind) {
                    table.over(data).lookup(value, |position, record| {
                        hits.push(Hit { kind, distance: 0, position, record })
                    });
                }
            }
            Family::Pdq => {
                if let Some(table) = &self.pdq {
                    self.hamming_search(table, kind, value, options, hits);
                }
            }
            Family::Hamming64 => {
                if let Some(table) = self.hamming64.get(&kind) {
                    self.hamming_search(table, kind, value, options, hits);
                }
            }
            Family::Vector => {
                if let Some(table) = &self.photodna {
                    let table = table.over(data);
                    let (records, lists) = (self.records.over(data), &self.manifest.lists);
                    let distance_of = |record| {
                        records.get(record).and_then(|r| lists.get(r.list as usize)).and_then(|l| l.photodna)
                    };
                    for (position, distance) in table.search(value, distance_of) {
                        hits.push(Hit { kind, distance, position, record: table.record(position as usize) });
                    }
                }
            }
        }
        hits[from..].sort_unstable();
    }

    /// [`Index::search`] for many values of one kind, spread over rayon's thread pool; the
    /// answers are in the order of `values`.
    pub fn search_many(&self, kind: HashKind, values: &[&[u8]], options: &SearchOptions) -> Vec<Vec<Hit>>
    where
        B: Sync,
    {
        use rayon::prelude::*;
        values.par_iter().map(|value| self.search(kind, value, options)).collect()
    }

    /// Searches at the widest threshold any list (or the override) asks for, then keeps each
    /// hit that is within its own list's threshold.
    fn hamming_search<const W: usize>(
        &self,
        table: &HammingTable<W>,
        kind: HashKind,
        value: &[u8],
        options: &SearchOptions,
        hits: &mut Vec<Hit>,
    ) {
        let table = table.over(self.file.bytes());
        let widest = options.threshold.unwrap_or_else(|| {
            self.manifest.lists.iter().filter_map(|list| list.threshold(kind)).max().unwrap_or(0)
        });
        table.search(value, widest, |position, distance| {
            let record = table.record(position as usize);
            let threshold =
                options.threshold.or_else(|| self.list_of(record).and_then(|l| l.threshold(kind)));
            if threshold.is_some_and(|t| distance <= t) {
                hits.push(Hit { kind, distance, position, record });
            }
        });
    }

    /// Every entry of `kind`, in table order, as hits at distance 0: for compaction, list
    /// refreshes and dumps, which visit the whole index.
    pub fn entries(&self, kind: HashKind) -> impl Iterator<Item = Hit> + '_ {
        let data = self.file.bytes();
        let record_of = move |position: usize| -> u32 {
            match family(kind) {
                Family::Exact => self.exact.get(&kind).map_or(u32::MAX, |t| t.over(data).record(position)),
                Family::Pdq => self.pdq.as_ref().map_or(u32::MAX, |t| t.over(data).record(position)),
                Family::Hamming64 => {
                    self.hamming64.get(&kind).map_or(u32::MAX, |t| t.over(data).record(position))
                }
                Family::Vector => self.photodna.as_ref().map_or(u32::MAX, |t| t.over(data).record(position)),
            }
        };
        (0..self.len(kind)).map(move |position| Hit {
            kind,
            distance: 0,
            position: position as u32,
            record: record_of(position),
        })
    }

    /// The provenance of a hit.
    pub fn record(&self, hit: &Hit) -> Option<Record<'_>> {
        self.records.over(self.file.bytes()).get(hit.record)
    }

    /// The list a hit's entry belongs to.
    pub fn list(&self, hit: &Hit) -> Option<&ListInfo> {
        self.list_of(hit.record)
    }

    /// The entry's value as the list gave it.
    pub fn value(&self, hit: &Hit) -> Option<&[u8]> {
        let data = self.file.bytes();
        match family(hit.kind) {
            Family::Exact => self.exact.get(&hit.kind)?.over(data).value_at(hit.position),
            Family::Pdq => self.pdq.as_ref()?.over(data).value_at(hit.position),
            Family::Hamming64 => self.hamming64.get(&hit.kind)?.over(data).value_at(hit.position),
            Family::Vector => self.photodna.as_ref()?.over(data).value_at(hit.position),
        }
    }

    /// Checks everything: every section's checksum, then every table's order and structure and
    /// every record. A full read of the file.
    pub fn verify(&self) -> Result<(), IndexError> {
        self.file.verify()?;
        let data = self.file.bytes();
        self.records.over(data).verify(self.manifest.lists.len())?;
        let records = self.record_count;
        for table in self.exact.values() {
            table.over(data).verify(records)?;
        }
        if let Some(table) = &self.pdq {
            table.over(data).verify(records)?;
        }
        for table in self.hamming64.values() {
            table.over(data).verify(records)?;
        }
        if let Some(table) = &self.photodna {
            table.over(data).verify(records)?;
        }
        Ok(())
    }
}

/// The bytes of an opened index: a file mapping, or a buffer.
#[derive(Debug)]
pub enum IndexBytes {
    /// A read-only mapping of an index file.
    Mapped(memmap2::Mmap),
    /// An index in memory.
    Owned(Vec<u8>),
}

impl AsRef<[u8]> for IndexBytes {
    fn as_ref(&self) -> &[u8] {
        match self {
            IndexBytes::Mapped(map) => map,
            IndexBytes::Owned(bytes) => bytes,
        }
    }
}

impl Index<memmap2::Mmap> {
    /// Maps an index file and opens it.
    pub fn open_path(path: &Path) -> Result<Index<memmap2::Mmap>, IndexError> {
        Index::open(format::map_file(path)?)
    }
}
