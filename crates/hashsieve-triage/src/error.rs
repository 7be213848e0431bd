//! What can go wrong, with enough context to act on.

use std::path::PathBuf;

use crate::model::{GroupId, ItemId};
use crate::takedown::{CaseId, CaseState};

/// Why a triage call failed. A failed write has changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum TriageError {
    /// The database file could not be opened or created.
    #[error("triage store {path}: {source}")]
    Open {
        /// The file.
        path: PathBuf,
        /// What redb said.
        #[source]
        source: redb::DatabaseError,
    },
    /// The database failed during an operation.
    #[error("triage store, {during}: {source}")]
    Store {
        /// The operation, e.g. "submit".
        during: &'static str,
        /// What redb said.
        #[source]
        source: redb::Error,
    },
    /// The file is a redb database of another format, or of a newer version of this crate.
    #[error("triage store {path}: format version {found}, this build reads {expected}")]
    Format {
        /// The file.
        path: PathBuf,
        /// The version in the file.
        found: u64,
        /// [`FORMAT_VERSION`](crate::FORMAT_VERSION).
        expected: u64,
    },
    /// A stored record does not parse: the file was damaged or written by something else.
    #[error("triage store: unreadable {what} record {key}: {source}")]
    Corrupt {
        /// The kind of record.
        what: &'static str,
        /// Its key.
        key: String,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// A stored keypoint set does not parse: the file was damaged or written by something else.
    #[error("triage store: unreadable keypoints of {owner}: {source}")]
    CorruptKeypoints {
        /// Whose: "item N" or "listed copy N".
        owner: String,
        /// The parse error.
        #[source]
        source: hashsieve_core::keypoints::ParseKeypointsError,
    },
    /// The store refers to a record that is missing: the file was damaged.
    #[error("triage store: {what} {key} is referred to but missing")]
    Missing {
        /// The kind of record.
        what: &'static str,
        /// Its key.
        key: String,
    },
    /// The report cannot be matched: it has no digest.
    #[error("report {report:?} has no digest (compute them with Triage::signal_options)")]
    NoDigest {
        /// The report id.
        report: String,
    },
    /// A report id was empty.
    #[error("a report id cannot be empty")]
    EmptyReportId,
    /// A report id that was recorded arrived again with other content: not a redelivery.
    #[error("report {report:?} was recorded with other content; report ids must be unique")]
    ReportIdReused {
        /// The report id.
        report: String,
    },
    /// No such report.
    #[error("no report {0:?}")]
    UnknownReport(String),
    /// No such item.
    #[error("no {0}")]
    UnknownItem(ItemId),
    /// No such group.
    #[error("no {0}")]
    UnknownGroup(GroupId),
    /// No such takedown case.
    #[error("no {0}")]
    UnknownCase(CaseId),
    /// The case was removed or closed, and takes no more actions.
    #[error("{case} is {}, no longer active", state.name())]
    CaseNotActive {
        /// The case.
        case: CaseId,
        /// Its state.
        state: CaseState,
    },
    /// The group was assessed, or emptied, and takes no more review actions.
    #[error("{0} is not pending review")]
    GroupNotPending(GroupId),
    /// A group's verdict cannot be taken back.
    #[error("the verdict of {group} cannot be taken back: {why}")]
    CannotReopen {
        /// The group.
        group: GroupId,
        /// Why not.
        why: String,
    },
    /// A split names an item that is not in the group.
    #[error("{item} is not in {group}")]
    NotInGroup {
        /// The group.
        group: GroupId,
        /// The item.
        item: ItemId,
    },
    /// A split must move some members and leave some.
    #[error("a split of {group} moves {moving} of its {members} members; it must move some and leave some")]
    BadSplit {
        /// The group.
        group: GroupId,
        /// How many distinct members the split names.
        moving: usize,
        /// How many members the group has.
        members: usize,
    },
    /// An analyst's preferences are longer than the store keeps.
    #[error("preferences of {bytes} bytes; at most {} are kept", crate::MAX_PREFERENCES_BYTES)]
    PreferencesTooLarge {
        /// Their length.
        bytes: usize,
    },
    /// The matcher refused the exported changes (nothing was marked exported).
    #[error("exporting to list {list:?}: {source}")]
    Export {
        /// The list.
        list: String,
        /// What the matcher said.
        #[source]
        source: hashsieve_core::index::dir::IndexDirError,
    },
}

/// A redb error on its way to becoming a [`TriageError::Store`], once the operation is known.
#[derive(Debug)]
pub(crate) enum Failure {
    Db(redb::Error),
    Triage(TriageError),
}

impl Failure {
    pub(crate) fn during(self, during: &'static str) -> TriageError {
        match self {
            Failure::Db(source) => TriageError::Store { during, source },
            Failure::Triage(error) => error,
        }
    }
}

impl From<TriageError> for Failure {
    fn from(error: TriageError) -> Failure {
        Failure::Triage(error)
    }
}

macro_rules! from_redb {
    ($($error:ty),*) => {$(
        impl From<$error> for Failure {
            fn from(error: $error) -> Failure {
                Failure::Db(error.into())
            }
        }
    )*};
}

from_redb!(
    redb::Error,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::SetDurabilityError
);
