//! End-to-end tests of hashsieved's clamd protocol through the real binary: the real
//! `clamdscan` client (Debian package `clamdscan`) on the Unix socket and over TCP, streaming,
//! passing descriptors, in sessions and by path; and a plain socket client for what clamdscan
//! does not show (replies, sessions, limits, bad clients, RELOAD).
//!
//! The expected answers come from `md5sum` and the demo PDQ list (hashes made by Meta's
//! reference implementation), never from the daemon.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use hashsieve_core::hashes::HashKind;
use hashsieve_core::import::ImportedEntry;
use hashsieve_core::index::dir::IndexDir;
use hashsieve_core::index::{IndexBuilder, ListOptions, ListRole};

mod daemon_support;
use daemon_support::{Hashsieved, md5sum, sample};

/// Largest stream the daemon under test accepts.
const MAX_STREAM: usize = 200_000;

/// The demo list's PDQ hash and id for `q1050.jpg`.
fn demo_pdq() -> (String, String) {
    let csv = std::fs::read_to_string(sample("../demo-pdq.csv")).unwrap();
    let line = csv.lines().find(|line| line.contains("demo-q1050")).expect("the demo list names q1050");
    let fields: Vec<&str> = line.split(',').collect();
    (fields[0].to_string(), fields[2].to_string())
}

fn clamdscan() -> &'static str {
    let found = Command::new("sh").args(["-c", "command -v clamdscan"]).output().unwrap();
    assert!(
        found.status.success(),
        "these tests need the real clamdscan: apt-get install clamdscan (bash tests/run.sh installs it)"
    );
    "clamdscan"
}

struct Daemon {
    process: Hashsieved,
    http: SocketAddr,
    tcp: SocketAddr,
    unix: PathBuf,
    index: PathBuf,
    temp: tempfile::TempDir,
}

/// A read-only daemon (reloading only when asked) over an index with: `hot`, the MD5s of
/// `wee.jpg` and `q0122.jpg`; `demo`, the PDQ hash of `q1050.jpg`; and an allow-list with the
/// MD5 of `q0122.jpg`, whose match is therefore suppressed.
fn start() -> Daemon {
    start_with("request_timeout_secs = 5")
}

/// The same with these `[limits]` settings besides a one-second header timeout.
fn start_with(limits: &str) -> Daemon {
    let temp = tempfile::tempdir().unwrap();
    let index = temp.path().join("index");
    let md5 = |name: &str| hex::decode(md5sum(&sample(name))).unwrap();
    let mut builder = IndexBuilder::new();
    let hot = builder.add_list(ListOptions::new("hot")).unwrap();
    builder.add(hot, &ImportedEntry::new(HashKind::Md5, md5("wee.jpg"))).unwrap();
    builder.add(hot, &ImportedEntry::new(HashKind::Md5, md5("q0122.jpg"))).unwrap();
    let demo = builder.add_list(ListOptions::new("demo")).unwrap();
    let (pdq, id) = demo_pdq();
    let mut entry = ImportedEntry::new(HashKind::Pdq, hex::decode(pdq).unwrap());
    entry.id = Some(id);
    builder.add(demo, &entry).unwrap();
    let allow = builder.add_list(ListOptions { role: ListRole::Allow, ..ListOptions::new("fp") }).unwrap();
    builder.add(allow, &ImportedEntry::new(HashKind::Md5, md5("q0122.jpg"))).unwrap();
    IndexDir::create(&index, &builder).unwrap();

    let unix = temp.path().join("clamd.sock");
    let config = temp.path().join("hashsieved.toml");
    std::fs::write(
        &config,
        format!(
            "index = {index:?}\nreload_check_ms = 0\n[http]\nlisten = \"127.0.0.1:0\"\n\
             [clamd]\nunix_socket = {unix:?}\ntcp_listen = \"127.0.0.1:0\"\nmax_stream_bytes = {MAX_STREAM}\n\
             idle_timeout_secs = 2\n[limits]\nheader_timeout_secs = 1\n{limits}\n"
        ),
    )
    .unwrap();
    let process = Hashsieved::start(&config, 3);
    let address = |prefix| process.announced(prefix).unwrap_or_else(|| panic!("{prefix}")).parse().unwrap();
    let (http, tcp) = (address("http://"), address("clamd tcp://"));
    assert!(unix.exists(), "the Unix socket is there once the daemon says it listens");
    Daemon { process, http, tcp, unix, index, temp }
}

impl Daemon {
    /// A clamdscan configuration for one of our sockets.
    fn clamdscan_config(&self, over_tcp: bool) -> PathBuf {
        let path = self.temp.path().join(if over_tcp { "tcp.conf" } else { "unix.conf" });
        let text = if over_tcp {
            format!("TCPSocket {}\nTCPAddr 127.0.0.1\n", self.tcp.port())
        } else {
            format!("LocalSocket {}\n", self.unix.display())
        };
        std::fs::write(&path, text).unwrap();
        path
    }
}

/// Runs clamdscan; returns its exit code and `file → signature` for every FOUND line.
fn run_clamdscan(config: &Path, flags: &[&str], target: &Path) -> (i32, BTreeMap<String, String>, String) {
    let output = Command::new(clamdscan())
        .arg(format!("--config-file={}", config.display()))
        .arg("--no-summary")
        .args(flags)
        .arg(target)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let found = stdout
        .lines()
        .filter_map(|line| line.strip_suffix(" FOUND"))
        .map(|line| {
            let (path, signature) = line.rsplit_once(": ").unwrap();
            let name = Path::new(path).file_name().unwrap().to_string_lossy().into_owned();
            (name, signature.to_string())
        })
        .collect();
    (output.status.code().unwrap_or(-1), found, stdout)
}

#[test]
fn clamdscan_finds_the_listed_files_in_every_mode_on_both_sockets() {
    let daemon = start();
    let scanned = daemon.temp.path().join("scanned");
    let clean = daemon.temp.path().join("clean");
    std::fs::create_dir_all(&scanned).unwrap();
    std::fs::create_dir_all(&clean).unwrap();
    for name in ["wee.jpg", "q0122.jpg", "q1050.jpg", "misc-small.png", "square-256x256.jpg"] {
        std::fs::copy(sample(name), scanned.join(name)).unwrap();
    }
    for name in ["misc-small.png", "square-256x256.jpg"] {
        std::fs::copy(sample(name), clean.join(name)).unwrap();
    }
    let expected: BTreeMap<String, String> = [
        ("wee.jpg".to_string(), format!("HashSieve.hot.md5.{}", md5sum(&sample("wee.jpg")))),
        ("q1050.jpg".to_string(), format!("HashSieve.demo.pdq.{}", demo_pdq().1)),
    ]
    .into();

    let unix = daemon.clamdscan_config(false);
    let tcp = daemon.clamdscan_config(true);
    let runs: &[(&Path, &[&str])] = &[
        (&unix, &["--stream"]),
        (&unix, &["--fdpass"]),
        (&unix, &["--stream", "-m"]), // IDSESSION
        (&unix, &["--fdpass", "-m"]), // IDSESSION
        (&unix, &[]),                 // CONTSCAN of the path
        (&unix, &["-m"]),             // MULTISCAN of the path
        (&unix, &["--allmatch"]),     // ALLMATCHSCAN of the path
        (&tcp, &["--stream"]),
        (&tcp, &["--stream", "-m"]),
    ];
    for (config, flags) in runs {
        let socket = if *config == tcp.as_path() { "tcp" } else { "unix" };
        let (code, found, stdout) = run_clamdscan(config, flags, &scanned);
        assert_eq!(found, expected, "{socket} {flags:?}:\n{stdout}");
        assert_eq!(code, 1, "{socket} {flags:?}: exit status 1 when something is found:\n{stdout}");
        let (code, found, stdout) = run_clamdscan(config, flags, &clean);
        assert!(found.is_empty(), "{socket} {flags:?}:\n{stdout}");
        assert_eq!(code, 0, "{socket} {flags:?}: exit status 0 when nothing is found:\n{stdout}");
    }

    let clamdscan_with = |config: &Path, flag: &str| {
        Command::new(clamdscan())
            .arg(format!("--config-file={}", config.display()))
            .arg(flag)
            .output()
            .unwrap()
    };
    assert!(clamdscan_with(&tcp, "--ping=1").status.success());
    let version = String::from_utf8_lossy(&clamdscan_with(&unix, "--version").stdout).into_owned();
    assert!(version.starts_with("hashsieve "), "{version}");
}

/// A plain client: sends `bytes`, half-closes unless told not to, and returns everything the
/// daemon sends until it closes.
fn exchange(address: SocketAddr, bytes: &[u8]) -> String {
    let mut stream = TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    stream.write_all(bytes).unwrap();
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let mut replies = Vec::new();
    stream.read_to_end(&mut replies).unwrap();
    String::from_utf8_lossy(&replies).into_owned()
}

/// Sends `bytes` and returns everything until the peer closes.
fn exchange_raw(address: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    stream.write_all(bytes).unwrap();
    let mut replies = Vec::new();
    stream.read_to_end(&mut replies).unwrap();
    replies
}

fn instream(content: &[u8], chunk: usize) -> Vec<u8> {
    let mut bytes = b"zINSTREAM\0".to_vec();
    for piece in content.chunks(chunk) {
        bytes.extend_from_slice(&(piece.len() as u32).to_be_bytes());
        bytes.extend_from_slice(piece);
    }
    bytes.extend_from_slice(&[0; 4]);
    bytes
}

#[test]
fn replies_sessions_limits_and_bad_clients() {
    let daemon = start();
    let address = daemon.tcp;
    let wee = std::fs::read(sample("wee.jpg")).unwrap();
    let wee_signature = format!("HashSieve.hot.md5.{}", md5sum(&sample("wee.jpg")));

    // The three spellings; replies end as the command did.
    assert_eq!(exchange(address, b"zPING\0"), "PONG\0");
    assert_eq!(exchange(address, b"nPING\n"), "PONG\n");
    assert_eq!(exchange(address, b"PING\n"), "PONG\n");
    // One command a connection outside a session: the second is not answered.
    assert_eq!(exchange(address, b"zPING\0zPING\0"), "PONG\0");
    let commands = exchange(address, b"nVERSIONCOMMANDS\n");
    assert!(commands.starts_with("hashsieve ") && commands.contains("| COMMANDS: "), "{commands}");
    assert!(commands.contains(" INSTREAM ") && commands.ends_with('\n'), "{commands}");

    // Streams: found, clean, chunked any way, and suppressed by the allow-list.
    assert_eq!(exchange(address, &instream(&wee, 8192)), format!("stream: {wee_signature} FOUND\0"));
    assert_eq!(exchange(address, &instream(&wee, 1)), format!("stream: {wee_signature} FOUND\0"));
    assert_eq!(exchange(address, &instream(b"benign", 3)), "stream: OK\0");
    assert_eq!(
        exchange(address, &instream(&std::fs::read(sample("q0122.jpg")).unwrap(), 4096)),
        "stream: OK\0"
    );

    // A session: replies numbered from 1, in order, several streams on one connection.
    let mut session = b"zIDSESSION\0zPING\0".to_vec();
    session.extend(instream(&wee, 1000));
    session.extend(instream(b"nothing listed", 5));
    session.extend(b"zSTATS\0zEND\0");
    let replies = exchange(address, &session);
    let replies: Vec<&str> = replies.split_terminator('\0').collect();
    assert_eq!(replies[0], "1: PONG");
    assert_eq!(replies[1], format!("2: stream: {wee_signature} FOUND"));
    assert_eq!(replies[2], "3: stream: OK");
    assert!(replies[3].starts_with("4: POOLS: 1\n") && replies[3].ends_with("\nEND"), "{:?}", replies[3]);
    assert_eq!(replies.len(), 4);

    // clamd's refusals.
    assert_eq!(exchange(address, b"zHELLO\0"), "UNKNOWN COMMAND\0");
    assert_eq!(exchange(address, b"zEND\0"), "UNKNOWN COMMAND\0");
    assert_eq!(exchange(address, b"INSTREAM\n"), "UNKNOWN COMMAND\n", "not an old-style command");
    assert_eq!(exchange(address, b"zSHUTDOWN\0"), "COMMAND UNAVAILABLE\0");
    assert_eq!(exchange(address, b"zSCAN /etc\0"), "COMMAND UNAVAILABLE\0", "no path scans over TCP");
    assert_eq!(exchange(address, b"zFILDES\0\0"), "No file descriptor received. ERROR\0");
    assert_eq!(
        exchange(address, b"zIDSESSION\0PING\n"),
        "1: Only nCMDS\\n and zCMDS\\0 are accepted inside IDSESSION. ERROR\0"
    );
    assert_eq!(exchange(address, b"zIDSESSION\0zRELOAD\0"), "1: Command invalid inside IDSESSION. ERROR\0");

    // Limits: a stream one byte too long, in one chunk or many; a chunk length that lies.
    let too_long = vec![7u8; MAX_STREAM + 1];
    assert_eq!(exchange(address, &instream(&too_long, 65536)), "INSTREAM size limit exceeded. ERROR\0");
    assert_eq!(
        exchange(address, &instream(&too_long, MAX_STREAM + 1)),
        "INSTREAM size limit exceeded. ERROR\0"
    );
    let mut lying = b"zINSTREAM\0".to_vec();
    lying.extend_from_slice(&u32::MAX.to_be_bytes());
    assert_eq!(exchange(address, &lying), "INSTREAM size limit exceeded. ERROR\0");
    let just_fits = instream(&vec![7u8; MAX_STREAM], 65536);
    assert_eq!(exchange(address, &just_fits), "stream: OK\0");

    // Garbage: no delimiter for ever, binary noise, a stream cut short.
    assert_eq!(exchange(address, &vec![b'z'; 20_000]), "command longer than 8192 bytes. ERROR\n");
    let noise: Vec<u8> = (0..5000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let answer = exchange(address, &noise);
    assert!(answer.len() < 200, "{answer:?}");
    let mut cut = instream(&wee, 1000);
    cut.truncate(cut.len() / 2);
    assert_eq!(exchange(address, &cut), "", "a stream cut short gets no verdict");

    // A client that sends nothing is dropped after the command deadline (one second here).
    let started = Instant::now();
    let mut silent = TcpStream::connect(address).unwrap();
    silent.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buffer = [0u8; 16];
    assert_eq!(silent.read(&mut buffer).unwrap(), 0, "closed, not answered");
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    // An idle session is dropped after the idle timeout (two seconds here).
    let mut idle = TcpStream::connect(address).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    idle.write_all(b"zIDSESSION\0zPING\0").unwrap();
    let mut replies = Vec::new();
    idle.read_to_end(&mut replies).unwrap();
    assert_eq!(replies, b"1: PONG\0");

    // Still serving after all that.
    assert_eq!(exchange(address, b"zPING\0"), "PONG\0");

    // The metrics saw it: three oversize streams refused; `wee.jpg` matched three times, and
    // `q0122.jpg` once, suppressed by the allow-list.
    let metrics = String::from_utf8_lossy(&exchange_raw(
        daemon.http,
        b"GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    ))
    .into_owned();
    let sample = |line: &str| {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(line))
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|| panic!("{line} in {metrics}"))
    };
    assert_eq!(sample("hashsieve_rejected_total{protocol=\"clamd\",reason=\"too_large\"}"), "3");
    assert_eq!(sample("hashsieve_matches_total{protocol=\"clamd\",list=\"hot\",suppressed=\"false\"}"), "3");
    assert_eq!(sample("hashsieve_matches_total{protocol=\"clamd\",list=\"hot\",suppressed=\"true\"}"), "1");
}

#[test]
fn reload_swaps_in_changes_made_by_another_process() {
    use hashsieve_core::index::dir::DirOptions;
    use hashsieve_core::matcher::Matcher;

    let mut daemon = start();
    let content = b"content listed while the daemon runs";
    let digest = {
        let path = daemon.temp.path().join("content");
        std::fs::write(&path, content).unwrap();
        md5sum(&path)
    };
    assert_eq!(exchange(daemon.tcp, &instream(content, 7)), "stream: OK\0");

    let (writer, _) = Matcher::open_dir(&daemon.index, DirOptions::default()).unwrap();
    let mut entry = ImportedEntry::new(HashKind::Md5, hex::decode(&digest).unwrap());
    entry.id = Some("late-addition".into());
    writer.add("hot", vec![entry], None).unwrap();
    // This daemon only reloads when asked (reload_check_ms = 0).
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(exchange(daemon.tcp, &instream(content, 7)), "stream: OK\0");
    assert_eq!(exchange(daemon.tcp, b"zRELOAD\0"), "RELOADING\0");
    let started = Instant::now();
    loop {
        let answer = exchange(daemon.tcp, &instream(content, 7));
        if answer == "stream: HashSieve.hot.md5.late-addition FOUND\0" {
            break;
        }
        assert_eq!(answer, "stream: OK\0");
        assert!(started.elapsed() < Duration::from_secs(10), "RELOAD never took effect");
        std::thread::sleep(Duration::from_millis(20));
    }
    let version = exchange(daemon.tcp, b"zVERSION\0");
    assert_eq!(version, format!("hashsieve {}/1\0", env!("CARGO_PKG_VERSION")));

    // SIGTERM: the daemon exits cleanly and takes its socket with it.
    daemon.process.terminate();
    let status = daemon.process.child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert!(!daemon.unix.exists(), "the socket is removed at exit");
}

/// Starts an `INSTREAM` and sends the first half of `content`; the rest is sent by `finish`.
fn half_stream(address: SocketAddr, content: &[u8]) -> (TcpStream, Vec<u8>) {
    let mut stream = TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let whole = instream(content, 1000);
    let half = whole.len() / 2;
    stream.write_all(&whole[..half]).unwrap();
    (stream, whole[half..].to_vec())
}

fn finish(mut stream: TcpStream, rest: &[u8]) -> String {
    stream.write_all(rest).unwrap();
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).unwrap();
    String::from_utf8_lossy(&reply).into_owned()
}

#[test]
fn a_stream_still_arriving_holds_no_slot_and_shutdown_finishes_scans() {
    // One hashing slot, and a two-second deadline for a stream to arrive and be hashed.
    let mut daemon = start_with("max_in_flight = 1\nrequest_timeout_secs = 2");
    let wee = std::fs::read(sample("wee.jpg")).unwrap();
    let found = format!("stream: HashSieve.hot.md5.{} FOUND\0", md5sum(&sample("wee.jpg")));

    // A stream that is still arriving holds no hashing slot: another is answered meanwhile.
    let (first, rest) = half_stream(daemon.tcp, &wee);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(exchange(daemon.tcp, &instream(&wee, 4096)), found);
    assert_eq!(finish(first, &rest), found);

    // A stream that does not arrive within the deadline is cut off with an error reply.
    let (mut holder, _) = half_stream(daemon.tcp, &wee);
    let started = Instant::now();
    let mut reply = Vec::new();
    holder.read_to_end(&mut reply).unwrap();
    assert_eq!(reply, b"stream: Time limit reached. ERROR\0");
    assert!(started.elapsed() < Duration::from_secs(4), "{:?}", started.elapsed());

    // SIGTERM while a stream is arriving: no new connections, but that scan is finished and
    // answered before the daemon exits.
    let (last, rest) = half_stream(daemon.tcp, &wee);
    std::thread::sleep(Duration::from_millis(100));
    daemon.process.terminate();
    std::thread::sleep(Duration::from_millis(300));
    assert!(TcpStream::connect(daemon.tcp).is_err(), "no longer accepting");
    assert_eq!(finish(last, &rest), found);
    let status = daemon.process.child.wait().unwrap();
    assert!(status.success(), "{status:?}");
}
