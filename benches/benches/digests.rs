//! Digest throughput: each digest alone and all four in one pass, on in-memory buffers.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use hashsieve_core::digest::{DigestKind, DigestSet, digest_bytes, digest_reader};

fn buffer(len: usize) -> Vec<u8> {
    let mut bytes = vec![0; len];
    hashsieve_testkit::Rng::new(1).fill(&mut bytes);
    bytes
}

fn digests(c: &mut Criterion) {
    let mut group = c.benchmark_group("digests");
    group.sample_size(10);
    for len in [64 << 10, 4 << 20, 64 << 20] {
        let data = buffer(len);
        group.throughput(Throughput::Bytes(len as u64));
        for kind in DigestKind::ALL {
            let set = DigestSet::NONE.with(kind);
            group.bench_with_input(BenchmarkId::new(kind.name(), len), &data, |b, data| {
                b.iter(|| digest_bytes(data, set))
            });
        }
        group.bench_with_input(BenchmarkId::new("all-four", len), &data, |b, data| {
            b.iter(|| digest_bytes(data, DigestSet::ALL))
        });
        group.bench_with_input(BenchmarkId::new("all-four-streamed", len), &data, |b, data| {
            b.iter(|| digest_reader(&data[..], DigestSet::ALL).unwrap())
        });
    }
    group.finish();
}

criterion_group!(benches, digests);
criterion_main!(benches);
