//! Decoding: every format, Pillow-compatible conversion (against fixtures made with Pillow),
//! and hostile input — bombs, truncation, garbage — giving typed errors quickly.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hashsieve_core::decode::{DecodeError, DecodeLimits, decode_rgb};
use image::{DynamicImage, ImageFormat, RgbaImage};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn vectors() -> PathBuf {
    let dir = hashsieve_testkit::vectors().join("pdq");
    assert!(dir.is_dir(), "the PDQ reference vectors are missing: {}", dir.display());
    dir
}

/// A small RGBA test card: colour gradients, and a fully transparent corner whose stored
/// colour must survive (alpha is dropped, not composited).
fn test_card(width: u32, height: u32) -> RgbaImage {
    RgbaImage::from_fn(width, height, |x, y| {
        let alpha = if x < 4 && y < 4 { 0 } else { 255 };
        image::Rgba([(x * 7) as u8, (y * 11) as u8, ((x + y) * 3) as u8, alpha])
    })
}

fn encode(image: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut bytes = Vec::new();
    image.write_to(&mut Cursor::new(&mut bytes), format).unwrap();
    bytes
}

#[test]
fn every_supported_format_decodes_to_the_same_pixels_and_drops_alpha() {
    let card = test_card(40, 30);
    let rgb_expected: Vec<u8> = card.pixels().flat_map(|p| [p[0], p[1], p[2]]).collect();
    let rgba = DynamicImage::ImageRgba8(card.clone());
    let rgb = DynamicImage::ImageRgb8(rgba.to_rgb8());
    for (format, name, image) in [
        (ImageFormat::Png, "png", &rgba),
        (ImageFormat::Bmp, "bmp", &rgba),
        (ImageFormat::Tiff, "tiff", &rgba),
        (ImageFormat::WebP, "webp", &rgba),
        (ImageFormat::Bmp, "bmp", &rgb),
    ] {
        let decoded = decode_rgb(&encode(image, format), &DecodeLimits::default()).unwrap();
        assert_eq!((decoded.width, decoded.height, decoded.format), (40, 30, name));
        assert_eq!(decoded.pixels, rgb_expected, "{name}: lossless pixels, alpha dropped");
        assert_eq!(&decoded.pixels[..3], &[0, 0, 0], "{name}: transparent corner keeps its colour");
    }
    // GIF is quantised to a palette: exactly the palette colours the file holds.
    let gif = encode(&rgb, ImageFormat::Gif);
    let decoded = decode_rgb(&gif, &DecodeLimits::default()).unwrap();
    assert_eq!((decoded.width, decoded.height, decoded.format), (40, 30, "gif"));
    assert_eq!(decoded.pixels, image::load_from_memory(&gif).unwrap().to_rgb8().into_raw());
    // JPEG is lossy: pixels close.
    let decoded = decode_rgb(&encode(&rgb, ImageFormat::Jpeg), &DecodeLimits::default()).unwrap();
    assert_eq!((decoded.width, decoded.height, decoded.format), (40, 30, "jpeg"));
    let worst = decoded.pixels.iter().zip(&rgb_expected).map(|(a, b)| a.abs_diff(*b)).max().unwrap();
    assert!(worst <= 40, "jpeg: worst channel difference {worst}");
}

#[test]
fn grey_becomes_equal_channels() {
    let grey =
        DynamicImage::ImageLuma8(image::GrayImage::from_fn(9, 7, |x, y| image::Luma([(x * 20 + y) as u8])));
    let decoded = decode_rgb(&encode(&grey, ImageFormat::Png), &DecodeLimits::default()).unwrap();
    for (pixel, value) in decoded.pixels.chunks_exact(3).zip(grey.as_luma8().unwrap().iter()) {
        assert_eq!(pixel, [*value; 3]);
    }
}

/// `pillow-rgb.txt`: name, Pillow mode, width, height, hex of Pillow's `convert('RGB')` bytes.
fn pillow_reference(name: &str) -> (u32, u32, Vec<u8>) {
    let text = std::fs::read_to_string(fixtures().join("pillow-rgb.txt")).unwrap();
    let line = text.lines().find(|l| l.starts_with(&format!("{name} "))).unwrap();
    let cells: Vec<&str> = line.split(' ').collect();
    (cells[2].parse().unwrap(), cells[3].parse().unwrap(), hex::decode(cells[4]).unwrap())
}

#[test]
fn sixteen_bit_pngs_convert_as_pillow_does() {
    for name in ["grey16.png", "rgb16.png"] {
        let (width, height, expected) = pillow_reference(name);
        let decoded =
            decode_rgb(&std::fs::read(fixtures().join(name)).unwrap(), &DecodeLimits::default()).unwrap();
        assert_eq!((decoded.width, decoded.height), (width, height));
        assert_eq!(decoded.pixels, expected, "{name}: Pillow's bytes exactly");
    }
}

#[test]
fn cmyk_jpeg_colours_match_pillow_within_decoder_tolerance() {
    let (width, height, expected) = pillow_reference("cmyk.jpg");
    let decoded =
        decode_rgb(&std::fs::read(fixtures().join("cmyk.jpg")).unwrap(), &DecodeLimits::default()).unwrap();
    assert_eq!((decoded.width, decoded.height), (width, height));
    let differences: Vec<u8> = decoded.pixels.iter().zip(&expected).map(|(a, b)| a.abs_diff(*b)).collect();
    let worst = *differences.iter().max().unwrap();
    let mean = differences.iter().map(|&d| f64::from(d)).sum::<f64>() / differences.len() as f64;
    // Inverted colours would be off by ~128 on average.
    assert!(worst <= 6 && mean < 1.5, "worst {worst}, mean {mean:.2}");
}

#[test]
fn vector_pngs_decode_to_the_image_crates_rgb8_pixels() {
    for entry in std::fs::read_dir(vectors().join("images")).unwrap() {
        let path = entry.unwrap().path();
        let expected = image::open(&path).unwrap().to_rgb8();
        let decoded = decode_rgb(&std::fs::read(&path).unwrap(), &DecodeLimits::default()).unwrap();
        assert_eq!((decoded.width, decoded.height), expected.dimensions(), "{}", path.display());
        assert_eq!(decoded.pixels, expected.into_raw(), "{}", path.display());
    }
}

fn assert_quick<T>(what: &str, f: impl FnOnce() -> T) -> T {
    let start = Instant::now();
    let out = f();
    // Generous: the point is "not a hang, not a 10-gigabyte allocation", on any machine.
    assert!(start.elapsed() < Duration::from_secs(5), "{what} took {:?}", start.elapsed());
    out
}

/// A valid PNG whose header declares `width × height` but carries almost no data.
fn png_bomb(width: u32, height: u32) -> Vec<u8> {
    fn chunk(out: &mut Vec<u8>, kind: &[u8], data: &[u8]) {
        out.extend((data.len() as u32).to_be_bytes());
        let start = out.len();
        out.extend(kind);
        out.extend(data);
        let crc = crc32(&out[start..]);
        out.extend(crc.to_be_bytes());
    }
    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &b in bytes {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
            }
        }
        !crc
    }
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut header = width.to_be_bytes().to_vec();
    header.extend(height.to_be_bytes());
    header.extend([8, 2, 0, 0, 0]);
    chunk(&mut png, b"IHDR", &header);
    chunk(&mut png, b"IDAT", &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]);
    chunk(&mut png, b"IEND", &[]);
    png
}

#[test]
fn decompression_bombs_are_refused_from_the_header() {
    let err = assert_quick("PNG bomb", || decode_rgb(&png_bomb(100_000, 100_000), &DecodeLimits::default()));
    assert!(matches!(err, Err(DecodeError::TooLarge { width: 100_000, height: 100_000, .. })), "{err:?}");

    let err = assert_quick("PNG bomb within side limits", || {
        decode_rgb(&png_bomb(20_000, 20_000), &DecodeLimits::default())
    });
    assert!(matches!(err, Err(DecodeError::TooLarge { width: 20_000, .. })), "{err:?}");

    // A real JPEG whose frame header is patched to declare 60000×60000.
    let mut jpeg = encode(
        &DynamicImage::ImageRgb8(DynamicImage::ImageRgba8(test_card(16, 16)).to_rgb8()),
        ImageFormat::Jpeg,
    );
    let sof = jpeg.windows(2).position(|w| w == [0xFF, 0xC0]).expect("baseline JPEG");
    jpeg[sof + 5..sof + 9].copy_from_slice(&[0xEA, 0x60, 0xEA, 0x60]);
    let err = assert_quick("JPEG bomb", || decode_rgb(&jpeg, &DecodeLimits::default()));
    assert!(matches!(err, Err(DecodeError::TooLarge { width: 60_000, height: 60_000, .. })), "{err:?}");

    let small = DecodeLimits { max_pixels: 100, ..DecodeLimits::default() };
    let card = encode(&DynamicImage::ImageRgba8(test_card(11, 10)), ImageFormat::Png);
    let err = decode_rgb(&card, &small).unwrap_err();
    assert_eq!(err.to_string(), "png image of 11x10 pixels is over the limit (100 pixels)");
}

#[test]
fn truncated_empty_and_garbage_inputs_are_typed_errors() {
    assert!(matches!(decode_rgb(&[], &DecodeLimits::default()), Err(DecodeError::Empty)));
    assert!(matches!(decode_rgb(b"hello, world", &DecodeLimits::default()), Err(DecodeError::UnknownFormat)));
    let rgba = DynamicImage::ImageRgba8(test_card(64, 64));
    for format in [
        ImageFormat::Png,
        ImageFormat::Jpeg,
        ImageFormat::Gif,
        ImageFormat::WebP,
        ImageFormat::Bmp,
        ImageFormat::Tiff,
    ] {
        let image =
            if format == ImageFormat::Jpeg { DynamicImage::ImageRgb8(rgba.to_rgb8()) } else { rgba.clone() };
        let bytes = encode(&image, format);
        for cut in [bytes.len() / 2, bytes.len() * 9 / 10, 20] {
            let result =
                assert_quick("truncated input", || decode_rgb(&bytes[..cut], &DecodeLimits::default()));
            // A decoder may legitimately fill missing JPEG data with grey; it must not panic.
            if let Err(err) = result {
                assert!(!err.to_string().is_empty());
            }
        }
        let mut garbage = bytes.clone();
        for (i, byte) in garbage.iter_mut().enumerate().skip(16) {
            *byte = byte.wrapping_mul(31).wrapping_add(i as u8);
        }
        let _ =
            assert_quick("garbage after a valid magic", || decode_rgb(&garbage, &DecodeLimits::default()));
    }
    let png = encode(&rgba, ImageFormat::Png);
    assert!(matches!(
        decode_rgb(&png[..png.len() / 2], &DecodeLimits::default()),
        Err(DecodeError::Malformed { .. })
    ));
}

#[test]
fn extreme_but_legal_shapes_decode() {
    for (width, height) in [(1, 1), (30_000, 1), (1, 30_000)] {
        let image =
            DynamicImage::ImageRgb8(image::RgbImage::from_pixel(width, height, image::Rgb([9, 99, 199])));
        let decoded = decode_rgb(&encode(&image, ImageFormat::Png), &DecodeLimits::default()).unwrap();
        assert_eq!((decoded.width, decoded.height), (width, height));
        assert!(decoded.pixels.chunks_exact(3).all(|p| p == [9, 99, 199]));
    }
}

#[test]
fn gif_transparent_pixels_keep_their_palette_colour_as_in_pillow() {
    // 4×2, palette red/green/blue, index 0 (red) transparent; made with Pillow, whose
    // `convert('RGB')` gives the palette colour for every pixel, transparent or not.
    let gif = hex::decode(
        "47494638396104000200810000c80a0a0ac80a0a0ac800000021f90401000000002c0000000004000200000809000104102090608080003b",
    )
    .unwrap();
    let (red, green, blue) = ([200, 10, 10], [10, 200, 10], [10, 10, 200]);
    let expected: Vec<u8> = [red, green, blue, red, green, blue, red, green].concat();
    let decoded = decode_rgb(&gif, &DecodeLimits::default()).unwrap();
    assert_eq!((decoded.width, decoded.height), (4, 2));
    assert_eq!(decoded.pixels, expected);
}
