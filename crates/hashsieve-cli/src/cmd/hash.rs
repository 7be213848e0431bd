//! `hashsieve hash`: print the digests and perceptual hashes of files, directories or stdin.

use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Args;
use hashsieve_core::decode::DecodeLimits;
use hashsieve_core::digest::DigestSet;
use hashsieve_core::files::{WalkError, walk_files};
use hashsieve_core::perceptual::ImageHashKind;
use hashsieve_core::signals::{
    DEFAULT_MAX_IMAGE_BYTES, PdqMode, ReadError, SignalOptions, Signals, signals_for_paths,
};
use indicatif::ProgressBar;
use rayon::prelude::*;

use crate::RunStatus;
use crate::output::{Format, RecordWriter};
use crate::progress;

/// Files are hashed in batches of this many so that output keeps the input order while the
/// batch is spread over the thread pool.
const BATCH: usize = 256;

/// Print the digests and perceptual hashes of files.
///
/// With no selection flags, all four digests and the PDQ hash are computed. Naming any of
/// --digests, --pdq, --dihedral or --image-hash computes exactly what is named. Directories
/// are walked recursively; `-` reads standard input. Exit status: 0 when every input was
/// hashed in full, 2 when some input could not be read or decoded, 3 on a usage error.
#[derive(Debug, Args)]
pub struct HashArgs {
    /// Files or directories to hash; `-` for standard input.
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,

    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Json)]
    format: Format,

    /// Shorthand for --format json (JSON Lines).
    #[arg(long, conflicts_with_all = ["format", "csv"])]
    json: bool,

    /// Shorthand for --format csv.
    #[arg(long, conflicts_with = "format")]
    csv: bool,

    /// Cryptographic digests to compute: a comma-separated list of md5, sha1, sha256, blake3,
    /// or `all` or `none`.
    #[arg(long, value_name = "LIST", value_parser = parse_digest_list)]
    digests: Option<DigestSet>,

    /// Compute the PDQ hash and its quality.
    #[arg(long)]
    pdq: bool,

    /// Compute PDQ with all eight dihedral variants (rotations and mirror images).
    #[arg(long)]
    dihedral: bool,

    /// 64-bit perceptual hashes to compute: a comma-separated list of phash, dhash, ahash.
    #[arg(long, value_name = "LIST", value_delimiter = ',', value_parser = parse_image_hash_kind)]
    image_hash: Vec<ImageHashKind>,

    /// Largest image, in pixels, that is decoded.
    #[arg(long, value_name = "N", default_value_t = DecodeLimits::default().max_pixels)]
    max_pixels: u64,

    /// Largest input, in bytes, that is read into memory to be decoded; larger inputs get
    /// their digests only.
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_IMAGE_BYTES)]
    max_image_bytes: u64,

    /// Worker threads (default: one per core).
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
}

impl HashArgs {
    fn signal_options(&self) -> SignalOptions {
        let explicit = self.digests.is_some() || self.pdq || self.dihedral || !self.image_hash.is_empty();
        let defaults = SignalOptions::default();
        let pdq = match (explicit, self.pdq, self.dihedral) {
            (false, _, _) => defaults.pdq,
            (true, _, true) => PdqMode::Dihedral,
            (true, true, false) => PdqMode::Hash,
            (true, false, false) => PdqMode::Off,
        };
        SignalOptions {
            digests: self.digests.unwrap_or(if explicit { DigestSet::NONE } else { defaults.digests }),
            pdq,
            image_hashes: self.image_hash.clone(),
            keypoints: false,
            limits: DecodeLimits { max_pixels: self.max_pixels, ..defaults.limits },
            max_image_bytes: self.max_image_bytes,
        }
    }

    fn output_format(&self) -> Format {
        if self.csv { Format::Csv } else { self.format }
    }
}

fn parse_digest_list(list: &str) -> Result<DigestSet, String> {
    list.parse().map_err(|err: hashsieve_core::digest::UnknownDigest| err.to_string())
}

fn parse_image_hash_kind(name: &str) -> Result<ImageHashKind, String> {
    name.parse().map_err(|err: hashsieve_core::perceptual::UnknownImageHash| err.to_string())
}

/// Runs `hashsieve hash`.
pub fn run(args: HashArgs) -> anyhow::Result<RunStatus> {
    if let Some(threads) = args.threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build_global()
            .context("setting up the thread pool")?;
    }
    let options = args.signal_options();
    if options.digests.is_empty() && !options.needs_image() {
        bail!("nothing to compute: --digests none with no perceptual hash");
    }
    let stdout = io::stdout();
    let mut out = RecordWriter::new(args.output_format(), &options, BufWriter::new(stdout.lock()))?;
    let started = Instant::now();
    let mut summary = Summary::default();

    // Inputs in the order they were named: `-` in its place, each directory's files sorted.
    let mut inputs = Vec::new();
    for path in &args.paths {
        if path.as_os_str() == "-" {
            inputs.push(Input::Stdin);
        } else {
            inputs.extend(walk_files(&[path]).map(|found| found.map_or_else(Input::Unwalkable, Input::File)));
        }
    }
    let bar = progress::bar(inputs.len() as u64, "files");
    let mut run =
        Run { options: &options, out: &mut out, summary: &mut summary, bar: &bar, files: Vec::new() };
    for input in inputs {
        match input {
            Input::File(path) => {
                run.files.push(path);
                if run.files.len() == BATCH {
                    run.hash_files()?;
                }
            }
            Input::Stdin => {
                run.hash_files()?;
                let result = Signals::from_reader(io::stdin().lock(), &options)
                    .map_err(|source| ReadError { path: PathBuf::from("-"), source });
                run.report("-", &result)?;
            }
            Input::Unwalkable(err) => {
                run.hash_files()?;
                let path = err.path.display().to_string();
                run.report(&path, &Err(ReadError { path: err.path, source: err.source }))?;
            }
        }
    }
    run.hash_files()?;
    bar.finish_and_clear();
    out.flush()?;

    eprintln!(
        "hashsieve: hashed {} input(s), {} bytes, in {:.2} s; {} could not be read, {} had signals that could not be computed",
        summary.inputs,
        summary.bytes,
        started.elapsed().as_secs_f64(),
        summary.failed,
        summary.partial,
    );
    Ok(if summary.failed + summary.partial == 0 { RunStatus::Clean } else { RunStatus::SomeInputsFailed })
}

/// One named input, in the order of the command line.
enum Input {
    Stdin,
    File(PathBuf),
    Unwalkable(WalkError),
}

/// The state of a run: files waiting to be hashed as one parallel batch, and where results go.
struct Run<'a, W: Write> {
    options: &'a SignalOptions,
    out: &'a mut RecordWriter<W>,
    summary: &'a mut Summary,
    bar: &'a ProgressBar,
    files: Vec<PathBuf>,
}

impl<W: Write> Run<'_, W> {
    /// Hashes the waiting files in parallel and reports them in order.
    fn hash_files(&mut self) -> io::Result<()> {
        let files = std::mem::take(&mut self.files);
        let mut results = Vec::with_capacity(files.len());
        signals_for_paths(&files, self.options).inspect(|_| self.bar.inc(1)).collect_into_vec(&mut results);
        for (path, result) in files.iter().zip(&results) {
            self.report(&path.display().to_string(), result)?;
        }
        Ok(())
    }

    fn report(&mut self, name: &str, result: &Result<Signals, ReadError>) -> io::Result<()> {
        self.summary.count(result);
        self.out.write(name, result)
    }
}

#[derive(Debug, Default)]
struct Summary {
    inputs: u64,
    bytes: u64,
    failed: u64,
    partial: u64,
}

impl Summary {
    fn count(&mut self, result: &Result<Signals, ReadError>) {
        self.inputs += 1;
        match result {
            Ok(signals) => {
                self.bytes += signals.size;
                if !signals.errors.is_empty() {
                    self.partial += 1;
                }
            }
            Err(_) => self.failed += 1,
        }
    }
}
