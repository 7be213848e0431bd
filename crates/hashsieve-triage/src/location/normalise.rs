//! URL normalisation: the case key of a reported URL. Two reports of the same resource give
//! the same [`NormalisedUrl`], and URLs of different resources never do.
//!
//! [`normalise`] parses with the WHATWG URL standard (the `url` crate, as browsers do), which
//! already lowercases the scheme and host, encodes international host names to punycode,
//! writes IP addresses in their canonical form, drops a port that is the scheme's default and
//! resolves `.` and `..` segments. On top of that, in this order:
//!
//! 1. Only `http` and `https`, with a host: anything else is not a URL a hotline can take
//!    down ([`UrlError::Scheme`], [`UrlError::NoHost`], and [`UrlError::NoScheme`] for
//!    `example.com/a`, which may be either scheme).
//!    `ftp://example.com/a` → error.
//! 2. At most [`MAX_URL_LEN`] bytes (8 KiB), as given and once normalised: servers refuse
//!    longer request lines, and a case key has no business being a megabyte.
//! 3. The fragment is dropped: it is never sent to the server, so it names no other resource.
//!    `http://example.com/a#top` → `http://example.com/a`.
//! 4. The userinfo is dropped: a user name and password select no different resource on the
//!    host, and credentials must not be kept in a case file.
//!    `http://user:secret@example.com/a` → `http://example.com/a`.
//! 5. Percent-encoding as RFC 3986 §6.2.2 says, in the path and the query: escapes of
//!    unreserved characters (`A`–`Z`, `a`–`z`, `0`–`9`, `-`, `.`, `_`, `~`) are decoded, and
//!    every other escape keeps its meaning with its hex digits in upper case. A reserved
//!    character is never decoded, since `/a%2Fb` is one path segment and `/a/b` two.
//!    `http://example.com/%7euser/%2f%c3%a9` → `http://example.com/~user/%2F%C3%A9`.
//! 6. Characters a URI may not contain there (`[`, `]`, `\`, `^`, `` ` ``, `{`, `|`, `}`, and a
//!    `%` that starts no escape), which WHATWG parsing leaves as they are, are percent-encoded,
//!    as it already does for spaces and quotes: a browser's address bar and a page's link
//!    then agree.
//!    `http://example.com/a|b?q=^` → `http://example.com/a%7Cb?q=%5E`.
//! 7. An empty path is `/`: both ask the server for the same thing.
//!    `HTTP://Example.COM` → `http://example.com/`.
//! 8. The host's trailing dot is removed: `example.com.` is the fully qualified spelling of
//!    `example.com`.
//!    `http://example.com./a` → `http://example.com/a`.
//! 9. The query is kept in its order, since the server may read it in order, but an empty
//!    `?` is removed.
//!    `http://example.com/a?` → `http://example.com/a`; `/a?b=1&a=2` stays as it is.
//!
//! What the WHATWG parse does, by example: `https://Bücher.Example:443/a/./b/../c` →
//! `https://xn--bcher-kva.example/a/c`; `http://[0:0::1]:8080/` → `http://[::1]:8080/`;
//! `http://example.com:443/` keeps its port (443 is not http's default).
//!
//! Normalising is idempotent: a [`NormalisedUrl`] normalises to itself.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize};
use url::Url;

/// The longest URL [`normalise`] accepts, as given and once normalised, in bytes.
pub const MAX_URL_LEN: usize = 8 * 1024;

/// A URL in normal form (see the [module](self) for the rules): the key a takedown case is
/// filed under. It serialises as its text; deserialising checks that the text is in normal
/// form, because a key stored in any other form would never meet a new report's.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct NormalisedUrl(String);

/// Why a text is not a URL that can be normalised.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// Longer than [`MAX_URL_LEN`], as given or once normalised.
    #[error("a URL of {len} bytes, over the limit of {MAX_URL_LEN}")]
    TooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// No scheme, as in `example.com/a`: it may be http or https, which are different URLs.
    #[error("no scheme: give the URL with http:// or https://")]
    NoScheme,
    /// A scheme other than http and https.
    #[error("a {scheme}: URL; only http and https URLs are taken")]
    Scheme {
        /// The scheme, in lower case.
        scheme: String,
    },
    /// No host, as in `http:///a`.
    #[error("a URL without a host")]
    NoHost,
    /// Not a URL at all, by the WHATWG URL standard.
    #[error("not a URL: {0}")]
    Parse(url::ParseError),
}

/// The normal form of the URL `text`.
///
/// ```
/// use hashsieve_triage::location::normalise::normalise;
///
/// let url = normalise("HTTPS://user@Example.COM./%7eme/a%2fb?#top")?;
/// assert_eq!(url.as_str(), "https://example.com/~me/a%2Fb");
/// assert_eq!(url.host(), "example.com");
/// # Ok::<(), hashsieve_triage::location::normalise::UrlError>(())
/// ```
pub fn normalise(text: &str) -> Result<NormalisedUrl, UrlError> {
    // Rule 2 first, so that no work is spent on a text too long to keep.
    if text.len() > MAX_URL_LEN {
        return Err(UrlError::TooLong { len: text.len() });
    }
    let url = Url::parse(text).map_err(|err| match err {
        url::ParseError::RelativeUrlWithoutBase => UrlError::NoScheme,
        url::ParseError::EmptyHost => UrlError::NoHost,
        other => UrlError::Parse(other),
    })?;
    // Rule 1.
    let scheme = url.scheme();
    if scheme != "http" && scheme != "https" {
        return Err(UrlError::Scheme { scheme: scheme.to_owned() });
    }
    // Rule 8. All trailing dots, not one, so that a second pass finds none to remove.
    let parsed_host = url.host_str().unwrap_or_default();
    let host = Some(parsed_host.trim_end_matches('.')).filter(|host| !host.is_empty());
    let host = host.ok_or(UrlError::NoHost)?;
    let dots_removed = host.len() != parsed_host.len();

    // Rules 3 and 4: the fragment and userinfo are simply not written. Rule 7: WHATWG parsing
    // gives http and https an empty path as "/".
    let mut normal = format!("{scheme}://{host}");
    if let Some(port) = url.port() {
        normal.push_str(&format!(":{port}"));
    }
    normalise_escapes(url.path(), is_path_literal, &mut normal);
    // Rule 9.
    if let Some(query) = url.query().filter(|query| !query.is_empty()) {
        normal.push('?');
        normalise_escapes(query, is_query_literal, &mut normal);
    }
    if normal.len() > MAX_URL_LEN {
        return Err(UrlError::TooLong { len: normal.len() });
    }
    // Without its dots a host can read otherwise: `443%2E.` decodes to the name `443..`, and
    // `443` is the IPv4 address 0.0.1.187. Parsed once more, the result is the fixed point
    // (it has no trailing dot left to remove), so normalising stays idempotent; found by the
    // `url_block_list` fuzz target.
    if dots_removed {
        return normalise(&normal);
    }
    Ok(NormalisedUrl(normal))
}

/// Rules 5 and 6 for one part of a URL: appends `part` to `out` with the escapes of
/// unreserved characters decoded, the other escapes in upper case, and the characters that
/// `is_literal` does not allow there escaped.
fn normalise_escapes(part: &str, is_literal: fn(u8) -> bool, out: &mut String) {
    // WHATWG serialisation percent-encodes all that is not ASCII, so bytes are characters here.
    let bytes = part.as_bytes();
    let mut at = 0;
    while at < bytes.len() {
        let escaped = match bytes.get(at..at + 3) {
            Some(&[b'%', high, low]) => {
                hex_value(high).zip(hex_value(low)).map(|(high, low)| high << 4 | low)
            }
            _ => None,
        };
        match escaped {
            Some(byte) if is_unreserved(byte) => out.push(char::from(byte)),
            Some(byte) => push_escape(byte, out),
            None if bytes[at] != b'%' && is_literal(bytes[at]) => out.push(char::from(bytes[at])),
            None => push_escape(bytes[at], out),
        }
        at += if escaped.is_some() { 3 } else { 1 };
    }
}

fn push_escape(byte: u8, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.extend(['%', char::from(HEX[usize::from(byte >> 4)]), char::from(HEX[usize::from(byte & 0xF)])]);
}

fn hex_value(digit: u8) -> Option<u8> {
    char::from(digit).to_digit(16).map(|value| value as u8)
}

/// RFC 3986 §2.3.
fn is_unreserved(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~')
}

/// What RFC 3986 §3.3 allows unescaped in a path: pchar and "/".
fn is_path_literal(byte: u8) -> bool {
    is_unreserved(byte)
        || matches!(byte, b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'=')
        || matches!(byte, b':' | b'@' | b'/')
}

/// What RFC 3986 §3.4 allows unescaped in a query: pchar, "/" and "?".
fn is_query_literal(byte: u8) -> bool {
    is_path_literal(byte) || byte == b'?'
}

impl NormalisedUrl {
    /// The URL's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The host: a domain name in ASCII (punycode for an international one, without a
    /// trailing dot), an IPv4 address, or an IPv6 address without its brackets; what a
    /// resolver or `IpAddr::from_str` takes.
    pub fn host(&self) -> &str {
        // The normal form is "scheme://host[:port]/path…", with no userinfo before the host.
        let (_, rest) = self.0.split_once("://").expect("a normal form has a scheme");
        let authority = &rest[..rest.find('/').expect("a normal form has a path")];
        match authority.strip_prefix('[') {
            Some(bracketed) => &bracketed[..bracketed.find(']').expect("an IPv6 host is closed")],
            None => authority.split_once(':').map_or(authority, |(host, _port)| host),
        }
    }
}

impl fmt::Display for NormalisedUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Normalises, as [`normalise`].
impl FromStr for NormalisedUrl {
    type Err = UrlError;

    fn from_str(text: &str) -> Result<NormalisedUrl, UrlError> {
        normalise(text)
    }
}

impl<'de> Deserialize<'de> for NormalisedUrl {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<NormalisedUrl, D::Error> {
        let text = String::deserialize(deserializer)?;
        let normal = normalise(&text).map_err(serde::de::Error::custom)?;
        if normal.0 != text {
            return Err(serde::de::Error::custom(format!("{text:?} is not in normal form ({normal})")));
        }
        Ok(normal)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn normal(text: &str) -> String {
        normalise(text).unwrap_or_else(|err| panic!("{text}: {err}")).0
    }

    #[test]
    fn each_rule_by_example() {
        let table = [
            // What WHATWG parsing gives: scheme and host in lower case, punycode, dot segments.
            ("HTTP://Example.COM/A", "http://example.com/A"),
            ("https://Bücher.Example/straße", "https://xn--bcher-kva.example/stra%C3%9Fe"),
            ("http://example.com/a/./b/../c", "http://example.com/a/c"),
            ("http://example.com/a/%2e%2E/c", "http://example.com/c"),
            ("http://[0:0::1]/", "http://[::1]/"),
            ("http://[2001:DB8::A]:8080/x", "http://[2001:db8::a]:8080/x"),
            ("http://0x7f.1/", "http://127.0.0.1/"),
            // Ports: the default goes, any other stays.
            ("http://example.com:80/", "http://example.com/"),
            ("https://example.com:443/", "https://example.com/"),
            ("http://example.com:443/", "http://example.com:443/"),
            ("https://example.com:8443/a", "https://example.com:8443/a"),
            // 3: the fragment.
            ("http://example.com/a#top", "http://example.com/a"),
            ("http://example.com/a?b#", "http://example.com/a?b"),
            // 4: userinfo.
            ("http://user:secret@example.com/a", "http://example.com/a"),
            ("http://@example.com/a", "http://example.com/a"),
            // 5: escapes.
            ("http://example.com/%7euser", "http://example.com/~user"),
            ("http://example.com/~user", "http://example.com/~user"),
            ("http://example.com/%41%2d%2E%5f", "http://example.com/A-._"),
            ("http://example.com/a%2fb", "http://example.com/a%2Fb"),
            ("http://example.com/a%2Fb", "http://example.com/a%2Fb"),
            ("http://example.com/%c3%a9?q=%e2%82%ac&r=%7e", "http://example.com/%C3%A9?q=%E2%82%AC&r=~"),
            ("http://example.com/a%3fb?x=%26%3d", "http://example.com/a%3Fb?x=%26%3D"),
            ("http://example.com/é", "http://example.com/%C3%A9"),
            ("http://example.com/a b", "http://example.com/a%20b"),
            // 6: what a URI may not contain.
            ("http://example.com/a|b?q=^", "http://example.com/a%7Cb?q=%5E"),
            ("http://example.com/a%7Cb?q=%5e", "http://example.com/a%7Cb?q=%5E"),
            ("http://example.com/100%?q=5%zz", "http://example.com/100%25?q=5%25zz"),
            ("http://example.com/a?list[]=1", "http://example.com/a?list%5B%5D=1"),
            ("http://example.com/a:b@c;d=e?x/y?z", "http://example.com/a:b@c;d=e?x/y?z"),
            // 7: the empty path.
            ("http://example.com", "http://example.com/"),
            ("http://example.com?q", "http://example.com/?q"),
            // 8: the trailing dot.
            ("http://example.com./a", "http://example.com/a"),
            ("http://Example.COM.:8080", "http://example.com:8080/"),
            // … and what is left is read again: without its dots, `443` is an IPv4 address.
            ("HTTP://443%2E./p", "http://0.0.1.187/p"),
            // 9: the query in its order; an empty one goes.
            ("http://example.com/a?b=1&a=2", "http://example.com/a?b=1&a=2"),
            ("http://example.com/a?a=2&b=1", "http://example.com/a?a=2&b=1"),
            ("http://example.com/a?", "http://example.com/a"),
            ("http://example.com/a?#x", "http://example.com/a"),
            // Around the text: WHATWG parsing strips spaces and drops tabs and newlines.
            ("  http://example.com/a\n", "http://example.com/a"),
        ];
        for (given, expected) in table {
            assert_eq!(normal(given), expected, "{given}");
            assert_eq!(normal(expected), expected, "{expected} is normal");
        }
    }

    #[test]
    fn what_is_refused_and_why() {
        assert_eq!(normalise("ftp://example.com/a"), Err(UrlError::Scheme { scheme: "ftp".into() }));
        assert_eq!(normalise("mailto:abuse@example.com"), Err(UrlError::Scheme { scheme: "mailto".into() }));
        assert_eq!(normalise("file:///etc/passwd"), Err(UrlError::Scheme { scheme: "file".into() }));
        assert_eq!(normalise("example.com/a"), Err(UrlError::NoScheme));
        assert_eq!(normalise("http:///"), Err(UrlError::NoHost));
        assert_eq!(normalise("http://./a"), Err(UrlError::NoHost));
        assert!(matches!(normalise("http://exa mple.com/"), Err(UrlError::Parse(_))));
        assert!(matches!(normalise("http://[::1/"), Err(UrlError::Parse(_))));

        let path = "a".repeat(MAX_URL_LEN);
        let longest = format!("http://example.com/{}", &path[..MAX_URL_LEN - "http://example.com/".len()]);
        assert_eq!(normal(&longest).len(), MAX_URL_LEN);
        let too_long = format!("{longest}a");
        assert_eq!(normalise(&too_long), Err(UrlError::TooLong { len: MAX_URL_LEN + 1 }));
        // Short enough as given, too long once every space is escaped.
        let spaces = format!("http://example.com/{}", " x".repeat(2500));
        assert!(matches!(normalise(&spaces), Err(UrlError::TooLong { len }) if len > MAX_URL_LEN));
    }

    #[test]
    fn the_host_is_what_a_resolver_takes() {
        let host = |text: &str| normalise(text).unwrap().host().to_owned();
        assert_eq!(host("https://Bücher.Example.:8443/a:b"), "xn--bcher-kva.example");
        assert_eq!(host("http://127.0.0.1:8080/"), "127.0.0.1");
        assert_eq!(host("http://[::1]:8080/x"), "::1");
        assert_eq!(host("http://[2001:db8::1]/"), "2001:db8::1");
        assert_eq!(host("http://user:pw@example.com"), "example.com");
    }

    #[test]
    fn serde_keeps_the_text_and_refuses_a_form_that_is_not_normal() {
        let url = normalise("http://Example.com/%7e").unwrap();
        let json = serde_json::to_string(&url).unwrap();
        assert_eq!(json, r#""http://example.com/~""#);
        assert_eq!(serde_json::from_str::<NormalisedUrl>(&json).unwrap(), url);
        assert!(serde_json::from_str::<NormalisedUrl>(r#""http://Example.com/%7e""#).is_err());
        assert!(serde_json::from_str::<NormalisedUrl>(r#""ftp://example.com/""#).is_err());
        assert_eq!("http://example.com".parse::<NormalisedUrl>().unwrap().to_string(), "http://example.com/");
    }

    /// A path segment of unreserved characters, none of them "." or ".." alone.
    fn plain_segment() -> impl Strategy<Value = String> {
        "[A-Za-z0-9_~-][A-Za-z0-9._~-]{0,11}"
    }

    /// Generated URLs with a bit of everything the rules deal with.
    fn url_text() -> impl Strategy<Value = String> {
        let scheme = prop::sample::select(vec!["http", "https", "HTTP", "hTTps"]);
        let userinfo = prop::sample::select(vec!["", "user@", "u:p@", "@"]);
        let host = prop::sample::select(vec![
            "example.com",
            "EXAMPLE.com.",
            "bücher.example",
            "127.0.0.1",
            "[::1]",
            "[2001:DB8:0::1]",
            "a-b.example",
        ]);
        let port = prop::sample::select(vec!["", ":80", ":443", ":8080"]);
        // Path and query characters: plain ones, escapes in either case, reserved ones, and
        // ones that need escaping.
        let piece = prop::sample::select(vec![
            "a", "Z", "0", "-", ".", "_", "~", "/", "%7e", "%7E", "%2f", "%2F", "%41", "%c3%a9", "%", "%zz",
            "é", " ", "|", "^", "[", "]", "{", "}", "`", "\"", "'", "!", "$", "&", "(", ")", "*", "+", ",",
            ";", "=", ":", "@", "?", "..", "./", "../",
        ]);
        let part = prop::collection::vec(piece, 0..12).prop_map(|pieces| pieces.concat());
        let query = prop::option::of(part.clone());
        let fragment = prop::option::of("[a-z#?/]{0,5}");
        (scheme, userinfo, host, port, part, query, fragment).prop_map(
            |(scheme, userinfo, host, port, path, query, fragment)| {
                let path = path.replace(['?', '#'], "");
                let query = query.map(|query| format!("?{}", query.replace('#', ""))).unwrap_or_default();
                let fragment = fragment.map(|fragment| format!("#{fragment}")).unwrap_or_default();
                format!("{scheme}://{userinfo}{host}{port}/{path}{query}{fragment}")
            },
        )
    }

    proptest! {
        #[test]
        fn normalising_twice_changes_nothing(text in url_text()) {
            let once = normalise(&text).unwrap();
            prop_assert_eq!(normalise(once.as_str()).unwrap(), once);
        }

        #[test]
        fn different_path_segments_stay_different(
            prefix in plain_segment(), a in plain_segment(), b in plain_segment()
        ) {
            prop_assume!(a != b);
            let first = normalise(&format!("http://example.com/{prefix}/{a}")).unwrap();
            let second = normalise(&format!("http://example.com/{prefix}/{b}")).unwrap();
            prop_assert_ne!(first, second);
        }

        /// The oracle: percent-encoding a plain segment's characters, in either case, names
        /// the same resource as the segment itself.
        #[test]
        fn escaping_unreserved_characters_changes_nothing(
            segment in plain_segment(), escape in prop::collection::vec(0u8..3, 12)
        ) {
            let escaped: String = segment
                .bytes()
                .zip(escape.iter().cycle())
                .map(|(byte, how)| match how {
                    0 => char::from(byte).to_string(),
                    1 => format!("%{byte:02x}"),
                    _ => format!("%{byte:02X}"),
                })
                .collect();
            let plain = normalise(&format!("http://example.com/{segment}?{segment}")).unwrap();
            prop_assert_eq!(normalise(&format!("http://example.com/{escaped}?{escaped}")).unwrap(), plain);
        }
    }
}
