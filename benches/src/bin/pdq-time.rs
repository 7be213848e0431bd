//! Times hashsieve's PDQ on real files, single-threaded, for the side-by-side comparison in
//! `benches/compare/pdq.sh`: criterion answers "did it get slower", this answers "how does it
//! compare with the other implementations on the same pixels", so it reports plain medians and
//! the hash itself (to check that every side hashed the same thing).
//!
//! ```text
//! pdq-time [--repeats N] [--dihedral] [--raw WIDTHxHEIGHT] FILE...
//! ```
//!
//! Each FILE is an image (any format the `image` crate decodes) or, with `--raw`, bare RGB8
//! bytes of the given size. Prints one tab-separated line per file:
//! `file width height hash_ms decode_hash_ms hash quality`, where the times are medians over N
//! repeats (`decode_hash_ms` is `-` for raw input, which has nothing to decode).

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use hashsieve_core::pdq::{PdqHash, PdqHasher};

struct Options {
    repeats: usize,
    dihedral: bool,
    raw: Option<(usize, usize)>,
    files: Vec<String>,
}

fn parse_args() -> Result<Options, String> {
    let mut options = Options { repeats: 21, dihedral: false, raw: None, files: Vec::new() };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--repeats" => {
                let n = args.next().ok_or("--repeats needs a number")?;
                options.repeats = n.parse().map_err(|_| format!("bad --repeats {n}"))?;
                if options.repeats == 0 {
                    return Err("--repeats must be at least 1".into());
                }
            }
            "--dihedral" => options.dihedral = true,
            "--raw" => {
                let size = args.next().ok_or("--raw needs WIDTHxHEIGHT")?;
                let (w, h) = size.split_once('x').ok_or_else(|| format!("bad --raw {size}"))?;
                let w = w.parse().map_err(|_| format!("bad width in {size}"))?;
                let h = h.parse().map_err(|_| format!("bad height in {size}"))?;
                options.raw = Some((w, h));
            }
            "-h" | "--help" => {
                return Err("usage: pdq-time [--repeats N] [--dihedral] [--raw WIDTHxHEIGHT] FILE...".into());
            }
            _ => options.files.push(arg),
        }
    }
    if options.files.is_empty() {
        return Err("no input files (see --help)".into());
    }
    Ok(options)
}

fn median_ms(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    let n = samples.len();
    if n % 2 == 1 { samples[n / 2] } else { (samples[n / 2 - 1] + samples[n / 2]) / 2.0 }
}

fn decode(bytes: &[u8]) -> Result<(Vec<u8>, usize, usize), String> {
    let image = image::load_from_memory(bytes).map_err(|e| e.to_string())?.to_rgb8();
    let (w, h) = (image.width() as usize, image.height() as usize);
    Ok((image.into_raw(), w, h))
}

/// Hashes once and returns (hash, quality), through the dihedral path when asked.
fn hash(hasher: &mut PdqHasher, rgb: &[u8], w: usize, h: usize, dihedral: bool) -> (PdqHash, u8) {
    if dihedral {
        let out = hasher.dihedral_rgb(rgb, w, h);
        (out.hashes[0], out.quality)
    } else {
        let out = hasher.hash_rgb(rgb, w, h);
        (out.hash, out.quality)
    }
}

fn time_file(path: &str, options: &Options, hasher: &mut PdqHasher) -> Result<String, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
    let (rgb, w, h) = match options.raw {
        Some((w, h)) => {
            let expected = w.checked_mul(h).and_then(|n| n.checked_mul(3));
            if expected != Some(bytes.len()) {
                return Err(format!("{path}: {} bytes is not {w}x{h} RGB8", bytes.len()));
            }
            (bytes.clone(), w, h)
        }
        None => decode(&bytes).map_err(|e| format!("{path}: {e}"))?,
    };
    // One untimed run warms the caches and the hasher's buffers.
    let (digest, quality) = hash(hasher, &rgb, w, h, options.dihedral);
    let hash_ms = median_ms(
        (0..options.repeats)
            .map(|_| {
                let start = Instant::now();
                std::hint::black_box(hash(hasher, std::hint::black_box(&rgb), w, h, options.dihedral));
                start.elapsed().as_secs_f64() * 1e3
            })
            .collect(),
    );
    let decode_hash_ms = if options.raw.is_some() {
        "-".to_string()
    } else {
        let ms = median_ms(
            (0..options.repeats)
                .map(|_| {
                    let start = Instant::now();
                    let (rgb, w, h) = decode(std::hint::black_box(&bytes)).expect("decoded before");
                    std::hint::black_box(hash(hasher, &rgb, w, h, options.dihedral));
                    start.elapsed().as_secs_f64() * 1e3
                })
                .collect(),
        );
        format!("{ms:.4}")
    };
    let name = Path::new(path).file_name().map_or(path.into(), |n| n.to_string_lossy());
    Ok(format!("{name}\t{w}\t{h}\t{hash_ms:.4}\t{decode_hash_ms}\t{digest}\t{quality}"))
}

fn main() -> ExitCode {
    let options = match parse_args() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("pdq-time: {message}");
            return ExitCode::from(2);
        }
    };
    let mut hasher = PdqHasher::new();
    let mut status = ExitCode::SUCCESS;
    for path in &options.files {
        match time_file(path, &options, &mut hasher) {
            Ok(line) => println!("{line}"),
            Err(message) => {
                eprintln!("pdq-time: {message}");
                status = ExitCode::FAILURE;
            }
        }
    }
    status
}
