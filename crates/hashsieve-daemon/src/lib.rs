//! hashsieved: one hashsieve index — an index directory with its live changes, or a single
//! index file — served to many clients at once over HTTP/JSON, for ISP and hotline ingest
//! queues and platforms that do not link the library.
//!
//! All hashing and matching is `hashsieve-core`'s; this crate holds the sockets and what
//! belongs to them: [`config`] (TOML), [`auth`] (bearer tokens with roles), [`http`] (routes,
//! handlers, problem details, limits) and [`server`] (bounded connections, header deadlines,
//! graceful shutdown) and [`reload`] (following the index as other processes change it).
//!
//! ```no_run
//! use std::sync::Arc;
//! use hashsieve_daemon::config::Config;
//!
//! # async fn run() -> anyhow::Result<()> {
//! let config = Config::from_toml(r#"index = "/var/lib/hashsieve/lists""#)?;
//! let (state, listener) = hashsieve_daemon::start(&config).await?;
//! hashsieve_daemon::server::serve(listener, hashsieve_daemon::http::router(state), &config.limits, async {
//!     let _ = tokio::signal::ctrl_c().await;
//! })
//! .await;
//! # Ok(())
//! # }
//! ```

pub mod auth;
pub mod config;
pub mod http;
pub mod reload;
pub mod server;

use std::sync::Arc;

use anyhow::Context;
use arc_swap::ArcSwap;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::auth::Tokens;
use crate::config::Config;
use crate::http::AppState;

/// Runs the daemon for `config` until SIGTERM or SIGINT, on a runtime of its own: opens the
/// index, binds, prints `listening on http://ADDR` on standard output (for scripts and tests
/// that asked for port 0), serves, and drains. With `check_only`, stops after opening and
/// binding.
pub fn run(config: &Config, check_only: bool) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let (state, listener) = start(config).await?;
        if check_only {
            println!("configuration and index OK");
            return Ok(());
        }
        let address = listener.local_addr()?;
        println!("listening on http://{address}");
        tracing::info!(%address, index = %config.index.display(), writable = config.writable, "serving");
        tokio::spawn(reload::watch(Arc::clone(&state), config.clone()));
        server::serve(listener, http::router(state), &config.limits, shutdown_signal()).await;
        tracing::info!("stopped");
        Ok(())
    })
}

async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::warn!(error = %err, "no SIGTERM handler; stop with SIGINT");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = terminate => tracing::info!("SIGTERM"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT"),
    }
}

/// Opens the index and binds the listener.
pub async fn start(config: &Config) -> anyhow::Result<(Arc<AppState>, TcpListener)> {
    let opening = config.clone();
    let matcher = tokio::task::spawn_blocking(move || reload::open_matcher(&opening)).await??;
    let listener = TcpListener::bind(config.http.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.http.listen))?;
    let state = Arc::new(AppState {
        matcher: ArcSwap::from_pointee(matcher),
        tokens: Tokens::new(&config.tokens),
        limits: config.limits.clone(),
        hashing: Semaphore::new(config.limits.max_in_flight),
    });
    Ok((state, listener))
}
