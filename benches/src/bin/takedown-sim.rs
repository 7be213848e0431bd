//! The takedown loop, simulated past the verdict: reported URLs on simulated hosting providers
//! are confirmed illegal, each becomes a case that `hashsieved` re-checks on a short schedule
//! while the providers take the content down at seeded times, and the cases, the notices, the
//! referrals and the URL block list are compared with the truth.
//!
//! Only benign generated pictures are served (`hashsieve_testkit::picture`, as JPEGs in
//! memory); the daemon's store holds their hashes only.
//!
//! The providers are six loopback addresses (127.0.1.1 … 127.0.6.1), which generated IP
//! databases put in three countries: two at home (NL, their abuse desks take notices by webhook:
//! a receiver here answering 204), two in DE (a partner hotline: cases are referred), two in
//! the US (no partner). Each reported URL is a web server of its own on its provider's address
//! and, after a seeded delay of 2 s to the window (60 s; 20 s with `--quick`), answers 404 (25%)
//! or 410 (20%), serves other content (20%), refuses connections (15%), or never removes it
//! (20%). The schedule is short: re-checks every 2 s, jitter 10%, blocked 3 s after the verdict
//! (at once abroad).
//!
//! Phases, each with its own store:
//!
//! 1. **The loop** (150 URLs; 48 with `--quick`): all reported and confirmed; then the removals
//!    at their true times while the block list is sampled every 250 ms and the cases every
//!    second. Printed: cases, notices, referrals; removals detected and each detection's delay
//!    after the true removal (median, p90, max) against the interval × (1 + jitter); the
//!    URL-seconds the block list covered content still online and content already gone, and
//!    the URLs still listed more than one interval after they were seen gone (goal 0).
//! 2. **Re-check rate**: 1,600 cases (400) on two hosts, a 1 s interval, `checks_per_host = 2`:
//!    the re-checks per second one daemon makes, from `hashsieve_takedown_checks_total`.
//! 3. **Latency under re-checks**: on that store, 6 rounds (2) of three phases — a daemon that
//!    re-checks, one with `takedown.checks = false`, and that again (each round beginning with
//!    the next phase, as the first is often slower), 1,000 calls of each endpoint a phase: median and p99 of `GET /v1/review/groups` and of
//!    `POST /v1/match/hashes` (one MD5), the ratios with and without re-checks, and the same
//!    ratios between the two phases without, which are the noise the first are to be within.
//!    The two hosts stand for machines elsewhere, so their threads run at `SCHED_IDLE` and give
//!    way to the daemon and the client measuring it.
//! 4. **kill -9**: 40 cases on two hosts answering after 50 ms, a 1 s interval; 20 trials (5) of
//!    SIGKILL at a random point, a restart on the same store, and every case read back.
//!
//! ```text
//! takedown-sim [--quick] [--seed N] [--urls N] [--window SECS] [--trials N] [--part loop|load|kills]...
//!              [--hashsieved PATH] [--work DIR]
//! ```
//!
//! `--part` runs only the parts named (`loop` 1; `load` 2 and 3; `kills` 4), in the order given.
//!
//! `hashsieved` is looked for next to this program unless given; `--work` holds the stores,
//! configurations, IP databases and daemon logs (default: a new directory in /var/tmp, removed
//! at the end). `benches/compare/takedown.sh` builds and runs it.

// A binary's root looks for its modules beside it; these live in takedown-sim/.
#[path = "takedown-sim/daemon.rs"]
mod daemon;
#[path = "takedown-sim/hosting.rs"]
mod hosting;
#[path = "takedown-sim/kills.rs"]
mod kills;
#[path = "takedown-sim/load.rs"]
mod load;
#[path = "takedown-sim/removals.rs"]
mod removals;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hashsieve_testkit::origin::{Behaviour, Origin};

use crate::daemon::{Settings, Site};

struct Options {
    seed: u64,
    urls: usize,
    window: Duration,
    busy: usize,
    rounds: usize,
    trials: usize,
    parts: Vec<Part>,
    hashsieved: Option<PathBuf>,
    work: Option<PathBuf>,
}

const USAGE: &str = "usage: takedown-sim [--quick] [--seed N] [--urls N] [--window SECS] [--trials N] \
                     [--part loop|load|kills]... [--hashsieved PATH] [--work DIR]";

/// The phases that can be run alone (`--part`): the loop (1), the load (2 and 3), kill -9 (4).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Part {
    Loop,
    Load,
    Kills,
}

fn parse_args() -> anyhow::Result<Options> {
    let mut options = Options {
        seed: 1,
        urls: 150,
        window: Duration::from_secs(60),
        busy: 800,
        rounds: 6,
        trials: 20,
        parts: Vec::new(),
        hashsieved: None,
        work: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value\n{USAGE}"));
        let number = |text: String| text.parse::<u64>().with_context(|| format!("not a number: {text}"));
        match arg.as_str() {
            "--quick" => {
                (options.urls, options.window, options.busy, options.rounds, options.trials) =
                    (48, Duration::from_secs(20), 200, 2, 5)
            }
            "--seed" => options.seed = number(value()?)?,
            "--urls" => options.urls = number(value()?)?.max(1) as usize,
            "--window" => options.window = Duration::from_secs(number(value()?)?.max(3)),
            "--trials" => options.trials = number(value()?)? as usize,
            "--part" => options.parts.push(match value()?.as_str() {
                "loop" => Part::Loop,
                "load" => Part::Load,
                "kills" => Part::Kills,
                other => bail!("unknown part {other}\n{USAGE}"),
            }),
            "--hashsieved" => options.hashsieved = Some(value()?.into()),
            "--work" => options.work = Some(value()?.into()),
            _ => bail!("unknown argument {arg}\n{USAGE}"),
        }
    }
    if options.parts.is_empty() {
        options.parts = vec![Part::Loop, Part::Load, Part::Kills];
    }
    Ok(options)
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("takedown-sim: {err:#}");
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
    // The script passes a directory it removes; run alone, a temporary one removed on drop.
    let temporary;
    let work = match &options.work {
        Some(dir) => dir.clone(),
        None => {
            temporary = tempfile::Builder::new().prefix("hashsieve-takedown.").tempdir_in("/var/tmp")?;
            temporary.path().to_path_buf()
        }
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let token = format!(
        "sim-{:016x}{:016x}",
        hashsieve_testkit::Rng::new(options.seed ^ hosting::now_ms()).next_u64(),
        std::process::id()
    );
    println!("takedown simulation, seed {}: {cores} cores on this machine", options.seed);

    let env = Env { hashsieved, work, token };
    for part in &options.parts {
        match part {
            Part::Loop => the_loop(&options, &env)?,
            Part::Load => load(&options, &env)?,
            Part::Kills => kills(&options, &env)?,
        }
    }
    println!();
    println!("run time {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// What every part needs.
struct Env {
    hashsieved: PathBuf,
    work: PathBuf,
    token: String,
}

/// 1. The loop.
fn the_loop(options: &Options, env: &Env) -> anyhow::Result<()> {
    let site = Site::create(&env.hashsieved, env.work.join("loop"), &env.token)?;
    let receiver = Origin::start(Behaviour::Status(204));
    let settings = Settings {
        interval_secs: 2,
        jitter_percent: 10,
        block_after_secs: 3,
        checks_per_host: 2,
        // 150 URLs every 2 s is 75 checks a second: the compressed schedule needs more than
        // the default pace of 20.
        max_checks_per_sec: 200,
        checks: true,
        takedown: hosting::ip_databases(&site.dir)?,
        tables: hosting::contacts(&receiver),
    };
    let hosted = hosting::plan(options.urls, 12, options.window, options.seed)?;
    println!();
    println!(
        "== the loop: {} URLs on {} providers (NL ×2 with webhook contacts, DE ×2 with a partner, US ×2 without), \
         12 pictures; removals 2–{} s after the verdicts; re-checks every {} s ± {}%, blocked after {} s (abroad at \
         once), checks_per_host {}",
        hosted.len(),
        hosting::PROVIDERS.len(),
        options.window.as_secs(),
        settings.interval_secs,
        settings.jitter_percent,
        settings.block_after_secs,
        settings.checks_per_host
    );
    let outcome = removals::run(&site, &settings, hosted, &receiver)?;
    removals::print(&outcome, &settings);
    drop(outcome);

    Ok(())
}

/// 2 and 3. The re-check rate, and the latency under re-checks.
fn load(options: &Options, env: &Env) -> anyhow::Result<()> {
    // Calls of each endpoint per phase: 6 rounds make 6,000 of each, so that a p99 is the
    // 60th-slowest, not one outlier's luck.
    const CALLS: usize = 1000;
    let busy = busy();
    let site = Site::create(&env.hashsieved, env.work.join("load"), &env.token)?;
    let hosts = load::busy_site(&site, &busy, options.busy, options.seed)?;
    println!();
    println!(
        "== re-check rate: {} cases on 2 hosts (127.0.7.1, 127.0.8.1), every {} s, checks_per_host {}",
        options.busy * 2,
        busy.interval_secs,
        busy.checks_per_host
    );
    let span = Duration::from_secs(10);
    {
        let daemon = site.start(&busy)?;
        let rate = load::check_rate(&daemon, span)?;
        let most: Vec<usize> = hosts.iter().map(Origin::most_at_once).collect();
        println!(
            "   {rate:.0} re-checks/s over {} s (at most {} re-checks due per second: {}); the most requests at once \
             at each host: {most:?}",
            span.as_secs(),
            options.busy * 2,
            if rate > options.busy as f64 * 2.0 * 0.95 {
                "the schedule, not the daemon, bounds it"
            } else {
                "the daemon bounds it"
            }
        );
    }
    // At the default pace, as a hotline runs it; and unpaced, what a backlog would cost.
    let paced = Settings { max_checks_per_sec: 20, ..busy.clone() };
    let idle = Settings { checks: false, ..busy.clone() };
    for (label, with_checks) in
        [("at the default pace (max_checks_per_sec = 20)", &paced), ("unpaced", &busy)]
    {
        println!();
        println!(
            "== latency with re-checks running {label} vs without (takedown.checks = false), same store, {} rounds \
             of three phases (with, without, without again: the noise; each round begins with the next), {CALLS} \
             calls of each per phase",
            options.rounds
        );
        let mut on = (Vec::new(), Vec::new());
        let mut off = (Vec::new(), Vec::new());
        let mut again = (Vec::new(), Vec::new());
        for round in 0..options.rounds {
            // Each round begins with another phase, so that no phase always comes first.
            let mut phases = [(with_checks, &mut on), (&idle, &mut off), (&idle, &mut again)];
            phases.rotate_left(round % 3);
            for (settings, into) in phases {
                let daemon = site.start(settings)?;
                // The first round of re-checks under way.
                std::thread::sleep(Duration::from_millis(1500));
                let (review, matching) = load::latencies(&daemon, CALLS)?;
                into.0.extend(review);
                into.1.extend(matching);
            }
        }
        for (name, with, without, without_again) in [
            ("GET /v1/review/groups", &mut on.0, &mut off.0, &mut again.0),
            ("POST /v1/match/hashes (one MD5)", &mut on.1, &mut off.1, &mut again.1),
        ] {
            let (with, without, without_again) =
                (load::Quantiles::of(with), load::Quantiles::of(without), load::Quantiles::of(without_again));
            println!(
                "   {name}: with re-checks median {:.2} ms, p99 {:.2} ms; without median {:.2} ms, p99 {:.2} ms; \
                 ratio p99 {:.2}, median {:.2} (without again vs without, the noise: p99 {:.2}, median {:.2})",
                with.median,
                with.p99,
                without.median,
                without.p99,
                with.p99 / without.p99,
                with.median / without.median,
                without_again.p99 / without.p99,
                without_again.median / without.median,
            );
        }
    }
    drop(hosts);

    Ok(())
}

/// 4. kill -9 during re-checks.
fn kills(options: &Options, env: &Env) -> anyhow::Result<()> {
    let busy = busy();
    let site = Site::create(&env.hashsieved, env.work.join("kills"), &env.token)?;
    let kill = Settings { checks: false, ..busy.clone() };
    let hosts = load::busy_site(&site, &kill, 20, options.seed ^ 9)?;
    for host in &hosts {
        host.delay(Duration::from_millis(50));
    }
    println!();
    println!(
        "== kill -9: {} trials of SIGKILL during re-checks of 40 cases (2 hosts answering after 50 ms, every 1 s), \
         each restarted on the same store",
        options.trials
    );
    let trials = kills::run(&site, &busy, options.trials, options.seed)?;
    println!(
        "   {} trials, {} cases: {} lost, {} duplicated, {} slot faults, {} recorded checks lost; checks recorded \
         after each trial: {:?}",
        trials.trials,
        trials.cases,
        trials.lost,
        trials.duplicated,
        trials.slot_faults.len(),
        trials.checks_lost.len(),
        trials.checks
    );
    println!("   killed after (ms): {:?}", trials.kill_after_ms);
    for fault in trials.slot_faults.iter().chain(&trials.checks_lost) {
        println!("      ! {fault}");
    }
    drop(hosts);
    Ok(())
}

/// A store of many cases on two hosts, re-checked every second as fast as the daemon can.
fn busy() -> Settings {
    Settings {
        interval_secs: 1,
        jitter_percent: 0,
        block_after_secs: 0,
        checks_per_host: 2,
        // Unpaced: what one daemon can do.
        max_checks_per_sec: 1_000_000,
        checks: true,
        takedown: String::new(),
        tables: String::new(),
    }
}
