//! The whole hosts as a DNS response policy zone (RPZ), the form in which resolvers (BIND,
//! Unbound, Knot Resolver, PowerDNS Recursor) take a block list: a resolver given the zone
//! answers NXDOMAIN for each host in it.
//!
//! # Format
//!
//! A zone file (RFC 1035 master file) as `named-checkzone` accepts it:
//!
//! ```text
//! ; hashsieve URL block list: the hosts marked whole, as a DNS response policy zone.
//! $TTL 300
//! $ORIGIN rpz.hashsieve.example.
//! @ IN SOA localhost. hostmaster.localhost. 2024060100 300 60 1209600 300
//! @ IN NS localhost.
//! abuse.example.org CNAME .
//! xn--bcher-kva.example CNAME .
//! ```
//!
//! - The origin and the serial are the caller's ([`Zone`]); the serial must grow with every
//!   change, or secondaries keep the old list.
//! - SOA and NS are the placeholders RPZ zones carry (`localhost.`): the zone is transferred to
//!   resolvers, never delegated or queried. Refresh every 5 minutes (secondaries are normally
//!   told sooner by NOTIFY), retry after 1, and keep serving a zone the primary cannot be
//!   reached for up to 2 weeks before dropping it, since a stale list blocks less wrongly
//!   than none. Answers are cached for 5 minutes (`$TTL` and the negative TTL), so a host
//!   taken off the list is reachable again within minutes.
//! - Then one `host CNAME .` a line (RPZ's "answer NXDOMAIN"), the host relative to the
//!   origin, lower-case, sorted, without repeats.
//! - Only hosts marked [`BlockEntry::whole_host`]: a DNS block takes down everything on the
//!   host ([`NotWholeHost`](super::SkipReason::NotWholeHost) otherwise).
//! - The host itself and no `*.host` wildcard: a subdomain may belong to someone else (a
//!   hosting platform's customers), and the hotline marks hosts, not domains.
//! - No address literals ([`AddressLiteral`](super::SkipReason::AddressLiteral)): a URL with
//!   an address in it is fetched without DNS, so no name can block it, and RPZ's address
//!   trigger (`32.7.2.0.192.rpz-ip`) would instead block every name that resolves to that
//!   address, on shared hosting many unrelated sites. Squid's whole-host list covers them.
//! - Names DNS cannot hold are left out ([`NameTooLong`](super::SkipReason::NameTooLong)): a
//!   label over 63 octets, or more than 255 octets under the origin.
//!
//! # Example
//!
//! ```
//! use hashsieve_triage::blocklist::{BlockEntry, SkipReason, rpz};
//!
//! let entries = vec![
//!     BlockEntry { url: "https://abuse.example.org/x".into(), whole_host: true },
//!     BlockEntry { url: "http://abuse.example.org/y".into(), whole_host: true },
//!     BlockEntry { url: "http://192.0.2.7/".into(), whole_host: true },
//!     BlockEntry { url: "http://platform.example/one.jpg".into(), whole_host: false },
//! ];
//! let zone = rpz::Zone { origin: "rpz.hashsieve.example.".into(), serial: 7 };
//! let mut out = Vec::new();
//! let summary = rpz::write_zone(&entries, &zone, &mut out)?;
//! let text = String::from_utf8(out).unwrap();
//! assert!(text.contains("\n@ IN SOA localhost. hostmaster.localhost. 7 300 60 1209600 300\n"));
//! assert!(text.ends_with("\n@ IN NS localhost.\nabuse.example.org CNAME .\n"));
//! assert_eq!(summary.written, 1);
//! assert_eq!(summary.skipped(SkipReason::Duplicate), 1);
//! assert_eq!(summary.skipped(SkipReason::AddressLiteral), 1);
//! assert_eq!(summary.skipped(SkipReason::NotWholeHost), 1);
//! # Ok::<(), hashsieve_triage::blocklist::BlocklistError>(())
//! ```

use std::io::Write;

use super::url::{self, Host};
use super::{BlockEntry, BlocklistError, SkipReason, Summary, write_lines};

/// Seconds a resolver caches an answer from the zone, and refreshes it.
const TTL: u32 = 300;
/// Seconds a secondary waits to retry a failed refresh.
const RETRY: u32 = 60;
/// Seconds a secondary serves the zone while its primary cannot be reached: two weeks.
const EXPIRE: u32 = 14 * 24 * 3600;

/// The longest label, and the longest name (in wire form), DNS allows (RFC 1035).
const MAX_LABEL: usize = 63;
const MAX_NAME: usize = 255;

/// The zone the list is written as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Zone {
    /// The zone's name, absolute (with the trailing dot), e.g. `rpz.hashsieve.example.`.
    pub origin: String,
    /// The SOA serial; it must grow with every change.
    pub serial: u32,
}

/// Writes the response policy zone of the hosts in `entries` marked whole to `out`. Fails
/// before writing anything if the origin is not an absolute name.
pub fn write_zone(
    entries: &[BlockEntry],
    zone: &Zone,
    mut out: impl Write,
) -> Result<Summary, BlocklistError> {
    let origin_length = origin_length(&zone.origin)
        .map_err(|reason| BlocklistError::InvalidOrigin { origin: zone.origin.clone(), reason })?;
    let mut summary = Summary::default();
    let mut lines = Vec::new();
    for entry in entries {
        let Some(target) = url::parse(&entry.url) else {
            summary.skip(SkipReason::Malformed);
            continue;
        };
        match target.host {
            _ if !entry.whole_host => summary.skip(SkipReason::NotWholeHost),
            Host::Ipv4(_) | Host::Ipv6(_) => summary.skip(SkipReason::AddressLiteral),
            Host::Name(name) if !fits_under(&name, origin_length) => summary.skip(SkipReason::NameTooLong),
            Host::Name(name) => lines.push(format!("{name} CNAME .")),
        }
    }
    let Zone { origin, serial } = zone;
    write!(
        out,
        "; hashsieve URL block list: the hosts marked whole, as a DNS response policy zone.\n\
         $TTL {TTL}\n$ORIGIN {origin}\n\
         @ IN SOA localhost. hostmaster.localhost. {serial} {TTL} {RETRY} {EXPIRE} {TTL}\n\
         @ IN NS localhost.\n"
    )?;
    write_lines(lines, None, summary, out)
}

/// The wire length of `origin` (an absolute name, not the root), or what is wrong with it.
fn origin_length(origin: &str) -> Result<usize, &'static str> {
    let name = origin.strip_suffix('.').ok_or("not absolute: it must end with a dot")?;
    let labels_ok = name.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= MAX_LABEL
            && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    });
    if name.is_empty() || !labels_ok {
        return Err("labels must be 1 to 63 letters, digits, hyphens or underscores");
    }
    let length = name.len() + 2;
    if length > MAX_NAME {
        return Err("longer than 255 octets");
    }
    Ok(length)
}

/// Whether `name` (a relative name of valid characters) fits as a name under an origin of
/// `origin_length` octets.
fn fits_under(name: &str, origin_length: usize) -> bool {
    // Each label takes its length and a length octet; the origin brings the root's.
    name.split('.').all(|label| label.len() <= MAX_LABEL) && name.len() + 1 + origin_length <= MAX_NAME
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_measured_in_wire_octets() {
        // "rpz.example." is 3 rpz 7 example 0: 13 octets.
        assert_eq!(origin_length("rpz.example."), Ok(13));
        let label = "a".repeat(63);
        // Three 63-octet labels and one of 49 under it: 3 * 64 + 50 + 13 = 255 octets.
        assert!(fits_under(&format!("{label}.{label}.{label}.{}", "b".repeat(49)), 13));
        assert!(!fits_under(&format!("{label}.{label}.{label}.{}", "b".repeat(50)), 13));
        assert!(!fits_under(&"a".repeat(64), 13));
    }

    #[test]
    fn an_origin_must_be_an_absolute_name() {
        for origin in ["rpz.example", ".", "", "rpz..example.", "rpz example.", "*.example."] {
            assert!(origin_length(origin).is_err(), "{origin:?}");
        }
        assert!(origin_length(&format!("{}.", "a".repeat(64))).is_err());
    }
}
