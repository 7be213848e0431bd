//! One ICAP connection: buffered reading of request heads, encapsulated header sections and
//! chunked bodies a bounded piece at a time, and writing responses.

use std::io;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::frame::{self, FrameError, RequestHead};

/// How much is asked of the socket at once, and the largest body piece handed out: a chunk of
/// any declared size is read in pieces this big, so a body's memory is whatever its consumer
/// keeps.
const READ_SIZE: usize = 64 << 10;

/// The longest trailer section accepted after a body's last chunk.
const MAX_TRAILER_BYTES: usize = 16 << 10;

/// How much unread input is drained at close before giving up on the client.
const LINGER_BYTES: usize = 1 << 20;

/// How long input is drained at close.
const LINGER_TIME: Duration = Duration::from_millis(500);

/// The next piece of a chunked body.
#[derive(Debug, PartialEq, Eq)]
pub enum Piece {
    /// Body bytes, at most 64 KiB of them (one read).
    Data(Bytes),
    /// The last chunk: the body ends, or with `ieof: false` after a preview, pauses until
    /// `100 Continue`.
    End {
        /// The client said the body is complete (`0; ieof`).
        ieof: bool,
    },
}

/// Why a request could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// See [`FrameError`].
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The client closed in the middle of a request.
    #[error("connection closed in the middle of a request")]
    Closed,
    /// The socket failed.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Where the body reader is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunking {
    /// Expecting a chunk-size line.
    Line,
    /// Inside a chunk's data, with this much left.
    Data(u64),
    /// After a chunk's data, expecting its CRLF.
    DataEnd,
}

/// A connection and what has been received on it but not yet used.
pub struct Connection<T> {
    stream: T,
    buffer: BytesMut,
    chunking: Chunking,
    eof: bool,
}

impl<T: AsyncRead + AsyncWrite + Unpin> Connection<T> {
    /// Wraps an accepted connection.
    pub fn new(stream: T) -> Connection<T> {
        Connection { stream, buffer: BytesMut::new(), chunking: Chunking::Line, eof: false }
    }

    /// Waits for the first byte of the next request: `false` if the client closed instead.
    pub async fn wait_for_request(&mut self) -> io::Result<bool> {
        while self.buffer.is_empty() {
            if self.fill().await? == 0 {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Reads the next request head; `None` if the client closed between requests.
    pub async fn read_head(&mut self) -> Result<Option<RequestHead>, ReadError> {
        loop {
            if let Some((head, consumed)) = frame::parse_head(&self.buffer)? {
                self.buffer.advance(consumed);
                self.chunking = Chunking::Line;
                return Ok(Some(head));
            }
            if self.fill().await? == 0 {
                return if self.buffer.is_empty() { Ok(None) } else { Err(ReadError::Closed) };
            }
        }
    }

    /// Reads exactly `len` bytes: the encapsulated header sections, whose length the
    /// `Encapsulated` header gave (and [`frame`] bounded).
    pub async fn read_exact(&mut self, len: usize) -> Result<Bytes, ReadError> {
        while self.buffer.len() < len {
            if self.fill().await? == 0 {
                return Err(ReadError::Closed);
            }
        }
        Ok(self.buffer.split_to(len).freeze())
    }

    /// Reads the next piece of a chunked body.
    pub async fn read_piece(&mut self) -> Result<Piece, ReadError> {
        loop {
            match self.chunking {
                Chunking::Data(left) => {
                    if self.buffer.is_empty() && self.fill().await? == 0 {
                        return Err(ReadError::Closed);
                    }
                    let take =
                        self.buffer.len().min(READ_SIZE).min(usize::try_from(left).unwrap_or(usize::MAX));
                    let left = left - take as u64;
                    self.chunking = if left == 0 { Chunking::DataEnd } else { Chunking::Data(left) };
                    return Ok(Piece::Data(self.buffer.split_to(take).freeze()));
                }
                Chunking::DataEnd => {
                    while self.buffer.len() < 2 {
                        if self.fill().await? == 0 {
                            return Err(ReadError::Closed);
                        }
                    }
                    if &self.buffer[..2] != b"\r\n" {
                        return Err(FrameError::BadChunk("chunk data longer than its size").into());
                    }
                    self.buffer.advance(2);
                    self.chunking = Chunking::Line;
                }
                Chunking::Line => match frame::parse_chunk_line(&self.buffer)? {
                    Some(line) if line.size == 0 => {
                        self.buffer.advance(line.consumed);
                        self.skip_trailers().await?;
                        return Ok(Piece::End { ieof: line.ieof });
                    }
                    Some(line) => {
                        self.buffer.advance(line.consumed);
                        self.chunking = Chunking::Data(line.size);
                    }
                    None => {
                        if self.fill().await? == 0 {
                            return Err(ReadError::Closed);
                        }
                    }
                },
            }
        }
    }

    /// Reads the rest of a body and drops it, for content not worth hashing when the client
    /// did not use a preview.
    pub async fn discard_body(&mut self) -> Result<(), ReadError> {
        while let Piece::Data(_) = self.read_piece().await? {}
        Ok(())
    }

    /// Skips the trailer fields after a last chunk, up to the empty line that ends them.
    async fn skip_trailers(&mut self) -> Result<(), ReadError> {
        let mut skipped = 0;
        loop {
            if let Some(end) = self.buffer.windows(2).position(|pair| pair == b"\r\n") {
                self.buffer.advance(end + 2);
                if end == 0 {
                    return Ok(());
                }
                skipped += end + 2;
            } else if self.fill().await? == 0 {
                return Err(ReadError::Closed);
            }
            if skipped + self.buffer.len() > MAX_TRAILER_BYTES + READ_SIZE {
                return Err(FrameError::BadChunk("trailers too long").into());
            }
        }
    }

    /// Writes a whole response.
    pub async fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes).await
    }

    /// Closes so that the client sees the last response: the write side first, then what the
    /// client is still sending is read and dropped for a moment (bounded in bytes and time),
    /// since closing with unread input would reset the connection and could destroy the
    /// response before the client reads it.
    pub async fn shutdown(&mut self) {
        if self.stream.shutdown().await.is_err() || self.eof {
            return;
        }
        let drain = async {
            let mut discarded = 0;
            while discarded < LINGER_BYTES {
                self.buffer.clear();
                match self.fill().await {
                    Ok(0) | Err(_) => break,
                    Ok(read) => discarded += read,
                }
            }
        };
        let _ = tokio::time::timeout(LINGER_TIME, drain).await;
    }

    /// Reads what the socket has, up to [`READ_SIZE`]; 0 at end of stream.
    async fn fill(&mut self) -> io::Result<usize> {
        self.buffer.reserve(READ_SIZE);
        let read = self.stream.read_buf(&mut (&mut self.buffer).limit(READ_SIZE)).await?;
        self.eof |= read == 0;
        Ok(read)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn pieces(input: &[u8]) -> Result<(Vec<u8>, bool, usize), ReadError> {
        let (mut client, server) = tokio::io::duplex(1 << 20);
        client.write_all(input).await.unwrap();
        drop(client);
        let mut connection = Connection::new(server);
        let (mut body, mut count) = (Vec::new(), 0);
        loop {
            match connection.read_piece().await? {
                Piece::Data(data) => {
                    assert!(data.len() <= READ_SIZE);
                    body.extend_from_slice(&data);
                    count += 1;
                }
                Piece::End { ieof } => return Ok((body, ieof, count)),
            }
        }
    }

    #[tokio::test]
    async fn chunked_bodies_are_read_in_bounded_pieces() {
        let (body, ieof, _) = pieces(b"5\r\nhello\r\n1;x=y\r\n!\r\n0; ieof\r\n\r\n").await.unwrap();
        assert_eq!((body.as_slice(), ieof), (&b"hello!"[..], true));
        let big = vec![7u8; 3 * READ_SIZE + 5];
        let mut input = format!("{:x}\r\n", big.len()).into_bytes();
        input.extend_from_slice(&big);
        input.extend_from_slice(b"\r\n0\r\nX-Trailer: 1\r\n\r\n");
        let (body, ieof, count) = pieces(&input).await.unwrap();
        assert_eq!((body, ieof), (big, false));
        assert!(count >= 4);
    }

    #[tokio::test]
    async fn broken_chunking_is_an_error_not_a_hang() {
        for input in [&b"5\r\nhello!!\r\n0\r\n\r\n"[..], b"zz\r\n", b"5\r\nhel", b"0\r\n", b"3\r\nabc"] {
            assert!(pieces(input).await.is_err(), "{input:?}");
        }
        let mut trailers = b"0\r\n".to_vec();
        trailers.resize(MAX_TRAILER_BYTES + 2 * READ_SIZE, b'a');
        assert!(matches!(pieces(&trailers).await, Err(ReadError::Frame(_))));
    }
}
