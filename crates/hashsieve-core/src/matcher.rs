//! The embedding API: open an index, check content or hashes, get every match with its
//! provenance.
//!
//! [`Matcher`] joins hashing and search: [`Matcher::check_bytes`] computes, in one call, the
//! digests and perceptual hashes the index can match (PDQ with its eight rotations and mirror
//! images) and returns a [`MatchVerdict`] with every match. Platforms that hash on their side call
//! [`Matcher::check_signals`] or [`Matcher::check_hash`].
//!
//! ```
//! use hashsieve_core::hashes::HashKind;
//! use hashsieve_core::import::ImportedEntry;
//! use hashsieve_core::index::{IndexBuilder, ListOptions};
//! use hashsieve_core::matcher::{Matcher, MatchOutcome};
//!
//! let image = std::fs::read("../../samples/images/wee.jpg")?;
//! let md5 = hashsieve_core::digest::digest_bytes(&image, "md5".parse().unwrap()).md5.unwrap();
//!
//! let mut builder = IndexBuilder::new();
//! let list = builder.add_list(ListOptions::new("demo"))?;
//! builder.add(list, &ImportedEntry::new(HashKind::Md5, md5.to_vec()).with_category("test"))?;
//! let matcher = Matcher::from_bytes(builder.to_vec())?;
//!
//! let verdict = matcher.check_bytes(&image);
//! assert_eq!(verdict.outcome, MatchOutcome::Known);
//! assert_eq!(verdict.matches[0].list, "demo");
//! assert_eq!(verdict.matches[0].category.as_deref(), Some("test"));
//! assert_eq!(matcher.check_bytes(b"other bytes").outcome, MatchOutcome::Unknown);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use serde::Serialize;

use crate::decode::DecodeLimits;
use crate::delta::Refreshed;
use crate::delta::live::{EntryIdentity, Found, View};
use crate::delta::{Change, Removal};
use crate::digest::{DigestKind, DigestSet};
use crate::hashes::HashKind;
use crate::import::ImportedEntry;
pub use crate::index::IndexBytes;
use crate::index::dir::{Compaction, DirOptions, Generation, IndexDir, IndexDirError, OpenReport, Receipt};
use crate::index::{Index, IndexError, ListOptions, ListRole};
use crate::pdq::Dihedral;
use crate::perceptual::ImageHashKind;
use crate::signals::{PdqMode, ReadError, SignalOptions, Signals};

/// The allow-list [`Matcher::allow`] adds to unless told otherwise.
pub const DEFAULT_ALLOW_LIST: &str = "allow";

/// PDQ hashes below this quality are too weak to match on (Meta's recommendation).
pub const DEFAULT_MIN_PDQ_QUALITY: u8 = 50;

/// How a [`Matcher`] matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchOptions {
    /// PDQ hashes of lower quality are reported as weak and not matched.
    pub min_pdq_quality: u8,
    /// Search the eight rotations and mirror images of the PDQ hash (default), or the hash alone.
    pub dihedral: bool,
    /// A PDQ threshold for every list instead of each list's own.
    pub pdq_threshold: Option<u32>,
    /// A pHash/dHash/aHash threshold for every list instead of each list's own.
    pub hamming_threshold: Option<u32>,
}

impl Default for MatchOptions {
    fn default() -> Self {
        MatchOptions {
            min_pdq_quality: DEFAULT_MIN_PDQ_QUALITY,
            dihedral: true,
            pdq_threshold: None,
            hamming_threshold: None,
        }
    }
}

/// What a check concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchOutcome {
    /// A cryptographic digest is in a list: these are the listed bytes.
    Known,
    /// Only perceptual hashes or vectors matched: the same picture, possibly altered.
    NearKnown,
    /// Nothing matched.
    Unknown,
}

/// One matching list entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Match {
    /// The list's name.
    pub list: String,
    /// The list's id for the entry.
    pub entry_id: Option<String>,
    /// Category or label.
    pub category: Option<String>,
    /// Where the entry came from.
    pub source: Option<String>,
    /// The kind of hash that matched.
    pub kind: HashKind,
    /// The entry's value, in hex.
    pub value: String,
    /// Distance between query and entry: 0 for digests.
    pub distance: u32,
    /// For PDQ, which rotation or mirror image of the query matched, when not the original.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant: Option<&'static str>,
    /// The allow-list entry that suppresses this match, if one does: the content also matches
    /// a known false positive, so the match does not count toward the outcome.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suppressed_by: Option<Box<Match>>,
}

/// The answer for one piece of content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MatchVerdict {
    /// Known, near-known or unknown, from the matches not suppressed by an allow-list.
    pub outcome: MatchOutcome,
    /// Every block-list match, digests first, then by distance; suppressed ones say so.
    pub matches: Vec<Match>,
    /// The query's PDQ quality, when it has a PDQ hash.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pdq_quality: Option<u8>,
    /// The PDQ hash was too weak to match on.
    pub weak_pdq: bool,
    /// Signals that could not be computed (e.g. the bytes are not a decodable image), so that
    /// "unknown" is never mistaken for "checked and clean".
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

/// An opened index — a single file, or an index directory with its live changes — and the
/// hashing it needs.
#[derive(Debug)]
pub struct Matcher {
    dir: Arc<IndexDir>,
    options: MatchOptions,
    limits: Option<(DecodeLimits, u64)>,
}

impl Matcher {
    /// Opens an index file, or an index directory read-only.
    pub fn open(path: &Path) -> Result<Matcher, IndexDirError> {
        if path.is_dir() {
            let options = DirOptions { writable: false, compact_after: None, repair: false };
            return Ok(Matcher::open_dir(path, options)?.0);
        }
        let map = crate::index::format::map_file(path)
            .map_err(|source| IndexDirError::Io { path: path.to_path_buf(), source })?;
        let index = Index::open(IndexBytes::Mapped(map))
            .map_err(|source| IndexDirError::Index { path: path.to_path_buf(), source })?;
        Ok(Matcher::new(IndexDir::from_index(index)))
    }

    /// Opens an index directory, for writing if `options` say so; the report says what
    /// recovery did.
    pub fn open_dir(path: &Path, options: DirOptions) -> Result<(Matcher, OpenReport), IndexDirError> {
        let (dir, report) = IndexDir::open(path, options)?;
        Ok((Matcher::new(dir), report))
    }

    /// An index held in memory.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Matcher, IndexError> {
        Ok(Matcher::new(IndexDir::from_index(Index::open(IndexBytes::Owned(bytes))?)))
    }

    fn new(dir: IndexDir) -> Matcher {
        Matcher { dir: Arc::new(dir), options: MatchOptions::default(), limits: None }
    }

    /// The same matcher with other options.
    pub fn with_options(mut self, options: MatchOptions) -> Matcher {
        self.options = options;
        self
    }

    /// The index as of now: its file and delta. Hold it no longer than needed; a compaction
    /// releases the old file only when its last holder drops it.
    pub fn current(&self) -> Arc<Generation> {
        self.dir.current()
    }

    /// The index directory.
    pub fn dir(&self) -> &IndexDir {
        &self.dir
    }

    /// What [`Matcher::check_bytes`] computes: the digests and perceptual hashes the index has
    /// entries of, now. Change its limits with [`Matcher::set_signal_limits`].
    pub fn signal_options(&self) -> SignalOptions {
        let kinds = self.current().view(|view| view.kinds());
        let mut signals = signal_options(&kinds, &self.options);
        if let Some((limits, max_image_bytes)) = self.limits {
            signals.limits = limits;
            signals.max_image_bytes = max_image_bytes;
        }
        signals
    }

    /// Sets the decoding limits and the largest input decoded.
    pub fn set_signal_limits(&mut self, limits: DecodeLimits, max_image_bytes: u64) {
        self.limits = Some((limits, max_image_bytes));
    }

    /// Hashes `bytes` and matches every hash.
    pub fn check_bytes(&self, bytes: &[u8]) -> MatchVerdict {
        self.check_signals(&Signals::from_bytes(bytes, &self.signal_options()))
    }

    /// Hashes a file, streaming it, and matches every hash.
    pub fn check_path(&self, path: &Path) -> Result<MatchVerdict, ReadError> {
        Ok(self.check_signals(&Signals::from_path(path, &self.signal_options())?))
    }

    /// Matches hashes computed elsewhere.
    pub fn check_signals(&self, signals: &Signals) -> MatchVerdict {
        let weak_pdq = signals.pdq.is_some_and(|pdq| pdq.quality < self.options.min_pdq_quality);
        let matches = self.current().view(|view| {
            // Each entry once, at its smallest distance over the query's hashes.
            let mut found: BTreeMap<(HashKind, EntryIdentity), (Found, Option<Dihedral>)> = BTreeMap::new();
            let mut buffer = Vec::new();
            let mut search =
                |kind: HashKind, value: &[u8], threshold: Option<u32>, variant: Option<Dihedral>| {
                    buffer.clear();
                    view.search(kind, value, threshold, &mut buffer);
                    for hit in buffer.drain(..) {
                        let slot = found.entry((hit.kind, hit.at.key())).or_insert((hit, variant));
                        if hit.distance < slot.0.distance {
                            *slot = (hit, variant);
                        }
                    }
                };
            for (kind, value) in signals.digests.iter() {
                search(digest_hash_kind(kind), value, None, None);
            }
            if let Some(pdq) = signals.pdq.as_ref().filter(|_| !weak_pdq) {
                let variants = match (&pdq.dihedral, self.options.dihedral) {
                    (Some(all), true) => all.iter().zip(Dihedral::ALL).collect::<Vec<_>>(),
                    _ => vec![(&pdq.hash, Dihedral::ALL[0])],
                };
                for (hash, variant) in variants {
                    let name = (variant != Dihedral::ALL[0]).then_some(variant);
                    search(HashKind::Pdq, &hash.0, self.options.pdq_threshold, name);
                }
            }
            for &(kind, hash) in &signals.image_hashes {
                search(image_hash_kind(kind), &hash.0.to_be_bytes(), self.options.hamming_threshold, None);
            }
            let found: Vec<(Found, Option<&'static str>)> =
                found.into_values().map(|(hit, variant)| (hit, variant.map(Dihedral::name))).collect();
            resolve_all(&view, found)
        });
        MatchVerdict {
            outcome: outcome(&matches),
            matches,
            pdq_quality: signals.pdq.map(|p| p.quality),
            weak_pdq,
            errors: signals.errors.iter().map(ToString::to_string).collect(),
        }
    }

    /// Matches one hash of a declared kind, with each list's threshold (or the options').
    pub fn check_hash(&self, kind: HashKind, value: &[u8]) -> MatchVerdict {
        let threshold = match kind {
            HashKind::Pdq => self.options.pdq_threshold,
            HashKind::PHash | HashKind::DHash | HashKind::AHash => self.options.hamming_threshold,
            _ => None,
        };
        let matches = self.current().view(|view| {
            let mut found = Vec::new();
            view.search(kind, value, threshold, &mut found);
            resolve_all(&view, found.into_iter().map(|hit| (hit, None)).collect())
        });
        MatchVerdict {
            outcome: outcome(&matches),
            matches,
            pdq_quality: None,
            weak_pdq: false,
            errors: Vec::new(),
        }
    }

    /// Applies changes as one batch, durably; see [`crate::delta`] for what they mean.
    pub fn submit(&self, changes: Vec<Change>, actor: Option<&str>) -> Result<Receipt, IndexDirError> {
        self.dir.submit(changes, actor)
    }

    /// Adds entries to a list that exists.
    pub fn add(
        &self,
        list: &str,
        entries: Vec<ImportedEntry>,
        actor: Option<&str>,
    ) -> Result<Receipt, IndexDirError> {
        let changes =
            entries.into_iter().map(|entry| Change::Add { list: list.to_string(), entry }).collect();
        self.submit(changes, actor)
    }

    /// Withdraws entries.
    pub fn remove(&self, removals: Vec<Removal>, actor: Option<&str>) -> Result<Receipt, IndexDirError> {
        self.submit(removals.into_iter().map(Change::Remove).collect(), actor)
    }

    /// Adds known false positives to an allow-list (created with default thresholds if it
    /// does not exist; [`DEFAULT_ALLOW_LIST`] if `list` is `None`).
    pub fn allow(
        &self,
        list: Option<&str>,
        entries: Vec<ImportedEntry>,
        actor: Option<&str>,
    ) -> Result<Receipt, IndexDirError> {
        let name = list.unwrap_or(DEFAULT_ALLOW_LIST);
        let existing = self.current().view(|view| view.delta.list(name).map(|list| list.options()));
        let options =
            existing.unwrap_or_else(|| ListOptions { role: ListRole::Allow, ..ListOptions::new(name) });
        if options.role != ListRole::Allow {
            return Err(crate::delta::ChangeError::Invalid(format!(
                "list {name:?} is a block-list, not an allow-list"
            ))
            .into());
        }
        let mut changes = vec![Change::DefineList(options)];
        changes.extend(entries.into_iter().map(|entry| Change::Add { list: name.to_string(), entry }));
        self.submit(changes, actor)
    }

    /// Makes a list hold exactly `entries`, writing only the difference; see
    /// [`IndexDir::refresh`].
    pub fn refresh(
        &self,
        list: &str,
        options: Option<ListOptions>,
        entries: Vec<ImportedEntry>,
        actor: Option<&str>,
    ) -> Result<Refreshed, IndexDirError> {
        self.dir.refresh(list, options, entries, actor)
    }

    /// Folds the delta into a new index file and swaps it in; queries go on meanwhile.
    pub fn compact(&self) -> Result<Compaction, IndexDirError> {
        self.dir.compact()
    }
}

/// Matches for found entries, block-list matches only, each marked if an allow-list match
/// suppresses it: an allow-listed digest (the very same bytes) suppresses every match; an
/// allow-listed perceptual hash or vector suppresses the matches of its own kind.
fn resolve_all<B: AsRef<[u8]>>(
    view: &View<'_, B>,
    mut found: Vec<(Found, Option<&'static str>)>,
) -> Vec<Match> {
    found.sort_by_key(|(hit, _)| (!hit.kind.is_exact(), hit.distance, hit.kind, hit.at));
    let mut block = Vec::new();
    let mut allow = Vec::new();
    for (hit, variant) in found {
        let Some(entry) = view.entry(&hit.at) else { continue };
        let owned = |text: Option<&str>| text.map(str::to_string);
        let resolved = Match {
            list: entry.list.name.clone(),
            entry_id: owned(entry.id),
            category: owned(entry.category),
            source: owned(entry.source),
            kind: hit.kind,
            value: hex::encode(entry.value),
            distance: hit.distance,
            variant,
            suppressed_by: None,
        };
        match entry.list.role {
            ListRole::Block => block.push(resolved),
            ListRole::Allow => allow.push(resolved),
        }
    }
    for matched in &mut block {
        // `allow` is sorted digests first, then by distance: the first that applies is the best.
        matched.suppressed_by = allow
            .iter()
            .find(|allowed| allowed.kind.is_exact() || allowed.kind == matched.kind)
            .map(|allowed| Box::new(allowed.clone()));
    }
    block
}

fn outcome(matches: &[Match]) -> MatchOutcome {
    let counted: Vec<&Match> = matches.iter().filter(|m| m.suppressed_by.is_none()).collect();
    if counted.iter().any(|m| m.kind.is_exact()) {
        MatchOutcome::Known
    } else if counted.is_empty() {
        MatchOutcome::Unknown
    } else {
        MatchOutcome::NearKnown
    }
}

fn digest_hash_kind(kind: DigestKind) -> HashKind {
    match kind {
        DigestKind::Md5 => HashKind::Md5,
        DigestKind::Sha1 => HashKind::Sha1,
        DigestKind::Sha256 => HashKind::Sha256,
        DigestKind::Blake3 => HashKind::Blake3,
    }
}

fn image_hash_kind(kind: ImageHashKind) -> HashKind {
    match kind {
        ImageHashKind::PHash => HashKind::PHash,
        ImageHashKind::DHash => HashKind::DHash,
        ImageHashKind::AHash => HashKind::AHash,
    }
}

/// The signals worth computing for an index with entries of `kinds`.
fn signal_options(kinds: &BTreeSet<HashKind>, options: &MatchOptions) -> SignalOptions {
    let digests = DigestSet::ALL.iter().filter(|&kind| kinds.contains(&digest_hash_kind(kind))).collect();
    let pdq = match (kinds.contains(&HashKind::Pdq), options.dihedral) {
        (false, _) => PdqMode::Off,
        (true, false) => PdqMode::Hash,
        (true, true) => PdqMode::Dihedral,
    };
    let image_hashes = [ImageHashKind::PHash, ImageHashKind::DHash, ImageHashKind::AHash]
        .into_iter()
        .filter(|&kind| kinds.contains(&image_hash_kind(kind)))
        .collect();
    SignalOptions { digests, pdq, image_hashes, ..SignalOptions::default() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::IndexBuilder;
    use crate::pdq::PdqHash;
    use crate::signals::PdqSignal;

    fn flipped(hash: &[u8; 32], bits: &[usize]) -> PdqHash {
        let mut out = *hash;
        for &bit in bits {
            out[bit / 8] ^= 1 << (bit % 8);
        }
        PdqHash(out)
    }

    /// An entry that several of the query's eight variants reach is one match, at the
    /// smallest distance, named by the variant that reached it.
    #[test]
    fn an_entry_reached_by_several_variants_is_one_match() {
        let entry = [0x3c; 32];
        let mut builder = IndexBuilder::new();
        let list = builder.add_list(ListOptions::new("l")).unwrap();
        builder.add(list, &ImportedEntry::new(HashKind::Pdq, entry.to_vec())).unwrap();
        let matcher = Matcher::from_bytes(builder.to_vec()).unwrap();
        let far = flipped(&entry, &(0..128).collect::<Vec<_>>());
        let mut dihedral = [far; 8];
        dihedral[0] = flipped(&entry, &[1, 2, 3, 4, 5]);
        dihedral[3] = flipped(&entry, &[7, 9]);
        dihedral[6] = flipped(&entry, &[1, 2, 3]);
        let signals = Signals {
            pdq: Some(PdqSignal { hash: dihedral[0], quality: 100, dihedral: Some(dihedral) }),
            ..Signals::default()
        };
        let verdict = matcher.check_signals(&signals);
        assert_eq!(verdict.matches.len(), 1, "{:?}", verdict.matches);
        assert_eq!(verdict.matches[0].distance, 2);
        assert_eq!(verdict.matches[0].variant, Some(Dihedral::ALL[3].name()));
        assert_eq!(verdict.outcome, MatchOutcome::NearKnown);
    }
}
