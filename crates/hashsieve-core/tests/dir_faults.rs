//! The index directory under the failures a SIGKILL cannot produce, through its storage seam:
//! a failed fsync, a short write on a full disk, a full disk during compaction, and a power
//! loss or a kill at every step of a workload — after which every acknowledged change is
//! there, and nothing a follower served is lost.
//!
//! [`MemoryDisk`] is an in-memory directory that keeps, beside what a process sees, what a
//! power loss would leave: each file's synced bytes and the directory entries as of the last
//! directory sync. Losing power keeps the synced bytes plus any prefix of the unsynced tail of
//! each file (some writes reach the platter, some do not), a rewritten-in-place file either old
//! or new, and removals and creations only if the directory was synced.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use hashsieve_core::delta::Change;
use hashsieve_core::hashes::HashKind;
use hashsieve_core::import::ImportedEntry;
use hashsieve_core::index::dir::{DirOptions, IndexDir, IndexDirError, LogFile, MarkFile, Storage};
use hashsieve_core::index::{IndexBuilder, IndexBytes, ListOptions};
use hashsieve_testkit::Rng;

const LIST: &str = "known";

#[derive(Debug, Clone, Default)]
struct Inode {
    /// What a process reads.
    data: Vec<u8>,
    /// What a power loss keeps for certain.
    synced: Vec<u8>,
}

/// Failures to inject, counted from when they are set.
#[derive(Debug, Clone, Default)]
struct Faults {
    /// The next `sync_data` fails with EIO.
    fail_next_sync: bool,
    /// Bytes the disk has room for, across all files; a write past it is cut short (ENOSPC).
    room: Option<u64>,
    /// From this write-side operation on (counted from 0 since creation) the machine is
    /// down: everything fails and nothing more is stored.
    power_cut_at: Option<u64>,
}

#[derive(Debug, Default)]
struct Disk {
    inodes: Vec<Inode>,
    names: BTreeMap<String, usize>,
    durable_names: BTreeMap<String, usize>,
    locked: bool,
    /// Write-side operations so far.
    ops: u64,
    faults: Faults,
}

impl Disk {
    fn used(&self) -> u64 {
        self.names.values().map(|&i| self.inodes[i].data.len() as u64).sum()
    }

    /// Counts a write-side operation; fails it once the power is cut.
    fn operate(&mut self) -> io::Result<()> {
        let op = self.ops;
        self.ops += 1;
        match self.faults.power_cut_at {
            Some(cut) if op >= cut => Err(io::Error::other("power cut")),
            _ => Ok(()),
        }
    }

    fn inode(&mut self, name: &str) -> io::Result<&mut Inode> {
        let &id = self.names.get(name).ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        Ok(&mut self.inodes[id])
    }

    /// Appends as much of `bytes` as there is room for.
    fn append(&mut self, name: &str, bytes: &[u8]) -> io::Result<()> {
        self.operate()?;
        let room = self.faults.room.map_or(u64::MAX, |room| room.saturating_sub(self.used()));
        let fits = bytes.len().min(usize::try_from(room).unwrap_or(usize::MAX));
        self.inode(name)?.data.extend_from_slice(&bytes[..fits]);
        if fits < bytes.len() { Err(io::Error::from(io::ErrorKind::StorageFull)) } else { Ok(()) }
    }
}

/// An in-memory index directory whose durability is modelled; clones share the disk.
#[derive(Debug, Clone, Default)]
struct MemoryDisk(Arc<Mutex<Disk>>);

impl MemoryDisk {
    fn disk(&self) -> MutexGuard<'_, Disk> {
        self.0.lock().unwrap()
    }

    fn set(&self, faults: Faults) {
        self.disk().faults = faults;
    }

    fn ops(&self) -> u64 {
        self.disk().ops
    }

    fn storage(&self) -> Arc<dyn Storage> {
        Arc::new(self.clone())
    }

    /// The disk as a power loss now leaves it, choosing what of the unsynced survives by `rng`.
    fn after_power_loss(&self, rng: &mut Rng) -> MemoryDisk {
        let disk = self.disk();
        let inodes = disk
            .inodes
            .iter()
            .map(|inode| {
                let data = if inode.data.starts_with(&inode.synced) {
                    let tail = inode.data.len() - inode.synced.len();
                    inode.data[..inode.synced.len() + rng.below(tail as u64 + 1) as usize].to_vec()
                } else if rng.below(2) == 0 {
                    inode.synced.clone()
                } else {
                    inode.data.clone()
                };
                Inode { synced: data.clone(), data }
            })
            .collect();
        let names = disk.durable_names.clone();
        MemoryDisk(Arc::new(Mutex::new(Disk {
            inodes,
            durable_names: names.clone(),
            names,
            ..Disk::default()
        })))
    }
}

#[derive(Debug)]
struct LockGuard(MemoryDisk);

impl Drop for LockGuard {
    fn drop(&mut self) {
        self.0.disk().locked = false;
    }
}

#[derive(Debug)]
struct MemoryFile {
    disk: MemoryDisk,
    name: String,
}

impl LogFile for MemoryFile {
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.disk.disk().append(&self.name, bytes)
    }

    fn sync_data(&mut self) -> io::Result<()> {
        let mut disk = self.disk.disk();
        disk.operate()?;
        if std::mem::take(&mut disk.faults.fail_next_sync) {
            return Err(io::Error::other("injected: fsync failed"));
        }
        let inode = disk.inode(&self.name)?;
        inode.synced = inode.data.clone();
        Ok(())
    }
}

impl MarkFile for MemoryFile {
    fn rewrite(&mut self, bytes: &[u8]) -> io::Result<()> {
        let mut disk = self.disk.disk();
        disk.operate()?;
        let inode = disk.inode(&self.name)?;
        if inode.data.len() < bytes.len() {
            inode.data.resize(bytes.len(), 0);
        }
        inode.data[..bytes.len()].copy_from_slice(bytes);
        Ok(())
    }
}

impl Storage for MemoryDisk {
    fn path(&self, name: &str) -> PathBuf {
        PathBuf::from("memory").join(name)
    }

    fn lock(&self) -> io::Result<Option<Box<dyn fmt::Debug + Send + Sync>>> {
        let mut disk = self.disk();
        if std::mem::replace(&mut disk.locked, true) {
            return Ok(None);
        }
        Ok(Some(Box::new(LockGuard(self.clone()))))
    }

    fn list(&self) -> io::Result<Vec<String>> {
        Ok(self.disk().names.keys().cloned().collect())
    }

    fn read(&self, name: &str) -> io::Result<Vec<u8>> {
        Ok(self.disk().inode(name)?.data.clone())
    }

    fn map(&self, name: &str) -> io::Result<IndexBytes> {
        self.read(name).map(IndexBytes::Owned)
    }

    fn write_atomically(&self, name: &str, bytes: &[u8]) -> io::Result<()> {
        let mut disk = self.disk();
        disk.operate()?;
        if disk.faults.room.is_some_and(|room| disk.used() + bytes.len() as u64 > room) {
            // The temporary file fills the disk and is removed; `name` is as it was.
            return Err(io::Error::from(io::ErrorKind::StorageFull));
        }
        disk.inodes.push(Inode { data: bytes.to_vec(), synced: bytes.to_vec() });
        let id = disk.inodes.len() - 1;
        disk.names.insert(name.to_string(), id);
        disk.durable_names = disk.names.clone();
        Ok(())
    }

    fn append(&self, name: &str) -> io::Result<Box<dyn LogFile>> {
        self.disk().inode(name)?;
        Ok(Box::new(MemoryFile { disk: self.clone(), name: name.to_string() }))
    }

    fn rewrite(&self, name: &str) -> io::Result<Box<dyn MarkFile>> {
        self.disk().inode(name)?;
        Ok(Box::new(MemoryFile { disk: self.clone(), name: name.to_string() }))
    }

    fn truncate(&self, name: &str, len: u64) -> io::Result<()> {
        let mut disk = self.disk();
        disk.operate()?;
        let inode = disk.inode(name)?;
        inode.data.truncate(len as usize);
        inode.synced = inode.data.clone();
        Ok(())
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        let mut disk = self.disk();
        disk.operate()?;
        disk.names.remove(name).map(drop).ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
    }

    fn sync_dir(&self) -> io::Result<()> {
        let mut disk = self.disk();
        disk.operate()?;
        disk.durable_names = disk.names.clone();
        Ok(())
    }
}

fn md5(n: u64) -> Vec<u8> {
    let mut value = vec![0xa5; 16];
    value[..8].copy_from_slice(&n.to_le_bytes());
    value
}

/// Batch `n`: the list (idempotent) and entry `n`.
fn batch(n: u64) -> Vec<Change> {
    vec![
        Change::DefineList(ListOptions::new(LIST)),
        Change::Add { list: LIST.into(), entry: ImportedEntry::new(HashKind::Md5, md5(n)) },
    ]
}

fn options(writable: bool) -> DirOptions {
    DirOptions { writable, compact_after: None, repair: false }
}

fn open(disk: &MemoryDisk, writable: bool) -> Result<Arc<IndexDir>, IndexDirError> {
    IndexDir::open_in(disk.storage(), options(writable)).map(|(dir, _)| Arc::new(dir))
}

/// The entries `dir` serves, by number.
fn entries(dir: &IndexDir) -> BTreeSet<u64> {
    let mut found = BTreeSet::new();
    dir.current().view(|view| {
        view.for_each_entry(|entry| {
            found.insert(u64::from_le_bytes(entry.to_entry().value[..8].try_into().unwrap()));
        });
    });
    found
}

fn created() -> MemoryDisk {
    let disk = MemoryDisk::default();
    IndexDir::create_in(&disk, &IndexBuilder::new()).unwrap();
    disk
}

#[test]
fn a_failed_fsync_fails_its_write_and_every_later_one_until_reopened() {
    let disk = created();
    let dir = open(&disk, true).unwrap();
    dir.submit(batch(0), None).unwrap();
    disk.set(Faults { fail_next_sync: true, ..Faults::default() });

    let failed = dir.submit(batch(1), None);
    assert!(matches!(failed, Err(IndexDirError::Failed(_))), "{failed:?}");
    assert_eq!(entries(&dir), BTreeSet::from([0]), "a batch whose fsync failed is not applied");
    let ops = disk.ops();
    let later = dir.submit(batch(2), None);
    assert!(matches!(later, Err(IndexDirError::Failed(_))), "{later:?}");
    assert!(matches!(dir.compact(), Err(IndexDirError::Failed(_))));
    assert_eq!(disk.ops(), ops, "nothing is written after a failed write");
    let follower = open(&disk, false).unwrap();
    assert_eq!(entries(&follower), BTreeSet::from([0]), "the mark did not move past the failure");

    drop(dir);
    let reopened = open(&disk, true).unwrap();
    assert!(entries(&reopened).contains(&0));
    reopened.submit(batch(3), None).unwrap();
    let after = open(&disk.after_power_loss(&mut Rng::new(7)), true).unwrap();
    assert!(entries(&after).is_superset(&BTreeSet::from([0, 3])), "{:?}", entries(&after));
}

#[test]
fn a_short_write_on_a_full_disk_is_cut_on_reopen_and_writing_goes_on() {
    let disk = created();
    let dir = open(&disk, true).unwrap();
    for n in 0..3 {
        dir.submit(batch(n), None).unwrap();
    }
    let used = disk.disk().used();
    disk.set(Faults { room: Some(used + 20), ..Faults::default() });
    let full = dir.submit(batch(3), None);
    assert!(
        matches!(&full, Err(IndexDirError::Failed(err)) if err.kind() == io::ErrorKind::StorageFull),
        "{full:?}"
    );
    assert!(matches!(dir.submit(batch(4), None), Err(IndexDirError::Failed(_))));
    drop(dir);

    disk.set(Faults::default());
    let (dir, report) = IndexDir::open_in(disk.storage(), options(true)).unwrap();
    assert_eq!(report.cut.len(), 1, "the torn record is cut: {report:?}");
    assert_eq!(report.cut[0].0, PathBuf::from("memory/delta-00000000000000000001.log"));
    let dir = Arc::new(dir);
    assert_eq!(entries(&dir), BTreeSet::from([0, 1, 2]));
    dir.submit(batch(5), None).unwrap();
    let after = open(&disk.after_power_loss(&mut Rng::new(11)), true).unwrap();
    assert_eq!(entries(&after), BTreeSet::from([0, 1, 2, 5]));
}

#[test]
fn a_full_disk_during_compaction_leaves_the_directory_serving_and_writable() {
    let disk = created();
    let dir = open(&disk, true).unwrap();
    for n in 0..50 {
        dir.submit(batch(n), None).unwrap();
    }
    // Room for more log records, not for a new index file of fifty entries.
    let used = disk.disk().used();
    disk.set(Faults { room: Some(used + 1_000), ..Faults::default() });
    let full = dir.compact();
    assert!(
        matches!(&full, Err(IndexDirError::Io { source, .. }) if source.kind() == io::ErrorKind::StorageFull),
        "{full:?}"
    );
    assert_eq!(dir.current().number(), 1, "the old generation is still served");
    dir.submit(batch(50), None).unwrap();
    assert_eq!(entries(&dir), (0..=50).collect());

    disk.set(Faults::default());
    let done = dir.compact().unwrap();
    assert_eq!(done.entries, 51);
    dir.submit(batch(51), None).unwrap();
    drop(dir);
    let after = open(&disk.after_power_loss(&mut Rng::new(13)), true).unwrap();
    assert_eq!(entries(&after), (0..=51).collect());
    assert_eq!(after.current().number(), done.generation);
}

/// Batches, with a compaction after every `COMPACT_EVERY`: what a power cut interrupts.
const BATCHES: u64 = 24;
const COMPACT_EVERY: u64 = 7;

/// Runs the workload until the power is cut; returns the batches acknowledged.
fn run_until_cut(disk: &MemoryDisk) -> BTreeSet<u64> {
    let mut acknowledged = BTreeSet::new();
    let Ok(dir) = open(disk, true) else { return acknowledged };
    for n in 0..BATCHES {
        if dir.submit(batch(n), None).is_ok() {
            acknowledged.insert(n);
        }
        if n % COMPACT_EVERY == COMPACT_EVERY - 1 {
            let _ = dir.compact();
        }
    }
    acknowledged
}

#[test]
fn a_power_loss_or_a_kill_at_any_step_keeps_every_acknowledged_batch_and_all_a_follower_served() {
    let whole = created();
    let created_ops = whole.ops();
    assert_eq!(run_until_cut(&whole).len() as u64, BATCHES);
    let total_ops = whole.ops();
    let mut cuts = 0;
    for cut in created_ops..=total_ops {
        for seed in 1..=3u64 {
            let disk = created();
            disk.set(Faults { power_cut_at: Some(cut), ..Faults::default() });
            let acknowledged = run_until_cut(&disk);
            let mut rng = Rng::new(seed << 32 ^ cut);
            let lost = disk.after_power_loss(&mut rng);

            let follower = open(&lost, false).unwrap_or_else(|err| panic!("cut {cut}: follower: {err}"));
            let followed = entries(&follower);
            drop(follower);
            let recovered = open(&lost, true).unwrap_or_else(|err| panic!("cut {cut}: recovery: {err}"));
            let present = entries(&recovered);

            // Batches are written in order, so what survives is a prefix of them.
            let prefix: BTreeSet<u64> = (0..present.len() as u64).collect();
            assert_eq!(present, prefix, "cut {cut} seed {seed}: not a prefix");
            assert!(present.is_superset(&acknowledged), "cut {cut} seed {seed}: acknowledged lost");
            assert!(present.is_superset(&followed), "cut {cut} seed {seed}: a follower served {followed:?}");
            drop(recovered);
            let again = open(&lost.after_power_loss(&mut rng), true).unwrap();
            assert_eq!(entries(&again), present, "cut {cut} seed {seed}: recovery was not durable");

            // A process killed at the same step leaves unsynced bytes in the page cache: the
            // writer that restarts replays them, and must make them durable before a follower
            // is told of them.
            let killed = created();
            killed.set(Faults { power_cut_at: Some(cut), ..Faults::default() });
            let acknowledged = run_until_cut(&killed);
            killed.set(Faults::default());
            let restarted = open(&killed, true).unwrap_or_else(|err| panic!("cut {cut}: restart: {err}"));
            let followed = entries(&open(&killed, false).unwrap());
            drop(restarted);
            let present = entries(&open(&killed.after_power_loss(&mut rng), true).unwrap());
            assert!(
                present.is_superset(&acknowledged),
                "cut {cut} seed {seed}: acknowledged lost after a kill"
            );
            assert!(
                present.is_superset(&followed),
                "cut {cut} seed {seed}: followed {followed:?}, kept {present:?}"
            );
            cuts += 1;
        }
    }
    assert!(cuts > 3 * 80, "the workload has only {} write-side steps", total_ops - created_ops);
}
