//! One clamd connection's bytes: commands and `INSTREAM` chunks read from a buffer that never
//! holds more than a command or a chunk's worth beyond what was asked for, file descriptors
//! received on a Unix socket, and replies.

use std::future::Future;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt, Interest};
use tokio::net::{TcpStream, UnixStream};

use super::frame::{self, Delimiter, FrameError, RawCommand};

/// How much is read from the socket at a time while a stream arrives.
const STREAM_READ_SIZE: usize = 64 << 10;

/// How much is read at a time while waiting for a command: little, so that an idle connection
/// costs little (thousands of clients may hold sessions open).
const COMMAND_READ_SIZE: usize = 1 << 10;

/// Descriptors accepted in one message; clamd's clients send one.
const MAX_FDS_PER_MESSAGE: usize = 4;

/// A byte stream commands arrive on.
pub trait Transport: AsyncWrite + Unpin + Send + 'static {
    /// Reads what has arrived into `buffer`, appending any file descriptors passed with it to
    /// `fds`. Zero bytes means the peer closed its side.
    fn receive(
        &mut self,
        buffer: &mut [u8],
        fds: &mut Vec<OwnedFd>,
    ) -> impl Future<Output = io::Result<usize>> + Send;

    /// Whether the peer shares the daemon's filesystem, so that path scans mean something and
    /// file permissions on the socket decide who may ask.
    fn is_local(&self) -> bool;
}

impl Transport for TcpStream {
    async fn receive(&mut self, buffer: &mut [u8], _fds: &mut Vec<OwnedFd>) -> io::Result<usize> {
        self.read(buffer).await
    }

    fn is_local(&self) -> bool {
        false
    }
}

impl Transport for UnixStream {
    /// Every read is a `recvmsg` with room for descriptors: a plain read of the byte that
    /// carries a `FILDES` descriptor would make the kernel discard it.
    async fn receive(&mut self, buffer: &mut [u8], fds: &mut Vec<OwnedFd>) -> io::Result<usize> {
        use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
        loop {
            self.readable().await?;
            let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS_PER_MESSAGE))];
            let received = self.try_io(Interest::READABLE, || {
                let mut control = RecvAncillaryBuffer::new(&mut space);
                let mut iov = [io::IoSliceMut::new(buffer)];
                let message =
                    rustix::net::recvmsg(self.as_fd(), &mut iov, &mut control, RecvFlags::CMSG_CLOEXEC)
                        .map_err(io::Error::from)?;
                for part in control.drain() {
                    if let RecvAncillaryMessage::ScmRights(passed) = part {
                        fds.extend(passed);
                    }
                }
                Ok(message.bytes)
            });
            match received {
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => continue,
                other => return other,
            }
        }
    }

    fn is_local(&self) -> bool {
        true
    }
}

/// Any transport with the connection discipline's write deadline.
impl<T: Transport + tokio::io::AsyncRead> Transport for crate::listener::WriteDeadline<T> {
    async fn receive(&mut self, buffer: &mut [u8], fds: &mut Vec<OwnedFd>) -> io::Result<usize> {
        self.get_mut().receive(buffer, fds).await
    }

    fn is_local(&self) -> bool {
        self.get_ref().is_local()
    }
}

/// An in-memory pipe, for tests and fuzzing: a remote peer, so no descriptors and no path
/// scans.
impl Transport for tokio::io::DuplexStream {
    async fn receive(&mut self, buffer: &mut [u8], _fds: &mut Vec<OwnedFd>) -> io::Result<usize> {
        self.read(buffer).await
    }

    fn is_local(&self) -> bool {
        false
    }
}

/// Why a stream could not be read whole.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// The chunks add up to more than the limit.
    #[error("INSTREAM size limit exceeded.")]
    TooLong,
    /// The connection closed or failed before the zero-length chunk.
    #[error("stream ended early: {0}")]
    Io(#[from] io::Error),
}

/// A connection's read buffer and socket.
pub struct Connection<T> {
    transport: T,
    buffer: BytesMut,
    eof: bool,
    fds: Vec<OwnedFd>,
    status: &'static str,
}

impl<T: Transport> Connection<T> {
    /// Wraps an accepted socket.
    pub fn new(transport: T) -> Connection<T> {
        Connection { transport, buffer: BytesMut::new(), eof: false, fds: Vec::new(), status: "ok" }
    }

    /// Whether the peer is on this machine (a Unix socket).
    pub fn is_local(&self) -> bool {
        self.transport.is_local()
    }

    async fn fill(&mut self, size: usize) -> io::Result<usize> {
        let start = self.buffer.len();
        self.buffer.resize(start + size, 0);
        let read = self.transport.receive(&mut self.buffer[start..], &mut self.fds).await;
        self.buffer.truncate(start + *read.as_ref().unwrap_or(&0));
        let read = read?;
        if read == 0 {
            self.eof = true;
        }
        Ok(read)
    }

    /// The next command's text and delimiter, or `None` when the peer closed cleanly between
    /// commands.
    pub async fn read_command(&mut self) -> Result<Option<(Vec<u8>, Delimiter)>, CommandError> {
        loop {
            if let Some(RawCommand { delimiter, text, consumed }) =
                frame::parse_command(&self.buffer, self.eof)?
            {
                let command = self.buffer[text].to_vec();
                self.buffer.advance(consumed);
                return Ok(Some((command, delimiter)));
            }
            if self.eof {
                return if self.buffer.is_empty() { Ok(None) } else { Err(CommandError::Truncated) };
            }
            if self.buffer.is_empty() && self.buffer.capacity() > COMMAND_READ_SIZE {
                // A stream's buffer is not kept while the connection waits, maybe for long.
                self.buffer = BytesMut::new();
            }
            self.fill(COMMAND_READ_SIZE).await?;
        }
    }

    /// Reads an `INSTREAM` body: chunks until the zero-length one, at most `limit` bytes in all.
    pub async fn read_stream(&mut self, limit: u64) -> Result<Vec<u8>, StreamError> {
        let mut content = Vec::new();
        loop {
            let length = loop {
                if let Some(length) = frame::chunk_length(&self.buffer) {
                    self.buffer.advance(4);
                    break length as usize;
                }
                self.fill_or_fail().await?;
            };
            if length == 0 {
                return Ok(content);
            }
            if (content.len() + length) as u64 > limit {
                return Err(StreamError::TooLong);
            }
            content.reserve(length);
            let mut missing = length;
            while missing > 0 {
                if self.buffer.is_empty() {
                    self.fill_or_fail().await?;
                }
                let take = missing.min(self.buffer.len());
                content.extend_from_slice(&self.buffer[..take]);
                self.buffer.advance(take);
                missing -= take;
            }
        }
    }

    async fn fill_or_fail(&mut self) -> io::Result<()> {
        if self.eof || self.fill(STREAM_READ_SIZE).await? == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed mid-stream"));
        }
        Ok(())
    }

    /// After `FILDES`: consumes the byte the descriptor came with and returns the descriptor.
    pub async fn read_passed_fd(&mut self) -> io::Result<Option<OwnedFd>> {
        if self.buffer.is_empty() && !self.eof {
            self.fill(COMMAND_READ_SIZE).await?;
        }
        if !self.buffer.is_empty() {
            self.buffer.advance(1);
        }
        Ok(if self.fds.is_empty() { None } else { Some(self.fds.remove(0)) })
    }

    /// Descriptors that arrived without a `FILDES` to claim them; closed as they are dropped.
    pub fn take_unclaimed_fds(&mut self) -> usize {
        let count = self.fds.len();
        self.fds.clear();
        count
    }

    /// Writes one reply: `ID: ` inside a session, the text, the terminator.
    pub async fn reply(&mut self, id: Option<u32>, text: &str, delimiter: Delimiter) -> io::Result<()> {
        self.status = if text.ends_with(" FOUND") {
            "found"
        } else if text.ends_with(" ERROR") || text == "UNKNOWN COMMAND" {
            "error"
        } else {
            "ok"
        };
        let mut line = match id {
            Some(id) => format!("{id}: {text}").into_bytes(),
            None => text.as_bytes().to_vec(),
        };
        line.push(delimiter.terminator());
        self.transport.write_all(&line).await
    }

    /// How the last command went, from its last reply — `found`, `error` or `ok` — for metrics;
    /// resets to `ok`.
    pub fn take_status(&mut self) -> &'static str {
        std::mem::replace(&mut self.status, "ok")
    }

    /// Closes the connection so that the client sees every reply: the write side first, then
    /// what the client is still sending is read and dropped for a moment (bounded in bytes and
    /// time), since closing with unread input would reset the connection and could destroy a
    /// last reply — an error reply to an oversize stream, say — before the client reads it.
    pub async fn shutdown(&mut self) {
        if self.transport.shutdown().await.is_err() || self.eof {
            return;
        }
        let drain = async {
            let mut discarded = 0;
            while discarded < LINGER_BYTES {
                self.buffer.clear();
                match self.fill(STREAM_READ_SIZE).await {
                    Ok(0) | Err(_) => break,
                    Ok(read) => discarded += read,
                }
            }
        };
        let _ = tokio::time::timeout(LINGER_TIME, drain).await;
    }
}

/// How much unread input is drained at close before giving up on the client.
const LINGER_BYTES: usize = 1 << 20;

/// How long input is drained at close.
const LINGER_TIME: std::time::Duration = std::time::Duration::from_millis(500);

/// Why no command could be read.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// See [`FrameError`].
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The peer closed in the middle of a command.
    #[error("connection closed mid-command")]
    Truncated,
    /// The socket failed.
    #[error(transparent)]
    Io(#[from] io::Error),
}
