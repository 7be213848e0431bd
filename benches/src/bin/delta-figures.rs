//! hashsieve's side of `benches/compare/delta.sh`: the figures of live list changes, each as
//! one JSON line.
//!
//! ```text
//! delta-figures writers DIR [--writers 8] [--adds 20000]
//!     acknowledged adds/s: each writer thread adds one MD5 per call and waits until it is
//!     durable; values "00000000000000000000" + 12 digits (a random number below 10^8), as
//!     redis-benchmark's SADD with -r 100000000
//! delta-figures latency DIR [--base 1000000] [--delta 100000] [--queries 5000]
//!     PDQ query (8 hashes) p50/p99 against the same base with an empty delta and with DELTA
//!     entries added, alternating; the delta's results are checked against brute force
//! delta-figures compaction DIR [--base 10000000] [--delta 100000] [--threads 2]
//!     compaction of a BASE-entry index while query threads check known answers
//! ```
//!
//! DIR must not exist; it is created and left for the caller to remove.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use hashsieve_core::delta::Removal;
use hashsieve_core::delta::live::EntryAt;
use hashsieve_core::hashes::HashKind;
use hashsieve_core::import::ImportedEntry;
use hashsieve_core::index::dir::{DirOptions, IndexDir};
use hashsieve_core::index::{IndexBuilder, ListOptions};
use hashsieve_core::matcher::{MatchOutcome, Matcher};
use serde_json::json;

const PDQ_LIST: &str = "pdq";
const MD5_LIST: &str = "md5list";

/// splitmix64: reproducible data without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn pdq(&mut self) -> Vec<u8> {
        (0..4).flat_map(|_| self.next().to_le_bytes()).collect()
    }
    fn flip(&mut self, hash: &[u8], bits: u32) -> Vec<u8> {
        let mut out = hash.to_vec();
        for _ in 0..bits {
            let bit = (self.next() % 256) as usize;
            out[bit / 8] ^= 1 << (bit % 8);
        }
        out
    }
}

/// The MD5 whose hex is twenty zeros and `digits` as twelve decimal digits.
fn md5_of_digits(digits: u64) -> Vec<u8> {
    hex::decode(format!("00000000000000000000{:012}", digits % 1_000_000_000_000)).expect("valid hex")
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

/// Creates an index directory with `pdq` random PDQ entries in list "pdq" and an empty
/// "md5list"; returns the PDQ values.
fn create(dir: &Path, pdq: usize, rng: &mut Rng) -> Result<Vec<Vec<u8>>, Box<dyn std::error::Error>> {
    let mut builder = IndexBuilder::new();
    let list = builder.add_list(ListOptions::new(PDQ_LIST))?;
    builder.add_list(ListOptions::new(MD5_LIST))?;
    let values: Vec<Vec<u8>> = (0..pdq).map(|_| rng.pdq()).collect();
    for value in &values {
        builder.add(list, &ImportedEntry::new(HashKind::Pdq, value.clone()))?;
    }
    IndexDir::create(dir, &builder)?;
    Ok(values)
}

fn open(dir: &Path) -> Result<Matcher, Box<dyn std::error::Error>> {
    Ok(Matcher::open_dir(dir, DirOptions { compact_after: None, ..DirOptions::default() })?.0)
}

fn writers(dir: &Path, writers: usize, adds: usize) -> Result<(), Box<dyn std::error::Error>> {
    create(dir, 0, &mut Rng(1))?;
    let matcher = open(dir)?;
    let per_writer = adds / writers;
    let started = Instant::now();
    std::thread::scope(|scope| {
        for writer in 0..writers {
            let matcher = &matcher;
            scope.spawn(move || {
                let mut rng = Rng(writer as u64 + 100);
                for _ in 0..per_writer {
                    let entry = ImportedEntry::new(HashKind::Md5, md5_of_digits(rng.next() % 100_000_000));
                    matcher.add(MD5_LIST, vec![entry], None).expect("add");
                }
            });
        }
    });
    let seconds = started.elapsed().as_secs_f64();
    let total = per_writer * writers;
    println!(
        "{}",
        json!({"tool": "hashsieve", "figure": "writers", "writers": writers, "adds": total,
               "seconds": seconds, "adds_per_s": total as f64 / seconds})
    );
    Ok(())
}

/// Milliseconds per query of eight hashes, sorted, and the delta's matches per query.
fn time_queries(matcher: &Matcher, queries: &[Vec<Vec<u8>>]) -> (Vec<f64>, Vec<usize>) {
    let mut times = Vec::with_capacity(queries.len());
    let mut delta_matches = Vec::with_capacity(queries.len());
    let mut found = Vec::new();
    for query in queries {
        let started = Instant::now();
        let live = matcher.current();
        let from_delta = live.view(|view| {
            found.clear();
            for hash in query {
                view.search(HashKind::Pdq, hash, None, &mut found);
            }
            found.iter().filter(|f| matches!(f.at, EntryAt::Delta(_))).count()
        });
        times.push(started.elapsed().as_secs_f64() * 1e3);
        delta_matches.push(from_delta);
    }
    times.sort_by(f64::total_cmp);
    (times, delta_matches)
}

/// Two index directories with the same base, one with an empty delta and one with `delta`
/// entries added; the same queries alternate between them, so that the machine's noise falls
/// on both alike.
fn latency(dir: &Path, base: usize, delta: usize, count: usize) -> Result<(), Box<dyn std::error::Error>> {
    let (empty_dir, delta_dir) = (dir.join("empty"), dir.join("delta"));
    std::fs::create_dir_all(dir)?;
    let values = create(&empty_dir, base, &mut Rng(7))?;
    create(&delta_dir, base, &mut Rng(7))?;
    let (empty, with_delta) = (open(&empty_dir)?, open(&delta_dir)?);
    let mut rng = Rng(8);
    let added: Vec<Vec<u8>> = (0..delta).map(|_| rng.pdq()).collect();
    let started = Instant::now();
    for chunk in added.chunks(1000) {
        let entries = chunk.iter().map(|v| ImportedEntry::new(HashKind::Pdq, v.clone())).collect();
        with_delta.add(PDQ_LIST, entries, None)?;
    }
    let add_seconds = started.elapsed().as_secs_f64();
    // A query is a picture's eight rotations and mirror images: one near an entry (of the base
    // or of the delta, in turn), seven elsewhere.
    let queries: Vec<Vec<Vec<u8>>> = (0..count)
        .map(|i| {
            let near = if i % 2 == 0 || added.is_empty() {
                &values[(rng.next() as usize) % values.len()]
            } else {
                &added[(rng.next() as usize) % added.len()]
            };
            let mut hashes = vec![rng.flip(near, 10)];
            hashes.extend((0..7).map(|_| rng.pdq()));
            hashes
        })
        .collect();
    // Warm both mappings, then alternate.
    time_queries(&empty, &queries);
    time_queries(&with_delta, &queries);
    let (mut empty_times, mut delta_times, mut delta_matches) = (Vec::new(), Vec::new(), Vec::new());
    for query in queries.chunks(50) {
        empty_times.extend(time_queries(&empty, query).0);
        let (times, matches) = time_queries(&with_delta, query);
        delta_times.extend(times);
        delta_matches.extend(matches);
    }
    empty_times.sort_by(f64::total_cmp);
    delta_times.sort_by(f64::total_cmp);

    // The delta's answers against brute force over the added hashes.
    let distance = |a: &[u8], b: &[u8]| a.iter().zip(b).map(|(x, y)| (x ^ y).count_ones()).sum::<u32>();
    let expected: Vec<usize> = queries
        .iter()
        .map(|query| query.iter().map(|q| added.iter().filter(|a| distance(q, a) <= 31).count()).sum())
        .collect();
    let complete = expected == delta_matches;
    let (p50_empty, p99_empty) = (percentile(&empty_times, 0.5), percentile(&empty_times, 0.99));
    let (p50_delta, p99_delta) = (percentile(&delta_times, 0.5), percentile(&delta_times, 0.99));
    println!(
        "{}",
        json!({"tool": "hashsieve", "figure": "latency", "base": base, "delta": delta, "queries": count,
               "p50_ms_empty": p50_empty, "p99_ms_empty": p99_empty,
               "p50_ms_delta": p50_delta, "p99_ms_delta": p99_delta,
               "p99_ratio": p99_delta / p99_empty, "delta_add_s": add_seconds,
               "delta_matches": delta_matches.iter().sum::<usize>(), "equal_to_brute_force": complete})
    );
    Ok(())
}

fn compaction(
    dir: &Path,
    base: usize,
    delta: usize,
    threads: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut rng = Rng(11);
    let started = Instant::now();
    let values = create(dir, base, &mut rng)?;
    let build_seconds = started.elapsed().as_secs_f64();
    let matcher = open(dir)?;
    let added: Vec<Vec<u8>> = (0..delta as u64).map(|i| md5_of_digits(i * 7_919 + 13)).collect();
    for chunk in added.chunks(1000) {
        let entries = chunk.iter().map(|v| ImportedEntry::new(HashKind::Md5, v.clone())).collect();
        matcher.add(MD5_LIST, entries, None)?;
    }
    // Every stride-th entry is withdrawn; the one after each stays.
    let stride = (values.len() / 1000).max(2);
    let removed: Vec<&Vec<u8>> = values.iter().step_by(stride).take(1000).collect();
    let removals =
        removed.iter().map(|v| Removal::hash(Some(PDQ_LIST.into()), HashKind::Pdq, (*v).clone())).collect();
    matcher.remove(removals, None)?;
    let kept: Vec<&Vec<u8>> = values.iter().skip(1).step_by(stride).take(1000).collect();

    // One query: an added digest is known, a withdrawn PDQ is not found, a kept one is.
    let check = |i: usize| -> bool {
        let md5 = matcher.check_hash(HashKind::Md5, &added[i % added.len()]);
        let gone = matcher.check_hash(HashKind::Pdq, removed[i % removed.len()]);
        let there = matcher.check_hash(HashKind::Pdq, kept[i % kept.len()]);
        md5.outcome == MatchOutcome::Known
            && gone.outcome == MatchOutcome::Unknown
            && there.matches.iter().any(|m| m.distance == 0 && m.list == PDQ_LIST)
    };
    let failures_before = (0..1000).filter(|&i| !check(i)).count();

    let stop = AtomicBool::new(false);
    let failed = AtomicU64::new(0);
    let mut times: Vec<f64> = Vec::new();
    let mut compaction_seconds = 0.0;
    let mut entries = 0;
    std::thread::scope(|scope| -> Result<(), Box<dyn std::error::Error>> {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let (stop, failed, check) = (&stop, &failed, &check);
                scope.spawn(move || {
                    let mut times = Vec::new();
                    let mut i = t * 7919;
                    while !stop.load(Ordering::Acquire) {
                        let started = Instant::now();
                        let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(i)))
                            .unwrap_or(false);
                        times.push(started.elapsed().as_secs_f64() * 1e3);
                        if !ok {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                        i += 1;
                    }
                    times
                })
            })
            .collect();
        let outcome = matcher.compact();
        stop.store(true, Ordering::Release);
        for worker in workers {
            times.extend(worker.join().expect("query thread"));
        }
        let done = outcome?;
        compaction_seconds = done.seconds;
        entries = done.entries;
        Ok(())
    })?;
    times.sort_by(f64::total_cmp);
    let failures_after = (0..1000).filter(|&i| !check(i)).count();
    let bases = std::fs::read_dir(dir)?
        .filter(|e| e.as_ref().is_ok_and(|e| e.file_name().to_string_lossy().starts_with("base-")))
        .count();
    println!(
        "{}",
        json!({"tool": "hashsieve", "figure": "compaction", "base": base, "delta_adds": delta,
               "delta_removals": removed.len(), "build_s": build_seconds,
               "compaction_s": compaction_seconds, "entries_after": entries,
               "queries_during": times.len(), "failed_queries": failed.load(Ordering::Relaxed),
               "query_p50_ms": percentile(&times, 0.5), "query_p99_ms": percentile(&times, 0.99),
               "query_max_ms": times.last().copied().unwrap_or(f64::NAN),
               "wrong_answers_before": failures_before, "wrong_answers_after": failures_after,
               "base_files_after": bases, "peak_rss_mib": peak_rss_mib()})
    );
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: delta-figures writers|latency|compaction DIR [options]; see the source";
    let (figure, dir) = match (args.first(), args.get(1)) {
        (Some(figure), Some(dir)) => (figure.as_str(), PathBuf::from(dir)),
        _ => return Err(usage.into()),
    };
    let flag = |name: &str, default: usize| -> Result<usize, Box<dyn std::error::Error>> {
        match args.iter().position(|a| a == name) {
            None => Ok(default),
            Some(i) => Ok(args.get(i + 1).ok_or(usage)?.parse()?),
        }
    };
    match figure {
        "writers" => writers(&dir, flag("--writers", 8)?, flag("--adds", 20_000)?),
        "latency" => {
            latency(&dir, flag("--base", 1_000_000)?, flag("--delta", 100_000)?, flag("--queries", 5000)?)
        }
        "compaction" => {
            compaction(&dir, flag("--base", 10_000_000)?, flag("--delta", 100_000)?, flag("--threads", 2)?)
        }
        _ => Err(usage.into()),
    }
}
