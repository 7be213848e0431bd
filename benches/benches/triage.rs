//! Criterion benchmark of triage classification: `Triage::classify` of a report (its eight PDQ
//! dihedral variants and its digests) against a store of assessed items with random PDQ hashes,
//! built before timing starts. Two queries: a near-duplicate of an assessed item (12 bits off,
//! inherits its verdict) and unrelated content (new), with one empty hash list (so the time is
//! triage's, plus the matcher's check of an empty list).
//!
//! The store size is `HASHSIEVE_BENCH_ITEMS` (default 100,000). The store is written to
//! /dev/shm when it exists, so that building it is not bound by fsync:
//! `cargo bench -p hashsieve-benches --bench triage`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use hashsieve_core::digest::{DigestSet, digest_bytes};
use hashsieve_core::index::{IndexBuilder, ListOptions};
use hashsieve_core::matcher::Matcher;
use hashsieve_core::pdq::PdqHash;
use hashsieve_core::signals::{PdqSignal, Signals};
use hashsieve_testkit::Rng;
use hashsieve_triage::model::{Classification, Disposition, Report, VerdictKind};
use hashsieve_triage::{Triage, TriageOptions};

fn items() -> u64 {
    std::env::var("HASHSIEVE_BENCH_ITEMS").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000)
}

fn random_hash(rng: &mut Rng) -> PdqHash {
    PdqHash(rng.bytes())
}

/// Content `n` with PDQ hash `hash` and seven unrelated hashes as its other dihedral variants.
fn signals(n: u64, hash: PdqHash, rng: &mut Rng) -> Signals {
    let mut dihedral = [hash; 8];
    for variant in &mut dihedral[1..] {
        *variant = random_hash(rng);
    }
    Signals {
        size: 16,
        digests: digest_bytes(format!("content {n}").as_bytes(), DigestSet::ALL),
        pdq: Some(PdqSignal { hash, quality: 100, dihedral: Some(dihedral) }),
        ..Signals::default()
    }
}

/// A matcher over one empty list.
fn no_lists() -> Matcher {
    let mut builder = IndexBuilder::new();
    builder.add_list(ListOptions::new("empty")).expect("list");
    Matcher::from_bytes(builder.to_vec()).expect("index")
}

fn classify(c: &mut Criterion) {
    let n = items();
    let shm = std::path::Path::new("/dev/shm");
    let dir = if shm.is_dir() { tempfile::tempdir_in(shm) } else { tempfile::tempdir() }.expect("temp dir");
    let mut triage = Triage::open(&dir.path().join("triage.redb"), TriageOptions::default()).expect("store");
    let lists = no_lists();
    let mut rng = Rng::new(7);
    let mut hashes = Vec::new();
    let started = std::time::Instant::now();
    for i in 0..n {
        let hash = random_hash(&mut rng);
        let report = Report { id: format!("r-{i}"), source: "bench".into(), reported_ms: i, location: None };
        let outcome = triage.submit(&report, &signals(i, hash, &mut rng), &lists).expect("submit");
        let Disposition::New { group, .. } = outcome else {
            panic!("random hashes are far apart: {outcome:?}")
        };
        triage.assess_group(group, VerdictKind::Legal, "bench", None).expect("assess");
        hashes.push(hash);
    }
    eprintln!("{n} assessed items written in {:.1?}", started.elapsed());

    let mut near = hashes[hashes.len() / 2];
    for bit in 0..12 {
        near.0[(bit * 13) % 32] ^= 1 << (bit % 8);
    }
    let near = signals(n + 1, near, &mut rng);
    let far = signals(n + 2, random_hash(&mut rng), &mut rng);
    assert!(matches!(triage.classify(&near, &lists).unwrap(), Classification::PreviouslyAssessed { .. }));
    assert_eq!(triage.classify(&far, &lists).unwrap(), Classification::New);

    let mut group = c.benchmark_group(format!("triage classify, {n} assessed items"));
    group.sample_size(50);
    group.bench_function("near-duplicate of an assessed item", |b| {
        b.iter(|| triage.classify(black_box(&near), &lists).unwrap())
    });
    group.bench_function("new content", |b| b.iter(|| triage.classify(black_box(&far), &lists).unwrap()));
    group.finish();
}

criterion_group!(benches, classify);
criterion_main!(benches);
