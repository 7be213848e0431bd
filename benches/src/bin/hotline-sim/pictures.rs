//! The distinct pictures the reports are made of: the few real benign photos there are, and
//! many generated ones, so that the stream holds a few hundred pictures that are all far apart
//! in PDQ. "Distinct" is checked, not assumed: a picture within [`MIN_DISTANCE`] of one already
//! kept is dropped, so the ground truth "these are different pictures" is sound.

use std::io::Cursor;
use std::path::Path;

use anyhow::Context;
use hashsieve_core::signals::{PdqSignal, Signals};
use hashsieve_triage::Triage;
use image::codecs::jpeg::JpegEncoder;
use image::{ImageFormat, Rgb, RgbImage};
use rayon::prelude::*;

use crate::rng::Rng;

/// Originals closer than this (any rotation or mirror image) are not distinct enough: twice
/// the near-duplicate threshold (31), so that an edited copy of one is never near another.
pub const MIN_DISTANCE: u32 = 64;

/// PDQ hashes below this quality are not matched on (core and triage): a picture must reach it
/// for its edited copies to have a chance.
pub const MIN_QUALITY: u8 = 50;

/// One distinct picture as first reported.
pub struct Picture {
    /// `photo <file name>` or `generated <number>`.
    pub name: String,
    /// The encoded file.
    pub bytes: Vec<u8>,
    pub pdq: PdqSignal,
}

/// What choosing the originals found, for the output.
pub struct Selection {
    pub pictures: Vec<Picture>,
    pub photos: usize,
    pub photos_dropped_near: usize,
    pub generated_dropped_near: usize,
    pub dropped_weak: usize,
    /// The smallest distance between two kept pictures.
    pub min_distance: u32,
}

/// Core's PDQ of `bytes` with the eight rotations and mirror images, as the daemons hash it;
/// `None` if it does not decode.
pub fn pdq_of(bytes: &[u8]) -> Option<PdqSignal> {
    Signals::from_bytes(bytes, &Triage::signal_options()).pdq
}

/// The smallest Hamming distance between `a` and any rotation or mirror image of `b`: what
/// triage compares.
pub fn distance(a: &PdqSignal, b: &PdqSignal) -> u32 {
    let variants = b.dihedral.expect("hashed with the dihedral variants");
    variants.iter().map(|variant| a.hash.hamming_distance(variant)).min().unwrap_or(256)
}

/// `count` distinct pictures: the photos of `photo_dirs` first (those far enough apart), then
/// generated ones from `seed`.
pub fn choose(photo_dirs: &[String], count: usize, seed: u64) -> anyhow::Result<Selection> {
    let mut selection = Selection {
        pictures: Vec::new(),
        photos: 0,
        photos_dropped_near: 0,
        generated_dropped_near: 0,
        dropped_weak: 0,
        min_distance: 256,
    };
    for candidate in photos(photo_dirs)? {
        if selection.pictures.len() == count {
            break;
        }
        match selection.offer(candidate) {
            Offered::Kept => selection.photos += 1,
            Offered::Near => selection.photos_dropped_near += 1,
            Offered::Weak => selection.dropped_weak += 1,
        }
    }
    // Generated in parallel batches, offered in order: the same pictures whatever the cores.
    let batch = 2 * rayon::current_num_threads().max(1) as u64;
    let mut next = 0;
    while selection.pictures.len() < count {
        let candidates: Vec<Picture> = (next..next + batch)
            .into_par_iter()
            .map(|number| generate(seed, number))
            .collect::<anyhow::Result<_>>()?;
        next += batch;
        for candidate in candidates {
            if selection.pictures.len() == count {
                break;
            }
            match selection.offer(candidate) {
                Offered::Kept => {}
                Offered::Near => selection.generated_dropped_near += 1,
                Offered::Weak => selection.dropped_weak += 1,
            }
        }
    }
    Ok(selection)
}

enum Offered {
    Kept,
    Near,
    Weak,
}

impl Selection {
    fn offer(&mut self, candidate: Picture) -> Offered {
        if candidate.pdq.quality < MIN_QUALITY {
            return Offered::Weak;
        }
        let nearest = self.pictures.iter().map(|kept| distance(&candidate.pdq, &kept.pdq)).min();
        if nearest.is_some_and(|nearest| nearest <= MIN_DISTANCE) {
            return Offered::Near;
        }
        self.min_distance = self.min_distance.min(nearest.unwrap_or(256));
        self.pictures.push(candidate);
        Offered::Kept
    }
}

/// The real photos in `dirs`, by name; the synthetic test patterns (`syn-*`: flat colours,
/// gradients, a checkerboard, a 4000×3000 smooth field) are not pictures anyone reports.
fn photos(dirs: &[String]) -> anyhow::Result<Vec<Picture>> {
    let mut pictures = Vec::new();
    for dir in dirs {
        let mut paths: Vec<_> = std::fs::read_dir(dir)
            .with_context(|| format!("reading {dir}"))?
            .map(|entry| entry.map(|entry| entry.path()))
            .collect::<Result<_, _>>()?;
        paths.sort();
        for path in paths {
            let name = path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
            let is_image =
                [".png", ".jpg", ".jpeg"].iter().any(|ext| name.to_ascii_lowercase().ends_with(ext));
            if !is_image || name.starts_with("syn-") {
                continue;
            }
            let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
            // A photo the image crate cannot decode cannot be edited either.
            if image::load_from_memory(&bytes).is_err() {
                continue;
            }
            if let Some(pdq) = pdq_of(&bytes) {
                pictures.push(Picture { name: format!("photo {}", short(&path)), bytes, pdq });
            }
        }
    }
    Ok(pictures)
}

fn short(path: &Path) -> String {
    path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default()
}

/// Generated picture `number`: a smooth random colour field (value noise in a few octaves) with
/// random discs, rectangles and lines over it, 320–800 px wide. Structure at every scale gives
/// PDQ's 16×16 DCT something to hold on to; independent draws give unrelated hashes.
fn generate(seed: u64, number: u64) -> anyhow::Result<Picture> {
    let mut rng = Rng::fork(seed, number);
    let width = rng.between(320, 800);
    let aspect = 0.6 + 0.8 * rng.unit();
    let height = ((width as f32 * aspect) as u32).clamp(240, 800);
    let channels: Vec<Vec<f32>> = (0..3).map(|_| value_noise(&mut rng, width, height)).collect();
    let mut image = RgbImage::from_fn(width, height, |x, y| {
        let at = (y * width + x) as usize;
        Rgb([0, 1, 2].map(|channel| (channels[channel][at] * 255.0) as u8))
    });
    for _ in 0..rng.between(6, 18) {
        draw_shape(&mut rng, &mut image);
    }
    // Mostly JPEG at a photo site's quality, some PNG, like the uploads a hotline sees.
    let bytes = if rng.chance(0.2) { png(&image)? } else { jpeg(&image, rng.between(85, 95) as u8)? };
    let pdq = pdq_of(&bytes).context("a generated picture decodes")?;
    Ok(Picture { name: format!("generated {number}"), bytes, pdq })
}

/// A field of values in `[0, 1]`: random values on a grid, smoothly interpolated, summed over
/// four octaves (each a finer grid at half the weight).
fn value_noise(rng: &mut Rng, width: u32, height: u32) -> Vec<f32> {
    let mut field = vec![0.0f32; (width * height) as usize];
    let mut cell = width.max(height) as f32 / rng.between(2, 4) as f32;
    let mut weight = 1.0;
    for _ in 0..4 {
        let columns = (width as f32 / cell) as usize + 2;
        let rows = (height as f32 / cell) as usize + 2;
        let grid: Vec<f32> = (0..columns * rows).map(|_| rng.unit()).collect();
        for y in 0..height {
            let gy = y as f32 / cell;
            let (row, fy) = (gy as usize, smooth(gy.fract()));
            for x in 0..width {
                let gx = x as f32 / cell;
                let (column, fx) = (gx as usize, smooth(gx.fract()));
                let at = |c: usize, r: usize| grid[r * columns + c];
                let top = at(column, row) + (at(column + 1, row) - at(column, row)) * fx;
                let bottom = at(column, row + 1) + (at(column + 1, row + 1) - at(column, row + 1)) * fx;
                field[(y * width + x) as usize] += weight * (top + (bottom - top) * fy);
            }
        }
        cell /= 2.0;
        weight /= 2.0;
    }
    let (low, high) = field.iter().fold((f32::MAX, f32::MIN), |(low, high), &v| (low.min(v), high.max(v)));
    let span = (high - low).max(f32::EPSILON);
    field.iter_mut().for_each(|value| *value = (*value - low) / span);
    field
}

fn smooth(t: f32) -> f32 {
    t * t * (3.0 - 2.0 * t)
}

/// A disc, a rectangle or a thick line in a random colour, partly transparent.
fn draw_shape(rng: &mut Rng, image: &mut RgbImage) {
    let (width, height) = image.dimensions();
    let size = width.min(height);
    let colour = [0, 1, 2].map(|_| rng.below(256) as f32);
    let opacity = 0.6 + 0.4 * rng.unit();
    let (cx, cy) = (rng.below(width as usize) as f32, rng.below(height as usize) as f32);
    let inside: Box<dyn Fn(f32, f32) -> bool> = match rng.below(3) {
        0 => {
            let radius = size as f32 * (0.03 + 0.17 * rng.unit());
            Box::new(move |x, y| (x - cx).powi(2) + (y - cy).powi(2) <= radius * radius)
        }
        1 => {
            let (half_w, half_h) =
                (width as f32 * (0.03 + 0.2 * rng.unit()), height as f32 * (0.03 + 0.2 * rng.unit()));
            Box::new(move |x, y| (x - cx).abs() <= half_w && (y - cy).abs() <= half_h)
        }
        _ => {
            let angle = std::f32::consts::PI * rng.unit();
            let (dx, dy) = (angle.cos(), angle.sin());
            let half_length = size as f32 * (0.1 + 0.4 * rng.unit());
            let half_thickness = 1.0 + 4.0 * rng.unit();
            Box::new(move |x, y| {
                let (rx, ry) = (x - cx, y - cy);
                (rx * dx + ry * dy).abs() <= half_length && (ry * dx - rx * dy).abs() <= half_thickness
            })
        }
    };
    for (x, y, pixel) in image.enumerate_pixels_mut() {
        if inside(x as f32, y as f32) {
            for (channel, &paint) in pixel.0.iter_mut().zip(&colour) {
                *channel = (*channel as f32 * (1.0 - opacity) + paint * opacity) as u8;
            }
        }
    }
}

pub fn jpeg(image: &RgbImage, quality: u8) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, quality).encode_image(image)?;
    Ok(out)
}

fn png(image: &RgbImage) -> anyhow::Result<Vec<u8>> {
    let mut out = Cursor::new(Vec::new());
    image.write_to(&mut out, ImageFormat::Png)?;
    Ok(out.into_inner())
}
