//! Wellbeing previews: the picture an analyst is shown, revealed a step at a time.
//!
//! People who review reported imagery are harmed by what they see, and the harm grows with how
//! much of it they see, how sharply and in what colour. Tools for this work therefore show an
//! image small, greyscale and blurred at first, and let the analyst ask for more only as far as
//! the decision needs: often the outline of a blurred picture, or its greyscale, is enough to
//! tell that it is a screenshot, a cartoon or a duplicate. When the analyst moves on to the next
//! item, the page goes back to the first step.
//!
//! [`RevealStep`] names the steps, in order:
//!
//! | step | size | colour | blur |
//! |---|---|---|---|
//! | [`Blurred`](RevealStep::Blurred) | small | grey | strong: shapes and tones, nothing recognisable |
//! | [`Softened`](RevealStep::Softened) | small | grey | light: the scene, no detail |
//! | [`Greyscale`](RevealStep::Greyscale) | small | grey | none |
//! | [`Colour`](RevealStep::Colour) | small | colour | none |
//! | [`FullSize`](RevealStep::FullSize) | the whole image (up to a cap) | colour | none |
//!
//! Colour is held back longest among the small steps because it is what makes injuries and
//! skin read as real; blur comes off before it because without detail a greyscale picture
//! rarely says enough to decide.
//!
//! [`render`] makes one step's [`Preview`] from an image's bytes, entirely in memory: it decodes
//! with the crate's bounded decoder ([`decode_rgb`] under [`PreviewOptions::limits`], so hostile
//! input costs bounded time and memory and gives an error), scales the picture down to fit a
//! small box ([`PreviewOptions::max_side`]), takes its luma for the grey steps, blurs, and
//! encodes to JPEG or PNG ([`PreviewFormat`]). Nothing is written to disk or logged, and the
//! original bytes are never passed through — even [`FullSize`](RevealStep::FullSize) is
//! re-encoded from the decoded pixels, which drops whatever metadata the file carried.
//! [`render_decoded`] does the same from an image already decoded.
//!
//! The blur is a box blur run three times over the rows and three times over the columns:
//! three passes of a box filter approximate a Gaussian (the central limit theorem, in
//! miniature), and each pass costs the same per pixel whatever the radius. Because it runs on
//! the small picture, the step costs about the same for any input size; decoding dominates.
//! Radii are given for a preview [`max_side`](PreviewOptions::max_side) long and scaled down
//! with smaller previews, so a small image is as blurred as a large one.
//!
//! The pixels shown are the pixels hashed: [`decode_rgb`]'s, which drop alpha (a transparent
//! area shows its stored colour) and do not apply EXIF orientation.
//!
//! # Example
//!
//! ```
//! use hashsieve_core::preview::{PreviewOptions, RevealStep, render};
//!
//! let photo = include_bytes!("../../../samples/images/labelme-q0291.png");
//! let options = PreviewOptions::default();
//!
//! // The review page starts every item here …
//! let mut step = RevealStep::FIRST;
//! let preview = render(photo, step, &options)?;
//! assert_eq!(preview.content_type, "image/jpeg");
//! assert!(preview.width.max(preview.height) <= options.max_side);
//!
//! // … and reveals more each time the analyst asks.
//! step = step.next().unwrap();
//! assert_eq!(step, RevealStep::Softened);
//! assert_eq!("full-size".parse(), Ok(RevealStep::FullSize));
//! let full = render(photo, RevealStep::FullSize, &options)?;
//! assert_eq!((full.width, full.height), (256, 256));
//! # Ok::<(), hashsieve_core::preview::PreviewError>(())
//! ```

#![forbid(unsafe_code)]

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::ExtendedColorType;
use image::ImageEncoder;
use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::{self, PngEncoder};

use crate::decode::{DecodeError, DecodeLimits, RgbImage, decode_rgb};

/// How much of an image a preview shows, from least to most. Ordered: a later step reveals
/// more than an earlier one (`Blurred < FullSize`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum RevealStep {
    /// Small, greyscale and strongly blurred: light and dark areas and the rough layout, with
    /// no shape recognisable. Where every item starts.
    #[default]
    Blurred,
    /// Small, greyscale and lightly blurred: the scene and the figures in it, without detail.
    Softened,
    /// Small and greyscale, sharp.
    Greyscale,
    /// Small, in colour, sharp.
    Colour,
    /// The whole image in colour, at its own size up to
    /// [`PreviewOptions::full_size_max_side`].
    FullSize,
}

impl RevealStep {
    /// Every step, in the order they are revealed.
    pub const ALL: [RevealStep; 5] = [
        RevealStep::Blurred,
        RevealStep::Softened,
        RevealStep::Greyscale,
        RevealStep::Colour,
        RevealStep::FullSize,
    ];

    /// The step every item starts at, and goes back to when the analyst moves on.
    pub const FIRST: RevealStep = RevealStep::Blurred;

    /// The step that reveals the next bit more; `None` after [`FullSize`](RevealStep::FullSize).
    pub fn next(self) -> Option<RevealStep> {
        match self {
            RevealStep::Blurred => Some(RevealStep::Softened),
            RevealStep::Softened => Some(RevealStep::Greyscale),
            RevealStep::Greyscale => Some(RevealStep::Colour),
            RevealStep::Colour => Some(RevealStep::FullSize),
            RevealStep::FullSize => None,
        }
    }

    /// The step's name in URLs and audit records: `blurred`, `softened`, `greyscale`, `colour`
    /// or `full-size`. Stable: records written with it must still parse.
    pub fn as_str(self) -> &'static str {
        match self {
            RevealStep::Blurred => "blurred",
            RevealStep::Softened => "softened",
            RevealStep::Greyscale => "greyscale",
            RevealStep::Colour => "colour",
            RevealStep::FullSize => "full-size",
        }
    }

    /// Whether the step shows the picture without colour.
    pub fn is_greyscale(self) -> bool {
        self <= RevealStep::Greyscale
    }
}

impl fmt::Display for RevealStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not one of [`RevealStep::as_str`]'s.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown reveal step {0:?} (expected blurred, softened, greyscale, colour or full-size)")]
pub struct ParseRevealStepError(String);

impl FromStr for RevealStep {
    type Err = ParseRevealStepError;

    /// The step named by [`RevealStep::as_str`], exactly (names are lower case).
    fn from_str(name: &str) -> Result<RevealStep, ParseRevealStepError> {
        RevealStep::ALL.into_iter().find(|step| step.as_str() == name).ok_or_else(|| {
            // Echo a bounded part of the input: it comes from a URL.
            ParseRevealStepError(name.chars().take(32).collect())
        })
    }
}

/// The encoding of a preview.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreviewFormat {
    /// JPEG at a quality from 1 to 100. Small and quick for photographs; a greyscale step is a
    /// one-channel JPEG.
    Jpeg {
        /// 1 (smallest) to 100 (best).
        quality: u8,
    },
    /// PNG, fast compression: lossless, larger, and slower to encode at full size.
    Png,
}

impl PreviewFormat {
    /// The media type of the encoded bytes, for a `Content-Type` header.
    pub fn content_type(self) -> &'static str {
        match self {
            PreviewFormat::Jpeg { .. } => "image/jpeg",
            PreviewFormat::Png => "image/png",
        }
    }
}

impl Default for PreviewFormat {
    /// JPEG at quality 85.
    fn default() -> Self {
        PreviewFormat::Jpeg { quality: 85 }
    }
}

/// How previews are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PreviewOptions {
    /// Longest side of the small steps (all but [`FullSize`](RevealStep::FullSize)), in
    /// pixels. Images are scaled down to fit, never up.
    pub max_side: u32,
    /// Longest side of [`FullSize`](RevealStep::FullSize): larger images are scaled down to
    /// it, so that the page never receives more pixels than a screen shows.
    pub full_size_max_side: u32,
    /// Blur radius of [`Blurred`](RevealStep::Blurred), in pixels of a preview `max_side`
    /// long (scaled with a smaller preview). Three box passes of radius `r` make a blur of
    /// standard deviation √(r(r+1)), about `r + ½`.
    pub blurred_radius: u32,
    /// Blur radius of [`Softened`](RevealStep::Softened), as for `blurred_radius`.
    pub softened_radius: u32,
    /// The encoding.
    pub format: PreviewFormat,
    /// What is decoded at all.
    pub limits: DecodeLimits,
}

impl Default for PreviewOptions {
    /// Small steps 256 pixels on the longest side, full size capped at 4096; blur radius 16
    /// (a sixteenth of the preview: features smaller than about a tenth of the picture are
    /// gone, which takes faces and hands) and 3 (the layout and figures are readable, detail
    /// is not); JPEG at quality 85; the decoder's default limits.
    fn default() -> Self {
        PreviewOptions {
            max_side: 256,
            full_size_max_side: 4096,
            blurred_radius: 16,
            softened_radius: 3,
            format: PreviewFormat::default(),
            limits: DecodeLimits::default(),
        }
    }
}

impl PreviewOptions {
    /// The blur radius of `step` for a preview whose longest side is `side`: 0 for the sharp
    /// steps.
    fn radius(&self, step: RevealStep, side: u32) -> u32 {
        let radius = match step {
            RevealStep::Blurred => self.blurred_radius,
            RevealStep::Softened => self.softened_radius,
            _ => 0,
        };
        if radius == 0 || side >= self.max_side {
            return radius;
        }
        // At least 1: a tiny image shown at a blurred step is still blurred.
        ((u64::from(radius) * u64::from(side) + u64::from(self.max_side) / 2) / u64::from(self.max_side))
            .max(1) as u32
    }

    fn check(&self) -> Result<(), PreviewError> {
        if self.max_side == 0 || self.full_size_max_side == 0 {
            return Err(PreviewError::InvalidOptions("a preview's longest side must be at least 1 pixel"));
        }
        if let PreviewFormat::Jpeg { quality } = self.format
            && !(1..=100).contains(&quality)
        {
            return Err(PreviewError::InvalidOptions("JPEG quality must be from 1 to 100"));
        }
        Ok(())
    }
}

/// An encoded preview.
#[derive(Clone, PartialEq, Eq)]
pub struct Preview {
    /// The encoded image.
    pub bytes: Vec<u8>,
    /// Its media type: `image/jpeg` or `image/png`.
    pub content_type: &'static str,
    /// Its width in pixels.
    pub width: u32,
    /// Its height in pixels.
    pub height: u32,
}

impl fmt::Debug for Preview {
    /// Says how many bytes, never what they are: a preview is content, and a `{:?}` in a log
    /// line must not put it there.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Preview")
            .field("bytes", &format_args!("<{} bytes>", self.bytes.len()))
            .field("content_type", &self.content_type)
            .field("width", &self.width)
            .field("height", &self.height)
            .finish()
    }
}

/// Why a preview could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PreviewError {
    /// The input is not an image that can be decoded within the limits.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// [`PreviewOptions`] that cannot make a preview.
    #[error("invalid preview options: {0}")]
    InvalidOptions(&'static str),
    /// An [`RgbImage`] whose pixel buffer does not match its size.
    #[error("an RGB image of {width}x{height} pixels holds {len} bytes, not width × height × 3")]
    PixelCount {
        /// Its width.
        width: u32,
        /// Its height.
        height: u32,
        /// The length of its pixel buffer.
        len: usize,
    },
    /// The encoder failed (it does not on the buffers given to it; reported rather than
    /// trusted).
    #[error("encoding the preview failed: {0}")]
    Encode(String),
}

/// Makes the preview of the image in `bytes` at `step`: decoded within
/// [`PreviewOptions::limits`], then as [`render_decoded`].
pub fn render(bytes: &[u8], step: RevealStep, options: &PreviewOptions) -> Result<Preview, PreviewError> {
    options.check()?;
    let image = decode_rgb(bytes, &options.limits)?;
    render_decoded(&image, step, options)
}

/// Makes the preview of a decoded image at `step`: scaled to fit the step's box, greyscale and
/// blurred as the step says, and encoded.
pub fn render_decoded(
    image: &RgbImage,
    step: RevealStep,
    options: &PreviewOptions,
) -> Result<Preview, PreviewError> {
    options.check()?;
    let (width, height) = (image.width, image.height);
    if image.pixels.len() as u64 != u64::from(width) * u64::from(height) * 3 || width == 0 || height == 0 {
        return Err(PreviewError::PixelCount { width, height, len: image.pixels.len() });
    }
    let side = if step == RevealStep::FullSize { options.full_size_max_side } else { options.max_side };
    let (out_width, out_height) = fit(width, height, side);
    let rgb = scale(image, out_width, out_height)?;
    let (pixels, colour) = if step.is_greyscale() {
        let mut grey = luma(&rgb);
        let radius = options.radius(step, out_width.max(out_height));
        if radius > 0 {
            blur(&mut grey, out_width as usize, out_height as usize, radius as usize);
        }
        (Cow::Owned(grey), ExtendedColorType::L8)
    } else {
        (rgb, ExtendedColorType::Rgb8)
    };
    let bytes = encode(&pixels, out_width, out_height, colour, options.format)?;
    Ok(Preview { bytes, content_type: options.format.content_type(), width: out_width, height: out_height })
}

/// The size of `width × height` scaled down to fit a `side × side` box, keeping the aspect
/// ratio; unchanged if it fits.
fn fit(width: u32, height: u32, side: u32) -> (u32, u32) {
    let longest = width.max(height);
    if longest <= side {
        return (width, height);
    }
    let scaled = |length: u32| {
        ((u64::from(length) * u64::from(side) + u64::from(longest) / 2) / u64::from(longest)).max(1) as u32
    };
    (scaled(width), scaled(height))
}

/// The image's pixels at `width × height`: borrowed if that is its size.
///
/// Scaling is a convolution as wide as the scale (so that shrinking does not alias) with
/// `fast_image_resize`'s Hamming filter: the cost of a bilinear filter, the sharpness of a
/// bicubic one when shrinking, and SIMD code for the one step that reads every pixel.
fn scale(image: &RgbImage, width: u32, height: u32) -> Result<Cow<'_, [u8]>, PreviewError> {
    if (width, height) == (image.width, image.height) {
        return Ok(Cow::Borrowed(&image.pixels));
    }
    let internal = |err: &dyn fmt::Display| PreviewError::Encode(format!("scaling: {err}"));
    let source =
        ImageRef::new(image.width, image.height, &image.pixels, PixelType::U8x3).map_err(|e| internal(&e))?;
    let mut scaled = Image::new(width, height, PixelType::U8x3);
    let hamming = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Hamming));
    Resizer::new().resize(&source, &mut scaled, &hamming).map_err(|e| internal(&e))?;
    Ok(Cow::Owned(scaled.into_vec()))
}

/// BT.601 luma of RGB pixels, as PDQ and the keypoints take it, in 8-bit fixed point
/// (weights 77, 150, 29 of 256).
fn luma(rgb: &[u8]) -> Vec<u8> {
    rgb.chunks_exact(3)
        .map(|p| ((77 * u32::from(p[0]) + 150 * u32::from(p[1]) + 29 * u32::from(p[2]) + 128) >> 8) as u8)
        .collect()
}

/// Blurs a one-channel image in place: three box passes of `radius` over the rows, then three
/// over the columns, approximating a Gaussian of standard deviation √(radius(radius+1)).
/// Pixels beyond the edge repeat the edge. Each pass is a running sum, so the cost does not
/// depend on the radius.
fn blur(plane: &mut [u8], width: usize, height: usize, radius: usize) {
    let mut line = Vec::with_capacity(width.max(height));
    for row in plane.chunks_exact_mut(width) {
        for _ in 0..3 {
            line.clear();
            line.extend_from_slice(row);
            box_line(&line, row, radius);
        }
    }
    let mut scratch = vec![0u8; plane.len()];
    let mut sums = vec![0u32; width];
    for _ in 0..3 {
        scratch.copy_from_slice(plane);
        box_columns(&scratch, plane, width, height, radius, &mut sums);
    }
}

/// One box pass along a line: `out[i]` is the rounded mean of `src[i - radius ..= i + radius]`,
/// indices clamped to the line.
fn box_line(src: &[u8], out: &mut [u8], radius: usize) {
    let n = src.len();
    // A window wider than the line only adds more copies of the edges; capping it keeps the
    // start-up sum below linear in the radius.
    let radius = radius.min(n);
    let window = 2 * radius as u32 + 1;
    let at = |i: isize| u32::from(src[i.clamp(0, n as isize - 1) as usize]);
    let mut sum: u32 = (-(radius as isize)..=radius as isize).map(at).sum();
    for (i, value) in out.iter_mut().enumerate() {
        *value = ((sum + window / 2) / window) as u8;
        let i = i as isize;
        sum = sum + at(i + radius as isize + 1) - at(i - radius as isize);
    }
}

/// One box pass down every column of a `width × height` image, a row at a time (so memory is
/// read in order), keeping each column's running sum in `sums`.
fn box_columns(src: &[u8], out: &mut [u8], width: usize, height: usize, radius: usize, sums: &mut [u32]) {
    let radius = radius.min(height);
    let window = 2 * radius as u32 + 1;
    let row = |y: isize| {
        let y = y.clamp(0, height as isize - 1) as usize;
        &src[y * width..(y + 1) * width]
    };
    sums.fill(0);
    for y in -(radius as isize)..=radius as isize {
        for (sum, &value) in sums.iter_mut().zip(row(y)) {
            *sum += u32::from(value);
        }
    }
    for (y, out_row) in out.chunks_exact_mut(width).enumerate() {
        let y = y as isize;
        let (entering, leaving) = (row(y + radius as isize + 1), row(y - radius as isize));
        for (((value, sum), &enter), &leave) in
            out_row.iter_mut().zip(sums.iter_mut()).zip(entering).zip(leaving)
        {
            *value = ((*sum + window / 2) / window) as u8;
            *sum = *sum + u32::from(enter) - u32::from(leave);
        }
    }
}

fn encode(
    pixels: &[u8],
    width: u32,
    height: u32,
    colour: ExtendedColorType,
    format: PreviewFormat,
) -> Result<Vec<u8>, PreviewError> {
    let mut bytes = Vec::new();
    let result = match format {
        PreviewFormat::Jpeg { quality } => {
            JpegEncoder::new_with_quality(&mut bytes, quality).write_image(pixels, width, height, colour)
        }
        PreviewFormat::Png => {
            PngEncoder::new_with_quality(&mut bytes, png::CompressionType::Fast, png::FilterType::Adaptive)
                .write_image(pixels, width, height, colour)
        }
    };
    result.map_err(|err| PreviewError::Encode(err.to_string()))?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The box pass against its definition, summed directly.
    #[test]
    fn a_box_pass_is_the_clamped_window_mean() {
        let src: Vec<u8> = (0..23u32).map(|i| (i * 37 % 251) as u8).collect();
        for radius in [0, 1, 2, 5, 22, 23, 40] {
            let mut out = vec![0; src.len()];
            box_line(&src, &mut out, radius);
            let capped = radius.min(src.len()) as isize;
            for (i, &value) in out.iter().enumerate() {
                let i = i as isize;
                let sum: u32 = (i - capped..=i + capped)
                    .map(|j| u32::from(src[j.clamp(0, src.len() as isize - 1) as usize]))
                    .sum();
                let window = 2 * capped as u32 + 1;
                assert_eq!(u32::from(value), (sum + window / 2) / window, "radius {radius} at {i}");
            }
        }
    }

    /// Columns are lines too: transposing, blurring rows, and transposing back agrees.
    #[test]
    fn a_column_pass_equals_a_row_pass_of_the_transpose() {
        let (width, height) = (7, 19);
        let src: Vec<u8> = (0..width * height).map(|i| (i * 53 % 256) as u8).collect();
        for radius in [1, 4, 30] {
            let mut out = vec![0; src.len()];
            box_columns(&src, &mut out, width, height, radius, &mut vec![0; width]);
            for x in 0..width {
                let column: Vec<u8> = (0..height).map(|y| src[y * width + x]).collect();
                let mut expected = vec![0; height];
                box_line(&column, &mut expected, radius);
                let got: Vec<u8> = (0..height).map(|y| out[y * width + x]).collect();
                assert_eq!(got, expected, "radius {radius}, column {x}");
            }
        }
    }

    #[test]
    fn a_blur_keeps_a_flat_image_flat() {
        let mut plane = vec![77u8; 31 * 17];
        blur(&mut plane, 31, 17, 9);
        assert!(plane.iter().all(|&v| v == 77));
    }

    #[test]
    fn fitting_keeps_the_aspect_ratio_and_never_enlarges() {
        assert_eq!(fit(4000, 3000, 256), (256, 192));
        assert_eq!(fit(3000, 4000, 256), (192, 256));
        assert_eq!(fit(100, 50, 256), (100, 50));
        assert_eq!(fit(10_000, 1, 256), (256, 1));
    }

    #[test]
    fn radii_shrink_with_the_preview_but_not_to_nothing() {
        let options = PreviewOptions::default();
        assert_eq!(options.radius(RevealStep::Blurred, 256), 16);
        assert_eq!(options.radius(RevealStep::Blurred, 128), 8);
        assert_eq!(options.radius(RevealStep::Softened, 10), 1);
        assert_eq!(options.radius(RevealStep::Greyscale, 256), 0);
    }
}
