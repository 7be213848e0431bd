//! Submission: recording a report, its item, group, listed copy and events in one
//! transaction, and adding what it made to near search once that is committed.

use hashsieve_core::keypoints::Keypoints;
use hashsieve_core::matcher::{MatchOutcome, MatchVerdict, Matcher};
use hashsieve_core::signals::Signals;
use redb::Durability;

use super::takedown::{Opening, open_case};
use super::{KeypointOwner, OwnerStatus, Triage, near_status};
use crate::error::{Failure, TriageError};
use crate::listed::{self, ListedCopy};
use crate::model::{
    Assessment, Basis, Classification, Disposition, EventKind, Group, GroupState, Grouping, Item, ItemId,
    ItemPdq, ItemState, ListMatch, MatchedBy, Report, ReportRecord,
};
use crate::near::NearStatus;
use crate::store::{self, Tables};
use crate::takedown::{Confirmation, TakedownOptions};

impl Triage {
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
    ) -> Result<Disposition, TriageError> {
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
    ) -> Result<Disposition, TriageError> {
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
        let now = hashsieve_core::clock::now_ms();
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
            let takedown = &self.options.takedown;
            let (outcome, new_item) =
                record(tables, Submission { report, signals, hints, now, takedown }, classification)?;
            Ok((outcome, new_item, kept))
        })?;
        if let Some((copy, keypoints)) = kept {
            self.crops.insert(KeypointOwner::ListedCopy(copy.id), keypoints, OwnerStatus::ListedCopy);
            self.listed.insert(&copy);
        }
        if let Some((item, status)) = new_item {
            if let Some(pdq) = signals.pdq.filter(|_| self.strong(signals)) {
                self.near.insert(item, &pdq.hash, status);
            }
            if let Some(keypoints) = &signals.keypoints {
                let stored = keypoints.clone().without_mirrored();
                self.crops.insert(KeypointOwner::Item(item), stored, OwnerStatus::Item(status));
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
    ) -> Result<Vec<Result<Disposition, TriageError>>, TriageError> {
        let outcomes = reports
            .iter()
            .map(|(report, signals)| self.submit_with(report, signals, lists, Durability::None))
            .collect();
        // An immediate commit makes every undurable one before it durable.
        self.write("sync", |_| Ok(()))?;
        Ok(outcomes)
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
}

/// A new item to add to near search (PDQ and keypoints) once its write is committed.
type NewItem = (ItemId, NearStatus);

/// A report being recorded.
struct Submission<'a> {
    report: &'a Report,
    signals: &'a Signals,
    hints: Vec<ListMatch>,
    now: u64,
    takedown: &'a TakedownOptions,
}

/// Writes what `submit` decided; returns the outcome and the new item to add to near search.
fn record(
    tables: &mut Tables<'_>,
    submission: Submission<'_>,
    classification: Classification,
) -> Result<(Disposition, Option<NewItem>), Failure> {
    let Submission { report, signals, hints, now, takedown } = submission;
    let submitted = EventKind::Submitted { report: report.id.clone(), source: report.source.clone() };
    let new_item = |tables: &mut Tables<'_>, state: ItemState, verdicts: Vec<Assessment>| {
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
        Classification::Known { matches } => (Disposition::Known { matches }, None, None),
        Classification::PreviouslyAssessed { item, verdict, distance, how: MatchedBy::ExactDigest } => {
            tables.add_report(item, &report.id)?;
            tables.add_event(item, now, submitted.clone())?;
            let outcome = Disposition::PreviouslyAssessed {
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
            let inherited = Assessment {
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
                Disposition::PreviouslyAssessed { item: from, recorded: item.id, verdict, distance, how };
            (outcome, Some(item.id), near(&item))
        }
        Classification::Pending { item, group, how: MatchedBy::ExactDigest, .. } => {
            tables.add_report(item, &report.id)?;
            tables.add_event(item, now, submitted.clone())?;
            (Disposition::New { item, group }, Some(item), None)
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
            (Disposition::New { item: item.id, group }, Some(item.id), near(&item))
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
            (Disposition::New { item: item.id, group }, Some(item.id), near(&item))
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
        location: report.location.clone(),
    };
    tables.put_report(&record)?;
    if let Some(location) = &report.location
        && let Some((confirmation, category)) = confirmed(&outcome)
    {
        let opening = Opening {
            location,
            report: &report.id,
            reported_ms: report.reported_ms,
            item,
            digests: &signals.digests,
            pdq: signals.pdq.map(|pdq| ItemPdq { hash: pdq.hash, quality: pdq.quality }),
            category,
            confirmation,
        };
        open_case(tables, takedown, opening, now)?;
    }
    Ok((outcome, near))
}

/// How a report's content was confirmed illegal, and its category, if it was: known from a
/// list, or the same as (or near) an item assessed illegal.
fn confirmed(outcome: &Disposition) -> Option<(Confirmation, Option<String>)> {
    match outcome {
        Disposition::Known { matches } => {
            let first = matches.first()?;
            let category = matches.iter().find_map(|found| found.category.clone());
            let confirmation =
                Confirmation::Listed { list: first.list.clone(), entry_id: first.entry_id.clone() };
            Some((confirmation, category))
        }
        Disposition::PreviouslyAssessed { item, recorded, verdict, .. } => {
            let category = verdict.kind.illegal_category()?.to_string();
            let confirmation = match &verdict.basis {
                Basis::Inherited { from, .. } => Confirmation::Inherited { from: *from },
                Basis::Direct | Basis::Group { .. } if recorded != item => {
                    Confirmation::Inherited { from: *item }
                }
                Basis::Direct | Basis::Group { .. } => {
                    Confirmation::Assessed { analyst: verdict.analyst.clone() }
                }
            };
            Some((confirmation, Some(category)))
        }
        Disposition::New { .. } => None,
    }
}

/// The list matches that go with a report's item as a hint for the analyst: perceptual-only
/// matches that did not make it known, and those found through a listed copy.
fn hints(listed: &MatchVerdict, through_copies: Vec<ListMatch>) -> Vec<ListMatch> {
    let perceptual = match listed.outcome {
        MatchOutcome::NearKnown => {
            listed.matches.iter().filter(|m| m.suppressed_by.is_none()).map(ListMatch::from).collect()
        }
        MatchOutcome::Known | MatchOutcome::Unknown => Vec::new(),
    };
    [perceptual, through_copies].concat()
}
