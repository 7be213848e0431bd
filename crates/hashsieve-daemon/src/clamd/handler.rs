//! What each clamd command does, and a connection's life: one command and close, or an
//! `IDSESSION` of numbered commands until `END`, an error, the idle timeout or shutdown.

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hashsieve_core::matcher::{Match, Matcher, Outcome, Verdict};
use hashsieve_core::signals::Signals;
use rayon::prelude::*;
use tokio::sync::{Semaphore, SemaphorePermit, watch};

use super::command::{Command, NAMES, PathScan};
use super::connection::{CommandError, Connection, StreamError, Transport};
use super::frame::Delimiter;
use crate::http::AppState;
use crate::metrics::Metrics;

/// What every clamd connection shares.
#[derive(Debug)]
pub struct Clamd {
    /// The index, limits and hashing permits, shared with the HTTP API.
    pub state: Arc<AppState>,
    /// Largest `INSTREAM` body or `FILDES` file.
    pub max_stream_bytes: u64,
    /// How long a session may sit between commands.
    pub idle_timeout: Duration,
    /// How long a client may take to send a command.
    pub command_timeout: Duration,
    /// How long reading a stream and hashing it may take.
    pub request_timeout: Duration,
    /// Whether the Unix socket's clients may ask for path scans.
    pub path_scans: bool,
    /// Connections served at once, per listener.
    pub max_connections: usize,
    /// Scans waiting for a hashing permit: `STATS`' queue.
    pub waiting: AtomicUsize,
}

/// Why a connection ends after a reply.
enum Next {
    /// Read the next command (inside a session).
    Continue,
    /// Close: outside a session every command is the last; errors end sessions too.
    Close,
}

/// Serves one connection until it ends. `stop` turns true when the daemon shuts down: a
/// connection waiting for a command then closes, one in the middle of a scan finishes it.
pub async fn serve_connection<T: Transport>(
    mut connection: Connection<T>,
    clamd: Arc<Clamd>,
    client: String,
    connections: Arc<Semaphore>,
    mut stop: watch::Receiver<bool>,
) {
    let mut session: Option<u32> = None;
    // Inside a session, errors about a command's spelling end as the session's commands do.
    let mut session_delimiter = Delimiter::Nul;
    loop {
        let wait = if session.is_some() { clamd.idle_timeout } else { clamd.command_timeout };
        let read = tokio::select! {
            read = tokio::time::timeout(wait, connection.read_command()) => read,
            _ = stop.wait_for(|stopped| *stopped) => break,
        };
        let (text, delimiter) = match read {
            Ok(Ok(Some(command))) => command,
            Ok(Ok(None)) => break,
            Err(_) => {
                tracing::debug!(%client, "clamd: no command within the timeout; closing");
                break;
            }
            Ok(Err(CommandError::Frame(err))) => {
                clamd.state.metrics.rejected("clamd", "bad_request");
                let _ = connection.reply(None, &format!("{err}. ERROR"), Delimiter::Newline).await;
                break;
            }
            Ok(Err(err)) => {
                tracing::debug!(%client, error = %err, "clamd: connection ended");
                break;
            }
        };
        let id = session;
        let started = Instant::now();
        let command = Command::parse(&text, delimiter);
        let name = command.as_ref().map_or("other", Command::name);
        let metrics = &clamd.state.metrics;
        let next = match command {
            None => {
                metrics.rejected("clamd", "bad_request");
                let _ = connection.reply(id, "UNKNOWN COMMAND", delimiter).await;
                Next::Close
            }
            Some(_) if session.is_some() && delimiter == Delimiter::OldStyle => {
                let text = "Only nCMDS\\n and zCMDS\\0 are accepted inside IDSESSION. ERROR";
                metrics.rejected("clamd", "bad_request");
                let _ = connection.reply(id, text, session_delimiter).await;
                Next::Close
            }
            Some(command) if session.is_some() && !command.allowed_in_session() => {
                metrics.rejected("clamd", "bad_request");
                let _ = connection.reply(id, "Command invalid inside IDSESSION. ERROR", delimiter).await;
                Next::Close
            }
            Some(Command::IdSession) => {
                // Numbered from 1: the count goes up after every command, this one included.
                session = Some(0);
                session_delimiter = delimiter;
                Next::Continue
            }
            Some(Command::End) if session.is_none() => {
                metrics.rejected("clamd", "bad_request");
                let _ = connection.reply(None, "UNKNOWN COMMAND", delimiter).await;
                Next::Close
            }
            Some(Command::End) => Next::Close,
            Some(command) => {
                let context = Reply { id, delimiter, client: &client };
                let next = execute(&clamd, &connections, &mut connection, command, context).await;
                if connection.take_unclaimed_fds() > 0 {
                    metrics.rejected("clamd", "bad_request");
                    let text = "PROTOCOL ERROR: ancillary data sent without FILDES. ERROR";
                    let _ = connection.reply(id, text, delimiter).await;
                    Next::Close
                } else {
                    next
                }
            }
        };
        metrics.request("clamd", name, connection.take_status(), started.elapsed());
        match (next, &mut session) {
            (Next::Continue, Some(id)) => *id += 1,
            // Outside a session, every command is the connection's last.
            (Next::Continue, None) | (Next::Close, _) => break,
        }
    }
    connection.shutdown().await;
}

/// How replies to one command are addressed.
#[derive(Clone, Copy)]
struct Reply<'a> {
    id: Option<u32>,
    delimiter: Delimiter,
    client: &'a str,
}

async fn execute<T: Transport>(
    clamd: &Clamd,
    connections: &Semaphore,
    connection: &mut Connection<T>,
    command: Command,
    reply: Reply<'_>,
) -> Next {
    let Reply { id, delimiter, .. } = reply;
    let sent = match command {
        Command::Ping => connection.reply(id, "PONG", delimiter).await,
        Command::Version => connection.reply(id, &version(clamd), delimiter).await,
        Command::VersionCommands => {
            let text = format!("{}| COMMANDS: {}", version(clamd), NAMES.join(" "));
            connection.reply(id, &text, delimiter).await
        }
        Command::Reload => {
            clamd.state.reload.notify_one();
            tracing::info!(client = reply.client, "clamd: RELOAD");
            let _ = connection.reply(id, "RELOADING", delimiter).await;
            return Next::Close;
        }
        Command::Shutdown => {
            let _ = connection.reply(id, "COMMAND UNAVAILABLE", delimiter).await;
            return Next::Close;
        }
        Command::Stats => connection.reply(id, &stats(clamd, connections), delimiter).await,
        Command::Instream => return instream(clamd, connection, reply).await,
        Command::Fildes => return fildes(clamd, connection, reply).await,
        Command::Path(mode, path) => return path_scan(clamd, connection, mode, path, reply).await,
        Command::IdSession | Command::End => unreachable!("handled by the connection loop"),
    };
    if sent.is_ok() { Next::Continue } else { Next::Close }
}

fn version(clamd: &Clamd) -> String {
    let generation = clamd.state.matcher.load().live().generation();
    format!("hashsieve {}/{generation}", env!("CARGO_PKG_VERSION"))
}

/// clamd's `STATS` layout, which clamdtop reads: the "threads" are hashing slots.
fn stats(clamd: &Clamd, connections: &Semaphore) -> String {
    let limits = &clamd.state.limits;
    let hashing = limits.max_in_flight - clamd.state.hashing.available_permits();
    let open = clamd.max_connections - connections.available_permits();
    let resident_mb = crate::metrics::resident_bytes() as f64 / (1 << 20) as f64;
    format!(
        "POOLS: 1\n\nSTATE: VALID PRIMARY\nTHREADS: live {hashing}  idle {idle} max {max} idle-timeout {timeout}\n\
         QUEUE: {queued} items\nCONNECTIONS: {open} max {max_connections}\n\n\
         MEMSTATS: heap N/A mmap N/A used N/A free N/A releasable N/A pools 1 pools_used {resident_mb:.3}M \
         pools_total {resident_mb:.3}M\nEND",
        idle = limits.max_in_flight - hashing,
        max = limits.max_in_flight,
        timeout = clamd.idle_timeout.as_secs(),
        queued = clamd.waiting.load(Ordering::Relaxed),
        max_connections = clamd.max_connections,
    )
}

/// Waits for a hashing slot until `deadline`; clamd's clients do not retry, so the scan queues
/// rather than being refused at once as an HTTP request is.
async fn hashing_permit(clamd: &Clamd, deadline: Instant) -> Option<SemaphorePermit<'_>> {
    clamd.waiting.fetch_add(1, Ordering::Relaxed);
    let permit = tokio::time::timeout_at(deadline.into(), clamd.state.hashing.acquire())
        .await
        .ok()
        .and_then(Result::ok);
    clamd.waiting.fetch_sub(1, Ordering::Relaxed);
    permit
}

async fn instream<T: Transport>(clamd: &Clamd, connection: &mut Connection<T>, reply: Reply<'_>) -> Next {
    let Reply { id, delimiter, client } = reply;
    let deadline = Instant::now() + clamd.request_timeout;
    let Some(permit) = hashing_permit(clamd, deadline).await else {
        let _ =
            connection.reply(id, "stream: Busy: too much content is being hashed. ERROR", delimiter).await;
        return Next::Close;
    };
    let read = tokio::time::timeout_at(deadline.into(), connection.read_stream(clamd.max_stream_bytes)).await;
    let content = match read {
        Ok(Ok(content)) => content,
        Ok(Err(StreamError::TooLong)) => {
            clamd.state.metrics.rejected("clamd", "too_large");
            let _ = connection.reply(id, "INSTREAM size limit exceeded. ERROR", delimiter).await;
            return Next::Close;
        }
        Ok(Err(StreamError::Io(err))) => {
            tracing::debug!(client, error = %err, "clamd: stream not finished");
            return Next::Close;
        }
        Err(_) => {
            clamd.state.metrics.rejected("clamd", "timeout");
            let _ = connection.reply(id, "stream: Time limit reached. ERROR", delimiter).await;
            return Next::Close;
        }
    };
    let matcher = clamd.state.matcher.load_full();
    let checked = tokio::task::spawn_blocking(move || {
        let signals = Signals::from_bytes(&content, &matcher.signal_options());
        (matcher.check_signals(&signals), signals)
    })
    .await;
    drop(permit);
    let text = match checked {
        Ok((verdict, signals)) => {
            clamd.state.metrics.matched("clamd", &verdict);
            audit(client, "INSTREAM", &verdict, &signals);
            found_or_ok("stream", &verdict)
        }
        Err(_) => "stream: Internal error. ERROR".to_string(),
    };
    match connection.reply(id, &text, delimiter).await {
        Ok(()) => Next::Continue,
        Err(_) => Next::Close,
    }
}

async fn fildes<T: Transport>(clamd: &Clamd, connection: &mut Connection<T>, reply: Reply<'_>) -> Next {
    let Reply { id, delimiter, client } = reply;
    let Ok(Some(fd)) = connection.read_passed_fd().await else {
        clamd.state.metrics.rejected("clamd", "bad_request");
        let _ = connection.reply(id, "No file descriptor received. ERROR", delimiter).await;
        return Next::Close;
    };
    let name = format!("fd[{}]", fd.as_raw_fd());
    let deadline = Instant::now() + clamd.request_timeout;
    let Some(permit) = hashing_permit(clamd, deadline).await else {
        clamd.state.metrics.rejected("clamd", "busy");
        let text = format!("{name}: Busy: too much content is being hashed. ERROR");
        let _ = connection.reply(id, &text, delimiter).await;
        return Next::Close;
    };
    let matcher = clamd.state.matcher.load_full();
    let limit = clamd.max_stream_bytes;
    let checked = tokio::task::spawn_blocking(move || check_file(fd, limit, &matcher)).await;
    drop(permit);
    let text = match checked {
        Ok(Ok((verdict, signals))) => {
            clamd.state.metrics.matched("clamd", &verdict);
            audit(client, "FILDES", &verdict, &signals);
            found_or_ok(&name, &verdict)
        }
        Ok(Err(reason)) => format!("{name}: {reason} ERROR"),
        Err(_) => format!("{name}: Internal error. ERROR"),
    };
    match connection.reply(id, &text, delimiter).await {
        Ok(()) => Next::Continue,
        Err(_) => Next::Close,
    }
}

/// Hashes a passed file: a regular file within the size limit (a pipe or a device could be
/// endless).
fn check_file(fd: OwnedFd, limit: u64, matcher: &Matcher) -> Result<(Verdict, Signals), String> {
    let file = File::from(fd);
    let meta = file.metadata().map_err(|err| format!("{err}."))?;
    if !meta.is_file() {
        return Err("Not a regular file.".into());
    }
    if meta.len() > limit {
        return Err("Size limit exceeded.".into());
    }
    // The file may grow while it is read: read no more than the limit allows.
    let signals =
        Signals::from_reader(file.take(limit), &matcher.signal_options()).map_err(|err| format!("{err}."))?;
    Ok((matcher.check_signals(&signals), signals))
}

async fn path_scan<T: Transport>(
    clamd: &Clamd,
    connection: &mut Connection<T>,
    mode: PathScan,
    root: PathBuf,
    reply: Reply<'_>,
) -> Next {
    let Reply { id, delimiter, client } = reply;
    if !(clamd.path_scans && connection.is_local()) {
        let _ = connection.reply(id, "COMMAND UNAVAILABLE", delimiter).await;
        return Next::Close;
    }
    let Some(permit) = hashing_permit(clamd, Instant::now() + clamd.request_timeout).await else {
        clamd.state.metrics.rejected("clamd", "busy");
        let text = format!("{}: Busy: too much content is being hashed. ERROR", root.display());
        let _ = connection.reply(id, &text, delimiter).await;
        return Next::Close;
    };
    let matcher = clamd.state.matcher.load_full();
    let client = client.to_string();
    let metrics = Arc::clone(&clamd.state.metrics);
    let lines =
        tokio::task::spawn_blocking(move || scan_tree(&root, mode, &matcher, &metrics, &client)).await;
    drop(permit);
    let lines = lines.unwrap_or_else(|_| vec!["Internal error. ERROR".to_string()]);
    for line in lines {
        if connection.reply(id, &line, delimiter).await.is_err() {
            return Next::Close;
        }
    }
    Next::Continue
}

/// clamd's replies to a path scan: a line per match or error, then `PATH: OK` when nothing
/// matched and not everything failed.
fn scan_tree(root: &Path, mode: PathScan, matcher: &Matcher, metrics: &Metrics, client: &str) -> Vec<String> {
    if !root.is_absolute() {
        return vec![format!("{}: Not an absolute path. ERROR", root.display())];
    }
    let mut lines = Vec::new();
    let mut files = Vec::new();
    for entry in walkdir::WalkDir::new(root).follow_links(false) {
        match entry {
            Ok(entry) if entry.file_type().is_file() => files.push(entry.into_path()),
            Ok(_) => {}
            Err(err) => {
                let path = err.path().unwrap_or(root).display().to_string();
                lines.push(format!(
                    "{path}: {}. ERROR",
                    err.io_error().map_or(err.to_string(), |e| e.to_string())
                ));
            }
        }
    }
    let walk_errors = lines.len();
    let options = matcher.signal_options();
    let signals: Vec<_> = files.par_iter().map(|path| Signals::from_path(path, &options)).collect();
    let (mut found, mut errors) = (0, walk_errors);
    for (path, signals) in files.iter().zip(signals) {
        let signals = match signals {
            Ok(signals) => signals,
            Err(err) => {
                errors += 1;
                lines.push(format!("{}: {}. ERROR", path.display(), err.source));
                continue;
            }
        };
        let verdict = matcher.check_signals(&signals);
        metrics.matched("clamd", &verdict);
        audit(client, "SCAN", &verdict, &signals);
        if verdict.outcome == Outcome::Unknown {
            continue;
        }
        found += 1;
        let counted = verdict.matches.iter().filter(|m| m.suppressed_by.is_none());
        let shown = if mode == PathScan::AllMatchScan { usize::MAX } else { 1 };
        for m in counted.take(shown) {
            lines.push(format!("{}: {} FOUND", path.display(), signature(m)));
        }
        if mode == PathScan::Scan {
            break;
        }
    }
    // As clamd: OK when nothing matched, unless every file failed.
    let attempted = files.len() + walk_errors;
    if found == 0 && (errors < attempted || attempted == 0) {
        lines.push(format!("{}: OK", root.display()));
    }
    lines
}

/// `NAME: OK` or `NAME: SIGNATURE FOUND`, from the first match that counts.
fn found_or_ok(name: &str, verdict: &Verdict) -> String {
    match verdict.matches.iter().find(|m| m.suppressed_by.is_none()) {
        Some(m) if verdict.outcome != Outcome::Unknown => format!("{name}: {} FOUND", signature(m)),
        _ => format!("{name}: OK"),
    }
}

/// A match as a clamd signature name: `HashSieve.LIST.KIND.ENTRY`, one token of letters,
/// digits, `.`, `-` and `_` (clients split replies at the last colon and at spaces).
pub fn signature(m: &Match) -> String {
    let entry = m.entry_id.as_deref().unwrap_or(&m.value);
    let name = format!("HashSieve.{}.{}.{}", m.list, m.kind.name(), entry);
    name.chars()
        .take(200)
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') { c } else { '_' })
        .collect()
}

/// The audit line of a clamd decision: who asked, the content's hashes, the verdict and the
/// entries matched. Never content, and never a path (a path can say what a file is).
fn audit(client: &str, command: &str, verdict: &Verdict, signals: &Signals) {
    let matched = crate::http::audited_matches(verdict);
    tracing::info!(
        target: "audit",
        protocol = "clamd",
        client,
        command,
        outcome = ?verdict.outcome,
        matches = ?matched,
        md5 = signals.digests.md5.map(hex::encode).as_deref().unwrap_or("-"),
        pdq = signals.pdq.map(|p| hex::encode(p.hash.0)).as_deref().unwrap_or("-"),
        "decision"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use hashsieve_core::index::IndexBuilder;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Sends `input` on a fresh in-memory connection and returns the replies.
    async fn converse(clamd: Arc<Clamd>, input: &[u8]) -> String {
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let (_stop, stopped) = watch::channel(false);
        let serving = tokio::spawn(serve_connection(
            Connection::new(server),
            clamd,
            "test".into(),
            Arc::new(Semaphore::new(1)),
            stopped,
        ));
        client.write_all(input).await.unwrap();
        client.shutdown().await.unwrap();
        let mut replies = Vec::new();
        client.read_to_end(&mut replies).await.unwrap();
        serving.await.unwrap();
        String::from_utf8(replies).unwrap()
    }

    #[tokio::test]
    async fn a_scan_that_gets_no_hashing_slot_in_time_is_refused() {
        let mut config = Config::for_index("unused".into());
        config.limits.max_in_flight = 1;
        config.limits.request_timeout_secs = 1;
        let matcher = Matcher::from_bytes(IndexBuilder::new().to_vec()).unwrap();
        let clamd = Arc::new(Clamd::new(Arc::new(AppState::new(matcher, &config)), &config));
        let stream = b"zINSTREAM\0\0\0\0\x03abc\0\0\0\0";
        assert_eq!(converse(Arc::clone(&clamd), stream).await, "stream: OK\0");
        // Every slot is taken, for longer than the deadline.
        let held = clamd.state.hashing.acquire().await.unwrap();
        let started = Instant::now();
        let refused = converse(Arc::clone(&clamd), stream).await;
        assert_eq!(refused, "stream: Busy: too much content is being hashed. ERROR\0");
        assert!(started.elapsed() >= Duration::from_secs(1), "it waited for a slot first");
        drop(held);
        assert_eq!(converse(clamd, stream).await, "stream: OK\0");
    }
}
