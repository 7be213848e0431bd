//! Refreshing a list: the batch that turns a list into a new version of itself (a daily drop)
//! by writing only the difference.

use std::collections::{HashMap, HashSet};

use super::live::View;
use super::{Change, ChangeError, Removal};
use crate::hashes::HashKind;
use crate::import::ImportedEntry;
use crate::index::ListOptions;

/// What a refresh changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Refreshed {
    /// The batch written (the last one before, if nothing changed).
    pub seq: u64,
    /// Whether the list was created.
    pub created: bool,
    /// Entries in the new version.
    pub entries: u64,
    /// Entries added or changed (category, source or quality).
    pub added: u64,
    /// Entries withdrawn.
    pub removed: u64,
    /// Entries that stayed as they were.
    pub unchanged: u64,
}

/// The changes that turn list `name` as `view` has it into `entries`.
pub fn list_difference<B: AsRef<[u8]>>(
    view: View<'_, B>,
    name: &str,
    options: Option<ListOptions>,
    entries: Vec<ImportedEntry>,
) -> Result<(Vec<Change>, Refreshed), ChangeError> {
    type Key = (HashKind, Vec<u8>, Option<String>);
    let mut changes = Vec::new();
    let mut refreshed = Refreshed::default();
    match (view.delta.list(name), options) {
        (Some(existing), Some(options)) if existing.options() != options => {
            return Err(ChangeError::ListConflict(name.to_string()));
        }
        (Some(_), _) => {}
        (None, options) => {
            changes.push(Change::DefineList(options.unwrap_or_else(|| ListOptions::new(name))));
            refreshed.created = true;
        }
    }
    let mut current: HashMap<Key, ImportedEntry> = HashMap::new();
    view.for_each_entry(|entry| {
        if entry.list.name == name {
            let entry = entry.to_entry();
            current.insert((entry.kind, entry.value.clone(), entry.id.clone()), entry);
        }
    });
    let mut wanted: HashMap<Key, ImportedEntry> = HashMap::new();
    for entry in entries {
        wanted.insert((entry.kind, entry.value.clone(), entry.id.clone()), entry);
    }
    refreshed.entries = wanted.len() as u64;
    // A removal without an id withdraws every entry with that hash, so entries with the same
    // hash that stay are added back after it.
    let mut cleared: HashSet<(HashKind, Vec<u8>)> = HashSet::new();
    let mut gone: Vec<&Key> = current.keys().filter(|key| !wanted.contains_key(*key)).collect();
    gone.sort();
    for (kind, value, id) in gone {
        if id.is_none() {
            cleared.insert((*kind, value.clone()));
        }
        changes.push(Change::Remove(Removal {
            list: Some(name.to_string()),
            hash: Some((*kind, value.clone())),
            entry_id: id.clone(),
        }));
        refreshed.removed += 1;
    }
    let mut wanted: Vec<(Key, ImportedEntry)> = wanted.into_iter().collect();
    wanted.sort_by(|a, b| a.0.cmp(&b.0));
    for (key, entry) in wanted {
        let same = current.get(&key) == Some(&entry);
        if same && !cleared.contains(&(key.0, key.1.clone())) {
            refreshed.unchanged += 1;
            continue;
        }
        if same {
            refreshed.unchanged += 1;
        } else {
            refreshed.added += 1;
        }
        changes.push(Change::Add { list: name.to_string(), entry });
    }
    Ok((changes, refreshed))
}
