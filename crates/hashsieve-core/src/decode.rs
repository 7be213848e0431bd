//! Image decoding for hashing: content-sniffed, limited, and converted to RGB as Pillow does.
//!
//! Perceptual hash lists in circulation were made by Python tools that decode with Pillow and
//! call `convert('RGB')`, so the pixels we hash must be Pillow's pixels, not a nicer rendering:
//!
//! - **Alpha is dropped**, not composited over a background: a fully transparent pixel keeps
//!   its stored colour.
//! - **Grey** becomes R = G = B. **16-bit grey** (Pillow's `I;16`) is clipped to 255, so values
//!   above 255 turn white — Pillow's behaviour, surprising as it is. **16-bit colour** keeps the
//!   high byte of each sample.
//! - **Palette** images take their palette colours.
//! - **CMYK and YCCK JPEGs** become RGB with the inverted Adobe storage undone and
//!   `R = (255 − C)(255 − K)/255`: Pillow's formula, with rounding that differs by at most one
//!   level. JPEG decoders differ by a few levels anyway (IDCT rounding), so JPEG pixels match
//!   Pillow's within a tolerance, never bit for bit; lossless formats match exactly.
//! - **EXIF orientation is not applied**: lists are made from the stored pixels, and rotated
//!   or mirrored copies are found through PDQ's dihedral variants instead.
//!
//! The format is detected from the content's magic bytes, never from a file name. Width, height
//! and pixel count are checked against [`DecodeLimits`] from the header, before any pixel
//! buffer is allocated, and the decoder's own allocations are capped too, so a decompression
//! bomb costs a header parse. A decoder that panics on hostile input is caught and reported as
//! an error: this crate's callers hash untrusted uploads and must keep running.

use std::io::Cursor;
use std::panic::{AssertUnwindSafe, catch_unwind};

use image::{DynamicImage, ImageDecoder, ImageError, ImageFormat, ImageReader};

/// Limits on what is decoded. Checked from the image header before pixels are allocated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Widest image decoded, in pixels.
    pub max_width: u32,
    /// Tallest image decoded, in pixels.
    pub max_height: u32,
    /// Largest image decoded, in pixels (width × height).
    pub max_pixels: u64,
    /// Most memory a decoder may allocate, in bytes.
    pub max_alloc_bytes: u64,
}

impl Default for DecodeLimits {
    /// 100 megapixels (a 12,000 × 8,000 photograph fits), 65,535 pixels on a side, and 1 GiB
    /// of decoder allocations: room for any real photograph, none for a bomb.
    fn default() -> Self {
        DecodeLimits {
            max_width: 65_535,
            max_height: 65_535,
            max_pixels: 100_000_000,
            max_alloc_bytes: 1 << 30,
        }
    }
}

/// Why an input could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Zero bytes.
    #[error("empty input")]
    Empty,
    /// The bytes do not start like any supported format.
    #[error("not an image in a supported format (JPEG, PNG, GIF, WebP, BMP, TIFF)")]
    UnknownFormat,
    /// A format that is recognised but not decoded for hashing.
    #[error("{format} images are not decoded")]
    Unsupported {
        /// The detected format.
        format: String,
    },
    /// The header declares an image larger than the limits.
    #[error("{format} image of {width}x{height} pixels is over the limit ({limit})")]
    TooLarge {
        /// The detected format.
        format: &'static str,
        /// Declared width.
        width: u32,
        /// Declared height.
        height: u32,
        /// Which limit, with its value.
        limit: String,
    },
    /// Decoding would allocate more than [`DecodeLimits::max_alloc_bytes`].
    #[error("{format} image needs more than the {limit}-byte memory limit to decode")]
    MemoryLimit {
        /// The detected format.
        format: &'static str,
        /// The limit in bytes.
        limit: u64,
    },
    /// Truncated or corrupt data.
    #[error("malformed {format} image: {reason}")]
    Malformed {
        /// The detected format.
        format: &'static str,
        /// What the decoder reported.
        reason: String,
    },
    /// The decoder panicked on this input (a bug in the decoder, contained here).
    #[error("the {format} decoder failed on this input")]
    DecoderPanicked {
        /// The detected format.
        format: &'static str,
    },
}

/// A decoded image as 8-bit RGB, row-major, 3 bytes per pixel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RgbImage {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// The detected format: `jpeg`, `png`, `gif`, `webp`, `bmp` or `tiff`.
    pub format: &'static str,
    /// `width × height × 3` bytes.
    pub pixels: Vec<u8>,
}

fn format_name(format: ImageFormat) -> Option<&'static str> {
    Some(match format {
        ImageFormat::Jpeg => "jpeg",
        ImageFormat::Png => "png",
        ImageFormat::Gif => "gif",
        ImageFormat::WebP => "webp",
        ImageFormat::Bmp => "bmp",
        ImageFormat::Tiff => "tiff",
        _ => return None,
    })
}

/// The bytes this many long at the start of an input are enough for [`sniff_format`].
pub const SNIFF_BYTES: usize = 16;

/// The format an input is in, from its first [`SNIFF_BYTES`] bytes, if it is one this crate
/// decodes — so that a caller seeing only the start of a stream (an ICAP preview, say) can
/// tell an image whatever its declared type.
///
/// ```
/// use hashsieve_core::decode::sniff_format;
///
/// assert_eq!(sniff_format(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"), Some("png"));
/// assert_eq!(sniff_format(b"\xff\xd8\xff\xe0"), Some("jpeg"));
/// assert_eq!(sniff_format(b"<!doctype html>"), None);
/// ```
pub fn sniff_format(first_bytes: &[u8]) -> Option<&'static str> {
    image::guess_format(first_bytes).ok().and_then(format_name)
}

/// Decodes an image from memory to Pillow-compatible 8-bit RGB, within `limits`.
pub fn decode_rgb(bytes: &[u8], limits: &DecodeLimits) -> Result<RgbImage, DecodeError> {
    if bytes.is_empty() {
        return Err(DecodeError::Empty);
    }
    let format = image::guess_format(bytes).map_err(|_| DecodeError::UnknownFormat)?;
    let name =
        format_name(format).ok_or_else(|| DecodeError::Unsupported { format: format!("{format:?}") })?;
    // Decoders are third-party code fed hostile bytes; a panic in one must not take the
    // caller's process down with it.
    catch_unwind(AssertUnwindSafe(|| decode_known(bytes, format, name, limits)))
        .unwrap_or(Err(DecodeError::DecoderPanicked { format: name }))
}

/// The memory decoding `bytes` with [`decode_rgb`] takes at its peak, read from the image's
/// header without decoding it: the decoder's pixel buffer, plus the 8-bit RGB copy made from
/// it unless that buffer already is one. `None` when nothing would be decoded: not an image,
/// a header that does not parse, or an image over `limits`. A server admitting several
/// decodes at once sizes them by this before it starts any.
///
/// ```
/// use hashsieve_core::decode::{DecodeLimits, decode_memory};
///
/// assert_eq!(decode_memory(b"not an image", &DecodeLimits::default()), None);
/// ```
pub fn decode_memory(bytes: &[u8], limits: &DecodeLimits) -> Option<u64> {
    let format = image::guess_format(bytes).ok()?;
    let name = format_name(format)?;
    catch_unwind(AssertUnwindSafe(|| {
        let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
        let mut header_only = image::Limits::no_limits();
        header_only.max_alloc = Some(1 << 20);
        reader.limits(header_only);
        let decoder = reader.into_decoder().ok()?;
        let (width, height) = decoder.dimensions();
        check_dimensions(name, width, height, limits).ok()?;
        let rgb = u64::from(width) * u64::from(height) * 3;
        let copy = if decoder.color_type() == image::ColorType::Rgb8 { 0 } else { rgb };
        Some(decoder.total_bytes() + copy)
    }))
    .ok()
    .flatten()
}

fn decode_known(
    bytes: &[u8],
    format: ImageFormat,
    name: &'static str,
    limits: &DecodeLimits,
) -> Result<RgbImage, DecodeError> {
    let classify = |err: ImageError| match err {
        ImageError::Limits(_) => DecodeError::MemoryLimit { format: name, limit: limits.max_alloc_bytes },
        ImageError::Unsupported(e) => DecodeError::Malformed { format: name, reason: e.to_string() },
        ImageError::IoError(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            DecodeError::Malformed { format: name, reason: "truncated".to_string() }
        }
        other => DecodeError::Malformed { format: name, reason: other.to_string() },
    };
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    let mut decoder_limits = image::Limits::default();
    decoder_limits.max_image_width = Some(limits.max_width);
    decoder_limits.max_image_height = Some(limits.max_height);
    decoder_limits.max_alloc = Some(limits.max_alloc_bytes);
    reader.limits(decoder_limits);
    let decoder = reader.into_decoder().map_err(|err| match err {
        ImageError::Limits(_) => too_large_from_header(bytes, format, name, limits)
            .unwrap_or(DecodeError::MemoryLimit { format: name, limit: limits.max_alloc_bytes }),
        other => classify(other),
    })?;
    let (width, height) = decoder.dimensions();
    check_dimensions(name, width, height, limits)?;
    let image = DynamicImage::from_decoder(decoder).map_err(classify)?;
    Ok(RgbImage { width, height, format: name, pixels: pillow_rgb(image) })
}

fn check_dimensions(
    name: &'static str,
    width: u32,
    height: u32,
    limits: &DecodeLimits,
) -> Result<(), DecodeError> {
    let too_large = |limit: String| Err(DecodeError::TooLarge { format: name, width, height, limit });
    if width > limits.max_width {
        return too_large(format!("width {}", limits.max_width));
    }
    if height > limits.max_height {
        return too_large(format!("height {}", limits.max_height));
    }
    if u64::from(width) * u64::from(height) > limits.max_pixels {
        return too_large(format!("{} pixels", limits.max_pixels));
    }
    Ok(())
}

/// When the decoder refuses an image at its header, reports the declared size if it can be read
/// without the limits, so the error says what was refused.
fn too_large_from_header(
    bytes: &[u8],
    format: ImageFormat,
    name: &'static str,
    limits: &DecodeLimits,
) -> Option<DecodeError> {
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    let mut header_only = image::Limits::no_limits();
    header_only.max_alloc = Some(1 << 20);
    reader.limits(header_only);
    let (width, height) = reader.into_dimensions().ok()?;
    check_dimensions(name, width, height, limits).err()
}

/// Pillow's `convert('RGB')` for the layouts the decoders produce.
fn pillow_rgb(image: DynamicImage) -> Vec<u8> {
    match image {
        DynamicImage::ImageRgb8(buffer) => buffer.into_raw(),
        DynamicImage::ImageRgba8(buffer) => buffer.chunks_exact(4).flat_map(|p| [p[0], p[1], p[2]]).collect(),
        DynamicImage::ImageLuma8(buffer) => buffer.iter().flat_map(|&v| [v, v, v]).collect(),
        DynamicImage::ImageLumaA8(buffer) => {
            buffer.chunks_exact(2).flat_map(|p| [p[0], p[0], p[0]]).collect()
        }
        // Pillow opens 16-bit grey as I;16 and clips it to 8 bits on conversion.
        DynamicImage::ImageLuma16(buffer) => buffer.iter().flat_map(|&v| [v.min(255) as u8; 3]).collect(),
        DynamicImage::ImageLumaA16(buffer) => {
            buffer.chunks_exact(2).flat_map(|p| [(p[0] >> 8) as u8; 3]).collect()
        }
        // Pillow reads 16-bit colour samples by their high byte.
        DynamicImage::ImageRgb16(buffer) => buffer.iter().map(|&v| (v >> 8) as u8).collect(),
        DynamicImage::ImageRgba16(buffer) => buffer
            .chunks_exact(4)
            .flat_map(|p| [(p[0] >> 8) as u8, (p[1] >> 8) as u8, (p[2] >> 8) as u8])
            .collect(),
        other => other.to_rgb8().into_raw(),
    }
}
