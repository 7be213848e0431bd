//! The connection discipline every listener keeps, whatever its protocol: at most
//! `max_connections` served at once (the rest wait in the kernel's backlog), every write
//! bounded by `write_timeout_secs` (a client that does not take what it is sent is cut off,
//! so it cannot hold a connection and its buffers by not reading), and a graceful shutdown
//! that stops accepting, lets requests in flight finish within [`DRAIN`] and then closes.
//!
//! The read side's deadlines belong to each protocol's framing, which alone knows when a
//! request is complete: the first request of a connection within `header_timeout_secs`
//! (hyper's header timeout for HTTP; clamd's command and ICAP's head read under it), a body
//! within `request_timeout_secs`, and an idle connection closed after its protocol's idle
//! timeout.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::sync::{Semaphore, watch};
use tokio::time::Sleep;
use tokio_util::task::TaskTracker;

/// How long requests in flight may take to finish after shutdown begins.
pub const DRAIN: Duration = Duration::from_secs(30);

/// A socket that accepts connections: TCP or Unix.
pub trait Listener: Send + 'static {
    /// An accepted connection.
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    /// Who is at the other end, for logs.
    type Peer: std::fmt::Display + Send + 'static;
    /// Waits for the next connection.
    fn accept_one(&self) -> impl Future<Output = io::Result<(Self::Stream, Self::Peer)>> + Send;
}

impl Listener for TcpListener {
    type Stream = TcpStream;
    type Peer = SocketAddr;

    async fn accept_one(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let (stream, peer) = self.accept().await?;
        // Replies are small and answer a request: do not wait to coalesce them.
        let _ = stream.set_nodelay(true);
        Ok((stream, peer))
    }
}

impl Listener for UnixListener {
    type Stream = UnixStream;
    type Peer = &'static str;

    async fn accept_one(&self) -> io::Result<(UnixStream, &'static str)> {
        let (stream, _) = self.accept().await?;
        Ok((stream, "unix"))
    }
}

/// What a listener's connections are held to.
#[derive(Debug, Clone, Copy)]
pub struct Discipline {
    /// Connections served at once.
    pub max_connections: usize,
    /// How long a write may wait for the client to make room.
    pub write_timeout: Duration,
}

impl Discipline {
    /// The discipline of `limits`.
    pub fn of(limits: &crate::config::Limits) -> Discipline {
        Discipline {
            max_connections: limits.max_connections,
            write_timeout: Duration::from_secs(limits.write_timeout_secs),
        }
    }
}

/// Accepts connections on `listener` until `shutdown` completes, each served by `serve_one`
/// (given the connection with its write deadline, its peer, the connection bound and a flag
/// that turns true at shutdown); then waits up to [`DRAIN`] for them to finish.
pub async fn accept_loop<L, F, Fut>(
    listener: L,
    discipline: Discipline,
    shutdown: impl Future<Output = ()>,
    serve_one: F,
) where
    L: Listener,
    F: Fn(WriteDeadline<L::Stream>, L::Peer, Arc<Semaphore>, watch::Receiver<bool>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let connections = Arc::new(Semaphore::new(discipline.max_connections));
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
        let stream = WriteDeadline::new(stream, discipline.write_timeout);
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

/// A connection whose writes fail with [`io::ErrorKind::TimedOut`] when the peer takes
/// nothing for the write timeout: a write that makes progress, however slowly, resets it, and
/// one that cannot (the peer's window and the kernel's buffers are full because the peer does
/// not read) ends the connection. Reads pass through.
#[derive(Debug)]
pub struct WriteDeadline<S> {
    inner: S,
    timeout: Duration,
    stalled: Option<Pin<Box<Sleep>>>,
}

impl<S> WriteDeadline<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, timeout: Duration) -> WriteDeadline<S> {
        WriteDeadline { inner, timeout, stalled: None }
    }

    /// The connection itself.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The connection itself.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Passes on a write's result, or when it waits, whether the wait has lasted too long.
    fn bounded<T>(&mut self, cx: &mut Context<'_>, polled: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if polled.is_ready() {
            self.stalled = None;
            return polled;
        }
        let timeout = self.timeout;
        let stalled = self.stalled.get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match stalled.as_mut().poll(cx) {
            Poll::Ready(()) => {
                self.stalled = None;
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the peer took nothing within the write timeout",
                )))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for WriteDeadline<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WriteDeadline<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.bounded(cx, polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.bounded(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_flush(cx);
        self.bounded(cx, polled)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.bounded(cx, polled)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test]
    async fn a_peer_that_does_not_read_is_cut_off_and_a_slow_one_is_not() {
        let timeout = Duration::from_millis(200);
        // A pipe with room for 1 KiB: the peer never reads.
        let (ours, _theirs) = tokio::io::duplex(1024);
        let mut stream = WriteDeadline::new(ours, timeout);
        let started = std::time::Instant::now();
        let written = stream.write_all(&[7; 1 << 20]).await;
        assert_eq!(written.unwrap_err().kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= timeout && started.elapsed() < timeout * 10);

        // A peer that reads slowly, a little every 50 ms, takes a longer reply in the end.
        let (ours, mut theirs) = tokio::io::duplex(1024);
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            let mut piece = [0; 512];
            loop {
                tokio::time::sleep(Duration::from_millis(50)).await;
                match theirs.read(&mut piece).await {
                    Ok(0) | Err(_) => return got.len(),
                    Ok(n) => got.extend_from_slice(&piece[..n]),
                }
            }
        });
        let mut stream = WriteDeadline::new(ours, timeout);
        stream.write_all(&[1; 8 << 10]).await.unwrap();
        stream.shutdown().await.unwrap();
        drop(stream);
        assert_eq!(reader.await.unwrap(), 8 << 10);
    }
}
