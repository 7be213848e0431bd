//! A web server on loopback that stands for a hosting provider: it serves a body at every path
//! until told otherwise, then answers a status, serves other content, or stops listening, and
//! counts the requests it gets and how many were in progress at once, and keeps what was
//! posted to it (it stands for a notice receiver too).

use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// What the origin answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Behaviour {
    /// 200 with this body, as `image/jpeg`.
    Serve(Vec<u8>),
    /// This status and an empty body.
    Status(u16),
}

/// A running origin; it stops listening when dropped or [`Origin::close`]d.
#[derive(Debug)]
pub struct Origin {
    address: SocketAddr,
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    behaviour: Mutex<Behaviour>,
    delay: Mutex<Duration>,
    requests: AtomicUsize,
    in_progress: AtomicUsize,
    most_at_once: AtomicUsize,
    closed: AtomicBool,
    /// Each request's line and body, in order.
    received: Mutex<Vec<(String, Vec<u8>)>>,
}

impl Origin {
    /// Starts an origin serving `body` on a free loopback port.
    pub fn serving(body: Vec<u8>) -> Origin {
        Origin::start(Behaviour::Serve(body))
    }

    /// Starts an origin answering as `behaviour` says.
    pub fn start(behaviour: Behaviour) -> Origin {
        Origin::start_on(Ipv4Addr::LOCALHOST.into(), behaviour)
    }

    /// Starts an origin on a free port of `ip`, answering as `behaviour` says: on Linux every
    /// address of 127.0.0.0/8 is loopback, so origins on 127.0.1.1, 127.0.2.1 … stand for
    /// hosting providers in different networks.
    pub fn start_on(ip: IpAddr, behaviour: Behaviour) -> Origin {
        let listener = TcpListener::bind((ip, 0)).expect("a loopback port");
        let address = listener.local_addr().expect("its address");
        let shared = Arc::new(Shared {
            behaviour: Mutex::new(behaviour),
            delay: Mutex::new(Duration::ZERO),
            requests: AtomicUsize::new(0),
            in_progress: AtomicUsize::new(0),
            most_at_once: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            received: Mutex::new(Vec::new()),
        });
        let serving = Arc::clone(&shared);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if serving.closed.load(Ordering::SeqCst) {
                    // Dropping the listener here makes later connections fail at once.
                    break;
                }
                let Ok(stream) = stream else { continue };
                let shared = Arc::clone(&serving);
                std::thread::spawn(move || shared.answer(stream));
            }
        });
        Origin { address, shared }
    }

    /// Where it listens.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// A URL on it.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}/{}", self.address, path.trim_start_matches('/'))
    }

    /// Answers as `behaviour` from now on.
    pub fn set(&self, behaviour: Behaviour) {
        *self.shared.behaviour.lock().unwrap_or_else(PoisonError::into_inner) = behaviour;
    }

    /// Waits this long before each answer (to see how many requests a client keeps open).
    pub fn delay(&self, delay: Duration) {
        *self.shared.delay.lock().unwrap_or_else(PoisonError::into_inner) = delay;
    }

    /// Stops listening: connections are refused from now on.
    pub fn close(&self) {
        if !self.shared.closed.swap(true, Ordering::SeqCst) {
            // Wake the accept loop so that it sees the flag and drops the listener.
            let _ = TcpStream::connect_timeout(&self.address, Duration::from_secs(1));
        }
    }

    /// Requests answered or being answered so far.
    pub fn requests(&self) -> usize {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// Each request so far: its request line (`POST /path HTTP/1.1`) and body.
    pub fn received(&self) -> Vec<(String, Vec<u8>)> {
        self.shared.received.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// The most requests it was answering at once.
    pub fn most_at_once(&self) -> usize {
        self.shared.most_at_once.load(Ordering::SeqCst)
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.close();
    }
}

impl Shared {
    fn answer(&self, stream: TcpStream) {
        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
        let Ok(reading) = stream.try_clone() else { return };
        let mut reader = BufReader::new(reading);
        let mut request_line = String::new();
        let _ = reader.read_line(&mut request_line);
        let mut length = 0;
        let mut line = String::new();
        while reader.read_line(&mut line).unwrap_or(0) > 2 {
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap_or(0);
            }
            line.clear();
        }
        let mut body = vec![0; length.min(16 << 20)];
        let _ = std::io::Read::read_exact(&mut reader, &mut body);
        let request_line = request_line.trim_end().to_string();
        self.received.lock().unwrap_or_else(PoisonError::into_inner).push((request_line, body));
        self.requests.fetch_add(1, Ordering::SeqCst);
        let now = self.in_progress.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_at_once.fetch_max(now, Ordering::SeqCst);
        let delay = *self.delay.lock().unwrap_or_else(PoisonError::into_inner);
        std::thread::sleep(delay);
        let behaviour = self.behaviour.lock().unwrap_or_else(PoisonError::into_inner).clone();
        let (head, body) = match behaviour {
            Behaviour::Serve(body) => (
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                ),
                body,
            ),
            Behaviour::Status(status) => {
                (format!("HTTP/1.1 {status} Status\r\nContent-Length: 0\r\n\r\n"), Vec::new())
            }
        };
        // Counted out before the answer is sent, so that a client's next request, which may
        // follow the moment it has this answer, never sees this one as still in progress.
        self.in_progress.fetch_sub(1, Ordering::SeqCst);
        let mut stream = stream;
        let _ = stream.write_all(head.as_bytes());
        let _ = stream.write_all(&body);
    }
}
