//! `hashsieve manpages` and `hashsieve completions`: this command's manual and shell
//! completions, made from the same definitions as `--help` (see `hashsieve-assets`).

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, CommandFactory};
use hashsieve_assets::Shell;

use crate::{Cli, RunStatus};

/// Write the man pages of hashsieve and of each subcommand into a directory.
///
/// One page per command, as git and cargo have them: hashsieve(1), hashsieve-scan(1),
/// hashsieve-index-build(1), … Their text is that of --help.
#[derive(Debug, Args)]
pub struct ManpagesArgs {
    /// Where to write the pages (created if missing).
    #[arg(value_name = "DIR")]
    dir: PathBuf,
}

/// Print the completion script for a shell.
///
/// For bash: hashsieve completions bash > ~/.local/share/bash-completion/completions/hashsieve
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    shell: Shell,
}

pub fn run_manpages(args: ManpagesArgs) -> anyhow::Result<RunStatus> {
    let pages = hashsieve_assets::write_man_pages(Cli::command(), "1", &args.dir)
        .with_context(|| format!("cannot write man pages into {}", args.dir.display()))?;
    for page in pages {
        println!("{}", page.display());
    }
    Ok(RunStatus::Clean)
}

pub fn run_completions(args: CompletionsArgs) -> anyhow::Result<RunStatus> {
    hashsieve_assets::write_completions(Cli::command(), args.shell, &mut std::io::stdout().lock())
        .context("cannot write the completion script")?;
    Ok(RunStatus::Clean)
}
