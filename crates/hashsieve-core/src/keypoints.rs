//! Keypoints: local features that find near-duplicates PDQ loses — cropped copies.
//!
//! PDQ describes the whole frame at low frequency, so trimming a few percent off the edges
//! moves every part of the picture relative to the frame and changes the hash as much as a
//! different picture would (a 3% crop of each edge: median 62 of 256 bits, against a match
//! threshold of 31). Keypoints describe small patches around corners instead, and a patch does
//! not care where the frame ends. Two images are the same picture when many of their keypoints
//! agree on **one** alignment (a scale and a shift per axis, mirrored or not) that makes the
//! two frames cover mostly the same area, with the agreeing points spread over it.
//!
//! The pipeline ([`Keypoints::from_rgb`]):
//! 1. Luma, scaled (aspect kept) to about [`WORKING_PIXELS`], so that resized copies are
//!    described at the same scale; a crop of up to ~20% changes it by less than the patch
//!    comparison tolerates.
//! 2. Harris corners on that image (Sobel gradients, a 5×5 structure tensor), the strongest
//!    local maxima kept, at most [`MAX_KEYPOINTS`], no more than an eighth of them in any cell
//!    of a 4×4 grid so that one textured corner cannot take them all.
//! 3. For each corner a 256-bit BRIEF-style descriptor: 256 comparisons of 5×5 box means at
//!    fixed, seeded offsets within a 31×31 patch. A second descriptor with the offsets mirrored
//!    is what the mirror image of the picture would have at the mirrored point, so a query
//!    carries both and a mirrored copy matches too (rotations by 90° are PDQ's job).
//!
//! [`align`] compares a query with one stored set: each query descriptor's nearest stored
//! descriptor (ratio test), then every alignment proposed by two of the best matches is scored
//! by how many matches it explains. [`Alignment::is_same_picture`] then applies the safety
//! rules: enough agreeing points, both frames mostly covered by the other (a picture inside a
//! collage, or a collage holding a picture, is **not** the same picture — a verdict must not be
//! carried from one to the other), and the agreeing points spread over the shared area (a shared
//! watermark or logo is not the picture).
//!
//! What a set holds is positions and comparison bits, 68 bytes a point: no pixels, and no way
//! back to them. Its byte form ([`Keypoints::to_bytes`]) is documented at
//! [`Keypoints::from_bytes`], which checks every length before it allocates.
//!
//! ```
//! use hashsieve_core::keypoints::{self, Keypoints};
//!
//! // A picture with structure, and a copy with 4% cut off the left and 2% off the top.
//! let (width, height) = (400usize, 300usize);
//! let value = |x: usize, y: usize| ((x * 7 ^ y * 13) % 256) as u8 / 2 + ((x / 40 + y / 30) % 2 * 120) as u8;
//! let rgb: Vec<u8> = (0..width * height).flat_map(|p| [value(p % width, p / width); 3]).collect();
//! let (left, top) = (16, 6);
//! let crop: Vec<u8> = (top..height)
//!     .flat_map(|y| (left..width).flat_map(move |x| [value(x, y); 3]))
//!     .collect();
//!
//! let stored = Keypoints::from_rgb(&rgb, width, height).without_mirrored();
//! let query = Keypoints::from_rgb(&crop, width - left, height - top);
//! let alignment = keypoints::align(&query, &stored).expect("aligned");
//! assert!(alignment.is_same_picture());
//! assert!(!alignment.mirrored);
//! ```

use std::fmt;

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};

/// The working image is scaled to about this many pixels (320 × 320), aspect kept.
pub const WORKING_PIXELS: f64 = 320.0 * 320.0;
/// At most this many keypoints an image.
pub const MAX_KEYPOINTS: usize = 256;
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

/// Positions are stored as fractions of the working image's width and height, in 1/65535.
const POSITION_SCALE: f32 = 65535.0;

/// A descriptor: 256 comparison bits.
pub type Descriptor = [u64; 4];

/// The keypoints of one image: positions, descriptors, and (for a query) the descriptors the
/// image's mirror image would have.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Keypoints {
    points: Vec<[u16; 2]>,
    descriptors: Vec<Descriptor>,
    /// Empty, or one per point.
    mirrored: Vec<Descriptor>,
}

impl fmt::Debug for Keypoints {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Keypoints({} points, mirrored: {})", self.len(), self.has_mirrored())
    }
}

/// Bytes that are not a keypoint set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseKeypointsError {
    /// Not the magic bytes and version this crate writes.
    #[error("not a keypoint set (bad magic or version)")]
    Header,
    /// More points than [`MAX_KEYPOINTS`].
    #[error("a keypoint set has at most {MAX_KEYPOINTS} points, not {0}")]
    TooMany(usize),
    /// The length does not match the header.
    #[error("a keypoint set of {points} points is {expected} bytes, not {found}")]
    Length {
        /// Points the header announces.
        points: usize,
        /// Bytes they take.
        expected: usize,
        /// Bytes given.
        found: usize,
    },
    /// A flag this version does not know.
    #[error("unknown flags {0:#04x} in a keypoint set")]
    Flags(u8),
}

const MAGIC: &[u8; 4] = b"HSKP";
const VERSION: u8 = 1;
const FLAG_MIRRORED: u8 = 1;
const HEADER: usize = 4 + 1 + 1 + 2;

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

    /// The number of keypoints.
    pub fn len(&self) -> usize {
        self.points.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// Whether the mirrored descriptors are present (a query needs them; a stored set does not).
    pub fn has_mirrored(&self) -> bool {
        !self.mirrored.is_empty()
    }

    /// The set without its mirrored descriptors: what a store keeps (half the size). A query
    /// against it still finds mirrored copies, through the query's own mirrored descriptors.
    pub fn without_mirrored(mut self) -> Keypoints {
        self.mirrored = Vec::new();
        self
    }

    /// The descriptors, one per point.
    pub fn descriptors(&self) -> &[Descriptor] {
        &self.descriptors
    }

    /// The mirrored descriptors, one per point, or none.
    pub fn mirrored_descriptors(&self) -> &[Descriptor] {
        &self.mirrored
    }

    /// The byte form: see [`Keypoints::from_bytes`].
    pub fn to_bytes(&self) -> Vec<u8> {
        let per_point = point_bytes(self.has_mirrored());
        let mut out = Vec::with_capacity(HEADER + self.len() * per_point);
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        out.push(if self.has_mirrored() { FLAG_MIRRORED } else { 0 });
        out.extend_from_slice(&(self.len() as u16).to_le_bytes());
        for (index, point) in self.points.iter().enumerate() {
            out.extend_from_slice(&point[0].to_le_bytes());
            out.extend_from_slice(&point[1].to_le_bytes());
            for word in self.descriptors[index] {
                out.extend_from_slice(&word.to_le_bytes());
            }
            if let Some(mirrored) = self.mirrored.get(index) {
                for word in mirrored {
                    out.extend_from_slice(&word.to_le_bytes());
                }
            }
        }
        out
    }

    /// Parses the byte form: `HSKP`, version 1, a flags byte (bit 0: mirrored descriptors
    /// present), the number of points as u16 little-endian (at most [`MAX_KEYPOINTS`]); then
    /// per point x and y (u16 LE, fractions of the width and height in 1/65535), the
    /// descriptor (four u64 LE) and, if flagged, the mirrored descriptor (four u64 LE).
    pub fn from_bytes(bytes: &[u8]) -> Result<Keypoints, ParseKeypointsError> {
        if bytes.len() < HEADER || &bytes[..4] != MAGIC || bytes[4] != VERSION {
            return Err(ParseKeypointsError::Header);
        }
        let flags = bytes[5];
        if flags & !FLAG_MIRRORED != 0 {
            return Err(ParseKeypointsError::Flags(flags));
        }
        let count = usize::from(u16::from_le_bytes([bytes[6], bytes[7]]));
        if count > MAX_KEYPOINTS {
            return Err(ParseKeypointsError::TooMany(count));
        }
        let mirrored = flags & FLAG_MIRRORED != 0;
        let expected = HEADER + count * point_bytes(mirrored);
        if bytes.len() != expected {
            return Err(ParseKeypointsError::Length { points: count, expected, found: bytes.len() });
        }
        let mut set = Keypoints::default();
        for point in bytes[HEADER..].chunks_exact(point_bytes(mirrored)) {
            let u16_at = |at: usize| u16::from_le_bytes([point[at], point[at + 1]]);
            let descriptor_at = |at: usize| -> Descriptor {
                std::array::from_fn(|word| {
                    let start = at + word * 8;
                    u64::from_le_bytes(point[start..start + 8].try_into().expect("8 bytes"))
                })
            };
            set.points.push([u16_at(0), u16_at(2)]);
            set.descriptors.push(descriptor_at(4));
            if mirrored {
                set.mirrored.push(descriptor_at(36));
            }
        }
        Ok(set)
    }
}

fn point_bytes(mirrored: bool) -> usize {
    4 + 32 + if mirrored { 32 } else { 0 }
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

/// The Hamming distance of two descriptors: bits that differ, of 256.
#[inline]
pub fn descriptor_distance(a: &Descriptor, b: &Descriptor) -> u32 {
    a.iter().zip(b).map(|(x, y)| (x ^ y).count_ones()).sum()
}

/// Descriptor pairs farther apart than this are not matches (unrelated patches: about 128).
pub const MAX_DESCRIPTOR_DISTANCE: u32 = 50;
/// A query point is explained by a stored point where the alignment puts it with a descriptor
/// at most this far (unrelated patches: about 128).
const EXPLAINED_DESCRIPTOR_DISTANCE: u32 = 64;
/// A match must be this much closer than the second-best stored descriptor (Lowe's ratio).
const RATIO: f32 = 0.85;
/// How far (as a fraction of the frame) a point may land from its match and still agree.
const TOLERANCE: f32 = 0.012;
/// Alignments are proposed from pairs among this many best matches.
const PROPOSERS: usize = 64;
/// Two proposing points must be this far apart on each axis to fix a scale.
const MIN_SPAN: f32 = 0.05;
/// Scales (stored frame per query frame) outside this range are not considered: a copy less
/// than half or more than twice the other's extent is a different framing, not a trim.
const SCALES: std::ops::RangeInclusive<f32> = 0.5..=2.0;

/// [`Alignment::is_same_picture`]: at least this many agreeing points …
pub const MIN_AGREEING: usize = 24;
/// … each frame covered at least this much by the other …
pub const MIN_COVERAGE: f32 = 0.7;
/// … agreeing points in at least this many cells of a 4×4 grid over the shared area …
pub const MIN_SPREAD_CELLS: usize = 6;
/// … and no cell where this many query points land …
pub const UNEXPLAINED_MIN_POINTS: usize = 8;
/// … and fewer than this share of them are explained.
pub const UNEXPLAINED_SHARE: f32 = 0.1;

/// The best alignment of a query with a stored set: stored = scale · query + shift, per axis,
/// in fractions of each frame, after mirroring the query if `mirrored`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Alignment {
    /// Matches that agree with it.
    pub agreeing: usize,
    /// Whether the query is the mirror image.
    pub mirrored: bool,
    /// Horizontal and vertical scale.
    pub scale: [f32; 2],
    /// Horizontal and vertical shift.
    pub shift: [f32; 2],
    /// Share of the query's frame that falls inside the stored frame, 0..=1.
    pub query_coverage: f32,
    /// Share of the stored frame that the query's frame covers, 0..=1.
    pub stored_coverage: f32,
    /// Cells of a 4×4 grid over the shared area that hold an agreeing point.
    pub spread_cells: usize,
    /// Cells of that grid where at least [`UNEXPLAINED_MIN_POINTS`] query points land and
    /// fewer than [`UNEXPLAINED_SHARE`] of them are explained (a stored point with a close
    /// descriptor where the alignment puts them): content the other image does not have there,
    /// as in a collage that puts a picture beside another in the same frame.
    pub unexplained_cells: usize,
}

impl Alignment {
    /// Whether the alignment shows the same picture: enough agreeing points, each frame mostly
    /// covered by the other, the agreement spread over the shared area, and no part of the
    /// shared area where the query has content that does not agree.
    pub fn is_same_picture(&self) -> bool {
        self.agreeing >= MIN_AGREEING
            && self.query_coverage >= MIN_COVERAGE
            && self.stored_coverage >= MIN_COVERAGE
            && self.spread_cells >= MIN_SPREAD_CELLS
            && self.unexplained_cells == 0
    }
}

/// The best alignment of `query` with `stored` (plain, and mirrored if the query has mirrored
/// descriptors), or `None` if fewer than two matches propose one.
pub fn align(query: &Keypoints, stored: &Keypoints) -> Option<Alignment> {
    let plain = align_one(query, &query.descriptors, stored, false);
    let mirrored = query.has_mirrored().then(|| align_one(query, &query.mirrored, stored, true)).flatten();
    match (plain, mirrored) {
        (Some(a), Some(b)) => Some(if b.agreeing > a.agreeing { b } else { a }),
        (a, b) => a.or(b),
    }
}

/// For each query descriptor whose nearest stored descriptor is a match (within
/// [`MAX_DESCRIPTOR_DISTANCE`], and clearly nearer than the second nearest): its index, the
/// stored descriptor's index and the distance.
///
/// Every pair is measured, 65,536 distances for full sets: most of an alignment's time. With
/// the CPU's POPCNT instruction (not in the x86-64 baseline the crate is compiled for) that
/// time is 0.28 ms instead of 0.49 (criterion, `align/different-picture`), so it is used when
/// the CPU has it.
fn nearest(query: &[Descriptor], stored: &[Descriptor]) -> Vec<(usize, usize, u32)> {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("popcnt") {
        // SAFETY: `nearest_popcnt` only requires POPCNT, which the CPU was just checked to have.
        return unsafe { nearest_popcnt(query, stored) };
    }
    nearest_portable(query, stored)
}

/// [`nearest_portable`] compiled with POPCNT.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "popcnt")]
fn nearest_popcnt(query: &[Descriptor], stored: &[Descriptor]) -> Vec<(usize, usize, u32)> {
    nearest_portable(query, stored)
}

#[inline(always)]
fn nearest_portable(query: &[Descriptor], stored: &[Descriptor]) -> Vec<(usize, usize, u32)> {
    let mut found = Vec::new();
    for (index, descriptor) in query.iter().enumerate() {
        let (mut best, mut second, mut best_at) = (u32::MAX, u32::MAX, 0);
        for (at, candidate) in stored.iter().enumerate() {
            let distance = descriptor_distance(descriptor, candidate);
            if distance < best {
                (second, best, best_at) = (best, distance, at);
            } else if distance < second {
                second = distance;
            }
        }
        if best <= MAX_DESCRIPTOR_DISTANCE && (best as f32) < RATIO * second as f32 {
            found.push((index, best_at, best));
        }
    }
    found
}

/// A match: query point, stored point (fractions), descriptor distance.
type Pair = ([f32; 2], [f32; 2], u32);

/// A query point as a fraction of its frame, mirrored back if `mirrored`.
fn query_position(point: [u16; 2], mirrored: bool) -> [f32; 2] {
    let mut position = position(point);
    if mirrored {
        position[0] = 1.0 - position[0];
    }
    position
}

fn position(point: [u16; 2]) -> [f32; 2] {
    [f32::from(point[0]) / POSITION_SCALE, f32::from(point[1]) / POSITION_SCALE]
}

fn align_one(
    query: &Keypoints,
    descriptors: &[Descriptor],
    stored: &Keypoints,
    mirrored: bool,
) -> Option<Alignment> {
    let mut pairs: Vec<Pair> = nearest(descriptors, &stored.descriptors)
        .into_iter()
        .map(|(index, at, distance)| {
            (query_position(query.points[index], mirrored), position(stored.points[at]), distance)
        })
        .collect();
    // The closest descriptors propose; ties by position, so the answer does not depend on order.
    pairs.sort_by(|a, b| a.2.cmp(&b.2).then(a.0[0].total_cmp(&b.0[0])).then(a.0[1].total_cmp(&b.0[1])));
    let proposers = pairs.len().min(PROPOSERS);
    let mut best: Option<([f32; 2], [f32; 2], usize)> = None;
    for first in 0..proposers {
        for second in first + 1..proposers {
            let ((qa, sa, _), (qb, sb, _)) = (pairs[first], pairs[second]);
            let span = [qb[0] - qa[0], qb[1] - qa[1]];
            if span[0].abs() < MIN_SPAN || span[1].abs() < MIN_SPAN {
                continue;
            }
            let scale = [(sb[0] - sa[0]) / span[0], (sb[1] - sa[1]) / span[1]];
            if !SCALES.contains(&scale[0]) || !SCALES.contains(&scale[1]) {
                continue;
            }
            let shift = [sa[0] - scale[0] * qa[0], sa[1] - scale[1] * qa[1]];
            // Scored on the proposers only (a quarter of the work, measured); the winner is
            // counted on all matches below.
            let agreeing = pairs[..proposers].iter().filter(|pair| agrees(pair, scale, shift)).count();
            if best.is_none_or(|(_, _, most)| agreeing > most) {
                best = Some((scale, shift, agreeing));
            }
        }
    }
    let (scale, shift, _) = best?;
    let agreeing = pairs.iter().filter(|pair| agrees(pair, scale, shift)).count();
    // The query frame [0,1]² lands on [shift, shift + scale] in the stored frame.
    let low = [shift[0].max(0.0), shift[1].max(0.0)];
    let extent = |axis: usize| ((shift[axis] + scale[axis]).min(1.0) - low[axis]).max(0.0);
    let shared = extent(0) * extent(1);
    // Over a 4×4 grid on the shared area: where the agreeing matches are, and where query
    // points land that none explains.
    let cell_of = |at: [f32; 2]| -> Option<usize> {
        let share = |axis: usize| (at[axis] - low[axis]) / extent(axis).max(f32::EPSILON);
        let (x, y) = (share(0), share(1));
        ((0.0..1.0).contains(&x) && (0.0..1.0).contains(&y))
            .then(|| (y * 4.0) as usize * 4 + (x * 4.0) as usize)
    };
    let mut agreeing_in = [0usize; 16];
    for pair in pairs.iter().filter(|pair| agrees(pair, scale, shift)) {
        if let Some(cell) = cell_of(pair.1) {
            agreeing_in[cell] += 1;
        }
    }
    // A query point is explained when a stored point near where the alignment puts it has a
    // close descriptor, whether or not it was the point's best match overall (repeated
    // texture fails the ratio test but is still the same content).
    let mut points_in = [0usize; 16];
    let mut explained_in = [0usize; 16];
    let query_descriptors = if mirrored { &query.mirrored } else { &query.descriptors };
    for (&point, descriptor) in query.points.iter().zip(query_descriptors) {
        let at = query_position(point, mirrored);
        let mapped = [scale[0] * at[0] + shift[0], scale[1] * at[1] + shift[1]];
        let Some(cell) = cell_of(mapped) else { continue };
        points_in[cell] += 1;
        let explained =
            stored.points.iter().zip(&stored.descriptors).any(|(&candidate, stored_descriptor)| {
                let candidate = position(candidate);
                (0..2).all(|axis| (candidate[axis] - mapped[axis]).abs() <= 2.0 * TOLERANCE)
                    && descriptor_distance(descriptor, stored_descriptor) <= EXPLAINED_DESCRIPTOR_DISTANCE
            });
        if explained {
            explained_in[cell] += 1;
        }
    }
    let unexplained_cells = (0..16)
        .filter(|&cell| {
            points_in[cell] >= UNEXPLAINED_MIN_POINTS
                && (explained_in[cell] as f32) < UNEXPLAINED_SHARE * points_in[cell] as f32
        })
        .count();
    Some(Alignment {
        agreeing,
        mirrored,
        scale,
        shift,
        query_coverage: shared / (scale[0] * scale[1]),
        stored_coverage: shared,
        spread_cells: agreeing_in.iter().filter(|&&count| count > 0).count(),
        unexplained_cells,
    })
}

fn agrees(pair: &Pair, scale: [f32; 2], shift: [f32; 2]) -> bool {
    let (query, stored, _) = pair;
    (0..2).all(|axis| (scale[axis] * query[axis] + shift[axis] - stored[axis]).abs() <= TOLERANCE)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A seeded picture with corners everywhere: value noise plus rectangles.
    fn picture(seed: u64, width: usize, height: usize) -> Vec<u8> {
        let mut state = seed.wrapping_mul(0x2545_F491_4F6C_DD1D) | 1;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let grid: Vec<u8> = (0..17 * 17).map(|_| next() as u8).collect();
        let rects: Vec<[usize; 5]> = (0..40)
            .map(|_| {
                let (x, y) = (next() as usize % width, next() as usize % height);
                [
                    x,
                    y,
                    8 + next() as usize % (width / 5),
                    8 + next() as usize % (height / 5),
                    next() as usize % 256,
                ]
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

    fn crop(rgb: &[u8], width: usize, edges: [usize; 4]) -> (Vec<u8>, usize, usize) {
        let height = rgb.len() / 3 / width;
        let [left, top, right, bottom] = edges;
        let (kept_width, kept_height) = (width - left - right, height - top - bottom);
        let mut out = Vec::with_capacity(kept_width * kept_height * 3);
        for y in top..height - bottom {
            out.extend_from_slice(&rgb[(y * width + left) * 3..(y * width + width - right) * 3]);
        }
        (out, kept_width, kept_height)
    }

    fn mirror(rgb: &[u8], width: usize) -> Vec<u8> {
        rgb.chunks_exact(width * 3).flat_map(|row| row.chunks_exact(3).rev().flatten().copied()).collect()
    }

    #[test]
    fn crops_and_mirror_images_are_the_same_picture_and_others_are_not() {
        let (width, height) = (480, 360);
        let pictures: Vec<Vec<u8>> = (1..=6).map(|seed| picture(seed, width, height)).collect();
        let stored: Vec<Keypoints> =
            pictures.iter().map(|rgb| Keypoints::from_rgb(rgb, width, height).without_mirrored()).collect();
        for (number, rgb) in pictures.iter().enumerate() {
            assert!(stored[number].len() > 100, "a textured picture has many keypoints");
            for edges in [[5, 4, 19, 14], [24, 18, 0, 0], [10, 3, 10, 3], [0, 0, 0, 0]] {
                let (cropped, w, h) = crop(rgb, width, edges);
                for (query, mirrored) in [
                    (Keypoints::from_rgb(&cropped, w, h), false),
                    (Keypoints::from_rgb(&mirror(&cropped, w), w, h), true),
                ] {
                    for (other, stored) in stored.iter().enumerate() {
                        let alignment = align(&query, stored);
                        let same = alignment.is_some_and(|a| a.is_same_picture());
                        assert_eq!(
                            same,
                            other == number,
                            "picture {number} cut {edges:?} against {other}: {alignment:?}"
                        );
                        if other == number {
                            let alignment = alignment.unwrap();
                            assert_eq!(alignment.mirrored, mirrored);
                            // The alignment is the crop: the query's left edge lands at left/width.
                            // (A mirrored query is mirrored back before it is aligned.)
                            assert!(
                                (alignment.shift[0] - edges[0] as f32 / width as f32).abs() < 0.01,
                                "{alignment:?}"
                            );
                            assert!((alignment.shift[1] - edges[1] as f32 / height as f32).abs() < 0.01);
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn a_picture_inside_a_collage_is_not_the_same_picture() {
        let (width, height) = (480, 360);
        let (a, b) = (picture(11, width, height), picture(12, width, height));
        // The collage: the left 60% of `a` beside the right 40% of `b`.
        let split = width * 6 / 10;
        let collage: Vec<u8> = (0..height)
            .flat_map(|y| {
                let row = |rgb: &[u8], from: usize, to: usize| {
                    rgb[(y * width + from) * 3..(y * width + to) * 3].to_vec()
                };
                [row(&a, 0, split), row(&b, split, width)].concat()
            })
            .collect();
        let stored_a = Keypoints::from_rgb(&a, width, height).without_mirrored();
        let query = Keypoints::from_rgb(&collage, width, height);
        let alignment = align(&query, &stored_a).expect("part of it aligns");
        assert!(alignment.agreeing >= MIN_AGREEING, "the shared part does agree: {alignment:?}");
        assert!(!alignment.is_same_picture(), "{alignment:?}");
        // Nor the other way round: the collage stored, `a` queried.
        let stored_collage = Keypoints::from_rgb(&collage, width, height).without_mirrored();
        let alignment = align(&Keypoints::from_rgb(&a, width, height), &stored_collage).unwrap();
        assert!(!alignment.is_same_picture(), "{alignment:?}");
    }

    #[test]
    fn a_shared_watermark_is_not_the_same_picture() {
        let (width, height) = (480, 360);
        let stamp = picture(99, width, height);
        let marked = |seed: u64| {
            let mut rgb = picture(seed, width, height);
            // The bottom-right eighth of every picture is the same stamp.
            for y in height * 3 / 4..height {
                for x in width / 2..width {
                    let at = (y * width + x) * 3;
                    rgb[at..at + 3].copy_from_slice(&stamp[at..at + 3]);
                }
            }
            rgb
        };
        let stored = Keypoints::from_rgb(&marked(21), width, height).without_mirrored();
        let query = Keypoints::from_rgb(&marked(22), width, height);
        let alignment = align(&query, &stored).expect("the stamps align");
        assert!(alignment.agreeing >= 10, "the stamps agree: {alignment:?}");
        assert!(!alignment.is_same_picture(), "{alignment:?}");
    }

    #[test]
    fn bytes_round_trip_and_bad_bytes_are_refused() {
        let (width, height) = (200, 150);
        let set = Keypoints::from_rgb(&picture(3, width, height), width, height);
        assert!(set.has_mirrored() && !set.is_empty());
        assert_eq!(Keypoints::from_bytes(&set.to_bytes()).unwrap(), set);
        let stored = set.clone().without_mirrored();
        let bytes = stored.to_bytes();
        assert_eq!(bytes.len(), HEADER + stored.len() * 36);
        assert_eq!(Keypoints::from_bytes(&bytes).unwrap(), stored);
        assert_eq!(Keypoints::from_bytes(&[]), Err(ParseKeypointsError::Header));
        assert_eq!(Keypoints::from_bytes(b"HSKP\x02\x00\x00\x00"), Err(ParseKeypointsError::Header));
        assert_eq!(Keypoints::from_bytes(b"HSKP\x01\x04\x00\x00"), Err(ParseKeypointsError::Flags(4)));
        assert_eq!(Keypoints::from_bytes(b"HSKP\x01\x00\x01\x01"), Err(ParseKeypointsError::TooMany(257)));
        assert_eq!(
            Keypoints::from_bytes(&bytes[..bytes.len() - 1]),
            Err(ParseKeypointsError::Length {
                points: stored.len(),
                expected: bytes.len(),
                found: bytes.len() - 1
            })
        );
        assert_eq!(Keypoints::from_bytes(b"HSKP\x01\x00\x00\x00").unwrap(), Keypoints::default());
    }

    #[test]
    fn small_and_flat_images_have_no_keypoints_and_align_with_nothing() {
        assert!(Keypoints::from_rgb(&[7; 40 * 30 * 3], 40, 30).is_empty());
        let flat = Keypoints::from_rgb(&vec![128; 400 * 300 * 3], 400, 300);
        assert!(flat.is_empty());
        let textured = Keypoints::from_rgb(&picture(5, 400, 300), 400, 300);
        assert_eq!(align(&flat, &textured), None);
        assert_eq!(align(&textured, &flat), None);
    }

    /// The matching the CPU's POPCNT speeds up finds what the portable code finds, for the same
    /// picture (many matches) and for different ones (few).
    #[test]
    fn nearest_matches_are_the_same_with_and_without_popcnt() {
        let (width, height) = (320, 240);
        let sets: Vec<Keypoints> =
            (11..=13).map(|seed| Keypoints::from_rgb(&picture(seed, width, height), width, height)).collect();
        let crop = picture(11, width, height)
            .chunks_exact(width * 3)
            .skip(9)
            .flat_map(|row| row[3 * 7..].to_vec())
            .collect::<Vec<u8>>();
        let query = Keypoints::from_rgb(&crop, width - 7, height - 9);
        let mut compared = 0;
        for stored in &sets {
            for descriptors in [query.descriptors(), query.mirrored_descriptors()] {
                let portable = nearest_portable(descriptors, stored.descriptors());
                assert_eq!(nearest(descriptors, stored.descriptors()), portable);
                compared += portable.len();
            }
        }
        assert!(compared > MIN_AGREEING, "the crop matches its picture: {compared} matches");
    }
}
