//! PDQ against Meta's reference outputs in `tests/vectors/pdq` (see its README): every PNG
//! exactly — hash, quality and all eight dihedral hashes, through the CPU-specific and the
//! portable code — and the original JPEGs within the tolerance that decoder differences allow.

use std::path::{Path, PathBuf};

use hashsieve_core::pdq::{self, Dihedral, ParseHashError, PdqHash, PdqHasher};

fn vectors() -> PathBuf {
    let dir = hashsieve_testkit::vectors().join("pdq");
    assert!(dir.is_dir(), "the PDQ reference vectors are missing: {}", dir.display());
    dir
}

/// Rows of a vector CSV as (file name, other cells in header order).
fn rows(csv: &str) -> Vec<(String, Vec<String>)> {
    let path = vectors().join(csv);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .skip(1)
        .filter(|line| !line.is_empty())
        .map(|line| {
            let mut cells = line.split(',').map(str::to_string);
            (cells.next().unwrap(), cells.collect())
        })
        .collect()
}

fn rgb8(path: &Path) -> (Vec<u8>, usize, usize) {
    let image = image::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).to_rgb8();
    let (w, h) = (image.width() as usize, image.height() as usize);
    (image.into_raw(), w, h)
}

fn hash(hex: &str) -> PdqHash {
    hex.parse().unwrap_or_else(|e| panic!("{hex}: {e}"))
}

/// The reference's float luma of RGB8 pixels.
fn luma(rgb: &[u8]) -> Vec<f32> {
    rgb.chunks_exact(3)
        .map(|p| 0.299f32 * p[0] as f32 + 0.587f32 * p[1] as f32 + 0.114f32 * p[2] as f32)
        .collect()
}

#[test]
fn every_png_vector_matches_the_reference_exactly() {
    let rows = rows("expected.csv");
    assert_eq!(rows.len(), 31);
    let mut fast = PdqHasher::new();
    let mut portable = PdqHasher::portable();
    for (file, cells) in &rows {
        assert_eq!(cells.len(), 9, "{file}: columns");
        let (rgb, w, h) = rgb8(&vectors().join("images").join(file));
        let expected_quality: u8 = cells[1].parse().unwrap();
        let expected: Vec<PdqHash> =
            [&cells[0]].into_iter().chain(&cells[2..]).map(|hex| hash(hex)).collect();
        for (path, hasher) in [("simd", &mut fast), ("portable", &mut portable)] {
            let single = hasher.hash_rgb(&rgb, w, h);
            assert_eq!(single.hash, expected[0], "{file} ({path}): hash");
            assert_eq!(single.quality, expected_quality, "{file} ({path}): quality");
            let all = hasher.dihedral_rgb(&rgb, w, h);
            assert_eq!(all.quality, expected_quality, "{file} ({path}): dihedral quality");
            for variant in Dihedral::ALL {
                assert_eq!(
                    all.hashes[variant as usize],
                    expected[variant as usize],
                    "{file} ({path}): {}",
                    variant.name()
                );
            }
            // The float-luma entry point, fed the reference's luma, is the same function.
            let luma = luma(&rgb);
            assert_eq!(hasher.hash_luma(&luma, w, h), single, "{file} ({path}): luma input");
            assert_eq!(hasher.dihedral_luma(&luma, w, h), all, "{file} ({path}): luma dihedral");
        }
    }
}

#[test]
fn the_free_functions_agree_with_each_other_on_every_vector() {
    for (file, _) in rows("expected.csv") {
        let (rgb, w, h) = rgb8(&vectors().join("images").join(&file));
        let single = pdq::hash_rgb(&rgb, w, h);
        let all = pdq::dihedral_rgb(&rgb, w, h);
        assert_eq!(all.hashes[Dihedral::Original as usize], single.hash, "{file}");
        assert_eq!(all.quality, single.quality, "{file}");
    }
}

#[test]
fn jpeg_vectors_are_within_the_decoder_tolerance() {
    let jpeg_rows = rows("expected-jpeg.csv");
    assert_eq!(jpeg_rows.len(), 8);
    let png_rows = rows("expected.csv");
    for (file, cells) in &jpeg_rows {
        let (rgb, w, h) = rgb8(&vectors().join("jpeg").join(file));
        let all = pdq::dihedral_rgb(&rgb, w, h);
        let out = pdq::hash_rgb(&rgb, w, h);
        let distance = out.hash.hamming_distance(&hash(&cells[0]));
        assert!(distance <= 10, "{file}: {distance} bits from the reference");
        let quality: i32 = cells[1].parse().unwrap();
        assert!((out.quality as i32 - quality).abs() <= 1, "{file}: quality {} vs {quality}", out.quality);
        // expected-jpeg.csv has only the hash; the README says the JPEGs hash exactly like the
        // PNG rows of the same pictures, which carry the dihedral columns.
        let Some(png) = png_rows.iter().find(|(_, cells_png)| cells_png[0] == cells[0]) else {
            panic!("{file}: no PNG row with the same reference hash");
        };
        for (variant, expected) in Dihedral::ALL[1..].iter().zip(&png.1[2..]) {
            let distance = all.hashes[*variant as usize].hamming_distance(&hash(expected));
            assert!(distance <= 10, "{file}: {} is {distance} bits from the reference", variant.name());
        }
    }
}

#[test]
fn hex_round_trips_on_every_reference_hash() {
    for (file, cells) in rows("expected.csv") {
        for hex in [&cells[0]].into_iter().chain(&cells[2..]) {
            let parsed = hash(hex);
            assert_eq!(parsed.to_hex(), *hex, "{file}");
            assert_eq!(parsed.to_string(), *hex, "{file}");
            assert_eq!(format!("{parsed:?}"), format!("PdqHash({hex})"), "{file}");
            assert_eq!(PdqHash::from_hex(&hex.to_uppercase()), Ok(parsed), "{file}");
        }
    }
    let hash = hash("8000000000000000000000000000000000000000000000000000000000000001");
    assert_eq!(hash.0[0], 0x80, "byte 0 is the first two hex digits");
    assert_eq!(hash.0[31], 0x01);
}

#[test]
fn bad_hex_is_refused() {
    let good = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22";
    assert!(PdqHash::from_hex(good).is_ok());
    assert_eq!(PdqHash::from_hex(""), Err(ParseHashError::Length(0)));
    assert_eq!(PdqHash::from_hex(&good[2..]), Err(ParseHashError::Length(62)));
    assert_eq!(PdqHash::from_hex(&format!("{good}00")), Err(ParseHashError::Length(66)));
    assert_eq!(PdqHash::from_hex(&format!("{}z", &good[1..])), Err(ParseHashError::NotHex));
    assert_eq!(PdqHash::from_hex(&format!(" {}", &good[1..])), Err(ParseHashError::NotHex));
    assert!(format!("{}x", &good[..63]).parse::<PdqHash>().is_err());
    // 64 bytes but not 64 characters: refused, whatever the error.
    assert!(PdqHash::from_hex(&format!("é{}", &good[2..])).is_err());
}

#[test]
fn hamming_distance_equals_a_bit_by_bit_count() {
    let hashes: Vec<PdqHash> = rows("expected.csv")
        .iter()
        .flat_map(|(_, cells)| {
            [&cells[0]].into_iter().chain(&cells[2..]).map(|hex| hash(hex)).collect::<Vec<_>>()
        })
        .collect();
    let bit = |h: &PdqHash, k: usize| (h.0[k / 8] >> (k % 8)) & 1;
    for a in hashes.iter().step_by(3) {
        for b in hashes.iter().step_by(5) {
            let naive = (0..256).filter(|&k| bit(a, k) != bit(b, k)).count() as u32;
            assert_eq!(a.hamming_distance(b), naive);
            assert_eq!(b.hamming_distance(a), naive);
        }
        assert_eq!(a.hamming_distance(a), 0);
    }
}
