//! HTTP/1 connections, by hyper, on the shared connection discipline: over TLS when
//! configured (the handshake bounded by the header deadline), each request's head within
//! the header deadline, and at shutdown the request in flight finished before closing.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::config::Limits;
use crate::listener::{Discipline, accept_loop};
use crate::metrics::Metrics;

/// Serves `router` on `listener` until `shutdown` completes, then drains.
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
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .max_buf_size(limits.max_header_bytes as usize);
    accept_loop(listener, Discipline::of(limits), shutdown, move |stream, peer, _, stopped| {
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
