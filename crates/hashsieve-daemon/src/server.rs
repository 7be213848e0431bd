//! Listeners and their connections: a bounded number served at once, headers read within a
//! deadline, and a graceful shutdown that stops accepting, lets requests in flight finish and
//! then closes.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::sync::{Semaphore, watch};
use tokio_rustls::TlsAcceptor;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::config::Limits;
use crate::metrics::Metrics;

/// How long requests in flight may take to finish after shutdown begins.
pub const DRAIN: Duration = Duration::from_secs(30);

/// A socket that accepts connections: TCP or Unix.
pub trait Listener: Send + 'static {
    /// An accepted connection.
    type Stream: Send + 'static;
    /// Who is at the other end, for logs.
    type Peer: std::fmt::Display + Send + 'static;
    /// Waits for the next connection.
    fn accept_one(&self) -> impl Future<Output = std::io::Result<(Self::Stream, Self::Peer)>> + Send;
}

impl Listener for TcpListener {
    type Stream = TcpStream;
    type Peer = SocketAddr;

    async fn accept_one(&self) -> std::io::Result<(TcpStream, SocketAddr)> {
        let (stream, peer) = self.accept().await?;
        // Replies are small and answer a request: do not wait to coalesce them.
        let _ = stream.set_nodelay(true);
        Ok((stream, peer))
    }
}

impl Listener for UnixListener {
    type Stream = UnixStream;
    type Peer = &'static str;

    async fn accept_one(&self) -> std::io::Result<(UnixStream, &'static str)> {
        let (stream, _) = self.accept().await?;
        Ok((stream, "unix"))
    }
}

/// Accepts connections on `listener` until `shutdown` completes, at most `max_connections` at
/// once, each served by `serve_one` (given the connection, its peer, the connection bound and
/// a flag that turns true at shutdown); then waits up to [`DRAIN`] for them to finish.
pub async fn accept_loop<L, F, Fut>(
    listener: L,
    max_connections: usize,
    shutdown: impl Future<Output = ()>,
    serve_one: F,
) where
    L: Listener,
    F: Fn(L::Stream, L::Peer, Arc<Semaphore>, watch::Receiver<bool>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let connections = Arc::new(Semaphore::new(max_connections));
    let tracker = TaskTracker::new();
    let (stop, stopped) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        // Take a connection slot before accepting: at the bound, clients wait in the kernel's
        // backlog instead of costing memory here.
        let permit = tokio::select! {
            permit = Arc::clone(&connections).acquire_owned() => permit.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept_one() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors, say: wait rather than spin.
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let connection = serve_one(stream, peer, Arc::clone(&connections), stopped.clone());
        tracker.spawn(async move {
            connection.await;
            drop(permit);
        });
    }
    // Close the socket now, so that new clients are refused at once rather than left waiting
    // in the backlog while the connections in flight drain.
    drop(listener);
    tracing::info!(connections = tracker.len(), "shutting down: no new connections; draining");
    let _ = stop.send(true);
    tracker.close();
    if tokio::time::timeout(DRAIN, tracker.wait()).await.is_err() {
        tracing::warn!(connections = tracker.len(), "drain time over; closing the rest");
    }
}

/// Serves `router` on `listener` until `shutdown` completes, then drains; over TLS when
/// `tls` is given, the handshake bounded by the header deadline.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    tls: Option<TlsAcceptor>,
    limits: &Limits,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()>,
) {
    let header_timeout = Duration::from_secs(limits.header_timeout_secs);
    // HTTP/1 only, served by hyper's own HTTP/1 connection: its header deadline runs from the
    // moment it waits for a request, so a client that connects and never sends a byte is cut
    // off too (a protocol-sniffing builder waits for the first bytes without a deadline).
    let mut builder = http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(header_timeout).max_buf_size(64 << 10);
    accept_loop(listener, limits.max_connections, shutdown, move |stream, peer, _, stopped| {
        let service = TowerToHyperService::new(router.clone().map_request(
            move |mut request: hyper::Request<hyper::body::Incoming>| {
                request.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
                request
            },
        ));
        let builder = builder.clone();
        let tls = tls.clone();
        let open = metrics.connection("http");
        async move {
            let _open = open;
            let Some(acceptor) = tls else {
                return serve_http(builder, stream, service, peer, stopped).await;
            };
            match tokio::time::timeout(header_timeout, acceptor.accept(stream)).await {
                Ok(Ok(stream)) => serve_http(builder, stream, service, peer, stopped).await,
                Ok(Err(err)) => tracing::debug!(client = %peer, error = %err, "TLS handshake failed"),
                Err(_) => tracing::debug!(client = %peer, "TLS handshake took too long"),
            }
        }
    })
    .await;
}

/// Serves HTTP on one connection, plain or TLS, until it ends or shutdown asks it to finish
/// its request in flight and close.
async fn serve_http<S, T>(
    builder: http1::Builder,
    stream: S,
    service: T,
    peer: SocketAddr,
    mut stopped: watch::Receiver<bool>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    T: hyper::service::Service<hyper::Request<hyper::body::Incoming>, Response = axum::response::Response>
        + Clone
        + Send
        + 'static,
    T::Future: Send + 'static,
    T::Error: std::error::Error + Send + Sync + 'static,
{
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(err) = result {
                tracing::debug!(client = %peer, error = %err, "connection ended with an error");
            }
        }
        _ = stopped.changed() => {
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        }
    }
}
