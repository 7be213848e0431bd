//! The `hashsieve` command: a thin front end over `hashsieve-core`.
//!
//! This crate only parses arguments, prints results and draws progress; every piece of work
//! that a program embedding the library would also need lives in `hashsieve-core`. `serve`,
//! which runs the daemon's HTTP listener in-process, is the default feature `serve`: without
//! it (`--no-default-features`) the command links neither the daemon nor its network stack.

#![forbid(unsafe_code)]

mod cmd;
mod output;
mod progress;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

/// Match content against lists of hashes of known child sexual abuse material.
#[derive(Debug, Parser)]
#[command(name = "hashsieve", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Hash(cmd::hash::HashArgs),
    /// Build, inspect or verify an index file.
    #[command(subcommand)]
    Index(cmd::index::IndexCommand),
    /// Change the lists of an index directory without a rebuild.
    #[command(subcommand)]
    List(cmd::list::ListCommand),
    Match(cmd::scan::MatchArgs),
    Scan(cmd::scan::ScanArgs),
    #[cfg(feature = "serve")]
    Serve(cmd::serve::ServeArgs),
    /// Read a hotline's takedown cases offline: the block list, referrals, notices, figures.
    #[cfg(feature = "takedown")]
    #[command(subcommand)]
    Takedown(cmd::takedown::TakedownCommand),
    Manpages(cmd::manual::ManpagesArgs),
    Completions(cmd::manual::CompletionsArgs),
}

/// The exit status of a run that did not fail outright.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    /// Everything asked for was done.
    Clean,
    /// Something matched a list (`scan`, `match`): exit status 1, as antivirus scanners do.
    Matched,
    /// The run finished, but some inputs could not be read or fully hashed.
    SomeInputsFailed,
}

fn main() -> ExitCode {
    // The library logs recovery and compaction events; they go to standard error, filtered by
    // HASHSIEVE_LOG (e.g. "debug"), warnings and errors by default.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("HASHSIEVE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let matches = match Cli::command().try_get_matches() {
        Ok(matches) => matches,
        // --help and --version are not errors; a usage error shares the status of other
        // fatal errors, keeping 2 for "some inputs failed".
        Err(err) => {
            let _ = err.print();
            return if err.use_stderr() { ExitCode::from(3) } else { ExitCode::SUCCESS };
        }
    };
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(err) => {
            let _ = err.print();
            return ExitCode::from(3);
        }
    };
    let result = match cli.command {
        Command::Hash(args) => cmd::hash::run(args),
        Command::Index(command) => {
            cmd::index::run(command, matches.subcommand_matches("index").expect("index was parsed"))
        }
        Command::List(command) => cmd::list::run(command),
        Command::Match(args) => cmd::scan::run_match(args),
        Command::Scan(args) => cmd::scan::run_scan(args),
        #[cfg(feature = "serve")]
        Command::Serve(args) => cmd::serve::run(args),
        #[cfg(feature = "takedown")]
        Command::Takedown(command) => cmd::takedown::run(command),
        Command::Manpages(args) => cmd::manual::run_manpages(args),
        Command::Completions(args) => cmd::manual::run_completions(args),
    };
    match result {
        Ok(RunStatus::Clean) => ExitCode::SUCCESS,
        Ok(RunStatus::Matched) => ExitCode::from(1),
        Ok(RunStatus::SomeInputsFailed) => ExitCode::from(2),
        Err(err) => {
            eprintln!("hashsieve: error: {err:#}");
            ExitCode::from(3)
        }
    }
}
