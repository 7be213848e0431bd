//! Arbitrary bytes as a keypoint set, as the verdict memory reads them from a Redis stream
//! entry or from its store: parsing must refuse or accept without panicking, an accepted set
//! must write back to what it was read from, and aligning it with a real set (both ways) must not
//! panic whatever positions and descriptors it holds.
#![no_main]

use std::sync::OnceLock;

use hashsieve_core::keypoints::{self, Keypoints};
use libfuzzer_sys::fuzz_target;

/// The keypoints of a generated 240×180 picture with corners everywhere.
fn reference() -> &'static Keypoints {
    static REFERENCE: OnceLock<Keypoints> = OnceLock::new();
    REFERENCE.get_or_init(|| {
        let (width, height) = (240usize, 180usize);
        let rgb: Vec<u8> = (0..width * height)
            .flat_map(|p| {
                let (x, y) = (p % width, p / width);
                let value = (((x / 12) ^ (y / 9)) * 37 % 256) as u8;
                [value, value / 2, 255 - value]
            })
            .collect();
        Keypoints::from_rgb(&rgb, width, height)
    })
}

fuzz_target!(|bytes: &[u8]| {
    let Ok(set) = Keypoints::from_bytes(bytes) else { return };
    // Written back, it reads as the same set (and as the same bytes, but for the mirrored flag
    // of a set with no points, which says nothing).
    assert_eq!(Keypoints::from_bytes(&set.to_bytes()).as_ref(), Ok(&set));
    if !set.is_empty() {
        assert_eq!(set.to_bytes(), bytes);
    }
    assert!(set.len() <= keypoints::MAX_KEYPOINTS);
    let _ = keypoints::align(&set, reference());
    let _ = keypoints::align(reference(), &set.clone().without_mirrored());
    let _ = keypoints::align(&set, &set);
});
