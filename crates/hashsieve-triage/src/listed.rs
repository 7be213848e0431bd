//! Listed copies: the keypoints of reported content a hash list confirmed, so that a reframed
//! copy of a listed picture (a crop, which PDQ treats as a different picture) is recognised as
//! the listed picture.
//!
//! Hash lists carry digests and PDQ hashes, not keypoints, and known content makes no item. So
//! without this, the first crop of a listed picture would go to a person even when the listed
//! file itself had been reported minutes before. When a report is known from a list (by digest,
//! or by PDQ where `near_known_is_known` lets that count), its keypoints are kept with the list
//! matches; a later report that PDQ matches to nothing, but whose keypoints align with a kept
//! copy as the same picture, gets that copy's list matches, marked with the copy's report id
//! ([`ListMatch::via_report`]) and how it was recognised ([`ListMatch::via`]: keypoints, its
//! own PDQ distance to the copy and the alignment). With `near_known_is_known` (the default) it is known;
//! otherwise the matches go with its item as a hint for the analyst, like a PDQ-only list match.
//!
//! A copy is kept only for content a list matched directly, never for content recognised
//! through a copy, so a crop of a crop is never taken for listed. A copy is kept for each list
//! entry when first reported, and again whenever content is reported that the list matches more
//! closely for that entry ([`ListMatch::closeness`]: by digest, then by a smaller distance): an
//! edit of a listed picture (recoloured, say, and matched by PDQ) that was reported before the
//! listed file itself does not stand for the picture once the file is reported. A report
//! recognised through copies names the closest of those it aligns with. Content whose matches
//! name no entry is kept once per distinct content. So an entry has a few copies at most (each
//! closer than the one before: at most 33 for PDQ's 0..=31 and a digest), and the memory
//! (about 9 KB of keypoints and 3 KB of table entries a copy) grows with the listed pictures
//! reported, not with the reports.
//!
//! A copy keeps its content's digests and PDQ hashes, and they are matched against the lists
//! again whenever a report is recognised through it: the matches given are the lists' as they
//! are then, so an entry removed from a list, or allowed by an allow-list, no longer reaches
//! the crops of its picture either.

use std::collections::{HashMap, HashSet};

use hashsieve_core::digest::Digests;
use hashsieve_core::signals::{PdqSignal, Signals};
use serde::{Deserialize, Serialize};

use crate::model::{ItemPdq, ListMatch};

/// Reported content a hash list matched, as the `listed_copies` table holds it (its keypoints
/// are in `listed_keypoints` under the same number).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ListedCopy {
    /// Its number, in order of keeping.
    pub(crate) id: u64,
    /// The report it came with.
    pub(crate) report: String,
    /// The list matches that made it known, when it was reported.
    pub(crate) matches: Vec<ListMatch>,
    /// The content's digests, to match against the lists again.
    #[serde(with = "crate::model::digests_hex")]
    pub(crate) digests: Digests,
    /// Its PDQ hash's eight rotations and mirror images (the first as reported), with its
    /// quality; empty if it had none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) pdq: Vec<ItemPdq>,
}

impl ListedCopy {
    /// The copy's hashes, as signals to match against the lists.
    pub(crate) fn signals(&self) -> Signals {
        let dihedral: Option<[_; 8]> =
            self.pdq.iter().map(|variant| variant.hash).collect::<Vec<_>>().try_into().ok();
        let pdq =
            self.pdq.first().map(|first| PdqSignal { hash: first.hash, quality: first.quality, dihedral });
        Signals { digests: self.digests.clone(), pdq, ..Signals::default() }
    }
}

/// The PDQ hashes to keep for a copy: all eight variants if they were computed, else the hash.
pub(crate) fn copy_pdq(signals: &Signals) -> Vec<ItemPdq> {
    let Some(pdq) = &signals.pdq else { return Vec::new() };
    let variants = pdq.dihedral.map_or_else(|| vec![pdq.hash], |all| all.to_vec());
    variants.into_iter().map(|hash| ItemPdq { hash, quality: pdq.quality }).collect()
}

/// What the listed copies kept cover (their keypoints are filed with the items').
#[derive(Debug, Default)]
pub(crate) struct ListedCopies {
    /// (list, entry id) of every kept copy's matches, with the closest any copy matched it.
    entries: HashMap<(String, String), Closeness>,
    /// [`content_key`] of every kept copy.
    contents: HashSet<String>,
}

/// [`ListMatch::closeness`].
type Closeness = (bool, u32);

impl ListedCopies {
    /// Whether content with these matches and this content key adds anything: a list entry no
    /// copy covers yet or matches as closely, or, when the matches name no entry, content not
    /// kept yet.
    pub(crate) fn wanted(&self, matches: &[ListMatch], content: &str) -> bool {
        let mut named = matches.iter().filter_map(entry_of).peekable();
        if named.peek().is_none() {
            return !self.contents.contains(content);
        }
        named.any(|(entry, closeness)| self.entries.get(&entry).is_none_or(|&kept| closeness < kept))
    }

    /// Notes what a copy covers.
    pub(crate) fn insert(&mut self, copy: &ListedCopy) {
        for (entry, closeness) in copy.matches.iter().filter_map(entry_of) {
            let kept = self.entries.entry(entry).or_insert(closeness);
            *kept = closeness.min(*kept);
        }
        self.contents.extend(content_key(&copy.digests));
    }
}

/// The content key of a copy: the strongest digest computed (they iterate weakest first).
pub(crate) fn content_key(digests: &Digests) -> Option<String> {
    let (kind, _) = digests.iter().last()?;
    Some(format!("{}:{}", kind.name(), digests.hex(kind)?))
}

fn entry_of(found: &ListMatch) -> Option<((String, String), Closeness)> {
    Some(((found.list.clone(), found.entry_id.clone()?), found.closeness()))
}
