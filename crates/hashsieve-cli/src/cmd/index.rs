//! `hashsieve index build|inspect|verify`: make an index file from hash lists, and look at one.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use clap::{ArgMatches, Args, Subcommand};
use hashsieve_core::hashes::HashKind;
use hashsieve_core::import::{self, ImportReport, ImportedEntry, Mode};
use hashsieve_core::index::dir::{DirOptions, IndexDir};
use hashsieve_core::index::{Index, IndexBuilder, ListOptions, Metric, VectorDistance};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::RunStatus;

/// Build, inspect or verify an index file or index directory.
#[derive(Debug, Subcommand)]
pub enum IndexCommand {
    Build(BuildArgs),
    Inspect(InspectArgs),
    Verify(InspectArgs),
}

/// The format of a list file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ListFormat {
    /// One hash per line, or md5sum/sha1sum/sha256sum output.
    Lines,
    /// CSV with a header row; columns found by name.
    Csv,
    /// Project VIC VICS JSON.
    Vics,
}

/// Build an index file from hash lists.
///
/// Each --list names one file, optionally as NAME=PATH (the name defaults to the file's stem).
/// The list options (--format, --kind and the thresholds) given after a --list apply
/// to that list; given before the first --list they apply to every list that does not set its
/// own. --format defaults from the file's extension: .csv is csv, .json is vics, anything else
/// lines. --kind is required for lines and csv lists: a 64-hex-digit value could be SHA-256,
/// BLAKE3 or PDQ, so the kind is declared, never guessed.
///
/// Example:
///   hashsieve index build -o lists.hsidx --list ncmec=ncmec.md5 --kind md5 \
///       --list hma=pdq.csv --kind pdq --pdq-threshold 31 --list vics.json --lenient
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Where to write the index file (written atomically).
    #[arg(short, long, value_name = "INDEX", required_unless_present = "dir", conflicts_with = "dir")]
    output: Option<PathBuf>,

    /// Create an index directory instead: the index file plus a delta log, so that lists can
    /// then change without a rebuild (`hashsieve list`). The directory must not exist or be
    /// empty.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,

    /// A list file, as PATH or NAME=PATH. Repeat for more lists.
    #[arg(long = "list", value_name = "[NAME=]PATH", required = true)]
    lists: Vec<String>,

    /// The list's file format.
    #[arg(long, value_enum)]
    format: Vec<ListFormat>,

    /// The hash kind of a lines or csv list: md5, sha1, sha256, blake3, pdq, phash, dhash,
    /// ahash, photodna. For VICS lists, restricts the kinds imported (default md5, sha1 and,
    /// when a distance is declared, photodna).
    #[arg(long, value_name = "KIND")]
    kind: Vec<HashKind>,

    /// Skip (and report) records that cannot be imported instead of failing; applies to every
    /// list.
    #[arg(long)]
    lenient: bool,

    /// PDQ matches are at most this many bits away (default 31).
    #[arg(long, value_name = "BITS")]
    pdq_threshold: Vec<u32>,

    /// pHash/dHash/aHash matches are at most this many bits away (default 8).
    #[arg(long, value_name = "BITS")]
    hamming_threshold: Vec<u32>,

    /// How PhotoDNA vectors are compared: l1:THRESHOLD or l2:THRESHOLD.
    #[arg(long, value_name = "METRIC:THRESHOLD", value_parser = parse_distance)]
    photodna_distance: Vec<VectorDistance>,

    #[arg(skip)]
    plan: Vec<ListPlan>,
}

pub(crate) fn parse_distance(text: &str) -> Result<VectorDistance, String> {
    let (metric, threshold) = text.split_once(':').ok_or("expected METRIC:THRESHOLD, e.g. l2:1800")?;
    let metric: Metric = metric.parse()?;
    let threshold = threshold.parse().map_err(|_| format!("{threshold:?} is not a whole number"))?;
    Ok(VectorDistance { metric, threshold })
}

/// Inspect or verify an index file or index directory.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The index file or directory.
    #[arg(value_name = "INDEX")]
    index: PathBuf,
}

/// One list to import, with the options that apply to it.
#[derive(Debug, Clone)]
pub(crate) struct ListPlan {
    pub(crate) name: String,
    pub(crate) path: PathBuf,
    pub(crate) format: ListFormat,
    pub(crate) kinds: Vec<HashKind>,
    pub(crate) mode: Mode,
    pub(crate) options: ListOptions,
}

/// A list's name and file from `NAME=PATH` or `PATH` (named by the file's stem).
pub(crate) fn list_spec(spec: &str) -> (String, PathBuf) {
    match spec.split_once('=') {
        Some((name, path)) if !name.is_empty() && !name.contains('/') => {
            (name.to_string(), PathBuf::from(path))
        }
        _ => {
            let path = PathBuf::from(spec);
            let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            (stem, path)
        }
    }
}

/// The format a list file's extension suggests: .csv is csv, .json is vics, anything else lines.
pub(crate) fn format_of(path: &Path) -> ListFormat {
    match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
        Some("csv") => ListFormat::Csv,
        Some("json") => ListFormat::Vics,
        _ => ListFormat::Lines,
    }
}

/// Imports a list file, with a progress bar for big ones, passing each entry to `sink`; the
/// first error `sink` returns stops the import.
pub(crate) fn import_list(
    plan: &ListPlan,
    mut sink: impl FnMut(ImportedEntry) -> anyhow::Result<()>,
) -> anyhow::Result<ImportReport> {
    let file = File::open(&plan.path).with_context(|| format!("cannot open {}", plan.path.display()))?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let bar = byte_bar(size, &plan.name);
    let reader = BufReader::with_capacity(1 << 20, bar.wrap_read(file));
    let shown = plan.path.display().to_string();
    let mut failure = None;
    let mut each = |entry: ImportedEntry| {
        if failure.is_none()
            && let Err(err) = sink(entry)
        {
            failure = Some(err);
        }
    };
    let report = match plan.format {
        ListFormat::Lines => import::import_lines(reader, &shown, plan.kinds[0], plan.mode, &mut each),
        ListFormat::Csv => import::import_csv(reader, &shown, plan.kinds[0], plan.mode, &mut each),
        ListFormat::Vics => {
            let kinds = if plan.kinds.is_empty() {
                let mut kinds = vec![HashKind::Md5, HashKind::Sha1];
                kinds.extend(plan.options.photodna.map(|_| HashKind::PhotoDna));
                kinds
            } else {
                plan.kinds.clone()
            };
            import::import_vics(reader, &shown, &kinds, plan.mode, &mut each)
        }
    };
    bar.finish_and_clear();
    let report = report?;
    if let Some(err) = failure {
        return Err(err.context(shown));
    }
    Ok(report)
}

impl BuildArgs {
    /// Resolves which options belong to which --list from their positions on the command line.
    pub fn resolve(mut self, matches: &ArgMatches) -> anyhow::Result<BuildArgs> {
        let positions =
            |id: &str| -> Vec<usize> { matches.indices_of(id).map(Iterator::collect).unwrap_or_default() };
        let list_at = positions("lists");
        // The list an option at `index` belongs to: the last --list before it, or all lists.
        let owner = |index: usize| list_at.iter().rposition(|&at| at < index);
        fn pick<T: Clone>(
            values: &[T],
            at: &[usize],
            list: usize,
            owner: &dyn Fn(usize) -> Option<usize>,
        ) -> Option<T> {
            let own = at.iter().zip(values).filter(|(i, _)| owner(**i) == Some(list)).map(|(_, v)| v).last();
            let default = at.iter().zip(values).filter(|(i, _)| owner(**i).is_none()).map(|(_, v)| v).last();
            own.or(default).cloned()
        }
        let mut plans = Vec::new();
        for (list, spec) in self.lists.iter().enumerate() {
            let (name, path) = list_spec(spec);
            let format =
                pick(&self.format, &positions("format"), list, &owner).unwrap_or_else(|| format_of(&path));
            let kind_at = positions("kind");
            let own_kinds: Vec<HashKind> = kind_at
                .iter()
                .zip(&self.kind)
                .filter(|(i, _)| owner(**i) == Some(list))
                .map(|(_, k)| *k)
                .collect();
            let kinds = if own_kinds.is_empty() {
                kind_at
                    .iter()
                    .zip(&self.kind)
                    .filter(|(i, _)| owner(**i).is_none())
                    .map(|(_, k)| *k)
                    .collect()
            } else {
                own_kinds
            };
            let mut options = ListOptions::new(name.clone());
            if let Some(t) = pick(&self.pdq_threshold, &positions("pdq_threshold"), list, &owner) {
                options.pdq_threshold = t;
            }
            if let Some(t) = pick(&self.hamming_threshold, &positions("hamming_threshold"), list, &owner) {
                options.hamming_threshold = t;
            }
            options.photodna = pick(&self.photodna_distance, &positions("photodna_distance"), list, &owner);
            let mode = if self.lenient { Mode::Lenient } else { Mode::Strict };
            if format != ListFormat::Vics && kinds.len() != 1 {
                bail!("list {}: a {format:?} list needs exactly one --kind", path.display());
            }
            plans.push(ListPlan { name, path, format, kinds, mode, options });
        }
        self.plan = plans;
        Ok(self)
    }
}

/// Runs an `index` subcommand; `matches` are the `index` subcommand's own, which say where
/// each per-list option stood on the command line.
pub fn run(command: IndexCommand, matches: &ArgMatches) -> anyhow::Result<RunStatus> {
    match command {
        IndexCommand::Build(args) => {
            let positions = matches.subcommand_matches("build").context("build arguments")?;
            build(args.resolve(positions)?)
        }
        IndexCommand::Inspect(args) => inspect(&args.index),
        IndexCommand::Verify(args) => verify(&args.index),
    }
}

fn build(args: BuildArgs) -> anyhow::Result<RunStatus> {
    let started = Instant::now();
    let mut builder = IndexBuilder::new();
    let mut skipped_any = false;
    for plan in &args.plan {
        let list = builder.add_list(plan.options.clone())?;
        let shown = plan.path.display().to_string();
        let report = import_list(plan, |entry| Ok(builder.add(list, &entry)?))?;
        builder.add_source(list, shown.clone());
        report_import(&plan.name, &shown, &report);
        skipped_any |= !report.skipped.is_empty();
    }
    let written = match (&args.output, &args.dir) {
        (Some(output), _) => {
            builder.write_to_path(output).with_context(|| format!("cannot write {}", output.display()))?;
            output.clone()
        }
        (None, Some(dir)) => {
            IndexDir::create(dir, &builder).with_context(|| format!("cannot create {}", dir.display()))?;
            dir.clone()
        }
        (None, None) => bail!("give --output or --dir"),
    };
    let size = if written.is_dir() {
        std::fs::read_dir(&written)?.filter_map(|e| e.ok()?.metadata().ok()).map(|m| m.len()).sum()
    } else {
        std::fs::metadata(&written).map(|m| m.len()).unwrap_or(0)
    };
    eprintln!(
        "wrote {} ({}) in {:.1} s",
        written.display(),
        human_bytes(size),
        started.elapsed().as_secs_f64()
    );
    Ok(if skipped_any { RunStatus::SomeInputsFailed } else { RunStatus::Clean })
}

pub(crate) fn report_import(name: &str, file: &str, report: &ImportReport) {
    const SHOWN: usize = 20;
    eprintln!(
        "list {name}: {file}: {} entries imported, {} records skipped",
        report.imported,
        report.skipped.len()
    );
    for skipped in report.skipped.iter().take(SHOWN) {
        eprintln!("  skipped {skipped}");
    }
    if report.skipped.len() > SHOWN {
        eprintln!("  … and {} more skipped records", report.skipped.len() - SHOWN);
    }
}

fn byte_bar(total: u64, what: &str) -> ProgressBar {
    if total < 16 << 20 {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    let template =
        format!("{{elapsed_precise}} [{{wide_bar}}] {{bytes}}/{{total_bytes}} {what} ({{bytes_per_sec}})");
    bar.set_style(ProgressStyle::with_template(&template).expect("template is valid").progress_chars("=> "));
    bar
}

pub(crate) fn human_bytes(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 => format!("{:.2} GiB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} bytes"),
    }
}

fn open(path: &Path) -> anyhow::Result<Index<memmap2::Mmap>> {
    Index::open_path(path).with_context(|| format!("cannot open index {}", path.display()))
}

fn inspect(path: &Path) -> anyhow::Result<RunStatus> {
    if path.is_dir() {
        return inspect_dir(path);
    }
    let index = open(path)?;
    let size = index.file().bytes().len() as u64;
    println!("index:        {}", path.display());
    println!("format:       hashsieve index version {}", hashsieve_core::index::format::FORMAT_VERSION);
    println!("created by:   {}", index.created_by());
    println!("size:         {} ({size} bytes)", human_bytes(size));
    println!("entries by kind:");
    for kind in index.kinds() {
        let count = index.len(kind);
        let layout = index
            .hamming_layout(kind)
            .map(|(bits, chunks)| format!(", {chunks} tables of {bits}-bit chunks"))
            .unwrap_or_default();
        println!("  {:<9} {count:>12}{layout}", kind.name());
    }
    println!("lists:");
    for list in index.lists() {
        let counts: Vec<String> = list.entries.iter().map(|(kind, n)| format!("{kind} {n}")).collect();
        let photodna = list
            .photodna
            .map(|d| format!(", photodna {:?} ≤ {}", d.metric, d.threshold).to_lowercase())
            .unwrap_or_default();
        println!(
            "  {}: {} (pdq ≤ {}, phash/dhash/ahash ≤ {}{photodna}); from {}",
            list.name,
            if counts.is_empty() { "no entries".to_string() } else { counts.join(", ") },
            list.pdq_threshold,
            list.hamming_threshold,
            list.sources.join(", ")
        );
    }
    println!("sections:");
    for section in index.file().sections() {
        println!("  kind {:#06x} {:>14}", section.kind, human_bytes(section.len() as u64));
    }
    Ok(RunStatus::Clean)
}

/// An index directory: its base as for a file, then what the delta holds.
fn inspect_dir(path: &Path) -> anyhow::Result<RunStatus> {
    let options = DirOptions { writable: false, compact_after: None, repair: false };
    let (dir, report) = IndexDir::open(path, options)
        .with_context(|| format!("cannot open index directory {}", path.display()))?;
    let live = dir.current();
    let base = path.join(format!("base-{:020}.hsi", live.number()));
    inspect(&base)?;
    live.view(|view| {
        println!("delta (generation {}):", live.number());
        println!("  batches replayed     {}", report.batches);
        println!("  changes since base   {}", view.delta.changes());
        println!("  entries added        {}", view.delta.added());
        println!("  withdrawal patterns  {}", view.delta.tombstones());
        println!("  last batch           {}", view.delta.last_seq());
        for list in &view.delta.lists()[live.base().lists().len()..] {
            println!(
                "  new list {} ({}, pdq ≤ {}, phash/dhash/ahash ≤ {})",
                list.name,
                list.role.name(),
                list.pdq_threshold,
                list.hamming_threshold
            );
        }
    });
    for (file, damage) in &report.cut {
        println!("  {}: torn tail at byte {} ({})", file.display(), damage.offset, damage.reason);
    }
    Ok(RunStatus::Clean)
}

fn verify(path: &Path) -> anyhow::Result<RunStatus> {
    let started = Instant::now();
    if path.is_dir() {
        // Opening replays every log and fails on anything a crash cannot explain.
        let options = DirOptions { writable: false, compact_after: None, repair: false };
        let (dir, report) = IndexDir::open(path, options)
            .with_context(|| format!("{} failed verification", path.display()))?;
        dir.current()
            .base()
            .verify()
            .with_context(|| format!("{}: index file failed verification", path.display()))?;
        println!(
            "{}: OK: base generation {}, {} batches in the delta log{} ({:.2} s)",
            path.display(),
            report.generation,
            report.batches,
            if report.cut.is_empty() { "" } else { ", ending in a torn write that was never acknowledged" },
            started.elapsed().as_secs_f64()
        );
        return Ok(RunStatus::Clean);
    }
    let index = open(path)?;
    index.verify().with_context(|| format!("{} failed verification", path.display()))?;
    println!("{}: OK ({:.2} s)", path.display(), started.elapsed().as_secs_f64());
    Ok(RunStatus::Clean)
}
