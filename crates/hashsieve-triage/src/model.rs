//! The values the store keeps and the answers it gives: items, groups, verdicts, outcomes and
//! history events. Everything here is hashes and metadata; there is no field for content.
//!
//! Each type serialises to the JSON stored in the database, so a change to a field is a change
//! to the store's format ([`FORMAT_VERSION`](crate::FORMAT_VERSION)).

use std::fmt;

use hashsieve_core::digest::Digests;
use hashsieve_core::hashes::HashKind;
use hashsieve_core::keypoints::Alignment;
use hashsieve_core::matcher::Match;
use hashsieve_core::pdq::PdqHash;
use serde::{Deserialize, Serialize};

use crate::location::Location;

/// An item: one piece of content (one set of digests), however many reports named it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ItemId(pub u64);

/// A review group: pending items that are near-duplicates of one another, reviewed as one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct GroupId(pub u64);

impl fmt::Display for ItemId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "item {}", self.0)
    }
}

impl fmt::Display for GroupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "group {}", self.0)
    }
}

/// A report as it arrives: the caller's id for it (unique per report; a redelivery carries the
/// same id), where it came from, and when it was made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The caller's id for the report, e.g. a queue message id or a case number.
    pub id: String,
    /// Where the content came from: a URL, "upload", a partner's name.
    pub source: String,
    /// When the report was made, in milliseconds since the Unix epoch.
    pub reported_ms: u64,
    /// For a report of a URL, where the content was found: once the content is confirmed
    /// illegal, this location opens a takedown [`Case`](crate::takedown::Case).
    pub location: Option<Location>,
}

/// What an analyst decided about an item.
///
/// Categories are free strings because hotlines grade by different schemes: UK hotlines by the
/// sentencing categories ("A", "B", "C"), others by INHOPE/Interpol's "baseline" versus
/// "national", case systems by Project VIC-style numbered categories. The string is kept as
/// given and exported as the hash-list entry's category, so use the names your lists use.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum VerdictKind {
    /// Illegal material of this category: exported to the hotline's hash list.
    Illegal {
        /// The category in the hotline's scheme, e.g. "A".
        category: String,
    },
    /// Legal: no action, and near-duplicates need no review either.
    Legal,
    /// The analyst could not decide (e.g. the age of the person shown): recorded so that the
    /// same picture is not reopened, and not exported.
    Unclear,
}

impl VerdictKind {
    /// The category, if the verdict is illegal.
    pub fn illegal_category(&self) -> Option<&str> {
        match self {
            VerdictKind::Illegal { category } => Some(category),
            VerdictKind::Legal | VerdictKind::Unclear => None,
        }
    }
}

/// How two pieces of content were found to be the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchedBy {
    /// A cryptographic digest is equal: the same bytes.
    ExactDigest,
    /// The PDQ hashes (one of the query's eight rotations and mirror images) are within the
    /// threshold: the same picture, possibly altered.
    Pdq,
    /// The keypoints agree on one alignment that shows the same picture reframed — cropped,
    /// perhaps also resized, mirrored or re-encoded — where PDQ was too far to match; the
    /// distance given with it is then the PDQ distance (256 if either has no PDQ hash).
    Keypoints,
}

impl MatchedBy {
    /// The name used in JSON and the audit log: `exact_digest`, `pdq`, `keypoints`.
    pub fn as_str(self) -> &'static str {
        match self {
            MatchedBy::ExactDigest => "exact_digest",
            MatchedBy::Pdq => "pdq",
            MatchedBy::Keypoints => "keypoints",
        }
    }
}

/// Why an item has its verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "basis", rename_all = "snake_case")]
pub enum Basis {
    /// An analyst assessed this item.
    Direct,
    /// An analyst assessed its review group, usually by looking at the representative.
    Group {
        /// The group.
        group: GroupId,
        /// The member the group was shown by when it was assessed.
        representative: ItemId,
    },
    /// Taken over from an item an analyst assessed.
    Inherited {
        /// The assessed item.
        from: ItemId,
        /// Hamming distance between the PDQ hashes; 0 for a digest match.
        distance: u32,
        /// How the two were matched.
        how: MatchedBy,
    },
}

/// A verdict on an item, with who gave it, when, and on what basis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assessment {
    /// What was decided.
    #[serde(flatten)]
    pub kind: VerdictKind,
    /// The analyst who decided; for an inherited verdict, the one who decided the original.
    pub analyst: String,
    /// When this item got the verdict, in milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// The analyst's note.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Direct, through a group, or inherited.
    #[serde(flatten)]
    pub basis: Basis,
}

/// An item's PDQ hash and quality.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemPdq {
    /// The hash of the image as reported (not rotated).
    #[serde(with = "pdq_hex")]
    pub hash: PdqHash,
    /// PDQ's quality score, 0..=100.
    pub quality: u8,
}

/// Where an item stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ItemState {
    /// Awaiting review in a group.
    Pending {
        /// The group.
        group: GroupId,
    },
    /// Has a verdict (the last of [`Item::verdicts`]).
    Assessed,
}

/// A hash-list match of the content, as the core matcher reported it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListMatch {
    /// The list.
    pub list: String,
    /// The hash kind that matched, e.g. "md5", "pdq".
    pub kind: String,
    /// The list's category for the entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// The list's id for the entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry_id: Option<String>,
    /// The distance, 0 for digests.
    pub distance: u32,
    /// Set when the list matched not this content but an earlier report's, which this content
    /// is a reframed copy of (a crop, say, that PDQ no longer matches; found by keypoints): that
    /// report's id, the same as [`via`](ListMatch::via)'s, which says how the two were matched.
    /// `kind` and `distance` are then that report's match with the list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via_report: Option<String>,
    /// With `via_report`: how this content was recognised as that report's — the basis, its own
    /// PDQ distance to it and the keypoint alignment. Records from before it was added have
    /// `via_report` alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<Via>,
}

impl ListMatch {
    /// How closely the match ties content to the list's entry, smaller is closer: a digest
    /// (the same bytes) before any distance, then by distance.
    pub(crate) fn closeness(&self) -> (bool, u32) {
        let exact = self.kind.parse::<HashKind>().is_ok_and(HashKind::is_exact);
        (!exact, self.distance)
    }
}

/// How content the lists do not match was recognised as the content of an earlier report the
/// lists do match (a listed copy): in JSON `{"report", "how", "pdq_distance", "alignment"}`.
///
/// Of the listed copies the content aligns with, the one named is the one the lists match most
/// closely (by digest before by distance, then the smallest distance; ties to the most agreeing
/// keypoints): the original picture rather than an edit of it that was reported first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Via {
    /// The earlier report, whose content the lists matched.
    pub report: String,
    /// How this content was found to be that report's: by [`MatchedBy::Keypoints`], the only
    /// way so far (content PDQ matches would have been matched by the lists themselves).
    pub how: MatchedBy,
    /// The smallest Hamming distance between this content's PDQ hash (any of its eight
    /// rotations and mirror images) and the earlier report's, as reported; 256 if either has
    /// none. Beyond the lists' threshold, or PDQ would have matched.
    pub pdq_distance: u32,
    /// For [`MatchedBy::Keypoints`], the alignment of this content's keypoints onto the earlier
    /// report's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alignment: Option<KeypointAlignment>,
}

/// The figures of a keypoint alignment ([`hashsieve_core::keypoints::Alignment`]) that showed
/// the same picture: the query (the content being decided) maps onto the stored set (the
/// content it was recognised as) by `stored = scale · query + shift` per axis, in fractions of
/// each frame, after mirroring the query if `mirrored`. Fractions are rounded to thousandths.
///
/// Compared bit for bit: the figures are finite, and a record read back equals the one written.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct KeypointAlignment {
    /// Keypoint matches that agree with the alignment (at least
    /// [`keypoints::MIN_AGREEING`](hashsieve_core::keypoints::MIN_AGREEING)).
    pub agreeing: u32,
    /// Whether the query is the mirror image.
    pub mirrored: bool,
    /// Horizontal and vertical scale: about 0.9 for a query cropped by a tenth on each axis.
    pub scale: [f32; 2],
    /// Horizontal and vertical shift: where the query's top left corner lands in the stored
    /// frame.
    pub shift: [f32; 2],
    /// Share of the query's frame that falls inside the stored frame, 0..=1.
    pub query_coverage: f32,
    /// Share of the stored frame that the query's frame covers, 0..=1: what is left of it.
    pub stored_coverage: f32,
    /// Cells of a 4×4 grid over the shared area that hold an agreeing point.
    pub spread_cells: u32,
    /// Cells of that grid where the query has content the stored set does not explain (0 for
    /// the same picture).
    pub unexplained_cells: u32,
}

impl From<&Alignment> for KeypointAlignment {
    fn from(alignment: &Alignment) -> KeypointAlignment {
        let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        // Adding 0.0 turns -0.0 into 0.0, so that a shift rounded to nothing reads as 0.
        let round = |fraction: f32| (fraction * 1000.0).round() / 1000.0 + 0.0;
        KeypointAlignment {
            agreeing: count(alignment.agreeing),
            mirrored: alignment.mirrored,
            scale: alignment.scale.map(round),
            shift: alignment.shift.map(round),
            query_coverage: round(alignment.query_coverage),
            stored_coverage: round(alignment.stored_coverage),
            spread_cells: count(alignment.spread_cells),
            unexplained_cells: count(alignment.unexplained_cells),
        }
    }
}

impl KeypointAlignment {
    fn bits(&self) -> (u32, bool, [u32; 2], [u32; 2], [u32; 2], [u32; 2]) {
        (
            self.agreeing,
            self.mirrored,
            self.scale.map(f32::to_bits),
            self.shift.map(f32::to_bits),
            [self.query_coverage.to_bits(), self.stored_coverage.to_bits()],
            [self.spread_cells, self.unexplained_cells],
        )
    }
}

impl PartialEq for KeypointAlignment {
    fn eq(&self, other: &KeypointAlignment) -> bool {
        self.bits() == other.bits()
    }
}

impl Eq for KeypointAlignment {}

impl From<&Match> for ListMatch {
    fn from(found: &Match) -> ListMatch {
        ListMatch {
            list: found.list.clone(),
            kind: found.kind.name().to_string(),
            category: found.category.clone(),
            entry_id: found.entry_id.clone(),
            distance: found.distance,
            via_report: None,
            via: None,
        }
    }
}

/// One piece of content the hotline was told about, by one or more reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    /// Its id, assigned in order of first report.
    pub id: ItemId,
    /// When it was first reported ([`Report::reported_ms`] of its first report).
    pub first_reported_ms: u64,
    /// When it was first submitted to the store.
    pub created_ms: u64,
    /// The content's length in bytes.
    pub size: u64,
    /// The content's digests (those that were computed).
    #[serde(with = "digests_hex")]
    pub digests: Digests,
    /// The PDQ hash, if the content is an image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pdq: Option<ItemPdq>,
    /// Perceptual (near) matches to hash lists that did not count as known; a hint for the
    /// analyst.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub near_list_matches: Vec<ListMatch>,
    /// Pending or assessed.
    #[serde(flatten)]
    pub state: ItemState,
    /// Every verdict it has had, oldest first; the last one stands while it is assessed (an item
    /// whose group was reopened keeps the verdict taken back here).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verdicts: Vec<Assessment>,
}

impl Item {
    /// The verdict that stands, if it was assessed.
    pub fn verdict(&self) -> Option<&Assessment> {
        match self.state {
            ItemState::Assessed => self.verdicts.last(),
            ItemState::Pending { .. } => None,
        }
    }
}

/// One report, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportRecord {
    /// The caller's id.
    pub id: String,
    /// Where the content came from.
    pub source: String,
    /// When the report was made.
    pub reported_ms: u64,
    /// When it was submitted to the store.
    pub received_ms: u64,
    /// The item it produced or was attached to; none if the content was known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item: Option<ItemId>,
    /// What [`Triage::submit`](crate::Triage::submit) answered, answered again on redelivery.
    pub outcome: Disposition,
    /// The content's digests, to tell a redelivery from a reused report id.
    #[serde(with = "digests_hex")]
    pub digests: Digests,
    /// Where a report of a URL found the content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
}

/// What became of a submitted report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Disposition {
    /// A hash list has it: confirmed without review.
    Known {
        /// The list matches that count.
        matches: Vec<ListMatch>,
    },
    /// The same bytes, or a near-duplicate, of an item an analyst assessed: no review needed.
    PreviouslyAssessed {
        /// The assessed item whose verdict applies.
        item: ItemId,
        /// The item the report was recorded as: `item` itself for the same bytes, else a new
        /// item carrying the inherited verdict.
        recorded: ItemId,
        /// The verdict, as `item` had it.
        verdict: Assessment,
        /// PDQ distance, 0 for the same bytes.
        distance: u32,
        /// Digest or PDQ.
        how: MatchedBy,
    },
    /// Awaiting review: a new item, or a new report of a pending one, in a review group.
    New {
        /// The item.
        item: ItemId,
        /// Its review group.
        group: GroupId,
    },
}

/// What [`Triage::classify`](crate::Triage::classify) would do with content, without recording
/// anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Classification {
    /// A hash list has it.
    Known {
        /// The list matches that count.
        matches: Vec<ListMatch>,
    },
    /// An assessed item's verdict applies.
    PreviouslyAssessed {
        /// The assessed item.
        item: ItemId,
        /// Its verdict.
        verdict: Assessment,
        /// PDQ distance, 0 for the same bytes.
        distance: u32,
        /// Digest or PDQ.
        how: MatchedBy,
    },
    /// It is, or is near, a pending item: it would join that item's group.
    Pending {
        /// The pending item (the content itself, for the same bytes).
        item: ItemId,
        /// Its group.
        group: GroupId,
        /// PDQ distance, 0 for the same bytes.
        distance: u32,
        /// Digest or PDQ.
        how: MatchedBy,
    },
    /// Nothing like it: it would start a review group.
    New,
}

/// A review group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    /// Its id, assigned in order.
    pub id: GroupId,
    /// Its items, in the order they joined.
    pub members: Vec<ItemId>,
    /// Pending, assessed or emptied.
    pub state: GroupState,
    /// When it was started.
    pub created_ms: u64,
    /// The group it was split from, if a reviewer split it off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split_from: Option<GroupId>,
}

/// Where a group stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupState {
    /// Awaiting review.
    Pending,
    /// Assessed as a whole: its members have the group's verdict.
    Assessed,
    /// Its members were assessed one by one, or split off, until none was left.
    Emptied,
}

/// A review group as listed for reviewers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSummary {
    /// The group.
    pub group: GroupId,
    /// The member to show: the best PDQ quality, then the earliest.
    pub representative: ItemId,
    /// How many items are in it.
    pub members: usize,
    /// The earliest report of any member, for first-in, first-out queues.
    pub oldest_report_ms: u64,
}

/// A page of pending groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupPage {
    /// The groups, in order of group id (the order they were started).
    pub groups: Vec<GroupSummary>,
    /// The cursor for the next page, if there may be more.
    pub next: Option<GroupId>,
}

/// A report of a group's member, as listed for reviewers: where to find the content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberReport {
    /// The report's id.
    pub id: String,
    /// Where the content came from.
    pub source: String,
    /// When the report was made.
    pub reported_ms: u64,
    /// The member it is a report of.
    pub item: ItemId,
}

/// The reports of a group's members, or the first of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupReports {
    /// The earliest reported first (ties in report id order), as many as were asked for.
    pub reports: Vec<MemberReport>,
    /// How many reports the members have in all.
    pub total: usize,
}

fn matched_by_pdq() -> MatchedBy {
    MatchedBy::Pdq
}

/// Why an item joined a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Grouping {
    /// Nothing pending was near it: it started the group.
    Started,
    /// It is near a pending member.
    NearMember {
        /// The nearest pending member.
        member: ItemId,
        /// Their PDQ distance.
        distance: u32,
        /// PDQ, or keypoints for a reframed copy (records from before keypoints say PDQ).
        #[serde(default = "matched_by_pdq")]
        how: MatchedBy,
    },
    /// A reviewer split it off from another group.
    Split {
        /// The group it was in.
        from: GroupId,
    },
}

/// Something that happened to an item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum EventKind {
    /// A report named it.
    Submitted {
        /// The report id.
        report: String,
        /// The report's source.
        source: String,
    },
    /// It joined a review group.
    Grouped {
        /// The group.
        group: GroupId,
        /// Why.
        #[serde(flatten)]
        why: Grouping,
    },
    /// An analyst assessed it, directly or through its group.
    Assessed {
        /// The verdict.
        verdict: Assessment,
    },
    /// It took over an assessed item's verdict.
    Inherited {
        /// The verdict, whose basis names the item.
        verdict: Assessment,
    },
    /// Its group's verdict was taken back, and it awaits review again in that group (the
    /// verdict stays in [`Item::verdicts`], no longer standing).
    Reopened {
        /// The group.
        group: GroupId,
        /// Who took it back.
        analyst: String,
        /// Why.
        note: String,
    },
    /// It was written to, or withdrawn from, a hash list.
    Exported {
        /// The list.
        list: String,
        /// The category exported; none if it was withdrawn (its verdict is no longer illegal).
        category: Option<String>,
    },
    /// A report of content a hash list already had (no item was made).
    Known {
        /// The report id.
        report: String,
        /// The report's source.
        source: String,
        /// The matches.
        matches: Vec<ListMatch>,
    },
}

/// One entry of an item's or a report's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// When, in milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// The item; none for a report of known content.
    pub item: Option<ItemId>,
    /// What happened.
    #[serde(flatten)]
    pub what: EventKind,
}

/// Whose history to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistoryOf<'a> {
    /// A report: the history of the item it produced or joined.
    Report(&'a str),
    /// An item.
    Item(ItemId),
}

mod pdq_hex {
    use hashsieve_core::pdq::PdqHash;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(hash: &PdqHash, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&hash.to_hex())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<PdqHash, D::Error> {
        let text = String::deserialize(deserializer)?;
        PdqHash::from_hex(&text).map_err(serde::de::Error::custom)
    }
}

/// Digests as `{"md5": "hex", …}`, only those computed.
pub(crate) mod digests_hex {
    use std::collections::BTreeMap;

    use hashsieve_core::digest::{DigestKind, Digests};
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(digests: &Digests, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(digests.iter().map(|(kind, value)| (kind.name(), hex::encode(value))))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Digests, D::Error> {
        use serde::de::Error;
        let map = BTreeMap::<String, String>::deserialize(deserializer)?;
        let mut digests = Digests::default();
        for (name, text) in map {
            let kind: DigestKind = name.parse().map_err(D::Error::custom)?;
            let bytes = hex::decode(&text).map_err(D::Error::custom)?;
            let wrong = || D::Error::custom(format!("{name} digest of {} bytes", bytes.len()));
            match kind {
                DigestKind::Md5 => digests.md5 = Some(bytes.as_slice().try_into().map_err(|_| wrong())?),
                DigestKind::Sha1 => digests.sha1 = Some(bytes.as_slice().try_into().map_err(|_| wrong())?),
                DigestKind::Sha256 => {
                    digests.sha256 = Some(bytes.as_slice().try_into().map_err(|_| wrong())?)
                }
                DigestKind::Blake3 => {
                    digests.blake3 = Some(bytes.as_slice().try_into().map_err(|_| wrong())?)
                }
            }
        }
        Ok(digests)
    }
}
