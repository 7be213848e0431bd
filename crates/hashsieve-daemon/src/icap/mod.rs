//! ICAP (RFC 3507), so that web proxies — Squid, and the appliances that speak ICAP — check
//! every image passing through in line, and serve a block page for known material.
//!
//! Two services, one method each as the RFC asks:
//!
//! | service | method | checks |
//! |---|---|---|
//! | `icap://HOST:PORT/respmod` | `RESPMOD` | responses coming back to users (Squid: `respmod_precache`) |
//! | `icap://HOST:PORT/reqmod` | `REQMOD` | uploads going out, whole bodies and form parts (`reqmod_precache`) |
//!
//! - `OPTIONS` advertises the method, `Preview` (so that a proxy sends the first bytes and
//!   waits), `Allow: 204`, `Transfer-Preview: *` (and `Transfer-Ignore` / `Transfer-Complete`
//!   if configured), `Max-Connections`, `Options-TTL`, and an `ISTag` naming the index's
//!   generation and change sequence, so that it changes whenever the lists do.
//! - Only images are read past the preview: a body declared as a configured media type, or
//!   starting like an image whatever it declares, is streamed through the digests (holding
//!   only what decoding needs); anything else gets `204 No Content` from the preview alone.
//! - A match is answered with the block response: HTTP 403 (or the configured status) and a
//!   short page naming the reason and the list — never the content — plus an
//!   `X-Infection-Found` header as antivirus ICAP services send, for the proxy's logs.
//!   Anything else: `204`, or for a client that does not take `204` its message unchanged.
//! - Connections are persistent; a bad request gets an ICAP error status and the connection
//!   closes. Heads, header sections, chunk lines and trailers are bounded; timeouts are the
//!   other protocols' (the first request within the header deadline, a request within the
//!   request deadline) plus an idle timeout between requests; every write has the shared write
//!   deadline.
//!
//! ICAP has no authentication: listen on loopback or on the proxies' own network. The parts
//! follow mini-redis: [`frame`] (bytes to requests and chunks, no I/O), [`connection`]
//! (buffered reads in bounded pieces), [`response`] (what is sent back) and [`handler`] (what
//! each request does, a connection's life); the listener keeps the
//! connection discipline of [`crate::listener`].

pub mod connection;
pub mod frame;
pub mod handler;
pub mod response;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::config::Config;
use crate::listener::accept_loop;
use crate::state::AppState;
pub use handler::Icap;
use response::BlockPage;

impl Icap {
    /// The settings of `config` over the shared state; reads the block page, if one is named.
    pub fn new(state: Arc<AppState>, config: &Config) -> anyhow::Result<Icap> {
        let icap = &config.icap;
        let limits = &config.limits;
        let template = match &icap.block_page {
            Some(path) => std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the ICAP block page {}", path.display()))?,
            None => crate::config::DEFAULT_BLOCK_PAGE.to_string(),
        };
        Ok(Icap {
            preview_bytes: icap.preview_bytes,
            options_ttl_secs: icap.options_ttl_secs,
            idle_timeout: Duration::from_secs(icap.idle_timeout_secs),
            header_timeout: Duration::from_secs(limits.header_timeout_secs),
            request_timeout: Duration::from_secs(limits.request_timeout_secs),
            content_types: icap.content_types.iter().map(|t| t.to_ascii_lowercase()).collect(),
            sniff: icap.sniff,
            transfer_ignore: icap.transfer_ignore.clone(),
            transfer_complete: icap.transfer_complete.clone(),
            block_page: BlockPage { status: icap.block_status, template, reason: icap.block_reason.clone() },
            max_held_bytes: icap.max_body_bytes.unwrap_or(limits.max_body_bytes),
            discipline: crate::listener::Discipline::of(limits),
            state,
        })
    }
}

/// Serves ICAP on `listener` until `shutdown`, then lets requests in progress finish.
pub async fn serve(listener: TcpListener, icap: Arc<Icap>, shutdown: impl Future<Output = ()>) {
    let discipline = icap.discipline;
    accept_loop(listener, discipline, shutdown, move |stream, client, _connections, stopped| {
        let icap = Arc::clone(&icap);
        let open = icap.state.metrics.connection("icap");
        async move {
            let _open = open;
            let connection = connection::Connection::new(stream);
            handler::serve_connection(connection, icap, client.to_string(), stopped).await;
        }
    })
    .await;
}
