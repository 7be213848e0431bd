//! From the 64×64 luma grid to bits: quality score, 16×16 DCT, median threshold, dihedral
//! variants. Everything is f32 in the reference's order (the DCT sums run over `k` in order).

use std::sync::OnceLock;

use super::downsample::GRID;

/// Coefficients kept per axis: frequencies 1..=16 (DC is dropped).
const KEPT: usize = 16;

pub(crate) type Coefficients = [[f32; KEPT]; KEPT];

/// `D[i][j] = sqrt(2/64) · cos(π/2/64 · (i+1) · (2j+1))`: the scale is rounded to f32 first,
/// the product is taken in f64 and rounded to f32, as in the reference.
fn dct_matrix() -> &'static [[f32; GRID]; KEPT] {
    static MATRIX: OnceLock<[[f32; GRID]; KEPT]> = OnceLock::new();
    MATRIX.get_or_init(|| {
        let scale = (2.0f64 / GRID as f64).sqrt() as f32;
        std::array::from_fn(|i| {
            std::array::from_fn(|j| {
                let angle = (std::f64::consts::PI / 2.0 / GRID as f64) * (i + 1) as f64 * (2 * j + 1) as f64;
                (scale as f64 * angle.cos()) as f32
            })
        })
    })
}

/// The reference's image-domain quality: the sum of truncated scaled differences between
/// vertical then horizontal neighbours, divided by 90 and capped at 100.
pub(crate) fn quality(grid: &[[f32; GRID]; GRID]) -> u8 {
    let term = |u: f32, v: f32| (((u - v) * 100.0) / 255.0) as i32;
    let mut sum: i32 = 0;
    for pair in grid.windows(2) {
        for (&u, &v) in pair[0].iter().zip(&pair[1]) {
            sum += term(u, v).abs();
        }
    }
    for row in grid {
        for pair in row.windows(2) {
            sum += term(pair[0], pair[1]).abs();
        }
    }
    (sum / 90).min(100) as u8
}

/// `B = D · A · Dᵀ`, with `T = D · A` first; each sum runs over `k` in increasing order. The
/// loops put independent outputs in the inner position so they vectorise without reordering
/// any single sum.
pub(crate) fn dct_16x16(grid: &[[f32; GRID]; GRID]) -> Coefficients {
    let d = dct_matrix();
    let mut t = [[0.0f32; GRID]; KEPT];
    for (t_row, d_row) in t.iter_mut().zip(d) {
        for (&dik, a_row) in d_row.iter().zip(grid) {
            for (tij, &akj) in t_row.iter_mut().zip(a_row) {
                *tij += dik * akj;
            }
        }
    }
    let mut b = [[0.0f32; KEPT]; KEPT];
    for (b_row, t_row) in b.iter_mut().zip(&t) {
        for k in 0..GRID {
            let tik = t_row[k];
            for (bij, d_row) in b_row.iter_mut().zip(d) {
                *bij += tik * d_row[k];
            }
        }
    }
    b
}

/// The median used as the bit threshold: the 128th smallest of the 256 coefficients, which is
/// what the reference's Torben selection returns for 256 values.
fn median(coefficients: &Coefficients) -> f32 {
    let mut values: Vec<f32> = coefficients.iter().flatten().copied().collect();
    let (_, median, _) = values.select_nth_unstable_by(KEPT * KEPT / 2 - 1, f32::total_cmp);
    *median
}

/// Bit `16·i + j` is set when coefficient `(i, j)` is above the median. Bit `k` lives in byte
/// `31 - k/8` at position `k % 8`, so the bytes read as the reference's big-endian hex.
pub(crate) fn to_bits(coefficients: &Coefficients) -> [u8; 32] {
    let threshold = median(coefficients);
    let mut bytes = [0u8; 32];
    for (k, &value) in coefficients.iter().flatten().enumerate() {
        if value > threshold {
            bytes[31 - k / 8] |= 1 << (k % 8);
        }
    }
    bytes
}

/// The coefficients of the image rotated or mirrored, derived from the original's: DCT basis
/// functions are even or odd under reflection, so each variant is a sign pattern, with a
/// transpose for the variants that swap the axes. Order as [`super::Dihedral::ALL`].
pub(crate) fn dihedral(original: &Coefficients) -> [Coefficients; 8] {
    let negate_if = |odd: bool, x: f32| if odd { -x } else { x };
    let mut out = [[[0.0f32; KEPT]; KEPT]; 8];
    for i in 0..KEPT {
        for j in 0..KEPT {
            let a = original[i][j];
            let (i_odd, j_odd, sum_odd) = (i & 1 == 1, j & 1 == 1, (i + j) & 1 == 1);
            out[0][i][j] = a;
            out[1][j][i] = negate_if(!j_odd, a); // rotate 90°
            out[2][i][j] = negate_if(sum_odd, a); // rotate 180°
            out[3][j][i] = negate_if(!i_odd, a); // rotate 270°
            out[4][i][j] = negate_if(!i_odd, a); // flip x
            out[5][i][j] = negate_if(!j_odd, a); // flip y
            out[6][j][i] = a; // transpose
            out[7][j][i] = negate_if(sum_odd, a); // anti-transpose
        }
    }
    out
}
