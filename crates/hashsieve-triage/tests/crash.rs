//! Acknowledged writes survive kill -9: a child process (this test binary, re-invoked) submits
//! (one by one, or in batches with one fsync each), assesses and splits, printing each write
//! after the call returned; the parent kills it mid-way, reopens the store, and finds every
//! acknowledged write.

mod support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use hashsieve_core::digest::{DigestSet, digest_bytes};
use hashsieve_core::pdq::PdqHash;
use hashsieve_core::signals::Signals;
use hashsieve_triage::model::{
    Disposition, EventKind, GroupId, Grouping, HistoryOf, ItemId, ItemState, VerdictKind,
};
use hashsieve_triage::{Triage, TriageOptions};
use support::{flipped, matcher, memory_matcher, report, synthetic};

const CHILD: &str = "HASHSIEVE_TRIAGE_CRASH_CHILD";
const ROUND: &str = "HASHSIEVE_TRIAGE_CRASH_ROUND";

/// Report `i`'s content: every third is a near-duplicate (5 bits off) of the one before, so
/// that groups get a second member to split off. Items assessed (every sixth) are never the
/// one before a near-duplicate, so every report is new.
fn content(i: u64) -> Signals {
    let seed = |i: u64| PdqHash(digest_bytes(format!("pdq-{i}").as_bytes(), DigestSet::ALL).sha256.unwrap());
    let hash = if i % 3 == 2 { flipped(&seed(i - 1), 0..5) } else { seed(i) };
    synthetic(format!("content-{i}").as_bytes(), hash, 90)
}

fn illegal() -> VerdictKind {
    VerdictKind::Illegal { category: "A".into() }
}

/// The writer, run in the child process; it does nothing in a normal test run.
#[test]
fn child_process_for_the_crash_test() {
    let Ok(dir) = std::env::var(CHILD) else { return };
    let round: u64 = std::env::var(ROUND).unwrap().parse().unwrap();
    let dir = Path::new(&dir);
    // Not the parent's index directory, which the parent holds open.
    let matcher = memory_matcher();
    let mut triage = Triage::open(&dir.join("triage.redb"), TriageOptions::default()).unwrap();
    // Rounds start at multiples of 3, so a near-duplicate follows its original in the same round.
    // Odd rounds only submit, in batches of 16 with one fsync each (`submit_all`), printing a
    // batch's reports once it returned: nothing else writes, so only that fsync makes them last.
    let range = round * 3_000..(round + 1) * 3_000;
    let batch = if round % 2 == 1 { 16 } else { 1 };
    let numbers: Vec<u64> = range.collect();
    for chunk in numbers.chunks(batch) {
        let reports: Vec<_> = chunk.iter().map(|&i| (report(&format!("r-{i}")), content(i))).collect();
        let outcomes = if batch == 1 {
            let (report, signals) = &reports[0];
            vec![triage.submit(report, signals, &matcher).unwrap()]
        } else {
            triage.submit_all(&reports, &matcher).unwrap().into_iter().map(Result::unwrap).collect()
        };
        for (&i, outcome) in chunk.iter().zip(outcomes) {
            let id = format!("r-{i}");
            let Disposition::New { item, group } = outcome else { panic!("{id}: {outcome:?}") };
            println!("submitted {id} {} {}", item.0, group.0);
            if batch > 1 {
                continue;
            }
            if i % 3 == 2 {
                let new = triage.split_group(group, &[item]).unwrap();
                println!("split {} {} {}", group.0, item.0, new.0);
            }
            if i % 6 == 0 {
                triage.assess_item(item, illegal(), "crash-test", None).unwrap();
                println!("assessed {}", item.0);
            }
        }
    }
}

/// Runs the child until it has acknowledged `writes` writes, kills it with SIGKILL, and returns
/// every line it printed.
fn run_and_kill(dir: &Path, round: u64, writes: usize) -> Vec<String> {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_process_for_the_crash_test", "--nocapture", "--test-threads=1"])
        .env(CHILD, dir)
        .env(ROUND, round.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut acknowledged = Vec::new();
    while acknowledged.len() < writes {
        let line = lines.next().expect("the child stopped early").unwrap();
        if line.starts_with("submitted ") || line.starts_with("split ") || line.starts_with("assessed ") {
            acknowledged.push(line);
        }
    }
    child.kill().unwrap(); // SIGKILL
    assert!(!child.wait().unwrap().success());
    // What it printed before it died is still in the pipe.
    acknowledged.extend(lines.map(Result::unwrap).filter(|l| !l.starts_with("running") && !l.is_empty()));
    acknowledged
}

#[test]
fn acknowledged_writes_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let matcher = matcher(dir.path());
    let mut all = Vec::new();
    for (round, writes) in [(0, 7), (1, 40), (2, 90)] {
        let acknowledged = run_and_kill(dir.path(), round, writes);
        let triage = Triage::open(&dir.path().join("triage.redb"), TriageOptions::default())
            .expect("the store opens cleanly after kill -9");
        check(&triage, &acknowledged);
        all.extend(acknowledged);
    }
    // After three crashes: everything is there, and redelivering each report is answered from
    // the record without new items.
    let mut triage = Triage::open(&dir.path().join("triage.redb"), TriageOptions::default()).unwrap();
    check(&triage, &all);
    let counts = triage.counts().unwrap();
    for line in all.iter().filter(|l| l.starts_with("submitted ")) {
        let id = line.split(' ').nth(1).unwrap();
        let i: u64 = id[2..].parse().unwrap();
        let signals = content(i);
        let outcome = triage.submit(&report(id), &signals, &matcher).unwrap();
        assert_eq!(outcome, triage.report(id).unwrap().outcome);
    }
    assert_eq!(triage.counts().unwrap(), counts);
}

fn check(triage: &Triage, acknowledged: &[String]) {
    assert!(!acknowledged.is_empty());
    for line in acknowledged {
        let fields: Vec<&str> = line.split(' ').collect();
        let number = |i: usize| fields[i].parse::<u64>().unwrap();
        match fields[0] {
            "submitted" => {
                let record = triage.report(fields[1]).unwrap_or_else(|e| panic!("{line}: {e}"));
                let (item, group) = (ItemId(number(2)), GroupId(number(3)));
                assert_eq!(record.outcome, Disposition::New { item, group }, "{line}");
                assert_eq!(triage.reports_of(item).unwrap(), [fields[1]], "{line}");
            }
            "split" => {
                let (from, item, to) = (GroupId(number(1)), ItemId(number(2)), GroupId(number(3)));
                let history = triage.history(HistoryOf::Item(item)).unwrap();
                let split = EventKind::Grouped { group: to, why: Grouping::Split { from } };
                assert!(history.iter().any(|e| e.what == split), "{line}: {history:?}");
                assert!(!triage.group(from).unwrap().members.contains(&item), "{line}");
                assert!(triage.group(to).unwrap().members.contains(&item), "{line}");
            }
            "assessed" => {
                let item = triage.item(ItemId(number(1))).unwrap();
                assert_eq!(item.state, ItemState::Assessed, "{line}");
                assert_eq!(item.verdict().unwrap().kind, illegal(), "{line}");
            }
            _ => panic!("unexpected output from the child: {line}"),
        }
    }
}
