//! Criterion benchmarks of the wellbeing preview: `preview::render` at every reveal step for a
//! 4000×3000 JPEG (a 12-megapixel photograph's size), decoding alone for comparison, each step
//! after decoding, and the blur against `image::imageops::blur` (a true Gaussian) and
//! `imageops::fast_blur` (box passes in floating point) on a preview-sized picture:
//! `cargo bench -p hashsieve-benches --bench preview`.
//!
//! The photograph is made before timing starts: a sample photo scaled up to 4000×3000 with
//! seeded noise of ±8 levels on every channel, as a camera sensor adds, so that the JPEG has a
//! photograph's entropy (a smooth upscale alone would decode unrealistically fast).

use std::hint::black_box;
use std::io::Cursor;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use hashsieve_core::decode::{DecodeLimits, decode_rgb};
use hashsieve_core::preview::{PreviewOptions, RevealStep, render, render_decoded};
use hashsieve_testkit::Rng;
use image::{DynamicImage, ImageFormat, imageops};

fn photograph(width: u32, height: u32) -> Vec<u8> {
    let sample = image::open(hashsieve_testkit::samples().join("labelme-q0291.png")).unwrap().to_rgb8();
    let mut large = imageops::resize(&sample, width, height, imageops::FilterType::Triangle);
    let mut rng = Rng::new(7);
    for value in large.iter_mut() {
        *value = value.saturating_add_signed((rng.next_u64() % 17) as i8 - 8);
    }
    let mut jpeg = Vec::new();
    DynamicImage::ImageRgb8(large).write_to(&mut Cursor::new(&mut jpeg), ImageFormat::Jpeg).unwrap();
    jpeg
}

fn preview(c: &mut Criterion) {
    let options = PreviewOptions::default();
    let jpeg = photograph(4000, 3000);
    let decoded = decode_rgb(&jpeg, &options.limits).unwrap();

    let mut group = c.benchmark_group("preview-4000x3000-jpeg");
    group.sample_size(10);
    group.bench_function("decode", |b| {
        b.iter(|| decode_rgb(black_box(&jpeg), &DecodeLimits::default()).unwrap())
    });
    for step in RevealStep::ALL {
        group.bench_with_input(BenchmarkId::new("render", step), &step, |b, &step| {
            b.iter(|| render(black_box(&jpeg), step, &options).unwrap())
        });
    }
    for step in RevealStep::ALL {
        group.bench_with_input(BenchmarkId::new("after-decode", step), &step, |b, &step| {
            b.iter(|| render_decoded(black_box(&decoded), step, &options).unwrap())
        });
    }
    group.finish();

    // The blur on the picture it runs on, a 256×192 preview: a sharp greyscale render and a
    // blurred one differ only by the blur. `imageops::blur` at the same standard deviation
    // (√(16·17) ≈ 16.5) is the alternative it replaces: a true Gaussian whose cost grows with
    // the radius.
    let small = render_decoded(&decoded, RevealStep::Colour, &options).unwrap();
    let small = decode_rgb(&small.bytes, &options.limits).unwrap();
    let grey = DynamicImage::ImageRgb8(
        image::RgbImage::from_raw(small.width, small.height, small.pixels.clone()).unwrap(),
    )
    .to_luma8();
    let mut group = c.benchmark_group("preview-blur-256x192");
    for step in [RevealStep::Greyscale, RevealStep::Softened, RevealStep::Blurred] {
        group.bench_with_input(BenchmarkId::new("after-decode", step), &step, |b, &step| {
            b.iter(|| render_decoded(black_box(&small), step, &options).unwrap())
        });
    }
    group.bench_function("imageops-blur-sigma-16.5", |b| b.iter(|| imageops::blur(black_box(&grey), 16.5)));
    group.bench_function("imageops-fast-blur-sigma-16.5", |b| {
        b.iter(|| imageops::fast_blur(black_box(&grey), 16.5))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(3));
    targets = preview
}
criterion_main!(benches);
