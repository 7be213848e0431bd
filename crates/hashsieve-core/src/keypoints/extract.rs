//! From pixels to a [`Keypoints`] set: the working image's luma, its Harris corners capped per
//! grid cell, and a descriptor (and a mirrored one) for each corner — steps 1–3 of the
//! pipeline in the [module overview](super).
//!
//! The planes the steps work in are kept per thread in a [`Workspace`] and reused from image
//! to image.

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};

use super::{Descriptor, Keypoints, MAX_KEYPOINTS, POSITION_SCALE, WORKING_PIXELS};

/// Images smaller than this on a side get no keypoints: enlarged, they have no detail to
/// describe (and a very long, thin image's working image would be narrower than a patch).
const MIN_SIDE: usize = 64;
/// Half the side of the patch a descriptor compares within.
const PATCH_RADIUS: i32 = 15;
/// Keypoints are at least this far from the working image's edge, so that patches fit.
const MARGIN: i32 = PATCH_RADIUS + 3;
/// Weaker Harris responses are not corners: far below any visible corner, but above the
/// rounding noise of a flat image, which would otherwise be "described".
const MIN_RESPONSE: f32 = 1e4;
/// Half the side of the window a corner must be the strongest in.
const SUPPRESSION_RADIUS: i32 = 3;
/// The grid that spreads keypoints: no cell holds more than `MAX_KEYPOINTS / 8`.
const SPREAD_CELLS: usize = 4;

impl Keypoints {
    /// The keypoints of a row-major RGB8 image, with mirrored descriptors. Images too small to
    /// describe give an empty set, which aligns with nothing.
    ///
    /// # Panics
    /// If `rgb.len() != width * height * 3`.
    pub fn from_rgb(rgb: &[u8], width: usize, height: usize) -> Keypoints {
        assert_eq!(Some(rgb.len()), width.checked_mul(height).and_then(|n| n.checked_mul(3)));
        WORKSPACE.with_borrow_mut(|workspace| workspace.extract(rgb, width, height))
    }
}

/// A row-major f32 image.
#[derive(Default)]
struct Plane {
    width: usize,
    height: usize,
    values: Vec<f32>,
}

impl Plane {
    /// Makes this a `width × height` plane, keeping the allocation. The values are whatever
    /// was there: every user writes all of them (zeroing first cost 8% of the time).
    fn reshape(&mut self, width: usize, height: usize) {
        (self.width, self.height) = (width, height);
        self.values.resize(width * height, 0.0);
    }

    fn row(&self, y: usize) -> &[f32] {
        &self.values[y * self.width..(y + 1) * self.width]
    }

    /// Sums over `(2r+1)²` boxes, edges clamped, into `out`.
    fn box_sum_into(&self, radius: usize, out: &mut Plane) {
        self.box_reduce_into(radius, out, |sum, value| *sum += value);
    }

    /// Maxima over `(2r+1)²` boxes, edges clamped, into `out`.
    fn box_max_into(&self, radius: usize, out: &mut Plane) {
        self.box_reduce_into(radius, out, |most, value| *most = most.max(value));
    }

    /// Folds each `(2r+1)²` box (edges clamped) with `combine`, row by row: the `2r+1` rows
    /// around it into a padded line, then `2r+1` shifted copies of that line into the output —
    /// slice operations the compiler vectorizes, where running sums would be a serial chain.
    fn box_reduce_into(&self, radius: usize, out: &mut Plane, combine: impl Fn(&mut f32, f32) + Copy) {
        let (width, height) = (self.width, self.height);
        assert_eq!((out.width, out.height), (width, height));
        let clamped = |y: isize| self.row(y.clamp(0, height as isize - 1) as usize);
        let mut padded = vec![0f32; width + 2 * radius];
        for (y, out) in out.values.chunks_exact_mut(width).enumerate() {
            let (top, bottom) = (y as isize - radius as isize, (y + radius) as isize);
            let line = &mut padded[radius..radius + width];
            line.copy_from_slice(clamped(top));
            for source in top + 1..=bottom {
                line.iter_mut().zip(clamped(source)).for_each(|(into, &value)| combine(into, value));
            }
            let (first, last) = (padded[radius], padded[radius + width - 1]);
            padded[..radius].fill(first);
            padded[radius + width..].fill(last);
            out.copy_from_slice(&padded[..width]);
            for shift in 1..=2 * radius {
                out.iter_mut().zip(&padded[shift..]).for_each(|(into, &value)| combine(into, value));
            }
        }
    }
}

/// The buffers of an extraction, kept per thread and reused: a working image is about 100,000
/// pixels, each plane of it 400 KB, and allocating five of them afresh for every image cost
/// more (page faults and zeroing: 45% of the time, measured with perf) than the arithmetic.
/// About 2.5 MB stays allocated on each thread that has extracted keypoints.
#[derive(Default)]
struct Workspace {
    resizer: Resizer,
    /// The scaled RGB image.
    scaled: Vec<u8>,
    /// Its luma.
    image: Plane,
    /// The luma summed over 5×5 boxes: what descriptors compare.
    smooth: Plane,
    /// The structure tensor's products, then (reused as they fall free) its box sums, the
    /// Harris response and its local maxima.
    planes: [Plane; 4],
}

thread_local! {
    static WORKSPACE: std::cell::RefCell<Workspace> = std::cell::RefCell::default();
}

impl Workspace {
    fn extract(&mut self, rgb: &[u8], width: usize, height: usize) -> Keypoints {
        if !self.working_image(rgb, width, height) {
            return Keypoints::default();
        }
        let (width, height) = (self.image.width, self.image.height);
        self.smooth.reshape(width, height);
        self.image.box_sum_into(2, &mut self.smooth);
        let (pattern, mirrored_pattern) = patterns();
        let (pattern, mirrored_pattern) = (pattern.offsets(width), mirrored_pattern.offsets(width));
        let mut set = Keypoints::default();
        for (x, y) in self.corners() {
            set.points.push([
                (x as f32 / (width - 1) as f32 * POSITION_SCALE).round() as u16,
                (y as f32 / (height - 1) as f32 * POSITION_SCALE).round() as u16,
            ]);
            let patch = &self.smooth.values[(y - PATCH_REACH) * width + x - PATCH_REACH..];
            set.descriptors.push(describe(patch, &pattern));
            set.mirrored.push(describe(patch, &mirrored_pattern));
        }
        set
    }

    /// Puts the luma of the image scaled to about [`WORKING_PIXELS`] in `self.image`; false if
    /// that is too small.
    ///
    /// The scaling is a convolution with a triangle filter as wide as the scale (so that
    /// shrinking does not alias), by `fast_image_resize`: its SIMD convolution is several times
    /// faster than the `image` crate's generic one, and this step touches every pixel of the
    /// report. It scales the RGB image and takes the luma after: luma is linear in RGB, so the
    /// order does not change the result, but the per-pixel work on the full image is then all
    /// in SIMD code.
    fn working_image(&mut self, rgb: &[u8], width: usize, height: usize) -> bool {
        let scale = (WORKING_PIXELS / (width as f64 * height as f64)).sqrt();
        let side = |length: usize| (length as f64 * scale).round().clamp(1.0, 4096.0) as u32;
        let (working_width, working_height) = (side(width), side(height));
        if width.min(height) < MIN_SIDE || working_width.min(working_height) < MIN_SIDE as u32 {
            return false;
        }
        let full = ImageRef::new(width as u32, height as u32, rgb, PixelType::U8x3).expect("length checked");
        let mut scaled = std::mem::take(&mut self.scaled);
        scaled.resize(working_width as usize * working_height as usize * 3, 0);
        let mut scaled = Image::from_vec_u8(working_width, working_height, scaled, PixelType::U8x3)
            .expect("sized for the working image");
        let bilinear = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear));
        self.resizer.resize(&full, &mut scaled, &bilinear).expect("both images are U8x3");
        self.scaled = scaled.into_vec();
        self.image.reshape(working_width as usize, working_height as usize);
        for (value, p) in self.image.values.iter_mut().zip(self.scaled.chunks_exact(3)) {
            // BT.601 weights.
            *value = 0.299 * f32::from(p[0]) + 0.587 * f32::from(p[1]) + 0.114 * f32::from(p[2]);
        }
        true
    }

    /// The strongest Harris corners of `self.image`, spread over the grid, strongest first.
    fn corners(&mut self) -> Vec<(usize, usize)> {
        let image = &self.image;
        let (width, height) = (image.width, image.height);
        for plane in &mut self.planes {
            plane.reshape(width, height);
        }
        let [xx, yy, xy, response] = &mut self.planes;
        // Sobel, separated: a vertical [1 2 1] smoothing and [-1 0 1] difference of three rows,
        // then the horizontal difference of the first and smoothing of the second.
        // The gradient is zero on the border, where the operator does not fit.
        for plane in [&mut *xx, &mut *yy, &mut *xy] {
            let last = (height - 1) * width;
            plane.values[..width].fill(0.0);
            plane.values[last..].fill(0.0);
            for row in (width..last).step_by(width) {
                (plane.values[row], plane.values[row + width - 1]) = (0.0, 0.0);
            }
        }
        let (mut smoothed, mut difference) = (vec![0f32; width], vec![0f32; width]);
        for y in 1..height - 1 {
            let (up, middle, down) = (image.row(y - 1), image.row(y), image.row(y + 1));
            for x in 0..width {
                smoothed[x] = up[x] + 2.0 * middle[x] + down[x];
                difference[x] = down[x] - up[x];
            }
            let row = y * width;
            for x in 1..width - 1 {
                let gx = smoothed[x + 1] - smoothed[x - 1];
                let gy = difference[x - 1] + 2.0 * difference[x] + difference[x + 1];
                xx.values[row + x] = gx * gx;
                yy.values[row + x] = gy * gy;
                xy.values[row + x] = gx * gy;
            }
        }
        // The tensor's box sums, each into the plane the previous product left free.
        xx.box_sum_into(2, response);
        let sum_yy = xx;
        yy.box_sum_into(2, sum_yy);
        let sum_xy = yy;
        xy.box_sum_into(2, sum_xy);
        for ((value, yy), xy) in response.values.iter_mut().zip(&sum_yy.values).zip(&sum_xy.values) {
            // The summed xx becomes the response in place.
            let (xx, trace) = (*value, *value + yy);
            *value = xx * yy - xy * xy - 0.04 * trace * trace;
        }
        let neighbourhood = xy;
        response.box_max_into(SUPPRESSION_RADIUS as usize, neighbourhood);
        let margin = MARGIN as usize;
        let radius = SUPPRESSION_RADIUS as isize;
        let mut candidates = Vec::new();
        for y in margin..height.saturating_sub(margin) {
            for x in margin..width.saturating_sub(margin) {
                let value = response.values[y * width + x];
                // Cheap rejections first: most pixels are weak or below a neighbour.
                if value < MIN_RESPONSE || value < neighbourhood.values[y * width + x] {
                    continue;
                }
                // Strictly above every neighbour before it in scan order and at least every one
                // after it, so that a plateau yields one corner.
                let strongest = (-radius..=radius).all(|dy| {
                    (-radius..=radius).all(|dx| {
                        let at = (y as isize + dy) as usize * width + (x as isize + dx) as usize;
                        let neighbour = response.values[at];
                        match (dy, dx).cmp(&(0, 0)) {
                            std::cmp::Ordering::Less => value > neighbour,
                            std::cmp::Ordering::Equal => true,
                            std::cmp::Ordering::Greater => value >= neighbour,
                        }
                    })
                });
                if strongest {
                    candidates.push((value, x, y));
                }
            }
        }
        candidates.sort_by(|a, b| b.0.total_cmp(&a.0).then((a.2, a.1).cmp(&(b.2, b.1))));
        let mut per_cell = [0usize; SPREAD_CELLS * SPREAD_CELLS];
        let cap = MAX_KEYPOINTS / 8;
        let mut kept = Vec::with_capacity(MAX_KEYPOINTS);
        for (_, x, y) in candidates {
            let cell = (y * SPREAD_CELLS / height) * SPREAD_CELLS + x * SPREAD_CELLS / width;
            if per_cell[cell] < cap {
                per_cell[cell] += 1;
                kept.push((x, y));
                if kept.len() == MAX_KEYPOINTS {
                    break;
                }
            }
        }
        kept
    }
}

/// How far a comparison offset reaches from the centre.
const PATCH_REACH: usize = (PATCH_RADIUS - 2) as usize;

/// The comparison offsets `(x0, y0, x1, y1)`: Gaussian around the centre (σ = 6.6, as in
/// BRIEF), from a fixed seed so that every build describes alike; and the same mirrored.
fn patterns() -> &'static (Pattern, Pattern) {
    static PATTERNS: std::sync::OnceLock<(Pattern, Pattern)> = std::sync::OnceLock::new();
    PATTERNS.get_or_init(|| {
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut uniform = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        let mut gaussian = || (0..12).map(|_| uniform()).sum::<f64>() - 6.0;
        let limit = PATCH_REACH as i32;
        let mut pattern = Vec::with_capacity(256);
        while pattern.len() < 256 {
            let offsets: [i32; 4] = std::array::from_fn(|_| (gaussian() * 6.6).round() as i32);
            if offsets.iter().all(|v| v.abs() <= limit) && offsets[..2] != offsets[2..] {
                pattern.push(offsets);
            }
        }
        let mirrored = pattern.iter().map(|&[x0, y0, x1, y1]| [-x0, y0, -x1, y1]).collect();
        (Pattern(pattern), Pattern(mirrored))
    })
}

/// 256 comparisons, as offsets from the centre.
struct Pattern(Vec<[i32; 4]>);

impl Pattern {
    /// The comparisons as index pairs into a row-major image `width` wide, from the top-left
    /// of the patch (`PATCH_REACH` above and left of the centre).
    fn offsets(&self, width: usize) -> Vec<[usize; 2]> {
        let index =
            |x: i32, y: i32| (y + PATCH_REACH as i32) as usize * width + (x + PATCH_REACH as i32) as usize;
        self.0.iter().map(|&[x0, y0, x1, y1]| [index(x0, y0), index(x1, y1)]).collect()
    }
}

/// The descriptor of the patch starting at `patch[0]` (its top-left corner).
fn describe(patch: &[f32], offsets: &[[usize; 2]]) -> Descriptor {
    // A word at a time, in a register.
    std::array::from_fn(|word| {
        offsets[word * 64..(word + 1) * 64]
            .iter()
            .enumerate()
            .fold(0, |bits, (bit, &[first, second])| bits | u64::from(patch[first] < patch[second]) << bit)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keypoints::align;
    use hashsieve_testkit::picture;

    #[test]
    fn small_and_flat_images_have_no_keypoints_and_align_with_nothing() {
        assert!(Keypoints::from_rgb(&[7; 40 * 30 * 3], 40, 30).is_empty());
        let flat = Keypoints::from_rgb(&vec![128; 400 * 300 * 3], 400, 300);
        assert!(flat.is_empty());
        let textured = Keypoints::from_rgb(&picture(5, 400, 300), 400, 300);
        assert_eq!(align(&flat, &textured), None);
        assert_eq!(align(&textured, &flat), None);
    }
}
