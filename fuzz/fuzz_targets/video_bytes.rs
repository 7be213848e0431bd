//! Arbitrary bytes as a video: the container and bitstream parsed by the sandboxed ffprobe
//! and ffmpeg, frames hashed here. Must never panic or hang, and a result must respect the
//! limits. Needs ffmpeg and ffprobe (run-smoke.sh installs them).
#![no_main]

use std::time::Duration;

use hashsieve_video::{VideoLimits, VideoOptions, hash_video_with};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let options = VideoOptions {
        seconds_per_hash: 0.0,
        threads: 1,
        // Tight limits keep each run short; their checks are part of what is fuzzed.
        limits: VideoLimits {
            max_input_bytes: 1 << 20,
            max_duration: Duration::from_secs(60),
            max_frame_count: 64,
            max_frame_pixels: 640 * 480,
            max_decode_time: Duration::from_secs(5),
            max_memory_bytes: 1 << 30,
        },
        ..VideoOptions::default()
    };
    if let Ok(hash) = hash_video_with(bytes, &options) {
        assert!(hash.features.len() <= 64);
        assert!(u64::from(hash.info.width) * u64::from(hash.info.height) <= 640 * 480);
        assert!(hash.features.windows(2).all(|w| w[0].frame_number < w[1].frame_number));
    }
});
