//! [`Triage`]: the store, classification of reports, and the review actions.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use hashsieve_core::digest::DigestSet;
use hashsieve_core::index::DEFAULT_PDQ_THRESHOLD;
use hashsieve_core::keypoints::Keypoints;
use hashsieve_core::matcher::{
    DEFAULT_MIN_PDQ_QUALITY, Matcher, Outcome as ListOutcome, Verdict as ListVerdict,
};
use hashsieve_core::pdq::PdqHash;
use hashsieve_core::signals::{PdqMode, SignalOptions, Signals};
use redb::{Database, Durability, ReadTransaction, ReadableDatabase, ReadableTable, ReadableTableMetadata};

use crate::error::{Failure, TriageError};
use crate::listed::{self, ListedCopies, ListedCopy};
use crate::model::{
    Basis, Classification, Event, EventKind, Group, GroupId, GroupPage, GroupState, GroupSummary, Grouping,
    HistoryOf, Item, ItemId, ItemPdq, ItemState, ListMatch, MatchedBy, Outcome, Report, ReportRecord,
    Verdict, VerdictKind,
};
use crate::near::{NearStatus, NearTable};
use crate::reframed::ReframedTable;
use crate::store::{self, Tables};

/// What the keypoint table files: the store's items and its listed copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Filed {
    Item(ItemId),
    ListedCopy(u64),
}

/// What a filed keypoint set can give a query: an item's review status, or a listed copy's
/// list matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Standing {
    Item(NearStatus),
    ListedCopy,
}

/// The version of the store's tables and records; a file of another version is refused.
pub const FORMAT_VERSION: u64 = 1;

/// How reports are matched against what the store holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TriageOptions {
    /// Items whose PDQ hashes are within this many bits (of 256) are near-duplicates: a report
    /// inherits an assessed item's verdict, or joins a pending item's group. Default 31, core's
    /// PDQ default.
    pub pdq_threshold: u32,
    /// PDQ hashes of lower quality are too weak to match on, as in core's matcher: such items
    /// match by digest only. Default 50.
    pub min_pdq_quality: u8,
    /// Whether a perceptual-only hash-list match (core's `NearKnown`: PDQ within the list's
    /// threshold, 31 by default) confirms a report as known, and so does a keypoint match to a
    /// listed copy (see [`ListMatch::via_report`]). Default true: that is what a match is to
    /// every other client of the index, and the same trust triage gives its own assessed items,
    /// whose near-duplicates inherit their verdicts by the same threshold. False, for a hotline
    /// whose policy is that a person confirms every perceptual match to a list: such a report
    /// goes on through triage, the match kept on its item as a hint (`near_list_matches`). A
    /// false match is answered by the list's allow-list (core's suppression), not here.
    pub near_known_is_known: bool,
}

impl Default for TriageOptions {
    fn default() -> Self {
        TriageOptions {
            pdq_threshold: DEFAULT_PDQ_THRESHOLD,
            min_pdq_quality: DEFAULT_MIN_PDQ_QUALITY,
            near_known_is_known: true,
        }
    }
}

/// How many records the store holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Reports submitted (each id once).
    pub reports: u64,
    /// Items.
    pub items: u64,
    /// Groups awaiting review.
    pub pending_groups: u64,
    /// Listed copies kept: reported content a hash list matched, whose keypoints recognise
    /// crops of it (see [`ListMatch::via_report`]).
    pub listed_copies: u64,
}

/// The verdict memory and review queue of one hotline, in one database file.
///
/// Reads take `&self`; writes take `&mut self` and are durable when they return. The file is
/// locked: one `Triage` per file, in one process.
#[derive(Debug)]
pub struct Triage {
    db: Database,
    path: PathBuf,
    options: TriageOptions,
    near: NearTable,
    /// Items' and listed copies' keypoints, for reframed copies of either.
    reframed: ReframedTable<Filed, Standing>,
    /// Which list entries and contents have a listed copy.
    listed: ListedCopies,
}

impl Triage {
    /// Opens the store at `path`, creating it if it does not exist, and loads the PDQ hashes of
    /// its items for near search. After a crash, redb first recovers the last committed state.
    pub fn open(path: &Path, options: TriageOptions) -> Result<Triage, TriageError> {
        let db = Database::create(path)
            .map_err(|source| TriageError::Open { path: path.to_path_buf(), source })?;
        let mut triage = Triage {
            db,
            path: path.to_path_buf(),
            options,
            near: NearTable::new(),
            reframed: ReframedTable::default(),
            listed: ListedCopies::default(),
        };
        let found = triage.write("open", |tables| {
            let found = tables.meta.get(store::FORMAT_KEY)?.map(|guard| guard.value());
            if found.is_none() {
                tables.meta.insert(store::FORMAT_KEY, FORMAT_VERSION)?;
            }
            Ok(found)
        })?;
        if let Some(found) = found.filter(|&found| found != FORMAT_VERSION) {
            return Err(TriageError::Format { path: triage.path, found, expected: FORMAT_VERSION });
        }
        (triage.near, triage.reframed, triage.listed) =
            triage.read("load items and listed copies", |txn| {
                let items = txn.open_table(store::ITEMS)?;
                let keypoints = txn.open_table(store::KEYPOINTS)?;
                let (mut near, mut reframed) = (NearTable::new(), ReframedTable::default());
                for entry in items.iter()? {
                    let (key, value) = entry?;
                    let item: Item = store::decode(value.value(), "item", key.value())?;
                    triage.index_near(&mut near, &item);
                    if let Some(bytes) = keypoints.get(item.id.0)? {
                        let keypoints = parse_keypoints(bytes.value(), &item.id)?;
                        reframed.insert(Filed::Item(item.id), keypoints, Standing::Item(near_status(&item)));
                    }
                }
                let copies = txn.open_table(store::LISTED_COPIES)?;
                let keypoints = txn.open_table(store::LISTED_KEYPOINTS)?;
                let mut listed = ListedCopies::default();
                for entry in copies.iter()? {
                    let (key, value) = entry?;
                    let copy: ListedCopy = store::decode(value.value(), "listed copy", key.value())?;
                    let bytes = keypoints.get(copy.id)?.ok_or_else(|| TriageError::Missing {
                        what: "keypoints of listed copy",
                        key: copy.id.to_string(),
                    })?;
                    let owner = format!("listed copy {}", copy.id);
                    let keypoints = parse_keypoints(bytes.value(), &owner)?;
                    reframed.insert(Filed::ListedCopy(copy.id), keypoints, Standing::ListedCopy);
                    listed.insert(&copy);
                }
                Ok((near, reframed, listed))
            })?;
        Ok(triage)
    }

    /// The signals [`Triage::submit`] needs: every digest, PDQ with its eight rotations and
    /// mirror images, and keypoints. Compute them once and pass them to the core matcher too.
    pub fn signal_options() -> SignalOptions {
        SignalOptions {
            digests: DigestSet::ALL,
            pdq: PdqMode::Dihedral,
            keypoints: true,
            ..SignalOptions::default()
        }
    }

    /// The options the store was opened with.
    pub fn options(&self) -> &TriageOptions {
        &self.options
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What [`Triage::submit`] would do with this content, recording nothing.
    pub fn classify(&self, signals: &Signals, lists: &Matcher) -> Result<Classification, TriageError> {
        let listed = lists.check_signals(signals);
        self.read("classify", |txn| Ok(self.classify_in(txn, signals, &listed, lists)?.0))
    }

    /// Records a report and says what becomes of it: known from a hash list, previously
    /// assessed (the same bytes or a near-duplicate of an assessed item), or new and queued for
    /// review in a group. `lists` are the hash lists: `signals` are matched against them, and so
    /// are the hashes of a listed copy the content is recognised through (see
    /// [`ListMatch::via_report`]), so that only what the lists hold now counts.
    ///
    /// Idempotent by report id: a report id already recorded returns its first outcome and
    /// records nothing (unless its content differs: [`TriageError::ReportIdReused`]).
    pub fn submit(
        &mut self,
        report: &Report,
        signals: &Signals,
        lists: &Matcher,
    ) -> Result<Outcome, TriageError> {
        self.submit_with(report, signals, lists, Durability::Immediate)
    }

    /// [`Triage::submit`], committed with `durability`: passed down rather than kept in a
    /// field, so that a panic mid-batch cannot leave every later commit undurable.
    fn submit_with(
        &mut self,
        report: &Report,
        signals: &Signals,
        lists: &Matcher,
        durability: Durability,
    ) -> Result<Outcome, TriageError> {
        if report.id.is_empty() {
            return Err(TriageError::EmptyReportId);
        }
        if signals.digests.iter().next().is_none() {
            return Err(TriageError::NoDigest { report: report.id.clone() });
        }
        // Writes take `&mut self` and the file is locked, so nothing changes between this read
        // and the write below. A redelivery is answered from its record, unmatched.
        let (recorded, decided) = self.read("submit", |txn| {
            let recorded = store::report(&txn.open_table(store::REPORTS)?, &report.id)?;
            let decided = match recorded {
                Some(_) => None,
                None => {
                    let listed = &lists.check_signals(signals);
                    let (classification, through_copies) = self.classify_in(txn, signals, listed, lists)?;
                    Some((classification, hints(listed, through_copies)))
                }
            };
            Ok((recorded, decided))
        })?;
        if let Some(recorded) = recorded {
            if !store::same_content(&recorded.digests, &signals.digests) {
                return Err(TriageError::ReportIdReused { report: report.id.clone() });
            }
            return Ok(recorded.outcome);
        }
        let (classification, hints) = decided.expect("classified when not recorded");
        let copy = self.listed_copy_to_keep(signals, &classification);
        let now = now_ms();
        let (outcome, new_item, kept) = self.write_with("submit", durability, |tables| {
            let kept = match copy {
                Some((matches, keypoints)) => {
                    let copy = ListedCopy {
                        id: tables.new_listed_copy_id()?,
                        report: report.id.clone(),
                        matches,
                        digests: signals.digests.clone(),
                        pdq: listed::copy_pdq(signals),
                    };
                    tables.listed_copies.insert(copy.id, store::encode(&copy).as_slice())?;
                    tables.listed_keypoints.insert(copy.id, keypoints.to_bytes().as_slice())?;
                    Some((copy, keypoints))
                }
                None => None,
            };
            let (outcome, new_item) =
                record(tables, Submission { report, signals, hints, now }, classification)?;
            Ok((outcome, new_item, kept))
        })?;
        if let Some((copy, keypoints)) = kept {
            self.reframed.insert(Filed::ListedCopy(copy.id), keypoints, Standing::ListedCopy);
            self.listed.insert(&copy);
        }
        if let Some((item, status)) = new_item {
            if let Some(pdq) = signals.pdq.filter(|_| self.strong(signals)) {
                self.near.insert(item, &pdq.hash, status);
            }
            if let Some(keypoints) = &signals.keypoints {
                let stored = keypoints.clone().without_mirrored();
                self.reframed.insert(Filed::Item(item), stored, Standing::Item(status));
            }
        }
        Ok(outcome)
    }

    /// Submits reports one after another, each seeing the ones before it, as [`Triage::submit`]
    /// would, and makes them all durable with one fsync at the end instead of one each: what a
    /// queue consumer deciding a batch wants. Each report's outcome (or its own error, e.g. a
    /// reused id) is in the vector; the outer error means the final fsync failed, and then no
    /// outcome may be acted on as durable — a later successful write (any write) makes them so,
    /// and a crash before it loses them all, as if they had never been submitted.
    pub fn submit_all(
        &mut self,
        reports: &[(Report, Signals)],
        lists: &Matcher,
    ) -> Result<Vec<Result<Outcome, TriageError>>, TriageError> {
        let outcomes = reports
            .iter()
            .map(|(report, signals)| self.submit_with(report, signals, lists, Durability::None))
            .collect();
        // An immediate commit makes every undurable one before it durable.
        self.write("sync", |_| Ok(()))?;
        Ok(outcomes)
    }

    /// A page of groups awaiting review, in the order they were started, `limit` at most,
    /// starting after the group `after` (the previous page's [`GroupPage::next`]).
    pub fn pending_groups(&self, limit: usize, after: Option<GroupId>) -> Result<GroupPage, TriageError> {
        self.read("list pending groups", |txn| {
            let pending = txn.open_table(store::PENDING_GROUPS)?;
            let groups = txn.open_table(store::GROUPS)?;
            let items = txn.open_table(store::ITEMS)?;
            let start = after.map_or(0, |group| group.0.saturating_add(1));
            let mut page = Vec::new();
            let mut more = false;
            for entry in pending.range(start..)? {
                if page.len() == limit {
                    more = true;
                    break;
                }
                let id = GroupId(entry?.0.value());
                let group = store::group(&groups, id)?;
                let members: Vec<Item> =
                    group.members.iter().map(|&id| store::item(&items, id)).collect::<Result<_, _>>()?;
                let oldest_report_ms = members.iter().map(|item| item.first_reported_ms).min().unwrap_or(0);
                page.push(GroupSummary {
                    group: id,
                    representative: representative(&members),
                    members: members.len(),
                    oldest_report_ms,
                });
            }
            let next = if more { page.last().map(|summary| summary.group) } else { None };
            Ok(GroupPage { groups: page, next })
        })
    }

    /// Gives every member of a pending group the verdict, recording that they got it through
    /// the group (shown by its representative). Returns the members.
    pub fn assess_group(
        &mut self,
        group: GroupId,
        verdict: VerdictKind,
        analyst: &str,
        note: Option<&str>,
    ) -> Result<Vec<ItemId>, TriageError> {
        let now = now_ms();
        let members = self.write("assess group", |tables| {
            let mut record = store::group(&tables.groups, group)?;
            if record.state != GroupState::Pending {
                return Err(TriageError::GroupNotPending(group).into());
            }
            let mut members: Vec<Item> =
                record.members.iter().map(|&id| store::item(&tables.items, id)).collect::<Result<_, _>>()?;
            let representative = representative(&members);
            let given = Verdict {
                kind: verdict,
                analyst: analyst.to_string(),
                at_ms: now,
                note: note.map(str::to_string),
                basis: Basis::Group { group, representative },
            };
            for item in &mut members {
                item.state = ItemState::Assessed;
                item.verdicts.push(given.clone());
                tables.put_item(item)?;
                tables.add_event(item.id, now, EventKind::Assessed { verdict: given.clone() })?;
                tables.log_verdict(item.id)?;
            }
            record.state = GroupState::Assessed;
            tables.put_group(&record)?;
            tables.pending_groups.remove(group.0)?;
            Ok(record.members)
        })?;
        for &item in &members {
            self.near.set_status(item, NearStatus::Assessed);
            self.reframed.set_status(Filed::Item(item), Standing::Item(NearStatus::Assessed));
        }
        Ok(members)
    }

    /// Moves `items` out of a pending group into a new pending group, when a reviewer finds
    /// they are not the same as the rest. Some members must stay.
    pub fn split_group(&mut self, group: GroupId, items: &[ItemId]) -> Result<GroupId, TriageError> {
        let now = now_ms();
        let mut moving = items.to_vec();
        moving.sort_unstable();
        moving.dedup();
        let new_group = self.write("split group", |tables| {
            let mut record = store::group(&tables.groups, group)?;
            if record.state != GroupState::Pending {
                return Err(TriageError::GroupNotPending(group).into());
            }
            if let Some(&item) = moving.iter().find(|item| !record.members.contains(item)) {
                return Err(TriageError::NotInGroup { group, item }.into());
            }
            if moving.is_empty() || moving.len() == record.members.len() {
                let (moving, members) = (moving.len(), record.members.len());
                return Err(TriageError::BadSplit { group, moving, members }.into());
            }
            let id = tables.new_group_id()?;
            let members: Vec<ItemId> =
                record.members.iter().copied().filter(|m| moving.contains(m)).collect();
            record.members.retain(|member| !moving.contains(member));
            tables.put_group(&record)?;
            for &member in &members {
                let mut item = store::item(&tables.items, member)?;
                item.state = ItemState::Pending { group: id };
                tables.put_item(&item)?;
                let what = EventKind::Grouped { group: id, why: Grouping::Split { from: group } };
                tables.add_event(member, now, what)?;
            }
            let split =
                Group { id, members, state: GroupState::Pending, created_ms: now, split_from: Some(group) };
            tables.put_group(&split)?;
            tables.pending_groups.insert(id.0, ())?;
            Ok(id)
        })?;
        for &item in &moving {
            self.near.set_status(item, NearStatus::Pending(new_group));
            self.reframed.set_status(Filed::Item(item), Standing::Item(NearStatus::Pending(new_group)));
        }
        Ok(new_group)
    }

    /// Gives one item a verdict, taking it out of its group if it was pending. An item that
    /// was assessed gets the new verdict on top (a correction; its history keeps both).
    pub fn assess_item(
        &mut self,
        item: ItemId,
        verdict: VerdictKind,
        analyst: &str,
        note: Option<&str>,
    ) -> Result<(), TriageError> {
        let now = now_ms();
        self.write("assess item", |tables| {
            let mut record = store::item(&tables.items, item)?;
            if let ItemState::Pending { group } = record.state {
                let mut pending = store::group(&tables.groups, group)?;
                pending.members.retain(|&member| member != item);
                if pending.members.is_empty() {
                    pending.state = GroupState::Emptied;
                    tables.pending_groups.remove(group.0)?;
                }
                tables.put_group(&pending)?;
            }
            let given = Verdict {
                kind: verdict,
                analyst: analyst.to_string(),
                at_ms: now,
                note: note.map(str::to_string),
                basis: Basis::Direct,
            };
            record.state = ItemState::Assessed;
            record.verdicts.push(given.clone());
            tables.put_item(&record)?;
            tables.add_event(item, now, EventKind::Assessed { verdict: given })?;
            tables.log_verdict(item)?;
            Ok(())
        })?;
        self.near.set_status(item, NearStatus::Assessed);
        self.reframed.set_status(Filed::Item(item), Standing::Item(NearStatus::Assessed));
        Ok(())
    }

    /// The history of a report (its item's, or for known content the report alone) or of an
    /// item, oldest first.
    pub fn history(&self, of: HistoryOf<'_>) -> Result<Vec<Event>, TriageError> {
        self.read("history", |txn| {
            let item = match of {
                HistoryOf::Item(item) => item,
                HistoryOf::Report(id) => {
                    let report = store::report(&txn.open_table(store::REPORTS)?, id)?
                        .ok_or_else(|| TriageError::UnknownReport(id.to_string()))?;
                    match (report.item, report.outcome) {
                        (Some(item), _) => item,
                        (None, Outcome::Known { matches }) => {
                            let what = EventKind::Known { report: report.id, source: report.source, matches };
                            return Ok(vec![Event { at_ms: report.received_ms, item: None, what }]);
                        }
                        (None, _) => {
                            return Err(TriageError::Missing {
                                what: "item of report",
                                key: format!("{id:?}"),
                            }
                            .into());
                        }
                    }
                }
            };
            store::item(&txn.open_table(store::ITEMS)?, item)?;
            let events = txn.open_table(store::EVENTS)?;
            let mut out = Vec::new();
            for entry in events.range((item.0, 0)..=(item.0, u64::MAX))? {
                let (key, value) = entry?;
                let (item, seq) = key.value();
                out.push(store::decode(value.value(), "event", format!("{item}/{seq}"))?);
            }
            Ok(out)
        })
    }

    /// An item.
    pub fn item(&self, id: ItemId) -> Result<Item, TriageError> {
        self.read("read item", |txn| store::item(&txn.open_table(store::ITEMS)?, id))
    }

    /// The ids of every report of an item, in id order.
    pub fn reports_of(&self, id: ItemId) -> Result<Vec<String>, TriageError> {
        self.read("read item reports", |txn| {
            store::item(&txn.open_table(store::ITEMS)?, id)?;
            let table = txn.open_table(store::ITEM_REPORTS)?;
            let mut out = Vec::new();
            for entry in table.range((id.0, "")..(id.0.saturating_add(1), ""))? {
                out.push(entry?.0.value().1.to_string());
            }
            Ok(out)
        })
    }

    /// A group.
    pub fn group(&self, id: GroupId) -> Result<Group, TriageError> {
        self.read("read group", |txn| store::group(&txn.open_table(store::GROUPS)?, id))
    }

    /// A report as recorded.
    pub fn report(&self, id: &str) -> Result<ReportRecord, TriageError> {
        self.read("read report", |txn| {
            Ok(store::report(&txn.open_table(store::REPORTS)?, id)?
                .ok_or_else(|| TriageError::UnknownReport(id.to_string()))?)
        })
    }

    /// How many reports, items and pending groups the store holds.
    pub fn counts(&self) -> Result<Counts, TriageError> {
        self.read("count", |txn| {
            Ok(Counts {
                reports: txn.open_table(store::REPORTS)?.len()?,
                items: txn.open_table(store::ITEMS)?.len()?,
                pending_groups: txn.open_table(store::PENDING_GROUPS)?.len()?,
                listed_copies: txn.open_table(store::LISTED_COPIES)?.len()?,
            })
        })
    }

    /// The lists' matches, now, of a listed copy's hashes (none if its entries were removed or
    /// allowed since), marked with the copy's report.
    fn listed_copy_matches(
        &self,
        txn: &ReadTransaction,
        copy: u64,
        lists: &Matcher,
    ) -> Result<Vec<ListMatch>, Failure> {
        let copies = txn.open_table(store::LISTED_COPIES)?;
        let bytes = copies
            .get(copy)?
            .ok_or_else(|| TriageError::Missing { what: "listed copy", key: copy.to_string() })?;
        let copy: ListedCopy = store::decode(bytes.value(), "listed copy", copy)?;
        let now = lists.check_signals(&copy.signals());
        let via = |found: &hashsieve_core::matcher::Match| ListMatch {
            via_report: Some(copy.report.clone()),
            ..ListMatch::from(found)
        };
        Ok(now.matches.iter().filter(|found| found.suppressed_by.is_none()).map(via).collect())
    }

    /// What to keep as a listed copy of a report about to be recorded: content a list matched
    /// directly (not through a copy), with keypoints, that covers a list entry or content no
    /// copy covers yet.
    fn listed_copy_to_keep(
        &self,
        signals: &Signals,
        classification: &Classification,
    ) -> Option<(Vec<ListMatch>, Keypoints)> {
        let Classification::Known { matches } = classification else { return None };
        if matches.is_empty() || matches.iter().any(|found| found.via_report.is_some()) {
            return None;
        }
        let keypoints = signals.keypoints.as_ref().filter(|set| !set.is_empty())?;
        let content = listed::content_key(&signals.digests)?;
        self.listed.wanted(matches, &content).then(|| (matches.clone(), keypoints.clone().without_mirrored()))
    }

    /// The classification, and the list matches found through a listed copy that did not make
    /// the content known (a hint).
    fn classify_in(
        &self,
        txn: &ReadTransaction,
        signals: &Signals,
        listed: &ListVerdict,
        lists: &Matcher,
    ) -> Result<(Classification, Vec<ListMatch>), Failure> {
        let known = match listed.outcome {
            ListOutcome::Known => true,
            ListOutcome::NearKnown => self.options.near_known_is_known,
            ListOutcome::Unknown => false,
        };
        if known {
            let matches = listed.matches.iter().filter(|m| m.suppressed_by.is_none()).map(ListMatch::from);
            return Ok((Classification::Known { matches: matches.collect() }, Vec::new()));
        }
        let items = txn.open_table(store::ITEMS)?;
        if let Some(item) =
            store::item_by_digests(&txn.open_table(store::DIGESTS)?, &items, &signals.digests)?
        {
            let classification = match (item.state, item.verdicts.last()) {
                (ItemState::Pending { group }, _) => {
                    Classification::Pending { item: item.id, group, distance: 0, how: MatchedBy::ExactDigest }
                }
                (ItemState::Assessed, Some(verdict)) => Classification::PreviouslyAssessed {
                    item: item.id,
                    verdict: verdict.clone(),
                    distance: 0,
                    how: MatchedBy::ExactDigest,
                },
                (ItemState::Assessed, None) => {
                    return Err(
                        TriageError::Missing { what: "verdict of item", key: item.id.0.to_string() }.into()
                    );
                }
            };
            return Ok((classification, Vec::new()));
        }
        let queries = self.pdq_queries(signals).unwrap_or_default();
        // Nearest first, ties to the older item. An assessed item wins over a nearer pending one:
        // its verdict saves a review.
        let hits = self.near.within(&queries, self.options.pdq_threshold);
        if let Some(hit) = hits.iter().find(|hit| hit.status == NearStatus::Assessed) {
            let item = store::item(&items, hit.item)?;
            let verdict = item.verdict().ok_or_else(|| TriageError::Missing {
                what: "verdict of item",
                key: hit.item.0.to_string(),
            })?;
            let classification = Classification::PreviouslyAssessed {
                item: hit.item,
                verdict: verdict.clone(),
                distance: hit.distance,
                how: MatchedBy::Pdq,
            };
            return Ok((classification, Vec::new()));
        }
        if let Some((hit, group)) = hits.iter().find_map(|hit| match hit.status {
            NearStatus::Pending(group) => Some((hit, group)),
            NearStatus::Assessed | NearStatus::Inherited => None,
        }) {
            let classification = Classification::Pending {
                item: hit.item,
                group,
                distance: hit.distance,
                how: MatchedBy::Pdq,
            };
            return Ok((classification, Vec::new()));
        }
        self.classify_reframed(txn, &items, signals, lists)
    }

    /// For content PDQ found nothing near, by keypoints (most agreeing first): a reframed copy
    /// of a listed copy the lists still match is known if `near_known_is_known` (else their
    /// matches are a hint); one of an assessed item inherits its verdict; one of a pending item
    /// joins its group.
    fn classify_reframed(
        &self,
        txn: &ReadTransaction,
        items: &ItemsTable,
        signals: &Signals,
        lists: &Matcher,
    ) -> Result<(Classification, Vec<ListMatch>), Failure> {
        let Some(query) = signals.keypoints.as_ref().filter(|set| !set.is_empty()) else {
            return Ok((Classification::New, Vec::new()));
        };
        let not_inherited = |standing| standing != Standing::Item(NearStatus::Inherited);
        let hits = self.reframed.same_picture(query, not_inherited);
        let mut through_copies = Vec::new();
        for hit in &hits {
            if let Filed::ListedCopy(copy) = hit.id {
                through_copies = self.listed_copy_matches(txn, copy, lists)?;
                if !through_copies.is_empty() {
                    break;
                }
            }
        }
        if self.options.near_known_is_known && !through_copies.is_empty() {
            return Ok((Classification::Known { matches: through_copies }, Vec::new()));
        }
        let item_hits: Vec<(ItemId, NearStatus)> = hits
            .iter()
            .filter_map(|hit| match (hit.id, hit.status) {
                (Filed::Item(item), Standing::Item(status)) => Some((item, status)),
                _ => None,
            })
            .collect();
        let Some(&(id, status)) = item_hits
            .iter()
            .find(|(_, status)| *status == NearStatus::Assessed)
            .or_else(|| item_hits.first())
        else {
            return Ok((Classification::New, through_copies));
        };
        let item = store::item(items, id)?;
        let distance = pdq_distance(signals, &item);
        let classification = match status {
            NearStatus::Pending(group) => {
                Classification::Pending { item: id, group, distance, how: MatchedBy::Keypoints }
            }
            NearStatus::Assessed | NearStatus::Inherited => Classification::PreviouslyAssessed {
                item: id,
                verdict: item
                    .verdict()
                    .ok_or_else(|| TriageError::Missing { what: "verdict of item", key: id.0.to_string() })?
                    .clone(),
                distance,
                how: MatchedBy::Keypoints,
            },
        };
        Ok((classification, through_copies))
    }

    /// The hashes to search with: the eight dihedral variants (or the hash alone, if they were
    /// not computed), unless the hash is too weak to match on.
    fn pdq_queries(&self, signals: &Signals) -> Option<Vec<PdqHash>> {
        let pdq = signals.pdq.filter(|_| self.strong(signals))?;
        Some(pdq.dihedral.map_or_else(|| vec![pdq.hash], |all| all.to_vec()))
    }

    fn strong(&self, signals: &Signals) -> bool {
        signals.pdq.is_some_and(|pdq| pdq.quality >= self.options.min_pdq_quality)
    }

    fn index_near(&self, near: &mut NearTable, item: &Item) {
        if let Some(pdq) = item.pdq.filter(|pdq| pdq.quality >= self.options.min_pdq_quality) {
            near.insert(item.id, &pdq.hash, near_status(item));
        }
    }

    pub(crate) fn read<T>(
        &self,
        during: &'static str,
        body: impl FnOnce(&ReadTransaction) -> Result<T, Failure>,
    ) -> Result<T, TriageError> {
        let run = || {
            let txn = self.db.begin_read()?;
            body(&txn)
        };
        run().map_err(|failure| failure.during(during))
    }

    /// Runs `body` in a write transaction and commits it with fsync before returning; if `body`
    /// fails, nothing is written.
    pub(crate) fn write<T>(
        &self,
        during: &'static str,
        body: impl FnOnce(&mut Tables<'_>) -> Result<T, Failure>,
    ) -> Result<T, TriageError> {
        self.write_with(during, Durability::Immediate, body)
    }

    /// [`Triage::write`] committed with `durability`: `Durability::None` (within
    /// [`Triage::submit_all`]) keeps the commit visible in this process, and the next
    /// immediate commit makes it durable.
    fn write_with<T>(
        &self,
        during: &'static str,
        durability: Durability,
        body: impl FnOnce(&mut Tables<'_>) -> Result<T, Failure>,
    ) -> Result<T, TriageError> {
        let run = || {
            let mut txn = self.db.begin_write()?;
            txn.set_durability(durability)?;
            let out = {
                let mut tables = Tables::open(&txn)?;
                body(&mut tables)?
            };
            txn.commit()?;
            Ok(out)
        };
        run().map_err(|failure: Failure| failure.during(during))
    }
}

type ItemsTable = redb::ReadOnlyTable<u64, &'static [u8]>;

/// The smallest distance between the query's PDQ variants and the item's hash; 256 if either
/// has none.
fn pdq_distance(signals: &Signals, item: &Item) -> u32 {
    let (Some(query), Some(stored)) = (signals.pdq, item.pdq) else { return 256 };
    let variants = query.dihedral.map_or_else(|| vec![query.hash], |all| all.to_vec());
    variants.iter().map(|variant| variant.hamming_distance(&stored.hash)).min().unwrap_or(256)
}

/// What a new or changed item is for near search.
fn near_status(item: &Item) -> NearStatus {
    match (item.state, item.verdicts.last().map(|verdict| &verdict.basis)) {
        (ItemState::Pending { group }, _) => NearStatus::Pending(group),
        (ItemState::Assessed, Some(Basis::Inherited { .. })) => NearStatus::Inherited,
        (ItemState::Assessed, _) => NearStatus::Assessed,
    }
}

/// The member to show for a group: the best PDQ quality (the clearest picture), then the
/// earliest.
fn representative(members: &[Item]) -> ItemId {
    members
        .iter()
        .max_by_key(|item| (item.pdq.map_or(0, |pdq| u16::from(pdq.quality) + 1), std::cmp::Reverse(item.id)))
        .map_or(ItemId(0), |item| item.id)
}

/// A new item to add to near search (PDQ and keypoints) once its write is committed.
type NewItem = (ItemId, NearStatus);

/// A report being recorded.
struct Submission<'a> {
    report: &'a Report,
    signals: &'a Signals,
    hints: Vec<ListMatch>,
    now: u64,
}

/// Writes what `submit` decided; returns the outcome and the new item to add to near search.
fn record(
    tables: &mut Tables<'_>,
    submission: Submission<'_>,
    classification: Classification,
) -> Result<(Outcome, Option<NewItem>), Failure> {
    let Submission { report, signals, hints, now } = submission;
    let submitted = EventKind::Submitted { report: report.id.clone(), source: report.source.clone() };
    let new_item = |tables: &mut Tables<'_>, state: ItemState, verdicts: Vec<Verdict>| {
        let item = Item {
            id: tables.new_item_id()?,
            first_reported_ms: report.reported_ms,
            created_ms: now,
            size: signals.size,
            digests: signals.digests.clone(),
            pdq: signals.pdq.map(|pdq| ItemPdq { hash: pdq.hash, quality: pdq.quality }),
            near_list_matches: hints.clone(),
            state,
            verdicts,
        };
        tables.put_item(&item)?;
        tables.put_digests(item.id, &item.digests)?;
        if let Some(keypoints) = signals.keypoints.as_ref().filter(|set| !set.is_empty()) {
            let stored = keypoints.clone().without_mirrored().to_bytes();
            tables.keypoints.insert(item.id.0, stored.as_slice())?;
        }
        tables.add_report(item.id, &report.id)?;
        tables.add_event(item.id, now, submitted.clone())?;
        Ok::<_, Failure>(item)
    };
    let near = |item: &Item| Some((item.id, near_status(item)));
    let (outcome, item, near) = match classification {
        Classification::Known { matches } => (Outcome::Known { matches }, None, None),
        Classification::PreviouslyAssessed { item, verdict, distance, how: MatchedBy::ExactDigest } => {
            tables.add_report(item, &report.id)?;
            tables.add_event(item, now, submitted.clone())?;
            let outcome = Outcome::PreviouslyAssessed {
                item,
                recorded: item,
                verdict,
                distance,
                how: MatchedBy::ExactDigest,
            };
            (outcome, Some(item), None)
        }
        Classification::PreviouslyAssessed {
            item: from,
            verdict,
            distance,
            how: how @ (MatchedBy::Pdq | MatchedBy::Keypoints),
        } => {
            let inherited = Verdict {
                kind: verdict.kind.clone(),
                analyst: verdict.analyst.clone(),
                at_ms: now,
                note: None,
                basis: Basis::Inherited { from, distance, how },
            };
            let item = new_item(tables, ItemState::Assessed, vec![inherited.clone()])?;
            tables.add_event(item.id, now, EventKind::Inherited { verdict: inherited })?;
            tables.log_verdict(item.id)?;
            let outcome =
                Outcome::PreviouslyAssessed { item: from, recorded: item.id, verdict, distance, how };
            (outcome, Some(item.id), near(&item))
        }
        Classification::Pending { item, group, how: MatchedBy::ExactDigest, .. } => {
            tables.add_report(item, &report.id)?;
            tables.add_event(item, now, submitted.clone())?;
            (Outcome::New { item, group }, Some(item), None)
        }
        Classification::Pending {
            item: nearest,
            group,
            distance,
            how: how @ (MatchedBy::Pdq | MatchedBy::Keypoints),
        } => {
            let item = new_item(tables, ItemState::Pending { group }, Vec::new())?;
            let mut joined = store::group(&tables.groups, group)?;
            joined.members.push(item.id);
            tables.put_group(&joined)?;
            let why = Grouping::NearMember { member: nearest, distance, how };
            tables.add_event(item.id, now, EventKind::Grouped { group, why })?;
            (Outcome::New { item: item.id, group }, Some(item.id), near(&item))
        }
        Classification::New => {
            let group = tables.new_group_id()?;
            let item = new_item(tables, ItemState::Pending { group }, Vec::new())?;
            let record = Group {
                id: group,
                members: vec![item.id],
                state: GroupState::Pending,
                created_ms: now,
                split_from: None,
            };
            tables.put_group(&record)?;
            tables.pending_groups.insert(group.0, ())?;
            tables.add_event(item.id, now, EventKind::Grouped { group, why: Grouping::Started })?;
            (Outcome::New { item: item.id, group }, Some(item.id), near(&item))
        }
    };
    let record = ReportRecord {
        id: report.id.clone(),
        source: report.source.clone(),
        reported_ms: report.reported_ms,
        received_ms: now,
        item,
        outcome: outcome.clone(),
        digests: signals.digests.clone(),
    };
    tables.put_report(&record)?;
    Ok((outcome, near))
}

/// The list matches that go with a report's item as a hint for the analyst: perceptual-only
/// matches that did not make it known, and those found through a listed copy.
fn hints(listed: &ListVerdict, through_copies: Vec<ListMatch>) -> Vec<ListMatch> {
    let perceptual = match listed.outcome {
        ListOutcome::NearKnown => {
            listed.matches.iter().filter(|m| m.suppressed_by.is_none()).map(ListMatch::from).collect()
        }
        ListOutcome::Known | ListOutcome::Unknown => Vec::new(),
    };
    [perceptual, through_copies].concat()
}

/// A stored keypoint set, parsed; `owner` names it in the error.
fn parse_keypoints(bytes: &[u8], owner: &dyn std::fmt::Display) -> Result<Keypoints, Failure> {
    Keypoints::from_bytes(bytes)
        .map_err(|source| TriageError::CorruptKeypoints { owner: owner.to_string(), source }.into())
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}
