//! `decode_memory` against what decoding really allocates: this test binary counts every
//! allocation, and the peak of live bytes while an image decodes must be what the estimate,
//! read from the header alone, said — for each pixel layout the decoders produce. A server
//! that admits decodes by the estimate relies on it never being short.
//!
//! One test in its own binary: the counter sees every thread's allocations.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Cursor;
use std::sync::atomic::{AtomicUsize, Ordering};

use hashsieve_core::decode::{DecodeLimits, decode_memory, decode_rgb};
use hashsieve_core::signals::{SignalOptions, SignalStream, Signals};
use image::{DynamicImage, ImageBuffer, ImageFormat, Luma, LumaA, Rgb, Rgba};

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is passed on to the system allocator unchanged; only sizes are counted.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let live = LIVE.fetch_add(layout.size(), Ordering::SeqCst) + layout.size();
        PEAK.fetch_max(live, Ordering::SeqCst);
        // SAFETY: the caller's contract is the system allocator's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::SeqCst);
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

/// The peak of bytes allocated beyond those live when `work` started.
fn peak_during<T>(work: impl FnOnce() -> T) -> (T, u64) {
    let before = LIVE.load(Ordering::SeqCst);
    PEAK.store(before, Ordering::SeqCst);
    let out = work();
    (out, (PEAK.load(Ordering::SeqCst) - before) as u64)
}

fn encode(image: DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut bytes = Vec::new();
    image.write_to(&mut Cursor::new(&mut bytes), format).unwrap();
    bytes
}

#[test]
fn the_estimate_read_from_the_header_bounds_what_decoding_allocates() {
    let (width, height) = (640, 480);
    let pattern = |x: u32, y: u32| ((x * 7 + y * 13) % 251) as u8;
    let images = [
        (
            "grey png",
            encode(
                DynamicImage::ImageLuma8(ImageBuffer::from_fn(width, height, |x, y| Luma([pattern(x, y)]))),
                ImageFormat::Png,
            ),
        ),
        (
            "grey-alpha png",
            encode(
                DynamicImage::ImageLumaA8(ImageBuffer::from_fn(width, height, |x, y| {
                    LumaA([pattern(x, y), 200])
                })),
                ImageFormat::Png,
            ),
        ),
        (
            "rgb png",
            encode(
                DynamicImage::ImageRgb8(ImageBuffer::from_fn(width, height, |x, y| {
                    Rgb([pattern(x, y), 3, 9])
                })),
                ImageFormat::Png,
            ),
        ),
        (
            "rgba png",
            encode(
                DynamicImage::ImageRgba8(ImageBuffer::from_fn(width, height, |x, y| {
                    Rgba([pattern(x, y), 3, 9, 99])
                })),
                ImageFormat::Png,
            ),
        ),
        (
            "16-bit rgba png",
            encode(
                DynamicImage::ImageRgba16(ImageBuffer::from_fn(width, height, |x, y| {
                    Rgba([u16::from(pattern(x, y)) << 8, 3, 9, 99])
                })),
                ImageFormat::Png,
            ),
        ),
        (
            "rgb jpeg",
            encode(
                DynamicImage::ImageRgb8(ImageBuffer::from_fn(width, height, |x, y| {
                    Rgb([pattern(x, y), 3, 9])
                })),
                ImageFormat::Jpeg,
            ),
        ),
        (
            "rgb bmp",
            encode(
                DynamicImage::ImageRgb8(ImageBuffer::from_fn(width, height, |x, y| {
                    Rgb([pattern(x, y), 3, 9])
                })),
                ImageFormat::Bmp,
            ),
        ),
    ];
    let limits = DecodeLimits::default();
    let pixels = u64::from(width * height);
    for (name, bytes) in &images {
        let estimate = decode_memory(bytes, &limits).unwrap_or_else(|| panic!("{name}: no estimate"));
        let (decoded, peak) = peak_during(|| decode_rgb(bytes, &limits).unwrap());
        assert_eq!(decoded.pixels.len() as u64, pixels * 3);
        // The pixel buffers are the estimate; decoders' own state (Huffman tables, zlib
        // windows, a row or two) comes on top and is small beside a picture.
        let slack = 512 << 10;
        assert!(peak <= estimate + slack, "{name}: decoding took {peak} bytes, the estimate said {estimate}");
        assert!(
            estimate >= pixels * 3 && estimate <= peak + slack,
            "{name}: estimate {estimate}, peak {peak}"
        );
        // The signals a server computes decode once and add little to the decode's peak.
        let options = SignalOptions::default();
        assert_eq!(Signals::decode_memory(bytes, &options), estimate);
        let (_, peak) = peak_during(|| Signals::from_bytes(bytes, &options));
        assert!(peak <= estimate + slack, "{name}: hashing took {peak} bytes, the estimate said {estimate}");
        let mut stream = SignalStream::new(options.clone());
        stream.update(bytes);
        assert_eq!(stream.decode_memory(), estimate, "{name}: streamed");
    }
    // Nothing to decode, nothing needed.
    assert_eq!(decode_memory(b"GIF89a but not really", &limits), None);
    assert_eq!(Signals::decode_memory(&images[0].1, &SignalOptions::digests_only(Default::default())), 0);
    let tight = DecodeLimits { max_pixels: pixels - 1, ..limits };
    assert_eq!(decode_memory(&images[0].1, &tight), None, "over the limits: it will not be decoded");
}
