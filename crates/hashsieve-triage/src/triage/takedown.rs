//! The takedown loop in the store: opening a case in the transaction that confirms its
//! content, the transitions the scheduler, the notice sender and analysts make, and what the
//! block list, the referrals and the figures read.

use hashsieve_core::digest::Digests;
use hashsieve_core::signals::Signals;
use redb::{ReadTransaction, ReadableTable};

use super::Triage;
use crate::blocklist::{BlockEntry, BlockList};
use crate::error::{Failure, TriageError};
use crate::listed;
use crate::location::Location;
use crate::model::{ItemId, ItemPdq, MatchedBy, ReportRecord, VerdictKind};
use crate::store::{self, Tables};
use crate::takedown::{
    Case, CaseEvent, CaseEventKind, CaseFilter, CaseId, CasePage, CaseState, CheckFinding, Confirmation,
    Delivery, Figures, Referral, Referred, Removal, TakedownOptions, case_country,
};

/// What confirmed content at a location opens a case with.
pub(super) struct Opening<'a> {
    pub(super) location: &'a Location,
    pub(super) report: &'a str,
    pub(super) reported_ms: u64,
    pub(super) item: Option<ItemId>,
    pub(super) digests: &'a Digests,
    pub(super) pdq: Option<ItemPdq>,
    pub(super) category: Option<String>,
    pub(super) confirmation: Confirmation,
}

/// Opens the case of a location and content, or adds the report to the one there is (and
/// reopens it, if it had ended: the content is reported there again); in the caller's
/// transaction.
pub(super) fn open_case(
    tables: &mut Tables<'_>,
    options: &TakedownOptions,
    opening: Opening<'_>,
    now: u64,
) -> Result<CaseId, Failure> {
    let url = opening.location.normalised.as_str();
    let content = match opening.item {
        Some(item) => format!("item:{}", item.0),
        None => listed::content_key(opening.digests).unwrap_or_default(),
    };
    let existing = tables.case_keys.get((url, content.as_str()))?.map(|guard| guard.value());
    if let Some(id) = existing {
        let mut case = store::case(&tables.cases, CaseId(id))?;
        let known_report = case.reports.iter().any(|report| report == opening.report);
        if !known_report {
            case.reports.push(opening.report.to_string());
        }
        if case.state.is_active() {
            if !known_report {
                let what = CaseEventKind::Reported { report: opening.report.to_string() };
                tables.add_case_event(case.id, &event(now, "triage", case.state, case.state, what))?;
                tables.put_case(&case)?;
            }
            return Ok(case.id);
        }
        // Removed or closed, and confirmed there again: the loop starts over.
        let from = case.state;
        unschedule(tables, &mut case)?;
        case.state = CaseState::Open;
        case.confirmed_ms = now;
        case.last_seen_ms = now;
        case.notified = None;
        case.referred = None;
        case.escalated_ms = None;
        case.removed = None;
        case.closed_ms = None;
        case.checks = 0;
        case.notice_attempts = 0;
        case.category = opening.category.or(case.category);
        case.confirmation = opening.confirmation.clone();
        let what =
            CaseEventKind::Opened { report: opening.report.to_string(), confirmation: opening.confirmation };
        tables.add_case_event(case.id, &event(now, "triage", from, CaseState::Open, what))?;
        refer_if_abroad(tables, options, &mut case, now)?;
        schedule(tables, options, &mut case, now)?;
        schedule_notice(tables, &mut case, Some(now))?;
        tables.put_case(&case)?;
        return Ok(case.id);
    }
    let id = tables.new_case_id()?;
    let country = opening.location.hosting.as_ref().and_then(|hosting| hosting.country.clone());
    let abroad = matches!((&options.home_country, &country), (Some(home), Some(there)) if home != there);
    let mut case = Case {
        id,
        url: opening.location.normalised.clone(),
        location: opening.location.clone(),
        item: opening.item,
        digests: opening.digests.clone(),
        pdq: opening.pdq,
        category: opening.category,
        confirmation: opening.confirmation.clone(),
        reports: vec![opening.report.to_string()],
        first_reported_ms: opening.reported_ms,
        confirmed_ms: now,
        state: CaseState::Open,
        abroad,
        whole_host: false,
        notified: None,
        referred: None,
        escalated_ms: None,
        removed: None,
        closed_ms: None,
        checks: 0,
        last_seen_ms: now,
        next_check_ms: None,
        notice_attempts: 0,
        next_notice_ms: None,
    };
    tables.case_keys.insert((url, content.as_str()), id.0)?;
    if let Some(item) = opening.item {
        tables.item_cases.insert((item.0, id.0), ())?;
    }
    let what =
        CaseEventKind::Opened { report: opening.report.to_string(), confirmation: opening.confirmation };
    tables.add_case_event(id, &event(now, "triage", CaseState::Open, CaseState::Open, what))?;
    refer_if_abroad(tables, options, &mut case, now)?;
    schedule(tables, options, &mut case, now)?;
    schedule_notice(tables, &mut case, Some(now))?;
    tables.put_case(&case)?;
    Ok(id)
}

/// Refers a case hosted abroad to its country's partner, if the hotline has one there.
fn refer_if_abroad(
    tables: &mut Tables<'_>,
    options: &TakedownOptions,
    case: &mut Case,
    now: u64,
) -> Result<(), Failure> {
    if !case.abroad || case.referred.is_some() {
        return Ok(());
    }
    let Some(country) = case_country(case).map(str::to_string) else { return Ok(()) };
    let Some(partner) = options.partners.get(&country) else { return Ok(()) };
    let referral = Referred { to: partner.clone(), country, at_ms: now };
    let from = case.state;
    case.state = CaseState::Referred;
    case.referred = Some(referral.clone());
    tables.add_case_event(
        case.id,
        &event(now, "triage", from, case.state, CaseEventKind::Referred { referral }),
    )?;
    Ok(())
}

/// Sets an active case's next check `case.checks` from `from_ms`, replacing its old one.
fn schedule(
    tables: &mut Tables<'_>,
    options: &TakedownOptions,
    case: &mut Case,
    from_ms: u64,
) -> Result<(), Failure> {
    unschedule(tables, case)?;
    if case.state.is_active() {
        let due = options.checks.due_ms(case.id, case.checks, from_ms);
        tables.cases_due.insert((due, case.id.0), ())?;
        case.next_check_ms = Some(due);
    }
    Ok(())
}

fn unschedule(tables: &mut Tables<'_>, case: &mut Case) -> Result<(), Failure> {
    if let Some(due) = case.next_check_ms.take() {
        tables.cases_due.remove((due, case.id.0))?;
    }
    schedule_notice(tables, case, None)
}

/// Sets when a case's notice is to be sent, replacing the old time: only for an active case
/// at home that has none delivered; `None` takes it off the notice schedule.
fn schedule_notice(tables: &mut Tables<'_>, case: &mut Case, at: Option<u64>) -> Result<(), Failure> {
    if let Some(due) = case.next_notice_ms.take() {
        tables.notices_due.remove((due, case.id.0))?;
    }
    if let Some(at) = at.filter(|_| case.state.is_active() && !case.abroad && case.notified.is_none()) {
        tables.notices_due.insert((at, case.id.0), ())?;
        case.next_notice_ms = Some(at);
    }
    Ok(())
}

fn event(at_ms: u64, actor: &str, from: CaseState, to: CaseState, what: CaseEventKind) -> CaseEvent {
    CaseEvent { at_ms, actor: actor.to_string(), from, to, what }
}

/// Opens a case for every report of `item` that has a location, now that the item is illegal;
/// or, for a verdict that is not illegal, closes its active cases.
pub(super) fn follow_verdict(
    tables: &mut Tables<'_>,
    options: &TakedownOptions,
    item: ItemId,
    verdict: &VerdictKind,
    analyst: &str,
    confirmation: Confirmation,
    now: u64,
) -> Result<(), Failure> {
    let Some(category) = verdict.illegal_category() else {
        let reason = format!("verdict corrected to {} by {analyst}", verdict_name(verdict));
        return close_item_cases(tables, item, analyst, &reason, now);
    };
    let reports: Vec<String> = tables
        .item_reports
        .range((item.0, "")..(item.0.saturating_add(1), ""))?
        .map(|entry| entry.map(|(key, _)| key.value().1.to_string()))
        .collect::<Result<_, _>>()?;
    let record = store::item(&tables.items, item)?;
    for id in reports {
        let Some(report) = store::report(&tables.reports, &id)? else { continue };
        let ReportRecord { location: Some(location), reported_ms, .. } = &report else { continue };
        let opening = Opening {
            location,
            report: &id,
            reported_ms: *reported_ms,
            item: Some(item),
            digests: &record.digests,
            pdq: record.pdq,
            category: Some(category.to_string()),
            confirmation: confirmation.clone(),
        };
        open_case(tables, options, opening, now)?;
    }
    Ok(())
}

fn verdict_name(verdict: &VerdictKind) -> &'static str {
    match verdict {
        VerdictKind::Illegal { .. } => "illegal",
        VerdictKind::Legal => "legal",
        VerdictKind::Unclear => "unclear",
    }
}

pub(super) fn close_item_cases(
    tables: &mut Tables<'_>,
    item: ItemId,
    actor: &str,
    reason: &str,
    now: u64,
) -> Result<(), Failure> {
    let ids: Vec<u64> = tables
        .item_cases
        .range((item.0, 0)..=(item.0, u64::MAX))?
        .map(|entry| entry.map(|(key, _)| key.value().1))
        .collect::<Result<_, _>>()?;
    for id in ids {
        let mut case = store::case(&tables.cases, CaseId(id))?;
        if case.state != CaseState::Closed {
            close(tables, &mut case, actor, reason, now)?;
        }
    }
    Ok(())
}

fn close(
    tables: &mut Tables<'_>,
    case: &mut Case,
    actor: &str,
    reason: &str,
    now: u64,
) -> Result<(), Failure> {
    let from = case.state;
    unschedule(tables, case)?;
    case.state = CaseState::Closed;
    case.closed_ms = Some(now);
    let what = CaseEventKind::Closed { reason: reason.to_string() };
    tables.add_case_event(case.id, &event(now, actor, from, CaseState::Closed, what))?;
    tables.put_case(case)
}

impl Triage {
    /// A case.
    pub fn case(&self, id: CaseId) -> Result<Case, TriageError> {
        self.read("read case", |txn| store::case(&txn.open_table(store::CASES)?, id))
    }

    /// A case's history, oldest first.
    pub fn case_history(&self, id: CaseId) -> Result<Vec<CaseEvent>, TriageError> {
        self.read("case history", |txn| {
            store::case(&txn.open_table(store::CASES)?, id)?;
            let events = txn.open_table(store::CASE_EVENTS)?;
            let mut out = Vec::new();
            for entry in events.range((id.0, 0)..=(id.0, u64::MAX))? {
                let (key, value) = entry?;
                let (case, seq) = key.value();
                out.push(store::decode(value.value(), "case event", format!("{case}/{seq}"))?);
            }
            Ok(out)
        })
    }

    /// A page of the cases `filter` admits at `now_ms`, in id order, `limit` at most, after
    /// the case `after` (the previous page's [`CasePage::next`]).
    pub fn cases(
        &self,
        filter: &CaseFilter,
        now_ms: u64,
        limit: usize,
        after: Option<CaseId>,
    ) -> Result<CasePage, TriageError> {
        self.read("list cases", |txn| {
            let table = txn.open_table(store::CASES)?;
            let start = after.map_or(0, |case| case.0.saturating_add(1));
            let mut cases = Vec::new();
            let mut more = false;
            for entry in table.range(start..)? {
                let (key, value) = entry?;
                let case: Case = store::decode(value.value(), "case", key.value())?;
                if !filter.admits(&case, now_ms) {
                    continue;
                }
                if cases.len() == limit {
                    more = true;
                    break;
                }
                cases.push(case);
            }
            let next = if more { cases.last().map(|case| case.id) } else { None };
            Ok(CasePage { cases, next })
        })
    }

    /// Every case, for exports and figures.
    fn all_cases(&self) -> Result<Vec<Case>, TriageError> {
        self.read("read cases", |txn| {
            let table = txn.open_table(store::CASES)?;
            let mut cases = Vec::new();
            for entry in table.iter()? {
                let (key, value) = entry?;
                cases.push(store::decode(value.value(), "case", key.value())?);
            }
            Ok(cases)
        })
    }

    /// The active cases whose re-check is due at `now_ms`, soonest first, `limit` at most,
    /// with the slot each check is for (pass it back to [`Triage::record_check`]).
    pub fn due_checks(&self, now_ms: u64, limit: usize) -> Result<Vec<(Case, u32)>, TriageError> {
        self.read("due checks", |txn| {
            let due = txn.open_table(store::CASES_DUE)?;
            let cases = txn.open_table(store::CASES)?;
            let mut out = Vec::new();
            for entry in due.range((0, 0)..=(now_ms, u64::MAX))?.take(limit) {
                let (_, id) = entry?.0.value();
                let case = store::case(&cases, CaseId(id))?;
                let slot = case.checks;
                out.push((case, slot));
            }
            Ok(out)
        })
    }

    /// When the next re-check of any case is due, if one is.
    pub fn next_check_ms(&self) -> Result<Option<u64>, TriageError> {
        self.read("next check", |txn| {
            Ok(txn.open_table(store::CASES_DUE)?.first()?.map(|(key, _)| key.value().0))
        })
    }

    /// What a re-check's content is to the case: the same digest, or a PDQ hash within the
    /// store's threshold of one of the fetched image's eight variants, is the content still
    /// online; anything else is other content.
    pub fn compare_with_case(&self, case: &Case, signals: &Signals) -> CheckFinding {
        if store::same_content(&case.digests, &signals.digests) {
            return CheckFinding::Online { distance: 0, how: MatchedBy::ExactDigest };
        }
        let strong = |quality: u8| quality >= self.options.min_pdq_quality;
        if let (Some(stored), Some(found)) = (case.pdq, signals.pdq)
            && strong(stored.quality)
            && strong(found.quality)
        {
            let variants = found.dihedral.map_or_else(|| vec![found.hash], |all| all.to_vec());
            let distance =
                variants.iter().map(|variant| variant.hamming_distance(&stored.hash)).min().unwrap_or(256);
            if distance <= self.options.pdq_threshold {
                return CheckFinding::Online { distance, how: MatchedBy::Pdq };
            }
        }
        CheckFinding::Gone { sign: crate::takedown::RemovalSign::OtherContent }
    }

    /// Records what re-check `slot` of a case found at `at_ms`, moves the case on and
    /// schedules its next check. A finding for a slot already recorded, or for a case no
    /// longer active, changes nothing: the check was made twice (a scheduler restarted between
    /// its fetch and this write, or two asked at once) and counts once. Returns the case.
    pub fn record_check(
        &self,
        id: CaseId,
        slot: u32,
        finding: CheckFinding,
        at_ms: u64,
    ) -> Result<Case, TriageError> {
        let options = self.options.takedown.clone();
        self.write("record check", |tables| {
            let mut case = store::case(&tables.cases, id)?;
            if case.checks != slot || !case.state.is_active() {
                return Ok(case);
            }
            let from = case.state;
            case.checks += 1;
            match &finding {
                CheckFinding::Online { .. } => {
                    case.last_seen_ms = at_ms;
                    let since = case.notified.as_ref().map_or(case.confirmed_ms, |delivery| delivery.at_ms);
                    let overdue = at_ms.saturating_sub(since) >= options.escalate_after_ms;
                    case.state = match case.state {
                        CaseState::Notified | CaseState::StillOnline | CaseState::Open if overdue => {
                            case.escalated_ms = Some(at_ms);
                            CaseState::Escalated
                        }
                        CaseState::Notified => CaseState::StillOnline,
                        unchanged => unchanged,
                    };
                }
                CheckFinding::Gone { sign } => {
                    case.state = CaseState::Removed;
                    case.removed = Some(Removal { at_ms, sign: *sign });
                }
                CheckFinding::Inconclusive { .. } => {}
            }
            let what = CaseEventKind::Checked { slot, finding: finding.clone() };
            tables.add_case_event(id, &event(at_ms, "scheduler", from, case.state, what))?;
            if case.state == CaseState::Escalated && from != CaseState::Escalated {
                let what = CaseEventKind::Escalated;
                tables.add_case_event(id, &event(at_ms, "scheduler", case.state, case.state, what))?;
            }
            if case.state.is_active() {
                schedule(tables, &options, &mut case, at_ms)?;
            } else {
                unschedule(tables, &mut case)?;
            }
            tables.put_case(&case)?;
            Ok(case)
        })
    }

    /// Records the delivery of a case's notice. Idempotent: a case noticed already keeps its
    /// first delivery. An open case becomes notified.
    pub fn record_notice(&self, id: CaseId, delivery: Delivery) -> Result<Case, TriageError> {
        self.write("record notice", |tables| {
            let mut case = store::case(&tables.cases, id)?;
            if case.notified.is_some() {
                return Ok(case);
            }
            let from = case.state;
            if case.state == CaseState::Open {
                case.state = CaseState::Notified;
            }
            case.notified = Some(delivery.clone());
            schedule_notice(tables, &mut case, None)?;
            let at = delivery.at_ms;
            let actor = delivery.channel.clone();
            tables.add_case_event(
                id,
                &event(at, &actor, from, case.state, CaseEventKind::Notified { delivery }),
            )?;
            tables.put_case(&case)?;
            Ok(case)
        })
    }

    /// Records that an active case was referred to `partner` by `actor` (for a country without
    /// a configured partner, or a referral made by hand).
    pub fn refer(&self, id: CaseId, partner: &str, actor: &str) -> Result<Case, TriageError> {
        let now = hashsieve_core::clock::now_ms();
        self.write("refer case", |tables| {
            let mut case = store::case(&tables.cases, id)?;
            if !case.state.is_active() {
                return Err(TriageError::CaseNotActive { case: id, state: case.state }.into());
            }
            let country = case_country(&case).unwrap_or("unknown").to_string();
            let referral = Referred { to: partner.to_string(), country, at_ms: now };
            let from = case.state;
            case.state = CaseState::Referred;
            case.referred = Some(referral.clone());
            tables.add_case_event(
                id,
                &event(now, actor, from, case.state, CaseEventKind::Referred { referral }),
            )?;
            tables.put_case(&case)?;
            Ok(case)
        })
    }

    /// Closes a case, as an analyst decides.
    pub fn close_case(&self, id: CaseId, actor: &str, reason: &str) -> Result<Case, TriageError> {
        let now = hashsieve_core::clock::now_ms();
        self.write("close case", |tables| {
            let mut case = store::case(&tables.cases, id)?;
            if case.state != CaseState::Closed {
                close(tables, &mut case, actor, reason, now)?;
            }
            Ok(case)
        })
    }

    /// Makes an active case's next re-check due now ("check now").
    pub fn check_now(&self, id: CaseId, actor: &str) -> Result<Case, TriageError> {
        let now = hashsieve_core::clock::now_ms();
        self.write("check case now", |tables| {
            let mut case = store::case(&tables.cases, id)?;
            if !case.state.is_active() {
                return Err(TriageError::CaseNotActive { case: id, state: case.state }.into());
            }
            unschedule(tables, &mut case)?;
            tables.cases_due.insert((now, id.0), ())?;
            case.next_check_ms = Some(now);
            let state = case.state;
            tables.add_case_event(id, &event(now, actor, state, state, CaseEventKind::CheckRequested))?;
            tables.put_case(&case)?;
            Ok(case)
        })
    }

    /// Marks (or unmarks) a case's whole host for blocking: host-level block lists (DNS RPZ,
    /// a Squid host ACL) then carry its host, not only its URL.
    pub fn set_whole_host(&self, id: CaseId, whole_host: bool, actor: &str) -> Result<Case, TriageError> {
        let now = hashsieve_core::clock::now_ms();
        self.write("mark whole host", |tables| {
            let mut case = store::case(&tables.cases, id)?;
            if case.whole_host != whole_host {
                case.whole_host = whole_host;
                let state = case.state;
                tables.add_case_event(
                    id,
                    &event(now, actor, state, state, CaseEventKind::WholeHost { whole_host }),
                )?;
                tables.put_case(&case)?;
            }
            Ok(case)
        })
    }

    /// The cases whose notice is due at `now_ms`, soonest first, `limit` at most: active,
    /// hosted at home, none delivered yet.
    pub fn notices_due(&self, now_ms: u64, limit: usize) -> Result<Vec<Case>, TriageError> {
        self.read("notices due", |txn| {
            let due = txn.open_table(store::NOTICES_DUE)?;
            let cases = txn.open_table(store::CASES)?;
            let mut out = Vec::new();
            for entry in due.range((0, 0)..=(now_ms, u64::MAX))?.take(limit) {
                let (_, id) = entry?.0.value();
                out.push(store::case(&cases, CaseId(id))?);
            }
            Ok(out)
        })
    }

    /// When the next notice is due, if one is.
    pub fn next_notice_ms(&self) -> Result<Option<u64>, TriageError> {
        self.read("next notice", |txn| {
            Ok(txn.open_table(store::NOTICES_DUE)?.first()?.map(|(key, _)| key.value().0))
        })
    }

    /// Records that delivering a case's notice to `to` failed at `at_ms`, and when to try
    /// again (none: given up; the notice stays listed for sending by hand).
    pub fn record_notice_failure(
        &self,
        id: CaseId,
        to: &str,
        error: &str,
        at_ms: u64,
        retry_at_ms: Option<u64>,
    ) -> Result<Case, TriageError> {
        self.write("record notice failure", |tables| {
            let mut case = store::case(&tables.cases, id)?;
            if case.notified.is_some() || !case.state.is_active() {
                return Ok(case);
            }
            case.notice_attempts += 1;
            let what = CaseEventKind::NoticeFailed {
                webhook: to.to_string(),
                attempt: case.notice_attempts,
                error: error.to_string(),
                retry: retry_at_ms.is_some(),
            };
            let state = case.state;
            tables.add_case_event(id, &event(at_ms, "notices", state, state, what))?;
            schedule_notice(tables, &mut case, retry_at_ms)?;
            tables.put_case(&case)?;
            Ok(case)
        })
    }

    /// Moves a case's notice to `until` without recording anything: its host has no abuse
    /// contact with a webhook now, and one may be configured later.
    pub fn postpone_notice(&self, id: CaseId, until_ms: u64) -> Result<(), TriageError> {
        self.write("postpone notice", |tables| {
            let mut case = store::case(&tables.cases, id)?;
            if case.next_notice_ms.is_some() {
                schedule_notice(tables, &mut case, Some(until_ms))?;
                tables.put_case(&case)?;
            }
            Ok(())
        })
    }

    /// The URL block list at `now_ms`: the URLs of active cases — content confirmed and not
    /// seen gone — past the grace period after confirmation, or at once when hosted abroad and
    /// the policy says so. Sorted by URL; a URL of several cases is one entry, a whole-host
    /// entry if any of them is marked so. Read from the `blocking` table, which holds the
    /// active cases only, in URL order.
    pub fn block_list(&self, now_ms: u64) -> Result<BlockList, TriageError> {
        let options = &self.options.takedown;
        self.read("block list", |txn| {
            let version = block_list_version(txn)?;
            let blocking = txn.open_table(store::BLOCKING)?;
            let mut entries: Vec<BlockEntry> = Vec::new();
            let mut next_change_ms: Option<u64> = None;
            for row in blocking.iter()? {
                let (key, value) = row?;
                let ((url, _case), (confirmed_ms, abroad, whole_host)) = (key.value(), value.value());
                let listed_from = if abroad && options.block_abroad_at_once {
                    confirmed_ms
                } else {
                    confirmed_ms.saturating_add(options.block_after_ms)
                };
                if now_ms < listed_from {
                    next_change_ms = Some(next_change_ms.map_or(listed_from, |next| next.min(listed_from)));
                    continue;
                }
                match entries.last_mut() {
                    Some(last) if last.url == url => last.whole_host |= whole_host,
                    _ => entries.push(BlockEntry { url: url.to_string(), whole_host }),
                }
            }
            Ok(BlockList { entries, version, next_change_ms })
        })
    }

    /// The store's block list version: it changes with every change to the cases the block
    /// list is made of. Cheap — one key — so a copy of the list can be checked often.
    pub fn block_list_version(&self) -> Result<u64, TriageError> {
        self.read("block list version", block_list_version)
    }

    /// The referrals of every referred case, in case order.
    pub fn referrals(&self, hotline: &str) -> Result<Vec<Referral>, TriageError> {
        let cases = self.all_cases()?;
        let mut out = Vec::new();
        for case in cases.iter().filter(|case| case.referred.is_some()) {
            let notices = self
                .case_history(case.id)?
                .into_iter()
                .filter_map(|event| match event.what {
                    CaseEventKind::Notified { delivery } => Some(delivery),
                    _ => None,
                })
                .collect();
            out.extend(Referral::new(case, hotline, notices));
        }
        Ok(out)
    }

    /// The takedown figures at `now_ms`.
    pub fn takedown_figures(&self, now_ms: u64) -> Result<Figures, TriageError> {
        Ok(Figures::of(&self.all_cases()?, now_ms))
    }
}

fn block_list_version(txn: &ReadTransaction) -> Result<u64, Failure> {
    let meta = txn.open_table(store::META)?;
    Ok(meta.get(store::BLOCK_LIST_VERSION)?.map_or(0, |guard| guard.value()))
}
