//! Export of illegal items to the hotline's own hash list, as core list changes.
//!
//! Every verdict given (by an analyst, through a group, or inherited) is numbered in the
//! store's verdict log. [`Triage::export`] reads the log past a list's cursor and produces, for
//! each item whose standing verdict is illegal and that the list does not yet have with that
//! category, one [`Change::Add`] per digest and one for the PDQ hash (if its quality is high
//! enough to match on); for each item the list has but whose verdict is no longer illegal (a
//! correction), a [`Change::Remove`] of its entries. Entries are identified by
//! [`entry_id`], so a correction withdraws exactly what was added.
//!
//! Exporting is at-least-once: [`Triage::mark_exported`] moves the cursor only after the caller
//! has applied the changes (e.g. with core's `Matcher::submit`); if it crashes in between, the
//! next export repeats them, and adding an entry that exists only replaces its category.
//! [`Triage::export_to`] does both steps with a [`Matcher`].

use std::collections::BTreeSet;

use hashsieve_core::delta::{Change, Removal};
use hashsieve_core::digest::DigestKind;
use hashsieve_core::hashes::HashKind;
use hashsieve_core::import::ImportedEntry;
use hashsieve_core::matcher::Matcher;
use redb::ReadableTable;

use crate::error::TriageError;
use crate::model::{EventKind, Item, ItemId};
use crate::store;
use crate::triage::Triage;

/// The `source` of exported list entries.
pub const EXPORT_SOURCE: &str = "hashsieve-triage";

/// The list entry id of an item's exported hashes: `triage:<item number>`.
pub fn entry_id(item: ItemId) -> String {
    format!("triage:{}", item.0)
}

/// One item in an export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportedItem {
    /// The item.
    pub item: ItemId,
    /// The category its entries are added with; none if they are withdrawn.
    pub category: Option<String>,
}

/// The changes that bring one list up to date with the verdicts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Export {
    list: String,
    through: u64,
    items: Vec<ExportedItem>,
    changes: Vec<Change>,
}

impl Export {
    /// The list.
    pub fn list(&self) -> &str {
        &self.list
    }

    /// The changes to apply, e.g. with `Matcher::submit`.
    pub fn changes(&self) -> &[Change] {
        &self.changes
    }

    /// The items added or withdrawn.
    pub fn items(&self) -> &[ExportedItem] {
        &self.items
    }

    /// Whether there is nothing to apply.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }
}

impl Triage {
    /// The changes that would bring `list` up to date, recording nothing. The list must exist
    /// in the index the changes are applied to.
    pub fn export(&self, list: &str) -> Result<Export, TriageError> {
        let (cursor, logged) = self.read_export_log(list)?;
        let through = logged.iter().map(|&(seq, _)| seq).max().unwrap_or(cursor);
        let items: BTreeSet<ItemId> = logged.into_iter().map(|(_, item)| item).collect();
        let mut export = Export { list: list.to_string(), through, items: Vec::new(), changes: Vec::new() };
        for id in items {
            let item = self.item(id)?;
            let category =
                item.verdict().and_then(|verdict| verdict.kind.illegal_category()).map(str::to_string);
            let exported = self.exported_category(list, id)?;
            if category == exported {
                continue;
            }
            match &category {
                Some(category) => export.changes.extend(self.additions(list, &item, category)),
                None => export.changes.push(Change::Remove(Removal::entry(list, entry_id(id)))),
            }
            export.items.push(ExportedItem { item: id, category });
        }
        Ok(export)
    }

    /// Records that `export`'s changes were applied, so that the next export does not repeat
    /// them. An export older than one already marked changes nothing.
    pub fn mark_exported(&mut self, export: &Export) -> Result<(), TriageError> {
        let now = hashsieve_core::clock::now_ms();
        self.write("mark exported", |tables| {
            let cursor = tables.export_cursors.get(export.list.as_str())?.map_or(0, |guard| guard.value());
            if export.through <= cursor {
                return Ok(());
            }
            for exported in &export.items {
                let key = (export.list.as_str(), exported.item.0);
                match &exported.category {
                    Some(category) => tables.exported.insert(key, category.as_str())?,
                    None => tables.exported.remove(key)?,
                };
                let what =
                    EventKind::Exported { list: export.list.clone(), category: exported.category.clone() };
                tables.add_event(exported.item, now, what)?;
            }
            tables.export_cursors.insert(export.list.as_str(), export.through)?;
            Ok(())
        })
    }

    /// Exports to `list` in `matcher`'s index directory (durably, as one batch by `actor`) and
    /// marks the export done. Returns what was exported.
    pub fn export_to(
        &mut self,
        matcher: &Matcher,
        list: &str,
        actor: Option<&str>,
    ) -> Result<Export, TriageError> {
        let export = self.export(list)?;
        if !export.is_empty() {
            matcher
                .submit(export.changes.clone(), actor)
                .map_err(|source| TriageError::Export { list: list.to_string(), source })?;
        }
        self.mark_exported(&export)?;
        Ok(export)
    }

    fn read_export_log(&self, list: &str) -> Result<(u64, Vec<(u64, ItemId)>), TriageError> {
        self.read("export", |txn| {
            let cursor = txn.open_table(store::EXPORT_CURSORS)?.get(list)?.map_or(0, |guard| guard.value());
            let mut logged = Vec::new();
            for entry in txn.open_table(store::VERDICT_LOG)?.range(cursor.saturating_add(1)..)? {
                let (seq, item) = entry?;
                logged.push((seq.value(), ItemId(item.value())));
            }
            Ok((cursor, logged))
        })
    }

    fn exported_category(&self, list: &str, item: ItemId) -> Result<Option<String>, TriageError> {
        self.read("export", |txn| {
            Ok(txn.open_table(store::EXPORTED)?.get((list, item.0))?.map(|guard| guard.value().to_string()))
        })
    }

    fn additions(&self, list: &str, item: &Item, category: &str) -> Vec<Change> {
        let entry = |kind: HashKind, value: &[u8]| ImportedEntry {
            kind,
            value: value.to_vec(),
            id: Some(entry_id(item.id)),
            category: Some(category.to_string()),
            source: Some(EXPORT_SOURCE.to_string()),
            quality: None,
        };
        let mut entries: Vec<ImportedEntry> =
            item.digests.iter().map(|(kind, value)| entry(hash_kind(kind), value)).collect();
        // A weak PDQ hash would match unrelated pictures; the digests still go.
        if let Some(pdq) = item.pdq.filter(|pdq| pdq.quality >= self.options().min_pdq_quality) {
            entries.push(ImportedEntry { quality: Some(pdq.quality), ..entry(HashKind::Pdq, &pdq.hash.0) });
        }
        entries.into_iter().map(|entry| Change::Add { list: list.to_string(), entry }).collect()
    }
}

fn hash_kind(kind: DigestKind) -> HashKind {
    match kind {
        DigestKind::Md5 => HashKind::Md5,
        DigestKind::Sha1 => HashKind::Sha1,
        DigestKind::Sha256 => HashKind::Sha256,
        DigestKind::Blake3 => HashKind::Blake3,
    }
}
