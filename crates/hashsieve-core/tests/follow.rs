//! A follower — a process that opens an index directory read-only while another writes it —
//! serves only changes the writer has made durable: it reads the log up to the writer's durable
//! mark, not records written but not yet synced, which a power loss could drop.

use std::io::Write;
use std::path::{Path, PathBuf};

use hashsieve_core::delta::log::encode_record;
use hashsieve_core::delta::{Batch, Change};
use hashsieve_core::hashes::HashKind;
use hashsieve_core::import::ImportedEntry;
use hashsieve_core::index::dir::{DirOptions, Fingerprint, IndexDir, IndexDirError};
use hashsieve_core::index::{IndexBuilder, ListOptions};
use hashsieve_core::matcher::Matcher;

const LIST: &str = "known";

fn md5(n: u8) -> Vec<u8> {
    (0..16).map(|i| n.wrapping_mul(31).wrapping_add(i)).collect()
}

fn add(n: u8) -> Change {
    Change::Add { list: LIST.into(), entry: ImportedEntry::new(HashKind::Md5, md5(n)) }
}

/// A directory with an empty base; the list is defined by the first change.
fn create(dir: &Path) {
    IndexDir::create(dir, &IndexBuilder::new()).unwrap();
}

fn writer(dir: &Path) -> Matcher {
    Matcher::open_dir(dir, DirOptions { compact_after: None, ..DirOptions::default() }).unwrap().0
}

fn follower(dir: &Path) -> Result<Matcher, IndexDirError> {
    Matcher::open(dir)
}

/// Which of the entries `0..n` a matcher finds.
fn found(matcher: &Matcher, n: u8) -> Vec<u8> {
    (0..n)
        .filter(|&i| {
            let value = md5(i);
            matcher.current().view(|view| {
                let mut hits = Vec::new();
                view.search(HashKind::Md5, &value, None, &mut hits);
                !hits.is_empty()
            })
        })
        .collect()
}

fn active_log(dir: &Path) -> PathBuf {
    let mut logs: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("delta-"))
        .collect();
    logs.sort();
    logs.pop().unwrap()
}

#[test]
fn a_follower_serves_what_was_acknowledged_and_not_what_was_only_written() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("index");
    create(&dir);
    {
        let writer = writer(&dir);
        writer.submit(vec![Change::DefineList(ListOptions::new(LIST)), add(0)], None).unwrap();
        writer.submit(vec![add(1)], None).unwrap();
        assert_eq!(found(&follower(&dir).unwrap(), 4), [0, 1], "acknowledged changes are followed at once");
    }
    // A writer that crashed between its write and its fdatasync: the record is whole in the
    // page cache, and was never acknowledged.
    let record = encode_record(&Batch { seq: 3, time_ms: 0, actor: None, changes: vec![add(2)] });
    std::fs::OpenOptions::new().append(true).open(active_log(&dir)).unwrap().write_all(&record).unwrap();
    assert_eq!(found(&follower(&dir).unwrap(), 4), [0, 1], "a record not yet durable is not served");

    // The next writer replays the record, makes it durable, and from then on it is followed.
    let writer = writer(&dir);
    assert_eq!(found(&writer, 4), [0, 1, 2]);
    assert_eq!(found(&follower(&dir).unwrap(), 4), [0, 1, 2]);
}

#[test]
fn a_follower_follows_each_batch_across_compactions_and_sees_the_mark_move() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("index");
    create(&dir);
    let writer = writer(&dir);
    writer.submit(vec![Change::DefineList(ListOptions::new(LIST))], None).unwrap();
    let mut before = Fingerprint::of(&dir);
    for n in 0..6u8 {
        writer.submit(vec![add(n)], None).unwrap();
        if n % 2 == 1 {
            writer.compact().unwrap();
        }
        let now = Fingerprint::of(&dir);
        assert_ne!(now, before, "batch {n} changes what a follower watches");
        before = now;
        assert_eq!(found(&follower(&dir).unwrap(), 8), (0..=n).collect::<Vec<_>>(), "after batch {n}");
    }
}

#[test]
fn a_directory_without_a_durable_mark_is_followed_whole() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("index");
    create(&dir);
    let writer = writer(&dir);
    writer.submit(vec![Change::DefineList(ListOptions::new(LIST)), add(0), add(1)], None).unwrap();
    drop(writer);
    // As an older build left it.
    std::fs::remove_file(dir.join("DURABLE")).unwrap();
    assert_eq!(found(&follower(&dir).unwrap(), 4), [0, 1]);
}

#[test]
fn a_damaged_mark_stops_a_follower_until_the_writer_rewrites_it() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("index");
    create(&dir);
    writer(&dir).submit(vec![Change::DefineList(ListOptions::new(LIST)), add(0)], None).unwrap();
    let mark = dir.join("DURABLE");
    let mut bytes = std::fs::read(&mark).unwrap();
    bytes[20] ^= 1;
    std::fs::write(&mark, &bytes).unwrap();
    match follower(&dir) {
        Err(IndexDirError::DamagedMark { file, .. }) => assert_eq!(file, mark),
        other => panic!("a damaged mark is corruption, not a guess: {other:?}"),
    }
    drop(writer(&dir));
    assert_eq!(found(&follower(&dir).unwrap(), 2), [0]);
}
