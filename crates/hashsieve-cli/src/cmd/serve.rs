//! `hashsieve serve`: the daemon on an index with safe defaults, for a quick local start.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;
use hashsieve_daemon::config::{Config, DEFAULT_PORT};

use crate::RunStatus;

/// Serve an index over HTTP on this machine only (see `hashsieved` for the full daemon).
///
/// Listens on loopback, read-only, without tokens: anyone on this machine can match, no one
/// can change lists. Stop it with Ctrl-C or SIGTERM; requests in flight are finished first.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The index directory or file.
    #[arg(value_name = "INDEX")]
    index: PathBuf,

    /// Port on 127.0.0.1 (0: any free port; the address is printed).
    #[arg(long, default_value_t = DEFAULT_PORT)]
    port: u16,
}

pub fn run(args: ServeArgs) -> anyhow::Result<RunStatus> {
    let mut config = Config::for_index(args.index);
    config.http.listen = SocketAddr::from(([127, 0, 0, 1], args.port));
    hashsieve_daemon::run(&config, false)?;
    Ok(RunStatus::Clean)
}
