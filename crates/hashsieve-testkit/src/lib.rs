//! What hashsieve's tests and benchmarks share, in one place: seeded randomness, synthetic
//! pictures and their crops, an independent Hamming-distance oracle, free loopback ports, the
//! repository's sample paths, waiting for a condition instead of sleeping a fixed time, test
//! IP databases in the MaxMind DB format ([`mmdb`]), and an [`origin`](origin::Origin) web
//! server that stands for a hosting provider.
//!
//! It depends on no hashsieve crate, so every crate can take it as a dev-dependency (core's
//! own unit tests included) and the oracle it offers is independent of the code under test.
//!
//! ```
//! use hashsieve_testkit::{Rng, hamming, picture};
//!
//! let mut rng = Rng::new(7);
//! let a: [u8; 32] = rng.bytes();
//! let mut b = a;
//! b[0] ^= 0b101;
//! assert_eq!(hamming(&a, &b), 2);
//! assert_eq!(picture(1, 40, 30).len(), 40 * 30 * 3);
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod mmdb;
pub mod origin;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// xorshift64: deterministic pseudo-random numbers from a seed, without a dependency.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator; any seed works (the state is kept off zero, xorshift's fixed point).
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x2545_F491_4F6C_DD1D) | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number in `0..n` (`n` > 0), with the negligible bias of a modulo.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// `N` random bytes.
    pub fn bytes<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        self.fill(&mut out);
        out
    }

    /// Fills `out` with random bytes.
    pub fn fill(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(8) {
            let word = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
    }
}

/// The number of bits in which `a` and `b` differ: the oracle the Hamming searches are
/// checked against, written here so that it shares no code with them.
pub fn hamming(a: &[u8], b: &[u8]) -> u32 {
    assert_eq!(a.len(), b.len(), "hashes of different lengths");
    a.iter().zip(b).map(|(x, y)| (x ^ y).count_ones()).sum()
}

/// The smallest [`hamming`] distance between `hash` and any of `candidates` (the eight
/// rotations and mirror images of a PDQ hash, say).
pub fn nearest(hash: &[u8], candidates: &[impl AsRef<[u8]>]) -> u32 {
    candidates.iter().map(|candidate| hamming(hash, candidate.as_ref())).min().expect("a candidate")
}

/// A benign synthetic RGB8 picture, `width` × `height` (each at least 5), with corners
/// everywhere: value noise on a 16 × 16 grid under 40 seeded rectangles, so that hashes and
/// keypoints have structure at several scales to find.
pub fn picture(seed: u64, width: usize, height: usize) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let grid: Vec<u8> = (0..17 * 17).map(|_| rng.next_u64() as u8).collect();
    let rects: Vec<[usize; 5]> = (0..40)
        .map(|_| {
            let (x, y) = (rng.next_u64() as usize % width, rng.next_u64() as usize % height);
            let w = 8 + rng.next_u64() as usize % (width / 5);
            let h = 8 + rng.next_u64() as usize % (height / 5);
            [x, y, w, h, rng.next_u64() as usize % 256]
        })
        .collect();
    let mut rgb = Vec::with_capacity(width * height * 3);
    for y in 0..height {
        for x in 0..width {
            let (gx, gy) = (x * 16 / width, y * 16 / height);
            let mut v = i32::from(grid[gy * 17 + gx]) / 2 + 40;
            for &[rx, ry, rw, rh, shade] in &rects {
                if (rx..rx + rw).contains(&x) && (ry..ry + rh).contains(&y) {
                    v = shade as i32;
                }
            }
            let v = v.clamp(0, 255) as u8;
            rgb.extend_from_slice(&[v, v.wrapping_add(30), 255 - v]);
        }
    }
    rgb
}

/// `rgb` (`width` pixels wide) mirrored left to right.
pub fn mirror(rgb: &[u8], width: usize) -> Vec<u8> {
    rgb.chunks_exact(width * 3).flat_map(|row| row.chunks_exact(3).rev().flatten().copied()).collect()
}

/// `rgb` (`width` pixels wide) with `[left, top, right, bottom]` pixels cut off its edges:
/// the pixels and the new width and height.
pub fn crop(rgb: &[u8], width: usize, [left, top, right, bottom]: [usize; 4]) -> (Vec<u8>, usize, usize) {
    let height = rgb.len() / 3 / width;
    let (new_width, new_height) = (width - left - right, height - top - bottom);
    let mut out = Vec::with_capacity(new_width * new_height * 3);
    for y in top..height - bottom {
        out.extend_from_slice(&rgb[(y * width + left) * 3..(y * width + width - right) * 3]);
    }
    (out, new_width, new_height)
}

/// A loopback port that was free a moment ago (for a peer that must be told its port).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free loopback port").port()
}

/// Polls `done` every 20 ms until it holds; panics naming `what` after `limit`.
pub fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < limit, "timed out after {limit:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The repository's root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The benign sample images of `samples/images/`.
pub fn samples() -> PathBuf {
    workspace().join("samples/images")
}

/// The reference vectors copied into `tests/vectors/`.
pub fn vectors() -> PathBuf {
    workspace().join("tests/vectors")
}

/// Runs `program` with `args` to its end and returns what it printed and its status.
pub fn run(program: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> Output {
    let program = program.as_ref();
    Command::new(program).args(args).output().unwrap_or_else(|err| panic!("{program:?} does not run: {err}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_crop_keeps_the_pixels_inside_its_edges() {
        let rgb = picture(3, 10, 8);
        let (cropped, width, height) = crop(&rgb, 10, [1, 2, 3, 1]);
        assert_eq!((width, height), (6, 5));
        for y in 0..height {
            for x in 0..width {
                let at = |rgb: &[u8], w: usize, x: usize, y: usize| rgb[(y * w + x) * 3..][..3].to_vec();
                assert_eq!(at(&cropped, width, x, y), at(&rgb, 10, x + 1, y + 2));
            }
        }
    }

    #[test]
    fn the_generator_is_seeded_and_spreads() {
        let (mut a, mut b) = (Rng::new(1), Rng::new(1));
        assert_eq!(a.next_u64(), b.next_u64());
        let mut counts = [0u32; 4];
        for _ in 0..4000 {
            counts[a.below(4) as usize] += 1;
        }
        assert!(counts.iter().all(|&c| (900..1100).contains(&c)), "{counts:?}");
        assert_ne!(Rng::new(0).next_u64(), 0);
    }
}
