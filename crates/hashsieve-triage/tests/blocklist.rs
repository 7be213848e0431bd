//! The block list formats against the programs that read them: a real Squid 5 (Debian package
//! `squid`) parses the ACL files and, as a proxy in front of a local origin, blocks exactly the
//! listed URLs and whole hosts; BIND's `named-checkzone` (Debian package `bind9-utils`)
//! accepts the zone. The expected answers are written out by hand, never derived from the
//! writers.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use hashsieve_triage::blocklist::{BlockEntry, SkipReason, Summary, plain, rpz, squid};

fn entry(url: impl Into<String>, whole_host: bool) -> BlockEntry {
    BlockEntry { url: url.into(), whole_host }
}

fn write_to(path: &Path, write: impl FnOnce(&mut Vec<u8>) -> Summary) -> Summary {
    let mut bytes = Vec::new();
    let summary = write(&mut bytes);
    std::fs::write(path, bytes).unwrap();
    summary
}

/// A path whose `url_regex` line under `http://blocked.test:{port}` is exactly `length` bytes.
fn path_of_line_length(port: u16, length: usize) -> String {
    let line_without_path = format!("^http://blocked\\.test:{port}$").len();
    format!("/long/{}", "l".repeat(length - line_without_path - "/long/".len()))
}

/// An origin on 127.0.0.1 that answers every request 200 `origin`; it runs until the test ends.
fn start_origin() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || answer(stream));
        }
    });
    port
}

fn answer(stream: TcpStream) {
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut reader = BufReader::new(&stream);
    let mut line = String::new();
    while reader.read_line(&mut line).is_ok_and(|read| read > 0) && line != "\r\n" {
        line.clear();
    }
    let _ = (&stream).write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\norigin");
}

/// A real Squid on 127.0.0.1 with the documented ACL lines; killed when dropped.
struct Squid {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Squid {
    fn config(dir: &Path, port: u16) -> PathBuf {
        let d = dir.display();
        // The test's host names, resolved by Squid itself without DNS.
        std::fs::write(
            dir.join("hosts"),
            "127.0.0.1 blocked.test whole.test xn--bcher-kva.test default.test https-only.test\n",
        )
        .unwrap();
        let config = format!(
            "http_port 127.0.0.1:{port}\npid_filename {d}/squid.pid\ncache_log {d}/cache.log\n\
             access_log stdio:{d}/access.log\ncoredump_dir {d}\ncache deny all\npinger_enable off\n\
             netdb_filename none\nshutdown_lifetime 1 seconds\nhosts_file {d}/hosts\n\
             acl hashsieve_whole_hosts dstdomain -n \"{d}/whole-hosts.txt\"\n\
             acl hashsieve_url_hosts dstdomain -n \"{d}/url-hosts.txt\"\n\
             acl hashsieve_urls url_regex \"{d}/urls.txt\"\n\
             http_access deny hashsieve_whole_hosts\n\
             http_access deny hashsieve_url_hosts hashsieve_urls\n\
             http_access allow all\n"
        );
        let path = dir.join("squid.conf");
        std::fs::write(&path, config).unwrap();
        path
    }

    /// Writes the three ACL files of `entries`, checks that Squid parses them without a word of
    /// complaint, and starts it.
    fn start(entries: &[BlockEntry]) -> (Squid, [Summary; 3]) {
        let dir = tempfile::tempdir().unwrap();
        // Squid started by root runs as the `proxy` user, which must read and write here.
        std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
        let summaries = [
            write_to(&dir.path().join("urls.txt"), |out| squid::write_url_regex(entries, out).unwrap()),
            write_to(&dir.path().join("url-hosts.txt"), |out| squid::write_url_hosts(entries, out).unwrap()),
            write_to(&dir.path().join("whole-hosts.txt"), |out| {
                squid::write_whole_hosts(entries, out).unwrap()
            }),
        ];
        let port = hashsieve_testkit::free_port();
        let config = Squid::config(dir.path(), port);
        let parsed = run_bounded(Command::new(squid_binary()).arg("-k").arg("parse").arg("-f").arg(&config));
        let said =
            format!("{}{}", String::from_utf8_lossy(&parsed.stdout), String::from_utf8_lossy(&parsed.stderr));
        assert!(parsed.status.success(), "squid -k parse failed:\n{said}");
        let complaints: Vec<&str> = said
            .lines()
            .filter(|line| ["ERROR", "WARNING", "Warning", "FATAL"].iter().any(|word| line.contains(word)))
            .collect();
        assert!(complaints.is_empty(), "squid -k parse complained: {complaints:#?}");

        let child = Command::new(squid_binary())
            .arg("-N")
            .arg("-f")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("squid runs");
        let squid = Squid { child, port, _dir: dir };
        hashsieve_testkit::wait_for("squid to listen", Duration::from_secs(30), || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        (squid, summaries)
    }

    /// The status Squid answers a proxy request with: `GET url`, or `CONNECT authority`.
    fn status(&self, method: &str, target: &str) -> u16 {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let host = target.split("://").nth(1).unwrap_or(target).split('/').next().unwrap();
        write!(stream, "{method} {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").unwrap();
        let mut status = [0; 12];
        stream.read_exact(&mut status).unwrap_or_else(|err| panic!("no answer to {method} {target}: {err}"));
        String::from_utf8_lossy(&status[9..12]).parse().unwrap()
    }
}

impl Drop for Squid {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn squid_binary() -> &'static str {
    ["/usr/sbin/squid", "/usr/bin/squid"]
        .into_iter()
        .find(|path| Path::new(path).exists())
        .expect("squid is not installed (Debian package squid; bash tests/run.sh installs it)")
}

/// Runs `command` to its end, killing it after a minute.
fn run_bounded(command: &mut Command) -> Output {
    let child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("the program runs");
    let id = child.id();
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || done.send(child.wait_with_output()));
    finished
        .recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|_| {
            let _ = Command::new("kill").arg(id.to_string()).status();
            panic!("{command:?} did not finish within a minute")
        })
        .unwrap()
}

#[test]
fn squid_blocks_exactly_the_listed_urls_and_whole_hosts() {
    let origin = start_origin();
    let at = |path: &str| format!("http://127.0.0.1:{origin}{path}");
    let blocked = |path: &str| format!("http://blocked.test:{origin}{path}");
    let just_fits = path_of_line_length(origin, squid::MAX_LINE);
    let too_long = path_of_line_length(origin, squid::MAX_LINE + 1);
    let entries = vec![
        entry(at("/a.b"), false),
        entry(at("/c*"), false),
        entry(at("/x+(1)?q=$1"), false),
        entry(at("/meta%5B%5D%7B2%7D%7C%5E%5C%20end"), false),
        entry(at("/pct%41"), false),
        entry(blocked("/index.html"), false),
        entry(blocked(&just_fits), false),
        entry(blocked(&too_long), false),
        entry(format!("http://xn--bcher-kva.test:{origin}/b%C3%BCcher"), false),
        entry(format!("http://[::1]:{origin}/v6"), false),
        entry("http://default.test:80/d", false),
        entry("https://https-only.test/secret.jpg", false),
        entry(format!("http://whole.test:{origin}/one.jpg"), true),
        entry(format!("http://whole.test:{origin}/two.jpg"), false),
    ];
    let (squid, [urls, url_hosts, whole_hosts]) = Squid::start(&entries);
    assert_eq!(urls.written, 10);
    assert_eq!(urls.skipped(SkipReason::LineTooLong), 1);
    assert_eq!(urls.skipped(SkipReason::HttpsNeedsBump), 1);
    assert_eq!(urls.skipped(SkipReason::CoveredByWholeHost), 2);
    // 127.0.0.1, blocked.test, the IDN host, [::1], default.test.
    assert_eq!(url_hosts.written, 5);
    assert_eq!(whole_hosts.written, 1);

    for listed in [
        at("/a.b"),
        at("/c*"),
        at("/x+(1)?q=$1"),
        at("/meta%5B%5D%7B2%7D%7C%5E%5C%20end"),
        at("/pct%41"),
        // Squid decodes before it matches: the same URL.
        at("/pctA"),
        blocked("/index.html"),
        blocked(&just_fits),
        format!("http://xn--bcher-kva.test:{origin}/b%C3%BCcher"),
        format!("http://[::1]:{origin}/v6"),
        format!("http://[0:0::1]:{origin}/v6"),
        "http://default.test/d".into(),
        "http://DEFAULT.test:80/d".into(),
        format!("http://whole.test:{origin}/one.jpg"),
        format!("http://whole.test:{origin}/anything/else?at=all"),
    ] {
        assert_eq!(squid.status("GET", &listed), 403, "{listed} is blocked");
    }
    assert_eq!(squid.status("CONNECT", "whole.test:443"), 403, "a whole host is blocked for https too");

    for unlisted in [
        // The regex metacharacters are literal.
        at("/aXb"),
        at("/cc"),
        at("/"),
        at("/x+(1)?q=$"),
        at("/xx(1)?q=$1"),
        at("/meta%5B%5D%7B2%7D%7C%5E%5C%20enD"),
        at("/pctB"),
        // Anchored at both ends.
        at("/a.b/"),
        at("/prefix/a.b"),
        // Paths are case-sensitive.
        blocked("/INDEX.html"),
        blocked("/index.htm"),
        blocked(&too_long),
        format!("http://xn--bcher-kva.test:{origin}/bucher"),
    ] {
        assert_eq!(squid.status("GET", &unlisted), 200, "{unlisted} reaches the origin");
    }
    // Squid cannot see which URL a CONNECT is for: the host is not blocked, only its URL.
    assert_ne!(squid.status("CONNECT", "https-only.test:443"), 403);
}

#[test]
fn squid_parses_empty_lists_without_complaint() {
    let (squid, [urls, url_hosts, whole_hosts]) = Squid::start(&[]);
    assert_eq!((urls.written, url_hosts.written, whole_hosts.written), (0, 0, 0));
    assert_ne!(squid.status("GET", "http://blocked.test:1/"), 403);
}

fn named_checkzone(origin: &str, zone: &Path) -> Output {
    let found = Command::new("sh").args(["-c", "command -v named-checkzone"]).output().unwrap();
    assert!(
        found.status.success(),
        "named-checkzone is not installed (Debian package bind9-utils; bash tests/run.sh installs it)"
    );
    run_bounded(Command::new("named-checkzone").arg(origin).arg(zone))
}

#[test]
fn named_checkzone_accepts_the_zone_with_edge_case_hosts() {
    let origin = "rpz.hashsieve.example.";
    let label = |length: usize| "a".repeat(length);
    // Under this origin (23 octets) a name may have 255 - 23 - 1 = 231 octets of its own.
    let longest_name = format!("{}.{}.{}.{}", label(63), label(63), label(63), label(39));
    let too_long_name = format!("{}.{}.{}.{}", label(63), label(63), label(63), label(40));
    let entries = vec![
        entry("https://abuse.example.org/", true),
        entry("http://abuse.example.org/again", true),
        entry("http://xn--bcher-kva.example/x", true),
        entry("http://UPPER.Example.NET./x", true),
        entry("http://_service.under_score.example/", true),
        entry("http://1.example/", true),
        entry(format!("http://{}.example/", label(63)), true),
        entry(format!("http://{longest_name}/"), true),
        entry(format!("http://{}.example/", label(64)), true),
        entry(format!("http://{too_long_name}/"), true),
        entry("http://192.0.2.7/", true),
        entry("http://[2001:db8::1]/", true),
        entry("http://platform.example/one.jpg", false),
    ];
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rpz.zone");
    let zone = rpz::Zone { origin: origin.into(), serial: 2024060100 };
    let summary = write_to(&path, |out| rpz::write_zone(&entries, &zone, out).unwrap());
    assert_eq!(summary.written, 7);
    assert_eq!(summary.skipped(SkipReason::Duplicate), 1);
    assert_eq!(summary.skipped(SkipReason::NameTooLong), 2);
    assert_eq!(summary.skipped(SkipReason::AddressLiteral), 2);
    assert_eq!(summary.skipped(SkipReason::NotWholeHost), 1);

    let checked = named_checkzone(origin, &path);
    let said = String::from_utf8_lossy(&checked.stdout);
    assert!(checked.status.success() && said.lines().any(|line| line == "OK"), "named-checkzone: {said}");
    assert!(said.contains("loaded serial 2024060100"), "{said}");
    let text = std::fs::read_to_string(&path).unwrap();
    for name in ["abuse.example.org", "xn--bcher-kva.example", "upper.example.net", longest_name.as_str()] {
        assert!(text.contains(&format!("\n{name} CNAME .\n")), "{name} is in the zone:\n{text}");
    }
}

#[test]
fn a_host_not_marked_whole_never_appears_in_the_zone_or_the_whole_host_acl() {
    let entries = vec![
        entry("http://platform.example/one.jpg", false),
        entry("https://platform.example/two.jpg", false),
        entry("http://abuse.example/", true),
    ];
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rpz.zone");
    let zone = rpz::Zone { origin: "rpz.example.".into(), serial: 1 };
    write_to(&path, |out| rpz::write_zone(&entries, &zone, out).unwrap());
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains("platform"), "{text}");
    assert!(text.ends_with("\nabuse.example CNAME .\n"), "{text}");
    assert!(named_checkzone("rpz.example.", &path).status.success());

    let mut whole = Vec::new();
    squid::write_whole_hosts(&entries, &mut whole).unwrap();
    assert_eq!(whole, b"abuse.example\n");
}

#[test]
fn an_origin_that_is_not_absolute_is_refused_before_anything_is_written() {
    let zone = rpz::Zone { origin: "rpz.example".into(), serial: 1 };
    let mut out = Vec::new();
    assert!(rpz::write_zone(&[entry("http://a.example/", true)], &zone, &mut out).is_err());
    assert!(out.is_empty());
}

#[test]
fn the_plain_list_is_sorted_deduplicated_and_round_trips() {
    let entries = vec![
        entry("https://b.example/z?q=1", false),
        entry("http://a.example/", true),
        entry("https://b.example/z?q=1", true),
        entry("ftp://c.example/file", false),
        entry("http://a.example/with space", false),
        entry("http://a.example/%0Aencoded", false),
    ];
    let mut out = Vec::new();
    let summary = plain::write_list(&entries, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert_eq!(
        text,
        "ftp://c.example/file\nhttp://a.example/\nhttp://a.example/%0Aencoded\nhttps://b.example/z?q=1\n"
    );
    assert_eq!(summary.written, 4);
    assert_eq!(summary.skipped(SkipReason::Duplicate), 1);
    assert_eq!(summary.skipped(SkipReason::Malformed), 1);

    let read: Vec<&str> = text.lines().collect();
    let mut expected: Vec<&str> =
        entries.iter().map(|entry| entry.url.as_str()).filter(|url| !url.contains(' ')).collect();
    expected.sort();
    expected.dedup();
    assert_eq!(read, expected);

    let mut empty = Vec::new();
    assert_eq!(plain::write_list(&[], &mut empty).unwrap().written, 0);
    assert!(empty.is_empty());
}
