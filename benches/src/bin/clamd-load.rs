//! A load generator for clamd's protocol, the same for clamd and hashsieved, so that the two
//! are measured alike (`benches/compare/daemon.sh`).
//!
//! ```text
//! clamd-load ready ADDR [TIMEOUT_S]                       # wait for PONG; print the seconds waited
//! clamd-load check ADDR DIR LISTED LABEL                  # every file once; count the answers
//! clamd-load scan ADDR DIR LISTED LABEL CONNECTIONS SECONDS
//! ```
//!
//! `scan` reads every file of DIR into memory, then CONNECTIONS threads each loop for SECONDS:
//! connect, `zINSTREAM` one file in 64 KiB chunks, read the reply, check it — `FOUND` for the
//! files named in LISTED (one file name a line), `stream: OK` for the others; anything else is
//! an error, counted and the first few printed — and close, as clamd's clients do (outside a
//! session clamd answers one command a connection). It prints one JSON line: files/s, MB/s,
//! latency percentiles of the answered scans, errors. `check` sends every file exactly once,
//! one at a time, and prints how many replies agreed with LISTED.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

/// The chunk size clamdscan uses too.
const CHUNK: usize = 64 << 10;

/// Sends `command` and reads the reply up to its NUL (or until the daemon closes).
fn exchange(stream: &mut TcpStream, command: &[u8]) -> std::io::Result<String> {
    stream.write_all(command)?;
    let mut reply = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let read = stream.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        reply.extend_from_slice(&buffer[..read]);
        if reply.last() == Some(&0) {
            reply.pop();
            break;
        }
    }
    Ok(String::from_utf8_lossy(&reply).into_owned())
}

/// Waits until `address` answers `zPING` with `PONG`; the seconds it took.
fn ready(address: &str, timeout: Duration) -> Result<f64, String> {
    let started = Instant::now();
    while started.elapsed() < timeout {
        if let Ok(mut stream) = TcpStream::connect(address) {
            // Ready is answering, not accepting: the PONG is what counts.
            let left = timeout.saturating_sub(started.elapsed()).max(Duration::from_millis(10));
            let _ = stream.set_read_timeout(Some(left));
            if exchange(&mut stream, b"zPING\0").is_ok_and(|reply| reply == "PONG") {
                return Ok(started.elapsed().as_secs_f64());
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Err(format!("{address} did not answer PING within {timeout:?}"))
}

/// A test file with its whole `INSTREAM` command prepared, so that building it is not timed.
struct File {
    name: String,
    command: Vec<u8>,
    size: usize,
    listed: bool,
}

impl File {
    fn new(name: String, content: &[u8], listed: bool) -> File {
        let mut command = Vec::with_capacity(content.len() + content.len() / CHUNK * 4 + 20);
        command.extend_from_slice(b"zINSTREAM\0");
        for chunk in content.chunks(CHUNK) {
            command.extend_from_slice(&(chunk.len() as u32).to_be_bytes());
            command.extend_from_slice(chunk);
        }
        command.extend_from_slice(&[0; 4]);
        File { name, command, size: content.len(), listed }
    }

    /// Scans it on a new connection to `address`: the reply, and whether it is the one the
    /// list calls for.
    fn scan(&self, address: &str) -> (std::io::Result<String>, bool) {
        let reply = TcpStream::connect(address).and_then(|mut stream| {
            stream.set_read_timeout(Some(Duration::from_secs(60)))?;
            exchange(&mut stream, &self.command)
        });
        let agrees = match &reply {
            Ok(reply) if self.listed => reply.starts_with("stream: ") && reply.ends_with(" FOUND"),
            Ok(reply) => reply == "stream: OK",
            Err(_) => false,
        };
        (reply, agrees)
    }
}

/// Every file of `dir`, marked listed when `listed` (a file of names) names it, by name.
fn read_files(dir: &Path, listed: &Path) -> Vec<File> {
    let listed: HashSet<String> = std::fs::read_to_string(listed)
        .expect("the list of listed files")
        .lines()
        .map(str::to_string)
        .collect();
    let mut files: Vec<File> = std::fs::read_dir(dir)
        .expect("the files' directory")
        .map(|entry| {
            let entry = entry.expect("a directory entry");
            let name = entry.file_name().to_string_lossy().into_owned();
            let content = std::fs::read(entry.path()).expect("a test file");
            let is_listed = listed.contains(&name);
            File::new(name, &content, is_listed)
        })
        .collect();
    files.sort_by(|a, b| a.name.cmp(&b.name));
    let found = files.iter().filter(|file| file.listed).count();
    assert_eq!(found, listed.len(), "every listed name is a file of {}", dir.display());
    files
}

/// Counts a reply that disagrees with the list; prints the first few.
fn disagreement(errors: &AtomicU64, label: &str, file: &File, reply: &std::io::Result<String>) {
    if errors.fetch_add(1, Ordering::Relaxed) < 5 {
        eprintln!("{label}: {} (listed: {}): {reply:?}", file.name, file.listed);
    }
}

fn check(address: &str, files: &[File], label: &str) {
    let errors = AtomicU64::new(0);
    let (mut found, mut ok) = (0, 0);
    for file in files {
        match file.scan(address) {
            (_, true) if file.listed => found += 1,
            (_, true) => ok += 1,
            (reply, false) => disagreement(&errors, label, file, &reply),
        }
    }
    let row = json!({
        "tool": label, "figure": "check", "files": files.len(),
        "listed": files.iter().filter(|file| file.listed).count(),
        "found": found, "ok": ok, "errors": errors.load(Ordering::Relaxed),
    });
    println!("{row}");
}

/// The `p`-quantile of `sorted` (nearest rank).
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn scan(address: &str, files: Vec<File>, label: &str, connections: usize, seconds: f64) {
    let files = Arc::new(files);
    let (bytes, errors) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(seconds);
    let workers: Vec<_> = (0..connections)
        .map(|worker| {
            let (files, bytes, errors) = (Arc::clone(&files), Arc::clone(&bytes), Arc::clone(&errors));
            let (address, label) = (address.to_string(), label.to_string());
            std::thread::spawn(move || {
                let mut latencies = Vec::new();
                // Each connection starts at a different file, so that all of them are sent.
                let mut next = worker * files.len() / connections;
                while Instant::now() < deadline {
                    let file = &files[next % files.len()];
                    next += 1;
                    let began = Instant::now();
                    match file.scan(&address) {
                        (_, true) => {
                            latencies.push(began.elapsed().as_secs_f64() * 1e3);
                            bytes.fetch_add(file.size as u64, Ordering::Relaxed);
                        }
                        (reply, false) => disagreement(&errors, &label, file, &reply),
                    }
                }
                latencies
            })
        })
        .collect();
    let mut latencies: Vec<f64> =
        workers.into_iter().flat_map(|worker| worker.join().expect("a load thread")).collect();
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    let row = json!({
        "tool": label, "figure": "instream", "connections": connections, "files": latencies.len(),
        "seconds": elapsed, "files_per_s": latencies.len() as f64 / elapsed,
        "mb_per_s": bytes.load(Ordering::Relaxed) as f64 / 1e6 / elapsed,
        "p50_ms": percentile(&latencies, 0.5), "p99_ms": percentile(&latencies, 0.99),
        "errors": errors.load(Ordering::Relaxed),
    });
    println!("{row}");
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["ready", address, rest @ ..] => {
            let timeout = rest.first().map_or(300.0, |s| s.parse().expect("seconds"));
            match ready(address, Duration::from_secs_f64(timeout)) {
                Ok(seconds) => println!("{seconds:.6}"),
                Err(err) => {
                    eprintln!("{err}");
                    std::process::exit(1);
                }
            }
        }
        ["check", address, dir, listed, label] => {
            check(address, &read_files(Path::new(dir), Path::new(listed)), label);
        }
        ["scan", address, dir, listed, label, connections, seconds] => scan(
            address,
            read_files(Path::new(dir), Path::new(listed)),
            label,
            connections.parse().expect("connections"),
            seconds.parse().expect("seconds"),
        ),
        _ => {
            eprintln!(
                "usage: clamd-load ready ADDR [TIMEOUT_S] | check ADDR DIR LISTED LABEL \
                 | scan ADDR DIR LISTED LABEL CONNECTIONS SECONDS"
            );
            std::process::exit(2);
        }
    }
}
