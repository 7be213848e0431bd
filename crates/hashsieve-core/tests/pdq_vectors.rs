//! PDQ against Meta's reference outputs in `../shared/vectors/pdq` (see its README): every PNG
//! exactly — hash, quality and all eight dihedral hashes — and the original JPEGs within the
//! tolerance that decoder differences allow.

use std::path::{Path, PathBuf};

use hashsieve_core::pdq::{self, Dihedral, PdqHash};

fn vectors() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/vectors/pdq");
    assert!(dir.is_dir(), "the shared reference vectors are missing: {}", dir.display());
    dir
}

/// Rows of a vector CSV as (file name, other cells in header order).
fn rows(csv: &str) -> Vec<(String, Vec<String>)> {
    let text = std::fs::read_to_string(vectors().join(csv)).unwrap();
    text.lines()
        .skip(1)
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
    hex.parse().unwrap()
}

#[test]
fn every_png_vector_matches_the_reference_exactly() {
    let rows = rows("expected.csv");
    assert_eq!(rows.len(), 31);
    let mut hasher = pdq::PdqHasher::new();
    for (file, cells) in &rows {
        let (rgb, w, h) = rgb8(&vectors().join("images").join(file));
        let single = hasher.hash_rgb(&rgb, w, h);
        assert_eq!(single.hash, hash(&cells[0]), "{file}: hash");
        assert_eq!(single.quality.to_string(), cells[1], "{file}: quality");
        let all = hasher.dihedral_rgb(&rgb, w, h);
        assert_eq!(all.quality, single.quality, "{file}: dihedral quality");
        assert_eq!(all.hashes[Dihedral::Original as usize], single.hash, "{file}: original");
        for (variant, expected) in Dihedral::ALL[1..].iter().zip(&cells[2..]) {
            assert_eq!(all.hashes[*variant as usize], hash(expected), "{file}: {}", variant.name());
        }
    }
}

#[test]
fn jpeg_vectors_are_within_the_decoder_tolerance() {
    let rows = rows("expected-jpeg.csv");
    assert_eq!(rows.len(), 8);
    for (file, cells) in &rows {
        let (rgb, w, h) = rgb8(&vectors().join("jpeg").join(file));
        let expected = hash(&cells[0]);
        let out = pdq::hash_rgb(&rgb, w, h);
        let distance = out.hash.hamming_distance(&expected);
        assert!(distance <= 10, "{file}: {distance} bits from the reference");
        let quality: i32 = cells[1].parse().unwrap();
        assert!((out.quality as i32 - quality).abs() <= 1, "{file}: quality {} vs {quality}", out.quality);
    }
}
