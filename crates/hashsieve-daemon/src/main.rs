//! `hashsieved`: the daemon. See the crate documentation and `docs/API.md`.

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{CommandFactory, Parser};
use hashsieve_daemon::config::Config;

/// Serve hash lists of known child sexual abuse material over HTTP/JSON, clamd's protocol and ICAP.
///
/// hashsieved answers whether content, or a hash of it, is on the hash lists of an index
/// directory (made with `hashsieve index build --dir`): for web proxies (ICAP), antivirus
/// plumbing (clamd's protocol), upload pipelines and a hotline's triage (HTTP/JSON, Redis
/// Streams). A read-only daemon follows the changes other processes make to its index
/// directory; it never writes content to disk or logs, only hashes and metadata.
///
/// Configuration: /etc/hashsieve/hashsieved.toml in the Debian package, which documents every
/// setting; `--index` serves an index with the defaults (loopback only, read-only).
///
/// Signals: SIGHUP reloads the index (a failed reload leaves the old one serving); SIGTERM and
/// SIGINT stop accepting and let requests in flight finish.
///
/// Logs and the audit trail (one line per decision: client, token, hashes, verdict, matched
/// entries) go to standard error; HASHSIEVE_LOG sets the filter (default "info"; e.g.
/// "debug"), `[logging] json = true` writes JSON lines.
///
/// Exit status: 0 after a graceful stop or a good --check-config, 1 when serving failed, 2 when
/// the arguments or the configuration were refused.
#[derive(Debug, Parser)]
#[command(name = "hashsieved", version)]
struct Args {
    /// The configuration file (TOML).
    #[arg(
        long,
        value_name = "FILE",
        required_unless_present_any = ["index", "manpages", "completions"],
        conflicts_with = "index"
    )]
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

    /// Write this command's man page, hashsieved(8), into DIR, then exit. Its text is that of
    /// --help.
    #[arg(long, value_name = "DIR", exclusive = true)]
    manpages: Option<PathBuf>,

    /// Print the completion script for a shell, then exit.
    #[arg(long, value_name = "SHELL", exclusive = true)]
    completions: Option<hashsieve_assets::Shell>,
}

/// Writes the manual page or completion script asked for.
fn write_assets(
    manpages: Option<&PathBuf>,
    completions: Option<hashsieve_assets::Shell>,
) -> anyhow::Result<()> {
    if let Some(dir) = manpages {
        let pages = hashsieve_assets::write_man_pages(Args::command(), "8", dir)
            .with_context(|| format!("cannot write the man page into {}", dir.display()))?;
        for page in pages {
            println!("{}", page.display());
        }
    }
    if let Some(shell) = completions {
        hashsieve_assets::write_completions(Args::command(), shell, &mut std::io::stdout().lock())
            .context("cannot write the completion script")?;
    }
    Ok(())
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
    if args.manpages.is_some() || args.completions.is_some() {
        return match write_assets(args.manpages.as_ref(), args.completions) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("hashsieved: {err:#}");
                ExitCode::from(2)
            }
        };
    }
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
