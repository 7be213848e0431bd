//! hashsieved: one hashsieve index — an index directory with its live changes, or a single
//! index file — served to many clients at once over HTTP/JSON, for ISP and hotline ingest
//! queues and platforms that do not link the library.
//!
//! All hashing and matching is `hashsieve-core`'s; this crate holds the sockets and what
//! belongs to them. The protocols stand side by side over shared foundations and never import
//! each other:
//!
//! - the foundations: [`config`] (TOML), [`state`] (what every protocol shares), [`slots`]
//!   (how much content is hashed at once, and when a slot is taken), [`listener`] (the
//!   connection discipline: the connection bound, write deadlines, graceful drain), [`auth`]
//!   (bearer tokens with roles), [`verdict`] (what every protocol says about a verdict, and
//!   the audit trail), [`metrics`], [`reload`] (following the index as other processes
//!   change it), [`blocked_urls`] (the URL block list ICAP applies), [`verdict_memory`] (a
//!   hotline's verdict memory), [`content_cache`] (reported content held in memory, only, for
//!   the review page) and [`takedown`] (its re-checks of confirmed content until removal);
//! - the protocols: [`http`] (routes, handlers, problem details; the hotline's review API and
//!   the analysts' review page),
//!   [`clamd`] (clamd's protocol on a Unix socket or TCP, for antivirus plumbing), [`icap`]
//!   (ICAP, for web proxies checking content in line) and [`ingest`] (hotline reports from
//!   Redis Streams).
//!
//! ```no_run
//! use std::sync::Arc;
//! use hashsieve_daemon::config::Config;
//!
//! # async fn run() -> anyhow::Result<()> {
//! let config = Config::from_toml(r#"index = "/var/lib/hashsieve/lists""#)?;
//! let (state, listeners) = hashsieve_daemon::start(&config).await?;
//! let metrics = Arc::clone(&state.metrics);
//! let router = hashsieve_daemon::http::router(state);
//! hashsieve_daemon::http::serve(listeners.http, router, listeners.tls, &config.limits, metrics, async {
//!     let _ = tokio::signal::ctrl_c().await;
//! })
//! .await;
//! # Ok(())
//! # }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod auth;
pub mod background;
pub mod blocked_urls;
pub mod clamd;
pub mod config;
pub mod content_cache;
pub mod http;
pub mod icap;
pub mod ingest;
pub mod listener;
pub mod metrics;
pub mod reload;
pub mod slots;
pub mod state;
pub mod takedown;
pub mod tls;
pub mod verdict;
pub mod verdict_memory;

use std::sync::Arc;

use anyhow::Context;
use tokio::net::{TcpListener, UnixListener};
use tokio_util::sync::CancellationToken;

use crate::clamd::Clamd;
use crate::config::Config;
use crate::icap::Icap;
use crate::state::AppState;

/// The sockets the daemon serves, bound before anything is served so that a mistake in the
/// configuration shows at once.
pub struct Listeners {
    /// HTTP/JSON.
    pub http: TcpListener,
    /// TLS for it, if configured.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    /// clamd's protocol over TCP.
    pub clamd_tcp: Option<TcpListener>,
    /// clamd's protocol over a Unix socket.
    pub clamd_unix: Option<UnixListener>,
    /// ICAP.
    pub icap: Option<TcpListener>,
}

/// Runs the daemon for `config` until SIGTERM or SIGINT, on a runtime of its own: opens the
/// index, binds, prints a `listening on …` line per socket on standard output (for scripts
/// and tests that asked for port 0), serves, and drains. With `check_only`, stops after
/// opening and binding.
pub fn run(config: &Config, check_only: bool) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let background = background::runtime()?;
    runtime.block_on(async {
        let (state, listeners) = start(config).await?;
        let unix_socket = config.clamd.unix_socket.as_deref().filter(|_| listeners.clamd_unix.is_some());
        if check_only {
            if let Some(path) = unix_socket {
                let _ = std::fs::remove_file(path);
            }
            println!("configuration and index OK");
            return Ok(());
        }
        let shutdown = shutdown_signal();
        let address = listeners.http.local_addr()?;
        let scheme = if listeners.tls.is_some() { "https" } else { "http" };
        println!("listening on {scheme}://{address}");
        if let Some(listener) = &listeners.clamd_tcp {
            println!("listening on clamd tcp://{}", listener.local_addr()?);
        }
        if let Some(path) = unix_socket {
            println!("listening on clamd unix:{}", path.display());
        }
        if let Some(listener) = &listeners.icap {
            println!("listening on icap://{}", listener.local_addr()?);
        }
        tracing::info!(%address, index = %config.index.display(), writable = config.writable, "serving");
        if config.clamd.tcp_listen.is_some_and(|address| !address.ip().is_loopback()) {
            tracing::warn!("the clamd protocol has no authentication and listens beyond loopback");
        }
        if config.icap.listen.is_some_and(|address| !address.ip().is_loopback()) {
            tracing::warn!("ICAP has no authentication: keep its port to the proxies' network");
        }
        tokio::spawn(reload::watch(Arc::clone(&state), config.clone()));
        let stopping = CancellationToken::new();
        tokio::spawn({
            let stopping = stopping.clone();
            async move {
                shutdown.await;
                stopping.cancel();
            }
        });
        let clamd = Arc::new(Clamd::new(Arc::clone(&state), config));
        let clamd_tcp = listeners.clamd_tcp.map(|listener| {
            tokio::spawn(clamd::serve(listener, Arc::clone(&clamd), stopping.clone().cancelled_owned()))
        });
        let clamd_unix = listeners.clamd_unix.map(|listener| {
            tokio::spawn(clamd::serve(listener, Arc::clone(&clamd), stopping.clone().cancelled_owned()))
        });
        let icap = match listeners.icap {
            Some(listener) => {
                let icap = Arc::new(Icap::new(Arc::clone(&state), config)?);
                Some(tokio::spawn(icap::serve(listener, icap, stopping.clone().cancelled_owned())))
            }
            None => None,
        };
        let ingest = ingest::serve(Arc::clone(&state), config, stopping.clone()).await?;
        let mut takedown_tasks = Vec::new();
        if state.verdict_memory.is_some() || config.icap.block_list.is_some() {
            let every = std::time::Duration::from_millis(config.reload_check_ms.max(100));
            let follow = blocked_urls::follow(
                Arc::clone(&state),
                config.icap.block_list.clone(),
                every,
                stopping.clone(),
            );
            takedown_tasks.push(tokio::spawn(follow));
        }
        if let Some(memory) = &state.verdict_memory {
            if config.takedown.checks {
                let run = takedown::run(
                    Arc::clone(&state),
                    Arc::clone(memory),
                    config.takedown.clone(),
                    tokio::runtime::Handle::current(),
                    stopping.clone(),
                );
                takedown_tasks.push(background.spawn(run));
            }
            let deliver = takedown::deliver_notices(
                Arc::clone(&state),
                Arc::clone(memory),
                config.clone(),
                stopping.clone(),
            );
            takedown_tasks.push(tokio::spawn(deliver));
        }
        let metrics = Arc::clone(&state.metrics);
        let router = http::router(state);
        http::serve(listeners.http, router, listeners.tls, &config.limits, metrics, stopping.cancelled())
            .await;
        for task in [clamd_tcp, clamd_unix, icap].into_iter().flatten().chain(ingest) {
            let _ = task.await;
        }
        for task in takedown_tasks {
            let _ = task.await;
        }
        if let Some(path) = unix_socket {
            let _ = std::fs::remove_file(path);
        }
        tracing::info!("stopped");
        Ok(())
    })
}

/// Resolves on SIGTERM or SIGINT. The handlers are installed when this is called, not when the
/// future is first polled: a signal sent as soon as the daemon says it listens must start a
/// drain, not kill the process with the default action.
fn shutdown_signal() -> impl Future<Output = ()> {
    use tokio::signal::unix::{Signal, SignalKind, signal};
    async fn received(handler: std::io::Result<Signal>, name: &str) {
        match handler {
            Ok(mut handler) => {
                handler.recv().await;
            }
            Err(err) => {
                tracing::warn!(error = %err, "no {name} handler");
                std::future::pending::<()>().await;
            }
        }
    }
    let (terminate, interrupt) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt()));
    async move {
        tokio::select! {
            () = received(terminate, "SIGTERM") => tracing::info!("SIGTERM"),
            () = received(interrupt, "SIGINT") => tracing::info!("SIGINT"),
        }
    }
}

/// How many connections the kernel holds for us while every connection slot is taken (the
/// default, 128, makes clients beyond it retry seconds later; clamd's is 200).
const BACKLOG: u32 = 4096;

/// A TCP listener with a backlog long enough for bursts of clients.
fn listen(address: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    let socket =
        if address.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(BACKLOG)
}

/// Opens the index and binds the listeners.
pub async fn start(config: &Config) -> anyhow::Result<(Arc<AppState>, Listeners)> {
    let opening = config.clone();
    let (matcher, memory) = tokio::task::spawn_blocking(move || {
        let matcher = reload::open_matcher(&opening)?;
        let memory = verdict_memory::VerdictMemory::open(&opening, &matcher)?;
        anyhow::Ok((matcher, memory))
    })
    .await??;
    let http =
        listen(config.http.listen).with_context(|| format!("cannot listen on {}", config.http.listen))?;
    let tls = config.http.tls.as_ref().map(tls::acceptor).transpose()?;
    let clamd_tcp = match config.clamd.tcp_listen {
        Some(address) => {
            Some(listen(address).with_context(|| format!("cannot listen on {address} (clamd)"))?)
        }
        None => None,
    };
    let clamd_unix = match &config.clamd.unix_socket {
        Some(path) => Some(clamd::bind_unix(path, config.clamd.socket_mode()?)?),
        None => None,
    };
    let icap = match config.icap.listen {
        Some(address) => Some(listen(address).with_context(|| format!("cannot listen on {address} (ICAP)"))?),
        None => None,
    };
    let state = Arc::new(AppState::new(matcher, config).with_verdict_memory(memory));
    Ok((state, Listeners { http, tls, clamd_tcp, clamd_unix, icap }))
}
