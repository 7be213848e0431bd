//! Cryptographic digests — MD5, SHA-1, SHA-256, BLAKE3 — from a single pass over the bytes.
//!
//! Hash lists name content by different digests (Project VIC by MD5 and SHA-1, newer lists by
//! SHA-256), so every input is usually digested several ways. Reading it once for all of them
//! matters for large files, and so does using the cores: MD5 alone costs about as much as the
//! other three together on a CPU with SHA extensions, so for large inputs the requested digests
//! are split over worker threads by their cost, each worker running its share over the same
//! chunks of bytes. Memory stays bounded whatever the input size: a stream is read into a small
//! fixed pool of chunk buffers that the workers hand back once every worker is done with them.
//!
//! ```
//! use hashsieve_core::digest::{digest_bytes, DigestKind, DigestSet};
//!
//! let digests = digest_bytes(b"abc", DigestSet::ALL);
//! assert_eq!(digests.hex(DigestKind::Sha1).unwrap(), "a9993e364706816aba3e25717850c26c9cd0d89d");
//! let md5_only = digest_bytes(b"abc", "md5".parse().unwrap());
//! assert!(md5_only.md5.is_some() && md5_only.sha256.is_none());
//! ```

use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::thread;

use md5::Digest as _;

/// One cryptographic digest algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DigestKind {
    /// MD5, 16 bytes. Broken for collisions, still the key of many hash lists.
    Md5,
    /// SHA-1, 20 bytes.
    Sha1,
    /// SHA-256, 32 bytes.
    Sha256,
    /// BLAKE3, 32 bytes.
    Blake3,
}

impl DigestKind {
    /// Every kind, in a fixed order.
    pub const ALL: [DigestKind; 4] =
        [DigestKind::Md5, DigestKind::Sha1, DigestKind::Sha256, DigestKind::Blake3];

    /// The lower-case name used in lists, JSON and CSV: `md5`, `sha1`, `sha256`, `blake3`.
    pub fn name(self) -> &'static str {
        match self {
            DigestKind::Md5 => "md5",
            DigestKind::Sha1 => "sha1",
            DigestKind::Sha256 => "sha256",
            DigestKind::Blake3 => "blake3",
        }
    }

    /// The digest's length in bytes.
    pub fn digest_len(self) -> usize {
        match self {
            DigestKind::Md5 => 16,
            DigestKind::Sha1 => 20,
            DigestKind::Sha256 | DigestKind::Blake3 => 32,
        }
    }

    /// Relative cost per byte on a CPU with SHA extensions (MD5 has no hardware help), used to
    /// share the kinds out between worker threads.
    fn cost(self) -> u32 {
        match self {
            DigestKind::Md5 => 6,
            DigestKind::Sha1 => 2,
            DigestKind::Sha256 => 2,
            DigestKind::Blake3 => 1,
        }
    }

    fn bit(self) -> u8 {
        1 << self as u8
    }
}

impl fmt::Display for DigestKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is not a digest kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown digest {0:?} (expected md5, sha1, sha256, blake3, all or none)")]
pub struct UnknownDigest(pub String);

impl FromStr for DigestKind {
    type Err = UnknownDigest;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        DigestKind::ALL
            .into_iter()
            .find(|kind| kind.name().eq_ignore_ascii_case(name.trim()))
            .ok_or_else(|| UnknownDigest(name.to_string()))
    }
}

/// A set of digest kinds the caller wants computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct DigestSet(u8);

impl DigestSet {
    /// No digest.
    pub const NONE: DigestSet = DigestSet(0);
    /// All four digests.
    pub const ALL: DigestSet = DigestSet(0b1111);

    /// This set with `kind` added.
    pub fn with(self, kind: DigestKind) -> DigestSet {
        DigestSet(self.0 | kind.bit())
    }

    /// Whether `kind` is in the set.
    pub fn contains(self, kind: DigestKind) -> bool {
        self.0 & kind.bit() != 0
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The kinds in the set, in [`DigestKind::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = DigestKind> {
        DigestKind::ALL.into_iter().filter(move |kind| self.contains(*kind))
    }
}

impl FromIterator<DigestKind> for DigestSet {
    fn from_iter<I: IntoIterator<Item = DigestKind>>(iter: I) -> Self {
        iter.into_iter().fold(DigestSet::NONE, DigestSet::with)
    }
}

/// Parses a comma-separated list of kinds, or `all`, or `none`.
impl FromStr for DigestSet {
    type Err = UnknownDigest;

    fn from_str(list: &str) -> Result<Self, Self::Err> {
        let mut set = DigestSet::NONE;
        for name in list.split(',').map(str::trim) {
            set = match name.to_ascii_lowercase().as_str() {
                "all" => DigestSet::ALL,
                "none" => set,
                _ => set.with(name.parse()?),
            };
        }
        Ok(set)
    }
}

/// Lists the kinds comma-separated, as [`FromStr`] reads them (`none` for the empty set).
impl fmt::Display for DigestSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("none");
        }
        let names: Vec<&str> = self.iter().map(DigestKind::name).collect();
        f.write_str(&names.join(","))
    }
}

/// The digests computed for one input; a field is `Some` iff its kind was requested.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Digests {
    /// MD5.
    pub md5: Option<[u8; 16]>,
    /// SHA-1.
    pub sha1: Option<[u8; 20]>,
    /// SHA-256.
    pub sha256: Option<[u8; 32]>,
    /// BLAKE3.
    pub blake3: Option<[u8; 32]>,
}

impl Digests {
    /// The digest of `kind`, if it was computed.
    pub fn get(&self, kind: DigestKind) -> Option<&[u8]> {
        match kind {
            DigestKind::Md5 => self.md5.as_ref().map(|d| &d[..]),
            DigestKind::Sha1 => self.sha1.as_ref().map(|d| &d[..]),
            DigestKind::Sha256 => self.sha256.as_ref().map(|d| &d[..]),
            DigestKind::Blake3 => self.blake3.as_ref().map(|d| &d[..]),
        }
    }

    /// The digest of `kind` as lower-case hex, if it was computed.
    pub fn hex(&self, kind: DigestKind) -> Option<String> {
        self.get(kind).map(hex::encode)
    }

    /// The computed digests with their kinds, in [`DigestKind::ALL`] order.
    pub fn iter(&self) -> impl Iterator<Item = (DigestKind, &[u8])> {
        DigestKind::ALL.into_iter().filter_map(|kind| self.get(kind).map(|d| (kind, d)))
    }

    fn merge(&mut self, other: Digests) {
        self.md5 = self.md5.or(other.md5);
        self.sha1 = self.sha1.or(other.sha1);
        self.sha256 = self.sha256.or(other.sha256);
        self.blake3 = self.blake3.or(other.blake3);
    }
}

/// Inputs shorter than this are digested on the calling thread: spawning workers would cost
/// more than it saves.
const PARALLEL_THRESHOLD: usize = 1 << 20;

/// Size of one chunk read from a stream.
const CHUNK_SIZE: usize = 1 << 20;

/// Chunk buffers in flight at once; bounds a stream's memory to `CHUNKS_IN_FLIGHT * CHUNK_SIZE`.
const CHUNKS_IN_FLIGHT: usize = 4;

/// The running state of a set of digests over bytes that arrive in pieces, on the calling
/// thread: for content read from a socket a piece at a time, where nothing else is to be read
/// ahead.
#[derive(Default)]
pub struct Digester {
    md5: Option<md5::Md5>,
    sha1: Option<sha1::Sha1>,
    sha256: Option<sha2::Sha256>,
    blake3: Option<Box<blake3::Hasher>>,
}

impl Digester {
    /// Starts the digests in `which`.
    pub fn new(which: DigestSet) -> Digester {
        Digester {
            md5: which.contains(DigestKind::Md5).then(md5::Md5::new),
            sha1: which.contains(DigestKind::Sha1).then(sha1::Sha1::new),
            sha256: which.contains(DigestKind::Sha256).then(sha2::Sha256::new),
            blake3: which.contains(DigestKind::Blake3).then(|| Box::new(blake3::Hasher::new())),
        }
    }

    /// Adds the next piece of the input.
    pub fn update(&mut self, bytes: &[u8]) {
        if let Some(h) = &mut self.md5 {
            h.update(bytes);
        }
        if let Some(h) = &mut self.sha1 {
            h.update(bytes);
        }
        if let Some(h) = &mut self.sha256 {
            h.update(bytes);
        }
        if let Some(h) = &mut self.blake3 {
            h.update(bytes);
        }
    }

    /// The digests of everything added.
    pub fn finish(self) -> Digests {
        Digests {
            md5: self.md5.map(|h| h.finalize().into()),
            sha1: self.sha1.map(|h| h.finalize().into()),
            sha256: self.sha256.map(|h| h.finalize().into()),
            blake3: self.blake3.map(|h| *h.finalize().as_bytes()),
        }
    }
}

/// Shares the requested kinds out between at most `workers` groups of similar total cost
/// (largest cost first, each to the cheapest group so far).
fn plan_groups(which: DigestSet, workers: usize) -> Vec<DigestSet> {
    let mut kinds: Vec<DigestKind> = which.iter().collect();
    kinds.sort_by_key(|kind| std::cmp::Reverse(kind.cost()));
    let mut groups: Vec<(u32, DigestSet)> = vec![(0, DigestSet::NONE); workers.clamp(1, kinds.len().max(1))];
    for kind in kinds {
        let cheapest = groups.iter_mut().min_by_key(|(cost, _)| *cost).expect("at least one group");
        cheapest.0 += kind.cost();
        cheapest.1 = cheapest.1.with(kind);
    }
    groups.into_iter().map(|(_, set)| set).filter(|set| !set.is_empty()).collect()
}

fn available_workers() -> usize {
    thread::available_parallelism().map_or(1, |n| n.get())
}

/// Digests an in-memory input. Large inputs are shared out between worker threads by digest.
pub fn digest_bytes(bytes: &[u8], which: DigestSet) -> Digests {
    let groups = plan_groups(which, available_workers());
    if bytes.len() < PARALLEL_THRESHOLD || groups.len() < 2 {
        let mut hashers = Digester::new(which);
        hashers.update(bytes);
        return hashers.finish();
    }
    thread::scope(|scope| {
        let (first, rest) = groups.split_first().expect("two or more groups");
        let handles: Vec<_> = rest
            .iter()
            .map(|&group| {
                scope.spawn(move || {
                    let mut hashers = Digester::new(group);
                    hashers.update(bytes);
                    hashers.finish()
                })
            })
            .collect();
        let mut hashers = Digester::new(*first);
        hashers.update(bytes);
        let mut digests = hashers.finish();
        for handle in handles {
            digests.merge(handle.join().expect("a digest worker does not panic"));
        }
        digests
    })
}

/// Digests a stream to its end, returning the digests and the number of bytes read. Memory is
/// bounded by a few 1 MiB chunks, whatever the stream's length.
pub fn digest_reader<R: Read>(mut reader: R, which: DigestSet) -> io::Result<(Digests, u64)> {
    let mut first = vec![0; CHUNK_SIZE];
    let filled = read_chunk(&mut reader, &mut first)?;
    let groups = plan_groups(which, available_workers());
    if filled < CHUNK_SIZE || groups.len() < 2 {
        // Short input, or one group: no worker threads.
        let mut hashers = Digester::new(which);
        hashers.update(&first[..filled]);
        let mut total = filled as u64;
        let mut buffer = first;
        loop {
            let n = read_chunk(&mut reader, &mut buffer)?;
            if n == 0 {
                return Ok((hashers.finish(), total));
            }
            hashers.update(&buffer[..n]);
            total += n as u64;
        }
    }
    digest_stream_in_parallel(reader, first, &groups)
}

/// A chunk shared by every worker; the last worker to drop it returns the buffer to the pool.
struct Chunk {
    buffer: Vec<u8>,
    len: usize,
}

fn digest_stream_in_parallel<R: Read>(
    mut reader: R,
    first: Vec<u8>,
    groups: &[DigestSet],
) -> io::Result<(Digests, u64)> {
    let (pool_tx, pool_rx) = crossbeam_channel::bounded::<Vec<u8>>(CHUNKS_IN_FLIGHT);
    for _ in 1..CHUNKS_IN_FLIGHT {
        pool_tx.send(vec![0; CHUNK_SIZE]).expect("the pool has room");
    }
    thread::scope(|scope| {
        let mut senders = Vec::with_capacity(groups.len());
        let mut workers = Vec::with_capacity(groups.len());
        for &group in groups {
            let (tx, rx) = crossbeam_channel::bounded::<Arc<Chunk>>(CHUNKS_IN_FLIGHT);
            let pool_tx = pool_tx.clone();
            senders.push(tx);
            workers.push(scope.spawn(move || {
                let mut hashers = Digester::new(group);
                for chunk in rx {
                    hashers.update(&chunk.buffer[..chunk.len]);
                    if let Ok(chunk) = Arc::try_unwrap(chunk) {
                        // Every other worker is done with it; a full pool means the reader
                        // has stopped, so the buffer can simply be dropped.
                        let _ = pool_tx.try_send(chunk.buffer);
                    }
                }
                hashers.finish()
            }));
        }
        drop(pool_tx);

        let mut total = 0u64;
        let mut buffer = first;
        let mut len = CHUNK_SIZE;
        let read_result = loop {
            total += len as u64;
            let chunk = Arc::new(Chunk { buffer, len });
            for tx in &senders {
                tx.send(Arc::clone(&chunk)).expect("workers run until their channel closes");
            }
            drop(chunk);
            buffer = pool_rx.recv().expect("buffers come back while workers run");
            match read_chunk(&mut reader, &mut buffer) {
                Ok(0) => break Ok(()),
                Ok(n) => len = n,
                Err(err) => break Err(err),
            }
        };
        drop(senders);
        let mut digests = Digests::default();
        for worker in workers {
            digests.merge(worker.join().expect("a digest worker does not panic"));
        }
        read_result.map(|()| (digests, total))
    })
}

/// Fills `buffer` as far as the stream allows; returns how many bytes were read (fewer than the
/// buffer's length only at the end of the stream).
fn read_chunk<R: Read>(reader: &mut R, buffer: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match reader.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    Ok(filled)
}

/// Digests a file, reading it once.
pub fn digest_file(path: &Path, which: DigestSet) -> io::Result<(Digests, u64)> {
    digest_reader(File::open(path)?, which)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Published test vectors: RFC 1321 (MD5), FIPS 180 examples (SHA-1, SHA-256), and the
    /// BLAKE3 specification's empty-input value.
    #[test]
    fn known_answers() {
        let empty = digest_bytes(b"", DigestSet::ALL);
        assert_eq!(empty.hex(DigestKind::Md5).unwrap(), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(empty.hex(DigestKind::Sha1).unwrap(), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
        assert_eq!(
            empty.hex(DigestKind::Sha256).unwrap(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            empty.hex(DigestKind::Blake3).unwrap(),
            "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
        );
        let abc = digest_bytes(b"abc", DigestSet::ALL);
        assert_eq!(abc.hex(DigestKind::Md5).unwrap(), "900150983cd24fb0d6963f7d28e17f72");
        assert_eq!(
            abc.hex(DigestKind::Sha256).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn a_million_a_crosses_the_parallel_threshold() {
        let million_a = vec![b'a'; 1_000_000];
        let expected_sha1 = "34aa973cd4c4daa4f61eeb2bdbad27316534016f";
        assert_eq!(digest_bytes(&million_a, DigestSet::ALL).hex(DigestKind::Sha1).unwrap(), expected_sha1);
        let (streamed, len) = digest_reader(&million_a[..], DigestSet::ALL).unwrap();
        assert_eq!(len, 1_000_000);
        assert_eq!(streamed.hex(DigestKind::Sha1).unwrap(), expected_sha1);
        assert_eq!(
            streamed.hex(DigestKind::Sha256).unwrap(),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"
        );
    }

    /// A reader that returns at most `step` bytes per call, to exercise partial reads.
    struct Trickle<'a> {
        bytes: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.step.min(buf.len()).min(self.bytes.len());
            buf[..n].copy_from_slice(&self.bytes[..n]);
            self.bytes = &self.bytes[n..];
            Ok(n)
        }
    }

    fn pseudo_random(len: usize) -> Vec<u8> {
        let mut bytes = vec![0; len];
        hashsieve_testkit::Rng::new(1).fill(&mut bytes);
        bytes
    }

    #[test]
    fn slices_streams_and_chunk_boundaries_agree_with_single_threaded_hashing() {
        let data = pseudo_random(3 * CHUNK_SIZE + 17);
        for len in [0, 1, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 2 * CHUNK_SIZE, data.len()] {
            let bytes = &data[..len];
            let mut reference = Digester::new(DigestSet::ALL);
            reference.update(bytes);
            let reference = reference.finish();
            assert_eq!(digest_bytes(bytes, DigestSet::ALL), reference, "slice of {len}");
            let (streamed, read) = digest_reader(bytes, DigestSet::ALL).unwrap();
            assert_eq!((streamed, read), (reference.clone(), len as u64), "stream of {len}");
            let (trickled, _) = digest_reader(Trickle { bytes, step: 4099 }, DigestSet::ALL).unwrap();
            assert_eq!(trickled, reference, "trickle of {len}");
            assert_eq!(reference.blake3.unwrap(), *blake3::hash(bytes).as_bytes(), "blake3 of {len}");
        }
    }

    #[test]
    fn only_the_requested_digests_are_computed() {
        let data = pseudo_random(2 * CHUNK_SIZE + 5);
        for which in ["md5", "sha1,blake3", "sha256", "md5,sha256"] {
            let set: DigestSet = which.parse().unwrap();
            let (digests, _) = digest_reader(&data[..], set).unwrap();
            let full = digest_bytes(&data, DigestSet::ALL);
            for kind in DigestKind::ALL {
                assert_eq!(digests.get(kind).is_some(), set.contains(kind), "{which}: {kind}");
                if set.contains(kind) {
                    assert_eq!(digests.get(kind), full.get(kind), "{which}: {kind}");
                }
            }
        }
    }

    #[test]
    fn read_errors_are_returned_not_swallowed() {
        struct Failing(usize);
        impl Read for Failing {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.0 == 0 {
                    return Err(io::Error::other("disk on fire"));
                }
                let n = self.0.min(buf.len());
                self.0 -= n;
                Ok(n)
            }
        }
        for fail_after in [10, 3 * CHUNK_SIZE + 1] {
            let err = digest_reader(Failing(fail_after), DigestSet::ALL).unwrap_err();
            assert_eq!(err.to_string(), "disk on fire");
        }
    }

    #[test]
    fn groups_split_md5_from_the_rest_and_cover_every_kind() {
        assert_eq!(
            plan_groups(DigestSet::ALL, 2),
            ["md5".parse().unwrap(), "sha1,sha256,blake3".parse().unwrap()]
        );
        assert_eq!(plan_groups(DigestSet::ALL, 1), [DigestSet::ALL]);
        assert_eq!(plan_groups("sha1".parse().unwrap(), 8).len(), 1);
        assert!(plan_groups(DigestSet::NONE, 2).is_empty());
        for workers in 1..6 {
            let groups = plan_groups(DigestSet::ALL, workers);
            assert_eq!(groups.iter().map(|g| g.iter().count()).sum::<usize>(), 4);
        }
    }

    #[test]
    fn sets_parse_and_print() {
        assert_eq!("all".parse::<DigestSet>().unwrap(), DigestSet::ALL);
        assert_eq!("none".parse::<DigestSet>().unwrap(), DigestSet::NONE);
        assert_eq!(" SHA1 , md5".parse::<DigestSet>().unwrap().to_string(), "md5,sha1");
        assert_eq!("md4".parse::<DigestSet>().unwrap_err(), UnknownDigest("md4".into()));
    }
}
