//! End-to-end tests of hashsieved's ICAP service through the real binary and real clients: a
//! real Squid (Debian package `squid`), configured with `docs/squid-icap.conf`, fetching from a
//! local origin that serves benign images; the real `c-icap-client` (Debian package `c-icap`)
//! with and without preview and 204; and a plain socket client for malformed input.
//!
//! The expected answers come from `md5sum` and the demo PDQ list (hashes made by Meta's
//! reference implementation), never from the daemon; content that passes is compared byte for
//! byte with the file served.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hashsieve_core::hashes::HashKind;
use hashsieve_core::import::ImportedEntry;
use hashsieve_core::index::dir::{DirOptions, IndexDir};
use hashsieve_core::index::{IndexBuilder, ListOptions};
use hashsieve_core::matcher::Matcher;

mod daemon_support;
use daemon_support::{Hashsieved, SAMPLE_IMAGES as IMAGES, md5sum, sample};

/// The demo PDQ list's entries, as (id, hash) — made with Meta's reference implementation.
fn demo_pdq() -> Vec<(String, String)> {
    let csv = std::fs::read_to_string(sample("../demo-pdq.csv")).unwrap();
    csv.lines()
        .skip(1)
        .map(|line| {
            let fields: Vec<&str> = line.split(',').collect();
            (fields[2].to_string(), fields[0].to_string())
        })
        .collect()
}

/// The files each demo PDQ entry was made from: its id names the image.
fn pdq_listed(id: &str) -> &'static str {
    match id {
        "demo-q1050" => "q1050.jpg",
        "demo-labelme-rotated" => "labelme-q0291.png",
        other => panic!("the demo list grew an entry {other}: name its image here"),
    }
}

/// The demo MD5 list's digests.
fn demo_md5s() -> Vec<String> {
    let text = std::fs::read_to_string(sample("../demo-md5.txt")).unwrap();
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .map(|line| line.split_whitespace().next().unwrap().to_string())
        .collect()
}

/// What must be blocked, and by which list, by the reference tools: `md5sum` against the demo
/// MD5 list, and the images the demo PDQ list names.
fn expected_blocked() -> BTreeMap<&'static str, &'static str> {
    let md5s = demo_md5s();
    let mut blocked: BTreeMap<_, _> = IMAGES
        .iter()
        .filter(|name| md5s.contains(&md5sum(&sample(name))))
        .map(|&name| (name, "md5list"))
        .collect();
    for (id, _) in demo_pdq() {
        blocked.insert(pdq_listed(&id), "pdqlist");
    }
    assert!(
        blocked.len() >= 3 && blocked.len() < IMAGES.len(),
        "the samples mix listed and unlisted: {blocked:?}"
    );
    blocked
}

/// A larger benign image than any sample (more than Squid's 64 KiB body buffer), made here.
fn large_image() -> Vec<u8> {
    let mut state = 0x9e37_79b9_u32;
    let image = image::RgbImage::from_fn(640, 480, |x, y| {
        state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        let noise = (state >> 24) as u8 / 4;
        image::Rgb([(x / 3) as u8 ^ noise, (y / 2) as u8, ((x + y) / 5) as u8 ^ noise])
    });
    let mut bytes = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 95).encode_image(&image).unwrap();
    assert!(bytes.len() > 100_000, "{} bytes", bytes.len());
    bytes
}

/// A test origin: serves `content` (path → type and bytes) over HTTP/1.1, one response a
/// connection. Bodies go out in 8 KiB pieces a millisecond apart, as from a server across a
/// network: Squid 5.7 (Debian 12) stalls any ICAP service that answers only after the whole
/// body once more than 64 KiB arrive before its ICAP transaction has started (Squid bug
/// 5352, fixed in later Squid releases), which an origin on the same machine sending at
/// memory speed always does.
struct Origin {
    address: SocketAddr,
}

impl Origin {
    fn start(content: BTreeMap<String, (&'static str, Vec<u8>)>) -> Origin {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let content = Arc::new(content);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let content = Arc::clone(&content);
                std::thread::spawn(move || serve_origin(stream, &content));
            }
        });
        Origin { address }
    }

    fn url(&self, name: &str) -> String {
        format!("http://{}/{name}", self.address)
    }
}

fn serve_origin(stream: TcpStream, content: &BTreeMap<String, (&'static str, Vec<u8>)>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
    }
    let path = request_line.split_whitespace().nth(1).unwrap_or("/");
    let name = path.rsplit('/').next().unwrap_or_default();
    let mut stream = stream;
    let Some((content_type, body)) = content.get(name) else {
        let _ = stream.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        return;
    };
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if stream.write_all(head.as_bytes()).is_err() {
        return;
    }
    for piece in body.chunks(8 << 10) {
        if stream.write_all(piece).is_err() {
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The daemon under test, over an index directory with `md5list` (the demo MD5 list) and
/// `pdqlist` (the demo PDQ list), reloading every 100 ms.
struct Daemon {
    process: Hashsieved,
    icap: SocketAddr,
    index: PathBuf,
    _temp: tempfile::TempDir,
}

fn start(icap_settings: &str) -> Daemon {
    let temp = tempfile::tempdir().unwrap();
    let index = temp.path().join("index");
    let mut builder = IndexBuilder::new();
    let md5list = builder.add_list(ListOptions::new("md5list")).unwrap();
    for md5 in demo_md5s() {
        builder.add(md5list, &ImportedEntry::new(HashKind::Md5, hex::decode(md5).unwrap())).unwrap();
    }
    let pdqlist = builder.add_list(ListOptions::new("pdqlist")).unwrap();
    for (id, hash) in demo_pdq() {
        let mut entry = ImportedEntry::new(HashKind::Pdq, hex::decode(hash).unwrap());
        entry.id = Some(id);
        builder.add(pdqlist, &entry).unwrap();
    }
    IndexDir::create(&index, &builder).unwrap();
    let config = temp.path().join("hashsieved.toml");
    std::fs::write(
        &config,
        format!(
            "index = {index:?}\nreload_check_ms = 100\n[http]\nlisten = \"127.0.0.1:0\"\n\
             [icap]\nlisten = \"127.0.0.1:0\"\nidle_timeout_secs = 5\n{icap_settings}\n\
             [limits]\nheader_timeout_secs = 1\nrequest_timeout_secs = 5\nmax_body_bytes = 1000000\n"
        ),
    )
    .unwrap();
    let process = Hashsieved::start(&config, 2);
    let icap = process.announced("icap://").expect("an ICAP listener").parse().unwrap();
    Daemon { process, icap, index, _temp: temp }
}

/// A real Squid on 127.0.0.1 with the documented ICAP snippet pointing at `icap`; killed
/// when dropped.
struct Squid {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Squid {
    fn start(icap: SocketAddr) -> Squid {
        Squid::start_with(icap, false)
    }

    /// The same, with the documented snippet's REQMOD service switched on too.
    fn start_with(icap: SocketAddr, reqmod: bool) -> Squid {
        let dir = tempfile::tempdir().unwrap();
        // Squid started by root runs as the `proxy` user, which must write its logs here.
        std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
        let port = hashsieve_testkit::free_port();
        let snippet =
            std::fs::read_to_string(hashsieve_testkit::workspace().join("docs/squid-icap.conf")).unwrap();
        assert!(
            snippet.contains("icap://127.0.0.1:1344/respmod"),
            "the documented snippet names the service"
        );
        let mut snippet = snippet.replace("127.0.0.1:1344", &icap.to_string());
        if reqmod {
            assert!(snippet.contains("# icap_service hashsieve_reqmod"), "the snippet documents REQMOD");
            snippet = snippet.replace("# icap_service hashsieve_reqmod", "icap_service hashsieve_reqmod");
            snippet =
                snippet.replace("# adaptation_access hashsieve_reqmod", "adaptation_access hashsieve_reqmod");
        }
        let d = dir.path().display();
        let config = format!(
            "http_port 127.0.0.1:{port}\npid_filename {d}/squid.pid\ncache_log {d}/cache.log\n\
             access_log stdio:{d}/access.log\ncoredump_dir {d}\ncache deny all\nhttp_access allow all\n\
             pinger_enable off\nnetdb_filename none\nshutdown_lifetime 1 seconds\n{snippet}"
        );
        let path = dir.path().join("squid.conf");
        std::fs::write(&path, config).unwrap();
        let child = Command::new(squid_binary())
            .args(["-N", "-f"])
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("squid runs");
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(started.elapsed() < Duration::from_secs(30), "squid did not listen; see {d}/cache.log");
            std::thread::sleep(Duration::from_millis(50));
        }
        Squid { child, port, _dir: dir }
    }

    /// Fetches `url` through Squid with curl: the status and the body.
    fn fetch(&self, url: &str) -> (u16, Vec<u8>) {
        let output = Command::new("curl")
            .args(["-s", "-m", "20", "-w", "\n%{http_code}", "-x"])
            .arg(format!("http://127.0.0.1:{}", self.port))
            .arg(url)
            .output()
            .expect("curl runs");
        let mut body = output.stdout;
        let split = body.iter().rposition(|&b| b == b'\n').expect("curl wrote the status");
        let status = String::from_utf8_lossy(&body[split + 1..]).parse().unwrap_or(0);
        body.truncate(split);
        (status, body)
    }
}

impl Drop for Squid {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn squid_binary() -> &'static str {
    for path in ["/usr/sbin/squid", "/usr/bin/squid"] {
        if Path::new(path).exists() {
            return path;
        }
    }
    panic!("squid is not installed (Debian package squid; bash tests/run.sh installs it)");
}

fn content_type(name: &str) -> &'static str {
    if name.ends_with(".png") { "image/png" } else { "image/jpeg" }
}

/// Everything the origin serves: the samples, a large image, and a page.
fn origin_content() -> BTreeMap<String, (&'static str, Vec<u8>)> {
    let mut content: BTreeMap<String, (&'static str, Vec<u8>)> = IMAGES
        .iter()
        .map(|&name| (name.to_string(), (content_type(name), std::fs::read(sample(name)).unwrap())))
        .collect();
    content.insert("large.jpg".into(), ("image/jpeg", large_image()));
    let page = b"<!doctype html><title>benign</title><p>Nothing to see.</p>".repeat(2000);
    content.insert("page.html".into(), ("text/html", page));
    // An image served under a type that is not an image's: found by its first bytes.
    content
        .insert("disguised".into(), ("application/octet-stream", std::fs::read(sample("wee.jpg")).unwrap()));
    content
}

#[test]
fn squid_serves_the_block_page_for_listed_images_and_everything_else_unchanged() {
    let daemon = start("");
    let content = origin_content();
    let origin = Origin::start(content.clone());
    let squid = Squid::start(daemon.icap);
    let mut blocked = expected_blocked();
    blocked.insert("disguised", "md5list");
    for round in 0..2 {
        for (name, (_, bytes)) in &content {
            let (status, body) = squid.fetch(&origin.url(name));
            match blocked.get(name.as_str()) {
                Some(list) => {
                    assert_eq!(status, 403, "{name} (round {round}) is listed in {list}");
                    let page = String::from_utf8(body).expect("the block page is text");
                    assert!(page.contains(&format!("<strong>{list}</strong>")), "{name}: {page}");
                    assert!(page.contains("known child sexual abuse material"), "{page}");
                }
                None => {
                    assert_eq!(status, 200, "{name} (round {round}) passes");
                    assert!(
                        body == *bytes,
                        "{name} passes byte for byte ({} vs {} bytes)",
                        body.len(),
                        bytes.len()
                    );
                }
            }
        }
    }
}

#[test]
fn squid_blocks_urls_on_the_block_list_before_the_origin_and_follows_the_list() {
    let name = IMAGES.iter().find(|name| !expected_blocked().contains_key(*name)).unwrap();
    let picture = std::fs::read(sample(name)).unwrap();
    let host = hashsieve_testkit::origin::Origin::serving(picture.clone());
    let (blocked, other) = (host.url("/reported/a.jpg"), host.url("/reported/b.jpg"));
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("blocklist.txt");
    // As the hotline's export writes it; Squid's request is compared normalised.
    std::fs::write(&list, format!("{}\n", blocked.replace("/a.jpg", "/%61.jpg"))).unwrap();
    let daemon = start(&format!("block_list = {list:?}"));
    let squid = Squid::start_with(daemon.icap, true);

    let (status, body) = squid.fetch(&blocked);
    assert_eq!(status, 403, "the listed URL is blocked");
    assert!(String::from_utf8_lossy(&body).contains("url-block-list"), "{}", String::from_utf8_lossy(&body));
    let (status, body) = squid.fetch(&other);
    assert_eq!((status, body == picture), (200, true), "another URL of the host passes");
    let asked: Vec<String> = host.received().into_iter().map(|(line, _)| line).collect();
    assert_eq!(asked, ["GET /reported/b.jpg HTTP/1.1"], "the blocked URL never reached the origin");

    // The hotline's content is gone and the list is rewritten: Squid passes it, no restart.
    std::fs::write(&list, format!("{other}\n")).unwrap();
    hashsieve_testkit::wait_for("the new list", Duration::from_secs(10), || squid.fetch(&blocked).0 == 200);
    assert_eq!(squid.fetch(&other).0, 403);
}

/// Runs c-icap-client; returns the ICAP status line and the body it wrote, if any.
fn c_icap_client(icap: SocketAddr, args: &[&str]) -> (String, Option<Vec<u8>>, String) {
    let out = tempfile::NamedTempFile::new().unwrap();
    std::fs::remove_file(out.path()).unwrap();
    let output = Command::new("c-icap-client")
        .args(["-i", "127.0.0.1", "-p", &icap.port().to_string(), "-v", "-o"])
        .arg(out.path())
        .args(args)
        .output()
        .expect("c-icap-client runs (Debian package c-icap; bash tests/run.sh installs it)");
    let text =
        String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
    let status = text
        .lines()
        .find_map(|line| line.trim().strip_prefix("ICAP/1.0 ").map(str::to_string))
        .unwrap_or_else(|| panic!("no ICAP status in: {text}"));
    (status, std::fs::read(out.path()).ok(), text)
}

#[test]
fn c_icap_client_sees_options_blocks_and_passes_in_every_mode() {
    let daemon = start("transfer_ignore = [\"css\", \"js\"]");
    let (status, _, text) = c_icap_client(daemon.icap, &["-s", "respmod"]);
    assert_eq!(status, "200 OK", "{text}");
    for header in [
        "Methods: RESPMOD",
        "Preview: 4096",
        "Allow: 204",
        "Transfer-Preview: *",
        "Transfer-Ignore: css, js",
        "Max-Connections: ",
        "Options-TTL: 60",
        "ISTag: \"hs-",
    ] {
        assert!(text.contains(header), "OPTIONS lacks {header}: {text}");
    }
    let (_, _, text) = c_icap_client(daemon.icap, &["-s", "reqmod"]);
    assert!(text.contains("Methods: REQMOD"), "{text}");

    let blocked = expected_blocked();
    let dir = tempfile::tempdir().unwrap();
    let large = dir.path().join("large.jpg");
    std::fs::write(&large, large_image()).unwrap();
    let mut files: Vec<(String, PathBuf)> =
        IMAGES.iter().map(|name| (name.to_string(), sample(name))).collect();
    files.push(("large.jpg".into(), large));
    files.push(("README.md".into(), hashsieve_testkit::workspace().join("README.md")));
    let modes: [&[&str]; 4] = [&[], &["-nopreview"], &["-nopreview", "-no204"], &["-w", "10"]];
    for (name, path) in &files {
        let bytes = std::fs::read(path).unwrap();
        for mode in modes {
            let mut args =
                vec!["-s", "respmod", "-resp", "http://origin.test/x", "-f", path.to_str().unwrap()];
            args.extend_from_slice(mode);
            let (status, body, text) = c_icap_client(daemon.icap, &args);
            if let Some(list) = blocked.get(name.as_str()) {
                assert_eq!(status, "200 OK", "{name} {mode:?}: {text}");
                let page = String::from_utf8(body.expect("a block page")).unwrap();
                assert!(page.contains(&format!("<strong>{list}</strong>")), "{name} {mode:?}: {page}");
                assert!(
                    text.contains("X-Infection-Found: Type=0; Resolution=2; Threat=HashSieve."),
                    "{text}"
                );
            } else if mode.contains(&"-no204") {
                assert_eq!(status, "200 OK", "{name} {mode:?}: {text}");
                assert!(body.as_deref() == Some(&bytes[..]), "{name} {mode:?} comes back unchanged");
            } else {
                assert_eq!(status, "204 No Content", "{name} {mode:?}: {text}");
            }
        }
    }

    // An upload (REQMOD) of a listed image is refused with the block page.
    let (status, body, text) = c_icap_client(
        daemon.icap,
        &["-s", "reqmod", "-req", "http://origin.test/upload", "-f", sample("wee.jpg").to_str().unwrap()],
    );
    assert_eq!(status, "200 OK", "{text}");
    assert!(text.contains("HTTP/1.1 403 Forbidden"), "{text}");
    assert!(String::from_utf8(body.unwrap()).unwrap().contains("<strong>md5list</strong>"));
    let (status, _, text) = c_icap_client(
        daemon.icap,
        &[
            "-s",
            "reqmod",
            "-req",
            "http://origin.test/upload",
            "-f",
            sample("misc-small.png").to_str().unwrap(),
        ],
    );
    assert_eq!(status, "204 No Content", "{text}");
    drop(daemon.process);
}

/// Sends `request` on a fresh connection and reads until the server closes (or 5 s pass).
fn exchange(icap: SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(icap).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    // The server may answer and close before taking everything: that is allowed.
    let _ = stream.write_all(request);
    let mut reply = Vec::new();
    let _ = stream.read_to_end(&mut reply);
    String::from_utf8_lossy(&reply).into_owned()
}

/// A RESPMOD of `body` declared as `content_type`, with a preview of `preview` bytes if given.
fn respmod(body: &[u8], content_type: &str, preview: Option<usize>, extra: &str) -> Vec<u8> {
    let request = "GET http://origin.test/x HTTP/1.1\r\nHost: origin.test\r\n\r\n";
    let response =
        format!("HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n", body.len());
    let mut out = format!(
        "RESPMOD icap://127.0.0.1/respmod ICAP/1.0\r\nHost: 127.0.0.1\r\nAllow: 204\r\n{extra}\
         Encapsulated: req-hdr=0, res-hdr={}, res-body={}\r\n",
        request.len(),
        request.len() + response.len()
    );
    if let Some(preview) = preview {
        out.push_str(&format!("Preview: {preview}\r\n"));
    }
    out.push_str("\r\n");
    out.push_str(request);
    out.push_str(&response);
    let mut out = out.into_bytes();
    let chunk = |out: &mut Vec<u8>, data: &[u8]| {
        if !data.is_empty() {
            out.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
            out.extend_from_slice(data);
            out.extend_from_slice(b"\r\n");
        }
    };
    match preview {
        Some(preview) if preview < body.len() => {
            chunk(&mut out, &body[..preview]);
            out.extend_from_slice(b"0\r\n\r\n");
            chunk(&mut out, &body[preview..]);
            out.extend_from_slice(b"0\r\n\r\n");
        }
        Some(_) => {
            chunk(&mut out, body);
            out.extend_from_slice(b"0; ieof\r\n\r\n");
        }
        None => {
            chunk(&mut out, body);
            out.extend_from_slice(b"0\r\n\r\n");
        }
    }
    out
}

#[test]
fn malformed_icap_gets_an_error_status_and_the_connection_closes() {
    let daemon = start("");
    let image = std::fs::read(sample("wee.jpg")).unwrap();
    let good = respmod(&image, "image/jpeg", None, "");
    let mut header_flood = b"RESPMOD icap://127.0.0.1/respmod ICAP/1.0\r\n".to_vec();
    for i in 0..500 {
        header_flood.extend_from_slice(format!("X-Flood-{i}: {}\r\n", "y".repeat(20)).as_bytes());
    }
    header_flood.extend_from_slice(b"\r\n");
    let mut endless_head = b"RESPMOD icap://127.0.0.1/respmod ICAP/1.0\r\nX-Long: ".to_vec();
    endless_head.resize(100_000, b'a');
    let size_line = format!("\r\n\r\n{:x}\r\n", image.len());
    let bad_chunk = String::from_utf8_lossy(&good).replacen(&size_line, "\r\n\r\nzzzz\r\n", 1);
    assert_ne!(bad_chunk.as_bytes(), &good[..], "the chunk size line was replaced");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("bad chunk size", bad_chunk.into_bytes(), "400"),
        ("header flood", header_flood, "400"),
        ("head without end", endless_head, "400"),
        ("missing Encapsulated", b"RESPMOD icap://127.0.0.1/respmod ICAP/1.0\r\nHost: x\r\n\r\n".to_vec(), "400"),
        (
            "Encapsulated past the limit",
            b"RESPMOD icap://127.0.0.1/respmod ICAP/1.0\r\nEncapsulated: res-hdr=0, res-body=9000000\r\n\r\n".to_vec(),
            "400",
        ),
        (
            "encapsulated head that is not HTTP",
            b"RESPMOD icap://127.0.0.1/respmod ICAP/1.0\r\nEncapsulated: res-hdr=0, null-body=6\r\n\r\n\x00\x01\x02\r\n\r\n"
                .to_vec(),
            "400",
        ),
        (
            "preview longer than announced",
            String::from_utf8_lossy(&respmod(&image, "image/jpeg", Some(10), ""))
                .replacen("Preview: 10\r\n", "Preview: 4\r\n", 1)
                .into_bytes(),
            "400",
        ),
        ("unknown method", b"PUT icap://127.0.0.1/respmod ICAP/1.0\r\n\r\n".to_vec(), "501"),
        ("other version", b"OPTIONS icap://127.0.0.1/respmod ICAP/2.0\r\n\r\n".to_vec(), "505"),
        ("no such service", b"OPTIONS icap://127.0.0.1/nothing ICAP/1.0\r\n\r\n".to_vec(), "404"),
        ("method of another service", String::from_utf8_lossy(&good).replacen("/respmod", "/reqmod", 1).into_bytes(), "405"),
        ("binary garbage", (0..=255u8).cycle().take(5000).collect(), "40"),
    ];
    for (what, input, status) in cases {
        let reply = exchange(daemon.icap, &input);
        assert!(reply.starts_with(&format!("ICAP/1.0 {status}")), "{what}: {reply:?}");
        assert_eq!(reply.matches("ICAP/1.0 ").count(), 1, "{what}: one response, then the connection closes");
    }

    // A head sent too slowly: 408 after the header timeout (1 s).
    let mut stream = TcpStream::connect(daemon.icap).unwrap();
    stream.write_all(b"OPTIONS icap://127.0.0.1/respmod ICAP/1.0\r\n").unwrap();
    let started = Instant::now();
    let mut reply = String::new();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = stream.read_to_string(&mut reply);
    assert!(reply.starts_with("ICAP/1.0 408"), "{reply:?}");
    assert!(started.elapsed() < Duration::from_secs(4));

    // A chunk that claims an enormous size and a client that then goes away: no response
    // (the client is gone), no memory taken for the claim, and the daemon carries on.
    let mut huge = respmod(b"", "image/jpeg", None, "");
    huge.truncate(huge.len() - b"0\r\n\r\n".len());
    huge.extend_from_slice(b"fffffffffffffff\r\nabc");
    let _ = exchange(daemon.icap, &huge);

    // Two requests pipelined on one connection are both answered, in order; the connection
    // then stays open until the client closes it.
    let other = std::fs::read(sample("misc-small.png")).unwrap();
    let mut pipelined = good.clone();
    pipelined.extend_from_slice(&respmod(&other, "image/png", Some(4096), "Connection: close\r\n"));
    let reply = exchange(daemon.icap, &pipelined);
    let statuses: Vec<&str> =
        reply.match_indices("ICAP/1.0 ").map(|(at, _)| &reply[at + 9..at + 12]).collect();
    assert_eq!(statuses, ["200", "204"], "{reply}");
    assert!(reply.contains("<strong>md5list</strong>"));

    // After all that, the daemon still answers.
    let reply =
        exchange(daemon.icap, b"OPTIONS icap://127.0.0.1/respmod ICAP/1.0\r\nConnection: close\r\n\r\n");
    assert!(reply.starts_with("ICAP/1.0 200 OK"), "{reply}");
    assert!(daemon.process.child.id() > 0);
}

#[test]
fn the_istag_and_the_answers_follow_list_changes() {
    let daemon = start("");
    let istag =
        |text: &str| text.lines().find_map(|line| line.trim().strip_prefix("ISTag: ").map(str::to_string));
    let (_, _, before) = c_icap_client(daemon.icap, &["-s", "respmod"]);
    let before = istag(&before).expect("an ISTag");
    let small = sample("misc-small.png");
    let args = ["-s", "respmod", "-resp", "http://origin.test/x", "-f", small.to_str().unwrap()];
    assert_eq!(c_icap_client(daemon.icap, &args).0, "204 No Content");

    // Another process adds the image's MD5 to a list; the daemon follows within its reload
    // interval, and its tag changes with it.
    let (writer, _) = Matcher::open_dir(&daemon.index, DirOptions::default()).unwrap();
    let entry = ImportedEntry::new(HashKind::Md5, hex::decode(md5sum(&small)).unwrap());
    writer.add("md5list", vec![entry], Some("test")).unwrap();
    let started = Instant::now();
    loop {
        let (_, _, text) = c_icap_client(daemon.icap, &["-s", "respmod"]);
        let now = istag(&text).unwrap();
        if now != before {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "the ISTag never changed from {before}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (status, body, _) = c_icap_client(daemon.icap, &args);
    assert_eq!(status, "200 OK");
    assert!(String::from_utf8(body.unwrap()).unwrap().contains("<strong>md5list</strong>"));
}
