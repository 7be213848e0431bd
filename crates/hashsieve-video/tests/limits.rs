//! The video path's bounds and its answers to hostile input: every limit is a typed error,
//! truncated, random, empty or non-video bytes are typed errors, in bounded time, never a
//! panic. Needs `ffmpeg` and `ffprobe`.

use std::time::{Duration, Instant};

use hashsieve_video::{VideoError, VideoLimits, VideoOptions, hash_video, hash_video_with};

fn video(name: &str) -> Vec<u8> {
    std::fs::read(hashsieve_testkit::vectors().join("vpdq/videos").join(name)).unwrap()
}

fn limited(bytes: &[u8], limits: VideoLimits) -> Result<hashsieve_video::VideoHash, VideoError> {
    let started = Instant::now();
    let result = hash_video(bytes, &limits);
    assert!(started.elapsed() < Duration::from_secs(60), "took {:?}", started.elapsed());
    result
}

#[test]
fn more_frames_than_allowed_is_an_error() {
    // s09: 151 frames at 25 fps.
    let limits = VideoLimits { max_frame_count: 50, ..VideoLimits::default() };
    assert!(matches!(
        limited(&video("s09_mptestsrc.webm"), limits),
        Err(VideoError::TooManyFrames { limit: 50 })
    ));
    let limits = VideoLimits { max_frame_count: 151, ..VideoLimits::default() };
    assert_eq!(limited(&video("s09_mptestsrc.webm"), limits).unwrap().features.len(), 7);
    // Every frame sent (seconds_per_hash 0) is counted the same way.
    let options = VideoOptions {
        seconds_per_hash: 0.0,
        limits: VideoLimits { max_frame_count: 20, ..VideoLimits::default() },
        ..VideoOptions::default()
    };
    let result = hash_video_with(&video("s09_mptestsrc.webm"), &options);
    assert!(matches!(result, Err(VideoError::TooManyFrames { limit: 20 })), "{result:?}");
}

#[test]
fn frames_over_the_pixel_limit_are_refused_before_decoding() {
    let limits = VideoLimits { max_frame_pixels: 1280 * 720 - 1, ..VideoLimits::default() };
    let result = limited(&video("s02_smptehdbars.webm"), limits);
    assert!(matches!(result, Err(VideoError::FrameTooLarge { width: 1280, height: 720, .. })), "{result:?}");
}

#[test]
fn a_video_over_the_duration_limit_is_refused() {
    // s02 declares 8 s.
    let limits = VideoLimits { max_duration: Duration::from_secs(3), ..VideoLimits::default() };
    let result = limited(&video("s02_smptehdbars.webm"), limits);
    assert!(matches!(result, Err(VideoError::TooLong { .. })), "{result:?}");
}

#[test]
fn the_deadline_kills_the_decoder() {
    let limits = VideoLimits { max_decode_time: Duration::from_millis(30), ..VideoLimits::default() };
    let started = Instant::now();
    let result = limited(&video("s04_life_333x197.mkv"), limits);
    assert!(matches!(result, Err(VideoError::DeadlineExceeded { .. })), "{result:?}");
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
}

#[test]
fn a_memory_limit_too_small_for_the_decoder_is_an_error_not_a_hang() {
    let limits = VideoLimits { max_memory_bytes: 24 << 20, ..VideoLimits::default() };
    let result = limited(&video("s02_smptehdbars.webm"), limits);
    assert!(result.is_err(), "{result:?}");
}

#[test]
fn truncated_videos_give_typed_errors_or_fewer_frames() {
    let whole = video("s07_slideshow.mp4");
    // The MP4's index (moov) is at its end: without it nothing can be read.
    let result = limited(&whole[..whole.len() / 2], VideoLimits::default());
    assert!(matches!(result, Err(VideoError::Unreadable { .. })), "{result:?}");
    for name in ["s09_mptestsrc.webm", "s04_life_333x197.mkv", "s07_slideshow.mp4"] {
        let whole = video(name);
        let full = limited(&whole, VideoLimits::default()).unwrap().features.len();
        for cut in [16, 100, 1000, whole.len() / 3, whole.len() - 7] {
            match limited(&whole[..cut], VideoLimits::default()) {
                Ok(hash) => assert!(hash.features.len() <= full, "{name} cut at {cut}"),
                Err(
                    VideoError::Unreadable { .. }
                    | VideoError::DecodeFailed { .. }
                    | VideoError::NoVideoStream,
                ) => {}
                Err(other) => panic!("{name} cut at {cut}: {other:?}"),
            }
        }
    }
}

#[test]
fn random_bytes_images_and_empty_input_are_typed_errors() {
    let mut rng = hashsieve_testkit::Rng::new(23);
    for len in [1, 7, 188, 4096, 100_000] {
        let mut bytes = vec![0u8; len];
        rng.fill(&mut bytes);
        let result = limited(&bytes, VideoLimits::default());
        assert!(
            matches!(
                result,
                Err(VideoError::Unreadable { .. }
                    | VideoError::UnsupportedFormat { .. }
                    | VideoError::NoVideoStream)
            ),
            "{len} random bytes: {result:?}"
        );
    }
    for image in ["wee.jpg", "misc-small.png"] {
        let bytes = std::fs::read(hashsieve_testkit::samples().join(image)).unwrap();
        let result = limited(&bytes, VideoLimits::default());
        assert!(matches!(result, Err(VideoError::UnsupportedFormat { .. })), "{image}: {result:?}");
    }
    assert!(matches!(limited(b"", VideoLimits::default()), Err(VideoError::Empty)));
}

#[test]
fn an_audio_only_container_has_no_video_stream() {
    // The Opus track of s04 alone, remuxed by ffmpeg here (in memory, through pipes).
    let mut child = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-i", "pipe:0", "-map", "0:a", "-c", "copy", "-f", "matroska", "pipe:1"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("ffmpeg (Debian: apt-get install ffmpeg)");
    let mut stdin = child.stdin.take().unwrap();
    let input = video("s04_life_333x197.mkv");
    let writer = std::thread::spawn(move || std::io::Write::write_all(&mut stdin, &input));
    let audio = child.wait_with_output().unwrap().stdout;
    writer.join().unwrap().unwrap();
    assert!(!audio.is_empty());
    let result = limited(&audio, VideoLimits::default());
    assert!(matches!(result, Err(VideoError::NoVideoStream)), "{result:?}");
}
