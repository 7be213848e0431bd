//! The takedown loop in the store: cases opened by every kind of confirmation, one per URL and
//! content, moved through their states by checks, notices, referrals and corrections, and the
//! block list, referrals, notices and figures read from them.

mod support;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use hashsieve_core::signals::Signals;
use hashsieve_triage::blocklist::BlockEntry;
use hashsieve_triage::location::{Hosting, Location};
use hashsieve_triage::model::{Disposition, MatchedBy, Report, VerdictKind};
use hashsieve_triage::takedown::{
    CaseEventKind, CaseFilter, CaseState, CheckFinding, Confirmation, Delivery, Notice, RemovalSign,
    TakedownOptions,
};
use hashsieve_triage::{Triage, TriageError, TriageOptions};
use support::*;

const HOUR: u64 = 60 * 60 * 1000;

fn illegal(category: &str) -> VerdictKind {
    VerdictKind::Illegal { category: category.to_string() }
}

/// A report of `url`, fetched from an address hosted in `country`.
fn at(id: &str, url: &str, country: &str) -> Report {
    let mut location = Location::new(url).unwrap();
    location.connected = Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)));
    location.resolved = vec![IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7))];
    location.hosting = Some(Hosting {
        country: Some(country.into()),
        asn: Some(64500),
        network: Some(format!("Hosting {country}")),
    });
    Report { id: id.into(), source: url.into(), reported_ms: 1_000, location: Some(location) }
}

fn options() -> TriageOptions {
    TriageOptions {
        takedown: TakedownOptions {
            home_country: Some("NL".into()),
            partners: BTreeMap::from([("DE".to_string(), "Hotline DE".to_string())]),
            ..TakedownOptions::default()
        },
        ..TriageOptions::default()
    }
}

fn open_with(dir: &std::path::Path) -> Triage {
    Triage::open(&dir.join("triage.redb"), options()).unwrap()
}

fn new_group(outcome: Disposition) -> hashsieve_triage::model::GroupId {
    match outcome {
        Disposition::New { group, .. } => group,
        other => panic!("expected a new item, got {other:?}"),
    }
}

fn all_cases(triage: &Triage) -> Vec<hashsieve_triage::takedown::Case> {
    triage.cases(&CaseFilter::default(), u64::MAX, usize::MAX, None).unwrap().cases
}

#[test]
fn a_verdict_opens_one_case_per_url_and_none_for_reports_without_one() {
    let dir = tempfile::tempdir().unwrap();
    let matcher = matcher(dir.path());
    let mut triage = open_with(dir.path());
    let content = signals(&picture(PICTURES[0]));
    let group =
        new_group(triage.submit(&at("r-1", "http://a.example/x.jpg", "NL"), &content, &matcher).unwrap());
    // The same URL written another way, the same content: the same case.
    triage.submit(&at("r-2", "HTTP://A.example:80/x.jpg#frag", "NL"), &content, &matcher).unwrap();
    triage.submit(&at("r-3", "http://b.example/y.jpg", "NL"), &content, &matcher).unwrap();
    triage.submit(&report("r-upload"), &content, &matcher).unwrap();
    assert!(all_cases(&triage).is_empty(), "nothing is confirmed before the verdict");

    triage.assess_group(group, illegal("A"), "analyst-1", None).unwrap();
    let cases = all_cases(&triage);
    let urls: Vec<&str> = cases.iter().map(|case| case.url.as_str()).collect();
    assert_eq!(urls, ["http://a.example/x.jpg", "http://b.example/y.jpg"]);
    assert_eq!(cases[0].reports, ["r-1", "r-2"]);
    assert_eq!(cases[0].category.as_deref(), Some("A"));
    assert_eq!(cases[0].confirmation, Confirmation::Assessed { analyst: "analyst-1".into() });
    assert!(cases.iter().all(|case| case.state == CaseState::Open && !case.abroad));
    assert!(cases.iter().all(|case| case.next_check_ms.is_some()));
    let history = triage.case_history(cases[0].id).unwrap();
    assert!(matches!(&history[0].what, CaseEventKind::Opened { report, .. } if report == "r-1"));
    assert_eq!(triage.counts().unwrap().cases, 2);

    // A later report of the same URL joins its case; a redelivery changes nothing.
    triage.submit(&at("r-4", "http://a.example/x.jpg", "NL"), &content, &matcher).unwrap();
    triage.submit(&at("r-4", "http://a.example/x.jpg", "NL"), &content, &matcher).unwrap();
    let first = triage.case(cases[0].id).unwrap();
    assert_eq!(first.reports, ["r-1", "r-2", "r-4"]);
    assert_eq!(all_cases(&triage).len(), 2);
}

#[test]
fn inherited_and_listed_content_open_cases_at_submission() {
    let dir = tempfile::tempdir().unwrap();
    let matcher = matcher(dir.path());
    let mut triage = open_with(dir.path());
    let bytes = picture(PICTURES[0]);
    let group = new_group(triage.submit(&report("r-1"), &signals(&bytes), &matcher).unwrap());
    triage.assess_group(group, illegal("B"), "analyst-1", None).unwrap();

    // A re-encoded copy at a URL inherits the verdict, and its URL is a case at once.
    let copy = signals(&edits(&bytes)[1].1);
    let outcome = triage.submit(&at("r-2", "http://c.example/copy.png", "NL"), &copy, &matcher).unwrap();
    let Disposition::PreviouslyAssessed { item: from, recorded, .. } = outcome else { panic!("{outcome:?}") };
    let [case] = &all_cases(&triage)[..] else { panic!("one case") };
    assert_eq!(case.confirmation, Confirmation::Inherited { from });
    assert_eq!(case.item, Some(recorded));
    // The same bytes as the assessed item: a case for that item, confirmed by its analyst.
    triage.submit(&at("r-3", "http://d.example/same.png", "NL"), &signals(&bytes), &matcher).unwrap();
    let cases = all_cases(&triage);
    assert_eq!(cases[1].item, Some(from));
    assert_eq!(cases[1].confirmation, Confirmation::Assessed { analyst: "analyst-1".into() });

    // Another hotline's store, whose lists now have the item: known, and a case with no item.
    triage.export_to(&matcher, LIST, Some("triage")).unwrap();
    let other = tempfile::tempdir().unwrap();
    let mut listing = open_with(other.path());
    let outcome =
        listing.submit(&at("r-9", "http://e.example/k.png", "NL"), &signals(&bytes), &matcher).unwrap();
    assert!(matches!(outcome, Disposition::Known { .. }), "{outcome:?}");
    let [case] = &all_cases(&listing)[..] else { panic!("one case") };
    assert_eq!(case.item, None);
    assert!(matches!(&case.confirmation, Confirmation::Listed { list, .. } if list == LIST));
    assert_eq!(case.category.as_deref(), Some("B"));
    // Known again at the same URL: the same case.
    listing.submit(&at("r-10", "http://e.example/k.png", "NL"), &signals(&bytes), &matcher).unwrap();
    assert_eq!(all_cases(&listing).len(), 1);
}

#[test]
fn checks_move_a_case_from_notice_to_escalation_to_removal_and_count_each_slot_once() {
    let dir = tempfile::tempdir().unwrap();
    let matcher = matcher(dir.path());
    let mut triage = open_with(dir.path());
    let content = signals(&picture(PICTURES[0]));
    let group =
        new_group(triage.submit(&at("r-1", "http://a.example/x.jpg", "NL"), &content, &matcher).unwrap());
    triage.assess_group(group, illegal("A"), "analyst-1", None).unwrap();
    let case = all_cases(&triage).remove(0);
    let t0 = case.confirmed_ms;

    // Not due before its first interval (1 h ± 10 %), due after.
    assert!(triage.due_checks(t0 + HOUR * 8 / 10, 10).unwrap().is_empty());
    let due = triage.due_checks(t0 + HOUR * 12 / 10, 10).unwrap();
    assert_eq!(due.iter().map(|(case, slot)| (case.id, *slot)).collect::<Vec<_>>(), [(case.id, 0)]);

    let delivery = Delivery {
        to: "abuse@hosting.example".into(),
        channel: "webhook".into(),
        at_ms: t0 + 10,
        attempt: 1,
    };
    let noticed = triage.record_notice(case.id, delivery.clone()).unwrap();
    assert_eq!(noticed.state, CaseState::Notified);
    let again = Delivery { at_ms: t0 + 20, attempt: 2, ..delivery.clone() };
    assert_eq!(triage.record_notice(case.id, again).unwrap().notified, Some(delivery), "first delivery kept");

    let online =
        || CheckFinding::Online { distance: 0, how: hashsieve_triage::model::MatchedBy::ExactDigest };
    let checked = triage.record_check(case.id, 0, online(), t0 + HOUR).unwrap();
    assert_eq!((checked.state, checked.checks), (CaseState::StillOnline, 1));
    // The same slot again (a scheduler that restarted after writing): counted once.
    let same = triage.record_check(case.id, 0, online(), t0 + HOUR + 5).unwrap();
    assert_eq!(same, checked);
    let inconclusive = CheckFinding::Inconclusive { reason: "timed out".into() };
    let checked = triage.record_check(case.id, 1, inconclusive, t0 + 7 * HOUR).unwrap();
    assert_eq!((checked.state, checked.checks), (CaseState::StillOnline, 2));
    // Still there three days after the notice: escalated.
    let checked = triage.record_check(case.id, 2, online(), t0 + 73 * HOUR).unwrap();
    assert_eq!(checked.state, CaseState::Escalated);
    assert_eq!(checked.escalated_ms, Some(t0 + 73 * HOUR));
    let gone = CheckFinding::Gone { sign: RemovalSign::NotFound { status: 410 } };
    let removed = triage.record_check(case.id, 3, gone, t0 + 97 * HOUR).unwrap();
    assert_eq!(removed.state, CaseState::Removed);
    assert_eq!(
        removed.removed.map(|r| (r.at_ms, r.sign)),
        Some((t0 + 97 * HOUR, RemovalSign::NotFound { status: 410 }))
    );
    assert_eq!(removed.next_check_ms, None);
    assert!(triage.due_checks(u64::MAX, 10).unwrap().is_empty(), "a removed case is not checked");
    assert!(triage.record_check(case.id, 4, online(), t0 + 98 * HOUR).unwrap().state == CaseState::Removed);

    let states: Vec<(CaseState, CaseState)> =
        triage.case_history(case.id).unwrap().iter().map(|event| (event.from, event.to)).collect();
    use CaseState::*;
    assert_eq!(
        states,
        [
            (Open, Open),
            (Open, Notified),
            (Notified, StillOnline),
            (StillOnline, StillOnline),
            (StillOnline, Escalated),
            (Escalated, Escalated),
            (Escalated, Removed)
        ]
    );
    let slots: Vec<u32> = triage
        .case_history(case.id)
        .unwrap()
        .iter()
        .filter_map(|event| match event.what {
            CaseEventKind::Checked { slot, .. } => Some(slot),
            _ => None,
        })
        .collect();
    assert_eq!(slots, [0, 1, 2, 3], "each slot once");
}

#[test]
fn the_schedule_and_the_cases_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let matcher = matcher(dir.path());
    let (id, due) = {
        let mut triage = open_with(dir.path());
        let content = signals(&picture(PICTURES[0]));
        let group =
            new_group(triage.submit(&at("r-1", "http://a.example/x.jpg", "NL"), &content, &matcher).unwrap());
        triage.assess_group(group, illegal("A"), "analyst-1", None).unwrap();
        let case = all_cases(&triage).remove(0);
        let checked = triage
            .record_check(
                case.id,
                0,
                CheckFinding::Inconclusive { reason: "refused".into() },
                case.confirmed_ms + HOUR,
            )
            .unwrap();
        (case.id, checked.next_check_ms.unwrap())
    };
    let triage = open_with(dir.path());
    assert_eq!(triage.next_check_ms().unwrap(), Some(due));
    let found = triage.due_checks(due, 10).unwrap();
    assert_eq!(found.iter().map(|(case, slot)| (case.id, *slot)).collect::<Vec<_>>(), [(id, 1)]);
    // "Check now" moves it forward, once.
    let now = triage.check_now(id, "analyst-2").unwrap().next_check_ms.unwrap();
    assert!(now < due);
    assert_eq!(triage.due_checks(now, 10).unwrap().len(), 1);
    assert_eq!(triage.due_checks(u64::MAX, 10).unwrap().len(), 1, "the old due time is gone");
}

#[test]
fn cases_abroad_are_referred_and_blocked_at_once_home_ones_after_the_grace_period() {
    let dir = tempfile::tempdir().unwrap();
    let matcher = matcher(dir.path());
    let mut triage = open_with(dir.path());
    let content = signals(&picture(PICTURES[0]));
    let group =
        new_group(triage.submit(&at("r-nl", "http://home.example/a.jpg", "NL"), &content, &matcher).unwrap());
    triage.submit(&at("r-de", "http://abroad.example/a.jpg", "DE"), &content, &matcher).unwrap();
    triage.submit(&at("r-us", "http://far.example/a.jpg", "US"), &content, &matcher).unwrap();
    triage.assess_group(group, illegal("A"), "analyst-1", None).unwrap();
    let cases = all_cases(&triage);
    let by_url = |url: &str| cases.iter().find(|case| case.url.as_str() == url).unwrap().clone();
    let (home, de, us) = (
        by_url("http://home.example/a.jpg"),
        by_url("http://abroad.example/a.jpg"),
        by_url("http://far.example/a.jpg"),
    );
    assert_eq!((home.state, home.abroad), (CaseState::Open, false));
    assert_eq!((de.state, de.abroad), (CaseState::Referred, true));
    assert_eq!(de.referred.as_ref().map(|r| (r.to.as_str(), r.country.as_str())), Some(("Hotline DE", "DE")));
    assert_eq!((us.state, us.abroad), (CaseState::Open, true), "no partner in the US: open, and listed so");
    let abroad_open =
        CaseFilter { states: vec![CaseState::Open], country: Some("US".into()), ..CaseFilter::default() };
    assert_eq!(triage.cases(&abroad_open, u64::MAX, 10, None).unwrap().cases.len(), 1);

    let referrals = triage.referrals("Hotline NL").unwrap();
    assert_eq!(referrals.len(), 1);
    let json = serde_json::to_value(&referrals[0]).unwrap();
    assert_eq!(json["format"], "hashsieve-referral/1");
    assert_eq!(json["country"], "DE");
    assert_eq!(json["url"], "http://abroad.example/a.jpg");
    assert_eq!(json["hashes"]["sha256"].as_str().map(str::len), Some(64));

    let t0 = home.confirmed_ms;

    assert_eq!(listed(&triage, t0), ["http://abroad.example/a.jpg", "http://far.example/a.jpg"]);
    assert_eq!(listed(&triage, t0 + 24 * HOUR).len(), 3, "home cases join after the 24-hour grace");

    // Seen gone: off the list at once.
    let gone = CheckFinding::Gone { sign: RemovalSign::NameGone };
    triage.record_check(de.id, 0, gone, t0 + HOUR).unwrap();
    assert_eq!(listed(&triage, t0 + 24 * HOUR), ["http://far.example/a.jpg", "http://home.example/a.jpg"]);
    // Marked for a whole-host block: the entry says so.
    triage.set_whole_host(us.id, true, "analyst-1").unwrap();
    let entries = triage.block_list(t0 + 24 * HOUR).unwrap().entries;
    assert!(entries.iter().any(|e| e.url == "http://far.example/a.jpg" && e.whole_host));
    assert!(entries.iter().any(|e| e.url == "http://home.example/a.jpg" && !e.whole_host));
}

#[test]
fn a_verdict_corrected_away_from_illegal_closes_the_cases_and_empties_the_block_list() {
    let dir = tempfile::tempdir().unwrap();
    let matcher = matcher(dir.path());
    let mut triage = open_with(dir.path());
    let content = signals(&picture(PICTURES[0]));
    let outcome = triage.submit(&at("r-1", "http://a.example/x.jpg", "DE"), &content, &matcher).unwrap();
    let Disposition::New { item, .. } = outcome else { panic!() };
    triage.assess_item(item, illegal("A"), "analyst-1", None).unwrap();
    let [case] = &all_cases(&triage)[..] else { panic!("one case") };
    assert_eq!(triage.block_list(case.confirmed_ms).unwrap().entries.len(), 1);

    triage.assess_item(item, VerdictKind::Legal, "analyst-2", Some("adult")).unwrap();
    let closed = triage.case(case.id).unwrap();
    assert_eq!((closed.state, closed.next_check_ms), (CaseState::Closed, None));
    assert!(triage.block_list(u64::MAX).unwrap().entries.is_empty());
    let last = triage.case_history(case.id).unwrap().pop().unwrap();
    assert_eq!(last.actor, "analyst-2");
    assert!(matches!(&last.what, CaseEventKind::Closed { reason } if reason.contains("legal")));
    assert!(triage.due_checks(u64::MAX, 10).unwrap().is_empty());

    // Corrected back: the case reopens, and the loop starts over.
    triage.assess_item(item, illegal("A"), "analyst-3", None).unwrap();
    let reopened = triage.case(case.id).unwrap();
    assert_eq!(reopened.state, CaseState::Referred, "abroad, with a partner");
    assert_eq!(all_cases(&triage).len(), 1);
}

#[test]
fn a_recheck_compares_by_digest_and_by_pdq_of_the_eight_variants() {
    let dir = tempfile::tempdir().unwrap();
    let matcher = matcher(dir.path());
    let mut triage = open_with(dir.path());
    let bytes = picture(ROBUST);
    let outcome =
        triage.submit(&at("r-1", "http://a.example/x.png", "NL"), &signals(&bytes), &matcher).unwrap();
    let Disposition::New { item, .. } = outcome else { panic!() };
    triage.assess_item(item, illegal("A"), "analyst-1", None).unwrap();
    let case = all_cases(&triage).remove(0);

    assert!(matches!(
        triage.compare_with_case(&case, &signals(&bytes)),
        CheckFinding::Online { distance: 0, .. }
    ));
    for (edit, edited) in edits(&bytes) {
        let finding = triage.compare_with_case(&case, &signals(&edited));
        let distance = pdq_distance(&signals(&edited), &signals(&bytes));
        let expected = distance <= 31;
        assert_eq!(
            matches!(finding, CheckFinding::Online { .. }),
            expected,
            "{edit}: distance {distance}, {finding:?}"
        );
    }
    let other = triage.compare_with_case(&case, &signals(&picture(PICTURES[3])));
    assert_eq!(other, CheckFinding::Gone { sign: RemovalSign::OtherContent });
    let page = triage
        .compare_with_case(&case, &Signals::from_bytes(b"<html>Not here</html>", &Triage::signal_options()));
    assert_eq!(page, CheckFinding::Gone { sign: RemovalSign::OtherContent });
}

#[test]
fn a_notice_names_the_case_and_its_hashes_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let matcher = matcher(dir.path());
    let mut triage = open_with(dir.path());
    let content = signals(&picture(PICTURES[0]));
    let outcome = triage.submit(&at("r-1", "http://a.example/x.jpg#top", "NL"), &content, &matcher).unwrap();
    let Disposition::New { item, .. } = outcome else { panic!() };
    triage.assess_item(item, illegal("A"), "analyst-1", None).unwrap();
    let case = all_cases(&triage).remove(0);
    let notice = serde_json::to_value(Notice::new(&case, "Hotline NL", "HNL")).unwrap();
    let keys: Vec<&str> = notice.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "address",
            "case",
            "category",
            "confirmed",
            "confirmed_ms",
            "first_reported",
            "first_reported_ms",
            "format",
            "hashes",
            "hosting",
            "hotline",
            "notice_id",
            "reported_url",
            "url"
        ]
    );
    assert_eq!(notice["notice_id"], format!("HNL-case-{}", case.id.0));
    assert_eq!(notice["url"], "http://a.example/x.jpg");
    assert_eq!(notice["reported_url"], "http://a.example/x.jpg#top");
    let hashes = notice["hashes"].as_object().unwrap();
    assert_eq!(hashes["md5"], content.digests.hex(hashes_kind("md5")).unwrap());
    assert_eq!(hashes["pdq"], content.pdq.unwrap().hash.to_hex());
    assert!(notice["first_reported"].as_str().unwrap().ends_with('Z'));
}

fn listed(triage: &Triage, at: u64) -> Vec<String> {
    triage.block_list(at).unwrap().entries.into_iter().map(|entry| entry.url).collect()
}

fn hashes_kind(name: &str) -> hashsieve_core::digest::DigestKind {
    name.parse().unwrap()
}

#[test]
fn the_figures_are_the_medians_and_p90s_of_the_cases_times() {
    let dir = tempfile::tempdir().unwrap();
    let matcher = matcher(dir.path());
    let mut triage = open_with(dir.path());
    let content = signals(&picture(PICTURES[0]));
    let mut first = None;
    for i in 0..5 {
        let outcome = triage.submit(
            &at(&format!("r-{i}"), &format!("http://h{i}.example/x"), "NL"),
            &content,
            &matcher,
        );
        first.get_or_insert(outcome.unwrap());
    }
    let Some(Disposition::New { group, .. }) = first else { panic!() };
    triage.assess_group(group, illegal("A"), "analyst-1", None).unwrap();
    let cases = all_cases(&triage);
    let removed_after = [2, 4, 6, 8];
    for (case, hours) in cases.iter().zip(removed_after) {
        let gone = CheckFinding::Gone { sign: RemovalSign::ConnectionRefused };
        triage.record_check(case.id, 0, gone, case.first_reported_ms + hours * HOUR).unwrap();
    }
    let figures = triage.takedown_figures(cases[0].confirmed_ms + 2 * HOUR).unwrap();
    assert_eq!(figures.all.cases, 5);
    assert_eq!(figures.all.to_removal.count, 4);
    assert_eq!(figures.all.to_removal.median_ms, Some(4 * HOUR), "the lower middle of 2, 4, 6, 8 h");
    assert_eq!(figures.all.to_removal.p90_ms, Some(8 * HOUR));
    assert_eq!(figures.by_country["NL"].cases, 5);
    assert_eq!(figures.by_network["AS64500 Hosting NL"].to_removal.count, 4);
    assert_eq!(figures.by_state["removed"], 4);
    assert_eq!(figures.by_state["open"], 1);
    assert_eq!(figures.active_by_age["1h_to_24h"], 1);
    let expected_confirmation = cases.iter().map(|c| c.confirmed_ms - c.first_reported_ms).max();
    assert_eq!(figures.all.to_confirmation.p90_ms, expected_confirmation);
}

/// The block list as a scan of every case computes it: the reference the `blocking` index is
/// held to.
fn scanned_block_list(triage: &Triage, at: u64) -> (Vec<BlockEntry>, Option<u64>) {
    let policy = options().takedown;
    let mut entries = Vec::new();
    let mut next_change = None::<u64>;
    for case in all_cases(triage).into_iter().filter(|case| case.state.is_active()) {
        let from = if case.abroad && policy.block_abroad_at_once {
            case.confirmed_ms
        } else {
            case.confirmed_ms + policy.block_after_ms
        };
        if at < from {
            next_change = Some(next_change.map_or(from, |next| next.min(from)));
        } else {
            entries.push(BlockEntry { url: case.url.to_string(), whole_host: case.whole_host });
        }
    }
    entries.sort();
    entries.dedup_by(|later, kept| {
        let same = later.url == kept.url;
        kept.whole_host |= same && later.whole_host;
        same
    });
    (entries, next_change)
}

/// What the block list is made of, case by case: changes to it are what the version counts.
fn candidates(triage: &Triage) -> Vec<(u64, String, u64, bool, bool)> {
    all_cases(triage)
        .into_iter()
        .filter(|case| case.state.is_active())
        .map(|case| (case.id.0, case.url.to_string(), case.confirmed_ms, case.abroad, case.whole_host))
        .collect()
}

#[test]
fn the_block_list_index_follows_every_case_change_as_a_scan_of_the_cases_and_survives_an_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    let matcher = matcher(dir.path());
    let mut triage = open_with(dir.path());
    // 24 URLs in three countries, each showing one of three pictures; every fourth URL shows a
    // second picture too, so that it has two cases.
    let contents: Vec<Signals> = PICTURES[..4].iter().map(|name| signals(&picture(name))).collect();
    let mut report = 0;
    for i in 0..24 {
        let url = format!("http://h{}.example/{i}.jpg", i % 5);
        let country = ["NL", "DE", "US"][i % 3];
        let shown: &[usize] = if i % 4 == 0 { &[i % 3, 3] } else { &[i % 3] };
        for &content in shown {
            report += 1;
            triage.submit(&at(&format!("r-{report}"), &url, country), &contents[content], &matcher).unwrap();
        }
    }
    for group in triage.pending_groups(usize::MAX, None).unwrap().groups {
        triage.assess_group(group.group, illegal("A"), "analyst-1", None).unwrap();
    }
    let cases = all_cases(&triage);
    assert_eq!(cases.len(), 30);
    let t0 = cases.iter().map(|case| case.confirmed_ms).min().unwrap();

    // Seeded steps: a check online or gone, a whole-host mark, a close, a check asked for; after
    // each, the list at a random time against the scan, and the version against the change.
    let mut rng = hashsieve_testkit::Rng::new(21);
    let mut version = triage.block_list_version().unwrap();
    let (mut changes, mut unchanged) = (0, 0);
    for step in 0..300 {
        let before = candidates(&triage);
        let case = triage.case(cases[rng.below(cases.len() as u64) as usize].id).unwrap();
        let now = t0 + HOUR + step;
        let acted = match rng.below(6) {
            0 | 1 => {
                let online = CheckFinding::Online { distance: 0, how: MatchedBy::ExactDigest };
                triage.record_check(case.id, case.checks, online, now)
            }
            2 => {
                let gone = CheckFinding::Gone { sign: RemovalSign::NotFound { status: 404 } };
                triage.record_check(case.id, case.checks, gone, now)
            }
            3 => triage.set_whole_host(case.id, rng.below(2) == 0, "analyst-1"),
            4 => triage.close_case(case.id, "analyst-1", "test"),
            _ => triage.check_now(case.id, "analyst-1"),
        };
        // Asking to check a case no longer active is refused; nothing changes then.
        if let Err(err) = acted {
            assert!(matches!(err, TriageError::CaseNotActive { .. }), "step {step}: {err}");
        }
        let at = t0 + rng.below(48 * HOUR);
        let list = triage.block_list(at).unwrap();
        let (entries, next_change) = scanned_block_list(&triage, at);
        assert_eq!((&list.entries, list.next_change_ms), (&entries, next_change), "step {step}, at {at}");
        assert_eq!(list.version, triage.block_list_version().unwrap());
        if candidates(&triage) == before {
            assert_eq!(list.version, version, "step {step}: nothing the list is made of changed");
            unchanged += 1;
        } else {
            assert_ne!(list.version, version, "step {step}: the list's cases changed");
            changes += 1;
        }
        version = list.version;
    }
    assert!(
        changes > 20 && unchanged > 20,
        "both kinds of steps were made: {changes} changes, {unchanged} not"
    );

    // A store of format 1 had no index: opened, it gets one, made from its cases.
    let at = t0 + 30 * HOUR;
    let expected = scanned_block_list(&triage, at);
    drop(triage);
    {
        let db = redb::Database::create(dir.path().join("triage.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        txn.delete_table(redb::TableDefinition::<(&str, u64), (u64, bool, bool)>::new("blocking")).unwrap();
        txn.open_table(redb::TableDefinition::<&str, u64>::new("meta")).unwrap().insert("format", 1).unwrap();
        txn.commit().unwrap();
    }
    let triage = open_with(dir.path());
    let list = triage.block_list(at).unwrap();
    assert!(!expected.0.is_empty());
    assert_eq!((list.entries, list.next_change_ms), expected);
    drop(triage);
    let triage = open_with(dir.path());
    assert_eq!(
        triage.block_list(at).unwrap().entries,
        scanned_block_list(&triage, at).0,
        "opened again as format 2"
    );
}
