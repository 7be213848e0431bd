//! Criterion benchmarks of keypoints (the near-duplicate signal for cropped copies):
//! `Keypoints::from_rgb` on a 256×256 photo and on a 1600×1004 one (the PDQ reference photo,
//! from `tests/vectors`), and `align` of a query with the
//! set of a crop of the same picture and with the set of a different picture — the two cases
//! triage's candidate search ends in. Pixels are decoded before timing starts:
//! `cargo bench -p hashsieve-benches --bench keypoints`.

use std::hint::black_box;
use std::path::{Path, PathBuf};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use hashsieve_core::keypoints::{self, Keypoints};

struct Rgb {
    pixels: Vec<u8>,
    width: usize,
    height: usize,
}

fn load(path: &Path) -> Rgb {
    let image = image::open(path).unwrap_or_else(|err| panic!("{}: {err}", path.display())).to_rgb8();
    let (width, height) = (image.width() as usize, image.height() as usize);
    Rgb { pixels: image.into_raw(), width, height }
}

/// The image with `left` and `top` pixels cut off, and as many off the right and bottom.
fn crop(rgb: &Rgb, left: usize, top: usize) -> Rgb {
    let (width, height) = (rgb.width - 2 * left, rgb.height - 2 * top);
    let pixels = (top..top + height)
        .flat_map(|y| rgb.pixels[(y * rgb.width + left) * 3..(y * rgb.width + left + width) * 3].to_vec())
        .collect();
    Rgb { pixels, width, height }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn extraction(c: &mut Criterion) {
    let mut group = c.benchmark_group("keypoints");
    let large = root().join("tests/vectors/pdq/images/bridge-mods-aaa-orig.png");
    let photos = [("256x256", root().join("samples/images/q1050.jpg")), ("1600x1004", large)];
    for (size, path) in photos {
        let rgb = load(&path);
        group.bench_with_input(BenchmarkId::new("from_rgb", size), &rgb, |b, rgb| {
            b.iter(|| Keypoints::from_rgb(black_box(&rgb.pixels), rgb.width, rgb.height))
        });
    }
    group.finish();
}

fn alignment(c: &mut Criterion) {
    let images = root().join("samples/images");
    let photo = load(&images.join("q1050.jpg"));
    let other = load(&images.join("q0122.jpg"));
    let query = Keypoints::from_rgb(&photo.pixels, photo.width, photo.height);
    let cropped = crop(&photo, 8, 5);
    let same = Keypoints::from_rgb(&cropped.pixels, cropped.width, cropped.height).without_mirrored();
    let different = Keypoints::from_rgb(&other.pixels, other.width, other.height).without_mirrored();
    assert!(keypoints::align(&query, &same).is_some_and(|a| a.is_same_picture()));
    assert!(!keypoints::align(&query, &different).is_some_and(|a| a.is_same_picture()));
    let mut group = c.benchmark_group("align");
    group.bench_function("same-picture", |b| b.iter(|| keypoints::align(black_box(&query), &same)));
    group.bench_function("different-picture", |b| b.iter(|| keypoints::align(black_box(&query), &different)));
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(2));
    targets = extraction, alignment
}
criterion_main!(benches);
