//! `hashsieved`: the daemon. See the crate documentation and `docs/API.md`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use hashsieve_daemon::config::Config;

/// Serve a hashsieve index over HTTP/JSON.
#[derive(Debug, Parser)]
#[command(name = "hashsieved", version, about)]
struct Args {
    /// The configuration file (TOML).
    #[arg(long, value_name = "FILE", required_unless_present = "index", conflicts_with = "index")]
    config: Option<PathBuf>,

    /// Serve this index directory or file with default settings (loopback only).
    #[arg(long, value_name = "PATH")]
    index: Option<PathBuf>,

    /// With --index: where to listen.
    #[arg(long, value_name = "ADDR:PORT", requires = "index")]
    listen: Option<std::net::SocketAddr>,

    /// With --index: open the index directory for writing (list changes need an admin token,
    /// so this takes effect with a configuration file that names one).
    #[arg(long, requires = "index")]
    writable: bool,

    /// Check the configuration and the index, then exit.
    #[arg(long)]
    check_config: bool,
}

fn config(args: &Args) -> anyhow::Result<Config> {
    if let Some(path) = &args.config {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        return Config::from_toml(&text).with_context(|| path.display().to_string());
    }
    let mut config = Config::for_index(args.index.clone().expect("clap requires --index without --config"));
    if let Some(listen) = args.listen {
        config.http.listen = listen;
    }
    config.writable = args.writable;
    Ok(config)
}

fn logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("HASHSIEVE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(filter);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let config = match config(&args) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("hashsieved: {err:#}");
            return ExitCode::from(2);
        }
    };
    logging(config.logging.json);
    let result = hashsieve_daemon::run(&config, args.check_config);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err:#}");
            eprintln!("hashsieved: {err:#}");
            ExitCode::from(1)
        }
    }
}
