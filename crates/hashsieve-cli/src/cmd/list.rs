//! `hashsieve list …`: change the lists of an index directory without a rebuild.
//!
//! Every change is written to the directory's delta log and fsync'd before the command says it
//! is done; see `hashsieve_core::index::dir`.

use std::io::{self, BufRead, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use hashsieve_core::delta::{Change, ChangeJson, Removal};
use hashsieve_core::hashes::HashKind;
use hashsieve_core::import::{ImportedEntry, Mode};
use hashsieve_core::index::dir::{DEFAULT_COMPACT_AFTER, DirOptions, OsStorage, Receipt, read_logs};
use hashsieve_core::index::{ListOptions, ListRole, VectorDistance};
use hashsieve_core::matcher::Matcher;
use serde::Serialize;

use super::index::{ListFormat, ListPlan, format_of, import_list, list_spec, parse_distance, report_import};
use crate::RunStatus;

/// Change the lists of an index directory: each change is durable when the command returns.
#[derive(Debug, Subcommand)]
pub enum ListCommand {
    Add(AddArgs),
    Remove(RemoveArgs),
    Allow(AllowArgs),
    Refresh(RefreshArgs),
    /// Fold the delta log into a new index file and swap it in (readers keep the old one until
    /// they reopen); the log starts empty.
    Compact(DirArg),
    Log(LogArgs),
    Apply(ApplyArgs),
    /// Print every entry the directory serves now — the index file with its live changes — as
    /// JSON Lines: list, role, kind, value, and id, category and source where set.
    Dump(DirArg),
    /// Cut a damaged delta log at its first bad record, so that the directory opens again; says
    /// what was cut and whether valid changes after it were lost (restore from a backup
    /// instead if they matter).
    Repair(DirArg),
}

/// The index directory (see `hashsieve index build --dir`).
#[derive(Debug, Args)]
pub struct DirArg {
    /// The index directory.
    #[arg(value_name = "DIR")]
    dir: PathBuf,
}

/// Who makes the change, recorded in the log.
#[derive(Debug, Args)]
pub struct ActorArg {
    /// Recorded with the change in the log (an analyst, a ticket, a feed).
    #[arg(long, value_name = "NAME")]
    actor: Option<String>,
}

/// Add entries to a list.
///
/// Each HASH is KIND:VALUE, or a bare VALUE of the kind given by --kind. An entry with the same
/// list, kind, value and id as one already there replaces it.
#[derive(Debug, Args)]
pub struct AddArgs {
    #[command(flatten)]
    dir: DirArg,
    /// The list to add to.
    #[arg(long, value_name = "NAME")]
    list: String,
    /// Create the list, with default settings, if it does not exist.
    #[arg(long)]
    create: bool,
    /// The kind of bare hash values.
    #[arg(long, value_name = "KIND")]
    kind: Option<HashKind>,
    /// The entries' id in the list.
    #[arg(long, value_name = "ID")]
    id: Option<String>,
    /// The entries' category.
    #[arg(long)]
    category: Option<String>,
    /// Where the entries come from.
    #[arg(long)]
    source: Option<String>,
    #[command(flatten)]
    actor: ActorArg,
    /// Hashes to add.
    #[arg(required = true, value_name = "HASH")]
    hashes: Vec<String>,
}

/// Withdraw entries: by hash (KIND:VALUE), by --id, or both; in --list, or (by hash only) in
/// every list. Takes effect in the index file's entries too.
#[derive(Debug, Args)]
pub struct RemoveArgs {
    #[command(flatten)]
    dir: DirArg,
    /// Only in this list (required with --id).
    #[arg(long, value_name = "NAME")]
    list: Option<String>,
    /// Entries with this id.
    #[arg(long, value_name = "ID")]
    id: Option<String>,
    /// The kind of bare hash values.
    #[arg(long, value_name = "KIND")]
    kind: Option<HashKind>,
    #[command(flatten)]
    actor: ActorArg,
    /// Hashes to withdraw.
    #[arg(value_name = "HASH")]
    hashes: Vec<String>,
}

/// Allow-list known false positives: content matching one of these hashes has its matches
/// suppressed (reported as suppressed). A digest suppresses every match of the same bytes; a
/// perceptual hash suppresses matches of its kind, within the allow-list's threshold.
#[derive(Debug, Args)]
pub struct AllowArgs {
    #[command(flatten)]
    dir: DirArg,
    /// The allow-list (created if missing).
    #[arg(long, value_name = "NAME", default_value = hashsieve_core::matcher::DEFAULT_ALLOW_LIST)]
    list: String,
    /// The entry's category, as the HTTP API's `category`: what kind of false positive it is
    /// (e.g. `vendor-logo`), shown on the suppressing entry of every match it suppresses.
    #[arg(long, value_name = "TEXT")]
    category: Option<String>,
    /// The entry's id (e.g. a ticket).
    #[arg(long, value_name = "ID")]
    id: Option<String>,
    /// The kind of bare hash values.
    #[arg(long, value_name = "KIND")]
    kind: Option<HashKind>,
    #[command(flatten)]
    actor: ActorArg,
    /// Hashes of content known to be a false positive.
    #[arg(required = true, value_name = "HASH")]
    hashes: Vec<String>,
}

/// Make a list equal to a new version of its file (e.g. a daily drop), writing only the
/// difference. Creates the list if it does not exist.
#[derive(Debug, Args)]
pub struct RefreshArgs {
    #[command(flatten)]
    dir: DirArg,
    /// The list file, as NAME=PATH or PATH (named by the file's stem).
    #[arg(long = "list", value_name = "[NAME=]PATH")]
    list: String,
    /// The file's format (default from its extension: .csv csv, .json vics, else lines).
    #[arg(long, value_enum)]
    format: Option<ListFormat>,
    /// The hash kind of a lines or csv list; for VICS, the kinds imported.
    #[arg(long, value_name = "KIND")]
    kind: Vec<HashKind>,
    /// Skip (and report) records that cannot be imported instead of failing.
    #[arg(long)]
    lenient: bool,
    /// For a new list: PDQ threshold (default 31).
    #[arg(long, value_name = "BITS")]
    pdq_threshold: Option<u32>,
    /// For a new list: pHash/dHash/aHash threshold (default 8).
    #[arg(long, value_name = "BITS")]
    hamming_threshold: Option<u32>,
    /// For a new list: how PhotoDNA vectors are compared, l1:THRESHOLD or l2:THRESHOLD.
    #[arg(long, value_name = "METRIC:THRESHOLD", value_parser = parse_distance)]
    photodna_distance: Option<VectorDistance>,
    /// For a new list: make it an allow-list of known false positives.
    #[arg(long)]
    allow_list: bool,
    #[command(flatten)]
    actor: ActorArg,
}

/// Print the changes recorded since the index file was last compacted.
#[derive(Debug, Args)]
pub struct LogArgs {
    #[command(flatten)]
    dir: DirArg,
    /// One JSON object per batch instead of text.
    #[arg(long)]
    json: bool,
}

/// Apply changes read from standard input, one batch per line: a JSON change object
/// ({"op":"add","list":…,"kind":"md5","value":…}, {"op":"remove",…}, {"op":"define",…}) or an
/// array of them applied together. Prints one JSON line per input line once it is durable:
/// {"line":N,"seq":S,"applied":{…}} or {"line":N,"error":…}.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    dir: DirArg,
    /// Lines in flight at once; their fsyncs are shared.
    #[arg(long, value_name = "N", default_value_t = 1)]
    writers: usize,
    /// Compact automatically once the delta holds this many changes.
    #[arg(long, value_name = "CHANGES", default_value_t = DEFAULT_COMPACT_AFTER)]
    compact_after: u64,
    #[command(flatten)]
    actor: ActorArg,
}

pub fn run(command: ListCommand) -> anyhow::Result<RunStatus> {
    match command {
        ListCommand::Add(args) => add(args),
        ListCommand::Remove(args) => remove(args),
        ListCommand::Allow(args) => allow(args),
        ListCommand::Refresh(args) => refresh(args),
        ListCommand::Compact(args) => compact(&args),
        ListCommand::Log(args) => log(&args.dir.dir, args.json),
        ListCommand::Apply(args) => apply(args),
        ListCommand::Dump(args) => dump(&args),
        ListCommand::Repair(args) => repair(&args),
    }
}

fn open(dir: &Path, options: DirOptions) -> anyhow::Result<Matcher> {
    // Recovery (a torn log tail cut back) is logged by the library as a warning.
    let (matcher, _) = Matcher::open_dir(dir, options)
        .with_context(|| format!("cannot open index directory {}", dir.display()))?;
    Ok(matcher)
}

fn open_writable(dir: &DirArg) -> anyhow::Result<Matcher> {
    open(&dir.dir, DirOptions::default())
}

fn parse_hash(text: &str, kind: Option<HashKind>) -> anyhow::Result<(HashKind, Vec<u8>)> {
    let (kind, value) = match text.split_once(':') {
        Some((kind, value)) => (kind.parse::<HashKind>()?, value),
        None => match kind {
            Some(kind) => (kind, text),
            None => bail!("{text}: give the hash kind, as KIND:VALUE or with --kind"),
        },
    };
    Ok((kind, kind.parse_value(value).with_context(|| text.to_string())?))
}

fn entries(
    hashes: &[String],
    kind: Option<HashKind>,
    id: &Option<String>,
    category: &Option<String>,
    source: &Option<String>,
) -> anyhow::Result<Vec<ImportedEntry>> {
    hashes
        .iter()
        .map(|text| {
            let (kind, value) = parse_hash(text, kind)?;
            Ok(ImportedEntry {
                id: id.clone(),
                category: category.clone(),
                source: source.clone(),
                ..ImportedEntry::new(kind, value)
            })
        })
        .collect()
}

fn acknowledged(receipt: &Receipt, what: &str) {
    let a = receipt.applied;
    let mut parts = Vec::new();
    for (n, label) in [
        (a.lists_defined, "list created"),
        (a.added, "added"),
        (a.replaced, "replaced"),
        (a.removed, "withdrawn"),
    ] {
        if n > 0 {
            parts.push(format!("{n} {label}"));
        }
    }
    if a.removed_by_id > 0 {
        parts.push("entries with that id withdrawn from the index file too (not counted)".to_string());
    }
    if parts.is_empty() {
        parts.push("nothing matched".to_string());
    }
    println!("{what}: {} (batch {}, durable)", parts.join(", "), receipt.seq);
}

fn add(args: AddArgs) -> anyhow::Result<RunStatus> {
    let new = entries(&args.hashes, args.kind, &args.id, &args.category, &args.source)?;
    let matcher = open_writable(&args.dir)?;
    let mut changes = Vec::new();
    if args.create {
        let existing = matcher.current().view(|view| view.delta.list(&args.list).map(|l| l.options()));
        changes.push(Change::DefineList(existing.unwrap_or_else(|| ListOptions::new(args.list.clone()))));
    }
    changes.extend(new.into_iter().map(|entry| Change::Add { list: args.list.clone(), entry }));
    let receipt = matcher.submit(changes, args.actor.actor.as_deref())?;
    acknowledged(&receipt, &format!("list {}", args.list));
    Ok(RunStatus::Clean)
}

fn remove(args: RemoveArgs) -> anyhow::Result<RunStatus> {
    let removals: Vec<Removal> = if args.hashes.is_empty() {
        match (&args.list, &args.id) {
            (Some(list), Some(id)) => vec![Removal::entry(list.clone(), id.clone())],
            _ => bail!("name what to withdraw: hashes, or --list with --id"),
        }
    } else {
        args.hashes
            .iter()
            .map(|text| {
                let (kind, value) = parse_hash(text, args.kind)?;
                Ok(Removal { list: args.list.clone(), hash: Some((kind, value)), entry_id: args.id.clone() })
            })
            .collect::<anyhow::Result<_>>()?
    };
    let matcher = open_writable(&args.dir)?;
    let receipt = matcher.remove(removals, args.actor.actor.as_deref())?;
    acknowledged(&receipt, "withdrawal");
    Ok(RunStatus::Clean)
}

fn allow(args: AllowArgs) -> anyhow::Result<RunStatus> {
    let new = entries(&args.hashes, args.kind, &args.id, &args.category, &None)?;
    let matcher = open_writable(&args.dir)?;
    let receipt = matcher.allow(Some(&args.list), new, args.actor.actor.as_deref())?;
    acknowledged(&receipt, &format!("allow-list {}", args.list));
    Ok(RunStatus::Clean)
}

fn refresh(args: RefreshArgs) -> anyhow::Result<RunStatus> {
    let (name, path) = list_spec(&args.list);
    let format = args.format.unwrap_or_else(|| format_of(&path));
    if format != ListFormat::Vics && args.kind.len() != 1 {
        bail!("list {}: a {format:?} list needs exactly one --kind", path.display());
    }
    let matcher = open_writable(&args.dir)?;
    let existing = matcher.current().view(|view| view.delta.list(&name).map(|l| l.options()));
    let given = args.pdq_threshold.is_some()
        || args.hamming_threshold.is_some()
        || args.photodna_distance.is_some()
        || args.allow_list;
    let mut options = existing.clone().unwrap_or_else(|| ListOptions::new(name.clone()));
    if given {
        options.pdq_threshold = args.pdq_threshold.unwrap_or(options.pdq_threshold);
        options.hamming_threshold = args.hamming_threshold.unwrap_or(options.hamming_threshold);
        options.photodna = args.photodna_distance.or(options.photodna);
        if args.allow_list {
            options.role = ListRole::Allow;
        }
    }
    let plan = ListPlan {
        name: name.clone(),
        path: path.clone(),
        format,
        kinds: args.kind.clone(),
        mode: if args.lenient { Mode::Lenient } else { Mode::Strict },
        options: options.clone(),
    };
    let mut new = Vec::new();
    let report = import_list(&plan, |entry| {
        new.push(entry);
        Ok(())
    })?;
    report_import(&name, &path.display().to_string(), &report);
    let refreshed = matcher.refresh(&name, Some(options), new, args.actor.actor.as_deref())?;
    println!(
        "list {name}: {} entries; {} added or changed, {} withdrawn, {} unchanged{} (batch {}, durable)",
        refreshed.entries,
        refreshed.added,
        refreshed.removed,
        refreshed.unchanged,
        if refreshed.created { "; list created" } else { "" },
        refreshed.seq
    );
    Ok(if report.skipped.is_empty() { RunStatus::Clean } else { RunStatus::SomeInputsFailed })
}

fn compact(dir: &DirArg) -> anyhow::Result<RunStatus> {
    let matcher = open(&dir.dir, DirOptions { compact_after: None, ..DirOptions::default() })?;
    let done = matcher.compact()?;
    println!(
        "compacted into generation {}: {} entries, {} in {:.2} s",
        done.generation,
        done.entries,
        super::index::human_bytes(done.bytes),
        done.seconds
    );
    Ok(RunStatus::Clean)
}

#[derive(Serialize)]
struct BatchJson<'a> {
    seq: u64,
    time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    actor: Option<&'a str>,
    changes: Vec<ChangeJson>,
}

fn log(dir: &Path, json: bool) -> anyhow::Result<RunStatus> {
    let logs = read_logs(&OsStorage::new(dir))
        .with_context(|| format!("cannot read the logs of {}", dir.display()))?;
    let mut out = BufWriter::new(io::stdout().lock());
    for (path, contents) in &logs {
        if !json {
            writeln!(out, "# {} ({} batches)", path.display(), contents.batches.len())?;
        }
        for batch in &contents.batches {
            let record = BatchJson {
                seq: batch.seq,
                time: utc_time(batch.time_ms),
                actor: batch.actor.as_deref(),
                changes: batch.changes.iter().map(ChangeJson::from).collect(),
            };
            if json {
                serde_json::to_writer(&mut out, &record)?;
                writeln!(out)?;
            } else {
                let actor = record.actor.map(|a| format!(" by {a}")).unwrap_or_default();
                writeln!(out, "batch {} at {}{actor}", record.seq, record.time)?;
                for change in &record.changes {
                    writeln!(out, "  {}", serde_json::to_string(change)?)?;
                }
            }
        }
        if let Some(damage) = &contents.damage {
            let what = if damage.later_records { "corrupt (valid changes follow)" } else { "torn tail" };
            writeln!(out, "# {}: {what} at byte {}: {}", path.display(), damage.offset, damage.reason)?;
        }
    }
    out.flush()?;
    Ok(RunStatus::Clean)
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` for milliseconds since the Unix epoch.
fn utc_time(ms: u64) -> String {
    let (days, rest) = ((ms / 86_400_000) as i64, ms % 86_400_000);
    // Days to a civil date (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (h, m, s, milli) = (rest / 3_600_000, rest / 60_000 % 60, rest / 1000 % 60, rest % 1000);
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{milli:03}Z")
}

#[derive(Serialize)]
struct Ack<'a> {
    line: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    seq: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    applied: Option<hashsieve_core::delta::live::Applied>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
}

fn parse_line(line: &str) -> anyhow::Result<Vec<Change>> {
    let value: serde_json::Value = serde_json::from_str(line)?;
    let items = match value {
        serde_json::Value::Array(items) => items,
        single => vec![single],
    };
    items.into_iter().map(|item| Ok(serde_json::from_value::<ChangeJson>(item)?.into_change()?)).collect()
}

fn apply(args: ApplyArgs) -> anyhow::Result<RunStatus> {
    let options = DirOptions { compact_after: Some(args.compact_after), ..DirOptions::default() };
    let matcher = open(&args.dir.dir, options)?;
    let out = Mutex::new(io::stdout());
    let print = |ack: &Ack| -> io::Result<()> {
        let mut out = out.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        serde_json::to_writer(&mut *out, ack)?;
        out.write_all(b"\n")?;
        out.flush()
    };
    let (sender, receiver) = crossbeam_channel::bounded::<(u64, String)>(args.writers.max(1) * 4);
    let failures = std::sync::atomic::AtomicU64::new(0);
    std::thread::scope(|scope| -> anyhow::Result<()> {
        let mut workers = Vec::new();
        for _ in 0..args.writers.max(1) {
            let receiver = receiver.clone();
            let (matcher, print, failures, actor) =
                (&matcher, &print, &failures, args.actor.actor.as_deref());
            workers.push(scope.spawn(move || -> io::Result<()> {
                for (line, text) in receiver {
                    let result = parse_line(&text).and_then(|changes| Ok(matcher.submit(changes, actor)?));
                    match result {
                        Ok(receipt) => print(&Ack {
                            line,
                            seq: Some(receipt.seq),
                            applied: Some(receipt.applied),
                            error: None,
                        })?,
                        Err(err) => {
                            failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            let error = format!("{err:#}");
                            print(&Ack { line, seq: None, applied: None, error: Some(&error) })?;
                        }
                    }
                }
                Ok(())
            }));
        }
        drop(receiver);
        for (number, line) in io::stdin().lock().lines().enumerate() {
            let line = line?;
            if line.trim().is_empty() {
                continue;
            }
            if sender.send((number as u64 + 1, line)).is_err() {
                break;
            }
        }
        drop(sender);
        for worker in workers {
            worker.join().expect("a writer thread panicked")?;
        }
        Ok(())
    })?;
    Ok(if failures.into_inner() > 0 { RunStatus::SomeInputsFailed } else { RunStatus::Clean })
}

#[derive(Serialize)]
struct EntryJson<'a> {
    list: &'a str,
    role: &'static str,
    kind: HashKind,
    value: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    category: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<&'a str>,
}

fn dump(dir: &DirArg) -> anyhow::Result<RunStatus> {
    let matcher = open(&dir.dir, DirOptions { writable: false, compact_after: None, repair: false })?;
    let mut out = BufWriter::new(io::stdout().lock());
    let mut result = Ok(());
    matcher.current().view(|view| {
        view.for_each_entry(|entry| {
            if result.is_ok() {
                let json = EntryJson {
                    list: &entry.list.name,
                    role: entry.list.role.name(),
                    kind: entry.kind,
                    value: hex::encode(entry.value),
                    id: entry.id,
                    category: entry.category,
                    source: entry.source,
                };
                result = serde_json::to_writer(&mut out, &json)
                    .map_err(io::Error::from)
                    .and_then(|()| out.write_all(b"\n"));
            }
        })
    });
    result?;
    out.flush()?;
    Ok(RunStatus::Clean)
}

fn repair(dir: &DirArg) -> anyhow::Result<RunStatus> {
    let options = DirOptions { repair: true, compact_after: None, ..DirOptions::default() };
    let (_, report) = Matcher::open_dir(&dir.dir, options)
        .with_context(|| format!("cannot open index directory {}", dir.dir.display()))?;
    if report.cut.is_empty() {
        println!("{}: nothing to repair ({} batches replayed)", dir.dir.display(), report.batches);
    }
    for (file, damage) in &report.cut {
        let lost = if damage.later_records { "; valid changes after it were dropped" } else { "" };
        println!("{}: cut at byte {} ({}){lost}", file.display(), damage.offset, damage.reason);
    }
    Ok(RunStatus::Clean)
}
