//! [`Triage`]: the store, classification of reports, and the review actions.
//!
//! One type, its methods split by job over this folder:
//!
//! - this file: the types, opening the store and loading what near search holds in memory
//!   ([`Triage::open`]), the counts and accessors, and the read and write transactions every
//!   other part runs in;
//! - `classify`: what a report's content is — known from a list, previously assessed, pending
//!   in a group, or new ([`Triage::classify`]);
//! - `submit`: recording reports and their outcome ([`Triage::submit`], [`Triage::submit_all`]);
//! - `takedown`: the cases of confirmed content at URLs, opened in the transactions that
//!   confirm it, their transitions, and what the block list, referrals and figures read
//!   ([`Triage::record_check`], [`Triage::block_list`], …);
//! - `review`: the review queue and its groups' reports ([`Triage::pending_groups`],
//!   [`Triage::group_reports`]), the analysts' actions ([`Triage::assess_group`],
//!   [`Triage::split_group`], [`Triage::assess_item`]), the history and the getters of items,
//!   groups and reports.

mod classify;
pub(crate) mod review;
mod submit;
mod takedown;

use std::path::{Path, PathBuf};

use hashsieve_core::digest::DigestSet;
use hashsieve_core::index::DEFAULT_PDQ_THRESHOLD;
use hashsieve_core::keypoints::Keypoints;
use hashsieve_core::matcher::DEFAULT_MIN_PDQ_QUALITY;
use hashsieve_core::signals::{PdqMode, SignalOptions};
use redb::{Database, Durability, ReadTransaction, ReadableDatabase, ReadableTable, ReadableTableMetadata};

use crate::crops::CropTable;
use crate::error::{Failure, TriageError};
use crate::listed::{ListedCopies, ListedCopy};
use crate::model::{Basis, Item, ItemId, ItemState};
use crate::near::{NearStatus, NearTable};
use crate::store::{self, Tables};
use crate::takedown::TakedownOptions;

/// What the keypoint table files: the store's items and its listed copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum KeypointOwner {
    Item(ItemId),
    ListedCopy(u64),
}

/// What a filed keypoint set can give a query: an item's review status, or a listed copy's
/// list matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OwnerStatus {
    Item(NearStatus),
    ListedCopy,
}

/// The version of the store's tables and records; a file of another version is refused, but
/// for version 1, which is brought up to date when opened (version 2 added the `blocking`
/// table, filled from the cases).
pub const FORMAT_VERSION: u64 = 2;

/// How reports are matched against what the store holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TriageOptions {
    /// Items whose PDQ hashes are within this many bits (of 256) are near-duplicates: a report
    /// inherits an assessed item's verdict, or joins a pending item's group. Default 31, core's
    /// PDQ default.
    pub pdq_threshold: u32,
    /// PDQ hashes of lower quality are too weak to match on, as in core's matcher: such items
    /// match by digest only. Default 50.
    pub min_pdq_quality: u8,
    /// Whether a perceptual-only hash-list match (core's `NearKnown`: PDQ within the list's
    /// threshold, 31 by default) confirms a report as known, and so does a keypoint match to a
    /// listed copy (see [`ListMatch::via_report`](crate::model::ListMatch::via_report)). Default
    /// true: that is what a match is to every other client of the index, and the same trust
    /// triage gives its own assessed items, whose near-duplicates inherit their verdicts by the
    /// same threshold. False, for a hotline whose policy is that a person confirms every
    /// perceptual match to a list: such a report goes on through triage, the match kept on its
    /// item as a hint (`near_list_matches`). A false match is answered by the list's allow-list
    /// (core's suppression), not here.
    pub near_known_is_known: bool,
    /// The takedown policy: the hotline's country, the re-check schedule, deadlines, the
    /// block list's grace period and the partners abroad.
    pub takedown: TakedownOptions,
}

impl Default for TriageOptions {
    fn default() -> Self {
        TriageOptions {
            pdq_threshold: DEFAULT_PDQ_THRESHOLD,
            min_pdq_quality: DEFAULT_MIN_PDQ_QUALITY,
            near_known_is_known: true,
            takedown: TakedownOptions::default(),
        }
    }
}

/// How many records the store holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Takedown cases, in any state.
    pub cases: u64,
    /// Reports submitted (each id once).
    pub reports: u64,
    /// Items.
    pub items: u64,
    /// Groups awaiting review.
    pub pending_groups: u64,
    /// Listed copies kept: reported content a hash list matched, whose keypoints recognise
    /// crops of it (see [`ListMatch::via_report`](crate::model::ListMatch::via_report)).
    pub listed_copies: u64,
}

/// The verdict memory and review queue of one hotline, in one database file.
///
/// Reads take `&self`, and so do the writes that change only takedown cases, which touch
/// nothing but the database (redb runs one write transaction at a time): a process may run them
/// beside its reads. The writes that also change the in-memory near and keypoint tables —
/// submissions and verdicts — take `&mut self`. Every write is durable when it returns. The
/// file is locked: one `Triage` per file, in one process.
#[derive(Debug)]
pub struct Triage {
    db: Database,
    path: PathBuf,
    options: TriageOptions,
    near: NearTable,
    /// Items' and listed copies' keypoints, for reframed copies of either.
    crops: CropTable<KeypointOwner, OwnerStatus>,
    /// Which list entries and contents have a listed copy.
    listed: ListedCopies,
}

impl Triage {
    /// Opens the store at `path`, creating it if it does not exist, and loads the PDQ hashes of
    /// its items for near search. After a crash, redb first recovers the last committed state.
    pub fn open(path: &Path, options: TriageOptions) -> Result<Triage, TriageError> {
        let db = Database::create(path)
            .map_err(|source| TriageError::Open { path: path.to_path_buf(), source })?;
        let mut triage = Triage {
            db,
            path: path.to_path_buf(),
            options,
            near: NearTable::new(),
            crops: CropTable::default(),
            listed: ListedCopies::default(),
        };
        let found = triage.write("open", |tables| {
            let found = tables.meta.get(store::FORMAT_KEY)?.map(|guard| guard.value());
            match found {
                None => {}
                Some(1) => tables.index_block_list()?,
                Some(_) => return Ok(found),
            }
            tables.meta.insert(store::FORMAT_KEY, FORMAT_VERSION)?;
            Ok(Some(FORMAT_VERSION))
        })?;
        if let Some(found) = found.filter(|&found| found != FORMAT_VERSION) {
            return Err(TriageError::Format { path: triage.path, found, expected: FORMAT_VERSION });
        }
        (triage.near, triage.crops, triage.listed) = triage.read("load items and listed copies", |txn| {
            let items = txn.open_table(store::ITEMS)?;
            let keypoints = txn.open_table(store::KEYPOINTS)?;
            let (mut near, mut crops) = (NearTable::new(), CropTable::default());
            for entry in items.iter()? {
                let (key, value) = entry?;
                let item: Item = store::decode(value.value(), "item", key.value())?;
                triage.index_near(&mut near, &item);
                if let Some(bytes) = keypoints.get(item.id.0)? {
                    let keypoints = parse_keypoints(bytes.value(), &item.id)?;
                    crops.insert(
                        KeypointOwner::Item(item.id),
                        keypoints,
                        OwnerStatus::Item(near_status(&item)),
                    );
                }
            }
            let copies = txn.open_table(store::LISTED_COPIES)?;
            let keypoints = txn.open_table(store::LISTED_KEYPOINTS)?;
            let mut listed = ListedCopies::default();
            for entry in copies.iter()? {
                let (key, value) = entry?;
                let copy: ListedCopy = store::decode(value.value(), "listed copy", key.value())?;
                let bytes = keypoints.get(copy.id)?.ok_or_else(|| TriageError::Missing {
                    what: "keypoints of listed copy",
                    key: copy.id.to_string(),
                })?;
                let owner = format!("listed copy {}", copy.id);
                let keypoints = parse_keypoints(bytes.value(), &owner)?;
                crops.insert(KeypointOwner::ListedCopy(copy.id), keypoints, OwnerStatus::ListedCopy);
                listed.insert(&copy);
            }
            Ok((near, crops, listed))
        })?;
        Ok(triage)
    }

    /// The signals [`Triage::submit`] needs: every digest, PDQ with its eight rotations and
    /// mirror images, and keypoints. Compute them once and pass them to the core matcher too.
    pub fn signal_options() -> SignalOptions {
        SignalOptions {
            digests: DigestSet::ALL,
            pdq: PdqMode::Dihedral,
            keypoints: true,
            ..SignalOptions::default()
        }
    }

    /// The options the store was opened with.
    pub fn options(&self) -> &TriageOptions {
        &self.options
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many reports, items and pending groups the store holds.
    pub fn counts(&self) -> Result<Counts, TriageError> {
        self.read("count", |txn| {
            Ok(Counts {
                reports: txn.open_table(store::REPORTS)?.len()?,
                items: txn.open_table(store::ITEMS)?.len()?,
                pending_groups: txn.open_table(store::PENDING_GROUPS)?.len()?,
                listed_copies: txn.open_table(store::LISTED_COPIES)?.len()?,
                cases: txn.open_table(store::CASES)?.len()?,
            })
        })
    }

    fn index_near(&self, near: &mut NearTable, item: &Item) {
        if let Some(pdq) = item.pdq.filter(|pdq| pdq.quality >= self.options.min_pdq_quality) {
            near.insert(item.id, &pdq.hash, near_status(item));
        }
    }

    pub(crate) fn read<T>(
        &self,
        during: &'static str,
        body: impl FnOnce(&ReadTransaction) -> Result<T, Failure>,
    ) -> Result<T, TriageError> {
        let run = || {
            let txn = self.db.begin_read()?;
            body(&txn)
        };
        run().map_err(|failure| failure.during(during))
    }

    /// Runs `body` in a write transaction and commits it with fsync before returning; if `body`
    /// fails, nothing is written.
    pub(crate) fn write<T>(
        &self,
        during: &'static str,
        body: impl FnOnce(&mut Tables<'_>) -> Result<T, Failure>,
    ) -> Result<T, TriageError> {
        self.write_with(during, Durability::Immediate, body)
    }

    /// [`Triage::write`] committed with `durability`: `Durability::None` (within
    /// [`Triage::submit_all`]) keeps the commit visible in this process, and the next
    /// immediate commit makes it durable.
    fn write_with<T>(
        &self,
        during: &'static str,
        durability: Durability,
        body: impl FnOnce(&mut Tables<'_>) -> Result<T, Failure>,
    ) -> Result<T, TriageError> {
        let run = || {
            let mut txn = self.db.begin_write()?;
            txn.set_durability(durability)?;
            let out = {
                let mut tables = Tables::open(&txn)?;
                body(&mut tables)?
            };
            txn.commit()?;
            Ok(out)
        };
        run().map_err(|failure: Failure| failure.during(during))
    }
}

/// What a new or changed item is for near search.
fn near_status(item: &Item) -> NearStatus {
    match (item.state, item.verdicts.last().map(|verdict| &verdict.basis)) {
        (ItemState::Pending { group }, _) => NearStatus::Pending(group),
        (ItemState::Assessed, Some(Basis::Inherited { .. })) => NearStatus::Inherited,
        (ItemState::Assessed, _) => NearStatus::Assessed,
    }
}

/// A stored keypoint set, parsed; `owner` names it in the error.
fn parse_keypoints(bytes: &[u8], owner: &dyn std::fmt::Display) -> Result<Keypoints, Failure> {
    Keypoints::from_bytes(bytes)
        .map_err(|source| TriageError::CorruptKeypoints { owner: owner.to_string(), source }.into())
}
