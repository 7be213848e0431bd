//! The clamd commands hashsieved understands, parsed from a command's text as clamd does: the
//! name, then for path scans one space and the path.

use std::path::PathBuf;

use super::frame::Delimiter;

/// How a path scan goes through a directory, as clamd's scan commands do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathScan {
    /// `SCAN`: stop at the first match.
    Scan,
    /// `CONTSCAN`: report every match.
    ContScan,
    /// `MULTISCAN`: every match, files hashed in parallel.
    MultiScan,
    /// `ALLMATCHSCAN`: every match of every file, not just the first of each.
    AllMatchScan,
}

/// A command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `PING`: answered `PONG`.
    Ping,
    /// `VERSION`: the program and the index generation.
    Version,
    /// `VERSIONCOMMANDS`: the version and the commands understood.
    VersionCommands,
    /// `RELOAD`: reopen the index.
    Reload,
    /// `SHUTDOWN`: refused; the daemon stops on SIGTERM from whoever manages it.
    Shutdown,
    /// `STATS`: connections and hashing load, in clamd's layout.
    Stats,
    /// `IDSESSION`: the connection carries several commands; replies carry their number.
    IdSession,
    /// `END`: ends a session.
    End,
    /// `INSTREAM`: the content follows in length-prefixed chunks.
    Instream,
    /// `FILDES`: the content is a file whose descriptor comes with the next byte (Unix socket).
    Fildes,
    /// `SCAN` and its kin: a path the daemon reads itself (Unix socket).
    Path(PathScan, PathBuf),
}

/// The command names, in the order `VERSIONCOMMANDS` lists them.
pub const NAMES: &[&str] = &[
    "PING",
    "VERSION",
    "VERSIONCOMMANDS",
    "RELOAD",
    "SHUTDOWN",
    "STATS",
    "IDSESSION",
    "END",
    "INSTREAM",
    "FILDES",
    "SCAN",
    "CONTSCAN",
    "MULTISCAN",
    "ALLMATCHSCAN",
];

impl Command {
    /// Parses a command's text. `None` is clamd's `UNKNOWN COMMAND`: a name it does not know,
    /// an argument where none belongs or none where one does, or a command that may not be
    /// sent old-style (clamd accepts only its oldest commands without a `z` or `n` prefix).
    pub fn parse(text: &[u8], delimiter: Delimiter) -> Option<Command> {
        let (name, argument) = match text.iter().position(|&b| b == b' ') {
            Some(space) => (&text[..space], Some(&text[space + 1..])),
            None => (text, None),
        };
        let path_scan = match name {
            b"SCAN" => Some(PathScan::Scan),
            b"CONTSCAN" => Some(PathScan::ContScan),
            b"MULTISCAN" => Some(PathScan::MultiScan),
            b"ALLMATCHSCAN" => Some(PathScan::AllMatchScan),
            _ => None,
        };
        let command = match (path_scan, argument) {
            (Some(scan), Some(path)) if !path.is_empty() => {
                use std::os::unix::ffi::OsStrExt;
                Command::Path(scan, PathBuf::from(std::ffi::OsStr::from_bytes(path)))
            }
            (Some(_), _) | (None, Some(_)) => return None,
            (None, None) => match name {
                b"PING" => Command::Ping,
                b"VERSION" => Command::Version,
                b"VERSIONCOMMANDS" => Command::VersionCommands,
                b"RELOAD" => Command::Reload,
                b"SHUTDOWN" => Command::Shutdown,
                b"STATS" => Command::Stats,
                b"IDSESSION" => Command::IdSession,
                b"END" => Command::End,
                b"INSTREAM" => Command::Instream,
                b"FILDES" => Command::Fildes,
                _ => return None,
            },
        };
        if delimiter == Delimiter::OldStyle && !command.allowed_old_style() {
            return None;
        }
        Some(command)
    }

    /// The command's name, as sent.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Ping => "PING",
            Command::Version => "VERSION",
            Command::VersionCommands => "VERSIONCOMMANDS",
            Command::Reload => "RELOAD",
            Command::Shutdown => "SHUTDOWN",
            Command::Stats => "STATS",
            Command::IdSession => "IDSESSION",
            Command::End => "END",
            Command::Instream => "INSTREAM",
            Command::Fildes => "FILDES",
            Command::Path(PathScan::Scan, _) => "SCAN",
            Command::Path(PathScan::ContScan, _) => "CONTSCAN",
            Command::Path(PathScan::MultiScan, _) => "MULTISCAN",
            Command::Path(PathScan::AllMatchScan, _) => "ALLMATCHSCAN",
        }
    }

    fn allowed_old_style(&self) -> bool {
        !matches!(
            self,
            Command::VersionCommands
                | Command::Stats
                | Command::IdSession
                | Command::End
                | Command::Instream
                | Command::Path(PathScan::AllMatchScan, _)
        )
    }

    /// Whether clamd accepts the command inside an `IDSESSION`.
    pub fn allowed_in_session(&self) -> bool {
        matches!(
            self,
            Command::Ping
                | Command::Version
                | Command::VersionCommands
                | Command::Stats
                | Command::End
                | Command::Instream
                | Command::Fildes
                | Command::Path(PathScan::Scan, _)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str, delimiter: Delimiter) -> Option<Command> {
        Command::parse(text.as_bytes(), delimiter)
    }

    #[test]
    fn names_and_arguments() {
        assert_eq!(parse("PING", Delimiter::Nul), Some(Command::Ping));
        assert_eq!(parse("VERSIONCOMMANDS", Delimiter::Newline), Some(Command::VersionCommands));
        assert_eq!(
            parse("CONTSCAN /srv/in box", Delimiter::Nul),
            Some(Command::Path(PathScan::ContScan, PathBuf::from("/srv/in box")))
        );
        for bad in ["PINGX", "PING ", "PING x", "SCAN", "SCAN ", "ping", "", "INSTREAM 5"] {
            assert_eq!(parse(bad, Delimiter::Nul), None, "{bad:?}");
        }
    }

    #[test]
    fn old_style_is_for_old_commands_only() {
        assert_eq!(parse("PING", Delimiter::OldStyle), Some(Command::Ping));
        assert_eq!(parse("RELOAD", Delimiter::OldStyle), Some(Command::Reload));
        for newer in ["INSTREAM", "IDSESSION", "STATS", "END", "VERSIONCOMMANDS", "ALLMATCHSCAN /x"] {
            assert_eq!(parse(newer, Delimiter::OldStyle), None, "{newer}");
            assert!(parse(newer, Delimiter::Newline).is_some(), "{newer}");
        }
    }

    #[test]
    fn every_listed_name_parses_and_names_itself() {
        for name in NAMES {
            let text = if ["SCAN", "CONTSCAN", "MULTISCAN", "ALLMATCHSCAN"].contains(name) {
                format!("{name} /tmp")
            } else {
                name.to_string()
            };
            assert_eq!(parse(&text, Delimiter::Nul).map(|command| command.name()), Some(*name));
        }
    }
}
