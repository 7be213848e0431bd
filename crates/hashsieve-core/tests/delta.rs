//! The index directory against a brute-force model of its lists: random adds, removals,
//! allow-list entries, refreshes, compactions and reopenings, then every query compared.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use hashsieve_core::delta::{Change, Removal};
use hashsieve_core::hashes::HashKind;
use hashsieve_core::import::ImportedEntry;
use hashsieve_core::index::dir::{DirOptions, IndexDir, IndexDirError};
use hashsieve_core::index::{IndexBuilder, ListOptions, ListRole};
use hashsieve_core::matcher::{MatchOutcome, Matcher};
use proptest::prelude::*;

/// A match as the tests compare it: list, id, category, distance, and whether it is on an
/// allow-list (model) or suppressed (matcher).
type Seen = (String, Option<String>, Option<String>, u32, bool);

/// The logical lists: what every query must see.
#[derive(Debug, Default, Clone)]
struct Model {
    lists: BTreeMap<String, ListOptions>,
    entries: Vec<(String, ImportedEntry)>,
}

impl Model {
    fn apply(&mut self, change: &Change) {
        match change {
            Change::DefineList(options) => {
                self.lists.entry(options.name.clone()).or_insert_with(|| options.clone());
            }
            Change::Add { list, entry } => {
                self.entries.retain(|(l, e)| {
                    !(l == list && e.kind == entry.kind && e.value == entry.value && e.id == entry.id)
                });
                self.entries.push((list.clone(), entry.clone()));
            }
            Change::Remove(removal) => self.entries.retain(|(l, e)| {
                !(removal.list.as_ref().is_none_or(|r| r == l)
                    && removal.hash.as_ref().is_none_or(|(k, v)| *k == e.kind && *v == e.value)
                    && removal.entry_id.as_ref().is_none_or(|id| e.id.as_ref() == Some(id)))
            }),
        }
    }

    /// (list, id, category, kind, value, distance) of every entry matching, allow-lists included.
    fn search(&self, kind: HashKind, value: &[u8]) -> Vec<Seen> {
        let mut out: Vec<_> = self
            .entries
            .iter()
            .filter(|(_, e)| e.kind == kind)
            .filter_map(|(list, e)| {
                let options = &self.lists[list];
                let distance: u32 = e.value.iter().zip(value).map(|(a, b)| (a ^ b).count_ones()).sum();
                let threshold = if kind == HashKind::Pdq { options.pdq_threshold } else { 0 };
                (distance <= threshold).then(|| {
                    (
                        list.clone(),
                        e.id.clone(),
                        e.category.clone(),
                        distance,
                        options.role == ListRole::Allow,
                    )
                })
            })
            .collect();
        out.sort();
        out
    }
}

fn pdq(seed: u8, flips: &[u8]) -> Vec<u8> {
    let mut value: Vec<u8> =
        (0..32u8).map(|i| i.wrapping_mul(37).wrapping_add(seed.wrapping_mul(101))).collect();
    for &bit in flips {
        value[(bit / 8) as usize % 32] ^= 1 << (bit % 8);
    }
    value
}

fn md5(n: u8) -> Vec<u8> {
    let mut value = vec![0xab; 16];
    value[15] = n;
    value
}

#[derive(Debug, Clone)]
enum Op {
    Add { list: usize, md5: Option<u8>, seed: u8, flips: Vec<u8>, id: Option<u8>, category: u8 },
    RemoveHash { list: Option<usize>, md5: Option<u8>, seed: u8, flips: Vec<u8> },
    RemoveId { list: usize, id: u8 },
    Allow { seed: u8, flips: Vec<u8> },
    Refresh { list: usize, keep_every: usize, add: u8 },
    Compact,
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    let flips = || proptest::collection::vec(any::<u8>(), 0..24);
    prop_oneof![
        6 => (0..2usize, proptest::option::of(0..6u8), 0..4u8, flips(), proptest::option::of(0..5u8), 0..3u8)
            .prop_map(|(list, md5, seed, flips, id, category)| Op::Add { list, md5, seed, flips, id, category }),
        2 => (proptest::option::of(0..2usize), proptest::option::of(0..6u8), 0..4u8, flips())
            .prop_map(|(list, md5, seed, flips)| Op::RemoveHash { list, md5, seed, flips }),
        2 => (0..2usize, 0..5u8).prop_map(|(list, id)| Op::RemoveId { list, id }),
        1 => (0..4u8, flips()).prop_map(|(seed, flips)| Op::Allow { seed, flips }),
        1 => (0..2usize, 1..4usize, 0..3u8).prop_map(|(list, keep_every, add)| Op::Refresh { list, keep_every, add }),
        1 => Just(Op::Compact),
        1 => Just(Op::Reopen),
    ]
}

const LISTS: [&str; 2] = ["hotline", "partner"];

fn list_options(i: usize) -> ListOptions {
    ListOptions { pdq_threshold: [31, 12][i], ..ListOptions::new(LISTS[i]) }
}

fn entry(md5_n: Option<u8>, seed: u8, flips: &[u8], id: Option<u8>, category: u8) -> ImportedEntry {
    let base = match md5_n {
        Some(n) => ImportedEntry::new(HashKind::Md5, md5(n)),
        None => ImportedEntry::new(HashKind::Pdq, pdq(seed, flips)),
    };
    let base = match id {
        Some(id) => base.with_id(format!("e{id}")),
        None => base,
    };
    base.with_category(format!("c{category}"))
}

/// A directory whose base holds list 0 with a few entries, so that removals hit the file too.
fn create(dir: &Path, model: &mut Model) {
    let mut builder = IndexBuilder::new();
    let list = builder.add_list(list_options(0)).unwrap();
    model.apply(&Change::DefineList(list_options(0)));
    for (i, e) in [
        entry(None, 0, &[], Some(1), 0),
        entry(None, 1, &[3, 9], None, 1),
        entry(Some(2), 0, &[], Some(2), 2),
        entry(None, 2, &[], Some(3), 0),
    ]
    .into_iter()
    .enumerate()
    {
        builder.add(list, &e).unwrap();
        model.apply(&Change::Add { list: LISTS[0].into(), entry: e });
        let _ = i;
    }
    IndexDir::create(dir, &builder).unwrap();
}

fn open(dir: &Path) -> Matcher {
    Matcher::open_dir(dir, DirOptions { compact_after: None, ..DirOptions::default() }).unwrap().0
}

fn check(matcher: &Matcher, model: &Model) -> Result<(), TestCaseError> {
    let mut queries: Vec<(HashKind, Vec<u8>)> = (0..6).map(|n| (HashKind::Md5, md5(n))).collect();
    for seed in 0..4 {
        for flips in [&[][..], &[1, 2, 3, 4, 5][..], &[7; 1][..], &(0..20).collect::<Vec<u8>>()[..]] {
            queries.push((HashKind::Pdq, pdq(seed, flips)));
        }
    }
    for (kind, value) in &queries {
        let expected = model.search(*kind, value);
        // The matcher reports block-list matches, each suppressed if the query also matches
        // an allow-list entry of its kind.
        let allowed = expected.iter().any(|m| m.4);
        let mut expected_block: Vec<_> = expected
            .iter()
            .filter(|m| !m.4)
            .map(|m| (m.0.clone(), m.1.clone(), m.2.clone(), m.3, allowed))
            .collect();
        expected_block.sort();
        let verdict = matcher.check_hash(*kind, value);
        let mut got: Vec<_> = verdict
            .matches
            .iter()
            .map(|m| {
                (
                    m.list.clone(),
                    m.entry_id.clone(),
                    m.category.clone(),
                    m.distance,
                    m.suppressed_by.is_some(),
                )
            })
            .collect();
        got.sort();
        prop_assert_eq!(&got, &expected_block, "{:?} {}", kind, hex::encode(value));
        let counted = expected_block.iter().any(|m| !m.4);
        prop_assert_eq!(verdict.outcome == MatchOutcome::Unknown, !counted);
    }
    // The whole logical set, entry by entry.
    let mut all: Vec<(String, ImportedEntry)> = Vec::new();
    matcher.current().view(|view| view.for_each_entry(|e| all.push((e.list.name.clone(), e.to_entry()))));
    let key = |(l, e): &(String, ImportedEntry)| {
        (l.clone(), e.kind, e.value.clone(), e.id.clone(), e.category.clone())
    };
    let mut got: Vec<_> = all.iter().map(key).collect();
    let mut expected: Vec<_> = model.entries.iter().map(key).collect();
    got.sort();
    expected.sort();
    prop_assert_eq!(got, expected);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn equals_the_model_through_changes_compactions_and_reopening(ops in proptest::collection::vec(op(), 1..40)) {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().join("index");
        let mut model = Model::default();
        create(&dir, &mut model);
        let mut matcher = open(&dir);
        // List 1 starts in the delta.
        let define = Change::DefineList(list_options(1));
        matcher.submit(vec![define.clone()], None).unwrap();
        model.apply(&define);
        for op in ops {
            let changes = match op {
                Op::Add { list, md5, seed, flips, id, category } => {
                    vec![Change::Add { list: LISTS[list].into(), entry: entry(md5, seed, &flips, id, category) }]
                }
                Op::RemoveHash { list, md5, seed, flips } => {
                    let e = entry(md5, seed, &flips, None, 0);
                    vec![Change::Remove(Removal::hash(list.map(|l| LISTS[l].to_string()), e.kind, e.value))]
                }
                Op::RemoveId { list, id } => vec![Change::Remove(Removal::entry(LISTS[list], format!("e{id}")))],
                Op::Allow { seed, flips } => {
                    let e = entry(None, seed, &flips, None, 0);
                    matcher.allow(None, vec![e.clone()], Some("tester")).unwrap();
                    model.apply(&Change::DefineList(ListOptions { role: ListRole::Allow, ..ListOptions::new("allow") }));
                    model.apply(&Change::Add { list: "allow".into(), entry: e });
                    vec![]
                }
                Op::Refresh { list, keep_every, add } => {
                    let name = LISTS[list];
                    let mut new: Vec<ImportedEntry> = model
                        .entries
                        .iter()
                        .filter(|(l, _)| l == name)
                        .enumerate()
                        .filter(|(i, _)| i % keep_every == 0)
                        .map(|(_, (_, e))| e.clone())
                        .collect();
                    new.extend((0..add).map(|i| entry(None, 3, &[i, 100], Some(4), 2)));
                    matcher.refresh(name, None, new.clone(), None).unwrap();
                    model.entries.retain(|(l, _)| l != name);
                    let mut fresh = Model { lists: model.lists.clone(), entries: Vec::new() };
                    for e in new {
                        fresh.apply(&Change::Add { list: name.into(), entry: e });
                    }
                    model.entries.extend(fresh.entries);
                    vec![]
                }
                Op::Compact => {
                    matcher.compact().unwrap();
                    vec![]
                }
                Op::Reopen => {
                    drop(matcher);
                    matcher = open(&dir);
                    vec![]
                }
            };
            if !changes.is_empty() {
                matcher.submit(changes.clone(), None).unwrap();
                for change in &changes {
                    model.apply(change);
                }
            }
            check(&matcher, &model)?;
        }
        drop(matcher);
        check(&open(&dir), &model)?;
        let base = std::fs::read_dir(&dir).unwrap().filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with("base-")).count();
        prop_assert_eq!(base, 1, "compaction leaves one base");
    }
}

#[test]
fn changes_are_refused_before_anything_is_written() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("index");
    create(&dir, &mut Model::default());
    let matcher = open(&dir);
    let unknown = matcher.add("nope", vec![entry(Some(1), 0, &[], None, 0)], None);
    assert!(matches!(unknown, Err(IndexDirError::Change(_))), "{unknown:?}");
    let conflict =
        matcher.submit(vec![Change::DefineList(ListOptions { pdq_threshold: 5, ..list_options(0) })], None);
    assert!(matches!(conflict, Err(IndexDirError::Change(_))), "{conflict:?}");
    let short = matcher.add(LISTS[0], vec![ImportedEntry::new(HashKind::Md5, vec![1; 3])], None);
    assert!(matches!(short, Err(IndexDirError::Change(_))), "{short:?}");
    let receipt = matcher.add(LISTS[0], vec![entry(Some(1), 0, &[], None, 0)], None).unwrap();
    assert_eq!(receipt.seq, 1, "refused batches take no sequence number");
    assert!(matches!(IndexDir::open(&dir, DirOptions::default()), Err(IndexDirError::Busy(_))));
    drop(matcher);
    let readonly = Matcher::open(&dir).unwrap();
    assert!(matches!(readonly.add(LISTS[0], vec![], None), Err(IndexDirError::ReadOnly)));
    assert_eq!(readonly.check_hash(HashKind::Md5, &md5(1)).outcome, MatchOutcome::Known);
}

/// Eight writers at once, each change acknowledged only when durable: all of them are there
/// after reopening, and they shared fsyncs.
#[test]
fn concurrent_writers_all_land() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("index");
    create(&dir, &mut Model::default());
    let matcher = Arc::new(open(&dir));
    std::thread::scope(|scope| {
        for writer in 0..8u8 {
            let matcher = Arc::clone(&matcher);
            scope.spawn(move || {
                for n in 0..50u8 {
                    let mut value = vec![writer; 16];
                    value[0] = n;
                    matcher.add(LISTS[0], vec![ImportedEntry::new(HashKind::Md5, value)], None).unwrap();
                }
            });
        }
    });
    drop(matcher);
    let matcher = open(&dir);
    for writer in 0..8u8 {
        for n in 0..50u8 {
            let mut value = vec![writer; 16];
            value[0] = n;
            assert_eq!(matcher.check_hash(HashKind::Md5, &value).outcome, MatchOutcome::Known);
        }
    }
}

/// Queries run on other threads through repeated compactions and writes; each sees every entry
/// that was acknowledged before it started and never an entry withdrawn before it started.
#[test]
fn queries_never_fail_during_compactions() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("index");
    create(&dir, &mut Model::default());
    let matcher = Arc::new(open(&dir));
    let stop = AtomicBool::new(false);
    let acknowledged = AtomicU64::new(0);
    let queries = AtomicU64::new(0);
    let value = |n: u64| {
        let mut v = vec![0x5a; 16];
        v[..8].copy_from_slice(&n.to_le_bytes());
        v
    };
    std::thread::scope(|scope| {
        for _ in 0..3 {
            scope.spawn(|| {
                let mut n = 0;
                while !stop.load(Ordering::Acquire) {
                    let known = acknowledged.load(Ordering::Acquire);
                    if known > 0 {
                        n = (n + 7) % known;
                        let verdict = matcher.check_hash(HashKind::Md5, &value(n + 1));
                        assert_eq!(verdict.outcome, MatchOutcome::Known, "entry {} lost", n + 1);
                        // Entry 1 of the file was withdrawn before any query began.
                        assert_eq!(matcher.check_hash(HashKind::Md5, &md5(2)).outcome, MatchOutcome::Unknown);
                        queries.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
        matcher.remove(vec![Removal::hash(None, HashKind::Md5, md5(2))], None).unwrap();
        for round in 0..6u64 {
            for i in 0..40 {
                let n = round * 40 + i + 1;
                matcher.add(LISTS[0], vec![ImportedEntry::new(HashKind::Md5, value(n))], None).unwrap();
                acknowledged.store(n, Ordering::Release);
            }
            matcher.compact().unwrap();
        }
        stop.store(true, Ordering::Release);
    });
    assert!(queries.load(Ordering::Relaxed) > 0);
}
