//! The delta in memory, and queries over an index file plus its delta.
//!
//! [`Delta`] holds what the log says on top of the index file: added entries (in slots, with a
//! map per hash kind to find them — exact values by equality, Hamming kinds through
//! [`Mih`] tables, PhotoDNA by scan), tombstones that hide entries of the file, and lists the
//! file does not have. [`View`] searches both and hides what is withdrawn.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use super::{Change, Removal};
use crate::hashes::HashKind;
use crate::import::ImportedEntry;
use crate::index::mih::Mih;
use crate::index::{Hit, Index, ListInfo, ListOptions, SearchOptions};

/// An entry's identity: list number, kind, value and id.
type EntryKey = (u32, HashKind, Vec<u8>, Option<String>);

/// What applying a batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Applied {
    /// Lists created.
    pub lists_defined: u64,
    /// Entries added that were not there.
    pub added: u64,
    /// Entries added that replaced an identical entry (same list, kind, value and id).
    pub replaced: u64,
    /// Entries withdrawn that were found: in the delta, and in the index file by hash.
    pub removed: u64,
    /// Removals by entry id also withdraw matching entries of the index file; those are not
    /// counted, as the file has no index by id.
    pub removed_by_id: u64,
}

impl Applied {
    fn add(&mut self, other: Applied) {
        self.lists_defined += other.lists_defined;
        self.added += other.added;
        self.replaced += other.replaced;
        self.removed += other.removed;
        self.removed_by_id += other.removed_by_id;
    }
}

/// Patterns that hide entries of the index file.
#[derive(Debug, Default, Clone)]
struct Tombstones {
    by_id: HashSet<(u32, String)>,
    by_hash: HashSet<(HashKind, Vec<u8>)>,
    by_list_hash: HashSet<(u32, HashKind, Vec<u8>)>,
    by_key: HashSet<EntryKey>,
}

impl Tombstones {
    fn len(&self) -> usize {
        self.by_id.len() + self.by_hash.len() + self.by_list_hash.len() + self.by_key.len()
    }

    fn hides(&self, list: u32, kind: HashKind, value: &[u8], id: Option<&str>) -> bool {
        if let Some(id) = id
            && !self.by_id.is_empty()
            && self.by_id.contains(&(list, id.to_string()))
        {
            return true;
        }
        (!self.by_hash.is_empty() && self.by_hash.contains(&(kind, value.to_vec())))
            || (!self.by_list_hash.is_empty() && self.by_list_hash.contains(&(list, kind, value.to_vec())))
            || (!self.by_key.is_empty()
                && self.by_key.contains(&(list, kind, value.to_vec(), id.map(str::to_string))))
    }

    fn insert(&mut self, list: u32, removal: &Removal) {
        match (&removal.hash, &removal.entry_id) {
            (None, Some(id)) => {
                self.by_id.insert((list, id.clone()));
            }
            (Some((kind, value)), None) => {
                self.by_list_hash.insert((list, *kind, value.clone()));
            }
            (Some((kind, value)), Some(id)) => {
                self.by_key.insert((list, *kind, value.clone(), Some(id.clone())));
            }
            (None, None) => {}
        }
    }
}

/// An added entry.
#[derive(Debug, Clone)]
struct Slot {
    list: u32,
    entry: ImportedEntry,
}

/// The changes on top of one index file.
#[derive(Debug, Clone)]
pub struct Delta {
    lists: Vec<ListInfo>,
    names: HashMap<String, u32>,
    tombstones: Tombstones,
    slots: Vec<Option<Slot>>,
    free: Vec<u32>,
    by_key: HashMap<EntryKey, u32>,
    by_id: HashMap<(u32, String), Vec<u32>>,
    by_value: HashMap<(HashKind, Vec<u8>), Vec<u32>>,
    near: BTreeMap<HashKind, Mih<()>>,
    vectors: BTreeSet<u32>,
    kinds: BTreeMap<HashKind, usize>,
    changes: u64,
    last_seq: u64,
}

impl Delta {
    /// An empty delta over an index file.
    pub fn new<B: AsRef<[u8]>>(base: &Index<B>) -> Delta {
        let lists = base.lists().to_vec();
        let names = lists.iter().enumerate().map(|(i, list)| (list.name.clone(), i as u32)).collect();
        Delta {
            lists,
            names,
            tombstones: Tombstones::default(),
            slots: Vec::new(),
            free: Vec::new(),
            by_key: HashMap::new(),
            by_id: HashMap::new(),
            by_value: HashMap::new(),
            near: BTreeMap::new(),
            vectors: BTreeSet::new(),
            kinds: BTreeMap::new(),
            changes: 0,
            last_seq: 0,
        }
    }

    /// Every list: the index file's, then those defined since.
    pub fn lists(&self) -> &[ListInfo] {
        &self.lists
    }

    /// The list named `name`.
    pub fn list(&self, name: &str) -> Option<&ListInfo> {
        self.names.get(name).map(|&i| &self.lists[i as usize])
    }

    /// Entries added and not withdrawn.
    pub fn added(&self) -> usize {
        self.by_key.len()
    }

    /// Withdrawal patterns over the index file.
    pub fn tombstones(&self) -> usize {
        self.tombstones.len()
    }

    /// Changes applied since the index file was written: what compaction would fold in.
    pub fn changes(&self) -> u64 {
        self.changes
    }

    /// The sequence number of the last batch applied (0 for none).
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// Hash kinds with entries in the delta.
    pub fn kinds(&self) -> impl Iterator<Item = HashKind> + '_ {
        self.kinds.keys().copied()
    }

    /// Applies one batch's changes in order.
    pub fn apply<B: AsRef<[u8]>>(&mut self, base: &Index<B>, seq: u64, changes: &[Change]) -> Applied {
        let mut applied = Applied::default();
        for change in changes {
            applied.add(self.apply_one(base, change));
        }
        self.changes += changes.len() as u64;
        self.last_seq = seq;
        applied
    }

    fn apply_one<B: AsRef<[u8]>>(&mut self, base: &Index<B>, change: &Change) -> Applied {
        match change {
            Change::DefineList(options) => {
                if self.names.contains_key(&options.name) {
                    return Applied::default();
                }
                self.names.insert(options.name.clone(), self.lists.len() as u32);
                self.lists.push(ListInfo::empty(options.clone()));
                Applied { lists_defined: 1, ..Applied::default() }
            }
            Change::Add { list, entry } => {
                // A list is always defined before it is written to; the log of a build that
                // allowed otherwise would get its list with default settings here.
                let list = match self.names.get(list) {
                    Some(&list) => list,
                    None => {
                        self.apply_one(base, &Change::DefineList(ListOptions::new(list.clone())));
                        self.names[list]
                    }
                };
                let key: EntryKey = (list, entry.kind, entry.value.clone(), entry.id.clone());
                let mut replaced = false;
                if let Some(&slot) = self.by_key.get(&key) {
                    self.remove_slot(slot);
                    replaced = true;
                }
                if entry.kind == HashKind::PhotoDna {
                    // Finding the same vector in the file is a scan; hiding it is cheap.
                    self.tombstones.by_key.insert(key.clone());
                } else if !self.tombstones.by_key.contains(&key)
                    && self.base_matches(base, list, entry.kind, &entry.value, entry.id.as_deref()) > 0
                {
                    self.tombstones.by_key.insert(key.clone());
                    replaced = true;
                }
                self.insert_slot(key, Slot { list, entry: entry.clone() });
                if replaced {
                    Applied { replaced: 1, ..Applied::default() }
                } else {
                    Applied { added: 1, ..Applied::default() }
                }
            }
            Change::Remove(removal) => {
                let list = match &removal.list {
                    None => None,
                    Some(name) => match self.names.get(name) {
                        Some(&list) => Some(list),
                        None => return Applied::default(),
                    },
                };
                let mut removed = 0;
                let mut removed_by_id = 0;
                if let Some((kind, value)) = &removal.hash {
                    if *kind != HashKind::PhotoDna {
                        removed +=
                            self.base_matches_removal(base, list, *kind, value, removal.entry_id.as_deref());
                    }
                } else {
                    removed_by_id = 1;
                }
                let slots: Vec<u32> = match (&removal.hash, &removal.entry_id, list) {
                    (_, Some(id), Some(list)) => {
                        self.by_id.get(&(list, id.clone())).cloned().unwrap_or_default()
                    }
                    (Some((kind, value)), _, _) => {
                        self.by_value.get(&(*kind, value.clone())).cloned().unwrap_or_default()
                    }
                    _ => Vec::new(),
                };
                for slot in slots {
                    let Some(Slot { list: slot_list, entry }) = &self.slots[slot as usize] else { continue };
                    let matches = list.is_none_or(|l| l == *slot_list)
                        && removal.hash.as_ref().is_none_or(|(k, v)| *k == entry.kind && *v == entry.value)
                        && removal.entry_id.as_ref().is_none_or(|id| entry.id.as_ref() == Some(id));
                    if matches {
                        self.remove_slot(slot);
                        removed += 1;
                    }
                }
                match list {
                    Some(list) => self.tombstones.insert(list, removal),
                    None => {
                        if let Some((kind, value)) = &removal.hash {
                            self.tombstones.by_hash.insert((*kind, value.clone()));
                        }
                    }
                }
                Applied { removed, removed_by_id, ..Applied::default() }
            }
        }
    }

    /// Visible entries of the index file in `list` with this exact value and id.
    fn base_matches<B: AsRef<[u8]>>(
        &self,
        base: &Index<B>,
        list: u32,
        kind: HashKind,
        value: &[u8],
        id: Option<&str>,
    ) -> u64 {
        self.base_equal(base, kind, value)
            .filter(|(l, entry_id)| *l == list && entry_id.as_deref() == id)
            .filter(|(l, entry_id)| !self.tombstones.hides(*l, kind, value, entry_id.as_deref()))
            .count() as u64
    }

    /// Visible entries of the index file that a removal by hash withdraws.
    fn base_matches_removal<B: AsRef<[u8]>>(
        &self,
        base: &Index<B>,
        list: Option<u32>,
        kind: HashKind,
        value: &[u8],
        id: Option<&str>,
    ) -> u64 {
        self.base_equal(base, kind, value)
            .filter(|(l, entry_id)| {
                list.is_none_or(|list| list == *l) && id.is_none_or(|id| entry_id.as_deref() == Some(id))
            })
            .filter(|(l, entry_id)| !self.tombstones.hides(*l, kind, value, entry_id.as_deref()))
            .count() as u64
    }

    /// (list, id) of every entry of the index file equal to `value`.
    fn base_equal<B: AsRef<[u8]>>(
        &self,
        base: &Index<B>,
        kind: HashKind,
        value: &[u8],
    ) -> impl Iterator<Item = (u32, Option<String>)> {
        let hits = base.search(kind, value, &SearchOptions { threshold: Some(0) });
        hits.into_iter()
            .filter(|hit| base.value(hit) == Some(value))
            .filter_map(|hit| base.record(&hit).map(|r| (r.list, r.id.map(str::to_string))))
            .collect::<Vec<_>>()
            .into_iter()
    }

    fn insert_slot(&mut self, key: EntryKey, slot: Slot) {
        let number = self.free.pop().unwrap_or_else(|| {
            self.slots.push(None);
            (self.slots.len() - 1) as u32
        });
        let entry = &slot.entry;
        if let Some(id) = &entry.id {
            self.by_id.entry((slot.list, id.clone())).or_default().push(number);
        }
        self.by_value.entry((entry.kind, entry.value.clone())).or_default().push(number);
        match hamming_bits(entry.kind) {
            Some(bits) => {
                // A slot number is inserted once: it was free.
                self.near.entry(entry.kind).or_insert_with(|| Mih::new(bits)).insert(
                    number,
                    &entry.value,
                    (),
                );
            }
            None if entry.kind == HashKind::PhotoDna => {
                self.vectors.insert(number);
            }
            None => {}
        }
        *self.kinds.entry(entry.kind).or_default() += 1;
        self.by_key.insert(key, number);
        self.slots[number as usize] = Some(slot);
    }

    fn remove_slot(&mut self, number: u32) {
        let Some(Slot { list, entry }) = self.slots[number as usize].take() else { return };
        let unlink = |map_entry: Option<&mut Vec<u32>>| {
            if let Some(slots) = map_entry {
                slots.retain(|&s| s != number);
                slots.is_empty()
            } else {
                false
            }
        };
        if let Some(id) = &entry.id {
            let key = (list, id.clone());
            if unlink(self.by_id.get_mut(&key)) {
                self.by_id.remove(&key);
            }
        }
        let key = (entry.kind, entry.value.clone());
        if unlink(self.by_value.get_mut(&key)) {
            self.by_value.remove(&key);
        }
        if let Some(table) = self.near.get_mut(&entry.kind) {
            table.remove(number);
        }
        self.vectors.remove(&number);
        if let Some(count) = self.kinds.get_mut(&entry.kind) {
            *count -= 1;
            if *count == 0 {
                self.kinds.remove(&entry.kind);
            }
        }
        self.by_key.remove(&(list, entry.kind, entry.value, entry.id));
        self.free.push(number);
    }
}

fn hamming_bits(kind: HashKind) -> Option<u32> {
    match kind {
        HashKind::Pdq => Some(256),
        HashKind::PHash | HashKind::DHash | HashKind::AHash => Some(64),
        _ => None,
    }
}

/// Where a found entry lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EntryAt {
    /// In the index file.
    Base(Hit),
    /// In the delta, at this slot.
    Delta(u32),
}

/// Which entry, whatever the distance it was found at: (0, position in the file's table) or
/// (1, delta slot), within one hash kind.
pub type EntryIdentity = (u8, u32);

impl EntryAt {
    /// The entry's identity, for merging what several query hashes found.
    pub fn key(&self) -> EntryIdentity {
        match self {
            EntryAt::Base(hit) => (0, hit.position),
            EntryAt::Delta(slot) => (1, *slot),
        }
    }
}

/// An entry a query found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found {
    /// The entry's kind.
    pub kind: HashKind,
    /// Distance from the query.
    pub distance: u32,
    /// Where it is.
    pub at: EntryAt,
}

/// An entry's contents, borrowed from the file or the delta.
#[derive(Debug, Clone, Copy)]
pub struct EntryView<'a> {
    /// Its list.
    pub list: &'a ListInfo,
    /// Its hash kind.
    pub kind: HashKind,
    /// Its value.
    pub value: &'a [u8],
    /// Its id in the list.
    pub id: Option<&'a str>,
    /// Its category.
    pub category: Option<&'a str>,
    /// Its source.
    pub source: Option<&'a str>,
    /// Its PDQ quality, if the list gave one.
    pub quality: Option<u8>,
}

/// An index file and a delta, searched together.
#[derive(Debug, Clone, Copy)]
pub struct View<'a, B> {
    /// The index file.
    pub base: &'a Index<B>,
    /// The changes since it was written.
    pub delta: &'a Delta,
}

impl<'a, B: AsRef<[u8]>> View<'a, B> {
    /// Every visible entry of `kind` matching `value`: as [`Index::search`] does for the file
    /// (the same thresholds, per list or `threshold`), minus withdrawn entries, plus added
    /// ones.
    pub fn search(&self, kind: HashKind, value: &[u8], threshold: Option<u32>, out: &mut Vec<Found>) {
        let mut hits = Vec::new();
        self.base.search_into(kind, value, &SearchOptions { threshold }, &mut hits);
        for hit in hits {
            if self.base_visible(&hit) {
                out.push(Found { kind, distance: hit.distance, at: EntryAt::Base(hit) });
            }
        }
        self.search_delta(kind, value, threshold, |slot, distance| {
            out.push(Found { kind, distance, at: EntryAt::Delta(slot) })
        });
    }

    fn base_visible(&self, hit: &Hit) -> bool {
        let tombstones = &self.delta.tombstones;
        if tombstones.len() == 0 {
            return true;
        }
        match (self.base.record(hit), self.base.value(hit)) {
            (Some(record), Some(value)) => !tombstones.hides(record.list, hit.kind, value, record.id),
            _ => true,
        }
    }

    fn search_delta(
        &self,
        kind: HashKind,
        value: &[u8],
        threshold: Option<u32>,
        mut found: impl FnMut(u32, u32),
    ) {
        let delta = self.delta;
        let list_of = |slot: u32| delta.slots[slot as usize].as_ref().map(|s| &delta.lists[s.list as usize]);
        if kind.is_exact() {
            if let Some(slots) = delta.by_value.get(&(kind, value.to_vec())) {
                slots.iter().for_each(|&slot| found(slot, 0));
            }
        } else if let Some(table) = delta.near.get(&kind) {
            let widest = threshold.unwrap_or_else(|| {
                delta.lists.iter().filter_map(|list| list.threshold(kind)).max().unwrap_or(0)
            });
            table.search(value, widest, |slot, (), distance| {
                let limit = threshold.or_else(|| list_of(slot).and_then(|list| list.threshold(kind)));
                if limit.is_some_and(|limit| distance <= limit) {
                    found(slot, distance);
                }
            });
        } else if kind == HashKind::PhotoDna {
            for &slot in &delta.vectors {
                let Some(Slot { list, entry }) = &delta.slots[slot as usize] else { continue };
                let metric = delta.lists[*list as usize].photodna;
                if let Some(distance) = metric.and_then(|metric| metric.within(value, &entry.value)) {
                    found(slot, distance);
                }
            }
        }
    }

    /// A found entry's contents.
    pub fn entry(&self, at: &EntryAt) -> Option<EntryView<'a>> {
        match at {
            EntryAt::Base(hit) => {
                let record = self.base.record(hit)?;
                Some(EntryView {
                    list: self.delta.lists.get(record.list as usize)?,
                    kind: hit.kind,
                    value: self.base.value(hit)?,
                    id: record.id,
                    category: record.category,
                    source: record.source,
                    quality: record.quality,
                })
            }
            EntryAt::Delta(slot) => {
                let Slot { list, entry } = self.delta.slots.get(*slot as usize)?.as_ref()?;
                Some(EntryView {
                    list: &self.delta.lists[*list as usize],
                    kind: entry.kind,
                    value: &entry.value,
                    id: entry.id.as_deref(),
                    category: entry.category.as_deref(),
                    source: entry.source.as_deref(),
                    quality: entry.quality,
                })
            }
        }
    }

    /// Hash kinds with visible entries, or withdrawn ones still in the file.
    pub fn kinds(&self) -> BTreeSet<HashKind> {
        let mut kinds: BTreeSet<HashKind> = self.base.kinds().into_iter().collect();
        kinds.extend(self.delta.kinds());
        kinds
    }

    /// Calls `each` with every visible entry: the file's in table order, then the delta's.
    pub fn for_each_entry(&self, mut each: impl FnMut(EntryView<'a>)) {
        for kind in self.base.kinds() {
            for hit in self.base.entries(kind) {
                if self.base_visible(&hit)
                    && let Some(view) = self.entry(&EntryAt::Base(hit))
                {
                    each(view);
                }
            }
        }
        for slot in 0..self.delta.slots.len() as u32 {
            if let Some(view) = self.entry(&EntryAt::Delta(slot)) {
                each(view);
            }
        }
    }
}

impl EntryView<'_> {
    /// The entry, owned.
    pub fn to_entry(&self) -> ImportedEntry {
        ImportedEntry {
            kind: self.kind,
            value: self.value.to_vec(),
            id: self.id.map(str::to_string),
            category: self.category.map(str::to_string),
            source: self.source.map(str::to_string),
            quality: self.quality,
        }
    }
}
