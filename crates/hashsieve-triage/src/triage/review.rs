//! Review: the queue of pending groups and their members' reports, the analysts' verdicts on
//! groups and items, splits, and the history and records of items, groups and reports.

use std::collections::BinaryHeap;

use super::takedown::{close_item_cases, follow_verdict};
use super::{KeypointOwner, OwnerStatus, Triage};
use crate::error::{Failure, TriageError};
use crate::model::{
    Assessment, Basis, Disposition, Event, EventKind, Group, GroupId, GroupPage, GroupReports, GroupState,
    GroupSummary, Grouping, HistoryOf, Item, ItemId, ItemState, MemberReport, ReportRecord, VerdictKind,
};
use crate::near::NearStatus;
use crate::store;
use crate::takedown::Confirmation;
use redb::ReadableTable;

/// The most bytes of preferences kept per analyst.
pub const MAX_PREFERENCES_BYTES: usize = 4096;

impl Triage {
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
                page.push(summary(&store::group(&groups, id)?, &items)?);
            }
            let next = if more { page.last().map(|summary| summary.group) } else { None };
            Ok(GroupPage { groups: page, next })
        })
    }

    /// Groups awaiting review, the largest first (one look decides the most items; ties in the
    /// order they were started): `limit` at most, after the first `skip`. Only the groups
    /// listed have their members read.
    pub fn largest_pending_groups(
        &self,
        skip: usize,
        limit: usize,
    ) -> Result<Vec<GroupSummary>, TriageError> {
        self.read("list the largest pending groups", |txn| {
            let pending = txn.open_table(store::PENDING_GROUPS)?;
            let groups = txn.open_table(store::GROUPS)?;
            let items = txn.open_table(store::ITEMS)?;
            let mut sizes = Vec::new();
            for entry in pending.iter()? {
                let group = store::group(&groups, GroupId(entry?.0.value()))?;
                sizes.push((std::cmp::Reverse(group.members.len()), group.id));
            }
            sizes.sort_unstable();
            sizes
                .into_iter()
                .skip(skip)
                .take(limit)
                .map(|(_, id)| summary(&store::group(&groups, id)?, &items))
                .collect()
        })
    }

    /// Groups awaiting review, those reported by the hotline's priority sources first: by the
    /// best-ranked source among all their members' reports (`sources` in order of priority),
    /// then in the order they were started; groups no priority source reported follow in that
    /// order. `limit` at most, after the first `skip`. Every pending report's source is read,
    /// only the groups listed have their members read.
    pub fn pending_groups_by_source(
        &self,
        sources: &[String],
        skip: usize,
        limit: usize,
    ) -> Result<Vec<GroupSummary>, TriageError> {
        /// The one field of a report record the ranking needs.
        #[derive(serde::Deserialize)]
        struct Source {
            source: String,
        }
        self.read("list pending groups by source", |txn| {
            let pending = txn.open_table(store::PENDING_GROUPS)?;
            let groups = txn.open_table(store::GROUPS)?;
            let items = txn.open_table(store::ITEMS)?;
            let item_reports = txn.open_table(store::ITEM_REPORTS)?;
            let reports = txn.open_table(store::REPORTS)?;
            let mut ranked = Vec::new();
            for entry in pending.iter()? {
                let group = store::group(&groups, GroupId(entry?.0.value()))?;
                let mut rank = sources.len();
                'members: for member in &group.members {
                    for entry in item_reports.range((member.0, "")..(member.0.saturating_add(1), ""))? {
                        let key = entry?.0;
                        let report = key.value().1;
                        let Some(record) = reports.get(report)? else { continue };
                        let Source { source } = store::decode(record.value(), "report", report)?;
                        if let Some(position) = sources.iter().position(|wanted| *wanted == source) {
                            rank = rank.min(position);
                            if rank == 0 {
                                break 'members;
                            }
                        }
                    }
                }
                ranked.push((rank, group.id));
            }
            ranked.sort_unstable();
            ranked
                .into_iter()
                .skip(skip)
                .take(limit)
                .map(|(_, id)| summary(&store::group(&groups, id)?, &items))
                .collect()
        })
    }

    /// The preferences `analyst` last saved ([`Triage::set_preferences`]); none if they never
    /// did. The store keeps them as given: their meaning is the application's.
    pub fn preferences(&self, analyst: &str) -> Result<Option<Vec<u8>>, TriageError> {
        self.read("read preferences", |txn| {
            let table = txn.open_table(store::PREFERENCES)?;
            Ok(table.get(analyst)?.map(|value| value.value().to_vec()))
        })
    }

    /// Keeps `analyst`'s preferences (at most [`MAX_PREFERENCES_BYTES`](crate::MAX_PREFERENCES_BYTES)), durably, in place of
    /// those saved before.
    pub fn set_preferences(&mut self, analyst: &str, preferences: &[u8]) -> Result<(), TriageError> {
        if preferences.len() > MAX_PREFERENCES_BYTES {
            return Err(TriageError::PreferencesTooLarge { bytes: preferences.len() });
        }
        self.write("save preferences", |tables| {
            tables.preferences.insert(analyst, preferences)?;
            Ok(())
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
        let now = hashsieve_core::clock::now_ms();
        let members = self.write("assess group", |tables| {
            let mut record = store::group(&tables.groups, group)?;
            if record.state != GroupState::Pending {
                return Err(TriageError::GroupNotPending(group).into());
            }
            let mut members: Vec<Item> =
                record.members.iter().map(|&id| store::item(&tables.items, id)).collect::<Result<_, _>>()?;
            let representative = representative(&members);
            let given = Assessment {
                kind: verdict,
                analyst: analyst.to_string(),
                at_ms: now,
                note: note.map(str::to_string),
                basis: Basis::Group { group, representative },
            };
            let confirmation = Confirmation::Assessed { analyst: analyst.to_string() };
            for item in &mut members {
                item.state = ItemState::Assessed;
                item.verdicts.push(given.clone());
                tables.put_item(item)?;
                tables.add_event(item.id, now, EventKind::Assessed { verdict: given.clone() })?;
                tables.log_verdict(item.id)?;
                let takedown = &self.options.takedown;
                follow_verdict(tables, takedown, item.id, &given.kind, analyst, confirmation.clone(), now)?;
            }
            record.state = GroupState::Assessed;
            tables.put_group(&record)?;
            tables.pending_groups.remove(group.0)?;
            Ok(record.members)
        })?;
        for &item in &members {
            self.near.set_status(item, NearStatus::Assessed);
            self.crops.set_status(KeypointOwner::Item(item), OwnerStatus::Item(NearStatus::Assessed));
        }
        Ok(members)
    }

    /// Takes back the verdict a group was given, returning its members to review in the same
    /// group: an analyst's undo of a verdict just given (or a supervisor's reopening). It is a
    /// correction, recorded as such: every member keeps the verdict in its history, gains a
    /// [`EventKind::Reopened`] event, and no longer has a standing verdict, so an export
    /// withdraws what the verdict exported and the takedown cases it opened are closed.
    ///
    /// Refused ([`TriageError::CannotReopen`]) unless every member still stands on the group's
    /// verdict (none was corrected since) and no later item inherited a member's verdict: a
    /// verdict others were decided by is corrected item by item, not undone. Returns the
    /// members.
    pub fn reopen_group(
        &mut self,
        group: GroupId,
        analyst: &str,
        note: &str,
    ) -> Result<Vec<ItemId>, TriageError> {
        let now = hashsieve_core::clock::now_ms();
        let members = self.write("reopen group", |tables| {
            let mut record = store::group(&tables.groups, group)?;
            let refused = |why: &str| TriageError::CannotReopen { group, why: why.to_string() };
            if record.state != GroupState::Assessed {
                return Err(refused("it was not assessed as a group").into());
            }
            let mut members: Vec<Item> =
                record.members.iter().map(|&id| store::item(&tables.items, id)).collect::<Result<_, _>>()?;
            let given_at = members
                .iter()
                .map(|member| match member.verdict() {
                    Some(Assessment { basis: Basis::Group { group: by, .. }, at_ms, .. }) if *by == group => {
                        Ok(*at_ms)
                    }
                    _ => Err(refused("a member's verdict was corrected since")),
                })
                .collect::<Result<Vec<u64>, _>>()?;
            let given_at = given_at.into_iter().min().unwrap_or(now);
            // Items are numbered in order of creation: those made since the verdict are the
            // last ones, and only they can have inherited it.
            for entry in tables.items.iter()?.rev() {
                let (key, bytes) = entry?;
                let later: Item = store::decode(bytes.value(), "item", key.value())?;
                if later.created_ms < given_at {
                    break;
                }
                let inherited = later.verdicts.iter().any(|verdict| {
                    matches!(verdict.basis, Basis::Inherited { from, .. } if record.members.contains(&from))
                });
                if inherited {
                    return Err(refused(&format!("{} inherited its verdict since", later.id)).into());
                }
            }
            let closing = format!("verdict taken back by {analyst}: {note}");
            for item in &mut members {
                item.state = ItemState::Pending { group };
                tables.put_item(item)?;
                let what =
                    EventKind::Reopened { group, analyst: analyst.to_string(), note: note.to_string() };
                tables.add_event(item.id, now, what)?;
                tables.log_verdict(item.id)?;
                close_item_cases(tables, item.id, analyst, &closing, now)?;
            }
            record.state = GroupState::Pending;
            tables.put_group(&record)?;
            tables.pending_groups.insert(group.0, ())?;
            Ok(record.members)
        })?;
        for &item in &members {
            self.near.set_status(item, NearStatus::Pending(group));
            self.crops.set_status(KeypointOwner::Item(item), OwnerStatus::Item(NearStatus::Pending(group)));
        }
        Ok(members)
    }

    /// Moves `items` out of a pending group into a new pending group, when a reviewer finds
    /// they are not the same as the rest. Some members must stay.
    pub fn split_group(&mut self, group: GroupId, items: &[ItemId]) -> Result<GroupId, TriageError> {
        let now = hashsieve_core::clock::now_ms();
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
            self.crops
                .set_status(KeypointOwner::Item(item), OwnerStatus::Item(NearStatus::Pending(new_group)));
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
        let now = hashsieve_core::clock::now_ms();
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
            let given = Assessment {
                kind: verdict,
                analyst: analyst.to_string(),
                at_ms: now,
                note: note.map(str::to_string),
                basis: Basis::Direct,
            };
            record.state = ItemState::Assessed;
            record.verdicts.push(given.clone());
            tables.put_item(&record)?;
            tables.add_event(item, now, EventKind::Assessed { verdict: given.clone() })?;
            tables.log_verdict(item)?;
            let confirmation = Confirmation::Assessed { analyst: analyst.to_string() };
            follow_verdict(tables, &self.options.takedown, item, &given.kind, analyst, confirmation, now)?;
            Ok(())
        })?;
        self.near.set_status(item, NearStatus::Assessed);
        self.crops.set_status(KeypointOwner::Item(item), OwnerStatus::Item(NearStatus::Assessed));
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
                        (None, Disposition::Known { matches }) => {
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

    /// The reports of every member of a group, the earliest reported first (ties in report id
    /// order), `limit` at most, with how many there are in all. Every report is read to find the
    /// earliest, but only `limit` are held.
    pub fn group_reports(&self, id: GroupId, limit: usize) -> Result<GroupReports, TriageError> {
        self.read("read group reports", |txn| {
            let group = store::group(&txn.open_table(store::GROUPS)?, id)?;
            let item_reports = txn.open_table(store::ITEM_REPORTS)?;
            let reports = txn.open_table(store::REPORTS)?;
            // The latest of those kept on top, to give way to an earlier one.
            let mut earliest: BinaryHeap<(u64, String, ItemId, String)> = BinaryHeap::new();
            let mut total = 0;
            for &member in &group.members {
                for entry in item_reports.range((member.0, "")..(member.0.saturating_add(1), ""))? {
                    let report = entry?.0.value().1.to_string();
                    total += 1;
                    let record = store::report(&reports, &report)?.ok_or_else(|| TriageError::Missing {
                        what: "report of item",
                        key: format!("{report:?}"),
                    })?;
                    earliest.push((record.reported_ms, record.id, member, record.source));
                    if earliest.len() > limit {
                        earliest.pop();
                    }
                }
            }
            let reports = earliest
                .into_sorted_vec()
                .into_iter()
                .map(|(reported_ms, id, item, source)| MemberReport { id, source, reported_ms, item })
                .collect();
            Ok(GroupReports { reports, total })
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
}

/// A pending group as listed.
fn summary(group: &Group, items: &impl ReadableTable<u64, &'static [u8]>) -> Result<GroupSummary, Failure> {
    let members: Vec<Item> =
        group.members.iter().map(|&id| store::item(items, id)).collect::<Result<_, _>>()?;
    Ok(GroupSummary {
        group: group.id,
        representative: representative(&members),
        members: members.len(),
        oldest_report_ms: members.iter().map(|item| item.first_reported_ms).min().unwrap_or(0),
    })
}

/// The member to show for a group: the best PDQ quality (the clearest picture), then the
/// earliest.
pub fn representative(members: &[Item]) -> ItemId {
    members
        .iter()
        .max_by_key(|item| (item.pdq.map_or(0, |pdq| u16::from(pdq.quality) + 1), std::cmp::Reverse(item.id)))
        .map_or(ItemId(0), |item| item.id)
}
