//! From RGB pixels to PDQ's 64×64 luma grid: luma, two Jarosz box-filter passes, decimation.
//!
//! The reference blurs a full-size float copy of the image (box along every row, then along
//! every column, twice) and then samples 64×64 points. Its results depend on f32 rounding in
//! the running sums, so every output value here goes through exactly the same additions,
//! subtractions and divisions in the same order. What changes is *when* and *where* they happen:
//!
//! - Rows stream through the filter top to bottom, so the working set is a few rows (a ring of
//!   `window` rows for each column pass) instead of two full-image float buffers that a column
//!   pass would walk against the grain.
//! - Row passes run eight rows side by side, one per SIMD lane, in a transposed block
//!   (`[column][lane]`); column passes run all columns side by side. Lanes never mix, so each
//!   sum keeps its own order.
//! - Only 64×64 values survive decimation. The second row pass still has to walk every element
//!   of a row (a running sum's rounding depends on its whole history) but divides only at the 64
//!   sampled columns, and the second column pass runs on those 64 columns only.

/// Rows processed side by side in a row pass.
const LANES: usize = 8;

type Lanes = [f32; LANES];

/// The reference's luma weights, as f32 constants.
const LUMA_R: f32 = 0.299;
const LUMA_G: f32 = 0.587;
const LUMA_B: f32 = 0.114;

/// Output side of the grid.
pub(crate) const GRID: usize = 64;

/// The reference's box-filter window for a dimension reduced to 64: `ceil(dim / 128)`.
fn window_size(dim: usize) -> usize {
    dim.div_ceil(2 * GRID)
}

/// The source index sampled for output index `i` of 64, computed in f64 as the reference does.
fn sample_index(i: usize, dim: usize) -> usize {
    (((i as f64 + 0.5) * dim as f64) / GRID as f64) as usize
}

/// The luma of one RGB pixel: `(R·r + G·g) + B·b` in f32, in that order.
#[inline(always)]
fn luma(rgb: &[u8]) -> f32 {
    LUMA_R * rgb[0] as f32 + LUMA_G * rgb[1] as f32 + LUMA_B * rgb[2] as f32
}

/// The phases of the reference's one-dimensional box filter of `window` over `len` inputs.
///
/// Input `t` is added at step `t`. Before the window is full (`t < window`) the divisor grows
/// with each add; once it is full each add is followed by subtracting input `t - window`. The
/// first output comes out after `half - 1` inputs, and the last `half - 1` outputs come after
/// the inputs run out, each subtracting one more input and shrinking the divisor.
#[derive(Debug, Clone, Copy)]
struct BoxSchedule {
    window: usize,
    /// Inputs read before the first output.
    lead: usize,
}

impl BoxSchedule {
    fn new(window: usize) -> BoxSchedule {
        let half = (window + 2) / 2;
        BoxSchedule { window, lead: half - 1 }
    }
}

/// Reusable buffers for [`luma_grid`], so that hashing many images does not reallocate.
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    /// Luma of a block of rows, transposed: `[column][lane]`.
    block_in: Vec<Lanes>,
    /// First row pass output for the block, transposed.
    block_out: Vec<Lanes>,
    /// Running sums of the first column pass, one per column.
    col_sums: Vec<f32>,
    /// The last `window` inputs of the first column pass, row-major.
    col_ring: Vec<f32>,
    /// One output row of the first column pass.
    col_row: Vec<f32>,
    /// Column-pass outputs gathered for the second row pass, transposed.
    block_second: Vec<Lanes>,
}

/// Computes the blurred, decimated 64×64 luma grid of an RGB image, exactly as the reference
/// does with two Jarosz passes. `rgb` is row-major RGB8 of `width × height`, both ≥ 1.
pub(crate) fn luma_grid(
    rgb: &[u8],
    width: usize,
    height: usize,
    scratch: &mut Scratch,
) -> [[f32; GRID]; GRID] {
    debug_assert_eq!(rgb.len(), width * height * 3);
    let row_schedule = BoxSchedule::new(window_size(width));
    let col_schedule = BoxSchedule::new(window_size(height));
    let sample_cols: [usize; GRID] = std::array::from_fn(|j| sample_index(j, width));
    let sample_rows: [usize; GRID] = std::array::from_fn(|i| sample_index(i, height));

    scratch.block_in.clear();
    scratch.block_in.resize(width, [0.0; LANES]);
    scratch.block_out.clear();
    scratch.block_out.resize(width, [0.0; LANES]);
    scratch.block_second.clear();
    scratch.block_second.resize(width, [0.0; LANES]);
    scratch.col_row.clear();
    scratch.col_row.resize(width, 0.0);
    let Scratch { block_in, block_out, col_sums, col_ring, col_row, block_second } = scratch;

    let mut first_cols = ColumnBox::new(col_schedule, width, height, col_sums, col_ring);
    let mut second_rows =
        SecondRowPass { block: block_second, filled: 0, schedule: row_schedule, sample_cols };
    let mut second_cols_sums = Vec::new();
    let mut second_cols_ring = Vec::new();
    let mut second_cols =
        ColumnBox::new(col_schedule, GRID, height, &mut second_cols_sums, &mut second_cols_ring);
    let mut grid = [[0.0f32; GRID]; GRID];
    let mut emit = |row: usize, values: &[f32]| {
        for (i, &sampled) in sample_rows.iter().enumerate() {
            if sampled == row {
                grid[i].copy_from_slice(values);
            }
        }
    };

    let mut feed_second_rows = |row: &[f32], second_rows: &mut SecondRowPass, second_cols: &mut ColumnBox| {
        if let Some(outputs) = second_rows.push(row) {
            for out in outputs.iter().take(LANES) {
                second_cols.push(out, &mut emit);
            }
        }
    };

    let mut row_start = 0;
    while row_start < height {
        let rows = LANES.min(height - row_start);
        // Luma of up to eight rows, transposed so that each row is a lane.
        for lane in 0..rows {
            let row = &rgb[(row_start + lane) * width * 3..][..width * 3];
            for (cell, pixel) in block_in.iter_mut().zip(row.chunks_exact(3)) {
                cell[lane] = luma(pixel);
            }
        }
        box_along_lanes(block_in, block_out, row_schedule);
        for lane in 0..rows {
            for (dst, src) in col_row.iter_mut().zip(block_out.iter()) {
                *dst = src[lane];
            }
            first_cols.push(col_row, &mut |_, out: &[f32]| {
                feed_second_rows(out, &mut second_rows, &mut second_cols);
            });
        }
        row_start += rows;
    }
    first_cols.finish(&mut |_, out: &[f32]| feed_second_rows(out, &mut second_rows, &mut second_cols));
    if let Some((outputs, count)) = second_rows.flush() {
        for out in outputs.iter().take(count) {
            second_cols.push(out, &mut emit);
        }
    }
    second_cols.finish(&mut emit);
    grid
}

/// The first row pass: a full box filter along each lane's row, every output kept.
fn box_along_lanes(input: &[Lanes], output: &mut [Lanes], schedule: BoxSchedule) {
    let BoxSchedule { window, lead } = schedule;
    let len = input.len();
    let mut sum: Lanes = [0.0; LANES];
    let mut count = 0usize;
    for x in &input[..lead] {
        add(&mut sum, x);
        count += 1;
    }
    for t in lead..window {
        add(&mut sum, &input[t]);
        count += 1;
        divide_into(&mut output[t - lead], &sum, count as f32);
    }
    let full = window as f32;
    for t in window..len {
        add(&mut sum, &input[t]);
        subtract(&mut sum, &input[t - window]);
        divide_into(&mut output[t - lead], &sum, full);
    }
    for p in 0..lead {
        subtract(&mut sum, &input[len - window + p]);
        count -= 1;
        divide_into(&mut output[len - lead + p], &sum, count as f32);
    }
}

/// The second row pass: gathers column-pass output rows eight at a time (transposed), then
/// runs the box filter along them, dividing only at the 64 sampled columns.
struct SecondRowPass<'a> {
    block: &'a mut Vec<Lanes>,
    filled: usize,
    schedule: BoxSchedule,
    sample_cols: [usize; GRID],
}

impl SecondRowPass<'_> {
    /// Adds a row; once eight are gathered, returns their 64 sampled outputs each.
    fn push(&mut self, row: &[f32]) -> Option<[[f32; GRID]; LANES]> {
        let lane = self.filled;
        for (cell, &value) in self.block.iter_mut().zip(row) {
            cell[lane] = value;
        }
        self.filled += 1;
        (self.filled == LANES).then(|| {
            self.filled = 0;
            self.filter()
        })
    }

    /// Filters a partly filled last block: its outputs and how many rows are real.
    fn flush(&mut self) -> Option<([[f32; GRID]; LANES], usize)> {
        let count = std::mem::take(&mut self.filled);
        (count > 0).then(|| (self.filter(), count))
    }

    fn filter(&self) -> [[f32; GRID]; LANES] {
        let BoxSchedule { window, lead } = self.schedule;
        let input = &self.block[..];
        let len = input.len();
        let mut sampled: [Lanes; GRID] = [[0.0; LANES]; GRID];
        let mut next = 0; // next sample to fill; sample columns are non-decreasing
        // Divides out every sample at `position` (equal columns repeat when width < 64).
        let cols = &self.sample_cols;
        let record =
            |next: &mut usize, sampled: &mut [Lanes; GRID], position: usize, sum: &Lanes, divisor: f32| {
                while *next < GRID && cols[*next] == position {
                    divide_into(&mut sampled[*next], sum, divisor);
                    *next += 1;
                }
            };
        let mut sum: Lanes = [0.0; LANES];
        let mut count = 0usize;
        for x in &input[..lead] {
            add(&mut sum, x);
            count += 1;
        }
        for (position, x) in input[lead..window].iter().enumerate() {
            add(&mut sum, x);
            count += 1;
            record(&mut next, &mut sampled, position, &sum, count as f32);
        }
        let full = window as f32;
        // Between samples only the running sum is needed: no division, no branch. Output
        // position `col` is produced by the step that adds input `col + lead`.
        let mut t = window;
        while let Some(&col) = self.sample_cols.get(next) {
            let step = col + lead;
            if step >= len {
                break; // produced after the inputs run out
            }
            while t <= step {
                add(&mut sum, &input[t]);
                subtract(&mut sum, &input[t - window]);
                t += 1;
            }
            record(&mut next, &mut sampled, col, &sum, full);
        }
        while t < len {
            add(&mut sum, &input[t]);
            subtract(&mut sum, &input[t - window]);
            t += 1;
        }
        for p in 0..lead {
            subtract(&mut sum, &input[len - window + p]);
            count -= 1;
            record(&mut next, &mut sampled, len - lead + p, &sum, count as f32);
        }
        std::array::from_fn(|lane| std::array::from_fn(|j| sampled[j][lane]))
    }
}

/// A box filter down columns, fed one row at a time, all columns side by side.
struct ColumnBox<'a> {
    schedule: BoxSchedule,
    len: usize,
    step: usize,
    count: usize,
    sums: &'a mut Vec<f32>,
    /// Input rows `step - window .. step`, row `r` in slot `r % window`.
    ring: &'a mut Vec<f32>,
    width: usize,
    out: Vec<f32>,
}

impl<'a> ColumnBox<'a> {
    fn new(
        schedule: BoxSchedule,
        width: usize,
        len: usize,
        sums: &'a mut Vec<f32>,
        ring: &'a mut Vec<f32>,
    ) -> ColumnBox<'a> {
        sums.clear();
        sums.resize(width, 0.0);
        ring.clear();
        ring.resize(width * schedule.window, 0.0);
        ColumnBox { schedule, len, step: 0, count: 0, sums, ring, width, out: vec![0.0; width] }
    }

    /// Adds input row `step`, calling `emit(output_row, values)` when an output is ready.
    fn push(&mut self, row: &[f32], emit: &mut impl FnMut(usize, &[f32])) {
        let BoxSchedule { window, lead } = self.schedule;
        let t = self.step;
        let slot = &mut self.ring[(t % window) * self.width..][..self.width];
        if t < window {
            for (sum, &x) in self.sums.iter_mut().zip(row) {
                *sum += x;
            }
            self.count += 1;
        } else {
            for ((sum, &x), &old) in self.sums.iter_mut().zip(row).zip(slot.iter()) {
                *sum += x;
                *sum -= old;
            }
        }
        slot.copy_from_slice(&row[..self.width]);
        self.step += 1;
        if t >= lead {
            let divisor = self.count as f32;
            for (out, &sum) in self.out.iter_mut().zip(self.sums.iter()) {
                *out = sum / divisor;
            }
            emit(t - lead, &self.out);
        }
    }

    /// Emits the last outputs, after every input row has been pushed.
    fn finish(&mut self, emit: &mut impl FnMut(usize, &[f32])) {
        let BoxSchedule { window, lead } = self.schedule;
        debug_assert_eq!(self.step, self.len);
        for p in 0..lead {
            let old_row = self.len - window + p;
            let slot = &self.ring[(old_row % window) * self.width..][..self.width];
            for (sum, &old) in self.sums.iter_mut().zip(slot) {
                *sum -= old;
            }
            self.count -= 1;
            let divisor = self.count as f32;
            for (out, &sum) in self.out.iter_mut().zip(self.sums.iter()) {
                *out = sum / divisor;
            }
            emit(self.len - lead + p, &self.out);
        }
    }
}

#[inline(always)]
fn add(sum: &mut Lanes, x: &Lanes) {
    for (s, v) in sum.iter_mut().zip(x) {
        *s += v;
    }
}

#[inline(always)]
fn subtract(sum: &mut Lanes, x: &Lanes) {
    for (s, v) in sum.iter_mut().zip(x) {
        *s -= v;
    }
}

#[inline(always)]
fn divide_into(out: &mut Lanes, sum: &Lanes, divisor: f32) {
    for (o, s) in out.iter_mut().zip(sum) {
        *o = s / divisor;
    }
}

/// The reference's 64×64 input shortcut for the single hash: the luma as it is, unblurred.
pub(crate) fn luma_grid_unfiltered(rgb: &[u8]) -> [[f32; GRID]; GRID] {
    let mut grid = [[0.0f32; GRID]; GRID];
    for (row, pixels) in grid.iter_mut().zip(rgb.chunks_exact(GRID * 3)) {
        for (cell, pixel) in row.iter_mut().zip(pixels.chunks_exact(3)) {
            *cell = luma(pixel);
        }
    }
    grid
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference's algorithm, written the plain way: full-size buffers, one box per row and
    /// per column with a stride. An oracle for the streaming version.
    fn reference_grid(rgb: &[u8], width: usize, height: usize) -> [[f32; GRID]; GRID] {
        fn box_1d(input: &[f32], output: &mut [f32], len: usize, stride: usize, window: usize) {
            let half = (window + 2) / 2;
            let (mut li, mut ri, mut oi) = (0, 0, 0);
            let mut sum = 0.0f32;
            let mut count = 0;
            for _ in 0..half - 1 {
                sum += input[ri];
                count += 1;
                ri += stride;
            }
            for _ in 0..window - half + 1 {
                sum += input[ri];
                count += 1;
                output[oi] = sum / count as f32;
                ri += stride;
                oi += stride;
            }
            for _ in 0..len - window {
                sum += input[ri];
                sum -= input[li];
                output[oi] = sum / count as f32;
                li += stride;
                ri += stride;
                oi += stride;
            }
            for _ in 0..half - 1 {
                sum -= input[li];
                count -= 1;
                output[oi] = sum / count as f32;
                li += stride;
                oi += stride;
            }
        }
        let mut a: Vec<f32> = rgb.chunks_exact(3).map(luma).collect();
        let mut b = vec![0.0; a.len()];
        let (wr, wc) = (window_size(width), window_size(height));
        for _ in 0..2 {
            for r in 0..height {
                box_1d(&a[r * width..], &mut b[r * width..], width, 1, wr);
            }
            for c in 0..width {
                box_1d(&b[c..], &mut a[c..], height, width, wc);
            }
        }
        std::array::from_fn(|i| {
            std::array::from_fn(|j| a[sample_index(i, height) * width + sample_index(j, width)])
        })
    }

    fn noise(len: usize, seed: u64) -> Vec<u8> {
        let mut state = seed | 1;
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 32) as u8
            })
            .collect()
    }

    #[test]
    fn streaming_grid_equals_the_plain_algorithm_bit_for_bit() {
        let sizes = [
            (5, 5),
            (7, 13),
            (64, 64),
            (63, 65),
            (129, 130),
            (300, 200),
            (257, 9),
            (9, 257),
            (1000, 17),
            (640, 480),
            (3, 1000),
        ];
        for (seed, (width, height)) in sizes.into_iter().enumerate() {
            let rgb = noise(width * height * 3, seed as u64 + 7);
            let expected = reference_grid(&rgb, width, height);
            let got = luma_grid(&rgb, width, height, &mut Scratch::default());
            for i in 0..GRID {
                for j in 0..GRID {
                    assert_eq!(
                        got[i][j].to_bits(),
                        expected[i][j].to_bits(),
                        "{width}x{height} at ({i},{j}): {} vs {}",
                        got[i][j],
                        expected[i][j]
                    );
                }
            }
        }
    }
}
