//! Shared by the triage tests: benign sample pictures, edited copies made in memory, signals,
//! and a core matcher over an index directory with an empty "hotline" list.

#![allow(dead_code)] // each test binary uses its own share of these

use std::io::Cursor;
use std::path::{Path, PathBuf};

use hashsieve_core::digest::{DigestSet, digest_bytes};
use hashsieve_core::index::dir::{DirOptions, IndexDir};
use hashsieve_core::index::{IndexBuilder, ListOptions};
use hashsieve_core::matcher::Matcher;
use hashsieve_core::pdq::PdqHash;
use hashsieve_core::signals::{PdqSignal, Signals};
use hashsieve_triage::model::{Disposition, Report};
use hashsieve_triage::{Triage, TriageError, TriageOptions};
use image::codecs::jpeg::JpegEncoder;
use image::imageops::FilterType;
use image::{DynamicImage, ImageFormat};

pub const LIST: &str = "hotline";

/// Benign pictures of different subjects with strong PDQ hashes (the samples, and the
/// PDQ vectors' inputs).
pub const PICTURES: [&str; 7] = [
    "samples/images/q0122.jpg",
    "samples/images/q1050.jpg",
    "samples/images/labelme-q0291.png",
    "samples/images/wee.jpg",
    "tests/vectors/pdq/images/pen-and-coaster.png",
    "tests/vectors/pdq/images/bridge-mods-aaa-orig.png",
    "tests/vectors/pdq/images/misc-c.png",
];

/// A picture whose PDQ hash survives every edit in [`edits`] within distance 31 (see the
/// figures in the inheritance test's output), for the tests of review flows.
pub const ROBUST: &str = "tests/vectors/pdq/images/pen-and-coaster.png";

/// The ThreatExchange bridge picture and copies of it modified by Meta for PDQ's tests.
pub const BRIDGE: &str = "tests/vectors/pdq/images/bridge-mods-aaa-orig.png";
pub const BRIDGE_MODS: [&str; 5] = [
    "tests/vectors/pdq/images/bridge-mods-blur-a-lot.png",
    "tests/vectors/pdq/images/bridge-mods-shrink-a-little.png",
    "tests/vectors/pdq/images/bridge-mods-shrink-a-lot.png",
    "tests/vectors/pdq/images/bridge-mods-square-256x256.png",
    "tests/vectors/pdq/images/dih-bridge-2-rotate-90.png",
];

/// The oracle for near-duplicates: the smallest distance between any of the query's eight
/// dihedral hashes and the stored hash, by the test kit's Hamming distance (not core's).
pub fn pdq_distance(query: &Signals, stored: &Signals) -> u32 {
    let variants = query.pdq.unwrap().dihedral.unwrap().map(|variant| variant.0);
    hashsieve_testkit::nearest(&stored.pdq.unwrap().hash.0, &variants)
}

pub fn workspace() -> PathBuf {
    hashsieve_testkit::workspace()
}

pub fn picture(name: &str) -> Vec<u8> {
    let path = workspace().join(name);
    std::fs::read(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

pub fn signals(bytes: &[u8]) -> Signals {
    let signals = Signals::from_bytes(bytes, &Triage::signal_options());
    assert!(signals.errors.is_empty(), "{:?}", signals.errors);
    signals
}

/// Signals for synthetic content: the digests of `bytes`, and a PDQ hash chosen by the test.
pub fn synthetic(bytes: &[u8], pdq: PdqHash, quality: u8) -> Signals {
    Signals {
        size: bytes.len() as u64,
        digests: digest_bytes(bytes, DigestSet::ALL),
        pdq: Some(PdqSignal { hash: pdq, quality, dihedral: None }),
        ..Signals::default()
    }
}

pub fn flipped(hash: &PdqHash, bits: std::ops::Range<usize>) -> PdqHash {
    let mut out = *hash;
    for bit in bits {
        out.0[bit / 8] ^= 1 << (bit % 8);
    }
    out
}

fn encode(image: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    image.write_to(&mut out, format).unwrap();
    out.into_inner()
}

/// Edited copies as people re-post pictures: each with a name.
pub fn edits(bytes: &[u8]) -> Vec<(&'static str, Vec<u8>)> {
    let image = image::load_from_memory(bytes).unwrap();
    let (w, h) = (image.width(), image.height());
    let mut jpeg = Vec::new();
    JpegEncoder::new_with_quality(&mut jpeg, 40).encode_image(&image.to_rgb8()).unwrap();
    vec![
        ("half size", encode(&image.resize(w / 2, h / 2, FilterType::Triangle), ImageFormat::Png)),
        ("jpeg quality 40", jpeg),
        ("2% cropped", encode(&image.crop_imm(w / 100, h / 100, w - w / 50, h - h / 50), ImageFormat::Png)),
        ("mirrored", encode(&image.fliph(), ImageFormat::Png)),
        ("rotated 90°", encode(&image.rotate90(), ImageFormat::Png)),
        ("brighter", encode(&image.brighten(24), ImageFormat::Png)),
        (
            "5% cropped off two edges",
            encode(&image.crop_imm(w / 20, 0, w - w / 20, h - h / 20), ImageFormat::Png),
        ),
    ]
}

pub fn report(id: &str) -> Report {
    Report {
        id: id.to_string(),
        source: format!("https://example.invalid/{id}"),
        reported_ms: 1_000,
        location: None,
    }
}

/// An index directory with an empty "hotline" list, and a matcher over it.
pub fn matcher(dir: &Path) -> Matcher {
    let index = dir.join("index");
    if !index.exists() {
        let mut builder = IndexBuilder::new();
        builder.add_list(ListOptions::new(LIST)).unwrap();
        IndexDir::create(&index, &builder).unwrap();
    }
    Matcher::open_dir(&index, DirOptions { compact_after: None, ..DirOptions::default() }).unwrap().0
}

/// A matcher over an in-memory index with an empty "hotline" list.
pub fn memory_matcher() -> Matcher {
    let mut builder = IndexBuilder::new();
    builder.add_list(ListOptions::new(LIST)).unwrap();
    Matcher::from_bytes(builder.to_vec()).unwrap()
}

pub fn open(dir: &Path) -> Triage {
    Triage::open(&dir.join("triage.redb"), TriageOptions::default()).unwrap()
}

/// Submits content under a report id made from `id`.
pub fn submit(
    triage: &mut Triage,
    matcher: &Matcher,
    id: &str,
    signals: &Signals,
) -> Result<Disposition, TriageError> {
    triage.submit(&report(id), signals, matcher)
}
