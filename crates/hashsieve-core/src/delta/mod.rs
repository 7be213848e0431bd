//! Live list changes: adds, removals and allow-list entries applied without a rebuild.
//!
//! An index file never changes. Changes to its lists arrive as [`Change`]s, grouped in
//! [`Batch`]es, appended to a log beside the index and made durable before they are
//! acknowledged ([`log`] has the bytes); in memory they form a [`Delta`](live) that every query
//! consults together with the index file, so a query sees *base + adds − removals*, and matches
//! of allow-listed content are reported as suppressed. Compaction folds the delta into a new
//! index file; the [index directory](crate::index::dir) holds the files and swaps them.
//!
//! The semantics, which the brute-force model in the tests follows:
//!
//! - an entry is identified by list, hash kind, value and id; adding an entry that exists
//!   replaces its category, source and quality;
//! - a [`Removal`] withdraws every entry present at that moment that matches all of its given
//!   fields (list, hash, id), in the index file and in the delta; a later add of a matching
//!   entry adds it again;
//! - allow-lists are lists with [`ListRole::Allow`]: adding to one is allow-listing.

pub mod live;
pub mod log;
mod refresh;

use std::collections::HashMap;

use crate::hashes::HashKind;
use crate::import::ImportedEntry;
use crate::index::{ListOptions, ListRole};

pub use self::refresh::{Refreshed, list_difference};

/// One change to the lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Declares a list with its settings; nothing happens if it exists with the same settings.
    DefineList(ListOptions),
    /// Adds an entry to a list, replacing an entry with the same kind, value and id.
    Add {
        /// The list's name.
        list: String,
        /// The entry.
        entry: ImportedEntry,
    },
    /// Withdraws entries.
    Remove(Removal),
}

/// Which entries a removal withdraws: those matching every field given.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Removal {
    /// Only in this list; `None` means in every list (allowed only with a hash).
    pub list: Option<String>,
    /// Only entries with this kind and value.
    pub hash: Option<(HashKind, Vec<u8>)>,
    /// Only entries with this id (ids belong to a list, so `list` is required).
    pub entry_id: Option<String>,
}

impl Removal {
    /// Every entry with this id in `list`, whatever its kinds.
    pub fn entry(list: impl Into<String>, id: impl Into<String>) -> Removal {
        Removal { list: Some(list.into()), hash: None, entry_id: Some(id.into()) }
    }

    /// Every entry with this hash, in `list` or in every list.
    pub fn hash(list: Option<String>, kind: HashKind, value: Vec<u8>) -> Removal {
        Removal { list, hash: Some((kind, value)), entry_id: None }
    }
}

/// Changes applied together: all of them, or after a crash none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// Position in the index directory's history; increases by one per batch.
    pub seq: u64,
    /// When the batch was written, in milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// Who made the change, if the caller said (an analyst, a token id, a feed).
    pub actor: Option<String>,
    /// The changes, applied in order.
    pub changes: Vec<Change>,
}

/// Why a change is refused before it is written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChangeError {
    /// The change names a list that does not exist.
    #[error("no list named {0:?} (create it: `hashsieve list add --create`, or `list refresh`)")]
    UnknownList(String),
    /// The list exists with other settings.
    #[error("list {0:?} exists with other settings; thresholds change by rebuilding the index")]
    ListConflict(String),
    /// The change is malformed.
    #[error("{0}")]
    Invalid(String),
    /// The batch's log record would be larger than the log allows.
    #[error(
        "the batch is {bytes} bytes, larger than a log record may be (256 MiB): split it, or \
         rebuild the index with `hashsieve index build`"
    )]
    TooLarge {
        /// The record's size.
        bytes: usize,
    },
}

/// Checks a change on its own: lengths, limits and required fields.
pub fn check_change(change: &Change) -> Result<(), ChangeError> {
    let invalid = |text: String| Err(ChangeError::Invalid(text));
    let check_str = |what: &str, text: Option<&str>| match text {
        Some(text) if text.len() > log::MAX_STRING => invalid(format!("{what} longer than 64 KiB")),
        Some("") if what == "list name" => invalid("a list name cannot be empty".into()),
        // Names go into metrics labels, logs, signatures and block pages: no line breaks, no
        // NULs, nothing a terminal interprets.
        Some(text) if what == "list name" && text.chars().any(char::is_control) => {
            invalid(format!("the list name {text:?} holds control characters"))
        }
        _ => Ok(()),
    };
    let check_hash = |kind: HashKind, value: &[u8]| {
        if value.len() == kind.value_len() {
            Ok(())
        } else {
            invalid(format!("a {kind} value is {} bytes, not {}", kind.value_len(), value.len()))
        }
    };
    match change {
        Change::DefineList(list) => {
            check_str("list name", Some(&list.name))?;
            if list.pdq_threshold > 256 || list.hamming_threshold > 64 {
                return invalid(format!("list {:?}: threshold wider than the hash", list.name));
            }
            Ok(())
        }
        Change::Add { list, entry } => {
            check_str("list name", Some(list))?;
            check_hash(entry.kind, &entry.value)?;
            if entry.quality == Some(255) {
                return invalid("quality 255 is reserved".into());
            }
            for (what, text) in [("id", &entry.id), ("category", &entry.category), ("source", &entry.source)]
            {
                check_str(what, text.as_deref())?;
            }
            Ok(())
        }
        Change::Remove(removal) => {
            check_str("list name", removal.list.as_deref())?;
            check_str("id", removal.entry_id.as_deref())?;
            if let Some((kind, value)) = &removal.hash {
                check_hash(*kind, value)?;
            }
            match removal {
                Removal { hash: None, entry_id: None, .. } => {
                    invalid("a removal names a hash, an entry id, or both".into())
                }
                Removal { list: None, entry_id: Some(_), .. } => {
                    invalid("an entry id belongs to a list: name the list".into())
                }
                _ => Ok(()),
            }
        }
    }
}

/// Checks a batch against the lists as they will be when it applies; returns the lists it
/// defines.
pub fn check_batch(
    lists: &HashMap<String, ListOptions>,
    changes: &[Change],
) -> Result<Vec<(String, ListOptions)>, ChangeError> {
    let mut defined: Vec<(String, ListOptions)> = Vec::new();
    let find = |name: &str, defined: &[(String, ListOptions)]| {
        lists.get(name).cloned().or_else(|| defined.iter().find(|(n, _)| n == name).map(|(_, o)| o.clone()))
    };
    for change in changes {
        check_change(change)?;
        match change {
            Change::DefineList(options) => match find(&options.name, &defined) {
                Some(existing) if existing != *options => {
                    return Err(ChangeError::ListConflict(options.name.clone()));
                }
                Some(_) => {}
                None => defined.push((options.name.clone(), options.clone())),
            },
            Change::Add { list, .. } => {
                find(list, &defined).ok_or_else(|| ChangeError::UnknownList(list.clone()))?;
            }
            Change::Remove(removal) => {
                if let Some(list) = &removal.list {
                    find(list, &defined).ok_or_else(|| ChangeError::UnknownList(list.clone()))?;
                }
            }
        }
    }
    Ok(defined)
}

/// A change as JSON, for command lines, HTTP APIs and logs: `{"op": "add", "list": …,
/// "kind": "md5", "value": "hex…", "id": …}`, `{"op": "remove", …}` (list, kind + value, id:
/// each optional, as in [`Removal`]), `{"op": "define", "list": …, "role": "allow", …}`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum ChangeJson {
    /// [`Change::DefineList`]; absent settings take their defaults.
    Define {
        /// The list's name.
        list: String,
        /// "block" (default) or "allow".
        #[serde(default)]
        role: ListRole,
        /// PDQ threshold (default 31).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pdq_threshold: Option<u32>,
        /// pHash/dHash/aHash threshold (default 8).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        hamming_threshold: Option<u32>,
        /// PhotoDNA distance.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        photodna: Option<crate::index::VectorDistance>,
    },
    /// [`Change::Add`].
    Add {
        /// The list's name.
        list: String,
        /// The hash kind.
        kind: HashKind,
        /// The value as the kind is written (hex; base64 for PhotoDNA also accepted).
        value: String,
        /// The entry's id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        /// Its category.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        category: Option<String>,
        /// Its source.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        source: Option<String>,
        /// Its PDQ quality.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        quality: Option<u8>,
    },
    /// [`Change::Remove`].
    Remove {
        /// Only in this list.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        list: Option<String>,
        /// The hash kind, with `value`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        kind: Option<HashKind>,
        /// The value, with `kind`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        value: Option<String>,
        /// Only entries with this id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
    },
}

impl ChangeJson {
    /// The change, with its value parsed; not yet checked against the lists.
    pub fn into_change(self) -> Result<Change, ChangeError> {
        let parse = |kind: HashKind, value: &str| {
            kind.parse_value(value).map_err(|err| ChangeError::Invalid(format!("{kind} value: {err}")))
        };
        let change = match self {
            ChangeJson::Define { list, role, pdq_threshold, hamming_threshold, photodna } => {
                let defaults = ListOptions::new(list);
                Change::DefineList(ListOptions {
                    role,
                    pdq_threshold: pdq_threshold.unwrap_or(defaults.pdq_threshold),
                    hamming_threshold: hamming_threshold.unwrap_or(defaults.hamming_threshold),
                    photodna,
                    ..defaults
                })
            }
            ChangeJson::Add { list, kind, value, id, category, source, quality } => {
                let value = parse(kind, &value)?;
                Change::Add { list, entry: ImportedEntry { kind, value, id, category, source, quality } }
            }
            ChangeJson::Remove { list, kind, value, id } => {
                let hash = match (kind, value) {
                    (Some(kind), Some(value)) => Some((kind, parse(kind, &value)?)),
                    (None, None) => None,
                    _ => {
                        return Err(ChangeError::Invalid(
                            "a removal by hash gives both kind and value".into(),
                        ));
                    }
                };
                Change::Remove(Removal { list, hash, entry_id: id })
            }
        };
        check_change(&change)?;
        Ok(change)
    }
}

impl From<&Change> for ChangeJson {
    fn from(change: &Change) -> ChangeJson {
        match change {
            Change::DefineList(options) => ChangeJson::Define {
                list: options.name.clone(),
                role: options.role,
                pdq_threshold: Some(options.pdq_threshold),
                hamming_threshold: Some(options.hamming_threshold),
                photodna: options.photodna,
            },
            Change::Add { list, entry } => ChangeJson::Add {
                list: list.clone(),
                kind: entry.kind,
                value: hex::encode(&entry.value),
                id: entry.id.clone(),
                category: entry.category.clone(),
                source: entry.source.clone(),
                quality: entry.quality,
            },
            Change::Remove(removal) => ChangeJson::Remove {
                list: removal.list.clone(),
                kind: removal.hash.as_ref().map(|(kind, _)| *kind),
                value: removal.hash.as_ref().map(|(_, value)| hex::encode(value)),
                id: removal.entry_id.clone(),
            },
        }
    }
}
