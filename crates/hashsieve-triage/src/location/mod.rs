//! The location of a report: the URL it names, in the form a takedown case is filed under, and
//! where that URL was hosted when it was fetched.
//!
//! A hotline's takedown loop needs two things from a reported URL. The first is a key: the
//! case for a piece of content at a location is keyed by the normalised URL and the item, so
//! that twenty reports of one page, spelt twenty ways, are one case and one notice. The second
//! is the hosting country, which decides where the notice goes: a hotline acts on content
//! hosted in its own country, and refers content hosted abroad to the hotline there.
//!
//! The parts:
//!
//! - [`normalise`](mod@normalise): [`NormalisedUrl`], the normal form of a URL, by the WHATWG URL standard
//!   and nine rules of our own (only http and https, at most 8 KiB, no fragment, no userinfo,
//!   escapes as RFC 3986 §6.2.2, no characters a URI may not hold, `/` for an empty path, no
//!   trailing dot on the host, no empty query), each with its example in the module's
//!   documentation.
//! - [`hosting`]: [`HostingDb`], the hotline's offline IP databases
//!   (MaxMind DB files: GeoLite2 or DB-IP Lite), which give an address's [`Hosting`]: country,
//!   AS number and network operator.
//! - [`Location`]: all of it for one report, as the daemon records it after the fetch.
//!
//! # Example
//!
//! ```
//! use hashsieve_testkit::mmdb::{Network, write_asn_db, write_country_db};
//! use hashsieve_triage::location::Location;
//! use hashsieve_triage::location::hosting::HostingDb;
//!
//! let mut location = Location::new("HTTP://user:pw@Example.COM./gallery/%7eme/?#photo-3")?;
//! assert_eq!(location.normalised.as_str(), "http://example.com/gallery/~me/");
//! assert_eq!(location.normalised.host(), "example.com");
//!
//! // The hotline's databases; in a test, ones the test kit wrote.
//! let test_net = Network::new([127, 0, 0, 0], 24);
//! let hosting_db = HostingDb::from_bytes([
//!     ("country.mmdb", write_country_db(&[(test_net, "NL")])),
//!     ("asn.mmdb", write_asn_db(&[(test_net, 64500, "Test Hosting NL")])),
//! ])?;
//!
//! // What the fetch found: where the host resolved, and where it connected.
//! let address = "127.0.0.7".parse()?;
//! location.resolved = vec![address];
//! location.connected = Some(address);
//! location.final_url = Some(location.normalised.clone());
//! location.hosting = Some(hosting_db.lookup(address));
//! let hosting = location.hosting.as_ref().expect("looked up");
//! assert_eq!(hosting.country.as_deref(), Some("NL"));
//! assert_eq!((hosting.asn, hosting.network.as_deref()), (Some(64500), Some("Test Hosting NL")));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

pub use self::hosting::{Hosting, HostingDb, HostingDbError};
pub use self::normalise::{NormalisedUrl, UrlError, normalise};

pub mod hosting;
pub mod normalise;

/// Where a report's content was found: the URL as reported, its normalised form, where the
/// fetch ended up, and where that was hosted at the time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Location {
    /// The URL as the reporter gave it, kept for the case file.
    pub reported: String,
    /// Its normal form: the case key.
    pub normalised: NormalisedUrl,
    /// Where the fetch ended up after redirects. Set whenever the URL was fetched (to
    /// `normalised` itself if nothing redirected), so `None` means it was not fetched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub final_url: Option<NormalisedUrl>,
    /// Every address the final URL's host resolved to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resolved: Vec<IpAddr>,
    /// The address the fetch connected to: the one the content came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connected: Option<IpAddr>,
    /// Where `connected` was hosted, by the hotline's IP databases, if it has any configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hosting: Option<Hosting>,
}

impl Location {
    /// The location of a report of `reported`, before any fetch: normalised, the rest empty.
    pub fn new(reported: &str) -> Result<Location, UrlError> {
        Ok(Location {
            reported: reported.to_owned(),
            normalised: normalise::normalise(reported)?,
            final_url: None,
            resolved: Vec::new(),
            connected: None,
            hosting: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_location_is_normalised_and_otherwise_empty() {
        let location = Location::new("http://Example.com/a#b").unwrap();
        assert_eq!(location.reported, "http://Example.com/a#b");
        assert_eq!(location.normalised.as_str(), "http://example.com/a");
        assert_eq!(
            (location.final_url, location.resolved, location.connected, location.hosting),
            (None, vec![], None, None)
        );
        assert_eq!(
            Location::new("ftp://example.com/").unwrap_err(),
            UrlError::Scheme { scheme: "ftp".into() }
        );
    }

    #[test]
    fn json_leaves_out_what_is_not_known_and_reads_back() {
        let mut location = Location::new("https://example.com/a").unwrap();
        let json = serde_json::to_value(&location).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"reported": "https://example.com/a", "normalised": "https://example.com/a"})
        );
        assert_eq!(serde_json::from_value::<Location>(json).unwrap(), location);

        location.final_url = Some("https://cdn.example.net/a.jpg".parse().unwrap());
        location.resolved = vec!["127.0.0.1".parse().unwrap(), "::1".parse().unwrap()];
        location.connected = Some("127.0.0.1".parse().unwrap());
        location.hosting = Some(Hosting { country: Some("NL".into()), asn: Some(64500), network: None });
        let json = serde_json::to_value(&location).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "reported": "https://example.com/a",
                "normalised": "https://example.com/a",
                "final_url": "https://cdn.example.net/a.jpg",
                "resolved": ["127.0.0.1", "::1"],
                "connected": "127.0.0.1",
                "hosting": {"country": "NL", "asn": 64500},
            })
        );
        assert_eq!(serde_json::from_value::<Location>(json).unwrap(), location);
    }
}
