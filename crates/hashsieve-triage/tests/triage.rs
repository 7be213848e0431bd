//! Triage of reports with benign pictures and edited copies of them, synthetic hashes for the
//! edge cases, and a real core matcher for the hash-list side.

mod support;

use hashsieve_core::keypoints;
use hashsieve_core::matcher::MatchOutcome;
use hashsieve_core::pdq::PdqHash;
use hashsieve_core::signals::Signals;
use hashsieve_triage::model::{
    Basis, Classification, Disposition, EventKind, GroupId, GroupState, Grouping, HistoryOf, ItemId,
    ItemState, MatchedBy, Report, VerdictKind,
};
use hashsieve_triage::{Triage, TriageError, TriageOptions};
use support::*;

fn illegal(category: &str) -> VerdictKind {
    VerdictKind::Illegal { category: category.to_string() }
}

fn new_item(outcome: &Disposition) -> (ItemId, GroupId) {
    match outcome {
        Disposition::New { item, group } => (*item, *group),
        other => panic!("expected a new item, got {other:?}"),
    }
}

/// An expected outcome, from the oracle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expected {
    Inherits { from: ItemId, distance: u32, how: MatchedBy },
    Joins(GroupId),
    Starts,
}

/// The nearest of `candidates` within 31 of `query` by the oracle, ties to the earliest item.
fn nearest<'a>(
    query: &Signals,
    candidates: impl Iterator<Item = (&'a Signals, ItemId)>,
) -> Option<(u32, ItemId)> {
    candidates.map(|(stored, item)| (pdq_distance(query, stored), item)).filter(|&(d, _)| d <= 31).min()
}

/// The one of `candidates` whose keypoints show the same picture as `query`'s with the most
/// agreeing points, ties to the earliest item: core's alignment of every pair, the oracle for
/// triage's candidate search.
fn reframed<'a>(query: &Signals, candidates: impl Iterator<Item = (&'a Signals, ItemId)>) -> Option<ItemId> {
    let query = query.keypoints.as_ref()?;
    candidates
        .filter_map(|(stored, item)| {
            let alignment = keypoints::align(query, &stored.keypoints.clone()?.without_mirrored())?;
            alignment.is_same_picture().then_some((std::cmp::Reverse(alignment.agreeing), item))
        })
        .min()
        .map(|(_, item)| item)
}

/// How many keypoints a sample picture has.
fn keypoints_of(name: &str) -> usize {
    signals(&picture(name)).keypoints.map_or(0, |set| set.len())
}

/// Every picture's edited copies, and Meta's modified bridge pictures, each with a name.
fn copies() -> Vec<(usize, String, Vec<u8>)> {
    let mut out = Vec::new();
    for (n, name) in PICTURES.iter().enumerate() {
        for (edit, bytes) in edits(&picture(name)) {
            out.push((n, format!("{name}, {edit}"), bytes));
        }
        if *name == BRIDGE {
            out.extend(BRIDGE_MODS.iter().map(|m| (n, m.to_string(), picture(m))));
        }
    }
    out
}

/// The point of the crate: after one look at a picture, its re-posted copies need none. Each
/// outcome is checked against a brute-force oracle over core's PDQ hashes and keypoint
/// alignment: a copy inherits from the nearest assessed original within 31 bits, else joins the
/// nearest pending copy's group; failing both, it inherits from the assessed original its
/// keypoints align with, else joins the group of the pending copy they align with, else starts
/// a group.
#[test]
fn edited_copies_inherit_the_verdict_of_the_assessed_original() {
    let dir = tempfile::tempdir().unwrap();
    let matcher = matcher(dir.path());
    let mut triage = open(dir.path());
    let originals: Vec<Signals> = PICTURES.iter().map(|name| signals(&picture(name))).collect();
    let mut items = Vec::new();
    for (n, original) in originals.iter().enumerate() {
        // Different pictures are not near each other.
        assert_eq!(nearest(original, originals[..n].iter().zip(items.iter().copied())), None);
        let (item, group) = new_item(&submit(&mut triage, &matcher, &format!("orig-{n}"), original).unwrap());
        triage.assess_group(group, illegal("B"), "analyst-1", Some("looked once")).unwrap();
        items.push(item);
    }
    let mut pending: Vec<(Signals, ItemId, GroupId)> = Vec::new();
    let mut inherited = Vec::new();
    for (n, name, bytes) in copies() {
        let copy = signals(&bytes);
        let assessed = || originals.iter().zip(items.iter().copied());
        let waiting = || pending.iter().map(|(s, item, _)| (s, *item));
        let group_of = |item: ItemId| pending.iter().find(|p| p.1 == item).unwrap().2;
        let expected = match (nearest(&copy, assessed()), nearest(&copy, waiting())) {
            (Some((distance, from)), _) => Expected::Inherits { from, distance, how: MatchedBy::Pdq },
            (None, Some((_, item))) => Expected::Joins(group_of(item)),
            (None, None) => match (reframed(&copy, assessed()), reframed(&copy, waiting())) {
                (Some(from), _) => Expected::Inherits {
                    from,
                    distance: pdq_distance(&copy, &originals[items.iter().position(|&i| i == from).unwrap()]),
                    how: MatchedBy::Keypoints,
                },
                (None, Some(item)) => Expected::Joins(group_of(item)),
                (None, None) => Expected::Starts,
            },
        };
        let outcome = submit(&mut triage, &matcher, &name, &copy).unwrap();
        eprintln!("{name:70} nearest original at {:3}: {expected:?}", pdq_distance(&copy, &originals[n]));
        match (expected, outcome) {
            (
                Expected::Inherits { from, distance, how },
                Disposition::PreviouslyAssessed { item, recorded, verdict, distance: d, how: h },
            ) if item == from && d == distance && h == how => {
                assert_eq!(from, items[n], "{name}: inherited from another picture");
                assert_eq!(verdict.kind, illegal("B"));
                let inherited_verdict = triage.item(recorded).unwrap().verdict().unwrap().clone();
                assert_eq!(inherited_verdict.basis, Basis::Inherited { from, distance, how });
                assert_eq!(inherited_verdict.analyst, "analyst-1");
                inherited.push(name);
            }
            (Expected::Joins(group), Disposition::New { group: joined, .. }) if joined == group => {}
            (Expected::Starts, Disposition::New { item, group }) => {
                assert!(pending.iter().all(|p| p.2 != group));
                pending.push((copy, item, group));
            }
            (expected, outcome) => panic!("{name}: expected {expected:?}, got {outcome:?}"),
        }
    }
    // The robust picture's copies, mirrored and rotated ones included, and Meta's bridge
    // modifications all inherit; so does every crop (by PDQ or, where PDQ gives up, by
    // keypoints) of a picture big enough to have keypoints, and most other copies.
    for edit in ["half size", "jpeg quality 40", "2% cropped", "mirrored", "rotated 90°", "brighter"] {
        assert!(inherited.contains(&format!("{ROBUST}, {edit}")), "{edit}: {inherited:?}");
    }
    for name in PICTURES.iter().filter(|name| keypoints_of(name) > 100) {
        for edit in ["2% cropped", "5% cropped off two edges"] {
            assert!(inherited.contains(&format!("{name}, {edit}")), "{name}, {edit}: {inherited:?}");
        }
    }
    assert!(BRIDGE_MODS.iter().all(|m| inherited.contains(&m.to_string())), "{inherited:?}");
    assert!(inherited.len() * 5 >= copies().len() * 4, "{} of {}", inherited.len(), copies().len());
}

/// Before any assessment, copies join the group of the nearest pending item (original or
/// copy) within 31 bits, or failing that of the pending item their keypoints align with, as a
/// brute-force model of the queue says.
#[test]
fn edited_copies_join_the_group_of_their_pending_original() {
    let dir = tempfile::tempdir().unwrap();
    let matcher = matcher(dir.path());
    let mut triage = open(dir.path());
    let mut model: Vec<(Signals, ItemId, GroupId)> = Vec::new();
    let mut submissions: Vec<(String, Vec<u8>)> =
        PICTURES.iter().map(|name| (name.to_string(), picture(name))).collect();
    submissions.extend(copies().into_iter().map(|(_, name, bytes)| (name, bytes)));
    for (name, bytes) in submissions {
        let signals = signals(&bytes);
        let expected = nearest(&signals, model.iter().map(|(s, item, _)| (s, *item)))
            .map(|(distance, near)| (model.iter().find(|m| m.1 == near).unwrap().2, near, distance));
        let (item, group) = new_item(&submit(&mut triage, &matcher, &name, &signals).unwrap());
        let expected =
            expected.map(|(group, near, distance)| (group, near, distance, MatchedBy::Pdq)).or_else(|| {
                let near = reframed(&signals, model.iter().map(|(s, item, _)| (s, *item)))?;
                let (stored, _, group) = model.iter().find(|m| m.1 == near).unwrap();
                Some((*group, near, pdq_distance(&signals, stored), MatchedBy::Keypoints))
            });
        match expected {
            Some((expected, near, distance, how)) => {
                assert_eq!(group, expected, "{name}");
                let history = triage.history(HistoryOf::Item(item)).unwrap();
                let why = Grouping::NearMember { member: near, distance, how };
                assert!(
                    history.iter().any(|e| e.what == EventKind::Grouped { group, why }),
                    "{name}: {history:?}"
                );
            }
            None => assert!(model.iter().all(|m| m.2 != group), "{name}: joined {group}"),
        }
        model.push((signals, item, group));
    }
    let mut groups: Vec<GroupId> = model.iter().map(|m| m.2).collect();
    groups.sort_unstable();
    groups.dedup();
    let page = triage.pending_groups(100, None).unwrap();
    assert_eq!(page.groups.iter().map(|g| g.group).collect::<Vec<_>>(), groups);
    for summary in &page.groups {
        assert_eq!(summary.members, model.iter().filter(|m| m.2 == summary.group).count());
        assert_eq!(summary.oldest_report_ms, 1_000);
    }
    // One look per picture: assessing a group settles all its members.
    let robust = model[PICTURES.iter().position(|&p| p == ROBUST).unwrap()].2;
    let settled = triage.assess_group(robust, VerdictKind::Legal, "analyst-2", None).unwrap();
    let members: Vec<ItemId> = model.iter().filter(|m| m.2 == robust).map(|m| m.1).collect();
    assert_eq!(settled, members);
    assert!(settled.len() > edits(&picture(ROBUST)).len(), "every copy joined");
    for item in settled {
        let item = triage.item(item).unwrap();
        assert_eq!(item.state, ItemState::Assessed);
        assert!(matches!(item.verdict().unwrap().basis, Basis::Group { group, .. } if group == robust));
    }
}

#[test]
fn pending_groups_are_paged_with_a_cursor() {
    let dir = tempfile::tempdir().unwrap();
    let matcher = matcher(dir.path());
    let mut triage = open(dir.path());
    for (n, name) in PICTURES.iter().enumerate() {
        submit(&mut triage, &matcher, &format!("r{n}"), &signals(&picture(name))).unwrap();
    }
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = triage.pending_groups(4, cursor).unwrap();
        assert!(page.groups.len() <= 4);
        seen.extend(page.groups.iter().map(|g| g.group));
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(seen.len(), PICTURES.len());
    assert!(seen.windows(2).all(|w| w[0] < w[1]));
}

/// A group's reports are those of every member, the earliest reported first, as many as asked
/// for, with how many there are in all; split-off members take theirs with them.
#[test]
fn a_groups_reports_are_every_members_earliest_first() {
    let dir = tempfile::tempdir().unwrap();
    let matcher = matcher(dir.path());
    let mut triage = open(dir.path());
    let bytes = picture(ROBUST);
    let contents: Vec<Vec<u8>> =
        std::iter::once(bytes.clone()).chain(edits(&bytes).into_iter().take(4).map(|(_, b)| b)).collect();
    // Two reports of each member, later members reported earlier: time order is not member
    // order, nor report id order.
    let mut expected = Vec::new();
    let mut groups = Vec::new();
    for (n, content) in contents.iter().enumerate() {
        let content = signals(content);
        for again in 0..2u64 {
            let id = format!("r-{n}-{again}");
            let reported_ms = 10_000 - 100 * n as u64 + 7 * again;
            let outcome = triage.submit(&Report { reported_ms, ..report(&id) }, &content, &matcher).unwrap();
            let (item, group) = new_item(&outcome);
            groups.push(group);
            expected.push((reported_ms, id, item));
        }
    }
    let group = groups[0];
    assert!(groups.iter().all(|&g| g == group), "{groups:?}");
    assert_eq!(triage.group(group).unwrap().members.len(), contents.len());
    expected.sort();
    let listed = |reports: &hashsieve_triage::model::GroupReports| {
        reports.reports.iter().map(|r| (r.reported_ms, r.id.clone(), r.item)).collect::<Vec<_>>()
    };
    let all = triage.group_reports(group, 100).unwrap();
    assert_eq!(all.total, 10);
    assert_eq!(listed(&all), expected);
    assert!(all.reports.iter().all(|r| r.source == report(&r.id).source));
    let first = triage.group_reports(group, 3).unwrap();
    assert_eq!((first.total, listed(&first)), (10, expected[..3].to_vec()));
    assert_eq!(triage.group_reports(group, 0).unwrap().total, 10);

    let moving = expected[0].2;
    let split = triage.split_group(group, &[moving]).unwrap();
    let (moved, stayed): (Vec<_>, Vec<_>) =
        expected.iter().cloned().partition(|(_, _, item)| *item == moving);
    assert_eq!(listed(&triage.group_reports(split, 100).unwrap()), moved);
    assert_eq!(listed(&triage.group_reports(group, 100).unwrap()), stayed);
    assert!(matches!(triage.group_reports(GroupId(99), 10), Err(TriageError::UnknownGroup(_))));
}

#[test]
fn a_report_delivered_twice_is_recorded_once() {
    let dir = tempfile::tempdir().unwrap();
    let matcher = matcher(dir.path());
    let mut triage = open(dir.path());
    let signals = signals(&picture(PICTURES[0]));
    let first = submit(&mut triage, &matcher, "r-1", &signals).unwrap();
    let counts = triage.counts().unwrap();
    let again = submit(&mut triage, &matcher, "r-1", &signals).unwrap();
    assert_eq!(again, first);
    assert_eq!(triage.counts().unwrap(), counts);
    assert_eq!(counts.items, 1);
    let history = triage.history(HistoryOf::Report("r-1")).unwrap();
    let submissions = history.iter().filter(|e| matches!(e.what, EventKind::Submitted { .. })).count();
    assert_eq!(submissions, 1, "{history:?}");

    // Still the first outcome after the item was assessed since.
    let (_, group) = new_item(&first);
    triage.assess_group(group, VerdictKind::Unclear, "a", None).unwrap();
    let counts = triage.counts().unwrap();
    assert_eq!(submit(&mut triage, &matcher, "r-1", &signals).unwrap(), first);

    // The same id with other content is not a redelivery.
    let other = support::signals(&picture(PICTURES[1]));
    assert!(matches!(
        submit(&mut triage, &matcher, "r-1", &other),
        Err(TriageError::ReportIdReused { report }) if report == "r-1"
    ));
    assert_eq!(triage.counts().unwrap(), counts);
}

#[test]
fn the_same_bytes_under_a_new_report_id_attach_to_the_item() {
    let dir = tempfile::tempdir().unwrap();
    let matcher = matcher(dir.path());
    let mut triage = open(dir.path());
    let signals = signals(&picture(PICTURES[2]));
    let first = submit(&mut triage, &matcher, "r-1", &signals).unwrap();
    let second = submit(&mut triage, &matcher, "r-2", &signals).unwrap();
    assert_eq!(second, first);
    let (item, group) = new_item(&first);
    assert_eq!(triage.counts().unwrap().items, 1);
    assert_eq!(triage.reports_of(item).unwrap(), ["r-1", "r-2"]);
    assert_eq!(triage.group(group).unwrap().members, [item]);

    // After assessment, the same bytes are previously assessed, at distance 0, by digest.
    triage.assess_item(item, illegal("A"), "a", None).unwrap();
    let third = submit(&mut triage, &matcher, "r-3", &signals).unwrap();
    assert!(matches!(third,
        Disposition::PreviouslyAssessed { item: i, recorded, distance: 0, how: MatchedBy::ExactDigest, .. }
            if i == item && recorded == item));
    assert_eq!(triage.reports_of(item).unwrap(), ["r-1", "r-2", "r-3"]);
    assert_eq!(triage.counts().unwrap().items, 1);
}

#[test]
fn split_then_assess_each_part() {
    let dir = tempfile::tempdir().unwrap();
    let matcher = matcher(dir.path());
    let mut triage = open(dir.path());
    let bytes = picture(ROBUST);
    let (original, group) = new_item(&submit(&mut triage, &matcher, "orig", &signals(&bytes)).unwrap());
    let copies: Vec<_> = edits(&bytes)
        .into_iter()
        .map(|(edit, bytes)| new_item(&submit(&mut triage, &matcher, edit, &signals(&bytes)).unwrap()).0)
        .collect();
    let moving = &copies[..2];

    assert!(matches!(triage.split_group(group, &[]), Err(TriageError::BadSplit { .. })));
    let everyone: Vec<_> = triage.group(group).unwrap().members;
    assert!(matches!(triage.split_group(group, &everyone), Err(TriageError::BadSplit { .. })));
    let stranger = ItemId(999);
    assert!(matches!(triage.split_group(group, &[stranger]), Err(TriageError::NotInGroup { .. })));

    let split = triage.split_group(group, moving).unwrap();
    assert_ne!(split, group);
    assert_eq!(triage.group(split).unwrap().members, moving);
    assert_eq!(triage.group(split).unwrap().split_from, Some(group));
    assert!(!triage.group(group).unwrap().members.iter().any(|m| moving.contains(m)));
    assert_eq!(triage.pending_groups(10, None).unwrap().groups.len(), 2);
    for &item in moving {
        assert_eq!(triage.item(item).unwrap().state, ItemState::Pending { group: split });
        let history = triage.history(HistoryOf::Item(item)).unwrap();
        assert!(history.iter().any(|e| matches!(e.what,
            EventKind::Grouped { group: g, why: Grouping::Split { from } } if g == split && from == group)));
    }

    let assessed = triage.assess_group(group, illegal("C"), "a", None).unwrap();
    assert!(assessed.contains(&original) && !assessed.iter().any(|m| moving.contains(m)));
    assert_eq!(triage.group(group).unwrap().state, GroupState::Assessed);
    assert!(matches!(
        triage.assess_group(group, VerdictKind::Legal, "a", None),
        Err(TriageError::GroupNotPending(_))
    ));
    assert!(matches!(triage.split_group(group, &[original]), Err(TriageError::GroupNotPending(_))));
    triage.assess_group(split, VerdictKind::Legal, "b", Some("not the same")).unwrap();
    assert_eq!(triage.item(moving[0]).unwrap().verdict().unwrap().kind, VerdictKind::Legal);
    assert_eq!(triage.item(original).unwrap().verdict().unwrap().kind, illegal("C"));
    assert!(triage.pending_groups(10, None).unwrap().groups.is_empty());
}

#[test]
fn assessing_one_item_takes_it_out_of_its_group() {
    let dir = tempfile::tempdir().unwrap();
    let matcher = matcher(dir.path());
    let mut triage = open(dir.path());
    let bytes = picture(ROBUST);
    let (original, group) = new_item(&submit(&mut triage, &matcher, "orig", &signals(&bytes)).unwrap());
    let (copy, _) = new_item(&submit(&mut triage, &matcher, "copy", &signals(&edits(&bytes)[0].1)).unwrap());
    triage.assess_item(copy, VerdictKind::Legal, "a", None).unwrap();
    assert_eq!(triage.group(group).unwrap().members, [original]);
    assert_eq!(triage.pending_groups(10, None).unwrap().groups[0].members, 1);
    triage.assess_item(original, illegal("A"), "a", None).unwrap();
    assert_eq!(triage.group(group).unwrap().state, GroupState::Emptied);
    assert!(triage.pending_groups(10, None).unwrap().groups.is_empty());

    // A correction stands on top; the history keeps both.
    triage.assess_item(original, VerdictKind::Legal, "qa", Some("second opinion")).unwrap();
    let item = triage.item(original).unwrap();
    assert_eq!(item.verdicts.len(), 2);
    assert_eq!(item.verdict().unwrap().kind, VerdictKind::Legal);
    let assessed = triage.history(HistoryOf::Item(original)).unwrap();
    assert_eq!(assessed.iter().filter(|e| matches!(e.what, EventKind::Assessed { .. })).count(), 2);
}

#[test]
fn a_new_item_near_two_groups_joins_the_nearest() {
    let dir = tempfile::tempdir().unwrap();
    let matcher = matcher(dir.path());
    let mut triage = open(dir.path());
    let base = PdqHash([0x5a; 32]);
    let a = flipped(&base, 0..0);
    let b = flipped(&base, 0..40); // 40 bits from a: separate groups
    let (_, group_a) = new_item(&submit(&mut triage, &matcher, "a", &synthetic(b"a", a, 90)).unwrap());
    let (_, group_b) = new_item(&submit(&mut triage, &matcher, "b", &synthetic(b"b", b, 90)).unwrap());
    assert_ne!(group_a, group_b);
    // 25 bits from b and 15 from a: both within 31.
    let between = flipped(&base, 0..15);
    let (_, joined) = new_item(&submit(&mut triage, &matcher, "c", &synthetic(b"c", between, 90)).unwrap());
    assert_eq!(joined, group_a);
    let between = flipped(&base, 0..30); // 30 from a, 15 from c, 10 from b
    let (_, joined) = new_item(&submit(&mut triage, &matcher, "d", &synthetic(b"d", between, 90)).unwrap());
    assert_eq!(joined, group_b);
    // Groups are not merged.
    assert_eq!(triage.pending_groups(10, None).unwrap().groups.len(), 2);
}

#[test]
fn verdicts_are_inherited_from_assessed_items_only_not_along_chains() {
    let dir = tempfile::tempdir().unwrap();
    let matcher = matcher(dir.path());
    let mut triage = open(dir.path());
    let base = PdqHash([0xc3; 32]);
    let (a, group) = new_item(&submit(&mut triage, &matcher, "a", &synthetic(b"a", base, 90)).unwrap());
    triage.assess_group(group, illegal("A"), "x", None).unwrap();
    let b = synthetic(b"b", flipped(&base, 0..20), 90);
    let Disposition::PreviouslyAssessed { item, recorded, distance: 20, .. } =
        submit(&mut triage, &matcher, "b", &b).unwrap()
    else {
        panic!("b is 20 bits from a")
    };
    assert_eq!(item, a);
    // 20 bits from b, 40 from a: b's inherited verdict is not passed on.
    let c = synthetic(b"c", flipped(&base, 0..40), 90);
    assert!(matches!(submit(&mut triage, &matcher, "c", &c).unwrap(), Disposition::New { .. }));
    // But the same bytes as b have b's verdict.
    let outcome = submit(&mut triage, &matcher, "b-again", &b).unwrap();
    assert!(
        matches!(outcome, Disposition::PreviouslyAssessed { item, how: MatchedBy::ExactDigest, .. } if item == recorded)
    );
}

#[test]
fn weak_pdq_hashes_match_by_digest_only() {
    let dir = tempfile::tempdir().unwrap();
    let matcher = matcher(dir.path());
    let mut triage = open(dir.path());
    let hash = PdqHash([0x11; 32]);
    let (item, group) = new_item(&submit(&mut triage, &matcher, "a", &synthetic(b"a", hash, 30)).unwrap());
    // The same hash, other bytes: weak, so not grouped.
    let (_, other) = new_item(&submit(&mut triage, &matcher, "b", &synthetic(b"b", hash, 30)).unwrap());
    assert_ne!(other, group);
    // A strong query does not match the weak stored hash either.
    let (_, third) = new_item(&submit(&mut triage, &matcher, "c", &synthetic(b"c", hash, 90)).unwrap());
    assert!(third != group && third != other);
    // The same bytes still do.
    assert_eq!(
        submit(&mut triage, &matcher, "a2", &synthetic(b"a", hash, 30)).unwrap(),
        Disposition::New { item, group }
    );
}

#[test]
fn classify_records_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let matcher = matcher(dir.path());
    let mut triage = open(dir.path());
    let bytes = picture(PICTURES[3]);
    let original = signals(&bytes);
    assert_eq!(triage.classify(&original, &matcher).unwrap(), Classification::New);
    assert_eq!(triage.counts().unwrap().items, 0);
    let (item, group) = new_item(&submit(&mut triage, &matcher, "r", &original).unwrap());
    let copy = signals(&edits(&bytes)[3].1);
    let classified = triage.classify(&copy, &matcher).unwrap();
    assert!(
        matches!(classified, Classification::Pending { item: i, group: g, how: MatchedBy::Pdq, .. } if i == item && g == group)
    );
    assert_eq!(triage.counts().unwrap().items, 1);
}

#[test]
fn a_report_without_digests_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let matcher = matcher(dir.path());
    let mut triage = open(dir.path());
    let empty = hashsieve_core::signals::Signals::default();
    assert!(matches!(submit(&mut triage, &matcher, "r", &empty), Err(TriageError::NoDigest { .. })));
    let signals = Signals::from_bytes(b"not an image", &Triage::signal_options());
    assert!(matches!(submit(&mut triage, &matcher, "", &signals), Err(TriageError::EmptyReportId)));
    // Content that is not an image is matched by digest.
    let (item, _) = new_item(&submit(&mut triage, &matcher, "r", &signals).unwrap());
    assert_eq!(triage.item(item).unwrap().pdq, None);
}

/// Export to the hotline's own list; from then on the matcher knows the item, and a correction
/// withdraws it.
#[test]
fn exported_items_are_known_to_the_matcher() {
    let dir = tempfile::tempdir().unwrap();
    let matcher = matcher(dir.path());
    let mut triage = open(dir.path());
    let bytes = picture(ROBUST);
    let original = signals(&bytes);
    let (item, group) = new_item(&submit(&mut triage, &matcher, "r-1", &original).unwrap());
    let legal = signals(&picture(PICTURES[1]));
    let (_, legal_group) = new_item(&submit(&mut triage, &matcher, "r-2", &legal).unwrap());
    triage.assess_group(group, illegal("A"), "a", None).unwrap();
    triage.assess_group(legal_group, VerdictKind::Legal, "a", None).unwrap();
    // An inherited item is exported too: its own digests go on the list.
    let copy = signals(&edits(&bytes)[1].1);
    let Disposition::PreviouslyAssessed { recorded, .. } =
        submit(&mut triage, &matcher, "r-3", &copy).unwrap()
    else {
        panic!("a copy of an assessed picture")
    };

    let export = triage.export(LIST).unwrap();
    let exported: Vec<_> = export.items().iter().map(|e| e.item).collect();
    assert_eq!(exported, [item, recorded]);
    assert_eq!(export.changes().len(), 2 * 5, "four digests and a PDQ hash each");
    assert_eq!(matcher.check_signals(&original).outcome, MatchOutcome::Unknown);

    let export = triage.export_to(&matcher, LIST, Some("triage")).unwrap();
    assert_eq!(export.items().len(), 2);
    let verdict = matcher.check_signals(&original);
    assert_eq!(verdict.outcome, MatchOutcome::Known);
    assert!(verdict.matches.iter().all(|m| m.category.as_deref() == Some("A") && m.list == LIST));
    assert!(
        verdict
            .matches
            .iter()
            .any(|m| m.entry_id.as_deref() == Some(&*hashsieve_triage::export::entry_id(item)))
    );
    assert_eq!(matcher.check_signals(&copy).outcome, MatchOutcome::Known);
    assert_eq!(matcher.check_signals(&legal).outcome, MatchOutcome::Unknown);
    // Another copy, never seen: the exported PDQ hash finds it.
    let unseen = signals(&edits(&bytes)[3].1);
    assert_eq!(matcher.check_signals(&unseen).outcome, MatchOutcome::NearKnown);

    // A new report of the same bytes is known now.
    assert!(matches!(submit(&mut triage, &matcher, "r-4", &original).unwrap(), Disposition::Known { .. }));
    let history = triage.history(HistoryOf::Report("r-4")).unwrap();
    assert!(matches!(&history[..], [e] if matches!(e.what, EventKind::Known { .. }) && e.item.is_none()));
    let history = triage.history(HistoryOf::Item(item)).unwrap();
    assert!(history.iter().any(|e| matches!(&e.what,
        EventKind::Exported { list, category: Some(c) } if list == LIST && c == "A")));

    // Nothing is exported twice.
    assert!(triage.export(LIST).unwrap().is_empty());
    assert!(triage.export_to(&matcher, LIST, None).unwrap().is_empty());

    // A correction withdraws the entries.
    triage.assess_item(item, VerdictKind::Legal, "qa", None).unwrap();
    let export = triage.export_to(&matcher, LIST, None).unwrap();
    assert_eq!(export.items().len(), 1);
    assert_eq!(export.items()[0].category, None);
    // The original's entries are gone; the copy keeps its own verdict and entries (a
    // correction does not reach the items that inherited), whose PDQ hash is near the original.
    let verdict = matcher.check_signals(&original);
    assert_eq!(verdict.outcome, MatchOutcome::NearKnown);
    let own = hashsieve_triage::export::entry_id(item);
    assert!(verdict.matches.iter().all(|m| m.entry_id.as_deref() != Some(&*own)), "{verdict:?}");
    assert_eq!(matcher.check_signals(&copy).outcome, MatchOutcome::Known);
}

#[test]
fn near_known_content_is_known_unless_a_person_is_to_confirm_it() {
    let dir = tempfile::tempdir().unwrap();
    let matcher = matcher(dir.path());
    let mut triage = open(dir.path());
    let bytes = picture(ROBUST);
    let (item, group) = new_item(&submit(&mut triage, &matcher, "r-1", &signals(&bytes)).unwrap());
    triage.assess_group(group, illegal("A"), "a", None).unwrap();
    triage.export_to(&matcher, LIST, None).unwrap();

    // A copy near the listed PDQ hash: the list says NearKnown, which is known by default.
    let copy = signals(&edits(&bytes)[0].1);
    let fresh = tempfile::tempdir().unwrap();
    let mut trusting = open(fresh.path());
    assert!(matches!(trusting.submit(&report("c"), &copy, &matcher).unwrap(), Disposition::Known { .. }));
    drop(trusting);

    // A hotline that confirms every perceptual match: a new item, the match as a hint.
    let options = TriageOptions { near_known_is_known: false, ..TriageOptions::default() };
    let mut confirming = Triage::open(&fresh.path().join("other.redb"), options).unwrap();
    let outcome = confirming.submit(&report("c"), &copy, &matcher).unwrap();
    let hints = confirming.item(new_item(&outcome).0).unwrap().near_list_matches;
    assert!(
        hints.iter().any(|m| m.kind == "pdq" && m.entry_id == Some(hashsieve_triage::export::entry_id(item)))
    );
}

/// Hash lists carry no keypoints, so a crop of a listed picture that PDQ no longer matches is
/// recognised through a reported copy the list did match: known when PDQ-only list matches
/// are (the default), else a hint; one copy is kept per list entry, copies survive reopening, and a crop of
/// a picture the list does not have is not taken for listed.
#[test]
fn crops_of_a_reported_listed_picture_are_recognised_through_it() {
    let dir = tempfile::tempdir().unwrap();
    let matcher = matcher(dir.path());
    // The list: pictures an earlier store exported. The last picture stays unlisted.
    let mut earlier = Triage::open(&dir.path().join("earlier.redb"), TriageOptions::default()).unwrap();
    let (listed, unlisted) = PICTURES.split_at(PICTURES.len() - 1);
    let mut exported = std::collections::BTreeMap::new();
    for (n, name) in listed.iter().enumerate() {
        let outcome = submit(&mut earlier, &matcher, &format!("e-{n}"), &signals(&picture(name))).unwrap();
        let (item, group) = new_item(&outcome);
        earlier.assess_group(group, illegal("A"), "a", None).unwrap();
        exported.insert(*name, item);
    }
    earlier.export_to(&matcher, LIST, None).unwrap();

    // The crops this is for: the list does not match them, core's alignment says they show
    // the listed picture (the oracle).
    let mut cases = Vec::new();
    for name in listed {
        let original = signals(&picture(name));
        for (edit, bytes) in edits(&picture(name)).into_iter().filter(|(edit, _)| edit.contains("cropped")) {
            let crop = signals(&bytes);
            let stored = original.keypoints.clone().unwrap().without_mirrored();
            let aligned = keypoints::align(crop.keypoints.as_ref().unwrap(), &stored)
                .is_some_and(|alignment| alignment.is_same_picture());
            if matcher.check_signals(&crop).outcome == MatchOutcome::Unknown && aligned {
                cases.push((name, edit, crop));
            }
        }
    }
    assert!(cases.len() >= 2, "only {} crops beyond PDQ's reach", cases.len());

    let mut trusting = open(dir.path());
    let confirm = TriageOptions { near_known_is_known: false, ..TriageOptions::default() };
    let mut confirming = Triage::open(&dir.path().join("confirming.redb"), confirm).unwrap();
    // The report whose copy each picture is recognised through: its first.
    let mut copy_of = std::collections::BTreeMap::new();
    for (n, (name, edit, crop)) in cases.iter().enumerate() {
        let original = &signals(&picture(name));
        let file = format!("file-{n}");
        if !copy_of.contains_key(name) {
            // Before the listed file is reported, nothing knows the crop.
            assert_eq!(trusting.classify(crop, &matcher).unwrap(), Classification::New);
            copy_of.insert(*name, file.clone());
        }
        for triage in [&mut trusting, &mut confirming] {
            let outcome = submit(triage, &matcher, &file, original).unwrap();
            assert!(matches!(outcome, Disposition::Known { .. }), "{name}: {outcome:?}");
        }
        let via = |matches: &[hashsieve_triage::model::ListMatch]| {
            !matches.is_empty()
                && matches.iter().all(|m| m.list == LIST && m.via_report.as_ref() == copy_of.get(name))
        };
        let outcome = submit(&mut trusting, &matcher, &format!("crop-{n}"), crop).unwrap();
        assert!(
            matches!(&outcome, Disposition::Known { matches } if via(matches)),
            "{name}, {edit}: {outcome:?}"
        );
        let (item, _) = new_item(&submit(&mut confirming, &matcher, &format!("crop-{n}"), crop).unwrap());
        assert!(via(&confirming.item(item).unwrap().near_list_matches), "{name}, {edit}");
    }
    // One copy per listed picture, however often its file was reported.
    assert_eq!(trusting.counts().unwrap().listed_copies, copy_of.len() as u64);
    assert_eq!(confirming.counts().unwrap().listed_copies, copy_of.len() as u64);

    // A crop of an unlisted picture is new, with no hint.
    let other = edits(&picture(unlisted[0])).into_iter().find(|(edit, _)| edit.contains("cropped")).unwrap();
    let (item, _) = new_item(&submit(&mut confirming, &matcher, "other", &signals(&other.1)).unwrap());
    assert!(confirming.item(item).unwrap().near_list_matches.is_empty());

    // Reopened, the copies are loaded again.
    drop(trusting);
    let mut trusting = open(dir.path());
    let (name, _, crop) = &cases[0];
    let outcome = submit(&mut trusting, &matcher, "crop-after-reopening", crop).unwrap();
    assert!(
        matches!(&outcome, Disposition::Known { matches } if matches[0].via_report.as_deref() == Some("file-0"))
    );

    // The picture's entries leave the list (a correction withdraws them): its crops are no
    // longer matched through the copy either.
    earlier.assess_item(exported[**name], VerdictKind::Legal, "qa", None).unwrap();
    assert_eq!(earlier.export_to(&matcher, LIST, None).unwrap().items().len(), 1);
    assert_eq!(trusting.classify(crop, &matcher).unwrap(), Classification::New);
    new_item(&submit(&mut trusting, &matcher, "crop-after-withdrawal", crop).unwrap());
}

/// The list of the tests of listed copies: the given pictures, submitted to an earlier store,
/// assessed illegal and exported to the matcher's list (all four digests and the PDQ hash of
/// each, under the item's entry id).
fn listed_by_an_earlier_store(dir: &std::path::Path, names: &[&str]) -> hashsieve_core::matcher::Matcher {
    let matcher = matcher(dir);
    let mut earlier = Triage::open(&dir.join("earlier.redb"), TriageOptions::default()).unwrap();
    for (n, name) in names.iter().enumerate() {
        let outcome = submit(&mut earlier, &matcher, &format!("e-{n}"), &signals(&picture(name))).unwrap();
        earlier.assess_group(new_item(&outcome).1, illegal("A"), "a", None).unwrap();
    }
    earlier.export_to(&matcher, LIST, None).unwrap();
    matcher
}

/// The crops of a listed sample picture that the list does not match and whose keypoints core
/// aligns with the picture's as the same picture (the oracle), with that alignment.
fn crops_beyond_pdq(
    matcher: &hashsieve_core::matcher::Matcher,
    name: &str,
) -> Vec<(&'static str, Signals, keypoints::Alignment)> {
    let stored = signals(&picture(name)).keypoints.unwrap().without_mirrored();
    edits(&picture(name))
        .into_iter()
        .filter(|(edit, _)| edit.contains("cropped"))
        .filter_map(|(edit, bytes)| {
            let crop = signals(&bytes);
            let alignment = keypoints::align(crop.keypoints.as_ref()?, &stored)?;
            let beyond = matcher.check_signals(&crop).outcome == MatchOutcome::Unknown;
            (beyond && alignment.is_same_picture()).then_some((edit, crop, alignment))
        })
        .collect()
}

/// (list, kind, entry, distance) of each match, sorted: what a list says of some content.
fn list_says(matches: &[hashsieve_triage::model::ListMatch]) -> Vec<(String, String, Option<String>, u32)> {
    let mut out: Vec<_> =
        matches.iter().map(|m| (m.list.clone(), m.kind.clone(), m.entry_id.clone(), m.distance)).collect();
    out.sort();
    out
}

/// A crop known through a listed copy says why, as a new hotline would need to be told: the
/// list's match is the copy's (its kind and distance), and `via` names the copy's report, the
/// basis (keypoints), the crop's own PDQ distance to the copy — beyond the threshold, computed
/// here from the two PDQ hashes — and the figures of the keypoint alignment, as core's
/// alignment of the two gives them. So do the report's history and, where a person confirms
/// such matches, the hint on its item. Read as JSON, as the API and the review page read it.
#[test]
fn a_crop_known_through_a_listed_copy_names_keypoints_its_pdq_distance_and_the_alignment() {
    let dir = tempfile::tempdir().unwrap();
    let samples: Vec<&str> = PICTURES.iter().copied().filter(|name| name.starts_with("samples/")).collect();
    let matcher = listed_by_an_earlier_store(dir.path(), &samples);
    let (name, edit, crop, oracle) = samples
        .iter()
        .find_map(|name| crops_beyond_pdq(&matcher, name).into_iter().next().map(|(e, c, a)| (name, e, c, a)))
        .expect("a sample picture with a crop beyond PDQ's reach");
    let original = signals(&picture(name));
    let own_distance = pdq_distance(&crop, &original);
    assert!(own_distance > 31, "{name}, {edit}: PDQ would have matched at {own_distance}");
    let listed = matcher.check_signals(&original);
    assert_eq!(listed.outcome, MatchOutcome::Known);
    let listed: Vec<_> = listed.matches.iter().map(hashsieve_triage::model::ListMatch::from).collect();

    let expected_via = |found: &serde_json::Value| {
        let via = &found["via"];
        assert_eq!(found["via_report"], "file", "{found}");
        assert_eq!(via["report"], "file", "{found}");
        assert_eq!(via["how"], "keypoints", "{found}");
        assert_eq!(via["pdq_distance"], own_distance, "{found}");
        let alignment = &via["alignment"];
        assert_eq!(alignment["agreeing"], oracle.agreeing, "{found}");
        assert!(oracle.agreeing >= keypoints::MIN_AGREEING);
        assert_eq!(alignment["mirrored"], oracle.mirrored, "{found}");
        assert_eq!(alignment["spread_cells"], oracle.spread_cells, "{found}");
        assert_eq!(alignment["unexplained_cells"], 0, "{found}");
        let close = |field: &serde_json::Value, figure: f32| {
            field.as_f64().is_some_and(|value| (value - f64::from(figure)).abs() <= 0.0005)
        };
        for axis in 0..2 {
            assert!(close(&alignment["scale"][axis], oracle.scale[axis]), "{found} {oracle:?}");
            assert!(close(&alignment["shift"][axis], oracle.shift[axis]), "{found} {oracle:?}");
        }
        assert!(close(&alignment["query_coverage"], oracle.query_coverage), "{found} {oracle:?}");
        assert!(close(&alignment["stored_coverage"], oracle.stored_coverage), "{found} {oracle:?}");
    };

    let mut trusting = open(dir.path());
    assert!(matches!(submit(&mut trusting, &matcher, "file", &original).unwrap(), Disposition::Known { .. }));
    let outcome = submit(&mut trusting, &matcher, "crop", &crop).unwrap();
    let Disposition::Known { matches } = &outcome else { panic!("{name}, {edit}: {outcome:?}") };
    // The list's match is the copy's, kind and distance as the list gives them for the file.
    assert_eq!(list_says(matches), list_says(&listed), "{name}, {edit}");
    for found in serde_json::to_value(&outcome).unwrap()["matches"].as_array().unwrap() {
        expected_via(found);
    }
    // The history (the audit of the decision) says the same.
    let history = serde_json::to_value(trusting.history(HistoryOf::Report("crop")).unwrap()).unwrap();
    assert_eq!(history[0]["event"], "known", "{history}");
    history[0]["matches"].as_array().unwrap().iter().for_each(expected_via);
    // A redelivery is answered from the record, figures and all.
    assert_eq!(submit(&mut trusting, &matcher, "crop", &crop).unwrap(), outcome);
    drop(trusting);
    assert_eq!(submit(&mut open(dir.path()), &matcher, "crop", &crop).unwrap(), outcome);

    // Where a person confirms such matches, the hint on the crop's item says it too.
    let confirm = TriageOptions { near_known_is_known: false, ..TriageOptions::default() };
    let mut confirming = Triage::open(&dir.path().join("confirming.redb"), confirm).unwrap();
    submit(&mut confirming, &matcher, "file", &original).unwrap();
    let (item, _) = new_item(&submit(&mut confirming, &matcher, "crop", &crop).unwrap());
    let item = serde_json::to_value(confirming.item(item).unwrap()).unwrap();
    let hints = item["near_list_matches"].as_array().unwrap();
    assert!(!hints.is_empty(), "{item}");
    hints.iter().for_each(expected_via);
}

/// One copy per list entry was kept, the first reported: when an edit of a listed picture (PDQ
/// near the list's hash: brightened) was reported before the listed file itself, the file's
/// crops were said to be known through the edit. The copy the list matches most closely is
/// named — the file, matched by digest — also after reopening; a further edit, no closer than
/// the file, is not kept.
#[test]
fn a_crop_is_known_through_the_copy_closest_to_the_list_entry() {
    let dir = tempfile::tempdir().unwrap();
    let samples: Vec<&str> = PICTURES.iter().copied().filter(|name| name.starts_with("samples/")).collect();
    let matcher = listed_by_an_earlier_store(dir.path(), &samples);
    let brighter =
        |name: &str| edits(&picture(name)).into_iter().find(|(edit, _)| *edit == "brighter").unwrap().1;
    // A picture whose brightened copy the list matches by PDQ only, with a crop beyond PDQ.
    let (name, edit, crop) = samples
        .iter()
        .find_map(|name| {
            let verdict = matcher.check_signals(&signals(&brighter(name)));
            let near =
                verdict.outcome == MatchOutcome::NearKnown && verdict.matches.iter().all(|m| m.distance > 0);
            let (edit, crop, _) = crops_beyond_pdq(&matcher, name).into_iter().next()?;
            near.then_some((name, edit, crop))
        })
        .expect("a sample picture whose brightened copy is PDQ-near the list, with a crop beyond PDQ");
    let (original, edited) = (signals(&picture(name)), signals(&brighter(name)));

    let mut triage = open(dir.path());
    let outcome = submit(&mut triage, &matcher, "edit-first", &edited).unwrap();
    assert!(
        matches!(&outcome, Disposition::Known { matches } if matches.iter().all(|m| m.kind == "pdq")),
        "{outcome:?}"
    );
    let outcome = submit(&mut triage, &matcher, "original", &original).unwrap();
    assert!(
        matches!(&outcome, Disposition::Known { matches } if matches.iter().any(|m| m.kind == "sha256")),
        "{outcome:?}"
    );
    // The reports the crop is known through, as `via_report` and `via` name them.
    let through = |triage: &Triage, crop: &Signals| match triage.classify(crop, &matcher).unwrap() {
        Classification::Known { matches } => {
            let reports: Vec<_> = matches.iter().map(|m| m.via_report.clone()).collect();
            assert_eq!(reports, vec![Some("original".to_string()); matches.len()], "{name}, {edit}");
            assert!(matches.iter().any(|m| m.kind == "sha256"), "the file's own matches: {matches:?}");
            for found in &matches {
                assert_eq!(serde_json::to_value(found).unwrap()["via"]["report"], "original");
            }
        }
        other => panic!("{name}, {edit}: {other:?}"),
    };
    through(&triage, &crop);
    assert_eq!(triage.counts().unwrap().listed_copies, 2, "the file is closer to the entry than the edit");

    // Another edit, reported after the file: the list matches it no more closely, so it is not kept.
    let jpeg =
        signals(&edits(&picture(name)).into_iter().find(|(edit, _)| *edit == "jpeg quality 40").unwrap().1);
    assert!(matches!(submit(&mut triage, &matcher, "edit-later", &jpeg).unwrap(), Disposition::Known { .. }));
    submit(&mut triage, &matcher, "edit-again", &edited).unwrap();
    assert_eq!(triage.counts().unwrap().listed_copies, 2);
    drop(triage);
    let mut triage = open(dir.path());
    submit(&mut triage, &matcher, "edit-once-more", &edited).unwrap();
    assert_eq!(triage.counts().unwrap().listed_copies, 2, "reopened, the kept copies' closeness is known");
    through(&triage, &crop);
    let outcome = submit(&mut triage, &matcher, "crop", &crop).unwrap();
    assert!(
        matches!(&outcome, Disposition::Known { matches } if matches.iter().all(|m| m.via_report.as_deref() == Some("original"))),
        "{outcome:?}"
    );
}

/// Everything survives closing and reopening, including the near-search state.
#[test]
fn a_reopened_store_has_everything() {
    let dir = tempfile::tempdir().unwrap();
    let matcher = matcher(dir.path());
    let bytes = picture(ROBUST);
    let (item, group, copy_item);
    {
        let mut triage = open(dir.path());
        (item, group) = new_item(&submit(&mut triage, &matcher, "r-1", &signals(&bytes)).unwrap());
        copy_item = new_item(&submit(&mut triage, &matcher, "r-2", &signals(&edits(&bytes)[0].1)).unwrap()).0;
        submit(&mut triage, &matcher, "r-3", &signals(&picture(PICTURES[0]))).unwrap();
    }
    let mut triage = open(dir.path());
    assert_eq!(triage.counts().unwrap().items, 3);
    assert_eq!(triage.group(group).unwrap().members, [item, copy_item]);
    assert_eq!(triage.reports_of(item).unwrap(), ["r-1"]);
    // The near table was rebuilt: another copy still joins the group.
    let outcome = submit(&mut triage, &matcher, "r-4", &signals(&edits(&bytes)[4].1)).unwrap();
    assert_eq!(new_item(&outcome).1, group);
    triage.assess_group(group, illegal("A"), "a", None).unwrap();
    drop(triage);

    let mut triage = open(dir.path());
    assert_eq!(triage.item(copy_item).unwrap().verdict().unwrap().kind, illegal("A"));
    let outcome = submit(&mut triage, &matcher, "r-5", &signals(&edits(&bytes)[5].1)).unwrap();
    assert!(matches!(outcome, Disposition::PreviouslyAssessed { how: MatchedBy::Pdq, .. }), "{outcome:?}");
    let history = triage.history(HistoryOf::Report("r-2")).unwrap();
    let kinds: Vec<&str> = history
        .iter()
        .map(|e| match e.what {
            EventKind::Submitted { .. } => "submitted",
            EventKind::Grouped { .. } => "grouped",
            EventKind::Assessed { .. } => "assessed",
            EventKind::Inherited { .. } => "inherited",
            EventKind::Reopened { .. } => "reopened",
            EventKind::Exported { .. } => "exported",
            EventKind::Known { .. } => "known",
        })
        .collect();
    assert_eq!(kinds, ["submitted", "grouped", "assessed"]);
}

#[test]
fn a_file_of_another_format_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("not-redb");
    std::fs::write(&path, b"something else entirely, not a database").unwrap();
    assert!(matches!(Triage::open(&path, TriageOptions::default()), Err(TriageError::Open { .. })));
}

/// A batch with one fsync decides exactly as the same reports submitted one by one: each sees
/// the ones before it (copies join their original's group within the batch), a report repeated
/// in the batch is answered from its first record, and a reused id is refused alone.
#[test]
fn a_batch_decides_as_one_by_one() {
    let dir = tempfile::tempdir().unwrap();
    let matcher = matcher(dir.path());
    let mut submissions: Vec<(String, Vec<u8>)> =
        PICTURES.iter().map(|name| (name.to_string(), picture(name))).collect();
    submissions.extend(copies().into_iter().map(|(_, name, bytes)| (name, bytes)));
    submissions.push(submissions[3].clone());
    submissions.push((submissions[0].0.clone(), submissions[1].1.clone()));
    let (one_by_one, batched) = (dir.path().join("one"), dir.path().join("batched"));
    std::fs::create_dir_all(&one_by_one).unwrap();
    std::fs::create_dir_all(&batched).unwrap();
    let mut single = open(&one_by_one);
    let expected: Vec<String> = submissions
        .iter()
        .map(|(name, bytes)| format!("{:?}", submit(&mut single, &matcher, name, &signals(bytes))))
        .collect();
    let mut batch = open(&batched);
    let reports: Vec<_> = submissions.iter().map(|(name, bytes)| (report(name), signals(bytes))).collect();
    let mut outcomes = Vec::new();
    for chunk in reports.chunks(16) {
        outcomes.extend(
            batch.submit_all(chunk, &matcher).unwrap().into_iter().map(|outcome| format!("{outcome:?}")),
        );
    }
    assert_eq!(outcomes, expected);
    assert!(outcomes.last().unwrap().contains("ReportIdReused"));
    drop(batch);
    let reopened = open(&batched);
    assert_eq!(reopened.counts().unwrap(), single.counts().unwrap());
}

/// An analyst's undo: the group's verdict is taken back, its members await review again in
/// the same group, the export withdraws their entries, and the history keeps both. A verdict
/// that was corrected since, or that another item inherited, is not undone.
#[test]
fn a_group_verdict_taken_back_returns_the_group_to_review_and_withdraws_its_export() {
    let dir = tempfile::tempdir().unwrap();
    let matcher = matcher(dir.path());
    let mut triage = open(dir.path());
    let bytes = picture(ROBUST);
    let original = signals(&bytes);
    let (item, group) = new_item(&submit(&mut triage, &matcher, "r-1", &original).unwrap());
    let (copy, same) =
        new_item(&submit(&mut triage, &matcher, "r-2", &signals(&edits(&bytes)[0].1)).unwrap());
    assert_eq!(same, group);
    assert!(matches!(triage.reopen_group(group, "a", "undo"), Err(TriageError::CannotReopen { .. })));

    triage.assess_group(group, illegal("A"), "a", None).unwrap();
    triage.export_to(&matcher, LIST, None).unwrap();
    assert_eq!(matcher.check_signals(&original).outcome, MatchOutcome::Known);

    assert_eq!(triage.reopen_group(group, "a", "undo").unwrap(), [item, copy]);
    assert_eq!(triage.group(group).unwrap().state, GroupState::Pending);
    let page = triage.pending_groups(10, None).unwrap();
    assert_eq!(page.groups.iter().map(|g| (g.group, g.members)).collect::<Vec<_>>(), [(group, 2)]);
    for member in [item, copy] {
        let record = triage.item(member).unwrap();
        assert_eq!(record.state, ItemState::Pending { group });
        assert_eq!(record.verdict(), None);
        assert_eq!(record.verdicts.len(), 1, "the verdict taken back stays in the record");
        let history = triage.history(HistoryOf::Item(member)).unwrap();
        assert!(history.iter().any(|e| matches!(&e.what,
            EventKind::Reopened { group: g, analyst, note } if *g == group && analyst == "a" && note == "undo")));
    }
    let export = triage.export_to(&matcher, LIST, None).unwrap();
    assert!(export.items().iter().all(|e| e.category.is_none()) && export.items().len() == 2);
    assert_eq!(matcher.check_signals(&original).outcome, MatchOutcome::Unknown);
    // A copy reported now joins the reopened group rather than inheriting the verdict.
    let third = signals(&edits(&bytes)[1].1);
    assert!(
        matches!(submit(&mut triage, &matcher, "r-3", &third).unwrap(), Disposition::New { group: g, .. } if g == group)
    );

    // Judged again: the new verdict stands on top of the one taken back.
    triage.assess_group(group, VerdictKind::Legal, "b", None).unwrap();
    assert_eq!(triage.item(item).unwrap().verdicts.len(), 2);
    assert_eq!(triage.item(item).unwrap().verdict().unwrap().kind, VerdictKind::Legal);

    // Corrected since: refused, and nothing changed.
    triage.assess_item(copy, illegal("B"), "qa", None).unwrap();
    let refused = triage.reopen_group(group, "b", "undo");
    assert!(matches!(refused, Err(TriageError::CannotReopen { .. })), "{refused:?}");
    assert_eq!(triage.item(item).unwrap().state, ItemState::Assessed);

    // Inherited since: refused.
    let other = picture(PICTURES[1]);
    let (_, other_group) = new_item(&submit(&mut triage, &matcher, "r-4", &signals(&other)).unwrap());
    triage.assess_group(other_group, illegal("A"), "a", None).unwrap();
    let inheritor = submit(&mut triage, &matcher, "r-5", &signals(&edits(&other)[0].1)).unwrap();
    assert!(matches!(inheritor, Disposition::PreviouslyAssessed { .. }), "{inheritor:?}");
    let refused = triage.reopen_group(other_group, "a", "undo");
    assert!(matches!(refused, Err(TriageError::CannotReopen { .. })), "{refused:?}");
    assert_eq!(triage.group(other_group).unwrap().state, GroupState::Assessed);
}

/// The queue's other order: the largest groups first, ties oldest first, paged by offset —
/// equal to every pending group sorted so.
#[test]
fn the_largest_pending_groups_come_first() {
    let dir = tempfile::tempdir().unwrap();
    let matcher = matcher(dir.path());
    let mut triage = open(dir.path());
    let mut rng = hashsieve_testkit::Rng::new(5);
    for group in 0..12usize {
        let base = PdqHash(rng.bytes());
        for member in 0..1 + (group * 7) % 4 {
            let bytes = format!("group {group} member {member}").into_bytes();
            let report = format!("r-{group}-{member}");
            submit(&mut triage, &matcher, &report, &synthetic(&bytes, flipped(&base, 0..member), 100))
                .unwrap();
        }
    }
    let mut expected = triage.pending_groups(100, None).unwrap().groups;
    assert_eq!(expected.len(), 12);
    expected.sort_by(|a, b| b.members.cmp(&a.members).then(a.group.cmp(&b.group)));
    let mut pages = Vec::new();
    for skip in (0..14).step_by(5) {
        pages.extend(triage.largest_pending_groups(skip, 5).unwrap());
    }
    assert_eq!(pages, expected);
    assert!(pages[0].members > pages[11].members);
}

#[test]
fn the_priority_sources_groups_come_first() {
    let dir = tempfile::tempdir().unwrap();
    let matcher = matcher(dir.path());
    let mut triage = open(dir.path());
    let mut rng = hashsieve_testkit::Rng::new(9);
    let sources = ["web-form", "police", "partner", "crawler"];
    // Each member of a group reported from a source of its own, so that a group's rank is
    // decided by any member's report, not the first alone.
    let mut reported_from = Vec::new();
    for group in 0..16usize {
        let base = PdqHash(rng.bytes());
        let members = 1 + (group * 5) % 3;
        let mut from = Vec::new();
        for member in 0..members {
            let source = sources[(group * 3 + member * 7) % sources.len()];
            let bytes = format!("group {group} member {member}").into_bytes();
            let report = Report { source: source.to_string(), ..report(&format!("r-{group}-{member}")) };
            triage.submit(&report, &synthetic(&bytes, flipped(&base, 0..member), 100), &matcher).unwrap();
            from.push(source);
        }
        reported_from.push(from);
    }
    let priorities = vec!["police".to_string(), "partner".to_string()];
    // The oracle: each group's best-ranked source, by brute force over what was submitted.
    let pending = triage.pending_groups(100, None).unwrap().groups;
    assert_eq!(pending.len(), 16, "every group stays apart");
    let rank = |from: &[&str]| {
        from.iter().filter_map(|s| priorities.iter().position(|p| p == s)).min().unwrap_or(priorities.len())
    };
    let mut expected: Vec<_> =
        pending.iter().zip(&reported_from).map(|(summary, from)| (rank(from), summary.clone())).collect();
    expected.sort_by_key(|(rank, summary)| (*rank, summary.group));
    let expected: Vec<_> = expected.into_iter().map(|(_, summary)| summary).collect();
    let mut pages = Vec::new();
    for skip in (0..18).step_by(5) {
        pages.extend(triage.pending_groups_by_source(&priorities, skip, 5).unwrap());
    }
    assert_eq!(pages, expected);
    let ranks: std::collections::BTreeSet<usize> = reported_from.iter().map(|from| rank(from)).collect();
    assert_eq!(ranks.into_iter().collect::<Vec<_>>(), [0, 1, 2], "every rank is there to order");
    // Without priorities it is the queue's own order.
    assert_eq!(triage.pending_groups_by_source(&[], 0, 100).unwrap(), pending);
}

#[test]
fn an_analysts_preferences_are_kept_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut triage = open(dir.path());
    assert_eq!(triage.preferences("alice").unwrap(), None);
    triage.set_preferences("alice", b"{\"first_step\":\"softened\"}").unwrap();
    triage.set_preferences("bob", b"{}").unwrap();
    triage.set_preferences("alice", b"{\"first_step\":\"greyscale\"}").unwrap();
    let too_long = vec![b' '; hashsieve_triage::MAX_PREFERENCES_BYTES + 1];
    assert!(matches!(
        triage.set_preferences("alice", &too_long),
        Err(TriageError::PreferencesTooLarge { bytes }) if bytes == too_long.len()
    ));
    drop(triage);
    let triage = open(dir.path());
    assert_eq!(triage.preferences("alice").unwrap().as_deref(), Some(&b"{\"first_step\":\"greyscale\"}"[..]));
    assert_eq!(triage.preferences("bob").unwrap().as_deref(), Some(&b"{}"[..]));
}
