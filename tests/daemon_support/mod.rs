//! What the daemon's end-to-end tests share: the sample images, the reference digest, the
//! daemon's process, and piping text through a reference tool.

// Each test file uses its own part of this.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The sample images, by name.
pub const SAMPLE_IMAGES: [&str; 7] = [
    "labelme-q0291.png",
    "misc-small.png",
    "q0122.jpg",
    "q1050.jpg",
    "shrink-a-lot.jpg",
    "square-256x256.jpg",
    "wee.jpg",
];

pub fn sample(name: &str) -> PathBuf {
    hashsieve_testkit::samples().join(name)
}

/// The reference digest: the system's md5sum.
pub fn md5sum(path: &Path) -> String {
    let output = Command::new("md5sum").arg(path).output().expect("md5sum runs");
    String::from_utf8_lossy(&output.stdout).split_whitespace().next().unwrap().to_string()
}

/// Runs `program` with `input` on its standard input.
pub fn pipe(program: &str, args: &[&str], input: &[u8]) -> Output {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| panic!("{program} runs: {err}"));
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

/// The real `hashsieved`, killed when dropped.
pub struct Hashsieved {
    pub child: Child,
    announced: Vec<String>,
}

impl Hashsieved {
    /// Starts it with the configuration file `config` and waits for its `sockets` lines
    /// `listening on …`.
    pub fn start(config: &Path, sockets: usize) -> Hashsieved {
        Hashsieved::start_with(
            Command::new(env!("CARGO_BIN_EXE_hashsieved")).stderr(Stdio::null()),
            config,
            sockets,
        )
    }

    /// The same, from `command` (its log, environment and so on already set).
    pub fn start_with(command: &mut Command, config: &Path, sockets: usize) -> Hashsieved {
        let mut child =
            command.args(["--config", config.to_str().unwrap()]).stdout(Stdio::piped()).spawn().unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let announced: Vec<String> = lines
            .take(sockets)
            .map(|line| line.unwrap().strip_prefix("listening on ").expect("a listening line").to_string())
            .collect();
        assert_eq!(announced.len(), sockets, "the daemon stopped before listening");
        Hashsieved { child, announced }
    }

    /// What follows `prefix` in the address announced with it (`http://`, `clamd tcp://`, …).
    pub fn announced(&self, prefix: &str) -> Option<&str> {
        self.announced.iter().find_map(|line| line.strip_prefix(prefix))
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    }
}

impl Drop for Hashsieved {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A redis-server of the test's own; killed when dropped.
pub struct RedisServer {
    child: Child,
    pub url: String,
}

impl RedisServer {
    /// Without persistence.
    pub fn start() -> RedisServer {
        RedisServer::start_with(&["--save", "", "--appendonly", "no"])
    }

    /// Writing every command to an append-only file in `dir` before answering it.
    pub fn start_persistent(dir: &Path) -> RedisServer {
        let dir = dir.to_str().unwrap();
        RedisServer::start_with(&[
            "--dir",
            dir,
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
        ])
    }

    fn start_with(settings: &[&str]) -> RedisServer {
        let port = hashsieve_testkit::free_port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(settings)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server runs (Debian package redis-server; bash tests/run.sh installs it)");
        let url = format!("redis://127.0.0.1:{port}/");
        let client = redis::Client::open(url.as_str()).unwrap();
        let started = Instant::now();
        while client.get_connection().and_then(|mut c| redis::cmd("PING").query::<String>(&mut c)).is_err() {
            assert!(started.elapsed() < Duration::from_secs(10), "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        RedisServer { child, url }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP response as the tests read it.
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&self.body)))
    }
}

pub fn request(address: SocketAddr, method: &str, path: &str, token: Option<&str>, body: &[u8]) -> Response {
    request_with(address, method, path, token, &[], body)
}

/// A request with extra header lines (`Name: value`).
pub fn request_with(
    address: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    headers: &[&str],
    body: &[u8],
) -> Response {
    let mut stream = TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut extra: String = headers.iter().map(|h| format!("{h}\r\n")).collect();
    if let Some(token) = token {
        extra.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n{extra}Content-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    // A body over the limit may be refused before it is all sent.
    let _ = stream.write_all(body);
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("a complete response head");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.lines();
    let status = lines.next().unwrap().split_whitespace().nth(1).unwrap().parse().unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    Response { status, headers, body: raw[split + 4..].to_vec() }
}

/// A one-route origin serving `body` as a JPEG at any path.
pub fn origin(body: Vec<u8>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap_or(0) > 2 {
                line.clear();
            }
            let mut stream = stream;
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&body);
        }
    });
    address
}

/// The smallest PDQ distance between `a` and any rotation or mirror image of `b`, as the
/// triage store computes them, by the test kit's own Hamming distance.
pub fn pdq_distance(a: &[u8], b: &[u8]) -> u32 {
    let options = hashsieve_triage::Triage::signal_options();
    let pdq = |bytes| hashsieve_core::signals::Signals::from_bytes(bytes, &options).pdq.unwrap();
    hashsieve_testkit::nearest(&pdq(a).hash.0, &pdq(b).dihedral.unwrap().map(|variant| variant.0))
}

/// `bytes` decoded and encoded again as a JPEG of `quality`: the same picture, other bytes.
pub fn reencoded(bytes: &[u8], quality: u8) -> Vec<u8> {
    let image = image::load_from_memory(bytes).unwrap().to_rgb8();
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality).encode_image(&image).unwrap();
    out
}

/// The SHA-256 of a token as the configuration stores it, by the system's sha256sum.
pub fn sha256_hex(text: &str) -> String {
    let output = Command::new("sh")
        .args(["-c", &format!("printf %s '{text}' | sha256sum")])
        .output()
        .expect("sha256sum runs");
    String::from_utf8_lossy(&output.stdout).split_whitespace().next().unwrap().to_string()
}

/// Samples of an OpenMetrics exposition, parsed by the reference parser of Prometheus's own
/// Python client (PyPI `prometheus-client`), which refuses what is not valid OpenMetrics.
pub fn parse_openmetrics(text: &str) -> Vec<(String, BTreeMap<String, String>, f64)> {
    const SCRIPT: &str = "import json, sys\n\
        from prometheus_client.openmetrics.parser import text_string_to_metric_families\n\
        families = text_string_to_metric_families(sys.stdin.read())\n\
        print(json.dumps([[s.name, s.labels, s.value] for f in families for s in f.samples]))\n";
    let output = pipe("python3", &["-c", SCRIPT], text.as_bytes());
    let errors = String::from_utf8_lossy(&output.stderr);
    assert!(
        !errors.contains("ModuleNotFoundError"),
        "the metrics test needs PyPI prometheus-client: pip install prometheus-client (bash tests/run.sh does)"
    );
    assert!(output.status.success(), "not valid OpenMetrics: {errors}\n{text}");
    serde_json::from_slice(&output.stdout).unwrap()
}
