//! From pixels to PDQ's 64×64 luma grid: luma, two Jarosz box-filter passes, decimation.
//!
//! The reference blurs a full-size float copy of the image (box along every row, then along
//! every column, twice) and then samples 64×64 points. Its results depend on f32 rounding in
//! the running sums, so every output value here goes through exactly the same additions,
//! subtractions and divisions in the same order. What changes is *when* and *where* they happen:
//!
//! - The image streams through in strips of 8 rows, so the working set is a few strip-sized
//!   buffers and a ring of `window` rows for the column pass, instead of two full-image float
//!   buffers that a column pass would walk against the grain (the reference's column passes
//!   stride through the whole image, and at widths that are multiples of 1024 every step of
//!   them lands on the same cache set).
//! - A running sum along a row is a chain of dependent additions, so a row pass is bound by
//!   latency, not throughput. The row passes walk the 8 rows of a strip together, 8
//!   independent chains in flight, each in its own order. Their divisions do not feed back
//!   into the sums, so they are done later, in a vectorised loop over columns.
//! - Column passes run all columns side by side, a row at a time: plain vector code.
//! - Only 64×64 values survive decimation. The second row pass still has to walk every element
//!   of a row (a running sum's rounding depends on its whole history) but divides only at the 64
//!   sampled columns, and stops after the last one; the second column pass runs on those 64
//!   columns only.
//! - The code is plain Rust; on x86-64 the same code is compiled a second time with AVX2
//!   enabled and picked at run time. Both give identical bits: the same IEEE operations happen
//!   either way (Rust never fuses a multiply and an add), only in wider registers.

/// Rows of a strip, filtered side by side in the row passes.
const ROWS: usize = 8;

/// One running sum per row of a strip.
type Lanes = [f32; ROWS];

/// The reference's luma weights, as f32 constants.
const LUMA_R: f32 = 0.299;
const LUMA_G: f32 = 0.587;
const LUMA_B: f32 = 0.114;

/// Output side of the grid.
pub(crate) const GRID: usize = 64;

/// The 64×64 grid, row-major.
pub(crate) type Grid = [[f32; GRID]; GRID];

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
/// first output comes out after `lead` inputs, and the last `lead` outputs come after the inputs
/// run out, each subtracting one more input and shrinking the divisor.
#[derive(Debug, Clone, Copy)]
struct BoxSchedule {
    window: usize,
    /// Inputs read before the first output: `(window + 2) / 2 - 1`.
    lead: usize,
}

impl BoxSchedule {
    fn new(window: usize) -> BoxSchedule {
        let half = (window + 2) / 2;
        BoxSchedule { window, lead: half - 1 }
    }

    /// The divisor of the output produced at input step `t` (while inputs last).
    fn count_at(self, t: usize) -> f32 {
        (t + 1).min(self.window) as f32
    }

    /// The divisor of output position `position` of `len`.
    fn divisor(self, position: usize, len: usize) -> f32 {
        let Self { window, lead } = self;
        if position + lead < window {
            (position + lead + 1) as f32
        } else if position + lead < len {
            window as f32
        } else {
            (window - 1 - (position + lead - len)) as f32
        }
    }
}

/// Reusable buffers for [`luma_grid`], so that hashing many images does not reallocate.
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    /// Luma of the current strip: `ROWS` rows of `width`, [`row_stride`] apart.
    luma: Vec<f32>,
    /// First row pass running sums for the strip (divided when the column pass reads them).
    first_rows: Vec<f32>,
    /// First column pass outputs waiting for the second row pass, `ROWS` rows.
    first_cols: Vec<f32>,
    /// The divisor of each output position of the first row pass.
    row_divisors: Vec<f32>,
    /// Running sums of the first column pass, one per column.
    col_sums: Vec<f32>,
    /// The last `window` inputs of the first column pass, row `r` in slot `r % window`.
    col_ring: Vec<f32>,
    /// Running sums and ring of the second column pass (64 columns).
    grid_sums: Vec<f32>,
    grid_ring: Vec<f32>,
}

/// Computes the blurred, decimated 64×64 luma grid of an image, exactly as the reference does
/// with two Jarosz passes, for an image of `width × height` (both ≥ 1). `simd` allows
/// CPU-specific code (same bits; `false` is for testing the portable path).
pub(crate) fn luma_grid(
    source: Source<'_>,
    width: usize,
    height: usize,
    scratch: &mut Scratch,
    simd: bool,
) -> Grid {
    assert!(width > 0 && height > 0, "empty image");
    match source {
        Source::Rgb(rgb) => {
            assert_eq!(Some(rgb.len()), width.checked_mul(height).and_then(|n| n.checked_mul(3)), "RGB size")
        }
        Source::Luma(luma) => assert_eq!(Some(luma.len()), width.checked_mul(height), "luma size"),
    }
    #[cfg(target_arch = "x86_64")]
    if simd && std::is_x86_feature_detected!("avx2") {
        // SAFETY: `luma_grid_avx2` only requires AVX2, which the CPU was just checked to have.
        return unsafe { luma_grid_avx2(source, width, height, scratch) };
    }
    let _ = simd;
    luma_grid_impl(source, width, height, scratch)
}

/// Where the luma comes from.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Source<'a> {
    /// Row-major RGB8, converted with the reference's weights.
    Rgb(&'a [u8]),
    /// Row-major luma, used as it is.
    Luma(&'a [f32]),
}

/// [`luma_grid_impl`] compiled for AVX2: the column-wise loops use 256-bit registers.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn luma_grid_avx2(source: Source<'_>, width: usize, height: usize, scratch: &mut Scratch) -> Grid {
    luma_grid_impl(source, width, height, scratch)
}

#[inline(always)]
fn luma_grid_impl(source: Source<'_>, width: usize, height: usize, scratch: &mut Scratch) -> Grid {
    let row_schedule = BoxSchedule::new(window_size(width));
    let col_schedule = BoxSchedule::new(window_size(height));
    let sample_cols: [usize; GRID] = std::array::from_fn(|j| sample_index(j, width));
    let sample_rows: [usize; GRID] = std::array::from_fn(|i| sample_index(i, height));

    let Scratch { luma, first_rows, first_cols, row_divisors, col_sums, col_ring, grid_sums, grid_ring } =
        scratch;
    let stride = row_stride(width);
    reset(luma, ROWS * stride, 0.0);
    reset(first_rows, ROWS * stride, 0.0);
    reset(first_cols, ROWS * stride, 0.0);
    reset(col_sums, width, 0.0);
    reset(col_ring, col_schedule.window * width, 0.0);
    row_divisors.clear();
    row_divisors.extend((0..width).map(|c| row_schedule.divisor(c, width)));

    let mut grid = [[0.0f32; GRID]; GRID];
    let mut second_cols = GridColumnPass::new(col_schedule, height, grid_sums, grid_ring);
    // First-column-pass output rows gathered in `first_cols` for the second row pass.
    let mut pending = 0;
    let mut second_pass = |first_cols: &[f32], count: usize, grid: &mut Grid| {
        let sampled = second_row_pass(first_cols, stride, width, row_schedule, &sample_cols);
        for row in &sampled[..count] {
            second_cols.push(row, &sample_rows, grid);
        }
    };

    // Divides one output row of the first column pass into the strip gathered for the second
    // row pass, and runs that pass once the strip is full.
    let mut emit_first_col_row = |col_sums: &[f32], divisor: f32| {
        let out = &mut first_cols[pending * stride..][..width];
        for (o, &sum) in out.iter_mut().zip(col_sums) {
            *o = sum / divisor;
        }
        pending += 1;
        if pending == ROWS {
            second_pass(first_cols, ROWS, &mut grid);
            pending = 0;
        }
    };

    let BoxSchedule { window, lead } = col_schedule;
    let mut top = 0;
    while top < height {
        let count = ROWS.min(height - top);
        luma_strip(source, width, top, count, luma, stride);
        first_row_pass(luma, first_rows, stride, width, row_schedule);
        // The first column pass, a row at a time, all columns side by side. Its inputs are the
        // first row pass's outputs, whose division is done here, on the way in.
        for (r, sums) in first_rows.chunks_exact(stride).take(count).enumerate() {
            let t = top + r;
            let slot = &mut col_ring[(t % window) * width..][..width];
            let inputs = sums[..width].iter().zip(row_divisors.iter()).map(|(&sum, &divisor)| sum / divisor);
            if t < window {
                for ((sum, x), stored) in col_sums.iter_mut().zip(inputs).zip(slot.iter_mut()) {
                    *sum += x;
                    *stored = x;
                }
            } else {
                for ((sum, x), stored) in col_sums.iter_mut().zip(inputs).zip(slot.iter_mut()) {
                    *sum += x;
                    *sum -= *stored;
                    *stored = x;
                }
            }
            if t >= lead {
                emit_first_col_row(col_sums, col_schedule.count_at(t));
            }
        }
        top += count;
    }
    // The last `lead` outputs of the first column pass come from subtracting alone.
    for p in 0..lead {
        let old = &col_ring[((height - window + p) % window) * width..][..width];
        for (sum, &x) in col_sums.iter_mut().zip(old) {
            *sum -= x;
        }
        emit_first_col_row(col_sums, (window - 1 - p) as f32);
    }
    if pending > 0 {
        second_pass(first_cols, pending, &mut grid);
    }
    second_cols.finish(&sample_rows, &mut grid);
    grid
}

/// The distance between the rows of a strip, in floats. The row passes walk all `ROWS` rows
/// of a strip at once, so their addresses must not share L1 cache sets: row `r` starts
/// `r · 576` bytes (mod 4 KiB) after row 0, spreading the rows evenly over the sets.
fn row_stride(width: usize) -> usize {
    const PERIOD: usize = 1024; // floats in 4 KiB
    const OFFSET: usize = PERIOD / ROWS + 16;
    let base = width.next_multiple_of(PERIOD);
    if base - PERIOD + OFFSET >= width { base - PERIOD + OFFSET } else { base + OFFSET }
}

fn reset<T: Copy>(buffer: &mut Vec<T>, len: usize, value: T) {
    buffer.clear();
    buffer.resize(len, value);
}

/// Luma of rows `top..top + count` into `rows` (`ROWS` rows, `stride` apart; rows beyond
/// `count` are left as they are: they are filtered but never read back).
#[inline(always)]
fn luma_strip(source: Source<'_>, width: usize, top: usize, count: usize, rows: &mut [f32], stride: usize) {
    for (lane, out) in rows.chunks_exact_mut(stride).enumerate().take(count) {
        let out = &mut out[..width];
        match source {
            Source::Luma(luma) => out.copy_from_slice(&luma[(top + lane) * width..][..width]),
            Source::Rgb(rgb) => {
                let pixels = &rgb[(top + lane) * width * 3..][..width * 3];
                // Eight pixels at a time, so the deinterleave and the conversions vectorise.
                let mut chunks = pixels.chunks_exact(3 * 8);
                let mut outs = out.chunks_exact_mut(8);
                for (chunk, out8) in (&mut chunks).zip(&mut outs) {
                    let r: [f32; 8] = std::array::from_fn(|k| chunk[3 * k] as f32);
                    let g: [f32; 8] = std::array::from_fn(|k| chunk[3 * k + 1] as f32);
                    let b: [f32; 8] = std::array::from_fn(|k| chunk[3 * k + 2] as f32);
                    for k in 0..8 {
                        out8[k] = LUMA_R * r[k] + LUMA_G * g[k] + LUMA_B * b[k];
                    }
                }
                for (cell, pixel) in outs.into_remainder().iter_mut().zip(chunks.remainder().chunks_exact(3))
                {
                    *cell = luma(pixel);
                }
            }
        }
    }
}

/// The rows of a strip as `ROWS` slices of `width`, `stride` apart.
#[inline(always)]
fn split_rows(buffer: &[f32], stride: usize, width: usize) -> [&[f32]; ROWS] {
    std::array::from_fn(|r| &buffer[r * stride..][..width])
}

/// Phase 3 of the box filter on every row of a strip, inputs `from..to`: add the new input,
/// subtract the one leaving the window. The rows are independent chains, interleaved so that
/// their additions overlap in the pipeline.
// The rows are indexed side by side on purpose: one step of every chain per iteration.
#[allow(clippy::needless_range_loop)]
#[inline(always)]
fn slide(
    rows: &[&[f32]; ROWS],
    sums: &mut Lanes,
    window: usize,
    from: usize,
    to: usize,
    mut emit: impl FnMut(usize, &Lanes),
) {
    for t in from..to {
        for r in 0..ROWS {
            sums[r] += rows[r][t];
            sums[r] -= rows[r][t - window];
        }
        emit(t, sums);
    }
}

/// The first row pass on a strip, every output kept: `output` gets the running sums, to be
/// divided by [`BoxSchedule::divisor`] by the consumer (the division does not feed back into
/// the sum, so doing it later, in a vectorised loop, changes nothing).
// The rows are indexed side by side on purpose: one step of every chain per iteration.
#[allow(clippy::needless_range_loop)]
#[inline(always)]
fn first_row_pass(input: &[f32], output: &mut [f32], stride: usize, width: usize, schedule: BoxSchedule) {
    let BoxSchedule { window, lead } = schedule;
    let rows = split_rows(input, stride, width);
    let mut outs: [&mut [f32]; ROWS] = {
        let mut chunks = output.chunks_exact_mut(stride);
        std::array::from_fn(|_| &mut chunks.next().unwrap()[..width])
    };
    let mut sums: Lanes = [0.0; ROWS];
    for t in 0..window {
        for r in 0..ROWS {
            sums[r] += rows[r][t];
        }
        if t >= lead {
            for r in 0..ROWS {
                outs[r][t - lead] = sums[r];
            }
        }
    }
    slide(&rows, &mut sums, window, window, width, |t, sums| {
        for r in 0..ROWS {
            outs[r][t - lead] = sums[r];
        }
    });
    for p in 0..lead {
        for r in 0..ROWS {
            sums[r] -= rows[r][width - window + p];
            outs[r][width - lead + p] = sums[r];
        }
    }
}

/// The second row pass on up to `ROWS` first-column-pass output rows: the running sums walk
/// every column, but only the 64 sampled columns are divided out. Returns `[row][sample]`.
// The rows are indexed side by side on purpose: one step of every chain per iteration.
#[allow(clippy::needless_range_loop)]
#[inline(always)]
fn second_row_pass(
    input: &[f32],
    stride: usize,
    width: usize,
    schedule: BoxSchedule,
    cols: &[usize; GRID],
) -> [[f32; GRID]; ROWS] {
    let BoxSchedule { window, lead } = schedule;
    let rows = split_rows(input, stride, width);
    let mut sampled = [[0.0f32; GRID]; ROWS];
    let mut next = 0; // next sample to fill; sample columns are non-decreasing
    // Divides out every sample at output `position` (columns repeat when width < 64).
    let mut record = |next: &mut usize, position: usize, sums: &Lanes, divisor: f32| {
        while *next < GRID && cols[*next] == position {
            for r in 0..ROWS {
                sampled[r][*next] = sums[r] / divisor;
            }
            *next += 1;
        }
    };
    let mut sums: Lanes = [0.0; ROWS];
    for t in 0..window {
        for r in 0..ROWS {
            sums[r] += rows[r][t];
        }
        if t >= lead {
            record(&mut next, t - lead, &sums, (t + 1) as f32);
        }
    }
    let full = window as f32;
    // Between samples only the running sums are needed. Output position `col` is produced by
    // the step that adds input `col + lead`.
    let mut t = window;
    while let Some(&col) = cols.get(next) {
        let step = col + lead;
        if step >= width {
            break; // produced after the inputs run out
        }
        slide(&rows, &mut sums, window, t, step + 1, |_, _| {});
        t = step + 1;
        record(&mut next, col, &sums, full);
    }
    if next < GRID {
        slide(&rows, &mut sums, window, t, width, |_, _| {});
        for p in 0..lead {
            for r in 0..ROWS {
                sums[r] -= rows[r][width - window + p];
            }
            record(&mut next, width - lead + p, &sums, (window - 1 - p) as f32);
        }
    }
    sampled
}

/// The second column pass, on the 64 sampled columns only, writing the sampled rows to the grid.
struct GridColumnPass<'a> {
    schedule: BoxSchedule,
    height: usize,
    step: usize,
    sums: &'a mut Vec<f32>,
    /// Input rows `step - window .. step`, row `r` in slot `r % window`.
    ring: &'a mut Vec<f32>,
    /// Next grid row to fill.
    next: usize,
}

impl<'a> GridColumnPass<'a> {
    fn new(
        schedule: BoxSchedule,
        height: usize,
        sums: &'a mut Vec<f32>,
        ring: &'a mut Vec<f32>,
    ) -> GridColumnPass<'a> {
        reset(sums, GRID, 0.0);
        reset(ring, GRID * schedule.window, 0.0);
        GridColumnPass { schedule, height, step: 0, sums, ring, next: 0 }
    }

    /// Copies out the sums as output row `row` if that row is sampled (rows can repeat).
    fn record(&mut self, row: usize, divisor: f32, sample_rows: &[usize; GRID], grid: &mut Grid) {
        while self.next < GRID && sample_rows[self.next] == row {
            for (cell, &sum) in grid[self.next].iter_mut().zip(self.sums.iter()) {
                *cell = sum / divisor;
            }
            self.next += 1;
        }
    }

    /// Adds input row `step`.
    fn push(&mut self, row: &[f32; GRID], sample_rows: &[usize; GRID], grid: &mut Grid) {
        let BoxSchedule { window, lead } = self.schedule;
        let t = self.step;
        let slot = &mut self.ring[(t % window) * GRID..][..GRID];
        for (sum, &x) in self.sums.iter_mut().zip(row) {
            *sum += x;
        }
        if t >= window {
            for (sum, &old) in self.sums.iter_mut().zip(slot.iter()) {
                *sum -= old;
            }
        }
        slot.copy_from_slice(row);
        self.step += 1;
        if t >= lead {
            self.record(t - lead, self.schedule.count_at(t), sample_rows, grid);
        }
    }

    /// The last outputs, after every input row has been pushed.
    fn finish(&mut self, sample_rows: &[usize; GRID], grid: &mut Grid) {
        let BoxSchedule { window, lead } = self.schedule;
        debug_assert_eq!(self.step, self.height);
        for p in 0..lead {
            let old_row = self.height - window + p;
            for (sum, &old) in self.sums.iter_mut().zip(&self.ring[(old_row % window) * GRID..][..GRID]) {
                *sum -= old;
            }
            self.record(self.height - lead + p, (window - 1 - p) as f32, sample_rows, grid);
        }
    }
}

/// The reference's 64×64 input shortcut for the single hash: the luma as it is, unblurred.
pub(crate) fn luma_grid_unfiltered(source: Source<'_>) -> Grid {
    let mut grid = [[0.0f32; GRID]; GRID];
    match source {
        Source::Rgb(rgb) => {
            for (row, pixels) in grid.iter_mut().zip(rgb.chunks_exact(GRID * 3)) {
                for (cell, pixel) in row.iter_mut().zip(pixels.chunks_exact(3)) {
                    *cell = luma(pixel);
                }
            }
        }
        Source::Luma(luma) => {
            for (row, values) in grid.iter_mut().zip(luma.chunks_exact(GRID)) {
                row.copy_from_slice(values);
            }
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
        let mut bytes = vec![0; len];
        hashsieve_testkit::Rng::new(seed).fill(&mut bytes);
        bytes
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
            (1, 1),
            (9, 4500),
            (4500, 9),
        ];
        for (seed, (width, height)) in sizes.into_iter().enumerate() {
            let rgb = noise(width * height * 3, seed as u64 + 7);
            let expected = reference_grid(&rgb, width, height);
            let luma: Vec<f32> = rgb.chunks_exact(3).map(luma).collect();
            for simd in [false, true] {
                for source in [Source::Rgb(&rgb), Source::Luma(&luma)] {
                    let got = luma_grid(source, width, height, &mut Scratch::default(), simd);
                    for i in 0..GRID {
                        for j in 0..GRID {
                            assert_eq!(
                                got[i][j].to_bits(),
                                expected[i][j].to_bits(),
                                "{width}x{height} simd={simd} at ({i},{j}): {} vs {}",
                                got[i][j],
                                expected[i][j]
                            );
                        }
                    }
                }
            }
        }
    }
}
