//! Criterion benchmarks of the index's hot paths on synthetic lists built in memory before
//! timing starts: exact MD5 lookups (listed and unlisted values) and PDQ radius search at the
//! default threshold 31, one hash and a query's eight dihedral variants.
//!
//! The list size is `HASHSIEVE_BENCH_ENTRIES` (default 1,000,000); the figures in the issue are
//! for 10,000,000: `HASHSIEVE_BENCH_ENTRIES=10000000 cargo bench -p hashsieve-benches --bench index`.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hashsieve_core::hashes::HashKind;
use hashsieve_core::import::ImportedEntry;
use hashsieve_core::index::{Index, IndexBuilder, ListOptions, SearchOptions};
use hashsieve_testkit::Rng;

fn entries() -> usize {
    std::env::var("HASHSIEVE_BENCH_ENTRIES").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000)
}

fn random_bytes(rng: &mut Rng, len: usize) -> Vec<u8> {
    let mut bytes = vec![0; len];
    rng.fill(&mut bytes);
    bytes
}

fn build(kind: HashKind, values: &[Vec<u8>]) -> Index<Vec<u8>> {
    let mut builder = IndexBuilder::new();
    let list = builder.add_list(ListOptions::new("bench")).expect("one list");
    for value in values {
        builder.add(list, &ImportedEntry::new(kind, value.clone())).expect("valid entry");
    }
    Index::open(builder.to_vec()).expect("built index opens")
}

fn exact(c: &mut Criterion) {
    let n = entries();
    let mut rng = Rng::new(1);
    let values: Vec<Vec<u8>> = (0..n).map(|_| random_bytes(&mut rng, 16)).collect();
    let index = build(HashKind::Md5, &values);
    let listed: Vec<&Vec<u8>> = values.iter().step_by((n / 4096).max(1)).collect();
    let unlisted: Vec<Vec<u8>> = (0..4096).map(|_| random_bytes(&mut rng, 16)).collect();
    let options = SearchOptions::default();
    let mut group = c.benchmark_group(format!("md5 lookup, {n} entries"));
    group.throughput(Throughput::Elements(listed.len() as u64));
    let mut hits = Vec::new();
    let mut lookups = |values: &mut dyn Iterator<Item = &Vec<u8>>| {
        hits.clear();
        values.for_each(|v| index.search_into(HashKind::Md5, v, &options, &mut hits));
        hits.len()
    };
    group.bench_function("listed", |b| b.iter(|| lookups(&mut listed.iter().copied())));
    group.throughput(Throughput::Elements(unlisted.len() as u64));
    group.bench_function("unlisted", |b| b.iter(|| lookups(&mut unlisted.iter())));
    group.finish();
}

fn pdq(c: &mut Criterion) {
    let n = entries();
    let mut rng = Rng::new(2);
    let values: Vec<Vec<u8>> = (0..n).map(|_| random_bytes(&mut rng, 32)).collect();
    let index = build(HashKind::Pdq, &values);
    // Queries: a listed hash with 12 bits flipped, and seven unrelated hashes as its variants.
    let queries: Vec<Vec<Vec<u8>>> = (0..64)
        .map(|i| {
            let mut near = values[i * (n / 64)].clone();
            for bit in 0..12 {
                near[(bit * 13 + i) % 32] ^= 1 << (bit % 8);
            }
            std::iter::once(near).chain((0..7).map(|_| random_bytes(&mut rng, 32))).collect()
        })
        .collect();
    let options = SearchOptions::default();
    let mut group = c.benchmark_group(format!("pdq search t=31, {n} entries"));
    group.sample_size(20);
    group.throughput(Throughput::Elements(queries.len() as u64));
    group.bench_function("one hash", |b| {
        b.iter(|| queries.iter().map(|q| index.search(HashKind::Pdq, &q[0], &options).len()).sum::<usize>())
    });
    group.bench_function("eight dihedral variants", |b| {
        b.iter(|| {
            queries
                .iter()
                .map(|q| {
                    q.iter().map(|h| index.search(HashKind::Pdq, black_box(h), &options).len()).sum::<usize>()
                })
                .sum::<usize>()
        })
    });
    group.finish();
}

criterion_group!(benches, exact, pdq);
criterion_main!(benches);
