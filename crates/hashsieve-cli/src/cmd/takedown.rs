//! `hashsieve takedown …`: the takedown cases of a hotline's triage store, read offline — the
//! block list exported for ISPs, referrals and notices written out, cases and figures
//! printed — from a store no daemon holds (a stopped one's, or a backup copy). A running
//! daemon's store is locked: use its `/v1/takedown` API instead.
//!
//! Every output is JSON (a line per record, or one document), but the block list, which is
//! in the format asked for.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use hashsieve_triage::blocklist::{self, Format, rpz};
use hashsieve_triage::takedown::{Case, CaseFilter, CaseId, CaseState, Notice, TakedownOptions};
use hashsieve_triage::{Triage, TriageOptions};
use serde::Serialize;

use crate::RunStatus;

/// Read the takedown cases of a triage store: cases, the block list, referrals, notices,
/// figures.
#[derive(Debug, Subcommand)]
pub enum TakedownCommand {
    Cases(CasesArgs),
    Case(CaseArgs),
    Blocklist(BlocklistArgs),
    Referrals(HotlineArgs),
    Notices(HotlineArgs),
    /// Print the times from first report to confirmation, notice and removal (median and p90,
    /// of all cases, per hosting country and per network), and the cases by state and age.
    Figures(StoreArg),
}

/// The triage store.
#[derive(Debug, Args)]
pub struct StoreArg {
    /// The triage store (`[triage] store` of the daemon that held it).
    #[arg(long, value_name = "FILE")]
    store: PathBuf,
}

/// Print cases as JSON Lines, in id order.
#[derive(Debug, Args)]
pub struct CasesArgs {
    #[command(flatten)]
    store: StoreArg,
    /// Only cases in these states (open, notified, still_online, escalated, referred, removed,
    /// closed).
    #[arg(long, value_name = "STATE", value_delimiter = ',')]
    state: Vec<String>,
    /// Only cases hosted in this country (ISO 3166-1 alpha-2).
    #[arg(long, value_name = "CC")]
    country: Option<String>,
    /// Only cases confirmed at least this many hours ago.
    #[arg(long, value_name = "HOURS")]
    min_age_hours: Option<u64>,
}

/// Print one case and its history as JSON.
#[derive(Debug, Args)]
pub struct CaseArgs {
    #[command(flatten)]
    store: StoreArg,
    /// The case.
    #[arg(value_name = "CASE")]
    case: u64,
}

/// Write the URL block list: the URLs of confirmed content still online, past the grace
/// period (or at once when hosted abroad).
#[derive(Debug, Args)]
pub struct BlocklistArgs {
    #[command(flatten)]
    store: StoreArg,
    /// The format: plain (a URL a line), json, squid-urls, squid-url-hosts, squid-whole-hosts
    /// (Squid ACL files, used together), rpz (a DNS response policy zone of whole hosts).
    #[arg(long, value_name = "FORMAT", default_value = "plain", value_parser = parse_format)]
    format: Format,
    /// The response policy zone's name (rpz), absolute.
    #[arg(long, value_name = "NAME", default_value = "rpz.hashsieve.invalid.")]
    rpz_origin: String,
    /// The grace period after confirmation, in hours, before a URL at home is listed (the
    /// daemon's `takedown.block_after_secs`).
    #[arg(long, value_name = "HOURS", default_value_t = 24)]
    block_after_hours: u64,
    /// Write here (atomically: a file beside it, renamed over it) instead of to standard output.
    #[arg(long, short, value_name = "FILE")]
    output: Option<PathBuf>,
}

fn parse_format(text: &str) -> Result<Format, String> {
    text.parse()
}

/// Who the hotline is, for the documents.
#[derive(Debug, Args)]
pub struct HotlineArgs {
    #[command(flatten)]
    store: StoreArg,
    /// The hotline's name, as the documents give it.
    #[arg(long, value_name = "NAME", default_value = "hashsieve hotline")]
    hotline: String,
    /// The prefix of the hotline's notice references.
    #[arg(long, value_name = "PREFIX", default_value = "HS")]
    reference: String,
}

/// Runs a `takedown` subcommand.
pub fn run(command: TakedownCommand) -> anyhow::Result<RunStatus> {
    let now = hashsieve_core::clock::now_ms();
    match command {
        TakedownCommand::Cases(args) => {
            let triage = open(&args.store.store, TriageOptions::default())?;
            let states = args
                .state
                .iter()
                .map(|name| name.parse::<CaseState>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(anyhow::Error::msg)?;
            let filter = CaseFilter {
                states,
                country: args.country.map(|country| country.to_ascii_uppercase()),
                min_age_ms: args.min_age_hours.map(|hours| hours.saturating_mul(3_600_000)),
                item: None,
                abroad: None,
            };
            each_page(&triage, &filter, now, json_lines::<Case>)?;
        }
        TakedownCommand::Case(args) => {
            let triage = open(&args.store.store, TriageOptions::default())?;
            let id = CaseId(args.case);
            #[derive(Serialize)]
            struct Detail {
                case: hashsieve_triage::takedown::Case,
                history: Vec<hashsieve_triage::takedown::CaseEvent>,
            }
            let detail = Detail { case: triage.case(id)?, history: triage.case_history(id)? };
            json_lines(&[detail])?;
        }
        TakedownCommand::Blocklist(args) => {
            let takedown = TakedownOptions {
                block_after_ms: args.block_after_hours.saturating_mul(3_600_000),
                ..TakedownOptions::default()
            };
            let triage = open(&args.store.store, TriageOptions { takedown, ..TriageOptions::default() })?;
            let entries = triage.block_list(now)?.entries;
            // The zone's serial: seconds since the epoch, which grow with every export.
            let zone = rpz::Zone { origin: args.rpz_origin, serial: (now / 1000) as u32 };
            let mut summary = None;
            write_out(args.output.as_deref(), |out| {
                summary = Some(blocklist::write(args.format, &entries, &zone, out)?);
                Ok(())
            })?;
            let summary = summary.expect("written");
            eprintln!(
                "hashsieve: {} URLs on the block list; {} written as {}, {} left out",
                entries.len(),
                summary.written,
                args.format.name(),
                summary.total_skipped()
            );
        }
        TakedownCommand::Referrals(args) => {
            let triage = open(&args.store.store, TriageOptions::default())?;
            json_lines(&triage.referrals(&args.hotline)?)?;
        }
        TakedownCommand::Notices(args) => {
            let triage = open(&args.store.store, TriageOptions::default())?;
            each_page(&triage, &CaseFilter::notices_to_send(), now, |cases| {
                let notices: Vec<Notice> =
                    cases.iter().map(|case| Notice::new(case, &args.hotline, &args.reference)).collect();
                json_lines(&notices)
            })?;
        }
        TakedownCommand::Figures(args) => {
            let triage = open(&args.store, TriageOptions::default())?;
            json_lines(&[triage.takedown_figures(now)?])?;
        }
    }
    Ok(RunStatus::Clean)
}

/// Opens an existing store (never creates one: a mistyped path is an error).
fn open(path: &Path, options: TriageOptions) -> anyhow::Result<Triage> {
    if !path.is_file() {
        bail!("no triage store at {}", path.display());
    }
    Triage::open(path, options).with_context(|| {
        format!("opening {} (a running daemon holds its store: use its /v1/takedown API)", path.display())
    })
}

/// Runs `write` on the cases `filter` admits, a page at a time, so that a store of millions
/// of cases is written out in bounded memory.
fn each_page(
    triage: &Triage,
    filter: &CaseFilter,
    now: u64,
    mut write: impl FnMut(&[Case]) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    const PAGE: usize = 1000;
    let mut after = None;
    loop {
        let page = triage.cases(filter, now, PAGE, after)?;
        write(&page.cases)?;
        match page.next {
            Some(next) => after = Some(next),
            None => return Ok(()),
        }
    }
}

fn json_lines<T: Serialize>(records: &[T]) -> anyhow::Result<()> {
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    for record in records {
        serde_json::to_writer(&mut out, record)?;
        writeln!(out)?;
    }
    out.flush()?;
    Ok(())
}

/// Writes to `path` atomically (a temporary file beside it, renamed over it: an ISP's proxy
/// reading the file never sees half a list), or to standard output.
fn write_out(
    path: Option<&Path>,
    write: impl FnOnce(&mut dyn Write) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    match path {
        None => {
            let stdout = io::stdout();
            let mut out = BufWriter::new(stdout.lock());
            write(&mut out)?;
            out.flush()?;
        }
        Some(path) => {
            let name = path.file_name().context("the output needs a file name")?.to_string_lossy();
            let partial = path.with_file_name(format!(".{name}.partial"));
            let mut out = BufWriter::new(
                File::create(&partial).with_context(|| format!("creating {}", partial.display()))?,
            );
            write(&mut out)?;
            out.into_inner().map_err(|err| err.into_error())?.sync_all()?;
            std::fs::rename(&partial, path).with_context(|| format!("renaming over {}", path.display()))?;
        }
    }
    Ok(())
}
