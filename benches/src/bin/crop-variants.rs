//! A measurement, not a feature: do PDQ hashes of centred crops ("zoom variants") of every
//! stored picture and of every query bring cropped copies within the near-duplicate threshold
//! (31 of 256 bits), without bringing distinct pictures within it?
//!
//! A symmetric crop (c% off each edge) is a centred zoom, so a stored hash of the original's
//! centred crop at scale 1 − 2c/100 should be close to the cropped copy's plain hash. An
//! asymmetric crop (each edge 1–5% independently) is a zoom with a different scale per axis
//! plus a shift of the centre, which centred variants do not model.
//!
//! Pictures: the real photos in `--photos` directories (not `syn-*`) and generated ones
//! (hotline-sim's seeded value-noise + shapes pictures), chosen by hotline-sim's `choose`: every
//! kept picture is more than 64 bits of PDQ (any rotation or mirror image) from every other, and
//! of PDQ quality ≥ 50. For each picture: symmetric crops c = 1..=10% each edge, and 20 seeded
//! asymmetric crops (each edge 1–5%), each saved as JPEG q90 and decoded again.
//!
//! Variant sets (a scale s is the centred crop keeping s of the width and of the height):
//! plain {1}; S1 = {1, .96, .92, .88, .84, .80}; S2 = {1, .98, …, .80}; each "both" (query and
//! stored item have the variants, any pair compared) or "stored" (only the stored item has them,
//! the query is hashed once). Beyond the centred sets, to see what the shift of an asymmetric
//! crop costs: E17 and E82, stored-only grids of per-edge crops (the plain image and every crop
//! with each edge cut by one of {1.5, 3.5}% or {0.5, 2.5, 4.5}%, independently; these grids are
//! fitted to the 1–5% crops measured, so they are an upper bound, not a design). The distance
//! of a query to a stored item is the minimum over the compared pairs.
//!
//! Printed: per crop type, the share within 31 and the median distance, for each set (for the
//! stored-only sets also with the roles swapped: the crop stored first, the original queried);
//! for distinct pictures, the pairs within 31, 40, 50 (originals against originals, and every
//! crop against every other picture's original); and the hashing time of each set relative to
//! one plain PDQ (median over the pictures, decode excluded and included).
//!
//! ```text
//! crop-variants [--seed N] [--pictures N] [--photos DIR]...
//! ```

#[allow(dead_code)]
#[path = "hotline-sim/edits.rs"]
mod edits;
#[allow(dead_code)]
#[path = "hotline-sim/pictures.rs"]
mod pictures;
#[allow(dead_code)]
#[path = "hotline-sim/rng.rs"]
mod rng;

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hashsieve_core::pdq::{PdqHash, PdqHasher};
use image::RgbImage;
use rayon::prelude::*;

use crate::edits::{Edit, Step};
use crate::rng::Rng;

/// The near-duplicate threshold.
const THRESHOLD: u32 = 31;

/// A crop, as the fraction of the width or height cut off each edge.
#[derive(Clone, Copy)]
struct Rect {
    left: f64,
    top: f64,
    right: f64,
    bottom: f64,
}

impl Rect {
    /// The centred crop keeping `scale` of the width and of the height.
    fn centred(scale: f64) -> Rect {
        let edge = (1.0 - scale) / 2.0;
        Rect { left: edge, top: edge, right: edge, bottom: edge }
    }
}

/// Centred crops at these scales.
fn scales(scales: &[f64]) -> Vec<Rect> {
    scales.iter().map(|&scale| Rect::centred(scale)).collect()
}

/// The plain image and every crop with each edge cut by one of `percents` (independently).
fn edge_grid(percents: &[f64]) -> Vec<Rect> {
    let mut rects = vec![Rect::centred(1.0)];
    for &left in percents {
        for &top in percents {
            for &right in percents {
                for &bottom in percents {
                    rects.push(Rect {
                        left: left / 100.0,
                        top: top / 100.0,
                        right: right / 100.0,
                        bottom: bottom / 100.0,
                    });
                }
            }
        }
    }
    rects
}

/// Which variants the query and the stored item each have.
struct Set {
    name: &'static str,
    query: Vec<Rect>,
    stored: Vec<Rect>,
    /// Whether to measure a one-sided set with the roles swapped too (the crop stored first).
    swapped: bool,
}

impl Set {
    fn one_sided(&self) -> bool {
        self.query.len() != self.stored.len()
    }
}

const S1: [f64; 6] = [1.0, 0.96, 0.92, 0.88, 0.84, 0.80];
const S2: [f64; 11] = [1.0, 0.98, 0.96, 0.94, 0.92, 0.90, 0.88, 0.86, 0.84, 0.82, 0.80];

/// The sets measured: the brief's centred-crop sets, and (beyond the brief, to see what the
/// shift of an asymmetric crop costs) two stored-only grids of per-edge crops.
fn sets() -> Vec<Set> {
    let plain = scales(&[1.0]);
    vec![
        Set { name: "plain", query: plain.clone(), stored: plain.clone(), swapped: false },
        Set { name: "S1 both", query: scales(&S1), stored: scales(&S1), swapped: false },
        Set { name: "S2 both", query: scales(&S2), stored: scales(&S2), swapped: false },
        Set { name: "S1 stored", query: plain.clone(), stored: scales(&S1), swapped: true },
        Set { name: "S2 stored", query: plain.clone(), stored: scales(&S2), swapped: true },
        Set { name: "E17 stored", query: plain.clone(), stored: edge_grid(&[1.5, 3.5]), swapped: false },
        Set { name: "E82 stored", query: plain, stored: edge_grid(&[0.5, 2.5, 4.5]), swapped: false },
    ]
}

const ASYMMETRIC_PER_PICTURE: usize = 20;
const SYMMETRIC: std::ops::RangeInclusive<u32> = 1..=10;

/// The hashes of `image`'s crops `rects`.
fn hashes(hasher: &mut PdqHasher, image: &RgbImage, rects: &[Rect]) -> Vec<PdqHash> {
    rects.iter().map(|rect| hash_rect(hasher, image, rect)).collect()
}

fn hash_rect(hasher: &mut PdqHasher, image: &RgbImage, rect: &Rect) -> PdqHash {
    let (width, height) = image.dimensions();
    let cut = |side: u32, fraction: f64| (side as f64 * fraction).round() as u32;
    let (x, y) = (cut(width, rect.left), cut(height, rect.top));
    let kept_width = width.saturating_sub(x + cut(width, rect.right)).max(1);
    let kept_height = height.saturating_sub(y + cut(height, rect.bottom)).max(1);
    if (kept_width, kept_height) == (width, height) {
        return hasher.hash_rgb(image.as_raw(), width as usize, height as usize).hash;
    }
    // Row slices, not `imageops::crop_imm(..).to_image()`, which copies pixel by pixel and
    // would be counted as hashing cost.
    let (row, start, kept_row) = (width as usize * 3, x as usize * 3, kept_width as usize * 3);
    let mut crop = Vec::with_capacity(kept_row * kept_height as usize);
    for line in image.as_raw().chunks_exact(row).skip(y as usize).take(kept_height as usize) {
        crop.extend_from_slice(&line[start..start + kept_row]);
    }
    hasher.hash_rgb(&crop, kept_width as usize, kept_height as usize).hash
}

/// The smallest distance between any of `query` and any of `stored`.
fn distance(query: &[PdqHash], stored: &[PdqHash]) -> u32 {
    let mut best = 256;
    for q in query {
        for s in stored {
            best = best.min(q.hamming_distance(s));
        }
    }
    best
}

/// One image's hashes for each set: the query side, and the stored side.
struct Hashed {
    query: Vec<Vec<PdqHash>>,
    stored: Vec<Vec<PdqHash>>,
}

/// `image` hashed for every set; a one-sided set's stored side only where `stored` or the set
/// is measured with the roles swapped. A set with the same variants on both sides shares them.
fn hash_all(hasher: &mut PdqHasher, sets: &[Set], image: &RgbImage, stored: bool) -> Hashed {
    let mut out = Hashed { query: Vec::new(), stored: Vec::new() };
    for set in sets {
        let query = hashes(hasher, image, &set.query);
        let stored_side = if !set.one_sided() {
            query.clone()
        } else if stored || set.swapped {
            hashes(hasher, image, &set.stored)
        } else {
            Vec::new()
        };
        out.query.push(query);
        out.stored.push(stored_side);
    }
    out
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum CropKind {
    Symmetric(u32),
    Asymmetric,
}

struct Crop {
    picture: usize,
    kind: CropKind,
    hashes: Hashed,
}

struct Options {
    seed: u64,
    pictures: usize,
    photos: Vec<String>,
}

fn parse_args() -> anyhow::Result<Options> {
    const USAGE: &str = "usage: crop-variants [--seed N] [--pictures N] [--photos DIR]...";
    let mut options = Options { seed: 1, pictures: 90, photos: Vec::new() };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value\n{USAGE}"));
        match arg.as_str() {
            "--seed" => options.seed = value()?.parse()?,
            "--pictures" => options.pictures = value()?.parse()?,
            "--photos" => options.photos.push(value()?),
            _ => bail!("unknown argument {arg}\n{USAGE}"),
        }
    }
    if options.photos.is_empty() {
        options.photos.push("samples/images".into());
    }
    Ok(options)
}

fn main() -> anyhow::Result<()> {
    let options = parse_args()?;
    let started = Instant::now();
    let selection = pictures::choose(&options.photos, options.pictures, options.seed)?;
    let pictures = &selection.pictures;
    let photo_count = selection.photos;
    println!(
        "pictures: {} ({} real photos: {}; {} generated); dropped as near another: {} photos, {} generated; \
         dropped as weak (quality < 50): {}",
        pictures.len(),
        photo_count,
        pictures[..photo_count]
            .iter()
            .map(|p| p.name.trim_start_matches("photo "))
            .collect::<Vec<_>>()
            .join(", "),
        pictures.len() - photo_count,
        selection.photos_dropped_near,
        selection.generated_dropped_near,
        selection.dropped_weak,
    );

    let decoded: Vec<RgbImage> = pictures
        .iter()
        .map(|p| image::load_from_memory(&p.bytes).map(|image| image.to_rgb8()))
        .collect::<Result<_, _>>()?;

    let sets = sets();
    // Cost first, one picture at a time (the best of 3 of each, to damp other load).
    let costs = measure_costs(&sets, pictures, &decoded);

    let originals: Vec<Hashed> = decoded
        .par_iter()
        .map_init(PdqHasher::new, |hasher, image| hash_all(hasher, &sets, image, true))
        .collect();
    let differing =
        pictures.iter().zip(&originals).filter(|(p, hashed)| p.pdq.hash != hashed.query[0][0]).count();
    println!("plain hash here differs from core's Signals::from_bytes hash on {differing} pictures");

    // The crops, each through JPEG q90 and decoded again.
    let crops: Vec<Crop> = (0..pictures.len())
        .into_par_iter()
        .map_init(PdqHasher::new, |hasher, picture| -> anyhow::Result<Vec<Crop>> {
            let mut rng = Rng::fork(options.seed ^ 0xC809, picture as u64);
            let mut edits: Vec<(CropKind, Step)> = SYMMETRIC
                .map(|c| (CropKind::Symmetric(c), Step::Crop { left: c, top: c, right: c, bottom: c }))
                .collect();
            for _ in 0..ASYMMETRIC_PER_PICTURE {
                let step = Step::Crop {
                    left: rng.between(1, 5),
                    top: rng.between(1, 5),
                    right: rng.between(1, 5),
                    bottom: rng.between(1, 5),
                };
                edits.push((CropKind::Asymmetric, step));
            }
            edits
                .into_iter()
                .map(|(kind, step)| {
                    let bytes = Edit { steps: vec![step], quality: 90 }.apply(&pictures[picture].bytes)?;
                    let image = image::load_from_memory(&bytes)?.to_rgb8();
                    Ok(Crop { picture, kind, hashes: hash_all(hasher, &sets, &image, false) })
                })
                .collect()
        })
        .collect::<anyhow::Result<Vec<Vec<Crop>>>>()?
        .into_iter()
        .flatten()
        .collect();

    let names: Vec<String> = pictures
        .iter()
        .zip(&decoded)
        .map(|(p, image)| {
            let name = p.name.trim_start_matches("photo ");
            format!("{}, {}x{}", &name[..name.len().min(12)], image.width(), image.height())
        })
        .collect();
    print_crops(&sets, &crops, &originals, photo_count, &names);
    print_false_near(&sets, &crops, &originals, pictures, photo_count);
    print_costs(&sets, &costs);
    println!("\nrun time {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// Per picture: decode, one plain PDQ, and each set's query-side and stored-side hashing.
struct Cost {
    decode: Duration,
    plain: Duration,
    query: Vec<Duration>,
    stored: Vec<Duration>,
}

fn measure_costs(sets: &[Set], pictures: &[pictures::Picture], decoded: &[RgbImage]) -> Vec<Cost> {
    let mut hasher = PdqHasher::new();
    let best = |f: &mut dyn FnMut()| (0..3).map(|_| timed(&mut *f)).min().unwrap();
    let mut time_rects = |image: &RgbImage, rects: &[Rect]| {
        best(&mut || {
            std::hint::black_box(hashes(&mut hasher, image, rects));
        })
    };
    pictures
        .iter()
        .zip(decoded)
        .map(|(picture, image)| Cost {
            decode: best(&mut || {
                std::hint::black_box(image::load_from_memory(&picture.bytes).unwrap().to_rgb8());
            }),
            plain: time_rects(image, &[Rect::centred(1.0)]),
            query: sets.iter().map(|set| time_rects(image, &set.query)).collect(),
            stored: sets.iter().map(|set| time_rects(image, &set.stored)).collect(),
        })
        .collect()
}

fn timed(f: &mut dyn FnMut()) -> Duration {
    let start = Instant::now();
    f();
    start.elapsed()
}

fn median<T: PartialOrd + Copy>(mut values: Vec<T>) -> T {
    values.sort_by(|a, b| a.partial_cmp(b).unwrap());
    values[values.len() / 2]
}

fn print_crops(sets: &[Set], crops: &[Crop], originals: &[Hashed], photo_count: usize, names: &[String]) {
    println!(
        "\nCropped copies (JPEG q90) against their original: share within {THRESHOLD} (median distance) \
         [|x%: the same with the roles swapped, the crop stored first and the original queried]"
    );
    print!("{:<28}", "crop");
    for set in sets {
        print!("{:>16}", set.name);
    }
    println!();
    type Filter = Box<dyn Fn(&Crop) -> bool>;
    let mut rows: Vec<(String, Filter)> = SYMMETRIC
        .map(|c| {
            (
                format!("symmetric {c}%"),
                Box::new(move |crop: &Crop| crop.kind == CropKind::Symmetric(c)) as Filter,
            )
        })
        .collect();
    rows.push((
        "symmetric 1-5%".into(),
        Box::new(|crop: &Crop| matches!(crop.kind, CropKind::Symmetric(c) if c <= 5)),
    ));
    rows.push((
        "symmetric 1-5% (photos)".into(),
        Box::new(move |crop: &Crop| {
            matches!(crop.kind, CropKind::Symmetric(c) if c <= 5) && crop.picture < photo_count
        }),
    ));
    rows.push(("asym 1-5% (all)".into(), Box::new(|crop: &Crop| crop.kind == CropKind::Asymmetric)));
    rows.push((
        "asym 1-5% (photos)".into(),
        Box::new(move |crop: &Crop| crop.kind == CropKind::Asymmetric && crop.picture < photo_count),
    ));
    rows.push((
        "asym 1-5% (generated)".into(),
        Box::new(move |crop: &Crop| crop.kind == CropKind::Asymmetric && crop.picture >= photo_count),
    ));
    for (photo, name) in names.iter().enumerate().take(photo_count) {
        rows.push((
            format!("  asym {name}"),
            Box::new(move |crop: &Crop| crop.kind == CropKind::Asymmetric && crop.picture == photo),
        ));
    }
    for (label, filter) in rows {
        let chosen: Vec<&Crop> = crops.iter().filter(|crop| filter(crop)).collect();
        print!("{label:<28}");
        for (index, set) in sets.iter().enumerate() {
            let forward: Vec<u32> = chosen
                .iter()
                .map(|crop| distance(&crop.hashes.query[index], &originals[crop.picture].stored[index]))
                .collect();
            let mut cell = share_median(&forward);
            if set.one_sided() && set.swapped {
                let swapped: Vec<u32> = chosen
                    .iter()
                    .map(|crop| distance(&originals[crop.picture].query[index], &crop.hashes.stored[index]))
                    .collect();
                cell = format!("{cell}|{:.0}%", within(&swapped, THRESHOLD));
            }
            print!("{cell:>16}");
        }
        println!("  n={}", chosen.len());
    }
}

fn within(distances: &[u32], threshold: u32) -> f64 {
    100.0 * distances.iter().filter(|&&d| d <= threshold).count() as f64 / distances.len() as f64
}

fn share_median(distances: &[u32]) -> String {
    format!("{:.0}% ({})", within(distances, THRESHOLD), median(distances.to_vec()))
}

fn print_false_near(
    sets: &[Set],
    crops: &[Crop],
    originals: &[Hashed],
    pictures: &[pictures::Picture],
    photo_count: usize,
) {
    let pairs = originals.len() * (originals.len() - 1) / 2;
    println!(
        "\nDistinct pictures: {pairs} pairs of originals (distance: the smaller of both roles), and every crop \
         queried against every other picture's original ({} pairs)",
        crops.len() * (originals.len() - 1)
    );
    println!(
        "{:<12}{:>7}{:>7}{:>7}{:>6}{:>8}  {:>10}{:>7}{:>6}   closest real-photo pair",
        "set", "<=31", "<=40", "<=50", "min", "median", "crop<=31", "<=40", "min"
    );
    let name = |index: usize| pictures[index].name.trim_start_matches("photo ").to_string();
    for (index, set) in sets.iter().enumerate() {
        let pair = |a: usize, b: usize| {
            distance(&originals[a].query[index], &originals[b].stored[index])
                .min(distance(&originals[b].query[index], &originals[a].stored[index]))
        };
        let mut distances = Vec::with_capacity(pairs);
        let mut closest_photos = (257, 0, 0);
        for a in 0..originals.len() {
            for b in a + 1..originals.len() {
                let d = pair(a, b);
                distances.push(d);
                if b < photo_count && d < closest_photos.0 {
                    closest_photos = (d, a, b);
                }
            }
        }
        let count = |limit: u32, ds: &[u32]| ds.iter().filter(|&&d| d <= limit).count();
        let crossed: Vec<u32> = crops
            .par_iter()
            .flat_map_iter(|crop| {
                (0..originals.len())
                    .filter(move |&other| other != crop.picture)
                    .map(move |other| distance(&crop.hashes.query[index], &originals[other].stored[index]))
            })
            .collect();
        println!(
            "{:<12}{:>7}{:>7}{:>7}{:>6}{:>8}  {:>10}{:>7}{:>6}   {} {}-{}",
            set.name,
            count(31, &distances),
            count(40, &distances),
            count(50, &distances),
            distances.iter().min().unwrap(),
            median(distances.clone()),
            count(31, &crossed),
            count(40, &crossed),
            crossed.iter().min().unwrap(),
            closest_photos.0,
            name(closest_photos.1),
            name(closest_photos.2),
        );
    }
}

fn print_costs(sets: &[Set], costs: &[Cost]) {
    let ratio = |f: &dyn Fn(&Cost) -> Duration, with_decode: bool| {
        median(
            costs
                .iter()
                .map(|c| {
                    let extra = if with_decode { c.decode.as_secs_f64() } else { 0.0 };
                    (f(c).as_secs_f64() + extra) / (c.plain.as_secs_f64() + extra)
                })
                .collect(),
        )
    };
    println!(
        "\nCost per image (best of 3, one picture at a time; median over pictures of the ratio to one plain PDQ): \
         median plain PDQ {:.2} ms, median decode {:.2} ms",
        median(costs.iter().map(|c| c.plain.as_secs_f64() * 1e3).collect()),
        median(costs.iter().map(|c| c.decode.as_secs_f64() * 1e3).collect()),
    );
    println!(
        "{:<12}{:>8}{:>10}{:>12}{:>10}{:>10}{:>12}{:>12}",
        "set", "query #", "x PDQ", "x (+decode)", "stored #", "x PDQ", "x (+decode)", "pairs/cand."
    );
    for (index, set) in sets.iter().enumerate() {
        println!(
            "{:<12}{:>8}{:>10.2}{:>12.2}{:>10}{:>10.2}{:>12.2}{:>12}",
            set.name,
            set.query.len(),
            ratio(&|c| c.query[index], false),
            ratio(&|c| c.query[index], true),
            set.stored.len(),
            ratio(&|c| c.stored[index], false),
            ratio(&|c| c.stored[index], true),
            set.query.len() * set.stored.len(),
        );
    }
    println!(
        "(query: hashed per report; stored: hashed once per stored item, and the index holds that many hashes; \
         pairs/cand.: hash comparisons per candidate stored item)"
    );
}
