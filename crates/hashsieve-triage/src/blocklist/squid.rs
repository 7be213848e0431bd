//! ACL files for Squid 5: the block list as a forward proxy enforces it.
//!
//! # What Squid can see
//!
//! For a plain-`http` request Squid has the whole URL, and its `url_regex` ACL matches it. For
//! `https` a Squid that does not intercept TLS (ssl-bump) sees only `CONNECT host:443`: it can
//! block the host, never one URL on it. So an `https` URL is in these files only through its
//! host, when the hotline marked the host whole; otherwise it is left out
//! ([`HttpsNeedsBump`](super::SkipReason::HttpsNeedsBump)). Other schemes are left out too.
//!
//! Squid has no ACL of exact URLs: `url_regex` (POSIX extended regular expressions, compiled
//! with `regcomp`) is the only one that sees the whole URL, and a `dstdomain` list (a splay
//! tree of names) the only cheap one. Hence three files, meant to be used together:
//!
//! - [`write_whole_hosts`]: a `dstdomain` list of the hosts marked whole, for `http` and
//!   `https` alike (it blocks every port of the host).
//! - [`write_url_regex`]: a `url_regex` list of the other `http` URLs, each matching exactly
//!   one URL as Squid sees it.
//! - [`write_url_hosts`]: a `dstdomain` list of the hosts of those URLs. Squid tries every
//!   regex of an ACL on every request it checks, so this list goes in front: a request to any
//!   other host (nearly all traffic) costs one tree lookup, not the regexes.
//!
//! ```text
//! # squid.conf, before the rules that allow access:
//! acl hashsieve_whole_hosts dstdomain -n "/etc/squid/hashsieve/whole-hosts.txt"
//! acl hashsieve_url_hosts dstdomain -n "/etc/squid/hashsieve/url-hosts.txt"
//! acl hashsieve_urls url_regex "/etc/squid/hashsieve/urls.txt"
//! http_access deny hashsieve_whole_hosts
//! http_access deny hashsieve_url_hosts hashsieve_urls
//! ```
//!
//! `-n` keeps `dstdomain` from looking up the name of every request to an address literal
//! (and from matching whatever name the address's owner put in its reverse zone). There is no
//! `-i` on `url_regex`: Squid lower-cases the host itself, and paths are case-sensitive
//! (`/A.jpg` and `/a.jpg` are different files). After replacing the files (write them beside
//! and rename), `squid -k reconfigure` loads them.
//!
//! # The URL Squid matches
//!
//! `url_regex` matches the URL as Squid rebuilds it, percent-decoded: `http://`, the host
//! (lower-case, without a trailing dot; IPv6 in brackets and in canonical form), `:port` only
//! if it is not 80, then the path with the query (`/` if there is none). Squid decodes `%xx` to
//! the byte (but not `%00`) and `%%` to `%`, so `http://e.example/a%20b%41` is matched as
//! `http://e.example/a bA`; each regex here matches that decoded form, and two URLs that decode
//! alike are one ([`Duplicate`](super::SkipReason::Duplicate)).
//!
//! # Format of the `url_regex` file
//!
//! ```text
//! ^http://e\.example(/a[ ]bA|/x\(1\)\.jpg)$
//! ^http://\[::1]:8080/p\?q=\*$
//! ```
//!
//! - One regex a line, LF-ended, anchored at both ends; sorted by host and path.
//! - The URLs of one host share a line as alternatives (`^http://host(/path|/path)$`): Squid
//!   compiles its regexes in chunks of about 1 KB, and factoring out the host halves the bytes
//!   to compile. A line stays within 2,046 bytes, since Squid reads ACL files with a
//!   2,048-byte `fgets` and would cut a longer line into separate, unanchored regexes; a URL
//!   that alone is longer is left out ([`LineTooLong`](super::SkipReason::LineTooLong)).
//! - Every byte that is special in an extended regex (`.[\()*+?{|^$`) is escaped with `\`
//!   (`]` and `}` are ordinary outside a bracket expression); white space goes in a bracket
//!   expression (`[ ]`), since Squid ends a line's pattern at white space followed by `#`.
//!   Other bytes, decoded ones above 127 included, are written as they are: Squid runs in the
//!   C locale, where regcomp matches bytes. A URL that decodes to a line break cannot be
//!   written ([`DecodesToLineBreak`](super::SkipReason::DecodesToLineBreak)).
//! - An empty list is the one line `^$`, which no URL matches: Squid warns about an empty ACL.
//!   The same line ends a file whose regexes fill Squid's last 1 KB chunk exactly: Squid 5.7
//!   would take the empty remainder for a failure, warn, and compile every line on its own.
//!
//! # Format of the `dstdomain` files
//!
//! ```text
//! 192.0.2.7
//! [2001:db8::1]
//! abuse.example.org
//! ```
//!
//! - One host a line, LF-ended, sorted, without repeats, never with a leading dot (which would
//!   add every subdomain): the host itself, as Squid writes it in the URL.
//! - An empty list is the one line `hashsieve.invalid` (`.invalid` names nothing, RFC 6761),
//!   again because Squid warns about an empty ACL.
//!
//! # Cost
//!
//! Measured with Squid 5.7 on a 2-core machine by `benches/compare/blocklist.sh`, for
//! 1,000,000 synthetic entries (900,000 `http` URLs, twenty to a host, 90,000 single `https`
//! URLs, 10,000 whole hosts): the `url_regex` file is 34 MB in 50,001 lines; `squid -k parse`
//! takes 8.9 s and 3.7 GB, a started Squid answers its first request after 7.5 s and holds
//! 3.7 GB. A request to a host not on the URL list is decided by the host filter (under 3 ms,
//! a refused connection included); a request to a host on it but for an unlisted path tries
//! every regex: 84 ms at this size, so about 0.1 µs a URL. The same URLs one a line, without the
//! filter, took 36 s and 8.5 GB to parse and 0.3 s for every request Squid checked. So these
//! files serve lists of up to some hundred thousand URLs; beyond that an ISP wants a URL lookup
//! in a helper (`external_acl_type`, or a URL rewriter with a hash table), which they are not.
//! With more than 100 regex lines `squid -k parse` says "WARNING: there are more than 100
//! regular expressions", which is advice about speed, not an error.
//!
//! # Example
//!
//! ```
//! use hashsieve_triage::blocklist::{BlockEntry, SkipReason, squid};
//!
//! let entries = vec![
//!     BlockEntry { url: "http://e.example/x(1).jpg".into(), whole_host: false },
//!     BlockEntry { url: "http://e.example/a%20b%41".into(), whole_host: false },
//!     BlockEntry { url: "http://e.example/a%20bA".into(), whole_host: false },
//!     BlockEntry { url: "https://abuse.example.org/".into(), whole_host: true },
//!     BlockEntry { url: "http://abuse.example.org/x.jpg".into(), whole_host: false },
//! ];
//! let mut urls = Vec::new();
//! let summary = squid::write_url_regex(&entries, &mut urls)?;
//! assert_eq!(urls, b"^http://e\\.example(/a[ ]bA|/x\\(1\\)\\.jpg)$\n");
//! assert_eq!(summary.written, 2);
//! assert_eq!(summary.skipped(SkipReason::Duplicate), 1);
//! // Both URLs of the whole host: the whole-host list blocks them.
//! assert_eq!(summary.skipped(SkipReason::CoveredByWholeHost), 2);
//!
//! let mut hosts = Vec::new();
//! squid::write_url_hosts(&entries, &mut hosts)?;
//! assert_eq!(hosts, b"e.example\n");
//!
//! let mut whole = Vec::new();
//! squid::write_whole_hosts(&entries, &mut whole)?;
//! assert_eq!(whole, b"abuse.example.org\n");
//! # Ok::<(), hashsieve_triage::blocklist::BlocklistError>(())
//! ```

use std::collections::HashSet;
use std::io::{BufWriter, Write};

use super::url::{self, Target};
use super::{BlockEntry, BlocklistError, SkipReason, Summary, write_lines};

/// The longest line of an ACL file Squid reads whole: its `fgets` buffer is 2,048 bytes
/// (`CONFIG_LINE_LIMIT`), which holds 2,046 bytes, the line feed and the terminating zero.
pub const MAX_LINE: usize = 2046;

/// A regex that matches no URL: the `url_regex` file when the list has no `http` URL, and its
/// last line when Squid's last chunk would otherwise be empty (see [`RegexLine::squid_chunk`]).
const NO_URL: &[u8] = b"^$";

/// Squid joins the lines of a `url_regex` file into one regex until they pass this many bytes.
const SQUID_CHUNK: usize = 1024;

/// What a `dstdomain` file holds when it has no host: a reserved name that names nothing.
const EMPTY_HOST_LIST: &[u8] = b"hashsieve.invalid";

/// Writes the `url_regex` file of `entries`: a regex for each `http` URL whose host is not
/// marked whole.
pub fn write_url_regex(entries: &[BlockEntry], out: impl Write) -> Result<Summary, BlocklistError> {
    let (mut urls, mut summary) = regex_urls(entries);
    urls.sort_unstable();
    let mut out = BufWriter::new(out);
    let mut line = RegexLine::default();
    let mut previous: Option<&RegexUrl> = None;
    for url in &urls {
        if previous == Some(url) {
            summary.skip(SkipReason::Duplicate);
            continue;
        }
        if previous.is_none_or(|previous| previous.origin != url.origin) || !line.fits(&url.path) {
            line.finish(&mut out)?;
            line.start(&url.origin);
        }
        line.add(&url.path);
        previous = Some(url);
        summary.written += 1;
    }
    line.finish(&mut out)?;
    if line.squid_chunk == 0 {
        out.write_all(NO_URL)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(summary)
}

/// Writes the `dstdomain` file of the hosts in [`write_url_regex`]'s file, the filter that
/// spares every other request the regexes.
pub fn write_url_hosts(entries: &[BlockEntry], out: impl Write) -> Result<Summary, BlocklistError> {
    let (urls, summary) = regex_urls(entries);
    let hosts = urls.into_iter().map(|url| url.host).collect();
    write_lines(hosts, Some(EMPTY_HOST_LIST), summary, out)
}

/// Writes the `dstdomain` file of the hosts marked whole, whatever the scheme of their URLs.
pub fn write_whole_hosts(entries: &[BlockEntry], out: impl Write) -> Result<Summary, BlocklistError> {
    let mut summary = Summary::default();
    let mut hosts = Vec::new();
    for entry in entries {
        match url::parse(&entry.url) {
            None => summary.skip(SkipReason::Malformed),
            Some(_) if !entry.whole_host => summary.skip(SkipReason::NotWholeHost),
            Some(target) => hosts.push(target.host.squid_form()),
        }
    }
    write_lines(hosts, Some(EMPTY_HOST_LIST), summary, out)
}

/// One URL of the `url_regex` file, ordered by its line.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct RegexUrl {
    /// `http://host[:port]`, escaped.
    origin: Vec<u8>,
    /// The path and query as Squid decodes them, escaped.
    path: Vec<u8>,
    /// As in a `dstdomain` file.
    host: String,
}

/// The URLs of the `url_regex` file, unsorted, and what was left out (duplicates are counted
/// by the caller).
fn regex_urls(entries: &[BlockEntry]) -> (Vec<RegexUrl>, Summary) {
    let mut summary = Summary::default();
    let whole_hosts: HashSet<String> = entries
        .iter()
        .filter(|entry| entry.whole_host)
        .filter_map(|entry| url::parse(&entry.url))
        .map(|target| target.host.squid_form())
        .collect();
    let mut urls = Vec::new();
    for entry in entries {
        let Some(target) = url::parse(&entry.url) else {
            summary.skip(SkipReason::Malformed);
            continue;
        };
        let host = target.host.squid_form();
        let url = if whole_hosts.contains(&host) {
            Err(SkipReason::CoveredByWholeHost)
        } else {
            match target.scheme.as_str() {
                "http" => RegexUrl::new(&target, host),
                "https" => Err(SkipReason::HttpsNeedsBump),
                _ => Err(SkipReason::UnsupportedScheme),
            }
        };
        match url {
            Ok(url) => urls.push(url),
            Err(reason) => summary.skip(reason),
        }
    }
    (urls, summary)
}

impl RegexUrl {
    fn new(target: &Target<'_>, host: String) -> Result<RegexUrl, SkipReason> {
        let mut origin = format!("http://{host}");
        if let Some(port) = target.explicit_port() {
            origin.push_str(&format!(":{port}"));
        }
        let mut escaped_origin = Vec::with_capacity(origin.len() + 8);
        escape(origin.as_bytes(), &mut escaped_origin)?;
        let mut path = Vec::with_capacity(target.path.len() + 8);
        escape(&squid_decode(target.path), &mut path)?;
        // `^`, origin, path, `$`: the line it needs alone.
        if escaped_origin.len() + path.len() + 2 > MAX_LINE {
            return Err(SkipReason::LineTooLong);
        }
        Ok(RegexUrl { origin: escaped_origin, path, host })
    }
}

/// Percent-decodes `path` as Squid does before it matches `url_regex` (`rfc1738_unescape`):
/// `%%` is `%`, `%xx` is the byte unless it is zero, and any other `%` stays.
fn squid_decode(path: &str) -> Vec<u8> {
    let bytes = path.as_bytes();
    let hex = |at: usize| bytes.get(at).and_then(|&digit| char::from(digit).to_digit(16));
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        if bytes[at] == b'%' {
            if bytes.get(at + 1) == Some(&b'%') {
                decoded.push(b'%');
                at += 2;
                continue;
            }
            if let (Some(high), Some(low)) = (hex(at + 1), hex(at + 2))
                && high << 4 | low != 0
            {
                decoded.push((high << 4 | low) as u8);
                at += 3;
                continue;
            }
        }
        decoded.push(bytes[at]);
        at += 1;
    }
    decoded
}

/// Appends `bytes` to `out` as a POSIX extended regex that matches exactly them.
fn escape(bytes: &[u8], out: &mut Vec<u8>) -> Result<(), SkipReason> {
    for &byte in bytes {
        match byte {
            b'\n' => return Err(SkipReason::DecodesToLineBreak),
            b'.' | b'[' | b'\\' | b'(' | b')' | b'*' | b'+' | b'?' | b'{' | b'|' | b'^' | b'$' => {
                out.extend_from_slice(&[b'\\', byte])
            }
            b' ' | b'\t' | b'\r' | 0x0b | 0x0c => out.extend_from_slice(&[b'[', byte, b']']),
            _ => out.push(byte),
        }
    }
    Ok(())
}

/// A line of the `url_regex` file being built: `^origin(/path|/path…)$`.
#[derive(Default)]
struct RegexLine {
    bytes: Vec<u8>,
    /// Where the paths start, after `^origin`.
    origin_end: usize,
    paths: usize,
    /// The bytes of the lines finished since Squid's last chunk ended. Squid 5 compiles a chunk
    /// as soon as it passes [`SQUID_CHUNK`] bytes and the rest at the end of the file; if
    /// nothing is left then, it takes the empty rest for a failure ("WARNING: optimisation of
    /// regular expressions failed") and compiles every line alone, which takes longer and
    /// matches slower. So a file never ends on a full chunk: [`NO_URL`] follows.
    squid_chunk: usize,
}

impl RegexLine {
    fn start(&mut self, origin: &[u8]) {
        self.bytes.clear();
        self.bytes.push(b'^');
        self.bytes.extend_from_slice(origin);
        self.origin_end = self.bytes.len();
        self.paths = 0;
    }

    /// Whether `path` fits as one more alternative.
    fn fits(&self, path: &[u8]) -> bool {
        // `|path`, `)$`, and the `(` the second path brings.
        let opening = usize::from(self.paths == 1);
        self.bytes.len() + opening + 1 + path.len() + 2 <= MAX_LINE
    }

    fn add(&mut self, path: &[u8]) {
        match self.paths {
            0 => {}
            1 => {
                self.bytes.insert(self.origin_end, b'(');
                self.bytes.push(b'|');
            }
            _ => self.bytes.push(b'|'),
        }
        self.bytes.extend_from_slice(path);
        self.paths += 1;
    }

    fn finish(&mut self, out: &mut impl Write) -> std::io::Result<()> {
        if self.paths == 0 {
            return Ok(());
        }
        if self.paths > 1 {
            self.bytes.push(b')');
        }
        self.bytes.push(b'$');
        self.squid_chunk += self.bytes.len();
        if self.squid_chunk > SQUID_CHUNK {
            self.squid_chunk = 0;
        }
        self.bytes.push(b'\n');
        out.write_all(&self.bytes)?;
        self.paths = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding_follows_squids_rfc1738_unescape() {
        assert_eq!(squid_decode("/a%20b%2e%zz%%25%00x%4"), b"/a b.%zz%25%00x%4");
        assert_eq!(squid_decode("/%C3%A9%ff"), b"/\xc3\xa9\xff");
    }

    #[test]
    fn every_extended_regex_metacharacter_is_escaped() {
        let mut out = Vec::new();
        escape(b"a.b*c+d?e(f)g[h]i{j}k|l^m$n\\o p#", &mut out).unwrap();
        assert_eq!(out, b"a\\.b\\*c\\+d\\?e\\(f\\)g\\[h]i\\{j}k\\|l\\^m\\$n\\\\o[ ]p#");
        assert_eq!(escape(b"a\nb", &mut out), Err(SkipReason::DecodesToLineBreak));
    }

    /// Squid 5.7's `compileOptimisedREs`, counting: whether the lines leave something for its
    /// last chunk.
    fn squid_last_chunk_is_empty(file: &[u8]) -> bool {
        let mut chunk = Vec::new();
        let mut size = 0;
        for line in file.split(|&b| b == b'\n').filter(|line| !line.is_empty()) {
            chunk.push(line);
            size += line.len();
            if size > 1024 {
                chunk.clear();
                size = 0;
            }
        }
        chunk.is_empty()
    }

    #[test]
    fn a_file_never_ends_on_a_full_squid_chunk() {
        let mut endings = [0, 0];
        for hosts in 1..40 {
            let entries: Vec<BlockEntry> = (0..hosts)
                .map(|n| BlockEntry {
                    url: format!("http://h{n}.example/{}", "p".repeat(300)),
                    whole_host: false,
                })
                .collect();
            let mut out = Vec::new();
            write_url_regex(&entries, &mut out).unwrap();
            assert!(!squid_last_chunk_is_empty(&out), "{hosts} hosts");
            endings[usize::from(out.ends_with(b"\n^$\n"))] += 1;
        }
        assert!(endings[0] > 0 && endings[1] > 0, "both endings occur: {endings:?}");
    }

    #[test]
    fn lines_are_split_before_they_grow_past_squids_limit() {
        let entries: Vec<BlockEntry> = (0..100)
            .map(|n| BlockEntry {
                url: format!("http://e.example/{n:03}-{}", "x".repeat(100)),
                whole_host: false,
            })
            .collect();
        let mut out = Vec::new();
        let summary = write_url_regex(&entries, &mut out).unwrap();
        assert_eq!(summary.written, 100);
        let lines: Vec<&[u8]> = out.split(|&b| b == b'\n').filter(|line| !line.is_empty()).collect();
        assert!(lines.len() > 1 && lines.iter().all(|line| line.len() <= MAX_LINE));
        let alternatives: usize = lines.iter().map(|line| line.split(|&b| b == b'|').count()).sum();
        assert_eq!(alternatives, 100);
    }
}
