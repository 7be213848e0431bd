//! The tables of the redb database and the records in them.
//!
//! | table | key | value |
//! |---|---|---|
//! | `meta` | name | `format` version, the next item, group and event numbers, verdict sequence, block list version |
//! | `reports` | report id | [`ReportRecord`] as JSON |
//! | `items` | item id | [`Item`] as JSON |
//! | `item_reports` | (item id, report id) | – : every report of an item |
//! | `digests` | digest kind code ‖ digest | item id: exact lookup |
//! | `groups` | group id | [`Group`] as JSON |
//! | `pending_groups` | group id | – : the review queue |
//! | `events` | (item id, event number) | [`Event`] as JSON |
//! | `verdict_log` | verdict sequence | item id: every verdict given, for export |
//! | `export_cursors` | list | the verdict sequence exported up to |
//! | `exported` | (list, item id) | the category the item was exported with |
//! | `keypoints` | item id | the item's keypoints ([`Keypoints::to_bytes`], without mirrored descriptors) |
//! | `listed_copies` | copy number | a listed copy (`listed::ListedCopy`) as JSON: reported content a list matched |
//! | `listed_keypoints` | copy number | the copy's keypoints, as in `keypoints` |
//! | `cases` | case id | a takedown [`Case`] as JSON |
//! | `case_keys` | (normalised URL, content key) | case id: one case per URL and content |
//! | `case_events` | (case id, event number) | [`CaseEvent`] as JSON: the case's history |
//! | `cases_due` | (due time, case id) | – : the re-check schedule of active cases |
//! | `notices_due` | (due time, case id) | – : cases at home whose notice is still to be delivered |
//! | `item_cases` | (item id, case id) | – : every case of an item, to close on a corrected verdict |
//! | `blocking` | (normalised URL, case id) | (confirmed at, abroad, whole host): every active case, what the block list is made of |
//! | `preferences` | analyst | the analyst's preferences, as the application that keeps them wrote them (the review page: JSON) |
//!
//! [`Keypoints::to_bytes`]: hashsieve_core::keypoints::Keypoints::to_bytes
//! [`Case`]: crate::takedown::Case
//! [`CaseEvent`]: crate::takedown::CaseEvent

use std::fmt::Display;

use hashsieve_core::digest::{DigestKind, Digests};
use redb::{ReadableTable, Table, TableDefinition, WriteTransaction};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Failure, TriageError};
use crate::model::{Event, EventKind, Group, GroupId, Item, ItemId, ReportRecord};
use crate::takedown::{Case, CaseEvent, CaseId};

pub(crate) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
pub(crate) const REPORTS: TableDefinition<&str, &[u8]> = TableDefinition::new("reports");
pub(crate) const ITEMS: TableDefinition<u64, &[u8]> = TableDefinition::new("items");
pub(crate) const ITEM_REPORTS: TableDefinition<(u64, &str), ()> = TableDefinition::new("item_reports");
pub(crate) const DIGESTS: TableDefinition<&[u8], u64> = TableDefinition::new("digests");
pub(crate) const GROUPS: TableDefinition<u64, &[u8]> = TableDefinition::new("groups");
pub(crate) const PENDING_GROUPS: TableDefinition<u64, ()> = TableDefinition::new("pending_groups");
pub(crate) const EVENTS: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("events");
pub(crate) const VERDICT_LOG: TableDefinition<u64, u64> = TableDefinition::new("verdict_log");
pub(crate) const EXPORT_CURSORS: TableDefinition<&str, u64> = TableDefinition::new("export_cursors");
pub(crate) const EXPORTED: TableDefinition<(&str, u64), &str> = TableDefinition::new("exported");
pub(crate) const KEYPOINTS: TableDefinition<u64, &[u8]> = TableDefinition::new("keypoints");
pub(crate) const LISTED_COPIES: TableDefinition<u64, &[u8]> = TableDefinition::new("listed_copies");
pub(crate) const LISTED_KEYPOINTS: TableDefinition<u64, &[u8]> = TableDefinition::new("listed_keypoints");

pub(crate) const CASES: TableDefinition<u64, &[u8]> = TableDefinition::new("cases");
pub(crate) const CASE_KEYS: TableDefinition<(&str, &str), u64> = TableDefinition::new("case_keys");
pub(crate) const CASE_EVENTS: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("case_events");
pub(crate) const CASES_DUE: TableDefinition<(u64, u64), ()> = TableDefinition::new("cases_due");
pub(crate) const NOTICES_DUE: TableDefinition<(u64, u64), ()> = TableDefinition::new("notices_due");
pub(crate) const ITEM_CASES: TableDefinition<(u64, u64), ()> = TableDefinition::new("item_cases");
pub(crate) const BLOCKING: TableDefinition<(&str, u64), (u64, bool, bool)> = TableDefinition::new("blocking");
pub(crate) const PREFERENCES: TableDefinition<&str, &[u8]> = TableDefinition::new("preferences");

pub(crate) const FORMAT_KEY: &str = "format";
const NEXT_ITEM: &str = "next_item";
const NEXT_GROUP: &str = "next_group";
const NEXT_EVENT: &str = "next_event";
const NEXT_VERDICT: &str = "next_verdict";
const NEXT_LISTED_COPY: &str = "next_listed_copy";
const NEXT_CASE: &str = "next_case";
const NEXT_CASE_EVENT: &str = "next_case_event";
/// Counts the changes to `blocking`: a copy of the block list made at one count is current
/// while the count is the same (and no grace period has ended).
pub(crate) const BLOCK_LIST_VERSION: &str = "block_list_version";

/// Every table, opened in one write transaction.
pub(crate) struct Tables<'t> {
    pub(crate) meta: Table<'t, &'static str, u64>,
    pub(crate) reports: Table<'t, &'static str, &'static [u8]>,
    pub(crate) items: Table<'t, u64, &'static [u8]>,
    pub(crate) item_reports: Table<'t, (u64, &'static str), ()>,
    pub(crate) digests: Table<'t, &'static [u8], u64>,
    pub(crate) groups: Table<'t, u64, &'static [u8]>,
    pub(crate) pending_groups: Table<'t, u64, ()>,
    pub(crate) events: Table<'t, (u64, u64), &'static [u8]>,
    pub(crate) verdict_log: Table<'t, u64, u64>,
    pub(crate) export_cursors: Table<'t, &'static str, u64>,
    pub(crate) exported: Table<'t, (&'static str, u64), &'static str>,
    pub(crate) keypoints: Table<'t, u64, &'static [u8]>,
    pub(crate) listed_copies: Table<'t, u64, &'static [u8]>,
    pub(crate) listed_keypoints: Table<'t, u64, &'static [u8]>,
    pub(crate) cases: Table<'t, u64, &'static [u8]>,
    pub(crate) case_keys: Table<'t, (&'static str, &'static str), u64>,
    pub(crate) case_events: Table<'t, (u64, u64), &'static [u8]>,
    pub(crate) cases_due: Table<'t, (u64, u64), ()>,
    pub(crate) item_cases: Table<'t, (u64, u64), ()>,
    pub(crate) notices_due: Table<'t, (u64, u64), ()>,
    pub(crate) blocking: Table<'t, (&'static str, u64), (u64, bool, bool)>,
    pub(crate) preferences: Table<'t, &'static str, &'static [u8]>,
}

impl<'t> Tables<'t> {
    pub(crate) fn open(txn: &'t WriteTransaction) -> Result<Tables<'t>, Failure> {
        Ok(Tables {
            meta: txn.open_table(META)?,
            reports: txn.open_table(REPORTS)?,
            items: txn.open_table(ITEMS)?,
            item_reports: txn.open_table(ITEM_REPORTS)?,
            digests: txn.open_table(DIGESTS)?,
            groups: txn.open_table(GROUPS)?,
            pending_groups: txn.open_table(PENDING_GROUPS)?,
            events: txn.open_table(EVENTS)?,
            verdict_log: txn.open_table(VERDICT_LOG)?,
            export_cursors: txn.open_table(EXPORT_CURSORS)?,
            exported: txn.open_table(EXPORTED)?,
            keypoints: txn.open_table(KEYPOINTS)?,
            listed_copies: txn.open_table(LISTED_COPIES)?,
            listed_keypoints: txn.open_table(LISTED_KEYPOINTS)?,
            cases: txn.open_table(CASES)?,
            case_keys: txn.open_table(CASE_KEYS)?,
            case_events: txn.open_table(CASE_EVENTS)?,
            cases_due: txn.open_table(CASES_DUE)?,
            item_cases: txn.open_table(ITEM_CASES)?,
            notices_due: txn.open_table(NOTICES_DUE)?,
            blocking: txn.open_table(BLOCKING)?,
            preferences: txn.open_table(PREFERENCES)?,
        })
    }

    fn next(&mut self, counter: &'static str) -> Result<u64, Failure> {
        let next = self.meta.get(counter)?.map_or(1, |guard| guard.value());
        self.meta.insert(counter, next + 1)?;
        Ok(next)
    }

    pub(crate) fn new_item_id(&mut self) -> Result<ItemId, Failure> {
        Ok(ItemId(self.next(NEXT_ITEM)?))
    }

    pub(crate) fn new_group_id(&mut self) -> Result<GroupId, Failure> {
        Ok(GroupId(self.next(NEXT_GROUP)?))
    }

    pub(crate) fn new_listed_copy_id(&mut self) -> Result<u64, Failure> {
        self.next(NEXT_LISTED_COPY)
    }

    pub(crate) fn new_case_id(&mut self) -> Result<CaseId, Failure> {
        Ok(CaseId(self.next(NEXT_CASE)?))
    }

    /// Writes a case, and its row in `blocking`: there while the case is active, with what
    /// the block list needs of it; a change to that row counts a new block list version.
    pub(crate) fn put_case(&mut self, case: &Case) -> Result<(), Failure> {
        self.cases.insert(case.id.0, encode(case).as_slice())?;
        let key = (case.url.as_str(), case.id.0);
        let changed = if case.state.is_active() {
            let row = (case.confirmed_ms, case.abroad, case.whole_host);
            self.blocking.insert(key, row)?.map(|before| before.value()) != Some(row)
        } else {
            self.blocking.remove(key)?.is_some()
        };
        if changed {
            self.next(BLOCK_LIST_VERSION)?;
        }
        Ok(())
    }

    /// Fills `blocking` from the cases: a store of format 1 had no such table.
    pub(crate) fn index_block_list(&mut self) -> Result<(), Failure> {
        let mut cases = Vec::new();
        for entry in self.cases.iter()? {
            let (key, value) = entry?;
            cases.push(decode::<Case>(value.value(), "case", key.value())?);
        }
        for case in &cases {
            self.put_case(case)?;
        }
        Ok(())
    }

    pub(crate) fn add_case_event(&mut self, case: CaseId, event: &CaseEvent) -> Result<(), Failure> {
        let seq = self.next(NEXT_CASE_EVENT)?;
        self.case_events.insert((case.0, seq), encode(event).as_slice())?;
        Ok(())
    }

    pub(crate) fn put_item(&mut self, item: &Item) -> Result<(), Failure> {
        self.items.insert(item.id.0, encode(item).as_slice())?;
        Ok(())
    }

    pub(crate) fn put_group(&mut self, group: &Group) -> Result<(), Failure> {
        self.groups.insert(group.id.0, encode(group).as_slice())?;
        Ok(())
    }

    pub(crate) fn put_report(&mut self, report: &ReportRecord) -> Result<(), Failure> {
        self.reports.insert(report.id.as_str(), encode(report).as_slice())?;
        Ok(())
    }

    /// Records that `item` has these digests, unless another item already has one of them (a
    /// collision in a weak digest: the first item keeps it).
    pub(crate) fn put_digests(&mut self, item: ItemId, digests: &Digests) -> Result<(), Failure> {
        for (kind, value) in digests.iter() {
            let key = digest_key(kind, value);
            if self.digests.get(key.as_slice())?.is_none() {
                self.digests.insert(key.as_slice(), item.0)?;
            }
        }
        Ok(())
    }

    pub(crate) fn add_report(&mut self, item: ItemId, report: &str) -> Result<(), Failure> {
        self.item_reports.insert((item.0, report), ())?;
        Ok(())
    }

    pub(crate) fn add_event(&mut self, item: ItemId, at_ms: u64, what: EventKind) -> Result<(), Failure> {
        let seq = self.next(NEXT_EVENT)?;
        let event = Event { at_ms, item: Some(item), what };
        self.events.insert((item.0, seq), encode(&event).as_slice())?;
        Ok(())
    }

    /// Notes that `item`'s verdict changed, for the next export.
    pub(crate) fn log_verdict(&mut self, item: ItemId) -> Result<(), Failure> {
        let seq = self.next(NEXT_VERDICT)?;
        self.verdict_log.insert(seq, item.0)?;
        Ok(())
    }
}

pub(crate) fn digest_code(kind: DigestKind) -> u8 {
    match kind {
        DigestKind::Md5 => 1,
        DigestKind::Sha1 => 2,
        DigestKind::Sha256 => 3,
        DigestKind::Blake3 => 4,
    }
}

pub(crate) fn digest_key(kind: DigestKind, value: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + value.len());
    key.push(digest_code(kind));
    key.extend_from_slice(value);
    key
}

/// Whether two digest sets name the same bytes: they share a kind, and agree on every kind
/// both have.
pub(crate) fn same_content(a: &Digests, b: &Digests) -> bool {
    let mut shared = false;
    for (kind, value) in a.iter() {
        if let Some(other) = b.get(kind) {
            if other != value {
                return false;
            }
            shared = true;
        }
    }
    shared
}

pub(crate) fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // The records are structs, enums, strings and numbers, with string map keys: always JSON.
    serde_json::to_vec(value).expect("records serialise to JSON")
}

pub(crate) fn decode<T: DeserializeOwned>(
    bytes: &[u8],
    what: &'static str,
    key: impl Display,
) -> Result<T, TriageError> {
    serde_json::from_slice(bytes).map_err(|source| TriageError::Corrupt {
        what,
        key: key.to_string(),
        source,
    })
}

pub(crate) fn get_item(
    table: &impl ReadableTable<u64, &'static [u8]>,
    id: ItemId,
) -> Result<Option<Item>, Failure> {
    match table.get(id.0)? {
        Some(guard) => Ok(Some(decode(guard.value(), "item", id.0)?)),
        None => Ok(None),
    }
}

pub(crate) fn item(table: &impl ReadableTable<u64, &'static [u8]>, id: ItemId) -> Result<Item, Failure> {
    get_item(table, id)?.ok_or(Failure::Triage(TriageError::UnknownItem(id)))
}

pub(crate) fn group(table: &impl ReadableTable<u64, &'static [u8]>, id: GroupId) -> Result<Group, Failure> {
    match table.get(id.0)? {
        Some(guard) => Ok(decode(guard.value(), "group", id.0)?),
        None => Err(TriageError::UnknownGroup(id).into()),
    }
}

pub(crate) fn report(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    id: &str,
) -> Result<Option<ReportRecord>, Failure> {
    match table.get(id)? {
        Some(guard) => Ok(Some(decode(guard.value(), "report", format!("{id:?}"))?)),
        None => Ok(None),
    }
}

/// The item with the same bytes as `digests`, if there is one.
pub(crate) fn item_by_digests(
    digests_table: &impl ReadableTable<&'static [u8], u64>,
    items: &impl ReadableTable<u64, &'static [u8]>,
    digests: &Digests,
) -> Result<Option<Item>, Failure> {
    // Strongest first: a weak digest finds an item only if no strong one contradicts it.
    for kind in [DigestKind::Blake3, DigestKind::Sha256, DigestKind::Sha1, DigestKind::Md5] {
        let Some(value) = digests.get(kind) else { continue };
        let Some(id) = digests_table.get(digest_key(kind, value).as_slice())?.map(|guard| guard.value())
        else {
            continue;
        };
        let found = get_item(items, ItemId(id))?
            .ok_or_else(|| TriageError::Missing { what: "item", key: id.to_string() })?;
        if same_content(&found.digests, digests) {
            return Ok(Some(found));
        }
    }
    Ok(None)
}

pub(crate) fn case(table: &impl ReadableTable<u64, &'static [u8]>, id: CaseId) -> Result<Case, Failure> {
    match table.get(id.0)? {
        Some(guard) => Ok(decode(guard.value(), "case", id.0)?),
        None => Err(TriageError::UnknownCase(id).into()),
    }
}
