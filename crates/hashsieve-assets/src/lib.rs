//! Man pages and shell completions of the hashsieve commands, made from their clap definitions.
//!
//! `hashsieve --help`, `man hashsieve` and tab completion all come from one source, the
//! command's `clap::Command`, so they cannot drift apart. Each binary exposes this through a
//! subcommand or flag of its own (`hashsieve manpages DIR`, `hashsieve completions SHELL`,
//! `hashsieved --manpages DIR`, `hashsieved --completions SHELL`); the Debian package is built
//! with them, and a `cargo install` user can set up completions the same way.
//!
//! ```
//! use clap::{Arg, Command};
//!
//! let command = Command::new("demo")
//!     .about("A demo command")
//!     .subcommand(Command::new("scan").about("Scan files").arg(Arg::new("threads").long("threads")));
//! let dir = std::env::temp_dir().join(format!("hashsieve-assets-doc-{}", std::process::id()));
//! let pages = hashsieve_assets::write_man_pages(command.clone(), "1", &dir).unwrap();
//! let names: Vec<_> = pages.iter().map(|p| p.file_name().unwrap().to_str().unwrap()).collect();
//! assert_eq!(names, ["demo.1", "demo-scan.1"]);
//! assert!(std::fs::read_to_string(&pages[1]).unwrap().contains("threads"));
//!
//! let mut script = Vec::new();
//! hashsieve_assets::write_completions(command, clap_complete::Shell::Bash, &mut script).unwrap();
//! assert!(String::from_utf8(script).unwrap().contains("complete -F _demo"));
//! # std::fs::remove_dir_all(&dir).unwrap();
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use clap::Command;
pub use clap_complete::Shell;

/// Writes one man page for `command` and one for each of its visible subcommands, at every
/// depth (`hashsieve.1`, `hashsieve-index.1`, `hashsieve-index-build.1`, …), in `section`, into
/// `dir` (created if missing). Returns the pages' paths, the command's own first.
pub fn write_man_pages(command: Command, section: &str, dir: &Path) -> io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    // Built, so that subcommands know their full names; `help` is clap's, not ours to document.
    let mut command = command.disable_help_subcommand(true);
    command.build();
    let mut pages = Vec::new();
    write_pages(&command, section, dir, &mut pages)?;
    Ok(pages)
}

fn write_pages(command: &Command, section: &str, dir: &Path, pages: &mut Vec<PathBuf>) -> io::Result<()> {
    let path = clap_mangen::Man::new(command.clone()).section(section).generate_to(dir)?;
    pages.push(path);
    for sub in command.get_subcommands().filter(|sub| !sub.is_hide_set()) {
        write_pages(sub, section, dir, pages)?;
    }
    Ok(())
}

/// Writes the completion script of `command` for `shell` to `out`.
pub fn write_completions(mut command: Command, shell: Shell, out: &mut dyn Write) -> io::Result<()> {
    let name = command.get_name().to_owned();
    // Made in memory first: clap_complete panics on a failed write (a closed pipe, say), and a
    // failed write is an error to report, not a crash.
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, name, &mut script);
    out.write_all(&script)?;
    out.flush()
}
