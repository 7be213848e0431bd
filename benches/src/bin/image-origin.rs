//! A web origin for the proxy figures (`benches/compare/icap.sh`): serves the files of a
//! directory over HTTP/1.1 with keep-alive, optionally sending each body the way TCP slow
//! start sends it from a server `--rtt-ms` away — a first flight of ten 1,460-byte segments,
//! then a flight twice as large each round trip — so that a proxy in front of it sees the
//! arrival pattern of a real origin rather than of memory.
//!
//! ```text
//! image-origin DIR [--rtt-ms N]      # prints "listening on 127.0.0.1:PORT"
//! ```

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Bytes in TCP's initial window (RFC 6928: ten segments).
const INITIAL_FLIGHT: usize = 10 * 1460;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = args.first().expect("usage: image-origin DIR [--rtt-ms N]");
    let rtt = match args.get(1).map(String::as_str) {
        Some("--rtt-ms") => Duration::from_millis(args[2].parse().expect("--rtt-ms takes milliseconds")),
        Some(other) => panic!("unknown argument {other}"),
        None => Duration::ZERO,
    };
    let mut files = HashMap::new();
    for entry in std::fs::read_dir(dir).expect("a directory") {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        files.insert(name, (content_type(&path), std::fs::read(&path).unwrap()));
    }
    let files = Arc::new(files);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    println!("listening on {}", listener.local_addr().unwrap());
    for stream in listener.incoming().flatten() {
        let files = Arc::clone(&files);
        std::thread::spawn(move || serve(stream, &files, rtt));
    }
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()) {
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("png") => "image/png",
        Some("gif") => "image/gif",
        Some("webp") => "image/webp",
        Some("html") => "text/html",
        _ => "application/octet-stream",
    }
}

/// Answers the requests of one connection until the client closes it.
fn serve(stream: TcpStream, files: &HashMap<String, (&'static str, Vec<u8>)>, rtt: Duration) {
    let _ = stream.set_nodelay(true);
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut stream = stream;
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if line == "\r\n" {
                break;
            }
        }
        let path = request_line.split_whitespace().nth(1).unwrap_or("/");
        let name = path.rsplit('/').next().unwrap_or_default();
        let Some((content_type, body)) = files.get(name) else {
            let _ = stream.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
            continue;
        };
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        if stream.write_all(head.as_bytes()).is_err() {
            return;
        }
        let mut flight = INITIAL_FLIGHT;
        let mut rest = &body[..];
        while !rest.is_empty() {
            let (now, later) = rest.split_at(if rtt.is_zero() { rest.len() } else { flight.min(rest.len()) });
            if stream.write_all(now).is_err() {
                return;
            }
            rest = later;
            flight *= 2;
            if !rest.is_empty() {
                std::thread::sleep(rtt);
            }
        }
    }
}
