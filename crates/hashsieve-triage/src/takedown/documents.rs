//! The documents the loop sends out: notices to hosting providers, and referrals to partners
//! abroad. Both are JSON, carry hashes, URLs and metadata, and never content.
//!
//! # Notice (`hashsieve-notice/1`)
//!
//! ```json
//! {
//!   "format": "hashsieve-notice/1",
//!   "notice_id": "HOTLINE-NL-case-12",
//!   "case": 12,
//!   "hotline": "Hotline NL",
//!   "url": "http://host.example/a/b.jpg",
//!   "reported_url": "HTTP://Host.example/a/%62.jpg#x",
//!   "final_url": "http://host.example/a/b.jpg",
//!   "address": "192.0.2.7",
//!   "hosting": {"country": "NL", "asn": 64500, "network": "Example Hosting BV"},
//!   "first_reported": "2026-12-07T10:00:00.000Z", "first_reported_ms": 1796637600000,
//!   "confirmed": "2026-12-07T10:05:00.000Z", "confirmed_ms": 1796637900000,
//!   "category": "A",
//!   "hashes": {"md5": "…", "sha1": "…", "sha256": "…", "pdq": "…"}
//! }
//! ```
//!
//! `notice_id` is the idempotency key: a receiver that gets the same id twice (a retried
//! delivery) has one notice. `hashes` has the digests computed and the PDQ hash when the
//! content is an image; `final_url`, `address` and `hosting` are there when the fetch found
//! them.
//!
//! # Referral (`hashsieve-referral/1`)
//!
//! The notice's fields, without `hotline`'s notice id, plus the hosting `country` (always
//! present: only cases abroad are referred), `referred_to`, `referred` / `referred_ms`, the
//! case's `state`, and `notices`: every notice delivery recorded on the case (`to`, `channel`,
//! `at_ms`, `attempt`), usually none since a case abroad is referred rather than noticed.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, UNIX_EPOCH};

use serde::Serialize;

use super::{Case, CaseState, Delivery};
use crate::location::Hosting;

/// The notice format's name and version.
pub const NOTICE_FORMAT: &str = "hashsieve-notice/1";

/// The referral format's name and version.
pub const REFERRAL_FORMAT: &str = "hashsieve-referral/1";

/// A notice to a hosting provider about one case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Notice {
    /// [`NOTICE_FORMAT`].
    pub format: &'static str,
    /// The idempotency key: the hotline's reference and the case.
    pub notice_id: String,
    /// The case.
    pub case: u64,
    /// The hotline's name.
    pub hotline: String,
    #[serde(flatten)]
    subject: Subject,
}

/// A referral of a case hosted abroad to that country's partner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Referral {
    /// [`REFERRAL_FORMAT`].
    pub format: &'static str,
    /// The case.
    pub case: u64,
    /// The referring hotline's name.
    pub hotline: String,
    /// The hosting country.
    pub country: String,
    /// The partner it was referred to.
    pub referred_to: String,
    /// When, as RFC 3339.
    pub referred: String,
    /// When, in milliseconds since the Unix epoch.
    pub referred_ms: u64,
    /// The case's state when the referral was written.
    pub state: CaseState,
    /// Every notice delivery recorded on the case.
    pub notices: Vec<Delivery>,
    #[serde(flatten)]
    subject: Subject,
}

/// What a notice and a referral both say of a case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct Subject {
    url: String,
    reported_url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    final_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    address: Option<IpAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    hosting: Option<Hosting>,
    first_reported: String,
    first_reported_ms: u64,
    confirmed: String,
    confirmed_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    category: Option<String>,
    hashes: BTreeMap<&'static str, String>,
}

impl Subject {
    fn of(case: &Case) -> Subject {
        let mut hashes: BTreeMap<&'static str, String> = case
            .digests
            .iter()
            .filter_map(|(kind, _)| Some((kind.name(), case.digests.hex(kind)?)))
            .collect();
        if let Some(pdq) = case.pdq {
            hashes.insert("pdq", pdq.hash.to_hex());
        }
        Subject {
            url: case.url.to_string(),
            reported_url: case.location.reported.clone(),
            final_url: case.location.final_url.as_ref().map(ToString::to_string),
            address: case.location.connected,
            hosting: case.location.hosting.clone(),
            first_reported: rfc3339(case.first_reported_ms),
            first_reported_ms: case.first_reported_ms,
            confirmed: rfc3339(case.confirmed_ms),
            confirmed_ms: case.confirmed_ms,
            category: case.category.clone(),
            hashes,
        }
    }
}

impl Notice {
    /// The notice for `case`, from the hotline `hotline` whose references start with
    /// `reference` (e.g. "HOTLINE-NL").
    pub fn new(case: &Case, hotline: &str, reference: &str) -> Notice {
        Notice {
            format: NOTICE_FORMAT,
            notice_id: format!("{reference}-case-{}", case.id.0),
            case: case.id.0,
            hotline: hotline.to_string(),
            subject: Subject::of(case),
        }
    }
}

impl Referral {
    /// The referral of `case`, if it was referred; `notices` are its notice deliveries.
    pub fn new(case: &Case, hotline: &str, notices: Vec<Delivery>) -> Option<Referral> {
        let referred = case.referred.as_ref()?;
        Some(Referral {
            format: REFERRAL_FORMAT,
            case: case.id.0,
            hotline: hotline.to_string(),
            country: referred.country.clone(),
            referred_to: referred.to.clone(),
            referred: rfc3339(referred.at_ms),
            referred_ms: referred.at_ms,
            state: case.state,
            notices,
            subject: Subject::of(case),
        })
    }
}

/// A time in milliseconds since the Unix epoch as RFC 3339 in UTC, to the millisecond.
pub(crate) fn rfc3339(ms: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}
