//! The takedown loop: what happens after content is confirmed illegal, until it is gone.
//!
//! A hotline exists to get confirmed material **removed at source**, to **refer** what is
//! hosted abroad to the hotline or police of that country, and to have ISPs **block** it while
//! it is still online (the WePROTECT Model National Response, capabilities 12 and 16). This
//! module holds the records of that loop; [`Triage`](crate::Triage) keeps them in its store, in
//! the same transactions as the verdicts that cause them.
//!
//! # Cases
//!
//! When an item becomes illegal — by an analyst's verdict, by inheritance from an assessed
//! near-duplicate, or as known from a hash list — every URL it was reported at opens a
//! [`Case`]: one per normalised URL and content, however many reports name the pair. A case
//! moves through these states ([`CaseState`]):
//!
//! ```text
//!            notice delivered        check: same content        past the deadline
//!   open ───────────────────▶ notified ───────────────▶ still_online ─────────▶ escalated
//!    │                            │                         │                      │
//!    │ hosted abroad, a partner   │        check: gone (404/410, name gone,        │
//!    └──────────▶ referred        └──────▶ refused, other content) ◀───────────────┘
//!                    │                       removed ──▶ closed
//!                    └─── check: gone ──────────▲
//! ```
//!
//! Every state but `removed` and `closed` is *active*: it is re-checked on the schedule
//! ([`CheckSchedule`]) and its URL is on the block list once the grace period is over
//! ([`TakedownOptions::block_after_ms`]; at once when hosted abroad, by default). A case is
//! closed by an analyst, or when the verdict it was opened for is corrected away from
//! illegal. Every change is a [`CaseEvent`] with its time, actor and reason, written in the
//! transaction that made it.
//!
//! # Re-checks
//!
//! A re-check fetches the URL again and compares what it finds with the case's content: the
//! same digest, or a PDQ hash within the store's threshold of one of the fetched image's eight
//! rotations and mirror images, is the content still online ([`CheckFinding::Online`]); a 404
//! or 410, a name that no longer resolves, a refused connection, or other content is removal
//! ([`CheckFinding::Gone`]); a timeout or a server error proves neither
//! ([`CheckFinding::Inconclusive`]) and the schedule goes on. Each check has a slot number (the
//! count of checks recorded), and a finding for a slot already recorded is ignored, so a
//! scheduler that crashes between its fetch and its write checks the slot again after the
//! restart, and one whose write was committed never does it twice.

mod documents;
mod figures;
mod schedule;

use std::collections::BTreeMap;

use hashsieve_core::digest::Digests;
use serde::{Deserialize, Serialize};

pub use self::documents::{NOTICE_FORMAT, Notice, REFERRAL_FORMAT, Referral};
pub use self::figures::{Durations, Figures, GroupFigures};
pub use self::schedule::CheckSchedule;
use crate::location::{Location, NormalisedUrl};
use crate::model::{ItemId, ItemPdq, MatchedBy};

/// A takedown case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CaseId(pub u64);

impl std::fmt::Display for CaseId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "case {}", self.0)
    }
}

/// Where a case stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaseState {
    /// Confirmed at this URL; no notice delivered yet.
    Open,
    /// A notice was delivered to the hosting provider (or sent by hand).
    Notified,
    /// A re-check found the content still there.
    StillOnline,
    /// Still online past [`TakedownOptions::escalate_after_ms`] from the notice.
    Escalated,
    /// Hosted abroad, and referred to the partner of that country.
    Referred,
    /// A re-check found it gone.
    Removed,
    /// Ended by an analyst, or because its verdict was corrected away from illegal.
    Closed,
}

impl CaseState {
    /// Every state, in the order of the loop.
    pub const ALL: [CaseState; 7] = [
        CaseState::Open,
        CaseState::Notified,
        CaseState::StillOnline,
        CaseState::Escalated,
        CaseState::Referred,
        CaseState::Removed,
        CaseState::Closed,
    ];

    /// Whether the case is still being worked: re-checked, and blockable.
    pub fn is_active(self) -> bool {
        !matches!(self, CaseState::Removed | CaseState::Closed)
    }

    /// Its name in JSON and URLs.
    pub fn name(self) -> &'static str {
        match self {
            CaseState::Open => "open",
            CaseState::Notified => "notified",
            CaseState::StillOnline => "still_online",
            CaseState::Escalated => "escalated",
            CaseState::Referred => "referred",
            CaseState::Removed => "removed",
            CaseState::Closed => "closed",
        }
    }
}

impl std::str::FromStr for CaseState {
    type Err = String;

    fn from_str(text: &str) -> Result<CaseState, String> {
        CaseState::ALL
            .into_iter()
            .find(|state| state.name() == text)
            .ok_or_else(|| format!("no case state {text:?} (one of open, notified, still_online, escalated, referred, removed, closed)"))
    }
}

/// How a re-check saw the content go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "sign", rename_all = "snake_case")]
pub enum RemovalSign {
    /// The server answered 404 Not Found or 410 Gone.
    NotFound {
        /// The status.
        status: u16,
    },
    /// The host name no longer resolves.
    NameGone,
    /// The host refused the connection.
    ConnectionRefused,
    /// The URL now serves other content (or a page that is not the picture).
    OtherContent,
}

/// What a re-check of a case's URL found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "finding", rename_all = "snake_case")]
pub enum CheckFinding {
    /// The case's content is still there.
    Online {
        /// The PDQ distance, 0 for the same bytes.
        distance: u32,
        /// Digest or PDQ.
        how: MatchedBy,
    },
    /// It is gone.
    Gone {
        /// How it was seen to go.
        #[serde(flatten)]
        sign: RemovalSign,
    },
    /// Neither could be seen (a timeout, a server error, a refused address): the schedule goes
    /// on.
    Inconclusive {
        /// What happened, for the history.
        reason: String,
    },
}

/// Why a case was opened: how its content was confirmed illegal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "confirmed_by", rename_all = "snake_case")]
pub enum Confirmation {
    /// An analyst's verdict on the item (directly or through its group).
    Assessed {
        /// The analyst.
        analyst: String,
    },
    /// The item inherited the verdict of an assessed item.
    Inherited {
        /// The assessed item.
        from: ItemId,
    },
    /// A hash list has the content.
    Listed {
        /// The list.
        list: String,
        /// The list's id for the entry, if it has one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        entry_id: Option<String>,
    },
}

/// A notice delivery, as recorded on its case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// The abuse contact it went to (a webhook URL, an address, a name).
    pub to: String,
    /// How: "webhook", or "manual" for a notice the hotline sent itself.
    pub channel: String,
    /// When it was delivered.
    pub at_ms: u64,
    /// Which attempt succeeded (1 for the first).
    pub attempt: u32,
}

/// A referral of a case hosted abroad, as recorded on its case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Referred {
    /// The partner hotline or law-enforcement agency.
    pub to: String,
    /// The hosting country.
    pub country: String,
    /// When it was referred.
    pub at_ms: u64,
}

/// One takedown case: confirmed content at one URL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Case {
    /// Its id, assigned in order.
    pub id: CaseId,
    /// The normalised URL: with the content, the case's identity.
    pub url: NormalisedUrl,
    /// Where the first report at this URL found the content: the URL as reported, the final
    /// URL, the addresses and the hosting country and network.
    pub location: Location,
    /// The item, if the content is one (content known from a list has none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item: Option<ItemId>,
    /// The content's digests: what a re-check compares with.
    #[serde(with = "crate::model::digests_hex")]
    pub digests: Digests,
    /// The content's PDQ hash, if it is a strong one, for re-checks of re-encoded copies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pdq: Option<ItemPdq>,
    /// The category: the analyst's, or the list's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// How the content was confirmed.
    pub confirmation: Confirmation,
    /// The reports of this URL and content, first first.
    pub reports: Vec<String>,
    /// When the first of them was made.
    pub first_reported_ms: u64,
    /// When the content was confirmed illegal at this URL (the case was opened).
    pub confirmed_ms: u64,
    /// Where it stands.
    pub state: CaseState,
    /// The hosting country is not the hotline's own.
    pub abroad: bool,
    /// The hotline marked the whole host for blocking (a host serving only such content):
    /// the host, not just the URL, goes into host-level block lists.
    #[serde(default)]
    pub whole_host: bool,
    /// The notice delivery, once there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notified: Option<Delivery>,
    /// The referral, once there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referred: Option<Referred>,
    /// When it was escalated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalated_ms: Option<u64>,
    /// When and how it was seen gone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub removed: Option<Removal>,
    /// When it was closed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_ms: Option<u64>,
    /// Re-checks recorded: the next check's slot number.
    pub checks: u32,
    /// When the last check that saw the content was made (the confirmation, at first).
    pub last_seen_ms: u64,
    /// When the next re-check is due; none once the case is no longer active.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_check_ms: Option<u64>,
    /// Notice deliveries that failed so far.
    #[serde(default)]
    pub notice_attempts: u32,
    /// When the notice is to be sent (again); none once delivered, for a case abroad, or once
    /// the case is no longer active.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_notice_ms: Option<u64>,
}

/// When and how a case's content was seen gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Removal {
    /// When the check that saw it gone was made.
    pub at_ms: u64,
    /// How.
    #[serde(flatten)]
    pub sign: RemovalSign,
}

/// Something that happened to a case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum CaseEventKind {
    /// The case was opened.
    Opened {
        /// The report that opened it.
        report: String,
        /// How the content was confirmed.
        confirmation: Confirmation,
    },
    /// Another report of the same URL and content.
    Reported {
        /// The report.
        report: String,
    },
    /// A notice was delivered.
    Notified {
        /// The delivery.
        delivery: Delivery,
    },
    /// A notice delivery failed.
    NoticeFailed {
        /// Where it was to go (not `to`, which the event's state after is called).
        webhook: String,
        /// Which attempt (1 for the first).
        attempt: u32,
        /// What went wrong.
        error: String,
        /// Whether it will be tried again.
        retry: bool,
    },
    /// A re-check was made.
    Checked {
        /// Its slot.
        slot: u32,
        /// What it found.
        finding: CheckFinding,
    },
    /// A re-check was asked for now.
    CheckRequested,
    /// Still online past the deadline after its notice.
    Escalated,
    /// Referred to a partner abroad.
    Referred {
        /// The referral.
        referral: Referred,
    },
    /// Marked (or unmarked) for a whole-host block.
    WholeHost {
        /// Whether the whole host is to be blocked.
        whole_host: bool,
    },
    /// Closed.
    Closed {
        /// Why.
        reason: String,
    },
}

/// One entry of a case's history: what happened, when, by whom, and the state before and after.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseEvent {
    /// When.
    pub at_ms: u64,
    /// Who: an analyst, or "scheduler", "lists", "triage" for what the system did.
    pub actor: String,
    /// The state before.
    pub from: CaseState,
    /// The state after.
    pub to: CaseState,
    /// What happened.
    #[serde(flatten)]
    pub what: CaseEventKind,
}

/// The hotline's takedown policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TakedownOptions {
    /// The hotline's own country (ISO 3166-1 alpha-2, e.g. "NL"). A case hosted elsewhere is
    /// *abroad*: it is referred to that country's partner rather than noticed by this hotline.
    /// None: nothing is abroad.
    pub home_country: Option<String>,
    /// When re-checks are made.
    pub checks: CheckSchedule,
    /// A case still online this long after its notice is escalated. Default 72 hours.
    pub escalate_after_ms: u64,
    /// A case still online this long after confirmation goes on the URL block list. Default
    /// 24 hours: the host has a day to act on the notice before ISPs are asked to block.
    pub block_after_ms: u64,
    /// Whether a case hosted abroad goes on the block list at once (default): no notice from
    /// this hotline reaches its host, and removal there is slower.
    pub block_abroad_at_once: bool,
    /// The partner hotline or agency per hosting country, for referrals. A case abroad whose
    /// country has no partner stays open and is listed as such.
    pub partners: BTreeMap<String, String>,
}

impl Default for TakedownOptions {
    fn default() -> Self {
        TakedownOptions {
            home_country: None,
            checks: CheckSchedule::default(),
            escalate_after_ms: 72 * HOUR_MS,
            block_after_ms: 24 * HOUR_MS,
            block_abroad_at_once: true,
            partners: BTreeMap::new(),
        }
    }
}

pub(crate) const HOUR_MS: u64 = 60 * 60 * 1000;

/// Which cases to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CaseFilter {
    /// Only these states (all if empty).
    pub states: Vec<CaseState>,
    /// Only cases hosted in this country.
    pub country: Option<String>,
    /// Only cases confirmed at least this long ago.
    pub min_age_ms: Option<u64>,
    /// Only this item's cases.
    pub item: Option<ItemId>,
    /// Only cases hosted abroad (`Some(true)`) or at home (`Some(false)`).
    pub abroad: Option<bool>,
}

impl CaseFilter {
    pub(crate) fn admits(&self, case: &Case, now_ms: u64) -> bool {
        (self.states.is_empty() || self.states.contains(&case.state))
            && self.country.as_deref().is_none_or(|country| case_country(case) == Some(country))
            && self.min_age_ms.is_none_or(|age| now_ms.saturating_sub(case.confirmed_ms) >= age)
            && self.item.is_none_or(|item| case.item == Some(item))
            && self.abroad.is_none_or(|abroad| case.abroad == abroad)
    }

    /// The cases whose notices are still to be sent: open, at home.
    pub fn notices_to_send() -> CaseFilter {
        CaseFilter { states: vec![CaseState::Open], abroad: Some(false), ..CaseFilter::default() }
    }
}

/// The hosting country of a case, if the fetch found one.
pub(crate) fn case_country(case: &Case) -> Option<&str> {
    case.location.hosting.as_ref().and_then(|hosting| hosting.country.as_deref())
}

/// A page of cases.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CasePage {
    /// The cases, in id order.
    pub cases: Vec<Case>,
    /// The cursor for the next page, if there may be more.
    pub next: Option<CaseId>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Events are stored as JSON with their kind's fields flattened beside `from` and `to`: no
    /// kind may have a field of the same name, or the record would not read back.
    #[test]
    fn every_event_reads_back_as_written() {
        let delivery =
            Delivery { to: "abuse@example.test".into(), channel: "webhook".into(), at_ms: 5, attempt: 2 };
        let referral = Referred { to: "Hotline DE".into(), country: "DE".into(), at_ms: 6 };
        let kinds = [
            CaseEventKind::Opened {
                report: "r".into(),
                confirmation: Confirmation::Inherited { from: ItemId(3) },
            },
            CaseEventKind::Opened {
                report: "r".into(),
                confirmation: Confirmation::Listed { list: "l".into(), entry_id: Some("e".into()) },
            },
            CaseEventKind::Reported { report: "r2".into() },
            CaseEventKind::Notified { delivery },
            CaseEventKind::NoticeFailed {
                webhook: "https://w".into(),
                attempt: 1,
                error: "500".into(),
                retry: true,
            },
            CaseEventKind::Checked {
                slot: 4,
                finding: CheckFinding::Gone { sign: RemovalSign::NotFound { status: 410 } },
            },
            CaseEventKind::Checked {
                slot: 5,
                finding: CheckFinding::Inconclusive { reason: "timeout".into() },
            },
            CaseEventKind::CheckRequested,
            CaseEventKind::Escalated,
            CaseEventKind::Referred { referral },
            CaseEventKind::WholeHost { whole_host: true },
            CaseEventKind::Closed { reason: "done".into() },
        ];
        for what in kinds {
            let event = CaseEvent {
                at_ms: 1,
                actor: "a".into(),
                from: CaseState::Open,
                to: CaseState::Notified,
                what,
            };
            let json = serde_json::to_string(&event).unwrap();
            assert_eq!(serde_json::from_str::<CaseEvent>(&json).unwrap(), event, "{json}");
        }
    }
}
