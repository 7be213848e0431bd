//! Wellbeing previews, judged on what they decode to — with the `image` crate, not this crate's
//! decoder — and measured against the original by this crate's PDQ, by the variance of grey
//! levels, and by the energy of fine detail.

use std::io::Cursor;
use std::time::{Duration, Instant};

use hashsieve_core::decode::{DecodeError, DecodeLimits, RgbImage};
use hashsieve_core::index::DEFAULT_PDQ_THRESHOLD;
use hashsieve_core::pdq::hash_rgb;
use hashsieve_core::preview::{
    Preview, PreviewError, PreviewFormat, PreviewOptions, RevealStep, render, render_decoded,
};
use image::{DynamicImage, GrayImage, ImageFormat};

fn sample(name: &str) -> Vec<u8> {
    std::fs::read(hashsieve_testkit::samples().join(name)).unwrap()
}

/// The sample photographs with a picture in them (PDQ quality 100). `misc-small.png` is left
/// out: it is black but for faint noise, so there is nothing to hide or reveal.
const PHOTOGRAPHS: [&str; 6] =
    ["labelme-q0291.png", "q0122.jpg", "q1050.jpg", "shrink-a-lot.jpg", "square-256x256.jpg", "wee.jpg"];

fn decoded(preview: &Preview) -> DynamicImage {
    let image = image::load_from_memory(&preview.bytes).unwrap();
    assert_eq!((image.width(), image.height()), (preview.width, preview.height));
    image
}

fn variance(values: &[u8]) -> f64 {
    let n = values.len() as f64;
    let mean = values.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
    values.iter().map(|&v| (f64::from(v) - mean).powi(2)).sum::<f64>() / n
}

/// The mean square of the discrete Laplacian (4·centre − the four neighbours): the energy of
/// the finest detail, the usual measure of how sharp a picture is.
fn detail(image: &GrayImage) -> f64 {
    let (width, height) = image.dimensions();
    let at = |x: u32, y: u32| f64::from(image.get_pixel(x, y)[0]);
    let mut sum = 0.0;
    for y in 1..height - 1 {
        for x in 1..width - 1 {
            let laplacian = 4.0 * at(x, y) - at(x - 1, y) - at(x + 1, y) - at(x, y - 1) - at(x, y + 1);
            sum += laplacian * laplacian;
        }
    }
    sum / f64::from((width - 2) * (height - 2))
}

/// The largest difference between a pixel's channels, over the image.
fn most_colour(image: &DynamicImage) -> u8 {
    image.to_rgb8().pixels().map(|p| p.0.iter().max().unwrap() - p.0.iter().min().unwrap()).max().unwrap()
}

#[test]
fn the_blurred_preview_of_a_colourful_photograph_has_no_colour() {
    // The sea and sky of q0122 are the most saturated of the samples.
    let bytes = sample("q0122.jpg");
    assert!(most_colour(&image::load_from_memory(&bytes).unwrap()) > 100, "the original is colourful");
    for format in [PreviewFormat::default(), PreviewFormat::Png] {
        let options = PreviewOptions { format, ..PreviewOptions::default() };
        let preview = render(&bytes, RevealStep::Blurred, &options).unwrap();
        let rgb = decoded(&preview).to_rgb8();
        assert!(rgb.pixels().all(|p| p[0] == p[1] && p[1] == p[2]), "{format:?}: every pixel R = G = B");
    }
}

/// PDQ is built to survive blur, so this is the strict test of "nothing recognisable": the
/// blurred preview, decoded and scaled back to the original's size, must not match the
/// original. The distances measured are 72 to 106 bits over these photographs (unrelated
/// pictures are about 128 apart); the bound of 64, twice the match threshold of 31, leaves
/// room for encoder differences and still says "a different picture" to any PDQ list. The
/// softened step is not held to it: it keeps the layout, and PDQ, which looks only at the
/// layout, still matches most of the samples there (6 to 34 bits; 70 for the seascape).
#[test]
fn the_blurred_preview_is_far_from_the_original_by_pdq() {
    for name in PHOTOGRAPHS {
        let bytes = sample(name);
        let original = image::load_from_memory(&bytes).unwrap().to_rgb8();
        let (width, height) = original.dimensions();
        let original_hash = hash_rgb(original.as_raw(), width as usize, height as usize);
        assert_eq!(original_hash.quality, 100, "{name}");
        let preview = render(&bytes, RevealStep::Blurred, &PreviewOptions::default()).unwrap();
        let restored = image::imageops::resize(
            &decoded(&preview).to_rgb8(),
            width,
            height,
            image::imageops::FilterType::Triangle,
        );
        let hash = hash_rgb(restored.as_raw(), width as usize, height as usize);
        let distance = hash.hash.hamming_distance(&original_hash.hash);
        assert!(distance > 2 * DEFAULT_PDQ_THRESHOLD + 2, "{name}: PDQ distance {distance}");
    }
}

/// Against the sharp greyscale preview of the same size. The variance of grey levels counts
/// the large areas of light and dark, which a blur is meant to keep (the layout is what lets
/// an analyst tell a screenshot from a photograph), so it falls by a half to three quarters
/// for pictures with structure (measured 0.23 to 0.45) and barely for q0122, a sea under a
/// sky (0.87), which is all layout. Fine detail is what makes a picture recognisable, and it
/// is gone: measured 0.06 % to 1.4 % of the sharp preview's, bound 2 %.
#[test]
fn the_blurred_preview_keeps_the_layout_and_loses_the_detail() {
    let options = PreviewOptions::default();
    for name in PHOTOGRAPHS {
        let bytes = sample(name);
        let blurred = decoded(&render(&bytes, RevealStep::Blurred, &options).unwrap()).to_luma8();
        let sharp = decoded(&render(&bytes, RevealStep::Greyscale, &options).unwrap()).to_luma8();
        assert_eq!(blurred.dimensions(), sharp.dimensions());
        let detail_left = detail(&blurred) / detail(&sharp);
        assert!(detail_left < 0.02, "{name}: {:.2} % of the detail left", detail_left * 100.0);
        let variance_left = variance(blurred.as_raw()) / variance(sharp.as_raw());
        let bound = if name == "q0122.jpg" { 0.95 } else { 0.5 };
        assert!(variance_left < bound, "{name}: {variance_left:.2} of the variance left");
    }
}

#[test]
fn each_step_reveals_more() {
    let options = PreviewOptions::default();
    for name in PHOTOGRAPHS {
        let bytes = sample(name);
        let original = image::load_from_memory(&bytes).unwrap();
        let previews: Vec<DynamicImage> =
            RevealStep::ALL.iter().map(|&step| decoded(&render(&bytes, step, &options).unwrap())).collect();
        let grey: Vec<GrayImage> = previews[..3].iter().map(DynamicImage::to_luma8).collect();
        for pair in grey.windows(2) {
            assert!(variance(pair[0].as_raw()) < variance(pair[1].as_raw()), "{name}: variance grows");
            assert!(detail(&pair[0]) < detail(&pair[1]), "{name}: detail grows");
        }
        for (step, preview) in RevealStep::ALL.iter().zip(&previews) {
            let colour = most_colour(preview);
            if step.is_greyscale() {
                assert_eq!(colour, 0, "{name} {step}");
            } else {
                assert!(colour > 30, "{name} {step}: colour {colour}");
            }
            if *step < RevealStep::FullSize {
                assert!(preview.width().max(preview.height()) <= options.max_side);
            }
        }
        // All the samples fit the full-size cap: their own size.
        assert_eq!(
            (previews[4].width(), previews[4].height()),
            (original.width(), original.height()),
            "{name}"
        );
    }
}

fn encode(image: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut bytes = Vec::new();
    image.write_to(&mut Cursor::new(&mut bytes), format).unwrap();
    bytes
}

#[test]
fn full_size_is_capped_and_re_encoded_without_the_metadata() {
    let wide = DynamicImage::ImageRgb8(image::RgbImage::from_fn(5000, 1200, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, 128])
    }));
    let preview =
        render(&encode(&wide, ImageFormat::Png), RevealStep::FullSize, &PreviewOptions::default()).unwrap();
    assert_eq!((preview.width, preview.height), (4096, 983));
    decoded(&preview);

    // square-256x256.jpg carries an EXIF block naming the software that wrote it.
    let bytes = sample("square-256x256.jpg");
    let contains = |haystack: &[u8], needle: &[u8]| haystack.windows(needle.len()).any(|w| w == needle);
    assert!(contains(&bytes, b"Exif\0\0"));
    for format in [PreviewFormat::default(), PreviewFormat::Png] {
        let options = PreviewOptions { format, ..PreviewOptions::default() };
        let preview = render(&bytes, RevealStep::FullSize, &options).unwrap();
        assert_ne!(preview.bytes, bytes);
        assert!(!contains(&preview.bytes, b"Exif"), "{format:?}");
        assert!(!contains(&preview.bytes, b"Google"), "{format:?}");
    }
}

#[test]
fn previews_are_encoded_as_asked() {
    let bytes = sample("labelme-q0291.png");
    let jpeg = render(&bytes, RevealStep::Colour, &PreviewOptions::default()).unwrap();
    assert_eq!(jpeg.content_type, "image/jpeg");
    assert_eq!(image::guess_format(&jpeg.bytes).unwrap(), ImageFormat::Jpeg);
    let options = PreviewOptions { format: PreviewFormat::Png, ..PreviewOptions::default() };
    let png = render(&bytes, RevealStep::Colour, &options).unwrap();
    assert_eq!(png.content_type, "image/png");
    assert_eq!(image::guess_format(&png.bytes).unwrap(), ImageFormat::Png);
    // Lossless and not scaled (the sample is 256 pixels square): the decoded pixels exactly.
    assert_eq!(decoded(&png).to_rgb8(), image::load_from_memory(&bytes).unwrap().to_rgb8());

    let small = PreviewOptions { max_side: 64, ..PreviewOptions::default() };
    let preview = render(&sample("misc-small.png"), RevealStep::Greyscale, &small).unwrap();
    assert_eq!((preview.width, preview.height), (36, 64));
}

#[test]
fn options_that_cannot_make_a_preview_are_refused() {
    let bytes = sample("wee.jpg");
    for options in [
        PreviewOptions { max_side: 0, ..PreviewOptions::default() },
        PreviewOptions { full_size_max_side: 0, ..PreviewOptions::default() },
        PreviewOptions { format: PreviewFormat::Jpeg { quality: 0 }, ..PreviewOptions::default() },
        PreviewOptions { format: PreviewFormat::Jpeg { quality: 101 }, ..PreviewOptions::default() },
    ] {
        assert!(matches!(
            render(&bytes, RevealStep::Blurred, &options),
            Err(PreviewError::InvalidOptions(_))
        ));
    }
    // A huge radius is not an error: the picture becomes nearly flat, at no extra cost.
    let options = PreviewOptions { blurred_radius: u32::MAX, ..PreviewOptions::default() };
    let flat = decoded(&render(&bytes, RevealStep::Blurred, &options).unwrap()).to_luma8();
    assert!(variance(flat.as_raw()) < 100.0);
}

#[test]
fn a_pixel_buffer_of_the_wrong_length_is_an_error() {
    let image = RgbImage { width: 10, height: 10, format: "png", pixels: vec![0; 299] };
    let err = render_decoded(&image, RevealStep::Colour, &PreviewOptions::default()).unwrap_err();
    assert!(matches!(err, PreviewError::PixelCount { width: 10, height: 10, len: 299 }), "{err}");
}

#[test]
fn extreme_shapes_render_at_every_step() {
    for (width, height) in [(1, 1), (30_000, 1), (1, 5000), (3, 2)] {
        let image =
            DynamicImage::ImageRgb8(image::RgbImage::from_pixel(width, height, image::Rgb([9, 99, 199])));
        let bytes = encode(&image, ImageFormat::Png);
        for step in RevealStep::ALL {
            let preview = render(&bytes, step, &PreviewOptions::default()).unwrap();
            let side = if step == RevealStep::FullSize { 4096 } else { 256 };
            assert!(
                preview.width.max(preview.height) <= side.min(width.max(height)),
                "{width}x{height} {step}"
            );
            decoded(&preview);
        }
    }
}

#[test]
fn a_preview_never_prints_its_bytes() {
    let preview = render(&sample("wee.jpg"), RevealStep::Colour, &PreviewOptions::default()).unwrap();
    let printed = format!("{preview:?}");
    assert_eq!(
        printed,
        format!(
            "Preview {{ bytes: <{} bytes>, content_type: \"image/jpeg\", width: 34, height: 42 }}",
            preview.bytes.len()
        )
    );
}

#[test]
fn steps_have_stable_names_and_an_order() {
    let names: Vec<&str> = RevealStep::ALL.iter().map(|step| step.as_str()).collect();
    assert_eq!(names, ["blurred", "softened", "greyscale", "colour", "full-size"]);
    for step in RevealStep::ALL {
        assert_eq!(step.as_str().parse(), Ok(step));
        assert_eq!(step.to_string(), step.as_str());
    }
    let mut walked = vec![RevealStep::FIRST];
    while let Some(next) = walked.last().unwrap().next() {
        assert!(next > *walked.last().unwrap());
        walked.push(next);
    }
    assert_eq!(walked, RevealStep::ALL);
    assert_eq!(RevealStep::default(), RevealStep::FIRST);
    assert!("Blurred".parse::<RevealStep>().is_err());
    let err = "x".repeat(1000).parse::<RevealStep>().unwrap_err();
    assert!(err.to_string().len() < 200, "the echo of the input is bounded");
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
        let mut crc = !0u32;
        for &b in &out[start..] {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
            }
        }
        out.extend((!crc).to_be_bytes());
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
fn hostile_input_is_an_error_not_a_panic() {
    let options = PreviewOptions::default();
    let decode_error =
        |bytes: &[u8], step| match assert_quick("hostile input", || render(bytes, step, &options)) {
            Err(PreviewError::Decode(err)) => err,
            other => panic!("{other:?}"),
        };
    for step in RevealStep::ALL {
        assert!(matches!(decode_error(&[], step), DecodeError::Empty));
        assert!(matches!(decode_error(b"<html>not an image</html>", step), DecodeError::UnknownFormat));
        assert!(matches!(
            decode_error(&png_bomb(100_000, 100_000), step),
            DecodeError::TooLarge { width: 100_000, height: 100_000, .. }
        ));
        assert!(matches!(decode_error(&png_bomb(20_000, 20_000), step), DecodeError::TooLarge { .. }));
    }
    // The decoder's limits are the preview's.
    let tight =
        PreviewOptions { limits: DecodeLimits { max_pixels: 1000, ..DecodeLimits::default() }, ..options };
    let err = render(&sample("wee.jpg"), RevealStep::Blurred, &tight).unwrap_err();
    assert!(
        matches!(err, PreviewError::Decode(DecodeError::TooLarge { width: 34, height: 42, .. })),
        "{err}"
    );

    let png = sample("labelme-q0291.png");
    for cut in [8, 33, png.len() / 3, png.len() - 13] {
        assert!(
            matches!(decode_error(&png[..cut], RevealStep::Blurred), DecodeError::Malformed { .. }),
            "cut {cut}"
        );
    }
    for name in ["q1050.jpg", "wee.jpg"] {
        let jpeg = sample(name);
        // The JPEG decoder fills a cut-off scan with grey rather than fail, as browsers do; a
        // cut inside the headers is an error.
        for cut in [2, 20, jpeg.len() / 2, jpeg.len() - 2] {
            let _ = assert_quick("truncated JPEG", || render(&jpeg[..cut], RevealStep::FullSize, &options));
        }
        assert!(render(&jpeg[..20], RevealStep::Blurred, &options).is_err());
        let mut garbage = jpeg.clone();
        for (i, byte) in garbage.iter_mut().enumerate().skip(4) {
            *byte = byte.wrapping_mul(31).wrapping_add(i as u8);
        }
        let _ = assert_quick("garbage after a JPEG magic", || render(&garbage, RevealStep::Colour, &options));
    }
}
