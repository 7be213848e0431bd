//! hashsieve-triage: verdict memory and review grouping for hotlines, so that an analyst only
//! opens what is genuinely new.
//!
//! A hotline receives reports of URLs and files from the public, and every report must be
//! assessed; looking at abuse imagery harms the people who do it. This crate decides, for each
//! report, whether a person needs to look at all:
//!
//! - **Known**: the core [`Matcher`](hashsieve_core::matcher::Matcher) found the content in a
//!   hash list. Confirmed without review.
//!   By default so is a PDQ-only match to a list, and a crop of content a list matched earlier
//!   (a *listed copy*); with [`TriageOptions::near_known_is_known`] off, those matches go to
//!   review as a hint for the analyst.
//! - **Previously assessed**: the same bytes as an item an analyst already assessed, or a
//!   near-duplicate of one (one of its eight PDQ rotations and mirror images within 31 bits, by
//!   default; failing that, a crop of it by keypoints). The report inherits that verdict, and the
//!   history says from which item, how matched, at what distance.
//! - **New**: queued for review. New items that are near-duplicates of each other are put in
//!   one review group, so one representative is looked at and the verdict applies to all.
//!
//! The parts:
//!
//! - [`Triage`] (in `triage`): the store, [`Triage::submit`] and [`Triage::classify`], the
//!   review queue ([`Triage::pending_groups`], [`Triage::group_reports`],
//!   [`Triage::assess_group`], [`Triage::split_group`], [`Triage::assess_item`]) and
//!   [`Triage::history`].
//! - [`model`]: items, groups, verdicts, outcomes and events: hashes and metadata only. No image
//!   bytes are stored, ever.
//! - [`export`]: illegal items as core [`Change`](hashsieve_core::delta::Change)s for the
//!   hotline's own hash list, so that they are matched as known from then on.
//! - [`blocklist`]: the URL block list for ISPs, as a plain list, Squid ACLs and a DNS RPZ zone.
//! - [`location`]: a reported URL as a case key, and where it was hosted (offline IP databases).
//! - [`takedown`]: what follows a verdict — a [`Case`](takedown::Case) per URL where
//!   confirmed content was reported, its re-checks until removal, notices, referrals abroad,
//!   the figures; kept in the store by [`Triage::record_check`], [`Triage::block_list`] and
//!   the other case methods, in the transactions that cause them.
//! - `near` (private): complete PDQ radius search over the store's items.
//! - `crops` and `listed` (private): keypoint search for crops of items and of listed copies.
//! - `store` (private): the database tables.
//!
//! # Storage: why redb
//!
//! The store is one [redb](https://docs.rs/redb) file: a pure-Rust, copy-on-write B-tree
//! database with ACID transactions, checksummed commit slots and crash recovery, stable file
//! format, and active maintenance. Every write here (a submission, a verdict, a split, an
//! export mark) is one transaction committed with `Durability::Immediate`, which fsyncs before
//! the call returns, so an acknowledged write survives kill -9 and power loss, and a write that
//! fails leaves nothing behind. A queue consumer deciding many reports uses `submit_all`: the
//! reports are committed one by one (each sees the ones before it) without fsync, and one
//! immediate commit at the end makes them all durable before any outcome is returned. A
//! submission touches up to ten tables (report, item, its digests, group, queue, events, verdict
//! log, keypoints…); with core's append-only delta log each of those indexes would have to be
//! rebuilt by replay and kept consistent by hand, where redb gives atomic multi-table commits and
//! lookups by key (report id, digest, item, group) without holding everything in memory. Only the
//! PDQ hashes and keypoints are held in memory, for near search (about 12 KB an item with
//! keypoints); they are loaded on [`Triage::open`].
//!
//! # Grouping
//!
//! A new item joins the group of the nearest pending item within the threshold (ties to the
//! older item); it never merges groups. Merging on a bridge item would chain unrelated
//! pictures into one group and undo a reviewer's split; a reviewer who finds two groups alike
//! assesses both with one look each. An assessed item within the threshold wins over a nearer
//! pending one, since its verdict saves a review. Verdicts are inherited only from items an
//! analyst assessed (directly or through a group), never from an item that itself inherited,
//! so near-duplicates of near-duplicates cannot drift ever further from what was seen; such an
//! item still passes its verdict on to the same bytes.
//!
//! PDQ hashes below the quality threshold (50, as in core) are not matched on, as query or as
//! stored item; such content is matched by digest only.
//!
//! # Example
//!
//! ```
//! use hashsieve_core::index::{IndexBuilder, ListOptions};
//! use hashsieve_core::matcher::Matcher;
//! use hashsieve_core::signals::Signals;
//! use hashsieve_triage::location::Location;
//! use hashsieve_triage::model::{Disposition, Report, VerdictKind};
//! use hashsieve_triage::{Triage, TriageOptions};
//!
//! let dir = tempfile::tempdir()?;
//! let mut triage = Triage::open(&dir.path().join("triage.redb"), TriageOptions::default())?;
//! // The hotline's hash lists; here one empty list.
//! let mut builder = IndexBuilder::new();
//! builder.add_list(ListOptions::new("hotline"))?;
//! let matcher = Matcher::from_bytes(builder.to_vec())?;
//!
//! let picture = std::fs::read("../../samples/images/wee.jpg")?;
//! let signals = Signals::from_bytes(&picture, &Triage::signal_options());
//! // Reported at a URL: were it confirmed illegal, its location would open a takedown case.
//! let location = Some(Location::new("https://example.invalid/a")?);
//! let report = Report { id: "r-1".into(), source: "https://example.invalid/a".into(), reported_ms: 0, location };
//! let Disposition::New { group, .. } = triage.submit(&report, &signals, &matcher)? else {
//!     panic!("nothing was assessed yet")
//! };
//!
//! // One analyst look for the group.
//! triage.assess_group(group, VerdictKind::Legal, "analyst-7", None)?;
//!
//! // A re-report of the same picture, mirrored and recompressed, needs no one to look.
//! let mirrored = image::load_from_memory(&picture)?.fliph();
//! let mut bytes = std::io::Cursor::new(Vec::new());
//! mirrored.write_to(&mut bytes, image::ImageFormat::Png)?;
//! let signals = Signals::from_bytes(bytes.get_ref(), &Triage::signal_options());
//! let report = Report { id: "r-2".into(), source: "upload".into(), reported_ms: 1, location: None };
//! let outcome = triage.submit(&report, &signals, &matcher)?;
//! assert!(matches!(outcome, Disposition::PreviouslyAssessed { verdict, .. } if verdict.kind == VerdictKind::Legal));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod blocklist;
pub mod export;
pub mod location;
pub mod model;
pub mod takedown;

mod crops;
mod error;
mod listed;
mod near;
mod store;
mod triage;

pub use crate::error::TriageError;
pub use crate::triage::review::{MAX_PREFERENCES_BYTES, representative};
pub use crate::triage::{Counts, FORMAT_VERSION, Triage, TriageOptions};
