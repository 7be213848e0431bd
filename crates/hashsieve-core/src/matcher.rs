//! The embedding API: open an index, check content or hashes, get every match with its
//! provenance.
//!
//! [`Matcher`] joins hashing and search: [`Matcher::check_bytes`] computes, in one call, the
//! digests and perceptual hashes the index can match (PDQ with its eight rotations and mirror
//! images) and returns a [`Verdict`] with every match. Platforms that hash on their side call
//! [`Matcher::check_signals`] or [`Matcher::check_hash`].
//!
//! ```
//! use hashsieve_core::hashes::HashKind;
//! use hashsieve_core::import::ImportedEntry;
//! use hashsieve_core::index::{IndexBuilder, ListOptions};
//! use hashsieve_core::matcher::{Matcher, Outcome};
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
//! assert_eq!(verdict.outcome, Outcome::Known);
//! assert_eq!(verdict.matches[0].list, "demo");
//! assert_eq!(verdict.matches[0].category.as_deref(), Some("test"));
//! assert_eq!(matcher.check_bytes(b"other bytes").outcome, Outcome::Unknown);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use crate::digest::{DigestKind, DigestSet};
use crate::hashes::HashKind;
use crate::index::{Hit, Index, IndexError, SearchOptions};
use crate::pdq::Dihedral;
use crate::perceptual::ImageHashKind;
use crate::signals::{PdqMode, ReadError, SignalOptions, Signals};

/// PDQ hashes below this quality are too weak to match on (Meta's recommendation).
pub const DEFAULT_MIN_PDQ_QUALITY: u8 = 50;

/// The bytes of an opened index: a file mapping, or a buffer.
#[derive(Debug)]
pub enum IndexBytes {
    /// A read-only mapping of an index file.
    Mapped(memmap2::Mmap),
    /// An index in memory.
    Owned(Vec<u8>),
}

impl AsRef<[u8]> for IndexBytes {
    fn as_ref(&self) -> &[u8] {
        match self {
            IndexBytes::Mapped(map) => map,
            IndexBytes::Owned(bytes) => bytes,
        }
    }
}

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
pub enum Outcome {
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
}

/// The answer for one piece of content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    /// Known, near-known or unknown.
    pub outcome: Outcome,
    /// Every match, digests first, then by distance.
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

/// An opened index and the hashing it needs.
#[derive(Debug)]
pub struct Matcher {
    index: Index<IndexBytes>,
    options: MatchOptions,
    signals: SignalOptions,
}

impl Matcher {
    /// Maps an index file.
    pub fn open(path: &Path) -> Result<Matcher, IndexError> {
        let map = crate::index::format::map_file(path)?;
        Ok(Matcher::new(Index::open(IndexBytes::Mapped(map))?))
    }

    /// An index held in memory.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Matcher, IndexError> {
        Ok(Matcher::new(Index::open(IndexBytes::Owned(bytes))?))
    }

    fn new(index: Index<IndexBytes>) -> Matcher {
        let options = MatchOptions::default();
        let signals = signal_options(&index, &options);
        Matcher { index, options, signals }
    }

    /// The same matcher with other options.
    pub fn with_options(mut self, options: MatchOptions) -> Matcher {
        self.signals = signal_options(&self.index, &options);
        self.options = options;
        self
    }

    /// The index.
    pub fn index(&self) -> &Index<IndexBytes> {
        &self.index
    }

    /// What [`Matcher::check_bytes`] computes: the digests and perceptual hashes the index has
    /// entries of. Change its limits with [`Matcher::set_signal_limits`].
    pub fn signal_options(&self) -> &SignalOptions {
        &self.signals
    }

    /// Sets the decoding limits and the largest input decoded.
    pub fn set_signal_limits(&mut self, limits: crate::decode::DecodeLimits, max_image_bytes: u64) {
        self.signals.limits = limits;
        self.signals.max_image_bytes = max_image_bytes;
    }

    /// Hashes `bytes` and matches every hash.
    pub fn check_bytes(&self, bytes: &[u8]) -> Verdict {
        self.check_signals(&Signals::from_bytes(bytes, &self.signals))
    }

    /// Hashes a file, streaming it, and matches every hash.
    pub fn check_path(&self, path: &Path) -> Result<Verdict, ReadError> {
        Ok(self.check_signals(&Signals::from_path(path, &self.signals)?))
    }

    /// Matches hashes computed elsewhere.
    pub fn check_signals(&self, signals: &Signals) -> Verdict {
        // Each entry once, at its smallest distance over the query's hashes.
        let mut found: BTreeMap<(HashKind, u32), (Hit, Option<Dihedral>)> = BTreeMap::new();
        let mut add = |hits: Vec<Hit>, variant: Option<Dihedral>| {
            for hit in hits {
                let slot = found.entry((hit.kind, hit.position)).or_insert((hit, variant));
                if hit.distance < slot.0.distance {
                    *slot = (hit, variant);
                }
            }
        };
        for (kind, value) in signals.digests.iter() {
            add(self.index.search(digest_hash_kind(kind), value, &SearchOptions::default()), None);
        }
        let mut weak_pdq = false;
        if let Some(pdq) = &signals.pdq {
            if pdq.quality < self.options.min_pdq_quality {
                weak_pdq = true;
            } else {
                let options = SearchOptions { threshold: self.options.pdq_threshold };
                let variants = match (&pdq.dihedral, self.options.dihedral) {
                    (Some(all), true) => all.iter().zip(Dihedral::ALL).collect::<Vec<_>>(),
                    _ => vec![(&pdq.hash, Dihedral::ALL[0])],
                };
                for (hash, variant) in variants {
                    let name = (variant != Dihedral::ALL[0]).then_some(variant);
                    add(self.index.search(HashKind::Pdq, &hash.0, &options), name);
                }
            }
        }
        for &(kind, hash) in &signals.image_hashes {
            let options = SearchOptions { threshold: self.options.hamming_threshold };
            add(self.index.search(image_hash_kind(kind), &hash.0.to_be_bytes(), &options), None);
        }
        let mut found: Vec<(Hit, Option<Dihedral>)> = found.into_values().collect();
        found.sort_by_key(|(hit, _)| (!hit.kind.is_exact(), hit.distance, hit.kind, hit.position));
        let matches: Vec<Match> =
            found.into_iter().map(|(hit, variant)| self.resolve(&hit, variant.map(Dihedral::name))).collect();
        Verdict {
            outcome: outcome(&matches),
            matches,
            pdq_quality: signals.pdq.map(|p| p.quality),
            weak_pdq,
            errors: signals.errors.iter().map(ToString::to_string).collect(),
        }
    }

    /// Matches one hash of a declared kind, with each list's threshold (or the options').
    pub fn check_hash(&self, kind: HashKind, value: &[u8]) -> Verdict {
        let threshold = match kind {
            HashKind::Pdq => self.options.pdq_threshold,
            HashKind::PHash | HashKind::DHash | HashKind::AHash => self.options.hamming_threshold,
            _ => None,
        };
        let hits = self.index.search(kind, value, &SearchOptions { threshold });
        let matches: Vec<Match> = hits.iter().map(|hit| self.resolve(hit, None)).collect();
        Verdict {
            outcome: outcome(&matches),
            matches,
            pdq_quality: None,
            weak_pdq: false,
            errors: Vec::new(),
        }
    }

    fn resolve(&self, hit: &Hit, variant: Option<&'static str>) -> Match {
        let record = self.index.record(hit);
        let owned = |text: Option<&str>| text.map(str::to_string);
        Match {
            list: self.index.list(hit).map_or_else(|| "(unknown list)".to_string(), |l| l.name.clone()),
            entry_id: owned(record.and_then(|r| r.id)),
            category: owned(record.and_then(|r| r.category)),
            source: owned(record.and_then(|r| r.source)),
            kind: hit.kind,
            value: self.index.value(hit).map(hex::encode).unwrap_or_default(),
            distance: hit.distance,
            variant,
        }
    }
}

fn outcome(matches: &[Match]) -> Outcome {
    if matches.iter().any(|m| m.kind.is_exact()) {
        Outcome::Known
    } else if matches.is_empty() {
        Outcome::Unknown
    } else {
        Outcome::NearKnown
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

/// The signals worth computing for `index`: only kinds it has entries of.
fn signal_options(index: &Index<IndexBytes>, options: &MatchOptions) -> SignalOptions {
    let kinds = index.kinds();
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
