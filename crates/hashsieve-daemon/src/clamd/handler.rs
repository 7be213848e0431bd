//! What each clamd command does, and a connection's life: one command and close, or an
//! `IDSESSION` of numbered commands until `END`, an error, the idle timeout or shutdown.

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hashsieve_core::matcher::MatchVerdict;
use hashsieve_core::signals::{SignalOptions, Signals};
use tokio::sync::{Semaphore, watch};

use super::command::{Command, NAMES, PathScan};
use super::connection::{CommandError, Connection, StreamError, Transport};
use super::frame::Delimiter;
use crate::listener::Discipline;
use crate::state::AppState;
use crate::verdict::{Asker, audit, counting_match, signature};

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
    /// Connections served at once, per listener, and the write deadline.
    pub discipline: Discipline,
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
    let generation = clamd.state.matcher.load().current().number();
    format!("hashsieve {}/{generation}", env!("CARGO_PKG_VERSION"))
}

/// clamd's `STATS` layout, which clamdtop reads: the "threads" are hashing slots.
fn stats(clamd: &Clamd, connections: &Semaphore) -> String {
    let slots = &clamd.state.slots;
    let hashing = slots.busy();
    let max_connections = clamd.discipline.max_connections;
    let open = max_connections - connections.available_permits();
    let resident_mb = crate::metrics::resident_bytes() as f64 / (1 << 20) as f64;
    format!(
        "POOLS: 1\n\nSTATE: VALID PRIMARY\nTHREADS: live {hashing}  idle {idle} max {max} idle-timeout {timeout}\n\
         QUEUE: {queued} items\nCONNECTIONS: {open} max {max_connections}\n\n\
         MEMSTATS: heap N/A mmap N/A used N/A free N/A releasable N/A pools 1 pools_used {resident_mb:.3}M \
         pools_total {resident_mb:.3}M\nEND",
        idle = slots.max() - hashing,
        max = slots.max(),
        timeout = clamd.idle_timeout.as_secs(),
        queued = slots.waiting(),
    )
}

/// Why content that arrived got no verdict, as clamd's error text.
const BUSY: &str = "Busy: too much content is being hashed.";
const LATE: &str = "Time limit reached.";
const INTERNAL: &str = "Internal error.";

/// Hashes and matches content that has arrived, within a hashing slot waited for until
/// `deadline` (clamd's clients do not retry: the scan queues rather than being refused at once
/// as an HTTP request is).
async fn check_content(
    clamd: &Clamd,
    content: Vec<u8>,
    options: SignalOptions,
    deadline: Instant,
) -> Result<(MatchVerdict, Signals), &'static str> {
    let slots = &clamd.state.slots;
    let slot =
        slots.take_before(Signals::decode_memory(&content, &options), deadline).await.map_err(|_| BUSY)?;
    let matcher = clamd.state.matcher.load_full();
    slot.run(Some(deadline), move || {
        let signals = Signals::from_bytes(&content, &options);
        (matcher.check_signals(&signals), signals)
    })
    .await
    .map_err(|err| match err {
        crate::slots::HashingError::Late => LATE,
        crate::slots::HashingError::Failed => INTERNAL,
    })
}

/// Counts and audits a decision, and gives its reply.
fn decided(
    clamd: &Clamd,
    client: &str,
    command: &str,
    name: &str,
    checked: Result<(MatchVerdict, Signals), &str>,
) -> String {
    match checked {
        Ok((verdict, signals)) => {
            clamd.state.metrics.matched("clamd", &verdict);
            audit(
                Asker { protocol: "clamd", client, token: None, action: command, report: None },
                &verdict,
                &signals,
                None,
            );
            found_or_ok(name, &verdict)
        }
        Err(reason) => {
            let counted = match reason {
                BUSY => "busy",
                LATE => "timeout",
                _ => "internal",
            };
            clamd.state.metrics.rejected("clamd", counted);
            format!("{name}: {reason} ERROR")
        }
    }
}

async fn instream<T: Transport>(clamd: &Clamd, connection: &mut Connection<T>, reply: Reply<'_>) -> Next {
    let Reply { id, delimiter, client } = reply;
    let deadline = Instant::now() + clamd.request_timeout;
    // The stream is read first: a client that announces one and sends nothing holds its
    // connection, never a hashing slot.
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
    let options = clamd.state.matcher.load().signal_options();
    let checked = check_content(clamd, content, options, deadline).await;
    let busy = checked.is_err();
    let text = decided(clamd, client, "INSTREAM", "stream", checked);
    match connection.reply(id, &text, delimiter).await {
        Ok(()) if !busy => Next::Continue,
        _ => Next::Close,
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
    let limit = clamd.max_stream_bytes;
    let read = tokio::task::spawn_blocking(move || read_file(fd, limit)).await;
    let text = match read {
        Ok(Ok(content)) => {
            let options = clamd.state.matcher.load().signal_options();
            let checked = check_content(clamd, content, options, deadline).await;
            decided(clamd, client, "FILDES", &name, checked)
        }
        Ok(Err(reason)) => format!("{name}: {reason} ERROR"),
        Err(_) => format!("{name}: {INTERNAL} ERROR"),
    };
    match connection.reply(id, &text, delimiter).await {
        Ok(()) => Next::Continue,
        Err(_) => Next::Close,
    }
}

/// Reads a passed file: a regular file within the size limit (a pipe or a device could be
/// endless).
fn read_file(fd: OwnedFd, limit: u64) -> Result<Vec<u8>, String> {
    let file = File::from(fd);
    let meta = file.metadata().map_err(|err| format!("{err}."))?;
    if !meta.is_file() {
        return Err("Not a regular file.".into());
    }
    if meta.len() > limit {
        return Err("Size limit exceeded.".into());
    }
    // The file may grow while it is read: read no more than the limit allows.
    let mut content = Vec::with_capacity(meta.len() as usize);
    file.take(limit).read_to_end(&mut content).map_err(|err| format!("{err}."))?;
    Ok(content)
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
    let lines = scan_tree(clamd, root, mode, client).await;
    for line in lines {
        if connection.reply(id, &line, delimiter).await.is_err() {
            return Next::Close;
        }
    }
    Next::Continue
}

/// Lists the regular files under `root` (not following links), and a reply line per entry
/// that could not be read.
fn walk(root: &Path) -> (Vec<PathBuf>, Vec<String>) {
    let (mut files, mut lines) = (Vec::new(), Vec::new());
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
    (files, lines)
}

/// Reads one file of a path scan, then hashes and matches it within a hashing slot of its
/// own (waited for as long as it takes: the scan is the local administrator's). A file too
/// large to decode is digested as it is read, needing no decoding memory.
async fn scan_file(
    state: Arc<AppState>,
    path: PathBuf,
    options: SignalOptions,
) -> Result<(MatchVerdict, Signals), String> {
    let matcher = state.matcher.load_full();
    let read = {
        let path = path.clone();
        let limit = options.max_image_bytes;
        tokio::task::spawn_blocking(move || {
            let size = std::fs::metadata(&path)?.len();
            if size > limit { Ok(None) } else { std::fs::read(&path).map(Some) }
        })
        .await
        .map_err(|_| INTERNAL.to_string())?
        .map_err(|err| format!("{err}."))?
    };
    let memory = read.as_deref().map_or(0, |content| Signals::decode_memory(content, &options));
    let slot = state.slots.take(memory).await;
    let checked = slot
        .run(None, move || {
            let signals = match read {
                Some(content) => Signals::from_bytes(&content, &options),
                None => Signals::from_path(&path, &options).map_err(|err| format!("{}.", err.source))?,
            };
            Ok((matcher.check_signals(&signals), signals))
        })
        .await;
    checked.map_err(|_| INTERNAL.to_string())?
}

/// clamd's replies to a path scan: a line per match or error, then `PATH: OK` when nothing
/// matched and not everything failed. Files are hashed a few at once, as many as there are
/// processors (`MULTISCAN`'s parallelism, for every scan), each in a slot of its own.
async fn scan_tree(clamd: &Clamd, root: PathBuf, mode: PathScan, client: &str) -> Vec<String> {
    if !root.is_absolute() {
        return vec![format!("{}: Not an absolute path. ERROR", root.display())];
    }
    let walked = {
        let root = root.clone();
        tokio::task::spawn_blocking(move || walk(&root)).await
    };
    let Ok((files, mut lines)) = walked else { return vec![format!("{INTERNAL} ERROR")] };
    let walk_errors = lines.len();
    let options = clamd.state.matcher.load().signal_options();
    let at_once = std::thread::available_parallelism().map_or(1, usize::from);
    let mut in_flight = std::collections::VecDeque::new();
    let mut pending = files.iter();
    let (mut found, mut errors) = (0, walk_errors);
    loop {
        while in_flight.len() < at_once {
            let Some(path) = pending.next() else { break };
            let task = tokio::spawn(scan_file(Arc::clone(&clamd.state), path.clone(), options.clone()));
            in_flight.push_back((path, task));
        }
        let Some((path, task)) = in_flight.pop_front() else { break };
        let (verdict, signals) = match task.await.unwrap_or_else(|_| Err(INTERNAL.to_string())) {
            Ok(checked) => checked,
            Err(reason) => {
                errors += 1;
                lines.push(format!("{}: {reason} ERROR", path.display()));
                continue;
            }
        };
        clamd.state.metrics.matched("clamd", &verdict);
        audit(
            Asker { protocol: "clamd", client, token: None, action: "SCAN", report: None },
            &verdict,
            &signals,
            None,
        );
        if counting_match(&verdict).is_none() {
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
fn found_or_ok(name: &str, verdict: &MatchVerdict) -> String {
    match counting_match(verdict) {
        Some(m) => format!("{name}: {} FOUND", signature(m)),
        _ => format!("{name}: OK"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use hashsieve_core::index::IndexBuilder;
    use hashsieve_core::matcher::Matcher;
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
        let held = clamd.state.slots.take(0).await;
        let started = Instant::now();
        let refused = converse(Arc::clone(&clamd), stream).await;
        assert_eq!(refused, "stream: Busy: too much content is being hashed. ERROR\0");
        assert!(started.elapsed() >= Duration::from_secs(1), "it waited for a slot first");
        drop(held);
        assert_eq!(converse(clamd, stream).await, "stream: OK\0");
    }
}
