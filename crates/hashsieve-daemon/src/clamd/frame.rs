//! The clamd wire format, without I/O: finding one command in the bytes received so far, and
//! the length prefixes of an `INSTREAM` body.
//!
//! A command is one of three spellings:
//!
//! - `zCOMMAND\0`: delimited by a NUL byte; replies end with NUL too.
//! - `nCOMMAND\n`: delimited by a newline; replies end with a newline.
//! - `COMMAND\n`: clamd's deprecated "old style", one command a connection; replies end with a
//!   newline. Only some commands may be sent this way (see [`super::command`]).
//!
//! After `INSTREAM` the client sends chunks, each a 4-byte big-endian length and that many
//! bytes, and a zero length to end the stream.

use std::ops::Range;

/// The longest command accepted, argument included. clamd's own limit is about a path's
/// length; without one, a client sending no delimiter would grow the buffer for ever.
pub const MAX_COMMAND_BYTES: usize = 8 << 10;

/// How a command was delimited, which is also how its replies must end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delimiter {
    /// `z` prefix, NUL-terminated.
    Nul,
    /// `n` prefix, newline-terminated.
    Newline,
    /// No prefix: old style, newline-terminated.
    OldStyle,
}

impl Delimiter {
    /// The byte that ends every reply to a command delimited this way.
    pub fn terminator(self) -> u8 {
        match self {
            Delimiter::Nul => b'\0',
            Delimiter::Newline | Delimiter::OldStyle => b'\n',
        }
    }
}

/// One command found at the start of a buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawCommand {
    /// How it was delimited.
    pub delimiter: Delimiter,
    /// Where its text lies in the buffer: without prefix, delimiter or a trailing `\r`.
    pub text: Range<usize>,
    /// How many bytes of the buffer it used, delimiter included.
    pub consumed: usize,
}

/// Why the bytes received cannot be a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// No delimiter within [`MAX_COMMAND_BYTES`].
    #[error("command longer than {MAX_COMMAND_BYTES} bytes")]
    TooLong,
}

/// Finds the command at the start of `buffer`. `Ok(None)` means more bytes are needed; at the
/// end of the input (`eof`), an old-style command may end without its newline, as `echo -n
/// PING | nc` sends it.
pub fn parse_command(buffer: &[u8], eof: bool) -> Result<Option<RawCommand>, FrameError> {
    let Some(&first) = buffer.first() else { return Ok(None) };
    let (delimiter, start) = match first {
        b'z' => (Delimiter::Nul, 1),
        b'n' => (Delimiter::Newline, 1),
        _ => (Delimiter::OldStyle, 0),
    };
    let terminator = delimiter.terminator();
    let window = &buffer[..buffer.len().min(MAX_COMMAND_BYTES + 1)];
    let (end, consumed) = match window.iter().position(|&b| b == terminator) {
        Some(end) => (end, end + 1),
        None if window.len() > MAX_COMMAND_BYTES => return Err(FrameError::TooLong),
        None if eof && delimiter == Delimiter::OldStyle => (buffer.len(), buffer.len()),
        None => return Ok(None),
    };
    let mut text_end = end;
    // Newline-delimited commands may come from a terminal as `\r\n`.
    if terminator == b'\n' && text_end > start && buffer[text_end - 1] == b'\r' {
        text_end -= 1;
    }
    Ok(Some(RawCommand { delimiter, text: start..text_end, consumed }))
}

/// Reads the length prefix of the next `INSTREAM` chunk, if four bytes are there.
pub fn chunk_length(buffer: &[u8]) -> Option<u32> {
    let prefix: [u8; 4] = buffer.get(..4)?.try_into().ok()?;
    Some(u32::from_be_bytes(prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(buffer: &[u8], eof: bool) -> Option<(Delimiter, String, usize)> {
        parse_command(buffer, eof)
            .unwrap()
            .map(|c| (c.delimiter, String::from_utf8_lossy(&buffer[c.text]).into_owned(), c.consumed))
    }

    #[test]
    fn the_three_spellings() {
        assert_eq!(text(b"zPING\0zEND\0", false), Some((Delimiter::Nul, "PING".into(), 6)));
        assert_eq!(text(b"nVERSION\r\nrest", false), Some((Delimiter::Newline, "VERSION".into(), 10)));
        assert_eq!(text(b"PING\n", false), Some((Delimiter::OldStyle, "PING".into(), 5)));
        assert_eq!(text(b"PING", true), Some((Delimiter::OldStyle, "PING".into(), 4)));
        assert_eq!(text(b"zSCAN /a b\0", false), Some((Delimiter::Nul, "SCAN /a b".into(), 11)));
        // A NUL-delimited command keeps a newline inside it: it is part of the argument.
        assert_eq!(text(b"zSCAN /a\nb\0", false), Some((Delimiter::Nul, "SCAN /a\nb".into(), 11)));
    }

    #[test]
    fn incomplete_commands_wait_for_more() {
        assert_eq!(text(b"", false), None);
        assert_eq!(text(b"zPING", false), None);
        assert_eq!(text(b"zPING", true), None);
        assert_eq!(text(b"nPING", true), None);
        assert_eq!(text(b"PIN", false), None);
    }

    #[test]
    fn a_command_without_delimiter_is_bounded() {
        let long = vec![b'x'; MAX_COMMAND_BYTES + 1];
        assert_eq!(parse_command(&long, false), Err(FrameError::TooLong));
        let mut just = vec![b'z'; MAX_COMMAND_BYTES];
        just.push(0);
        assert!(parse_command(&just, false).unwrap().is_some());
    }

    #[test]
    fn chunk_lengths_are_big_endian() {
        assert_eq!(chunk_length(&[0, 0, 1, 0, 9]), Some(256));
        assert_eq!(chunk_length(&[0, 0, 1]), None);
        assert_eq!(chunk_length(&[0xff, 0xff, 0xff, 0xff]), Some(u32::MAX));
    }
}
