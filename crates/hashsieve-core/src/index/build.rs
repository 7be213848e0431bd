//! Building an index file from list entries.

use std::collections::BTreeMap;
use std::path::Path;

use super::records::{RecordKey, RecordsBuilder};
use super::vectors::VectorDistance;
use super::{
    DEFAULT_HAMMING64_THRESHOLD, DEFAULT_PDQ_THRESHOLD, Family, IndexError, ListInfo, ListRole, MANIFEST,
    Manifest, RECORDS, STRINGS, exact, family, hamming, table_kind, vectors,
};
use crate::hashes::HashKind;
use crate::import::ImportedEntry;
use crate::index::format::IndexFileBuilder;

/// A list's name and matching settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListOptions {
    /// Unique in the index; reported with every match.
    pub name: String,
    /// Block-list (the default) or allow-list of known false positives.
    pub role: ListRole,
    /// PDQ matches are at most this many bits away (default 31).
    pub pdq_threshold: u32,
    /// pHash, dHash and aHash matches are at most this many bits away (default 8).
    pub hamming_threshold: u32,
    /// The distance PhotoDNA vectors are compared by; required if the list has any.
    pub photodna: Option<VectorDistance>,
}

impl ListOptions {
    /// A list with the default thresholds.
    pub fn new(name: impl Into<String>) -> ListOptions {
        ListOptions {
            name: name.into(),
            role: ListRole::Block,
            pdq_threshold: DEFAULT_PDQ_THRESHOLD,
            hamming_threshold: DEFAULT_HAMMING64_THRESHOLD,
            photodna: None,
        }
    }
}

/// A list's number in the builder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListId(u32);

/// Collects lists and their entries, then writes an index file.
///
/// Memory while building is about the size of the entries' values plus their distinct ids and
/// categories; the file is written at the end.
#[derive(Debug, Default)]
pub struct IndexBuilder {
    lists: Vec<ListInfo>,
    records: RecordsBuilder,
    values: BTreeMap<HashKind, (Vec<u8>, Vec<u32>)>,
}

impl IndexBuilder {
    /// An empty builder.
    pub fn new() -> IndexBuilder {
        IndexBuilder::default()
    }

    /// Adds a list; its entries are then added with [`IndexBuilder::add`].
    pub fn add_list(&mut self, options: ListOptions) -> Result<ListId, IndexError> {
        if self.lists.iter().any(|list| list.name == options.name) {
            return Err(IndexError::Invalid(format!("two lists are named {:?}", options.name)));
        }
        if options.pdq_threshold > 256 || options.hamming_threshold > 64 {
            return Err(IndexError::Invalid(format!(
                "list {:?}: threshold wider than the hash",
                options.name
            )));
        }
        if options.name.is_empty() || options.name.chars().any(char::is_control) {
            return Err(IndexError::Invalid(format!(
                "the list name {:?} is empty or holds control characters",
                options.name
            )));
        }
        let id = ListId(self.lists.len() as u32);
        self.lists.push(ListInfo::empty(options));
        Ok(id)
    }

    /// The list named `name`, if it has been added.
    pub fn list_id(&self, name: &str) -> Option<ListId> {
        self.lists.iter().position(|list| list.name == name).map(|i| ListId(i as u32))
    }

    /// Records that `list` was imported from `file`, for `index inspect`.
    pub fn add_source(&mut self, list: ListId, file: impl Into<String>) {
        self.lists[list.0 as usize].sources.push(file.into());
    }

    /// Adds an entry to a list. Identical entries (same kind, value and provenance) are stored
    /// once.
    pub fn add(&mut self, list: ListId, entry: &ImportedEntry) -> Result<(), IndexError> {
        let info = &self.lists[list.0 as usize];
        if entry.value.len() != entry.kind.value_len() {
            return Err(IndexError::Invalid(format!(
                "a {} value is {} bytes, not {}",
                entry.kind,
                entry.kind.value_len(),
                entry.value.len()
            )));
        }
        if entry.kind == HashKind::PhotoDna && info.photodna.is_none() {
            return Err(IndexError::Invalid(format!(
                "list {:?} has PhotoDNA entries but no declared distance (L1 or L2, and a threshold)",
                info.name
            )));
        }
        let record = self.records.intern(RecordKey {
            list: list.0,
            quality: entry.quality,
            id: entry.id.clone(),
            category: entry.category.clone(),
            source: entry.source.clone(),
        })?;
        let (values, records) = self.values.entry(entry.kind).or_default();
        if records.len() >= u32::MAX as usize - 1 {
            return Err(IndexError::TooLarge(format!("more than 4 billion {} entries", entry.kind)));
        }
        values.extend_from_slice(&entry.value);
        records.push(record);
        *self.lists[list.0 as usize].entries.entry(entry.kind.name().to_string()).or_default() += 1;
        Ok(())
    }

    /// The index file's bytes.
    pub fn to_vec(&self) -> Vec<u8> {
        self.file().to_vec()
    }

    /// Writes the index file atomically (temporary file, fsync, rename, directory fsync).
    pub fn write_to_path(&self, path: &Path) -> Result<(), IndexError> {
        Ok(self.file().write_to_path(path)?)
    }

    fn file(&self) -> IndexFileBuilder {
        let mut file = IndexFileBuilder::new();
        let manifest = Manifest {
            created_by: concat!("hashsieve ", env!("CARGO_PKG_VERSION")).to_string(),
            lists: self.lists.clone(),
        };
        file.add_section(MANIFEST, serde_json::to_vec(&manifest).expect("a manifest serialises"));
        let (records, strings) = self.records.sections();
        file.add_section(RECORDS, records).add_section(STRINGS, strings);
        for (&kind, (values, records)) in &self.values {
            let section = match family(kind) {
                Family::Exact => exact::build(kind.value_len(), values, records),
                Family::Pdq => hamming::build::<4>(values, records, self.widest(kind)),
                Family::Hamming64 => hamming::build::<1>(values, records, self.widest(kind)),
                Family::Vector => vectors::build(kind.value_len(), values, records),
            };
            file.add_section(table_kind(kind), section);
        }
        file
    }

    fn widest(&self, kind: HashKind) -> u32 {
        self.lists.iter().filter_map(|list| list.threshold(kind)).max().unwrap_or(0)
    }
}
