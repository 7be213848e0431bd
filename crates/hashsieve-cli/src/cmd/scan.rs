//! `hashsieve match` (hashes against an index) and `hashsieve scan` (files against an index).

use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Args;
use hashsieve_core::files::walk_files;
use hashsieve_core::hashes::HashKind;
use hashsieve_core::import::{self, Mode};
use hashsieve_core::index::{IndexBuilder, ListOptions};
use hashsieve_core::matcher::{Match, MatchOptions, MatchOutcome, MatchVerdict, Matcher};
use rayon::prelude::*;
use serde::Serialize;

use crate::RunStatus;
use crate::output::Format;
use crate::progress;

/// Files are checked in batches of this many, in parallel, reported in input order.
const BATCH: usize = 256;

/// Which index to match against, and how.
#[derive(Debug, Args)]
pub struct IndexChoice {
    /// The index file or index directory to match against (see `hashsieve index build`); a
    /// directory is read with its live changes, without taking its write lock.
    #[arg(long, value_name = "INDEX", required_unless_present = "demo", conflicts_with = "demo")]
    index: Option<PathBuf>,

    /// Match against the bundled demo list: test signatures of the sample images in
    /// samples/images, so that a scan shows real matches without any real list.
    #[arg(long)]
    demo: bool,

    /// PDQ threshold for every list instead of each list's own.
    #[arg(long, value_name = "BITS")]
    pdq_threshold: Option<u32>,

    /// PDQ hashes of lower quality are reported as weak and not matched (default 50).
    #[arg(long, value_name = "QUALITY", default_value_t = hashsieve_core::matcher::DEFAULT_MIN_PDQ_QUALITY)]
    min_pdq_quality: u8,

    /// Search the PDQ hash alone, not its eight rotations and mirror images.
    #[arg(long)]
    no_dihedral: bool,

    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Json)]
    format: Format,
}

impl IndexChoice {
    fn matcher(&self) -> anyhow::Result<Matcher> {
        let matcher = match &self.index {
            Some(path) => {
                Matcher::open(path).with_context(|| format!("cannot open index {}", path.display()))?
            }
            None => demo_matcher()?,
        };
        Ok(matcher.with_options(MatchOptions {
            min_pdq_quality: self.min_pdq_quality,
            dihedral: !self.no_dihedral,
            pdq_threshold: self.pdq_threshold,
            hamming_threshold: None,
        }))
    }
}

/// The demo list, built in memory from the two files bundled in the binary.
fn demo_matcher() -> anyhow::Result<Matcher> {
    const MD5: &str = include_str!("../../../../samples/demo-md5.txt");
    const PDQ: &str = include_str!("../../../../samples/demo-pdq.csv");
    let mut builder = IndexBuilder::new();
    let md5 = builder.add_list(ListOptions::new("demo-md5"))?;
    let pdq = builder.add_list(ListOptions::new("demo-pdq"))?;
    let mut entries = Vec::new();
    import::import_lines(MD5.as_bytes(), "demo-md5.txt", HashKind::Md5, Mode::Strict, |e| {
        entries.push((md5, e))
    })?;
    import::import_csv(PDQ.as_bytes(), "demo-pdq.csv", HashKind::Pdq, Mode::Strict, |e| {
        entries.push((pdq, e))
    })?;
    for (list, entry) in entries {
        builder.add(list, &entry)?;
    }
    Ok(Matcher::from_bytes(builder.to_vec())?)
}

/// Match hashes against an index.
///
/// Each HASH is KIND:VALUE (e.g. pdq:f8f8…), or a bare VALUE of the kind given by --kind.
/// Prints every match; exit status 1 when something matched, 0 when nothing did.
#[derive(Debug, Args)]
pub struct MatchArgs {
    #[command(flatten)]
    index: IndexChoice,

    /// The kind of bare hash values.
    #[arg(long, value_name = "KIND")]
    kind: Option<HashKind>,

    /// Hashes to look up.
    #[arg(required = true, value_name = "HASH")]
    hashes: Vec<String>,
}

/// Check files and directories against an index.
///
/// Directories are walked recursively. Each file is hashed once (digests, and the perceptual
/// hashes the index has entries of) and every match is printed, as JSON Lines or CSV; a summary
/// goes to standard error. Exit status: 1 when anything matched, else 2 when some file could not
/// be read, else 0.
#[derive(Debug, Args)]
pub struct ScanArgs {
    #[command(flatten)]
    index: IndexChoice,

    /// Files or directories to check.
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,

    /// Worker threads (default: one per core).
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
}

#[derive(Serialize)]
struct Row<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    path: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    query: Option<&'a str>,
    outcome: MatchOutcome,
    #[serde(flatten)]
    matched: &'a Match,
}

const CSV_HEADER: [&str; 12] = [
    "path",
    "outcome",
    "list",
    "entry_id",
    "category",
    "source",
    "kind",
    "value",
    "distance",
    "variant",
    "suppressed_by",
    "query",
];

/// Prints one row per match.
enum MatchWriter<W: Write> {
    Json(W),
    Csv(Box<csv::Writer<W>>),
}

impl<W: Write> MatchWriter<W> {
    fn new(format: Format, out: W) -> io::Result<MatchWriter<W>> {
        Ok(match format {
            Format::Json => MatchWriter::Json(out),
            Format::Csv => {
                let mut csv = csv::Writer::from_writer(out);
                csv.write_record(CSV_HEADER)?;
                MatchWriter::Csv(Box::new(csv))
            }
        })
    }

    fn write(&mut self, path: Option<&str>, query: Option<&str>, answer: &MatchVerdict) -> io::Result<()> {
        for matched in &answer.matches {
            match self {
                MatchWriter::Csv(csv) => csv.write_record([
                    path.unwrap_or(""),
                    outcome_name(answer.outcome),
                    &matched.list,
                    matched.entry_id.as_deref().unwrap_or(""),
                    matched.category.as_deref().unwrap_or(""),
                    matched.source.as_deref().unwrap_or(""),
                    matched.kind.name(),
                    &matched.value,
                    &matched.distance.to_string(),
                    matched.variant.unwrap_or(""),
                    &matched.suppressed_by.as_ref().map(|allowed| suppressor(allowed)).unwrap_or_default(),
                    query.unwrap_or(""),
                ])?,
                MatchWriter::Json(out) => {
                    serde_json::to_writer(&mut *out, &Row { path, query, outcome: answer.outcome, matched })?;
                    out.write_all(b"\n")?;
                }
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            MatchWriter::Csv(csv) => csv.flush(),
            MatchWriter::Json(out) => out.flush(),
        }
    }
}

/// The allow-list entry that suppressed a match, as `list:id` (or `list:kind:value`).
fn suppressor(allowed: &Match) -> String {
    match &allowed.entry_id {
        Some(id) => format!("{}:{id}", allowed.list),
        None => format!("{}:{}:{}", allowed.list, allowed.kind, allowed.value),
    }
}

fn outcome_name(outcome: MatchOutcome) -> &'static str {
    match outcome {
        MatchOutcome::Known => "known",
        MatchOutcome::NearKnown => "near_known",
        MatchOutcome::Unknown => "unknown",
    }
}

pub fn run_match(args: MatchArgs) -> anyhow::Result<RunStatus> {
    let matcher = args.index.matcher()?;
    let stdout = io::stdout().lock();
    let mut writer = MatchWriter::new(args.index.format, BufWriter::new(stdout))?;
    let mut matched = false;
    for text in &args.hashes {
        let (kind, value) = match text.split_once(':') {
            Some((kind, value)) => (kind.parse::<HashKind>()?, value),
            None => match args.kind {
                Some(kind) => (kind, text.as_str()),
                None => bail!("{text}: give the hash kind, as KIND:VALUE or with --kind"),
            },
        };
        let value = kind.parse_value(value).with_context(|| text.clone())?;
        let answer = matcher.check_hash(kind, &value);
        matched |= answer.outcome != MatchOutcome::Unknown;
        writer.write(None, Some(text), &answer)?;
    }
    writer.flush()?;
    Ok(if matched { RunStatus::Matched } else { RunStatus::Clean })
}

pub fn run_scan(args: ScanArgs) -> anyhow::Result<RunStatus> {
    if let Some(threads) = args.threads {
        rayon::ThreadPoolBuilder::new().num_threads(threads).build_global()?;
    }
    let started = Instant::now();
    let matcher = args.index.matcher()?;
    let mut files = Vec::new();
    let mut errors = 0u64;
    for item in walk_files(&args.paths) {
        match item {
            Ok(file) => files.push(file),
            Err(err) => {
                errors += 1;
                eprintln!("hashsieve: {err}");
            }
        }
    }
    let bar = progress::bar(files.len() as u64, "files");
    let stdout = io::stdout().lock();
    let mut writer = MatchWriter::new(args.index.format, BufWriter::new(stdout))?;
    let (mut matched_files, mut matches, mut weak, mut not_images) = (0u64, 0u64, 0u64, 0u64);
    for batch in files.chunks(BATCH) {
        let answers: Vec<_> = batch.par_iter().map(|path| matcher.check_path(path)).collect();
        for (path, answer) in batch.iter().zip(answers) {
            bar.inc(1);
            match answer {
                Ok(answer) => {
                    matched_files += u64::from(answer.outcome != MatchOutcome::Unknown);
                    matches += answer.matches.len() as u64;
                    weak += u64::from(answer.weak_pdq);
                    not_images += u64::from(!answer.errors.is_empty());
                    writer.write(Some(&display(path)), None, &answer)?;
                }
                Err(err) => {
                    errors += 1;
                    bar.suspend(|| eprintln!("hashsieve: {err}"));
                }
            }
        }
    }
    writer.flush()?;
    bar.finish_and_clear();
    eprintln!(
        "hashsieve: scanned {} files in {:.2} s: {matched_files} matched ({matches} matches), {errors} could not \
         be read, {not_images} not decoded as images, {weak} with a PDQ hash too weak to match",
        files.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(if matched_files > 0 {
        RunStatus::Matched
    } else if errors > 0 {
        RunStatus::SomeInputsFailed
    } else {
        RunStatus::Clean
    })
}

fn display(path: &Path) -> String {
    path.display().to_string()
}
