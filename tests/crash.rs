//! Proof by fault: the real `hashsieve list apply` is fed batches of changes and killed with
//! SIGKILL at a random moment — often in the middle of an automatic compaction — then the
//! directory is read as a follower reads it (read-only, up to the writer's durable mark), and
//! again after a writable open has recovered it, and each time checked against what was
//! acknowledged:
//!
//! - every acknowledged batch is there, whole (a follower sees each as soon as it is
//!   acknowledged, and recovery keeps everything the follower saw);
//! - a batch that was not acknowledged is there whole or not at all (batches mix adds and
//!   removals, so half of one would show);
//! - nothing else changed, and the directory verifies.
//!
//! `HASHSIEVE_CRASH_TRIALS` sets the number of kills (50 by default, for CI);
//! `tests/soak/crash.sh` runs a thousand against a release build. `HASHSIEVE_CRASH_SEED`
//! replays a run.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hashsieve_core::index::dir::Fingerprint;
use hashsieve_testkit::Rng;

type Value = [u8; 16];

const LIST: &str = "hot";
const ALLOW: &str = "allow";
const BASE_ENTRIES: u32 = 20_000;

fn value(tag: u8, a: u32, b: u32, c: u8) -> Value {
    let mut v = [0u8; 16];
    v[0] = tag;
    v[1..5].copy_from_slice(&a.to_le_bytes());
    v[5..9].copy_from_slice(&b.to_le_bytes());
    v[9] = c;
    v[15] = 0x5c;
    v
}

/// One input line: one batch, applied whole or not at all.
#[derive(Debug, Default)]
struct Line {
    adds: Vec<(&'static str, Value)>,
    removes: Vec<Value>,
}

impl Line {
    fn json(&self) -> String {
        let mut changes = Vec::new();
        for (list, v) in &self.adds {
            if *list == ALLOW {
                changes.push(serde_json::json!({"op": "define", "list": ALLOW, "role": "allow"}));
            }
            changes
                .push(serde_json::json!({"op": "add", "list": list, "kind": "md5", "value": hex::encode(v)}));
        }
        for v in &self.removes {
            changes.push(
                serde_json::json!({"op": "remove", "list": LIST, "kind": "md5", "value": hex::encode(v)}),
            );
        }
        serde_json::Value::Array(changes).to_string()
    }
}

fn hashsieve(args: &[&str]) -> std::process::Output {
    hashsieve_testkit::run(env!("CARGO_BIN_EXE_hashsieve"), args)
}

/// One line of `list dump`, as much of it as the test reads.
#[derive(serde::Deserialize)]
struct Dumped<'a> {
    list: &'a str,
    kind: &'a str,
    value: &'a str,
}

/// The directory's md5 entries as (list, value), through a read-only `list dump`.
fn dump(dir: &Path) -> (BTreeSet<(String, Value)>, usize) {
    let output = hashsieve(&["list", "dump", dir.to_str().unwrap()]);
    assert!(output.status.success(), "dump: {}", String::from_utf8_lossy(&output.stderr));
    let mut md5 = BTreeSet::new();
    let mut pdq = 0;
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let entry: Dumped = serde_json::from_str(line).unwrap();
        match entry.kind {
            "md5" => {
                let value: Value = hex::decode(entry.value).unwrap().try_into().unwrap();
                assert!(md5.insert((entry.list.to_string(), value)), "duplicate entry");
            }
            "pdq" => pdq += 1,
            kind => panic!("unexpected kind {kind}"),
        }
    }
    (md5, pdq)
}

fn create(dir: &Path) -> BTreeSet<(String, Value)> {
    let temp = dir.parent().unwrap();
    let mut md5 = String::new();
    let mut pdq = String::new();
    let mut present = BTreeSet::new();
    for i in 0..BASE_ENTRIES {
        let v = value(0xba, i, 0, 0);
        md5.push_str(&format!("{}\n", hex::encode(v)));
        present.insert((LIST.to_string(), v));
        let mut h = [0u8; 32];
        h[..16].copy_from_slice(&v);
        h[16..20].copy_from_slice(&(i.wrapping_mul(2_654_435_761)).to_le_bytes());
        pdq.push_str(&format!("{}\n", hex::encode(h)));
    }
    std::fs::write(temp.join("base.md5"), md5).unwrap();
    std::fs::write(temp.join("base.pdq"), pdq).unwrap();
    let output = hashsieve(&[
        "index",
        "build",
        "--dir",
        dir.to_str().unwrap(),
        "--list",
        &format!("{LIST}={}", temp.join("base.md5").display()),
        "--kind",
        "md5",
        "--list",
        &format!("shapes={}", temp.join("base.pdq").display()),
        "--kind",
        "pdq",
    ]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    present
}

#[test]
fn every_acknowledged_change_survives_kill_9() {
    let trials: u32 = std::env::var("HASHSIEVE_CRASH_TRIALS").ok().and_then(|t| t.parse().ok()).unwrap_or(50);
    let seed: u64 =
        std::env::var("HASHSIEVE_CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
        }) | 1;
    eprintln!("crash test: {trials} trials, HASHSIEVE_CRASH_SEED={seed}");
    let mut rng = Rng::new(seed);
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("index");
    let mut present = create(&dir);
    let (mut acknowledged_total, mut mid_compaction, mut cut_tails) = (0u64, 0u32, 0u32);
    let started = Instant::now();

    for trial in 0..trials {
        // A fresh directory every 50 kills keeps each check's cost bounded in long runs.
        if trial > 0 && trial % 50 == 0 {
            std::fs::remove_dir_all(&dir).unwrap();
            present = create(&dir);
        }
        // Removals target entries present at the start, each at most once per trial.
        let mut removable: Vec<Value> =
            present.iter().filter(|(list, _)| list == LIST).map(|(_, v)| *v).collect();
        let mut lines = Vec::new();
        for number in 0..3000u32 {
            let mut line = Line::default();
            match rng.below(10) {
                0..=4 => {
                    for i in 0..=rng.below(3) as u8 {
                        line.adds.push((LIST, value(0xad, trial, number, i)));
                    }
                }
                5 | 6 if !removable.is_empty() => {
                    let at = rng.below(removable.len() as u64) as usize;
                    line.removes.push(removable.swap_remove(at));
                }
                7 | 8 if !removable.is_empty() => {
                    let at = rng.below(removable.len() as u64) as usize;
                    line.adds.push((LIST, value(0xad, trial, number, 0)));
                    line.removes.push(removable.swap_remove(at));
                }
                _ => line.adds.push((ALLOW, value(0xa1, trial, number, 0))),
            }
            lines.push(line);
        }

        let mut child = Command::new(env!("CARGO_BIN_EXE_hashsieve"))
            .args(["list", "apply", dir.to_str().unwrap(), "--writers", "4", "--compact-after", "400"])
            .env("HASHSIEVE_LOG", "info")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let text: Vec<String> = lines.iter().map(Line::json).collect();
        let feeder = std::thread::spawn(move || {
            for line in text {
                if writeln!(stdin, "{line}").is_err() {
                    break;
                }
            }
        });
        let acked = Arc::new(Mutex::new(BTreeMap::<usize, bool>::new()));
        let reader = {
            let acked = Arc::clone(&acked);
            let stdout = child.stdout.take().unwrap();
            std::thread::spawn(move || {
                for ack in BufReader::new(stdout).lines() {
                    let Ok(ack) = ack else { break };
                    let ack: serde_json::Value = serde_json::from_str(&ack).expect("acks are JSON");
                    let line = ack["line"].as_u64().unwrap() as usize - 1;
                    acked.lock().unwrap().insert(line, ack.get("error").is_none());
                }
            })
        };
        std::thread::sleep(Duration::from_millis(20 + rng.below(400)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        feeder.join().unwrap();
        reader.join().unwrap();
        let acked = acked.lock().unwrap().clone();
        assert!(acked.values().all(|&ok| ok), "trial {trial}: a batch was refused: {acked:?}");
        acknowledged_total += acked.len() as u64;

        let names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        let logs = names.iter().filter(|n| n.starts_with("delta-")).count();
        let bases = names.iter().filter(|n| n.starts_with("base-")).count();
        if logs > 1 || bases > 1 || names.iter().any(|n| n.contains(".tmp-")) {
            mid_compaction += 1;
        }

        // A follower reads the directory as the kill left it: only what the writer made durable.
        let (followed, pdq) = dump(&dir);
        assert_eq!(pdq, BASE_ENTRIES as usize, "trial {trial}: PDQ entries of the base changed");
        check_batches(trial, "as followed after the kill", &present, &lines, &acked, &followed);

        // The directory verifies as the kill left it. Recovery — a writable open, here by a
        // `list apply` given no changes — cuts any torn tail and makes durable what whole
        // records hold; then the directory holds what the follower saw and perhaps batches
        // that were written but not yet acknowledged.
        let output = hashsieve(&["index", "verify", dir.to_str().unwrap()]);
        assert!(output.status.success(), "trial {trial}: {}", String::from_utf8_lossy(&output.stderr));
        let before_recovery = Fingerprint::of(&dir);
        let recovery = Command::new(env!("CARGO_BIN_EXE_hashsieve"))
            .args(["list", "apply", dir.to_str().unwrap()])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(recovery.status.success(), "trial {trial}: {}", String::from_utf8_lossy(&recovery.stderr));
        // Unchanged files and mark hold the same entries: the dump is the slow part of a trial.
        if Fingerprint::of(&dir) == before_recovery {
            present = followed;
        } else {
            let (recovered, _) = dump(&dir);
            check_batches(trial, "after recovery", &followed, &lines, &acked, &recovered);
            present = recovered;
        }
        cut_tails += u32::from(String::from_utf8_lossy(&output.stdout).contains("torn write"));
    }
    eprintln!(
        "crash test: {trials} kills in {:.1} s, {acknowledged_total} acknowledged batches, all present; \
         {mid_compaction} kills left a compaction unfinished, {cut_tails} left a torn log tail",
        started.elapsed().as_secs_f64()
    );
}

/// Checks the entries `observed` against `before` and the trial's batches: every acknowledged
/// batch is there whole, any other whole or not at all, and nothing else changed.
fn check_batches(
    trial: u32,
    when: &str,
    before: &BTreeSet<(String, Value)>,
    lines: &[Line],
    acked: &BTreeMap<usize, bool>,
    observed: &BTreeSet<(String, Value)>,
) {
    let mut expected = before.clone();
    for (number, line) in lines.iter().enumerate() {
        let added = line.adds.iter().filter(|(l, v)| observed.contains(&(l.to_string(), *v))).count();
        let removed = line.removes.iter().filter(|v| !observed.contains(&(LIST.to_string(), **v))).count();
        let whole = added == line.adds.len() && removed == line.removes.len();
        let none = added == 0 && removed == 0;
        if acked.contains_key(&number) {
            assert!(whole, "trial {trial}, {when}: acknowledged batch {number} is not all there: {line:?}");
        } else {
            assert!(whole || none, "trial {trial}, {when}: batch {number} is half applied: {line:?}");
        }
        if whole {
            for (l, v) in &line.adds {
                expected.insert((l.to_string(), *v));
            }
            for v in &line.removes {
                expected.remove(&(LIST.to_string(), *v));
            }
        }
    }
    let unexplained: Vec<_> = observed.symmetric_difference(&expected).collect();
    assert!(
        unexplained.is_empty(),
        "trial {trial}, {when}: {} entries changed that no batch touched, such as {:?}",
        unexplained.len(),
        &unexplained[..unexplained.len().min(5)]
    );
}
