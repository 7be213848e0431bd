//! clamd's protocol, so that antivirus plumbing — `clamdscan`, mail and proxy filters,
//! libraries that speak to clamd — can ask hashsieved instead, unchanged.
//!
//! | command | reply |
//! |---|---|
//! | `PING` | `PONG` |
//! | `VERSION` | `hashsieve VERSION/GENERATION` |
//! | `VERSIONCOMMANDS` | the version, then `| COMMANDS:` and the command names |
//! | `INSTREAM` + chunks | `stream: OK`, `stream: SIGNATURE FOUND`, `INSTREAM size limit exceeded. ERROR` |
//! | `FILDES` + a descriptor (Unix socket) | `fd[N]: OK` or `fd[N]: SIGNATURE FOUND` |
//! | `SCAN`, `CONTSCAN`, `MULTISCAN`, `ALLMATCHSCAN` PATH (Unix socket) | a line per match, then `PATH: OK` if none |
//! | `STATS` | clamd's layout (hashing slots as threads), ending `END` |
//! | `IDSESSION` … `END` | several commands on one connection; replies prefixed `N: ` |
//! | `RELOAD` | `RELOADING`; the index is reopened |
//! | `SHUTDOWN` | `COMMAND UNAVAILABLE`: stop the daemon with SIGTERM |
//!
//! Commands are `zNAME\0` or `nNAME\n` (replies end the same way) or clamd's old style
//! `NAME\n`. A signature is `HashSieve.LIST.KIND.ENTRY`, from the first match that is not
//! suppressed by an allow-list.
//!
//! The protocol has no authentication, as clamd's has none: listen on a Unix socket, whose
//! permissions decide who may connect, or on loopback. Content is held in memory only (clamd
//! writes streams to a temporary file); hashing slots are shared with the HTTP API.
//!
//! The parts follow mini-redis: [`frame`] (bytes to commands, no I/O), [`command`],
//! [`connection`] (buffered reads, descriptors, replies) and [`handler`] (what each command
//! does, sessions); the listeners keep the connection discipline of [`crate::listener`].

pub mod command;
pub mod connection;
pub mod frame;
pub mod handler;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::UnixListener;

use crate::config::Config;
use crate::listener::{Discipline, Listener, WriteDeadline, accept_loop};
use crate::state::AppState;
pub use handler::Clamd;

impl Clamd {
    /// The settings of `config` over the shared state.
    pub fn new(state: Arc<AppState>, config: &Config) -> Clamd {
        let limits = &config.limits;
        Clamd {
            max_stream_bytes: config.clamd.max_stream_bytes.unwrap_or(limits.max_body_bytes),
            idle_timeout: Duration::from_secs(config.clamd.idle_timeout_secs),
            command_timeout: Duration::from_secs(limits.header_timeout_secs),
            request_timeout: Duration::from_secs(limits.request_timeout_secs),
            path_scans: config.clamd.path_scans,
            discipline: Discipline::of(limits),
            state,
        }
    }
}

/// Serves the clamd protocol on `listener` until `shutdown`, then lets scans in progress
/// finish.
pub async fn serve<L>(listener: L, clamd: Arc<Clamd>, shutdown: impl Future<Output = ()>)
where
    L: Listener,
    WriteDeadline<L::Stream>: connection::Transport,
{
    let discipline = clamd.discipline;
    accept_loop(listener, discipline, shutdown, move |stream, client, connections, stopped| {
        let clamd = Arc::clone(&clamd);
        let client = client.to_string();
        let open = clamd.state.metrics.connection("clamd");
        async move {
            let _open = open;
            let connection = connection::Connection::new(stream);
            handler::serve_connection(connection, clamd, client, connections, stopped).await;
        }
    })
    .await;
}

/// Binds the Unix socket at `path` with permissions `mode`, replacing a stale socket left by
/// a daemon that did not exit cleanly, but never one that is answering or a file that is not
/// a socket.
pub fn bind_unix(path: &Path, mode: u32) -> anyhow::Result<UnixListener> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            anyhow::bail!("{} exists and is not a socket", path.display());
        }
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            anyhow::bail!("{} is in use by a running daemon", path.display());
        }
        std::fs::remove_file(path)
            .with_context(|| format!("cannot remove stale socket {}", path.display()))?;
    }
    let listener =
        UnixListener::bind(path).with_context(|| format!("cannot listen on {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot set the permissions of {}", path.display()))?;
    Ok(listener)
}
