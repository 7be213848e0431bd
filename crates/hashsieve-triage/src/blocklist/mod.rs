//! The URL block list in the formats ISPs load: while confirmed material is still online, an
//! ISP blocks access to its URLs.
//!
//! Which URLs are on the list, and since when, is decided elsewhere; this module only writes a
//! given list of [`BlockEntry`]s, each streamed to an [`std::io::Write`] (a million entries are
//! sorted as references, never gathered into one string):
//!
//! - [`plain`]: one URL per line, for the ISP's own tools.
//! - [`squid`]: three ACL files for Squid 5: a `url_regex` file of the plain-`http` URLs, a
//!   `dstdomain` file of their hosts (a cheap filter in front of the regexes) and a
//!   `dstdomain` file of whole hosts.
//! - [`rpz`]: a DNS response policy zone of the whole hosts, for BIND, Unbound or Knot.
//! - [`Format`] names each of these (and the list as JSON) for a server or a command to
//!   choose from, and [`write`](fn@write) writes any of them.
//! - [`etag`]: a strong HTTP validator of the list, so that a server can answer
//!   `If-None-Match` without writing anything.
//!
//! A format carries what it can block and no more: a host-level format (the zone, the
//! whole-host ACL) only names hosts the hotline marked [`BlockEntry::whole_host`], since
//! blocking a host blocks everything else it serves; Squid without TLS interception sees only
//! the host of an `https` request, so `https` URLs of hosts not marked whole are left out of its
//! files. Every writer returns a [`Summary`]: what it wrote, and what it left out and why.
//!
//! # Example
//!
//! ```
//! use hashsieve_triage::blocklist::{self, BlockEntry, SkipReason, plain, rpz, squid};
//!
//! let entries = vec![
//!     BlockEntry { url: "http://example.com/a.jpg".into(), whole_host: false },
//!     BlockEntry { url: "https://example.net/b?id=7".into(), whole_host: false },
//!     BlockEntry { url: "https://abuse.example.org/".into(), whole_host: true },
//! ];
//!
//! let mut list = Vec::new();
//! plain::write_list(&entries, &mut list)?;
//! assert_eq!(
//!     String::from_utf8(list)?,
//!     "http://example.com/a.jpg\nhttps://abuse.example.org/\nhttps://example.net/b?id=7\n"
//! );
//!
//! let mut regexes = Vec::new();
//! let summary = squid::write_url_regex(&entries, &mut regexes)?;
//! assert_eq!(String::from_utf8(regexes)?, "^http://example\\.com/a\\.jpg$\n");
//! assert_eq!((summary.written, summary.skipped(SkipReason::HttpsNeedsBump)), (1, 1));
//!
//! let mut zone = Vec::new();
//! let origin = rpz::Zone { origin: "rpz.hashsieve.example.".into(), serial: 2024060100 };
//! rpz::write_zone(&entries, &origin, &mut zone)?;
//! assert!(String::from_utf8(zone)?.ends_with("\nabuse.example.org CNAME .\n"));
//!
//! // The validator does not depend on the order of the entries.
//! let reversed: Vec<BlockEntry> = entries.iter().rev().cloned().collect();
//! assert_eq!(blocklist::etag(&entries), blocklist::etag(&reversed));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::BTreeMap;
use std::io::{self, BufWriter, Write};

use serde::{Deserialize, Serialize};

pub mod plain;
pub mod rpz;
pub mod squid;

mod url;

/// One entry of the URL block list.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct BlockEntry {
    /// The normalised URL (`scheme://host[:port]/path?query`, already normalised by the caller:
    /// lower-case scheme and host, punycode, no fragment, no userinfo).
    pub url: String,
    /// The hotline marked the whole host for blocking (the host serves nothing but such content).
    /// Only such entries may appear in host-level formats (the RPZ zone, a Squid dstdomain ACL).
    pub whole_host: bool,
}

/// The block list at one time, with what says whether a copy of it is still current: a copy
/// made at `version` stays current while the store's
/// [`block_list_version`](crate::Triage::block_list_version) is the same and `next_change_ms`
/// has not come.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockList {
    /// The entries, sorted by URL, one per URL.
    pub entries: Vec<BlockEntry>,
    /// The store's block list version when the list was read.
    pub version: u64,
    /// When the list changes next with no case changing — a grace period ends — if ever.
    pub next_change_ms: Option<u64>,
}

/// Why a writer left an entry out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// What the format writes for it is already written for an earlier entry: the same URL
    /// (or, for Squid, a URL Squid sees the same way, such as `%41` and `A`), or the same host.
    Duplicate,
    /// Not a normalised URL any format can carry: not ASCII (a host not in punycode, a path
    /// not percent-encoded), a space or control character, a fragment, user information, a
    /// host that is not a DNS name or address literal, a bad port.
    Malformed,
    /// A host-level format, and the host is not marked [`BlockEntry::whole_host`].
    NotWholeHost,
    /// Squid: an `https` URL of a host not marked whole. Without TLS interception (ssl-bump)
    /// Squid sees only `CONNECT host:443`, so it can block the host or nothing.
    HttpsNeedsBump,
    /// Squid: a scheme other than `http` and `https`.
    UnsupportedScheme,
    /// Squid: the URL's host is marked whole, and the whole-host ACL blocks it already.
    CoveredByWholeHost,
    /// Squid: its regex is longer than a line of a Squid ACL file may be.
    LineTooLong,
    /// Squid: the URL percent-decodes to a line break (Squid matches the decoded URL), which no
    /// line of a Squid ACL file can hold.
    DecodesToLineBreak,
    /// The zone: the host is an address literal, which names no DNS name to rewrite.
    AddressLiteral,
    /// The zone: the host has a label longer than 63 octets, or the name under the zone's
    /// origin is longer than 255.
    NameTooLong,
}

/// What a writer wrote and left out.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// Entries written (one Squid regex line may hold several).
    pub written: u64,
    /// Entries left out, by reason; reasons with none are absent.
    pub skipped: BTreeMap<SkipReason, u64>,
}

impl Summary {
    /// How many entries were left out for `reason`.
    pub fn skipped(&self, reason: SkipReason) -> u64 {
        self.skipped.get(&reason).copied().unwrap_or(0)
    }

    /// How many entries were left out in all.
    pub fn total_skipped(&self) -> u64 {
        self.skipped.values().sum()
    }

    fn skip(&mut self, reason: SkipReason) {
        *self.skipped.entry(reason).or_default() += 1;
    }
}

/// Why a block list could not be written.
#[derive(Debug, thiserror::Error)]
pub enum BlocklistError {
    /// Writing to the output failed.
    #[error("writing the block list: {0}")]
    Write(#[from] io::Error),
    /// The zone's origin is not an absolute DNS name.
    #[error("RPZ origin {origin:?}: {reason}")]
    InvalidOrigin {
        /// The origin given.
        origin: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// Bumped whenever any writer's output for the same entries changes, so that [`etag`] changes
/// with it and no cache keeps a file in the old shape.
const FORMATS_VERSION: u32 = 1;

/// A strong HTTP validator (`ETag`) of `entries`, quoted as the header wants it: a BLAKE3 hash
/// of the sorted, deduplicated entries and of the formats' version. The same list gives the
/// same validator in any order and in any process, so a server can answer `If-None-Match`
/// without writing the list. Each format is its own resource (its own path), so one validator
/// serves them all; for the zone, whose bytes also depend on its origin and serial, a server
/// should add those.
pub fn etag(entries: &[BlockEntry]) -> String {
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"hashsieve block list\0");
    hasher.update(&FORMATS_VERSION.to_le_bytes());
    let mut previous = None;
    for entry in sorted(entries) {
        if previous == Some(entry) {
            continue;
        }
        previous = Some(entry);
        // Length-prefixed, so that no two lists hash the same bytes.
        hasher.update(&(entry.url.len() as u64).to_le_bytes());
        hasher.update(entry.url.as_bytes());
        hasher.update(&[u8::from(entry.whole_host)]);
    }
    // 128 bits: collisions are out of reach for a cache validator, and the header stays short.
    format!("\"{}\"", &hasher.finalize().to_hex()[..32])
}

/// The entries in order, as references (a million entries are 8 MB of them).
fn sorted(entries: &[BlockEntry]) -> Vec<&BlockEntry> {
    let mut sorted: Vec<&BlockEntry> = entries.iter().collect();
    sorted.sort_unstable();
    sorted
}

/// Writes `lines` to `out` sorted and deduplicated, one a line, each standing for one entry (a
/// repeat is a duplicate); `placeholder` (if any) is written when there are none.
fn write_lines<L: AsRef<[u8]> + Ord>(
    mut lines: Vec<L>,
    placeholder: Option<&[u8]>,
    mut summary: Summary,
    out: impl Write,
) -> Result<Summary, BlocklistError> {
    lines.sort_unstable();
    let mut out = BufWriter::new(out);
    let mut previous: Option<&L> = None;
    for line in &lines {
        if previous == Some(line) {
            summary.skip(SkipReason::Duplicate);
            continue;
        }
        previous = Some(line);
        summary.written += 1;
        out.write_all(line.as_ref())?;
        out.write_all(b"\n")?;
    }
    if let (None, Some(placeholder)) = (previous, placeholder) {
        out.write_all(placeholder)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(summary)
}

/// A format of the block list, by the name a client asks for it with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// [`plain`]: one URL a line.
    Plain,
    /// `{"entries": [{"url", "whole_host"}, …]}`, sorted, without repeats.
    Json,
    /// [`squid::write_url_regex`]: the `url_regex` file.
    SquidUrls,
    /// [`squid::write_url_hosts`]: the `dstdomain` filter in front of it.
    SquidUrlHosts,
    /// [`squid::write_whole_hosts`]: the `dstdomain` file of whole hosts.
    SquidWholeHosts,
    /// [`rpz`]: the response policy zone of whole hosts.
    Rpz,
}

impl Format {
    /// Every format.
    pub const ALL: [Format; 6] = [
        Format::Plain,
        Format::Json,
        Format::SquidUrls,
        Format::SquidUrlHosts,
        Format::SquidWholeHosts,
        Format::Rpz,
    ];

    /// Its name: `plain`, `json`, `squid-urls`, `squid-url-hosts`, `squid-whole-hosts`, `rpz`.
    pub fn name(self) -> &'static str {
        match self {
            Format::Plain => "plain",
            Format::Json => "json",
            Format::SquidUrls => "squid-urls",
            Format::SquidUrlHosts => "squid-url-hosts",
            Format::SquidWholeHosts => "squid-whole-hosts",
            Format::Rpz => "rpz",
        }
    }

    /// The media type to serve it as.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Rpz => "text/dns",
            _ => "text/plain; charset=utf-8",
        }
    }
}

impl std::str::FromStr for Format {
    type Err = String;

    fn from_str(text: &str) -> Result<Format, String> {
        Format::ALL.into_iter().find(|format| format.name() == text).ok_or_else(|| {
            let names: Vec<&str> = Format::ALL.iter().map(|format| format.name()).collect();
            format!("no block list format {text:?} (one of {})", names.join(", "))
        })
    }
}

/// Writes `entries` in `format` to `out`; `zone` names the zone of [`Format::Rpz`].
pub fn write(
    format: Format,
    entries: &[BlockEntry],
    zone: &rpz::Zone,
    mut out: impl Write,
) -> Result<Summary, BlocklistError> {
    match format {
        Format::Plain => plain::write_list(entries, out),
        Format::SquidUrls => squid::write_url_regex(entries, out),
        Format::SquidUrlHosts => squid::write_url_hosts(entries, out),
        Format::SquidWholeHosts => squid::write_whole_hosts(entries, out),
        Format::Rpz => rpz::write_zone(entries, zone, out),
        Format::Json => {
            let mut unique: Vec<&BlockEntry> = sorted(entries);
            unique.dedup();
            #[derive(Serialize)]
            struct List<'a> {
                entries: Vec<&'a BlockEntry>,
            }
            let written = unique.len() as u64;
            serde_json::to_writer(&mut out, &List { entries: unique }).map_err(io::Error::from)?;
            out.write_all(b"\n")?;
            Ok(Summary { written, ..Summary::default() })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(url: &str, whole_host: bool) -> BlockEntry {
        BlockEntry { url: url.into(), whole_host }
    }

    #[test]
    fn the_etag_is_quoted_and_changes_with_any_entry() {
        let list = [entry("http://a.example/", false), entry("http://b.example/", false)];
        let tag = etag(&list);
        assert!(tag.starts_with('"') && tag.ends_with('"') && tag.len() == 34, "{tag}");
        assert_ne!(tag, etag(&list[..1]));
        assert_ne!(tag, etag(&[entry("http://a.example/", true), entry("http://b.example/", false)]));
        assert_eq!(tag, etag(&[list[1].clone(), list[0].clone(), list[1].clone()]));
        // Length prefixes keep "ab" + "c" apart from "a" + "bc".
        assert_ne!(
            etag(&[entry("ab", false), entry("c", false)]),
            etag(&[entry("a", false), entry("bc", false)])
        );
    }
}
