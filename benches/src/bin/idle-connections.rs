//! Holds many connections open to a daemon, idle or as a slowloris attacker, so that
//! `benches/compare/daemon.sh` can read the daemon's memory meanwhile and check that it still
//! answers others.
//!
//! ```text
//! idle-connections MODE ADDR COUNT SECONDS
//! ```
//!
//! MODE is `idle` (connect, send nothing), `slowloris` (send an HTTP request head one byte a
//! second on every connection, never finishing it) or `clamd-session` (open a clamd
//! `zIDSESSION` and send nothing more, as a client keeping a session for later scans does).
//! It raises its own open-files limit, prints `{"open": N, ...}` once all are connected, then
//! after SECONDS `{"still_open": N, ...}` — the connections the daemon has not closed — and
//! exits, closing them.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use rustix::process::{Resource, getrlimit, setrlimit};
use serde_json::json;

/// Raises the soft open-files limit to the hard one: the default soft limit (often 1024) is
/// far below the connections held.
fn raise_open_files_limit(needed: usize) {
    let mut limit = getrlimit(Resource::Nofile);
    limit.current = limit.maximum;
    setrlimit(Resource::Nofile, limit).expect("raise the open-files limit");
    if let Some(maximum) = limit.maximum.filter(|&maximum| maximum < needed as u64 + 16) {
        eprintln!(
            "idle-connections: the hard open-files limit {maximum} is below {needed}; raise ulimit -Hn"
        );
        std::process::exit(1);
    }
}

/// Whether the daemon has left `stream` open: nothing to read yet, no end of file, no reset.
fn still_open(mut stream: &TcpStream) -> bool {
    stream.set_nonblocking(true).expect("a non-blocking socket");
    let mut buffer = [0u8; 256];
    matches!(stream.read(&mut buffer), Err(err) if err.kind() == ErrorKind::WouldBlock)
}

/// Opens `count` connections to `address`, each sent `opening`, pausing a millisecond every
/// few: hashsieved listens with a backlog of 128 (mio's default), and when a burst overruns it
/// the kernel drops the SYN, whose retry comes a second or more later. Unpaced, 10,000
/// connections took 20 to 50 s to open on 2 cores, long enough for the first ones to reach the
/// daemon's deadlines before the last were open; paced, about 2 s.
fn open(address: &str, count: usize, opening: &[u8]) -> Vec<TcpStream> {
    const STEP: usize = 8;
    (0..count)
        .map(|i| {
            if i % STEP == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
            let mut stream =
                TcpStream::connect(address).unwrap_or_else(|err| panic!("connection {i}: {err}"));
            stream.write_all(opening).unwrap_or_else(|err| panic!("connection {i}: {err}"));
            stream
        })
        .collect()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [mode, address, count, seconds] = args.as_slice() else {
        eprintln!("usage: idle-connections idle|slowloris|clamd-session ADDR COUNT SECONDS");
        std::process::exit(2);
    };
    let count: usize = count.parse().expect("count");
    let hold = Duration::from_secs_f64(seconds.parse().expect("seconds"));
    let opening: &[u8] = match mode.as_str() {
        "idle" | "slowloris" => b"",
        "clamd-session" => b"zIDSESSION\0",
        other => panic!("unknown mode {other}"),
    };
    raise_open_files_limit(count);
    let started = Instant::now();
    let mut streams = open(address, count, opening);
    let row = json!({"mode": mode, "open": streams.len(), "connect_s": started.elapsed().as_secs_f64()});
    println!("{row}");
    // A request head a byte a second, then a header that never ends: the daemon's header
    // deadline, not the length of the head, is what must cut it off.
    let mut slowloris = b"POST /v1/match/hashes HTTP/1.1\r\nHost: slow\r\nX-Slow: "
        .iter()
        .copied()
        .chain(std::iter::repeat(b'x'));
    let held = Instant::now();
    while held.elapsed() < hold {
        std::thread::sleep(Duration::from_secs(1).min(hold.saturating_sub(held.elapsed())));
        if mode == "slowloris" {
            let byte = [slowloris.next().expect("an endless head")];
            for stream in &mut streams {
                // A write to a connection the daemon closed fails; `still_open` counts those.
                let _ = stream.write_all(&byte);
            }
        }
    }
    let open = streams.iter().filter(|stream| still_open(stream)).count();
    let row = json!({"mode": mode, "held_s": held.elapsed().as_secs_f64(), "still_open": open});
    println!("{row}");
}
