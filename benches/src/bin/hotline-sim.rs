//! Hotline triage, simulated end to end: how many of the reports a hotline receives does an
//! analyst still have to open, when they go through hashsieved (two stages over Redis Streams)
//! and its verdict memory, compared with opening every report and with matching exact hashes
//! only; and how the hashing stage scales from one hashing daemon to two.
//!
//! Only benign pictures are used: the real photos given with `--photos` (the repository's
//! samples and the PDQ reference photos) and generated ones (seeded value-noise colour fields
//! with shapes, 320–800 px). Every original is checked to be at least 65 bits of PDQ away from
//! every other (any rotation or mirror image), so "distinct pictures" is a sound ground truth.
//! Each gets a pretend verdict (illegal A/B/C, legal or unclear); 15% are "listed": their MD5
//! and PDQ are in the external hash list (list `external`) the daemons serve.
//!
//! The report stream, in a seeded mixed order (400 pictures and 1,600 reports; 80 and 320 with
//! `--quick`):
//!
//! - first reports of unlisted pictures (the original file): one per unlisted picture, ~21%;
//! - exact re-reports (the same bytes as an earlier report, half the time a recent one): ~31%;
//! - edited copies of earlier reported unlisted pictures (half the time one reported recently):
//!   33%, a fifth each resized (50–80%) and re-encoded (JPEG q60–85), 15% each cropped (1–5% off
//!   each edge), mirrored, brightened or darkened (10–20%), and two of those combined; every
//!   edited copy is saved as a JPEG (q75–92 after an edit);
//! - reports of listed pictures: 15%, 55% of them the listed file, the rest edited copies.
//!
//! Pipeline: one redis-server, a deciding daemon (the verdict memory, `[triage]` with export
//! list `hotline`, the review API, `workers = 0`) and hashing daemons following the same index
//! directory read-only (`workers = 1` each). Reports go in with `XADD hashsieve:reports`;
//! decisions come out of `hashsieve:results`.
//!
//! Triage runs (two hashing daemons): the stream is pushed in shifts of 100 reports (40 with
//! `--quick`); when a shift's reports are all decided, a simulated analyst lists the pending
//! review groups and assesses each (one item opened by a person: the representative), giving
//! the ground truth of the picture it shows. The run is made twice: `near_known_is_known = true`
//! (the default) and `false`. Printed: items; the share opened by a person; the share of genuinely new groups
//! (distinct unlisted pictures in the stream) and the difference in percentage points (the goal
//! is at most 1); naive (every item opened); exact-hash-only matching (list MD5s plus the digests
//! already assessed: every distinct unlisted content opened); correctness against the ground
//! truth; and why any extra item was opened, with each edited copy's PDQ distance to its original.
//!
//! Throughput runs: the whole stream pushed up-front, no analyst, with one hashing daemon and
//! with two, alternating (5 rounds; 3 in `--quick`), each run with a fresh Redis, verdict
//! memory and index; the median reports/s of each, first XADD to last result, and the ratio;
//! the same for the hashing stage alone (by the stream ids), and the CPU seconds each process
//! used, which show which stage bounds the whole. The machine's core count is printed with them.
//!
//! ```text
//! hotline-sim [--quick] [--seed N] [--originals N] [--reports N] [--shift N] [--rounds N]
//!             [--photos DIR]... [--hashsieved PATH] [--work DIR]
//! ```
//!
//! `hashsieved` is looked for next to this program unless given; `--work` is where the runs'
//! index directories, stores, configurations and daemon logs go (default: a new directory in
//! /var/tmp, removed at the end). `benches/compare/hotline.sh` builds and runs it.

// A binary's root looks for its modules beside it; these live in hotline-sim/.
#[path = "hotline-sim/edits.rs"]
mod edits;
#[path = "hotline-sim/figures.rs"]
mod figures;
#[path = "hotline-sim/pictures.rs"]
mod pictures;
#[path = "hotline-sim/queue.rs"]
mod queue;
#[path = "hotline-sim/rng.rs"]
mod rng;
#[path = "hotline-sim/runs.rs"]
mod runs;
#[path = "hotline-sim/scenario.rs"]
mod scenario;
#[path = "hotline-sim/services.rs"]
mod services;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};

use crate::figures::EditedPdq;
use crate::rng::Rng;
use crate::scenario::Scenario;
use crate::services::{Setup, Shape};

struct Options {
    seed: u64,
    originals: usize,
    reports: usize,
    shift: usize,
    rounds: usize,
    photos: Vec<String>,
    hashsieved: Option<PathBuf>,
    work: Option<PathBuf>,
}

const USAGE: &str = "usage: hotline-sim [--quick] [--seed N] [--originals N] [--reports N] [--shift N] \
                     [--rounds N] [--photos DIR]... [--hashsieved PATH] [--work DIR]";

fn parse_args() -> anyhow::Result<Options> {
    let mut options = Options {
        seed: 1,
        originals: 400,
        reports: 1600,
        shift: 100,
        rounds: 5,
        photos: Vec::new(),
        hashsieved: None,
        work: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value\n{USAGE}"));
        let number = |text: String| text.parse::<usize>().with_context(|| format!("not a number: {text}"));
        match arg.as_str() {
            "--quick" => {
                (options.originals, options.reports, options.shift, options.rounds) = (80, 320, 40, 3)
            }
            "--seed" => options.seed = number(value()?)? as u64,
            "--originals" => options.originals = number(value()?)?,
            "--reports" => options.reports = number(value()?)?,
            "--shift" => options.shift = number(value()?)?.max(1),
            "--rounds" => options.rounds = number(value()?)?.max(1),
            "--photos" => options.photos.push(value()?),
            "--hashsieved" => options.hashsieved = Some(value()?.into()),
            "--work" => options.work = Some(value()?.into()),
            _ => bail!("unknown argument {arg}\n{USAGE}"),
        }
    }
    Ok(options)
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("hotline-sim: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let started = Instant::now();
    let options = parse_args()?;
    let hashsieved = match &options.hashsieved {
        Some(path) => path.clone(),
        None => std::env::current_exe()?.with_file_name("hashsieved"),
    };
    anyhow::ensure!(hashsieved.is_file(), "no hashsieved at {} (see --hashsieved)", hashsieved.display());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "hotline simulation, seed {}: {cores} cores on this machine (std::thread::available_parallelism); \
         each hashing daemon runs with workers = 1, the deciding daemon with workers = 0",
        options.seed
    );

    let selection = pictures::choose(&options.photos, options.originals, options.seed)?;
    figures::print_originals(&selection);
    let photos = selection.photos;
    let scenario = Scenario::build(selection.pictures, options.reports, options.seed)?;
    let edited = EditedPdq::measure(&scenario);
    figures::print_stream(&scenario, &edited);
    figures::print_crop_sweep(&scenario, photos);
    println!("(pictures and stream ready after {:.1} s)", started.elapsed().as_secs_f64());

    // The script passes a directory it removes; run alone, a temporary one removed on drop.
    let temporary;
    let work = match &options.work {
        Some(dir) => dir.clone(),
        None => {
            temporary = tempfile::Builder::new().prefix("hashsieve-hotline.").tempdir_in("/var/tmp")?;
            temporary.path().to_path_buf()
        }
    };
    let setup = Setup { hashsieved, work, index: scenario.index()?, token: analyst_token(options.seed) };

    for near_known_is_known in [true, false] {
        let shape = Shape { hashers: 2, near_known_is_known };
        let run = runs::triage(&setup, &scenario, shape, options.shift)?;
        figures::print_triage(&scenario, &edited, &run, near_known_is_known, options.shift);
    }
    throughput(&setup, &scenario, &options, cores)?;
    println!();
    println!("run time {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// A bearer token for this run's analyst; the daemon listens on loopback only, for minutes.
fn analyst_token(seed: u64) -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| since.as_nanos() as u64);
    let mut rng = Rng::fork(seed ^ now, u64::from(std::process::id()));
    format!("{:016x}{:016x}", rng.next_u64(), rng.next_u64())
}

fn throughput(setup: &Setup, scenario: &Scenario, options: &Options, cores: usize) -> anyhow::Result<()> {
    let reports = scenario.reports.len();
    println!();
    println!(
        "== throughput: all {reports} reports pushed up-front, no analyst; a fresh Redis, verdict memory and \
         index for every run; {} rounds, alternating",
        options.rounds
    );
    // Reports/s end to end and of the hashing stage, for 1 and 2 hashing daemons.
    let mut rates: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    let mut hashing_rates: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    for round in 1..=options.rounds {
        for hashers in [1, 2] {
            let shape = Shape { hashers, near_known_is_known: true };
            let timing = runs::throughput(setup, scenario, shape, &format!("throughput-{round}-{hashers}"))?;
            let rate = reports as f64 / timing.end_to_end.as_secs_f64();
            let hashing_rate = reports as f64 / timing.hashing.max(Duration::from_millis(1)).as_secs_f64();
            rates[hashers - 1].push(rate);
            hashing_rates[hashers - 1].push(hashing_rate);
            let cpu: Vec<String> =
                timing.cpu.iter().map(|(name, seconds)| format!("{name} {seconds:.1}")).collect();
            println!(
                "   round {round}, {hashers} hashing daemon{}: {:.2} s first XADD to last result = {rate:.0} reports/s; \
                 all pushed after {:.2} s, all hashed after {:.2} s ({hashing_rate:.0} reports/s); CPU s: {}",
                if hashers == 1 { "" } else { "s" },
                timing.end_to_end.as_secs_f64(),
                timing.pushed.as_secs_f64(),
                timing.hashing.as_secs_f64(),
                cpu.join(", "),
            );
        }
    }
    let [one, two] = rates.map(median);
    println!(
        "   median, first XADD to last result: 1 hashing daemon {one:.0} reports/s, 2 hashing daemons {two:.0} \
         reports/s; ratio 2 vs 1: {:.2}",
        two / one
    );
    let [one, two] = hashing_rates.map(median);
    println!(
        "   median, hashing stage alone (first report to last hashed entry): 1 hashing daemon {one:.0} reports/s, \
         2 hashing daemons {two:.0} reports/s; ratio 2 vs 1: {:.2}",
        two / one
    );
    println!(
        "   on {cores} cores: each hashing daemon has workers = 1; the deciding daemon (workers = 0), redis-server \
         and this program share the same cores"
    );
    Ok(())
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}
