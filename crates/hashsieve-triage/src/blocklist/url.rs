//! The parts of a normalised URL that the formats need: scheme, host, port and path.
//!
//! The caller normalises; this only checks enough to never write a line that a reader would
//! take for something else (a URL with a space or line break splits a line, a host with a `*`
//! would be a DNS wildcard) and recognises address literals, which the formats treat apart.

use std::net::Ipv6Addr;

/// The host of a URL.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Host {
    /// A DNS name: lower-case, without a trailing dot.
    Name(String),
    /// An IPv4 literal, as written (its last label is a number, as the WHATWG URL standard
    /// reads it).
    Ipv4(String),
    /// An IPv6 literal (written in brackets in the URL).
    Ipv6(Ipv6Addr),
}

impl Host {
    /// The host as Squid writes it in the URL it matches `url_regex` and `dstdomain` against:
    /// IPv6 in brackets, in the canonical form (Squid writes `[0:0::1]` as `[::1]`, as
    /// [`Ipv6Addr`]'s `Display` does).
    pub(crate) fn squid_form(&self) -> String {
        match self {
            Host::Name(name) | Host::Ipv4(name) => name.clone(),
            Host::Ipv6(address) => format!("[{address}]"),
        }
    }
}

/// A URL taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target<'a> {
    /// Lower-case.
    pub(crate) scheme: String,
    pub(crate) host: Host,
    /// Absent when the URL names none.
    pub(crate) port: Option<u16>,
    /// From the first `/` on, with the query; `/` when the URL has none.
    pub(crate) path: &'a str,
}

impl Target<'_> {
    /// The port, unless it is the scheme's default one.
    pub(crate) fn explicit_port(&self) -> Option<u16> {
        let default = match self.scheme.as_str() {
            "http" => Some(80),
            "https" => Some(443),
            _ => None,
        };
        self.port.filter(|&port| Some(port) != default)
    }
}

/// Takes `url` apart, or none if it is not a URL the formats can write: not ASCII, a space or
/// control character, a fragment, user information, an empty or unusual host, a bad port.
pub(crate) fn parse(url: &str) -> Option<Target<'_>> {
    if !url.bytes().all(|byte| byte.is_ascii_graphic()) || url.contains('#') {
        return None;
    }
    let (scheme, rest) = url.split_once("://")?;
    let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme.bytes().all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b));
    if !scheme_ok {
        return None;
    }
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let path = match path {
        "" => "/",
        path if path.starts_with('/') => path,
        _ => return None,
    };
    if authority.contains('@') {
        return None;
    }
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let (address, after) = bracketed.split_once(']')?;
        (Host::Ipv6(address.parse().ok()?), after)
    } else {
        let host_end = authority.find(':').unwrap_or(authority.len());
        let (name, after) = authority.split_at(host_end);
        (name_host(name)?, after)
    };
    let port = match port {
        "" => None,
        port => Some(port.strip_prefix(':')?.parse::<u16>().ok().filter(|&port| port != 0)?),
    };
    Some(Target { scheme: scheme.to_ascii_lowercase(), host, port, path })
}

fn name_host(name: &str) -> Option<Host> {
    // A trailing dot names the same host (Squid strips it too).
    let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    let labels_ok = name.split('.').all(|label| {
        !label.is_empty() && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    });
    if name.is_empty() || !labels_ok {
        return None;
    }
    let last = name.rsplit('.').next().unwrap_or_default();
    let numeric = last.bytes().all(|b| b.is_ascii_digit())
        || last.strip_prefix("0x").is_some_and(|hex| hex.bytes().all(|b| b.is_ascii_hexdigit()));
    Some(if numeric { Host::Ipv4(name) } else { Host::Name(name) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_is_taken_apart_into_lower_case_host_port_and_path() {
        let target = parse("HTTP://Example.COM.:8080/A/b?c=D").unwrap();
        assert_eq!(target.scheme, "http");
        assert_eq!(target.host, Host::Name("example.com".into()));
        assert_eq!((target.port, target.path), (Some(8080), "/A/b?c=D"));
        assert_eq!(parse("http://example.com").unwrap().path, "/");
        assert_eq!(parse("http://example.com:80/").unwrap().explicit_port(), None);
    }

    #[test]
    fn address_literals_are_recognised_and_ipv6_is_canonical() {
        assert_eq!(parse("http://127.0.0.1/").unwrap().host, Host::Ipv4("127.0.0.1".into()));
        assert_eq!(parse("http://0x7f.1/").unwrap().host, Host::Ipv4("0x7f.1".into()));
        let v6 = parse("http://[0:0::1]:81/x").unwrap();
        assert_eq!((v6.host.squid_form(), v6.port), ("[::1]".into(), Some(81)));
        assert_eq!(parse("http://1.example/").unwrap().host, Host::Name("1.example".into()));
    }

    #[test]
    fn what_no_format_can_carry_is_refused() {
        for url in [
            "http://example.com/a b",
            "http://example.com/a\nb",
            "http://example.com/#top",
            "http://user@example.com/",
            "http://*.example.com/",
            "http://exa..mple.com/",
            "http://:80/",
            "http://example.com:0/",
            "http://example.com:99999/",
            "http://[::1/",
            "http://[fe80::1%25eth0]/",
            "http://bücher.example/",
            "example.com/a",
            "1http://example.com/",
            "http://example.com?q",
        ] {
            assert_eq!(parse(url), None, "{url:?}");
        }
    }
}
