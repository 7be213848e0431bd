//! Criterion benchmarks of PDQ (single hash and all eight dihedral hashes) at three sizes, on
//! synthetic pixels made before timing starts, so that only hashing is measured. The pixels
//! are smooth gradients with some texture: PDQ's cost does not depend on content, but a real
//! picture's quality score and hash bits are exercised this way.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use hashsieve_core::pdq::PdqHasher;
use hashsieve_testkit::Rng;

/// Deterministic RGB8 pixels: gradients plus a little seeded texture.
fn synthetic_rgb(width: usize, height: usize) -> Vec<u8> {
    let mut rng = Rng::new(1);
    let mut rgb = Vec::with_capacity(width * height * 3);
    for y in 0..height {
        for x in 0..width {
            let noise = (rng.next_u64() >> 60) as usize;
            rgb.push(((x * 255 / width + noise) & 0xff) as u8);
            rgb.push(((y * 255 / height + noise) & 0xff) as u8);
            rgb.push((((x + y) * 127 / (width + height) + 64 + noise) & 0xff) as u8);
        }
    }
    rgb
}

fn pdq(c: &mut Criterion) {
    for (width, height, samples) in [(256, 256, 100), (1024, 768, 50), (4000, 3000, 10)] {
        let rgb = synthetic_rgb(width, height);
        let mut group = c.benchmark_group("pdq");
        group.sample_size(samples);
        group.throughput(Throughput::Elements((width * height) as u64));
        let size = format!("{width}x{height}");
        let mut hasher = PdqHasher::new();
        group.bench_with_input(BenchmarkId::new("hash", &size), &rgb, |b, rgb| {
            b.iter(|| hasher.hash_rgb(black_box(rgb), width, height))
        });
        group.bench_with_input(BenchmarkId::new("dihedral", &size), &rgb, |b, rgb| {
            b.iter(|| hasher.dihedral_rgb(black_box(rgb), width, height))
        });
        let mut portable = PdqHasher::portable();
        group.bench_with_input(BenchmarkId::new("hash-portable", &size), &rgb, |b, rgb| {
            b.iter(|| portable.hash_rgb(black_box(rgb), width, height))
        });
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(2));
    targets = pdq
}
criterion_main!(benches);
