//! What an index directory asks of the file system, as a seam.
//!
//! [`IndexDir`](super::IndexDir) never touches `std::fs` itself: it names files inside its
//! directory and asks a [`Storage`] to read, map, write, append, sync and remove them.
//! [`OsStorage`] is a directory on disk and is what [`IndexDir::open`](super::IndexDir::open)
//! uses. The seam is there for the failures a crash test with SIGKILL cannot produce: a test
//! hands [`IndexDir::open_in`](super::IndexDir::open_in) a storage of its own that fails an
//! fsync, cuts a write short or fills the disk at a chosen step, or loses power (forgets what
//! was never synced), and checks that no acknowledged change is lost — the way tantivy's
//! `Directory` lets its tests run on a RAM directory.
//!
//! The durability contract a storage must keep is the one the directory's recovery relies on:
//! [`Storage::write_atomically`] is all or nothing and durable, directory entry included, when
//! it returns; appended bytes are durable once [`LogFile::sync_data`] returns; a rewrite in
//! place ([`MarkFile::rewrite`]) and a removal may be lost by a power loss until the next sync.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::index::IndexBytes;
use crate::index::format::{map_file, sync_dir, write_atomically};

/// The file operations of an index directory; names are relative to the directory.
pub trait Storage: fmt::Debug + Send + Sync {
    /// Where `name` is, for messages.
    fn path(&self, name: &str) -> PathBuf;
    /// Takes the directory's write lock, held until the returned guard drops; `None` when
    /// another writer holds it.
    fn lock(&self) -> io::Result<Option<Box<dyn fmt::Debug + Send + Sync>>>;
    /// The names of the directory's entries.
    fn list(&self) -> io::Result<Vec<String>>;
    /// A whole file.
    fn read(&self, name: &str) -> io::Result<Vec<u8>>;
    /// An index file's bytes: mapped, where the storage can.
    fn map(&self, name: &str) -> io::Result<IndexBytes>;
    /// Makes `name` hold `bytes`, durably and all at once: after a crash it is absent (or
    /// as it was) or complete, never partial. A temporary file left by an interrupted write
    /// has a name [`is_temporary`](crate::index::format::is_temporary) recognises.
    fn write_atomically(&self, name: &str, bytes: &[u8]) -> io::Result<()>;
    /// Opens an existing file to append to.
    fn append(&self, name: &str) -> io::Result<Box<dyn LogFile>>;
    /// Opens an existing file to rewrite in place.
    fn rewrite(&self, name: &str) -> io::Result<Box<dyn MarkFile>>;
    /// Cuts a file to `len` bytes, durably.
    fn truncate(&self, name: &str, len: u64) -> io::Result<()>;
    /// Removes a file; the removal is durable after the next [`Storage::sync_dir`].
    fn remove(&self, name: &str) -> io::Result<()>;
    /// Makes the directory's entries (creations, renames, removals) durable.
    fn sync_dir(&self) -> io::Result<()>;
}

/// A file appended to: the active delta log.
pub trait LogFile: fmt::Debug + Send {
    /// Appends all of `bytes`; on an error some of them may have been written.
    fn append(&mut self, bytes: &[u8]) -> io::Result<()>;
    /// Makes what was appended durable (`fdatasync`).
    fn sync_data(&mut self) -> io::Result<()>;
}

/// A small file rewritten in place from its first byte: the durable mark.
pub trait MarkFile: fmt::Debug + Send {
    /// Overwrites the file's first `bytes.len()` bytes, without syncing.
    fn rewrite(&mut self, bytes: &[u8]) -> io::Result<()>;
}

/// An index directory on disk.
#[derive(Debug, Clone)]
pub struct OsStorage {
    dir: PathBuf,
}

impl OsStorage {
    /// The directory at `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> OsStorage {
        OsStorage { dir: dir.into() }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Storage for OsStorage {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn lock(&self) -> io::Result<Option<Box<dyn fmt::Debug + Send + Sync>>> {
        let file = OpenOptions::new().create(true).truncate(false).write(true).open(self.path("LOCK"))?;
        match file.try_lock() {
            Ok(()) => Ok(Some(Box::new(file))),
            Err(fs::TryLockError::WouldBlock) => Ok(None),
            Err(fs::TryLockError::Error(err)) => Err(err),
        }
    }

    fn list(&self) -> io::Result<Vec<String>> {
        fs::read_dir(&self.dir)?
            .map(|entry| entry.map(|entry| entry.file_name().to_string_lossy().into_owned()))
            .collect()
    }

    fn read(&self, name: &str) -> io::Result<Vec<u8>> {
        fs::read(self.path(name))
    }

    fn map(&self, name: &str) -> io::Result<IndexBytes> {
        map_file(&self.path(name)).map(IndexBytes::Mapped)
    }

    fn write_atomically(&self, name: &str, bytes: &[u8]) -> io::Result<()> {
        write_atomically(&self.path(name), |file| file.write_all(bytes))
    }

    fn append(&self, name: &str) -> io::Result<Box<dyn LogFile>> {
        Ok(Box::new(OsLogFile(OpenOptions::new().append(true).open(self.path(name))?)))
    }

    fn rewrite(&self, name: &str) -> io::Result<Box<dyn MarkFile>> {
        // Not `append`: on Linux a positioned write to a file opened for appending appends.
        Ok(Box::new(OsMarkFile(OpenOptions::new().write(true).open(self.path(name))?)))
    }

    fn truncate(&self, name: &str, len: u64) -> io::Result<()> {
        let file = OpenOptions::new().write(true).open(self.path(name))?;
        file.set_len(len)?;
        file.sync_all()
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        fs::remove_file(self.path(name))
    }

    fn sync_dir(&self) -> io::Result<()> {
        sync_dir(&self.dir)
    }
}

#[derive(Debug)]
struct OsLogFile(File);

impl LogFile for OsLogFile {
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.0.write_all(bytes)
    }

    fn sync_data(&mut self) -> io::Result<()> {
        self.0.sync_data()
    }
}

#[derive(Debug)]
struct OsMarkFile(File);

impl MarkFile for OsMarkFile {
    fn rewrite(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.0.write_all_at(bytes, 0)
    }
}
