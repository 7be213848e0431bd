//! vPDQ, Meta's video hash, equal to the reference: frames decoded by a sandboxed `ffmpeg`
//! fed from memory, hashed with hashsieve's bit-exact PDQ, and compared as HMA compares them.
//!
//! A vPDQ hash is a list of features, one per sampled frame: its frame number, timestamp, PDQ
//! hash and quality ([`VpdqFeature`]). Lists made with Meta's tools (PyPI `vpdq` 0.2.5, the
//! C++ `vpdq-hash-video`) must match here, so the features are the reference's, and so is
//! the matching ([`match_videos`], threatexchange's rule and thresholds by default).
//!
//! ```no_run
//! use hashsieve_video::{hash_video, match_videos, MatchOptions, VideoLimits};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let upload = std::fs::read("upload.mp4")?;
//! let listed = std::fs::read("listed.webm")?;
//! let query = hash_video(&upload, &VideoLimits::default())?;
//! let known = hash_video(&listed, &VideoLimits::default())?;
//! for f in &query.features {
//!     println!("{} {:.3} {} {}", f.frame_number, f.timestamp, f.pdq, f.quality);
//! }
//! let m = match_videos(&query.features, &known.features, &MatchOptions::default());
//! println!("{:.2}% of the query, {:.2}% of the listed video: match {}", m.query_pct, m.compared_pct, m.is_match);
//! # Ok(())
//! # }
//! ```
//!
//! # What is computed (SPEC points of the reference vectors' `SPEC.md`)
//!
//! - **The stream** (§2.1): the first stream of type video, by index, as `-map 0:v:0`.
//! - **Frames** (§2.5, §5): decoded by FFmpeg's default decoder for the codec and converted to
//!   RGB24 by swscale with vpdq's settings, which ignore colour tags: the BT.601 matrix always,
//!   full range only when the decoder's pixel format is `yuvj*` (from `ffprobe`), `SWS_AREA`,
//!   at the coded size; no rotation, no aspect ratio. This is vpdq's own call path through the
//!   same libraries, so with the FFmpeg vpdq links the pixels are the same bytes.
//! - **Frame numbers** (§2.6): the 0-based index of the frame as the decoder outputs it.
//! - **Sampling** (§2.7): `frame_mod = trunc(seconds_per_hash × fps)`, 0 → 1, where fps is
//!   `avg_frame_rate` (or `r_frame_rate` when a part of it is 0) as a double; a frame is hashed
//!   when `frame_number % frame_mod == 0`. 29.97 fps samples every 29th frame.
//! - **Timestamps** (§2.8): `(float)frame_number / (float)fps` widened to `f64`, exactly.
//! - **PDQ and quality** (§3): [`hashsieve_core::pdq`], bit-exact with the PDQ C++ that vpdq
//!   compiles in (the same luma in f32, the blur skipped at exactly 64×64, Torben's median).
//!   A frame under 5 pixels on a side fails the whole video, as in vpdq.
//! - **Order and deduplication**: features in frame order, every sampled frame kept (vpdq
//!   does not deduplicate; threatexchange's matcher does, see [`matching`]).
//! - **The flush quirk** (§2.9): vpdq never drains the decoder when the video is not stream
//!   #0, so its lists lack the last `has_b_frames` frames of such videos (two for H.264 with
//!   B-frames). [`VideoOptions::reference_flush_quirk`] (on by default) drops them too, so
//!   that features equal the reference's; it changes at most one feature at the very end of a
//!   video, and a match only for videos a few frames long. As in SPEC §5 the delay is taken
//!   to be `has_b_frames`, true for the common codecs (H.264, MPEG-4 Part 2: that delay;
//!   VP8, VP9, AV1: none) and not modelled beyond them.
//!
//! Measured on the 23 shared reference videos (H.264 and VP9 in MP4, MKV and WebM; 16 of
//! them copied to `tests/vectors/vpdq/` and tested): every feature equal, hash, quality,
//! frame number and timestamp, 256 of 256 at one second per hash and 6927 of 6927 frames at
//! every frame; every pair's percentages and decision equal to threatexchange's and to the
//! C++ matcher's (33 pairs of copied videos tested). With
//! another FFmpeg build than the one the list was made with, the reference's README measured
//! up to 4 bits on odd frame sizes (swscale's general path changed in later versions), which
//! matching at distance 31 absorbs.
//!
//! # Why the `ffmpeg` program, not a binding to libav*
//!
//! - **Safety.** Parsing hostile containers and bitstreams is where FFmpeg's security bugs
//!   are. In a child process they cannot touch the caller's memory, and the child is bounded
//!   ([`VideoLimits`]): its address space and CPU time (`RLIMIT_AS`, `RLIMIT_CPU`), no file
//!   it may write (`RLIMIT_FSIZE` 0), no core file, 64 open files, `no_new_privs`, killed at a
//!   wall-clock deadline, when dropped, and when its caller's thread dies (`PDEATHSIG`), an
//!   empty environment, only the `file` protocol (no network) and only video demuxers
//!   (`-format_whitelist`: no playlists or other formats that open more URLs, no images).
//!   A decoder crash is a [`VideoError::Killed`], not a crash of the daemon.
//! - **Build.** `ffmpeg-next`/`ffmpeg-sys-next` need the `libav*-dev` headers, pkg-config and
//!   clang (bindgen) at build time, so `cargo build` of the workspace would fail on a fresh
//!   machine with only the Rust toolchain. The programs are needed only at run time, and
//!   their absence is a typed error ([`VideoError::FfmpegMissing`]).
//! - **Speed.** Frames that are not sampled are dropped inside ffmpeg (`select`) before
//!   colour conversion and the pipe, the decoder uses FFmpeg's frame threads, and PDQ is
//!   hashsieve's. The price is a fixed cost per video: two process start-ups and a second
//!   probe of the container (ffprobe's, then ffmpeg's own), about 0.15–0.2 s. Measured by
//!   `benches/compare/vpdq.sh` on the 23 shared vectors (8–18 s each, 2 cores, shared
//!   machine): median 0.41 s a video here, 0.22 s for vpdq in-process (0.54×); at parity
//!   (0.96–1.17×) on the 720p H.264 ones, slower on the small ones, where the fixed cost is
//!   most of the time. The cost of decoding itself is the same FFmpeg's on both sides, so
//!   longer videos approach parity; a binding would save the fixed cost, not the safety.
//!
//! # Content never touches disk
//!
//! The video is copied into a sealed memfd (RAM, no file on any file system) that is the
//! child's standard input; ffmpeg opens it again as `file:/dev/stdin`, a seekable descriptor,
//! so an MP4 with its `moov` atom at the end is read as from a file. Frames come back through
//! a pipe, one at a time, and only their hashes are kept. ffmpeg's stderr is kept bounded (it
//! holds messages, never pixels) and appears only in error values.

#![warn(missing_docs)]

mod decode;
pub mod matching;
mod probe;
mod sandbox;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hashsieve_core::pdq::{MIN_DIMENSION, PdqHash};

pub use matching::{MatchOptions, MatchRule, VideoMatch, match_videos};

/// One sampled frame of a video.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VpdqFeature {
    /// The frame's 0-based index in decoder output order.
    pub frame_number: u64,
    /// Seconds: `(float)frame_number / (float)fps`, widened to `f64` (the reference's value).
    pub timestamp: f64,
    /// The frame's PDQ hash.
    pub pdq: PdqHash,
    /// The frame's PDQ quality, 0..=100.
    pub quality: u8,
}

/// The vPDQ hash of a video, with what was learnt of the video on the way.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoHash {
    /// The features, in frame order.
    pub features: Vec<VpdqFeature>,
    /// The stream that was hashed.
    pub info: VideoInfo,
}

/// The hashed stream.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoInfo {
    /// The demuxer, as ffprobe names it (`mov,mp4,m4a,3gp,3g2,mj2`, `matroska,webm`, …).
    pub container: String,
    /// The codec (`h264`, `vp9`, …).
    pub codec: String,
    /// The stream's index in the container.
    pub stream_index: u32,
    /// Coded width in pixels.
    pub width: u32,
    /// Coded height in pixels.
    pub height: u32,
    /// The decoder's pixel format (`yuv420p`, `yuvj420p`, …).
    pub pix_fmt: String,
    /// Frames per second, as used for sampling and timestamps.
    pub frame_rate: f64,
    /// Every `frame_mod`-th frame is hashed.
    pub frame_mod: u64,
    /// Frames the decoder output.
    pub decoded_frames: u64,
    /// The last frames treated as never decoded, for the flush quirk (SPEC §2.9): the
    /// reference counts `decoded_frames - quirk_frames`.
    pub quirk_frames: u64,
}

/// Bounds on one video. Every one is checked; the defaults suit uploads and reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoLimits {
    /// Largest input, in bytes (it is copied once, into the memfd).
    pub max_input_bytes: u64,
    /// Longest video: the container's declared duration, and frames decoded / fps.
    pub max_duration: Duration,
    /// Most frames decoded.
    pub max_frame_count: u64,
    /// Largest frame, width × height (also the decoder's own `max_pixels`).
    pub max_frame_pixels: u64,
    /// Wall-clock time for the whole hash: probing, decoding and hashing.
    pub max_decode_time: Duration,
    /// Address space of each ffmpeg or ffprobe process (`RLIMIT_AS`).
    pub max_memory_bytes: u64,
}

impl Default for VideoLimits {
    /// 2 GiB, 3 hours, a million frames, 8K (7680 × 4320) frames, 10 minutes, 4 GiB.
    fn default() -> VideoLimits {
        VideoLimits {
            max_input_bytes: 2 << 30,
            max_duration: Duration::from_secs(3 * 3600),
            max_frame_count: 1_000_000,
            max_frame_pixels: 7680 * 4320,
            max_decode_time: Duration::from_secs(600),
            max_memory_bytes: 4 << 30,
        }
    }
}

/// How a video is hashed.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoOptions {
    /// Seconds between sampled frames: 1.0, the reference's default; 0 hashes every frame.
    pub seconds_per_hash: f64,
    /// Bounds.
    pub limits: VideoLimits,
    /// The `ffmpeg` program: a path, or a name looked up on `PATH`.
    pub ffmpeg: PathBuf,
    /// The `ffprobe` program: a path, or a name looked up on `PATH`.
    pub ffprobe: PathBuf,
    /// Decoder threads; 0 lets FFmpeg choose (frame threads, one per core). The bits do not
    /// depend on it.
    pub threads: u32,
    /// Leave out the frames vpdq loses when the video is not stream #0 (see the crate doc).
    pub reference_flush_quirk: bool,
}

impl Default for VideoOptions {
    fn default() -> VideoOptions {
        VideoOptions {
            seconds_per_hash: 1.0,
            limits: VideoLimits::default(),
            ffmpeg: "ffmpeg".into(),
            ffprobe: "ffprobe".into(),
            threads: 0,
            reference_flush_quirk: true,
        }
    }
}

/// Why a video was not hashed.
#[derive(Debug, thiserror::Error)]
pub enum VideoError {
    /// Zero bytes.
    #[error("empty input")]
    Empty,
    /// The input is over [`VideoLimits::max_input_bytes`].
    #[error("input of {bytes} bytes is over the limit of {limit}")]
    TooLarge {
        /// Its size.
        bytes: u64,
        /// The limit.
        limit: u64,
    },
    /// `ffmpeg` or `ffprobe` is not installed (Debian: `apt-get install ffmpeg`).
    #[error("{program} is not installed or cannot be run (Debian: apt-get install ffmpeg): {source}")]
    FfmpegMissing {
        /// The program looked for.
        program: String,
        /// Why it could not be started.
        source: std::io::Error,
    },
    /// Not a container ffprobe can read: random bytes, a truncated header, a corrupt file.
    #[error("not a readable video: {reason}")]
    Unreadable {
        /// ffprobe's message.
        reason: String,
    },
    /// A format that is not decoded as video here: an image, a playlist, an audio-only format.
    #[error("not a video container that is decoded here: {reason}")]
    UnsupportedFormat {
        /// ffprobe's message (it names the detected format).
        reason: String,
    },
    /// A container without a video stream.
    #[error("the container has no video stream")]
    NoVideoStream,
    /// The video stream declares no usable frame rate.
    #[error("the video stream has no frame rate")]
    NoFrameRate,
    /// The frames are too small to hash (under 5 pixels on a side, or unknown).
    #[error("frames of {width}x{height} pixels cannot be hashed")]
    BadDimensions {
        /// Declared width.
        width: u32,
        /// Declared height.
        height: u32,
    },
    /// Frames over [`VideoLimits::max_frame_pixels`].
    #[error("frames of {width}x{height} pixels are over the limit of {limit} pixels")]
    FrameTooLarge {
        /// Declared width.
        width: u32,
        /// Declared height.
        height: u32,
        /// The limit.
        limit: u64,
    },
    /// Longer than [`VideoLimits::max_duration`] (declared, or counted in frames).
    #[error("the video lasts more than the limit of {limit:?}")]
    TooLong {
        /// The limit.
        limit: Duration,
    },
    /// More frames than [`VideoLimits::max_frame_count`], or than the duration limit allows.
    #[error("the video has more than {limit} frames")]
    TooManyFrames {
        /// Frames allowed.
        limit: u64,
    },
    /// [`VideoLimits::max_decode_time`] passed; the process was killed.
    #[error("decoding took longer than the time limit")]
    DeadlineExceeded {
        /// ffmpeg's stderr (bounded).
        stderr: String,
    },
    /// ffmpeg or ffprobe was killed by a signal: a crash, or a resource limit (memory, CPU).
    #[error("{program} was killed ({status}): {reason}")]
    Killed {
        /// Which program.
        program: &'static str,
        /// The exit status.
        status: String,
        /// Its last messages.
        reason: String,
    },
    /// ffmpeg failed to decode the video.
    #[error("the video could not be decoded ({status}): {reason}")]
    DecodeFailed {
        /// The exit status.
        status: String,
        /// ffmpeg's last messages.
        reason: String,
    },
    /// Invalid options (a negative or non-finite `seconds_per_hash`).
    #[error("invalid options: {0}")]
    InvalidOptions(&'static str),
    /// A system call around the child process failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The error.
        source: std::io::Error,
    },
}

/// The reference's timestamp: `(float)frame / (float)fps`, widened.
fn timestamp(frame_number: u64, frame_rate: f64) -> f64 {
    f64::from(frame_number as f32 / frame_rate as f32)
}

/// The reference's sampling step: `(int)(seconds_per_hash * fps)`, 0 → 1.
fn frame_mod(seconds_per_hash: f64, frame_rate: f64) -> u64 {
    ((seconds_per_hash * frame_rate) as u64).max(1)
}

/// A program given by name is looked up on this process's `PATH` (the child's environment is
/// empty); one given as a path is used as it is.
fn program(name: &Path) -> Result<PathBuf, VideoError> {
    if name.components().count() > 1 {
        return Ok(name.to_path_buf());
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| VideoError::FfmpegMissing {
            program: name.display().to_string(),
            source: std::io::ErrorKind::NotFound.into(),
        })
}

/// The vPDQ hash of a video, at one frame a second (the reference's default).
pub fn hash_video(bytes: &[u8], limits: &VideoLimits) -> Result<VideoHash, VideoError> {
    hash_video_with(bytes, &VideoOptions { limits: *limits, ..VideoOptions::default() })
}

/// The vPDQ hash of a video, with options.
pub fn hash_video_with(bytes: &[u8], options: &VideoOptions) -> Result<VideoHash, VideoError> {
    let limits = &options.limits;
    if !(options.seconds_per_hash.is_finite() && options.seconds_per_hash >= 0.0) {
        return Err(VideoError::InvalidOptions(
            "seconds_per_hash must be a finite number of seconds, 0 or more",
        ));
    }
    if bytes.is_empty() {
        return Err(VideoError::Empty);
    }
    if bytes.len() as u64 > limits.max_input_bytes {
        return Err(VideoError::TooLarge { bytes: bytes.len() as u64, limit: limits.max_input_bytes });
    }
    let deadline = Instant::now() + limits.max_decode_time;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get() as u64);
    let process = sandbox::ProcessLimits {
        memory_bytes: limits.max_memory_bytes,
        cpu_seconds: limits.max_decode_time.as_secs().saturating_add(1).saturating_mul(cores),
    };
    let input = sandbox::SealedInput::new(bytes)?;

    let probed = probe_video(options, &input, process, deadline)?;
    let (width, height) = (probed.width, probed.height);
    if (width as usize) < MIN_DIMENSION || (height as usize) < MIN_DIMENSION {
        return Err(VideoError::BadDimensions { width, height });
    }
    if u64::from(width) * u64::from(height) > limits.max_frame_pixels {
        return Err(VideoError::FrameTooLarge { width, height, limit: limits.max_frame_pixels });
    }
    if probed.duration_secs.is_some_and(|d| d > limits.max_duration.as_secs_f64()) {
        return Err(VideoError::TooLong { limit: limits.max_duration });
    }
    let by_duration = (limits.max_duration.as_secs_f64() * probed.frame_rate).floor();
    let by_duration = if by_duration >= 9.0e15 { u64::MAX } else { by_duration as u64 };
    let duration_binds = by_duration < limits.max_frame_count;
    let mut plan = decode::Plan {
        width,
        height,
        full_range: probed.pix_fmt.starts_with("yuvj"),
        frame_mod: frame_mod(options.seconds_per_hash, probed.frame_rate),
        frame_limit: by_duration.min(limits.max_frame_count).min(1 << 52),
        select_in_ffmpeg: true,
        frame_rate: probed.frame_rate,
    };
    let too_long = |error: VideoError| match error {
        VideoError::TooManyFrames { .. } if duration_binds => {
            VideoError::TooLong { limit: limits.max_duration }
        }
        other => other,
    };
    let mut decoded = decode::run(options, &input, process, &plan, deadline).map_err(too_long)?;
    let selected_right = |d: &decode::Decoded, plan: &decode::Plan| {
        d.frames_decoded.is_some_and(|total| total.div_ceil(plan.frame_mod) == d.received)
    };
    if plan.frame_mod > 1 && !selected_right(&decoded, &plan) {
        // The selection cannot be checked (or the filter graph was rebuilt mid-stream, which
        // restarts `n`): every frame through the pipe, numbered here.
        plan.select_in_ffmpeg = false;
        decoded = decode::run(options, &input, process, &plan, deadline).map_err(too_long)?;
    }
    let decoded_frames = if plan.select_in_ffmpeg && plan.frame_mod > 1 {
        decoded.frames_decoded.unwrap_or(0)
    } else {
        decoded.received
    };
    let mut features = decoded.features;
    let mut quirk_frames = 0;
    if options.reference_flush_quirk && probed.stream_index != 0 {
        quirk_frames = u64::from(probed.has_b_frames).min(decoded_frames);
        features.retain(|f| f.frame_number < decoded_frames - quirk_frames);
    }
    Ok(VideoHash {
        features,
        info: VideoInfo {
            container: probed.format_name,
            codec: probed.codec,
            stream_index: probed.stream_index,
            width,
            height,
            pix_fmt: probed.pix_fmt,
            frame_rate: probed.frame_rate,
            frame_mod: plan.frame_mod,
            decoded_frames,
            quirk_frames,
        },
    })
}

/// Runs ffprobe on the memfd and reads its answer (at most 1 MiB of JSON).
fn probe_video(
    options: &VideoOptions,
    input: &sandbox::SealedInput,
    process: sandbox::ProcessLimits,
    deadline: Instant,
) -> Result<probe::Probed, VideoError> {
    use std::io::Read;
    let ffprobe = program(&options.ffprobe)?;
    let mut args: Vec<OsString> = ["-v", "error"].map(OsString::from).to_vec();
    args.extend(decode::input_args());
    args.extend(["-show_entries", probe::ENTRIES, "-of", "json", "file:/dev/stdin"].map(OsString::from));
    let finished = sandbox::run(&ffprobe, &args, input, process, deadline, |stdout| {
        let mut json = Vec::new();
        match stdout.take(1 << 20).read_to_end(&mut json) {
            Ok(_) => sandbox::Work::Done(json),
            Err(source) => sandbox::Work::Stop(VideoError::Io { what: "reading ffprobe's answer", source }),
        }
    })?;
    if !finished.status.success() {
        let reason = decode::reason(&finished.stderr);
        return Err(failure("ffprobe", &finished.status, reason));
    }
    probe::parse(&finished.output)
}

/// The error for a child that failed: killed by a signal, refused the format, or could not
/// read the input.
fn failure(program: &'static str, status: &std::process::ExitStatus, reason: String) -> VideoError {
    use std::os::unix::process::ExitStatusExt;
    if status.signal().is_some() {
        VideoError::Killed { program, status: status.to_string(), reason }
    } else if reason.contains("not on whitelist") {
        VideoError::UnsupportedFormat { reason }
    } else {
        VideoError::Unreadable { reason }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_float32_divisions_widened() {
        // Frame 29 at 30000/1001, as in features_spf1.csv (SPEC §2.8's example says
        // 0.9676333069801331, the neighbouring f32; the CSV, made by vpdq, has this one).
        assert_eq!(timestamp(29, 30000.0 / 1001.0), 0.9676333665847778);
        assert_eq!(timestamp(1, 30.0), 0.03333333507180214);
        assert_eq!(timestamp(0, 25.0), 0.0);
    }

    #[test]
    fn frame_mod_truncates_and_is_at_least_one() {
        assert_eq!(frame_mod(1.0, 30.0), 30);
        assert_eq!(frame_mod(1.0, 30000.0 / 1001.0), 29);
        assert_eq!(frame_mod(1.0, 24000.0 / 1001.0), 23);
        assert_eq!(frame_mod(0.0, 25.0), 1);
        assert_eq!(frame_mod(0.01, 25.0), 1);
    }

    #[test]
    fn bad_options_and_empty_input_fail_before_any_process() {
        let options = VideoOptions { seconds_per_hash: -1.0, ..VideoOptions::default() };
        assert!(matches!(hash_video_with(b"x", &options), Err(VideoError::InvalidOptions(_))));
        assert!(matches!(hash_video(b"", &VideoLimits::default()), Err(VideoError::Empty)));
        let small = VideoLimits { max_input_bytes: 3, ..VideoLimits::default() };
        assert!(matches!(hash_video(b"four", &small), Err(VideoError::TooLarge { bytes: 4, limit: 3 })));
    }

    #[test]
    fn a_missing_program_is_a_typed_error() {
        let options = VideoOptions { ffprobe: "hashsieve-no-such-ffprobe".into(), ..VideoOptions::default() };
        assert!(matches!(hash_video_with(b"data", &options), Err(VideoError::FfmpegMissing { .. })));
        let options = VideoOptions { ffprobe: "/nonexistent/ffprobe".into(), ..VideoOptions::default() };
        assert!(matches!(hash_video_with(b"data", &options), Err(VideoError::FfmpegMissing { .. })));
    }
}
