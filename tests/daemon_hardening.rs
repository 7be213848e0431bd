//! The hostile-client probes of issue 19, each as a test of the real `hashsieved` on
//! loopback: clients that announce content and send none (F1), clients that pipeline and
//! never read (F2), silent ICAP connections (F3), huge pictures decoded at once (F4), list
//! names that would break the metrics (F5), declared lengths over the limit (F6), and the
//! smaller findings: padded hash values and the header limit.
//!
//! Each probe holds what it holds against a daemon with a small bound, then checks that an
//! ordinary client is still served promptly — the thing each finding broke.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use hashsieve_core::hashes::HashKind;
use hashsieve_core::import::ImportedEntry;
use hashsieve_core::index::dir::IndexDir;
use hashsieve_core::index::{IndexBuilder, ListOptions};

mod daemon_support;
use daemon_support::{
    Hashsieved, md5sum, parse_openmetrics, pipe, request, request_with, sample, sha256_hex,
};

const ADMIN_TOKEN: &str = "admin-token-for-hardening";
const MATCH_TOKEN: &str = "match-token-for-hardening";

struct Daemon {
    process: Hashsieved,
    http: SocketAddr,
    clamd: SocketAddr,
    icap: SocketAddr,
    _temp: tempfile::TempDir,
}

/// A writable index listing `wee.jpg`'s MD5 (and a PDQ hash, so that pictures are decoded), served on HTTP, clamd over TCP and ICAP, with
/// `limits` added to a one-second header deadline.
fn start(limits: &str) -> Daemon {
    let temp = tempfile::tempdir().unwrap();
    let index = temp.path().join("index");
    let mut builder = IndexBuilder::new();
    let hot = builder.add_list(ListOptions::new("hot")).unwrap();
    let md5 = hex::decode(md5sum(&sample("wee.jpg"))).unwrap();
    builder.add(hot, &ImportedEntry::new(HashKind::Md5, md5)).unwrap();
    let pictures = builder.add_list(ListOptions::new("pictures")).unwrap();
    builder.add(pictures, &ImportedEntry::new(HashKind::Pdq, vec![0x5a; 32])).unwrap();
    IndexDir::create(&index, &builder).unwrap();
    let config = temp.path().join("hashsieved.toml");
    std::fs::write(
        &config,
        format!(
            "index = {index:?}\nwritable = true\n[http]\nlisten = \"127.0.0.1:0\"\n\
             [clamd]\ntcp_listen = \"127.0.0.1:0\"\n[icap]\nlisten = \"127.0.0.1:0\"\n\
             [limits]\nheader_timeout_secs = 1\n{limits}\n\
             [[tokens]]\nid = \"ops\"\nsha256 = \"{}\"\nroles = [\"admin\"]\n\
             [[tokens]]\nid = \"proxy\"\nsha256 = \"{}\"\nroles = [\"match\"]\n",
            sha256_hex(ADMIN_TOKEN),
            sha256_hex(MATCH_TOKEN),
        ),
    )
    .unwrap();
    let process = Hashsieved::start(&config, 3);
    let address = |prefix| process.announced(prefix).unwrap_or_else(|| panic!("{prefix}")).parse().unwrap();
    let (http, clamd, icap) = (address("http://"), address("clamd tcp://"), address("icap://"));
    Daemon { process, http, clamd, icap, _temp: temp }
}

fn connect(address: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    stream
}

/// An INSTREAM of `content` in one chunk, with its reply.
fn instream(address: SocketAddr, content: &[u8]) -> String {
    let mut stream = connect(address);
    let mut bytes = b"zINSTREAM\0".to_vec();
    bytes.extend((content.len() as u32).to_be_bytes());
    bytes.extend(content);
    bytes.extend([0; 4]);
    stream.write_all(&bytes).unwrap();
    let mut reply = Vec::new();
    let _ = stream.read_to_end(&mut reply);
    String::from_utf8_lossy(&reply).into_owned()
}

fn icap_options(address: SocketAddr) -> String {
    let mut stream = connect(address);
    let request =
        format!("OPTIONS icap://{address}/respmod ICAP/1.0\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut reply = Vec::new();
    let _ = stream.read_to_end(&mut reply);
    String::from_utf8_lossy(&reply).into_owned()
}

/// `answer` and how long it took.
fn timed<T>(answer: impl FnOnce() -> T) -> (T, Duration) {
    let started = Instant::now();
    let out = answer();
    (out, started.elapsed())
}

#[test]
fn f1_clients_that_announce_content_and_send_none_hold_no_hashing_slot() {
    let daemon = start("max_in_flight = 2\nrequest_timeout_secs = 5");
    let wee = std::fs::read(sample("wee.jpg")).unwrap();
    // Four uploads whose heads arrived and whose bodies never come; four INSTREAMs that
    // never send a chunk: twice the slots there are.
    let mut stalled = Vec::new();
    for _ in 0..4 {
        let mut upload = connect(daemon.http);
        let head = format!(
            "POST /v1/match/content HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {MATCH_TOKEN}\r\nContent-Length: 100000\r\n\r\n"
        );
        upload.write_all(head.as_bytes()).unwrap();
        stalled.push(upload);
        let mut stream = connect(daemon.clamd);
        stream.write_all(b"zINSTREAM\0").unwrap();
        stalled.push(stream);
    }
    std::thread::sleep(Duration::from_millis(300));
    let (answer, took) = timed(|| request(daemon.http, "POST", "/v1/match/content", Some(MATCH_TOKEN), &wee));
    assert_eq!(answer.status, 200, "{}", String::from_utf8_lossy(&answer.body));
    assert_eq!(answer.json()["outcome"], "known");
    assert!(took < Duration::from_secs(2), "served at once, not after the stalled ones: {took:?}");
    let (reply, took) = timed(|| instream(daemon.clamd, &wee));
    assert_eq!(reply, format!("stream: HashSieve.hot.md5.{} FOUND\0", md5sum(&sample("wee.jpg"))));
    assert!(took < Duration::from_secs(2), "{took:?}");
    // The stalled ones are told they timed out, at the request deadline.
    let mut answer = String::new();
    let _ = stalled[0].read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
}

/// Sends `request` over and over on a connection whose replies are never read, from a
/// thread that ends when the daemon stops taking them: with the write's error — a reset or
/// broken pipe once the daemon has closed the connection, a timeout if it never does.
fn pipeline_without_reading(
    address: SocketAddr,
    request: Vec<u8>,
) -> std::thread::JoinHandle<std::io::ErrorKind> {
    let mut stream = connect(address);
    stream.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
    std::thread::spawn(move || {
        let burst: Vec<u8> = request.iter().copied().cycle().take(request.len() * 1000).collect();
        // The daemon stops reading when its replies cannot be sent; this write then blocks
        // until the daemon closes the connection (or the write timeout, if it never does).
        loop {
            if let Err(err) = stream.write_all(&burst) {
                return err.kind();
            }
        }
    })
}

#[test]
fn f2_a_client_that_pipelines_and_never_reads_is_cut_off_at_the_write_deadline() {
    let daemon = start("max_connections = 2\nwrite_timeout_secs = 1");
    let address = daemon.icap;
    let http = b"GET /openapi.json HTTP/1.1\r\nHost: t\r\n\r\n".to_vec();
    let icap = format!("OPTIONS icap://{address}/respmod ICAP/1.0\r\nHost: {address}\r\n\r\n").into_bytes();
    let clamd = b"zIDSESSION\0".iter().copied().chain(b"zPING\0".repeat(200)).collect::<Vec<_>>();
    let mut pipeliners = Vec::new();
    for _ in 0..2 {
        pipeliners.push(pipeline_without_reading(daemon.http, http.clone()));
        pipeliners.push(pipeline_without_reading(daemon.icap, icap.clone()));
        pipeliners.push(pipeline_without_reading(daemon.clamd, clamd.clone()));
    }
    // Every connection slot of every listener is taken by a client that does not read; the
    // daemon must close them and serve the next client.
    std::thread::sleep(Duration::from_secs(1));
    let (health, took) = timed(|| request(daemon.http, "GET", "/healthz", None, b""));
    assert_eq!(health.status, 200);
    assert!(took < Duration::from_secs(8), "HTTP waited {took:?}");
    let (options, took) = timed(|| icap_options(daemon.icap));
    assert!(options.starts_with("ICAP/1.0 200 OK"), "{options}");
    assert!(took < Duration::from_secs(8), "ICAP waited {took:?}");
    let (pong, took) = timed(|| {
        let mut stream = connect(daemon.clamd);
        stream.write_all(b"zPING\0").unwrap();
        let mut reply = Vec::new();
        let _ = stream.read_to_end(&mut reply);
        reply
    });
    assert_eq!(pong, b"PONG\0");
    assert!(took < Duration::from_secs(8), "clamd waited {took:?}");
    for (i, writer) in pipeliners.into_iter().enumerate() {
        let protocol = ["http", "icap", "clamd"][i % 3];
        let ended = writer.join().unwrap();
        assert!(
            matches!(ended, std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe),
            "{protocol}: a connection that does not drain is closed by the daemon, not left open: {ended:?}"
        );
    }
}

/// Whether the daemon closes `stream`, on which it was sent nothing, within `limit`.
fn closed_within(mut stream: TcpStream, limit: Duration) -> bool {
    stream.set_read_timeout(Some(limit)).unwrap();
    match stream.read(&mut [0]) {
        Ok(read) => read == 0,
        Err(err) => err.kind() == std::io::ErrorKind::ConnectionReset,
    }
}

#[test]
fn f3_a_connection_that_sends_no_first_icap_request_is_closed_at_the_header_deadline() {
    let daemon = start("max_connections = 4");
    let silent: Vec<TcpStream> = (0..4).map(|_| connect(daemon.icap)).collect();
    std::thread::sleep(Duration::from_millis(200));
    let (options, took) = timed(|| icap_options(daemon.icap));
    assert!(options.starts_with("ICAP/1.0 200 OK"), "{options}");
    assert!(took < Duration::from_secs(4), "waited {took:?} behind silent connections");
    for stream in silent {
        assert!(closed_within(stream, Duration::from_secs(3)));
    }
}

/// A PNG of `side` × `side` grey pixels (a repeating ramp, so that it compresses to almost
/// nothing), made by Python's zlib: 100 megapixels in a few hundred kilobytes.
fn grey_png(side: u32) -> Vec<u8> {
    const SCRIPT: &str = "import struct, sys, zlib\n\
        side = int(sys.argv[1])\n\
        def chunk(kind, data): return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data))\n\
        row = b'\\0' + bytes(range(256)) * (side // 256) + bytes(side % 256)\n\
        packer = zlib.compressobj(9)\n\
        data = b''.join(packer.compress(row) for _ in range(side)) + packer.flush()\n\
        header = struct.pack('>IIBBBBB', side, side, 8, 0, 0, 0, 0)\n\
        sys.stdout.buffer.write(b'\\x89PNG\\r\\n\\x1a\\n' + chunk(b'IHDR', header) + chunk(b'IDAT', data) + chunk(b'IEND', b''))\n";
    let output = pipe("python3", &["-c", SCRIPT, &side.to_string()], b"");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    output.stdout
}

/// The daemon's resident memory now and at its peak, from `/proc`, in bytes.
fn memory(daemon: &Daemon) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{}/status", daemon.process.child.id())).unwrap();
    let field = |name: &str| {
        let line = status.lines().find(|line| line.starts_with(name)).unwrap();
        line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
    };
    (field("VmRSS:"), field("VmHWM:"))
}

#[test]
fn f4_decodes_at_once_are_bounded_by_the_decode_memory_budget() {
    // A 25-megapixel grey PNG takes 100 MB to decode (its grey pixels and their RGB copy); the
    // budget admits one at a time, however many slots are free. (The closing figures of issue
    // 19 were measured with 100-megapixel pictures and a release build.)
    let daemon = start("max_in_flight = 8\nmax_decode_bytes = 134217728\nrequest_timeout_secs = 60");
    let png = grey_png(5_000);
    assert!(png.len() < 1 << 20);
    let (before, _) = memory(&daemon);
    let senders: Vec<_> = (0..3)
        .map(|_| {
            let png = png.clone();
            let address = daemon.http;
            // As a client does: a 503 is retried after its Retry-After.
            std::thread::spawn(move || {
                for _ in 0..60 {
                    let answer = request(address, "POST", "/v1/match/content", Some(MATCH_TOKEN), &png);
                    if answer.status != 503 {
                        return answer;
                    }
                    let wait: u64 = answer.header("retry-after").unwrap().parse().unwrap();
                    std::thread::sleep(Duration::from_secs(wait));
                }
                panic!("still busy after a minute")
            })
        })
        .collect();
    for sender in senders {
        let answer = sender.join().unwrap();
        assert_eq!(answer.status, 200, "{}", String::from_utf8_lossy(&answer.body));
        assert!(answer.json()["hashes"]["pdq"].is_string(), "decoded, not refused: {}", answer.json());
    }
    let (after, peak) = memory(&daemon);
    let mib = |bytes: u64| bytes >> 20;
    // Three at once would be 300 MB; one at a time, 100 MB and the daemon's own.
    assert!(peak < before + (180 << 20), "peak RSS {} MiB (from {} MiB)", mib(peak), mib(before));
    assert!(
        after < before + (64 << 20),
        "memory is returned: {} MiB after, {} MiB before",
        mib(after),
        mib(before)
    );
}

#[test]
fn f5_list_names_cannot_break_the_metrics() {
    let daemon = start("");
    let change = |list: &str| {
        let body = serde_json::json!({"changes": [
            {"op": "define", "list": list},
            {"op": "add", "list": list, "kind": "md5", "value": md5sum(&sample("q1050.jpg"))},
        ]});
        request(daemon.http, "POST", "/v1/lists/changes", Some(ADMIN_TOKEN), body.to_string().as_bytes())
    };
    for name in ["evil\n# EOF\n", "cr\rhere", "nul\0", "tab\tbell\u{7}"] {
        let refused = change(name);
        assert_eq!(refused.status, 422, "{name:?}: {}", String::from_utf8_lossy(&refused.body));
    }
    let quoted = r#"a "quoted\" name\\"#;
    assert_eq!(change(quoted).status, 200);
    let q1050 = std::fs::read(sample("q1050.jpg")).unwrap();
    assert_eq!(
        request(daemon.http, "POST", "/v1/match/content", Some(MATCH_TOKEN), &q1050).json()["outcome"],
        "known"
    );
    let scrape = request(daemon.http, "GET", "/metrics", None, b"");
    let samples = parse_openmetrics(&String::from_utf8(scrape.body).unwrap());
    let lists: Vec<&str> = samples
        .iter()
        .filter(|(name, _, _)| name == "hashsieve_matches_total")
        .filter_map(|(_, labels, _)| labels.get("list").map(String::as_str))
        .collect();
    assert_eq!(lists, [quoted], "the name comes back exactly as it was given");
}

#[test]
fn f6_a_declared_length_over_the_limit_is_refused_before_the_body() {
    let daemon = start("max_body_bytes = 1048576");
    for path in ["/v1/match/content", "/v1/match/hashes", "/v1/lists/changes"] {
        let (answer, took) = timed(|| {
            let mut stream = connect(daemon.http);
            let head = format!(
                "POST {path} HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\nContent-Length: 10000000000\r\n\r\n"
            );
            stream.write_all(head.as_bytes()).unwrap();
            let mut answer = vec![0; 4096];
            let read = stream.read(&mut answer).unwrap();
            String::from_utf8_lossy(&answer[..read]).into_owned()
        });
        assert!(answer.starts_with("HTTP/1.1 413"), "{path}: {answer}");
        assert!(took < Duration::from_secs(1), "{path}: answered at once, not at the deadline: {took:?}");
    }
}

#[test]
fn padded_hash_values_are_refused_and_the_header_limit_is_the_configured_one() {
    let daemon = start("max_header_bytes = 16384");
    let md5 = md5sum(&sample("wee.jpg"));
    let lookup = |value: &str| {
        let body = serde_json::json!({"hashes": [{"kind": "md5", "value": value}]}).to_string();
        request(daemon.http, "POST", "/v1/match/hashes", Some(MATCH_TOKEN), body.as_bytes())
    };
    assert_eq!(lookup(&md5).json()["results"][0]["outcome"], "known");
    let padding = " ".repeat(100_000);
    let padded = lookup(&format!("{padding}{md5}{padding}"));
    assert_eq!(padded.status, 422, "{}", String::from_utf8_lossy(&padded.body));
    assert!(padded.body.len() < 1000, "the padding is not echoed");
    // A head within the limit is served; one over it is refused, whatever hyper's buffer.
    let header = |size: usize| format!("X-Filler: {}", "a".repeat(size));
    let within = request_with(daemon.http, "GET", "/healthz", None, &[&header(16_000)], b"");
    assert_eq!(within.status, 200);
    let over = request_with(daemon.http, "GET", "/healthz", None, &[&header(16_400)], b"");
    assert_eq!(over.status, 431, "a head just over a 16 KiB limit");
    // Far over the limit, hyper's own buffer bound refuses it before it is parsed.
    let far = request_with(daemon.http, "GET", "/healthz", None, &[&header(200_000)], b"");
    assert_eq!(far.status, 431);
}
