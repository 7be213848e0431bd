//! Arbitrary bytes through everything an uploaded file goes through: the signals pipeline
//! (digests, content sniffing, limited decoding, PDQ with its dihedral variants, the img_hash
//! family, keypoints). Must never panic, hang or allocate past the limits.
#![no_main]

use hashsieve_core::decode::DecodeLimits;
use hashsieve_core::perceptual::ImageHashKind;
use hashsieve_core::signals::{PdqMode, SignalOptions, Signals};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let options = SignalOptions {
        pdq: PdqMode::Dihedral,
        image_hashes: vec![ImageHashKind::PHash, ImageHashKind::DHash, ImageHashKind::AHash],
        keypoints: true,
        // Small limits keep each run fast; the limit checks themselves are what is fuzzed.
        limits: DecodeLimits { max_width: 4096, max_height: 4096, max_pixels: 4 << 20, max_alloc_bytes: 64 << 20 },
        ..SignalOptions::default()
    };
    let signals = Signals::from_bytes(bytes, &options);
    assert_eq!(signals.size, bytes.len() as u64);
    if let Some(image) = &signals.image {
        assert!(u64::from(image.width) * u64::from(image.height) <= 4 << 20);
        assert!(signals.pdq.is_some());
        let keypoints = signals.keypoints.as_ref().expect("computed for every decoded image");
        assert!(keypoints.len() <= hashsieve_core::keypoints::MAX_KEYPOINTS);
    }
});
