//! The frames, decoded by `ffmpeg` as vpdq decodes them (SPEC §5), hashed as they arrive.
//!
//! ffmpeg's `select` filter drops the frames that are not sampled before they are converted to
//! RGB or cross the pipe: its `n` counts frames as the decoder outputs them, which is vpdq's
//! frame number, and each selected frame's pixels are the same bytes as in a full decode
//! (checked on every shared vector). The filter also lets the first frame past the frame limit
//! through, so that reaching the limit is seen rather than silently cut. The decoder's own
//! count (`N frames decoded`, printed at `-loglevel verbose`) checks the selection: when the
//! two disagree, or the count is missing, the video is decoded again with every frame sent.

use std::ffi::OsString;
use std::io::{self, Read};
use std::process::ChildStdout;
use std::time::Instant;

use hashsieve_core::pdq::PdqHasher;

use crate::sandbox::{self, ProcessLimits, SealedInput, Work};
use crate::{VideoError, VideoOptions, VpdqFeature, timestamp};

/// Demuxers ffmpeg and ffprobe may use (`-format_whitelist`): containers and elementary
/// streams of video. Left out: images (a picture is the image path's), playlists and other
/// formats that open further URLs (HLS, DASH, concat, …), devices.
pub(crate) const DEMUXERS: &str =
    "mov,matroska,webm,avi,flv,mpegts,mpeg,mpegvideo,asf,ogg,ivf,h264,hevc,m4v,obu,nut,mxf,3gp,mp4";

/// How one video is decoded.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Plan {
    pub width: u32,
    pub height: u32,
    pub full_range: bool,
    /// Every `frame_mod`-th decoded frame is hashed.
    pub frame_mod: u64,
    /// Frames numbered from this on are over a limit.
    pub frame_limit: u64,
    /// Select in ffmpeg (`true`) or receive every frame and select here.
    pub select_in_ffmpeg: bool,
    pub frame_rate: f64,
}

/// What came out of one decode.
#[derive(Debug)]
pub(crate) struct Decoded {
    pub features: Vec<VpdqFeature>,
    /// Frames received through the pipe.
    pub received: u64,
    /// The decoder's count, from ffmpeg's final statistics.
    pub frames_decoded: Option<u64>,
}

/// The arguments common to ffprobe and ffmpeg before the input: no network, no playlists, no
/// devices. (ffprobe is not given `-max_pixels`: it would then report no frame size.)
pub(crate) fn input_args() -> Vec<OsString> {
    ["-hide_banner", "-protocol_whitelist", "file", "-format_whitelist", DEMUXERS]
        .map(OsString::from)
        .to_vec()
}

fn ffmpeg_args(options: &VideoOptions, plan: &Plan) -> Vec<OsString> {
    let mut args: Vec<OsString> =
        ["-nostdin", "-nostats", "-loglevel", "verbose"].map(OsString::from).to_vec();
    if options.threads > 0 {
        args.extend(["-threads".into(), options.threads.to_string().into()]);
    }
    args.push("-noautorotate".into());
    args.extend(input_args());
    // The decoder itself refuses frames over the limit (a stream that grows mid-way).
    args.extend([
        "-max_pixels".into(),
        options.limits.max_frame_pixels.min(i32::MAX as u64).to_string().into(),
    ]);
    let range = if plan.full_range { "full" } else { "limited" };
    // The size is given, so that every frame in the pipe has it even if the stream changes size.
    let scale =
        format!("scale=w={}:h={}:in_color_matrix=bt601:in_range={range}:flags=area", plan.width, plan.height);
    let filters = if plan.select_in_ffmpeg && plan.frame_mod > 1 {
        format!("select='max(not(mod(n\\,{}))\\,gte(n\\,{}))',{scale}", plan.frame_mod, plan.frame_limit)
    } else {
        scale
    };
    args.extend(
        [
            "-i",
            "file:/dev/stdin",
            "-map",
            "0:v:0",
            "-an",
            "-sn",
            "-dn",
            "-fps_mode",
            "passthrough",
            "-vf",
            &filters,
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "pipe:1",
        ]
        .map(OsString::from),
    );
    args
}

/// Reads one frame; `Ok(false)` at a clean end between frames.
fn read_frame(stdout: &mut ChildStdout, frame: &mut [u8]) -> io::Result<bool> {
    let mut filled = 0;
    while filled < frame.len() {
        match stdout.read(&mut frame[filled..]) {
            Ok(0) if filled == 0 => return Ok(false),
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// The decoder's frame count from ffmpeg's final statistics:
/// `Input stream #0:1 (video): 300 packets read (688386 bytes); 300 frames decoded;`.
pub(crate) fn frames_decoded(stderr: &str) -> Option<u64> {
    stderr.lines().filter(|line| line.contains("(video):")).find_map(|line| {
        let before = line.split(" frames decoded").next().filter(|b| b.len() < line.len())?;
        before.rsplit(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
    })
}

/// The last lines of a child's stderr that say what went wrong, for an error message.
pub(crate) fn reason(stderr: &str) -> String {
    let lines: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("Input stream") && !l.starts_with("Output stream"))
        .collect();
    let tail = &lines[lines.len().saturating_sub(3)..];
    let text = tail.join(" / ");
    let chars = text.chars().count();
    if chars > 600 { format!("…{}", text.chars().skip(chars - 600).collect::<String>()) } else { text }
}

/// Decodes and hashes.
pub(crate) fn run(
    options: &VideoOptions,
    input: &SealedInput,
    limits: ProcessLimits,
    plan: &Plan,
    deadline: Instant,
) -> Result<Decoded, VideoError> {
    let ffmpeg = crate::program(&options.ffmpeg)?;
    let frame_bytes = plan.width as usize * plan.height as usize * 3;
    let plan = *plan;
    let finished =
        sandbox::run(&ffmpeg, &ffmpeg_args(options, &plan), input, limits, deadline, move |mut stdout| {
            let mut hasher = PdqHasher::new();
            let mut frame = vec![0u8; frame_bytes];
            let mut features = Vec::new();
            let mut received: u64 = 0;
            let ffmpeg_mod = if plan.select_in_ffmpeg { plan.frame_mod } else { 1 };
            loop {
                match read_frame(&mut stdout, &mut frame) {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(e) => {
                        return Work::Stop(VideoError::Io { what: "reading frames from ffmpeg", source: e });
                    }
                }
                let frame_number = received * ffmpeg_mod;
                received += 1;
                if frame_number >= plan.frame_limit {
                    return Work::Stop(VideoError::TooManyFrames { limit: plan.frame_limit });
                }
                if frame_number.is_multiple_of(plan.frame_mod) {
                    let out = hasher.hash_rgb(&frame, plan.width as usize, plan.height as usize);
                    features.push(VpdqFeature {
                        frame_number,
                        timestamp: timestamp(frame_number, plan.frame_rate),
                        pdq: out.hash,
                        quality: out.quality,
                    });
                }
            }
            Work::Done((features, received))
        })?;
    if !finished.status.success() {
        use std::os::unix::process::ExitStatusExt;
        let (status, reason) = (finished.status.to_string(), reason(&finished.stderr));
        return Err(if finished.status.signal().is_some() {
            VideoError::Killed { program: "ffmpeg", status, reason }
        } else {
            VideoError::DecodeFailed { status, reason }
        });
    }
    let (features, received) = finished.output;
    Ok(Decoded { features, received, frames_decoded: frames_decoded(&finished.stderr) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_decoded_count_is_read_from_the_final_statistics() {
        let stderr = "Output #0, rawvideo, to 'pipe:1':\n\
            Input file #0 (file:/dev/stdin):\n\
            \x20 Input stream #0:0 (audio): 10 packets read (100 bytes); \n\
            \x20 Input stream #0:1 (video): 300 packets read (688386 bytes); 298 frames decoded; \n\
            \x20 Total: 300 packets (688386 bytes) demuxed\n";
        assert_eq!(frames_decoded(stderr), Some(298));
        assert_eq!(frames_decoded("nothing"), None);
    }
}
