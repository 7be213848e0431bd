//! `hashsieve index build|inspect|verify`: make an index file from hash lists, and look at one.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use clap::{ArgMatches, Args, Subcommand};
use hashsieve_core::hashes::HashKind;
use hashsieve_core::import::{self, ImportReport, ImportedEntry, Mode};
use hashsieve_core::index::{Index, IndexBuilder, ListOptions, Metric, VectorDistance};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::Outcome;

/// Build, inspect or verify an index file.
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
    /// Where to write the index (written atomically).
    #[arg(short, long, value_name = "INDEX")]
    output: PathBuf,

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

fn parse_distance(text: &str) -> Result<VectorDistance, String> {
    let (metric, threshold) = text.split_once(':').ok_or("expected METRIC:THRESHOLD, e.g. l2:1800")?;
    let metric: Metric = metric.parse()?;
    let threshold = threshold.parse().map_err(|_| format!("{threshold:?} is not a whole number"))?;
    Ok(VectorDistance { metric, threshold })
}

/// Inspect or verify an index file.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The index file.
    #[arg(value_name = "INDEX")]
    index: PathBuf,
}

/// One list to import, with the options that apply to it.
#[derive(Debug, Clone)]
struct ListPlan {
    name: String,
    path: PathBuf,
    format: ListFormat,
    kinds: Vec<HashKind>,
    mode: Mode,
    options: ListOptions,
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
            let (name, path) = match spec.split_once('=') {
                Some((name, path)) if !name.is_empty() && !name.contains('/') => {
                    (name.to_string(), PathBuf::from(path))
                }
                _ => {
                    let path = PathBuf::from(spec);
                    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
                    (stem, path)
                }
            };
            let format =
                pick(&self.format, &positions("format"), list, &owner).unwrap_or_else(|| {
                    match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
                        Some("csv") => ListFormat::Csv,
                        Some("json") => ListFormat::Vics,
                        _ => ListFormat::Lines,
                    }
                });
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
pub fn run(command: IndexCommand, matches: &ArgMatches) -> anyhow::Result<Outcome> {
    match command {
        IndexCommand::Build(args) => {
            let positions = matches.subcommand_matches("build").context("build arguments")?;
            build(args.resolve(positions)?)
        }
        IndexCommand::Inspect(args) => inspect(&args.index),
        IndexCommand::Verify(args) => verify(&args.index),
    }
}

fn build(args: BuildArgs) -> anyhow::Result<Outcome> {
    let started = Instant::now();
    let mut builder = IndexBuilder::new();
    let mut skipped_any = false;
    for plan in &args.plan {
        let list = builder.add_list(plan.options.clone())?;
        let file = File::open(&plan.path).with_context(|| format!("cannot open {}", plan.path.display()))?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        let bar = byte_bar(size, &plan.name);
        let reader = BufReader::with_capacity(1 << 20, bar.wrap_read(file));
        let shown = plan.path.display().to_string();
        let mut failure = None;
        let mut sink = |entry: ImportedEntry| {
            if failure.is_none()
                && let Err(err) = builder.add(list, &entry)
            {
                failure = Some(err);
            }
        };
        let report = match plan.format {
            ListFormat::Lines => import::import_lines(reader, &shown, plan.kinds[0], plan.mode, &mut sink),
            ListFormat::Csv => import::import_csv(reader, &shown, plan.kinds[0], plan.mode, &mut sink),
            ListFormat::Vics => {
                let kinds = if plan.kinds.is_empty() {
                    let mut kinds = vec![HashKind::Md5, HashKind::Sha1];
                    kinds.extend(plan.options.photodna.map(|_| HashKind::PhotoDna));
                    kinds
                } else {
                    plan.kinds.clone()
                };
                import::import_vics(reader, &shown, &kinds, plan.mode, &mut sink)
            }
        };
        bar.finish_and_clear();
        let report = report?;
        if let Some(err) = failure {
            bail!("{shown}: {err}");
        }
        builder.add_source(list, shown.clone());
        report_import(&plan.name, &shown, &report);
        skipped_any |= !report.skipped.is_empty();
    }
    builder.write_to_path(&args.output).with_context(|| format!("cannot write {}", args.output.display()))?;
    let size = std::fs::metadata(&args.output).map(|m| m.len()).unwrap_or(0);
    eprintln!(
        "wrote {} ({}) in {:.1} s",
        args.output.display(),
        human_bytes(size),
        started.elapsed().as_secs_f64()
    );
    Ok(if skipped_any { Outcome::SomeInputsFailed } else { Outcome::Clean })
}

fn report_import(name: &str, file: &str, report: &ImportReport) {
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

fn human_bytes(bytes: u64) -> String {
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

fn inspect(path: &Path) -> anyhow::Result<Outcome> {
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
    Ok(Outcome::Clean)
}

fn verify(path: &Path) -> anyhow::Result<Outcome> {
    let started = Instant::now();
    let index = open(path)?;
    index.verify().with_context(|| format!("{} failed verification", path.display()))?;
    println!("{}: OK ({:.2} s)", path.display(), started.elapsed().as_secs_f64());
    Ok(Outcome::Clean)
}
