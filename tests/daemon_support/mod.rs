//! What the daemon's end-to-end tests share: the sample images, the reference digest, the
//! daemon's process, and piping text through a reference tool.

// Each test file uses its own part of this.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
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
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../samples/images").join(name)
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
        let mut child = Command::new(env!("CARGO_BIN_EXE_hashsieved"))
            .args(["--config", config.to_str().unwrap()])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
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

/// A redis-server of the test's own, without persistence; killed when dropped.
pub struct RedisServer {
    child: Child,
    pub url: String,
}

impl RedisServer {
    pub fn start() -> RedisServer {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server runs (Debian package redis-server; .ci/run installs it)");
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
